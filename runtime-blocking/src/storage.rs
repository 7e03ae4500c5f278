//! Storage: what a session's file commands do to a file system, behind the [`Storage`] trait,
//! and [`LocalFs`], the implementation on the local file system confined to one user's root.
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
//!   refused.
//! - A path that is created (mkdir, upload, rename target) has its parent canonicalised and
//!   checked the same way, and is refused when the final component exists as a symlink (so an
//!   upload can never write through a link).
//! - Listings leave out entries that cannot be used: symlinks that lead out of the root or
//!   nowhere, and names that are not UTF-8 or contain CR or LF (they would break the listing
//!   formats).
//! - Known limit: the checks and the operation are separate system calls, so a local user who
//!   can change the tree at the same moment (replace a checked directory by a symlink) could
//!   race them. FTP users alone cannot create symlinks.
//!
//! # Owner and group
//! Listings show `ftp` / `ftp` as owner and group of every entry: the system's account names
//! are none of a client's business.
//!
//! # Errors
//! `io::ErrorKind` and Linux errno values map to [`StorageError`] in [`map_io_error`]
//! (`ENOSPC`/`EDQUOT` → `NoSpace`, `ENAMETOOLONG` → `InvalidName`, `EROFS` →
//! `PermissionDenied`, ...).
//!
//! Read handles are plain [`std::fs::File`]s so that a binary retrieve can go from the file to
//! the socket with `sendfile` (see the transfer code).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use wharf_core::codec::AsciiEncoder;
use wharf_core::{FileInfo, FileKind, StorageError, StoreMode, UnixTime, VirtualPath};

/// The most names `STOU` tries (`name`, `name.1`, ... `name.999`) before giving up.
pub const MAX_UNIQUE_TRIES: u32 = 1000;

/// A user's file system, as the session's commands see it. Every path is virtual (inside the
/// user's root); implementations keep every operation inside that root.
pub trait Storage: Send {
    /// Metadata of a path (following symlinks that stay inside the root).
    fn stat(&self, path: &VirtualPath) -> Result<FileInfo, StorageError>;
    /// The usable entries of a directory, without `.` and `..`.
    fn read_dir(&self, path: &VirtualPath) -> Result<Vec<FileInfo>, StorageError>;
    /// Creates a directory whose parent exists.
    fn mkdir(&self, path: &VirtualPath) -> Result<(), StorageError>;
    /// Removes an empty directory.
    fn rmdir(&self, path: &VirtualPath) -> Result<(), StorageError>;
    /// Deletes a file.
    fn delete(&self, path: &VirtualPath) -> Result<(), StorageError>;
    /// Renames a file or directory; an existing file at `to` is replaced.
    fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError>;
    /// Opens a regular file for reading, positioned at `offset`; also returns its size.
    fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<(File, u64), StorageError>;
    /// Opens a file for an upload as `mode` says, positioned where the upload writes; also
    /// returns the path actually opened (differs from `path` only for [`StoreMode::Unique`]).
    fn open_write(
        &self,
        path: &VirtualPath,
        mode: StoreMode,
    ) -> Result<(File, VirtualPath), StorageError>;
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

/// The local file system below one directory (the user's root).
///
/// Entries are reported as owned by the account the storage serves (see
/// [`LocalFs::with_owner`]): the core decides permissions from owner, group and mode bits,
/// and a user's own home holds no ownership record of its own yet (the partner-aware
/// storage of issue 4 records it). Without an owner, entries belong to `ftp`.
#[derive(Clone, Debug)]
pub struct LocalFs {
    root: PathBuf,
    owner: String,
    group: String,
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
        })
    }

    /// The same storage, reporting its entries as owned by `owner` and `group`.
    pub fn with_owner(mut self, owner: &str, group: &str) -> LocalFs {
        self.owner = owner.to_owned();
        self.group = group.to_owned();
        self
    }

    fn owned(&self, mut info: FileInfo) -> FileInfo {
        info.owner.clone_from(&self.owner);
        info.group.clone_from(&self.group);
        info
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
        let real = fs::canonicalize(self.lexical(path)).map_err(|e| map_io_error(&e))?;
        if self.inside(&real) {
            Ok(real)
        } else {
            Err(StorageError::PermissionDenied)
        }
    }

    /// The real path of an entry to create (or replace): the parent canonicalised and checked,
    /// the final component refused when it is a symlink.
    fn creatable(&self, path: &VirtualPath) -> Result<PathBuf, StorageError> {
        if path.is_root() {
            return Err(StorageError::PermissionDenied);
        }
        let parent = self.existing(&path.parent())?;
        if !fs::metadata(&parent)
            .map_err(|e| map_io_error(&e))?
            .is_dir()
        {
            return Err(StorageError::NotADirectory);
        }
        let target = parent.join(path.file_name());
        match fs::symlink_metadata(&target) {
            Ok(m) if m.file_type().is_symlink() => Err(StorageError::PermissionDenied),
            _ => Ok(target),
        }
    }

    /// The real path of an entry acted on itself (delete, rmdir, rename source): the parent
    /// checked; a symlink as final component is acted on only when its target is inside.
    fn removable(&self, path: &VirtualPath) -> Result<PathBuf, StorageError> {
        if path.is_root() {
            return Err(StorageError::PermissionDenied);
        }
        let parent = self.existing(&path.parent())?;
        let target = parent.join(path.file_name());
        let meta = fs::symlink_metadata(&target).map_err(|e| map_io_error(&e))?;
        if meta.file_type().is_symlink() {
            // Refuse links that lead out (or nowhere), as for every other operation.
            self.existing(path)?;
        }
        Ok(target)
    }
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

