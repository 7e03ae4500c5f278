//! Directory listing formats: LIST (`ls -l`, as FileZilla, WinSCP and lftp parse it), NLST
//! (names only) and the MLSD/MLST facts of RFC 3659.
//!
//! Formatting only: which entries a user may see, and what `perm` says, is decided by the
//! session and passed in.

use crate::time::UnixTime;
use core::fmt::Write;

/// What kind of entry a [`FileInfo`] describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (inside the user's root; the runtime refuses links that lead out).
    Symlink,
    /// Anything else (device, socket, FIFO): listed, never transferred.
    Other,
}

/// Metadata of one entry, as the runtime's storage reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileInfo {
    /// The entry's name (the last component of its path).
    pub name: String,
    /// File, directory, ...
    pub kind: FileKind,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time.
    pub modified: UnixTime,
    /// Permission bits, `0o755` style (only the low 12 bits are used).
    pub mode: u32,
    /// Owner name shown in listings.
    pub owner: String,
    /// Group name shown in listings.
    pub group: String,
    /// Number of hard links.
    pub nlink: u64,
    /// An identifier unique within the server (device and inode), for the MLSD `unique` fact.
    pub unique: Option<(u64, u64)>,
}

impl FileInfo {
    /// An entry with the given name and kind; the rest zero or empty until set.
    pub fn new(name: impl Into<String>, kind: FileKind) -> FileInfo {
        FileInfo {
            name: name.into(),
            kind,
            size: 0,
            modified: UnixTime(0),
            mode: if kind == FileKind::Dir { 0o755 } else { 0o644 },
            owner: "ftp".into(),
            group: "ftp".into(),
            nlink: 1,
            unique: None,
        }
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Dir
    }

    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        self.kind == FileKind::File
    }
}

/// Appends the `ls -l` line of `info` (CRLF-terminated) to `out`:
/// `-rw-r--r--    1 owner    group        1234 Nov 21 20:29 name`.
pub fn write_list_line(info: &FileInfo, now: UnixTime, out: &mut String) {
    let kind = match info.kind {
        FileKind::File => '-',
        FileKind::Dir => 'd',
        FileKind::Symlink => 'l',
        FileKind::Other => 'p',
    };
    out.push(kind);
    push_mode(info.mode, out);
    let _ = write!(
        out,
        " {:>4} {:<8} {:<8} {:>12} ",
        info.nlink.max(1),
        non_empty(&info.owner),
        non_empty(&info.group),
        info.size
    );
    info.modified.write_ls(now, out);
    out.push(' ');
    out.push_str(&info.name);
    out.push_str("\r\n");
}

fn non_empty(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// `rwxr-xr-x` for `0o755`, with setuid/setgid/sticky shown as ls shows them.
pub fn push_mode(mode: u32, out: &mut String) {
    const RWX: [char; 3] = ['r', 'w', 'x'];
    for shift in [6u32, 3, 0] {
        let bits = (mode >> shift) & 7;
        for (i, c) in RWX.iter().enumerate() {
            let on = bits & (4 >> i) != 0;
            let special = i == 2
                && match shift {
                    6 => mode & 0o4000 != 0,
                    3 => mode & 0o2000 != 0,
                    _ => mode & 0o1000 != 0,
                };
            out.push(match (on, special) {
                (true, false) => *c,
                (false, false) => '-',
                (true, true) if shift == 0 => 't',
                (false, true) if shift == 0 => 'T',
                (true, true) => 's',
                (false, true) => 'S',
            });
        }
    }
}

/// The MLSD/MLST facts a client may select with `OPTS MLST` (RFC 3659 §7.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    /// `type`: file, dir, cdir, pdir, OS.unix=slink.
    pub kind: bool,
    /// `size` in octets.
    pub size: bool,
    /// `modify`, YYYYMMDDHHMMSS UTC.
    pub modify: bool,
    /// `perm`: what this user may do (RFC 3659 §7.5.5).
    pub perm: bool,
    /// `unique`: an identifier for the object.
    pub unique: bool,
    /// `UNIX.mode`: octal permission bits.
    pub unix_mode: bool,
    /// `UNIX.owner` and `UNIX.group` (names).
    pub unix_owner: bool,
}

impl Default for Facts {
    fn default() -> Facts {
        Facts {
            kind: true,
            size: true,
            modify: true,
            perm: true,
            unique: true,
            unix_mode: true,
            unix_owner: true,
        }
    }
}

