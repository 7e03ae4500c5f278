//! STRU R's byte form (RFC 959 §3.4.1): records as data bytes closed by two-byte control codes.
//!
//! - `0xFF 0x01`: end of record (EOR);
//! - `0xFF 0x02`: end of file (EOF); `0xFF 0x03`: both at once;
//! - `0xFF 0xFF`: one data byte 0xFF.
//!
//! The same form serves twice: it is MODE S's wire form of a record-structured file, and it is
//! how a TYPE I record-structured file is stored on the server (invertible and streaming, so no
//! record is ever held in memory). [`RecordWriter`] writes it, [`EscapeParser`] reads it; both
//! keep at most one pending byte of state.

/// Writes records in the escaped form. An end of record is held back until the next event, so
/// that the last record's EOR and the EOF go out together as `0xFF 0x03`.
#[derive(Clone, Debug, Default)]
pub(super) struct RecordWriter {
    /// An EOR not yet written.
    pending_eor: bool,
    /// Data written since the last EOR.
    in_record: bool,
}

/// An end of file inside a record (the RFC wants every EOR explicit, the last one included).
pub(super) struct OpenRecord;

impl RecordWriter {
    /// Record data; each 0xFF is doubled.
    pub(super) fn data(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if data.is_empty() {
            return;
        }
        self.flush(out);
        self.in_record = true;
        out.reserve(data.len() + 8);
        for piece in data.split_inclusive(|&b| b == 0xFF) {
            out.extend_from_slice(piece);
            if piece.last() == Some(&0xFF) {
                out.push(0xFF);
            }
        }
    }

    /// The end of the current record.
    pub(super) fn eor(&mut self, out: &mut Vec<u8>) {
        self.flush(out);
        self.pending_eor = true;
        self.in_record = false;
    }

    /// The end of the file: `0xFF 0x03` after a record, `0xFF 0x02` alone (no record at all, or
    /// after a point where the pending EOR was flushed).
    pub(super) fn eof(&mut self, out: &mut Vec<u8>) -> Result<(), OpenRecord> {
        if self.in_record {
            return Err(OpenRecord);
        }
        let code = if std::mem::take(&mut self.pending_eor) {
            3
        } else {
            2
        };
        out.extend_from_slice(&[0xFF, code]);
        Ok(())
    }

    /// Writes a held-back EOR (before other data, or at a restart marker, where everything
    /// before the marker must be in the stored file).
    pub(super) fn flush(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending_eor) {
            out.extend_from_slice(&[0xFF, 0x01]);
        }
    }

    /// Whether data has come since the last EOR.
    pub(super) fn in_record(&self) -> bool {
        self.in_record
    }
}

/// One item of the escaped form.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Item<'a> {
    /// Record data (a 0xFF here is the data byte of a `0xFF 0xFF` pair).
    Data(&'a [u8]),
    /// `0xFF 0x01`.
    Eor,
    /// `0xFF 0x02`.
    Eof,
    /// `0xFF 0x03`.
    EorEof,
}

/// What [`EscapeParser::next`] found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Parsed<'a> {
    /// An item, after consuming this many input bytes.
    Item(usize, Item<'a>),
    /// No item: this many bytes (0, or 1 for a lone 0xFF) were consumed, and the rest is empty
    /// or is data beyond `max_data`.
    NeedMore(usize),
    /// A 0xFF followed by an undefined code; the input byte at this index is that code.
    Bad(usize, u8),
}

/// Reads the escaped form, one item at a time.
#[derive(Clone, Debug, Default)]
pub(super) struct EscapeParser {
    /// A 0xFF has been read and its second byte has not.
    after_ff: bool,
}

impl EscapeParser {
    /// The next item of `input`, with at most `max_data` data bytes.
    pub(super) fn next<'a>(&mut self, input: &'a [u8], max_data: usize) -> Parsed<'a> {
        let mut skip = 0;
        if !self.after_ff {
            // One byte past `max_data`: an escape right after the data allowed is still found.
            let end = max_data.saturating_add(1).min(input.len());
            let window = input.get(..end).unwrap_or(input);
            match window.iter().position(|&b| b == 0xFF) {
                Some(0) => {
                    self.after_ff = true;
                    skip = 1;
                }
                Some(i) => return Parsed::Item(i, Item::Data(&window[..i])),
                None => {
                    let data = window.get(..max_data.min(window.len())).unwrap_or(window);
                    if data.is_empty() {
                        return Parsed::NeedMore(0);
                    }
                    return Parsed::Item(data.len(), Item::Data(data));
                }
            }
        }
        let Some(&code) = input.get(skip) else {
            return Parsed::NeedMore(skip);
        };
        self.after_ff = false;
        let item = match code {
            0xFF => Item::Data(&input[skip..=skip]),
            1 => Item::Eor,
            2 => Item::Eof,
            3 => Item::EorEof,
            other => return Parsed::Bad(skip, other),
        };
        Parsed::Item(skip + 1, item)
    }

    /// Whether the input ended between a 0xFF and its second byte.
    pub(super) fn in_escape(&self) -> bool {
        self.after_ff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Vec<String> {
        let mut p = EscapeParser::default();
        let mut rest = input;
        let mut items = Vec::new();
        loop {
            match p.next(rest, 4) {
                Parsed::Item(n, item) => {
                    items.push(format!("{item:?}"));
                    rest = &rest[n..];
                }
                Parsed::NeedMore(_) => return items,
                Parsed::Bad(i, b) => {
                    items.push(format!("bad {i} {b}"));
                    return items;
                }
            }
        }
    }

    #[test]
    fn the_rfc_codes() {
        // §3.4.1: "If a byte of all ones was intended to be sent as data, it should be
        // repeated in the second byte of the control code."
        let mut w = RecordWriter::default();
        let mut out = Vec::new();
        w.data(b"a\xffb", &mut out);
        w.eor(&mut out);
        w.eor(&mut out);
        w.data(b"\xff", &mut out);
        w.eor(&mut out);
        assert!(w.eof(&mut out).is_ok());
        assert_eq!(out, b"a\xff\xffb\xff\x01\xff\x01\xff\xff\xff\x03");
        assert_eq!(
            parse_all(&out),
            [
                "Data([97])",
                "Data([255])",
                "Data([98])",
                "Eor",
                "Eor",
                "Data([255])",
                "EorEof"
            ]
        );
        let mut out = Vec::new();
        assert!(RecordWriter::default().eof(&mut out).is_ok());
        assert_eq!(out, b"\xff\x02");
        let mut w = RecordWriter::default();
        w.data(b"x", &mut Vec::new());
        assert!(w.eof(&mut Vec::new()).is_err());
    }

    #[test]
    fn undefined_codes_and_split_escapes() {
        assert_eq!(parse_all(b"ab\xff\x04"), ["Data([97, 98])", "bad 1 4"]);
        let mut p = EscapeParser::default();
        assert_eq!(p.next(b"\xff", 10), Parsed::NeedMore(1));
        assert!(p.in_escape());
        assert_eq!(p.next(b"\x02", 10), Parsed::Item(1, Item::Eof));
        assert_eq!(p.next(b"abcdef", 3), Parsed::Item(3, Item::Data(b"abc")));
        assert_eq!(p.next(b"abc", 0), Parsed::NeedMore(0));
        assert_eq!(
            p.next(b"abc\xff\x01", 3),
            Parsed::Item(3, Item::Data(b"abc"))
        );
        assert_eq!(p.next(b"\xff\x01", 0), Parsed::Item(2, Item::Eor));
    }
}
