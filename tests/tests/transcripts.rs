//! Runs every RFC transcript in `tests/transcripts/` against the core (format: see
//! `wharf_tests::transcript` and `tests/transcripts/README.md`).
//!
//! `TRANSCRIPT=<part of a name> cargo test -p wharf-tests --test transcripts` runs only the
//! matching files.

use std::path::Path;

#[test]
fn transcripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("transcripts");
    let filter = std::env::var("TRANSCRIPT").ok();
    match wharf_tests::transcript::run_dir(&dir, filter.as_deref()) {
        Ok(ran) => {
            assert!(!ran.is_empty(), "no transcript matched {filter:?}");
            eprintln!("{} transcripts passed", ran.len());
        }
        Err(failures) => panic!(
            "{} transcript(s) failed:\n\n{}",
            failures.len(),
            failures.join("\n\n")
        ),
    }
}
