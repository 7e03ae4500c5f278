//! The connection driver: one control connection, one [`Session`], on one worker thread — the
//! loop of the core's documentation (core/src/lib.rs) made real, and nothing more.
//!
//! - Without a transfer: read the control connection with a timeout taken from
//!   [`Session::poll_timeout`], feed the bytes in, and drain the outputs (write replies as
//!   they come, carry out actions and report their outcomes, close on [`Output::Close`]).
//! - With a transfer ([`transfer::Transfer`], started by the core's `Transfer` action): step
//!   the task (each step blocks at most a slice), report what it reports (`TransferStarted`,
//!   then one `TransferEnded`), and between steps look at the control connection without
//!   waiting, feeding what arrives to the same `handle_input` and draining the same outputs
//!   (`STAT`, `NOOP`, `ABOR`: the core's `AbortTransfer` stops the task; `QUIT`). Nothing
//!   inside a step calls back into the session.
//!
//! It owns the session's resources: the control stream, the storage of the logged-in user,
//! the passive listener, the running transfer, and the control connection's TLS (whose
//! sessions its protected data connections resume). It must not decide protocol questions
//! (the core has) nor edit a reply.
//!
//! The pieces: [`actions`] (what the core asks besides transfers and TLS), [`control_tls`]
//! (AUTH, CCC/REIN, implicit TLS), [`transfer`] (the transfer task), [`data`] (passive
//! listeners, active connections), [`stream`] (control and data streams, plain or TLS).

mod actions;
pub mod checksum;
mod control_tls;
pub mod data;
pub mod stream;
pub mod transfer;

use log::{info, warn};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wharf_core::{ActionKind, Outcome, OutcomeKind, Output, Session};

use crate::shared::Shared;
use crate::storage::Storage;
use crate::tls::ControlTls;
use data::PassiveListener;
use stream::ControlStream;
use transfer::{Env, Interrupt, Step, Transfer, CONTROL_CHECK_INTERVAL};

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

/// What runs on a connection besides its commands, stepped by the loop: a transfer, or a
/// checksum (which the core treats like one: ABOR stops it, STAT shows its progress).
enum Task<'a> {
    Transfer(Box<Transfer<'a>>),
    Checksum(Box<checksum::ChecksumTask>),
}

impl Task<'_> {
    fn id(&self) -> wharf_core::ActionId {
        match self {
            Task::Transfer(t) => t.id(),
            Task::Checksum(c) => c.id(),
        }
    }

    fn bytes(&self) -> u64 {
        match self {
            Task::Transfer(t) => t.bytes(),
            Task::Checksum(c) => c.bytes(),
        }
    }

    fn stop(&mut self, why: Interrupt) {
        match self {
            Task::Transfer(t) => t.stop(why),
            Task::Checksum(c) => c.stop(why),
        }
    }

    fn is_upload(&self) -> bool {
        matches!(self, Task::Transfer(t) if t.is_upload())
    }
}

