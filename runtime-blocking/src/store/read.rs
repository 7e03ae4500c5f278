//! Reading a store file: its `[[partner]]` and `[[user]]` entries, each with its table of
//! keys, then what ties the entries together — a name defined twice, a user's partner that
//! is not defined, a home given to the wrong kind of user.
//!
//! It must not change the file (`edit.rs`) or look at the folders the entries name.

use std::path::Path;

use super::entry::{Partner, StoreData, UserEntry};
use super::keys::{new_partner, PARTNER_KEYS, USER_KEYS};
use super::limits::LIMIT_KEYS;
use crate::toml_read::{self, read_keys, ConfigError, Key, Reader};

/// Reads a store file. `partners_root` is where partners without a `root` live.
pub fn load(path: &Path, partners_root: &Path) -> Result<StoreData, Vec<ConfigError>> {
    let text = toml_read::read_text(path).map_err(|e| vec![e])?;
    parse(
        &text,
        &path.display().to_string(),
        path.parent().unwrap_or(Path::new(".")),
        partners_root,
    )
}

/// Parses the text of a store file named `file`; relative paths are taken from `base`.
pub fn parse(
    text: &str,
    file: &str,
    base: &Path,
    partners_root: &Path,
) -> Result<StoreData, Vec<ConfigError>> {
    let table = toml_read::parse_table(file, text).map_err(|e| vec![e])?;
    let mut r = Reader::new(file, base);
    for key in table.keys() {
        if key != "user" && key != "partner" {
            r.err_at(
                key,
                "unknown key (a store file holds [[partner]] and [[user]] entries)",
            );
        }
    }
    let mut data = StoreData::default();
    entries(&mut r, &table, "partner", |r, place, t| {
        if let Some(p) = read_partner(r, place, t, partners_root) {
            if data.partner(&p.name).is_some() {
                let key = Reader::join(place, "name");
                r.err_at(&key, format!("'{}' is defined twice", p.name));
            } else {
                data.partners.push(p);
            }
        }
    });
    entries(&mut r, &table, "user", |r, place, t| {
        if let Some(u) = read_user(r, place, t, &data) {
            if data.users.iter().any(|q| q.name == u.name) {
                let key = Reader::join(place, "name");
                r.err_at(&key, format!("'{}' is defined twice", u.name));
            } else {
                data.users.push(u);
            }
        }
    });
    let errors = r.into_errors();
    if errors.is_empty() {
        Ok(data)
    } else {
        Err(errors)
    }
}

/// Reads each table of the array of tables `key` (`[[key]]`) with `read`.
fn entries(
    r: &mut Reader<'_>,
    table: &toml::Table,
    key: &str,
    read: impl FnMut(&mut Reader<'_>, &str, &toml::Table),
) {
    if let Some(v) = table.get(key) {
        r.at(key.to_owned());
        r.each_table(v, &format!("write each entry as [[{key}]]"), read);
    }
}

/// A partner entry, or `None` when it has problems (they went to `r`).
fn read_partner(
    r: &mut Reader<'_>,
    place: &str,
    t: &toml::Table,
    partners_root: &Path,
) -> Option<Partner> {
    let before = r.problems();
    let mut p = new_partner();
    read_keys(r, place, t, PARTNER_KEYS, &mut p, |_| {
        Key::unknown(PARTNER_KEYS, "known")
    });
    if !t.contains_key("name") {
        r.err_at(&Reader::join(place, "name"), "missing");
    }
    if r.problems() > before {
        return None;
    }
    if p.root.as_os_str().is_empty() {
        p.root = partners_root.join(&p.name);
    }
    Some(p)
}

/// A user entry, or `None` when it has problems (they went to `r`); its partner must be one
/// of `data`'s.
fn read_user(
    r: &mut Reader<'_>,
    place: &str,
    t: &toml::Table,
    data: &StoreData,
) -> Option<UserEntry> {
    let before = r.problems();
    let mut u = UserEntry::new("", "", None);
    let known = format!("{}, {}", Key::names(USER_KEYS), Key::names(LIMIT_KEYS));
    for (name, v) in t {
        r.at(Reader::join(place, name));
        if let Some(key) = Key::find(USER_KEYS, name) {
            (key.read)(r, v, &mut u);
        } else if let Some(key) = Key::find(LIMIT_KEYS, name) {
            (key.read)(r, v, &mut u.limits);
        } else {
            r.err(format!("unknown key (known: {known})"));
        }
    }
    let key = |k: &str| Reader::join(place, k);
    for k in ["name", "password"] {
        if !t.contains_key(k) {
            r.err_at(&key(k), "missing");
        }
    }
    match u.partner() {
        _ if u.name.is_empty() => {}
        Some(partner) => {
            if data.partner(partner).is_none() {
                r.err_at(
                    &key("name"),
                    format!(
                        "partner '{partner}' is not defined in this file (add it with `wharf \
                         partner add {partner}`, or a [[partner]] entry with name = \
                         \"{partner}\")"
                    ),
                );
            }
            if t.contains_key("home") {
                r.err_at(
                    &key("home"),
                    "a partner user sees the partner's tree; home is only for users of no \
                     partner (set the partner's root instead)",
                );
            }
        }
        None if !t.contains_key("home") => r.err_at(
            &key("home"),
            "missing: a user of no partner needs a home folder",
        ),
        None => {}
    }
    (r.problems() == before).then_some(u)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::entry::default_folders;
    use std::path::PathBuf;

    const H: &str = "$argon2id$v=19$m=19456,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$\
                     9sTbSlTio3Biev89thdrlKKiCaYsjjYVJxGAL3swxpg";

    fn read(text: &str) -> Result<StoreData, Vec<ConfigError>> {
        parse(
            text,
            "users.toml",
            Path::new("/etc/wharf"),
            Path::new("/srv/p"),
        )
    }

    fn parse_ok(text: &str) -> StoreData {
        read(text).unwrap()
    }

    fn errors(text: &str) -> String {
        toml_read::messages(read(text).unwrap_err()).join("\n")
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
            fxp_peers = ["192.0.2.10", "198.51.100.0/24"]
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
            fxp_peers = []
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
        assert_eq!(acme.fxp_peers.as_ref().map(Vec::len), Some(2));
        let globex = &d.partners[1];
        assert_eq!(globex.fxp_peers, None);
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
        assert_eq!(alice.limits.idle_time_secs, 30);
        assert_eq!(
            (alice.limits.upload_rate, alice.limits.download_rate),
            (1000, 0)
        );
        assert_eq!(
            (alice.limits.max_logins, alice.limits.max_logins_per_ip),
            (2, 1)
        );
        assert_eq!(alice.limits.allow_ip.len(), 1);
        assert_eq!(alice.limits.fxp_peers, Some(Vec::new()));
        let bob = &d.users[1];
        assert_eq!(bob.limits.fxp_peers, None);
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
        assert_eq!(d.users[0].limits.tls.control, Some(true));
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
}
