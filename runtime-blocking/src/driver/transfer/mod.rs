//! A transfer as a task: the core's [`TransferPlan`] carried out a step at a time by the
//! driver's loop, reporting `TransferStarted` once and one final `TransferEnded` — and never
//! calling back into the session. Between two steps the driver looks at the control
//! connection (ABOR, STAT, NOOP, QUIT) through the ordinary `handle_input`/`poll_output`, and
//! stops the task with [`Transfer::stop`] when the core asks it to.
//!
//! A step does one thing and returns: opens the file, waits up to [`DATA_SLICE`] for the data
//! connection or a TLS handshake record, moves one chunk, or settles an upload. So a step never
//! blocks longer than a slice, and the driver answers the control connection at least every
//! [`CONTROL_CHECK_INTERVAL`] while data flows and after every step that waited.
//!
//! The order of a transfer (each phase its own [`Phase`]):
//! 1. **Open**: a retrieve opens its file first (a missing file is answered before any data
//!    connection); an upload tells the storage it begins ([`Storage::begin_upload`]).
//! 2. **Connect**: accept on the passive listener or connect to the client, within
//!    `data_connect_timeout`. An upload opens its file only now, so that a STOR whose data
//!    connection never comes does not truncate anything. Then `TransferStarted` (the `150`).
//! 3. **Protect** (PROT P): the server-side TLS handshake, from the control connection's TLS
//!    ([`crate::tls::TlsContext::data`]), within `data_connect_timeout`; a data connection
//!    that must resume a session and did not, or resumed one that does not vouch for this
//!    user, is refused (522). A STOR that writes in place truncates only after it.
//! 4. **Move**: [`send`] (sendfile, or a buffer for TLS and TYPE A) or [`receive`] (splice,
//!    direct I/O past the first 8 MiB, or a buffer), paced by the rate limit ([`Pacer`]),
//!    ending with `426` when nothing moves for `data_stall_timeout`.
//! 5. **Finish**: a download ends with close_notify (TLS) and a shutdown, so the client sees
//!    the end of the file before the final reply; an upload answers the client's
//!    close_notify, then waits for the driver to look at the control connection once more
//!    ([`Step::Checkpoint`]: a client that died mid-upload closes its control connection too,
//!    and who is gone cannot be told 226).
//! 6. **Settle** (uploads): the file is put in place when all of it arrived, or removed
//!    ([`Storage::finish_upload`]), *before* the core hears the end: a file that could not be
//!    put in place ends the transfer with [`TransferError::NotPlaced`].
//!
//! This module must not decide protocol questions (the core did, in the plan) nor write to
//! the control connection.

pub(crate) mod direct;
mod pace;
mod receive;
mod send;

pub use pace::Pacer;

use log::{info, warn};
use rustls::{ServerConnection, StreamOwned};
use std::fs::File;
use std::io::{self, Seek, Write};
use std::net::{IpAddr, TcpStream};
use std::time::{Duration, Instant};
use wharf_core::action::Ownership;
use wharf_core::addr::canonical_ip;
use wharf_core::codec::DataFormat;
use wharf_core::{
    ActionId, DataEndpoint, DataProtection, Lost, OutcomeKind, SessionReuse, StorageError,
    StoreMode, TransferError, TransferKind, TransferPlan, VirtualPath,
};

use super::data::{ActiveConnect, PassiveListener};
use super::stream::{self, DataStream, HandshakeProgress};
use crate::shared::Shared;
use crate::storage::{map_io_error, Storage, UploadEnd};
use crate::tls::{self, ControlTls, DataTls, Verdict};

/// Bytes per `sendfile` call on the zero-copy path.
pub const SENDFILE_CHUNK: u64 = 8 * 1024 * 1024;
/// Size of the buffer of uploads and of buffered retrieves.
pub const UPLOAD_BUFFER: usize = 256 * 1024;
/// Longest a step blocks on a socket (or sleeps) before it returns to the driver.
pub const DATA_SLICE: Duration = Duration::from_millis(50);
/// How often the driver looks at the control connection while data flows.
pub const CONTROL_CHECK_INTERVAL: Duration = Duration::from_millis(5);
/// The reason a protected data connection that did not resume a TLS session of its client is
/// refused with (reply 522).
pub const NOT_RESUMED: &str =
    "the data connection did not resume the TLS session of its control connection (required; see docs/ftps.md)";

