//! What a store file holds, once read: the partners with their fixed folders, the users, and
//! the rules for their names and for modes.
//!
//! It must not read or write the file (`read.rs`, `edit.rs`) nor say which key keeps which
//! field (`keys.rs`, `limits.rs`).

use std::path::PathBuf;
use wharf_core::policy::{Cidr, IpFilter};
use wharf_core::VirtualPath;

use super::limits::UserLimits;

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
            owner: RESERVED_USER.into(),
            group: RESERVED_USER.into(),
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
    /// The servers its users may use in third-party (FXP) transfers, in place of the
    /// server's; `None` leaves the server's.
    pub fxp_peers: Option<Vec<Cidr>>,
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
    /// Idle time, transfer rates, simultaneous logins, allowed addresses, TLS requirements.
    pub limits: UserLimits,
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
            .field("limits", &self.limits)
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
            limits: UserLimits::default(),
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
