//! The CRM echo log: versions of CRM records exsync produced, so the next read of the CRM
//! can tell our own writes from real changes.

use chrono::{DateTime, Utc};
use exsync_core::{CrmId, UserKey};
use rusqlite::{params, Connection, OptionalExtension};

use super::codec::{parse_kind, parse_time, time_text, Ctx, Decode};
use super::users::insert_user;
use crate::error::{StoreError, StoreResult};
use crate::types::CrmWrite;

/// `user` wins over the write's own user: inside a pass commit every write belongs to the
/// pass's user. The user must be registered already (the commit registers its user once, not
/// once per write).
pub(crate) fn insert_crm_write(
    conn: &Connection,
    write: &CrmWrite,
    user: Option<&UserKey>,
) -> rusqlite::Result<()> {
    let written_at = time_text(&write.written_at);
    let user = user.or(write.user.as_ref());
    conn.prepare_cached(
        "INSERT INTO crm_writes (crm_id, system_modstamp, kind, user_key, written_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (crm_id, system_modstamp) DO UPDATE SET \
         kind = excluded.kind, user_key = excluded.user_key, written_at = excluded.written_at",
    )?
    .execute(params![
        write.crm_id.as_str(),
        write.system_modstamp,
        write.kind.as_str(),
        user.map(UserKey::as_str),
        written_at
    ])?;
    Ok(())
}

pub(crate) fn record(conn: &mut Connection, writes: &[CrmWrite]) -> StoreResult<()> {
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
    let tx = conn.transaction().ctx(OP, None)?;
    for write in writes {
        if let Some(user) = &write.user {
            insert_user(&tx, user, &time_text(&write.written_at)).ctx(OP, Some(user))?;
        }
        insert_crm_write(&tx, write, None).ctx(OP, write.user.as_ref())?;
    }
    tx.commit().ctx(OP, None)
}

pub(crate) fn is_own(
    conn: &Connection,
    crm_id: &CrmId,
    system_modstamp: &str,
) -> StoreResult<bool> {
    const OP: &str = "look up CRM write";
    let found: Option<i64> = conn
        .prepare_cached("SELECT 1 FROM crm_writes WHERE crm_id = ?1 AND system_modstamp = ?2")
        .ctx(OP, None)?
        .query_row(params![crm_id.as_str(), system_modstamp], |row| row.get(0))
        .optional()
        .ctx(OP, None)?;
    Ok(found.is_some())
}

pub(crate) fn since(conn: &Connection, since: DateTime<Utc>) -> StoreResult<Vec<CrmWrite>> {
    const OP: &str = "list CRM writes";
    let rows = conn
        .prepare_cached(
            "SELECT crm_id, system_modstamp, kind, user_key, written_at FROM crm_writes \
             WHERE written_at >= ?1 ORDER BY written_at, crm_id, system_modstamp",
        )
        .ctx(OP, None)?
        .query_map(params![time_text(&since)], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, Option<String>>(3)?,
                row.get::<_, String>(4)?,
            ))
        })
        .ctx(OP, None)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .ctx(OP, None)?;
    rows.into_iter()
        .map(|(crm_id, system_modstamp, kind, user, written_at)| {
            Ok(CrmWrite {
                crm_id: CrmId(crm_id),
                system_modstamp,
                kind: parse_kind(&kind)?,
                user: user.map(UserKey),
                written_at: parse_time(&written_at)?,
            })
        })
        .map(|write: Result<CrmWrite, String>| write.decoded(OP, None))
        .collect()
}

pub(crate) fn prune(conn: &Connection, before: DateTime<Utc>) -> StoreResult<u64> {
    const OP: &str = "prune CRM writes";
    let n = conn
        .prepare_cached("DELETE FROM crm_writes WHERE written_at < ?1")
        .ctx(OP, None)?
        .execute(params![time_text(&before)])
        .ctx(OP, None)?;
    Ok(n as u64)
}
