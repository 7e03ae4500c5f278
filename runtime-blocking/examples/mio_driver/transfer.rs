//! One transfer as a task of the loop: the core's [`TransferPlan`] carried out a step at a
//! time, each step doing what the sockets allow now. A step returns what the session must
//! hear (`TransferStarted` once, then one `TransferEnded`); it never calls the session.
//!
//! Phases: **Connect** (accept on the passive listener, closing connections from any other
//! address than the one the core named, or finish the connect to the client; an upload opens
//! its file only now), **Protect** (PROT P: the TLS handshake, which must resume a session
//! of this client as the runtime's `TlsContext` rules), **Move** (a buffer at a time, TYPE A
//! through the core's codecs), **Finish** (a download's close_notify and shutdown) and, for
//! an upload, **Settle**: put in place (`Storage::finish_upload`) before the end is told.

use log::warn;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use rustls::ServerConnection;
use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};
use wharf_blocking::driver::data::Admits;
use wharf_blocking::driver::transfer::NOT_RESUMED;
use wharf_blocking::storage::{map_io_error, Storage, UploadEnd};
use wharf_blocking::tls::{data_handshake_resumed, ControlTls, DataTls, TlsContext, Verdict};
use wharf_core::codec::{CodecError, Decoder, Encoder};
use wharf_core::{ActionId, DataEndpoint, DataProtection, Lost, OutcomeKind};
use wharf_core::{SessionReuse, StorageError, StoreMode, TransferError, TransferKind};
use wharf_core::{TransferPlan, VirtualPath};

use crate::wire::Wire;

/// Bytes read from a file or a data connection at a time.
const CHUNK: usize = 64 * 1024;
/// How long a data connection may take to come, and then its TLS handshake.
const DATA_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A transfer that moves no byte for this long ends with 426.
const DATA_STALL_TIMEOUT: Duration = Duration::from_secs(300);

/// What a step asks of the connection.
pub enum Step {
    /// Nothing to do until a socket is ready or [`Transfer::wake`] has come.
    Idle,
    /// Step again (after the connection has read its control socket: ABOR, STAT, QUIT).
    Busy,
    /// Tell the session (`TransferStarted`), then step again.
    Report(OutcomeKind),
    /// Over: tell the session (`TransferEnded`).
    Ended(OutcomeKind),
}

/// What moving bytes once did.
enum Moved {
    /// Bytes moved (or more can move at once).
    Progress,
    /// Nothing until the socket is ready.
    Blocked,
    /// All of it has moved.
    End,
}

/// What a step needs of its connection, lent for the step.
pub struct Cx<'a> {
    pub registry: &'a Registry,
    /// The token of the connection's data socket.
    pub token: Token,
    pub storage: Option<&'a dyn Storage>,
    /// The server's TLS and this control connection's, which data connections resume.
    pub tls: Option<(&'a TlsContext, &'a ControlTls)>,
    pub user: Option<&'a str>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connect,
    Protect,
    Move,
    Finish,
    Settle,
}

pub struct Transfer {
    pub id: ActionId,
    /// Bytes moved on the data connection so far.
    pub bytes: u64,
    /// `TransferStarted` has been reported.
    pub started: bool,
    stop: Option<TransferError>,
    phase: Phase,
    /// The passive listener and the only address it accepts, until the client connects.
    listener: Option<(TcpListener, Admits)>,
    /// The data connection (for PORT/EPRT: from the start of the connect).
    data: Option<Wire>,
    /// PROT P: the session resumption rule, and the data connection's TLS configuration.
    reuse: Option<SessionReuse>,
    data_tls: Option<DataTls>,
    /// A download's file or listing.
    source: Option<Box<dyn Read>>,
    /// An upload's path and mode, and its file once the data connection is there.
    store: Option<(VirtualPath, StoreMode)>,
    file: Option<File>,
    /// The codecs of the type, structure and mode: none for TYPE I, STRU F, MODE S.
    encoder: Option<Box<Encoder>>,
    decoder: Option<Box<Decoder>>,
    /// When this phase gives up: the connect and handshake deadline, then the stall one.
    deadline: Instant,
    /// When to look again whether a sibling control connection has logged in (PROT P).
    retry: Option<Instant>,
    buf: Vec<u8>,
    /// Bytes for the file (upload) or the wire (download); a download's `out[at..]` waits.
    out: Vec<u8>,
    at: usize,
}

