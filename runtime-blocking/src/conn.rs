//! The connection driver: one control connection, one [`Session`], on one worker thread.
//!
//! It is the loop of the core's documentation made real: read the control connection with a
//! timeout taken from [`Session::poll_timeout`], feed the bytes in, drain the outputs (write
//! replies as they come, carry out actions and report their outcomes, close on
//! [`Output::Close`]). Actions run synchronously on this thread; a transfer (see
//! [`crate::transfer`]) keeps watching the control connection while it moves bytes.
//!
//! It owns the session's resources: the control stream, the storage of the logged-in user,
//! the passive listener. It must not decide protocol questions: the core has done that.

use log::{error, info, warn};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wharf_core::{Action, ActionId, ActionKind, LoginError, Outcome, OutcomeKind, Output, Session};

use crate::data::PassiveListener;
use crate::server::Shared;
use crate::storage::{unix_now, LocalFs, Storage};
use crate::stream::ControlStream;

/// How long writing one reply may take before the client is given up.
pub const CONTROL_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long, after closing, unread input from the client is drained (so that the last reply
/// is not destroyed by a TCP reset).
pub const LINGER: Duration = Duration::from_millis(250);

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
    pub(crate) passive: Option<PassiveListener>,
    /// Actions the core asked for during a transfer that are not about the transfer; run
    /// after it.
    pub(crate) deferred: VecDeque<Action>,
    /// The control connection is unusable or the session is over.
    pub(crate) closing: bool,
    pub(crate) bytes_up: u64,
    pub(crate) bytes_down: u64,
    buf: Vec<u8>,
}

impl<'a> Connection<'a> {
    /// Serves a new control connection until it closes.
    pub fn serve(shared: &'a Shared, ctrl: ControlStream, peer: SocketAddr) {
        let local = match ctrl.tcp().local_addr() {
            Ok(a) => a,
            Err(e) => {
                warn!("connection from {peer}: no local address ({e}); dropped");
                return;
            }
        };
        let _ = ctrl.tcp().set_nodelay(true);
        let _ = ctrl.tcp().set_write_timeout(Some(CONTROL_WRITE_TIMEOUT));
        let session = Session::new(shared.core.clone(), peer, local, Instant::now());
        let mut conn = Connection {
            shared,
            session,
            ctrl,
            peer,
            local,
            id: SESSION_IDS.fetch_add(1, Ordering::Relaxed),
            storage: None,
            user: None,
            passive: None,
            deferred: VecDeque::new(),
            closing: false,
            bytes_up: 0,
            bytes_down: 0,
            buf: vec![0u8; 4096],
        };
        let started = Instant::now();
        info!("session {} start peer={peer}", conn.id);
        let why = conn.run();
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
            if let Err(e) = self
                .ctrl
                .tcp()
                .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            {
                return format!("control connection error: {e}");
            }
            match self.ctrl.read(&mut self.buf) {
                Ok(0) => return "closed by the client".into(),
                Ok(n) => self.session.handle_input(Instant::now(), &self.buf[..n]),
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
                    if let Err(e) = self.ctrl.write_all(r.as_bytes()) {
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

    /// During a transfer: drains the session's outputs, writing replies at once. Returns the
    /// interrupt the core asked for, if any; other actions wait until the transfer is over.
    pub(crate) fn pump(&mut self, transfer: ActionId) -> Option<Interrupt> {
        let mut interrupt = None;
        while let Some(out) = self.session.poll_output() {
            match out {
                Output::Reply(r) => {
                    if let Err(e) = self.ctrl.write_all(r.as_bytes()) {
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
                let result = self.authenticate(&user, password.expose());
                self.outcome(id, OutcomeKind::Authenticated(result));
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
            // Ownership is recorded by the partner-aware storage (issue 4); the local file
            // system keeps its own.
            ActionKind::MakeDir { path, .. } => {
                let r = self.storage_do(|s| s.mkdir(&path));
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
            ActionKind::Transfer(plan) => self.run_transfer(id, plan),
            // No transfer runs (it has ended already): nothing to stop.
            ActionKind::AbortTransfer { .. } => {}
            // Not counted yet: login limits across sessions come with the partner store.
            ActionKind::LoginEnded => {}
            ActionKind::Notify(event) => {
                log::debug!("session {}: event {}", self.id, event.kind.as_str());
            }
            ActionKind::SetMode { .. } => {
                let r = Err(wharf_core::StorageError::Other(
                    "SITE CHMOD is not supported by this server yet".into(),
                ));
                self.outcome(id, OutcomeKind::Done(r));
            }
            ActionKind::AdminQuery(_) => {
                let r = Err("administration queries are not available yet".into());
                self.outcome(id, OutcomeKind::AdminInfo(r));
            }
            other => {
                error!(
                    "session {}: this runtime cannot carry out {other:?}; closing the session",
                    self.id
                );
                let _ = self
                    .ctrl
                    .write_all(b"421 Internal error: unsupported operation; closing.\r\n");
                self.closing = true;
            }
        }
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

    fn authenticate(
        &mut self,
        user: &str,
        password: &str,
    ) -> Result<wharf_core::Account, LoginError> {
        match self.shared.users.authenticate(user, password) {
            Ok(login) => match LocalFs::new(&login.home) {
                Ok(fs) => {
                    let a = &login.account;
                    let fs = if a.anonymous {
                        fs
                    } else {
                        fs.with_owner(&a.user, a.group())
                    };
                    info!(
                        "session {} login user={} peer={}",
                        self.id, login.account.name, self.peer
                    );
                    self.storage = Some(Box::new(fs));
                    self.user = Some(login.account.name.clone());
                    Ok(login.account)
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
                    "session {} login failed user={shown:?} peer={}",
                    self.id, self.peer
                );
                Err(e)
            }
        }
    }

    /// After the session ends: close for writing, then read and discard what the client still
    /// sends for a short while, so that the last reply arrives before the connection goes.
    fn linger(&mut self) {
        self.passive = None;
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
