//! `exsync run`: a pass every interval until told to stop. A stop request lets the users
//! already started finish and commit, starts no new ones, and leaves the org-wide cursors
//! alone, so a restart neither loses nor repeats work.
//!
//! A pass that fails as a whole (the state database went away: a restart, a failover, a
//! network cut) committed nothing past its last whole user, so the service does not end: it
//! says why, counts it, reports itself not ready, and runs the pass again after a back-off
//! that doubles up to a cap. The store reconnects on its own once the database answers.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use super::pass::PassError;
use super::service::{PassOptions, PassReport, Syncer};
use super::sides::{CrmSide, MailboxSide};
use crate::metrics::unix_seconds;
use crate::metrics::{names, Metrics};
use exsync_core::Side;

/// The first wait before a failed pass is run again.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between two attempts: a database back after a minute is not left idle
/// for long, and a database that stays away is not hammered.
const RETRY_CAP: Duration = Duration::from_secs(30);

/// The wait before attempt `failures + 1`, after `failures` failed passes in a row.
fn retry_after(failures: u32) -> Duration {
    let doubled = RETRY_FIRST.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    doubled.min(RETRY_CAP)
}

/// What failed, as the retry counter's `reason` label: a few fixed words, never the error's
/// text (which names hosts and users).
fn reason_label(e: &PassError) -> &'static str {
    match e {
        PassError::Store(_) | PassError::Join(_) => "state_database",
        PassError::Stage(_) => "scratch_database",
    }
}

/// Runs passes until `stop` turns true. Returns the number of passes run to their end; a
/// pass that failed as a whole is not counted, and is run again after a back-off.
pub async fn run_until_stopped<E, C>(
    syncer: Arc<Syncer<E, C>>,
    interval: Duration,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
) -> Result<u64, PassError>
where
    E: MailboxSide + 'static,
    C: CrmSide + 'static,
{
    run_reporting(syncer, interval, metrics, stop, |_| {}).await
}

/// [`run_until_stopped`], telling `on_pass` of each pass as it ends (the demo prints them).
pub async fn run_reporting<E, C>(
    syncer: Arc<Syncer<E, C>>,
    interval: Duration,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
    on_pass: impl Fn(&PassReport),
) -> Result<u64, PassError>
where
    E: MailboxSide + 'static,
    C: CrmSide + 'static,
{
    let mut passes = 0;
    let mut failures: u32 = 0;
    metrics.set(names::PASS_RETRYING, vec![], 0.0);
    loop {
        if *stop.borrow() {
            break;
        }
        let started = Instant::now();
        let options = PassOptions {
            stop: Some(stop.clone()),
            rest: interval / 2,
            ..PassOptions::default()
        };
        let wait = match syncer.run_pass(&options).await {
            Ok(report) => {
                if failures > 0 {
                    tracing::info!(
                        failed_attempts = failures,
                        "The pass ran again and ended; the service is ready again."
                    );
                    failures = 0;
                    metrics.set(names::PASS_RETRYING, vec![], 0.0);
                    metrics.set_failing(None);
                }
                passes += 1;
                record(&metrics, &report, started.elapsed());
                on_pass(&report);
                if report.interrupted {
                    break;
                }
                interval
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = retry_after(failures);
                let reason = reason_label(&e);
                metrics.add(
                    names::PASS_RETRIES,
                    vec![("reason", reason.to_owned())],
                    1.0,
                );
                metrics.set(names::PASS_RETRYING, vec![], 1.0);
                metrics.set_failing(Some(format!(
                    "the last pass failed ({failures} in a row) and runs again in {} s: {e}",
                    wait.as_secs()
                )));
                tracing::error!(
                    error = %e,
                    attempt = failures,
                    retry_in_secs = wait.as_secs(),
                    "The pass failed as a whole and committed nothing past its last finished \
                     user; it runs again after the wait. If the state database is down, start \
                     it; the service reconnects by itself."
                );
                wait
            }
        };
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
    }
    tracing::info!(passes, "Sync service stopped.");
    Ok(passes)
}

/// The `direction` label of a write to `on`.
fn direction(on: Side) -> &'static str {
    match on {
        Side::Exchange => "to_exchange",
        Side::Crm => "to_crm",
    }
}

