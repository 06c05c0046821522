//! Per-user status on PostgreSQL: the users table, pass history, unresolved items, conflicts,
//! Reset Sync and the CRM users left out.

use chrono::{DateTime, Utc};
use exsync_core::plan::Conflict;
use exsync_core::{CrmId, ExchangeId, UserKey};
use postgres::{Client, GenericClient, Row};

use super::codec::Ctx;
use crate::error::{StoreError, StoreResult};
use crate::sqlite::codec::{
    count, item_id, limit, parse_kind, parse_side, parse_time, time_text, Decode,
};
use crate::sqlite::users::{
    check_key, skipped_rows, unmatched_rows, LeftOut, RunRow, StatusRow, RUN_COLUMNS,
    SKIPPED_CRM_USERS, STATUS_SELECT, UNMATCHED_USERS,
};
use crate::types::{
    ConflictRecord, CrmUserSkip, ResetCounts, RunRecord, SkippedCrmUser, UnmatchedUser,
    UnresolvedItem, UserStatus,
};

pub(super) fn insert_user(
    client: &mut impl GenericClient,
    user: &UserKey,
    at: &str,
) -> Result<u64, postgres::Error> {
    client.execute(
        "INSERT INTO users (user_key, created_at) VALUES ($1, $2) ON CONFLICT (user_key) DO NOTHING",
        &[&user.as_str(), &at],
    )
}

/// Keeps the first pause time when an already paused user is paused again.
pub(super) fn pause(
    client: &mut impl GenericClient,
    user: &UserKey,
    reason: &str,
    at: &str,
) -> Result<u64, postgres::Error> {
    client.execute(
        "UPDATE users SET paused = TRUE, paused_reason = $2, \
         paused_at = CASE WHEN paused THEN paused_at ELSE $3 END WHERE user_key = $1",
        &[&user.as_str(), &reason, &at],
    )
}

fn unpause(client: &mut impl GenericClient, user: &UserKey) -> Result<u64, postgres::Error> {
    client.execute(
        "UPDATE users SET paused = FALSE, paused_reason = NULL, paused_at = NULL \
         WHERE user_key = $1 AND paused",
        &[&user.as_str()],
    )
}

pub(super) fn ensure_user(client: &mut Client, user: &UserKey) -> StoreResult<()> {
    const OP: &str = "register user";
    check_key(OP, user)?;
    insert_user(client, user, &time_text(&Utc::now())).ctx(OP, Some(user))?;
    Ok(())
}

pub(super) fn set_paused(
    client: &mut Client,
    user: &UserKey,
    reason: Option<&str>,
) -> StoreResult<()> {
    const OP: &str = "set paused";
    check_key(OP, user)?;
    let u = Some(user);
    if reason.is_some_and(|r| r.trim().is_empty()) {
        return Err(StoreError::InvalidInput {
            op: OP,
            reason: "a pause needs a reason".into(),
        });
    }
    let now = time_text(&Utc::now());
    let mut tx = client.transaction().ctx(OP, u)?;
    insert_user(&mut tx, user, &now).ctx(OP, u)?;
    match reason {
        Some(reason) => {
            pause(&mut tx, user, reason, &now).ctx(OP, u)?;
        }
        None => {
            unpause(&mut tx, user).ctx(OP, u)?;
        }
    }
    tx.commit().ctx(OP, u)?;
    match reason {
        Some(reason) => tracing::info!(user = %user, reason, "user paused"),
        None => tracing::info!(user = %user, "user un-paused"),
    }
    Ok(())
}

pub(super) fn reset_user(client: &mut Client, user: &UserKey) -> StoreResult<ResetCounts> {
    const OP: &str = "reset sync";
    let u = Some(user);
    let mut tx = client.transaction().ctx(OP, u)?;
    let pairs = tx
        .execute("DELETE FROM pairs WHERE user_key = $1", &[&user.as_str()])
        .ctx(OP, u)?;
    let cursors = tx
        .execute(
            "DELETE FROM cursors WHERE scope_kind = 'folder' AND user_key = $1",
            &[&user.as_str()],
        )
        .ctx(OP, u)?;
    tx.execute("DELETE FROM intents WHERE user_key = $1", &[&user.as_str()])
        .ctx(OP, u)?;
    let was_paused = unpause(&mut tx, user).ctx(OP, u)? > 0;
    tx.commit().ctx(OP, u)?;
    tracing::info!(user = %user, pairs, cursors, was_paused, "sync reset");
    Ok(ResetCounts {
        pairs,
        cursors,
        was_paused,
    })
}

