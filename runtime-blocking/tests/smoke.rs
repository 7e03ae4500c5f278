//! Smoke tests of the real `wharf` binary on loopback, talking raw FTP over TcpStream.
//!
//! Each test starts its own server on 127.0.0.1:0 with its own root folder, reads the
//! `listening on ftp://...` line, and kills the server at the end. Every socket has a
//! timeout; every wait is bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(20);

/// A running server, killed on drop, and its folder.
struct Server {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
    lines: Vec<String>,
}

impl Server {
    fn start(tag: &str, extra: &[&str]) -> Server {
        let dir = temp_dir(tag);
        let root = dir.join("root");
        let mut args = vec![
            "serve".to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--root".into(),
            root.to_str().unwrap().into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Server::start_with(dir, &args)
    }

    fn start_with(dir: PathBuf, args: &[String]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wharf"))
            .args(args)
            .current_dir(&dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start wharf");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        let deadline = Instant::now() + TIMEOUT;
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => {
                    let _ = child.kill();
                    panic!("no 'listening on' line from wharf; got {lines:?}");
                }
            };
            lines.push(line.clone());
            if let Some(a) = line.strip_prefix("listening on ftp://") {
                break a.parse().unwrap();
            }
        };
        Server {
            child,
            addr,
            dir,
            lines,
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    fn login(&self) -> Client {
        let mut c = self.connect();
        c.expect(220);
        c.cmd("USER alice", 331);
        c.cmd("PASS secret", 230);
        c
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wharf-smoke-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("root")).unwrap();
    d
}

/// A raw FTP control connection.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.set_write_timeout(Some(TIMEOUT)).unwrap();
        Client {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        }
    }

    /// Reads one reply (all lines of a multi-line one); returns its code and text.
    fn reply(&mut self) -> (u16, String) {
        let mut text = String::new();
        let mut first = String::new();
        self.reader.read_line(&mut first).expect("read reply");
        assert!(first.len() >= 4, "short reply line {first:?}");
        let code: u16 = first[..3].parse().expect("reply code");
        text.push_str(&first);
        if first.as_bytes()[3] == b'-' {
            loop {
                let mut line = String::new();
                let n = self.reader.read_line(&mut line).expect("read reply");
                assert!(n > 0, "connection closed inside a multi-line reply");
                text.push_str(&line);
                if line.len() >= 4 && line.starts_with(&first[..3]) && line.as_bytes()[3] == b' ' {
                    break;
                }
            }
        }
        (code, text)
    }

    fn expect(&mut self, code: u16) -> String {
        let (got, text) = self.reply();
        assert_eq!(got, code, "expected {code}, got {text:?}");
        text
    }

    fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
    }

    fn cmd(&mut self, line: &str, code: u16) -> String {
        self.send(line);
        self.expect(code)
    }

    /// PASV, and a connection to the port it names.
    fn pasv(&mut self) -> TcpStream {
        let text = self.cmd("PASV", 227);
        let inner = &text[text.find('(').unwrap() + 1..text.find(')').unwrap()];
        let n: Vec<u16> = inner
            .split(',')
            .map(|x| x.trim().parse().unwrap())
            .collect();
        let addr = SocketAddr::from((
            [n[0] as u8, n[1] as u8, n[2] as u8, n[3] as u8],
            n[4] * 256 + n[5],
        ));
        data_stream(TcpStream::connect_timeout(&addr, TIMEOUT).unwrap())
    }

    /// EPSV, and a connection to the port it names.
    fn epsv(&mut self, host: SocketAddr) -> TcpStream {
        let text = self.cmd("EPSV", 229);
        let inner = &text[text.find("(|||").unwrap() + 4..text.find("|)").unwrap()];
        let addr = SocketAddr::new(host.ip(), inner.parse().unwrap());
        data_stream(TcpStream::connect_timeout(&addr, TIMEOUT).unwrap())
    }
}

fn data_stream(s: TcpStream) -> TcpStream {
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    s
}

fn read_all(mut s: TcpStream) -> Vec<u8> {
    let mut v = Vec::new();
    s.read_to_end(&mut v).unwrap();
    v
}

