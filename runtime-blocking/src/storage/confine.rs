//! Confinement: the real path a [`VirtualPath`] names inside one user's root ([`Root`]), or a
//! refusal.
//!
//! Paths arrive already normalised by the core (absolute, no `.` or `..`), so they cannot name
//! anything above the root by their spelling. What the core cannot see are symbolic links:
//! every path is checked again here, on the real file system.
//!
//! # Rules
//! - The root is canonicalised once, when the [`Root`] is made.
//! - A path that must exist (stat, list, read, delete, remove, rename source) is canonicalised
//!   (symlinks followed) and refused with `PermissionDenied` unless the result lies inside the
//!   root. A symlink that stays inside the root works as its target; one that leads out is
//!   refused. (How: one `lstat` per component below the root; when none is a symlink, the
//!   path as spelt is already canonical, so `realpath` — a `readlink` for every component
//!   from `/` down, on every command — is only needed when one is.)
//! - A path that is created (mkdir, upload, rename target) has its parent canonicalised and
//!   checked the same way, and is refused when the final component exists as a symlink (so an
//!   upload can never write through a link).
//! - Names reserved for the server ([`is_reserved`]: ownership records, partial uploads) are
//!   never listed, `NotFound` when looked up, `InvalidName` when created.
//! - Listings leave out entries that cannot be used: symlinks that lead out of the root or
//!   nowhere, and names that contain CR or LF (they would break the listing formats).
//! - Names on disk that are not UTF-8 (written there by something other than Wharf) are listed
//!   with U+FFFD in place of each byte that is not, and such a listed name leads back to its
//!   entry when exactly one entry of the folder lists as it (`undecodable_entry`).
//! - Known limit: the checks and the operation are separate system calls, so a local user who
//!   can change the tree at the same moment (replace a checked directory by a symlink) could
//!   race them. FTP users alone cannot create symlinks.
//!
//! This module only resolves paths: it creates, changes and removes nothing, and knows nothing
//! of owners or uploads.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use wharf_core::{StorageError, VirtualPath};

use super::errors::map_io_error;
use super::names::is_reserved;

/// What a listing shows for each byte of a name that is not UTF-8 (see [`undecodable_entry`]).
const LOSSY: char = char::REPLACEMENT_CHARACTER;

/// Most entries of one folder looked through for a name that is not UTF-8.
const MAX_UNDECODABLE_SCAN: usize = 100_000;

/// A user's root directory, canonical, and the confinement of virtual paths to it.
#[derive(Debug)]
pub struct Root {
    path: PathBuf,
}

