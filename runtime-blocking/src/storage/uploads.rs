//! Uploads ([`Uploads`]): opening the file an upload writes, putting it in place when all of it
//! arrived, STOU's free names, and freeing what an upload replaced.
//!
//! # The sequence
//! The runtime calls [`Storage::begin_upload`](super::Storage::begin_upload) with the ownership
//! the core gives a new file, then the transfer opens the file
//! ([`Storage::open_write`](super::Storage::open_write)), then the runtime calls
//! [`Storage::finish_upload`](super::Storage::finish_upload) with whether the transfer
//! succeeded, before the final reply and the "upload complete" event go out; after the reply,
//! [`Storage::release_replaced`](super::Storage::release_replaced).
//!
//! # Atomic uploads
//! With atomic uploads (the `atomic_uploads` key, on by default) the data goes to a hidden
//! partial file (`.wharf-part.<random>`, [`PARTIAL_PREFIX`]) in the target's directory; only a
//! successful upload is put at the final name, so nobody — a back end polling the folder
//! included — ever sees half a file under the final name:
//! - replacing a file, the two names are swapped in one step (`renameat2(RENAME_EXCHANGE)`)
//!   and the old file, now under the partial name, removed: at once, or after the reply when
//!   it is large ([`RELEASE_LATER_MIN`]). Readers of the final name see the old file or the
//!   new one, never neither. Why not `rename(2)`: on ext4 a rename that replaces a file first
//!   starts writing the new one out (`auto_da_alloc`), most of the cost of storing small files
//!   (figures: docs/transfers.md). Where the swap is not available (another kernel or file
//!   system) or the old file is gone, a plain rename does it; where a folder took the name
//!   meanwhile, the swap is undone and the upload fails as a rename would;
//! - a new file is simply renamed into place; STOU's is hard-linked to a name that must still
//!   be free, then its partial name removed;
//! - APPE and REST+STOR copy the existing file to the partial file first (copy-on-write;
//!   `copy_file_range` makes that a reflink where the file system can), so the old content
//!   stays in place until the new one is complete;
//! - a failed upload, or one whose session died (the storage dropped), removes its partial
//!   file; partial files left by a server that died are removed at the next start
//!   ([`sweep_partials`](super::provision::sweep_partials)).
//!
//! # Restarting a failed upload (MODE B and C)
//! An upload in MODE B or C that fails after the server acknowledged a restart marker
//! ([`UploadEnd::KeepUpTo`]) keeps its data up to that marker: with atomic uploads, the partial
//! file, cut at the marker, under a hidden name that depends only on the uploader and the file
//! name ([`resume_name`]), in the target's directory; without, the file written in place, cut
//! at the marker. A `REST offset` + `STOR` of the same name by the same owner (any mode) takes
//! the kept file up again when it holds at least `offset` bytes: it becomes the new partial
//! file, cut at `offset`, and is put in place when that upload completes. A kept file replaces
//! an older one of the same upload; kept files unused for [`RESUME_KEEP`](super::provision::RESUME_KEEP) are removed (when
//! another one is kept in the same directory, and at start).
//!
//! A replaced file keeps its owner, group and mode. Without atomic uploads, files are written
//! in place.
//!
//! # STOU names
//! `name` if free, then `name.1` ... `name.16` ([`UNIQUE_NUMBERED`]), then `name.` and 12
//! random hex digits, [`MAX_UNIQUE_TRIES`] names at most.
//!
//! This module adds no system call of its own to the upload path beyond those described (small
//! STOR throughput depends on it: the exchange and the sidecar append are all it costs). It
//! resolves paths only through [`Root`] and records owners only through [`Owners`].

use log::{error, warn};
use parking_lot::Mutex;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use wharf_core::action::Ownership;
use wharf_core::{StorageError, StoreMode, VirtualPath};

use super::confine::Root;
use super::errors::map_io_error;
use super::names::{resume_name, unique_suffix, PARTIAL_PREFIX};
use super::ownership::Owners;
use super::provision::remove_stale_kept;
use crate::sys;

