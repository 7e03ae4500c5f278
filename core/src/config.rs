//! What a [`crate::Session`] needs to know of the server's configuration.
//!
//! Shared by every session (`Arc<Config>`). The runtime fills it from its TOML file and flags;
//! the defaults here are the documented defaults of the server.

use crate::action::SessionReuse;
use crate::policy::{Cidr, IpFilter};
use core::net::IpAddr;
use std::collections::HashMap;
use std::time::Duration;

/// Who must use TLS (on the control connection, or on data connections).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsPolicy {
    /// Nobody: TLS is offered, not required.
    #[default]
    None,
    /// Everyone but anonymous users.
    Accounts,
    /// Everyone, anonymous included.
    All,
}

impl TlsPolicy {
    /// Whether a user (anonymous or not) must use TLS under this policy.
    pub fn requires(self, anonymous: bool) -> bool {
        match self {
            TlsPolicy::None => false,
            TlsPolicy::Accounts => !anonymous,
            TlsPolicy::All => true,
        }
    }
}

/// A user's own TLS requirements, overriding the server-wide policies: `Some(true)` requires
/// TLS for that user, `Some(false)` exempts them, `None` follows the server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsOverride {
    /// Control connection.
    pub control: Option<bool>,
    /// Data connections.
    pub data: Option<bool>,
}

/// Protocol and policy settings of the core. Build with `Config::default()` and set fields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Text of the 220 greeting. Default `Wharf FTP server ready.`
    pub greeting: String,
    /// Longest command line in bytes, terminator excluded; longer lines get 500 and are
    /// discarded as they arrive. Default 4096 (4 KiB).
    pub max_line_len: usize,
    /// Most unprocessed input (pipelined commands) a session holds; beyond it the session is
    /// closed with 421. Default 64 KiB.
    pub max_buffered_input: usize,
    /// A logged-in session with no command for this long gets 421 and is closed. Default 300 s.
    pub idle_timeout: Duration,
    /// A session that has not logged in within this long gets 421 and is closed. Default 60 s.
    pub login_timeout: Duration,
    /// Failed logins allowed on one connection before it is closed. Default 3.
    pub max_login_failures: u32,
    /// Delay before the 530 reply to a failed login (the session waits; nothing else is
    /// answered meanwhile). Default 1 s.
    pub login_failure_delay: Duration,
    /// The address advertised in PASV replies (for servers behind NAT). Default: the local
    /// address of the control connection.
    pub passive_address: Option<IpAddr>,
    /// The servers (networks) every account may use in a third-party ("FXP") transfer: a
    /// PORT/EPRT may name one of them instead of the client's address, and a passive listener
    /// accepts its data connection from one of them as well as from the client. An account's
    /// own list ([`crate::Account::fxp_peers`], the user's or the partner's) replaces this
    /// one. Default empty: data connections go to and come from the client only, which is
    /// what keeps out the FTP bounce attack and passive port theft (RFC 2577).
    pub fxp_peers: Vec<Cidr>,
    /// Allow PORT/EPRT to ports below 1024. Default false.
    pub allow_privileged_data_port: bool,
    /// The runtime has a certificate: AUTH TLS is offered (and listed in FEAT). Default false.
    pub tls_available: bool,
    /// Who must protect the control connection before logging in. Default: nobody.
    pub tls_control: TlsPolicy,
    /// Who must protect data connections (PROT P) before transferring. Default: nobody.
    pub tls_data: TlsPolicy,
    /// Per-user overrides of the two policies, keyed by user name (compared case-insensitively).
    pub tls_overrides: HashMap<String, TlsOverride>,
    /// Allow CCC (clear the control connection after login, for NAT firewalls that must read
    /// PORT/PASV). Refused anyway for a user who must use TLS on the control connection.
    /// Default false.
    pub allow_ccc: bool,
    /// Which TLS session a protected data connection must resume, otherwise whoever connects
    /// to the passive port first could take the data. Default: a session of the same client
    /// ([`SessionReuse::SameClient`]).
    pub tls_session_reuse: SessionReuse,
    /// Most logged-in sessions overall (partner gateways' maxLogins); 0 = unlimited. Default 0.
    pub max_logins: u32,
    /// Most anonymous sessions; 0 = unlimited. Default 0.
    pub max_anonymous_logins: u32,
    /// Most logged-in sessions from one client address; 0 = unlimited. Default 0.
    pub max_logins_per_ip: u32,
    /// Server-wide allow/deny list, checked when a client connects (421 and close).
    /// Default: everyone.
    pub ip_filter: IpFilter,
    /// A retrieve in MODE B or C sends a restart marker every this many stored bytes (RFC 959
    /// §3.5); 0 sends none. Default 1 MiB.
    pub restart_marker_interval: u64,
    /// Whether SITE CHMOD is allowed (for an entry's owner, on an account with write
    /// permission, bits within 0o777). Default true.
    pub site_chmod: bool,
}

impl Config {
    /// Whether `user` must protect the control connection.
    pub fn control_tls_required(&self, user: &str, anonymous: bool) -> bool {
        self.override_for(user)
            .and_then(|o| o.control)
            .unwrap_or_else(|| self.tls_control.requires(anonymous))
    }

    /// Whether `user` must protect data connections.
    pub fn data_tls_required(&self, user: &str, anonymous: bool) -> bool {
        self.override_for(user)
            .and_then(|o| o.data)
            .unwrap_or_else(|| self.tls_data.requires(anonymous))
    }

    fn override_for(&self, user: &str) -> Option<&TlsOverride> {
        if self.tls_overrides.is_empty() {
            return None;
        }
        self.tls_overrides
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(user))
            .map(|(_, o)| o)
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            greeting: "Wharf FTP server ready.".into(),
            max_line_len: 4096,
            max_buffered_input: 64 * 1024,
            idle_timeout: Duration::from_secs(300),
            login_timeout: Duration::from_secs(60),
            max_login_failures: 3,
            login_failure_delay: Duration::from_secs(1),
            passive_address: None,
            fxp_peers: Vec::new(),
            allow_privileged_data_port: false,
            tls_available: false,
            tls_control: TlsPolicy::None,
            tls_data: TlsPolicy::None,
            tls_overrides: HashMap::new(),
            allow_ccc: false,
            tls_session_reuse: SessionReuse::SameClient,
            max_logins: 0,
            max_anonymous_logins: 0,
            max_logins_per_ip: 0,
            ip_filter: IpFilter::default(),
            site_chmod: true,
            restart_marker_interval: 1024 * 1024,
        }
    }
}
