//! The `wharf` command line: `serve`, the management of the user store (`user add|passwd|
//! enable|disable|list`, `partner add|list`) and `check-config`.
//!
//! `serve` and the management commands share one configuration file: `--config FILE`, by
//! default `./wharf.toml` (`serve` reads it when it exists; the first management command that
//! writes the store creates it, with `users_file = "wharf-users.toml"` and `partners_root =
//! "wharf-partners"` beside it). Its `users_file` says where the store is; `--users FILE`
//! names the store directly (then no configuration file is made). Store changes are written
//! atomically and checked first, so a running server (which re-reads the store within a few
//! seconds, see `server::watch_store`) never sees a file it would refuse.
//!
//! `wharf serve` prints machine-readable lines on stdout, flushed at once, which scripts and
//! the end-to-end tests read:
//! ```text
//! user: NAME            (only for a generated account)
//! password: PASSWORD    (only for a generated account)
//! tls certificate sha256 fingerprint: AA:BB:...       (when FTPS is on)
//! listening on ftps://127.0.0.1:990 (implicit TLS)    (one per implicit-TLS listener)
//! listening on ftp://127.0.0.1:2121      (one per listener, the address actually bound)
//! ```
//! The `ftp://` lines come last, so a reader that stops at the first of them has seen the
//! others. Logs go to stderr (`RUST_LOG`, default `info`).
//!
//! FTPS is on by default: with no `tls_cert`/`--cert`, `serve` makes a self-signed
//! certificate in `tls_dir` (`./wharf-tls`) on first start and reuses it afterwards. The
//! certificate files are watched (and SIGHUP reloads them) for as long as the server runs.
//!
//! # Where what is
//! - this file: the commands and which function runs each; it must not do any of them;
//! - `serve.rs`: `wharf serve`, its flags over the configuration file, and the start;
//! - `admin.rs`: `wharf user ...` and `wharf partner ...`, which change the user store;
//! - `check.rs`: `wharf check-config`, and the checks `serve` runs too (where TLS keys and
//!   partners' trees lie, the user store, which key a TLS error is about).

mod admin;
mod check;
mod serve;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

pub use admin::{
    PartnerAddArgs, PartnerCommand, StoreArgs, UserAddArgs, UserCommand, UserNameArgs,
    UserPasswdArgs,
};
pub use serve::{settings_for, ServeArgs};

/// Wharf: an FTP server for exchanging files with trading partners.
#[derive(Debug, Parser)]
#[command(name = "wharf", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server. With no options: 127.0.0.1:2121, the settings of ./wharf.toml if it
    /// exists, the accounts of the user store (./wharf-users.toml) if it exists, else a
    /// generated user (serving ./wharf-data) whose name and password are printed.
    Serve(ServeArgs),
    /// Manage the users of the user store.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the trading partners of the user store.
    #[command(subcommand)]
    Partner(PartnerCommand),
    /// Check a configuration file (and the user store it names); print every problem.
    CheckConfig {
        /// The TOML file.
        #[arg(required_unless_present = "keys")]
        file: Option<PathBuf>,
        /// Print every key of the configuration file and of the user store's entries, with
        /// its default and meaning (Markdown tables), instead of checking a file.
        #[arg(long, conflicts_with = "file")]
        keys: bool,
    },
}

/// Runs the command line; returns the process exit code.
pub fn main(cli: Cli) -> i32 {
    let r = match cli.command {
        Command::Serve(args) => serve::serve(args),
        Command::User(command) => admin::user(command),
        Command::Partner(command) => admin::partner(command),
        Command::CheckConfig { keys: true, .. } => {
            check::print_keys();
            Ok(())
        }
        Command::CheckConfig { file, .. } => check::check_config(&file.unwrap_or_default()),
    };
    match r {
        Ok(()) => 0,
        Err(messages) => {
            for m in messages {
                eprintln!("{m}");
            }
            1
        }
    }
}