/// The most names `STOU` tries before giving up: `name`, then `name.1` ... `name.16`
/// ([`UNIQUE_NUMBERED`]), then `name.` and 12 random hex digits.
pub const MAX_UNIQUE_TRIES: u32 = 1000;
/// How many numbered names `STOU` tries before random ones: numbers are what people expect
/// to see, but counting up past thousands of earlier uploads would cost a lookup each.
pub const UNIQUE_NUMBERED: u32 = 16;
/// The size from which a file an atomic upload replaces is kept under a hidden name until
/// the upload's reply is sent ([`Uploads::release_replaced`]): freeing a large file's blocks
/// takes a while (figures: docs/transfers.md), which the client need not wait for.
pub const RELEASE_LATER_MIN: u64 = 32 * 1024 * 1024;

/// How an upload ended, for [`Uploads::finish`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadEnd {
    /// All of it arrived: put it in place.
    Complete,
    /// It failed: remove what arrived (atomic uploads).
    Failed,
    /// It failed after the server acknowledged a restart marker at this stored offset: keep
    /// the data before it for `REST` + `STOR` (see the module documentation).
    KeepUpTo(u64),
}

/// An upload under way.
#[derive(Debug)]
struct PendingUpload {
    /// The file written (a hidden partial file with atomic uploads, else the target).
    written: PathBuf,
    /// Where the file goes.
    target: PathBuf,
    /// Where it is kept for a restart if it fails after a restart marker.
    resume: PathBuf,
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
            resume: written.clone(),
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

/// The uploads of one session's storage: at most one under way, and the file the last one
/// replaced, until it is freed. Dropped (the session ended), it leaves no partial file.
#[derive(Debug, Default)]
pub struct Uploads {
    /// Atomic uploads (see the module documentation).
    pub(super) atomic: bool,
    state: Mutex<UploadState>,
}

impl Uploads {
    /// Whether [`Uploads::open`] leaves an existing file as it is until [`Uploads::finish`]
    /// puts the new one in place.
    pub fn keeps_old_until_finished(&self) -> bool {
        self.atomic
    }

    /// The next upload is about to start; `ownership` is what a new file gets. An upload that
    /// was not finished is never put in place.
    pub fn begin(&self, ownership: Option<Ownership>) {
        let mut u = self.state.lock();
        if let Some(p) = u.pending.take() {
            // Not finished: never put in place.
            if p.atomic {
                let _ = fs::remove_file(&p.written);
            }
        }
        u.ownership = ownership;
    }

