//! The transcript runner: plays a `tests/transcripts/*.ftp` file against a
//! [`wharf_core::Session`] driven by the core's test kit ([`wharf_core::testkit::Harness`]:
//! in-memory files, a user table and a clock that moves only when told) and checks every reply.
//!
//! # Format
//!
//! One instruction per line; blank lines and lines starting with `#` are ignored.
//!
//! - `C: <command>` sends `<command>` followed by CRLF (the text after `C: ` as written).
//! - `S: <pattern>` is the next reply line. Each line of a multi-line reply is its own `S:`
//!   line. Every reply line must be matched: a reply nobody expected fails the transcript at the
//!   next `C:` (or other step that drives the session) and at the end of the file.
//! - `D: <pattern>` is one line of what the last transfer carried on the data connection (a
//!   listing, a download, an upload), without its CRLF. Consecutive `D:` lines are the whole
//!   payload, line by line.
//!
//! - `E: <pattern>` is the next event the session emitted (connect, login, upload_complete,
//!   ...), rendered as `<kind> [<path>] [-> <to>] [size=<n>] [reason=<text>]`, e.g.
//!   `upload_complete /Outbox/a.txt size=5` or `login_failed reason={*}`. Events not checked by
//!   an `E:` line are allowed; `@events-clear` forgets those so far and `@expect-no-events`
//!   checks that none is left unchecked.
//!
//! In `S:`, `D:` and `E:` patterns, `{*}` matches any run of characters (possibly none), `{n}` a run
//! of one or more digits, and `{{` a literal `{`. Everything else matches itself.
//!
//! Directives set up the fake world, drive time and check state. Arguments are words or
//! double-quoted strings with the escapes `\r`, `\n`, `\t`, `\\`, `\"` and `\xHH`.
//!
//! Before the session starts (it starts at the first step that needs it):
//! - `@config <key> <value>`: a [`Config`] field: `greeting`, `max_line_len`,
//!   `max_buffered_input`, `idle_timeout`, `login_timeout`, `max_login_failures`,
//!   `login_failure_delay`, `passive_address`, `fxp_peers` (comma-separated CIDRs),
//!   `allow_privileged_data_port`, `tls_available`, `tls_control` and `tls_data` (`none`,
//!   `accounts`, `all`), `allow_ccc`, `require_tls_session_reuse` (durations as `300s`,
//!   `500ms`, `5m`).
//! - `@tls-override <user> [control=true|false] [data=true|false]`: the user's own TLS
//!   requirements ([`Config::tls_overrides`]).
//! - `@implicit`: the session starts as on an implicit-TLS listener (handshake done before the
//!   greeting; data connections protected by default).
//! - `@tls-identity <user>`: the next TLS handshakes report a client certificate that maps to
//!   `<user>`.
//! - `@peer <addr:port>`, `@local <addr:port>`: the client's and the server's address
//!   (default `127.0.0.1:40000` and `127.0.0.1:2121`).
//! - `@wall <YYYYMMDDHHMMSS>`: the wall-clock time at the start (default 20260301120000, UTC).
//!
//! At any time:
//! - `@user <name> <password> [flags]`: a user; `partner/user` names give the user a
//!   partner. Flags: `readonly`, `admin`, `fixed=/Inbox,/Outbox`, `file_mode=0444`,
//!   `dir_mode=0755`, `max_logins=N`, `max_logins_per_ip=N`, `allow_ip=CIDR,...`, `fxp=CIDR,...`,
//!   `partner_allow=CIDR,...`, `partner_deny=CIDR,...`, `idle=30s`, `upload_rate=N`,
//!   `download_rate=N`.
//! - `@sessions total=N anonymous=N from_ip=N user=N user_from_ip=N`: logins other sessions
//!   hold, for the login limits.
//! - `@anonymous` (read-only anonymous login),
//!   `@users-unavailable ["reason"]` (the user store fails).
//! - `@dir <path> [options]`, `@file <path> "<contents>" [options]` or `@file <path> <size>`
//!   (seeded pseudo-random contents); options `modified=YYYYMMDDHHMMSS`, `mode=0600`,
//!   `owner=<name>`, `group=<name>`. New entries get the current wall-clock time.
//!
//! Steps (each first requires that every reply so far was matched):
//! - `@login <name> <password>`: USER and PASS, expecting 331 and 230, replies not shown.
//! - `@raw "<bytes>"`: sends bytes as they are (pipelining, Telnet IAC, bare LF...);
//!   `@raw-repeat <n> "<bytes>"` sends them `n` times over, in one piece.
//! - `@long-line <n>`: sends a NOOP line of `<n>` bytes (before CRLF).
//! - `@advance <duration>`: moves the clock, firing timeouts.
//! - `@finish-transfer`: completes a held transfer; `@progress <bytes>` reports its progress.
//!
//! Fault injection and transfer control (for the next transfer or listener):
//! - `@upload "<bytes>"` or `@upload <size>`: what the client sends on the next upload.
//! - `@hold-transfer`: the next transfer starts and runs until `@finish-transfer` or ABOR.
//! - `@data-fails ["reason"]`: the next data connection cannot be opened (425).
//! - `@data-lost ["reason"]`: the next data connection breaks half-way (426).
//! - `@place-fails ["reason"]`: all of the next upload arrives but cannot be put in place (451).
//! - `@pasv-fails ["reason"]`: the next passive listener cannot be opened.
//!
//! Checks:
//! - `@expect-data "<bytes>"`: the last transfer's payload, exactly.
//! - `@expect-data-file <path> [offset]`: the last transfer's payload equals that file's bytes
//!   from the offset (for binary downloads).
//! - `@expect-file <path> "<contents>"`, `@expect-no-file <path>`, `@expect-dir <path>`.
//! - `@expect-endpoint passive` or `@expect-endpoint active <addr:port>`: how the last
//!   transfer's data connection was made.
//! - `@expect-listen-peer <ip> [CIDR,...]`: whom the last passive listener accepts: the
//!   client, and the third-party transfer peers listed (none when omitted).
//! - `@closed`, `@open`: whether the session has closed the control connection.
//! - `@expect-rate <bytes/s>|none`: the last transfer's rate limit.
//! - `@expect-logins-held <n>`: logins the fake runtime counts for this session (1 while logged
//!   in, 0 after logout: a login is released exactly once).
//! - `@expect-tls-stops <n>`: how many times the session has asked to end TLS on the control
//!   connection (`StopTls`: CCC, REIN).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use wharf_core::action::{Event, LoginCounts};
use wharf_core::policy::{Cidr, IpFilter};
use wharf_core::testkit::{seeded_bytes, DataFailure, Harness, HarnessBuilder, MemFs};
use wharf_core::time::Civil;
use wharf_core::{
    Account, Config, DataEndpoint, SessionReuse, TlsOverride, TlsPolicy, UnixTime, VirtualPath,
};

