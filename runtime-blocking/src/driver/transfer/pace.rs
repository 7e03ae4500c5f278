//! Pacing a transfer to its rate limit (a user's `upload_rate` / `download_rate`).

use std::time::{Duration, Instant};

/// Paces a transfer to a rate limit (bytes per second) by sleeping between chunks.
///
/// The schedule runs from [`Pacer::begin`] (when bytes start to move, so that waiting for
/// the data connection or a TLS handshake does not count as time the transfer could have
/// used): after `n` bytes, the next ones may move once `n / rate` seconds have passed. Chunks
/// are a tenth of a second's worth ([`Pacer::chunk`]; on the sendfile path too), so the rate
/// holds over any stretch longer than that. A transfer that fell behind its schedule (a slow
/// client) may catch up by at most [`Pacer::MAX_BURST`] worth of bytes; beyond that the
/// schedule starts again from where it is.
#[derive(Debug)]
pub struct Pacer {
    rate: Option<u64>,
    start: Instant,
    /// Bytes moved before `start` (not paced by the current schedule).
    base: u64,
}

impl Pacer {
    /// How far behind its schedule a transfer may be before the schedule restarts.
    pub const MAX_BURST: Duration = Duration::from_secs(1);

    /// A pacer for `rate` bytes per second (`None`: no limit), starting now.
    pub fn new(rate: Option<u64>) -> Pacer {
        Pacer {
            rate: rate.filter(|&r| r > 0),
            start: Instant::now(),
            base: 0,
        }
    }

    /// Starts the schedule now, with no byte moved yet.
    pub fn begin(&mut self) {
        self.start = Instant::now();
        self.base = 0;
    }

    /// The largest chunk to move at once: a tenth of a second's worth under a limit.
    pub fn chunk(&self, max: u64) -> u64 {
        match self.rate {
            Some(r) => (r / 10).clamp(1, max),
            None => max,
        }
    }

    /// Whether a rate limit applies.
    pub fn is_limited(&self) -> bool {
        self.rate.is_some()
    }

    /// How long to wait before moving more, having moved `bytes` since [`Pacer::begin`].
    pub fn delay(&mut self, bytes: u64) -> Duration {
        let Some(r) = self.rate else {
            return Duration::ZERO;
        };
        let paced = bytes.saturating_sub(self.base);
        let due = Duration::from_secs_f64(paced as f64 / r as f64);
        let elapsed = self.start.elapsed();
        if elapsed > due + Self::MAX_BURST {
            // Far behind (the client was slow): no burst to catch up; pace from here.
            self.start = Instant::now();
            self.base = bytes;
            return Duration::ZERO;
        }
        due.saturating_sub(elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_restarts_instead_of_bursting() {
        let mut p = Pacer::new(Some(1_000_000));
        p.begin();
        // 1 MB was due after 1 s; 2.5 s have passed: more than MAX_BURST behind.
        p.start = Instant::now() - Duration::from_millis(2500);
        assert_eq!(p.delay(1_000_000), Duration::ZERO);
        // The schedule restarted at 1 MB: 100 kB more are due in 0.1 s, not at once.
        let d = p.delay(1_100_000);
        assert!(
            d > Duration::from_millis(80) && d <= Duration::from_millis(100),
            "{d:?}"
        );
        // Slightly behind (less than MAX_BURST): catching up is allowed.
        let mut q = Pacer::new(Some(1_000_000));
        q.start = Instant::now() - Duration::from_millis(1500);
        assert_eq!(q.delay(1_000_000), Duration::ZERO);
        assert_eq!(q.base, 0);
    }

    #[test]
    fn pacer_spreads_bytes_over_time() {
        let mut p = Pacer::new(Some(1_000_000));
        assert_eq!(p.chunk(u64::MAX), 100_000);
        // 500 kB at 1 MB/s are due after half a second.
        let d = p.delay(500_000);
        assert!(
            d > Duration::from_millis(400) && d <= Duration::from_millis(500),
            "{d:?}"
        );
        assert_eq!(Pacer::new(None).delay(u64::MAX), Duration::ZERO);
        assert_eq!(Pacer::new(Some(0)).chunk(7), 7);
    }
}
