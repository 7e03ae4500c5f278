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

mod keys;
mod reload;
mod versions;

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

/// The loopback address the test servers listen on.
fn localhost_ip() -> std::net::IpAddr {
    "127.0.0.1".parse().unwrap()
}