/// Runs every `*.ftp` file of `dir`, in name order. Returns the names run, or every failure
/// (one message per failing file). A directory without transcripts is an error.
pub fn run_dir(dir: &Path, filter: Option<&str>) -> Result<Vec<String>, Vec<String>> {
    let mut files: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "ftp"))
            .collect(),
        Err(e) => return Err(vec![format!("{}: {e}", dir.display())]),
    };
    files.sort();
    if files.is_empty() {
        return Err(vec![format!("{}: no *.ftp transcripts", dir.display())]);
    }
    let mut ran = Vec::new();
    let mut failures = Vec::new();
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if filter.is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let shown = format!("tests/transcripts/{name}");
        match std::fs::read_to_string(&path) {
            Ok(text) => match run_str(&shown, &text) {
                Ok(()) => ran.push(name),
                Err(e) => failures.push(e),
            },
            Err(e) => failures.push(format!("{shown}: {e}")),
        }
    }
    if failures.is_empty() {
        Ok(ran)
    } else {
        Err(failures)
    }
}

/// Runs one transcript; `name` is used in error messages (`name:line: ...`).
pub fn run_str(name: &str, text: &str) -> Result<(), String> {
    let mut r = Runner {
        builder: Some(Harness::builder()),
        h: None,
        pending: VecDeque::new(),
        recent: VecDeque::new(),
        data_block: Vec::new(),
        steps: 0,
        events: VecDeque::new(),
    };
    let mut lineno = 0;
    for (i, raw) in text.lines().enumerate() {
        lineno = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        r.line(line, lineno)
            .map_err(|e| r.report(name, lineno, &e))?;
    }
    r.finish().map_err(|e| r.report(name, lineno.max(1), &e))?;
    if r.steps == 0 {
        return Err(format!("{name}: the transcript sends nothing"));
    }
    Ok(())
}

struct Runner {
    builder: Option<HarnessBuilder>,
    h: Option<Harness>,
    /// Reply lines received and not yet matched by `S:`.
    pending: VecDeque<String>,
    /// The last reply lines received, for error messages.
    recent: VecDeque<String>,
    /// Consecutive `D:` lines: (line number, pattern).
    data_block: Vec<(usize, String)>,
    steps: usize,
    /// Events received and not yet matched by `E:` (or cleared).
    events: VecDeque<Event>,
}

type Res<T = ()> = Result<T, String>;

impl Runner {
    fn report(&self, name: &str, line: usize, msg: &str) -> String {
        let mut s = format!("{name}:{line}: {msg}");
        if !self.recent.is_empty() {
            s.push_str("\n    last replies received:");
            for l in &self.recent {
                let _ = write!(s, "\n      {l}");
            }
        }
        s
    }

