//! Per-user status: the users table, pass history, unresolved items, conflicts, Reset Sync.

use chrono::{DateTime, Utc};
use exsync_core::plan::Conflict;
use exsync_core::{CrmId, ExchangeId, UserKey};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::codec::{
    count, item_id, limit, parse_kind, parse_side, parse_time, time_text, Ctx, Decode,
};
use super::commit::pause;
use crate::error::{StoreError, StoreResult};
use crate::types::{
    ConflictRecord, CrmUserSkip, Pause, ResetCounts, RunAssignment, RunCounts, RunRecord,
    SkippedCrmUser, UnmatchedUser, UnresolvedItem, UserStatus, SKIPPED_ADDRESS_MAX,
};

pub(crate) fn insert_user(conn: &Connection, user: &UserKey, at: &str) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "INSERT INTO users (user_key, created_at) VALUES (?1, ?2) ON CONFLICT (user_key) DO NOTHING",
    )?
    .execute(params![user.as_str(), at])
}

pub(crate) fn check_key(op: &'static str, user: &UserKey) -> StoreResult<()> {
    if user.as_str().is_empty() {
        return Err(StoreError::InvalidInput {
            op,
            reason: "the user key is empty".into(),
        });
    }
    Ok(())
}

pub(crate) fn ensure_user(conn: &Connection, user: &UserKey) -> StoreResult<()> {
    const OP: &str = "register user";
    check_key(OP, user)?;
    insert_user(conn, user, &time_text(&Utc::now())).ctx(OP, Some(user))?;
    Ok(())
}

pub(crate) fn set_paused(
    conn: &Connection,
    user: &UserKey,
    reason: Option<&str>,
) -> StoreResult<()> {
    const OP: &str = "set paused";
    check_key(OP, user)?;
    let u = Some(user);
    let now = time_text(&Utc::now());
    insert_user(conn, user, &now).ctx(OP, u)?;
    match reason {
        Some(reason) if reason.trim().is_empty() => {
            return Err(StoreError::InvalidInput {
                op: OP,
                reason: "a pause needs a reason".into(),
            });
        }
        Some(reason) => {
            pause(conn, user, reason, &now).ctx(OP, u)?;
            tracing::info!(user = %user, reason, "user paused");
        }
        None => {
            unpause(conn, user).ctx(OP, u)?;
            tracing::info!(user = %user, "user un-paused");
        }
    }
    Ok(())
}

fn unpause(conn: &Connection, user: &UserKey) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "UPDATE users SET paused = 0, paused_reason = NULL, paused_at = NULL \
         WHERE user_key = ?1 AND paused = 1",
    )?
    .execute(params![user.as_str()])
}

pub(crate) fn reset_user(conn: &mut Connection, user: &UserKey) -> StoreResult<ResetCounts> {
    const OP: &str = "reset sync";
    let u = Some(user);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx(OP, u)?;
    let pairs = tx
        .execute(
            "DELETE FROM pairs WHERE user_key = ?1",
            params![user.as_str()],
        )
        .ctx(OP, u)?;
    let cursors = tx
        .execute(
            "DELETE FROM cursors WHERE scope_kind = 'folder' AND user_key = ?1",
            params![user.as_str()],
        )
        .ctx(OP, u)?;
    // A journaled write names pairs and records the reset forgets; the first pass after it
    // matches whatever those writes left by tag, as it does every record.
    tx.execute(
        "DELETE FROM intent_batches WHERE user_key = ?1",
        params![user.as_str()],
    )
    .ctx(OP, u)?;
    let was_paused = unpause(&tx, user).ctx(OP, u)? > 0;
    tx.commit().ctx(OP, u)?;
    tracing::info!(user = %user, pairs, cursors, was_paused, "sync reset");
    Ok(ResetCounts {
        pairs: pairs as u64,
        cursors: cursors as u64,
        was_paused,
    })
}

pub(crate) const RUN_COLUMNS: &str =
    "id, user_key, started_at, finished_at, created, updated, deleted, conflicts, failures, error, \
     notices, backend, configuration, via_group";

