//! End to end with rclone (the distribution's package; Go's crypto/tls through
//! github.com/jlaffaye/ftp), issue 15: a tree of a few hundred files (nested folders, UTF-8
//! names with spaces and accents, empty files, an empty folder, one 64 MiB file of
//! pseudo-random bytes) goes up with `rclone copy`, `rclone check --download` finds no
//! difference, and `rclone copy` brings it back byte for byte — over plain FTP, over explicit
//! FTPS with TLS 1.3 and with TLS 1.2, with 8 transfers on 8 connections at once; and the
//! simplest FTPS case (one transfer, one connection, a small tree) with each TLS version, so
//! that a failure points at its cause. And (issue 17) rclone keeps modification times through
//! MFMT, so a file that changed but kept its size is copied again.
//!
//! rclone runs with no configuration file (`--config ""`, an on-the-fly remote
//! `:ftp,host=...:`), a private HOME, one try (`--retries 1 --low-level-retries 1`: a failure
//! is never hidden by a retry) and a deadline.
//!
//! A missing rclone skips a test, except under `CI=true`, where it fails it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use wharf_tests::e2e::{
    assert_same_tree, random_bytes, require, run_client, write_file, ClientOutput, Server,
    PASSWORD, USER,
};

/// How long one rclone command may take.
const RCLONE_TIMEOUT: Duration = Duration::from_secs(300);

/// Fills `base` with the full tree: 300 files in nested folders (every tenth one empty, the
/// others up to 64 KiB), UTF-8 names with spaces, accents and parentheses, an empty folder,
/// and one 64 MiB file.
fn full_tree(base: &Path) {
    let folders = [
        "Bücher",
        "Bücher/Ünïcödé",
        "reports 2024",
        "reports 2024/Q1 (final)",
        "données/été",
        "日本語/フォルダ",
        "deep/a/b/c/d/e",
        "flat",
    ];
    for i in 0..300u64 {
        let folder = folders[i as usize % folders.len()];
        let name = match i % 4 {
            0 => format!("Ünïcödé ({i}).txt"),
            1 => format!("file {i:03}.bin"),
            2 => format!("naïve café {i}.csv"),
            _ => format!("ファイル-{i}.dat"),
        };
        let len = if i % 10 == 0 {
            0
        } else {
            (i * 7919 % 65_536) as usize
        };
        write_file(base.join(folder).join(name), &random_bytes(len, 1_000 + i));
    }
    write_file(base.join("Bücher/Ünïcödé (1).txt"), "Grüße\n".as_bytes());
    write_file(base.join("large.bin"), &random_bytes(64 << 20, 999));
    std::fs::create_dir_all(base.join("empty folder")).expect("mkdir");
}

/// The small tree of the one-connection tests: a few files, one empty, one UTF-8 name, and
/// four of 16 MiB (large uploads are where an unread TLS ticket shows).
fn small_tree(base: &Path) {
    write_file(base.join("Bücher/Ünïcödé (1).txt"), "Grüße\n".as_bytes());
    write_file(base.join("empty.txt"), b"");
    for i in 0..8u64 {
        write_file(
            base.join(format!("nested/file {i}.bin")),
            &random_bytes(100_000 + i as usize * 1_000, 2_000 + i),
        );
    }
    for i in 0..4u64 {
        write_file(
            base.join(format!("large {i}.bin")),
            &random_bytes(16 << 20, 2_900 + i),
        );
    }
}

/// How rclone reaches the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Security {
    Plain,
    Tls13,
    Tls12,
}

/// One rclone setup against one server.
struct Rclone<'a> {
    server: &'a Server,
    remote: String,
    parallel: usize,
}

