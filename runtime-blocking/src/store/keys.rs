//! The keys of the store's entries, one table per kind of entry: [`PARTNER_KEYS`] for
//! `[[partner]]`, [`FOLDER_KEYS`] for its `[[partner.folder]]`s, [`USER_KEYS`] for
//! `[[user]]` (whose limits are [`super::LIMIT_KEYS`]). Each entry names the key, its
//! default and meaning, and reads its value into the field that keeps it, with
//! [`crate::toml_read`]'s readers, as the configuration's keys are read.
//!
//! It must not check one entry against another (a user's partner, a name defined twice):
//! `read.rs` does, once the entries are read.

use argon2::password_hash::PasswordHash;
use wharf_core::VirtualPath;

use std::path::PathBuf;
use wharf_core::policy::IpFilter;

use super::entry::RESERVED_USER;
use super::entry::{check_partner_name, check_user_name, default_folders, parse_mode};
use super::entry::{FixedFolder, Partner, UserEntry, DEFAULT_DIR_MODE, DEFAULT_FILE_MODE};
use crate::toml_read::{read_keys, set, Key, Reader};

/// The keys of a `[[partner]]` entry.
pub const PARTNER_KEYS: &[Key<Partner>] = &[
    Key {
        name: "name",
        default: "none (required)",
        doc: "letters, digits, '.', '_', '-'; names the partner's folder and prefixes its \
              users' login names",
        read: |r, v, p| set(&mut p.name, r.parsed(v, partner_name)),
    },
    Key {
        name: "root",
        default: "`<partners_root>/<name>`",
        doc: "the folder its users see as `/`",
        read: |r, v, p| set(&mut p.root, r.path(v)),
    },
    Key {
        name: "allow_ip",
        default: "[]",
        doc: "addresses or CIDR networks its users may log in from; `[]` = any",
        read: |r, v, p| p.ip_filter.allow = r.cidrs(v).unwrap_or_default(),
    },
    Key {
        name: "deny_ip",
        default: "[]",
        doc: "addresses or CIDR networks its users may not log in from (deny wins)",
        read: |r, v, p| p.ip_filter.deny = r.cidrs(v).unwrap_or_default(),
    },
    Key {
        name: "fxp_peers",
        default: "the server's `fxp_peers`",
        doc: "servers (addresses or CIDR networks) its users may use in third-party (FXP) \
              transfers, in place of the server's list; `[]`: none",
        read: |r, v, p| set(&mut p.fxp_peers, r.cidrs(v).map(Some)),
    },
    Key {
        name: "file_mode",
        default: "\"0444\"",
        doc: "mode of the files its users upload, an octal string",
        read: |r, v, p| set(&mut p.file_mode, mode(r, v, 0o777)),
    },
    Key {
        name: "dir_mode",
        default: "\"0755\"",
        doc: "mode of the folders its users create, an octal string",
        read: |r, v, p| set(&mut p.dir_mode, mode(r, v, 0o7777)),
    },
    Key {
        name: "folder",
        default: "`Inbox` (0755) and `Outbox` (0777)",
        doc: "the fixed folders, each a `[[partner.folder]]` table",
        read: read_folders,
    },
];

/// The keys of a `[[partner.folder]]` entry.
pub const FOLDER_KEYS: &[Key<FixedFolder>] = &[
    Key {
        name: "path",
        default: "none (required)",
        doc: "where the folder is in the partner's tree",
        read: |r, v, f| set(&mut f.path, r.parsed(v, folder_path)),
    },
    Key {
        name: "mode",
        default: "\"0755\"",
        doc: "its permission bits, an octal string",
        read: |r, v, f| set(&mut f.mode, mode(r, v, 0o7777)),
    },
    Key {
        name: "owner",
        default: "\"root\"",
        doc: "its owner as listings show it",
        read: |r, v, f| set(&mut f.owner, r.parsed(v, owner_name)),
    },
    Key {
        name: "group",
        default: "\"root\"",
        doc: "its group as listings show it",
        read: |r, v, f| set(&mut f.group, r.parsed(v, owner_name)),
    },
];

/// The keys of a `[[user]]` entry, but for its limits ([`super::LIMIT_KEYS`]).
pub const USER_KEYS: &[Key<UserEntry>] = &[
    Key {
        name: "name",
        default: "none (required)",
        doc: "`partner/user` for a partner's user, `user` for a user of no partner",
        read: |r, v, u| set(&mut u.name, r.parsed(v, user_name)),
    },
    Key {
        name: "password",
        default: "none (required)",
        doc: "an argon2 hash in PHC form, as `wharf user add` and `wharf user passwd` make it",
        read: |r, v, u| set(&mut u.password_hash, r.parsed(v, password_hash)),
    },
    Key {
        name: "home",
        default: "none",
        doc: "the folder a user of no partner sees as `/` (required for them, refused for a \
              partner's users)",
        read: |r, v, u| set(&mut u.home, r.path(v).map(Some)),
    },
    Key {
        name: "enabled",
        default: "true",
        doc: "may log in",
        read: |r, v, u| set(&mut u.enabled, r.bool(v)),
    },
    Key {
        name: "write",
        default: "true",
        doc: "may change files (`false`: read-only)",
        read: |r, v, u| set(&mut u.write, r.bool(v)),
    },
    Key {
        name: "admin",
        default: "false",
        doc: "may use SITE WHO, SITE STAT and SITE DESCUSER",
        read: |r, v, u| set(&mut u.admin, r.bool(v)),
    },
];

