//! Storage: what a session's file commands do to a file system, behind the [`Storage`] trait,
//! and [`LocalFs`], the implementation on the local file system confined to one user's root,
//! with the owner, group and mode of every entry (recorded beside the data where the file
//! system cannot hold them) and atomic uploads.
//!
//! Paths arrive as [`VirtualPath`]s, already normalised by the core (absolute, no `.` or `..`),
//! so they cannot name anything above the root by their spelling. What the core cannot see are
//! symbolic links: `LocalFs` checks every path again on the real file system.
//!
//! # Confinement rules of `LocalFs`
//! - The root is canonicalised once, when the `LocalFs` is made.
//! - A path that must exist (stat, list, read, delete, remove, rename source) is canonicalised
//!   (symlinks followed) and refused with `PermissionDenied` unless the result lies inside the
//!   root. A symlink that stays inside the root works as its target; one that leads out is
//!   refused. (How: one `lstat` per component below the root; when none is a symlink, the
//!   path as spelt is already canonical, so `realpath` — a `readlink` for every component
//!   from `/` down, on every command — is only needed when one is.)
//! - A path that is created (mkdir, upload, rename target) has its parent canonicalised and
//!   checked the same way, and is refused when the final component exists as a symlink (so an
//!   upload can never write through a link).
//! - Names starting with `.wharf` (any case) are the server's (ownership records, partial
//!   uploads): never listed, `NotFound` when looked up, `InvalidName` when created.
//! - Listings leave out entries that cannot be used: symlinks that lead out of the root or
//!   nowhere, and names that are not UTF-8 or contain CR or LF (they would break the listing
//!   formats).
//! - Known limit: the checks and the operation are separate system calls, so a local user who
//!   can change the tree at the same moment (replace a checked directory by a symlink) could
//!   race them. FTP users alone cannot create symlinks.
//!
//! # Owner, group and mode
//! Wharf does not map FTP users to system accounts, so the file system cannot say who owns an
//! entry. Each entry is reported with, in this order of precedence:
//! 1. a fixed folder of a partner: the owner, group and mode the store gives it;
//! 2. a record in the directory's sidecar (see [`records`]), written when an FTP user
//!    creates the entry (MKD, an upload of a new file) or changes its mode (SITE CHMOD), and
//!    kept in step by renames and deletes, so that it survives a restart;
//! 3. otherwise the tree's default owner and group ([`LocalFs::with_owner`]: `root`/`root` in
//!    a partner's tree, so that files the back end drops into Inbox are "other" to partner
//!    users; the user and their group in a personal home; `ftp`/`ftp` for anonymous) and the
//!    file system's own mode bits.
//!
//! Records are kept only in partners' trees, where entries belong to different users. In a
//! personal home every entry belongs to the user, so the file system can hold all there is:
//! the mode of a new entry and SITE CHMOD go to its own permission bits, and no sidecar is
//! written ([`LocalFs::modes_on_disk`]). Anonymous trees change nothing.
//!
//! # Uploads
//! The runtime calls [`Storage::begin_upload`] with the ownership the core gives a new file,
//! then the transfer opens the file ([`Storage::open_write`]), then the runtime calls
//! [`Storage::finish_upload`] with whether the transfer succeeded, before the final reply and
//! the "upload complete" event go out.
//!
//! With atomic uploads ([`LocalFs::atomic`], the `atomic_uploads` key, on by default) the
//! data goes to a hidden partial file (`.wharf-part.<random>`) in the target's directory;
//! only a successful upload is renamed over the final name (or, for STOU, hard-linked to a
//! name that must still be free), so nobody — a back end polling the folder included — ever
//! sees half a file under the final name. A failed or killed upload removes its partial file;
//! partial files left by a server that died are removed at the next start
//! ([`sweep_partials`]). APPE and REST+STOR copy the existing file to the partial file first
//! (copy-on-write; `copy_file_range` makes that a reflink where the file system can), so the
//! old content stays in place until the new one is complete. A replaced file keeps its
//! owner, group and mode. Without atomic uploads, files are written in place.
//!
//! # Errors
//! `io::ErrorKind` and Linux errno values map to [`StorageError`] in [`map_io_error`]
//! (`ENOSPC`/`EDQUOT` → `NoSpace`, `ENAMETOOLONG` → `InvalidName`, `EROFS` →
//! `PermissionDenied`, ...).
//!
//! Read handles are plain [`std::fs::File`]s so that a binary retrieve can go from the file to
//! the socket with `sendfile` (see the transfer code).

use log::{error, info, warn};
use parking_lot::Mutex;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use wharf_core::action::Ownership;
use wharf_core::codec::AsciiEncoder;
use wharf_core::{FileInfo, FileKind, StorageError, StoreMode, UnixTime, VirtualPath};

pub mod records;

use crate::transfer::sys;
use crate::users::{FixedFolder, Login, Partner, View};
use records::{Record, Records, PARTIAL_PREFIX};

/// The most names `STOU` tries before giving up: `name`, then `name.1` ... `name.16`
/// ([`UNIQUE_NUMBERED`]), then `name.` and 12 random hex digits.
pub const MAX_UNIQUE_TRIES: u32 = 1000;
/// How many numbered names `STOU` tries before random ones: numbers are what people expect
/// to see, but counting up past thousands of earlier uploads would cost a lookup each (and
/// used to end in a refusal after `name.999`).
pub const UNIQUE_NUMBERED: u32 = 16;
/// The most entries [`sweep_partials`] looks at in one tree.
pub const MAX_SWEEP_ENTRIES: usize = 200_000;
/// The size from which a file an atomic upload replaces is kept under a hidden name until
/// the upload's reply is sent ([`Storage::release_replaced`]): freeing a large file's blocks
/// takes a while (about 0.15 s a GiB on ext4), which the client need not wait for.
pub const RELEASE_LATER_MIN: u64 = 32 * 1024 * 1024;

/// A user's file system, as the session's commands see it. Every path is virtual (inside the
/// user's root); implementations keep every operation inside that root.
pub trait Storage: Send {
    /// Metadata of a path (following symlinks that stay inside the root).
    fn stat(&self, path: &VirtualPath) -> Result<FileInfo, StorageError>;
    /// The usable entries of a directory, without `.` and `..`.
    fn read_dir(&self, path: &VirtualPath) -> Result<Vec<FileInfo>, StorageError>;
    /// Creates a directory whose parent exists, recording `ownership` when given.
    fn mkdir(&self, path: &VirtualPath, ownership: Option<&Ownership>) -> Result<(), StorageError>;
    /// Removes an empty directory.
    fn rmdir(&self, path: &VirtualPath) -> Result<(), StorageError>;
    /// Deletes a file.
    fn delete(&self, path: &VirtualPath) -> Result<(), StorageError>;
    /// Renames a file or directory; an existing file at `to` is replaced.
    fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError>;
    /// Changes the permission bits recorded for an entry (SITE CHMOD).
    fn set_mode(&self, _path: &VirtualPath, _mode: u32) -> Result<(), StorageError> {
        Err(StorageError::Other(
            "this storage cannot record permission bits".into(),
        ))
    }
    /// Sets a file's modification time (MFMT).
    fn set_modified(&self, _path: &VirtualPath, _time: UnixTime) -> Result<(), StorageError> {
        Err(StorageError::Other(
            "this storage cannot set modification times".into(),
        ))
    }
    /// Opens a regular file for reading, positioned at `offset`; also returns its size.
    fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<(File, u64), StorageError>;
    /// The next upload is about to start; `ownership` is what a new file gets.
    fn begin_upload(&self, _ownership: Option<Ownership>) {}
    /// Opens a file for an upload as `mode` says, positioned where the upload writes; also
    /// returns the path actually opened (differs from `path` only for [`StoreMode::Unique`]).
    fn open_write(
        &self,
        path: &VirtualPath,
        mode: StoreMode,
    ) -> Result<(File, VirtualPath), StorageError>;
    /// Whether [`Storage::open_write`] leaves an existing file as it is until
    /// [`Storage::finish_upload`] puts the new one in place (atomic uploads): then a STOR
    /// may open its file before it knows the transfer will happen.
    fn keeps_old_until_finished(&self) -> bool {
        false
    }
    /// The upload begun last has ended: `ok` when all of it arrived. Puts the file in place
    /// (atomic uploads) or removes what arrived; an error means the file is not in place.
    fn finish_upload(&self, _ok: bool) -> Result<(), StorageError> {
        Ok(())
    }
    /// After the reply to an upload: frees what the upload replaced, if
    /// [`Storage::finish_upload`] left that for later.
    fn release_replaced(&self) {}
    /// The size of a file as TYPE A sends it (every bare LF counted as CRLF).
    fn ascii_size(&self, path: &VirtualPath) -> Result<u64, StorageError> {
        let (mut file, _) = self.open_read(path, 0)?;
        let mut enc = AsciiEncoder::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            match file.read(&mut buf) {
                Ok(0) => return Ok(total),
                Ok(n) => total += enc.encoded_len(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(map_io_error(&e)),
            }
        }
    }
}

