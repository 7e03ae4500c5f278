//! MODE B (RFC 959 §3.4.2): blocks behind a 3-byte header, a descriptor byte and a 16-bit byte
//! count. Descriptor codes: 128 the block ends a record (EOR), 64 it ends the file (EOF),
//! 32 suspected errors, 16 the block is a restart marker.
//!
//! Retrieve ([`BlockEncoder`]): data in blocks of up to 65,535 bytes, holding at most one
//! block. A record's last block carries EOR; the file's last block carries EOF (with EOR on the
//! last record: 192), as an empty block when the data has already gone. A restart marker is a
//! block of its own whose text is the decimal stored-file offset (e.g. `[16, 0, 6, "123456"]`).
//!
//! Store ([`BlockDecoder`]): a header at a time; data goes straight through. Suspect data is
//! stored as it is. A marker block's text (1 to 64 printable characters) is reported, and the
//! decoder stops right after it. Undefined descriptor bits, anything after the EOF block, and a
//! close before it are errors.

use super::store::{data_room, MarkerText, Unpack, MAX_MARKER};
use super::CodecError;

/// Descriptor code: the end of the block is the end of a record.
pub(super) const EOR: u8 = 128;
/// Descriptor code: the end of the block is the end of the file.
pub(super) const EOF: u8 = 64;
/// Descriptor code: the block is a restart marker.
pub(super) const MARKER: u8 = 16;
/// Bits RFC 959 assigns no meaning.
pub(super) const UNDEFINED: u8 = 0x0F;

const MAX_BLOCK: usize = u16::MAX as usize;

/// A descriptor's codes taking effect, at the end of its block (MODE B) or of the string its
/// escape announced (MODE C): the restart marker held in `marker`, then the end of the
/// record, then the end of the file (which sets `ended`). Returns whether it was a marker.
pub(super) fn apply_descriptor(
    descriptor: u8,
    marker: &MarkerText,
    ended: &mut bool,
    out: &mut Vec<u8>,
    unpack: &mut Unpack,
) -> Result<bool, CodecError> {
    let is_marker = descriptor & MARKER != 0;
    if is_marker {
        unpack.marker(marker.text(), out)?;
    }
    if descriptor & EOR != 0 {
        unpack.eor(out)?;
    }
    if descriptor & EOF != 0 {
        *ended = true;
        unpack.eof(out)?;
    }
    Ok(is_marker)
}

/// MODE B on retrieve.
#[derive(Clone, Debug, Default)]
pub(super) struct BlockEncoder {
    block: Vec<u8>,
    /// The block held is a record's last: it goes out with EOR (and EOF, if the file ends).
    pending_eor: bool,
}

impl BlockEncoder {
    pub(super) fn data(&mut self, mut data: &[u8], out: &mut Vec<u8>) {
        if data.is_empty() {
            return;
        }
        if std::mem::take(&mut self.pending_eor) {
            self.emit(EOR, out);
        }
        while !data.is_empty() {
            if self.block.len() >= MAX_BLOCK {
                self.emit(0, out);
            }
            let take = (MAX_BLOCK - self.block.len()).min(data.len());
            let (now, rest) = data.split_at(take);
            self.block.extend_from_slice(now);
            data = rest;
        }
    }

    pub(super) fn eor(&mut self, out: &mut Vec<u8>) {
        if self.pending_eor {
            self.emit(EOR, out);
        }
        self.pending_eor = true;
    }

    pub(super) fn marker(&mut self, text: &[u8], out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending_eor) {
            self.emit(EOR, out);
        } else if !self.block.is_empty() {
            self.emit(0, out);
        }
        let len = u16::try_from(text.len()).unwrap_or(u16::MAX);
        out.push(MARKER);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(text.get(..usize::from(len)).unwrap_or(text));
    }

    pub(super) fn eof(&mut self, out: &mut Vec<u8>) {
        let eor = if std::mem::take(&mut self.pending_eor) {
            EOR
        } else {
            0
        };
        self.emit(EOF | eor, out);
    }

    fn emit(&mut self, descriptor: u8, out: &mut Vec<u8>) {
        let len = u16::try_from(self.block.len()).unwrap_or(u16::MAX);
        out.reserve(3 + self.block.len());
        out.push(descriptor);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.block);
        self.block.clear();
    }
}

