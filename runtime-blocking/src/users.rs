//! The accounts of a running server: who may log in (named users, partner users, anonymous),
//! what the core is told about them ([`Login`]), password checks and hashing.
//!
//! The store file's format is the store module's; this module holds what was read from it
//! ([`UserStore`]) behind a handle that a reload swaps whole ([`Users`]): a session keeps the
//! account it logged in with, a new login sees the store as it is now.
//!
//! # Who logs in how
//! - `partner/user` (a user of a partner): sees the partner's tree as `/`, with its fixed
//!   folders ([`View::Partner`]); the partner's IP list, file and folder modes apply.
//! - `user` (a user of no partner): sees their home ([`View::Home`]).
//! - `anonymous` / `ftp`, any password, when enabled: read-only, the anonymous root.
//! - A disabled account cannot log in, by password or certificate.
//!
//! # Client certificates
//! With `tls_client_cert` on, a client whose verified certificate maps to a user name (see
//! the tls module) and who sends `USER` with that name is logged in without a password
//! ([`UserStore::authenticate_certificate`]); the account must exist here and be enabled.
//!
//! # Password checks
//! Every check of a named user runs one argon2 verification, also when the user does not
//! exist (against a dummy hash made with the same parameters at start) and when the account
//! is disabled (its own hash is verified before it is refused), so a failed PASS takes the
//! same time whatever the reason. Verifications are CPU and memory heavy, so at most one per
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
use parking_lot::RwLock;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use wharf_core::action::UserSummary;
use wharf_core::policy::IpFilter;
use wharf_core::{Account, LoginError, TlsOverride};

use crate::rng;
pub use crate::store::{FixedFolder, Partner, StoreData, UserEntry};

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

/// How a logged-in user's tree is presented: who owns what and which folders are fixed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum View {
    /// Anonymous: everything belongs to `ftp`/`ftp`; nothing is recorded (read-only).
    Anonymous,
    /// A user's own home: entries without a record belong to the user (group: their name).
    Home,
    /// A partner's tree: entries without a record belong to `root`/`root`; the fixed
    /// folders show the owner, group and mode the store gives them.
    Partner(Vec<FixedFolder>),
}

/// A successful login: the account for the core and the folder to serve.
#[derive(Clone, Debug)]
pub struct Login {
    /// What the core is told.
    pub account: Account,
    /// The root of the account's storage (a partner's root for partner users).
    pub home: PathBuf,
    /// How the tree is presented.
    pub view: View,
}

/// Every account the server knows, as of one reading of the store.
#[derive(Debug)]
pub struct UserStore {
    users: HashMap<String, UserEntry>,
    partners: HashMap<String, Partner>,
    anonymous_root: Option<PathBuf>,
    dummy_hash: Arc<str>,
}

impl UserStore {
    /// A store of `data`, with anonymous logins served from `anonymous_root` when given.
    pub fn new(data: StoreData, anonymous_root: Option<PathBuf>) -> Result<Self, String> {
        let mut dummy = [0u8; 24];
        rng::fill_secure(&mut dummy).map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
        let dummy: String = dummy.iter().map(|b| format!("{b:02x}")).collect();
        gate().warm_up();
        let dummy_hash: Arc<str> = hash_password(&dummy)?.into();
        Ok(UserStore::build(data, anonymous_root, dummy_hash))
    }

    fn build(data: StoreData, anonymous_root: Option<PathBuf>, dummy_hash: Arc<str>) -> Self {
        UserStore {
            users: data
                .users
                .into_iter()
                .map(|u| (u.name.clone(), u))
                .collect(),
            partners: data
                .partners
                .into_iter()
                .map(|p| (p.name.clone(), p))
                .collect(),
            anonymous_root,
            dummy_hash,
        }
    }

