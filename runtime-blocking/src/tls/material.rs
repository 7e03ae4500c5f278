//! Reading TLS material from PEM files: certificate chains, private keys (PKCS#8, PKCS#1,
//! SEC1, encrypted PKCS#8), key passwords and client CA bundles.
//!
//! Every error names the file it is about. Nothing here logs a password or key bytes.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use pkcs8::der::Decode;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

use super::error::{TlsError, TlsErrorKind};
use super::TlsSettings;

/// Largest PEM file we read (a CA bundle of a few hundred certificates is well under 1 MiB).
const MAX_PEM_FILE: u64 = 16 * 1024 * 1024;

/// Read a whole file, bounded, naming it in the error.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    let io = |e| TlsError::at(path, TlsErrorKind::Io(e));
    let file = fs::File::open(path).map_err(io)?;
    let mut buf = Vec::new();
    file.take(MAX_PEM_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(io)?;
    if buf.len() as u64 > MAX_PEM_FILE {
        return Err(TlsError::at(path, TlsErrorKind::TooLarge));
    }
    Ok(buf)
}

fn parse_pem(path: &Path, bytes: &[u8]) -> Result<Vec<pem::Pem>, TlsError> {
    pem::parse_many(bytes).map_err(|e| TlsError::at(path, TlsErrorKind::Pem(e.to_string())))
}

/// The labels of PEM sections, for hints in error messages ("found: RSA PRIVATE KEY").
fn labels(sections: &[pem::Pem]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for s in sections {
        if !seen.contains(&s.tag()) {
            seen.push(s.tag());
        }
    }
    seen.join(", ")
}

fn is_private_key_label(tag: &str) -> bool {
    tag.ends_with("PRIVATE KEY")
}

/// The certificates of a PEM file, in file order (leaf first for a chain).
pub(crate) fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let sections = parse_pem(path, &read_file(path)?)?;
    let certs: Vec<CertificateDer<'static>> = sections
        .iter()
        .filter(|s| s.tag() == "CERTIFICATE")
        .map(|s| CertificateDer::from(s.contents().to_vec()))
        .collect();
    if certs.is_empty() {
        let hint = if sections.iter().any(|s| is_private_key_label(s.tag())) {
            "the file holds a private key: are the certificate and key paths swapped?".to_string()
        } else if sections.is_empty() {
            "the file holds no PEM section".to_string()
        } else {
            format!("PEM sections found: {}", labels(&sections))
        };
        return Err(TlsError::at(path, TlsErrorKind::NoCertificate(hint)));
    }
    Ok(certs)
}

/// A key password, read from the settings or from the password file's first line.
pub(crate) fn key_password(settings: &TlsSettings) -> Result<Option<String>, TlsError> {
    match (&settings.key_password, &settings.key_password_file) {
        (Some(_), Some(file)) => Err(TlsError::at(
            file,
            TlsErrorKind::Settings("set key_password or key_password_file, not both".to_string()),
        )),
        (Some(p), None) => Ok(Some(p.clone())),
        (None, Some(file)) => {
            let bytes = read_file(file)?;
            let text = String::from_utf8(bytes).map_err(|_| {
                TlsError::at(
                    file,
                    TlsErrorKind::Settings("the password file is not UTF-8 text".to_string()),
                )
            })?;
            // The first line, as `openssl -passin file:` reads it.
            let line = text.split('\n').next().unwrap_or("");
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                return Err(TlsError::at(file, TlsErrorKind::EmptyPassword));
            }
            Ok(Some(line.to_string()))
        }
        (None, None) => Ok(None),
    }
}

/// The one private key in a PEM file, decrypted when it is encrypted PKCS#8.
pub(crate) fn load_private_key(
    path: &Path,
    password: Option<&str>,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    let sections = parse_pem(path, &read_file(path)?)?;
    let keys: Vec<&pem::Pem> = sections
        .iter()
        .filter(|s| is_private_key_label(s.tag()))
        .collect();
    let section = match keys.as_slice() {
        [one] => *one,
        [] => {
            let hint = if sections.iter().any(|s| s.tag() == "CERTIFICATE") {
                "the file holds certificates only: are the certificate and key paths swapped?"
                    .to_string()
            } else if sections.is_empty() {
                "the file holds no PEM section".to_string()
            } else {
                format!("PEM sections found: {}", labels(&sections))
            };
            return Err(TlsError::at(path, TlsErrorKind::NoPrivateKey(hint)));
        }
        several => {
            return Err(TlsError::at(
                path,
                TlsErrorKind::SeveralPrivateKeys(several.len()),
            ))
        }
    };
    if section
        .headers()
        .get("Proc-Type")
        .is_some_and(|v| v.contains("ENCRYPTED"))
    {
        return Err(TlsError::at(path, TlsErrorKind::LegacyEncryptedKey));
    }
    let der = section.contents().to_vec();
    match section.tag() {
        "PRIVATE KEY" => Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der))),
        "RSA PRIVATE KEY" => Ok(PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der))),
        "EC PRIVATE KEY" => Ok(PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der))),
        "ENCRYPTED PRIVATE KEY" => {
            let password =
                password.ok_or_else(|| TlsError::at(path, TlsErrorKind::PasswordRequired))?;
            decrypt_pkcs8(path, &der, password)
        }
        other => Err(TlsError::at(
            path,
            TlsErrorKind::UnsupportedKey(format!(
                "PEM section \"{other}\" (expected PRIVATE KEY, RSA PRIVATE KEY, EC PRIVATE KEY \
                 or ENCRYPTED PRIVATE KEY)"
            )),
        )),
    }
}

