//! Tests of the TLS module against real handshakes on loopback: rustls clients, Python's `ssl`
//! and `openssl s_client`. Keys and certificates are generated at run time (rcgen, openssl);
//! nothing is committed. Under `CI=true` a missing `openssl` or `python3` fails the test.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, ProtocolVersion, RootCertStore};

use super::*;

const IO_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Helpers: temporary directories, external tools, generated certificates.

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "wharf-tls-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether an external program is there. Missing under CI=true is a failure, not a skip.
fn have(program: &str) -> bool {
    let arg = if program == "openssl" {
        "version"
    } else {
        "--version"
    };
    let found = Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{program} is required for this test (CI=true): install it"
        );
        eprintln!("SKIPPED: {program} not found");
    }
    found
}

/// Run openssl with arguments; panic with its stderr if it fails.
fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A P-256 key in SEC1 form (`BEGIN EC PRIVATE KEY`) at `out`.
fn openssl_ec_key(out: &Path) {
    openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        p(out),
    ]);
}

/// `key` as PKCS#8 at `out`: encrypted with `cipher` (openssl pkcs8 options such as
/// `["-v2", "aes-256-cbc"]`) under `password`, or in the clear when `password` is `None`.
fn openssl_pkcs8(key: &Path, out: &Path, cipher: &[&str], password: Option<&str>) {
    let pass = password.map(|p| format!("pass:{p}"));
    let mut args = vec!["pkcs8", "-topk8"];
    args.extend_from_slice(cipher);
    args.extend_from_slice(&["-in", p(key), "-out", p(out)]);
    match &pass {
        Some(pass) => args.extend_from_slice(&["-passout", pass]),
        None => args.push("-nocrypt"),
    }
    openssl(&args);
}

/// `openssl req -x509` for a server (end-entity) certificate: by default it makes a CA
/// certificate, which webpki rightly refuses as a server's.
fn openssl_self_signed(dir: &TempDir, key: &Path, cert: &Path) {
    let config = dir.file("req.cnf");
    std::fs::write(
        &config,
        "[req]\ndistinguished_name = dn\nx509_extensions = ext\nprompt = no\n\
         [dn]\nCN = localhost\n\
         [ext]\nbasicConstraints = critical,CA:FALSE\nsubjectAltName = DNS:localhost\n",
    )
    .unwrap();
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        p(key),
        "-config",
        p(&config),
        "-days",
        "2",
        "-out",
        p(cert),
    ]);
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A self-signed certificate for localhost / 127.0.0.1 made by rcgen.
struct Pair {
    cert_pem: String,
    key_pem: String,
    cert_der: CertificateDer<'static>,
}

fn rcgen_pair(cn: &str) -> Pair {
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Pair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_der: cert.der().clone(),
    }
}

/// Write a pair as `NAME-cert.pem` / `NAME-key.pem` and return settings for it.
fn write_pair(dir: &TempDir, name: &str, pair: &Pair) -> TlsSettings {
    let cert = dir.file(&format!("{name}-cert.pem"));
    let key = dir.file(&format!("{name}-key.pem"));
    std::fs::write(&cert, &pair.cert_pem).unwrap();
    std::fs::write(&key, &pair.key_pem).unwrap();
    TlsSettings::new(cert, key)
}

/// Replace a file's content atomically (new inode), as a deploy script or certbot would.
fn replace_file(path: &Path, content: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// A loopback TLS echo server: the N-th accepted connection uses the N-th config; each one
// reports its handshake, then echoes until EOF or a line "bye".

#[derive(Debug)]
struct Report {
    kind: Option<HandshakeKind>,
    resumed: bool,
    version: Option<ProtocolVersion>,
    identity: Option<String>,
    error: Option<String>,
}

struct Server {
    addr: SocketAddr,
    reports: mpsc::Receiver<(usize, Report)>,
    early: RefCell<HashMap<usize, Report>>,
}

impl Server {
    fn start(ctx: &TlsContext, configs: Vec<Arc<ServerConfig>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, reports) = mpsc::channel();
        let ctx = ctx.clone();
        thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            for (index, config) in configs.into_iter().enumerate() {
                let stream = loop {
                    match listener.accept() {
                        Ok((s, _)) => break s,
                        Err(_) if Instant::now() < deadline => {
                            thread::sleep(Duration::from_millis(5))
                        }
                        Err(_) => return,
                    }
                };
                let (tx, ctx) = (tx.clone(), ctx.clone());
                thread::spawn(move || serve_one(index, stream, config, &ctx, &tx));
            }
        });
        Server {
            addr,
            reports,
            early: RefCell::default(),
        }
    }

    /// The report of the connection accepted `index`-th (reports may arrive in any order).
    fn report(&self, index: usize) -> Report {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            if let Some(r) = self.early.borrow_mut().remove(&index) {
                return r;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let (i, r) = self
                .reports
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no handshake report for connection {index}"));
            self.early.borrow_mut().insert(i, r);
        }
    }
}

fn serve_one(
    index: usize,
    mut sock: TcpStream,
    config: Arc<ServerConfig>,
    ctx: &TlsContext,
    tx: &mpsc::Sender<(usize, Report)>,
) {
    sock.set_nonblocking(false).unwrap();
    sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    sock.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut conn = ServerConnection::new(config).unwrap();
    let mut result = Ok(());
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut sock) {
            result = Err(e.to_string());
            break;
        }
    }
    let report = Report {
        kind: conn.handshake_kind(),
        resumed: data_handshake_resumed(&conn),
        version: conn.protocol_version(),
        identity: ctx.client_identity(&conn),
        error: result.err(),
    };
    let failed = report.error.is_some();
    let _ = tx.send((index, report));
    if failed {
        return;
    }
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    let mut buf = [0u8; 4096];
    loop {
        match tls.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tls.write_all(&buf[..n]).is_err() {
                    break;
                }
                if buf[..n].ends_with(b"bye\n") {
                    break;
                }
            }
        }
    }
    conn.send_close_notify();
    let _ = conn.complete_io(&mut sock);
}

