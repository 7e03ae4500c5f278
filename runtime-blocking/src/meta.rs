//! Ownership records kept beside the data: who owns an entry, its group and its permission
//! bits, for file systems that cannot hold them (Wharf does not map FTP users to system
//! accounts, so every file on disk belongs to the server's own account).
//!
//! # Layout
//! One hidden sidecar per directory, [`SIDECAR`] (`.wharf-meta.toml`), maps the names of the
//! directory's entries to a [`Record`]:
//! ```toml
//! ["invoice-1.txt"]
//! owner = "alice"
//! group = "acme"
//! mode = "0444"
//! ino = 1835012
//! ```
//! `ino` is the inode the record was made for: a record whose inode no longer matches the
//! entry (the back end replaced or deleted the file and something else took its name) is
//! ignored, and pruned the next time the directory is listed. A rename keeps the inode, an
//! atomic upload records the inode of the file renamed into place.
//!
//! # Rules
//! - Writes go to a temporary file in the same directory, are synced, then renamed over the
//!   sidecar, all under one process-wide lock ([`MetaStore::update`]), so a crash leaves the
//!   old or the new sidecar, never half of one.
//! - Reads are cached per directory and checked against the sidecar's mtime, size and inode,
//!   so a sidecar changed behind the server's back is read again. The cache is bounded.
//! - A sidecar that cannot be parsed is logged (file and reason) and read as empty; the next
//!   update keeps a copy of it as `.wharf-meta.toml.bad` before replacing it.
//! - Every name starting with `.wharf` is reserved ([`is_reserved`]): the storage never lists
//!   it and refuses any path through it, so FTP users can neither see nor forge records.
//!
//! This module knows nothing of FTP paths or users: it maps (directory, name) to a record.

use log::{error, warn};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

/// The name of the sidecar in each directory.
pub const SIDECAR: &str = ".wharf-meta.toml";
/// Prefix of the hidden partial files of atomic uploads.
pub const PARTIAL_PREFIX: &str = ".wharf-part.";
/// The most directories whose records are cached; beyond it the cache starts afresh.
pub const MAX_CACHED_DIRS: usize = 4096;

/// Whether `name` is reserved for the server (starts with `.wharf`, in any case).
pub fn is_reserved(name: &str) -> bool {
    name.as_bytes()
        .get(..6)
        .is_some_and(|p| p.eq_ignore_ascii_case(b".wharf"))
}

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
}

/// The process-wide record store (see the module documentation).
pub struct MetaStore {
    cache: Mutex<HashMap<PathBuf, Cached>>,
}

/// The one store of the process: every storage shares its lock and cache.
pub fn global() -> &'static MetaStore {
    static STORE: OnceLock<MetaStore> = OnceLock::new();
    STORE.get_or_init(MetaStore::new)
}

impl Default for MetaStore {
    fn default() -> Self {
        MetaStore::new()
    }
}

