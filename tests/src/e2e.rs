//! Harness for the end-to-end tests: the real `wharf` binary on loopback, driven by real clients
//! (Python ftplib, curl, lftp) and by a small raw control-connection client for the security
//! tests.
//!
//! What it owns: starting `wharf serve` on `127.0.0.1:0` with a fresh temporary root, reading the
//! `listening on ftp://ADDR` line it prints (and the lines before it: the TLS certificate's
//! fingerprint, `listening on ftps://ADDR (implicit TLS)`), and killing it when the test ends
//! (no orphan servers); running a client program with a deadline; temporary folders that remove
//! themselves; comparing folder trees byte for byte.
//!
//! What it must not do: wait without a deadline, or touch any address outside 127.0.0.0/8.
//! Every blocking read has a timeout and every loop a bound, so a broken server makes a test
//! fail, never hang.
//!
//! The binary is found at `<folder of the test executable>/../wharf` (cargo puts test
//! executables in `target/<profile>/deps/`), or at `$WHARF_BIN`. `cargo test --workspace
//! --release` builds it, because wharf-blocking has integration tests.
//!
//! A client program missing from `PATH` makes the test print `SKIPPED: <program> not installed`
//! and return early; with `CI=true` it is a failure instead, so a CI run never counts a skipped
//! test as passed.
//!
//! Example programs that take `wharf serve`'s first options (the mio driver) start the same
//! way with [`Server::start_program`] and [`example_bin`].
//!
//! Set `WHARF_E2E_KEEP=1` to keep the temporary folders (their paths are printed).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The user every test server knows, with [`PASSWORD`].
pub const USER: &str = "alice";
/// The password of [`USER`].
pub const PASSWORD: &str = "secret";

/// How long a server may take to print its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(30);

// ----- temporary folders ----------------------------------------------------------------------

/// A fresh folder under the system's temporary folder, unique per test, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `wharf-e2e-<pid>-<n>-<name>` under [`std::env::temp_dir`].
    pub fn new(name: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("wharf-e2e-{}-{}-{}", std::process::id(), n, name));
        if path.exists() {
            let _ = fs::remove_dir_all(&path);
        }
        fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the folder.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("WHARF_E2E_KEEP").is_some() {
            eprintln!("kept {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

// ----- the server -----------------------------------------------------------------------------

/// Where the `wharf` binary is: `$WHARF_BIN`, else next to the test executable's folder.
pub fn wharf_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("WHARF_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "WHARF_BIN={} does not name a file; unset it or build the server with \
             `cargo build --release -p wharf-blocking`",
            p.display()
        );
        return p;
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test>-<hash>  →  target/<profile>/wharf
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("wharf"))
        .expect("test executable has no grandparent folder");
    assert!(
        bin.is_file(),
        "the server binary {} is missing. Run the tests with `cargo test --workspace --release` \
         (which builds it), or build it first with `cargo build --release -p wharf-blocking`, \
         or point WHARF_BIN at it",
        bin.display()
    );
    bin
}

/// Options for [`Server::start_with`].
pub struct ServerOptions {
    users: Vec<String>,
    args: Vec<String>,
    config: Option<String>,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            users: vec![format!("{USER}:{PASSWORD}")],
            args: Vec::new(),
            config: None,
        }
    }
}

impl ServerOptions {
    /// Extra command-line arguments after `serve`.
    pub fn arg(mut self, a: impl Into<String>) -> ServerOptions {
        self.args.push(a.into());
        self
    }

    /// A TOML configuration file with this content, passed with `--config`.
    pub fn config(mut self, toml: impl Into<String>) -> ServerOptions {
        self.config = Some(toml.into());
        self
    }
}

/// A running `wharf serve` with its own temporary root, killed on drop.
pub struct Server {
    child: Child,
    addr: SocketAddr,
    /// What the server printed before its first `listening on ftp://` line.
    startup: Vec<String>,
    root: PathBuf,
    stderr_path: PathBuf,
    // Last field: dropped after the process is gone.
    dir: TempDir,
}

impl Server {
    /// `wharf serve --listen 127.0.0.1:0 --root <fresh folder> --user alice:secret`.
    pub fn start(name: &str) -> Server {
        Server::start_with(name, ServerOptions::default())
    }

