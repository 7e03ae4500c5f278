//! Reloading files without a restart: one [`Watcher`] thread per thing to reload, which looks
//! at the files' metadata every [`WatchOptions::interval`] and, if asked, listens for SIGHUP,
//! and calls its user's reload function when a file changed or the signal came.
//!
//! Used by the TLS certificates ([`crate::tls::TlsContext::watch`]) and the user store
//! ([`crate::server::watch_store`]). This module owns the thread, the polling and the signal
//! handler; it must not know what it reloads, read the files, or log: the reload function
//! does that, and decides what a failed reload means (both users keep what they had and log).
//!
//! - A file counts as changed when its stamp (mtime, length, inode: an atomic rename of a new
//!   file changes the inode even when mtime and length happen to be equal) differs from the
//!   last look; a file that appears or disappears changes too.
//! - SIGHUP calls the reload function at once (within [`TICK`]), whether or not a file
//!   changed, and counts as a look: the stamps seen then are the ones later looks compare
//!   with, so one change is not reloaded twice.
//! - Between two looks nothing is re-read: a reload that failed is tried again at the next
//!   change (or SIGHUP), not at every look.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// How a [`Watcher`] looks for changes.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// How often the watched files are stat'ed (10 ms at the least). Default 5 s.
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

/// Why a [`Watcher`] calls its reload function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP came (whether or not a file changed too).
    Signal,
    /// A watched file changed since the last look.
    Changed,
}

/// The running watcher; dropping it stops the thread (within [`TICK`]) and joins it.
#[derive(Debug)]
pub struct Watcher {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
    #[cfg(unix)]
    signal: Option<signal_hook::SigId>,
}

/// The longest the thread sleeps between looks at the SIGHUP flag and the stop channel.
pub const TICK: Duration = Duration::from_millis(200);

/// What identifies a file's content cheaply: mtime, length and inode; None when it is absent.
type Stamp = Option<(Option<SystemTime>, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let ino = 0;
    Some((meta.modified().ok(), meta.len(), ino))
}

fn stamps(paths: &[PathBuf]) -> Vec<Stamp> {
    paths.iter().map(|p| stamp(p)).collect()
}

impl Watcher {
    /// Starts a thread named `name` that calls `reload` when one of `paths` changes and, if
    /// `options.sighup`, on SIGHUP, until the watcher is dropped.
    pub fn spawn(
        name: &str,
        paths: Vec<PathBuf>,
        options: WatchOptions,
        reload: impl FnMut(Trigger) + Send + 'static,
    ) -> io::Result<Watcher> {
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
        let spawned = thread::Builder::new()
            .name(name.into())
            .spawn(move || watch_loop(&paths, interval, &hup, &stopped, reload));
        let thread = match spawned {
            Ok(t) => t,
            Err(e) => {
                #[cfg(unix)]
                if let Some(id) = signal {
                    signal_hook::low_level::unregister(id);
                }
                return Err(e);
            }
        };
        Ok(Watcher {
            stop: Some(stop),
            thread: Some(thread),
            #[cfg(unix)]
            signal,
        })
    }
}

fn watch_loop(
    paths: &[PathBuf],
    interval: Duration,
    hup: &AtomicBool,
    stopped: &mpsc::Receiver<()>,
    mut reload: impl FnMut(Trigger),
) {
    let mut seen = stamps(paths);
    let mut next_look = Instant::now() + interval;
    loop {
        match stopped.recv_timeout(TICK.min(interval)) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let signalled = hup.swap(false, Ordering::SeqCst);
        if !signalled && Instant::now() < next_look {
            continue;
        }
        next_look = Instant::now() + interval;
        let now = stamps(paths);
        let changed = now != seen;
        seen = now;
        if signalled {
            reload(Trigger::Signal);
        } else if changed {
            reload(Trigger::Changed);
        }
    }
}

impl Drop for Watcher {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder under the system's temporary directory, removed when dropped.
    struct Dir(PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_changed_file_is_reloaded_once_and_a_dropped_watcher_stops() {
        let dir = Dir(std::env::temp_dir().join(format!("wharf-reload-{}", std::process::id())));
        std::fs::create_dir_all(&dir.0).unwrap();
        let (a, b) = (dir.0.join("a"), dir.0.join("b"));
        std::fs::write(&a, "one").unwrap();
        let (calls, called) = mpsc::channel();
        let options = WatchOptions {
            interval: Duration::from_millis(20),
            sighup: false,
        };
        let paths = vec![a.clone(), b.clone()];
        let watcher = Watcher::spawn("wharf-test-watch", paths, options, move |why| {
            let _ = calls.send(why);
        })
        .unwrap();
        let quiet = Duration::from_millis(300);
        let next = || called.recv_timeout(Duration::from_secs(10));
        // Nothing changes: no reload.
        assert!(called.recv_timeout(quiet).is_err());
        // A new file by rename (same length, maybe the same mtime): one reload.
        std::fs::write(dir.0.join("new"), "two").unwrap();
        std::fs::rename(dir.0.join("new"), &a).unwrap();
        assert_eq!(next(), Ok(Trigger::Changed));
        assert!(
            called.recv_timeout(quiet).is_err(),
            "one change, one reload"
        );
        // A watched file that appears: one more.
        std::fs::write(dir.0.join("new"), "b").unwrap();
        std::fs::rename(dir.0.join("new"), &b).unwrap();
        assert_eq!(next(), Ok(Trigger::Changed));
        // Dropped: the thread is joined (and its end of the channel with it).
        drop(watcher);
        std::fs::write(&b, "bb").unwrap();
        assert_eq!(next(), Err(mpsc::RecvTimeoutError::Disconnected));
    }
}
