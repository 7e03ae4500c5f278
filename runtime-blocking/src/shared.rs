//! What every session of the server shares: the settings, the core's configuration (whose
//! per-user TLS requirements follow the user store), the accounts, the TLS context, where
//! events go, the counts of connections and logins and the bans ([`crate::logins`]), the
//! count of direct uploads.
//!
//! [`Shared`] is built once at start and lives behind an `Arc` for the server's life; the
//! door ([`crate::server`]) admits connections against it and every connection borrows it.
//! It must not accept, spawn threads or read files: it holds and answers, and takes what a
//! reload read ([`Shared::replace_store`]).

use std::net::IpAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;
use wharf_core::action::LoginCounts;

use crate::config::Settings;
use crate::events::EventHub;
use crate::logins::{ConnectionSlot, Connections, LoginSlot, Logins};
use crate::store::StoreData;
use crate::tls::TlsContext;
use crate::users::Users;

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
    pub events: EventHub,
    /// The logged-in sessions and the bans.
    logins: Logins,
    /// The connections being served.
    connections: Arc<Connections>,
    /// Uploads going direct right now (each holds one of them while it runs: `driver/transfer/direct.rs`).
    pub(crate) direct_uploads: AtomicUsize,
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
        let logins = Logins::new(
            settings.ban_after_failures,
            settings.ban_window,
            settings.ban_duration,
        );
        let connections =
            Connections::new(settings.max_connections, settings.max_connections_per_ip);
        Shared {
            core: parking_lot::RwLock::new(core),
            settings,
            users,
            tls,
            events: EventHub::default(),
            logins,
            connections: Arc::new(connections),
            direct_uploads: AtomicUsize::new(0),
        }
    }

    /// The core's configuration as it is now (a new session takes it).
    pub fn core(&self) -> Arc<wharf_core::Config> {
        self.core.read().clone()
    }

    /// Puts the accounts of a store that was read again in place of the old ones (and the
    /// users' own TLS requirements in the core's configuration). Returns the number of
    /// accounts.
    pub fn replace_store(&self, data: StoreData) -> usize {
        let store = self.users.replace(data);
        let overrides = store.tls_overrides();
        let mut core = self.core.write();
        if core.tls_overrides != overrides {
            Arc::make_mut(&mut core).tls_overrides = overrides;
        }
        store.len()
    }

    /// Counts a new login of `user` (`anonymous` for the anonymous login) from `ip`; the
    /// counts include it. The slot gives the login back when dropped.
    pub fn count_login(
        &self,
        user: &str,
        ip: IpAddr,
        anonymous: bool,
    ) -> (LoginSlot<'_>, LoginCounts) {
        self.logins.count(user, ip, anonymous)
    }

    /// A failed login from `ip` (wrong password, unknown or disabled user). Returns true
    /// when it starts a ban.
    pub fn login_failed(&self, ip: IpAddr) -> bool {
        self.logins.failed(ip)
    }

    /// A successful login from `ip`: its count of failures starts again.
    pub fn login_succeeded(&self, ip: IpAddr) {
        self.logins.succeeded(ip);
    }

    /// How much longer `ip` stays banned, if it is.
    pub fn banned_for(&self, ip: IpAddr) -> Option<Duration> {
        self.logins.banned_for(ip)
    }

    /// Connections being served now.
    pub fn active(&self) -> usize {
        self.connections.active()
    }

    /// Takes a connection slot for `ip`, or returns the limit that was hit.
    pub(crate) fn admit(&self, ip: IpAddr) -> Result<ConnectionSlot, usize> {
        self.connections.admit(ip)
    }

    /// Connections being served now from `ip`, as counted for `max_connections_per_ip`
    /// (0 when there is no such limit: then they are not counted).
    pub fn active_from(&self, ip: IpAddr) -> usize {
        self.connections.active_from(ip)
    }
}
