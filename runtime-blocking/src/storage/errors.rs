//! The mapping from I/O errors (`io::ErrorKind` and Linux errno values) to the
//! [`StorageError`] the core turns into a reply: `ENOSPC`/`EDQUOT` → `NoSpace` (452),
//! `ENAMETOOLONG` → `InvalidName`, `EROFS` → `PermissionDenied`, and so on.
//!
//! One function, used by every storage operation and by the transfer code. It decides no
//! reply itself (that is the core's) and nothing by an error's message (which only travels on
//! in `StorageError::Other`).

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
    use crate::storage::testing::{assert_errors, setup, vp};
    use crate::storage::Storage;
    use std::fs;
    use wharf_core::StorageError::*;
    use wharf_core::StoreMode::Create;
    use wharf_core::VirtualPath;

    #[test]
    fn errno_values_and_kinds_map_to_their_errors() {
        let cases = [
            (2, NotFound),
            (13, PermissionDenied),
            (17, AlreadyExists),
            (20, NotADirectory),
            (21, IsADirectory),
            (22, InvalidName),
            (28, NoSpace),
            (30, PermissionDenied),
            (36, InvalidName),
            (39, DirectoryNotEmpty),
            (40, PermissionDenied),
            (84, InvalidName),
            (122, NoSpace),
        ];
        for (errno, want) in cases {
            let got = map_io_error(&io::Error::from_raw_os_error(errno));
            assert_eq!(got, want, "errno {errno}");
        }
        let other = map_io_error(&io::Error::other("the disk caught fire"));
        assert_eq!(other, Other("the disk caught fire".into()));
    }

    #[test]
    fn errors_map_to_storage_errors() {
        let (t, fs) = setup("errors");
        assert_errors([
            (fs.stat(&vp("/nope")).err(), NotFound),
            (fs.mkdir(&vp("/sub"), None).err(), AlreadyExists),
            (fs.mkdir(&vp("/no/such"), None).err(), NotFound),
        ]);
        let root = t.0.join("root");
        fs::write(root.join("sub/x"), b"").unwrap();
        let long = "n".repeat(300);
        assert_errors([
            (fs.rmdir(&vp("/sub")).err(), DirectoryNotEmpty),
            (fs.rmdir(&vp("/a.txt")).err(), NotADirectory),
            (fs.delete(&vp("/sub")).err(), IsADirectory),
            (fs.open_read(&vp("/sub"), 0).err(), IsADirectory),
            (fs.open_write(&vp("/a.txt/x"), Create).err(), NotADirectory),
            (fs.mkdir(&vp(&format!("/{long}")), None).err(), InvalidName),
            (fs.delete(&VirtualPath::root()).err(), PermissionDenied),
        ]);
        fs.rename(&vp("/a.txt"), &vp("/sub/b.txt")).unwrap();
        assert!(root.join("sub/b.txt").exists());
        fs.delete(&vp("/sub/b.txt")).unwrap();
        fs.delete(&vp("/sub/x")).unwrap();
        fs.rmdir(&vp("/sub")).unwrap();
        assert!(!root.join("sub").exists());
    }
}
