//! `wharf check-config`, and the checks `wharf serve` runs as well before it starts: no
//! partner's tree inside another served folder, no TLS key inside one, the user store there
//! when it was named; and `--keys`, the list of every key with its default and meaning.
//!
//! It must not change anything on disk or start anything: `serve` makes the folders, the
//! self-signed certificate and the server.

use std::path::{Path, PathBuf};

use crate::config::{keys::KEYS, Settings};
use crate::store::{self, StoreData, FOLDER_KEYS, LIMIT_KEYS, PARTNER_KEYS, USER_KEYS};
use crate::tls::{TlsContext, TlsError};
use crate::toml_read::{self, messages, ConfigError, Key};

pub(super) fn check_config(file: &Path) -> Result<(), Vec<String>> {
    let name = file.display().to_string();
    let text = toml_read::read_text(file).map_err(|e| vec![e.to_string()])?;
    let (s, errors) = Settings::parse_all(&text, &name, file.parent().unwrap_or(Path::new("")));
    let mut problems = messages(errors);
    if s.root.exists() && !s.root.is_dir() {
        problems.push(
            ConfigError::new(
                &name,
                "root",
                format!("{} is not a folder", s.root.display()),
            )
            .to_string(),
        );
    }
    if s.anonymous && s.anonymous_root.is_some() && !s.anonymous_root().is_dir() {
        problems.push(
            ConfigError::new(
                &name,
                "anonymous_root",
                format!("{} is not a folder", s.anonymous_root().display()),
            )
            .to_string(),
        );
    }
    match store_data(&s, &name) {
        Ok(data) => {
            let anonymous_root = s.anonymous.then(|| s.anonymous_root().to_path_buf());
            let served =
                served_folders(&s, &data, data.users.is_empty(), anonymous_root.as_deref());
            problems.extend(partner_placement_problems(&served, &name));
            problems.extend(tls_placement_problems(&s, &served, &name));
        }
        Err(e) => problems.extend(e),
    }
    // A configured certificate and key must load (password, match, validity); the
    // self-signed one is made by `serve`, not here.
    if s.tls && s.tls_problems().is_empty() {
        if let (Some(cert), Some(key)) = (&s.tls_cert, &s.tls_key) {
            if let Err(e) = TlsContext::load(&s.tls_settings(cert, key)) {
                problems.push(
                    ConfigError::new(&name, tls_error_key(&s, &e), e.to_string()).to_string(),
                );
            }
        }
    }
    if problems.is_empty() {
        println!("ok");
        Ok(())
    } else {
        Err(problems)
    }
}

/// `path` made absolute and with symlinks resolved as far as it exists (the rest is
/// appended), so that containment can be checked for files not made yet.
fn real_path(path: &Path) -> PathBuf {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    // Bounded by the number of components.
    loop {
        if let Ok(real) = std::fs::canonicalize(existing) {
            let mut out = real;
            for c in rest.iter().rev() {
                out.push(c);
            }
            return out;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return abs,
        }
    }
}

/// The folders FTP users are served, named for messages: the root (when an account from the
/// command line uses it), the anonymous root, every personal home, every partner's tree.
pub(super) fn served_folders(
    s: &Settings,
    data: &StoreData,
    root_served: bool,
    anonymous_root: Option<&Path>,
) -> Vec<(String, PathBuf)> {
    let mut served = Vec::new();
    if root_served {
        served.push(("the root".to_string(), s.root.clone()));
    }
    if let Some(a) = anonymous_root {
        served.push(("the anonymous root".into(), a.to_path_buf()));
    }
    for u in &data.users {
        if let Some(home) = &u.home {
            served.push((format!("the home of user '{}'", u.name), home.clone()));
        }
    }
    for p in &data.partners {
        served.push((
            format!("the folder of partner '{}'", p.name),
            p.root.clone(),
        ));
    }
    served
}

/// Checks that no TLS secret sits where an FTP user could download it: `tls_dir` (for the
/// self-signed key) or the configured key inside a served folder. Returns the problems,
/// naming the key.
pub(super) fn tls_placement_problems(
    s: &Settings,
    served: &[(String, PathBuf)],
    source: &str,
) -> Vec<String> {
    if !s.tls {
        return Vec::new();
    }
    let (key, what, path) = match &s.tls_key {
        Some(k) => ("tls_key", "the private key", k.clone()),
        None => (
            "tls_dir",
            "the folder of the self-signed key",
            s.tls_dir.clone(),
        ),
    };
    let real = real_path(&path);
    served
        .iter()
        .filter(|(_, folder)| real.starts_with(real_path(folder)))
        .map(|(name, folder)| {
            ConfigError::new(
                source,
                key,
                format!(
                    "{what} {} is inside {name} ({}), where FTP clients could download it; \
                     keep TLS keys outside every served folder",
                    path.display(),
                    folder.display()
                ),
            )
            .to_string()
        })
        .collect()
}