/// Logs a pass and adds it to the metrics.
pub fn record(metrics: &Metrics, report: &PassReport, took: Duration) {
    if report.disabled {
        tracing::info!("Sync is switched off in the console; nothing to do.");
        return;
    }
    metrics.observe(names::PASS_SECONDS, vec![], took.as_secs_f64());
    let now = unix_seconds(SystemTime::now());
    metrics.set(names::LAST_PASS_END, vec![], now);
    if let Some(e) = &report.crm_error {
        metrics.add(names::CRM_READ_FAILURES, vec![], 1.0);
        tracing::error!(error = %e, "The CRM could not be read; no user was synced in this pass.");
        // Who is syncing is unknown in a pass that could not list the users: the user gauges
        // keep what the last complete pass said.
        return;
    }
    let mut states = [
        ("syncing", 0u64),
        ("failing", 0),
        ("paused", 0),
        ("unassigned", 0),
    ];
    let mut count_state = |state: &str| {
        if let Some((_, n)) = states.iter_mut().find(|(s, _)| *s == state) {
            *n += 1;
        }
    };
    let mut paused = 0;
    for user in &report.users {
        let who = user
            .user
            .as_ref()
            .map(|u| u.to_string())
            .unwrap_or_default();
        let c = user.counts;
        for ((kind, on, op), n) in &user.written {
            let labels = vec![
                ("kind", kind.as_str().to_owned()),
                ("direction", direction(*on).to_owned()),
                ("op", (*op).to_owned()),
            ];
            metrics.add(names::ITEMS_SYNCED, labels, *n as f64);
        }
        for (to, n) in &user.cut {
            let labels = vec![("direction", direction(*to).to_owned())];
            metrics.add(names::RECORDS_CUT, labels, *n as f64);
        }
        count_state(if user.paused.is_some() {
            "paused"
        } else if user.error.is_some() {
            "failing"
        } else {
            "syncing"
        });
        if user.error.is_none() && user.paused.is_none() {
            metrics.set(names::USER_LAST_SUCCESS, vec![("user", who.clone())], now);
        }
        metrics.add(names::ITEM_FAILURES, vec![], c.failures as f64);
        metrics.add(names::CONFLICTS, vec![], c.conflicts as f64);
        metrics.add(names::RECOVERED_WRITES, vec![], user.recovered_pairs as f64);
        for notice in &user.notices {
            metrics.add(names::NOTICES, vec![("code", notice.code.clone())], 1.0);
        }
        metrics.add(
            names::UNCERTAIN_CREATES,
            vec![],
            user.uncertain_creates as f64,
        );
        if user.recovered_pairs > 0 || user.uncertain_creates > 0 {
            tracing::warn!(
                user = %who,
                recovered = user.recovered_pairs,
                uncertain = user.uncertain_creates,
                "An interrupted pass left writes in the journal; they were settled before this pass planned."
            );
        }
        if user.paused.is_some() {
            paused += 1;
        }
        // One line per user and pass: what it did, and why it failed when it did.
        match &user.error {
            Some(e) => {
                metrics.add(names::USER_PASS_ERRORS, vec![], 1.0);
                tracing::warn!(
                    user = %who,
                    created = c.created,
                    updated = c.updated,
                    deleted = c.deleted,
                    conflicts = c.conflicts,
                    failures = c.failures,
                    error = %e,
                    "User pass failed; its records are retried next pass."
                );
            }
            None => tracing::info!(
                user = %who,
                created = c.created,
                updated = c.updated,
                deleted = c.deleted,
                conflicts = c.conflicts,
                failures = c.failures,
                "User pass done."
            ),
        }
    }
    for skipped in &report.skipped_crm_users {
        // Debug formatting quotes and escapes the address, which is whatever the CRM holds.
        tracing::warn!(
            crm_user = %skipped.crm_id,
            address = ?skipped.address,
            reason = %skipped.reason,
            "CRM user not synced."
        );
    }
    for (_, why) in &report.skipped {
        if why.starts_with("paused") {
            paused += 1;
            count_state("paused");
        }
    }
    for (user, why) in &report.missing_users {
        count_state("unassigned");
        tracing::warn!(user = %user, reason = %why, "Configured user not synced.");
    }
    for (state, n) in states {
        metrics.set(names::USERS, vec![("state", state.to_owned())], n as f64);
    }
    metrics.set(names::PAUSED_USERS, vec![], paused as f64);
    metrics.set(
        names::SKIPPED_CRM_USERS,
        vec![],
        report.skipped_crm_users.len() as f64,
    );
    tracing::info!(
        users = report.users.len(),
        skipped = report.skipped.len(),
        seconds = took.as_secs_f64(),
        interrupted = report.interrupted,
        "Pass done."
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use exsync_store::CrmUserSkip;

    #[test]
    fn a_failed_pass_waits_longer_each_time_up_to_the_cap() {
        let waits: Vec<u64> = (1..=8).map(|n| retry_after(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(retry_after(u32::MAX), RETRY_CAP);
    }

    #[test]
    fn crm_users_left_out_reach_the_metrics() {
        let metrics = Metrics::default();
        let report = PassReport {
            skipped_crm_users: vec![CrmUserSkip {
                crm_id: "005A".into(),
                address: "a b@contoso.test".into(),
                reason: "not an address".into(),
            }],
            ..PassReport::default()
        };
        record(&metrics, &report, Duration::from_millis(5));
        assert!(
            metrics.render().contains("exsync_crm_users_skipped 1"),
            "{}",
            metrics.render()
        );
        record(&metrics, &PassReport::default(), Duration::from_millis(5));
        assert!(metrics.render().contains("exsync_crm_users_skipped 0"));
    }
}
