//! The acceptor and the worker pool.
//!
//! One thread (the caller of [`Server::run`]) waits on every listening socket with one mio
//! `Poll` and hands each accepted connection to a worker thread over a crossbeam channel.
//! Workers are started lazily, up to `max_connections`, with a small stack
//! ([`WORKER_STACK`]), and are reused: an idle worker waits [`WORKER_IDLE`] for the next
//! connection, then ends. A connection beyond `max_connections`, or beyond
//! `max_connections_per_ip` from one address, gets `421 Too many connections (N); try again
//! later.` and is closed at once; nothing is queued (on an implicit-TLS listener, where a
//! clear-text reply cannot be read, it is closed without one).
//!
//! Implicit-TLS listeners (`implicit_listen`) are polled with the others; their connections
//! are marked so that the worker runs the TLS handshake before the session starts.
//!
//! Before a connection takes a slot, the acceptor refuses (`421`, then close) an address the
//! server-wide IP filter (`ip_allow` / `ip_deny`) keeps out, and an address banned after too
//! many failed logins (`ban_after_failures` within `ban_window_secs` bans it for
//! `ban_duration_secs`), so neither ever takes a worker.
//!
//! [`Shared`] also holds what sessions share about logins: the user store (reloaded by
//! [`watch_store`] when its file changes or on SIGHUP; a bad file is logged and the old
//! accounts stay), the count of logged-in sessions (total, anonymous, per address, per user,
//! per user and address) that the core's login limits are checked against, and the ban table.

use crossbeam_channel::{bounded, Receiver, SendTimeoutError, Sender, TrySendError};
use log::{error, info, warn};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use wharf_core::action::LoginCounts;
use wharf_core::addr::canonical_ip;
use wharf_core::policy::BanList;

use crate::config::Settings;
use crate::conn::Connection;
use crate::tls::TlsContext;
use crate::users::Users;

/// The listen backlog asked for: connections the kernel completes and queues before the
/// acceptor takes them. A burst of clients (200 connecting at once) must fit: a full queue
/// drops SYNs, and the client retries only after a second. The kernel caps it at
/// `net.core.somaxconn` (4096 since Linux 5.4).
pub const LISTEN_BACKLOG: i32 = 4096;
/// Below this `net.core.somaxconn` the server warns at start.
const SMALL_SOMAXCONN: i32 = 1024;
/// Stack size of a worker thread.
pub const WORKER_STACK: usize = 256 * 1024;
/// How long an idle worker waits for another connection before it ends.
pub const WORKER_IDLE: Duration = Duration::from_secs(60);
/// How often [`watch_store`] looks at the user store file.
pub const STORE_POLL: Duration = Duration::from_secs(2);
/// The most addresses the ban table remembers.
pub const MAX_BAN_ENTRIES: usize = 65_536;
/// The reply to a connection from an address the server-wide IP filter keeps out.
pub const REFUSED_ADDRESS: &str = "421 Connection refused: your address is not allowed here.";
/// The reply to a connection from a banned address.
pub const REFUSED_BANNED: &str = "421 Too many failed logins from your address; try again later.";

/// What every session of the server shares.
#[derive(Debug)]
pub struct Shared {
    /// The configuration.
    pub settings: Settings,
    /// The core's part of it, with the users' own TLS requirements (replaced on reload).
    core: parking_lot::RwLock<Arc<wharf_core::Config>>,
    /// The accounts.
    pub users: Users,
    /// The certificate and TLS policy, when FTPS is on.
    pub tls: Option<TlsContext>,
    /// Where events go (events file, event command, transfer log) and the live statistics;
    /// statistics only until [`crate::events::EventHub::open`]'s is put here.
    pub events: crate::events::EventHub,
    active: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    logins: Mutex<LoginTable>,
    bans: Mutex<BanList>,
}

impl Shared {
    /// Shared state for a server with these settings and users, offering FTPS when `tls` is
    /// given. The core's configuration gets the TLS policies of the settings and the users'
    /// own TLS requirements.
    pub fn new(settings: Settings, users: Users, tls: Option<TlsContext>) -> Shared {
        let mut core = settings.core_config();
        {
            let c = Arc::make_mut(&mut core);
            c.tls_available = tls.is_some();
            c.tls_overrides = users.get().tls_overrides();
        }
        let bans = BanList::new(
            settings.ban_after_failures,
            settings.ban_window,
            settings.ban_duration,
            MAX_BAN_ENTRIES,
        );
        Shared {
            core: parking_lot::RwLock::new(core),
            settings,
            users,
            tls,
            events: crate::events::EventHub::default(),
            active: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            logins: Mutex::new(LoginTable::default()),
            bans: Mutex::new(bans),
        }
    }

