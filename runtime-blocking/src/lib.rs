//! wharf-blocking: the Wharf FTP server as a blocking runtime around [`wharf_core`] — one
//! worker thread per connection from a bounded pool, real sockets and files.
//!
//! The core decides everything the protocol and policy say; this crate does the I/O it asks
//! for and nothing else:
//! - [`server`]: the acceptor (one mio poll over the listeners) and the bounded worker pool;
//! - [`conn`]: the per-connection loop that drives a [`wharf_core::Session`];
//! - [`transfer`]: moving file data (sendfile for binary retrieves), with ABOR mid-transfer;
//! - [`data`]: passive listeners and active connections;
//! - [`server`] also holds what sessions share about logins: the counts behind the login
//!   limits, the ban of addresses that fail too often, the reloadable user store;
//! - [`storage`]: the [`storage::Storage`] trait and the local file system confined to a root,
//!   with owners and modes (records beside the data) and atomic uploads; its module map says
//!   which file owns what;
//! - [`users`]: the accounts (partner users, users of no partner, anonymous) and argon2
//!   password checks; [`store`]: the user store file (partners and users) and its changes;
//! - [`config`]: the TOML configuration and its errors; [`limits`]: the open-file limit the
//!   sessions need;
//! - [`events`]: events to the events file, the event command ([`event_command`]), the
//!   transfer log ([`xferlog`]) and the live statistics ([`stats`]) behind SITE WHO / STAT;
//! - [`stream`]: control and data streams, plain TCP or TLS, and the blocking TLS steps
//!   (bounded handshake, the end of TLS after CCC/REIN);
//! - [`tls`]: certificates, keys and the rustls configurations (FTPS; see docs/ftps.md);
//! - [`cli`]: the `wharf` command line.

pub mod cli;
pub mod config;
pub mod conn;
pub mod data;
pub mod event_command;
pub mod events;
pub mod limits;
pub mod rng;
pub mod server;
pub mod stats;
pub mod storage;
pub mod store;
pub mod stream;
pub mod tls;
pub mod transfer;
pub mod users;
pub mod xferlog;
