//! Randomness: secrets (generated passwords, salts) straight from the kernel's generator, and
//! cheap non-secret numbers (passive port picks) from a per-thread xorshift seeded by it.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read};

/// Fills `buf` from `/dev/urandom`, the kernel's cryptographic generator.
pub fn fill_secure(buf: &mut [u8]) -> io::Result<()> {
    File::open("/dev/urandom")?.read_exact(buf)
}

/// A random string of `len` characters from `[A-Za-z0-9]`, for generated credentials.
pub fn secure_token(len: usize) -> io::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        fill_secure(&mut buf)?;
        for &b in &buf {
            // Rejection sampling keeps every character equally likely.
            let limit = 256 - 256 % ALPHABET.len();
            if usize::from(b) < limit && out.len() < len {
                out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
            }
        }
    }
    Ok(out)
}

thread_local! {
    static STATE: Cell<u64> = const { Cell::new(0) };
}

/// A non-secret random number (xorshift64*, seeded per thread from `/dev/urandom`).
pub fn fast_u64() -> u64 {
    STATE.with(|s| {
        let mut x = s.get();
        if x == 0 {
            let mut seed = [0u8; 8];
            x = match fill_secure(&mut seed) {
                Ok(()) => u64::from_ne_bytes(seed),
                Err(_) => std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0x9E37_79B9_7F4A_7C15),
            } | 1;
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_well_formed() {
        let a = secure_token(20).unwrap();
        let b = secure_token(20).unwrap();
        assert_eq!(a.len(), 20);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        assert_ne!(fast_u64(), fast_u64());
    }
}
