//! Changing a store file in place, for the management commands: entries are added and keys
//! set in a format-preserving TOML document (comments and order stay), and the result is
//! written atomically (temporary file, then rename) after it was checked to read as a
//! store, so that a running server never sees a file it would refuse.
//!
//! It must not decide whether a change is allowed (a partner that exists already, a user of
//! an unknown partner): the cli module does, and the check on saving catches the rest.

use std::path::{Path, PathBuf};

use super::entry::{Partner, UserEntry, DEFAULT_DIR_MODE, DEFAULT_FILE_MODE};
use super::limits::cidr_array;
use super::read::parse;
use crate::toml_read::messages;

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
        use toml_edit::{value, ArrayOfTables, Item, Table};
        let mut t = Table::new();
        t["name"] = value(p.name.as_str());
        if own_root {
            t["root"] = value(p.root.to_string_lossy().as_ref());
        }
        if !p.ip_filter.allow.is_empty() {
            t["allow_ip"] = cidr_array(&p.ip_filter.allow);
        }
        if !p.ip_filter.deny.is_empty() {
            t["deny_ip"] = cidr_array(&p.ip_filter.deny);
        }
        if let Some(peers) = &p.fxp_peers {
            t["fxp_peers"] = cidr_array(peers);
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
        use toml_edit::{value, Table};
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
        u.limits.write(&mut t);
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
        .map_err(messages)?;
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
    use crate::store::entry::default_folders;
    use crate::store::read::load;
    use wharf_core::policy::{Cidr, IpFilter};

    const H: &str = "$argon2id$v=19$m=19456,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$\
                     9sTbSlTio3Biev89thdrlKKiCaYsjjYVJxGAL3swxpg";

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
            fxp_peers: Some(vec![Cidr::parse("192.0.2.0/24").unwrap()]),
            folders: default_folders(),
            file_mode: DEFAULT_FILE_MODE,
            dir_mode: DEFAULT_DIR_MODE,
        };
        edit.add_partner(&acme, false).unwrap();
        let mut alice = UserEntry::new("acme/alice", H, None);
        alice.limits.fxp_peers = Some(Vec::new());
        edit.add_user(&alice).unwrap();
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
        assert_eq!(d.users[1], alice);
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
