//! FTP over TLS (RFC 2228, RFC 4217): AUTH, PBSZ, PROT and CCC. The core decides; the runtime
//! runs rustls when told to by `StartTls` and `StopTls`.

use super::{Login, Pending, Session};
use crate::action::{ActionKind, TlsInfo};
use crate::framing::LineFramer;

/// TLS state of the control connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ControlTls {
    /// Never protected.
    Clear,
    /// Protected after AUTH.
    Explicit,
    /// Protected from the first byte (implicit-TLS listener).
    Implicit,
    /// Protected, then cleared by CCC: commands are in the clear again; AUTH and PROT refused.
    Cleared,
}

impl ControlTls {
    pub(super) fn protected(self) -> bool {
        matches!(self, ControlTls::Explicit | ControlTls::Implicit)
    }
}

impl Session {
    pub(super) fn cmd_auth(&mut self, mechanism: &str) {
        let mech = mechanism.trim();
        let private = if mech.eq_ignore_ascii_case("TLS") || mech.eq_ignore_ascii_case("TLS-C") {
            false
        } else if mech.eq_ignore_ascii_case("SSL") || mech.eq_ignore_ascii_case("TLS-P") {
            // The drafts before RFC 4217 protected data connections too with these.
            true
        } else {
            self.reply(504, "AUTH mechanism not supported; use AUTH TLS.");
            return;
        };
        if !self.config.tls_available {
            self.reply(502, "TLS is not configured on this server.");
            return;
        }
        match self.tls {
            ControlTls::Explicit | ControlTls::Implicit => {
                self.reply(503, "TLS is already in use on this connection.");
                return;
            }
            ControlTls::Cleared => {
                self.reply(503, "TLS cannot be started again after CCC.");
                return;
            }
            ControlTls::Clear => {}
        }
        if self.logged_in().is_some() {
            self.reply(503, "AUTH must come before login; use REIN first.");
            return;
        }
        self.login = Login::Fresh;
        // Anything the client sent after AUTH, before the handshake, came in the clear: drop it
        // rather than run it as if it had been protected (command injection).
        self.framer = LineFramer::new(self.config.max_line_len);
        self.reply(
            234,
            &format!("AUTH {} successful.", mech.to_ascii_uppercase()),
        );
        self.wait(ActionKind::StartTls, Pending::Tls { private });
    }

    pub(super) fn tls_outcome(&mut self, private: bool, result: Result<TlsInfo, String>) {
        match result {
            Ok(info) => {
                self.tls = ControlTls::Explicit;
                self.client_identity = info.client_identity;
                if private {
                    self.pbsz = true;
                    self.prot_private = true;
                }
            }
            // The handshake failed: nothing more can be said on this connection.
            Err(_) => self.close(),
        }
    }

    pub(super) fn cmd_pbsz(&mut self, arg: &str) {
        if !self.tls.protected() {
            self.reply(503, "PBSZ requires AUTH TLS first.");
            return;
        }
        if arg.trim().parse::<u64>().is_err() {
            self.reply(501, "PBSZ needs a number; use PBSZ 0.");
            return;
        }
        self.pbsz = true;
        // RFC 4217 §8: TLS needs no buffer size; any value is answered with PBSZ=0.
        self.reply(200, "PBSZ=0");
    }

    pub(super) fn cmd_prot(&mut self, arg: &str) {
        if self.tls == ControlTls::Cleared {
            self.reply(503, "PROT cannot be changed after CCC.");
            return;
        }
        if !self.tls.protected() {
            self.reply(503, "PROT requires AUTH TLS first.");
            return;
        }
        if !self.pbsz {
            self.reply(503, "PROT requires PBSZ 0 first.");
            return;
        }
        match arg.trim() {
            a if a.eq_ignore_ascii_case("C") => {
                self.prot_private = false;
                self.reply(200, "Protection level set to Clear.");
            }
            a if a.eq_ignore_ascii_case("P") => {
                self.prot_private = true;
                self.reply(200, "Protection level set to Private.");
            }
            a if a.eq_ignore_ascii_case("S") || a.eq_ignore_ascii_case("E") => {
                self.reply(536, "Only PROT C and PROT P are supported.")
            }
            _ => self.reply(504, "Unknown protection level; use C or P."),
        }
    }

    pub(super) fn cmd_ccc(&mut self) {
        if !self.tls.protected() {
            self.reply(533, "CCC requires a protected control connection.");
            return;
        }
        let must_protect = self
            .logged_in()
            .is_some_and(|a| self.config.control_tls_required(&a.name, a.anonymous));
        if self.tls == ControlTls::Implicit || !self.config.allow_ccc || must_protect {
            self.reply(534, "CCC is not allowed by this server's policy.");
            return;
        }
        self.reply(
            200,
            "CCC command successful; the control connection is now in the clear.",
        );
        self.action(ActionKind::StopTls);
        self.tls = ControlTls::Cleared;
    }

    /// One line for STAT.
    pub(super) fn tls_status(&self) -> &'static str {
        match (self.tls, self.prot_private) {
            (ControlTls::Clear, _) => "Control connection in the clear",
            (ControlTls::Cleared, _) => "Control connection cleared by CCC",
            (_, true) => "Control connection protected by TLS; data connections protected",
            (_, false) => "Control connection protected by TLS; data connections in the clear",
        }
    }
}
