//! TLS for FTPS (RFC 4217): certificates, keys and the rustls configurations the control and
//! data connections use. This module owns the TLS material and the policy rustls enforces
//! (protocol versions, client certificates, session resumption); it opens no socket and runs no
//! handshake — the connection driver does that with the configs it gets here.
//!
//! # Using it
//! ```text
//! let ctx = TlsContext::load(&settings)?;            // or TlsContext::self_signed_in(dir)?
//! let _watcher = ctx.watch(WatchOptions::default())?; // reload on file change / SIGHUP
//! // per control connection (AUTH TLS, or accept on the implicit port):
//! let control = ctx.control(client_ip);
//! let conn = rustls::ServerConnection::new(control.config())?;
//! //   ... handshake; identity = ctx.client_identity(&conn) ...
//! control.logged_in(&user);                          // and control.logged_out() when it ends
//! // per data connection of that control connection (PROT P):
//! let data = ctx.data(&control, reuse, Some(&user), server_sends);
//! let conn = rustls::ServerConnection::new(data.config())?;
//! //   ... handshake; if reuse.required() && !data_handshake_resumed(&conn) { refuse }
//! //   ... then data.verdict(Some(&user)): Own/Sibling go on, Wait asks again, Refuse refuses
//! ```
//!
//! # Decisions
//! - **Versions**: TLS 1.3 and 1.2, or 1.3 only ([`MinTlsVersion`]); never 1.0/1.1 (RFC 8996).
//!   Cipher suites are rustls' defaults with the *ring* provider.
//! - **Data connections must resume a session of their client** (vsftpd's
//!   `require_ssl_reuse`, widened to the client's other control connections): every control
//!   connection gets its own session store and ticket key, and a data connection's handshake
//!   can find only its own control connection's sessions and, under the default
//!   [`wharf_core::SessionReuse::SameClient`], those of the other control connections of the
//!   same logged-in user from the same address (`tls/resume.rs` explains why "resumed" then
//!   means "resumed a session of this client"). TLS 1.2 resumes by session id or by ticket (Go
//!   clients such as rclone resume only by ticket), TLS 1.3 by ticket (stateless, reusable by
//!   every data connection). A session from another client, or from an earlier run, cannot
//!   resume. SNI must be the same on the data connection as on the control one (rustls
//!   checks it); clients that connect by the same host name do that.
//! - **An upload's data connection sends nothing the client does not read**: no TLS 1.3
//!   session ticket (a client that only uploads never reads it, and its close would then reset
//!   the connection and destroy the end of the upload). Downloads and listings get one.
//! - **Reload**: the certificate and key live in a resolver shared by every config, behind a
//!   lock; [`TlsContext::reload`] swaps them (and rebuilds the client verifier from the CA
//!   bundle) only when everything loaded and matched. Handshakes already done keep their
//!   certificate; a control connection's data channels resume with the session they have.
//! - **Client certificates**: `request` asks for one and verifies it if sent; `require` refuses
//!   handshakes without a valid one. Both verify against `client_ca_path` only (webpki). The
//!   user name comes from the field [`ClientIdentitySource`] names.
//! - **Keys**: PKCS#8, PKCS#1 (RSA), SEC1 (EC) PEM, and encrypted PKCS#8 (PBES2 with PBKDF2
//!   or scrypt, AES-CBC or 3DES-CBC). OpenSSL's legacy `Proc-Type: 4,ENCRYPTED` keys and PBES1
//!   are refused with the `openssl pkcs8` command that converts them.

mod cache;
mod error;
mod identity;
mod material;
mod resume;
mod self_signed;
mod watch;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::server::{
    ClientHello, ProducesTickets, ResolvesServerCert, StoresServerSessions, WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::{HandshakeKind, ServerConfig, ServerConnection, SupportedProtocolVersion};

pub use error::{TlsError, TlsErrorKind};
pub use identity::{identity_from_certificate, ClientIdentitySource, MAX_IDENTITY};
pub use resume::{ControlSessions, Registration, Verdict, ENDED_GRACE};
pub use self_signed::{ensure_self_signed, SelfSigned, CERT_FILE, KEY_FILE, SUBJECT_ALT_NAMES};
pub use watch::{CertWatcher, WatchOptions};

/// The lowest TLS version a client may use. TLS 1.0 and 1.1 are not offered at all (RFC 8996).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MinTlsVersion {
    /// TLS 1.2 and 1.3. Config value `"1.2"`. The default: FileZilla, WinSCP, curl, lftp and
    /// Python all speak 1.3, but some partners' older Java or .NET clients only 1.2.
    #[default]
    Tls12,
    /// TLS 1.3 only. Config value `"1.3"`.
    Tls13,
}

