//! wharf-core: the FTP/FTPS server protocol as a pure state machine — it contains no networking
//! code, touches no file, starts no thread and never reads a clock.
//!
//! A [`Session`] is one control connection. The caller (a runtime: blocking threads, an async
//! executor, a test, a fuzzer) feeds it what happened and drains what it wants done:
//!
//! - [`Session::handle_input`]: bytes read from the control connection (after TLS);
//! - [`Session::handle_outcome`]: the result of an [`Action`] it asked for;
//! - [`Session::handle_timeout`]: the instant from [`Session::poll_timeout`] has come;
//! - [`Session::poll_output`]: after every `handle_*` call, drain until `None`:
//!   [`Output::Reply`] bytes to write, [`Output::Action`] work to do (check a password, stat a
//!   file, open a passive port, run a transfer...), [`Output::Close`].
//!
//! All time is external input: every mutating call takes `now`, and wall-clock values the
//! protocol prints (file dates) arrive with the data they belong to.
//!
//! Data does not flow through the core. It describes a transfer ([`TransferPlan`]: path,
//! offset, direction, type/structure/mode as a [`codec::DataFormat`], data endpoint) and the
//! runtime moves the bytes, through the pure codecs of [`codec`] ([`codec::Encoder`],
//! [`codec::Decoder`]) unless the format is the identity (TYPE I, STRU F, MODE S).
//!
//! # The contract a driver follows
//!
//! The core decides; the driver only does. Every reply is the core's and is written as it
//! comes, never edited or replaced; every policy question is answered in the core. The rules:
//!
//! 1. **Drain until `None`.** After [`Session::new`] and after every `handle_*` call, call
//!    [`Session::poll_output`] until it returns `None`, handling each output in order: write a
//!    [`Output::Reply`] before handling what follows it, carry out each [`Output::Action`],
//!    and stop reading at [`Output::Close`] (flush what was written, then close). Do not cap
//!    the drain at a count: after a transfer ends, the session answers every command held
//!    behind it at once (thousands, if the client pipelined them), and no further input may
//!    come to wake a driver that stopped early.
//! 2. **Outcomes name their action.** Report each action's result with
//!    [`Session::handle_outcome`] and the action's [`ActionId`]; [`ActionKind`] lists which
//!    outcome answers which action, and which actions have none (`ClosePassive`, `StopTls`,
//!    `LoginEnded`, `Notify`, `AbortTransfer`). While one action is outstanding the session
//!    takes no further command, so outcomes may come later (the driver keeps reading input
//!    and calling `handle_input`; the session buffers it, within
//!    [`Config::max_buffered_input`]).
//! 3. **TLS.** [`ActionKind::StartTls`] follows the `234` reply: write the reply, then run
//!    the server handshake on the control connection, feeding the session nothing read before
//!    the handshake ended; report [`OutcomeKind::TlsEstablished`] (a failure: report it and
//!    close). [`ActionKind::StopTls`] follows the reply to CCC or REIN: write that reply
//!    protected, then exchange close_notify and go on in the clear on the same socket.
//! 4. **A transfer is a task the driver runs and reports on, never a place to call back
//!    from.** [`ActionKind::Transfer`] starts it. Report
//!    [`OutcomeKind::TransferStarted`] once the file (or listing) and the data connection are
//!    both open — and write the `150` that it produces before a PROT P handshake on the data
//!    connection (clients start TLS after reading it) — then any number of
//!    [`OutcomeKind::TransferProgress`] (before feeding control input, so `STAT` is current),
//!    then exactly one [`OutcomeKind::TransferEnded`]. `TransferProgress` and
//!    [`OutcomeKind::TransferMark`] come only after `TransferStarted`. A transfer that fails
//!    before it starts reports only `TransferEnded`. The plan's [`TransferPlan::format`] is
//!    not optional: a driver that cannot carry a format must end the transfer with an error,
//!    never send the stored bytes unchanged. In MODE B and C an upload reports each client
//!    restart marker it acknowledges with `TransferMark` (the core replies `110 MARK`) once
//!    the data before it is in the file; a download places markers every
//!    [`TransferPlan::marker_interval`] stored bytes ([`codec::Encoder::new`]). While it runs the driver's own loop keeps reading the
//!    control connection and feeding it to `handle_input` like any other input: the session
//!    answers `ABOR`, `STAT`, `NOOP` and `QUIT` at once and holds other commands until the
//!    end. [`ActionKind::AbortTransfer`] asks the driver to stop it as soon as possible; it
//!    then ends with [`TransferError::Aborted`] (or normally, if it had finished already).
//!    If the control connection goes, stop the transfer ([`Lost::ControlClosed`]), report its
//!    end, then call [`Session::handle_disconnect`]. [`ActionKind::Checksum`] (HASH, XCRC,
//!    XMD5, XSHA*) is a task of the same kind: `TransferProgress` while it reads, ABOR stops
//!    it with `AbortTransfer`, and it ends with exactly one [`OutcomeKind::Checksummed`].
//!    Timeouts of the data connection (how long to wait for it, how long it may stall) are
//!    the driver's settings, not the plan's.
//! 5. **An upload is settled before its end is reported.** When all of an upload has
//!    arrived the driver puts the file in place (atomic uploads: the rename or exchange) and
//!    only then reports `TransferEnded`: `Ok(())` means the file is in place, and a file that
//!    could not be put in place is [`TransferError::NotPlaced`]. An upload that did not
//!    complete is discarded. The core then chooses `226`, `451`/`452` or `426`, and emits
//!    `upload_complete` only after the `226` it queued. Failure reasons are typed
//!    ([`TransferError`], [`Lost`]); the driver never encodes them in text for the core.
//! 6. **Time is input.** Call [`Session::handle_timeout`] when the instant
//!    [`Session::poll_timeout`] gave has come (`None`: nothing is due while an action is
//!    outstanding or a transfer runs). Before login, [`Session::login_deadline`] also bounds
//!    anything the driver does for the client (a reply it does not read, a TLS handshake).
//!
//! The embedder also sets what the core cannot know: [`Config::tls_available`] (whether it
//! can run TLS: AUTH is refused otherwise).
//!
//! # Modules
//! - [`framing`]: CRLF line framing, Telnet IAC stripping, line-length bound.
//! - [`command`]: the command parser.
//! - [`reply`]: reply encoding (RFC 959 multi-line rules).
//! - [`path`]: virtual paths that cannot leave the user's root.
//! - [`addr`]: PORT/EPRT/LPRT and PASV/EPSV/LPSV syntax, passive port lists.
//! - [`listing`]: LIST, NLST, MLSD/MLST formats.
//! - [`codec`]: the data codecs: TYPE A/E/I, STRU F/R/P, MODE S/B/C/Z, restart markers.
//! - [`time`]: UTC calendar arithmetic for dates in listings.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod action;
pub mod addr;
pub mod codec;
pub mod command;
pub mod config;
pub mod framing;
pub mod listing;
pub mod path;
pub mod policy;
pub mod reply;
mod session;
pub mod time;

#[cfg(fuzzing)]
pub mod fuzzing;
#[cfg(any(feature = "testkit", fuzzing))]
pub mod testkit;

pub use action::{
    Account, Action, ActionId, ActionKind, ChecksumAlgorithm, ChecksumValue, DataEndpoint,
    DataProtection, LoginError, Lost, Outcome, OutcomeKind, Representation, Secret, SessionReuse,
    StorageError, StoreMode, TlsInfo, TransferError, TransferKind, TransferPlan,
};
pub use config::{Config, TlsOverride, TlsPolicy};
pub use listing::{FileInfo, FileKind};
pub use path::VirtualPath;
pub use reply::Reply;
pub use session::{Output, Session};
pub use time::UnixTime;