pub(crate) struct RunRow {
    pub(crate) id: i64,
    pub(crate) user_key: String,
    pub(crate) started: String,
    pub(crate) finished: String,
    pub(crate) counts: [i64; 5],
    pub(crate) error: Option<String>,
    pub(crate) notices: String,
    pub(crate) backend: Option<String>,
    pub(crate) configuration: Option<String>,
    pub(crate) via_group: Option<String>,
}

/// Reads the fourteen run columns starting at `at`.
fn run_row(row: &Row<'_>, at: usize) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: row.get(at)?,
        user_key: row.get(at + 1)?,
        started: row.get(at + 2)?,
        finished: row.get(at + 3)?,
        counts: [
            row.get(at + 4)?,
            row.get(at + 5)?,
            row.get(at + 6)?,
            row.get(at + 7)?,
            row.get(at + 8)?,
        ],
        error: row.get(at + 9)?,
        notices: row.get(at + 10)?,
        backend: row.get(at + 11)?,
        configuration: row.get(at + 12)?,
        via_group: row.get(at + 13)?,
    })
}

impl RunRow {
    pub(crate) fn decode(self) -> Result<RunRecord, String> {
        let [created, updated, deleted, conflicts, failures] = self.counts;
        Ok(RunRecord {
            id: self.id,
            user: UserKey(self.user_key),
            started: parse_time(&self.started)?,
            finished: parse_time(&self.finished)?,
            counts: RunCounts {
                created: count(created)?,
                updated: count(updated)?,
                deleted: count(deleted)?,
                conflicts: count(conflicts)?,
                failures: count(failures)?,
            },
            error: self.error,
            notices: serde_json::from_str(&self.notices)
                .map_err(|e| format!("notices of run {}: {e}", self.id))?,
            backend: self.backend,
            assignment: self.configuration.map(|configuration| RunAssignment {
                configuration,
                group: self.via_group,
            }),
        })
    }
}

pub(crate) fn runs(conn: &Connection, user: &UserKey, max: usize) -> StoreResult<Vec<RunRecord>> {
    const OP: &str = "list runs";
    let u = Some(user);
    let sql =
        format!("SELECT {RUN_COLUMNS} FROM runs WHERE user_key = ?1 ORDER BY id DESC LIMIT ?2");
    let rows = conn
        .prepare_cached(&sql)
        .ctx(OP, u)?
        .query_map(params![user.as_str(), limit(max)], |row| run_row(row, 0))
        .ctx(OP, u)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .ctx(OP, u)?;
    rows.into_iter()
        .map(|row| row.decode().decoded(OP, u))
        .collect()
}

pub(crate) struct StatusRow {
    pub(crate) user_key: String,
    pub(crate) paused_reason: Option<String>,
    pub(crate) paused_at: Option<String>,
    pub(crate) run: Option<RunRow>,
    pub(crate) contacts: i64,
    pub(crate) events: i64,
    pub(crate) unresolved: i64,
}

pub(crate) const STATUS_SELECT: &str = "SELECT u.user_key, u.paused_reason, u.paused_at, \
     (SELECT count(*) FROM pairs p WHERE p.user_key = u.user_key AND p.kind = 'contact'), \
     (SELECT count(*) FROM pairs p WHERE p.user_key = u.user_key AND p.kind = 'event'), \
     (SELECT count(*) FROM unresolved x WHERE x.user_key = u.user_key), \
     r.id, r.user_key, r.started_at, r.finished_at, r.created, r.updated, r.deleted, \
     r.conflicts, r.failures, r.error, r.notices, r.backend, r.configuration, r.via_group \
     FROM users u LEFT JOIN runs r ON r.id = u.last_run_id";

fn status_row(row: &Row<'_>) -> rusqlite::Result<StatusRow> {
    let run_id: Option<i64> = row.get(6)?;
    Ok(StatusRow {
        user_key: row.get(0)?,
        paused_reason: row.get(1)?,
        paused_at: row.get(2)?,
        contacts: row.get(3)?,
        events: row.get(4)?,
        unresolved: row.get(5)?,
        run: run_id.map(|_| run_row(row, 6)).transpose()?,
    })
}

