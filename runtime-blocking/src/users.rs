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
//! # The login cache (`login_cache_secs`)
//! A login whose password was verified a moment ago need not pay argon2 again: [`LoginCache`]
//! remembers, for `login_cache_secs` (default [`DEFAULT_LOGIN_CACHE`]), that a (user,
//! password, stored hash) triple was verified, as an HMAC-SHA256 tag under a key drawn at
//! random when the process starts (never written anywhere). What it changes and what it
//! does not:
//! - The stored hashes stay argon2id with the parameters below; nothing weaker is written.
//! - Only successful verifications of enabled accounts enter; the cache is looked at only
//!   for an account that would be let in (existing, enabled, its partner known). A wrong
//!   password, an unknown user (the dummy hash) or a disabled account always pays the full
//!   argon2 cost, so guessing costs what it did and a failure takes the same time whatever
//!   its reason.
//! - A changed password changes the stored hash, which is part of the tag: the old entry no
//!   longer matches. A reload of the store empties the cache. Entries expire after the TTL;
//!   at most [`LOGIN_CACHE_ENTRIES`] are kept.
//! - The trade-off: while an entry lives, someone who can read the server's memory (root,
//!   a core dump) could test guesses of that password at HMAC speed instead of argon2
//!   speed, for the users who logged in within the TTL. Whoever reads the memory of a
//!   running server can also read passwords as they arrive, so the exposure added is small;
//!   `login_cache_secs = 0` turns the cache off for those who want none.
//! - Why: a partner's scripts log in again and again with the same account (one session per
//!   file, many at once); with the cache, a burst of them costs one verification, not one
//!   each (~9 ms of CPU per argon2 verification caps a 2-core machine near 200 logins a
//!   second). Directory servers do the same (PingDirectory's encoded-password cache).
//!
//! Logins waiting for the verification gate look at the cache again once they get in, so a
//! burst of logins with the same credentials runs at most one verification per CPU.
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
use std::time::{Duration, Instant};
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

/// How long a verified login is remembered by default (`login_cache_secs`).
pub const DEFAULT_LOGIN_CACHE: Duration = Duration::from_secs(300);
/// The most verified logins the cache remembers at once.
pub const LOGIN_CACHE_ENTRIES: usize = 10_000;

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
/// hash asks for more). A malformed hash matches nothing. Out of line: its parsed hash and
/// buffers need not be in the frame of every login (cache hits skip it).
#[inline(never)]
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

/// Recently verified credentials (see the module documentation): HMAC-SHA256 tags of
/// (user, password, stored hash) under a per-process random key, each with its expiry.
pub struct LoginCache {
    key: ring::hmac::Key,
    ttl: Duration,
    max: usize,
    entries: parking_lot::Mutex<HashMap<[u8; 32], Instant>>,
}

impl std::fmt::Debug for LoginCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither the key nor the tags.
        f.debug_struct("LoginCache")
            .field("ttl", &self.ttl)
            .field("max", &self.max)
            .field("entries", &self.entries.lock().len())
            .finish()
    }
}

