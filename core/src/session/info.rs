//! Informational commands and SITE: FEAT, OPTS, HELP, STAT (server status), and the SITE
//! commands (HELP, ZONE, CHMOD for everyone; WHO, STAT, DESCUSER for administrators).

use super::{Login, Pending, Session};
use crate::action::{ActionKind, AdminInfo, AdminQuery, ServerStats, UserSummary};
use crate::codec;
use crate::command;
use crate::reply::Reply;
use crate::time::UnixTime;
use core::fmt::Write;

/// Which SITE command an admin query serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AdminCommand {
    Who,
    Stat,
    DescUser,
}

const SITE_HELP: &str = "The following SITE commands are recognized:
 CHMOD <mode> <path>  change the permission bits of an entry you own
 CODEPAGE [<page>]    the EBCDIC code page of TYPE E: IBM-1047 or IBM-037
 DESCUSER <user>      describe a user's settings (administrators)
 HELP                 this list
 STAT                 server statistics (administrators)
 WHO                  the logged-in sessions (administrators)
 ZONE                 the time zone of the times this server prints
Help OK.";

impl Session {
    pub(super) fn cmd_feat(&mut self) {
        let mlst = self.facts.feat_line();
        let hash = self.hash_feat_line();
        let lines = [
            "EPRT",
            "EPSV",
            hash.as_str(),
            "LANG EN*",
            "LPRT",
            "LPSV",
            "MDTM",
            "MFMT",
            mlst.as_str(),
            "MODE Z",
            "PASV",
            "PRET",
            "RANG STREAM",
            "REST STREAM",
            "SIZE",
            "TVFS",
            "UTF8",
            "XCRC",
            "XMD5",
            "XSHA1",
            "XSHA256",
            "XSHA512",
        ];
        let tls: &[&str] = match (self.config.tls_available, self.config.allow_ccc) {
            (true, true) => &["AUTH TLS", "AUTH SSL", "PBSZ", "PROT", "CCC"],
            (true, false) => &["AUTH TLS", "AUTH SSL", "PBSZ", "PROT"],
            (false, _) => &[],
        };
        let all = tls.iter().copied().chain(lines);
        self.push_reply(Reply::with_body(211, "Features:", all, "End"));
    }

    pub(super) fn cmd_opts(&mut self, arg: &str) {
        let (name, value) = match arg.find(' ') {
            Some(i) => (&arg[..i], arg[i + 1..].trim()),
            None => (arg, ""),
        };
        if name.eq_ignore_ascii_case("UTF8") {
            if value.is_empty() || value.eq_ignore_ascii_case("ON") {
                self.reply(200, "Always in UTF8 mode.");
            } else {
                self.reply(504, "UTF8 cannot be turned off; names are always UTF-8.");
            }
        } else if name.eq_ignore_ascii_case("MODE") {
            self.opts_mode(value);
        } else if name.eq_ignore_ascii_case("HASH") {
            self.opts_hash(value);
        } else if name.eq_ignore_ascii_case("MLST") {
            let chosen = self.facts.select(value);
            self.reply(200, format!("MLST OPTS {chosen}").trim_end());
        } else {
            self.reply(501, "Option not understood.");
        }
    }

