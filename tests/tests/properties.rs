//! quickcheck properties of the core, driven through the testkit's fake runtime:
//!
//! (a) the replies (and everything else the session does) do not depend on how the input is cut
//!     into reads: one chunk, one byte at a time, or any random cuts. Transfers here run until
//!     the client has sent everything (then finish one after the other): a command that
//!     arrives while a transfer runs may be answered during it (ABOR, STAT, NOOP), so how long
//!     a transfer takes relative to the input is part of the input, and is held fixed;
//! (b) every reply is well-formed ([`check_reply`]: each line `^\d{3}[ -]`, except the body
//!     lines of FEAT and MLST, which begin with one space) for arbitrary sequences of arbitrary
//!     and valid-looking commands, and the session never misuses the runtime API;
//! (c) path resolution through the session never escapes the root: after any CWD/CDUP with
//!     random `..`, `/` and names, PWD names a directory of the fake file system, the one a
//!     simple model of a chroot predicts;
//! (d) PORT/EPRT/PASV/EPSV round-trip through the session: what a client formats with
//!     `wharf_core::addr` is the endpoint the transfer uses, and what the server replies parses
//!     back to the listener it opened. (The pure format/parse round trips are unit tests in
//!     core/src/addr.rs; these extend them to the session.)

use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::time::Instant;
use wharf_core::addr;
use wharf_core::command::VERBS;
use wharf_core::testkit::{check_reply, Harness, MemFs};
use wharf_core::DataEndpoint;

fn tests(n: u64) -> QuickCheck {
    QuickCheck::new().tests(n).max_tests(n * 10)
}

fn pick<'a, T>(g: &mut Gen, items: &'a [T]) -> &'a T {
    g.choose(items).expect("non-empty")
}

fn below(g: &mut Gen, n: usize) -> usize {
    usize::arbitrary(g) % n.max(1)
}

// ----- scripts of commands ---------------------------------------------------------------------

const ARGS: &[&str] = &[
    "",
    "a.txt",
    "dir",
    "dir/sub",
    "dir/sub/b.txt",
    "big.bin",
    "new",
    "new.txt",
    "..",
    "../..",
    "/",
    "/../../etc/passwd",
    "~",
    "*.txt",
    "dir/*",
    "[ab]*",
    "-la",
    "-la dir",
    "0",
    "3",
    "99999",
    "A",
    "I",
    "A N",
    "L 8",
    "E",
    "F",
    "R",
    "S",
    "Z",
    "UTF8 ON",
    "UTF8 OFF",
    "MLST type;size;",
    "MLST",
    "HELP",
    "ALL",
    "1",
    "2",
    "127,0,0,1,195,80",
    "127,0,0,1,0,21",
    "127,0,0,2,195,80",
    "1,2,3",
    "|1|127.0.0.1|5000|",
    "|2|::1|5000|",
    "|3|x|1|",
    "4,4,127,0,0,1,2,4,1",
    "alice",
    "secret",
    "bob",
    "pw",
    "anonymous",
    "say \"hi\"",
    "ünïcödé",
    "TLS",
];

/// One line the client sends: its bytes and its terminator.
#[derive(Clone, Debug)]
struct Line(Vec<u8>);