    fn line(&mut self, line: &str, no: usize) -> Res {
        let is_data = line.starts_with("D:");
        if !is_data && !self.data_block.is_empty() {
            self.check_data_block()?;
        }
        if line.trim().is_empty() || line.starts_with('#') {
            return Ok(());
        }
        if let Some(rest) = line.strip_prefix("C:") {
            let cmd = rest.strip_prefix(' ').unwrap_or(rest);
            let mut bytes = cmd.as_bytes().to_vec();
            bytes.extend_from_slice(b"\r\n");
            return self.step(|h| h.send(&bytes));
        }
        if let Some(rest) = line.strip_prefix("S:") {
            let pat = rest.strip_prefix(' ').unwrap_or(rest);
            self.started();
            self.sync();
            return match self.pending.pop_front() {
                None => Err(format!("expected reply `{pat}`, but no reply came")),
                Some(got) if matches(pat, &got) => Ok(()),
                Some(got) => Err(format!("expected reply `{pat}`\n    got           `{got}`")),
            };
        }
        if let Some(rest) = line.strip_prefix("E:") {
            let pat = rest.strip_prefix(' ').unwrap_or(rest);
            self.started();
            self.sync();
            return match self.events.pop_front() {
                None => Err(format!("expected event `{pat}`, but no event came")),
                Some(e) if matches(pat, &render_event(&e)) => Ok(()),
                Some(e) => Err(format!(
                    "expected event `{pat}`\n    got            `{}`",
                    render_event(&e)
                )),
            };
        }
        if let Some(rest) = line.strip_prefix("D:") {
            let pat = rest.strip_prefix(' ').unwrap_or(rest);
            self.data_block.push((no, pat.to_owned()));
            return Ok(());
        }
        if let Some(rest) = line.strip_prefix('@') {
            let toks = tokenize(rest)?;
            let Some((Tok::Word(verb), args)) = toks.split_first() else {
                return Err(format!("bad directive `{line}`"));
            };
            return self.directive(verb, args);
        }
        Err(format!(
            "not a transcript line (C:, S:, D:, @directive or # comment): `{line}`"
        ))
    }

    fn finish(&mut self) -> Res {
        if !self.data_block.is_empty() {
            self.check_data_block()?;
        }
        self.started();
        self.sync();
        self.no_unmatched()
    }

    fn started(&mut self) -> &mut Harness {
        if self.h.is_none() {
            let b = self.builder.take().unwrap_or_default();
            self.h = Some(b.start(Instant::now()));
        }
        self.h.as_mut().expect("started above")
    }

    fn sync(&mut self) {
        let Some(h) = self.h.as_mut() else {
            return;
        };
        self.events.extend(h.take_events());
        for r in h.take_replies() {
            for l in r.as_str().split("\r\n").filter(|l| !l.is_empty()) {
                self.pending.push_back(l.to_owned());
                if self.recent.len() >= 12 {
                    self.recent.pop_front();
                }
                self.recent.push_back(l.to_owned());
            }
        }
    }

    fn no_unmatched(&mut self) -> Res {
        if self.pending.is_empty() {
            return Ok(());
        }
        let lines: Vec<String> = self.pending.iter().map(|l| format!("`{l}`")).collect();
        Err(format!(
            "reply not matched by any S: line: {}",
            lines.join(", ")
        ))
    }

    /// Drives the session after checking that every reply so far was expected.
    fn step(&mut self, f: impl FnOnce(&mut Harness)) -> Res {
        self.started();
        self.sync();
        self.no_unmatched()?;
        self.steps += 1;
        f(self.started());
        self.sync();
        Ok(())
    }

    fn before_start(&mut self, what: &str) -> Res<&mut Option<HarnessBuilder>> {
        if self.h.is_some() {
            return Err(format!("@{what} must come before the session starts"));
        }
        Ok(&mut self.builder)
    }

    fn with_builder(
        &mut self,
        what: &str,
        f: impl FnOnce(HarnessBuilder) -> HarnessBuilder,
    ) -> Res {
        let slot = self.before_start(what)?;
        let b = slot.take().unwrap_or_default();
        *slot = Some(f(b));
        Ok(())
    }

    /// Runs `f` on the file system, before or after the start.
    fn with_fs(&mut self, f: impl FnOnce(&mut MemFs) -> Res) -> Res {
        if let Some(h) = self.h.as_mut() {
            let now = h.wall_now();
            h.fs.set_clock(now);
            return f(&mut h.fs);
        }
        let b = self.builder.take().unwrap_or_default();
        let mut result = Ok(());
        self.builder = Some(b.files(|fs| result = f(fs)));
        result
    }

    fn harness(&mut self) -> &mut Harness {
        self.started()
    }

    fn check_data_block(&mut self) -> Res {
        let block = std::mem::take(&mut self.data_block);
        let Some(t) = self.h.as_ref().and_then(|h| h.last_transfer()) else {
            return Err("D: lines, but no transfer has happened".into());
        };
        let text = String::from_utf8_lossy(&t.data).into_owned();
        let mut lines: Vec<&str> = text.split("\r\n").collect();
        if lines.last() == Some(&"") {
            lines.pop();
        } else if !text.is_empty() {
            return Err(format!(
                "the data does not end with CRLF; it was {:?}",
                text
            ));
        }
        for (i, (no, pat)) in block.iter().enumerate() {
            match lines.get(i) {
                None => {
                    return Err(format!(
                        "(D: line {no}) expected data line `{pat}`, but the data has only {} lines: {text:?}",
                        lines.len()
                    ))
                }
                Some(got) if matches(pat, got) => {}
                Some(got) => {
                    return Err(format!(
                        "(D: line {no}) expected data line `{pat}`\n    got                `{got}`"
                    ))
                }
            }
        }
        if lines.len() > block.len() {
            return Err(format!(
                "the data has {} more line(s) than the D: block: {:?}",
                lines.len() - block.len(),
                &lines[block.len()..]
            ));
        }
        Ok(())
    }

