//! Protocol versions, and which TLS sessions a data connection may resume (rustls, Python's
//! `ssl`, `openssl s_client`).

use super::*;

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