/// Reads the fourteen run columns starting at `at`.
fn run_row(row: &Row, at: usize) -> Result<RunRow, postgres::Error> {
    Ok(RunRow {
        id: row.try_get(at)?,
        user_key: row.try_get(at + 1)?,
        started: row.try_get(at + 2)?,
        finished: row.try_get(at + 3)?,
        counts: [
            row.try_get(at + 4)?,
            row.try_get(at + 5)?,
            row.try_get(at + 6)?,
            row.try_get(at + 7)?,
            row.try_get(at + 8)?,
        ],
        error: row.try_get(at + 9)?,
        notices: row.try_get(at + 10)?,
        backend: row.try_get(at + 11)?,
        configuration: row.try_get(at + 12)?,
        via_group: row.try_get(at + 13)?,
    })
}

pub(super) fn runs(client: &mut Client, user: &UserKey, max: usize) -> StoreResult<Vec<RunRecord>> {
    const OP: &str = "list runs";
    let u = Some(user);
    let sql =
        format!("SELECT {RUN_COLUMNS} FROM runs WHERE user_key = $1 ORDER BY id DESC LIMIT $2");
    let rows = client
        .query(&sql, &[&user.as_str(), &limit(max)])
        .ctx(OP, u)?;
    rows.iter()
        .map(|row| run_row(row, 0).ctx(OP, u)?.decode().decoded(OP, u))
        .collect()
}

fn status_row(row: &Row) -> Result<StatusRow, postgres::Error> {
    let run_id: Option<i64> = row.try_get(6)?;
    Ok(StatusRow {
        user_key: row.try_get(0)?,
        paused_reason: row.try_get(1)?,
        paused_at: row.try_get(2)?,
        contacts: row.try_get(3)?,
        events: row.try_get(4)?,
        unresolved: row.try_get(5)?,
        run: run_id.map(|_| run_row(row, 6)).transpose()?,
    })
}

pub(super) fn user_status(client: &mut Client, user: &UserKey) -> StoreResult<Option<UserStatus>> {
    const OP: &str = "read user status";
    let u = Some(user);
    let sql = format!("{STATUS_SELECT} WHERE u.user_key = $1");
    let row = client.query_opt(&sql, &[&user.as_str()]).ctx(OP, u)?;
    row.map(|row| status_row(&row).ctx(OP, u)?.decode().decoded(OP, u))
        .transpose()
}

pub(super) fn list_users(client: &mut Client) -> StoreResult<Vec<UserStatus>> {
    const OP: &str = "list users";
    let sql = format!("{STATUS_SELECT} ORDER BY u.user_key");
    let rows = client.query(&sql, &[]).ctx(OP, None)?;
    rows.iter()
        .map(|row| status_row(row).ctx(OP, None)?.decode().decoded(OP, None))
        .collect()
}

pub(super) fn unresolved(client: &mut Client, user: &UserKey) -> StoreResult<Vec<UnresolvedItem>> {
    const OP: &str = "list unresolved items";
    let u = Some(user);
    let rows = client
        .query(
            "SELECT kind, side, item_id, reason, first_seen, last_seen, occurrences, name \
             FROM unresolved WHERE user_key = $1 ORDER BY first_seen, kind, side, item_id",
            &[&user.as_str()],
        )
        .ctx(OP, u)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let kind: String = row.try_get(0).ctx(OP, u)?;
        let side: String = row.try_get(1).ctx(OP, u)?;
        let id: String = row.try_get(2).ctx(OP, u)?;
        let reason: String = row.try_get(3).ctx(OP, u)?;
        let first_seen: String = row.try_get(4).ctx(OP, u)?;
        let last_seen: String = row.try_get(5).ctx(OP, u)?;
        let occurrences: i64 = row.try_get(6).ctx(OP, u)?;
        let name: Option<String> = row.try_get(7).ctx(OP, u)?;
        let item: Result<UnresolvedItem, String> = (|| {
            Ok(UnresolvedItem {
                kind: parse_kind(&kind)?,
                id: item_id(parse_side(&side)?, id),
                reason,
                first_seen: parse_time(&first_seen)?,
                last_seen: parse_time(&last_seen)?,
                occurrences: count(occurrences)?,
                name,
            })
        })();
        out.push(item.decoded(OP, u)?);
    }
    Ok(out)
}

