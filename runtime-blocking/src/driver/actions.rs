//! The actions of the core other than transfers and TLS, carried out for one connection:
//! logins (the user store's check, then the user's storage and the login counts), metadata
//! and changes on the user's storage, passive listeners, events, administrators' queries.
//! Each reports its outcome to the session at once; none writes to the control connection.

use log::{error, info, warn};
use std::time::Instant;
use wharf_core::{Action, ActionId, ActionKind, LoginError, Outcome, OutcomeKind};

use super::checksum::ChecksumTask;
use super::data::{Admits, PassiveListener};
use super::transfer::{Interrupt, Transfer};
use super::{Connection, Task};
use crate::storage::{unix_now, LocalFs, Storage};
use crate::users::Login;

impl Connection<'_> {
    pub(super) fn outcome(&mut self, id: ActionId, kind: OutcomeKind) {
        self.session
            .handle_outcome(Instant::now(), Outcome::new(id, kind));
    }

    /// Carries out one action of the core; a transfer becomes the connection's running task.
    ///
    /// The logins are carried out here and every other action by [`Self::run_other`], which
    /// is not inlined: a worker thread keeps resident the deepest stack it ever touched, and
    /// every session logs in, so the frames on the login path stay small (the other actions'
    /// frame would add a page to each idle session; docs/sessions.md, memory).
    pub(super) fn run_action(&mut self, action: Action) {
        let id = action.id;
        match action.kind {
            ActionKind::Authenticate { user, password } => {
                let checked = self.shared.users.authenticate(&user, password.expose());
                self.login(id, &user, checked, "password");
            }
            ActionKind::AuthenticateCertificate { user } => {
                let checked = self.shared.users.authenticate_certificate(&user);
                self.login(id, &user, checked, "client certificate");
            }
            other => self.run_other(id, other),
        }
    }

    #[inline(never)]
    fn run_other(&mut self, id: ActionId, kind: ActionKind) {
        let no_storage = wharf_core::StorageError::PermissionDenied;
        match kind {
            ActionKind::StartTls => self.start_tls(id),
            ActionKind::StopTls => self.stop_tls(),
            ActionKind::Stat { path } => {
                let r = match &self.storage {
                    Some(s) => s.stat(&path),
                    None => Err(no_storage),
                };
                self.outcome(id, OutcomeKind::Metadata(r));
            }
            ActionKind::ReadDir { path } => {
                let result = match &self.storage {
                    Some(s) => s.read_dir(&path),
                    None => Err(no_storage),
                };
                let now = unix_now();
                self.outcome(id, OutcomeKind::Entries { result, now });
            }
            ActionKind::MakeDir { path, ownership } => {
                let r = self.storage_do(|s| s.mkdir(&path, Some(&ownership)));
                self.log_change("mkdir", path.as_str(), &r);
                self.outcome(id, OutcomeKind::Done(r));
            }
            ActionKind::RemoveDir { path } => {
                let r = self.storage_do(|s| s.rmdir(&path));
                self.log_change("rmdir", path.as_str(), &r);
                self.outcome(id, OutcomeKind::Done(r));
            }
            ActionKind::Delete { path } => {
                let r = self.storage_do(|s| s.delete(&path));
                self.log_change("delete", path.as_str(), &r);
                self.outcome(id, OutcomeKind::Done(r));
            }
            ActionKind::Rename { from, to } => {
                let r = self.storage_do(|s| s.rename(&from, &to));
                self.log_change("rename", &format!("{from} -> {to}"), &r);
                self.outcome(id, OutcomeKind::Done(r));
            }
            ActionKind::AsciiSize { path } => {
                let r = match &self.storage {
                    Some(s) => s.ascii_size(&path),
                    None => Err(no_storage),
                };
                self.outcome(id, OutcomeKind::Size(r));
            }
            ActionKind::EncodedSize { path, format } => {
                let r = match &self.storage {
                    Some(s) => s.encoded_size(&path, format),
                    None => Err(no_storage),
                };
                self.outcome(id, OutcomeKind::Size(r));
            }
            ActionKind::ListenPassive {
                ip,
                peer,
                fxp_peers,
            } => {
                // Free the old listener (and its port) first.
                self.passive = None;
                let admits = Admits {
                    client: peer,
                    fxp_peers,
                };
                let ports = &self.shared.settings.passive_ports;
                let r = match PassiveListener::bind(ip, admits, ports) {
                    Ok(l) => {
                        let port = l.port();
                        self.passive = Some(l);
                        Ok(port)
                    }
                    Err(e) => {
                        warn!("session {}: cannot open a passive port: {e}", self.id);
                        Err(e.to_string())
                    }
                };
                self.outcome(id, OutcomeKind::PassiveListening(r));
            }
            ActionKind::ClosePassive => self.passive = None,
            ActionKind::Transfer(plan) => self.start_transfer(id, plan),
            ActionKind::Checksum {
                path,
                algorithm,
                start,
                end,
            } => {
                let task = Box::new(ChecksumTask::new(id, path, algorithm, start, end));
                self.task = Some(Task::Checksum(task));
            }
            ActionKind::AbortTransfer { transfer } => {
                // When none runs (it has ended already): nothing to stop.
                if let Some(t) = self.task.as_mut().filter(|t| t.id() == transfer) {
                    t.stop(Interrupt::Abort);
                }
            }
            ActionKind::LoginEnded => {
                // The login is over (logout, REIN, another USER, or refused by a limit or an
                // IP rule after the password was checked): give its count back.
                self.login_slot = None;
                if let Some(control) = &self.tls {
                    control.logged_out();
                }
                self.storage = None;
            }
            ActionKind::Notify(event) => {
                log::debug!("session {}: event {}", self.id, event.kind.as_str());
                self.tracker.record(&event);
            }
            ActionKind::SetMode { path, mode } => {
                let r = self.storage_do(|s| s.set_mode(&path, mode));
                self.log_change("chmod", &format!("{path} {mode:03o}"), &r);
                self.outcome(id, OutcomeKind::Done(r));
            }
            ActionKind::SetModified { path, time } => {
                let r = self.storage_do(|s| s.set_modified(&path, time));
                let mut when = String::new();
                time.write_mdtm(&mut when);
                self.log_change("set-time", &format!("{path} {when}"), &r);
                self.outcome(id, OutcomeKind::Done(r));
            }
            ActionKind::AdminQuery(q) => {
                let r = match self.shared.events.admin(&q) {
                    Some(info) => Ok(info),
                    None => match &q {
                        wharf_core::action::AdminQuery::DescribeUser(name) => Ok(
                            wharf_core::action::AdminInfo::User(self.shared.users.describe(name)),
                        ),
                        _ => Err("administration queries are not available yet".into()),
                    },
                };
                self.outcome(id, OutcomeKind::AdminInfo(r));
            }
            other => {
                error!(
                    "session {}: this runtime cannot carry out {other:?}; closing the session",
                    self.id
                );
                let _ = self
                    .ctrl
                    .send(b"421 Internal error: unsupported operation; closing.\r\n");
                self.closing = true;
            }
        }
    }

    /// A transfer becomes the connection's running task (built in a frame of its own).
    #[inline(never)]
    fn start_transfer(&mut self, id: ActionId, plan: wharf_core::TransferPlan) {
        let listener = match plan.data {
            wharf_core::DataEndpoint::Passive => self.passive.take(),
            wharf_core::DataEndpoint::Active(_) => None,
        };
        let task = Box::new(Transfer::new(id, plan, listener, self.shared));
        self.task = Some(Task::Transfer(task));
    }

    fn storage_do(
        &self,
        f: impl FnOnce(&dyn Storage) -> Result<(), wharf_core::StorageError>,
    ) -> Result<(), wharf_core::StorageError> {
        match &self.storage {
            Some(s) => f(s.as_ref()),
            None => Err(wharf_core::StorageError::PermissionDenied),
        }
    }

    fn log_change(&self, what: &str, path: &str, r: &Result<(), wharf_core::StorageError>) {
        match r {
            Ok(()) => info!(
                "session {} {what} user={} path={path}: ok",
                self.id,
                self.user.as_deref().unwrap_or("-")
            ),
            Err(e) => info!(
                "session {} {what} user={} path={path}: {e}",
                self.id,
                self.user.as_deref().unwrap_or("-")
            ),
        }
    }

    /// Completes a login the user store accepted (opening the user's storage and counting
    /// the login, with the counts passed to the core for its login limits), or logs why it
    /// failed (a wrong password counts towards a ban of the address), and tells the session.
    /// `how` says what vouched for the user, for the log. The work around the opening of the
    /// storage (which resolves the home folder, deep in libc) is in frames of its own.
    #[inline(never)]
    fn login(&mut self, id: ActionId, user: &str, checked: Result<Login, LoginError>, how: &str) {
        match checked {
            Ok(login) => match LocalFs::for_login(&login, self.shared.settings.atomic_uploads) {
                Ok(fs) => self.logged_in(id, &login, fs, how),
                Err(e) => self.home_unusable(id, &login, &e),
            },
            Err(e) => self.login_refused(id, user, e, how),
        }
    }

    /// Counts a login whose storage is open, keeps the storage and tells the session.
    #[inline(never)]
    fn logged_in(&mut self, id: ActionId, login: &Login, fs: Box<LocalFs>, how: &str) {
        let mut account = login.account.clone();
        info!(
            "session {} login user={} peer={} by {how}",
            self.id, account.name, self.peer
        );
        self.shared.login_succeeded(self.peer.ip());
        // A previous login of this session was released by its LoginEnded.
        let (slot, counts) =
            self.shared
                .count_login(&account.name, self.peer.ip(), account.anonymous);
        account.sessions = counts;
        self.login_slot = Some(slot);
        if let Some(control) = &self.tls {
            control.logged_in(&account.name);
        }
        self.tracker.authenticated(&account);
        self.storage = Some(fs);
        self.user = Some(account.name.clone());
        self.outcome(id, OutcomeKind::Authenticated(Ok(account)));
    }

    #[cold]
    #[inline(never)]
    fn home_unusable(&mut self, id: ActionId, login: &Login, e: &std::io::Error) {
        error!(
            "session {}: user {} logged in but the home folder {} is unusable: {e}",
            self.id,
            login.account.name,
            login.home.display()
        );
        let e = LoginError::Unavailable("the home folder of this account is not available.".into());
        self.outcome(id, OutcomeKind::Authenticated(Err(e)));
    }

    #[inline(never)]
    fn login_refused(&mut self, id: ActionId, user: &str, e: LoginError, how: &str) {
        // The name a client tried is worth logging; the password never is.
        let shown: String = user.chars().take(64).collect();
        info!(
            "session {} login failed user={shown:?} peer={} by {how}",
            self.id, self.peer
        );
        if e == LoginError::Invalid && self.shared.login_failed(self.peer.ip()) {
            warn!(
                "address {} banned for {} s after {} failed logins",
                self.peer.ip(),
                self.shared.settings.ban_duration.as_secs(),
                self.shared.settings.ban_after_failures
            );
        }
        self.outcome(id, OutcomeKind::Authenticated(Err(e)));
    }
}
