//! A user's limits: idle time, transfer rates, simultaneous logins, the addresses they may
//! log in from, the servers they may use in third-party (FXP) transfers, and their own TLS
//! requirements.
//!
//! Each limit is declared here once, in four parts side by side: its field of
//! [`UserLimits`] (whose doc and `#[arg]` make the `wharf user add` flag), its store key in
//! [`LIMIT_KEYS`] (bounds included), how a management command writes it
//! ([`UserLimits::write`]), and what the core is told ([`UserLimits::apply`] for the
//! session, [`UserLimits::describe`] for SITE DESCUSER; the TLS requirements go to the
//! core's configuration, by user name, see `users::UserStore::tls_overrides`). A value of 0
//! (or no address) means no limit, in the file and on the command line alike; the TLS
//! requirements have no flag.
//!
//! It must not check passwords or accounts, or read files.

use std::time::Duration;
use wharf_core::action::UserSummary;
use wharf_core::policy::{Cidr, IpFilter};
use wharf_core::{Account, TlsOverride};

use crate::toml_read::{set, Key, YEAR};

/// One user's limits; zero is no limit (the server's idle timeout, for `idle_time_secs`),
/// and `None` in `tls` the server's requirement.
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct UserLimits {
    /// Idle time in seconds before the session is closed (default: the server's).
    #[arg(
        long = "idle-time",
        value_name = "SECS",
        default_value_t,
        hide_default_value = true
    )]
    pub idle_time_secs: u64,
    /// Upload limit in bytes per second (0 = unlimited).
    #[arg(long, value_name = "BYTES", default_value_t, hide_default_value = true)]
    pub upload_rate: u64,
    /// Download limit in bytes per second (0 = unlimited).
    #[arg(long, value_name = "BYTES", default_value_t, hide_default_value = true)]
    pub download_rate: u64,
    /// Most simultaneous logins of this user (0 = unlimited).
    #[arg(long, value_name = "N", default_value_t, hide_default_value = true)]
    pub max_logins: u32,
    /// Most simultaneous logins of this user from one address (0 = unlimited).
    #[arg(long, value_name = "N", default_value_t, hide_default_value = true)]
    pub max_logins_per_ip: u32,
    /// Only from this address or CIDR network (repeatable; default: any).
    #[arg(long, value_name = "CIDR", value_parser = parse_cidr)]
    pub allow_ip: Vec<Cidr>,
    /// A server this user may use in third-party (FXP) transfers, in place of the partner's
    /// or the server's fxp_peers (repeatable).
    #[arg(long, value_name = "CIDR", value_parser = parse_cidr)]
    pub fxp_peers: Option<Vec<Cidr>>,
    /// This user's own TLS requirements (`tls_required_control`, `tls_required_data`).
    #[arg(skip)]
    pub tls: TlsOverride,
}

/// The store keys of the limits, in `[[user]]` entries.
pub const LIMIT_KEYS: &[Key<UserLimits>] = &[
    Key {
        name: "idle_time_secs",
        default: "0",
        doc: "seconds without a command before the session is closed; 0 = the server's \
              `idle_timeout_secs`",
        read: |r, v, l| set(&mut l.idle_time_secs, r.whole(v, 0, YEAR)),
    },
    Key {
        name: "upload_rate",
        default: "0",
        doc: "upload limit in bytes per second; 0 = unlimited",
        read: |r, v, l| set(&mut l.upload_rate, r.whole(v, 0, i64::MAX)),
    },
    Key {
        name: "download_rate",
        default: "0",
        doc: "download limit in bytes per second; 0 = unlimited",
        read: |r, v, l| set(&mut l.download_rate, r.whole(v, 0, i64::MAX)),
    },
    Key {
        name: "max_logins",
        default: "0",
        doc: "simultaneous logins of this user; 0 = unlimited",
        read: |r, v, l| set(&mut l.max_logins, r.whole(v, 0, 100_000)),
    },
    Key {
        name: "max_logins_per_ip",
        default: "0",
        doc: "simultaneous logins of this user from one address; 0 = unlimited",
        read: |r, v, l| set(&mut l.max_logins_per_ip, r.whole(v, 0, 100_000)),
    },
    Key {
        name: "allow_ip",
        default: "[]",
        doc: "addresses or CIDR networks this user may log in from; `[]` = any",
        read: |r, v, l| l.allow_ip = r.cidrs(v).unwrap_or_default(),
    },
    Key {
        name: "fxp_peers",
        default: "the partner's, else the server's",
        doc: "servers (addresses or CIDR networks) this user may use in third-party (FXP) \
              transfers, in place of the partner's or the server's list; `[]`: none",
        read: |r, v, l| set(&mut l.fxp_peers, r.cidrs(v).map(Some)),
    },
    Key {
        name: "tls_required_control",
        default: "the server's",
        doc: "this user must (`true`) or need not (`false`) protect the control connection",
        read: |r, v, l| l.tls.control = r.bool(v),
    },
    Key {
        name: "tls_required_data",
        default: "the server's",
        doc: "this user must (`true`) or need not (`false`) protect data connections",
        read: |r, v, l| l.tls.data = r.bool(v),
    },
];

