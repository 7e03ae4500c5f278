//! The listeners and the worker pool.
//!
//! Every connection is served by one worker thread, and the workers take turns at the door
//! (the leader/followers pattern): one of them, the leader, waits on every listening socket
//! with one mio `Poll` and accepts; when it has a connection it may serve, it passes the door
//! to an idle worker (or starts a new one, or leaves it for the next worker that finishes)
//! and serves that connection itself. So a connection is greeted by the thread that accepted
//! it, without a hand-off, and no single acceptor thread has to win the CPU for every
//! connection: when the machine is saturated, a dedicated acceptor (one thread among hundreds
//! that all get a fair share) fell behind, and connections waited for it in bursts of tens of
//! milliseconds.
//!
//! Workers are started lazily with a small stack ([`WORKER_STACK`]), at most
//! `max_connections` + 1 (those serving, and the leader), and are reused: an idle worker
//! waits [`WORKER_IDLE`] for its turn at the door, then ends. A connection beyond
//! `max_connections`, or beyond `max_connections_per_ip` from one address, gets `421 Too
//! many connections (N); try again later.` from the leader and is closed at once; nothing is
//! queued (on an implicit-TLS listener, where a clear-text reply cannot be read, it is closed
//! without one).
//!
//! Implicit-TLS listeners (`implicit_listen`) are polled with the others; their connections
//! are marked so that the worker runs the TLS handshake before the session starts.
//!
//! Before a connection takes a slot, the leader refuses (`421`, then close) an address the
//! server-wide IP filter (`ip_allow` / `ip_deny`) keeps out, and an address banned after too
//! many failed logins (`ban_after_failures` within `ban_window_secs` bans it for
//! `ban_duration_secs`), so neither ever takes a worker.
//!
//! The user store is reloaded by [`watch_store`] when its file changes or on SIGHUP; a bad
//! file is logged and the old accounts stay. What sessions share is [`crate::shared`]; the
//! counts behind the limits and the bans are [`crate::logins`].

use log::{error, info, warn};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wharf_core::addr::canonical_ip;

use crate::conn::Connection;
use crate::logins::ConnectionSlot;
use crate::reload::{Trigger, WatchOptions, Watcher};
use crate::store::StoreData;

/// Where conn.rs and cli.rs name them; they live in [`crate::shared`] and [`crate::logins`],
/// which do not import the connection (the server does).
pub use crate::logins::LoginSlot;
pub use crate::shared::Shared;

/// The listen backlog asked for: connections the kernel completes and queues before the
/// acceptor takes them. A burst of clients (200 connecting at once) must fit: a full queue
/// drops SYNs, and the client retries only after a second. The kernel caps it at
/// `net.core.somaxconn` (4096 since Linux 5.4).
pub const LISTEN_BACKLOG: i32 = 4096;
/// Below this `net.core.somaxconn` the server warns at start.
const SMALL_SOMAXCONN: i32 = 1024;
/// Stack size of a worker thread.
pub const WORKER_STACK: usize = 256 * 1024;
/// How long an idle worker waits for its turn at the door before it ends.
pub const WORKER_IDLE: Duration = Duration::from_secs(60);
/// Connections the leader accepts from one listener in a row before it looks at the others
/// (the rest wait, accepted, for the next leaders).
const ACCEPT_BATCH: usize = 16;
/// After a failed accept (out of descriptors...), how soon the leader tries again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// How often [`watch_store`] looks at the user store file.
pub const STORE_POLL: Duration = Duration::from_secs(2);
/// The reply to a connection from an address the server-wide IP filter keeps out.
pub const REFUSED_ADDRESS: &str = "421 Connection refused: your address is not allowed here.";
/// The reply to a connection from a banned address.
pub const REFUSED_BANNED: &str = "421 Too many failed logins from your address; try again later.";

struct Job {
    stream: TcpStream,
    peer: SocketAddr,
    /// Accepted on an implicit-TLS listener.
    implicit: bool,
    slot: ConnectionSlot,
}

/// One listening socket.
struct Listener {
    socket: TcpListener,
    /// The handshake comes first (implicit TLS).
    implicit: bool,
}

/// A bound server, ready to run.
pub struct Server {
    shared: Arc<Shared>,
    listeners: Vec<Listener>,
}

