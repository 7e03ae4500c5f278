//! Settings, certificates and keys: parsing, loading every key format, password errors, bad
//! material, the self-signed certificate.

use super::*;

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
