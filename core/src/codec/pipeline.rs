//! [`Encoder`] and [`Decoder`]: representation, structure and mode put together, in RFC 959's
//! order, for one transfer.
//!
//! Retrieve: a source reads the stored file (text lines, TYPE I bytes, or TYPE I records in
//! their stored escaped form) and hands data, ends of record and restart-marker points down to
//! the page packer (STRU P) and the mode encoder. Store: the mode decoder reads the wire and
//! hands data, ends of record, end of file and markers up to [`Unpack`].
//!
//! Restart markers (MODE B and C only) go where every layer's state is clean, so that an
//! encoder started at the marker's offset continues exactly as the first one did: after a line
//! end (text), after an end of record (STRU R), at a page boundary (TYPE I STRU P), anywhere
//! (TYPE I STRU F). Text in STRU P gets none.

use super::block::BlockDecoder;
use super::compressed::CompressedDecoder;
use super::deflate::DeflateDecoder;
use super::page::{PageEncoder, PAGE_DATA};
use super::record::{EscapeParser, Item, Parsed};
use super::store::Unpack;
use super::stream::StreamDecoder;
use super::text::TextSource;
use super::wire::{filler, ModeEncoder, Wire};
use super::{CodecError, DataFormat, Marker, Mode, Representation, Structure};

/// Retrieve: stored file bytes in, wire bytes out, for one transfer.
///
/// Call [`Encoder::encode`] with the file's bytes in order, from the transfer's start offset,
/// then [`Encoder::finish`] at the end of the file; send what each appends. The output does not
/// depend on how the file was split into calls. After an error the encoder keeps returning it.
#[derive(Debug)]
pub struct Encoder {
    source: Source,
    pages: Option<PageEncoder>,
    /// Pages on their way to the mode encoder.
    page_bytes: Vec<u8>,
    mode: ModeEncoder,
    /// The stored-file offset of the next input byte.
    offset: u64,
    interval: Option<u64>,
    /// The stored-file offset at or after which the next restart marker goes.
    next_marker: Option<u64>,
    failed: Option<CodecError>,
    finished: bool,
}

impl Encoder {
    /// An encoder for a retrieve of the file from stored offset `start` (0, or the offset a
    /// `REST` gave: for MODE B and C, an earlier restart marker's text).
    ///
    /// `marker_interval`: in MODE B and C, put a restart marker at the first clean point after
    /// every so many stored bytes (`None` or 0: no markers). Markers count from the file's
    /// start; their text is the stored-file offset in decimal. Other modes ignore it.
    ///
    /// STRU P restarts only for TYPE I at a multiple of 255 (a page boundary); another `start`
    /// is an error from the first call.
    pub fn new(format: DataFormat, start: u64, marker_interval: Option<u64>) -> Encoder {
        let markers_carried = matches!(format.mode, Mode::Block | Mode::Compressed);
        let text_code_page = match format.representation {
            Representation::Image => None,
            Representation::Ascii(_) => Some(None),
            Representation::Ebcdic(_, cp) => Some(Some(cp)),
        };
        let records = format.structure == Structure::Record;
        let paged = format.structure == Structure::Page;
        let (source, clean_points) = match text_code_page {
            Some(cp) => (Source::Text(TextSource::new(cp, records, !paged)), !paged),
            None if records => (Source::Records(RecordSource::default()), true),
            None => (
                Source::Bytes {
                    page_aligned: paged,
                },
                true,
            ),
        };
        let interval = marker_interval.filter(|&n| n > 0 && markers_carried && clean_points);
        let mut failed = None;
        let pages = paged.then(|| {
            let first = match text_code_page {
                None if start.is_multiple_of(PAGE_DATA as u64) => start / PAGE_DATA as u64,
                _ if start == 0 => 0,
                _ => {
                    failed = Some(CodecError::Malformed(format!(
                        "a page-structured retrieve can restart only at a page boundary of a \
                         TYPE I file (a multiple of 255), not at {start}"
                    )));
                    0
                }
            };
            PageEncoder::new(u16::try_from(first).unwrap_or(u16::MAX))
        });
        Encoder {
            source,
            pages,
            page_bytes: Vec::new(),
            mode: ModeEncoder::new(format),
            offset: start,
            interval,
            next_marker: interval.and_then(|n| start.checked_add(n)),
            failed,
            finished: false,
        }
    }

