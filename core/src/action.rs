//! The typed boundary between the core and the runtime: [`Action`]s the core asks for and the
//! [`Outcome`]s the runtime reports back.
//!
//! An action carries an [`ActionId`]; the outcome that answers it names the same id. Which
//! outcome answers which action is listed on [`ActionKind`]. Actions marked "no outcome" are
//! instructions the runtime carries out without reporting back.
//!
//! Nothing here performs I/O: these are plain data, so a test can play the runtime's part.

use crate::codec::{CodecError, DataFormat};
use crate::listing::FileInfo;
use crate::path::VirtualPath;
use crate::policy::{Cidr, IpFilter};
use crate::time::UnixTime;
use core::fmt;
use core::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Names an action so that its outcome can find its way back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActionId(pub u64);

/// Work only the runtime can do.
#[derive(Debug, PartialEq, Eq)]
pub struct Action {
    /// The id the outcome must name.
    pub id: ActionId,
    /// What to do.
    pub kind: ActionKind,
}

/// A password, kept out of `Debug` output and therefore out of logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The secret itself, for checking it. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// What the runtime is asked to do, and the outcome it answers with.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActionKind {
    /// Check a user name and password. Answer: [`OutcomeKind::Authenticated`].
    ///
    /// The runtime should take the same time whether or not the user exists.
    Authenticate {
        /// The name from USER, as the client sent it.
        user: String,
        /// The password from PASS.
        password: Secret,
    },
    /// Metadata of one path. Answer: [`OutcomeKind::Metadata`].
    Stat {
        /// The path.
        path: VirtualPath,
    },
    /// The entries of a directory (without `.` and `..`). Answer: [`OutcomeKind::Entries`].
    ReadDir {
        /// The directory.
        path: VirtualPath,
    },
    /// Create a directory (its parent must exist) and record its owner, group and mode
    /// (in the file system where it can hold them, otherwise beside the data, so that they
    /// survive a restart). Answer: [`OutcomeKind::Done`].
    MakeDir {
        /// The directory to create.
        path: VirtualPath,
        /// Who owns it and its permission bits.
        ownership: Ownership,
    },
    /// Change the permission bits recorded for an entry (SITE CHMOD). Answer:
    /// [`OutcomeKind::Done`].
    SetMode {
        /// The entry.
        path: VirtualPath,
        /// The new bits (at most `0o777`).
        mode: u32,
    },
    /// Set a file's modification time (MFMT, two-argument MDTM). Answer:
    /// [`OutcomeKind::Done`].
    SetModified {
        /// The file.
        path: VirtualPath,
        /// The new modification time.
        time: UnixTime,
    },
    /// Remove an empty directory. Answer: [`OutcomeKind::Done`].
    RemoveDir {
        /// The directory to remove.
        path: VirtualPath,
    },
    /// Delete a file. Answer: [`OutcomeKind::Done`].
    Delete {
        /// The file to delete.
        path: VirtualPath,
    },
    /// Rename a file or directory; an existing file at `to` is replaced, as rename(2) does.
    /// Answer: [`OutcomeKind::Done`].
    Rename {
        /// The existing path.
        from: VirtualPath,
        /// The new path.
        to: VirtualPath,
    },
    /// The size a file has on the wire in TYPE A (LF counted as CRLF); the runtime streams the
    /// file through [`crate::codec::AsciiEncoder::encoded_len`]. Answer: [`OutcomeKind::Size`].
    AsciiSize {
        /// The file.
        path: VirtualPath,
    },
    /// The size a file has on the wire in `format` (SIZE in TYPE E): the runtime streams the
    /// file through [`crate::codec::Encoder`] and counts. Answer: [`OutcomeKind::Size`] (a
    /// file the format cannot carry: `StorageError::Other` with the codec's reason).
    EncodedSize {
        /// The file.
        path: VirtualPath,
        /// The representation, in STRU F and MODE S.
        format: DataFormat,
    },
    /// Open a passive data listener on `ip`, on a port from the configured list, replacing any
    /// listener this session had. Answer: [`OutcomeKind::PassiveListening`].
    ListenPassive {
        /// The local address to listen on (that of the control connection).
        ip: IpAddr,
        /// Accept a data connection from this address (the client's)...
        peer: IpAddr,
        /// ...or from one of these servers (the account's third-party transfer peers, usually
        /// none). Connections from elsewhere are closed at once and the listener goes on
        /// waiting.
        fxp_peers: Vec<Cidr>,
    },
    /// Close this session's passive listener, if any. No outcome.
    ClosePassive,
    /// Run a transfer on the data connection. Answers, in order:
    /// [`OutcomeKind::TransferStarted`] once the file (or listing) and the data connection are
    /// both open, any number of [`OutcomeKind::TransferProgress`], then one
    /// [`OutcomeKind::TransferEnded`]. A transfer that fails before it starts sends only
    /// `TransferEnded`. An upload is settled before its `TransferEnded`: put in place when all
    /// of it arrived (or [`TransferError::NotPlaced`]), discarded otherwise (see the crate
    /// documentation, *The contract a driver follows*).
    Transfer(TransferPlan),
    /// The 234 reply to AUTH has been queued: write it, then run the TLS handshake (server side)
    /// on the control connection. Bytes read after the AUTH line and before the handshake were
    /// sent in the clear and have been discarded by the session; the runtime must not feed it
    /// anything read before the handshake either. Answer: [`OutcomeKind::TlsEstablished`].
    StartTls,
    /// After writing the reply queued before it (to CCC or REIN), end TLS on the control
    /// connection with close_notify and go on in the clear. No outcome; if the shutdown fails,
    /// close the connection.
    StopTls,
    /// The client's verified TLS certificate maps to `user` and the client sent `USER user`:
    /// log them in without a password if the account exists and is enabled.
    /// Answer: [`OutcomeKind::Authenticated`].
    AuthenticateCertificate {
        /// The user the certificate maps to.
        user: String,
    },
    /// A login accepted by [`OutcomeKind::Authenticated`] has ended (logout, REIN, USER for
    /// another user, or refused by a login limit): release what the runtime counted for it.
    /// If the runtime drops a session whose [`crate::Session::account`] is still `Some`, it
    /// releases the login itself. No outcome.
    LoginEnded,
    /// Record an event (events log, external command, transfer log, statistics). No outcome.
    /// Events of a finished transfer come after its final reply has been queued.
    Notify(Event),
    /// Information only the runtime holds, for an administrator's SITE command.
    /// Answer: [`OutcomeKind::AdminInfo`].
    AdminQuery(AdminQuery),
    /// Compute the checksum of a file's bytes, as a download in TYPE I and MODE S would receive
    /// them, from `start` to `end` (excluded; `None`: to the end of the file). It runs as a
    /// transfer does (ABOR stops it with [`ActionKind::AbortTransfer`]; STAT shows its
    /// progress): answers, any number of [`OutcomeKind::TransferProgress`], then one
    /// [`OutcomeKind::Checksummed`].
    Checksum {
        /// The file.
        path: VirtualPath,
        /// Which checksum.
        algorithm: ChecksumAlgorithm,
        /// The first byte.
        start: u64,
        /// The end of the range (excluded), or the end of the file.
        end: Option<u64>,
    },
    /// Stop the transfer named `transfer` as soon as possible and close its data connection;
    /// it then ends with [`TransferError::Aborted`] (or normally, if it had already finished).
    /// No outcome of its own.
    AbortTransfer {
        /// The id of the [`ActionKind::Transfer`] to stop.
        transfer: ActionId,
    },
}

