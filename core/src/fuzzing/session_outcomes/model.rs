//! The model of what the session owes the client, and the checks of its outputs.

use super::*;

/// What a command line is, as far as the checks care (from the same parser the session uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Abor,
    Stat,
    Noop,
    Quit,
    Auth,
    User,
    Pass,
    Rein,
    Type(TypeCode),
    Stru(Structure),
    Mode(ModeCode),
    /// `OPTS MODE Z LEVEL n` with a valid level.
    DeflateLevel(u8),
    /// `SITE CODEPAGE` naming a code page.
    CodePage(CodePage),
    Retr,
    /// STOR (or REST + STOR).
    Stor,
    Appe,
    Stou,
    Listing,
    Checksum,
    /// A line the parser refuses, with the code of its reply.
    Refused(u16),
    /// A line over `max_line_len`: 500.
    TooLong,
    Other,
}

impl Kind {
    pub(super) fn of(line: &[u8]) -> Kind {
        let cmd = match command::parse_command(line) {
            Ok(cmd) => cmd,
            Err(e) => return Kind::Refused(e.code),
        };
        match cmd {
            Command::Abor => Kind::Abor,
            Command::Stat(_) => Kind::Stat,
            Command::Noop => Kind::Noop,
            Command::Quit => Kind::Quit,
            Command::Auth(_) => Kind::Auth,
            Command::User(_) => Kind::User,
            Command::Pass(_) => Kind::Pass,
            Command::Rein => Kind::Rein,
            Command::Type(t) => Kind::Type(t),
            Command::Stru(s) => Kind::Stru(s),
            Command::Mode(m) => Kind::Mode(m),
            Command::Opts(arg) => deflate_level(arg).map_or(Kind::Other, Kind::DeflateLevel),
            Command::Site(arg) => code_page(arg).map_or(Kind::Other, Kind::CodePage),
            Command::Retr(_) => Kind::Retr,
            Command::Stor(_) => Kind::Stor,
            Command::Appe(_) => Kind::Appe,
            Command::Stou(_) => Kind::Stou,
            Command::List(_) | Command::Nlst(_) | Command::Mlsd(_) => Kind::Listing,
            Command::Hash(_) | Command::XChecksum { .. } => Kind::Checksum,
            _ => Kind::Other,
        }
    }
}

/// The level of `OPTS MODE Z LEVEL n` (draft-preston-ftpext-deflate), read as a client means it.
pub(super) fn deflate_level(arg: &str) -> Option<u8> {
    let mut words = arg.split_ascii_whitespace();
    let mode = words.next()?.eq_ignore_ascii_case("MODE");
    let z = words.next()?.eq_ignore_ascii_case("Z");
    let level = words.next()?.eq_ignore_ascii_case("LEVEL");
    let n = words.next()?.parse::<u8>().ok().filter(|&n| n <= 9)?;
    (mode && z && level && words.next().is_none()).then_some(n)
}

/// The code page of `SITE CODEPAGE <page>`: its digits, without leading zeros, name it.
pub(super) fn code_page(arg: &str) -> Option<CodePage> {
    let mut words = arg.split_ascii_whitespace();
    if !words.next()?.eq_ignore_ascii_case("CODEPAGE") {
        return None;
    }
    let digits: String = words.next()?.chars().filter(char::is_ascii_digit).collect();
    match digits.trim_start_matches('0') {
        "1047" => Some(CodePage::Ibm1047),
        "37" => Some(CodePage::Ibm037),
        _ => None,
    }
}

/// A command line sent and not yet answered.
#[derive(Debug)]
pub(super) struct Sent {
    pub(super) kind: Kind,
    /// The transfer (or checksum) it started, once the session asked for one.
    pub(super) transfer: Option<ActionId>,
}

/// What TYPE, STRU, MODE, OPTS MODE Z and SITE CODEPAGE have set, as the replies said.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Formats {
    pub(super) format: DataFormat,
    pub(super) code_page: CodePage,
    pub(super) level: Option<u8>,
    pub(super) logged_in: bool,
}

