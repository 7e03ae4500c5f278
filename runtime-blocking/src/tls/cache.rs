//! The TLS session store of one control connection, shared by its data connections only.
//!
//! RFC 4217 §10.2 asks that a data connection be tied to its control connection; vsftpd does
//! it with `require_ssl_reuse`: the data-channel handshake must resume the control
//! connection's TLS session. We get that by giving every control connection its own
//! `ServerConfig` clone whose `session_storage` is a fresh [`ControlSessionCache`] (stateful
//! resumption only: no ticket encryption key is shared between connections). A data
//! handshake that resumed can only have found its session in this cache, so it proves the
//! client holds the control connection's secrets; one that did not resume proves nothing.
//!
//! Differences from rustls' `ServerSessionMemoryCache`:
//! - `take` (used for TLS 1.3 tickets) does not delete the entry. Clients such as Python's
//!   `ssl` (`session=control.session`), FileZilla and curl present the same control-connection
//!   ticket for every data connection; single-use tickets would make the second transfer fail.
//!   Single use protects 0-RTT data against replay; Wharf never accepts early data
//!   (`max_early_data_size` is 0), and the store dies with the control connection.
//! - Eviction is least-recently-used, so the ticket a client keeps presenting stays while the
//!   tickets issued on each data connection (and never used) are the ones dropped.

use parking_lot::Mutex;
use rustls::server::StoresServerSessions;

/// Sessions kept per control connection. Each data connection adds at most one (TLS 1.2:
/// a full handshake's session id; TLS 1.3: the one ticket sent per handshake), so this bounds
/// memory at a few KiB per connection while never evicting a session in active use.
pub(crate) const CAPACITY: usize = 32;

#[derive(Debug, Default)]
pub(crate) struct ControlSessionCache {
    inner: Mutex<Lru>,
}

#[derive(Debug, Default)]
struct Lru {
    clock: u64,
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    key: Vec<u8>,
    value: Vec<u8>,
    used: u64,
}

impl Lru {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn lookup(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        let now = self.tick();
        let entry = self.entries.iter_mut().find(|e| e.key == key)?;
        entry.used = now;
        Some(entry.value.clone())
    }
}

impl ControlSessionCache {
    pub(crate) fn new() -> ControlSessionCache {
        ControlSessionCache::default()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }
}

impl StoresServerSessions for ControlSessionCache {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let mut lru = self.inner.lock();
        let now = lru.tick();
        if let Some(entry) = lru.entries.iter_mut().find(|e| e.key == key) {
            entry.value = value;
            entry.used = now;
            return true;
        }
        if lru.entries.len() >= CAPACITY {
            if let Some(oldest) = lru
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.used)
                .map(|(i, _)| i)
            {
                lru.entries.swap_remove(oldest);
            }
        }
        lru.entries.push(Entry {
            key,
            value,
            used: now,
        });
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.lock().lookup(key)
    }

    /// Like `get`: see the module documentation for why tickets are not single-use here.
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.lock().lookup(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_session_in_use_and_evicts_the_least_recently_used() {
        let cache = ControlSessionCache::new();
        assert!(cache.put(b"control".to_vec(), b"secret".to_vec()));
        for i in 0..(CAPACITY * 3) {
            // A data connection presents the control session, then gets a fresh one.
            assert_eq!(cache.take(b"control").as_deref(), Some(&b"secret"[..]));
            cache.put(format!("data-{i}").into_bytes(), b"x".to_vec());
            assert!(cache.len() <= CAPACITY);
        }
        assert_eq!(cache.get(b"control").as_deref(), Some(&b"secret"[..]));
        assert_eq!(cache.get(b"data-0"), None, "oldest unused entry evicted");
        let last = format!("data-{}", CAPACITY * 3 - 1);
        assert!(cache.get(last.as_bytes()).is_some());
    }

    #[test]
    fn put_replaces_and_unknown_keys_miss() {
        let cache = ControlSessionCache::new();
        cache.put(b"k".to_vec(), b"1".to_vec());
        cache.put(b"k".to_vec(), b"2".to_vec());
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(b"k").as_deref(), Some(&b"2"[..]));
        assert_eq!(cache.take(b"other"), None);
    }
}
