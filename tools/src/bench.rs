//! The workloads of `wharf-bench` and how each is measured.
//!
//! Every workload runs `runs` times; each run yields a set of metrics and the report keeps
//! every run and the median. Timings exclude connecting and logging in, except in the login
//! storm, where they are the point. Server CPU is the difference of the server's process-tree
//! CPU time (see [`crate::procfs`]) across the timed part; client CPU is this process's.
//!
//! Files on the server:
//! - `retr`/`ftps_retr` fetch `--retr-file`. If SIZE does not report it at `--size` bytes, the
//!   benchmark uploads it first (untimed) from its local source file.
//! - `stor`/`ftps_stor` overwrite `--stor-file`.
//! - `small_stor` stores `--small-count` files named `PREFIX00000.bin`...; `small_retr` fetches
//!   them, storing them first (untimed) if the first or last is missing.
//!
//! Every loop here is bounded: counts come from flags, every socket has a timeout and every
//! run a deadline (`--max-seconds`).

use crate::ftp::{Control, Data, TlsClient};
use crate::procfs;
use crate::report::{percentile, WorkloadResult};
use crate::sys::SpliceSink;
use anyhow::{bail, Context, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const GIB: f64 = (1u64 << 30) as f64;

/// Size of the receive buffer: large reads keep the client's per-byte cost to one copy.
const RECV_BUF: usize = 1 << 20;

/// Everything the workloads need to know, from the command line.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The server (loopback only).
    pub addr: SocketAddr,
    /// User name to log in with.
    pub user: String,
    /// Password.
    pub pass: String,
    /// TLS client for the FTPS workloads, if a certificate was given.
    pub tls: Option<TlsClient>,
    /// Bound on every connect, read and write.
    pub timeout: Duration,
    /// Bound on one run of a workload.
    pub max_run: Duration,
    /// Runs per workload.
    pub runs: usize,
    /// Bytes of the large RETR/STOR.
    pub size: u64,
    /// Remote name of the large file to fetch.
    pub retr_file: String,
    /// Remote name of the large file to store.
    pub stor_file: String,
    /// Number of small files.
    pub small_count: usize,
    /// Bytes per small file.
    pub small_size: usize,
    /// Name prefix of the small files.
    pub small_prefix: String,
    /// Sessions in the login storm.
    pub storm_sessions: usize,
    /// Sessions in flight at once in the storm.
    pub storm_concurrency: usize,
    /// Idle sessions to hold open.
    pub idle_sessions: usize,
    /// The server's PID (root of its process tree), for CPU and memory.
    pub server_pid: Option<u32>,
    /// Where the local source file for uploads lives.
    pub local_dir: PathBuf,
    /// Receive plain RETR data (raw_retr, retr, small_retr) with splice(2) into /dev/null
    /// instead of reads into a buffer (`--recv splice`).
    pub recv_splice: bool,
    /// A folder to change into after logging in (`--cwd`), e.g. a partner's Outbox; every
    /// workload but the login storm and the idle sessions works there.
    pub cwd: Option<String>,
}

/// The workloads, in the order they run.
///
/// `idle_sessions` comes first so that its first run measures a server that has not yet grown
/// for other workloads (later runs may reuse memory the earlier ones left behind).
pub const ALL: &[&str] = &[
    "idle_sessions",
    "raw_retr",
    "retr",
    "ftps_retr",
    "raw_stor",
    "stor",
    "ftps_stor",
    "small_stor",
    "small_retr",
    "login_storm",
];

type Values = Vec<(&'static str, &'static str, f64)>;

/// A progress line on stderr, redrawn in place at most every 200 ms.
struct Progress {
    label: String,
    last: Instant,
}

impl Progress {
    fn new(label: String) -> Progress {
        let p = Progress {
            label,
            last: Instant::now() - Duration::from_secs(1),
        };
        p.print("starting");
        p
    }

    fn print(&self, msg: &str) {
        let mut line = format!("\r[{}] {msg}", self.label);
        if line.len() < 78 {
            line.push_str(&" ".repeat(78 - line.len()));
        }
        let _ = io::stderr().write_all(line.as_bytes());
    }