/// MODE B on store.
#[derive(Clone, Debug, Default)]
pub(super) struct BlockDecoder {
    header: [u8; 3],
    have: usize,
    descriptor: u8,
    /// Bytes of the current block still to come.
    remaining: usize,
    in_block: bool,
    marker: MarkerText,
    ended: bool,
}

impl BlockDecoder {
    /// Decodes while `out` stays within `limit`; returns the bytes consumed and whether it
    /// stopped right after a restart marker.
    pub(super) fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
        unpack: &mut Unpack,
    ) -> Result<(usize, bool), CodecError> {
        let mut pos = 0;
        while let Some(rest) = input.get(pos..).filter(|r| !r.is_empty()) {
            if self.ended {
                return Err(CodecError::Malformed(
                    "data came after the end-of-file block".into(),
                ));
            }
            let room = data_room(out, limit);
            if room == 0 {
                break;
            }
            if !self.in_block {
                if let (Some(slot), Some(&b)) = (self.header.get_mut(self.have), rest.first()) {
                    *slot = b;
                }
                self.have += 1;
                pos += 1;
                if self.have == self.header.len() {
                    self.have = 0;
                    self.start_block()?;
                }
            } else if self.descriptor & MARKER != 0 {
                let n = self.remaining.min(rest.len());
                self.marker.push(rest.get(..n).unwrap_or_default())?;
                self.remaining -= n;
                pos += n;
            } else {
                let n = self.remaining.min(rest.len()).min(room);
                unpack.data(rest.get(..n).unwrap_or_default(), out)?;
                self.remaining -= n;
                pos += n;
            }
            if self.in_block && self.remaining == 0 {
                self.in_block = false;
                if self.end_block(out, unpack)? {
                    return Ok((pos, true));
                }
            }
        }
        Ok((pos, false))
    }

    fn start_block(&mut self) -> Result<(), CodecError> {
        let [descriptor, high, low] = self.header;
        if descriptor & UNDEFINED != 0 {
            return Err(CodecError::Malformed(format!(
                "block descriptor {descriptor} has undefined bits (the codes are 128, 64, 32 and \
                 16)"
            )));
        }
        self.descriptor = descriptor;
        self.remaining = usize::from(u16::from_be_bytes([high, low]));
        if descriptor & MARKER != 0 {
            if self.remaining == 0 || self.remaining > MAX_MARKER {
                return Err(CodecError::Malformed(format!(
                    "a restart-marker block holds {} bytes; a marker has 1 to 64",
                    self.remaining
                )));
            }
            self.marker.clear();
        }
        self.in_block = true;
        Ok(())
    }

    /// The block's descriptor codes take effect at its end. Returns whether it was a marker.
    fn end_block(&mut self, out: &mut Vec<u8>, unpack: &mut Unpack) -> Result<bool, CodecError> {
        apply_descriptor(self.descriptor, &self.marker, &mut self.ended, out, unpack)
    }

    /// The connection has closed.
    pub(super) fn finish(&mut self) -> Result<(), CodecError> {
        if self.ended {
            return Ok(());
        }
        Err(CodecError::Truncated(
            "the connection closed before the end-of-file block (MODE B)".into(),
        ))
    }

    pub(super) fn ended(&self) -> bool {
        self.ended
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{decode, decode_with, encode, encode_with, format, A, I};
    use super::super::{CodecError, Decoder, Mode, Structure};

    #[test]
    fn blocks_markers_and_the_end() {
        let f = format(I, Structure::File, Mode::Block);
        assert_eq!(encode(f, b"").unwrap(), [64, 0, 0]);
        assert_eq!(encode(f, b"abc").unwrap(), [64, 0, 3, b'a', b'b', b'c']);
        // 150,000 bytes with a marker every 100,000: a full block, the rest up to the marker,
        // the six-character marker block of RFC 959 §3.4.2, then the last block with EOF.
        let data: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
        let wire = encode_with(f, &data, 0, Some(100_000), 4096).unwrap();
        assert_eq!(wire[..3], [0, 0xFF, 0xFF]);
        let at = 3 + 65_535;
        assert_eq!(wire[at..at + 3], [0, 0x86, 0xA1]); // 34,465 bytes
        let at = at + 3 + 34_465;
        assert_eq!(
            wire[at..at + 9],
            [16, 0, 6, b'1', b'0', b'0', b'0', b'0', b'0']
        );
        let at = at + 9;
        assert_eq!(wire[at..at + 3], [64, 0xC3, 0x50]); // 50,000 bytes
        assert_eq!(wire.len(), at + 3 + 50_000);
        let back = decode_with(f, &wire, 0, 1000).unwrap();
        assert_eq!(back.stored, data);
        assert_eq!(back.markers.len(), 1);
        assert_eq!(back.markers[0].0.sender, "100000");
        assert_eq!(back.markers[0].0.offset, 100_000);
    }

    #[test]
    fn records_carry_eor_and_the_last_eor_eof() {
        let f = format(A, Structure::Record, Mode::Block);
        assert_eq!(
            encode(f, b"ab\n\ncd\n").unwrap(),
            [&[128, 0, 2][..], b"ab", &[128, 0, 0], &[192, 0, 2], b"cd"].concat()
        );
        assert_eq!(encode(f, b"").unwrap(), [64, 0, 0]);
        // On store, EOR may also come in an empty block after the data, EOF alone.
        let wire = [
            &[0, 0, 2][..],
            b"ab",
            &[128, 0, 0],
            &[128, 0, 1],
            b"c",
            &[64, 0, 0],
        ]
        .concat();
        assert_eq!(decode(f, &wire).unwrap(), b"ab\nc\n");
        // Every record needs its EOR.
        let wire = [&[64, 0, 2][..], b"ab"].concat();
        assert!(matches!(decode(f, &wire), Err(CodecError::Malformed(_))));
    }

    #[test]
    fn the_client_s_markers_suspect_data_and_errors() {
        let f = format(A, Structure::File, Mode::Block);
        // A marker stops the decode right after it, with the offset of the data before it; a
        // CR held to see whether LF follows is written at the marker.
        let wire = [
            &[0, 0, 3][..],
            b"ab\r",
            &[16, 0, 6],
            b"MARK01",
            &[96, 0, 2], // EOF and suspect: stored all the same
            b"\nx",
        ]
        .concat();
        let mut d = Decoder::new(f, 0);
        let mut out = Vec::new();
        assert_eq!(d.decode(&wire, &mut out), Ok(15));
        let m = d.take_marker().unwrap();
        assert_eq!((m.sender.as_str(), m.offset), ("MARK01", 3));
        assert_eq!(out, b"ab\r");
        assert_eq!(d.decode(&wire[15..], &mut out), Ok(5));
        assert!(d.ended());
        assert_eq!(d.finish(&mut out), Ok(()));
        assert_eq!(out, b"ab\r\nx");
        assert_eq!(d.take_marker(), None);

        let bad: [&[u8]; 6] = [
            &[1, 0, 0],                    // undefined descriptor bit
            &[16, 0, 0, 64, 0, 0],         // empty marker
            &[16, 0, 3, b'a', b' ', b'b'], // a space in a marker
            &[16, 0, 65],                  // a marker longer than 64
            &[16, 0, 1, 0x80, 64, 0, 0],   // not printable
            &[64, 0, 0, 0],                // data after the end
        ];
        for wire in bad {
            assert!(
                matches!(decode(f, wire), Err(CodecError::Malformed(_))),
                "{wire:?}"
            );
        }
        for wire in [&[][..], &[0, 0, 1, b'a'], &[64, 0, 2, b'a'], &[64, 0]] {
            assert!(
                matches!(decode(f, wire), Err(CodecError::Truncated(_))),
                "{wire:?}"
            );
        }
        // An end-of-record mark in STRU F.
        assert!(matches!(
            decode(f, &[192, 0, 0]),
            Err(CodecError::Malformed(_))
        ));
    }
}
