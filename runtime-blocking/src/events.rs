//! Events: what the core reports with [`ActionKind::Notify`](wharf_core::ActionKind::Notify)
//! goes to the events file (one JSON object per line), the external event command, the
//! transfer log (xferlog) and the live statistics; administrators' SITE WHO and SITE STAT
//! are answered from here.
//!
//! What it owns: [`EventHub`], one per server (in [`crate::shared::Shared`]), holding the
//! open log files, the event command's [`Runner`], the [`Stats`] and the [`Registry`] of
//! logged-in sessions; and [`SessionTracker`], one per connection, which turns a session's
//! events into those records and undoes its counts when the connection ends, however it ends.
//!
//! What it must not do: make a session wait (a line is one `write(2)` to a file opened with
//! `O_APPEND`, the command runs on its own thread behind a bounded queue), or decide
//! anything: the core decided what happened, this only records it. The order is the core's:
//! a transfer's event arrives after its final reply was written, so `upload_complete` is
//! recorded after the client got its `226`.
//!
//! # The events file
//! One JSON object per line, every key always present (`null` when it does not apply):
//! ```json
//! {"time":"2026-11-21T20:30:00.123+00:00","event":"upload_complete","session":7,
//!  "user":"acme/alice","partner":"acme","client":"127.0.0.1:50412","path":"/Outbox/a.txt",
//!  "to":null,"size":5,"duration":0.004,"result":"ok","reason":null}
//! ```
//! (one line in the file). `result` is `ok`, `failed` (a refused connection, a failed login,
//! a transfer that moved nothing) or `incomplete` (a transfer cut after bytes moved, and
//! always a protected upload that ended without the client's TLS close_notify): for
//! `incomplete` and `failed` uploads, what is on disk must not be taken as the file.
//! Strings are escaped as JSON requires (quotes, backslashes, every control character,
//! and U+2028/U+2029 for JavaScript readers); they are valid UTF-8 already.
//!
//! Each line is written with one `write(2)` call on a file opened with `O_APPEND`, under a
//! lock, so lines of concurrent sessions (and of other processes appending to the same file)
//! never interleave. The file is checked once a second: when it was renamed or removed (log
//! rotation), it is opened again under its name.

use log::warn;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};
use wharf_core::action::{AdminInfo, AdminQuery, Event, EventKind};
use wharf_core::{Account, Lost, TransferError, UnixTime};

use crate::event_command::{CommandLine, Runner};
use crate::stats::{Counter, LastCommand, Registry, Stats};
use crate::xferlog;

/// The name of every event, as the events file and `event_command_events` spell them.
pub const EVENT_NAMES: &[&str] = &[
    "connect",
    "login",
    "login_failed",
    "logout",
    "upload_complete",
    "upload_failed",
    "download_complete",
    "download_failed",
    "delete",
    "rename",
    "mkdir",
    "rmdir",
];

/// How often an append-only log checks that its file is still the one under its name.
pub const REOPEN_CHECK: Duration = Duration::from_secs(1);
/// Least time between two warnings about the same log file failing.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The wall-clock time now, in seconds and milliseconds since 1970 (UTC).
fn wall_clock() -> (UnixTime, u32) {
    match SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => (
            UnixTime(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
            d.subsec_millis(),
        ),
        Err(_) => (UnixTime(0), 0),
    }
}

/// `2026-11-21T20:30:00.123+00:00`: RFC 3339, UTC, with milliseconds.
pub fn rfc3339(t: UnixTime, millis: u32) -> String {
    let c = t.to_civil();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+00:00",
        c.year.clamp(0, 9999),
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        millis.min(999)
    )
}

/// Appends `s` to `out` as a JSON string, quotes included.
pub fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `ok`, `failed` or `incomplete`, as the events file says it (see the module docs).
pub fn result_of(event: &Event) -> &'static str {
    match event.kind {
        EventKind::LoginFailed => "failed",
        EventKind::Connect if event.reason.is_some() => "failed",
        EventKind::UploadFailed | EventKind::DownloadFailed => {
            let unconfirmed = matches!(
                event.failure,
                Some(TransferError::ConnectionLost(Lost::NoCloseNotify))
            );
            if unconfirmed || event.size.unwrap_or(0) > 0 {
                "incomplete"
            } else {
                "failed"
            }
        }
        _ => "ok",
    }
}

