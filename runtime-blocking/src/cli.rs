//! The `wharf` command line: `serve`, `user add`, `check-config`.
//!
//! `wharf serve` prints machine-readable lines on stdout, flushed at once, which scripts and
//! the end-to-end tests read:
//! ```text
//! user: NAME            (only for a generated account)
//! password: PASSWORD    (only for a generated account)
//! tls certificate sha256 fingerprint: AA:BB:...       (when FTPS is on)
//! listening on ftps://127.0.0.1:990 (implicit TLS)    (one per implicit-TLS listener)
//! listening on ftp://127.0.0.1:2121      (one per listener, the address actually bound)
//! ```
//! The `ftp://` lines come last, so a reader that stops at the first of them has seen the
//! others. Logs go to stderr (`RUST_LOG`, default `info`).
//!
//! FTPS is on by default: with no `tls_cert`/`--cert`, `serve` makes a self-signed
//! certificate in `tls_dir` (`./wharf-tls`) on first start and reuses it afterwards. The
//! certificate files are watched (and SIGHUP reloads them) for as long as the server runs.

use clap::{Args, Parser, Subcommand};
use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config::{parse_listen, parse_passive_ports, parse_tls_policy, ConfigError, Settings};
use crate::server::{Server, Shared};
use crate::tls::{self, TlsContext, TlsError, WatchOptions};
use crate::users::{self, UserEntry, UserStore};
use wharf_core::{TlsOverride, TlsPolicy};

/// Wharf: an FTP server for exchanging files with trading partners.
#[derive(Debug, Parser)]
#[command(name = "wharf", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server. With no options: 127.0.0.1:2121, serving ./wharf-data, with the
    /// accounts of ./wharf-users.toml if it exists, else a generated user whose name and
    /// password are printed.
    Serve(ServeArgs),
    /// Manage the users file.
    #[command(subcommand)]
    User(UserCommand),
    /// Check a configuration file (and the users file it names); print every problem.
    CheckConfig {
        /// The TOML file.
        file: PathBuf,
    },
}

/// Options of `wharf serve`; they override the configuration file.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML) for everything the flags do not set.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on, ip:port (repeatable; port 0 picks a free port).
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub listen: Vec<SocketAddr>,
    /// Folder served to --user accounts and the generated user (made if missing).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// An account NAME:PASSWORD whose home is the root (repeatable); no user is generated.
    #[arg(long, value_name = "NAME:PASSWORD", value_parser = parse_user_arg)]
    pub user: Vec<(String, String)>,
    /// Accept anonymous logins (anonymous or ftp, any password), read-only, in the root.
    #[arg(long)]
    pub anonymous: bool,
    /// Ports for passive data connections, e.g. "30000-30100, 40000-".
    #[arg(long, value_name = "SPEC")]
    pub passive_ports: Option<String>,
    /// Connections served at once; more get 421.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Connections at once from one address (0 = no limit).
    #[arg(long, value_name = "N")]
    pub max_connections_per_ip: Option<usize>,
    /// TLS certificate chain, PEM (with --key). Default: a self-signed certificate made in
    /// the tls_dir folder (./wharf-tls) on first start.
    #[arg(long, value_name = "FILE", requires = "key", conflicts_with = "no_tls")]
    pub cert: Option<PathBuf>,
    /// Private key of --cert, PEM (PKCS#8, PKCS#1, SEC1; an encrypted PKCS#8 key takes its
    /// password from the config file's tls_key_password or tls_key_password_file).
    #[arg(
        long,
        value_name = "FILE",
        requires = "cert",
        conflicts_with = "no_tls"
    )]
    pub key: Option<PathBuf>,
    /// Address of an implicit-TLS listener, ip:port (repeatable; port 990 by tradition).
    #[arg(long, value_name = "ADDR", value_parser = parse_listen, conflicts_with = "no_tls")]
    pub implicit_listen: Vec<SocketAddr>,
    /// Who must use TLS on the control and data connections: none, accounts (everyone but
    /// anonymous) or all.
    #[arg(long, value_name = "WHO", value_parser = parse_tls_policy, conflicts_with = "no_tls")]
    pub tls_required: Option<TlsPolicy>,
    /// Do not offer FTPS (no AUTH TLS, no implicit listener, no certificate made).
    #[arg(long)]
    pub no_tls: bool,
}

/// `wharf user ...`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add an account to the users file (argon2id-hashed password).
    Add(UserAddArgs),
}

