//! Schema versions: created at the latest, reopened idempotently, newer refused, failed
//! upgrades rolled back.

use rusqlite::Connection;

use super::*;
use crate::sqlite::{migrate, user_version, MIGRATIONS};
use crate::{StoreError, SCHEMA_VERSION};

#[test]
fn the_version_constant_matches_the_migration_list() {
    assert_eq!(SCHEMA_VERSION, MIGRATIONS.len() as i64);
}

#[test]
fn a_fresh_database_gets_the_latest_version_and_reopening_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let alice = user("alice");
    {
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let mut pass = commit(&alice, 0);
        pass.upserts = vec![contact("003A", "X1", "Lovelace")];
        store.commit_pass(&pass).unwrap();
    }
    let first = dump(&SqliteStore::open(&path).unwrap());
    for _ in 0..3 {
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(dump(&store), first);
    }
    let conn = Connection::open(&path).unwrap();
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap();
    let tables: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        tables,
        [
            "admin_users",
            "api_tokens",
            "audit_log",
            "call_budgets",
            "conflicts",
            "crm_full_reads_due",
            "crm_writes",
            "cursors",
            "intent_batches",
            "intent_marks",
            "mailbox_routes",
            "pairs",
            "runs",
            "secrets",
            "sessions",
            "settings",
            "skipped_crm_users",
            "slots",
            "unmatched_users",
            "unresolved",
            "users",
        ]
    );
}

#[test]
fn a_database_from_a_newer_exsync_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(SqliteStore::open(&path).unwrap());
    let future = SCHEMA_VERSION + 1;
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", future)
        .unwrap();

    let err = SqliteStore::open(&path).unwrap_err();
    assert_eq!(
        err,
        StoreError::SchemaTooNew {
            path: path.display().to_string(),
            found: future,
            supported: SCHEMA_VERSION
        }
    );
    let text = err.to_string();
    assert!(text.contains(&format!("schema version {future}")), "{text}");
    assert!(
        text.contains("newer exsync") && text.contains(&path.display().to_string()),
        "{text}"
    );
    assert_eq!(
        user_version(&Connection::open(&path).unwrap()).unwrap(),
        future,
        "left as it was"
    );
}

