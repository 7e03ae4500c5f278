//! The door: every listening socket (plain, implicit TLS) in one mio `Poll`, accepted from
//! by whichever worker leads ([`super::pool`]), and the refusals at connect time.
//!
//! Before a connection takes a worker, the leader refuses it (`421`, then close, without
//! waiting on the client) when the server-wide IP filter (`ip_allow` / `ip_deny`) keeps its
//! address out, when the address is banned after too many failed logins, or when it would go
//! beyond `max_connections` or `max_connections_per_ip` (`421 Too many connections (N); try
//! again later.`). Nothing is queued. On an implicit-TLS listener, where a clear-text reply
//! cannot be read, a refused connection is closed without one; an admitted one is marked so
//! that its worker runs the TLS handshake before the session starts.
//!
//! The door is the fast path of every login (docs/sessions.md has the figures): it must not
//! gain a lock, a hand-off to another thread or a system call per connection. What one costs
//! today: the accept, a read of the core's configuration (for the IP filter), the ban table's
//! lock, the atomic connection count, and the per-address map's lock only under a
//! per-address limit. It owns no thread: the pool ([`super::pool`]) decides who holds it.

use log::{error, info, warn};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;
use wharf_core::addr::canonical_ip;

use crate::logins::ConnectionSlot;
use crate::shared::Shared;

/// The listen backlog asked for: connections the kernel completes and queues before the
/// acceptor takes them. A burst of clients (200 connecting at once) must fit: a full queue
/// drops SYNs, and the client retries only after a second. The kernel caps it at
/// `net.core.somaxconn` (4096 since Linux 5.4).
pub const LISTEN_BACKLOG: i32 = 4096;
/// Below this `net.core.somaxconn` the server warns at start.
const SMALL_SOMAXCONN: i32 = 1024;
/// Connections the leader accepts from one listener in a row before it looks at the others
/// (the rest wait, accepted, for the next leaders).
const ACCEPT_BATCH: usize = 16;
/// After a failed accept (out of descriptors...), how soon the leader tries again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// The reply to a connection from an address the server-wide IP filter keeps out.
pub const REFUSED_ADDRESS: &str = "421 Connection refused: your address is not allowed here.";
/// The reply to a connection from a banned address.
pub const REFUSED_BANNED: &str = "421 Too many failed logins from your address; try again later.";

/// One listening socket.
pub(super) struct Listener {
    pub(super) socket: TcpListener,
    /// The handshake comes first (implicit TLS).
    pub(super) implicit: bool,
}

/// A connection as accepted, before the limits are checked.
pub(super) struct Accepted {
    stream: TcpStream,
    peer: SocketAddr,
    /// Accepted on an implicit-TLS listener.
    implicit: bool,
}

/// An admitted connection, as the door hands it to the worker that serves it.
pub(super) struct Job {
    pub(super) stream: TcpStream,
    pub(super) peer: SocketAddr,
    /// Accepted on an implicit-TLS listener.
    pub(super) implicit: bool,
    /// Its place in the connection limits, given back when the job is dropped.
    pub(super) slot: ConnectionSlot,
}

/// Checks a new connection against the IP filter, the bans and the connection limits:
/// a job to serve, or None when it was refused (`421`, closed, logged).
pub(super) fn admit(shared: &Shared, a: Accepted) -> Option<Job> {
    let Accepted {
        stream,
        peer,
        implicit,
    } = a;
    let ip = canonical_ip(peer.ip());
    if !shared.core().ip_filter.permits(ip) {
        info!("connection from {peer} refused: not allowed by ip_allow/ip_deny");
        refuse_with(stream, REFUSED_ADDRESS, implicit);
        return None;
    }
    if let Some(left) = shared.banned_for(ip) {
        info!(
            "connection from {peer} refused: banned after failed logins ({} s left)",
            left.as_secs()
        );
        refuse_with(stream, REFUSED_BANNED, implicit);
        return None;
    }
    match shared.admit(ip) {
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

/// The door: every listening socket, polled and accepted from by whichever worker leads.
pub(super) struct Door {
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
    pub(super) fn new(listeners: Vec<Listener>) -> io::Result<Door> {
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
    pub(super) fn next(&mut self) -> io::Result<Accepted> {
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
pub(super) fn listen(addr: &SocketAddr) -> io::Result<TcpListener> {
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
pub(super) fn warn_small_somaxconn() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

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
