//! The server: it binds the listeners, watches the user store, and runs the door and the
//! worker pool until it cannot go on.
//!
//! Every connection is served by one worker thread from a bounded pool, and the workers take
//! turns at the door (leader/followers): the worker that accepts a connection serves it.
//! docs/sessions.md explains the choice and its figures. The parts:
//! - [`door`]: the listeners' mio `Poll`, accept, and the refusals at connect time (IP filter,
//!   bans, connection limits: `421` and close);
//! - [`pool`]: the worker threads (started on demand, bounded by `max_connections` + 1, ended
//!   after [`pool::WORKER_IDLE`] without work) and the hand-over of the door;
//! - here: [`Server`] (bind, run) and the user store's reload ([`watch_store`]).
//!
//! What sessions share is [`crate::shared::Shared`]; the counts behind the limits and the
//! bans are [`crate::logins`]; the file watching is [`crate::reload`]. This module owns the
//! threads of the server and must not hold state of its own that sessions read: a connection
//! ([`crate::driver`]) gets the `Shared` and nothing else from here.

pub mod door;
pub mod pool;

use log::{error, info, warn};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::reload::{Trigger, WatchOptions, Watcher};
use crate::shared::Shared;
use crate::store::StoreData;
use door::{listen, warn_small_somaxconn, Door, Listener};
use pool::{Pool, WORKER_IDLE};

/// How often [`watch_store`] looks at the user store file.
pub const STORE_POLL: Duration = Duration::from_secs(2);

/// A bound server, ready to run.
pub struct Server {
    shared: Arc<Shared>,
    listeners: Vec<Listener>,
}

impl Server {
    /// Binds every listen address of the settings, and the implicit-TLS ones when TLS is on.
    pub fn bind(shared: Shared) -> Result<Server, String> {
        let mut listeners = Vec::new();
        let implicit: &[SocketAddr] = if shared.tls.is_some() {
            &shared.settings.implicit_listen
        } else {
            &[]
        };
        let plain = shared.settings.listen.iter().map(|a| (a, false));
        for (addr, implicit) in plain.chain(implicit.iter().map(|a| (a, true))) {
            let l = listen(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            listeners.push(Listener {
                socket: l,
                implicit,
            });
        }
        warn_small_somaxconn();
        Ok(Server {
            shared: Arc::new(shared),
            listeners,
        })
    }

    /// The addresses of the plain (explicit-TLS capable) listeners actually bound (real ports
    /// when port 0 was asked for).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs(false)
    }

    /// The addresses of the implicit-TLS listeners actually bound.
    pub fn implicit_addrs(&self) -> Vec<SocketAddr> {
        self.addrs(true)
    }

    fn addrs(&self, implicit: bool) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter(|l| l.implicit == implicit)
            .filter_map(|l| l.socket.local_addr().ok())
            .collect()
    }

    /// The state shared by the sessions.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Accepts and serves connections until an unrecoverable error (the poll failing, no
    /// thread to start the first worker on).
    pub fn run(self) -> io::Result<()> {
        let door = Door::new(self.listeners)?;
        let (fatal, failed) = std::sync::mpsc::channel();
        let pool = Arc::new(Pool::new(self.shared, fatal, WORKER_IDLE));
        pool.pass_on(door);
        if pool.threads() == 0 {
            return Err(io::Error::other("cannot start a worker thread"));
        }
        // Every worker holds a sender: the channel stays open while the pool exists.
        failed
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("the worker pool is gone")))
    }
}

/// Reads the user store file again and, if it is good, puts its accounts in place of
/// the old ones (creating new partners' folders). Returns the number of accounts, or
/// every problem (file, key, reason); on error the old accounts stay.
pub fn reload_store(shared: &Shared) -> Result<usize, Vec<String>> {
    let s = &shared.settings;
    let data = if s.users_file.exists() {
        crate::store::load(&s.users_file, &s.partners_root)
            .map_err(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>())?
    } else if s.users_file_explicit {
        // A store that was named and is gone is more likely a mistake than the wish to
        // lock everybody out.
        return Err(vec![format!(
            "{}: the user store is missing",
            s.users_file.display()
        )]);
    } else {
        StoreData::default()
    };
    let problems = crate::storage::make_partner_trees(&data.partners);
    for p in &problems {
        warn!("{p}");
    }
    Ok(shared.replace_store(data))
}

/// Watches the user store file: looks at it every [`STORE_POLL`] (mtime, size, inode) and on
/// SIGHUP, and reloads it when it changed ([`reload_store`]). A bad file is logged
/// with every problem; the old accounts stay until the file is good again. Dropping the
/// watcher stops it: keep it for the server's whole life.
pub fn watch_store(shared: Arc<Shared>) -> io::Result<Watcher> {
    let path = shared.settings.users_file.clone();
    let options = WatchOptions {
        interval: STORE_POLL,
        sighup: true,
    };
    Watcher::spawn(
        "wharf-store-watch",
        vec![path.clone()],
        options,
        move |why| {
            let how = if why == Trigger::Signal {
                " (SIGHUP)"
            } else {
                ""
            };
            match reload_store(&shared) {
                Ok(n) => info!(
                    "user store {} reloaded{how}: {n} account(s)",
                    path.display()
                ),
                Err(problems) => {
                    error!(
                        "user store {} not reloaded; the accounts stay as they were:",
                        path.display()
                    );
                    for p in problems {
                        error!("  {p}");
                    }
                }
            }
        },
    )
}
