//! The ownership records kept beside the data: who owns an entry, its group and its permission
//! bits, for file systems that cannot hold them (Wharf does not map FTP users to system
//! accounts, so every file on disk belongs to the server's own account).
//!
//! # Layout
//! One hidden sidecar per directory, [`SIDECAR`] (`.wharf-meta.toml`), lists [`Record`]s of
//! the directory's entries as TOML entries; a later entry of a name replaces an earlier one,
//! and `removed = true` forgets the name:
//! ```toml
//! [[entry]]
//! name = "invoice-1.txt"
//! owner = "alice"
//! group = "acme"
//! mode = "0444"
//! ino = 1835012
//!
//! [[entry]]
//! name = "old.csv"
//! removed = true
//! ```
//! The first versions wrote one table per name (`["invoice-1.txt"]` with the same keys); such
//! a file is still read, and rewritten in this form at its next change.
//! `ino` is the inode the record was made for: a record whose inode no longer matches the
//! entry (the back end replaced or deleted the file and something else took its name) is
//! ignored, and pruned the next time the directory is listed. A rename keeps the inode, an
//! atomic upload records the inode of the file renamed into place.
//!
//! # Rules
//! - A change appends the entries of the names it touched, in one `write`, under one
//!   process-wide lock ([`RecordStore::update`]): an upload into a folder of 10,000 files costs
//!   what it costs in an empty one. (Rewriting and syncing the whole file at every change
//!   made each upload cost time in proportion to the folder; the figures are in
//!   docs/partners.md, "Owner records".)
//! - When the file holds more than twice as many entries as there are records (plus
//!   [`COMPACT_SLACK`]), or was written by the first versions, or ends in a torn entry, the
//!   next change rewrites it whole instead: a temporary file in the same directory, synced,
//!   renamed over the sidecar, so a crash leaves the old or the new file, never half of one.
//! - Appends are not synced, as uploads are not: a crash can lose the entries of the last
//!   moments (those entries then show their defaults), and a torn last entry is dropped when
//!   the file is read.
//! - Reads are cached per directory and checked against the sidecar's mtime, size and inode,
//!   so a sidecar changed behind the server's back is read again. The cache is bounded
//!   ([`MAX_CACHED_DIRS`]) and shared by every storage of the process ([`global`]).
//! - A sidecar that cannot be parsed is logged (file and reason) and read as empty; the next
//!   update keeps a copy of it as `.wharf-meta.toml.bad` before replacing it.
//! - The sidecar's name is reserved ([`names`](super::names)): the storage never lists it and
//!   refuses any path through it, so FTP users can neither see nor forge records.
//!
//! This module knows nothing of FTP paths, users or the order of precedence between a record
//! and a tree's defaults ([`ownership`](super::ownership) decides that): it maps (directory,
//! name) to a record, and must not be written to except through [`RecordStore::update`].

use log::{error, warn};
use parking_lot::Mutex;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use super::names::unique_suffix;
use super::names::SIDECAR;

/// The most directories whose records are cached; beyond it the cache starts afresh.
pub const MAX_CACHED_DIRS: usize = 4096;
/// Entries a sidecar may hold beyond twice its records before a change rewrites it whole.
pub const COMPACT_SLACK: usize = 64;
/// The first line of every sidecar.
const HEADER: &str = "# Wharf: owner, group and mode of the entries of this folder (written by \
the server; a later entry of a name replaces an earlier one).\n";

/// Owner, group and mode of one entry, and the inode they were recorded for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The owning user.
    pub owner: String,
    /// The owning group.
    pub group: String,
    /// Permission bits (at most `0o7777`).
    pub mode: u32,
    /// The inode of the entry the record belongs to.
    pub ino: u64,
}

/// The records of one directory, by entry name.
pub type Records = HashMap<String, Record>;

type Stamp = Option<(Option<SystemTime>, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = fs::metadata(path).ok()?;
    Some((m.modified().ok(), m.len(), m.ino()))
}

