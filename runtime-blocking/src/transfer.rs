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
//! - Everything else (TYPE A, listings, later TLS) goes through a buffer: TYPE A applies the
//!   core's codecs.
//! - Uploads read into a fixed [`UPLOAD_BUFFER`] and write to the file: bounded memory.
//! - A transfer that moves no byte for `data_stall_timeout` ends with `426`.
//! - A rate limit ([`Pacer`]) sleeps between chunks, still watching the control connection.

use log::info;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use wharf_core::codec::{AsciiDecoder, AsciiEncoder};
use wharf_core::{
    ActionId, DataEndpoint, OutcomeKind, Representation, StorageError, StoreMode, TransferError,
    TransferKind, TransferPlan, VirtualPath,
};

use wharf_core::addr::canonical_ip;

use crate::conn::{Connection, Interrupt};
use crate::data::connect_active;
use crate::storage::map_io_error;
use crate::stream::DataStream;

/// Bytes per `sendfile` call on the zero-copy path.
pub const SENDFILE_CHUNK: u64 = 8 * 1024 * 1024;
/// Size of the buffer of uploads and of buffered retrieves.
pub const UPLOAD_BUFFER: usize = 256 * 1024;
/// Longest a data socket call blocks before the control connection is looked at again.
pub const DATA_SLICE: Duration = Duration::from_millis(50);
/// How often the control connection is looked at while data flows.
pub const CONTROL_CHECK_INTERVAL: Duration = Duration::from_millis(5);

/// What a transfer moves, opened.
enum Source {
    File(File, u64),
    Bytes(Vec<u8>),
}

/// Paces a transfer to a rate limit (bytes per second) by sleeping between chunks.
#[derive(Debug)]
pub struct Pacer {
    rate: Option<u64>,
    start: Instant,
}

impl Pacer {
    /// A pacer for `rate` bytes per second (`None`: no limit), starting now.
    pub fn new(rate: Option<u64>) -> Pacer {
        Pacer {
            rate: rate.filter(|&r| r > 0),
            start: Instant::now(),
        }
    }

    /// The largest chunk to move at once: a tenth of a second's worth under a limit.
    pub fn chunk(&self, max: u64) -> u64 {
        match self.rate {
            Some(r) => (r / 10).clamp(1, max),
            None => max,
        }
    }