#[test]
fn a_failing_migration_leaves_the_database_at_its_old_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.db");
    let mut conn = Connection::open(&path).unwrap();
    let good = "CREATE TABLE a (x INTEGER)";
    let err = migrate(&mut conn, "plain.db", &[good, "CREATE TABLE b ("]).unwrap_err();
    assert!(
        matches!(err, StoreError::Migration { from: 0, to: 2, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("from schema version 0 to 2"),
        "{err}"
    );
    assert_eq!(user_version(&conn).unwrap(), 0);
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tables, 0, "the first migration was rolled back too");

    // Upgrades apply only what is missing, in order.
    assert_eq!(migrate(&mut conn, "plain.db", &[good]).unwrap(), 1);
    conn.execute("INSERT INTO a VALUES (7)", []).unwrap();
    assert_eq!(
        migrate(
            &mut conn,
            "plain.db",
            &[good, "ALTER TABLE a ADD COLUMN y TEXT"]
        )
        .unwrap(),
        2
    );
    assert_eq!(
        migrate(
            &mut conn,
            "plain.db",
            &[good, "ALTER TABLE a ADD COLUMN y TEXT"]
        )
        .unwrap(),
        2
    );
    let x: i64 = conn
        .query_row("SELECT x FROM a WHERE y IS NULL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(x, 7);
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    std::fs::write(
        &path,
        b"this is a text file, not SQLite, and it is long enough to have a header",
    )
    .unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            "cannot open the state database {}",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn a_journal_from_before_answered_ids_upgrades_and_takes_answers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn, "state.db", &MIGRATIONS[..12]).unwrap();
        let op = exsync_core::plan::Op::Create {
            kind: exsync_core::ItemKind::Contact,
            on: exsync_core::Side::Exchange,
            source: exsync_core::ItemId::Crm(exsync_core::CrmId::new("003A")),
            source_version: None,
            fields: fields(serde_json::json!({"last_name": "Ng"})),
            replaces: None,
        };
        conn.execute(
            "INSERT INTO users (user_key, created_at) VALUES (?1, ?2)",
            [
                user("ann").as_str().to_owned(),
                crate::sqlite::codec::time_text(&t(0)),
            ],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO intents (user_key, kind, op, sent, journaled_at) \
             VALUES (?1, 'contact', ?2, 1, ?3)",
            [
                user("ann").as_str().to_owned(),
                serde_json::to_string(&op).unwrap(),
                crate::sqlite::codec::time_text(&t(10)),
            ],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let ann = user("ann");
    let open = store.intents(&ann, exsync_core::ItemKind::Contact).unwrap();
    assert_eq!(open.len(), 1, "the journal survives the upgrade");
    assert!(open[0].sent);
    assert_eq!(open[0].answered, None);
    let made = exsync_core::ItemId::Exchange(exsync_core::ExchangeId::new("AAMk"));
    store
        .mark_intents_answered(&[(open[0].id, made.clone())])
        .unwrap();
    let open = store.intents(&ann, exsync_core::ItemKind::Contact).unwrap();
    assert_eq!(open[0].answered, Some(made));
}

#[test]
fn pairs_and_the_journal_keep_every_row_and_rule_when_their_json_checks_go() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let ann = user("ann");
    let content = r#"{"last_name":"Ng"}"#;
    {
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn, "state.db", &MIGRATIONS[..13]).unwrap();
        let at = crate::sqlite::codec::time_text(&t(0));
        conn.execute(
            "INSERT INTO users (user_key, created_at) VALUES (?1, ?2)",
            [ann.as_str(), &at],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO pairs (user_key, kind, crm_id, exchange_id, content, content_hash, \
             crm_version, exchange_version, updated_at) \
             VALUES (?1, 'contact', '003A', 'AAMkA', ?2, ?3, 'v1', 'ck1', ?4)",
            [
                ann.as_str(),
                content,
                &exsync_core::content_text_hash(content),
                &at,
            ],
        )
        .unwrap();
        let op = exsync_core::plan::Op::Create {
            kind: exsync_core::ItemKind::Event,
            on: exsync_core::Side::Exchange,
            source: exsync_core::ItemId::Crm(exsync_core::CrmId::new("00UA")),
            source_version: None,
            fields: fields(serde_json::json!({"subject": "Review"})),
            replaces: None,
        };
        conn.execute(
            "INSERT INTO intents (user_key, kind, op, sent, journaled_at, answered_id) \
             VALUES (?1, 'event', ?2, 1, ?3, 'AAMkB')",
            [ann.as_str(), &serde_json::to_string(&op).unwrap(), &at],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let pair = store
        .find_pair(
            &ann,
            exsync_core::ItemKind::Contact,
            &exsync_core::ItemId::Crm(exsync_core::CrmId::new("003A")),
        )
        .unwrap()
        .expect("the pair survives the rebuild");
    assert_eq!(pair.exchange_id.as_str(), "AAMkA");
    assert_eq!(pair.crm_version.as_deref(), Some("v1"));
    let open = store.intents(&ann, exsync_core::ItemKind::Event).unwrap();
    assert_eq!(open.len(), 1, "the journal survives the rebuild");
    assert_eq!(
        open[0].answered,
        Some(exsync_core::ItemId::Exchange(exsync_core::ExchangeId::new(
            "AAMkB"
        )))
    );
    drop(store);

    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    let schema: Vec<(String, String)> = conn
        .prepare(
            "SELECT name, sql FROM sqlite_schema WHERE tbl_name IN ('pairs', 'intent_batches') \
             AND sql IS NOT NULL ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let names: Vec<&str> = schema.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "intent_batches",
            "intent_batches_by_user",
            "pairs",
            "pairs_by_crm_id"
        ]
    );
    assert!(
        schema
            .iter()
            .all(|(_, sql)| !sql.contains("json_valid") && !sql.contains("_v15")),
        "{schema:?}"
    );
    // The rules that stay still hold: one record in one pair, and rows go with their user.
    let again = conn.execute(
        "INSERT INTO pairs (user_key, kind, crm_id, exchange_id, content, content_hash, \
         updated_at) VALUES (?1, 'contact', '003A', 'AAMkZ', '{}', 'h', 'now')",
        [ann.as_str()],
    );
    assert!(again.is_err(), "a second pair of 003A must be refused");
    let bad_kind = conn.execute(
        "INSERT INTO intent_batches (user_key, kind, ops, writes, journaled_at) \
         VALUES (?1, 'task', '[{}]', 1, 'now')",
        [ann.as_str()],
    );
    assert!(bad_kind.is_err(), "an unknown kind must be refused");
    conn.execute("DELETE FROM users WHERE user_key = ?1", [ann.as_str()])
        .unwrap();
    let left: i64 = conn
        .query_row(
            "SELECT (SELECT count(*) FROM pairs) + (SELECT count(*) FROM intent_batches)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0, "pairs and intents are deleted with their user");
}

#[test]
fn a_journal_whose_marks_were_columns_keeps_them_through_every_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let ann = user("ann");
    let op = |source: &str| {
        serde_json::to_string(&exsync_core::plan::Op::Create {
            kind: exsync_core::ItemKind::Contact,
            on: exsync_core::Side::Exchange,
            source: exsync_core::ItemId::Crm(exsync_core::CrmId::new(source)),
            source_version: None,
            fields: fields(serde_json::json!({"last_name": "Ng"})),
            replaces: None,
        })
        .unwrap()
    };
    {
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn, "state.db", &MIGRATIONS[..15]).unwrap();
        let at = crate::sqlite::codec::time_text(&t(0));
        conn.execute(
            "INSERT INTO users (user_key, created_at) VALUES (?1, ?2)",
            [ann.as_str(), &at],
        )
        .unwrap();
        for (id, source, sent, answered) in [
            (7, "003A", 1, Some("AAMkA")),
            (8, "003B", 1, None),
            (9, "003C", 0, None),
        ] {
            conn.execute(
                "INSERT INTO intents (id, user_key, kind, op, sent, journaled_at, answered_id) \
                 VALUES (?1, ?2, 'contact', ?3, ?4, ?5, ?6)",
                rusqlite::params![id, ann.as_str(), op(source), sent, at, answered],
            )
            .unwrap();
        }
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let open: Vec<(i64, bool, Option<String>)> = store
        .intents(&ann, exsync_core::ItemKind::Contact)
        .unwrap()
        .into_iter()
        .map(|i| (i.id, i.sent, i.answered.map(|a| a.as_str().to_owned())))
        .collect();
    // Each entry became a batch of one with the entry's id.
    assert_eq!(
        open,
        [
            (7 * 1024, true, Some("AAMkA".to_owned())),
            (8 * 1024, true, None),
            (9 * 1024, false, None)
        ]
    );
    drop(store);
    // The marks belong to their entry: they go with it, and with its user.
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    let orphan = conn.execute("INSERT INTO intent_marks (batch) VALUES (99)", []);
    assert!(
        orphan.is_err(),
        "a mark of no journaled write must be refused"
    );
    conn.execute("DELETE FROM users WHERE user_key = ?1", [ann.as_str()])
        .unwrap();
    let left: i64 = conn
        .query_row(
            "SELECT (SELECT count(*) FROM intent_batches) + (SELECT count(*) FROM intent_marks)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        left, 0,
        "the journal and its marks are deleted with their user"
    );
}