// ---------------------------------------------------------------------------------------------
// A rustls client.

fn client_config(
    trusted: &[CertificateDer<'static>],
    version: &'static SupportedProtocolVersion,
    resumption: bool,
    auth: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in trusted {
        roots.add(cert.clone()).unwrap();
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots);
    let mut config = match auth {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    if !resumption {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Arc::new(config)
}

struct Client {
    conn: ClientConnection,
    sock: TcpStream,
}

impl Client {
    fn connect(addr: SocketAddr, config: &Arc<ClientConfig>, name: &str) -> Result<Client, String> {
        let sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        sock.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let name = ServerName::try_from(name.to_string()).unwrap();
        let conn = ClientConnection::new(Arc::clone(config), name).unwrap();
        let mut client = Client { conn, sock };
        while client.conn.is_handshaking() {
            client
                .conn
                .complete_io(&mut client.sock)
                .map_err(|e| e.to_string())?;
        }
        // TLS 1.3 reports a missing/rejected client certificate only after the handshake:
        // one round trip makes the result visible here.
        client.ping("hello")?;
        Ok(client)
    }

    /// Send a line and read the echo (which also processes session tickets).
    fn ping(&mut self, line: &str) -> Result<String, String> {
        let mut tls = rustls::Stream::new(&mut self.conn, &mut self.sock);
        tls.write_all(format!("{line}\n").as_bytes())
            .map_err(|e| e.to_string())?;
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while !got.ends_with(b"\n") {
            match tls.read(&mut buf) {
                Ok(0) => return Err("connection closed".into()),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(String::from_utf8_lossy(&got).trim_end().to_string())
    }

    fn resumed(&self) -> bool {
        self.conn.handshake_kind() == Some(HandshakeKind::Resumed)
    }

    fn server_fingerprint(&self) -> String {
        fingerprint_sha256(&self.conn.peer_certificates().unwrap()[0])
    }

    fn close(mut self) {
        let _ = self.ping("bye");
        self.conn.send_close_notify();
        let _ = self.conn.complete_io(&mut self.sock);
    }
}

// ---------------------------------------------------------------------------------------------
// Settings parsing.

#[test]
fn settings_values_parse_and_old_tls_versions_are_refused_by_name() {
    assert_eq!("1.2".parse(), Ok(MinTlsVersion::Tls12));
    assert_eq!("1.3".parse(), Ok(MinTlsVersion::Tls13));
    assert_eq!("TLSv1.3".parse(), Ok(MinTlsVersion::Tls13));
    for old in ["1.0", "1.1"] {
        let err = old.parse::<MinTlsVersion>().unwrap_err();
        assert!(err.contains("RFC 8996"), "{err}");
    }
    assert!("2".parse::<MinTlsVersion>().is_err());
    assert_eq!("off".parse(), Ok(ClientCertMode::Off));
    assert_eq!("request".parse(), Ok(ClientCertMode::Request));
    assert_eq!("require".parse(), Ok(ClientCertMode::Require));
    assert!("yes".parse::<ClientCertMode>().is_err());
    assert_eq!("cn".parse(), Ok(ClientIdentitySource::CommonName));
    assert_eq!("san-email".parse(), Ok(ClientIdentitySource::SanEmail));
    assert_eq!("san-dns".parse(), Ok(ClientIdentitySource::SanDns));
    assert!("uid".parse::<ClientIdentitySource>().is_err());

    let mut settings = TlsSettings::new("c.pem", "k.pem");
    settings.key_password = Some("hunter2".into());
    let shown = format!("{settings:?}");
    assert!(
        !shown.contains("hunter2") && shown.contains("redacted"),
        "{shown}"
    );
}

// ---------------------------------------------------------------------------------------------
// Loading certificates and keys.

#[test]
fn fingerprint_is_what_openssl_prints() {
    if !have("openssl") {
        return;
    }
    let dir = TempDir::new("fp");
    let settings = write_pair(&dir, "a", &rcgen_pair("fp"));
    let ctx = TlsContext::load(&settings).unwrap();
    let out = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-fingerprint",
            "-sha256",
            "-in",
            p(&settings.cert_path),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let theirs = text.trim().rsplit('=').next().unwrap();
    assert_eq!(ctx.fingerprint(), theirs);
    assert_eq!(ctx.fingerprint().len(), 32 * 3 - 1);
}

/// Generate a key of each supported format with openssl, load it, and serve a handshake.
#[test]
fn every_key_format_loads_and_serves_a_handshake() {
    if !have("openssl") {
        return;
    }
    let dir = TempDir::new("formats");
    let rsa = dir.file("rsa-pkcs8.pem");
    let ec = dir.file("ec-sec1.pem");
    let ed = dir.file("ed25519.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        p(&rsa),
    ]);
    openssl_ec_key(&ec);
    openssl(&["genpkey", "-algorithm", "ed25519", "-out", p(&ed)]);

    let pkcs1 = dir.file("rsa-pkcs1.pem");
    openssl(&["rsa", "-in", p(&rsa), "-traditional", "-out", p(&pkcs1)]);
    let ec_pkcs8 = dir.file("ec-pkcs8.pem");
    openssl_pkcs8(&ec, &ec_pkcs8, &[], None);
    let enc_aes = dir.file("rsa-enc-aes.pem");
    openssl_pkcs8(&rsa, &enc_aes, &["-v2", "aes-256-cbc"], Some("s3cret pass"));
    let enc_scrypt = dir.file("ec-enc-scrypt.pem");
    openssl_pkcs8(&ec, &enc_scrypt, &["-scrypt"], Some("s3cret pass"));
    let enc_3des = dir.file("ec-enc-3des-sha1.pem");
    let des3 = ["-v2", "des3", "-v2prf", "hmacWithSHA1"];
    openssl_pkcs8(&ec, &enc_3des, &des3, Some("s3cret pass"));

    // (key file, key it was derived from, encrypted?, PEM label the file must have)
    let cases = [
        (&rsa, &rsa, false, "BEGIN PRIVATE KEY"),
        (&pkcs1, &rsa, false, "BEGIN RSA PRIVATE KEY"),
        (&ec, &ec, false, "BEGIN EC PRIVATE KEY"),
        (&ec_pkcs8, &ec, false, "BEGIN PRIVATE KEY"),
        (&ed, &ed, false, "BEGIN PRIVATE KEY"),
        (&enc_aes, &rsa, true, "BEGIN ENCRYPTED PRIVATE KEY"),
        (&enc_scrypt, &ec, true, "BEGIN ENCRYPTED PRIVATE KEY"),
        (&enc_3des, &ec, true, "BEGIN ENCRYPTED PRIVATE KEY"),
    ];
    for (key, base, encrypted, label) in cases {
        let text = std::fs::read_to_string(key).unwrap();
        assert!(text.contains(label), "{} should be {label}", key.display());
        let cert = dir.file(&format!(
            "{}.crt",
            base.file_stem().unwrap().to_str().unwrap()
        ));
        if !cert.exists() {
            openssl_self_signed(&dir, base, &cert);
        }
        let mut settings = TlsSettings::new(&cert, key);
        if encrypted {
            settings.key_password = Some("s3cret pass".into());
        }
        let ctx = TlsContext::load(&settings)
            .unwrap_or_else(|e| panic!("{} should load: {e}", key.display()));
        let cert_der = material::load_certificates(&cert).unwrap().remove(0);
        let server = Server::start(&ctx, vec![ctx.control(localhost_ip()).config()]);
        let client = client_config(&[cert_der], &rustls::version::TLS13, true, None);
        let c = Client::connect(server.addr, &client, "localhost")
            .unwrap_or_else(|e| panic!("handshake with {}: {e}", key.display()));
        assert_eq!(c.server_fingerprint(), ctx.fingerprint());
        assert!(server.report(0).error.is_none());
        c.close();
    }
}

#[test]
fn encrypted_key_password_errors_are_clear() {
    if !have("openssl") {
        return;
    }
    let dir = TempDir::new("enc");
    let key = dir.file("plain.pem");
    let enc = dir.file("key.pem");
    let cert = dir.file("cert.pem");
    openssl_ec_key(&key);
    openssl_self_signed(&dir, &key, &cert);
    openssl_pkcs8(&key, &enc, &["-v2", "aes-256-cbc"], Some("right"));
    let mut settings = TlsSettings::new(&cert, &enc);

    settings.key_password = Some("wrong".into());
    let err = TlsContext::load(&settings).unwrap_err();
    assert!(matches!(err.kind(), TlsErrorKind::WrongPassword), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: wrong password for the encrypted private key",
            enc.display()
        )
    );

    settings.key_password = None;
    let err = TlsContext::load(&settings).unwrap_err();
    assert!(
        matches!(err.kind(), TlsErrorKind::PasswordRequired),
        "{err}"
    );
    assert!(err.to_string().starts_with(&format!("{}: ", enc.display())));
    assert!(err.to_string().contains("key_password_file"), "{err}");

    let pass_file = dir.file("pass.txt");
    std::fs::write(&pass_file, "right\n").unwrap();
    settings.key_password_file = Some(pass_file.clone());
    TlsContext::load(&settings).expect("password from file, newline stripped");
    std::fs::write(&pass_file, "right\r\nsecond line ignored\n").unwrap();
    TlsContext::load(&settings).expect("first line of the password file");
    std::fs::write(&pass_file, "wrong\n").unwrap();
    let err = TlsContext::load(&settings).unwrap_err();
    assert!(matches!(err.kind(), TlsErrorKind::WrongPassword), "{err}");
    std::fs::write(&pass_file, "").unwrap();
    let err = TlsContext::load(&settings).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: the password file is empty", pass_file.display())
    );
    settings.key_password = Some("right".into());
    let err = TlsContext::load(&settings).unwrap_err();
    assert!(err.to_string().contains("not both"), "{err}");

    // OpenSSL's legacy encrypted PEM is refused with the command that converts it.
    let legacy = dir.file("legacy.pem");
    openssl(&[
        "ec",
        "-in",
        p(&key),
        "-aes256",
        "-passout",
        "pass:right",
        "-out",
        p(&legacy),
    ]);
    assert!(std::fs::read_to_string(&legacy)
        .unwrap()
        .contains("Proc-Type: 4,ENCRYPTED"));
    let mut settings = TlsSettings::new(&cert, &legacy);
    settings.key_password = Some("right".into());
    let err = TlsContext::load(&settings).unwrap_err();
    assert!(
        matches!(err.kind(), TlsErrorKind::LegacyEncryptedKey),
        "{err}"
    );
    assert!(err.to_string().contains("openssl pkcs8 -topk8"), "{err}");
}

#[test]
fn bad_material_errors_name_the_file_and_reason() {
    let dir = TempDir::new("bad");
    let a = write_pair(&dir, "a", &rcgen_pair("a"));
    let b = write_pair(&dir, "b", &rcgen_pair("b"));

    let mismatched = TlsSettings::new(&a.cert_path, &b.key_path);
    let err = TlsContext::load(&mismatched).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: the private key does not match the certificate in {}",
            b.key_path.display(),
            a.cert_path.display()
        )
    );

    let missing = TlsSettings::new(dir.file("nope.pem"), &a.key_path);
    let err = TlsContext::load(&missing).unwrap_err();
    assert!(err
        .to_string()
        .starts_with(&format!("{}: ", dir.file("nope.pem").display())));
    assert!(matches!(err.kind(), TlsErrorKind::Io(_)));

    let swapped = TlsSettings::new(&a.key_path, &a.cert_path);
    let err = TlsContext::load(&swapped).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}: no certificate found (", a.key_path.display())),
        "{err}"
    );
    assert!(err.to_string().contains("swapped"), "{err}");

    let cert_only = TlsSettings::new(&a.cert_path, &a.cert_path);
    let err = TlsContext::load(&cert_only).unwrap_err();
    assert!(err
        .to_string()
        .starts_with(&format!("{}: no private key found", a.cert_path.display())));

    let two_keys = dir.file("two.pem");
    let both = format!(
        "{}{}",
        std::fs::read_to_string(&a.key_path).unwrap(),
        std::fs::read_to_string(&b.key_path).unwrap()
    );
    std::fs::write(&two_keys, both).unwrap();
    let err = TlsContext::load(&TlsSettings::new(&a.cert_path, &two_keys)).unwrap_err();
    assert!(
        matches!(err.kind(), TlsErrorKind::SeveralPrivateKeys(2)),
        "{err}"
    );

    let garbage = dir.file("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let err = TlsContext::load(&TlsSettings::new(&garbage, &a.key_path)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}: ", garbage.display())),
        "{err}"
    );

    let openssh = dir.file("id_ed25519");
    std::fs::write(
        &openssh,
        "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = TlsContext::load(&TlsSettings::new(&a.cert_path, &openssh)).unwrap_err();
    assert!(err.to_string().contains("OPENSSH PRIVATE KEY"), "{err}");

    // A certificate chain file may also carry the key (one combined PEM).
    let combined = dir.file("combined.pem");
    std::fs::write(
        &combined,
        format!(
            "{}{}",
            std::fs::read_to_string(&a.cert_path).unwrap(),
            std::fs::read_to_string(&a.key_path).unwrap()
        ),
    )
    .unwrap();
    TlsContext::load(&TlsSettings::new(&combined, &combined)).expect("combined PEM");

    let mut needs_ca = a.clone();
    needs_ca.client_cert = ClientCertMode::Require;
    let err = TlsContext::load(&needs_ca).unwrap_err();
    assert!(err.to_string().contains("client_ca_path"), "{err}");
    needs_ca.client_ca_path = Some(a.key_path.clone());
    let err = TlsContext::load(&needs_ca).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "{}: no usable CA certificate",
            a.key_path.display()
        )),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Self-signed certificate.

