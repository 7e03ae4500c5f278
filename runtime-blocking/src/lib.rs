//! wharf-blocking: the Wharf FTP server as a blocking runtime around [`wharf_core`] — one
//! worker thread per connection from a bounded pool, real sockets and files.
//!
//! The core decides everything the protocol and policy say; this crate does the I/O it asks
//! for and nothing else. Each connection is the loop the core's documentation shows
//! ([`driver`]): read the control connection, `handle_input`, drain `poll_output`, carry out
//! actions and report their outcomes; a transfer is a task the loop steps, answering the
//! control connection between steps.
//!
//! - [`server`]: the door (one mio poll over the listeners, the refusals at connect time) and
//!   the bounded worker pool whose workers take turns at it;
//! - [`driver`]: one connection: the session loop, the actions, TLS on the control
//!   connection, data connections, the transfer task;
//! - [`shared`]: what every session shares (settings, accounts, TLS, events, counts);
//!   [`logins`]: the counts behind the connection and login limits, and the bans of
//!   addresses that fail too often; [`reload`]: watching files (and SIGHUP) for the
//!   certificates and the user store;
//! - [`storage`]: the [`storage::Storage`] trait and the local file system confined to a root,
//!   with owners and modes (records beside the data) and atomic uploads; its module map says
//!   which file owns what;
//! - [`users`]: the accounts (partner users, users of no partner, anonymous) and argon2
//!   password checks; [`store`]: the user store file (partners and users) and its changes;
//! - [`config`]: the TOML configuration, one table of keys; [`toml_read`]: the one reader
//!   of TOML files (the configuration and the user store) and its errors, which name the
//!   file, the key and the problem; [`limits`]: the open-file limit the sessions need;
//! - [`events`]: events to the events file, the event command ([`event_command`]), the
//!   transfer log ([`xferlog`]) and the live statistics ([`stats`]) behind SITE WHO / STAT;
//! - [`tls`]: certificates, keys and the rustls configurations (FTPS; see docs/ftps.md);
//! - [`sys`]: every system call std does not offer — the only module with `unsafe` code;
//! - [`cli`]: the `wharf` command line.

#![deny(unsafe_code)]

pub mod cli;
pub mod config;
pub mod driver;
pub mod event_command;
pub mod events;
pub mod limits;
pub mod logins;
pub mod reload;
pub mod rng;
pub mod server;
pub mod shared;
pub mod stats;
pub mod storage;
pub mod store;
#[allow(unsafe_code)]
pub mod sys;
pub mod tls;
pub mod toml_read;
pub mod users;
pub mod xferlog;