    fn directive(&mut self, verb: &str, args: &[Tok]) -> Res {
        match verb {
            "config" => {
                let key = word(args, 0, "a config key")?;
                let value = args.get(1).map(Tok::text).ok_or("@config needs a value")?;
                let value = if key == "greeting" {
                    args[1..]
                        .iter()
                        .map(Tok::text)
                        .collect::<Vec<_>>()
                        .join(" ")
                } else {
                    value
                };
                let mut err = Ok(());
                self.with_builder("config", |b| {
                    b.config(|c| err = set_config(c, &key, &value))
                })?;
                err
            }
            "peer" | "local" => {
                let addr: SocketAddr = word(args, 0, "an address")?
                    .parse()
                    .map_err(|e| format!("bad address: {e}"))?;
                if verb == "peer" {
                    self.with_builder(verb, |b| b.peer(addr))
                } else {
                    self.with_builder(verb, |b| b.local(addr))
                }
            }
            "wall" => {
                let t = parse_time(&word(args, 0, "a time")?)?;
                self.with_builder(verb, |b| b.wall_clock(t))
            }
            "implicit" => self.with_builder(verb, |b| b.implicit_tls()),
            "tls-identity" => {
                let user = text(args, 0, "a user name")?;
                self.harness().set_client_identity(Some(user));
                Ok(())
            }
            "tls-override" => {
                let user = text(args, 0, "a user name")?;
                let mut o = TlsOverride::default();
                for arg in &args[1..] {
                    let t = arg.text();
                    let (k, v) = t.split_once('=').ok_or_else(|| {
                        format!("@tls-override: `{t}` is not control=.. or data=..")
                    })?;
                    let v = Some(parse_bool(v)?);
                    match k {
                        "control" => o.control = v,
                        "data" => o.data = v,
                        _ => return Err(format!("@tls-override: unknown `{k}` (control, data)")),
                    }
                }
                self.with_builder(verb, |b| {
                    b.config(|c| {
                        c.tls_overrides.insert(user, o);
                    })
                })
            }
            "user" => {
                let name = text(args, 0, "a user name")?;
                let pw = text(args, 1, "a password")?;
                let account = user_account(&name, &args[2.min(args.len())..])?;
                match self.h.as_mut() {
                    Some(h) => h.add_user_account(&pw, account),
                    None => {
                        let b = self.builder.take().unwrap_or_default();
                        self.builder = Some(b.user_account(&pw, account));
                    }
                }
                Ok(())
            }
            "sessions" => {
                let mut c = LoginCounts::default();
                for opt in args {
                    let t = opt.text();
                    let (k, v) = t
                        .split_once('=')
                        .ok_or_else(|| format!("@sessions: `{t}` is not key=value"))?;
                    let n: u32 = v.parse().map_err(|_| format!("`{v}` is not a number"))?;
                    match k {
                        "total" => c.total = n,
                        "anonymous" => c.anonymous = n,
                        "from_ip" => c.from_ip = n,
                        "user" => c.user = n,
                        "user_from_ip" => c.user_from_ip = n,
                        _ => return Err(format!("@sessions: unknown count `{k}`")),
                    }
                }
                self.harness().set_other_sessions(c);
                Ok(())
            }
            "events-clear" => {
                self.started();
                self.sync();
                self.events.clear();
                Ok(())
            }
            "expect-no-events" => {
                self.started();
                self.sync();
                match self.events.front() {
                    None => Ok(()),
                    Some(e) => Err(format!("unexpected event `{}`", render_event(e))),
                }
            }
            "expect-rate" => {
                let want = match word(args, 0, "a rate or `none`")?.as_str() {
                    "none" => None,
                    n => Some(
                        n.parse::<u64>()
                            .map_err(|_| format!("`{n}` is not a rate"))?,
                    ),
                };
                let got = self
                    .harness()
                    .last_transfer()
                    .ok_or("@expect-rate: no transfer has happened")?
                    .rate_limit;
                if got == want {
                    Ok(())
                } else {
                    Err(format!(
                        "expected rate limit {want:?}, the plan had {got:?}"
                    ))
                }
            }
            "expect-logins-held" => {
                let n: u32 = word(args, 0, "a count")?
                    .parse()
                    .map_err(|_| "@expect-logins-held needs a number".to_string())?;
                let held = self.harness().logins_held();
                if held == n {
                    Ok(())
                } else {
                    Err(format!(
                        "expected {n} login(s) held, the runtime counts {held}"
                    ))
                }
            }
            "anonymous" => {
                match self.h.as_mut() {
                    Some(h) => h.set_anonymous(true),
                    None => {
                        let b = self.builder.take().unwrap_or_default();
                        self.builder = Some(b.anonymous());
                    }
                }
                Ok(())
            }
            "users-unavailable" => {
                let why = opt_text(args, 0, "the user store is down");
                self.harness().set_users_unavailable(Some(why));
                Ok(())
            }
            "dir" => {
                let path = text(args, 0, "a path")?;
                let opts = args[1..].to_vec();
                self.with_fs(|fs| {
                    fs.mkdir_all(&path)
                        .map_err(|e| format!("@dir {path}: {e}"))?;
                    apply_options(fs, &path, &opts)
                })
            }
            "file" => {
                let path = text(args, 0, "a path")?;
                let contents = match args.get(1) {
                    Some(Tok::Str(b)) => b.clone(),
                    Some(Tok::Word(w)) => {
                        let n: usize = w
                            .parse()
                            .map_err(|_| format!("@file: `{w}` is not a size or a \"string\""))?;
                        seeded_bytes(seed_of(&path), n)
                    }
                    None => return Err("@file needs contents or a size".into()),
                };
                let opts = args[2..].to_vec();
                self.with_fs(|fs| {
                    fs.write_file(&path, contents)
                        .map_err(|e| format!("@file {path}: {e}"))?;
                    apply_options(fs, &path, &opts)
                })
            }
            "login" => {
                let name = text(args, 0, "a user name")?;
                let pw = text(args, 1, "a password")?;
                let mut result = Ok(());
                self.step(|h| result = h.login(&name, &pw))?;
                self.pending.clear();
                result.map_err(|replies| format!("@login {name} failed: {replies:?}"))
            }
            "raw" => {
                let bytes = bytes_arg(args, 0)?;
                self.step(|h| h.send(&bytes))
            }
            "raw-repeat" => {
                let n: usize = number(args, 0)?;
                let bytes = bytes_arg(args, 1)?.repeat(n);
                self.step(|h| h.send(&bytes))
            }
            "long-line" => {
                let n: usize = number(args, 0)?;
                let mut bytes = b"NOOP ".to_vec();
                bytes.resize(n.max(5), b'x');
                bytes.extend_from_slice(b"\r\n");
                self.step(|h| h.send(&bytes))
            }
            "advance" => {
                let d = parse_duration(&word(args, 0, "a duration")?)?;
                self.step(|h| h.advance(d))
            }
            "finish-transfer" => {
                let mut ran = false;
                self.step(|h| ran = h.finish_transfer())?;
                if ran {
                    Ok(())
                } else {
                    Err("@finish-transfer: no transfer is running".into())
                }
            }
            "progress" => {
                let n: u64 = number(args, 0)?;
                let mut ran = false;
                self.step(|h| ran = h.progress(n))?;
                if ran {
                    Ok(())
                } else {
                    Err("@progress: no transfer is running".into())
                }
            }
            "upload" => {
                let bytes = match args.first() {
                    Some(Tok::Str(b)) => b.clone(),
                    Some(Tok::Word(w)) => {
                        let n: usize = w
                            .parse()
                            .map_err(|_| format!("@upload: `{w}` is not a size"))?;
                        seeded_bytes(n as u64, n)
                    }
                    None => return Err("@upload needs bytes or a size".into()),
                };
                self.harness().queue_upload(bytes);
                Ok(())
            }
            "hold-transfer" => {
                self.harness().hold_next_transfer();
                Ok(())
            }
            "data-fails" => {
                let why = opt_text(args, 0, "connection refused");
                self.harness().fail_next_data(DataFailure::Connect(why));
                Ok(())
            }
            "data-lost" => {
                let why = opt_text(args, 0, "connection reset by peer");
                self.harness().fail_next_data(DataFailure::Lost(why));
                Ok(())
            }
            "place-fails" => {
                let why = opt_text(args, 0, "the file could not be renamed into place");
                self.harness().fail_next_data(DataFailure::NotPlaced(why));
                Ok(())
            }
            "pasv-fails" => {
                let why = opt_text(args, 0, "no free port");
                self.harness().fail_next_passive(&why);
                Ok(())
            }
            "expect-data" => {
                let want = bytes_arg(args, 0)?;
                let got = self.last_data()?;
                if got == want {
                    Ok(())
                } else {
                    Err(format!(
                        "expected data {:?}\n    got           {:?}",
                        String::from_utf8_lossy(&want),
                        String::from_utf8_lossy(&got)
                    ))
                }
            }
            "expect-data-file" => {
                let path = text(args, 0, "a path")?;
                let offset: usize = if args.len() > 1 { number(args, 1)? } else { 0 };
                let got = self.last_data()?;
                let h = self.harness();
                let Some(file) = h.fs.file(&path) else {
                    return Err(format!("@expect-data-file: no file {path}"));
                };
                let want = file.get(offset..).unwrap_or(&[]);
                if got == want {
                    Ok(())
                } else {
                    Err(format!(
                        "the last transfer sent {} bytes, not the {} bytes of {path} from offset {offset}",
                        got.len(),
                        want.len()
                    ))
                }
            }
            "expect-file" => {
                let path = text(args, 0, "a path")?;
                let want = bytes_arg(args, 1)?;
                match self.harness().fs.file(&path) {
                    Some(got) if got == want.as_slice() => Ok(()),
                    Some(got) => Err(format!(
                        "{path} holds {:?}, expected {:?}",
                        String::from_utf8_lossy(got),
                        String::from_utf8_lossy(&want)
                    )),
                    None => Err(format!("expected file {path}, but there is none")),
                }
            }
            "expect-no-file" => {
                let path = text(args, 0, "a path")?;
                if self.harness().fs.exists(&path) {
                    Err(format!("expected nothing at {path}, but it exists"))
                } else {
                    Ok(())
                }
            }
            "expect-dir" => {
                let path = text(args, 0, "a path")?;
                if self.harness().fs.is_dir(&path) {
                    Ok(())
                } else {
                    Err(format!("expected a directory at {path}"))
                }
            }
            "expect-endpoint" => {
                let want = match word(args, 0, "passive or active")?.as_str() {
                    "passive" => DataEndpoint::Passive,
                    "active" => DataEndpoint::Active(
                        word(args, 1, "an address")?
                            .parse()
                            .map_err(|e| format!("bad address: {e}"))?,
                    ),
                    o => return Err(format!("@expect-endpoint: `{o}` is not passive or active")),
                };
                let got = self
                    .harness()
                    .last_transfer()
                    .map(|t| t.endpoint)
                    .ok_or("no transfer has happened")?;
                if got == want {
                    Ok(())
                } else {
                    Err(format!(
                        "expected endpoint {want:?}, the transfer used {got:?}"
                    ))
                }
            }
            "expect-listen-peer" => {
                let w = word(args, 0, "the client's address")?;
                let want: IpAddr = w.parse().map_err(|e| format!("bad address: {e}"))?;
                let fxp = match args.get(1) {
                    Some(_) => word(args, 1, "CIDRs")?
                        .split(',')
                        .map(|c| Cidr::parse(c).map_err(|e| e.to_string()))
                        .collect::<Result<Vec<_>, _>>()?,
                    None => Vec::new(),
                };
                let got = self
                    .harness()
                    .last_listener()
                    .ok_or("no passive listener was opened")?;
                if got.peer == want && got.fxp_peers == fxp {
                    Ok(())
                } else {
                    Err(format!(
                        "the passive listener accepts {} and {:?}, expected {want} and {fxp:?}",
                        got.peer, got.fxp_peers
                    ))
                }
            }
            "expect-tls-stops" => {
                let want: u32 = number(args, 0)?;
                let got = self.harness().tls_stops();
                if got == want {
                    Ok(())
                } else {
                    Err(format!(
                        "expected {want} StopTls action(s), the session asked for {got}"
                    ))
                }
            }
            "closed" | "open" => {
                let closed = self.harness().is_closed();
                if closed == (verb == "closed") {
                    Ok(())
                } else {
                    Err(format!(
                        "expected the session to be {verb}, it is {}",
                        if closed { "closed" } else { "open" }
                    ))
                }
            }
            other => Err(format!("unknown directive @{other}")),
        }
    }

