//! Wharf's second driver: the whole FTP/FTPS server on **one thread with one `mio::Poll`**,
//! serving many sessions with non-blocking sockets. It shows that wharf-core's contract (the
//! top of core/src/lib.rs) is all an event loop needs: the protocol is the core's; files,
//! accounts, login counts, certificates and checksums are the runtime's public types
//! (`LocalFs`, `Users`, `Logins`, `TlsContext`, `ChecksumTask`); this program only moves
//! bytes between them.
//!
//! ```text
//! cargo run --release --example mio_driver -- --listen 127.0.0.1:2121 --root DIR --user NAME:PASSWORD
//! ```
//!
//! **The loop.** One `Poll` watches the listener and, for each connection `n`, up to three
//! sockets whose tokens say what they are: `4n` the control connection, `4n+1` its passive
//! listener, `4n+2` its data connection (`token`). An event marks connection `n` ready; so
//! does a timer that is due: each connection says when it next needs the loop without an
//! event ([`conn::Conn::wake`]: the session's `poll_timeout`, a transfer's connect or stall
//! deadline, a TLS handshake's deadline), and the loop sleeps until the earliest. A ready
//! connection is *driven* ([`conn::Conn::drive`]): its control socket is read and fed to
//! `Session::handle_input`, its transfer task is stepped ([`transfer::Transfer`]), and the
//! session's outputs are drained until `None` — replies appended to a bounded buffer that is
//! written as far as the socket takes it, actions carried out and their outcomes reported.
//! Sockets are edge-triggered, so a drive goes on until every socket it touched would block,
//! or hands the connection back to the loop after a fixed number of rounds so that a fast
//! transfer cannot starve the others. FTPS (AUTH TLS, PROT P) is rustls' `ServerConnection`
//! over the same non-blocking sockets ([`wire::Wire`]), with the runtime's `TlsContext`, so
//! a protected data connection must resume a TLS session of its client exactly as in `wharf
//! serve`.
//!
//! **What it leaves out** (the blocking server, `wharf serve`, has them all): MODE B/C restart
//! markers (none sent; a client's are not acknowledged with 110, so a failed upload is not
//! kept for a restart); sendfile,
//! splice and direct I/O (every byte goes through a 64 KiB buffer); rate limits (a plan's
//! `rate_limit` is not applied); the passive port list, `passive_address` and the active
//! local port (passive listeners take any port); implicit TLS, CCC and REIN back to the
//! clear (a session asking for `StopTls` is closed), client certificates and certificate
//! reload; the configuration file, the user store file (only `--user` accounts), connection
//! limits, bans and the PROXY protocol; events (logged only: no events file, event command,
//! transfer log or statistics; SITE WHO/STAT are refused). The password check (argon2, ~10 ms
//! the first time; the login cache makes later logins cheap) and the file system calls
//! block the loop while they run — a server for real load would hand them to a thread pool
//! and report their outcomes when they come back, which the contract allows.

#![forbid(unsafe_code)]

mod conn;
mod transfer;
mod wire;

use clap::Parser;
use log::{info, warn};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use std::collections::{BTreeSet, HashMap};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wharf_blocking::config::Settings;
use wharf_blocking::logins::Logins;
use wharf_blocking::store::{StoreData, UserEntry};
use wharf_blocking::tls::TlsContext;
use wharf_blocking::users::{hash_password, Users, DEFAULT_LOGIN_CACHE};
use wharf_core::Config;

use conn::{Conn, Drive};

/// The listening socket's token.
const LISTENER: Token = Token(0);
/// Connection `n`'s sockets: `token(n, CONTROL)`, `token(n, PASSIVE)`, `token(n, DATA)`.
pub const CONTROL: usize = 0;
pub const PASSIVE: usize = 1;
pub const DATA: usize = 2;

pub fn token(n: usize, socket: usize) -> Token {
    Token(n * 4 + socket)
}

/// Connections accepted per listener event before the loop serves the others.
const ACCEPTS: usize = 256;

/// A single-threaded FTP/FTPS server on mio around wharf-core (an example of the Wharf
/// workspace; see its source for what it leaves out).
#[derive(Parser)]
struct Args {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:2121")]
    listen: SocketAddr,
    /// Folder served to the --user accounts (made if missing).
    #[arg(long)]
    root: PathBuf,
    /// An account NAME:PASSWORD whose home is the root (repeatable).
    #[arg(long = "user", value_name = "NAME:PASSWORD", required = true)]
    users: Vec<String>,
    /// A logged-in session without a command for this long is closed.
    #[arg(long, default_value_t = 300)]
    idle_timeout_secs: u64,
    /// Where the self-signed TLS certificate is made (and kept); not inside --root.
    #[arg(long, default_value = "wharf-tls")]
    tls_dir: PathBuf,
}

