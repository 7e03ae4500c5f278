//! A fake runtime for [`Session`]: an in-memory file system, a user table and a clock that only
//! moves when told, answering every [`ActionKind`] the way [`crate::action`] documents it.
//!
//! It plays the runtime's part in memory, in the spirit of quinn's `Pair` harness: a test feeds
//! bytes with [`Harness::send`] (or [`Harness::command`]), reads the replies, and moves time with
//! [`Harness::advance`], which fires due timeouts through [`Session::poll_timeout`] and
//! [`Session::handle_timeout`]. Every data-channel payload is recorded ([`TransferRecord`]) so a
//! test can assert what a listing or a download sent and what an upload stored.
//!
//! Built for tests (cargo feature `testkit`) and for the fuzz targets (`cfg(fuzzing)`). It does
//! no I/O and reads no clock: the caller gives it a base [`Instant`] and every later instant is
//! that base plus the time advanced. Its memory is bounded: the file system has a capacity (an
//! upload beyond it fails with "no space"), and the records of replies and transfers keep only
//! the most recent ones. A loop that drains the session is bounded too: a session that does not
//! go quiet within [`MAX_STEPS`] outputs (plus a few per input byte) makes the kit panic, which
//! is a test failure rather than a hang.
//!
//! What the fake runtime does, action by action:
//! - `Authenticate`: the user table (name → password, write flag); `anonymous` and `ftp` log in
//!   read-only with any password when anonymous login is on. [`Harness::set_users_unavailable`]
//!   makes the user store fail.
//! - `Stat`, `ReadDir`, `MakeDir`, `RemoveDir`, `Delete`, `Rename` (replacing, as rename(2)),
//!   `AsciiSize` (through [`AsciiEncoder::encoded_len`]): [`MemFs`].
//! - `ListenPassive`: a port from 50000 upwards; [`Harness::fail_next_passive`] refuses one.
//!   `ClosePassive` forgets the listener.
//! - `EncodedSize`: the file through the codec's encoder, counted.
//! - `Transfer`: Retrieve streams the file from its offset through the codec's encoder (in
//!   its type, structure and mode, restart markers included), Store takes the bytes queued
//!   with [`Harness::queue_upload`] through the decoder (reporting each restart marker with
//!   `TransferMark`) with Create/Append/Resume/Unique semantics, Listing sends the core's
//!   bytes the same way. Transfers and checksums (`Checksum`: a stand-in value) complete at
//!   once unless held ([`Harness::hold_next_transfer`]): a held one runs until
//!   [`Harness::finish_transfer`] or ABOR. [`Harness::fail_next_data`] breaks the next data
//!   connection. `AbortTransfer` ends the running transfer with [`TransferError::Aborted`].
//! - `StartTls` succeeds at once (no client identity); `StopTls` is noted;
//!   `AuthenticateCertificate` logs in any user of the table.
//!
//! API misuse by the session that a real runtime would trip over (a transfer while another
//! runs, a passive transfer with no listener, an outcome-less action the kit cannot place) is
//! recorded in [`Harness::anomalies`]; fuzz targets and properties assert there is none.

use crate::action::{
    Account, Action, ActionId, ActionKind, AdminInfo, AdminQuery, ChecksumValue, DataEndpoint,
    Event, EventKind, LoginCounts, LoginError, Lost, Outcome, OutcomeKind, Ownership, ServerStats,
    SessionSummary, StorageError, StoreMode, TlsInfo, TransferError, TransferKind, TransferPlan,
    UserSummary,
};
use crate::codec::{AsciiEncoder, CodecError, DataFormat, Decoder, Encoder};
use crate::config::Config;
use crate::listing::{FileInfo, FileKind};
use crate::path::VirtualPath;
use crate::policy::Cidr;
use crate::reply::Reply;
use crate::session::{Output, Session};
use crate::time::{Civil, UnixTime};
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Outputs a single drain of the session may produce (plus four per input byte) before the kit
/// declares it stuck and panics.
pub const MAX_STEPS: usize = 10_000;
/// Replies kept for the test to read; older ones are dropped (and counted).
pub const MAX_RECORDED_REPLIES: usize = 10_000;
/// Transfers kept in [`Harness::transfers`].
pub const MAX_RECORDED_TRANSFERS: usize = 64;
/// Default capacity of a [`MemFs`], in bytes of file contents.
pub const DEFAULT_CAPACITY: u64 = 64 << 20;
/// Most entries (files and directories) a [`MemFs`] holds.
pub const MAX_ENTRIES: usize = 100_000;
/// Events kept in [`Harness::events`].
pub const MAX_RECORDED_EVENTS: usize = 1_000;
/// The first port [`ActionKind::ListenPassive`] answers with.
pub const FIRST_PASSIVE_PORT: u16 = 50_000;

/// 2026-03-01 12:00:00 UTC, the wall-clock time a harness starts at unless told otherwise.
pub fn default_wall_clock() -> UnixTime {
    UnixTime::from_civil(Civil {
        year: 2026,
        month: 3,
        day: 1,
        hour: 12,
        minute: 0,
        second: 0,
    })
}

/// `len` bytes of reproducible pseudo-random content (xorshift64*), for test files.
pub fn seeded_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    if x == 0 {
        x = 1;
    }
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        let take = (len - out.len()).min(8);
        out.extend_from_slice(&v[..take]);
    }
    out
}

/// Checks that a reply is well-formed on the wire: CRLF-terminated lines without stray CR or
/// LF; a one-line reply is `NNN text`; a multi-line reply is `NNN-first`, then lines that are
/// `NNN-...` with the same code, then `NNN last`. The one exception is the body of FEAT (211)
/// and MLST (250) replies, whose lines begin with a single space (RFC 2389, RFC 3659 §7.2).
pub fn check_reply(reply: &Reply) -> Result<(), String> {
    let text = reply.as_str();
    if text.is_empty() {
        return Err("empty reply".into());
    }
    let Some(body) = text.strip_suffix("\r\n") else {
        return Err(format!("reply does not end with CRLF: {text:?}"));
    };
    let code = format!("{:03}", reply.code());
    let lines: Vec<&str> = body.split("\r\n").collect();
    for line in &lines {
        if line.contains(['\r', '\n']) {
            return Err(format!("bare CR or LF inside a reply line: {text:?}"));
        }
    }
    let starts = |line: &str, sep: char| {
        line.len() >= 4 && line.starts_with(code.as_str()) && line[3..].starts_with(sep)
    };
    let n = lines.len();
    if n == 1 {
        return if starts(lines[0], ' ') {
            Ok(())
        } else {
            Err(format!("one-line reply is not `{code} text`: {text:?}"))
        };
    }
    if !starts(lines[0], '-') {
        return Err(format!(
            "multi-line reply does not begin `{code}-`: {text:?}"
        ));
    }
    if !starts(lines[n - 1], ' ') {
        return Err(format!("multi-line reply does not end `{code} `: {text:?}"));
    }
    let body_allowed = matches!(reply.code(), 211 | 250);
    for line in &lines[1..n - 1] {
        let ok = starts(line, '-') || (body_allowed && line.starts_with(' '));
        if !ok {
            return Err(format!(
                "reply line {line:?} is neither `{code}-...` nor a body line: {text:?}"
            ));
        }
    }
    Ok(())
}

// ----- the in-memory file system ------------------------------------------------------------

/// What an entry of a [`MemFs`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A directory; its entries are the paths directly below it.
    Dir,
    /// A regular file and its contents.
    File(Vec<u8>),
}