struct Cached {
    stamp: Stamp,
    records: Arc<Records>,
    /// Entries in the file (at least the records; more once changes were appended).
    entries: usize,
    /// The file may be appended to: it exists, is in the entry form and ends cleanly.
    appendable: bool,
}

/// The records of one directory while [`RecordStore::update`] changes them: reads go to the
/// map; each change notes the name it touched, so that only those are written.
pub struct Changes<'a> {
    records: &'a mut Records,
    /// Each name at each touch, with its record just before.
    touched: Vec<(String, Option<Record>)>,
}

impl std::ops::Deref for Changes<'_> {
    type Target = Records;
    fn deref(&self) -> &Records {
        self.records
    }
}

impl Changes<'_> {
    fn touch(&mut self, name: &str) {
        let before = self.records.get(name).cloned();
        self.touched.push((name.to_owned(), before));
    }

    /// Sets the record of `name`; returns the one it replaces.
    pub fn insert(&mut self, name: String, record: Record) -> Option<Record> {
        self.touch(&name);
        self.records.insert(name, record)
    }

    /// Forgets the record of `name`; returns it.
    pub fn remove(&mut self, name: &str) -> Option<Record> {
        self.touch(name);
        self.records.remove(name)
    }

    /// The record of `name`, to change in place.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Record> {
        self.touch(name);
        self.records.get_mut(name)
    }

    /// The names whose record is not what it was (the updates that changed nothing dropped).
    fn changed(self) -> Vec<String> {
        let Changes { records, touched } = self;
        // A name's first touch holds what it was before the update.
        let mut seen = std::collections::HashSet::new();
        touched
            .into_iter()
            .filter(|(name, before)| {
                seen.insert(name.clone()) && records.get(name) != before.as_ref()
            })
            .map(|(name, _)| name)
            .collect()
    }
}

/// The process-wide record store (see the module documentation).
pub struct RecordStore {
    cache: Mutex<HashMap<PathBuf, Cached>>,
}

/// The one store of the process: every storage shares its lock and cache.
pub fn global() -> &'static RecordStore {
    static STORE: OnceLock<RecordStore> = OnceLock::new();
    STORE.get_or_init(RecordStore::new)
}

impl Default for RecordStore {
    fn default() -> Self {
        RecordStore::new()
    }
}

impl RecordStore {
    /// An empty store.
    pub fn new() -> RecordStore {
        RecordStore {
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The records of directory `dir` (a real, canonical path); empty when it has none.
    pub fn records(&self, dir: &Path) -> Arc<Records> {
        let mut cache = self.cache.lock();
        load(&mut cache, dir).records.clone()
    }

    /// The record of `name` in `dir`, if any, and only if it belongs to inode `ino`.
    pub fn get(&self, dir: &Path, name: &str, ino: u64) -> Option<Record> {
        self.records(dir)
            .get(name)
            .filter(|r| r.ino == ino)
            .cloned()
    }

    /// Changes the records of `dir` with `f` and writes what changed to the sidecar (appended,
    /// or the whole file rewritten atomically; see the module documentation), or removes the
    /// sidecar when no record is left, all under the store's lock. Nothing is written when
    /// `f` changes nothing. When writing fails, the cached records are dropped, so that the
    /// file is read again.
    pub fn update<T>(&self, dir: &Path, f: impl FnOnce(&mut Changes) -> T) -> io::Result<T> {
        let mut cache = self.cache.lock();
        let c = load(&mut cache, dir);
        let mut changes = Changes {
            records: Arc::make_mut(&mut c.records),
            touched: Vec::new(),
        };
        let out = f(&mut changes);
        let touched = changes.changed();
        if touched.is_empty() {
            return Ok(out);
        }
        let path = dir.join(SIDECAR);
        let written = if c.records.is_empty() {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => {
                    c.entries = 0;
                    c.appendable = false;
                    Ok(())
                }
            }
        } else if !c.appendable || c.entries + touched.len() > 2 * c.records.len() + COMPACT_SLACK {
            write_atomically(dir, &path, render(&c.records).as_bytes()).map(|()| {
                c.entries = c.records.len();
                c.appendable = true;
            })
        } else {
            append(&path, &entries(&c.records, &touched)).map(|()| c.entries += touched.len())
        };
        match written {
            Ok(()) => {
                c.stamp = stamp(&path);
                Ok(out)
            }
            Err(e) => {
                cache.remove(dir);
                Err(e)
            }
        }
    }

    /// Forgets what is cached for `dir` (after the directory itself went away).
    pub fn forget(&self, dir: &Path) {
        self.cache.lock().remove(dir);
    }
}

/// The cache entry of `dir`, read (again) when the sidecar changed.
fn load<'c>(cache: &'c mut HashMap<PathBuf, Cached>, dir: &Path) -> &'c mut Cached {
    let path = dir.join(SIDECAR);
    let now = stamp(&path);
    if !cache.contains_key(dir) && cache.len() >= MAX_CACHED_DIRS {
        cache.clear();
    }
    match cache.entry(dir.to_path_buf()) {
        Entry::Occupied(o) if o.get().stamp == now => o.into_mut(),
        Entry::Occupied(o) => {
            let c = o.into_mut();
            *c = read(dir, &path, now);
            c
        }
        Entry::Vacant(v) => v.insert(read(dir, &path, now)),
    }
}