/// Deterministic bytes that do not compress or repeat in short cycles.
fn pseudo_random(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

#[test]
fn login_pasv_and_list() {
    let server = Server::start("list", &["--user", "alice:secret"]);
    std::fs::write(server.root().join("report 2026.csv"), b"a,b\n").unwrap();
    let mut c = server.connect();
    let greeting = c.expect(220);
    assert!(greeting.contains("Wharf"), "{greeting}");
    c.cmd("USER alice", 331);
    c.cmd("PASS wrong", 530);
    c.cmd("USER nobody", 331);
    c.cmd("PASS secret", 530);
    c.cmd("USER alice", 331);
    c.cmd("PASS secret", 230);
    c.cmd("SYST", 215);
    let d = c.pasv();
    c.cmd("LIST", 150);
    let listing = String::from_utf8(read_all(d)).unwrap();
    c.expect(226);
    assert!(listing.contains("report 2026.csv"), "{listing}");
    assert!(listing.starts_with("-rw"), "{listing}");
    let d = c.epsv(server.addr);
    c.cmd("NLST", 150);
    assert_eq!(read_all(d), b"report 2026.csv\r\n");
    c.expect(226);
    c.cmd("QUIT", 221);
}

#[test]
fn stor_retr_round_trip() {
    let server = Server::start("roundtrip", &["--user", "alice:secret"]);
    let mut c = server.login();
    c.cmd("TYPE I", 200);
    let data = pseudo_random(3_000_000, 7);
    let mut d = c.pasv();
    c.cmd("STOR blob.bin", 150);
    d.write_all(&data).unwrap();
    drop(d);
    c.expect(226);
    assert_eq!(std::fs::read(server.root().join("blob.bin")).unwrap(), data);
    c.cmd("SIZE blob.bin", 213);
    // Back over EPSV (sendfile path), then from an offset.
    let d = c.epsv(server.addr);
    c.cmd("RETR blob.bin", 150);
    assert!(read_all(d) == data, "RETR returned other bytes");
    c.expect(226);
    let d = c.pasv();
    c.cmd("REST 2999000", 350);
    c.cmd("RETR blob.bin", 150);
    assert_eq!(read_all(d), &data[2_999_000..]);
    c.expect(226);
    // Active mode: the server connects to us.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    c.cmd(
        &format!("PORT 127,0,0,1,{},{}", port >> 8, port & 0xff),
        200,
    );
    c.cmd("RETR blob.bin", 150);
    let (s, _) = l.accept().unwrap();
    assert!(
        read_all(data_stream(s)) == data,
        "active RETR returned other bytes"
    );
    c.expect(226);
    // TYPE A: CRLF on the wire, LF on disk.
    c.cmd("TYPE A", 200);
    let mut d = c.pasv();
    c.cmd("STOR text.txt", 150);
    d.write_all(b"one\r\ntwo\r\n").unwrap();
    drop(d);
    c.expect(226);
    assert_eq!(
        std::fs::read(server.root().join("text.txt")).unwrap(),
        b"one\ntwo\n"
    );
    let d = c.pasv();
    c.cmd("RETR text.txt", 150);
    assert_eq!(read_all(d), b"one\r\ntwo\r\n");
    c.expect(226);
    // A missing file: 550 before any data moves.
    let _d = c.pasv();
    c.cmd("RETR missing", 550);
    c.cmd("QUIT", 221);
}

/// Starts a RETR of a large file, stops reading so the server blocks, then checks that
/// STAT and NOOP are answered and that ABOR (sent as `abor_line`) stops it with 426 + 226.
fn abort_mid_retr(tag: &str, abor_line: &[u8]) {
    let server = Server::start(tag, &["--user", "alice:secret"]);
    let big = std::fs::File::create(server.root().join("big.bin")).unwrap();
    big.set_len(2 * 1024 * 1024 * 1024).unwrap(); // sparse: costs no disk
    drop(big);
    let mut c = server.login();
    c.cmd("TYPE I", 200);
    let mut d = c.pasv();
    c.cmd("RETR big.bin", 150);
    let mut buf = vec![0u8; 65536];
    d.read_exact(&mut buf).unwrap();
    // The client stops reading: the server's sends block; it must still answer.
    std::thread::sleep(Duration::from_millis(300));
    let status = c.cmd("STAT", 213);
    assert!(status.contains("big.bin"), "{status}");
    c.cmd("NOOP", 200);
    let t = Instant::now();
    c.writer.write_all(abor_line).unwrap();
    c.expect(426);
    c.expect(226);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "ABOR took {:?}",
        t.elapsed()
    );
    // The data connection is closed by the server: reading ends (EOF or reset) soon.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match d.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => assert!(Instant::now() < deadline, "data connection stays open"),
        }
    }
    // The session goes on.
    c.cmd("NOOP", 200);
    let d = c.pasv();
    c.cmd("NLST", 150);
    assert_eq!(read_all(d), b"big.bin\r\n");
    c.expect(226);
}

