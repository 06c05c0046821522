//! The CRM's API allowance is one budget for all workers: three `exsync run` processes on one
//! PostgreSQL database, against a Salesforce simulator with only a few calls left above the
//! reserve, spend no more than that between them, although each would on its own send its
//! first call before any reply told it the allowance, and later calls on counts the others
//! have already overtaken. When the org's allowance grows they go on, and stop again at the
//! new limit; every refusal is said, with its fix, and counted.

use std::path::Path;
use std::time::{Duration, Instant};

use exsync_engine::sync::mailboxes::Backend;
use exsync_lab::{Lab, Seed};
use reqwest::Method;
use serde_json::json;

use super::run::get;
use super::workers::{exsync_status, lab, Worker};

/// The share of the allowance kept for the org's other integrations.
const RESERVE: f64 = 0.5;

/// Calls the simulator counted, and its allowance.
async fn counted(lab: &Lab) -> (u64, u64) {
    let limits = lab
        .crm_control(Method::GET, "/limits", &json!({}))
        .await
        .unwrap();
    (
        limits["used"].as_u64().unwrap(),
        limits["max"].as_u64().unwrap(),
    )
}

/// Waits until the simulator has counted `calls`.
async fn spent(lab: &Lab, calls: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while counted(lab).await.0 < calls {
        assert!(
            Instant::now() < deadline,
            "the workers did not spend the allowance: {:?}",
            counted(lab).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Calls the workers together may make: the allowance less the reserve.
fn limit(max: u64) -> u64 {
    max - (max as f64 * RESERVE) as u64
}

/// Refusals of the shared budget each worker's /metrics counted.
async fn refusals(workers: &[Worker]) -> Vec<u64> {
    let mut out = Vec::new();
    for worker in workers {
        let text = get(&worker.metrics, "/metrics").await.unwrap_or_default();
        let n = text
            .lines()
            .find_map(|l| l.strip_prefix("exsync_crm_budget_refusals_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        out.push(n as u64);
    }
    out
}

/// Waits until the workers together have been refused more than `before` times.
async fn refused_again(workers: &[Worker], before: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now: u64 = refusals(workers).await.iter().sum();
        if now > before {
            return now;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = workers.iter().map(Worker::log).collect();
            panic!("no refusal after {before}:\n{}", logs.join("\n----\n"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn with_reserve(config: &Path) {
    let text = std::fs::read_to_string(config).unwrap().replacen(
        "api_reserve = 0.0",
        &format!("api_reserve = {RESERVE}"),
        1,
    );
    std::fs::write(config, text).unwrap();
}

async fn workers_together_spend_no_more_of_the_crm_allowance_than_is_left(backend: Backend) {
    let Some(db) = exsync_testkit::postgres::database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let seed = Seed {
        crm_contacts: 6,
        crm_events: 2,
        exchange_contacts: 2,
        exchange_events: 1,
        invalid_record: false,
    };
    let (lab, config) = lab(db.url(), dir.path(), 6, &seed, backend).await;
    with_reserve(&config);
    // Two calls left above the reserve: three workers each sending a first call unchecked
    // would spend three.
    let max = 400;
    let start = limit(max) - 2;
    lab.crm_control(
        Method::POST,
        "/limits",
        &json!({ "max": max, "used": start }),
    )
    .await
    .unwrap();

    let workers: Vec<Worker> = (0..3)
        .map(|i| Worker::spawn(&config, dir.path().join(format!("worker{i}.log")), &[]))
        .collect();
    spent(&lab, limit(max)).await;
    // Time for more calls, had any worker a way past the budget.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (used, _) = counted(&lab).await;
    assert_eq!(used, limit(max), "the simulator counted {used} calls");
    let seen = refused_again(&workers, 1).await;
    assert_eq!(
        db.psql("SELECT used || '/' || max || '-' || reserve FROM call_budgets"),
        format!("{}/{max}-{}", limit(max), max - limit(max))
    );

    // The org's allowance grows: the workers learn it from their next look at /limits, spend
    // the new calls between them (part of the first sync), and stop at the new limit.
    let max = 440;
    lab.crm_control(Method::POST, "/limits", &json!({ "max": max }))
        .await
        .unwrap();
    spent(&lab, limit(max)).await;
    refused_again(&workers, seen).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (used, _) = counted(&lab).await;
    assert_eq!(used, limit(max), "the simulator counted {used} calls");

    // Said with the reason and the fix, in the log and, for a user whose pass it cut short,
    // in `exsync status` (which cuts long errors short).
    let logs: Vec<String> = workers.iter().map(Worker::log).collect();
    let said = logs
        .iter()
        .any(|l| l.contains("shared API budget is spent") && l.contains("fix: wait"));
    assert!(said, "{}", logs.join("\n----\n"));
    let status = exsync_status(&config);
    assert!(
        status.contains("failing") && status.contains("the workers' shared API bu"),
        "{status}\n{}",
        logs.join("\n----\n")
    );
    // The passes that got that far reached the mailboxes on `backend`.
    let served: Vec<String> = lab
        .users
        .iter()
        .filter_map(|u| {
            let runs = lab.syncer.store.runs(&u.key, 10).unwrap();
            runs.into_iter().find_map(|r| r.backend)
        })
        .collect();
    assert!(
        !served.is_empty() && served.iter().all(|b| b == backend.as_str()),
        "{served:?}"
    );
}

crate::on_each_backend!(workers_together_spend_no_more_of_the_crm_allowance_than_is_left,);