#[test]
fn self_signed_is_generated_once_private_and_reused() {
    let dir = TempDir::new("selfsigned");
    let state = dir.file("state");
    let (ctx, made) = TlsContext::self_signed_in(&state).unwrap();
    assert!(made.created);
    assert_eq!(made.fingerprint, ctx.fingerprint());
    assert_eq!(made.cert_path, state.join(CERT_FILE));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&made.key_path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "key mode {mode:o}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&state).unwrap().collect();
    assert_eq!(
        leftovers.len(),
        2,
        "only the cert and key remain: {leftovers:?}"
    );

    // SANs: localhost, 127.0.0.1, ::1.
    let der = material::load_certificates(&made.cert_path)
        .unwrap()
        .remove(0);
    let cert = <x509_cert::Certificate as pkcs8::der::Decode>::from_der(&der).unwrap();
    let (_, san) = cert
        .tbs_certificate
        .get::<x509_cert::ext::pkix::SubjectAltName>()
        .unwrap()
        .unwrap();
    let names: Vec<String> = san
        .0
        .iter()
        .map(|n| match n {
            x509_cert::ext::pkix::name::GeneralName::DnsName(s) => s.to_string(),
            x509_cert::ext::pkix::name::GeneralName::IpAddress(ip) => {
                format!("{:?}", ip.as_bytes())
            }
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "localhost".to_string(),
            format!("{:?}", [127u8, 0, 0, 1]),
            format!("{:?}", {
                let mut v6 = [0u8; 16];
                v6[15] = 1;
                v6
            })
        ]
    );

    // A client that pins it can connect by name and by IP address.
    let server = Server::start(
        &ctx,
        vec![
            ctx.control(localhost_ip()).config(),
            ctx.control(localhost_ip()).config(),
        ],
    );
    let client = client_config(&[der], &rustls::version::TLS13, false, None);
    Client::connect(server.addr, &client, "localhost")
        .unwrap()
        .close();
    Client::connect(server.addr, &client, "127.0.0.1")
        .unwrap()
        .close();

    // Second start: the same files, the same fingerprint.
    let (again, reused) = TlsContext::self_signed_in(&state).unwrap();
    assert!(!reused.created);
    assert_eq!(again.fingerprint(), ctx.fingerprint());

    // Only one of the two present: refuse rather than overwrite.
    std::fs::remove_file(&made.cert_path).unwrap();
    let err = TlsContext::self_signed_in(&state).unwrap_err();
    assert!(err
        .to_string()
        .starts_with(&format!("{}: missing", made.cert_path.display())));
    assert!(made.key_path.exists());
}

