//! FTPS end to end: the real `wharf` binary on loopback with real TLS clients — curl (explicit
//! and implicit), lftp, Python's `ftplib.FTP_TLS` (tests/e2e/ftps_client.py) and `openssl
//! s_client` — plus certificates made with the `openssl` command (encrypted keys, reloads, a
//! client CA). Clients verify the server's certificate (the self-signed one is valid for
//! 127.0.0.1) unless a test says otherwise.
//!
//! A missing client program skips a test, except under `CI=true`, where it fails it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use wharf_tests::e2e::{
    assert_same_bytes, assert_same_tree, client_script, python_scenario, random_bytes, read_file,
    require, run_client, write_file, ClientOutput, Ctrl, Server, ServerOptions, TempDir, PASSWORD,
    USER,
};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

// ----- helpers --------------------------------------------------------------------------------

const SCRIPT: &str = "ftps_client.py";

fn script() -> PathBuf {
    client_script(SCRIPT)
}

fn p(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// Runs `openssl` with `args`; panics with its output unless it succeeds.
fn openssl(args: &[&str]) -> ClientOutput {
    let out = run_client(Command::new("openssl").args(args), Duration::from_secs(60));
    out.assert_success(&format!("openssl {}", args.join(" ")));
    out
}

/// A self-signed ECDSA P-256 certificate for 127.0.0.1 and localhost, made by openssl.
fn make_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}-cert.pem"));
    let key = dir.join(format!("{name}-key.pem"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        p(&key),
        "-out",
        p(&cert),
        "-days",
        "30",
        "-subj",
        &format!("/CN={name}"),
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ]);
    (cert, key)
}

/// `openssl x509 -fingerprint -sha256` of a PEM certificate: `AA:BB:...`.
fn fingerprint_of(cert: &Path) -> String {
    let out = openssl(&["x509", "-in", p(cert), "-noout", "-fingerprint", "-sha256"]);
    out.stdout
        .trim()
        .split_once('=')
        .map(|(_, f)| f.trim().to_string())
        .unwrap_or_else(|| panic!("no fingerprint in {:?}", out.stdout))
}

/// `openssl s_client -starttls ftp` to the server's control port, verifying with `cafile`.
fn s_client_starttls(server: &Server, cafile: &Path, extra: &[&str]) -> ClientOutput {
    run_client(
        Command::new("openssl")
            .args(["s_client", "-starttls", "ftp", "-connect"])
            .arg(server.addr().to_string())
            .args(["-CAfile", p(cafile)])
            .args(extra),
        Duration::from_secs(30),
    )
}

/// The certificate a server presents to a new connection, as `openssl x509` fingerprints it.
fn presented_fingerprint(server: &Server, cafile: &Path, dir: &Path) -> String {
    let out = s_client_starttls(server, cafile, &[]);
    let pem_start = out
        .stdout
        .find("-----BEGIN CERTIFICATE-----")
        .unwrap_or_else(|| panic!("no certificate in s_client's output:\n{}", out.stdout));
    let end_marker = "-----END CERTIFICATE-----";
    let pem_end = out.stdout[pem_start..]
        .find(end_marker)
        .map(|i| pem_start + i + end_marker.len())
        .expect("end of the certificate");
    let file = dir.join("presented.pem");
    write_file(
        &file,
        format!("{}\n", &out.stdout[pem_start..pem_end]).as_bytes(),
    );
    fingerprint_of(&file)
}

/// curl with a deadline; `args` after the common ones.
fn curl(args: &[&str]) -> ClientOutput {
    run_client(
        Command::new("curl")
            .args(["-sS", "--max-time", "60"])
            .args(args),
        CLIENT_TIMEOUT,
    )
}

