//! Commands on the file system and the permission checks that precede them.
//!
//! Every command that touches an entry first gathers the metadata its decision needs — the
//! entry, its directory, or both — with `Stat` actions, then decides from the owner, group and
//! mode bits (Unix rules, [`crate::policy`]), the account's write flag and its fixed folders,
//! and only then asks the runtime to act. Permissions are checked on the entry and on the
//! directory that holds it, not on every ancestor.

use super::requests::Op;
use super::{Pending, Session};
use crate::action::{ActionKind, EventKind, Ownership, StorageError, StoreMode};
use crate::codec;
use crate::listing::{self, EntryRole, FileInfo, FileKind};
use crate::path::{PathError, VirtualPath};
use crate::policy::{self, Access, Perm, Principal};
use crate::reply::{quote_path, Reply};
use crate::time::UnixTime;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lookup {
    Entry,
    Parent,
}

/// A command waiting for metadata.
#[derive(Debug)]
pub(super) struct Check {
    op: Op,
    path: VirtualPath,
    entry: Option<Result<FileInfo, StorageError>>,
    parent: Option<Result<FileInfo, StorageError>>,
    asked: Option<Lookup>,
}

impl Check {
    pub(super) fn new(op: Op, path: VirtualPath) -> Check {
        Check {
            op,
            path,
            entry: None,
            parent: None,
            asked: None,
        }
    }

    /// The next piece of metadata the decision needs, if any.
    fn next(&self) -> Option<Lookup> {
        let unique = matches!(
            self.op,
            Op::Store {
                mode: StoreMode::Unique
            }
        );
        if !matches!(self.op, Op::Mkd) && !unique && self.entry.is_none() {
            return Some(Lookup::Entry);
        }
        let entry_missing = matches!(self.entry, Some(Err(StorageError::NotFound)));
        let need_parent = match self.op {
            Op::Mkd | Op::Rmd | Op::Dele | Op::Rnfr | Op::Rnto { .. } => true,
            Op::Store { .. } => unique || entry_missing,
            Op::Mlst => !self.path.is_root() && matches!(self.entry, Some(Ok(_))),
            _ => false,
        };
        (need_parent && self.parent.is_none()).then_some(Lookup::Parent)
    }
}

/// A change whose outcome the reply and an event report.
#[derive(Debug)]
pub(super) enum Change {
    Mkd(VirtualPath),
    Rmd(VirtualPath),
    Dele(VirtualPath),
    Rename { from: VirtualPath, to: VirtualPath },
    Chmod,
    SetTime { path: VirtualPath, time: UnixTime },
}

const DENIED: &str = "Permission denied.";

impl Session {
    /// Resolves `arg` against the current directory, replying 501/553 itself on failure.
    pub(super) fn resolve(&mut self, arg: &str) -> Option<VirtualPath> {
        match VirtualPath::resolve(&self.cwd, arg) {
            Ok(p) => Some(p),
            Err(PathError::Nul) => {
                self.reply(501, "File names cannot contain NUL.");
                None
            }
            Err(_) => {
                self.reply(553, "Path too long.");
                None
            }
        }
    }

    /// As [`Session::resolve`], for an operation that changes the file system: also checks the
    /// account may write and that the path is not the root.
    pub(super) fn writable_path(&mut self, arg: &str) -> Option<VirtualPath> {
        if !self.logged_in().is_some_and(|a| a.write) {
            self.reply(550, "Permission denied: this account is read-only.");
            return None;
        }
        let path = self.resolve(arg)?;
        if path.is_root() {
            self.reply(
                550,
                "Permission denied: the root directory cannot be changed.",
            );
            return None;
        }
        Some(path)
    }

    /// Whether `path` is a fixed folder of the account, or holds one.
    pub(super) fn is_fixed(&self, path: &VirtualPath) -> bool {
        self.logged_in()
            .is_some_and(|a| a.fixed_folders.iter().any(|f| f.starts_with(path)))
    }

