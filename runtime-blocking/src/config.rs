//! The server's configuration: the TOML file (`--config FILE`), its keys and defaults, the
//! command-line flags that override it, and errors that name the file, the key and the problem.
//!
//! Every key is optional; [`Settings`] documents each with its default. The file is checked
//! key by key so that every problem is reported at once (not only the first), unknown keys
//! included. Relative paths in the file are relative to the file's folder; relative paths on
//! the command line are relative to the current folder.
//!
//! Example:
//! ```toml
//! listen = ["0.0.0.0:21", "[::]:21"]
//! root = "/srv/ftp"
//! passive_ports = "30000-30100"
//! passive_address = "203.0.113.7"
//! max_connections = 200
//! tls_cert = "/etc/wharf/cert.pem"
//! tls_key = "/etc/wharf/key.pem"
//! tls_required_control = "accounts"
//! tls_required_data = "accounts"
//! implicit_listen = ["0.0.0.0:990"]
//! ```
//!
//! The TLS keys (`tls`, `tls_*`, `implicit_listen`, `allow_ccc`, `require_tls_session_reuse`)
//! are described in docs/ftps.md, with what each does on the wire.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use wharf_core::addr::{canonical_ip, PassivePorts};
use wharf_core::policy::{Cidr, IpFilter};
use wharf_core::{Secret, SessionReuse, TlsPolicy};

use crate::event_command::CommandLine;
use crate::events::EVENT_NAMES;
use crate::tls::{ClientCertMode, ClientIdentitySource, MinTlsVersion, TlsSettings};

/// One problem in a configuration: where (file, key) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `command line`).
    pub file: String,
    /// The key (or flag), when the problem has one.
    pub key: Option<String>,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl ConfigError {
    /// A problem with `key` in `file`.
    pub fn new(file: &str, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.into(),
            key: Some(key.into()),
            message: message.into(),
        }
    }

    /// A problem with the file as a whole.
    pub fn file(file: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.into(),
            key: None,
            message: message.into(),
        }
    }

    /// A TOML syntax error in `text`, located by line and column.
    pub fn syntax(file: &str, text: &str, e: &toml::de::Error) -> ConfigError {
        let message = e.message().trim().replace('\n', "; ");
        match e.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                ConfigError::file(file, format!("line {line}, column {col}: {message}"))
            }
            None => ConfigError::file(file, message),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{}: key '{}': {}", self.file, key, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Everything the server is told, with defaults applied. Each field is the config key of the
