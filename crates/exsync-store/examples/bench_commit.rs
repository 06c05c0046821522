//! The store benchmark: what a pass's calls to the store cost on each backend, apart from the
//! rest of the pass. One mailbox's first sync as the engine commits it (batches of new pairs,
//! each with the echo of a CRM write); the look-ups of a pass that reads every item (pairs by
//! Exchange id, and the users of CRM records, a page at a time); then a pass that changed
//! every item (the pairs updated and the echoes logged, batch by batch) and one that deleted
//! every item (the pairs removed). On SQLite in a temporary file, and on a throwaway
//! PostgreSQL reached over TCP on 127.0.0.1 (the Debian package `postgresql`; skipped when it
//! is not installed). Prints wall time and this process's CPU per pair; asserts nothing.
//!
//!     bench/store.sh [--pairs 20000] [--batch 100] [--ids-in-order]
//!
//! Exchange ids come in no useful order by default, as when a first sync links the items a
//! mailbox already holds (Lightning Sync's copies) in the CRM's order: each batch's inserts land
//! all over the pairs' index of Exchange ids. With `--ids-in-order` they ascend, as the ids of
//! the copies a first sync makes do (Exchange numbers an item's id from a counter), and the
//! inserts land at the index's end.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use chrono::Utc;
use exsync_core::plan::SyncedPair;
use exsync_core::{CrmId, ExchangeId, Fields, ItemId, ItemKind, UserKey};
use exsync_store::{CrmWrite, PairKey, PassCommit, PgOptions, PgStore, SqliteStore, Store};
use serde_json::json;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number, not {v:?}"))
        })
        .unwrap_or(default)
}

/// This process's CPU time so far (user and system), from `/proc/self/stat`.
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command's closing parenthesis; utime and stime are the 12th and
    // 13th of them, in clock ticks of 1/100 s on Linux.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Read once: building each pair is inside what the benchmark times.
static IDS_IN_ORDER: LazyLock<bool> =
    LazyLock::new(|| std::env::args().any(|a| a == "--ids-in-order"));

