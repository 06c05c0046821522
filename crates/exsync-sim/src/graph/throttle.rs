//! Exchange Online's limits for "every app ID and mailbox combination": at most
//! [`MAX_CONCURRENT`] requests in flight, a budget of requests per [`BUDGET_WINDOW`], and
//! [`UPLOAD_LIMIT`] bytes of POST, PATCH and PUT bodies per [`UPLOAD_WINDOW`]. Each
//! (app, mailbox) pair is throttled on its own, so one busy mailbox never slows another.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::call::Answer;
use super::state::lock;

/// Requests one app may have in flight against one mailbox.
pub(crate) const MAX_CONCURRENT: usize = 4;
/// The window a mailbox's request budget covers.
pub(crate) const BUDGET_WINDOW: Duration = Duration::from_secs(600);
/// Bytes of request bodies one app may send to one mailbox per [`UPLOAD_WINDOW`] (150 MB).
pub(crate) const UPLOAD_LIMIT: u64 = 150_000_000;
/// The window the upload limit covers.
pub(crate) const UPLOAD_WINDOW: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct Pair {
    in_flight: usize,
    window_start: Instant,
    used: u64,
    upload_start: Instant,
    uploaded: u64,
}

/// What was refused, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Concurrency,
    Budget,
    Upload,
}

/// The in-flight counts and budgets of every (app, mailbox) pair seen.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    pairs: Mutex<HashMap<(String, String), Pair>>,
}

/// A request's place among the ones in flight; it is given back when dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    throttle: Arc<Throttle>,
    key: (String, String),
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(pair) = lock(&self.throttle.pairs).get_mut(&self.key) {
            pair.in_flight = pair.in_flight.saturating_sub(1);
        }
    }
}

impl Throttle {
    /// Admits one request of `app` for `mailbox` (an id), whose budget is `budget` requests
    /// per window and whose body is `upload` bytes, or says why not with Graph's 429.
    /// Refused requests still count against the budget: Graph "continues to log resource
    /// usage while a client is being throttled".
    pub(crate) fn admit(
        self: &Arc<Self>,
        app: &str,
        mailbox: &str,
        budget: u64,
        upload: u64,
        now: Instant,
    ) -> Result<Permit, (Refusal, Answer)> {
        let key = (app.to_owned(), mailbox.to_owned());
        let mut pairs = lock(&self.pairs);
        let pair = pairs.entry(key.clone()).or_insert_with(|| Pair {
            in_flight: 0,
            window_start: now,
            used: 0,
            upload_start: now,
            uploaded: 0,
        });
        if now.saturating_duration_since(pair.upload_start) >= UPLOAD_WINDOW {
            pair.upload_start = now;
            pair.uploaded = 0;
        }
        if now.saturating_duration_since(pair.window_start) >= BUDGET_WINDOW {
            pair.window_start = now;
            pair.used = 0;
        }
        pair.used = pair.used.saturating_add(1);
        if pair.used > budget {
            let left =
                BUDGET_WINDOW.saturating_sub(now.saturating_duration_since(pair.window_start));
            let retry_after = left.as_secs().max(1);
            return Err((Refusal::Budget, too_many_requests(retry_after)));
        }
        if upload > 0 && pair.uploaded.saturating_add(upload) > UPLOAD_LIMIT {
            let left =
                UPLOAD_WINDOW.saturating_sub(now.saturating_duration_since(pair.upload_start));
            return Err((Refusal::Upload, too_many_requests(left.as_secs().max(1))));
        }
        if pair.in_flight >= MAX_CONCURRENT {
            return Err((Refusal::Concurrency, application_throttled()));
        }
        pair.uploaded = pair.uploaded.saturating_add(upload);
        pair.in_flight += 1;
        Ok(Permit {
            throttle: self.clone(),
            key,
        })
    }

    /// Forgets what `mailbox` used of its budget (for every app), as when its window ends.
    pub(crate) fn reset_budget(&self, mailbox: &str) {
        for ((_, m), pair) in lock(&self.pairs).iter_mut() {
            if m == mailbox {
                pair.used = 0;
            }
        }
    }
}

