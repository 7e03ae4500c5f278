//! Password hashes: making them (argon2id, [`hash_password`]) and checking them, at most one
//! check per CPU at a time ([`VerifyGate`], [`gate`]).
//!
//! It owns the hash parameters and the memory the checks compute in. It must not know
//! accounts or the store: which hash to check a password against, and what a failure
//! means, is the users module's.
//!
//! Verifications are CPU and memory heavy, so at most one per CPU runs at a time
//! ([`VerifyGate`]): a burst of logins queues instead of allocating `m` KiB per waiting
//! thread.
//!
//! # Hash parameters
//! New hashes use argon2id with m = 19 MiB, t = 1, p = 1 ([`hash_params`]). OWASP's minimum
//! is m = 19 MiB with t = 2. We keep OWASP's memory cost, which is what makes GPU and ASIC
//! guessing expensive, and take one pass, which costs well under half the time of two, so
//! that a storm of logins does not spend most of its time hashing (the figures:
//! docs/sessions.md, "Hash parameters"). Hashes carry their parameters (PHC string), so a
//! file made with stronger parameters keeps working.

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::{Condvar, Mutex, OnceLock};

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
/// hash asks for more). A malformed hash matches nothing. Out of line: its parsed hash and
/// buffers need not be in the frame of every login (cache hits skip it).
#[inline(never)]
pub(super) fn verify_in(hash: &str, password: &str, memory: &mut Vec<Block>) -> bool {
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

    pub(super) fn run<T>(&self, f: impl FnOnce(&mut Vec<Block>) -> T) -> T {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

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
