//! Reading the sync state: pairs and cursors.

use exsync_core::plan::SyncedPair;
use exsync_core::{content_text_hash, CrmId, ExchangeId, Fields, ItemId, ItemKind, UserKey};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::codec::{parse_kind, parse_time, Ctx, Decode};
use crate::error::StoreResult;
use crate::types::{CursorEntry, CursorScope, PairLink};

/// A pairs row as read, before its content is checked and decoded.
pub(crate) struct PairRow {
    pub(crate) kind: String,
    pub(crate) crm_id: String,
    pub(crate) exchange_id: String,
    pub(crate) content: String,
    pub(crate) content_hash: String,
    pub(crate) crm_version: Option<String>,
    pub(crate) exchange_version: Option<String>,
}

pub(crate) const PAIR_COLUMNS: &str =
    "kind, crm_id, exchange_id, content, content_hash, crm_version, exchange_version";

fn pair_row(row: &Row<'_>) -> rusqlite::Result<PairRow> {
    Ok(PairRow {
        kind: row.get(0)?,
        crm_id: row.get(1)?,
        exchange_id: row.get(2)?,
        content: row.get(3)?,
        content_hash: row.get(4)?,
        crm_version: row.get(5)?,
        exchange_version: row.get(6)?,
    })
}

impl PairRow {
    /// The stored hash guards the merge base: a pair whose content no longer matches it would
    /// make the planner merge against the wrong base, so it is reported instead of used.
    pub(crate) fn decode(self) -> Result<SyncedPair, String> {
        let content: Fields = serde_json::from_str(&self.content).map_err(|e| {
            format!(
                "pair {}/{}: content is not a field map: {e}",
                self.crm_id, self.exchange_id
            )
        })?;
        // The text is what the commit hashed (it serialises the content once for both), so
        // hashing it as read checks the same thing without serialising the content again.
        let actual = content_text_hash(&self.content);
        if actual != self.content_hash {
            return Err(format!(
                "pair {}/{}: content hash {} does not match the stored {}",
                self.crm_id, self.exchange_id, actual, self.content_hash
            ));
        }
        Ok(SyncedPair {
            kind: parse_kind(&self.kind)?,
            crm_id: CrmId(self.crm_id),
            exchange_id: ExchangeId(self.exchange_id),
            content,
            crm_version: self.crm_version,
            exchange_version: self.exchange_version,
        })
    }
}

pub(crate) fn load_pairs(
    conn: &Connection,
    user: &UserKey,
    kind: ItemKind,
) -> StoreResult<Vec<SyncedPair>> {
    const OP: &str = "load pairs";
    let u = Some(user);
    let sql = format!(
        "SELECT {PAIR_COLUMNS} FROM pairs WHERE user_key = ?1 AND kind = ?2 ORDER BY crm_id"
    );
    let mut stmt = conn.prepare_cached(&sql).ctx(OP, u)?;
    let rows = stmt
        .query_map(params![user.as_str(), kind.as_str()], pair_row)
        .ctx(OP, u)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .ctx(OP, u)?;
    rows.into_iter()
        .map(|row| row.decode().decoded(OP, u))
        .collect()
}

pub(crate) fn find_pair(
    conn: &Connection,
    user: &UserKey,
    kind: ItemKind,
    id: &ItemId,
) -> StoreResult<Option<SyncedPair>> {
    const OP: &str = "find pair";
    let u = Some(user);
    let column = match id {
        ItemId::Crm(_) => "crm_id",
        ItemId::Exchange(_) => "exchange_id",
    };
    let sql = format!(
        "SELECT {PAIR_COLUMNS} FROM pairs WHERE user_key = ?1 AND kind = ?2 AND {column} = ?3"
    );
    let row = conn
        .prepare_cached(&sql)
        .ctx(OP, u)?
        .query_row(params![user.as_str(), kind.as_str(), id.as_str()], pair_row)
        .optional()
        .ctx(OP, u)?;
    row.map(|row| row.decode().decoded(OP, u)).transpose()
}

