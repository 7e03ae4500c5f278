//! End to end, security: the root cannot be left with `..`, absolute paths or symlinks; PORT and
//! EPRT cannot aim the server at another address (FTP bounce); a passive data connection from
//! another address gets nothing (port theft); an over-long command line gets 500 and the server
//! goes on serving.

use std::io::{self, BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};
use wharf_tests::e2e::{
    random_bytes, read_file, read_to_end_timeout, require, write_file, Ctrl, Reply, Server,
    IO_TIMEOUT,
};

const SECRET: &[u8] = b"TOP SECRET: outside the FTP root";

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A command that must be refused with a 5xx reply (and, for transfers, send no data).
fn refused(c: &mut Ctrl, command: &str) {
    let (first, data) = c.transfer_in_or_cmd(command);
    assert!(
        (500..600).contains(&first.code),
        "{command} must be refused with 5xx, got: {first}"
    );
    assert!(!contains(&data, SECRET), "{command} leaked the secret");
}

trait CtrlExt {
    fn transfer_in_or_cmd(&mut self, command: &str) -> (Reply, Vec<u8>);
    fn listing(&mut self, command: &str) -> String;
}

impl CtrlExt for Ctrl {
    /// Data commands go through PASV (uploads send a few bytes); others are sent as they are.
    /// Returns the first reply and the data received.
    fn transfer_in_or_cmd(&mut self, command: &str) -> (Reply, Vec<u8>) {
        let verb = command.split(' ').next().unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "RETR" | "LIST" | "NLST" | "MLSD" => {
                let (first, data, _last) = self.transfer_in(command);
                (first, data)
            }
            "STOR" | "APPE" | "STOU" => {
                let (first, _last) = self.transfer_out(command, b"written by the test\n");
                (first, Vec::new())
            }
            _ => (self.cmd(command), Vec::new()),
        }
    }

    /// A listing that must succeed; its text.
    fn listing(&mut self, command: &str) -> String {
        let (first, data, last) = self.transfer_in(command);
        assert_eq!(first.code / 100, 1, "{command}: {first}");
        assert_eq!(last.code, 226, "{command}: {last}");
        String::from_utf8_lossy(&data).into_owned()
    }
}

fn assert_root_listing(text: &str, how: &str) {
    assert!(
        text.contains("marker-root.txt"),
        "{how}: the listing is not the FTP root:\n{text}"
    );
    for leak in ["outside.txt", "server.stderr", "passwd", "bin"] {
        assert!(
            !text.lines().any(|l| l.ends_with(leak)),
            "{how}: the listing shows {leak:?} from outside the root:\n{text}"
        );
    }
}

#[test]
fn dotdot_and_absolute_paths_cannot_leave_the_root() {
    let server = Server::start("sec-dotdot");
    write_file(server.root().join("marker-root.txt"), b"inside\n");
    write_file(server.root().join("sub/inner.txt"), b"inner\n");
    let outside = server.dir().join("outside.txt");
    write_file(&outside, SECRET);

    let mut c = server.login();
    assert_eq!(c.cmd("TYPE I").code, 200);
    for cmd in [
        "RETR ../../etc/passwd",
        "RETR /etc/passwd",
        "RETR ../outside.txt",
        "RETR /../outside.txt",
        "RETR sub/../../outside.txt",
        "RETR ..%2foutside.txt",
        "SIZE ../outside.txt",
        "MDTM ../outside.txt",
        "CWD /etc",
        "DELE ../outside.txt",
        "RNFR ../outside.txt",
    ] {
        refused(&mut c, cmd);
    }
    assert_eq!(
        read_file(&outside),
        SECRET,
        "DELE/RNFR touched a file outside"
    );

    for cwd in ["/..", "../..", "sub/../../..", "/../../../"] {
        let r = c.cmd(&format!("CWD {cwd}"));
        assert!(
            r.code == 250 || (500..600).contains(&r.code),
            "CWD {cwd}: {r}"
        );
        let pwd = c.cmd("PWD");
        assert_eq!(pwd.code, 257, "PWD: {pwd}");
        assert!(
            pwd.text().starts_with("\"/\""),
            "CWD {cwd} left PWD at {pwd}"
        );
        let list = c.listing("LIST");
        assert_root_listing(&list, &format!("LIST after CWD {cwd}"));
        let nlst = c.listing("NLST");
        assert_root_listing(&nlst, &format!("NLST after CWD {cwd}"));
    }
    for target in ["..", "../..", "/..", "/../.."] {
        let (first, data, last) = c.transfer_in(&format!("LIST {target}"));
        if first.code / 100 == 1 {
            assert_eq!(last.code, 226, "LIST {target}: {last}");
            assert_root_listing(&String::from_utf8_lossy(&data), &format!("LIST {target}"));
        } else {
            assert!((500..600).contains(&first.code), "LIST {target}: {first}");
        }
    }

    // Writes aimed outside land inside the root or nowhere.
    let _ = c.transfer_in_or_cmd("STOR ../escaped.txt");
    let _ = c.transfer_in_or_cmd("APPE ../../escaped.txt");
    let _ = c.cmd("MKD ../escaped-dir");
    assert_eq!(c.cmd("RNFR marker-root.txt").code, 350);
    let _ = c.cmd("RNTO ../moved.txt");
    for p in ["escaped.txt", "escaped-dir", "moved.txt"] {
        assert!(
            !server.dir().join(p).exists(),
            "a write escaped the root: {p} exists next to it"
        );
    }
    assert_eq!(c.cmd("NOOP").code, 200);
}

