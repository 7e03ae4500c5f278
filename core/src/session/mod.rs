//! The session state machine: one FTP control connection from greeting to close.
//!
//! Owns every state transition of the protocol (login, current directory, TYPE, REST, RNFR,
//! TLS state, the data connection setup, the running transfer) and every policy decision
//! (login limits, IP rules, permissions, TLS requirements, bounce and theft checks), and nothing
//! of I/O. Input is bytes, outcomes and time; output is replies, actions and the instruction to
//! close.
//!
//! Commands are taken from the framer one at a time. While an action is outstanding no further
//! command is taken, so replies always come in command order. While a transfer runs, only ABOR,
//! STAT, NOOP and QUIT at the head of the input are answered (RFC 959 §4.1.3 and §5.3.1); any
//! other command waits until the transfer has ended.
//!
//! The submodules hold the commands by theme: [`login`] (USER, PASS, REIN, limits), [`tls`]
//! (AUTH, PBSZ, PROT, CCC), [`files`] (commands on the file system and their permission
//! checks), [`data`] (PASV/PORT and the life of a transfer), [`list`] (LIST, NLST, MLSD, STAT
//! of a path) and [`info`] (FEAT, OPTS, HELP, STAT, SITE).

mod checksum;
mod data;
mod files;
mod format;
mod info;
mod list;
mod login;
mod requests;
mod tls;

use crate::action::{
    Account, Action, ActionId, ActionKind, Event, EventKind, Outcome, OutcomeKind, TlsInfo,
};
use crate::codec::{CodePage, DataFormat, Mode};
use crate::command::{self, Command, ListArgs, ParseError};
use crate::config::Config;
use crate::framing::LineFramer;
use crate::listing::Facts;
use crate::path::VirtualPath;
use crate::reply::{quote_path, Reply};
use core::net::SocketAddr;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use data::{DataSetup, PassiveKind, Transfer};
use files::Check;
use requests::{ListKind, ListRequest};
use tls::ControlTls;

/// What the session wants done; drain with [`Session::poll_output`].
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// Write these bytes to the control connection.
    Reply(Reply),
    /// Do this work (and, where [`ActionKind`] says so, report its [`Outcome`] with
    /// [`Session::handle_outcome`]).
    Action(Action),
    /// Flush what was written, then close the control connection (and any data connection).
    Close,
}

#[derive(Debug)]
enum Login {
    Fresh,
    User(String),
    In(Box<Account>),
}

/// What the session waits for: the outcome of one action, and what to do with it.
#[derive(Debug)]
enum Pending {
    Login {
        certificate: bool,
    },
    /// A file-system command gathering the metadata its permission check needs.
    Check(Box<Check>),
    ListRead(Box<ListRequest>),
    AsciiSize,
    /// A change to the file system whose success the reply (and an event) reports.
    Change(files::Change),
    Passive(PassiveKind),
    /// AUTH accepted; the handshake runs. `private` when the mechanism implies PROT P.
    Tls {
        private: bool,
    },
    Admin(info::AdminCommand),
}

/// One FTP session, from greeting to close. See the [crate documentation](crate) for the loop
/// that drives it.
#[derive(Debug)]
pub struct Session {
    config: Arc<Config>,
    peer: SocketAddr,
    local: SocketAddr,
    framer: LineFramer,
    line: Vec<u8>,
    out: VecDeque<Output>,
    next_id: u64,
    login: Login,
    failures: u32,
    cwd: VirtualPath,
    /// TYPE, STRU and MODE.
    format: DataFormat,
    /// The EBCDIC code page TYPE E uses (SITE CODEPAGE).
    code_page: CodePage,
    /// The level MODE Z uses (OPTS MODE Z LEVEL).
    deflate_level: u8,
    rest: Option<u64>,
    /// The byte range RANG set for the next HASH (both ends included).
    rang: Option<(u64, u64)>,
    /// The algorithm HASH uses (OPTS HASH).
    checksum: crate::action::ChecksumAlgorithm,
    rename_from: Option<VirtualPath>,
    data: DataSetup,
    epsv_all: bool,
    facts: Facts,
    pending: Option<(ActionId, Pending)>,
    transfer: Option<Transfer>,
    quit_after_transfer: bool,
    held_until: Option<Instant>,
    held: Vec<Output>,
    deadline: Instant,
    closed: bool,
    tls: ControlTls,
    pbsz: bool,
    prot_private: bool,
    client_identity: Option<String>,
}