impl MetaStore {
    /// An empty store.
    pub fn new() -> MetaStore {
        MetaStore {
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The records of directory `dir` (a real, canonical path); empty when it has none.
    pub fn records(&self, dir: &Path) -> Arc<Records> {
        let mut cache = self.cache.lock();
        load(&mut cache, dir)
    }

    /// The record of `name` in `dir`, if any, and only if it belongs to inode `ino`.
    pub fn get(&self, dir: &Path, name: &str, ino: u64) -> Option<Record> {
        self.records(dir)
            .get(name)
            .filter(|r| r.ino == ino)
            .cloned()
    }

    /// Changes the records of `dir` with `f` and writes the sidecar atomically (or removes it
    /// when no record is left), all under the store's lock. Nothing is written when `f`
    /// changes nothing.
    pub fn update<T>(&self, dir: &Path, f: impl FnOnce(&mut Records) -> T) -> io::Result<T> {
        let mut cache = self.cache.lock();
        let before = load(&mut cache, dir);
        let mut records = (*before).clone();
        let out = f(&mut records);
        if records == *before {
            return Ok(out);
        }
        let path = dir.join(SIDECAR);
        if records.is_empty() {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        } else {
            write_atomically(dir, &path, render(&records).as_bytes())?;
        }
        cache.insert(
            dir.to_path_buf(),
            Cached {
                stamp: stamp(&path),
                records: Arc::new(records),
            },
        );
        Ok(out)
    }

    /// Forgets what is cached for `dir` (after the directory itself went away).
    pub fn forget(&self, dir: &Path) {
        self.cache.lock().remove(dir);
    }
}

/// The cached records of `dir`, read again when the sidecar changed.
fn load(cache: &mut HashMap<PathBuf, Cached>, dir: &Path) -> Arc<Records> {
    let path = dir.join(SIDECAR);
    let now = stamp(&path);
    if let Some(c) = cache.get(dir) {
        if c.stamp == now {
            return c.records.clone();
        }
    }
    let records = Arc::new(match now {
        None => Records::new(),
        Some(_) => match fs::read_to_string(&path) {
            Ok(text) => match parse(&text) {
                Ok(r) => r,
                Err(why) => {
                    error!(
                        "{}: unreadable ownership records ({why}); entries of this folder show \
                         their default owner until the next change rewrites the file (a copy is \
                         kept as {SIDECAR}.bad)",
                        path.display()
                    );
                    let _ = fs::copy(&path, dir.join(format!("{SIDECAR}.bad")));
                    Records::new()
                }
            },
            Err(e) => {
                warn!("{}: cannot read: {e}", path.display());
                Records::new()
            }
        },
    });
    if cache.len() >= MAX_CACHED_DIRS {
        cache.clear();
    }
    cache.insert(
        dir.to_path_buf(),
        Cached {
            stamp: now,
            records: records.clone(),
        },
    );
    records
}

/// Parses a sidecar. Entries with a bad value are an error: the whole file is suspect.
pub fn parse(text: &str) -> Result<Records, String> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| e.message().trim().replace('\n', "; "))?;
    let mut out = Records::new();
    for (name, v) in table {
        let t = v
            .as_table()
            .ok_or_else(|| format!("entry {name:?} is not a table"))?;
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
        let record = Record {
            owner: s("owner")?,
            group: s("group")?,
            mode,
            ino,
        };
        out.insert(name, record);
    }
    Ok(out)
}

/// The text of a sidecar.
pub fn render(records: &Records) -> String {
    let mut table = toml::Table::new();
    for (name, r) in records {
        let mut t = toml::Table::new();
        t.insert("owner".into(), toml::Value::String(r.owner.clone()));
        t.insert("group".into(), toml::Value::String(r.group.clone()));
        t.insert(
            "mode".into(),
            toml::Value::String(format!("{:04o}", r.mode)),
        );
        t.insert(
            "ino".into(),
            toml::Value::Integer(i64::try_from(r.ino).unwrap_or(i64::MAX)),
        );
        table.insert(name.clone(), toml::Value::Table(t));
    }
    format!(
        "# Wharf: owner, group and mode of the entries of this folder (written by the server).\n{table}"
    )
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

/// A suffix that differs between calls in this process.
pub fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{n:x}{t:08x}")
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
    fn reserved_names() {
        for n in [".wharf", ".wharf-meta.toml", ".WHARF-x", ".Wharf-part.1"] {
            assert!(is_reserved(n), "{n}");
        }
        for n in ["wharf", ".whar", "a.wharf", ".wharves-no", ""] {
            assert!(!is_reserved(n), "{n}");
        }
    }

    #[test]
    fn records_survive_a_new_store_and_odd_names() {
        let dir = temp("persist");
        let store = MetaStore::new();
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
        let again = MetaStore::new();
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
                r.clear();
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
        let store = MetaStore::new();
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
            parse("[\"x\"]\nowner = \"a\"\ngroup = \"g\"\nmode = \"9\"\nino = 1\n")
                .unwrap_err()
                .contains("not an octal mode")
        );
        // The next update replaces it.
        store
            .update(&dir, |r| {
                r.insert("c".into(), rec("carol", 0o444, 3));
            })
            .unwrap();
        assert_eq!(MetaStore::new().records(&dir).len(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn concurrent_updates_lose_nothing() {
        let dir = temp("concurrent");
        let store = Arc::new(MetaStore::new());
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
        assert_eq!(MetaStore::new().records(&dir).len(), 160);
        fs::remove_dir_all(&dir).unwrap();
    }
}