#[test]
fn symlinks_leading_out_of_the_root_are_refused() {
    let server = Server::start("sec-symlink");
    let outside_file = server.dir().join("outside-file.txt");
    let outside_dir = server.dir().join("outside-dir");
    write_file(&outside_file, SECRET);
    write_file(outside_dir.join("secret.txt"), SECRET);
    write_file(server.root().join("ok.txt"), b"fine\n");
    std::os::unix::fs::symlink(&outside_file, server.root().join("link-file")).unwrap();
    std::os::unix::fs::symlink(&outside_dir, server.root().join("link-dir")).unwrap();

    let mut c = server.login();
    assert_eq!(c.cmd("TYPE I").code, 200);
    for cmd in [
        "RETR link-file",
        "RETR link-dir/secret.txt",
        "RETR /link-dir/secret.txt",
        "CWD link-dir",
        "SIZE link-file",
        "SIZE link-dir/secret.txt",
    ] {
        refused(&mut c, cmd);
    }
    assert_eq!(c.cmd("PWD").text(), "\"/\" is the current directory.");
    for cmd in [
        "LIST link-dir",
        "NLST link-dir",
        "MLSD link-dir",
        "STAT link-dir",
    ] {
        let (first, data) = c.transfer_in_or_cmd(cmd);
        let text = format!("{first}\n{}", String::from_utf8_lossy(&data));
        assert!(
            !text.contains("secret.txt"),
            "{cmd} listed the folder outside the root:\n{text}"
        );
    }
    // Writing through the links does not reach outside either.
    let _ = c.transfer_in_or_cmd("STOR link-dir/new.txt");
    let (first, _) = c.transfer_in_or_cmd("DELE link-dir/secret.txt");
    assert!(first.code >= 500, "DELE through a symlink: {first}");
    assert!(
        !outside_dir.join("new.txt").exists(),
        "STOR went through the symlink"
    );
    assert_eq!(read_file(outside_dir.join("secret.txt")), SECRET);
    assert_eq!(read_file(&outside_file), SECRET);

    // The session still serves files inside the root.
    let (first, data, last) = c.transfer_in("RETR ok.txt");
    assert_eq!((first.code, last.code), (150, 226), "{first} / {last}");
    assert_eq!(data, b"fine\n");
}