/// same name (durations: `_secs` / `_ms` in the key).
#[derive(Clone, Debug)]
pub struct Settings {
    /// `listen`: addresses of the FTP listeners, `"ip:port"` (IPv6 as `"[::1]:2121"`); port 0
    /// picks a free port. Default `["127.0.0.1:2121"]`.
    pub listen: Vec<SocketAddr>,
    /// `root`: the folder served to users given with `--user` and to the generated user; made
    /// if missing. Default `./wharf-data`.
    pub root: PathBuf,
    /// `users_file`: the users file (see the users module). Default `./wharf-users.toml`,
    /// used when it exists; a file named in the configuration must exist.
    pub users_file: PathBuf,
    /// Whether `users_file` was given explicitly (then it must exist).
    pub users_file_explicit: bool,
    /// `anonymous`: accept `anonymous` / `ftp` with any password, read-only. Default false.
    pub anonymous: bool,
    /// `anonymous_root`: the folder anonymous users see. Default: `root`.
    pub anonymous_root: Option<PathBuf>,
    /// `max_connections`: connections served at once (= worker threads at most); one more
    /// gets `421` and is closed. Default 2048.
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
    /// `max_connections_per_ip`: connections at once from one client address; 0 = no limit.
    /// Default 0.
    pub max_connections_per_ip: usize,
    /// `passive_ports`: ports for passive data connections, e.g. `"30000-30100, 40000-"`;
    /// `""` lets the system pick. Default `""`.
    pub passive_ports: PassivePorts,
    /// `passive_address`: the IPv4 address advertised in PASV replies (behind NAT); `""` means
    /// the control connection's local address. Default `""`.
    pub passive_address: Option<IpAddr>,
    /// `active_local_port`: the local port active-mode data connections come from (20 by
    /// tradition, which needs privileges); 0 = any. Default 0.
    pub active_local_port: Option<u16>,
    /// `data_connect_timeout_secs`: how long to wait for a data connection (passive accept,
    /// active connect) before `425`. Default 30.
    pub data_connect_timeout: Duration,
    /// `data_stall_timeout_secs`: a transfer that moves no byte for this long ends with
    /// `426`. Default 300.
    pub data_stall_timeout: Duration,
    /// `idle_timeout_secs`: a logged-in session without a command for this long gets `421`
    /// and is closed. Default 300.
    pub idle_timeout: Duration,
    /// `login_timeout_secs`: a connection that has not logged in within this long gets `421`
    /// and is closed. Default 60.
    pub login_timeout: Duration,
    /// `max_login_failures`: failed logins on one connection before it is closed. Default 3.
    pub max_login_failures: u32,
    /// `login_failure_delay_ms`: delay before the `530` of a failed login. Default 1000.
    pub login_failure_delay: Duration,
    /// `login_cache_secs`: how long a successful password check is remembered, so that the
    /// same user logging in again with the same password skips the argon2 verification
    /// (one costs ~9 ms of CPU); 0 turns it off. Failed logins always pay the full check.
    /// The trade-off: while an entry lives (in memory only, as an HMAC under a random
    /// per-process key), someone able to read the server's memory could test guesses of
    /// that password quickly. A password change or a reload of the user store voids the
    /// entries. See the users module and the README (Security defaults). Default 300 (0 to
    /// 86400).
    pub login_cache: Duration,
    /// `max_line_length`: longest command line in bytes; longer ones get `500`. Default 4096.
    pub max_line_length: usize,
    /// `fxp_peers`: the servers (addresses or CIDR networks) every account may use in a
    /// third-party (FXP) transfer, unless its user's or partner's `fxp_peers` replaces the
    /// list. Default empty: data connections only to and from the client (docs/protocol.md).
    pub fxp_peers: Vec<Cidr>,
    /// `allow_privileged_data_port`: allow PORT/EPRT to ports below 1024. Default false.
    pub allow_privileged_data_port: bool,
    /// `greeting`: text of the `220` greeting; several lines make a multi-line reply. Default
    /// `Wharf FTP server ready.`
    pub greeting: String,
    /// `tls`: offer FTPS (AUTH TLS on the listeners, and the implicit-TLS listeners). Default
    /// true: with no `tls_cert`, a self-signed certificate is made in `tls_dir` on first start.
    pub tls: bool,
    /// `tls_cert`: PEM file with the server certificate, then any intermediates. Default none
    /// (the self-signed certificate). Needs `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// `tls_key`: PEM file with the private key (PKCS#8, PKCS#1, SEC1, or encrypted PKCS#8).
    /// Default none. Needs `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// `tls_key_password`: password of an encrypted `tls_key`. Default none. Never logged.
    pub tls_key_password: Option<Secret>,
    /// `tls_key_password_file`: file whose first line is that password (exclusive with
    /// `tls_key_password`). Default none.
    pub tls_key_password_file: Option<PathBuf>,
    /// `tls_dir`: where the self-signed certificate and key are made and kept when no
    /// `tls_cert` is set. Must not be inside a folder FTP users see. Default `./wharf-tls`.
    pub tls_dir: PathBuf,
    /// `tls_min_version`: `"1.2"` (TLS 1.2 and 1.3) or `"1.3"`. Default `"1.2"`; TLS 1.0 and
    /// 1.1 are never offered.
    pub tls_min_version: MinTlsVersion,
    /// `tls_client_cert`: `off`, `request` or `require` a client certificate. Default `off`.
    pub tls_client_cert: ClientCertMode,
    /// `tls_client_ca`: PEM bundle of the CAs client certificates must chain to; required
    /// unless `tls_client_cert` is `off`. Default none.
    pub tls_client_ca: Option<PathBuf>,
    /// `tls_client_identity`: which field of a client certificate names the user: `cn`,
    /// `san-email` or `san-dns`. Default `cn`.
    pub tls_client_identity: ClientIdentitySource,
    /// `tls_required_control`: who must protect the control connection before logging in:
    /// `none`, `accounts` (everyone but anonymous) or `all`. Default `none`.
    pub tls_required_control: TlsPolicy,
    /// `tls_required_data`: who must protect data connections (PROT P): `none`, `accounts`
    /// or `all`. Default `none`.
    pub tls_required_data: TlsPolicy,
    /// `implicit_listen`: addresses of implicit-TLS listeners (the handshake comes first;
    /// port 990 by tradition). Default none.
    pub implicit_listen: Vec<SocketAddr>,
    /// `allow_ccc`: accept CCC (the control connection goes back to the clear after login).
    /// Default false.
    pub allow_ccc: bool,
    /// `require_tls_session_reuse`: a protected data connection must resume the TLS session
    /// of its control connection. Default true; turning it off lets whoever reaches the
    /// passive port first take the data.
    pub require_tls_session_reuse: bool,
    /// `tls_session_reuse_scope`: whose session a protected data connection may resume:
    /// `"client"` (default) — one of any control connection of the same logged-in user from
    /// the same client address (rclone and other Go clients share one session cache between
    /// their connections); `"connection"` — only its own control connection's.
    pub tls_session_reuse_scope: SessionReuse,
    /// `events_file`: file the events (connect, login, upload_complete, ...) are appended to,
    /// one JSON object per line (see docs/events.md). Its folder must exist. Default none
    /// (no events file).
    pub events_file: Option<PathBuf>,
    /// `event_command`: program run once per event with the event's JSON line on stdin, as
    /// an array `["/path/to/program", "arg", ...]` run without a shell; the program is an
    /// absolute path or a name found on `PATH` (resolved when the configuration is read).
    /// Default none.
    pub event_command: Option<CommandLine>,
    /// `event_command_timeout_secs`: an event command still running after this long is
    /// killed. Default 10.
    pub event_command_timeout: Duration,
    /// `event_command_events`: the events the command runs for, e.g. `["upload_complete"]`.
    /// Default: every event.
    pub event_command_events: Option<Vec<String>>,
    /// `xferlog_file`: transfer log in the standard xferlog format (wu-ftpd, vsftpd,
    /// ProFTPD; see docs/events.md). Its folder must exist. Default none.
    pub xferlog_file: Option<PathBuf>,
    /// `partners_root`: the folder holding each partner's tree (`<partners_root>/<partner>`,
    /// unless the store gives a partner its own `root`); must not be inside a folder other
    /// users are served. Default `./wharf-partners`.
    pub partners_root: PathBuf,
    /// `atomic_uploads`: an upload is written to a hidden partial file and renamed into place
    /// only when complete, so nobody sees half a file under its name (see docs/partners.md).
    /// Default true.
    pub atomic_uploads: bool,
    /// `direct_uploads`: a binary upload larger than one 8 MiB chunk is written with direct
    /// I/O (`O_DIRECT`, past the page cache) by a writer thread while the next chunk is read;
    /// smaller uploads, and file systems that refuse direct I/O, go through the page cache
    /// (see docs/transfers.md). Default true.
    pub direct_uploads: bool,
    /// `max_logins`: logged-in sessions at once, all users together; one more gets `421
    /// Maximum login limit has been reached.` 0 = unlimited. Default 0.
    pub max_logins: u32,
    /// `max_anonymous_logins`: anonymous sessions at once; 0 = unlimited. Default 0.
    pub max_anonymous_logins: u32,
    /// `max_logins_per_ip`: logged-in sessions at once from one client address; 0 =
    /// unlimited. Default 0.
    pub max_logins_per_ip: u32,
    /// `ip_allow`: addresses or CIDR networks (IPv4, IPv6) that may connect at all; empty =
    /// everyone not denied. Default `[]`.
    pub ip_allow: Vec<Cidr>,
    /// `ip_deny`: addresses or networks that may not connect (deny wins over allow); they get
    /// `421` and are closed at once. Default `[]`.
    pub ip_deny: Vec<Cidr>,
    /// `ban_after_failures`: failed logins from one address (across connections) within
    /// `ban_window_secs` after which it is banned: new connections get `421` and are closed.
    /// 0 = no bans. Default 10.
    pub ban_after_failures: u32,
    /// `ban_window_secs`: the window the failures are counted in. Default 600.
    pub ban_window: Duration,
    /// `ban_duration_secs`: how long a ban lasts. Default 900.
    pub ban_duration: Duration,
    /// `site_chmod`: allow SITE CHMOD (for an entry's owner, on an account with write
    /// permission). Default true.
    pub site_chmod: bool,
    /// `restart_marker_interval`: in MODE B and C, a restart marker in a download every so
    /// many stored bytes; 0 for none. Default 1 MiB (docs/representations.md).
    pub restart_marker_interval: u64,
}

impl Default for Settings {
    fn default() -> Settings {
        let core = wharf_core::Config::default();
        Settings {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 2121))],
            root: PathBuf::from("wharf-data"),
            users_file: PathBuf::from("wharf-users.toml"),
            users_file_explicit: false,
            anonymous: false,
            anonymous_root: None,
            max_connections: 2048,
            max_connections_per_ip: 0,
            passive_ports: PassivePorts::default(),
            passive_address: None,
            active_local_port: None,
            data_connect_timeout: Duration::from_secs(30),
            data_stall_timeout: Duration::from_secs(300),
            idle_timeout: core.idle_timeout,
            login_timeout: core.login_timeout,
            max_login_failures: core.max_login_failures,
            login_failure_delay: core.login_failure_delay,
            login_cache: crate::users::DEFAULT_LOGIN_CACHE,
            max_line_length: core.max_line_len,
            fxp_peers: Vec::new(),
            allow_privileged_data_port: false,
            greeting: core.greeting,
            tls: true,
            tls_cert: None,
            tls_key: None,
            tls_key_password: None,
            tls_key_password_file: None,
            tls_dir: PathBuf::from("wharf-tls"),
            tls_min_version: MinTlsVersion::default(),
            tls_client_cert: ClientCertMode::default(),
            tls_client_ca: None,
            tls_client_identity: ClientIdentitySource::default(),
            tls_required_control: core.tls_control,
            tls_required_data: core.tls_data,
            implicit_listen: Vec::new(),
            allow_ccc: core.allow_ccc,
            require_tls_session_reuse: core.tls_session_reuse.required(),
            tls_session_reuse_scope: SessionReuse::SameClient,
            events_file: None,
            event_command: None,
            event_command_timeout: Duration::from_secs(10),
            event_command_events: None,
            xferlog_file: None,
            partners_root: PathBuf::from("wharf-partners"),
            atomic_uploads: true,
            direct_uploads: true,
            max_logins: core.max_logins,
            max_anonymous_logins: core.max_anonymous_logins,
            max_logins_per_ip: core.max_logins_per_ip,
            ip_allow: Vec::new(),
            ip_deny: Vec::new(),
            ban_after_failures: 10,
            ban_window: Duration::from_secs(600),
            ban_duration: Duration::from_secs(900),
            site_chmod: core.site_chmod,
            restart_marker_interval: core.restart_marker_interval,
        }
    }
}

