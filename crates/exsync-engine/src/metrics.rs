//! Prometheus metrics: a small registry of labelled counters and summaries, rendered in the
//! text exposition format. Hand-rolled because the set is small and fixed; a client library
//! would add more than it saves.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use exsync_store::Store;

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
    /// Why the service is failing passes right now, for `/readyz` (the counters say how often;
    /// this says what, which no label should carry).
    failing: Mutex<Option<String>>,
}

/// Metric names, with their help text; one place so the exposition and the code agree.
pub mod names {
    /// Counter: records exsync wrote, labelled by `kind` (`contact`, `event`), `direction`
    /// (`to_exchange`, `to_crm`) and `op` (`create`, `update`, `delete`); added after each
    /// user's pass.
    pub const ITEMS_SYNCED: (&str, &str) = (
        "exsync_items_synced_total",
        "Records written by exsync, by kind (contact, event), direction (to_exchange, to_crm) \
         and operation (create, update, delete).",
    );
    /// Gauge, always 1: the running build, labelled by `version`.
    pub const BUILD_INFO: (&str, &str) = (
        "exsync_build_info",
        "The running exsync build, by version; always 1.",
    );
    /// Gauge: when the last pass over the org ended, in seconds since the Unix epoch.
    pub const LAST_PASS_END: (&str, &str) = (
        "exsync_last_pass_end_timestamp_seconds",
        "When the last pass over the org ended (Unix time).",
    );
    /// Gauge: when each user's last pass ended without an error, labelled by `user`.
    pub const USER_LAST_SUCCESS: (&str, &str) = (
        "exsync_user_last_success_timestamp_seconds",
        "When each user's last successful pass ended (Unix time), by user.",
    );
    /// Gauge: users by `state` after the last pass that could list them: `syncing` (the last
    /// pass succeeded), `failing` (it failed), `paused`, `unassigned` (a configuration names
    /// them but no active CRM user has their address).
    pub const USERS: (&str, &str) = (
        "exsync_users",
        "Users by state after the last pass: syncing, failing, paused, unassigned.",
    );
    /// Counter: passes that could not read the CRM, so synced no user.
    pub const CRM_READ_FAILURES: (&str, &str) = (
        "exsync_crm_read_failures_total",
        "Passes that could not read the CRM and synced no user.",
    );
    /// Counter: CRM calls the budget shared by all workers refused, because together they had
    /// spent the allowance down to the reserve; no labels.
    pub const CRM_BUDGET_REFUSALS: (&str, &str) = (
        "exsync_crm_budget_refusals_total",
        "CRM calls not sent because the workers' shared API budget was spent down to the reserve.",
    );
    /// Counter, in seconds: time user passes waited for one of the Exchange slots workers on
    /// one database share (`exchange.max_concurrency` for them all); no labels.
    pub const EXCHANGE_SLOT_WAIT: (&str, &str) = (
        "exsync_exchange_slot_wait_seconds_total",
        "Time user passes waited for a free Exchange slot, because the workers together had \
         exchange.max_concurrency requests in flight for the service account.",
    );
    /// Counter: records a user's pass could not sync (they are read again next pass); no labels.
    pub const ITEM_FAILURES: (&str, &str) = (
        "exsync_item_failures_total",
        "Records that could not be synced in a pass.",
    );
    /// Counter: records synced without what the side they went to cannot hold (text cut to a
    /// field's limit, control characters removed), labelled by `direction` as
    /// [`ITEMS_SYNCED`]; each is named with its reason in status until it fits.
    pub const RECORDS_CUT: (&str, &str) = (
        "exsync_records_cut_total",
        "Records synced without what the side they went to cannot hold, by direction (see exsync status).",
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
    /// Counter: passes that failed as a whole and were run again after a back-off, labelled
    /// by `reason` (`state_database`, `scratch_database`).
    pub const PASS_RETRIES: (&str, &str) = (
        "exsync_pass_retries_total",
        "Passes that failed as a whole (e.g. the state database was unreachable) and were run \
         again after a back-off, by reason.",
    );
    /// Gauge: 1 while the service waits to run a failed pass again, 0 once a pass ended.
    pub const PASS_RETRYING: (&str, &str) = (
        "exsync_pass_retrying",
        "1 while the last pass failed as a whole and the service waits to run it again.",
    );
    /// Gauge: active CRM users the last pass left out because their address names no mailbox.
    pub const SKIPPED_CRM_USERS: (&str, &str) = (
        "exsync_crm_users_skipped",
        "Active CRM users the last pass left out because their address names no mailbox.",
    );
}

/// Every metric exsync exports, for checks that name them (the sample alert rules).
pub const ALL: &[(&str, &str)] = &[
    names::ITEMS_SYNCED,
    names::BUILD_INFO,
    names::LAST_PASS_END,
    names::USER_LAST_SUCCESS,
    names::USERS,
    names::CRM_READ_FAILURES,
    names::CRM_BUDGET_REFUSALS,
    names::EXCHANGE_SLOT_WAIT,
    names::ITEM_FAILURES,
    names::RECORDS_CUT,
    names::CONFLICTS,
    names::NOTICES,
    names::RECOVERED_WRITES,
    names::UNCERTAIN_CREATES,
    names::REQUESTS,
    names::THROTTLE_WAIT,
    names::PASS_SECONDS,
    names::USER_PASS_ERRORS,
    names::PAUSED_USERS,
    names::SKIPPED_CRM_USERS,
    names::PASS_RETRIES,
    names::PASS_RETRYING,
];

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