/// The (scope_kind, user_key, name) key of a cursor row.
pub(crate) fn scope_key(scope: &CursorScope) -> (&'static str, &str, &str) {
    match scope {
        CursorScope::Folder { user, folder } => ("folder", user.as_str(), folder.as_str()),
        CursorScope::CrmObject { object } => ("crm_object", "", object.as_str()),
    }
}

pub(crate) fn cursor(conn: &Connection, scope: &CursorScope) -> StoreResult<Option<String>> {
    const OP: &str = "read cursor";
    let (kind, user_key, name) = scope_key(scope);
    conn.prepare_cached(
        "SELECT value FROM cursors WHERE scope_kind = ?1 AND user_key = ?2 AND name = ?3",
    )
    .ctx(OP, scope.user())?
    .query_row(params![kind, user_key, name], |row| row.get(0))
    .optional()
    .ctx(OP, scope.user())
}

pub(crate) fn list_cursors(conn: &Connection) -> StoreResult<Vec<CursorEntry>> {
    const OP: &str = "list cursors";
    let mut stmt = conn
        .prepare_cached(
            "SELECT scope_kind, user_key, name, value, updated_at FROM cursors \
             ORDER BY scope_kind = 'folder', user_key, name",
        )
        .ctx(OP, None)?;
    let rows = stmt
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
        .map(|(kind, user_key, name, value, updated_at)| {
            let scope = match kind.as_str() {
                "folder" => CursorScope::Folder {
                    user: UserKey(user_key),
                    folder: name,
                },
                "crm_object" => CursorScope::CrmObject { object: name },
                other => return Err(format!("unknown cursor scope {other:?}")),
            };
            Ok(CursorEntry {
                scope,
                value,
                updated_at: parse_time(&updated_at)?,
            })
        })
        .map(|entry| entry.decoded(OP, None))
        .collect()
}

/// For each of these CRM records, the users holding a pair for it.
/// Who holds a CRM record in a pair: asked once per record the org-wide read returns, so it
/// must find them through `pairs_by_crm_id`, not by scanning every pair.
pub(crate) const PAIR_USERS: &str =
    "SELECT user_key FROM pairs WHERE kind = ?1 AND crm_id = ?2 ORDER BY user_key";

pub(crate) fn crm_pair_users(
    conn: &Connection,
    kind: ItemKind,
    crm_ids: &[exsync_core::CrmId],
) -> StoreResult<Vec<(exsync_core::CrmId, UserKey)>> {
    const OP: &str = "find the users of CRM records";
    in_one_read(conn, OP, None, |conn| {
        let mut query = conn.prepare_cached(PAIR_USERS).ctx(OP, None)?;
        let mut out = Vec::new();
        for crm_id in crm_ids {
            let users = query
                .query_map(params![kind.as_str(), crm_id.as_str()], |row| {
                    row.get::<_, String>(0)
                })
                .ctx(OP, None)?;
            for user in users {
                out.push((crm_id.clone(), UserKey::new(user.ctx(OP, None)?)));
            }
        }
        Ok(out)
    })
}

/// The pairs holding any of these records, each once, ordered by CRM id.
pub(crate) fn pairs_of(
    conn: &Connection,
    user: &UserKey,
    kind: ItemKind,
    ids: &[ItemId],
) -> StoreResult<Vec<SyncedPair>> {
    in_one_read(conn, "find pairs", Some(user), |conn| {
        let mut found = std::collections::BTreeMap::new();
        for id in ids {
            if let Some(pair) = find_pair(conn, user, kind, id)? {
                found.entry(pair.crm_id.clone()).or_insert(pair);
            }
        }
        Ok(found.into_values().collect())
    })
}

