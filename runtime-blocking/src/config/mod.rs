//! The server's configuration: the TOML file (`--config FILE`, default [`DEFAULT_CONFIG`]),
//! its keys and defaults, and errors that name the file, the key and the problem.
//!
//! Every key is optional. The file is checked key by key so that every problem is reported
//! at once (not only the first), unknown keys included. Relative paths in the file are
//! relative to the file's folder; relative paths on the command line (applied over the file
//! by `wharf serve`, see the cli module) are relative to the current folder.
//!
//! Example:
//! ```toml
//! listen = ["0.0.0.0:21", "[::]:21"]
//! root = "/srv/ftp"
//! passive_ports = "30000-30100"
//! passive_address = "203.0.113.7"
//! max_connections = 200
//! tls_cert = "/etc/wharf/cert.pem"
//! tls_key = "/etc/wharf/key.pem"
//! tls_required_control = "accounts"
//! tls_required_data = "accounts"
//! implicit_listen = ["0.0.0.0:990"]
//! ```
//!
//! The TLS keys (`tls`, `tls_*`, `implicit_listen`, `allow_ccc`, `require_tls_session_reuse`)
//! are described in docs/ftps.md, with what each does on the wire.
//!
//! # Where what is
//! - `settings.rs`: [`Settings`], where each setting is kept and its default (the core's
//!   settings are the core's [`wharf_core::Config`], embedded whole);
//! - `keys.rs`: [`keys::KEYS`], one entry per key: name, default, meaning, and how it is
//!   read into which field;
//! - `tls.rs`: the contradictions between TLS keys;
//! - this file: reading a file with those keys, through [`crate::toml_read`] (which the
//!   user store reads with too).
//!
//! For example, a key `max_sessions_per_user` for a number the core already has would be
//! this entry in [`keys::KEYS`], and nothing else:
//! ```text
//! Key {
//!     name: "max_sessions_per_user",
//!     default: "0",
//!     doc: "logged-in sessions at once of one user; 0 = unlimited",
//!     read: |r, v, s| set(&mut s.core.max_sessions_per_user, r.whole(v, 0, 100_000)),
//! },
//! ```
//! A setting of the runtime's own adds a field to [`Settings`] with its default.

pub mod keys;
mod settings;
mod tls;

use std::path::Path;

pub use settings::{Settings, DEFAULT_CONFIG};

use crate::toml_read::{self, read_keys, ConfigError, Reader};

impl Settings {
    /// Reads a configuration file. Every problem is reported.
    pub fn load(path: &Path) -> Result<Settings, Vec<ConfigError>> {
        let text = toml_read::read_text(path).map_err(|e| vec![e])?;
        let file = path.display().to_string();
        Settings::parse(&text, &file, path.parent().unwrap_or(Path::new("")))
    }

    /// Parses the text of a configuration file named `file`; relative paths are taken from
    /// `base`.
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<Settings, Vec<ConfigError>> {
        let (s, errors) = Settings::parse_all(text, file, base);
        if errors.is_empty() {
            Ok(s)
        } else {
            Err(errors)
        }
    }

    /// As [`Settings::parse`], but returns the settings that could be read (defaults in place
    /// of bad values) together with every problem, so that checks can go on.
    pub fn parse_all(text: &str, file: &str, base: &Path) -> (Settings, Vec<ConfigError>) {
        let mut s = Settings::default();
        let table = match toml_read::parse_table(file, text) {
            Ok(t) => t,
            Err(e) => return (s, vec![e]),
        };
        let mut r = Reader::new(file, base);
        read_keys(&mut r, "", &table, keys::KEYS, &mut s, keys::unknown);
        for (key, message) in s.tls_problems() {
            r.err_at(key, message);
        }
        (s, r.into_errors())
    }
}

#[cfg(test)]
mod tests;