/// Why a transfer must stop early, learnt from the control connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupt {
    /// The core asked to abort the transfer (ABOR).
    Abort,
    /// The session is closing (the client has gone, or the core closed the session).
    Close,
}

/// What one step asks of the driver.
#[derive(Debug)]
pub enum Step {
    /// Step again. `idle`: the step waited without moving a byte, so look at the control
    /// connection first.
    Continue {
        /// Whether the step moved nothing.
        idle: bool,
    },
    /// Look at the control connection now, then step again.
    Checkpoint,
    /// Tell the session this (`TransferStarted`), then step again.
    Report(OutcomeKind),
    /// The transfer is over: tell the session (`TransferEnded`).
    Ended(OutcomeKind),
}

/// What a step needs of its connection, lent for the step (`'a`: the server's lifetime).
pub struct Env<'e, 'a> {
    /// What sessions share: settings, TLS, the direct-upload places.
    pub shared: &'a Shared,
    /// The logged-in user's storage.
    pub storage: Option<&'e dyn Storage>,
    /// The control connection's TLS, when it has been protected.
    pub control_tls: Option<&'e ControlTls>,
    /// The logged-in user.
    pub user: Option<&'e str>,
    /// The client's address.
    pub peer: IpAddr,
    /// The control connection's local address.
    pub local: IpAddr,
    /// The session id, for the log.
    pub session: u64,
}

/// One transfer; see the module documentation.
pub struct Transfer<'a> {
    id: ActionId,
    what: What,
    format: DataFormat,
    marker_interval: Option<u64>,
    /// An upload's last acknowledged restart marker (MODE B/C): a failed upload is kept up
    /// to it, for `REST` + `STOR`.
    marked: Option<u64>,
    protection: DataProtection,
    ownership: Option<Ownership>,
    phase: Phase<'a>,
    flow: Flow,
    stop: Option<Interrupt>,
    began: Instant,
}

/// What moves.
enum What {
    Retrieve { path: VirtualPath, offset: u64 },
    Listing,
    Store { path: VirtualPath, mode: StoreMode },
}

/// The data connection on its way.
enum Connecting {
    Passive(PassiveListener),
    Active(ActiveConnect),
}

/// What a download sends, opened.
pub(crate) enum Source {
    /// A file positioned at `offset`, and how many bytes to send from there.
    File { file: File, offset: u64, len: u64 },
    /// Bytes the core formatted (a listing).
    Bytes(Vec<u8>),
}

/// Where the bytes of an upload go, opened: the file, and whether it must be truncated once
/// the data connection is protected (a STOR in place over TLS).
struct Sink {
    file: File,
    truncate: bool,
}

/// What a phase moves on to.
enum Goods {
    Send(Source),
    Receive(Sink),
}

enum Phase<'a> {
    Open {
        endpoint: DataEndpoint,
        listener: Option<PassiveListener>,
        listing: Option<Vec<u8>>,
    },
    Connect {
        way: Connecting,
        deadline: Instant,
        /// A retrieve's file (or listing), opened before the data connection.
        source: Option<Source>,
    },
    Protect {
        tcp: TcpStream,
        goods: Goods,
        tls: Option<Box<Handshake>>,
    },
    Send(Box<send::Sender>, DataStream),
    Receive(Box<receive::Receiver<'a>>, DataStream),
    /// A download's end: close_notify (TLS), then the shutdown.
    Finish(DataStream),
    /// An upload that has all its data: settled at the next step.
    Settle,
    Done,
}

/// A data connection's TLS handshake under way.
struct Handshake {
    conn: ServerConnection,
    data_tls: DataTls,
    deadline: Instant,
    given: Duration,
    reuse: SessionReuse,
    /// The handshake is done; waiting for a sibling control connection's login to decide.
    verdict_until: Option<Instant>,
}

/// The bookkeeping of bytes moving: counts, stall detection, pacing.
pub(crate) struct Flow {
    pub(crate) bytes: u64,
    pub(crate) last_progress: Instant,
    stall: Duration,
    pub(crate) pacer: Pacer,
}

