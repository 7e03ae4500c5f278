//! The contradictions between TLS keys, which no key's reader can see alone: a certificate
//! without its key, two passwords, client certificates without a CA, TLS required while
//! off. Checked once the file is read, and again once the command-line flags are applied.
//!
//! It must not load or look at certificate files: `wharf check-config` and `serve` do (the
//! tls module loads them).

use wharf_core::TlsPolicy;

use super::settings::Settings;
use crate::tls::ClientCertMode;

impl Settings {
    /// Contradictions between the TLS keys, as (key, problem).
    pub fn tls_problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => out.push((
                "tls_key",
                "missing: tls_cert is set, so the key of that certificate is needed too".into(),
            )),
            (None, Some(_)) => out.push((
                "tls_cert",
                "missing: tls_key is set, so its certificate is needed too".into(),
            )),
            _ => {}
        }
        let o = &self.tls_options;
        if o.key_password.is_some() && o.key_password_file.is_some() {
            out.push((
                "tls_key_password_file",
                "set together with tls_key_password; use one of the two".into(),
            ));
        }
        if o.client_cert != ClientCertMode::Off && o.client_ca_path.is_none() {
            out.push((
                "tls_client_ca",
                format!(
                    "missing: tls_client_cert = \"{}\" needs the CA bundle client certificates \
                     are checked against",
                    if o.client_cert == ClientCertMode::Require {
                        "require"
                    } else {
                        "request"
                    }
                ),
            ));
        }
        if !self.tls {
            for (key, policy) in [
                ("tls_required_control", self.core.tls_control),
                ("tls_required_data", self.core.tls_data),
            ] {
                if policy != TlsPolicy::None {
                    out.push((
                        key,
                        format!(
                            "is \"{}\" but tls = false: nobody could log in; turn TLS on or \
                             set it to \"none\"",
                            policy_name(policy)
                        ),
                    ));
                }
            }
            if !self.implicit_listen.is_empty() {
                out.push((
                    "implicit_listen",
                    "implicit-TLS listeners need tls = true".into(),
                ));
            }
        }
        out
    }
}

fn policy_name(p: TlsPolicy) -> &'static str {
    match p {
        TlsPolicy::None => "none",
        TlsPolicy::Accounts => "accounts",
        TlsPolicy::All => "all",
    }
}
