//! The bytes of an upload, a chunk per step, into the file the storage opened.
//!
//! - Binary upload on a plain socket: `splice(2)` from the socket into a pipe and from the
//!   pipe into the file (one copy, into the page cache, instead of two), a pipe's worth
//!   ([`sys::PIPE_SIZE`]) at a time, with a [`super::DATA_SLICE`] receive timeout; the pipe is
//!   kept by the worker thread for its next upload when it is empty (at most
//!   [`sys::MAX_SPARE_PIPES`] are kept: pipes count against a per-account quota). Where splice
//!   cannot be used (a file opened for appending, a file system without it, no pipe of a
//!   useful size left in the quota) the upload goes on with read and write from where it
//!   stopped, every byte taken from the socket already in the file.
//! - Binary uploads without a rate limit, plain or TLS, past their first 8 MiB: direct I/O
//!   (`O_DIRECT`) from two aligned buffers, one filled from the data connection while a
//!   writer thread writes the other (the `direct_uploads` key; see [`super::direct`] for why
//!   and docs/transfers.md for the figures). Where the file's position is not aligned (REST,
//!   APPE), [`super::direct::MAX_AT_ONCE`] uploads go direct already, or the file system
//!   refuses direct I/O, the upload goes on the ordinary way.
//! - Everything else (TLS before its first 8 MiB; any type, structure or mode but TYPE I,
//!   STRU F, MODE S) through a fixed [`UPLOAD_BUFFER`]: the formats through the core's
//!   [`Decoder`]; TLS reads large slices of the socket at a time ([`DataStream::read`] over
//!   [`crate::driver::stream::TlsData`]).
//!
//! The end of the data connection is the end of the file in MODE S STRU F; the other formats
//! need their explicit end too ([`Decoder::finish`]). For TLS, rustls reports the end only
//! after the client's close_notify: a bare end of the connection is a failed upload
//! ([`Lost::NoCloseNotify`]), never a complete one.
//!
//! # Restart markers (MODE B and C)
//! A client's marker is acknowledged (`110 MARK`, [`Receiver::take_mark`]) once everything
//! before it is in the file and synced to disk (`fdatasync`), and only when it lies at least
//! [`MARK_GAP`] stored bytes after the last one acknowledged: a client that sends a marker
//! every few bytes gets neither a reply nor a disk sync for each. The last acknowledged offset
//! is where a failed upload is kept up to, for `REST` + `STOR` (see [`crate::storage`]).

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use wharf_core::codec::{DataFormat, Decoder, Marker};
use wharf_core::{Lost, StorageError, TransferError};

use super::direct::{self, Chunk, Full, Slot};
use super::{is_timeout, lost, storage_error, Env, Flow, Moved, DATA_SLICE, UPLOAD_BUFFER};
use crate::driver::stream::DataStream;
use crate::sys::{self, Pipe};

/// The least stored data between two acknowledged restart markers (see the module
/// documentation).
pub const MARK_GAP: u64 = 256 * 1024;
/// The most decoder calls in one step: a step stays short even when a little input expands
/// into much (MODE Z, MODE C).
const DECODES_PER_STEP: usize = 16;

/// An upload under way.
pub(crate) struct Receiver<'a> {
    file: File,
    decoding: Option<Box<Decoding>>,
    way: Way<'a>,
    /// The byte count from which the upload tries direct I/O (after its first chunk).
    direct_from: Option<u64>,
    buf: Vec<u8>,
}

/// An upload through the core's decoder: read input not yet decoded, and the markers.
struct Decoding {
    decoder: Decoder,
    /// `buf[at..len]`: input read and not yet decoded (a step stops after a marker, or after
    /// [`DECODES_PER_STEP`] calls).
    at: usize,
    len: usize,
    /// The last call produced output: call again, even without input (MODE Z drains).
    draining: bool,
    plain: Vec<u8>,
    /// The offset of the last acknowledged marker, or the upload's start.
    acknowledged: u64,
    /// A marker to acknowledge, the file synced up to it.
    mark: Option<Marker>,
}