/// An upload under way.
#[derive(Debug)]
struct PendingUpload {
    /// The file written (a hidden partial file with atomic uploads, else the target).
    written: PathBuf,
    /// Where the file goes.
    target: PathBuf,
    /// Whether `written` is a partial file to put in place.
    atomic: bool,
    /// The name must still be free when the file is put in place (STOU).
    unique: bool,
    /// The file replaced, if one existed when the upload began.
    old: Option<OldFile>,
    /// Owner, group and mode of a new file.
    ownership: Option<Ownership>,
    /// The new file's mode is on disk already (set through the descriptor at open).
    mode_set: bool,
}

/// What an upload replaces: its inode (an ownership record follows the name to the new
/// inode) and its size (a large one is freed after the reply, [`RELEASE_LATER_MIN`]).
#[derive(Debug, Clone, Copy)]
struct OldFile {
    ino: u64,
    len: u64,
}

impl PendingUpload {
    /// A STOU upload: a new name, nothing replaced.
    fn unique(
        written: PathBuf,
        target: PathBuf,
        atomic: bool,
        ownership: Option<Ownership>,
    ) -> Self {
        PendingUpload {
            written,
            target,
            atomic,
            unique: true,
            old: None,
            ownership,
            mode_set: false,
        }
    }
}

#[derive(Debug, Default)]
struct UploadState {
    ownership: Option<Ownership>,
    pending: Option<PendingUpload>,
    /// A hidden name of the large file the last upload replaced, removed after its reply.
    replaced: Option<PathBuf>,
}

/// The local file system below one directory (the user's root).
///
/// Entries are reported with an owner, group and mode as the module documentation says;
/// [`LocalFs::new`] makes a tree whose entries belong to `ftp`/`ftp` and that records
/// nothing (as for anonymous users).
#[derive(Debug)]
pub struct LocalFs {
    root: PathBuf,
    owner: String,
    group: String,
    records: bool,
    modes_on_disk: bool,
    fixed: Vec<FixedFolder>,
    atomic: bool,
    upload: Mutex<UploadState>,
}