/// The events-file line of `event` (without the newline), at `time`, for session `session`.
pub fn json_line(event: &Event, session: u64, time: (UnixTime, u32)) -> String {
    let mut o = String::with_capacity(256);
    let opt = |o: &mut String, v: Option<&str>| match v {
        Some(s) => json_string(o, s),
        None => o.push_str("null"),
    };
    o.push_str("{\"time\":");
    json_string(&mut o, &rfc3339(time.0, time.1));
    o.push_str(",\"event\":");
    json_string(&mut o, event.kind.as_str());
    let _ = write!(o, ",\"session\":{session},\"user\":");
    opt(&mut o, event.user.as_deref());
    o.push_str(",\"partner\":");
    opt(&mut o, event.partner.as_deref());
    o.push_str(",\"client\":");
    json_string(&mut o, &event.peer.to_string());
    o.push_str(",\"path\":");
    opt(&mut o, event.path.as_ref().map(|p| p.as_str()));
    o.push_str(",\"to\":");
    opt(&mut o, event.to.as_ref().map(|p| p.as_str()));
    o.push_str(",\"size\":");
    match event.size {
        Some(n) => {
            let _ = write!(o, "{n}");
        }
        None => o.push_str("null"),
    }
    o.push_str(",\"duration\":");
    match event.duration {
        Some(d) => {
            let _ = write!(o, "{:.3}", d.as_secs_f64());
        }
        None => o.push_str("null"),
    }
    o.push_str(",\"result\":");
    json_string(&mut o, result_of(event));
    o.push_str(",\"reason\":");
    opt(&mut o, event.reason.as_deref());
    o.push('}');
    o
}

/// A log file lines are appended to: one `write(2)` per line, `O_APPEND`, reopened when the
/// file under its name changed (log rotation).
#[derive(Debug)]
pub struct AppendLog {
    path: PathBuf,
    state: Mutex<LogState>,
}

#[derive(Debug)]
struct LogState {
    file: File,
    /// Device and inode of the open file.
    id: (u64, u64),
    checked: Instant,
    warned: Option<Instant>,
}

fn open_append(path: &Path) -> std::io::Result<(File, (u64, u64))> {
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)?;
    let m = file.metadata()?;
    if !m.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok((file, (m.dev(), m.ino())))
}

