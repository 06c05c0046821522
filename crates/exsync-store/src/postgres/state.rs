//! Reading the sync state on PostgreSQL: pairs and cursors. Rows decode through the SQLite
//! backend's row types, so both backends check stored content the same way.

use exsync_core::plan::SyncedPair;
use exsync_core::{CrmId, ExchangeId, ItemId, ItemKind, Side, UserKey};
use postgres::{Client, Row};

use super::codec::Ctx;
use crate::error::StoreResult;
use crate::sqlite::codec::{parse_time, Decode};
use crate::sqlite::state::{scope_key, PairRow, PAIR_COLUMNS};
use crate::types::{CursorEntry, CursorScope, PairLink};

fn pair_row(row: &Row) -> Result<PairRow, postgres::Error> {
    Ok(PairRow {
        kind: row.try_get(0)?,
        crm_id: row.try_get(1)?,
        exchange_id: row.try_get(2)?,
        content: row.try_get(3)?,
        content_hash: row.try_get(4)?,
        crm_version: row.try_get(5)?,
        exchange_version: row.try_get(6)?,
    })
}

fn decode_pairs(rows: Vec<Row>, op: &'static str, user: &UserKey) -> StoreResult<Vec<SyncedPair>> {
    let u = Some(user);
    rows.iter()
        .map(|row| pair_row(row).ctx(op, u)?.decode().decoded(op, u))
        .collect()
}

pub(super) fn load_pairs(
    client: &mut Client,
    user: &UserKey,
    kind: ItemKind,
) -> StoreResult<Vec<SyncedPair>> {
    const OP: &str = "load pairs";
    let sql = format!(
        "SELECT {PAIR_COLUMNS} FROM pairs WHERE user_key = $1 AND kind = $2 ORDER BY crm_id"
    );
    let rows = client
        .query(&sql, &[&user.as_str(), &kind.as_str()])
        .ctx(OP, Some(user))?;
    decode_pairs(rows, OP, user)
}

pub(super) fn find_pair(
    client: &mut Client,
    user: &UserKey,
    kind: ItemKind,
    id: &ItemId,
) -> StoreResult<Option<SyncedPair>> {
    const OP: &str = "find pair";
    let column = match id {
        ItemId::Crm(_) => "crm_id",
        ItemId::Exchange(_) => "exchange_id",
    };
    let sql = format!(
        "SELECT {PAIR_COLUMNS} FROM pairs WHERE user_key = $1 AND kind = $2 AND {column} = $3"
    );
    let rows = client
        .query(&sql, &[&user.as_str(), &kind.as_str(), &id.as_str()])
        .ctx(OP, Some(user))?;
    Ok(decode_pairs(rows, OP, user)?.into_iter().next())
}

pub(super) fn pair_ids_page(
    client: &mut Client,
    user: &UserKey,
    kind: ItemKind,
    after: Option<&CrmId>,
    limit: usize,
) -> StoreResult<Vec<(CrmId, ExchangeId)>> {
    const OP: &str = "load a page of pair ids";
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let after = after.map_or("", CrmId::as_str);
    let rows = client
        .query(
            "SELECT crm_id, exchange_id FROM pairs WHERE user_key = $1 AND kind = $2 \
             AND crm_id > $3 ORDER BY crm_id LIMIT $4",
            &[&user.as_str(), &kind.as_str(), &after, &limit],
        )
        .ctx(OP, Some(user))?;
    rows.iter()
        .map(|row| {
            Ok((
                CrmId(row.try_get(0).ctx(OP, Some(user))?),
                ExchangeId(row.try_get(1).ctx(OP, Some(user))?),
            ))
        })
        .collect()
}

