//! [`LocalFs`]: the [`Storage`] of one user's tree on the local file system — a [`Root`]
//! (confinement), [`Owners`] (owner, group and mode of entries) and [`Uploads`] (atomic uploads)
//! put together, and the plain file operations (stat, list, MKD, RMD, DELE, RNFR/RNTO, SITE
//! CHMOD, MFMT, RETR's open).
//!
//! Every operation resolves its path through the [`Root`] first, then acts, then tells the
//! [`Owners`] what changed. Rules belong to those parts, not here: this file must not grow a
//! path check, an ownership rule or an upload step of its own.
//!
//! Read handles are plain [`std::fs::File`]s so that a binary retrieve can go from the file to
//! the socket with `sendfile` (see the transfer code).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use wharf_core::action::Ownership;
use wharf_core::{FileInfo, StorageError, StoreMode, UnixTime, VirtualPath};

use super::confine::{name_usable, Root};
use super::entry::file_info;
use super::errors::map_io_error;
use super::names::is_reserved;
use super::ownership::Owners;
use super::provision::make_tree;
use super::uploads::{UploadEnd, Uploads};
use super::Storage;
use crate::users::{FixedFolder, Login, View};

/// The local file system below one directory (the user's root).
///
/// Entries are reported with an owner, group and mode as [`ownership`](super::ownership)
/// says; [`LocalFs::new`] makes a tree whose entries belong to `ftp`/`ftp` and that records
/// nothing (as for anonymous users).
#[derive(Debug)]
pub struct LocalFs {
    root: Root,
    owners: Owners,
    uploads: Uploads,
}

impl LocalFs {
    /// Storage confined to `root`, which must exist and be a directory.
    pub fn new(root: &Path) -> io::Result<LocalFs> {
        Ok(LocalFs {
            root: Root::new(root)?,
            owners: Owners::default(),
            uploads: Uploads::default(),
        })
    }

    /// The storage a login sees: a partner's tree (its folders made if missing), a home, or
    /// the anonymous root. `atomic` turns atomic uploads on.
    ///
    /// Every session runs this, on a worker thread that keeps resident the deepest stack it
    /// ever touched: the root is resolved (libc's `realpath`, a few KiB of stack) before the
    /// storage is put together, in a frame of its own, so that the two do not add up.
    #[inline(never)]
    pub fn for_login(login: &Login, atomic: bool) -> io::Result<Box<LocalFs>> {
        if let View::Partner(folders) = &login.view {
            make_tree(&login.home, folders)?;
        }
        let root = Root::new(&login.home)?;
        Ok(LocalFs::configured(root, login, atomic))
    }

    #[inline(never)]
    fn configured(root: Root, login: &Login, atomic: bool) -> Box<LocalFs> {
        let mut fs = Box::new(LocalFs {
            root,
            owners: Owners::default(),
            uploads: Uploads::default(),
        });
        match &login.view {
            View::Anonymous => {}
            View::Home => {
                let a = &login.account;
                fs.owners.owner = a.user.clone();
                fs.owners.group = a.group().to_owned();
                fs.owners.modes_on_disk = true;
                fs.uploads.atomic = atomic;
            }
            View::Partner(folders) => {
                fs.owners.owner = "root".to_owned();
                fs.owners.group = "root".to_owned();
                fs.owners.recording = true;
                fs.owners.fixed = folders.clone();
                fs.uploads.atomic = atomic;
            }
        }
        fs
    }

    /// The same storage, reporting entries without a record as owned by `owner` and `group`.
    pub fn with_owner(mut self, owner: &str, group: &str) -> LocalFs {
        self.owners.owner = owner.to_owned();
        self.owners.group = group.to_owned();
        self
    }

    /// The same storage, recording owners and modes in sidecars (or not).
    pub fn recording(mut self, on: bool) -> LocalFs {
        self.owners.recording = on;
        self
    }

    /// The same storage, keeping the modes of new entries and SITE CHMOD in the file
    /// system's own permission bits (a personal home, where every entry is the user's and no
    /// owner needs recording).
    pub fn modes_on_disk(mut self, on: bool) -> LocalFs {
        self.owners.modes_on_disk = on;
        self
    }

    /// The same storage with atomic uploads on or off.
    pub fn atomic(mut self, on: bool) -> LocalFs {
        self.uploads.atomic = on;
        self
    }

    /// The same storage with these fixed folders (their owner, group and mode as given).
    pub fn with_fixed(mut self, folders: Vec<FixedFolder>) -> LocalFs {
        self.owners.fixed = folders;
        self
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        self.root.path()
    }
}

impl Storage for LocalFs {
    fn keeps_old_until_finished(&self) -> bool {
        self.uploads.keeps_old_until_finished()
    }