    /// LANG (RFC 2640 §4): replies are in English; `LANG`, `LANG EN` and `LANG EN-*` say
    /// so, another language is 504.
    pub(super) fn cmd_lang(&mut self, tag: Option<&str>) {
        let english = |t: &str| {
            t.eq_ignore_ascii_case("EN")
                || t.len() > 3 && t.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("EN-"))
        };
        match tag {
            None => self.reply(200, "Responses in English (EN)."),
            Some(t) if english(t) => self.reply(200, "Responses changed to EN."),
            Some(_) => self.reply(504, "Language not supported; replies are in English (EN)."),
        }
    }

    /// PRET (announce the next transfer, for servers that pick a data node per transfer):
    /// this server needs no notice, so a transfer command is acknowledged.
    pub(super) fn cmd_pret(&mut self, arg: &str) {
        let verb = arg.split(' ').next().unwrap_or("");
        let transfer = ["RETR", "STOR", "STOU", "APPE", "LIST", "NLST", "MLSD"];
        match transfer.iter().find(|v| v.eq_ignore_ascii_case(verb)) {
            Some(v) => self.reply(200, &format!("Ready for {v}.")),
            None => self.reply(
                501,
                "PRET takes the transfer command that follows (RETR, STOR, LIST...).",
            ),
        }
    }

    pub(super) fn cmd_help(&mut self, arg: Option<&str>) {
        match arg {
            None => {
                let mut text = String::from("The following commands are recognized:\n");
                for row in command::VERBS.chunks(8) {
                    for v in row {
                        let _ = write!(text, " {:<7}", v.name);
                    }
                    text.push('\n');
                }
                text.push_str("Help OK.");
                self.reply(214, &text);
            }
            Some(verb) => match command::verb_info(verb) {
                Some(info) => {
                    let text = format!("Syntax: {}", info.syntax);
                    self.reply(214, &text);
                }
                None => {
                    let shown: String = verb.chars().take(16).collect();
                    self.reply(502, &format!("Unknown command '{shown}'."));
                }
            },
        }
    }

    pub(super) fn cmd_server_status(&mut self) {
        let mut text = String::from("Wharf FTP server status:\n");
        let _ = writeln!(text, " Connected to {}", self.peer.ip());
        match &self.login {
            Login::In(a) => {
                let _ = writeln!(text, " Logged in as {}", a.name);
            }
            _ => text.push_str(" Not logged in\n"),
        }
        let f = &self.format;
        let _ = writeln!(
            text,
            " TYPE: {}; STRUcture: {}; transfer MODE: {}",
            match f.representation {
                codec::Representation::Ascii(codec::FormatControl::NonPrint) => "ASCII".into(),
                codec::Representation::Ascii(fc) => format!("ASCII {}", fc_letter(fc)),
                codec::Representation::Ebcdic(fc, page) => {
                    format!("EBCDIC {} ({})", fc_letter(fc), page.name())
                }
                codec::Representation::Image => "BINARY".into(),
            },
            match f.structure {
                codec::Structure::File => "File",
                codec::Structure::Record => "Record",
                codec::Structure::Page => "Page",
            },
            match f.mode {
                codec::Mode::Stream => "Stream".into(),
                codec::Mode::Block => "Block".into(),
                codec::Mode::Compressed => "Compressed".into(),
                codec::Mode::Deflate { level } => format!("Z (deflate, level {level})"),
            }
        );
        let _ = writeln!(text, " {}", self.tls_status());
        text.push_str(match self.data {
            super::DataSetup::None => " No data connection\n",
            super::DataSetup::Passive => " Passive mode: waiting for the data connection\n",
            super::DataSetup::Active(_) => " Active mode: will connect to the client\n",
        });
        text.push_str("End of status");
        self.reply(211, &text);
    }

    pub(super) fn cmd_site(&mut self, arg: &str) {
        let mut words = arg.split_ascii_whitespace();
        let sub = words.next().unwrap_or("");
        let is = |name: &str| sub.eq_ignore_ascii_case(name);
        if is("HELP") {
            self.reply(214, SITE_HELP);
        } else if is("ZONE") {
            // Every time this server prints (LIST, MDTM, MLSD, SITE) is UTC.
            self.reply(200, "+0000");
        } else if is("CHMOD") {
            self.site_chmod(arg[sub.len()..].trim_start());
        } else if is("CODEPAGE") {
            let page = words.next().unwrap_or("");
            self.site_codepage(page);
        } else if is("WHO") {
            self.admin_query(AdminCommand::Who, AdminQuery::Who, "WHO");
        } else if is("STAT") {
            self.admin_query(AdminCommand::Stat, AdminQuery::Stat, "STAT");
        } else if is("DESCUSER") {
            match words.next() {
                Some(user) => {
                    let q = AdminQuery::DescribeUser(user.to_owned());
                    self.admin_query(AdminCommand::DescUser, q, "DESCUSER");
                }
                None => self.reply(501, "SITE DESCUSER needs a user name."),
            }
        } else {
            let shown: String = sub.chars().take(16).collect();
            self.reply(
                500,
                &format!("Unknown SITE command '{shown}'; SITE HELP lists them."),
            );
        }
    }

    fn site_chmod(&mut self, args: &str) {
        if !self.config.site_chmod {
            self.reply(502, "SITE CHMOD is disabled on this server.");
            return;
        }
        let (mode, path) = match args.split_once(' ') {
            Some((m, p)) if !p.trim().is_empty() => (m, p.trim_start()),
            _ => {
                self.reply(501, "Usage: SITE CHMOD <octal mode> <path>.");
                return;
            }
        };
        let mode = match u32::from_str_radix(mode, 8) {
            Ok(m) if m <= 0o777 && !mode.is_empty() && mode.len() <= 4 => m,
            _ => {
                self.reply(
                    501,
                    "SITE CHMOD takes an octal mode from 000 to 777 (no setuid, setgid or sticky bits).",
                );
                return;
            }
        };
        self.check_change(path, super::requests::Op::Chmod { mode });
    }

    fn admin_query(&mut self, cmd: AdminCommand, query: AdminQuery, name: &str) {
        if !self.logged_in().is_some_and(|a| a.admin) {
            self.reply(
                530,
                &format!("Permission denied: SITE {name} is for administrators."),
            );
            return;
        }
        self.wait(ActionKind::AdminQuery(query), Pending::Admin(cmd));
    }

    pub(super) fn admin_outcome(&mut self, cmd: AdminCommand, r: Result<AdminInfo, String>) {
        let text = match (cmd, r) {
            (_, Err(e)) => {
                self.reply(451, &format!("The server could not answer: {e}"));
                return;
            }
            (AdminCommand::Who, Ok(AdminInfo::Who(sessions))) => {
                let mut t = format!("{} logged-in session(s):\n", sessions.len());
                let _ = writeln!(
                    t,
                    " {:<24} {:<40} {:<20} {:<20}",
                    "USER", "CLIENT", "LOGIN TIME", "LAST COMMAND"
                );
                for s in &sessions {
                    let _ = writeln!(
                        t,
                        " {:<24} {:<40} {:<20} {:<20}",
                        s.user,
                        s.peer.to_string(),
                        iso(s.login_time),
                        iso(s.last_command)
                    );
                }
                t.push_str("End of list.");
                t
            }
            (AdminCommand::Stat, Ok(AdminInfo::Stat(s))) => format_stats(&s),
            (AdminCommand::DescUser, Ok(AdminInfo::User(Some(u)))) => format_user(&u),
            (AdminCommand::DescUser, Ok(AdminInfo::User(None))) => {
                self.reply(550, "No such user.");
                return;
            }
            _ => {
                self.internal_error();
                return;
            }
        };
        self.reply(200, &text);
    }
}