/// Decrypt an `EncryptedPrivateKeyInfo` (PKCS#8 with PBES2) into plain PKCS#8 DER.
fn decrypt_pkcs8(
    path: &Path,
    der: &[u8],
    password: &str,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    let info = pkcs8::EncryptedPrivateKeyInfo::from_der(der)
        .map_err(|e| TlsError::at(path, TlsErrorKind::UnsupportedEncryption(e.to_string())))?;
    if info.encryption_algorithm.pbes2().is_none() {
        return Err(TlsError::at(
            path,
            TlsErrorKind::UnsupportedEncryption(format!(
                "PBES1 scheme {}",
                info.encryption_algorithm.oid()
            )),
        ));
    }
    match info.decrypt(password.as_bytes()) {
        Ok(doc) => Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            doc.as_bytes().to_vec(),
        ))),
        // Bad padding after CBC decryption, or plaintext that is not a PrivateKeyInfo: both
        // are what a wrong password produces. (pkcs5 0.7 reports bad padding as
        // `EncryptFailed`, later versions as `DecryptFailed`.)
        Err(pkcs8::Error::EncryptedPrivateKey(
            pkcs8::pkcs5::Error::DecryptFailed | pkcs8::pkcs5::Error::EncryptFailed,
        ))
        | Err(pkcs8::Error::Asn1(_))
        | Err(pkcs8::Error::KeyMalformed) => Err(TlsError::at(path, TlsErrorKind::WrongPassword)),
        Err(e) => Err(TlsError::at(
            path,
            TlsErrorKind::UnsupportedEncryption(e.to_string()),
        )),
    }
}

/// A certificate chain and its key, checked to belong together, ready for rustls.
pub(crate) struct LoadedCert {
    pub(crate) certified: Arc<CertifiedKey>,
    pub(crate) fingerprint: String,
}

/// Load the certificate chain and private key the settings name, and check that they match.
pub(crate) fn load_certified_key(
    settings: &TlsSettings,
    provider: &CryptoProvider,
) -> Result<LoadedCert, TlsError> {
    let chain = load_certificates(&settings.cert_path)?;
    let password = key_password(settings)?;
    let key_der = load_private_key(&settings.key_path, password.as_deref())?;
    if password.is_some() && !matches!(key_der, PrivateKeyDer::Pkcs8(_)) {
        log::debug!(
            "{}: a key password is set but the key is not encrypted",
            settings.key_path.display()
        );
    }
    let key = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| {
            TlsError::at(
                &settings.key_path,
                TlsErrorKind::UnsupportedKey(e.to_string()),
            )
        })?;
    let leaf = chain.first().cloned().ok_or_else(|| {
        TlsError::at(
            &settings.cert_path,
            TlsErrorKind::NoCertificate(String::new()),
        )
    })?;
    check_leaf_validity(&settings.cert_path, &leaf)?;
    let certified = CertifiedKey::new(chain, key);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::at(
                &settings.key_path,
                TlsErrorKind::KeyMismatch(settings.cert_path.clone()),
            ))
        }
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            log::warn!(
                "{}: cannot check that the private key matches the certificate",
                settings.key_path.display()
            );
        }
        Err(e) => {
            return Err(TlsError::at(
                &settings.cert_path,
                TlsErrorKind::BadCertificate(e.to_string()),
            ))
        }
    }
    Ok(LoadedCert {
        certified: Arc::new(certified),
        fingerprint: super::fingerprint_sha256(&leaf),
    })
}

/// Parse the leaf as X.509 and warn when it is outside its validity period (clients will
/// refuse it, but an expired certificate is the admin's call, not a reason to stay down).
fn check_leaf_validity(path: &Path, leaf: &CertificateDer<'_>) -> Result<(), TlsError> {
    let cert = x509_cert::Certificate::from_der(leaf)
        .map_err(|e| TlsError::at(path, TlsErrorKind::BadCertificate(e.to_string())))?;
    let validity = &cert.tbs_certificate.validity;
    let now = SystemTime::now();
    if now > validity.not_after.to_system_time() {
        log::warn!(
            "{}: the certificate expired on {}",
            path.display(),
            validity.not_after
        );
    } else if now < validity.not_before.to_system_time() {
        log::warn!(
            "{}: the certificate is not valid before {}",
            path.display(),
            validity.not_before
        );
    }
    Ok(())
}

/// The CA certificates of a client CA bundle.
pub(crate) fn load_ca_bundle(path: &Path) -> Result<RootCertStore, TlsError> {
    let certs = load_certificates(path).map_err(|e| match e.kind() {
        TlsErrorKind::NoCertificate(h) => {
            TlsError::at(path, TlsErrorKind::NoCaCertificate(h.clone()))
        }
        _ => e,
    })?;
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsError::at(
            path,
            TlsErrorKind::NoCaCertificate(format!("{ignored} certificates could not be parsed")),
        ));
    }
    if ignored > 0 {
        log::warn!(
            "{}: {ignored} of {} certificates could not be parsed and are ignored",
            path.display(),
            added + ignored
        );
    }
    Ok(roots)
}

/// Paths whose change should trigger a reload.
pub(crate) fn watched_paths(settings: &TlsSettings) -> Vec<PathBuf> {
    let mut paths = vec![settings.cert_path.clone(), settings.key_path.clone()];
    paths.extend(settings.key_password_file.clone());
    if settings.client_cert != super::ClientCertMode::Off {
        paths.extend(settings.client_ca_path.clone());
    }
    paths.dedup();
    paths
}
