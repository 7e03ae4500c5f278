//! The byte streams of a session: the control connection and data connections, plain or TLS.
//!
//! Both are enums over the transports Wharf speaks, so that the driver and the transfer code
//! never hard-wire a `TcpStream`. The TLS variants hold a rustls
//! `StreamOwned<ServerConnection, TcpStream>` ([`TlsStream`]); a protected data connection
//! adds a large receive buffer in front of it ([`TlsData`]). Every variant exposes its TCP
//! socket ([`ControlStream::tcp`], [`DataStream::tcp`]) for timeouts, blocking mode and
//! addresses, and only the plain data variant offers the zero-copy paths
//! ([`DataStream::plain_tcp_mut`]).
//!
//! This module also holds the blocking TLS steps the driver needs and rustls does not give in
//! this shape: a handshake bounded in time that lets the caller look at the control connection
//! between waits ([`handshake`]), and the end of TLS on a control connection that goes on in
//! the clear after CCC or REIN ([`stop_tls`]). Nothing here decides protocol questions.

use rustls::{ServerConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A TLS connection over a TCP socket, server side.
pub type TlsStream = StreamOwned<ServerConnection, TcpStream>;

/// The control connection of a session.
#[derive(Debug)]
#[non_exhaustive]
pub enum ControlStream {
    /// Plain FTP.
    Plain(TcpStream),
    /// FTP over TLS (after AUTH TLS, or on an implicit-TLS listener).
    Tls(Box<TlsStream>),
}

impl ControlStream {
    /// The underlying TCP socket.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            ControlStream::Plain(s) => s,
            ControlStream::Tls(s) => &s.sock,
        }
    }

    /// The TLS connection, when the control connection is protected.
    pub fn tls(&self) -> Option<&ServerConnection> {
        match self {
            ControlStream::Plain(_) => None,
            ControlStream::Tls(s) => Some(&s.conn),
        }
    }

    /// Writes all of `bytes` and flushes them to the socket (through TLS when protected).
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes)?;
        self.flush()
    }

    /// Reads whatever is available now without waiting: `Ok(None)` when nothing is (for TLS:
    /// also when only part of a record has arrived). On a plain connection this is one
    /// `recv(MSG_DONTWAIT)`: the socket's blocking mode is not touched.
    pub fn read_now(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let r = match self {
            ControlStream::Plain(s) => crate::sys::recv_now(s, buf),
            ControlStream::Tls(_) => {
                self.tcp().set_nonblocking(true)?;
                let r = self.read(buf);
                self.tcp().set_nonblocking(false)?;
                r
            }
        };
        match r {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl Read for ControlStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ControlStream::Plain(s) => s.read(buf),
            ControlStream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for ControlStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ControlStream::Plain(s) => s.write(buf),
            ControlStream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            ControlStream::Plain(s) => s.flush(),
            ControlStream::Tls(s) => s.flush(),
        }
    }
}

/// A data connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum DataStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS (PROT P).
    Tls(Box<TlsData>),
}

/// Bytes read from the socket of a protected data connection at once (see [`TlsData`]).
pub const TLS_READ_BUFFER: usize = 256 * 1024;

/// A protected data connection: the rustls stream, and a receive buffer in front of it.
///
/// rustls reads at most 4 KiB from a socket per `read_tls` call, which for an upload means
/// a system call per 4 KiB; reading large slices of the socket into [`TlsData`]'s own
/// buffer and handing them to rustls from memory makes that one per [`TLS_READ_BUFFER`]
/// (as much as has arrived), and a read returns as much plaintext as the records at hand
/// hold, so the file gets large writes too.
#[derive(Debug)]
pub struct TlsData {
    /// The TLS connection and its socket.
    pub stream: TlsStream,
    inbuf: Vec<u8>,
    start: usize,
    end: usize,
}

impl TlsData {
    /// Wraps a TLS stream whose handshake is done.
    pub fn new(stream: TlsStream) -> TlsData {
        TlsData {
            stream,
            inbuf: Vec::new(),
            start: 0,
            end: 0,
        }
    }

