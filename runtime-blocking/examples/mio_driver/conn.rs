//! One control connection: its [`Session`], its socket (plain, or TLS after AUTH), the
//! replies not yet written, the logged-in user's storage, the passive listener and the
//! running transfer or checksum. [`Conn::drive`] follows the contract of core/src/lib.rs for whatever
//! the sockets allow now: feed the control connection to the session, step the transfer,
//! drain the session's outputs (write each reply as it comes, carry out each action and
//! report its outcome). Nothing here decides a protocol question or edits a reply.

use log::{info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry};
use rustls::ServerConnection;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::time::Instant;
use wharf_blocking::driver::checksum::ChecksumTask;
use wharf_blocking::driver::data::Admits;
use wharf_blocking::driver::transfer::{Interrupt, Step as TaskStep};
// The blocking driver's limits, the same here: the control read size, the AUTH TLS handshake's
// limit (before login the login deadline bounds it too), and how long the last replies after
// `Close` may take to go out.
use wharf_blocking::driver::{
    CONTROL_READ_BUFFER as READ_BUFFER, LAST_REPLY_GRACE as CLOSE_GRACE, TLS_HANDSHAKE_TIMEOUT,
};
use wharf_blocking::logins::LoginSlot;
use wharf_blocking::storage::{unix_now, LocalFs, Storage};
use wharf_blocking::tls::ControlTls;
use wharf_blocking::users::Login;
use wharf_core::TransferError;
use wharf_core::{Account, Action, ActionId, ActionKind as Do, DataEndpoint, LoginError, Lost};
use wharf_core::{Outcome, OutcomeKind as Did, Output, Session, StorageError, TlsInfo};

use crate::transfer::{Cx, Step, Transfer};
use crate::wire::Wire;
use crate::{token, Env, DATA, PASSIVE};

/// Replies waiting to be written beyond which the control connection is not read: a client
/// that sends commands without reading the replies waits for itself.
const MAX_UNWRITTEN: usize = 64 * 1024;
/// Rounds of read, step and write a drive makes before the loop serves the others.
const ROUNDS: usize = 32;

/// What the loop does with a connection after [`Conn::drive`].
#[derive(PartialEq, Eq)]
pub enum Drive {
    /// Wait for an event or for [`Conn::wake`].
    Wait,
    /// Work is left: drive it again before waiting.
    Again,
    /// It is over: drop it.
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
    /// This control connection's TLS (from AUTH on): its data connections resume it.
    tls: Option<ControlTls>,
    /// AUTH TLS: the `StartTls` action being carried out, and its deadline.
    handshake: Option<(ActionId, Instant)>,
    storage: Option<Box<dyn Storage>>,
    user: Option<String>,
    /// The login as the server counts it (given back when dropped).
    login: Option<LoginSlot<'static>>,
    passive: Option<(TcpListener, Admits)>,
    transfer: Option<Box<Transfer>>,
    /// HASH, XCRC...: the runtime's checksum task, stepped and reported like a transfer.
    checksum: Option<Box<ChecksumTask>>,
    /// An upload ended: what it replaced is freed once the next reply (its last) is out.
    release_after_reply: bool,
    /// The session is over: the last replies go out until then.
    closing: Option<Instant>,
    /// The write side has been shut (after `Close`).
    shut: bool,
    /// The client closed the control connection, or it broke.
    gone: bool,
}

impl Conn {
    /// Control connection `n`; the session's greeting is written at once.
    pub fn new(n: usize, env: &mut Env, tcp: TcpStream, registry: &Registry) -> io::Result<Conn> {
        let (peer, local) = (tcp.peer_addr()?, tcp.local_addr()?);
        let mut conn = Conn {
            n,
            session: Session::new(env.config.clone(), peer, local, Instant::now()),
            ctrl: Wire::plain(tcp),
            peer,
            out: Vec::new(),
            buf: vec![0; READ_BUFFER],
            tls: None,
            handshake: None,
            storage: None,
            user: None,
            login: None,
            passive: None,
            transfer: None,
            checksum: None,
            release_after_reply: false,
            closing: None,
            shut: false,
            gone: false,
        };
        conn.drain(env, registry);
        Ok(conn)
    }

