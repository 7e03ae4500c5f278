//! The mapping from I/O errors (`io::ErrorKind` and Linux errno values) to the
//! [`StorageError`] the core turns into a reply: `ENOSPC`/`EDQUOT` → `NoSpace` (452),
//! `ENAMETOOLONG` → `InvalidName`, `EROFS` → `PermissionDenied`, and so on.
//!
//! One function, used by every storage operation and by the transfer code. It decides no
//! reply itself (that is the core's) and never looks at an error's message.

use std::io;
use wharf_core::StorageError;

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
    use crate::storage::testing::{setup, vp};
    use crate::storage::Storage;
    use std::fs;
    use wharf_core::{StoreMode, VirtualPath};

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
}
