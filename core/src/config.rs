//! What a [`crate::Session`] needs to know of the server's configuration.
//!
//! Shared by every session (`Arc<Config>`). The runtime fills it from its TOML file and flags;
//! the defaults here are the documented defaults of the server.

use std::net::IpAddr;
use std::time::Duration;

/// Protocol and policy settings of the core. Build with `Config::default()` and set fields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Text of the 220 greeting. Default `Wharf FTP server ready.`
    pub greeting: String,
    /// Longest command line in bytes, terminator excluded; longer lines get 500 and are
    /// discarded as they arrive. Default 4096 (4 KiB).
    pub max_line_len: usize,
    /// Most unprocessed input (pipelined commands) a session holds; beyond it the session is
    /// closed with 421. Default 64 KiB.
    pub max_buffered_input: usize,
    /// A logged-in session with no command for this long gets 421 and is closed. Default 300 s.
    pub idle_timeout: Duration,
    /// A session that has not logged in within this long gets 421 and is closed. Default 60 s.
    pub login_timeout: Duration,
    /// Failed logins allowed on one connection before it is closed. Default 3.
    pub max_login_failures: u32,
    /// Delay before the 530 reply to a failed login (the session waits; nothing else is
    /// answered meanwhile). Default 1 s.
    pub login_failure_delay: Duration,
    /// The address advertised in PASV replies (for servers behind NAT). Default: the local
    /// address of the control connection.
    pub passive_address: Option<IpAddr>,
    /// Allow PORT/EPRT to an address other than the client's, and passive connections from
    /// other addresses (server-to-server "FXP" transfers). Default false: refused, since it
    /// enables the FTP bounce attack and passive port theft.
    pub allow_foreign_data_address: bool,
    /// Allow PORT/EPRT to ports below 1024. Default false.
    pub allow_privileged_data_port: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            greeting: "Wharf FTP server ready.".into(),
            max_line_len: 4096,
            max_buffered_input: 64 * 1024,
            idle_timeout: Duration::from_secs(300),
            login_timeout: Duration::from_secs(60),
            max_login_failures: 3,
            login_failure_delay: Duration::from_secs(1),
            passive_address: None,
            allow_foreign_data_address: false,
            allow_privileged_data_port: false,
        }
    }
}
