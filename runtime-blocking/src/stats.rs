//! Live statistics: the server-wide counters SITE STAT shows and the registry of logged-in
//! sessions SITE WHO lists.
//!
//! What it owns: [`Stats`], a set of atomic counters updated from the sessions' events
//! (uploads, downloads, deletes, bytes, folders, logins) and from connections opening and
//! closing; and [`Registry`], the logged-in sessions with their login and last-command times.
//! Both are updated by [`crate::events`] (one [`crate::events::SessionTracker`] per
//! connection) and read when an administrator asks.
//!
//! What it must not do: block a session for long (one short mutex for the registry, atomics
//! for the rest), or keep anything after a session ends (a connection's tracker removes its
//! entry when dropped, whatever way the connection ended).
//!
//! Counting rules (also in docs/events.md):
//! - uploads / downloads: files transferred whole (`upload_complete`, `download_complete`);
//! - bytes uploaded / downloaded: bytes of file transfers, whole or not (listings are not
//!   counted);
//! - logins: sessions logged in now and since start, anonymous ones also on their own;
//! - connections: control connections being served now and since start (connections refused
//!   before a session starts — too many connections, a failed implicit-TLS handshake — are
//!   not counted).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use wharf_core::action::{ServerStats, SessionSummary};
use wharf_core::UnixTime;

/// The server-wide counters.
#[derive(Debug)]
pub struct Stats {
    start_time: UnixTime,
    uploads: AtomicU64,
    downloads: AtomicU64,
    deletes: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    dirs_created: AtomicU64,
    dirs_removed: AtomicU64,
    logins_current: AtomicU64,
    logins_total: AtomicU64,
    anonymous_current: AtomicU64,
    anonymous_total: AtomicU64,
    connections_current: AtomicU64,
    connections_total: AtomicU64,
}

/// Which counter an event moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// A file uploaded whole.
    Upload,
    /// A file downloaded whole.
    Download,
    /// A file deleted.
    Delete,
    /// A directory created.
    DirCreated,
    /// A directory removed.
    DirRemoved,
}

/// Decrements without going below zero (a bookkeeping slip must not wrap to 2^64).
fn decrement(a: &AtomicU64) {
    let _ = a.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
}

impl Stats {
    /// Counters at zero, with the server's start time.
    pub fn new(start_time: UnixTime) -> Stats {
        let z = || AtomicU64::new(0);
        Stats {
            start_time,
            uploads: z(),
            downloads: z(),
            deletes: z(),
            bytes_up: z(),
            bytes_down: z(),
            dirs_created: z(),
            dirs_removed: z(),
            logins_current: z(),
            logins_total: z(),
            anonymous_current: z(),
            anonymous_total: z(),
            connections_current: z(),
            connections_total: z(),
        }
    }

    /// One more of `c`.
    pub fn count(&self, c: Counter) {
        let a = match c {
            Counter::Upload => &self.uploads,
            Counter::Download => &self.downloads,
            Counter::Delete => &self.deletes,
            Counter::DirCreated => &self.dirs_created,
            Counter::DirRemoved => &self.dirs_removed,
        };
        a.fetch_add(1, Ordering::Relaxed);
    }

