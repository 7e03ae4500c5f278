//! `wharf user ...` and `wharf partner ...`: the commands that change the user store (add a
//! partner and make its folders, add a user, set a password, enable or disable a user) and
//! list it. They find the store through the configuration file (`--config`, default
//! `./wharf.toml`, made with the defaults by the first command that writes) or `--users`.
//!
//! It must not write the store's format itself: [`crate::store::StoreEdit`] does, checking
//! the result before it replaces the file.

use clap::{Args, Subcommand};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use wharf_core::policy::Cidr;

use crate::config::{Settings, DEFAULT_CONFIG};
use crate::store::{self, parse_cidr, StoreData, StoreEdit, UserEntry, UserLimits};
use crate::toml_read::messages;
use crate::users;

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
    /// A server its users may use in third-party (FXP) transfers, in place of the server's
    /// fxp_peers (repeatable).
    #[arg(long, value_name = "CIDR", value_parser = parse_cidr)]
    pub fxp_peers: Option<Vec<Cidr>>,
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

/// Runs `wharf user ...`.
pub(super) fn user(command: UserCommand) -> Result<(), Vec<String>> {
    match command {
        UserCommand::Add(args) => user_add(args),
        UserCommand::Passwd(args) => user_passwd(args),
        UserCommand::Enable(args) => user_enable(args, true),
        UserCommand::Disable(args) => user_enable(args, false),
        UserCommand::List(args) => user_list(&args),
    }
}

/// Runs `wharf partner ...`.
pub(super) fn partner(command: PartnerCommand) -> Result<(), Vec<String>> {
    match command {
        PartnerCommand::Add(args) => partner_add(args),
        PartnerCommand::List(args) => partner_list(&args),
    }
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
        // The defaults, beside where the configuration file would be.
        let d = Settings::default();
        (
            base.join(d.users_file),
            base.join(d.partners_root),
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
        crate::store::cidr_strings(c).join(",")
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
        fxp_peers: args.fxp_peers,
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
