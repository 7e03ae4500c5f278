//! MODE Z (draft-preston-ftpext-deflate, as ProFTPD's mod_deflate and FileZilla speak it): the
//! MODE S bytes of the transfer, compressed as one zlib stream (RFC 1950: a 2-byte header,
//! deflate data, the Adler-32 of the uncompressed bytes). The sender ends the stream with the
//! zlib end, then closes the connection.
//!
//! Retrieve ([`DeflateEncoder`]): MODE S's output is gathered into 32 KiB pieces and each piece
//! is handed to the compressor whole, so the compressed bytes do not depend on how the caller
//! split the file. Memory: the compressor's state (about 310 KiB in miniz_oxide: the 32 KiB
//! window, its hash chains, the LZ code and output buffers) and less than three pieces.
//!
//! Store ([`DeflateDecoder`]): inflated a few input bytes at a time into an empty 32 KiB
//! window, while the decode call's budget has room for a whole window, then read as MODE S. The
//! decompressor never holds output not yet handed out, so a zlib bomb comes out in bounded steps
//! and errors do not depend on how the input was split. Memory: about 75 KiB
//! (the decompressor's state and window, and our 32 KiB output window). A stream that is not
//! zlib, a wrong Adler-32, bytes after the zlib end, or a close before it are errors.

use miniz_oxide::deflate::core::{create_comp_flags_from_zip_params, CompressorOxide};
use miniz_oxide::inflate::stream::InflateState;
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};

use super::store::{data_room, Unpack};
use super::stream::{StreamDecoder, StreamEncoder};
use super::CodecError;

/// The piece handed to the compressor, and the decompressor's output window.
const PIECE: usize = 32 * 1024;

/// Input bytes handed to the decompressor at a time. Deflate turns a byte into at most 1,032
/// bytes, and the decompressor carries at most 8 bytes of bits and the rest of one 258-byte
/// match between calls, so one call writes at most about 25 KiB: always less than the empty
/// 32 KiB window it is given. Nothing it decompressed is ever left inside it, and a corrupt
/// stream is reported only after everything before the corruption has been handed on, whatever
/// the reads' size (the decompressor drops what it holds when it fails).
const INFLATE_STEP: usize = 16;

/// MODE Z on retrieve.
pub(super) struct DeflateEncoder {
    inner: StreamEncoder,
    /// MODE S bytes not yet compressed (less than one piece between calls).
    staged: Vec<u8>,
    compressor: Box<CompressorOxide>,
}

impl std::fmt::Debug for DeflateEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeflateEncoder")
            .field("inner", &self.inner)
            .field("staged", &self.staged.len())
            .finish_non_exhaustive()
    }
}

impl DeflateEncoder {
    pub(super) fn new(level: u8, records: bool) -> DeflateEncoder {
        // Window bits 15 (positive): the zlib header and Adler-32 trailer.
        let flags = create_comp_flags_from_zip_params(i32::from(level.min(9)), 15, 0);
        DeflateEncoder {
            inner: StreamEncoder::new(records),
            staged: Vec::new(),
            compressor: Box::new(CompressorOxide::new(flags)),
        }
    }

    pub(super) fn data(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        // A piece at a time, so that what is staged stays under three pieces (MODE S's record
        // form doubles 0xFF) however much the caller passes.
        for piece in data.chunks(PIECE) {
            self.inner.data(piece, &mut self.staged);
            self.compress_pieces(out)?;
        }
        Ok(())
    }

    pub(super) fn eor(&mut self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.inner.eor(&mut self.staged);
        self.compress_pieces(out)
    }

    pub(super) fn eof(&mut self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.inner.eof(&mut self.staged);
        self.compress_pieces(out)?;
        let rest = std::mem::take(&mut self.staged);
        compress(&mut self.compressor, &rest, MZFlush::Finish, out)
    }

    /// Compresses every whole piece staged.
    fn compress_pieces(&mut self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let whole = self.staged.len() / PIECE * PIECE;
        if whole == 0 {
            return Ok(());
        }
        for piece in self.staged.get(..whole).unwrap_or_default().chunks(PIECE) {
            compress(&mut self.compressor, piece, MZFlush::None, out)?;
        }
        self.staged.copy_within(whole.., 0);
        self.staged.truncate(self.staged.len() - whole);
        Ok(())
    }
}

