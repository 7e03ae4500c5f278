//! The store side of representation and structure: what a mode decoder has read off the wire
//! (data, end of record, end of file, a restart marker) into the bytes of the stored file.
//!
//! - STRU F: data through the representation (TYPE A: CRLF → LF; TYPE E: EBCDIC → UTF-8).
//! - STRU R, text: each record becomes one stored line: its data, then LF. A record holding a
//!   line end (TYPE A: LF; TYPE E: NL 0x15) could not be read back as the same record:
//!   [`CodecError::Malformed`].
//! - STRU R, TYPE I: the records in the escaped form of `record` (0xFF 0x01 …).
//! - STRU P: the pages' data, through the representation.
//!
//! [`Unpack`] counts the stored bytes it has written, so that a restart marker is reported with
//! the stored-file offset of the data before it. Everything before a marker is written out at
//! the marker (a CR held back to see whether LF follows, a held-back end of record), so that a
//! transfer resumed from that offset stores exactly what the uninterrupted one would have.
//!
//! It also holds the bound on what one decode call may append: a mode decoder takes a data step
//! only while [`data_room`] allows it.

use super::ascii::AsciiDecoder;
use super::ebcdic::{ebcdic_to_utf8, Table, NL};
use super::page::PageDecoder;
use super::record::RecordWriter;
use super::{CodecError, Marker, Representation, Structure};

/// The most stored bytes one non-data event can write (end of record, end of file, the flush
/// at a restart marker, one page header's worth of nothing), with room to spare.
pub(super) const SLACK: usize = 16;
/// The most stored bytes one wire data byte becomes (TYPE E: two UTF-8 bytes; TYPE I STRU R:
/// a doubled 0xFF).
const EXPANSION: usize = 2;
/// The longest restart marker accepted.
pub(super) const MAX_MARKER: usize = 64;

/// How many wire data bytes may still be decoded before `out` reaches `limit`.
pub(super) fn data_room(out: &[u8], limit: usize) -> usize {
    limit.saturating_sub(out.len()).saturating_sub(SLACK) / EXPANSION
}

/// The text of a restart marker as it arrives, at most [`MAX_MARKER`] bytes.
#[derive(Clone, Debug)]
pub(super) struct MarkerText {
    text: [u8; MAX_MARKER],
    len: usize,
}

impl Default for MarkerText {
    fn default() -> MarkerText {
        MarkerText {
            text: [0; MAX_MARKER],
            len: 0,
        }
    }
}

impl MarkerText {
    pub(super) fn clear(&mut self) {
        self.len = 0;
    }

    pub(super) fn push(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        let end = self.len.saturating_add(bytes.len());
        match self.text.get_mut(self.len..end) {
            Some(slot) => {
                slot.copy_from_slice(bytes);
                self.len = end;
                Ok(())
            }
            None => Err(bad_marker()),
        }
    }

    pub(super) fn text(&self) -> &[u8] {
        self.text.get(..self.len).unwrap_or_default()
    }
}

fn bad_marker() -> CodecError {
    CodecError::Malformed(
        "a restart marker must be 1 to 64 printable ASCII characters without spaces".into(),
    )
}

/// The representation's store-side transform.
#[derive(Clone, Debug)]
enum Charset {
    /// Bytes as they are (TYPE I; TYPE A in STRU R, whose records carry no line ends).
    Same,
    /// TYPE A in STRU F and P: CRLF → LF.
    Ascii(AsciiDecoder),
    /// TYPE E: EBCDIC → UTF-8.
    Ebcdic(&'static Table),
}

impl Charset {
    fn data(&mut self, data: &[u8], out: &mut Vec<u8>) {
        match self {
            Charset::Same => out.extend_from_slice(data),
            Charset::Ascii(dec) => dec.decode(data, out),
            Charset::Ebcdic(table) => ebcdic_to_utf8(table, data, out),
        }
    }

    /// Writes a CR held back to see whether an LF follows.
    fn flush(&mut self, out: &mut Vec<u8>) {
        if let Charset::Ascii(dec) = self {
            dec.finish(out);
        }
    }
}

#[derive(Clone, Debug)]
enum Layout {
    File,
    TextRecords {
        /// The wire's line-end byte, which a record may not hold.
        line_end: u8,
        in_record: bool,
    },
    ImageRecords(RecordWriter),
    Pages(PageDecoder),
}

/// Representation and structure on the store side; counts the stored offset.
#[derive(Clone, Debug)]
pub(super) struct Unpack {
    layout: Layout,
    charset: Charset,
    offset: u64,
    marker: Option<Marker>,
}

impl Unpack {
    /// For a file stored from offset `start`.
    pub(super) fn new(representation: Representation, structure: Structure, start: u64) -> Unpack {
        let (line_end, text_charset) = match representation {
            Representation::Image => (None, Charset::Same),
            Representation::Ascii(_) => (Some(b'\n'), Charset::Ascii(AsciiDecoder::new())),
            Representation::Ebcdic(_, cp) => (Some(NL), Charset::Ebcdic(cp.table())),
        };
        let (layout, charset) = match (structure, line_end) {
            (Structure::File, _) => (Layout::File, text_charset),
            (Structure::Page, _) => (Layout::Pages(PageDecoder::new(start > 0)), text_charset),
            (Structure::Record, None) => {
                (Layout::ImageRecords(RecordWriter::default()), Charset::Same)
            }
            (Structure::Record, Some(line_end)) => {
                let layout = Layout::TextRecords {
                    line_end,
                    in_record: false,
                };
                let charset = match text_charset {
                    Charset::Ascii(_) => Charset::Same,
                    other => other,
                };
                (layout, charset)
            }
        };
        Unpack {
            layout,
            charset,
            offset: start,
            marker: None,
        }
    }