impl UserLimits {
    /// Writes the limits that are set into a `[[user]]` entry, in [`LIMIT_KEYS`]' order.
    pub fn write(&self, t: &mut toml_edit::Table) {
        for (key, n) in [
            ("idle_time_secs", self.idle_time_secs),
            ("upload_rate", self.upload_rate),
            ("download_rate", self.download_rate),
            ("max_logins", u64::from(self.max_logins)),
            ("max_logins_per_ip", u64::from(self.max_logins_per_ip)),
        ] {
            if n > 0 {
                t[key] = toml_edit::value(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        if !self.allow_ip.is_empty() {
            t["allow_ip"] = cidr_array(&self.allow_ip);
        }
        if let Some(peers) = &self.fxp_peers {
            t["fxp_peers"] = cidr_array(peers);
        }
        for (key, required) in [
            ("tls_required_control", self.tls.control),
            ("tls_required_data", self.tls.data),
        ] {
            if let Some(b) = required {
                t[key] = toml_edit::value(b);
            }
        }
    }

    /// Tells the core's account of the user.
    pub fn apply(&self, account: &mut Account) {
        account.idle_timeout = limit(self.idle_time_secs).map(Duration::from_secs);
        account.upload_rate = limit(self.upload_rate);
        account.download_rate = limit(self.download_rate);
        account.max_logins = limit(self.max_logins);
        account.max_logins_per_ip = limit(self.max_logins_per_ip);
        account.ip_filter = IpFilter {
            allow: self.allow_ip.clone(),
            deny: Vec::new(),
        };
        account.fxp_peers = self.fxp_peers.clone();
    }

    /// Fills in the user's summary for SITE DESCUSER.
    pub fn describe(&self, s: &mut UserSummary) {
        s.idle_time = limit(self.idle_time_secs);
        s.upload_rate = limit(self.upload_rate);
        s.download_rate = limit(self.download_rate);
        s.max_logins = limit(self.max_logins);
        s.max_logins_per_ip = limit(self.max_logins_per_ip);
        s.allowed_ips = cidr_strings(&self.allow_ip);
        s.fxp_peers = self.fxp_peers.as_ref().map(|peers| cidr_strings(peers));
    }
}

/// A limit as the core takes it: `None` for 0, no limit.
fn limit<N: Default + PartialEq>(n: N) -> Option<N> {
    (n != N::default()).then_some(n)
}

/// A list of addresses as text, one string each.
pub fn cidr_strings(list: &[Cidr]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

/// A list of addresses as a TOML array of strings.
pub(super) fn cidr_array(list: &[Cidr]) -> toml_edit::Item {
    let mut a = toml_edit::Array::new();
    for c in list {
        a.push(c.to_string());
    }
    toml_edit::value(a)
}

/// Parses an address or CIDR network given on the command line.
pub fn parse_cidr(s: &str) -> Result<Cidr, String> {
    Cidr::parse(s).map_err(|e| e.to_string())
}
