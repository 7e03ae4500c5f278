//! The bytes of a download (or a listing), a chunk per step.
//!
//! - Binary file on a plain socket: `sendfile(2)` from the page cache to the socket
//!   (zero-copy), [`SENDFILE_CHUNK`] at a time (or the rate limit's chunk). (`std::io::copy`
//!   from a `File` to a `TcpStream` no longer does this: recent std refuses file-to-socket
//!   `sendfile` because a change to the file after the call could still reach the socket. For
//!   a file server that is the usual trade, as in nginx and vsftpd.) The socket has a
//!   [`DATA_SLICE`] send timeout, so a client that stops reading cannot hold a step longer.
//!   Where the file refuses `sendfile`, it goes on through a buffer from where it stopped.
//! - Everything else through a buffer: any type, structure or mode but TYPE I, STRU F, MODE S
//!   through the core's [`Encoder`] (which also places MODE B/C restart markers); TLS reads
//!   [`UPLOAD_BUFFER`] of the file at a time and writes it through rustls; listings are
//!   bytes in memory, encoded like a file.
//!
//! It must not look at the control connection nor decide anything: the task does.

use std::fs::File;
use std::io::{self, Read, Seek};
use wharf_core::codec::{DataFormat, Encoder};
use wharf_core::TransferError;

use super::{is_timeout, lost, storage_error, Flow, Moved, Source, SENDFILE_CHUNK, UPLOAD_BUFFER};
use crate::driver::stream::DataStream;
use crate::sys;

/// A download under way.
pub(crate) enum Sender {
    /// A binary file to a plain socket, with `sendfile`: from `pos` to `end`.
    Sendfile { file: File, pos: u64, end: u64 },
    /// Through a buffer.
    Buffered(Buffered),
}

/// A download through a buffer: what is read next, and what waits to be written.
pub(crate) struct Buffered {
    from: From,
    encoder: Option<Box<Encoder>>,
    /// What is read at a time.
    size: usize,
    /// The encoder's input (only with an encoder: without one, reads go straight to `out`).
    buf: Vec<u8>,
    /// Wire bytes read and encoded, not yet all written: `out[at..len]` waits. Without an
    /// encoder, `out` is `size` bytes long once and reads overwrite its start.
    out: Vec<u8>,
    at: usize,
    len: usize,
    eof: bool,
}

enum From {
    File(File),
    Bytes(Vec<u8>, usize),
}

impl Sender {
    /// Chooses how `source` goes out on `stream` in `format`, with MODE B/C restart
    /// markers every `marker_interval` stored bytes.
    pub(crate) fn new(
        source: Source,
        format: DataFormat,
        marker_interval: Option<u64>,
        stream: &DataStream,
    ) -> Sender {
        let identity = format.is_identity();
        match source {
            Source::File { file, offset, len } if identity && !stream.is_tls() => {
                Sender::Sendfile {
                    file,
                    pos: offset,
                    end: offset.saturating_add(len),
                }
            }
            // A retrieve's file is positioned at its offset already.
            Source::File { file, offset, .. } => {
                let encoder =
                    (!identity).then(|| Box::new(Encoder::new(format, offset, marker_interval)));
                Sender::Buffered(Buffered::new(From::File(file), encoder, stream))
            }
            Source::Bytes(bytes) => {
                let encoder = (!identity).then(|| Box::new(Encoder::new(format, 0, None)));
                Sender::Buffered(Buffered::new(From::Bytes(bytes, 0), encoder, stream))
            }
        }
    }