pub(super) fn conflicts(
    client: &mut Client,
    user: &UserKey,
    max: usize,
) -> StoreResult<Vec<ConflictRecord>> {
    const OP: &str = "list conflicts";
    let u = Some(user);
    let rows = client
        .query(
            "SELECT id, run_id, at, kind, crm_id, exchange_id, field, crm_value, exchange_value, \
             winner, first_link, name FROM conflicts WHERE user_key = $1 \
             ORDER BY id DESC LIMIT $2",
            &[&user.as_str(), &limit(max)],
        )
        .ctx(OP, u)?;
    let json = |text: Option<String>| -> Result<Option<serde_json::Value>, String> {
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| format!("conflict value is not JSON: {e}"))
        })
        .transpose()
    };
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let at: String = row.try_get(2).ctx(OP, u)?;
        let kind: String = row.try_get(3).ctx(OP, u)?;
        let winner: String = row.try_get(9).ctx(OP, u)?;
        let crm_value: Option<String> = row.try_get(7).ctx(OP, u)?;
        let exchange_value: Option<String> = row.try_get(8).ctx(OP, u)?;
        let name: Option<String> = row.try_get(11).ctx(OP, u)?;
        let record: Result<ConflictRecord, String> = (|| {
            Ok(ConflictRecord {
                id: row.try_get(0).map_err(|e| e.to_string())?,
                run_id: row.try_get(1).map_err(|e| e.to_string())?,
                user: user.clone(),
                at: parse_time(&at)?,
                kind: parse_kind(&kind)?,
                crm_id: CrmId(row.try_get(4).map_err(|e| e.to_string())?),
                exchange_id: ExchangeId(row.try_get(5).map_err(|e| e.to_string())?),
                conflict: Conflict {
                    field: row.try_get(6).map_err(|e| e.to_string())?,
                    crm_value: json(crm_value)?,
                    exchange_value: json(exchange_value)?,
                    winner: parse_side(&winner)?,
                    first_link: row.try_get(10).map_err(|e| e.to_string())?,
                },
                name,
            })
        })();
        out.push(record.decoded(OP, u)?);
    }
    Ok(out)
}

/// Makes `list` hold the rows a pass found at `at` and no others, as SQLite's
/// `record_left_out` does: one no longer found is forgotten, each found one added or updated.
fn record_left_out(
    client: &mut Client,
    op: &'static str,
    list: &LeftOut,
    rows: &[Vec<&str>],
    at: &DateTime<Utc>,
) -> StoreResult<()> {
    let at = time_text(at);
    let at = at.as_str();
    let keep: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    let mut tx = client.transaction().ctx(op, None)?;
    tx.execute(
        &format!(
            "DELETE FROM {} WHERE NOT ({} = ANY($1))",
            list.table, list.key
        ),
        &[&keep],
    )
    .ctx(op, None)?;
    let upsert = tx.prepare(&list.upsert_sql('$')).ctx(op, None)?;
    for row in rows {
        let values: Vec<&(dyn postgres::types::ToSql + Sync)> = row
            .iter()
            .chain(std::iter::once(&at))
            .map(|v| v as &(dyn postgres::types::ToSql + Sync))
            .collect();
        tx.execute(&upsert, &values).ctx(op, None)?;
    }
    tx.commit().ctx(op, None)
}

pub(super) fn record_skipped_crm_users(
    client: &mut Client,
    skipped: &[CrmUserSkip],
    at: &DateTime<Utc>,
) -> StoreResult<()> {
    const OP: &str = "record skipped CRM users";
    let rows = skipped_rows(OP, skipped)?;
    record_left_out(client, OP, &SKIPPED_CRM_USERS, &rows, at)
}

pub(super) fn record_unmatched_users(
    client: &mut Client,
    users: &[(UserKey, String)],
    at: &DateTime<Utc>,
) -> StoreResult<()> {
    const OP: &str = "record unmatched users";
    let rows = unmatched_rows(OP, users)?;
    record_left_out(client, OP, &UNMATCHED_USERS, &rows, at)
}

pub(super) fn unmatched_users(client: &mut Client) -> StoreResult<Vec<UnmatchedUser>> {
    const OP: &str = "list unmatched users";
    let rows = client
        .query(
            "SELECT user_key, reason, first_seen, last_seen FROM unmatched_users \
             ORDER BY user_key",
            &[],
        )
        .ctx(OP, None)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let first: String = row.try_get(2).ctx(OP, None)?;
        let last: String = row.try_get(3).ctx(OP, None)?;
        out.push(UnmatchedUser {
            user: UserKey(row.try_get(0).ctx(OP, None)?),
            reason: row.try_get(1).ctx(OP, None)?,
            first_seen: parse_time(&first).decoded(OP, None)?,
            last_seen: parse_time(&last).decoded(OP, None)?,
        });
    }
    Ok(out)
}

pub(super) fn skipped_crm_users(client: &mut Client) -> StoreResult<Vec<SkippedCrmUser>> {
    const OP: &str = "list skipped CRM users";
    let rows = client
        .query(
            "SELECT crm_id, address, reason, first_seen, last_seen FROM skipped_crm_users \
             ORDER BY crm_id",
            &[],
        )
        .ctx(OP, None)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let first: String = row.try_get(3).ctx(OP, None)?;
        let last: String = row.try_get(4).ctx(OP, None)?;
        out.push(SkippedCrmUser {
            crm_id: CrmId(row.try_get(0).ctx(OP, None)?),
            address: row.try_get(1).ctx(OP, None)?,
            reason: row.try_get(2).ctx(OP, None)?,
            first_seen: parse_time(&first).decoded(OP, None)?,
            last_seen: parse_time(&last).decoded(OP, None)?,
        });
    }
    Ok(out)
}