impl Root {
    /// The root at `root`, which must exist and be a directory.
    pub fn new(root: &Path) -> io::Result<Root> {
        let path = fs::canonicalize(root)?;
        if !fs::metadata(&path)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", path.display()),
            ));
        }
        Ok(Root { path })
    }

    /// The canonical root directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path below the root that `path` names, without any check.
    fn lexical(&self, path: &VirtualPath) -> PathBuf {
        let mut p = self.path.clone();
        for c in path.components() {
            p.push(c);
        }
        p
    }

    /// Whether the real (canonical) path `p` lies inside the root.
    pub fn inside(&self, p: &Path) -> bool {
        p.starts_with(&self.path)
    }

    /// The real path of an entry that must exist: symlinks followed, checked to be inside.
    pub fn existing(&self, path: &VirtualPath) -> Result<PathBuf, StorageError> {
        self.existing_meta(path).map(|(real, _)| real)
    }

    /// [`Root::existing`] with the entry's metadata (symlinks followed).
    ///
    /// The common case costs one `lstat` per component below the root and nothing else: the
    /// root is canonical and a virtual path has no `.` or `..`, so when no component below
    /// the root is a symlink the path as spelt is the real one (`realpath` would `readlink`
    /// every component from `/` down, the root's included, on every call). A symlink on the
    /// way sends the path through `fs::canonicalize` and the inside-the-root check.
    pub fn existing_meta(
        &self,
        path: &VirtualPath,
    ) -> Result<(PathBuf, fs::Metadata), StorageError> {
        if is_reserved_path(path) {
            return Err(StorageError::NotFound);
        }
        let mut real = self.path.clone();
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
    pub fn creatable(&self, path: &VirtualPath) -> Result<PathBuf, StorageError> {
        self.creatable_with(path).map(|(target, _)| target)
    }

    /// [`Root::creatable`], with what `lstat` says of the target (it may not exist).
    pub fn creatable_with(
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
    pub fn removable(&self, path: &VirtualPath) -> Result<PathBuf, StorageError> {
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
}

/// Whether any component of `path` is a name reserved for the server.
fn is_reserved_path(path: &VirtualPath) -> bool {
    path.components().any(is_reserved)
}

/// Whether a listing may show an entry named `name` (its name not reserved, and free of CR
/// and LF, which would break the listing formats).
pub fn name_usable(name: &str) -> bool {
    !name.contains(['\r', '\n']) && !is_reserved(name)
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::testing::{assert_errors, assert_refused, names, setup, vp};
    use crate::storage::Storage;
    use std::io::{Read, Write};
    use std::os::unix::fs::symlink;
    use wharf_core::StorageError::{NotADirectory, NotFound, PermissionDenied};
    use wharf_core::StoreMode::{self, Create};

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
        let root_listing = names(&fs, "/..");
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
        let names = names(&fs, "/");
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
        assert_refused(
            PermissionDenied,
            [
                fs.stat(&vp("/out")).err(),
                fs.open_read(&vp("/secret-link"), 0).err(),
                fs.read_dir(&vp("/out")).err(),
                fs.open_read(&vp("/out/secret"), 0).err(),
                // Writing through the link, into or onto it, is refused too.
                fs.open_write(&vp("/out/new"), StoreMode::Create).err(),
                fs.open_write(&vp("/secret-link"), StoreMode::Create).err(),
                fs.mkdir(&vp("/out/d"), None).err(),
                fs.delete(&vp("/secret-link")).err(),
                fs.rename(&vp("/a.txt"), &vp("/out/a.txt")).err(),
                fs.rename(&vp("/secret-link"), &vp("/mine")).err(),
            ],
        );
        // Links that lead out are not listed.
        let names = names(&fs, "/");
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
        let names = names(&fs, "/");
        assert!(names.contains(&"sublink".to_string()) && names.contains(&"alias".to_string()));
    }

    #[test]
    fn deep_paths_resolve_as_realpath_would() {
        let (t, fs) = setup("deep");
        let root = t.0.join("root");
        fs::create_dir_all(root.join("sub/deeper")).unwrap();
        fs::write(root.join("sub/deeper/f"), b"f").unwrap();
        symlink(t.0.join("outside"), root.join("sub/out")).unwrap();
        symlink(root.join("sub/deeper"), root.join("sub/in")).unwrap();
        let jail = Root::new(&root).unwrap();
        // No link on the way: the path as spelt.
        let (real, meta) = jail.existing_meta(&vp("/sub/deeper/f")).unwrap();
        assert_eq!(real, fs::canonicalize(root.join("sub/deeper/f")).unwrap());
        assert!(meta.is_file());
        let (real, meta) = jail.existing_meta(&VirtualPath::root()).unwrap();
        assert_eq!((real.as_path(), meta.is_dir()), (fs.root(), true));
        // A link below the root, leading inside: followed, reported by its real path.
        let (real, _) = jail.existing_meta(&vp("/sub/in/f")).unwrap();
        assert_eq!(real, fs::canonicalize(root.join("sub/deeper/f")).unwrap());
        assert_eq!(fs.stat(&vp("/sub/in/f")).unwrap().size, 1);
        assert_errors([
            // Leading out, at any depth: refused, for reading and for writing.
            (fs.stat(&vp("/sub/out/secret")).err(), PermissionDenied),
            (
                fs.open_write(&vp("/sub/out/new"), Create).err(),
                PermissionDenied,
            ),
            // Missing components and files used as folders give the errors realpath gives.
            (fs.stat(&vp("/sub/nope/f")).err(), NotFound),
            (fs.stat(&vp("/a.txt/f")).err(), NotADirectory),
            (fs.open_write(&vp("/a.txt/f"), Create).err(), NotADirectory),
        ]);
    }
}