fn lost(e: &io::Error) -> TransferError {
    TransferError::ConnectionLost(Lost::Broken(e.to_string()))
}

fn data_connection(why: impl ToString) -> TransferError {
    TransferError::DataConnection(why.to_string())
}

impl Transfer {
    /// The transfer action `id`: a retrieve opens its file, an upload begins, a connection
    /// to the client starts. What fails here ends the transfer at its first step.
    pub fn new(
        id: ActionId,
        plan: TransferPlan,
        listener: Option<(TcpListener, Admits)>,
        cx: &Cx,
    ) -> Transfer {
        // Restart markers are left out: none are sent, a client's are not acknowledged.
        let (format, identity) = (plan.format, plan.format.is_identity());
        let start = match &plan.kind {
            TransferKind::Retrieve { offset, .. } => *offset,
            TransferKind::Store {
                mode: StoreMode::Resume(offset),
                ..
            } => *offset,
            _ => 0,
        };
        let mut t = Transfer {
            id,
            bytes: 0,
            started: false,
            stop: None,
            phase: Phase::Connect,
            listener,
            data: None,
            reuse: match plan.protection {
                DataProtection::Private { reuse } => Some(reuse),
                DataProtection::Clear => None,
            },
            data_tls: None,
            source: None,
            store: None,
            file: None,
            encoder: (!identity).then(|| Box::new(Encoder::new(format, start, None))),
            decoder: (!identity).then(|| Box::new(Decoder::new(format, start))),
            deadline: Instant::now() + DATA_CONNECT_TIMEOUT,
            retry: None,
            buf: vec![0; CHUNK],
            out: Vec::new(),
            at: 0,
        };
        t.stop = t.open(plan, cx).err();
        t
    }

    fn open(&mut self, plan: TransferPlan, cx: &Cx) -> Result<(), TransferError> {
        let storage = cx.storage.ok_or(StorageError::PermissionDenied);
        let storage = storage.map_err(TransferError::Storage)?;
        match plan.kind {
            TransferKind::Retrieve { path, offset } => {
                let opened = storage.open_read(&path, offset);
                self.source = Some(Box::new(opened.map_err(TransferError::Storage)?.0));
            }
            TransferKind::Listing { bytes } => self.source = Some(Box::new(io::Cursor::new(bytes))),
            TransferKind::Store { path, mode } => {
                storage.begin_upload(plan.ownership);
                self.store = Some((path, mode));
            }
            _ => return Err(data_connection("this kind of transfer is not supported")),
        }
        match plan.data {
            DataEndpoint::Passive if self.listener.is_none() => Err(data_connection(
                "no passive listener is open; send PASV or EPSV first",
            )),
            DataEndpoint::Passive => Ok(()),
            DataEndpoint::Active(addr) => {
                let mut tcp = TcpStream::connect(addr)
                    .map_err(|e| data_connection(format!("cannot connect to {addr}: {e}")))?;
                let both = Interest::READABLE | Interest::WRITABLE;
                cx.registry
                    .register(&mut tcp, cx.token, both)
                    .map_err(data_connection)?;
                self.data = Some(Wire::plain(tcp));
                Ok(())
            }
        }
    }

    pub fn is_upload(&self) -> bool {
        self.store.is_some()
    }

    /// Stops the transfer at its next step (ABOR, or the session is over).
    pub fn stop(&mut self, why: TransferError) {
        self.stop.get_or_insert(why);
    }

