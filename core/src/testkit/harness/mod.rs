//! The harness: a session and the fake runtime around it ([`Harness`], [`HarnessBuilder`]).

use super::*;

mod runtime;

/// How the next data connection fails ([`Harness::fail_next_data`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataFailure {
    /// The data connection cannot be opened (the client never connects): reply 425.
    Connect(String),
    /// The data connection breaks after the transfer started, half-way: reply 426.
    Lost(String),
    /// All of an upload arrives, but the file cannot be put in place (as an atomic upload
    /// whose rename fails): the file is not changed, reply 451.
    NotPlaced(String),
}

/// What a recorded transfer moved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// RETR of a file from an offset.
    Retrieve {
        /// The file.
        path: VirtualPath,
        /// The REST offset.
        offset: u64,
    },
    /// STOR, APPE or STOU.
    Store {
        /// The file asked for (for STOU: the name to start from).
        path: VirtualPath,
        /// How it was opened.
        mode: StoreMode,
    },
    /// LIST, NLST or MLSD.
    Listing,
}

/// One transfer as the fake runtime saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferRecord {
    /// The id of the [`ActionKind::Transfer`].
    pub id: ActionId,
    /// What moved.
    pub kind: RecordKind,
    /// Where the data connection came from.
    pub endpoint: DataEndpoint,
    /// Type, structure and mode.
    pub format: DataFormat,
    /// The bytes on the data connection: sent for retrieve and listing, received for store.
    pub data: Vec<u8>,
    /// For a store, the path actually written (STOU picks a free name).
    pub stored_as: Option<VirtualPath>,
    /// How it ended; `None` while it runs.
    pub result: Option<Result<(), TransferError>>,
    /// The plan's rate limit, bytes per second.
    pub rate_limit: Option<u64>,
    /// The plan's data protection.
    pub protection: crate::action::DataProtection,
}

#[derive(Debug)]
enum Prepared {
    /// Bytes to send (already encoded for the wire), and the codec's error if encoding
    /// stopped part-way (the transfer then fails after sending what came before it).
    Send(Vec<u8>, Option<CodecError>),
    /// An upload into `path`, whose contents before the upload are `base`.
    Receive { path: String, base: Vec<u8> },
}

#[derive(Debug)]
struct Running {
    /// Index in `transfers` is not stable (records are dropped); keep the id.
    id: ActionId,
    prepared: Prepared,
    lost: Option<String>,
    not_placed: Option<String>,
}

#[derive(Clone, Debug)]
struct UserEntry {
    password: String,
    account: Account,
}

/// The passive listener the session has open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    /// The local address it listens on.
    pub ip: IpAddr,
    /// The client's address, which it accepts a data connection from...
    pub peer: IpAddr,
    /// ...and the servers it also accepts one from (third-party transfers).
    pub fxp_peers: Vec<Cidr>,
    /// The port.
    pub port: u16,
}

/// Sets up a [`Harness`]: configuration, addresses, users, files, wall clock.
#[derive(Clone, Debug)]
pub struct HarnessBuilder {
    config: Config,
    peer: SocketAddr,
    local: SocketAddr,
    fs: MemFs,
    users: BTreeMap<String, UserEntry>,
    anonymous: bool,
    wall: UnixTime,
    implicit_tls: bool,
}

impl Default for HarnessBuilder {
    fn default() -> HarnessBuilder {
        HarnessBuilder {
            config: Config::default(),
            peer: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40_000),
            local: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 2121),
            fs: MemFs::new(),
            users: BTreeMap::new(),
            anonymous: false,
            wall: default_wall_clock(),
            implicit_tls: false,
        }
    }
}

impl HarnessBuilder {
    /// Starts the session as on an implicit-TLS listener, the handshake done before the
    /// greeting ([`Session::new_implicit_tls`], no client identity).
    pub fn implicit_tls(mut self) -> HarnessBuilder {
        self.implicit_tls = true;
        self
    }

    /// Changes the session's configuration.
    pub fn config(mut self, f: impl FnOnce(&mut Config)) -> HarnessBuilder {
        f(&mut self.config);
        self
    }

    /// The client's address (default `127.0.0.1:40000`).
    pub fn peer(mut self, peer: SocketAddr) -> HarnessBuilder {
        self.peer = peer;
        self
    }

    /// The server's address of the control connection (default `127.0.0.1:2121`).
    pub fn local(mut self, local: SocketAddr) -> HarnessBuilder {
        self.local = local;
        self
    }

