//! Properties of the whole pipeline, for every combination of TYPE, STRU and MODE:
//!
//! - encode then decode is the identity on stored files the format can carry;
//! - how the input is split into calls does not change the output, in either direction;
//! - any bytes decode to data or a typed error, each call within [`Decoder::MAX_OUTPUT`];
//! - a cut-off upload is never taken for a complete file where the format marks its end;
//! - restart markers carry the offset the decoder reports, and an encoder (or decoder) started
//!   at a marker's offset continues the stream exactly.
//!
//! Also the helpers the modules' byte-exact tests use.

use super::samples::carried;
use super::*;
use quickcheck::quickcheck;

pub(super) const A: Representation = Representation::Ascii(FormatControl::NonPrint);
pub(super) const E: Representation =
    Representation::Ebcdic(FormatControl::NonPrint, CodePage::Ibm1047);
pub(super) const I: Representation = Representation::Image;

const REPRESENTATIONS: [Representation; 6] = [
    I,
    A,
    Representation::Ascii(FormatControl::Telnet),
    Representation::Ascii(FormatControl::Asa),
    E,
    Representation::Ebcdic(FormatControl::Asa, CodePage::Ibm037),
];
const STRUCTURES: [Structure; 3] = [Structure::File, Structure::Record, Structure::Page];
const MODES: [Mode; 7] = [
    Mode::Stream,
    Mode::Block,
    Mode::Compressed,
    Mode::Deflate { level: 0 },
    Mode::Deflate { level: 1 },
    Mode::Deflate { level: 6 },
    Mode::Deflate { level: 9 },
];

pub(super) fn format(
    representation: Representation,
    structure: Structure,
    mode: Mode,
) -> DataFormat {
    DataFormat {
        representation,
        structure,
        mode,
    }
}

fn all_formats() -> impl Iterator<Item = DataFormat> {
    REPRESENTATIONS.into_iter().flat_map(|r| {
        STRUCTURES
            .into_iter()
            .flat_map(move |s| MODES.into_iter().map(move |m| format(r, s, m)))
    })
}

pub(super) fn encode_with(
    format: DataFormat,
    stored: &[u8],
    start: u64,
    interval: Option<u64>,
    chunk: usize,
) -> Result<Vec<u8>, CodecError> {
    let mut e = Encoder::new(format, start, interval);
    let mut out = Vec::new();
    for piece in stored.chunks(chunk.max(1)) {
        e.encode(piece, &mut out)?;
    }
    e.finish(&mut out)?;
    Ok(out)
}

pub(super) fn encode(format: DataFormat, stored: &[u8]) -> Result<Vec<u8>, CodecError> {
    encode_with(format, stored, 0, None, usize::MAX)
}

/// A decoded upload: the stored bytes, and each marker with the wire position right after it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Decoded {
    pub(super) stored: Vec<u8>,
    pub(super) markers: Vec<(Marker, usize)>,
}

/// Decodes `wire` read `chunk` bytes at a time, checking the API's promises on every call.
pub(super) fn decode_with(
    format: DataFormat,
    wire: &[u8],
    start: u64,
    chunk: usize,
) -> Result<Decoded, CodecError> {
    let mut d = Decoder::new(format, start);
    let mut stored = Vec::new();
    let mut markers = Vec::new();
    let mut pos = 0;
    for piece in wire.chunks(chunk.max(1)) {
        let mut rest = piece;
        while !rest.is_empty() {
            let before = stored.len();
            let used = d.decode(rest, &mut stored)?;
            let added = stored.len() - before;
            assert!(
                added <= Decoder::MAX_OUTPUT,
                "{format:?}: one call appended {added}"
            );
            assert!(used <= rest.len());
            if let Some(m) = d.take_marker() {
                markers.push((m, pos + used));
            }
            assert!(used > 0 || added > 0, "{format:?}: decode made no progress");
            pos += used;
            rest = &rest[used..];
        }
    }
    d.finish(&mut stored)?;
    Ok(Decoded { stored, markers })
}