impl LoginCache {
    /// An empty cache keeping entries for `ttl`, at most `max` of them, under a fresh random
    /// key.
    pub fn new(ttl: Duration, max: usize) -> Result<LoginCache, String> {
        let rng = ring::rand::SystemRandom::new();
        let key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng)
            .map_err(|_| "cannot draw a random key for the login cache".to_string())?;
        Ok(LoginCache {
            key,
            ttl,
            max: max.max(1),
            entries: parking_lot::Mutex::new(HashMap::new()),
        })
    }

    /// The tag of a login: each part length-prefixed, so that no two triples share it.
    fn tag(&self, user: &str, password: &str, hash: &str) -> [u8; 32] {
        let mut ctx = ring::hmac::Context::with_key(&self.key);
        for part in [user, password, hash] {
            ctx.update(&(part.len() as u64).to_le_bytes());
            ctx.update(part.as_bytes());
        }
        let mut tag = [0u8; 32];
        tag.copy_from_slice(ctx.sign().as_ref());
        tag
    }

    /// Whether `tag` was verified and has not expired at `now` (an expired entry goes).
    fn hit(&self, tag: &[u8; 32], now: Instant) -> bool {
        let mut entries = self.entries.lock();
        match entries.get(tag) {
            Some(&until) if now < until => true,
            Some(_) => {
                entries.remove(tag);
                false
            }
            None => false,
        }
    }

    /// Remembers a verified `tag` until `now` + TTL. When full, expired entries go first,
    /// then the one closest to expiry.
    fn insert(&self, tag: [u8; 32], now: Instant) {
        let mut entries = self.entries.lock();
        if entries.len() >= self.max && !entries.contains_key(&tag) {
            entries.retain(|_, until| now < *until);
            if entries.len() >= self.max {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, until)| **until)
                    .map(|(t, _)| *t);
                if let Some(t) = oldest {
                    entries.remove(&t);
                }
            }
        }
        entries.insert(tag, now + self.ttl);
    }

    /// Forgets every entry.
    pub fn clear(&self) {
        self.entries.lock().clear();
    }

    /// How many entries are held (expired ones included until they are looked at).
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        self.authenticate_with(None, user, password, &mut 0)
    }

    /// [`UserStore::authenticate`] with a [`LoginCache`]: an account that would be let in
    /// and whose credentials are in the cache skips the verification; every other check
    /// runs exactly one, as without a cache. Counts the verifications it runs (for tests).
    fn authenticate_with(
        &self,
        cache: Option<&LoginCache>,
        user: &str,
        password: &str,
        verifications: &mut u32,
    ) -> Result<Login, LoginError> {
        if let Some(login) = self.anonymous(user) {
            return Ok(login);
        }
        let entry = self.users.get(user);
        let hash = entry.map_or(&*self.dummy_hash, |e| e.password_hash.as_str());
        // None for an unknown or disabled user (or one of an unknown partner): refused
        // whatever the password, after a full verification.
        let login = entry.and_then(|e| self.login_for(e));
        let cached = match (cache, &login) {
            (Some(cache), Some(_)) => Some((cache, cache.tag(user, password, hash))),
            _ => None,
        };
        let hit = |now: Instant| cached.as_ref().is_some_and(|(c, tag)| c.hit(tag, now));
        if hit(Instant::now()) {
            return login.ok_or(LoginError::Invalid);
        }
        let ok = gate().run(|memory| {
            // Verified by another login while this one waited for the gate?
            if hit(Instant::now()) {
                return true;
            }
            *verifications += 1;
            let ok = verify_in(hash, password, memory);
            // Remembered before the permit goes back, so that the next waiter finds it.
            if let (true, Some((cache, tag))) = (ok, &cached) {
                cache.insert(*tag, Instant::now());
            }
            ok
        });
        match login {
            Some(login) if ok => Ok(login),
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
    /// Verified logins remembered for `login_cache_secs`; none when that is 0.
    cache: Option<LoginCache>,
}

impl Users {
    /// The accounts of `data` plus `extra` (which win over store accounts of the same name),
    /// remembering verified logins for `login_cache` (zero: not at all).
    pub fn new(
        data: StoreData,
        extra: Vec<UserEntry>,
        anonymous_root: Option<PathBuf>,
        login_cache: Duration,
    ) -> Result<Users, String> {
        let store = UserStore::new(merge(data, &extra), anonymous_root)?;
        let cache = if login_cache.is_zero() {
            None
        } else {
            Some(LoginCache::new(login_cache, LOGIN_CACHE_ENTRIES)?)
        };
        Ok(Users {
            current: RwLock::new(Arc::new(store)),
            extra,
            cache,
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
        // Nothing verified against an older reading of the store is taken on trust.
        if let Some(cache) = &self.cache {
            cache.clear();
        }
        next
    }

    /// [`UserStore::authenticate`] on the accounts now, with the login cache.
    pub fn authenticate(&self, user: &str, password: &str) -> Result<Login, LoginError> {
        self.get()
            .authenticate_with(self.cache.as_ref(), user, password, &mut 0)
    }

    /// The login cache, when on.
    pub fn login_cache(&self) -> Option<&LoginCache> {
        self.cache.as_ref()
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
            let _ = s.authenticate_with(None, user, pw, &mut n);
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
        let users = Users::new(data, Vec::new(), None, DEFAULT_LOGIN_CACHE).unwrap();
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
        let users = Users::new(StoreData::default(), extra, None, DEFAULT_LOGIN_CACHE).unwrap();
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

    /// A store of `alice` (password `pw`, enabled as given) and a cache of an hour.
    fn cached_store(pw: &str, enabled: bool) -> UserStore {
        let mut alice = home_user("alice", pw, "/a");
        alice.enabled = enabled;
        let data = StoreData {
            partners: Vec::new(),
            users: vec![alice],
        };
        UserStore::new(data, None).unwrap()
    }

    fn verifications(s: &UserStore, c: &LoginCache, user: &str, pw: &str) -> (bool, u32) {
        let mut n = 0;
        let ok = s.authenticate_with(Some(c), user, pw, &mut n).is_ok();
        (ok, n)
    }

    #[test]
    fn the_login_cache_skips_only_repeated_successes() {
        let cache = LoginCache::new(Duration::from_secs(3600), 100).unwrap();
        let s = cached_store("secret", true);
        // The first login verifies; the same credentials again do not.
        assert_eq!(verifications(&s, &cache, "alice", "secret"), (true, 1));
        assert_eq!(verifications(&s, &cache, "alice", "secret"), (true, 0));
        assert_eq!(cache.len(), 1);
        // Wrong passwords and unknown users always pay a full verification, and never enter.
        for _ in 0..2 {
            assert_eq!(verifications(&s, &cache, "alice", "Secret"), (false, 1));
            assert_eq!(verifications(&s, &cache, "alice", "secret "), (false, 1));
            assert_eq!(verifications(&s, &cache, "bob", "secret"), (false, 1));
        }
        assert_eq!(cache.len(), 1);

        // A changed password (another stored hash) voids the entry: the old password is
        // checked against the new hash, and fails.
        let s2 = cached_store("new-secret", true);
        assert_eq!(verifications(&s2, &cache, "alice", "secret"), (false, 1));
        assert_eq!(verifications(&s2, &cache, "alice", "new-secret"), (true, 1));
        assert_eq!(verifications(&s2, &cache, "alice", "new-secret"), (true, 0));

        // A disabled account is refused after a full verification, cached or not.
        let mut off = s2.users["alice"].clone();
        off.enabled = false;
        let s3 = s2.with_data(StoreData {
            partners: Vec::new(),
            users: vec![off],
        });
        assert_eq!(
            verifications(&s3, &cache, "alice", "new-secret"),
            (false, 1)
        );
        assert_eq!(
            verifications(&s3, &cache, "alice", "new-secret"),
            (false, 1)
        );
        // Re-enabled with the same hash: still in the cache.
        assert_eq!(verifications(&s2, &cache, "alice", "new-secret"), (true, 0));
        // The anonymous login and certificate logins never touch the cache.
        let before = cache.len();
        let _ = s2.authenticate_with(Some(&cache), "anonymous", "x", &mut 0);
        assert_eq!(cache.len(), before);
    }

    #[test]
    fn login_cache_entries_expire_and_are_bounded() {
        let cache = LoginCache::new(Duration::from_secs(60), 3).unwrap();
        let t0 = Instant::now();
        let tag = |i: u8| cache.tag(&format!("user{i}"), "pw", "$argon2id$...");
        cache.insert(tag(1), t0);
        assert!(cache.hit(&tag(1), t0 + Duration::from_secs(59)));
        assert!(!cache.hit(&tag(1), t0 + Duration::from_secs(60)));
        assert!(cache.is_empty(), "an expired entry goes when looked at");
        // Full: the entry closest to expiry makes room.
        for i in 1..=3 {
            cache.insert(tag(i), t0 + Duration::from_secs(u64::from(i)));
        }
        cache.insert(tag(4), t0 + Duration::from_secs(4));
        assert_eq!(cache.len(), 3);
        let now = t0 + Duration::from_secs(5);
        assert!(!cache.hit(&tag(1), now));
        assert!(cache.hit(&tag(2), now) && cache.hit(&tag(3), now) && cache.hit(&tag(4), now));
        // Expired entries go first when full.
        cache.insert(tag(5), t0 + Duration::from_secs(70));
        assert_eq!(cache.len(), 1);
        // Tags tell the parts apart (length prefixes) and depend on the per-process key.
        assert_ne!(cache.tag("ab", "c", "h"), cache.tag("a", "bc", "h"));
        let other = LoginCache::new(Duration::from_secs(60), 3).unwrap();
        assert_ne!(cache.tag("a", "b", "h"), other.tag("a", "b", "h"));
        assert!(!format!("{cache:?}").contains("key"), "{cache:?}");
    }

    #[test]
    fn a_reload_empties_the_login_cache_and_zero_turns_it_off() {
        let h = hash_password("pw").unwrap();
        let text = format!("[[user]]\nname = \"alice\"\npassword = \"{h}\"\nhome = \"a\"\n");
        let parse = || store::parse(&text, "u.toml", Path::new("/etc"), Path::new("/p")).unwrap();
        let users = Users::new(parse(), Vec::new(), None, DEFAULT_LOGIN_CACHE).unwrap();
        assert!(users.authenticate("alice", "pw").is_ok());
        assert_eq!(users.login_cache().map(LoginCache::len), Some(1));
        users.replace(parse());
        assert_eq!(users.login_cache().map(LoginCache::len), Some(0));
        assert!(users.authenticate("alice", "pw").is_ok());
        let off = Users::new(parse(), Vec::new(), None, Duration::ZERO).unwrap();
        assert!(off.login_cache().is_none());
        assert!(off.authenticate("alice", "pw").is_ok());
        assert!(off.authenticate("alice", "wrong").is_err());
    }

    #[test]
    fn a_burst_of_the_same_login_runs_at_most_one_verification_per_permit() {
        let s = Arc::new(cached_store("secret", true));
        let cache = Arc::new(LoginCache::new(Duration::from_secs(3600), 100).unwrap());
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (s, cache) = (s.clone(), cache.clone());
                std::thread::spawn(move || verifications(&s, &cache, "alice", "secret"))
            })
            .collect();
        let results: Vec<(bool, u32)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(results.iter().all(|(ok, _)| *ok));
        let total: u32 = results.iter().map(|(_, n)| n).sum();
        let permits = std::thread::available_parallelism().map_or(2, |n| n.get()) as u32;
        assert!(total >= 1 && total <= permits, "{total} verifications");
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