impl Session {
    /// A session for a new control connection from `peer` to `local`. The first outputs are
    /// the 220 greeting and a [`EventKind::Connect`] event — or, for an address the server's
    /// IP filter refuses, a 421 and [`Output::Close`].
    pub fn new(config: Arc<Config>, peer: SocketAddr, local: SocketAddr, now: Instant) -> Session {
        let mut s = Session {
            framer: LineFramer::new(config.max_line_len),
            deadline: now + config.login_timeout,
            peer,
            local,
            line: Vec::with_capacity(64),
            out: VecDeque::with_capacity(4),
            next_id: 0,
            login: Login::Fresh,
            failures: 0,
            cwd: VirtualPath::root(),
            format: DataFormat::default(),
            code_page: CodePage::default(),
            deflate_level: Mode::DEFAULT_DEFLATE_LEVEL,
            rest: None,
            rang: None,
            checksum: crate::action::ChecksumAlgorithm::Sha256,
            rename_from: None,
            data: DataSetup::None,
            epsv_all: false,
            facts: Facts::default(),
            pending: None,
            transfer: None,
            quit_after_transfer: false,
            held_until: None,
            held: Vec::new(),
            closed: false,
            tls: ControlTls::Clear,
            pbsz: false,
            prot_private: false,
            client_identity: None,
            config,
        };
        if !s.config.ip_filter.permits(peer.ip()) {
            s.reply(421, "Connection refused: your address is not allowed here.");
            s.notify(EventKind::Connect, |e| {
                e.reason = Some("address refused by the server's IP filter".into())
            });
            s.close();
            return s;
        }
        let greeting = s.config.greeting.clone();
        s.reply(220, &greeting);
        s.notify(EventKind::Connect, |_| {});
        s
    }

    /// A session on an implicit-TLS listener: the runtime has completed the handshake before
    /// creating it, so the control connection is protected from the start and data connections
    /// are protected by default (PROT P). `tls` is what the handshake established.
    pub fn new_implicit_tls(
        config: Arc<Config>,
        peer: SocketAddr,
        local: SocketAddr,
        now: Instant,
        tls: TlsInfo,
    ) -> Session {
        let mut s = Session::new(config, peer, local, now);
        s.tls = ControlTls::Implicit;
        s.pbsz = true;
        s.prot_private = true;
        s.client_identity = tls.client_identity;
        s
    }

