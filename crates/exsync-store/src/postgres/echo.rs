//! The CRM echo log, the intent journal and console settings on PostgreSQL.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use exsync_core::plan::Op;
use exsync_core::{CrmId, ItemId, ItemKind, UserKey};
use postgres::{Client, GenericClient};

use super::codec::Ctx;
use super::leases::{self, Fence};
use super::users::insert_user;
use crate::error::{StoreError, StoreResult};
use crate::roles::LeaseScope;
use crate::sqlite::codec::{non_empty, parse_kind, parse_time, time_text, Decode};
use crate::sqlite::journal::check_answers;
use crate::types::{CrmWrite, Intent};

/// Adds `writes` to the echo log in one statement, whatever their number. `user` wins over a
/// write's own user: inside a pass commit every write belongs to the pass's user. The users
/// must be registered already. A write logged before (the same id and SystemModstamp) takes
/// the details of the last one given.
pub(super) fn insert_crm_writes(
    client: &mut impl GenericClient,
    writes: &[CrmWrite],
    user: Option<&UserKey>,
) -> Result<(), postgres::Error> {
    // One row per (id, SystemModstamp): a statement cannot update a row twice.
    let mut last: HashMap<(&str, &str), &CrmWrite> = HashMap::with_capacity(writes.len());
    let mut order: Vec<(&str, &str)> = Vec::with_capacity(writes.len());
    for write in writes {
        let key = (write.crm_id.as_str(), write.system_modstamp.as_str());
        if last.insert(key, write).is_none() {
            order.push(key);
        }
    }
    if order.is_empty() {
        return Ok(());
    }
    let rows: Vec<&CrmWrite> = order
        .iter()
        .filter_map(|key| last.get(key).copied())
        .collect();
    let crm_ids: Vec<&str> = rows.iter().map(|w| w.crm_id.as_str()).collect();
    let modstamps: Vec<&str> = rows.iter().map(|w| w.system_modstamp.as_str()).collect();
    let kinds: Vec<&str> = rows.iter().map(|w| w.kind.as_str()).collect();
    let users: Vec<Option<&str>> = rows
        .iter()
        .map(|w| user.or(w.user.as_ref()).map(UserKey::as_str))
        .collect();
    let times: Vec<String> = rows.iter().map(|w| time_text(&w.written_at)).collect();
    client.execute(
        "INSERT INTO crm_writes (crm_id, system_modstamp, kind, user_key, written_at) \
         SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[]) \
         ON CONFLICT (crm_id, system_modstamp) DO UPDATE SET \
         kind = excluded.kind, user_key = excluded.user_key, written_at = excluded.written_at",
        &[&crm_ids, &modstamps, &kinds, &users, &times],
    )?;
    Ok(())
}

pub(super) fn record(
    client: &mut Client,
    writes: &[CrmWrite],
    fence_of: &(dyn Fn(&UserKey) -> Fence + Sync),
) -> StoreResult<()> {
    const OP: &str = "record CRM writes";
    if let Some(bad) = writes
        .iter()
        .find(|w| w.crm_id.as_str().is_empty() || w.system_modstamp.is_empty())
    {
        return Err(StoreError::InvalidInput {
            op: OP,
            reason: format!("an echo-log entry needs an id and a SystemModstamp ({bad:?})"),
        });
    }
    let mut tx = client.transaction().ctx(OP, None)?;
    let users: BTreeSet<&UserKey> = writes.iter().filter_map(|w| w.user.as_ref()).collect();
    for user in users {
        leases::check(
            &mut tx,
            OP,
            &LeaseScope::User(user.clone()),
            &fence_of(user),
        )?;
        // Registered as of their first write, as one write at a time did.
        let at = writes
            .iter()
            .find(|w| w.user.as_ref() == Some(user))
            .map(|w| time_text(&w.written_at))
            .unwrap_or_default();
        insert_user(&mut tx, user, &at).ctx(OP, Some(user))?;
    }
    insert_crm_writes(&mut tx, writes, None).ctx(OP, None)?;
    tx.commit().ctx(OP, None)
}

