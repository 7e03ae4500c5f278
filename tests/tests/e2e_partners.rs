//! End to end: trading partners with the real binary on loopback. The store is made with the
//! real management commands (`wharf partner add`, `wharf user add`, ...), the server reads it
//! through `--config`, and Python ftplib, lftp and a raw control connection play the partners'
//! users: each partner's users see only their partner's tree, with the permissions of the
//! partner gateways (pick up from Inbox, drop in Outbox, no overwrite, fixed folders stay);
//! owners survive a restart; the server-wide and per-partner IP filters, every login limit and
//! the ban answer as documented; the running server sees changes to the store; a killed
//! upload leaves no file under its final name.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use wharf_tests::e2e::{
    read_file, require, run_client, wharf_bin, wharf_cli, write_file, ClientOutput, Ctrl, Server,
    ServerOptions, TempDir,
};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/partners_client.py");
const CMD_TIMEOUT: Duration = Duration::from_secs(60);

/// A user store made with the management commands, in a folder of its own.
struct Store {
    dir: TempDir,
}

impl Store {
    fn new(name: &str) -> Store {
        Store {
            dir: TempDir::new(name),
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.join("wharf.toml")
    }

    /// Runs `wharf ARGS --config <store>/wharf.toml` in the store's folder, with `stdin`.
    fn wharf(&self, args: &[&str], stdin: &str) -> ClientOutput {
        wharf_cli(self.dir.path(), &self.config(), args, stdin, CMD_TIMEOUT)
    }

    fn partner_add(&self, name: &str, extra: &[&str]) {
        let mut args = vec!["partner", "add", name];
        args.extend_from_slice(extra);
        self.wharf(&args, "").assert_success("wharf partner add");
    }

    fn user_add(&self, name: &str, password: &str, extra: &[&str]) {
        let mut args = vec!["user", "add", name, "--password-stdin"];
        args.extend_from_slice(extra);
        self.wharf(&args, &format!("{password}\n"))
            .assert_success("wharf user add");
    }

    /// The folder of a partner's tree.
    fn partner_dir(&self, partner: &str) -> PathBuf {
        self.dir.join("wharf-partners").join(partner)
    }

    /// A server on this store, with `extra` configuration keys (TLS off: plain clients).
    fn start(&self, name: &str, extra: &str) -> Server {
        let store = self.dir.join("wharf-users.toml");
        let partners = self.dir.join("wharf-partners");
        let toml = format!(
            "users_file = {:?}\npartners_root = {:?}\nlogin_failure_delay_ms = 0\n{extra}",
            store.to_str().expect("utf-8 path"),
            partners.to_str().expect("utf-8 path"),
        );
        Server::start_with(name, ServerOptions::default().config(toml).arg("--no-tls"))
    }
}

/// Two partners with two users each, and a file the back end left in each Inbox.
fn two_partners(name: &str) -> Store {
    let s = Store::new(name);
    s.partner_add("acme", &[]);
    s.partner_add("globex", &[]);
    s.user_add("acme/alice", "alice-pw", &[]);
    s.user_add("acme/amir", "amir-pw", &[]);
    s.user_add("globex/gina", "gina-pw", &[]);
    s.user_add("globex/gus", "gus-pw", &[]);
    write_file(
        s.partner_dir("acme").join("Inbox/order-17.csv"),
        b"sku,qty\nA-1,3\n",
    );
    write_file(
        s.partner_dir("globex").join("Inbox/g-42.csv"),
        b"globex order\n",
    );
    s
}

fn python(args: &[&str]) -> ClientOutput {
    run_client(Command::new("python3").arg(SCRIPT).args(args), CMD_TIMEOUT)
}

fn scenario(server: &Server, name: &str, user: &str, password: &str) {
    let port = server.port().to_string();
    let client = server.client_dir();
    let out = python(&[
        "scenario",
        name,
        &port,
        user,
        password,
        client.to_str().expect("utf-8"),
    ]);
    out.assert_success(name);
    assert!(out.stdout.contains(&format!("PASS {name}")), "{out:?}");
}

/// `greet` or `login` from a source address; returns the line the script printed.
fn from_address(server: &Server, bind: &str, login: Option<(&str, &str)>) -> String {
    let port = server.port().to_string();
    let out = match login {
        None => python(&["greet", bind, &port]),
        Some((u, p)) => python(&["login", bind, &port, u, p]),
    };
    out.assert_success("partners_client.py");
    out.stdout.trim().to_string()
}

/// The names in a folder on disk, without the server's own files.
fn visible(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".wharf"))
        .collect();
    v.sort();
    v
}