impl StatusRow {
    pub(crate) fn decode(self) -> Result<UserStatus, String> {
        let paused = match (self.paused_reason, self.paused_at) {
            (Some(reason), Some(since)) => Some(Pause {
                reason,
                since: parse_time(&since)?,
            }),
            (None, _) => None,
            (Some(_), None) => {
                return Err(format!("user {} is paused without a time", self.user_key))
            }
        };
        Ok(UserStatus {
            paused,
            last_run: self.run.map(RunRow::decode).transpose()?,
            contact_pairs: count(self.contacts)?,
            event_pairs: count(self.events)?,
            unresolved: count(self.unresolved)?,
            user: UserKey(self.user_key),
        })
    }
}

pub(crate) fn user_status(conn: &Connection, user: &UserKey) -> StoreResult<Option<UserStatus>> {
    const OP: &str = "read user status";
    let u = Some(user);
    let sql = format!("{STATUS_SELECT} WHERE u.user_key = ?1");
    let row = conn
        .prepare_cached(&sql)
        .ctx(OP, u)?
        .query_row(params![user.as_str()], status_row)
        .optional()
        .ctx(OP, u)?;
    row.map(|row| row.decode().decoded(OP, u)).transpose()
}

pub(crate) fn list_users(conn: &Connection) -> StoreResult<Vec<UserStatus>> {
    const OP: &str = "list users";
    let sql = format!("{STATUS_SELECT} ORDER BY u.user_key");
    let rows = conn
        .prepare_cached(&sql)
        .ctx(OP, None)?
        .query_map([], status_row)
        .ctx(OP, None)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .ctx(OP, None)?;
    rows.into_iter()
        .map(|row| row.decode().decoded(OP, None))
        .collect()
}

pub(crate) fn unresolved(conn: &Connection, user: &UserKey) -> StoreResult<Vec<UnresolvedItem>> {
    const OP: &str = "list unresolved items";
    let u = Some(user);
    let rows = conn
        .prepare_cached(
            "SELECT kind, side, item_id, reason, first_seen, last_seen, occurrences, name \
             FROM unresolved WHERE user_key = ?1 ORDER BY first_seen, kind, side, item_id",
        )
        .ctx(OP, u)?
        .query_map(params![user.as_str()], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, String>(5)?,
                row.get::<_, i64>(6)?,
                row.get::<_, Option<String>>(7)?,
            ))
        })
        .ctx(OP, u)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .ctx(OP, u)?;
    rows.into_iter()
        .map(
            |(kind, side, id, reason, first_seen, last_seen, occurrences, name)| {
                Ok(UnresolvedItem {
                    kind: parse_kind(&kind)?,
                    id: item_id(parse_side(&side)?, id),
                    reason,
                    first_seen: parse_time(&first_seen)?,
                    last_seen: parse_time(&last_seen)?,
                    occurrences: count(occurrences)?,
                    name,
                })
            },
        )
        .map(|item: Result<UnresolvedItem, String>| item.decoded(OP, u))
        .collect()
}

