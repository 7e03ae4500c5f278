//! The user store: accounts from a users file (TOML, argon2id password hashes), accounts given
//! on the command line, and the optional anonymous login; password checks and hashing.
//!
//! # The users file
//! ```toml
//! [[user]]
//! name = "alice"
//! password = "$argon2id$v=19$m=19456,t=1,p=1$...$..."   # from `wharf user add`
//! home = "/srv/ftp/alice"   # relative paths are relative to this file's folder
//! write = true              # optional, default true
//! tls_required_control = true   # optional: this user must (true) or need not (false) use
//! tls_required_data = true      # TLS, whatever the server-wide tls_required_* say
//! ```
//! Unknown keys are errors, reported with the file, the entry and the key.
//!
//! # Client certificates
//! With `tls_client_cert` on, a client whose verified certificate maps to a user name (see
//! the tls module) and who sends `USER` with that name is logged in without a password
//! ([`UserStore::authenticate_certificate`]); the account must exist here.
//!
//! # Password checks
//! Every check of a named user runs one argon2 verification, also when the user does not
//! exist (against a dummy hash made with the same parameters at start), so a failed PASS
//! takes the same time either way. Verifications are CPU and memory heavy, so at most one per
//! CPU runs at a time ([`VerifyGate`]): a burst of logins queues instead of allocating
//! `m` KiB per waiting thread.
//!
//! # Hash parameters
//! New hashes use argon2id with m = 19 MiB, t = 1, p = 1 ([`hash_params`]). OWASP's minimum
//! is m = 19 MiB with t = 2; with t = 2 one verification took ~21 ms on the 2-core machine
//! Wharf is benchmarked on, and t = 1 ~8 ms (release build). We keep OWASP's memory cost,
//! which is what makes GPU and ASIC guessing expensive, and take one pass so that a storm of
//! logins (2,000 at concurrency 200) does not spend most of its time hashing. Hashes carry
//! their parameters (PHC string), so a file made with stronger parameters keeps working.

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, OnceLock};
use wharf_core::{Account, LoginError, TlsOverride};

use crate::config::ConfigError;
use crate::rng;

/// Memory cost of new hashes, KiB.
pub const HASH_M_KIB: u32 = 19 * 1024;
/// Passes of new hashes.
pub const HASH_T: u32 = 1;
/// Lanes of new hashes.
pub const HASH_P: u32 = 1;

/// The argon2id parameters of new hashes (see the module documentation for why).
pub fn hash_params() -> Params {
    // These constants are valid argon2 parameters; a failure would be a programming error
    // caught by the unit tests, never by a client.
    Params::new(HASH_M_KIB, HASH_T, HASH_P, None).unwrap_or_default()
}

/// The process-wide verification gate: one permit (and one memory area) per CPU.
pub fn gate() -> &'static VerifyGate {
    static GATE: OnceLock<VerifyGate> = OnceLock::new();
    GATE.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        VerifyGate::new(cpus)
    })
}

/// Hashes a password into a PHC string (`$argon2id$...`) with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    rng::fill_secure(&mut salt).map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    let mut raw_salt = [0u8; 16];
    let raw_salt = salt.decode_b64(&mut raw_salt).map_err(|e| e.to_string())?;
    let params = hash_params();
    let blocks = params.block_count();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut out = [0u8; 32];
    gate().run(|memory| {
        grow(memory, blocks);
        argon
            .hash_password_into_with_memory(
                password.as_bytes(),
                raw_salt,
                &mut out,
                &mut memory[..blocks],
            )
            .map_err(|e| e.to_string())
    })?;
    let out = Output::new(&out).map_err(|e| e.to_string())?;
    // Output and SaltString display as unpadded B64, as the PHC string format wants.
    Ok(format!(
        "$argon2id$v=19$m={HASH_M_KIB},t={HASH_T},p={HASH_P}${}${out}",
        salt.as_str()
    ))
}

/// Makes `memory` hold at least `blocks` blocks, writing them so the pages are resident now
/// (a fixed cost at start rather than page faults in the first logins).
fn grow(memory: &mut Vec<Block>, blocks: usize) {
    if memory.len() < blocks {
        memory.reserve_exact(blocks - memory.len());
        memory.resize(blocks, Block::default());
    }
}