impl<'a> Rclone<'a> {
    fn new(server: &'a Server, security: Security, parallel: usize) -> Rclone<'a> {
        let obscured = run_client(
            Command::new("rclone")
                .args(["--config", "", "obscure", PASSWORD])
                .env("HOME", server.dir()),
            Duration::from_secs(30),
        );
        obscured.assert_success("rclone obscure");
        let tls = match security {
            Security::Plain => "",
            Security::Tls13 => ",explicit_tls=true,no_check_certificate=true",
            Security::Tls12 => ",explicit_tls=true,no_check_certificate=true,disable_tls13=true",
        };
        let remote = format!(
            ":ftp,host=127.0.0.1,port={},user={USER},pass={}{tls}:",
            server.port(),
            obscured.stdout.trim()
        );
        Rclone {
            server,
            remote,
            parallel,
        }
    }

    /// `remote:path`
    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.remote)
    }

    /// Runs `rclone ARGS` with the common flags; returns its output and run time.
    fn run(&self, args: &[&str]) -> (ClientOutput, Duration) {
        let home = self.server.dir().join("rclone-home");
        std::fs::create_dir_all(&home).expect("mkdir rclone home");
        let n = self.parallel.to_string();
        let mut cmd = Command::new("rclone");
        cmd.args(["--config", ""])
            .args(args)
            .args(["--transfers", &n, "--ftp-concurrency", &n, "--checkers", &n])
            .args(["--retries", "1", "--low-level-retries", "1"])
            .args(["--contimeout", "10s", "--timeout", "60s"])
            .args(["--log-level", "NOTICE", "--stats", "0"])
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", &home)
            .env("XDG_CACHE_HOME", &home);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("RCLONE_") {
                cmd.env_remove(k);
            }
        }
        let started = Instant::now();
        let out = run_client(&mut cmd, RCLONE_TIMEOUT);
        (out, started.elapsed())
    }

    /// Runs `rclone ARGS`; panics with what it said (its noise left out) unless it exits 0.
    fn ok(&self, what: &str, args: &[&str]) -> ClientOutput {
        let (out, took) = self.run(args);
        println!("rclone {what}: {:.1} s", took.as_secs_f64());
        if !out.status.success() {
            panic!(
                "rclone {what} failed ({}).\n{}",
                out.status,
                summary(&out.stderr)
            );
        }
        out
    }
}

/// What rclone's log says, short: each distinct error cause (`* 522 ...`) with its count,
/// then the first 20 and the last 5 other lines. Left out: the line it prints for every upload
/// to a server that cannot set modification times (not a failure).
fn summary(log: &str) -> String {
    let noise = "SetModTime is not supported";
    let mut causes = std::collections::BTreeMap::<&str, usize>::new();
    let mut other = Vec::new();
    for line in log
        .lines()
        .filter(|l| !l.contains(noise) && !l.trim().is_empty())
    {
        match line.trim().strip_prefix("* ") {
            Some(cause) => *causes.entry(cause).or_default() += 1,
            None => other.push(line),
        }
    }
    let mut out = String::from("error causes:\n");
    for (cause, n) in &causes {
        out.push_str(&format!("  {n} x {cause}\n"));
    }
    let head = other.len().min(20);
    let tail = other.len().saturating_sub(5).max(head);
    out.push_str(&format!("log ({} lines):\n", other.len()));
    out.push_str(&other[..head].join("\n"));
    if tail > head {
        out.push_str("\n...\n");
    } else {
        out.push('\n');
    }
    out.push_str(&other[tail..].join("\n"));
    out
}

