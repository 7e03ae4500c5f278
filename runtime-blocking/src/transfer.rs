//! Transfers: opening the file (or taking the listing), getting the data connection, moving
//! the bytes, and reporting `TransferStarted`, `TransferProgress` and `TransferEnded`.
//!
//! A retrieve opens its file first (a missing file is answered before any data connection);
//! an upload gets its data connection first, so that a STOR whose data connection never comes
//! does not truncate the existing file.
//!
//! While bytes move, the control connection is checked between chunks without blocking
//! (at least every [`CONTROL_CHECK_INTERVAL`], and whenever the data connection makes no
//! progress for [`DATA_SLICE`]) so that ABOR, STAT, NOOP and QUIT are answered mid-transfer;
//! an ABOR stops the transfer at once.
//!
//! - Binary retrieve on a plain socket on Linux: `sendfile(2)` from the file to the socket
//!   (zero-copy), [`SENDFILE_CHUNK`] at a time, see [`sendfile`]. (`std::io::copy` from a
//!   `File` to a `TcpStream` no longer does this: recent std refuses file-to-socket
//!   `sendfile` because a change to the file after the call could still reach the socket.
//!   For a file server that is the usual trade, as in nginx and vsftpd.) The socket has a
//!   [`DATA_SLICE`] send timeout so a client that stops reading cannot hold the thread past
//!   the next control check.
//! - Binary upload on a plain socket on Linux: `splice(2)` from the socket into a pipe and
//!   from the pipe into the file (one copy, into the page cache, instead of two), a pipe's
//!   worth ([`sys::PIPE_SIZE`]) at a time, with a [`DATA_SLICE`] receive timeout; the pipe is
//!   kept by the worker thread for its next upload when it is empty (at most
//!   [`sys::MAX_SPARE_PIPES`] are kept: pipes count against a per-account quota). Where splice
//!   cannot be used (a file opened for appending, a file system without it, no pipe of a
//!   useful size left in the quota) the upload goes on with read and write from where it
//!   stopped, every byte taken from the socket already in the file. See [`sys`] for the
//!   system calls.
//! - Binary uploads without a rate limit, plain or TLS, past their first 8 MiB: direct I/O
//!   (`O_DIRECT`) from two aligned buffers, one filled from the data connection while a
//!   writer thread writes the other (the `direct_uploads` key, on by default; see [`direct`]
//!   for why and docs/transfers.md for the figures). Where the file's position is not aligned
//!   (REST, APPE) or the file system refuses direct I/O, the upload goes on the ordinary way.
//! - Everything else (TYPE A, listings, TLS) goes through a buffer: TYPE A applies the
//!   core's codecs; TLS reads [`UPLOAD_BUFFER`] of the file at a time and writes it all
//!   through rustls, and reads uploads a large slice of the socket at a time
//!   ([`stream::TlsData`]).
//! - Data sockets get no TCP_NODELAY unless they carry TLS: the server writes large chunks,
//!   and the shutdown at the end pushes the last segment out at once.
//! - Protected data connections (PROT P): after the 150, a server-side TLS handshake with the
//!   control connection's configuration (bounded by `data_connect_timeout`, watching the
//!   control connection). When the core requires it, the handshake must have resumed the
//!   control connection's session, or the transfer ends with 522 (the data connection could
//!   belong to anyone who reached the passive port). A download ends with close_notify; an
//!   upload is complete only when the client's close_notify arrived: a bare TCP end (a cut,
//!   or an attacker's FIN) is a failed upload, 426, never 226. A STOR that would replace a
//!   file truncates it only after the handshake, so a refused data connection leaves the file
//!   as it was.
//! - Buffered uploads read into a fixed [`UPLOAD_BUFFER`] and write to the file: bounded
//!   memory.
//! - A transfer that moves no byte for `data_stall_timeout` ends with `426`.
//! - A rate limit ([`Pacer`]) sleeps between chunks, still watching the control connection.

use log::{info, warn};
use rustls::{ServerConnection, StreamOwned};
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use wharf_core::codec::{AsciiDecoder, AsciiEncoder};
use wharf_core::{
    ActionId, DataEndpoint, DataProtection, Lost, OutcomeKind, Representation, StorageError,
    StoreMode, TransferError, TransferKind, TransferPlan, VirtualPath,
};

use wharf_core::addr::canonical_ip;

use crate::conn::{Connection, Interrupt};
use crate::data::connect_active;
use crate::storage::map_io_error;
use crate::stream::{self, DataStream};
use crate::tls::{self, Verdict};

pub mod direct;
pub mod sys;
pub use sys::sendfile;