    /// Consumes all of `input` (the next stored bytes), appending wire bytes to `out`: at most
    /// a constant factor of the input plus a bounded constant (one MODE B block, one page, the
    /// compressor's buffers).
    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.check()?;
        let result = self.encode_inner(input, out);
        self.remember(result)
    }

    /// The end of the stored file: writes what is held and the closing marks (the last
    /// record's end, MODE B/C's end of file, the last page, the zlib end).
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.check()?;
        self.finished = true;
        let result = self.finish_inner(out);
        self.remember(result)
    }

    fn check(&self) -> Result<(), CodecError> {
        usable(self.failed.as_ref(), self.finished, "encoder")
    }

    fn remember(&mut self, result: Result<(), CodecError>) -> Result<(), CodecError> {
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    fn encode_inner(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let mut rest = input;
        while !rest.is_empty() {
            let mut wire = Wire {
                pages: self.pages.as_mut(),
                page_bytes: &mut self.page_bytes,
                mode: &mut self.mode,
                out,
            };
            let (used, at_marker) =
                self.source
                    .feed(rest, &mut self.offset, self.next_marker, &mut wire)?;
            rest = rest.get(used..).unwrap_or_default();
            if at_marker {
                let text = self.offset.to_string();
                self.mode.marker(text.as_bytes(), out);
                self.next_marker = self.interval.and_then(|n| self.offset.checked_add(n));
            } else if used == 0 {
                break;
            }
        }
        Ok(())
    }

    fn finish_inner(&mut self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let mut wire = Wire {
            pages: self.pages.as_mut(),
            page_bytes: &mut self.page_bytes,
            mode: &mut self.mode,
            out,
        };
        self.source.finish(&mut wire)?;
        if let Some(pages) = wire.pages.as_mut() {
            wire.page_bytes.clear();
            pages.finish(wire.page_bytes);
            wire.mode.data(wire.page_bytes, wire.out)?;
            wire.page_bytes.clear();
        }
        self.mode.eof(out)
    }
}

/// What reads the stored file on retrieve.
#[derive(Debug)]
enum Source {
    /// TYPE I in STRU F or P: bytes as they are. A marker may go at any offset, or (STRU P) at
    /// any page boundary.
    Bytes { page_aligned: bool },
    /// TYPE I in STRU R: the stored escaped form, parsed.
    Records(RecordSource),
    /// TYPE A or E.
    Text(TextSource),
}

impl Source {
    fn feed(
        &mut self,
        input: &[u8],
        offset: &mut u64,
        due: Option<u64>,
        wire: &mut Wire<'_>,
    ) -> Result<(usize, bool), CodecError> {
        match self {
            Source::Bytes { page_aligned } => {
                // The first clean point at or after `due`.
                let at = due.map(|d| match page_aligned {
                    true => d
                        .div_ceil(PAGE_DATA as u64)
                        .saturating_mul(PAGE_DATA as u64),
                    false => d,
                });
                let take = match at {
                    Some(at) => {
                        let left = at.saturating_sub(*offset);
                        usize::try_from(left).unwrap_or(usize::MAX).min(input.len())
                    }
                    None => input.len(),
                };
                let data = input.get(..take).unwrap_or(input);
                wire.data(data)?;
                *offset = offset.saturating_add(take as u64);
                Ok((take, take > 0 && at == Some(*offset)))
            }
            Source::Records(records) => records.feed(input, offset, due, wire),
            Source::Text(text) => text.feed(input, offset, due, wire),
        }
    }