/// Runs the compressor over all of `input`; with `Finish`, to the end of the zlib stream.
fn compress(
    compressor: &mut CompressorOxide,
    input: &[u8],
    flush: MZFlush,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let mut pos = 0;
    let mut idle = 0;
    loop {
        let rest = input.get(pos..).unwrap_or_default();
        let start = out.len();
        let space = rest.len() / 2 + 4096;
        out.resize(start + space, 0);
        let result = miniz_oxide::deflate::stream::deflate(
            compressor,
            rest,
            out.get_mut(start..).unwrap_or_default(),
            flush,
        );
        out.truncate(start + result.bytes_written.min(space));
        pos += result.bytes_consumed;
        let all_in = pos >= input.len();
        let room_left = result.bytes_written < space;
        match result.status {
            Ok(MZStatus::StreamEnd) => return Ok(()),
            Ok(_) if flush == MZFlush::None && all_in && room_left => return Ok(()),
            Err(MZError::Buf) if flush == MZFlush::None && all_in => return Ok(()),
            Ok(_) => {}
            Err(e) => {
                return Err(CodecError::Malformed(format!(
                    "the deflate compressor failed ({e:?})"
                )))
            }
        }
        // A compressor that neither reads nor writes would loop for ever.
        if result.bytes_consumed == 0 && result.bytes_written == 0 {
            idle += 1;
            if idle > 2 {
                return Err(CodecError::Malformed(
                    "the deflate compressor made no progress".into(),
                ));
            }
        } else {
            idle = 0;
        }
    }
}

/// MODE Z on store.
pub(super) struct DeflateDecoder {
    inflate: Box<InflateState>,
    inner: StreamDecoder,
    window: Vec<u8>,
    /// The zlib end has come.
    done: bool,
}

