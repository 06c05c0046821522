//! Workers ride over a restart of their PostgreSQL: the database is stopped in the middle of a
//! first sync shared by three `exsync run` processes and started again on the same port and
//! data a few seconds later. The workers stay up, report themselves not ready while it is
//! away, reconnect, redo what the outage cut short, and finish: nothing lost, nothing copied
//! twice, both sides converged.

use std::time::{Duration, Instant};

use exsync_engine::sync::mailboxes::Backend;
use exsync_lab::Seed;
use exsync_testkit::postgres::StopMode;

use super::run::get;
use super::workers::{converged, lab, nothing_lost_nothing_doubled, Worker};

/// How long the database stays away: longer than a lease, so leases lapse while it is down.
const OUTAGE: Duration = Duration::from_secs(4);

async fn workers_reconnect_after_a_database_restart_mid_sync_and_finish(backend: Backend) {
    let Some(mut cluster) = exsync_testkit::postgres::own_cluster() else {
        return;
    };
    cluster.create_database("restart").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let seed = Seed {
        crm_contacts: 10,
        crm_events: 4,
        exchange_contacts: 4,
        exchange_events: 2,
        invalid_record: false,
    };
    let (lab, config) = lab(cluster.url("restart"), dir.path(), 6, &seed, backend).await;
    let workers: Vec<Worker> = (0..3)
        .map(|i| Worker::spawn(&config, dir.path().join(format!("worker{i}.log")), &[]))
        .collect();

    // Mid-sync: some user has committed, and others are still to do or held.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "no user finished");
        let done: usize = cluster
            .psql("restart", "SELECT count(DISTINCT user_key) FROM runs")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if done >= 1 {
            assert!(done < lab.users.len(), "the sync ended before the restart");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.stop(StopMode::Fast).unwrap();
    let stopped = Instant::now();

    // While it is away, every worker stays up and says it is not ready, and why.
    let mut not_ready = vec![false; workers.len()];
    while stopped.elapsed() < OUTAGE {
        for (i, worker) in workers.iter().enumerate() {
            if let Some(text) = get(&worker.metrics, "/readyz").await {
                if text.starts_with("HTTP/1.1 503") && text.contains("state database") {
                    not_ready[i] = true;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(not_ready.iter().all(|n| *n), "{not_ready:?}");
    cluster.start_again().unwrap();

    let all: Vec<&Worker> = workers.iter().collect();
    converged(&lab, &all, Duration::from_secs(120)).await;
    nothing_lost_nothing_doubled(&lab, 10 + 4 + 4 + 2, backend).await;

    // No worker ended: they waited, reconnected and went on; the outage cut at least one pass
    // short, and that was said, and counted.
    let mut workers = workers;
    for worker in &mut workers {
        assert!(
            worker.child.try_wait().unwrap().is_none(),
            "a worker ended:\n{}",
            worker.log()
        );
    }
    let logs: Vec<String> = workers.iter().map(Worker::log).collect();
    assert!(
        logs.iter()
            .any(|l| l.contains("The pass failed as a whole") && l.contains("runs again")),
        "{}",
        logs.join("\n----\n")
    );
    // Ready again once a pass ran to its end; the retry is in the metrics.
    let deadline = Instant::now() + Duration::from_secs(60);
    for worker in &workers {
        loop {
            let text = get(&worker.metrics, "/readyz").await.unwrap_or_default();
            if text.starts_with("HTTP/1.1 200") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "not ready again: {text}\n{}",
                worker.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let mut retried = 0;
    for worker in &workers {
        let metrics = get(&worker.metrics, "/metrics").await.unwrap_or_default();
        assert!(metrics.contains("exsync_pass_retrying 0"), "{metrics}");
        if metrics.contains("exsync_pass_retries_total{reason=\"state_database\"}") {
            retried += 1;
        }
    }
    assert!(retried > 0, "no worker counted a retry");
}

crate::on_each_backend!(workers_reconnect_after_a_database_restart_mid_sync_and_finish,);