impl Formats {
    pub(super) fn level(&self) -> u8 {
        self.level.unwrap_or(Mode::DEFAULT_DEFLATE_LEVEL)
    }

    pub(super) fn reset(&mut self) {
        *self = Formats::default();
    }

    /// The final reply `code` answered a command of `kind`.
    pub(super) fn answered(&mut self, kind: Kind, code: u16) {
        match (kind, code) {
            (Kind::Type(t), 200) => {
                self.format.representation = match t {
                    TypeCode::Ascii(f) => Representation::Ascii(f),
                    TypeCode::Ebcdic(f) => Representation::Ebcdic(f, self.code_page),
                    TypeCode::Image => Representation::Image,
                }
            }
            (Kind::Stru(s), 200) => self.format.structure = s,
            (Kind::Mode(m), 200) => {
                self.format.mode = match m {
                    ModeCode::Stream => Mode::Stream,
                    ModeCode::Block => Mode::Block,
                    ModeCode::Compressed => Mode::Compressed,
                    ModeCode::Deflate => Mode::Deflate {
                        level: self.level(),
                    },
                }
            }
            (Kind::DeflateLevel(n), 200) => {
                self.level = Some(n);
                if let Mode::Deflate { level } = &mut self.format.mode {
                    *level = n;
                }
            }
            (Kind::CodePage(page), 200) => {
                self.code_page = page;
                if let Representation::Ebcdic(f, _) = self.format.representation {
                    self.format.representation = Representation::Ebcdic(f, page);
                }
            }
            (Kind::Rein, _) => self.reset(),
            // USER ends a login first (whatever it answers), and a 232 starts another.
            (Kind::User, _) => {
                if self.logged_in {
                    self.reset();
                }
                self.logged_in = code == 232;
            }
            (Kind::Pass, 230) => self.logged_in = true,
            _ => {}
        }
    }
}

impl Driver {
    /// Drains the session after a call, checking each output against the model.
    pub(super) fn drain(&mut self, fed: Fed) {
        let mut seen_close = false;
        let mut seen_421 = false;
        let mut seen_221 = false;
        let mut preliminary = 0;
        self.transfer_final = false;
        self.transfer_event = false;
        let mut outputs = 0;
        while let Some(out) = self.session.poll_output() {
            outputs += 1;
            if self.trace {
                match &out {
                    Output::Reply(r) => eprint!("S: {r}"),
                    other => eprintln!("-> {other:?}"),
                }
            }
            assert!(outputs <= MAX_OUTPUTS, "the session does not go quiet");
            assert!(!seen_close, "{out:?} after Close");
            assert!(fed != Fed::Late, "a late outcome produced {out:?}");
            match out {
                Output::Close => {
                    assert!(!self.closed, "Close twice");
                    seen_close = true;
                    self.closed = true;
                }
                Output::Reply(reply) => {
                    if let Err(e) = check_reply(&reply) {
                        panic!("malformed reply: {e}");
                    }
                    assert!(fed != Fed::Disconnect, "{reply:?} after handle_disconnect");
                    let code = reply.code();
                    if fed == Fed::Greeting {
                        assert!(matches!(code, 220 | 421), "greeted with {reply:?}");
                        seen_421 |= code == 421;
                        continue;
                    }
                    match code {
                        100..=199 => {
                            preliminary += 1;
                            let ok = match code {
                                150 => fed == Fed::Started,
                                110 => fed == Fed::Mark,
                                _ => false,
                            };
                            assert!(ok, "{reply:?} after {fed:?}");
                        }
                        421 => seen_421 = true,
                        _ => {
                            if self.final_reply(code, fed) == Kind::Quit {
                                seen_221 = true;
                            }
                        }
                    }
                }
                Output::Action(action) => {
                    assert_eq!(action.id, ActionId(self.next_id), "action ids out of order");
                    self.next_id += 1;
                    self.action(action.id, action.kind, fed);
                }
            }
        }
        if matches!(fed, Fed::Started | Fed::Mark) {
            assert_eq!(preliminary, 1, "one 1xx reply for each {fed:?}");
        }
        if let Fed::Ended(id, _, event) = fed {
            assert!(self.transfer_final, "the end of {id:?} got no final reply");
            assert_eq!(
                self.transfer_event,
                event.is_some(),
                "the end of {id:?} brought no {event:?} event"
            );
        }
        if seen_421 || seen_221 {
            assert!(
                seen_close,
                "a 421 or a 221 that did not close the connection"
            );
        }
        if self.closed {
            self.expect.clear();
            self.unsent.clear();
            self.quit_sent = false;
            assert_eq!(
                self.session.poll_timeout(),
                None,
                "a closed session has a timeout"
            );
            assert!(
                self.session.account().is_none(),
                "closed and still logged in"
            );
        } else {
            let outstanding = self.pending.is_some() || self.transfer.is_some();
            if outstanding {
                assert_eq!(
                    self.session.poll_timeout(),
                    None,
                    "a timeout while an action is outstanding or a transfer runs"
                );
            }
            assert_eq!(
                self.logins,
                u32::from(self.session.account().is_some()),
                "the logins the runtime counts do not match Session::account"
            );
        }
    }

