//! Staying under Exchange Online's limits, which hold per app and mailbox: at most a few
//! requests in flight per mailbox, a request budget per mailbox, and a pause of that mailbox
//! alone when Graph says it is throttled. Waits Graph asks for (`Retry-After`) are honoured;
//! without one, back-off is exponential with jitter.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rand::Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::error::{Error, Result};

/// Reads `Retry-After`: delay-seconds, or an HTTP date (how long from `now` until then; a
/// date in the past means no wait). Anything else is not a wait.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // Some servers send fractions; round up so we never come back early.
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs(secs.ceil() as u64));
        }
        return None;
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The back-off before retry number `attempt` (1 for the first retry) when the server named
/// no wait: `base · 2^(attempt-1)`, capped, scaled by a random 50–100% so clients told to
/// retry at once do not come back at once.
pub(crate) fn backoff(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let exp = base
        .saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1).min(16))
                .unwrap_or(u32::MAX),
        )
        .min(cap);
    exp.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

/// A server-named wait, spread by up to 10% so that many callers told the same instant do
/// not return together.
pub(crate) fn spread(wait: Duration) -> Duration {
    wait.mul_f64(rand::thread_rng().gen_range(1.0..=1.1))
}

/// Requests per minute, refilled continuously, holding at most a minute's worth.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// One mailbox's slots, budget and pause.
#[derive(Debug)]
struct Mailbox {
    slots: Arc<Semaphore>,
    bucket: Mutex<Bucket>,
    paused_until: Mutex<Option<Instant>>,
}

/// The per-mailbox limits of one client.
#[derive(Debug)]
pub(crate) struct Limiter {
    per_mailbox: usize,
    per_minute: f64,
    max_wait: Duration,
    mailboxes: Mutex<HashMap<String, Arc<Mailbox>>>,
}

