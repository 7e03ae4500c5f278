//! The `wharf` command line: `serve`, the management of the user store (`user add|passwd|
//! enable|disable|list`, `partner add|list`) and `check-config`.
//!
//! `serve` and the management commands share one configuration file: `--config FILE`, by
//! default `./wharf.toml` (`serve` reads it when it exists; the first management command that
//! writes the store creates it, with `users_file = "wharf-users.toml"` and `partners_root =
//! "wharf-partners"` beside it). Its `users_file` says where the store is; `--users FILE`
//! names the store directly (then no configuration file is made). Store changes are written
//! atomically and checked first, so a running server (which re-reads the store within a few
//! seconds, see `server::watch_store`) never sees a file it would refuse.
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
use wharf_core::policy::Cidr;
use wharf_core::{SessionReuse, TlsPolicy};

use crate::config::keys::{parse_listen, parse_passive_ports, parse_tls_policy};
use crate::config::{Settings, DEFAULT_CONFIG};
use crate::server::Server;
use crate::shared::Shared;
use crate::store::{self, parse_cidr, StoreData, StoreEdit, UserEntry, UserLimits};
use crate::tls::{self, TlsContext, TlsError, WatchOptions};
use crate::toml_read::{self, messages, ConfigError};
use crate::users::{self, Users};

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
    /// Run the server. With no options: 127.0.0.1:2121, the settings of ./wharf.toml if it
    /// exists, the accounts of the user store (./wharf-users.toml) if it exists, else a
    /// generated user (serving ./wharf-data) whose name and password are printed.
    Serve(ServeArgs),
    /// Manage the users of the user store.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the trading partners of the user store.
    #[command(subcommand)]
    Partner(PartnerCommand),
    /// Check a configuration file (and the user store it names); print every problem.
    CheckConfig {
        /// The TOML file.
        file: PathBuf,
    },
}

/// Options of `wharf serve`; they override the configuration file.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML) for everything the flags do not set. Default: ./wharf.toml
    /// if it exists.
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

/// Where the user store is: the configuration file (`--config`, default ./wharf.toml) and its
/// `users_file`, or `--users`.
#[derive(Debug, Args, Clone, Default)]
pub struct StoreArgs {
    /// The configuration file whose `users_file` and `partners_root` are used (default
    /// ./wharf.toml; created, with the defaults, by a command that writes the store).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The user store file itself, instead of the configuration's `users_file`.
    #[arg(long, value_name = "FILE")]
    pub users: Option<PathBuf>,
}

/// `wharf user ...`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user (argon2id-hashed password): `partner/user` for a partner's user (the
    /// partner must exist), or `user` with --home for a user of no partner.
    Add(UserAddArgs),
    /// Set a user's password.
    Passwd(UserPasswdArgs),
    /// Let a user log in again.
    Enable(UserNameArgs),
    /// Stop a user from logging in (a running server refuses their next login).
    Disable(UserNameArgs),
    /// List the users.
    List(StoreArgs),
}