fn iso(t: UnixTime) -> String {
    let mut s = String::new();
    t.write_iso8601(&mut s);
    s
}

fn format_stats(s: &ServerStats) -> String {
    let rows: [(&str, String); 14] = [
        ("Start time", iso(s.start_time)),
        ("Uploads", s.uploads.to_string()),
        ("Downloads", s.downloads.to_string()),
        ("Deletes", s.deletes.to_string()),
        ("Bytes uploaded", s.bytes_up.to_string()),
        ("Bytes downloaded", s.bytes_down.to_string()),
        ("Directories created", s.dirs_created.to_string()),
        ("Directories removed", s.dirs_removed.to_string()),
        ("Current logins", s.logins_current.to_string()),
        ("Total logins", s.logins_total.to_string()),
        ("Current anonymous logins", s.anonymous_current.to_string()),
        ("Total anonymous logins", s.anonymous_total.to_string()),
        ("Current connections", s.connections_current.to_string()),
        ("Total connections", s.connections_total.to_string()),
    ];
    let mut t = String::from("Server statistics:\n");
    for (k, v) in rows {
        let _ = writeln!(t, " {k:<25}: {v}");
    }
    t.push_str("End of statistics.");
    t
}

fn format_user(u: &UserSummary) -> String {
    let limit = |v: Option<u64>, unit: &str| match v {
        Some(n) if n > 0 => format!("{n}{unit}"),
        _ => "unlimited".to_owned(),
    };
    let rows: [(&str, String); 14] = [
        ("userid", u.name.clone()),
        ("userpassword", "********".into()),
        ("partner", u.partner.clone().unwrap_or_else(|| "-".into())),
        ("homedirectory", u.home.clone()),
        ("enableflag", u.enabled.to_string()),
        ("writepermission", u.write.to_string()),
        ("admin", u.admin.to_string()),
        (
            "idletime",
            u.idle_time
                .map_or_else(|| "server default".into(), |s| format!("{s} s")),
        ),
        ("uploadrate", limit(u.upload_rate, " bytes/s")),
        ("downloadrate", limit(u.download_rate, " bytes/s")),
        ("maxloginnumber", limit(u.max_logins.map(u64::from), "")),
        (
            "maxloginperip",
            limit(u.max_logins_per_ip.map(u64::from), ""),
        ),
        (
            "allowedips",
            if u.allowed_ips.is_empty() {
                "any".into()
            } else {
                u.allowed_ips.join(", ")
            },
        ),
        (
            "fxppeers",
            match &u.fxp_peers {
                None => "server default".into(),
                Some(peers) if peers.is_empty() => "none".into(),
                Some(peers) => peers.join(", "),
            },
        ),
    ];
    let mut t = format!("User {}:\n", u.name);
    for (k, v) in rows {
        let _ = writeln!(t, " {k:<16}: {v}");
    }
    t.push_str("End of description.");
    t
}

fn fc_letter(f: codec::FormatControl) -> &'static str {
    match f {
        codec::FormatControl::NonPrint => "N",
        codec::FormatControl::Telnet => "T",
        codec::FormatControl::Asa => "C",
    }
}
