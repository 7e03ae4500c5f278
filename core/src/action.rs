//! The typed boundary between the core and the runtime: [`Action`]s the core asks for and the
//! [`Outcome`]s the runtime reports back.
//!
//! An action carries an [`ActionId`]; the outcome that answers it names the same id. Which
//! outcome answers which action is listed on [`ActionKind`]. Actions marked "no outcome" are
//! instructions the runtime carries out without reporting back.
//!
//! Nothing here performs I/O: these are plain data, so a test can play the runtime's part.

use crate::listing::FileInfo;
use crate::path::VirtualPath;
use crate::time::UnixTime;
use core::fmt;
use std::net::{IpAddr, SocketAddr};

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
    /// Create a directory (its parent must exist). Answer: [`OutcomeKind::Done`].
    MakeDir {
        /// The directory to create.
        path: VirtualPath,
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
    /// Open a passive data listener on `ip`, on a port from the configured list, replacing any
    /// listener this session had. Answer: [`OutcomeKind::PassiveListening`].
    ListenPassive {
        /// The local address to listen on (that of the control connection).
        ip: IpAddr,
        /// Accept a data connection only from this address; `None` accepts any (only when the
        /// configuration allows third-party transfers). Connections from elsewhere are closed
        /// at once and the listener goes on waiting.
        peer: Option<IpAddr>,
    },
    /// Close this session's passive listener, if any. No outcome.
    ClosePassive,
    /// Run a transfer on the data connection. Answers, in order:
    /// [`OutcomeKind::TransferStarted`] once the file (or listing) and the data connection are
    /// both open, any number of [`OutcomeKind::TransferProgress`], then one
    /// [`OutcomeKind::TransferEnded`]. A transfer that fails before it starts sends only
    /// `TransferEnded`.
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
    /// Stop the transfer named `transfer` as soon as possible and close its data connection;
    /// it then ends with [`TransferError::Aborted`] (or normally, if it had already finished).
    /// No outcome of its own.
    AbortTransfer {
        /// The id of the [`ActionKind::Transfer`] to stop.
        transfer: ActionId,
    },
}

/// Everything the runtime needs to run one transfer.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransferPlan {
    /// What moves, and in which direction.
    pub kind: TransferKind,
    /// How to get the data connection.
    pub data: DataEndpoint,
    /// Representation: apply the TYPE A codec ([`crate::codec`]) when `Ascii`.
    pub representation: Representation,
    /// Bytes per second this transfer may use; `None` for no limit.
    pub rate_limit: Option<u64>,
    /// Whether the data connection is wrapped in TLS (PROT P).
    pub protection: DataProtection,
}

/// Protection of a data connection (RFC 4217 §9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataProtection {
    /// PROT C: in the clear.
    Clear,
    /// PROT P: a TLS handshake in server mode on the data connection before any byte moves.
    Private {
        /// The handshake must resume the control connection's TLS session; a data connection
        /// that does not ends the transfer with [`TransferError::Tls`].
        require_session_reuse: bool,
    },
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
    /// The TLS handshake on the control connection finished (or failed: the runtime closes the
    /// connection after reporting it).
    TlsEstablished(Result<TlsInfo, String>),
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

/// A logged-in user as the runtime's user store describes them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Account {
    /// The name to show (in STAT, logs).
    pub name: String,
    /// Logged in as anonymous.
    pub anonymous: bool,
    /// May create, change and delete files and directories.
    pub write: bool,
}

impl Account {
    /// A named account with write permission.
    pub fn new(name: impl Into<String>) -> Account {
        Account {
            name: name.into(),
            anonymous: false,
            write: true,
        }
    }

    /// The anonymous account: read-only.
    pub fn anonymous() -> Account {
        Account {
            name: "anonymous".into(),
            anonymous: true,
            write: false,
        }
    }
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

/// A transfer that did not complete.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransferError {
    /// The data connection could not be opened (passive accept timed out, active connect
    /// refused, ...). Reply 425.
    DataConnection(String),
    /// The data connection broke or stalled mid-transfer. Reply 426.
    ConnectionLost(String),
    /// Stopped by ABOR. Reply 426.
    Aborted,
    /// The file could not be opened, read or written. Reply 550/552/553 before the transfer
    /// starts, 451/452 after.
    Storage(StorageError),
    /// The TLS handshake on the data connection failed, or did not resume the control
    /// connection's session when that is required. Reply 522.
    Tls(String),
}

impl fmt::Display for TransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransferError::DataConnection(s) => write!(f, "data connection failed: {s}"),
            TransferError::ConnectionLost(s) => write!(f, "data connection lost: {s}"),
            TransferError::Aborted => f.write_str("aborted"),
            TransferError::Storage(e) => write!(f, "{e}"),
            TransferError::Tls(s) => write!(f, "data connection TLS failed: {s}"),
        }
    }
}