/// Bytes per `sendfile` call on the zero-copy path.
pub const SENDFILE_CHUNK: u64 = 8 * 1024 * 1024;
/// Size of the buffer of uploads and of buffered retrieves.
pub const UPLOAD_BUFFER: usize = 256 * 1024;
/// Longest a data socket call blocks before the control connection is looked at again.
pub const DATA_SLICE: Duration = Duration::from_millis(50);
/// How often the control connection is looked at while data flows.
pub const CONTROL_CHECK_INTERVAL: Duration = Duration::from_millis(5);
/// The reason a protected data connection that did not resume a TLS session of its client is
/// refused with (reply 522).
pub const NOT_RESUMED: &str =
    "the data connection did not resume the TLS session of its control connection (required; see docs/ftps.md)";

/// What a transfer moves, opened.
enum Source {
    /// A file positioned at `offset`, and the bytes to send from there.
    File {
        file: File,
        offset: u64,
        len: u64,
    },
    Bytes(Vec<u8>),
}

/// Paces a transfer to a rate limit (bytes per second) by sleeping between chunks.
///
/// The schedule runs from [`Pacer::begin`] (when bytes start to move, so that waiting for
/// the data connection or a TLS handshake does not count as time the transfer could have
/// used): after `n` bytes, the next ones may move once `n / rate` seconds have passed. Chunks
/// are a tenth of a second's worth ([`Pacer::chunk`]; on the sendfile path too), so the rate
/// holds over any stretch longer than that. A transfer that fell behind its schedule (a slow
/// client) may catch up by at most [`Pacer::MAX_BURST`] worth of bytes; beyond that the
/// schedule starts again from where it is.
#[derive(Debug)]
pub struct Pacer {
    rate: Option<u64>,
    start: Instant,
    /// Bytes moved before `start` (not paced by the current schedule).
    base: u64,
}

impl Pacer {
    /// How far behind its schedule a transfer may be before the schedule restarts.
    pub const MAX_BURST: Duration = Duration::from_secs(1);

    /// A pacer for `rate` bytes per second (`None`: no limit), starting now.
    pub fn new(rate: Option<u64>) -> Pacer {
        Pacer {
            rate: rate.filter(|&r| r > 0),
            start: Instant::now(),
            base: 0,
        }
    }

    /// Starts the schedule now, with no byte moved yet.
    pub fn begin(&mut self) {
        self.start = Instant::now();
        self.base = 0;
    }

    /// The largest chunk to move at once: a tenth of a second's worth under a limit.
    pub fn chunk(&self, max: u64) -> u64 {
        match self.rate {
            Some(r) => (r / 10).clamp(1, max),
            None => max,
        }
    }

    /// Whether a rate limit applies.
    pub fn is_limited(&self) -> bool {
        self.rate.is_some()
    }

    /// How long to wait before moving more, having moved `bytes` since [`Pacer::begin`].
    pub fn delay(&mut self, bytes: u64) -> Duration {
        let Some(r) = self.rate else {
            return Duration::ZERO;
        };
        let paced = bytes.saturating_sub(self.base);
        let due = Duration::from_secs_f64(paced as f64 / r as f64);
        let elapsed = self.start.elapsed();
        if elapsed > due + Self::MAX_BURST {
            // Far behind (the client was slow): no burst to catch up; pace from here.
            self.start = Instant::now();
            self.base = bytes;
            return Duration::ZERO;
        }
        due.saturating_sub(elapsed)
    }
}

/// The state of bytes moving: counts, stall detection, control checks.
struct Flow {
    id: ActionId,
    bytes: u64,
    last_progress: Instant,
    last_check: Instant,
    stall: Duration,
    pacer: Pacer,
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

fn lost(e: &io::Error) -> TransferError {
    TransferError::ConnectionLost(Lost::Broken(e.to_string()))
}

fn closed() -> TransferError {
    TransferError::ConnectionLost(Lost::Broken("the data connection closed".into()))
}

fn interrupted(i: Interrupt) -> TransferError {
    match i {
        Interrupt::Abort => TransferError::Aborted,
        Interrupt::Close => TransferError::ConnectionLost(Lost::ControlClosed),
    }
}

impl Connection<'_> {
    /// Runs one transfer and reports how it ended.
    pub(crate) fn run_transfer(&mut self, id: ActionId, plan: TransferPlan) {
        let started = Instant::now();
        let (verb, path) = describe(&plan);
        let prot = match plan.protection {
            DataProtection::Clear => "C",
            DataProtection::Private { .. } => "P",
        };
        let retrieve = !matches!(plan.kind, TransferKind::Store { .. });
        let mut flow = Flow {
            id,
            bytes: 0,
            last_progress: started,
            last_check: started,
            stall: self.shared.settings.data_stall_timeout,
            pacer: Pacer::new(plan.rate_limit),
        };
        let upload = matches!(plan.kind, TransferKind::Store { .. });
        let mut result = self.transfer(&mut flow, plan);
        if upload {
            result = self.settle_upload(result);
        }
        if retrieve {
            self.bytes_down += flow.bytes;
        } else {
            self.bytes_up += flow.bytes;
        }
        let outcome = match &result {
            Ok(()) => "ok".to_string(),
            Err(e) => e.to_string(),
        };
        info!(
            "session {} transfer user={} cmd={verb} path={path} prot={prot} bytes={} secs={:.3} result={outcome}",
            self.id,
            self.user.as_deref().unwrap_or("-"),
            flow.bytes,
            started.elapsed().as_secs_f64()
        );
        let kind = OutcomeKind::TransferEnded {
            bytes: flow.bytes,
            result,
        };
        self.session
            .handle_outcome(Instant::now(), wharf_core::Outcome::new(id, kind));
    }