    /// A series' current value, if it has one.
    pub fn value(&self, (name, _): (&'static str, &'static str), labels: &Labels) -> Option<f64> {
        let series = self
            .series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        series.get(name)?.values.get(labels).copied()
    }

    /// Sets or clears why the service is failing its passes (what `/readyz` says).
    pub fn set_failing(&self, why: Option<String>) {
        *self
            .failing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = why;
    }

    /// Why the service is failing its passes, while it is.
    pub fn failing(&self) -> Option<String> {
        self.failing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
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

/// Seconds since the Unix epoch, as the timestamp gauges hold them.
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// What `/readyz` checks: the state database answers, the last pass did not fail as a whole
/// (the service waits to run it again), and a pass ended within three poll intervals (or the service started less than that long ago and its first pass is running).
pub struct Readiness {
    /// The service's state database.
    pub store: Arc<dyn Store>,
    /// The poll interval.
    pub interval: Duration,
    /// When the service started.
    pub started: SystemTime,
}

impl Readiness {
    /// `Ok` with a line saying why the service is ready, or `Err` saying why not.
    pub fn check(&self, metrics: &Metrics, now: SystemTime) -> Result<String, String> {
        crate::switch::is_enabled(self.store.as_ref())
            .map_err(|e| format!("the state database does not answer: {e}"))?;
        // The database may answer again before the pass that failed has run again.
        if let Some(why) = metrics.failing() {
            return Err(why);
        }
        let limit = 3.0 * self.interval.as_secs_f64();
        let now = unix_seconds(now);
        match metrics.value(names::LAST_PASS_END, &Vec::new()) {
            Some(end) if now - end <= limit => Ok(format!(
                "ready: the last pass ended {:.0} s ago",
                (now - end).max(0.0)
            )),
            Some(end) => Err(format!(
                "no pass has ended for {:.0} s (more than three poll intervals of {} s)",
                now - end,
                self.interval.as_secs()
            )),
            None if now - unix_seconds(self.started) <= limit => {
                Ok("ready: the first pass is running".to_owned())
            }
            None => Err(format!(
                "no pass has ended since the service started {:.0} s ago (more than three poll \
                 intervals of {} s)",
                now - unix_seconds(self.started),
                self.interval.as_secs()
            )),
        }
    }
}

/// How long the metrics listener waits for a request once a client connected.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

/// Serves `/metrics`, `/healthz` (the process answers) and `/readyz` (see [`Readiness`]) on
/// `addr` until the process ends.
pub async fn serve(
    addr: std::net::SocketAddr,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_on(listener, metrics, readiness).await
}

/// [`serve`] on a listener already bound, so a service can refuse to start when its port is
/// taken rather than run without its metrics.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "Serving metrics.");
    }
    loop {
        let (mut stream, _) = listener.accept().await?;
        let metrics = Arc::clone(&metrics);
        let readiness = Arc::clone(&readiness);
        tokio::spawn(async move {
            // One small GET per connection is all a scraper sends; no HTTP library needed.
            // A client that connects and sends nothing is dropped after a few seconds, so idle
            // connections cannot pile up.
            let mut request = [0u8; 2048];
            let n = match tokio::time::timeout(REQUEST_DEADLINE, stream.read(&mut request)).await {
                Ok(Ok(n)) => n,
                Ok(Err(_)) | Err(_) => return,
            };
            let head = String::from_utf8_lossy(&request[..n]);
            let (status, body) = if head.starts_with("GET /metrics ") {
                ("200 OK", metrics.render())
            } else if head.starts_with("GET /healthz ") {
                ("200 OK", "ok\n".to_owned())
            } else if head.starts_with("GET /readyz ") {
                match readiness.check(&metrics, SystemTime::now()) {
                    Ok(why) => ("200 OK", format!("{why}\n")),
                    Err(why) => ("503 Service Unavailable", format!("not ready: {why}\n")),
                }
            } else {
                (
                    "404 Not Found",
                    "served here: /metrics, /healthz, /readyz\n".to_owned(),
                )
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
    #![allow(clippy::unwrap_used, clippy::expect_used)]
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

    #[test]
    fn ready_while_passes_end_within_three_intervals() {
        let store: Arc<dyn Store> = Arc::new(exsync_store::SqliteStore::open_in_memory().unwrap());
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let ready = Readiness {
            store,
            interval: Duration::from_secs(60),
            started: t0,
        };
        let m = Metrics::default();
        // Starting: the first pass may take up to three intervals.
        assert_eq!(
            ready.check(&m, at(170)),
            Ok("ready: the first pass is running".to_owned())
        );
        let late = ready.check(&m, at(181)).unwrap_err();
        assert!(
            late.contains("no pass has ended since the service started 181 s ago"),
            "{late}"
        );
        m.set(names::LAST_PASS_END, vec![], unix_seconds(at(200)));
        assert_eq!(
            ready.check(&m, at(230)),
            Ok("ready: the last pass ended 30 s ago".to_owned())
        );
        let stale = ready.check(&m, at(381)).unwrap_err();
        assert!(stale.contains("no pass has ended for 181 s"), "{stale}");

        // A pass that failed as a whole makes the service not ready until one ends.
        m.set_failing(Some(
            "the last pass failed (1 in a row) and runs again in 1 s".into(),
        ));
        let failing = ready.check(&m, at(230)).unwrap_err();
        assert!(failing.contains("runs again in 1 s"), "{failing}");
        m.set_failing(None);
        assert!(ready.check(&m, at(230)).is_ok());
    }

    /// The sample alert rules name only metrics exsync exports (a renamed metric would leave an
    /// alert that never fires), and every rule says what to do.
    #[test]
    fn the_sample_alert_rules_use_exported_metrics() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/prometheus/exsync-alerts.yml"
        );
        let rules = std::fs::read_to_string(path).unwrap();
        let known: Vec<&str> = ALL.iter().map(|(name, _)| *name).collect();
        let mut alerts = 0;
        for expr in rules.lines().filter_map(|l| l.trim().strip_prefix("expr:")) {
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("exsync_") {
                    assert!(known.contains(&word), "{word} in {expr} is not exported");
                }
            }
            alerts += 1;
        }
        assert!(alerts >= 8, "{alerts} rules");
        assert_eq!(rules.matches("- alert:").count(), alerts);
        assert_eq!(rules.matches("description:").count(), alerts);
    }

    /// A client that connects and says nothing is let go after the deadline.
    #[tokio::test]
    async fn a_silent_client_is_dropped_after_the_deadline() {
        use tokio::io::AsyncReadExt;
        let store: Arc<dyn Store> = Arc::new(exsync_store::SqliteStore::open_in_memory().unwrap());
        let readiness = Arc::new(Readiness {
            store,
            interval: Duration::from_secs(60),
            started: SystemTime::now(),
        });
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        tokio::spawn(serve(addr, Arc::new(Metrics::default()), readiness));
        let mut stream = loop {
            if let Ok(s) = tokio::net::TcpStream::connect(addr).await {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(
            REQUEST_DEADLINE + Duration::from_secs(3),
            stream.read_to_end(&mut rest),
        )
        .await;
        assert!(closed.is_ok(), "the connection is still open");
        assert!(rest.is_empty());
    }
}