/// One file or directory of a [`MemFs`], with the metadata listings show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// File or directory.
    pub node: Node,
    /// Last modification time.
    pub modified: UnixTime,
    /// Permission bits, e.g. `0o644`.
    pub mode: u32,
    /// Owner name; empty means "the owner of the home": the logged-in user (or `ftp` for
    /// anonymous), as the runtime reports entries it has no recorded owner for.
    pub owner: String,
    /// Group name; empty means the home owner's group, as for `owner`.
    pub group: String,
    /// Inode number, for the MLSD `unique` fact.
    pub ino: u64,
}

/// An in-memory tree of directories and files, keyed by normalised virtual path.
///
/// Setup helpers ([`MemFs::mkdir_all`], [`MemFs::write_file`]) take `&str` paths and resolve
/// them from `/`; operations the session asks for go through [`MemFs::stat`] and friends with
/// the semantics the runtime's storage has (a parent must exist, a directory must be empty to
/// be removed, a rename replaces a file...). New entries get the time of [`MemFs::set_clock`].
#[derive(Clone, Debug)]
pub struct MemFs {
    entries: BTreeMap<String, Entry>,
    bytes: u64,
    capacity: u64,
    next_ino: u64,
    clock: UnixTime,
    home_owner: (String, String),
}

impl Default for MemFs {
    fn default() -> MemFs {
        MemFs::new()
    }
}

fn key(path: &str) -> String {
    match VirtualPath::resolve(&VirtualPath::root(), path) {
        Ok(p) => p.as_str().to_owned(),
        Err(_) => "/".to_owned(),
    }
}