    /// How long to wait before moving more, having moved `bytes` since the start.
    pub fn delay(&self, bytes: u64) -> Duration {
        match self.rate {
            Some(r) => {
                let due = Duration::from_secs_f64(bytes as f64 / r as f64);
                due.saturating_sub(self.start.elapsed())
            }
            None => Duration::ZERO,
        }
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
    TransferError::ConnectionLost(e.to_string())
}

fn interrupted(i: Interrupt) -> TransferError {
    match i {
        Interrupt::Abort => TransferError::Aborted,
        Interrupt::Close => TransferError::ConnectionLost("the control connection closed".into()),
    }
}

impl Connection<'_> {
    /// Runs one transfer and reports how it ended.
    pub(crate) fn run_transfer(&mut self, id: ActionId, plan: TransferPlan) {
        let started = Instant::now();
        let (verb, path) = describe(&plan);
        let retrieve = !matches!(plan.kind, TransferKind::Store { .. });
        let mut flow = Flow {
            id,
            bytes: 0,
            last_progress: started,
            last_check: started,
            stall: self.shared.settings.data_stall_timeout,
            pacer: Pacer::new(plan.rate_limit),
        };
        let result = self.transfer(&mut flow, plan);
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
            "session {} transfer user={} cmd={verb} path={path} bytes={} secs={:.3} result={outcome}",
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
                let mut stream = self.open_data(flow, data)?;
                self.started(flow, None)?;
                self.send(
                    flow,
                    &mut stream,
                    Source::File(file, size.saturating_sub(offset)),
                    representation,
                )
            }
            TransferKind::Listing { bytes } => {
                let mut stream = self.open_data(flow, data)?;
                self.started(flow, None)?;
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
                let mut stream = self.open_data(flow, data)?;
                let (file, stored_as) = self
                    .storage
                    .as_deref()
                    .ok_or(TransferError::Storage(StorageError::PermissionDenied))?
                    .open_write(&path, mode)
                    .map_err(TransferError::Storage)?;
                let unique = (mode == StoreMode::Unique).then_some(stored_as);
                self.started(flow, unique)?;
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
    /// connection meanwhile) or connects to the client.
    fn open_data(
        &mut self,
        flow: &mut Flow,
        endpoint: DataEndpoint,
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
        let _ = tcp.set_nodelay(true);
        tcp.set_write_timeout(Some(DATA_SLICE))
            .and_then(|()| tcp.set_read_timeout(Some(DATA_SLICE)))
            .map_err(|e| TransferError::DataConnection(e.to_string()))?;
        flow.last_progress = Instant::now();
        Ok(DataStream::Plain(tcp))
    }

    /// Between chunks: progress bookkeeping, stall detection, control checks, pacing.
    fn tick(&mut self, flow: &mut Flow, moved: u64) -> Result<(), TransferError> {
        let now = Instant::now();
        if moved > 0 {
            flow.bytes += moved;
            flow.last_progress = now;
        } else if now.duration_since(flow.last_progress) >= flow.stall {
            return Err(TransferError::ConnectionLost(format!(
                "no data moved for {} seconds",
                flow.stall.as_secs()
            )));
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
        match (source, representation) {
            (Source::File(mut file, len), representation) => {
                if representation == Representation::Binary && stream.plain_tcp_mut().is_some() {
                    match self.sendfile(flow, stream, &file, len)? {
                        None => return stream.finish().map_err(|e| lost(&e)),
                        // sendfile does not work with this file: go on with read and write.
                        Some(pos) => {
                            file.seek(std::io::SeekFrom::Start(pos))
                                .map_err(|e| TransferError::Storage(map_io_error(&e)))?;
                        }
                    }
                }
                let mut encoder = (representation == Representation::Ascii).then(AsciiEncoder::new);
                let mut buf = vec![0u8; UPLOAD_BUFFER / 4];
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
        stream.finish().map_err(|e| lost(&e))
    }

    /// The zero-copy path: `sendfile` from the file to the socket. Returns `None` when done,
    /// or the file offset reached when the file turns out not to support `sendfile` (the
    /// caller goes on from there with read and write).
    fn sendfile(
        &mut self,
        flow: &mut Flow,
        stream: &mut DataStream,
        file: &File,
        len: u64,
    ) -> Result<Option<u64>, TransferError> {
        // Linux errno values of "this file cannot be sent that way".
        const EINVAL: i32 = 22;
        const ENOSYS: i32 = 38;
        const EOPNOTSUPP: i32 = 95;
        let mut reader = file;
        let mut pos = reader
            .stream_position()
            .map_err(|e| TransferError::Storage(map_io_error(&e)))?;
        let end = pos + len;
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
                Err(e) if matches!(e.raw_os_error(), Some(EINVAL | ENOSYS | EOPNOTSUPP)) => {
                    return Ok(Some(pos));
                }
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
                Ok(0) => {
                    return Err(TransferError::ConnectionLost(
                        "the data connection closed".into(),
                    ))
                }
                Ok(n) => n,
                Err(e) if is_timeout(&e) => 0,
                Err(e) => return Err(lost(&e)),
            };
            buf = &buf[moved..];
            self.tick(flow, moved as u64)?;
        }
        Ok(())
    }

    /// An upload: data connection to file, through a fixed buffer.
    fn receive(
        &mut self,
        flow: &mut Flow,
        stream: &mut DataStream,
        mut file: File,
        representation: Representation,
    ) -> Result<(), TransferError> {
        let mut decoder = (representation == Representation::Ascii).then(AsciiDecoder::new);
        let mut buf = vec![0u8; UPLOAD_BUFFER];
        let mut plain = Vec::new();
        let write_err = |e: io::Error| TransferError::Storage(map_io_error(&e));
        loop {
            let limit = flow.pacer.chunk(buf.len() as u64) as usize;
            let n = match stream.read(&mut buf[..limit]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if is_timeout(&e) => 0,
                Err(e) => return Err(lost(&e)),
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
        if let Some(dec) = decoder.as_mut() {
            plain.clear();
            dec.finish(&mut plain);
            file.write_all(&plain).map_err(write_err)?;
        }
        Ok(())
    }
}

/// Sends up to `count` bytes of `file`, starting at `*offset`, to `socket` with `sendfile(2)`,
/// and advances `*offset` by the bytes sent (the file's own position is not used).
///
/// A send timeout on the socket makes it return early (with the bytes sent so far, or a
/// `WouldBlock` error when there were none).
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
pub fn sendfile(
    socket: &std::net::TcpStream,
    file: &File,
    offset: &mut u64,
    count: usize,
) -> io::Result<usize> {
    extern "C" {
        // off_t is 64 bits on every 64-bit Linux C library.
        fn sendfile(out_fd: i32, in_fd: i32, offset: *mut i64, count: usize) -> isize;
    }
    let mut off = i64::try_from(*offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
    // SAFETY: both descriptors are open for the whole call (they are borrowed from live
    // objects), and `off` is a valid, exclusive pointer to an i64 for the whole call.
    let n = unsafe { sendfile(socket.as_raw_fd(), file.as_raw_fd(), &mut off, count) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    *offset = u64::try_from(off).unwrap_or(*offset);
    Ok(n as usize)
}

/// Elsewhere: a buffered copy with the same contract as the Linux `sendfile`.
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
pub fn sendfile(
    mut socket: &std::net::TcpStream,
    file: &File,
    offset: &mut u64,
    count: usize,
) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; count.min(UPLOAD_BUFFER)];
    let n = file.read_at(&mut buf, *offset)?;
    let sent = socket.write(&buf[..n])?;
    *offset += sent as u64;
    Ok(sent)
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
    fn sendfile_sends_from_the_offset() {
        use std::net::{TcpListener, TcpStream};
        let path = std::env::temp_dir().join(format!("wharf-sendfile-{}", std::process::id()));
        std::fs::write(&path, b"0123456789").unwrap();
        let file = File::open(&path).unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let tx = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut rx, _) = l.accept().unwrap();
        let mut off = 3;
        assert_eq!(sendfile(&tx, &file, &mut off, 4).unwrap(), 4);
        assert_eq!(off, 7);
        assert_eq!(sendfile(&tx, &file, &mut off, 100).unwrap(), 3);
        assert_eq!(sendfile(&tx, &file, &mut off, 100).unwrap(), 0);
        drop(tx);
        let mut got = String::new();
        rx.read_to_string(&mut got).unwrap();
        assert_eq!(got, "3456789");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn pacer_spreads_bytes_over_time() {
        let p = Pacer::new(Some(1_000_000));
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
