//! One transfer as a task of the loop: the core's [`TransferPlan`] carried out a step at a
//! time, each step doing what the sockets allow now and never waiting. It reports
//! `TransferStarted` once and one `TransferEnded` (as [`Step`]s the connection hands to the
//! session), and never calls into the session itself.
//!
//! Phases: **Connect** (accept on the passive listener, refusing other addresses than the
//! one the core named, or finish a non-blocking connect to the client; an upload opens its
//! file only then), **Protect** (PROT P: the data connection's TLS handshake, which must
//! resume a session of this client as the runtime's `TlsContext` decides), **Move** (a
//! buffer at a time; TYPE A through the core's codecs), **Finish** (a download's
//! close_notify and shutdown) and, for an upload, **Settle** (put in place by
//! `Storage::finish_upload` before the end is reported).

use log::{info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use rustls::ServerConnection;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown};
use std::time::{Duration, Instant};
use wharf_blocking::driver::transfer::NOT_RESUMED;
use wharf_blocking::storage::Storage;
use wharf_blocking::tls::{data_handshake_resumed, ControlTls, DataTls, TlsContext, Verdict};
use wharf_core::addr::canonical_ip;
use wharf_core::codec::{AsciiDecoder, AsciiEncoder};
use wharf_core::{
    ActionId, DataEndpoint, DataProtection, Lost, OutcomeKind, Representation, StorageError,
    StoreMode, TransferError, TransferKind, TransferPlan, VirtualPath,
};

use crate::wire::Wire;

/// Bytes read from a file or a data connection at a time (the buffers of a transfer).
const CHUNK: usize = 64 * 1024;
/// How long a data connection may take to come, and its TLS handshake to finish.
pub const DATA_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A transfer that moves no byte for this long ends with 426.
pub const DATA_STALL_TIMEOUT: Duration = Duration::from_secs(300);

/// What a step asks of the connection.
pub enum Step {
    /// Nothing more can happen until a socket is ready or [`Transfer::wake`] comes.
    Idle,
    /// Step again.
    Busy,
    /// Look at the control connection, then step again (an upload that has all its data:
    /// a client that died meanwhile has closed its control connection too).
    Checkpoint,
    /// Tell the session (`TransferStarted`), then step again.
    Report(OutcomeKind),
    /// The transfer is over: tell the session (`TransferEnded`).
    Ended(OutcomeKind),
}

/// What a step needs of its connection, lent for the step.
pub struct Cx<'a> {
    pub registry: &'a Registry,
    /// The token of the connection's data socket.
    pub token: Token,
    pub storage: Option<&'a dyn Storage>,
    /// The server's TLS and this control connection's (protected data connections start
    /// from it).
    pub tls: Option<(&'a TlsContext, &'a ControlTls)>,
    pub user: Option<&'a str>,
}

enum Source {
    File(File),
    Bytes(Vec<u8>, usize),
}

enum What {
    Send(Source),
    Receive {
        path: VirtualPath,
        mode: StoreMode,
        file: Option<File>,
    },
}

enum Phase {
    /// The passive listener (and whom it accepts), or a connect under way.
    Connect(Option<(TcpListener, Option<IpAddr>)>, Option<TcpStream>),
    Protect(Wire, DataTls),
    Move(Wire),
    Finish(Wire),
    Settle,
    Done,
}

pub struct Transfer {
    id: ActionId,
    what: What,
    ascii: bool,
    protection: DataProtection,
    phase: Phase,
    started: bool,
    bytes: u64,
    stop: Option<TransferError>,
    /// When the phase gives up: connect and handshake deadline, then the stall deadline.
    deadline: Instant,
    /// A protected data connection waits for a sibling control connection's login until.
    retry: Option<Instant>,
    buf: Vec<u8>,
    out: Vec<u8>,
    at: usize,
    encoder: AsciiEncoder,
    decoder: AsciiDecoder,
}

fn lost(e: &io::Error) -> TransferError {
    TransferError::ConnectionLost(Lost::Broken(e.to_string()))
}

fn storage_error(e: &io::Error) -> TransferError {
    TransferError::Storage(wharf_blocking::storage::map_io_error(e))
}

