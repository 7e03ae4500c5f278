//! The in-memory file system of the test kit ([`MemFs`]).

use super::*;

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
    pub(super) entries: BTreeMap<String, Entry>,
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
    pub(super) fn check_parent(&self, path: &str) -> Result<(), StorageError> {
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
    pub(super) fn put_file(&mut self, path: &str, data: Vec<u8>) -> Result<(), StorageError> {
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
    pub(super) fn set_ownership(&mut self, path: &str, o: &Ownership) {
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

    /// The contents of the stored file at `path` (a key), or why there is none.
    fn stored_file(&self, path: &str) -> Result<&[u8], StorageError> {
        match self.entries.get(path) {
            None => Err(StorageError::NotFound),
            Some(Entry {
                node: Node::Dir, ..
            }) => Err(StorageError::IsADirectory),
            Some(Entry {
                node: Node::File(d),
                ..
            }) => Ok(d),
        }
    }

    /// Deletes a file ([`ActionKind::Delete`]).
    pub fn delete(&mut self, path: &str) -> Result<(), StorageError> {
        let len = self.stored_file(path)?.len() as u64;
        self.bytes -= len;
        self.entries.remove(path);
        Ok(())
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
        let d = self.stored_file(path)?;
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

    /// The size of a file on the wire in `format` ([`ActionKind::EncodedSize`]).
    pub fn encoded_size(&self, path: &str, format: DataFormat) -> Result<u64, StorageError> {
        let d = self.stored_file(path)?;
        match encode(d, format, 0, None) {
            (wire, None) => Ok(wire.len() as u64),
            (_, Some(e)) => Err(StorageError::Other(e.to_string())),
        }
    }

    /// The TYPE A size of a file ([`ActionKind::AsciiSize`]), counted in chunks as a runtime
    /// streaming the file would.
    pub fn ascii_size(&self, path: &str) -> Result<u64, StorageError> {
        let d = self.stored_file(path)?;
        let mut enc = AsciiEncoder::new();
        Ok(d.chunks(4096).map(|c| enc.encoded_len(c)).sum())
    }
}
