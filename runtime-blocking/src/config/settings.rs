//! [`Settings`]: everything the server is told, with the defaults in place.
//!
//! It owns where each setting is kept and its default value. The core's part is the core's
//! own [`wharf_core::Config`], embedded whole (the core declares those fields and their
//! defaults); the events' part is [`EventSettings`] and the TLS loading options are
//! [`TlsSettings`], as their modules declare them. It must not read or check anything:
//! which key sets which field, with what bounds and meaning, is `keys.rs`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use wharf_core::addr::PassivePorts;

use crate::events::EventSettings;
use crate::tls::TlsSettings;
use crate::users::DEFAULT_LOGIN_CACHE;

/// The configuration file used when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "wharf.toml";

/// Everything the server is told, with defaults applied. The key that sets each field, its
/// default and what it means are in [`super::keys::KEYS`]; durations are `_secs` / `_ms` in
/// the key.
#[derive(Clone, Debug)]
pub struct Settings {
    /// What every session's core is told: greeting, line length, idle and login timeouts,
    /// login failures and their delay, the PASV address, the data-address rules, the TLS
    /// requirements, CCC, TLS session reuse, the login limits, the IP lists, SITE CHMOD and
    /// restart markers. A session gets it as an `Arc` ([`Settings::core_config`]).
    pub core: wharf_core::Config,
    /// `listen`: the FTP listeners.
    pub listen: Vec<SocketAddr>,
    /// `root`: the folder of `--user` accounts and the generated user.
    pub root: PathBuf,
    /// `users_file`: the user store.
    pub users_file: PathBuf,
    /// Whether `users_file` was given explicitly (then it must exist).
    pub users_file_explicit: bool,
    /// `anonymous`: accept anonymous logins.
    pub anonymous: bool,
    /// `anonymous_root`: the folder anonymous users see; `None`: `root`.
    pub anonymous_root: Option<PathBuf>,
    /// `max_connections`: connections served at once (= worker threads at most).
    ///
    /// The tension: each connection is a thread, so the bound is also a bound on threads,
    /// memory and file descriptors. A low default protects a small machine from a flood; a
    /// high one keeps a busy server from turning partners away (they see `421`, not a
    /// slow server). 2048 carries 1,000 idle partners with room to spare (vsftpd's
    /// `max_clients` is 2000), at about 22 KiB per idle session (~45 MiB for 2048) and a
    /// 256 KiB stack reserved per thread (address space, not memory). Up to four
    /// descriptors a session: at start the server raises its soft `RLIMIT_NOFILE` towards
    /// that need (see the limits module) and warns when the hard limit is lower. Transfers
    /// use more memory (their buffers) while they run; lower this on a small machine.
    pub max_connections: usize,
    /// `max_connections_per_ip`: connections at once from one address; 0 = no limit.
    pub max_connections_per_ip: usize,
    /// `passive_ports`: the ports of passive data connections.
    pub passive_ports: PassivePorts,
    /// `active_local_port`: the local port of active data connections; `None`: any.
    pub active_local_port: Option<u16>,
    /// `data_connect_timeout_secs`: the wait for a data connection.
    pub data_connect_timeout: Duration,
    /// `data_stall_timeout_secs`: the longest a transfer may move nothing.
    pub data_stall_timeout: Duration,
    /// `login_cache_secs`: how long a verified password is remembered (see the users
    /// module for the trade-off); zero: not at all.
    pub login_cache: Duration,
    /// `tls`: offer FTPS.
    pub tls: bool,
    /// `tls_cert`: the certificate chain; `None`: the self-signed one.
    pub tls_cert: Option<PathBuf>,
    /// `tls_key`: its private key.
    pub tls_key: Option<PathBuf>,
    /// `tls_dir`: where the self-signed certificate is made and kept.
    pub tls_dir: PathBuf,
    /// `tls_key_password`, `tls_key_password_file`, `tls_min_version`, `tls_client_cert`,
    /// `tls_client_ca`, `tls_client_identity`: how the certificate is loaded and clients'
    /// certificates checked. Its certificate and key paths are left empty here:
    /// [`Settings::tls_settings`] fills them in once the certificate is known.
    pub tls_options: TlsSettings,
    /// `implicit_listen`: the implicit-TLS listeners.
    pub implicit_listen: Vec<SocketAddr>,
    /// `events_file`, `xferlog_file`, `event_command*`: where events go.
    pub events: EventSettings,
    /// `partners_root`: the folder of the partners' trees.
    pub partners_root: PathBuf,
    /// `atomic_uploads`: uploads are renamed into place when complete.
    pub atomic_uploads: bool,
    /// `direct_uploads`: large binary uploads are written with direct I/O.
    pub direct_uploads: bool,
    /// `ban_after_failures`: failed logins from one address that ban it; 0 = no bans.
    pub ban_after_failures: u32,
    /// `ban_window_secs`: the window those failures are counted in.
    pub ban_window: Duration,
    /// `ban_duration_secs`: how long a ban lasts.
    pub ban_duration: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            core: wharf_core::Config::default(),
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 2121))],
            root: PathBuf::from("wharf-data"),
            users_file: PathBuf::from("wharf-users.toml"),
            users_file_explicit: false,
            anonymous: false,
            anonymous_root: None,
            max_connections: 2048,
            max_connections_per_ip: 0,
            passive_ports: PassivePorts::default(),
            active_local_port: None,
            data_connect_timeout: Duration::from_secs(30),
            data_stall_timeout: Duration::from_secs(300),
            login_cache: DEFAULT_LOGIN_CACHE,
            tls: true,
            tls_cert: None,
            tls_key: None,
            tls_dir: PathBuf::from("wharf-tls"),
            tls_options: TlsSettings::new("", ""),
            implicit_listen: Vec::new(),
            events: EventSettings::default(),
            partners_root: PathBuf::from("wharf-partners"),
            atomic_uploads: true,
            direct_uploads: true,
            ban_after_failures: 10,
            ban_window: Duration::from_secs(600),
            ban_duration: Duration::from_secs(900),
        }
    }
}

impl Settings {
    /// The folder anonymous users see.
    pub fn anonymous_root(&self) -> &Path {
        self.anonymous_root.as_deref().unwrap_or(&self.root)
    }

    /// The core's part of the configuration, to share between sessions.
    pub fn core_config(&self) -> Arc<wharf_core::Config> {
        Arc::new(self.core.clone())
    }

    /// What the TLS module needs, for a certificate and key at these paths (the configured
    /// ones, or the self-signed pair).
    pub fn tls_settings(&self, cert: &Path, key: &Path) -> TlsSettings {
        TlsSettings {
            cert_path: cert.to_path_buf(),
            key_path: key.to_path_buf(),
            ..self.tls_options.clone()
        }
    }
}