    fn finish(&mut self, wire: &mut Wire<'_>) -> Result<(), CodecError> {
        match self {
            Source::Bytes { .. } => Ok(()),
            Source::Records(records) => records.finish(wire),
            Source::Text(text) => text.finish(wire),
        }
    }
}

/// Reads a TYPE I record-structured file in its stored form (the escaped form of MODE S).
#[derive(Debug, Default)]
struct RecordSource {
    parser: EscapeParser,
    in_record: bool,
    /// The stored file's end-of-file code has been read.
    ended: bool,
}

impl RecordSource {
    fn feed(
        &mut self,
        input: &[u8],
        offset: &mut u64,
        due: Option<u64>,
        wire: &mut Wire<'_>,
    ) -> Result<(usize, bool), CodecError> {
        let mut pos = 0;
        while let Some(rest) = input.get(pos..).filter(|r| !r.is_empty()) {
            if self.ended {
                return Err(not_records(
                    *offset,
                    "it has data after its end-of-file code",
                ));
            }
            let parsed = self.parser.next(rest, rest.len());
            let eor = matches!(parsed, Parsed::Item(_, Item::Eor));
            let used = match parsed {
                Parsed::Item(used, item) => {
                    match item {
                        Item::Data(data) => {
                            wire.data(data)?;
                            self.in_record = true;
                        }
                        Item::Eor => {
                            wire.eor()?;
                            self.in_record = false;
                        }
                        Item::Eof if self.in_record => {
                            return Err(not_records(
                                *offset,
                                "its last record has no end-of-record code",
                            ))
                        }
                        Item::Eof => self.ended = true,
                        Item::EorEof => {
                            wire.eor()?;
                            self.in_record = false;
                            self.ended = true;
                        }
                    }
                    used
                }
                Parsed::NeedMore(used) => used,
                Parsed::Bad(at, _) => {
                    let at = offset.saturating_add(at as u64);
                    return Err(not_records(at, "0xFF is followed by an undefined code"));
                }
            };
            pos += used;
            *offset = offset.saturating_add(used as u64);
            if eor && due.is_some_and(|d| *offset >= d) {
                return Ok((pos, true));
            }
            if used == 0 {
                break;
            }
        }
        Ok((pos, false))
    }

    fn finish(&mut self, _wire: &mut Wire<'_>) -> Result<(), CodecError> {
        if self.parser.in_escape() || self.in_record {
            return Err(CodecError::Malformed(
                "the stored file is not record-structured: its last record has no \
                 end-of-record code (retrieve it with STRU F)"
                    .into(),
            ));
        }
        Ok(())
    }
}

fn not_records(offset: u64, why: &str) -> CodecError {
    CodecError::Malformed(format!(
        "the stored file is not record-structured at byte {offset}: {why} (retrieve it with STRU F)"
    ))
}

/// Store: wire bytes in, stored file bytes out, for one transfer.
///
/// Call [`Decoder::decode`] with the bytes read from the data connection until it has consumed
/// them all, taking a restart marker ([`Decoder::take_marker`]) whenever it stops after one,
/// then [`Decoder::finish`] when the connection closes. After an error the decoder keeps
/// returning it.
#[derive(Debug)]
pub struct Decoder {
    mode: ModeDecoder,
    unpack: Unpack,
    failed: Option<CodecError>,
    finished: bool,
}

impl Decoder {
    /// The most a single [`Decoder::decode`] call appends to `out`.
    pub const MAX_OUTPUT: usize = 256 * 1024;