/// Reads the sidecar at `path` (stamped `now`) into a cache entry; logs what it cannot read.
fn read(dir: &Path, path: &Path, now: Stamp) -> Cached {
    let empty = |stamp| Cached {
        stamp,
        records: Arc::new(Records::new()),
        entries: 0,
        appendable: false,
    };
    if now.is_none() {
        return empty(now);
    }
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            warn!("{}: cannot read: {e}", path.display());
            return empty(now);
        }
    };
    match parse_sidecar(&text) {
        Ok(parsed) => {
            if parsed.torn {
                warn!(
                    "{}: the last entry was cut short (a crash while it was written); it is \
                     ignored, and the next change rewrites the file",
                    path.display()
                );
            }
            Cached {
                stamp: now,
                records: Arc::new(parsed.records),
                entries: parsed.entries,
                appendable: parsed.appendable && !parsed.torn,
            }
        }
        Err(why) => {
            error!(
                "{}: unreadable ownership records ({why}); entries of this folder show their \
                 default owner until the next change rewrites the file (a copy is kept as \
                 {SIDECAR}.bad)",
                path.display()
            );
            let _ = fs::copy(path, dir.join(format!("{SIDECAR}.bad")));
            empty(now)
        }
    }
}

/// A sidecar as read.
struct Parsed {
    records: Records,
    /// Entries (or, in the first versions' form, tables) in the file.
    entries: usize,
    /// In the entry form, so that changes may be appended.
    appendable: bool,
    /// A torn last entry was dropped.
    torn: bool,
}

/// Parses a sidecar (either form). Entries with a bad value are an error: the whole file is
/// suspect. A file that parses only without its last entry lost that entry in a crash: the
/// rest is taken.
fn parse_sidecar(text: &str) -> Result<Parsed, String> {
    let first = parse_text(text);
    if first.is_ok() {
        return first;
    }
    // An append starts with a line break and a header line; nothing else in the file has a
    // line starting with `[` (names hold no line break, and values are quoted).
    let Some(cut) = text.rfind("\n[") else {
        return first;
    };
    match parse_text(&text[..=cut]) {
        Ok(p) => Ok(Parsed { torn: true, ..p }),
        Err(_) => first,
    }
}