/// Options of `wharf user add`.
#[derive(Debug, Args)]
pub struct UserAddArgs {
    /// The login name.
    pub name: String,
    /// The account's home folder (made if missing).
    #[arg(long, value_name = "DIR")]
    pub home: PathBuf,
    /// Read the password as one line from standard input, without a prompt.
    #[arg(long)]
    pub password_stdin: bool,
    /// The account may only read.
    #[arg(long)]
    pub read_only: bool,
    /// The users file to write (default: the config's users_file, or ./wharf-users.toml).
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub users: Option<PathBuf>,
    /// Take the users file from this configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

fn parse_user_arg(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((name, pw)) if !name.is_empty() && !pw.is_empty() => {
            Ok((name.to_string(), pw.to_string()))
        }
        _ => Err("expected NAME:PASSWORD, both non-empty".into()),
    }
}

/// Runs the command line; returns the process exit code.
pub fn main(cli: Cli) -> i32 {
    let r = match cli.command {
        Command::Serve(args) => serve(args),
        Command::User(UserCommand::Add(args)) => user_add(args),
        Command::CheckConfig { file } => check_config(&file),
    };
    match r {
        Ok(()) => 0,
        Err(messages) => {
            for m in messages {
                eprintln!("{m}");
            }
            1
        }
    }
}

fn errs(e: Vec<ConfigError>) -> Vec<String> {
    e.iter().map(ToString::to_string).collect()
}

/// The settings of `wharf serve`: the file, then the flags over it.
pub fn settings_for(args: &ServeArgs) -> Result<Settings, Vec<String>> {
    let mut s = match &args.config {
        Some(path) => Settings::load(path).map_err(errs)?,
        None => Settings::default(),
    };
    if !args.listen.is_empty() {
        s.listen = args.listen.clone();
    }
    if let Some(root) = &args.root {
        s.root = root.clone();
    }
    if args.anonymous {
        s.anonymous = true;
    }
    if let Some(spec) = &args.passive_ports {
        s.passive_ports = parse_passive_ports(spec)
            .map_err(|m| vec![format!("command line: --passive-ports: {m}")])?;
    }
    if let Some(n) = args.max_connections {
        if n == 0 {
            return Err(vec![
                "command line: --max-connections: must be at least 1".into()
            ]);
        }
        s.max_connections = n;
    }
    if let Some(n) = args.max_connections_per_ip {
        s.max_connections_per_ip = n;
    }
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        s.tls_cert = Some(cert.clone());
        s.tls_key = Some(key.clone());
    }
    if !args.implicit_listen.is_empty() {
        s.implicit_listen = args.implicit_listen.clone();
    }
    if let Some(p) = args.tls_required {
        s.tls_required_control = p;
        s.tls_required_data = p;
    }
    if args.no_tls {
        s.tls = false;
    }
    let source = config_name(args);
    let problems = s.tls_problems();
    if !problems.is_empty() {
        return Err(problems
            .into_iter()
            .map(|(key, m)| ConfigError::new(&source, key, m).to_string())
            .collect());
    }
    Ok(s)
}

/// Where the settings came from, for messages: the config file, or `command line`.
fn config_name(args: &ServeArgs) -> String {
    args.config
        .as_ref()
        .map_or("command line".to_string(), |p| p.display().to_string())
}

/// `path` made absolute and with symlinks resolved as far as it exists (the rest is
/// appended), so that containment can be checked for files not made yet.
fn real_path(path: &Path) -> PathBuf {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    // Bounded by the number of components.
    loop {
        if let Ok(real) = std::fs::canonicalize(existing) {
            let mut out = real;
            for c in rest.iter().rev() {
                out.push(c);
            }
            return out;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return abs,
        }
    }
}

/// Checks that no TLS secret sits where an FTP user could download it: `tls_dir` (for the
/// self-signed key) or the configured key inside the root, the anonymous root or a user's
/// home. Returns the problems, naming the key.
fn tls_placement_problems(
    s: &Settings,
    accounts: &[UserEntry],
    anonymous_root: Option<&Path>,
    source: &str,
) -> Vec<String> {
    if !s.tls {
        return Vec::new();
    }
    let mut served: Vec<(String, PathBuf)> = vec![("the root".into(), s.root.clone())];
    if let Some(a) = anonymous_root {
        served.push(("the anonymous root".into(), a.to_path_buf()));
    }
    for u in accounts {
        served.push((format!("the home of user '{}'", u.name), u.home.clone()));
    }
    let (key, what, path) = match &s.tls_key {
        Some(k) => ("tls_key", "the private key", k.clone()),
        None => (
            "tls_dir",
            "the folder of the self-signed key",
            s.tls_dir.clone(),
        ),
    };
    let real = real_path(&path);
    served
        .iter()
        .filter(|(_, folder)| real.starts_with(real_path(folder)))
        .map(|(name, folder)| {
            ConfigError::new(
                source,
                key,
                format!(
                    "{what} {} is inside {name} ({}), where FTP clients could download it; \
                     keep TLS keys outside every served folder",
                    path.display(),
                    folder.display()
                ),
            )
            .to_string()
        })
        .collect()
}