pub(super) fn decode(format: DataFormat, wire: &[u8]) -> Result<Vec<u8>, CodecError> {
    decode_with(format, wire, 0, usize::MAX).map(|d| d.stored)
}

/// Inputs a few KiB long, from quickcheck's short vectors.
fn grow(seed: &[u8], repeat: u8) -> Vec<u8> {
    seed.repeat(1 + usize::from(repeat % 40))
}

quickcheck! {
    fn encode_then_decode_is_the_identity(seed: Vec<u8>, repeat: u8, chunk: u8) -> bool {
        let seed = grow(&seed, repeat);
        let chunk = 1 + usize::from(chunk);
        for f in all_formats() {
            let stored = carried(f, &seed);
            let whole = encode(f, &stored).unwrap_or_else(|e| panic!("{f:?}: {e}"));
            let bytewise = encode_with(f, &stored, 0, None, 1).unwrap();
            assert_eq!(bytewise, whole, "{f:?}: encoding byte by byte differs");
            assert_eq!(encode_with(f, &stored, 0, None, chunk).unwrap(), whole, "{f:?}");
            let back = decode(f, &whole).unwrap_or_else(|e| panic!("{f:?}: {e}"));
            assert_eq!(back, stored, "{f:?}: round trip");
            let back = decode_with(f, &whole, 0, 1).unwrap().stored;
            assert_eq!(back, stored, "{f:?}: decoding byte by byte");
            assert_eq!(decode_with(f, &whole, 0, chunk).unwrap().stored, stored, "{f:?}");
        }
        true
    }

    fn any_bytes_decode_to_data_or_a_typed_error(data: Vec<u8>, chunk: u8) -> bool {
        let chunk = 1 + usize::from(chunk % 16);
        for f in all_formats() {
            let whole = decode(f, &data);
            let pieces = decode_with(f, &data, 0, chunk).map(|d| d.stored);
            assert_eq!(whole, pieces, "{f:?}: chunking changed the result");
        }
        true
    }

    fn damaged_streams_are_errors_or_data(seed: Vec<u8>, cut: usize, at: usize, byte: u8) -> bool {
        for f in all_formats() {
            let stored = carried(f, &seed);
            let wire = encode(f, &stored).unwrap();
            if wire.is_empty() {
                continue;
            }
            let cut = cut % wire.len();
            let cut_off = decode(f, &wire[..cut]);
            assert_eq!(cut_off, decode_with(f, &wire[..cut], 0, 3).map(|d| d.stored), "{f:?}");
            if f.mode != Mode::Stream || f.structure == Structure::Page {
                assert!(cut_off.is_err(), "{f:?}: a cut at {cut} of {} was taken for a file", wire.len());
            }
            let mut flipped = wire.clone();
            let at = at % flipped.len();
            flipped[at] ^= byte | 1;
            let damaged = decode(f, &flipped);
            assert_eq!(damaged, decode_with(f, &flipped, 0, 2).map(|d| d.stored), "{f:?}");
            // MODE Z checks what it carries (the zlib header and Adler-32): a changed byte is an
            // error, never another file (a header's level bits may change with a still valid
            // check: the same file).
            if matches!(f.mode, Mode::Deflate { .. }) {
                assert!(
                    damaged.as_ref().map_or(true, |d| *d == stored),
                    "{f:?}: byte {at} changed and another file was taken"
                );
            }
        }
        true
    }

    fn markers_carry_offsets_and_restarts_continue(seed: Vec<u8>, repeat: u8, interval: u8) -> bool {
        let seed = grow(&seed, repeat);
        for f in all_formats().filter(|f| matches!(f.mode, Mode::Block | Mode::Compressed)) {
            let interval = if f.structure == Structure::Page {
                1 + u64::from(interval) * 4
            } else {
                1 + u64::from(interval % 64)
            };
            let stored = carried(f, &seed);
            let wire = encode_with(f, &stored, 0, Some(interval), 7).unwrap();
            assert_eq!(encode_with(f, &stored, 0, Some(interval), 1).unwrap(), wire, "{f:?}");
            let decoded = decode_with(f, &wire, 0, usize::MAX).unwrap();
            assert_eq!(decoded.stored, stored, "{f:?}");
            assert_eq!(decode_with(f, &wire, 0, 5).unwrap(), decoded, "{f:?}");
            if f.representation == I && f.structure == Structure::File {
                assert_eq!(decoded.markers.len() as u64, stored.len() as u64 / interval, "{f:?}");
            }
            let mut last = 0;
            for (m, pos) in &decoded.markers {
                assert_eq!(m.sender, m.offset.to_string(), "{f:?}");
                assert!(m.offset > last && m.offset <= stored.len() as u64, "{f:?}: {m:?}");
                last = m.offset;
                let from = m.offset as usize;
                let rest = encode_with(f, &stored[from..], m.offset, Some(interval), 3).unwrap();
                assert_eq!(rest, wire[*pos..], "{f:?}: restart at {}", m.offset);
                let resumed = decode_with(f, &wire[*pos..], m.offset, 4).unwrap();
                assert_eq!(resumed.stored, stored[from..], "{f:?}: resumed at {}", m.offset);
                let later: Vec<_> = decoded.markers.iter().filter(|(n, _)| n.offset > m.offset).collect();
                assert_eq!(resumed.markers.len(), later.len(), "{f:?}");
                for ((r, _), (n, _)) in resumed.markers.iter().zip(later) {
                    assert_eq!(r, n, "{f:?}: a resumed upload reports the same markers");
                }
            }
        }
        true
    }
}

