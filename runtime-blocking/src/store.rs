//! The user store file: trading partners and users, as TOML (the server config's `users_file`).
//!
//! It owns the file's format — reading it with errors that name the file, the key and the
//! problem, and changing it in place for the management commands (`wharf partner add`,
//! `wharf user add|passwd|enable|disable`) with every change written atomically (temporary
//! file, then rename) so that a running server, which re-reads the file when it changes
//! (see `server::watch_store`), never sees half of one. Password checks and the in-memory
//! accounts are the users module's; how a partner's tree looks to FTP is the storage's.
//!
//! # Format
//! ```toml
//! [[partner]]
//! name = "acme"                  # letters, digits, '.', '_', '-'; names the partner's folder
//! root = "/srv/partners/acme"    # optional; default <partners_root>/<name>
//! allow_ip = ["203.0.113.0/24"]  # optional: only these may log in (CIDR, IPv4 or IPv6)
//! deny_ip = ["203.0.113.66"]     # optional: these may not (deny wins)
//! file_mode = "0444"             # optional: mode of uploaded files, default "0444"
//! dir_mode = "0755"              # optional: mode of created folders, default "0755"
//! [[partner.folder]]             # the fixed folders; none listed = Inbox and Outbox below
//! path = "Inbox"
//! mode = "0755"
//! owner = "root"
//! group = "root"
//! [[partner.folder]]
//! path = "Outbox"
//! mode = "0777"
//!
//! [[user]]
//! name = "acme/alice"            # partner/user: logs in as acme/alice, sees acme's tree
//! password = "$argon2id$v=19$m=19456,t=1,p=1$...$..."
//! enabled = true                 # optional, default true
//! write = true                   # optional, default true
//! admin = false                  # optional: SITE WHO/STAT/DESCUSER, default false
//! idle_time_secs = 600           # optional: overrides the server's idle_timeout_secs
//! upload_rate = 1000000          # optional: bytes/s, 0 = unlimited (default)
//! download_rate = 0
//! max_logins = 2                 # optional: simultaneous logins, 0 = unlimited (default)
//! max_logins_per_ip = 1
//! allow_ip = ["192.0.2.0/24"]    # optional: this user only from these addresses
//!
//! [[user]]
//! name = "bob"                   # a user of no partner
//! password = "$argon2id$..."
//! home = "/srv/ftp/bob"          # required for users of no partner
//! tls_required_control = true    # optional per-user TLS requirements (docs/ftps.md)
//! tls_required_data = true
//! ```
//! Relative paths (`home`, a partner's `root`) are relative to the file's folder. Modes are
//! octal strings (`"0444"`): a bare TOML number would be read in decimal. Unknown keys are
//! errors. The files of the pre-partner format (only `[[user]]` with `name`, `password`,
//! `home`, `write`, `tls_required_*`) are valid store files.

use std::path::{Path, PathBuf};
use std::time::Duration;
use wharf_core::policy::{Cidr, IpFilter};
use wharf_core::{TlsOverride, VirtualPath};

use crate::toml_read::ConfigError;

/// A user no partner gets this name refused: it owns the fixed folders.
pub const RESERVED_USER: &str = "root";

/// One fixed folder of a partner's tree (created if missing; can be neither deleted nor
/// renamed by FTP users).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedFolder {
    /// Where it is in the partner's tree.
    pub path: VirtualPath,
    /// Its owner as listings show it.
    pub owner: String,
    /// Its group.
    pub group: String,
    /// Its permission bits.
    pub mode: u32,
}

impl FixedFolder {
    fn new(path: &str, mode: u32) -> FixedFolder {
        FixedFolder {
            path: VirtualPath::resolve(&VirtualPath::root(), path).unwrap_or_else(|_| {
                // Only called with short literal names.
                VirtualPath::root()
            }),
            owner: "root".into(),
            group: "root".into(),
            mode,
        }
    }
}

/// The folders of a partner that lists none: `Inbox` (`rwxr-xr-x root root`: files waiting
/// for the partner) and `Outbox` (`rwxrwxrwx root root`: where the partner drops files).
pub fn default_folders() -> Vec<FixedFolder> {
    vec![
        FixedFolder::new("Inbox", 0o755),
        FixedFolder::new("Outbox", 0o777),
    ]
}

/// Default mode of files a partner's users upload (`r--r--r--`).
pub const DEFAULT_FILE_MODE: u32 = 0o444;
/// Default mode of folders a partner's users create (`rwxr-xr-x`).
pub const DEFAULT_DIR_MODE: u32 = 0o755;