impl std::fmt::Debug for DeflateDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeflateDecoder")
            .field("inner", &self.inner)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl DeflateDecoder {
    pub(super) fn new(records: bool) -> DeflateDecoder {
        DeflateDecoder {
            inflate: InflateState::new_boxed(DataFormat::Zlib),
            inner: StreamDecoder::new(records),
            window: vec![0; PIECE],
            done: false,
        }
    }

    /// Decodes while `out` stays within `limit`; returns the bytes consumed. With an empty
    /// `input` it hands out what the decompressor still holds.
    pub(super) fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
        unpack: &mut Unpack,
    ) -> Result<usize, CodecError> {
        let mut pos = 0;
        loop {
            let rest = input.get(pos..).unwrap_or_default();
            if self.done {
                if !rest.is_empty() {
                    return Err(CodecError::Malformed(
                        "data came after the end of the zlib stream (MODE Z)".into(),
                    ));
                }
                return Ok(pos);
            }
            // A whole window of room, and a few input bytes: see INFLATE_STEP.
            if data_room(out, limit) < self.window.len() {
                return Ok(pos);
            }
            let step = rest.get(..INFLATE_STEP.min(rest.len())).unwrap_or(rest);
            let result = miniz_oxide::inflate::stream::inflate(
                &mut self.inflate,
                step,
                &mut self.window,
                MZFlush::None,
            );
            pos += result.bytes_consumed;
            let written = result.bytes_written.min(self.window.len());
            if written > 0 {
                let inflated = self.window.get(..written).unwrap_or_default();
                let used = self.inner.decode(inflated, out, usize::MAX, unpack)?;
                if used < inflated.len() {
                    return Err(CodecError::Malformed(
                        "the decompressed MODE Z data could not all be read".into(),
                    ));
                }
            }
            match result.status {
                Ok(MZStatus::StreamEnd) => {
                    self.done = true;
                    self.inner.finish(out, unpack)?;
                }
                Ok(_) if result.bytes_consumed == 0 && written == 0 => return Ok(pos),
                Ok(_) => {}
                Err(MZError::Buf) => return Ok(pos),
                Err(_) => {
                    return Err(CodecError::Malformed(
                        "the MODE Z data is not a valid zlib stream, or its Adler-32 checksum \
                         is wrong"
                            .into(),
                    ))
                }
            }
        }
    }

    /// The connection has closed: hands out what the decompressor holds; the zlib end must
    /// have come.
    pub(super) fn finish(
        &mut self,
        out: &mut Vec<u8>,
        unpack: &mut Unpack,
    ) -> Result<(), CodecError> {
        self.decode(&[], out, usize::MAX, unpack)?;
        if self.done {
            return Ok(());
        }
        Err(CodecError::Truncated(
            "the connection closed before the end of the zlib stream (MODE Z)".into(),
        ))
    }

    pub(super) fn ended(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{decode, encode, format, A, I};
    use super::super::{CodecError, Decoder, Mode, Structure};
    use miniz_oxide::deflate::compress_to_vec_zlib;
    use miniz_oxide::inflate::decompress_to_vec_zlib;

    fn z(level: u8) -> Mode {
        Mode::Deflate { level }
    }

    fn adler32(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &x in data {
            a = (a + u32::from(x)) % 65_521;
            b = (b + a) % 65_521;
        }
        (b << 16) | a
    }

    #[test]
    fn a_plain_zlib_decompressor_reads_what_we_send() {
        let text = b"line one\nline two\n".repeat(5000);
        for level in 0..=9 {
            let wire = encode(format(A, Structure::File, z(level)), &text).unwrap();
            let plain = decompress_to_vec_zlib(&wire).unwrap();
            assert_eq!(
                plain,
                b"line one\r\nline two\r\n".repeat(5000),
                "level {level}"
            );
            let trailer = u32::from_be_bytes(wire[wire.len() - 4..].try_into().unwrap());
            assert_eq!(trailer, adler32(&plain));
            assert_eq!(wire[0] & 0x0F, 8, "deflate, RFC 1950");
            assert_eq!(u16::from_be_bytes([wire[0], wire[1]]) % 31, 0);
            if level > 0 {
                assert!(
                    wire.len() < text.len() / 20,
                    "level {level}: {}",
                    wire.len()
                );
            }
        }
        // STRU R: the MODE S record codes, deflated.
        let wire = encode(format(I, Structure::Record, z(6)), b"a\xff\xff\xff\x01").unwrap();
        assert_eq!(decompress_to_vec_zlib(&wire).unwrap(), b"a\xff\xff\xff\x03");
    }

    #[test]
    fn streams_made_elsewhere_are_accepted() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 253) as u8).collect();
        for level in [0, 1, 6, 10] {
            let wire = compress_to_vec_zlib(&data, level);
            assert_eq!(
                decode(format(I, Structure::File, z(6)), &wire).unwrap(),
                data
            );
        }
        let wire = compress_to_vec_zlib(b"a\r\nb\r\n", 6);
        assert_eq!(
            decode(format(A, Structure::File, z(1)), &wire).unwrap(),
            b"a\nb\n"
        );
    }

    #[test]
    fn truncated_damaged_and_trailing_streams() {
        let f = format(I, Structure::File, z(6));
        let wire = compress_to_vec_zlib(&b"some data ".repeat(100), 6);
        for cut in 0..wire.len() {
            let got = decode(f, &wire[..cut]);
            assert!(
                matches!(got, Err(CodecError::Truncated(_))),
                "cut at {cut}: {got:?}"
            );
        }
        let mut bad = wire.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1; // the Adler-32
        assert!(matches!(decode(f, &bad), Err(CodecError::Malformed(_))));
        assert!(matches!(
            decode(f, b"not zlib"),
            Err(CodecError::Malformed(_))
        ));
        let trailing = [&wire[..], b"x"].concat();
        assert!(matches!(
            decode(f, &trailing),
            Err(CodecError::Malformed(_))
        ));
        // In the same call or in a later one.
        let mut d = Decoder::new(f, 0);
        let mut out = Vec::new();
        let mut rest = &wire[..];
        while !rest.is_empty() {
            let n = d.decode(rest, &mut out).unwrap();
            rest = &rest[n..];
        }
        assert!(d.ended());
        assert!(matches!(
            d.decode(b"x", &mut out),
            Err(CodecError::Malformed(_))
        ));
    }

    #[test]
    fn a_zlib_bomb_comes_out_in_bounded_steps() {
        let zeros = vec![0u8; 1 << 20];
        let wire = compress_to_vec_zlib(&zeros, 9);
        assert!(wire.len() < 2048, "{}", wire.len());
        let mut d = Decoder::new(format(I, Structure::File, z(6)), 0);
        let mut out = Vec::new();
        let mut rest = &wire[..];
        let mut calls = 0;
        while !rest.is_empty() {
            let before = out.len();
            let n = d.decode(rest, &mut out).unwrap();
            assert!(out.len() - before <= Decoder::MAX_OUTPUT);
            rest = &rest[n..];
            calls += 1;
        }
        let before = out.len();
        d.finish(&mut out).unwrap();
        assert!(out.len() - before <= Decoder::MAX_OUTPUT);
        assert!(calls >= 4, "{calls} calls");
        assert_eq!(out, zeros);
    }
}