fn parse_text(text: &str) -> Result<Parsed, String> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| e.message().trim().replace('\n', "; "))?;
    let mut records = Records::new();
    if let (1, Some(list)) = (table.len(), table.get("entry").and_then(|v| v.as_array())) {
        for (i, v) in list.iter().enumerate() {
            let t = v
                .as_table()
                .ok_or_else(|| format!("entry {} is not a table", i + 1))?;
            let name = t
                .get("name")
                .and_then(|v| v.as_str())
                .ok_or_else(|| format!("entry {}: 'name' is missing or not a string", i + 1))?;
            if t.get("removed").and_then(|v| v.as_bool()) == Some(true) {
                records.remove(name);
            } else {
                records.insert(name.to_owned(), record_of(name, t)?);
            }
        }
        return Ok(Parsed {
            records,
            entries: list.len(),
            appendable: true,
            torn: false,
        });
    }
    // The first versions' form: one table per name.
    for (name, v) in &table {
        let t = v
            .as_table()
            .ok_or_else(|| format!("entry {name:?} is not a table"))?;
        records.insert(name.clone(), record_of(name, t)?);
    }
    Ok(Parsed {
        records,
        entries: table.len(),
        appendable: false,
        torn: false,
    })
}

/// The record in table `t` of the entry for `name`.
fn record_of(name: &str, t: &toml::Table) -> Result<Record, String> {
    let s = |k: &str| {
        t.get(k)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| format!("entry {name:?}: '{k}' is missing or not a string"))
    };
    let mode = s("mode")?;
    let mode = u32::from_str_radix(&mode, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("entry {name:?}: mode {mode:?} is not an octal mode"))?;
    let ino = t
        .get("ino")
        .and_then(|v| v.as_integer())
        .and_then(|i| u64::try_from(i).ok())
        .ok_or_else(|| format!("entry {name:?}: 'ino' is missing or not a number"))?;
    Ok(Record {
        owner: s("owner")?,
        group: s("group")?,
        mode,
        ino,
    })
}

/// The whole text of a sidecar holding `records`: the header, then their entries by name.
pub fn render(records: &Records) -> String {
    let mut all: Vec<String> = records.keys().cloned().collect();
    all.sort();
    format!("{HEADER}{}", entries(records, &all))
}

/// The entries of `names` as they are in `records` (`removed = true` for a name without
/// one), each starting with an empty line and `[[entry]]`.
fn entries(records: &Records, names: &[String]) -> String {
    use std::fmt::Write as _;
    // A TOML string literal, escaped as TOML wants.
    let quoted = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let mut out = String::new();
    for name in names {
        let _ = match records.get(name) {
            Some(r) => write!(
                out,
                "\n[[entry]]\nname = {}\nowner = {}\ngroup = {}\nmode = \"{:04o}\"\nino = {}\n",
                quoted(name),
                quoted(&r.owner),
                quoted(&r.group),
                r.mode,
                i64::try_from(r.ino).unwrap_or(i64::MAX)
            ),
            None => write!(
                out,
                "\n[[entry]]\nname = {}\nremoved = true\n",
                quoted(name)
            ),
        };
    }
    out
}

/// Appends `text` to the sidecar at `path` in one `write` (not synced; see the module
/// documentation).
fn append(path: &Path, text: &str) -> io::Result<()> {
    let mut f = fs::OpenOptions::new().append(true).open(path)?;
    f.write_all(text.as_bytes())
}

