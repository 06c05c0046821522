//! Staying under Exchange's limits: concurrency caps per service account and per mailbox, an
//! account-wide pause when the server says it is busy (so every worker waits, not just the one
//! that was told), and bounded retries with jittered exponential back-off.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::share::AccountShare;

/// How often and how long a call is retried after a transient failure or a throttling answer.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// First retry waits about this long; each further one about twice as long.
    pub base_delay: Duration,
    /// A server that asks us to wait longer than this gets an error back instead: the pass
    /// for this user ends and the scheduler tries later.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_wait: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (0-based): exponential, with jitter so that
    /// workers told to retry at once do not come back at once.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX));
        let exp = exp.min(self.max_wait);
        let factor = rand::thread_rng().gen_range(0.5..=1.0);
        exp.mul_f64(factor)
    }

    /// A server-requested wait, spread by up to 20% for the same reason.
    pub fn spread(&self, wait: Duration) -> Duration {
        wait.mul_f64(rand::thread_rng().gen_range(1.0..=1.2))
    }
}

/// Concurrency caps and the shared pause.
pub(crate) struct Limits {
    account: Arc<Semaphore>,
    /// Set when other processes send for the same account: this process's share of it.
    share: Option<AccountShare>,
    per_mailbox_limit: usize,
    mailboxes: Mutex<HashMap<String, Arc<Semaphore>>>,
    paused_until: Mutex<Option<Instant>>,
}

/// Held while a request is in flight.
pub(crate) struct Permit {
    _mailbox: OwnedSemaphorePermit,
    _share: Option<OwnedSemaphorePermit>,
    _account: OwnedSemaphorePermit,
}

impl Limits {
    pub(crate) fn new(per_account: usize, per_mailbox: usize, share: Option<AccountShare>) -> Self {
        Limits {
            account: Arc::new(Semaphore::new(per_account.max(1))),
            share,
            per_mailbox_limit: per_mailbox.max(1),
            mailboxes: Mutex::new(HashMap::new()),
            paused_until: Mutex::new(None),
        }
    }

    fn mailbox_semaphore(&self, mailbox: &str) -> Arc<Semaphore> {
        let mut map = match self.mailboxes.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        Arc::clone(
            map.entry(mailbox.to_ascii_lowercase())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_mailbox_limit))),
        )
    }

    /// Waits out any pause, then for a mailbox slot, then for this process's share of the
    /// account when it has one, then for an account slot (in that order, so a busy mailbox
    /// never sits on an account slot while it waits).
    pub(crate) async fn acquire(&self, mailbox: &str) -> Permit {
        self.wait_pause().await;
        let mailbox_permit = loop {
            if let Ok(p) = self.mailbox_semaphore(mailbox).acquire_owned().await {
                break p;
            }
        };
        let share_permit = match &self.share {
            Some(share) => Some(share.acquire().await),
            None => None,
        };
        let account_permit = loop {
            if let Ok(p) = Arc::clone(&self.account).acquire_owned().await {
                break p;
            }
        };
        Permit {
            _mailbox: mailbox_permit,
            _share: share_permit,
            _account: account_permit,
        }
    }

    /// Makes every request of this account wait until `wait` has passed.
    pub(crate) fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        if let Ok(mut paused) = self.paused_until.lock() {
            if paused.is_none_or(|p| p < until) {
                *paused = Some(until);
            }
        }
    }

    pub(crate) async fn wait_pause(&self) {
        let until = self.paused_until.lock().ok().and_then(|p| *p);
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }

    #[cfg(test)]
    pub(crate) fn available_account_slots(&self) -> usize {
        self.account.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_bounded() {
        let p = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_wait: Duration::from_secs(1),
        };
        for _ in 0..50 {
            let d0 = p.delay(0);
            assert!(d0 >= Duration::from_millis(50) && d0 <= Duration::from_millis(100));
            let d3 = p.delay(3);
            assert!(d3 >= Duration::from_millis(400) && d3 <= Duration::from_millis(800));
            assert!(p.delay(40) <= Duration::from_secs(1));
        }
        // Jitter: not every delay is the same.
        let samples: std::collections::BTreeSet<_> = (0..20).map(|_| p.delay(2)).collect();
        assert!(samples.len() > 1);
    }

    #[tokio::test]
    async fn per_mailbox_cap_holds_while_others_proceed() {
        let limits = Arc::new(Limits::new(3, 1, None));
        let a = limits.acquire("a@x.test").await;
        // A second request for the same mailbox waits…
        let blocked =
            tokio::time::timeout(Duration::from_millis(50), limits.acquire("A@x.test")).await;
        assert!(blocked.is_err());
        // …while another mailbox gets through.
        let b = tokio::time::timeout(Duration::from_millis(50), limits.acquire("b@x.test")).await;
        assert!(b.is_ok());
        assert_eq!(limits.available_account_slots(), 1);
        drop(a);
        let again =
            tokio::time::timeout(Duration::from_millis(50), limits.acquire("a@x.test")).await;
        assert!(again.is_ok());
    }

    #[tokio::test]
    async fn pause_holds_everyone() {
        let limits = Limits::new(3, 3, None);
        limits.pause(Duration::from_millis(150));
        let start = Instant::now();
        let _p = limits.acquire("c@x.test").await;
        assert!(start.elapsed() >= Duration::from_millis(140));
    }
}
