//! Login: USER, PASS, REIN, the login limits and IP rules checked at login, the delay after a
//! failure, and the end of a login.

use super::{is_anonymous_name, tls::ControlTls, DataSetup, Login, Output, Pending, Session};
use crate::action::{Account, ActionKind, EventKind, LoginError, Secret};
use crate::listing::Facts;
use crate::path::VirtualPath;
use crate::reply::Reply;
use std::time::Instant;

impl Session {
    pub(super) fn cmd_user(&mut self, now: Instant, name: &str) {
        if matches!(self.login, Login::In(_)) {
            // RFC 959 lets USER change the user at any time: start over, with a new login
            // deadline.
            self.end_login(None);
            self.reset_session_state();
            self.start_login_deadline(now);
        }
        let anonymous = is_anonymous_name(name);
        if !self.tls.protected() && self.config.control_tls_required(name, anonymous) {
            self.login = Login::Fresh;
            self.reply(
                530,
                if self.config.tls_available {
                    "This server requires TLS for this login: use AUTH TLS first \
                     (curl --ssl-reqd, lftp 'set ftp:ssl-force true', FileZilla 'Require explicit FTP over TLS')."
                } else {
                    "This server requires TLS for this login, but TLS is not configured."
                },
            );
            return;
        }
        if self
            .client_identity
            .as_deref()
            .is_some_and(|id| id.eq_ignore_ascii_case(name))
        {
            // RFC 2228: a user vouched for by the security exchange is logged in with 232.
            self.login = Login::User(name.to_owned());
            self.wait(
                ActionKind::AuthenticateCertificate {
                    user: name.to_owned(),
                },
                Pending::Login { certificate: true },
            );
            return;
        }
        // Always 331, whether or not the user exists: names cannot be probed.
        self.login = Login::User(name.to_owned());
        self.reply(
            331,
            if anonymous {
                "Anonymous login: send your e-mail address as password."
            } else {
                "Please specify the password."
            },
        );
    }

    pub(super) fn cmd_pass(&mut self, pw: &str) {
        match &self.login {
            Login::Fresh => self.reply(503, "Log in with USER first."),
            Login::In(_) => self.reply(230, "Already logged in."),
            Login::User(user) => {
                let user = user.clone();
                self.wait(
                    ActionKind::Authenticate {
                        user,
                        password: Secret::new(pw),
                    },
                    Pending::Login { certificate: false },
                );
            }
        }
    }

    pub(super) fn login_outcome(
        &mut self,
        now: Instant,
        result: Result<Account, LoginError>,
        certificate: bool,
    ) {
        let account = match result {
            Ok(account) => account,
            Err(LoginError::Unavailable(msg)) => {
                self.notify(EventKind::LoginFailed, |e| e.reason = Some(msg.clone()));
                self.login = Login::Fresh;
                self.reply(421, &format!("Login is not possible now: {msg}"));
                self.close();
                return;
            }
            Err(_) => {
                self.login_failed(now, "invalid user name or password");
                return;
            }
        };
        // The runtime counted this login; from here on, a refusal must release it.
        let peer = self.peer.ip();
        if !account.ip_filter.permits(peer) || !account.partner_ip_filter.permits(peer) {
            self.action(ActionKind::LoginEnded);
            self.login_failed(now, "client address not allowed for this user");
            return;
        }
        if let Some(limit) = self.login_limit_exceeded(&account) {
            self.action(ActionKind::LoginEnded);
            let reason = limit.to_owned();
            self.notify(EventKind::LoginFailed, |e| {
                e.reason = Some(reason);
            });
            self.login = Login::Fresh;
            self.reply(421, limit);
            self.close();
            return;
        }
        self.failures = 0;
        self.login = Login::In(Box::new(account));
        self.cwd = VirtualPath::root();
        self.touch(now);
        self.notify(EventKind::Login, |_| {});
        if certificate {
            self.reply(232, "User logged in, authorized by security data exchange.");
        } else {
            self.reply(230, "User logged in, proceed.");
        }
    }