// ---------------------------------------------------------------------------------------------
// Protocol versions.

/// Run `openssl s_client` against the server with extra arguments; return (success, output).
fn s_client(addr: SocketAddr, args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new("timeout")
        .arg("20")
        .arg("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "localhost",
        ])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn tls_1_1_is_refused_and_min_version_is_enforced() {
    if !have("openssl") {
        return;
    }
    let dir = TempDir::new("versions");
    let settings = write_pair(&dir, "v", &rcgen_pair("v"));
    let ctx12 = TlsContext::load(&settings).unwrap();
    let mut only13 = settings.clone();
    only13.min_version = MinTlsVersion::Tls13;
    let ctx13 = TlsContext::load(&only13).unwrap();
    // SECLEVEL=0 lets this OpenSSL build offer TLS 1.1 at all, so the refusal is the server's.
    let old = ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"];

    let server = Server::start(
        &ctx12,
        vec![
            ctx12.control(localhost_ip()).config(),
            ctx12.control(localhost_ip()).config(),
        ],
    );
    let (ok, out) = s_client(server.addr, &old, "");
    assert!(!ok, "TLS 1.1 handshake must fail:\n{out}");
    assert!(
        out.contains("Cipher is (NONE)"),
        "no TLS 1.1 session was set up:\n{out}"
    );
    let report = server.report(0);
    assert!(
        report.error.is_some(),
        "the server saw and refused the TLS 1.1 hello: {report:?}"
    );
    assert!(report.version.is_none());
    let (ok, out) = s_client(server.addr, &["-tls1_2"], "bye\n");
    assert!(ok, "TLS 1.2 works with the default minimum:\n{out}");
    assert_eq!(server.report(1).version, Some(ProtocolVersion::TLSv1_2));

    let server = Server::start(
        &ctx13,
        vec![
            ctx13.control(localhost_ip()).config(),
            ctx13.control(localhost_ip()).config(),
        ],
    );
    let (ok, out) = s_client(server.addr, &["-tls1_2"], "");
    assert!(!ok, "TLS 1.2 refused with min_version 1.3:\n{out}");
    assert!(server.report(0).error.is_some());
    let (ok, out) = s_client(server.addr, &["-tls1_3"], "bye\n");
    assert!(ok, "{out}");
    assert_eq!(server.report(1).version, Some(ProtocolVersion::TLSv1_3));
}