impl Arbitrary for Line {
    fn arbitrary(g: &mut Gen) -> Line {
        let mut bytes = match below(g, 10) {
            // Mostly valid-looking commands: a known verb, sometimes in lower case, and an
            // argument from the pool.
            0..=6 => {
                let verb = pick(g, VERBS).name;
                let verb = if bool::arbitrary(g) {
                    verb.to_ascii_lowercase()
                } else {
                    verb.to_owned()
                };
                let arg = *pick(g, ARGS);
                if arg.is_empty() {
                    verb.into_bytes()
                } else {
                    format!("{verb} {arg}").into_bytes()
                }
            }
            7 => {
                let verb = pick(g, VERBS).name;
                format!("{verb} {}", String::arbitrary(g)).into_bytes()
            }
            8 => String::arbitrary(g).into_bytes(),
            _ => Vec::<u8>::arbitrary(g),
        };
        // The terminator is part of the line's bytes; arbitrary bytes may hold more of them.
        const TERMS: [&[u8]; 6] = [b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b"\r\0"];
        let term = *pick(g, &TERMS);
        bytes.extend_from_slice(term);
        Line(bytes)
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Line>> {
        Box::new(self.0.shrink().map(Line))
    }
}

/// A client's whole input: perhaps a valid login first, then arbitrary lines.
#[derive(Clone, Debug)]
struct Script {
    login: bool,
    lines: Vec<Line>,
}

impl Arbitrary for Script {
    fn arbitrary(g: &mut Gen) -> Script {
        Script {
            login: bool::arbitrary(g),
            lines: Vec::arbitrary(g),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Script>> {
        let login = self.login;
        Box::new(
            self.lines
                .shrink()
                .map(move |lines| Script { login, lines }),
        )
    }
}

impl Script {
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.login {
            out.extend_from_slice(b"USER alice\r\nPASS secret\r\n");
        }
        for l in &self.lines {
            out.extend_from_slice(&l.0);
        }
        out
    }
}

fn world() -> Harness {
    let mut fs = MemFs::new();
    fs.write_file("/a.txt", "one\ntwo\n").unwrap();
    fs.write_file("/dir/sub/b.txt", "b\r\nb\n").unwrap();
    fs.write_file("/big.bin", wharf_core::testkit::seeded_bytes(7, 5000))
        .unwrap();
    Harness::builder()
        .config(|c| {
            // No delay and many attempts: the scripts explore more than the first failure.
            c.login_failure_delay = std::time::Duration::ZERO;
            c.max_login_failures = 1000;
        })
        .user("alice", "secret", true)
        .user("bob", "pw", false)
        .anonymous()
        .fs(fs)
        .start(Instant::now())
}

/// Everything observable about a run: reply bytes, closed or not, transfers and the files.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    replies: Vec<u8>,
    closed: bool,
    transfers: Vec<(Vec<u8>, String)>,
    files: Vec<(String, Option<Vec<u8>>)>,
    anomalies: Vec<String>,
}

fn observe(h: &mut Harness) -> Observed {
    let replies = h.take_replies();
    Observed {
        replies: replies.iter().flat_map(|r| r.as_bytes().to_vec()).collect(),
        closed: h.is_closed(),
        transfers: h
            .transfers()
            .map(|t| (t.data.clone(), format!("{:?} {:?}", t.kind, t.result)))
            .collect(),
        files: h
            .fs
            .paths()
            .map(|p| (p.to_owned(), h.fs.file(p).map(<[u8]>::to_vec)))
            .collect(),
        anomalies: h.anomalies().to_vec(),
    }
}

/// Finishes held transfers one after the other (each may let more commands run).
fn finish_transfers(h: &mut Harness) {
    for _ in 0..10_000 {
        if !h.finish_transfer() {
            return;
        }
    }
    panic!("transfers keep starting");
}

fn run_chunked(input: &[u8], cuts: &[usize]) -> Observed {
    let mut h = world();
    h.set_hold_transfers(true);
    let mut rest = input;
    for &c in cuts {
        if rest.is_empty() {
            break;
        }
        let (a, b) = rest.split_at(c % (rest.len() + 1));
        h.send(a);
        rest = b;
    }
    h.send(rest);
    finish_transfers(&mut h);
    observe(&mut h)
}

// (a) -------------------------------------------------------------------------------------------

#[test]
fn chunking_does_not_change_replies() {
    fn prop(script: Script, cuts: Vec<usize>) -> bool {
        let input = script.bytes();
        let whole = run_chunked(&input, &[]);
        let cut = run_chunked(&input, &cuts);
        whole == cut
    }
    tests(300).quickcheck(prop as fn(Script, Vec<usize>) -> bool);
}

#[test]
fn byte_at_a_time_gives_the_same_replies() {
    fn prop(script: Script) -> bool {
        let input = script.bytes();
        let whole = run_chunked(&input, &[]);
        let mut h = world();
        h.set_hold_transfers(true);
        for b in &input {
            h.send(std::slice::from_ref(b));
        }
        finish_transfers(&mut h);
        whole == observe(&mut h)
    }
    tests(200).quickcheck(prop as fn(Script) -> bool);
}

#[test]
fn chunking_example_with_a_transfer_in_the_middle() {
    // A fixed script that goes through login, a listing, a download and an upload, cut at
    // every possible single point.
    let input = b"USER alice\r\nPASS secret\r\nTYPE I\r\nEPSV\r\nLIST -la\r\nPASV\r\nRETR big.bin\r\nEPSV\r\nSTOR up.bin\r\nSIZE up.bin\r\nQUIT\r\n";
    let whole = run_chunked(input, &[]);
    assert!(whole.closed);
    assert!(String::from_utf8_lossy(&whole.replies).contains("226 Transfer complete (5000 bytes)."));
    for cut in 0..=input.len() {
        assert_eq!(run_chunked(input, &[cut]), whole, "cut at {cut}");
    }
}

// (b) -------------------------------------------------------------------------------------------

#[test]
fn every_reply_is_well_formed() {
    fn prop(script: Script, hold: bool) -> TestResult {
        let mut h = world();
        h.set_hold_transfers(hold);
        let mut all = h.take_replies();
        if script.login {
            h.send(b"USER alice\r\nPASS secret\r\n");
        }
        for line in &script.lines {
            h.send(&line.0);
            all.extend(h.take_replies());
        }
        finish_transfers(&mut h);
        // Also the timeouts: the idle timeout closes every session that is still open.
        h.advance(std::time::Duration::from_secs(3600));
        all.extend(h.take_replies());
        for r in &all {
            if let Err(e) = check_reply(r) {
                return TestResult::error(e);
            }
        }
        if !h.anomalies().is_empty() {
            return TestResult::error(format!("runtime API misused: {:?}", h.anomalies()));
        }
        if !h.is_closed() && !h.transfer_running() {
            return TestResult::error("an hour of silence did not time the session out");
        }
        TestResult::passed()
    }
    tests(500).quickcheck(prop as fn(Script, bool) -> TestResult);
}

#[test]
fn feat_and_mlst_bodies_are_the_only_space_lines() {
    let mut h = world();
    h.take_replies();
    h.login("alice", "secret").unwrap();
    for cmd in [
        "FEAT",
        "MLST a.txt",
        "HELP",
        "STAT",
        "STAT dir",
        "SITE HELP",
    ] {
        for r in h.command(cmd) {
            check_reply(&r).unwrap();
            let space_lines = r
                .as_str()
                .split("\r\n")
                .filter(|l| l.starts_with(' '))
                .count();
            match cmd {
                "FEAT" | "MLST a.txt" => assert!(space_lines > 0, "{cmd}: {r}"),
                _ => assert_eq!(space_lines, 0, "{cmd}: {r}"),
            }
        }
    }
}

// (c) -------------------------------------------------------------------------------------------

const COMPONENTS: &[&str] = &[
    "..", "..", "..", ".", "", "a", "b", "c", "x y", "ünï", "q\"uote", "missing", "~", "file.txt",
];

#[derive(Clone, Debug)]
enum PathOp {
    Cwd(String),
    Cdup,
    Xcup,
}

impl Arbitrary for PathOp {
    fn arbitrary(g: &mut Gen) -> PathOp {
        match below(g, 6) {
            0 => PathOp::Cdup,
            1 => PathOp::Xcup,
            _ => {
                let n = 1 + below(g, 6);
                let parts: Vec<&str> = (0..n).map(|_| *pick(g, COMPONENTS)).collect();
                let mut s = parts.join("/");
                if bool::arbitrary(g) {
                    s.insert(0, '/');
                }
                if bool::arbitrary(g) {
                    s.push('/');
                }
                PathOp::Cwd(s)
            }
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = PathOp>> {
        match self {
            PathOp::Cwd(s) => Box::new(s.shrink().map(PathOp::Cwd)),
            _ => quickcheck::empty_shrinker(),
        }
    }
}

/// A chroot as a shell sees it: the directory a CWD argument leads to, clamped at `/`.
fn model_resolve(cwd: &[String], arg: &str) -> Vec<String> {
    let mut out: Vec<String> = if arg.starts_with('/') || arg == "~" || arg.starts_with("~/") {
        Vec::new()
    } else {
        cwd.to_vec()
    };
    let rest = arg
        .strip_prefix("~/")
        .unwrap_or(if arg == "~" { "" } else { arg });
    for part in rest.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            p => out.push(p.to_owned()),
        }
    }
    out
}

fn as_path(parts: &[String]) -> String {
    format!("/{}", parts.join("/"))
}

/// Parses the path out of `257 "<path>" ...`, undoubling `""`.
fn path_of_257(reply: &str) -> Option<String> {
    let rest = reply.strip_prefix("257 \"")?;
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' {
            if chars.peek() == Some(&'"') {
                chars.next();
                out.push('"');
            } else {
                return Some(out);
            }
        } else {
            out.push(c);
        }
    }
    None
}