    /// Starts a server with extra options; waits (bounded) for its `listening on` line.
    pub fn start_with(name: &str, opts: ServerOptions) -> Server {
        let bin = wharf_bin();
        let dir = TempDir::new(name);
        let root = dir.join("root");
        fs::create_dir_all(&root).expect("create root");
        fs::create_dir_all(dir.join("client")).expect("create client folder");
        let stderr_path = dir.join("server.stderr");
        let stderr = fs::File::create(&stderr_path).expect("create stderr file");

        let mut cmd = Command::new(&bin);
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--root")
            .arg(&root);
        for u in &opts.users {
            cmd.arg("--user").arg(u);
        }
        if let Some(toml) = &opts.config {
            let path = dir.join("wharf.toml");
            fs::write(&path, toml).expect("write config");
            cmd.arg("--config").arg(path);
        }
        cmd.args(&opts.args);
        Server::spawn(cmd, &bin, dir, root, stderr_path, stderr)
    }

    /// Runs `cmd` (the server program `program`) in `dir` with stderr to `stderr`, and waits
    /// (bounded) for its first `listening on ftp://ADDR` line; the lines before it are kept.
    /// The rest of its stdout is drained on a thread, so it never blocks on a full pipe.
    fn spawn(
        mut cmd: Command,
        program: &Path,
        dir: TempDir,
        root: PathBuf,
        stderr_path: PathBuf,
        stderr: fs::File,
    ) -> Server {
        cmd.current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel::<String>();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if tx.send(line).is_err() {
                    // Nobody listens any more; keep draining.
                    for _ in lines.by_ref() {}
                    return;
                }
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let mut startup = Vec::new();
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    panic!(
                        "{} did not print `listening on ftp://...` within {START_TIMEOUT:?} \
                         (exit status {status:?}).\nstdout so far:\n{}\nstderr:\n{}",
                        program.display(),
                        startup.join("\n"),
                        fs::read_to_string(&stderr_path).unwrap_or_default()
                    );
                }
            };
            let parsed =
                (line.trim().strip_prefix("listening on ftp://")).map(str::parse::<SocketAddr>);
            match parsed {
                Some(Ok(addr)) => break addr,
                Some(Err(e)) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("cannot parse the address in {line:?}: {e}");
                }
                None => startup.push(line),
            }
        };
        assert!(
            addr.ip().is_loopback(),
            "the server listens on {addr}, not on loopback"
        );
        Server {
            child,
            addr,
            startup,
            root,
            stderr_path,
            dir,
        }
    }

    /// The lines the server printed on stdout before its first `listening on ftp://` line.
    pub fn startup_lines(&self) -> &[String] {
        &self.startup
    }

    /// The SHA-256 fingerprint of the TLS certificate (`AA:BB:...`) the server printed, if
    /// FTPS is on.
    pub fn fingerprint(&self) -> Option<String> {
        self.startup.iter().find_map(|l| {
            l.strip_prefix("tls certificate sha256 fingerprint: ")
                .map(|f| f.trim().to_string())
        })
    }

    /// The first implicit-TLS listener (`--implicit-listen`), if any.
    pub fn implicit_addr(&self) -> Option<SocketAddr> {
        self.startup.iter().find_map(|l| {
            let rest = l.strip_prefix("listening on ftps://")?;
            rest.split_whitespace().next()?.parse().ok()
        })
    }

    /// The self-signed certificate the server made in its working folder (`./wharf-tls`),
    /// for clients to verify it with.
    pub fn self_signed_cert(&self) -> PathBuf {
        self.dir.join("wharf-tls/wharf-selfsigned-cert.pem")
    }

    /// The server's process id (to send it a signal).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The control address (127.0.0.1:port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The control port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `ftp://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("ftp://{}", self.addr)
    }

    /// The served root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A folder for the client's side of the test (outside the root).
    pub fn client_dir(&self) -> PathBuf {
        self.dir.join("client")
    }

    /// The test's temporary folder (holds `root/`, `client/`, the server's stderr).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the server has written to stderr so far (its log).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A logged-in raw control connection as [`USER`].
    pub fn login(&self) -> Ctrl {
        let mut c = Ctrl::connect(self.addr);
        c.login(USER, PASSWORD);
        c
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("---- last lines of the server's log ({}) ----", self.addr);
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
            eprintln!("---- end of server log ----");
        }
    }
}