impl Server {
    /// Binds every listen address of the settings, and the implicit-TLS ones when TLS is on.
    pub fn bind(shared: Shared) -> Result<Server, String> {
        let mut listeners = Vec::new();
        let implicit: &[SocketAddr] = if shared.tls.is_some() {
            &shared.settings.implicit_listen
        } else {
            &[]
        };
        let plain = shared.settings.listen.iter().map(|a| (a, false));
        for (addr, implicit) in plain.chain(implicit.iter().map(|a| (a, true))) {
            let l = listen(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            listeners.push(Listener {
                socket: l,
                implicit,
            });
        }
        warn_small_somaxconn();
        Ok(Server {
            shared: Arc::new(shared),
            listeners,
        })
    }

    /// The addresses of the plain (explicit-TLS capable) listeners actually bound (real ports
    /// when port 0 was asked for).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs(false)
    }

    /// The addresses of the implicit-TLS listeners actually bound.
    pub fn implicit_addrs(&self) -> Vec<SocketAddr> {
        self.addrs(true)
    }

    fn addrs(&self, implicit: bool) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter(|l| l.implicit == implicit)
            .filter_map(|l| l.socket.local_addr().ok())
            .collect()
    }

    /// The state shared by the sessions.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Accepts and serves connections until an unrecoverable error (the poll failing, no
    /// thread to start the first worker on).
    pub fn run(self) -> io::Result<()> {
        let door = Door::new(self.listeners)?;
        let (fatal, failed) = std::sync::mpsc::channel();
        let pool = Arc::new(Pool::new(self.shared, fatal, WORKER_IDLE));
        pool.pass_on(door);
        if pool.threads() == 0 {
            return Err(io::Error::other("cannot start a worker thread"));
        }
        // Every worker holds a sender: the channel stays open while the pool exists.
        failed
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("the worker pool is gone")))
    }
}

/// A connection as accepted, before the limits are checked.
struct Accepted {
    stream: TcpStream,
    peer: SocketAddr,
    /// Accepted on an implicit-TLS listener.
    implicit: bool,
}

impl Shared {
    /// Checks a new connection against the IP filter, the bans and the connection limits:
    /// a job to serve, or None when it was refused (`421`, closed, logged).
    fn admit_connection(self: &Arc<Self>, a: Accepted) -> Option<Job> {
        let Accepted {
            stream,
            peer,
            implicit,
        } = a;
        let ip = canonical_ip(peer.ip());
        if !self.core().ip_filter.permits(ip) {
            info!("connection from {peer} refused: not allowed by ip_allow/ip_deny");
            refuse_with(stream, REFUSED_ADDRESS, implicit);
            return None;
        }
        if let Some(left) = self.banned_for(ip) {
            info!(
                "connection from {peer} refused: banned after failed logins ({} s left)",
                left.as_secs()
            );
            refuse_with(stream, REFUSED_BANNED, implicit);
            return None;
        }
        match self.admit(ip) {
            Ok(slot) => Some(Job {
                stream,
                peer,
                implicit,
                slot,
            }),
            Err(limit) => {
                info!("connection from {peer} refused: too many connections (limit {limit})");
                refuse(stream, limit, implicit);
                None
            }
        }
    }
}

/// The door: every listening socket, polled and accepted from by whichever worker leads.
struct Door {
    poll: Poll,
    events: Events,
    listeners: Vec<Listener>,
    /// Listeners that may have connections waiting (their readiness is edge-triggered: it
    /// is reported once, and stays until `accept` says `WouldBlock`).
    ready: Vec<bool>,
    /// Connections accepted and not yet taken, oldest first.
    accepted: VecDeque<Accepted>,
    /// An accept failed (out of descriptors...): wait at most [`ACCEPT_RETRY`], then try
    /// every listener again, even without a new event.
    retry: bool,
}

impl Door {
    fn new(listeners: Vec<Listener>) -> io::Result<Door> {
        let poll = Poll::new()?;
        for (i, l) in listeners.iter().enumerate() {
            poll.registry().register(
                &mut SourceFd(&l.socket.as_raw_fd()),
                Token(i),
                Interest::READABLE,
            )?;
        }
        Ok(Door {
            poll,
            events: Events::with_capacity(64),
            ready: vec![false; listeners.len()],
            listeners,
            accepted: VecDeque::new(),
            retry: false,
        })
    }

    /// The next connection: one accepted already, else one from a listener that may have
    /// more, else one after waiting for a listener to be ready. Errors only when the poll
    /// itself fails.
    fn next(&mut self) -> io::Result<Accepted> {
        loop {
            if let Some(a) = self.accepted.pop_front() {
                return Ok(a);
            }
            if !self.ready.contains(&true) {
                let timeout = self.retry.then_some(ACCEPT_RETRY);
                match self.poll.poll(&mut self.events, timeout) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
                for event in self.events.iter() {
                    if let Some(r) = self.ready.get_mut(event.token().0) {
                        *r = true;
                    }
                }
                if std::mem::take(&mut self.retry) {
                    self.ready.fill(true);
                }
            }
            self.accept_ready();
        }
    }