    fn update(&mut self, msg: impl FnOnce() -> String) {
        if self.last.elapsed() >= Duration::from_millis(200) {
            self.last = Instant::now();
            self.print(&msg());
        }
    }

    fn bytes(&mut self, started: Instant, n: u64, total: u64) {
        self.update(|| {
            let s = started.elapsed().as_secs_f64().max(1e-9);
            format!(
                "{} / {} MiB, {:.0} MB/s",
                n >> 20,
                total >> 20,
                n as f64 / 1e6 / s
            )
        });
    }

    fn finish(&self, msg: &str) {
        self.print(msg);
        let _ = io::stderr().write_all(b"\n");
    }
}

/// CPU and wall clock of a timed section.
struct Probe {
    start: Instant,
    client: f64,
    server: Option<f64>,
    pid: Option<u32>,
    thread_only: bool,
}

struct Measured {
    wall: f64,
    client_cpu: f64,
    server_cpu: Option<f64>,
}

impl Probe {
    /// Starts measuring; `thread_only` counts only the calling thread's CPU as the client's.
    fn start(pid: Option<u32>, thread_only: bool) -> Probe {
        Probe {
            client: client_cpu(thread_only),
            server: pid.and_then(procfs::tree_cpu_seconds),
            pid,
            thread_only,
            start: Instant::now(),
        }
    }

    fn stop(self) -> Measured {
        let wall = self.start.elapsed().as_secs_f64();
        let client_cpu = ((client_cpu(self.thread_only) - self.client) * 100.0).round() / 100.0;
        // Both samples are whole clock ticks (10 ms); round away the float noise.
        let server_cpu = match (self.server, self.pid.and_then(procfs::tree_cpu_seconds)) {
            (Some(a), Some(b)) => Some(((b - a) * 100.0).round() / 100.0),
            _ => None,
        };
        Measured {
            wall,
            client_cpu,
            server_cpu,
        }
    }
}

fn client_cpu(thread_only: bool) -> f64 {
    if thread_only {
        procfs::thread_cpu_seconds()
    } else {
        procfs::self_cpu_seconds()
    }
}

/// Metrics of a bulk transfer of `bytes`.
fn transfer_values(m: &Measured, bytes: u64) -> Values {
    let mut v = vec![("mb_per_s", "MB/s", bytes as f64 / 1e6 / m.wall.max(1e-9))];
    if let Some(s) = m.server_cpu {
        v.push(("server_cpu_s_per_gib", "s/GiB", s / (bytes as f64 / GIB)));
    }
    v.push((
        "client_cpu_pct",
        "% of core",
        100.0 * m.client_cpu / m.wall.max(1e-9),
    ));
    v
}

/// Runs the workloads.
pub struct Bench {
    s: Settings,
    buf: Vec<u8>,
    /// With `--recv splice`: what raw_retr, retr and small_retr receive through.
    splice: Option<SpliceSink>,
    source: Option<File>,
}

impl Bench {
    /// A benchmark with these settings (fails only when `--recv splice` cannot make a pipe).
    pub fn new(s: Settings) -> Result<Bench> {
        let splice = if s.recv_splice {
            Some(SpliceSink::new().context("--recv splice")?)
        } else {
            None
        };
        Ok(Bench {
            s,
            buf: vec![0u8; RECV_BUF],
            splice,
            source: None,
        })
    }

