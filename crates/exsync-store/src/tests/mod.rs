//! Tests against real databases: SQLite files in temporary directories and, for every test that
//! says nothing backend-specific, a fresh database in a real PostgreSQL as well (see
//! [`both_backends!`]), so the two backends are held to the same behaviour.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod budgets;
mod concurrency;
mod copy;
mod departures;
#[cfg(unix)]
mod files;
mod journal;
mod kill;
mod leases;
mod migrations;
mod names;
mod page_cache;
mod pairs;
mod pg_kill;
mod postgres_only;
mod reset;
mod roundtrip;
mod routes;
mod skipped;
mod slots;
mod snapshots;

use chrono::{DateTime, TimeZone, Utc};
use exsync_core::plan::SyncedPair;
use exsync_core::{CrmId, ExchangeId, Fields, ItemKind, UserKey};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::{
    Accounts, CrmWrite, CursorAdvance, CursorScope, ItemRef, PairKey, PassCommit, RunCounts,
    Secrets, SqliteStore, Store, SyncState, UnresolvedReport,
};

/// A fixed instant plus `secs`, so that dumps of two databases compare equal.
pub(crate) fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_790_000_000 + secs, 0).single().unwrap()
}

pub(crate) fn user(name: &str) -> UserKey {
    UserKey::from_email(&format!("{name}@example.com"))
}

pub(crate) fn fields(value: Value) -> Fields {
    match value {
        Value::Object(map) => map.into_iter().collect(),
        other => panic!("not an object: {other}"),
    }
}

pub(crate) fn contact(crm: &str, exchange: &str, last_name: &str) -> SyncedPair {
    SyncedPair {
        kind: ItemKind::Contact,
        crm_id: CrmId::new(crm),
        exchange_id: ExchangeId::new(exchange),
        content: fields(
            json!({ "last_name": last_name, "emails": [format!("{}@example.org", last_name.to_lowercase())] }),
        ),
        crm_version: Some(format!("2026-09-21T10:00:00.000+0000/{crm}")),
        exchange_version: Some(format!("CK-{exchange}")),
    }
}

pub(crate) fn event(crm: &str, exchange: &str, subject: &str) -> SyncedPair {
    SyncedPair {
        kind: ItemKind::Event,
        crm_id: CrmId::new(crm),
        exchange_id: ExchangeId::new(exchange),
        content: fields(json!({
            "subject": subject,
            "start": { "date_time": "2026-10-01T09:00:00Z" },
            "end": { "date_time": "2026-10-01T10:00:00Z" },
        })),
        crm_version: None,
        exchange_version: Some(format!("CK-{exchange}")),
    }
}

pub(crate) fn key(pair: &SyncedPair) -> PairKey {
    PairKey {
        kind: pair.kind,
        crm_id: pair.crm_id.clone(),
        exchange_id: pair.exchange_id.clone(),
    }
}

pub(crate) fn set_cursor(scope: CursorScope, value: &str) -> CursorAdvance {
    CursorAdvance {
        scope,
        value: Some(value.to_owned()),
    }
}

pub(crate) fn failing(kind: ItemKind, id: exsync_core::ItemId, reason: &str) -> UnresolvedReport {
    UnresolvedReport {
        kind,
        id,
        reason: reason.to_owned(),
        name: None,
    }
}

pub(crate) fn resolved(kind: ItemKind, id: exsync_core::ItemId) -> ItemRef {
    ItemRef { kind, id }
}

pub(crate) fn echo(crm: &str, modstamp: &str, at: DateTime<Utc>) -> CrmWrite {
    CrmWrite {
        crm_id: CrmId::new(crm),
        system_modstamp: modstamp.to_owned(),
        kind: ItemKind::Contact,
        user: None,
        written_at: at,
    }
}

pub(crate) fn commit(user: &UserKey, at: i64) -> PassCommit {
    PassCommit::new(user.clone(), t(at), t(at + 5))
}

