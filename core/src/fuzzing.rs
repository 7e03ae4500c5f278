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
//! - [`session_outcomes`]: a session driven by a runtime whose every outcome, and its timing
//!   against the client's lines and the clock, is the fuzzer's choice; the contract's
//!   invariants checked after every call ([`session_outcomes`](mod@session_outcomes) says
//!   which).
//! - [`codec_decode`]: any wire bytes into a [`Decoder`] of any TYPE/STRU/MODE: no panic,
//!   bounded output per call, the same result whatever the reads' size.
//! - [`codec_round_trip`]: any stored file the format can carry, encoded then decoded: the
//!   same file, the same wire whatever the calls' size, markers that restart exactly.

use crate::codec::{
    CodePage, CodecError, DataFormat, Decoder, Encoder, FormatControl, Marker, Mode,
    Representation, Structure,
};
use crate::testkit::{check_reply, seeded_bytes, Harness};
use crate::TlsPolicy;
use std::time::{Duration, Instant};

mod session_outcomes;
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
/// The second byte sets the server up ([`SessionSetup`]: who logs in before the input, if
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

/// One of the 126 combinations of TYPE (I, A N/T/C, E IBM-1047/IBM-037), STRU (F, R, P) and
/// MODE (S, B, C, Z at levels 0, 1, 6, 9), from one byte.
fn codec_format(byte: u8) -> DataFormat {
    let representation = match byte % 6 {
        0 => Representation::Image,
        1 => Representation::Ascii(FormatControl::NonPrint),
        2 => Representation::Ascii(FormatControl::Telnet),
        3 => Representation::Ascii(FormatControl::Asa),
        4 => Representation::Ebcdic(FormatControl::NonPrint, CodePage::Ibm1047),
        _ => Representation::Ebcdic(FormatControl::Asa, CodePage::Ibm037),
    };
    let structure = match byte / 6 % 3 {
        0 => Structure::File,
        1 => Structure::Record,
        _ => Structure::Page,
    };
    let mode = match byte / 18 % 7 {
        0 => Mode::Stream,
        1 => Mode::Block,
        2 => Mode::Compressed,
        3 => Mode::Deflate { level: 0 },
        4 => Mode::Deflate { level: 1 },
        5 => Mode::Deflate { level: 6 },
        _ => Mode::Deflate { level: 9 },
    };
    DataFormat {
        representation,
        structure,
        mode,
    }
}

/// A decoded upload: the stored bytes, and each restart marker with the wire offset after it.
type CodecDecoded = (Vec<u8>, Vec<(Marker, usize)>);

/// Decodes `wire` `chunk` bytes at a time, checking the decoder's promises on every call: it
/// consumes at most what it is given, appends at most [`Decoder::MAX_OUTPUT`], and makes
/// progress. Returns the stored bytes and the markers with the wire offset after each.
fn codec_decode_checked(
    format: DataFormat,
    wire: &[u8],
    start: u64,
    chunk: usize,
) -> Result<CodecDecoded, CodecError> {
    let mut decoder = Decoder::new(format, start);
    let mut stored = Vec::new();
    let mut markers = Vec::new();
    let mut pos = 0;
    for piece in wire.chunks(chunk.max(1)) {
        let mut rest = piece;
        while !rest.is_empty() {
            let before = stored.len();
            let used = decoder.decode(rest, &mut stored)?;
            let added = stored.len() - before;
            assert!(used <= rest.len(), "{format:?}: consumed more than given");
            assert!(
                added <= Decoder::MAX_OUTPUT,
                "{format:?}: one call appended {added}"
            );
            assert!(used > 0 || added > 0, "{format:?}: no progress");
            if let Some(marker) = decoder.take_marker() {
                markers.push((marker, pos + used));
            }
            pos += used;
            rest = &rest[used..];
        }
    }
    let before = stored.len();
    decoder.finish(&mut stored)?;
    assert!(
        stored.len() - before <= Decoder::MAX_OUTPUT,
        "{format:?}: finish appended too much"
    );
    Ok((stored, markers))
}

/// Arbitrary wire bytes into a [`Decoder`]. Byte 0 chooses the format ([`codec_format`]),
/// byte 1 the size of each read (1–255; 0: all at once); the rest is the wire.
///
/// Invariants: no panic; every call consumes at most its input, appends at most
/// [`Decoder::MAX_OUTPUT`] and makes progress; the result (stored bytes and markers, or the
/// typed error) is the same as when the wire is decoded in one read.
pub fn codec_decode(data: &[u8]) {
    let [format, chunk, wire @ ..] = data else {
        return;
    };
    let format = codec_format(*format);
    let chunk = match chunk {
        0 => usize::MAX,
        n => usize::from(*n),
    };
    let pieces = codec_decode_checked(format, wire, 0, chunk);
    let whole = codec_decode_checked(format, wire, 0, usize::MAX);
    assert_eq!(
        pieces, whole,
        "{format:?}: the reads' size changed the result"
    );
}