    /// Runs one workload `runs` times and collects its results. A failed run ends the
    /// workload with its error; the runs before it are kept.
    pub fn run(&mut self, name: &str) -> WorkloadResult {
        let mut result = WorkloadResult {
            name: name.to_string(),
            ..Default::default()
        };
        if name.starts_with("ftps_") && self.s.tls.is_none() {
            result.error = Some("no --tls-cert given; FTPS workloads need it".into());
            return result;
        }
        if let Err(e) = self.prepare(name) {
            result.error = Some(format!("preparing: {e:#}"));
            return result;
        }
        if self.splice.is_some() && matches!(name, "raw_retr" | "retr" | "small_retr") {
            result
                .notes
                .push("received with splice(2) into /dev/null (--recv splice)".into());
        }
        for run in 1..=self.s.runs {
            let label = format!("{name} {run}/{}", self.s.runs);
            let mut progress = Progress::new(label);
            let outcome = match name {
                "raw_retr" => self.raw_retr(&mut progress),
                "raw_stor" => self.raw_stor(&mut progress),
                "retr" => self.retr(false, &mut progress),
                "ftps_retr" => self.retr(true, &mut progress),
                "stor" => self.stor(false, &mut progress),
                "ftps_stor" => self.stor(true, &mut progress),
                "small_stor" => self.small_stor(&mut progress),
                "small_retr" => self.small_retr(&mut progress),
                "login_storm" => self.login_storm(&mut progress, &mut result.notes),
                "idle_sessions" => self.idle_sessions(&mut progress, &mut result.notes),
                other => Err(anyhow::anyhow!("unknown workload {other:?}")),
            };
            let outcome = match (outcome, self.s.server_pid) {
                (Ok(_), Some(pid)) if procfs::tree_cpu_seconds(pid).is_none() => Err(
                    anyhow::anyhow!("the server process {pid} is gone (crashed or killed?)"),
                ),
                (o, _) => o,
            };
            match outcome {
                Ok(values) => {
                    progress.finish(&summary(&values));
                    result.add_run(&values);
                }
                Err(e) => {
                    progress.finish("failed");
                    result.error = Some(format!("run {run}: {e:#}"));
                    break;
                }
            }
        }
        result
    }

    fn prepare(&mut self, name: &str) -> Result<()> {
        match name {
            "raw_retr" | "raw_stor" | "stor" | "ftps_stor" => {
                self.source()?;
            }
            "retr" | "ftps_retr" => self.ensure_retr_file()?,
            "small_retr" => self.ensure_small_files()?,
            _ => {}
        }
        Ok(())
    }

    /// A logged-in session in TYPE I, over TLS when `tls`.
    fn session(&self, tls: bool) -> Result<Control> {
        session(&self.s, tls)
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.s.max_run
    }

    /// The local file uploads are sent from: `size` bytes of pseudo-random data, made once.
    fn source(&mut self) -> Result<&mut File> {
        if self.source.is_none() {
            let path = self
                .s
                .local_dir
                .join(format!("wharf-bench-source-{}.bin", self.s.size));
            let ok = fs::metadata(&path).is_ok_and(|m| m.len() == self.s.size);
            if !ok {
                fs::create_dir_all(&self.s.local_dir)
                    .with_context(|| format!("creating {}", self.s.local_dir.display()))?;
                let progress = Progress::new("source file".into());
                progress.print(&format!("writing {}", path.display()));
                write_random_file(&path, self.s.size)
                    .with_context(|| format!("writing {}", path.display()))?;
                progress.finish("done");
            }
            let f = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
            self.source = Some(f);
        }
        match self.source.as_mut() {
            Some(f) => Ok(f),
            None => bail!("no source file"),
        }
    }

    fn ensure_retr_file(&mut self) -> Result<()> {
        let mut c = self.session(false)?;
        let name = self.s.retr_file.clone();
        if c.size(&name)? == Some(self.s.size) {
            return c.quit();
        }
        let mut progress = Progress::new(format!("uploading {name} for RETR"));
        let deadline = self.deadline();
        let size = self.s.size;
        let started = Instant::now();
        let mut buf = std::mem::take(&mut self.buf);
        let sent = c.stor_file(&name, self.source()?, &mut buf, deadline, &mut |n| {
            progress.bytes(started, n, size)
        });
        self.buf = buf;
        sent?;
        progress.finish("done");
        c.quit()
    }

    fn small_name(&self, i: usize) -> String {
        format!("{}{i:05}.bin", self.s.small_prefix)
    }

    fn ensure_small_files(&mut self) -> Result<()> {
        let mut c = self.session(false)?;
        let want = Some(self.s.small_size as u64);
        let last = self.s.small_count.saturating_sub(1);
        if c.size(&self.small_name(0))? == want && c.size(&self.small_name(last))? == want {
            return c.quit();
        }
        let payload = small_payload(self.s.small_size);
        let mut progress = Progress::new("storing small files for RETR".into());
        let deadline = self.deadline();
        for i in 0..self.s.small_count {
            c.stor_bytes(&self.small_name(i), &payload)?;
            progress.update(|| format!("{i} files"));
            if Instant::now() > deadline {
                bail!("deadline passed after {i} files");
            }
        }
        progress.finish("done");
        c.quit()
    }

