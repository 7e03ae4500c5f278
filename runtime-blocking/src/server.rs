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

use crossbeam_channel::{bounded, Receiver, SendTimeoutError, Sender, TrySendError};
use log::{error, info, warn};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wharf_core::addr::canonical_ip;

use crate::config::Settings;
use crate::conn::Connection;
use crate::tls::TlsContext;
use crate::users::UserStore;

/// Stack size of a worker thread.
pub const WORKER_STACK: usize = 256 * 1024;
/// How long an idle worker waits for another connection before it ends.
pub const WORKER_IDLE: Duration = Duration::from_secs(60);

/// What every session of the server shares.
#[derive(Debug)]
pub struct Shared {
    /// The configuration.
    pub settings: Settings,
    /// The core's part of it.
    pub core: Arc<wharf_core::Config>,
    /// The accounts.
    pub users: UserStore,
    /// The certificate and TLS policy, when FTPS is on.
    pub tls: Option<TlsContext>,
    /// Where events go (events file, event command, transfer log) and the live statistics;
    /// statistics only until [`crate::events::EventHub::open`]'s is put here.
    pub events: crate::events::EventHub,
    active: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

impl Shared {
    /// Shared state for a server with these settings and users, offering FTPS when `tls` is
    /// given. The core's configuration gets the TLS policies of the settings and the users'
    /// own TLS requirements.
    pub fn new(settings: Settings, users: UserStore, tls: Option<TlsContext>) -> Shared {
        let mut core = settings.core_config();
        {
            let c = Arc::make_mut(&mut core);
            c.tls_available = tls.is_some();
            c.tls_overrides = users.tls_overrides();
        }
        Shared {
            core,
            settings,
            users,
            tls,
            events: crate::events::EventHub::default(),
            active: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
        }
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
        {
            let mut map = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            let n = map.entry(ip).or_insert(0);
            if per_ip > 0 && *n >= per_ip {
                drop(map);
                self.active.fetch_sub(1, Ordering::AcqRel);
                return Err(per_ip);
            }
            *n += 1;
        }
        Ok(Slot {
            shared: self.clone(),
            ip,
        })
    }
}

/// A connection's place in the limits; given back when dropped.
struct Slot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        {
            let mut map = self.shared.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = map.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&self.ip);
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
            let l = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            l.set_nonblocking(true)
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            listeners.push(Listener {
                socket: l,
                implicit,
            });
        }
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

/// Tells a connection it cannot be served, without waiting on it. On an implicit-TLS
/// listener the client expects a handshake, not text: the connection is just closed.
fn refuse(mut stream: TcpStream, limit: usize, implicit: bool) {
    if implicit {
        return;
    }
    let _ = stream.set_nonblocking(true);
    let _ = stream
        .write_all(format!("421 Too many connections ({limit}); try again later.\r\n").as_bytes());
    let _ = stream.shutdown(std::net::Shutdown::Write);
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