fn parent_key(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

fn name_of(path: &str) -> &str {
    if path == "/" {
        return "/";
    }
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// Whether `path` lies strictly inside directory `dir`.
fn is_below(path: &str, dir: &str) -> bool {
    if dir == "/" {
        return path != "/";
    }
    path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/'
}

impl MemFs {
    /// An empty file system: just `/`, with the default capacity.
    pub fn new() -> MemFs {
        MemFs::with_capacity(DEFAULT_CAPACITY)
    }

    /// An empty file system holding at most `capacity` bytes of file contents.
    pub fn with_capacity(capacity: u64) -> MemFs {
        let mut fs = MemFs {
            entries: BTreeMap::new(),
            bytes: 0,
            capacity,
            next_ino: 2,
            clock: default_wall_clock(),
            home_owner: ("ftp".into(), "ftp".into()),
        };
        let root = fs.new_entry(Node::Dir);
        fs.entries.insert("/".into(), root);
        fs
    }

    /// The modification time given to entries created or changed from now on.
    pub fn set_clock(&mut self, now: UnixTime) {
        self.clock = now;
    }

    /// Bytes of file contents held.
    pub fn total_bytes(&self) -> u64 {
        self.bytes
    }

    /// Every path held, in order (`/` first).
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The entry at `path`, if any.
    pub fn entry(&self, path: &str) -> Option<&Entry> {
        self.entries.get(&key(path))
    }

    /// The entry at `path`, to change its metadata (mode, owner, time).
    pub fn entry_mut(&mut self, path: &str) -> Option<&mut Entry> {
        self.entries.get_mut(&key(path))
    }

    /// The contents of the file at `path`, if it is a file.
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        match &self.entry(path)?.node {
            Node::File(data) => Some(data),
            Node::Dir => None,
        }
    }

    /// Whether `path` is a directory.
    pub fn is_dir(&self, path: &str) -> bool {
        matches!(
            self.entry(path),
            Some(Entry {
                node: Node::Dir,
                ..
            })
        )
    }

    /// Whether anything is at `path`.
    pub fn exists(&self, path: &str) -> bool {
        self.entry(path).is_some()
    }

    /// Creates the directory `path` and any missing parents (setup helper).
    pub fn mkdir_all(&mut self, path: &str) -> Result<(), StorageError> {
        let path = key(path);
        let mut cur = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            cur.push('/');
            cur.push_str(part);
            match self.entries.get(&cur) {
                Some(Entry {
                    node: Node::Dir, ..
                }) => {}
                Some(_) => return Err(StorageError::NotADirectory),
                None => {
                    self.check_room_for_entry()?;
                    let e = self.new_entry(Node::Dir);
                    self.entries.insert(cur.clone(), e);
                }
            }
        }
        Ok(())
    }

    /// Creates or replaces the file `path` with `contents`, creating missing parents (setup
    /// helper).
    pub fn write_file(
        &mut self,
        path: &str,
        contents: impl Into<Vec<u8>>,
    ) -> Result<(), StorageError> {
        let path = key(path);
        if path == "/" {
            return Err(StorageError::IsADirectory);
        }
        self.mkdir_all(parent_key(&path))?;
        self.put_file(&path, contents.into())
    }

    fn new_entry(&mut self, node: Node) -> Entry {
        let ino = self.next_ino;
        self.next_ino += 1;
        let mode = match node {
            Node::Dir => 0o755,
            Node::File(_) => 0o644,
        };
        Entry {
            node,
            modified: self.clock,
            mode,
            owner: String::new(),
            group: String::new(),
            ino,
        }
    }

    fn check_room_for_entry(&self) -> Result<(), StorageError> {
        if self.entries.len() >= MAX_ENTRIES {
            Err(StorageError::NoSpace)
        } else {
            Ok(())
        }
    }

    /// The directory that would hold `path`: it must exist and be a directory.
    fn check_parent(&self, path: &str) -> Result<(), StorageError> {
        match self.entries.get(parent_key(path)) {
            Some(Entry {
                node: Node::Dir, ..
            }) => Ok(()),
            Some(_) => Err(StorageError::NotADirectory),
            None => Err(StorageError::NotFound),
        }
    }

    /// Stores `data` as the file at `path` (parent checked by the caller), keeping its inode
    /// and mode if it existed.
    fn put_file(&mut self, path: &str, data: Vec<u8>) -> Result<(), StorageError> {
        let old = match self.entries.get(path) {
            Some(Entry {
                node: Node::Dir, ..
            }) => return Err(StorageError::IsADirectory),
            Some(Entry {
                node: Node::File(d),
                ..
            }) => d.len() as u64,
            None => {
                self.check_room_for_entry()?;
                0
            }
        };
        let new = data.len() as u64;
        if self.bytes - old + new > self.capacity {
            return Err(StorageError::NoSpace);
        }
        self.bytes = self.bytes - old + new;
        let clock = self.clock;
        match self.entries.get_mut(path) {
            Some(e) => {
                e.node = Node::File(data);
                e.modified = clock;
            }
            None => {
                let e = self.new_entry(Node::File(data));
                self.entries.insert(path.to_owned(), e);
            }
        }
        Ok(())
    }

    /// Who entries without a recorded owner belong to (the harness sets it at login).
    pub fn set_home_owner(&mut self, owner: &str, group: &str) {
        self.home_owner = (owner.to_owned(), group.to_owned());
    }

    /// Records the owner, group and mode of an entry the session created.
    fn set_ownership(&mut self, path: &str, o: &Ownership) {
        if let Some(e) = self.entries.get_mut(path) {
            e.owner = o.owner.clone();
            e.group = o.group.clone();
            e.mode = o.mode;
        }
    }

    /// Changes the mode of an entry ([`ActionKind::SetMode`]).
    pub fn set_mode(&mut self, path: &str, mode: u32) -> Result<(), StorageError> {
        let e = self
            .entries
            .get_mut(&key(path))
            .ok_or(StorageError::NotFound)?;
        e.mode = mode;
        Ok(())
    }

    /// Sets the modification time of an entry ([`ActionKind::SetModified`]).
    pub fn set_modified(&mut self, path: &str, time: UnixTime) -> Result<(), StorageError> {
        let e = self
            .entries
            .get_mut(&key(path))
            .ok_or(StorageError::NotFound)?;
        e.modified = time;
        Ok(())
    }

    fn info(&self, path: &str, e: &Entry) -> FileInfo {
        let (kind, size, nlink) = match &e.node {
            Node::Dir => (FileKind::Dir, 4096, 2),
            Node::File(d) => (FileKind::File, d.len() as u64, 1),
        };
        let mut info = FileInfo::new(name_of(path), kind);
        info.size = size;
        info.modified = e.modified;
        info.mode = e.mode;
        info.owner = if e.owner.is_empty() {
            self.home_owner.0.clone()
        } else {
            e.owner.clone()
        };
        info.group = if e.group.is_empty() {
            self.home_owner.1.clone()
        } else {
            e.group.clone()
        };
        info.nlink = nlink;
        info.unique = Some((0x801, e.ino));
        info
    }

    /// Metadata of `path` ([`ActionKind::Stat`]).
    pub fn stat(&self, path: &str) -> Result<FileInfo, StorageError> {
        let e = self.entries.get(path).ok_or(StorageError::NotFound)?;
        Ok(self.info(path, e))
    }

    fn children(&self, dir: &str) -> impl Iterator<Item = (&String, &Entry)> {
        let prefix = if dir == "/" {
            "/".to_owned()
        } else {
            format!("{dir}/")
        };
        let plen = prefix.len();
        self.entries
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .filter(move |(k, _)| k.len() > plen && !k[plen..].contains('/'))
    }

    /// The entries of directory `path` ([`ActionKind::ReadDir`]).
    pub fn read_dir(&self, path: &str) -> Result<Vec<FileInfo>, StorageError> {
        match self.entries.get(path) {
            None => return Err(StorageError::NotFound),
            Some(Entry {
                node: Node::File(_),
                ..
            }) => return Err(StorageError::NotADirectory),
            Some(_) => {}
        }
        Ok(self.children(path).map(|(k, e)| self.info(k, e)).collect())
    }

    /// Creates one directory whose parent exists ([`ActionKind::MakeDir`]).
    pub fn make_dir(&mut self, path: &str) -> Result<(), StorageError> {
        if self.entries.contains_key(path) {
            return Err(StorageError::AlreadyExists);
        }
        self.check_parent(path)?;
        self.check_room_for_entry()?;
        let e = self.new_entry(Node::Dir);
        self.entries.insert(path.to_owned(), e);
        Ok(())
    }

    /// Removes an empty directory ([`ActionKind::RemoveDir`]).
    pub fn remove_dir(&mut self, path: &str) -> Result<(), StorageError> {
        match self.entries.get(path) {
            None => return Err(StorageError::NotFound),
            Some(Entry {
                node: Node::File(_),
                ..
            }) => return Err(StorageError::NotADirectory),
            Some(_) if path == "/" => return Err(StorageError::PermissionDenied),
            Some(_) => {}
        }
        if self.children(path).next().is_some() {
            return Err(StorageError::DirectoryNotEmpty);
        }
        self.entries.remove(path);
        Ok(())
    }

    /// Deletes a file ([`ActionKind::Delete`]).
    pub fn delete(&mut self, path: &str) -> Result<(), StorageError> {
        match self.entries.get(path) {
            None => Err(StorageError::NotFound),
            Some(Entry {
                node: Node::Dir, ..
            }) => Err(StorageError::IsADirectory),
            Some(Entry {
                node: Node::File(d),
                ..
            }) => {
                self.bytes -= d.len() as u64;
                self.entries.remove(path);
                Ok(())
            }
        }
    }

    /// Renames a file or directory as rename(2) does ([`ActionKind::Rename`]): an existing
    /// file at `to` is replaced, an empty directory at `to` is replaced by a directory, and a
    /// directory cannot move inside itself.
    pub fn rename(&mut self, from: &str, to: &str) -> Result<(), StorageError> {
        let src_dir = match self.entries.get(from) {
            None => return Err(StorageError::NotFound),
            Some(e) => matches!(e.node, Node::Dir),
        };
        if from == "/" || to == "/" {
            return Err(StorageError::PermissionDenied);
        }
        self.check_parent(to)?;
        if from == to {
            return Ok(());
        }
        if src_dir && is_below(to, from) {
            return Err(StorageError::InvalidName);
        }
        if let Some(dst) = self.entries.get(to) {
            match (src_dir, matches!(dst.node, Node::Dir)) {
                (false, false) => {}
                (false, true) => return Err(StorageError::IsADirectory),
                (true, false) => return Err(StorageError::NotADirectory),
                (true, true) => {
                    if self.children(to).next().is_some() {
                        return Err(StorageError::DirectoryNotEmpty);
                    }
                }
            }
            if let Some(Entry {
                node: Node::File(d),
                ..
            }) = self.entries.remove(to)
            {
                self.bytes -= d.len() as u64;
            }
        }
        let moved: Vec<String> = self
            .entries
            .keys()
            .filter(|k| k.as_str() == from || is_below(k, from))
            .cloned()
            .collect();
        for k in moved {
            if let Some(e) = self.entries.remove(&k) {
                let new_key = format!("{to}{}", &k[from.len()..]);
                self.entries.insert(new_key, e);
            }
        }
        Ok(())
    }

    /// A stand-in checksum of a file's bytes from `start` to `end` ([`ActionKind::Checksum`]):
    /// the CRC-32 of those bytes in hexadecimal, whatever the algorithm (the runtime computes
    /// the real ones; the test kit checks the session's side: ranges, replies, aborts).
    pub fn checksum(
        &self,
        path: &str,
        start: u64,
        end: Option<u64>,
    ) -> Result<ChecksumValue, StorageError> {
        match self.entries.get(path) {
            None => Err(StorageError::NotFound),
            Some(Entry {
                node: Node::Dir, ..
            }) => Err(StorageError::IsADirectory),
            Some(Entry {
                node: Node::File(d),
                ..
            }) => {
                let len = d.len() as u64;
                let end = end.unwrap_or(len).min(len);
                let start = start.min(end);
                let bytes = &d[start as usize..end as usize];
                Ok(ChecksumValue {
                    hex: format!("{:08x}", crc32(bytes)),
                    start,
                    end,
                })
            }
        }
    }

    /// The size of a file on the wire in `format` ([`ActionKind::EncodedSize`]).
    pub fn encoded_size(&self, path: &str, format: DataFormat) -> Result<u64, StorageError> {
        match self.entries.get(path) {
            None => Err(StorageError::NotFound),
            Some(Entry {
                node: Node::Dir, ..
            }) => Err(StorageError::IsADirectory),
            Some(Entry {
                node: Node::File(d),
                ..
            }) => match encode(d, format, 0, None) {
                (wire, None) => Ok(wire.len() as u64),
                (_, Some(e)) => Err(StorageError::Other(e.to_string())),
            },
        }
    }

    /// The TYPE A size of a file ([`ActionKind::AsciiSize`]), counted in chunks as a runtime
    /// streaming the file would.
    pub fn ascii_size(&self, path: &str) -> Result<u64, StorageError> {
        match self.entries.get(path) {
            None => Err(StorageError::NotFound),
            Some(Entry {
                node: Node::Dir, ..
            }) => Err(StorageError::IsADirectory),
            Some(Entry {
                node: Node::File(d),
                ..
            }) => {
                let mut enc = AsciiEncoder::new();
                Ok(d.chunks(4096).map(|c| enc.encoded_len(c)).sum())
            }
        }
    }
}

