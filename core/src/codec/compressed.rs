//! MODE C (RFC 959 §3.4.3): byte strings, replicated bytes, filler strings and escapes.
//!
//! - `0nnnnnnn` then n bytes (n 1–127): a byte string;
//! - `10nnnnnn d`: n copies of d;
//! - `11nnnnnn`: n filler bytes: the wire's space for TYPE A (0x20) and TYPE E (0x40), 0x00
//!   for TYPE I;
//! - `0x00 c`: an escape whose descriptor c has MODE B's codes (128 EOR, 64 EOF, 32 suspect,
//!   16 restart marker), which "apply to the succeeding string": EOR and EOF take effect at
//!   the end of the string that follows, and a restart marker's text is that string.
//!
//! Retrieve ([`CompressedEncoder`]): runs of 3 or more equal bytes (up to 63) become a
//! replicated byte, or a filler string for the filler byte; the rest goes in byte strings of
//! up to 127. The encoder holds back the last string (at most 127 bytes) until it knows
//! whether a record or the file ends with it, so that the escape can precede it. When no
//! string is left to carry an EOR or EOF (an empty record, an empty file), the escape is
//! followed by an empty filler string (`0xC0`). A restart marker is `0x00 0x10`, then a byte
//! string with the decimal stored-file offset.
//!
//! Store ([`CompressedDecoder`]): a replicated or filler string of n is expanded only when its
//! output fits the call's budget; it is never held. An escape followed by another escape
//! applies to an empty string; an escape followed by the connection's close is a truncated
//! transfer (its string, maybe the file's last data, did not come).

use super::block::{apply_descriptor, EOF, EOR, MARKER, UNDEFINED};
use super::store::{data_room, MarkerText, Unpack};
use super::CodecError;

const MAX_STRING: usize = 127;
const MAX_RUN: usize = 63;
/// A run shorter than this stays in a byte string.
const MIN_RUN: usize = 3;

#[derive(Clone, Copy, Debug)]
enum Token {
    Bytes([u8; MAX_STRING], usize),
    Run(u8, usize),
}

/// MODE C on retrieve.
#[derive(Clone, Debug)]
pub(super) struct CompressedEncoder {
    filler: u8,
    /// Bytes of the byte string being gathered.
    bytes: [u8; MAX_STRING],
    len: usize,
    /// The run of equal bytes at the end of the data seen (not yet in `bytes`).
    run_byte: u8,
    run_len: usize,
    /// The last complete string, not yet written.
    held: Option<Token>,
    /// The held string (or, if none, an empty one) ends a record.
    held_eor: bool,
}

impl CompressedEncoder {
    pub(super) fn new(filler: u8) -> CompressedEncoder {
        CompressedEncoder {
            filler,
            bytes: [0; MAX_STRING],
            len: 0,
            run_byte: 0,
            run_len: 0,
            held: None,
            held_eor: false,
        }
    }

    pub(super) fn data(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if data.is_empty() {
            return;
        }
        if self.held_eor {
            self.write_held(out);
        }
        for &b in data {
            if self.run_len > 0 && b == self.run_byte && self.run_len < MAX_RUN {
                self.run_len += 1;
                continue;
            }
            self.settle_run(out);
            self.run_byte = b;
            self.run_len = 1;
        }
    }

    pub(super) fn eor(&mut self, out: &mut Vec<u8>) {
        self.settle(out);
        if self.held_eor {
            self.write_held(out);
        }
        self.held_eor = true;
    }

    pub(super) fn marker(&mut self, text: &[u8], out: &mut Vec<u8>) {
        self.settle(out);
        self.write_held(out);
        let len = text.len().min(MAX_STRING);
        out.extend_from_slice(&[0, MARKER, len as u8]);
        out.extend_from_slice(text.get(..len).unwrap_or_default());
    }

    pub(super) fn eof(&mut self, out: &mut Vec<u8>) {
        self.settle(out);
        let eor = if std::mem::take(&mut self.held_eor) {
            EOR
        } else {
            0
        };
        self.write_escaped(EOF | eor, out);
    }

