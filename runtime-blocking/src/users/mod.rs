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
//! same time whatever the reason. The hashes and the checks are `password.rs`'s, with their
//! parameters; the login cache (`login_cache_secs`) that lets a repeated login skip the
//! check is `cache.rs`'s, with its trade-off.
//!
//! Logins waiting for the verification gate look at the cache again once they get in, so a
//! burst of logins with the same credentials runs at most one verification per CPU.

mod cache;
mod password;

use parking_lot::RwLock;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wharf_core::action::UserSummary;
use wharf_core::{Account, LoginError, TlsOverride};

use crate::rng;
pub use crate::store::{FixedFolder, Partner, StoreData, UserEntry};
pub use cache::{LoginCache, DEFAULT_LOGIN_CACHE, LOGIN_CACHE_ENTRIES};
use password::verify_in;
pub use password::{gate, hash_params, hash_password, VerifyGate, HASH_M_KIB, HASH_P, HASH_T};

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
            .filter(|u| u.limits.tls != TlsOverride::default())
            .map(|u| (u.name.clone(), u.limits.tls))
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
        e.limits.apply(&mut account);
        match e.partner() {
            Some(p) => {
                let partner = self.partners.get(p)?;
                account.partner_ip_filter = partner.ip_filter.clone();
                if account.fxp_peers.is_none() {
                    account.fxp_peers = partner.fxp_peers.clone();
                }
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
        e.limits.describe(&mut s);
        if s.fxp_peers.is_none() {
            // No list of its own: its partner's, if that has one.
            let partner = e.partner().and_then(|p| self.partners.get(p));
            s.fxp_peers = partner
                .and_then(|p| p.fxp_peers.as_deref())
                .map(crate::store::cidr_strings);
        }
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
    use argon2::password_hash::PasswordHash;
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
             fxp_peers = [\"192.0.2.0/24\"]\n\
             [[user]]\nname = \"acme/alice\"\npassword = \"{h}\"\nadmin = true\n\
             idle_time_secs = 30\nupload_rate = 1000\nmax_logins = 2\nallow_ip = [\"127.0.0.0/8\"]\n\
             [[user]]\nname = \"acme/bob\"\npassword = \"{h}\"\nfxp_peers = []\n"
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
        // SITE DESCUSER shows the FXP peers that apply: the partner's, or the user's own.
        assert_eq!(d.fxp_peers, Some(vec!["192.0.2.0/24".to_owned()]));
        let bob = users.describe("acme/bob").unwrap();
        assert_eq!(bob.fxp_peers, Some(Vec::new()));
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
    fn fxp_peers_the_users_else_the_partners_else_the_servers() {
        let h = hash_password("pw").unwrap();
        let text = format!(
            "[[partner]]\nname = \"acme\"\nfxp_peers = [\"192.0.2.0/24\"]\n\
             [[partner]]\nname = \"globex\"\n\
             [[user]]\nname = \"acme/own\"\npassword = \"{h}\"\nfxp_peers = [\"198.51.100.7\"]\n\
             [[user]]\nname = \"acme/none\"\npassword = \"{h}\"\nfxp_peers = []\n\
             [[user]]\nname = \"acme/inherits\"\npassword = \"{h}\"\n\
             [[user]]\nname = \"globex/server\"\npassword = \"{h}\"\n\
             [[user]]\nname = \"home\"\npassword = \"{h}\"\nhome = \"h\"\n"
        );
        let data = store::parse(&text, "u.toml", Path::new("/etc"), Path::new("/srv/p")).unwrap();
        let users = Users::new(data, Vec::new(), None, Duration::ZERO).unwrap();
        let peers = |user: &str| {
            let login = users.authenticate(user, "pw").unwrap();
            login
                .account
                .fxp_peers
                .map(|l| l.iter().map(ToString::to_string).collect::<Vec<_>>())
        };
        assert_eq!(peers("acme/own"), Some(vec!["198.51.100.7/32".to_string()]));
        assert_eq!(peers("acme/none"), Some(vec![]));
        assert_eq!(
            peers("acme/inherits"),
            Some(vec!["192.0.2.0/24".to_string()])
        );
        // None: the core uses the server's fxp_peers.
        assert_eq!(peers("globex/server"), None);
        assert_eq!(peers("home"), None);
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
}
