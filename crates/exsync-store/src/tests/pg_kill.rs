//! A worker killed (SIGKILL) at any moment while it commits passes on PostgreSQL leaves whole
//! passes only: every pair, the cursor and the run history agree on the last committed pass.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::{PgOptions, PgStore, RunCounts};

const CHILD_CONNINFO: &str = "EXSYNC_TEST_PG_KILL_CONNINFO";
/// Enough pairs that a commit takes a while, so most kills land inside one.
const PAIRS: usize = 150;

fn folder() -> CursorScope {
    CursorScope::folder(&user("alice"), "contacts")
}

/// Pass `k` rewrites every pair with `V{k}`, moves the cursor to `k` and records a run.
fn pass(k: u64) -> PassCommit {
    let mut pass = commit(&user("alice"), i64::try_from(k).unwrap());
    pass.upserts = (0..PAIRS)
        .map(|i| contact(&format!("003{i:04}"), &format!("X{i:04}"), &format!("V{k}")))
        .collect();
    pass.cursors = vec![set_cursor(folder(), &k.to_string())];
    pass.counts = RunCounts {
        updated: PAIRS as u64,
        ..RunCounts::default()
    };
    pass
}

/// The last whole pass the database holds, checked for agreement; 0 before the first.
fn last_whole_pass(store: &PgStore) -> u64 {
    let alice = user("alice");
    let Some(cursor) = store.cursor(&folder()).unwrap() else {
        assert_eq!(store.pair_count(&alice, ItemKind::Contact).unwrap(), 0);
        return 0;
    };
    let k: u64 = cursor.parse().unwrap();
    let pairs = store.load_pairs(&alice, ItemKind::Contact).unwrap();
    assert_eq!(pairs.len(), PAIRS, "pass {k}: pairs missing");
    let torn: Vec<_> = pairs
        .iter()
        .filter(|p| p.content["last_name"] != serde_json::json!(format!("V{k}")))
        .map(|p| (p.crm_id.to_string(), p.content["last_name"].clone()))
        .collect();
    assert!(
        torn.is_empty(),
        "cursor at pass {k} but {} pairs of another, first {:?}",
        torn.len(),
        torn.first()
    );
    let runs = store.runs(&alice, 100_000).unwrap();
    assert_eq!(runs.len() as u64, k, "one run per committed pass");
    k
}

/// Child mode: commits passes until killed (or a minute passes, so no orphan lingers).
#[test]
fn pg_kill_child() {
    let Ok(conninfo) = std::env::var(CHILD_CONNINFO) else {
        return;
    };
    let store = PgStore::open(&PgOptions::new(conninfo)).unwrap();
    let start = store
        .cursor(&folder())
        .unwrap()
        .map_or(0, |c| c.parse::<u64>().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut k = start;
    while Instant::now() < deadline {
        k += 1;
        store.commit_pass(&pass(k)).unwrap();
    }
}

#[test]
fn a_worker_killed_at_any_moment_leaves_whole_passes_only() {
    let Some(db) = exsync_testkit::postgres::database() else {
        return;
    };
    let exe = std::env::current_exe().unwrap();
    let reader = PgStore::open(&PgOptions::new(db.conninfo())).unwrap();
    let mut last = 0;
    for round in 0..20u64 {
        let mut child = Command::new(&exe)
            .args([
                "tests::pg_kill::pg_kill_child",
                "--exact",
                "--test-threads",
                "1",
            ])
            .env(CHILD_CONNINFO, db.conninfo())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Once the child commits (however loaded the machine), kill it at a moment spread
        // over its next commits.
        let deadline = Instant::now() + Duration::from_secs(30);
        while reader.cursor(&folder()).unwrap() == (last > 0).then(|| last.to_string()) {
            assert!(Instant::now() < deadline, "the child committed nothing");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis((round * 37) % 200));
        child.kill().unwrap();
        child.wait().unwrap();
        let now = last_whole_pass(&reader);
        assert!(
            now >= last,
            "committed passes went back from {last} to {now}"
        );
        last = now;
    }
    assert!(last >= 20, "each of the 20 children committed");
}
