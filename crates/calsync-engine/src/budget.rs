//! Per-account request budgets: every provider call of a sync first takes a slot and a token
//! from its account's budget, so one account stays under what the provider tolerates (Google:
//! 600 requests per minute per user; Graph: 10,000 per 10 minutes and 4 at once per mailbox)
//! however many of its connections sync at once in this process. A `Retry-After` holds the
//! whole account back, not just the request that got it; other accounts go on.
//!
//! The bucket refills at nine tenths of the provider's rate and holds a tenth of its window's
//! allowance, so no window of the provider's length ever sees more than its limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use calsync_domain::connection::Provider;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// What one provider allows per account.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Requests per window …
    pub requests: u32,
    /// … of this length.
    pub window: Duration,
    /// Requests in flight at once.
    pub concurrent: usize,
}

impl Limits {
    pub fn for_provider(p: Provider) -> Limits {
        match p {
            Provider::Google => Limits { requests: 600, window: Duration::from_secs(60), concurrent: 10 },
            Provider::Microsoft => Limits { requests: 10_000, window: Duration::from_secs(600), concurrent: 4 },
            // No published limits; iCloud and Fastmail throttle bursts, so calsync stays gentle.
            Provider::CalDav => Limits { requests: 300, window: Duration::from_secs(60), concurrent: 2 },
        }
    }

    fn rate_per_sec(&self) -> f64 {
        0.9 * f64::from(self.requests) / self.window.as_secs_f64()
    }

    fn burst(&self) -> f64 {
        (0.1 * f64::from(self.requests)).max(1.0)
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// A `Retry-After` for the account runs until then.
    blocked_until: Option<Instant>,
}

/// One account's budget.
#[derive(Debug)]
pub struct AccountBudget {
    limits: Limits,
    slots: Semaphore,
    bucket: Mutex<Bucket>,
}

impl AccountBudget {
    pub fn new(limits: Limits) -> Self {
        AccountBudget {
            limits,
            slots: Semaphore::new(limits.concurrent.max(1)),
            bucket: Mutex::new(Bucket { tokens: limits.burst(), at: Instant::now(), blocked_until: None }),
        }
    }

    /// Waits for a slot and a token; the slot is held until the permit is dropped (when the
    /// request is over).
    pub async fn acquire(&self) -> SemaphorePermit<'_> {
        let permit = self.slots.acquire().await.expect("the semaphore is never closed");
        loop {
            let wait = {
                let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
                b.tokens = (b.tokens + elapsed * self.limits.rate_per_sec()).min(self.limits.burst());
                b.at = now;
                match b.blocked_until {
                    Some(until) if until > now => until - now,
                    _ if b.tokens >= 1.0 => {
                        b.tokens -= 1.0;
                        return permit;
                    }
                    _ => Duration::from_secs_f64((1.0 - b.tokens) / self.limits.rate_per_sec()),
                }
            };
            metrics::counter!("calsync_provider_budget_waits_total").increment(1);
            tokio::time::sleep(wait).await;
        }
    }

    /// The provider said to wait: no request of this account goes out before then.
    pub fn hold_off(&self, after: Duration) {
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let until = Instant::now() + after;
        b.blocked_until = Some(b.blocked_until.map_or(until, |u| u.max(until)));
    }
}

/// The budgets of every account this process talks to.
#[derive(Debug, Default)]
pub struct Budgets {
    accounts: Mutex<HashMap<(Provider, String), Arc<AccountBudget>>>,
}

impl Budgets {
    pub fn account(&self, provider: Provider, account: &str) -> Arc<AccountBudget> {
        let mut map = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(
            map.entry((provider, account.to_owned()))
                .or_insert_with(|| Arc::new(AccountBudget::new(Limits::for_provider(provider)))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(requests: u32, secs: u64, concurrent: usize) -> AccountBudget {
        AccountBudget::new(Limits { requests, window: Duration::from_secs(secs), concurrent })
    }

    #[tokio::test(start_paused = true)]
    async fn no_window_sees_more_than_the_limit() {
        let b = budget(600, 60, 100);
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..1500 {
            drop(b.acquire().await);
            times.push(start.elapsed());
        }
        // A burst of a tenth at once, then nine tenths of the rate.
        assert_eq!(times.iter().filter(|t| t.is_zero()).count(), 60);
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..].iter().take_while(|u| **u < *t + Duration::from_secs(60)).count();
            assert!(in_window <= 600, "{in_window} requests within a minute from {t:?}");
        }
        let took = start.elapsed().as_secs_f64();
        assert!((160.0..=170.0).contains(&took), "{took}");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_holds_the_account_back_and_only_it() {
        let budgets = Budgets::default();
        let ann = budgets.account(Provider::Microsoft, "ann");
        let bob = budgets.account(Provider::Microsoft, "bob");
        assert!(Arc::ptr_eq(&ann, &budgets.account(Provider::Microsoft, "ann")));
        assert!(!Arc::ptr_eq(&ann, &budgets.account(Provider::Google, "ann")));
        ann.hold_off(Duration::from_secs(30));
        let start = Instant::now();
        drop(bob.acquire().await);
        assert_eq!(start.elapsed(), Duration::ZERO);
        drop(ann.acquire().await);
        assert_eq!(start.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_four_graph_requests_at_once() {
        let b = Arc::new(AccountBudget::new(Limits::for_provider(Provider::Microsoft)));
        let held: Vec<_> = futures_take(&b, 4).await;
        let b2 = Arc::clone(&b);
        let fifth = tokio::spawn(async move {
            drop(b2.acquire().await);
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!fifth.is_finished(), "a fifth request went out while four were in flight");
        drop(held);
        fifth.await.unwrap();
    }

    async fn futures_take(b: &AccountBudget, n: usize) -> Vec<SemaphorePermit<'_>> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(b.acquire().await);
        }
        out
    }
}
