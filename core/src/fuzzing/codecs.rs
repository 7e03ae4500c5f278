//! The codec fuzz targets, `codec_decode` and `codec_round_trip`: the [`Encoder`] and the
//! [`Decoder`] of every TYPE, STRU and MODE (`format`: all 420 combinations), fed in
//! arbitrary splits (`Splits`), with restart markers taken up at any of them.

use crate::codec::samples::carried;
use crate::codec::{
    CodePage, CodecError, DataFormat, Decoder, Encoder, FormatControl, Marker, Mode,
    Representation, Structure,
};

/// The format from two bytes: TYPE and STRU from the first, MODE from the second.
///
/// TYPE: I, A N/T/C, E N/T/C in IBM-1047 and in IBM-037 (10); STRU: F, R, P (3); MODE: S,
/// B, C, and Z at each level 0 to 9 and at a level above 9 (which counts as 9) (14).
pub(super) fn format(a: u8, b: u8) -> DataFormat {
    const CONTROLS: [FormatControl; 3] = [
        FormatControl::NonPrint,
        FormatControl::Telnet,
        FormatControl::Asa,
    ];
    let representation = match a % 10 {
        0 => Representation::Image,
        n @ 1..=3 => Representation::Ascii(CONTROLS[usize::from(n - 1)]),
        n @ 4..=6 => Representation::Ebcdic(CONTROLS[usize::from(n - 4)], CodePage::Ibm1047),
        n => Representation::Ebcdic(CONTROLS[usize::from(n - 7)], CodePage::Ibm037),
    };
    let structure = match a / 10 % 3 {
        0 => Structure::File,
        1 => Structure::Record,
        _ => Structure::Page,
    };
    let mode = match b % 14 {
        0 => Mode::Stream,
        1 => Mode::Block,
        2 => Mode::Compressed,
        13 => Mode::Deflate { level: 200 },
        n => Mode::Deflate { level: n - 3 },
    };
    DataFormat {
        representation,
        structure,
        mode,
    }
}

/// How a stream of bytes is cut into calls: a count byte (0 to 7 sizes; none: one call),
/// then that many sizes, used in turn (a size of 0 takes all that is left).
#[derive(Clone, Copy, Debug)]
pub(super) struct Splits<'a> {
    sizes: &'a [u8],
}

impl<'a> Splits<'a> {
    /// Reads the splits from the front of `data`; returns them and the rest.
    pub(super) fn read(data: &'a [u8]) -> (Splits<'a>, &'a [u8]) {
        let Some((&n, rest)) = data.split_first() else {
            return (Splits::WHOLE, data);
        };
        let n = usize::from(n % 8).min(rest.len());
        let (sizes, rest) = rest.split_at(n);
        (Splits { sizes }, rest)
    }

    /// One call for everything.
    pub(super) const WHOLE: Splits<'static> = Splits { sizes: &[] };

    /// `data` cut into pieces.
    fn pieces(self, mut data: &[u8]) -> Vec<&[u8]> {
        let mut pieces = Vec::new();
        let mut sizes = self.sizes.iter().cycle();
        while !data.is_empty() {
            let size = match sizes.next() {
                None | Some(0) => data.len(),
                Some(&n) => usize::from(n).min(data.len()),
            };
            let (piece, rest) = data.split_at(size);
            pieces.push(piece);
            data = rest;
        }
        pieces
    }
}

/// A decoded upload: the stored bytes, and each restart marker with the wire offset after it.
type Decoded = (Vec<u8>, Vec<(Marker, usize)>);

