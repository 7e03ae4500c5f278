//! The fake runtime: how the harness answers each action, runs transfers and checksums,
//! and encodes and decodes their bytes.

use super::*;

impl Harness {
    fn anomaly(&mut self, what: String) {
        if self.anomalies.len() < 100 {
            self.anomalies.push(what);
        }
    }

    pub(super) fn answer(&mut self, action: Action) -> Vec<Outcome> {
        let Action { id, kind } = action;
        let wall = self.wall_now();
        self.fs.set_clock(wall);
        let outcome = match kind {
            ActionKind::Authenticate { user, password } => {
                OutcomeKind::Authenticated(self.authenticate(&user, Some(password.expose())))
            }
            ActionKind::AuthenticateCertificate { user } => {
                OutcomeKind::Authenticated(self.authenticate(&user, None))
            }
            ActionKind::Stat { path } => OutcomeKind::Metadata(self.fs.stat(path.as_str())),
            ActionKind::ReadDir { path } => OutcomeKind::Entries {
                result: self.fs.read_dir(path.as_str()),
                now: wall,
            },
            ActionKind::MakeDir { path, ownership } => {
                let r = self.fs.make_dir(path.as_str());
                if r.is_ok() {
                    self.fs.set_ownership(path.as_str(), &ownership);
                }
                OutcomeKind::Done(r)
            }
            ActionKind::SetMode { path, mode } => {
                OutcomeKind::Done(self.fs.set_mode(path.as_str(), mode))
            }
            ActionKind::SetModified { path, time } => {
                OutcomeKind::Done(self.fs.set_modified(path.as_str(), time))
            }
            ActionKind::LoginEnded => {
                if self.logins_held == 0 {
                    self.anomaly("LoginEnded without a login held".into());
                } else {
                    self.logins_held -= 1;
                }
                self.fs.set_home_owner("ftp", "ftp");
                self.login_wall = None;
                return Vec::new();
            }
            ActionKind::Notify(event) => {
                let size = event.size.unwrap_or(0);
                let st = &mut self.stats;
                match event.kind {
                    EventKind::UploadComplete => {
                        st.uploads += 1;
                        st.bytes_up += size;
                    }
                    EventKind::DownloadComplete => {
                        st.downloads += 1;
                        st.bytes_down += size;
                    }
                    EventKind::Delete => st.deletes += 1,
                    EventKind::Mkdir => st.dirs_created += 1,
                    EventKind::Rmdir => st.dirs_removed += 1,
                    EventKind::Login => st.logins_total += 1,
                    _ => {}
                }
                if self.events.len() >= MAX_RECORDED_EVENTS {
                    self.events.pop_front();
                }
                self.events.push_back(event);
                return Vec::new();
            }
            ActionKind::AdminQuery(q) => OutcomeKind::AdminInfo(Ok(self.admin_info(q))),
            ActionKind::RemoveDir { path } => OutcomeKind::Done(self.fs.remove_dir(path.as_str())),
            ActionKind::Delete { path } => OutcomeKind::Done(self.fs.delete(path.as_str())),
            ActionKind::Rename { from, to } => {
                OutcomeKind::Done(self.fs.rename(from.as_str(), to.as_str()))
            }
            ActionKind::AsciiSize { path } => OutcomeKind::Size(self.fs.ascii_size(path.as_str())),
            ActionKind::EncodedSize { path, format } => {
                OutcomeKind::Size(self.fs.encoded_size(path.as_str(), format))
            }
            ActionKind::Checksum {
                path, start, end, ..
            } => {
                let result = self
                    .fs
                    .checksum(path.as_str(), start, end)
                    .map_err(TransferError::Storage);
                // Held like a transfer: it runs until finished or aborted.
                if std::mem::take(&mut self.hold_next) || self.hold_all {
                    self.held_checksum = Some((id, result));
                    return Vec::new();
                }
                OutcomeKind::Checksummed(result)
            }
            ActionKind::ListenPassive {
                ip,
                peer,
                fxp_peers,
            } => OutcomeKind::PassiveListening(self.listen(Listener {
                ip,
                peer,
                fxp_peers,
                port: 0,
            })),
            ActionKind::ClosePassive => {
                self.listener = None;
                return Vec::new();
            }
            ActionKind::Transfer(plan) => return self.start_transfer(id, plan),
            ActionKind::AbortTransfer { transfer } => return self.abort(transfer),
            ActionKind::StartTls => {
                OutcomeKind::TlsEstablished(Ok(TlsInfo::new(self.client_identity.clone())))
            }
            ActionKind::StopTls => {
                self.tls_stops += 1;
                return Vec::new();
            }
        };
        vec![Outcome::new(id, outcome)]
    }

