//! Process limits the server sets for itself at start: the open-file limit that
//! `max_connections` sessions need.
//!
//! Each session is a thread holding up to [`FDS_PER_SESSION`] descriptors (control
//! connection, passive listener, data connection, file). Many systems start services with a
//! soft `RLIMIT_NOFILE` of 1024, which would make `accept` fail (EMFILE) long before 2048
//! sessions; the hard limit is usually far higher, and a process may raise its own soft limit
//! up to it. So [`raise_open_files`] does that (never lowering it), and says so when even the
//! hard limit is short of the need — the administrator then raises it (`ulimit -n`,
//! `LimitNOFILE=` in a systemd unit) or lowers `max_connections`.
//!
//! This module owns the two system calls (`getrlimit`, `setrlimit`) and nothing else. On
//! systems other than 64-bit Linux it does nothing.

/// Descriptors one session may hold at once.
pub const FDS_PER_SESSION: u64 = 4;
/// Descriptors beyond the sessions' (listeners, log and event files, the store, ...).
pub const FDS_SPARE: u64 = 64;

/// The open-file limit `max_connections` sessions need.
pub fn open_files_needed(max_connections: usize) -> u64 {
    (max_connections as u64)
        .saturating_mul(FDS_PER_SESSION)
        .saturating_add(FDS_SPARE)
}

/// What [`raise_open_files`] found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit before.
    pub before: u64,
    /// The soft limit now.
    pub now: u64,
    /// The hard limit (the most the soft limit may be raised to without privileges).
    pub hard: u64,
    /// What the sessions need.
    pub needed: u64,
}

impl OpenFiles {
    /// Whether the limit now covers the need.
    pub fn enough(&self) -> bool {
        self.now >= self.needed
    }
}

/// Raises the soft open-file limit to what `max_connections` sessions need, as far as the
/// hard limit allows; never lowers it. None where the limits cannot be read (not Linux).
pub fn raise_open_files(max_connections: usize) -> Option<OpenFiles> {
    let needed = open_files_needed(max_connections);
    let (before, hard) = crate::sys::open_file_limit::get()?;
    let mut now = before;
    if before < needed {
        let target = needed.min(hard);
        if target > before && crate::sys::open_file_limit::set(target, hard) {
            now = target;
        }
    }
    Some(OpenFiles {
        before,
        now,
        hard,
        needed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_need_counts_four_descriptors_a_session() {
        assert_eq!(open_files_needed(2048), 2048 * 4 + 64);
        assert_eq!(open_files_needed(usize::MAX), u64::MAX);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn the_soft_limit_is_raised_as_far_as_the_hard_limit_allows() {
        let (soft, hard) = crate::sys::open_file_limit::get().expect("getrlimit works on Linux");
        assert!(soft <= hard);
        // A need below the current limit changes nothing (never lowered).
        let r = raise_open_files(1).unwrap();
        assert_eq!((r.before, r.now), (soft, soft));
        assert!(r.enough());
        // A bigger need: raised to it, or to the hard limit when that is lower.
        let want = (soft.min(1 << 20) as usize) + 100;
        let r = raise_open_files(want).unwrap();
        assert_eq!(r.needed, open_files_needed(want));
        assert_eq!(r.now, r.needed.min(hard).max(soft));
        assert_eq!(crate::sys::open_file_limit::get().unwrap().0, r.now);
        assert_eq!(r.enough(), hard >= r.needed);
        // Put the test process back as it was.
        assert!(crate::sys::open_file_limit::set(soft, hard));
    }
}