// ---------------------------------------------------------------------------------------------
// Data-channel session reuse.

/// Control connection on config A, three data connections on A resuming its session, one that
/// offers no session, and one on another control connection's config B offering A's session.
fn rustls_resumption(version: &'static SupportedProtocolVersion, expect: ProtocolVersion) {
    let dir = TempDir::new("resume");
    let pair = rcgen_pair("resume");
    let ctx = TlsContext::load(&write_pair(&dir, "r", &pair)).unwrap();
    let a = ctx.control(localhost_ip()).config();
    let b = ctx.control(localhost_ip()).config();
    let configs = vec![
        a.clone(),
        a.clone(),
        a.clone(),
        a.clone(),
        a.clone(),
        b.clone(),
    ];
    let server = Server::start(&ctx, configs);
    let client = client_config(std::slice::from_ref(&pair.cert_der), version, true, None);
    let fresh = client_config(std::slice::from_ref(&pair.cert_der), version, false, None);

    let control = Client::connect(server.addr, &client, "localhost").unwrap();
    let r = server.report(0);
    assert_eq!(
        (r.kind, r.resumed, r.version),
        (Some(HandshakeKind::Full), false, Some(expect))
    );
    for i in 1..=3 {
        let data = Client::connect(server.addr, &client, "localhost").unwrap();
        assert!(data.resumed(), "data connection {i} resumed (client side)");
        let r = server.report(i);
        assert!(
            r.resumed,
            "data connection {i} resumed the control session: {r:?}"
        );
        assert_eq!(r.version, Some(expect));
        data.close();
    }
    let stranger = Client::connect(server.addr, &fresh, "localhost").unwrap();
    assert!(!stranger.resumed());
    let r = server.report(4);
    assert!(!r.resumed && r.kind == Some(HandshakeKind::Full), "{r:?}");
    stranger.close();
    // `client` holds sessions from A; B is another control connection's config.
    let other = Client::connect(server.addr, &client, "localhost").unwrap();
    assert!(!other.resumed());
    assert!(
        !server.report(5).resumed,
        "a session of control A must not resume on B"
    );
    other.close();
    control.close();
}

#[test]
fn rustls_client_resumes_only_its_control_session_tls12() {
    rustls_resumption(&rustls::version::TLS12, ProtocolVersion::TLSv1_2);
}

#[test]
fn rustls_client_resumes_only_its_control_session_tls13() {
    rustls_resumption(&rustls::version::TLS13, ProtocolVersion::TLSv1_3);
}

fn localhost_ip() -> std::net::IpAddr {
    "127.0.0.1".parse().unwrap()
}