    /// The core's configuration as it is now (a new session takes it).
    pub fn core(&self) -> Arc<wharf_core::Config> {
        self.core.read().clone()
    }

    /// Reads the user store file again and, if it is good, puts its accounts in place of
    /// the old ones (creating new partners' folders). Returns the number of accounts, or
    /// every problem (file, key, reason); on error the old accounts stay.
    pub fn reload_store(&self) -> Result<usize, Vec<String>> {
        let s = &self.settings;
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
            crate::store::StoreData::default()
        };
        let problems = crate::storage::make_partner_trees(&data.partners);
        for p in &problems {
            warn!("{p}");
        }
        let store = self.users.replace(data);
        let overrides = store.tls_overrides();
        let mut core = self.core.write();
        if core.tls_overrides != overrides {
            Arc::make_mut(&mut core).tls_overrides = overrides;
        }
        Ok(store.len())
    }

    /// Counts a new login of `user` (`anonymous` for the anonymous login) from `ip`; the
    /// counts include it. The slot gives the login back when dropped.
    pub fn count_login(
        &self,
        user: &str,
        ip: IpAddr,
        anonymous: bool,
    ) -> (LoginSlot<'_>, LoginCounts) {
        let ip = canonical_ip(ip);
        let counts = lock(&self.logins).acquire(user, ip, anonymous);
        (
            LoginSlot {
                shared: self,
                user: user.to_owned(),
                ip,
                anonymous,
            },
            counts,
        )
    }

    /// A failed login from `ip` (wrong password, unknown or disabled user). Returns true
    /// when it starts a ban.
    pub fn login_failed(&self, ip: IpAddr) -> bool {
        lock(&self.bans).record_failure(ip, Instant::now())
    }

    /// A successful login from `ip`: its count of failures starts again.
    pub fn login_succeeded(&self, ip: IpAddr) {
        lock(&self.bans).record_success(ip);
    }

    /// How much longer `ip` stays banned, if it is.
    pub fn banned_for(&self, ip: IpAddr) -> Option<Duration> {
        lock(&self.bans).banned_for(ip, Instant::now())
    }

    /// Connections being served now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Takes a connection slot for `ip`, or returns the limit that was hit.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, usize> {
        let max = self.settings.max_connections;
        if self
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_err()
        {
            return Err(max);
        }
        let per_ip = self.settings.max_connections_per_ip;
        // Without a per-address limit (the default) nothing needs the per-address count:
        // no lock to take at every connect and disconnect.
        if per_ip > 0 {
            let mut map = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            let n = map.entry(ip).or_insert(0);
            if *n >= per_ip {
                drop(map);
                self.active.fetch_sub(1, Ordering::AcqRel);
                return Err(per_ip);
            }
            *n += 1;
        }
        Ok(Slot {
            shared: self.clone(),
            ip: (per_ip > 0).then_some(ip),
        })
    }

    /// Connections being served now from `ip`, as counted for `max_connections_per_ip`
    /// (0 when there is no such limit: then they are not counted).
    pub fn active_from(&self, ip: IpAddr) -> usize {
        let map = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&ip).copied().unwrap_or(0)
    }
}

