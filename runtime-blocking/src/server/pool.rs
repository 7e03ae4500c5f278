//! The worker pool: one thread per connection, bounded, started on demand, and taking turns
//! at the door (the leader/followers pattern).
//!
//! One worker, the leader, holds the door ([`super::door`]): it waits on every listener and
//! accepts; when it has a connection it may serve, it passes the door to the most recently
//! idle worker (or starts a new one, or, at the bound, leaves it for the next worker that
//! finishes) and serves that connection itself. So a connection is greeted by the thread that
//! accepted it, without a hand-off, and no single acceptor thread has to win the CPU for every
//! connection (docs/sessions.md says what a dedicated acceptor cost under a login storm).
//!
//! Workers are started lazily with a small stack ([`WORKER_STACK`]), at most
//! `max_connections` + 1 (those serving, and the leader), and are reused: an idle worker
//! waits [`WORKER_IDLE`] for its turn at the door, then ends.
//!
//! This module owns the threads and who holds the door. It must not decide whom to admit
//! (the door does) nor look into a session: a worker hands its connection to
//! [`Connection::serve`]. A panic while accepting ends the server; a panic in a session ends
//! that connection only.

use log::error;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::door::{self, Door, Job};
use crate::driver::Connection;
use crate::shared::Shared;

/// Stack size of a worker thread.
pub const WORKER_STACK: usize = 256 * 1024;
/// How long an idle worker waits for its turn at the door before it ends.
pub const WORKER_IDLE: Duration = Duration::from_secs(60);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The worker threads: one leads (holds the [`Door`]), some serve, the others wait for
/// their turn to lead.
pub(super) struct Pool {
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
    pub(super) fn new(
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

    pub(super) fn threads(&self) -> usize {
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
            if let Some(job) = door::admit(&self.shared, door.next()?) {
                return Ok(job);
            }
        }
    }

    /// Gives the door to the worker that became idle last, or to a new worker, or, when the
    /// pool is at its bound, leaves it for the next worker to finish a connection.
    pub(super) fn pass_on(self: &Arc<Self>, door: Door) {
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
    use super::super::door::{listen, Listener};
    use super::*;
    use crate::config::Settings;
    use crate::users::Users;
    use std::net::{SocketAddr, TcpStream};

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
}
