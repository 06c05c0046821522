//! The share of the service account's requests in flight this process may use when other
//! processes send for the same account. Each process caps itself at
//! `exchange.max_concurrency`, so several processes together would send several times that;
//! instead a process that shares the account is granted a request at a time from outside
//! (a slot the workers' database handed it) and sends only as many at once as it was granted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A handle on a process's share; clones are the same share.
#[derive(Debug, Clone, Default)]
pub struct AccountShare {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// One permit per request in flight granted and not withdrawn; starts empty, so nothing is
    /// sent before a grant.
    permits: Arc<Semaphore>,
    granted: AtomicUsize,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            permits: Arc::new(Semaphore::new(0)),
            granted: AtomicUsize::new(0),
        }
    }
}

impl AccountShare {
    /// A share with nothing granted yet.
    pub fn new() -> AccountShare {
        AccountShare::default()
    }

    /// Allows one more request in flight.
    pub fn grant(&self) {
        self.inner.granted.fetch_add(1, Ordering::SeqCst);
        self.inner.permits.add_permits(1);
    }

    /// Takes one request in flight back, waiting until one fewer than granted are in flight,
    /// so the slot behind it can go to another process without both using it at once.
    pub async fn withdraw(&self) {
        if let Ok(permit) = Arc::clone(&self.inner.permits).acquire_owned().await {
            permit.forget();
            self.inner.granted.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Requests in flight granted now.
    pub fn granted(&self) -> usize {
        self.inner.granted.load(Ordering::SeqCst)
    }

    /// Waits for one of the granted requests to be free; held while the request is in flight.
    pub(crate) async fn acquire(&self) -> OwnedSemaphorePermit {
        loop {
            // The semaphore is never closed; the loop only satisfies the type.
            if let Ok(permit) = Arc::clone(&self.inner.permits).acquire_owned().await {
                return permit;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn nothing_is_sent_before_a_grant_and_a_withdrawal_waits_for_a_request_to_end() {
        let share = AccountShare::new();
        let none = tokio::time::timeout(Duration::from_millis(50), share.acquire()).await;
        assert!(none.is_err(), "a request went out with nothing granted");

        share.grant();
        share.grant();
        let first = share.acquire().await;
        let second = share.acquire().await;
        assert!(
            tokio::time::timeout(Duration::from_millis(50), share.acquire())
                .await
                .is_err(),
            "a third request with two granted"
        );
        // Both granted requests are in flight: taking one back waits for one to end.
        let withdrawing = share.clone();
        let withdrawal = tokio::spawn(async move { withdrawing.withdraw().await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!withdrawal.is_finished());
        drop(first);
        withdrawal.await.unwrap();
        assert_eq!(share.granted(), 1);
        // One left, and it is the one still in flight.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), share.acquire())
                .await
                .is_err()
        );
        drop(second);
        let _again = share.acquire().await;
    }
}