#[test]
fn path_resolution_never_escapes_the_root() {
    fn prop(ops: Vec<PathOp>) -> TestResult {
        let mut fs = MemFs::new();
        for d in ["/a/b/c", "/a/x y", "/ünï/a", "/q\"uote/b", "/b/a/b"] {
            fs.mkdir_all(d).unwrap();
        }
        fs.write_file("/a/file.txt", "not a directory").unwrap();
        let mut h = Harness::builder()
            .user("alice", "secret", true)
            .fs(fs)
            .start(Instant::now());
        h.take_replies();
        h.login("alice", "secret").unwrap();
        let mut model: Vec<String> = Vec::new();
        for op in &ops {
            match op {
                PathOp::Cwd(arg) => {
                    let target = model_resolve(&model, arg);
                    let ok = h.fs.is_dir(&as_path(&target));
                    let text = h.command_text(&format!("CWD {arg}"));
                    if arg.is_empty() {
                        continue;
                    }
                    match (ok, text.starts_with("250 ")) {
                        (true, true) => model = target,
                        (false, false) => {}
                        _ => {
                            return TestResult::error(format!(
                                "CWD {arg:?} from {:?}: {text:?}, model says exists={ok}",
                                as_path(&model)
                            ))
                        }
                    }
                }
                PathOp::Cdup | PathOp::Xcup => {
                    let verb = if matches!(op, PathOp::Cdup) {
                        "CDUP"
                    } else {
                        "XCUP"
                    };
                    let text = h.command_text(verb);
                    if !text.starts_with("200 ") {
                        return TestResult::error(format!("{verb}: {text:?}"));
                    }
                    model.pop();
                }
            }
            let pwd = h.command_text("PWD");
            let Some(path) = path_of_257(&pwd) else {
                return TestResult::error(format!("PWD: {pwd:?}"));
            };
            if !h.fs.is_dir(&path) {
                return TestResult::error(format!("PWD {path:?} is not a directory of the tree"));
            }
            if path != as_path(&model) {
                return TestResult::error(format!(
                    "PWD {path:?}, the model says {:?}",
                    as_path(&model)
                ));
            }
            if path.split('/').any(|c| c == ".." || c == ".") || path.contains("//") {
                return TestResult::error(format!("PWD {path:?} is not normalised"));
            }
        }
        TestResult::passed()
    }
    tests(300).quickcheck(prop as fn(Vec<PathOp>) -> TestResult);
}