    /// Adds a user; `write` lets them change files.
    pub fn user(self, name: &str, password: &str, write: bool) -> HarnessBuilder {
        let mut account = Account::new(name);
        account.write = write;
        self.user_account(password, account)
    }

    /// Adds a user described in full (partner, limits, fixed folders...); logs in by
    /// `account.name`.
    pub fn user_account(mut self, password: &str, account: Account) -> HarnessBuilder {
        self.users.insert(
            account.name.clone(),
            UserEntry {
                password: password.to_owned(),
                account,
            },
        );
        self
    }

    /// Lets `anonymous` and `ftp` log in, read-only.
    pub fn anonymous(mut self) -> HarnessBuilder {
        self.anonymous = true;
        self
    }

    /// The wall-clock time at the start (default [`default_wall_clock`]).
    pub fn wall_clock(mut self, t: UnixTime) -> HarnessBuilder {
        self.wall = t;
        self.fs.set_clock(t);
        self
    }

    /// The file system to start with (its clock is set to the wall clock).
    pub fn fs(mut self, fs: MemFs) -> HarnessBuilder {
        self.fs = fs;
        self.fs.set_clock(self.wall);
        self
    }

    /// Changes the file system in place.
    pub fn files(mut self, f: impl FnOnce(&mut MemFs)) -> HarnessBuilder {
        self.fs.set_clock(self.wall);
        f(&mut self.fs);
        self
    }

    /// The configuration the session will get.
    pub fn config_ref(&self) -> &Config {
        &self.config
    }

    /// Creates the session at instant `base` (the kit never reads a clock) and collects its
    /// greeting.
    pub fn start(self, base: Instant) -> Harness {
        let config = Arc::new(self.config);
        let session = if self.implicit_tls {
            let info = TlsInfo::new(None);
            Session::new_implicit_tls(Arc::clone(&config), self.peer, self.local, base, info)
        } else {
            Session::new(Arc::clone(&config), self.peer, self.local, base)
        };
        let mut h = Harness {
            session,
            config,
            fs: self.fs,
            users: self.users,
            anonymous: self.anonymous,
            users_unavailable: None,
            base,
            elapsed: Duration::ZERO,
            wall_base: self.wall,
            replies: VecDeque::new(),
            dropped_replies: 0,
            closed: false,
            uploads: VecDeque::new(),
            transfers: VecDeque::new(),
            next_port: FIRST_PASSIVE_PORT,
            listener: None,
            last_listener: None,
            fail_passive: None,
            fail_data: None,
            hold_next: false,
            hold_all: false,
            held_checksum: None,
            running: None,
            tls_stops: 0,
            anomalies: Vec::new(),
            events: VecDeque::new(),
            logins_held: 0,
            other_sessions: LoginCounts::default(),
            login_wall: None,
            client_identity: None,
            stats: ServerStats::default(),
        };
        h.drive(0);
        h
    }
}

/// A [`Session`] driven by a fake runtime. See the [module documentation](crate::testkit).
#[derive(Debug)]
pub struct Harness {
    session: Session,
    config: Arc<Config>,
    /// The file system the session's actions work on; tests may read and change it.
    pub fs: MemFs,
    users: BTreeMap<String, UserEntry>,
    anonymous: bool,
    users_unavailable: Option<String>,
    base: Instant,
    elapsed: Duration,
    wall_base: UnixTime,
    replies: VecDeque<Reply>,
    dropped_replies: u64,
    closed: bool,
    uploads: VecDeque<Vec<u8>>,
    transfers: VecDeque<TransferRecord>,
    next_port: u16,
    listener: Option<Listener>,
    last_listener: Option<Listener>,
    fail_passive: Option<String>,
    fail_data: Option<DataFailure>,
    hold_next: bool,
    hold_all: bool,
    running: Option<Running>,
    /// A held checksum: its id and its result, given at [`Harness::finish_transfer`].
    held_checksum: Option<(ActionId, Result<ChecksumValue, TransferError>)>,
    tls_stops: u32,
    anomalies: Vec<String>,
    events: VecDeque<Event>,
    logins_held: u32,
    other_sessions: LoginCounts,
    login_wall: Option<UnixTime>,
    client_identity: Option<String>,
    /// Counters for SITE STAT, kept from the events as a runtime would.
    stats: ServerStats,
}

impl Harness {
    /// A builder with the defaults: `Config::default()`, client `127.0.0.1:40000`, server
    /// `127.0.0.1:2121`, an empty file system, no users.
    pub fn builder() -> HarnessBuilder {
        HarnessBuilder::default()
    }