#[test]
fn defaults_and_identity() {
    let d = DataFormat::default();
    assert_eq!(d, format(A, Structure::File, Mode::Stream));
    assert!(!d.is_identity());
    assert!(format(I, Structure::File, Mode::Stream).is_identity());
    assert!(!format(I, Structure::Record, Mode::Stream).is_identity());
    assert!(!format(I, Structure::File, Mode::Deflate { level: 6 }).is_identity());
    // The identity format's codec is the identity.
    let data: Vec<u8> = (0..=255).collect();
    let f = format(I, Structure::File, Mode::Stream);
    assert_eq!(encode(f, &data).unwrap(), data);
    assert_eq!(decode(f, &data).unwrap(), data);
}

#[test]
fn errors_read_as_sentences() {
    let e = CodecError::Unmappable {
        offset: 12,
        what: "the character U+20AC has no code in IBM-1047".into(),
    };
    assert_eq!(
        e.to_string(),
        "Cannot convert the file at byte 12: the character U+20AC has no code in IBM-1047."
    );
    let e = CodecError::Truncated("the connection closed before the end-of-file block".into());
    assert_eq!(
        e.to_string(),
        "Incomplete transfer: the connection closed before the end-of-file block."
    );
}

#[test]
fn text_structures_on_the_wire() {
    let text = b"one\ntwo\n\nlast";
    // STRU F: CRLF; STRU R: records, the last line's too; MODE S's record codes.
    assert_eq!(
        encode(format(A, Structure::File, Mode::Stream), text).unwrap(),
        b"one\r\ntwo\r\n\r\nlast"
    );
    assert_eq!(
        encode(format(A, Structure::Record, Mode::Stream), text).unwrap(),
        b"one\xff\x01two\xff\x01\xff\x01last\xff\x03"
    );
    assert_eq!(
        encode(format(A, Structure::Record, Mode::Block), b"ab\ncd\n").unwrap(),
        [&[128, 0, 2][..], b"ab", &[192, 0, 2], b"cd"].concat()
    );
    // TYPE E: NL 0x15 in STRU F, EOR in STRU R.
    assert_eq!(
        encode(format(E, Structure::File, Mode::Stream), b"a\nb").unwrap(),
        [0x81, 0x15, 0x82]
    );
    assert_eq!(
        encode(format(E, Structure::Record, Mode::Stream), b"a\nb").unwrap(),
        [0x81, 0xFF, 0x01, 0x82, 0xFF, 0x03]
    );
    // A record holding a line end cannot be stored as a line.
    let f = format(A, Structure::Record, Mode::Stream);
    assert!(matches!(
        decode(f, b"a\nb\xff\x03"),
        Err(CodecError::Malformed(_))
    ));
    let f = format(E, Structure::Record, Mode::Stream);
    assert!(matches!(
        decode(f, b"\x81\x15\xff\x03"),
        Err(CodecError::Malformed(_))
    ));
    // Format controls T and C are stored as sent: ASA characters stay the lines' first.
    let asa = format(
        Representation::Ascii(FormatControl::Asa),
        Structure::File,
        Mode::Stream,
    );
    assert_eq!(
        decode(asa, b"1TITLE\r\n0  body\r\n+____\r\n").unwrap(),
        b"1TITLE\n0  body\n+____\n"
    );
    let telnet = format(
        Representation::Ascii(FormatControl::Telnet),
        Structure::File,
        Mode::Stream,
    );
    assert_eq!(
        decode(telnet, b"page\x0c\r\nnext\x0b\r\n").unwrap(),
        b"page\x0c\nnext\x0b\n"
    );
}