impl Transfer {
    /// The transfer `id` of `plan`: a retrieve opens its file, an upload begins, and the
    /// data connection is on its way. `Err` when it fails before it starts.
    pub fn new(
        id: ActionId,
        plan: TransferPlan,
        passive: Option<(TcpListener, Option<IpAddr>)>,
        cx: &Cx,
    ) -> Result<Transfer, TransferError> {
        let storage = cx
            .storage
            .ok_or(TransferError::Storage(StorageError::PermissionDenied))?;
        let what = match plan.kind {
            TransferKind::Retrieve { path, offset } => {
                let (file, _size) = storage
                    .open_read(&path, offset)
                    .map_err(TransferError::Storage)?;
                What::Send(Source::File(file))
            }
            TransferKind::Listing { bytes } => What::Send(Source::Bytes(bytes, 0)),
            TransferKind::Store { path, mode } => {
                storage.begin_upload(plan.ownership);
                What::Receive {
                    path,
                    mode,
                    file: None,
                }
            }
            _ => return Err(TransferError::DataConnection("not supported here".into())),
        };
        let listing = matches!(what, What::Send(Source::Bytes(..)));
        let mut t = Transfer {
            id,
            what,
            ascii: plan.representation == Representation::Ascii && !listing,
            protection: plan.protection,
            phase: Phase::Done,
            started: false,
            bytes: 0,
            stop: None,
            deadline: Instant::now() + DATA_CONNECT_TIMEOUT,
            retry: None,
            buf: vec![0; CHUNK],
            out: Vec::with_capacity(CHUNK + CHUNK / 8),
            at: 0,
            encoder: AsciiEncoder::new(),
            decoder: AsciiDecoder::new(),
        };
        t.phase = match plan.data {
            DataEndpoint::Passive if passive.is_none() => {
                return Err(t.fail(cx, "no passive listener is open; send PASV or EPSV first"))
            }
            DataEndpoint::Passive => Phase::Connect(passive, None),
            DataEndpoint::Active(addr) => match TcpStream::connect(addr) {
                Ok(mut tcp) => match cx.registry.register(&mut tcp, cx.token, Interest::WRITABLE) {
                    Ok(()) => Phase::Connect(None, Some(tcp)),
                    Err(e) => return Err(t.fail(cx, &e.to_string())),
                },
                Err(e) => return Err(t.fail(cx, &format!("cannot connect to {addr}: {e}"))),
            },
        };
        Ok(t)
    }

    /// A transfer that failed before it started (an upload that began is settled).
    fn fail(&mut self, cx: &Cx, why: &str) -> TransferError {
        match self.end(cx, Err(TransferError::DataConnection(why.into()))) {
            Step::Ended(OutcomeKind::TransferEnded { result: Err(e), .. }) => e,
            _ => TransferError::DataConnection(why.into()),
        }
    }