/// How the bytes go from the socket to the file now.
enum Way<'a> {
    Splice(Pipe),
    Buffered,
    Direct(Box<Direct<'a>>),
}

impl<'a> Receiver<'a> {
    /// An upload into `file`, from stored offset `start`, from `stream`, in `format`.
    pub(crate) fn new(
        file: File,
        format: DataFormat,
        start: u64,
        stream: &DataStream,
        flow: &Flow,
        env: &Env<'_, '_>,
    ) -> Receiver<'a> {
        let decoding = (!format.is_identity()).then(|| {
            Box::new(Decoding {
                decoder: Decoder::new(format, start),
                at: 0,
                len: 0,
                draining: false,
                plain: Vec::new(),
                acknowledged: start,
                mark: None,
            })
        });
        let binary = decoding.is_none();
        // A large binary upload goes direct after its first chunk (see `direct`).
        let direct_from =
            (binary && !flow.pacer.is_limited() && env.shared.settings.direct_uploads)
                .then(|| flow.bytes + direct::CHUNK as u64);
        let way = ordinary_way(stream, binary);
        Receiver {
            file,
            decoding,
            way,
            direct_from,
            buf: Vec::new(),
        }
    }

    /// The restart marker to acknowledge with `110 MARK`, if the last step passed one: the
    /// file is synced up to its offset.
    pub(crate) fn take_mark(&mut self) -> Option<Marker> {
        self.decoding.as_mut().and_then(|d| d.mark.take())
    }

    /// Moves one chunk; [`Moved::Done`] once the data connection has ended.
    pub(crate) fn step(
        &mut self,
        stream: &mut DataStream,
        flow: &mut Flow,
        env: &Env<'_, 'a>,
    ) -> Result<Moved, TransferError> {
        if self.direct_from.is_some_and(|from| flow.bytes >= from) {
            self.direct_from = None;
            self.try_direct(env)?;
        }
        let room = room(flow, self.direct_from, UPLOAD_BUFFER);
        match &mut self.way {
            Way::Splice(pipe) => {
                let want = flow.pacer.chunk(room.min(pipe.capacity() as u64)) as usize;
                let Some(tcp) = stream.plain_tcp_mut() else {
                    self.way = Way::Buffered;
                    return Ok(Moved::Idle);
                };
                match splice_once(tcp, &mut self.file, pipe, want)? {
                    Spliced::Moved(m) => Ok(m),
                    Spliced::Unsupported(m) => {
                        self.give_back_pipe();
                        self.way = Way::Buffered;
                        Ok(m)
                    }
                }
            }
            Way::Buffered => {
                if self.buf.is_empty() {
                    self.buf = vec![0u8; UPLOAD_BUFFER];
                }
                if let Some(d) = self.decoding.as_mut() {
                    if d.at < d.len || d.draining {
                        // What was read before goes on through the decoder first.
                        d.decode(&self.buf, &mut self.file)?;
                        return Ok(Moved::Bytes(0));
                    }
                }
                let limit = flow.pacer.chunk(room) as usize;
                let Some(n) = read_data(stream, &mut self.buf[..limit])? else {
                    return Ok(Moved::Done);
                };
                if n == 0 {
                    return Ok(Moved::Idle);
                }
                match self.decoding.as_mut() {
                    Some(d) => {
                        (d.at, d.len) = (0, n);
                        d.decode(&self.buf, &mut self.file)?;
                    }
                    None => self
                        .file
                        .write_all(&self.buf[..n])
                        .map_err(|e| storage_error(&e))?,
                }
                Ok(Moved::Bytes(n as u64))
            }
            Way::Direct(d) => match d.step(stream, &mut self.file)? {
                DirectStep::Moved(m) => Ok(m),
                // Direct I/O could not go on (see `Direct`): the ordinary way from here,
                // every byte taken so far in the file.
                DirectStep::Stopped(m) => {
                    self.way = ordinary_way(stream, self.decoding.is_none());
                    Ok(m)
                }
            },
        }
    }

    /// The data connection has ended: what the decoder holds goes to the file (an end the
    /// format needs and did not get is a [`TransferError::Codec`]); a spare pipe is kept for
    /// the next upload.
    pub(crate) fn finish(&mut self) -> Result<(), TransferError> {
        self.give_back_pipe();
        if let Some(d) = self.decoding.as_mut() {
            d.plain.clear();
            d.decoder
                .finish(&mut d.plain)
                .map_err(TransferError::Codec)?;
            self.file
                .write_all(&d.plain)
                .map_err(|e| storage_error(&e))?;
        }
        Ok(())
    }

    fn give_back_pipe(&mut self) {
        if let Way::Splice(pipe) = std::mem::replace(&mut self.way, Way::Buffered) {
            // Kept for the next transfer only if it is empty.
            pipe.give_back();
        }
    }

    /// The first chunk went the ordinary way: go direct if the file's position is aligned
    /// and a place is free; otherwise stay on the ordinary way.
    fn try_direct(&mut self, env: &Env<'_, 'a>) -> Result<(), TransferError> {
        let start = self.file.stream_position().map_err(|e| storage_error(&e))?;
        if start % sys::DIRECT_ALIGN as u64 != 0 {
            return Ok(());
        }
        let Some(slot) = Slot::take(&env.shared.direct_uploads, direct::MAX_AT_ONCE) else {
            return Ok(());
        };
        self.give_back_pipe();
        self.way = Way::Direct(Box::new(Direct::new(slot)));
        Ok(())
    }
}

