//! The configuration keys: [`KEYS`] holds one entry per key — its name, its default and
//! meaning as the documentation gives them, and the function that reads its value and says
//! which field of [`Settings`] keeps it. The parser, the unknown-key error (whose list the
//! README test reads) and `wharf check-config --keys` all take the keys from this table.
//!
//! Adding a key is one entry here and, for a setting the core does not already have, one
//! field of [`Settings`] with its default. The value readers shared with the user store
//! (numbers with bounds, paths, address lists) are [`crate::toml_read`]'s; the readers
//! below are those of this file's keys alone.
//!
//! It must not keep settings, nor check one key against another: that is done once every
//! key is read (`tls.rs` for the TLS keys, `wharf check-config` for what is on disk).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use wharf_core::addr::{canonical_ip, PassivePorts};
use wharf_core::{SessionReuse, TlsPolicy};

use super::settings::Settings;
use crate::event_command::CommandLine;
use crate::events::EVENT_NAMES;
use crate::toml_read::{set, Key, Reader, YEAR};

/// Every key the configuration file may hold, in the order the documentation lists them.
pub const KEYS: &[Key<Settings>] = &[
    Key {
        name: "listen",
        default: "[\"127.0.0.1:2121\"]",
        doc: "addresses of the FTP listeners, `\"ip:port\"` (IPv6 as `\"[::1]:2121\"`); port 0 \
             picks a free port",
        read: read_listen,
    },
    Key {
        name: "root",
        default: "\"wharf-data\"",
        doc: "the folder served to `--user` accounts and the generated user; made if missing",
        read: |r, v, s| set(&mut s.root, r.path(v)),
    },
    Key {
        name: "users_file",
        default: "\"wharf-users.toml\"",
        doc: "the user store: partners and users, argon2id hashes \
             ([docs/partners.md](docs/partners.md)); used when it exists; a file named here must \
             exist; re-read when it changes and on SIGHUP",
        read: read_users_file,
    },
    Key {
        name: "anonymous",
        default: "false",
        doc: "accept `anonymous` / `ftp` with any password, read-only",
        read: |r, v, s| set(&mut s.anonymous, r.bool(v)),
    },
    Key {
        name: "anonymous_root",
        default: "the `root`",
        doc: "the folder anonymous users see",
        read: |r, v, s| set(&mut s.anonymous_root, r.path(v).map(Some)),
    },
    Key {
        name: "max_connections",
        default: "2048",
        doc: "connections served at once (1–100000), each a thread; one more gets `421` and is \
             closed; the server raises its open-file limit to match (see *Connection limits*)",
        read: |r, v, s| set(&mut s.max_connections, r.whole(v, 1, 100_000)),
    },
    Key {
        name: "max_connections_per_ip",
        default: "0",
        doc: "connections at once from one client address; 0 = no limit",
        read: |r, v, s| set(&mut s.max_connections_per_ip, r.whole(v, 0, 100_000)),
    },
    Key {
        name: "passive_ports",
        default: "\"\"",
        doc:
            "ports for passive data connections, e.g. `\"2121, 30000-30100, 40000-\"` (`40000-` = \
             40000 to 65535, `-1023` = 1 to 1023); `\"\"` means any port of the system's ephemeral \
             range (`net.ipv4.ip_local_port_range`); picked at random",
        read: read_passive_ports,
    },
    Key {
        name: "passive_address",
        default: "\"\"",
        doc:
            "the IPv4 address advertised in PASV replies (behind NAT; an IPv6 address is refused: \
             PASV carries IPv4 only, and EPSV carries no address); `\"\"` = the control \
             connection's local address",
        read: read_passive_address,
    },
    Key {
        name: "active_local_port",
        default: "0",
        doc: "local port of active-mode data connections (20 by tradition, which needs \
             privileges); 0 = any",
        read: |r, v, s| {
            set(
                &mut s.active_local_port,
                r.whole(v, 0, 65_535).map(|p: u16| (p != 0).then_some(p)),
            )
        },
    },
    Key {
        name: "data_connect_timeout_secs",
        default: "30",
        doc: "how long to wait for a data connection (passive accept, active connect) before `425`",
        read: |r, v, s| set(&mut s.data_connect_timeout, r.secs(v, 1, YEAR)),
    },
    Key {
        name: "data_stall_timeout_secs",
        default: "300",
        doc: "a transfer that moves no byte for this long ends with `426`",
        read: |r, v, s| set(&mut s.data_stall_timeout, r.secs(v, 1, YEAR)),
    },
    Key {
        name: "idle_timeout_secs",
        default: "300",
        doc: "a logged-in session without a command for this long gets `421` and is closed",
        read: |r, v, s| set(&mut s.core.idle_timeout, r.secs(v, 1, YEAR)),
    },
    Key {
        name: "login_timeout_secs",
        default: "60",
        doc: "a connection not logged in within this long of connecting (or of REIN) gets `421` \
             and is closed; commands before login do not extend it, and a client that does not \
             read its replies is closed by then too",
        read: |r, v, s| set(&mut s.core.login_timeout, r.secs(v, 1, YEAR)),
    },
    Key {
        name: "max_login_failures",
        default: "3",
        doc: "failed logins on one connection before it is closed",
        read: |r, v, s| set(&mut s.core.max_login_failures, r.whole(v, 1, 1000)),
    },
    Key {
        name: "login_failure_delay_ms",
        default: "1000",
        doc: "delay before the `530` of a failed login",
        read: |r, v, s| set(&mut s.core.login_failure_delay, r.millis(v, 0, 60_000)),
    },
    Key {
        name: "login_cache_secs",
        default: "300",
        doc: "how long a successful password check is remembered, so that the same user with the \
             same password logs in again without a new argon2 verification (0–86400; 0 = off); \
             failed logins always pay the full check; see the trade-off under *Security defaults*",
        read: |r, v, s| set(&mut s.login_cache, r.secs(v, 0, 86_400)),
    },
    Key {
        name: "max_line_length",
        default: "4096",
        doc: "longest command line in bytes (128–65536); longer ones get `500`",
        read: |r, v, s| set(&mut s.core.max_line_len, r.whole(v, 128, 65_536)),
    },
    Key {
        name: "fxp_peers",
        default: "[]",
        doc: "servers (addresses or CIDR networks) third-party (FXP) transfers may use: a \
             PORT/EPRT may name one, a passive listener also accepts one; a partner's or user's \
             own `fxp_peers` replaces it ([docs/protocol.md](docs/protocol.md)). Replaces \
             `allow_foreign_data_address`, which is now refused",
        read: |r, v, s| s.core.fxp_peers = r.cidrs(v).unwrap_or_default(),
    },
    Key {
        name: "allow_privileged_data_port",
        default: "false",
        doc: "allow PORT/EPRT to ports below 1024",
        read: |r, v, s| set(&mut s.core.allow_privileged_data_port, r.bool(v)),
    },
    Key {
        name: "greeting",
        default: "\"Wharf FTP server ready.\"",
        doc: "text of the `220` greeting; several lines make a multi-line reply",
        read: |r, v, s| set(&mut s.core.greeting, r.parsed(v, greeting)),
    },
    Key {
        name: "tls",
        default: "true",
        doc: "offer FTPS (AUTH TLS, implicit listeners); with no `tls_cert` a self-signed \
             certificate is made in `tls_dir` on first start",
        read: |r, v, s| set(&mut s.tls, r.bool(v)),
    },
    Key {
        name: "tls_cert",
        default: "none",
        doc: "PEM certificate chain, server certificate first; needs `tls_key`",
        read: |r, v, s| set(&mut s.tls_cert, r.path(v).map(Some)),
    },
    Key {
        name: "tls_key",
        default: "none",
        doc: "PEM private key (PKCS#8, PKCS#1, SEC1, or encrypted PKCS#8); needs `tls_cert`",
        read: |r, v, s| set(&mut s.tls_key, r.path(v).map(Some)),
    },
    Key {
        name: "tls_key_password",
        default: "none",
        doc: "password of an encrypted `tls_key`",
        read: read_key_password,
    },
    Key {
        name: "tls_key_password_file",
        default: "none",
        doc: "file whose first line is that password; not with `tls_key_password`",
        read: |r, v, s| set(&mut s.tls_options.key_password_file, r.path(v).map(Some)),
    },
    Key {
        name: "tls_dir",
        default: "\"wharf-tls\"",
        doc: "where the self-signed certificate and key are kept; must be outside every served \
             folder",
        read: |r, v, s| set(&mut s.tls_dir, r.path(v)),
    },
    Key {
        name: "tls_min_version",
        default: "\"1.2\"",
        doc: "`\"1.2\"` or `\"1.3\"`; TLS 1.0 and 1.1 are never offered (RFC 8996)",
        read: |r, v, s| set(&mut s.tls_options.min_version, r.parsed(v, str::parse)),
    },
    Key {
        name: "tls_client_cert",
        default: "\"off\"",
        doc: "`off`, `request` or `require` a client certificate",
        read: |r, v, s| set(&mut s.tls_options.client_cert, r.parsed(v, str::parse)),
    },
    Key {
        name: "tls_client_ca",
        default: "none",
        doc: "CA bundle client certificates must chain to (required unless `off`)",
        read: |r, v, s| set(&mut s.tls_options.client_ca_path, r.path(v).map(Some)),
    },
    Key {
        name: "tls_client_identity",
        default: "\"cn\"",
        doc: "certificate field that names the user: `cn`, `san-email`, `san-dns`",
        read: |r, v, s| set(&mut s.tls_options.client_identity, r.parsed(v, str::parse)),
    },
    Key {
        name: "tls_required_control",
        default: "\"none\"",
        doc: "who must protect the control connection before logging in: `none`, `accounts` \
             (everyone but anonymous), `all`",
        read: |r, v, s| set(&mut s.core.tls_control, r.parsed(v, parse_tls_policy)),
    },
    Key {
        name: "tls_required_data",
        default: "\"none\"",
        doc: "who must protect data connections (PROT P): `none`, `accounts`, `all`",
        read: |r, v, s| set(&mut s.core.tls_data, r.parsed(v, parse_tls_policy)),
    },
    Key {
        name: "implicit_listen",
        default: "[]",
        doc: "implicit-TLS listener addresses (port 990 by tradition)",
        read: |r, v, s| set(&mut s.implicit_listen, addresses(r, v, "0.0.0.0:990")),
    },
    Key {
        name: "allow_ccc",
        default: "false",
        doc: "accept CCC (clear the control connection after login, for NAT firewalls)",
        read: |r, v, s| set(&mut s.core.allow_ccc, r.bool(v)),
    },
    Key {
        name: "require_tls_session_reuse",
        default: "true",
        doc:
            "protected data connections must resume a TLS session of their client, so that nobody \
             else can take a passive data port (see [docs/ftps.md](docs/ftps.md) for the risk of \
             turning it off)",
        read: read_require_session_reuse,
    },
    Key {
        name: "tls_session_reuse_scope",
        default: "\"client\"",
        doc: "whose session a data connection may resume: `\"client\"`, one of any control \
             connection of the same logged-in user from the same address (rclone and other Go \
             clients share one TLS session cache between their connections); `\"connection\"`, \
             only its own control connection's (vsftpd's rule)",
        read: read_session_reuse_scope,
    },
    Key {
        name: "events_file",
        default: "none",
        doc: "file the events (`connect`, `login`, `upload_complete`, ...) are appended to, one \
             JSON object per line; its folder must exist (see [docs/events.md](docs/events.md))",
        read: |r, v, s| set(&mut s.events.events_file, log_file(r, v).map(Some)),
    },
    Key {
        name: "event_command",
        default: "none",
        doc: "program run once per event with the event's JSON line on stdin, as an argv array \
             `[\"/path/to/program\", \"arg\"]` run without a shell; absolute path or a name on \
             `PATH`",
        read: read_event_command,
    },
    Key {
        name: "event_command_timeout_secs",
        default: "10",
        doc: "an event command still running after this long is killed, with its process group \
             (1–3600)",
        read: |r, v, s| set(&mut s.events.command_timeout, r.secs(v, 1, 3600)),
    },
    Key {
        name: "event_command_events",
        default: "every event",
        doc: "the events the command runs for, e.g. `[\"upload_complete\"]`",
        read: read_event_command_events,
    },
    Key {
        name: "xferlog_file",
        default: "none",
        doc: "transfer log in the standard xferlog format (wu-ftpd, vsftpd, ProFTPD); its folder \
             must exist",
        read: |r, v, s| set(&mut s.events.xferlog_file, log_file(r, v).map(Some)),
    },
    Key {
        name: "partners_root",
        default: "\"wharf-partners\"",
        doc: "where each partner's tree is, `<partners_root>/<partner>` (unless the store gives \
             the partner a `root`); must not overlap another served folder",
        read: |r, v, s| set(&mut s.partners_root, r.path(v)),
    },
    Key {
        name: "atomic_uploads",
        default: "true",
        doc: "uploads go to a hidden partial file renamed into place only when complete; a failed \
             or killed upload leaves nothing under the final name",
        read: |r, v, s| set(&mut s.atomic_uploads, r.bool(v)),
    },
    Key {
        name: "direct_uploads",
        default: "true",
        doc: "a binary upload past its first 8 MiB is written with direct I/O (`O_DIRECT`, past \
             the page cache) while the next 8 MiB arrive; smaller uploads, REST/APPE at unaligned \
             offsets and file systems without direct I/O use the page cache \
             ([docs/transfers.md](docs/transfers.md))",
        read: |r, v, s| set(&mut s.direct_uploads, r.bool(v)),
    },
    Key {
        name: "max_logins",
        default: "0",
        doc: "logged-in sessions at once, all users; one more gets `421 Maximum login limit has \
             been reached.`; 0 = unlimited",
        read: |r, v, s| set(&mut s.core.max_logins, r.whole(v, 0, 100_000)),
    },
    Key {
        name: "max_anonymous_logins",
        default: "0",
        doc: "anonymous sessions at once; 0 = unlimited",
        read: |r, v, s| set(&mut s.core.max_anonymous_logins, r.whole(v, 0, 100_000)),
    },
    Key {
        name: "max_logins_per_ip",
        default: "0",
        doc: "logged-in sessions at once from one address; 0 = unlimited",
        read: |r, v, s| set(&mut s.core.max_logins_per_ip, r.whole(v, 0, 100_000)),
    },
    Key {
        name: "ip_allow",
        default: "[]",
        doc: "addresses or CIDR networks (IPv4, IPv6) that may connect; `[]` = everyone not denied",
        read: |r, v, s| s.core.ip_filter.allow = r.cidrs(v).unwrap_or_default(),
    },
    Key {
        name: "ip_deny",
        default: "[]",
        doc: "addresses or networks refused at connect with `421` (deny wins over allow)",
        read: |r, v, s| s.core.ip_filter.deny = r.cidrs(v).unwrap_or_default(),
    },
    Key {
        name: "ban_after_failures",
        default: "10",
        doc:
            "failed logins from one address within `ban_window_secs` that ban it (new connections \
             get `421`); 0 = no bans",
        read: |r, v, s| set(&mut s.ban_after_failures, r.whole(v, 0, 100_000)),
    },
    Key {
        name: "ban_window_secs",
        default: "600",
        doc: "the window failed logins are counted in",
        read: |r, v, s| set(&mut s.ban_window, r.secs(v, 1, YEAR)),
    },
    Key {
        name: "ban_duration_secs",
        default: "900",
        doc: "how long a ban lasts",
        read: |r, v, s| set(&mut s.ban_duration, r.secs(v, 1, YEAR)),
    },
    Key {
        name: "site_chmod",
        default: "true",
        doc: "allow `SITE CHMOD` for an entry's owner",
        read: |r, v, s| set(&mut s.core.site_chmod, r.bool(v)),
    },
    Key {
        name: "restart_marker_interval",
        default: "1048576",
        doc: "in MODE B and C, a restart marker in a download every so many stored bytes (`REST` \
             with a marker's text resumes there); `0` for none \
             ([docs/representations.md](docs/representations.md))",
        read: |r, v, s| set(&mut s.core.restart_marker_interval, r.whole(v, 0, 1 << 40)),
    },
];

