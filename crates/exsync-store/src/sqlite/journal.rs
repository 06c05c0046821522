//! The intent journal: writes a pass is about to make, kept until a commit stores their
//! outcome (see [`crate::Intent`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use exsync_core::plan::Op;
use exsync_core::{ItemId, ItemKind, UserKey};
use rusqlite::{params, Connection, OptionalExtension};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

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

/// The most writes one batch row holds: an intent's id is its batch's id times this plus its
/// place in the batch.
const BATCH: i64 = 1024;

/// Inserts the writes as batches of at most [`BATCH`], in one transaction, returning their
/// ids.
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
                "INSERT INTO intent_batches (user_key, kind, ops, writes, journaled_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .ctx(OP, u)?;
        for chunk in ops.chunks(BATCH as usize) {
            let json = serde_json::to_string(chunk).map_err(|e| StoreError::InvalidInput {
                op: OP,
                reason: format!("a write cannot be journaled: {e}"),
            })?;
            insert
                .execute(params![user.as_str(), kind.as_str(), json, chunk.len(), at])
                .ctx(OP, u)?;
            let first = tx.last_insert_rowid().checked_mul(BATCH).ok_or_else(|| {
                StoreError::InvalidInput {
                    op: OP,
                    reason: "the journal has run out of batch ids".to_owned(),
                }
            })?;
            ids.extend((0..chunk.len()).map(|place| first + place as i64));
        }
    }
    tx.commit().ctx(OP, u)?;
    Ok(ids)
}

