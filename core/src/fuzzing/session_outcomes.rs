//! The `session_outcomes` fuzz target: a [`Session`] driven by a runtime whose every answer is
//! the fuzzer's choice, checked against the contract of the crate documentation (*The
//! contract a driver follows*).
//!
//! Unlike [`super::session_bytes`], where the test kit answers each action the one way its
//! in-memory world dictates, here the input interleaves client lines with the runtime's side:
//! which outcome each action gets (success, or each error kind; for a transfer
//! `TransferStarted`, any number of `TransferProgress` and `TransferMark`, then
//! `TransferEnded` with any result and byte count; for a checksum `Checksummed`), when it
//! comes relative to the client's input and the clock, ABOR at any point, outcomes that come
//! late (for an action already answered, a transfer already ended or aborted, a session
//! already closed), the clock moved by any amount, and the control connection dropped. The
//! runtime only ever does what the contract allows it; the session must keep its side.
//!
//! What is checked, after every call:
//! - every reply is well-formed ([`check_reply`]), and nothing follows `Close`; an open
//!   session holds at most `max_buffered_input` bytes of input;
//! - every command line gets exactly one final reply, in order, with a `1xx` only for a
//!   transfer (`150` once its start is reported, `110` for each restart marker); while a
//!   transfer runs only `STAT` and `NOOP` right behind its command are answered, so a
//!   transfer command's own final reply comes exactly once, when its end is reported, with
//!   the code its result calls for;
//!   `421` always closes, and `221` (QUIT) too; a command the parser refuses gets the
//!   parser's code; when nothing is outstanding no command is left unanswered;
//! - at most one outcome-bearing action is outstanding, so at most one transfer runs at a
//!   time; action ids only increase; a transfer command's plan matches the command, and its
//!   [`DataFormat`] is what TYPE, STRU, MODE, OPTS MODE Z and SITE CODEPAGE last set (reset
//!   by REIN and by USER after a login); restart markers are asked for in MODE B and C only;
//!   no active data connection to a third party or a privileged port unless the
//!   configuration allows it, no passive transfer without a listener;
//! - `AbortTransfer` names the running transfer, once; the end of an upload or a download
//!   brings one event of its outcome (complete or failed), after its final reply;
//! - an outcome the session is not waiting for (an id answered before, an action that has
//!   no outcome, a transfer that ended) changes nothing and produces nothing;
//! - `poll_timeout` is `None` while an action is outstanding or a transfer runs, and after
//!   `handle_timeout(now)` nothing due at `now` is left;
//! - the runtime counts a login for each `Authenticated(Ok)` and releases it on
//!   `LoginEnded`: never more than one, never released twice, and counted exactly while
//!   [`Session::account`] is `Some`;
//! - after the input, once every outstanding action has been answered, the session closes
//!   if QUIT was sent, and in any case once the clock has moved two hours; after
//!   `handle_disconnect` nothing is written.
//!
//! # Input
//! Three setup bytes (`Setup`: the configuration), then operations, each a letter whose value modulo 8 selects
//! it (so `a` to `h` read naturally in a seed, and any byte is some operation) followed by
//! its arguments. Once the input is used up every argument reads as zero, which always means
//! the plain success.
//!
//! | op | does |
//! | --- | --- |
//! | `a` | answer the outstanding action (not a transfer) with the outcome the next bytes choose |
//! | `b` | one step of the running transfer or checksum: start, progress, marker, end |
//! | `c` | send the bytes up to and including the next LF (with anything queued by `d`) |
//! | `d` | queue the bytes up to and including the next LF, to go with the next send |
//! | `e` | send `ABOR` after a Telnet Synch (IAC IP IAC DM), as BSD clients do |
//! | `f` | a late outcome: the next bytes choose an id the session is not waiting on |
//! | `g` | the control connection drops (a running transfer is ended first) |
//! | `h` | move the clock (milliseconds to hours), firing what is due |

use crate::action::{
    Account, ActionId, ActionKind, AdminInfo, AdminQuery, ChecksumValue, DataEndpoint, EventKind,
    LoginCounts, LoginError, Lost, Outcome, OutcomeKind, ServerStats, SessionReuse, SessionSummary,
    StorageError, StoreMode, TlsInfo, TransferError, TransferKind, UserSummary,
};
use crate::codec::{CodePage, CodecError, DataFormat, Mode, Representation, Structure};
use crate::command::{self, Command, ModeCode, TypeCode};
use crate::config::{Config, TlsPolicy};
use crate::framing::LineFramer;
use crate::listing::{FileInfo, FileKind};
use crate::path::VirtualPath;
use crate::policy::IpFilter;
use crate::session::{Output, Session};
use crate::testkit::check_reply;
use crate::time::UnixTime;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Outputs one call may produce before the session counts as stuck.
const MAX_OUTPUTS: usize = 10_000;
/// Operations read from one input (libFuzzer's inputs are a few KiB; this bounds a run).
const MAX_OPS: usize = 4_096;

