//! Moving up: copies a whole SQLite state database into an empty PostgreSQL one, table by
//! table with every id kept, in one PostgreSQL transaction. Pairs, cursors, unresolved items,
//! the echo log, the intent journal, the secrets' ciphertext, accounts, sessions and the audit
//! log arrive as they were, so the first pass on PostgreSQL re-matches nothing.

use postgres::types::ToSql;

use crate::error::{StoreError, StoreResult};
use crate::{PgStore, SqliteStore};

/// How a column is carried across.
#[derive(Clone, Copy)]
enum Ty {
    Text,
    Int,
    Bool,
    Bytes,
}

use Ty::{Bool, Bytes, Int, Text};

/// Every table, parents first, with the columns both schemas share. `users.last_run_id` is
/// set after `runs`, which reference users. `call_budgets` is left behind: the CRM reports
/// its allowance again with the first call on PostgreSQL; so are `slots`, which only running
/// workers hold.
const TABLES: &[(&str, &[(&str, Ty)])] = &[
    (
        "users",
        &[
            ("user_key", Text),
            ("paused", Bool),
            ("paused_reason", Text),
            ("paused_at", Text),
            ("created_at", Text),
        ],
    ),
    (
        "runs",
        &[
            ("id", Int),
            ("user_key", Text),
            ("started_at", Text),
            ("finished_at", Text),
            ("created", Int),
            ("updated", Int),
            ("deleted", Int),
            ("conflicts", Int),
            ("failures", Int),
            ("error", Text),
            ("notices", Text),
            ("backend", Text),
            ("configuration", Text),
            ("via_group", Text),
        ],
    ),
    (
        "pairs",
        &[
            ("id", Int),
            ("user_key", Text),
            ("kind", Text),
            ("crm_id", Text),
            ("exchange_id", Text),
            ("content", Text),
            ("content_hash", Text),
            ("crm_version", Text),
            ("exchange_version", Text),
            ("updated_at", Text),
        ],
    ),
    (
        "cursors",
        &[
            ("scope_kind", Text),
            ("user_key", Text),
            ("name", Text),
            ("value", Text),
            ("updated_at", Text),
        ],
    ),
    (
        "unresolved",
        &[
            ("user_key", Text),
            ("kind", Text),
            ("side", Text),
            ("item_id", Text),
            ("reason", Text),
            ("first_seen", Text),
            ("last_seen", Text),
            ("occurrences", Int),
            ("name", Text),
        ],
    ),
    (
        "conflicts",
        &[
            ("id", Int),
            ("run_id", Int),
            ("user_key", Text),
            ("at", Text),
            ("kind", Text),
            ("crm_id", Text),
            ("exchange_id", Text),
            ("field", Text),
            ("crm_value", Text),
            ("exchange_value", Text),
            ("winner", Text),
            ("first_link", Bool),
            ("name", Text),
        ],
    ),
    (
        "crm_writes",
        &[
            ("crm_id", Text),
            ("system_modstamp", Text),
            ("kind", Text),
            ("user_key", Text),
            ("written_at", Text),
        ],
    ),
    (
        "secrets",
        &[
            ("name", Text),
            ("nonce", Bytes),
            ("ciphertext", Bytes),
            ("updated_at", Text),
        ],
    ),
    (
        "admin_users",
        &[
            ("name", Text),
            ("password_hash", Text),
            ("role", Text),
            ("created_at", Text),
            ("updated_at", Text),
        ],
    ),
    (
        "api_tokens",
        &[
            ("id", Int),
            ("token_hash", Text),
            ("name", Text),
            ("role", Text),
            ("created_at", Text),
            ("last_used_at", Text),
        ],
    ),
    (
        "sessions",
        &[
            ("id", Text),
            ("admin_user", Text),
            ("csrf_token", Text),
            ("created_at", Text),
            ("expires_at", Text),
        ],
    ),
    (
        "audit_log",
        &[
            ("id", Int),
            ("at", Text),
            ("actor", Text),
            ("action", Text),
            ("detail", Text),
        ],
    ),
    (
        "settings",
        &[("name", Text), ("value", Text), ("updated_at", Text)],
    ),
    (
        "skipped_crm_users",
        &[
            ("crm_id", Text),
            ("address", Text),
            ("reason", Text),
            ("first_seen", Text),
            ("last_seen", Text),
        ],
    ),
    (
        "unmatched_users",
        &[
            ("user_key", Text),
            ("reason", Text),
            ("first_seen", Text),
            ("last_seen", Text),
        ],
    ),
    (
        "mailbox_routes",
        &[
            ("user_key", Text),
            ("backend", Text),
            ("evidence", Text),
            ("checked_at", Text),
            ("recheck", Text),
        ],
    ),
    ("crm_full_reads_due", &[("user_key", Text), ("since", Text)]),
    (
        "intents",
        &[
            ("id", Int),
            ("user_key", Text),
            ("kind", Text),
            ("op", Text),
            ("sent", Bool),
            ("journaled_at", Text),
            ("answered_id", Text),
        ],
    ),
];