/// Marks intents as handed to their side; ids no longer journaled are ignored.
pub(crate) fn mark_sent(conn: &mut Connection, ids: &[i64]) -> StoreResult<()> {
    const OP: &str = "mark writes sent";
    let tx = conn.transaction().ctx(OP, None)?;
    for (batch, places) in by_batch(ids.iter().map(|id| (*id, ()))) {
        update_marks(&tx, OP, batch, |marks| {
            marks.sent.extend(places.iter().map(|(place, ())| place));
        })?;
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
    for (batch, answered) in by_batch(answers.iter().map(|(id, answer)| (*id, answer))) {
        update_marks(&tx, op, batch, |marks| {
            for (place, answer) in answered {
                marks.answered.insert(place, answer.as_str().to_owned());
            }
        })?;
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

/// Removes settled intents inside a commit's transaction: a batch whose every write is
/// settled goes, with its marks; one settled in part keeps the rest.
pub(crate) fn settle(conn: &Connection, op: &'static str, ids: &[i64]) -> StoreResult<()> {
    for (batch, places) in by_batch(ids.iter().map(|id| (*id, ()))) {
        let Some((writes, mut marks)) = read_marks(conn, op, batch)? else {
            continue;
        };
        marks.settled.extend(places.iter().map(|(place, ())| place));
        marks.keep_within(writes);
        if marks.settled.len() == usize::from(writes) {
            conn.prepare_cached("DELETE FROM intent_batches WHERE id = ?1")
                .ctx(op, None)?
                .execute([batch])
                .ctx(op, None)?;
        } else {
            write_marks(conn, op, batch, &marks)?;
        }
    }
    Ok(())
}

/// A batch's marks, kept as JSON beside it (see migration V17), each keyed by the write's
/// place in the batch.
#[derive(Default, Serialize, Deserialize)]
struct Marks {
    /// Writes handed to their side.
    sent: BTreeSet<u16>,
    /// The ids creates were answered with.
    answered: BTreeMap<u16, String>,
    /// Writes a commit settled; the rest are outstanding.
    settled: BTreeSet<u16>,
}

impl Marks {
    /// Drops marks of places a batch of `writes` does not have, and a settled write's other
    /// marks, which are of no more use.
    fn keep_within(&mut self, writes: u16) {
        let Marks {
            sent,
            answered,
            settled,
        } = self;
        settled.retain(|place| *place < writes);
        sent.retain(|place| *place < writes && !settled.contains(place));
        answered.retain(|place, _| *place < writes && !settled.contains(place));
    }
}

/// `items` grouped by the batch their intent id names, each with its place in the batch. An
/// id no batch could have given, such as a negative one, names nothing.
fn by_batch<T>(items: impl IntoIterator<Item = (i64, T)>) -> BTreeMap<i64, Vec<(u16, T)>> {
    let mut batches: BTreeMap<i64, Vec<(u16, T)>> = BTreeMap::new();
    for (id, item) in items {
        if let (true, Ok(place)) = (id >= 0, u16::try_from(id % BATCH)) {
            batches.entry(id / BATCH).or_default().push((place, item));
        }
    }
    batches
}

/// Changes a batch's marks, in the caller's transaction. A batch no longer journaled is left
/// alone ([`Marks::keep_within`] says which marks are kept).
fn update_marks(
    conn: &Connection,
    op: &'static str,
    batch: i64,
    change: impl FnOnce(&mut Marks),
) -> StoreResult<()> {
    let Some((writes, mut marks)) = read_marks(conn, op, batch)? else {
        return Ok(());
    };
    change(&mut marks);
    marks.keep_within(writes);
    write_marks(conn, op, batch, &marks)
}

/// A batch's number of writes and its marks; `None` when the batch is no longer journaled.
fn read_marks(
    conn: &Connection,
    op: &'static str,
    batch: i64,
) -> StoreResult<Option<(u16, Marks)>> {
    let row = conn
        .prepare_cached(
            "SELECT b.writes, m.sent, m.answered, m.settled FROM intent_batches AS b \
             LEFT JOIN intent_marks AS m ON m.batch = b.id WHERE b.id = ?1",
        )
        .ctx(op, None)?
        .query_row([batch], |row| {
            Ok((
                row.get::<_, u16>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, Option<String>>(3)?,
            ))
        })
        .optional()
        .ctx(op, None)?;
    let Some((writes, sent, answered, settled)) = row else {
        return Ok(None);
    };
    let marks = match (sent, answered, settled) {
        (Some(sent), Some(answered), Some(settled)) => Marks {
            sent: from_json(op, batch, &sent)?,
            answered: from_json(op, batch, &answered)?,
            settled: from_json(op, batch, &settled)?,
        },
        _ => Marks::default(),
    };
    Ok(Some((writes, marks)))
}

fn from_json<T: DeserializeOwned>(op: &'static str, batch: i64, json: &str) -> StoreResult<T> {
    serde_json::from_str(json)
        .map_err(|e| format!("the marks of journaled batch {batch} are unreadable: {e}"))
        .decoded(op, None)
}

fn write_marks(conn: &Connection, op: &'static str, batch: i64, marks: &Marks) -> StoreResult<()> {
    let text = |json: serde_json::Result<String>| {
        json.map_err(|e| StoreError::InvalidInput {
            op,
            reason: format!("marks cannot be journaled: {e}"),
        })
    };
    conn.prepare_cached(
        "INSERT INTO intent_marks (batch, sent, answered, settled) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (batch) DO UPDATE SET sent = excluded.sent, \
         answered = excluded.answered, settled = excluded.settled",
    )
    .ctx(op, None)?
    .execute(params![
        batch,
        text(serde_json::to_string(&marks.sent))?,
        text(serde_json::to_string(&marks.answered))?,
        text(serde_json::to_string(&marks.settled))?,
    ])
    .ctx(op, None)?;
    Ok(())
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
    use super::{by_batch, BATCH};

    #[test]
    fn ids_are_grouped_by_batch_and_ids_of_no_batch_are_ignored() {
        let ids = [3 * BATCH + 2, 3 * BATCH, 5 * BATCH + 1023, -1, i64::MIN, 7];
        let grouped: Vec<(i64, Vec<u16>)> = by_batch(ids.iter().map(|id| (*id, ())))
            .into_iter()
            .map(|(batch, places)| (batch, places.into_iter().map(|(p, ())| p).collect()))
            .collect();
        assert_eq!(grouped, [(0, vec![7]), (3, vec![2, 0]), (5, vec![1023])]);
    }
}