/// A trading partner: a group of users sharing one tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partner {
    /// The name (the users' group, and the prefix of their login names).
    pub name: String,
    /// The folder its users see as `/`.
    pub root: PathBuf,
    /// Addresses its users may log in from.
    pub ip_filter: IpFilter,
    /// The fixed folders.
    pub folders: Vec<FixedFolder>,
    /// Mode of uploaded files.
    pub file_mode: u32,
    /// Mode of created folders.
    pub dir_mode: u32,
}

/// One named account.
#[derive(Clone, PartialEq, Eq)]
pub struct UserEntry {
    /// Login name: `partner/user`, or `user` for a user of no partner (case-sensitive).
    pub name: String,
    /// argon2 PHC string.
    pub password_hash: String,
    /// The root folder of a user of no partner (partner users see their partner's tree).
    pub home: Option<PathBuf>,
    /// May log in.
    pub enabled: bool,
    /// May change files.
    pub write: bool,
    /// May use SITE WHO, STAT and DESCUSER.
    pub admin: bool,
    /// Overrides the server's idle timeout.
    pub idle_timeout: Option<Duration>,
    /// Upload limit, bytes/s.
    pub upload_rate: Option<u64>,
    /// Download limit, bytes/s.
    pub download_rate: Option<u64>,
    /// Most simultaneous logins.
    pub max_logins: Option<u32>,
    /// Most simultaneous logins from one address.
    pub max_logins_per_ip: Option<u32>,
    /// Addresses this user may log in from (empty: any).
    pub allow_ip: Vec<Cidr>,
    /// This user's own TLS requirements (`tls_required_control`, `tls_required_data`).
    pub tls: TlsOverride,
}

impl std::fmt::Debug for UserEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the hash.
        f.debug_struct("UserEntry")
            .field("name", &self.name)
            .field("home", &self.home)
            .field("enabled", &self.enabled)
            .field("write", &self.write)
            .field("admin", &self.admin)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl UserEntry {
    /// An enabled account with write permission and no limits.
    pub fn new(name: &str, password_hash: &str, home: Option<PathBuf>) -> UserEntry {
        UserEntry {
            name: name.to_owned(),
            password_hash: password_hash.to_owned(),
            home,
            enabled: true,
            write: true,
            admin: false,
            idle_timeout: None,
            upload_rate: None,
            download_rate: None,
            max_logins: None,
            max_logins_per_ip: None,
            allow_ip: Vec::new(),
            tls: TlsOverride::default(),
        }
    }

    /// The partner part of the login name, if any.
    pub fn partner(&self) -> Option<&str> {
        self.name.split_once('/').map(|(p, _)| p)
    }
}

/// What a store file holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreData {
    /// The partners, in file order.
    pub partners: Vec<Partner>,
    /// The users, in file order.
    pub users: Vec<UserEntry>,
}

impl StoreData {
    /// The partner named `name`.
    pub fn partner(&self, name: &str) -> Option<&Partner> {
        self.partners.iter().find(|p| p.name == name)
    }
}

/// Checks a partner name; the error says what a name may hold.
pub fn check_partner_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !name.starts_with(['.', '-'])
        && name != RESERVED_USER;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a usable partner name: 1 to 64 letters, digits, '.', '_' or '-', \
             not starting with '.' or '-', and not '{RESERVED_USER}' (it names the partner's folder)"
        ))
    }
}

/// Checks a login name (`partner/user` or `user`): the user part must be non-empty, without
/// `/` or control characters, and a partner user cannot be called `root` (the owner of the
/// fixed folders).
pub fn check_user_name(name: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("'{name}' is not a usable user name: {why}"));
    if name.is_empty() || name.len() > 128 {
        return bad("it must be 1 to 128 characters long");
    }
    if name.chars().any(|c| c.is_control()) {
        return bad("it contains control characters");
    }
    if crate::storage::names::is_reserved(name) || name.starts_with('.') {
        return bad("it starts with '.'");
    }
    match name.split_once('/') {
        None => Ok(()),
        Some((partner, user)) => {
            check_partner_name(partner)?;
            if user.is_empty() || user.contains('/') {
                bad("write it as partner/user, with one '/'")
            } else if user == RESERVED_USER {
                bad("a partner user cannot be called 'root' (the owner of the fixed folders)")
            } else if user.chars().any(char::is_whitespace) {
                bad("it contains spaces")
            } else {
                Ok(())
            }
        }
    }
}

/// Parses an octal mode string (`"0444"`, `"444"`, `"0o444"`) up to `max`.
pub fn parse_mode(s: &str, max: u32) -> Result<u32, String> {
    let t = s.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if !digits.is_empty() && m <= max => Ok(m),
        _ => Err(format!(
            "'{s}' is not an octal mode from \"0000\" to \"{max:04o}\" (such as \"0444\")"
        )),
    }
}