/// Keys that are no more, each with what to write instead: a file that holds one is refused
/// with that, not with "unknown key".
pub const RETIRED: &[(&str, &str)] = &[(
    // The switch that let any address in became a list of servers.
    "allow_foreign_data_address",
    "was replaced by 'fxp_peers': list the servers third-party (FXP) transfers may use, e.g. \
     fxp_peers = [\"192.0.2.10\", \"198.51.100.0/24\"] (here, or for one partner or user in the \
     user store); see docs/protocol.md",
)];

/// The problem with a name that is none of [`KEYS`]: what replaced it, when it is one of
/// [`RETIRED`], or else the keys there are.
pub fn unknown(name: &str) -> String {
    match RETIRED.iter().find(|(old, _)| *old == name) {
        Some((_, why)) => (*why).to_owned(),
        None => Key::unknown(KEYS, "known keys"),
    }
}

/// Parses a listen address, `ip:port`.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!("'{s}': not an address with a port, such as 127.0.0.1:2121 or [::1]:2121")
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

/// Parses a passive port list, with the message the config errors use.
pub fn parse_passive_ports(s: &str) -> Result<PassivePorts, String> {
    PassivePorts::parse(s).map_err(|e| e.to_string().replace('`', "'"))
}

/// Checks a greeting text.
fn greeting(s: &str) -> Result<String, String> {
    if s.contains(['\r', '\0']) {
        Err("must not contain CR or NUL characters (use \\n for more lines)".into())
    } else if s.len() > 2000 {
        Err(format!("is {} bytes long; the limit is 2000", s.len()))
    } else {
        Ok(s.to_owned())
    }
}