    fn raw_retr(&mut self, progress: &mut Progress) -> Result<Values> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let mut file = self.source()?.try_clone()?;
        let timeout = self.s.timeout;
        let size = self.s.size;
        let sender = thread::spawn(move || -> Result<u64> {
            let (sock, _) = accept_bounded(&listener, timeout)?;
            sock.set_write_timeout(Some(timeout))?;
            let mut none = [0u8; 0];
            Data::Plain(sock).send_file(
                &mut file,
                &mut none,
                Instant::now() + timeout * 100,
                &mut |_| {},
            )
        });
        let probe = Probe::start(None, true);
        let sock = TcpStream::connect_timeout(&addr, self.s.timeout)?;
        sock.set_read_timeout(Some(self.s.timeout))?;
        let mut data = Data::Plain(sock);
        let deadline = self.deadline();
        let started = Instant::now();
        let n = data.discard_to_end(&mut self.buf, self.splice.as_mut(), deadline, &mut |n| {
            progress.bytes(started, n, size)
        })?;
        let m = probe.stop();
        let sent = join(sender)?;
        if n != size || sent != size {
            bail!("moved {n} bytes (sent {sent}), expected {size}");
        }
        Ok(transfer_values(&m, n))
    }

    fn raw_stor(&mut self, progress: &mut Progress) -> Result<Values> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let timeout = self.s.timeout;
        let size = self.s.size;
        let receiver = thread::spawn(move || -> Result<u64> {
            let (sock, _) = accept_bounded(&listener, timeout)?;
            sock.set_read_timeout(Some(timeout))?;
            let mut buf = vec![0u8; RECV_BUF];
            Data::Plain(sock).discard_to_end(
                &mut buf,
                None,
                Instant::now() + timeout * 100,
                &mut |_| {},
            )
        });
        let deadline = self.deadline();
        let mut buf = std::mem::take(&mut self.buf);
        let probe = Probe::start(None, true);
        let started = Instant::now();
        let sent = (|| -> Result<u64> {
            let sock = TcpStream::connect_timeout(&addr, timeout)?;
            sock.set_write_timeout(Some(timeout))?;
            let file = self.source()?;
            Data::Plain(sock).send_file(file, &mut buf, deadline, &mut |n| {
                progress.bytes(started, n, size)
            })
        })();
        self.buf = buf;
        let received = join(receiver)?;
        let m = probe.stop();
        let sent = sent?;
        if received != size || sent != size {
            bail!("sent {sent} bytes, received {received}, expected {size}");
        }
        Ok(transfer_values(&m, size))
    }

    fn retr(&mut self, tls: bool, progress: &mut Progress) -> Result<Values> {
        let mut c = self.session(tls)?;
        let deadline = self.deadline();
        let size = self.s.size;
        let name = self.s.retr_file.clone();
        let probe = Probe::start(self.s.server_pid, false);
        let started = Instant::now();
        let n = c.retr_discard(
            &name,
            &mut self.buf,
            self.splice.as_mut(),
            deadline,
            &mut |n| progress.bytes(started, n, size),
        )?;
        let m = probe.stop();
        if n != size {
            bail!("received {n} bytes of {name}, expected {size}");
        }
        c.quit()?;
        Ok(transfer_values(&m, n))
    }

    fn stor(&mut self, tls: bool, progress: &mut Progress) -> Result<Values> {
        let mut c = self.session(tls)?;
        let deadline = self.deadline();
        let size = self.s.size;
        let name = self.s.stor_file.clone();
        let pid = self.s.server_pid;
        let mut buf = std::mem::take(&mut self.buf);
        let result = (|| -> Result<(Measured, u64)> {
            let file = self.source()?;
            let probe = Probe::start(pid, false);
            let started = Instant::now();
            let n = c.stor_file(&name, file, &mut buf, deadline, &mut |n| {
                progress.bytes(started, n, size)
            })?;
            Ok((probe.stop(), n))
        })();
        self.buf = buf;
        let (m, n) = result?;
        if n != size {
            bail!("sent {n} bytes, expected {size}");
        }
        if let Some(remote) = c.size(&name)? {
            if remote != size {
                bail!("the server reports {remote} bytes for {name} after STOR of {size}");
            }
        }
        c.quit()?;
        Ok(transfer_values(&m, n))
    }

    fn files_values(&self, m: &Measured, files: usize) -> Values {
        let mut v = vec![("files_per_s", "files/s", files as f64 / m.wall.max(1e-9))];
        if let Some(s) = m.server_cpu {
            v.push(("server_cpu_ms_per_file", "ms/file", 1e3 * s / files as f64));
        }
        v.push((
            "client_cpu_pct",
            "% of core",
            100.0 * m.client_cpu / m.wall.max(1e-9),
        ));
        v
    }

    fn small_stor(&mut self, progress: &mut Progress) -> Result<Values> {
        let mut c = self.session(false)?;
        let payload = small_payload(self.s.small_size);
        let deadline = self.deadline();
        let probe = Probe::start(self.s.server_pid, false);
        for i in 0..self.s.small_count {
            c.stor_bytes(&self.small_name(i), &payload)?;
            progress.update(|| format!("{i} files"));
            if Instant::now() > deadline {
                bail!("deadline passed after {i} files");
            }
        }
        let m = probe.stop();
        c.quit()?;
        Ok(self.files_values(&m, self.s.small_count))
    }

    fn small_retr(&mut self, progress: &mut Progress) -> Result<Values> {
        let mut c = self.session(false)?;
        let deadline = self.deadline();
        let want = self.s.small_size as u64;
        let probe = Probe::start(self.s.server_pid, false);
        for i in 0..self.s.small_count {
            let name = self.small_name(i);
            let n = c.retr_discard(
                &name,
                &mut self.buf,
                self.splice.as_mut(),
                deadline,
                &mut |_| {},
            )?;
            if n != want {
                bail!("received {n} bytes of {name}, expected {want}");
            }
            progress.update(|| format!("{i} files"));
            if Instant::now() > deadline {
                bail!("deadline passed after {i} files");
            }
        }
        let m = probe.stop();
        c.quit()?;
        Ok(self.files_values(&m, self.s.small_count))
    }

    fn login_storm(&mut self, progress: &mut Progress, notes: &mut Vec<String>) -> Result<Values> {
        let total = self.s.storm_sessions;
        let next = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let deadline = self.deadline();
        let probe = Probe::start(self.s.server_pid, false);
        let mut workers = Vec::new();
        for _ in 0..self.s.storm_concurrency.clamp(1, total.max(1)) {
            let (next, done, s, stop) = (next.clone(), done.clone(), self.s.clone(), stop.clone());
            let w = thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let mut latencies = Vec::new();
                    let mut failures = Vec::new();
                    while next.fetch_add(1, Ordering::Relaxed) < total {
                        if stop.load(Ordering::Relaxed) {
                            failures.push("not started: memory guard".into());
                            continue;
                        }
                        if Instant::now() > deadline {
                            failures.push("deadline passed before the session started".into());
                            continue;
                        }
                        let t = Instant::now();
                        let r = Control::connect(s.addr, s.timeout).and_then(|mut c| {
                            c.login(&s.user, &s.pass)?;
                            c.quit()
                        });
                        match r {
                            Ok(()) => latencies.push(t.elapsed().as_secs_f64()),
                            Err(e) => failures.push(format!("{e:#}")),
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    (latencies, failures)
                })
                .context("starting a storm thread")?;
            workers.push(w);
        }
        let mut latencies = Vec::with_capacity(total);
        let mut failures: Vec<String> = Vec::new();
        let mut guard_tripped = false;
        while workers.iter().any(|w| !w.is_finished()) {
            thread::sleep(Duration::from_millis(50));
            let n = done.load(Ordering::Relaxed);
            progress.update(|| format!("{n} / {total} sessions"));
            if let (false, Some(mib)) = (guard_tripped, memory_low()) {
                guard_tripped = true;
                stop.store(true, Ordering::Relaxed);
                notes.push(format!(
                    "memory guard: stopped starting sessions after {n} with {mib} MiB available"
                ));
            }
        }
        for w in workers {
            match w.join() {
                Ok((l, f)) => {
                    latencies.extend(l);
                    failures.extend(f);
                }
                Err(_) => failures.push("a storm thread panicked".into()),
            }
        }
        let m = probe.stop();
        latencies.sort_by(|a, b| a.total_cmp(b));
        note_failures(notes, &failures);
        let mut v = vec![
            ("total_s", "s", m.wall),
            (
                "sessions_per_s",
                "sessions/s",
                latencies.len() as f64 / m.wall,
            ),
            ("p50_ms", "ms", 1e3 * percentile(&latencies, 50.0)),
            ("p99_ms", "ms", 1e3 * percentile(&latencies, 99.0)),
            ("failures", "sessions", failures.len() as f64),
        ];
        if let Some(s) = m.server_cpu {
            v.push(("server_cpu_ms_per_login", "ms", 1e3 * s / total as f64));
        }
        v.push((
            "client_cpu_pct",
            "% of core",
            100.0 * m.client_cpu / m.wall.max(1e-9),
        ));
        Ok(v)
    }

    fn idle_sessions(
        &mut self,
        progress: &mut Progress,
        notes: &mut Vec<String>,
    ) -> Result<Values> {
        let total = self.s.idle_sessions;
        let pid = self.s.server_pid;
        let before = pid.and_then(procfs::tree_memory);
        let next = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let held: Arc<Mutex<Vec<Control>>> = Arc::new(Mutex::new(Vec::with_capacity(total)));
        let deadline = self.deadline();
        let mut openers = Vec::new();
        for _ in 0..16.min(total.max(1)) {
            let (next, held, s, stop) = (next.clone(), held.clone(), self.s.clone(), stop.clone());
            openers.push(
                thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn(move || {
                        let mut failures = Vec::new();
                        while next.fetch_add(1, Ordering::Relaxed) < total {
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                            if Instant::now() > deadline {
                                failures.push("deadline passed before the session opened".into());
                                continue;
                            }
                            let r = Control::connect(s.addr, s.timeout).and_then(|mut c| {
                                c.login(&s.user, &s.pass)?;
                                Ok(c)
                            });
                            match r {
                                Ok(c) => held.lock().map(|mut h| h.push(c)).unwrap_or(()),
                                Err(e) => failures.push(format!("{e:#}")),
                            }
                        }
                        failures
                    })
                    .context("starting an opener thread")?,
            );
        }
        let mut failures = Vec::new();
        let mut guard_tripped = false;
        while openers.iter().any(|w| !w.is_finished()) {
            thread::sleep(Duration::from_millis(50));
            let n = held.lock().map(|h| h.len()).unwrap_or(0);
            progress.update(|| format!("{n} / {total} sessions open"));
            // Memory guard: a server that grows without bound must not push the shared
            // machine into the OOM killer. Stop opening below 15% (at least 2 GiB) free.
            if let (false, Some(mib)) = (guard_tripped, memory_low()) {
                guard_tripped = true;
                stop.store(true, Ordering::Relaxed);
                notes.push(format!(
                    "memory guard: stopped opening at {n} sessions with {mib} MiB available"
                ));
            }
        }
        for w in openers {
            match w.join() {
                Ok(f) => failures.extend(f),
                Err(_) => failures.push("an opener thread panicked".into()),
            }
        }
        let mut sessions = match Arc::try_unwrap(held) {
            Ok(m) => m.into_inner().unwrap_or_default(),
            Err(_) => bail!("opener threads still hold the sessions"),
        };
        progress.print(&format!("{} sessions open; settling", sessions.len()));
        thread::sleep(Duration::from_secs(2));
        let after = pid.and_then(procfs::tree_memory);
        // Are they all still there? A NOOP on each, until the run's deadline (a server that
        // stopped answering would otherwise cost a full timeout per session).
        let mut alive = 0usize;
        for c in sessions.iter_mut() {
            if Instant::now() > deadline {
                notes.push("deadline passed while checking the sessions with NOOP".into());
                break;
            }
            if c.expect("NOOP", &[200]).is_ok() {
                alive += 1;
            }
        }
        let opened = sessions.len();
        drop(sessions);
        note_failures(notes, &failures);
        let mut v = vec![
            ("opened", "sessions", opened as f64),
            ("failed", "sessions", failures.len() as f64),
            ("alive_after_hold", "sessions", alive as f64),
        ];
        if let (Some(b), Some(a)) = (before, after) {
            let per = |x: u64, y: u64| (y as f64 - x as f64) / opened.max(1) as f64;
            v.push(("pss_kib_per_session", "KiB", per(b.pss_kib, a.pss_kib)));
            v.push(("rss_kib_per_session", "KiB", per(b.rss_kib, a.rss_kib)));
            v.push(("server_pss_mib_held", "MiB", a.pss_kib as f64 / 1024.0));
            v.push(("server_processes", "processes", a.processes as f64));
            // Let a forking server reap its session processes before the next run measures
            // its baseline (bounded wait).
            let until = Instant::now() + Duration::from_secs(20);
            while Instant::now() < until {
                let now = pid.and_then(procfs::tree_memory).unwrap_or_default();
                if now.processes <= b.processes {
                    break;
                }
                thread::sleep(Duration::from_millis(100));
            }
        }
        thread::sleep(Duration::from_secs(1));
        Ok(v)
    }
}