fn name_usable(name: &str) -> bool {
    !name.contains(['\r', '\n'])
}

impl Storage for LocalFs {
    fn stat(&self, path: &VirtualPath) -> Result<FileInfo, StorageError> {
        let real = self.existing(path)?;
        let meta = fs::metadata(&real).map_err(|e| map_io_error(&e))?;
        let name = if path.is_root() {
            "/"
        } else {
            path.file_name()
        };
        Ok(self.owned(file_info(name, &meta)))
    }

    fn read_dir(&self, path: &VirtualPath) -> Result<Vec<FileInfo>, StorageError> {
        let real = self.existing(path)?;
        let dir = fs::read_dir(&real).map_err(|e| map_io_error(&e))?;
        let mut out = Vec::new();
        for entry in dir {
            let Ok(entry) = entry else { continue };
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !name_usable(&name) {
                continue;
            }
            let Ok(ft) = entry.file_type() else { continue };
            let meta = if ft.is_symlink() {
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
                    Ok(m) => m,
                    Err(_) => continue,
                }
            };
            out.push(self.owned(file_info(&name, &meta)));
        }
        Ok(out)
    }

    fn mkdir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let target = self.creatable(path)?;
        fs::create_dir(&target).map_err(|e| map_io_error(&e))
    }

    fn rmdir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let target = self.removable(path)?;
        let meta = fs::symlink_metadata(&target).map_err(|e| map_io_error(&e))?;
        if !meta.is_dir() {
            return Err(StorageError::NotADirectory);
        }
        fs::remove_dir(&target).map_err(|e| map_io_error(&e))
    }

    fn delete(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let target = self.removable(path)?;
        let meta = fs::symlink_metadata(&target).map_err(|e| map_io_error(&e))?;
        if meta.is_dir() {
            return Err(StorageError::IsADirectory);
        }
        fs::remove_file(&target).map_err(|e| map_io_error(&e))
    }

    fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        let source = self.removable(from)?;
        let target = self.creatable(to)?;
        fs::rename(&source, &target).map_err(|e| map_io_error(&e))
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

    fn open_write(
        &self,
        path: &VirtualPath,
        mode: StoreMode,
    ) -> Result<(File, VirtualPath), StorageError> {
        let target = self.creatable(path)?;
        let mut opts = OpenOptions::new();
        match mode {
            StoreMode::Create => {
                opts.write(true).create(true).truncate(true);
            }
            StoreMode::Append => {
                opts.append(true).create(true);
            }
            StoreMode::Resume(_) => {
                opts.write(true);
            }
            StoreMode::Unique => return self.open_unique(path),
        }
        let mut file = opts.open(&target).map_err(|e| map_io_error(&e))?;
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
        Ok((file, path.clone()))
    }
}

impl LocalFs {
    fn open_unique(&self, path: &VirtualPath) -> Result<(File, VirtualPath), StorageError> {
        let parent = path.parent();
        let base = path.file_name();
        for i in 0..MAX_UNIQUE_TRIES {
            let candidate = if i == 0 {
                path.clone()
            } else {
                parent.join(&format!("{base}.{i}"))
            };
            let target = self.creatable(&candidate)?;
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&target)
            {
                Ok(f) => return Ok((f, candidate)),
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
        assert_eq!(fs.mkdir(&vp("/out/d")), Err(StorageError::PermissionDenied));
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
    fn errors_map_to_storage_errors() {
        let (t, fs) = setup("errors");
        let root = t.0.join("root");
        assert_eq!(fs.stat(&vp("/nope")), Err(StorageError::NotFound));
        assert_eq!(fs.mkdir(&vp("/sub")), Err(StorageError::AlreadyExists));
        assert_eq!(fs.mkdir(&vp("/no/such")), Err(StorageError::NotFound));
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
            fs.mkdir(&vp(&format!("/{long}"))),
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
}