impl Flow {
    /// Counts `moved` bytes; a stall (no byte for the stall timeout) is an error.
    pub(crate) fn moved(&mut self, moved: u64) -> Result<(), TransferError> {
        let now = Instant::now();
        if moved > 0 {
            self.bytes += moved;
            self.last_progress = now;
            Ok(())
        } else if now.duration_since(self.last_progress) >= self.stall {
            Err(TransferError::ConnectionLost(Lost::Stalled(self.stall)))
        } else {
            Ok(())
        }
    }
}

/// What moving one chunk did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Moved {
    /// Some bytes.
    Bytes(u64),
    /// Nothing within the slice.
    Idle,
    /// All of it has moved (a download), or the data connection ended (an upload).
    Done,
}

pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

pub(crate) fn lost(e: &io::Error) -> TransferError {
    TransferError::ConnectionLost(Lost::Broken(e.to_string()))
}

pub(crate) fn closed() -> TransferError {
    TransferError::ConnectionLost(Lost::Broken("the data connection closed".into()))
}

pub(crate) fn storage_error(e: &io::Error) -> TransferError {
    TransferError::Storage(map_io_error(e))
}

/// What an interrupted transfer (or checksum) ends with.
pub(crate) fn interrupted(i: Interrupt) -> TransferError {
    match i {
        Interrupt::Abort => TransferError::Aborted,
        Interrupt::Close => TransferError::ConnectionLost(Lost::ControlClosed),
    }
}

