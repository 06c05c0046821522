//! The intent journal: writes a pass is about to make, kept until a commit stores their
//! outcome (see [`crate::Intent`]).

use chrono::{DateTime, Utc};
use exsync_core::plan::Op;
use exsync_core::{ItemId, ItemKind, UserKey};
use rusqlite::{params, Connection};

use super::codec::{parse_kind, parse_time, time_text, Ctx, Decode};
use super::users::insert_user;
use crate::error::{StoreError, StoreResult};
use crate::types::Intent;

/// Journals `ops` (writes only) for the user in one transaction; returns their ids in order.
///
/// The transaction is not synced to disk on its own: the writes go out only after
/// [`mark_sent`]'s commit, which is, and which makes this one durable with it (a state
/// database on disk is always in WAL mode, where a synced commit syncs the log's earlier
/// commits too). Lost to a power cut before that, the entries were of writes never sent,
/// which need no settling.
pub(crate) fn journal(
    conn: &mut Connection,
    user: &UserKey,
    kind: ItemKind,
    ops: &[&Op],
    at: &DateTime<Utc>,
) -> StoreResult<Vec<i64>> {
    const OP: &str = "journal writes";
    let u = Some(user);
    if let Some(op) = ops.iter().find(|op| !op.writes()) {
        return Err(StoreError::InvalidInput {
            op: OP,
            reason: format!("only writes are journaled, not {op:?}"),
        });
    }
    let at = time_text(at);
    unsynced(conn, OP, u, |conn| entries(conn, user, kind, ops, &at))
}

/// Runs `commit`, whose transaction is not synced to disk on its own: the next synced commit
/// of the store syncs it too.
fn unsynced<T>(
    conn: &mut Connection,
    op: &'static str,
    user: Option<&UserKey>,
    commit: impl FnOnce(&mut Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    conn.pragma_update(None, "synchronous", "NORMAL")
        .ctx(op, user)?;
    let done = commit(conn);
    // Every other commit of the store is synced, whatever became of this one.
    let synced = conn
        .pragma_update(None, "synchronous", "FULL")
        .ctx(op, user);
    if let Err(e) = &synced {
        tracing::error!(error = %e, "the state database could not return to synced commits");
    }
    let done = done?;
    synced?;
    Ok(done)
}

/// Inserts the entries in one transaction, returning their ids.
fn entries(
    conn: &mut Connection,
    user: &UserKey,
    kind: ItemKind,
    ops: &[&Op],
    at: &str,
) -> StoreResult<Vec<i64>> {
    const OP: &str = "journal writes";
    let u = Some(user);
    let tx = conn.transaction().ctx(OP, u)?;
    insert_user(&tx, user, at).ctx(OP, u)?;
    let mut ids = Vec::with_capacity(ops.len());
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO intents (user_key, kind, op, journaled_at) VALUES (?1, ?2, ?3, ?4)",
            )
            .ctx(OP, u)?;
        for op in ops {
            let json = serde_json::to_string(op).map_err(|e| StoreError::InvalidInput {
                op: OP,
                reason: format!("a write cannot be journaled: {e}"),
            })?;
            insert
                .execute(params![user.as_str(), kind.as_str(), json, at])
                .ctx(OP, u)?;
            ids.push(tx.last_insert_rowid());
        }
    }
    tx.commit().ctx(OP, u)?;
    Ok(ids)
}

/// Marks intents as handed to their side; ids no longer journaled are ignored.
pub(crate) fn mark_sent(conn: &mut Connection, ids: &[i64]) -> StoreResult<()> {
    const OP: &str = "mark writes sent";
    let tx = conn.transaction().ctx(OP, None)?;
    {
        let mut mark = tx
            .prepare_cached(
                "INSERT INTO intents_sent (id) SELECT id FROM intents WHERE id BETWEEN ?1 AND ?2 \
                 ON CONFLICT DO NOTHING",
            )
            .ctx(OP, None)?;
        for (first, last) in runs(ids) {
            mark.execute([first, last]).ctx(OP, None)?;
        }
    }
    tx.commit().ctx(OP, None)
}

