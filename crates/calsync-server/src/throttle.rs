//! Sign-in throttling (per client address, and per account and address with progressive
//! spacing) and the API rate limiter. In memory and per process: they bound guessing speed;
//! none of them locks an account.

use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Failures per key in a fixed window, counted *before* the password is checked (so parallel
/// requests cannot all slip under the limit) and refunded when the attempt succeeds. Used per
/// client address against spraying many accounts. Time comes from the service clock.
pub struct Throttle {
    limit: u32,
    window: Duration,
    hits: Mutex<HashMap<String, (DateTime<Utc>, u32)>>,
}

impl Throttle {
    pub fn new(limit: u32, window: std::time::Duration) -> Self {
        Self { limit, window: Duration::from_std(window).unwrap_or(Duration::MAX), hits: Mutex::new(HashMap::new()) }
    }

    /// Counts an attempt for `key`, or answers the seconds until it may try again.
    pub fn try_hit(&self, key: &str, now: DateTime<Utc>) -> Result<(), u64> {
        let mut hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        if hits.len() > 100_000 {
            let window = self.window;
            hits.retain(|_, (start, _)| now - *start < window);
        }
        let entry = hits.entry(key.to_owned()).or_insert((now, 0));
        if now - entry.0 >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            return Err(seconds(self.window - (now - entry.0)));
        }
        entry.1 += 1;
        Ok(())
    }

    /// Seconds until `key` may try again, when it has used up its window.
    pub fn blocked_for(&self, key: &str, now: DateTime<Utc>) -> Option<u64> {
        let hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        let (start, n) = hits.get(key)?;
        (*n >= self.limit && now - *start < self.window).then(|| seconds(self.window - (now - *start)))
    }

    /// Gives back an attempt that turned out not to be a failure.
    pub fn refund(&self, key: &str) {
        if let Some((_, n)) = self.hits.lock().unwrap_or_else(|p| p.into_inner()).get_mut(key) {
            *n = n.saturating_sub(1);
        }
    }
}

/// The client's address as a throttling key: IPv4 as is, IPv6 by its /64 (one host usually
/// owns a whole /64, so per-address keys would let it rotate through 2^64 of them).
pub fn client_key(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Whole seconds to wait, at least one.
fn seconds(d: Duration) -> u64 {
    u64::try_from((d.num_milliseconds() + 999) / 1000).unwrap_or(0).max(1)
}

/// Failed sign-ins per (account, client address) with progressively longer spacing: the first
/// `free` failures cost nothing, then each further attempt must wait 1 s, 2 s, 4 s… up to
/// `max_wait` after the previous one. It slows guessing from one place without ever locking
/// the account itself: its owner signs in from another address, and the right password
/// clears the pair. The attempt is counted before the check and cleared on success.
pub struct Backoff {
    free: u32,
    max_wait: Duration,
    /// (failures, time of the last attempt).
    state: Mutex<HashMap<String, (u32, DateTime<Utc>)>>,
}

impl Backoff {
    pub fn new(free: u32, max_wait: std::time::Duration) -> Self {
        Self {
            free,
            max_wait: Duration::from_std(max_wait).unwrap_or(Duration::MAX),
            state: Mutex::new(HashMap::new()),
        }
    }

    fn wait_after(&self, failures: u32) -> Duration {
        if failures < self.free {
            return Duration::zero();
        }
        let exp = (failures - self.free).min(20);
        Duration::seconds(1i64 << exp).min(self.max_wait)
    }

    /// Admits an attempt (counting it as a failure until [`Backoff::succeed`]), or answers
    /// the seconds until one is allowed.
    pub fn begin(&self, key: &str, now: DateTime<Utc>) -> Result<(), u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // Pairs idle for twice the longest wait start over.
        let forget = self.max_wait * 2;
        if state.len() > 100_000 {
            state.retain(|_, (_, at)| now - *at < forget);
        }
        let entry = state.entry(key.to_owned()).or_insert((0, now));
        if now - entry.1 >= forget {
            *entry = (0, now);
        }
        let wait = self.wait_after(entry.0);
        let elapsed = now - entry.1;
        if entry.0 > 0 && elapsed < wait {
            return Err(seconds(wait - elapsed));
        }
        *entry = (entry.0 + 1, now);
        Ok(())
    }

    pub fn succeed(&self, key: &str) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_before_the_check_and_refunds() {
        let t = Throttle::new(3, std::time::Duration::from_secs(60));
        let now = Utc::now();
        for _ in 0..3 {
            assert!(t.try_hit("10.0.0.1", now).is_ok());
        }
        assert_eq!(t.try_hit("10.0.0.1", now), Err(60));
        assert!(t.try_hit("10.0.0.2", now).is_ok(), "per key");
        t.refund("10.0.0.1");
        assert!(t.try_hit("10.0.0.1", now).is_ok(), "a refunded attempt frees a place");
        assert!(t.try_hit("10.0.0.1", now + Duration::seconds(60)).is_ok(), "an elapsed window no longer blocks");
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let a: std::net::IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: std::net::IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(client_key("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1");
    }

    #[test]
    fn backoff_spaces_failures_progressively_and_success_clears() {
        let b = Backoff::new(3, std::time::Duration::from_secs(900));
        let now = Utc::now();
        for _ in 0..3 {
            assert!(b.begin("ann|10.0.0.1", now).is_ok());
        }
        assert_eq!(b.begin("ann|10.0.0.1", now), Err(1), "the fourth waits a second");
        assert!(b.begin("ann|10.0.0.9", now).is_ok(), "the same account from elsewhere is not held");
        let later = now + Duration::seconds(1);
        assert!(b.begin("ann|10.0.0.1", later).is_ok());
        assert_eq!(b.begin("ann|10.0.0.1", later), Err(2), "then two seconds");
        assert_eq!(b.wait_after(40), Duration::seconds(900), "capped");
        b.succeed("ann|10.0.0.1");
        assert!(b.begin("ann|10.0.0.1", later).is_ok());
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
