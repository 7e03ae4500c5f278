//! `wharf serve`: the settings (the configuration file, then the flags over it), the user
//! store, the certificate, then the server — and the lines it prints once it listens (see
//! the cli module).
//!
//! It must not check what `wharf check-config` checks in its own way: the checks both run
//! are `check.rs`'s, so that a file `check-config` passes is one `serve` starts with.

use clap::Args;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use wharf_core::{SessionReuse, TlsPolicy};

use super::check::{
    partner_placement_problems, served_folders, store_data, tls_error_key, tls_placement_problems,
};
use crate::config::keys::KEYS;
use crate::config::keys::{parse_listen, parse_passive_ports, parse_tls_policy};
use crate::config::{Settings, DEFAULT_CONFIG};
use crate::server::Server;
use crate::shared::Shared;
use crate::store::UserEntry;
use crate::tls::{self, TlsContext, TlsError, WatchOptions};
use crate::toml_read::{messages, ConfigError, Key, Reader};
use crate::users::{self, Users};

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

fn parse_user_arg(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((name, pw)) if !name.is_empty() && !pw.is_empty() => {
            Ok((name.to_string(), pw.to_string()))
        }
        _ => Err("expected NAME:PASSWORD, both non-empty".into()),
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
        number_flag(&mut s, "--max-connections", "max_connections", n)?;
    }
    if let Some(n) = args.max_connections_per_ip {
        number_flag(
            &mut s,
            "--max-connections-per-ip",
            "max_connections_per_ip",
            n,
        )?;
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

pub(super) fn serve(args: ServeArgs) -> Result<(), Vec<String>> {
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

/// A number given on the command line as `flag`, read by the configuration key's own reader:
/// the same bounds as in wharf.toml, and an error that names the flag.
fn number_flag(s: &mut Settings, flag: &str, key: &str, n: usize) -> Result<(), Vec<String>> {
    let Some(k) = Key::find(KEYS, key) else {
        return Err(vec![format!("command line: {flag}: no such setting")]);
    };
    let mut r = Reader::new("command line", Path::new(""));
    r.at(flag.to_owned());
    let value = toml::Value::Integer(i64::try_from(n).unwrap_or(i64::MAX));
    (k.read)(&mut r, &value, s);
    match r.into_errors() {
        errors if errors.is_empty() => Ok(()),
        errors => Err(messages(errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn serve_args(args: &[&str]) -> ServeArgs {
        let mut argv = vec!["wharf", "serve"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Serve(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn numeric_flags_have_the_bounds_of_their_keys() {
        let s = settings_for(&serve_args(&["--max-connections", "100"])).unwrap();
        assert_eq!(s.max_connections, 100);
        for (flag, value) in [
            ("--max-connections", "0"),
            ("--max-connections", "10000000"),
            ("--max-connections-per-ip", "10000000"),
        ] {
            let errors = settings_for(&serve_args(&[flag, value])).unwrap_err();
            assert!(
                errors.len() == 1 && errors[0].starts_with(&format!("command line: key '{flag}'")),
                "{flag} {value}: {errors:?}"
            );
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
