//! A small fixed-window counter used to slow down password guessing. In memory and per process:
//! it bounds guessing speed; it is not an account lockout.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Throttle {
    limit: u32,
    window: Duration,
    hits: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Throttle {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window, hits: Mutex::new(HashMap::new()) }
    }

    /// Seconds until `key` may try again, if it is over its limit.
    pub fn blocked_for(&self, key: &str) -> Option<u64> {
        let hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        let (start, n) = hits.get(key)?;
        let elapsed = start.elapsed();
        (*n >= self.limit && elapsed < self.window).then(|| (self.window - elapsed).as_secs().max(1))
    }

    /// Counts a failure for `key`.
    pub fn record_failure(&self, key: &str) {
        let mut hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        if hits.len() > 100_000 {
            let window = self.window;
            hits.retain(|_, (start, _)| start.elapsed() < window);
        }
        let entry = hits.entry(key.to_owned()).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= self.window {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }

    pub fn clear(&self, key: &str) {
        self.hits.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_within_the_window() {
        let t = Throttle::new(3, Duration::from_secs(60));
        for _ in 0..2 {
            t.record_failure("ann");
        }
        assert_eq!(t.blocked_for("ann"), None);
        t.record_failure("ann");
        assert!(t.blocked_for("ann").is_some_and(|s| s <= 60));
        assert_eq!(t.blocked_for("bob"), None);
        t.clear("ann");
        assert_eq!(t.blocked_for("ann"), None);
        let short = Throttle::new(1, Duration::ZERO);
        short.record_failure("x");
        assert_eq!(short.blocked_for("x"), None, "an elapsed window no longer blocks");
    }
}

/// A token bucket per key: `burst` requests at once, refilled at `per_minute`. Used per API user,
/// so one client's loop cannot starve the firm, and a shared office address is not one client.
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_minute) / 60.0,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`; when none is left, returns the seconds until one is.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 100_000 {
            let burst = self.burst;
            let rate = self.per_second;
            buckets.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * rate < burst);
        }
        let (tokens, at) = buckets.entry(key.to_owned()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else if self.per_second > 0.0 {
            Err(((1.0 - *tokens) / self.per_second).ceil().max(1.0) as u64)
        } else {
            Err(60)
        }
    }
}

#[cfg(test)]
mod rate_tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_refuses_with_a_wait() {
        let r = RateLimiter::new(60, 3);
        for _ in 0..3 {
            assert!(r.check("ann").is_ok());
        }
        assert_eq!(r.check("ann"), Err(1));
        assert!(r.check("bob").is_ok(), "buckets are per key");
    }
}