    /// Turns the pending run into a token or into byte-string bytes.
    fn settle_run(&mut self, out: &mut Vec<u8>) {
        let n = std::mem::take(&mut self.run_len);
        if n >= MIN_RUN {
            self.flush_bytes(out);
            self.put(Token::Run(self.run_byte, n), out);
            return;
        }
        for _ in 0..n {
            if self.len == MAX_STRING {
                self.flush_bytes(out);
            }
            if let Some(slot) = self.bytes.get_mut(self.len) {
                *slot = self.run_byte;
            }
            self.len += 1;
        }
    }

    fn settle(&mut self, out: &mut Vec<u8>) {
        self.settle_run(out);
        self.flush_bytes(out);
    }

    fn flush_bytes(&mut self, out: &mut Vec<u8>) {
        if self.len > 0 {
            let token = Token::Bytes(self.bytes, self.len);
            self.len = 0;
            self.put(token, out);
        }
    }

    fn put(&mut self, token: Token, out: &mut Vec<u8>) {
        if let Some(previous) = self.held.replace(token) {
            self.write(previous, out);
        }
    }

    /// Writes the held string, behind an EOR escape if it ends a record.
    fn write_held(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.held_eor) {
            self.write_escaped(EOR, out);
        } else if let Some(token) = self.held.take() {
            self.write(token, out);
        }
    }

    /// The escape, then the held string or an empty filler string.
    fn write_escaped(&mut self, descriptor: u8, out: &mut Vec<u8>) {
        out.extend_from_slice(&[0, descriptor]);
        match self.held.take() {
            Some(token) => self.write(token, out),
            None => out.push(0xC0),
        }
    }

    fn write(&self, token: Token, out: &mut Vec<u8>) {
        match token {
            Token::Bytes(bytes, len) => {
                out.push(len as u8);
                out.extend_from_slice(bytes.get(..len).unwrap_or_default());
            }
            Token::Run(b, n) if b == self.filler => out.push(0xC0 | n as u8),
            Token::Run(b, n) => out.extend_from_slice(&[0x80 | n as u8, b]),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Expecting a string's first byte or an escape.
    Header,
    /// After 0x00: expecting the descriptor.
    Descriptor,
    /// Inside a byte string, this many bytes to come.
    Bytes(usize),
    /// After `10nnnnnn`: expecting the byte to replicate n times.
    Replicate(usize),
}

/// MODE C on store.
#[derive(Clone, Debug)]
pub(super) struct CompressedDecoder {
    filler: u8,
    state: State,
    /// An escape's descriptor waiting for the string it applies to.
    pending: Option<u8>,
    /// The descriptor that applies to the current string.
    current: Option<u8>,
    marker: MarkerText,
    ended: bool,
}

impl CompressedDecoder {
    pub(super) fn new(filler: u8) -> CompressedDecoder {
        CompressedDecoder {
            filler,
            state: State::Header,
            pending: None,
            current: None,
            marker: MarkerText::default(),
            ended: false,
        }
    }

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
                    "data came after the end-of-file escape".into(),
                ));
            }
            let room = data_room(out, limit);
            if room == 0 {
                break;
            }
            let Some(&b) = rest.first() else { break };
            let stop = match self.state {
                State::Header if b == 0 => {
                    pos += 1;
                    self.state = State::Descriptor;
                    // An escape right after an escape: the first applies to an empty string.
                    if self.pending.is_some() {
                        self.begin_string();
                        self.end_string(out, unpack)?
                    } else {
                        false
                    }
                }
                State::Header if b < 0x80 => {
                    pos += 1;
                    self.begin_string();
                    self.state = State::Bytes(usize::from(b));
                    false
                }
                State::Header if b < 0xC0 => {
                    pos += 1;
                    self.state = State::Replicate(usize::from(b & 0x3F));
                    false
                }
                State::Header => {
                    let n = usize::from(b & 0x3F);
                    if room < n {
                        break;
                    }
                    pos += 1;
                    self.begin_string();
                    self.string_data(&[self.filler; MAX_RUN][..n], out, unpack)?;
                    self.end_string(out, unpack)?
                }
                State::Descriptor => {
                    if b & UNDEFINED != 0 {
                        return Err(CodecError::Malformed(format!(
                            "escape descriptor {b} has undefined bits (the codes are 128, 64, 32 \
                             and 16)"
                        )));
                    }
                    pos += 1;
                    self.pending = Some(b);
                    self.state = State::Header;
                    false
                }
                State::Bytes(remaining) => {
                    let n = remaining.min(rest.len()).min(room);
                    pos += n;
                    self.string_data(rest.get(..n).unwrap_or_default(), out, unpack)?;
                    if remaining > n {
                        self.state = State::Bytes(remaining - n);
                        false
                    } else {
                        self.state = State::Header;
                        self.end_string(out, unpack)?
                    }
                }
                State::Replicate(n) => {
                    if room < n {
                        break;
                    }
                    pos += 1;
                    self.begin_string();
                    self.string_data(&[b; MAX_RUN][..n], out, unpack)?;
                    self.state = State::Header;
                    self.end_string(out, unpack)?
                }
            };
            if stop {
                return Ok((pos, true));
            }
        }
        Ok((pos, false))
    }

    fn begin_string(&mut self) {
        self.current = self.pending.take();
        if self.current.is_some_and(|d| d & MARKER != 0) {
            self.marker.clear();
        }
    }

    fn string_data(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
        unpack: &mut Unpack,
    ) -> Result<(), CodecError> {
        if self.current.is_some_and(|d| d & MARKER != 0) {
            self.marker.push(data)
        } else {
            unpack.data(data, out)
        }
    }

    /// The end of a string: the escape's codes take effect. Returns whether it was a marker.
    fn end_string(&mut self, out: &mut Vec<u8>, unpack: &mut Unpack) -> Result<bool, CodecError> {
        let Some(descriptor) = self.current.take() else {
            return Ok(false);
        };
        apply_descriptor(descriptor, &self.marker, &mut self.ended, out, unpack)
    }

    /// The connection has closed. An escape whose string has not come is not taken as the end:
    /// the string may have been the file's last data.
    pub(super) fn finish(&mut self) -> Result<(), CodecError> {
        if self.ended {
            return Ok(());
        }
        Err(CodecError::Truncated(
            "the connection closed before the end-of-file escape and its string (MODE C)".into(),
        ))
    }

    pub(super) fn ended(&self) -> bool {
        self.ended
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{decode, decode_with, encode, format, A, E, I};
    use super::super::{CodecError, Mode, Structure};

    #[test]
    fn strings_runs_and_filler() {
        let f = format(A, Structure::File, Mode::Compressed);
        assert_eq!(encode(f, b"").unwrap(), [0, 64, 0xC0]);
        // 5 x: replicated; 3 spaces: filler; 2 y: a byte string, which ends the file.
        assert_eq!(
            encode(f, b"xxxxx   yy").unwrap(),
            [0x85, b'x', 0xC3, 0, 64, 2, b'y', b'y']
        );
        // Two equal bytes stay in the byte string.
        assert_eq!(
            encode(f, b"abbc").unwrap(),
            [0, 64, 4, b'a', b'b', b'b', b'c']
        );
        // 70 a: 63, then 7.
        assert_eq!(
            encode(f, &[b'a'; 70]).unwrap(),
            [0xBF, b'a', 0, 64, 0x87, b'a']
        );
        // Byte strings hold at most 127 bytes.
        let distinct: Vec<u8> = (0..130u8).map(|i| i % 2 + b'a' + (i % 7) * 2).collect();
        let wire = encode(f, &distinct).unwrap();
        assert_eq!(wire[0], 127);
        assert_eq!(wire[128..131], [0, 64, 3]);
        assert_eq!(decode(f, &wire).unwrap(), distinct);
        // The filler is 0x00 for TYPE I and EBCDIC space 0x40 for TYPE E.
        let f = format(I, Structure::File, Mode::Compressed);
        assert_eq!(encode(f, &[7, 0, 0, 0, 0]).unwrap(), [1, 7, 0, 64, 0xC4]);
        assert_eq!(encode(f, b"    ").unwrap(), [0, 64, 0x84, b' ']);
        let f = format(E, Structure::File, Mode::Compressed);
        assert_eq!(encode(f, b"a    ").unwrap(), [1, 0x81, 0, 64, 0xC4]);
        assert_eq!(decode(f, &[0xC2, 0, 64, 0x83, 0x81]).unwrap(), b"  aaa");
    }

    #[test]
    fn escapes_apply_to_the_string_after_them() {
        let f = format(A, Structure::Record, Mode::Compressed);
        // Records "ab", "" and "ccc": the EOR escape comes before each record's last string,
        // an empty filler string carries it when there is none.
        let wire = encode(f, b"ab\n\nccc\n").unwrap();
        assert_eq!(
            wire,
            [0, 128, 2, b'a', b'b', 0, 128, 0xC0, 0, 192, 0x83, b'c']
        );
        assert_eq!(decode(f, &wire).unwrap(), b"ab\n\nccc\n");
        // An escape followed by an escape applies to an empty string.
        assert_eq!(decode(f, &[0, 128, 0, 64, 0xC0]).unwrap(), b"\n");
        // A record whose data spans several strings ends after the one behind the escape.
        assert_eq!(
            decode(f, &[1, b'a', 0, 128, 1, b'b', 0, 64, 0xC0]).unwrap(),
            b"ab\n"
        );
        // The file must end with the EOF escape and its string.
        assert!(matches!(
            decode(f, &[0, 192]),
            Err(CodecError::Truncated(_))
        ));
        assert!(matches!(
            decode(f, &[0, 192, 3, b'a']),
            Err(CodecError::Truncated(_))
        ));
        assert!(matches!(
            decode(f, &[0, 192, 0xC0, 1]),
            Err(CodecError::Malformed(_))
        ));
        assert!(matches!(
            decode(f, &[0, 1, 0xC0]),
            Err(CodecError::Malformed(_))
        ));
    }

    #[test]
    fn markers_are_an_escape_and_a_byte_string() {
        let f = format(I, Structure::File, Mode::Compressed);
        let wire = [
            &[3][..],
            b"abc",
            &[0, 16, 4],
            b"m-01",
            &[0, 16, 0x83, b'7'],
            &[0, 64, 0xC0],
        ]
        .concat();
        let d = decode_with(f, &wire, 0, 2).unwrap();
        assert_eq!(d.stored, b"abc");
        let got: Vec<_> = d
            .markers
            .iter()
            .map(|(m, p)| (m.sender.as_str(), m.offset, *p))
            .collect();
        assert_eq!(got, [("m-01", 3, 11), ("777", 3, 15)]);
        // A filler string is spaces (or zeros): no marker.
        assert!(matches!(
            decode(f, &[0, 16, 0xC3, 0, 64, 0xC0]),
            Err(CodecError::Malformed(_))
        ));
        assert!(matches!(
            decode(f, &[0, 16, 0, 64, 0xC0]),
            Err(CodecError::Malformed(_))
        ));
    }

    #[test]
    fn expansion_is_bounded_per_call() {
        // 100,000 replicated strings of 63: 6.3 MB out of 200 KB, each call within bounds.
        let f = format(E, Structure::File, Mode::Compressed);
        let mut wire = [0xBF, 0x81].repeat(100_000);
        wire.extend_from_slice(&[0, 64, 0xC0]);
        let d = decode_with(f, &wire, 0, usize::MAX).unwrap();
        assert_eq!(d.stored.len(), 6_300_000);
    }
}