    /// Accepts up to [`ACCEPT_BATCH`] connections from each listener that may have some.
    fn accept_ready(&mut self) {
        for (listener, ready) in self.listeners.iter().zip(self.ready.iter_mut()) {
            if !*ready {
                continue;
            }
            for _ in 0..ACCEPT_BATCH {
                match listener.socket.accept() {
                    Ok((stream, peer)) => self.accepted.push_back(Accepted {
                        stream,
                        peer,
                        implicit: listener.implicit,
                    }),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        *ready = false;
                        break;
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                        ) => {}
                    Err(e) => {
                        // Out of file descriptors and the like: try again shortly.
                        error!("accept failed: {e}");
                        *ready = false;
                        self.retry = true;
                        break;
                    }
                }
            }
        }
    }
}

/// A non-blocking listening socket on `addr` with a [`LISTEN_BACKLOG`] queue (std's
/// `TcpListener::bind` asks for 128) and `SO_REUSEADDR`, as std sets it.
fn listen(addr: &SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(*addr),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&(*addr).into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Where Linux keeps the cap on every listen backlog.
const SOMAXCONN_FILE: &str = "/proc/sys/net/core/somaxconn";

/// Logs a warning when the kernel caps listen backlogs far below [`LISTEN_BACKLOG`] (a burst
/// of connections then overflows the queue and waits for SYN retransmits, a second or more).
fn warn_small_somaxconn() {
    let Ok(text) = std::fs::read_to_string(SOMAXCONN_FILE) else {
        return;
    };
    if let Ok(n) = text.trim().parse::<i32>() {
        if n < SMALL_SOMAXCONN {
            warn!(
                "{SOMAXCONN_FILE} is {n}: the kernel shortens the listen queue to that, and a \
                 burst of more connections waits a second or more for retransmits; raise it \
                 (sysctl -w net.core.somaxconn={LISTEN_BACKLOG})"
            );
        }
    }
}

/// Tells a connection it cannot be served, without waiting on it. On an implicit-TLS
/// listener the client expects a handshake, not text: the connection is just closed.
fn refuse(stream: TcpStream, limit: usize, implicit: bool) {
    refuse_with(
        stream,
        &format!("421 Too many connections ({limit}); try again later."),
        implicit,
    );
}

/// Writes `reply` (without waiting) and closes; on an implicit-TLS listener just closes.
fn refuse_with(mut stream: TcpStream, reply: &str, implicit: bool) {
    if implicit {
        return;
    }
    let _ = stream.set_nonblocking(true);
    let _ = stream.write_all(format!("{reply}\r\n").as_bytes());
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads the user store file again and, if it is good, puts its accounts in place of
/// the old ones (creating new partners' folders). Returns the number of accounts, or
/// every problem (file, key, reason); on error the old accounts stay.
pub fn reload_store(shared: &Shared) -> Result<usize, Vec<String>> {
    let s = &shared.settings;
    let data = if s.users_file.exists() {
        crate::store::load(&s.users_file, &s.partners_root)
            .map_err(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>())?
    } else if s.users_file_explicit {
        // A store that was named and is gone is more likely a mistake than the wish to
        // lock everybody out.
        return Err(vec![format!(
            "{}: the user store is missing",
            s.users_file.display()
        )]);
    } else {
        StoreData::default()
    };
    let problems = crate::storage::make_partner_trees(&data.partners);
    for p in &problems {
        warn!("{p}");
    }
    Ok(shared.replace_store(data))
}

/// Watches the user store file: looks at it every [`STORE_POLL`] (mtime, size, inode) and on
/// SIGHUP, and reloads it when it changed ([`reload_store`]). A bad file is logged
/// with every problem; the old accounts stay until the file is good again. Dropping the
/// watcher stops it: keep it for the server's whole life.
pub fn watch_store(shared: Arc<Shared>) -> io::Result<Watcher> {
    let path = shared.settings.users_file.clone();
    let options = WatchOptions {
        interval: STORE_POLL,
        sighup: true,
    };
    Watcher::spawn(
        "wharf-store-watch",
        vec![path.clone()],
        options,
        move |why| match reload_store(&shared) {
            Ok(n) => info!(
                "user store {} reloaded{}: {n} account(s)",
                path.display(),
                if why == Trigger::Signal {
                    " (SIGHUP)"
                } else {
                    ""
                }
            ),
            Err(problems) => {
                error!(
                    "user store {} not reloaded; the accounts stay as they were:",
                    path.display()
                );
                for p in problems {
                    error!("  {p}");
                }
            }
        },
    )
}

/// The worker threads: one leads (holds the [`Door`]), some serve, the others wait for
/// their turn to lead.
struct Pool {
    shared: Arc<Shared>,
    state: Mutex<PoolState>,
    /// At most this many threads: `max_connections` serving, and one leading.
    max_threads: usize,
    /// How long a worker waits for its turn before it ends ([`WORKER_IDLE`]).
    idle: Duration,
    /// Where a worker reports an error the server cannot go on after.
    fatal: Mutex<std::sync::mpsc::Sender<io::Result<()>>>,
}

#[derive(Default)]
struct PoolState {
    /// The door, when no worker holds it (none was free to take it over): the next worker to
    /// finish a connection leads.
    door: Option<Door>,
    /// Workers waiting for their turn, the most recently idle last.
    idle: Vec<Arc<Follower>>,
    /// Workers alive.
    threads: usize,
}

/// A worker waiting for its turn at the door.
struct Follower {
    thread: std::thread::Thread,
    /// The door, once it is passed to this worker.
    door: Mutex<Option<Door>>,
}

impl Pool {
    fn new(
        shared: Arc<Shared>,
        fatal: std::sync::mpsc::Sender<io::Result<()>>,
        idle: Duration,
    ) -> Pool {
        Pool {
            max_threads: shared.settings.max_connections.saturating_add(1),
            idle,
            shared,
            state: Mutex::new(PoolState::default()),
            fatal: Mutex::new(fatal),
        }
    }

    fn threads(&self) -> usize {
        lock(&self.state).threads
    }

    /// A worker's life: lead until a connection is admitted, pass the door on, serve the
    /// connection, wait for the next turn; end after [`WORKER_IDLE`] without one.
    fn work(self: &Arc<Self>, mut door: Option<Door>) {
        loop {
            let mut d = match door.take() {
                Some(d) => d,
                None => match self.wait_turn() {
                    Some(d) => d,
                    None => return,
                },
            };
            // A panic here would lose the door: it ends the server, as an acceptor's would.
            let led = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.lead(&mut d)));
            match led {
                Ok(Ok(job)) => {
                    self.pass_on(d);
                    serve(&self.shared, job);
                }
                Ok(Err(e)) => return self.fail(e),
                Err(_) => {
                    return self.fail(io::Error::other("internal error (panic) while accepting"))
                }
            }
        }
    }

    /// Ends the server: no worker can accept any more.
    #[inline(never)]
    fn fail(&self, e: io::Error) {
        error!("waiting for connections failed: {e}");
        let _ = lock(&self.fatal).send(Err(e));
    }

    /// Accepts until a connection passes the IP filter, the bans and the limits (the others
    /// are refused on the spot); errors only when the poll fails.
    ///
    /// Out of line, like [`Pool::wait_turn`]: [`Pool::work`]'s frame stays under every
    /// session this worker serves, and a worker's stack keeps every page it touched.
    #[inline(never)]
    fn lead(&self, door: &mut Door) -> io::Result<Job> {
        loop {
            if let Some(job) = self.shared.admit_connection(door.next()?) {
                return Ok(job);
            }
        }
    }

    /// Gives the door to the worker that became idle last, or to a new worker, or, when the
    /// pool is at its bound, leaves it for the next worker to finish a connection.
    fn pass_on(self: &Arc<Self>, door: Door) {
        let mut st = lock(&self.state);
        if let Some(next) = st.idle.pop() {
            *lock(&next.door) = Some(door);
            drop(st);
            next.thread.unpark();
            return;
        }
        if st.threads >= self.max_threads {
            st.door = Some(door);
            return;
        }
        st.threads += 1;
        drop(st);
        // The door moves into the new thread; if the thread cannot start, it comes back.
        let handed = Arc::new(Mutex::new(Some(door)));
        let theirs = handed.clone();
        let pool = self.clone();
        let spawned = std::thread::Builder::new()
            .name("wharf-conn".into())
            .stack_size(WORKER_STACK)
            .spawn(move || {
                let door = lock(&theirs).take();
                drop(theirs);
                pool.work(door);
            });
        if let Err(e) = spawned {
            error!("cannot start a worker thread: {e}; connections wait for a free worker");
            let mut st = lock(&self.state);
            st.threads -= 1;
            if let Some(door) = lock(&handed).take() {
                st.door = Some(door);
            }
        }
    }

    /// Waits for this worker's turn at the door (bounded by the pool's idle time); None when
    /// the worker is to end (it has then left the pool).
    #[inline(never)]
    fn wait_turn(&self) -> Option<Door> {
        let me = Arc::new(Follower {
            thread: std::thread::current(),
            door: Mutex::new(None),
        });
        {
            let mut st = lock(&self.state);
            if let Some(door) = st.door.take() {
                return Some(door);
            }
            st.idle.push(me.clone());
        }
        let deadline = Instant::now() + self.idle;
        loop {
            if let Some(door) = lock(&me.door).take() {
                return Some(door);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                // Passing the door removes the follower from `idle` and fills its slot under
                // the state lock: under it, the two cannot cross.
                let mut st = lock(&self.state);
                if let Some(door) = lock(&me.door).take() {
                    return Some(door);
                }
                st.idle.retain(|f| !Arc::ptr_eq(f, &me));
                st.threads -= 1;
                return None;
            }
            std::thread::park_timeout(left);
        }
    }
}

