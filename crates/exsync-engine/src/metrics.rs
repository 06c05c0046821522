//! Prometheus metrics: a small registry of labelled counters and summaries, rendered in the
//! text exposition format. Hand-rolled because the set is small and fixed; a client library
//! would add more than it saves.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Labels as (name, value) pairs, in a fixed order.
pub type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Series {
    help: &'static str,
    kind: &'static str,
    values: BTreeMap<Labels, f64>,
}

/// The process's metrics.
#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<&'static str, Series>>,
}

/// Metric names, with their help text; one place so the exposition and the code agree.
pub mod names {
    /// Counter: records exsync wrote, labelled by `op` (`create`, `update` or `delete`); added
    /// after each user's pass.
    pub const ITEMS_SYNCED: (&str, &str) = (
        "exsync_items_synced_total",
        "Records written by exsync, by operation (create, update, delete).",
    );
    /// Counter: records a user's pass could not sync (they are read again next pass); no labels.
    pub const ITEM_FAILURES: (&str, &str) = (
        "exsync_item_failures_total",
        "Records that could not be synced in a pass.",
    );
    /// Counter: fields changed on both sides between two passes, settled by the configuration's
    /// conflict policy.
    pub const CONFLICTS: (&str, &str) = (
        "exsync_conflicts_total",
        "Fields changed on both sides and settled by the conflict policy.",
    );
    /// Counter: what passes noticed that the admin should know, labelled by `code` (see
    /// [`crate::sync::pass::UserReport::notices`]).
    pub const NOTICES: (&str, &str) = (
        "exsync_notices_total",
        "Things passes noticed that the admin should know, by code (see exsync status).",
    );
    /// Counter: copies an interrupted pass made and a later pass found by their tag and paired from
    /// the intent journal (see [`crate::sync::pass::UserReport::recovered_pairs`]).
    pub const RECOVERED_WRITES: (&str, &str) = (
        "exsync_recovered_writes_total",
        "Copies an interrupted pass made, found by their tag and paired from the intent journal.",
    );
    /// Counter: journaled creates that nothing could show to have made a copy or not, so they were
    /// sent again and may have made a duplicate (see
    /// [`crate::sync::pass::UserReport::uncertain_creates`]).
    pub const UNCERTAIN_CREATES: (&str, &str) = (
        "exsync_uncertain_creates_total",
        "Creates an interrupted pass sent whose copy neither a read nor the side could account \
         for, made again; see the log for the records.",
    );
    /// Counter: requests the connectors sent, labelled by `side`, `endpoint` and `outcome` as the
    /// connector reports them.
    pub const REQUESTS: (&str, &str) = (
        "exsync_requests_total",
        "Requests to Exchange and the CRM, by side, endpoint and outcome.",
    );
    /// Counter, in seconds: time spent waiting because a server asked us to back off, labelled by
    /// `side`.
    pub const THROTTLE_WAIT: (&str, &str) = (
        "exsync_throttle_wait_seconds_total",
        "Time spent waiting because a server asked us to back off.",
    );
    /// Summary, in seconds: how long each whole pass over the org took.
    pub const PASS_SECONDS: (&str, &str) = (
        "exsync_pass_duration_seconds",
        "Duration of whole passes over the org.",
    );
    /// Counter: user passes that ended with an error; their records are retried next pass.
    pub const USER_PASS_ERRORS: (&str, &str) = (
        "exsync_user_pass_errors_total",
        "User passes that failed as a whole, e.g. impersonation denied.",
    );
    /// Gauge: users the safety valve paused in the last pass.
    pub const PAUSED_USERS: (&str, &str) =
        ("exsync_paused_users", "Users paused by the safety valve.");
    /// Gauge: active CRM users the last pass left out because their address names no mailbox.
    pub const SKIPPED_CRM_USERS: (&str, &str) = (
        "exsync_crm_users_skipped",
        "Active CRM users the last pass left out because their address names no mailbox.",
    );
}

impl Metrics {
    fn with_series(
        &self,
        (name, help): (&'static str, &'static str),
        kind: &'static str,
        f: impl FnOnce(&mut Series),
    ) {
        let mut series = self
            .series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = series.entry(name).or_insert_with(|| Series {
            help,
            kind,
            values: BTreeMap::new(),
        });
        f(entry);
    }

    /// Adds to a counter.
    pub fn add(&self, metric: (&'static str, &'static str), labels: Labels, by: f64) {
        self.with_series(metric, "counter", |s| {
            *s.values.entry(labels).or_insert(0.0) += by
        });
    }