    /// A final reply (2xx–5xx but 421): which command it answers, checked. Returns its kind.
    pub(super) fn final_reply(&mut self, code: u16, fed: Fed) -> Kind {
        if let Some(t) = &self.transfer {
            // While a transfer runs only STAT and NOOP right behind its command are answered
            // (ABOR and QUIT are taken too, and answered after the transfer's end; nothing
            // after them is taken).
            let want = match code {
                200 => Kind::Noop,
                213 => Kind::Stat,
                _ => panic!("{code} while transfer {:?} runs ({fed:?})", t.id),
            };
            assert!(t.started, "{code} before the transfer's 150");
            let next = self.expect.get(1).map(|s| s.kind);
            assert_eq!(next, Some(want), "{code} during a transfer, out of order");
            self.expect.remove(1);
            return want;
        }
        let Some(sent) = self.expect.pop_front() else {
            panic!("a {code} reply answers no command ({fed:?})");
        };
        if let (Fed::Ended(id, codes, _), false) = (fed, self.transfer_final) {
            self.transfer_final = true;
            assert_eq!(
                sent.transfer,
                Some(id),
                "the first reply after the end of {id:?} is not its command's"
            );
            assert!(
                codes.contains(&code),
                "{sent:?} ended with {code}, not one of {codes:?}"
            );
            return sent.kind;
        }
        assert_eq!(
            sent.transfer, None,
            "{sent:?} got {code} before its transfer ended"
        );
        let ok = match sent.kind {
            Kind::Quit => code == 221,
            // 530 before login; 226 after the transfer it aborted.
            Kind::Abor => matches!(code, 225 | 226 | 530),
            Kind::Noop => code == 200,
            Kind::Auth => matches!(code, 234 | 502 | 503 | 504),
            Kind::Refused(c) => code == c,
            Kind::TooLong => code == 500,
            _ => true,
        };
        assert!(ok, "{sent:?} answered {code}");
        self.formats.answered(sent.kind, code);
        sent.kind
    }

