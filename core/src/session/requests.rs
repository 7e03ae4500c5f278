//! What a command waits with while the runtime answers: the operation a checked command will
//! do, the direction of a transfer, a checksum or a listing asked for. The session's parts
//! (files, list, data, checksum) share these; the code that acts on them is in those files.

use crate::action::{ChecksumAlgorithm, StoreMode};
use crate::listing::FileInfo;
use crate::path::VirtualPath;
use crate::time::UnixTime;

/// What a checked command will do once its metadata is in.
#[derive(Debug)]
pub(super) enum Op {
    Cwd,
    Retr { offset: u64 },
    Store { mode: StoreMode },
    Mkd,
    Rmd,
    Dele,
    Rnfr,
    Rnto { from: VirtualPath },
    Chmod { mode: u32 },
    SetTime { time: UnixTime },
    Checksum(Box<ChecksumRequest>),
    Size,
    Mdtm,
    Mlst,
    List(Box<ListRequest>),
}

/// Which way a file moves, for the events after the transfer; or a checksum, which the
/// session runs like a transfer without a data connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Direction {
    Download,
    Upload,
    Listing,
    Checksum,
}

/// Which command asked, for the reply's form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ChecksumForm {
    /// HASH: `213 <algorithm> <start>-<end> <hex> <path>`, the end included.
    Hash,
    /// XCRC and its kin: `250 <hex>`.
    X,
}

/// A checksum the session waits for.
#[derive(Debug)]
pub(super) struct ChecksumRequest {
    pub(super) form: ChecksumForm,
    pub(super) algorithm: ChecksumAlgorithm,
    pub(super) start: u64,
    /// The end of the range, excluded.
    pub(super) end: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ListKind {
    List,
    Nlst,
    Mlsd,
    /// STAT with a path: an `ls -l` listing on the control connection.
    Stat,
}

#[derive(Debug)]
pub(super) struct ListRequest {
    pub(super) kind: ListKind,
    /// The path as resolved (a directory or a file, or the directory of a glob).
    pub(super) target: VirtualPath,
    /// A glob on the last component, if any.
    pub(super) pattern: Option<String>,
    /// Set when the target turned out to be a file: list its directory, keeping only this
    /// name (so that the date column is judged against the wall clock like any listing).
    pub(super) exact: Option<String>,
    /// For NLST of a glob: the directory part as the client wrote it, prefixed to each name.
    pub(super) prefix: String,
    /// Metadata of the listed directory (for MLSD's `cdir` entry and the `perm` facts).
    pub(super) dir: Option<FileInfo>,
}
