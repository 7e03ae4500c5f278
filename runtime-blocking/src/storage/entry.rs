//! An entry as the core is told of it: the [`FileInfo`] of a file or folder from its
//! metadata, and times as [`UnixTime`] (also the wall clock, [`unix_now`], which the runtime
//! hands the core: the core never reads a clock).
//!
//! Owner, group and mode as listed are not decided here (see [`ownership`](super::ownership));
//! this module only converts what the file system says, and does no I/O of its own.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::SystemTime;
use wharf_core::{FileInfo, FileKind, UnixTime};

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