pub(super) fn is_own(client: &mut Client, crm_id: &CrmId, modstamp: &str) -> StoreResult<bool> {
    const OP: &str = "look up CRM write";
    let row = client
        .query_opt(
            "SELECT 1 FROM crm_writes WHERE crm_id = $1 AND system_modstamp = $2",
            &[&crm_id.as_str(), &modstamp],
        )
        .ctx(OP, None)?;
    Ok(row.is_some())
}

pub(super) fn since(client: &mut Client, since: DateTime<Utc>) -> StoreResult<Vec<CrmWrite>> {
    const OP: &str = "list CRM writes";
    let rows = client
        .query(
            "SELECT crm_id, system_modstamp, kind, user_key, written_at FROM crm_writes \
             WHERE written_at >= $1 ORDER BY written_at, crm_id, system_modstamp",
            &[&time_text(&since)],
        )
        .ctx(OP, None)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let kind: String = row.try_get(2).ctx(OP, None)?;
        let user: Option<String> = row.try_get(3).ctx(OP, None)?;
        let written_at: String = row.try_get(4).ctx(OP, None)?;
        out.push(CrmWrite {
            crm_id: CrmId(row.try_get(0).ctx(OP, None)?),
            system_modstamp: row.try_get(1).ctx(OP, None)?,
            kind: parse_kind(&kind).decoded(OP, None)?,
            user: user.map(UserKey),
            written_at: parse_time(&written_at).decoded(OP, None)?,
        });
    }
    Ok(out)
}

pub(super) fn prune(client: &mut Client, before: DateTime<Utc>) -> StoreResult<u64> {
    const OP: &str = "prune CRM writes";
    client
        .execute(
            "DELETE FROM crm_writes WHERE written_at < $1",
            &[&time_text(&before)],
        )
        .ctx(OP, None)
}

// ---- the intent journal ----------------------------------------------------------------------

pub(super) fn journal(
    client: &mut Client,
    user: &UserKey,
    kind: ItemKind,
    ops: &[&Op],
    at: &DateTime<Utc>,
    fence: &Fence,
) -> StoreResult<Vec<i64>> {
    const OP: &str = "journal writes";
    let u = Some(user);
    if let Some(op) = ops.iter().find(|op| !op.writes()) {
        return Err(StoreError::InvalidInput {
            op: OP,
            reason: format!("only writes are journaled, not {op:?}"),
        });
    }
    let mut texts = Vec::with_capacity(ops.len());
    for op in ops {
        texts.push(
            serde_json::to_string(op).map_err(|e| StoreError::InvalidInput {
                op: OP,
                reason: format!("a write cannot be journaled: {e}"),
            })?,
        );
    }
    let at = time_text(at);
    let mut tx = client.transaction().ctx(OP, u)?;
    leases::check(&mut tx, OP, &LeaseScope::User(user.clone()), fence)?;
    insert_user(&mut tx, user, &at).ctx(OP, u)?;
    // Two round trips whatever the batch holds: its ids are taken from the sequence first, in
    // ascending order, so the entries read back in plan order; then one insert names them.
    let count = i64::try_from(texts.len()).unwrap_or(i64::MAX);
    let ids: Vec<i64> = tx
        .query(
            "SELECT nextval(pg_get_serial_sequence('intents', 'id')) AS id \
             FROM generate_series(1, $1::BIGINT) ORDER BY id",
            &[&count],
        )
        .ctx(OP, u)?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .ctx(OP, u)?;
    tx.execute(
        "INSERT INTO intents (id, user_key, kind, op, journaled_at) \
         SELECT e.id, $2, $3, e.op, $5 FROM unnest($1::BIGINT[], $4::TEXT[]) AS e(id, op)",
        &[&ids, &user.as_str(), &kind.as_str(), &texts, &at],
    )
    .ctx(OP, u)?;
    tx.commit().ctx(OP, u)?;
    Ok(ids)
}

pub(super) fn mark_sent(
    client: &mut Client,
    ids: &[i64],
    fence_of: &(dyn Fn(&UserKey) -> Fence + Sync),
) -> StoreResult<()> {
    const OP: &str = "mark writes sent";
    let mut tx = client.transaction().ctx(OP, None)?;
    check_owners(&mut tx, OP, ids, fence_of)?;
    tx.execute("UPDATE intents SET sent = TRUE WHERE id = ANY($1)", &[&ids])
        .ctx(OP, None)?;
    tx.commit().ctx(OP, None)
}