impl LocalFs {
    /// Storage confined to `root`, which must exist and be a directory.
    pub fn new(root: &Path) -> io::Result<LocalFs> {
        let root = fs::canonicalize(root)?;
        if !fs::metadata(&root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(LocalFs {
            root,
            owner: "ftp".into(),
            group: "ftp".into(),
            records: false,
            modes_on_disk: false,
            fixed: Vec::new(),
            atomic: false,
            upload: Mutex::new(UploadState::default()),
        })
    }

    /// The storage a login sees: a partner's tree (its folders made if missing), a home, or
    /// the anonymous root. `atomic` turns atomic uploads on.
    pub fn for_login(login: &Login, atomic: bool) -> io::Result<LocalFs> {
        match &login.view {
            View::Anonymous => LocalFs::new(&login.home),
            View::Home => {
                let a = &login.account;
                Ok(LocalFs::new(&login.home)?
                    .with_owner(&a.user, a.group())
                    .modes_on_disk(true)
                    .atomic(atomic))
            }
            View::Partner(folders) => {
                make_tree(&login.home, folders)?;
                let mut fs = LocalFs::new(&login.home)?
                    .with_owner("root", "root")
                    .recording(true)
                    .atomic(atomic);
                fs.fixed = folders.clone();
                Ok(fs)
            }
        }
    }

    /// The same storage, reporting entries without a record as owned by `owner` and `group`.
    pub fn with_owner(mut self, owner: &str, group: &str) -> LocalFs {
        self.owner = owner.to_owned();
        self.group = group.to_owned();
        self
    }

    /// The same storage, recording owners and modes in sidecars (or not).
    pub fn recording(mut self, on: bool) -> LocalFs {
        self.records = on;
        self
    }

    /// The same storage, keeping the modes of new entries and SITE CHMOD in the file
    /// system's own permission bits (a personal home, where every entry is the user's and no
    /// owner needs recording).
    pub fn modes_on_disk(mut self, on: bool) -> LocalFs {
        self.modes_on_disk = on;
        self
    }

    /// The same storage with atomic uploads on or off.
    pub fn atomic(mut self, on: bool) -> LocalFs {
        self.atomic = on;
        self
    }

    /// The same storage with these fixed folders (their owner, group and mode as given).
    pub fn with_fixed(mut self, folders: Vec<FixedFolder>) -> LocalFs {
        self.fixed = folders;
        self
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path below the root that `path` names, without any check.
    fn lexical(&self, path: &VirtualPath) -> PathBuf {
        let mut p = self.root.clone();
        for c in path.components() {
            p.push(c);
        }
        p
    }

    fn inside(&self, p: &Path) -> bool {
        p.starts_with(&self.root)
    }

    /// The real path of an entry that must exist: symlinks followed, checked to be inside.
    fn existing(&self, path: &VirtualPath) -> Result<PathBuf, StorageError> {
        self.existing_meta(path).map(|(real, _)| real)
    }

    /// [`LocalFs::existing`] with the entry's metadata (symlinks followed).
    ///
    /// The common case costs one `lstat` per component below the root and nothing else: the
    /// root is canonical and a virtual path has no `.` or `..`, so when no component below
    /// the root is a symlink the path as spelt is the real one (`realpath` would `readlink`
    /// every component from `/` down, the root's included, on every call). A symlink on the
    /// way sends the path through `fs::canonicalize` and the inside-the-root check.
    fn existing_meta(&self, path: &VirtualPath) -> Result<(PathBuf, fs::Metadata), StorageError> {
        if is_reserved_path(path) {
            return Err(StorageError::NotFound);
        }
        let mut real = self.root.clone();
        let mut last = None;
        for c in path.components() {
            real.push(c);
            let found = match fs::symlink_metadata(&real) {
                Err(e) if e.kind() == io::ErrorKind::NotFound && c.contains(LOSSY) => {
                    real.pop();
                    match undecodable_entry(&real, c) {
                        Some(p) => {
                            real = p;
                            fs::symlink_metadata(&real)
                        }
                        None => Err(e),
                    }
                }
                other => other,
            };
            match found {
                Ok(m) if m.file_type().is_symlink() => return self.existing_through_links(path),
                Ok(m) => last = Some(m),
                Err(e) => return Err(map_io_error(&e)),
            }
        }
        let meta = match last {
            Some(m) => m,
            None => fs::metadata(&real).map_err(|e| map_io_error(&e))?,
        };
        Ok((real, meta))
    }

    /// A path with a symlink on the way: canonicalised, checked to be inside the root.
    fn existing_through_links(
        &self,
        path: &VirtualPath,
    ) -> Result<(PathBuf, fs::Metadata), StorageError> {
        let real = fs::canonicalize(self.lexical(path)).map_err(|e| map_io_error(&e))?;
        if !self.inside(&real) {
            return Err(StorageError::PermissionDenied);
        }
        let meta = fs::metadata(&real).map_err(|e| map_io_error(&e))?;
        Ok((real, meta))
    }

    /// The real path of an entry to create (or replace): the parent canonicalised and checked,
    /// the final component refused when it is a symlink or a reserved name.
    fn creatable(&self, path: &VirtualPath) -> Result<PathBuf, StorageError> {
        self.creatable_with(path).map(|(target, _)| target)
    }

    /// [`LocalFs::creatable`], with what `lstat` says of the target (it may not exist).
    fn creatable_with(
        &self,
        path: &VirtualPath,
    ) -> Result<(PathBuf, io::Result<fs::Metadata>), StorageError> {
        if path.is_root() {
            return Err(StorageError::PermissionDenied);
        }
        if is_reserved_path(path) {
            return Err(StorageError::InvalidName);
        }
        let (parent, meta) = self.existing_meta(&path.parent())?;
        if !meta.is_dir() {
            return Err(StorageError::NotADirectory);
        }
        let target = parent.join(path.file_name());
        match fs::symlink_metadata(&target) {
            Ok(m) if m.file_type().is_symlink() => Err(StorageError::PermissionDenied),
            other => Ok((target, other)),
        }
    }

    /// The real path of an entry acted on itself (delete, rmdir, rename source): the parent
    /// checked; a symlink as final component is acted on only when its target is inside.
    fn removable(&self, path: &VirtualPath) -> Result<PathBuf, StorageError> {
        if path.is_root() {
            return Err(StorageError::PermissionDenied);
        }
        if is_reserved_path(path) {
            return Err(StorageError::NotFound);
        }
        let parent = self.existing(&path.parent())?;
        let target = entry_of(&parent, path.file_name());
        let meta = fs::symlink_metadata(&target).map_err(|e| map_io_error(&e))?;
        if meta.file_type().is_symlink() {
            // Refuse links that lead out (or nowhere), as for every other operation.
            self.existing(path)?;
        }
        Ok(target)
    }

    fn fixed_folder(&self, path: &VirtualPath) -> Option<&FixedFolder> {
        self.fixed.iter().find(|f| &f.path == path)
    }

    /// Sets owner, group and mode of `info` (the entry at `path`, real path `real`) as the
    /// module documentation says; `records` are those of the real directory holding it.
    fn decorate(
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
        if !self.records || path.is_root() {
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
    fn apply_new(&self, target: &Path, ownership: &Ownership) -> io::Result<()> {
        if self.records {
            self.record(target, ownership)
        } else if self.modes_on_disk {
            fs::set_permissions(target, fs::Permissions::from_mode(ownership.mode & 0o7777))
        } else {
            Ok(())
        }
    }

    /// [`LocalFs::apply_new`] for a file just created in place; a file whose owner cannot be
    /// recorded is removed rather than left listed with the wrong owner.
    fn own_new_or_remove(&self, target: &Path, ownership: &Ownership) -> Result<(), StorageError> {
        self.apply_new(target, ownership).map_err(|e| {
            let _ = fs::remove_file(target);
            StorageError::Other(format!("cannot record the file's owner: {e}"))
        })
    }

    /// Records `ownership` for the entry at real path `target`.
    fn record(&self, target: &Path, ownership: &Ownership) -> io::Result<()> {
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

    /// Forgets the record of the entry at real path `target` (it is gone).
    fn unrecord(&self, target: &Path) {
        if !self.records {
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
                dir.join(records::SIDECAR).display()
            );
        }
    }

    /// Moves the record of `source` to `target` (after a rename).
    fn move_record(&self, source: &Path, target: &Path) {
        if !self.records {
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
    fn prune(
        &self,
        dir: &Path,
        records: &Records,
        seen: &std::collections::HashMap<String, Option<u64>>,
    ) {
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
                dir.join(records::SIDECAR).display()
            );
        }
    }
}

impl Drop for LocalFs {
    fn drop(&mut self) {
        // An upload that never finished (the session died mid-transfer): no partial file
        // stays behind.
        let u = self.upload.get_mut();
        if let Some(p) = u.pending.take() {
            if p.atomic {
                let _ = fs::remove_file(&p.written);
            }
        }
        if let Some(old) = u.replaced.take() {
            let _ = fs::remove_file(old);
        }
    }
}

/// Whether any component of `path` is a name reserved for the server.
fn is_reserved_path(path: &VirtualPath) -> bool {
    path.components().any(records::is_reserved)
}

/// Makes a partner's root and its fixed folders where missing.
pub fn make_tree(root: &Path, folders: &[FixedFolder]) -> io::Result<()> {
    fs::create_dir_all(root)?;
    for f in folders {
        let mut p = root.to_path_buf();
        for c in f.path.components() {
            p.push(c);
        }
        fs::create_dir_all(&p)?;
    }
    Ok(())
}

/// Makes every partner's root and fixed folders where missing; returns the problems.
pub fn make_partner_trees<'a>(partners: impl IntoIterator<Item = &'a Partner>) -> Vec<String> {
    partners
        .into_iter()
        .filter_map(|p| {
            make_tree(&p.root, &p.folders).err().map(|e| {
                format!(
                    "partner '{}': cannot create its folders under {}: {e}",
                    p.name,
                    p.root.display()
                )
            })
        })
        .collect()
}

/// Removes the partial files of atomic uploads (and temporary record files) a server that
/// stopped mid-upload left under `root`; returns how many. Does not follow symlinks; looks
/// at no more than [`MAX_SWEEP_ENTRIES`] entries.
pub fn sweep_partials(root: &Path) -> usize {
    let mut removed = 0;
    let mut seen = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for entry in rd.flatten() {
            seen += 1;
            if seen > MAX_SWEEP_ENTRIES {
                warn!(
                    "{}: stopped looking for leftover partial uploads after {MAX_SWEEP_ENTRIES} entries",
                    root.display()
                );
                return removed;
            }
            let Ok(ft) = entry.file_type() else { continue };
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file()
                && (name.starts_with(PARTIAL_PREFIX)
                    || name.starts_with(&format!("{}.tmp.", records::SIDECAR)))
                && fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    if removed > 0 {
        info!(
            "{}: removed {removed} partial upload(s) left by an earlier run",
            root.display()
        );
    }
    removed
}

/// The current wall-clock time as the core wants it.
pub fn unix_now() -> UnixTime {
    unix_time(SystemTime::now())
}

fn unix_time(t: SystemTime) -> UnixTime {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => UnixTime(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        Err(e) => UnixTime(-i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX)),
    }
}

/// The [`FileInfo`] of an entry named `name` with metadata `meta` (symlinks already followed).
pub fn file_info(name: &str, meta: &fs::Metadata) -> FileInfo {
    let ft = meta.file_type();
    let kind = if ft.is_file() {
        FileKind::File
    } else if ft.is_dir() {
        FileKind::Dir
    } else if ft.is_symlink() {
        FileKind::Symlink
    } else {
        FileKind::Other
    };
    let mut info = FileInfo::new(name, kind);
    info.size = meta.len();
    info.modified = meta
        .modified()
        .map(unix_time)
        .unwrap_or(UnixTime(meta.mtime()));
    info.mode = meta.permissions().mode() & 0o7777;
    info.nlink = meta.nlink();
    info.unique = Some((meta.dev(), meta.ino()));
    info
}

/// What a listing shows for each byte of a name that is not UTF-8 (see [`undecodable_entry`]).
const LOSSY: char = char::REPLACEMENT_CHARACTER;

/// Most entries of one folder looked through for a name that is not UTF-8.
const MAX_UNDECODABLE_SCAN: usize = 100_000;

/// The entry of folder `dir` that a name from a listing stands for: the name itself, or the
/// one entry whose name is not UTF-8 and is listed as `name` (see [`undecodable_entry`]).
fn entry_of(dir: &Path, name: &str) -> PathBuf {
    let plain = dir.join(name);
    if !name.contains(LOSSY) || fs::symlink_metadata(&plain).is_ok() {
        return plain;
    }
    undecodable_entry(dir, name).unwrap_or(plain)
}

/// Names on disk that are not UTF-8 (written there by something other than Wharf) are listed
/// with U+FFFD in place of each byte that is not, so that a client sees them (and why a folder
/// is not empty). Such a listed name leads back to its entry when exactly one entry of `dir`
/// lists as `name`: it can then be fetched, deleted or renamed to a proper name. `None` when
/// no entry or more than one does.
fn undecodable_entry(dir: &Path, name: &str) -> Option<PathBuf> {
    let mut found = None;
    for entry in fs::read_dir(dir).ok()?.take(MAX_UNDECODABLE_SCAN) {
        let Ok(entry) = entry else { continue };
        let os = entry.file_name();
        if os.to_str().is_none() && os.to_string_lossy() == name {
            if found.is_some() {
                return None;
            }
            found = Some(dir.join(os));
        }
    }
    found
}

fn name_usable(name: &str) -> bool {
    !name.contains(['\r', '\n']) && !records::is_reserved(name)
}

impl Storage for LocalFs {
    fn keeps_old_until_finished(&self) -> bool {
        self.atomic
    }

    fn stat(&self, path: &VirtualPath) -> Result<FileInfo, StorageError> {
        let (real, meta) = self.existing_meta(path)?;
        let name = if path.is_root() {
            "/"
        } else {
            path.file_name()
        };
        let mut info = file_info(name, &meta);
        self.decorate(&mut info, path, &real, None);
        Ok(info)
    }

    fn read_dir(&self, path: &VirtualPath) -> Result<Vec<FileInfo>, StorageError> {
        let real = self.existing(path)?;
        let dir = fs::read_dir(&real).map_err(|e| map_io_error(&e))?;
        let records = self.records.then(|| records::global().records(&real));
        let mut seen = std::collections::HashMap::new();
        let mut out = Vec::new();
        for entry in dir {
            let Ok(entry) = entry else { continue };
            // A name that is not UTF-8 is listed with U+FFFD (see `undecodable_entry`).
            let name = match entry.file_name().into_string() {
                Ok(name) => name,
                Err(os) => {
                    log::debug!(
                        "{}: a name that is not UTF-8 is listed as {:?}",
                        real.display(),
                        os.to_string_lossy()
                    );
                    os.to_string_lossy().into_owned()
                }
            };
            let Ok(ft) = entry.file_type() else { continue };
            if !name_usable(&name) {
                seen.insert(name, None);
                continue;
            }
            let meta = if ft.is_symlink() {
                seen.insert(name.clone(), None);
                // Shown as what it points to, and only if that is inside the root.
                match fs::canonicalize(entry.path()) {
                    Ok(target) if self.inside(&target) => match fs::metadata(&target) {
                        Ok(m) => m,
                        Err(_) => continue,
                    },
                    _ => continue,
                }
            } else {
                match entry.metadata() {
                    Ok(m) => {
                        seen.insert(name.clone(), Some(m.ino()));
                        m
                    }
                    Err(_) => {
                        seen.insert(name.clone(), None);
                        continue;
                    }
                }
            };
            let mut info = file_info(&name, &meta);
            let vpath = path.join(&name);
            self.decorate(&mut info, &vpath, &real.join(&name), records.as_deref());
            out.push(info);
        }
        if let Some(records) = &records {
            self.prune(&real, records, &seen);
        }
        Ok(out)
    }

    fn mkdir(&self, path: &VirtualPath, ownership: Option<&Ownership>) -> Result<(), StorageError> {
        let target = self.creatable(path)?;
        fs::create_dir(&target).map_err(|e| map_io_error(&e))?;
        if let Some(o) = ownership {
            if let Err(e) = self.apply_new(&target, o) {
                error!(
                    "{}: cannot record the owner of a new folder: {e}; folder removed",
                    target.display()
                );
                let _ = fs::remove_dir(&target);
                return Err(StorageError::Other(format!(
                    "cannot record the folder's owner: {e}"
                )));
            }
        }
        Ok(())
    }

    fn rmdir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        if self.fixed.iter().any(|f| f.path.starts_with(path)) {
            return Err(StorageError::PermissionDenied);
        }
        let target = self.removable(path)?;
        let meta = fs::symlink_metadata(&target).map_err(|e| map_io_error(&e))?;
        if !meta.is_dir() {
            return Err(StorageError::NotADirectory);
        }
        // The server's own files (records, partial uploads) do not make a folder non-empty.
        let mut ours = Vec::new();
        for entry in fs::read_dir(&target).map_err(|e| map_io_error(&e))? {
            let entry = entry.map_err(|e| map_io_error(&e))?;
            let name = entry.file_name();
            if !records::is_reserved(&name.to_string_lossy()) {
                return Err(StorageError::DirectoryNotEmpty);
            }
            ours.push(entry.path());
        }
        for p in ours {
            let _ = fs::remove_file(&p);
        }
        fs::remove_dir(&target).map_err(|e| map_io_error(&e))?;
        records::global().forget(&target);
        self.unrecord(&target);
        Ok(())
    }

    fn delete(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let target = self.removable(path)?;
        let meta = fs::symlink_metadata(&target).map_err(|e| map_io_error(&e))?;
        if meta.is_dir() {
            return Err(StorageError::IsADirectory);
        }
        fs::remove_file(&target).map_err(|e| map_io_error(&e))?;
        self.unrecord(&target);
        Ok(())
    }

    fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        if self
            .fixed
            .iter()
            .any(|f| f.path.starts_with(from) || f.path.starts_with(to))
        {
            return Err(StorageError::PermissionDenied);
        }
        let source = self.removable(from)?;
        let target = self.creatable(to)?;
        fs::rename(&source, &target).map_err(|e| map_io_error(&e))?;
        self.move_record(&source, &target);
        Ok(())
    }

    fn set_mode(&self, path: &VirtualPath, mode: u32) -> Result<(), StorageError> {
        if !(self.records || self.modes_on_disk)
            || path.is_root()
            || self.fixed_folder(path).is_some()
        {
            return Err(StorageError::PermissionDenied);
        }
        if self.modes_on_disk {
            let real = self.existing(path)?;
            return fs::set_permissions(&real, fs::Permissions::from_mode(mode & 0o777))
                .map_err(|e| map_io_error(&e));
        }
        let info = self.stat(path)?;
        let real = self.existing(path)?;
        let ownership = Ownership {
            owner: info.owner,
            group: info.group,
            mode: mode & 0o777,
        };
        self.record(&real, &ownership)
            .map_err(|e| StorageError::Other(format!("cannot record the mode: {e}")))
    }

    fn set_modified(&self, path: &VirtualPath, time: UnixTime) -> Result<(), StorageError> {
        let real = self.existing(path)?;
        // Through a descriptor opened for reading: utimensat on it needs ownership (the
        // server's), not write permission, which an uploaded r--r--r-- file lacks on disk.
        let file = File::open(&real).map_err(|e| map_io_error(&e))?;
        let meta = file.metadata().map_err(|e| map_io_error(&e))?;
        if !meta.is_file() {
            return Err(StorageError::IsADirectory);
        }
        let when = if time.0 >= 0 {
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(time.0.unsigned_abs())
        } else {
            std::time::UNIX_EPOCH - std::time::Duration::from_secs(time.0.unsigned_abs())
        };
        file.set_modified(when).map_err(|e| map_io_error(&e))
    }

    fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<(File, u64), StorageError> {
        let real = self.existing(path)?;
        let mut file = File::open(&real).map_err(|e| map_io_error(&e))?;
        let meta = file.metadata().map_err(|e| map_io_error(&e))?;
        if meta.is_dir() {
            return Err(StorageError::IsADirectory);
        }
        if !meta.is_file() {
            return Err(StorageError::PermissionDenied);
        }
        if offset > 0 {
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| map_io_error(&e))?;
        }
        Ok((file, meta.len()))
    }