impl FromStr for MinTlsVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s
            .trim()
            .trim_start_matches("TLSv")
            .trim_start_matches("tls")
        {
            "1.2" => Ok(MinTlsVersion::Tls12),
            "1.3" => Ok(MinTlsVersion::Tls13),
            "1.0" | "1" | "1.1" => Err(format!(
                "TLS {s} is not supported: TLS 1.0 and 1.1 are deprecated (RFC 8996); use \"1.2\" \
                 or \"1.3\""
            )),
            _ => Err(format!(
                "unknown TLS version \"{s}\": expected \"1.2\" or \"1.3\""
            )),
        }
    }
}

impl MinTlsVersion {
    fn versions(self) -> &'static [&'static SupportedProtocolVersion] {
        static BOTH: [&SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        static ONLY13: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            MinTlsVersion::Tls12 => &BOTH,
            MinTlsVersion::Tls13 => &ONLY13,
        }
    }
}

/// Whether clients are asked for a certificate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientCertMode {
    /// No client certificate is asked for. Config value `off`. The default.
    #[default]
    Off,
    /// Asked for; a client may send none, but one it sends must verify. Config value `request`.
    Request,
    /// Required: a handshake without a certificate that verifies fails. Config value `require`.
    Require,
}

impl FromStr for ClientCertMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(ClientCertMode::Off),
            "request" => Ok(ClientCertMode::Request),
            "require" => Ok(ClientCertMode::Require),
            other => Err(format!(
                "unknown client certificate mode \"{other}\": expected off, request or require"
            )),
        }
    }
}

/// Everything TLS needs from the configuration; plain data that the runtime fills in.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM file with the server certificate first, then any intermediates.
    pub cert_path: PathBuf,
    /// PEM file with the private key: `PRIVATE KEY` (PKCS#8), `RSA PRIVATE KEY` (PKCS#1),
    /// `EC PRIVATE KEY` (SEC1) or `ENCRYPTED PRIVATE KEY` (PKCS#8, PBES2).
    pub key_path: PathBuf,
    /// Password of an encrypted key. Exclusive with `key_password_file`. Never logged.
    pub key_password: Option<String>,
    /// File whose first line is the password of an encrypted key (trailing CR/LF ignored).
    pub key_password_file: Option<PathBuf>,
    /// Lowest TLS version accepted.
    pub min_version: MinTlsVersion,
    /// Whether clients are asked for a certificate.
    pub client_cert: ClientCertMode,
    /// PEM bundle of the CAs that issue client certificates; required unless `client_cert`
    /// is `Off`.
    pub client_ca_path: Option<PathBuf>,
    /// Which certificate field names the user.
    pub client_identity: ClientIdentitySource,
}

impl TlsSettings {
    /// Settings for a certificate and key, with every other field at its default.
    pub fn new(cert_path: impl Into<PathBuf>, key_path: impl Into<PathBuf>) -> TlsSettings {
        TlsSettings {
            cert_path: cert_path.into(),
            key_path: key_path.into(),
            key_password: None,
            key_password_file: None,
            min_version: MinTlsVersion::default(),
            client_cert: ClientCertMode::default(),
            client_ca_path: None,
            client_identity: ClientIdentitySource::default(),
        }
    }
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .field(
                "key_password",
                &self.key_password.as_ref().map(|_| "<redacted>"),
            )
            .field("key_password_file", &self.key_password_file)
            .field("min_version", &self.min_version)
            .field("client_cert", &self.client_cert)
            .field("client_ca_path", &self.client_ca_path)
            .field("client_identity", &self.client_identity)
            .finish()
    }
}

/// The SHA-256 fingerprint of a DER certificate as `openssl x509 -fingerprint -sha256` prints
/// it: upper-case hex bytes separated by colons.
pub fn fingerprint_sha256(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = String::with_capacity(95);
    for (i, b) in digest.as_ref().iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&format!("{b:02X}"));
    }
    out
}

/// True when a finished data-channel handshake resumed a session — for a config from
/// [`TlsContext::data`], a session of that control connection or, as its
/// [`wharf_core::SessionReuse`] allows, of another of the same client. False while the
/// handshake is still running, and for any full handshake.
pub fn data_handshake_resumed(conn: &ServerConnection) -> bool {
    !conn.is_handshaking() && conn.handshake_kind() == Some(HandshakeKind::Resumed)
}

