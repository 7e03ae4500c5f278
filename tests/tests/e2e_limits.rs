//! End to end, limits: 200 concurrent logins all succeed with the default settings; a
//! connection over `max_connections` gets 421 and is closed (and the slot is usable again once
//! a session ends); an idle session is closed with 421 after `idle_timeout_secs` from the config
//! file; PASV ports stay inside `--passive-ports`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use wharf_tests::e2e::{Ctrl, Server, ServerOptions, PASSWORD, USER};

#[test]
fn two_hundred_concurrent_logins_all_succeed() {
    const N: usize = 200;
    let server = Server::start("limits-200");
    let addr = server.addr();
    let logged_in = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let logged_in = Arc::clone(&logged_in);
            thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || -> Result<(), String> {
                    let mut c =
                        Ctrl::connect_raw(addr).map_err(|e| format!("#{i} connect: {e}"))?;
                    let step = |c: &mut Ctrl, line: Option<&str>, want: u16| {
                        if let Some(l) = line {
                            c.send(l);
                        }
                        match c.try_reply() {
                            Ok(r) if r.code == want => Ok(()),
                            Ok(r) => Err(format!("#{i} {line:?}: want {want}, got {r}")),
                            Err(e) => Err(format!("#{i} {line:?}: {e}")),
                        }
                    };
                    step(&mut c, None, 220)?;
                    step(&mut c, Some(&format!("USER {USER}")), 331)?;
                    step(&mut c, Some(&format!("PASS {PASSWORD}")), 230)?;
                    logged_in.fetch_add(1, Ordering::SeqCst);
                    // Hold the session until every thread is in (bounded), so that all 200 are
                    // logged in at the same time.
                    let deadline = Instant::now() + Duration::from_secs(60);
                    while logged_in.load(Ordering::SeqCst) < N && Instant::now() < deadline {
                        thread::sleep(Duration::from_millis(10));
                    }
                    step(&mut c, Some("QUIT"), 221)
                })
                .expect("spawn")
        })
        .collect();
    let mut failures = Vec::new();
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push("a client thread panicked".into()),
        }
    }
    println!("{N} concurrent logins took {:?}", started.elapsed());
    assert!(
        failures.is_empty(),
        "{} of {N} concurrent logins failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(logged_in.load(Ordering::SeqCst), N);
}

#[test]
fn connections_over_max_connections_get_421() {
    let server = Server::start_with(
        "limits-max",
        ServerOptions::default().arg("--max-connections").arg("3"),
    );
    let mut held: Vec<Ctrl> = (0..3).map(|_| server.login()).collect();

    for attempt in 0..2 {
        let mut extra = Ctrl::connect_raw(server.addr()).expect("connect");
        let r = extra.try_reply().unwrap_or_else(|e| {
            panic!("connection #{} over the limit: no reply ({e})", 4 + attempt)
        });
        assert_eq!(r.code, 421, "connection over max_connections: {r}");
        assert!(
            extra.closed_within(Duration::from_secs(5)),
            "the server did not close the connection after 421"
        );
    }
    // The sessions inside the limit are unaffected.
    for c in &mut held {
        assert_eq!(c.cmd("NOOP").code, 200);
    }
    // When one ends, a new connection gets in (the slot may take a moment to free).
    let mut first = held.remove(0);
    assert_eq!(first.cmd("QUIT").code, 221);
    assert!(first.closed_within(Duration::from_secs(5)));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = Ctrl::connect_raw(server.addr()).expect("connect");
        let r = c.try_reply().expect("a reply");
        if r.code == 220 {
            c.login(USER, PASSWORD);
            assert_eq!(c.cmd("NOOP").code, 200);
            break;
        }
        assert_eq!(r.code, 421, "{r}");
        assert!(
            Instant::now() < deadline,
            "a slot did not free up within 10 s after a QUIT"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_idle_session_gets_421_and_is_closed() {
    let server = Server::start_with(
        "limits-idle",
        ServerOptions::default().config("idle_timeout_secs = 2\n"),
    );
    let mut c = server.login();
    assert_eq!(c.cmd("NOOP").code, 200);
    let started = Instant::now();
    let r = c.try_reply().expect("a 421 when the session is idle");
    let waited = started.elapsed();
    assert_eq!(r.code, 421, "idle timeout: {r}");
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(10),
        "idle_timeout_secs = 2 closed the session after {waited:?}"
    );
    assert!(
        c.closed_within(Duration::from_secs(5)),
        "not closed after 421"
    );
    // An active session is not cut: NOOP every second for 4 s keeps it alive.
    let mut busy = server.login();
    for _ in 0..4 {
        thread::sleep(Duration::from_secs(1));
        assert_eq!(busy.cmd("NOOP").code, 200);
    }
}

#[test]
fn pasv_ports_stay_inside_the_configured_range() {
    // A range of 20 high ports chosen per process, away from the usual ephemeral range start.
    let base = 40_000 + (std::process::id() % 500) as u16 * 20;
    let spec = format!("{}-{}", base, base + 19);
    let server = Server::start_with(
        "limits-pasv-range",
        ServerOptions::default()
            .arg("--passive-ports")
            .arg(spec.clone()),
    );
    wharf_tests::e2e::write_file(server.root().join("f.txt"), b"ok\n");
    let mut c = server.login();
    assert_eq!(c.cmd("TYPE I").code, 200);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..10 {
        let (first, data, last) = c.transfer_in("RETR f.txt");
        assert_eq!((first.code, last.code), (150, 226), "{first} / {last}");
        assert_eq!(data, b"ok\n");
    }
    for _ in 0..10 {
        let a = c.pasv();
        assert!(
            (base..=base + 19).contains(&a.port()),
            "PASV gave port {} outside {spec}",
            a.port()
        );
        assert!(a.ip().is_loopback(), "PASV advertised {a}");
        seen.insert(a.port());
    }
    assert!(seen.len() > 1, "PASV always gave the same port: {seen:?}");
}