/// One control connection being served.
pub struct Connection<'a> {
    shared: &'a Shared,
    session: Session,
    ctrl: ControlStream,
    peer: SocketAddr,
    local: SocketAddr,
    id: u64,
    storage: Option<Box<dyn Storage>>,
    user: Option<String>,
    /// The login the server counts for this session (login limits); given back when the
    /// core ends the login (`LoginEnded`) or the connection goes.
    login_slot: Option<crate::logins::LoginSlot<'a>>,
    passive: Option<PassiveListener>,
    /// The transfer (or checksum) running, if any (on the heap: an idle session's memory is
    /// what it holds).
    task: Option<Task<'a>>,
    /// When the control connection was last looked at during a transfer.
    control_checked: Instant,
    /// An upload ended: what it replaced is freed after the next reply (its final one) is
    /// written ([`Storage::release_replaced`]).
    release_after_reply: bool,
    /// The TLS of this control connection (set by its handshake): protected data connections
    /// start from it, so that they can resume this client's sessions only.
    tls: Option<ControlTls>,
    /// The write timeout set on the control socket (so that it is set only when it changes).
    write_timeout: Duration,
    /// The control connection is unusable or the session is over.
    closing: bool,
    bytes_up: u64,
    bytes_down: u64,
    /// Records this session's events and statistics (see [`crate::events`]).
    tracker: crate::events::SessionTracker<'a>,
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
            control_tls::implicit_start(shared, tcp, id, peer, local, accepted)?
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
            task: None,
            control_checked: accepted,
            tls,
            write_timeout: CONTROL_WRITE_TIMEOUT,
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
                match self.task.as_mut() {
                    // The session is over (or its connection broke): the transfer stops, and
                    // ends (an upload not put in place) before the connection goes.
                    Some(t) => {
                        t.stop(Interrupt::Close);
                        self.closing = true;
                    }
                    None => return "closed by the server".into(),
                }
            }
            if self.task.is_some() {
                self.step_transfer();
                continue;
            }
            if let Some(why) = self.read_control() {
                return why;
            }
        }
    }

    /// Without a transfer: waits for the control connection as long as the session says,
    /// and feeds it what arrives (or the timeout). `Some(why)` when the connection is over.
    fn read_control(&mut self) -> Option<String> {
        let now = Instant::now();
        let wait = match self.session.poll_timeout() {
            Some(t) => t.saturating_duration_since(now),
            // Not expected while no action is outstanding; wake up now and then anyway.
            None => self.shared.settings.core.idle_timeout,
        };
        let wait = wait.max(Duration::from_millis(1));
        if !self
            .read_timeout
            .is_some_and(|set| read_timeout_close_enough(set, wait))
        {
            if let Err(e) = self.ctrl.tcp().set_read_timeout(Some(wait)) {
                return Some(format!("control connection error: {e}"));
            }
            self.read_timeout = Some(wait);
        }
        match self.ctrl.read(&mut self.buf) {
            Ok(0) => Some("closed by the client".into()),
            Ok(n) => {
                self.tracker.command_received();
                self.session.handle_input(Instant::now(), &self.buf[..n]);
                None
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                self.session.handle_timeout(Instant::now());
                None
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => None,
            Err(e) => Some(format!("control connection error: {e}")),
        }
    }

    /// Drains the session's outputs; false when the connection must close.
    fn drain(&mut self) -> bool {
        // Bounded: the session queues a few outputs per input or outcome.
        loop {
            if self.closing {
                return false;
            }
            let Some(out) = self.session.poll_output() else {
                return true;
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
                        self.closing = true;
                        return false;
                    }
                }
                Output::Action(a) => self.run_action(a),
                Output::Close => {
                    let _ = self.ctrl.flush();
                    self.closing = true;
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

    /// One step of the running transfer, and what it asks: a report to the session, a look
    /// at the control connection, or the end. Out of line: a session that never transfers
    /// keeps none of its stack pages.
    #[inline(never)]
    fn step_transfer(&mut self) {
        let Some(mut task) = self.task.take() else {
            return;
        };
        let step = match &mut task {
            Task::Transfer(t) => {
                let env = Env {
                    shared: self.shared,
                    storage: self.storage.as_deref(),
                    control_tls: self.tls.as_ref(),
                    user: self.user.as_deref(),
                    peer: self.peer.ip(),
                    local: self.local.ip(),
                    session: self.id,
                };
                t.step(&env)
            }
            Task::Checksum(c) => c.step(self.storage.as_deref()),
        };
        let id = task.id();
        match step {
            Step::Continue { idle } => {
                self.task = Some(task);
                if idle || self.control_checked.elapsed() >= CONTROL_CHECK_INTERVAL {
                    self.look_at_control();
                }
            }
            Step::Checkpoint => {
                self.task = Some(task);
                self.look_at_control();
            }
            Step::Report(kind) => {
                self.task = Some(task);
                self.session
                    .handle_outcome(Instant::now(), Outcome::new(id, kind));
            }
            Step::Ended(kind) => {
                if let OutcomeKind::TransferEnded { bytes, .. } = &kind {
                    if task.is_upload() {
                        self.bytes_up += bytes;
                        self.release_after_reply = true;
                    } else {
                        self.bytes_down += bytes;
                    }
                }
                self.session
                    .handle_outcome(Instant::now(), Outcome::new(id, kind));
            }
        }
    }

    /// During a transfer: reads whatever the control connection has without waiting and
    /// feeds it to the session (after reporting the transfer's progress, which STAT shows);
    /// the loop then drains what the session answers. A control connection that has gone
    /// stops the transfer: nobody is left to receive its result.
    fn look_at_control(&mut self) {
        self.control_checked = Instant::now();
        if self.closing {
            return;
        }
        // Bounded: the session closes a connection that sends more than it may buffer.
        for _ in 0..64 {
            match self.ctrl.read_now(&mut self.buf) {
                Ok(None) => return,
                Ok(Some(0)) | Err(_) => {
                    self.closing = true;
                    if let Some(t) = self.task.as_mut() {
                        t.stop(Interrupt::Close);
                    }
                    return;
                }
                Ok(Some(n)) => {
                    self.tracker.command_received();
                    let now = Instant::now();
                    if let Some(t) = &self.task {
                        let progress = OutcomeKind::TransferProgress { bytes: t.bytes() };
                        self.session
                            .handle_outcome(now, Outcome::new(t.id(), progress));
                    }
                    self.session.handle_input(now, &self.buf[..n]);
                    if !self.drain() {
                        return;
                    }
                }
            }
        }
    }

    /// After the session loop: a transfer still running is stopped and run to its end (an
    /// upload is then not put in place), then the session is told the connection is gone and
    /// what that brings (the logout event, the end of the login) is recorded, so that a
    /// connection that simply drops still has its events. Replies and other actions have
    /// nowhere to go any more and are dropped.
    #[inline(never)]
    fn end_session(&mut self) {
        if let Some(t) = self.task.as_mut() {
            t.stop(Interrupt::Close);
        }
        // Bounded: a stopped transfer ends at its next step.
        for _ in 0..16 {
            if self.task.is_none() {
                break;
            }
            self.step_transfer();
        }
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
