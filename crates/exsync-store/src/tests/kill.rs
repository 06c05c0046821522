//! Crash safety: the test binary re-runs itself as a child that commits one pass, starts the
//! next, stops inside its transaction and is killed with SIGKILL. The database must then hold
//! exactly the first pass, and take writes again.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use exsync_core::plan::Conflict;
use exsync_core::{CrmId, ExchangeId, ItemId, ItemKind, Side};
use serde_json::{json, Value};

use super::*;
use crate::sqlite::CommitStep;
use crate::ConflictEntry;

const CHILD_DB: &str = "EXSYNC_STORE_KILL_CHILD_DB";
const CHILD_STEP: &str = "EXSYNC_STORE_KILL_CHILD_STEP";
const CHILD_READY: &str = "EXSYNC_STORE_KILL_CHILD_READY";

const STEPS: [CommitStep; 5] = [
    CommitStep::Removals,
    CommitStep::Upserts,
    CommitStep::Cursors,
    CommitStep::Unresolved,
    CommitStep::Run,
];

fn step_name(step: CommitStep) -> &'static str {
    match step {
        CommitStep::Removals => "removals",
        CommitStep::Upserts => "upserts",
        CommitStep::Cursors => "cursors",
        CommitStep::Unresolved => "unresolved",
        CommitStep::Run => "run",
    }
}

fn first_passes() -> Vec<PassCommit> {
    let alice = user("alice");
    let bob = user("bob");
    let mut a = commit(&alice, 0);
    a.upserts = vec![
        contact("003A", "X1", "Lovelace"),
        contact("003B", "X2", "Babbage"),
        contact("003C", "X3", "Cray"),
        event("00UA", "Y1", "Kick-off"),
    ];
    a.cursors = vec![
        set_cursor(CursorScope::folder(&alice, "contacts"), "alice-s1"),
        set_cursor(CursorScope::folder(&alice, "calendar"), "alice-s1"),
        set_cursor(
            CursorScope::crm_object("Contact"),
            "2026-09-21T10:00:00.000+0000",
        ),
    ];
    a.unresolved = vec![
        failing(
            ItemKind::Contact,
            ItemId::Crm(CrmId::new("003Z")),
            "FIELD_TOO_LONG: Title",
        ),
        failing(
            ItemKind::Contact,
            ItemId::Exchange(ExchangeId::new("X8")),
            "invalid e-mail address",
        ),
    ];
    a.crm_writes = vec![echo("003A", "2026-09-21T10:00:01.000+0000", t(3))];
    a.counts = RunCounts {
        created: 4,
        failures: 2,
        ..RunCounts::default()
    };

    let mut b = commit(&bob, 10);
    b.upserts = vec![contact("003A", "BX1", "Lovelace")];
    b.cursors = vec![set_cursor(CursorScope::folder(&bob, "contacts"), "bob-s1")];
    b.counts.created = 1;
    vec![a, b]
}

/// Touches every table a pass writes: removals, updates, inserts, a cursor moved, one
/// cleared, unresolved items cleared and added, a conflict, an echo write, a pause.
fn second_pass() -> PassCommit {
    let alice = user("alice");
    let mut p = commit(&alice, 100);
    p.removals = vec![key(&contact("003C", "X3", ""))];
    p.upserts = vec![
        contact("003A", "X1", "King"),
        contact("003D", "X4", "Dijkstra"),
        contact("003Z", "X9", "Zuse"),
    ];
    p.cursors = vec![
        set_cursor(CursorScope::folder(&alice, "contacts"), "alice-s2"),
        CursorAdvance {
            scope: CursorScope::folder(&alice, "calendar"),
            value: None,
        },
        set_cursor(
            CursorScope::crm_object("Contact"),
            "2026-09-21T11:00:00.000+0000",
        ),
    ];
    p.unresolved = vec![
        failing(
            ItemKind::Contact,
            ItemId::Exchange(ExchangeId::new("X8")),
            "invalid e-mail address",
        ),
        failing(
            ItemKind::Event,
            ItemId::Exchange(ExchangeId::new("Y7")),
            "ErrorCalendarDurationIsTooLong",
        ),
    ];
    p.conflicts = vec![ConflictEntry {
        kind: ItemKind::Contact,
        crm_id: CrmId::new("003A"),
        exchange_id: ExchangeId::new("X1"),
        conflict: Conflict {
            field: "last_name".into(),
            crm_value: Some(json!("King")),
            exchange_value: Some(json!("Byron")),
            winner: Side::Crm,
            first_link: false,
        },
        name: None,
    }];
    p.crm_writes = vec![echo("003D", "2026-09-21T11:00:02.000+0000", t(103))];
    p.counts = RunCounts {
        created: 2,
        updated: 1,
        deleted: 1,
        conflicts: 1,
        failures: 2,
    };
    p.pause = Some("would delete 60% of contacts".into());
    p
}

