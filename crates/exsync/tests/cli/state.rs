//! `exsync status` and `exsync reset` on a real state database, as an admin runs them.

use std::path::Path;

use chrono::Utc;
use exsync_core::plan::SyncedPair;
use exsync_core::{Contact, ItemId, ItemKind, Record, UserKey};
use exsync_store::{PassCommit, RunCounts, SqliteStore, SyncState, UnresolvedReport};
use exsync_testkit::cli::{Cli, Ran};

fn exsync(dir: &Path, args: &[&str]) -> Ran {
    Cli::new(env!("CARGO_BIN_EXE_exsync"))
        .current_dir(dir)
        .args(args)
        .run()
}

const CONFIG: &str = r#"
[store]
path = "state.db"

[exchange]
service_account = "svc@contoso.test"

[crm]
client_id = "client"
username = "integration@contoso.test"

[configurations.sales]
users = ["ann@contoso.test"]
"#;

fn seeded(dir: &Path) {
    std::fs::write(dir.join("exsync.toml"), CONFIG).unwrap();
    let store = SqliteStore::open(dir.join("state.db")).unwrap();
    let ann = UserKey::new("ann@contoso.test");
    let mut commit = PassCommit::new(ann.clone(), Utc::now(), Utc::now());
    commit.upserts = (0..3)
        .map(|i| SyncedPair {
            kind: ItemKind::Contact,
            crm_id: format!("003{i}").as_str().into(),
            exchange_id: format!("AAMk{i}").as_str().into(),
            content: Contact {
                last_name: format!("L{i}"),
                ..Contact::default()
            }
            .to_fields(),
            crm_version: None,
            exchange_version: None,
        })
        .collect();
    commit.unresolved = vec![UnresolvedReport {
        kind: ItemKind::Contact,
        id: ItemId::Crm("0039".into()),
        reason: "not created in exchange: \"x@\" is not an e-mail address".into(),
        // A name from outside, with a terminal escape in it.
        name: Some("Zoe \u{1b}[31mRed <x@>".into()),
    }];
    commit.backend = Some("graph".into());
    commit.assignment = Some(exsync_store::RunAssignment {
        configuration: "sales".into(),
        group: Some("Sales User".into()),
    });
    commit.counts = RunCounts {
        created: 3,
        failures: 1,
        ..RunCounts::default()
    };
    store.commit_pass(&commit).unwrap();
    // A second user whose last pass failed with a long error.
    let mut failed = PassCommit::new(UserKey::new("bo@contoso.test"), Utc::now(), Utc::now());
    failed.error = Some(format!("impersonation denied: {}", "x".repeat(100)));
    store.commit_pass(&failed).unwrap();
    // Listed in a configuration, but no active CRM user has the address.
    store
        .record_unmatched_users(
            &[(
                UserKey::new("cy@contoso.test"),
                "no active CRM user has this address in their Email field".into(),
            )],
            Utc::now(),
        )
        .unwrap();
}