    /// When the loop must step it even if no socket is ready.
    pub fn wake(&self) -> Instant {
        self.retry.map_or(self.deadline, |r| r.min(self.deadline))
    }

    pub fn step(&mut self, cx: &Cx) -> Step {
        let now = Instant::now();
        let result = match self.stop.take() {
            Some(why) => Err(why),
            None => self.advance(cx, now),
        };
        match result {
            Ok(Step::Idle) if now >= self.deadline => {
                let why = match self.phase {
                    Phase::Connect => data_connection(format!(
                        "the client did not connect within {} s",
                        DATA_CONNECT_TIMEOUT.as_secs()
                    )),
                    Phase::Protect => TransferError::Tls("the handshake took too long".into()),
                    _ => TransferError::ConnectionLost(Lost::Stalled(DATA_STALL_TIMEOUT)),
                };
                self.end(cx, Err(why))
            }
            Ok(step) => step,
            Err(why) => self.end(cx, Err(why)),
        }
    }

    fn advance(&mut self, cx: &Cx, now: Instant) -> Result<Step, TransferError> {
        match self.phase {
            Phase::Connect => {
                if let Some((listener, admits)) = &self.listener {
                    let Some(mut tcp) = accept(listener, admits).map_err(data_connection)? else {
                        return Ok(Step::Idle);
                    };
                    let both = Interest::READABLE | Interest::WRITABLE;
                    cx.registry
                        .register(&mut tcp, cx.token, both)
                        .map_err(data_connection)?;
                    self.data = Some(Wire::plain(tcp));
                    self.listener = None;
                }
                let Some(data) = &self.data else {
                    return Ok(Step::Idle);
                };
                // PORT/EPRT: connected once the socket has neither an error nor no peer.
                if let Some(e) = data.tcp.take_error().map_err(data_connection)? {
                    return Err(data_connection(format!("cannot connect: {e}")));
                }
                match data.tcp.peer_addr() {
                    Ok(_) => self.connected(cx, now),
                    Err(_) => Ok(Step::Idle),
                }
            }
            Phase::Protect => self.protect(cx, now),
            Phase::Move => {
                let Some(mut data) = self.data.take() else {
                    return Err(lost(&ErrorKind::NotConnected.into()));
                };
                let moved = match self.store.is_some() {
                    true => self.receive(&mut data),
                    false => self.send(&mut data),
                };
                let step = match moved? {
                    Moved::Blocked => Step::Idle,
                    Moved::Progress => {
                        self.deadline = now + DATA_STALL_TIMEOUT;
                        Step::Busy
                    }
                    // The end of a download: close_notify (TLS), then the shutdown.
                    Moved::End if self.store.is_none() => {
                        data.close_notify();
                        self.phase = Phase::Finish;
                        Step::Busy
                    }
                    // The end of an upload: the client's close_notify gets ours. It is settled
                    // after one more look at the control connection: a client that died
                    // mid-upload has closed that too, and who is gone cannot be told 226.
                    Moved::End => {
                        data.close_notify();
                        let _ = data.flush_tls();
                        self.phase = Phase::Settle;
                        Step::Busy
                    }
                };
                self.data = Some(data);
                Ok(step)
            }
            Phase::Finish => {
                let Some(data) = self.data.as_mut() else {
                    return Ok(self.end(cx, Ok(())));
                };
                if !data.flush_tls().map_err(|e| lost(&e))? {
                    return Ok(Step::Idle);
                }
                data.tcp.shutdown(Shutdown::Write).map_err(|e| lost(&e))?;
                Ok(self.end(cx, Ok(())))
            }
            Phase::Settle => Ok(self.end(cx, Ok(()))),
        }
    }