/// Held while a request is in flight for its mailboxes; the slots come back when dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    _slots: Vec<OwnedSemaphorePermit>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Limiter {
    /// Requests a mailbox may have in flight at once.
    pub(crate) fn per_mailbox(&self) -> usize {
        self.per_mailbox
    }

    pub(crate) fn new(per_mailbox: usize, per_minute: u32, max_wait: Duration) -> Limiter {
        Limiter {
            per_mailbox: per_mailbox.max(1),
            per_minute: f64::from(per_minute.max(1)),
            max_wait,
            mailboxes: Mutex::new(HashMap::new()),
        }
    }

    fn mailbox(&self, key: &str) -> Arc<Mailbox> {
        let mut map = lock(&self.mailboxes);
        Arc::clone(map.entry(key.to_ascii_lowercase()).or_insert_with(|| {
            Arc::new(Mailbox {
                slots: Arc::new(Semaphore::new(self.per_mailbox)),
                bucket: Mutex::new(Bucket {
                    tokens: self.per_minute,
                    last: Instant::now(),
                }),
                paused_until: Mutex::new(None),
            })
        }))
    }

    /// Pauses `mailbox` until `wait` has passed (a later pause already set stands).
    pub(crate) fn pause(&self, mailbox: &str, wait: Duration) {
        let until = Instant::now() + wait;
        let m = self.mailbox(mailbox);
        let mut paused = lock(&m.paused_until);
        if paused.is_none_or(|p| p < until) {
            *paused = Some(until);
        }
    }

    /// How long `mailbox` is still paused for.
    pub(crate) fn paused_for(&self, mailbox: &str) -> Duration {
        let m = self.mailbox(mailbox);
        let until = *lock(&m.paused_until);
        until.map_or(Duration::ZERO, |u| {
            u.saturating_duration_since(Instant::now())
        })
    }

    /// Waits out `mailbox`'s pause (or fails at once when it is longer than a request may
    /// wait), then takes `cost` requests of its budget, then one of its in-flight slots.
    async fn enter(&self, key: &str, cost: u32) -> Result<OwnedSemaphorePermit> {
        let m = self.mailbox(key);
        loop {
            let wait = self.paused_for(key);
            if wait.is_zero() {
                break;
            }
            if wait > self.max_wait {
                return Err(Error::Paused {
                    mailbox: key.to_ascii_lowercase(),
                    wait,
                });
            }
            tokio::time::sleep(wait).await;
        }
        self.take_budget(&m, f64::from(cost)).await;
        // The semaphore is never closed, so acquiring only fails if it were.
        Arc::clone(&m.slots)
            .acquire_owned()
            .await
            .map_err(|_| Error::Config("mailbox limiter closed".into()))
    }

    async fn take_budget(&self, m: &Mailbox, cost: f64) {
        // A cost above the bucket's size (a batch bigger than a minute's budget) could never
        // be met; it takes a full bucket instead.
        let cost = cost.min(self.per_minute);
        let rate = self.per_minute / 60.0;
        loop {
            let wait = {
                let mut bucket = lock(&m.bucket);
                let now = Instant::now();
                let earned = now.saturating_duration_since(bucket.last).as_secs_f64() * rate;
                bucket.tokens = (bucket.tokens + earned).min(self.per_minute);
                bucket.last = now;
                if bucket.tokens >= cost {
                    bucket.tokens -= cost;
                    return;
                }
                Duration::from_secs_f64((cost - bucket.tokens) / rate)
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Admits one request that touches `mailboxes` (keys, one per mailbox, each with its
    /// number of requests): pauses waited out, budgets taken, one slot held per mailbox.
    /// Mailboxes are entered in sorted order so two batches never hold each other's slots.
    pub(crate) async fn admit(&self, mailboxes: &[(String, u32)]) -> Result<Permit> {
        let mut sorted: Vec<(String, u32)> = mailboxes
            .iter()
            .map(|(k, n)| (k.to_ascii_lowercase(), *n))
            .collect();
        sorted.sort();
        sorted.dedup_by(|b, a| {
            if a.0 == b.0 {
                a.1 += b.1;
                true
            } else {
                false
            }
        });
        let mut slots = Vec::with_capacity(sorted.len());
        for (key, cost) in &sorted {
            slots.push(self.enter(key, *cost).await?);
        }
        Ok(Permit { _slots: slots })
    }

    #[cfg(test)]
    fn free_slots(&self, mailbox: &str) -> usize {
        self.mailbox(mailbox).slots.available_permits()
    }
}

/// The mailbox a Graph path is about: the segment after `users/`, lower-cased (an id or a
/// UPN). Paths naming no user share the key `""`.
pub(crate) fn mailbox_of(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    while let Some(s) = segments.next() {
        if s.eq_ignore_ascii_case("users") {
            if let Some(id) = segments.next() {
                let id = url::form_urlencoded::parse(format!("k={id}").as_bytes())
                    .next()
                    .map_or_else(|| id.to_owned(), |(_, v)| v.into_owned());
                return id.to_ascii_lowercase();
            }
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // 1994-11-06 08:49:37
        assert_eq!(parse_retry_after("10", now), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("1.2", now), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        // The obsolete forms HTTP still asks recipients to read.
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun Nov  6 08:49:57 1994", now),
            Some(Duration::from_secs(20))
        );
        // A date already past: no wait.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(1);
        for _ in 0..50 {
            let d1 = backoff(base, cap, 1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= base);
            let d3 = backoff(base, cap, 3);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            assert!(backoff(base, cap, 40) <= cap);
        }
        let samples: std::collections::BTreeSet<_> =
            (0..20).map(|_| backoff(base, cap, 2)).collect();
        assert!(samples.len() > 1);
        let s = spread(Duration::from_secs(10));
        assert!(s >= Duration::from_secs(10) && s <= Duration::from_secs(11));
    }

    #[test]
    fn mailbox_keys_come_from_the_path() {
        assert_eq!(
            mailbox_of("/users/User1@Contoso.test/contacts"),
            "user1@contoso.test"
        );
        assert_eq!(
            mailbox_of("https://graph.microsoft.com/v1.0/users/AAMk%3D/events?$top=1"),
            "aamk="
        );
        assert_eq!(mailbox_of("/organization"), "");
        assert_eq!(mailbox_of("/users"), "");
    }

    #[tokio::test(start_paused = true)]
    async fn three_in_flight_per_mailbox_while_others_proceed() {
        let limiter = Limiter::new(3, 900, Duration::from_secs(60));
        let one = |m: &str| vec![(m.to_owned(), 1)];
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(limiter.admit(&one("a@x.test")).await.unwrap());
        }
        assert_eq!(limiter.free_slots("a@x.test"), 0);
        // A fourth for the same mailbox waits…
        let blocked =
            tokio::time::timeout(Duration::from_millis(50), limiter.admit(&one("A@x.test"))).await;
        assert!(blocked.is_err());
        // …while another mailbox gets through.
        let other =
            tokio::time::timeout(Duration::from_millis(50), limiter.admit(&one("b@x.test"))).await;
        assert!(other.is_ok());
        held.pop();
        let again =
            tokio::time::timeout(Duration::from_millis(50), limiter.admit(&one("a@x.test"))).await;
        assert!(again.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_refills_at_its_rate() {
        // 60 a minute: a burst of 60, then one a second.
        let limiter = Limiter::new(3, 60, Duration::from_secs(60));
        let start = Instant::now();
        for _ in 0..60 {
            drop(limiter.admit(&[("a".into(), 1)]).await.unwrap());
        }
        assert!(start.elapsed() < Duration::from_millis(10));
        drop(limiter.admit(&[("a".into(), 1)]).await.unwrap());
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(990) && waited <= Duration::from_millis(1100),
            "{waited:?}"
        );
        // A batch of 5 for one mailbox costs 5: about five seconds more.
        drop(
            limiter
                .admit(&[("a".into(), 3), ("a".into(), 2)])
                .await
                .unwrap(),
        );
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(5_900) && waited <= Duration::from_millis(6_200),
            "{waited:?}"
        );
        // Another mailbox has its own full budget.
        let before = Instant::now();
        drop(limiter.admit(&[("b".into(), 20)]).await.unwrap());
        assert!(before.elapsed() < Duration::from_millis(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_paused_mailbox_waits_alone_and_long_pauses_fail_fast() {
        let limiter = Limiter::new(3, 900, Duration::from_secs(60));
        limiter.pause("a", Duration::from_secs(5));
        let start = Instant::now();
        drop(limiter.admit(&[("b".into(), 1)]).await.unwrap());
        assert!(start.elapsed() < Duration::from_millis(10));
        drop(limiter.admit(&[("a".into(), 1)]).await.unwrap());
        assert!(start.elapsed() >= Duration::from_secs(5));
        limiter.pause("a", Duration::from_secs(600));
        match limiter.admit(&[("a".into(), 1)]).await {
            Err(Error::Paused { mailbox, wait }) => {
                assert_eq!(mailbox, "a");
                assert!(wait > Duration::from_secs(590));
            }
            other => panic!("expected a pause, got {other:?}"),
        }
        // A shorter pause does not shorten a longer one.
        limiter.pause("a", Duration::from_secs(1));
        assert!(limiter.paused_for("a") > Duration::from_secs(590));
    }
}