/// Serves one connection on this worker; a panic ends the connection, not the worker.
fn serve(shared: &Shared, job: Job) {
    let Job {
        stream,
        peer,
        implicit,
        slot,
    } = job;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Connection::serve(shared, stream, peer, implicit);
    }));
    if r.is_err() {
        error!("session with {peer} ended by an internal error (panic)");
    }
    drop(slot);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::users::Users;

    fn shared(max: usize, per_ip: usize) -> Arc<Shared> {
        let s = Settings {
            max_connections: max,
            max_connections_per_ip: per_ip,
            ..Settings::default()
        };
        let users = Users::new(Default::default(), Vec::new(), None, Duration::ZERO).unwrap();
        Arc::new(Shared::new(s, users, None))
    }

    /// Connects and reads the first reply line (bounded).
    fn first_line(addr: SocketAddr) -> (TcpStream, String) {
        use std::io::Read;
        let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") && line.len() < 200 {
            match c.read(&mut byte) {
                Ok(1) => line.push(byte[0]),
                _ => break,
            }
        }
        (c, String::from_utf8_lossy(&line).into_owned())
    }

    /// Waits (bounded) until `cond` holds.
    fn eventually(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "never: {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn workers_take_turns_at_the_door_and_idle_ones_end() {
        let sh = shared(8, 0);
        let l = listen(&SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let addr = l.local_addr().unwrap();
        let door = Door::new(vec![Listener {
            socket: l,
            implicit: false,
        }])
        .unwrap();
        let (fatal, failed) = std::sync::mpsc::channel();
        let pool = Arc::new(Pool::new(sh.clone(), fatal, Duration::from_millis(300)));
        pool.pass_on(door);
        // Eight sessions at once, each greeted by its own worker; one more worker leads.
        let mut clients = Vec::new();
        for i in 0..8 {
            let (c, line) = first_line(addr);
            assert!(line.starts_with("220 "), "session {i}: {line:?}");
            clients.push(c);
        }
        eventually("8 sessions", || sh.active() == 8);
        assert_eq!(pool.threads(), 9);
        // The ninth is refused by the leader, at once.
        let (_c, line) = first_line(addr);
        assert_eq!(line, "421 Too many connections (8); try again later.\r\n");
        assert!(pool.threads() <= 9);
        // The clients go; their workers wait for a turn, then end, but for the leader.
        drop(clients);
        eventually("sessions over", || sh.active() == 0);
        eventually("idle workers gone", || pool.threads() == 1);
        // The door is still kept.
        let (_c, line) = first_line(addr);
        assert!(line.starts_with("220 "), "{line:?}");
        assert!(failed.try_recv().is_err(), "no fatal error");
    }

    #[test]
    fn the_listen_queue_holds_a_burst_of_connections() {
        // 300 clients connect before the server accepts any: all of them are queued (std's
        // backlog of 128 would drop the SYNs of the rest, which then time out here).
        let l = listen(&SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let addr = l.local_addr().unwrap();
        let cap = std::fs::read_to_string(SOMAXCONN_FILE)
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(usize::MAX);
        let n = 300.min(cap);
        let conns: Vec<TcpStream> = (0..n)
            .map(|i| {
                TcpStream::connect_timeout(&addr, Duration::from_secs(3))
                    .unwrap_or_else(|e| panic!("connection {i} of {n} not queued: {e}"))
            })
            .collect();
        // The listener is non-blocking and hands every queued connection over.
        let mut accepted = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while accepted < n && Instant::now() < deadline {
            match l.accept() {
                Ok(_) => accepted += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
        assert_eq!(accepted, n);
        drop(conns);
    }
}