/// Runs one scenario of ftps_client.py; panics with the client's output unless it passed.
fn python(server: &Server, scenario: &str, cafile: &Path, extra: &[&str]) -> String {
    let mut args = vec![cafile.as_os_str()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    python_scenario(
        SCRIPT,
        server,
        scenario,
        (USER, PASSWORD),
        &args,
        Duration::from_secs(180),
    )
}

/// Waits (bounded) until the server's log holds `needle`.
fn wait_for_log(server: &Server, needle: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if server.log().contains(needle) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the server's log never said {needle:?} within {limit:?}");
}

/// The transfer log lines of the server for `cmd path`.
fn transfer_lines(server: &Server, cmd: &str, path: &str) -> Vec<String> {
    let needle = format!("cmd={cmd} path={path} ");
    server
        .log()
        .lines()
        .filter(|l| l.contains(" transfer ") && l.contains(&needle))
        .map(String::from)
        .collect()
}

// ----- curl -----------------------------------------------------------------------------------

#[test]
fn curl_explicit_tls_upload_download_and_list() {
    if !require("curl") {
        return;
    }
    let server = Server::start("tls-curl");
    let cafile = server.self_signed_cert();
    assert!(
        server.fingerprint().is_some(),
        "{:?}",
        server.startup_lines()
    );
    let data = random_bytes(3_000_000, 31);
    let local = server.client_dir().join("up.bin");
    write_file(&local, &data);
    let url = server.url();
    let auth = format!("{USER}:{PASSWORD}");
    let common = ["--ssl-reqd", "--cacert", p(&cafile), "-u", &auth];

    let up = format!("{url}/in/up.bin");
    let mut args = common.to_vec();
    args.extend(["--ftp-create-dirs", "-T", p(&local), &up]);
    curl(&args).assert_success("curl --ssl-reqd upload");
    assert_same_bytes(
        "uploaded",
        &read_file(server.root().join("in/up.bin")),
        &data,
    );

    let back = server.client_dir().join("back.bin");
    let mut args = common.to_vec();
    args.extend(["-o", p(&back), &up]);
    curl(&args).assert_success("curl --ssl-reqd download");
    assert_same_bytes("downloaded", &read_file(&back), &data);

    let dir = format!("{url}/in/");
    let mut args = common.to_vec();
    args.push(&dir);
    let out = curl(&args);
    out.assert_success("curl --ssl-reqd list");
    assert!(out.stdout.contains("up.bin"), "listing: {}", out.stdout);

    // Every data connection was protected, and the uploads ended with close_notify.
    for (cmd, path) in [("STOR", "/in/up.bin"), ("RETR", "/in/up.bin")] {
        let lines = transfer_lines(&server, cmd, path);
        assert!(
            lines
                .iter()
                .any(|l| l.contains("prot=P") && l.ends_with("result=ok")),
            "{cmd} {path}: {lines:?}"
        );
    }
}

#[test]
fn curl_implicit_ftps() {
    if !require("curl") {
        return;
    }
    let server = Server::start_with(
        "tls-implicit",
        ServerOptions::default()
            .arg("--implicit-listen")
            .arg("127.0.0.1:0"),
    );
    let implicit = server
        .implicit_addr()
        .unwrap_or_else(|| panic!("no ftps:// line in {:?}", server.startup_lines()));
    assert!(implicit.ip().is_loopback());
    let data = random_bytes(500_000, 32);
    write_file(server.root().join("report.bin"), &data);
    let cafile = server.self_signed_cert();
    let auth = format!("{USER}:{PASSWORD}");
    let back = server.client_dir().join("report.bin");
    let url = format!("ftps://{implicit}/report.bin");
    curl(&["--cacert", p(&cafile), "-u", &auth, "-o", p(&back), &url])
        .assert_success("curl ftps:// download");
    assert_same_bytes("implicit download", &read_file(&back), &data);
    let list = format!("ftps://{implicit}/");
    let out = curl(&["--cacert", p(&cafile), "-u", &auth, &list]);
    out.assert_success("curl ftps:// list");
    assert!(out.stdout.contains("report.bin"), "{}", out.stdout);
    let lines = transfer_lines(&server, "RETR", "/report.bin");
    assert!(
        lines.iter().any(|l| l.contains("prot=P")),
        "implicit sessions protect data: {lines:?}"
    );
}

#[test]
fn curl_without_tls_is_refused_when_tls_is_required() {
    if !require("curl") {
        return;
    }
    let server = Server::start_with(
        "tls-required",
        ServerOptions::default()
            .arg("--tls-required")
            .arg("accounts")
            .arg("--anonymous"),
    );
    write_file(server.root().join("pub.txt"), b"public\n");
    let auth = format!("{USER}:{PASSWORD}");
    let url = format!("{}/", server.url());
    let out = curl(&["-v", "-u", &auth, &url]);
    assert!(!out.status.success(), "a clear-text login must fail");
    assert!(
        out.stderr.contains(
            "< 530 This server requires TLS for this login: use AUTH TLS first (curl --ssl-reqd"
        ),
        "curl -v shows the documented 530:\n{}",
        out.stderr
    );
    // The same login with TLS works, and anonymous (exempt under `accounts`) works without.
    let cafile = server.self_signed_cert();
    curl(&["--ssl-reqd", "--cacert", p(&cafile), "-u", &auth, &url])
        .assert_success("the same login over TLS");
    let out = curl(&[&format!("{}/pub.txt", server.url())]);
    out.assert_success("anonymous without TLS under tls_required = accounts");
    assert_eq!(out.stdout, "public\n");
}

// ----- lftp -----------------------------------------------------------------------------------

#[test]
fn lftp_mirror_both_ways_over_tls() {
    if !require("lftp") {
        return;
    }
    let server = Server::start_with(
        "tls-lftp",
        ServerOptions::default().arg("--tls-required").arg("all"),
    );
    let src = server.client_dir().join("outgoing");
    write_file(src.join("top.txt"), b"at the top\n");
    write_file(src.join("empty.txt"), b"");
    write_file(src.join("big.bin"), &random_bytes(3_000_000, 33));
    write_file(
        src.join("nested/deeper/file.bin"),
        &random_bytes(123_457, 34),
    );
    write_file(src.join("Grüße/naïve café.txt"), "ünïcødé\n".as_bytes());
    let home = server.dir().join("lftp-home");
    std::fs::create_dir_all(&home).expect("lftp home");
    let lftp = |commands: &str| {
        let script = format!(
            "set net:max-retries 1; set net:timeout 10; set net:reconnect-interval-base 1; \
             set ftp:ssl-force true; set ftp:ssl-protect-data true; \
             set ssl:verify-certificate false; set cmd:fail-exit true; \
             open -u {USER},{PASSWORD} {}; {commands}",
            server.url()
        );
        let out = run_client(
            Command::new("lftp")
                .arg("-c")
                .arg(&script)
                .env("HOME", &home)
                .env("LC_ALL", "C.UTF-8")
                .env("LANG", "C.UTF-8"),
            CLIENT_TIMEOUT,
        );
        out.assert_success(&format!("lftp -c {script:?}"));
    };
    lftp(&format!("mirror -R \"{}\" /uploaded", p(&src)));
    assert_same_tree(&server.root().join("uploaded"), &src);
    let copy = server.client_dir().join("copy");
    lftp(&format!("mirror /uploaded \"{}\"", p(&copy)));
    assert_same_tree(&copy, &src);
    // With tls_required = all nothing could have moved in the clear.
    let log = server.log();
    assert!(!log.contains("prot=C"), "a clear data connection happened");
    assert!(log.contains("prot=P"));
}

// ----- Python ftplib --------------------------------------------------------------------------

#[test]
fn ftplib_20mb_round_trip_reusing_the_control_session() {
    if !require("python3") {
        return;
    }
    let server = Server::start("tls-ftplib-big");
    let data = random_bytes(20 * 1024 * 1024, 35);
    write_file(server.client_dir().join("big.bin"), &data);
    let out = python(&server, "roundtrip", &server.self_signed_cert(), &[]);
    print!("{out}");
    assert_same_bytes(
        "big.bin on the server's disk",
        &read_file(server.root().join("big.bin")),
        &data,
    );
}

#[test]
fn ftplib_without_session_reuse_is_refused_by_default() {
    if !require("python3") {
        return;
    }
    let server = Server::start("tls-ftplib-noreuse");
    let keep = random_bytes(300_000, 36);
    write_file(server.root().join("keep.bin"), &keep);
    write_file(server.client_dir().join("keep.bin"), &keep);
    write_file(
        server.client_dir().join("other.bin"),
        &random_bytes(5000, 37),
    );
    python(&server, "no_reuse_refused", &server.self_signed_cert(), &[]);
    // The refused STOR did not truncate or replace the file.
    assert_same_bytes(
        "keep.bin after a refused STOR",
        &read_file(server.root().join("keep.bin")),
        &keep,
    );
    assert!(server.log().contains("did not resume"), "logged");
}

#[test]
fn ftplib_without_session_reuse_works_when_reuse_is_not_required() {
    if !require("python3") {
        return;
    }
    let server = Server::start_with(
        "tls-ftplib-reuse-off",
        ServerOptions::default().config("require_tls_session_reuse = false\n"),
    );
    let data = random_bytes(400_000, 38);
    write_file(server.client_dir().join("small.bin"), &data);
    python(&server, "no_reuse_allowed", &server.self_signed_cert(), &[]);
    assert_same_bytes(
        "small.bin",
        &read_file(server.root().join("small.bin")),
        &data,
    );
}

#[test]
fn tls_upload_cut_without_close_notify_is_not_complete() {
    if !require("python3") {
        return;
    }
    let server = Server::start("tls-cut");
    python(&server, "cut_upload", &server.self_signed_cert(), &[]);
    // One cut early, one past the first 8 MiB (direct I/O).
    for name in ["cut.bin", "cut-large.bin"] {
        let lines = transfer_lines(&server, "STOR", &format!("/{name}"));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("upload incomplete") && !lines[0].ends_with("result=ok"),
            "the transfer log marks it incomplete: {}",
            lines[0]
        );
        // Atomic uploads: nothing under the final name.
        assert!(
            !server.root().join(name).exists(),
            "{name} exists after a cut upload"
        );
    }
}

