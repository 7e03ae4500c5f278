//! The session state machine: one FTP control connection from greeting to close.
//!
//! Owns every state transition of the protocol (login, current directory, TYPE, REST, RNFR,
//! the data connection setup, the running transfer) and every policy decision, and nothing of
//! I/O. Input is bytes and outcomes; output is replies, actions and the instruction to close.
//!
//! Commands are taken from the framer one at a time. While an action is outstanding no further
//! command is taken, so replies always come in command order. While a transfer runs, only ABOR,
//! STAT, NOOP and QUIT at the head of the input are answered (RFC 959 §4.1.3 and §5.3.1); any
//! other command waits until the transfer has ended.

use crate::action::{
    Account, Action, ActionId, ActionKind, DataEndpoint, DataProtection, LoginError, Outcome,
    OutcomeKind, Representation, Secret, StorageError, StoreMode, TlsInfo, TransferError,
    TransferKind, TransferPlan,
};
use crate::addr;
use crate::command::{self, Command, EpsvArg, ListArgs, ParseError, TypeCode};
use crate::config::Config;
use crate::framing::LineFramer;
use crate::listing::{self, EntryRole, Facts, FileInfo, FileKind};
use crate::path::{PathError, VirtualPath};
use crate::reply::{quote_path, Reply};
use crate::time::UnixTime;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Instant;

/// What the session wants done; drain with [`Session::poll_output`].
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// Write these bytes to the control connection.
    Reply(Reply),
    /// Do this work and report its [`Outcome`] with [`Session::handle_outcome`].
    Action(Action),
    /// Flush what was written, then close the control connection (and any data connection).
    Close,
}

#[derive(Debug)]
enum Login {
    Fresh,
    User(String),
    In(Account),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DataSetup {
    None,
    Passive,
    Active(SocketAddr),
}

/// TLS state of the control connection (RFC 4217).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ControlTls {
    /// Never protected.
    Clear,
    /// Protected after AUTH.
    Explicit,
    /// Protected from the first byte (implicit-TLS listener).
    Implicit,
    /// Protected, then cleared by CCC: commands are in the clear again; AUTH and PROT refused.
    Cleared,
}

