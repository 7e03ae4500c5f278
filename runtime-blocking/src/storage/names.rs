//! The server's own names in a user's tree: every name starting with `.wharf` (any case) is
//! reserved for it — the ownership records' sidecar ([`SIDECAR`]), the partial files of atomic
//! uploads ([`PARTIAL_PREFIX`]), what a failed MODE B/C upload keeps for its restart
//! ([`RESUME_PREFIX`]) and the temporary files they are written through.
//!
//! This module only says which names those are. Refusing them on FTP paths is
//! [`confine`](super::confine)'s job, writing and sweeping them the job of the modules that
//! own the files; it touches no file itself.

use std::time::SystemTime;

/// The name of the ownership records' sidecar in each directory (see
/// [`records`](super::records)).
pub const SIDECAR: &str = ".wharf-meta.toml";
/// Prefix of the hidden partial files of atomic uploads (see [`uploads`](super::uploads)).
pub const PARTIAL_PREFIX: &str = ".wharf-part.";

/// Prefix of what a failed upload keeps up to its last acknowledged restart marker (MODE B
/// and C; see [`uploads`](super::uploads)), followed by [`resume_key`].
pub const RESUME_PREFIX: &str = ".wharf-resume.";

/// The name under which an upload of `file_name` by `owner` is kept for its restart: the same
/// for the same owner and name, in any run of the server (FNV-1a, 64 bits, in hex).
pub fn resume_name(owner: &str, file_name: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in owner.bytes().chain([0]).chain(file_name.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{RESUME_PREFIX}{h:016x}")
}

/// Whether `name` is reserved for the server (starts with `.wharf`, in any case).
pub fn is_reserved(name: &str) -> bool {
    name.as_bytes()
        .get(..6)
        .is_some_and(|p| p.eq_ignore_ascii_case(b".wharf"))
}

/// Whether `name` is a file a server that stopped mid-upload may have left behind: a partial
/// upload, or a temporary file of the sidecar not yet renamed over it.
pub fn is_leftover(name: &str) -> bool {
    name.starts_with(PARTIAL_PREFIX) || name.starts_with(&format!("{SIDECAR}.tmp."))
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
    fn resume_names_differ_by_owner_and_name_and_are_stable() {
        let a = resume_name("alice", "a.bin");
        assert_eq!(a, resume_name("alice", "a.bin"));
        assert_ne!(a, resume_name("bob", "a.bin"));
        assert_ne!(a, resume_name("alice", "b.bin"));
        // Not fooled by moving the separator.
        assert_ne!(resume_name("ab", "c"), resume_name("a", "bc"));
        assert!(a.starts_with(RESUME_PREFIX) && a.len() == RESUME_PREFIX.len() + 16);
        assert!(is_reserved(&a) && !is_leftover(&a));
    }

    #[test]
    fn leftovers_are_partial_uploads_and_temporary_sidecars() {
        assert!(is_leftover(".wharf-part.1f3a"));
        assert!(is_leftover(".wharf-meta.toml.tmp.123.4567"));
        for n in [
            ".wharf-meta.toml",
            ".wharf-meta.toml.bad",
            "a.csv",
            ".wharf",
        ] {
            assert!(!is_leftover(n), "{n}");
        }
    }
}
