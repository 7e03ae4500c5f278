//! Reloading certificates while connections are open.

use super::*;

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
