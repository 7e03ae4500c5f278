//! One control connection: its [`Session`], its socket (plain, or TLS after AUTH), the
//! replies waiting to be written, the logged-in user's storage, the passive listener and the
//! running transfer. [`Conn::drive`] is the contract of core/src/lib.rs for one readiness
//! event: read what the control connection has and feed it in, step the transfer, drain the
//! session's outputs (writing every reply as it comes, carrying out actions and reporting
//! their outcomes), and write what the socket takes. Nothing here decides a protocol question
//! or edits a reply.

use log::{info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry};
use rustls::ServerConnection;
use std::io;
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::time::{Duration, Instant};
use wharf_blocking::storage::{unix_now, LocalFs, Storage};
use wharf_blocking::tls::ControlTls;
use wharf_blocking::users::Login;
use wharf_core::action::LoginCounts;
use wharf_core::{
    Account, Action, ActionId, ActionKind, DataEndpoint, LoginError, Lost, Outcome, OutcomeKind,
    Output, Session, StorageError, TlsInfo, TransferError,
};

use crate::transfer::{Cx, Step, Transfer};
use crate::wire::Wire;
use crate::{token, Env, DATA, PASSIVE};

/// Bytes read from the control connection at a time.
const READ_BUFFER: usize = 1024;
/// Replies waiting to be written beyond which the connection is not read (a client that
/// sends commands without reading the replies waits for itself).
const MAX_PENDING_REPLIES: usize = 64 * 1024;
/// How long an AUTH TLS handshake may take (before login, the login deadline bounds it too).
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// After the session closed: how long the last replies may take to go out, and how long
/// the client's own close is waited for (so that they are not destroyed by a reset).
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Rounds of read/step/write one readiness event gets before the loop serves others.
const ROUNDS: usize = 32;

/// What the loop does with the connection after [`Conn::drive`].
#[derive(PartialEq, Eq)]
pub enum Drive {
    /// Wait for readiness or [`Conn::wake`].
    Wait,
    /// Work is left: drive it again before waiting.
    Again,
    /// Over: drop it.
    Remove,
}

pub struct Conn {
    n: usize,
    session: Session,
    ctrl: Wire,
    peer: SocketAddr,
    /// Replies not yet written.
    out: Vec<u8>,
    buf: Vec<u8>,
    /// This control connection's TLS, once AUTH began: its data connections resume it.
    tls: Option<ControlTls>,
    /// AUTH TLS: the `StartTls` action being carried out, and its deadline.
    handshake: Option<(ActionId, Instant)>,
    storage: Option<Box<dyn Storage>>,
    user: Option<String>,
    passive: Option<(TcpListener, Option<IpAddr>)>,
    transfer: Option<Box<Transfer>>,
    /// An upload ended: what it replaced is freed once its final reply is written.
    release_after_reply: bool,
    /// The session closed: the last replies go out, then the socket, by this instant.
    closing: Option<Instant>,
    /// The socket broke, or the client closed it.
    gone: bool,
}

impl Conn {
    /// A new control connection, number `n`; its greeting is written at once.
    pub fn new(
        n: usize,
        env: &mut Env,
        tcp: TcpStream,
        peer: SocketAddr,
        registry: &Registry,
    ) -> io::Result<Conn> {
        let local = tcp.local_addr()?;
        let session = Session::new(env.config.clone(), peer, local, Instant::now());
        let mut conn = Conn {
            n,
            session,
            ctrl: Wire::plain(tcp),
            peer,
            out: Vec::new(),
            buf: vec![0; READ_BUFFER],
            tls: None,
            handshake: None,
            storage: None,
            user: None,
            passive: None,
            transfer: None,
            release_after_reply: false,
            closing: None,
            gone: false,
        };
        conn.drain(env, registry);
        Ok(conn)
    }

    /// The earliest instant the loop must drive this connection without an event.
    pub fn wake(&self) -> Option<Instant> {
        let times = [
            self.closing,
            self.handshake.map(|(_, t)| t),
            self.transfer.as_ref().map(|t| t.wake()),
            self.session.poll_timeout(),
        ];
        times.into_iter().flatten().min()
    }

    /// Does everything the sockets allow now (see the module documentation).
    pub fn drive(&mut self, env: &mut Env, registry: &Registry) -> Drive {
        if let Some(until) = self.closing {
            return self.linger(env, registry, until);
        }
        if self
            .session
            .poll_timeout()
            .is_some_and(|t| t <= Instant::now())
        {
            self.session.handle_timeout(Instant::now());
            self.drain(env, registry);
        }
        for _ in 0..ROUNDS {
            let mut busy = self.read_control(env, registry);
            if self.transfer.is_some() {
                busy |= self.step_transfer(env, registry);
            }
            self.flush();
            if self.gone {
                return self.end(env, registry);
            }
            if self.closing.is_some() {
                return Drive::Again;
            }
            if !busy {
                return Drive::Wait;
            }
        }
        Drive::Again
    }

