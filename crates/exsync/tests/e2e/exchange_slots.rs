//! Exchange's cap on the service account's requests in flight holds for all workers together:
//! three `exsync run` processes on one PostgreSQL database, each allowed
//! `exchange.max_concurrency = 2` on its own, never have more than two requests in flight at
//! once between them, and still finish a first sync of every user. Each would send up to two
//! at once without the slots they share through the database.

use std::time::{Duration, Instant};

use exsync_engine::sync::mailboxes::Backend;
use exsync_lab::Seed;
use reqwest::Method;
use serde_json::json;

use super::run::get;
use super::workers::{all_ran, converged, lab, nothing_lost_nothing_doubled, Worker};

const MAX_CONCURRENCY: u64 = 2;
const USERS: usize = 9;

// EWS only: the slots share exchange.max_concurrency, which only EWS requests draw on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_together_keep_to_exchange_max_concurrency() {
    let Some(db) = exsync_testkit::postgres::database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let seed = Seed {
        crm_contacts: 3,
        crm_events: 1,
        exchange_contacts: 2,
        exchange_events: 1,
        invalid_record: false,
    };
    let (lab, config) = lab(db.url(), dir.path(), USERS, &seed, Backend::Ews).await;
    // Several users per worker at once, so each worker alone would use its whole cap.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replacen(
            "[exchange]\n",
            &format!("[exchange]\nmax_concurrency = {MAX_CONCURRENCY}\n"),
            1,
        )
        .replacen("worker_batch = 1\n", "worker_batch = 3\n", 1);
    std::fs::write(&config, text).unwrap();
    // Requests that take a while overlap, as they do against a real server.
    lab.exchange_control(Method::PUT, "/faults", &json!({"latency_ms": 40}))
        .await
        .unwrap();
    lab.exchange_control(Method::DELETE, "/counters", &json!({}))
        .await
        .unwrap();

    let workers: Vec<Worker> = (0..3)
        .map(|i| Worker::spawn(&config, dir.path().join(format!("worker{i}.log")), &[]))
        .collect();
    // The peak is read before the lab checks the mailboxes, which it does over EWS itself.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if all_ran(&lab) {
            break;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = workers.iter().map(Worker::log).collect();
            panic!("the workers did not finish:\n{}", logs.join("\n----\n"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let counters = lab
        .exchange_control(Method::GET, "/counters", &json!({}))
        .await
        .unwrap();
    let peak = counters["peak_requests_in_flight"].as_u64().unwrap();
    let logs: Vec<String> = workers.iter().map(Worker::log).collect();
    assert!(
        (1..=MAX_CONCURRENCY).contains(&peak),
        "{peak} requests were in flight at once: {counters}\n{}",
        logs.join("\n----\n")
    );
    // A worker that found both slots held waited and said so.
    assert!(
        logs.iter()
            .any(|l| l.contains("Waiting for a free Exchange slot")),
        "{}",
        logs.join("\n----\n")
    );
    // ... and counted the wait where an alert can see it.
    let mut waited = 0.0;
    for worker in &workers {
        let text = get(&worker.metrics, "/metrics").await.unwrap_or_default();
        waited += text
            .lines()
            .find_map(|l| l.strip_prefix("exsync_exchange_slot_wait_seconds_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
    }
    assert!(waited > 0.0, "no wait for a slot was counted in /metrics");

    let all: Vec<&Worker> = workers.iter().collect();
    converged(&lab, &all, Duration::from_secs(60)).await;
    nothing_lost_nothing_doubled(&lab, 3 + 1 + 2 + 1, Backend::Ews).await;
    // Every slot a pass took was given back or is held by a pass running now.
    let held =
        db.psql("SELECT count(*) FROM slots WHERE holder IS NOT NULL AND expires_at < now()");
    assert_eq!(held, "0", "slots left to lapse");
}
