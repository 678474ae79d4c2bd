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