    /// Sets a gauge.
    pub fn set(&self, metric: (&'static str, &'static str), labels: Labels, value: f64) {
        self.with_series(metric, "gauge", |s| {
            s.values.insert(labels, value);
        });
    }

    /// Records one observation of a summary (count and sum).
    pub fn observe(&self, metric: (&'static str, &'static str), labels: Labels, value: f64) {
        self.with_series(metric, "summary", |s| {
            let mut count = labels.clone();
            count.push(("__part", "count".into()));
            *s.values.entry(count).or_insert(0.0) += 1.0;
            let mut sum = labels;
            sum.push(("__part", "sum".into()));
            *s.values.entry(sum).or_insert(0.0) += value;
        });
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let series = self
            .series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut out = String::new();
        for (name, s) in series.iter() {
            let _ = writeln!(out, "# HELP {name} {}", s.help);
            let _ = writeln!(out, "# TYPE {name} {}", s.kind);
            for (labels, value) in &s.values {
                let suffix = labels
                    .iter()
                    .find(|(k, _)| *k == "__part")
                    .map(|(_, v)| format!("_{v}"))
                    .unwrap_or_default();
                let shown: Vec<String> = labels
                    .iter()
                    .filter(|(k, _)| *k != "__part")
                    .map(|(k, v)| {
                        format!(
                            "{k}=\"{}\"",
                            v.replace('\\', "\\\\")
                                .replace('"', "\\\"")
                                .replace('\n', "\\n")
                        )
                    })
                    .collect();
                let labels = if shown.is_empty() {
                    String::new()
                } else {
                    format!("{{{}}}", shown.join(","))
                };
                let _ = writeln!(out, "{name}{suffix}{labels} {value}");
            }
        }
        out
    }
}

impl exsync_core::observe::RequestObserver for Metrics {
    fn request(&self, system: &'static str, endpoint: &str, outcome: &str) {
        let labels = vec![
            ("side", system.to_owned()),
            ("endpoint", endpoint.to_owned()),
            ("outcome", outcome.to_owned()),
        ];
        self.add(names::REQUESTS, labels, 1.0);
    }

    fn throttled(&self, system: &'static str, wait: std::time::Duration) {
        self.add(
            names::THROTTLE_WAIT,
            vec![("side", system.to_owned())],
            wait.as_secs_f64(),
        );
    }
}

/// Serves `/metrics` on `addr` until the process ends.
pub async fn serve(
    addr: std::net::SocketAddr,
    metrics: std::sync::Arc<Metrics>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "Serving metrics.");
    loop {
        let (mut stream, _) = listener.accept().await?;
        let metrics = std::sync::Arc::clone(&metrics);
        tokio::spawn(async move {
            // One small GET per connection is all a scraper sends; no HTTP library needed.
            let mut request = [0u8; 2048];
            let n = stream.read(&mut request).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&request[..n]);
            let (status, body) = if head.starts_with("GET /metrics ") {
                ("200 OK", metrics.render())
            } else {
                ("404 Not Found", "only /metrics is served here\n".to_owned())
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_summaries() {
        let m = Metrics::default();
        m.add(
            names::ITEMS_SYNCED,
            vec![("kind", "contact".into()), ("op", "create".into())],
            2.0,
        );
        m.add(
            names::ITEMS_SYNCED,
            vec![("kind", "contact".into()), ("op", "create".into())],
            1.0,
        );
        m.set(names::PAUSED_USERS, vec![], 1.0);
        m.observe(names::PASS_SECONDS, vec![], 0.5);
        m.observe(names::PASS_SECONDS, vec![], 1.5);
        m.add(names::REQUESTS, vec![("endpoint", "a\"b".into())], 1.0);
        let text = m.render();
        assert!(
            text.contains("# TYPE exsync_items_synced_total counter"),
            "{text}"
        );
        assert!(
            text.contains("exsync_items_synced_total{kind=\"contact\",op=\"create\"} 3"),
            "{text}"
        );
        assert!(text.contains("exsync_paused_users 1"), "{text}");
        assert!(
            text.contains("exsync_pass_duration_seconds_count 2"),
            "{text}"
        );
        assert!(
            text.contains("exsync_pass_duration_seconds_sum 2"),
            "{text}"
        );
        assert!(text.contains("endpoint=\"a\\\"b\""), "{text}");
    }
}