    /// When the loop must drive this connection even without an event (rule 6: time is
    /// input; also the deadlines of a transfer, of a TLS handshake, of the close).
    pub fn wake(&self) -> Option<Instant> {
        let transfer = self.transfer.as_ref().map(|t| t.wake());
        let handshake = self.handshake.map(|(_, until)| until);
        let times = [
            self.closing,
            handshake,
            transfer,
            self.session.poll_timeout(),
        ];
        times.into_iter().flatten().min()
    }

    /// Does what the sockets and the clock allow now.
    pub fn drive(&mut self, env: &mut Env, registry: &Registry) -> Drive {
        if let Some(until) = self.closing {
            return self.linger(env, registry, until);
        }
        let due = self.session.poll_timeout();
        if due.is_some_and(|t| t <= Instant::now()) {
            self.session.handle_timeout(Instant::now());
            self.drain(env, registry);
        }
        for _ in 0..ROUNDS {
            let read = self.read_control(env, registry);
            let stepped = self.step_transfer(env, registry) || self.step_checksum(env, registry);
            // Room made for replies: the control connection may be read again.
            let wrote = self.flush();
            if self.gone {
                return self.end(env, registry);
            }
            if self.closing.is_some() {
                return Drive::Again;
            }
            if !read && !stepped && !wrote {
                return Drive::Wait;
            }
        }
        Drive::Again
    }

