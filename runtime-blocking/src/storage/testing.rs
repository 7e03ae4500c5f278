//! Helpers the storage tests share: temporary trees (plain, a partner's, a home's), virtual
//! paths, uploads in one call. Test code only.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use wharf_core::action::Ownership;
use wharf_core::{StorageError, StoreMode, VirtualPath};

use super::names::PARTIAL_PREFIX;
use super::provision::make_tree;
use super::{LocalFs, Storage, UploadEnd};

/// A fresh directory under the system's temporary directory, removed at the end of the test.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
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

pub fn vp(s: &str) -> VirtualPath {
    VirtualPath::resolve(&VirtualPath::root(), s).unwrap()
}

/// root/ with a file, a subdirectory, and outside/ beside root with a secret.
pub fn setup(tag: &str) -> (TempDir, LocalFs) {
    let t = TempDir::new(tag);
    let root = t.0.join("root");
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::write(root.join("a.txt"), b"hello\n").unwrap();
    fs::create_dir_all(t.0.join("outside")).unwrap();
    fs::write(t.0.join("outside/secret"), b"secret").unwrap();
    let fs = LocalFs::new(&root).unwrap();
    (t, fs)
}

pub fn own(owner: &str, group: &str, mode: u32) -> Ownership {
    Ownership {
        owner: owner.into(),
        group: group.into(),
        mode,
    }
}

/// A partner tree: root/ with the default Inbox and Outbox, as a login sees it.
pub fn partner_tree(tag: &str, atomic: bool) -> (TempDir, LocalFs) {
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

/// The names listed in `dir`, sorted.
pub fn names(fs: &LocalFs, dir: &str) -> Vec<String> {
    let mut v: Vec<String> = fs
        .read_dir(&vp(dir))
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    v.sort();
    v
}

/// An upload to `path` begun (by `who`, in `mode`): the file it writes.
pub fn begin(fs: &LocalFs, path: &str, mode: StoreMode, who: Option<Ownership>) -> File {
    fs.begin_upload(who);
    fs.open_write(&vp(path), mode).unwrap().0
}

/// A whole upload of `data` to `path`: begun, written, finished.
pub fn upload(fs: &LocalFs, path: &str, mode: StoreMode, who: Option<Ownership>, data: &[u8]) {
    let mut f = begin(fs, path, mode, who);
    f.write_all(data).unwrap();
    drop(f);
    fs.finish_upload(UploadEnd::Complete).unwrap();
}

/// Asserts that every operation whose error is in `got` failed with `want`.
#[track_caller]
pub fn assert_refused<const N: usize>(want: StorageError, got: [Option<StorageError>; N]) {
    for (i, got) in got.into_iter().enumerate() {
        assert_eq!(got.as_ref(), Some(&want), "operation {} of {N}", i + 1);
    }
}

/// Asserts that each operation failed with the error beside it: `(its error, the error)`.
#[track_caller]
pub fn assert_errors<const N: usize>(cases: [(Option<StorageError>, StorageError); N]) {
    for (i, (got, want)) in cases.into_iter().enumerate() {
        assert_eq!(got, Some(want), "operation {} of {N}", i + 1);
    }
}

/// The partial-file names in `dir`.
pub fn partials(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(PARTIAL_PREFIX))
        .collect()
}