    fn begin_upload(&self, ownership: Option<Ownership>) {
        let mut u = self.upload.lock();
        if let Some(p) = u.pending.take() {
            // Not finished: never put in place.
            if p.atomic {
                let _ = fs::remove_file(&p.written);
            }
        }
        u.ownership = ownership;
    }

    fn open_write(
        &self,
        path: &VirtualPath,
        mode: StoreMode,
    ) -> Result<(File, VirtualPath), StorageError> {
        let ownership = self.upload.lock().ownership.take();
        if mode == StoreMode::Unique {
            return self.open_unique(path, ownership);
        }
        let (target, lstat) = self.creatable_with(path)?;
        let old = match lstat {
            Ok(m) if m.is_file() => Some(m),
            Ok(m) if m.is_dir() => return Err(StorageError::IsADirectory),
            Ok(_) => return Err(StorageError::PermissionDenied),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(map_io_error(&e)),
        };
        if let StoreMode::Resume(offset) = mode {
            match &old {
                None => return Err(StorageError::NotFound),
                Some(m) if offset > m.len() => {
                    return Err(StorageError::Other(format!(
                        "restart offset {offset} is beyond the end of the file ({} bytes)",
                        m.len()
                    )))
                }
                Some(_) => {}
            }
        }
        let mut mode_set = false;
        let (written, opened) = if self.atomic {
            let dir = target.parent().unwrap_or(&self.root);
            let partial = dir.join(format!("{PARTIAL_PREFIX}{}", records::unique_suffix()));
            let opened =
                if old.is_some() && matches!(mode, StoreMode::Append | StoreMode::Resume(_)) {
                    // Copy-on-write: the old content stays under the final name until the new
                    // one is complete. Nobody else writes the partial file, so APPE opens it at
                    // its end without O_APPEND (which splice(2) refuses).
                    fs::copy(&target, &partial)
                        .map_err(|e| map_io_error(&e))
                        .and_then(|copied| match mode {
                            StoreMode::Append => open_for(&partial, StoreMode::Resume(copied)),
                            other => open_for(&partial, other),
                        })
                } else {
                    // A new partial file, opened once; its mode set through the descriptor.
                    let created = OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&partial)
                        .map_err(|e| map_io_error(&e));
                    created.inspect(|f| {
                        let bits = match (&old, &ownership) {
                            // The file that replaces it keeps its permission bits on disk.
                            (Some(m), _) => Some(m.permissions()),
                            // A new file in a home: the mode the core chose, on disk.
                            (None, Some(o)) if self.modes_on_disk && !self.records => {
                                mode_set = true;
                                Some(fs::Permissions::from_mode(o.mode & 0o7777))
                            }
                            _ => None,
                        };
                        if let Some(bits) = bits {
                            if let Err(e) = f.set_permissions(bits) {
                                mode_set = false;
                                warn!("{}: cannot set the mode: {e}", partial.display());
                            }
                        }
                    })
                };
            (partial, opened)
        } else {
            let opened = open_for(&target, mode);
            (target.clone(), opened)
        };
        let file = match opened {
            Ok(f) => f,
            Err(e) => {
                if self.atomic {
                    let _ = fs::remove_file(&written);
                }
                return Err(e);
            }
        };
        if !self.atomic && old.is_none() {
            if let Some(o) = &ownership {
                self.own_new_or_remove(&target, o)?;
            }
        }
        self.upload.lock().pending = Some(PendingUpload {
            written,
            target,
            atomic: self.atomic,
            unique: false,
            old: old.as_ref().map(|m| OldFile {
                ino: m.ino(),
                len: m.len(),
            }),
            ownership,
            mode_set,
        });
        Ok((file, path.clone()))
    }

    fn release_replaced(&self) {
        let old = self.upload.lock().replaced.take();
        if let Some(old) = old {
            if let Err(e) = fs::remove_file(&old) {
                warn!("cannot remove {}: {e}", old.display());
            }
        }
    }

    fn finish_upload(&self, ok: bool) -> Result<(), StorageError> {
        let pending = {
            let mut u = self.upload.lock();
            u.ownership = None;
            u.pending.take()
        };
        let Some(p) = pending else {
            return Ok(());
        };
        if !p.atomic {
            return Ok(());
        }
        if !ok {
            let _ = fs::remove_file(&p.written);
            return Ok(());
        }
        let placed = if p.unique {
            // The name was free when the upload started; it must still be.
            fs::hard_link(&p.written, &p.target).and_then(|()| fs::remove_file(&p.written))
        } else {
            self.put_in_place(&p)
        };
        if let Err(e) = placed {
            let _ = fs::remove_file(&p.written);
            error!(
                "cannot put an upload in place at {}: {e}",
                p.target.display()
            );
            return Err(map_io_error(&e));
        }
        let r = match (p.old.map(|o| o.ino), &p.ownership) {
            // A new file: its owner is the uploader (its mode may be on disk already).
            (None, Some(o)) if !p.mode_set => self.apply_new(&p.target, o),
            // A replaced file keeps its record, which now belongs to the new inode.
            (Some(old), _) if self.records => match (p.target.parent(), p.target.file_name()) {
                (Some(dir), Some(name)) => {
                    let name = name.to_string_lossy();
                    let ino = fs::symlink_metadata(&p.target)
                        .map_err(|e| map_io_error(&e))?
                        .ino();
                    records::global().update(dir, |r| {
                        if let Some(rec) = r.get_mut(name.as_ref()) {
                            if rec.ino == old {
                                rec.ino = ino;
                            }
                        }
                    })
                }
                _ => Ok(()),
            },
            _ => Ok(()),
        };
        if let Err(e) = r {
            // The file is complete and in place; only its listed owner falls back to the
            // default. Worth an error in the log, not a failed upload.
            error!(
                "{}: cannot record the owner of an upload: {e}",
                p.target.display()
            );
        }
        Ok(())
    }
}