/// Every key the file may hold.
pub const KEYS: &[&str] = &[
    "listen",
    "root",
    "users_file",
    "anonymous",
    "anonymous_root",
    "max_connections",
    "max_connections_per_ip",
    "passive_ports",
    "passive_address",
    "active_local_port",
    "data_connect_timeout_secs",
    "data_stall_timeout_secs",
    "idle_timeout_secs",
    "login_timeout_secs",
    "max_login_failures",
    "login_failure_delay_ms",
    "login_cache_secs",
    "max_line_length",
    "fxp_peers",
    "allow_privileged_data_port",
    "greeting",
    "tls",
    "tls_cert",
    "tls_key",
    "tls_key_password",
    "tls_key_password_file",
    "tls_dir",
    "tls_min_version",
    "tls_client_cert",
    "tls_client_ca",
    "tls_client_identity",
    "tls_required_control",
    "tls_required_data",
    "implicit_listen",
    "allow_ccc",
    "require_tls_session_reuse",
    "tls_session_reuse_scope",
    "events_file",
    "event_command",
    "event_command_timeout_secs",
    "event_command_events",
    "xferlog_file",
    "partners_root",
    "atomic_uploads",
    "direct_uploads",
    "max_logins",
    "max_anonymous_logins",
    "max_logins_per_ip",
    "ip_allow",
    "ip_deny",
    "ban_after_failures",
    "ban_window_secs",
    "ban_duration_secs",
    "site_chmod",
    "restart_marker_interval",
];

/// Reads one key's value, collecting problems.
struct Reader<'a> {
    file: &'a str,
    base: &'a Path,
    errors: Vec<ConfigError>,
}

impl Reader<'_> {
    fn err(&mut self, key: &str, message: impl Into<String>) {
        self.errors.push(ConfigError::new(self.file, key, message));
    }

    fn string(&mut self, key: &str, v: &toml::Value) -> Option<String> {
        match v {
            toml::Value::String(s) => Some(s.clone()),
            v => {
                self.err(key, format!("must be a string, not {}", v.type_str()));
                None
            }
        }
    }

    fn bool(&mut self, key: &str, v: &toml::Value) -> Option<bool> {
        match v {
            toml::Value::Boolean(b) => Some(*b),
            v => {
                self.err(key, format!("must be true or false, not {}", v.type_str()));
                None
            }
        }
    }

    fn int(&mut self, key: &str, v: &toml::Value, min: i64, max: i64) -> Option<i64> {
        match v {
            toml::Value::Integer(i) if (min..=max).contains(i) => Some(*i),
            toml::Value::Integer(i) => {
                self.err(key, format!("{i} is out of range ({min} to {max})"));
                None
            }
            v => {
                self.err(
                    key,
                    format!(
                        "must be a whole number ({min} to {max}), not {}",
                        v.type_str()
                    ),
                );
                None
            }
        }
    }

    /// An address or an array of addresses (`ip:port`); `example` shows the form.
    fn addresses(&mut self, key: &str, v: &toml::Value, example: &str) -> Option<Vec<SocketAddr>> {
        let items: Vec<&toml::Value> = match v {
            toml::Value::Array(a) => a.iter().collect(),
            toml::Value::String(_) => vec![v],
            v => {
                self.err(
                    key,
                    format!(
                        "must be an array of strings such as [\"{example}\"], not {}",
                        v.type_str()
                    ),
                );
                return None;
            }
        };
        let mut list = Vec::new();
        let mut bad = false;
        for item in items {
            if let Some(text) = self.string(key, item) {
                match parse_listen(&text) {
                    Ok(a) => list.push(a),
                    Err(m) => {
                        bad = true;
                        self.err(key, m)
                    }
                }
            } else {
                bad = true;
            }
        }
        (!bad).then_some(list)
    }

    /// An array of strings; `example` shows the form.
    fn strings(&mut self, key: &str, v: &toml::Value, example: &str) -> Option<Vec<String>> {
        let list = match v {
            toml::Value::Array(a) => a,
            v => {
                self.err(
                    key,
                    format!(
                        "must be an array of strings such as {example}, not {}",
                        v.type_str()
                    ),
                );
                return None;
            }
        };
        let mut out = Vec::with_capacity(list.len());
        for item in list {
            match item {
                toml::Value::String(s) => out.push(s.clone()),
                other => {
                    self.err(
                        key,
                        format!(
                            "must be an array of strings such as {example}; it holds {}",
                            other.type_str()
                        ),
                    );
                    return None;
                }
            }
        }
        Some(out)
    }

    /// A log file to append to: its folder must exist, and the file, if there, must be a
    /// file.
    fn log_file(&mut self, key: &str, v: &toml::Value) -> Option<PathBuf> {
        let p = self.path(key, v)?;
        let folder = match p.parent() {
            Some(f) if !f.as_os_str().is_empty() => f.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !folder.is_dir() {
            self.err(
                key,
                format!(
                    "{}: the folder {} does not exist",
                    p.display(),
                    folder.display()
                ),
            );
            return None;
        }
        if p.exists() && !p.is_file() {
            self.err(key, format!("{} exists and is not a file", p.display()));
            return None;
        }
        Some(p)
    }

    /// An address or CIDR network, or an array of them.
    fn cidrs(&mut self, key: &str, v: &toml::Value) -> Option<Vec<Cidr>> {
        let items: Vec<&toml::Value> = match v {
            toml::Value::Array(a) => a.iter().collect(),
            toml::Value::String(_) => vec![v],
            v => {
                self.err(
                    key,
                    format!(
                        "must be an array of addresses or CIDR networks such as \
                         [\"192.0.2.0/24\", \"2001:db8::/32\"], not {}",
                        v.type_str()
                    ),
                );
                return None;
            }
        };
        let mut out = Vec::new();
        let mut bad = false;
        for item in items {
            match item.as_str().map(Cidr::parse) {
                Some(Ok(c)) => out.push(c),
                Some(Err(e)) => {
                    bad = true;
                    self.err(key, e.to_string());
                }
                None => {
                    bad = true;
                    self.err(key, format!("must hold strings, not {}", item.type_str()));
                }
            }
        }
        (!bad).then_some(out)
    }

    fn path(&mut self, key: &str, v: &toml::Value) -> Option<PathBuf> {
        let s = self.string(key, v)?;
        if s.is_empty() {
            self.err(key, "must not be empty");
            return None;
        }
        Some(self.base.join(s))
    }
}

