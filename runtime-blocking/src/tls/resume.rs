//! Which TLS sessions a protected data connection may resume, and so whose data it may carry.
//!
//! RFC 4217 §10.2 asks that a data connection be tied to its control connection. A data
//! handshake that *resumes* a session proves that the client holds that session's secrets;
//! whoever merely reached the passive port first does not. So each control connection gets
//! what its sessions can be resumed from, private to it ([`ControlSessions`]):
//! - a session-id store ([`ControlSessionCache`]) for TLS 1.2 clients that do not use tickets
//!   (curl, lftp, Python's `ssl`, FileZilla);
//! - a ticket key of its own (rustls' ChaCha20-Poly1305 ticketer, a fresh key per control
//!   connection) for TLS 1.2 clients that resume only with tickets (Go's crypto/tls: rclone)
//!   and for TLS 1.3, whose tickets are then stateless and reusable by every data connection.
//!
//! A data connection's handshake looks sessions up through [`DataSessions`]: its own control
//! connection's first, then — under [`SessionReuse::SameClient`], the default — those of the
//! other control connections from the same client address ([`Clients`]). rclone keeps one TLS
//! session cache for all its connections, so with `--ftp-concurrency` above 1 a data
//! connection often presents a session that another of its control connections got: one
//! logged in as the same user, one that has done `AUTH TLS` but not yet `PASS` (the ticket
//! reaches the shared cache before the login completes), or one it has just closed. Which
//! control connection the session belonged to is recorded, and after the handshake
//! [`Verdict`] decides: its own, or one logged in as the same user from the same address
//! (now, or until [`ENDED_GRACE`] after it ended) is accepted; one still logging in is waited
//! for (briefly); anything else is refused. Sessions of other addresses are never looked at,
//! so an attacker who connects to a passive port can at best resume a session of their own,
//! which is accepted only if they are logged in as the same user from the same address.
//! [`SessionReuse::SameConnection`] keeps the strict rule (vsftpd's `require_ssl_reuse`).
//!
//! An upload's data connection issues no TLS 1.3 session ticket: a client that only uploads
//! never reads it, and closing a socket with unread bytes makes the kernel send a reset, which
//! destroys the end of the upload on its way. (TLS 1.2 tickets are part of the handshake and
//! read; downloads and listings are read, so they get a ticket.)

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rustls::server::{ProducesTickets, StoresServerSessions};
use wharf_core::SessionReuse;

use super::cache::ControlSessionCache;

/// How long after a control connection's login ended its tickets still vouch for its user's
/// data connections from the same address (a client that closed an idle connection may still
/// hold that connection's ticket).
pub const ENDED_GRACE: Duration = Duration::from_secs(600);
/// Ended control connections remembered per address (oldest forgotten first).
const ENDED_PER_CLIENT: usize = 16;
/// Addresses remembered before a sweep of ended connections past their grace.
const SWEEP_ABOVE: usize = 4096;

/// What the TLS sessions of one control connection can be resumed from.
pub struct ControlSessions {
    cache: ControlSessionCache,
    tickets: Option<Arc<dyn ProducesTickets>>,
}

impl std::fmt::Debug for ControlSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlSessions")
            .field("tickets", &self.tickets.is_some())
            .finish_non_exhaustive()
    }
}

impl ControlSessions {
    /// A new store and ticket key. Without a ticket key (the system's random source failed)
    /// sessions resume by id only, and TLS 1.3 falls back to stateful tickets in the store.
    pub(crate) fn new() -> ControlSessions {
        let tickets = match rustls::crypto::ring::Ticketer::new() {
            Ok(t) => Some(t),
            Err(e) => {
                log::warn!("no TLS session ticket key for a control connection: {e}");
                None
            }
        };
        ControlSessions {
            cache: ControlSessionCache::new(),
            tickets,
        }
    }
}

impl StoresServerSessions for ControlSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.cache.put(key, value)
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache.get(key)
    }
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache.take(key)
    }
    fn can_cache(&self) -> bool {
        true
    }
}

impl ProducesTickets for ControlSessions {
    fn enabled(&self) -> bool {
        self.tickets.is_some()
    }
    fn lifetime(&self) -> u32 {
        self.tickets.as_ref().map_or(0, |t| t.lifetime())
    }
    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.tickets.as_ref()?.encrypt(plain)
    }
    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.tickets.as_ref()?.decrypt(cipher)
    }
}

/// Where a control connection's login stands, as its client's other connections see it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Login {
    /// Protected, not logged in (yet).
    Pending,
    /// Logged in as this user.
    In(String),
    /// The connection has gone; it was last logged in as this user (if any).
    Ended { user: Option<String>, at: Instant },
}