    fn last_data(&mut self) -> Res<Vec<u8>> {
        self.harness()
            .last_transfer()
            .map(|t| t.data.clone())
            .ok_or_else(|| "no transfer has happened".into())
    }
}

// ----- helpers ------------------------------------------------------------------------------

/// Whether `line` matches `pat` (`{*}` any run, `{n}` digits, `{{` a literal `{`).
pub fn matches(pat: &str, line: &str) -> bool {
    #[derive(Debug)]
    enum P {
        Lit(char),
        Any,
        Num,
    }
    let mut ps = Vec::new();
    let mut rest = pat;
    while let Some(c) = rest.chars().next() {
        if let Some(r) = rest.strip_prefix("{*}") {
            ps.push(P::Any);
            rest = r;
        } else if let Some(r) = rest.strip_prefix("{n}") {
            ps.push(P::Num);
            rest = r;
        } else if let Some(r) = rest.strip_prefix("{{") {
            ps.push(P::Lit('{'));
            rest = r;
        } else {
            ps.push(P::Lit(c));
            rest = &rest[c.len_utf8()..];
        }
    }
    let s: Vec<char> = line.chars().collect();
    fn go(ps: &[P], s: &[char]) -> bool {
        match ps.split_first() {
            None => s.is_empty(),
            Some((P::Lit(c), rest)) => s.first() == Some(c) && go(rest, &s[1..]),
            Some((P::Any, rest)) => (0..=s.len()).any(|i| go(rest, &s[i..])),
            Some((P::Num, rest)) => {
                let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
                (1..=digits).rev().any(|i| go(rest, &s[i..]))
            }
        }
    }
    go(&ps, &s)
}

