//! Retrieve for the text types (TYPE A and TYPE E): stored lines into the wire's characters,
//! with line ends as the structure wants them.
//!
//! - STRU F and STRU P: a line end is part of the data: CRLF for TYPE A ([`AsciiEncoder`]),
//!   NL 0x15 for TYPE E (the code page's `swaplfnl` mapping of LF).
//! - STRU R: one stored line is one record; its LF becomes the end-of-record mark and is not
//!   sent as data. A last line without a final LF is still a record. No CR is added or removed.
//!
//! A restart marker may follow any line end (there the line-end state is clean and no UTF-8
//! character is open); not in STRU P, whose page numbers a restarted transfer could not know.

use super::ascii::AsciiEncoder;
use super::ebcdic::{Table, Utf8ToEbcdic};
use super::wire::Wire;
use super::{CodePage, CodecError};

/// How much input is converted at a time (bounds the scratch buffer).
const PIECE: usize = 16 * 1024;

#[derive(Clone, Debug)]
enum Charset {
    Ascii(AsciiEncoder),
    Ebcdic(&'static Table, Utf8ToEbcdic),
}

/// Reads a stored text file for a retrieve.
#[derive(Clone, Debug)]
pub(super) struct TextSource {
    charset: Charset,
    records: bool,
    /// Whether a line end is a clean point for a restart marker.
    markers: bool,
    /// Bytes of the current line have been read (STRU R: the last line needs its EOR).
    in_line: bool,
    scratch: Vec<u8>,
}

impl TextSource {
    /// TYPE A (`code_page` `None`) or TYPE E, as records or not, with markers at line ends or
    /// not.
    pub(super) fn new(code_page: Option<CodePage>, records: bool, markers: bool) -> TextSource {
        let charset = match code_page {
            None => Charset::Ascii(AsciiEncoder::new()),
            Some(cp) => Charset::Ebcdic(cp.table(), Utf8ToEbcdic::default()),
        };
        TextSource {
            charset,
            records,
            markers,
            in_line: false,
            scratch: Vec::new(),
        }
    }

    /// Converts `input`, which starts at stored offset `*offset`, advancing it. Stops right
    /// after the first line end at or past `due` (returning `true`); otherwise consumes all.
    pub(super) fn feed(
        &mut self,
        input: &[u8],
        offset: &mut u64,
        due: Option<u64>,
        wire: &mut Wire<'_>,
    ) -> Result<(usize, bool), CodecError> {
        // Lines matter to records and to a marker that may fall due; otherwise (a TYPE A or E
        // download in STRU F or P between markers) whole pieces go through.
        let by_line = self.records || (self.markers && due.is_some());
        let mut pos = 0;
        while let Some(rest) = input.get(pos..).filter(|r| !r.is_empty()) {
            let piece = rest.get(..PIECE.min(rest.len())).unwrap_or(rest);
            let line_end = if by_line {
                piece.iter().position(|&b| b == b'\n')
            } else {
                None
            };
            let (line, ends) = match line_end {
                Some(i) => (piece.get(..=i).unwrap_or(piece), true),
                None => (piece, piece.last() == Some(&b'\n')),
            };
            self.convert(line, ends, *offset, wire)?;
            pos += line.len();
            *offset = offset.saturating_add(line.len() as u64);
            self.in_line = !ends;
            if ends && self.markers && due.is_some_and(|d| *offset >= d) {
                return Ok((pos, true));
            }
        }
        Ok((pos, false))
    }

    /// `line` is a piece of one line, `ends` whether its last byte is the line's LF.
    fn convert(
        &mut self,
        line: &[u8],
        ends: bool,
        offset: u64,
        wire: &mut Wire<'_>,
    ) -> Result<(), CodecError> {
        let data = if self.records && ends {
            line.get(..line.len().saturating_sub(1)).unwrap_or_default()
        } else {
            line
        };
        match &mut self.charset {
            Charset::Ascii(_) if self.records => wire.data(data)?,
            Charset::Ascii(enc) => {
                self.scratch.clear();
                enc.encode(data, &mut self.scratch);
                wire.data(&self.scratch)?;
            }
            Charset::Ebcdic(table, utf8) => {
                self.scratch.clear();
                utf8.convert(table, data, offset, &mut self.scratch)?;
                if self.records && ends {
                    // The LF is not data: a character may not be open across it.
                    utf8.end()?;
                }
                wire.data(&self.scratch)?;
            }
        }
        if self.records && ends {
            wire.eor()?;
        }
        Ok(())
    }

    /// The end of the stored file: the last line's record, or an open UTF-8 character's error.
    pub(super) fn finish(&mut self, wire: &mut Wire<'_>) -> Result<(), CodecError> {
        if let Charset::Ebcdic(_, utf8) = &mut self.charset {
            utf8.end()?;
        }
        if self.records && std::mem::take(&mut self.in_line) {
            wire.eor()?;
        }
        Ok(())
    }
}
