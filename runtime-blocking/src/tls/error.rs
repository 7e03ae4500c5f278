//! [`TlsError`]: why TLS material could not be loaded, naming the file at fault.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// TLS material (certificate, key, password, CA bundle) could not be loaded or generated.
///
/// `Display` gives the file first, then the reason, ready for a log line or a start-up error:
/// `/etc/wharf/key.pem: wrong password for the encrypted private key`.
#[derive(Debug)]
pub struct TlsError {
    path: Option<PathBuf>,
    kind: TlsErrorKind,
}

/// What went wrong; see [`TlsError::kind`].
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsErrorKind {
    /// The file could not be read (or written, for a generated certificate).
    Io(io::Error),
    /// The file is larger than any PEM file we expect (16 MiB).
    TooLarge,
    /// The file is not well-formed PEM.
    Pem(String),
    /// The certificate file holds no `CERTIFICATE` section. The string is a hint (may be empty).
    NoCertificate(String),
    /// A certificate could not be parsed.
    BadCertificate(String),
    /// The key file holds no private key. The string is a hint (may be empty).
    NoPrivateKey(String),
    /// The key file holds more than one private key.
    SeveralPrivateKeys(usize),
    /// The key is encrypted and neither `key_password` nor `key_password_file` is set.
    PasswordRequired,
    /// The password does not decrypt the key.
    WrongPassword,
    /// The encrypted key uses an encryption scheme we cannot decrypt.
    UnsupportedEncryption(String),
    /// An OpenSSL "traditional" encrypted key (`Proc-Type: 4,ENCRYPTED`).
    LegacyEncryptedKey,
    /// The password file is empty.
    EmptyPassword,
    /// The private key's type or size is not usable for TLS (e.g. RSA under 2048 bits, DSA).
    UnsupportedKey(String),
    /// The private key does not belong to the certificate (the path of which is given).
    KeyMismatch(PathBuf),
    /// The client CA bundle holds no usable CA certificate.
    NoCaCertificate(String),
    /// The settings contradict each other (no file at fault).
    Settings(String),
    /// A self-signed certificate could not be generated.
    Generate(String),
    /// rustls refused the configuration.
    Rustls(String),
}

impl TlsError {
    pub(crate) fn new(path: Option<&Path>, kind: TlsErrorKind) -> TlsError {
        TlsError {
            path: path.map(Path::to_path_buf),
            kind,
        }
    }

    pub(crate) fn at(path: &Path, kind: TlsErrorKind) -> TlsError {
        TlsError::new(Some(path), kind)
    }

    /// The file at fault, when there is one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// What went wrong.
    pub fn kind(&self) -> &TlsErrorKind {
        &self.kind
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.path {
            write!(f, "{}: ", path.display())?;
        }
        fmt::Display::fmt(&self.kind, f)
    }
}

fn hint(f: &mut fmt::Formatter<'_>, hint: &str) -> fmt::Result {
    if hint.is_empty() {
        Ok(())
    } else {
        write!(f, " ({hint})")
    }
}

impl fmt::Display for TlsErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use TlsErrorKind::*;
        match self {
            Io(e) => write!(f, "{e}"),
            TooLarge => f.write_str("file too large for a PEM certificate or key (over 16 MiB)"),
            Pem(e) => write!(f, "not a valid PEM file: {e}"),
            NoCertificate(h) => {
                f.write_str("no certificate found")?;
                hint(f, h)
            }
            BadCertificate(e) => write!(f, "invalid certificate: {e}"),
            NoPrivateKey(h) => {
                f.write_str("no private key found")?;
                hint(f, h)
            }
            SeveralPrivateKeys(n) => {
                write!(
                    f,
                    "{n} private keys found; the key file must hold exactly one"
                )
            }
            PasswordRequired => {
                f.write_str("the private key is encrypted: set key_password or key_password_file")
            }
            WrongPassword => f.write_str("wrong password for the encrypted private key"),
            UnsupportedEncryption(e) => write!(
                f,
                "the private key's encryption is not supported ({e}); re-encrypt it with \
                 `openssl pkcs8 -topk8 -v2 aes-256-cbc -in OLD -out NEW`"
            ),
            LegacyEncryptedKey => f.write_str(
                "the private key uses OpenSSL's legacy encryption (Proc-Type: 4,ENCRYPTED), \
                 which is not supported; convert it to encrypted PKCS#8 with \
                 `openssl pkcs8 -topk8 -v2 aes-256-cbc -in OLD -out NEW`",
            ),
            EmptyPassword => f.write_str("the password file is empty"),
            UnsupportedKey(e) => write!(f, "unsupported private key: {e}"),
            KeyMismatch(cert) => write!(
                f,
                "the private key does not match the certificate in {}",
                cert.display()
            ),
            NoCaCertificate(h) => {
                f.write_str("no usable CA certificate found")?;
                hint(f, h)
            }
            Settings(e) => f.write_str(e),
            Generate(e) => write!(f, "cannot generate a self-signed certificate: {e}"),
            Rustls(e) => write!(f, "TLS configuration refused: {e}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            TlsErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}