impl Decoding {
    /// Decodes `buf[at..len]` into the file, at most [`DECODES_PER_STEP`] calls, stopping
    /// after a marker to acknowledge (synced).
    fn decode(&mut self, buf: &[u8], file: &mut File) -> Result<(), TransferError> {
        for _ in 0..DECODES_PER_STEP {
            let input = buf.get(self.at..self.len).unwrap_or_default();
            if input.is_empty() && !self.draining {
                return Ok(());
            }
            self.plain.clear();
            let used = self
                .decoder
                .decode(input, &mut self.plain)
                .map_err(TransferError::Codec)?;
            self.at += used;
            file.write_all(&self.plain).map_err(|e| storage_error(&e))?;
            self.draining = !self.plain.is_empty();
            let marker = self.decoder.take_marker();
            if used == 0 && self.plain.is_empty() && marker.is_none() && !input.is_empty() {
                // Not expected of the decoder; never drop what it did not take.
                return Err(TransferError::Codec(
                    wharf_core::codec::CodecError::Malformed(
                        "the data could not be decoded".into(),
                    ),
                ));
            }
            if let Some(m) = marker {
                if m.offset >= self.acknowledged.saturating_add(MARK_GAP) {
                    // "Everything before the marker is in the file": on disk, too.
                    file.sync_data().map_err(|e| storage_error(&e))?;
                    self.acknowledged = m.offset;
                    self.mark = Some(m);
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// Splice where the socket and the file allow it, else a buffer.
fn ordinary_way<'a>(stream: &DataStream, binary: bool) -> Way<'a> {
    match (stream.is_tls(), binary) {
        (false, true) => match Pipe::take() {
            Ok(pipe) => Way::Splice(pipe),
            Err(_) => Way::Buffered,
        },
        _ => Way::Buffered,
    }
}

/// How many bytes a step may take next, at most `max`: up to `stop_at` (where direct I/O
/// begins) when it is set.
fn room(flow: &Flow, stop_at: Option<u64>, max: usize) -> u64 {
    match stop_at {
        Some(end) if flow.bytes < end => (end - flow.bytes).min(max as u64),
        _ => max as u64,
    }
}

/// Reads from the data connection of an upload: `Some(n)` bytes (0 when the receive timeout
/// passed with nothing), `None` at the end of the data. For TLS, rustls reports the end only
/// after the client's close_notify; a bare end of the connection is a failed upload.
fn read_data(stream: &mut DataStream, buf: &mut [u8]) -> Result<Option<usize>, TransferError> {
    match stream.read(buf) {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(n)),
        Err(e) if is_timeout(&e) => Ok(Some(0)),
        Err(e) if stream.is_tls() && e.kind() == io::ErrorKind::UnexpectedEof => {
            Err(TransferError::ConnectionLost(Lost::NoCloseNotify))
        }
        Err(e) => Err(lost(&e)),
    }
}

enum Spliced {
    Moved(Moved),
    /// Splice cannot be used here; nothing is lost (the pipe was emptied into the file).
    Unsupported(Moved),
}

/// One pipe's worth: from the socket into the pipe, from the pipe into the file.
fn splice_once(
    tcp: &std::net::TcpStream,
    file: &mut File,
    pipe: &mut Pipe,
    want: usize,
) -> Result<Spliced, TransferError> {
    let n = match pipe.fill_from(tcp, want) {
        Ok(0) => return Ok(Spliced::Moved(Moved::Done)),
        Ok(n) => n,
        Err(e) if is_timeout(&e) => return Ok(Spliced::Moved(Moved::Idle)),
        // Nothing was taken from the socket: read and write from here.
        Err(e) if sys::unsupported(&e) => return Ok(Spliced::Unsupported(Moved::Idle)),
        Err(e) => return Err(lost(&e)),
    };
    let mut spliced = true;
    // Bounded: each round moves at least one byte of the `n` the pipe holds, or ends.
    while pipe.held() > 0 {
        match pipe.drain_to(file, pipe.held()) {
            Ok(0) => {
                return Err(TransferError::Storage(StorageError::Other(
                    "the file took no bytes".into(),
                )))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // This file cannot be spliced into (opened for appending, a file system without
            // splice): what the pipe holds goes in the ordinary way.
            Err(e) if sys::unsupported(&e) => {
                pipe.copy_out(&mut *file).map_err(|e| storage_error(&e))?;
                spliced = false;
            }
            Err(e) => return Err(storage_error(&e)),
        }
    }
    let moved = Moved::Bytes(n as u64);
    Ok(if spliced {
        Spliced::Moved(moved)
    } else {
        Spliced::Unsupported(moved)
    })
}

/// The rest of a large binary upload (its first chunk went the ordinary way), written with
/// direct I/O through a writer thread (see [`super::direct`]).
struct Direct<'a> {
    _slot: Slot<'a>,
    stage: Stage,
}

enum Stage {
    /// The first direct chunk fills; less than a chunk more goes the ordinary way.
    First(Chunk),
    /// The writer runs: `chunk` fills while the writer writes the other.
    Running(Writer),
    /// Over (the data connection ended, or direct I/O gave up).
    Over,
}

/// The writer thread and the two chunks passed back and forth.
struct Writer {
    chunk: Option<Chunk>,
    spare: Option<Chunk>,
    full: Option<crossbeam_channel::Sender<Full>>,
    empty: crossbeam_channel::Receiver<io::Result<Chunk>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

enum DirectStep {
    Moved(Moved),
    /// Direct I/O is not possible after all; the bytes taken are in the file.
    Stopped(Moved),
}

impl<'a> Direct<'a> {
    fn new(slot: Slot<'a>) -> Direct<'a> {
        Direct {
            _slot: slot,
            stage: Stage::First(Chunk::new()),
        }
    }

    fn step(
        &mut self,
        stream: &mut DataStream,
        file: &mut File,
    ) -> Result<DirectStep, TransferError> {
        match &mut self.stage {
            Stage::First(chunk) => {
                let Some(n) = read_data(stream, chunk.space())? else {
                    // Less than a chunk more: the ordinary way, into the page cache.
                    file.write_all(chunk.data())
                        .map_err(|e| storage_error(&e))?;
                    self.stage = Stage::Over;
                    return Ok(DirectStep::Moved(Moved::Done));
                };
                chunk.add(n);
                if !chunk.is_full() {
                    return Ok(DirectStep::Moved(moved(n)));
                }
                let Stage::First(first) = std::mem::replace(&mut self.stage, Stage::Over) else {
                    return Ok(DirectStep::Moved(moved(n)));
                };
                match Writer::start(file, first) {
                    Ok(w) => {
                        self.stage = Stage::Running(w);
                        Ok(DirectStep::Moved(moved(n)))
                    }
                    Err(first) => {
                        file.write_all(first.data())
                            .map_err(|e| storage_error(&e))?;
                        Ok(DirectStep::Stopped(moved(n)))
                    }
                }
            }
            Stage::Running(w) => {
                let m = w.step(stream)?;
                if m == Moved::Done {
                    self.stage = Stage::Over;
                }
                Ok(DirectStep::Moved(m))
            }
            Stage::Over => Ok(DirectStep::Moved(Moved::Done)),
        }
    }
}

fn moved(n: usize) -> Moved {
    if n == 0 {
        Moved::Idle
    } else {
        Moved::Bytes(n as u64)
    }
}

impl Writer {
    /// Turns direct I/O on and starts the writer with the first full chunk; gives the chunk
    /// back when that cannot be done (the file system refuses `O_DIRECT`, no thread).
    fn start(file: &File, first: Chunk) -> Result<Writer, Chunk> {
        let Ok(clone) = file.try_clone() else {
            return Err(first);
        };
        if sys::set_direct(file, true).is_err() {
            return Err(first);
        }
        let (full_tx, full_rx) = crossbeam_channel::bounded::<Full>(1);
        let (empty_tx, empty_rx) = crossbeam_channel::bounded(2);
        let thread = std::thread::Builder::new()
            .name("wharf-write".into())
            .spawn(move || direct::write_chunks(&clone, full_rx, empty_tx));
        let Ok(thread) = thread else {
            let _ = sys::set_direct(file, false);
            return Err(first);
        };
        if full_tx.send((first, false)).is_err() {
            // Not expected: the writer waits for it. Its error comes back on `empty`.
        }
        Ok(Writer {
            chunk: None,
            spare: Some(Chunk::new()),
            full: Some(full_tx),
            empty: empty_rx,
            thread: Some(thread),
        })
    }

    /// Reads into the chunk being filled; a full one goes to the writer, and the data
    /// connection's end sends the last and waits for the writer (its error, a full disk, is
    /// the upload's).
    fn step(&mut self, stream: &mut DataStream) -> Result<Moved, TransferError> {
        let chunk = match self.chunk.as_mut() {
            Some(c) => c,
            None => {
                let c = match self.spare.take() {
                    Some(c) => c,
                    // The writer gives each chunk back once written (or says why not).
                    None => match self.empty.recv_timeout(DATA_SLICE) {
                        Ok(r) => r.map_err(|e| storage_error(&e))?,
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                            return Ok(Moved::Idle)
                        }
                        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                            return Err(self.writer_gone())
                        }
                    },
                };
                self.chunk.insert(c)
            }
        };
        let Some(n) = read_data(stream, chunk.space())? else {
            self.send(true)?;
            self.wait()?;
            return Ok(Moved::Done);
        };
        chunk.add(n);
        if chunk.is_full() {
            self.send(false)?;
        }
        Ok(moved(n))
    }

    fn send(&mut self, last: bool) -> Result<(), TransferError> {
        let chunk = self.chunk.take().unwrap_or_default();
        let sent = match &self.full {
            Some(tx) => tx.send((chunk, last)).is_ok(),
            None => false,
        };
        if last {
            self.full = None;
        }
        if sent {
            Ok(())
        } else {
            Err(self.writer_gone())
        }
    }

    /// After the last chunk: every chunk back, the writer's end.
    fn wait(&mut self) -> Result<(), TransferError> {
        self.full = None;
        let mut failed = None;
        for r in self.empty.iter() {
            if let Err(e) = r {
                failed.get_or_insert(e);
            }
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        match failed {
            Some(e) => Err(storage_error(&e)),
            None => Ok(()),
        }
    }

    /// The writer stopped: its error, if it sent one.
    fn writer_gone(&mut self) -> TransferError {
        self.full = None;
        let error = self.empty.try_iter().find_map(Result::err);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        match error {
            Some(e) => storage_error(&e),
            None => TransferError::Storage(StorageError::Other("the writer thread stopped".into())),
        }
    }
}

impl Drop for Writer {
    /// An upload stopped mid-way (ABOR, a lost connection): the writer finishes the chunk it
    /// has and ends.
    fn drop(&mut self) {
        self.full = None;
        for _ in self.empty.iter() {}
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
