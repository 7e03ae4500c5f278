//! Owner, group and mode of every entry of one tree ([`Owners`]), as listings and `SITE CHMOD`
//! see them, and keeping the ownership records in step with what FTP users do.
//!
//! Wharf does not map FTP users to system accounts, so the file system cannot say who owns an
//! entry. Each entry is reported with, in this order of precedence:
//! 1. a fixed folder of a partner: the owner, group and mode the store gives it;
//! 2. a record in the directory's sidecar ([`records`]), written when an FTP
//!    user creates the entry (MKD, an upload of a new file) or changes its mode (SITE CHMOD),
//!    and kept in step by renames and deletes, so that it survives a restart;
//! 3. otherwise the tree's default owner and group (`root`/`root` in a partner's tree, so that
//!    files the back end drops into Inbox are "other" to partner users; the user and their
//!    group in a personal home; `ftp`/`ftp` for anonymous) and the file system's own mode
//!    bits.
//!
//! Records are kept only in partners' trees, where entries belong to different users. In a
//! personal home every entry belongs to the user, so the file system can hold all there is:
//! the mode of a new entry and SITE CHMOD go to its own permission bits, and no sidecar is
//! written (`modes_on_disk`). Anonymous trees change nothing.
//!
//! Fixed folders cannot be removed or renamed, nor can a folder that holds one
//! ([`Owners::protects`]), whatever the core said.
//!
//! This module works on real paths that [`confine`](super::confine) has already checked: it
//! resolves no virtual path and decides no confinement. It writes records only through
//! [`RecordStore::update`](super::records::RecordStore::update).

use log::{error, warn};
use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use wharf_core::action::Ownership;
use wharf_core::{FileInfo, StorageError, VirtualPath};

use super::names::SIDECAR;
use super::records::{self, Record, Records};
use crate::users::FixedFolder;

/// Who owns the entries of one tree, and where that is kept.
#[derive(Debug)]
pub struct Owners {
    /// The owner of entries without a record.
    pub(super) owner: String,
    /// The group of entries without a record.
    pub(super) group: String,
    /// Owners and modes are recorded in sidecars (a partner's tree).
    pub(super) recording: bool,
    /// Modes of new entries and SITE CHMOD go to the file system's permission bits (a home).
    pub(super) modes_on_disk: bool,
    /// A partner's fixed folders, with their owner, group and mode.
    pub(super) fixed: Vec<FixedFolder>,
}

impl Default for Owners {
    /// Entries belong to `ftp`/`ftp`, nothing is recorded (as for anonymous users).
    fn default() -> Self {
        Owners {
            owner: "ftp".into(),
            group: "ftp".into(),
            recording: false,
            modes_on_disk: false,
            fixed: Vec::new(),
        }
    }
}

impl Owners {
    /// The fixed folder at `path`, if it is one.
    pub fn fixed_folder(&self, path: &VirtualPath) -> Option<&FixedFolder> {
        self.fixed.iter().find(|f| &f.path == path)
    }

    /// Whether `path` is a fixed folder or holds one: it may be neither removed nor renamed.
    pub fn protects(&self, path: &VirtualPath) -> bool {
        self.fixed.iter().any(|f| f.path.starts_with(path))
    }

    /// Whether a new file's mode goes to its permission bits (a home) rather than a record.
    pub fn new_mode_on_disk(&self) -> bool {
        self.modes_on_disk && !self.recording
    }

    /// The records of real directory `dir`, when this tree keeps records.
    pub fn records_of(&self, dir: &Path) -> Option<Arc<Records>> {
        self.recording.then(|| records::global().records(dir))
    }

    /// Sets owner, group and mode of `info` (the entry at `path`, real path `real`) as the
    /// module documentation says; `records` are those of the real directory holding it.
    pub fn decorate(
        &self,
        info: &mut FileInfo,
        path: &VirtualPath,
        real: &Path,
        records: Option<&Records>,
    ) {
        if let Some(f) = self.fixed_folder(path) {
            info.owner.clone_from(&f.owner);
            info.group.clone_from(&f.group);
            info.mode = f.mode;
            return;
        }
        info.owner.clone_from(&self.owner);
        info.group.clone_from(&self.group);
        if !self.recording || path.is_root() {
            return;
        }
        let name = match real.file_name().and_then(|n| n.to_str()) {
            Some(n) => n,
            None => return,
        };
        let ino = info.unique.map(|(_, ino)| ino);
        let record = match records {
            Some(r) => r.get(name).filter(|r| Some(r.ino) == ino).cloned(),
            None => match (real.parent(), ino) {
                (Some(dir), Some(ino)) => records::global().get(dir, name, ino),
                _ => None,
            },
        };
        if let Some(r) = record {
            info.owner = r.owner;
            info.group = r.group;
            info.mode = r.mode;
        }
    }

