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
use crate::policy::{Cidr, IpFilter};
use crate::session::{Output, Session};
use crate::testkit::check_reply;
use crate::time::UnixTime;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod input;
mod model;

use input::*;
use model::*;

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
}
