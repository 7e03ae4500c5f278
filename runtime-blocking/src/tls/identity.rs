//! Mapping a verified client certificate to a Wharf user name.
//!
//! Only the leaf certificate is read, and only after rustls has verified the chain against the
//! configured CA bundle (so the caller must not call this with client certificates `off`:
//! there would be no verification). The value is returned as written in the certificate; a
//! value with control characters, or longer than [`MAX_IDENTITY`] bytes, maps to no user.

use std::str::FromStr;

use pkcs8::der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
use pkcs8::der::{Decode, Tag, Tagged};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;

/// Longest user name a certificate may map to.
pub const MAX_IDENTITY: usize = 256;

/// Which field of a client certificate names the user.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientIdentitySource {
    /// The subject's (last) Common Name. Config value `cn`. The default.
    #[default]
    CommonName,
    /// The first `rfc822Name` (e-mail address) in subjectAltName. Config value `san-email`.
    SanEmail,
    /// The first `dNSName` in subjectAltName. Config value `san-dns`.
    SanDns,
}

impl FromStr for ClientIdentitySource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cn" => Ok(ClientIdentitySource::CommonName),
            "san-email" => Ok(ClientIdentitySource::SanEmail),
            "san-dns" => Ok(ClientIdentitySource::SanDns),
            other => Err(format!(
                "unknown client identity field \"{other}\": expected cn, san-email or san-dns"
            )),
        }
    }
}

/// The user name a DER certificate maps to under `source`, if the field is present and usable.
pub fn identity_from_certificate(der: &[u8], source: ClientIdentitySource) -> Option<String> {
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let tbs = &cert.tbs_certificate;
    let value = match source {
        ClientIdentitySource::CommonName => tbs
            .subject
            .0
            .iter()
            .flat_map(|rdn| rdn.0.iter())
            .filter(|atv| atv.oid == COMMON_NAME)
            .filter_map(|atv| directory_string(&atv.value))
            .next_back()?,
        ClientIdentitySource::SanEmail | ClientIdentitySource::SanDns => {
            let (_, san) = tbs.get::<SubjectAltName>().ok()??;
            san.0.into_iter().find_map(|name| match (source, name) {
                (ClientIdentitySource::SanEmail, GeneralName::Rfc822Name(s)) => {
                    Some(s.as_str().to_string())
                }
                (ClientIdentitySource::SanDns, GeneralName::DnsName(s)) => {
                    Some(s.as_str().to_string())
                }
                _ => None,
            })?
        }
    };
    usable(value)
}

/// id-at-commonName (RFC 4519).
const COMMON_NAME: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("2.5.4.3");

/// The text of an X.520 DirectoryString in the encodings certificates use in practice.
fn directory_string(value: &pkcs8::der::Any) -> Option<String> {
    match value.tag() {
        Tag::Utf8String => value
            .decode_as::<Utf8StringRef<'_>>()
            .ok()
            .map(|s| s.as_str().to_string()),
        Tag::PrintableString => value
            .decode_as::<PrintableStringRef<'_>>()
            .ok()
            .map(|s| s.as_str().to_string()),
        Tag::Ia5String => value
            .decode_as::<Ia5StringRef<'_>>()
            .ok()
            .map(|s| s.as_str().to_string()),
        _ => None,
    }
}

fn usable(value: String) -> Option<String> {
    let ok =
        !value.is_empty() && value.len() <= MAX_IDENTITY && !value.chars().any(|c| c.is_control());
    ok.then_some(value)
}