    /// Writes what rustls has queued (alerts, key updates) as far as the socket takes it.
    fn flush_queued(&mut self) -> io::Result<()> {
        let s = &mut self.stream;
        // Bounded: every round writes something, or the socket's timeout ends it.
        for _ in 0..1024 {
            if !s.conn.wants_write() {
                break;
            }
            if s.conn.write_tls(&mut s.sock)? == 0 {
                break;
            }
        }
        Ok(())
    }

    /// Reads plaintext: what the records already received hold, else one read of the socket
    /// (waiting as its read timeout says). `Ok(0)` after the peer's close_notify; a bare end
    /// of the TCP stream is `UnexpectedEof` (as rustls' own stream reports it).
    fn read_plain(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let mut filled = 0;
        // Bounded: every round hands rustls at least one byte, reads the socket (at most once
        // per call when nothing was decrypted yet), or returns.
        for _ in 0..1_000_000 {
            match self.stream.conn.reader().read(&mut out[filled..]) {
                Ok(0) => return Ok(filled),
                Ok(n) => {
                    filled += n;
                    if filled == out.len() {
                        return Ok(filled);
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if filled > 0 => {
                    // Reported by the next call.
                    let _ = e;
                    return Ok(filled);
                }
                Err(e) => return Err(e),
            }
            if self.start < self.end {
                let mut slice = &self.inbuf[self.start..self.end];
                let n = self.stream.conn.read_tls(&mut slice)?;
                self.start += n;
                if let Err(e) = self.stream.conn.process_new_packets() {
                    // Let the peer know why (rustls queued an alert), as rustls' stream does.
                    let _ = self.flush_queued();
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
                if self.stream.conn.wants_write() {
                    self.flush_queued()?;
                }
                continue;
            }
            if filled > 0 {
                return Ok(filled);
            }
            if self.inbuf.is_empty() {
                self.inbuf = vec![0u8; TLS_READ_BUFFER];
            }
            self.start = 0;
            self.end = 0;
            match (&self.stream.sock).read(&mut self.inbuf) {
                Ok(0) => {
                    // The end of the TCP stream: rustls decides whether it was a clean one.
                    self.stream.conn.read_tls(&mut &[][..])?;
                    if let Err(e) = self.stream.conn.process_new_packets() {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                }
                Ok(n) => self.end = n,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no progress reading TLS records",
        ))
    }
}

impl DataStream {
    /// A protected data connection over `stream` (handshake done).
    pub fn tls(stream: TlsStream) -> DataStream {
        DataStream::Tls(Box::new(TlsData::new(stream)))
    }

    /// The underlying TCP socket.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            DataStream::Plain(s) => s,
            DataStream::Tls(s) => &s.stream.sock,
        }
    }

    /// Whether the bytes go through TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, DataStream::Tls(_))
    }

    /// The socket itself when nothing sits between it and the bytes (no TLS), for the
    /// `sendfile` path.
    pub fn plain_tcp_mut(&mut self) -> Option<&mut TcpStream> {
        match self {
            DataStream::Plain(s) => Some(s),
            DataStream::Tls(_) => None,
        }
    }

    /// TLS only: queues a close_notify alert (sent by [`DataStream::write_pending`]).
    pub fn send_close_notify(&mut self) {
        if let DataStream::Tls(s) = self {
            s.stream.conn.send_close_notify();
        }
    }

    /// Whether encrypted bytes wait to be written to the socket.
    pub fn has_pending(&self) -> bool {
        match self {
            DataStream::Plain(_) => false,
            DataStream::Tls(s) => s.stream.conn.wants_write(),
        }
    }

    /// Writes encrypted bytes that wait, once; returns how many went. A socket timeout is a
    /// `WouldBlock`/`TimedOut` error: call again.
    pub fn write_pending(&mut self) -> io::Result<usize> {
        match self {
            DataStream::Plain(_) => Ok(0),
            DataStream::Tls(s) => {
                let s = &mut s.stream;
                s.conn.write_tls(&mut s.sock)
            }
        }
    }

    /// Shuts the socket for writing, so the client sees end of file before the transfer's
    /// final reply. For TLS, call [`DataStream::send_close_notify`] and write what is pending
    /// first (the transfer code does, watching the control connection meanwhile).
    pub fn finish(&mut self) -> io::Result<()> {
        self.tcp().shutdown(std::net::Shutdown::Write)
    }
}

impl Read for DataStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            DataStream::Plain(s) => s.read(buf),
            DataStream::Tls(s) => s.read_plain(buf),
        }
    }
}