#[test]
fn ccc_and_rein_return_the_control_connection_to_the_clear() {
    if !require("python3") {
        return;
    }
    let server = Server::start_with(
        "tls-ccc",
        ServerOptions::default().config("allow_ccc = true\n"),
    );
    write_file(server.root().join("hello.txt"), b"hello\n");
    python(&server, "ccc_rein", &server.self_signed_cert(), &[]);
    let log = server.log();
    assert!(
        log.matches("TLS ended; control connection in the clear")
            .count()
            >= 2,
        "CCC and REIN both exchanged close_notify:\n{log}"
    );
}

#[test]
fn client_certificate_logs_in_its_user() {
    if !require("python3") || !require("openssl") {
        return;
    }
    let pki = TempDir::new("tls-pki");
    let (ca_cert, ca_key) = make_cert(pki.path(), "Wharf Test CA");
    // A client certificate for CN=alice, signed by that CA.
    let key = pki.join("alice-key.pem");
    let csr = pki.join("alice.csr");
    let cert = pki.join("alice-cert.pem");
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        p(&key),
        "-out",
        p(&csr),
        "-subj",
        &format!("/CN={USER}"),
    ]);
    let ext = pki.join("ext.cnf");
    write_file(
        &ext,
        b"basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    );
    openssl(&[
        "x509",
        "-req",
        "-in",
        p(&csr),
        "-CA",
        p(&ca_cert),
        "-CAkey",
        p(&ca_key),
        "-CAcreateserial",
        "-out",
        p(&cert),
        "-days",
        "30",
        "-extfile",
        p(&ext),
    ]);
    let server = Server::start_with(
        "tls-client-cert",
        ServerOptions::default().config(format!(
            "tls_client_cert = \"request\"\ntls_client_ca = \"{}\"\n",
            p(&ca_cert)
        )),
    );
    write_file(server.root().join("hello.txt"), b"hello\n");
    python(
        &server,
        "client_cert",
        &server.self_signed_cert(),
        &[p(&cert), p(&key)],
    );
    assert!(
        server.log().contains("login user=alice") && server.log().contains("by client certificate"),
        "{}",
        server.log()
    );
    // Without a certificate (request, not require), a password login still works.
    let data = random_bytes(1000, 39);
    write_file(server.client_dir().join("small.bin"), &data);
    python(&server, "password_login", &server.self_signed_cert(), &[]);
}

