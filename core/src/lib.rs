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
//! offset, direction, representation, data endpoint) and the runtime moves the bytes, applying
//! the pure codecs of [`codec`] only when the representation needs it (TYPE A).
//!
//! # Driving a session over a blocking socket
//!
//! `run` stands for the runtime's own code that carries out actions.
//!
//! ```no_run
//! use std::io::{ErrorKind, Read, Write};
//! use std::net::TcpStream;
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//! use wharf_core::{Action, Config, Outcome, Output, Session};
//!
//! fn drive(mut sock: TcpStream, mut run: impl FnMut(Action) -> Vec<Outcome>) -> std::io::Result<()> {
//!     let (peer, local) = (sock.peer_addr()?, sock.local_addr()?);
//!     let mut session = Session::new(Arc::new(Config::default()), peer, local, Instant::now());
//!     let mut buf = [0u8; 4096];
//!     loop {
//!         while let Some(output) = session.poll_output() {
//!             match output {
//!                 Output::Reply(reply) => sock.write_all(reply.as_bytes())?,
//!                 Output::Action(action) => for outcome in run(action) {
//!                     session.handle_outcome(Instant::now(), outcome);
//!                 },
//!                 Output::Close => return Ok(()),
//!             }
//!         }
//!         let wait = session.poll_timeout().map(|t| t.saturating_duration_since(Instant::now()));
//!         sock.set_read_timeout(wait.map(|d| d.max(Duration::from_millis(1))))?;
//!         match sock.read(&mut buf) {
//!             Ok(0) => return Ok(()),
//!             Ok(n) => session.handle_input(Instant::now(), &buf[..n]),
//!             Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
//!                 session.handle_timeout(Instant::now())
//!             }
//!             Err(e) => return Err(e),
//!         }
//!     }
//! }
//! ```
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
    Account, Action, ActionId, ActionKind, DataEndpoint, DataProtection, LoginError, Outcome,
    OutcomeKind, Representation, Secret, StorageError, StoreMode, TlsInfo, TransferError,
    TransferKind, TransferPlan,
};
pub use config::{Config, TlsOverride, TlsPolicy};
pub use listing::{FileInfo, FileKind};
pub use path::VirtualPath;
pub use reply::Reply;
pub use session::{Output, Session};
pub use time::UnixTime;