    /// A decoder for a file stored from offset `start` (0, or the offset of a `REST` on a
    /// resumed upload).
    pub fn new(format: DataFormat, start: u64) -> Decoder {
        let records = format.structure == Structure::Record;
        let mode = match format.mode {
            Mode::Stream => ModeDecoder::Stream(StreamDecoder::new(records)),
            Mode::Block => ModeDecoder::Block(BlockDecoder::default()),
            Mode::Compressed => {
                ModeDecoder::Compressed(CompressedDecoder::new(filler(format.representation)))
            }
            Mode::Deflate { .. } => ModeDecoder::Deflate(Box::new(DeflateDecoder::new(records))),
        };
        Decoder {
            mode,
            unpack: Unpack::new(format.representation, format.structure, start),
            failed: None,
            finished: false,
        }
    }

    /// Takes wire bytes, appends stored bytes to `out`, and returns how many input bytes it
    /// consumed.
    ///
    /// It stops early (fewer than `input.len()`) right after a restart marker, which
    /// [`Decoder::take_marker`] then yields, or when it has appended nearly
    /// [`Decoder::MAX_OUTPUT`] bytes in this call (MODE Z, MODE C expansion); call again with
    /// the rest. Such a call may consume 0 bytes and still have appended output (MODE Z hands out
    /// what it had decompressed). After the wire's explicit end of file, further bytes are
    /// [`CodecError::Malformed`].
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, CodecError> {
        self.check()?;
        let limit = out.len().saturating_add(Self::MAX_OUTPUT);
        let unpack = &mut self.unpack;
        let result = match &mut self.mode {
            ModeDecoder::Stream(s) => s.decode(input, out, limit, unpack),
            ModeDecoder::Block(b) => b.decode(input, out, limit, unpack).map(|(n, _)| n),
            ModeDecoder::Compressed(c) => c.decode(input, out, limit, unpack).map(|(n, _)| n),
            ModeDecoder::Deflate(z) => z.decode(input, out, limit, unpack),
        };
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    /// The restart marker the last [`Decoder::decode`] call stopped after, with the stored
    /// offset of the data before it. Take it before the next call: a later marker replaces it.
    #[must_use]
    pub fn take_marker(&mut self) -> Option<Marker> {
        self.unpack.take_marker()
    }

    /// Whether the wire has announced the end of the file (MODE B/C's end of file, STRU R's
    /// end-of-file code, STRU P's last page, MODE Z's zlib end).
    pub fn ended(&self) -> bool {
        match &self.mode {
            ModeDecoder::Stream(s) => s.ended(&self.unpack),
            ModeDecoder::Block(b) => b.ended(),
            ModeDecoder::Compressed(c) => c.ended(),
            ModeDecoder::Deflate(z) => z.ended(),
        }
    }

    /// The data connection has closed (call after `decode` has consumed all input): writes what
    /// is held, and fails with [`CodecError::Truncated`] if the mode or structure needed an
    /// explicit end that did not come (MODE B/C's end of file, the last page, the zlib end, the
    /// end of the last record). MODE S STRU F: the close is the end.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if std::mem::replace(&mut self.finished, true) {
            return Ok(());
        }
        let unpack = &mut self.unpack;
        let result = match &mut self.mode {
            ModeDecoder::Stream(s) => s.finish(out, unpack),
            ModeDecoder::Block(b) => b.finish(),
            ModeDecoder::Compressed(c) => c.finish(),
            ModeDecoder::Deflate(z) => z.finish(out, unpack),
        };
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    fn check(&self) -> Result<(), CodecError> {
        usable(self.failed.as_ref(), self.finished, "decoder")
    }
}

/// The mode on store.
#[derive(Debug)]
enum ModeDecoder {
    Stream(StreamDecoder),
    Block(BlockDecoder),
    Compressed(CompressedDecoder),
    Deflate(Box<DeflateDecoder>),
}

/// An encoder or decoder that failed gives the same error again; one that finished takes
/// nothing more.
fn usable(failed: Option<&CodecError>, finished: bool, what: &str) -> Result<(), CodecError> {
    if let Some(e) = failed {
        return Err(e.clone());
    }
    if finished {
        return Err(CodecError::Malformed(format!(
            "the {what} has already finished"
        )));
    }
    Ok(())
}