/// Stores the id each create's side answered with; ids no longer journaled are ignored.
///
/// Not synced on its own, as the batch's commit follows at once and is: a power cut in
/// between loses the answers, and the next pass finds the copies by their tag, as after a
/// crash before the answers came back. A crash of the process alone loses nothing.
pub(crate) fn mark_answered(conn: &mut Connection, answers: &[(i64, ItemId)]) -> StoreResult<()> {
    const OP: &str = "record write answers";
    check_answers(OP, answers)?;
    unsynced(conn, OP, None, |conn| store_answers(conn, OP, answers))
}

fn store_answers(
    conn: &mut Connection,
    op: &'static str,
    answers: &[(i64, ItemId)],
) -> StoreResult<()> {
    let tx = conn.transaction().ctx(op, None)?;
    {
        let mut mark = tx
            .prepare_cached(
                "INSERT INTO intents_answered (id, answered_id) \
                 SELECT id, ?2 FROM intents WHERE id = ?1 \
                 ON CONFLICT (id) DO UPDATE SET answered_id = excluded.answered_id",
            )
            .ctx(op, None)?;
        for (id, answered) in answers {
            mark.execute(params![id, answered.as_str()]).ctx(op, None)?;
        }
    }
    tx.commit().ctx(op, None)
}

/// Refuses an answer no side could have given: an empty id would read back as a copy that
/// exists nowhere.
pub(crate) fn check_answers(op: &'static str, answers: &[(i64, ItemId)]) -> StoreResult<()> {
    match answers.iter().find(|(_, id)| id.as_str().is_empty()) {
        Some((intent, _)) => Err(StoreError::InvalidInput {
            op,
            reason: format!("journaled write {intent} answered with an empty id"),
        }),
        None => Ok(()),
    }
}

/// Removes settled intents inside a commit's transaction; their marks go with them.
pub(crate) fn settle(conn: &Connection, ids: &[i64]) -> rusqlite::Result<()> {
    let mut remove = conn.prepare_cached("DELETE FROM intents WHERE id BETWEEN ?1 AND ?2")?;
    for (first, last) in runs(ids) {
        remove.execute([first, last])?;
    }
    Ok(())
}

/// `ids` as runs of consecutive ids, first and last of each: a batch's intents were journaled
/// together, so its ids are consecutive and one statement covers the batch.
fn runs(ids: &[i64]) -> Vec<(i64, i64)> {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for id in sorted {
        match runs.last_mut() {
            Some((_, last)) if last.checked_add(1) == Some(id) => *last = id,
            _ => runs.push((id, id)),
        }
    }
    runs
}

/// The user's outstanding intents of one kind, oldest first.
pub(crate) fn outstanding(
    conn: &Connection,
    user: &UserKey,
    kind: ItemKind,
) -> StoreResult<Vec<Intent>> {
    const OP: &str = "read the journal";
    let u = Some(user);
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, kind, op, sent, journaled_at, answered_id FROM intents_marked
             WHERE user_key = ?1 AND kind = ?2 ORDER BY id",
        )
        .ctx(OP, u)?;
    let rows = stmt
        .query_map(params![user.as_str(), kind.as_str()], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, bool>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, Option<String>>(5)?,
            ))
        })
        .ctx(OP, u)?;
    let mut intents = Vec::new();
    for row in rows {
        let (id, kind, op, sent, at, answered) = row.ctx(OP, u)?;
        let op: Op = serde_json::from_str(&op)
            .map_err(|e| format!("journaled write {id} is unreadable: {e}"))
            .decoded(OP, u)?;
        intents.push(Intent {
            id,
            user: user.clone(),
            kind: parse_kind(&kind).decoded(OP, u)?,
            sent,
            journaled_at: parse_time(&at).decoded(OP, u)?,
            answered: Intent::answer_of(&op, answered),
            op,
        });
    }
    Ok(intents)
}

#[cfg(test)]
mod tests {
    use super::runs;

    #[test]
    fn ids_go_in_runs_of_consecutive_ids_and_no_other_id_is_covered() {
        assert_eq!(runs(&[]), []);
        assert_eq!(runs(&[7]), [(7, 7)]);
        assert_eq!(
            runs(&[5, 3, 4, 9, 10, 4, 12, i64::MAX, i64::MAX - 1]),
            [(3, 5), (9, 10), (12, 12), (i64::MAX - 1, i64::MAX)]
        );
    }
}