/// Tables whose ids PostgreSQL generates; their sequences continue after the copied ids.
const IDENTITY_TABLES: &[&str] = &[
    "runs",
    "pairs",
    "conflicts",
    "api_tokens",
    "audit_log",
    "intents",
];

/// Where SQLite holds a table's columns: the journal keeps its marks in tables of their own
/// (see the SQLite migrations), and a view reads them back as columns.
fn sqlite_source(table: &str) -> &str {
    match table {
        "intents" => "intents_marked",
        other => other,
    }
}

/// One value read from SQLite, as PostgreSQL takes it.
enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(Option<bool>),
    Bytes(Option<Vec<u8>>),
}

impl Cell {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Cell::Text(v) => v,
            Cell::Int(v) => v,
            Cell::Bool(v) => v,
            Cell::Bytes(v) => v,
        }
    }
}

/// How many rows of each table were copied, in copy order.
pub type CopyCounts = Vec<(&'static str, u64)>;

const OP: &str = "copy the state database";

fn fail(detail: String) -> StoreError {
    StoreError::Backend {
        op: OP,
        user: None,
        detail,
    }
}

/// Copies everything in `from` into `to`, which must hold nothing yet: a copy never merges
/// two states. All of it or nothing is written.
pub fn copy_sqlite_to_postgres(from: &SqliteStore, to: &PgStore) -> StoreResult<CopyCounts> {
    to.with_transaction(OP, |tx| {
        from.with_read_transaction(|source| {
            for (table, _) in TABLES {
                let row = tx
                    .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), &[])
                    .map_err(|e| fail(format!("{table}: {e}")))?;
                let used: bool = row.try_get(0).map_err(|e| fail(e.to_string()))?;
                if used {
                    return Err(StoreError::InvalidInput {
                        op: OP,
                        reason: format!(
                            "the target database already holds {table}; copy into an empty one"
                        ),
                    });
                }
            }
            let mut counts = Vec::with_capacity(TABLES.len());
            for (table, columns) in TABLES {
                let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
                let placeholders: Vec<String> =
                    (1..=columns.len()).map(|i| format!("${i}")).collect();
                let insert = tx
                    .prepare(&format!(
                        "INSERT INTO {table} ({}) VALUES ({})",
                        names.join(", "),
                        placeholders.join(", ")
                    ))
                    .map_err(|e| fail(format!("{table}: {e}")))?;
                let select = format!("SELECT {} FROM {}", names.join(", "), sqlite_source(table));
                let mut copied = 0u64;
                each_row(source, &select, |row| {
                    let mut cells = Vec::with_capacity(columns.len());
                    for (i, (name, ty)) in columns.iter().enumerate() {
                        let cell = match ty {
                            Text => row.get(i).map(Cell::Text),
                            Int => row.get(i).map(Cell::Int),
                            Bool => row.get(i).map(Cell::Bool),
                            Bytes => row.get(i).map(Cell::Bytes),
                        }
                        .map_err(|e| fail(format!("{table}.{name} in SQLite: {e}")))?;
                        cells.push(cell);
                    }
                    let params: Vec<&(dyn ToSql + Sync)> = cells.iter().map(Cell::as_sql).collect();
                    tx.execute(&insert, &params)
                        .map_err(|e| fail(format!("{table}: {}", super::postgres::describe(&e))))?;
                    copied += 1;
                    Ok(())
                })?;
                counts.push((*table, copied));
            }
            each_row(
                source,
                "SELECT user_key, last_run_id FROM users WHERE last_run_id IS NOT NULL",
                |row| {
                    let user: String = row.get(0).map_err(|e| fail(e.to_string()))?;
                    let run: i64 = row.get(1).map_err(|e| fail(e.to_string()))?;
                    tx.execute(
                        "UPDATE users SET last_run_id = $2 WHERE user_key = $1",
                        &[&user, &run],
                    )
                    .map_err(|e| fail(format!("users.last_run_id: {e}")))?;
                    Ok(())
                },
            )?;
            for table in IDENTITY_TABLES {
                tx.execute(
                    &format!(
                        "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                     coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
                    ),
                    &[],
                )
                .map_err(|e| fail(format!("{table} ids: {e}")))?;
            }
            Ok(counts)
        })
    })
}

/// Calls `f` with each row `sql` returns from SQLite.
fn each_row(
    conn: &rusqlite::Connection,
    sql: &str,
    mut f: impl FnMut(&rusqlite::Row<'_>) -> StoreResult<()>,
) -> StoreResult<()> {
    let read_err = |e: rusqlite::Error| fail(format!("reading SQLite: {e}"));
    let mut stmt = conn.prepare(sql).map_err(read_err)?;
    let mut rows = stmt.query([]).map_err(read_err)?;
    while let Some(row) = rows.next().map_err(read_err)? {
        f(row)?;
    }
    Ok(())
}
