//! MODE S (RFC 959 §3.4.1): the data as a stream of bytes.
//!
//! - STRU F and STRU P: the bytes as they are (pages with their headers); the end of the file
//!   is the connection's close (STRU P: the last page).
//! - STRU R: records in the escaped form of `record` (0xFF 0x01 EOR, 0xFF 0x02 EOF, 0xFF 0x03
//!   both, 0xFF 0xFF a data byte). The end is the EOF code, or the connection's close right
//!   after a complete record. Anything after the EOF code is [`CodecError::Malformed`].
//!
//! No restart markers: RFC 959 §3.5 defines them for MODE B and C only.

use super::record::{EscapeParser, Item, Parsed, RecordWriter};
use super::store::{data_room, Unpack};
use super::CodecError;

/// MODE S on retrieve.
#[derive(Clone, Debug)]
pub(super) enum StreamEncoder {
    Plain,
    Records(RecordWriter),
}

impl StreamEncoder {
    pub(super) fn new(records: bool) -> StreamEncoder {
        if records {
            StreamEncoder::Records(RecordWriter::default())
        } else {
            StreamEncoder::Plain
        }
    }

    pub(super) fn data(&mut self, data: &[u8], out: &mut Vec<u8>) {
        match self {
            StreamEncoder::Plain => out.extend_from_slice(data),
            StreamEncoder::Records(writer) => writer.data(data, out),
        }
    }

    pub(super) fn eor(&mut self, out: &mut Vec<u8>) {
        if let StreamEncoder::Records(writer) = self {
            writer.eor(out);
        }
    }

    pub(super) fn eof(&mut self, out: &mut Vec<u8>) {
        if let StreamEncoder::Records(writer) = self {
            if writer.in_record() {
                writer.eor(out);
            }
            // Cannot fail: no record is open.
            let _ = writer.eof(out);
        }
    }
}

/// MODE S on store.
#[derive(Clone, Debug)]
pub(super) struct StreamDecoder {
    /// `Some` in STRU R.
    records: Option<EscapeParser>,
    /// STRU R: the EOF code has come.
    ended: bool,
}

impl StreamDecoder {
    pub(super) fn new(records: bool) -> StreamDecoder {
        StreamDecoder {
            records: records.then(EscapeParser::default),
            ended: false,
        }
    }

    /// Decodes while `out` stays within `limit`; returns the bytes consumed.
    pub(super) fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
        unpack: &mut Unpack,
    ) -> Result<usize, CodecError> {
        let mut pos = 0;
        while let Some(rest) = input.get(pos..).filter(|r| !r.is_empty()) {
            let room = data_room(out, limit);
            if room == 0 {
                break;
            }
            let Some(parser) = &mut self.records else {
                let data = rest.get(..room.min(rest.len())).unwrap_or(rest);
                unpack.data(data, out)?;
                pos += data.len();
                continue;
            };
            if self.ended {
                return Err(CodecError::Malformed(
                    "data came after the end-of-file code (0xFF 0x02)".into(),
                ));
            }
            match parser.next(rest, room) {
                Parsed::Item(used, item) => {
                    pos += used;
                    match item {
                        Item::Data(data) => unpack.data(data, out)?,
                        Item::Eor => unpack.eor(out)?,
                        Item::Eof => {
                            self.ended = true;
                            unpack.eof(out)?;
                        }
                        Item::EorEof => {
                            self.ended = true;
                            unpack.eor(out)?;
                            unpack.eof(out)?;
                        }
                    }
                }
                Parsed::NeedMore(used) => {
                    pos += used;
                    break;
                }
                Parsed::Bad(_, code) => {
                    return Err(CodecError::Malformed(format!(
                    "0xFF followed by 0x{code:02X} in a record-structured stream (the codes are \
                         0xFF 0x01 end of record, 0xFF 0x02 end of file, 0xFF 0x03 both, 0xFF \
                         0xFF a data byte 0xFF)"
                )))
                }
            }
        }
        Ok(pos)
    }

    /// The end of the stream (the connection's close, or MODE Z's zlib end).
    pub(super) fn finish(
        &mut self,
        out: &mut Vec<u8>,
        unpack: &mut Unpack,
    ) -> Result<(), CodecError> {
        if self.ended {
            return Ok(());
        }
        if self.records.as_ref().is_some_and(EscapeParser::in_escape) {
            return Err(CodecError::Truncated(
                "the data ended between 0xFF and the code after it".into(),
            ));
        }
        self.ended = true;
        unpack.close(out)
    }

    /// Whether the stream has said where the file ends (STRU R's EOF code, STRU P's last page).
    pub(super) fn ended(&self, unpack: &Unpack) -> bool {
        (self.records.is_some() && self.ended) || unpack.pages_ended()
    }
}