/// Whether `password` matches the PHC string `hash`, computing in `memory` (grown when the
/// hash asks for more). A malformed hash matches nothing.
fn verify_in(hash: &str, password: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(expected), Some(salt)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
        parsed.hash,
        parsed.salt,
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::V0x13,
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let blocks = params.block_count();
    grow(memory, blocks);
    let mut out = [0u8; 64];
    let Some(out) = out.get_mut(..expected.len()) else {
        return false;
    };
    let argon = Argon2::new(algorithm, version, params);
    if argon
        .hash_password_into_with_memory(password.as_bytes(), salt, out, &mut memory[..blocks])
        .is_err()
    {
        return false;
    }
    // Output's equality is constant-time.
    Output::new(out).is_ok_and(|o| o == expected)
}

/// [`verify_in`] with memory of its own (for tests and one-off checks).
#[cfg(test)]
fn verify(hash: &str, password: &str) -> bool {
    verify_in(hash, password, &mut Vec::new())
}

/// Lets at most N argon2 verifications run at once, and lends each the memory it computes in.
///
/// The memory (m KiB per permit) is allocated once and reused: allocating it per login
/// made the allocator keep tens of MiB per worker thread (4 GB after 200 logins from 50
/// clients at once).
#[derive(Debug)]
pub struct VerifyGate {
    free: Mutex<Vec<Vec<Block>>>,
    cv: Condvar,
}

impl VerifyGate {
    /// A gate with `n` permits (at least 1).
    pub fn new(n: usize) -> VerifyGate {
        VerifyGate {
            free: Mutex::new((0..n.max(1)).map(|_| Vec::new()).collect()),
            cv: Condvar::new(),
        }
    }

    /// Makes every permit's memory ready for hashes with the default parameters, writing it
    /// so that its pages are resident from now on.
    pub fn warm_up(&self) {
        let blocks = hash_params().block_count();
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        for memory in free.iter_mut() {
            grow(memory, blocks);
        }
    }

    fn run<T>(&self, f: impl FnOnce(&mut Vec<Block>) -> T) -> T {
        let memory = {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(m) = free.pop() {
                    break m;
                }
                free = self.cv.wait(free).unwrap_or_else(|e| e.into_inner());
            }
        };
        struct Release<'a>(&'a VerifyGate, Option<Vec<Block>>);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                let mut free = self.0.free.lock().unwrap_or_else(|e| e.into_inner());
                free.push(self.1.take().unwrap_or_default());
                self.0.cv.notify_one();
            }
        }
        // The memory goes back (and a waiter is woken) even if `f` panics.
        let mut lent = Release(self, None);
        f(lent.1.insert(memory))
    }
}

/// One named account.
#[derive(Clone, PartialEq, Eq)]
pub struct UserEntry {
    /// Login name (case-sensitive).
    pub name: String,
    /// argon2 PHC string.
    pub password_hash: String,
    /// The account's root folder.
    pub home: PathBuf,
    /// May change files.
    pub write: bool,
    /// This user's own TLS requirements (`tls_required_control`, `tls_required_data`).
    pub tls: TlsOverride,
}

impl fmt::Debug for UserEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserEntry")
            .field("name", &self.name)
            .field("home", &self.home)
            .field("write", &self.write)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// A successful login: the account for the core and the folder to serve.
#[derive(Clone, Debug)]
pub struct Login {
    /// What the core is told.
    pub account: Account,
    /// The root of the account's storage.
    pub home: PathBuf,
}

/// Every account the server knows.
#[derive(Debug)]
pub struct UserStore {
    users: HashMap<String, UserEntry>,
    anonymous_root: Option<PathBuf>,
    dummy_hash: String,
}

impl UserStore {
    /// A store of `users`, with anonymous logins served from `anonymous_root` when given.
    pub fn new(users: Vec<UserEntry>, anonymous_root: Option<PathBuf>) -> Result<Self, String> {
        let mut dummy = [0u8; 24];
        rng::fill_secure(&mut dummy).map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
        let dummy: String = dummy.iter().map(|b| format!("{b:02x}")).collect();
        gate().warm_up();
        Ok(UserStore {
            users: users.into_iter().map(|u| (u.name.clone(), u)).collect(),
            anonymous_root,
            dummy_hash: hash_password(&dummy)?,
        })
    }

    /// How many named accounts there are.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there is no named account.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether anonymous logins are accepted.
    pub fn anonymous_enabled(&self) -> bool {
        self.anonymous_root.is_some()
    }