/// Waits at most `wait` for a connection on a listener (polled without blocking).
fn accepts_within(l: &TcpListener, wait: Duration) -> Option<(TcpStream, SocketAddr)> {
    l.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        match l.accept() {
            Ok((s, peer)) => {
                s.set_nonblocking(false).unwrap();
                return Some((s, peer));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    None
}

fn port_arg(a: SocketAddr) -> String {
    let ip = match a {
        SocketAddr::V4(v4) => v4.ip().octets(),
        SocketAddr::V6(_) => unreachable!("IPv4 only"),
    };
    let p = a.port();
    format!(
        "{},{},{},{},{},{}",
        ip[0],
        ip[1],
        ip[2],
        ip[3],
        p >> 8,
        p & 0xff
    )
}

#[test]
fn port_and_eprt_to_another_address_are_refused() {
    let server = Server::start("sec-bounce");
    write_file(server.root().join("f.txt"), b"data\n");
    let mut c = server.login();

    let victim = TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    let target = victim.local_addr().unwrap();
    let r = c.cmd(&format!("PORT {}", port_arg(target)));
    assert!((500..600).contains(&r.code), "PORT to {target}: {r}");
    let r = c.cmd("RETR f.txt");
    assert_ne!(r.code / 100, 1, "RETR after a refused PORT started: {r}");
    let r = c.cmd(&format!("EPRT |1|127.0.0.2|{}|", target.port()));
    assert!((500..600).contains(&r.code), "EPRT to {target}: {r}");
    let r = c.cmd("LIST");
    assert_ne!(r.code / 100, 1, "LIST after a refused EPRT started: {r}");
    if let Some((_, peer)) = accepts_within(&victim, Duration::from_millis(1500)) {
        panic!("the server connected to {target} from {peer}: FTP bounce");
    }

    // A privileged port on the client's own address is refused too.
    let r = c.cmd("PORT 127,0,0,1,0,80");
    assert!((500..600).contains(&r.code), "PORT to port 80: {r}");

    // Active mode itself works, to the client's own address.
    let own = TcpListener::bind("127.0.0.1:0").unwrap();
    let r = c.cmd(&format!("PORT {}", port_arg(own.local_addr().unwrap())));
    assert_eq!(r.code, 200, "PORT to the client's own address: {r}");
    assert_eq!(c.cmd("TYPE I").code, 200);
    let r = c.cmd("RETR f.txt");
    assert_eq!(r.code, 150, "RETR over PORT: {r}");
    let (data, peer) =
        accepts_within(&own, IO_TIMEOUT).expect("no active data connection from the server");
    assert!(peer.ip().is_loopback(), "active connection from {peer}");
    let bytes = read_to_end_timeout(data, IO_TIMEOUT).unwrap();
    assert_eq!(bytes, b"data\n");
    assert_eq!(c.reply().code, 226);
}

#[test]
fn passive_connection_from_another_address_is_refused() {
    if !require("python3") {
        return;
    }
    let server = Server::start("sec-theft");
    let data = random_bytes(500_000, 31);
    write_file(server.root().join("data.bin"), &data);
    let mut c = server.login();
    assert_eq!(c.cmd("TYPE I").code, 200);
    let pasv = c.pasv();

    // The thief, bound to 127.0.0.2, connects first.
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("e2e/thief.py");
    let mut thief = Command::new("python3")
        .arg(script)
        .arg("127.0.0.2")
        .arg(pasv.ip().to_string())
        .arg(pasv.port().to_string())
        .arg("20")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run thief.py");
    let (tx, rx) = mpsc::channel();
    let out = thief.stdout.take().unwrap();
    thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(20));
    let first = match first {
        Ok(l) => l,
        Err(_) => {
            let _ = thief.kill();
            let _ = thief.wait();
            panic!("thief.py said nothing within 20 s");
        }
    };
    assert!(
        first.starts_with("connected from 127.0.0.2"),
        "the thief could not even connect (test setup?): {first}"
    );

    // The legitimate client connects and transfers.
    let legit = TcpStream::connect_timeout(&pasv, IO_TIMEOUT).expect("legitimate data connection");
    let r = c.cmd("RETR data.bin");
    assert_eq!(r.code, 150, "RETR after a foreign passive connection: {r}");
    let got = read_to_end_timeout(legit, IO_TIMEOUT).expect("read data");
    let r = c.reply();
    assert_eq!(r.code, 226, "end of RETR: {r}");
    assert!(
        got == data,
        "the legitimate client got {} bytes, want {}",
        got.len(),
        data.len()
    );

    let result = rx.recv_timeout(Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(5);
    while matches!(thief.try_wait(), Ok(None)) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let _ = thief.kill();
    let _ = thief.wait();
    let result = result.expect("thief.py gave no result");
    println!("thief: {first}; {result}");
    assert!(
        result == "result closed bytes=0" || result == "result reset bytes=0",
        "the connection from 127.0.0.2 was not refused: {result}"
    );
    assert_eq!(c.cmd("NOOP").code, 200);
}

#[test]
fn a_100kb_command_line_gets_500_and_the_server_goes_on() {
    let server = Server::start("sec-longline");
    let mut c = server.login();
    let mut line = b"NOOP ".to_vec();
    line.extend_from_slice(&[b'A'; 100 * 1024]);
    line.extend_from_slice(b"\r\n");
    c.send_raw(&line);
    let r = c.reply();
    assert_eq!(r.code, 500, "a 100 KB line: {r}");
    let r = c.cmd("NOOP");
    assert_eq!(
        r.code, 200,
        "NOOP after the long line (one reply per line?): {r}"
    );
    assert_eq!(c.cmd("PWD").code, 257);

    // 100 KB of binary junk (no CR, LF or IAC) is a long line too.
    let mut junk: Vec<u8> = random_bytes(100 * 1024, 32)
        .into_iter()
        .map(|b| {
            if matches!(b, b'\r' | b'\n' | 0xff) {
                b'x'
            } else {
                b
            }
        })
        .collect();
    junk.extend_from_slice(b"\r\n");
    c.send_raw(&junk);
    let r = c.reply();
    assert_eq!(r.code, 500, "100 KB of junk: {r}");
    assert_eq!(c.cmd("NOOP").code, 200);

    // Before login as well.
    let mut fresh = Ctrl::connect(server.addr());
    fresh.send_raw(&line);
    assert_eq!(fresh.reply().code, 500);
    fresh.login(wharf_tests::e2e::USER, wharf_tests::e2e::PASSWORD);

    // And a new connection is served as usual.
    let mut other = server.login();
    assert_eq!(other.cmd("NOOP").code, 200);
    assert_eq!(c.cmd("QUIT").code, 221);
}