    /// Bytes read from the control connection (after TLS decryption). Follow with
    /// [`Session::poll_output`] until it returns `None`.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        if self.closed {
            return;
        }
        // A command that arrives after the login deadline is not served: the deadline ends
        // the session first.
        if self.expire(now) {
            return;
        }
        self.framer.push(bytes);
        self.process(now);
        if self.framer.buffered() > self.config.max_buffered_input && !self.closed {
            self.reply(421, "Too much input without waiting for replies; closing.");
            self.close();
        }
    }

    /// The result of an action. Follow with [`Session::poll_output`] until it returns `None`.
    ///
    /// An outcome for an id the session is not waiting on is ignored.
    pub fn handle_outcome(&mut self, now: Instant, outcome: Outcome) {
        if self.closed {
            return;
        }
        let Outcome { id, kind } = outcome;
        if self.transfer.as_ref().is_some_and(|t| t.id == id) {
            // Progress and restart markers come often and free nothing a waiting command
            // waits on (its start or its end): the input is not looked at again for them.
            let frees = !matches!(
                kind,
                OutcomeKind::TransferProgress { .. } | OutcomeKind::TransferMark { .. }
            );
            self.transfer_outcome(now, kind);
            if !frees {
                return;
            }
        } else if self.pending.as_ref().is_some_and(|(p, _)| *p == id) {
            let Some((_, pending)) = self.pending.take() else {
                return;
            };
            self.pending_outcome(now, pending, kind);
            self.touch(now);
        } else {
            return;
        }
        self.process(now);
    }

    /// The control connection has gone (the client closed it, or it broke). Ends the login,
    /// if any, with a [`EventKind::Logout`] event and [`ActionKind::LoginEnded`]. Drain
    /// [`Session::poll_output`] afterwards; nothing more will be written.
    pub fn handle_disconnect(&mut self, _now: Instant) {
        if self.closed {
            return;
        }
        self.end_login(Some("connection closed by the client"));
        self.closed = true;
    }

    /// The next output, if any. Call after every `handle_*` call until it returns `None`.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Session::handle_timeout`] must next be called, if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            None
        } else if let Some(t) = self.held_until {
            Some(t)
        } else if self.transfer.is_some() || self.pending.is_some() {
            None
        } else {
            Some(self.deadline)
        }
    }

    /// Time has reached (or passed) the instant [`Session::poll_timeout`] gave. Follow with
    /// [`Session::poll_output`] until it returns `None`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if let Some(t) = self.held_until {
            if now < t {
                return;
            }
            self.held_until = None;
            let held = std::mem::take(&mut self.held);
            let closes = held.iter().any(|o| matches!(o, Output::Close));
            self.out.extend(held);
            if closes {
                self.closed = true;
                return;
            }
            self.touch(now);
            self.process(now);
            // The login deadline may have passed while the delay held the session: it is due
            // now too, and nothing due at `now` is left for another call.
        }
        if self.transfer.is_none()
            && self.pending.is_none()
            && self.held_until.is_none()
            && !self.closed
            && now >= self.deadline
        {
            self.time_out();
        }
    }

    /// Before login, once the login deadline has passed (and nothing is outstanding): 421 and
    /// close. Returns whether the session closed.
    fn expire(&mut self, now: Instant) -> bool {
        let due = self.logged_in().is_none()
            && self.transfer.is_none()
            && self.pending.is_none()
            && self.held_until.is_none()
            && now >= self.deadline;
        if due {
            self.time_out();
        }
        due
    }

    fn time_out(&mut self) {
        let secs = self.idle_limit().as_secs();
        let text = if self.logged_in().is_some() {
            format!("Timeout: no command for {secs} seconds; closing the connection.")
        } else {
            format!("Timeout: not logged in within {secs} seconds; closing the connection.")
        };
        self.reply(421, &text);
        self.close();
    }

    /// Whether the session has asked to close.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Control-connection input held and not yet taken as commands (pipelined lines, each
    /// counting one byte for its terminator, and a partial line). While the session is open
    /// this is at most [`Config::max_buffered_input`]; the fuzz targets check it.
    pub fn buffered_input(&self) -> usize {
        self.framer.buffered()
    }

    /// The logged-in account, if any.
    pub fn account(&self) -> Option<&Account> {
        match &self.login {
            Login::In(a) => Some(a.as_ref()),
            _ => None,
        }
    }

    /// The instant by which the client must have logged in, while it has not: counted from
    /// the connection's start (or REIN), never extended by commands. A runtime bounds what it
    /// does for a client that has not logged in by it (a reply the client does not read, a
    /// TLS handshake); `None` once logged in or closed.
    #[must_use]
    pub fn login_deadline(&self) -> Option<Instant> {
        (!self.closed && self.logged_in().is_none()).then_some(self.deadline)
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    // ----- plumbing -------------------------------------------------------------------------

    fn reply(&mut self, code: u16, text: &str) {
        self.out.push_back(Output::Reply(Reply::new(code, text)));
    }

    fn push_reply(&mut self, reply: Reply) {
        self.out.push_back(Output::Reply(reply));
    }

    fn action(&mut self, kind: ActionKind) -> ActionId {
        let id = ActionId(self.next_id);
        self.next_id += 1;
        self.out.push_back(Output::Action(Action { id, kind }));
        id
    }

    fn wait(&mut self, kind: ActionKind, pending: Pending) {
        let id = self.action(kind);
        self.pending = Some((id, pending));
    }

    /// Emits an event about this session; `fill` sets what is particular to it.
    fn notify(&mut self, kind: EventKind, fill: impl FnOnce(&mut Event)) {
        let (user, partner) = match &self.login {
            Login::In(a) => (Some(a.name.clone()), a.partner.clone()),
            Login::User(u) => (Some(u.clone()), None),
            Login::Fresh => (None, None),
        };
        let mut event = Event {
            kind,
            user,
            partner,
            peer: self.peer,
            path: None,
            to: None,
            size: None,
            duration: None,
            representation: None,
            reason: None,
            failure: None,
        };
        fill(&mut event);
        self.action(ActionKind::Notify(event));
    }

    fn close(&mut self) {
        if !self.closed {
            self.end_login(None);
            self.closed = true;
            self.out.push_back(Output::Close);
        }
    }

    fn idle_limit(&self) -> Duration {
        match &self.login {
            Login::In(a) => a.idle_timeout.unwrap_or(self.config.idle_timeout),
            _ => self.config.login_timeout,
        }
    }

    /// A command (or the end of an action or a transfer) restarts the idle timer of a
    /// logged-in session. Before login nothing moves the deadline: it counts from the
    /// connection's start (or REIN), so a client cannot hold a connection by sending NOOPs.
    fn touch(&mut self, now: Instant) {
        if self.logged_in().is_some() {
            self.deadline = now + self.idle_limit();
        }
    }

    /// Starts the login deadline: at the connection's start, REIN, and a USER that ends a
    /// login.
    fn start_login_deadline(&mut self, now: Instant) {
        self.deadline = now + self.config.login_timeout;
    }

    fn logged_in(&self) -> Option<&Account> {
        match &self.login {
            Login::In(a) => Some(a.as_ref()),
            _ => None,
        }
    }

    /// Takes commands from the framer while the session is free to run them.
    fn process(&mut self, now: Instant) {
        while !self.closed && self.pending.is_none() && self.held_until.is_none() {
            if self.transfer.is_some() {
                if !self.take_transfer_time_command(now) {
                    return;
                }
                continue;
            }
            match self.framer.next_into(&mut self.line) {
                None => return,
                Some(false) => {
                    let max = self.config.max_line_len;
                    self.reply(
                        500,
                        &format!("Command line too long (the limit is {max} bytes)."),
                    );
                }
                Some(true) => {
                    self.touch(now);
                    let line = std::mem::take(&mut self.line);
                    let parsed = command::parse_command(&line);
                    self.dispatch(now, parsed);
                    self.line = line;
                }
            }
        }
    }

    /// During a transfer: answers ABOR, STAT, NOOP or QUIT at the head of the input. Returns
    /// false when the head is anything else (it waits for the transfer to end) or empty.
    /// STAT and NOOP also wait until the transfer has started: their reply must not come
    /// before the transfer command's own 150 (or its 425/550). Once an ABOR or a QUIT has
    /// been taken nothing more is: its reply comes after the transfer's end, and what follows
    /// it must be answered after it (a second ABOR then gets 225; after QUIT, nothing).
    fn take_transfer_time_command(&mut self, now: Instant) -> bool {
        let started = self.transfer.as_ref().is_some_and(|t| t.started);
        let aborting = self.transfer.as_ref().is_some_and(|t| t.abort_requested);
        if aborting || self.quit_after_transfer {
            return false;
        }
        let Some(frame) = self.framer.peek() else {
            return false;
        };
        let crate::framing::Frame::Line(bytes) = frame else {
            return false;
        };
        let cmd = match command::parse_command(bytes) {
            Ok(Command::Abor) => Command::Abor,
            Ok(Command::Noop) if started => Command::Noop,
            Ok(Command::Quit) => Command::Quit,
            Ok(Command::Stat(_)) if started => Command::Stat(ListArgs { path: None }),
            _ => return false,
        };
        self.framer.consume();
        self.touch(now);
        match cmd {
            Command::Abor => self.abort_transfer(),
            Command::Noop => self.reply(200, "NOOP ok."),
            Command::Quit => self.quit_after_transfer = true,
            _ => {
                let text = match &self.transfer {
                    Some(t) => format!("Status: {} in progress, {} bytes so far.", t.what, t.bytes),
                    None => "Status: no transfer in progress.".into(),
                };
                self.reply(213, &text);
            }
        }
        true
    }

    fn dispatch(&mut self, now: Instant, parsed: Result<Command<'_>, ParseError>) {
        let cmd = match parsed {
            Ok(cmd) => cmd,
            Err(e) => {
                // A bad command still counts as "the next command" for RNFR.
                self.rename_from = None;
                self.reply(e.code, &e.message);
                return;
            }
        };
        // REST lives until the transfer it is for (as in vsftpd, pure-ftpd, ProFTPD and
        // pyftpdlib): clients send REST, then PASV/EPSV/PORT/TYPE, then RETR/STOR/APPE.
        let rest = match cmd {
            Command::Retr(_) | Command::Stor(_) | Command::Appe(_) | Command::Stou(_) => {
                self.rest.take()
            }
            _ => None,
        };
        let rename_from = self.rename_from.take();

        if self.logged_in().is_none() && needs_login(&cmd) {
            self.reply(530, "Please log in with USER and PASS first.");
            return;
        }
        // RANG narrows a HASH; a transfer of a range is not offered, so one asked for is
        // refused rather than sent whole (and the range does not wait for the next HASH).
        let transfer = matches!(
            cmd,
            Command::Retr(_) | Command::Stor(_) | Command::Appe(_) | Command::Stou(_)
        );
        if transfer && self.rang.take().is_some() {
            self.reply(
                504,
                "RANG applies to HASH only here; send the transfer without it (the range is reset).",
            );
            return;
        }

        match cmd {
            Command::User(name) => self.cmd_user(now, name),
            Command::Pass(pw) => self.cmd_pass(pw),
            Command::Acct(_) => {
                if self.logged_in().is_some() {
                    self.reply(202, "ACCT not needed; you are logged in.");
                } else {
                    self.reply(503, "Log in with USER and PASS first.");
                }
            }
            Command::Quit => {
                self.reply(221, "Goodbye.");
                self.close();
            }
            Command::Rein => self.cmd_rein(now),
            Command::Noop => self.reply(200, "NOOP ok."),
            Command::Syst => self.reply(215, "UNIX Type: L8"),
            Command::Feat => self.cmd_feat(),
            Command::Opts(arg) => self.cmd_opts(arg),
            Command::Help(arg) => self.cmd_help(arg),
            Command::Site(arg) => self.cmd_site(arg),
            Command::Pwd => {
                let q = quote_path(self.cwd.as_str());
                self.reply(257, &format!("{q} is the current directory."));
            }
            Command::Cwd(arg) => self.check_path(arg, requests::Op::Cwd),
            Command::Cdup => {
                self.cwd = self.cwd.parent();
                let text = format!("Directory changed to {}.", self.cwd);
                self.reply(200, &text);
            }
            Command::Smnt(_) => {
                self.reply(202, "SMNT not needed; the whole tree is one file system.")
            }
            Command::Mkd(arg) => self.check_change(arg, requests::Op::Mkd),
            Command::Rmd(arg) => self.check_change(arg, requests::Op::Rmd),
            Command::Dele(arg) => self.check_change(arg, requests::Op::Dele),
            Command::Rnfr(arg) => self.check_change(arg, requests::Op::Rnfr),
            Command::Rnto(arg) => match rename_from {
                None => self.reply(503, "RNFR required first."),
                Some(from) => self.check_change(arg, requests::Op::Rnto { from }),
            },
            Command::Size(arg) => self.check_path(arg, requests::Op::Size),
            Command::Mdtm(arg) => self.check_path(arg, requests::Op::Mdtm),
            Command::Mfmt { time, path, .. } => {
                self.check_change(path, requests::Op::SetTime { time })
            }
            Command::Type(t) => self.cmd_type(t),
            Command::Stru(st) => self.cmd_stru(st),
            Command::Mode(m) => self.cmd_mode(m),
            Command::Allo => self.reply(202, "ALLO not needed; storage is allocated as written."),
            Command::Rest(n) => {
                self.rest = Some(n);
                self.reply(
                    350,
                    &format!("Restarting at {n}. Send STOR or RETR to start the transfer."),
                );
            }
            Command::Pasv => self.cmd_passive(PassiveKind::Pasv),
            Command::Lpsv => self.cmd_passive(PassiveKind::Lpsv),
            Command::Epsv(arg) => self.cmd_epsv(arg),
            Command::Port(a) => self.cmd_active(a, "PORT"),
            Command::Eprt(a) => self.cmd_active(a, "EPRT"),
            Command::Lprt(a) => self.cmd_active(a, "LPRT"),
            Command::Retr(arg) => {
                if self.need_data() {
                    let offset = rest.unwrap_or(0);
                    self.check_path(arg, requests::Op::Retr { offset });
                }
            }
            Command::Stor(arg) => {
                let mode = match rest {
                    Some(n) if n > 0 => crate::action::StoreMode::Resume(n),
                    _ => crate::action::StoreMode::Create,
                };
                self.cmd_store(arg, mode);
            }
            Command::Appe(arg) => self.cmd_store(arg, crate::action::StoreMode::Append),
            Command::Stou(arg) => {
                self.cmd_store(arg.unwrap_or("upload"), crate::action::StoreMode::Unique)
            }
            Command::List(args) => self.cmd_list(ListKind::List, args.path),
            Command::Nlst(args) => self.cmd_list(ListKind::Nlst, args.path),
            Command::Mlsd(arg) => self.cmd_list(ListKind::Mlsd, arg),
            Command::Mlst(arg) => self.check_path(arg.unwrap_or("."), requests::Op::Mlst),
            Command::Stat(args) => match args.path {
                None => self.cmd_server_status(),
                Some(p) => self.cmd_list(ListKind::Stat, Some(p)),
            },
            Command::Abor => {
                self.drop_data_setup();
                self.reply(225, "No transfer to abort.");
            }
            Command::Hash(arg) => self.cmd_hash(arg),
            Command::Rang(start, end) => self.cmd_rang(start, end),
            Command::XChecksum {
                algorithm,
                path,
                start,
                end,
            } => self.cmd_x_checksum(algorithm, path, start, end),
            Command::Lang(tag) => self.cmd_lang(tag),
            Command::Pret(arg) => self.cmd_pret(arg),
            Command::Auth(mech) => self.cmd_auth(mech),
            Command::Pbsz(arg) => self.cmd_pbsz(arg),
            Command::Prot(arg) => self.cmd_prot(arg),
            Command::Ccc => self.cmd_ccc(),
        }
    }

    fn pending_outcome(&mut self, now: Instant, pending: Pending, kind: OutcomeKind) {
        match (pending, kind) {
            (Pending::Login { certificate }, OutcomeKind::Authenticated(r)) => {
                self.login_outcome(now, r, certificate)
            }
            (Pending::Tls { private }, OutcomeKind::TlsEstablished(r)) => {
                self.tls_outcome(private, r)
            }
            (Pending::Passive(kind), OutcomeKind::PassiveListening(r)) => {
                self.passive_outcome(kind, r)
            }
            (Pending::Check(check), OutcomeKind::Metadata(r)) => self.check_outcome(*check, r),
            (Pending::ListRead(req), OutcomeKind::Entries { result, now: wall }) => {
                self.list_read_outcome(*req, result, wall)
            }
            (Pending::AsciiSize, OutcomeKind::Size(r)) => match r {
                Ok(n) => self.reply(213, &n.to_string()),
                Err(e) => self.reply(550, &format!("Could not get file size: {e}.")),
            },
            (Pending::Change(change), OutcomeKind::Done(r)) => self.change_outcome(change, r),
            (Pending::Admin(cmd), OutcomeKind::AdminInfo(r)) => self.admin_outcome(cmd, r),
            // An outcome of the wrong kind for what was asked: the runtime misused the API.
            // Answer the command rather than leave the client waiting.
            (_, _) => self.reply(451, "Internal error: unexpected result from the server."),
        }
    }
}

/// The names RFC 1635 reserves for anonymous FTP.
fn is_anonymous_name(name: &str) -> bool {
    name.eq_ignore_ascii_case("anonymous") || name.eq_ignore_ascii_case("ftp")
}

/// Commands allowed before login.
fn needs_login(cmd: &Command<'_>) -> bool {
    !matches!(
        cmd,
        Command::User(_)
            | Command::Pass(_)
            | Command::Acct(_)
            | Command::Quit
            | Command::Noop
            | Command::Feat
            | Command::Help(_)
            | Command::Opts(_)
            | Command::Lang(_)
            | Command::Syst
            | Command::Rein
            | Command::Auth(_)
            | Command::Pbsz(_)
            | Command::Prot(_)
            | Command::Ccc
    )
}