/// A checksum algorithm of HASH (draft-bryan-ftpext-hash; names from IANA's "Hash Function
/// Textual Names") and of the older XCRC, XMD5, XSHA1, XSHA256, XSHA512.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumAlgorithm {
    /// SHA-256: HASH's default.
    Sha256,
    /// SHA-512.
    Sha512,
    /// SHA-1 (every HASH server must offer it).
    Sha1,
    /// MD5.
    Md5,
    /// CRC-32 (IEEE 802.3, as zlib computes it).
    Crc32,
}

impl ChecksumAlgorithm {
    /// Every algorithm, in the order FEAT lists them.
    pub const ALL: [ChecksumAlgorithm; 5] = [
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Sha512,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Md5,
        ChecksumAlgorithm::Crc32,
    ];

    /// The name HASH, OPTS HASH and FEAT use.
    pub fn name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Sha256 => "SHA-256",
            ChecksumAlgorithm::Sha512 => "SHA-512",
            ChecksumAlgorithm::Sha1 => "SHA-1",
            ChecksumAlgorithm::Md5 => "MD5",
            ChecksumAlgorithm::Crc32 => "CRC32",
        }
    }

    /// The algorithm a name stands for (case does not matter; `CRC-32` too).
    pub fn from_name(name: &str) -> Option<ChecksumAlgorithm> {
        let name = name.trim();
        if name.eq_ignore_ascii_case("CRC-32") {
            return Some(ChecksumAlgorithm::Crc32);
        }
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }
}