/// A control connection among its client's: its sessions (while it lives), its ticket key
/// (kept for [`ENDED_GRACE`] after its login ended) and its login.
#[derive(Debug)]
pub(crate) struct Member {
    sessions: Weak<ControlSessions>,
    tickets: Option<Arc<dyn ProducesTickets>>,
    login: Mutex<Login>,
}

impl Member {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.sessions.upgrade()?.get(key)
    }
    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.tickets.as_ref()?.decrypt(cipher)
    }
    /// Whether its sessions may vouch for a data connection of `user` (now or later).
    fn may_vouch_for(&self, user: &str, now: Instant) -> bool {
        match &*self.login.lock() {
            Login::Pending => true,
            Login::In(u) => u == user,
            Login::Ended { user: Some(u), at } => {
                u == user && now.duration_since(*at) < ENDED_GRACE
            }
            Login::Ended { user: None, .. } => false,
        }
    }
    fn expired(&self, now: Instant) -> bool {
        match &*self.login.lock() {
            Login::Ended { user: None, .. } => true,
            Login::Ended { at, .. } => now.duration_since(*at) >= ENDED_GRACE,
            _ => false,
        }
    }
}

/// The protected control connections of each client address.
#[derive(Debug, Default)]
pub struct Clients {
    map: Mutex<HashMap<IpAddr, Vec<Arc<Member>>>>,
}

impl Clients {
    /// Records a new protected control connection from `ip`, not logged in yet.
    pub(crate) fn register(
        self: &Arc<Self>,
        sessions: &Arc<ControlSessions>,
        ip: IpAddr,
    ) -> Registration {
        let member = Arc::new(Member {
            sessions: Arc::downgrade(sessions),
            tickets: sessions.tickets.clone(),
            login: Mutex::new(Login::Pending),
        });
        let now = Instant::now();
        let mut map = self.map.lock();
        if map.len() > SWEEP_ABOVE {
            map.retain(|_, list| {
                list.retain(|m| !m.expired(now));
                !list.is_empty()
            });
        }
        let list = map.entry(ip).or_default();
        list.retain(|m| !m.expired(now));
        list.push(Arc::clone(&member));
        Registration {
            clients: Arc::clone(self),
            ip,
            member,
        }
    }

    /// The other control connections from `ip` whose sessions may vouch for a data
    /// connection of `user`.
    fn siblings(&self, own: &Arc<Member>, user: &str, ip: IpAddr) -> Vec<Arc<Member>> {
        let now = Instant::now();
        let map = self.map.lock();
        let Some(list) = map.get(&ip) else {
            return Vec::new();
        };
        list.iter()
            .filter(|m| !Arc::ptr_eq(m, own) && m.may_vouch_for(user, now))
            .cloned()
            .collect()
    }

    #[cfg(test)]
    pub(crate) fn remembered(&self, ip: IpAddr) -> usize {
        self.map.lock().get(&ip).map_or(0, Vec::len)
    }
}

/// A protected control connection's entry among its client's; its login goes in and out with
/// [`Registration::logged_in`] and [`Registration::logged_out`]. On drop the connection has
/// gone: a logged-in one is remembered for [`ENDED_GRACE`], another forgotten at once.
#[derive(Debug)]
pub struct Registration {
    clients: Arc<Clients>,
    ip: IpAddr,
    member: Arc<Member>,
}

impl Registration {
    /// The connection logged in as `user`.
    pub fn logged_in(&self, user: &str) {
        *self.member.login.lock() = Login::In(user.to_owned());
    }

    /// The connection's login ended (logout, REIN, USER for someone else).
    pub fn logged_out(&self) {
        *self.member.login.lock() = Login::Pending;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        {
            let mut login = self.member.login.lock();
            let user = match &*login {
                Login::In(u) => Some(u.clone()),
                _ => None,
            };
            *login = Login::Ended {
                user,
                at: Instant::now(),
            };
        }
        let mut map = self.clients.map.lock();
        let Some(list) = map.get_mut(&self.ip) else {
            return;
        };
        let now = Instant::now();
        // Never logged in: nothing to vouch for. Otherwise remembered, within bounds.
        list.retain(|m| !m.expired(now));
        let is_ended = |m: &Arc<Member>| matches!(&*m.login.lock(), Login::Ended { .. });
        // Bounded: each round removes one.
        while list.iter().filter(|m| is_ended(m)).count() > ENDED_PER_CLIENT {
            match list.iter().position(is_ended) {
                Some(oldest) => {
                    list.remove(oldest);
                }
                None => break,
            }
        }
        if list.is_empty() {
            map.remove(&self.ip);
        }
    }
}

