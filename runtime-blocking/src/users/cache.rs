//! The login cache (`login_cache_secs`): a login whose password was verified a moment ago
//! need not pay argon2 again. [`LoginCache`] remembers, for `login_cache_secs` (default
//! [`DEFAULT_LOGIN_CACHE`]), that a (user, password, stored hash) triple was verified, as an
//! HMAC-SHA256 tag under a key drawn at random when the process starts (never written
//! anywhere). What it changes and what it does not:
//! - The stored hashes stay argon2id with the parameters of `password.rs`; nothing weaker
//!   is written.
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
//!   each (an argon2 verification costs milliseconds of CPU, which caps a small machine at a
//!   few hundred logins a second: docs/sessions.md has the figures). Directory servers do the
//!   same (PingDirectory's encoded-password cache).
//!
//! It owns the entries, their key and their expiry. It must not decide who may use it: the
//! users module looks in it only for an account that would be let in, and puts in it only
//! what it verified.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a verified login is remembered by default (`login_cache_secs`).
pub const DEFAULT_LOGIN_CACHE: Duration = Duration::from_secs(300);
/// The most verified logins the cache remembers at once.
pub const LOGIN_CACHE_ENTRIES: usize = 10_000;

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
    pub(super) fn tag(&self, user: &str, password: &str, hash: &str) -> [u8; 32] {
        let mut ctx = ring::hmac::Context::with_key(&self.key);
        for part in [user, password, hash] {
            ctx.update(&(part.len() as u64).to_le_bytes());
            ctx.update(part.as_bytes());
        }
        let mut tag = [0u8; 32];
        tag.copy_from_slice(ctx.sign().as_ref());
        tag
    }

    pub(super) fn hit(&self, tag: &[u8; 32], now: Instant) -> bool {
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
    pub(super) fn insert(&self, tag: [u8; 32], now: Instant) {
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
#[cfg(test)]
mod tests {
    use super::*;

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
}