    /// Bytes of a file transfer (whole or not): received when `upload`, else sent.
    pub fn add_bytes(&self, upload: bool, bytes: u64) {
        let a = if upload {
            &self.bytes_up
        } else {
            &self.bytes_down
        };
        a.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A control connection is being served.
    pub fn connection_opened(&self) {
        self.connections_current.fetch_add(1, Ordering::AcqRel);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    /// A control connection counted by [`Stats::connection_opened`] has ended.
    pub fn connection_closed(&self) {
        decrement(&self.connections_current);
    }

    /// A session logged in.
    pub fn login(&self, anonymous: bool) {
        self.logins_current.fetch_add(1, Ordering::AcqRel);
        self.logins_total.fetch_add(1, Ordering::Relaxed);
        if anonymous {
            self.anonymous_current.fetch_add(1, Ordering::AcqRel);
            self.anonymous_total.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A session counted by [`Stats::login`] logged out (or its connection ended).
    pub fn logout(&self, anonymous: bool) {
        decrement(&self.logins_current);
        if anonymous {
            decrement(&self.anonymous_current);
        }
    }

    /// The counters now, for SITE STAT.
    pub fn snapshot(&self) -> ServerStats {
        let g = |a: &AtomicU64| a.load(Ordering::Acquire);
        let mut s = ServerStats::default();
        s.start_time = self.start_time;
        s.uploads = g(&self.uploads);
        s.downloads = g(&self.downloads);
        s.deletes = g(&self.deletes);
        s.bytes_up = g(&self.bytes_up);
        s.bytes_down = g(&self.bytes_down);
        s.dirs_created = g(&self.dirs_created);
        s.dirs_removed = g(&self.dirs_removed);
        s.logins_current = g(&self.logins_current);
        s.logins_total = g(&self.logins_total);
        s.anonymous_current = g(&self.anonymous_current);
        s.anonymous_total = g(&self.anonymous_total);
        s.connections_current = g(&self.connections_current);
        s.connections_total = g(&self.connections_total);
        s
    }
}

/// The time a session last received a command, shared between its connection (which sets
/// it) and the registry (which reads it).
#[derive(Clone, Debug, Default)]
pub struct LastCommand(Arc<AtomicI64>);

impl LastCommand {
    /// Records `t` as the time of the last command.
    pub fn set(&self, t: UnixTime) {
        self.0.store(t.0, Ordering::Relaxed);
    }

    /// The time of the last command.
    pub fn get(&self) -> UnixTime {
        UnixTime(self.0.load(Ordering::Relaxed))
    }
}

#[derive(Debug)]
struct LiveSession {
    user: String,
    peer: SocketAddr,
    login_time: UnixTime,
    last_command: LastCommand,
}

/// The logged-in sessions, by session id (so SITE WHO lists them in the order they
/// connected).
#[derive(Debug, Default)]
pub struct Registry {
    sessions: Mutex<BTreeMap<u64, LiveSession>>,
}

impl Registry {
    /// Session `id` logged in as `user` from `peer` at `login_time`; `last_command` follows
    /// it from now on. Replaces an earlier entry of the same session.
    pub fn insert(
        &self,
        id: u64,
        user: String,
        peer: SocketAddr,
        login_time: UnixTime,
        last_command: LastCommand,
    ) {
        let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(
            id,
            LiveSession {
                user,
                peer,
                login_time,
                last_command,
            },
        );
    }

    /// Session `id` is no longer logged in; whether it was.
    pub fn remove(&self, id: u64) -> bool {
        let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&id).is_some()
    }

    /// The logged-in sessions, for SITE WHO.
    pub fn summaries(&self) -> Vec<SessionSummary> {
        let map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        map.values()
            .map(|s| {
                SessionSummary::new(s.user.clone(), s.peer, s.login_time, s.last_command.get())
            })
            .collect()
    }

    /// How many sessions are logged in.
    pub fn len(&self) -> usize {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Whether no session is logged in.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_move_and_never_wrap() {
        let s = Stats::new(UnixTime(100));
        s.connection_opened();
        s.connection_opened();
        s.connection_closed();
        s.login(false);
        s.login(true);
        s.logout(true);
        s.count(Counter::Upload);
        s.count(Counter::DirCreated);
        s.add_bytes(true, 5);
        s.add_bytes(false, 7);
        // A logout nobody counted must not wrap the current counts.
        s.logout(true);
        s.logout(true);
        let n = s.snapshot();
        assert_eq!(n.start_time, UnixTime(100));
        assert_eq!((n.connections_current, n.connections_total), (1, 2));
        assert_eq!((n.logins_current, n.logins_total), (0, 2));
        assert_eq!((n.anonymous_current, n.anonymous_total), (0, 1));
        assert_eq!((n.uploads, n.downloads, n.dirs_created), (1, 0, 1));
        assert_eq!((n.bytes_up, n.bytes_down), (5, 7));
    }

    #[test]
    fn registry_lists_in_session_order_with_live_last_command() {
        let r = Registry::default();
        let a = LastCommand::default();
        a.set(UnixTime(10));
        let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        r.insert(
            7,
            "acme/bob".into(),
            peer,
            UnixTime(9),
            LastCommand::default(),
        );
        r.insert(3, "alice".into(), peer, UnixTime(5), a.clone());
        a.set(UnixTime(42));
        let who = r.summaries();
        assert_eq!(who.len(), 2);
        assert_eq!(who[0].user, "alice");
        assert_eq!(who[0].last_command, UnixTime(42));
        assert_eq!(who[1].user, "acme/bob");
        assert!(r.remove(3));
        assert!(!r.remove(3));
        assert_eq!(r.len(), 1);
    }
}