/// rclone's pattern: one client session cache for several control connections, so a data
/// connection of control connection B presents a session control connection A got. Accepted
/// for the same user from the same address under `SameClient`; refused under
/// `SameConnection`, for another user and from another address. Each case is a fresh client
/// whose cache holds only A's session (a rustls client uses a TLS 1.3 ticket once).
fn sibling_resumption(version: &'static SupportedProtocolVersion) {
    use wharf_core::SessionReuse;
    let dir = TempDir::new("siblings");
    let pair = rcgen_pair("siblings");
    let ctx = TlsContext::load(&write_pair(&dir, "s", &pair)).unwrap();
    let a = ctx.control(localhost_ip());
    let b = ctx.control(localhost_ip());
    let c = ctx.control(localhost_ip());
    let far = ctx.control("127.0.0.2".parse().unwrap());
    a.logged_in("acme/alice");
    b.logged_in("acme/alice");
    c.logged_in("acme/bob");
    far.logged_in("acme/alice");
    let alice = Some("acme/alice");
    let cases = [
        (
            ctx.data(&b, SessionReuse::SameClient, alice, false),
            true,
            "same client",
        ),
        (
            ctx.data(&b, SessionReuse::SameConnection, alice, false),
            false,
            "strict",
        ),
        (
            ctx.data(&c, SessionReuse::SameClient, Some("acme/bob"), false),
            false,
            "another user",
        ),
        (
            ctx.data(&far, SessionReuse::SameClient, alice, false),
            false,
            "another address",
        ),
    ];
    let configs = cases
        .iter()
        .flat_map(|(data, _, _)| [a.config(), data.config()])
        .collect();
    let server = Server::start(&ctx, configs);
    for (i, (data, accepted, what)) in cases.iter().enumerate() {
        let shared = client_config(std::slice::from_ref(&pair.cert_der), version, true, None);
        let control = Client::connect(server.addr, &shared, "localhost").unwrap();
        assert!(!server.report(2 * i).resumed);
        let conn = Client::connect(server.addr, &shared, "localhost").unwrap();
        assert_eq!(
            server.report(2 * i + 1).resumed,
            *accepted,
            "A's session on a data connection of another control connection: {what}"
        );
        if *accepted {
            assert_eq!(data.verdict(alice), Verdict::Sibling, "{what}");
        }
        conn.close();
        control.close();
    }
}

#[test]
fn a_data_connection_resumes_a_sibling_control_session_tls12() {
    sibling_resumption(&rustls::version::TLS12);
}

#[test]
fn a_data_connection_resumes_a_sibling_control_session_tls13() {
    sibling_resumption(&rustls::version::TLS13);
}

/// Python's ssl, as ftplib.FTP_TLS subclasses do it (`session=control.session`).
const PYTHON_RESUME: &str = r#"
import json, socket, ssl, sys
port, cafile, version = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=cafile)
if version == "1.2":
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
else:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
def connect(session=None):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
    s.sendall(b"ping\n")
    got = b""
    while not got.endswith(b"\n"):
        chunk = s.recv(100)
        if not chunk:
            break
        got += chunk
    assert got == b"ping\n", got
    return s
def once(session):
    s = connect(session)
    reused = s.session_reused
    s.sendall(b"bye\n")
    s.recv(100)
    s.close()
    return reused
control = connect()
out = [control.session_reused, control.version()]
out += [once(control.session) for _ in range(3)]   # data connections of this control
out.append(once(None))                              # no session offered
out.append(once(control.session))                   # accepted by another control connection
control.close()
print(json.dumps(out))
"#;