/// One test's database on one backend; [`Db::open`] opens it, and opens it again after a
/// store was dropped, so a test can check what survives a restart.
pub(crate) enum Db {
    Sqlite(TempDir),
    Postgres(exsync_testkit::postgres::Database),
}

impl Db {
    pub(crate) fn sqlite() -> Db {
        Db::Sqlite(tempfile::tempdir().unwrap())
    }

    /// `None` (after printing why) when PostgreSQL is not installed; a panic instead under
    /// `EXSYNC_REQUIRE_POSTGRES=1`.
    pub(crate) fn postgres() -> Option<Db> {
        exsync_testkit::postgres::database().map(Db::Postgres)
    }

    pub(crate) fn open(&self) -> Box<dyn Store> {
        match self {
            Db::Sqlite(dir) => Box::new(SqliteStore::open(dir.path().join("state.db")).unwrap()),
            Db::Postgres(db) => Box::new(crate::PgStore::open(&self.pg_options(db)).unwrap()),
        }
    }

    fn pg_options(&self, db: &exsync_testkit::postgres::Database) -> crate::PgOptions {
        crate::PgOptions::new(db.conninfo())
    }

    /// Runs one statement behind the store's back (to damage data or test the schema's own
    /// checks); the backend's error as text.
    pub(crate) fn execute(&self, sql: &str) -> Result<(), String> {
        match self {
            Db::Sqlite(dir) => rusqlite::Connection::open(dir.path().join("state.db"))
                .and_then(|c| c.execute_batch(sql))
                .map_err(|e| e.to_string()),
            Db::Postgres(db) => {
                let mut client =
                    postgres::Client::connect(&db.conninfo(), postgres::NoTls).unwrap();
                client.batch_execute(sql).map_err(|e| e.to_string())
            }
        }
    }
}

/// Generates, for each named `fn(&Db)`, one test on SQLite and one on PostgreSQL, in modules
/// `sqlite` and `postgres` beside them.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name(&crate::tests::Db::sqlite());
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    if let Some(db) = crate::tests::Db::postgres() {
                        super::$name(&db);
                    }
                }
            )*
        }
    };
}
pub(crate) use both_backends;

pub(crate) fn temp_store() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("state.db")).unwrap();
    (dir, store)
}

/// The whole sync state as JSON: users, pairs, cursors, unresolved items, runs, conflicts and
/// the echo log. Two databases with the same dump hold the same sync state. It reads through
/// the sync-state role alone, so it serves any backend and a whole `dyn Store` alike.
pub(crate) fn dump(store: &(impl SyncState + ?Sized)) -> Value {
    let users = store.list_users().unwrap();
    let mut per_user = serde_json::Map::new();
    for status in &users {
        let u = &status.user;
        per_user.insert(
            u.to_string(),
            json!({
                "status": status,
                "contacts": store.load_pairs(u, ItemKind::Contact).unwrap(),
                "events": store.load_pairs(u, ItemKind::Event).unwrap(),
                "unresolved": store.unresolved(u).unwrap(),
                "runs": store.runs(u, 1000).unwrap(),
                "conflicts": store.conflicts(u, 1000).unwrap(),
            }),
        );
    }
    json!({
        "users": per_user,
        "cursors": store.list_cursors().unwrap(),
        "crm_writes": store.crm_writes_since(DateTime::<Utc>::MIN_UTC).unwrap(),
    })
}

/// Replaces every timestamp in a dump, for snapshots of passes that ran at the real time.
pub(crate) fn redact_times(value: &mut Value) {
    const TIME_KEYS: &[&str] = &[
        "started",
        "finished",
        "updated_at",
        "first_seen",
        "last_seen",
        "since",
        "at",
        "written_at",
    ];
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if TIME_KEYS.contains(&k.as_str()) && v.is_string() {
                    *v = Value::String("[time]".into());
                } else {
                    redact_times(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_times),
        _ => {}
    }
}
