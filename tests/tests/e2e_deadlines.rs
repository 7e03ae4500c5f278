//! End to end, deadlines a client cannot stretch (issue 15): the login deadline counts from the
//! connection's start, whatever the client sends before logging in; connections that never log
//! in do not keep real users out for long; a TLS handshake has a total deadline however slowly
//! the client sends its ClientHello (explicit `AUTH TLS` and the implicit listener); a client
//! that never reads its replies is closed by the login deadline, not after minutes of write
//! timeouts.
//!
//! The handshake tests use the documented 30-second limit (there is no setting for it), so
//! each takes about half a minute; they run in parallel with the others.

use std::io::{self, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};
use wharf_tests::e2e::{
    python_scenario, random_bytes, require, write_file, Ctrl, Server, ServerOptions, PASSWORD, USER,
};

/// The login deadline the tests configure.
const LOGIN_TIMEOUT: &str = "login_timeout_secs = 3\n";

/// How a raw connection that kept sending NOOP before logging in ended.
#[derive(Debug)]
struct Ending {
    /// The reply that came instead of a 200, if any (421 expected).
    reply: Option<u16>,
    /// When the server closed the connection, counted from connect.
    closed_after: Duration,
}

/// Connects, then sends NOOP once a second without logging in, until the server answers
/// something else than 200 or closes; `None` if the connection is still open after `limit`.
fn noop_until_closed(server: &Server, limit: Duration) -> Option<Ending> {
    let started = Instant::now();
    let mut c = Ctrl::connect(server.addr());
    while started.elapsed() < limit {
        // A client that keeps the connection busy: one command a second.
        thread::sleep(Duration::from_secs(1));
        let sent = c.try_send("NOOP");
        match c.try_reply() {
            Ok(r) if r.code == 200 && sent.is_ok() => continue,
            Ok(r) => {
                let closed = c.closed_within(Duration::from_secs(5));
                assert!(closed, "not closed after {r}");
                return Some(Ending {
                    reply: Some(r.code),
                    closed_after: started.elapsed(),
                });
            }
            Err(_) => {
                return Some(Ending {
                    reply: None,
                    closed_after: started.elapsed(),
                })
            }
        }
    }
    None
}

#[test]
fn login_deadline_counts_from_connect_not_from_the_last_command() {
    let server = Server::start_with(
        "deadline-login",
        ServerOptions::default().config(LOGIN_TIMEOUT),
    );
    let ending = noop_until_closed(&server, Duration::from_secs(12)).unwrap_or_else(|| {
        panic!(
            "a connection that sent NOOP every second and never logged in was still open \
             after 12 s with login_timeout_secs = 3: commands before login must not extend \
             the login deadline"
        )
    });
    println!("{ending:?}");
    assert_eq!(
        ending.reply,
        Some(421),
        "the login deadline ends with 421: {ending:?}"
    );
    assert!(
        ending.closed_after >= Duration::from_secs(2)
            && ending.closed_after <= Duration::from_secs(6),
        "login_timeout_secs = 3 closed the connection after {:?} (want about 3 s)",
        ending.closed_after
    );
}

#[test]
fn connections_that_never_log_in_do_not_keep_users_out() {
    let server = Server::start_with(
        "deadline-slots",
        ServerOptions::default().config(format!("{LOGIN_TIMEOUT}max_connections = 20\n")),
    );
    let started = Instant::now();
    let mut holders: Vec<Option<Ctrl>> = (0..20)
        .map(|_| Some(Ctrl::connect(server.addr())))
        .collect();
    // The slots are full: one more connection is refused.
    let mut extra = Ctrl::connect_raw(server.addr()).expect("connect");
    let r = extra.try_reply().expect("a reply");
    assert_eq!(r.code, 421, "the 21st connection: {r}");

    // The holders keep sending NOOP every second; a real user tries to log in every second
    // once the login deadline has passed, for up to 10 s after the holders connected.
    let limit = Duration::from_secs(10);
    let mut tries = Vec::new();
    loop {
        thread::sleep(Duration::from_secs(1));
        for slot in holders.iter_mut() {
            if let Some(c) = slot {
                let alive =
                    c.try_send("NOOP").is_ok() && matches!(c.try_reply(), Ok(r) if r.code == 200);
                if !alive {
                    *slot = None;
                }
            }
        }
        if started.elapsed() < Duration::from_secs(3) {
            continue;
        }
        let mut user = Ctrl::connect_raw(server.addr()).expect("connect");
        let greeting = user.try_reply().expect("a greeting or a 421");
        tries.push((started.elapsed(), greeting.code));
        if greeting.code == 220 {
            user.login(USER, PASSWORD);
            assert_eq!(user.cmd("NOOP").code, 200);
            let alive = holders.iter().filter(|h| h.is_some()).count();
            println!(
                "logged in after {:?}; {alive} of the 20 holders still open; tries: {tries:?}",
                started.elapsed()
            );
            return;
        }
        assert!(
            started.elapsed() < limit,
            "20 connections that never log in kept a real user out for {:?} with \
             login_timeout_secs = 3 and max_connections = 20 (tries, each refused: {tries:?}; \
             holders still open: {})",
            started.elapsed(),
            holders.iter().filter(|h| h.is_some()).count()
        );
    }
}