// ----- other server programs: the examples -----------------------------------------------------

/// Where the example program `name` of the workspace is (e.g. `mio_driver`): `$WHARF_EXAMPLES_DIR/
/// NAME`, else `examples/NAME` beside the `wharf` binary (`target/<profile>/examples/`), which
/// `cargo test --workspace --release` builds too.
pub fn example_bin(name: &str) -> PathBuf {
    let dir = match std::env::var_os("WHARF_EXAMPLES_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let exe = std::env::current_exe().expect("current_exe");
            // target/<profile>/deps/<test>-<hash>  →  target/<profile>/examples
            exe.parent()
                .and_then(Path::parent)
                .map(|d| d.join("examples"))
                .expect("test executable has no grandparent folder")
        }
    };
    let bin = dir.join(name);
    assert!(
        bin.is_file(),
        "the example program {} is missing. Run the tests with `cargo test --workspace \
         --release` (which builds it), or build it first with `cargo build --release -p \
         wharf-blocking --examples`, or point WHARF_EXAMPLES_DIR at its folder",
        bin.display()
    );
    bin
}

impl Server {
    /// Starts a server program other than `wharf serve` that takes the same first options
    /// and prints the same `listening on ftp://ADDR` line (an example program: see
    /// [`example_bin`]): `PROGRAM --listen 127.0.0.1:0 --root <fresh folder> --user
    /// alice:secret ARGS...`, in a fresh temporary folder (its working folder, as for
    /// [`Server::start`]). Waits (bounded) for that line; the program is killed on drop and
    /// everything else ([`Server::log`], [`Server::root`], [`Server::login`]...) works as for
    /// `wharf serve`.
    pub fn start_program(name: &str, program: &Path, args: &[&str]) -> Server {
        let dir = TempDir::new(name);
        let root = dir.join("root");
        fs::create_dir_all(&root).expect("create root");
        fs::create_dir_all(dir.join("client")).expect("create client folder");
        let stderr_path = dir.join("server.stderr");
        let stderr = fs::File::create(&stderr_path).expect("create stderr file");
        let mut cmd = Command::new(program);
        cmd.arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--root")
            .arg(&root)
            .arg("--user")
            .arg(format!("{USER}:{PASSWORD}"))
            .args(args);
        Server::spawn(cmd, program, dir, root, stderr_path, stderr)
    }
}

// ----- client programs ------------------------------------------------------------------------