    fn transfer(&mut self, flow: &mut Flow, plan: TransferPlan) -> Result<(), TransferError> {
        let TransferPlan {
            kind,
            data,
            representation,
            protection,
            ..
        } = plan;
        let storage = || {
            self.storage
                .as_deref()
                .ok_or(TransferError::Storage(StorageError::PermissionDenied))
        };
        // The file first: a missing file is a 550 before any data connection.
        match kind {
            TransferKind::Retrieve { path, offset } => {
                let (file, size) = storage()?
                    .open_read(&path, offset)
                    .map_err(TransferError::Storage)?;
                let stream = self.open_data(flow, data, true)?;
                self.started(flow, None)?;
                let mut stream = self.protect(flow, stream, protection, true)?;
                self.send(
                    flow,
                    &mut stream,
                    Source::File {
                        file,
                        offset,
                        len: size.saturating_sub(offset),
                    },
                    representation,
                )
            }
            TransferKind::Listing { bytes } => {
                let stream = self.open_data(flow, data, true)?;
                self.started(flow, None)?;
                let mut stream = self.protect(flow, stream, protection, true)?;
                self.send(
                    flow,
                    &mut stream,
                    Source::Bytes(bytes),
                    Representation::Binary,
                )
            }
            TransferKind::Store { path, mode } => {
                // The data connection first: opening the file truncates it (STOR), which must
                // not happen for an upload that then never gets its data connection.
                storage()?;
                let stream = self.open_data(flow, data, false)?;
                // Protected: the handshake comes after the 150 and may be refused, so a STOR
                // that writes in place opens without truncating and truncates once the data
                // connection is good. (Atomic uploads write a new partial file: nothing to
                // protect, and nothing to copy first.)
                let private = matches!(protection, DataProtection::Private { .. });
                let storage = self
                    .storage
                    .as_deref()
                    .ok_or(TransferError::Storage(StorageError::PermissionDenied))?;
                let open_mode = match mode {
                    StoreMode::Create if private && !storage.keeps_old_until_finished() => {
                        StoreMode::Append
                    }
                    other => other,
                };
                let (mut file, stored_as) = storage
                    .open_write(&path, open_mode)
                    .map_err(TransferError::Storage)?;
                let unique = (mode == StoreMode::Unique).then_some(stored_as);
                self.started(flow, unique)?;
                let mut stream = self.protect(flow, stream, protection, false)?;
                if open_mode != mode {
                    file.set_len(0)
                        .and_then(|()| file.seek(std::io::SeekFrom::Start(0)))
                        .map_err(|e| TransferError::Storage(map_io_error(&e)))?;
                }
                self.receive(flow, &mut stream, file, representation)
            }
            _ => Err(TransferError::DataConnection(
                "this kind of transfer is not supported".into(),
            )),
        }
    }

    /// Reports the start (the core answers 150) and writes that reply at once.
    fn started(
        &mut self,
        flow: &Flow,
        stored_as: Option<VirtualPath>,
    ) -> Result<(), TransferError> {
        self.session.handle_outcome(
            Instant::now(),
            wharf_core::Outcome::new(flow.id, OutcomeKind::TransferStarted { stored_as }),
        );
        match self.pump(flow.id) {
            Some(i) => Err(interrupted(i)),
            None => Ok(()),
        }
    }