/// A computed checksum ([`OutcomeKind::Checksummed`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChecksumValue {
    /// The checksum in lower-case hexadecimal.
    pub hex: String,
    /// The first byte hashed.
    pub start: u64,
    /// The end of what was hashed (excluded).
    pub end: u64,
}

/// Everything the runtime needs to run one transfer.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransferPlan {
    /// What moves, and in which direction.
    pub kind: TransferKind,
    /// How to get the data connection.
    pub data: DataEndpoint,
    /// Type, structure and mode: the bytes go through [`crate::codec::Encoder`] (retrieve,
    /// listing) or [`crate::codec::Decoder`] (store) unless [`DataFormat::is_identity`]
    /// (TYPE I, STRU F, MODE S: the file's bytes as they are, on the zero-copy path).
    pub format: DataFormat,
    /// For a retrieve in MODE B or C: a restart marker every this many stored bytes.
    pub marker_interval: Option<u64>,
    /// Bytes per second this transfer may use; `None` for no limit.
    pub rate_limit: Option<u64>,
    /// Whether the data connection is wrapped in TLS (PROT P).
    pub protection: DataProtection,
    /// For uploads: who owns the file created (recorded as for [`ActionKind::MakeDir`]).
    /// A file that existed keeps its owner and mode.
    pub ownership: Option<Ownership>,
}

/// Owner, group and permission bits of an entry a user creates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ownership {
    /// The owning user (for partner users, the name without the partner prefix).
    pub owner: String,
    /// The owning group (the user's partner, or the user's name when they have none).
    pub group: String,
    /// Permission bits, e.g. `0o444`.
    pub mode: u32,
}

/// Protection of a data connection (RFC 4217 §9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataProtection {
    /// PROT C: in the clear.
    Clear,
    /// PROT P: a TLS handshake in server mode on the data connection before any byte moves.
    Private {
        /// Which earlier TLS session the handshake must resume; a data connection that does
        /// not ends the transfer with [`TransferError::Tls`].
        reuse: SessionReuse,
    },
}

/// Which TLS session a protected data connection must resume (RFC 4217 §10.2: a data
/// connection must be tied to its control connection; resuming a session proves that whoever
/// connected holds that session's secrets, so nobody who merely reached the passive port first
/// can take the data).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SessionReuse {
    /// Any handshake will do: the data connection is not tied to anything.
    NotRequired,
    /// A session of this control connection, or of another control connection of the same
    /// logged-in user from the same client address (clients such as rclone keep one session
    /// cache for all their connections). The default.
    #[default]
    SameClient,
    /// A session of this control connection only (vsftpd's `require_ssl_reuse`).
    SameConnection,
}

impl SessionReuse {
    /// Whether the data connection must resume a session at all.
    pub fn required(self) -> bool {
        self != SessionReuse::NotRequired
    }
}

/// What a transfer moves.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransferKind {
    /// Send a file to the client, starting at a byte offset (RETR).
    Retrieve {
        /// The file.
        path: VirtualPath,
        /// Where to start (REST), in bytes of the stored file.
        offset: u64,
    },
    /// Send bytes the core formatted (LIST, NLST, MLSD).
    Listing {
        /// The listing, CRLF line endings included.
        bytes: Vec<u8>,
    },
    /// Receive a file from the client (STOR, APPE, STOU).
    Store {
        /// The file, or for [`StoreMode::Unique`] the name to start from.
        path: VirtualPath,
        /// How to open it.
        mode: StoreMode,
    },
}

/// How an upload opens its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreMode {
    /// Create or truncate (STOR).
    Create,
    /// Create or append (APPE).
    Append,
    /// Truncate to the offset, then write from there (REST + STOR: resuming an upload).
    /// An offset beyond the end of the file is an error.
    Resume(u64),
    /// Create a new file that does not exist yet: the given name if free, otherwise the name
    /// with `.1`, `.2`, ... appended (STOU). The name used is reported in `TransferStarted`.
    Unique,
}