fn python_resumption(version: &str, expect: ProtocolVersion) {
    if !have("python3") {
        return;
    }
    let dir = TempDir::new("pyresume");
    let (ctx, made) = TlsContext::self_signed_in(&dir.file("state")).unwrap();
    let a = ctx.control(localhost_ip()).config();
    let b = ctx.control(localhost_ip()).config();
    let server = Server::start(&ctx, vec![a.clone(), a.clone(), a.clone(), a.clone(), a, b]);
    let out = Command::new("timeout")
        .args(["60", "python3", "-c", PYTHON_RESUME])
        .arg(server.addr.port().to_string())
        .arg(&made.cert_path)
        .arg(version)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tls_name = if expect == ProtocolVersion::TLSv1_2 {
        "TLSv1.2"
    } else {
        "TLSv1.3"
    };
    assert_eq!(
        stdout.trim(),
        format!(r#"[false, "{tls_name}", true, true, true, false, false]"#),
        "Python's view: control, 3 data with the control session, no session, other control"
    );
    let server_view: Vec<bool> = (0..6).map(|i| server.report(i).resumed).collect();
    assert_eq!(
        server_view,
        [false, true, true, true, false, false],
        "server's view"
    );
}

#[test]
fn python_ssl_resumes_only_its_control_session_tls12() {
    python_resumption("1.2", ProtocolVersion::TLSv1_2);
}

#[test]
fn python_ssl_resumes_only_its_control_session_tls13() {
    python_resumption("1.3", ProtocolVersion::TLSv1_3);
}

fn openssl_resumption(flag: &str) {
    if !have("openssl") {
        return;
    }
    let dir = TempDir::new("sresume");
    let (ctx, made) = TlsContext::self_signed_in(&dir.file("state")).unwrap();
    let a = ctx.control(localhost_ip()).config();
    let b = ctx.control(localhost_ip()).config();
    let server = Server::start(&ctx, vec![a.clone(), a, b]);
    let sess = dir.file("session.pem");
    let ca = made.cert_path.to_str().unwrap().to_string();
    let common = [flag, "-CAfile", &ca, "-ign_eof"];

    let mut args = common.to_vec();
    args.extend(["-sess_out", p(&sess)]);
    let (ok, out) = s_client(server.addr, &args, "bye\n");
    assert!(ok, "{out}");
    assert!(!server.report(0).resumed);
    assert!(sess.exists(), "s_client saved the session");

    let mut args = common.to_vec();
    args.extend(["-sess_in", p(&sess)]);
    let (ok, out) = s_client(server.addr, &args, "bye\n");
    assert!(ok, "{out}");
    assert!(out.contains("Reused,"), "s_client reports reuse:\n{out}");
    assert!(server.report(1).resumed);

    let (ok, out) = s_client(server.addr, &args, "bye\n");
    assert!(ok, "{out}");
    assert!(out.contains("New,") && !out.contains("Reused,"), "{out}");
    assert!(
        !server.report(2).resumed,
        "another control connection's session must not resume"
    );
}

#[test]
fn openssl_sess_in_resumes_only_its_control_session_tls12() {
    openssl_resumption("-tls1_2");
}

#[test]
fn openssl_sess_in_resumes_only_its_control_session_tls13() {
    openssl_resumption("-tls1_3");
}

// ---------------------------------------------------------------------------------------------
// Reload.

#[test]
fn reload_changes_what_new_handshakes_see_and_old_connections_keep_working() {
    let dir = TempDir::new("reload");
    let first = rcgen_pair("first");
    let second = rcgen_pair("second");
    let settings = write_pair(&dir, "live", &first);
    let ctx = TlsContext::load(&settings).unwrap();
    let fp1 = fingerprint_sha256(&first.cert_der);
    let fp2 = fingerprint_sha256(&second.cert_der);
    assert_eq!(ctx.fingerprint(), fp1);

    let control = ctx.control(localhost_ip()).config();
    let later = || ctx.control(localhost_ip()).config();
    let configs = vec![control.clone(), later(), control.clone(), later(), later()];
    // Configs are taken now, but resolve the certificate at handshake time.
    let server = Server::start(&ctx, configs);
    // Two clients (two session stores): one for the old control connection and its data
    // connection, one for the new control connection.
    let both = [first.cert_der.clone(), second.cert_der.clone()];
    let client = client_config(&both, &rustls::version::TLS13, true, None);
    let other_client = client_config(&both, &rustls::version::TLS13, true, None);

    let mut old = Client::connect(server.addr, &client, "localhost").unwrap();
    assert_eq!(old.server_fingerprint(), fp1);
    server.report(0);

    replace_file(&settings.cert_path, &second.cert_pem);
    replace_file(&settings.key_path, &second.key_pem);
    ctx.reload().unwrap();
    assert_eq!(ctx.fingerprint(), fp2);

    let new = Client::connect(server.addr, &other_client, "localhost").unwrap();
    assert_eq!(
        new.server_fingerprint(),
        fp2,
        "a new handshake sees the new certificate"
    );
    server.report(1);
    assert_eq!(
        old.ping("still here").unwrap(),
        "still here",
        "the old session keeps working"
    );
    // A data connection of the old control connection still resumes its session.
    let data = Client::connect(server.addr, &client, "localhost").unwrap();
    assert!(server.report(2).resumed);
    data.close();
    new.close();

    // A bad new key: reload fails naming it, and the current certificate stays.
    std::fs::write(&settings.key_path, first.key_pem.as_bytes()).unwrap();
    let err = ctx.reload().unwrap_err();
    assert!(matches!(err.kind(), TlsErrorKind::KeyMismatch(_)), "{err}");
    std::fs::write(&settings.key_path, "not a key").unwrap();
    let err = ctx.reload().unwrap_err();
    assert!(err
        .to_string()
        .starts_with(&format!("{}: ", settings.key_path.display())));
    assert_eq!(ctx.fingerprint(), fp2);
    let after_failure = Client::connect(server.addr, &other_client, "localhost").unwrap();
    assert_eq!(after_failure.server_fingerprint(), fp2);
    server.report(3);
    after_failure.close();
    assert_eq!(old.ping("and still").unwrap(), "and still");
    old.close();
}

#[test]
fn watcher_reloads_when_files_change_and_on_sighup() {
    let dir = TempDir::new("watch");
    let pairs: Vec<Pair> = (0..3).map(|i| rcgen_pair(&format!("w{i}"))).collect();
    let settings = write_pair(&dir, "w", &pairs[0]);
    let ctx = TlsContext::load(&settings).unwrap();

    {
        let _watcher = ctx
            .watch(WatchOptions {
                interval: Duration::from_millis(50),
                sighup: false,
            })
            .unwrap();
        // Key first: the watcher may see a mismatched pair, fail, log, and keep the old one.
        replace_file(&settings.key_path, &pairs[1].key_pem);
        thread::sleep(Duration::from_millis(120));
        assert_eq!(ctx.fingerprint(), fingerprint_sha256(&pairs[0].cert_der));
        replace_file(&settings.cert_path, &pairs[1].cert_pem);
        let want = fingerprint_sha256(&pairs[1].cert_der);
        wait_until("the watcher to reload", Duration::from_secs(5), || {
            ctx.fingerprint() == want
        });
    }

    #[cfg(unix)]
    {
        let _watcher = ctx
            .watch(WatchOptions {
                interval: Duration::from_secs(3600),
                sighup: true,
            })
            .unwrap();
        replace_file(&settings.cert_path, &pairs[2].cert_pem);
        replace_file(&settings.key_path, &pairs[2].key_pem);
        thread::sleep(Duration::from_millis(300));
        assert_eq!(
            ctx.fingerprint(),
            fingerprint_sha256(&pairs[1].cert_der),
            "no poll within an hour's interval: only SIGHUP may reload"
        );
        signal_hook::low_level::raise(signal_hook::consts::SIGHUP).unwrap();
        let want = fingerprint_sha256(&pairs[2].cert_der);
        wait_until("SIGHUP to reload", Duration::from_secs(5), || {
            ctx.fingerprint() == want
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Client certificates.

struct Pki {
    ca_pem: String,
    ca_cert: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

fn pki(name: &str) -> Pki {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_cert = params.self_signed(&ca_key).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        ca_cert,
        ca_key,
    }
}

fn client_cert(
    pki: &Pki,
    cn: &str,
    email: &str,
    dns: &str,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let mut params = rcgen::CertificateParams::new(vec![dns.to_string()]).unwrap();
    params.subject_alt_names.insert(
        0,
        rcgen::SanType::Rfc822Name(email.to_string().try_into().unwrap()),
    );
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Partner Ltd");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &pki.ca_cert, &pki.ca_key).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (vec![cert.der().clone()], key)
}

#[test]
fn client_certificates_are_verified_and_mapped_to_users() {
    let dir = TempDir::new("clientcert");
    let server_pair = rcgen_pair("server");
    let base = write_pair(&dir, "srv", &server_pair);
    let partners = pki("Partner CA");
    let strangers = pki("Other CA");
    let ca_path = dir.file("client-ca.pem");
    std::fs::write(&ca_path, &partners.ca_pem).unwrap();
    let alice = client_cert(
        &partners,
        "alice",
        "alice@partner.example",
        "alice.partner.example",
    );
    let mallory = client_cert(&strangers, "alice", "alice@partner.example", "x.example");
    let trusted = [server_pair.cert_der.clone()];
    let with = |who: &(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)| {
        client_config(
            &trusted,
            &rustls::version::TLS13,
            true,
            Some((who.0.clone(), who.1.clone_key())),
        )
    };
    let without = client_config(&trusted, &rustls::version::TLS13, true, None);

    for (source, want) in [
        (ClientIdentitySource::CommonName, "alice"),
        (ClientIdentitySource::SanEmail, "alice@partner.example"),
        (ClientIdentitySource::SanDns, "alice.partner.example"),
    ] {
        let mut settings = base.clone();
        settings.client_cert = ClientCertMode::Require;
        settings.client_ca_path = Some(ca_path.clone());
        settings.client_identity = source;
        let ctx = TlsContext::load(&settings).unwrap();
        let control = ctx.control(localhost_ip()).config();
        let server = Server::start(
            &ctx,
            vec![
                control.clone(),
                control,
                ctx.control(localhost_ip()).config(),
                ctx.control(localhost_ip()).config(),
            ],
        );
        let alice_client = with(&alice);
        let c = Client::connect(server.addr, &alice_client, "localhost").unwrap();
        assert_eq!(
            server.report(0).identity.as_deref(),
            Some(want),
            "{source:?}"
        );
        // The data connection resumes, and carries the same verified identity.
        let d = Client::connect(server.addr, &alice_client, "localhost").unwrap();
        let r = server.report(1);
        assert!(r.resumed);
        assert_eq!(r.identity.as_deref(), Some(want));
        d.close();
        c.close();

        assert!(
            Client::connect(server.addr, &without, "localhost").is_err(),
            "require: none sent"
        );
        assert!(server.report(2).error.is_some());
        assert!(
            Client::connect(server.addr, &with(&mallory), "localhost").is_err(),
            "wrong CA"
        );
        assert!(server.report(3).error.is_some());
    }

    let mut settings = base.clone();
    settings.client_cert = ClientCertMode::Request;
    settings.client_ca_path = Some(ca_path.clone());
    let ctx = TlsContext::load(&settings).unwrap();
    let server = Server::start(
        &ctx,
        (0..3)
            .map(|_| ctx.control(localhost_ip()).config())
            .collect(),
    );
    Client::connect(server.addr, &without, "localhost")
        .unwrap()
        .close();
    let r = server.report(0);
    assert!(
        r.error.is_none() && r.identity.is_none(),
        "request: none sent is fine: {r:?}"
    );
    Client::connect(server.addr, &with(&alice), "localhost")
        .unwrap()
        .close();
    assert_eq!(server.report(1).identity.as_deref(), Some("alice"));
    assert!(Client::connect(server.addr, &with(&mallory), "localhost").is_err());
    assert!(
        server.report(2).error.is_some(),
        "request: a certificate sent must verify"
    );

    // Off: no certificate asked for, no identity.
    let ctx = TlsContext::load(&base).unwrap();
    let server = Server::start(&ctx, vec![ctx.control(localhost_ip()).config()]);
    Client::connect(server.addr, &with(&alice), "localhost")
        .unwrap()
        .close();
    assert_eq!(server.report(0).identity, None);
}

#[test]
fn identity_fields_that_cannot_be_user_names_map_to_nobody() {
    let make = |cn: &str| {
        let mut params = rcgen::CertificateParams::new(vec!["dns.example".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    };
    assert_eq!(
        identity_from_certificate(&make("bob"), ClientIdentitySource::CommonName).as_deref(),
        Some("bob")
    );
    assert_eq!(
        identity_from_certificate(&make("bo\r\nb"), ClientIdentitySource::CommonName),
        None
    );
    assert_eq!(
        identity_from_certificate(&make(&"x".repeat(300)), ClientIdentitySource::CommonName),
        None
    );
    assert_eq!(
        identity_from_certificate(&make("bob"), ClientIdentitySource::SanEmail),
        None
    );
    assert_eq!(
        identity_from_certificate(&make("bob"), ClientIdentitySource::SanDns).as_deref(),
        Some("dns.example")
    );
    assert_eq!(
        identity_from_certificate(b"not a certificate", ClientIdentitySource::CommonName),
        None
    );
}