/// Whether `program` is on `PATH`. When it is not: under `CI=true` this panics (a missing client
/// is a failure in CI); otherwise it prints `SKIPPED: <program> not installed` and returns false,
/// and the test returns early.
pub fn require(program: &str) -> bool {
    if find_in_path(program).is_some() {
        return true;
    }
    if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
        panic!("{program} is not installed and CI=true: a missing client program is a failure");
    }
    eprintln!("SKIPPED: {program} not installed");
    false
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| {
            fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// What a client program did.
#[derive(Debug)]
pub struct ClientOutput {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its standard output, lossily decoded.
    pub stdout: String,
    /// Its standard error, lossily decoded.
    pub stderr: String,
}

impl ClientOutput {
    /// Panics, showing both outputs, unless the program exited with status 0.
    pub fn assert_success(&self, what: &str) -> &ClientOutput {
        assert!(
            self.status.success(),
            "{what} failed ({}).\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// The path of a client script in `tests/e2e/`.
pub fn client_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("e2e")
        .join(name)
}

/// Runs one scenario of a client script in `tests/e2e/` (`python3 SCRIPT NAME PORT USER
/// PASSWORD CLIENT_DIR EXTRA...`, UTF-8 output, no bytecode files) and returns what it
/// printed. Panics with its output unless it exits 0 and prints the line `PASS NAME`, or if it
/// has not finished within `timeout`.
pub fn python_scenario<A: AsRef<std::ffi::OsStr>>(
    script: &str,
    server: &Server,
    name: &str,
    (user, password): (&str, &str),
    extra: &[A],
    timeout: Duration,
) -> String {
    let out = run_client(
        Command::new("python3")
            .arg(client_script(script))
            .arg(name)
            .arg(server.port().to_string())
            .arg(user)
            .arg(password)
            .arg(server.client_dir())
            .args(extra)
            .env("PYTHONIOENCODING", "utf-8")
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        timeout,
    );
    out.assert_success(&format!("{script} {name}"));
    assert!(
        out.stdout.lines().any(|l| l == format!("PASS {name}")),
        "scenario {name} of {script} exited 0 without its PASS line:\n{}",
        out.stdout
    );
    out.stdout
}

/// Runs the `wharf` command line (`wharf ARGS --config CONFIG`) in `dir` with `stdin` as its
/// input, as [`run_client_with_input`] does.
pub fn wharf_cli(
    dir: &Path,
    config: &Path,
    args: &[&str],
    stdin: &str,
    timeout: Duration,
) -> ClientOutput {
    run_client_with_input(
        Command::new(wharf_bin())
            .args(args)
            .arg("--config")
            .arg(config)
            .current_dir(dir),
        Some(stdin.as_bytes()),
        timeout,
    )
}

/// Runs a client program with no stdin, capturing its output; kills it and panics (with what it
/// printed so far) if it has not finished within `timeout`.
pub fn run_client(cmd: &mut Command, timeout: Duration) -> ClientOutput {
    run_client_with_input(cmd, None, timeout)
}

/// [`run_client`] with `input` written to the program's stdin (then closed); no stdin at all
/// when `None`.
pub fn run_client_with_input(
    cmd: &mut Command,
    input: Option<&[u8]>,
    timeout: Duration,
) -> ClientOutput {
    let shown = format!("{cmd:?}");
    run_bounded(cmd, input, timeout).unwrap_or_else(|(stdout, stderr)| {
        panic!(
            "{shown} did not finish within {timeout:?}; killed.\n--- stdout ---\n{stdout}\n\
             --- stderr ---\n{stderr}"
        )
    })
}

/// [`run_client`] for a program that may not end by itself (a server expected to refuse to
/// start): `Err(what it printed)` when it has not finished within `timeout`, after it has
/// been killed.
pub fn run_client_or_kill(cmd: &mut Command, timeout: Duration) -> Result<ClientOutput, String> {
    run_bounded(cmd, None, timeout)
        .map_err(|(stdout, stderr)| format!("--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"))
}

/// Runs `cmd` with a deadline; `Err((stdout, stderr))` if it was killed at the deadline.
fn run_bounded(
    cmd: &mut Command,
    input: Option<&[u8]>,
    timeout: Duration,
) -> Result<ClientOutput, (String, String)> {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
        // A program that exits without reading its input is not an error here.
        let _ = stdin.write_all(bytes);
    }
    let out = drain(child.stdout.take().expect("piped stdout"));
    let err = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Err(e) => panic!("waiting for {shown}: {e}"),
        }
    };
    let stdout = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    match status {
        Some(status) => Ok(ClientOutput {
            status,
            stdout,
            stderr,
        }),
        None => Err((stdout, stderr)),
    }
}

fn drain(mut r: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

// ----- a raw control connection ---------------------------------------------------------------

/// How long a raw client waits for any one reply or data read.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// One FTP reply as read from the wire.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// Every line of the reply, without CRLF.
    pub lines: Vec<String>,
}

impl Reply {
    /// The text after the code on the first line.
    pub fn text(&self) -> &str {
        self.lines
            .first()
            .map(|l| l.get(4..).unwrap_or(""))
            .unwrap_or("")
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.lines.join("\n"))
    }
}

/// A raw FTP control connection with timeouts, for tests that need exact bytes.
pub struct Ctrl {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Ctrl {
    /// Connects and reads the greeting, which must be 220.
    pub fn connect(addr: SocketAddr) -> Ctrl {
        let mut c =
            Ctrl::connect_raw(addr).unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
        let greeting = c.reply();
        assert_eq!(greeting.code, 220, "greeting: {greeting}");
        c
    }

    /// Connects without reading anything.
    pub fn connect_raw(addr: SocketAddr) -> io::Result<Ctrl> {
        let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        s.set_write_timeout(Some(IO_TIMEOUT))?;
        let writer = s.try_clone()?;
        Ok(Ctrl {
            reader: BufReader::new(s),
            writer,
        })
    }

    /// The client's end of the control connection (the address the server sees).
    pub fn local_addr(&self) -> SocketAddr {
        self.writer.local_addr().expect("local address")
    }