    /// Reads one buffer of the control connection (or runs the AUTH handshake) and feeds
    /// it to the session; true when something came.
    fn read_control(&mut self, env: &mut Env, registry: &Registry) -> bool {
        if let Some((id, deadline)) = self.handshake {
            return self.continue_tls(env, registry, id, deadline);
        }
        if self.out.len() > MAX_PENDING_REPLIES {
            return false;
        }
        match self.ctrl.read(&mut self.buf) {
            Ok(0) => self.gone = true,
            Ok(n) => {
                let now = Instant::now();
                // Progress first, so that a STAT in this input is current.
                if let Some(t) = self.transfer.as_ref().filter(|t| t.started()) {
                    let progress = OutcomeKind::TransferProgress { bytes: t.bytes() };
                    self.session
                        .handle_outcome(now, Outcome::new(t.id(), progress));
                }
                self.session.handle_input(now, &self.buf[..n]);
                self.drain(env, registry);
                return true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return true,
            Err(e) => {
                info!("session {}: control connection: {e}", self.n);
                self.gone = true;
            }
        }
        false
    }

    /// What a step of the transfer needs of this connection.
    fn cx<'a>(&'a self, env: &'a Env, registry: &'a Registry) -> Cx<'a> {
        Cx {
            registry,
            token: token(self.n, DATA),
            storage: self.storage.as_deref(),
            tls: env.tls.as_ref().zip(self.tls.as_ref()),
            user: self.user.as_deref(),
        }
    }

    /// Steps the transfer and reports what it reports (rule 4); true when it did something.
    fn step_transfer(&mut self, env: &mut Env, registry: &Registry) -> bool {
        let Some(mut t) = self.transfer.take() else {
            return false;
        };
        let (id, step) = (t.id(), t.step(&self.cx(env, registry)));
        let kind = match step {
            // After a checkpoint the loop reads the control connection before stepping on.
            Step::Idle | Step::Busy | Step::Checkpoint => {
                self.transfer = Some(t);
                return !matches!(step, Step::Idle);
            }
            Step::Report(kind) => {
                self.transfer = Some(t);
                kind
            }
            Step::Ended(kind) => {
                self.release_after_reply = t.is_upload();
                kind
            }
        };
        self.session
            .handle_outcome(Instant::now(), Outcome::new(id, kind));
        self.drain(env, registry);
        true
    }

    /// Drains the session's outputs (rule 1 of the contract), stopping at `Close`.
    fn drain(&mut self, env: &mut Env, registry: &Registry) {
        // Bounded: the session queues a few outputs per input or outcome.
        for _ in 0..1024 {
            if self.closing.is_some() {
                return;
            }
            match self.session.poll_output() {
                None => return,
                Some(Output::Reply(r)) => {
                    self.out.extend_from_slice(r.as_bytes());
                    self.flush();
                    if std::mem::take(&mut self.release_after_reply) {
                        if let Some(s) = &self.storage {
                            s.release_replaced();
                        }
                    }
                }
                Some(Output::Action(a)) => self.act(env, registry, a),
                Some(Output::Close) => {
                    self.closing = Some(Instant::now() + CLOSE_GRACE);
                    self.stop_transfer(env, registry);
                }
            }
        }
    }

    /// Writes what waits as far as the socket takes it; after AUTH's `234` is out, TLS starts.
    fn flush(&mut self) {
        while !self.out.is_empty() {
            match self.ctrl.write(&self.out) {
                Ok(0) => self.gone = true,
                Ok(n) => {
                    self.out.drain(..n);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => self.gone = true,
            }
            break;
        }
        if self.ctrl.flush_tls().is_err() {
            self.gone = true;
        }
        if self.out.is_empty() && self.handshake.is_some() && self.ctrl.tls.is_none() {
            let conn = self.tls.as_ref().map(|t| ServerConnection::new(t.config()));
            match conn {
                Some(Ok(conn)) => self.ctrl.tls = Some(Box::new(conn)),
                _ => self.gone = true,
            }
        }
    }

    /// AUTH TLS: the handshake as far as it goes; its outcome once it is over.
    fn continue_tls(
        &mut self,
        env: &mut Env,
        registry: &Registry,
        id: ActionId,
        deadline: Instant,
    ) -> bool {
        if self.ctrl.tls.is_none() {
            return false; // The 234 is not out yet.
        }
        let result = match self.ctrl.handshake() {
            Ok(false) if Instant::now() < deadline => return false,
            Ok(false) => Err("the TLS handshake did not finish in time".to_string()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return true,
            Err(e) => Err(e.to_string()),
            Ok(true) => {
                let conn = self.ctrl.tls.as_deref();
                let identity = env
                    .tls
                    .as_ref()
                    .zip(conn)
                    .and_then(|(ctx, c)| ctx.client_identity(c));
                Ok(TlsInfo::new(identity))
            }
        };
        self.handshake = None;
        match &result {
            Ok(_) => info!("session {}: TLS on the control connection", self.n),
            Err(e) => {
                info!("session {}: TLS handshake failed: {e}", self.n);
                self.gone = true;
            }
        }
        if let (Ok(_), Some(tls), Some(user)) = (&result, &self.tls, &self.user) {
            tls.logged_in(user); // AUTH after login
        }
        self.session.handle_outcome(
            Instant::now(),
            Outcome::new(id, OutcomeKind::TlsEstablished(result)),
        );
        self.drain(env, registry);
        true
    }

    /// Carries out one action of the core and reports its outcome (rule 2 of the contract).
    fn act(&mut self, env: &mut Env, registry: &Registry, action: Action) {
        let id = action.id;
        let storage = self
            .storage
            .as_deref()
            .ok_or(StorageError::PermissionDenied);
        let outcome = match action.kind {
            ActionKind::Authenticate { user, password } => {
                let checked = env.users.authenticate(&user, password.expose());
                OutcomeKind::Authenticated(self.login(env, &user, checked))
            }
            ActionKind::AuthenticateCertificate { user } => {
                let checked = env.users.authenticate_certificate(&user);
                OutcomeKind::Authenticated(self.login(env, &user, checked))
            }
            ActionKind::Stat { path } => OutcomeKind::Metadata(storage.and_then(|s| s.stat(&path))),
            ActionKind::ReadDir { path } => OutcomeKind::Entries {
                result: storage.and_then(|s| s.read_dir(&path)),
                now: unix_now(),
            },
            ActionKind::MakeDir { path, ownership } => {
                OutcomeKind::Done(storage.and_then(|s| s.mkdir(&path, Some(&ownership))))
            }
            ActionKind::RemoveDir { path } => {
                OutcomeKind::Done(storage.and_then(|s| s.rmdir(&path)))
            }
            ActionKind::Delete { path } => OutcomeKind::Done(storage.and_then(|s| s.delete(&path))),
            ActionKind::Rename { from, to } => {
                OutcomeKind::Done(storage.and_then(|s| s.rename(&from, &to)))
            }
            ActionKind::SetMode { path, mode } => {
                OutcomeKind::Done(storage.and_then(|s| s.set_mode(&path, mode)))
            }
            ActionKind::SetModified { path, time } => {
                OutcomeKind::Done(storage.and_then(|s| s.set_modified(&path, time)))
            }
            ActionKind::AsciiSize { path } => {
                OutcomeKind::Size(storage.and_then(|s| s.ascii_size(&path)))
            }
            ActionKind::ListenPassive { ip, peer } => {
                self.passive = None; // its port is free again first
                let bound = TcpListener::bind(SocketAddr::new(ip, 0)).and_then(|mut l| {
                    registry.register(&mut l, token(self.n, PASSIVE), Interest::READABLE)?;
                    Ok((l.local_addr()?.port(), l))
                });
                OutcomeKind::PassiveListening(match bound {
                    Ok((port, l)) => {
                        self.passive = Some((l, peer));
                        Ok(port)
                    }
                    Err(e) => Err(e.to_string()),
                })
            }
            ActionKind::ClosePassive => {
                self.passive = None;
                return;
            }
            ActionKind::Transfer(plan) => {
                let passive = match plan.data {
                    DataEndpoint::Passive => self.passive.take(),
                    DataEndpoint::Active(_) => None,
                };
                match Transfer::new(id, plan, passive, &self.cx(env, registry)) {
                    Ok(t) => {
                        self.transfer = Some(Box::new(t));
                        return;
                    }
                    Err(e) => OutcomeKind::TransferEnded {
                        bytes: 0,
                        result: Err(e),
                    },
                }
            }
            ActionKind::AbortTransfer { transfer } => {
                if let Some(t) = self.transfer.as_mut().filter(|t| t.id() == transfer) {
                    t.stop(TransferError::Aborted);
                }
                return;
            }
            ActionKind::StartTls => {
                // The 234 goes out first; then `flush` starts TLS and `read_control` runs it.
                match &env.tls {
                    Some(ctx) => self.tls = Some(ctx.control(self.peer.ip())),
                    None => self.gone = true,
                }
                let mut deadline = Instant::now() + TLS_HANDSHAKE_TIMEOUT;
                if let Some(login) = self.session.login_deadline() {
                    deadline = deadline.min(login);
                }
                self.handshake = Some((id, deadline));
                return;
            }
            ActionKind::StopTls => {
                // Going back to the clear after CCC or REIN is left out (see main.rs): the
                // contract allows closing instead.
                info!(
                    "session {}: back to the clear is not supported here; closing",
                    self.n
                );
                self.ctrl.close_notify();
                self.gone = true;
                return;
            }
            ActionKind::LoginEnded => {
                env.logins.retain(|l| l.0 != self.n);
                if let Some(tls) = &self.tls {
                    tls.logged_out();
                }
                self.storage = None;
                return;
            }
            ActionKind::Notify(e) => {
                let path = e
                    .path
                    .as_ref()
                    .map_or(String::new(), |p| format!(" path={p}"));
                let user = e.user.as_deref().unwrap_or("-");
                info!(
                    "session {} event {} user={user}{path}",
                    self.n,
                    e.kind.as_str()
                );
                return;
            }
            ActionKind::AdminQuery(_) => {
                OutcomeKind::AdminInfo(Err("not available in this example".into()))
            }
            other => {
                warn!("session {}: cannot carry out {other:?}; closing", self.n);
                self.gone = true;
                return;
            }
        };
        self.session
            .handle_outcome(Instant::now(), Outcome::new(id, outcome));
    }

    /// A login the user store accepted: the user's storage, counted among the logins.
    fn login(
        &mut self,
        env: &mut Env,
        name: &str,
        checked: Result<Login, LoginError>,
    ) -> Result<Account, LoginError> {
        let login =
            checked.inspect_err(|_| info!("session {}: login failed user={name:?}", self.n))?;
        let fs = LocalFs::for_login(&login, true).map_err(|e| {
            warn!(
                "session {}: the home folder of {name} is unusable: {e}",
                self.n
            );
            LoginError::Unavailable("the home folder of this account is not available.".into())
        })?;
        let mut account = login.account;
        let ip = self.peer.ip();
        env.logins
            .push((self.n, account.name.clone(), ip, account.anonymous));
        // The logins held now, this one included, for the core's login limits.
        let mut held = LoginCounts::default();
        for (_, name, from, anonymous) in &env.logins {
            let (same_ip, same_user) = (*from == ip, *name == account.name);
            held.total += 1;
            held.anonymous += u32::from(*anonymous);
            held.from_ip += u32::from(same_ip);
            held.user += u32::from(same_user);
            held.user_from_ip += u32::from(same_ip && same_user);
        }
        account.sessions = held;
        if let Some(tls) = &self.tls {
            tls.logged_in(&account.name);
        }
        info!(
            "session {} login user={} peer={}",
            self.n, account.name, self.peer
        );
        self.storage = Some(Box::new(fs));
        self.user = Some(account.name.clone());
        Ok(account)
    }

    /// Stops a running transfer (the session is over) and reports its end; an upload is
    /// then not put in place.
    fn stop_transfer(&mut self, env: &mut Env, registry: &Registry) {
        if let Some(t) = self.transfer.as_mut() {
            t.stop(TransferError::ConnectionLost(Lost::ControlClosed));
            self.step_transfer(env, registry);
        }
    }

    /// After `Close`: the last replies (and TLS close_notify) go out, then the write side is
    /// shut and what the client still sends is read and dropped until it closes or the grace
    /// period ends.
    fn linger(&mut self, env: &mut Env, registry: &Registry, until: Instant) -> Drive {
        self.flush();
        if !self.out.is_empty() && !self.gone && Instant::now() < until {
            return Drive::Wait;
        }
        if self.ctrl.tls.as_ref().is_some_and(|t| !t.is_handshaking()) {
            self.ctrl.close_notify();
            let _ = self.ctrl.flush_tls();
        }
        let _ = self.ctrl.tcp.shutdown(Shutdown::Write);
        for _ in 0..16 {
            match io::Read::read(&mut self.ctrl.tcp, &mut self.buf) {
                Ok(n) if n > 0 => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < until => {
                    return Drive::Wait
                }
                _ => break,
            }
        }
        self.end(env, registry)
    }

    /// The connection is over: a running transfer stops and reports its end, then the
    /// session hears of the disconnect (rule 4); what that brings (the logout event, the end
    /// of the login) is carried out; replies have nowhere to go any more.
    fn end(&mut self, env: &mut Env, registry: &Registry) -> Drive {
        // From now on `drain` writes nothing.
        self.closing = Some(Instant::now());
        self.stop_transfer(env, registry);
        self.session.handle_disconnect(Instant::now());
        for _ in 0..1024 {
            match self.session.poll_output() {
                None => break,
                Some(Output::Action(a))
                    if matches!(a.kind, ActionKind::Notify(_) | ActionKind::LoginEnded) =>
                {
                    self.act(env, registry, a)
                }
                Some(_) => {}
            }
        }
        env.logins.retain(|l| l.0 != self.n);
        info!(
            "session {} end peer={} user={}",
            self.n,
            self.peer,
            self.user.as_deref().unwrap_or("-")
        );
        Drive::Remove
    }
}