    /// An action the session asked for.
    pub(super) fn action(&mut self, id: ActionId, kind: ActionKind, fed: Fed) {
        if fed == Fed::Disconnect {
            assert!(
                matches!(kind, ActionKind::Notify(_) | ActionKind::LoginEnded),
                "{kind:?} after handle_disconnect"
            );
        }
        let ask = match kind {
            ActionKind::Authenticate { user, .. }
            | ActionKind::AuthenticateCertificate { user } => Ask::Login { user },
            ActionKind::Stat { .. } => Ask::Stat,
            ActionKind::ReadDir { .. } => Ask::ReadDir,
            ActionKind::MakeDir { .. }
            | ActionKind::SetMode { .. }
            | ActionKind::SetModified { .. }
            | ActionKind::RemoveDir { .. }
            | ActionKind::Delete { .. }
            | ActionKind::Rename { .. } => Ask::Done,
            ActionKind::AsciiSize { .. } | ActionKind::EncodedSize { .. } => Ask::Size,
            ActionKind::ListenPassive {
                ip: _,
                peer,
                fxp_peers,
            } => {
                let client = crate::addr::canonical_ip(self.peer.ip());
                assert_eq!(peer, client, "a passive listener for another address");
                assert_eq!(
                    fxp_peers,
                    self.fxp_peers(),
                    "a passive listener open to servers the account may not use"
                );
                // It replaces any listener; until it is answered there is none.
                self.listener = false;
                Ask::Listen
            }
            ActionKind::StartTls => {
                // Everything after AUTH was sent in the clear: the session dropped it, and
                // the driver feeds nothing more until the handshake has ended.
                self.expect.clear();
                self.unsent.clear();
                self.mirror = LineFramer::new(self.config.max_line_len);
                self.quit_sent = false;
                Ask::Tls
            }
            ActionKind::AdminQuery(q) => Ask::Admin(q),
            ActionKind::Transfer(plan) => {
                self.no_action_outstanding(id);
                let head = self.expect.front().map(|s| s.kind);
                let (direction, unique) = match &plan.kind {
                    TransferKind::Retrieve { .. } => {
                        assert_eq!(head, Some(Kind::Retr), "a retrieve for {head:?}");
                        (Direction::Download, None)
                    }
                    TransferKind::Store { path, mode } => {
                        let want = match mode {
                            StoreMode::Create | StoreMode::Resume(_) => Kind::Stor,
                            StoreMode::Append => Kind::Appe,
                            StoreMode::Unique => Kind::Stou,
                        };
                        assert_eq!(head, Some(want), "a {mode:?} store for {head:?}");
                        let unique = (*mode == StoreMode::Unique)
                            .then(|| path.parent().join(&format!("{}.1", path.file_name())));
                        (Direction::Upload, unique)
                    }
                    TransferKind::Listing { .. } => {
                        assert_eq!(head, Some(Kind::Listing), "a listing for {head:?}");
                        (Direction::Listing, None)
                    }
                };
                let upload = direction == Direction::Upload;
                if !matches!(plan.kind, TransferKind::Listing { .. }) {
                    assert_eq!(
                        plan.format, self.formats.format,
                        "the transfer's format is not what TYPE, STRU and MODE set"
                    );
                }
                let marked = matches!(plan.format.mode, Mode::Block | Mode::Compressed);
                assert_eq!(
                    plan.marker_interval.is_some(),
                    marked && self.config.restart_marker_interval > 0,
                    "restart markers in {:?}",
                    plan.format.mode
                );
                match plan.data {
                    DataEndpoint::Passive => {
                        assert!(self.listener, "a passive transfer without a listener");
                        self.listener = false;
                    }
                    DataEndpoint::Active(to) => self.check_active(to),
                }
                if let Some(sent) = self.expect.front_mut() {
                    sent.transfer = Some(id);
                }
                self.transfer = Some(Running {
                    id,
                    direction,
                    checksum: false,
                    upload,
                    marks: upload && marked,
                    unique,
                    started: false,
                    abort_asked: false,
                });
                return;
            }
            ActionKind::Checksum { .. } => {
                self.no_action_outstanding(id);
                let head = self.expect.front_mut();
                let head = head.unwrap_or_else(|| panic!("a checksum for no command"));
                assert_eq!(head.kind, Kind::Checksum, "a checksum for {head:?}");
                head.transfer = Some(id);
                self.transfer = Some(Running {
                    id,
                    direction: Direction::Checksum,
                    checksum: true,
                    upload: false,
                    marks: false,
                    unique: None,
                    // It runs at once: STAT and NOOP are answered from the start.
                    started: true,
                    abort_asked: false,
                });
                return;
            }
            ActionKind::AbortTransfer { transfer } => {
                let t = self.transfer.as_mut();
                let t = t.unwrap_or_else(|| panic!("AbortTransfer of {transfer:?}: none runs"));
                assert_eq!(t.id, transfer, "AbortTransfer names another transfer");
                assert!(!t.abort_asked, "AbortTransfer twice");
                t.abort_asked = true;
                return;
            }
            ActionKind::ClosePassive => {
                self.listener = false;
                return;
            }
            ActionKind::LoginEnded => {
                assert_eq!(self.logins, 1, "LoginEnded without a login counted");
                self.logins = 0;
                return;
            }
            ActionKind::Notify(event) => {
                let transfer = matches!(
                    event.kind,
                    EventKind::UploadComplete
                        | EventKind::UploadFailed
                        | EventKind::DownloadComplete
                        | EventKind::DownloadFailed
                );
                if transfer {
                    // Events of a finished transfer come after its final reply.
                    let Fed::Ended(t, _, want) = fed else {
                        panic!("{:?} event after {fed:?}", event.kind);
                    };
                    assert_eq!(
                        Some(event.kind),
                        want,
                        "the end of {t:?} brought another event"
                    );
                    assert!(
                        self.transfer_final,
                        "{:?} before the final reply",
                        event.kind
                    );
                    assert!(!self.transfer_event, "two events for the end of {t:?}");
                    self.transfer_event = true;
                }
                return;
            }
            ActionKind::StopTls => return,
        };
        self.no_action_outstanding(id);
        self.pending = Some((id, ask));
    }