    /// Checks a login as a runtime would, and on success counts it (this session's login plus
    /// [`Harness::set_other_sessions`]) and makes the user the owner of un-owned entries.
    fn authenticate(&mut self, user: &str, password: Option<&str>) -> Result<Account, LoginError> {
        if let Some(reason) = &self.users_unavailable {
            return Err(LoginError::Unavailable(reason.clone()));
        }
        let anonymous_name =
            user.eq_ignore_ascii_case("anonymous") || user.eq_ignore_ascii_case("ftp");
        let mut account = if anonymous_name && self.anonymous {
            Account::anonymous()
        } else {
            match self.users.get(user) {
                Some(u) if password.is_none_or(|p| p == u.password) => u.account.clone(),
                _ => return Err(LoginError::Invalid),
            }
        };
        if self.logins_held != 0 {
            self.anomaly("a second login counted while one is held".into());
        }
        self.logins_held += 1;
        let o = self.other_sessions;
        account.sessions = LoginCounts {
            total: o.total + 1,
            anonymous: o.anonymous + u32::from(account.anonymous),
            from_ip: o.from_ip + 1,
            user: o.user + 1,
            user_from_ip: o.user_from_ip + 1,
        };
        if account.anonymous {
            self.fs.set_home_owner("ftp", "ftp");
        } else {
            self.fs.set_home_owner(&account.user, account.group());
        }
        self.login_wall = Some(self.wall_now());
        Ok(account)
    }

    /// What the fake runtime knows for SITE WHO / STAT / DESCUSER.
    fn admin_info(&self, q: AdminQuery) -> AdminInfo {
        match q {
            AdminQuery::Who => {
                let now = self.wall_now();
                let who = self
                    .session
                    .account()
                    .map(|a| {
                        SessionSummary::new(
                            a.name.clone(),
                            self.session.peer(),
                            self.login_wall.unwrap_or(now),
                            now,
                        )
                    })
                    .into_iter()
                    .collect();
                AdminInfo::Who(who)
            }
            AdminQuery::Stat => AdminInfo::Stat(ServerStats {
                start_time: self.wall_base,
                connections_current: 1,
                connections_total: 1,
                logins_current: u64::from(self.logins_held),
                ..self.stats.clone()
            }),
            AdminQuery::DescribeUser(name) => AdminInfo::User(self.users.get(&name).map(|u| {
                let a = &u.account;
                UserSummary {
                    name: a.name.clone(),
                    partner: a.partner.clone(),
                    enabled: true,
                    home: format!("/srv/ftp/{}", a.name),
                    write: a.write,
                    admin: a.admin,
                    idle_time: a.idle_timeout.map(|d| d.as_secs()),
                    upload_rate: a.upload_rate,
                    download_rate: a.download_rate,
                    max_logins: a.max_logins,
                    max_logins_per_ip: a.max_logins_per_ip,
                    allowed_ips: a.ip_filter.allow.iter().map(ToString::to_string).collect(),
                    fxp_peers: a
                        .fxp_peers
                        .as_ref()
                        .map(|peers| peers.iter().map(ToString::to_string).collect()),
                }
            })),
        }
    }

    fn listen(&mut self, mut l: Listener) -> Result<u16, String> {
        self.listener = None;
        if let Some(reason) = self.fail_passive.take() {
            return Err(reason);
        }
        let port = self.next_port;
        self.next_port = if self.next_port >= 60_000 {
            FIRST_PASSIVE_PORT
        } else {
            self.next_port + 1
        };
        l.port = port;
        self.listener = Some(l.clone());
        self.last_listener = Some(l);
        Ok(port)
    }

    fn push_record(&mut self, rec: TransferRecord) {
        if self.transfers.len() >= MAX_RECORDED_TRANSFERS {
            self.transfers.pop_front();
        }
        self.transfers.push_back(rec);
    }

    fn record_mut(&mut self, id: ActionId) -> Option<&mut TransferRecord> {
        self.transfers.iter_mut().rev().find(|r| r.id == id)
    }