    /// The per-user TLS requirements, for the core's configuration (users without any are
    /// left out).
    pub fn tls_overrides(&self) -> HashMap<String, TlsOverride> {
        self.users
            .values()
            .filter(|u| u.tls != TlsOverride::default())
            .map(|u| (u.name.clone(), u.tls))
            .collect()
    }

    /// A login vouched for by a verified client certificate: the account named `user` (or the
    /// anonymous login, when enabled), without a password.
    pub fn authenticate_certificate(&self, user: &str) -> Result<Login, LoginError> {
        if let Some(root) = &self.anonymous_root {
            if user.eq_ignore_ascii_case("anonymous") || user.eq_ignore_ascii_case("ftp") {
                return Ok(Login {
                    account: Account::anonymous(),
                    home: root.clone(),
                });
            }
        }
        match self.users.get(user) {
            Some(e) => {
                let mut account = Account::new(e.name.clone());
                account.write = e.write;
                Ok(Login {
                    account,
                    home: e.home.clone(),
                })
            }
            None => Err(LoginError::Invalid),
        }
    }

    /// Checks a login. Runs exactly one argon2 verification for any name that is not the
    /// anonymous login, whether or not the user exists.
    pub fn authenticate(&self, user: &str, password: &str) -> Result<Login, LoginError> {
        self.authenticate_counting(user, password, &mut 0)
    }

    /// [`UserStore::authenticate`], counting the verifications it runs (for tests).
    fn authenticate_counting(
        &self,
        user: &str,
        password: &str,
        verifications: &mut u32,
    ) -> Result<Login, LoginError> {
        if let Some(root) = &self.anonymous_root {
            if user.eq_ignore_ascii_case("anonymous") || user.eq_ignore_ascii_case("ftp") {
                return Ok(Login {
                    account: Account::anonymous(),
                    home: root.clone(),
                });
            }
        }
        let entry = self.users.get(user);
        let hash = entry.map_or(self.dummy_hash.as_str(), |e| e.password_hash.as_str());
        *verifications += 1;
        let ok = gate().run(|memory| verify_in(hash, password, memory));
        match entry {
            Some(e) if ok => {
                let mut account = Account::new(e.name.clone());
                account.write = e.write;
                Ok(Login {
                    account,
                    home: e.home.clone(),
                })
            }
            _ => Err(LoginError::Invalid),
        }
    }
}

/// Reads a users file. Every problem is reported, each with the file, the entry and the key.
pub fn load_users_file(path: &Path) -> Result<Vec<UserEntry>, Vec<ConfigError>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError::file(
            &file,
            format!("cannot read the file: {e}"),
        )]
    })?;
    parse_users(&text, &file, path.parent().unwrap_or(Path::new(".")))
}