    /// The data connection is there: an upload opens its file, then `TransferStarted` (the
    /// 150 goes out before a PROT P handshake: clients start TLS once they have read it).
    fn connected(&mut self, cx: &Cx, now: Instant) -> Result<Step, TransferError> {
        let mut stored_as = None;
        if let (Some((path, mode)), Some(storage)) = (&self.store, cx.storage) {
            let (file, name) = storage
                .open_write(path, *mode)
                .map_err(TransferError::Storage)?;
            self.file = Some(file);
            stored_as = (*mode == StoreMode::Unique).then_some(name);
        }
        self.started = true;
        self.phase = Phase::Move;
        self.deadline = now + DATA_STALL_TIMEOUT;
        if let Some(reuse) = self.reuse {
            let (Some((ctx, control)), Some(data)) = (cx.tls, self.data.as_mut()) else {
                return Err(TransferError::Tls(
                    "the control connection has no TLS".into(),
                ));
            };
            let data_tls = ctx.data(control, reuse, cx.user, self.source.is_some());
            let conn = ServerConnection::new(data_tls.config());
            data.tls = Some(Box::new(
                conn.map_err(|e| TransferError::Tls(e.to_string()))?,
            ));
            self.data_tls = Some(data_tls);
            self.phase = Phase::Protect;
            self.deadline = now + DATA_CONNECT_TIMEOUT;
        }
        Ok(Step::Report(OutcomeKind::TransferStarted { stored_as }))
    }

    /// PROT P: the handshake as far as it goes, then the session resumption rule.
    fn protect(&mut self, cx: &Cx, now: Instant) -> Result<Step, TransferError> {
        let (Some(data), Some(data_tls)) = (self.data.as_mut(), &self.data_tls) else {
            return Err(TransferError::Tls("no data connection".into()));
        };
        match data.handshake() {
            Ok(true) => {}
            Ok(false) => return Ok(Step::Idle),
            Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(Step::Busy),
            Err(e) => return Err(TransferError::Tls(e.to_string())),
        }
        if self.reuse.is_some_and(SessionReuse::required) {
            let resumed = data.tls.as_deref().is_some_and(data_handshake_resumed);
            match resumed.then(|| data_tls.verdict(cx.user)) {
                Some(Verdict::Own | Verdict::Sibling) => {}
                // A sibling control connection of this client is still logging in.
                Some(Verdict::Wait) if now < self.deadline => {
                    self.retry = Some(now + Duration::from_millis(5));
                    return Ok(Step::Idle);
                }
                _ => {
                    warn!("a data connection did not resume a TLS session of its client");
                    data.close_notify();
                    let _ = data.flush_tls();
                    return Err(TransferError::Tls(NOT_RESUMED.into()));
                }
            }
        }
        self.retry = None;
        self.phase = Phase::Move;
        self.deadline = now + DATA_STALL_TIMEOUT;
        Ok(Step::Busy)
    }

    /// A download: writes some of what waits, or reads (and encodes) the next buffer.
    fn send(&mut self, data: &mut Wire) -> Result<Moved, TransferError> {
        if self.at == self.out.len() {
            let Some(source) = self.source.as_mut() else {
                return Ok(Moved::End);
            };
            let n = source
                .read(&mut self.buf)
                .map_err(|e| TransferError::Storage(map_io_error(&e)))?;
            self.out.clear();
            self.at = 0;
            match (n, self.encoder.as_mut()) {
                (0, None) => return Ok(Moved::End),
                // The end of the file: the format's closing marks, then the end.
                (0, Some(enc)) => {
                    enc.finish(&mut self.out).map_err(TransferError::Codec)?;
                    self.source = None;
                }
                (_, Some(enc)) => {
                    let encoded = enc.encode(&self.buf[..n], &mut self.out);
                    encoded.map_err(TransferError::Codec)?;
                }
                (_, None) => self.out.extend_from_slice(&self.buf[..n]),
            }
            if self.out.is_empty() {
                return Ok(Moved::Progress);
            }
        }
        match data.write(&self.out[self.at..]) {
            Ok(0) if data.tls.is_none() => Err(lost(&ErrorKind::WriteZero.into())),
            Ok(0) => Ok(Moved::Blocked),
            Ok(n) => {
                self.at += n;
                self.bytes += n as u64;
                Ok(Moved::Progress)
            }
            Err(e) => blocked_or_lost(e),
        }
    }

