//! The checksum of a stored file (HASH, XCRC, XMD5, XSHA1, XSHA256, XSHA512) as a task the
//! driver steps like a transfer: a step reads and hashes [`CHUNK`] bytes, so the driver
//! answers the control connection between steps and ABOR stops it; it reports one
//! `Checksummed`.
//!
//! Bounded CPU: each request reads its range of the file once, streamed; at most
//! [`max_at_once`] checksums run at once in the whole server (one more is told `450`, busy,
//! as draft-bryan-ftpext-hash suggests), so many sessions hashing large files cannot take
//! every CPU from the transfers.

use md5::Digest;
use std::fs::File;
use std::io::Read;
use std::sync::atomic::AtomicUsize;
use wharf_core::{
    ActionId, ChecksumAlgorithm, ChecksumValue, OutcomeKind, StorageError, TransferError,
    VirtualPath,
};

use super::transfer::direct::Slot;
use super::transfer::{storage_error, Interrupt, Step};
use crate::storage::Storage;

/// Bytes read and hashed per step.
pub const CHUNK: usize = 1024 * 1024;

/// Checksums running in the server now.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// The most checksums that run at once: the number of CPUs (at least 2).
pub fn max_at_once() -> usize {
    static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| std::thread::available_parallelism().map_or(2, |n| n.get().max(2)))
}

enum Hasher {
    Ring(ring::digest::Context),
    Md5(md5::Md5),
    Crc32(crc32fast::Hasher),
}

impl Hasher {
    fn new(algorithm: ChecksumAlgorithm) -> Hasher {
        use ring::digest;
        match algorithm {
            ChecksumAlgorithm::Sha256 => Hasher::Ring(digest::Context::new(&digest::SHA256)),
            ChecksumAlgorithm::Sha512 => Hasher::Ring(digest::Context::new(&digest::SHA512)),
            ChecksumAlgorithm::Sha1 => {
                Hasher::Ring(digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY))
            }
            ChecksumAlgorithm::Md5 => Hasher::Md5(md5::Md5::new()),
            ChecksumAlgorithm::Crc32 => Hasher::Crc32(crc32fast::Hasher::new()),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Ring(c) => c.update(bytes),
            Hasher::Md5(m) => m.update(bytes),
            Hasher::Crc32(c) => c.update(bytes),
        }
    }

    fn hex(self) -> String {
        let bytes: Vec<u8> = match self {
            Hasher::Ring(c) => c.finish().as_ref().to_vec(),
            Hasher::Md5(m) => m.finalize().to_vec(),
            Hasher::Crc32(c) => c.finalize().to_be_bytes().to_vec(),
        };
        let mut out = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }
}

/// A checksum under way.
pub struct ChecksumTask {
    id: ActionId,
    path: VirtualPath,
    algorithm: ChecksumAlgorithm,
    start: u64,
    end: Option<u64>,
    /// Opened at the first step, with the position and the end of the range.
    open: Option<(File, u64, u64)>,
    hasher: Option<Hasher>,
    buf: Vec<u8>,
    stop: Option<Interrupt>,
    _place: Option<Slot<'static>>,
}

impl ChecksumTask {
    /// The checksum action `id`.
    pub fn new(
        id: ActionId,
        path: VirtualPath,
        algorithm: ChecksumAlgorithm,
        start: u64,
        end: Option<u64>,
    ) -> ChecksumTask {
        ChecksumTask {
            id,
            path,
            algorithm,
            start,
            end,
            open: None,
            hasher: None,
            buf: Vec::new(),
            stop: None,
            _place: None,
        }
    }

    /// The action id the session knows it by.
    pub fn id(&self) -> ActionId {
        self.id
    }

    /// Bytes hashed so far.
    pub fn bytes(&self) -> u64 {
        self.open.as_ref().map_or(0, |(_, pos, _)| pos - self.start)
    }

    /// Stops it at its next step.
    pub fn stop(&mut self, why: Interrupt) {
        self.stop.get_or_insert(why);
    }

    /// Opens the file (first step), then hashes one chunk per step.
    pub fn step(&mut self, storage: Option<&dyn Storage>) -> Step {
        let ended = |r| Step::Ended(OutcomeKind::Checksummed(r));
        if let Some(i) = self.stop {
            return ended(Err(super::transfer::interrupted(i)));
        }
        if self.open.is_none() {
            let Some(place) = Slot::take(&RUNNING, max_at_once()) else {
                return ended(Err(TransferError::Busy(format!(
                    "The server is computing as many checksums as it allows at once ({}); try again shortly.",
                    max_at_once()
                ))));
            };
            self._place = Some(place);
            let Some(storage) = storage else {
                return ended(Err(TransferError::Storage(StorageError::PermissionDenied)));
            };
            match storage.open_read(&self.path, self.start) {
                Ok((file, size)) => {
                    let end = self.end.unwrap_or(size).min(size).max(self.start);
                    self.open = Some((file, self.start, end));
                    self.hasher = Some(Hasher::new(self.algorithm));
                    self.buf = vec![0u8; CHUNK];
                }
                Err(e) => return ended(Err(TransferError::Storage(e))),
            }
            return Step::Continue { idle: false };
        }
        let Some((file, pos, end)) = self.open.as_mut() else {
            return ended(Err(TransferError::Aborted));
        };
        let want = (*end - *pos).min(CHUNK as u64) as usize;
        if want > 0 {
            match file.read(&mut self.buf[..want]) {
                // The file got shorter: what there was has been hashed.
                Ok(0) => *end = *pos,
                Ok(n) => {
                    if let Some(h) = self.hasher.as_mut() {
                        h.update(&self.buf[..n]);
                    }
                    *pos += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return ended(Err(storage_error(&e))),
            }
        }
        if *pos < *end {
            return Step::Continue { idle: false };
        }
        let value = ChecksumValue {
            hex: self.hasher.take().map_or_else(String::new, Hasher::hex),
            start: self.start,
            end: *end,
        };
        ended(Ok(value))
    }
}