/// The current certificate and key, swapped by [`TlsContext::reload`]; every handshake asks
/// it for the key to use, so new handshakes see a reload at once.
#[derive(Debug)]
struct CurrentCert {
    current: RwLock<(Arc<CertifiedKey>, String)>,
}

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().0))
    }
}

/// The server's TLS state: material, policy, and the configs handed to connections.
/// Cheap to clone (one `Arc`); share it between threads.
#[derive(Clone)]
pub struct TlsContext {
    inner: Arc<Inner>,
}

struct Inner {
    settings: TlsSettings,
    provider: Arc<CryptoProvider>,
    cert: Arc<CurrentCert>,
    /// Template for [`TlsContext::control`]; rebuilt by reload (client CA bundle).
    base: RwLock<Arc<ServerConfig>>,
    /// The protected control connections of each client address (see `resume`).
    clients: Arc<resume::Clients>,
}

/// The TLS of one control connection: the configuration its handshake used (and its data
/// connections start from), what its sessions can be resumed from, and its entry among its
/// client's control connections (whose data connections may resume each other's sessions).
#[derive(Debug)]
pub struct ControlTls {
    config: Arc<ServerConfig>,
    sessions: Arc<ControlSessions>,
    registration: Registration,
}

impl ControlTls {
    /// The configuration for the control connection's handshake.
    pub fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.config)
    }

    /// The control connection logged in as `user`.
    pub fn logged_in(&self, user: &str) {
        self.registration.logged_in(user);
    }

    /// The control connection's login ended (logout, REIN, USER for someone else).
    pub fn logged_out(&self) {
        self.registration.logged_out();
    }
}

/// The TLS configuration of one data connection (see [`TlsContext::data`]).
#[derive(Debug)]
pub struct DataTls {
    config: Arc<ServerConfig>,
    sessions: Arc<resume::DataSessions>,
}

impl DataTls {
    /// The configuration for the data connection's handshake.
    pub fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.config)
    }

    /// After a resumed handshake: whether the session vouches for `user`'s data (see
    /// [`Verdict`]).
    pub fn verdict(&self, user: Option<&str>) -> Verdict {
        self.sessions.verdict(user)
    }
}