    fn start_transfer(&mut self, id: ActionId, plan: TransferPlan) -> Vec<Outcome> {
        let TransferPlan {
            kind,
            data: endpoint,
            format,
            marker_interval,
            ownership,
            rate_limit,
            protection,
            ..
        } = plan;
        if self.running.is_some() {
            self.anomaly(format!("transfer {id:?} started while another runs"));
        }
        let (record_kind, prepared) = match kind {
            TransferKind::Retrieve { path, offset } => {
                let prepared =
                    self.prepare_retrieve(path.as_str(), offset, format, marker_interval);
                (RecordKind::Retrieve { path, offset }, prepared)
            }
            TransferKind::Listing { bytes } => {
                let (wire, error) = encode(&bytes, format, 0, None);
                (RecordKind::Listing, Ok(Prepared::Send(wire, error)))
            }
            TransferKind::Store { path, mode } => {
                let prepared = self.prepare_store(path.as_str(), mode);
                (RecordKind::Store { path, mode }, prepared)
            }
        };
        let unique = matches!(
            record_kind,
            RecordKind::Store {
                mode: StoreMode::Unique,
                ..
            }
        );
        let written = match &prepared {
            Ok(Prepared::Receive { path, .. }) => {
                VirtualPath::resolve(&VirtualPath::root(), path).ok()
            }
            _ => None,
        };
        // Only STOU reports the name it used (TransferStarted::stored_as).
        let stored_as = if unique { written.clone() } else { None };
        let mut rec = TransferRecord {
            id,
            kind: record_kind,
            endpoint,
            format,
            data: Vec::new(),
            stored_as: written,
            result: None,
            rate_limit,
            protection,
        };
        // The data connection: a passive one uses (and uses up) the listener.
        let mut data_error = None;
        if endpoint == DataEndpoint::Passive && self.listener.take().is_none() {
            self.anomaly(format!("passive transfer {id:?} without a listener"));
            data_error = Some("no passive listener".to_owned());
        }
        let failure = self.fail_data.take();
        if let (None, Some(DataFailure::Connect(msg))) = (&data_error, &failure) {
            data_error = Some(msg.clone());
        }
        let ended = |bytes, result| {
            vec![Outcome::new(
                id,
                OutcomeKind::TransferEnded { bytes, result },
            )]
        };
        let prepared = match prepared {
            Err(e) => {
                rec.result = Some(Err(TransferError::Storage(e.clone())));
                self.push_record(rec);
                return ended(0, Err(TransferError::Storage(e)));
            }
            Ok(p) => p,
        };
        if let Some(msg) = data_error {
            rec.result = Some(Err(TransferError::DataConnection(msg.clone())));
            self.push_record(rec);
            return ended(0, Err(TransferError::DataConnection(msg)));
        }
        // The file is open: a store creates or truncates it now.
        if let Prepared::Receive { path, base } = &prepared {
            let existed = self.fs.exists(path);
            if let Err(e) = self.fs.put_file(path, base.clone()) {
                rec.result = Some(Err(TransferError::Storage(e.clone())));
                self.push_record(rec);
                return ended(0, Err(TransferError::Storage(e)));
            }
            // A new file gets the uploader's ownership; one that existed keeps its own.
            if let (false, Some(o)) = (existed, &ownership) {
                self.fs.set_ownership(path, o);
            }
        }
        self.push_record(rec);
        let started = Outcome::new(id, OutcomeKind::TransferStarted { stored_as });
        let (lost, not_placed) = match failure {
            Some(DataFailure::Lost(msg)) => (Some(msg), None),
            Some(DataFailure::NotPlaced(msg)) => (None, Some(msg)),
            _ => (None, None),
        };
        let running = Running {
            id,
            prepared,
            lost,
            not_placed,
        };
        if std::mem::take(&mut self.hold_next) || self.hold_all {
            self.running = Some(running);
            return vec![started];
        }
        let mut out = vec![started];
        out.extend(self.complete(running));
        out
    }

    fn prepare_retrieve(
        &self,
        path: &str,
        offset: u64,
        format: DataFormat,
        marker_interval: Option<u64>,
    ) -> Result<Prepared, StorageError> {
        let data = match self.fs.entries.get(path) {
            None => return Err(StorageError::NotFound),
            Some(Entry {
                node: Node::Dir, ..
            }) => return Err(StorageError::IsADirectory),
            Some(Entry {
                node: Node::File(d),
                ..
            }) => d,
        };
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let (wire, error) = encode(&data[start..], format, offset, marker_interval);
        Ok(Prepared::Send(wire, error))
    }

