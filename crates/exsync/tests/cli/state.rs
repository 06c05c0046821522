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
    }];
    commit.counts = RunCounts {
        created: 3,
        failures: 1,
        ..RunCounts::default()
    };
    store.commit_pass(&commit).unwrap();
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
    // user, state, date, time, created, updated, deleted, conflicts, failures, contacts, events, unresolved
    assert_eq!(cells[1], "active");
    assert_eq!(
        &cells[4..12],
        ["3", "0", "0", "0", "1", "3", "0", "1"],
        "{row}"
    );

    let detail = exsync(dir.path(), &["status", "--user", "ANN@contoso.test"]);
    assert!(
        detail.text().contains("contact crm:0039"),
        "{}",
        detail.text()
    );
    assert!(detail.text().contains("is not an e-mail address"));

    let json = exsync(dir.path(), &["status", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(value[0]["contact_pairs"], 3);
}

#[test]
fn reset_forgets_pairs_and_cursors_only() {
    let dir = tempfile::tempdir().unwrap();
    seeded(dir.path());
    let out = exsync(dir.path(), &["reset", "--user", "ann@contoso.test"]);
    assert!(out.status.success(), "{}", out.text());
    assert!(out.text().contains("forgot 3 pairs"), "{}", out.text());
    let store = SqliteStore::open(dir.path().join("state.db")).unwrap();
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