/// `(name in FEAT/OPTS, getter, setter)` for every fact, in the order they are printed.
type FactSlot = (&'static str, fn(&Facts) -> bool, fn(&mut Facts, bool));

const FACTS: [FactSlot; 8] = [
    ("type", |f| f.kind, |f, v| f.kind = v),
    ("size", |f| f.size, |f, v| f.size = v),
    ("modify", |f| f.modify, |f, v| f.modify = v),
    ("perm", |f| f.perm, |f, v| f.perm = v),
    ("unique", |f| f.unique, |f, v| f.unique = v),
    ("UNIX.mode", |f| f.unix_mode, |f, v| f.unix_mode = v),
    ("UNIX.owner", |f| f.unix_owner, |f, v| f.unix_owner = v),
    ("UNIX.group", |f| f.unix_owner, |f, v| f.unix_owner = v),
];

impl Facts {
    /// The FEAT line body: `MLST type*;size*;...;` with `*` on the selected facts.
    pub fn feat_line(&self) -> String {
        let mut s = String::from("MLST ");
        for (name, get, _) in FACTS {
            s.push_str(name);
            if get(self) {
                s.push('*');
            }
            s.push(';');
        }
        s
    }

    /// Applies `OPTS MLST a;b;c;`: exactly the named facts (case-insensitive) are selected;
    /// unknown names are ignored as RFC 3659 §7.9 says. Returns the selected list for the reply.
    pub fn select(&mut self, list: &str) -> String {
        let mut chosen = Facts {
            kind: false,
            size: false,
            modify: false,
            perm: false,
            unique: false,
            unix_mode: false,
            unix_owner: false,
        };
        for want in list.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            for (name, _, set) in FACTS {
                if name.eq_ignore_ascii_case(want) {
                    set(&mut chosen, true);
                }
            }
        }
        *self = chosen;
        let mut s = String::new();
        for (name, get, _) in FACTS {
            if get(self) {
                s.push_str(name);
                s.push(';');
            }
        }
        s
    }
}

/// What `perm` says for a cdir/pdir entry and for normal entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryRole {
    /// An entry of the listed directory.
    Entry,
    /// The listed directory itself (`type=cdir`).
    Current,
}

/// Appends the facts of `info` (without the leading space or the name), e.g.
/// `type=file;size=12;modify=20260101000000;perm=adfrw;`.
pub fn write_facts(info: &FileInfo, role: EntryRole, perm: Perm, facts: &Facts, out: &mut String) {
    if facts.kind {
        let t = match (role, info.kind) {
            (EntryRole::Current, _) => "cdir",
            (_, FileKind::Dir) => "dir",
            (_, FileKind::File) => "file",
            (_, FileKind::Symlink) => "OS.unix=slink",
            (_, FileKind::Other) => "OS.unix=special",
        };
        let _ = write!(out, "type={t};");
    }
    if facts.size && info.kind != FileKind::Dir {
        let _ = write!(out, "size={};", info.size);
    }
    if facts.modify {
        out.push_str("modify=");
        info.modified.write_mdtm(out);
        out.push(';');
    }
    if facts.perm {
        out.push_str("perm=");
        perm.write_to(out);
        out.push(';');
    }
    if facts.unique {
        if let Some((dev, ino)) = info.unique {
            let _ = write!(out, "unique={dev:x}U{ino:x};");
        }
    }
    if facts.unix_mode {
        let _ = write!(out, "UNIX.mode={:04o};", info.mode & 0o7777);
    }
    if facts.unix_owner {
        let _ = write!(out, "UNIX.owner={};UNIX.group={};", info.owner, info.group);
    }
}

/// Appends one MLSD line: facts, a space, the name, CRLF.
pub fn write_mlsd_line(
    info: &FileInfo,
    role: EntryRole,
    perm: Perm,
    facts: &Facts,
    out: &mut String,
) {
    write_facts(info, role, perm, facts, out);
    out.push(' ');
    out.push_str(if role == EntryRole::Current {
        "."
    } else {
        &info.name
    });
    out.push_str("\r\n");
}