#[test]
fn a_journal_of_one_row_per_write_becomes_batches_of_one_with_their_marks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let ann = user("ann");
    let op = |source: &str| exsync_core::plan::Op::Create {
        kind: exsync_core::ItemKind::Event,
        on: exsync_core::Side::Exchange,
        source: exsync_core::ItemId::Crm(exsync_core::CrmId::new(source)),
        source_version: None,
        fields: fields(serde_json::json!({"subject": "Review \"Q4\" \u{e9}"})),
        replaces: None,
    };
    {
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn, "state.db", &MIGRATIONS[..16]).unwrap();
        let at = crate::sqlite::codec::time_text(&t(0));
        conn.execute(
            "INSERT INTO users (user_key, created_at) VALUES (?1, ?2)",
            [ann.as_str(), &at],
        )
        .unwrap();
        for (id, source) in [(3, "00UA"), (4, "00UB"), (5, "00UC")] {
            conn.execute(
                "INSERT INTO intents (id, user_key, kind, op, journaled_at) \
                 VALUES (?1, ?2, 'event', ?3, ?4)",
                rusqlite::params![
                    id,
                    ann.as_str(),
                    serde_json::to_string(&op(source)).unwrap(),
                    at
                ],
            )
            .unwrap();
        }
        conn.execute_batch(
            "INSERT INTO intents_sent (id) VALUES (3), (4); \
             INSERT INTO intents_answered (id, answered_id) VALUES (3, 'AAMkA');",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let open = store.intents(&ann, exsync_core::ItemKind::Event).unwrap();
    let read: Vec<(i64, bool, Option<String>)> = open
        .iter()
        .map(|i| {
            (
                i.id,
                i.sent,
                i.answered.as_ref().map(|a| a.as_str().to_owned()),
            )
        })
        .collect();
    assert_eq!(
        read,
        [
            (3 * 1024, true, Some("AAMkA".to_owned())),
            (4 * 1024, true, None),
            (5 * 1024, false, None)
        ]
    );
    let ops: Vec<_> = open.iter().map(|i| i.op.clone()).collect();
    assert_eq!(ops, [op("00UA"), op("00UB"), op("00UC")]);

    // The upgraded entries take marks and settle as any batch does.
    let made = exsync_core::ItemId::Exchange(exsync_core::ExchangeId::new("AAMkB"));
    store
        .mark_intents_answered(&[(4 * 1024, made.clone())])
        .unwrap();
    let mut settle = commit(&ann, 20);
    settle.partial = true;
    settle.settled_intents = vec![3 * 1024, 5 * 1024];
    store.commit_pass(&settle).unwrap();
    let open = store.intents(&ann, exsync_core::ItemKind::Event).unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(
        (open[0].id, open[0].answered.clone()),
        (4 * 1024, Some(made))
    );
    drop(store);
    let conn = Connection::open(&path).unwrap();
    let left: (i64, i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM intent_batches), (SELECT count(*) FROM intent_marks), \
             (SELECT count(*) FROM sqlite_schema WHERE name LIKE 'intents%' AND type = 'table')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(left, (1, 1, 0), "the old tables are gone");
}
