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
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use wharf_core::addr::PassivePorts;

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
    /// gets `421` and is closed. Default 512.
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
    /// `max_line_length`: longest command line in bytes; longer ones get `500`. Default 4096.
    pub max_line_length: usize,
    /// `allow_foreign_data_address`: allow PORT/EPRT to, and passive connections from,
    /// addresses other than the client's (FXP; enables the bounce attack). Default false.
    pub allow_foreign_data_address: bool,
    /// `allow_privileged_data_port`: allow PORT/EPRT to ports below 1024. Default false.
    pub allow_privileged_data_port: bool,
    /// `greeting`: text of the `220` greeting; several lines make a multi-line reply. Default
    /// `Wharf FTP server ready.`
    pub greeting: String,
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
            max_connections: 512,
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
            max_line_length: core.max_line_len,
            allow_foreign_data_address: false,
            allow_privileged_data_port: false,
            greeting: core.greeting,
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
    "max_line_length",
    "allow_foreign_data_address",
    "allow_privileged_data_port",
    "greeting",
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
                    let items: Vec<&toml::Value> = match v {
                        toml::Value::Array(a) => a.iter().collect(),
                        toml::Value::String(_) => vec![v],
                        v => {
                            r.err(k, format!("must be an array of strings such as [\"127.0.0.1:2121\"], not {}", v.type_str()));
                            continue;
                        }
                    };
                    if items.is_empty() {
                        r.err(k, "must hold at least one address");
                    }
                    let mut list = Vec::new();
                    for item in items {
                        if let Some(text) = r.string(k, item) {
                            match parse_listen(&text) {
                                Ok(a) => list.push(a),
                                Err(m) => r.err(k, m),
                            }
                        }
                    }
                    if !list.is_empty() {
                        s.listen = list;
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
                            match text.trim().parse::<IpAddr>() {
                                Ok(ip) => s.passive_address = Some(ip),
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
                "max_line_length" => {
                    if let Some(n) = r.int(k, v, 128, 65_536) {
                        s.max_line_length = n as usize;
                    }
                }
                "allow_foreign_data_address" => {
                    s.allow_foreign_data_address =
                        r.bool(k, v).unwrap_or(s.allow_foreign_data_address)
                }
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
                _ => r.err(k, format!("unknown key (known keys: {})", KEYS.join(", "))),
            }
        }
        (s, r.errors)
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
        c.allow_foreign_data_address = self.allow_foreign_data_address;
        c.allow_privileged_data_port = self.allow_privileged_data_port;
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
        assert_eq!(s.max_connections, 512);
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
            max_line_length = 1000
            allow_foreign_data_address = true
            allow_privileged_data_port = true
            greeting = "Hello\nthere"
        "#;
        let s = Settings::parse(text, "wharf.toml", Path::new("/etc/wharf")).unwrap();
        assert_eq!(s.listen.len(), 2);
        assert_eq!(s.root, PathBuf::from("/etc/wharf/data"));
        assert_eq!(s.users_file, PathBuf::from("/var/lib/wharf/users.toml"));
        assert!(s.users_file_explicit && s.anonymous);
        assert_eq!(s.anonymous_root(), Path::new("/etc/wharf/pub"));
        assert_eq!((s.max_connections, s.max_connections_per_ip), (10, 2));
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
        assert!(s.allow_foreign_data_address && s.allow_privileged_data_port);
        assert_eq!(s.core_config().greeting, "Hello\nthere");
        assert_eq!(s.core_config().passive_address, s.passive_address);
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
    fn syntax_errors_give_the_line() {
        let e = errors("root = \"a\"\nmax_connections = = 3\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("wharf.toml: line 2, column"), "{}", e[0]);
    }
}