/// The `i`th pair, as a first sync of a mailbox stores it: an EWS-sized id, a contact's
/// content; `round` changes the content and versions as a later pass would.
fn pair(i: usize, round: usize) -> SyncedPair {
    // EWS ids are about 150 characters of base64 that begin with the mailbox's part.
    let number = if *IDS_IN_ORDER {
        i as u64
    } else {
        (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    };
    let exchange_id = format!("AAMkAD{}{number:016x}", "A".repeat(130));
    let content: Fields = serde_json::from_value(json!({
        "first_name": "Ada",
        "last_name": format!("Lovelace {i} {round}"),
        "emails": [format!("ada{i}@example.org")],
        "company": "Analytical Engines",
        "title": "Director",
        "business_phone": "+44 20 7946 0000",
        "mobile_phone": "+44 7700 900000",
        "business_address": {"street": "1 Main St", "city": "London", "postal_code": "N1 9GU", "country": "UK"},
    }))
    .unwrap_or_default();
    SyncedPair {
        kind: ItemKind::Contact,
        crm_id: CrmId::new(format!("003{i:015}")),
        exchange_id: ExchangeId::new(exchange_id),
        content,
        crm_version: Some(format!("2026-12-07T10:00:{:02}.000+0000", round % 60)),
        exchange_version: Some(format!("CQAAABYAAAA{round}{i}")),
    }
}

/// Commits `pairs` pairs in batches of `batch`: as new pairs, then (after looking them up)
/// all updated, then all removed; prints the cost of each.
fn run(backend: &str, store: &dyn Store, pairs: usize, batch: usize) {
    let user = UserKey::new("bench@example.org");
    let mut looked_up = false;
    for (round, what) in [
        "first sync (new pairs)",
        "every item changed",
        "every item deleted",
    ]
    .into_iter()
    .enumerate()
    {
        let (wall, cpu_before) = (Instant::now(), cpu());
        let mut commits = 0;
        for start in (0..pairs).step_by(batch.max(1)) {
            let now = Utc::now();
            let mut commit = PassCommit::new(user.clone(), now, now);
            commit.partial = true;
            let batch = (start..(start + batch).min(pairs)).map(|i| pair(i, round));
            if round < 2 {
                commit.upserts = batch.collect();
                // Each record written to the CRM too, as items made in Outlook are: its echo.
                commit.crm_writes = commit
                    .upserts
                    .iter()
                    .map(|p| CrmWrite {
                        crm_id: p.crm_id.clone(),
                        system_modstamp: p.crm_version.clone().unwrap_or_default(),
                        kind: p.kind,
                        user: None,
                        written_at: now,
                    })
                    .collect();
            } else {
                commit.removals = batch
                    .map(|p| PairKey {
                        kind: p.kind,
                        crm_id: p.crm_id,
                        exchange_id: p.exchange_id,
                    })
                    .collect();
            }
            store
                .commit_pass(&commit)
                .unwrap_or_else(|e| panic!("{backend}: {e}"));
            commits += 1;
        }
        let (wall, cpu) = (wall.elapsed(), cpu() - cpu_before);
        print(backend, what, pairs, commits, wall, cpu);
        if !looked_up {
            looked_up = true;
            look_up(backend, store, &user, pairs, batch);
        }
    }
}

/// Looks the pairs up by their Exchange ids, a page of `batch` at a time, as a pass does for
/// each page of changes it reads.
fn look_up(backend: &str, store: &dyn Store, user: &UserKey, pairs: usize, batch: usize) {
    let (wall, cpu_before) = (Instant::now(), cpu());
    let mut pages = 0;
    for start in (0..pairs).step_by(batch.max(1)) {
        let ids: Vec<ItemId> = (start..(start + batch).min(pairs))
            .map(|i| ItemId::Exchange(pair(i, 0).exchange_id))
            .collect();
        let found = store
            .pair_links(user, ItemKind::Contact, &ids)
            .unwrap_or_else(|e| panic!("{backend}: {e}"));
        assert_eq!(found.len(), ids.len(), "{backend}: pairs not found");
        pages += 1;
    }
    print(
        backend,
        "look-up by Exchange id",
        pairs,
        pages,
        wall.elapsed(),
        cpu() - cpu_before,
    );
    // As the org's CRM changes are routed to the users whose pairs hold them.
    let (wall, cpu_before) = (Instant::now(), cpu());
    for start in (0..pairs).step_by(batch.max(1)) {
        let ids: Vec<CrmId> = (start..(start + batch).min(pairs))
            .map(|i| pair(i, 0).crm_id)
            .collect();
        let found = store
            .crm_pair_users(ItemKind::Contact, &ids)
            .unwrap_or_else(|e| panic!("{backend}: {e}"));
        assert_eq!(found.len(), ids.len(), "{backend}: users not found");
    }
    print(
        backend,
        "users of CRM records",
        pairs,
        pages,
        wall.elapsed(),
        cpu() - cpu_before,
    );
}

/// One line of figures: `calls` commits or look-ups over `pairs` pairs.
fn print(backend: &str, what: &str, pairs: usize, calls: usize, wall: Duration, cpu: Duration) {
    println!(
        "{backend:<10} {what:<24} {pairs:>7} pairs {calls:>5} calls  \
         {:>7.1} µs wall/pair  {:>6.1} µs CPU/pair  {:>6.2} ms wall/call",
        wall.as_secs_f64() * 1e6 / pairs.max(1) as f64,
        cpu.as_secs_f64() * 1e6 / pairs.max(1) as f64,
        wall.as_secs_f64() * 1e3 / calls.max(1) as f64,
    );
}

fn main() {
    let (pairs, batch) = (arg("--pairs", 20_000), arg("--batch", 100));
    println!("{pairs} pairs of one mailbox, committed {batch} at a time (CPU: this process's)");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary directory: {e}"));
    let sqlite =
        SqliteStore::open(dir.path().join("state.db")).unwrap_or_else(|e| panic!("SQLite: {e}"));
    run("SQLite", &sqlite, pairs, batch);

    let Some(cluster) = exsync_testkit::postgres::own_cluster() else {
        println!("PostgreSQL is not installed: its figures are left out");
        return;
    };
    cluster
        .create_database("bench")
        .unwrap_or_else(|e| panic!("PostgreSQL: {e}"));
    let store = PgStore::open(&PgOptions::new(cluster.url("bench")))
        .unwrap_or_else(|e| panic!("PostgreSQL: {e}"));
    run("PostgreSQL", &store, pairs, batch);
}