#[test]
fn unmappable_offsets_count_from_the_file_start() {
    let f = format(E, Structure::File, Mode::Block);
    let mut e = Encoder::new(f, 1000, None);
    let mut out = Vec::new();
    e.encode("abc".as_bytes(), &mut out).unwrap();
    let err = e.encode("dé€".as_bytes(), &mut out).unwrap_err();
    assert_eq!(
        err,
        CodecError::Unmappable {
            offset: 1006,
            what: "the character U+20AC has no code in IBM-1047".into()
        }
    );
    // The error stays.
    assert_eq!(e.finish(&mut out), Err(err));
    let err = encode(format(E, Structure::Record, Mode::Stream), b"ok\n\xff\n").unwrap_err();
    assert!(
        matches!(err, CodecError::Unmappable { offset: 3, .. }),
        "{err:?}"
    );
}

#[test]
fn stored_record_files_are_checked_on_retrieve() {
    let f = format(I, Structure::Record, Mode::Block);
    for bad in [
        &b"plain bytes"[..],
        b"a\xff\x01b",
        b"a\xff\x07\xff\x02",
        b"a\xff\x01\xff\x02x",
        b"a\xff",
    ] {
        assert!(
            matches!(encode(f, bad), Err(CodecError::Malformed(_))),
            "{bad:?}"
        );
    }
    // A record file without its end-of-file code is still complete after its last EOR.
    assert_eq!(
        encode(f, b"a\xff\x01").unwrap(),
        [&[192, 0, 1][..], b"a"].concat()
    );
    assert_eq!(encode(f, b"").unwrap(), [64, 0, 0]);
}

#[test]
fn mode_s_record_streams_end_with_the_eof_code_or_a_complete_record() {
    let f = format(I, Structure::Record, Mode::Stream);
    assert_eq!(decode(f, b"ab\xff\x01").unwrap(), b"ab\xff\x03");
    assert_eq!(decode(f, b"").unwrap(), b"\xff\x02");
    assert!(matches!(
        decode(f, b"ab\xff\x01cd"),
        Err(CodecError::Truncated(_))
    ));
    assert!(matches!(
        decode(f, b"ab\xff"),
        Err(CodecError::Truncated(_))
    ));
    assert!(matches!(
        decode(f, b"ab\xff\x03x"),
        Err(CodecError::Malformed(_))
    ));
    assert!(matches!(
        decode(f, b"ab\xff\x02"),
        Err(CodecError::Malformed(_))
    ));
    let mut d = Decoder::new(f, 0);
    let mut out = Vec::new();
    assert_eq!(d.decode(b"x\xff\x03", &mut out), Ok(3));
    assert!(d.ended());
}