#[derive(Clone, Debug)]
enum Tok {
    Word(String),
    Str(Vec<u8>),
}

impl Tok {
    fn text(&self) -> String {
        match self {
            Tok::Word(w) => w.clone(),
            Tok::Str(b) => String::from_utf8_lossy(b).into_owned(),
        }
    }
}

fn tokenize(s: &str) -> Res<Vec<Tok>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '"' {
            chars.next();
            let mut buf = Vec::new();
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated string in `@{s}`")),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some('r') => buf.push(b'\r'),
                        Some('n') => buf.push(b'\n'),
                        Some('t') => buf.push(b'\t'),
                        Some('0') => buf.push(0),
                        Some('\\') => buf.push(b'\\'),
                        Some('"') => buf.push(b'"'),
                        Some('x') => {
                            let hex: String = chars.by_ref().take(2).collect();
                            let b = u8::from_str_radix(&hex, 16)
                                .map_err(|_| format!("bad \\x escape `\\x{hex}`"))?;
                            buf.push(b);
                        }
                        other => return Err(format!("bad escape `\\{}`", other.unwrap_or(' '))),
                    },
                    Some(ch) => {
                        let mut tmp = [0u8; 4];
                        buf.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
                    }
                }
            }
            out.push(Tok::Str(buf));
        } else {
            let mut w = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() {
                    break;
                }
                w.push(ch);
                chars.next();
            }
            out.push(Tok::Word(w));
        }
    }
    Ok(out)
}

fn word(args: &[Tok], i: usize, what: &str) -> Res<String> {
    match args.get(i) {
        Some(Tok::Word(w)) => Ok(w.clone()),
        Some(Tok::Str(_)) => Err(format!("expected {what}, not a quoted string")),
        None => Err(format!("missing {what}")),
    }
}