    /// A store of other accounts with the same anonymous root and dummy hash (a reload).
    pub fn with_data(&self, data: StoreData) -> UserStore {
        UserStore::build(data, self.anonymous_root.clone(), self.dummy_hash.clone())
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

    /// The partners.
    pub fn partners(&self) -> impl Iterator<Item = &Partner> {
        self.partners.values()
    }

    /// The named accounts.
    pub fn users(&self) -> impl Iterator<Item = &UserEntry> {
        self.users.values()
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

    fn anonymous(&self, user: &str) -> Option<Login> {
        let root = self.anonymous_root.as_ref()?;
        (user.eq_ignore_ascii_case("anonymous") || user.eq_ignore_ascii_case("ftp")).then(|| {
            Login {
                account: Account::anonymous(),
                home: root.clone(),
                view: View::Anonymous,
            }
        })
    }

    /// The login of an enabled account (its partner must exist).
    fn login_for(&self, e: &UserEntry) -> Option<Login> {
        if !e.enabled {
            return None;
        }
        let mut account = Account::new(e.name.clone());
        account.write = e.write;
        account.admin = e.admin;
        account.idle_timeout = e.idle_timeout;
        account.upload_rate = e.upload_rate;
        account.download_rate = e.download_rate;
        account.max_logins = e.max_logins;
        account.max_logins_per_ip = e.max_logins_per_ip;
        account.ip_filter = IpFilter {
            allow: e.allow_ip.clone(),
            deny: Vec::new(),
        };
        match e.partner() {
            Some(p) => {
                let partner = self.partners.get(p)?;
                account.partner_ip_filter = partner.ip_filter.clone();
                account.fixed_folders = partner.folders.iter().map(|f| f.path.clone()).collect();
                account.file_mode = partner.file_mode;
                account.dir_mode = partner.dir_mode;
                Some(Login {
                    account,
                    home: partner.root.clone(),
                    view: View::Partner(partner.folders.clone()),
                })
            }
            None => Some(Login {
                account,
                home: e.home.clone()?,
                view: View::Home,
            }),
        }
    }

    /// A login vouched for by a verified client certificate: the account named `user` (or the
    /// anonymous login, when enabled), without a password. A disabled account is refused.
    pub fn authenticate_certificate(&self, user: &str) -> Result<Login, LoginError> {
        if let Some(login) = self.anonymous(user) {
            return Ok(login);
        }
        self.users
            .get(user)
            .and_then(|e| self.login_for(e))
            .ok_or(LoginError::Invalid)
    }

    /// Checks a login. Runs exactly one argon2 verification for any name that is not the
    /// anonymous login, whether or not the user exists and whether or not it is enabled, so
    /// that a failure takes the same time whatever its reason.
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
        if let Some(login) = self.anonymous(user) {
            return Ok(login);
        }
        let entry = self.users.get(user);
        let hash = entry.map_or(&*self.dummy_hash, |e| e.password_hash.as_str());
        *verifications += 1;
        let ok = gate().run(|memory| verify_in(hash, password, memory));
        match entry {
            Some(e) if ok => self.login_for(e).ok_or(LoginError::Invalid),
            _ => Err(LoginError::Invalid),
        }
    }

    /// One user's settings for SITE DESCUSER (never the password).
    pub fn describe(&self, name: &str) -> Option<UserSummary> {
        let e = self.users.get(name)?;
        let mut s = UserSummary::default();
        s.name = e.name.clone();
        s.partner = e.partner().map(str::to_owned);
        s.enabled = e.enabled;
        s.home = match e.partner() {
            Some(p) => self
                .partners
                .get(p)
                .map(|p| p.root.display().to_string())
                .unwrap_or_default(),
            None => e
                .home
                .as_ref()
                .map(|h| h.display().to_string())
                .unwrap_or_default(),
        };
        s.write = e.write;
        s.admin = e.admin;
        s.idle_time = e.idle_timeout.map(|d| d.as_secs());
        s.upload_rate = e.upload_rate;
        s.download_rate = e.download_rate;
        s.max_logins = e.max_logins;
        s.max_logins_per_ip = e.max_logins_per_ip;
        s.allowed_ips = e.allow_ip.iter().map(ToString::to_string).collect();
        Some(s)
    }
}

/// The accounts of a running server: the store as last read, swapped whole when the store
/// file changes (sessions that are logged in keep what they logged in with), plus the
/// accounts given on the command line (`--user`, or the generated one), which every reload
/// keeps.
#[derive(Debug)]
pub struct Users {
    current: RwLock<Arc<UserStore>>,
    extra: Vec<UserEntry>,
}

impl Users {
    /// The accounts of `data` plus `extra` (which win over store accounts of the same name).
    pub fn new(
        data: StoreData,
        extra: Vec<UserEntry>,
        anonymous_root: Option<PathBuf>,
    ) -> Result<Users, String> {
        let store = UserStore::new(merge(data, &extra), anonymous_root)?;
        Ok(Users {
            current: RwLock::new(Arc::new(store)),
            extra,
        })
    }

    /// The accounts now.
    pub fn get(&self) -> Arc<UserStore> {
        self.current.read().clone()
    }

    /// Replaces the store's accounts by those of `data` (a reload); returns the new store.
    pub fn replace(&self, data: StoreData) -> Arc<UserStore> {
        let mut current = self.current.write();
        let next = Arc::new(current.with_data(merge(data, &self.extra)));
        *current = next.clone();
        next
    }

    /// [`UserStore::authenticate`] on the accounts now.
    pub fn authenticate(&self, user: &str, password: &str) -> Result<Login, LoginError> {
        self.get().authenticate(user, password)
    }

    /// [`UserStore::authenticate_certificate`] on the accounts now.
    pub fn authenticate_certificate(&self, user: &str) -> Result<Login, LoginError> {
        self.get().authenticate_certificate(user)
    }

