//! A fake runtime for [`Session`]: an in-memory file system, a user table and a clock that only
//! moves when told, answering every [`ActionKind`] the way [`crate::action`] documents it.
//!
//! It plays the runtime's part in memory, in the spirit of quinn's `Pair` harness: a test feeds
//! bytes with [`Harness::send`] (or [`Harness::command`]), reads the replies, and moves time with
//! [`Harness::advance`], which fires due timeouts through [`Session::poll_timeout`] and
//! [`Session::handle_timeout`]. Every data-channel payload is recorded ([`TransferRecord`]) so a
//! test can assert what a listing or a download sent and what an upload stored.
//!
//! Built for tests (cargo feature `testkit`) and for the fuzz targets (`cfg(fuzzing)`). It does
//! no I/O and reads no clock: the caller gives it a base [`Instant`] and every later instant is
//! that base plus the time advanced. Its memory is bounded: the file system has a capacity (an
//! upload beyond it fails with "no space"), and the records of replies and transfers keep only
//! the most recent ones. A loop that drains the session is bounded too: a session that does not
//! go quiet within [`MAX_STEPS`] outputs (plus a few per input byte) makes the kit panic, which
//! is a test failure rather than a hang.
//!
//! What the fake runtime does, action by action:
//! - `Authenticate`: the user table (name → password, write flag); `anonymous` and `ftp` log in
//!   read-only with any password when anonymous login is on. [`Harness::set_users_unavailable`]
//!   makes the user store fail.
//! - `Stat`, `ReadDir`, `MakeDir`, `RemoveDir`, `Delete`, `Rename` (replacing, as rename(2)),
//!   `AsciiSize` (through [`AsciiEncoder::encoded_len`]): [`MemFs`].
//! - `ListenPassive`: a port from 50000 upwards; [`Harness::fail_next_passive`] refuses one.
//!   `ClosePassive` forgets the listener.
//! - `EncodedSize`: the file through the codec's encoder, counted.
//! - `Transfer`: Retrieve streams the file from its offset through the codec's encoder (in
//!   its type, structure and mode, restart markers included), Store takes the bytes queued
//!   with [`Harness::queue_upload`] through the decoder (reporting each restart marker with
//!   `TransferMark`) with Create/Append/Resume/Unique semantics, Listing sends the core's
//!   bytes the same way. Transfers and checksums (`Checksum`: a stand-in value) complete at
//!   once unless held ([`Harness::hold_next_transfer`]): a held one runs until
//!   [`Harness::finish_transfer`] or ABOR. [`Harness::fail_next_data`] breaks the next data
//!   connection. `AbortTransfer` ends the running transfer with [`TransferError::Aborted`].
//! - `StartTls` succeeds at once (no client identity); `StopTls` is noted;
//!   `AuthenticateCertificate` logs in any user of the table.
//!
//! API misuse by the session that a real runtime would trip over (a transfer while another
//! runs, a passive transfer with no listener, an outcome-less action the kit cannot place) is
//! recorded in [`Harness::anomalies`]; fuzz targets and properties assert there is none.

use crate::action::{
    Account, Action, ActionId, ActionKind, AdminInfo, AdminQuery, ChecksumValue, DataEndpoint,
    Event, EventKind, LoginCounts, LoginError, Lost, Outcome, OutcomeKind, Ownership, ServerStats,
    SessionSummary, StorageError, StoreMode, TlsInfo, TransferError, TransferKind, TransferPlan,
    UserSummary,
};
use crate::codec::{AsciiEncoder, CodecError, DataFormat, Decoder, Encoder};
use crate::config::Config;
use crate::listing::{FileInfo, FileKind};
use crate::path::VirtualPath;
use crate::policy::Cidr;
use crate::reply::Reply;
use crate::session::{Output, Session};
use crate::time::{Civil, UnixTime};
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Outputs a single drain of the session may produce (plus four per input byte) before the kit
/// declares it stuck and panics.
pub const MAX_STEPS: usize = 10_000;
/// Replies kept for the test to read; older ones are dropped (and counted).
pub const MAX_RECORDED_REPLIES: usize = 10_000;
/// Transfers kept in [`Harness::transfers`].
pub const MAX_RECORDED_TRANSFERS: usize = 64;
/// Default capacity of a [`MemFs`], in bytes of file contents.
pub const DEFAULT_CAPACITY: u64 = 64 << 20;
/// Most entries (files and directories) a [`MemFs`] holds.
pub const MAX_ENTRIES: usize = 100_000;
/// Events kept in [`Harness::events`].
pub const MAX_RECORDED_EVENTS: usize = 1_000;
/// The first port [`ActionKind::ListenPassive`] answers with.
pub const FIRST_PASSIVE_PORT: u16 = 50_000;