impl AppendLog {
    /// Opens (creating if needed) `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<AppendLog> {
        let (file, id) = open_append(path)?;
        Ok(AppendLog {
            path: path.to_path_buf(),
            state: Mutex::new(LogState {
                file,
                id,
                checked: Instant::now(),
                warned: None,
            }),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `line` (which ends with a newline) in one write. Failures are logged (at most
    /// one warning per `WARN_EVERY`), never returned: a full disk must not end sessions.
    pub fn append(&self, line: &[u8]) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if now.duration_since(st.checked) >= REOPEN_CHECK {
            st.checked = now;
            let current = std::fs::metadata(&self.path).map(|m| (m.dev(), m.ino()));
            if current.ok() != Some(st.id) {
                match open_append(&self.path) {
                    Ok((file, id)) => {
                        st.file = file;
                        st.id = id;
                    }
                    Err(e) => warn_once(&mut st, &self.path, &format!("cannot reopen it: {e}")),
                }
            }
        }
        let r = match st.file.write(line) {
            Ok(n) if n == line.len() => Ok(()),
            // A short write (disk full): the rest, so that at least the line is whole.
            Ok(n) => st.file.write_all(&line[n..]),
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            warn_once(&mut st, &self.path, &format!("cannot write: {e}"));
        }
    }
}

fn warn_once(st: &mut LogState, path: &Path, what: &str) {
    let now = Instant::now();
    if st
        .warned
        .is_none_or(|w| now.duration_since(w) >= WARN_EVERY)
    {
        st.warned = Some(now);
        warn!("log file {}: {what}", path.display());
    }
}

/// The event command and which events it runs for.
#[derive(Debug)]
struct EventCommand {
    runner: Runner,
    /// `None`: every event.
    only: Option<Vec<String>>,
}

/// Where events go, as the configuration says (its keys `events_file`, `xferlog_file` and
/// `event_command*`, read by the config module).
#[derive(Clone, Debug)]
pub struct EventSettings {
    /// `events_file`: one JSON object per event and line. Default none.
    pub events_file: Option<PathBuf>,
    /// `xferlog_file`: the transfer log. Default none.
    pub xferlog_file: Option<PathBuf>,
    /// `event_command`: the program run once per event. Default none.
    pub command: Option<CommandLine>,
    /// `event_command_timeout_secs`: a command still running after this long is killed.
    /// Default 10 s.
    pub command_timeout: Duration,
    /// `event_command_events`: the events the command runs for. Default: every event.
    pub command_events: Option<Vec<String>>,
}

impl Default for EventSettings {
    fn default() -> EventSettings {
        EventSettings {
            events_file: None,
            xferlog_file: None,
            command: None,
            command_timeout: Duration::from_secs(10),
            command_events: None,
        }
    }
}

/// Everything events go to, for one server.
#[derive(Debug)]
pub struct EventHub {
    stats: Stats,
    registry: Registry,
    events_file: Option<AppendLog>,
    xferlog: Option<AppendLog>,
    command: Option<EventCommand>,
}

impl Default for EventHub {
    /// Statistics only: no events file, transfer log or command.
    fn default() -> EventHub {
        EventHub {
            stats: Stats::new(wall_clock().0),
            registry: Registry::default(),
            events_file: None,
            xferlog: None,
            command: None,
        }
    }
}

impl EventHub {
    /// Opens the events file and the transfer log and starts the event command's runner, as
    /// `settings` say. An error names the configuration key and the problem.
    pub fn open(settings: &EventSettings) -> Result<EventHub, (&'static str, String)> {
        let mut hub = EventHub::default();
        let open = |key: &'static str, path: &Option<PathBuf>| match path {
            Some(p) => AppendLog::open(p).map(Some).map_err(|e| {
                (
                    key,
                    format!("cannot open {} for appending: {e}", p.display()),
                )
            }),
            None => Ok(None),
        };
        hub.events_file = open("events_file", &settings.events_file)?;
        hub.xferlog = open("xferlog_file", &settings.xferlog_file)?;
        if let Some(cmd) = &settings.command {
            let runner = Runner::start(cmd.clone(), settings.command_timeout)
                .map_err(|e| ("event_command", format!("cannot start its thread: {e}")))?;
            hub.command = Some(EventCommand {
                runner,
                only: settings.command_events.clone(),
            });
        }
        Ok(hub)
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The logged-in sessions.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Starts following connection `id` from `peer` (counted as a connection until the
    /// tracker is dropped).
    pub fn session(&self, id: u64, peer: SocketAddr) -> SessionTracker<'_> {
        self.stats.connection_opened();
        let last_command = LastCommand::default();
        last_command.set(wall_clock().0);
        SessionTracker {
            hub: self,
            id,
            peer,
            authenticated_anonymous: false,
            logged_in: None,
            last_command,
        }
    }

    /// The answer to SITE WHO or SITE STAT; `None` for a query this module does not answer
    /// (SITE DESCUSER: the user store does).
    pub fn admin(&self, q: &AdminQuery) -> Option<AdminInfo> {
        match q {
            AdminQuery::Who => Some(AdminInfo::Who(self.registry.summaries())),
            AdminQuery::Stat => Some(AdminInfo::Stat(self.stats.snapshot())),
            _ => None,
        }
    }
}

/// One connection's view of the [`EventHub`]: records its events and, when dropped, takes
/// back what it counted (the connection, a login still open).
#[derive(Debug)]
pub struct SessionTracker<'a> {
    hub: &'a EventHub,
    id: u64,
    peer: SocketAddr,
    /// The last account the user store accepted was the anonymous one.
    authenticated_anonymous: bool,
    /// Logged in (and whether anonymously), as counted in the statistics and the registry.
    logged_in: Option<bool>,
    last_command: LastCommand,
}

impl SessionTracker<'_> {
    /// The control connection brought a command (SITE WHO's last command time).
    pub fn command_received(&self) {
        self.last_command.set(wall_clock().0);
    }

    /// The user store accepted `account` (its login event follows unless a login limit
    /// refuses it).
    pub fn authenticated(&mut self, account: &Account) {
        self.authenticated_anonymous = account.anonymous;
    }