    /// [`UserStore::describe`] on the accounts now.
    pub fn describe(&self, name: &str) -> Option<UserSummary> {
        self.get().describe(name)
    }
}

fn merge(mut data: StoreData, extra: &[UserEntry]) -> StoreData {
    for u in extra {
        data.users.retain(|x| x.name != u.name);
        data.users.push(u.clone());
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store;
    use std::path::Path;

    fn home_user(name: &str, pw: &str, home: &str) -> UserEntry {
        UserEntry::new(name, &hash_password(pw).unwrap(), Some(home.into()))
    }

    fn store() -> UserStore {
        let mut alice = home_user("alice", "secret", "/srv/alice");
        alice.write = false;
        let data = StoreData {
            partners: Vec::new(),
            users: vec![alice],
        };
        UserStore::new(data, Some("/srv/pub".into())).unwrap()
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
        assert_eq!(ok.view, View::Home);
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
        assert_eq!(anon.view, View::Anonymous);
        let no_anon = UserStore::new(StoreData::default(), None).unwrap();
        assert!(no_anon.authenticate("anonymous", "x").is_err());
    }

    #[test]
    fn unknown_and_disabled_users_cost_one_verification_too() {
        let mut data = StoreData::default();
        data.users.push(home_user("alice", "secret", "/a"));
        let mut off = home_user("off", "secret", "/o");
        off.enabled = false;
        data.users.push(off);
        let s = UserStore::new(data, None).unwrap();
        for (user, pw) in [
            ("alice", "secret"),
            ("alice", "bad"),
            ("mallory", "secret"),
            ("off", "secret"),
        ] {
            let mut n = 0;
            let _ = s.authenticate_counting(user, pw, &mut n);
            assert_eq!(n, 1, "{user}");
        }
        // A disabled account is refused like a wrong password, by password or certificate.
        assert_eq!(
            s.authenticate("off", "secret").err(),
            Some(LoginError::Invalid)
        );
        assert_eq!(
            s.authenticate_certificate("off").err(),
            Some(LoginError::Invalid)
        );
        // The dummy hash is a real argon2 hash with the same parameters as real ones, so the
        // unknown-user verification does the same work.
        let real = PasswordHash::new(&s.users["alice"].password_hash).unwrap();
        let dummy = PasswordHash::new(&s.dummy_hash).unwrap();
        assert_eq!(real.algorithm, dummy.algorithm);
        assert_eq!(
            real.params.iter().collect::<Vec<_>>(),
            dummy.params.iter().collect::<Vec<_>>()
        );
    }

    #[test]
    fn partner_accounts_carry_the_partner_policy() {
        let h = hash_password("pw").unwrap();
        let text = format!(
            "[[partner]]\nname = \"acme\"\ndeny_ip = [\"127.0.0.2\"]\nfile_mode = \"0440\"\n\
             [[user]]\nname = \"acme/alice\"\npassword = \"{h}\"\nadmin = true\n\
             idle_time_secs = 30\nupload_rate = 1000\nmax_logins = 2\nallow_ip = [\"127.0.0.0/8\"]\n"
        );
        let data = store::parse(&text, "u.toml", Path::new("/etc"), Path::new("/srv/p")).unwrap();
        let users = Users::new(data, Vec::new(), None).unwrap();
        let login = users.authenticate("acme/alice", "pw").unwrap();
        let a = &login.account;
        assert_eq!(
            (a.user.as_str(), a.partner.as_deref()),
            ("alice", Some("acme"))
        );
        assert!(a.admin && a.write);
        assert_eq!(a.idle_timeout, Some(std::time::Duration::from_secs(30)));
        assert_eq!((a.upload_rate, a.max_logins), (Some(1000), Some(2)));
        assert_eq!(a.file_mode, 0o440);
        let paths: Vec<&str> = a.fixed_folders.iter().map(|p| p.as_str()).collect();
        assert_eq!(paths, ["/Inbox", "/Outbox"]);
        assert!(!a.partner_ip_filter.permits("127.0.0.2".parse().unwrap()));
        assert!(!a.ip_filter.permits("10.0.0.1".parse().unwrap()));
        assert_eq!(login.home, PathBuf::from("/srv/p/acme"));
        assert!(matches!(login.view, View::Partner(ref f) if f.len() == 2));
        let d = users.describe("acme/alice").unwrap();
        assert_eq!(d.partner.as_deref(), Some("acme"));
        assert_eq!(d.allowed_ips, ["127.0.0.0/8"]);
        assert_eq!(d.home, "/srv/p/acme");
        assert!(users.describe("nobody").is_none());

        // A reload replaces the accounts; --user accounts stay.
        let extra = vec![home_user("cli", "c", "/root-dir")];
        let users = Users::new(StoreData::default(), extra, None).unwrap();
        assert!(users.authenticate("acme/alice", "pw").is_err());
        let data = store::parse(&text, "u.toml", Path::new("/etc"), Path::new("/srv/p")).unwrap();
        users.replace(data);
        assert!(users.authenticate("acme/alice", "pw").is_ok());
        assert!(users.authenticate("cli", "c").is_ok());
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
        let data = store::parse(
            &text,
            "users.toml",
            Path::new("/etc/wharf"),
            Path::new("/p"),
        )
        .unwrap();
        let store = UserStore::new(data, None).unwrap();
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
    }

    #[test]
    fn the_gate_limits_concurrency() {
        use std::sync::atomic::{AtomicUsize, Ordering};
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
