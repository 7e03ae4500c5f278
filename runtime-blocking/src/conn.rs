//! The connection driver: one control connection, one [`Session`], on one worker thread.
//!
//! It is the loop of the core's documentation made real: read the control connection with a
//! timeout taken from [`Session::poll_timeout`], feed the bytes in, drain the outputs (write
//! replies as they come, carry out actions and report their outcomes, close on
//! [`Output::Close`]). Actions run synchronously on this thread; a transfer (see
//! [`crate::transfer`]) keeps watching the control connection while it moves bytes.
//!
//! It owns the session's resources: the control stream, the storage of the logged-in user,
//! the passive listener, and the control connection's TLS configuration (whose session store
//! its protected data connections must resume from). It must not decide protocol questions:
//! the core has done that.
//!
//! TLS on the control connection: `StartTls` runs the handshake (bounded by
//! [`TLS_HANDSHAKE_TIMEOUT`]) after the 234 is written; a failure is logged with the reason
//! and closes this connection only. `StopTls` (CCC, REIN) exchanges close_notify and goes on
//! over the same TCP socket in the clear. On an implicit-TLS listener the handshake comes
//! before the session exists; a client speaking clear text there fails the handshake and is
//! dropped.

use log::{error, info, warn};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wharf_core::{
    Action, ActionId, ActionKind, LoginError, Outcome, OutcomeKind, Output, Session, TlsInfo,
    TransferError,
};

use crate::data::PassiveListener;
use crate::server::Shared;
use crate::storage::{unix_now, LocalFs, Storage};
use crate::stream::{self, ControlStream, TlsStream};
use crate::tls::{ControlTls, TlsContext};
use crate::users::Login;

/// How long writing one reply may take before the client is given up (before login, the
/// login deadline bounds it too: see [`Connection::send_reply`]).
pub const CONTROL_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Before login, how long the last reply (the `421` of the login deadline) may take to write
/// once the deadline has passed.
pub const LAST_REPLY_GRACE: Duration = Duration::from_secs(1);
/// How long, after closing, unread input from the client is drained (so that the last reply
/// is not destroyed by a TCP reset).
pub const LINGER: Duration = Duration::from_millis(250);
/// Bytes read from the control connection at a time. Commands are short (a longer line just
/// takes more reads; the core frames lines across reads), and every session, idle or not,
/// keeps this buffer.
pub const CONTROL_READ_BUFFER: usize = 1024;
/// How long a TLS handshake on a control connection may take.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether a receive timeout already set on the control socket (`set`) may stand for the
/// wait the session wants (`want`), saving a `setsockopt` before each command read: it wakes
/// at most 1/256 of the wait (and never more than 20 ms) early or late. Early is harmless
/// (the core finds nothing due and the loop sets the timeout anew); late delays an idle
/// timeout or a delayed reply by that much. Between two commands the idle deadline moves
/// with the command, so the wait before each read stays within microseconds of the last.
fn read_timeout_close_enough(set: Duration, want: Duration) -> bool {
    let slack = (want / 256).min(Duration::from_millis(20));
    set.abs_diff(want) <= slack
}

static SESSION_IDS: AtomicU64 = AtomicU64::new(1);

/// Why a transfer must stop early, learnt from the control connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupt {
    /// The core asked to abort the transfer (ABOR).
    Abort,
    /// The session is closing (QUIT already handled, client gone, or the core closed it).
    Close,
}