pub(crate) fn conflicts(
    conn: &Connection,
    user: &UserKey,
    max: usize,
) -> StoreResult<Vec<ConflictRecord>> {
    const OP: &str = "list conflicts";
    let u = Some(user);
    type Raw = (
        i64,
        i64,
        String,
        String,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        String,
        bool,
        Option<String>,
    );
    let rows: Vec<Raw> = conn
        .prepare_cached(
            "SELECT id, run_id, at, kind, crm_id, exchange_id, field, crm_value, exchange_value, \
             winner, first_link, name FROM conflicts WHERE user_key = ?1 \
             ORDER BY id DESC LIMIT ?2",
        )
        .ctx(OP, u)?
        .query_map(params![user.as_str(), limit(max)], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
                row.get(7)?,
                row.get(8)?,
                row.get(9)?,
                row.get(10)?,
                row.get(11)?,
            ))
        })
        .ctx(OP, u)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .ctx(OP, u)?;
    let json = |text: Option<String>| -> Result<Option<serde_json::Value>, String> {
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| format!("conflict value is not JSON: {e}"))
        })
        .transpose()
    };
    rows.into_iter()
        .map(
            |(
                id,
                run_id,
                at,
                kind,
                crm_id,
                exchange_id,
                field,
                crm_value,
                exchange_value,
                winner,
                first_link,
                name,
            )| {
                Ok(ConflictRecord {
                    id,
                    run_id,
                    user: user.clone(),
                    at: parse_time(&at)?,
                    kind: parse_kind(&kind)?,
                    crm_id: CrmId(crm_id),
                    exchange_id: ExchangeId(exchange_id),
                    conflict: Conflict {
                        field,
                        crm_value: json(crm_value)?,
                        exchange_value: json(exchange_value)?,
                        winner: parse_side(&winner)?,
                        first_link,
                    },
                    name,
                })
            },
        )
        .map(|record: Result<ConflictRecord, String>| record.decoded(OP, u))
        .collect()
}

/// A table of those the last pass left out, keyed by one column: each one's latest details,
/// and when it was first and last found so (`first_seen`, `last_seen`).
pub(crate) struct LeftOut {
    pub(crate) table: &'static str,
    pub(crate) key: &'static str,
    /// The columns each finding sets after the key, in the order a row gives them.
    pub(crate) columns: &'static [&'static str],
}

/// CRM users left out because their address names no mailbox.
pub(crate) const SKIPPED_CRM_USERS: LeftOut = LeftOut {
    table: "skipped_crm_users",
    key: "crm_id",
    columns: &["address", "reason"],
};

/// Users a configuration names whom no active CRM user pairs with.
pub(crate) const UNMATCHED_USERS: LeftOut = LeftOut {
    table: "unmatched_users",
    key: "user_key",
    columns: &["reason"],
};

impl LeftOut {
    /// The insert-or-update of one row, its parameters numbered after `mark` (`?` or `$`):
    /// the key, the columns, then the time it was found. The names are the constants above,
    /// never outside text.
    pub(crate) fn upsert_sql(&self, mark: char) -> String {
        let at = self.columns.len() + 2;
        let names: Vec<&str> = std::iter::once(self.key)
            .chain(self.columns.iter().copied())
            .collect();
        let values: Vec<String> = (1..at).map(|n| format!("{mark}{n}")).collect();
        let updates: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{c} = excluded.{c}"))
            .collect();
        format!(
            "INSERT INTO {table} ({names}, first_seen, last_seen) VALUES ({values}, {mark}{at}, {mark}{at}) \
             ON CONFLICT ({key}) DO UPDATE SET {updates}, last_seen = excluded.last_seen",
            table = self.table,
            key = self.key,
            names = names.join(", "),
            values = values.join(", "),
            updates = updates.join(", "),
        )
    }
}

/// Makes `list` hold the rows a pass found at `at` and no others: one no longer found is
/// forgotten (it syncs now, or is gone), each found one is added or has its details and
/// last sighting updated. Each row is its key, then its values of `list.columns`.
fn record_left_out(
    conn: &mut Connection,
    op: &'static str,
    list: &LeftOut,
    rows: &[Vec<&str>],
    at: &DateTime<Utc>,
) -> StoreResult<()> {
    let at = time_text(at);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx(op, None)?;
    {
        let keep: std::collections::BTreeSet<&str> = rows.iter().map(|r| r[0]).collect();
        let known = tx
            .prepare_cached(&format!("SELECT {} FROM {}", list.key, list.table))
            .ctx(op, None)?
            .query_map([], |row| row.get::<_, String>(0))
            .ctx(op, None)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .ctx(op, None)?;
        let mut forget = tx
            .prepare_cached(&format!(
                "DELETE FROM {} WHERE {} = ?1",
                list.table, list.key
            ))
            .ctx(op, None)?;
        for key in known.iter().filter(|k| !keep.contains(k.as_str())) {
            forget.execute(params![key]).ctx(op, None)?;
        }
        let mut upsert = tx.prepare_cached(&list.upsert_sql('?')).ctx(op, None)?;
        for row in rows {
            let values = row.iter().copied().chain(std::iter::once(at.as_str()));
            upsert
                .execute(rusqlite::params_from_iter(values))
                .ctx(op, None)?;
        }
    }
    tx.commit().ctx(op, None)?;
    Ok(())
}