    /// Moves one chunk.
    pub(crate) fn step(
        &mut self,
        stream: &mut DataStream,
        flow: &mut Flow,
    ) -> Result<Moved, TransferError> {
        match self {
            Sender::Sendfile { file, pos, end } => {
                let Some(tcp) = stream.plain_tcp_mut() else {
                    return Err(TransferError::DataConnection(
                        "sendfile needs a plain socket".into(),
                    ));
                };
                if *pos >= *end {
                    return Ok(Moved::Done);
                }
                let want = flow.pacer.chunk(SENDFILE_CHUNK).min(*end - *pos);
                let before = *pos;
                match sys::sendfile(tcp, file, pos, want as usize) {
                    // The file got shorter while it was sent: what there was has been sent.
                    Ok(0) => Ok(Moved::Done),
                    Ok(_) => Ok(Moved::Bytes(*pos - before)),
                    Err(e) if is_timeout(&e) => Ok(match *pos - before {
                        0 => Moved::Idle,
                        n => Moved::Bytes(n),
                    }),
                    Err(e) if is_connection_error(&e) => Err(lost(&e)),
                    // sendfile does not work with this file: go on with read and write.
                    Err(e) if sys::unsupported(&e) => {
                        let sent = *pos - before;
                        let mut file = file.try_clone().map_err(|e| storage_error(&e))?;
                        file.seek(io::SeekFrom::Start(*pos))
                            .map_err(|e| storage_error(&e))?;
                        *self = Sender::Buffered(Buffered::new(From::File(file), None, stream));
                        Ok(if sent > 0 {
                            Moved::Bytes(sent)
                        } else {
                            Moved::Idle
                        })
                    }
                    Err(e) => Err(storage_error(&e)),
                }
            }
            Sender::Buffered(b) => b.step(stream, flow),
        }
    }
}

impl Buffered {
    fn new(from: From, encoder: Option<Box<Encoder>>, stream: &DataStream) -> Buffered {
        // Through TLS, large reads: fewer, fuller records per round.
        let size = if stream.is_tls() {
            UPLOAD_BUFFER
        } else {
            UPLOAD_BUFFER / 4
        };
        let encoded = encoder.is_some();
        Buffered {
            from,
            encoder,
            size,
            buf: if encoded { vec![0u8; size] } else { Vec::new() },
            out: Vec::new(),
            at: 0,
            len: 0,
            eof: false,
        }
    }

    /// Writes some of what waits, or reads (and encodes) the next piece.
    fn step(&mut self, stream: &mut DataStream, flow: &mut Flow) -> Result<Moved, TransferError> {
        if self.at >= self.len && !self.refill()? {
            return Ok(Moved::Done);
        }
        let waiting = &self.out[self.at..self.len];
        let limit = flow.pacer.chunk(waiting.len() as u64) as usize;
        let moved = match io::Write::write(stream, &waiting[..limit]) {
            // rustls takes nothing while its send buffer is full: not an end.
            Ok(0) if stream.is_tls() => 0,
            Ok(0) => return Err(super::closed()),
            Ok(n) => n,
            Err(e) if is_timeout(&e) => 0,
            Err(e) => return Err(lost(&e)),
        };
        self.at += moved;
        Ok(if moved == 0 {
            Moved::Idle
        } else {
            Moved::Bytes(moved as u64)
        })
    }

    /// Reads the next piece into `out` (through the encoder, or straight in when there is
    /// none: no copy); false at the end of the source.
    fn refill(&mut self) -> Result<bool, TransferError> {
        self.at = 0;
        self.len = 0;
        if self.encoder.is_some() {
            self.out.clear();
        } else if self.out.len() != self.size {
            self.out.resize(self.size, 0);
        }
        // Bounded: each round reads at least one byte or ends.
        while !self.eof && self.len == 0 {
            let into = match self.encoder {
                Some(_) => &mut self.buf[..],
                None => &mut self.out[..],
            };
            let n = match &mut self.from {
                From::Bytes(bytes, pos) => {
                    let n = (bytes.len() - *pos).min(into.len());
                    into[..n].copy_from_slice(&bytes[*pos..*pos + n]);
                    *pos += n;
                    n
                }
                From::File(file) => match file.read(into) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(storage_error(&e)),
                },
            };
            self.len = match self.encoder.as_mut() {
                // The end of the file: the encoder's closing marks (end of record, MODE B/C's
                // end of file, the last page, the zlib end).
                Some(enc) if n == 0 => enc.finish(&mut self.out).map(|()| self.out.len()),
                Some(enc) => enc
                    .encode(&self.buf[..n], &mut self.out)
                    .map(|()| self.out.len()),
                None => Ok(n),
            }
            .map_err(TransferError::Codec)?;
            if n == 0 {
                self.eof = true;
            }
        }
        Ok(self.len > 0)
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
            | io::ErrorKind::UnexpectedEof
    )
}