/// A stored file made from `seed` that `format` carries unchanged: no CR in TYPE A's STRU F and
/// P, Latin-1 characters for TYPE E, a final LF for text records, TYPE I records in their
/// stored form (split at LF bytes).
fn codec_carried(format: DataFormat, seed: &[u8]) -> Vec<u8> {
    let records = format.structure == Structure::Record;
    let mut text = match format.representation {
        Representation::Image if records => {
            if seed.is_empty() {
                return vec![0xFF, 2];
            }
            let mut out = Vec::new();
            let count = seed.split(|&b| b == b'\n').count();
            for (i, record) in seed.split(|&b| b == b'\n').enumerate() {
                for &b in record {
                    out.push(b);
                    if b == 0xFF {
                        out.push(0xFF);
                    }
                }
                out.extend_from_slice(&[0xFF, if i + 1 == count { 3 } else { 1 }]);
            }
            return out;
        }
        Representation::Image => return seed.to_vec(),
        Representation::Ascii(_) if records => seed.to_vec(),
        Representation::Ascii(_) => seed.iter().copied().filter(|&b| b != b'\r').collect(),
        Representation::Ebcdic(..) => seed
            .iter()
            .map(|&b| char::from(b))
            .collect::<String>()
            .into_bytes(),
    };
    if records && text.last().is_some_and(|&b| b != b'\n') {
        text.push(b'\n');
    }
    text
}

fn codec_encode(
    format: DataFormat,
    stored: &[u8],
    start: u64,
    interval: Option<u64>,
    chunk: usize,
) -> Result<Vec<u8>, CodecError> {
    let mut encoder = Encoder::new(format, start, interval);
    let mut wire = Vec::new();
    for piece in stored.chunks(chunk.max(1)) {
        encoder.encode(piece, &mut wire)?;
    }
    encoder.finish(&mut wire)?;
    Ok(wire)
}

/// A stored file made from arbitrary bytes, encoded then decoded. Byte 0 chooses the format
/// ([`codec_format`]), byte 1 the restart-marker interval (0: none), byte 2 the size of each
/// call (1–255; 0: all at once); the rest seeds the file ([`codec_carried`]).
///
/// Invariants: encoding succeeds (page structure may say the file is too large); the wire does
/// not depend on the calls' size; decoding it gives the file back, in any read size; each
/// marker's text is the offset the decoder reports; and an encoder started at the first
/// marker's offset produces the rest of the wire exactly.
pub fn codec_round_trip(data: &[u8]) {
    let [format, interval, chunk, seed @ ..] = data else {
        return;
    };
    let format = codec_format(*format);
    let interval = (*interval > 0).then_some(u64::from(*interval));
    let chunk = match chunk {
        0 => usize::MAX,
        n => usize::from(*n),
    };
    let stored = codec_carried(format, seed);
    let wire = match codec_encode(format, &stored, 0, interval, chunk) {
        Ok(wire) => wire,
        Err(CodecError::TooLarge(_)) if format.structure == Structure::Page => return,
        Err(e) => panic!("{format:?}: encoding failed: {e}"),
    };
    let whole = codec_encode(format, &stored, 0, interval, usize::MAX);
    assert_eq!(
        whole.as_ref(),
        Ok(&wire),
        "{format:?}: the calls' size changed the wire"
    );
    let (back, markers) = codec_decode_checked(format, &wire, 0, chunk)
        .unwrap_or_else(|e| panic!("{format:?}: decoding our own wire failed: {e}"));
    assert!(
        back == stored,
        "{format:?}: the round trip changed the file"
    );
    for (marker, _) in &markers {
        assert_eq!(marker.sender, marker.offset.to_string(), "{format:?}");
    }
    if let Some((marker, after)) = markers.first() {
        let from = usize::try_from(marker.offset).unwrap_or(usize::MAX);
        let rest = codec_encode(
            format,
            stored.get(from..).unwrap_or_default(),
            marker.offset,
            interval,
            chunk,
        );
        assert_eq!(
            rest.as_deref(),
            Ok(wire.get(*after..).unwrap_or_default()),
            "{format:?}: restart at {}",
            marker.offset
        );
    }
}
