//! End to end, sessions at scale (issue 5): 1,000 logged-in idle sessions are all accepted and
//! kept alive with the default limits; a password that the login cache remembers stops working
//! as soon as it is changed. (What a session costs in memory is measured by the benchmark,
//! `wharf-bench --workloads idle_sessions`, not asserted here: memory and speed are
//! benchmark figures, never test assertions.)

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use wharf_tests::e2e::{
    require, run_client, wharf_cli, Ctrl, Server, ServerOptions, TempDir, PASSWORD, USER,
};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/hold_sessions.py");

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|w| w.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

#[test]
fn a_thousand_idle_sessions_fit_the_default_limits() {
    const N: usize = 1000;
    if !require("python3") {
        return;
    }
    let server = Server::start("sessions-idle");
    let out = run_client(
        Command::new("python3")
            .arg(SCRIPT)
            .arg("127.0.0.1")
            .arg(server.port().to_string())
            .arg(USER)
            .arg(PASSWORD)
            .arg(N.to_string())
            .arg(server.pid().to_string()),
        Duration::from_secs(240),
    );
    out.assert_success("hold_sessions.py");
    let line = out.stdout.trim();
    assert_eq!(
        (field(line, "held"), field(line, "failed")),
        (N.to_string().as_str(), "0"),
        "not every session was accepted and alive with the default limits: {line}"
    );
    let before: f64 = field(line, "pss_before_kib").parse().expect("a number");
    let after: f64 = field(line, "pss_after_kib").parse().expect("a number");
    let per_session = (after - before) / N as f64;
    eprintln!("{N} idle sessions: {per_session:.1} KiB PSS each ({before} -> {after} KiB)");
    // The server goes on serving.
    let mut c = server.login();
    assert_eq!(c.cmd("NOOP").code, 200);
}

/// Runs `wharf ARGS --config CONFIG` in `dir` with `stdin`.
fn wharf(dir: &TempDir, config: &Path, args: &[&str], stdin: &str) {
    wharf_cli(dir.path(), config, args, stdin, Duration::from_secs(60))
        .assert_success(&format!("wharf {args:?}"));
}

fn pass(server: &Server, user: &str, password: &str) -> u16 {
    let mut c = Ctrl::connect(server.addr());
    assert_eq!(c.cmd(&format!("USER {user}")).code, 331);
    c.cmd(&format!("PASS {password}")).code
}

#[test]
fn a_remembered_password_stops_working_when_it_is_changed() {
    let dir = TempDir::new("sessions-cache");
    let config = dir.join("wharf.toml");
    wharf(
        &dir,
        &config,
        &[
            "user",
            "add",
            "carol",
            "--home",
            "carol",
            "--password-stdin",
        ],
        "old-pw\n",
    );
    let server = Server::start_with(
        "sessions-cache-server",
        ServerOptions::default().config(format!(
            "users_file = {:?}\nlogin_failure_delay_ms = 0\nlogin_cache_secs = 600\n",
            dir.join("wharf-users.toml")
        )),
    );
    // Twice: the second login is answered from the cache.
    assert_eq!(pass(&server, "carol", "old-pw"), 230);
    assert_eq!(pass(&server, "carol", "old-pw"), 230);
    assert_eq!(pass(&server, "carol", "wrong"), 530);
    wharf(
        &dir,
        &config,
        &["user", "passwd", "carol", "--password-stdin"],
        "new-pw\n",
    );
    run_client(
        Command::new("kill")
            .arg("-HUP")
            .arg(server.pid().to_string()),
        Duration::from_secs(30),
    )
    .assert_success("kill -HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    // (The TLS certificate reloads on SIGHUP too: wait for the store's own line.)
    let store_reloaded = |log: &str| {
        log.lines()
            .any(|l| l.contains("user store") && l.contains(" reloaded"))
    };
    while !store_reloaded(&server.log()) {
        assert!(Instant::now() < deadline, "no reload in:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(pass(&server, "carol", "old-pw"), 530, "{}", server.log());
    assert_eq!(pass(&server, "carol", "new-pw"), 230);
    assert_eq!(pass(&server, "carol", "new-pw"), 230);
}