/// Where the data connection comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataEndpoint {
    /// Accept on the listener opened by the last [`ActionKind::ListenPassive`].
    Passive,
    /// Connect to the client's address (PORT, EPRT, LPRT).
    Active(SocketAddr),
}

/// Representation type of the data (RFC 959 §3.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Representation {
    /// TYPE I / L 8: bytes as they are.
    Binary,
    /// TYPE A: CRLF on the wire, LF in files.
    Ascii,
}

/// The result of an action, reported by the runtime.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The id of the action this answers.
    pub id: ActionId,
    /// What happened.
    pub kind: OutcomeKind,
}

impl Outcome {
    /// An outcome for action `id`.
    pub fn new(id: ActionId, kind: OutcomeKind) -> Outcome {
        Outcome { id, kind }
    }
}

/// What happened; see [`ActionKind`] for which action each answers.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutcomeKind {
    /// The user is who they say.
    Authenticated(Result<Account, LoginError>),
    /// Metadata of the path.
    Metadata(Result<FileInfo, StorageError>),
    /// Entries of the directory, and the wall-clock time now (LIST prints recent dates with the
    /// time of day and older ones with the year).
    Entries {
        /// The entries, in any order.
        result: Result<Vec<FileInfo>, StorageError>,
        /// The current wall-clock time.
        now: UnixTime,
    },
    /// The operation finished.
    Done(Result<(), StorageError>),
    /// A size in bytes.
    Size(Result<u64, StorageError>),
    /// The passive listener is ready on this port.
    PassiveListening(Result<u16, String>),
    /// The transfer's file and data connection are open; bytes are about to move.
    TransferStarted {
        /// For [`StoreMode::Unique`], the path actually created.
        stored_as: Option<VirtualPath>,
    },
    /// Bytes moved so far (lets STAT report progress; send it before control input).
    TransferProgress {
        /// Bytes so far.
        bytes: u64,
    },
    /// An upload in MODE B or C carried the client's restart marker `sender`, and every stored
    /// byte before it (`offset` bytes of the file) is written: the core answers `110 MARK
    /// sender = offset` (RFC 959 §3.5, §4.2), and `REST offset` resumes there later.
    TransferMark {
        /// The client's marker text.
        sender: String,
        /// The stored-file offset it stands for (the server's marker).
        offset: u64,
    },
    /// The answer to an [`ActionKind::AdminQuery`].
    AdminInfo(Result<AdminInfo, String>),
    /// The TLS handshake on the control connection finished (or failed: the runtime closes the
    /// connection after reporting it).
    TlsEstablished(Result<TlsInfo, String>),
    /// The answer to [`ActionKind::Checksum`].
    Checksummed(Result<ChecksumValue, TransferError>),
    /// The transfer is over.
    TransferEnded {
        /// Bytes moved on the data connection.
        bytes: u64,
        /// How it ended.
        result: Result<(), TransferError>,
    },
}

/// What the session learns from a completed TLS handshake.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsInfo {
    /// The user a verified client certificate maps to, when client certificates are enabled.
    pub client_identity: Option<String>,
}

impl TlsInfo {
    /// A handshake without a client certificate identity.
    pub fn new(client_identity: Option<String>) -> TlsInfo {
        TlsInfo { client_identity }
    }
}