/// Reads a store file. `partners_root` is where partners without a `root` live.
pub fn load(path: &Path, partners_root: &Path) -> Result<StoreData, Vec<ConfigError>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError::file(
            &file,
            format!("cannot read the file: {e}"),
        )]
    })?;
    parse(
        &text,
        &file,
        path.parent().unwrap_or(Path::new(".")),
        partners_root,
    )
}

/// Reads one key's value of a store entry, collecting problems.
struct Entry<'a> {
    file: &'a str,
    prefix: String,
    errors: &'a mut Vec<ConfigError>,
}

impl Entry<'_> {
    fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.prefix)
    }

    fn err(&mut self, k: &str, msg: impl Into<String>) {
        let key = self.key(k);
        self.errors.push(ConfigError::new(self.file, &key, msg));
    }

    fn string(&mut self, k: &str, v: &toml::Value) -> Option<String> {
        match v.as_str() {
            Some(s) => Some(s.to_owned()),
            None => {
                self.err(k, format!("must be a string, not {}", v.type_str()));
                None
            }
        }
    }

    fn bool(&mut self, k: &str, v: &toml::Value) -> Option<bool> {
        match v.as_bool() {
            Some(b) => Some(b),
            None => {
                self.err(k, format!("must be true or false, not {}", v.type_str()));
                None
            }
        }
    }

    fn int(&mut self, k: &str, v: &toml::Value, max: i64) -> Option<i64> {
        match v.as_integer() {
            Some(i) if (0..=max).contains(&i) => Some(i),
            Some(i) => {
                self.err(k, format!("{i} is out of range (0 to {max})"));
                None
            }
            None => {
                self.err(
                    k,
                    format!("must be a whole number (0 to {max}), not {}", v.type_str()),
                );
                None
            }
        }
    }

    fn mode(&mut self, k: &str, v: &toml::Value, max: u32) -> Option<u32> {
        match v {
            toml::Value::String(s) => match parse_mode(s, max) {
                Ok(m) => Some(m),
                Err(e) => {
                    self.err(k, e);
                    None
                }
            },
            v => {
                self.err(
                    k,
                    format!(
                        "must be an octal mode in quotes, such as \"0444\", not {}",
                        v.type_str()
                    ),
                );
                None
            }
        }
    }

    fn cidrs(&mut self, k: &str, v: &toml::Value) -> Option<Vec<Cidr>> {
        let items: Vec<&toml::Value> = match v {
            toml::Value::Array(a) => a.iter().collect(),
            toml::Value::String(_) => vec![v],
            v => {
                self.err(
                    k,
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
                    self.err(k, e.to_string());
                    bad = true;
                }
                None => {
                    self.err(k, format!("must hold strings, not {}", item.type_str()));
                    bad = true;
                }
            }
        }
        (!bad).then_some(out)
    }
}

const USER_KEYS: &str = "name, password, home, enabled, write, admin, idle_time_secs, \
                         upload_rate, download_rate, max_logins, max_logins_per_ip, allow_ip, \
                         tls_required_control, tls_required_data";
const PARTNER_KEYS: &str = "name, root, allow_ip, deny_ip, file_mode, dir_mode, folder";
const FOLDER_KEYS: &str = "path, mode, owner, group";

/// Parses the text of a store file named `file`; relative paths are taken from `base`.
pub fn parse(
    text: &str,
    file: &str,
    base: &Path,
    partners_root: &Path,
) -> Result<StoreData, Vec<ConfigError>> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| vec![ConfigError::syntax(file, text, &e)])?;
    let mut errors = Vec::new();
    let mut data = StoreData::default();
    let list = |key: &str, errors: &mut Vec<ConfigError>| -> Vec<toml::Value> {
        match table.get(key) {
            None => Vec::new(),
            Some(toml::Value::Array(a)) => a.clone(),
            Some(_) => {
                errors.push(ConfigError::new(
                    file,
                    key,
                    format!("must be an array of tables: write each entry as [[{key}]]"),
                ));
                Vec::new()
            }
        }
    };
    for key in table.keys() {
        if key != "user" && key != "partner" {
            errors.push(ConfigError::new(
                file,
                key,
                "unknown key (a store file holds [[partner]] and [[user]] entries)",
            ));
        }
    }
    for (i, item) in list("partner", &mut errors).iter().enumerate() {
        let mut e = Entry {
            file,
            prefix: format!("partner[{}]", i + 1),
            errors: &mut errors,
        };
        let Some(t) = item.as_table() else {
            let key = e.prefix.clone();
            e.errors
                .push(ConfigError::new(file, &key, "must be a table"));
            continue;
        };
        if let Some(p) = parse_partner(&mut e, t, base, partners_root) {
            if data.partners.iter().any(|q| q.name == p.name) {
                e.err("name", format!("'{}' is defined twice", p.name));
            } else {
                data.partners.push(p);
            }
        }
    }
    for (i, item) in list("user", &mut errors).iter().enumerate() {
        let mut e = Entry {
            file,
            prefix: format!("user[{}]", i + 1),
            errors: &mut errors,
        };
        let Some(t) = item.as_table() else {
            let key = e.prefix.clone();
            e.errors
                .push(ConfigError::new(file, &key, "must be a table"));
            continue;
        };
        if let Some(u) = parse_user(&mut e, t, base, &data) {
            if data.users.iter().any(|q| q.name == u.name) {
                e.err("name", format!("'{}' is defined twice", u.name));
            } else {
                data.users.push(u);
            }
        }
    }
    if errors.is_empty() {
        Ok(data)
    } else {
        Err(errors)
    }
}