/// Checks that no partner's tree lies inside another served folder, and no served folder
/// inside a partner's tree: users of one partner never see another's files, and nobody
/// else sees a partner's. Returns the problems.
pub(super) fn partner_placement_problems(
    served: &[(String, PathBuf)],
    source: &str,
) -> Vec<String> {
    let is_partner = |name: &str| name.starts_with("the folder of partner");
    // Each folder resolved once; each overlapping pair reported once, partner first.
    let real: Vec<PathBuf> = served.iter().map(|(_, folder)| real_path(folder)).collect();
    let mut out = Vec::new();
    for i in 0..served.len() {
        for j in i + 1..served.len() {
            let (p, q) = match (is_partner(&served[i].0), is_partner(&served[j].0)) {
                (true, _) => (i, j),
                (false, true) => (j, i),
                (false, false) => continue,
            };
            if !(real[p].starts_with(&real[q]) || real[q].starts_with(&real[p])) {
                continue;
            }
            let ((name, folder), (other, other_folder)) = (&served[p], &served[q]);
            out.push(
                ConfigError::new(
                    source,
                    "partners_root",
                    format!(
                        "{name} ({}) and {other} ({}) overlap: each partner's tree must be \
                         a folder of its own, outside every other served folder",
                        folder.display(),
                        other_folder.display()
                    ),
                )
                .to_string(),
            );
        }
    }
    out
}

/// The config key a TLS loading error is about, from the file it names.
pub(super) fn tls_error_key(s: &Settings, e: &TlsError) -> &'static str {
    let Some(p) = e.path() else {
        return "tls_cert";
    };
    if s.tls_key.as_deref() == Some(p) {
        "tls_key"
    } else if s.tls_options.key_password_file.as_deref() == Some(p) {
        "tls_key_password_file"
    } else if s.tls_options.client_ca_path.as_deref() == Some(p) {
        "tls_client_ca"
    } else if s.tls_cert.as_deref() == Some(p) {
        "tls_cert"
    } else {
        "tls_dir"
    }
}

/// The user store as `serve` and `check-config` need it: empty when there is none (and none
/// was named), every problem otherwise. `config` names the configuration file.
pub(super) fn store_data(s: &Settings, config: &str) -> Result<StoreData, Vec<String>> {
    if s.users_file.exists() {
        store::load(&s.users_file, &s.partners_root).map_err(messages)
    } else if s.users_file_explicit {
        Err(vec![ConfigError::new(
            config,
            "users_file",
            format!(
                "{} does not exist; create it with `wharf partner add NAME --config {config}` or \
                 `wharf user add NAME --home DIR --config {config}`",
                s.users_file.display()
            ),
        )
        .to_string()])
    } else {
        Ok(StoreData::default())
    }
}

/// Prints every key, as Markdown tables: the configuration file's, then those of the user
/// store's entries. The README's and docs/partners.md's tables are these.
pub(super) fn print_keys() {
    let tables = [
        ("the configuration file", rows(KEYS)),
        ("[[partner]] in the user store", rows(PARTNER_KEYS)),
        ("[[partner.folder]] in the user store", rows(FOLDER_KEYS)),
        ("[[user]] in the user store", {
            let mut r = rows(USER_KEYS);
            r.extend(rows(LIMIT_KEYS));
            r
        }),
    ];
    let mut out = Vec::new();
    for (heading, rows) in tables {
        out.push(format!(
            "## {heading}\n\n| key | default | meaning |\n| --- | --- | --- |\n{}",
            rows.concat()
        ));
    }
    print!("{}", out.join("\n"));
}

/// The rows of a table of keys; a default that is a TOML value is shown as code.
fn rows<T>(keys: &[Key<T>]) -> Vec<String> {
    keys.iter()
        .map(|k| {
            let default = if k.default_is_value() {
                format!("`{}`", k.default)
            } else {
                k.default.to_string()
            };
            format!("| `{}` | {default} | {} |\n", k.name, k.doc)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::partner_placement_problems;
    use std::path::PathBuf;

    #[test]
    fn a_partner_tree_inside_another_served_folder_is_one_problem() {
        let base = PathBuf::from("/nonexistent-wharf-test/srv");
        let served = |partner: &str| {
            vec![
                ("the root".to_owned(), base.join("ftp")),
                ("the folder of partner acme".to_owned(), base.join(partner)),
                ("the folder of partner zeta".to_owned(), base.join("zeta")),
            ]
        };
        // acme's tree inside the root: one message per overlapping pair, partner first.
        let problems = partner_placement_problems(&served("ftp/acme"), "wharf.toml");
        assert_eq!(problems.len(), 1, "{problems:?}");
        let p = &problems[0];
        assert!(
            p.contains("wharf.toml") && p.contains("partners_root"),
            "{p}"
        );
        assert!(
            p.contains("the folder of partner acme") && p.contains("the root"),
            "{p}"
        );
        // Two partners' trees, one inside the other: reported once, not once from each side.
        let problems = partner_placement_problems(&served("zeta/acme"), "wharf.toml");
        assert_eq!(problems.len(), 1, "{problems:?}");
        // Side by side: nothing.
        assert!(partner_placement_problems(&served("acme"), "wharf.toml").is_empty());
    }
}