    /// Gets the data connection: accepts on the passive listener (watching the control
    /// connection meanwhile) or connects to the client. The socket gets a [`DATA_SLICE`]
    /// timeout in the direction the bytes go (`sends`: the server sends); TLS sets both.
    fn open_data(
        &mut self,
        flow: &mut Flow,
        endpoint: DataEndpoint,
        sends: bool,
    ) -> Result<DataStream, TransferError> {
        let timeout = self.shared.settings.data_connect_timeout;
        let tcp = match endpoint {
            DataEndpoint::Passive => {
                let Some(listener) = self.passive.take() else {
                    return Err(TransferError::DataConnection(
                        "no passive listener is open; send PASV or EPSV first".into(),
                    ));
                };
                let control = self.ctrl.tcp().as_raw_fd();
                let mut stop = None;
                let id = flow.id;
                let r = listener.accept(Instant::now() + timeout, control, || {
                    stop = self.check_control(id, 0);
                    stop.is_some()
                });
                match (r, stop) {
                    (_, Some(i)) => return Err(interrupted(i)),
                    (Ok(Some(s)), None) => s,
                    (Ok(None), None) => {
                        return Err(TransferError::DataConnection("no connection".into()))
                    }
                    (Err(e), None) => {
                        return Err(TransferError::DataConnection(format!(
                            "{e} (waited up to {} s)",
                            timeout.as_secs()
                        )))
                    }
                }
            }
            DataEndpoint::Active(addr) => connect_active(
                addr,
                canonical_ip(self.local.ip()),
                self.shared.settings.active_local_port,
                timeout,
            )
            .map_err(|e| TransferError::DataConnection(format!("cannot connect to {addr}: {e}")))?,
        };
        // No TCP_NODELAY on plain data connections: the server writes large chunks, and the
        // shutdown at the end pushes out the last partial segment at once.
        if sends {
            tcp.set_write_timeout(Some(DATA_SLICE))
        } else {
            tcp.set_read_timeout(Some(DATA_SLICE))
        }
        .map_err(|e| TransferError::DataConnection(e.to_string()))?;
        flow.last_progress = Instant::now();
        Ok(DataStream::Plain(tcp))
    }

    /// PROT P: the TLS handshake on a new data connection, from the control connection's
    /// TLS (resuming only the sessions `reuse` allows, see [`crate::tls`]), watching the
    /// control connection meanwhile; checks a session was resumed when that is required.
    /// `server_sends`: a download or a listing (the client reads what comes; an upload's data
    /// connection sends it nothing unasked). `Clear` returns the stream as it is.
    fn protect(
        &mut self,
        flow: &mut Flow,
        stream: DataStream,
        protection: DataProtection,
        server_sends: bool,
    ) -> Result<DataStream, TransferError> {
        let DataProtection::Private { reuse } = protection else {
            return Ok(stream);
        };
        let DataStream::Plain(mut tcp) = stream else {
            return Ok(stream);
        };
        let (Some(ctx), Some(control)) = (&self.shared.tls, &self.tls) else {
            return Err(TransferError::Tls(
                "the control connection has no TLS session".into(),
            ));
        };
        let data_tls = ctx.data(control, reuse, self.user.as_deref(), server_sends);
        let config = data_tls.config();
        // TLS writes small messages (handshake, tickets, close_notify) between large ones:
        // no Nagle delay for them.
        let _ = tcp.set_nodelay(true);
        let mut conn =
            ServerConnection::new(config).map_err(|e| TransferError::Tls(e.to_string()))?;
        conn.set_buffer_limit(Some(UPLOAD_BUFFER));
        let deadline = Instant::now() + self.shared.settings.data_connect_timeout;
        let id = flow.id;
        let mut stop = None;
        let r = stream::handshake(&mut conn, &mut tcp, deadline, DATA_SLICE, || {
            stop = self.check_control(id, 0);
            stop.is_some()
        });
        if let Some(i) = stop {
            return Err(interrupted(i));
        }
        if let Err(e) = r {
            info!(
                "session {} data connection TLS handshake failed: {e}",
                self.id
            );
            return Err(TransferError::Tls(e.to_string()));
        }
        tcp.set_write_timeout(Some(DATA_SLICE))
            .and_then(|()| tcp.set_read_timeout(Some(DATA_SLICE)))
            .map_err(|e| TransferError::DataConnection(e.to_string()))?;
        let refusal = if !reuse.required() {
            None
        } else if !tls::data_handshake_resumed(&conn) {
            Some("it did not resume a TLS session of its client")
        } else {
            match self.session_vouches(flow, &data_tls)? {
                Verdict::Own => None,
                Verdict::Sibling => {
                    info!(
                        "session {} data connection resumed the TLS session of another control \
                         connection of {} from {} (tls_session_reuse_scope = \"client\")",
                        self.id,
                        self.user.as_deref().unwrap_or("-"),
                        self.peer.ip()
                    );
                    None
                }
                _ => Some("it resumed a TLS session of another user's control connection"),
            }
        };
        if let Some(why) = refusal {
            warn!(
                "session {} data connection from {} refused: {why}",
                self.id,
                tcp.peer_addr().map_or("?".into(), |a| a.to_string())
            );
            let mut refused = StreamOwned::new(conn, tcp);
            refused.conn.send_close_notify();
            let _ = refused.flush();
            let _ = refused.sock.shutdown(std::net::Shutdown::Both);
            return Err(TransferError::Tls(NOT_RESUMED.into()));
        }
        flow.last_progress = Instant::now();
        Ok(DataStream::tls(StreamOwned::new(conn, tcp)))
    }