impl<'a> Transfer<'a> {
    /// The transfer action `id` of `plan`; a passive one takes the session's `listener`.
    pub fn new(
        id: ActionId,
        plan: TransferPlan,
        listener: Option<PassiveListener>,
        shared: &Shared,
    ) -> Transfer<'a> {
        let TransferPlan {
            kind,
            data,
            format,
            marker_interval,
            rate_limit,
            protection,
            ownership,
            ..
        } = plan;
        let (what, listing) = match kind {
            TransferKind::Retrieve { path, offset } => (What::Retrieve { path, offset }, None),
            TransferKind::Listing { bytes } => (What::Listing, Some(bytes)),
            TransferKind::Store { path, mode } => (What::Store { path, mode }, None),
            // A kind this runtime does not know: it fails at once, as the core expects.
            _ => (What::Listing, None),
        };
        let now = Instant::now();
        Transfer {
            id,
            what,
            format,
            marker_interval,
            marked: None,
            protection,
            ownership,
            phase: Phase::Open {
                endpoint: data,
                listener,
                listing,
            },
            flow: Flow {
                bytes: 0,
                last_progress: now,
                stall: shared.settings.data_stall_timeout,
                pacer: Pacer::new(rate_limit),
            },
            stop: None,
            began: now,
        }
    }

    /// The action id the session knows this transfer by.
    pub fn id(&self) -> ActionId {
        self.id
    }

    /// Bytes moved so far.
    pub fn bytes(&self) -> u64 {
        self.flow.bytes
    }

    /// Whether the transfer is an upload.
    pub fn is_upload(&self) -> bool {
        matches!(self.what, What::Store { .. })
    }

    /// Stops the transfer at its next step (ABOR, or the session is closing); it then ends
    /// with [`TransferError::Aborted`] or a lost connection.
    pub fn stop(&mut self, why: Interrupt) {
        self.stop.get_or_insert(why);
    }

    /// Runs one step; see [`Step`].
    pub fn step(&mut self, env: &Env<'_, 'a>) -> Step {
        if matches!(self.phase, Phase::Done) {
            return Step::Ended(OutcomeKind::TransferEnded {
                bytes: self.flow.bytes,
                result: Err(TransferError::Aborted),
            });
        }
        if let Some(i) = self.stop {
            // A settled-to-be upload that was told to stop is still one the client may not
            // hear about: it is not put in place.
            return self.end(env, Err(interrupted(i)));
        }
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        match self.advance(phase, env) {
            Ok((next, step)) => {
                self.phase = next;
                step
            }
            Err(e) => self.end(env, Err(e)),
        }
    }

    /// The transfer's end: an upload is settled first (see the module documentation); the
    /// transfer line is logged; the outcome goes to the session.
    fn end(&mut self, env: &Env<'_, 'a>, result: Result<(), TransferError>) -> Step {
        // Dropping the phase closes the data connection and stops a direct writer.
        self.phase = Phase::Done;
        let result = match (&self.what, env.storage) {
            (What::Store { .. }, Some(storage)) => {
                settle(storage, env.session, result, self.marked)
            }
            _ => result,
        };
        let (verb, path) = self.describe();
        let prot = match self.protection {
            DataProtection::Clear => "C",
            DataProtection::Private { .. } => "P",
        };
        let outcome = match &result {
            Ok(()) => "ok".to_string(),
            Err(e) => e.to_string(),
        };
        info!(
            "session {} transfer user={} cmd={verb} path={path} prot={prot} bytes={} secs={:.3} result={outcome}",
            env.session,
            env.user.unwrap_or("-"),
            self.flow.bytes,
            self.began.elapsed().as_secs_f64()
        );
        Step::Ended(OutcomeKind::TransferEnded {
            bytes: self.flow.bytes,
            result,
        })
    }

    /// The command and path this transfer stands for, for the log.
    fn describe(&self) -> (&'static str, String) {
        match &self.what {
            What::Retrieve { path, .. } => ("RETR", path.to_string()),
            What::Listing => ("LIST", "-".into()),
            What::Store { path, mode } => (
                match mode {
                    StoreMode::Create | StoreMode::Resume(_) => "STOR",
                    StoreMode::Append => "APPE",
                    StoreMode::Unique => "STOU",
                },
                path.to_string(),
            ),
        }
    }

    fn advance(
        &mut self,
        phase: Phase<'a>,
        env: &Env<'_, 'a>,
    ) -> Result<(Phase<'a>, Step), TransferError> {
        let go = |idle| Step::Continue { idle };
        match phase {
            Phase::Open {
                endpoint,
                listener,
                listing,
            } => {
                let source = self.open(env, listing)?;
                let way = match endpoint {
                    DataEndpoint::Passive => Connecting::Passive(listener.ok_or_else(|| {
                        TransferError::DataConnection(
                            "no passive listener is open; send PASV or EPSV first".into(),
                        )
                    })?),
                    DataEndpoint::Active(addr) => Connecting::Active(
                        ActiveConnect::start(
                            addr,
                            canonical_ip(env.local),
                            env.shared.settings.active_local_port,
                        )
                        .map_err(|e| {
                            TransferError::DataConnection(format!("cannot connect to {addr}: {e}"))
                        })?,
                    ),
                };
                let deadline = Instant::now() + env.shared.settings.data_connect_timeout;
                Ok((
                    Phase::Connect {
                        way,
                        deadline,
                        source,
                    },
                    go(false),
                ))
            }
            Phase::Connect {
                mut way,
                deadline,
                source,
            } => {
                let left = deadline.saturating_duration_since(Instant::now());
                let timeout = env.shared.settings.data_connect_timeout;
                let got = match &mut way {
                    Connecting::Passive(l) => l.accept_within(left.min(DATA_SLICE)),
                    Connecting::Active(c) => c.connected_within(left.min(DATA_SLICE)),
                };
                let tcp = match got {
                    Ok(Some(tcp)) => tcp,
                    Ok(None) if left.is_zero() => {
                        return Err(TransferError::DataConnection(format!(
                            "the client did not connect in time (waited up to {} s)",
                            timeout.as_secs()
                        )))
                    }
                    Ok(None) => {
                        return Ok((
                            Phase::Connect {
                                way,
                                deadline,
                                source,
                            },
                            go(true),
                        ))
                    }
                    Err(e) => {
                        return Err(TransferError::DataConnection(match &way {
                            Connecting::Active(_) => format!("cannot connect: {e}"),
                            Connecting::Passive(_) => e.to_string(),
                        }))
                    }
                };
                self.connected(tcp, source, env)
            }
            Phase::Protect { tcp, goods, tls } => self.protect(tcp, goods, tls, env),
            Phase::Send(mut sender, mut stream) => {
                if let Some(idle) = self.paced() {
                    return Ok((Phase::Send(sender, stream), go(idle)));
                }
                match sender.step(&mut stream, &mut self.flow)? {
                    Moved::Done => {
                        stream.send_close_notify();
                        Ok((Phase::Finish(stream), go(false)))
                    }
                    Moved::Idle => {
                        self.flow.moved(0)?;
                        Ok((Phase::Send(sender, stream), go(true)))
                    }
                    Moved::Bytes(n) => {
                        self.flow.moved(n)?;
                        Ok((Phase::Send(sender, stream), go(false)))
                    }
                }
            }
            Phase::Receive(mut receiver, mut stream) => {
                if let Some(idle) = self.paced() {
                    return Ok((Phase::Receive(receiver, stream), go(idle)));
                }
                let moved = receiver.step(&mut stream, &mut self.flow, env)?;
                if let Some(mark) = receiver.take_mark() {
                    if let Moved::Bytes(n) = moved {
                        self.flow.moved(n)?;
                    }
                    self.marked = Some(mark.offset);
                    let report = OutcomeKind::TransferMark {
                        sender: mark.sender,
                        offset: mark.offset,
                    };
                    return Ok((Phase::Receive(receiver, stream), Step::Report(report)));
                }
                match moved {
                    Moved::Done => {
                        receiver.finish()?;
                        if stream.is_tls() {
                            // Answer the client's close_notify with ours (clients such as
                            // Python's ssl wait for it). Everything has arrived: a client that
                            // has gone already is no failure.
                            stream.send_close_notify();
                            let _ = stream.write_pending();
                        }
                        Ok((Phase::Settle, Step::Checkpoint))
                    }
                    Moved::Idle => {
                        self.flow.moved(0)?;
                        Ok((Phase::Receive(receiver, stream), go(true)))
                    }
                    Moved::Bytes(n) => {
                        self.flow.moved(n)?;
                        Ok((Phase::Receive(receiver, stream), go(false)))
                    }
                }
            }
            Phase::Finish(mut stream) => {
                // What rustls still holds (the last records, close_notify), then the shutdown.
                if stream.has_pending() {
                    return match stream.write_pending() {
                        Ok(0) => Err(closed()),
                        Ok(_) => {
                            self.flow.last_progress = Instant::now();
                            Ok((Phase::Finish(stream), go(false)))
                        }
                        Err(e) if is_timeout(&e) => {
                            self.flow.moved(0)?;
                            Ok((Phase::Finish(stream), go(true)))
                        }
                        Err(e) => Err(lost(&e)),
                    };
                }
                stream.finish().map_err(|e| lost(&e))?;
                Ok((Phase::Done, self.end(env, Ok(()))))
            }
            Phase::Settle => Ok((Phase::Done, self.end(env, Ok(())))),
            Phase::Done => Ok((Phase::Done, self.end(env, Err(TransferError::Aborted)))),
        }
    }

    /// The first step: a retrieve opens its file, a listing has its bytes, an upload begins.
    fn open(
        &self,
        env: &Env<'_, 'a>,
        listing: Option<Vec<u8>>,
    ) -> Result<Option<Source>, TransferError> {
        let storage = env
            .storage
            .ok_or(TransferError::Storage(StorageError::PermissionDenied))?;
        match &self.what {
            What::Retrieve { path, offset } => {
                let (file, size) = storage
                    .open_read(path, *offset)
                    .map_err(TransferError::Storage)?;
                Ok(Some(Source::File {
                    file,
                    offset: *offset,
                    len: size.saturating_sub(*offset),
                }))
            }
            What::Listing => match listing {
                Some(bytes) => Ok(Some(Source::Bytes(bytes))),
                None => Err(TransferError::DataConnection(
                    "this kind of transfer is not supported".into(),
                )),
            },
            What::Store { .. } => {
                storage.begin_upload(self.ownership.clone());
                Ok(None)
            }
        }
    }

    /// The data connection is there: an upload opens its file now; `TransferStarted` goes
    /// to the session (the `150`) before any TLS handshake.
    fn connected(
        &mut self,
        tcp: TcpStream,
        source: Option<Source>,
        env: &Env<'_, 'a>,
    ) -> Result<(Phase<'a>, Step), TransferError> {
        self.flow.last_progress = Instant::now();
        let sends = !self.is_upload();
        // No TCP_NODELAY on plain data connections: the server writes large chunks, and the
        // shutdown at the end pushes out the last partial segment at once.
        if sends {
            tcp.set_write_timeout(Some(DATA_SLICE))
        } else {
            tcp.set_read_timeout(Some(DATA_SLICE))
        }
        .map_err(|e| TransferError::DataConnection(e.to_string()))?;
        let (goods, stored_as) = match (&self.what, source) {
            (What::Store { path, mode }, _) => {
                let storage = env
                    .storage
                    .ok_or(TransferError::Storage(StorageError::PermissionDenied))?;
                // Protected: the handshake comes after the 150 and may be refused, so a STOR
                // that writes in place opens without truncating and truncates once the data
                // connection is good. (Atomic uploads write a new partial file: nothing to
                // protect, and nothing to copy first.)
                let private = matches!(self.protection, DataProtection::Private { .. });
                let open_mode = match mode {
                    StoreMode::Create if private && !storage.keeps_old_until_finished() => {
                        StoreMode::Append
                    }
                    other => *other,
                };
                let (file, stored_as) = storage
                    .open_write(path, open_mode)
                    .map_err(TransferError::Storage)?;
                let unique = (*mode == StoreMode::Unique).then_some(stored_as);
                let sink = Sink {
                    file,
                    truncate: open_mode != *mode,
                };
                (Goods::Receive(sink), unique)
            }
            (_, Some(source)) => (Goods::Send(source), None),
            (_, None) => {
                return Err(TransferError::Storage(StorageError::Other(
                    "nothing to send".into(),
                )))
            }
        };
        Ok((
            Phase::Protect {
                tcp,
                goods,
                tls: None,
            },
            Step::Report(OutcomeKind::TransferStarted { stored_as }),
        ))
    }

    /// PROT P: the handshake a step at a time; PROT C: straight to moving bytes.
    fn protect(
        &mut self,
        mut tcp: TcpStream,
        goods: Goods,
        tls: Option<Box<Handshake>>,
        env: &Env<'_, 'a>,
    ) -> Result<(Phase<'a>, Step), TransferError> {
        let DataProtection::Private { reuse } = self.protection else {
            return self.start_moving(DataStream::Plain(tcp), goods, env);
        };
        let mut hs = match tls {
            Some(hs) => hs,
            None => {
                let (Some(ctx), Some(control)) = (&env.shared.tls, env.control_tls) else {
                    return Err(TransferError::Tls(
                        "the control connection has no TLS session".into(),
                    ));
                };
                let server_sends = matches!(goods, Goods::Send(_));
                let data_tls = ctx.data(control, reuse, env.user, server_sends);
                let mut conn = ServerConnection::new(data_tls.config())
                    .map_err(|e| TransferError::Tls(e.to_string()))?;
                conn.set_buffer_limit(Some(UPLOAD_BUFFER));
                // TLS writes small messages (handshake, tickets, close_notify) between large
                // ones: no Nagle delay for them.
                let _ = tcp.set_nodelay(true);
                let given = env.shared.settings.data_connect_timeout;
                Box::new(Handshake {
                    conn,
                    data_tls,
                    deadline: Instant::now() + given,
                    given,
                    reuse,
                    verdict_until: None,
                })
            }
        };
        if hs.verdict_until.is_none() {
            match stream::handshake_step(&mut hs.conn, &mut tcp, hs.deadline, hs.given, DATA_SLICE)
            {
                Ok(HandshakeProgress::Pending { idle }) => {
                    return Ok((
                        Phase::Protect {
                            tcp,
                            goods,
                            tls: Some(hs),
                        },
                        Step::Continue { idle },
                    ))
                }
                Ok(HandshakeProgress::Done) => {}
                Err(e) => {
                    info!(
                        "session {} data connection TLS handshake failed: {e}",
                        env.session
                    );
                    return Err(TransferError::Tls(e.to_string()));
                }
            }
            tcp.set_write_timeout(Some(DATA_SLICE))
                .and_then(|()| tcp.set_read_timeout(Some(DATA_SLICE)))
                .map_err(|e| TransferError::DataConnection(e.to_string()))?;
            hs.verdict_until = Some(Instant::now() + env.shared.settings.data_connect_timeout);
        }
        let refusal = if !hs.reuse.required() {
            None
        } else if !tls::data_handshake_resumed(&hs.conn) {
            Some("it did not resume a TLS session of its client")
        } else {
            match hs.data_tls.verdict(env.user) {
                Verdict::Own => None,
                Verdict::Sibling => {
                    info!(
                        "session {} data connection resumed the TLS session of another control \
                         connection of {} from {} (tls_session_reuse_scope = \"client\")",
                        env.session,
                        env.user.unwrap_or("-"),
                        env.peer
                    );
                    None
                }
                // A sibling control connection still logging in (usually milliseconds from
                // its PASS): ask again shortly, within the data connection timeout.
                Verdict::Wait if hs.verdict_until.is_some_and(|t| Instant::now() < t) => {
                    std::thread::sleep(Duration::from_millis(5));
                    return Ok((
                        Phase::Protect {
                            tcp,
                            goods,
                            tls: Some(hs),
                        },
                        Step::Continue { idle: true },
                    ));
                }
                _ => Some("it resumed a TLS session of another user's control connection"),
            }
        };
        if let Some(why) = refusal {
            warn!(
                "session {} data connection from {} refused: {why}",
                env.session,
                tcp.peer_addr().map_or("?".into(), |a| a.to_string())
            );
            let mut refused = StreamOwned::new(hs.conn, tcp);
            refused.conn.send_close_notify();
            let _ = refused.flush();
            let _ = refused.sock.shutdown(std::net::Shutdown::Both);
            return Err(TransferError::Tls(NOT_RESUMED.into()));
        }
        self.flow.last_progress = Instant::now();
        let stream = DataStream::tls(StreamOwned::new(hs.conn, tcp));
        self.start_moving(stream, goods, env)
    }

    /// The data connection is ready (and protected when it must be): bytes start to move.
    fn start_moving(
        &mut self,
        stream: DataStream,
        goods: Goods,
        env: &Env<'_, 'a>,
    ) -> Result<(Phase<'a>, Step), TransferError> {
        self.flow.pacer.begin();
        let next = match goods {
            Goods::Send(source) => {
                let sender = send::Sender::new(source, self.format, self.marker_interval, &stream);
                Phase::Send(Box::new(sender), stream)
            }
            Goods::Receive(Sink { mut file, truncate }) => {
                if truncate {
                    file.set_len(0)
                        .and_then(|()| file.seek(io::SeekFrom::Start(0)).map(|_| ()))
                        .map_err(|e| storage_error(&e))?;
                }
                // The stored offset the upload starts at (REST, APPE): where the decoder counts
                // restart markers from.
                let start = file.stream_position().map_err(|e| storage_error(&e))?;
                let receiver =
                    receive::Receiver::new(file, self.format, start, &stream, &self.flow, env);
                Phase::Receive(Box::new(receiver), stream)
            }
        };
        Ok((next, Step::Continue { idle: false }))
    }

    /// Under a rate limit, when the schedule says to wait: sleeps a little (at most 20 ms)
    /// and returns `Some(idle)`; `None` when bytes may move now.
    fn paced(&mut self) -> Option<bool> {
        let wait = self.flow.pacer.delay(self.flow.bytes);
        if wait.is_zero() {
            return None;
        }
        std::thread::sleep(wait.min(Duration::from_millis(20)));
        Some(true)
    }
}

/// Settles an upload before the core hears how it ended: puts its file in place when all of
/// it arrived (`result` is Ok), else removes what arrived (atomic uploads) or, after a
/// restart marker was acknowledged (`marked`), keeps it up to the marker for `REST` + `STOR`.
/// A complete file that cannot be put in place turns the result into
/// [`TransferError::NotPlaced`], so that the core answers 451 and reports a failed upload.
fn settle(
    storage: &dyn Storage,
    session: u64,
    result: Result<(), TransferError>,
    marked: Option<u64>,
) -> Result<(), TransferError> {
    let ok = result.is_ok();
    let end = match (ok, marked) {
        (true, _) => UploadEnd::Complete,
        (false, Some(offset)) => UploadEnd::KeepUpTo(offset),
        (false, None) => UploadEnd::Failed,
    };
    match storage.finish_upload(end) {
        Ok(()) => result,
        Err(e) if ok => {
            log::error!("session {session}: a complete upload could not be put in place: {e}");
            Err(TransferError::NotPlaced(e))
        }
        Err(e) => {
            warn!("session {session}: an incomplete upload left: {e}");
            result
        }
    }
}