/// The sessions one data connection may resume: its control connection's, then those of its
/// client's other control connections (see the module documentation). The siblings are looked
/// up when the client's hello arrives, not before: a client builds its hello from what its
/// shared cache holds at that moment, which may come from a control connection that started
/// while this data connection was being opened.
#[derive(Debug)]
pub(crate) struct DataSessions {
    own: Arc<ControlSessions>,
    siblings: Option<Siblings>,
    /// The sibling whose session was found, if the session was not its own connection's.
    found: Mutex<Option<Arc<Member>>>,
}

/// Where a data connection finds its siblings: the registry, whom to leave out, for whom.
#[derive(Debug)]
pub(crate) struct Siblings {
    clients: Arc<Clients>,
    own: Arc<Member>,
    ip: IpAddr,
    user: String,
}

/// Whether a resumed data connection may carry the data of its control connection's user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It resumed its own control connection's session.
    Own,
    /// It resumed a session of another control connection of the same user from the same
    /// address.
    Sibling,
    /// It resumed a session of a control connection from the same address that is still
    /// logging in: ask again shortly.
    Wait,
    /// It resumed a session of a control connection that is not (or no longer) the same user's.
    Refuse,
}

impl DataSessions {
    pub(crate) fn new(own: Arc<ControlSessions>, siblings: Option<Siblings>) -> Self {
        DataSessions {
            own,
            siblings,
            found: Mutex::new(None),
        }
    }

    /// After a resumed handshake: whether the session's owner vouches for `user`.
    pub(crate) fn verdict(&self, user: Option<&str>) -> Verdict {
        let Some(member) = self.found.lock().clone() else {
            return Verdict::Own;
        };
        let Some(user) = user else {
            return Verdict::Refuse;
        };
        let now = Instant::now();
        let login = member.login.lock().clone();
        match login {
            Login::Pending => Verdict::Wait,
            Login::In(u) if u == user => Verdict::Sibling,
            Login::Ended { user: Some(u), at }
                if u == user && now.duration_since(at) < ENDED_GRACE =>
            {
                Verdict::Sibling
            }
            _ => Verdict::Refuse,
        }
    }

    fn find(
        &self,
        mine: impl Fn(&ControlSessions) -> Option<Vec<u8>>,
        theirs: impl Fn(&Member) -> Option<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        if let Some(v) = mine(&self.own) {
            return Some(v);
        }
        let s = self.siblings.as_ref()?;
        let siblings = s.clients.siblings(&s.own, &s.user, s.ip);
        let Some((member, value)) = siblings.iter().find_map(|m| theirs(m).map(|v| (m, v))) else {
            log::debug!(
                "data handshake: the session offered is neither its control connection's nor \
                 one of its {} sibling(s)'",
                siblings.len()
            );
            return None;
        };
        *self.found.lock() = Some(Arc::clone(member));
        Some(value)
    }
}

impl StoresServerSessions for DataSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.own.put(key, value)
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.find(|s| s.get(key), |m| m.get(key))
    }
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.find(|s| s.take(key), |m| m.get(key))
    }
    fn can_cache(&self) -> bool {
        true
    }
}

impl ProducesTickets for DataSessions {
    fn enabled(&self) -> bool {
        self.own.enabled()
    }
    fn lifetime(&self) -> u32 {
        self.own.lifetime()
    }
    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.own.encrypt(plain)
    }
    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.find(|s| s.decrypt(cipher), |m| m.decrypt(cipher))
    }
}

