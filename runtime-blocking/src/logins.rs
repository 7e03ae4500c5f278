//! What the server counts about its clients, shared by every session: the connections being
//! served (in all and per address, behind `max_connections` and `max_connections_per_ip`),
//! the logged-in sessions (behind the core's login limits), and the addresses banned after
//! too many failed logins (`ban_after_failures` within `ban_window_secs` bans for
//! `ban_duration_secs`; the core's [`BanList`] decides, this module keeps it).
//!
//! Each count is taken as a slot ([`ConnectionSlot`], [`LoginSlot`]) that gives it back when
//! dropped, however the connection or the login ends. This module only counts and answers;
//! it must not refuse anybody, reply, or log: the door ([`crate::server`]) and the core decide
//! what a count means.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wharf_core::action::LoginCounts;
use wharf_core::addr::canonical_ip;
use wharf_core::policy::BanList;

/// The most addresses the ban table remembers.
pub const MAX_BAN_ENTRIES: usize = 65_536;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The connections being served, against `max_connections` and `max_connections_per_ip`.
#[derive(Debug)]
pub struct Connections {
    /// At most this many at once (`max_connections`).
    max: usize,
    /// At most this many from one address; 0 for no such limit (`max_connections_per_ip`).
    max_per_ip: usize,
    active: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

impl Connections {
    /// No connection yet, under these limits (`max_per_ip` 0: no limit per address).
    pub fn new(max: usize, max_per_ip: usize) -> Connections {
        Connections {
            max,
            max_per_ip,
            active: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a connection slot for `ip`, or returns the limit that was hit.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, usize> {
        let max = self.max;
        if self
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_err()
        {
            return Err(max);
        }
        let per_ip = self.max_per_ip;
        // Without a per-address limit (the default) nothing needs the per-address count:
        // no lock to take at every connect and disconnect.
        if per_ip > 0 {
            let mut map = lock(&self.per_ip);
            let n = map.entry(ip).or_insert(0);
            if *n >= per_ip {
                drop(map);
                self.active.fetch_sub(1, Ordering::AcqRel);
                return Err(per_ip);
            }
            *n += 1;
        }
        Ok(ConnectionSlot {
            counts: self.clone(),
            ip: (per_ip > 0).then_some(ip),
        })
    }

    /// Connections being served now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Connections being served now from `ip`, as counted for `max_connections_per_ip`
    /// (0 when there is no such limit: then they are not counted).
    pub fn active_from(&self, ip: IpAddr) -> usize {
        lock(&self.per_ip).get(&ip).copied().unwrap_or(0)
    }
}

/// A connection's place in the limits; given back when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    counts: Arc<Connections>,
    /// The address it counts against, when there is a per-address limit.
    ip: Option<IpAddr>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            let mut map = lock(&self.counts.per_ip);
            if let Some(n) = map.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&ip);
                }
            }
        }
        self.counts.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The logged-in sessions and the bans of addresses whose logins fail too often.
#[derive(Debug)]
pub struct Logins {
    table: Mutex<LoginTable>,
    bans: Mutex<BanList>,
}

impl Logins {
    /// Nobody logged in and nobody banned; `ban_after_failures` failures within `window` ban
    /// an address for `duration` (0 failures: no bans).
    pub fn new(ban_after_failures: u32, window: Duration, duration: Duration) -> Logins {
        Logins {
            table: Mutex::new(LoginTable::default()),
            bans: Mutex::new(BanList::new(
                ban_after_failures,
                window,
                duration,
                MAX_BAN_ENTRIES,
            )),
        }
    }

    /// Counts a new login of `user` (`anonymous` for the anonymous login) from `ip`; the
    /// counts include it. The slot gives the login back when dropped.
    pub fn count(&self, user: &str, ip: IpAddr, anonymous: bool) -> (LoginSlot<'_>, LoginCounts) {
        let ip = canonical_ip(ip);
        let counts = lock(&self.table).acquire(user, ip, anonymous);
        (
            LoginSlot {
                table: &self.table,
                user: user.to_owned(),
                ip,
                anonymous,
            },
            counts,
        )
    }

    /// A failed login from `ip` (wrong password, unknown or disabled user). Returns true
    /// when it starts a ban.
    pub fn failed(&self, ip: IpAddr) -> bool {
        lock(&self.bans).record_failure(ip, Instant::now())
    }

    /// A successful login from `ip`: its count of failures starts again.
    pub fn succeeded(&self, ip: IpAddr) {
        lock(&self.bans).record_success(ip);
    }

    /// How much longer `ip` stays banned, if it is.
    pub fn banned_for(&self, ip: IpAddr) -> Option<Duration> {
        lock(&self.bans).banned_for(ip, Instant::now())
    }
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
    table: &'a Mutex<LoginTable>,
    user: String,
    ip: IpAddr,
    anonymous: bool,
}

impl Drop for LoginSlot<'_> {
    fn drop(&mut self) {
        lock(self.table).release(&self.user, self.ip, self.anonymous);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_limits_per_server_and_per_address() {
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "::1".parse().unwrap());
        let sh = Arc::new(Connections::new(3, 2));
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
        let sh = Arc::new(Connections::new(3, 0));
        let slots: Vec<ConnectionSlot> = (0..3).map(|_| sh.admit(a).unwrap()).collect();
        assert_eq!(sh.admit(b).err(), Some(3));
        assert_eq!(sh.active_from(a), 0);
        drop(slots);
        assert_eq!(sh.active(), 0);
        assert!(sh.admit(a).is_ok());
    }
}