/// The config key a TLS loading error is about, from the file it names.
fn tls_error_key(s: &Settings, e: &TlsError) -> &'static str {
    let Some(p) = e.path() else {
        return "tls_cert";
    };
    if s.tls_key.as_deref() == Some(p) {
        "tls_key"
    } else if s.tls_key_password_file.as_deref() == Some(p) {
        "tls_key_password_file"
    } else if s.tls_client_ca.as_deref() == Some(p) {
        "tls_client_ca"
    } else if s.tls_cert.as_deref() == Some(p) {
        "tls_cert"
    } else {
        "tls_dir"
    }
}

/// Loads the configured certificate, or makes (first start) or reuses the self-signed one in
/// `tls_dir`. `None` when TLS is off.
fn load_tls(s: &Settings, source: &str) -> Result<Option<TlsContext>, Vec<String>> {
    if !s.tls {
        return Ok(None);
    }
    let fail = |e: TlsError| {
        vec![ConfigError::new(source, tls_error_key(s, &e), e.to_string()).to_string()]
    };
    let ctx = match (&s.tls_cert, &s.tls_key) {
        (Some(cert), Some(key)) => TlsContext::load(&s.tls_settings(cert, key)).map_err(fail)?,
        _ => {
            let made = tls::ensure_self_signed(&s.tls_dir).map_err(fail)?;
            if made.created {
                log::info!(
                    "made a self-signed TLS certificate in {} (clients will be warned about it; \
                     set tls_cert and tls_key, or --cert and --key, for a real one)",
                    s.tls_dir.display()
                );
            }
            let mut t = s.tls_settings(&made.cert_path, &made.key_path);
            t.key_password = None;
            t.key_password_file = None;
            TlsContext::load(&t).map_err(fail)?
        }
    };
    Ok(Some(ctx))
}

/// The named accounts of the users file, checked as `serve` and `check-config` need.
/// `config` names the configuration file the settings came from.
fn file_users(s: &Settings, config: &str) -> Result<Vec<UserEntry>, Vec<String>> {
    if s.users_file.exists() {
        users::load_users_file(&s.users_file).map_err(errs)
    } else if s.users_file_explicit {
        Err(vec![ConfigError::new(
            config,
            "users_file",
            format!(
                "{} does not exist; create it with `wharf user add NAME --home DIR --config {config}`",
                s.users_file.display()
            ),
        )
        .to_string()])
    } else {
        Ok(Vec::new())
    }
}