// ----- the harness --------------------------------------------------------------------------

/// How the next data connection fails ([`Harness::fail_next_data`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataFailure {
    /// The data connection cannot be opened (the client never connects): reply 425.
    Connect(String),
    /// The data connection breaks after the transfer started, half-way: reply 426.
    Lost(String),
    /// All of an upload arrives, but the file cannot be put in place (as an atomic upload
    /// whose rename fails): the file is not changed, reply 451.
    NotPlaced(String),
}

/// What a recorded transfer moved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// RETR of a file from an offset.
    Retrieve {
        /// The file.
        path: VirtualPath,
        /// The REST offset.
        offset: u64,
    },
    /// STOR, APPE or STOU.
    Store {
        /// The file asked for (for STOU: the name to start from).
        path: VirtualPath,
        /// How it was opened.
        mode: StoreMode,
    },
    /// LIST, NLST or MLSD.
    Listing,
}

/// One transfer as the fake runtime saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferRecord {
    /// The id of the [`ActionKind::Transfer`].
    pub id: ActionId,
    /// What moved.
    pub kind: RecordKind,
    /// Where the data connection came from.
    pub endpoint: DataEndpoint,
    /// Type, structure and mode.
    pub format: DataFormat,
    /// The bytes on the data connection: sent for retrieve and listing, received for store.
    pub data: Vec<u8>,
    /// For a store, the path actually written (STOU picks a free name).
    pub stored_as: Option<VirtualPath>,
    /// How it ended; `None` while it runs.
    pub result: Option<Result<(), TransferError>>,
    /// The plan's rate limit, bytes per second.
    pub rate_limit: Option<u64>,
    /// The plan's data protection.
    pub protection: crate::action::DataProtection,
}

#[derive(Debug)]
enum Prepared {
    /// Bytes to send (already encoded for the wire), and the codec's error if encoding
    /// stopped part-way (the transfer then fails after sending what came before it).
    Send(Vec<u8>, Option<CodecError>),
    /// An upload into `path`, whose contents before the upload are `base`.
    Receive { path: String, base: Vec<u8> },
}

#[derive(Debug)]
struct Running {
    /// Index in `transfers` is not stable (records are dropped); keep the id.
    id: ActionId,
    prepared: Prepared,
    lost: Option<String>,
    not_placed: Option<String>,
}

#[derive(Clone, Debug)]
struct UserEntry {
    password: String,
    account: Account,
}

/// The passive listener the session has open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    /// The local address it listens on.
    pub ip: IpAddr,
    /// The client's address, which it accepts a data connection from...
    pub peer: IpAddr,
    /// ...and the servers it also accepts one from (third-party transfers).
    pub fxp_peers: Vec<Cidr>,
    /// The port.
    pub port: u16,
}

/// Sets up a [`Harness`]: configuration, addresses, users, files, wall clock.
#[derive(Clone, Debug)]
pub struct HarnessBuilder {
    config: Config,
    peer: SocketAddr,
    local: SocketAddr,
    fs: MemFs,
    users: BTreeMap<String, UserEntry>,
    anonymous: bool,
    wall: UnixTime,
    implicit_tls: bool,
}

impl Default for HarnessBuilder {
    fn default() -> HarnessBuilder {
        HarnessBuilder {
            config: Config::default(),
            peer: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40_000),
            local: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 2121),
            fs: MemFs::new(),
            users: BTreeMap::new(),
            anonymous: false,
            wall: default_wall_clock(),
            implicit_tls: false,
        }
    }
}

impl HarnessBuilder {
    /// Starts the session as on an implicit-TLS listener, the handshake done before the
    /// greeting ([`Session::new_implicit_tls`], no client identity).
    pub fn implicit_tls(mut self) -> HarnessBuilder {
        self.implicit_tls = true;
        self
    }

    /// Changes the session's configuration.
    pub fn config(mut self, f: impl FnOnce(&mut Config)) -> HarnessBuilder {
        f(&mut self.config);
        self
    }

    /// The client's address (default `127.0.0.1:40000`).
    pub fn peer(mut self, peer: SocketAddr) -> HarnessBuilder {
        self.peer = peer;
        self
    }

    /// The server's address of the control connection (default `127.0.0.1:2121`).
    pub fn local(mut self, local: SocketAddr) -> HarnessBuilder {
        self.local = local;
        self
    }

    /// Adds a user; `write` lets them change files.
    pub fn user(self, name: &str, password: &str, write: bool) -> HarnessBuilder {
        let mut account = Account::new(name);
        account.write = write;
        self.user_account(password, account)
    }

    /// Adds a user described in full (partner, limits, fixed folders...); logs in by
    /// `account.name`.
    pub fn user_account(mut self, password: &str, account: Account) -> HarnessBuilder {
        self.users.insert(
            account.name.clone(),
            UserEntry {
                password: password.to_owned(),
                account,
            },
        );
        self
    }

    /// Lets `anonymous` and `ftp` log in, read-only.
    pub fn anonymous(mut self) -> HarnessBuilder {
        self.anonymous = true;
        self
    }

    /// The wall-clock time at the start (default [`default_wall_clock`]).
    pub fn wall_clock(mut self, t: UnixTime) -> HarnessBuilder {
        self.wall = t;
        self.fs.set_clock(t);
        self
    }

    /// The file system to start with (its clock is set to the wall clock).
    pub fn fs(mut self, fs: MemFs) -> HarnessBuilder {
        self.fs = fs;
        self.fs.set_clock(self.wall);
        self
    }

    /// Changes the file system in place.
    pub fn files(mut self, f: impl FnOnce(&mut MemFs)) -> HarnessBuilder {
        self.fs.set_clock(self.wall);
        f(&mut self.fs);
        self
    }

    /// The configuration the session will get.
    pub fn config_ref(&self) -> &Config {
        &self.config
    }

    /// Creates the session at instant `base` (the kit never reads a clock) and collects its
    /// greeting.
    pub fn start(self, base: Instant) -> Harness {
        let config = Arc::new(self.config);
        let session = if self.implicit_tls {
            let info = TlsInfo::new(None);
            Session::new_implicit_tls(Arc::clone(&config), self.peer, self.local, base, info)
        } else {
            Session::new(Arc::clone(&config), self.peer, self.local, base)
        };
        let mut h = Harness {
            session,
            config,
            fs: self.fs,
            users: self.users,
            anonymous: self.anonymous,
            users_unavailable: None,
            base,
            elapsed: Duration::ZERO,
            wall_base: self.wall,
            replies: VecDeque::new(),
            dropped_replies: 0,
            closed: false,
            uploads: VecDeque::new(),
            transfers: VecDeque::new(),
            next_port: FIRST_PASSIVE_PORT,
            listener: None,
            last_listener: None,
            fail_passive: None,
            fail_data: None,
            hold_next: false,
            hold_all: false,
            held_checksum: None,
            running: None,
            tls_stops: 0,
            anomalies: Vec::new(),
            events: VecDeque::new(),
            logins_held: 0,
            other_sessions: LoginCounts::default(),
            login_wall: None,
            client_identity: None,
            stats: ServerStats::default(),
        };
        h.drive(0);
        h
    }
}