    fn stat(&self, path: &VirtualPath) -> Result<FileInfo, StorageError> {
        let (real, meta) = self.root.existing_meta(path)?;
        let name = if path.is_root() {
            "/"
        } else {
            path.file_name()
        };
        let mut info = file_info(name, &meta);
        self.owners.decorate(&mut info, path, &real, None);
        Ok(info)
    }

    fn read_dir(&self, path: &VirtualPath) -> Result<Vec<FileInfo>, StorageError> {
        let real = self.root.existing(path)?;
        let dir = fs::read_dir(&real).map_err(|e| map_io_error(&e))?;
        let records = self.owners.records_of(&real);
        let mut seen = HashMap::new();
        let mut out = Vec::new();
        for entry in dir {
            let Ok(entry) = entry else { continue };
            // A name that is not UTF-8 is listed with U+FFFD (see `confine`).
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
                    Ok(target) if self.root.inside(&target) => match fs::metadata(&target) {
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
            self.owners
                .decorate(&mut info, &vpath, &real.join(&name), records.as_deref());
            out.push(info);
        }
        if let Some(records) = &records {
            self.owners.prune(&real, records, &seen);
        }
        Ok(out)
    }

    fn mkdir(&self, path: &VirtualPath, ownership: Option<&Ownership>) -> Result<(), StorageError> {
        let target = self.root.creatable(path)?;
        fs::create_dir(&target).map_err(|e| map_io_error(&e))?;
        if let Some(o) = ownership {
            if let Err(e) = self.owners.apply_new(&target, o) {
                log::error!(
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
        if self.owners.protects(path) {
            return Err(StorageError::PermissionDenied);
        }
        let target = self.root.removable(path)?;
        let meta = fs::symlink_metadata(&target).map_err(|e| map_io_error(&e))?;
        if !meta.is_dir() {
            return Err(StorageError::NotADirectory);
        }
        // The server's own files (records, partial uploads) do not make a folder non-empty.
        let mut ours = Vec::new();
        for entry in fs::read_dir(&target).map_err(|e| map_io_error(&e))? {
            let entry = entry.map_err(|e| map_io_error(&e))?;
            let name = entry.file_name();
            if !is_reserved(&name.to_string_lossy()) {
                return Err(StorageError::DirectoryNotEmpty);
            }
            ours.push(entry.path());
        }
        for p in ours {
            let _ = fs::remove_file(&p);
        }
        fs::remove_dir(&target).map_err(|e| map_io_error(&e))?;
        self.owners.unrecord_dir(&target);
        Ok(())
    }

    fn delete(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let target = self.root.removable(path)?;
        let meta = fs::symlink_metadata(&target).map_err(|e| map_io_error(&e))?;
        if meta.is_dir() {
            return Err(StorageError::IsADirectory);
        }
        fs::remove_file(&target).map_err(|e| map_io_error(&e))?;
        self.owners.unrecord(&target);
        Ok(())
    }

    fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        if self.owners.protects(from) || self.owners.protects(to) {
            return Err(StorageError::PermissionDenied);
        }
        let source = self.root.removable(from)?;
        let target = self.root.creatable(to)?;
        fs::rename(&source, &target).map_err(|e| map_io_error(&e))?;
        self.owners.move_record(&source, &target);
        Ok(())
    }

    fn set_mode(&self, path: &VirtualPath, mode: u32) -> Result<(), StorageError> {
        let owners = &self.owners;
        if !(owners.recording || owners.modes_on_disk)
            || path.is_root()
            || owners.fixed_folder(path).is_some()
        {
            return Err(StorageError::PermissionDenied);
        }
        if owners.modes_on_disk {
            let real = self.root.existing(path)?;
            return fs::set_permissions(&real, fs::Permissions::from_mode(mode & 0o777))
                .map_err(|e| map_io_error(&e));
        }
        let info = self.stat(path)?;
        let real = self.root.existing(path)?;
        let ownership = Ownership {
            owner: info.owner,
            group: info.group,
            mode: mode & 0o777,
        };
        owners
            .record(&real, &ownership)
            .map_err(|e| StorageError::Other(format!("cannot record the mode: {e}")))
    }

    fn set_modified(&self, path: &VirtualPath, time: UnixTime) -> Result<(), StorageError> {
        let real = self.root.existing(path)?;
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
        let real = self.root.existing(path)?;
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
        self.uploads.begin(ownership);
    }

    fn open_write(
        &self,
        path: &VirtualPath,
        mode: StoreMode,
    ) -> Result<(File, VirtualPath), StorageError> {
        self.uploads.open(&self.root, &self.owners, path, mode)
    }

    fn finish_upload(&self, end: UploadEnd) -> Result<(), StorageError> {
        self.uploads.finish(&self.owners, end)
    }

    fn release_replaced(&self) {
        self.uploads.release_replaced();
    }
}
