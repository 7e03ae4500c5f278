//! Entry points for the cargo-fuzz targets in `fuzz/` (built only under `cfg(fuzzing)`).
//!
//! Each target in `fuzz/fuzz_targets/` is a one-liner that calls a function here, so the
//! invariants live next to the code they guard (quinn's habit). A broken invariant panics,
//! which is what the fuzzer reports.
//!
//! - [`parse_command`]: any bytes into the command parser: no panic.
//! - [`session_bytes`]: any bytes into a logged-in session whose actions the
//!   [test kit](crate::testkit) answers: no panic, every reply well-formed
//!   ([`check_reply`]), no misuse of the runtime API, and the session's buffered input within
//!   `max_buffered_input` while it is open (plus one read once it has closed).

use crate::testkit::{check_reply, seeded_bytes, Harness};
use std::time::{Duration, Instant};

/// Arbitrary bytes as one command line: parsing must not panic.
pub fn parse_command(data: &[u8]) {
    let _ = crate::command::parse_command(data);
}

/// Arbitrary bytes into a logged-in session (the first byte steers the run):
///
/// - bits 0–5: the size of each read, 1 to 63 bytes; 63 means the whole input at once;
/// - bit 6: transfers are held (they run until a read that starts with `0x02` finishes one,
///   so ABOR/STAT/NOOP/QUIT are exercised mid-transfer);
/// - bit 7: small limits (a 24-byte line and a 64-byte input buffer) so that the short inputs
///   libFuzzer starts with reach the bounds.
///
/// A read that starts with `0x00` first advances the clock by 1 s (releasing a failed login's
/// delay), one that starts with `0x01` by 400 s (the timeouts). `base` is the fake clock's
/// origin; the run does not depend on it.
pub fn session_bytes(base: Instant, data: &[u8]) {
    let Some((&ctl, input)) = data.split_first() else {
        return;
    };
    let chunk = match usize::from(ctl & 0x3f) {
        0x3f => input.len().max(1),
        n => n.max(1),
    };
    let hold = ctl & 0x40 != 0;
    let small = ctl & 0x80 != 0;
    let mut h = Harness::builder()
        .config(|c| {
            if small {
                c.max_line_len = 24;
                c.max_buffered_input = 64;
            }
            c.max_login_failures = 5;
        })
        .user("alice", "secret", true)
        .user("bob", "pw", false)
        .anonymous()
        .files(|fs| {
            let _ = fs.write_file("/a.txt", "one\ntwo\r\nthree");
            let _ = fs.write_file("/dir/sub/b.bin", seeded_bytes(1, 3000));
            let _ = fs.mkdir_all("/empty");
        })
        .start(base);
    let greeting = h.take_replies();
    check_all(&h, &greeting);
    if h.login("alice", "secret").is_err() {
        panic!("the fuzz session could not log in");
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