    /// Opens the file of an upload to `path` as `mode` says, positioned where the upload
    /// writes; also returns the path actually opened (differs from `path` only for STOU).
    pub fn open(
        &self,
        root: &Root,
        owners: &Owners,
        path: &VirtualPath,
        mode: StoreMode,
    ) -> Result<(File, VirtualPath), StorageError> {
        let ownership = self.state.lock().ownership.take();
        if mode == StoreMode::Unique {
            return self.open_unique(root, owners, path, ownership);
        }
        let (target, lstat) = root.creatable_with(path)?;
        let old = match lstat {
            Ok(m) if m.is_file() => Some(m),
            Ok(m) if m.is_dir() => return Err(StorageError::IsADirectory),
            Ok(_) => return Err(StorageError::PermissionDenied),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(map_io_error(&e)),
        };
        let dir = target.parent().unwrap_or(root.path());
        let resume = dir.join(resume_name(
            ownership.as_ref().map_or("", |o| o.owner.as_str()),
            &target.file_name().unwrap_or_default().to_string_lossy(),
        ));
        // A REST + STOR that continues what a failed upload kept (atomic uploads).
        let kept = match mode {
            StoreMode::Resume(offset) if self.atomic => kept_for(&resume, offset),
            _ => None,
        };
        if let (StoreMode::Resume(offset), None) = (mode, kept) {
            match &old {
                None => {
                    return Err(StorageError::Other(format!(
                        "nothing to resume at offset {offset}: the file does not exist, and no \
                         failed upload of it was kept"
                    )))
                }
                Some(m) if offset > m.len() => return Err(beyond_the_end(offset, m.len())),
                Some(_) => {}
            }
        }
        let mut mode_set = false;
        let (written, opened) = if self.atomic {
            let partial = dir.join(format!("{PARTIAL_PREFIX}{}", unique_suffix()));
            let opened = if kept.is_some() {
                fs::rename(&resume, &partial)
                    .map_err(|e| map_io_error(&e))
                    .and_then(|()| open_for(&partial, mode))
            } else if old.is_some() && matches!(mode, StoreMode::Append | StoreMode::Resume(_)) {
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
                        (None, Some(o)) if owners.new_mode_on_disk() => {
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
                owners.own_new_or_remove(&target, o)?;
            }
        }
        self.state.lock().pending = Some(PendingUpload {
            written,
            target,
            resume,
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

    /// After the reply to an upload: frees what the upload replaced, if [`Uploads::finish`]
    /// left that for later.
    pub fn release_replaced(&self) {
        let old = self.state.lock().replaced.take();
        if let Some(old) = old {
            if let Err(e) = fs::remove_file(&old) {
                warn!("cannot remove {}: {e}", old.display());
            }
        }
    }

    /// The upload begun last has ended (see [`UploadEnd`]). Puts the file in place (atomic
    /// uploads), removes what arrived, or keeps it for a restart; an error means the file is
    /// not in place.
    pub fn finish(&self, owners: &Owners, end: UploadEnd) -> Result<(), StorageError> {
        let pending = {
            let mut u = self.state.lock();
            u.ownership = None;
            u.pending.take()
        };
        let Some(p) = pending else {
            return Ok(());
        };
        match end {
            UploadEnd::Complete if p.atomic => {}
            UploadEnd::Complete => return Ok(()),
            UploadEnd::KeepUpTo(offset) if !p.unique => {
                keep(&p, offset);
                return Ok(());
            }
            UploadEnd::Failed | UploadEnd::KeepUpTo(_) => {
                if p.atomic {
                    let _ = fs::remove_file(&p.written);
                }
                return Ok(());
            }
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
            (None, Some(o)) if !p.mode_set => owners.apply_new(&p.target, o),
            // A replaced file keeps its record, which now belongs to the new inode.
            (Some(old), _) if owners.recording => {
                let ino = fs::symlink_metadata(&p.target)
                    .map_err(|e| map_io_error(&e))?
                    .ino();
                owners.follow_replaced(&p.target, old, ino)
            }
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

    /// Puts a finished partial file at its final name (atomic uploads, not STOU): swapped
    /// with a file it replaces, else renamed (see the module documentation).
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

    /// After [`Uploads::put_in_place`] swapped names, removes what was at the final name, now
    /// under the partial file's name: at once, or after the reply when it is large. If a
    /// directory took the final name while the upload ran, the swap is undone and the upload
    /// fails as `rename(2)` would have.
    fn remove_swapped_out(&self, p: &PendingUpload) -> io::Result<()> {
        let large = p.old.is_some_and(|o| o.len >= RELEASE_LATER_MIN);
        let removed = if large {
            match fs::symlink_metadata(&p.written) {
                Ok(m) if m.is_dir() => Err(io::Error::from(io::ErrorKind::IsADirectory)),
                _ => {
                    // Freed after the reply (a leftover is swept at the next start).
                    self.state.lock().replaced = Some(p.written.clone());
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

    /// Opens the file of a STOU upload under the first free name (see the module
    /// documentation).
    fn open_unique(
        &self,
        root: &Root,
        owners: &Owners,
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
            let target = root.creatable(&candidate)?;
            if self.atomic {
                match fs::symlink_metadata(&target) {
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(map_io_error(&e)),
                }
                let dir = target.parent().unwrap_or(root.path());
                let partial = dir.join(format!("{PARTIAL_PREFIX}{}", unique_suffix()));
                let f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&partial)
                    .map_err(|e| map_io_error(&e))?;
                self.state.lock().pending =
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
                        owners.own_new_or_remove(&target, o)?;
                    }
                    self.state.lock().pending = Some(PendingUpload::unique(
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

impl Drop for Uploads {
    fn drop(&mut self) {
        // An upload that never finished (the session died mid-transfer): no partial file
        // stays behind.
        let u = self.state.get_mut();
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

/// What a failed upload kept at `resume`, if it holds at least `offset` bytes.
fn kept_for(resume: &Path, offset: u64) -> Option<u64> {
    match fs::symlink_metadata(resume) {
        Ok(m) if m.is_file() && m.len() >= offset => Some(m.len()),
        _ => None,
    }
}

/// Keeps a failed upload's data up to `offset` (see the module documentation): cut there, and
/// (atomic uploads) under its restart name; older kept files in the directory are removed.
/// A failure only costs the restart: the upload has failed already.
fn keep(p: &PendingUpload, offset: u64) {
    let cut = OpenOptions::new()
        .write(true)
        .open(&p.written)
        .and_then(|f| match f.metadata()?.len() {
            len if len > offset => f.set_len(offset),
            _ => Ok(()),
        });
    let kept = cut.and_then(|()| match p.atomic {
        true => fs::rename(&p.written, &p.resume),
        false => Ok(()),
    });
    if let Err(e) = kept {
        warn!(
            "{}: cannot keep a failed upload for its restart: {e}",
            p.target.display()
        );
        if p.atomic {
            let _ = fs::remove_file(&p.written);
        }
        return;
    }
    if let Some(dir) = p.resume.parent().filter(|_| p.atomic) {
        remove_stale_kept(dir);
    }
}

/// The refusal of a REST offset past the end of the file being resumed.
fn beyond_the_end(offset: u64, len: u64) -> StorageError {
    StorageError::Other(format!(
        "restart offset {offset} is beyond the end of the file ({len} bytes)"
    ))
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
    // Positioned where the upload writes: an O_APPEND file reports 0 until its first write,
    // and the driver counts restart markers (and keeps a failed upload up to one) from here.
    if mode == StoreMode::Append {
        file.seek(SeekFrom::End(0)).map_err(|e| map_io_error(&e))?;
    }
    if let StoreMode::Resume(offset) = mode {
        if offset > meta.len() {
            return Err(beyond_the_end(offset, meta.len()));
        }
        file.set_len(offset).map_err(|e| map_io_error(&e))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| map_io_error(&e))?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::testing::{begin, names, own, partials, partner_tree, setup, upload, vp};
    use crate::storage::{LocalFs, Storage};
    use std::io::{Read, Write};

    /// Writes `data` through `f`, the file of the upload begun last, and finishes the upload,
    /// checking that `real` holds `before` until then and `after` once it is in place.
    fn write_then_place(
        fs: &LocalFs,
        mut f: File,
        data: &[u8],
        real: &Path,
        before: &[u8],
        after: &[u8],
    ) {
        f.write_all(data).unwrap();
        assert_eq!(fs::read(real).unwrap(), before);
        drop(f);
        fs.finish_upload(UploadEnd::Complete).unwrap();
        assert_eq!(fs::read(real).unwrap(), after);
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
                fs.finish_upload(UploadEnd::Complete).unwrap();
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
    fn replacing_swaps_the_old_file_out_and_removes_it() {
        let (t, fs) = partner_tree("swap", true);
        let out = t.0.join("acme/Outbox");
        let start = |name: &str| {
            let mut f = begin(&fs, name, StoreMode::Create, None);
            f.write_all(b"new").unwrap();
        };
        // A small file replaced: removed at once, nothing hidden left.
        fs::write(out.join("s.txt"), b"old").unwrap();
        let reader = File::open(out.join("s.txt")).unwrap();
        start("/Outbox/s.txt");
        fs.finish_upload(UploadEnd::Complete).unwrap();
        assert_eq!(fs::read(out.join("s.txt")).unwrap(), b"new");
        assert!(partials(&out).is_empty(), "{:?}", partials(&out));
        // Someone still reading the old file reads it whole.
        assert_eq!(io::read_to_string(reader).unwrap(), "old");
        // A large one stays hidden until the reply has gone out.
        let big = File::create(out.join("big.bin")).unwrap();
        big.set_len(RELEASE_LATER_MIN).unwrap();
        start("/Outbox/big.bin");
        fs.finish_upload(UploadEnd::Complete).unwrap();
        assert_eq!(fs::read(out.join("big.bin")).unwrap(), b"new");
        assert_eq!(partials(&out).len(), 1);
        fs.release_replaced();
        assert!(partials(&out).is_empty(), "{:?}", partials(&out));
        // The old file deleted while the upload ran: the new one still lands.
        fs::write(out.join("gone.txt"), b"old").unwrap();
        start("/Outbox/gone.txt");
        fs::remove_file(out.join("gone.txt")).unwrap();
        fs.finish_upload(UploadEnd::Complete).unwrap();
        assert_eq!(fs::read(out.join("gone.txt")).unwrap(), b"new");
        // A directory took the name while the upload ran: the upload fails, the directory
        // and what it holds stay, and the partial file goes.
        fs::write(out.join("d"), b"old").unwrap();
        start("/Outbox/d");
        fs::remove_file(out.join("d")).unwrap();
        fs::create_dir(out.join("d")).unwrap();
        fs::write(out.join("d/keep"), b"k").unwrap();
        assert_eq!(
            fs.finish_upload(UploadEnd::Complete),
            Err(StorageError::IsADirectory)
        );
        assert_eq!(fs::read(out.join("d/keep")).unwrap(), b"k");
        assert!(partials(&out).is_empty(), "{:?}", partials(&out));
    }

    #[test]
    fn atomic_uploads_show_nothing_until_complete() {
        let (t, fs) = partner_tree("atomic", true);
        let out = t.0.join("acme/Outbox");
        let alice = own("alice", "acme", 0o444);
        // In flight: nothing under the final name, nothing listed.
        let mut f = begin(&fs, "/Outbox/a.csv", StoreMode::Create, Some(alice.clone()));
        f.write_all(b"half").unwrap();
        assert!(!out.join("a.csv").exists());
        assert!(names(&fs, "/Outbox").is_empty());
        f.write_all(b" and half").unwrap();
        drop(f);
        fs.finish_upload(UploadEnd::Complete).unwrap();
        assert_eq!(fs::read(out.join("a.csv")).unwrap(), b"half and half");
        let a = fs.stat(&vp("/Outbox/a.csv")).unwrap();
        assert_eq!((a.owner.as_str(), a.mode), ("alice", 0o444));
        // A failed upload leaves nothing, not even its partial file.
        let mut f = begin(&fs, "/Outbox/b.csv", StoreMode::Create, Some(alice.clone()));
        f.write_all(b"cut").unwrap();
        drop(f);
        fs.finish_upload(UploadEnd::Failed).unwrap();
        assert!(!out.join("b.csv").exists());
        assert!(partials(&out).is_empty(), "{:?}", partials(&out));
        // Replacing a file: the old content stays until the new one is complete, and the
        // file keeps its owner and mode.
        fs::write(out.join("r.txt"), b"old").unwrap();
        fs.set_mode(&vp("/Outbox/r.txt"), 0o664).unwrap();
        let f = begin(&fs, "/Outbox/r.txt", StoreMode::Create, Some(alice.clone()));
        write_then_place(&fs, f, b"new", &out.join("r.txt"), b"old", b"new");
        let r = fs.stat(&vp("/Outbox/r.txt")).unwrap();
        assert_eq!((r.owner.as_str(), r.mode), ("root", 0o664));
        // APPE and REST+STOR: copy-on-write.
        let f = begin(&fs, "/Outbox/r.txt", StoreMode::Append, None);
        write_then_place(&fs, f, b"+more", &out.join("r.txt"), b"new", b"new+more");
        upload(&fs, "/Outbox/r.txt", StoreMode::Resume(3), None, b"!");
        assert_eq!(fs::read(out.join("r.txt")).unwrap(), b"new!");
        assert!(matches!(
            fs.open_write(&vp("/Outbox/none"), StoreMode::Resume(1))
                .err(),
            Some(StorageError::Other(why)) if why.contains("nothing to resume")
        ));
        // STOU: a free name, taken only when complete.
        fs.begin_upload(Some(alice.clone()));
        let (mut f, name) = fs
            .open_write(&vp("/Outbox/a.csv"), StoreMode::Unique)
            .unwrap();
        assert_eq!(name.as_str(), "/Outbox/a.csv.1");
        f.write_all(b"u").unwrap();
        assert!(!out.join("a.csv.1").exists());
        drop(f);
        fs.finish_upload(UploadEnd::Complete).unwrap();
        assert_eq!(fs::read(out.join("a.csv.1")).unwrap(), b"u");
        // A session that ends mid-upload (the storage dropped) leaves no partial file.
        let mut f = begin(&fs, "/Outbox/c.csv", StoreMode::Create, Some(alice));
        f.write_all(b"c").unwrap();
        drop(f);
        drop(fs);
        assert!(partials(&out).is_empty(), "{:?}", partials(&out));
        assert!(!out.join("c.csv").exists());
    }

    #[test]
    fn a_failed_upload_is_kept_up_to_its_marker_and_taken_up_by_rest_stor() {
        for atomic in [true, false] {
            let (t, fs) = partner_tree(if atomic { "keep-atomic" } else { "keep" }, atomic);
            let inbox = t.0.join("acme/Inbox");
            let alice = || Some(own("alice", "acme", 0o644));
            let mut f = begin(&fs, "/Inbox/big.bin", StoreMode::Create, alice());
            f.write_all(b"0123456789").unwrap();
            drop(f);
            // The connection broke after a marker acknowledged at 6.
            fs.finish_upload(UploadEnd::KeepUpTo(6)).unwrap();
            if atomic {
                // Nothing under the final name, nothing listed; kept under the restart name.
                assert!(!inbox.join("big.bin").exists());
                assert!(names(&fs, "/Inbox").is_empty());
                let kept = inbox.join(resume_name("alice", "big.bin"));
                assert_eq!(fs::read(&kept).unwrap(), b"012345");
                assert!(partials(&inbox).is_empty());
            } else {
                assert_eq!(fs::read(inbox.join("big.bin")).unwrap(), b"012345");
            }
            // Another user's REST + STOR does not see alice's.
            if atomic {
                fs.begin_upload(Some(own("bob", "acme", 0o644)));
                let err = fs.open_write(&vp("/Inbox/big.bin"), StoreMode::Resume(6));
                assert!(matches!(err, Err(StorageError::Other(_))), "{err:?}");
                fs.finish_upload(UploadEnd::Failed).unwrap();
            }
            // REST 6 + STOR: the rest, and the whole file in place.
            let mut f = begin(&fs, "/Inbox/big.bin", StoreMode::Resume(6), alice());
            f.write_all(b"6789").unwrap();
            drop(f);
            fs.finish_upload(UploadEnd::Complete).unwrap();
            assert_eq!(fs::read(inbox.join("big.bin")).unwrap(), b"0123456789");
            let left: Vec<_> = fs::read_dir(&inbox)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.starts_with(".wharf-part") || n.starts_with(".wharf-resume"))
                .collect();
            assert!(left.is_empty(), "{left:?}");
        }
    }

    #[test]
    fn an_append_starts_at_the_end_and_a_failed_one_keeps_the_old_bytes() {
        for atomic in [true, false] {
            let (t, fs) = partner_tree(if atomic { "appe-atomic" } else { "appe" }, atomic);
            let inbox = t.0.join("acme/Inbox");
            let alice = || Some(own("alice", "acme", 0o644));
            let mut f = begin(&fs, "/Inbox/log.txt", StoreMode::Create, alice());
            f.write_all(b"old").unwrap();
            drop(f);
            fs.finish_upload(UploadEnd::Complete).unwrap();
            // The driver takes the file's position as the offset markers count from.
            let mut f = begin(&fs, "/Inbox/log.txt", StoreMode::Append, alice());
            assert_eq!(f.stream_position().unwrap(), 3, "atomic {atomic}");
            f.write_all(b"abcdef").unwrap();
            drop(f);
            // Cut after a marker acknowledged at stored offset 7 (3 old + 4 new bytes).
            fs.finish_upload(UploadEnd::KeepUpTo(7)).unwrap();
            let got = fs::read(inbox.join("log.txt")).unwrap();
            if atomic {
                assert_eq!(got, b"old");
            } else {
                assert_eq!(got, b"oldabcd");
            }
        }
    }

    #[test]
    fn kept_uploads_nobody_took_up_are_removed_after_a_day() {
        use crate::storage::provision::RESUME_KEEP;
        let (t, _fs) = partner_tree("keep-stale", true);
        let inbox = t.0.join("acme/Inbox");
        let old = inbox.join(resume_name("alice", "old.bin"));
        let new = inbox.join(resume_name("alice", "new.bin"));
        fs::write(&old, b"old").unwrap();
        fs::write(&new, b"new").unwrap();
        let two_days_ago = std::time::SystemTime::now() - 2 * RESUME_KEEP;
        File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(two_days_ago)
            .unwrap();
        assert_eq!(remove_stale_kept(&inbox), 1);
        assert!(!old.exists() && new.exists());
    }
}