/// See the [module documentation](self).
pub fn session_outcomes(base: Instant, data: &[u8]) {
    let mut src = Source { data };
    let setup = Setup::read(&mut src);
    let mut d = Driver::new(base, setup);
    let mut ops = 0;
    while !src.is_empty() && ops < MAX_OPS && !d.closed {
        ops += 1;
        match src.byte() % 8 {
            1 => d.answer_pending(&mut src),
            2 => d.transfer_step(&mut src),
            3 => {
                let line = src.line();
                d.unsent.extend_from_slice(line);
                d.send();
            }
            4 => {
                let line = src.line();
                d.unsent.extend_from_slice(line);
            }
            5 => {
                d.unsent.extend_from_slice(b"\xff\xf4\xff\xf2ABOR\r\n");
                d.send();
            }
            6 => d.late_outcome(&mut src),
            7 => {
                d.disconnect();
                break;
            }
            _ => d.advance(&mut src),
        }
    }
    d.settle();
}

/// The fuzz input, read front to back; zeros once it is used up.
struct Source<'a> {
    data: &'a [u8],
}

impl<'a> Source<'a> {
    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// A choice among `n` (`n > 0`); 0 once the input is used up.
    fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n
    }

    fn pick<T: Clone>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())].clone()
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// A count of bytes, offsets or sizes: small ones, and the edges.
    fn amount(&mut self) -> u64 {
        match self.byte() % 8 {
            0 => 0,
            1 => u64::from(self.byte()),
            2 => u64::from(self.u16()),
            3 => 1 << 20,
            4 => 4 << 30,
            5 => u64::MAX,
            6 => u64::MAX / 2,
            _ => u64::from(self.u16()) << 16,
        }
    }

    /// The bytes up to and including the next LF (or to the end of the input).
    fn line(&mut self) -> &'a [u8] {
        let end = self
            .data
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.data.len(), |i| i + 1);
        let (line, rest) = self.data.split_at(end);
        self.data = rest;
        line
    }
}

/// The server's configuration and the session's start, from three bytes.
#[derive(Clone, Copy, Debug)]
struct Setup {
    /// Byte 0: bit 0 TLS available; 1 implicit TLS; 2 accounts must protect the control
    /// connection; 3 and the data connections; 4 CCC allowed; 5 no delay after a failed
    /// login; 6 IPv6 addresses; 7 third-party and privileged data ports allowed.
    a: u8,
    /// Byte 1: bit 0 no restart markers; 1 small limits (32-byte lines, 256 bytes buffered);
    /// 2 one login at most (overall, anonymous, per address); 3 an advertised passive
    /// address; 4 the server's IP filter refuses the client; 5 one failed login closes;
    /// 6 SITE CHMOD off; 7 TLS data connections need not resume a session.
    b: u8,
    /// Byte 2: bit 0 an implicit-TLS handshake reports a client certificate for alice;
    /// bits 1–2 the idle timeout (300 s, 1 s, 30 s, 3600 s); bit 3 a login timeout of 5 s.
    c: u8,
}

impl Setup {
    fn read(src: &mut Source<'_>) -> Setup {
        Setup {
            a: src.byte(),
            b: src.byte(),
            c: src.byte(),
        }
    }

    fn bit(byte: u8, n: u8) -> bool {
        byte & (1 << n) != 0
    }

    fn implicit_tls(self) -> bool {
        Setup::bit(self.a, 1)
    }