    /// USER + PASS, expecting 331 then 230.
    pub fn login(&mut self, user: &str, password: &str) {
        let r = self.cmd(&format!("USER {user}"));
        assert_eq!(r.code, 331, "USER {user}: {r}");
        let r = self.cmd(&format!("PASS {password}"));
        assert_eq!(r.code, 230, "PASS for {user}: {r}");
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer
            .write_all(bytes)
            .expect("write to control connection");
    }

    /// Sends one command line (CRLF added); `Err` when the connection is gone, for tests in
    /// which the server is expected to close it.
    pub fn try_send(&mut self, line: &str) -> io::Result<()> {
        self.writer.write_all(format!("{line}\r\n").as_bytes())
    }

    /// Sends one command line (CRLF added).
    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    /// Sends a command and reads its reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(line);
        self.reply()
    }

    /// Reads one reply (multi-line aware); panics on timeout, EOF or a malformed line.
    pub fn reply(&mut self) -> Reply {
        self.try_reply()
            .unwrap_or_else(|e| panic!("reading a reply: {e}"))
    }

    /// Reads one reply; `Err` on timeout or EOF (`UnexpectedEof`).
    pub fn try_reply(&mut self) -> io::Result<Reply> {
        let first = self.line()?;
        let code = reply_code(&first).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("reply line does not start with a code: {first:?}"),
            )
        })?;
        let mut lines = vec![first.clone()];
        if first.as_bytes().get(3) == Some(&b'-') {
            let end = format!("{code} ");
            // A multi-line reply is bounded by the server; cap it anyway.
            for _ in 0..100_000 {
                let l = self.line()?;
                let done = l.starts_with(&end) || l == code.to_string();
                lines.push(l);
                if done {
                    return Ok(Reply { code, lines });
                }
            }
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "multi-line reply without an end",
            ));
        }
        Ok(Reply { code, lines })
    }

    fn line(&mut self) -> io::Result<String> {
        let mut buf = Vec::new();
        let n = (&mut self.reader)
            .take(64 * 1024)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "control connection closed",
            ));
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Whether the server has closed the connection: reads until EOF (true) or timeout
    /// (false), ignoring any replies on the way.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let _ = self.reader.get_ref().set_read_timeout(Some(timeout));
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            match self.reader.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
        false
    }

    /// PASV; returns the data address (must be 227 and on loopback).
    pub fn pasv(&mut self) -> SocketAddr {
        let r = self.cmd("PASV");
        assert_eq!(r.code, 227, "PASV: {r}");
        parse_227(&r.lines[0]).unwrap_or_else(|| panic!("cannot parse {r}"))
    }

    /// PASV, the command, then reads the whole data connection; returns (preliminary reply,
    /// data, final reply). The preliminary reply is returned as is when it is not 1xx (then
    /// no data is read and the final reply is the same one).
    pub fn transfer_in(&mut self, command: &str) -> (Reply, Vec<u8>, Reply) {
        let data_addr = self.pasv();
        let data = TcpStream::connect_timeout(&data_addr, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to the passive port {data_addr}: {e}"));
        let first = self.cmd(command);
        if !(100..200).contains(&first.code) {
            return (first.clone(), Vec::new(), first);
        }
        let bytes = read_to_end_timeout(data, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("reading the data of {command}: {e}"));
        let last = self.reply();
        (first, bytes, last)
    }
}