fn serve(args: ServeArgs) -> Result<(), Vec<String>> {
    let settings = settings_for(&args)?;
    std::fs::create_dir_all(&settings.root).map_err(|e| {
        vec![format!(
            "cannot create the root folder {}: {e}",
            settings.root.display()
        )]
    })?;
    let config_name = config_name(&args);
    let mut accounts = file_users(&settings, &config_name)?;
    let mut generated = None;
    for (name, pw) in &args.user {
        accounts.retain(|u| &u.name != name);
        accounts.push(UserEntry {
            name: name.clone(),
            password_hash: users::hash_password(pw).map_err(|e| vec![e])?,
            home: settings.root.clone(),
            write: true,
            tls: TlsOverride::default(),
        });
    }
    if accounts.is_empty() && args.user.is_empty() {
        let rand = |n| crate::rng::secure_token(n).map_err(|e| vec![e.to_string()]);
        let name = format!("wharf-{}", rand(6)?.to_lowercase());
        let pw = rand(20)?;
        accounts.push(UserEntry {
            name: name.clone(),
            password_hash: users::hash_password(&pw).map_err(|e| vec![e])?,
            home: settings.root.clone(),
            write: true,
            tls: TlsOverride::default(),
        });
        generated = Some((name, pw));
    }
    let anonymous_root = if settings.anonymous {
        let root = settings.anonymous_root().to_path_buf();
        if !root.is_dir() {
            return Err(vec![format!(
                "anonymous_root: {} is not a folder",
                root.display()
            )]);
        }
        Some(root)
    } else {
        None
    };
    log::info!(
        "serving {} to {} account(s){}; anonymous logins {}; at most {} connections",
        settings.root.display(),
        accounts.len(),
        if settings.users_file.exists() {
            format!(" (users file {})", settings.users_file.display())
        } else {
            String::new()
        },
        match &anonymous_root {
            Some(r) => format!("on, read-only, in {}", r.display()),
            None => "off".into(),
        },
        settings.max_connections
    );
    let placement = tls_placement_problems(
        &settings,
        &accounts,
        anonymous_root.as_deref(),
        &config_name,
    );
    if !placement.is_empty() {
        return Err(placement);
    }
    let tls = load_tls(&settings, &config_name)?;
    // Reload on file change or SIGHUP for the server's whole life (dropped after `run`).
    let _watcher = match &tls {
        Some(ctx) => match ctx.watch(WatchOptions::default()) {
            Ok(w) => Some(w),
            Err(e) => {
                log::warn!("cannot watch the TLS certificate for changes: {e}");
                None
            }
        },
        None => None,
    };
    if let Some(ctx) = &tls {
        log::info!(
            "FTPS on: AUTH TLS offered; TLS required on control connections: {:?}, on data \
             connections: {:?}; data connections must resume the control session: {}",
            settings.tls_required_control,
            settings.tls_required_data,
            settings.require_tls_session_reuse
        );
        log::debug!("TLS settings: {:?}", ctx.settings());
    }
    let store = UserStore::new(accounts, anonymous_root).map_err(|e| vec![e])?;
    let events = crate::events::EventHub::open(&settings)
        .map_err(|(key, m)| vec![ConfigError::new(&config_name, key, m).to_string()])?;
    let mut shared = Shared::new(settings, store, tls.clone());
    shared.events = events;
    let server = Server::bind(shared).map_err(|e| vec![e])?;
    let mut out = std::io::stdout().lock();
    let mut lines = String::new();
    if let Some((name, pw)) = &generated {
        lines.push_str(&format!("user: {name}\npassword: {pw}\n"));
    }
    if let Some(ctx) = &tls {
        lines.push_str(&format!(
            "tls certificate sha256 fingerprint: {}\n",
            ctx.fingerprint()
        ));
    }
    for addr in server.implicit_addrs() {
        lines.push_str(&format!("listening on ftps://{addr} (implicit TLS)\n"));
    }
    for addr in server.local_addrs() {
        lines.push_str(&format!("listening on ftp://{addr}\n"));
    }
    let _ = out.write_all(lines.as_bytes());
    let _ = out.flush();
    drop(out);
    server
        .run()
        .map_err(|e| vec![format!("the server stopped: {e}")])
}