    // ----- driving ----------------------------------------------------------------------------

    /// Feeds bytes from the client and runs the session until it is quiet.
    pub fn send(&mut self, bytes: &[u8]) {
        let now = self.now();
        self.session.handle_input(now, bytes);
        self.drive(bytes.len());
    }

    /// Sends `line` plus CRLF and returns the replies that came back (all of them, including
    /// any still queued from before).
    pub fn command(&mut self, line: &str) -> Vec<Reply> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.send(&bytes);
        self.take_replies()
    }

    /// Sends `line` and returns the replies as one string (CRLFs included).
    pub fn command_text(&mut self, line: &str) -> String {
        self.command(line).iter().map(|r| r.as_str()).collect()
    }

    /// Logs in with USER and PASS; `Err` holds the replies when the login did not succeed at
    /// once (a failure's 530 comes only after the login failure delay).
    pub fn login(&mut self, user: &str, password: &str) -> Result<(), String> {
        let mut replies = self.command(&format!("USER {user}"));
        replies.extend(self.command(&format!("PASS {password}")));
        let text: String = replies.iter().map(|r| r.as_str()).collect();
        match replies.last() {
            Some(r) if r.code() == 230 => Ok(()),
            _ => Err(text),
        }
    }

    /// Moves the fake clock forward by `by`, firing every timeout that falls due on the way.
    pub fn advance(&mut self, by: Duration) {
        let target = self
            .elapsed
            .checked_add(by)
            .expect("testkit: clock overflow");
        for _ in 0..MAX_STEPS {
            let due = match self.session.poll_timeout() {
                Some(t) => t.saturating_duration_since(self.base),
                None => break,
            };
            if due > target {
                break;
            }
            self.elapsed = self.elapsed.max(due);
            let now = self.now();
            self.session.handle_timeout(now);
            self.drive(0);
            if self
                .session
                .poll_timeout()
                .map(|t| t.saturating_duration_since(self.base))
                == Some(due)
                && self.elapsed >= due
            {
                // A timeout that stays due after being handled would spin forever.
                panic!("testkit: handle_timeout at {due:?} left the same timeout due");
            }
        }
        self.elapsed = self.elapsed.max(target);
    }

    /// Runs the session's outputs until it is quiet, answering actions as they come.
    fn drive(&mut self, input_len: usize) {
        let limit = MAX_STEPS.saturating_add(input_len.saturating_mul(4));
        let mut steps = 0usize;
        while let Some(output) = self.session.poll_output() {
            steps += 1;
            if steps > limit {
                panic!(
                    "testkit: the session produced more than {limit} outputs without going quiet"
                );
            }
            match output {
                Output::Reply(r) => self.record_reply(r),
                Output::Close => self.closed = true,
                Output::Action(a) => {
                    for outcome in self.answer(a) {
                        let now = self.now();
                        self.session.handle_outcome(now, outcome);
                    }
                }
            }
        }
    }

    fn feed(&mut self, outcomes: Vec<Outcome>) {
        for outcome in outcomes {
            let now = self.now();
            self.session.handle_outcome(now, outcome);
        }
        self.drive(0);
    }

    fn record_reply(&mut self, r: Reply) {
        if self.replies.len() >= MAX_RECORDED_REPLIES {
            self.replies.pop_front();
            self.dropped_replies += 1;
        }
        self.replies.push_back(r);
    }

    // ----- what the test reads ----------------------------------------------------------------

    /// The replies received since the last call.
    pub fn take_replies(&mut self) -> Vec<Reply> {
        self.replies.drain(..).collect()
    }

    /// Replies dropped because the test did not read them ([`MAX_RECORDED_REPLIES`]).
    pub fn dropped_replies(&self) -> u64 {
        self.dropped_replies
    }

    /// Whether the session asked to close the connection.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The session, to query it.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The session, to drive it by hand (follow with [`Harness::send`] of nothing, or call
    /// `poll_output` yourself).
    pub fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }

    /// The configuration the session runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The fake monotonic clock.
    pub fn now(&self) -> Instant {
        self.base + self.elapsed
    }

    /// Time advanced since the start.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// The fake wall clock: the start time plus the time advanced.
    pub fn wall_now(&self) -> UnixTime {
        let secs = i64::try_from(self.elapsed.as_secs()).unwrap_or(i64::MAX / 2);
        UnixTime(self.wall_base.0.saturating_add(secs))
    }

    /// The recorded transfers, oldest first (at most [`MAX_RECORDED_TRANSFERS`]).
    pub fn transfers(&self) -> impl Iterator<Item = &TransferRecord> {
        self.transfers.iter()
    }

    /// The most recent transfer.
    pub fn last_transfer(&self) -> Option<&TransferRecord> {
        self.transfers.back()
    }

    /// Whether a held transfer is running.
    pub fn transfer_running(&self) -> bool {
        self.running.is_some()
    }

    /// The passive listener currently open, if any.
    pub fn listener(&self) -> Option<&Listener> {
        self.listener.as_ref()
    }

    /// The most recent passive listener opened, even if closed since.
    pub fn last_listener(&self) -> Option<&Listener> {
        self.last_listener.as_ref()
    }

    /// How many times the session asked to end TLS ([`ActionKind::StopTls`]).
    pub fn tls_stops(&self) -> u32 {
        self.tls_stops
    }

    /// Misuses of the runtime API the kit noticed (see the module documentation).
    pub fn anomalies(&self) -> &[String] {
        &self.anomalies
    }

    // ----- what the test sets up ---------------------------------------------------------------

    /// Adds or replaces a user.
    /// Adds a user described in full to a running harness.
    pub fn add_user_account(&mut self, password: &str, account: Account) {
        self.users.insert(
            account.name.clone(),
            UserEntry {
                password: password.to_owned(),
                account,
            },
        );
    }

    /// The events the session has emitted, oldest first (the most recent
    /// [`MAX_RECORDED_EVENTS`]).
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.events.iter()
    }

    /// Takes the recorded events.
    pub fn take_events(&mut self) -> Vec<Event> {
        self.events.drain(..).collect()
    }

    /// Logins the fake runtime counts as held by this session: 1 after a login, back to 0
    /// after [`ActionKind::LoginEnded`]. Anything else is a leak or a double release.
    pub fn logins_held(&self) -> u32 {
        self.logins_held
    }

    /// Pretends other sessions are logged in, for the login limits: these counts are added
    /// to this session's own at login.
    pub fn set_other_sessions(&mut self, counts: LoginCounts) {
        self.other_sessions = counts;
    }

    /// Makes the next TLS handshake report a verified client certificate for `identity`.
    pub fn set_client_identity(&mut self, identity: Option<String>) {
        self.client_identity = identity;
    }

    /// Adds a user to a running harness; `write` lets them change files.
    pub fn add_user(&mut self, name: &str, password: &str, write: bool) {
        let mut account = Account::new(name);
        account.write = write;
        self.add_user_account(password, account);
    }

    /// Turns anonymous login on or off.
    pub fn set_anonymous(&mut self, on: bool) {
        self.anonymous = on;
    }

    /// Makes the user store fail (`Some(reason)`) or work again (`None`).
    pub fn set_users_unavailable(&mut self, reason: Option<String>) {
        self.users_unavailable = reason;
    }

    /// Queues the bytes the client will send on the data connection of the next upload. An
    /// upload with nothing queued receives an empty file.
    pub fn queue_upload(&mut self, bytes: impl Into<Vec<u8>>) {
        self.uploads.push_back(bytes.into());
    }

    /// The next passive listener cannot be opened.
    pub fn fail_next_passive(&mut self, reason: &str) {
        self.fail_passive = Some(reason.to_owned());
    }

    /// The next transfer's data connection fails.
    pub fn fail_next_data(&mut self, failure: DataFailure) {
        self.fail_data = Some(failure);
    }

    /// The next transfer starts and then runs until [`Harness::finish_transfer`] or ABOR.
    pub fn hold_next_transfer(&mut self) {
        self.hold_next = true;
    }

    /// Every transfer from now on is held (or none, with `false`).
    pub fn set_hold_transfers(&mut self, hold: bool) {
        self.hold_all = hold;
    }

    /// Reports progress of the running transfer (for STAT). Returns false if none runs.
    pub fn progress(&mut self, bytes: u64) -> bool {
        let Some(id) = self.running.as_ref().map(|r| r.id) else {
            return false;
        };
        self.feed(vec![Outcome::new(
            id,
            OutcomeKind::TransferProgress { bytes },
        )]);
        true
    }

    /// Completes the running transfer and runs the session until quiet. Returns false if no
    /// transfer was running.
    pub fn finish_transfer(&mut self) -> bool {
        if let Some((id, result)) = self.held_checksum.take() {
            self.feed(vec![Outcome::new(id, OutcomeKind::Checksummed(result))]);
            return true;
        }
        let Some(running) = self.running.take() else {
            return false;
        };
        let outcomes = self.complete(running);
        self.feed(outcomes);
        true
    }
}