/// One control connection being served.
pub struct Connection<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) session: Session,
    pub(crate) ctrl: ControlStream,
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) id: u64,
    pub(crate) storage: Option<Box<dyn Storage>>,
    pub(crate) user: Option<String>,
    /// The login the server counts for this session (login limits); given back when the
    /// core ends the login (`LoginEnded`) or the connection goes.
    pub(crate) login_slot: Option<crate::server::LoginSlot<'a>>,
    /// An upload was settled: what it replaced is freed after the next reply (its final one)
    /// is written ([`Storage::release_replaced`]).
    release_after_reply: bool,
    pub(crate) passive: Option<PassiveListener>,
    /// The TLS of this control connection (set by its handshake): protected data connections
    /// start from it, so that they can resume this client's sessions only.
    pub(crate) tls: Option<ControlTls>,
    /// The write timeout set on the control socket (so that it is set only when it changes).
    write_timeout: Duration,
    /// Actions the core asked for during a transfer that are not about the transfer; run
    /// after it.
    pub(crate) deferred: VecDeque<Action>,
    /// The control connection is unusable or the session is over.
    pub(crate) closing: bool,
    pub(crate) bytes_up: u64,
    pub(crate) bytes_down: u64,
    /// Records this session's events and statistics (see [`crate::events`]).
    pub(crate) tracker: crate::events::SessionTracker<'a>,
    buf: Vec<u8>,
    /// The receive timeout last set on the control socket by [`Connection::run`], so that
    /// a wait within [`read_timeout_close_enough`] of it costs no `setsockopt`. Cleared
    /// where anything else sets it (the TLS handshake of AUTH, the close_notify wait of CCC).
    read_timeout: Option<Duration>,
}

impl<'a> Connection<'a> {
    /// Serves a new control connection until it closes. On an implicit-TLS listener
    /// (`implicit`) the TLS handshake runs first; a connection that fails it is dropped.
    pub fn serve(shared: &'a Shared, tcp: TcpStream, peer: SocketAddr, implicit: bool) {
        let started = Instant::now();
        let Some(mut conn) = Connection::open(shared, tcp, peer, implicit) else {
            return;
        };
        let why = conn.run();
        conn.end_session();
        conn.linger();
        info!(
            "session {} end peer={} user={} duration={:.1}s up={} down={} ({why})",
            conn.id,
            peer,
            conn.user.as_deref().unwrap_or("-"),
            started.elapsed().as_secs_f64(),
            conn.bytes_up,
            conn.bytes_down
        );
    }