/// A logged-in session in TYPE I; over TLS (AUTH TLS, PBSZ 0, PROT P) when `tls`.
pub fn session(s: &Settings, tls: bool) -> Result<Control> {
    let mut c = Control::connect(s.addr, s.timeout)?;
    if tls {
        let Some(t) = &s.tls else {
            bail!("FTPS needs --tls-cert");
        };
        c.secure(t)?;
    }
    c.login(&s.user, &s.pass)?;
    if let Some(dir) = &s.cwd {
        c.expect(&format!("CWD {dir}"), &[250])?;
    }
    c.expect("TYPE I", &[200])?;
    Ok(c)
}

/// True when the machine is short of memory: below 15% of it (and at least 2 GiB) available.
/// Workloads that make a server grow (storm, idle sessions) stop starting sessions then, so a
/// server that grows without bound cannot push the shared machine into the OOM killer.
fn memory_low() -> Option<u64> {
    let (avail, total) = procfs::mem_available_kib()?;
    (avail < (total * 15 / 100).max(2 << 20)).then_some(avail / 1024)
}

fn note_failures(notes: &mut Vec<String>, failures: &[String]) {
    let mut seen: Vec<(&str, usize)> = Vec::new();
    for f in failures {
        match seen.iter_mut().find(|(s, _)| *s == f.as_str()) {
            Some((_, n)) => *n += 1,
            None => seen.push((f, 1)),
        }
    }
    for (f, n) in seen.into_iter().take(5) {
        let note = format!("{n} x {f}");
        if !notes.contains(&note) {
            notes.push(note);
        }
    }
}

fn summary(values: &Values) -> String {
    values
        .iter()
        .take(3)
        .map(|(name, unit, v)| format!("{name} {} {unit}", crate::report::fmt_value(*v)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn join(h: thread::JoinHandle<Result<u64>>) -> Result<u64> {
    match h.join() {
        Ok(r) => r,
        Err(_) => bail!("the in-process peer thread panicked"),
    }
}

/// Accepts one connection, giving up after `timeout`.
fn accept_bounded(listener: &TcpListener, timeout: Duration) -> Result<(TcpStream, SocketAddr)> {
    listener.set_nonblocking(true)?;
    let until = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((s, a)) => {
                s.set_nonblocking(false)?;
                return Ok((s, a));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < until => {
                thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The content of each small file: printable, deterministic.
fn small_payload(size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| {
            if i % 64 == 63 {
                b'\n'
            } else {
                b'a' + (i % 26) as u8
            }
        })
        .collect()
}

/// Writes `size` bytes of xorshift output to `path` (via a temporary name, then renamed).
fn write_random_file(path: &std::path::Path, size: u64) -> Result<()> {
    let tmp = path.with_extension("partial");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for word in chunk.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(())
}