/// A logged-in user as the runtime's user store describes them, with the counts of logins
/// the runtime holds (this one included) so that the session can apply the login limits.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Account {
    /// The login name (`partner/user`, or `user` for a user of no partner).
    pub name: String,
    /// The user's name as owners are recorded: the login name without the partner prefix.
    pub user: String,
    /// The partner (group) the user belongs to.
    pub partner: Option<String>,
    /// Logged in as anonymous.
    pub anonymous: bool,
    /// May create, change and delete files and directories (still subject to the entries'
    /// permission bits). `false` makes the account read-only.
    pub write: bool,
    /// May use SITE WHO, SITE STAT and SITE DESCUSER.
    pub admin: bool,
    /// Idle time before the session is closed; `None` uses the server's.
    pub idle_timeout: Option<Duration>,
    /// Upload limit in bytes per second; `None` for none.
    pub upload_rate: Option<u64>,
    /// Download limit in bytes per second; `None` for none.
    pub download_rate: Option<u64>,
    /// Most simultaneous logins of this user; `None` for no limit.
    pub max_logins: Option<u32>,
    /// Most simultaneous logins of this user from one address; `None` for no limit.
    pub max_logins_per_ip: Option<u32>,
    /// Addresses this user may log in from (empty: any).
    pub ip_filter: IpFilter,
    /// The partner's allow/deny list, checked at login.
    pub partner_ip_filter: IpFilter,
    /// The servers this account may use in a third-party (FXP) transfer (the user's list, or
    /// else the partner's); `None` uses the server's ([`crate::Config::fxp_peers`]).
    pub fxp_peers: Option<Vec<Cidr>>,
    /// Folders that always exist and can be neither deleted nor renamed (Inbox, Outbox).
    pub fixed_folders: Vec<VirtualPath>,
    /// Mode of files this user uploads. Default `0o644`.
    pub file_mode: u32,
    /// Mode of directories this user creates. Default `0o755`.
    pub dir_mode: u32,
    /// Logins the runtime counts now, this one included.
    pub sessions: LoginCounts,
}

/// Logins the runtime holds at the moment of a new login, the new one included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoginCounts {
    /// All logged-in sessions.
    pub total: u32,
    /// Anonymous sessions.
    pub anonymous: u32,
    /// Sessions from the same client address.
    pub from_ip: u32,
    /// Sessions of the same user.
    pub user: u32,
    /// Sessions of the same user from the same client address.
    pub user_from_ip: u32,
}

impl Account {
    /// A named account with write permission and no limits.
    pub fn new(name: impl Into<String>) -> Account {
        let name = name.into();
        let (partner, user) = match name.split_once('/') {
            Some((p, u)) => (Some(p.to_owned()), u.to_owned()),
            None => (None, name.clone()),
        };
        Account {
            name,
            user,
            partner,
            anonymous: false,
            write: true,
            admin: false,
            idle_timeout: None,
            upload_rate: None,
            download_rate: None,
            max_logins: None,
            max_logins_per_ip: None,
            ip_filter: IpFilter::default(),
            partner_ip_filter: IpFilter::default(),
            fxp_peers: None,
            fixed_folders: Vec::new(),
            file_mode: 0o644,
            dir_mode: 0o755,
            sessions: LoginCounts::default(),
        }
    }

    /// The anonymous account: read-only.
    pub fn anonymous() -> Account {
        let mut a = Account::new("anonymous");
        a.anonymous = true;
        a.write = false;
        a
    }

    /// The group new entries get: the partner, or the user's own name.
    pub fn group(&self) -> &str {
        self.partner.as_deref().unwrap_or(&self.user)
    }
}

/// Something that happened in a session, for the events log, the external command, the
/// transfer log and the statistics. The runtime adds the time and its session id.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The login name, once known.
    pub user: Option<String>,
    /// The user's partner.
    pub partner: Option<String>,
    /// The client's address.
    pub peer: SocketAddr,
    /// The path concerned (the source of a rename).
    pub path: Option<VirtualPath>,
    /// The destination of a rename.
    pub to: Option<VirtualPath>,
    /// Bytes transferred.
    pub size: Option<u64>,
    /// How long a transfer took.
    pub duration: Option<Duration>,
    /// Representation of a transfer (for the transfer log).
    pub representation: Option<Representation>,
    /// Why it failed, for failures: the text for logs.
    pub reason: Option<String>,
    /// For a failed transfer, why, as the type the events log classifies.
    pub failure: Option<TransferError>,
}

/// The kinds of [`Event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A client connected (`reason` is set when the connection was refused).
    Connect,
    /// A user logged in.
    Login,
    /// A login failed (`reason` says why).
    LoginFailed,
    /// A user logged out, or their connection ended.
    Logout,
    /// A whole file arrived (sent after the 226).
    UploadComplete,
    /// An upload did not complete; what arrived must not be taken as the file.
    UploadFailed,
    /// A file was fetched whole (sent after the 226).
    DownloadComplete,
    /// A download did not complete.
    DownloadFailed,
    /// A file was deleted.
    Delete,
    /// A file or directory was renamed (`path` → `to`).
    Rename,
    /// A directory was created.
    Mkdir,
    /// A directory was removed.
    Rmdir,
}