#[test]
fn abor_mid_retr() {
    abort_mid_retr("abor", b"ABOR\r\n");
}

#[test]
fn abor_as_python_ftplib_sends_it() {
    // ftplib sends "ABOR\r\n" with MSG_OOB; the kernel takes the urgent "\n" out of the
    // stream, so the server reads "ABOR\r". Telnet IP/DM before it, as RFC 959 suggests.
    abort_mid_retr("abor-oob", b"\xff\xf4\xff\xf2ABOR\r");
}

#[test]
fn connections_beyond_the_limit_get_421() {
    let server = Server::start(
        "limit",
        &["--user", "alice:secret", "--max-connections", "2"],
    );
    let mut a = server.connect();
    a.expect(220);
    let mut b = server.connect();
    b.expect(220);
    let mut c = server.connect();
    let (code, text) = c.reply();
    assert_eq!(code, 421, "{text}");
    assert_eq!(text, "421 Too many connections (2); try again later.\r\n");
    // And it is closed at once.
    let mut rest = String::new();
    assert_eq!(c.reader.read_line(&mut rest).unwrap_or(0), 0);
    // A freed slot is available again.
    a.cmd("QUIT", 221);
    drop(a);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let mut d = server.connect();
        match d.reply().0 {
            220 => break,
            421 => assert!(Instant::now() < deadline, "the slot was never freed"),
            other => panic!("unexpected {other}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    b.cmd("NOOP", 200);
}

#[test]
fn connections_beyond_the_per_address_limit_get_421() {
    let server = Server::start(
        "per-ip",
        &["--user", "alice:secret", "--max-connections-per-ip", "1"],
    );
    let mut a = server.connect();
    a.expect(220);
    let mut b = server.connect();
    let (code, text) = b.reply();
    assert_eq!(code, 421, "{text}");
    assert_eq!(text, "421 Too many connections (1); try again later.\r\n");
    a.cmd("NOOP", 200);
}

#[test]
fn generated_user_and_anonymous() {
    let server = Server::start("generated", &["--anonymous"]);
    let user = server.lines.iter().find_map(|l| l.strip_prefix("user: "));
    let pw = server
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("password: "));
    let (user, pw) = (user.expect("user line"), pw.expect("password line"));
    assert!(pw.len() >= 16);
    let mut c = server.connect();
    c.expect(220);
    c.cmd(&format!("USER {user}"), 331);
    c.cmd(&format!("PASS {pw}"), 230);
    c.cmd("MKD inbox", 257);
    assert!(server.root().join("inbox").is_dir());
    let mut anon = server.connect();
    anon.expect(220);
    anon.cmd("USER anonymous", 331);
    anon.cmd("PASS guest@example.com", 230);
    anon.cmd("CWD inbox", 250);
    let _d = anon.pasv();
    anon.cmd("STOR x", 550);
    anon.cmd("MKD y", 550);
}

#[test]
fn symlink_out_of_the_root_is_refused() {
    let server = Server::start("symlink", &["--user", "alice:secret"]);
    let outside = server.dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), b"secret").unwrap();
    std::os::unix::fs::symlink(&outside, server.root().join("escape")).unwrap();
    let mut c = server.login();
    c.cmd("CWD escape", 550);
    let _d = c.pasv();
    c.cmd("RETR escape/secret.txt", 550);
    c.cmd("RETR ../outside/secret.txt", 550);
    c.cmd("SIZE /escape/secret.txt", 550);
    c.cmd("DELE escape/secret.txt", 550);
    assert!(outside.join("secret.txt").exists());
}