fn parse_partner(
    e: &mut Entry<'_>,
    t: &toml::Table,
    base: &Path,
    partners_root: &Path,
) -> Option<Partner> {
    let before = e.errors.len();
    let mut name = None;
    let mut root = None;
    let mut allow = Vec::new();
    let mut deny = Vec::new();
    let mut file_mode = DEFAULT_FILE_MODE;
    let mut dir_mode = DEFAULT_DIR_MODE;
    let mut folders: Option<Vec<FixedFolder>> = None;
    for (k, v) in t {
        match k.as_str() {
            "name" => {
                if let Some(s) = e.string(k, v) {
                    match check_partner_name(&s) {
                        Ok(()) => name = Some(s),
                        Err(m) => e.err(k, m),
                    }
                }
            }
            "root" => {
                if let Some(s) = e.string(k, v) {
                    if s.is_empty() {
                        e.err(k, "must not be empty");
                    } else {
                        root = Some(base.join(s));
                    }
                }
            }
            "allow_ip" => allow = e.cidrs(k, v).unwrap_or_default(),
            "deny_ip" => deny = e.cidrs(k, v).unwrap_or_default(),
            "file_mode" => file_mode = e.mode(k, v, 0o777).unwrap_or(file_mode),
            "dir_mode" => dir_mode = e.mode(k, v, 0o7777).unwrap_or(dir_mode),
            "folder" => {
                let Some(items) = v.as_array() else {
                    e.err(
                        k,
                        "must be an array of tables: write each folder as [[partner.folder]]",
                    );
                    continue;
                };
                let mut list = Vec::new();
                for (j, item) in items.iter().enumerate() {
                    let prefix = format!("folder[{}]", j + 1);
                    let Some(ft) = item.as_table() else {
                        e.err(&prefix, "must be a table");
                        continue;
                    };
                    if let Some(f) = parse_folder(e, &prefix, ft) {
                        if list.iter().any(|g: &FixedFolder| g.path == f.path) {
                            e.err(
                                &format!("{prefix}.path"),
                                format!("{} is listed twice", f.path),
                            );
                        } else {
                            list.push(f);
                        }
                    }
                }
                folders = Some(list);
            }
            _ => e.err(k, format!("unknown key (known: {PARTNER_KEYS})")),
        }
    }
    if !t.contains_key("name") {
        e.err("name", "missing");
    }
    let name = name?;
    if e.errors.len() > before {
        return None;
    }
    Some(Partner {
        root: root.unwrap_or_else(|| partners_root.join(&name)),
        name,
        ip_filter: IpFilter { allow, deny },
        folders: folders.unwrap_or_else(default_folders),
        file_mode,
        dir_mode,
    })
}

fn parse_folder(e: &mut Entry<'_>, prefix: &str, t: &toml::Table) -> Option<FixedFolder> {
    let before = e.errors.len();
    let key = |k: &str| format!("{prefix}.{k}");
    let mut path = None;
    let mut mode = 0o755;
    let mut owner = "root".to_string();
    let mut group = "root".to_string();
    for (k, v) in t {
        match k.as_str() {
            "path" => {
                if let Some(s) = e.string(&key(k), v) {
                    match VirtualPath::resolve(&VirtualPath::root(), &s) {
                        Ok(p) if p.is_root() => e.err(
                            &key(k),
                            "must name a folder inside the partner's tree, not /",
                        ),
                        Ok(p) if p.components().any(crate::storage::names::is_reserved) => e.err(
                            &key(k),
                            "names starting with .wharf are reserved for the server",
                        ),
                        Ok(p) => path = Some(p),
                        Err(_) => e.err(&key(k), "is not a usable path"),
                    }
                }
            }
            "mode" => mode = e.mode(&key(k), v, 0o7777).unwrap_or(mode),
            "owner" | "group" => {
                if let Some(s) = e.string(&key(k), v) {
                    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
                        e.err(&key(k), "must be a name without spaces");
                    } else if k == "owner" {
                        owner = s;
                    } else {
                        group = s;
                    }
                }
            }
            _ => e.err(&key(k), format!("unknown key (known: {FOLDER_KEYS})")),
        }
    }
    if !t.contains_key("path") {
        e.err(&key("path"), "missing");
    }
    if e.errors.len() > before {
        return None;
    }
    Some(FixedFolder {
        path: path?,
        owner,
        group,
        mode,
    })
}