impl EventKind {
    /// The name used in the events log: `upload_complete`, `login_failed`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Connect => "connect",
            EventKind::Login => "login",
            EventKind::LoginFailed => "login_failed",
            EventKind::Logout => "logout",
            EventKind::UploadComplete => "upload_complete",
            EventKind::UploadFailed => "upload_failed",
            EventKind::DownloadComplete => "download_complete",
            EventKind::DownloadFailed => "download_failed",
            EventKind::Delete => "delete",
            EventKind::Rename => "rename",
            EventKind::Mkdir => "mkdir",
            EventKind::Rmdir => "rmdir",
        }
    }
}

/// What an administrator's SITE command asks of the runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdminQuery {
    /// SITE WHO: the logged-in sessions.
    Who,
    /// SITE STAT: the server's statistics.
    Stat,
    /// SITE DESCUSER: one user's settings.
    DescribeUser(String),
}

/// The runtime's answer to an [`AdminQuery`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdminInfo {
    /// For SITE WHO.
    Who(Vec<SessionSummary>),
    /// For SITE STAT.
    Stat(ServerStats),
    /// For SITE DESCUSER; `None` when there is no such user.
    User(Option<UserSummary>),
}

/// One logged-in session, for SITE WHO.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionSummary {
    /// The login name.
    pub user: String,
    /// The client's address.
    pub peer: SocketAddr,
    /// When the user logged in.
    pub login_time: UnixTime,
    /// When the session last received a command.
    pub last_command: UnixTime,
}

impl SessionSummary {
    /// A summary line's data.
    pub fn new(
        user: String,
        peer: SocketAddr,
        login_time: UnixTime,
        last_command: UnixTime,
    ) -> Self {
        SessionSummary {
            user,
            peer,
            login_time,
            last_command,
        }
    }
}

/// Server statistics since start, for SITE STAT.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// When the server started.
    pub start_time: UnixTime,
    /// Files uploaded whole.
    pub uploads: u64,
    /// Files downloaded whole.
    pub downloads: u64,
    /// Files deleted.
    pub deletes: u64,
    /// Bytes received.
    pub bytes_up: u64,
    /// Bytes sent.
    pub bytes_down: u64,
    /// Directories created.
    pub dirs_created: u64,
    /// Directories removed.
    pub dirs_removed: u64,
    /// Logged-in sessions now.
    pub logins_current: u64,
    /// Logins since start.
    pub logins_total: u64,
    /// Anonymous sessions now.
    pub anonymous_current: u64,
    /// Anonymous logins since start.
    pub anonymous_total: u64,
    /// Open connections now.
    pub connections_current: u64,
    /// Connections since start.
    pub connections_total: u64,
}

/// One user's settings, for SITE DESCUSER (never the password).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserSummary {
    /// The login name.
    pub name: String,
    /// The partner, if any.
    pub partner: Option<String>,
    /// Whether the account may log in.
    pub enabled: bool,
    /// Home directory (on the server's file system).
    pub home: String,
    /// Write permission.
    pub write: bool,
    /// Administrator.
    pub admin: bool,
    /// Idle time in seconds (`None`: the server's).
    pub idle_time: Option<u64>,
    /// Upload rate limit, bytes/s.
    pub upload_rate: Option<u64>,
    /// Download rate limit, bytes/s.
    pub download_rate: Option<u64>,
    /// Most simultaneous logins.
    pub max_logins: Option<u32>,
    /// Most simultaneous logins per address.
    pub max_logins_per_ip: Option<u32>,
    /// Allowed addresses (empty: any).
    pub allowed_ips: Vec<String>,
    /// The servers the user may use in third-party (FXP) transfers: its own list, else its
    /// partner's; `None`: the server's (`fxp_peers`). An empty list: none.
    pub fxp_peers: Option<Vec<String>>,
}

/// Why a login was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginError {
    /// Unknown user, wrong password or disabled account: all the same to the client.
    Invalid,
    /// The user store could not be consulted; the text is for the reply.
    Unavailable(String),
}

/// A storage operation that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageError {
    /// No such file or directory.
    NotFound,
    /// The file system refused (or the path leads out of the user's root).
    PermissionDenied,
    /// Something is already there.
    AlreadyExists,
    /// A directory was needed.
    NotADirectory,
    /// A file was needed.
    IsADirectory,
    /// The directory is not empty.
    DirectoryNotEmpty,
    /// The disk or quota is full.
    NoSpace,
    /// The name cannot be used on this file system.
    InvalidName,
    /// Anything else; the text is for the reply and the log.
    Other(String),
}