    /// After a resumed data handshake: whether the session's control connection vouches for
    /// this user (see [`crate::tls::Verdict`]). One still logging in is waited for — it is
    /// usually a few milliseconds from its `PASS` — watching the control connection, at most
    /// the data connection timeout.
    fn session_vouches(
        &mut self,
        flow: &mut Flow,
        data_tls: &tls::DataTls,
    ) -> Result<Verdict, TransferError> {
        let until = Instant::now() + self.shared.settings.data_connect_timeout;
        // Bounded by the deadline (each round sleeps); the count is a second guard.
        for _ in 0..100_000 {
            match data_tls.verdict(self.user.as_deref()) {
                Verdict::Wait if Instant::now() < until => {}
                Verdict::Wait => return Ok(Verdict::Refuse),
                done => return Ok(done),
            }
            std::thread::sleep(Duration::from_millis(5));
            if let Some(i) = self.check_control(flow.id, 0) {
                return Err(interrupted(i));
            }
        }
        Ok(Verdict::Refuse)
    }

    /// The end of the data the server sends: for TLS, close_notify written out (watching the
    /// control connection while a slow client takes it); then the socket shut for writing.
    fn finish_data(
        &mut self,
        flow: &mut Flow,
        stream: &mut DataStream,
    ) -> Result<(), TransferError> {
        if stream.is_tls() {
            stream.send_close_notify();
            // Bounded: every round writes, or waits DATA_SLICE and counts towards the stall
            // timeout in `tick`.
            for _ in 0..10_000_000 {
                if !stream.has_pending() {
                    break;
                }
                match stream.write_pending() {
                    Ok(0) => return Err(closed()),
                    Ok(_) => flow.last_progress = Instant::now(),
                    Err(e) if is_timeout(&e) => self.tick(flow, 0)?,
                    Err(e) => return Err(lost(&e)),
                }
            }
        }
        stream.finish().map_err(|e| lost(&e))
    }

    /// Between chunks: progress bookkeeping, stall detection, control checks, pacing.
    fn tick(&mut self, flow: &mut Flow, moved: u64) -> Result<(), TransferError> {
        let now = Instant::now();
        if moved > 0 {
            flow.bytes += moved;
            flow.last_progress = now;
        } else if now.duration_since(flow.last_progress) >= flow.stall {
            return Err(TransferError::ConnectionLost(Lost::Stalled(flow.stall)));
        }
        if moved == 0 || now.duration_since(flow.last_check) >= CONTROL_CHECK_INTERVAL {
            flow.last_check = now;
            if let Some(i) = self.check_control(flow.id, flow.bytes) {
                return Err(interrupted(i));
            }
        }
        // Pace: sleep in short steps, still answering the control connection.
        loop {
            let wait = flow.pacer.delay(flow.bytes);
            if wait.is_zero() {
                return Ok(());
            }
            std::thread::sleep(wait.min(Duration::from_millis(20)));
            if let Some(i) = self.check_control(flow.id, flow.bytes) {
                return Err(interrupted(i));
            }
        }
    }