    /// The first limit this login goes over, as the reply text, if any.
    fn login_limit_exceeded(&self, a: &Account) -> Option<&'static str> {
        let over = |limit: u32, count: u32| limit > 0 && count > limit;
        let c = a.sessions;
        if over(self.config.max_logins, c.total) {
            Some("Maximum login limit has been reached.")
        } else if a.anonymous && over(self.config.max_anonymous_logins, c.anonymous) {
            Some("Maximum anonymous login limit has been reached.")
        } else if over(self.config.max_logins_per_ip, c.from_ip) {
            Some("Maximum login limit for your address has been reached.")
        } else if a.max_logins.is_some_and(|m| over(m.max(1), c.user)) {
            Some("Maximum login limit for this user has been reached.")
        } else if a
            .max_logins_per_ip
            .is_some_and(|m| over(m.max(1), c.user_from_ip))
        {
            Some("Maximum login limit for this user from your address has been reached.")
        } else {
            None
        }
    }

    /// A failed login: counts it, and holds the 530 for the configured delay (then 421 and
    /// close when the connection has failed too often).
    fn login_failed(&mut self, now: Instant, reason: &str) {
        let reason = reason.to_owned();
        self.notify(EventKind::LoginFailed, |e| e.reason = Some(reason));
        self.login = Login::Fresh;
        self.failures += 1;
        let mut held = vec![Output::Reply(Reply::new(530, "Authentication failed."))];
        if self.failures >= self.config.max_login_failures {
            held.push(Output::Reply(Reply::new(
                421,
                "Too many failed logins; closing the connection.",
            )));
            held.push(Output::Close);
        }
        self.hold(now, held);
    }

    /// Queues outputs to be released after the login failure delay.
    fn hold(&mut self, now: Instant, outputs: Vec<Output>) {
        let delay = self.config.login_failure_delay;
        if delay.is_zero() {
            let closes = outputs.iter().any(|o| matches!(o, Output::Close));
            self.out.extend(outputs);
            self.closed |= closes;
        } else {
            self.held = outputs;
            self.held_until = Some(now + delay);
        }
    }

    /// Ends an accepted login: a logout event and the release of its count.
    pub(super) fn end_login(&mut self, reason: Option<&str>) {
        if matches!(self.login, Login::In(_)) {
            let reason = reason.map(str::to_owned);
            self.notify(EventKind::Logout, |e| e.reason = reason);
            self.action(ActionKind::LoginEnded);
            self.login = Login::Fresh;
        }
    }

    fn reset_session_state(&mut self) {
        self.login = Login::Fresh;
        self.cwd = VirtualPath::root();
        self.format = crate::codec::DataFormat::default();
        self.code_page = crate::codec::CodePage::default();
        self.deflate_level = crate::codec::Mode::DEFAULT_DEFLATE_LEVEL;
        self.rest = None;
        self.rang = None;
        self.checksum = crate::action::ChecksumAlgorithm::Sha256;
        self.rename_from = None;
        self.drop_data_setup();
        self.data = DataSetup::None;
        self.epsv_all = false;
        self.facts = Facts::default();
    }

    pub(super) fn cmd_rein(&mut self, now: Instant) {
        self.end_login(None);
        self.reset_session_state();
        self.start_login_deadline(now);
        self.reply(220, "Service ready for new user.");
        // RFC 4217 §11: REIN returns an explicitly protected control connection to the clear;
        // the client may AUTH again. An implicit-TLS connection stays protected.
        match self.tls {
            ControlTls::Explicit => {
                self.action(ActionKind::StopTls);
                self.tls = ControlTls::Clear;
            }
            ControlTls::Cleared => self.tls = ControlTls::Clear,
            ControlTls::Clear | ControlTls::Implicit => {}
        }
        if self.tls != ControlTls::Implicit {
            self.pbsz = false;
            self.prot_private = false;
            self.client_identity = None;
        }
    }
}