fn read_password(name: &str, from_stdin: bool) -> Result<String, String> {
    let stdin = std::io::stdin();
    let prompt = !from_stdin && stdin.is_terminal();
    let read = |what: &str| -> Result<String, String> {
        if prompt {
            eprint!("{what}");
            let _ = std::io::stderr().flush();
        }
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password: {e}"))?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    };
    let pw = read(&format!("Password for {name}: "))?;
    if pw.is_empty() {
        return Err("the password is empty".into());
    }
    if prompt && read("Repeat the password: ")? != pw {
        return Err("the passwords differ".into());
    }
    Ok(pw)
}

fn user_add(args: UserAddArgs) -> Result<(), Vec<String>> {
    let file = match (&args.users, &args.config) {
        (Some(f), _) => f.clone(),
        (None, Some(c)) => Settings::load(c).map_err(errs)?.users_file,
        (None, None) => PathBuf::from("wharf-users.toml"),
    };
    let name = args.name.trim();
    if name.is_empty() || name.chars().any(|c| c.is_control()) {
        return Err(vec![
            "the user name must be non-empty, without control characters".into(),
        ]);
    }
    let existing = if file.exists() {
        users::load_users_file(&file).map_err(errs)?
    } else {
        Vec::new()
    };
    if existing.iter().any(|u| u.name == name) {
        return Err(vec![format!(
            "{}: user '{name}' exists already",
            file.display()
        )]);
    }
    let cwd = std::env::current_dir().map_err(|e| vec![e.to_string()])?;
    let home = cwd.join(&args.home);
    std::fs::create_dir_all(&home).map_err(|e| {
        vec![format!(
            "cannot create the home folder {}: {e}",
            home.display()
        )]
    })?;
    let pw = read_password(name, args.password_stdin).map_err(|e| vec![e])?;
    let hash = users::hash_password(&pw).map_err(|e| vec![e])?;
    append_entry(
        &file,
        &users::user_entry_toml(name, &hash, &home, !args.read_only),
    )
    .map_err(|e| vec![format!("{}: cannot write: {e}", file.display())])?;
    println!("added user '{name}' to {}", file.display());
    Ok(())
}

fn append_entry(file: &Path, entry: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let old = std::fs::read(file).unwrap_or_default();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(file)?;
    let mut text = String::new();
    if !old.is_empty() {
        if !old.ends_with(b"\n") {
            text.push('\n');
        }
        text.push('\n');
    }
    text.push_str(entry);
    f.write_all(text.as_bytes())
}

fn check_config(file: &Path) -> Result<(), Vec<String>> {
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|e| {
        vec![ConfigError::file(&name, format!("cannot read the file: {e}")).to_string()]
    })?;
    let (s, errors) = Settings::parse_all(&text, &name, file.parent().unwrap_or(Path::new("")));
    let mut problems = errs(errors);
    if s.root.exists() && !s.root.is_dir() {
        problems.push(
            ConfigError::new(
                &name,
                "root",
                format!("{} is not a folder", s.root.display()),
            )
            .to_string(),
        );
    }
    if s.anonymous && s.anonymous_root.is_some() && !s.anonymous_root().is_dir() {
        problems.push(
            ConfigError::new(
                &name,
                "anonymous_root",
                format!("{} is not a folder", s.anonymous_root().display()),
            )
            .to_string(),
        );
    }
    match file_users(&s, &name) {
        Ok(accounts) => {
            let anonymous_root = s.anonymous.then(|| s.anonymous_root().to_path_buf());
            problems.extend(tls_placement_problems(
                &s,
                &accounts,
                anonymous_root.as_deref(),
                &name,
            ));
        }
        Err(e) => problems.extend(e),
    }
    // A configured certificate and key must load (password, match, validity); the
    // self-signed one is made by `serve`, not here.
    if s.tls && s.tls_problems().is_empty() {
        if let (Some(cert), Some(key)) = (&s.tls_cert, &s.tls_key) {
            if let Err(e) = TlsContext::load(&s.tls_settings(cert, key)) {
                problems.push(
                    ConfigError::new(&name, tls_error_key(&s, &e), e.to_string()).to_string(),
                );
            }
        }
    }
    if problems.is_empty() {
        println!("ok");
        Ok(())
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_args(args: &[&str]) -> ServeArgs {
        let mut argv = vec!["wharf", "serve"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Serve(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_override_the_config_file() {
        let dir = std::env::temp_dir().join(format!("wharf-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("wharf.toml");
        std::fs::write(
            &file,
            "max_connections = 9\npassive_ports = \"100-200\"\nroot = \"data\"\nidle_timeout_secs = 5\n",
        )
        .unwrap();
        let config = file.to_str().unwrap();
        let s = settings_for(&serve_args(&["--config", config])).unwrap();
        assert_eq!(s.max_connections, 9);
        assert_eq!(s.root, dir.join("data"));
        let s = settings_for(&serve_args(&[
            "--config",
            config,
            "--max-connections",
            "3",
            "--passive-ports",
            "7000",
            "--root",
            "elsewhere",
            "--listen",
            "127.0.0.1:0",
            "--anonymous",
        ]))
        .unwrap();
        assert_eq!(s.max_connections, 3);
        assert_eq!(s.passive_ports.len(), 1);
        assert_eq!(s.root, PathBuf::from("elsewhere"));
        assert_eq!(s.listen, vec!["127.0.0.1:0".parse().unwrap()]);
        assert!(s.anonymous);
        // Keys without a flag keep the file's value.
        assert_eq!(s.idle_timeout, std::time::Duration::from_secs(5));
        let err = settings_for(&serve_args(&["--passive-ports", "9-1"])).unwrap_err();
        assert_eq!(
            err,
            vec!["command line: --passive-ports: '9-1': the range runs backwards (9 > 1)"]
        );
        assert!(Cli::try_parse_from(["wharf", "serve", "--user", "nopassword"]).is_err());
        assert!(Cli::try_parse_from(["wharf", "serve", "--listen", "nowhere"]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