    /// Reads the control connection once (or steps the AUTH handshake) and feeds the session
    /// what came; true when something did.
    fn read_control(&mut self, env: &mut Env, registry: &Registry) -> bool {
        if let Some((id, deadline)) = self.handshake {
            return self.continue_tls(env, registry, id, deadline);
        }
        if self.out.len() > MAX_UNWRITTEN {
            return false;
        }
        match self.ctrl.read(&mut self.buf) {
            Ok(0) => self.gone = true,
            Ok(n) => {
                let now = Instant::now();
                // Progress first, so that a STAT in this input is current (rule 4).
                let task = match (&self.transfer, &self.checksum) {
                    (Some(t), _) if t.started => Some((t.id, t.bytes)),
                    (_, Some(c)) => Some((c.id(), c.bytes())),
                    _ => None,
                };
                if let Some((id, bytes)) = task {
                    let progress = Did::TransferProgress { bytes };
                    self.session.handle_outcome(now, Outcome::new(id, progress));
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

    /// Steps the transfer and tells the session what it reports (rule 4); true when it did
    /// something.
    fn step_transfer(&mut self, env: &mut Env, registry: &Registry) -> bool {
        let Some(mut t) = self.transfer.take() else {
            return false;
        };
        let (id, step) = (t.id, t.step(&self.cx(env, registry)));
        let kind = match step {
            Step::Idle | Step::Busy => {
                self.transfer = Some(t);
                return !matches!(step, Step::Idle);
            }
            Step::Report(kind) => {
                self.transfer = Some(t);
                kind
            }
            Step::Ended(kind) => {
                if let Did::TransferEnded { bytes, result } = &kind {
                    info!("session {} transfer bytes={bytes} {result:?}", self.n);
                }
                self.release_after_reply = t.is_upload();
                kind
            }
        };
        self.session
            .handle_outcome(Instant::now(), Outcome::new(id, kind));
        self.drain(env, registry);
        true
    }

    /// Hashes the next chunk of a checksum (HASH, XCRC...) and reports its end (rule 4).
    fn step_checksum(&mut self, env: &mut Env, registry: &Registry) -> bool {
        let Some(mut task) = self.checksum.take() else {
            return false;
        };
        match task.step(self.storage.as_deref()) {
            TaskStep::Ended(kind) => {
                self.session
                    .handle_outcome(Instant::now(), Outcome::new(task.id(), kind));
                self.drain(env, registry);
            }
            _ => self.checksum = Some(task),
        }
        true
    }

    /// Drains the session's outputs, in order, until `None` or `Close` (rule 1).
    fn drain(&mut self, env: &mut Env, registry: &Registry) {
        // Finite: what the session queues comes from the input it holds (bounded by
        // `max_buffered_input`) and the outcomes of its own actions.
        while self.closing.is_none() {
            match self.session.poll_output() {
                None => return,
                Some(Output::Reply(reply)) => {
                    self.out.extend_from_slice(reply.as_bytes());
                    let _ = self.flush();
                    if let Some(s) = self.storage.as_ref().filter(|_| self.release_after_reply) {
                        s.release_replaced();
                        self.release_after_reply = false;
                    }
                }
                Some(Output::Action(action)) => self.act(env, registry, action),
                Some(Output::Close) => {
                    self.closing = Some(Instant::now() + CLOSE_GRACE);
                    self.stop_transfer(env, registry);
                }
            }
        }
    }

    /// Writes what waits as far as the socket takes it. Once AUTH's 234 is out, TLS starts.
    /// True when it wrote something.
    fn flush(&mut self) -> bool {
        let before = self.out.len();
        while !self.out.is_empty() {
            match self.ctrl.write(&self.out) {
                Ok(n) if n > 0 => _ = self.out.drain(..n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                _ => {
                    self.gone = true;
                    break;
                }
            }
        }
        self.gone |= self.ctrl.flush_tls().is_err();
        if self.out.is_empty() && self.handshake.is_some() && self.ctrl.tls.is_none() {
            match self.tls.as_ref().map(|t| ServerConnection::new(t.config())) {
                Some(Ok(conn)) => self.ctrl.tls = Some(Box::new(conn)),
                _ => self.gone = true,
            }
        }
        self.out.len() < before
    }

    /// AUTH TLS (rule 3): the handshake as far as it goes; its outcome once it is over.
    fn continue_tls(
        &mut self,
        env: &mut Env,
        reg: &Registry,
        id: ActionId,
        until: Instant,
    ) -> bool {
        // Until the 234 is out (then `flush` starts TLS) nothing is read.
        let progress = match self.ctrl.tls {
            Some(_) => self.ctrl.handshake(),
            None => Ok(false),
        };
        let result = match progress {
            Ok(false) if Instant::now() < until => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return true,
            Ok(false) => Err("the TLS handshake took too long".to_string()),
            Err(e) => Err(e.to_string()),
            Ok(true) => {
                let (ctx, conn) = (env.tls.as_ref(), self.ctrl.tls.as_deref());
                let identity = ctx.zip(conn).and_then(|(ctx, c)| ctx.client_identity(c));
                Ok(TlsInfo::new(identity))
            }
        };
        self.handshake = None;
        match (&result, &self.tls, &self.user) {
            (Ok(_), Some(tls), Some(user)) => tls.logged_in(user), // AUTH after login
            (Ok(_), ..) => {}
            (Err(e), ..) => {
                info!("session {}: TLS handshake failed: {e}", self.n);
                self.gone = true;
            }
        }
        let outcome = Outcome::new(id, Did::TlsEstablished(result));
        self.session.handle_outcome(Instant::now(), outcome);
        self.drain(env, reg);
        true
    }

    /// Carries out one action of the core and reports its outcome (rule 2).
    fn act(&mut self, env: &mut Env, registry: &Registry, action: Action) {
        let fs = self.storage.as_deref();
        let fs = fs.ok_or(StorageError::PermissionDenied);
        let outcome = match action.kind {
            Do::Authenticate { user, password } => {
                let checked = env.users.authenticate(&user, password.expose());
                Did::Authenticated(self.login(env, &user, checked))
            }
            Do::AuthenticateCertificate { user } => {
                let checked = env.users.authenticate_certificate(&user);
                Did::Authenticated(self.login(env, &user, checked))
            }
            Do::Stat { path } => Did::Metadata(fs.and_then(|s| s.stat(&path))),
            Do::ReadDir { path } => Did::Entries {
                result: fs.and_then(|s| s.read_dir(&path)),
                now: unix_now(),
            },
            Do::MakeDir { path, ownership } => {
                Did::Done(fs.and_then(|s| s.mkdir(&path, Some(&ownership))))
            }
            Do::RemoveDir { path } => Did::Done(fs.and_then(|s| s.rmdir(&path))),
            Do::Delete { path } => Did::Done(fs.and_then(|s| s.delete(&path))),
            Do::Rename { from, to } => Did::Done(fs.and_then(|s| s.rename(&from, &to))),
            Do::SetMode { path, mode } => Did::Done(fs.and_then(|s| s.set_mode(&path, mode))),
            Do::SetModified { path, time } => {
                Did::Done(fs.and_then(|s| s.set_modified(&path, time)))
            }
            Do::AsciiSize { path } => Did::Size(fs.and_then(|s| s.ascii_size(&path))),
            Do::EncodedSize { path, format } => {
                Did::Size(fs.and_then(|s| s.encoded_size(&path, format)))
            }
            Do::AdminQuery(_) => Did::AdminInfo(Err("not available in this example".into())),
            Do::ListenPassive {
                ip,
                peer,
                fxp_peers,
            } => {
                self.passive = None; // its port is free again first
                let bound = TcpListener::bind(SocketAddr::new(ip, 0)).and_then(|mut l| {
                    registry.register(&mut l, token(self.n, PASSIVE), Interest::READABLE)?;
                    Ok((l.local_addr()?.port(), l))
                });
                match bound {
                    Ok((port, listener)) => {
                        let admits = Admits {
                            client: peer,
                            fxp_peers,
                        };
                        self.passive = Some((listener, admits));
                        Did::PassiveListening(Ok(port))
                    }
                    Err(e) => Did::PassiveListening(Err(e.to_string())),
                }
            }
            other => return self.instruct(env, registry, action.id, other),
        };
        self.session
            .handle_outcome(Instant::now(), Outcome::new(action.id, outcome));
    }

    /// The actions without an outcome of their own (a transfer's come from its task).
    fn instruct(&mut self, env: &mut Env, registry: &Registry, id: ActionId, kind: Do) {
        match kind {
            Do::Transfer(plan) => {
                let passive = match plan.data {
                    DataEndpoint::Passive => self.passive.take(),
                    DataEndpoint::Active(_) => None,
                };
                let t = Transfer::new(id, plan, passive, &self.cx(env, registry));
                self.transfer = Some(Box::new(t));
            }
            Do::Checksum {
                path,
                algorithm,
                start,
                end,
            } => {
                let task = ChecksumTask::new(id, path, algorithm, start, end);
                self.checksum = Some(Box::new(task));
            }
            Do::AbortTransfer { transfer } => {
                if let Some(t) = self.transfer.as_mut().filter(|t| t.id == transfer) {
                    t.stop(TransferError::Aborted);
                }
                if let Some(c) = self.checksum.as_mut().filter(|c| c.id() == transfer) {
                    c.stop(Interrupt::Abort);
                }
            }
            Do::ClosePassive => self.passive = None,
            Do::StartTls => {
                // The 234 goes out first; then `flush` starts TLS and `read_control` runs it.
                self.tls = env.tls.as_ref().map(|ctx| ctx.control(self.peer.ip()));
                let until = Instant::now() + TLS_HANDSHAKE_TIMEOUT;
                let login = self.session.login_deadline();
                self.handshake = Some((id, login.map_or(until, |l| l.min(until))));
            }
            Do::StopTls => {
                // Back to the clear after CCC or REIN is left out (see main.rs): the reply is
                // out, and the connection closes as after `Close` (the contract allows it).
                info!("session {}: TLS cannot end here; closing", self.n);
                self.closing = Some(Instant::now() + CLOSE_GRACE);
                self.stop_transfer(env, registry);
            }
            Do::LoginEnded => {
                self.login = None; // its count goes back
                if let Some(tls) = &self.tls {
                    tls.logged_out();
                }
                (self.storage, self.user) = (None, None);
            }
            Do::Notify(e) => {
                let path = e.path.map_or_else(|| "-".into(), |p| p.to_string());
                let user = e.user.as_deref().unwrap_or("-");
                info!(
                    "session {} event {} user={user} path={path}",
                    self.n,
                    e.kind.as_str()
                );
            }
            other => {
                warn!("session {}: cannot carry out {other:?}; closing", self.n);
                self.gone = true;
            }
        }
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
        // Counted among the logins held now, for the core's login limits.
        let (slot, held) = env
            .logins
            .count(&account.name, self.peer.ip(), account.anonymous);
        (self.login, account.sessions) = (Some(slot), held);
        if let Some(tls) = &self.tls {
            tls.logged_in(&account.name);
        }
        info!(
            "session {} login user={} peer={}",
            self.n, account.name, self.peer
        );
        self.storage = Some(fs);
        self.user = Some(account.name.clone());
        Ok(account)
    }

    /// The session is over: a running transfer or checksum stops and reports its end (an
    /// upload is then not put in place).
    fn stop_transfer(&mut self, env: &mut Env, registry: &Registry) {
        if let Some(t) = self.transfer.as_mut() {
            t.stop(TransferError::ConnectionLost(Lost::ControlClosed));
            self.step_transfer(env, registry);
        }
        if let Some(c) = self.checksum.as_mut() {
            c.stop(Interrupt::Close);
            self.step_checksum(env, registry);
        }
    }

    /// After `Close`: the last replies (then TLS close_notify) go out, the write side is shut,
    /// and what the client still sends is read and dropped until it closes or time is up,
    /// so that a reset does not destroy the last reply.
    fn linger(&mut self, env: &mut Env, registry: &Registry, until: Instant) -> Drive {
        let now = Instant::now();
        if !self.shut {
            let _ = self.flush();
            if !self.out.is_empty() && !self.gone && now < until {
                return Drive::Wait;
            }
            if self.ctrl.tls.as_ref().is_some_and(|t| !t.is_handshaking()) {
                self.ctrl.close_notify();
                let _ = self.ctrl.flush_tls();
            }
            let _ = self.ctrl.tcp.shutdown(Shutdown::Write);
            self.shut = true;
        }
        for _ in 0..16 {
            match self.ctrl.tcp.read(&mut self.buf) {
                Ok(n) if n > 0 => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && now < until => {
                    return Drive::Wait
                }
                _ => break,
            }
        }
        self.end(env, registry)
    }

    /// The connection is over (rule 4): a running transfer stops and reports its end, then
    /// the session hears of the disconnect, and what that brings (the logout event, the end
    /// of the login) is carried out. Replies have nowhere to go any more.
    fn end(&mut self, env: &mut Env, registry: &Registry) -> Drive {
        self.closing = Some(Instant::now()); // `drain` writes nothing from now on
        self.stop_transfer(env, registry);
        self.session.handle_disconnect(Instant::now());
        while let Some(output) = self.session.poll_output() {
            match output {
                Output::Action(a) if matches!(a.kind, Do::Notify(_) | Do::LoginEnded) => {
                    self.act(env, registry, a)
                }
                _ => {}
            }
        }
        info!("session {} end peer={}", self.n, self.peer);
        Drive::Remove
    }
}