    pub(super) fn principal(&self) -> Principal<'_> {
        match self.logged_in() {
            Some(a) => Principal {
                user: &a.user,
                group: a.partner.as_deref(),
            },
            None => Principal {
                user: "",
                group: None,
            },
        }
    }

    /// The ownership of an entry this session's user creates.
    pub(super) fn new_ownership(&self, dir: bool) -> Option<Ownership> {
        let a = self.logged_in()?;
        Some(Ownership {
            owner: a.user.clone(),
            group: a.group().to_owned(),
            mode: if dir { a.dir_mode } else { a.file_mode },
        })
    }

    /// A command that reads (or reads about) an entry.
    pub(super) fn check_path(&mut self, arg: &str, op: Op) {
        if let Some(path) = self.resolve(arg) {
            self.run_check(Check::new(op, path));
        }
    }

    /// A command that changes the file system.
    pub(super) fn check_change(&mut self, arg: &str, op: Op) {
        let Some(path) = self.writable_path(arg) else {
            return;
        };
        let fixed = match &op {
            Op::Rmd | Op::Dele | Op::Rnfr => self.is_fixed(&path),
            Op::Rnto { from } => self.is_fixed(from) || self.is_fixed(&path),
            _ => false,
        };
        if fixed {
            self.reply(
                550,
                &format!(
                    "Permission denied: {path} is a fixed folder; it cannot be deleted or renamed."
                ),
            );
            return;
        }
        self.run_check(Check::new(op, path));
    }

    /// Asks for the next piece of metadata, or decides when all is in.
    pub(super) fn run_check(&mut self, mut check: Check) {
        match check.next() {
            Some(which) => {
                check.asked = Some(which);
                let path = match which {
                    Lookup::Entry => check.path.clone(),
                    Lookup::Parent => check.path.parent(),
                };
                self.wait(ActionKind::Stat { path }, Pending::Check(Box::new(check)));
            }
            None => self.decide(check),
        }
    }

    pub(super) fn check_outcome(&mut self, mut check: Check, r: Result<FileInfo, StorageError>) {
        match check.asked.take() {
            Some(Lookup::Entry) => check.entry = Some(r),
            Some(Lookup::Parent) => check.parent = Some(r),
            None => {}
        }
        self.run_check(check);
    }

    fn decide(&mut self, check: Check) {
        let Check {
            op,
            path,
            entry,
            parent,
            ..
        } = check;
        let who = self.principal();
        match op {
            Op::Cwd => match entry {
                Some(Ok(info)) if info.is_dir() => {
                    if policy::allowed(who, &info, Access::Enter) {
                        self.cwd = path;
                        self.reply(250, "Directory successfully changed.");
                    } else {
                        self.reply(550, "Failed to change directory: permission denied.");
                    }
                }
                Some(Ok(_)) => self.reply(550, "Failed to change directory: not a directory."),
                Some(Err(e)) => self.reply(550, &format!("Failed to change directory: {e}.")),
                None => self.internal_error(),
            },
            Op::Retr { offset } => match entry {
                Some(Ok(info)) if info.is_file() => {
                    if !policy::allowed(who, &info, Access::Read) {
                        self.reply(550, "Failed to open file: permission denied.");
                    } else if offset > info.size {
                        self.reply(
                            554,
                            &format!(
                                "Restart offset {offset} is beyond the end of the file ({} bytes).",
                                info.size
                            ),
                        );
                    } else {
                        self.start_retrieve(path, offset, info.size - offset);
                    }
                }
                Some(Ok(_)) => self.reply(550, "Failed to open file: not a plain file."),
                Some(Err(e)) => self.reply(550, &format!("Failed to open file: {e}.")),
                None => self.internal_error(),
            },
            Op::Store { mode } => self.decide_store(path, mode, entry, parent),
            Op::Mkd => match parent {
                Some(Ok(dir)) if dir.is_dir() && policy::allowed(who, &dir, Access::Write) => {
                    let ownership = self.new_ownership(true).unwrap_or(Ownership {
                        owner: String::new(),
                        group: String::new(),
                        mode: 0o755,
                    });
                    self.wait(
                        ActionKind::MakeDir {
                            path: path.clone(),
                            ownership,
                        },
                        Pending::Change(Change::Mkd(path)),
                    );
                }
                Some(Ok(_)) => {
                    self.reply(550, "Create directory operation failed: permission denied.")
                }
                Some(Err(e)) => {
                    self.reply(550, &format!("Create directory operation failed: {e}."))
                }
                None => self.internal_error(),
            },
            Op::Rmd | Op::Dele | Op::Rnfr => {
                let (entry, dir) = match (entry, parent) {
                    (Some(Ok(e)), Some(Ok(d))) => (e, d),
                    (Some(Err(e)), _) | (_, Some(Err(e))) => {
                        self.reply(550, &format!("{}: {e}.", op_failed(&op)));
                        return;
                    }
                    _ => return self.internal_error(),
                };
                if !policy::may_unlink(who, &dir, &entry) {
                    self.reply(550, &format!("{}: permission denied.", op_failed(&op)));
                    return;
                }
                match op {
                    Op::Rmd if !entry.is_dir() => {
                        self.reply(550, "Remove directory operation failed: not a directory.")
                    }
                    Op::Rmd => self.wait(
                        ActionKind::RemoveDir { path: path.clone() },
                        Pending::Change(Change::Rmd(path)),
                    ),
                    Op::Dele if entry.is_dir() => {
                        self.reply(550, "Delete operation failed: is a directory; use RMD.")
                    }
                    Op::Dele => self.wait(
                        ActionKind::Delete { path: path.clone() },
                        Pending::Change(Change::Dele(path)),
                    ),
                    _ => {
                        self.rename_from = Some(path);
                        self.reply(350, "Ready for RNTO.");
                    }
                }
            }
            Op::Rnto { from } => match (entry, parent) {
                (_, Some(Err(e))) => self.reply(550, &format!("Rename failed: {e}.")),
                (Some(Err(e)), _) if e != StorageError::NotFound => {
                    self.reply(550, &format!("Rename failed: {e}."))
                }
                (Some(Ok(existing)), Some(Ok(_))) if existing.is_dir() => {
                    self.reply(550, "Rename failed: a directory of that name exists.")
                }
                (Some(Ok(existing)), Some(Ok(dir)))
                    if !policy::may_unlink(who, &dir, &existing) =>
                {
                    self.reply(550, "Rename failed: permission denied.")
                }
                (_, Some(Ok(dir)))
                    if !dir.is_dir() || !policy::allowed(who, &dir, Access::Write) =>
                {
                    self.reply(550, "Rename failed: permission denied.")
                }
                (Some(_), Some(Ok(_))) => self.wait(
                    ActionKind::Rename {
                        from: from.clone(),
                        to: path.clone(),
                    },
                    Pending::Change(Change::Rename { from, to: path }),
                ),
                _ => self.internal_error(),
            },
            Op::Chmod { mode } => match entry {
                Some(Ok(info)) if info.owner == who.user => self.wait(
                    ActionKind::SetMode { path, mode },
                    Pending::Change(Change::Chmod),
                ),
                Some(Ok(_)) => self.reply(
                    550,
                    "SITE CHMOD failed: only the owner may change the mode.",
                ),
                Some(Err(e)) => self.reply(550, &format!("SITE CHMOD failed: {e}.")),
                None => self.internal_error(),
            },
            Op::SetTime { time } => match entry {
                // As utimes(2) with a given time: the owner only.
                Some(Ok(info)) if info.is_file() && info.owner == who.user => self.wait(
                    ActionKind::SetModified {
                        path: path.clone(),
                        time,
                    },
                    Pending::Change(Change::SetTime { path, time }),
                ),
                Some(Ok(info)) if info.is_file() => self.reply(
                    550,
                    "Cannot set the modification time: only the owner may change it.",
                ),
                Some(Ok(_)) => {
                    self.reply(550, "Cannot set the modification time: not a plain file.")
                }
                Some(Err(e)) => self.reply(550, &format!("Cannot set the modification time: {e}.")),
                None => self.internal_error(),
            },
            Op::Checksum(req) => match entry {
                Some(Ok(info)) if info.is_file() => {
                    if policy::allowed(who, &info, Access::Read) {
                        self.start_checksum(path, info.size, *req);
                    } else {
                        self.reply(550, "Cannot compute the checksum: permission denied.");
                    }
                }
                Some(Ok(_)) => self.reply(
                    553,
                    "Cannot compute the checksum of a directory: name a file.",
                ),
                Some(Err(e)) => self.reply(550, &format!("Cannot compute the checksum: {e}.")),
                None => self.internal_error(),
            },
            Op::Size => match entry {
                Some(Ok(info)) if info.is_file() => match self.format.representation {
                    codec::Representation::Image => self.reply(213, &info.size.to_string()),
                    // Exact: the runtime counts the file as TYPE A would send it.
                    codec::Representation::Ascii(_) => {
                        self.wait(ActionKind::AsciiSize { path }, Pending::AsciiSize)
                    }
                    // The runtime encodes the file as TYPE E would send it (STRU F, MODE S).
                    representation @ codec::Representation::Ebcdic(..) => {
                        let format = codec::DataFormat {
                            representation,
                            ..codec::DataFormat::default()
                        };
                        self.wait(ActionKind::EncodedSize { path, format }, Pending::AsciiSize)
                    }
                },
                Some(Ok(_)) => self.reply(550, "Could not get file size: not a plain file."),
                Some(Err(e)) => self.reply(550, &format!("Could not get file size: {e}.")),
                None => self.internal_error(),
            },
            Op::Mdtm => match entry {
                Some(Ok(info)) if info.is_file() => {
                    let mut s = String::new();
                    info.modified.write_mdtm(&mut s);
                    self.reply(213, &s);
                }
                Some(Ok(_)) => {
                    self.reply(550, "Could not get modification time: not a plain file.")
                }
                Some(Err(e)) => self.reply(550, &format!("Could not get modification time: {e}.")),
                None => self.internal_error(),
            },
            Op::Mlst => match entry {
                Some(Ok(info)) => {
                    let dir = parent.and_then(Result::ok);
                    let perm =
                        self.perm_fact(dir.as_ref(), &info, &path.parent(), path.file_name());
                    let mut facts = String::new();
                    listing::write_facts(&info, EntryRole::Entry, perm, &self.facts, &mut facts);
                    facts.push(' ');
                    facts.push_str(path.as_str());
                    let first = format!("Listing {path}");
                    self.push_reply(Reply::with_body(250, &first, [facts.as_str()], "End."));
                }
                Some(Err(e)) => self.reply(550, &format!("Cannot list {path}: {e}.")),
                None => self.internal_error(),
            },
            Op::List(req) => match entry {
                Some(Ok(info)) => self.list_target(*req, info),
                Some(Err(e)) => self.reply(550, &format!("Cannot list {}: {e}.", req.target)),
                None => self.internal_error(),
            },
        }
    }

    fn decide_store(
        &mut self,
        path: VirtualPath,
        mode: StoreMode,
        entry: Option<Result<FileInfo, StorageError>>,
        parent: Option<Result<FileInfo, StorageError>>,
    ) {
        let who = self.principal();
        let dir_writable = |p: &Option<Result<FileInfo, StorageError>>| match p {
            Some(Ok(d)) => Ok(d.is_dir() && policy::allowed(who, d, Access::Write)),
            Some(Err(e)) => Err(e.clone()),
            None => Ok(false),
        };
        // In MODE B and C, REST names a restart marker the server acknowledged: the runtime
        // may hold the data before it for a failed upload (docs/representations.md), which
        // the file's size does not show. It decides.
        let marked = matches!(
            self.format.mode,
            crate::codec::Mode::Block | crate::codec::Mode::Compressed
        );
        let verdict: Result<bool, StorageError> = match (&mode, &entry) {
            (StoreMode::Unique, _) => dir_writable(&parent),
            (_, Some(Ok(f))) if f.kind == FileKind::Dir => Err(StorageError::IsADirectory),
            (StoreMode::Resume(n), Some(Ok(f))) if *n > f.size && !marked => {
                self.reply(
                    554,
                    &format!(
                        "Restart offset {n} is beyond the end of the file ({} bytes).",
                        f.size
                    ),
                );
                return;
            }
            (_, Some(Ok(f))) => Ok(policy::allowed(who, f, Access::Write)),
            (StoreMode::Resume(_), Some(Err(StorageError::NotFound))) if !marked => {
                self.reply(
                    554,
                    "Cannot resume: the file does not exist; use STOR without REST.",
                );
                return;
            }
            (_, Some(Err(StorageError::NotFound))) => dir_writable(&parent),
            (_, Some(Err(e))) => Err(e.clone()),
            (_, None) => Ok(false),
        };
        match verdict {
            Ok(true) => self.start_store(path, mode),
            Ok(false) => self.reply(550, &format!("Cannot store {path}: {DENIED}")),
            Err(StorageError::NotFound) => {
                self.reply(553, &format!("Cannot store {path}: no such directory."))
            }
            Err(e @ (StorageError::IsADirectory | StorageError::InvalidName)) => {
                self.reply(553, &format!("Cannot store {path}: {e}."))
            }
            Err(e) => self.reply(550, &format!("Cannot store {path}: {e}.")),
        }
    }

    pub(super) fn change_outcome(&mut self, change: Change, r: Result<(), StorageError>) {
        match (change, r) {
            (Change::Mkd(path), Ok(())) => {
                let q = quote_path(path.as_str());
                self.reply(257, &format!("{q} created."));
                self.notify(EventKind::Mkdir, |e| e.path = Some(path));
            }
            (Change::Rmd(path), Ok(())) => {
                self.reply(250, "Directory removed.");
                self.notify(EventKind::Rmdir, |e| e.path = Some(path));
            }
            (Change::Dele(path), Ok(())) => {
                self.reply(250, "File deleted.");
                self.notify(EventKind::Delete, |e| e.path = Some(path));
            }
            (Change::Rename { from, to }, Ok(())) => {
                self.reply(250, "Rename successful.");
                self.notify(EventKind::Rename, |e| {
                    e.path = Some(from);
                    e.to = Some(to);
                });
            }
            (Change::Chmod, Ok(())) => self.reply(200, "SITE CHMOD command successful."),
            (Change::SetTime { path, time }, Ok(())) => {
                // draft-somers-ftp-mfxx: `213 Modify=YYYYMMDDHHMMSS; path`.
                let mut text = String::from("Modify=");
                time.write_mdtm(&mut text);
                text.push_str("; ");
                text.push_str(path.as_str());
                self.reply(213, &text);
            }
            (Change::SetTime { .. }, Err(e)) => {
                self.reply(550, &format!("Cannot set the modification time: {e}."))
            }
            (Change::Mkd(_), Err(e)) => {
                self.reply(550, &format!("Create directory operation failed: {e}."))
            }
            (Change::Rmd(_), Err(e)) => {
                self.reply(550, &format!("Remove directory operation failed: {e}."))
            }
            (Change::Dele(_), Err(e)) => self.reply(550, &format!("Delete operation failed: {e}.")),
            (Change::Rename { .. }, Err(e)) => {
                let code = if e == StorageError::InvalidName {
                    553
                } else {
                    550
                };
                self.reply(code, &format!("Rename failed: {e}."))
            }
            (Change::Chmod, Err(e)) => self.reply(550, &format!("SITE CHMOD failed: {e}.")),
        }
    }

    /// The MLSD/MLST `perm` fact of the entry `name` of directory `parent` (RFC 3659 §7.5.5)
    /// for this session's user; `dir` is the directory's metadata when known.
    pub(super) fn perm_fact(
        &self,
        dir: Option<&FileInfo>,
        entry: &FileInfo,
        parent: &VirtualPath,
        name: &str,
    ) -> Perm {
        let Some(a) = self.logged_in() else {
            return Perm::default();
        };
        let fixed = name.is_empty() || a.fixed_folders.iter().any(|f| f.is_within(parent, name));
        let perm = policy::perm_fact(self.principal(), dir, entry, fixed);
        if a.write {
            perm
        } else {
            perm.read_only()
        }
    }

    pub(super) fn internal_error(&mut self) {
        self.reply(
            451,
            "Internal error: the server could not check this request.",
        );
    }
}

fn op_failed(op: &Op) -> &'static str {
    match op {
        Op::Rmd => "Remove directory operation failed",
        Op::Dele => "Delete operation failed",
        _ => "RNFR failed",
    }
}