    fn send(
        &mut self,
        flow: &mut Flow,
        stream: &mut DataStream,
        source: Source,
        representation: Representation,
    ) -> Result<(), TransferError> {
        flow.pacer.begin();
        match (source, representation) {
            (
                Source::File {
                    mut file,
                    offset,
                    len,
                },
                representation,
            ) => {
                if representation == Representation::Binary && stream.plain_tcp_mut().is_some() {
                    match self.sendfile(flow, stream, &file, offset, len)? {
                        None => return stream.finish().map_err(|e| lost(&e)),
                        // sendfile does not work with this file: go on with read and write.
                        Some(pos) => {
                            file.seek(std::io::SeekFrom::Start(pos))
                                .map_err(|e| TransferError::Storage(map_io_error(&e)))?;
                        }
                    }
                }
                let mut encoder = (representation == Representation::Ascii).then(AsciiEncoder::new);
                // Through TLS, large reads: fewer, fuller records per round.
                let size = if stream.is_tls() {
                    UPLOAD_BUFFER
                } else {
                    UPLOAD_BUFFER / 4
                };
                let mut buf = vec![0u8; size];
                let mut wire = Vec::new();
                loop {
                    let n = match file.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(TransferError::Storage(map_io_error(&e))),
                    };
                    match encoder.as_mut() {
                        Some(enc) => {
                            wire.clear();
                            enc.encode(&buf[..n], &mut wire);
                            self.write_all(flow, stream, &wire)?;
                        }
                        None => self.write_all(flow, stream, &buf[..n])?,
                    }
                }
            }
            (Source::Bytes(bytes), _) => self.write_all(flow, stream, &bytes)?,
        }
        // End of file for the client before the final reply.
        self.finish_data(flow, stream)
    }

    /// The zero-copy path: `sendfile` from the file to the socket. Returns `None` when done,
    /// or the file offset reached when the file turns out not to support `sendfile` (the
    /// caller goes on from there with read and write).
    fn sendfile(
        &mut self,
        flow: &mut Flow,
        stream: &mut DataStream,
        file: &File,
        offset: u64,
        len: u64,
    ) -> Result<Option<u64>, TransferError> {
        let mut pos = offset;
        let end = offset.saturating_add(len);
        while pos < end {
            let Some(tcp) = stream.plain_tcp_mut() else {
                return Ok(Some(pos));
            };
            let want = flow.pacer.chunk(SENDFILE_CHUNK).min(end - pos);
            let before = pos;
            match sendfile(tcp, file, &mut pos, want as usize) {
                // The file got shorter while it was sent: what there was has been sent.
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {}
                Err(e) if is_connection_error(&e) => return Err(lost(&e)),
                Err(e) if sys::unsupported(&e) => return Ok(Some(pos)),
                Err(e) => return Err(TransferError::Storage(map_io_error(&e))),
            }
            self.tick(flow, pos - before)?;
        }
        Ok(None)
    }

    /// Writes all of `buf` to the data connection, watching the control connection.
    fn write_all(
        &mut self,
        flow: &mut Flow,
        stream: &mut DataStream,
        mut buf: &[u8],
    ) -> Result<(), TransferError> {
        while !buf.is_empty() {
            let limit = flow.pacer.chunk(buf.len() as u64) as usize;
            let moved = match stream.write(&buf[..limit]) {
                // rustls takes nothing while its send buffer is full: not an end.
                Ok(0) if stream.is_tls() => 0,
                Ok(0) => return Err(closed()),
                Ok(n) => n,
                Err(e) if is_timeout(&e) => 0,
                Err(e) => return Err(lost(&e)),
            };
            buf = &buf[moved..];
            self.tick(flow, moved as u64)?;
        }
        Ok(())
    }

    /// An upload: data connection to file, spliced on a plain binary upload (see
    /// [`Connection::splice_upload`]), else through a fixed buffer.
    fn receive(
        &mut self,
        flow: &mut Flow,
        stream: &mut DataStream,
        mut file: File,
        representation: Representation,
    ) -> Result<(), TransferError> {
        let mut decoder = (representation == Representation::Ascii).then(AsciiDecoder::new);
        flow.pacer.begin();
        // A large binary upload goes direct after its first chunk (see [`direct`]).
        let direct_from =
            (decoder.is_none() && !flow.pacer.is_limited() && self.shared.settings.direct_uploads)
                .then(|| flow.bytes + direct::CHUNK as u64);
        let upto = self.ordinary_upload(flow, stream, &mut file, decoder.as_mut(), direct_from)?;
        if upto == Upload::Paused && !self.direct_upload(flow, stream, &mut file)? {
            self.ordinary_upload(flow, stream, &mut file, None, None)?;
        }
        // The data connection ended. A client that died mid-upload closes it like one that
        // finished (in stream mode the end of the connection is the end of the file); but it
        // also closes its control connection (its lower descriptor goes first). Whoever is
        // gone cannot be told 226, so the upload does not count as complete: one more look.
        if let Some(i) = self.check_control(flow.id, flow.bytes) {
            return Err(interrupted(i));
        }
        if let Some(dec) = decoder.as_mut() {
            let mut plain = Vec::new();
            dec.finish(&mut plain);
            file.write_all(&plain)
                .map_err(|e| TransferError::Storage(map_io_error(&e)))?;
        }
        if stream.is_tls() {
            // Answer the client's close_notify with ours (clients such as Python's ssl wait
            // for it). Everything has arrived: a client that has gone already is no failure.
            if let Err(e) = self.finish_data(flow, stream) {
                log::debug!(
                    "session {}: closing the TLS data connection after an upload: {e}",
                    self.id
                );
            }
        }
        Ok(())
    }

    /// An upload the ordinary way, through the page cache: spliced on a plain binary
    /// upload (see [`Connection::splice_upload`]), else through a fixed buffer; until the
    /// data connection ends, or until the transfer has moved `stop_at` bytes ([`Upload::Paused`]).
    fn ordinary_upload(
        &mut self,
        flow: &mut Flow,
        stream: &mut DataStream,
        file: &mut File,
        decoder: Option<&mut AsciiDecoder>,
        stop_at: Option<u64>,
    ) -> Result<Upload, TransferError> {
        let spliced = match stream.plain_tcp_mut() {
            Some(tcp) if decoder.is_none() => self.splice_upload(flow, tcp, file, stop_at)?,
            _ => Upload::Unspliced,
        };
        match spliced {
            Upload::Unspliced => self.receive_buffered(flow, stream, file, decoder, stop_at),
            done => Ok(done),
        }
    }

    /// The upload loop through a fixed buffer (TLS, TYPE A, or where splice cannot be used),
    /// until the data connection ends or the transfer has moved `stop_at` bytes.
    fn receive_buffered(
        &mut self,
        flow: &mut Flow,
        stream: &mut DataStream,
        file: &mut File,
        mut decoder: Option<&mut AsciiDecoder>,
        stop_at: Option<u64>,
    ) -> Result<Upload, TransferError> {
        let mut buf = vec![0u8; UPLOAD_BUFFER];
        let mut plain = Vec::new();
        let write_err = |e: io::Error| TransferError::Storage(map_io_error(&e));
        loop {
            let Some(want) = room(flow, stop_at, buf.len()) else {
                return Ok(Upload::Paused);
            };
            let limit = flow.pacer.chunk(want) as usize;
            let Some(n) = read_data(stream, &mut buf[..limit])? else {
                return Ok(Upload::Ended);
            };
            if n > 0 {
                match decoder.as_mut() {
                    Some(dec) => {
                        plain.clear();
                        dec.decode(&buf[..n], &mut plain);
                        file.write_all(&plain).map_err(write_err)?;
                    }
                    None => file.write_all(&buf[..n]).map_err(write_err)?,
                }
            }
            self.tick(flow, n as u64)?;
        }
    }

    /// The rest of a large binary upload (its first chunk went the ordinary way), written with
    /// direct I/O through a writer thread (see [`direct`]). Returns false, with every byte
    /// taken from the data connection already in the file, where this way cannot be used: the
    /// file's position is not aligned (REST, APPE), [`direct::MAX_AT_ONCE`] uploads go direct
    /// already, the file system refuses direct I/O, or no thread could be started; the caller
    /// goes on the ordinary way from there.
    fn direct_upload(
        &mut self,
        flow: &mut Flow,
        stream: &mut DataStream,
        file: &mut File,
    ) -> Result<bool, TransferError> {
        let storage = |e: io::Error| TransferError::Storage(map_io_error(&e));
        let start = file.stream_position().map_err(storage)?;
        if start % sys::DIRECT_ALIGN as u64 != 0 {
            return Ok(false);
        }
        let Some(_slot) = direct::Slot::take(&self.shared.direct_uploads) else {
            return Ok(false);
        };
        let mut first = direct::Chunk::new();
        if self.fill_chunk(flow, stream, &mut first)? {
            // Less than a chunk more: the ordinary way, into the page cache.
            file.write_all(first.data()).map_err(storage)?;
            return Ok(true);
        }
        if sys::set_direct(file, true).is_err() {
            file.write_all(first.data()).map_err(storage)?;
            return Ok(false);
        }
        let file: &File = file;
        let (full_tx, full_rx) = crossbeam_channel::bounded::<direct::Full>(1);
        let (empty_tx, empty_rx) = crossbeam_channel::bounded(2);
        std::thread::scope(|scope| {
            let writer = std::thread::Builder::new()
                .name("wharf-write".into())
                .spawn_scoped(scope, move || direct::write_chunks(file, full_rx, empty_tx));
            if writer.is_err() {
                sys::set_direct(file, false).map_err(storage)?;
                (&*file).write_all(first.data()).map_err(storage)?;
                return Ok(false);
            }
            let mut spare = Some(direct::Chunk::new());
            let mut chunk = first;
            loop {
                // (The first chunk is full already: this returns at once.)
                let ended = self.fill_chunk(flow, stream, &mut chunk)?;
                if full_tx.send((chunk, ended)).is_err() {
                    break;
                }
                if ended {
                    break;
                }
                chunk = match spare.take() {
                    Some(c) => c,
                    // The writer gives each chunk back once written (or says why not).
                    None => match empty_rx.recv() {
                        Ok(r) => r.map_err(storage)?,
                        Err(_) => break,
                    },
                };
            }
            drop(full_tx);
            // Wait for the writer; its error (a full disk) is the upload's.
            for r in empty_rx.iter() {
                r.map_err(storage)?;
            }
            Ok(true)
        })
    }

    /// Reads the data connection into `chunk` until it is full (false) or the data
    /// connection ends (true), ticking as every upload loop does.
    fn fill_chunk(
        &mut self,
        flow: &mut Flow,
        stream: &mut DataStream,
        chunk: &mut direct::Chunk,
    ) -> Result<bool, TransferError> {
        while !chunk.is_full() {
            let Some(n) = read_data(stream, chunk.space())? else {
                return Ok(true);
            };
            chunk.add(n);
            self.tick(flow, n as u64)?;
        }
        Ok(false)
    }

    /// The zero-copy upload: `splice(2)` from the socket into a pipe and from the pipe into
    /// the file, a pipe's worth ([`sys::PIPE_SIZE`], or the rate limit's chunk) at a time,
    /// ticking between chunks as the buffered loop does (control checks, stall timeout,
    /// pacing), until the data connection ends or the transfer has moved `stop_at` bytes.
    /// [`Upload::Unspliced`] when splice cannot be used here: the caller goes on with read and
    /// write from where this stopped (every byte taken from the socket is in the file by then).
    fn splice_upload(
        &mut self,
        flow: &mut Flow,
        tcp: &std::net::TcpStream,
        file: &mut File,
        stop_at: Option<u64>,
    ) -> Result<Upload, TransferError> {
        let Ok(mut pipe) = sys::Pipe::take() else {
            return Ok(Upload::Unspliced);
        };
        let r = self.splice_chunks(flow, tcp, file, &mut pipe, stop_at);
        // Kept for the next transfer only if it is empty.
        pipe.give_back();
        r
    }

    fn splice_chunks(
        &mut self,
        flow: &mut Flow,
        tcp: &std::net::TcpStream,
        file: &mut File,
        pipe: &mut sys::Pipe,
        stop_at: Option<u64>,
    ) -> Result<Upload, TransferError> {
        let write_err = |e: &io::Error| TransferError::Storage(map_io_error(e));
        loop {
            let Some(room) = room(flow, stop_at, pipe.capacity()) else {
                return Ok(Upload::Paused);
            };
            let want = flow.pacer.chunk(room) as usize;
            let n = match pipe.fill_from(tcp, want) {
                Ok(0) => return Ok(Upload::Ended),
                Ok(n) => n,
                Err(e) if is_timeout(&e) => 0,
                // Nothing was taken from the socket: read and write from here.
                Err(e) if sys::unsupported(&e) => return Ok(Upload::Unspliced),
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
                    // This file cannot be spliced into (opened for appending, a file system
                    // without splice): what the pipe holds goes in the ordinary way.
                    Err(e) if sys::unsupported(&e) => {
                        pipe.copy_out(&mut *file).map_err(|e| write_err(&e))?;
                        spliced = false;
                    }
                    Err(e) => return Err(write_err(&e)),
                }
            }
            self.tick(flow, n as u64)?;
            if !spliced {
                return Ok(Upload::Unspliced);
            }
        }
    }
}

