//! Entry points for the cargo-fuzz targets in `fuzz/` (built only under `cfg(fuzzing)`).
//!
//! Each target in `fuzz/fuzz_targets/` is a one-liner that calls a function here, so the
//! invariants live next to the code they guard (quinn's habit). A broken invariant panics,
//! which is what the fuzzer reports.
//!
//! - [`parse_command`]: any bytes into the command parser: no panic.
//! - [`session_bytes`]: any bytes into a session (logged in first or not, with or without
//!   TLS, anonymous login on or off) whose actions the [test kit](crate::testkit) answers:
//!   no panic, every reply well-formed ([`check_reply`]), no misuse of the runtime API, the
//!   session's buffered input within `max_buffered_input` while it is open (plus one read
//!   once it has closed).
//! - [`session_outcomes()`]: a session driven by a runtime whose every outcome, and its timing
//!   against the client's lines and the clock, is the fuzzer's choice; the contract's
//!   invariants checked after every call ([`session_outcomes`](mod@session_outcomes) says
//!   which).
//! - [`codec_decode`]: any wire bytes into a [`Decoder`](crate::codec::Decoder) of any
//!   TYPE/STRU/MODE (all 420), from any stored offset, in any reads: no panic, bounded output
//!   per call, the same result whatever the reads.
//! - [`codec_round_trip`]: any stored file the format can carry, encoded then decoded in any
//!   calls' sizes: the same file and markers, the same wire whatever the calls, and from any
//!   restart marker a retrieve and a store resumed there that give exactly the rest.

use crate::testkit::{check_reply, seeded_bytes, Harness};
use crate::TlsPolicy;
use std::time::{Duration, Instant};

pub mod codecs;
pub mod session_outcomes;
pub use codecs::{codec_decode, codec_round_trip};
pub use session_outcomes::session_outcomes;

/// Arbitrary bytes as one command line: parsing must not panic.
pub fn parse_command(data: &[u8]) {
    let _ = crate::command::parse_command(data);
}

/// Arbitrary bytes into a session whose actions the [test kit](crate::testkit) answers. The
/// first byte steers the run:
///
/// - bits 0–5: the size of each read, 1 to 63 bytes; 63 means the whole input at once;
/// - bit 6: transfers are held (they run until a read that starts with `0x02` finishes one,
///   so ABOR/STAT/NOOP/QUIT are exercised mid-transfer);
/// - bit 7: small limits (a 24-byte line and a 64-byte input buffer) so that the short inputs
///   libFuzzer starts with reach the bounds.
///
/// The second byte sets the server up (`SessionSetup`: who logs in before the input, if
/// anyone; TLS available, required or implicit; anonymous login on or off; CCC; a client
/// certificate), so that the input also runs sessions that never log in, or log in
/// themselves with USER/PASS after AUTH TLS.
///
/// A read that starts with `0x00` first advances the clock by 1 s (releasing a failed login's
/// delay), one that starts with `0x01` by 400 s (the timeouts). `base` is the fake clock's
/// origin; the run does not depend on it.
pub fn session_bytes(base: Instant, data: &[u8]) {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let (setup, input) = match rest.split_first() {
        Some((&setup, input)) => (SessionSetup::from_byte(setup), input),
        None => (SessionSetup::from_byte(0), rest),
    };
    let chunk = match usize::from(ctl & 0x3f) {
        0x3f => input.len().max(1),
        n => n.max(1),
    };
    let hold = ctl & 0x40 != 0;
    let small = ctl & 0x80 != 0;
    let mut builder = Harness::builder()
        .config(|c| {
            if small {
                c.max_line_len = 24;
                c.max_buffered_input = 64;
            }
            c.max_login_failures = 5;
            c.tls_available = setup.tls_available;
            c.allow_ccc = setup.allow_ccc;
            if setup.tls_required {
                c.tls_control = TlsPolicy::Accounts;
                c.tls_data = TlsPolicy::Accounts;
            }
        })
        .user("alice", "secret", true)
        .user("bob", "pw", false)
        .files(|fs| {
            let _ = fs.write_file("/a.txt", "one\ntwo\r\nthree");
            let _ = fs.write_file("/dir/sub/b.bin", seeded_bytes(1, 3000));
            let _ = fs.mkdir_all("/empty");
        });
    if setup.anonymous {
        builder = builder.anonymous();
    }
    if setup.implicit_tls {
        builder = builder.implicit_tls();
    }
    let mut h = builder.start(base);
    let greeting = h.take_replies();
    check_all(&h, &greeting);
    if setup.certificate {
        h.set_client_identity(Some("alice".into()));
    }
    if let Some((user, password)) = setup.login {
        let anonymous = user == "anonymous";
        let protect = setup.tls_required && !anonymous && !setup.implicit_tls;
        if protect {
            // The policy wants the control connection protected before an account logs in.
            for line in ["AUTH TLS", "PBSZ 0", "PROT P"] {
                let replies = h.command(line);
                check_all(&h, &replies);
            }
        }
        let replies = if setup.certificate && user == "alice" && protect {
            // The handshake vouched for alice: USER alone logs her in (232).
            h.command("USER alice")
        } else {
            match h.login(user, password) {
                Ok(()) => Vec::new(),
                Err(text) => panic!("the fuzz session could not log in as {user}: {text}"),
            }
        };
        check_all(&h, &replies);
        assert!(h.session().account().is_some(), "{user} is not logged in");
    }
    h.set_hold_transfers(hold);
    let max = h.config().max_buffered_input;
    for piece in input.chunks(chunk) {
        match piece.first() {
            Some(0) => h.advance(Duration::from_secs(1)),
            Some(1) => h.advance(Duration::from_secs(400)),
            Some(2) => {
                h.finish_transfer();
            }
            _ => {}
        }
        h.send(piece);
        let replies = h.take_replies();
        check_all(&h, &replies);
        let held = h.session().buffered_input();
        if !h.is_closed() {
            assert!(
                held <= max,
                "an open session holds {held} bytes of input, more than max_buffered_input {max}"
            );
        } else {
            // It closed when a read took it over the limit, and reads no more since.
            assert!(
                held <= max + chunk,
                "a closed session holds {held} bytes of input, more than {max} + one read"
            );
        }
    }
    for _ in 0..1000 {
        if !h.finish_transfer() {
            break;
        }
    }
    h.advance(Duration::from_secs(3600));
    let replies = h.take_replies();
    check_all(&h, &replies);
    assert!(
        h.is_closed() || h.transfer_running(),
        "an hour without input left the session open"
    );
}