/// Where a data connection of the control connection registered as `own`, logged in as
/// `user`, may find sibling sessions, as `reuse` allows (`None`: nowhere).
pub(crate) fn siblings_of(
    reuse: SessionReuse,
    own: &Registration,
    user: Option<&str>,
) -> Option<Siblings> {
    match (reuse, user) {
        (SessionReuse::SameClient, Some(user)) => Some(Siblings {
            clients: Arc::clone(&own.clients),
            own: Arc::clone(&own.member),
            ip: own.ip,
            user: user.to_owned(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    struct Conn {
        sessions: Arc<ControlSessions>,
        reg: Registration,
    }

    fn connect(clients: &Arc<Clients>, from: &str) -> Conn {
        let sessions = Arc::new(ControlSessions::new());
        let reg = clients.register(&sessions, ip(from));
        Conn { sessions, reg }
    }

    fn data(c: &Conn, reuse: SessionReuse, user: &str) -> DataSessions {
        DataSessions::new(
            Arc::clone(&c.sessions),
            siblings_of(reuse, &c.reg, Some(user)),
        )
    }

    #[test]
    fn a_data_connection_resumes_its_own_and_its_clients_sessions_only() {
        let clients = Arc::new(Clients::default());
        let mine = connect(&clients, "127.0.0.1");
        let sister = connect(&clients, "127.0.0.1");
        let stranger = connect(&clients, "127.0.0.1");
        let elsewhere = connect(&clients, "127.0.0.2");
        let logging_in = connect(&clients, "127.0.0.1");
        mine.reg.logged_in("acme/alice");
        sister.reg.logged_in("acme/alice");
        stranger.reg.logged_in("acme/bob");
        elsewhere.reg.logged_in("acme/alice");
        for (c, id) in [
            (&mine, b"mine".as_slice()),
            (&sister, b"sister"),
            (&stranger, b"stranger"),
            (&elsewhere, b"elsewhere"),
            (&logging_in, b"pending"),
        ] {
            c.sessions.put(id.to_vec(), id.to_vec());
        }
        let ticket = |c: &Conn, text: &[u8]| c.sessions.encrypt(text).unwrap();

        let d = data(&mine, SessionReuse::SameClient, "acme/alice");
        assert_eq!(d.get(b"mine").as_deref(), Some(&b"mine"[..]));
        assert_eq!(d.verdict(Some("acme/alice")), Verdict::Own);
        assert_eq!(
            d.get(b"stranger"),
            None,
            "another user's connection is not looked at"
        );
        assert_eq!(
            d.get(b"elsewhere"),
            None,
            "another address is not looked at"
        );
        assert_eq!(d.decrypt(&ticket(&stranger, b"t")), None);
        assert_eq!(
            d.decrypt(&ticket(&sister, b"t")).as_deref(),
            Some(&b"t"[..])
        );
        assert_eq!(d.verdict(Some("acme/alice")), Verdict::Sibling);

        // A session of a connection still logging in: wait, then its login decides.
        let d = data(&mine, SessionReuse::SameClient, "acme/alice");
        assert_eq!(d.get(b"pending").as_deref(), Some(&b"pending"[..]));
        assert_eq!(d.verdict(Some("acme/alice")), Verdict::Wait);
        logging_in.reg.logged_in("acme/bob");
        assert_eq!(d.verdict(Some("acme/alice")), Verdict::Refuse);
        logging_in.reg.logged_out();
        assert_eq!(d.verdict(Some("acme/alice")), Verdict::Wait);
        logging_in.reg.logged_in("acme/alice");
        assert_eq!(d.verdict(Some("acme/alice")), Verdict::Sibling);

        // The strict rule: its own control connection only.
        let d = data(&mine, SessionReuse::SameConnection, "acme/alice");
        assert_eq!(d.get(b"sister"), None);
        assert_eq!(d.decrypt(&ticket(&sister, b"t")), None);
        // Tickets a data connection issues are its control connection's.
        let t = d.encrypt(b"new").unwrap();
        assert_eq!(mine.sessions.decrypt(&t).as_deref(), Some(&b"new"[..]));
        assert_eq!(sister.sessions.decrypt(&t), None);
    }

    #[test]
    fn an_ended_login_vouches_for_a_while_with_its_tickets_only() {
        let clients = Arc::new(Clients::default());
        let mine = connect(&clients, "::1");
        mine.reg.logged_in("u");
        let gone = connect(&clients, "::1");
        gone.reg.logged_in("u");
        gone.sessions.put(b"id".to_vec(), b"v".to_vec());
        let t = gone.sessions.encrypt(b"ticket").unwrap();
        let never = connect(&clients, "::1");
        drop(gone);
        drop(never);
        // The one that never logged in is forgotten; the logged-in one is remembered.
        assert_eq!(clients.remembered(ip("::1")), 2);
        let d = data(&mine, SessionReuse::SameClient, "u");
        assert_eq!(d.get(b"id"), None, "its session-id store went with it");
        assert_eq!(d.decrypt(&t).as_deref(), Some(&b"ticket"[..]));
        assert_eq!(d.verdict(Some("u")), Verdict::Sibling);
        let d = data(&mine, SessionReuse::SameClient, "v");
        assert_eq!(d.decrypt(&t), None, "not for another user");
        drop(mine);
        assert_eq!(clients.remembered(ip("::1")), 2);
    }

    #[test]
    fn ended_connections_are_bounded_per_client() {
        let clients = Arc::new(Clients::default());
        for _ in 0..(ENDED_PER_CLIENT * 3) {
            let c = connect(&clients, "127.0.0.9");
            c.reg.logged_in("u");
        }
        assert!(clients.remembered(ip("127.0.0.9")) <= ENDED_PER_CLIENT + 1);
    }
}
