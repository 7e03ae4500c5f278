//! Checksums of stored files: HASH with OPTS HASH and RANG (draft-bryan-ftpext-hash,
//! draft-bryan-ftp-range), and the older XCRC, XMD5, XSHA1, XSHA256, XSHA512 that FileZilla,
//! WinSCP and scripts use. The checksum covers the file's bytes as a TYPE I, MODE S download
//! would receive them; the runtime computes it, streamed, as a task the session treats like a
//! transfer (ABOR stops it, STAT shows its progress, other commands wait).

use super::requests::{ChecksumForm, ChecksumRequest, Direction, Op};
use super::Session;
use crate::action::{ActionKind, ChecksumAlgorithm, ChecksumValue, TransferError};
use crate::path::VirtualPath;

impl Session {
    /// `OPTS HASH [algorithm]`.
    pub(super) fn opts_hash(&mut self, value: &str) {
        if value.is_empty() {
            let name = self.checksum.name();
            self.reply(200, name);
            return;
        }
        match ChecksumAlgorithm::from_name(value) {
            Some(a) => {
                self.checksum = a;
                self.reply(200, a.name());
            }
            None => self.reply(501, "Unknown algorithm, current selection not changed."),
        }
    }

    /// The FEAT line: every algorithm, the selected one marked.
    pub(super) fn hash_feat_line(&self) -> String {
        let mut line = String::from("HASH ");
        for (i, a) in ChecksumAlgorithm::ALL.into_iter().enumerate() {
            if i > 0 {
                line.push(';');
            }
            line.push_str(a.name());
            if a == self.checksum {
                line.push('*');
            }
        }
        line
    }

    /// `RANG start end`: the byte range (both ends included) of the next HASH; `RANG 1 0`
    /// goes back to the whole file.
    pub(super) fn cmd_rang(&mut self, start: u64, end: u64) {
        if (start, end) == (1, 0) {
            self.rang = None;
            self.reply(350, "Restarting at 0. Ending byte at the end of the file.");
        } else if end < start {
            self.reply(
                501,
                "RANG needs an end at or after its start (RANG 1 0 resets).",
            );
        } else {
            self.rang = Some((start, end));
            self.reply(
                350,
                &format!("Restarting at {start}. Ending byte at {end}."),
            );
        }
    }

    /// HASH: the selected algorithm over the file (or the RANG range, which it uses up).
    pub(super) fn cmd_hash(&mut self, arg: &str) {
        let (start, end) = match self.rang.take() {
            Some((s, e)) => (s, Some(e.saturating_add(1))),
            None => (0, None),
        };
        let request = ChecksumRequest {
            form: ChecksumForm::Hash,
            algorithm: self.checksum,
            start,
            end,
        };
        self.check_path(arg, Op::Checksum(Box::new(request)));
    }

    /// XCRC, XMD5, XSHA1, XSHA256, XSHA512.
    pub(super) fn cmd_x_checksum(
        &mut self,
        algorithm: ChecksumAlgorithm,
        path: &str,
        start: u64,
        end: Option<u64>,
    ) {
        let request = ChecksumRequest {
            form: ChecksumForm::X,
            algorithm,
            start,
            end,
        };
        self.check_path(path, Op::Checksum(Box::new(request)));
    }

    /// The permission check passed for `path` (`size` bytes): the runtime computes it.
    pub(super) fn start_checksum(&mut self, path: VirtualPath, size: u64, req: ChecksumRequest) {
        if req.start > size || (req.start == size && size > 0 && req.end.is_some()) {
            self.reply(
                556,
                &format!(
                    "The range starts beyond the end of the file ({size} bytes); RANG 1 0 resets it."
                ),
            );
            return;
        }
        let end = req.end.map(|e| e.min(size));
        let verb = match req.form {
            ChecksumForm::Hash => "HASH",
            ChecksumForm::X => "checksum",
        };
        let what = format!("{verb} {path}");
        let id = self.action(ActionKind::Checksum {
            path: path.clone(),
            algorithm: req.algorithm,
            start: req.start,
            end,
        });
        self.track_task(
            id,
            what,
            Direction::Checksum,
            Some(path),
            Some(Box::new(req)),
        );
    }

    /// The checksum is known (or could not be computed).
    pub(super) fn checksum_outcome(
        &mut self,
        req: &ChecksumRequest,
        path: Option<&VirtualPath>,
        result: Result<ChecksumValue, TransferError>,
    ) {
        let shown = path.map_or("", |p| p.as_str());
        match (result, req.form) {
            (Ok(v), ChecksumForm::Hash) => {
                // The end point is the last byte hashed (0-0 for an empty range).
                let last = v.end.saturating_sub(1).max(v.start);
                let text = format!(
                    "{} {}-{} {} {shown}",
                    req.algorithm.name(),
                    v.start,
                    last,
                    v.hex
                );
                self.reply(213, &text);
            }
            (Ok(v), ChecksumForm::X) => self.reply(250, &v.hex),
            (Err(TransferError::Aborted), _) => self.reply(426, "Checksum aborted."),
            (Err(TransferError::Busy(why)), _) => self.reply(450, &why),
            (Err(e), _) => self.reply(551, &format!("Cannot compute the checksum: {e}.")),
        }
    }
}