fn reference(with_second: bool) -> Value {
    let (_dir, store) = temp_store();
    for pass in first_passes() {
        store.commit_pass(&pass).unwrap();
    }
    if with_second {
        store.commit_pass(&second_pass()).unwrap();
    }
    dump(&store)
}

/// Child mode: does nothing unless the parent test launched this binary with the variables.
#[test]
fn kill_child() {
    let (Ok(db), Ok(step), Ok(ready)) = (
        std::env::var(CHILD_DB),
        std::env::var(CHILD_STEP),
        std::env::var(CHILD_READY),
    ) else {
        return;
    };
    let target = STEPS
        .into_iter()
        .find(|s| step_name(*s) == step)
        .expect("known step");
    let ready = PathBuf::from(ready);
    let mut store = SqliteStore::open(&db).unwrap();
    for pass in first_passes() {
        store.commit_pass(&pass).unwrap();
    }
    let baseline = store.total_changes();
    let signal = ready.clone();
    store.set_commit_hook(Box::new(move |step, conn| {
        if step != target {
            return;
        }
        let written = conn.total_changes() - baseline;
        let tmp = signal.with_extension("tmp");
        fs::write(&tmp, format!("blocked {written}")).unwrap();
        fs::rename(&tmp, &signal).unwrap();
        // Wait to be killed; give up eventually so an orphan cannot linger.
        for _ in 0..120 {
            std::thread::sleep(Duration::from_secs(1));
        }
        std::process::exit(3);
    }));
    store.commit_pass(&second_pass()).unwrap();
    fs::write(&ready, "completed").unwrap();
}

fn wait_for_ready(child: &mut std::process::Child, ready: &Path, log: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = fs::read_to_string(ready) {
            return text;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "child exited early ({status}):\n{}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "child never reached its stop point"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_pass_killed_mid_transaction_leaves_the_previous_pass_intact() {
    let after_first = reference(false);
    let after_second = reference(true);
    assert_ne!(after_first, after_second);
    let exe = std::env::current_exe().unwrap();

    for step in STEPS {
        let name = step_name(step);
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let ready = dir.path().join("ready");
        let log = dir.path().join("child.log");
        let log_file = fs::File::create(&log).unwrap();
        let mut child = Command::new(&exe)
            .args([
                "tests::kill::kill_child",
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_DB, &db)
            .env(CHILD_STEP, name)
            .env(CHILD_READY, &ready)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap();

        let signal = wait_for_ready(&mut child, &ready, &log);
        let written: u64 = signal
            .strip_prefix("blocked ")
            .unwrap_or_else(|| {
                panic!("{name}: child did not stop inside the transaction: {signal}")
            })
            .parse()
            .unwrap();
        assert!(
            written > 0,
            "{name}: the second pass had written nothing yet"
        );

        // WAL: another connection reads the last committed state while the write is open.
        let reader = SqliteStore::open(&db).unwrap();
        assert_eq!(
            dump(&reader),
            after_first,
            "{name}: a reader sees only the first pass"
        );
        drop(reader);

        child.kill().unwrap();
        let status = child.wait().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(9), "{name}: killed by SIGKILL");
        }
        #[cfg(not(unix))]
        assert!(!status.success());

        let store = SqliteStore::open(&db).unwrap();
        assert_eq!(
            dump(&store),
            after_first,
            "{name}: exactly the first pass survives"
        );
        let check: String = store
            .with_conn(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(check, "ok", "{name}");
        store.commit_pass(&second_pass()).unwrap();
        assert_eq!(
            dump(&store),
            after_second,
            "{name}: the retried pass commits normally"
        );
    }
}