/// Opens `path` (already created where needed) for an upload in `mode`.
fn open_for(path: &Path, mode: StoreMode) -> Result<File, StorageError> {
    let mut opts = OpenOptions::new();
    match mode {
        StoreMode::Create | StoreMode::Unique => {
            opts.write(true).create(true).truncate(true);
        }
        StoreMode::Append => {
            opts.append(true).create(true);
        }
        StoreMode::Resume(_) => {
            opts.write(true);
        }
    }
    let mut file = opts.open(path).map_err(|e| map_io_error(&e))?;
    let meta = file.metadata().map_err(|e| map_io_error(&e))?;
    if !meta.is_file() {
        return Err(StorageError::PermissionDenied);
    }
    if let StoreMode::Resume(offset) = mode {
        if offset > meta.len() {
            return Err(StorageError::Other(format!(
                "restart offset {offset} is beyond the end of the file ({} bytes)",
                meta.len()
            )));
        }
        file.set_len(offset).map_err(|e| map_io_error(&e))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| map_io_error(&e))?;
    }
    Ok(file)
}

impl LocalFs {
    /// Puts a finished partial file at its final name (atomic uploads, not STOU).
    ///
    /// A file it replaces is swapped out in one step (`renameat2(RENAME_EXCHANGE)`), then
    /// removed under the partial file's name: at once, or after the reply when it is large
    /// ([`RELEASE_LATER_MIN`]). Readers of the final name see the old file or the new one,
    /// never neither, as with `rename(2)`. Why not `rename(2)`: on ext4 a rename that replaces
    /// a file first starts writing the new one out (`auto_da_alloc`), about 0.1 ms of CPU per
    /// file here and most of the cost of storing small files, where the swap leaves write-back
    /// to the kernel's usual schedule. Where the swap is not available (another kernel or
    /// file system) or the old file is gone, a plain rename does it.
    fn put_in_place(&self, p: &PendingUpload) -> io::Result<()> {
        if p.old.is_some() {
            match sys::exchange(&p.written, &p.target) {
                Ok(()) => return self.remove_swapped_out(p),
                Err(e) if e.kind() == io::ErrorKind::NotFound || sys::unsupported(&e) => {}
                Err(e) => return Err(e),
            }
        }
        fs::rename(&p.written, &p.target)
    }

    /// After [`LocalFs::put_in_place`] swapped names, removes what was at the final name, now
    /// under the partial file's name. If a directory took the final name while the upload
    /// ran, the swap is undone and the upload fails as `rename(2)` would have.
    fn remove_swapped_out(&self, p: &PendingUpload) -> io::Result<()> {
        let large = p.old.is_some_and(|o| o.len >= RELEASE_LATER_MIN);
        let removed = if large {
            match fs::symlink_metadata(&p.written) {
                Ok(m) if m.is_dir() => Err(io::Error::from(io::ErrorKind::IsADirectory)),
                _ => {
                    // Freed after the reply (a leftover is swept at the next start).
                    self.upload.lock().replaced = Some(p.written.clone());
                    return Ok(());
                }
            }
        } else {
            fs::remove_file(&p.written)
        };
        match removed {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::IsADirectory => {
                sys::exchange(&p.written, &p.target)?;
                Err(e)
            }
            Err(e) => {
                // The new file is in place; the old one stays under a partial-file name,
                // which the next start sweeps.
                warn!("cannot remove {}: {e}", p.written.display());
                Ok(())
            }
        }
    }

    fn open_unique(
        &self,
        path: &VirtualPath,
        ownership: Option<Ownership>,
    ) -> Result<(File, VirtualPath), StorageError> {
        let parent = path.parent();
        let base = path.file_name();
        for i in 0..MAX_UNIQUE_TRIES {
            let candidate = match i {
                0 => path.clone(),
                1..=UNIQUE_NUMBERED => parent.join(&format!("{base}.{i}")),
                _ => parent.join(&format!(
                    "{base}.{:012x}",
                    crate::rng::fast_u64() & 0xffff_ffff_ffff
                )),
            };
            let target = self.creatable(&candidate)?;
            if self.atomic {
                match fs::symlink_metadata(&target) {
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(map_io_error(&e)),
                }
                let dir = target.parent().unwrap_or(&self.root);
                let partial = dir.join(format!("{PARTIAL_PREFIX}{}", records::unique_suffix()));
                let f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&partial)
                    .map_err(|e| map_io_error(&e))?;
                self.upload.lock().pending =
                    Some(PendingUpload::unique(partial, target, true, ownership));
                return Ok((f, candidate));
            }
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&target)
            {
                Ok(f) => {
                    if let Some(o) = &ownership {
                        self.own_new_or_remove(&target, o)?;
                    }
                    self.upload.lock().pending = Some(PendingUpload::unique(
                        target.clone(),
                        target,
                        false,
                        ownership,
                    ));
                    return Ok((f, candidate));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(map_io_error(&e)),
            }
        }
        Err(StorageError::AlreadyExists)
    }
}

