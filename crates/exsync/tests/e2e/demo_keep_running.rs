//! `exsync demo --keep-running` keeps syncing every poll interval, as `exsync run` does: a
//! contact made in the CRM simulator after the demo's own passes reaches the user's mailbox
//! within the interval, and the pass that carried it is printed. SIGTERM stops it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use exsync_core::Contact;
use exsync_salesforce::{NewRecord, SalesforceClient};
use exsync_sim::salesforce::SimInfo;
use serde_json::Value;

/// The user whose mailbox the demo keeps on premises (the others go online).
const USER: &str = "user1@contoso.test";

fn crm(dir: &Path) -> SalesforceClient {
    let text = std::fs::read_to_string(dir.join("salesforce/sim.json")).unwrap();
    let info: SimInfo = serde_json::from_str(&text).unwrap();
    SalesforceClient::new(super::salesforce_config(&info)).unwrap()
}

/// How many items the user's contact sync folder holds in the Exchange simulator.
async fn synced_contacts(dir: &Path) -> u64 {
    let text = std::fs::read_to_string(dir.join("exchange/sim.json")).unwrap();
    let info: Value = serde_json::from_str(&text).unwrap();
    let ca = std::fs::read(info["ca_cert"].as_str().unwrap()).unwrap();
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let state: Value = http
        .get(format!("{}/state", info["control_url"].as_str().unwrap()))
        .bearer_auth(info["control_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mailbox = state["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["address"] == USER)
        .unwrap_or_else(|| panic!("no {USER}: {state:#}"));
    mailbox["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Salesforce_Sync")
        .and_then(|f| f["items"].as_u64())
        .unwrap_or_else(|| panic!("no sync folder: {mailbox:#}"))
}

/// Waits for a line of the demo's output that `wanted` accepts; returns the lines read.
fn read_until(
    lines: &mpsc::Receiver<String>,
    wanted: impl Fn(&str) -> bool,
    within: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let done = wanted(&line);
                seen.push(line);
                if done {
                    return seen;
                }
            }
            Err(_) => panic!(
                "not seen within {within:?}; the demo printed:\n{}",
                seen.join("\n")
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kept_demo_syncs_a_change_made_after_its_passes_within_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let mut child = Command::new(env!("CARGO_BIN_EXE_exsync"))
        .args([
            "demo",
            "--keep-running",
            "--users",
            "3",
            "--contacts",
            "5",
            "--events",
            "1",
            "--poll-interval",
            "2",
            "--data-dir",
        ])
        .arg(&data)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    read_until(
        &lines,
        |l| l.starts_with("  syncing every 2s"),
        Duration::from_secs(180),
    );
    // The service's first pass runs at once: it finds nothing new.
    let first = read_until(
        &lines,
        |l| l.starts_with("pass at "),
        Duration::from_secs(30),
    );
    assert!(
        first
            .last()
            .unwrap()
            .contains(" 0 created, 0 updated, 0 deleted, 0 failing"),
        "{first:?}"
    );

    let before = synced_contacts(&data).await;
    let client = crm(&data);
    let owner = client
        .users()
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.email == USER)
        .unwrap();
    let made = client
        .create_contacts(&[NewRecord {
            external_key: None,
            owner_id: Some(owner.id.clone()),
            record: Contact {
                first_name: "Kept".into(),
                last_name: "Running".into(),
                emails: vec!["kept.running@customer.test".into()],
                ..Contact::default()
            },
        }])
        .await
        .unwrap();
    assert!(made[0].error.is_none(), "{made:?}");

    // Two intervals: the record must settle for a second before a pass reads it.
    let carried = read_until(
        &lines,
        |l| l.starts_with("pass at ") && l.contains(": 3 users, 1 created,"),
        Duration::from_secs(20),
    );
    assert_eq!(synced_contacts(&data).await, before + 1, "{carried:?}");

    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let stopping = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            stopping.elapsed() < Duration::from_secs(20),
            "still running after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    read_until(
        &lines,
        |l| l.starts_with("Stopped after "),
        Duration::from_secs(5),
    );
}