impl Ctrl {
    /// PASV, the command (STOR, APPE...), then sends `bytes` on the data connection and closes
    /// it; returns (preliminary reply, final reply). When the preliminary reply is not 1xx, no
    /// data is sent and the final reply is the same one.
    pub fn transfer_out(&mut self, command: &str, bytes: &[u8]) -> (Reply, Reply) {
        let data_addr = self.pasv();
        let mut data = TcpStream::connect_timeout(&data_addr, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to the passive port {data_addr}: {e}"));
        let first = self.cmd(command);
        if !(100..200).contains(&first.code) {
            return (first.clone(), first);
        }
        data.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
        data.write_all(bytes)
            .unwrap_or_else(|e| panic!("sending the data of {command}: {e}"));
        data.shutdown(std::net::Shutdown::Write).expect("shutdown");
        drop(data);
        let last = self.reply();
        (first, last)
    }
}

/// The code of a reply line, if it starts with three digits followed by space, `-` or nothing.
pub fn reply_code(line: &str) -> Option<u16> {
    let b = line.as_bytes();
    if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    if !matches!(b.get(3), None | Some(b' ') | Some(b'-')) {
        return None;
    }
    line[..3].parse().ok()
}

/// Parses `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)`.
pub fn parse_227(line: &str) -> Option<SocketAddr> {
    let start = line.find('(')? + 1;
    let end = start + line[start..].find(')')?;
    let nums: Vec<u16> = line[start..end]
        .split(',')
        .map(|s| s.trim().parse::<u16>())
        .collect::<Result<_, _>>()
        .ok()?;
    if nums.len() != 6 || nums.iter().any(|&n| n > 255) {
        return None;
    }
    let ip = Ipv4Addr::new(nums[0] as u8, nums[1] as u8, nums[2] as u8, nums[3] as u8);
    Some(SocketAddr::V4(SocketAddrV4::new(
        ip,
        nums[4] * 256 + nums[5],
    )))
}

/// Reads a stream to EOF, failing if it stays silent for `timeout` or takes more than ten times
/// that in total.
pub fn read_to_end_timeout(mut s: TcpStream, timeout: Duration) -> io::Result<Vec<u8>> {
    s.set_read_timeout(Some(timeout))?;
    let deadline = Instant::now() + timeout * 10;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        if Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "data took too long",
            ));
        }
        match s.read(&mut buf)? {
            0 => return Ok(out),
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

// ----- data and trees -------------------------------------------------------------------------

/// `len` pseudo-random bytes (xorshift64*), different for each seed. Not for cryptography; it
/// only has to defeat compression and make any misplaced byte visible.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes a file, creating its parent folders.
pub fn write_file(path: impl AsRef<Path>, bytes: &[u8]) {
    let path = path.as_ref();
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
    }
    fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Reads a file, panicking with its name.
pub fn read_file(path: impl AsRef<Path>) -> Vec<u8> {
    let path = path.as_ref();
    fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Asserts two byte strings are equal without printing megabytes: shows lengths and the first
/// differing offset.
pub fn assert_same_bytes(what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let first = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    panic!(
        "{what}: contents differ: got {} bytes, want {} bytes, first difference at offset {first}",
        got.len(),
        want.len()
    );
}

/// One entry of a folder tree.
#[derive(Clone, PartialEq, Eq)]
pub enum Entry {
    /// A folder.
    Dir,
    /// A regular file and its contents.
    File(Vec<u8>),
    /// Anything else (symlink, device...), with its description.
    Other(String),
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Entry::Dir => f.write_str("folder"),
            Entry::File(b) => write!(f, "file of {} bytes", b.len()),
            Entry::Other(s) => f.write_str(s),
        }
    }
}

/// Every entry under `dir` (not following symlinks), keyed by its path relative to `dir` with
/// `/` separators. Bounded to 100,000 entries.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((abs, rel)) = stack.pop() {
        let rd = fs::read_dir(&abs).unwrap_or_else(|e| panic!("read {}: {e}", abs.display()));
        for e in rd {
            assert!(
                out.len() < 100_000,
                "tree under {} too large",
                dir.display()
            );
            let e = e.expect("read_dir entry");
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let ft = e.file_type().expect("file type");
            if ft.is_dir() {
                out.insert(rel.clone(), Entry::Dir);
                stack.push((e.path(), rel));
            } else if ft.is_file() {
                out.insert(rel, Entry::File(read_file(e.path())));
            } else {
                out.insert(rel, Entry::Other(format!("{ft:?}")));
            }
        }
    }
    out
}

/// Asserts two folders hold the same names with the same kinds and contents; the message lists
/// every difference.
pub fn assert_same_tree(got: &Path, want: &Path) {
    let (g, w) = (snapshot(got), snapshot(want));
    let mut diffs = Vec::new();
    for (k, v) in &w {
        match g.get(k) {
            None => diffs.push(format!("missing: {k:?} ({v:?})")),
            Some(gv) if gv != v => diffs.push(format!("differs: {k:?}: got {gv:?}, want {v:?}")),
            Some(_) => {}
        }
    }
    for (k, v) in &g {
        if !w.contains_key(k) {
            diffs.push(format!("unexpected: {k:?} ({v:?})"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} differs from {}:\n{}",
        got.display(),
        want.display(),
        diffs.join("\n")
    );
}
