//! Provisioning: the folders a partner's tree must have ([`make_tree`], [`make_partner_trees`]),
//! made at start, at `wharf check`, when a partner is added and at each login; and, at start,
//! the sweep of what a server that stopped mid-upload left behind ([`sweep_partials`]), and of
//! what failed uploads kept for a restart nobody took up ([`remove_stale_kept`]).
//!
//! It works on real paths given by the configuration and the store, never on a session's
//! virtual paths, and removes only the server's own leftovers (partial uploads, temporary
//! record files): never an entry an FTP user or the back end could have made.

use log::{info, warn};
use std::fs;
use std::io;
use std::path::Path;

use super::names::{is_leftover, RESUME_PREFIX};
use crate::users::{FixedFolder, Partner};

/// The most entries [`sweep_partials`] looks at in one tree.
pub const MAX_SWEEP_ENTRIES: usize = 200_000;
/// How long what a failed upload keeps for its restart ([`super::uploads`]) stays unused
/// before it is removed.
pub const RESUME_KEEP: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Makes a partner's root and its fixed folders where missing.
pub fn make_tree(root: &Path, folders: &[FixedFolder]) -> io::Result<()> {
    fs::create_dir_all(root)?;
    for f in folders {
        let mut p = root.to_path_buf();
        for c in f.path.components() {
            p.push(c);
        }
        fs::create_dir_all(&p)?;
    }
    Ok(())
}

/// Makes every partner's root and fixed folders where missing; returns the problems.
pub fn make_partner_trees<'a>(partners: impl IntoIterator<Item = &'a Partner>) -> Vec<String> {
    partners
        .into_iter()
        .filter_map(|p| {
            make_tree(&p.root, &p.folders).err().map(|e| {
                format!(
                    "partner '{}': cannot create its folders under {}: {e}",
                    p.name,
                    p.root.display()
                )
            })
        })
        .collect()
}

/// Removes the partial files of atomic uploads (and temporary record files) a server that
/// stopped mid-upload left under `root`, and what failed uploads kept for a restart that
/// nobody took up for [`RESUME_KEEP`]; returns how many. Does not follow symlinks; looks
/// at no more than [`MAX_SWEEP_ENTRIES`] entries.
pub fn sweep_partials(root: &Path) -> usize {
    let mut removed = 0;
    let mut seen = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for entry in rd.flatten() {
            seen += 1;
            if seen > MAX_SWEEP_ENTRIES {
                warn!(
                    "{}: stopped looking for leftover partial uploads after {MAX_SWEEP_ENTRIES} entries",
                    root.display()
                );
                return removed;
            }
            let Ok(ft) = entry.file_type() else { continue };
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file()
                && (is_leftover(&name) || is_stale_kept(&entry))
                && fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    if removed > 0 {
        info!(
            "{}: removed {removed} partial upload(s) left by an earlier run",
            root.display()
        );
    }
    removed
}

/// Removes what failed uploads kept in `dir` and nobody took up for [`RESUME_KEEP`].
pub fn remove_stale_kept(dir: &Path) -> usize {
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for entry in rd.flatten().take(MAX_SWEEP_ENTRIES) {
        if is_stale_kept(&entry) && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Whether `entry` is what a failed upload kept, unused for [`RESUME_KEEP`].
pub fn is_stale_kept(entry: &fs::DirEntry) -> bool {
    entry
        .file_name()
        .to_string_lossy()
        .starts_with(RESUME_PREFIX)
        && entry
            .metadata()
            .ok()
            .filter(fs::Metadata::is_file)
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= RESUME_KEEP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::names::{PARTIAL_PREFIX, SIDECAR};
    use crate::storage::testing::{own, partner_tree, upload};
    use wharf_core::StoreMode;

    #[test]
    fn partial_files_of_a_server_that_died_are_swept_at_the_next_start() {
        let (t, fs) = partner_tree("sweep", true);
        upload(
            &fs,
            "/Outbox/a.csv",
            StoreMode::Create,
            Some(own("alice", "acme", 0o444)),
            b"a",
        );
        drop(fs);
        let out = t.0.join("acme/Outbox");
        // Partial files of a server that died are swept at the next start.
        fs::write(out.join(format!("{PARTIAL_PREFIX}dead")), b"x").unwrap();
        fs::create_dir_all(out.join("deep")).unwrap();
        fs::write(out.join(format!("deep/{PARTIAL_PREFIX}dead2")), b"x").unwrap();
        assert_eq!(sweep_partials(&t.0), 2);
        assert!(out.join("a.csv").exists());
        // The ownership records are not leftovers.
        assert!(out.join(SIDECAR).exists());
    }
}