fn parse_user(
    e: &mut Entry<'_>,
    t: &toml::Table,
    base: &Path,
    data: &StoreData,
) -> Option<UserEntry> {
    use argon2::password_hash::PasswordHash;
    let before = e.errors.len();
    let mut u = UserEntry::new("", "", None);
    let mut name = None;
    let mut hash = None;
    for (k, v) in t {
        match k.as_str() {
            "name" => {
                if let Some(s) = e.string(k, v) {
                    match check_user_name(&s) {
                        Ok(()) => name = Some(s),
                        Err(m) => e.err(k, m),
                    }
                }
            }
            "password" => {
                if let Some(s) = e.string(k, v) {
                    match PasswordHash::new(&s) {
                        Ok(h) if h.algorithm.as_str().starts_with("argon2") => hash = Some(s),
                        _ => e.err(
                            k,
                            "not an argon2 hash in PHC form ($argon2id$...); make one with \
                             `wharf user add` or `wharf user passwd`",
                        ),
                    }
                }
            }
            "home" => {
                if let Some(s) = e.string(k, v) {
                    if s.is_empty() {
                        e.err(k, "must not be empty");
                    } else {
                        u.home = Some(base.join(s));
                    }
                }
            }
            "enabled" => u.enabled = e.bool(k, v).unwrap_or(u.enabled),
            "write" => u.write = e.bool(k, v).unwrap_or(u.write),
            "admin" => u.admin = e.bool(k, v).unwrap_or(u.admin),
            "tls_required_control" => u.tls.control = e.bool(k, v),
            "tls_required_data" => u.tls.data = e.bool(k, v),
            "idle_time_secs" => {
                u.idle_timeout = e
                    .int(k, v, 365 * 86_400)
                    .filter(|&n| n > 0)
                    .map(|n| Duration::from_secs(n as u64))
            }
            "upload_rate" => {
                u.upload_rate = e.int(k, v, i64::MAX).filter(|&n| n > 0).map(|n| n as u64)
            }
            "download_rate" => {
                u.download_rate = e.int(k, v, i64::MAX).filter(|&n| n > 0).map(|n| n as u64)
            }
            "max_logins" => {
                u.max_logins = e.int(k, v, 100_000).filter(|&n| n > 0).map(|n| n as u32)
            }
            "max_logins_per_ip" => {
                u.max_logins_per_ip = e.int(k, v, 100_000).filter(|&n| n > 0).map(|n| n as u32)
            }
            "allow_ip" => u.allow_ip = e.cidrs(k, v).unwrap_or_default(),
            _ => e.err(k, format!("unknown key (known: {USER_KEYS})")),
        }
    }
    for k in ["name", "password"] {
        if !t.contains_key(k) {
            e.err(k, "missing");
        }
    }
    if let Some(n) = &name {
        match n.split_once('/') {
            Some((partner, _)) => {
                if data.partner(partner).is_none() {
                    e.err(
                        "name",
                        format!(
                            "partner '{partner}' is not defined in this file (add it with \
                             `wharf partner add {partner}`, or a [[partner]] entry with name = \
                             \"{partner}\")"
                        ),
                    );
                }
                if t.contains_key("home") {
                    e.err(
                        "home",
                        "a partner user sees the partner's tree; home is only for users of no \
                         partner (set the partner's root instead)",
                    );
                }
            }
            None if !t.contains_key("home") => {
                e.err("home", "missing: a user of no partner needs a home folder")
            }
            None => {}
        }
    }
    if e.errors.len() > before {
        return None;
    }
    u.name = name?;
    u.password_hash = hash?;
    Some(u)
}

// ----- changing the file ----------------------------------------------------------------------

/// The header of a store file made by a management command.
pub const NEW_FILE_HEADER: &str = "\
# Wharf user store: trading partners and their users (see docs/partners.md).
# Managed with `wharf partner add` and `wharf user add|passwd|enable|disable`; a running
# server picks up every change within a few seconds. Passwords are argon2id hashes.
";

/// A store file open for changes: its text as a format-preserving TOML document.
pub struct StoreEdit {
    path: PathBuf,
    doc: toml_edit::DocumentMut,
    /// The file does not exist yet: it gets [`NEW_FILE_HEADER`].
    new_file: bool,
}