    /// Rule 2: while an action is outstanding the session takes no further command.
    pub(super) fn no_action_outstanding(&self, id: ActionId) {
        if let Some((p, ask)) = &self.pending {
            panic!("{id:?} asked for while {p:?} ({ask:?}) is outstanding");
        }
        if let Some(t) = &self.transfer {
            panic!("{id:?} asked for while transfer {:?} runs", t.id);
        }
    }

    /// The servers the logged-in account may transfer with (FXP): its own list, else the
    /// server's; none before login.
    pub(super) fn fxp_peers(&self) -> Vec<Cidr> {
        match self.session.account() {
            Some(a) => a
                .fxp_peers
                .clone()
                .unwrap_or_else(|| self.config.fxp_peers.clone()),
            None => Vec::new(),
        }
    }

    /// PORT, EPRT and LPRT: the client's own address or an FXP peer of the account, and an
    /// unprivileged port unless the configuration allows otherwise (the bounce attack).
    pub(super) fn check_active(&self, to: SocketAddr) {
        let client = crate::addr::canonical_ip(self.peer.ip());
        let ip = crate::addr::canonical_ip(to.ip());
        assert!(
            ip == client || self.fxp_peers().iter().any(|c| c.contains(ip)),
            "an active data connection to a third party ({ip}) the account may not use"
        );
        if !self.config.allow_privileged_data_port {
            assert!(to.port() >= 1024, "an active data connection to port {to}");
        }
    }
}

/// The final codes the end of a transfer allows, from the documentation of
/// [`TransferError`] (and 226, or for a checksum 213/250, when it succeeded).
pub(super) fn final_codes(t: &Running, result: &Result<(), TransferError>) -> &'static [u16] {
    if t.checksum {
        return match result {
            Ok(()) => &[213, 250],
            Err(TransferError::Aborted) => &[426],
            Err(TransferError::Busy(_)) => &[450],
            Err(_) => &[551],
        };
    }
    match result {
        Ok(()) => &[226],
        Err(TransferError::DataConnection(_)) => &[425],
        Err(TransferError::ConnectionLost(_) | TransferError::Aborted) => &[426],
        Err(TransferError::Storage(StorageError::NoSpace)) => &[452],
        Err(TransferError::Storage(_)) if t.started => &[451],
        Err(TransferError::Storage(_)) => &[550, 552, 553],
        Err(TransferError::Tls(_)) => &[522],
        Err(TransferError::NotPlaced(StorageError::NoSpace)) => &[452],
        Err(TransferError::NotPlaced(_)) => &[451],
        Err(TransferError::Busy(_)) => &[450],
        Err(TransferError::Codec(CodecError::Truncated(_))) => &[426],
        Err(TransferError::Codec(_)) => &[451],
    }
}