#[test]
fn status_lists_users_with_counts_and_unresolved_items() {
    let dir = tempfile::tempdir().unwrap();
    seeded(dir.path());
    let out = exsync(dir.path(), &["status"]);
    assert!(out.status.success(), "{}", out.text());
    let table = out.text();
    let row = table
        .lines()
        .find(|l| l.starts_with("ann@contoso.test"))
        .expect("a row for ann");
    let cells: Vec<&str> = row.split_whitespace().collect();
    // user, state, backend, "N s ago", created, updated, deleted, conflicts, failures, contacts,
    // events, unresolved
    assert_eq!(cells[1], "syncing", "{row}");
    assert_eq!(cells[2], "graph", "{row}");
    assert_eq!(&cells[4..6], ["s", "ago"], "{row}");
    assert_eq!(
        &cells[6..14],
        ["3", "0", "0", "0", "1", "3", "0", "1"],
        "{row}"
    );
    // The health header: passes end as often as the service runs them, and who is where.
    assert!(
        table.contains("Service: running: the last pass ended "),
        "{table}"
    );
    assert!(
        table.contains("Users: 2 — 1 syncing, 1 failing, 0 paused, 0 new"),
        "{table}"
    );
    // When, in the reader's zone with its offset, as well as how long ago.
    let in_kolkata = Cli::new(env!("CARGO_BIN_EXE_exsync"))
        .current_dir(dir.path())
        .args(["status"])
        .env("TZ", "Asia/Kolkata")
        .run()
        .text();
    let ended = in_kolkata
        .lines()
        .find_map(|l| l.strip_prefix("Service: running: the last pass ended "))
        .unwrap_or_else(|| panic!("{in_kolkata}"));
    let (local, rest) = ended.split_at(ended.find(" (").unwrap_or(0));
    assert!(
        local.len() == "2026-12-06 19:20 +05:30".len() && local.ends_with(" +05:30"),
        "{ended}"
    );
    assert!(
        rest.starts_with(" (") && rest.contains(" s ago)"),
        "{ended}"
    );
    // A failing user says so, with the error cut to fit and where to read all of it.
    let bo = table
        .lines()
        .find(|l| l.starts_with("bo@contoso.test"))
        .expect("a row for bo");
    assert!(bo.contains(" failing "), "{bo}");
    assert!(bo.ends_with("…"), "{bo}");
    assert!(!bo.contains(&"x".repeat(60)), "{bo}");
    assert!(table.contains("exsync status --user ADDRESS"), "{table}");
    // A configured user no CRM user pairs with is said, with why.
    let unmatched = table
        .split_once("\nConfigured users not synced (1; `exsync check` says more):\n")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no unmatched users section: {table}"));
    assert!(
        unmatched.starts_with("  cy@contoso.test  since ")
            && unmatched.lines().next().is_some_and(
                |l| l.ends_with(": no active CRM user has this address in their Email field")
            ),
        "{table}"
    );
    // Columns line up whatever the address lengths.
    let header = table.lines().find(|l| l.starts_with("USER")).unwrap();
    assert_eq!(header.find("STATE"), row.find("syncing"), "{table}");
    let full = exsync(dir.path(), &["status", "--user", "bo@contoso.test"]);
    assert!(full.text().contains(&"x".repeat(100)), "{}", full.text());
    assert!(
        full.text().contains("It failed: impersonation denied"),
        "{}",
        full.text()
    );

    let detail = exsync(dir.path(), &["status", "--user", "ANN@contoso.test"]);
    // The failed record is named beside its id, its name shown on one safe terminal line.
    assert!(
        detail
            .text()
            .contains("contact crm:0039 \"Zoe [31mRed <x@>\""),
        "{}",
        detail.text()
    );
    assert!(!detail.text().contains('\u{1b}'), "{}", detail.text());
    assert!(
        detail
            .text()
            .contains("Configuration: sales, via group Sales User (as the last pass found it)"),
        "{}",
        detail.text()
    );
    assert!(detail.text().contains("is not an e-mail address"));

    let json = exsync(dir.path(), &["status", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(value[0]["contact_pairs"], 3);
    assert_eq!(value[1]["user"], "bo@contoso.test");
}

#[test]
fn reset_forgets_pairs_and_cursors_only() {
    let dir = tempfile::tempdir().unwrap();
    seeded(dir.path());
    let out = exsync(dir.path(), &["reset", "--user", "ann@contoso.test"]);
    assert!(out.status.success(), "{}", out.text());
    assert!(out.text().contains("forgot 3 pairs"), "{}", out.text());
    let store = SqliteStore::open(dir.path().join("state.db")).unwrap();
    let audit = exsync_store::Accounts::list_audit(&store, 5, None).unwrap();
    assert_eq!(audit[0].action, "user.reset", "{audit:?}");
    assert!(audit[0].actor.starts_with("cli:"), "{audit:?}");
    assert!(store
        .load_pairs(&UserKey::new("ann@contoso.test"), ItemKind::Contact)
        .unwrap()
        .is_empty());
    // The pass history stays: reset is not a way to lose the record of what happened.
    assert_eq!(
        store
            .runs(&UserKey::new("ann@contoso.test"), 5)
            .unwrap()
            .len(),
        1
    );

    let unknown = exsync(dir.path(), &["reset", "--user", "nobody@contoso.test"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(unknown.text().contains("has never been synced"));
}

#[test]
fn a_bad_configuration_is_reported_with_its_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exsync.toml"), "[store]\npath = 3\n").unwrap();
    let out = exsync(dir.path(), &["status"]);
    assert!(!out.status.success());
    assert!(
        out.text().contains("exsync.toml:2: store.path"),
        "{}",
        out.text()
    );
}