/// How [`session_bytes`] sets up the server and the session, from one byte (0: alice logs in
/// on a server without TLS that allows anonymous login, as before the byte existed).
#[derive(Clone, Copy, Debug)]
struct SessionSetup {
    /// Bits 0–1: who logs in before the input: alice (read-write), bob (read-only),
    /// anonymous (when allowed), or nobody (3, or anonymous when not allowed).
    login: Option<(&'static str, &'static str)>,
    /// Bit 2: the server has a certificate (AUTH TLS is offered).
    tls_available: bool,
    /// Bit 3 (inverted): anonymous login allowed.
    anonymous: bool,
    /// Bit 4: the control connection is TLS from the first byte (implies TLS available).
    implicit_tls: bool,
    /// Bit 5: accounts (not anonymous) must protect the control and data connections.
    tls_required: bool,
    /// Bit 6: CCC is allowed.
    allow_ccc: bool,
    /// Bit 7: the TLS handshake reports a client certificate that maps to alice.
    certificate: bool,
}

impl SessionSetup {
    fn from_byte(b: u8) -> SessionSetup {
        let implicit_tls = b & 0x10 != 0;
        let tls_available = b & 0x04 != 0 || implicit_tls;
        let anonymous = b & 0x08 == 0;
        let tls_required = b & 0x20 != 0;
        let mut login = match b & 3 {
            0 => Some(("alice", "secret")),
            1 => Some(("bob", "pw")),
            2 if anonymous => Some(("anonymous", "guest@example.com")),
            _ => None,
        };
        // An account that must use TLS cannot log in on a server without it.
        if tls_required && !tls_available && login.is_some_and(|(u, _)| u != "anonymous") {
            login = None;
        }
        SessionSetup {
            login,
            tls_available,
            anonymous,
            implicit_tls,
            tls_required,
            allow_ccc: b & 0x40 != 0,
            certificate: b & 0x80 != 0,
        }
    }
}

fn check_all(h: &Harness, replies: &[crate::Reply]) {
    for r in replies {
        if let Err(e) = check_reply(r) {
            panic!("malformed reply: {e}");
        }
    }
    assert!(
        h.anomalies().is_empty(),
        "runtime API misused: {:?}",
        h.anomalies()
    );
}