impl Write for DataStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            DataStream::Plain(s) => s.write(buf),
            DataStream::Tls(s) => s.stream.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            DataStream::Plain(s) => s.flush(),
            DataStream::Tls(s) => s.stream.flush(),
        }
    }
}

/// Why a handshake did not finish.
#[derive(Debug)]
pub enum HandshakeError {
    /// The deadline passed.
    TimedOut(Duration),
    /// The peer closed the connection.
    Closed,
    /// A socket error or a TLS error (rustls' message in the text).
    Failed(io::Error),
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::TimedOut(d) => {
                write!(
                    f,
                    "the TLS handshake did not finish within {} s",
                    d.as_secs()
                )
            }
            HandshakeError::Closed => {
                f.write_str("the peer closed the connection during the TLS handshake")
            }
            HandshakeError::Failed(e) => write!(f, "{e}"),
        }
    }
}

/// Where a handshake stands after [`handshake_step`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeProgress {
    /// Finished, and what followed it (TLS 1.3 session tickets) written.
    Done,
    /// Not yet. `idle`: the step's socket call waited its whole slice without moving a byte.
    Pending {
        /// Whether the step moved nothing.
        idle: bool,
    },
}

/// One step of the server side of a TLS handshake on `tcp`: writes what rustls has to send,
/// or reads what has arrived and hands it to rustls; each socket call waits at most `slice`
/// and never past `deadline`. The deadline is a total: each read hands rustls whatever has
/// arrived, so a peer that trickles its ClientHello a byte at a time cannot stretch the
/// handshake. The caller sets the socket timeouts it wants afterwards.
pub fn handshake_step(
    conn: &mut ServerConnection,
    tcp: &mut TcpStream,
    deadline: Instant,
    given: Duration,
    slice: Duration,
) -> Result<HandshakeProgress, HandshakeError> {
    let is_timeout = |e: &io::Error| {
        matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        )
    };
    if !conn.is_handshaking() && !conn.wants_write() {
        return Ok(HandshakeProgress::Done);
    }
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(HandshakeError::TimedOut(given));
    }
    let step = left.min(slice).max(Duration::from_millis(1));
    let idle = |e: &io::Error| is_timeout(e) || e.kind() == io::ErrorKind::Interrupted;
    if conn.wants_write() {
        tcp.set_write_timeout(Some(step))
            .map_err(HandshakeError::Failed)?;
        return match conn.write_tls(tcp) {
            Ok(_) => Ok(HandshakeProgress::Pending { idle: false }),
            Err(e) if idle(&e) => Ok(HandshakeProgress::Pending { idle: true }),
            Err(e) => Err(HandshakeError::Failed(e)),
        };
    }
    if !conn.wants_read() {
        // Neither: nothing more can happen (not expected while handshaking).
        return Err(HandshakeError::Closed);
    }
    tcp.set_read_timeout(Some(step))
        .map_err(HandshakeError::Failed)?;
    match conn.read_tls(tcp) {
        Ok(0) => Err(HandshakeError::Closed),
        Ok(_) => match conn.process_new_packets() {
            Ok(_) => Ok(HandshakeProgress::Pending { idle: false }),
            Err(e) => {
                // Tell the peer why (rustls queued an alert), as rustls' own driver does.
                let _ = tcp.set_write_timeout(Some(step));
                let _ = conn.write_tls(tcp);
                Err(HandshakeError::Failed(io::Error::new(
                    io::ErrorKind::InvalidData,
                    e,
                )))
            }
        },
        Err(e) if idle(&e) => Ok(HandshakeProgress::Pending { idle: true }),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(HandshakeError::Closed),
        Err(e) => Err(HandshakeError::Failed(e)),
    }
}