pub(crate) fn pair_links(
    conn: &Connection,
    user: &UserKey,
    kind: ItemKind,
    ids: &[ItemId],
) -> StoreResult<Vec<PairLink>> {
    const OP: &str = "find pair links";
    let u = Some(user);
    in_one_read(conn, OP, u, |conn| {
        let mut by_crm = conn
            .prepare_cached(
                "SELECT crm_id, exchange_id, exchange_version FROM pairs \
                 WHERE user_key = ?1 AND kind = ?2 AND crm_id = ?3",
            )
            .ctx(OP, u)?;
        let mut by_exchange = conn
            .prepare_cached(
                "SELECT crm_id, exchange_id, exchange_version FROM pairs \
                 WHERE user_key = ?1 AND kind = ?2 AND exchange_id = ?3",
            )
            .ctx(OP, u)?;
        let mut found = std::collections::BTreeMap::new();
        for id in ids {
            let statement = match id {
                ItemId::Crm(_) => &mut by_crm,
                ItemId::Exchange(_) => &mut by_exchange,
            };
            let link = statement
                .query_row(params![user.as_str(), kind.as_str(), id.as_str()], |row| {
                    Ok(PairLink {
                        crm_id: CrmId(row.get(0)?),
                        exchange_id: ExchangeId(row.get(1)?),
                        exchange_version: row.get(2)?,
                    })
                })
                .optional()
                .ctx(OP, u)?;
            if let Some(link) = link {
                found.entry(link.crm_id.clone()).or_insert(link);
            }
        }
        Ok(found.into_values().collect())
    })
}

/// Runs the statements of `read` in one read transaction. Outside a transaction each statement
/// takes and drops WAL's shared-memory read lock with system calls of its own, which cost more
/// than the look-up when a slice asks for hundreds of records one by one.
fn in_one_read<T>(
    conn: &Connection,
    op: &'static str,
    user: Option<&UserKey>,
    read: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    let snapshot = conn.unchecked_transaction().ctx(op, user)?;
    let out = read(&snapshot)?;
    snapshot.commit().ctx(op, user)?;
    Ok(out)
}

/// Up to `limit` pairs after `after`, ordered by CRM id.
pub(crate) fn pair_ids_page(
    conn: &Connection,
    user: &UserKey,
    kind: ItemKind,
    after: Option<&CrmId>,
    limit: usize,
) -> StoreResult<Vec<(CrmId, ExchangeId)>> {
    const OP: &str = "load a page of pair ids";
    let u = Some(user);
    let after = after.map_or("", CrmId::as_str);
    // The limit is written, not bound: SQLite plans with a bound limit's value, so each new
    // binding would have it parse the statement again. A pass pages with one size.
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT crm_id, exchange_id FROM pairs WHERE user_key = ?1 AND kind = ?2 \
             AND crm_id > ?3 ORDER BY crm_id LIMIT {limit}"
        ))
        .ctx(OP, u)?;
    let ids = stmt
        .query_map(params![user.as_str(), kind.as_str(), after], |row| {
            Ok((CrmId(row.get(0)?), ExchangeId(row.get(1)?)))
        })
        .ctx(OP, u)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .ctx(OP, u)?;
    Ok(ids)
}

pub(crate) fn pairs_page(
    conn: &Connection,
    user: &UserKey,
    kind: ItemKind,
    after: Option<&CrmId>,
    limit: usize,
) -> StoreResult<Vec<SyncedPair>> {
    const OP: &str = "load a page of pairs";
    let u = Some(user);
    let sql = format!(
        "SELECT {PAIR_COLUMNS} FROM pairs WHERE user_key = ?1 AND kind = ?2 AND crm_id > ?3 \
         ORDER BY crm_id LIMIT {limit}"
    );
    let after = after.map_or("", CrmId::as_str);
    let mut stmt = conn.prepare_cached(&sql).ctx(OP, u)?;
    let rows = stmt
        .query_map(params![user.as_str(), kind.as_str(), after], pair_row)
        .ctx(OP, u)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .ctx(OP, u)?;
    rows.into_iter()
        .map(|row| row.decode().decoded(OP, u))
        .collect()
}

pub(crate) fn pair_count(conn: &Connection, user: &UserKey, kind: ItemKind) -> StoreResult<u64> {
    const OP: &str = "count pairs";
    let u = Some(user);
    let count: i64 = conn
        .prepare_cached("SELECT count(*) FROM pairs WHERE user_key = ?1 AND kind = ?2")
        .ctx(OP, u)?
        .query_row(params![user.as_str(), kind.as_str()], |row| row.get(0))
        .ctx(OP, u)?;
    Ok(u64::try_from(count).unwrap_or(0))
}