    fn config(self) -> Config {
        let (a, b, c) = (self.a, self.b, self.c);
        let bit = Setup::bit;
        let mut config = Config::default();
        config.tls_available = bit(a, 0) || bit(a, 1);
        if bit(a, 2) {
            config.tls_control = TlsPolicy::Accounts;
        }
        if bit(a, 3) {
            config.tls_data = TlsPolicy::Accounts;
        }
        config.allow_ccc = bit(a, 4);
        if bit(a, 5) {
            config.login_failure_delay = Duration::ZERO;
        }
        config.allow_foreign_data_address = bit(a, 7);
        config.allow_privileged_data_port = bit(a, 7);
        if bit(b, 0) {
            config.restart_marker_interval = 0;
        }
        if bit(b, 1) {
            config.max_line_len = 32;
            config.max_buffered_input = 256;
        }
        if bit(b, 2) {
            config.max_logins = 1;
            config.max_anonymous_logins = 1;
            config.max_logins_per_ip = 1;
        }
        if bit(b, 3) {
            config.passive_address = Some(if bit(a, 6) {
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))
            } else {
                IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))
            });
        }
        if bit(b, 4) {
            config.ip_filter =
                IpFilter::parse([], ["127.0.0.0/8", "::1/128"]).expect("valid CIDRs");
        }
        if bit(b, 5) {
            config.max_login_failures = 1;
        }
        config.site_chmod = !bit(b, 6);
        if bit(b, 7) {
            config.tls_session_reuse = SessionReuse::NotRequired;
        }
        config.idle_timeout = Duration::from_secs([300, 1, 30, 3600][usize::from(c >> 1 & 3)]);
        if bit(c, 3) {
            config.login_timeout = Duration::from_secs(5);
        }
        config
    }

    fn addresses(self) -> (SocketAddr, SocketAddr) {
        let ip = if Setup::bit(self.a, 6) {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        } else {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        };
        (SocketAddr::new(ip, 40_000), SocketAddr::new(ip, 2121))
    }
}