/// Options of `wharf user add`.
#[derive(Debug, Args)]
pub struct UserAddArgs {
    /// The login name: `partner/user`, or `user` for a user of no partner.
    pub name: String,
    /// The home folder of a user of no partner (made if missing). Partner users see their
    /// partner's tree instead.
    #[arg(long, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Read the password as one line from standard input, without a prompt.
    #[arg(long)]
    pub password_stdin: bool,
    /// The account may only read.
    #[arg(long)]
    pub read_only: bool,
    /// The account may use SITE WHO, SITE STAT and SITE DESCUSER.
    #[arg(long)]
    pub admin: bool,
    /// Add the account disabled (enable it with `wharf user enable`).
    #[arg(long)]
    pub disabled: bool,
    /// Idle time, rates, simultaneous logins, allowed addresses.
    #[command(flatten)]
    pub limits: UserLimits,
    /// Where the store is.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Options of `wharf user passwd`.
#[derive(Debug, Args)]
pub struct UserPasswdArgs {
    /// The login name.
    pub name: String,
    /// Read the password as one line from standard input, without a prompt.
    #[arg(long)]
    pub password_stdin: bool,
    /// Where the store is.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Options of `wharf user enable|disable`.
#[derive(Debug, Args)]
pub struct UserNameArgs {
    /// The login name.
    pub name: String,
    /// Where the store is.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `wharf partner ...`
#[derive(Debug, Subcommand)]
pub enum PartnerCommand {
    /// Add a trading partner and make its folders (Inbox, Outbox).
    Add(PartnerAddArgs),
    /// List the partners.
    List(StoreArgs),
}

/// Options of `wharf partner add`.
#[derive(Debug, Args)]
pub struct PartnerAddArgs {
    /// The partner's name (letters, digits, '.', '_', '-'); its users log in as NAME/user.
    pub name: String,
    /// Its users may log in only from this address or CIDR network (repeatable).
    #[arg(long, value_name = "CIDR", value_parser = parse_cidr)]
    pub allow_ip: Vec<Cidr>,
    /// Its users may not log in from this address or CIDR network (repeatable).
    #[arg(long, value_name = "CIDR", value_parser = parse_cidr)]
    pub deny_ip: Vec<Cidr>,
    /// The partner's folder (default: <partners_root>/NAME).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Mode of files its users upload, octal (default 0444).
    #[arg(long, value_name = "MODE", value_parser = parse_file_mode)]
    pub file_mode: Option<u32>,
    /// Mode of folders its users create, octal (default 0755).
    #[arg(long, value_name = "MODE", value_parser = parse_dir_mode)]
    pub dir_mode: Option<u32>,
    /// Where the store is.
    #[command(flatten)]
    pub store: StoreArgs,
}

fn parse_file_mode(s: &str) -> Result<u32, String> {
    store::parse_mode(s, 0o777)
}

fn parse_dir_mode(s: &str) -> Result<u32, String> {
    store::parse_mode(s, 0o7777)
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
        Command::User(UserCommand::Passwd(args)) => user_passwd(args),
        Command::User(UserCommand::Enable(args)) => user_enable(args, true),
        Command::User(UserCommand::Disable(args)) => user_enable(args, false),
        Command::User(UserCommand::List(args)) => user_list(&args),
        Command::Partner(PartnerCommand::Add(args)) => partner_add(args),
        Command::Partner(PartnerCommand::List(args)) => partner_list(&args),
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

/// The configuration file `serve` reads: `--config`, or ./wharf.toml when it exists.
fn serve_config(args: &ServeArgs) -> Option<PathBuf> {
    args.config.clone().or_else(|| {
        let default = PathBuf::from(DEFAULT_CONFIG);
        default.is_file().then_some(default)
    })
}

/// The settings of `wharf serve`: the file, then the flags over it.
pub fn settings_for(args: &ServeArgs) -> Result<Settings, Vec<String>> {
    let mut s = match serve_config(args) {
        Some(path) => Settings::load(&path).map_err(messages)?,
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
        s.core.tls_control = p;
        s.core.tls_data = p;
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
    serve_config(args).map_or("command line".to_string(), |p| p.display().to_string())
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

/// The folders FTP users are served, named for messages: the root (when an account from the
/// command line uses it), the anonymous root, every personal home, every partner's tree.
fn served_folders(
    s: &Settings,
    data: &StoreData,
    root_served: bool,
    anonymous_root: Option<&Path>,
) -> Vec<(String, PathBuf)> {
    let mut served = Vec::new();
    if root_served {
        served.push(("the root".to_string(), s.root.clone()));
    }
    if let Some(a) = anonymous_root {
        served.push(("the anonymous root".into(), a.to_path_buf()));
    }
    for u in &data.users {
        if let Some(home) = &u.home {
            served.push((format!("the home of user '{}'", u.name), home.clone()));
        }
    }
    for p in &data.partners {
        served.push((
            format!("the folder of partner '{}'", p.name),
            p.root.clone(),
        ));
    }
    served
}

/// Checks that no TLS secret sits where an FTP user could download it: `tls_dir` (for the
/// self-signed key) or the configured key inside a served folder. Returns the problems,
/// naming the key.
fn tls_placement_problems(s: &Settings, served: &[(String, PathBuf)], source: &str) -> Vec<String> {
    if !s.tls {
        return Vec::new();
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

/// Checks that no partner's tree lies inside another served folder, and no served folder
/// inside a partner's tree: users of one partner never see another's files, and nobody
/// else sees a partner's. Returns the problems.
fn partner_placement_problems(served: &[(String, PathBuf)], source: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, (name, folder)) in served.iter().enumerate() {
        if !name.starts_with("the folder of partner") {
            continue;
        }
        let real = real_path(folder);
        for (j, (other, other_folder)) in served.iter().enumerate() {
            if i == j {
                continue;
            }
            let other_real = real_path(other_folder);
            if real.starts_with(&other_real) || other_real.starts_with(&real) {
                out.push(
                    ConfigError::new(
                        source,
                        "partners_root",
                        format!(
                            "{name} ({}) and {other} ({}) overlap: each partner's tree must be \
                             a folder of its own, outside every other served folder",
                            folder.display(),
                            other_folder.display()
                        ),
                    )
                    .to_string(),
                );
            }
        }
    }
    out.dedup();
    out
}

/// The config key a TLS loading error is about, from the file it names.
fn tls_error_key(s: &Settings, e: &TlsError) -> &'static str {
    let Some(p) = e.path() else {
        return "tls_cert";
    };
    if s.tls_key.as_deref() == Some(p) {
        "tls_key"
    } else if s.tls_options.key_password_file.as_deref() == Some(p) {
        "tls_key_password_file"
    } else if s.tls_options.client_ca_path.as_deref() == Some(p) {
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

/// The user store as `serve` and `check-config` need it: empty when there is none (and none
/// was named), every problem otherwise. `config` names the configuration file.
fn store_data(s: &Settings, config: &str) -> Result<StoreData, Vec<String>> {
    if s.users_file.exists() {
        store::load(&s.users_file, &s.partners_root).map_err(messages)
    } else if s.users_file_explicit {
        Err(vec![ConfigError::new(
            config,
            "users_file",
            format!(
                "{} does not exist; create it with `wharf partner add NAME --config {config}` or \
                 `wharf user add NAME --home DIR --config {config}`",
                s.users_file.display()
            ),
        )
        .to_string()])
    } else {
        Ok(StoreData::default())
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
    let data = store_data(&settings, &config_name)?;
    let mut extra = Vec::new();
    let mut generated = None;
    for (name, pw) in &args.user {
        extra.retain(|u: &UserEntry| &u.name != name);
        let hash = users::hash_password(pw).map_err(|e| vec![e])?;
        extra.push(UserEntry::new(name, &hash, Some(settings.root.clone())));
    }
    if data.users.is_empty() && args.user.is_empty() {
        let rand = |n| crate::rng::secure_token(n).map_err(|e| vec![e.to_string()]);
        let name = format!("wharf-{}", rand(6)?.to_lowercase());
        let pw = rand(20)?;
        let hash = users::hash_password(&pw).map_err(|e| vec![e])?;
        extra.push(UserEntry::new(&name, &hash, Some(settings.root.clone())));
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
    let mut problems = crate::storage::make_partner_trees(&data.partners);
    let served = served_folders(
        &settings,
        &data,
        !extra.is_empty(),
        anonymous_root.as_deref(),
    );
    problems.extend(partner_placement_problems(&served, &config_name));
    problems.extend(tls_placement_problems(&settings, &served, &config_name));
    if !problems.is_empty() {
        return Err(problems);
    }
    // Partial uploads a previous run left behind (it stopped mid-upload).
    for (_, folder) in &served {
        crate::storage::sweep_partials(folder);
    }
    log::info!(
        "{} account(s) and {} partner(s){}; anonymous logins {}; at most {} connections; \
         atomic uploads {}, direct uploads {}",
        data.users.len() + extra.len(),
        data.partners.len(),
        if settings.users_file.exists() {
            format!(" (user store {})", settings.users_file.display())
        } else {
            String::new()
        },
        match &anonymous_root {
            Some(r) => format!("on, read-only, in {}", r.display()),
            None => "off".into(),
        },
        settings.max_connections,
        if settings.atomic_uploads { "on" } else { "off" },
        if settings.direct_uploads { "on" } else { "off" }
    );
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
             connections: {:?}; data connections must resume a TLS session: {}",
            settings.core.tls_control,
            settings.core.tls_data,
            match settings.core.tls_session_reuse {
                SessionReuse::NotRequired => "no (require_tls_session_reuse = false)",
                SessionReuse::SameConnection => "their control connection's",
                _ => "one of the same user from the same address",
            }
        );
        log::debug!("TLS settings: {:?}", ctx.settings());
    }
    if let Some(files) = crate::limits::raise_open_files(settings.max_connections) {
        if !files.enough() {
            log::warn!(
                "max_connections = {} may need {} open files, but the limit is {} (hard limit \
                 {}): connections beyond it will fail; raise it (ulimit -n, LimitNOFILE=) or \
                 lower max_connections",
                settings.max_connections,
                files.needed,
                files.now,
                files.hard
            );
        } else if files.now != files.before {
            log::info!(
                "open-file limit raised from {} to {} for max_connections = {}",
                files.before,
                files.now,
                settings.max_connections
            );
        }
    }
    let users =
        Users::new(data, extra, anonymous_root, settings.login_cache).map_err(|e| vec![e])?;
    let events = crate::events::EventHub::open(&settings.events)
        .map_err(|(key, m)| vec![ConfigError::new(&config_name, key, m).to_string()])?;
    let mut shared = Shared::new(settings, users, tls.clone());
    shared.events = events;
    let server = Server::bind(shared).map_err(|e| vec![e])?;
    // Reload on file change or SIGHUP for the server's whole life (dropped after `run`).
    let _store_watcher = crate::server::watch_store(server.shared().clone())
        .map_err(|e| log::warn!("cannot watch the user store for changes: {e}"));
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

/// Where a management command finds the store.
#[derive(Debug)]
struct StoreLocation {
    /// The configuration file.
    config: PathBuf,
    /// The store file.
    store: PathBuf,
    /// Where partners without a root of their own live.
    partners_root: PathBuf,
    /// The configuration file does not exist and a command that writes must make it.
    make_config: bool,
}

/// The text of a configuration file made by a management command.
const NEW_CONFIG: &str = "\
# Wharf configuration, made by a `wharf user`/`wharf partner` command. Every key and its
# default: README.md (Configuration). Relative paths are relative to this file's folder.
#
# The user store: trading partners and their users (see docs/partners.md).
users_file = \"wharf-users.toml\"
# Each partner's files live in <partners_root>/<partner>.
partners_root = \"wharf-partners\"
";

/// Finds the store from `--config` (default ./wharf.toml) and `--users`.
fn locate(args: &StoreArgs) -> Result<StoreLocation, Vec<String>> {
    let config = args
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let base = config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let (store, partners_root, make_config) = if config.is_file() {
        let s = Settings::load(&config).map_err(messages)?;
        (s.users_file, s.partners_root, false)
    } else {
        (
            base.join("wharf-users.toml"),
            base.join("wharf-partners"),
            args.users.is_none(),
        )
    };
    Ok(StoreLocation {
        store: args.users.clone().unwrap_or(store),
        config,
        partners_root,
        make_config,
    })
}

impl StoreLocation {
    /// What the store holds now (empty when there is no file yet).
    fn data(&self) -> Result<StoreData, Vec<String>> {
        if self.store.exists() {
            store::load(&self.store, &self.partners_root).map_err(messages)
        } else {
            Ok(StoreData::default())
        }
    }

    /// What the store holds; an error when there is no store.
    fn existing_data(&self) -> Result<StoreData, Vec<String>> {
        if !self.store.exists() {
            return Err(vec![format!(
                "{}: there is no user store yet; add a partner or a user first \
                 (`wharf partner add NAME`, `wharf user add NAME`)",
                self.store.display()
            )]);
        }
        self.data()
    }

    /// Makes the configuration file when it is missing (and the store was not named).
    fn make_config(&self) -> Result<(), Vec<String>> {
        if !self.make_config {
            return Ok(());
        }
        let made = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&self.config)
            .and_then(|mut f| f.write_all(NEW_CONFIG.as_bytes()));
        match made {
            Ok(()) => {
                println!(
                    "created {} (users_file = \"wharf-users.toml\", partners_root = \
                     \"wharf-partners\")",
                    self.config.display()
                );
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(vec![format!(
                "{}: cannot create the configuration file: {e}",
                self.config.display()
            )]),
        }
    }

    /// Applies `change` to the store file and writes it (atomically, checked first).
    fn edit(
        &self,
        change: impl FnOnce(&mut StoreEdit) -> Result<(), String>,
    ) -> Result<(), Vec<String>> {
        self.make_config()?;
        let mut edit = StoreEdit::open(&self.store).map_err(|e| vec![e])?;
        change(&mut edit).map_err(|e| vec![e])?;
        edit.save(&self.partners_root)
    }

    /// `--config FILE` as the user should repeat it in a suggested command.
    fn flag(&self) -> String {
        if self.config == Path::new(DEFAULT_CONFIG) {
            String::new()
        } else {
            format!(" --config {}", self.config.display())
        }
    }
}

fn user_add(args: UserAddArgs) -> Result<(), Vec<String>> {
    let name = args.name.trim().to_string();
    store::check_user_name(&name).map_err(|e| vec![e])?;
    let loc = locate(&args.store)?;
    let data = loc.data()?;
    if data.users.iter().any(|u| u.name == name) {
        return Err(vec![format!(
            "{}: user '{name}' exists already (change the password with `wharf user passwd {name}`)",
            loc.store.display()
        )]);
    }
    let home = match (name.split_once('/'), &args.home) {
        (Some((partner, _)), None) => {
            if data.partner(partner).is_none() {
                return Err(vec![format!(
                    "{}: partner '{partner}' does not exist; add it first with \
                     `wharf partner add {partner}{}`",
                    loc.store.display(),
                    loc.flag()
                )]);
            }
            None
        }
        (Some((partner, _)), Some(_)) => {
            return Err(vec![format!(
                "--home is for users of no partner: {name} sees the folder of partner \
                 '{partner}' (set with `wharf partner add --root`)"
            )])
        }
        (None, None) => {
            return Err(vec![format!(
                "a user of no partner needs --home DIR (a partner's user is written \
                 partner/user, e.g. acme/{name})"
            )])
        }
        (None, Some(dir)) => {
            let cwd = std::env::current_dir().map_err(|e| vec![e.to_string()])?;
            let home = cwd.join(dir);
            std::fs::create_dir_all(&home).map_err(|e| {
                vec![format!(
                    "cannot create the home folder {}: {e}",
                    home.display()
                )]
            })?;
            Some(home)
        }
    };
    let pw = read_password(&name, args.password_stdin).map_err(|e| vec![e])?;
    let hash = users::hash_password(&pw).map_err(|e| vec![e])?;
    let mut u = UserEntry::new(&name, &hash, home);
    u.write = !args.read_only;
    u.admin = args.admin;
    u.enabled = !args.disabled;
    u.limits = args.limits;
    loc.edit(|e| e.add_user(&u))?;
    println!("added user '{name}' to {}", loc.store.display());
    Ok(())
}

fn user_passwd(args: UserPasswdArgs) -> Result<(), Vec<String>> {
    let loc = locate(&args.store)?;
    let data = loc.existing_data()?;
    let name = args.name.trim();
    if !data.users.iter().any(|u| u.name == name) {
        return Err(vec![format!("{}: no user '{name}'", loc.store.display())]);
    }
    let pw = read_password(name, args.password_stdin).map_err(|e| vec![e])?;
    let hash = users::hash_password(&pw).map_err(|e| vec![e])?;
    loc.edit(|e| e.set_user(name, "password", hash.as_str()).map(|_| ()))?;
    println!(
        "changed the password of '{name}' in {}",
        loc.store.display()
    );
    Ok(())
}

fn user_enable(args: UserNameArgs, enabled: bool) -> Result<(), Vec<String>> {
    let loc = locate(&args.store)?;
    let data = loc.existing_data()?;
    let name = args.name.trim();
    if !data.users.iter().any(|u| u.name == name) {
        return Err(vec![format!("{}: no user '{name}'", loc.store.display())]);
    }
    loc.edit(|e| e.set_user(name, "enabled", enabled).map(|_| ()))?;
    println!(
        "{} user '{name}' in {}",
        if enabled { "enabled" } else { "disabled" },
        loc.store.display()
    );
    Ok(())
}

/// Prints rows as columns separated by two spaces (the last column unpadded).
fn print_table(rows: &[Vec<String>]) {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == cols {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    print!("{out}");
}

fn yes(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

fn cidr_list(c: &[Cidr]) -> String {
    if c.is_empty() {
        "-".into()
    } else {
        c.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn user_list(args: &StoreArgs) -> Result<(), Vec<String>> {
    let loc = locate(args)?;
    let data = loc.existing_data()?;
    let mut rows = vec![[
        "NAME", "PARTNER", "ENABLED", "WRITE", "ADMIN", "ALLOW_IP", "HOME",
    ]
    .map(String::from)
    .to_vec()];
    for u in &data.users {
        let home = match (u.partner(), &u.home) {
            (Some(p), _) => data
                .partner(p)
                .map_or("-".into(), |p| p.root.display().to_string()),
            (None, Some(h)) => h.display().to_string(),
            (None, None) => "-".into(),
        };
        rows.push(vec![
            u.name.clone(),
            u.partner().unwrap_or("-").to_string(),
            yes(u.enabled),
            yes(u.write),
            yes(u.admin),
            cidr_list(&u.limits.allow_ip),
            home,
        ]);
    }
    print_table(&rows);
    Ok(())
}

fn partner_add(args: PartnerAddArgs) -> Result<(), Vec<String>> {
    let name = args.name.trim().to_string();
    store::check_partner_name(&name).map_err(|e| vec![e])?;
    let loc = locate(&args.store)?;
    let data = loc.data()?;
    if data.partner(&name).is_some() {
        return Err(vec![format!(
            "{}: partner '{name}' exists already",
            loc.store.display()
        )]);
    }
    let cwd = std::env::current_dir().map_err(|e| vec![e.to_string()])?;
    let own_root = args.root.as_ref().map(|r| cwd.join(r));
    let partner = store::Partner {
        root: own_root
            .clone()
            .unwrap_or_else(|| loc.partners_root.join(&name)),
        name: name.clone(),
        ip_filter: wharf_core::policy::IpFilter {
            allow: args.allow_ip,
            deny: args.deny_ip,
        },
        folders: store::default_folders(),
        file_mode: args.file_mode.unwrap_or(store::DEFAULT_FILE_MODE),
        dir_mode: args.dir_mode.unwrap_or(store::DEFAULT_DIR_MODE),
    };
    let (root, folders) = (&partner.root, &partner.folders);
    crate::storage::make_tree(root, folders).map_err(|e| {
        vec![format!(
            "cannot create the folders of partner '{name}' in {}: {e}",
            root.display()
        )]
    })?;
    loc.edit(|e| e.add_partner(&partner, own_root.is_some()))?;
    println!(
        "added partner '{name}' to {}: its users log in as {name}/USER and see {} (fixed \
         folders {}); add one with `wharf user add {name}/USER{}`",
        loc.store.display(),
        root.display(),
        folders
            .iter()
            .map(|f| f.path.as_str().trim_start_matches('/').to_string())
            .collect::<Vec<_>>()
            .join(", "),
        loc.flag()
    );
    Ok(())
}

fn partner_list(args: &StoreArgs) -> Result<(), Vec<String>> {
    let loc = locate(args)?;
    let data = loc.existing_data()?;
    let mut rows = vec![[
        "NAME",
        "USERS",
        "ALLOW_IP",
        "DENY_IP",
        "FILE_MODE",
        "FOLDERS",
        "ROOT",
    ]
    .map(String::from)
    .to_vec()];
    for p in &data.partners {
        let users = data
            .users
            .iter()
            .filter(|u| u.partner() == Some(p.name.as_str()))
            .count();
        let folders = p
            .folders
            .iter()
            .map(|f| {
                format!(
                    "{}({:04o},{}:{})",
                    f.path.as_str().trim_start_matches('/'),
                    f.mode,
                    f.owner,
                    f.group
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        rows.push(vec![
            p.name.clone(),
            users.to_string(),
            cidr_list(&p.ip_filter.allow),
            cidr_list(&p.ip_filter.deny),
            format!("{:04o}", p.file_mode),
            folders,
            p.root.display().to_string(),
        ]);
    }
    print_table(&rows);
    Ok(())
}

fn check_config(file: &Path) -> Result<(), Vec<String>> {
    let name = file.display().to_string();
    let text = toml_read::read_text(file).map_err(|e| vec![e.to_string()])?;
    let (s, errors) = Settings::parse_all(&text, &name, file.parent().unwrap_or(Path::new("")));
    let mut problems = messages(errors);
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
    match store_data(&s, &name) {
        Ok(data) => {
            let anonymous_root = s.anonymous.then(|| s.anonymous_root().to_path_buf());
            let served =
                served_folders(&s, &data, data.users.is_empty(), anonymous_root.as_deref());
            problems.extend(partner_placement_problems(&served, &name));
            problems.extend(tls_placement_problems(&s, &served, &name));
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
        assert_eq!(s.core.idle_timeout, std::time::Duration::from_secs(5));
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