    /// Gives a new entry (real path `target`) the ownership the core chose: recorded in a
    /// partner's tree, its mode set on disk in a home, nothing for anonymous.
    pub fn apply_new(&self, target: &Path, ownership: &Ownership) -> io::Result<()> {
        if self.recording {
            self.record(target, ownership)
        } else if self.modes_on_disk {
            fs::set_permissions(target, fs::Permissions::from_mode(ownership.mode & 0o7777))
        } else {
            Ok(())
        }
    }

    /// [`Owners::apply_new`] for a file just created in place; a file whose owner cannot be
    /// recorded is removed rather than left listed with the wrong owner.
    pub fn own_new_or_remove(
        &self,
        target: &Path,
        ownership: &Ownership,
    ) -> Result<(), StorageError> {
        self.apply_new(target, ownership).map_err(|e| {
            let _ = fs::remove_file(target);
            StorageError::Other(format!("cannot record the file's owner: {e}"))
        })
    }

    /// Records `ownership` for the entry at real path `target`.
    pub fn record(&self, target: &Path, ownership: &Ownership) -> io::Result<()> {
        let ino = fs::symlink_metadata(target)?.ino();
        let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
            return Ok(());
        };
        let name = name.to_string_lossy().into_owned();
        let record = Record {
            owner: ownership.owner.clone(),
            group: ownership.group.clone(),
            mode: ownership.mode & 0o7777,
            ino,
        };
        records::global().update(dir, |r| {
            r.insert(name, record);
        })
    }

    /// The file at real path `target` (inode `new_ino`) replaced the one of inode `old_ino`
    /// (an atomic upload): a record of the old file now belongs to the new one, so that the
    /// file keeps its owner, group and mode.
    pub fn follow_replaced(&self, target: &Path, old_ino: u64, new_ino: u64) -> io::Result<()> {
        let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
            return Ok(());
        };
        let name = name.to_string_lossy();
        records::global().update(dir, |r| {
            if let Some(rec) = r.get_mut(name.as_ref()) {
                if rec.ino == old_ino {
                    rec.ino = new_ino;
                }
            }
        })
    }

    /// Forgets the record of the entry at real path `target` (it is gone).
    pub fn unrecord(&self, target: &Path) {
        if !self.recording {
            return;
        }
        let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
            return;
        };
        let name = name.to_string_lossy();
        if let Err(e) = records::global().update(dir, |r| {
            r.remove(name.as_ref());
        }) {
            warn!(
                "{}: cannot update the ownership records: {e}",
                dir.join(SIDECAR).display()
            );
        }
    }

    /// The folder at real path `target` was removed: what is cached of its records is dropped
    /// and its own record forgotten.
    pub fn unrecord_dir(&self, target: &Path) {
        records::global().forget(target);
        self.unrecord(target);
    }

    /// Moves the record of `source` to `target` (after a rename).
    pub fn move_record(&self, source: &Path, target: &Path) {
        if !self.recording {
            return;
        }
        let (Some(sdir), Some(sname), Some(tdir), Some(tname)) = (
            source.parent(),
            source.file_name(),
            target.parent(),
            target.file_name(),
        ) else {
            return;
        };
        let (sname, tname) = (
            sname.to_string_lossy().into_owned(),
            tname.to_string_lossy().into_owned(),
        );
        let store = records::global();
        let r = if sdir == tdir {
            store.update(sdir, |r| match r.remove(&sname) {
                Some(rec) => {
                    r.insert(tname, rec);
                }
                None => {
                    r.remove(&tname);
                }
            })
        } else {
            store.update(sdir, |r| r.remove(&sname)).and_then(|rec| {
                store.update(tdir, |r| match rec {
                    Some(rec) => {
                        r.insert(tname, rec);
                    }
                    None => {
                        r.remove(&tname);
                    }
                })
            })
        };
        if let Err(e) = r {
            error!(
                "cannot move the ownership record of {} to {}: {e}",
                source.display(),
                target.display()
            );
        }
        store.forget(source);
    }

    /// Removes records of names that are gone or now belong to another inode; `seen` maps
    /// every name in the directory to its inode (`None` when unknown, e.g. a symlink).
    pub fn prune(&self, dir: &Path, records: &Records, seen: &HashMap<String, Option<u64>>) {
        let stale: Vec<String> = records
            .iter()
            .filter(|(name, r)| match seen.get(name.as_str()) {
                None => true,
                Some(Some(ino)) => *ino != r.ino,
                Some(None) => false,
            })
            .map(|(name, _)| name.clone())
            .collect();
        if stale.is_empty() {
            return;
        }
        if let Err(e) = records::global().update(dir, |r| {
            for name in &stale {
                r.remove(name);
            }
        }) {
            warn!(
                "{}: cannot prune stale ownership records: {e}",
                dir.join(SIDECAR).display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::testing::{assert_errors, names, own, partner_tree, upload, vp, TempDir};
    use crate::storage::{LocalFs, Storage};
    use wharf_core::StorageError::{InvalidName, NotFound};
    use wharf_core::StoreMode::{self, Create};

    #[test]
    fn partner_trees_report_owners_and_keep_records() {
        let (t, fs) = partner_tree("owners", false);
        let root = t.0.join("acme");
        let inbox = fs.stat(&vp("/Inbox")).unwrap();
        let outbox = fs.stat(&vp("/Outbox")).unwrap();
        assert_eq!(
            (inbox.owner.as_str(), inbox.group.as_str(), inbox.mode),
            ("root", "root", 0o755)
        );
        assert_eq!(outbox.mode, 0o777);
        // A file the back end drops: root/root with the file system's bits.
        fs::write(root.join("Inbox/order.csv"), b"o").unwrap();
        fs::set_permissions(
            root.join("Inbox/order.csv"),
            fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        let order = fs.stat(&vp("/Inbox/order.csv")).unwrap();
        assert_eq!(
            (order.owner.as_str(), order.group.as_str(), order.mode),
            ("root", "root", 0o640)
        );
        // What a user creates is theirs.
        fs.mkdir(&vp("/Outbox/2026"), Some(&own("alice", "acme", 0o750)))
            .unwrap();
        upload(
            &fs,
            "/Outbox/2026/inv.txt",
            StoreMode::Create,
            Some(own("alice", "acme", 0o444)),
            b"inv",
        );
        let dir = fs.stat(&vp("/Outbox/2026")).unwrap();
        assert_eq!(
            (dir.owner.as_str(), dir.group.as_str(), dir.mode),
            ("alice", "acme", 0o750)
        );
        let listed = fs.read_dir(&vp("/Outbox/2026")).unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!((listed[0].owner.as_str(), listed[0].mode), ("alice", 0o444));
        // The records are in a hidden sidecar that is never listed nor reachable.
        assert!(root.join("Outbox/2026/.wharf-meta.toml").is_file());
        assert_eq!(names(&fs, "/Outbox"), ["2026"]);
        assert_errors([
            (fs.stat(&vp("/Outbox/.wharf-meta.toml")).err(), NotFound),
            (
                fs.open_read(&vp("/Outbox/2026/.wharf-meta.toml"), 0).err(),
                NotFound,
            ),
            (
                fs.open_write(&vp("/Outbox/.WHARF-meta.toml"), Create).err(),
                InvalidName,
            ),
            (fs.mkdir(&vp("/Outbox/.wharf"), None).err(), InvalidName),
            (fs.delete(&vp("/Outbox/.wharf-meta.toml")).err(), NotFound),
        ]);
        // SITE CHMOD changes the recorded mode; fixed folders and the root keep theirs.
        fs.set_mode(&vp("/Outbox/2026/inv.txt"), 0o640).unwrap();
        assert_eq!(fs.stat(&vp("/Outbox/2026/inv.txt")).unwrap().mode, 0o640);
        assert_eq!(
            fs.set_mode(&vp("/Inbox"), 0o777),
            Err(StorageError::PermissionDenied)
        );
        // A restarted server (a new storage, a new cache) sees the same owners.
        records::global().forget(&root.join("Outbox/2026"));
        let again = LocalFs::new(&root)
            .unwrap()
            .with_owner("root", "root")
            .recording(true);
        let f = again.stat(&vp("/Outbox/2026/inv.txt")).unwrap();
        assert_eq!((f.owner.as_str(), f.mode), ("alice", 0o640));
        // A rename takes the record along; a delete drops it.
        fs.rename(&vp("/Outbox/2026/inv.txt"), &vp("/Outbox/inv-1.txt"))
            .unwrap();
        let moved = fs.stat(&vp("/Outbox/inv-1.txt")).unwrap();
        assert_eq!((moved.owner.as_str(), moved.mode), ("alice", 0o640));
        assert!(
            !fs::read_to_string(root.join("Outbox/2026/.wharf-meta.toml"))
                .unwrap_or_default()
                .contains("inv.txt")
        );
        // The folder now holds only the server's sidecar: it counts as empty.
        fs.rmdir(&vp("/Outbox/2026")).unwrap();
        assert!(!root.join("Outbox/2026").exists());
        fs.delete(&vp("/Outbox/inv-1.txt")).unwrap();
        assert!(!root.join("Outbox/.wharf-meta.toml").exists());
        // The back end replaces a file behind the server's back: the old record (another
        // inode) no longer applies.
        upload(
            &fs,
            "/Outbox/x.csv",
            StoreMode::Create,
            Some(own("alice", "acme", 0o444)),
            b"1",
        );
        fs::remove_file(root.join("Outbox/x.csv")).unwrap();
        fs::write(root.join("Outbox/keep"), b"k").unwrap();
        fs::write(root.join("Outbox/x.csv"), b"from the back end").unwrap();
        let x = fs.stat(&vp("/Outbox/x.csv")).unwrap();
        assert_eq!(x.owner, "root");
        // Fixed folders cannot go, whatever the core said.
        assert_eq!(fs.rmdir(&vp("/Inbox")), Err(StorageError::PermissionDenied));
        assert_eq!(
            fs.rename(&vp("/Outbox"), &vp("/Out")),
            Err(StorageError::PermissionDenied)
        );
    }

    #[test]
    fn homes_keep_modes_on_disk_and_write_no_sidecar() {
        let t = TempDir::new("home");
        let root = t.0.join("bob");
        fs::create_dir_all(&root).unwrap();
        let fs = LocalFs::new(&root)
            .unwrap()
            .with_owner("bob", "bob")
            .modes_on_disk(true)
            .atomic(true);
        fs.mkdir(&vp("/d"), Some(&own("bob", "bob", 0o750)))
            .unwrap();
        upload(
            &fs,
            "/d/f.txt",
            StoreMode::Create,
            Some(own("bob", "bob", 0o640)),
            b"f",
        );
        let mode = |p: &str| fs::metadata(root.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode("d"), mode("d/f.txt")), (0o750, 0o640));
        fs.set_mode(&vp("/d/f.txt"), 0o600).unwrap();
        assert_eq!(mode("d/f.txt"), 0o600);
        let f = fs.stat(&vp("/d/f.txt")).unwrap();
        assert_eq!(
            (f.owner.as_str(), f.group.as_str(), f.mode),
            ("bob", "bob", 0o600)
        );
        assert_eq!(
            fs.set_mode(&VirtualPath::root(), 0o000),
            Err(StorageError::PermissionDenied)
        );
        // Nothing but the user's own entries on disk.
        let mut all = Vec::new();
        for e in fs::read_dir(&root).unwrap() {
            let e = e.unwrap();
            all.push(e.file_name().into_string().unwrap());
            if e.file_type().unwrap().is_dir() {
                for f in fs::read_dir(e.path()).unwrap() {
                    all.push(format!(
                        "d/{}",
                        f.unwrap().file_name().into_string().unwrap()
                    ));
                }
            }
        }
        all.sort();
        assert_eq!(all, ["d", "d/f.txt"]);
        // A file replaced by an upload keeps its bits on disk; APPE keeps the old content.
        fs::set_permissions(root.join("d/f.txt"), fs::Permissions::from_mode(0o604)).unwrap();
        upload(&fs, "/d/f.txt", StoreMode::Create, None, b"new");
        upload(&fs, "/d/f.txt", StoreMode::Append, None, b"+more");
        assert_eq!(mode("d/f.txt"), 0o604);
        assert_eq!(fs::read(root.join("d/f.txt")).unwrap(), b"new+more");
    }
}