/// Where an upload loop stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upload {
    /// The data connection ended: all of the file arrived.
    Ended,
    /// The byte count it was given was reached; the data connection goes on.
    Paused,
    /// Splice cannot be used here; nothing is lost (read and write go on from here).
    Unspliced,
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

/// How many bytes an upload loop may take next, at most `max`: `None` once the transfer has
/// moved `stop_at` bytes.
fn room(flow: &Flow, stop_at: Option<u64>, max: usize) -> Option<u64> {
    match stop_at {
        Some(end) if flow.bytes >= end => None,
        Some(end) => Some((end - flow.bytes).min(max as u64)),
        None => Some(max as u64),
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

/// The command and path a transfer stands for, for the log.
fn describe(plan: &TransferPlan) -> (&'static str, String) {
    match &plan.kind {
        TransferKind::Retrieve { path, .. } => ("RETR", path.to_string()),
        TransferKind::Listing { .. } => ("LIST", "-".into()),
        TransferKind::Store { path, mode } => (
            match mode {
                StoreMode::Create | StoreMode::Resume(_) => "STOR",
                StoreMode::Append => "APPE",
                StoreMode::Unique => "STOU",
            },
            path.to_string(),
        ),
        _ => ("?", "-".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_restarts_instead_of_bursting() {
        let mut p = Pacer::new(Some(1_000_000));
        p.begin();
        // 1 MB was due after 1 s; 2.5 s have passed: more than MAX_BURST behind.
        p.start = Instant::now() - Duration::from_millis(2500);
        assert_eq!(p.delay(1_000_000), Duration::ZERO);
        // The schedule restarted at 1 MB: 100 kB more are due in 0.1 s, not at once.
        let d = p.delay(1_100_000);
        assert!(
            d > Duration::from_millis(80) && d <= Duration::from_millis(100),
            "{d:?}"
        );
        // Slightly behind (less than MAX_BURST): catching up is allowed.
        let mut q = Pacer::new(Some(1_000_000));
        q.start = Instant::now() - Duration::from_millis(1500);
        assert_eq!(q.delay(1_000_000), Duration::ZERO);
        assert_eq!(q.base, 0);
    }

    #[test]
    fn pacer_spreads_bytes_over_time() {
        let mut p = Pacer::new(Some(1_000_000));
        assert_eq!(p.chunk(u64::MAX), 100_000);
        // 500 kB at 1 MB/s are due after half a second.
        let d = p.delay(500_000);
        assert!(
            d > Duration::from_millis(400) && d <= Duration::from_millis(500),
            "{d:?}"
        );
        assert_eq!(Pacer::new(None).delay(u64::MAX), Duration::ZERO);
        assert_eq!(Pacer::new(Some(0)).chunk(7), 7);
    }
}