    /// The session of a new control connection (after the handshake on an implicit-TLS
    /// listener), or None when it is dropped (logged).
    ///
    /// Out of line, and the connection on the heap: a worker's stack keeps the pages its
    /// deepest call touched for as long as the session lives, so [`Connection::serve`]'s
    /// frame (under every command) is kept small.
    #[inline(never)]
    fn open(
        shared: &'a Shared,
        tcp: TcpStream,
        peer: SocketAddr,
        implicit: bool,
    ) -> Option<Box<Connection<'a>>> {
        let local = match tcp.local_addr() {
            Ok(a) => a,
            Err(e) => {
                warn!("connection from {peer}: no local address ({e}); dropped");
                return None;
            }
        };
        let _ = tcp.set_nodelay(true);
        let id = SESSION_IDS.fetch_add(1, Ordering::Relaxed);
        info!(
            "session {id} start peer={peer}{}",
            if implicit { " (implicit TLS)" } else { "" }
        );
        let accepted = Instant::now();
        let (ctrl, session, tls) = if implicit {
            implicit_start(shared, tcp, id, peer, local, accepted)?
        } else {
            let session = Session::new(shared.core(), peer, local, accepted);
            (ControlStream::Plain(tcp), session, None)
        };
        let _ = ctrl.tcp().set_write_timeout(Some(CONTROL_WRITE_TIMEOUT));
        Some(Box::new(Connection {
            shared,
            session,
            ctrl,
            peer,
            local,
            id,
            storage: None,
            login_slot: None,
            release_after_reply: false,
            user: None,
            passive: None,
            tls,
            write_timeout: CONTROL_WRITE_TIMEOUT,
            deferred: VecDeque::new(),
            closing: false,
            bytes_up: 0,
            bytes_down: 0,
            tracker: shared.events.session(id, peer),
            buf: vec![0u8; CONTROL_READ_BUFFER],
            read_timeout: None,
        }))
    }

    /// The session loop; returns why it ended.
    fn run(&mut self) -> String {
        loop {
            if !self.drain() {
                return "closed by the server".into();
            }
            let now = Instant::now();
            let wait = match self.session.poll_timeout() {
                Some(t) => t.saturating_duration_since(now),
                // Not expected while no action is outstanding; wake up now and then anyway.
                None => self.shared.settings.idle_timeout,
            };
            let wait = wait.max(Duration::from_millis(1));
            if !self
                .read_timeout
                .is_some_and(|set| read_timeout_close_enough(set, wait))
            {
                if let Err(e) = self.ctrl.tcp().set_read_timeout(Some(wait)) {
                    return format!("control connection error: {e}");
                }
                self.read_timeout = Some(wait);
            }
            match self.ctrl.read(&mut self.buf) {
                Ok(0) => return "closed by the client".into(),
                Ok(n) => {
                    self.tracker.command_received();
                    self.session.handle_input(Instant::now(), &self.buf[..n])
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    self.session.handle_timeout(Instant::now())
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return format!("control connection error: {e}"),
            }
        }
    }

    /// Drains the session's outputs; false when the connection must close.
    fn drain(&mut self) -> bool {
        loop {
            if self.closing {
                return false;
            }
            let out = match self.deferred.pop_front() {
                Some(a) => Output::Action(a),
                None => match self.session.poll_output() {
                    Some(o) => o,
                    None => return true,
                },
            };
            match out {
                Output::Reply(r) => {
                    let sent = self.send_reply(r.as_bytes());
                    if std::mem::take(&mut self.release_after_reply) {
                        // What an upload replaced goes once the client has its answer.
                        if let Some(storage) = &self.storage {
                            storage.release_replaced();
                        }
                    }
                    if let Err(e) = sent {
                        info!("session {}: cannot write a reply: {e}", self.id);
                        return false;
                    }
                }
                Output::Action(a) => self.run_action(a),
                Output::Close => {
                    let _ = self.ctrl.flush();
                    return false;
                }
            }
        }
    }

    /// Writes a reply. A client that does not read its replies holds the write at most
    /// [`CONTROL_WRITE_TIMEOUT`], and before login no later than the login deadline (plus
    /// [`LAST_REPLY_GRACE`] for the `421` that ends it): a connection that never logs in cannot
    /// outlive it by not reading.
    fn send_reply(&mut self, bytes: &[u8]) -> io::Result<()> {
        let timeout = match self.session.login_deadline() {
            Some(deadline) => deadline
                .saturating_duration_since(Instant::now())
                .max(LAST_REPLY_GRACE)
                .min(CONTROL_WRITE_TIMEOUT),
            // The session closed itself (the 421 of the deadline, QUIT, ...): its last reply.
            None if self.session.is_closed() && self.user.is_none() => LAST_REPLY_GRACE,
            None => CONTROL_WRITE_TIMEOUT,
        };
        // Before login the bound shrinks with every reply; a few milliseconds' difference
        // is not worth a system call.
        if self.write_timeout.abs_diff(timeout) > Duration::from_millis(50) {
            self.ctrl.tcp().set_write_timeout(Some(timeout))?;
            self.write_timeout = timeout;
        }
        self.ctrl.send(bytes)
    }

    /// Settles the upload that just ended, before the core hears how it ended: puts its file
    /// in place when all of it arrived (`result` is Ok), else removes what arrived (atomic
    /// uploads). A complete file that cannot be put in place turns the result into
    /// [`TransferError::NotPlaced`], so that the core answers 451 and reports a failed upload.
    #[inline(never)]
    pub(crate) fn settle_upload(
        &mut self,
        result: Result<(), TransferError>,
    ) -> Result<(), TransferError> {
        let Some(storage) = self.storage.as_ref() else {
            return result;
        };
        let ok = result.is_ok();
        match storage.finish_upload(ok) {
            Ok(()) => {
                self.release_after_reply = true;
                result
            }
            Err(e) if ok => {
                error!(
                    "session {}: a complete upload could not be put in place: {e}",
                    self.id
                );
                Err(TransferError::NotPlaced(e))
            }
            Err(e) => {
                warn!("session {}: an incomplete upload left: {e}", self.id);
                result
            }
        }
    }

    /// During a transfer: drains the session's outputs, writing replies at once. Returns the
    /// interrupt the core asked for, if any; other actions wait until the transfer is over.
    pub(crate) fn pump(&mut self, transfer: ActionId) -> Option<Interrupt> {
        let mut interrupt = None;
        while let Some(out) = self.session.poll_output() {
            match out {
                Output::Reply(r) => {
                    if let Err(e) = self.send_reply(r.as_bytes()) {
                        info!("session {}: cannot write a reply: {e}", self.id);
                        self.closing = true;
                        interrupt = Some(Interrupt::Close);
                    }
                }
                Output::Action(Action {
                    kind: ActionKind::AbortTransfer { transfer: t },
                    ..
                }) if t == transfer => {
                    interrupt = interrupt.or(Some(Interrupt::Abort));
                }
                Output::Action(Action {
                    kind: ActionKind::AbortTransfer { .. },
                    ..
                }) => {}
                Output::Action(a) => self.deferred.push_back(a),
                Output::Close => {
                    let _ = self.ctrl.flush();
                    self.closing = true;
                    interrupt = Some(Interrupt::Close);
                }
            }
        }
        interrupt
    }

    /// During a transfer: reads whatever the control connection has without waiting, feeds it
    /// to the session (after reporting progress) and answers it. Returns an interrupt when
    /// the transfer must stop.
    pub(crate) fn check_control(&mut self, transfer: ActionId, bytes: u64) -> Option<Interrupt> {
        if self.closing {
            return Some(Interrupt::Close);
        }
        // Bounded: the session closes a connection that sends more than it may buffer.
        for _ in 0..64 {
            match self.ctrl.read_now(&mut self.buf) {
                Ok(None) => break,
                Ok(Some(0)) | Err(_) => {
                    // The client went away: nobody is left to receive the data.
                    self.closing = true;
                    return Some(Interrupt::Close);
                }
                Ok(Some(n)) => {
                    self.tracker.command_received();
                    let now = Instant::now();
                    self.session.handle_outcome(
                        now,
                        Outcome::new(transfer, OutcomeKind::TransferProgress { bytes }),
                    );
                    self.session.handle_input(now, &self.buf[..n]);
                    if let Some(i) = self.pump(transfer) {
                        return Some(i);
                    }
                }
            }
        }
        None
    }

    fn outcome(&mut self, id: ActionId, kind: OutcomeKind) {
        self.session
            .handle_outcome(Instant::now(), Outcome::new(id, kind));
    }

    fn run_action(&mut self, action: Action) {
        let id = action.id;
        let no_storage = wharf_core::StorageError::PermissionDenied;
        match action.kind {
            ActionKind::Authenticate { user, password } => {
                let checked = self.shared.users.authenticate(&user, password.expose());
                let result = self.login(&user, checked, "password");
                self.outcome(id, OutcomeKind::Authenticated(result));
            }
            ActionKind::AuthenticateCertificate { user } => {
                let checked = self.shared.users.authenticate_certificate(&user);
                let result = self.login(&user, checked, "client certificate");
                self.outcome(id, OutcomeKind::Authenticated(result));
            }
            ActionKind::StartTls => {
                self.read_timeout = None;
                self.start_tls(id)
            }
            ActionKind::StopTls => {
                self.read_timeout = None;
                self.stop_tls()
            }
            ActionKind::Stat { path } => {
                let r = match &self.storage {
                    Some(s) => s.stat(&path),
                    None => Err(no_storage),
                };
                self.outcome(id, OutcomeKind::Metadata(r));
            }
            ActionKind::ReadDir { path } => {
                let result = match &self.storage {
                    Some(s) => s.read_dir(&path),
                    None => Err(no_storage),
                };
                let now = unix_now();
                self.outcome(id, OutcomeKind::Entries { result, now });
            }
            ActionKind::MakeDir { path, ownership } => {
                let r = self.storage_do(|s| s.mkdir(&path, Some(&ownership)));
                self.log_change("mkdir", path.as_str(), &r);
                self.outcome(id, OutcomeKind::Done(r));
            }
            ActionKind::RemoveDir { path } => {
                let r = self.storage_do(|s| s.rmdir(&path));
                self.log_change("rmdir", path.as_str(), &r);
                self.outcome(id, OutcomeKind::Done(r));
            }
            ActionKind::Delete { path } => {
                let r = self.storage_do(|s| s.delete(&path));
                self.log_change("delete", path.as_str(), &r);
                self.outcome(id, OutcomeKind::Done(r));
            }
            ActionKind::Rename { from, to } => {
                let r = self.storage_do(|s| s.rename(&from, &to));
                self.log_change("rename", &format!("{from} -> {to}"), &r);
                self.outcome(id, OutcomeKind::Done(r));
            }
            ActionKind::AsciiSize { path } => {
                let r = match &self.storage {
                    Some(s) => s.ascii_size(&path),
                    None => Err(no_storage),
                };
                self.outcome(id, OutcomeKind::Size(r));
            }
            ActionKind::ListenPassive { ip, peer } => {
                // Free the old listener (and its port) first.
                self.passive = None;
                let r = match PassiveListener::bind(ip, peer, &self.shared.settings.passive_ports) {
                    Ok(l) => {
                        let port = l.port();
                        self.passive = Some(l);
                        Ok(port)
                    }
                    Err(e) => {
                        warn!("session {}: cannot open a passive port: {e}", self.id);
                        Err(e.to_string())
                    }
                };
                self.outcome(id, OutcomeKind::PassiveListening(r));
            }
            ActionKind::ClosePassive => self.passive = None,
            ActionKind::Transfer(plan) => {
                let upload = matches!(plan.kind, wharf_core::TransferKind::Store { .. });
                if upload {
                    if let Some(s) = &self.storage {
                        s.begin_upload(plan.ownership.clone());
                    }
                }
                self.transfer_out_of_line(id, plan);
            }
            // No transfer runs (it has ended already): nothing to stop.
            ActionKind::AbortTransfer { .. } => {}
            ActionKind::LoginEnded => {
                // The login is over (logout, REIN, another USER, or refused by a limit or an
                // IP rule after the password was checked): give its count back.
                self.login_slot = None;
                if let Some(control) = &self.tls {
                    control.logged_out();
                }
                self.storage = None;
            }
            ActionKind::Notify(event) => {
                log::debug!("session {}: event {}", self.id, event.kind.as_str());
                self.tracker.record(&event);
            }
            ActionKind::SetMode { path, mode } => {
                let r = self.storage_do(|s| s.set_mode(&path, mode));
                self.log_change("chmod", &format!("{path} {mode:03o}"), &r);
                self.outcome(id, OutcomeKind::Done(r));
            }
            ActionKind::SetModified { path, time } => {
                let r = self.storage_do(|s| s.set_modified(&path, time));
                let mut when = String::new();
                time.write_mdtm(&mut when);
                self.log_change("set-time", &format!("{path} {when}"), &r);
                self.outcome(id, OutcomeKind::Done(r));
            }
            ActionKind::AdminQuery(q) => {
                let r = match self.shared.events.admin(&q) {
                    Some(info) => Ok(info),
                    None => match &q {
                        wharf_core::action::AdminQuery::DescribeUser(name) => Ok(
                            wharf_core::action::AdminInfo::User(self.shared.users.describe(name)),
                        ),
                        _ => Err("administration queries are not available yet".into()),
                    },
                };
                self.outcome(id, OutcomeKind::AdminInfo(r));
            }
            other => {
                error!(
                    "session {}: this runtime cannot carry out {other:?}; closing the session",
                    self.id
                );
                let _ = self
                    .ctrl
                    .send(b"421 Internal error: unsupported operation; closing.\r\n");
                self.closing = true;
            }
        }
    }

    /// [`Connection::run_transfer`], out of line: its buffers and streams need not be part
    /// of [`Connection::run_action`]'s frame, which every session keeps on its stack.
    #[inline(never)]
    fn transfer_out_of_line(&mut self, id: ActionId, plan: wharf_core::TransferPlan) {
        self.run_transfer(id, plan);
    }

    fn storage_do(
        &self,
        f: impl FnOnce(&dyn Storage) -> Result<(), wharf_core::StorageError>,
    ) -> Result<(), wharf_core::StorageError> {
        match &self.storage {
            Some(s) => f(s.as_ref()),
            None => Err(wharf_core::StorageError::PermissionDenied),
        }
    }

    fn log_change(&self, what: &str, path: &str, r: &Result<(), wharf_core::StorageError>) {
        match r {
            Ok(()) => info!(
                "session {} {what} user={} path={path}: ok",
                self.id,
                self.user.as_deref().unwrap_or("-")
            ),
            Err(e) => info!(
                "session {} {what} user={} path={path}: {e}",
                self.id,
                self.user.as_deref().unwrap_or("-")
            ),
        }
    }

    /// Completes a login the user store accepted (opening the user's storage and counting
    /// the login, with the counts passed to the core for its login limits), or logs why it
    /// failed (a wrong password counts towards a ban of the address). `how` says what vouched
    /// for the user, for the log.
    fn login(
        &mut self,
        user: &str,
        checked: Result<Login, LoginError>,
        how: &str,
    ) -> Result<wharf_core::Account, LoginError> {
        match checked {
            Ok(login) => match LocalFs::for_login(&login, self.shared.settings.atomic_uploads) {
                Ok(fs) => {
                    let mut account = login.account;
                    info!(
                        "session {} login user={} peer={} by {how}",
                        self.id, account.name, self.peer
                    );
                    self.shared.login_succeeded(self.peer.ip());
                    // A previous login of this session was released by its LoginEnded.
                    let (slot, counts) =
                        self.shared
                            .count_login(&account.name, self.peer.ip(), account.anonymous);
                    account.sessions = counts;
                    self.login_slot = Some(slot);
                    if let Some(control) = &self.tls {
                        control.logged_in(&account.name);
                    }
                    self.tracker.authenticated(&account);
                    self.storage = Some(Box::new(fs));
                    self.user = Some(account.name.clone());
                    Ok(account)
                }
                Err(e) => {
                    error!(
                        "session {}: user {} logged in but the home folder {} is unusable: {e}",
                        self.id,
                        login.account.name,
                        login.home.display()
                    );
                    Err(LoginError::Unavailable(
                        "the home folder of this account is not available.".into(),
                    ))
                }
            },
            Err(e) => {
                // The name a client tried is worth logging; the password never is.
                let shown: String = user.chars().take(64).collect();
                info!(
                    "session {} login failed user={shown:?} peer={} by {how}",
                    self.id, self.peer
                );
                if e == LoginError::Invalid && self.shared.login_failed(self.peer.ip()) {
                    warn!(
                        "address {} banned for {} s after {} failed logins",
                        self.peer.ip(),
                        self.shared.settings.ban_duration.as_secs(),
                        self.shared.settings.ban_after_failures
                    );
                }
                Err(e)
            }
        }
    }

    /// `StartTls`: the 234 has been written; run the handshake on the control connection and
    /// report it. A failed handshake closes the connection (the core closes the session).
    #[inline(never)]
    fn start_tls(&mut self, id: ActionId) {
        let fail = |conn: &mut Self, why: String| {
            info!(
                "session {}: TLS handshake with {} failed: {why}; closing",
                conn.id, conn.peer
            );
            conn.outcome(id, OutcomeKind::TlsEstablished(Err(why)));
            conn.closing = true;
        };
        let Some(tls) = self.shared.tls.clone() else {
            return fail(self, "TLS is not configured".into());
        };
        // Swap the plain socket out (a duplicate descriptor stands in meanwhile).
        let placeholder = match self.ctrl.tcp().try_clone() {
            Ok(t) => t,
            Err(e) => return fail(self, format!("cannot prepare the socket: {e}")),
        };
        let tcp = match std::mem::replace(&mut self.ctrl, ControlStream::Plain(placeholder)) {
            ControlStream::Plain(tcp) => tcp,
            other => {
                // Already protected: the core does not ask for this.
                self.ctrl = other;
                return fail(self, "TLS is already in use".into());
            }
        };
        let control = tls.control(self.peer.ip());
        // Bounded as a whole, and before login by the login deadline too.
        let mut deadline = Instant::now() + TLS_HANDSHAKE_TIMEOUT;
        if let Some(login) = self.session.login_deadline() {
            deadline = deadline.min(login);
        }
        match accept_tls(&tls, control.config(), tcp, deadline) {
            Ok((stream, info)) => {
                log_handshake(self.id, self.peer, "AUTH", &stream.conn, &info);
                let _ = stream.sock.set_write_timeout(Some(CONTROL_WRITE_TIMEOUT));
                self.write_timeout = CONTROL_WRITE_TIMEOUT;
                self.ctrl = ControlStream::Tls(stream);
                if let Some(user) = self.user.as_deref().filter(|_| self.login_slot.is_some()) {
                    // AUTH after login.
                    control.logged_in(user);
                }
                self.tls = Some(control);
                self.outcome(id, OutcomeKind::TlsEstablished(Ok(info)));
            }
            Err(e) => fail(self, e),
        }
    }

    /// `StopTls` (after the reply to CCC or REIN): close_notify both ways, then go on in the
    /// clear on the same socket. Data connections keep the TLS configuration: after CCC they
    /// may still be protected, and resume the session they have.
    #[inline(never)]
    fn stop_tls(&mut self) {
        if !matches!(self.ctrl, ControlStream::Tls(_)) {
            return;
        }
        let placeholder = match self.ctrl.tcp().try_clone() {
            Ok(t) => t,
            Err(e) => {
                info!("session {}: cannot end TLS: {e}; closing", self.id);
                self.closing = true;
                return;
            }
        };
        let ControlStream::Tls(tls) =
            std::mem::replace(&mut self.ctrl, ControlStream::Plain(placeholder))
        else {
            return;
        };
        let (tcp, r) = stream::stop_tls(*tls, stream::CLOSE_NOTIFY_WAIT);
        let _ = tcp.set_write_timeout(Some(CONTROL_WRITE_TIMEOUT));
        self.write_timeout = CONTROL_WRITE_TIMEOUT;
        self.ctrl = ControlStream::Plain(tcp);
        match r {
            Ok(stream::StopTls::Clean) => {
                info!("session {}: TLS ended; control connection in the clear", self.id)
            }
            Ok(stream::StopTls::NoCloseNotify) => info!(
                "session {}: TLS ended (the client sent no close_notify); control connection in the clear",
                self.id
            ),
            Ok(stream::StopTls::DroppedProtected(n)) => warn!(
                "session {}: TLS ended; {n} protected bytes the client sent before its close_notify were dropped",
                self.id
            ),
            Err(e) => {
                info!("session {}: cannot end TLS cleanly: {e}; closing", self.id);
                self.closing = true;
            }
        }
    }

    /// After the session loop: tells the session the connection is gone (unless it closed
    /// itself) and records what that brings (the logout event, the end of the login), so that
    /// a connection that simply drops still has its `logout` event. Replies and other actions
    /// have nowhere to go any more and are dropped.
    #[inline(never)]
    fn end_session(&mut self) {
        self.session.handle_disconnect(Instant::now());
        // Bounded: a closed session queues nothing new.
        for _ in 0..1024 {
            let Some(out) = self.session.poll_output() else {
                break;
            };
            if let Output::Action(a) = out {
                if matches!(a.kind, ActionKind::Notify(_) | ActionKind::LoginEnded) {
                    self.run_action(a);
                }
            }
        }
    }

    /// After the session ends: close for writing (after close_notify on TLS), then read and
    /// discard what the client still sends for a short while, so that the last reply arrives
    /// before the connection goes.
    #[inline(never)]
    fn linger(&mut self) {
        self.passive = None;
        if let ControlStream::Tls(s) = &mut self.ctrl {
            s.conn.send_close_notify();
            let _ = s.sock.set_write_timeout(Some(LINGER));
            let _ = std::io::Write::flush(&mut **s);
        }
        let tcp = self.ctrl.tcp();
        let _ = tcp.shutdown(std::net::Shutdown::Write);
        let deadline = Instant::now() + LINGER;
        let mut tcp = tcp;
        for _ in 0..16 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tcp.set_read_timeout(Some(left)).is_err() {
                return;
            }
            match tcp.read(&mut self.buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }
}

/// The start of a session on an implicit-TLS listener: the handshake, then the session. None
/// when the connection is dropped (TLS off, or the handshake failed; logged).
///
/// Out of line, like the other TLS steps, so that the frames of [`Connection::serve`] and
/// [`Connection::run_action`], which every plain session keeps on its stack, do not hold
/// room for TLS state (an idle session costs the stack pages it has touched).
#[inline(never)]
fn implicit_start(
    shared: &Shared,
    tcp: TcpStream,
    id: u64,
    peer: SocketAddr,
    local: SocketAddr,
    accepted: Instant,
) -> Option<(ControlStream, Session, Option<ControlTls>)> {
    let Some(tls) = &shared.tls else {
        warn!("session {id}: implicit-TLS connection from {peer} but TLS is off; dropped");
        return None;
    };
    let control = tls.control(peer.ip());
    let deadline = accepted + TLS_HANDSHAKE_TIMEOUT;
    match accept_tls(tls, control.config(), tcp, deadline) {
        Ok((stream, info)) => {
            log_handshake(id, peer, "implicit", &stream.conn, &info);
            // The login deadline counts from the connection's start, handshake included.
            let session = Session::new_implicit_tls(shared.core(), peer, local, accepted, info);
            Some((ControlStream::Tls(stream), session, Some(control)))
        }
        Err(e) => {
            // Plain text on the implicit port, a scanner, an old TLS version...: nothing to
            // answer; the server goes on.
            info!("session {id}: implicit TLS handshake with {peer} failed: {e}; closed");
            None
        }
    }
}

/// Runs the server side of the handshake on a new control connection with `config`, finished
/// by `deadline` however the client sends its bytes; returns the protected stream (boxed at
/// once: it is large) and what the session learns.
#[inline(never)]
fn accept_tls(
    tls: &TlsContext,
    config: Arc<ServerConfig>,
    tcp: TcpStream,
    deadline: Instant,
) -> Result<(Box<TlsStream>, TlsInfo), String> {
    let conn = ServerConnection::new(config).map_err(|e| e.to_string())?;
    let mut stream = Box::new(StreamOwned::new(conn, tcp));
    let s = &mut *stream;
    stream::handshake(
        &mut s.conn,
        &mut s.sock,
        deadline,
        TLS_HANDSHAKE_TIMEOUT,
        || false,
    )
    .map_err(|e| e.to_string())?;
    let identity = tls.client_identity(&stream.conn);
    Ok((stream, TlsInfo::new(identity)))
}

fn log_handshake(id: u64, peer: SocketAddr, how: &str, conn: &ServerConnection, info: &TlsInfo) {
    let version = conn
        .protocol_version()
        .map_or("?".into(), |v| format!("{v:?}"));
    let suite = conn
        .negotiated_cipher_suite()
        .map_or("?".into(), |s| format!("{:?}", s.suite()));
    info!(
        "session {id} TLS ({how}) peer={peer} version={version} cipher={suite}{}",
        match &info.client_identity {
            Some(user) => format!(" client-certificate={user:?}"),
            None => String::new(),
        }
    );
}

#[cfg(test)]
mod tests {
    use super::read_timeout_close_enough;
    use std::time::Duration;

    #[test]
    fn a_set_read_timeout_stands_only_for_a_nearly_equal_wait() {
        let ms = Duration::from_millis;
        // The idle wait before one command and the next: microseconds apart.
        let idle = Duration::from_secs(300);
        assert!(read_timeout_close_enough(
            idle,
            idle - Duration::from_micros(150)
        ));
        assert!(read_timeout_close_enough(
            idle - Duration::from_micros(150),
            idle
        ));
        // Never more than 20 ms off, however long the wait.
        assert!(read_timeout_close_enough(idle, idle - ms(20)));
        assert!(!read_timeout_close_enough(idle, idle - ms(21)));
        assert!(!read_timeout_close_enough(idle - ms(21), idle));
        // Short waits (a delayed reply) get 1/256 of themselves: 1 s may be 3.9 ms off.
        assert!(read_timeout_close_enough(ms(1000), ms(997)));
        assert!(!read_timeout_close_enough(ms(1000), ms(995)));
        // The idle wait never stands for a short one, nor a short one for the idle wait.
        assert!(!read_timeout_close_enough(idle, ms(1000)));
        assert!(!read_timeout_close_enough(ms(1), idle));
        assert!(read_timeout_close_enough(ms(1), ms(1)));
    }
}