#[test]
fn two_partners_see_their_own_trees_with_partner_permissions() {
    if !require("python3") {
        return;
    }
    let store = two_partners("partners-ftplib");
    let server = store.start("partners-ftplib", "");
    scenario(&server, "acme-alice", "acme/alice", "alice-pw");
    scenario(&server, "acme-amir", "acme/amir", "amir-pw");
    scenario(&server, "globex-gina", "globex/gina", "gina-pw");
    scenario(&server, "globex-gus", "globex/gus", "gus-pw");
    // On disk: each upload in its partner's folder only, the Inbox untouched.
    let acme = store.partner_dir("acme");
    let globex = store.partner_dir("globex");
    assert_eq!(
        visible(&acme.join("Outbox")),
        ["2026", "from-amir.txt", "invoice-1.txt"]
    );
    assert_eq!(read_file(acme.join("Outbox/invoice-1.txt")), b"invoice 1\n");
    assert_eq!(visible(&acme.join("Inbox")), ["order-17.csv"]);
    assert_eq!(visible(&globex.join("Outbox")), ["g-reply.txt"]);
    assert_eq!(visible(&globex.join("Inbox")), ["g-42.csv"]);
}

#[test]
fn lftp_partner_user_picks_up_and_drops_off() {
    if !require("lftp") {
        return;
    }
    let store = two_partners("partners-lftp");
    let server = store.start("partners-lftp", "");
    let client = server.client_dir();
    write_file(client.join("delivery.csv"), b"delivery,1\n");
    let home = server.dir().join("lftp-home");
    std::fs::create_dir_all(&home).expect("lftp home");
    let script = format!(
        "set net:max-retries 1; set net:timeout 10; set ftp:ssl-allow false; \
         set cmd:fail-exit true; open -u acme/amir,amir-pw {}; \
         get Inbox/order-17.csv -o {}/order-17.csv; \
         put {}/delivery.csv -o Outbox/delivery.csv; \
         ls Outbox; ls /",
        server.url(),
        client.display(),
        client.display()
    );
    let out = run_client(
        Command::new("lftp")
            .arg("-c")
            .arg(&script)
            .env("HOME", &home)
            .env("LC_ALL", "C.UTF-8"),
        CMD_TIMEOUT,
    );
    out.assert_success("lftp");
    assert_eq!(read_file(client.join("order-17.csv")), b"sku,qty\nA-1,3\n");
    assert_eq!(
        read_file(store.partner_dir("acme").join("Outbox/delivery.csv")),
        b"delivery,1\n"
    );
    let listed = out
        .stdout
        .lines()
        .find(|l| l.contains("delivery.csv"))
        .unwrap_or_else(|| panic!("no delivery.csv in:\n{}", out.stdout));
    let cols: Vec<&str> = listed.split_whitespace().collect();
    assert_eq!(
        (cols[0], cols[2], cols[3]),
        ("-r--r--r--", "amir", "acme"),
        "{listed}"
    );
    // The root holds the two fixed folders, root's.
    let top: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|c| matches!(c.last(), Some(&"Inbox") | Some(&"Outbox")))
        .collect();
    assert_eq!(top.len(), 2, "{}", out.stdout);
    assert!(
        top.iter().all(|c| c[2] == "root" && c[3] == "root"),
        "{top:?}"
    );
    // A second put of the same name is refused: uploads are read-only.
    let again = run_client(
        Command::new("lftp")
            .arg("-c")
            .arg(format!(
                "set net:max-retries 1; set ftp:ssl-allow false; set cmd:fail-exit true; \
                 open -u acme/amir,amir-pw {}; put {}/delivery.csv -o Outbox/delivery.csv",
                server.url(),
                client.display()
            ))
            .env("HOME", &home),
        CMD_TIMEOUT,
    );
    assert!(!again.status.success(), "overwrite allowed: {again:?}");
    assert!(again.stderr.contains("550"), "{again:?}");
}