/// Decodes `wire` cut by `splits` into a decoder started at stored offset `start`, checking
/// the decoder's promises on every call: it consumes at most what it is given, appends at
/// most [`Decoder::MAX_OUTPUT`], and makes progress. Returns the stored bytes and the markers
/// with the wire offset after each.
fn decode(
    format: DataFormat,
    wire: &[u8],
    start: u64,
    splits: Splits<'_>,
) -> Result<Decoded, CodecError> {
    let mut decoder = Decoder::new(format, start);
    let mut stored = Vec::new();
    let mut markers = Vec::new();
    let mut pos = 0;
    for piece in splits.pieces(wire) {
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

/// Arbitrary wire bytes into a [`Decoder`]: byte 0 and 1 choose the format (`format`),
/// byte 2 the stored offset it starts at (0, or a resumed upload's), then the reads' sizes
/// (`Splits`); the rest is the wire.
///
/// Invariants: no panic; every call consumes at most its input, appends at most
/// [`Decoder::MAX_OUTPUT`] and makes progress; the result (stored bytes and markers, or the
/// typed error) is the same as when the wire is decoded in one read.
pub fn codec_decode(data: &[u8]) {
    let [a, b, start, rest @ ..] = data else {
        return;
    };
    let format = format(*a, *b);
    let start = match start {
        0 => 0,
        n => u64::from(*n) * 255,
    };
    let (splits, wire) = Splits::read(rest);
    let pieces = decode(format, wire, start, splits);
    let whole = decode(format, wire, start, Splits::WHOLE);
    assert_eq!(
        pieces, whole,
        "{format:?}: the reads' size changed the result"
    );
}

fn encode(
    format: DataFormat,
    stored: &[u8],
    start: u64,
    interval: Option<u64>,
    splits: Splits<'_>,
) -> Result<Vec<u8>, CodecError> {
    let mut encoder = Encoder::new(format, start, interval);
    let mut wire = Vec::new();
    for piece in splits.pieces(stored) {
        encoder.encode(piece, &mut wire)?;
    }
    encoder.finish(&mut wire)?;
    Ok(wire)
}

/// A stored file made from arbitrary bytes, encoded then decoded. Bytes 0 and 1 choose the
/// format (`format`), byte 2 the restart-marker interval in stored bytes (0: none), byte 3
/// the marker to restart at, then the calls' sizes (`Splits`, for both the encoder and the
/// decoder); the rest seeds the file (`carried`).
///
/// Invariants: encoding succeeds (page structure may say the file is too large); the wire does
/// not depend on the calls' size; decoding it gives the file back, with the same markers, in
/// any calls' size; each marker's text is the offset the decoder reports, and markers come in
/// increasing offsets; and from the chosen marker, as a retrieve and a store resumed there
/// (`REST`) would: an encoder started at its offset produces exactly the rest of the wire, and
/// a decoder started at its offset turns the rest of the wire into the rest of the file, with
/// the markers that followed.
pub fn codec_round_trip(data: &[u8]) {
    let [a, b, interval, which, rest @ ..] = data else {
        return;
    };
    let format = format(*a, *b);
    let interval = (*interval > 0).then_some(u64::from(*interval));
    let (splits, seed) = Splits::read(rest);
    let stored = carried(format, seed);
    let wire = match encode(format, &stored, 0, interval, splits) {
        Ok(wire) => wire,
        Err(CodecError::TooLarge(_)) if format.structure == Structure::Page => return,
        Err(e) => panic!("{format:?}: encoding failed: {e}"),
    };
    let whole = encode(format, &stored, 0, interval, Splits::WHOLE);
    assert_eq!(
        whole.as_ref(),
        Ok(&wire),
        "{format:?}: the calls' size changed the wire"
    );
    let (back, markers) = decode(format, &wire, 0, splits)
        .unwrap_or_else(|e| panic!("{format:?}: decoding our own wire failed: {e}"));
    assert!(
        back == stored,
        "{format:?}: the round trip changed the file"
    );
    assert_eq!(
        decode(format, &wire, 0, Splits::WHOLE).map(|(_, m)| m),
        Ok(markers.clone()),
        "{format:?}: the reads' size changed the markers"
    );
    for (marker, _) in &markers {
        assert_eq!(marker.sender, marker.offset.to_string(), "{format:?}");
    }
    assert!(
        markers.windows(2).all(|w| w[0].0.offset < w[1].0.offset),
        "{format:?}: markers out of order: {markers:?}"
    );
    if markers.is_empty() {
        return;
    }
    let (marker, after) = &markers[usize::from(*which) % markers.len()];
    let from = usize::try_from(marker.offset).unwrap_or(usize::MAX);
    let rest_stored = stored.get(from..).unwrap_or_default();
    let rest_wire = wire.get(*after..).unwrap_or_default();
    let resent = encode(format, rest_stored, marker.offset, interval, splits);
    assert_eq!(
        resent.as_deref(),
        Ok(rest_wire),
        "{format:?}: retrieve restarted at {}",
        marker.offset
    );
    let (rest_back, rest_markers) = decode(format, rest_wire, marker.offset, splits)
        .unwrap_or_else(|e| panic!("{format:?}: store resumed at {}: {e}", marker.offset));
    assert!(
        rest_back == rest_stored,
        "{format:?}: store resumed at {} changed the rest of the file",
        marker.offset
    );
    let later: Vec<_> = markers
        .iter()
        .filter(|(m, _)| m.offset > marker.offset)
        .map(|(m, pos)| (m.clone(), pos - after))
        .collect();
    assert_eq!(
        rest_markers, later,
        "{format:?}: store resumed at {}: other markers",
        marker.offset
    );
}
