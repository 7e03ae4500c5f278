//! The README stays true to the binary: its example configuration passes `wharf check-config`,
//! and its table of configuration keys lists exactly the keys the server knows (taken from the
//! server's own "unknown key" error, which names them all).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use wharf_tests::e2e::{run_client, wharf_bin, TempDir};

fn readme() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The README's `## Configuration` section.
fn configuration_section(readme: &str) -> &str {
    let start = readme
        .find("\n## Configuration")
        .expect("README has a `## Configuration` section");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    &rest[..end]
}

fn check_config(dir: &TempDir, name: &str, text: &str) -> (bool, String) {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    let out = run_client(
        Command::new(wharf_bin()).arg("check-config").arg(&path),
        Duration::from_secs(30),
    );
    (
        out.status.success(),
        format!("{}{}", out.stdout, out.stderr),
    )
}

#[test]
fn readme_example_configuration_is_valid() {
    let text = readme();
    let section = configuration_section(&text);
    let start = section
        .find("```toml\n")
        .expect("a ```toml example in the Configuration section")
        + "```toml\n".len();
    let len = section[start..].find("```").expect("end of the toml block");
    let example = &section[start..start + len];
    let dir = TempDir::new("readme-example");
    let (ok, out) = check_config(&dir, "wharf.toml", example);
    assert!(
        ok && out.trim() == "ok",
        "the README's example configuration fails check-config:\n{example}\n{out}"
    );
}

#[test]
fn readme_lists_every_configuration_key() {
    let text = readme();
    let section = configuration_section(&text);
    let documented: BTreeSet<String> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(String::from)
        .collect();

    let dir = TempDir::new("readme-keys");
    let (ok, out) = check_config(&dir, "probe.toml", "no_such_key_for_the_readme_test = 1\n");
    assert!(!ok, "check-config accepted an unknown key:\n{out}");
    let list = out
        .split("known keys: ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap_or_else(|| panic!("the unknown-key error does not list the known keys:\n{out}"));
    let known: BTreeSet<String> = list.split(',').map(|k| k.trim().to_string()).collect();
    assert!(known.len() > 5, "too few keys parsed from {list:?}");

    let missing: Vec<_> = known.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&known).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "README.md's key table is out of date.\nkeys the server knows but the README does not \
         list: {missing:?}\nkeys the README lists but the server does not know: {extra:?}"
    );
}