    pub fn id(&self) -> ActionId {
        self.id
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn started(&self) -> bool {
        self.started
    }

    pub fn is_upload(&self) -> bool {
        matches!(self.what, What::Receive { .. })
    }

    /// Stops the transfer at its next step (ABOR, or the control connection is gone).
    pub fn stop(&mut self, why: TransferError) {
        self.stop.get_or_insert(why);
    }

    /// When the loop must step it even if no socket is ready.
    pub fn wake(&self) -> Instant {
        self.retry.map_or(self.deadline, |r| r.min(self.deadline))
    }

    pub fn step(&mut self, cx: &Cx) -> Step {
        if let Some(why) = self.stop.take() {
            return self.end(cx, Err(why));
        }
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        match self.advance(phase, cx, Instant::now()) {
            Ok((next, step)) => {
                if !matches!(step, Step::Ended(_)) {
                    self.phase = next;
                }
                step
            }
            Err(e) => self.end(cx, Err(e)),
        }
    }

    fn advance(
        &mut self,
        phase: Phase,
        cx: &Cx,
        now: Instant,
    ) -> Result<(Phase, Step), TransferError> {
        let idle = |t: &Transfer, phase| match now >= t.deadline {
            true if t.started => Err(TransferError::ConnectionLost(Lost::Stalled(
                DATA_STALL_TIMEOUT,
            ))),
            true => Err(TransferError::DataConnection(format!(
                "the client did not connect within {} s",
                DATA_CONNECT_TIMEOUT.as_secs()
            ))),
            false => Ok((phase, Step::Idle)),
        };
        match phase {
            Phase::Connect(listener, connecting) => {
                let tcp = match (&listener, connecting) {
                    (Some((l, peer)), _) => accept(l, *peer).map_err(|e| lost(&e))?,
                    (None, Some(tcp)) => match tcp.take_error() {
                        Ok(Some(e)) | Err(e) => {
                            return Err(TransferError::DataConnection(format!(
                                "cannot connect: {e}"
                            )))
                        }
                        Ok(None) if tcp.peer_addr().is_ok() => Some(tcp),
                        Ok(None) => return idle(self, Phase::Connect(None, Some(tcp))),
                    },
                    (None, None) => None,
                };
                match tcp {
                    Some(tcp) => self.connected(tcp, listener.is_none(), cx, now),
                    None => idle(self, Phase::Connect(listener, None)),
                }
            }
            Phase::Protect(mut wire, data_tls) => {
                if !wire.handshake().or_else(|e| match e.kind() {
                    io::ErrorKind::Interrupted => Ok(false),
                    _ => Err(TransferError::Tls(e.to_string())),
                })? {
                    if now >= self.deadline {
                        return Err(TransferError::Tls(
                            "the TLS handshake did not finish in time".into(),
                        ));
                    }
                    return Ok((Phase::Protect(wire, data_tls), Step::Idle));
                }
                let DataProtection::Private { reuse } = self.protection else {
                    return Err(TransferError::Tls("not a protected transfer".into()));
                };
                if reuse.required() {
                    let resumed = wire.tls.as_deref().is_some_and(data_handshake_resumed);
                    match resumed.then(|| data_tls.verdict(cx.user)) {
                        Some(Verdict::Own | Verdict::Sibling) => self.retry = None,
                        // A sibling control connection of this client is still logging in.
                        Some(Verdict::Wait) if now < self.deadline => {
                            self.retry = Some(now + Duration::from_millis(5));
                            return Ok((Phase::Protect(wire, data_tls), Step::Idle));
                        }
                        _ => {
                            warn!("data connection refused: it did not resume a TLS session of its client");
                            wire.close_notify();
                            let _ = wire.flush_tls();
                            return Err(TransferError::Tls(NOT_RESUMED.into()));
                        }
                    }
                }
                self.deadline = now + DATA_STALL_TIMEOUT;
                Ok((Phase::Move(wire), Step::Busy))
            }
            Phase::Move(mut wire) => {
                let moved = match self.is_upload() {
                    true => self.receive(&mut wire),
                    false => self.send(&mut wire),
                }?;
                match moved {
                    Some(0) => idle(self, Phase::Move(wire)),
                    Some(_) => {
                        self.deadline = now + DATA_STALL_TIMEOUT;
                        Ok((Phase::Move(wire), Step::Busy))
                    }
                    // The end: a download says so (close_notify, then the shutdown).
                    None if !self.is_upload() => {
                        wire.close_notify();
                        Ok((Phase::Finish(wire), Step::Busy))
                    }
                    // An upload answers the client's close_notify with ours.
                    None => {
                        wire.close_notify();
                        let _ = wire.flush_tls();
                        Ok((Phase::Settle, Step::Checkpoint))
                    }
                }
            }
            Phase::Finish(mut wire) => {
                if !wire.flush_tls().map_err(|e| lost(&e))? {
                    return idle(self, Phase::Finish(wire));
                }
                wire.tcp.shutdown(Shutdown::Write).map_err(|e| lost(&e))?;
                Ok((Phase::Done, self.end(cx, Ok(()))))
            }
            Phase::Settle => Ok((Phase::Done, self.end(cx, Ok(())))),
            Phase::Done => Ok((Phase::Done, self.end(cx, Err(TransferError::Aborted)))),
        }
    }

    /// The data connection is there: an upload opens its file now; then `TransferStarted`
    /// (the 150), before any TLS handshake.
    fn connected(
        &mut self,
        mut tcp: TcpStream,
        active: bool,
        cx: &Cx,
        now: Instant,
    ) -> Result<(Phase, Step), TransferError> {
        // An active connection is registered already (for its connect).
        let both = Interest::READABLE | Interest::WRITABLE;
        match active {
            true => cx.registry.reregister(&mut tcp, cx.token, both),
            false => cx.registry.register(&mut tcp, cx.token, both),
        }
        .map_err(|e| TransferError::DataConnection(e.to_string()))?;
        let mut stored_as = None;
        let server_sends = !self.is_upload();
        if let What::Receive { path, mode, file } = &mut self.what {
            let storage = cx
                .storage
                .ok_or(TransferError::Storage(StorageError::PermissionDenied))?;
            let (opened, name) = storage
                .open_write(path, *mode)
                .map_err(TransferError::Storage)?;
            *file = Some(opened);
            stored_as = (*mode == StoreMode::Unique).then_some(name);
        }
        self.started = true;
        let next = match (self.protection, cx.tls) {
            (DataProtection::Clear, _) => {
                self.deadline = now + DATA_STALL_TIMEOUT;
                Phase::Move(Wire::plain(tcp))
            }
            (DataProtection::Private { reuse }, Some((ctx, control))) => {
                let data_tls = ctx.data(control, reuse, cx.user, server_sends);
                let conn = ServerConnection::new(data_tls.config())
                    .map_err(|e| TransferError::Tls(e.to_string()))?;
                self.deadline = now + DATA_CONNECT_TIMEOUT;
                let _ = tcp.set_nodelay(true);
                Phase::Protect(
                    Wire {
                        tcp,
                        tls: Some(Box::new(conn)),
                    },
                    data_tls,
                )
            }
            (DataProtection::Private { .. }, None) => {
                return Err(TransferError::Tls(
                    "the control connection has no TLS session".into(),
                ))
            }
        };
        Ok((
            next,
            Step::Report(OutcomeKind::TransferStarted { stored_as }),
        ))
    }

    /// A download: writes what waits, or reads (and encodes) the next buffer. `Some(n)`
    /// bytes moved (0: the socket is full), `None` at the end of the file.
    fn send(&mut self, wire: &mut Wire) -> Result<Option<u64>, TransferError> {
        if self.at == self.out.len() {
            self.out.clear();
            self.at = 0;
            let n = match &mut self.what {
                What::Send(Source::File(f)) => {
                    f.read(&mut self.buf).map_err(|e| storage_error(&e))?
                }
                What::Send(Source::Bytes(b, pos)) => {
                    let n = (b.len() - *pos).min(CHUNK);
                    self.buf[..n].copy_from_slice(&b[*pos..*pos + n]);
                    *pos += n;
                    n
                }
                What::Receive { .. } => 0,
            };
            if n == 0 {
                return Ok(None);
            }
            match self.ascii {
                true => self.encoder.encode(&self.buf[..n], &mut self.out),
                false => self.out.extend_from_slice(&self.buf[..n]),
            }
        }
        match wire.write(&self.out[self.at..]) {
            Ok(0) if wire.tls.is_none() => Err(lost(&io::ErrorKind::WriteZero.into())),
            Ok(n) => {
                self.at += n;
                self.bytes += n as u64;
                Ok(Some(n as u64))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(Some(0))
            }
            Err(e) => Err(lost(&e)),
        }
    }

    /// An upload: reads what has arrived and writes it to the file (TYPE A: decoded).
    /// `Some(n)` bytes moved, `None` at the end (for TLS: after the client's close_notify).
    fn receive(&mut self, wire: &mut Wire) -> Result<Option<u64>, TransferError> {
        let What::Receive {
            file: Some(file), ..
        } = &mut self.what
        else {
            return Err(TransferError::Storage(StorageError::Other(
                "no file open".into(),
            )));
        };
        let n = match wire.read(&mut self.buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                return Ok(Some(0))
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && wire.tls.is_some() => {
                return Err(TransferError::ConnectionLost(Lost::NoCloseNotify))
            }
            Err(e) => return Err(lost(&e)),
        };
        self.out.clear();
        match (n, self.ascii) {
            (0, true) => self.decoder.finish(&mut self.out),
            (_, true) => self.decoder.decode(&self.buf[..n], &mut self.out),
            (_, false) => self.out.extend_from_slice(&self.buf[..n]),
        }
        file.write_all(&self.out).map_err(|e| storage_error(&e))?;
        self.bytes += n as u64;
        Ok((n > 0).then_some(n as u64))
    }

    /// The end: sockets and file closed, an upload settled (put in place when all of it
    /// arrived, else removed) before the outcome goes to the session.
    fn end(&mut self, cx: &Cx, result: Result<(), TransferError>) -> Step {
        self.phase = Phase::Done;
        let result = match (&mut self.what, cx.storage) {
            (What::Receive { file, .. }, Some(storage)) => {
                *file = None;
                let ok = result.is_ok();
                match storage.finish_upload(ok) {
                    Err(e) if ok => Err(TransferError::NotPlaced(e)),
                    _ => result,
                }
            }
            _ => result,
        };
        info!(
            "transfer {} {} bytes={} result={}",
            self.id.0,
            if self.is_upload() { "up" } else { "down" },
            self.bytes,
            result
                .as_ref()
                .map_or_else(|e| e.to_string(), |()| "ok".into())
        );
        Step::Ended(OutcomeKind::TransferEnded {
            bytes: self.bytes,
            result,
        })
    }
}

/// Accepts what is pending on a passive listener: the first connection from `peer` (from
/// anyone when `None`); others are closed at once (a passive port theft attempt).
fn accept(listener: &TcpListener, peer: Option<IpAddr>) -> io::Result<Option<TcpStream>> {
    for _ in 0..64 {
        match listener.accept() {
            Ok((tcp, from)) if peer.is_none_or(|p| p == canonical_ip(from.ip())) => {
                return Ok(Some(tcp))
            }
            Ok((_, from)) => warn!("passive port theft attempt from {from}; closed"),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}