/// A partner as its entry starts, before its keys are read: every default in place, no name,
/// and no root yet (`read.rs` puts it under `partners_root` when the entry gives none).
pub(super) fn new_partner() -> Partner {
    Partner {
        name: String::new(),
        root: PathBuf::new(),
        ip_filter: IpFilter::default(),
        fxp_peers: None,
        folders: default_folders(),
        file_mode: DEFAULT_FILE_MODE,
        dir_mode: DEFAULT_DIR_MODE,
    }
}

/// A fixed folder as its entry starts: `/` (a `path` is required), `rwxr-xr-x root root`.
fn new_folder() -> FixedFolder {
    FixedFolder {
        path: VirtualPath::root(),
        owner: RESERVED_USER.into(),
        group: RESERVED_USER.into(),
        mode: 0o755,
    }
}

fn partner_name(s: &str) -> Result<String, String> {
    check_partner_name(s).map(|()| s.to_owned())
}

fn user_name(s: &str) -> Result<String, String> {
    check_user_name(s).map(|()| s.to_owned())
}

fn password_hash(s: &str) -> Result<String, String> {
    match PasswordHash::new(s) {
        Ok(h) if h.algorithm.as_str().starts_with("argon2") => Ok(s.to_owned()),
        _ => Err(
            "not an argon2 hash in PHC form ($argon2id$...); make one with `wharf user \
                  add` or `wharf user passwd`"
                .into(),
        ),
    }
}

fn folder_path(s: &str) -> Result<VirtualPath, String> {
    match VirtualPath::resolve(&VirtualPath::root(), s) {
        Ok(p) if p.is_root() => Err("must name a folder inside the partner's tree, not /".into()),
        Ok(p) if p.components().any(crate::storage::names::is_reserved) => {
            Err("names starting with .wharf are reserved for the server".into())
        }
        Ok(p) => Ok(p),
        Err(_) => Err("is not a usable path".into()),
    }
}

fn owner_name(s: &str) -> Result<String, String> {
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err("must be a name without spaces".into())
    } else {
        Ok(s.to_owned())
    }
}

/// An octal mode up to `max`, in quotes.
fn mode(r: &mut Reader<'_>, v: &toml::Value, max: u32) -> Option<u32> {
    if !v.is_str() {
        r.err(format!(
            "must be an octal mode in quotes, such as \"0444\", not {}",
            v.type_str()
        ));
        return None;
    }
    r.parsed(v, |s| parse_mode(s, max))
}

/// The `[[partner.folder]]` tables, each read with [`FOLDER_KEYS`]; a path listed twice is
/// an error.
fn read_folders(r: &mut Reader<'_>, v: &toml::Value, p: &mut Partner) {
    let mut folders: Vec<FixedFolder> = Vec::new();
    r.each_table(
        v,
        "write each folder as [[partner.folder]]",
        |r, place, t| {
            let before = r.problems();
            let mut f = new_folder();
            read_keys(r, place, t, FOLDER_KEYS, &mut f, |_| {
                Key::unknown(FOLDER_KEYS, "known")
            });
            let path_key = Reader::join(place, "path");
            if !t.contains_key("path") {
                r.err_at(&path_key, "missing");
            }
            if r.problems() > before {
                return;
            }
            if folders.iter().any(|g| g.path == f.path) {
                r.err_at(&path_key, format!("{} is listed twice", f.path));
            } else {
                folders.push(f);
            }
        },
    );
    p.folders = folders;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::limits::{UserLimits, LIMIT_KEYS};
    use std::fmt::Debug;
    use std::path::Path;

    /// Reads each key's documented default, when it is a TOML value, into `start`: it must
    /// leave it as it was.
    fn defaults_are_defaults<T: Debug>(keys: &[Key<T>], start: impl Fn() -> T) {
        for key in keys.iter().filter(|k| k.default_is_value()) {
            let text = format!("{} = {}", key.name, key.default);
            let table: toml::Table = text.parse().unwrap();
            let mut r = Reader::new("users.toml", Path::new(""));
            let mut t = start();
            read_keys(&mut r, "", &table, keys, &mut t, |name| name.to_owned());
            assert_eq!(r.problems(), 0, "{text}");
            assert_eq!(format!("{t:?}"), format!("{:?}", start()), "{text}");
        }
    }

    #[test]
    fn the_documented_defaults_are_the_defaults() {
        defaults_are_defaults(PARTNER_KEYS, new_partner);
        defaults_are_defaults(FOLDER_KEYS, new_folder);
        defaults_are_defaults(USER_KEYS, || UserEntry::new("", "", None));
        defaults_are_defaults(LIMIT_KEYS, UserLimits::default);
    }
}
