//! What exsync writes holds every synced contact and event (the state database and its WAL,
//! wire traces) or secrets (the demo's simulators): none of it is readable by the group or
//! others, whatever umask exsync was started with, whichever backend serves the mailbox.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::MASTER_KEY;
use exsync_engine::sync::mailboxes::Backend;
use exsync_lab::{Lab, Seed};

/// Every file and folder under `dir`, with its permission bits.
fn entries(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        out.push((path.clone(), meta.permissions().mode() & 0o777));
        if meta.is_dir() {
            out.extend(entries(&path));
        }
    }
    out
}

fn shared(found: &[(PathBuf, u32)]) -> Vec<String> {
    found
        .iter()
        .filter(|(_, mode)| mode & 0o077 != 0)
        .map(|(path, mode)| format!("{} is {mode:o}", path.display()))
        .collect()
}

#[test]
fn a_demo_run_leaves_nothing_readable_by_others() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    // The umask a shell usually hands down: exsync must not rely on a stricter one.
    let output = Command::new("/bin/sh")
        .arg("-c")
        .arg("umask 022 && exec \"$0\" demo --users 1 --contacts 5 --events 2 --data-dir \"$1\"")
        .arg(env!("CARGO_BIN_EXE_exsync"))
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // SQLite removes the WAL and shared-memory files when the last connection closes; the
    // pass below looks at them while they exist.
    let found = entries(&data);
    assert!(
        found.iter().any(|(p, _)| p.ends_with("exsync.db")),
        "{found:?}"
    );
    assert!(found.len() > 5, "{found:?}");
    let shared = shared(&found);
    assert!(shared.is_empty(), "{shared:#?}");
}

/// The state database and its WAL, after an `exsync sync` started with umask 022, on either
/// backend; on premises the wire traces too (Graph keeps none).
async fn the_state_database_and_wire_traces_of_a_pass_are_private(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let lab_dir = dir.path().join("lab");
    let mut options = crate::lab_options(&lab_dir, 1, backend);
    let traced = backend == Backend::Ews;
    if traced {
        options.exchange_trace = Some(trace.clone());
    }
    let lab = Lab::start(options).await.unwrap();
    lab.seed(&Seed {
        crm_contacts: 2,
        crm_events: 1,
        exchange_contacts: 1,
        exchange_events: 1,
        invalid_record: false,
    })
    .await
    .unwrap();
    let config = dir.path().join("exsync.toml");
    lab.write_config(&config, MASTER_KEY).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let output = Command::new("/bin/sh")
        .arg("-c")
        .arg("umask 022 && exec \"$0\" sync --config \"$1\"")
        .arg(env!("CARGO_BIN_EXE_exsync"))
        .arg(&config)
        .env("EXSYNC_MASTER_KEY", MASTER_KEY)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    crate::served_by(&lab, backend);
    let mut found = Vec::new();
    if traced {
        // The service's trace (written by the exsync binary) and the lab's own connector's
        // (written by the library in this test process, whose umask is the caller's).
        for ours in ["service", "client"] {
            let path = trace.join(ours);
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            found.push((path.clone(), mode));
            let inside = entries(&path);
            assert!(!inside.is_empty(), "nothing traced in {}", path.display());
            found.extend(inside);
        }
    }
    found.extend(entries(&lab_dir).into_iter().filter(|(p, _)| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("exsync.db"))
    }));
    assert!(
        found.iter().any(|(p, _)| p.ends_with("exsync.db-wal")),
        "{found:?}"
    );
    let shared = shared(&found);
    assert!(shared.is_empty(), "{shared:#?}");
}

crate::on_each_backend!(the_state_database_and_wire_traces_of_a_pass_are_private);