    /// An upload: what has arrived goes to the file (TYPE A: decoded). The end comes with
    /// the end of the stream, through TLS only after the client's close_notify.
    fn receive(&mut self, data: &mut Wire) -> Result<Moved, TransferError> {
        let n = match data.read(&mut self.buf) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::UnexpectedEof && data.tls.is_some() => {
                return Err(TransferError::ConnectionLost(Lost::NoCloseNotify))
            }
            Err(e) => return blocked_or_lost(e),
        };
        let Some(file) = self.file.as_mut() else {
            return Err(TransferError::Storage(StorageError::Other(
                "no file".into(),
            )));
        };
        let write = |file: &mut File, bytes: &[u8]| {
            let written = file.write_all(bytes);
            written.map_err(|e| TransferError::Storage(map_io_error(&e)))
        };
        match (n, self.decoder.as_mut()) {
            (_, None) => write(file, &self.buf[..n])?,
            (0, Some(dec)) => {
                self.out.clear();
                dec.finish(&mut self.out).map_err(TransferError::Codec)?;
                write(file, &self.out)?;
            }
            // The decoder stops after a marker or a full output: call it again with the rest.
            (_, Some(dec)) => {
                let mut pos = 0;
                while pos < n {
                    self.out.clear();
                    let used = dec.decode(&self.buf[pos..n], &mut self.out);
                    let used = used.map_err(TransferError::Codec)?;
                    write(file, &self.out)?;
                    let _ = dec.take_marker();
                    if used == 0 && self.out.is_empty() {
                        let why = "the data could not be decoded".to_string();
                        return Err(TransferError::Codec(CodecError::Malformed(why)));
                    }
                    pos += used;
                }
            }
        }
        self.bytes += n as u64;
        Ok(if n == 0 { Moved::End } else { Moved::Progress })
    }

    /// The end: sockets and files closed, an upload settled (put in place when all of it
    /// arrived, else removed) before the outcome goes to the session.
    fn end(&mut self, cx: &Cx, result: Result<(), TransferError>) -> Step {
        (self.data, self.listener, self.source, self.file) = (None, None, None, None);
        let result = match (&self.store, cx.storage) {
            (Some(_), Some(storage)) => match storage.finish_upload(match result {
                Ok(()) => UploadEnd::Complete,
                Err(_) => UploadEnd::Failed,
            }) {
                Err(e) if result.is_ok() => Err(TransferError::NotPlaced(e)),
                _ => result,
            },
            _ => result,
        };
        let bytes = self.bytes;
        Step::Ended(OutcomeKind::TransferEnded { bytes, result })
    }
}

/// A socket error while moving: `WouldBlock` waits for readiness, `Interrupted` (a TLS read
/// that stopped after its rounds) goes on at once, anything else loses the connection.
fn blocked_or_lost(e: io::Error) -> Result<Moved, TransferError> {
    match e.kind() {
        ErrorKind::WouldBlock => Ok(Moved::Blocked),
        ErrorKind::Interrupted => Ok(Moved::Progress),
        _ => Err(lost(&e)),
    }
}

/// Accepts what waits on a passive listener: the first connection from whom `admits` names
/// (the client, or a server of the account's `fxp_peers`); others are closed at once (passive
/// port theft).
fn accept(listener: &TcpListener, admits: &Admits) -> io::Result<Option<TcpStream>> {
    for _ in 0..64 {
        match listener.accept() {
            Ok((tcp, from)) if admits.third_party(from.ip()).is_some() => return Ok(Some(tcp)),
            Ok((_, from)) => warn!("passive port theft attempt from {from}; closed"),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Interrupted | ErrorKind::ConnectionAborted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}