/// Parses the text of a users file named `file`; relative homes are taken from `base`.
pub fn parse_users(
    text: &str,
    file: &str,
    base: &Path,
) -> Result<Vec<UserEntry>, Vec<ConfigError>> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| vec![ConfigError::syntax(file, text, &e)])?;
    let mut errors = Vec::new();
    let mut users = Vec::new();
    for (key, value) in &table {
        if key != "user" {
            errors.push(ConfigError::new(
                file,
                key,
                "unknown key (a users file holds only [[user]] entries)",
            ));
            continue;
        }
        let Some(list) = value.as_array() else {
            errors.push(ConfigError::new(
                file,
                key,
                "must be an array of tables: write each entry as [[user]]",
            ));
            continue;
        };
        for (i, item) in list.iter().enumerate() {
            let at = |k: &str| format!("user[{}].{k}", i + 1);
            let Some(t) = item.as_table() else {
                errors.push(ConfigError::new(
                    file,
                    &format!("user[{}]", i + 1),
                    "must be a table",
                ));
                continue;
            };
            let mut name = None;
            let mut hash = None;
            let mut home = None;
            let mut write = true;
            let mut tls = TlsOverride::default();
            for (k, v) in t {
                match (k.as_str(), v) {
                    ("name", toml::Value::String(s)) => {
                        if s.is_empty() || s.chars().any(|c| c.is_control()) {
                            errors.push(ConfigError::new(
                                file,
                                &at(k),
                                "must be a non-empty name without control characters",
                            ));
                        } else {
                            name = Some(s.clone());
                        }
                    }
                    ("password", toml::Value::String(s)) => match PasswordHash::new(s) {
                        Ok(h) if h.algorithm.as_str().starts_with("argon2") => {
                            hash = Some(s.clone())
                        }
                        _ => errors.push(ConfigError::new(
                            file,
                            &at(k),
                            "not an argon2 hash in PHC form ($argon2id$...); make one with `wharf user add`",
                        )),
                    },
                    ("home", toml::Value::String(s)) => home = Some(base.join(s)),
                    ("write", toml::Value::Boolean(b)) => write = *b,
                    ("tls_required_control", toml::Value::Boolean(b)) => tls.control = Some(*b),
                    ("tls_required_data", toml::Value::Boolean(b)) => tls.data = Some(*b),
                    ("name" | "password" | "home", v) => errors.push(ConfigError::new(
                        file,
                        &at(k),
                        format!("must be a string, not {}", v.type_str()),
                    )),
                    ("write" | "tls_required_control" | "tls_required_data", v) => errors.push(ConfigError::new(
                        file,
                        &at(k),
                        format!("must be true or false, not {}", v.type_str()),
                    )),
                    _ => errors.push(ConfigError::new(
                        file,
                        &at(k),
                        "unknown key (known: name, password, home, write, tls_required_control, \
                         tls_required_data)",
                    )),
                }
            }
            for (k, missing) in [
                ("name", name.is_none()),
                ("password", hash.is_none()),
                ("home", home.is_none()),
            ] {
                if missing && !t.contains_key(k) {
                    errors.push(ConfigError::new(file, &at(k), "missing"));
                }
            }
            if let (Some(name), Some(password_hash), Some(home)) = (name, hash, home) {
                if users.iter().any(|u: &UserEntry| u.name == name) {
                    errors.push(ConfigError::new(
                        file,
                        &at("name"),
                        format!("'{name}' is defined twice"),
                    ));
                } else {
                    users.push(UserEntry {
                        name,
                        password_hash,
                        home,
                        write,
                        tls,
                    });
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(users)
    } else {
        Err(errors)
    }
}

/// The text of one `[[user]]` entry, to append to a users file.
pub fn user_entry_toml(name: &str, hash: &str, home: &Path, write: bool) -> String {
    // A TOML value's Display is its quoted, escaped form.
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    format!(
        "[[user]]\nname = {}\npassword = {}\nhome = {}\nwrite = {write}\n",
        q(name),
        q(hash),
        q(&home.to_string_lossy())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> UserStore {
        let users = vec![UserEntry {
            name: "alice".into(),
            password_hash: hash_password("secret").unwrap(),
            home: "/srv/alice".into(),
            write: false,
            tls: TlsOverride::default(),
        }];
        UserStore::new(users, Some("/srv/pub".into())).unwrap()
    }

    #[test]
    fn hashes_are_argon2id_with_the_documented_parameters() {
        let h = hash_password("pw").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=1,p=1$"), "{h}");
        assert!(verify(&h, "pw"));
        assert!(!verify(&h, "pW"));
        // The reference implementation agrees.
        use argon2::PasswordVerifier;
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(Argon2::default().verify_password(b"pw", &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"pW", &parsed).is_err());
        assert!(!verify("not a hash", "pw"));
        // Salts differ.
        assert_ne!(h, hash_password("pw").unwrap());
    }

    #[test]
    fn login_checks() {
        let s = store();
        let ok = s.authenticate("alice", "secret").unwrap();
        assert_eq!(ok.account.name, "alice");
        assert!(!ok.account.write && !ok.account.anonymous);
        assert_eq!(ok.home, PathBuf::from("/srv/alice"));
        assert_eq!(
            s.authenticate("alice", "wrong").err(),
            Some(LoginError::Invalid)
        );
        assert_eq!(
            s.authenticate("ALICE", "secret").err(),
            Some(LoginError::Invalid)
        );
        let anon = s.authenticate("Anonymous", "me@example.com").unwrap();
        assert!(anon.account.anonymous && !anon.account.write);
        assert_eq!(anon.home, PathBuf::from("/srv/pub"));
        let no_anon = UserStore::new(vec![], None).unwrap();
        assert!(no_anon.authenticate("anonymous", "x").is_err());
    }

    #[test]
    fn unknown_users_cost_one_verification_too() {
        let s = store();
        for (user, pw) in [("alice", "secret"), ("alice", "bad"), ("mallory", "secret")] {
            let mut n = 0;
            let _ = s.authenticate_counting(user, pw, &mut n);
            assert_eq!(n, 1, "{user}");
        }
        // The dummy hash is a real argon2 hash with the same parameters as real ones, so the
        // unknown-user verification does the same work.
        let real = PasswordHash::new(&s.users["alice"].password_hash).unwrap();
        let dummy = PasswordHash::new(&s.dummy_hash).unwrap();
        assert_eq!(real.algorithm, dummy.algorithm);
        assert_eq!(
            real.params.iter().collect::<Vec<_>>(),
            dummy.params.iter().collect::<Vec<_>>()
        );
        let mut n = 0;
        let _ = s.authenticate_counting("anonymous", "x", &mut n);
        assert_eq!(n, 0);
    }

    #[test]
    fn users_file_round_trip_and_errors() {
        let h = hash_password("pw").unwrap();
        let mut text = user_entry_toml("bob", &h, Path::new("bob-home"), true);
        text.push_str(&user_entry_toml("carol", &h, Path::new("/abs"), false));
        let users = parse_users(&text, "users.toml", Path::new("/etc/wharf")).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].home, PathBuf::from("/etc/wharf/bob-home"));
        assert_eq!(users[1].home, PathBuf::from("/abs"));
        assert!(!users[1].write);

        let bad = "[[user]]\nname = \"x\"\npassword = \"plain\"\nhome = 3\ncolour = \"red\"\n\
                   [[user]]\npassword = \"plain\"\nhome = \"h\"\n";
        let errs = parse_users(bad, "users.toml", Path::new("/")).unwrap_err();
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        let all = text.join("\n");
        assert!(
            all.contains("users.toml: key 'user[1].password': not an argon2 hash"),
            "{all}"
        );
        assert!(
            all.contains("users.toml: key 'user[1].home': must be a string, not integer"),
            "{all}"
        );
        assert!(
            all.contains("users.toml: key 'user[1].colour': unknown key"),
            "{all}"
        );
        assert!(
            all.contains("users.toml: key 'user[2].name': missing"),
            "{all}"
        );
        let errs = parse_users("[[user]\n", "u.toml", Path::new("/")).unwrap_err();
        assert!(
            errs[0].to_string().starts_with("u.toml: line 1"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn per_user_tls_requirements_and_certificate_logins() {
        let h = hash_password("pw").unwrap();
        let text = format!(
            "[[user]]\nname = \"strict\"\npassword = \"{h}\"\nhome = \"s\"\n\
             tls_required_control = true\ntls_required_data = true\n\
             [[user]]\nname = \"legacy\"\npassword = \"{h}\"\nhome = \"l\"\n\
             tls_required_data = false\n\
             [[user]]\nname = \"plain\"\npassword = \"{h}\"\nhome = \"p\"\n"
        );
        let users = parse_users(&text, "users.toml", Path::new("/etc/wharf")).unwrap();
        let store = UserStore::new(users, None).unwrap();
        let o = store.tls_overrides();
        assert_eq!(o.len(), 2, "{o:?}");
        assert_eq!(
            o["strict"],
            TlsOverride {
                control: Some(true),
                data: Some(true)
            }
        );
        assert_eq!(
            o["legacy"],
            TlsOverride {
                control: None,
                data: Some(false)
            }
        );
        // A certificate login needs the account, not the password.
        let login = store.authenticate_certificate("legacy").unwrap();
        assert_eq!(login.account.name, "legacy");
        assert_eq!(login.home, PathBuf::from("/etc/wharf/l"));
        assert_eq!(
            store.authenticate_certificate("nobody").err(),
            Some(LoginError::Invalid)
        );
        assert!(store.authenticate_certificate("anonymous").is_err());

        let errs = parse_users(
            &format!(
                "[[user]]\nname = \"x\"\npassword = \"{h}\"\nhome = \"h\"\n\
                 tls_required_data = \"yes\"\n"
            ),
            "users.toml",
            Path::new("/"),
        )
        .unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "users.toml: key 'user[1].tls_required_data': must be true or false, not string"
        );
    }

    #[test]
    fn the_gate_limits_concurrency() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let gate = Arc::new(VerifyGate::new(2));
        let running = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (gate, running, max) = (gate.clone(), running.clone(), max.clone());
                std::thread::spawn(move || {
                    gate.run(|_| {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        max.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(max.load(Ordering::SeqCst) <= 2);
    }
}