/// Writes `bytes` to `path` through a synced temporary file in `dir` and a rename.
pub fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(
        "{}.tmp.{}.{}",
        path.file_name()
            .map_or("wharf".into(), |n| n.to_string_lossy()),
        std::process::id(),
        unique_suffix()
    ));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("wharf-meta-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        p
    }

    fn rec(owner: &str, mode: u32, ino: u64) -> Record {
        Record {
            owner: owner.into(),
            group: "acme".into(),
            mode,
            ino,
        }
    }

    #[test]
    fn records_survive_a_new_store_and_odd_names() {
        let dir = temp("persist");
        let store = RecordStore::new();
        let odd = "a \"quoted\" name = [x]\\ é.csv";
        store
            .update(&dir, |r| {
                r.insert("invoice.txt".into(), rec("alice", 0o444, 7));
                r.insert(odd.into(), rec("bob", 0o640, 8));
            })
            .unwrap();
        let text = fs::read_to_string(dir.join(SIDECAR)).unwrap();
        assert!(text.contains("mode = \"0444\""), "{text}");
        // A new store (a restarted server) reads the same records.
        let again = RecordStore::new();
        assert_eq!(
            again.get(&dir, "invoice.txt", 7),
            Some(rec("alice", 0o444, 7))
        );
        assert_eq!(again.get(&dir, odd, 8), Some(rec("bob", 0o640, 8)));
        // A record of another inode is not this entry's.
        assert_eq!(again.get(&dir, "invoice.txt", 9), None);
        // Removing every record removes the sidecar.
        again
            .update(&dir, |r| {
                r.remove("invoice.txt");
                r.remove(odd);
            })
            .unwrap();
        assert!(!dir.join(SIDECAR).exists());
        assert!(store.records(&dir).is_empty());
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_changed_sidecar_is_read_again_and_a_bad_one_is_empty() {
        let dir = temp("changed");
        let store = RecordStore::new();
        store
            .update(&dir, |r| {
                r.insert("a".into(), rec("alice", 0o444, 1));
            })
            .unwrap();
        assert_eq!(store.records(&dir).len(), 1);
        let mut other = Records::new();
        other.insert("b".into(), rec("bob", 0o400, 2));
        write_atomically(&dir, &dir.join(SIDECAR), render(&other).as_bytes()).unwrap();
        let now = store.records(&dir);
        assert!(now.contains_key("b") && !now.contains_key("a"));

        fs::write(dir.join(SIDECAR), "[\"x\"]\nowner = 3\n").unwrap();
        assert!(store.records(&dir).is_empty());
        assert!(dir.join(format!("{SIDECAR}.bad")).exists());
        assert!(
            parse_sidecar("[\"x\"]\nowner = \"a\"\ngroup = \"g\"\nmode = \"9\"\nino = 1\n")
                .err()
                .unwrap()
                .contains("not an octal mode")
        );
        // The next update replaces it.
        store
            .update(&dir, |r| {
                r.insert("c".into(), rec("carol", 0o444, 3));
            })
            .unwrap();
        assert_eq!(RecordStore::new().records(&dir).len(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    fn entries_in(dir: &Path) -> usize {
        fs::read_to_string(dir.join(SIDECAR))
            .unwrap()
            .matches("[[entry]]")
            .count()
    }

    #[test]
    fn changes_are_appended_and_the_file_is_compacted_when_it_doubles() {
        let dir = temp("append");
        let store = RecordStore::new();
        for i in 0..200 {
            store
                .update(&dir, |r| {
                    r.insert(format!("f{i:03}"), rec("alice", 0o444, i));
                })
                .unwrap();
        }
        // One entry per upload, none rewritten: the file grew by appends only.
        assert_eq!(entries_in(&dir), 200);
        let text = fs::read_to_string(dir.join(SIDECAR)).unwrap();
        assert!(text.starts_with(HEADER), "{text}");
        assert!(
            text.contains("[[entry]]\nname = \"f007\"\nowner = \"alice\""),
            "{text}"
        );
        // Changing a record appends its new entry; the later entry wins when read.
        store
            .update(&dir, |r| {
                if let Some(rec) = r.get_mut("f007") {
                    rec.mode = 0o640;
                }
            })
            .unwrap();
        assert_eq!(entries_in(&dir), 201);
        assert_eq!(
            RecordStore::new().get(&dir, "f007", 7),
            Some(rec("alice", 0o640, 7))
        );
        // Removals append `removed` entries until the file holds more than twice the records
        // (plus the slack); then it is rewritten with the records alone.
        let mut most = 0;
        for i in 0..150 {
            store
                .update(&dir, |r| {
                    r.remove(&format!("f{i:03}"));
                })
                .unwrap();
            most = most.max(entries_in(&dir));
        }
        let live = 50;
        assert!(most <= 2 * live + 2 * 150 + COMPACT_SLACK, "{most}");
        assert!(
            entries_in(&dir) <= 2 * live + COMPACT_SLACK,
            "{}",
            entries_in(&dir)
        );
        let again = RecordStore::new().records(&dir);
        assert_eq!(again.len(), live);
        assert!(again.contains_key("f150") && !again.contains_key("f149"));
        // A change that changes nothing writes nothing.
        let before = fs::read_to_string(dir.join(SIDECAR)).unwrap();
        store.update(&dir, |r| r.remove("nothing-here")).unwrap();
        store
            .update(&dir, |r| r.insert("f150".into(), rec("alice", 0o444, 150)))
            .unwrap();
        store
            .update(&dir, |r| {
                r.remove("f151");
                r.insert("f151".into(), rec("alice", 0o444, 151))
            })
            .unwrap();
        assert_eq!(fs::read_to_string(dir.join(SIDECAR)).unwrap(), before);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_first_versions_tables_are_read_and_rewritten_at_the_next_change() {
        let dir = temp("old-form");
        fs::write(
            dir.join(SIDECAR),
            "# Wharf: owner, group and mode of the entries of this folder (written by the \
             server).\n[\"a b.txt\"]\nowner = \"alice\"\ngroup = \"acme\"\nmode = \"0444\"\n\
             ino = 5\n\n[entry]\nowner = \"bob\"\ngroup = \"acme\"\nmode = \"0640\"\nino = 6\n",
        )
        .unwrap();
        let store = RecordStore::new();
        assert_eq!(store.get(&dir, "a b.txt", 5), Some(rec("alice", 0o444, 5)));
        assert_eq!(store.get(&dir, "entry", 6), Some(rec("bob", 0o640, 6)));
        store
            .update(&dir, |r| {
                r.insert("c".into(), rec("carol", 0o444, 7));
            })
            .unwrap();
        // Rewritten whole in the entry form, not appended to the old one.
        assert_eq!(entries_in(&dir), 3);
        assert!(!fs::read_to_string(dir.join(SIDECAR))
            .unwrap()
            .contains("[\"a b.txt\"]"));
        let again = RecordStore::new();
        assert_eq!(again.get(&dir, "a b.txt", 5), Some(rec("alice", 0o444, 5)));
        assert_eq!(again.get(&dir, "entry", 6), Some(rec("bob", 0o640, 6)));
        assert_eq!(again.get(&dir, "c", 7), Some(rec("carol", 0o444, 7)));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_torn_last_entry_is_dropped_and_the_next_change_rewrites_the_file() {
        let dir = temp("torn");
        let store = RecordStore::new();
        for (i, name) in ["a", "b"].iter().enumerate() {
            store
                .update(&dir, |r| {
                    r.insert((*name).into(), rec("alice", 0o444, i as u64));
                })
                .unwrap();
        }
        let whole = fs::read_to_string(dir.join(SIDECAR)).unwrap();
        // A crash in the middle of appending the entry of "c", cut at every byte of it.
        let tail =
            "\n[[entry]]\nname = \"c\"\nowner = \"carol\"\ngroup = \"acme\"\nmode = \"0444\"\n";
        for cut in 1..tail.len() {
            fs::write(dir.join(SIDECAR), format!("{whole}{}", &tail[..cut])).unwrap();
            let r = RecordStore::new().records(&dir);
            assert_eq!(r.len(), 2, "cut at {cut}: {r:?}");
            assert!(!dir.join(format!("{SIDECAR}.bad")).exists(), "cut at {cut}");
        }
        let fresh = RecordStore::new();
        fresh
            .update(&dir, |r| {
                r.insert("d".into(), rec("dave", 0o444, 4));
            })
            .unwrap();
        let text = fs::read_to_string(dir.join(SIDECAR)).unwrap();
        assert_eq!(parse_sidecar(&text).unwrap().records.len(), 3, "{text}");
        assert_eq!(entries_in(&dir), 3);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn concurrent_updates_lose_nothing() {
        let dir = temp("concurrent");
        let store = Arc::new(RecordStore::new());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (store, dir) = (store.clone(), dir.clone());
                std::thread::spawn(move || {
                    for i in 0..20 {
                        store
                            .update(&dir, |r| {
                                r.insert(format!("f{t}-{i}"), rec("u", 0o444, i));
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(RecordStore::new().records(&dir).len(), 160);
        fs::remove_dir_all(&dir).unwrap();
    }
}
