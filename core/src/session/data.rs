//! Data connections: PASV/EPSV/LPSV and PORT/EPRT/LPRT (with the bounce and theft checks),
//! and the life of a transfer from the transfer command to its final reply and events.

use super::requests::{ChecksumRequest, Direction};
use super::{Login, Pending, Session};
use crate::action::{
    ActionId, ActionKind, DataEndpoint, DataProtection, EventKind, OutcomeKind, StorageError,
    StoreMode, TransferError, TransferKind, TransferPlan,
};
use crate::addr;
use crate::codec::{self, CodecError, DataFormat, Mode};
use crate::command::EpsvArg;
use crate::path::VirtualPath;
use crate::policy::Cidr;
use core::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::time::Instant;

/// TYPE I, STRU F, MODE S: the bytes as they are.
const IDENTITY: DataFormat = DataFormat {
    representation: codec::Representation::Image,
    structure: codec::Structure::File,
    mode: Mode::Stream,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DataSetup {
    None,
    Passive,
    Active(SocketAddr),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PassiveKind {
    Pasv,
    Epsv,
    Lpsv,
}

#[derive(Debug)]
pub(super) struct Transfer {
    pub(super) id: ActionId,
    /// What STAT says is moving, e.g. `RETR /a.txt`.
    pub(super) what: String,
    /// Expected size, for the 150 reply.
    size: Option<u64>,
    pub(super) started: bool,
    started_at: Option<Instant>,
    pub(super) bytes: u64,
    pub(super) abort_requested: bool,
    direction: Direction,
    /// The file (for uploads under STOU, the name the runtime chose).
    path: Option<VirtualPath>,
    /// The transfer's type, structure and mode.
    format: DataFormat,
    /// For a checksum, what was asked.
    checksum: Option<Box<ChecksumRequest>>,
}

impl Session {
    fn data_refused_after_epsv_all(&mut self) -> bool {
        if self.epsv_all {
            self.reply(
                503,
                "EPSV ALL is in effect: only EPSV may set up data connections.",
            );
        }
        self.epsv_all
    }

    /// Forgets the PASV/PORT setup (closing the passive listener, if any).
    pub(super) fn drop_data_setup(&mut self) {
        if self.data == DataSetup::Passive {
            self.action(ActionKind::ClosePassive);
        }
        self.data = DataSetup::None;
    }

    pub(super) fn cmd_passive(&mut self, kind: PassiveKind) {
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

    pub(super) fn cmd_epsv(&mut self, arg: EpsvArg) {
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
        let peer = addr::canonical_ip(self.peer.ip());
        let fxp_peers = self.fxp_peers().to_vec();
        self.data = DataSetup::None;
        self.wait(
            ActionKind::ListenPassive {
                ip,
                peer,
                fxp_peers,
            },
            Pending::Passive(kind),
        );
    }

    /// The servers this session may use in a third-party (FXP) transfer: the account's
    /// list, else the server's (RFC 438's idea: the other end of a data connection is the
    /// client, or a server the policy names).
    fn fxp_peers(&self) -> &[Cidr] {
        match &self.login {
            Login::In(a) => a.fxp_peers.as_deref().unwrap_or(&self.config.fxp_peers),
            _ => &[],
        }
    }

    fn advertised_v4(&self) -> Option<core::net::Ipv4Addr> {
        let ip = self
            .config
            .passive_address
            .unwrap_or_else(|| addr::canonical_ip(self.local.ip()));
        match addr::canonical_ip(ip) {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        }
    }

    pub(super) fn passive_outcome(&mut self, kind: PassiveKind, result: Result<u16, String>) {
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
                    .unwrap_or(core::net::Ipv4Addr::UNSPECIFIED);
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

    pub(super) fn cmd_active(&mut self, target: SocketAddr, verb: &str) {
        if self.data_refused_after_epsv_all() {
            return;
        }
        let ip = addr::canonical_ip(target.ip());
        let peer = addr::canonical_ip(self.peer.ip());
        let listed = self.fxp_peers().iter().any(|c| c.contains(ip));
        if ip != peer && !listed {
            let text = if self.fxp_peers().is_empty() {
                format!(
                    "Illegal {verb} command: {ip} is not your address ({peer}); third-party transfers are not allowed."
                )
            } else {
                format!(
                    "Illegal {verb} command: {ip} is neither your address ({peer}) nor a server this account may transfer with."
                )
            };
            self.reply(500, &text);
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
        self.drop_data_setup();
        self.data = DataSetup::Active(SocketAddr::new(ip, target.port()));
        self.reply(
            200,
            &format!("{verb} command successful. Consider using EPSV."),
        );
    }

    /// Replies and returns false when a transfer command cannot go ahead: 522 when policy
    /// wants the data connection protected and it is not, 425 when no PASV/PORT preceded it.
    pub(super) fn need_data(&mut self) -> bool {
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

    pub(super) fn cmd_store(&mut self, arg: &str, mode: StoreMode) {
        if self.need_data() {
            self.check_change(arg, super::requests::Op::Store { mode });
        }
    }

    pub(super) fn start_retrieve(&mut self, path: VirtualPath, offset: u64, size: u64) {
        let what = format!("{path}");
        let rate = self.logged_in().and_then(|a| a.download_rate);
        self.start_transfer(
            TransferKind::Retrieve {
                path: path.clone(),
                offset,
            },
            what,
            Some(size),
            rate,
            Direction::Download,
            Some(path),
        );
    }

    pub(super) fn start_store(&mut self, path: VirtualPath, mode: StoreMode) {
        let verb = match mode {
            StoreMode::Append => "APPE",
            StoreMode::Unique => "STOU",
            StoreMode::Create | StoreMode::Resume(_) => "STOR",
        };
        let what = format!("{verb} {path}");
        let rate = self.logged_in().and_then(|a| a.upload_rate);
        self.start_transfer(
            TransferKind::Store {
                path: path.clone(),
                mode,
            },
            what,
            None,
            rate,
            Direction::Upload,
            Some(path),
        );
    }

    /// A listing's text (CRLF line ends) goes out in the current type, structure and mode
    /// (see [`Session::listing_format`]): as it is in the plain cases, else as stored text
    /// (LF line ends) for the runtime's encoder.
    pub(super) fn start_listing(&mut self, bytes: Vec<u8>, what: String) {
        let bytes = match self.listing_format() {
            None => bytes,
            Some(_) => {
                let mut text = Vec::with_capacity(bytes.len());
                let mut lines = codec::AsciiDecoder::new();
                lines.decode(&bytes, &mut text);
                lines.finish(&mut text);
                text
            }
        };
        self.start_transfer(
            TransferKind::Listing { bytes },
            what,
            None,
            None,
            Direction::Listing,
            None,
        );
    }

    /// Emits the transfer action, consuming the data connection setup.
    fn start_transfer(
        &mut self,
        kind: TransferKind,
        what: String,
        size: Option<u64>,
        rate_limit: Option<u64>,
        direction: Direction,
        path: Option<VirtualPath>,
    ) {
        let data = match self.data {
            DataSetup::Passive => DataEndpoint::Passive,
            DataSetup::Active(a) => DataEndpoint::Active(a),
            DataSetup::None => {
                self.reply(425, "Use PORT, PASV or EPSV first.");
                return;
            }
        };
        self.data = DataSetup::None;
        let format = match direction {
            Direction::Listing => self.listing_format().unwrap_or(IDENTITY),
            _ => self.format,
        };
        let marker_interval = match format.mode {
            Mode::Block | Mode::Compressed if self.config.restart_marker_interval > 0 => {
                Some(self.config.restart_marker_interval)
            }
            _ => None,
        };
        let protection = if self.prot_private {
            DataProtection::Private {
                reuse: self.config.tls_session_reuse,
            }
        } else {
            DataProtection::Clear
        };
        let ownership = match direction {
            Direction::Upload => self.new_ownership(false),
            _ => None,
        };
        let id = self.action(ActionKind::Transfer(TransferPlan {
            kind,
            data,
            format,
            marker_interval,
            rate_limit,
            protection,
            ownership,
        }));
        self.transfer = Some(Transfer {
            id,
            what,
            size,
            started: false,
            started_at: None,
            bytes: 0,
            abort_requested: false,
            direction,
            path,
            format,
            checksum: None,
        });
    }

    /// Tracks a task that runs like a transfer but without a data connection (a checksum):
    /// started at once, answered by its own outcome.
    pub(super) fn track_task(
        &mut self,
        id: ActionId,
        what: String,
        direction: Direction,
        path: Option<VirtualPath>,
        checksum: Option<Box<ChecksumRequest>>,
    ) {
        self.transfer = Some(Transfer {
            id,
            what,
            size: None,
            started: true,
            started_at: None,
            bytes: 0,
            abort_requested: false,
            direction,
            path,
            format: IDENTITY,
            checksum,
        });
    }

    pub(super) fn abort_transfer(&mut self) {
        let Some(t) = self.transfer.as_mut() else {
            return;
        };
        if !t.abort_requested {
            t.abort_requested = true;
            let transfer = t.id;
            self.action(ActionKind::AbortTransfer { transfer });
        }
    }

    pub(super) fn transfer_outcome(&mut self, now: Instant, kind: OutcomeKind) {
        let Some(t) = self.transfer.as_mut() else {
            return;
        };
        match kind {
            OutcomeKind::TransferStarted { stored_as } => {
                t.started = true;
                t.started_at = Some(now);
                // Listings are text whatever the TYPE (EBCDIC in TYPE E).
                let mode = match (t.direction, t.format.representation) {
                    (_, codec::Representation::Ebcdic(..)) => "EBCDIC",
                    (Direction::Listing, _) => "ASCII",
                    _ => Session::mode_word(&t.format),
                };
                // Outside TYPE I, STRU F, MODE S the wire size differs from the stored size:
                // don't announce it.
                let size = t.size.filter(|_| t.format.is_identity());
                let text = match (&stored_as, size) {
                    (Some(p), _) => format!("FILE: {}", p.file_name()),
                    (None, Some(n)) => {
                        format!(
                            "Opening {mode} mode data connection for {} ({n} bytes).",
                            t.what
                        )
                    }
                    (None, None) => format!("Opening {mode} mode data connection for {}.", t.what),
                };
                if stored_as.is_some() {
                    t.path = stored_as;
                }
                self.reply(150, &text);
            }
            OutcomeKind::TransferProgress { bytes } => t.bytes = bytes,
            OutcomeKind::TransferMark { sender, offset } => {
                // RFC 959 §4.2: "the text is exact": MARK yyyy = mmmm.
                self.reply(110, &format!("MARK {sender} = {offset}"));
            }
            OutcomeKind::Checksummed(result) => {
                let Some(t) = self.transfer.take() else {
                    return;
                };
                self.touch(now);
                if let Some(req) = &t.checksum {
                    self.checksum_outcome(req, t.path.as_ref(), result);
                }
                if t.abort_requested {
                    self.reply(226, "ABOR command successful.");
                }
                if self.quit_after_transfer {
                    self.reply(221, "Goodbye.");
                    self.close();
                }
            }
            OutcomeKind::TransferEnded { bytes, result } => {
                let Some(t) = self.transfer.take() else {
                    return;
                };
                self.touch(now);
                self.transfer_ended(now, t, bytes, result);
                if self.quit_after_transfer {
                    self.reply(221, "Goodbye.");
                    self.close();
                }
            }
            _ => {}
        }
    }

    fn transfer_ended(
        &mut self,
        now: Instant,
        t: Transfer,
        bytes: u64,
        result: Result<(), TransferError>,
    ) {
        let failure = result.as_ref().err().cloned();
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
            Err(TransferError::ConnectionLost(lost)) => {
                self.reply(426, &format!("Connection closed; transfer aborted: {lost}"));
            }
            Err(TransferError::Busy(why)) => self.reply(450, &why),
            Err(TransferError::Codec(e @ CodecError::Truncated(_))) => {
                self.reply(426, &format!("Connection closed; transfer aborted: {e}"));
            }
            Err(TransferError::Codec(e)) => {
                self.reply(451, &format!("Transfer failed: {e}"));
            }
            Err(TransferError::NotPlaced(e)) => {
                let code = if e == StorageError::NoSpace { 452 } else { 451 };
                self.reply(
                    code,
                    &format!(
                        "Transfer failed: the file arrived but could not be put in place: {e}."
                    ),
                );
            }
            Err(TransferError::Storage(e)) => {
                let code = match (&e, t.started) {
                    (StorageError::NoSpace, _) => 452,
                    (_, true) => 451,
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
        // Events come after the final reply: a back end told "upload complete" must find
        // the whole file, and the client has already been told so.
        let kind = match (t.direction, failure.is_none()) {
            (Direction::Listing | Direction::Checksum, _) => return,
            (Direction::Upload, true) => EventKind::UploadComplete,
            (Direction::Upload, false) => EventKind::UploadFailed,
            (Direction::Download, true) => EventKind::DownloadComplete,
            (Direction::Download, false) => EventKind::DownloadFailed,
        };
        let duration = t.started_at.map(|s| now.saturating_duration_since(s));
        self.notify(kind, |e| {
            e.path = t.path;
            e.size = Some(bytes);
            e.duration = duration;
            e.representation = Some(Session::coarse_representation(&t.format));
            e.reason = failure.as_ref().map(ToString::to_string);
            e.failure = failure;
        });
    }
}