/// Parses a listen address, `ip:port`.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!("'{s}': not an address with a port, such as 127.0.0.1:2121 or [::1]:2121")
    })
}

/// Checks an `event_command` argv: a program that is an absolute path to an executable file,
/// or a name (without `/`) found on `PATH`, which is resolved to its absolute path.
pub fn parse_event_command(argv: &[String]) -> Result<CommandLine, String> {
    use std::os::unix::fs::PermissionsExt;
    let Some((program, args)) = argv.split_first() else {
        return Err("must name a program: [\"/path/to/program\", \"arg\", ...]".into());
    };
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let program_path = if program.contains('/') {
        let p = PathBuf::from(program);
        if !p.is_absolute() {
            return Err(format!(
                "'{program}': the program must be an absolute path or a name found on PATH"
            ));
        }
        if !p.exists() {
            return Err(format!("'{program}' does not exist"));
        }
        if !executable(&p) {
            return Err(format!("'{program}' is not an executable file"));
        }
        p
    } else if program.is_empty() {
        return Err("the program name is empty".into());
    } else {
        let path = std::env::var_os("PATH").unwrap_or_default();
        match std::env::split_paths(&path)
            .filter(|d| d.is_absolute())
            .map(|d| d.join(program))
            .find(|p| executable(p))
        {
            Some(p) => p,
            None => {
                return Err(format!(
                    "'{program}' is not found on PATH; give its absolute path"
                ))
            }
        }
    };
    if argv.iter().any(|a| a.contains('\0')) {
        return Err("an argument contains a NUL character".into());
    }
    Ok(CommandLine {
        program: program_path,
        args: args.to_vec(),
    })
}

/// Parses a TLS policy: `none`, `accounts` or `all`.
pub fn parse_tls_policy(s: &str) -> Result<TlsPolicy, String> {
    match s.trim() {
        "none" => Ok(TlsPolicy::None),
        "accounts" => Ok(TlsPolicy::Accounts),
        "all" => Ok(TlsPolicy::All),
        other => Err(format!(
            "'{other}': expected none, accounts (everyone but anonymous) or all"
        )),
    }
}

fn policy_name(p: TlsPolicy) -> &'static str {
    match p {
        TlsPolicy::None => "none",
        TlsPolicy::Accounts => "accounts",
        TlsPolicy::All => "all",
    }
}

/// Parses a passive port list, with the message the config errors use.
pub fn parse_passive_ports(s: &str) -> Result<PassivePorts, String> {
    PassivePorts::parse(s).map_err(|e| e.to_string().replace('`', "'"))
}

/// Checks a greeting text.
pub fn check_greeting(s: &str) -> Result<(), String> {
    if s.contains(['\r', '\0']) {
        Err("must not contain CR or NUL characters (use \\n for more lines)".into())
    } else if s.len() > 2000 {
        Err(format!("is {} bytes long; the limit is 2000", s.len()))
    } else {
        Ok(())
    }
}

