//! Crash safety: the `exsync sync` process is killed with SIGKILL at many points of a first
//! sync and of incremental passes, restarted, and both sides must end equal, with nothing lost
//! and nothing copied twice; on each mailbox backend (EWS and Graph).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{shared_key, MASTER_KEY};
use exsync_core::ItemKind;
use exsync_engine::sync::mailboxes::Backend;
use exsync_lab::{crm_contact, Lab, Seed};
use serde_json::json;

async fn lab(dir: &Path, seed: &Seed, backend: Backend) -> (Lab, PathBuf) {
    let mut options = crate::lab_options(dir, 2, backend);
    options.crm_key_pem = Some(shared_key());
    let lab = Lab::start(options).await.unwrap();
    lab.seed(seed).await.unwrap();
    let config = dir.join("exsync.toml");
    lab.write_config(&config, MASTER_KEY).unwrap();
    (lab, config)
}

fn spawn_sync(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_exsync"))
        .args(["sync", "--config"])
        .arg(config)
        .env("EXSYNC_MASTER_KEY", MASTER_KEY)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("exsync runs")
}

/// Runs a pass to the end; returns how long it took.
async fn sync_to_end(config: &Path) -> Duration {
    // The CRM connector leaves the last second's records for the next pass.
    tokio::time::sleep(SETTLE).await;
    let started = Instant::now();
    let output = spawn_sync(config).wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "exsync sync failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    started.elapsed()
}

/// Starts a pass and SIGKILLs it after `delay`; true if it was still running.
async fn sync_killed_after(config: &Path, delay: Duration) -> bool {
    let mut child = spawn_sync(config);
    tokio::time::sleep(delay).await;
    let running = child.try_wait().unwrap().is_none();
    if running {
        child.kill().unwrap(); // SIGKILL on Unix: no chance to clean up.
    }
    let _ = child.wait();
    running
}

async fn assert_converged(lab: &Lab, config: &Path) {
    // Two complete passes: the first finishes the interrupted work, the second sees the echoes.
    sync_to_end(config).await;
    sync_to_end(config).await;
    let check = lab.convergence().await.unwrap();
    assert!(check.converged(), "{:#?}", check.problems);
    assert_eq!(check.unresolved, 0);
}

const POINTS: u32 = 20;

/// The lab's CRM connector leaves records stamped in the last second for the next pass.
const SETTLE: Duration = Duration::from_millis(1100);

async fn a_first_sync_killed_at_any_point_converges_without_duplicates(backend: Backend) {
    let seed = Seed {
        crm_contacts: 40,
        crm_events: 15,
        exchange_contacts: 15,
        exchange_events: 6,
        invalid_record: false,
    };
    // How long an uninterrupted first sync takes, to spread the kill points over it.
    let calibration = tempfile::tempdir().unwrap();
    let (_calibration_lab, config) = lab(calibration.path(), &seed, backend).await;
    let mut full = sync_to_end(&config).await;
    // Kill points spread over the pass, until 20 kills have landed inside one. A pass's length
    // varies with the machine's load: a kill that lands after the pass ended shortens the
    // span the points are spread over, so a calibration on a busy machine cannot starve it.
    let mut interrupted = 0;
    let mut attempt = 0;
    while interrupted < POINTS {
        attempt += 1;
        assert!(
            attempt <= 3 * POINTS,
            "only {interrupted} of {attempt} kills landed inside a pass"
        );
        let dir = tempfile::tempdir().unwrap();
        let (lab, config) = lab(dir.path(), &seed, backend).await;
        tokio::time::sleep(SETTLE).await;
        let point = full * (attempt % (POINTS + 1)) / (POINTS + 2);
        if sync_killed_after(&config, point).await {
            interrupted += 1;
        } else {
            full = full * 3 / 4;
        }
        assert_converged(&lab, &config).await;
        let check = lab.convergence().await.unwrap();
        assert_eq!(
            check.pairs,
            2 * (40 + 15 + 15 + 6),
            "attempt {attempt}: every record paired once"
        );
    }
}

async fn incremental_passes_killed_at_any_point_lose_nothing(backend: Backend) {
    let seed = Seed {
        crm_contacts: 30,
        crm_events: 10,
        exchange_contacts: 10,
        exchange_events: 4,
        invalid_record: false,
    };
    let dir = tempfile::tempdir().unwrap();
    let (lab, config) = lab(dir.path(), &seed, backend).await;
    sync_to_end(&config).await;
    sync_to_end(&config).await;
    // How long an incremental pass with this round's edits takes.
    let mut full = Duration::ZERO;
    let mut interrupted = 0;
    for round in 0..=POINTS {
        // Each round: an edit on each side for every user, and a new contact on each side.
        for (u, user) in lab.users.iter().enumerate() {
            let title = format!("Round {round}");
            lab.edit_crm(
                user,
                ItemKind::Contact,
                &crm_contact(u, round as usize).last_name,
                |f| {
                    f.insert("title".into(), json!(title));
                },
            )
            .await
            .unwrap();
            lab.edit_exchange(
                user,
                ItemKind::Contact,
                &crm_contact(u, 29 - round as usize % 10).last_name,
                |f| {
                    f.insert("department".into(), json!(format!("Dept {round}")));
                },
            )
            .await
            .unwrap();
        }
        if round == 0 {
            full = sync_to_end(&config).await;
            continue;
        }
        tokio::time::sleep(SETTLE).await;
        if sync_killed_after(&config, full * round / (POINTS + 1)).await {
            interrupted += 1;
        } else {
            // The pass ended first: this machine is faster now than when it was timed.
            full = full * 3 / 4;
        }
    }
    assert_converged(&lab, &config).await;
    // The last edits of each side reached the other side.
    for (u, user) in lab.users.iter().enumerate() {
        let last = crm_contact(u, POINTS as usize).last_name;
        let item = lab
            .exchange_item(user, ItemKind::Contact, &last)
            .await
            .unwrap();
        assert_eq!(item.fields["title"], format!("Round {POINTS}"));
        let edited = crm_contact(u, 29 - POINTS as usize % 10).last_name;
        let record = lab
            .crm_record(user, ItemKind::Contact, &edited)
            .await
            .unwrap();
        assert_eq!(record.fields["department"], format!("Dept {POINTS}"));
    }
    assert!(
        interrupted >= POINTS / 2,
        "only {interrupted} of {POINTS} kills landed inside a pass"
    );
}

crate::on_each_backend!(
    a_first_sync_killed_at_any_point_converges_without_duplicates,
    incremental_passes_killed_at_any_point_lose_nothing,
);