// ----- openssl s_client -----------------------------------------------------------------------

#[test]
fn openssl_starttls_handshake_and_tls_1_1_refused() {
    if !require("openssl") {
        return;
    }
    let server = Server::start("tls-openssl");
    let cafile = server.self_signed_cert();
    let out = s_client_starttls(&server, &cafile, &[]);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains("Verify return code: 0 (ok)"),
        "the certificate verifies against the printed one:\n{text}"
    );
    assert!(
        text.contains("New, TLSv1.3, Cipher is TLS_") || text.contains("New, TLSv1.2, Cipher is"),
        "a cipher was negotiated:\n{text}"
    );
    // The fingerprint the server printed is the one it presents.
    let presented = presented_fingerprint(&server, &cafile, server.dir());
    assert_eq!(Some(presented), server.fingerprint());

    // TLS 1.1 (offered for real: SECLEVEL=0 lets this OpenSSL build send it) is refused.
    let out = s_client_starttls(
        &server,
        &cafile,
        &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
    );
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(!out.status.success(), "TLS 1.1 must fail:\n{text}");
    assert!(
        text.contains("Cipher is (NONE)") || text.contains("alert protocol version"),
        "no TLS 1.1 session:\n{text}"
    );
    wait_for_log(&server, "TLS handshake with", Duration::from_secs(10));
    // The server goes on.
    let mut c = server.login();
    assert_eq!(c.cmd("NOOP").code, 200);
}

