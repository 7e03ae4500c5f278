//! Directory listings: LIST, NLST, MLSD on the data connection and STAT of a path on the
//! control connection, with globs on the last component.

use super::files::Check;
use super::requests::{ListKind, ListRequest, Op};
use super::{Pending, Session};
use crate::action::{ActionKind, StorageError};
use crate::listing::{self, EntryRole, FileInfo};
use crate::policy::{self, Access};
use crate::time::UnixTime;

impl Session {
    pub(super) fn cmd_list(&mut self, kind: ListKind, arg: Option<&str>) {
        if kind != ListKind::Stat && !self.need_data() {
            return;
        }
        let raw = arg.unwrap_or("");
        // A glob applies to the last component: list its directory and filter.
        let (dir_part, pattern) = match raw.rfind('/') {
            Some(i) if listing::is_glob(&raw[i + 1..]) => (&raw[..=i], Some(&raw[i + 1..])),
            None if listing::is_glob(raw) => ("", Some(raw)),
            _ => (raw, None),
        };
        if pattern.is_some() && kind == ListKind::Mlsd {
            self.reply(501, "MLSD does not take wildcards.");
            return;
        }
        let Some(target) = self.resolve(if dir_part.is_empty() { "." } else { dir_part }) else {
            return;
        };
        let req = ListRequest {
            kind,
            target: target.clone(),
            pattern: pattern.map(str::to_owned),
            exact: None,
            prefix: if pattern.is_some() {
                dir_part.to_owned()
            } else {
                String::new()
            },
            dir: None,
        };
        self.run_check(Check::new(Op::List(Box::new(req)), target));
    }

    /// The target's metadata is in: list a directory (if readable), or a file alone.
    pub(super) fn list_target(&mut self, mut req: ListRequest, info: FileInfo) {
        if info.is_dir() {
            if !policy::allowed(self.principal(), &info, Access::Read) {
                self.reply(
                    550,
                    &format!("Cannot list {}: permission denied.", req.target),
                );
                return;
            }
            let path = req.target.clone();
            req.dir = Some(info);
            self.wait(
                ActionKind::ReadDir { path },
                Pending::ListRead(Box::new(req)),
            );
            return;
        }
        if req.kind == ListKind::Mlsd {
            self.reply(501, "MLSD needs a directory; use MLST for a file.");
            return;
        }
        // A file: list it alone, as ls does, from its directory's entries.
        req.exact = Some(req.target.file_name().to_owned());
        let path = req.target.parent();
        self.wait(
            ActionKind::ReadDir { path },
            Pending::ListRead(Box::new(req)),
        );
    }

    pub(super) fn list_read_outcome(
        &mut self,
        req: ListRequest,
        result: Result<Vec<FileInfo>, StorageError>,
        now: UnixTime,
    ) {
        match result {
            Ok(entries) => self.list_entries(req, entries, now),
            Err(e) => self.reply(550, &format!("Cannot list {}: {e}.", req.target)),
        }
    }

    fn list_entries(&mut self, req: ListRequest, mut entries: Vec<FileInfo>, now: UnixTime) {
        if let Some(p) = &req.pattern {
            entries.retain(|e| listing::glob_match(p, &e.name));
        }
        if let Some(name) = &req.exact {
            entries.retain(|e| e.name == *name);
        }
        entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        let mut text = String::with_capacity(entries.len() * 80);
        match req.kind {
            ListKind::List | ListKind::Stat => {
                for e in &entries {
                    listing::write_list_line(e, now, &mut text);
                }
            }
            ListKind::Nlst => {
                for e in &entries {
                    text.push_str(&req.prefix);
                    text.push_str(&e.name);
                    text.push_str("\r\n");
                }
            }
            ListKind::Mlsd => {
                if let Some(d) = &req.dir {
                    let (parent, name) = (req.target.parent(), req.target.file_name());
                    let perm = self.perm_fact(None, d, &parent, name);
                    listing::write_mlsd_line(d, EntryRole::Current, perm, &self.facts, &mut text);
                }
                for e in &entries {
                    let perm = self.perm_fact(req.dir.as_ref(), e, &req.target, &e.name);
                    listing::write_mlsd_line(e, EntryRole::Entry, perm, &self.facts, &mut text);
                }
            }
        }
        if req.kind == ListKind::Stat {
            let mut body = format!("Status of {}:\n", req.target);
            body.push_str(&text.replace("\r\n", "\n"));
            body.push_str("End of status");
            // RFC 959: 212 is directory status, 213 file status.
            let code = if req.exact.is_some() { 213 } else { 212 };
            self.reply(code, &body);
            return;
        }
        let verb = match req.kind {
            ListKind::List => "LIST",
            ListKind::Nlst => "NLST",
            _ => "MLSD",
        };
        let what = format!("{verb} {}", req.target);
        self.start_listing(text.into_bytes(), what);
    }
}