impl ControlTls {
    fn protected(self) -> bool {
        matches!(self, ControlTls::Explicit | ControlTls::Implicit)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PassiveKind {
    Pasv,
    Epsv,
    Lpsv,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ListKind {
    List,
    Nlst,
    Mlsd,
    /// STAT with a path: an `ls -l` listing on the control connection.
    Stat,
}

#[derive(Debug)]
struct ListRequest {
    kind: ListKind,
    /// The path as resolved (a directory or a file, or the directory of a glob).
    target: VirtualPath,
    /// A glob on the last component, if any.
    pattern: Option<String>,
    /// Set when the target turned out to be a file: list its directory, keeping only this
    /// name (so that the date column is judged against the wall clock like any listing).
    exact: Option<String>,
    /// For NLST of a glob: the directory part as the client wrote it, prefixed to each name.
    prefix: String,
}

#[derive(Debug)]
enum Done {
    Mkd(VirtualPath),
    Rmd,
    Dele,
    Rnto,
}

#[derive(Debug)]
enum Pending {
    Login {
        certificate: bool,
    },
    Cwd(VirtualPath),
    Retr {
        path: VirtualPath,
        offset: u64,
    },
    ListStat(ListRequest),
    ListRead(ListRequest, FileInfo),
    Mlst(VirtualPath),
    Size(VirtualPath),
    AsciiSize,
    Mdtm,
    Rnfr(VirtualPath),
    Done(Done),
    Passive(PassiveKind),
    /// AUTH accepted; the handshake runs. `private` when the mechanism implies PROT P.
    Tls {
        private: bool,
    },
}

#[derive(Debug)]
struct Transfer {
    id: ActionId,
    /// What STAT says is moving, e.g. `RETR /a.txt`.
    what: String,
    /// Expected size, for the 150 reply.
    size: Option<u64>,
    started: bool,
    bytes: u64,
    abort_requested: bool,
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
    representation: Representation,
    rest: Option<u64>,
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
    /// A session for a new control connection from `peer` to `local`. The 220 greeting is
    /// the first output.
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
            representation: Representation::Ascii,
            rest: None,
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
        let greeting = s.config.greeting.clone();
        s.reply(220, &greeting);
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
            self.transfer_outcome(now, kind);
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
            if now >= t {
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
            }
            return;
        }
        if self.transfer.is_none() && self.pending.is_none() && now >= self.deadline {
            let secs = match self.login {
                Login::In(_) => self.config.idle_timeout.as_secs(),
                _ => self.config.login_timeout.as_secs(),
            };
            self.reply(
                421,
                &format!("Timeout: no command for {secs} seconds; closing the connection."),
            );
            self.close();
        }
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
            Login::In(a) => Some(a),
            _ => None,
        }
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

    fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            self.out.push_back(Output::Close);
        }
    }

    fn touch(&mut self, now: Instant) {
        self.deadline = now
            + match self.login {
                Login::In(_) => self.config.idle_timeout,
                _ => self.config.login_timeout,
            };
    }

    fn logged_in(&self) -> Option<&Account> {
        match &self.login {
            Login::In(a) => Some(a),
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
    /// before the transfer command's own 150 (or its 425/550).
    fn take_transfer_time_command(&mut self, now: Instant) -> bool {
        let started = self.transfer.as_ref().is_some_and(|t| t.started);
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
            Command::Abor => {
                let Some(t) = self.transfer.as_mut() else {
                    return true;
                };
                if !t.abort_requested {
                    t.abort_requested = true;
                    let transfer = t.id;
                    self.action(ActionKind::AbortTransfer { transfer });
                }
            }
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
                // A bad command still counts as "the next command" for REST and RNFR.
                self.rest = None;
                self.rename_from = None;
                self.reply(e.code, &e.message);
                return;
            }
        };
        let rest = match cmd {
            Command::Rest(_) => None,
            _ => self.rest.take(),
        };
        let rename_from = self.rename_from.take();

        if self.logged_in().is_none() && needs_login(&cmd) {
            self.reply(530, "Please log in with USER and PASS first.");
            return;
        }

        match cmd {
            Command::User(name) => self.cmd_user(name),
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
            Command::Cwd(arg) => {
                if let Some(path) = self.resolve(arg) {
                    self.wait(ActionKind::Stat { path: path.clone() }, Pending::Cwd(path));
                }
            }
            Command::Cdup => {
                self.cwd = self.cwd.parent();
                let text = format!("Directory changed to {}.", self.cwd);
                self.reply(200, &text);
            }
            Command::Smnt(_) => {
                self.reply(202, "SMNT not needed; the whole tree is one file system.")
            }
            Command::Mkd(arg) => {
                if let Some(path) = self.writable_path(arg) {
                    self.wait(
                        ActionKind::MakeDir { path: path.clone() },
                        Pending::Done(Done::Mkd(path)),
                    );
                }
            }
            Command::Rmd(arg) => {
                if let Some(path) = self.writable_path(arg) {
                    self.wait(ActionKind::RemoveDir { path }, Pending::Done(Done::Rmd));
                }
            }
            Command::Dele(arg) => {
                if let Some(path) = self.writable_path(arg) {
                    self.wait(ActionKind::Delete { path }, Pending::Done(Done::Dele));
                }
            }
            Command::Rnfr(arg) => {
                if let Some(path) = self.writable_path(arg) {
                    self.wait(ActionKind::Stat { path: path.clone() }, Pending::Rnfr(path));
                }
            }
            Command::Rnto(arg) => match rename_from {
                None => self.reply(503, "RNFR required first."),
                Some(from) => {
                    if let Some(to) = self.writable_path(arg) {
                        self.wait(ActionKind::Rename { from, to }, Pending::Done(Done::Rnto));
                    }
                }
            },
            Command::Size(arg) => {
                if let Some(path) = self.resolve(arg) {
                    self.wait(ActionKind::Stat { path: path.clone() }, Pending::Size(path));
                }
            }
            Command::Mdtm(arg) => {
                if let Some(path) = self.resolve(arg) {
                    self.wait(ActionKind::Stat { path }, Pending::Mdtm);
                }
            }
            Command::Type(t) => {
                self.representation = match t {
                    TypeCode::Ascii => Representation::Ascii,
                    TypeCode::Image => Representation::Binary,
                };
                self.reply(
                    200,
                    match t {
                        TypeCode::Ascii => "Switching to ASCII mode.",
                        TypeCode::Image => "Switching to Binary mode.",
                    },
                );
            }
            Command::Stru => self.reply(200, "Structure set to F."),
            Command::Mode => self.reply(200, "Mode set to S."),
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
                    if let Some(path) = self.resolve(arg) {
                        let offset = rest.unwrap_or(0);
                        self.wait(
                            ActionKind::Stat { path: path.clone() },
                            Pending::Retr { path, offset },
                        );
                    }
                }
            }
            Command::Stor(arg) => {
                let mode = match rest {
                    Some(n) if n > 0 => StoreMode::Resume(n),
                    _ => StoreMode::Create,
                };
                self.cmd_store(arg, mode, "STOR");
            }
            Command::Appe(arg) => self.cmd_store(arg, StoreMode::Append, "APPE"),
            Command::Stou(arg) => {
                self.cmd_store(arg.unwrap_or("upload"), StoreMode::Unique, "STOU")
            }
            Command::List(args) => self.cmd_list(ListKind::List, args.path),
            Command::Nlst(args) => self.cmd_list(ListKind::Nlst, args.path),
            Command::Mlsd(arg) => self.cmd_list(ListKind::Mlsd, arg),
            Command::Mlst(arg) => {
                if let Some(path) = self.resolve(arg.unwrap_or(".")) {
                    self.wait(ActionKind::Stat { path: path.clone() }, Pending::Mlst(path));
                }
            }
            Command::Stat(args) => match args.path {
                None => self.cmd_server_status(),
                Some(p) => self.cmd_list(ListKind::Stat, Some(p)),
            },
            Command::Abor => {
                if self.data == DataSetup::Passive {
                    self.action(ActionKind::ClosePassive);
                }
                self.data = DataSetup::None;
                self.reply(225, "No transfer to abort.");
            }
            Command::Auth(mech) => self.cmd_auth(mech),
            Command::Pbsz(arg) => self.cmd_pbsz(arg),
            Command::Prot(arg) => self.cmd_prot(arg),
            Command::Ccc => self.cmd_ccc(),
        }
    }

    // ----- login ----------------------------------------------------------------------------

    fn cmd_user(&mut self, name: &str) {
        if matches!(self.login, Login::In(_)) {
            // RFC 959 lets USER change the user at any time: start over.
            self.reset_session_state();
        }
        let anonymous = is_anonymous_name(name);
        if !self.tls.protected() && self.config.control_tls_required(name, anonymous) {
            self.login = Login::Fresh;
            self.reply(
                530,
                if self.config.tls_available {
                    "This server requires TLS for this login: use AUTH TLS first \
                     (curl --ssl-reqd, lftp 'set ftp:ssl-force true', FileZilla 'Require explicit FTP over TLS')."
                } else {
                    "This server requires TLS for this login, but TLS is not configured."
                },
            );
            return;
        }
        if self
            .client_identity
            .as_deref()
            .is_some_and(|id| id.eq_ignore_ascii_case(name))
        {
            // RFC 2228: a user vouched for by the security exchange is logged in with 232.
            self.login = Login::User(name.to_owned());
            self.wait(
                ActionKind::AuthenticateCertificate {
                    user: name.to_owned(),
                },
                Pending::Login { certificate: true },
            );
            return;
        }
        self.login = Login::User(name.to_owned());
        self.reply(
            331,
            if anonymous {
                "Anonymous login: send your e-mail address as password."
            } else {
                "Please specify the password."
            },
        );
    }

    fn cmd_pass(&mut self, pw: &str) {
        match &self.login {
            Login::Fresh => self.reply(503, "Log in with USER first."),
            Login::In(_) => self.reply(230, "Already logged in."),
            Login::User(user) => {
                let user = user.clone();
                self.wait(
                    ActionKind::Authenticate {
                        user,
                        password: Secret::new(pw),
                    },
                    Pending::Login { certificate: false },
                );
            }
        }
    }

    fn login_outcome(
        &mut self,
        now: Instant,
        result: Result<Account, LoginError>,
        certificate: bool,
    ) {
        match result {
            Ok(account) => {
                self.failures = 0;
                self.login = Login::In(account);
                self.cwd = VirtualPath::root();
                if certificate {
                    self.reply(232, "User logged in, authorized by security data exchange.");
                } else {
                    self.reply(230, "Login successful.");
                }
            }
            Err(LoginError::Unavailable(msg)) => {
                self.login = Login::Fresh;
                self.reply(421, &format!("Login is not possible now: {msg}"));
                self.close();
            }
            Err(_) => {
                self.login = Login::Fresh;
                self.failures += 1;
                let mut held = vec![Output::Reply(Reply::new(530, "Login incorrect."))];
                if self.failures >= self.config.max_login_failures {
                    held.push(Output::Reply(Reply::new(
                        421,
                        "Too many failed logins; closing the connection.",
                    )));
                    held.push(Output::Close);
                }
                self.hold(now, held);
            }
        }
    }

    /// Queues outputs to be released after the login failure delay.
    fn hold(&mut self, now: Instant, outputs: Vec<Output>) {
        let delay = self.config.login_failure_delay;
        if delay.is_zero() {
            let closes = outputs.iter().any(|o| matches!(o, Output::Close));
            self.out.extend(outputs);
            self.closed |= closes;
        } else {
            self.held = outputs;
            self.held_until = Some(now + delay);
        }
    }

    fn reset_session_state(&mut self) {
        self.login = Login::Fresh;
        self.cwd = VirtualPath::root();
        self.representation = Representation::Ascii;
        self.rest = None;
        self.rename_from = None;
        if self.data == DataSetup::Passive {
            self.action(ActionKind::ClosePassive);
        }
        self.data = DataSetup::None;
        self.epsv_all = false;
        self.facts = Facts::default();
    }

    fn cmd_rein(&mut self, now: Instant) {
        self.reset_session_state();
        self.touch(now);
        self.reply(220, "Service ready for new user.");
        // RFC 4217 §11: REIN returns an explicitly protected control connection to the clear;
        // the client may AUTH again. An implicit-TLS connection stays protected.
        match self.tls {
            ControlTls::Explicit => {
                self.action(ActionKind::StopTls);
                self.tls = ControlTls::Clear;
            }
            ControlTls::Cleared => self.tls = ControlTls::Clear,
            ControlTls::Clear | ControlTls::Implicit => {}
        }
        if self.tls != ControlTls::Implicit {
            self.pbsz = false;
            self.prot_private = false;
            self.client_identity = None;
        }
    }

    // ----- TLS (RFC 2228, RFC 4217) -------------------------------------------------------------

    fn cmd_auth(&mut self, mechanism: &str) {
        let mech = mechanism.trim();
        let private = if mech.eq_ignore_ascii_case("TLS") || mech.eq_ignore_ascii_case("TLS-C") {
            false
        } else if mech.eq_ignore_ascii_case("SSL") || mech.eq_ignore_ascii_case("TLS-P") {
            // The drafts before RFC 4217 protected data connections too with these.
            true
        } else {
            self.reply(504, "AUTH mechanism not supported; use AUTH TLS.");
            return;
        };
        if !self.config.tls_available {
            self.reply(502, "TLS is not configured on this server.");
            return;
        }
        match self.tls {
            ControlTls::Explicit | ControlTls::Implicit => {
                self.reply(503, "TLS is already in use on this connection.");
                return;
            }
            ControlTls::Cleared => {
                self.reply(503, "TLS cannot be started again after CCC.");
                return;
            }
            ControlTls::Clear => {}
        }
        if self.logged_in().is_some() {
            self.reply(503, "AUTH must come before login; use REIN first.");
            return;
        }
        self.login = Login::Fresh;
        // Anything the client sent after AUTH, before the handshake, came in the clear: drop it
        // rather than run it as if it had been protected (command injection).
        self.framer = LineFramer::new(self.config.max_line_len);
        self.reply(
            234,
            &format!("AUTH {} successful.", mech.to_ascii_uppercase()),
        );
        self.wait(ActionKind::StartTls, Pending::Tls { private });
    }

    fn cmd_pbsz(&mut self, arg: &str) {
        if !self.tls.protected() {
            self.reply(503, "PBSZ requires AUTH TLS first.");
            return;
        }
        if arg.trim().parse::<u64>().is_err() {
            self.reply(501, "PBSZ needs a number; use PBSZ 0.");
            return;
        }
        self.pbsz = true;
        // RFC 4217 §8: TLS needs no buffer size; any value is answered with PBSZ=0.
        self.reply(200, "PBSZ=0");
    }

    fn cmd_prot(&mut self, arg: &str) {
        if self.tls == ControlTls::Cleared {
            self.reply(503, "PROT cannot be changed after CCC.");
            return;
        }
        if !self.tls.protected() {
            self.reply(503, "PROT requires AUTH TLS first.");
            return;
        }
        if !self.pbsz {
            self.reply(503, "PROT requires PBSZ 0 first.");
            return;
        }
        match arg.trim() {
            a if a.eq_ignore_ascii_case("C") => {
                self.prot_private = false;
                self.reply(200, "Protection level set to Clear.");
            }
            a if a.eq_ignore_ascii_case("P") => {
                self.prot_private = true;
                self.reply(200, "Protection level set to Private.");
            }
            a if a.eq_ignore_ascii_case("S") || a.eq_ignore_ascii_case("E") => {
                self.reply(536, "Only PROT C and PROT P are supported.")
            }
            _ => self.reply(504, "Unknown protection level; use C or P."),
        }
    }

    fn cmd_ccc(&mut self) {
        if !self.tls.protected() {
            self.reply(533, "CCC requires a protected control connection.");
            return;
        }
        let must_protect = self
            .logged_in()
            .is_some_and(|a| self.config.control_tls_required(&a.name, a.anonymous));
        if self.tls == ControlTls::Implicit || !self.config.allow_ccc || must_protect {
            self.reply(534, "CCC is not allowed by this server's policy.");
            return;
        }
        self.reply(
            200,
            "CCC command successful; the control connection is now in the clear.",
        );
        self.action(ActionKind::StopTls);
        self.tls = ControlTls::Cleared;
    }

    // ----- informational ----------------------------------------------------------------------

    fn cmd_feat(&mut self) {
        let mlst = self.facts.feat_line();
        let lines = [
            "EPRT",
            "EPSV",
            "LPRT",
            "LPSV",
            "MDTM",
            mlst.as_str(),
            "PASV",
            "REST STREAM",
            "SIZE",
            "TVFS",
            "UTF8",
        ];
        let tls: &[&str] = if self.config.tls_available {
            &["AUTH TLS", "AUTH SSL", "PBSZ", "PROT", "CCC"]
        } else {
            &[]
        };
        let all = tls.iter().copied().chain(lines);
        self.push_reply(Reply::with_body(211, "Features:", all, "End"));
    }

    fn cmd_opts(&mut self, arg: &str) {
        let (name, value) = match arg.find(' ') {
            Some(i) => (&arg[..i], arg[i + 1..].trim()),
            None => (arg, ""),
        };
        if name.eq_ignore_ascii_case("UTF8") {
            if value.is_empty() || value.eq_ignore_ascii_case("ON") {
                self.reply(200, "Always in UTF8 mode.");
            } else {
                self.reply(504, "UTF8 cannot be turned off; names are always UTF-8.");
            }
        } else if name.eq_ignore_ascii_case("MLST") {
            let chosen = self.facts.select(value);
            self.reply(200, format!("MLST OPTS {chosen}").trim_end());
        } else {
            self.reply(501, "Option not understood.");
        }
    }

    fn cmd_help(&mut self, arg: Option<&str>) {
        match arg {
            None => {
                let mut text = String::from("The following commands are recognized:\n");
                for row in command::VERBS.chunks(8) {
                    for v in row {
                        text.push_str(&format!(" {:<5}", v.name));
                    }
                    text.push('\n');
                }
                text.push_str("Help OK.");
                self.reply(214, &text);
            }
            Some(verb) => match command::verb_info(verb) {
                Some(info) => {
                    let text = format!("Syntax: {}", info.syntax);
                    self.reply(214, &text);
                }
                None => {
                    let shown: String = verb.chars().take(16).collect();
                    self.reply(502, &format!("Unknown command '{shown}'."));
                }
            },
        }
    }

    fn cmd_site(&mut self, arg: &str) {
        let sub = arg.split_ascii_whitespace().next().unwrap_or("");
        if sub.eq_ignore_ascii_case("HELP") {
            self.reply(
                214,
                "The following SITE commands are recognized:\n HELP\nHelp OK.",
            );
        } else {
            let shown: String = sub.chars().take(16).collect();
            self.reply(500, &format!("Unknown SITE command '{shown}'."));
        }
    }

    fn cmd_server_status(&mut self) {
        let mut text = String::from("Wharf FTP server status:\n");
        text.push_str(&format!(" Connected to {}\n", self.peer.ip()));
        match &self.login {
            Login::In(a) => text.push_str(&format!(" Logged in as {}\n", a.name)),
            _ => text.push_str(" Not logged in\n"),
        }
        text.push_str(&format!(
            " TYPE: {}; STRUcture: File; transfer MODE: Stream\n",
            match self.representation {
                Representation::Ascii => "ASCII",
                Representation::Binary => "BINARY",
            }
        ));
        text.push_str(match (self.tls, self.prot_private) {
            (ControlTls::Clear, _) => " Control connection in the clear\n",
            (ControlTls::Cleared, _) => " Control connection cleared by CCC\n",
            (_, true) => " Control connection protected by TLS; data connections protected\n",
            (_, false) => " Control connection protected by TLS; data connections in the clear\n",
        });
        text.push_str(match self.data {
            DataSetup::None => " No data connection\n",
            DataSetup::Passive => " Passive mode: waiting for the data connection\n",
            DataSetup::Active(_) => " Active mode: will connect to the client\n",
        });
        text.push_str("End of status");
        self.reply(211, &text);
    }

    // ----- paths ----------------------------------------------------------------------------

    /// Resolves `arg` against the current directory, replying 501/553 itself on failure.
    fn resolve(&mut self, arg: &str) -> Option<VirtualPath> {
        match VirtualPath::resolve(&self.cwd, arg) {
            Ok(p) => Some(p),
            Err(PathError::Nul) => {
                self.reply(501, "File names cannot contain NUL.");
                None
            }
            Err(_) => {
                self.reply(553, "Path too long.");
                None
            }
        }
    }

    /// As [`Session::resolve`], for an operation that changes the file system: also checks the
    /// account may write and that the path is not the root.
    fn writable_path(&mut self, arg: &str) -> Option<VirtualPath> {
        if !self.logged_in().is_some_and(|a| a.write) {
            self.reply(550, "Permission denied: this account is read-only.");
            return None;
        }
        let path = self.resolve(arg)?;
        if path.is_root() {
            self.reply(
                550,
                "Permission denied: the root directory cannot be changed.",
            );
            return None;
        }
        Some(path)
    }

    /// The MLSD `perm` fact of an entry for this session's account (RFC 3659 §7.5.5).
    fn perm_fact(&self, info: &FileInfo, is_root: bool) -> &'static str {
        let write = self.logged_in().is_some_and(|a| a.write);
        match (info.kind, write, is_root) {
            (FileKind::Dir, true, true) => "cemlp",
            (FileKind::Dir, true, false) => "cdeflmp",
            (FileKind::Dir, false, _) => "el",
            (_, true, _) => "adfrw",
            (_, false, _) => "r",
        }
    }

    // ----- data connections -------------------------------------------------------------------

    fn data_refused_after_epsv_all(&mut self) -> bool {
        if self.epsv_all {
            self.reply(
                503,
                "EPSV ALL is in effect: only EPSV may set up data connections.",
            );
        }
        self.epsv_all
    }

    fn cmd_passive(&mut self, kind: PassiveKind) {
        if self.data_refused_after_epsv_all() {
            return;
        }
        if kind == PassiveKind::Pasv && self.advertised_v4().is_none() {
            self.reply(
                425,
                "PASV works with IPv4 addresses only; use EPSV on this connection.",
            );
            return;
        }
        self.listen(kind);
    }

    fn cmd_epsv(&mut self, arg: EpsvArg) {
        let local_v4 = addr::canonical_ip(self.local.ip()).is_ipv4();
        match arg {
            EpsvArg::All => {
                self.epsv_all = true;
                self.reply(200, "EPSV ALL ok.");
            }
            EpsvArg::Proto(1) if local_v4 => self.listen(PassiveKind::Epsv),
            EpsvArg::Proto(2) if !local_v4 => self.listen(PassiveKind::Epsv),
            EpsvArg::Proto(_) => self.reply(
                522,
                if local_v4 {
                    "Network protocol not supported, use (1)"
                } else {
                    "Network protocol not supported, use (2)"
                },
            ),
            EpsvArg::Any => self.listen(PassiveKind::Epsv),
        }
    }

    fn listen(&mut self, kind: PassiveKind) {
        let ip = addr::canonical_ip(self.local.ip());
        let peer = if self.config.allow_foreign_data_address {
            None
        } else {
            Some(addr::canonical_ip(self.peer.ip()))
        };
        self.data = DataSetup::None;
        self.wait(
            ActionKind::ListenPassive { ip, peer },
            Pending::Passive(kind),
        );
    }

    fn advertised_v4(&self) -> Option<std::net::Ipv4Addr> {
        let ip = self
            .config
            .passive_address
            .unwrap_or_else(|| addr::canonical_ip(self.local.ip()));
        match addr::canonical_ip(ip) {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        }
    }

    fn passive_outcome(&mut self, kind: PassiveKind, result: Result<u16, String>) {
        let port = match result {
            Ok(port) => port,
            Err(msg) => {
                self.reply(
                    425,
                    &format!("Cannot open a passive data connection: {msg}"),
                );
                return;
            }
        };
        self.data = DataSetup::Passive;
        match kind {
            PassiveKind::Epsv => self.reply(229, &addr::format_epsv(port)),
            PassiveKind::Pasv => {
                let ip = self
                    .advertised_v4()
                    .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
                self.reply(227, &addr::format_pasv(SocketAddrV4::new(ip, port)));
            }
            PassiveKind::Lpsv => {
                let ip = self
                    .config
                    .passive_address
                    .unwrap_or_else(|| addr::canonical_ip(self.local.ip()));
                let text = format!(
                    "Entering Long Passive Mode ({}).",
                    addr::format_lprt(SocketAddr::new(ip, port))
                );
                self.reply(228, &text);
            }
        }
    }

    fn cmd_active(&mut self, target: SocketAddr, verb: &str) {
        if self.data_refused_after_epsv_all() {
            return;
        }
        let ip = addr::canonical_ip(target.ip());
        let peer = addr::canonical_ip(self.peer.ip());
        if ip != peer && !self.config.allow_foreign_data_address {
            self.reply(
                500,
                &format!(
                    "Illegal {verb} command: {ip} is not your address ({peer}); third-party transfers are not allowed."
                ),
            );
            return;
        }
        if target.port() < 1024 && !self.config.allow_privileged_data_port {
            self.reply(
                500,
                &format!(
                    "Illegal {verb} command: port {} is below 1024.",
                    target.port()
                ),
            );
            return;
        }
        if self.data == DataSetup::Passive {
            self.action(ActionKind::ClosePassive);
        }
        self.data = DataSetup::Active(SocketAddr::new(ip, target.port()));
        self.reply(
            200,
            &format!("{verb} command successful. Consider using EPSV."),
        );
    }

    /// Replies and returns false when a transfer command cannot go ahead: 522 when policy
    /// wants the data connection protected and it is not, 425 when no PASV/PORT preceded it.
    fn need_data(&mut self) -> bool {
        let must_protect = self
            .logged_in()
            .is_some_and(|a| self.config.data_tls_required(&a.name, a.anonymous));
        if must_protect && !self.prot_private {
            self.reply(
                522,
                "Data connections must be protected: send PBSZ 0 and PROT P first \
                 (curl --ssl-reqd, lftp 'set ftp:ssl-protect-data true', Python FTP_TLS.prot_p()).",
            );
            false
        } else if self.data == DataSetup::None {
            self.reply(425, "Use PORT, PASV or EPSV first.");
            false
        } else {
            true
        }
    }

    /// Emits the transfer action, consuming the data connection setup.
    fn start_transfer(&mut self, kind: TransferKind, what: String, size: Option<u64>) {
        let data = match self.data {
            DataSetup::Passive => DataEndpoint::Passive,
            DataSetup::Active(a) => DataEndpoint::Active(a),
            DataSetup::None => {
                self.reply(425, "Use PORT, PASV or EPSV first.");
                return;
            }
        };
        self.data = DataSetup::None;
        let representation = match kind {
            TransferKind::Listing { .. } => Representation::Binary,
            _ => self.representation,
        };
        let protection = if self.prot_private {
            DataProtection::Private {
                require_session_reuse: self.config.require_tls_session_reuse,
            }
        } else {
            DataProtection::Clear
        };
        let id = self.action(ActionKind::Transfer(TransferPlan {
            kind,
            data,
            representation,
            rate_limit: None,
            protection,
        }));
        self.transfer = Some(Transfer {
            id,
            what,
            size,
            started: false,
            bytes: 0,
            abort_requested: false,
        });
    }

    fn cmd_store(&mut self, arg: &str, mode: StoreMode, verb: &str) {
        if !self.need_data() {
            return;
        }
        let Some(path) = self.writable_path(arg) else {
            return;
        };
        let what = format!("{verb} {path}");
        self.start_transfer(TransferKind::Store { path, mode }, what, None);
    }

    fn transfer_outcome(&mut self, now: Instant, kind: OutcomeKind) {
        let Some(t) = self.transfer.as_mut() else {
            return;
        };
        match kind {
            OutcomeKind::TransferStarted { stored_as } => {
                t.started = true;
                let mode = match self.representation {
                    Representation::Ascii => "ASCII",
                    Representation::Binary => "BINARY",
                };
                // In TYPE A the wire size differs from the stored size: don't announce it.
                let size = t
                    .size
                    .filter(|_| self.representation == Representation::Binary);
                let text = match (stored_as, size) {
                    (Some(p), _) => format!("FILE: {}", p.file_name()),
                    (None, Some(n)) => {
                        format!(
                            "Opening {mode} mode data connection for {} ({n} bytes).",
                            t.what
                        )
                    }
                    (None, None) => format!("Opening {mode} mode data connection for {}.", t.what),
                };
                self.reply(150, &text);
            }
            OutcomeKind::TransferProgress { bytes } => t.bytes = bytes,
            OutcomeKind::TransferEnded { bytes, result } => {
                let Some(t) = self.transfer.take() else {
                    return;
                };
                self.touch(now);
                self.transfer_ended(t, bytes, result);
                if self.quit_after_transfer {
                    self.reply(221, "Goodbye.");
                    self.close();
                }
            }
            _ => {}
        }
    }

    fn transfer_ended(&mut self, t: Transfer, bytes: u64, result: Result<(), TransferError>) {
        match result {
            Ok(()) => self.reply(226, &format!("Transfer complete ({bytes} bytes).")),
            Err(TransferError::Aborted) => {
                self.reply(426, "Connection closed; transfer aborted.");
            }
            Err(TransferError::DataConnection(msg)) => {
                self.reply(425, &format!("Cannot open data connection: {msg}"));
            }
            Err(TransferError::Tls(msg)) => {
                self.reply(522, &format!("Data connection TLS failed: {msg}"));
            }
            Err(TransferError::ConnectionLost(msg)) => {
                self.reply(426, &format!("Connection closed; transfer aborted: {msg}"));
            }
            Err(TransferError::Storage(e)) => {
                let code = match (&e, t.started) {
                    (StorageError::NoSpace, true) => 452,
                    (_, true) => 451,
                    (StorageError::NoSpace, false) => 452,
                    (StorageError::InvalidName, false)
                    | (StorageError::IsADirectory, false)
                    | (StorageError::AlreadyExists, false) => 553,
                    (_, false) => 550,
                };
                self.reply(code, &format!("Transfer failed: {e}."));
            }
        }
        if t.abort_requested {
            self.reply(226, "ABOR command successful.");
        }
    }

    // ----- listings ---------------------------------------------------------------------------

    fn cmd_list(&mut self, kind: ListKind, arg: Option<&str>) {
        if kind != ListKind::Stat && !self.need_data() {
            return;
        }
        let raw = arg.unwrap_or("");
        // A glob applies to the last component: list its directory and filter.
        let (dir_part, pattern) = match raw.rfind('/') {
            Some(i) if listing::is_glob(&raw[i + 1..]) => (&raw[..=i], Some(&raw[i + 1..])),
            None if listing::is_glob(raw) => ("", Some(raw)),
            _ => (raw, None),
        };
        if pattern.is_some() && kind == ListKind::Mlsd {
            self.reply(501, "MLSD does not take wildcards.");
            return;
        }
        let Some(target) = self.resolve(if dir_part.is_empty() { "." } else { dir_part }) else {
            return;
        };
        let req = ListRequest {
            kind,
            target: target.clone(),
            pattern: pattern.map(str::to_owned),
            exact: None,
            prefix: if pattern.is_some() {
                dir_part.to_owned()
            } else {
                String::new()
            },
        };
        self.wait(ActionKind::Stat { path: target }, Pending::ListStat(req));
    }

    fn list_stat_outcome(&mut self, mut req: ListRequest, info: FileInfo) {
        if info.is_dir() {
            let path = req.target.clone();
            self.wait(ActionKind::ReadDir { path }, Pending::ListRead(req, info));
            return;
        }
        if req.kind == ListKind::Mlsd {
            self.reply(501, "MLSD needs a directory; use MLST for a file.");
            return;
        }
        // A file: list it alone, as ls does, from its directory's entries.
        req.exact = Some(req.target.file_name().to_owned());
        let path = req.target.parent();
        self.wait(ActionKind::ReadDir { path }, Pending::ListRead(req, info));
    }

    fn list_entries(
        &mut self,
        req: ListRequest,
        dir: Option<FileInfo>,
        mut entries: Vec<FileInfo>,
        now: UnixTime,
    ) {
        if let Some(p) = &req.pattern {
            entries.retain(|e| listing::glob_match(p, &e.name));
        }
        if let Some(name) = &req.exact {
            entries.retain(|e| e.name == *name);
        }
        entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        let mut text = String::with_capacity(entries.len() * 80);
        match req.kind {
            ListKind::List | ListKind::Stat => {
                for e in &entries {
                    listing::write_list_line(e, now, &mut text);
                }
            }
            ListKind::Nlst => {
                for e in &entries {
                    text.push_str(&req.prefix);
                    text.push_str(&e.name);
                    text.push_str("\r\n");
                }
            }
            ListKind::Mlsd => {
                if let Some(d) = &dir {
                    let perm = self.perm_fact(d, req.target.is_root());
                    listing::write_mlsd_line(d, EntryRole::Current, perm, &self.facts, &mut text);
                }
                for e in &entries {
                    let perm = self.perm_fact(e, false);
                    listing::write_mlsd_line(e, EntryRole::Entry, perm, &self.facts, &mut text);
                }
            }
        }
        if req.kind == ListKind::Stat {
            let mut body = format!("Status of {}:\n", req.target);
            body.push_str(&text.replace("\r\n", "\n"));
            body.push_str("End of status");
            // RFC 959: 212 is directory status, 213 file status.
            let code = if req.exact.is_some() { 213 } else { 212 };
            self.reply(code, &body);
            return;
        }
        let verb = match req.kind {
            ListKind::List => "LIST",
            ListKind::Nlst => "NLST",
            _ => "MLSD",
        };
        let what = format!("{verb} {}", req.target);
        self.start_transfer(
            TransferKind::Listing {
                bytes: text.into_bytes(),
            },
            what,
            None,
        );
    }

    // ----- outcomes ---------------------------------------------------------------------------

    fn pending_outcome(&mut self, now: Instant, pending: Pending, kind: OutcomeKind) {
        match (pending, kind) {
            (Pending::Login { certificate }, OutcomeKind::Authenticated(r)) => {
                self.login_outcome(now, r, certificate)
            }
            (Pending::Tls { private }, OutcomeKind::TlsEstablished(r)) => match r {
                Ok(info) => {
                    self.tls = ControlTls::Explicit;
                    self.client_identity = info.client_identity;
                    if private {
                        self.pbsz = true;
                        self.prot_private = true;
                    }
                }
                // The handshake failed: nothing more can be said on this connection.
                Err(_) => self.close(),
            },
            (Pending::Passive(kind), OutcomeKind::PassiveListening(r)) => {
                self.passive_outcome(kind, r)
            }
            (Pending::Cwd(path), OutcomeKind::Metadata(r)) => match r {
                Ok(info) if info.is_dir() => {
                    self.cwd = path;
                    self.reply(250, "Directory successfully changed.");
                }
                Ok(_) => self.reply(550, "Failed to change directory: not a directory."),
                Err(e) => self.reply(550, &format!("Failed to change directory: {e}.")),
            },
            (Pending::Retr { path, offset }, OutcomeKind::Metadata(r)) => match r {
                Ok(info) if info.is_file() => {
                    if offset > info.size {
                        self.reply(
                            554,
                            &format!(
                                "Restart offset {offset} is beyond the end of the file ({} bytes).",
                                info.size
                            ),
                        );
                        return;
                    }
                    let what = format!("{path}");
                    let size = Some(info.size - offset);
                    self.start_transfer(TransferKind::Retrieve { path, offset }, what, size);
                }
                Ok(_) => self.reply(550, "Failed to open file: not a plain file."),
                Err(e) => self.reply(550, &format!("Failed to open file: {e}.")),
            },
            (Pending::ListStat(req), OutcomeKind::Metadata(r)) => match r {
                Ok(info) => self.list_stat_outcome(req, info),
                Err(e) => self.reply(550, &format!("Cannot list {}: {e}.", req.target)),
            },
            (Pending::ListRead(req, dir), OutcomeKind::Entries { result, now: wall }) => {
                match result {
                    Ok(entries) => self.list_entries(req, Some(dir), entries, wall),
                    Err(e) => self.reply(550, &format!("Cannot list {}: {e}.", req.target)),
                }
            }
            (Pending::Mlst(path), OutcomeKind::Metadata(r)) => match r {
                Ok(info) => {
                    let mut facts = String::new();
                    let perm = self.perm_fact(&info, path.is_root());
                    listing::write_facts(&info, EntryRole::Entry, perm, &self.facts, &mut facts);
                    facts.push(' ');
                    facts.push_str(path.as_str());
                    let first = format!("Listing {path}");
                    self.push_reply(Reply::with_body(250, &first, [facts.as_str()], "End."));
                }
                Err(e) => self.reply(550, &format!("Cannot list {path}: {e}.")),
            },
            (Pending::Size(path), OutcomeKind::Metadata(r)) => match r {
                Ok(info) if info.is_file() => match self.representation {
                    Representation::Binary => self.reply(213, &info.size.to_string()),
                    // Exact: the runtime counts the file as TYPE A would send it.
                    Representation::Ascii => {
                        self.wait(ActionKind::AsciiSize { path }, Pending::AsciiSize)
                    }
                },
                Ok(_) => self.reply(550, "Could not get file size: not a plain file."),
                Err(e) => self.reply(550, &format!("Could not get file size: {e}.")),
            },
            (Pending::AsciiSize, OutcomeKind::Size(r)) => match r {
                Ok(n) => self.reply(213, &n.to_string()),
                Err(e) => self.reply(550, &format!("Could not get file size: {e}.")),
            },
            (Pending::Mdtm, OutcomeKind::Metadata(r)) => match r {
                Ok(info) if info.is_file() => {
                    let mut s = String::new();
                    info.modified.write_mdtm(&mut s);
                    self.reply(213, &s);
                }
                Ok(_) => self.reply(550, "Could not get modification time: not a plain file."),
                Err(e) => self.reply(550, &format!("Could not get modification time: {e}.")),
            },
            (Pending::Rnfr(path), OutcomeKind::Metadata(r)) => match r {
                Ok(_) => {
                    self.rename_from = Some(path);
                    self.reply(350, "Ready for RNTO.");
                }
                Err(e) => self.reply(550, &format!("RNFR failed: {e}.")),
            },
            (Pending::Done(done), OutcomeKind::Done(r)) => match (done, r) {
                (Done::Mkd(path), Ok(())) => {
                    let q = quote_path(path.as_str());
                    self.reply(257, &format!("{q} created."));
                }
                (Done::Rmd, Ok(())) => self.reply(250, "Directory removed."),
                (Done::Dele, Ok(())) => self.reply(250, "File deleted."),
                (Done::Rnto, Ok(())) => self.reply(250, "Rename successful."),
                (Done::Mkd(_), Err(e)) => {
                    self.reply(550, &format!("Create directory operation failed: {e}."))
                }
                (Done::Rmd, Err(e)) => {
                    self.reply(550, &format!("Remove directory operation failed: {e}."))
                }
                (Done::Dele, Err(e)) => self.reply(550, &format!("Delete operation failed: {e}.")),
                (Done::Rnto, Err(e)) => {
                    let code = if e == StorageError::InvalidName {
                        553
                    } else {
                        550
                    };
                    self.reply(code, &format!("Rename failed: {e}."))
                }
            },
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
            | Command::Syst
            | Command::Rein
            | Command::Auth(_)
            | Command::Pbsz(_)
            | Command::Prot(_)
            | Command::Ccc
    )
}