#[test]
fn owners_survive_a_restart() {
    let store = two_partners("partners-restart");
    {
        let server = store.start("partners-restart-1", "");
        let mut c = Ctrl::connect(server.addr());
        c.login("acme/alice", "alice-pw");
        assert_eq!(c.cmd("TYPE I").code, 200);
        let (first, last) = c.transfer_out("STOR Outbox/kept.txt", b"kept\n");
        assert_eq!((first.code, last.code), (150, 226), "{first} / {last}");
        assert_eq!(c.cmd("MKD Outbox/box").code, 257);
        assert_eq!(c.cmd("SITE CHMOD 750 Outbox/box").code, 200);
    }
    let server = store.start("partners-restart-2", "");
    let mut c = Ctrl::connect(server.addr());
    c.login("acme/amir", "amir-pw");
    let (first, data, last) = c.transfer_in("LIST Outbox");
    assert_eq!((first.code, last.code), (150, 226));
    let text = String::from_utf8_lossy(&data).into_owned();
    let line = |name: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.ends_with(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    let kept = line("kept.txt");
    assert_eq!(
        (kept[0].as_str(), kept[2].as_str(), kept[3].as_str()),
        ("-r--r--r--", "alice", "acme")
    );
    let boxed = line("box");
    assert_eq!(
        (boxed[0].as_str(), boxed[2].as_str()),
        ("drwxr-x---", "alice")
    );
    // amir is in group acme: r-x on the folder lets him in, no w keeps him from writing.
    assert_eq!(c.cmd("CWD Outbox/box").code, 250);
    let (first, _) = c.transfer_out("STOR x.txt", b"x");
    assert_eq!(first.code, 550, "{first}");
}

#[test]
fn server_wide_ip_filter_refuses_at_connect() {
    if !require("python3") {
        return;
    }
    let store = two_partners("partners-ip-server");
    let server = store.start("partners-ip-server", "ip_deny = [\"127.0.0.2\"]\n");
    assert_eq!(
        from_address(&server, "127.0.0.2", None),
        "421 Connection refused: your address is not allowed here."
    );
    assert!(from_address(&server, "127.0.0.1", None).starts_with("220 "));
    let allow = store.start("partners-ip-allow", "ip_allow = [\"127.0.0.2/32\"]\n");
    assert!(from_address(&allow, "127.0.0.2", None).starts_with("220 "));
    assert_eq!(
        from_address(&allow, "127.0.0.1", None),
        "421 Connection refused: your address is not allowed here."
    );
}

#[test]
fn partner_ip_filter_refuses_at_login() {
    if !require("python3") {
        return;
    }
    let store = Store::new("partners-ip-partner");
    store.partner_add("acme", &["--deny-ip", "127.0.0.2"]);
    store.partner_add(
        "globex",
        &["--allow-ip", "127.0.0.2/32", "--allow-ip", "::1"],
    );
    store.user_add("acme/alice", "alice-pw", &[]);
    store.user_add("globex/gina", "gina-pw", &[]);
    store.user_add(
        "solo",
        "solo-pw",
        &["--home", "solo-home", "--allow-ip", "127.0.0.1"],
    );
    let server = store.start("partners-ip-partner", "");
    let login = |bind, u, p| from_address(&server, bind, Some((u, p)));
    assert_eq!(
        login("127.0.0.2", "acme/alice", "alice-pw"),
        "reply 530 Authentication failed."
    );
    assert!(login("127.0.0.1", "acme/alice", "alice-pw").starts_with("reply 230"));
    assert!(login("127.0.0.2", "globex/gina", "gina-pw").starts_with("reply 230"));
    assert_eq!(
        login("127.0.0.1", "globex/gina", "gina-pw"),
        "reply 530 Authentication failed."
    );
    assert!(login("127.0.0.1", "solo", "solo-pw").starts_with("reply 230"));
    assert_eq!(
        login("127.0.0.2", "solo", "solo-pw"),
        "reply 530 Authentication failed."
    );
}

/// A raw login expected to be refused by a limit: `421 <text>`, then the server closes.
fn refused_login(server: &Server, user: &str, password: &str, text: &str) {
    let mut c = Ctrl::connect(server.addr());
    assert_eq!(c.cmd(&format!("USER {user}")).code, 331);
    let r = c.cmd(&format!("PASS {password}"));
    assert_eq!(r.lines[0], format!("421 {text}"), "{user}");
    assert!(
        c.closed_within(Duration::from_secs(5)),
        "still open after {r}"
    );
}

fn login(server: &Server, user: &str, password: &str) -> Ctrl {
    let mut c = Ctrl::connect(server.addr());
    c.login(user, password);
    c
}

fn quit(mut c: Ctrl) {
    assert_eq!(c.cmd("QUIT").code, 221);
    assert!(c.closed_within(Duration::from_secs(5)));
}

#[test]
fn login_limit_overall() {
    let store = two_partners("partners-limit-all");
    let server = store.start("partners-limit-all", "max_logins = 2\n");
    let alice = login(&server, "acme/alice", "alice-pw");
    let _gina = login(&server, "globex/gina", "gina-pw");
    refused_login(
        &server,
        "globex/gus",
        "gus-pw",
        "Maximum login limit has been reached.",
    );
    // A logout gives its place back.
    quit(alice);
    let _gus = login(&server, "globex/gus", "gus-pw");
}

#[test]
fn login_limit_per_user() {
    let store = two_partners("partners-limit-user");
    store.user_add("acme/kim", "kim-pw", &["--max-logins", "1"]);
    let server = store.start("partners-limit-user", "");
    let kim = login(&server, "acme/kim", "kim-pw");
    refused_login(
        &server,
        "acme/kim",
        "kim-pw",
        "Maximum login limit for this user has been reached.",
    );
    // Other users are not concerned.
    let _alice = login(&server, "acme/alice", "alice-pw");
    // A dropped connection (no QUIT) gives its login back too.
    drop(kim);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = Ctrl::connect(server.addr());
        assert_eq!(c.cmd("USER acme/kim").code, 331);
        let r = c.cmd("PASS kim-pw");
        if r.code == 230 {
            break;
        }
        assert!(Instant::now() < deadline, "kim's login never released: {r}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn login_limit_per_user_and_address() {
    let store = two_partners("partners-limit-user-ip");
    store.user_add("acme/kim", "kim-pw", &["--max-logins-per-ip", "1"]);
    let server = store.start("partners-limit-user-ip", "");
    let _kim = login(&server, "acme/kim", "kim-pw");
    refused_login(
        &server,
        "acme/kim",
        "kim-pw",
        "Maximum login limit for this user from your address has been reached.",
    );
    if require("python3") {
        // From another address the same user may log in.
        assert!(
            from_address(&server, "127.0.0.2", Some(("acme/kim", "kim-pw")))
                .starts_with("reply 230")
        );
    }
}

#[test]
fn login_limit_per_address() {
    let store = two_partners("partners-limit-ip");
    let server = store.start("partners-limit-ip", "max_logins_per_ip = 1\n");
    let _alice = login(&server, "acme/alice", "alice-pw");
    refused_login(
        &server,
        "globex/gina",
        "gina-pw",
        "Maximum login limit for your address has been reached.",
    );
    if require("python3") {
        assert!(
            from_address(&server, "127.0.0.2", Some(("globex/gina", "gina-pw")))
                .starts_with("reply 230")
        );
    }
}

#[test]
fn anonymous_login_limit() {
    let store = two_partners("partners-limit-anon");
    let server = store.start(
        "partners-limit-anon",
        "anonymous = true\nmax_anonymous_logins = 1\n",
    );
    let _a = login(&server, "anonymous", "me@example.com");
    refused_login(
        &server,
        "ftp",
        "me@example.com",
        "Maximum anonymous login limit has been reached.",
    );
    let _alice = login(&server, "acme/alice", "alice-pw");
}

#[test]
fn an_address_is_banned_after_failed_logins() {
    let store = two_partners("partners-ban");
    let server = store.start(
        "partners-ban",
        "ban_after_failures = 3\nban_duration_secs = 60\nmax_login_failures = 2\n",
    );
    // Two failures on one connection (which is then closed), one on another: 3 in all.
    let mut c = Ctrl::connect(server.addr());
    for pw in ["nope", "still-nope"] {
        assert_eq!(c.cmd("USER acme/alice").code, 331);
        assert_eq!(c.cmd(&format!("PASS {pw}")).code, 530);
    }
    assert!(c.closed_within(Duration::from_secs(5)));
    let mut c = Ctrl::connect(server.addr());
    assert_eq!(c.cmd("USER nobody/at-all").code, 331);
    assert_eq!(c.cmd("PASS x").code, 530);
    // Banned: a new connection gets 421 at once and is closed, even with the right password.
    let mut banned = Ctrl::connect_raw(server.addr()).expect("connect");
    let r = banned.reply();
    assert_eq!(
        r.lines[0],
        "421 Too many failed logins from your address; try again later."
    );
    assert!(banned.closed_within(Duration::from_secs(5)));
    assert!(server
        .log()
        .contains("banned for 60 s after 3 failed logins"));
    // The session that was open goes on; other addresses are not banned.
    assert_eq!(c.cmd("NOOP").code, 200);
    if require("python3") {
        assert!(
            from_address(&server, "127.0.0.2", Some(("acme/alice", "alice-pw")))
                .starts_with("reply 230")
        );
    }
}

/// Tries `user`/`password` until the reply code is `want` (bounded); returns the last reply.
fn await_login(server: &Server, user: &str, password: &str, want: u16) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut c = Ctrl::connect(server.addr());
        assert_eq!(c.cmd(&format!("USER {user}")).code, 331);
        let code = c.cmd(&format!("PASS {password}")).code;
        if code == want || Instant::now() > deadline {
            return code;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn the_running_server_sees_store_changes() {
    let store = two_partners("partners-reload");
    // Failed logins while waiting for a change must not ban the test's own address.
    let server = store.start("partners-reload", "ban_after_failures = 0\n");
    // A new user logs in within a few seconds, without a restart.
    assert_eq!(await_login(&server, "acme/newbie", "new-pw", 530), 530);
    store.user_add("acme/newbie", "new-pw", &[]);
    let t = Instant::now();
    assert_eq!(await_login(&server, "acme/newbie", "new-pw", 230), 230);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    // A disabled user cannot log in any more; a logged-in session keeps going.
    let mut alice = login(&server, "acme/alice", "alice-pw");
    store
        .wharf(&["user", "disable", "acme/alice"], "")
        .assert_success("wharf user disable");
    assert_eq!(await_login(&server, "acme/alice", "alice-pw", 530), 530);
    assert_eq!(alice.cmd("PWD").code, 257);
    // A broken store is logged with the file, the key and the reason; the accounts stay.
    let file = store.dir.join("wharf-users.toml");
    let good = std::fs::read_to_string(&file).expect("store");
    std::fs::write(
        &file,
        format!("{good}\n[[user]]\nname = \"acme/bad\"\nmax_logins = \"x\"\n"),
    )
    .expect("write");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log().contains("not reloaded") {
        assert!(
            Instant::now() < deadline,
            "no reload error in:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = server.log();
    assert!(
        log.contains(&format!(
            "{}: key 'user[6].max_logins': must be a whole number",
            file.display()
        )),
        "{log}"
    );
    assert_eq!(await_login(&server, "acme/newbie", "new-pw", 230), 230);
    // Enabled again (and the store repaired): alice is back.
    std::fs::write(&file, good).expect("write");
    store
        .wharf(&["user", "enable", "acme/alice"], "")
        .assert_success("wharf user enable");
    assert_eq!(await_login(&server, "acme/alice", "alice-pw", 230), 230);
    // A new password applies to the next login.
    store
        .wharf(
            &["user", "passwd", "acme/alice", "--password-stdin"],
            "changed\n",
        )
        .assert_success("wharf user passwd");
    assert_eq!(await_login(&server, "acme/alice", "changed", 230), 230);
    // SIGHUP reloads at once (and does not stop the server).
    run_client(
        Command::new("kill")
            .arg("-HUP")
            .arg(server.pid().to_string()),
        CMD_TIMEOUT,
    )
    .assert_success("kill -HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.log().contains("reloaded (SIGHUP)") {
        assert!(
            Instant::now() < deadline,
            "no SIGHUP reload in:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _alice = login(&server, "acme/alice", "changed");
}

#[test]
fn management_commands_list_and_explain() {
    let store = Store::new("partners-cli");
    // The first command makes the configuration file and the store.
    let out = store.wharf(&["partner", "add", "acme", "--allow-ip", "127.0.0.0/8"], "");
    out.assert_success("partner add");
    assert!(out.stdout.contains("created "), "{out:?}");
    let cfg = std::fs::read_to_string(store.config()).expect("wharf.toml made");
    assert!(cfg.contains("users_file = \"wharf-users.toml\""), "{cfg}");
    assert!(store.partner_dir("acme").join("Inbox").is_dir());
    assert!(store.partner_dir("acme").join("Outbox").is_dir());
    store.partner_add(
        "globex",
        &["--deny-ip", "10.0.0.0/8", "--file-mode", "0440"],
    );
    store.user_add("acme/alice", "pw", &["--admin", "--max-logins", "2"]);
    store.user_add("acme/amir", "pw", &["--read-only"]);
    store.user_add("bob", "pw", &["--home", "bob-home"]);
    // A partner must exist first; the message says how to add it.
    let out = store.wharf(&["user", "add", "initech/x", "--password-stdin"], "pw\n");
    assert!(!out.status.success());
    assert!(
        out.stderr.contains(
            "partner 'initech' does not exist; add it first with `wharf partner add initech"
        ),
        "{out:?}"
    );
    let out = store.wharf(&["user", "add", "acme/alice", "--password-stdin"], "pw\n");
    assert!(
        out.stderr.contains("user 'acme/alice' exists already"),
        "{out:?}"
    );
    let out = store.wharf(&["partner", "add", "bad name"], "");
    assert!(
        out.stderr.contains("is not a usable partner name"),
        "{out:?}"
    );
    store
        .wharf(&["user", "disable", "acme/amir"], "")
        .assert_success("disable");

    let out = store.wharf(&["user", "list"], "");
    out.assert_success("user list");
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["NAME", "PARTNER", "ENABLED", "WRITE", "ADMIN", "ALLOW_IP", "HOME"]
    );
    assert_eq!(
        rows[1][..6],
        ["acme/alice", "acme", "yes", "yes", "yes", "-"]
    );
    assert_eq!(rows[2][..6], ["acme/amir", "acme", "no", "no", "no", "-"]);
    assert_eq!(rows[3][..6], ["bob", "-", "yes", "yes", "no", "-"]);
    assert!(rows[3][6].ends_with("bob-home"), "{:?}", rows[3]);
    assert!(rows[1][6].ends_with("wharf-partners/acme"), "{:?}", rows[1]);
    assert_eq!(rows.len(), 4, "{}", out.stdout);

    let out = store.wharf(&["partner", "list"], "");
    out.assert_success("partner list");
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "NAME",
            "USERS",
            "ALLOW_IP",
            "DENY_IP",
            "FILE_MODE",
            "FOLDERS",
            "ROOT"
        ]
    );
    assert_eq!(
        rows[1][..6],
        [
            "acme",
            "2",
            "127.0.0.0/8",
            "-",
            "0444",
            "Inbox(0755,root:root),Outbox(0777,root:root)"
        ]
    );
    assert_eq!(rows[2][..5], ["globex", "0", "-", "10.0.0.0/8", "0440"]);
    // The store holds hashes, never passwords, and only its owner may read it.
    let text = std::fs::read_to_string(store.dir.join("wharf-users.toml")).expect("store");
    assert!(
        text.contains("$argon2id$") && !text.contains("\"pw\""),
        "{text}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(store.dir.join("wharf-users.toml"))
        .expect("store")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // check-config reads the store the configuration names.
    let out = run_client(
        Command::new(wharf_bin())
            .arg("check-config")
            .arg(store.config()),
        CMD_TIMEOUT,
    );
    assert_eq!(out.stdout.trim(), "ok", "{out:?}");
}

#[test]
fn a_killed_upload_leaves_no_file_under_its_final_name() {
    if !require("python3") {
        return;
    }
    // A rate-limited user: the server is still receiving when the client dies, as with any
    // upload that is not over (on loopback an unlimited server would have read every byte
    // the moment it was sent, and a stream-mode upload ends with the data connection: the
    // client's death between two sends would look like the end of the file).
    let store = two_partners("partners-killed");
    store.user_add("acme/slow", "slow-pw", &["--upload-rate", "200000"]);
    let server = store.start("partners-killed", "atomic_uploads = true\n");
    let outbox = store.partner_dir("acme").join("Outbox");
    let mut child = Command::new("python3")
        .arg(SCRIPT)
        .args(["killed-upload", &server.port().to_string()])
        .args(["acme/slow", "slow-pw", "Outbox/big.bin"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let started = rx.recv_timeout(Duration::from_secs(30));
    if started.as_deref() != Ok("sending") {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the upload did not start: {started:?}\n{}", server.log());
    }
    // In flight: bytes arrive in a hidden partial file; nothing under the final name.
    let deadline = Instant::now() + Duration::from_secs(10);
    let partial_size = || -> u64 {
        std::fs::read_dir(&outbox)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(".wharf-part."))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    };
    while partial_size() == 0 {
        assert!(
            Instant::now() < deadline,
            "no partial file in {}",
            outbox.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!outbox.join("big.bin").exists());
    assert!(visible(&outbox).is_empty(), "{:?}", visible(&outbox));
    child.kill().expect("kill the client");
    let _ = child.wait();
    // The server notices, removes the partial file, and never puts it in place.
    let deadline = Instant::now() + Duration::from_secs(15);
    while partial_size() > 0 {
        assert!(
            Instant::now() < deadline,
            "partial file left:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !outbox.join("big.bin").exists(),
        "a killed upload was put in place:\n{}",
        server.log()
    );
    let leftovers: Vec<String> = std::fs::read_dir(&outbox)
        .expect("outbox")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        leftovers.iter().all(|n| n == ".wharf-meta.toml"),
        "{leftovers:?}"
    );
    // A complete upload of the same name afterwards works.
    let mut c = login(&server, "acme/alice", "alice-pw");
    assert_eq!(c.cmd("TYPE I").code, 200);
    let (first, last) = c.transfer_out("STOR Outbox/big.bin", b"whole");
    assert_eq!((first.code, last.code), (150, 226));
    assert_eq!(read_file(outbox.join("big.bin")), b"whole");
}