#[test]
fn plain_text_on_the_implicit_port_is_dropped() {
    let server = Server::start_with(
        "tls-implicit-plain",
        ServerOptions::default()
            .arg("--implicit-listen")
            .arg("127.0.0.1:0"),
    );
    let implicit = server.implicit_addr().expect("implicit listener");
    for _ in 0..3 {
        let mut c = Ctrl::connect_raw(implicit).expect("connect to the implicit port");
        c.send(&format!("USER {USER}"));
        assert!(
            c.closed_within(Duration::from_secs(10)),
            "the server closes a clear-text client on the implicit port"
        );
    }
    wait_for_log(
        &server,
        "implicit TLS handshake with",
        Duration::from_secs(10),
    );
    // Nothing got stuck: the plain port still serves.
    let mut c = server.login();
    assert_eq!(c.cmd("NOOP").code, 200);
}

// ----- certificates ---------------------------------------------------------------------------

#[test]
fn encrypted_key_loads_with_the_right_password_and_fails_clearly_with_a_wrong_one() {
    if !require("openssl") {
        return;
    }
    let certs = TempDir::new("tls-encrypted-key");
    let (cert, plain_key) = make_cert(certs.path(), "encrypted");
    let key = certs.join("encrypted-key.p8.pem");
    openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-in",
        p(&plain_key),
        "-out",
        p(&key),
        "-passout",
        "pass:correct horse",
    ]);
    assert!(String::from_utf8_lossy(&read_file(&key)).contains("ENCRYPTED PRIVATE KEY"));

    let config = |password: &str| {
        format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\ntls_key_password = \"{password}\"\n",
            p(&cert),
            p(&key)
        )
    };
    let server = Server::start_with(
        "tls-encrypted-ok",
        ServerOptions::default().config(config("correct horse")),
    );
    assert_eq!(server.fingerprint(), Some(fingerprint_of(&cert)));
    drop(server);

    // The same with a wrong password: the server does not start, and says which file and why.
    let dir = TempDir::new("tls-encrypted-wrong");
    let toml = dir.join("wharf.toml");
    write_file(&toml, config("wrong").as_bytes());
    let out = run_client(
        Command::new(wharf_tests::e2e::wharf_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--root"])
            .arg(dir.join("root"))
            .arg("--config")
            .arg(&toml)
            .current_dir(dir.path()),
        Duration::from_secs(30),
    );
    assert!(!out.status.success(), "started with a wrong key password");
    assert!(
        out.stderr.contains(&format!(
            "key 'tls_key': {}: wrong password for the encrypted private key",
            p(&key)
        )),
        "the error names the key file and the reason:\n{}",
        out.stderr
    );
    assert!(!out.stdout.contains("listening on"), "{}", out.stdout);
}

