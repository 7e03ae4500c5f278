//! Virtual paths: what a user sees, always absolute, always normalised, never above `/`.
//!
//! A [`VirtualPath`] is `/` or `/a/b/c` with no empty, `.` or `..` components and no NUL. It is
//! built only by [`VirtualPath::resolve`], which applies a client's argument to the current
//! directory the way a shell would, clamping `..` at the root. The runtime maps a virtual path to
//! the user's root on its file system; because `..` can never survive normalisation, a virtual
//! path cannot name anything outside that root. (Symlinks are the runtime's to refuse.)

use core::fmt;

/// A normalised absolute path inside the user's virtual file system.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VirtualPath(String);

/// Why a client's path argument was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathError {
    /// The argument contains a NUL byte, which no file name may hold.
    Nul,
    /// The argument is longer than [`MAX_PATH_LEN`].
    TooLong,
}

/// The longest path, in bytes, that the core accepts after resolution (as Linux `PATH_MAX`).
pub const MAX_PATH_LEN: usize = 4096;

impl VirtualPath {
    /// The root, `/`.
    pub fn root() -> VirtualPath {
        VirtualPath("/".to_owned())
    }

    /// Applies `arg` (absolute or relative to `cwd`) and normalises the result.
    ///
    /// `~` and a leading `~/` mean the user's root, as many clients assume.
    pub fn resolve(cwd: &VirtualPath, arg: &str) -> Result<VirtualPath, PathError> {
        if arg.contains('\0') {
            return Err(PathError::Nul);
        }
        let (base, rest) = if let Some(rest) = arg.strip_prefix('/') {
            ("", rest)
        } else if arg == "~" {
            ("", "")
        } else if let Some(rest) = arg.strip_prefix("~/") {
            ("", rest)
        } else {
            (cwd.0.as_str(), arg)
        };
        let mut out = String::with_capacity(base.len() + rest.len() + 1);
        for part in base.split('/').chain(rest.split('/')) {
            match part {
                "" | "." => {}
                ".." => {
                    let cut = out.rfind('/').unwrap_or(0);
                    out.truncate(cut);
                }
                name => {
                    out.push('/');
                    out.push_str(name);
                }
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        if out.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong);
        }
        Ok(VirtualPath(out))
    }

    /// The path as text, e.g. `/inbox/report.csv`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is `/`.
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The containing directory (`/` for `/` itself).
    pub fn parent(&self) -> VirtualPath {
        match self.0.rfind('/') {
            Some(0) | None => VirtualPath::root(),
            Some(i) => VirtualPath(self.0[..i].to_owned()),
        }
    }

    /// The last component (empty for `/`).
    pub fn file_name(&self) -> &str {
        match self.0.rfind('/') {
            Some(i) => &self.0[i + 1..],
            None => &self.0,
        }
    }

    /// `self/name`, for a single component `name` (no `/`, not `.` or `..`).
    pub fn join(&self, name: &str) -> VirtualPath {
        let mut s = self.0.clone();
        if !self.is_root() {
            s.push('/');
        }
        s.push_str(name);
        VirtualPath(s)
    }

    /// The components, outermost first (none for `/`).
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|p| !p.is_empty())
    }

    /// Whether `self` is `dir/name` or lies inside it (without building `dir/name`).
    pub fn is_within(&self, dir: &VirtualPath, name: &str) -> bool {
        let rest = if dir.is_root() {
            self.0.strip_prefix('/')
        } else {
            self.0
                .strip_prefix(dir.0.as_str())
                .and_then(|r| r.strip_prefix('/'))
        };
        rest.and_then(|r| r.strip_prefix(name))
            .is_some_and(|r| r.is_empty() || r.starts_with('/'))
    }

    /// Whether `self` is `other` or lies inside it.
    pub fn starts_with(&self, other: &VirtualPath) -> bool {
        other.is_root()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }
}

impl fmt::Display for VirtualPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for VirtualPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for VirtualPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(cwd: &str, arg: &str) -> String {
        let cwd = VirtualPath::resolve(&VirtualPath::root(), cwd).unwrap();
        VirtualPath::resolve(&cwd, arg).unwrap().0
    }

    #[test]
    fn resolution() {
        assert_eq!(r("/", "a/b"), "/a/b");
        assert_eq!(r("/a", "b"), "/a/b");
        assert_eq!(r("/a", "/c"), "/c");
        assert_eq!(r("/a/b", ".."), "/a");
        assert_eq!(r("/a/b", "../../../../etc/passwd"), "/etc/passwd");
        assert_eq!(r("/a", "./x/./y/"), "/a/x/y");
        assert_eq!(r("/a", "//x//y"), "/x/y");
        assert_eq!(r("/a", "~"), "/");
        assert_eq!(r("/a", "~/q"), "/q");
        assert_eq!(r("/a", ""), "/a");
        assert_eq!(r("/", "sp ace/ünï"), "/sp ace/ünï");
    }

    #[test]
    fn parents_and_names() {
        let p = VirtualPath::resolve(&VirtualPath::root(), "/a/b").unwrap();
        assert_eq!(p.parent().as_str(), "/a");
        assert_eq!(p.parent().parent().as_str(), "/");
        assert_eq!(p.file_name(), "b");
        assert_eq!(p.parent().join("c").as_str(), "/a/c");
        assert!(p.starts_with(&p.parent()));
        let ab = VirtualPath::resolve(&VirtualPath::root(), "/ab").unwrap();
        assert!(!ab.starts_with(&p.parent()));
        let root = VirtualPath::root();
        assert!(p.is_within(&root, "a") && p.is_within(&p.parent(), "b"));
        assert!(!ab.is_within(&root, "a") && ab.is_within(&root, "ab"));
        assert!(!p.is_within(&p.parent(), "bb") && !p.parent().is_within(&p.parent(), "b"));
    }

    #[test]
    fn nul_refused() {
        assert_eq!(
            VirtualPath::resolve(&VirtualPath::root(), "a\0b"),
            Err(PathError::Nul)
        );
    }

    quickcheck::quickcheck! {
        fn never_escapes_root(cwd_parts: Vec<String>, arg: String) -> bool {
            let mut cwd = VirtualPath::root();
            for p in cwd_parts {
                if let Ok(next) = VirtualPath::resolve(&cwd, &p) { cwd = next; }
            }
            match VirtualPath::resolve(&cwd, &arg) {
                Ok(p) => p.as_str().starts_with('/')
                    && p.components().all(|c| c != ".." && c != "." && !c.is_empty())
                    && !p.as_str().contains('\0'),
                Err(_) => true,
            }
        }
    }
}
