//! Concurrency budgets like Exchange's EWSMaxConcurrency: one for the service account and
//! one per target mailbox.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub struct Throttle {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    max: usize,
    back_off_ms: u64,
    account: usize,
    mailboxes: HashMap<String, usize>,
}

/// Which budget ran out.
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    Account,
    Mailbox { back_off_ms: u64 },
}

/// A held slot; released on drop.
pub struct Slot {
    throttle: Arc<Throttle>,
    mailbox: String,
    /// The account's requests in flight once this one was let in, itself included.
    pub in_flight: usize,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut g) = self.throttle.inner.lock() {
            g.account = g.account.saturating_sub(1);
            if let Some(n) = g.mailboxes.get_mut(&self.mailbox) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    g.mailboxes.remove(&self.mailbox);
                }
            }
        }
    }
}

impl Throttle {
    pub fn new(max: usize, back_off_ms: u64) -> Arc<Throttle> {
        Arc::new(Throttle {
            inner: Mutex::new(Inner {
                max,
                back_off_ms,
                account: 0,
                mailboxes: HashMap::new(),
            }),
        })
    }

    pub fn configure(&self, max: Option<usize>, back_off_ms: Option<u64>) {
        if let Ok(mut g) = self.inner.lock() {
            if let Some(m) = max {
                g.max = m.max(1);
            }
            if let Some(b) = back_off_ms {
                g.back_off_ms = b;
            }
        }
    }

    pub fn settings(&self) -> (usize, u64) {
        self.inner
            .lock()
            .map(|g| (g.max, g.back_off_ms))
            .unwrap_or((0, 0))
    }

    /// Takes a slot in both budgets, or says which one is exhausted.
    pub fn acquire(self: &Arc<Self>, mailbox: &str) -> Result<Slot, Refused> {
        let mut g = self.inner.lock().map_err(|_| Refused::Account)?;
        let max = g.max;
        let back_off_ms = g.back_off_ms;
        let mb_now = g.mailboxes.get(mailbox).copied().unwrap_or(0);
        if mb_now >= max {
            return Err(Refused::Mailbox { back_off_ms });
        }
        if g.account >= max {
            return Err(Refused::Account);
        }
        g.account += 1;
        *g.mailboxes.entry(mailbox.to_string()).or_insert(0) += 1;
        Ok(Slot {
            throttle: Arc::clone(self),
            mailbox: mailbox.to_string(),
            in_flight: g.account,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn budgets_are_enforced_and_released() {
        let t = Throttle::new(2, 700);
        let a = t.acquire("a").unwrap();
        let b = t.acquire("a").unwrap();
        assert_eq!((a.in_flight, b.in_flight), (1, 2));
        assert_eq!(
            t.acquire("a").err(),
            Some(Refused::Mailbox { back_off_ms: 700 })
        );
        assert_eq!(t.acquire("b").err(), Some(Refused::Account));
        drop(a);
        assert_eq!(t.acquire("b").unwrap().in_flight, 2);
    }
}