    /// Records one event of this session.
    pub fn record(&mut self, event: &Event) {
        let hub = self.hub;
        let now = wall_clock();
        let line = (hub.events_file.is_some() || hub.command.is_some())
            .then(|| json_line(event, self.id, now));
        if let (Some(log), Some(line)) = (&hub.events_file, &line) {
            let mut bytes = Vec::with_capacity(line.len() + 1);
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
            log.append(&bytes);
        }
        if let (Some(cmd), Some(line)) = (&hub.command, line) {
            let name = event.kind.as_str();
            if cmd
                .only
                .as_ref()
                .is_none_or(|only| only.iter().any(|n| n == name))
            {
                cmd.runner.submit(name, line);
            }
        }
        let stats = &hub.stats;
        match event.kind {
            EventKind::Login => {
                self.logged_out();
                let anonymous = self.authenticated_anonymous;
                self.logged_in = Some(anonymous);
                stats.login(anonymous);
                let user = event.user.clone().unwrap_or_default();
                hub.registry
                    .insert(self.id, user, self.peer, now.0, self.last_command.clone());
            }
            EventKind::Logout => self.logged_out(),
            EventKind::UploadComplete
            | EventKind::UploadFailed
            | EventKind::DownloadComplete
            | EventKind::DownloadFailed => {
                let upload = matches!(
                    event.kind,
                    EventKind::UploadComplete | EventKind::UploadFailed
                );
                let complete = matches!(
                    event.kind,
                    EventKind::UploadComplete | EventKind::DownloadComplete
                );
                let size = event.size.unwrap_or(0);
                stats.add_bytes(upload, size);
                if complete {
                    stats.count(if upload {
                        Counter::Upload
                    } else {
                        Counter::Download
                    });
                }
                // Only transfers that started (got their 150; see the xferlog module).
                if let (Some(log), Some(duration)) = (&hub.xferlog, event.duration) {
                    let path = event.path.as_ref().map_or("", |p| p.as_str());
                    let t = xferlog::Transfer {
                        time: now.0,
                        duration,
                        remote_host: event.peer.ip(),
                        size,
                        filename: path,
                        representation: event
                            .representation
                            .unwrap_or(wharf_core::Representation::Binary),
                        incoming: upload,
                        anonymous: self.logged_in == Some(true),
                        user: event.user.as_deref().unwrap_or(""),
                        complete,
                    };
                    log.append(xferlog::line(&t).as_bytes());
                }
            }
            EventKind::Delete => stats.count(Counter::Delete),
            EventKind::Mkdir => stats.count(Counter::DirCreated),
            EventKind::Rmdir => stats.count(Counter::DirRemoved),
            _ => {}
        }
    }

    /// Takes back a login counted for this session, if any.
    fn logged_out(&mut self) {
        if let Some(anonymous) = self.logged_in.take() {
            self.hub.stats.logout(anonymous);
            self.hub.registry.remove(self.id);
        }
    }
}