impl From<std::io::ErrorKind> for StorageError {
    fn from(kind: std::io::ErrorKind) -> StorageError {
        use std::io::ErrorKind as K;
        match kind {
            K::NotFound => StorageError::NotFound,
            K::PermissionDenied => StorageError::PermissionDenied,
            K::AlreadyExists => StorageError::AlreadyExists,
            K::NotADirectory => StorageError::NotADirectory,
            K::IsADirectory => StorageError::IsADirectory,
            K::DirectoryNotEmpty => StorageError::DirectoryNotEmpty,
            K::StorageFull | K::QuotaExceeded => StorageError::NoSpace,
            K::InvalidFilename | K::InvalidInput => StorageError::InvalidName,
            other => StorageError::Other(other.to_string()),
        }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StorageError::NotFound => "No such file or directory",
            StorageError::PermissionDenied => "Permission denied",
            StorageError::AlreadyExists => "File exists",
            StorageError::NotADirectory => "Not a directory",
            StorageError::IsADirectory => "Is a directory",
            StorageError::DirectoryNotEmpty => "Directory not empty",
            StorageError::NoSpace => "No space left on device",
            StorageError::InvalidName => "Invalid file name",
            StorageError::Other(s) => s,
        })
    }
}

/// A transfer that did not complete. Each variant is a reason the core maps to a reply and
/// the events log maps to a result (`failed`, `incomplete`); none is told apart by its text.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransferError {
    /// The data connection could not be opened (passive accept timed out, active connect
    /// refused, ...). Reply 425.
    DataConnection(String),
    /// The data connection broke or stalled mid-transfer, or the control connection went.
    /// Reply 426.
    ConnectionLost(Lost),
    /// Stopped by ABOR. Reply 426.
    Aborted,
    /// The file could not be opened, read or written. Reply 550/552/553 before the transfer
    /// starts, 451/452 after.
    Storage(StorageError),
    /// The TLS handshake on the data connection failed, or did not resume a session it had
    /// to. Reply 522.
    Tls(String),
    /// All of an upload arrived, but the file could not be put in place (atomic uploads:
    /// the rename into place failed). Reply 451 (452 when the disk is full); the upload
    /// counts as failed.
    NotPlaced(StorageError),
    /// The server is busy with as many of these as it allows at once (checksums); the text
    /// says so. Reply 450: try again later.
    Busy(String),
    /// The data could not be converted between the wire and the stored file in the transfer's
    /// type, structure and mode (a character with no EBCDIC code, a malformed block, an upload
    /// that ended before its explicit end). Reply 451 (426 for [`CodecError::Truncated`]).
    Codec(CodecError),
}

/// How a data connection was lost ([`TransferError::ConnectionLost`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lost {
    /// The connection broke (reset, closed early, a socket error); the text says how.
    Broken(String),
    /// No byte moved for this long (`data_stall_timeout`).
    Stalled(Duration),
    /// A protected upload ended without the client's TLS close_notify: it may have been cut
    /// (or a TCP FIN forged), so what arrived is not taken as the whole file.
    NoCloseNotify,
    /// The control connection closed: nobody is left to be told the result.
    ControlClosed,
}

impl fmt::Display for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lost::Broken(s) => f.write_str(s),
            Lost::Stalled(d) => write!(f, "no data moved for {} seconds", d.as_secs()),
            Lost::NoCloseNotify => {
                f.write_str("data connection closed without TLS close_notify: upload incomplete")
            }
            Lost::ControlClosed => f.write_str("the control connection closed"),
        }
    }
}

impl fmt::Display for TransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransferError::DataConnection(s) => write!(f, "data connection failed: {s}"),
            TransferError::ConnectionLost(l) => write!(f, "data connection lost: {l}"),
            TransferError::Aborted => f.write_str("aborted"),
            TransferError::Storage(e) => write!(f, "{e}"),
            TransferError::Tls(s) => write!(f, "data connection TLS failed: {s}"),
            TransferError::NotPlaced(e) => write!(f, "the file could not be put in place: {e}"),
            TransferError::Busy(s) => f.write_str(s),
            TransferError::Codec(e) => write!(f, "{e}"),
        }
    }
}
