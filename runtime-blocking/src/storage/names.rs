//! The server's own names in a user's tree: every name starting with `.wharf` (any case) is
//! reserved for it — the ownership records' sidecar ([`SIDECAR`]), the partial files of atomic
//! uploads ([`PARTIAL_PREFIX`]) and the temporary files they are written through.
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