// (d) -------------------------------------------------------------------------------------------

fn logged_in(peer: SocketAddr, local: SocketAddr) -> Harness {
    let mut h = Harness::builder()
        .user("alice", "secret", true)
        .files(|fs| fs.write_file("/a.txt", "x").unwrap())
        .peer(peer)
        .local(local)
        .start(Instant::now());
    h.take_replies();
    h.login("alice", "secret").unwrap();
    h
}

/// A loopback IPv4 address from three random bytes (127.0.0.0/8 only).
fn loopback_v4(b: [u8; 3]) -> Ipv4Addr {
    Ipv4Addr::new(127, b[0], b[1], b[2].max(1))
}

#[test]
fn port_formatted_by_a_client_is_the_transfer_endpoint() {
    fn prop(peer: (u8, u8, u8), port: u16, other: (u8, u8, u8)) -> bool {
        let peer_ip = loopback_v4([peer.0, peer.1, peer.2]);
        let mut h = logged_in(
            SocketAddr::new(IpAddr::V4(peer_ip), 40_000),
            "127.0.0.1:2121".parse().unwrap(),
        );
        let target = SocketAddrV4::new(peer_ip, port);
        let text = h.command_text(&format!("PORT {}", addr::format_port(target)));
        if port < 1024 {
            return text.starts_with("500 ") && text.contains("below 1024");
        }
        if !text.starts_with("200 ") {
            return false;
        }
        let list = h.command_text("NLST");
        let ok = list.starts_with("150 ")
            && h.last_transfer().map(|t| t.endpoint)
                == Some(DataEndpoint::Active(SocketAddr::V4(target)));
        // Another address, however close, is refused.
        let other_ip = loopback_v4([other.0, other.1, other.2]);
        let refused = other_ip == peer_ip || {
            let t = SocketAddrV4::new(other_ip, 5000);
            h.command_text(&format!("PORT {}", addr::format_port(t)))
                .starts_with("500 ")
        };
        ok && refused
    }
    tests(200).quickcheck(prop as fn((u8, u8, u8), u16, (u8, u8, u8)) -> bool);
}