/// A connection's place in the limits; given back when dropped.
struct Slot {
    shared: Arc<Shared>,
    /// The address it counts against, when there is a per-address limit.
    ip: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            let mut map = self.shared.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = map.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&ip);
                }
            }
        }
        self.shared.active.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Job {
    stream: TcpStream,
    peer: SocketAddr,
    /// Accepted on an implicit-TLS listener.
    implicit: bool,
    slot: Slot,
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

    /// Accepts connections forever (until an unrecoverable error).
    pub fn run(self) -> io::Result<()> {
        let mut poll = Poll::new()?;
        for (i, l) in self.listeners.iter().enumerate() {
            poll.registry().register(
                &mut SourceFd(&l.socket.as_raw_fd()),
                Token(i),
                Interest::READABLE,
            )?;
        }
        let pool = Pool::new(self.shared.clone());
        let mut events = Events::with_capacity(64);
        let mut retry = false;
        loop {
            let timeout = retry.then_some(Duration::from_millis(100));
            match poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            retry = false;
            // Edge-triggered: accept on every listener until its backlog is empty.
            for listener in &self.listeners {
                loop {
                    match listener.socket.accept() {
                        Ok((stream, peer)) => self.dispatch(&pool, stream, peer, listener.implicit),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                            ) => {}
                        Err(e) => {
                            // Out of file descriptors and the like: try again shortly, even
                            // without a new event.
                            error!("accept failed: {e}");
                            retry = true;
                            break;
                        }
                    }
                }
            }
        }
    }

    fn dispatch(&self, pool: &Pool, stream: TcpStream, peer: SocketAddr, implicit: bool) {
        let ip = canonical_ip(peer.ip());
        if !self.shared.core().ip_filter.permits(ip) {
            info!("connection from {peer} refused: not allowed by ip_allow/ip_deny");
            refuse_with(stream, REFUSED_ADDRESS, implicit);
            return;
        }
        if let Some(left) = self.shared.banned_for(ip) {
            info!(
                "connection from {peer} refused: banned after failed logins ({} s left)",
                left.as_secs()
            );
            refuse_with(stream, REFUSED_BANNED, implicit);
            return;
        }
        match self.shared.admit(ip) {
            Ok(slot) => {
                let job = Job {
                    stream,
                    peer,
                    implicit,
                    slot,
                };
                if let Err(job) = pool.run(job) {
                    warn!("no worker thread for {peer}; refused");
                    refuse(job.stream, self.shared.settings.max_connections, implicit);
                }
            }
            Err(limit) => {
                info!("connection from {peer} refused: too many connections (limit {limit})");
                refuse(stream, limit, implicit);
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

/// Logged-in sessions, counted for the login limits.
#[derive(Debug, Default)]
struct LoginTable {
    total: u32,
    anonymous: u32,
    per_ip: HashMap<IpAddr, u32>,
    per_user: HashMap<String, u32>,
    per_user_ip: HashMap<(String, IpAddr), u32>,
}

impl LoginTable {
    fn counts(&self, user: &str, ip: IpAddr) -> LoginCounts {
        LoginCounts {
            total: self.total,
            anonymous: self.anonymous,
            from_ip: self.per_ip.get(&ip).copied().unwrap_or(0),
            user: self.per_user.get(user).copied().unwrap_or(0),
            user_from_ip: self
                .per_user_ip
                .get(&(user.to_owned(), ip))
                .copied()
                .unwrap_or(0),
        }
    }

    fn acquire(&mut self, user: &str, ip: IpAddr, anonymous: bool) -> LoginCounts {
        self.total += 1;
        if anonymous {
            self.anonymous += 1;
        }
        *self.per_ip.entry(ip).or_insert(0) += 1;
        *self.per_user.entry(user.to_owned()).or_insert(0) += 1;
        *self.per_user_ip.entry((user.to_owned(), ip)).or_insert(0) += 1;
        self.counts(user, ip)
    }

    fn release(&mut self, user: &str, ip: IpAddr, anonymous: bool) {
        fn down<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32>, k: K) {
            if let Some(n) = map.get_mut(&k) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&k);
                }
            }
        }
        self.total = self.total.saturating_sub(1);
        if anonymous {
            self.anonymous = self.anonymous.saturating_sub(1);
        }
        down(&mut self.per_ip, ip);
        down(&mut self.per_user, user.to_owned());
        down(&mut self.per_user_ip, (user.to_owned(), ip));
    }
}

/// One counted login; given back when dropped (at logout, when the core refuses the login,
/// or when the connection ends however it ends).
#[derive(Debug)]
pub struct LoginSlot<'a> {
    shared: &'a Shared,
    user: String,
    ip: IpAddr,
    anonymous: bool,
}

impl Drop for LoginSlot<'_> {
    fn drop(&mut self) {
        lock(&self.shared.logins).release(&self.user, self.ip, self.anonymous);
    }
}

/// Watches the user store file for the server's whole life: looks at it every
/// [`STORE_POLL`] (mtime, size, inode) and on SIGHUP, and reloads it when it changed
/// ([`Shared::reload_store`]). A bad file is logged with every problem; the old accounts
/// stay until the file is good again.
pub fn watch_store(shared: Arc<Shared>) -> io::Result<()> {
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))?;
    let path = shared.settings.users_file.clone();
    std::thread::Builder::new()
        .name("wharf-store-watch".into())
        .spawn(move || {
            let mut seen = stamp(&path);
            let mut last_look = Instant::now();
            loop {
                std::thread::sleep(Duration::from_millis(200));
                let signalled = hup.swap(false, Ordering::Relaxed);
                if !signalled && last_look.elapsed() < STORE_POLL {
                    continue;
                }
                last_look = Instant::now();
                let now = stamp(&path);
                if now == seen && !signalled {
                    continue;
                }
                seen = now;
                match shared.reload_store() {
                    Ok(n) => info!(
                        "user store {} reloaded{}: {n} account(s)",
                        path.display(),
                        if signalled { " (SIGHUP)" } else { "" }
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
                }
            }
        })?;
    Ok(())
}