/// Maps an I/O error to the storage error the core turns into a reply.
pub fn map_io_error(e: &io::Error) -> StorageError {
    // Linux errno values, for kinds that are not stable on the minimum Rust version.
    const ENOTDIR: i32 = 20;
    const EISDIR: i32 = 21;
    const ENOSPC: i32 = 28;
    const EROFS: i32 = 30;
    const ENAMETOOLONG: i32 = 36;
    const ENOTEMPTY: i32 = 39;
    const ELOOP: i32 = 40;
    const EILSEQ: i32 = 84;
    const EDQUOT: i32 = 122;
    match e.raw_os_error() {
        Some(ENOTDIR) => return StorageError::NotADirectory,
        Some(EISDIR) => return StorageError::IsADirectory,
        Some(ENOSPC) | Some(EDQUOT) => return StorageError::NoSpace,
        Some(EROFS) | Some(ELOOP) => return StorageError::PermissionDenied,
        Some(ENAMETOOLONG) | Some(EILSEQ) => return StorageError::InvalidName,
        Some(ENOTEMPTY) => return StorageError::DirectoryNotEmpty,
        _ => {}
    }
    match e.kind() {
        io::ErrorKind::NotFound => StorageError::NotFound,
        io::ErrorKind::PermissionDenied => StorageError::PermissionDenied,
        io::ErrorKind::AlreadyExists => StorageError::AlreadyExists,
        io::ErrorKind::InvalidInput => StorageError::InvalidName,
        _ => StorageError::Other(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::symlink;

    /// A fresh directory under the target dir, removed at the end of the test.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let p = std::env::temp_dir().join(format!(
                "wharf-storage-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn vp(s: &str) -> VirtualPath {
        VirtualPath::resolve(&VirtualPath::root(), s).unwrap()
    }

    /// root/ with a file, a subdirectory, and outside/ beside root with a secret.
    fn setup(tag: &str) -> (TempDir, LocalFs) {
        let t = TempDir::new(tag);
        let root = t.0.join("root");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("a.txt"), b"hello\n").unwrap();
        fs::create_dir_all(t.0.join("outside")).unwrap();
        fs::write(t.0.join("outside/secret"), b"secret").unwrap();
        let fs = LocalFs::new(&root).unwrap();
        (t, fs)
    }

    #[test]
    fn dot_dot_and_absolute_stay_inside() {
        let (_t, fs) = setup("dotdot");
        // The core normalises `..` away: the farthest a path can reach is the root itself.
        let p = VirtualPath::resolve(&vp("/sub"), "../../../outside/secret").unwrap();
        assert_eq!(p.as_str(), "/outside/secret");
        assert_eq!(fs.stat(&p), Err(StorageError::NotFound));
        // An absolute host path is a path inside the root too.
        let secret = _t.0.join("outside/secret");
        let p = vp(secret.to_str().unwrap());
        assert_eq!(fs.open_read(&p, 0).err(), Some(StorageError::NotFound));
        let root_listing: Vec<String> = fs
            .read_dir(&vp("/.."))
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .collect();
        assert!(root_listing.contains(&"a.txt".to_string()));
        assert!(!root_listing.contains(&"outside".to_string()));
    }

    #[test]
    fn names_that_are_not_utf8_are_listed_and_reachable() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let (t, fs) = setup("lossy");
        let root = t.0.join("root");
        // Latin-1 names written by something other than Wharf.
        fs::write(root.join(OsStr::from_bytes(b"caf\xe9.txt")), b"latin-1").unwrap();
        fs::create_dir(root.join(OsStr::from_bytes(b"d\xefr"))).unwrap();
        fs::write(root.join(OsStr::from_bytes(b"d\xefr/x")), b"x").unwrap();
        let names: Vec<String> = fs
            .read_dir(&vp("/"))
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .collect();
        assert!(names.contains(&"caf\u{FFFD}.txt".to_string()), "{names:?}");
        assert!(names.contains(&"d\u{FFFD}r".to_string()), "{names:?}");
        // The listed name leads back to the entry: read, list inside, delete, remove.
        let (mut f, size) = fs.open_read(&vp("/caf\u{FFFD}.txt"), 0).unwrap();
        let mut text = String::new();
        f.read_to_string(&mut text).unwrap();
        assert_eq!((text.as_str(), size), ("latin-1", 7));
        assert_eq!(fs.read_dir(&vp("/d\u{FFFD}r")).unwrap().len(), 1);
        fs.delete(&vp("/d\u{FFFD}r/x")).unwrap();
        fs.rmdir(&vp("/d\u{FFFD}r")).unwrap();
        fs.rename(&vp("/caf\u{FFFD}.txt"), &vp("/cafe.txt"))
            .unwrap();
        assert_eq!(fs::read(root.join("cafe.txt")).unwrap(), b"latin-1");
        // Two names that list alike are ambiguous: neither is reachable by it.
        fs::write(root.join(OsStr::from_bytes(b"n\xe9")), b"1").unwrap();
        fs::write(root.join(OsStr::from_bytes(b"n\xe8")), b"2").unwrap();
        assert_eq!(fs.stat(&vp("/n\u{FFFD}")), Err(StorageError::NotFound));
    }

    #[test]
    fn symlink_out_of_the_root_is_refused() {
        let (t, fs) = setup("symout");
        let root = t.0.join("root");
        symlink(t.0.join("outside"), root.join("out")).unwrap();
        symlink(t.0.join("outside/secret"), root.join("secret-link")).unwrap();
        assert_eq!(fs.stat(&vp("/out")), Err(StorageError::PermissionDenied));
        assert_eq!(
            fs.open_read(&vp("/secret-link"), 0).err(),
            Some(StorageError::PermissionDenied)
        );
        assert_eq!(
            fs.read_dir(&vp("/out")).err(),
            Some(StorageError::PermissionDenied)
        );
        assert_eq!(
            fs.open_read(&vp("/out/secret"), 0).err(),
            Some(StorageError::PermissionDenied)
        );
        // Writing through the link, into or onto it, is refused too.
        assert_eq!(
            fs.open_write(&vp("/out/new"), StoreMode::Create).err(),
            Some(StorageError::PermissionDenied)
        );
        assert_eq!(
            fs.open_write(&vp("/secret-link"), StoreMode::Create).err(),
            Some(StorageError::PermissionDenied)
        );
        assert_eq!(
            fs.mkdir(&vp("/out/d"), None),
            Err(StorageError::PermissionDenied)
        );
        assert_eq!(
            fs.delete(&vp("/secret-link")),
            Err(StorageError::PermissionDenied)
        );
        assert_eq!(
            fs.rename(&vp("/a.txt"), &vp("/out/a.txt")),
            Err(StorageError::PermissionDenied)
        );
        assert_eq!(
            fs.rename(&vp("/secret-link"), &vp("/mine")),
            Err(StorageError::PermissionDenied)
        );
        // Links that lead out are not listed.
        let names: Vec<String> = fs
            .read_dir(&VirtualPath::root())
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .collect();
        assert!(!names.iter().any(|n| n == "out" || n == "secret-link"));
        // Nothing outside changed.
        assert_eq!(fs::read(t.0.join("outside/secret")).unwrap(), b"secret");
        assert!(!t.0.join("outside/new").exists());
    }

    #[test]
    fn symlink_inside_the_root_works() {
        let (t, fs) = setup("symin");
        let root = t.0.join("root");
        symlink(root.join("sub"), root.join("sublink")).unwrap();
        symlink("a.txt", root.join("alias")).unwrap();
        assert!(fs.stat(&vp("/sublink")).unwrap().is_dir());
        let (mut f, size) = fs.open_read(&vp("/alias"), 0).unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!((s.as_str(), size), ("hello\n", 6));
        let (mut w, _) = fs
            .open_write(&vp("/sublink/new.txt"), StoreMode::Create)
            .unwrap();
        w.write_all(b"x").unwrap();
        assert_eq!(fs::read(root.join("sub/new.txt")).unwrap(), b"x");
        let names: Vec<String> = fs
            .read_dir(&VirtualPath::root())
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .collect();
        assert!(names.contains(&"sublink".to_string()) && names.contains(&"alias".to_string()));
    }

    #[test]
    fn store_modes() {
        let (t, fs) = setup("modes");
        let root = t.0.join("root");
        let p = vp("/f");
        fs.open_write(&p, StoreMode::Create)
            .unwrap()
            .0
            .write_all(b"0123456789")
            .unwrap();
        fs.open_write(&p, StoreMode::Append)
            .unwrap()
            .0
            .write_all(b"ab")
            .unwrap();
        assert_eq!(fs::read(root.join("f")).unwrap(), b"0123456789ab");
        fs.open_write(&p, StoreMode::Resume(4))
            .unwrap()
            .0
            .write_all(b"XY")
            .unwrap();
        assert_eq!(fs::read(root.join("f")).unwrap(), b"0123XY");
        assert!(matches!(
            fs.open_write(&p, StoreMode::Resume(100)).err(),
            Some(StorageError::Other(_))
        ));
        let (_, a) = fs.open_write(&p, StoreMode::Unique).unwrap();
        let (_, b) = fs.open_write(&p, StoreMode::Unique).unwrap();
        assert_eq!((a.as_str(), b.as_str()), ("/f.1", "/f.2"));
        let (_, c) = fs.open_write(&vp("/fresh"), StoreMode::Unique).unwrap();
        assert_eq!(c.as_str(), "/fresh");

        let (mut r, size) = fs.open_read(&p, 4).unwrap();
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!((s.as_str(), size), ("XY", 6));
    }

    #[test]
    fn stou_past_the_numbered_names_picks_random_ones() {
        for atomic in [false, true] {
            let (t, fs) = setup(if atomic { "stou-atomic" } else { "stou" });
            let fs = fs.atomic(atomic);
            let root = t.0.join("root");
            fs::write(root.join("f"), b"old").unwrap();
            for i in 1..=UNIQUE_NUMBERED {
                fs::write(root.join(format!("f.{i}")), b"old").unwrap();
            }
            let mut seen = std::collections::HashSet::new();
            for _ in 0..50 {
                fs.begin_upload(None);
                let (mut w, name) = fs.open_write(&vp("/f"), StoreMode::Unique).unwrap();
                w.write_all(b"new").unwrap();
                drop(w);
                fs.finish_upload(true).unwrap();
                let suffix = name.as_str().strip_prefix("/f.").unwrap();
                assert_eq!(suffix.len(), 12, "{name:?}");
                assert!(suffix.bytes().all(|b| b.is_ascii_hexdigit()), "{name:?}");
                assert!(seen.insert(name.as_str().to_owned()), "{name:?} twice");
                assert_eq!(fs::read(root.join(&name.as_str()[1..])).unwrap(), b"new");
            }
            // Nothing that was there was touched.
            assert_eq!(fs::read(root.join("f")).unwrap(), b"old");
            assert_eq!(fs::read(root.join("f.16")).unwrap(), b"old");
        }
    }

    #[test]
    fn errors_map_to_storage_errors() {
        let (t, fs) = setup("errors");
        let root = t.0.join("root");
        assert_eq!(fs.stat(&vp("/nope")), Err(StorageError::NotFound));
        assert_eq!(
            fs.mkdir(&vp("/sub"), None),
            Err(StorageError::AlreadyExists)
        );
        assert_eq!(fs.mkdir(&vp("/no/such"), None), Err(StorageError::NotFound));
        fs::write(root.join("sub/x"), b"").unwrap();
        assert_eq!(fs.rmdir(&vp("/sub")), Err(StorageError::DirectoryNotEmpty));
        assert_eq!(fs.rmdir(&vp("/a.txt")), Err(StorageError::NotADirectory));
        assert_eq!(fs.delete(&vp("/sub")), Err(StorageError::IsADirectory));
        assert_eq!(
            fs.open_read(&vp("/sub"), 0).err(),
            Some(StorageError::IsADirectory)
        );
        assert_eq!(
            fs.open_write(&vp("/a.txt/x"), StoreMode::Create).err(),
            Some(StorageError::NotADirectory)
        );
        let long = "n".repeat(300);
        assert_eq!(
            fs.mkdir(&vp(&format!("/{long}")), None),
            Err(StorageError::InvalidName)
        );
        assert_eq!(
            fs.delete(&VirtualPath::root()),
            Err(StorageError::PermissionDenied)
        );
        fs.rename(&vp("/a.txt"), &vp("/sub/b.txt")).unwrap();
        assert!(root.join("sub/b.txt").exists());
        fs.delete(&vp("/sub/b.txt")).unwrap();
        fs.delete(&vp("/sub/x")).unwrap();
        fs.rmdir(&vp("/sub")).unwrap();
        assert!(!root.join("sub").exists());
    }

    #[test]
    fn ascii_size_counts_crlf() {
        let (_t, fs) = setup("ascii");
        assert_eq!(fs.ascii_size(&vp("/a.txt")), Ok(7));
        let info = fs.stat(&vp("/a.txt")).unwrap();
        assert_eq!((info.size, info.kind), (6, FileKind::File));
        assert_eq!(fs.stat(&VirtualPath::root()).unwrap().name, "/");
    }

    fn own(owner: &str, group: &str, mode: u32) -> Ownership {
        Ownership {
            owner: owner.into(),
            group: group.into(),
            mode,
        }
    }

    /// A partner tree: root/ with the default Inbox and Outbox, as a login sees it.
    fn partner_tree(tag: &str, atomic: bool) -> (TempDir, LocalFs) {
        let t = TempDir::new(tag);
        let root = t.0.join("acme");
        let folders = crate::store::default_folders();
        make_tree(&root, &folders).unwrap();
        let fs = LocalFs::new(&root)
            .unwrap()
            .with_owner("root", "root")
            .recording(true)
            .atomic(atomic)
            .with_fixed(folders);
        (t, fs)
    }

    fn names(fs: &LocalFs, dir: &str) -> Vec<String> {
        let mut v: Vec<String> = fs
            .read_dir(&vp(dir))
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .collect();
        v.sort();
        v
    }

    fn upload(fs: &LocalFs, path: &str, mode: StoreMode, who: Option<Ownership>, data: &[u8]) {
        use std::io::Write;
        fs.begin_upload(who);
        let (mut f, _) = fs.open_write(&vp(path), mode).unwrap();
        f.write_all(data).unwrap();
        drop(f);
        fs.finish_upload(true).unwrap();
    }

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
        assert_eq!(
            fs.stat(&vp("/Outbox/.wharf-meta.toml")),
            Err(StorageError::NotFound)
        );
        assert_eq!(
            fs.open_read(&vp("/Outbox/2026/.wharf-meta.toml"), 0).err(),
            Some(StorageError::NotFound)
        );
        assert_eq!(
            fs.open_write(&vp("/Outbox/.WHARF-meta.toml"), StoreMode::Create)
                .err(),
            Some(StorageError::InvalidName)
        );
        assert_eq!(
            fs.mkdir(&vp("/Outbox/.wharf"), None),
            Err(StorageError::InvalidName)
        );
        assert_eq!(
            fs.delete(&vp("/Outbox/.wharf-meta.toml")),
            Err(StorageError::NotFound)
        );
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

    /// The partial-file names in `dir`.
    fn partials(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(PARTIAL_PREFIX))
            .collect()
    }

    #[test]
    fn replacing_swaps_the_old_file_out_and_removes_it() {
        use std::io::Write;
        let (t, fs) = partner_tree("swap", true);
        let out = t.0.join("acme/Outbox");
        let start = |name: &str| {
            fs.begin_upload(None);
            let (mut f, _) = fs.open_write(&vp(name), StoreMode::Create).unwrap();
            f.write_all(b"new").unwrap();
        };
        // A small file replaced: removed at once, nothing hidden left.
        fs::write(out.join("s.txt"), b"old").unwrap();
        let reader = File::open(out.join("s.txt")).unwrap();
        start("/Outbox/s.txt");
        fs.finish_upload(true).unwrap();
        assert_eq!(fs::read(out.join("s.txt")).unwrap(), b"new");
        assert!(partials(&out).is_empty(), "{:?}", partials(&out));
        // Someone still reading the old file reads it whole.
        assert_eq!(io::read_to_string(reader).unwrap(), "old");
        // A large one stays hidden until the reply has gone out.
        let big = File::create(out.join("big.bin")).unwrap();
        big.set_len(RELEASE_LATER_MIN).unwrap();
        start("/Outbox/big.bin");
        fs.finish_upload(true).unwrap();
        assert_eq!(fs::read(out.join("big.bin")).unwrap(), b"new");
        assert_eq!(partials(&out).len(), 1);
        fs.release_replaced();
        assert!(partials(&out).is_empty(), "{:?}", partials(&out));
        // The old file deleted while the upload ran: the new one still lands.
        fs::write(out.join("gone.txt"), b"old").unwrap();
        start("/Outbox/gone.txt");
        fs::remove_file(out.join("gone.txt")).unwrap();
        fs.finish_upload(true).unwrap();
        assert_eq!(fs::read(out.join("gone.txt")).unwrap(), b"new");
        // A directory took the name while the upload ran: the upload fails, the directory
        // and what it holds stay, and the partial file goes.
        fs::write(out.join("d"), b"old").unwrap();
        start("/Outbox/d");
        fs::remove_file(out.join("d")).unwrap();
        fs::create_dir(out.join("d")).unwrap();
        fs::write(out.join("d/keep"), b"k").unwrap();
        assert_eq!(fs.finish_upload(true), Err(StorageError::IsADirectory));
        assert_eq!(fs::read(out.join("d/keep")).unwrap(), b"k");
        assert!(partials(&out).is_empty(), "{:?}", partials(&out));
    }

    #[test]
    fn atomic_uploads_show_nothing_until_complete() {
        use std::io::Write;
        let (t, fs) = partner_tree("atomic", true);
        let out = t.0.join("acme/Outbox");
        let alice = own("alice", "acme", 0o444);
        // In flight: nothing under the final name, nothing listed.
        fs.begin_upload(Some(alice.clone()));
        let (mut f, _) = fs
            .open_write(&vp("/Outbox/a.csv"), StoreMode::Create)
            .unwrap();
        f.write_all(b"half").unwrap();
        assert!(!out.join("a.csv").exists());
        assert!(names(&fs, "/Outbox").is_empty());
        f.write_all(b" and half").unwrap();
        drop(f);
        fs.finish_upload(true).unwrap();
        assert_eq!(fs::read(out.join("a.csv")).unwrap(), b"half and half");
        let a = fs.stat(&vp("/Outbox/a.csv")).unwrap();
        assert_eq!((a.owner.as_str(), a.mode), ("alice", 0o444));
        // A failed upload leaves nothing, not even its partial file.
        fs.begin_upload(Some(alice.clone()));
        let (mut f, _) = fs
            .open_write(&vp("/Outbox/b.csv"), StoreMode::Create)
            .unwrap();
        f.write_all(b"cut").unwrap();
        drop(f);
        fs.finish_upload(false).unwrap();
        assert!(!out.join("b.csv").exists());
        assert!(partials(&out).is_empty(), "{:?}", partials(&out));
        // Replacing a file: the old content stays until the new one is complete, and the
        // file keeps its owner and mode.
        fs::write(out.join("r.txt"), b"old").unwrap();
        fs.set_mode(&vp("/Outbox/r.txt"), 0o664).unwrap();
        fs.begin_upload(Some(alice.clone()));
        let (mut f, _) = fs
            .open_write(&vp("/Outbox/r.txt"), StoreMode::Create)
            .unwrap();
        f.write_all(b"new").unwrap();
        assert_eq!(fs::read(out.join("r.txt")).unwrap(), b"old");
        drop(f);
        fs.finish_upload(true).unwrap();
        assert_eq!(fs::read(out.join("r.txt")).unwrap(), b"new");
        let r = fs.stat(&vp("/Outbox/r.txt")).unwrap();
        assert_eq!((r.owner.as_str(), r.mode), ("root", 0o664));
        // APPE and REST+STOR: copy-on-write.
        fs.begin_upload(None);
        let (mut f, _) = fs
            .open_write(&vp("/Outbox/r.txt"), StoreMode::Append)
            .unwrap();
        f.write_all(b"+more").unwrap();
        assert_eq!(fs::read(out.join("r.txt")).unwrap(), b"new");
        drop(f);
        fs.finish_upload(true).unwrap();
        assert_eq!(fs::read(out.join("r.txt")).unwrap(), b"new+more");
        upload(&fs, "/Outbox/r.txt", StoreMode::Resume(3), None, b"!");
        assert_eq!(fs::read(out.join("r.txt")).unwrap(), b"new!");
        assert_eq!(
            fs.open_write(&vp("/Outbox/none"), StoreMode::Resume(1))
                .err(),
            Some(StorageError::NotFound)
        );
        // STOU: a free name, taken only when complete.
        fs.begin_upload(Some(alice.clone()));
        let (mut f, name) = fs
            .open_write(&vp("/Outbox/a.csv"), StoreMode::Unique)
            .unwrap();
        assert_eq!(name.as_str(), "/Outbox/a.csv.1");
        f.write_all(b"u").unwrap();
        assert!(!out.join("a.csv.1").exists());
        drop(f);
        fs.finish_upload(true).unwrap();
        assert_eq!(fs::read(out.join("a.csv.1")).unwrap(), b"u");
        // A session that ends mid-upload (the storage dropped) leaves no partial file.
        fs.begin_upload(Some(alice));
        let (mut f, _) = fs
            .open_write(&vp("/Outbox/c.csv"), StoreMode::Create)
            .unwrap();
        f.write_all(b"c").unwrap();
        drop(f);
        drop(fs);
        assert!(partials(&out).is_empty(), "{:?}", partials(&out));
        assert!(!out.join("c.csv").exists());
        // Partial files of a server that died are swept at the next start.
        fs::write(out.join(format!("{PARTIAL_PREFIX}dead")), b"x").unwrap();
        fs::create_dir_all(out.join("deep")).unwrap();
        fs::write(out.join(format!("deep/{PARTIAL_PREFIX}dead2")), b"x").unwrap();
        assert_eq!(sweep_partials(&t.0), 2);
        assert!(out.join("a.csv").exists());
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

    #[test]
    fn deep_paths_resolve_as_realpath_would() {
        let (t, fs) = setup("deep");
        let root = t.0.join("root");
        fs::create_dir_all(root.join("sub/deeper")).unwrap();
        fs::write(root.join("sub/deeper/f"), b"f").unwrap();
        symlink(t.0.join("outside"), root.join("sub/out")).unwrap();
        symlink(root.join("sub/deeper"), root.join("sub/in")).unwrap();
        // No link on the way: the path as spelt.
        let (real, meta) = fs.existing_meta(&vp("/sub/deeper/f")).unwrap();
        assert_eq!(real, fs::canonicalize(root.join("sub/deeper/f")).unwrap());
        assert!(meta.is_file());
        let (real, meta) = fs.existing_meta(&VirtualPath::root()).unwrap();
        assert_eq!((real.as_path(), meta.is_dir()), (fs.root(), true));
        // A link below the root, leading inside: followed, reported by its real path.
        let (real, _) = fs.existing_meta(&vp("/sub/in/f")).unwrap();
        assert_eq!(real, fs::canonicalize(root.join("sub/deeper/f")).unwrap());
        assert_eq!(fs.stat(&vp("/sub/in/f")).unwrap().size, 1);
        // Leading out, at any depth: refused, for reading and for writing.
        assert_eq!(
            fs.stat(&vp("/sub/out/secret")),
            Err(StorageError::PermissionDenied)
        );
        assert_eq!(
            fs.open_write(&vp("/sub/out/new"), StoreMode::Create).err(),
            Some(StorageError::PermissionDenied)
        );
        // Missing components and files used as folders give the errors realpath gives.
        assert_eq!(fs.stat(&vp("/sub/nope/f")), Err(StorageError::NotFound));
        assert_eq!(fs.stat(&vp("/a.txt/f")), Err(StorageError::NotADirectory));
        assert_eq!(
            fs.open_write(&vp("/a.txt/f"), StoreMode::Create).err(),
            Some(StorageError::NotADirectory)
        );
    }
}