impl Drop for SessionTracker<'_> {
    fn drop(&mut self) {
        self.logged_out();
        self.hub.stats.connection_closed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_core::{Representation, VirtualPath};

    fn event(kind: EventKind) -> Event {
        // Event is non_exhaustive: start from one the core's types allow us to build.
        let mut e = blank(kind);
        e.user = Some("acme/alice".into());
        e.partner = Some("acme".into());
        e
    }

    /// An event as the core makes them (`Event` cannot be built outside the core): the
    /// connect event of a new session, turned into `kind`.
    fn blank(kind: EventKind) -> Event {
        let config = std::sync::Arc::new(wharf_core::Config::default());
        let peer = "127.0.0.1:50412".parse().unwrap();
        let local = "127.0.0.1:21".parse().unwrap();
        let mut s = wharf_core::Session::new(config, peer, local, Instant::now());
        for _ in 0..10 {
            if let Some(wharf_core::Output::Action(a)) = s.poll_output() {
                if let wharf_core::ActionKind::Notify(mut e) = a.kind {
                    e.kind = kind;
                    return e;
                }
            }
        }
        panic!("a new session sends no connect event");
    }

    #[test]
    fn names_match_the_core() {
        let kinds = [
            EventKind::Connect,
            EventKind::Login,
            EventKind::LoginFailed,
            EventKind::Logout,
            EventKind::UploadComplete,
            EventKind::UploadFailed,
            EventKind::DownloadComplete,
            EventKind::DownloadFailed,
            EventKind::Delete,
            EventKind::Rename,
            EventKind::Mkdir,
            EventKind::Rmdir,
        ];
        let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        assert_eq!(names, EVENT_NAMES);
    }

    #[test]
    fn rfc3339_form() {
        assert_eq!(rfc3339(UnixTime(0), 5), "1970-01-01T00:00:00.005+00:00");
        assert_eq!(
            rfc3339(UnixTime(1_795_293_000), 123),
            "2026-11-21T20:30:00.123+00:00"
        );
    }

    #[test]
    fn json_escaping() {
        let mut s = String::new();
        json_string(&mut s, "a\"b\\c\nd\re\tf\u{1}g\u{7f}h\u{2028}ï/");
        assert_eq!(s, r#""a\"b\\c\nd\re\tf\u0001g\u007fh\u2028ï/""#);
    }

    #[test]
    fn a_whole_line() {
        let mut e = event(EventKind::UploadComplete);
        e.path = Some(VirtualPath::resolve(&VirtualPath::root(), "/Outbox/a \"b\".txt").unwrap());
        e.size = Some(5);
        e.duration = Some(Duration::from_millis(1234));
        e.representation = Some(Representation::Binary);
        assert_eq!(
            json_line(&e, 7, (UnixTime(1_795_293_000), 123)),
            r#"{"time":"2026-11-21T20:30:00.123+00:00","event":"upload_complete","session":7,"user":"acme/alice","partner":"acme","client":"127.0.0.1:50412","path":"/Outbox/a \"b\".txt","to":null,"size":5,"duration":1.234,"result":"ok","reason":null}"#
        );
    }

    #[test]
    fn results() {
        assert_eq!(result_of(&blank(EventKind::Connect)), "ok");
        let mut refused = blank(EventKind::Connect);
        refused.reason = Some("address refused".into());
        assert_eq!(result_of(&refused), "failed");
        assert_eq!(result_of(&blank(EventKind::LoginFailed)), "failed");
        let mut cut = event(EventKind::UploadFailed);
        cut.size = Some(0);
        assert_eq!(result_of(&cut), "failed");
        cut.size = Some(10);
        assert_eq!(result_of(&cut), "incomplete");
        cut.size = Some(0);
        cut.failure = Some(TransferError::ConnectionLost(Lost::NoCloseNotify));
        assert_eq!(result_of(&cut), "incomplete");
        let mut logout = event(EventKind::Logout);
        logout.reason = Some("connection closed by the client".into());
        assert_eq!(result_of(&logout), "ok");
    }

    #[test]
    fn a_tracker_counts_and_takes_back() {
        let hub = EventHub::default();
        {
            let mut t = hub.session(1, "127.0.0.1:1".parse().unwrap());
            let mut anon = wharf_core::Account::anonymous();
            anon.name = "anonymous".into();
            t.authenticated(&anon);
            t.record(&event(EventKind::Login));
            let mut t2 = hub.session(2, "127.0.0.1:2".parse().unwrap());
            t2.authenticated(&wharf_core::Account::new("acme/alice"));
            t2.record(&event(EventKind::Login));
            let mut up = event(EventKind::UploadComplete);
            up.size = Some(100);
            t2.record(&up);
            let mut cut = event(EventKind::DownloadFailed);
            cut.size = Some(30);
            t2.record(&cut);
            t2.record(&event(EventKind::Mkdir));
            t2.record(&event(EventKind::Logout));
            let s = hub.stats().snapshot();
            assert_eq!((s.connections_current, s.connections_total), (2, 2));
            assert_eq!((s.logins_current, s.logins_total), (1, 2));
            assert_eq!((s.anonymous_current, s.anonymous_total), (1, 1));
            assert_eq!(
                (s.uploads, s.bytes_up, s.downloads, s.bytes_down),
                (1, 100, 0, 30)
            );
            assert_eq!(s.dirs_created, 1);
            assert_eq!(hub.registry().len(), 1);
            // t dropped while still logged in: no logout event, the counts go back anyway.
        }
        let s = hub.stats().snapshot();
        assert_eq!((s.connections_current, s.logins_current), (0, 0));
        assert_eq!(s.anonymous_current, 0);
        assert!(hub.registry().is_empty());
    }

    #[test]
    fn lines_are_appended_whole_by_concurrent_writers() {
        let dir = std::env::temp_dir().join(format!("wharf-appendlog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        let log = AppendLog::open(&path).unwrap();
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let log = &log;
                s.spawn(move || {
                    let line = format!("{}\n", char::from(b'a' + t).to_string().repeat(3000));
                    for _ in 0..200 {
                        log.append(line.as_bytes());
                    }
                });
            }
        });
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 800);
        for l in text.lines() {
            assert_eq!(l.len(), 3000);
            assert!(
                l.chars().all(|c| c == l.chars().next().unwrap()),
                "mixed line"
            );
        }
        // Rotation: the file is renamed away; the next line (after the check interval) goes
        // to a new file under the old name.
        std::fs::rename(&path, dir.join("events.jsonl.1")).unwrap();
        std::thread::sleep(REOPEN_CHECK + Duration::from_millis(50));
        log.append(b"after\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "after\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