/// Runs slow_handshake.py against `port` in `mode` and returns what it printed; it fails
/// unless the server closed the connection within `limit_secs`.
fn trickle_hello(server: &Server, mode: &str, port: u16, limit_secs: u32) -> String {
    python_scenario(
        "slow_handshake.py",
        server,
        "trickle",
        (USER, PASSWORD),
        &[mode.to_string(), port.to_string(), limit_secs.to_string()],
        Duration::from_secs(u64::from(limit_secs) + 30),
    )
}

/// The TLS handshake limit (30 s, `TLS_HANDSHAKE_TIMEOUT` in runtime-blocking/src/driver/mod.rs)
/// plus slack.
const HANDSHAKE_LIMIT_SECS: u32 = 40;

#[test]
fn explicit_tls_handshake_has_a_total_deadline() {
    if !require("python3") {
        return;
    }
    let server = Server::start("deadline-tls-explicit");
    let out = trickle_hello(&server, "explicit", server.port(), HANDSHAKE_LIMIT_SECS);
    print!("{out}");
}

#[test]
fn implicit_tls_handshake_has_a_total_deadline() {
    if !require("python3") {
        return;
    }
    let server = Server::start_with(
        "deadline-tls-implicit",
        ServerOptions::default()
            .arg("--implicit-listen")
            .arg("127.0.0.1:0"),
    );
    let implicit = server
        .implicit_addr()
        .unwrap_or_else(|| panic!("no ftps:// line in {:?}", server.startup_lines()));
    let out = trickle_hello(&server, "implicit", implicit.port(), HANDSHAKE_LIMIT_SECS);
    print!("{out}");
}

#[test]
fn a_protected_data_connections_handshake_has_a_total_deadline() {
    if !require("python3") {
        return;
    }
    let server = Server::start("deadline-tls-data");
    write_file(server.root().join("big.bin"), &random_bytes(1 << 20, 7));
    let out = trickle_hello(&server, "data", server.port(), HANDSHAKE_LIMIT_SECS);
    print!("{out}");
}

#[test]
fn a_client_that_never_reads_replies_is_closed_by_the_login_deadline() {
    let server = Server::start_with(
        "deadline-no-read",
        ServerOptions::default().config(LOGIN_TIMEOUT),
    );
    let started = Instant::now();
    let mut s =
        TcpStream::connect_timeout(&server.addr(), Duration::from_secs(10)).expect("connect");
    // Short write timeouts: the client floods until its writes block (the server stopped
    // reading because its replies are not read), then keeps trying, never reading a byte.
    s.set_write_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let flood = "HELP\r\n".repeat(100);
    let flood = flood.as_bytes();
    let (mut at, mut sent) = (0usize, 0usize);
    let limit = Duration::from_secs(15);
    let closed_after = loop {
        if started.elapsed() > limit {
            break None;
        }
        match s.write(&flood[at..]) {
            Ok(0) => break Some(started.elapsed()),
            Ok(n) => {
                sent += n;
                at = (at + n) % flood.len();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                println!("write failed: {e}");
                break Some(started.elapsed());
            }
        }
    };
    println!("sent {sent} bytes of HELP commands; closed after {closed_after:?}");
    let closed_after = closed_after.unwrap_or_else(|| {
        panic!(
            "a client that floods HELP and never reads its replies was still connected after \
             {limit:?} with login_timeout_secs = 3 ({sent} bytes sent): a stuck write before \
             login must end by the login deadline"
        )
    });
    assert!(
        closed_after <= Duration::from_secs(10),
        "closed only after {closed_after:?} (login_timeout_secs = 3)"
    );
}