#[test]
fn eprt_formatted_by_a_client_is_the_transfer_endpoint() {
    fn prop(v4: (u8, u8, u8), six: bool, port: u16) -> TestResult {
        let port = port.max(1024);
        let ip = if six {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        } else {
            IpAddr::V4(loopback_v4([v4.0, v4.1, v4.2]))
        };
        let local = if six { "[::1]:2121" } else { "127.0.0.1:2121" };
        let mut h = logged_in(SocketAddr::new(ip, 40_000), local.parse().unwrap());
        let target = SocketAddr::new(ip, port);
        let text = h.command_text(&format!("EPRT {}", addr::format_eprt(target)));
        if !text.starts_with("200 ") {
            return TestResult::error(format!("EPRT {target}: {text:?}"));
        }
        h.command_text("NLST");
        let got = h.last_transfer().map(|t| t.endpoint);
        if got != Some(DataEndpoint::Active(target)) {
            return TestResult::error(format!("EPRT {target}: transfer used {got:?}"));
        }
        TestResult::passed()
    }
    tests(200).quickcheck(prop as fn((u8, u8, u8), bool, u16) -> TestResult);
}

#[test]
fn pasv_and_epsv_replies_parse_back_to_the_listener() {
    fn prop(local: (u8, u8, u8), advertised: Option<(u8, u8, u8)>, epsv: bool) -> TestResult {
        let local_ip = loopback_v4([local.0, local.1, local.2]);
        let adv = advertised.map(|a| loopback_v4([a.0, a.1, a.2]));
        let mut h = Harness::builder()
            .user("alice", "secret", true)
            .local(SocketAddr::new(IpAddr::V4(local_ip), 2121))
            .config(|c| c.passive_address = adv.map(IpAddr::V4))
            .start(Instant::now());
        h.take_replies();
        h.login("alice", "secret").unwrap();
        // Several in a row: each reply names the listener just opened.
        for _ in 0..3 {
            let cmd = if epsv { "EPSV" } else { "PASV" };
            let text = h.command_text(cmd);
            let Some(listener) = h.listener() else {
                return TestResult::error(format!("{cmd}: {text:?} but no listener"));
            };
            if listener.ip != IpAddr::V4(local_ip) {
                return TestResult::error(format!("listening on {} not {local_ip}", listener.ip));
            }
            let body = text.trim_end().get(4..).unwrap_or("");
            if epsv {
                if !text.starts_with("229 ") || addr::parse_epsv_reply(body) != Ok(listener.port) {
                    return TestResult::error(format!("EPSV: {text:?} vs {listener:?}"));
                }
            } else {
                let want = SocketAddrV4::new(adv.unwrap_or(local_ip), listener.port);
                if !text.starts_with("227 ") || addr::parse_pasv_reply(body) != Ok(want) {
                    return TestResult::error(format!("PASV: {text:?}, expected {want}"));
                }
            }
        }
        TestResult::passed()
    }
    tests(200).quickcheck(prop as fn((u8, u8, u8), Option<(u8, u8, u8)>, bool) -> TestResult);
}