impl fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsContext")
            .field("settings", &self.inner.settings)
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl TlsContext {
    /// Load the certificate chain, key and (if client certificates are on) CA bundle the
    /// settings name, check that the key matches the certificate, and build the rustls
    /// configuration. Errors name the file at fault and the reason.
    pub fn load(settings: &TlsSettings) -> Result<TlsContext, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let loaded = material::load_certified_key(settings, &provider)?;
        let cert = Arc::new(CurrentCert {
            current: RwLock::new((loaded.certified, loaded.fingerprint)),
        });
        let base = build_base(settings, &provider, &cert)?;
        Ok(TlsContext {
            inner: Arc::new(Inner {
                settings: settings.clone(),
                provider,
                cert,
                base: RwLock::new(Arc::new(base)),
                clients: Arc::new(resume::Clients::default()),
            }),
        })
    }

    /// The quick-start certificate: generate a self-signed certificate and key in `dir` on
    /// first use (see [`ensure_self_signed`]), reuse them afterwards, and load them with
    /// default settings. `dir` must not be inside an FTP user's root. For non-default
    /// settings, call [`ensure_self_signed`] and [`TlsContext::load`] yourself.
    pub fn self_signed_in(dir: &Path) -> Result<(TlsContext, SelfSigned), TlsError> {
        let made = ensure_self_signed(dir)?;
        let ctx = TlsContext::load(&TlsSettings::new(&made.cert_path, &made.key_path))?;
        Ok((ctx, made))
    }

    /// The TLS of one new control connection from `ip`, plain (after `AUTH TLS`) or implicit:
    /// a session store and ticket key of its own (what [`data_handshake_resumed`] relies on),
    /// registered among the client's control connections until it is dropped.
    pub fn control(&self, ip: IpAddr) -> ControlTls {
        let base = Arc::clone(&self.inner.base.read());
        let mut config = ServerConfig::clone(&base);
        let sessions = Arc::new(ControlSessions::new());
        config.session_storage = Arc::clone(&sessions) as Arc<dyn StoresServerSessions>;
        config.ticketer = Arc::clone(&sessions) as Arc<dyn ProducesTickets>;
        let registration = self.inner.clients.register(&sessions, ip);
        ControlTls {
            config: Arc::new(config),
            sessions,
            registration,
        }
    }

    /// The TLS configuration of one data connection of `control`'s connection, logged in as
    /// `user`: it resumes the sessions `reuse` allows (check [`DataTls::verdict`] after the
    /// handshake). It sends a TLS 1.3 session ticket only when the server sends the data
    /// (`server_sends`: a download or a listing, which the client reads), never on an upload
    /// (see `resume`); clients that use a ticket once (rustls') get a new one with each
    /// download.
    pub fn data(
        &self,
        control: &ControlTls,
        reuse: wharf_core::SessionReuse,
        user: Option<&str>,
        server_sends: bool,
    ) -> DataTls {
        let siblings = resume::siblings_of(reuse, &control.registration, user);
        let sessions = Arc::new(resume::DataSessions::new(
            Arc::clone(&control.sessions),
            siblings,
        ));
        let mut config = ServerConfig::clone(&control.config);
        config.session_storage = Arc::clone(&sessions) as Arc<dyn StoresServerSessions>;
        config.ticketer = Arc::clone(&sessions) as Arc<dyn ProducesTickets>;
        config.send_tls13_tickets = usize::from(server_sends);
        DataTls {
            config: Arc::new(config),
            sessions,
        }
    }

    /// Reload the certificate, key, password and CA bundle from the files in the settings.
    /// On success, new handshakes use the new material; on error nothing changes (the caller
    /// logs the error). Connections already established are not affected either way.
    pub fn reload(&self) -> Result<(), TlsError> {
        let inner = &self.inner;
        let loaded = material::load_certified_key(&inner.settings, &inner.provider)?;
        let base = build_base(&inner.settings, &inner.provider, &inner.cert)?;
        *inner.cert.current.write() = (loaded.certified, loaded.fingerprint);
        *inner.base.write() = Arc::new(base);
        Ok(())
    }

    /// SHA-256 fingerprint (`AA:BB:...`) of the certificate new handshakes get.
    pub fn fingerprint(&self) -> String {
        self.inner.cert.current.read().1.clone()
    }

    /// The settings this context was loaded from.
    pub fn settings(&self) -> &TlsSettings {
        &self.inner.settings
    }

    /// The user name the client's verified certificate maps to, per `client_identity`.
    /// `None` when client certificates are off, the client sent none, or the field is absent.
    /// Call it after the handshake of a connection made from one of this context's configs.
    pub fn client_identity(&self, conn: &ServerConnection) -> Option<String> {
        if self.inner.settings.client_cert == ClientCertMode::Off || conn.is_handshaking() {
            return None;
        }
        let leaf = conn.peer_certificates()?.first()?;
        identity_from_certificate(leaf, self.inner.settings.client_identity)
    }

    /// Start a thread that reloads when the files change (polling every `interval`) and, if
    /// asked, on SIGHUP. Dropping the returned watcher stops it.
    pub fn watch(&self, options: WatchOptions) -> std::io::Result<CertWatcher> {
        watch::spawn(self.clone(), options)
    }

    fn watched_paths(&self) -> Vec<PathBuf> {
        material::watched_paths(&self.inner.settings)
    }
}

fn build_base(
    settings: &TlsSettings,
    provider: &Arc<CryptoProvider>,
    cert: &Arc<CurrentCert>,
) -> Result<ServerConfig, TlsError> {
    let builder = ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_protocol_versions(settings.min_version.versions())
        .map_err(|e| TlsError::new(None, TlsErrorKind::Rustls(e.to_string())))?;
    let builder = match settings.client_cert {
        ClientCertMode::Off => {
            if let Some(ca) = &settings.client_ca_path {
                log::warn!(
                    "{}: client CA bundle ignored: client certificates are off",
                    ca.display()
                );
            }
            builder.with_no_client_auth()
        }
        mode => {
            let ca = settings.client_ca_path.as_deref().ok_or_else(|| {
                TlsError::new(
                    None,
                    TlsErrorKind::Settings(format!(
                        "client certificates are set to {} but no client CA bundle \
                         (client_ca_path) is given",
                        if mode == ClientCertMode::Require {
                            "require"
                        } else {
                            "request"
                        }
                    )),
                )
            })?;
            let roots = material::load_ca_bundle(ca)?;
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider));
            if mode == ClientCertMode::Request {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::at(ca, TlsErrorKind::Rustls(e.to_string())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::clone(cert) as Arc<dyn ResolvesServerCert>);
    // One ticket per control handshake is enough: TLS 1.3 tickets are stateless and every data
    // connection may resume with the same one (data connections send none; see `resume`).
    config.send_tls13_tickets = 1;
    // The template must never be used for a connection: its store is replaced per control
    // connection. Make misuse fail closed (no resumption) rather than share a store.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok(config)
}