    /// Data off the wire.
    pub(super) fn data(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let before = out.len();
        let result = self.data_inner(data, out);
        self.count(before, out);
        result
    }

    fn data_inner(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let Unpack {
            layout, charset, ..
        } = self;
        match layout {
            Layout::File => charset.data(data, out),
            Layout::TextRecords {
                line_end,
                in_record,
            } => {
                if data.contains(line_end) {
                    return Err(CodecError::Malformed(format!(
                        "a record holds a line end (byte 0x{line_end:02X}); Wharf stores each \
                         record as one line, so a record cannot contain one"
                    )));
                }
                charset.data(data, out);
                *in_record |= !data.is_empty();
            }
            Layout::ImageRecords(writer) => writer.data(data, out),
            Layout::Pages(pages) => {
                let mut rest = data;
                while !rest.is_empty() {
                    let (used, page_data) = pages.next(rest)?;
                    if let Some(page_data) = page_data {
                        charset.data(page_data, out);
                    }
                    if used == 0 {
                        break;
                    }
                    rest = rest.get(used..).unwrap_or_default();
                }
            }
        }
        Ok(())
    }

    /// An end-of-record mark.
    pub(super) fn eor(&mut self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let before = out.len();
        let result = match &mut self.layout {
            Layout::File => Err(CodecError::Malformed(
                "an end-of-record mark came in a file sent without record structure (STRU F)"
                    .into(),
            )),
            Layout::Pages(_) => Err(CodecError::Malformed(
                "an end-of-record mark came in a page-structured file (STRU P)".into(),
            )),
            Layout::TextRecords { in_record, .. } => {
                out.push(b'\n');
                *in_record = false;
                Ok(())
            }
            Layout::ImageRecords(writer) => {
                writer.eor(out);
                Ok(())
            }
        };
        self.count(before, out);
        result
    }

    /// The mode's explicit end of file (MODE B/C's EOF flag, MODE S's 0xFF 0x02).
    pub(super) fn eof(&mut self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let before = out.len();
        let result = match &mut self.layout {
            Layout::File => Ok(()),
            Layout::TextRecords {
                in_record: true, ..
            } => Err(last_record_open()),
            Layout::TextRecords { .. } => Ok(()),
            Layout::ImageRecords(writer) => writer.eof(out).map_err(|_| last_record_open()),
            Layout::Pages(pages) if !pages.ended() => Err(CodecError::Truncated(
                "the end of the file came before the last page".into(),
            )),
            Layout::Pages(_) => Ok(()),
        };
        self.charset.flush(out);
        self.count(before, out);
        result
    }

    /// The wire ended without an explicit end of file: the connection closed in MODE S, or the
    /// zlib stream ended in MODE Z. An incomplete record or page is [`CodecError::Truncated`].
    pub(super) fn close(&mut self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let before = out.len();
        let result = match &mut self.layout {
            Layout::File => Ok(()),
            Layout::TextRecords {
                in_record: true, ..
            } => Err(record_cut()),
            Layout::TextRecords { .. } => Ok(()),
            // An open record makes `eof` refuse (and write nothing): a cut record.
            Layout::ImageRecords(writer) => writer.eof(out).map_err(|_| record_cut()),
            Layout::Pages(pages) if !pages.ended() => Err(CodecError::Truncated(
                "the data ended before the last page".into(),
            )),
            Layout::Pages(_) => Ok(()),
        };
        self.charset.flush(out);
        self.count(before, out);
        result
    }

    /// A restart marker: writes out everything before it and records it with its offset (for
    /// [`Unpack::take_marker`]).
    pub(super) fn marker(&mut self, text: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let printable = text.iter().all(|b| (0x21..=0x7E).contains(b));
        if text.is_empty() || text.len() > MAX_MARKER || !printable {
            return Err(bad_marker());
        }
        let before = out.len();
        match &mut self.layout {
            Layout::Pages(pages) if pages.in_page() => {
                return Err(CodecError::Malformed(
                    "a restart marker came inside a page; it may only come between pages".into(),
                ))
            }
            Layout::ImageRecords(writer) => writer.flush(out),
            _ => {}
        }
        self.charset.flush(out);
        self.count(before, out);
        self.marker = Some(Marker {
            sender: String::from_utf8_lossy(text).into_owned(),
            offset: self.offset,
        });
        Ok(())
    }

    pub(super) fn take_marker(&mut self) -> Option<Marker> {
        self.marker.take()
    }

    /// STRU P: the last page has come.
    pub(super) fn pages_ended(&self) -> bool {
        matches!(&self.layout, Layout::Pages(pages) if pages.ended())
    }

    fn count(&mut self, before: usize, out: &[u8]) {
        let added = out.len().saturating_sub(before) as u64;
        self.offset = self.offset.saturating_add(added);
    }
}

fn last_record_open() -> CodecError {
    CodecError::Malformed(
        "the file ended inside a record: every record, the last one too, needs its end-of-record \
         mark"
            .into(),
    )
}

fn record_cut() -> CodecError {
    CodecError::Truncated("the data ended in the middle of a record".into())
}