/// Runs the server side of a TLS handshake on `tcp` to its end (see [`handshake_step`]), or
/// until `deadline`. For a control connection, which has nothing else to watch meanwhile.
pub fn handshake(
    conn: &mut ServerConnection,
    tcp: &mut TcpStream,
    deadline: Instant,
    slice: Duration,
) -> Result<(), HandshakeError> {
    let given = deadline.saturating_duration_since(Instant::now());
    // Bounded: each round moves bytes or waits up to `slice`, and the deadline ends it; the
    // count is a second guard.
    for _ in 0..1_000_000 {
        if handshake_step(conn, tcp, deadline, given, slice)? == HandshakeProgress::Done {
            return Ok(());
        }
    }
    Err(HandshakeError::TimedOut(given))
}

/// How long [`stop_tls`] waits for the client's close_notify.
pub const CLOSE_NOTIFY_WAIT: Duration = Duration::from_secs(5);

/// What [`stop_tls`] saw.
#[derive(Debug, PartialEq, Eq)]
pub enum StopTls {
    /// Both close_notify alerts were exchanged.
    Clean,
    /// The client sent no close_notify within the wait, or sent clear text right away: the
    /// connection goes on in the clear anyway.
    NoCloseNotify,
    /// Protected bytes came before the client's close_notify; they were dropped (this many).
    DroppedProtected(usize),
}

/// Ends TLS on a control connection and returns the plain socket (RFC 4217 §12.2, CCC; also
/// REIN): sends close_notify, then reads the client's close_notify — record by record,
/// straight off the socket, so that not one byte of the clear text that follows is consumed —
/// for at most `wait`.
pub fn stop_tls(stream: TlsStream, wait: Duration) -> (TcpStream, io::Result<StopTls>) {
    let StreamOwned { mut conn, mut sock } = stream;
    let r = stop_tls_inner(&mut conn, &mut sock, wait);
    (sock, r)
}

fn stop_tls_inner(
    conn: &mut ServerConnection,
    sock: &mut TcpStream,
    wait: Duration,
) -> io::Result<StopTls> {
    conn.send_close_notify();
    let deadline = Instant::now() + wait;
    // Write the alert (and anything still queued). Bounded by the deadline.
    while conn.wants_write() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "cannot send close_notify",
            ));
        }
        sock.set_write_timeout(Some(left))?;
        conn.write_tls(sock)?;
    }
    let mut dropped = 0usize;
    let mut scratch = [0u8; 4096];
    // What rustls had read already may hold the alert.
    if close_notify_seen(conn, &mut scratch, &mut dropped)? {
        return Ok(finished(dropped));
    }
    // Then one record at a time: peek at the header, read exactly the record.
    for _ in 0..64 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(StopTls::NoCloseNotify);
        }
        sock.set_read_timeout(Some(left))?;
        let mut header = [0u8; 5];
        let n = match sock.peek(&mut header) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(StopTls::NoCloseNotify)
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(StopTls::NoCloseNotify);
        }
        // 0x14..=0x17: change_cipher_spec, alert, handshake, application_data. A command in the
        // clear starts with a letter.
        if !(0x14..=0x17).contains(&header[0]) {
            return Ok(StopTls::NoCloseNotify);
        }
        if n < 5 {
            // The rest of the header is on its way; look again shortly.
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let len = 5 + usize::from(u16::from_be_bytes([header[3], header[4]]));
        let mut record = vec![0u8; len];
        sock.read_exact(&mut record)?;
        let mut slice = &record[..];
        while !slice.is_empty() {
            if conn.read_tls(&mut slice)? == 0 {
                break;
            }
        }
        if let Err(e) = conn.process_new_packets() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        if close_notify_seen(conn, &mut scratch, &mut dropped)? {
            return Ok(finished(dropped));
        }
    }
    Ok(StopTls::NoCloseNotify)
}

fn finished(dropped: usize) -> StopTls {
    if dropped > 0 {
        StopTls::DroppedProtected(dropped)
    } else {
        StopTls::Clean
    }
}

/// Drains plaintext rustls holds (counting it as dropped); true once close_notify came.
fn close_notify_seen(
    conn: &mut ServerConnection,
    scratch: &mut [u8],
    dropped: &mut usize,
) -> io::Result<bool> {
    for _ in 0..1024 {
        match conn.reader().read(scratch) {
            Ok(0) => return Ok(true),
            Ok(n) => *dropped += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}