/// A 429 as Graph answers it. Graph's throttling sample (learn.microsoft.com/graph/throttling)
/// repeats the status in innerError: "code": "429", "message": "Please retry after",
/// "status": "429".
pub(crate) fn throttled(code: &str, message: &str) -> Answer {
    let mut answer = Answer::error(429, code, message);
    if let Some(serde_json::Value::Object(inner)) = answer
        .body
        .as_mut()
        .and_then(|b| b.pointer_mut("/error/innerError"))
    {
        inner.insert("code".into(), serde_json::json!("429"));
        inner.insert("message".into(), serde_json::json!("Please retry after"));
        inner.insert("status".into(), serde_json::json!("429"));
    }
    answer
}

/// Graph's answer to a request over the budget (with `Retry-After`).
pub(crate) fn too_many_requests(retry_after: u64) -> Answer {
    throttled("TooManyRequests", "Please retry again later.")
        .header("Retry-After", retry_after.to_string())
}

/// Graph's answer to a request beyond the mailbox concurrency limit.
pub(crate) fn application_throttled() -> Answer {
    throttled(
        "ApplicationThrottled",
        "Application is over its MailboxConcurrency limit.",
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_fifth_request_in_flight_is_refused_until_one_ends() {
        let t = Arc::new(Throttle::default());
        let now = Instant::now();
        let mut held: Vec<Permit> = (0..4)
            .map(|_| t.admit("app", "m1", 100, 0, now).unwrap())
            .collect();
        let (why, answer) = t.admit("app", "m1", 100, 0, now).unwrap_err();
        assert_eq!(why, Refusal::Concurrency);
        assert_eq!(answer.status, 429);
        let body = answer.body.unwrap();
        assert_eq!(body["error"]["code"], "ApplicationThrottled");
        assert_eq!(body["error"]["innerError"]["status"], "429");
        assert_eq!(body["error"]["innerError"]["code"], "429");
        // Another mailbox, or another app on the same mailbox, is not affected.
        let _other = t.admit("app", "m2", 100, 0, now).unwrap();
        let _other_app = t.admit("app2", "m1", 100, 0, now).unwrap();
        held.pop();
        let _again = t.admit("app", "m1", 100, 0, now).unwrap();
    }

    #[test]
    fn the_budget_refuses_with_retry_after_until_the_window_ends() {
        let t = Arc::new(Throttle::default());
        let start = Instant::now();
        for _ in 0..3 {
            drop(t.admit("app", "m1", 3, 0, start).unwrap());
        }
        let later = start + Duration::from_secs(100);
        let (why, answer) = t.admit("app", "m1", 3, 0, later).unwrap_err();
        assert_eq!(why, Refusal::Budget);
        assert_eq!(
            answer.body.as_ref().unwrap()["error"]["code"],
            "TooManyRequests"
        );
        assert!(answer
            .headers
            .contains(&("Retry-After".to_owned(), "500".to_owned())));
        drop(t.admit("app", "m2", 3, 0, later).unwrap());
        drop(t.admit("app", "m1", 3, 0, start + BUDGET_WINDOW).unwrap());
        t.reset_budget("m1");
        drop(t.admit("app", "m1", 1, 0, start + BUDGET_WINDOW).unwrap());
    }

    #[test]
    fn bodies_past_the_upload_limit_wait_for_the_window() {
        let t = Arc::new(Throttle::default());
        let start = Instant::now();
        drop(t.admit("app", "m1", 100, UPLOAD_LIMIT - 10, start).unwrap());
        drop(t.admit("app", "m1", 100, 10, start).unwrap());
        let (why, answer) = t.admit("app", "m1", 100, 1, start).unwrap_err();
        assert_eq!(why, Refusal::Upload);
        assert!(answer
            .headers
            .contains(&("Retry-After".to_owned(), "300".to_owned())));
        // Reads still go through, and the window's end clears the count.
        drop(t.admit("app", "m1", 100, 0, start).unwrap());
        drop(t.admit("app", "m1", 100, 1, start + UPLOAD_WINDOW).unwrap());
    }
}