impl Settings {
    /// Reads a configuration file. Every problem is reported.
    pub fn load(path: &Path) -> Result<Settings, Vec<ConfigError>> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![ConfigError::file(
                &file,
                format!("cannot read the file: {e}"),
            )]
        })?;
        Settings::parse(&text, &file, path.parent().unwrap_or(Path::new("")))
    }

    /// Parses the text of a configuration file named `file`; relative paths are taken from
    /// `base`.
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<Settings, Vec<ConfigError>> {
        let (s, errors) = Settings::parse_all(text, file, base);
        if errors.is_empty() {
            Ok(s)
        } else {
            Err(errors)
        }
    }

    /// As [`Settings::parse`], but returns the settings that could be read (defaults in place
    /// of bad values) together with every problem, so that checks can go on.
    pub fn parse_all(text: &str, file: &str, base: &Path) -> (Settings, Vec<ConfigError>) {
        let table: toml::Table = match text.parse() {
            Ok(t) => t,
            Err(e) => {
                return (
                    Settings::default(),
                    vec![ConfigError::syntax(file, text, &e)],
                )
            }
        };
        let mut s = Settings::default();
        let mut r = Reader {
            file,
            base,
            errors: Vec::new(),
        };
        let secs = |r: &mut Reader, k: &str, v: &toml::Value, min: i64| {
            r.int(k, v, min, 365 * 86_400)
                .map(|n| Duration::from_secs(n as u64))
        };
        for (key, v) in &table {
            let k = key.as_str();
            match k {
                "listen" => {
                    if let Some(list) = r.addresses(k, v, "127.0.0.1:2121") {
                        if list.is_empty() {
                            r.err(k, "must hold at least one address");
                        } else {
                            s.listen = list;
                        }
                    }
                }
                "implicit_listen" => {
                    if let Some(list) = r.addresses(k, v, "0.0.0.0:990") {
                        s.implicit_listen = list;
                    }
                }
                "tls" => s.tls = r.bool(k, v).unwrap_or(s.tls),
                "tls_cert" => s.tls_cert = r.path(k, v).or(s.tls_cert.take()),
                "tls_key" => s.tls_key = r.path(k, v).or(s.tls_key.take()),
                "tls_key_password" => {
                    if let Some(pw) = r.string(k, v) {
                        if pw.is_empty() {
                            r.err(
                                k,
                                "must not be empty (leave the key out for an unencrypted key)",
                            );
                        } else {
                            s.tls_key_password = Some(Secret::new(pw));
                        }
                    }
                }
                "tls_key_password_file" => {
                    s.tls_key_password_file = r.path(k, v).or(s.tls_key_password_file.take())
                }
                "tls_dir" => s.tls_dir = r.path(k, v).unwrap_or(s.tls_dir),
                "tls_min_version" => {
                    if let Some(text) = r.string(k, v) {
                        match text.parse() {
                            Ok(m) => s.tls_min_version = m,
                            Err(m) => r.err(k, m),
                        }
                    }
                }
                "tls_client_cert" => {
                    if let Some(text) = r.string(k, v) {
                        match text.parse() {
                            Ok(m) => s.tls_client_cert = m,
                            Err(m) => r.err(k, m),
                        }
                    }
                }
                "tls_client_ca" => s.tls_client_ca = r.path(k, v).or(s.tls_client_ca.take()),
                "tls_client_identity" => {
                    if let Some(text) = r.string(k, v) {
                        match text.parse() {
                            Ok(m) => s.tls_client_identity = m,
                            Err(m) => r.err(k, m),
                        }
                    }
                }
                "tls_required_control" | "tls_required_data" => {
                    if let Some(text) = r.string(k, v) {
                        match parse_tls_policy(&text) {
                            Ok(p) if k == "tls_required_control" => s.tls_required_control = p,
                            Ok(p) => s.tls_required_data = p,
                            Err(m) => r.err(k, m),
                        }
                    }
                }
                "allow_ccc" => s.allow_ccc = r.bool(k, v).unwrap_or(s.allow_ccc),
                "require_tls_session_reuse" => {
                    s.require_tls_session_reuse =
                        r.bool(k, v).unwrap_or(s.require_tls_session_reuse)
                }
                "tls_session_reuse_scope" => {
                    if let Some(text) = r.string(k, v) {
                        match text.as_str() {
                            "client" => s.tls_session_reuse_scope = SessionReuse::SameClient,
                            "connection" => {
                                s.tls_session_reuse_scope = SessionReuse::SameConnection
                            }
                            other => r.err(
                                k,
                                format!(
                                    "'{other}': expected \"client\" (a session of the same user \
                                     from the same address) or \"connection\" (only the control \
                                     connection's own)"
                                ),
                            ),
                        }
                    }
                }
                "root" => s.root = r.path(k, v).unwrap_or(s.root),
                "users_file" => {
                    if let Some(p) = r.path(k, v) {
                        s.users_file = p;
                        s.users_file_explicit = true;
                    }
                }
                "anonymous" => s.anonymous = r.bool(k, v).unwrap_or(s.anonymous),
                "anonymous_root" => s.anonymous_root = r.path(k, v).or(s.anonymous_root),
                "max_connections" => {
                    if let Some(n) = r.int(k, v, 1, 100_000) {
                        s.max_connections = n as usize;
                    }
                }
                "max_connections_per_ip" => {
                    if let Some(n) = r.int(k, v, 0, 100_000) {
                        s.max_connections_per_ip = n as usize;
                    }
                }
                "passive_ports" => {
                    let spec = match v {
                        toml::Value::Integer(i) => Some(i.to_string()),
                        v => r.string(k, v),
                    };
                    if let Some(spec) = spec {
                        match parse_passive_ports(&spec) {
                            Ok(p) => s.passive_ports = p,
                            Err(m) => r.err(k, m),
                        }
                    }
                }
                "passive_address" => {
                    if let Some(text) = r.string(k, v) {
                        if text.trim().is_empty() {
                            s.passive_address = None;
                        } else {
                            match text.trim().parse::<IpAddr>().map(canonical_ip) {
                                Ok(ip @ IpAddr::V4(_)) => s.passive_address = Some(ip),
                                Ok(IpAddr::V6(_)) => r.err(
                                    k,
                                    format!(
                                        "'{text}': an IPv6 address cannot be advertised: PASV \
                                         replies carry IPv4 addresses only (EPSV, which IPv6 \
                                         clients use, carries none); give the IPv4 address \
                                         clients reach, or leave it empty"
                                    ),
                                ),
                                Err(_) => r.err(
                                    k,
                                    format!("'{text}': not an IP address such as 203.0.113.7"),
                                ),
                            }
                        }
                    }
                }
                "active_local_port" => {
                    if let Some(n) = r.int(k, v, 0, 65_535) {
                        s.active_local_port = (n != 0).then_some(n as u16);
                    }
                }
                "data_connect_timeout_secs" => {
                    s.data_connect_timeout = secs(&mut r, k, v, 1).unwrap_or(s.data_connect_timeout)
                }
                "data_stall_timeout_secs" => {
                    s.data_stall_timeout = secs(&mut r, k, v, 1).unwrap_or(s.data_stall_timeout)
                }
                "idle_timeout_secs" => {
                    s.idle_timeout = secs(&mut r, k, v, 1).unwrap_or(s.idle_timeout)
                }
                "login_timeout_secs" => {
                    s.login_timeout = secs(&mut r, k, v, 1).unwrap_or(s.login_timeout)
                }
                "max_login_failures" => {
                    if let Some(n) = r.int(k, v, 1, 1000) {
                        s.max_login_failures = n as u32;
                    }
                }
                "login_failure_delay_ms" => {
                    if let Some(n) = r.int(k, v, 0, 60_000) {
                        s.login_failure_delay = Duration::from_millis(n as u64);
                    }
                }
                "login_cache_secs" => {
                    if let Some(n) = r.int(k, v, 0, 86_400) {
                        s.login_cache = Duration::from_secs(n as u64);
                    }
                }
                "max_line_length" => {
                    if let Some(n) = r.int(k, v, 128, 65_536) {
                        s.max_line_length = n as usize;
                    }
                }
                "fxp_peers" => s.fxp_peers = r.cidrs(k, v).unwrap_or_default(),
                // The switch that let any address in became a list of servers.
                "allow_foreign_data_address" => r.err(
                    k,
                    "was replaced by 'fxp_peers': list the servers third-party (FXP) transfers \
                     may use, e.g. fxp_peers = [\"192.0.2.10\", \"198.51.100.0/24\"] (here, or \
                     for one partner or user in the user store); see docs/protocol.md",
                ),
                "allow_privileged_data_port" => {
                    s.allow_privileged_data_port =
                        r.bool(k, v).unwrap_or(s.allow_privileged_data_port)
                }
                "greeting" => {
                    if let Some(text) = r.string(k, v) {
                        match check_greeting(&text) {
                            Ok(()) => s.greeting = text,
                            Err(m) => r.err(k, m),
                        }
                    }
                }
                "events_file" => s.events_file = r.log_file(k, v).or(s.events_file.take()),
                "xferlog_file" => s.xferlog_file = r.log_file(k, v).or(s.xferlog_file.take()),
                "partners_root" => s.partners_root = r.path(k, v).unwrap_or(s.partners_root),
                "atomic_uploads" => s.atomic_uploads = r.bool(k, v).unwrap_or(s.atomic_uploads),
                "direct_uploads" => s.direct_uploads = r.bool(k, v).unwrap_or(s.direct_uploads),
                "max_logins" | "max_anonymous_logins" | "max_logins_per_ip" => {
                    if let Some(n) = r.int(k, v, 0, 100_000) {
                        let n = n as u32;
                        match k {
                            "max_logins" => s.max_logins = n,
                            "max_anonymous_logins" => s.max_anonymous_logins = n,
                            _ => s.max_logins_per_ip = n,
                        }
                    }
                }
                "ip_allow" => s.ip_allow = r.cidrs(k, v).unwrap_or_default(),
                "ip_deny" => s.ip_deny = r.cidrs(k, v).unwrap_or_default(),
                "ban_after_failures" => {
                    if let Some(n) = r.int(k, v, 0, 100_000) {
                        s.ban_after_failures = n as u32;
                    }
                }
                "ban_window_secs" => s.ban_window = secs(&mut r, k, v, 1).unwrap_or(s.ban_window),
                "ban_duration_secs" => {
                    s.ban_duration = secs(&mut r, k, v, 1).unwrap_or(s.ban_duration)
                }
                "site_chmod" => s.site_chmod = r.bool(k, v).unwrap_or(s.site_chmod),
                "restart_marker_interval" => {
                    if let Some(n) = r.int(k, v, 0, 1 << 40) {
                        s.restart_marker_interval = n as u64;
                    }
                }
                "event_command" => {
                    if let Some(argv) = r.strings(k, v, "[\"/usr/local/bin/on-event\", \"--flag\"]")
                    {
                        match parse_event_command(&argv) {
                            Ok(c) => s.event_command = Some(c),
                            Err(m) => r.err(k, m),
                        }
                    }
                }
                "event_command_timeout_secs" => {
                    if let Some(n) = r.int(k, v, 1, 3600) {
                        s.event_command_timeout = Duration::from_secs(n as u64);
                    }
                }
                "event_command_events" => {
                    if let Some(names) = r.strings(k, v, "[\"upload_complete\", \"login_failed\"]")
                    {
                        let unknown: Vec<&String> = names
                            .iter()
                            .filter(|n| !EVENT_NAMES.contains(&n.as_str()))
                            .collect();
                        if unknown.is_empty() {
                            s.event_command_events = Some(names);
                        } else {
                            r.err(
                                k,
                                format!(
                                    "unknown event name(s) {unknown:?}; the events are: {}",
                                    EVENT_NAMES.join(", ")
                                ),
                            );
                        }
                    }
                }
                _ => r.err(k, format!("unknown key (known keys: {})", KEYS.join(", "))),
            }
        }
        for (key, message) in s.tls_problems() {
            r.err(key, message);
        }
        (s, r.errors)
    }

    /// Contradictions between the TLS keys, as (key, problem). Checked after the file and
    /// again after the command-line flags.
    pub fn tls_problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => out.push((
                "tls_key",
                "missing: tls_cert is set, so the key of that certificate is needed too".into(),
            )),
            (None, Some(_)) => out.push((
                "tls_cert",
                "missing: tls_key is set, so its certificate is needed too".into(),
            )),
            _ => {}
        }
        if self.tls_key_password.is_some() && self.tls_key_password_file.is_some() {
            out.push((
                "tls_key_password_file",
                "set together with tls_key_password; use one of the two".into(),
            ));
        }
        if self.tls_client_cert != ClientCertMode::Off && self.tls_client_ca.is_none() {
            out.push((
                "tls_client_ca",
                format!(
                    "missing: tls_client_cert = \"{}\" needs the CA bundle client certificates \
                     are checked against",
                    if self.tls_client_cert == ClientCertMode::Require {
                        "require"
                    } else {
                        "request"
                    }
                ),
            ));
        }
        if !self.tls {
            for (key, policy) in [
                ("tls_required_control", self.tls_required_control),
                ("tls_required_data", self.tls_required_data),
            ] {
                if policy != TlsPolicy::None {
                    out.push((
                        key,
                        format!(
                            "is \"{}\" but tls = false: nobody could log in; turn TLS on or \
                             set it to \"none\"",
                            policy_name(policy)
                        ),
                    ));
                }
            }
            if !self.implicit_listen.is_empty() {
                out.push((
                    "implicit_listen",
                    "implicit-TLS listeners need tls = true".into(),
                ));
            }
        }
        out
    }

    /// What the TLS module needs, for a certificate and key at these paths (the configured
    /// ones, or the self-signed pair).
    pub fn tls_settings(&self, cert: &Path, key: &Path) -> TlsSettings {
        let mut t = TlsSettings::new(cert, key);
        t.key_password = self
            .tls_key_password
            .as_ref()
            .map(|p| p.expose().to_owned());
        t.key_password_file = self.tls_key_password_file.clone();
        t.min_version = self.tls_min_version;
        t.client_cert = self.tls_client_cert;
        t.client_ca_path = self.tls_client_ca.clone();
        t.client_identity = self.tls_client_identity;
        t
    }

    /// The folder anonymous users see.
    pub fn anonymous_root(&self) -> &Path {
        self.anonymous_root.as_deref().unwrap_or(&self.root)
    }

    /// The core's part of the configuration.
    pub fn core_config(&self) -> Arc<wharf_core::Config> {
        let mut c = wharf_core::Config::default();
        c.greeting = self.greeting.clone();
        c.max_line_len = self.max_line_length;
        c.idle_timeout = self.idle_timeout;
        c.login_timeout = self.login_timeout;
        c.max_login_failures = self.max_login_failures;
        c.login_failure_delay = self.login_failure_delay;
        c.passive_address = self.passive_address;
        c.fxp_peers = self.fxp_peers.clone();
        c.allow_privileged_data_port = self.allow_privileged_data_port;
        c.tls_control = self.tls_required_control;
        c.tls_data = self.tls_required_data;
        c.allow_ccc = self.allow_ccc;
        c.tls_session_reuse = if self.require_tls_session_reuse {
            self.tls_session_reuse_scope
        } else {
            SessionReuse::NotRequired
        };
        c.max_logins = self.max_logins;
        c.max_anonymous_logins = self.max_anonymous_logins;
        c.max_logins_per_ip = self.max_logins_per_ip;
        c.ip_filter = IpFilter {
            allow: self.ip_allow.clone(),
            deny: self.ip_deny.clone(),
        };
        c.site_chmod = self.site_chmod;
        c.restart_marker_interval = self.restart_marker_interval;
        Arc::new(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        Settings::parse(text, "wharf.toml", Path::new("/etc/wharf"))
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn defaults() {
        let s = Settings::parse("", "wharf.toml", Path::new("")).unwrap();
        assert_eq!(s.listen, vec!["127.0.0.1:2121".parse().unwrap()]);
        assert_eq!(s.max_connections, 2048);
        assert_eq!(s.login_cache, Duration::from_secs(300));
        assert_eq!(s.idle_timeout, Duration::from_secs(300));
        assert_eq!(s.data_stall_timeout, Duration::from_secs(300));
        assert!(s.passive_ports.is_any() && !s.anonymous);
        let c = s.core_config();
        assert_eq!(c.max_line_len, 4096);
        assert_eq!(c.max_login_failures, 3);
    }

    #[test]
    fn every_key_is_read() {
        let text = r#"
            listen = ["127.0.0.1:0", "[::1]:2121"]
            root = "data"
            users_file = "/var/lib/wharf/users.toml"
            anonymous = true
            anonymous_root = "pub"
            max_connections = 10
            max_connections_per_ip = 2
            passive_ports = "30000-30010, 40000"
            passive_address = "203.0.113.7"
            active_local_port = 2020
            data_connect_timeout_secs = 5
            data_stall_timeout_secs = 6
            idle_timeout_secs = 7
            login_timeout_secs = 8
            max_login_failures = 9
            login_failure_delay_ms = 10
            login_cache_secs = 0
            max_line_length = 1000
            fxp_peers = ["192.0.2.10", "198.51.100.0/24"]
            allow_privileged_data_port = true
            greeting = "Hello\nthere"
            tls = true
            tls_cert = "cert.pem"
            tls_key = "/keys/key.pem"
            tls_key_password_file = "pw.txt"
            tls_dir = "tls"
            tls_min_version = "1.3"
            tls_client_cert = "request"
            tls_client_ca = "ca.pem"
            tls_client_identity = "san-email"
            tls_required_control = "accounts"
            tls_required_data = "all"
            implicit_listen = ["127.0.0.1:990"]
            allow_ccc = true
            require_tls_session_reuse = false
            tls_session_reuse_scope = "connection"
        "#;
        let s = Settings::parse(text, "wharf.toml", Path::new("/etc/wharf")).unwrap();
        assert_eq!(s.listen.len(), 2);
        assert_eq!(s.root, PathBuf::from("/etc/wharf/data"));
        assert_eq!(s.users_file, PathBuf::from("/var/lib/wharf/users.toml"));
        assert!(s.users_file_explicit && s.anonymous);
        assert_eq!(s.anonymous_root(), Path::new("/etc/wharf/pub"));
        assert_eq!((s.max_connections, s.max_connections_per_ip), (10, 2));
        assert!(s.login_cache.is_zero());
        assert_eq!(s.passive_ports.len(), 12);
        assert_eq!(s.passive_address, Some("203.0.113.7".parse().unwrap()));
        assert_eq!(s.active_local_port, Some(2020));
        assert_eq!(s.data_connect_timeout, Duration::from_secs(5));
        assert_eq!(s.data_stall_timeout, Duration::from_secs(6));
        assert_eq!(s.idle_timeout, Duration::from_secs(7));
        assert_eq!(s.login_timeout, Duration::from_secs(8));
        assert_eq!(s.max_login_failures, 9);
        assert_eq!(s.login_failure_delay, Duration::from_millis(10));
        assert_eq!(s.max_line_length, 1000);
        assert!(s.allow_privileged_data_port);
        assert_eq!(s.core_config().fxp_peers.len(), 2);
        assert!(s.fxp_peers[1].contains("198.51.100.77".parse().unwrap()));
        assert_eq!(s.core_config().greeting, "Hello\nthere");
        assert_eq!(s.core_config().passive_address, s.passive_address);
        assert!(s.tls);
        assert_eq!(s.tls_cert, Some(PathBuf::from("/etc/wharf/cert.pem")));
        assert_eq!(s.tls_key, Some(PathBuf::from("/keys/key.pem")));
        assert_eq!(
            s.tls_key_password_file,
            Some(PathBuf::from("/etc/wharf/pw.txt"))
        );
        assert_eq!(s.tls_dir, PathBuf::from("/etc/wharf/tls"));
        assert_eq!(s.tls_min_version, MinTlsVersion::Tls13);
        assert_eq!(s.tls_client_cert, ClientCertMode::Request);
        assert_eq!(s.tls_client_ca, Some(PathBuf::from("/etc/wharf/ca.pem")));
        assert_eq!(s.tls_client_identity, ClientIdentitySource::SanEmail);
        assert_eq!(s.implicit_listen, vec!["127.0.0.1:990".parse().unwrap()]);
        let c = s.core_config();
        assert_eq!(c.tls_control, TlsPolicy::Accounts);
        assert_eq!(c.tls_data, TlsPolicy::All);
        assert!(c.allow_ccc && c.tls_session_reuse == SessionReuse::NotRequired);
        assert_eq!(s.tls_session_reuse_scope, SessionReuse::SameConnection);
        let strict = Settings::parse(
            "tls_session_reuse_scope = \"connection\"",
            "wharf.toml",
            Path::new(""),
        )
        .unwrap();
        assert_eq!(
            strict.core_config().tls_session_reuse,
            SessionReuse::SameConnection
        );
        assert_eq!(
            errors("tls_session_reuse_scope = \"anyone\""),
            vec![
                "wharf.toml: key 'tls_session_reuse_scope': 'anyone': expected \"client\" (a \
                 session of the same user from the same address) or \"connection\" (only the \
                 control connection's own)"
            ]
        );
        let t = s.tls_settings(Path::new("c"), Path::new("k"));
        assert_eq!(t.min_version, MinTlsVersion::Tls13);
        assert_eq!(t.key_password_file, s.tls_key_password_file);
    }

    #[test]
    fn tls_defaults_and_contradictions() {
        let s = Settings::parse("", "wharf.toml", Path::new("")).unwrap();
        assert!(s.tls && s.tls_cert.is_none() && s.implicit_listen.is_empty());
        assert_eq!(s.tls_dir, PathBuf::from("wharf-tls"));
        let c = s.core_config();
        assert_eq!(
            (c.tls_control, c.tls_data),
            (TlsPolicy::None, TlsPolicy::None)
        );
        assert!(!c.allow_ccc && c.tls_session_reuse == SessionReuse::SameClient);

        let e = errors(
            "tls_cert = \"c.pem\"\ntls_key_password = \"a\"\ntls_key_password_file = \"p\"\n\
             tls_client_cert = \"require\"\ntls_min_version = \"1.1\"\n\
             tls_required_data = \"some\"\ntls_client_identity = \"uid\"\nimplicit_listen = 990",
        );
        let all = e.join("\n");
        for want in [
            "wharf.toml: key 'tls_key': missing: tls_cert is set",
            "wharf.toml: key 'tls_key_password_file': set together with tls_key_password",
            "wharf.toml: key 'tls_client_ca': missing: tls_client_cert = \"require\"",
            "wharf.toml: key 'tls_min_version': TLS 1.1 is not supported",
            "wharf.toml: key 'tls_required_data': 'some': expected none, accounts",
            "wharf.toml: key 'tls_client_identity': unknown client identity field",
            "wharf.toml: key 'implicit_listen': must be an array of strings such as [\"0.0.0.0:990\"]",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
        assert_eq!(e.len(), 7, "{all}");

        let e = errors(
            "tls = false\ntls_required_control = \"accounts\"\nimplicit_listen = [\"127.0.0.1:990\"]",
        );
        assert_eq!(
            e,
            vec![
                "wharf.toml: key 'tls_required_control': is \"accounts\" but tls = false: nobody \
                 could log in; turn TLS on or set it to \"none\"",
                "wharf.toml: key 'implicit_listen': implicit-TLS listeners need tls = true",
            ]
        );
    }

    #[test]
    fn the_old_fxp_switch_is_refused_with_what_replaced_it() {
        let e = errors("allow_foreign_data_address = true");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with(
                "wharf.toml: key 'allow_foreign_data_address': was replaced by 'fxp_peers'"
            ),
            "{e:?}"
        );
        let e = errors("fxp_peers = [\"192.0.2.0/33\"]");
        assert_eq!(
            e,
            ["wharf.toml: key 'fxp_peers': `192.0.2.0/33`: the prefix length must be 0 to 32"]
        );
    }

    #[test]
    fn each_error_names_the_file_and_the_key() {
        let e = errors("passive_ports = \"5-3\"");
        assert_eq!(
            e,
            vec!["wharf.toml: key 'passive_ports': '5-3': the range runs backwards (5 > 3)"]
        );
        let e = errors(
            "colour = 1\nmax_connections = 0\nidle_timeout_secs = \"x\"\nlisten = [\"nowhere\"]\n\
             anonymous = 1\npassive_address = \"a.b\"\ngreeting = \"a\\rb\"\nmax_line_length = 10",
        );
        let all = e.join("\n");
        assert_eq!(e.len(), 8, "{all}");
        for want in [
            "wharf.toml: key 'colour': unknown key (known keys: listen, root,",
            "wharf.toml: key 'max_connections': 0 is out of range (1 to 100000)",
            "wharf.toml: key 'idle_timeout_secs': must be a whole number (1 to 31536000), not string",
            "wharf.toml: key 'listen': 'nowhere': not an address with a port",
            "wharf.toml: key 'anonymous': must be true or false, not integer",
            "wharf.toml: key 'passive_address': 'a.b': not an IP address",
            "wharf.toml: key 'greeting': must not contain CR",
            "wharf.toml: key 'max_line_length': 10 is out of range (128 to 65536)",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
    }

    #[test]
    fn passive_address_must_be_ipv4() {
        let e = errors("passive_address = \"::1\"");
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with(
                "wharf.toml: key 'passive_address': '::1': an IPv6 address cannot be advertised"
            ),
            "{e:?}"
        );
        // An IPv4-mapped address is the IPv4 address.
        let s = Settings::parse(
            "passive_address = \"::ffff:203.0.113.7\"",
            "wharf.toml",
            Path::new(""),
        )
        .unwrap();
        assert_eq!(s.passive_address, Some("203.0.113.7".parse().unwrap()));
    }

    #[test]
    fn event_keys() {
        let dir = std::env::temp_dir().join(format!("wharf-config-events-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = r#"
            events_file = "events.jsonl"
            xferlog_file = "/tmp/wharf-xferlog"
            event_command = ["sh", "-c", "cat >> x"]
            event_command_timeout_secs = 3
            event_command_events = ["upload_complete", "login_failed"]
        "#;
        let s = Settings::parse(text, "wharf.toml", &dir).unwrap();
        assert_eq!(s.events_file, Some(dir.join("events.jsonl")));
        assert_eq!(s.xferlog_file, Some(PathBuf::from("/tmp/wharf-xferlog")));
        let c = s.event_command.unwrap();
        assert!(
            c.program.is_absolute() && c.program.ends_with("sh"),
            "{c:?}"
        );
        assert_eq!(c.args, ["-c", "cat >> x"]);
        assert_eq!(s.event_command_timeout, Duration::from_secs(3));
        assert_eq!(
            s.event_command_events,
            Some(vec!["upload_complete".into(), "login_failed".into()])
        );
        let d = Settings::parse("", "wharf.toml", &dir).unwrap();
        assert!(d.events_file.is_none() && d.xferlog_file.is_none());
        assert!(d.event_command.is_none() && d.event_command_events.is_none());
        assert_eq!(d.event_command_timeout, Duration::from_secs(10));
        std::fs::remove_dir_all(&dir).unwrap();

        let e = errors(
            "events_file = \"/nonexistent-wharf/e.jsonl\"\nxferlog_file = \"/tmp\"\n\
             event_command = \"/bin/sh -c x\"\nevent_command_timeout_secs = 0\n\
             event_command_events = [\"upload\"]",
        );
        let all = e.join("\n");
        for want in [
            "wharf.toml: key 'events_file': /nonexistent-wharf/e.jsonl: the folder /nonexistent-wharf does not exist",
            "wharf.toml: key 'xferlog_file': /tmp exists and is not a file",
            "wharf.toml: key 'event_command': must be an array of strings such as",
            "wharf.toml: key 'event_command_timeout_secs': 0 is out of range (1 to 3600)",
            "wharf.toml: key 'event_command_events': unknown event name(s) [\"upload\"]",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
        assert_eq!(e.len(), 5, "{all}");
        let plain = std::env::temp_dir().join(format!("wharf-not-exec-{}", std::process::id()));
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        for (argv, want) in [
            (vec![], "must name a program"),
            (
                vec!["bin/x"],
                "must be an absolute path or a name found on PATH",
            ),
            (vec!["/nonexistent-wharf/x"], "does not exist"),
            (vec![plain.to_str().unwrap()], "is not an executable file"),
            (vec!["wharf-no-such-program"], "is not found on PATH"),
        ] {
            let argv: Vec<String> = argv.iter().map(|s: &&str| s.to_string()).collect();
            let m = parse_event_command(&argv).unwrap_err();
            assert!(m.contains(want), "{argv:?}: {m}");
        }
        std::fs::remove_file(&plain).unwrap();
    }

    #[test]
    fn login_policy_and_partner_keys() {
        let s = Settings::parse("", "wharf.toml", Path::new("")).unwrap();
        assert_eq!(s.partners_root, PathBuf::from("wharf-partners"));
        assert!(s.atomic_uploads && s.direct_uploads && s.site_chmod);
        assert_eq!(
            (s.max_logins, s.max_anonymous_logins, s.max_logins_per_ip),
            (0, 0, 0)
        );
        assert_eq!(s.ban_after_failures, 10);
        assert_eq!(
            (s.ban_window, s.ban_duration),
            (Duration::from_secs(600), Duration::from_secs(900))
        );
        assert!(s.core_config().ip_filter.is_open());
        let s = Settings::parse(
            "partners_root = \"p\"\natomic_uploads = false\ndirect_uploads = false\nmax_logins = 5\n\
             max_anonymous_logins = 1\nmax_logins_per_ip = 2\nip_allow = [\"127.0.0.0/8\", \"::1\"]\n\
             ip_deny = \"127.0.0.2\"\nban_after_failures = 0\nban_window_secs = 60\n\
             ban_duration_secs = 30\nsite_chmod = false\n",
            "wharf.toml",
            Path::new("/etc/wharf"),
        )
        .unwrap();
        assert_eq!(s.partners_root, PathBuf::from("/etc/wharf/p"));
        assert!(!s.atomic_uploads && !s.direct_uploads);
        assert_eq!(s.ban_after_failures, 0);
        assert_eq!(s.ban_duration, Duration::from_secs(30));
        let c = s.core_config();
        assert_eq!(
            (c.max_logins, c.max_anonymous_logins, c.max_logins_per_ip),
            (5, 1, 2)
        );
        assert!(!c.site_chmod);
        assert!(c.ip_filter.permits("127.0.0.1".parse().unwrap()));
        assert!(c.ip_filter.permits("::1".parse().unwrap()));
        assert!(!c.ip_filter.permits("127.0.0.2".parse().unwrap()));
        assert!(!c.ip_filter.permits("10.0.0.1".parse().unwrap()));
        let e = errors(
            "ip_allow = [\"10.0.0.0/40\"]\nip_deny = 3\nmax_logins = -1\nban_window_secs = 0",
        );
        let all = e.join("\n");
        for want in [
            "wharf.toml: key 'ip_allow': `10.0.0.0/40`: the prefix length must be 0 to 32",
            "wharf.toml: key 'ip_deny': must be an array of addresses or CIDR networks",
            "wharf.toml: key 'max_logins': -1 is out of range (0 to 100000)",
            "wharf.toml: key 'ban_window_secs': 0 is out of range",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
    }

    #[test]
    fn syntax_errors_give_the_line() {
        let e = errors("root = \"a\"\nmax_connections = = 3\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("wharf.toml: line 2, column"), "{}", e[0]);
    }
}