#[test]
fn certificate_reload_reaches_new_connections_while_old_sessions_keep_working() {
    if !require("python3") || !require("openssl") {
        return;
    }
    let certs = TempDir::new("tls-reload-certs");
    let (cert, key) = make_cert(certs.path(), "first");
    let (next_cert, next_key) = make_cert(certs.path(), "second");
    let (first, second) = (fingerprint_of(&cert), fingerprint_of(&next_cert));
    assert_ne!(first, second);
    let server = Server::start_with(
        "tls-reload",
        ServerOptions::default()
            .arg("--cert")
            .arg(p(&cert))
            .arg("--key")
            .arg(p(&key)),
    );
    assert_eq!(server.fingerprint().as_deref(), Some(first.as_str()));
    write_file(server.root().join("hello.txt"), b"hello\n");

    // An FTP_TLS session logs in and waits for us.
    let ready = server.client_dir().join("ready");
    let go = server.client_dir().join("go");
    let mut old_session = Command::new("python3")
        .arg(script())
        .arg("hold_for_reload")
        .arg(server.port().to_string())
        .arg(USER)
        .arg(PASSWORD)
        .arg(server.client_dir())
        .arg(&cert)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start python3");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready.exists() {
        if Instant::now() > deadline || matches!(old_session.try_wait(), Ok(Some(_))) {
            let _ = old_session.kill();
            let out = old_session.wait_with_output().expect("python output");
            panic!(
                "the old session never got ready:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    // Replace both files (each by an atomic rename), then SIGHUP.
    std::fs::copy(&next_key, certs.join("tmp-key")).expect("copy key");
    std::fs::copy(&next_cert, certs.join("tmp-cert")).expect("copy cert");
    std::fs::rename(certs.join("tmp-key"), &key).expect("rename key");
    std::fs::rename(certs.join("tmp-cert"), &cert).expect("rename cert");
    let out = run_client(
        Command::new("kill")
            .arg("-HUP")
            .arg(server.pid().to_string()),
        Duration::from_secs(10),
    );
    out.assert_success("kill -HUP");
    wait_for_log(&server, "TLS certificate reloaded", Duration::from_secs(20));
    assert!(
        server.log().contains(&second),
        "the log names the new fingerprint"
    );

    // A new connection sees the new certificate.
    assert_eq!(
        presented_fingerprint(&server, &next_cert, server.dir()),
        second
    );

    // The old session goes on: NOOP, NLST and RETR (data connections resume its session).
    write_file(&go, b"");
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Ok(Some(status)) = old_session.try_wait() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = old_session.kill();
            break old_session.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = old_session.wait_with_output().expect("python output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        status.success() && stdout.contains("PASS hold_for_reload"),
        "the old session broke after the reload ({status}):\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_certificate_at_start_names_the_file_and_tls_off_means_no_auth() {
    let dir = TempDir::new("tls-bad-cert");
    let cert = dir.join("cert.pem");
    write_file(&cert, b"this is not PEM\n");
    let key = dir.join("key.pem");
    write_file(&key, b"neither is this\n");
    let out = run_client(
        Command::new(wharf_tests::e2e::wharf_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--root"])
            .arg(dir.join("root"))
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .current_dir(dir.path()),
        Duration::from_secs(30),
    );
    assert!(!out.status.success(), "started with a bad certificate");
    assert!(
        out.stderr.contains(p(&cert)) && out.stderr.contains("tls_cert"),
        "the error names the certificate file:\n{}",
        out.stderr
    );

    // --no-tls: no certificate made, AUTH TLS refused with 502, not in FEAT.
    let server = Server::start_with("tls-off", ServerOptions::default().arg("--no-tls"));
    assert_eq!(server.fingerprint(), None);
    assert!(!server.dir().join("wharf-tls").exists());
    let mut c = Ctrl::connect(server.addr());
    let r = c.cmd("AUTH TLS");
    assert_eq!(r.code, 502, "{r}");
    let feat = c.cmd("FEAT");
    assert!(!feat.to_string().contains("AUTH TLS"), "{feat}");
}

#[test]
fn tls_keys_inside_served_folders_and_contradictions_are_refused() {
    let dir = TempDir::new("tls-placement");
    std::fs::create_dir_all(dir.join("data")).expect("mkdir");
    // `wharf serve --root .`: the default tls_dir (./wharf-tls) would be inside the root, where
    // clients could download the self-signed key.
    let out = run_client(
        Command::new(wharf_tests::e2e::wharf_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--root", "."])
            .current_dir(dir.path()),
        Duration::from_secs(30),
    );
    assert!(
        !out.status.success(),
        "started with its TLS key in the root"
    );
    assert!(
        out.stderr.contains("key 'tls_dir'") && out.stderr.contains("inside the root"),
        "{}",
        out.stderr
    );
    assert!(!dir.join("wharf-tls").exists(), "no key was written there");

    // check-config reports every TLS problem at once, each with the file and the key.
    let toml = dir.join("wharf.toml");
    write_file(
        &toml,
        b"root = \"data\"\ntls_dir = \"data/keys\"\ntls_cert = \"c.pem\"\n\
          tls_client_cert = \"require\"\ntls_required_data = \"sometimes\"\n",
    );
    let out = run_client(
        Command::new(wharf_tests::e2e::wharf_bin())
            .arg("check-config")
            .arg(&toml),
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let shown = p(&toml);
    for want in [
        format!("{shown}: key 'tls_key': missing: tls_cert is set"),
        format!("{shown}: key 'tls_client_ca': missing: tls_client_cert = \"require\""),
        format!("{shown}: key 'tls_required_data': 'sometimes': expected none, accounts"),
    ] {
        assert!(
            out.stderr.contains(&want),
            "missing {want:?} in:\n{}",
            out.stderr
        );
    }
    write_file(&toml, b"root = \"data\"\ntls_dir = \"data/keys\"\n");
    let out = run_client(
        Command::new(wharf_tests::e2e::wharf_bin())
            .arg("check-config")
            .arg(&toml),
        Duration::from_secs(30),
    );
    assert!(
        !out.status.success() && out.stderr.contains("key 'tls_dir'"),
        "{}",
        out.stderr
    );
}