fn text(args: &[Tok], i: usize, what: &str) -> Res<String> {
    args.get(i)
        .map(Tok::text)
        .ok_or_else(|| format!("missing {what}"))
}

fn opt_text(args: &[Tok], i: usize, default: &str) -> String {
    args.get(i).map_or_else(|| default.to_owned(), Tok::text)
}

fn bytes_arg(args: &[Tok], i: usize) -> Res<Vec<u8>> {
    match args.get(i) {
        Some(Tok::Str(b)) => Ok(b.clone()),
        Some(Tok::Word(w)) => Err(format!("expected a \"quoted string\", got `{w}`")),
        None => Err("missing a \"quoted string\"".into()),
    }
}

fn number<T: std::str::FromStr>(args: &[Tok], i: usize) -> Res<T> {
    let w = word(args, i, "a number")?;
    w.parse().map_err(|_| format!("`{w}` is not a number"))
}

fn seed_of(path: &str) -> u64 {
    // FNV-1a: a stable seed per path, so a file's contents are the same on every run.
    path.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn parse_duration(s: &str) -> Res<Duration> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = num.parse().map_err(|_| format!("bad duration `{s}`"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("bad duration unit in `{s}` (ms, s, m, h)")),
    })
}

fn parse_time(s: &str) -> Res<UnixTime> {
    let bad = || format!("`{s}` is not YYYYMMDDHHMMSS");
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n = |a: usize, b: usize| s[a..b].parse::<u32>().map_err(|_| bad());
    Ok(UnixTime::from_civil(Civil {
        year: i64::from(n(0, 4)?),
        month: n(4, 6)?,
        day: n(6, 8)?,
        hour: n(8, 10)?,
        minute: n(10, 12)?,
        second: n(12, 14)?,
    }))
}

fn parse_bool(s: &str) -> Res<bool> {
    match s {
        "true" | "yes" | "on" => Ok(true),
        "false" | "no" | "off" => Ok(false),
        _ => Err(format!("`{s}` is not true or false")),
    }
}

fn parse_policy(s: &str) -> Res<TlsPolicy> {
    match s {
        "none" => Ok(TlsPolicy::None),
        "accounts" => Ok(TlsPolicy::Accounts),
        "all" => Ok(TlsPolicy::All),
        _ => Err(format!("`{s}` is not none, accounts or all")),
    }
}