    fn prepare_store(&self, path: &str, mode: StoreMode) -> Result<Prepared, StorageError> {
        let target = match mode {
            StoreMode::Unique => {
                let mut found = None;
                for n in 0..1000u32 {
                    let candidate = if n == 0 {
                        path.to_owned()
                    } else {
                        format!("{path}.{n}")
                    };
                    if !self.fs.entries.contains_key(&candidate) {
                        found = Some(candidate);
                        break;
                    }
                }
                found.ok_or(StorageError::AlreadyExists)?
            }
            _ => path.to_owned(),
        };
        self.fs.check_parent(&target)?;
        let existing = match self.fs.entries.get(&target) {
            Some(Entry {
                node: Node::Dir, ..
            }) => return Err(StorageError::IsADirectory),
            Some(Entry {
                node: Node::File(d),
                ..
            }) => Some(d),
            None => None,
        };
        let base = match mode {
            StoreMode::Create | StoreMode::Unique => Vec::new(),
            StoreMode::Append => existing.cloned().unwrap_or_default(),
            StoreMode::Resume(n) => {
                let have = existing.map_or(0, |d| d.len() as u64);
                if n > have {
                    return Err(StorageError::Other(format!(
                        "restart offset {n} is beyond the end of the file ({have} bytes)"
                    )));
                }
                let keep = usize::try_from(n).unwrap_or(usize::MAX);
                existing.map_or_else(Vec::new, |d| d[..keep.min(d.len())].to_vec())
            }
        };
        Ok(Prepared::Receive { path: target, base })
    }

    /// Moves the bytes of a started transfer and returns its `TransferEnded`.
    pub(super) fn complete(&mut self, running: Running) -> Vec<Outcome> {
        let Running {
            id,
            prepared,
            lost,
            not_placed,
        } = running;
        let mut marks = Vec::new();
        let (wire, result) = match prepared {
            Prepared::Send(mut bytes, error) => match (lost, error) {
                (Some(msg), _) => {
                    bytes.truncate(bytes.len() / 2);
                    (bytes, Err(TransferError::ConnectionLost(Lost::Broken(msg))))
                }
                (None, Some(e)) => (bytes, Err(TransferError::Codec(e))),
                (None, None) => (bytes, Ok(())),
            },
            Prepared::Receive { path, mut base } => {
                let mut upload = self.uploads.pop_front().unwrap_or_default();
                let result = match &lost {
                    Some(msg) => {
                        upload.truncate(upload.len() / 2);
                        Err(TransferError::ConnectionLost(Lost::Broken(msg.clone())))
                    }
                    None => Ok(()),
                };
                let format = self
                    .transfers
                    .iter()
                    .rev()
                    .find(|r| r.id == id)
                    .map_or_else(DataFormat::default, |r| r.format);
                let decoded = if format.is_identity() {
                    base.extend_from_slice(&upload);
                    Ok(())
                } else {
                    decode(&upload, format, &mut base, |m| {
                        marks.push(Outcome::new(
                            id,
                            OutcomeKind::TransferMark {
                                sender: m.sender,
                                offset: m.offset,
                            },
                        ))
                    })
                };
                let result = match (result, decoded) {
                    (Ok(()), Err(e)) => Err(TransferError::Codec(e)),
                    (r, _) => r,
                };
                if result.is_err() && !matches!(result, Err(TransferError::ConnectionLost(_))) {
                    // A failed conversion keeps the file as it was.
                    marks.extend(self.ended(id, upload, result));
                    return marks;
                }
                self.fs.set_clock(self.wall_now());
                if let (Ok(()), Some(msg)) = (&result, not_placed) {
                    let e = StorageError::Other(msg);
                    marks.extend(self.ended(id, upload, Err(TransferError::NotPlaced(e))));
                    return marks;
                }
                match self.fs.put_file(&path, base) {
                    Ok(()) => (upload, result),
                    Err(e) => (upload, Err(TransferError::Storage(e))),
                }
            }
        };
        marks.extend(self.ended(id, wire, result));
        marks
    }

    /// Records how transfer `id` ended, having moved `wire`, and reports it.
    fn ended(
        &mut self,
        id: ActionId,
        wire: Vec<u8>,
        result: Result<(), TransferError>,
    ) -> Vec<Outcome> {
        let bytes = wire.len() as u64;
        if let Some(rec) = self.record_mut(id) {
            rec.data = wire;
            rec.result = Some(result.clone());
        }
        vec![Outcome::new(
            id,
            OutcomeKind::TransferEnded { bytes, result },
        )]
    }

    fn abort(&mut self, transfer: ActionId) -> Vec<Outcome> {
        if self
            .held_checksum
            .as_ref()
            .is_some_and(|(id, _)| *id == transfer)
        {
            self.held_checksum = None;
            let aborted = OutcomeKind::Checksummed(Err(TransferError::Aborted));
            return vec![Outcome::new(transfer, aborted)];
        }
        match &self.running {
            Some(r) if r.id == transfer => {
                self.running = None;
                if let Some(rec) = self.record_mut(transfer) {
                    rec.result = Some(Err(TransferError::Aborted));
                }
                vec![Outcome::new(
                    transfer,
                    OutcomeKind::TransferEnded {
                        bytes: 0,
                        result: Err(TransferError::Aborted),
                    },
                )]
            }
            // Already finished: nothing to stop.
            _ => Vec::new(),
        }
    }
}