/// Up with `rclone copy`, `rclone check --download`, down with `rclone copy`; both copies and
/// the server's own tree compared byte for byte with the source.
fn round_trip(name: &str, security: Security, parallel: usize, tree: fn(&Path)) {
    if !require("rclone") {
        return;
    }
    let server = Server::start(name);
    let src = server.client_dir().join("src");
    tree(&src);
    let rclone = Rclone::new(&server, security, parallel);
    let dst = rclone.at("tree");
    let src_s = src.to_str().expect("UTF-8 path");

    rclone.ok("copy up", &["copy", src_s, &dst, "--create-empty-src-dirs"]);
    assert_same_tree(&server.root().join("tree"), &src);

    let out = rclone.ok("check --download", &["check", src_s, &dst, "--download"]);
    assert!(
        out.stderr.contains(" 0 differences found"),
        "rclone check --download:\n{}",
        summary(&out.stderr)
    );

    let back = server.client_dir().join("back");
    let back_s = back.to_str().expect("UTF-8 path");
    rclone.ok(
        "copy down",
        &["copy", &dst, back_s, "--create-empty-src-dirs"],
    );
    assert_same_tree(&back, &src);

    // The run was what it claims: the TLS version, and protected data connections.
    let log = server.log();
    let (want, not) = match security {
        Security::Plain => (None, None),
        Security::Tls13 => (Some("version=TLSv1_3"), Some("version=TLSv1_2")),
        Security::Tls12 => (Some("version=TLSv1_2"), Some("version=TLSv1_3")),
    };
    if let (Some(want), Some(not)) = (want, not) {
        assert!(log.contains(want), "no TLS session with {want} in the log");
        assert!(!log.contains(not), "a TLS session with {not} in the log");
        assert!(
            log.lines()
                .any(|l| l.contains("cmd=STOR") && l.contains("prot=P")),
            "no protected upload in the log"
        );
    } else {
        assert!(!log.contains("version=TLS"), "TLS in a plain run");
    }
}

#[test]
fn rclone_plain_ftp_copy_check_and_copy_back_with_8_connections() {
    round_trip("rclone-plain", Security::Plain, 8, full_tree);
}

#[test]
fn rclone_ftps_tls13_copy_check_and_copy_back_with_8_connections() {
    round_trip("rclone-tls13", Security::Tls13, 8, full_tree);
}

#[test]
fn rclone_ftps_tls12_copy_check_and_copy_back_with_8_connections() {
    round_trip("rclone-tls12", Security::Tls12, 8, full_tree);
}

#[test]
fn rclone_ftps_tls13_one_connection_small_tree() {
    round_trip("rclone-tls13-one", Security::Tls13, 1, small_tree);
}

#[test]
fn rclone_ftps_tls12_one_connection_small_tree() {
    round_trip("rclone-tls12-one", Security::Tls12, 1, small_tree);
}

/// Sets a file's modification time to `secs` after the epoch.
fn set_mtime(path: &Path, secs: u64) {
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open for set_modified");
    f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(secs))
        .expect("set_modified");
}

fn mtime(path: &Path) -> u64 {
    let m = std::fs::metadata(path)
        .expect("metadata")
        .modified()
        .expect("mtime");
    m.duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// Issue 17: rclone keeps modification times through MFMT, and so notices a file that changed
/// but kept its size (before MFMT it compared sizes only and silently skipped such a file).
#[test]
fn rclone_keeps_modification_times_and_syncs_a_same_size_change() {
    if !require("rclone") {
        return;
    }
    let server = Server::start("rclone-mtime");
    let local = server.dir().join("mtime-local");
    let file = local.join("report.csv");
    write_file(&file, b"a,b\n1,2\n");
    // 2001-02-03 04:05:06 UTC.
    set_mtime(&file, 981_173_106);
    let rclone = Rclone::new(&server, Security::Plain, 1);
    let local_arg = local.to_str().expect("UTF-8 path");
    rclone.ok("copy", &["copy", local_arg, &rclone.at("")]);
    let stored = server.root().join("report.csv");
    assert_eq!(
        mtime(&stored),
        981_173_106,
        "the stored file keeps the local time"
    );
    let listed = rclone.ok("lsl", &["lsl", &rclone.at("")]);
    assert!(
        listed.stdout.contains("2001-02-03 04:05:06"),
        "rclone lsl shows the kept time: {}",
        listed.stdout
    );
    // The same size, other bytes, a later time: copied again.
    write_file(&file, b"a,b\n3,4\n");
    set_mtime(&file, 1_012_709_106);
    rclone.ok("copy again", &["copy", local_arg, &rclone.at("")]);
    assert_eq!(std::fs::read(&stored).expect("read"), b"a,b\n3,4\n");
    assert_eq!(mtime(&stored), 1_012_709_106);
}