/// What a command line is, as far as the checks care (from the same parser the session uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
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
    fn of(line: &[u8]) -> Kind {
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
fn deflate_level(arg: &str) -> Option<u8> {
    let mut words = arg.split_ascii_whitespace();
    let mode = words.next()?.eq_ignore_ascii_case("MODE");
    let z = words.next()?.eq_ignore_ascii_case("Z");
    let level = words.next()?.eq_ignore_ascii_case("LEVEL");
    let n = words.next()?.parse::<u8>().ok().filter(|&n| n <= 9)?;
    (mode && z && level && words.next().is_none()).then_some(n)
}

/// The code page of `SITE CODEPAGE <page>`: its digits, without leading zeros, name it.
fn code_page(arg: &str) -> Option<CodePage> {
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
struct Sent {
    kind: Kind,
    /// The transfer (or checksum) it started, once the session asked for one.
    transfer: Option<ActionId>,
}

/// What TYPE, STRU, MODE, OPTS MODE Z and SITE CODEPAGE have set, as the replies said.
#[derive(Clone, Copy, Debug, Default)]
struct Formats {
    format: DataFormat,
    code_page: CodePage,
    level: Option<u8>,
    logged_in: bool,
}

impl Formats {
    fn level(&self) -> u8 {
        self.level.unwrap_or(Mode::DEFAULT_DEFLATE_LEVEL)
    }

    fn reset(&mut self) {
        *self = Formats::default();
    }

    /// The final reply `code` answered a command of `kind`.
    fn answered(&mut self, kind: Kind, code: u16) {
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

/// An action the session waits on (not a transfer), and what its outcome must be.
#[derive(Debug)]
enum Ask {
    Login { user: String },
    Stat,
    ReadDir,
    Done,
    Size,
    Listen,
    Tls,
    Admin(AdminQuery),
}

/// The transfer or checksum the runtime runs.
#[derive(Debug)]
struct Running {
    id: ActionId,
    direction: Direction,
    checksum: bool,
    upload: bool,
    /// An upload in MODE B or C: the client's restart markers may come.
    marks: bool,
    /// For STOU: the name the runtime picks.
    unique: Option<VirtualPath>,
    started: bool,
    abort_asked: bool,
}

/// Which way a transfer goes, for the event its end brings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Download,
    Upload,
    Listing,
    Checksum,
}

/// What the call before a drain was, for what its outputs may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fed {
    Greeting,
    Input,
    Answer,
    Started,
    Progress,
    Mark,
    /// The end of a transfer or checksum: its id, the final codes its result allows, and the
    /// event it brings (after that reply).
    Ended(ActionId, &'static [u16], Option<EventKind>),
    Timeout,
    /// An outcome the session is not waiting on: nothing may come out.
    Late,
    Disconnect,
}

/// The fake runtime and the model of what the session owes the client.
struct Driver {
    session: Session,
    config: Arc<Config>,
    peer: SocketAddr,
    now: Instant,
    /// The bytes of the client's lines, framed as the session frames them.
    mirror: LineFramer,
    /// Bytes queued to go with the next send.
    unsent: Vec<u8>,
    expect: VecDeque<Sent>,
    formats: Formats,
    pending: Option<(ActionId, Ask)>,
    transfer: Option<Running>,
    listener: bool,
    logins: u32,
    next_id: u64,
    closed: bool,
    /// In the drain after the end of a transfer: its final reply has come.
    transfer_final: bool,
    /// ... and its event.
    transfer_event: bool,
    /// `WHARF_FUZZ_TRACE` is set: every call and output goes to stderr (to read a crash).
    trace: bool,
    /// A QUIT line was sent (and not dropped by AUTH or a close).
    quit_sent: bool,
}

impl Driver {
    fn new(base: Instant, setup: Setup) -> Driver {
        let config = Arc::new(setup.config());
        let (peer, local) = setup.addresses();
        let session = if setup.implicit_tls() {
            let identity = Setup::bit(setup.c, 0).then(|| "alice".to_owned());
            let info = TlsInfo::new(identity);
            Session::new_implicit_tls(Arc::clone(&config), peer, local, base, info)
        } else {
            Session::new(Arc::clone(&config), peer, local, base)
        };
        let mut d = Driver {
            session,
            mirror: LineFramer::new(config.max_line_len),
            config,
            peer,
            now: base,
            unsent: Vec::new(),
            expect: VecDeque::new(),
            formats: Formats::default(),
            pending: None,
            transfer: None,
            listener: false,
            logins: 0,
            next_id: 0,
            closed: false,
            transfer_final: false,
            transfer_event: false,
            trace: std::env::var_os("WHARF_FUZZ_TRACE").is_some(),
            quit_sent: false,
        };
        d.drain(Fed::Greeting);
        d
    }

    // ----- the client's side ------------------------------------------------------------

    /// Sends the queued bytes as one read of the control connection.
    fn send(&mut self) {
        if self.closed || self.unsent.is_empty() {
            return;
        }
        // Rule 3: nothing read before the TLS handshake ends is fed to the session.
        if matches!(self.pending, Some((_, Ask::Tls))) {
            return;
        }
        let bytes = std::mem::take(&mut self.unsent);
        self.mirror.push(&bytes);
        let mut line = Vec::new();
        while let Some(whole) = self.mirror.next_into(&mut line) {
            let kind = if whole {
                Kind::of(&line)
            } else {
                Kind::TooLong
            };
            self.quit_sent |= kind == Kind::Quit;
            self.expect.push_back(Sent {
                kind,
                transfer: None,
            });
        }
        if self.trace {
            eprintln!("C: {:?}", String::from_utf8_lossy(&bytes));
        }
        self.session.handle_input(self.now, &bytes);
        self.drain(Fed::Input);
        let (held, max) = (
            self.session.buffered_input(),
            self.config.max_buffered_input,
        );
        assert!(
            self.closed || held <= max,
            "an open session holds {held} bytes of input, more than {max}"
        );
    }

    // ----- the runtime's side -----------------------------------------------------------

    fn feed(&mut self, id: ActionId, kind: OutcomeKind, fed: Fed) {
        if self.trace {
            eprintln!("<- {id:?} {kind:?}");
        }
        self.session
            .handle_outcome(self.now, Outcome::new(id, kind));
        self.drain(fed);
    }

    fn answer_pending(&mut self, src: &mut Source<'_>) {
        let Some((id, ask)) = self.pending.take() else {
            return;
        };
        let outcome = match ask {
            Ask::Login { user } => {
                let r = login_result(src, &user);
                if r.is_ok() {
                    // The runtime counts the login as it accepts it.
                    assert_eq!(self.logins, 0, "a second login counted while one is held");
                    self.logins += 1;
                }
                OutcomeKind::Authenticated(r)
            }
            Ask::Stat => OutcomeKind::Metadata(match src.below(8) {
                7 => Err(storage_error(src)),
                _ => Ok(file_info(src)),
            }),
            Ask::ReadDir => OutcomeKind::Entries {
                result: match src.below(8) {
                    7 => Err(storage_error(src)),
                    _ => Ok((0..src.below(5)).map(|_| file_info(src)).collect()),
                },
                now: unix_time(src),
            },
            Ask::Done => OutcomeKind::Done(match src.below(4) {
                3 => Err(storage_error(src)),
                _ => Ok(()),
            }),
            Ask::Size => OutcomeKind::Size(match src.below(4) {
                3 => Err(storage_error(src)),
                _ => Ok(src.amount()),
            }),
            Ask::Listen => OutcomeKind::PassiveListening(match src.below(8) {
                7 => Err("no port free".to_owned()),
                _ => {
                    self.listener = true;
                    Ok(src.u16())
                }
            }),
            Ask::Tls => OutcomeKind::TlsEstablished(match src.below(8) {
                6 => Ok(TlsInfo::new(Some(src.pick(&USERS).to_owned()))),
                7 => Err("handshake failed".to_owned()),
                _ => Ok(TlsInfo::new(None)),
            }),
            Ask::Admin(q) => OutcomeKind::AdminInfo(match src.below(8) {
                7 => Err("the statistics are not available".to_owned()),
                _ => Ok(admin_info(src, &q, self.peer)),
            }),
        };
        self.feed(id, outcome, Fed::Answer);
    }

    /// One step of the running transfer or checksum, in the order the contract allows.
    fn transfer_step(&mut self, src: &mut Source<'_>) {
        let Some(t) = &mut self.transfer else {
            return;
        };
        let id = t.id;
        if t.checksum {
            if src.below(4) == 3 {
                let bytes = src.amount();
                self.feed(id, OutcomeKind::TransferProgress { bytes }, Fed::Progress);
            } else {
                self.end_transfer(src);
            }
            return;
        }
        match (t.started, src.below(8)) {
            (false, 0..=5) => {
                t.started = true;
                let stored_as = t.unique.clone();
                self.feed(id, OutcomeKind::TransferStarted { stored_as }, Fed::Started);
            }
            (true, 0..=1) => {
                let bytes = src.amount();
                self.feed(id, OutcomeKind::TransferProgress { bytes }, Fed::Progress);
            }
            (true, 2) if t.marks => {
                let sender = marker_text(src);
                let offset = src.amount();
                let mark = OutcomeKind::TransferMark { sender, offset };
                self.feed(id, mark, Fed::Mark);
            }
            _ => self.end_transfer(src),
        }
    }

    /// Reports the end of the running transfer or checksum with a result the next bytes
    /// choose (success first).
    fn end_transfer(&mut self, src: &mut Source<'_>) {
        let Some(t) = self.transfer.take() else {
            return;
        };
        let result = match src.below(4) {
            0 if t.started => Ok(()),
            _ => Err(transfer_error(src, &t)),
        };
        self.report_end(t, result, src);
    }

    fn report_end(&mut self, t: Running, result: Result<(), TransferError>, src: &mut Source) {
        let codes = final_codes(&t, &result);
        let event = match (t.direction, result.is_ok()) {
            (Direction::Download, true) => Some(EventKind::DownloadComplete),
            (Direction::Download, false) => Some(EventKind::DownloadFailed),
            (Direction::Upload, true) => Some(EventKind::UploadComplete),
            (Direction::Upload, false) => Some(EventKind::UploadFailed),
            (Direction::Listing | Direction::Checksum, _) => None,
        };
        let kind = if t.checksum {
            OutcomeKind::Checksummed(result.map(|()| ChecksumValue {
                hex: "0123456789abcdef".to_owned(),
                start: src.amount(),
                end: src.amount(),
            }))
        } else {
            OutcomeKind::TransferEnded {
                bytes: src.amount(),
                result,
            }
        };
        self.feed(t.id, kind, Fed::Ended(t.id, codes, event));
    }

    /// An outcome for an id the session is not waiting on: ignored, with nothing to show.
    fn late_outcome(&mut self, src: &mut Source<'_>) {
        if self.next_id == 0 {
            return;
        }
        let id = ActionId(u64::from(src.u16()) % self.next_id);
        let waiting = self.pending.as_ref().is_some_and(|(p, _)| *p == id)
            || self.transfer.as_ref().is_some_and(|t| t.id == id);
        if waiting {
            return;
        }
        let kind = any_outcome(src);
        let before = self.session.poll_timeout();
        let held = self.session.buffered_input();
        self.feed(id, kind, Fed::Late);
        assert_eq!(
            (self.session.poll_timeout(), self.session.buffered_input()),
            (before, held),
            "a late outcome for {id:?} changed the session"
        );
    }

    /// The control connection goes: a running transfer is stopped and its end reported
    /// first (rule 4), then the session is told.
    fn disconnect(&mut self) {
        if self.closed {
            return;
        }
        if let Some(t) = self.transfer.take() {
            let lost = Err(TransferError::ConnectionLost(Lost::ControlClosed));
            self.report_end(t, lost, &mut Source { data: &[] });
        }
        if self.closed {
            return;
        }
        if self.trace {
            eprintln!("disconnect");
        }
        self.session.handle_disconnect(self.now);
        self.closed = true;
        self.drain(Fed::Disconnect);
    }

    /// Moves the clock by an amount the next bytes choose, firing what falls due.
    fn advance(&mut self, src: &mut Source<'_>) {
        let n = u64::from(src.u16());
        let by = match src.below(4) {
            0 => Duration::from_millis(n),
            1 => Duration::from_secs(n % 1024),
            2 => Duration::from_secs(n),
            _ => Duration::from_secs(n * 16),
        };
        self.advance_by(by);
    }

    fn advance_by(&mut self, by: Duration) {
        if self.trace {
            eprintln!("clock +{by:?}");
        }
        self.now += by;
        for _ in 0..16 {
            match self.session.poll_timeout() {
                Some(t) if t <= self.now && !self.closed => {
                    self.session.handle_timeout(self.now);
                    self.drain(Fed::Timeout);
                    if let Some(next) = self.session.poll_timeout() {
                        assert!(
                            next > self.now,
                            "handle_timeout(now) left a timeout due at or before now"
                        );
                    }
                }
                _ => return,
            }
        }
        panic!("the timeouts kept falling due");
    }

    /// After the input: every outstanding action answered with success, the queued lines
    /// sent, then the checks of a session left alone.
    fn settle(&mut self) {
        let mut zeros = Source { data: &[] };
        let mut waited = false;
        // Each command waiting needs a few actions (metadata, the change, a transfer's steps).
        let queued = self.unsent.iter().filter(|&&b| b == b'\n').count();
        let budget = 64 + 8 * (self.expect.len() + queued);
        for _ in 0..budget {
            if self.closed {
                break;
            }
            if self.pending.is_some() {
                self.answer_pending(&mut zeros);
            } else if let Some(t) = &self.transfer {
                if t.started || t.checksum {
                    self.end_transfer(&mut zeros);
                } else {
                    self.transfer_step(&mut zeros);
                }
            } else if !self.unsent.is_empty() {
                self.send();
            } else if !self.expect.is_empty() && !waited {
                // The one wait allowed: a failed login's delay holds the commands after it.
                waited = true;
                self.advance_by(self.config.login_failure_delay);
            } else {
                break;
            }
        }
        if !self.closed {
            assert!(
                self.pending.is_none() && self.transfer.is_none(),
                "the session kept asking for actions"
            );
            assert!(
                self.expect.is_empty(),
                "nothing is outstanding and these commands got no reply: {:?}",
                self.expect
            );
            assert!(!self.quit_sent, "QUIT was answered and the session is open");
            self.advance_by(Duration::from_secs(7200));
            assert!(self.closed, "two hours without input left the session open");
        }
        assert_eq!(
            self.logins, 0,
            "the session has ended and the runtime still counts its login"
        );
        // A closed session ignores whatever still comes.
        let mut src = Source {
            data: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        };
        for id in 0..self.next_id.min(64) {
            let kind = any_outcome(&mut src);
            self.feed(ActionId(id), kind, Fed::Late);
        }
        self.session
            .handle_timeout(self.now + Duration::from_secs(1 << 20));
        self.drain(Fed::Late);
        assert_eq!(
            self.session.poll_timeout(),
            None,
            "a closed session has a timeout"
        );
    }

    // ----- the session's outputs -----------------------------------------------------------

    /// Drains the session after a call, checking each output against the model.
    fn drain(&mut self, fed: Fed) {
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
    fn final_reply(&mut self, code: u16, fed: Fed) -> Kind {
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
    fn action(&mut self, id: ActionId, kind: ActionKind, fed: Fed) {
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
            ActionKind::ListenPassive { ip: _, peer } => {
                if !self.config.allow_foreign_data_address {
                    let client = crate::addr::canonical_ip(self.peer.ip());
                    assert_eq!(peer, Some(client), "a passive listener open to anyone");
                }
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
    fn no_action_outstanding(&self, id: ActionId) {
        if let Some((p, ask)) = &self.pending {
            panic!("{id:?} asked for while {p:?} ({ask:?}) is outstanding");
        }
        if let Some(t) = &self.transfer {
            panic!("{id:?} asked for while transfer {:?} runs", t.id);
        }
    }

    /// PORT, EPRT and LPRT: the client's own address and an unprivileged port, unless the
    /// configuration allows otherwise (the bounce attack).
    fn check_active(&self, to: SocketAddr) {
        let client = crate::addr::canonical_ip(self.peer.ip());
        if !self.config.allow_foreign_data_address {
            assert_eq!(
                crate::addr::canonical_ip(to.ip()),
                client,
                "an active data connection to a third party"
            );
        }
        if !self.config.allow_privileged_data_port {
            assert!(to.port() >= 1024, "an active data connection to port {to}");
        }
    }
}

/// The final codes the end of a transfer allows, from the documentation of
/// [`TransferError`] (and 226, or for a checksum 213/250, when it succeeded).
fn final_codes(t: &Running, result: &Result<(), TransferError>) -> &'static [u16] {
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

/// Names a login or a client certificate may carry.
const USERS: [&str; 5] = ["alice", "bob", "anonymous", "partner/carol", "ALICE"];

/// The user store's answer: an account with settings the next bytes choose, or a refusal.
fn login_result(src: &mut Source<'_>, user: &str) -> Result<Account, LoginError> {
    match src.below(8) {
        6 => return Err(LoginError::Invalid),
        7 => return Err(LoginError::Unavailable("the user store is down".to_owned())),
        _ => {}
    }
    let anonymous = user.eq_ignore_ascii_case("anonymous") || user.eq_ignore_ascii_case("ftp");
    let mut a = if anonymous {
        Account::anonymous()
    } else {
        Account::new(user)
    };
    let b = src.byte();
    a.write = !anonymous && b & 1 == 0;
    a.admin = b & 2 != 0;
    if b & 4 != 0 {
        a.idle_timeout = Some(Duration::from_secs(1 + u64::from(src.byte()) * 8));
    }
    if b & 8 != 0 {
        a.upload_rate = Some(1000);
        a.download_rate = Some(src.amount());
    }
    if b & 16 != 0 {
        a.max_logins = Some(u32::from(src.byte() % 3));
        a.max_logins_per_ip = Some(u32::from(src.byte() % 3));
    }
    if b & 32 != 0 {
        let deny = ["127.0.0.0/8", "::1/128"];
        a.ip_filter = IpFilter::parse([], deny).expect("valid CIDRs");
    }
    if b & 64 != 0 {
        a.partner_ip_filter = IpFilter::parse(["10.0.0.0/8"], []).expect("valid CIDRs");
    }
    if b & 128 != 0 {
        a.fixed_folders = vec![
            VirtualPath::root().join("Inbox"),
            VirtualPath::root().join("Outbox"),
        ];
        a.file_mode = 0o444;
        a.dir_mode = 0o700;
    }
    let n = 1 + u32::from(src.byte() % 3);
    a.sessions = LoginCounts {
        total: n,
        anonymous: if anonymous { n } else { 0 },
        from_ip: n,
        user: n,
        user_from_ip: n,
    };
    Ok(a)
}

fn storage_error(src: &mut Source<'_>) -> StorageError {
    match src.below(9) {
        0 => StorageError::NotFound,
        1 => StorageError::PermissionDenied,
        2 => StorageError::AlreadyExists,
        3 => StorageError::NotADirectory,
        4 => StorageError::IsADirectory,
        5 => StorageError::DirectoryNotEmpty,
        6 => StorageError::NoSpace,
        7 => StorageError::InvalidName,
        _ => StorageError::Other("input/output error\r\n500 injected".to_owned()),
    }
}

/// A wall-clock time a file system may hold: ordinary ones, and the ends of the range.
fn unix_time(src: &mut Source<'_>) -> UnixTime {
    UnixTime(match src.below(8) {
        0 => 1_772_366_400, // 2026-03-01 12:00:00
        1 => 1_772_366_400 - i64::from(src.u16()) * 3600,
        2 => 0,
        3 => -1,
        4 => 253_402_300_800, // 10000-01-01
        5 => i64::MAX,
        6 => i64::MIN,
        _ => 1_772_366_400 + i64::from(src.u16()) * 86_400,
    })
}

/// Metadata as a storage may report it; the names include what a file system allows and a
/// client might not expect.
fn file_info(src: &mut Source<'_>) -> FileInfo {
    const NAMES: [&str; 10] = [
        "a.txt",
        "dir",
        "b b",
        "x\r\ny",
        "ünïcödé",
        "Inbox",
        "*",
        "-rw",
        "%s%n",
        "",
    ];
    let kind = match src.below(8) {
        0..=3 => FileKind::File,
        4..=5 => FileKind::Dir,
        6 => FileKind::Symlink,
        _ => FileKind::Other,
    };
    let mut info = FileInfo::new(src.pick(&NAMES), kind);
    info.size = src.amount();
    info.modified = unix_time(src);
    info.mode = src.pick(&[0o644, 0o755, 0o000, 0o777, 0o444, 0o1777, 0o600, 0o7777]);
    info.owner = src.pick(&["alice", "ftp", "bob", "", "carol"]).to_owned();
    info.group = src.pick(&["alice", "ftp", "partner", ""]).to_owned();
    info.nlink = src.amount();
    info.unique = (src.byte() & 1 == 0).then(|| (src.amount(), src.amount()));
    info
}

fn admin_info(src: &mut Source<'_>, q: &AdminQuery, peer: SocketAddr) -> AdminInfo {
    match q {
        AdminQuery::Who => AdminInfo::Who(
            (0..src.below(4))
                .map(|_| {
                    let user = src.pick(&USERS).to_owned();
                    SessionSummary::new(user, peer, unix_time(src), unix_time(src))
                })
                .collect(),
        ),
        AdminQuery::Stat => AdminInfo::Stat(ServerStats {
            start_time: unix_time(src),
            uploads: src.amount(),
            bytes_up: src.amount(),
            logins_current: src.amount(),
            ..ServerStats::default()
        }),
        AdminQuery::DescribeUser(name) => {
            AdminInfo::User((src.byte() & 1 == 0).then(|| UserSummary {
                name: name.clone(),
                partner: Some("partner".to_owned()),
                home: "/srv/ftp/x\ny".to_owned(),
                idle_time: Some(src.amount()),
                upload_rate: Some(src.amount()),
                max_logins: Some(u32::from(src.byte())),
                allowed_ips: vec!["10.0.0.0/8".to_owned()],
                ..UserSummary::default()
            }))
        }
    }
}

/// A client's restart-marker text, as the decoder passes it on: 1 to 64 printable ASCII
/// characters, no spaces.
fn marker_text(src: &mut Source<'_>) -> String {
    let len = 1 + src.below(64);
    (0..len)
        .map(|_| char::from(0x21 + src.byte() % 94))
        .collect()
}

/// Why a transfer did not complete: every kind the contract lets the runtime report for it
/// (`Aborted` only once asked to abort, `NotPlaced` only for an upload, `Busy` only for a
/// checksum, nothing that needs all of an upload before it started).
fn transfer_error(src: &mut Source<'_>, t: &Running) -> TransferError {
    match src.below(12) {
        0 if t.abort_asked => TransferError::Aborted,
        0 | 1 => TransferError::ConnectionLost(match src.below(3) {
            0 => Lost::Broken("connection reset by peer".to_owned()),
            1 => Lost::Stalled(Duration::from_secs(src.amount() % 100_000)),
            _ => Lost::NoCloseNotify,
        }),
        2 => TransferError::DataConnection("accept timed out".to_owned()),
        3 | 4 => TransferError::Storage(storage_error(src)),
        5 => TransferError::Tls("the data connection did not resume the session".to_owned()),
        6 if t.upload && t.started => TransferError::NotPlaced(storage_error(src)),
        7 if t.checksum => TransferError::Busy("450 too many checksums at once".to_owned()),
        8 => TransferError::Codec(CodecError::Malformed("bad block header".to_owned())),
        9 => TransferError::Codec(CodecError::Truncated("no EOF block".to_owned())),
        10 => TransferError::Codec(CodecError::Unmappable {
            offset: src.amount(),
            what: "U+20AC has no EBCDIC code".to_owned(),
        }),
        11 => TransferError::Codec(CodecError::TooLarge("more than 256 pages".to_owned())),
        _ => TransferError::ConnectionLost(Lost::Broken("closed early".to_owned())),
    }
}

/// An outcome of any kind, for an action that is not waiting for it.
fn any_outcome(src: &mut Source<'_>) -> OutcomeKind {
    match src.below(12) {
        0 => OutcomeKind::TransferEnded {
            bytes: src.amount(),
            result: Ok(()),
        },
        1 => OutcomeKind::TransferEnded {
            bytes: 0,
            result: Err(TransferError::Aborted),
        },
        2 => OutcomeKind::TransferProgress {
            bytes: src.amount(),
        },
        3 => OutcomeKind::TransferStarted { stored_as: None },
        4 => OutcomeKind::TransferMark {
            sender: marker_text(src),
            offset: src.amount(),
        },
        5 => OutcomeKind::Checksummed(Err(TransferError::Aborted)),
        6 => OutcomeKind::Authenticated(Ok(Account::new("alice"))),
        7 => OutcomeKind::Done(Ok(())),
        8 => OutcomeKind::Metadata(Ok(file_info(src))),
        9 => OutcomeKind::PassiveListening(Ok(src.u16())),
        10 => OutcomeKind::TlsEstablished(Err("late".to_owned())),
        _ => OutcomeKind::Size(Ok(src.amount())),
    }
}