/// A [`Session`] driven by a fake runtime. See the [module documentation](self).
#[derive(Debug)]
pub struct Harness {
    session: Session,
    config: Arc<Config>,
    /// The file system the session's actions work on; tests may read and change it.
    pub fs: MemFs,
    users: BTreeMap<String, UserEntry>,
    anonymous: bool,
    users_unavailable: Option<String>,
    base: Instant,
    elapsed: Duration,
    wall_base: UnixTime,
    replies: VecDeque<Reply>,
    dropped_replies: u64,
    closed: bool,
    uploads: VecDeque<Vec<u8>>,
    transfers: VecDeque<TransferRecord>,
    next_port: u16,
    listener: Option<Listener>,
    last_listener: Option<Listener>,
    fail_passive: Option<String>,
    fail_data: Option<DataFailure>,
    hold_next: bool,
    hold_all: bool,
    running: Option<Running>,
    /// A held checksum: its id and its result, given at [`Harness::finish_transfer`].
    held_checksum: Option<(ActionId, Result<ChecksumValue, TransferError>)>,
    tls_stops: u32,
    anomalies: Vec<String>,
    events: VecDeque<Event>,
    logins_held: u32,
    other_sessions: LoginCounts,
    login_wall: Option<UnixTime>,
    client_identity: Option<String>,
    /// Counters for SITE STAT, kept from the events as a runtime would.
    stats: ServerStats,
}

impl Harness {
    /// A builder with the defaults: `Config::default()`, client `127.0.0.1:40000`, server
    /// `127.0.0.1:2121`, an empty file system, no users.
    pub fn builder() -> HarnessBuilder {
        HarnessBuilder::default()
    }

    // ----- driving ----------------------------------------------------------------------------

    /// Feeds bytes from the client and runs the session until it is quiet.
    pub fn send(&mut self, bytes: &[u8]) {
        let now = self.now();
        self.session.handle_input(now, bytes);
        self.drive(bytes.len());
    }