fn set_config(c: &mut Config, key: &str, value: &str) -> Res {
    let num = |v: &str| -> Res<u64> { v.parse().map_err(|_| format!("`{v}` is not a number")) };
    match key {
        "greeting" => c.greeting = value.to_owned(),
        "max_line_len" => c.max_line_len = num(value)? as usize,
        "max_buffered_input" => c.max_buffered_input = num(value)? as usize,
        "idle_timeout" => c.idle_timeout = parse_duration(value)?,
        "login_timeout" => c.login_timeout = parse_duration(value)?,
        "max_login_failures" => c.max_login_failures = num(value)? as u32,
        "login_failure_delay" => c.login_failure_delay = parse_duration(value)?,
        "passive_address" => {
            c.passive_address = Some(value.parse().map_err(|e| format!("bad address: {e}"))?)
        }
        "fxp_peers" => {
            c.fxp_peers = value
                .split(',')
                .map(|v| Cidr::parse(v).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?
        }
        "allow_privileged_data_port" => c.allow_privileged_data_port = parse_bool(value)?,
        "max_logins" => c.max_logins = num(value)? as u32,
        "max_anonymous_logins" => c.max_anonymous_logins = num(value)? as u32,
        "max_logins_per_ip" => c.max_logins_per_ip = num(value)? as u32,
        "site_chmod" => c.site_chmod = parse_bool(value)?,
        "restart_marker_interval" => c.restart_marker_interval = num(value)?,
        "ip_allow" => {
            c.ip_filter.allow = IpFilter::parse(value.split(','), [])
                .map_err(|e| e.to_string())?
                .allow
        }
        "ip_deny" => {
            c.ip_filter.deny = IpFilter::parse([], value.split(','))
                .map_err(|e| e.to_string())?
                .deny
        }
        "tls_available" => c.tls_available = parse_bool(value)?,
        "tls_control" => c.tls_control = parse_policy(value)?,
        "tls_data" => c.tls_data = parse_policy(value)?,
        "allow_ccc" => c.allow_ccc = parse_bool(value)?,
        "require_tls_session_reuse" => {
            c.tls_session_reuse = if parse_bool(value)? {
                SessionReuse::SameClient
            } else {
                SessionReuse::NotRequired
            }
        }
        "tls_session_reuse_scope" => {
            c.tls_session_reuse = match value {
                "client" => SessionReuse::SameClient,
                "connection" => SessionReuse::SameConnection,
                other => return Err(format!("unknown tls_session_reuse_scope `{other}`")),
            }
        }
        other => return Err(format!("unknown config key `{other}`")),
    }
    Ok(())
}

/// One line per event, for `E:` patterns.
fn render_event(e: &Event) -> String {
    let mut s = e.kind.as_str().to_owned();
    if let Some(p) = &e.path {
        let _ = write!(s, " {p}");
    }
    if let Some(t) = &e.to {
        let _ = write!(s, " -> {t}");
    }
    if let Some(n) = e.size {
        let _ = write!(s, " size={n}");
    }
    if let Some(r) = &e.reason {
        let _ = write!(s, " reason={r}");
    }
    s
}

/// The account of `@user name password [flags]`.
fn user_account(name: &str, flags: &[Tok]) -> Res<Account> {
    let mut a = Account::new(name);
    let list = |v: &str| v.split(',').map(str::to_owned).collect::<Vec<_>>();
    let num = |v: &str| {
        v.parse::<u64>()
            .map_err(|_| format!("`{v}` is not a number"))
    };
    let mode =
        |v: &str| u32::from_str_radix(v, 8).map_err(|_| format!("`{v}` is not an octal mode"));
    for f in flags {
        let t = f.text();
        let (k, v) = t.split_once('=').unwrap_or((t.as_str(), ""));
        match k {
            "readonly" => a.write = false,
            "admin" => a.admin = true,
            "fixed" => {
                a.fixed_folders = list(v)
                    .iter()
                    .map(|p| {
                        VirtualPath::resolve(&VirtualPath::root(), p).map_err(|e| format!("{e:?}"))
                    })
                    .collect::<Result<_, _>>()?
            }
            "file_mode" => a.file_mode = mode(v)?,
            "dir_mode" => a.dir_mode = mode(v)?,
            "max_logins" => a.max_logins = Some(num(v)? as u32),
            "max_logins_per_ip" => a.max_logins_per_ip = Some(num(v)? as u32),
            "fxp" => {
                // `fxp=` (empty): an empty list, which turns third-party transfers off.
                let peers = list(v);
                let peers = peers.iter().filter(|c| !c.is_empty());
                let peers = peers.map(|c| Cidr::parse(c).map_err(|e| e.to_string()));
                a.fxp_peers = Some(peers.collect::<Result<_, _>>()?)
            }
            "allow_ip" => {
                a.ip_filter = IpFilter::parse(list(v).iter().map(String::as_str), [])
                    .map_err(|e| e.to_string())?
            }
            "partner_allow" => {
                a.partner_ip_filter.allow = IpFilter::parse(list(v).iter().map(String::as_str), [])
                    .map_err(|e| e.to_string())?
                    .allow
            }
            "partner_deny" => {
                a.partner_ip_filter.deny = IpFilter::parse([], list(v).iter().map(String::as_str))
                    .map_err(|e| e.to_string())?
                    .deny
            }
            "idle" => a.idle_timeout = Some(parse_duration(v)?),
            "upload_rate" => a.upload_rate = Some(num(v)?),
            "download_rate" => a.download_rate = Some(num(v)?),
            _ => return Err(format!("@user: unknown flag `{t}`")),
        }
    }
    Ok(a)
}

fn apply_options(fs: &mut MemFs, path: &str, opts: &[Tok]) -> Res {
    for opt in opts {
        let t = opt.text();
        let (k, v) = t
            .split_once('=')
            .ok_or_else(|| format!("option `{t}` is not key=value"))?;
        let e = fs
            .entry_mut(path)
            .ok_or_else(|| format!("{path} does not exist"))?;
        match k {
            "modified" => e.modified = parse_time(v)?,
            "mode" => {
                e.mode =
                    u32::from_str_radix(v, 8).map_err(|_| format!("`{v}` is not an octal mode"))?
            }
            "owner" => e.owner = v.to_owned(),
            "group" => e.group = v.to_owned(),
            _ => {
                return Err(format!(
                    "unknown option `{k}` (modified, mode, owner, group)"
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches(
            "227 Entering Passive Mode ({*}).",
            "227 Entering Passive Mode (127,0,0,1,195,80)."
        ));
        assert!(matches("213 {n}", "213 1234"));
        assert!(!matches("213 {n}", "213 "));
        assert!(!matches("213 {n}", "213 12a"));
        assert!(matches("a{{b", "a{b"));
        assert!(matches("{*}", ""));
        assert!(!matches("abc", "abcd"));
    }

    #[test]
    fn an_unexpected_reply_fails() {
        let t = "S: 220 {*}\nC: NOOP\nC: NOOP\nS: 200 {*}\n";
        let e = run_str("t", t).unwrap_err();
        assert!(e.contains("t:3:") && e.contains("200 NOOP ok."), "{e}");
    }

    #[test]
    fn a_wrong_reply_names_the_line() {
        let t = "S: 220 {*}\nC: SYST\nS: 215 Windows_NT\n";
        let e = run_str("t", t).unwrap_err();
        assert!(
            e.starts_with("t:3:") && e.contains("215 UNIX Type: L8"),
            "{e}"
        );
    }

    #[test]
    fn data_blocks_must_cover_the_payload() {
        let base = "S: 220 {*}\n@user a b\n@file /x.txt \"1\\n2\\n\"\n@login a b\nC: TYPE A\nS: 200 {*}\nC: PASV\nS: 227 {*}\nC: RETR x.txt\nS: 150 {*}\nS: 226 {*}\n";
        assert_eq!(run_str("t", &format!("{base}D: 1\nD: 2\n")), Ok(()));
        assert!(run_str("t", &format!("{base}D: 1\n")).is_err());
        assert!(run_str("t", &format!("{base}D: 1\nD: 3\n")).is_err());
    }
}