impl StoreEdit {
    /// Opens `path` for changes; a missing file starts as an empty store with a header.
    pub fn open(path: &Path) -> Result<StoreEdit, String> {
        let (text, new_file) = match std::fs::read_to_string(path) {
            Ok(t) => (t, false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (String::new(), true),
            Err(e) => return Err(format!("{}: cannot read the file: {e}", path.display())),
        };
        let doc = text
            .parse::<toml_edit::DocumentMut>()
            .map_err(|e| format!("{}: {}", path.display(), e.to_string().trim()))?;
        Ok(StoreEdit {
            path: path.to_path_buf(),
            doc,
            new_file,
        })
    }

    /// The document's text.
    pub fn text(&self) -> String {
        if self.new_file {
            format!("{NEW_FILE_HEADER}\n{}", self.doc)
        } else {
            self.doc.to_string()
        }
    }

    fn array(&mut self, key: &str) -> Result<&mut toml_edit::ArrayOfTables, String> {
        let path = self.path.display().to_string();
        let item = self
            .doc
            .entry(key)
            .or_insert(toml_edit::Item::ArrayOfTables(
                toml_edit::ArrayOfTables::new(),
            ));
        item.as_array_of_tables_mut()
            .ok_or_else(|| format!("{path}: key '{key}': must be an array of tables ([[{key}]])"))
    }

    /// Appends a `[[partner]]` entry for `p`, with its folders written out; its `root` only
    /// when `own_root` (otherwise it is `<partners_root>/<name>`), its modes only when they
    /// are not the defaults.
    pub fn add_partner(&mut self, p: &Partner, own_root: bool) -> Result<(), String> {
        use toml_edit::{value, Array, ArrayOfTables, Item, Table};
        let mut t = Table::new();
        t["name"] = value(p.name.as_str());
        if own_root {
            t["root"] = value(p.root.to_string_lossy().as_ref());
        }
        let list = |c: &[Cidr]| {
            let mut a = Array::new();
            for x in c {
                a.push(x.to_string());
            }
            value(a)
        };
        if !p.ip_filter.allow.is_empty() {
            t["allow_ip"] = list(&p.ip_filter.allow);
        }
        if !p.ip_filter.deny.is_empty() {
            t["deny_ip"] = list(&p.ip_filter.deny);
        }
        if p.file_mode != DEFAULT_FILE_MODE {
            t["file_mode"] = value(format!("{:04o}", p.file_mode));
        }
        if p.dir_mode != DEFAULT_DIR_MODE {
            t["dir_mode"] = value(format!("{:04o}", p.dir_mode));
        }
        let mut fa = ArrayOfTables::new();
        for f in &p.folders {
            let mut ft = Table::new();
            ft["path"] = value(f.path.as_str().trim_start_matches('/'));
            ft["mode"] = value(format!("{:04o}", f.mode));
            ft["owner"] = value(f.owner.as_str());
            ft["group"] = value(f.group.as_str());
            fa.push(ft);
        }
        t["folder"] = Item::ArrayOfTables(fa);
        self.array("partner")?.push(t);
        Ok(())
    }

    /// Appends a `[[user]]` entry. `home` only for users of no partner.
    pub fn add_user(&mut self, u: &UserEntry) -> Result<(), String> {
        use toml_edit::{value, Array, Table};
        let mut t = Table::new();
        t["name"] = value(u.name.as_str());
        t["password"] = value(u.password_hash.as_str());
        if let Some(home) = &u.home {
            t["home"] = value(home.to_string_lossy().as_ref());
        }
        t["enabled"] = value(u.enabled);
        t["write"] = value(u.write);
        if u.admin {
            t["admin"] = value(true);
        }
        if let Some(d) = u.idle_timeout {
            t["idle_time_secs"] = value(d.as_secs() as i64);
        }
        for (k, v) in [
            ("upload_rate", u.upload_rate),
            ("download_rate", u.download_rate),
        ] {
            if let Some(n) = v {
                t[k] = value(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        for (k, v) in [
            ("max_logins", u.max_logins),
            ("max_logins_per_ip", u.max_logins_per_ip),
        ] {
            if let Some(n) = v {
                t[k] = value(i64::from(n));
            }
        }
        if !u.allow_ip.is_empty() {
            let mut a = Array::new();
            for c in &u.allow_ip {
                a.push(c.to_string());
            }
            t["allow_ip"] = value(a);
        }
        self.array("user")?.push(t);
        Ok(())
    }

    /// Sets `key` of the user named `name`; false when there is no such user.
    pub fn set_user(
        &mut self,
        name: &str,
        key: &str,
        v: impl Into<toml_edit::Value>,
    ) -> Result<bool, String> {
        let v = toml_edit::Item::Value(v.into());
        let users = self.array("user")?;
        for t in users.iter_mut() {
            if t.get("name").and_then(|n| n.as_str()) == Some(name) {
                t[key] = v;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Writes the document atomically (temporary file, then rename), readable by the
    /// file's owner only (it holds password hashes). The text is checked to parse as a store
    /// first, so a change never leaves a file the server would refuse.
    pub fn save(&self, partners_root: &Path) -> Result<(), Vec<String>> {
        let text = self.text();
        let file = self.path.display().to_string();
        parse(
            &text,
            &file,
            self.path.parent().unwrap_or(Path::new(".")),
            partners_root,
        )
        .map_err(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        write_private(&self.path, text.as_bytes())
            .map_err(|e| vec![format!("{file}: cannot write: {e}")])
    }
}

/// Writes `bytes` to `path` atomically with mode 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map_or("store".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(
        ".{name}.tmp.{}",
        crate::storage::names::unique_suffix()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "$argon2id$v=19$m=19456,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$\
                     9sTbSlTio3Biev89thdrlKKiCaYsjjYVJxGAL3swxpg";

    fn parse_ok(text: &str) -> StoreData {
        parse(
            text,
            "users.toml",
            Path::new("/etc/wharf"),
            Path::new("/srv/p"),
        )
        .unwrap()
    }

    fn errors(text: &str) -> String {
        parse(
            text,
            "users.toml",
            Path::new("/etc/wharf"),
            Path::new("/srv/p"),
        )
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
    }

    #[test]
    fn partners_and_users() {
        let d = parse_ok(&format!(
            r#"
            [[partner]]
            name = "acme"
            allow_ip = ["127.0.0.0/8", "::1"]
            deny_ip = "127.0.0.2"
            file_mode = "0440"
            [[partner]]
            name = "globex"
            root = "globex-files"
            [[partner.folder]]
            path = "/to-globex"
            mode = "0750"
            group = "globex"
            [[partner.folder]]
            path = "from-globex/daily"
            mode = "1777"

            [[user]]
            name = "acme/alice"
            password = "{H}"
            admin = true
            idle_time_secs = 30
            upload_rate = 1000
            download_rate = 0
            max_logins = 2
            max_logins_per_ip = 1
            allow_ip = ["10.0.0.0/8"]
            [[user]]
            name = "bob"
            password = "{H}"
            home = "bob"
            enabled = false
            write = false
            "#
        ));
        assert_eq!(d.partners.len(), 2);
        let acme = &d.partners[0];
        assert_eq!(acme.root, PathBuf::from("/srv/p/acme"));
        assert_eq!(acme.folders, default_folders());
        assert_eq!((acme.file_mode, acme.dir_mode), (0o440, 0o755));
        assert!(acme.ip_filter.permits("127.0.0.1".parse().unwrap()));
        assert!(acme.ip_filter.permits("::1".parse().unwrap()));
        assert!(!acme.ip_filter.permits("127.0.0.2".parse().unwrap()));
        let globex = &d.partners[1];
        assert_eq!(globex.root, PathBuf::from("/etc/wharf/globex-files"));
        assert_eq!(globex.folders.len(), 2);
        assert_eq!(globex.folders[0].path.as_str(), "/to-globex");
        assert_eq!(
            (
                globex.folders[0].owner.as_str(),
                globex.folders[0].group.as_str()
            ),
            ("root", "globex")
        );
        assert_eq!(globex.folders[1].path.as_str(), "/from-globex/daily");
        assert_eq!(globex.folders[1].mode, 0o1777);
        let alice = &d.users[0];
        assert_eq!(alice.partner(), Some("acme"));
        assert!(alice.admin && alice.enabled && alice.write && alice.home.is_none());
        assert_eq!(alice.idle_timeout, Some(Duration::from_secs(30)));
        assert_eq!((alice.upload_rate, alice.download_rate), (Some(1000), None));
        assert_eq!(
            (alice.max_logins, alice.max_logins_per_ip),
            (Some(2), Some(1))
        );
        assert_eq!(alice.allow_ip.len(), 1);
        let bob = &d.users[1];
        assert_eq!(bob.home, Some(PathBuf::from("/etc/wharf/bob")));
        assert!(!bob.enabled && !bob.write && bob.partner().is_none());
    }

    #[test]
    fn the_old_format_still_reads() {
        let d = parse_ok(&format!(
            "[[user]]\nname = \"alice\"\npassword = \"{H}\"\nhome = \"/srv/alice\"\nwrite = false\n\
             tls_required_control = true\n"
        ));
        assert_eq!(d.users.len(), 1);
        assert!(d.users[0].enabled && !d.users[0].write);
        assert_eq!(d.users[0].tls.control, Some(true));
    }

    #[test]
    fn errors_name_the_file_the_key_and_the_reason() {
        let all = errors(&format!(
            r#"
            colour = "red"
            [[partner]]
            name = "root"
            [[partner]]
            name = "acme"
            file_mode = 444
            dir_mode = "999"
            allow_ip = ["10.0.0.0/33", 7]
            deny_ip = 3
            [[partner.folder]]
            mode = "0755"
            size = 1
            [[partner]]
            name = "acme"
            [[user]]
            name = "nobody/alice"
            password = "{H}"
            [[user]]
            name = "acme/root"
            password = "{H}"
            [[user]]
            name = "acme/bob"
            password = "plain"
            home = "x"
            max_logins = -1
            upload_rate = "fast"
            [[user]]
            name = "carol"
            password = "{H}"
            "#
        ));
        for want in [
            "users.toml: key 'colour': unknown key",
            "users.toml: key 'partner[1].name': 'root' is not a usable partner name",
            "users.toml: key 'partner[2].file_mode': must be an octal mode in quotes, such as \"0444\", not integer",
            "users.toml: key 'partner[2].dir_mode': '999' is not an octal mode",
            "users.toml: key 'partner[2].allow_ip': `10.0.0.0/33`: the prefix length must be 0 to 32",
            "users.toml: key 'partner[2].allow_ip': must hold strings, not integer",
            "users.toml: key 'partner[2].deny_ip': must be an array of addresses",
            "users.toml: key 'partner[2].folder[1].size': unknown key (known: path, mode, owner, group)",
            "users.toml: key 'partner[2].folder[1].path': missing",
            "users.toml: key 'user[1].name': partner 'nobody' is not defined in this file",
            "users.toml: key 'user[2].name': 'acme/root' is not a usable user name",
            "users.toml: key 'user[3].password': not an argon2 hash",
            "users.toml: key 'user[3].home': a partner user sees the partner's tree",
            "users.toml: key 'user[3].max_logins': -1 is out of range (0 to 100000)",
            "users.toml: key 'user[3].upload_rate': must be a whole number",
            "users.toml: key 'user[4].home': missing: a user of no partner needs a home folder",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
        // The second acme has errors of its own: the partner is not defined twice, but its
        // users are refused as belonging to an undefined partner only when none is left.
        let e = errors("[[partner]]\nname = \"a\"\n[[partner]]\nname = \"a\"\n");
        assert_eq!(e, "users.toml: key 'partner[2].name': 'a' is defined twice");
        let e = errors("[[user]\n");
        assert!(e.starts_with("users.toml: line 1"), "{e}");
    }

    #[test]
    fn names_and_modes() {
        assert!(check_user_name("acme/alice").is_ok());
        assert!(check_user_name("alice").is_ok());
        for bad in [
            "",
            "acme/",
            "/alice",
            "acme/a/b",
            "acme/root",
            ".wharf",
            "a\tb",
            "-x/y",
        ] {
            assert!(check_user_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_mode("0444", 0o777), Ok(0o444));
        assert_eq!(parse_mode("0o750", 0o777), Ok(0o750));
        assert_eq!(parse_mode("755", 0o777), Ok(0o755));
        assert!(parse_mode("1777", 0o777).is_err());
        assert!(parse_mode("", 0o777).is_err());
        assert!(parse_mode("8", 0o777).is_err());
    }

    #[test]
    fn edits_keep_comments_and_write_a_valid_file() {
        let dir = std::env::temp_dir().join(format!("wharf-store-edit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("users.toml");
        std::fs::write(
            &path,
            format!("# my users\n[[user]] # the old one\nname = \"old\"\npassword = \"{H}\"\nhome = \"old-home\"\n"),
        )
        .unwrap();
        let proot = dir.join("partners");
        let mut edit = StoreEdit::open(&path).unwrap();
        let acme = Partner {
            name: "acme".into(),
            root: proot.join("acme"),
            ip_filter: IpFilter::parse(["127.0.0.0/8"], []).unwrap(),
            folders: default_folders(),
            file_mode: DEFAULT_FILE_MODE,
            dir_mode: DEFAULT_DIR_MODE,
        };
        edit.add_partner(&acme, false).unwrap();
        edit.add_user(&UserEntry::new("acme/alice", H, None))
            .unwrap();
        assert!(edit.set_user("old", "enabled", false).unwrap());
        assert!(!edit.set_user("nobody", "enabled", false).unwrap());
        edit.save(&proot).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# my users\n[[user]] # the old one\n"),
            "{text}"
        );
        let d = load(&path, &proot).unwrap();
        assert_eq!(d.partners[0], acme);
        assert_eq!(d.users.len(), 2);
        assert!(!d.users[0].enabled);
        assert_eq!(d.users[1].name, "acme/alice");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A change that would make the file invalid is not written.
        let mut edit = StoreEdit::open(&path).unwrap();
        edit.add_user(&UserEntry::new("nobody/x", H, None)).unwrap();
        let e = edit.save(&proot).unwrap_err().join("\n");
        assert!(e.contains("partner 'nobody' is not defined"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        // No temporary file is left.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["users.toml".to_string()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