    /// Sends `line` plus CRLF and returns the replies that came back (all of them, including
    /// any still queued from before).
    pub fn command(&mut self, line: &str) -> Vec<Reply> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.send(&bytes);
        self.take_replies()
    }

    /// Sends `line` and returns the replies as one string (CRLFs included).
    pub fn command_text(&mut self, line: &str) -> String {
        self.command(line).iter().map(|r| r.as_str()).collect()
    }

    /// Logs in with USER and PASS; `Err` holds the replies when the login did not succeed at
    /// once (a failure's 530 comes only after the login failure delay).
    pub fn login(&mut self, user: &str, password: &str) -> Result<(), String> {
        let mut replies = self.command(&format!("USER {user}"));
        replies.extend(self.command(&format!("PASS {password}")));
        let text: String = replies.iter().map(|r| r.as_str()).collect();
        match replies.last() {
            Some(r) if r.code() == 230 => Ok(()),
            _ => Err(text),
        }
    }

    /// Moves the fake clock forward by `by`, firing every timeout that falls due on the way.
    pub fn advance(&mut self, by: Duration) {
        let target = self
            .elapsed
            .checked_add(by)
            .expect("testkit: clock overflow");
        for _ in 0..MAX_STEPS {
            let due = match self.session.poll_timeout() {
                Some(t) => t.saturating_duration_since(self.base),
                None => break,
            };
            if due > target {
                break;
            }
            self.elapsed = self.elapsed.max(due);
            let now = self.now();
            self.session.handle_timeout(now);
            self.drive(0);
            if self
                .session
                .poll_timeout()
                .map(|t| t.saturating_duration_since(self.base))
                == Some(due)
                && self.elapsed >= due
            {
                // A timeout that stays due after being handled would spin forever.
                panic!("testkit: handle_timeout at {due:?} left the same timeout due");
            }
        }
        self.elapsed = self.elapsed.max(target);
    }

    /// Runs the session's outputs until it is quiet, answering actions as they come.
    fn drive(&mut self, input_len: usize) {
        let limit = MAX_STEPS.saturating_add(input_len.saturating_mul(4));
        let mut steps = 0usize;
        while let Some(output) = self.session.poll_output() {
            steps += 1;
            if steps > limit {
                panic!(
                    "testkit: the session produced more than {limit} outputs without going quiet"
                );
            }
            match output {
                Output::Reply(r) => self.record_reply(r),
                Output::Close => self.closed = true,
                Output::Action(a) => {
                    for outcome in self.answer(a) {
                        let now = self.now();
                        self.session.handle_outcome(now, outcome);
                    }
                }
            }
        }
    }

    fn feed(&mut self, outcomes: Vec<Outcome>) {
        for outcome in outcomes {
            let now = self.now();
            self.session.handle_outcome(now, outcome);
        }
        self.drive(0);
    }

    fn record_reply(&mut self, r: Reply) {
        if self.replies.len() >= MAX_RECORDED_REPLIES {
            self.replies.pop_front();
            self.dropped_replies += 1;
        }
        self.replies.push_back(r);
    }

    // ----- what the test reads ----------------------------------------------------------------

    /// The replies received since the last call.
    pub fn take_replies(&mut self) -> Vec<Reply> {
        self.replies.drain(..).collect()
    }

    /// Replies dropped because the test did not read them ([`MAX_RECORDED_REPLIES`]).
    pub fn dropped_replies(&self) -> u64 {
        self.dropped_replies
    }

    /// Whether the session asked to close the connection.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The session, to query it.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The session, to drive it by hand (follow with [`Harness::send`] of nothing, or call
    /// `poll_output` yourself).
    pub fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }

    /// The configuration the session runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The fake monotonic clock.
    pub fn now(&self) -> Instant {
        self.base + self.elapsed
    }

    /// Time advanced since the start.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// The fake wall clock: the start time plus the time advanced.
    pub fn wall_now(&self) -> UnixTime {
        let secs = i64::try_from(self.elapsed.as_secs()).unwrap_or(i64::MAX / 2);
        UnixTime(self.wall_base.0.saturating_add(secs))
    }

    /// The recorded transfers, oldest first (at most [`MAX_RECORDED_TRANSFERS`]).
    pub fn transfers(&self) -> impl Iterator<Item = &TransferRecord> {
        self.transfers.iter()
    }

    /// The most recent transfer.
    pub fn last_transfer(&self) -> Option<&TransferRecord> {
        self.transfers.back()
    }

    /// Whether a held transfer is running.
    pub fn transfer_running(&self) -> bool {
        self.running.is_some()
    }

    /// The passive listener currently open, if any.
    pub fn listener(&self) -> Option<&Listener> {
        self.listener.as_ref()
    }

    /// The most recent passive listener opened, even if closed since.
    pub fn last_listener(&self) -> Option<&Listener> {
        self.last_listener.as_ref()
    }

    /// How many times the session asked to end TLS ([`ActionKind::StopTls`]).
    pub fn tls_stops(&self) -> u32 {
        self.tls_stops
    }

    /// Misuses of the runtime API the kit noticed (see the module documentation).
    pub fn anomalies(&self) -> &[String] {
        &self.anomalies
    }

    // ----- what the test sets up ---------------------------------------------------------------

    /// Adds or replaces a user.
    /// Adds a user described in full to a running harness.
    pub fn add_user_account(&mut self, password: &str, account: Account) {
        self.users.insert(
            account.name.clone(),
            UserEntry {
                password: password.to_owned(),
                account,
            },
        );
    }

    /// The events the session has emitted, oldest first (the most recent
    /// [`MAX_RECORDED_EVENTS`]).
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.events.iter()
    }

    /// Takes the recorded events.
    pub fn take_events(&mut self) -> Vec<Event> {
        self.events.drain(..).collect()
    }

    /// Logins the fake runtime counts as held by this session: 1 after a login, back to 0
    /// after [`ActionKind::LoginEnded`]. Anything else is a leak or a double release.
    pub fn logins_held(&self) -> u32 {
        self.logins_held
    }

    /// Pretends other sessions are logged in, for the login limits: these counts are added
    /// to this session's own at login.
    pub fn set_other_sessions(&mut self, counts: LoginCounts) {
        self.other_sessions = counts;
    }

    /// Makes the next TLS handshake report a verified client certificate for `identity`.
    pub fn set_client_identity(&mut self, identity: Option<String>) {
        self.client_identity = identity;
    }

    /// Adds a user to a running harness; `write` lets them change files.
    pub fn add_user(&mut self, name: &str, password: &str, write: bool) {
        let mut account = Account::new(name);
        account.write = write;
        self.add_user_account(password, account);
    }

    /// Turns anonymous login on or off.
    pub fn set_anonymous(&mut self, on: bool) {
        self.anonymous = on;
    }

    /// Makes the user store fail (`Some(reason)`) or work again (`None`).
    pub fn set_users_unavailable(&mut self, reason: Option<String>) {
        self.users_unavailable = reason;
    }

    /// Queues the bytes the client will send on the data connection of the next upload. An
    /// upload with nothing queued receives an empty file.
    pub fn queue_upload(&mut self, bytes: impl Into<Vec<u8>>) {
        self.uploads.push_back(bytes.into());
    }

    /// The next passive listener cannot be opened.
    pub fn fail_next_passive(&mut self, reason: &str) {
        self.fail_passive = Some(reason.to_owned());
    }

    /// The next transfer's data connection fails.
    pub fn fail_next_data(&mut self, failure: DataFailure) {
        self.fail_data = Some(failure);
    }

    /// The next transfer starts and then runs until [`Harness::finish_transfer`] or ABOR.
    pub fn hold_next_transfer(&mut self) {
        self.hold_next = true;
    }

    /// Every transfer from now on is held (or none, with `false`).
    pub fn set_hold_transfers(&mut self, hold: bool) {
        self.hold_all = hold;
    }

    /// Reports progress of the running transfer (for STAT). Returns false if none runs.
    pub fn progress(&mut self, bytes: u64) -> bool {
        let Some(id) = self.running.as_ref().map(|r| r.id) else {
            return false;
        };
        self.feed(vec![Outcome::new(
            id,
            OutcomeKind::TransferProgress { bytes },
        )]);
        true
    }

    /// Completes the running transfer and runs the session until quiet. Returns false if no
    /// transfer was running.
    pub fn finish_transfer(&mut self) -> bool {
        if let Some((id, result)) = self.held_checksum.take() {
            self.feed(vec![Outcome::new(id, OutcomeKind::Checksummed(result))]);
            return true;
        }
        let Some(running) = self.running.take() else {
            return false;
        };
        let outcomes = self.complete(running);
        self.feed(outcomes);
        true
    }

    // ----- the fake runtime ---------------------------------------------------------------------

    fn anomaly(&mut self, what: String) {
        if self.anomalies.len() < 100 {
            self.anomalies.push(what);
        }
    }

    fn answer(&mut self, action: Action) -> Vec<Outcome> {
        let Action { id, kind } = action;
        let wall = self.wall_now();
        self.fs.set_clock(wall);
        let outcome = match kind {
            ActionKind::Authenticate { user, password } => {
                OutcomeKind::Authenticated(self.authenticate(&user, Some(password.expose())))
            }
            ActionKind::AuthenticateCertificate { user } => {
                OutcomeKind::Authenticated(self.authenticate(&user, None))
            }
            ActionKind::Stat { path } => OutcomeKind::Metadata(self.fs.stat(path.as_str())),
            ActionKind::ReadDir { path } => OutcomeKind::Entries {
                result: self.fs.read_dir(path.as_str()),
                now: wall,
            },
            ActionKind::MakeDir { path, ownership } => {
                let r = self.fs.make_dir(path.as_str());
                if r.is_ok() {
                    self.fs.set_ownership(path.as_str(), &ownership);
                }
                OutcomeKind::Done(r)
            }
            ActionKind::SetMode { path, mode } => {
                OutcomeKind::Done(self.fs.set_mode(path.as_str(), mode))
            }
            ActionKind::SetModified { path, time } => {
                OutcomeKind::Done(self.fs.set_modified(path.as_str(), time))
            }
            ActionKind::LoginEnded => {
                if self.logins_held == 0 {
                    self.anomaly("LoginEnded without a login held".into());
                } else {
                    self.logins_held -= 1;
                }
                self.fs.set_home_owner("ftp", "ftp");
                self.login_wall = None;
                return Vec::new();
            }
            ActionKind::Notify(event) => {
                let size = event.size.unwrap_or(0);
                let st = &mut self.stats;
                match event.kind {
                    EventKind::UploadComplete => {
                        st.uploads += 1;
                        st.bytes_up += size;
                    }
                    EventKind::DownloadComplete => {
                        st.downloads += 1;
                        st.bytes_down += size;
                    }
                    EventKind::Delete => st.deletes += 1,
                    EventKind::Mkdir => st.dirs_created += 1,
                    EventKind::Rmdir => st.dirs_removed += 1,
                    EventKind::Login => st.logins_total += 1,
                    _ => {}
                }
                if self.events.len() >= MAX_RECORDED_EVENTS {
                    self.events.pop_front();
                }
                self.events.push_back(event);
                return Vec::new();
            }
            ActionKind::AdminQuery(q) => OutcomeKind::AdminInfo(Ok(self.admin_info(q))),
            ActionKind::RemoveDir { path } => OutcomeKind::Done(self.fs.remove_dir(path.as_str())),
            ActionKind::Delete { path } => OutcomeKind::Done(self.fs.delete(path.as_str())),
            ActionKind::Rename { from, to } => {
                OutcomeKind::Done(self.fs.rename(from.as_str(), to.as_str()))
            }
            ActionKind::AsciiSize { path } => OutcomeKind::Size(self.fs.ascii_size(path.as_str())),
            ActionKind::EncodedSize { path, format } => {
                OutcomeKind::Size(self.fs.encoded_size(path.as_str(), format))
            }
            ActionKind::Checksum {
                path, start, end, ..
            } => {
                let result = self
                    .fs
                    .checksum(path.as_str(), start, end)
                    .map_err(TransferError::Storage);
                // Held like a transfer: it runs until finished or aborted.
                if std::mem::take(&mut self.hold_next) || self.hold_all {
                    self.held_checksum = Some((id, result));
                    return Vec::new();
                }
                OutcomeKind::Checksummed(result)
            }
            ActionKind::ListenPassive {
                ip,
                peer,
                fxp_peers,
            } => OutcomeKind::PassiveListening(self.listen(Listener {
                ip,
                peer,
                fxp_peers,
                port: 0,
            })),
            ActionKind::ClosePassive => {
                self.listener = None;
                return Vec::new();
            }
            ActionKind::Transfer(plan) => return self.start_transfer(id, plan),
            ActionKind::AbortTransfer { transfer } => return self.abort(transfer),
            ActionKind::StartTls => {
                OutcomeKind::TlsEstablished(Ok(TlsInfo::new(self.client_identity.clone())))
            }
            ActionKind::StopTls => {
                self.tls_stops += 1;
                return Vec::new();
            }
        };
        vec![Outcome::new(id, outcome)]
    }

    /// Checks a login as a runtime would, and on success counts it (this session's login plus
    /// [`Harness::set_other_sessions`]) and makes the user the owner of un-owned entries.
    fn authenticate(&mut self, user: &str, password: Option<&str>) -> Result<Account, LoginError> {
        if let Some(reason) = &self.users_unavailable {
            return Err(LoginError::Unavailable(reason.clone()));
        }
        let anonymous_name =
            user.eq_ignore_ascii_case("anonymous") || user.eq_ignore_ascii_case("ftp");
        let mut account = if anonymous_name && self.anonymous {
            Account::anonymous()
        } else {
            match self.users.get(user) {
                Some(u) if password.is_none_or(|p| p == u.password) => u.account.clone(),
                _ => return Err(LoginError::Invalid),
            }
        };
        if self.logins_held != 0 {
            self.anomaly("a second login counted while one is held".into());
        }
        self.logins_held += 1;
        let o = self.other_sessions;
        account.sessions = LoginCounts {
            total: o.total + 1,
            anonymous: o.anonymous + u32::from(account.anonymous),
            from_ip: o.from_ip + 1,
            user: o.user + 1,
            user_from_ip: o.user_from_ip + 1,
        };
        if account.anonymous {
            self.fs.set_home_owner("ftp", "ftp");
        } else {
            self.fs.set_home_owner(&account.user, account.group());
        }
        self.login_wall = Some(self.wall_now());
        Ok(account)
    }

    /// What the fake runtime knows for SITE WHO / STAT / DESCUSER.
    fn admin_info(&self, q: AdminQuery) -> AdminInfo {
        match q {
            AdminQuery::Who => {
                let now = self.wall_now();
                let who = self
                    .session
                    .account()
                    .map(|a| {
                        SessionSummary::new(
                            a.name.clone(),
                            self.session.peer(),
                            self.login_wall.unwrap_or(now),
                            now,
                        )
                    })
                    .into_iter()
                    .collect();
                AdminInfo::Who(who)
            }
            AdminQuery::Stat => AdminInfo::Stat(ServerStats {
                start_time: self.wall_base,
                connections_current: 1,
                connections_total: 1,
                logins_current: u64::from(self.logins_held),
                ..self.stats.clone()
            }),
            AdminQuery::DescribeUser(name) => AdminInfo::User(self.users.get(&name).map(|u| {
                let a = &u.account;
                UserSummary {
                    name: a.name.clone(),
                    partner: a.partner.clone(),
                    enabled: true,
                    home: format!("/srv/ftp/{}", a.name),
                    write: a.write,
                    admin: a.admin,
                    idle_time: a.idle_timeout.map(|d| d.as_secs()),
                    upload_rate: a.upload_rate,
                    download_rate: a.download_rate,
                    max_logins: a.max_logins,
                    max_logins_per_ip: a.max_logins_per_ip,
                    allowed_ips: a.ip_filter.allow.iter().map(ToString::to_string).collect(),
                }
            })),
        }
    }

    fn listen(&mut self, mut l: Listener) -> Result<u16, String> {
        self.listener = None;
        if let Some(reason) = self.fail_passive.take() {
            return Err(reason);
        }
        let port = self.next_port;
        self.next_port = if self.next_port >= 60_000 {
            FIRST_PASSIVE_PORT
        } else {
            self.next_port + 1
        };
        l.port = port;
        self.listener = Some(l.clone());
        self.last_listener = Some(l);
        Ok(port)
    }

    fn push_record(&mut self, rec: TransferRecord) {
        if self.transfers.len() >= MAX_RECORDED_TRANSFERS {
            self.transfers.pop_front();
        }
        self.transfers.push_back(rec);
    }

    fn record_mut(&mut self, id: ActionId) -> Option<&mut TransferRecord> {
        self.transfers.iter_mut().rev().find(|r| r.id == id)
    }

    fn start_transfer(&mut self, id: ActionId, plan: TransferPlan) -> Vec<Outcome> {
        let TransferPlan {
            kind,
            data: endpoint,
            format,
            marker_interval,
            ownership,
            rate_limit,
            protection,
            ..
        } = plan;
        if self.running.is_some() {
            self.anomaly(format!("transfer {id:?} started while another runs"));
        }
        let (record_kind, prepared) = match kind {
            TransferKind::Retrieve { path, offset } => {
                let prepared =
                    self.prepare_retrieve(path.as_str(), offset, format, marker_interval);
                (RecordKind::Retrieve { path, offset }, prepared)
            }
            TransferKind::Listing { bytes } => {
                let (wire, error) = encode(&bytes, format, 0, None);
                (RecordKind::Listing, Ok(Prepared::Send(wire, error)))
            }
            TransferKind::Store { path, mode } => {
                let prepared = self.prepare_store(path.as_str(), mode);
                (RecordKind::Store { path, mode }, prepared)
            }
        };
        let unique = matches!(
            record_kind,
            RecordKind::Store {
                mode: StoreMode::Unique,
                ..
            }
        );
        let written = match &prepared {
            Ok(Prepared::Receive { path, .. }) => {
                VirtualPath::resolve(&VirtualPath::root(), path).ok()
            }
            _ => None,
        };
        // Only STOU reports the name it used (TransferStarted::stored_as).
        let stored_as = if unique { written.clone() } else { None };
        let mut rec = TransferRecord {
            id,
            kind: record_kind,
            endpoint,
            format,
            data: Vec::new(),
            stored_as: written,
            result: None,
            rate_limit,
            protection,
        };
        // The data connection: a passive one uses (and uses up) the listener.
        let mut data_error = None;
        if endpoint == DataEndpoint::Passive && self.listener.take().is_none() {
            self.anomaly(format!("passive transfer {id:?} without a listener"));
            data_error = Some("no passive listener".to_owned());
        }
        let failure = self.fail_data.take();
        if let (None, Some(DataFailure::Connect(msg))) = (&data_error, &failure) {
            data_error = Some(msg.clone());
        }
        let ended = |bytes, result| {
            vec![Outcome::new(
                id,
                OutcomeKind::TransferEnded { bytes, result },
            )]
        };
        let prepared = match prepared {
            Err(e) => {
                rec.result = Some(Err(TransferError::Storage(e.clone())));
                self.push_record(rec);
                return ended(0, Err(TransferError::Storage(e)));
            }
            Ok(p) => p,
        };
        if let Some(msg) = data_error {
            rec.result = Some(Err(TransferError::DataConnection(msg.clone())));
            self.push_record(rec);
            return ended(0, Err(TransferError::DataConnection(msg)));
        }
        // The file is open: a store creates or truncates it now.
        if let Prepared::Receive { path, base } = &prepared {
            let existed = self.fs.exists(path);
            if let Err(e) = self.fs.put_file(path, base.clone()) {
                rec.result = Some(Err(TransferError::Storage(e.clone())));
                self.push_record(rec);
                return ended(0, Err(TransferError::Storage(e)));
            }
            // A new file gets the uploader's ownership; one that existed keeps its own.
            if let (false, Some(o)) = (existed, &ownership) {
                self.fs.set_ownership(path, o);
            }
        }
        self.push_record(rec);
        let started = Outcome::new(id, OutcomeKind::TransferStarted { stored_as });
        let (lost, not_placed) = match failure {
            Some(DataFailure::Lost(msg)) => (Some(msg), None),
            Some(DataFailure::NotPlaced(msg)) => (None, Some(msg)),
            _ => (None, None),
        };
        let running = Running {
            id,
            prepared,
            lost,
            not_placed,
        };
        if std::mem::take(&mut self.hold_next) || self.hold_all {
            self.running = Some(running);
            return vec![started];
        }
        let mut out = vec![started];
        out.extend(self.complete(running));
        out
    }

    fn prepare_retrieve(
        &self,
        path: &str,
        offset: u64,
        format: DataFormat,
        marker_interval: Option<u64>,
    ) -> Result<Prepared, StorageError> {
        let data = match self.fs.entries.get(path) {
            None => return Err(StorageError::NotFound),
            Some(Entry {
                node: Node::Dir, ..
            }) => return Err(StorageError::IsADirectory),
            Some(Entry {
                node: Node::File(d),
                ..
            }) => d,
        };
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let (wire, error) = encode(&data[start..], format, offset, marker_interval);
        Ok(Prepared::Send(wire, error))
    }

    fn prepare_store(&self, path: &str, mode: StoreMode) -> Result<Prepared, StorageError> {
        let target = match mode {
            StoreMode::Unique => {
                let mut found = None;
                for n in 0..1000u32 {
                    let candidate = if n == 0 {
                        path.to_owned()
                    } else {
                        format!("{path}.{n}")
                    };
                    if !self.fs.entries.contains_key(&candidate) {
                        found = Some(candidate);
                        break;
                    }
                }
                found.ok_or(StorageError::AlreadyExists)?
            }
            _ => path.to_owned(),
        };
        self.fs.check_parent(&target)?;
        let existing = match self.fs.entries.get(&target) {
            Some(Entry {
                node: Node::Dir, ..
            }) => return Err(StorageError::IsADirectory),
            Some(Entry {
                node: Node::File(d),
                ..
            }) => Some(d),
            None => None,
        };
        let base = match mode {
            StoreMode::Create | StoreMode::Unique => Vec::new(),
            StoreMode::Append => existing.cloned().unwrap_or_default(),
            StoreMode::Resume(n) => {
                let have = existing.map_or(0, |d| d.len() as u64);
                if n > have {
                    return Err(StorageError::Other(format!(
                        "restart offset {n} is beyond the end of the file ({have} bytes)"
                    )));
                }
                let keep = usize::try_from(n).unwrap_or(usize::MAX);
                existing.map_or_else(Vec::new, |d| d[..keep.min(d.len())].to_vec())
            }
        };
        Ok(Prepared::Receive { path: target, base })
    }

    /// Moves the bytes of a started transfer and returns its `TransferEnded`.
    fn complete(&mut self, running: Running) -> Vec<Outcome> {
        let Running {
            id,
            prepared,
            lost,
            not_placed,
        } = running;
        let mut marks = Vec::new();
        let (wire, result) = match prepared {
            Prepared::Send(mut bytes, error) => match (lost, error) {
                (Some(msg), _) => {
                    bytes.truncate(bytes.len() / 2);
                    (bytes, Err(TransferError::ConnectionLost(Lost::Broken(msg))))
                }
                (None, Some(e)) => (bytes, Err(TransferError::Codec(e))),
                (None, None) => (bytes, Ok(())),
            },
            Prepared::Receive { path, mut base } => {
                let mut upload = self.uploads.pop_front().unwrap_or_default();
                let result = match &lost {
                    Some(msg) => {
                        upload.truncate(upload.len() / 2);
                        Err(TransferError::ConnectionLost(Lost::Broken(msg.clone())))
                    }
                    None => Ok(()),
                };
                let format = self
                    .transfers
                    .iter()
                    .rev()
                    .find(|r| r.id == id)
                    .map_or_else(DataFormat::default, |r| r.format);
                let decoded = if format.is_identity() {
                    base.extend_from_slice(&upload);
                    Ok(())
                } else {
                    decode(&upload, format, &mut base, |m| {
                        marks.push(Outcome::new(
                            id,
                            OutcomeKind::TransferMark {
                                sender: m.sender,
                                offset: m.offset,
                            },
                        ))
                    })
                };
                let result = match (result, decoded) {
                    (Ok(()), Err(e)) => Err(TransferError::Codec(e)),
                    (r, _) => r,
                };
                if result.is_err() && !matches!(result, Err(TransferError::ConnectionLost(_))) {
                    // A failed conversion keeps the file as it was.
                    marks.extend(self.ended(id, upload, result));
                    return marks;
                }
                self.fs.set_clock(self.wall_now());
                if let (Ok(()), Some(msg)) = (&result, not_placed) {
                    let e = StorageError::Other(msg);
                    marks.extend(self.ended(id, upload, Err(TransferError::NotPlaced(e))));
                    return marks;
                }
                match self.fs.put_file(&path, base) {
                    Ok(()) => (upload, result),
                    Err(e) => (upload, Err(TransferError::Storage(e))),
                }
            }
        };
        marks.extend(self.ended(id, wire, result));
        marks
    }

    /// Records how transfer `id` ended, having moved `wire`, and reports it.
    fn ended(
        &mut self,
        id: ActionId,
        wire: Vec<u8>,
        result: Result<(), TransferError>,
    ) -> Vec<Outcome> {
        let bytes = wire.len() as u64;
        if let Some(rec) = self.record_mut(id) {
            rec.data = wire;
            rec.result = Some(result.clone());
        }
        vec![Outcome::new(
            id,
            OutcomeKind::TransferEnded { bytes, result },
        )]
    }

    fn abort(&mut self, transfer: ActionId) -> Vec<Outcome> {
        if self
            .held_checksum
            .as_ref()
            .is_some_and(|(id, _)| *id == transfer)
        {
            self.held_checksum = None;
            let aborted = OutcomeKind::Checksummed(Err(TransferError::Aborted));
            return vec![Outcome::new(transfer, aborted)];
        }
        match &self.running {
            Some(r) if r.id == transfer => {
                self.running = None;
                if let Some(rec) = self.record_mut(transfer) {
                    rec.result = Some(Err(TransferError::Aborted));
                }
                vec![Outcome::new(
                    transfer,
                    OutcomeKind::TransferEnded {
                        bytes: 0,
                        result: Err(TransferError::Aborted),
                    },
                )]
            }
            // Already finished: nothing to stop.
            _ => Vec::new(),
        }
    }
}