type Stamp = Option<(Option<SystemTime>, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok(), m.len(), m.ino()))
}

/// The worker threads.
struct Pool {
    shared: Arc<Shared>,
    tx: Sender<Job>,
    rx: Receiver<Job>,
    threads: Arc<AtomicUsize>,
}

impl Pool {
    fn new(shared: Arc<Shared>) -> Pool {
        // A rendezvous channel: a send succeeds only into the hands of an idle worker.
        let (tx, rx) = bounded(0);
        Pool {
            shared,
            tx,
            rx,
            threads: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Hands the job to an idle worker or a new one; gives it back when neither can take it.
    fn run(&self, job: Job) -> Result<(), Job> {
        let mut job = match self.tx.try_send(job) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(job)) | Err(TrySendError::Disconnected(job)) => job,
        };
        // Every thread may exist already; since the job holds a slot, one of them is then
        // finishing a connection (or ending after idling) and the wait is short. Bounded.
        for _ in 0..100 {
            if self.reserve_thread() {
                return self.spawn(job);
            }
            job = match self.tx.send_timeout(job, Duration::from_millis(50)) {
                Ok(()) => return Ok(()),
                Err(SendTimeoutError::Timeout(job)) | Err(SendTimeoutError::Disconnected(job)) => {
                    job
                }
            };
        }
        Err(job)
    }

    /// Counts one more thread if the pool is below its bound.
    fn reserve_thread(&self) -> bool {
        let max = self.shared.settings.max_connections;
        self.threads
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    fn spawn(&self, job: Job) -> Result<(), Job> {
        let shared = self.shared.clone();
        let rx = self.rx.clone();
        let threads = self.threads.clone();
        // The job moves into the thread; if the thread cannot start, it comes back here.
        let slot = Arc::new(Mutex::new(Some(job)));
        let handed = slot.clone();
        let spawned = std::thread::Builder::new()
            .name("wharf-conn".into())
            .stack_size(WORKER_STACK)
            .spawn(move || {
                let first = handed.lock().unwrap_or_else(|e| e.into_inner()).take();
                drop(handed);
                if let Some(job) = first {
                    serve(&shared, job);
                }
                // Idle for WORKER_IDLE (or the pool gone): the thread ends.
                while let Ok(job) = rx.recv_timeout(WORKER_IDLE) {
                    serve(&shared, job);
                }
                threads.fetch_sub(1, Ordering::AcqRel);
            });
        match spawned {
            Ok(_) => Ok(()),
            Err(e) => {
                error!("cannot start a worker thread: {e}");
                self.threads.fetch_sub(1, Ordering::AcqRel);
                let job = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
                match job {
                    Some(job) => Err(job),
                    None => Ok(()),
                }
            }
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

    fn shared(max: usize, per_ip: usize) -> Arc<Shared> {
        let s = Settings {
            max_connections: max,
            max_connections_per_ip: per_ip,
            ..Settings::default()
        };
        let users = Users::new(Default::default(), Vec::new(), None, Duration::ZERO).unwrap();
        Arc::new(Shared::new(s, users, None))
    }

    #[test]
    fn connection_limits_per_server_and_per_address() {
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "::1".parse().unwrap());
        let sh = shared(3, 2);
        let s1 = sh.admit(a).unwrap();
        let _s2 = sh.admit(a).unwrap();
        assert_eq!(sh.admit(a).err(), Some(2), "a third from one address");
        let _s3 = sh.admit(b).unwrap();
        assert_eq!(sh.admit(b).err(), Some(3), "a fourth in all");
        assert_eq!(
            (sh.active(), sh.active_from(a), sh.active_from(b)),
            (3, 2, 1)
        );
        drop(s1);
        assert_eq!((sh.active(), sh.active_from(a)), (2, 1));
        assert!(sh.admit(a).is_ok());
        // Without a per-address limit, addresses are not counted; the server limit holds.
        let sh = shared(3, 0);
        let slots: Vec<Slot> = (0..3).map(|_| sh.admit(a).unwrap()).collect();
        assert_eq!(sh.admit(b).err(), Some(3));
        assert_eq!(sh.active_from(a), 0);
        drop(slots);
        assert_eq!(sh.active(), 0);
        assert!(sh.admit(a).is_ok());
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