/// An address or an array of addresses (`ip:port`); `example` shows the form.
fn addresses(r: &mut Reader<'_>, v: &toml::Value, example: &str) -> Option<Vec<SocketAddr>> {
    let items = r.items(v, &format!("an array of strings such as [\"{example}\"]"))?;
    let mut list = Vec::new();
    let mut bad = false;
    for item in items {
        match r.string(item).map(|text| parse_listen(&text)) {
            Some(Ok(a)) => list.push(a),
            Some(Err(m)) => {
                bad = true;
                r.err(m)
            }
            None => bad = true,
        }
    }
    (!bad).then_some(list)
}

/// A log file to append to: its folder must exist, and the file, if there, must be a file.
fn log_file(r: &mut Reader<'_>, v: &toml::Value) -> Option<PathBuf> {
    let p = r.path(v)?;
    let folder = match p.parent() {
        Some(f) if !f.as_os_str().is_empty() => f.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !folder.is_dir() {
        r.err(format!(
            "{}: the folder {} does not exist",
            p.display(),
            folder.display()
        ));
        return None;
    }
    if p.exists() && !p.is_file() {
        r.err(format!("{} exists and is not a file", p.display()));
        return None;
    }
    Some(p)
}

fn read_listen(r: &mut Reader<'_>, v: &toml::Value, s: &mut Settings) {
    match addresses(r, v, "127.0.0.1:2121") {
        Some(list) if list.is_empty() => r.err("must hold at least one address"),
        list => set(&mut s.listen, list),
    }
}

fn read_users_file(r: &mut Reader<'_>, v: &toml::Value, s: &mut Settings) {
    if let Some(p) = r.path(v) {
        s.users_file = p;
        s.users_file_explicit = true;
    }
}

/// A port list as a string, or a single port as a number.
fn read_passive_ports(r: &mut Reader<'_>, v: &toml::Value, s: &mut Settings) {
    let ports = match v {
        toml::Value::Integer(i) => parse_passive_ports(&i.to_string())
            .map_err(|m| r.err(m))
            .ok(),
        v => r.parsed(v, parse_passive_ports),
    };
    set(&mut s.passive_ports, ports);
}

/// An IPv4 address (an IPv4-mapped IPv6 one is taken as its IPv4 address), or `""`.
fn read_passive_address(r: &mut Reader<'_>, v: &toml::Value, s: &mut Settings) {
    let address = |text: &str| {
        if text.trim().is_empty() {
            return Ok(None);
        }
        match text.trim().parse::<IpAddr>().map(canonical_ip) {
            Ok(ip @ IpAddr::V4(_)) => Ok(Some(ip)),
            Ok(IpAddr::V6(_)) => Err(format!(
                "'{text}': an IPv6 address cannot be advertised: PASV replies carry IPv4 \
                 addresses only (EPSV, which IPv6 clients use, carries none); give the IPv4 \
                 address clients reach, or leave it empty"
            )),
            Err(_) => Err(format!("'{text}': not an IP address such as 203.0.113.7")),
        }
    };
    set(&mut s.core.passive_address, r.parsed(v, address));
}

fn read_key_password(r: &mut Reader<'_>, v: &toml::Value, s: &mut Settings) {
    let password = |pw: &str| match pw {
        "" => Err("must not be empty (leave the key out for an unencrypted key)".to_string()),
        pw => Ok(Some(pw.to_owned())),
    };
    set(&mut s.tls_options.key_password, r.parsed(v, password));
}

/// `false` makes the core require no session reuse, whatever the scope says (and whichever
/// of the two keys comes first).
fn read_require_session_reuse(r: &mut Reader<'_>, v: &toml::Value, s: &mut Settings) {
    if r.bool(v) == Some(false) {
        s.core.tls_session_reuse = SessionReuse::NotRequired;
    }
}

/// The scope of the reuse required, unless `require_tls_session_reuse = false` said none is.
fn read_session_reuse_scope(r: &mut Reader<'_>, v: &toml::Value, s: &mut Settings) {
    let scope = |text: &str| match text {
        "client" => Ok(SessionReuse::SameClient),
        "connection" => Ok(SessionReuse::SameConnection),
        other => Err(format!(
            "'{other}': expected \"client\" (a session of the same user from the same address) \
             or \"connection\" (only the control connection's own)"
        )),
    };
    if let Some(scope) = r.parsed(v, scope) {
        if s.core.tls_session_reuse != SessionReuse::NotRequired {
            s.core.tls_session_reuse = scope;
        }
    }
}

fn read_event_command(r: &mut Reader<'_>, v: &toml::Value, s: &mut Settings) {
    if let Some(argv) = r.strings(v, "[\"/usr/local/bin/on-event\", \"--flag\"]") {
        let command = parse_event_command(&argv).map_err(|m| r.err(m)).ok();
        set(&mut s.events.command, command.map(Some));
    }
}

fn read_event_command_events(r: &mut Reader<'_>, v: &toml::Value, s: &mut Settings) {
    let Some(names) = r.strings(v, "[\"upload_complete\", \"login_failed\"]") else {
        return;
    };
    let unknown: Vec<&String> = names
        .iter()
        .filter(|n| !EVENT_NAMES.contains(&n.as_str()))
        .collect();
    if unknown.is_empty() {
        s.events.command_events = Some(names);
    } else {
        r.err(format!(
            "unknown event name(s) {unknown:?}; the events are: {}",
            EVENT_NAMES.join(", ")
        ));
    }
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