/// Stored bytes (from `start` of the file) as the wire carries them in `format`, fed to the
/// encoder in 4 KiB pieces as a runtime reading a file would; the codec's error, if any,
/// after what came before it.
fn encode(
    stored: &[u8],
    format: DataFormat,
    start: u64,
    marker_interval: Option<u64>,
) -> (Vec<u8>, Option<CodecError>) {
    if format.is_identity() {
        return (stored.to_vec(), None);
    }
    let mut enc = Encoder::new(format, start, marker_interval);
    let mut out = Vec::with_capacity(stored.len() + stored.len() / 16);
    for chunk in stored.chunks(4096) {
        if let Err(e) = enc.encode(chunk, &mut out) {
            return (out, Some(e));
        }
    }
    match enc.finish(&mut out) {
        Ok(()) => (out, None),
        Err(e) => (out, Some(e)),
    }
}

/// Wire bytes of an upload in `format`, decoded onto `stored`; each restart marker the client
/// sent goes to `mark` as it is passed, as a runtime reports them.
fn decode(
    wire: &[u8],
    format: DataFormat,
    stored: &mut Vec<u8>,
    mut mark: impl FnMut(crate::codec::Marker),
) -> Result<(), CodecError> {
    let mut dec = Decoder::new(format, stored.len() as u64);
    // Bounded: each round consumes input or yields output (a marker, or MAX_OUTPUT bytes),
    // and the count is a second guard.
    for chunk in wire.chunks(4096) {
        let mut rest = chunk;
        for _ in 0..1_000_000 {
            let n = dec.decode(rest, stored)?;
            if let Some(m) = dec.take_marker() {
                mark(m);
            }
            rest = &rest[n.min(rest.len())..];
            if rest.is_empty() {
                break;
            }
        }
    }
    dec.finish(stored)
}

/// CRC-32 (IEEE 802.3, reflected, as zlib computes it), bit by bit: the test kit's stand-in
/// checksum.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