/// 2026-03-01 12:00:00 UTC, the wall-clock time a harness starts at unless told otherwise.
pub fn default_wall_clock() -> UnixTime {
    UnixTime::from_civil(Civil {
        year: 2026,
        month: 3,
        day: 1,
        hour: 12,
        minute: 0,
        second: 0,
    })
}

/// `len` bytes of reproducible pseudo-random content (xorshift64*), for test files.
pub fn seeded_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    if x == 0 {
        x = 1;
    }
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        let take = (len - out.len()).min(8);
        out.extend_from_slice(&v[..take]);
    }
    out
}

/// Checks that a reply is well-formed on the wire: CRLF-terminated lines without stray CR or
/// LF; a one-line reply is `NNN text`; a multi-line reply is `NNN-first`, then lines that are
/// `NNN-...` with the same code, then `NNN last`. The one exception is the body of FEAT (211)
/// and MLST (250) replies, whose lines begin with a single space (RFC 2389, RFC 3659 §7.2).
pub fn check_reply(reply: &Reply) -> Result<(), String> {
    let text = reply.as_str();
    if text.is_empty() {
        return Err("empty reply".into());
    }
    let Some(body) = text.strip_suffix("\r\n") else {
        return Err(format!("reply does not end with CRLF: {text:?}"));
    };
    let code = format!("{:03}", reply.code());
    let lines: Vec<&str> = body.split("\r\n").collect();
    for line in &lines {
        if line.contains(['\r', '\n']) {
            return Err(format!("bare CR or LF inside a reply line: {text:?}"));
        }
    }
    let starts = |line: &str, sep: char| {
        line.len() >= 4 && line.starts_with(code.as_str()) && line[3..].starts_with(sep)
    };
    let n = lines.len();
    if n == 1 {
        return if starts(lines[0], ' ') {
            Ok(())
        } else {
            Err(format!("one-line reply is not `{code} text`: {text:?}"))
        };
    }
    if !starts(lines[0], '-') {
        return Err(format!(
            "multi-line reply does not begin `{code}-`: {text:?}"
        ));
    }
    if !starts(lines[n - 1], ' ') {
        return Err(format!("multi-line reply does not end `{code} `: {text:?}"));
    }
    let body_allowed = matches!(reply.code(), 211 | 250);
    for line in &lines[1..n - 1] {
        let ok = starts(line, '-') || (body_allowed && line.starts_with(' '));
        if !ok {
            return Err(format!(
                "reply line {line:?} is neither `{code}-...` nor a body line: {text:?}"
            ));
        }
    }
    Ok(())
}

mod harness;
mod memfs;

pub use harness::*;
pub use memfs::*;

/// Stored bytes (from `start` of the file) as the wire carries them in `format`, fed to the
/// encoder in 4 KiB pieces as a runtime reading a file would; the codec's error, if any,
/// after what came before it.
fn encode(
    stored: &[u8],
    format: DataFormat,
    start: u64,
    marker_interval: Option<u64>,
) -> (Vec<u8>, Option<CodecError>) {
    if format.is_identity() {
        return (stored.to_vec(), None);
    }
    let mut enc = Encoder::new(format, start, marker_interval);
    let mut out = Vec::with_capacity(stored.len() + stored.len() / 16);
    for chunk in stored.chunks(4096) {
        if let Err(e) = enc.encode(chunk, &mut out) {
            return (out, Some(e));
        }
    }
    match enc.finish(&mut out) {
        Ok(()) => (out, None),
        Err(e) => (out, Some(e)),
    }
}

/// Wire bytes of an upload in `format`, decoded onto `stored`; each restart marker the client
/// sent goes to `mark` as it is passed, as a runtime reports them.
fn decode(
    wire: &[u8],
    format: DataFormat,
    stored: &mut Vec<u8>,
    mut mark: impl FnMut(crate::codec::Marker),
) -> Result<(), CodecError> {
    let mut dec = Decoder::new(format, stored.len() as u64);
    // Bounded: each round consumes input or yields output (a marker, or MAX_OUTPUT bytes),
    // and the count is a second guard.
    for chunk in wire.chunks(4096) {
        let mut rest = chunk;
        for _ in 0..1_000_000 {
            let n = dec.decode(rest, stored)?;
            if let Some(m) = dec.take_marker() {
                mark(m);
            }
            rest = &rest[n.min(rest.len())..];
            if rest.is_empty() {
                break;
            }
        }
    }
    dec.finish(stored)
}

/// CRC-32 (IEEE 802.3, reflected, as zlib computes it), bit by bit: the test kit's stand-in
/// checksum.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
