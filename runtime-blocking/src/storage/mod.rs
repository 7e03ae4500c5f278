//! Storage: what a session's file commands do to a file system. The [`Storage`] trait is the
//! runtime's file-system boundary — what the driver and the transfer code call — and
//! [`LocalFs`] its implementation on the local file system, confined to one user's root.
//!
//! Paths arrive as [`VirtualPath`]s, already normalised by the core; an implementation keeps
//! every operation inside the user's root, whatever the real tree holds. Errors are
//! [`StorageError`]s, which the core turns into replies: the storage decides no reply.
//!
//! # Module map
//! Each file owns one concern, and says in its own documentation what it must not do.
//! - this file: the [`Storage`] trait; it holds no implementation.
//! - [`local`]: [`LocalFs`], the parts below put together, and the plain file operations; no
//!   rule of its own.
//! - [`confine`]: virtual path → real path inside the root (symlinks, reserved names, names
//!   that are not UTF-8); creates and changes nothing.
//! - [`ownership`]: owner, group and mode of entries (fixed folders, records, the tree's
//!   defaults), and the records kept in step with what users do; works on checked real paths.
//! - [`records`]: the ownership records' sidecar beside the data (appends, compaction, the
//!   process-wide cache); knows nothing of FTP paths or users.
//! - [`uploads`]: atomic uploads (partial files, the exchange into place, STOU names, freeing
//!   what an upload replaced); adds no system call to the upload path.
//! - [`provision`]: partners' folders made where missing, leftovers of a stopped server swept
//!   at start; never touches what users made.
//! - [`names`]: the server's reserved names (`.wharf*`) and unique suffixes; touches no file.
//! - [`entry`]: an entry's [`FileInfo`] from its metadata, times as [`UnixTime`].
//! - [`errors`]: `io::Error` (errno) → [`StorageError`]; decides nothing by an error's message.
//!
//! The rest of the runtime names [`Storage`], [`LocalFs`], [`map_io_error`] and the provisioning
//! functions from here (re-exported); [`unix_now`] is re-exported only for the connection code.
//!
//! Design notes and figures: docs/transfers.md (atomic uploads, putting files in place),
//! docs/partners.md (owner records).

use std::fs::File;
use std::io::{self, Read};
use wharf_core::action::Ownership;
use wharf_core::codec::{AsciiEncoder, DataFormat, Encoder};
use wharf_core::{FileInfo, StorageError, StoreMode, UnixTime, VirtualPath};

pub mod confine;
pub mod entry;
pub mod errors;
pub mod local;
pub mod names;
pub mod ownership;
pub mod provision;
pub mod records;
pub mod uploads;

#[cfg(test)]
mod testing;

/// The wall clock as the core wants it; kept at this path for the connection code (its home
/// is [`entry::unix_now`]).
pub use entry::unix_now;
pub use errors::map_io_error;
pub use local::LocalFs;
pub use provision::{make_partner_trees, make_tree, sweep_partials};
pub use uploads::UploadEnd;

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
    /// The upload begun last has ended (see [`UploadEnd`]). Puts the file in place (atomic
    /// uploads), removes what arrived, or keeps it for a restart; an error means the file is
    /// not in place.
    fn finish_upload(&self, _end: UploadEnd) -> Result<(), StorageError> {
        Ok(())
    }
    /// After the reply to an upload: frees what the upload replaced, if
    /// [`Storage::finish_upload`] left that for later.
    fn release_replaced(&self) {}
    /// The size of a file as TYPE A sends it (every bare LF counted as CRLF).
    fn ascii_size(&self, path: &VirtualPath) -> Result<u64, StorageError> {
        let mut enc = AsciiEncoder::new();
        let mut total = 0u64;
        self.read_all(path, &mut |piece| {
            total += enc.encoded_len(piece);
            Ok(())
        })?;
        Ok(total)
    }
    /// The size of a file on the wire in `format` (SIZE in TYPE E): the file through the
    /// encoder, counted. A file the format cannot carry is `StorageError::Other` with why.
    fn encoded_size(&self, path: &VirtualPath, format: DataFormat) -> Result<u64, StorageError> {
        let mut enc = Encoder::new(format, 0, None);
        let mut out = Vec::new();
        let mut total = 0u64;
        let codec = |e: wharf_core::codec::CodecError| StorageError::Other(e.to_string());
        self.read_all(path, &mut |piece| {
            out.clear();
            enc.encode(piece, &mut out).map_err(codec)?;
            total += out.len() as u64;
            Ok(())
        })?;
        out.clear();
        enc.finish(&mut out).map_err(codec)?;
        Ok(total + out.len() as u64)
    }
    /// Reads a whole file, a piece at a time, into `each`.
    fn read_all(
        &self,
        path: &VirtualPath,
        each: &mut dyn FnMut(&[u8]) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let (mut file, _) = self.open_read(path, 0)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match file.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => each(&buf[..n])?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(map_io_error(&e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{setup, vp};
    use super::*;
    use wharf_core::FileKind;

    #[test]
    fn ascii_size_counts_crlf() {
        let (_t, fs) = setup("ascii");
        assert_eq!(fs.ascii_size(&vp("/a.txt")), Ok(7));
        let info = fs.stat(&vp("/a.txt")).unwrap();
        assert_eq!((info.size, info.kind), (6, FileKind::File));
        assert_eq!(fs.stat(&VirtualPath::root()).unwrap().name, "/");
    }
}