pub(super) fn mark_answered(
    client: &mut Client,
    answers: &[(i64, ItemId)],
    fence_of: &(dyn Fn(&UserKey) -> Fence + Sync),
) -> StoreResult<()> {
    const OP: &str = "record write answers";
    check_answers(OP, answers)?;
    let ids: Vec<i64> = answers.iter().map(|(id, _)| *id).collect();
    let texts: Vec<&str> = answers
        .iter()
        .map(|(_, answered)| answered.as_str())
        .collect();
    let mut tx = client.transaction().ctx(OP, None)?;
    check_owners(&mut tx, OP, &ids, fence_of)?;
    tx.execute(
        "UPDATE intents SET answered_id = a.answered \
         FROM unnest($1::BIGINT[], $2::TEXT[]) AS a(id, answered) WHERE intents.id = a.id",
        &[&ids, &texts],
    )
    .ctx(OP, None)?;
    tx.commit().ctx(OP, None)
}

/// Goes ahead only while this worker holds the lease of every user owning one of `ids`: a
/// worker that lost a user's lease must not write to its journal.
fn check_owners(
    tx: &mut postgres::Transaction<'_>,
    op: &'static str,
    ids: &[i64],
    fence_of: &(dyn Fn(&UserKey) -> Fence + Sync),
) -> StoreResult<()> {
    let owners = tx
        .query(
            "SELECT DISTINCT user_key FROM intents WHERE id = ANY($1) ORDER BY user_key",
            &[&ids],
        )
        .ctx(op, None)?;
    for row in &owners {
        let user = UserKey(row.try_get(0).ctx(op, None)?);
        leases::check(tx, op, &LeaseScope::User(user.clone()), &fence_of(&user))?;
    }
    Ok(())
}

pub(super) fn outstanding(
    client: &mut Client,
    user: &UserKey,
    kind: ItemKind,
) -> StoreResult<Vec<Intent>> {
    const OP: &str = "read the journal";
    let u = Some(user);
    let rows = client
        .query(
            "SELECT id, kind, op, sent, journaled_at, answered_id FROM intents \
             WHERE user_key = $1 AND kind = $2 ORDER BY id",
            &[&user.as_str(), &kind.as_str()],
        )
        .ctx(OP, u)?;
    let mut intents = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: i64 = row.try_get(0).ctx(OP, u)?;
        let kind: String = row.try_get(1).ctx(OP, u)?;
        let op: String = row.try_get(2).ctx(OP, u)?;
        let at: String = row.try_get(4).ctx(OP, u)?;
        let op: Op = serde_json::from_str(&op)
            .map_err(|e| format!("journaled write {id} is unreadable: {e}"))
            .decoded(OP, u)?;
        let answered: Option<String> = row.try_get(5).ctx(OP, u)?;
        intents.push(Intent {
            id,
            user: user.clone(),
            kind: parse_kind(&kind).decoded(OP, u)?,
            sent: row.try_get(3).ctx(OP, u)?,
            journaled_at: parse_time(&at).decoded(OP, u)?,
            answered: Intent::answer_of(&op, answered),
            op,
        });
    }
    Ok(intents)
}

// ---- settings --------------------------------------------------------------------------------

pub(super) fn setting(client: &mut Client, name: &str) -> StoreResult<Option<serde_json::Value>> {
    const OP: &str = "read setting";
    let row = client
        .query_opt("SELECT value FROM settings WHERE name = $1", &[&name])
        .ctx(OP, None)?;
    let Some(row) = row else { return Ok(None) };
    let text: String = row.try_get(0).ctx(OP, None)?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| format!("setting {name:?} is not JSON: {e}"))
        .decoded(OP, None)
}

pub(super) fn put_setting(
    client: &mut Client,
    name: &str,
    value: &serde_json::Value,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    const OP: &str = "store setting";
    non_empty(OP, "setting name", name)?;
    client
        .execute(
            "INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            &[&name, &value.to_string(), &time_text(&at)],
        )
        .ctx(OP, None)?;
    Ok(())
}