#[test]
fn page_structure_limits() {
    let f = format(I, Structure::Page, Mode::Stream);
    let most = vec![b'x'; 65_280];
    let wire = encode(f, &most).unwrap();
    assert_eq!(decode(f, &wire).unwrap(), most);
    let err = encode(f, &[most.as_slice(), b"y"].concat()).unwrap_err();
    assert!(matches!(err, CodecError::TooLarge(_)), "{err:?}");
    // TYPE A counts the wire's bytes: 32,640 line ends take 65,280.
    let lines = b"\n".repeat(32_640);
    assert!(encode(format(A, Structure::Page, Mode::Stream), &lines).is_ok());
    let err = encode(
        format(A, Structure::Page, Mode::Stream),
        &b"\n".repeat(32_641),
    )
    .unwrap_err();
    assert!(matches!(err, CodecError::TooLarge(_)));
    // Restarts: TYPE I at a page boundary only; the pages are numbered from there.
    assert_eq!(
        encode_with(f, b"z", 510, None, 1).unwrap(),
        [4, 2, 1, 1, b'z', 4, 0, 0, 0]
    );
    assert!(matches!(
        encode_with(f, b"z", 500, None, 1),
        Err(CodecError::Malformed(_))
    ));
    let text = format(A, Structure::Page, Mode::Stream);
    assert!(matches!(
        encode_with(text, b"z", 510, None, 1),
        Err(CodecError::Malformed(_))
    ));
    // A cut-off page upload is no file.
    assert!(matches!(
        decode(f, &[4, 0, 2, 1, b'a']),
        Err(CodecError::Truncated(_))
    ));
    let mut d = Decoder::new(f, 0);
    let mut out = Vec::new();
    assert_eq!(d.decode(&[4, 0, 1, 1, b'a', 4, 0, 0, 0], &mut out), Ok(9));
    assert!(d.ended());
    assert_eq!(out, b"a");
}

#[test]
fn decoding_after_the_end_or_after_finish() {
    let f = format(I, Structure::File, Mode::Block);
    let mut d = Decoder::new(f, 0);
    let mut out = Vec::new();
    assert_eq!(d.decode(&[64, 0, 1, b'a'], &mut out), Ok(4));
    assert!(d.ended());
    assert!(matches!(
        d.decode(b"x", &mut out),
        Err(CodecError::Malformed(_))
    ));
    let mut d = Decoder::new(f, 0);
    assert_eq!(d.decode(&[64, 0, 0], &mut out), Ok(3));
    assert_eq!(d.finish(&mut out), Ok(()));
    assert!(d.decode(b"x", &mut out).is_err());
    let mut e = Encoder::new(f, 0, None);
    e.finish(&mut out).unwrap();
    assert!(e.encode(b"x", &mut out).is_err());
}

#[test]
fn every_marker_carrying_format_places_markers_and_restarts() {
    let text = b"hello   world\nAAAAAAAAAA\n\nxyz\n".repeat(40);
    for f in all_formats().filter(|f| matches!(f.mode, Mode::Block | Mode::Compressed)) {
        let stored = carried(f, &text);
        let wire = encode_with(f, &stored, 0, Some(100), 7).unwrap();
        let decoded = decode_with(f, &wire, 0, 9).unwrap();
        assert_eq!(decoded.stored, stored);
        let text_pages = f.structure == Structure::Page && f.representation != I;
        assert_eq!(decoded.markers.is_empty(), text_pages, "{f:?}");
        for (m, pos) in &decoded.markers {
            let from = m.offset as usize;
            let rest = encode_with(f, &stored[from..], m.offset, Some(100), 11).unwrap();
            assert_eq!(rest, wire[*pos..], "{f:?}");
        }
    }
}
