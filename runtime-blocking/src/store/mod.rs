//! The user store file: trading partners and users, as TOML (the server config's `users_file`).
//!
//! It owns the file's format — reading it with errors that name the file, the key and the
//! problem, and changing it in place for the management commands (`wharf partner add`,
//! `wharf user add|passwd|enable|disable`) with every change written atomically (temporary
//! file, then rename) so that a running server, which re-reads the file when it changes
//! (see `server::watch_store`), never sees half of one. Password checks and the in-memory
//! accounts are the users module's; how a partner's tree looks to FTP is the storage's.
//!
//! # Format
//! ```toml
//! [[partner]]
//! name = "acme"                  # letters, digits, '.', '_', '-'; names the partner's folder
//! root = "/srv/partners/acme"    # optional; default <partners_root>/<name>
//! allow_ip = ["203.0.113.0/24"]  # optional: only these may log in (CIDR, IPv4 or IPv6)
//! deny_ip = ["203.0.113.66"]     # optional: these may not (deny wins)
//! fxp_peers = ["192.0.2.10"]     # optional: servers for FXP, in place of wharf.toml's
//! file_mode = "0444"             # optional: mode of uploaded files, default "0444"
//! dir_mode = "0755"              # optional: mode of created folders, default "0755"
//! [[partner.folder]]             # the fixed folders; none listed = Inbox and Outbox below
//! path = "Inbox"
//! mode = "0755"
//! owner = "root"
//! group = "root"
//! [[partner.folder]]
//! path = "Outbox"
//! mode = "0777"
//!
//! [[user]]
//! name = "acme/alice"            # partner/user: logs in as acme/alice, sees acme's tree
//! password = "$argon2id$v=19$m=19456,t=1,p=1$...$..."
//! enabled = true                 # optional, default true
//! write = true                   # optional, default true
//! admin = false                  # optional: SITE WHO/STAT/DESCUSER, default false
//! idle_time_secs = 600           # optional: overrides the server's idle_timeout_secs
//! upload_rate = 1000000          # optional: bytes/s, 0 = unlimited (default)
//! download_rate = 0
//! max_logins = 2                 # optional: simultaneous logins, 0 = unlimited (default)
//! max_logins_per_ip = 1
//! allow_ip = ["192.0.2.0/24"]    # optional: this user only from these addresses
//! fxp_peers = []                 # optional: in place of the partner's (here: no FXP)
//!
//! [[user]]
//! name = "bob"                   # a user of no partner
//! password = "$argon2id$..."
//! home = "/srv/ftp/bob"          # required for users of no partner
//! tls_required_control = true    # optional per-user TLS requirements (docs/ftps.md)
//! tls_required_data = true
//! ```
//! Relative paths (`home`, a partner's `root`) are relative to the file's folder. Modes are
//! octal strings (`"0444"`): a bare TOML number would be read in decimal. Unknown keys are
//! errors. The files of the pre-partner format (only `[[user]]` with `name`, `password`,
//! `home`, `write`, `tls_required_*`) are valid store files.
//!
//! # Where what is
//! - `entry.rs`: what the file holds ([`StoreData`]: [`Partner`]s with their
//!   [`FixedFolder`]s, [`UserEntry`]s) and the rules for names and modes;
//! - `limits.rs`: a user's limits ([`UserLimits`]), each declared once: its field, the
//!   `wharf user add` flag, the store key, and what the core is told;
//! - `keys.rs`: the keys of `[[partner]]`, `[[partner.folder]]` and `[[user]]` entries, one
//!   table each, read with [`crate::toml_read`] as the configuration is;
//! - `read.rs`: reading a file: the entries, then what ties them (a user's partner);
//! - `edit.rs`: changing a file in place ([`StoreEdit`]).

mod edit;
mod entry;
mod keys;
mod limits;
mod read;

pub use edit::StoreEdit;
pub use entry::{
    check_partner_name, check_user_name, default_folders, parse_mode, FixedFolder, Partner,
    StoreData, UserEntry, DEFAULT_DIR_MODE, DEFAULT_FILE_MODE, RESERVED_USER,
};
pub use keys::{FOLDER_KEYS, PARTNER_KEYS, USER_KEYS};
pub use limits::{cidr_strings, parse_cidr, UserLimits, LIMIT_KEYS};
pub use read::{load, parse};
