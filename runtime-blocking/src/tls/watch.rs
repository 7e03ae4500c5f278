//! Reloading the certificate without a restart: [`crate::reload`]'s watcher over the
//! certificate, key, password file and CA bundle, calling [`TlsContext::reload`] when one of
//! them changes or, optionally, on SIGHUP.
//!
//! A reload that fails (a half-copied file, a key that does not match yet) is logged and the
//! current certificate stays; the next change to any watched file triggers another attempt.
//! This module only says what to reload and what to log; the watching is [`crate::reload`]'s.

use crate::reload::{Trigger, Watcher};

use super::TlsContext;

pub use crate::reload::WatchOptions;

/// The running certificate watcher; dropping it stops the thread (within 200 ms) and joins it.
pub type CertWatcher = Watcher;

/// Starts the watcher of `ctx`'s files (see [`TlsContext::watch`]).
pub(crate) fn spawn(ctx: TlsContext, options: WatchOptions) -> std::io::Result<CertWatcher> {
    let paths = ctx.watched_paths();
    Watcher::spawn("wharf-tls-watch", paths, options, move |trigger| {
        let why = match trigger {
            Trigger::Signal => "SIGHUP",
            Trigger::Changed => "a certificate file changed",
        };
        match ctx.reload() {
            Ok(()) => log::info!(
                "TLS certificate reloaded ({why}); SHA-256 fingerprint {}",
                ctx.fingerprint()
            ),
            Err(e) => {
                log::error!("TLS certificate reload ({why}) failed, keeping the current one: {e}")
            }
        }
    })
}