#[test]
fn config_file_users_and_check_config() {
    let dir = temp_dir("config");
    let wharf = env!("CARGO_BIN_EXE_wharf");
    // A users file made by `wharf user add`.
    let mut add = Command::new(wharf)
        .args([
            "user",
            "add",
            "bob",
            "--home",
            "bob-home",
            "--password-stdin",
        ])
        .args(["--users", "users.toml"])
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    add.stdin.take().unwrap().write_all(b"b0b pass\n").unwrap();
    assert!(add.wait().unwrap().success());
    let users = std::fs::read_to_string(dir.join("users.toml")).unwrap();
    assert!(
        users.contains("$argon2id$") && !users.contains("b0b pass"),
        "{users}"
    );
    std::fs::write(
        dir.join("wharf.toml"),
        "users_file = \"users.toml\"\nlisten = [\"127.0.0.1:0\"]\nmax_login_failures = 1\n",
    )
    .unwrap();
    let check = |file: &str| {
        Command::new(wharf)
            .args(["check-config", file])
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let ok = check("wharf.toml");
    assert!(ok.status.success());
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "ok");
    std::fs::write(
        dir.join("bad.toml"),
        "passive_ports = \"5-3\"\nidle_timeout_secs = -1\nmystery = true\n",
    )
    .unwrap();
    let bad = check("bad.toml");
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    for want in [
        "bad.toml: key 'passive_ports': '5-3': the range runs backwards (5 > 3)",
        "bad.toml: key 'idle_timeout_secs': -1 is out of range",
        "bad.toml: key 'mystery': unknown key",
    ] {
        assert!(err.contains(want), "missing {want:?} in {err}");
    }
    // The server with that config: bob logs in to his home.
    let args: Vec<String> = ["serve", "--config", "wharf.toml"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let server = Server::start_with(dir.clone(), &args);
    assert!(!server.lines.iter().any(|l| l.starts_with("password:")));
    let mut c = server.connect();
    c.expect(220);
    c.cmd("USER bob", 331);
    c.cmd("PASS b0b pass", 230);
    c.cmd("MKD made-by-bob", 257);
    assert!(Path::new(&dir.join("bob-home/made-by-bob")).is_dir());
    // max_login_failures = 1: one failure closes the connection.
    let mut c = server.connect();
    c.expect(220);
    c.cmd("USER bob", 331);
    c.cmd("PASS nope", 530);
    c.expect(421);
}

#[test]
fn bounded_waits_on_data_connections_and_idle_sessions() {
    let dir = temp_dir("timeouts");
    std::fs::write(
        dir.join("wharf.toml"),
        "listen = [\"127.0.0.1:0\"]\nroot = \"root\"\ndata_connect_timeout_secs = 1\n\
         data_stall_timeout_secs = 1\nidle_timeout_secs = 2\n",
    )
    .unwrap();
    let big = std::fs::File::create(dir.join("root/big.bin")).unwrap();
    big.set_len(1024 * 1024 * 1024).unwrap();
    drop(big);
    let args: Vec<String> = ["serve", "--config", "wharf.toml", "--user", "alice:secret"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let server = Server::start_with(dir, &args);
    let mut c = server.login();
    c.cmd("TYPE I", 200);
    // PASV, then nobody connects: 425 after the connect timeout.
    c.cmd("PASV", 227);
    let t = Instant::now();
    c.send("RETR big.bin");
    let text = c.expect(425);
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    assert!(text.contains("did not connect"), "{text}");
    // An upload whose data connection never comes leaves the existing file alone.
    std::fs::write(server.root().join("keep.txt"), b"precious").unwrap();
    c.cmd("PASV", 227);
    c.send("STOR keep.txt");
    c.expect(425);
    assert_eq!(
        std::fs::read(server.root().join("keep.txt")).unwrap(),
        b"precious"
    );
    // A client that stops reading: 426 once no byte moved for the stall timeout.
    let _d = c.pasv();
    c.cmd("RETR big.bin", 150);
    let text = c.expect(426);
    assert!(text.contains("no data moved"), "{text}");
    // Nothing more: the idle timeout closes the session with 421.
    let t = Instant::now();
    let (code, _) = c.reply();
    assert_eq!(code, 421);
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
    let mut rest = String::new();
    assert_eq!(c.reader.read_line(&mut rest).unwrap_or(0), 0);
}