/// What every connection shares.
pub struct Env {
    pub config: Arc<Config>,
    pub users: Users,
    pub tls: Option<TlsContext>,
    /// The logins held now, behind the core's login limits (the runtime's table, for the
    /// whole life of the process).
    pub logins: &'static Logins,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match Server::start(Args::parse()) {
        Ok(mut server) => server.run(),
        Err(e) => {
            eprintln!("mio_driver: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Server {
    poll: Poll,
    listener: TcpListener,
    env: Env,
    conns: HashMap<usize, Conn>,
    next: usize,
}

impl Server {
    /// The accounts, the certificate, the core's configuration and the listener, set up as
    /// `wharf serve` sets them up from the same options.
    fn start(args: Args) -> Result<Server, String> {
        std::fs::create_dir_all(&args.root).map_err(|e| format!("{}: {e}", args.root.display()))?;
        let mut accounts = Vec::new();
        for user in &args.users {
            let (name, password) = user
                .split_once(':')
                .filter(|(n, p)| !n.is_empty() && !p.is_empty())
                .ok_or("--user wants NAME:PASSWORD, both non-empty")?;
            let hash = hash_password(password)?;
            accounts.push(UserEntry::new(name, &hash, Some(args.root.clone())));
        }
        let users = Users::new(StoreData::default(), accounts, None, DEFAULT_LOGIN_CACHE)?;
        let (tls, _) = TlsContext::self_signed_in(&args.tls_dir).map_err(|e| e.to_string())?;
        let mut settings = Settings::default();
        settings.core.idle_timeout = Duration::from_secs(args.idle_timeout_secs.max(1));
        settings.core.tls_available = true;
        let config = settings.core_config();
        let io = |e: io::Error| format!("{}: {e}", args.listen);
        let poll = Poll::new().map_err(io)?;
        let mut listener = TcpListener::bind(args.listen).map_err(io)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(io)?;
        let addr = listener.local_addr().map_err(io)?;
        let fingerprint = tls.fingerprint();
        let lines = format!(
            "tls certificate sha256 fingerprint: {fingerprint}\nlistening on ftp://{addr}\n"
        );
        let mut stdout = io::stdout();
        let _ = stdout
            .write_all(lines.as_bytes())
            .and_then(|()| stdout.flush());
        Ok(Server {
            poll,
            listener,
            env: Env {
                config,
                users,
                tls: Some(tls),
                logins: Box::leak(Box::new(Logins::new(0, Duration::ZERO, Duration::ZERO))),
            },
            conns: HashMap::new(),
            next: 1,
        })
    }

    /// The event loop (see the module documentation); returns only if polling fails.
    fn run(&mut self) -> ExitCode {
        let mut events = Events::with_capacity(1024);
        // Connections to drive now: an event came, a timer is due, or work was left.
        let mut ready = BTreeSet::new();
        let mut accept_again = false;
        loop {
            let timeout = if accept_again || !ready.is_empty() {
                Some(Duration::ZERO)
            } else {
                let now = Instant::now();
                let wake = self.conns.values().filter_map(Conn::wake).min();
                wake.map(|t| t.saturating_duration_since(now))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                eprintln!("mio_driver: poll: {e}");
                return ExitCode::FAILURE;
            }
            accept_again = accept_again && self.accept();
            for event in events.iter() {
                match event.token() {
                    LISTENER => accept_again = self.accept(),
                    Token(t) => _ = ready.insert(t / 4),
                }
            }
            let now = Instant::now();
            let due = self
                .conns
                .iter()
                .filter(|(_, c)| c.wake().is_some_and(|t| t <= now));
            ready.extend(due.map(|(n, _)| *n));
            for n in std::mem::take(&mut ready) {
                let Some(conn) = self.conns.get_mut(&n) else {
                    continue;
                };
                match conn.drive(&mut self.env, self.poll.registry()) {
                    Drive::Wait => {}
                    Drive::Again => _ = ready.insert(n),
                    Drive::Remove => _ = self.conns.remove(&n),
                }
            }
        }
    }

    /// Accepts pending connections; true when some may be left (accept again soon).
    fn accept(&mut self) -> bool {
        for _ in 0..ACCEPTS {
            let (mut tcp, peer) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of file descriptors, say: the next connection tries again.
                    warn!("accept: {e}");
                    return false;
                }
            };
            let n = self.next;
            self.next += 1;
            info!("session {n} start peer={peer}");
            let _ = tcp.set_nodelay(true);
            let registry = self.poll.registry();
            let interest = Interest::READABLE | Interest::WRITABLE;
            let conn = registry
                .register(&mut tcp, token(n, CONTROL), interest)
                .and_then(|()| Conn::new(n, &mut self.env, tcp, registry));
            match conn {
                Ok(conn) => _ = self.conns.insert(n, conn),
                Err(e) => warn!("session {n}: {e}; dropped"),
            }
        }
        true
    }
}