pub(crate) fn record_skipped_crm_users(
    conn: &mut Connection,
    skipped: &[CrmUserSkip],
    at: &DateTime<Utc>,
) -> StoreResult<()> {
    const OP: &str = "record skipped CRM users";
    let rows = skipped_rows(OP, skipped)?;
    record_left_out(conn, OP, &SKIPPED_CRM_USERS, &rows, at)
}

/// The rows of `skipped` for [`SKIPPED_CRM_USERS`], each address cut to what the status keeps;
/// a user without an id is refused.
pub(crate) fn skipped_rows<'a>(
    op: &'static str,
    skipped: &'a [CrmUserSkip],
) -> StoreResult<Vec<Vec<&'a str>>> {
    if let Some(empty) = skipped.iter().find(|s| s.crm_id.as_str().is_empty()) {
        return Err(StoreError::InvalidInput {
            op,
            reason: format!("a skipped CRM user ({}) has no id", empty.reason),
        });
    }
    Ok(skipped
        .iter()
        .map(|user| {
            let address = match user.address.char_indices().nth(SKIPPED_ADDRESS_MAX) {
                Some((end, _)) => &user.address[..end],
                None => user.address.as_str(),
            };
            vec![user.crm_id.as_str(), address, user.reason.as_str()]
        })
        .collect())
}

/// The rows of `users` for [`UNMATCHED_USERS`]; an empty user key is refused.
pub(crate) fn unmatched_rows<'a>(
    op: &'static str,
    users: &'a [(UserKey, String)],
) -> StoreResult<Vec<Vec<&'a str>>> {
    users
        .iter()
        .map(|(user, reason)| {
            check_key(op, user)?;
            Ok(vec![user.as_str(), reason.as_str()])
        })
        .collect()
}

pub(crate) fn record_unmatched_users(
    conn: &mut Connection,
    users: &[(UserKey, String)],
    at: &DateTime<Utc>,
) -> StoreResult<()> {
    const OP: &str = "record unmatched users";
    let rows = unmatched_rows(OP, users)?;
    record_left_out(conn, OP, &UNMATCHED_USERS, &rows, at)
}

pub(crate) fn unmatched_users(conn: &Connection) -> StoreResult<Vec<UnmatchedUser>> {
    const OP: &str = "list unmatched users";
    let rows = conn
        .prepare_cached(
            "SELECT user_key, reason, first_seen, last_seen FROM unmatched_users \
             ORDER BY user_key",
        )
        .ctx(OP, None)?
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
            ))
        })
        .ctx(OP, None)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .ctx(OP, None)?;
    rows.into_iter()
        .map(|(user, reason, first, last)| {
            Ok(UnmatchedUser {
                user: UserKey(user),
                reason,
                first_seen: parse_time(&first).decoded(OP, None)?,
                last_seen: parse_time(&last).decoded(OP, None)?,
            })
        })
        .collect()
}

pub(crate) fn skipped_crm_users(conn: &Connection) -> StoreResult<Vec<SkippedCrmUser>> {
    const OP: &str = "list skipped CRM users";
    let rows = conn
        .prepare_cached(
            "SELECT crm_id, address, reason, first_seen, last_seen FROM skipped_crm_users \
             ORDER BY crm_id",
        )
        .ctx(OP, None)?
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
            ))
        })
        .ctx(OP, None)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .ctx(OP, None)?;
    rows.into_iter()
        .map(|(crm_id, address, reason, first, last)| {
            Ok(SkippedCrmUser {
                crm_id: CrmId(crm_id),
                address,
                reason,
                first_seen: parse_time(&first).decoded(OP, None)?,
                last_seen: parse_time(&last).decoded(OP, None)?,
            })
        })
        .collect()
}