pub(super) fn pairs_page(
    client: &mut Client,
    user: &UserKey,
    kind: ItemKind,
    after: Option<&CrmId>,
    limit: usize,
) -> StoreResult<Vec<SyncedPair>> {
    const OP: &str = "load a page of pairs";
    let sql = format!(
        "SELECT {PAIR_COLUMNS} FROM pairs WHERE user_key = $1 AND kind = $2 AND crm_id > $3 \
         ORDER BY crm_id LIMIT $4"
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let after = after.map_or("", CrmId::as_str);
    let rows = client
        .query(&sql, &[&user.as_str(), &kind.as_str(), &after, &limit])
        .ctx(OP, Some(user))?;
    decode_pairs(rows, OP, user)
}

/// The CRM ids and the Exchange ids among `ids`, to bind as two arrays.
fn by_side(ids: &[ItemId]) -> (Vec<&str>, Vec<&str>) {
    let on = |side: Side| {
        ids.iter()
            .filter(move |id| id.side() == side)
            .map(ItemId::as_str)
    };
    (on(Side::Crm).collect(), on(Side::Exchange).collect())
}

/// `columns` of the user's pairs of a kind (`$1`, `$2`) that hold one of the CRM ids `$3` or
/// the Exchange ids `$4`, by CRM id. Each id is looked up in its unique index, in a `LATERAL`
/// subquery per id. With `= ANY` of the arrays, or a join, PostgreSQL's estimates for a table
/// filled since it was last analysed (a first sync's) had it read every pair of the user for
/// each page a pass read; `OFFSET 0` keeps the subquery from being turned back into a join.
fn by_ids(columns: &str) -> String {
    format!(
        "SELECT p.* FROM unnest($3::TEXT[]) AS c(id) CROSS JOIN LATERAL \
         (SELECT {columns} FROM pairs WHERE user_key = $1 AND kind = $2 AND crm_id = c.id \
         OFFSET 0) p \
         UNION \
         SELECT p.* FROM unnest($4::TEXT[]) AS x(id) CROSS JOIN LATERAL \
         (SELECT {columns} FROM pairs WHERE user_key = $1 AND kind = $2 AND exchange_id = x.id \
         OFFSET 0) p \
         ORDER BY crm_id"
    )
}

pub(super) fn pairs_of(
    client: &mut Client,
    user: &UserKey,
    kind: ItemKind,
    ids: &[ItemId],
) -> StoreResult<Vec<SyncedPair>> {
    const OP: &str = "find pairs";
    let (crm, exchange) = by_side(ids);
    // One round trip for the whole set; the arrays are the caller's ids, bound, not spliced.
    let sql = by_ids(PAIR_COLUMNS);
    let rows = client
        .query(&sql, &[&user.as_str(), &kind.as_str(), &crm, &exchange])
        .ctx(OP, Some(user))?;
    decode_pairs(rows, OP, user)
}

pub(super) fn pair_links(
    client: &mut Client,
    user: &UserKey,
    kind: ItemKind,
    ids: &[ItemId],
) -> StoreResult<Vec<PairLink>> {
    const OP: &str = "find pair links";
    let u = Some(user);
    let (crm, exchange) = by_side(ids);
    // As `pairs_of`: one round trip, the ids bound as arrays.
    let rows = client
        .query(
            &by_ids("crm_id, exchange_id, exchange_version"),
            &[&user.as_str(), &kind.as_str(), &crm, &exchange],
        )
        .ctx(OP, u)?;
    rows.iter()
        .map(|row| {
            Ok(PairLink {
                crm_id: CrmId(row.try_get(0).ctx(OP, u)?),
                exchange_id: ExchangeId(row.try_get(1).ctx(OP, u)?),
                exchange_version: row.try_get(2).ctx(OP, u)?,
            })
        })
        .collect()
}

pub(super) fn pair_count(client: &mut Client, user: &UserKey, kind: ItemKind) -> StoreResult<u64> {
    const OP: &str = "count pairs";
    let u = Some(user);
    let count: i64 = client
        .query_one(
            "SELECT count(*) FROM pairs WHERE user_key = $1 AND kind = $2",
            &[&user.as_str(), &kind.as_str()],
        )
        .ctx(OP, u)?
        .try_get(0)
        .ctx(OP, u)?;
    Ok(u64::try_from(count).unwrap_or(0))
}

pub(super) fn crm_pair_users(
    client: &mut Client,
    kind: ItemKind,
    crm_ids: &[CrmId],
) -> StoreResult<Vec<(CrmId, UserKey)>> {
    const OP: &str = "find the users of CRM records";
    let ids: Vec<&str> = crm_ids.iter().map(CrmId::as_str).collect();
    // In the order the ids were asked for, each id's users by key, as the SQLite backend does;
    // each id looked up in the index, as in `by_ids`.
    let rows = client
        .query(
            "SELECT p.crm_id, p.user_key FROM unnest($2::TEXT[]) WITH ORDINALITY AS c(id, n) \
             CROSS JOIN LATERAL (SELECT crm_id, user_key FROM pairs \
             WHERE kind = $1 AND crm_id = c.id OFFSET 0) p \
             ORDER BY c.n, p.user_key",
            &[&kind.as_str(), &ids],
        )
        .ctx(OP, None)?;
    rows.iter()
        .map(|row| {
            Ok((
                CrmId(row.try_get(0).ctx(OP, None)?),
                UserKey::new(row.try_get::<_, String>(1).ctx(OP, None)?),
            ))
        })
        .collect()
}

pub(super) fn cursor(client: &mut Client, scope: &CursorScope) -> StoreResult<Option<String>> {
    const OP: &str = "read cursor";
    let (kind, user_key, name) = scope_key(scope);
    let row = client
        .query_opt(
            "SELECT value FROM cursors WHERE scope_kind = $1 AND user_key = $2 AND name = $3",
            &[&kind, &user_key, &name],
        )
        .ctx(OP, scope.user())?;
    row.map(|row| row.try_get(0))
        .transpose()
        .ctx(OP, scope.user())
}

pub(super) fn list_cursors(client: &mut Client) -> StoreResult<Vec<CursorEntry>> {
    const OP: &str = "list cursors";
    let rows = client
        .query(
            "SELECT scope_kind, user_key, name, value, updated_at FROM cursors \
             ORDER BY scope_kind = 'folder', user_key, name",
            &[],
        )
        .ctx(OP, None)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let kind: String = row.try_get(0).ctx(OP, None)?;
        let user_key: String = row.try_get(1).ctx(OP, None)?;
        let name: String = row.try_get(2).ctx(OP, None)?;
        let value: String = row.try_get(3).ctx(OP, None)?;
        let updated_at: String = row.try_get(4).ctx(OP, None)?;
        let scope = match kind.as_str() {
            "folder" => CursorScope::Folder {
                user: UserKey(user_key),
                folder: name,
            },
            "crm_object" => CursorScope::CrmObject { object: name },
            other => Err(format!("unknown cursor scope {other:?}")).decoded(OP, None)?,
        };
        out.push(CursorEntry {
            scope,
            value,
            updated_at: parse_time(&updated_at).decoded(OP, None)?,
        });
    }
    Ok(out)
}