/// Whether `name` matches the glob `pattern` (`*` any run, `?` one character, `[abc]` a set).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative matcher with single backtrack point for `*`: O(len(p) * len(n)) worst case.
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, next)) = match_set(&p, pi, n[ni]) {
                        if matched {
                            pi = next;
                            ni += 1;
                            continue;
                        }
                    } else if n[ni] == '[' {
                        pi += 1;
                        ni += 1;
                        continue;
                    }
                }
                c if c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches `[...]` at `p[start]` against `c`; `None` if the set is not closed.
fn match_set(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let first = i;
    while i < p.len() && (p[i] != ']' || i == first) {
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            if p[i] <= c && c <= p[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    if i >= p.len() {
        return None;
    }
    Some((matched != negate, i + 1))
}

/// Whether `s` contains glob characters.
pub fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The letters of the MLSD/MLST `perm` fact (RFC 3659 §7.5.5), in alphabetical order, held
/// inline (no allocation per listed entry).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Perm {
    letters: u16,
}

const PERM_LETTERS: [u8; 10] = *b"acdeflmprw";

impl Perm {
    /// The same with `letter` added when `on`.
    pub(crate) fn with(mut self, letter: u8, on: bool) -> Perm {
        if on {
            if let Some(i) = PERM_LETTERS.iter().position(|&l| l == letter) {
                self.letters |= 1 << i;
            }
        }
        self
    }

    /// The letters of `s` that are perm letters (others are ignored), e.g. `"adfrw"`.
    pub fn from_letters(s: &str) -> Perm {
        s.bytes().fold(Perm::default(), |p, b| p.with(b, true))
    }

    /// Only the letters that do not change anything (`e`, `l`, `r`): for read-only accounts.
    pub fn read_only(self) -> Perm {
        Perm::default()
            .with(b'e', self.has(b'e'))
            .with(b'l', self.has(b'l'))
            .with(b'r', self.has(b'r'))
    }

    fn has(self, letter: u8) -> bool {
        PERM_LETTERS
            .iter()
            .position(|&l| l == letter)
            .is_some_and(|i| self.letters & (1 << i) != 0)
    }

    /// Appends the letters to `out`.
    pub fn write_to(self, out: &mut String) {
        for (i, &l) in PERM_LETTERS.iter().enumerate() {
            if self.letters & (1 << i) != 0 {
                out.push(char::from(l));
            }
        }
    }
}

impl core::fmt::Display for Perm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut s = String::with_capacity(10);
        self.write_to(&mut s);
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64, t: i64) -> FileInfo {
        let mut f = FileInfo::new(name, FileKind::File);
        f.size = size;
        f.modified = UnixTime(t);
        f.owner = "alice".into();
        f.group = "acme".into();
        f
    }

    #[test]
    fn ls_line_shape() {
        let mut s = String::new();
        write_list_line(
            &file("report 1.csv", 1234, 1_700_000_000),
            UnixTime(1_700_000_100),
            &mut s,
        );
        assert_eq!(
            s,
            "-rw-r--r--    1 alice    acme             1234 Nov 14 22:13 report 1.csv\r\n"
        );
    }

    #[test]
    fn modes() {
        let mut s = String::new();
        push_mode(0o4755, &mut s);
        push_mode(0o1777, &mut s);
        assert_eq!(s, "rwsr-xr-xrwxrwxrwt");
    }

    #[test]
    fn facts() {
        let mut s = String::new();
        let mut f = file("a", 5, 0);
        f.unique = Some((1, 255));
        write_mlsd_line(
            &f,
            EntryRole::Entry,
            Perm::from_letters("adfrw"),
            &Facts::default(),
            &mut s,
        );
        assert_eq!(
            s,
            "type=file;size=5;modify=19700101000000;perm=adfrw;unique=1Uff;UNIX.mode=0644;UNIX.owner=alice;UNIX.group=acme; a\r\n"
        );
        let mut facts = Facts::default();
        assert_eq!(facts.select("Type;SIZE;bogus;"), "type;size;");
        let mut s = String::new();
        write_mlsd_line(
            &f,
            EntryRole::Entry,
            Perm::from_letters("r"),
            &facts,
            &mut s,
        );
        assert_eq!(s, "type=file;size=5; a\r\n");
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.txt", "a.txt"));
        assert!(!glob_match("*.txt", "a.txt.gz"));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("[ab]*", "beta"));
        assert!(!glob_match("[!ab]*", "beta"));
        assert!(glob_match("*", ""));
        assert!(glob_match("x[", "x["));
        assert!(glob_match("**a**b", "xxaxxbxb"));
    }
}
