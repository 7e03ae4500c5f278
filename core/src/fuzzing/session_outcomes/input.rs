//! The fuzz input: how bytes become the configuration and the runtime's answers.

use super::*;

/// The fuzz input, read front to back; zeros once it is used up.
pub(super) struct Source<'a> {
    pub(super) data: &'a [u8],
}

impl<'a> Source<'a> {
    pub(super) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub(super) fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// A choice among `n` (`n > 0`); 0 once the input is used up.
    pub(super) fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n
    }

    pub(super) fn pick<T: Clone>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())].clone()
    }

    pub(super) fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// A count of bytes, offsets or sizes: small ones, and the edges.
    pub(super) fn amount(&mut self) -> u64 {
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
    pub(super) fn line(&mut self) -> &'a [u8] {
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
pub(super) struct Setup {
    /// Byte 0: bit 0 TLS available; 1 implicit TLS; 2 accounts must protect the control
    /// connection; 3 and the data connections; 4 CCC allowed; 5 no delay after a failed
    /// login; 6 IPv6 addresses; 7 the server's FXP peers (192.0.2.0/24 and 2001:db8::/32)
    /// and privileged data ports allowed.
    pub(super) a: u8,
    /// Byte 1: bit 0 no restart markers; 1 small limits (32-byte lines, 256 bytes buffered);
    /// 2 one login at most (overall, anonymous, per address); 3 an advertised passive
    /// address; 4 the server's IP filter refuses the client; 5 one failed login closes;
    /// 6 SITE CHMOD off; 7 TLS data connections need not resume a session.
    pub(super) b: u8,
    /// Byte 2: bit 0 an implicit-TLS handshake reports a client certificate for alice;
    /// bits 1–2 the idle timeout (300 s, 1 s, 30 s, 3600 s); bit 3 a login timeout of 5 s.
    pub(super) c: u8,
}

impl Setup {
    pub(super) fn read(src: &mut Source<'_>) -> Setup {
        Setup {
            a: src.byte(),
            b: src.byte(),
            c: src.byte(),
        }
    }

    pub(super) fn bit(byte: u8, n: u8) -> bool {
        byte & (1 << n) != 0
    }

    pub(super) fn implicit_tls(self) -> bool {
        Setup::bit(self.a, 1)
    }

    pub(super) fn config(self) -> Config {
        let (a, b, c) = (self.a, self.b, self.c);
        let bit = Setup::bit;
        let mut config = Config {
            tls_available: bit(a, 0) || bit(a, 1),
            ..Config::default()
        };
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
        if bit(a, 7) {
            config.fxp_peers = ["192.0.2.0/24", "2001:db8::/32"]
                .iter()
                .map(|c| Cidr::parse(c).expect("valid CIDR"))
                .collect();
        }
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

    pub(super) fn addresses(self) -> (SocketAddr, SocketAddr) {
        let ip = if Setup::bit(self.a, 6) {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        } else {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        };
        (SocketAddr::new(ip, 40_000), SocketAddr::new(ip, 2121))
    }
}

/// Names a login or a client certificate may carry.
pub(super) const USERS: [&str; 5] = ["alice", "bob", "anonymous", "partner/carol", "ALICE"];

/// The user store's answer: an account with settings the next bytes choose, or a refusal.
pub(super) fn login_result(src: &mut Source<'_>, user: &str) -> Result<Account, LoginError> {
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
    let n = src.byte();
    // The account's own FXP peers replace the server's: none, or a documentation network.
    a.fxp_peers = match n >> 6 {
        1 => Some(Vec::new()),
        2 => Some(vec![Cidr::parse("198.51.100.0/24").expect("valid CIDR")]),
        _ => None,
    };
    let n = 1 + u32::from(n % 3);
    a.sessions = LoginCounts {
        total: n,
        anonymous: if anonymous { n } else { 0 },
        from_ip: n,
        user: n,
        user_from_ip: n,
    };
    Ok(a)
}

pub(super) fn storage_error(src: &mut Source<'_>) -> StorageError {
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
pub(super) fn unix_time(src: &mut Source<'_>) -> UnixTime {
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
pub(super) fn file_info(src: &mut Source<'_>) -> FileInfo {
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

pub(super) fn admin_info(src: &mut Source<'_>, q: &AdminQuery, peer: SocketAddr) -> AdminInfo {
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
pub(super) fn marker_text(src: &mut Source<'_>) -> String {
    let len = 1 + src.below(64);
    (0..len)
        .map(|_| char::from(0x21 + src.byte() % 94))
        .collect()
}

/// Why a transfer did not complete: every kind the contract lets the runtime report for it
/// (`Aborted` only once asked to abort, `NotPlaced` only for an upload, `Busy` only for a
/// checksum, nothing that needs all of an upload before it started).
pub(super) fn transfer_error(src: &mut Source<'_>, t: &Running) -> TransferError {
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
pub(super) fn any_outcome(src: &mut Source<'_>) -> OutcomeKind {
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
