//! Reloading the certificate without a restart: a thread that polls the files' metadata and,
//! optionally, listens for SIGHUP, and calls [`TlsContext::reload`] when either fires.
//!
//! A reload that fails (a half-copied file, a key that does not match yet) is logged and the
//! current certificate stays; the next change to any watched file triggers another attempt.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use super::TlsContext;

/// How the watcher looks for changes.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// How often the certificate, key, password file and CA bundle are stat'ed. Default 5 s.
    pub interval: Duration,
    /// Also reload on SIGHUP (Unix). Default true. Installing the handler replaces SIGHUP's
    /// default action (terminate) for the whole process, for as long as the process lives.
    pub sighup: bool,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            interval: Duration::from_secs(5),
            sighup: true,
        }
    }
}

/// The running watcher; dropping it stops the thread (within 200 ms) and joins it.
#[derive(Debug)]
pub struct CertWatcher {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
    #[cfg(unix)]
    signal: Option<signal_hook::SigId>,
}

/// The longest the thread sleeps between looks at the SIGHUP flag and the stop channel.
const TICK: Duration = Duration::from_millis(200);

/// What identifies a file's content cheaply: mtime, length and inode (an atomic rename of a
/// new file changes the inode even when mtime and length happen to be equal).
type Stamp = Option<(Option<SystemTime>, u64, u64)>;

fn stamp(path: &PathBuf) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let ino = 0;
    Some((meta.modified().ok(), meta.len(), ino))
}

impl CertWatcher {
    pub(crate) fn spawn(ctx: TlsContext, options: WatchOptions) -> std::io::Result<CertWatcher> {
        let hup = Arc::new(AtomicBool::new(false));
        #[cfg(unix)]
        let signal = if options.sighup {
            Some(signal_hook::flag::register(
                signal_hook::consts::SIGHUP,
                Arc::clone(&hup),
            )?)
        } else {
            None
        };
        let (stop, stopped) = mpsc::channel::<()>();
        let interval = options.interval.max(Duration::from_millis(10));
        let thread = thread::Builder::new()
            .name("wharf-tls-watch".into())
            .spawn(move || watch_loop(ctx, interval, hup, stopped))?;
        Ok(CertWatcher {
            stop: Some(stop),
            thread: Some(thread),
            #[cfg(unix)]
            signal,
        })
    }
}

fn watch_loop(
    ctx: TlsContext,
    interval: Duration,
    hup: Arc<AtomicBool>,
    stopped: mpsc::Receiver<()>,
) {
    let paths = ctx.watched_paths();
    let mut stamps: Vec<Stamp> = paths.iter().map(stamp).collect();
    let mut next_look = Instant::now() + interval;
    loop {
        match stopped.recv_timeout(TICK.min(interval)) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let mut why = None;
        if hup.swap(false, Ordering::SeqCst) {
            why = Some("SIGHUP");
        }
        if Instant::now() >= next_look {
            next_look = Instant::now() + interval;
            let now: Vec<Stamp> = paths.iter().map(stamp).collect();
            if now != stamps {
                stamps = now;
                why = why.or(Some("a certificate file changed"));
            }
        }
        if let Some(why) = why {
            match ctx.reload() {
                Ok(()) => log::info!(
                    "TLS certificate reloaded ({why}); SHA-256 fingerprint {}",
                    ctx.fingerprint()
                ),
                Err(e) => log::error!(
                    "TLS certificate reload ({why}) failed, keeping the current one: {e}"
                ),
            }
        }
    }
}

impl Drop for CertWatcher {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(id) = self.signal.take() {
            signal_hook::low_level::unregister(id);
        }
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
