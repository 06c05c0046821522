//! Committing a pass on PostgreSQL: everything one user's pass changes, in one transaction,
//! checked first by the same validation as the SQLite backend so refusals are identical.

use exsync_core::{cap_name, content_text_hash, ItemId, ItemKind, Side};
use postgres::{Client, Transaction};

use super::codec::Ctx;
use super::echo::insert_crm_write;
use super::leases::{self, Fence};
use super::users::{insert_user, pause};
use crate::error::{StoreError, StoreResult};
use crate::roles::{LeaseScope, ORG_CRM_READ};
use crate::sqlite::codec::{time_text, to_sql_count};
use crate::sqlite::state::scope_key;
use crate::types::{CommitReceipt, CursorAdvance, CursorScope, PassCommit, MAX_NOTICES};

const OP: &str = "commit pass";

pub(super) fn commit(
    client: &mut Client,
    c: &PassCommit,
    fence: &Fence,
) -> StoreResult<CommitReceipt> {
    crate::sqlite::commit::validate(c)?;
    let user = &c.user;
    let u = Some(user);
    let at = time_text(&c.finished);
    let mut tx = client.transaction().ctx(OP, u)?;
    // First, so a worker that lost the user writes nothing, and holds the lease row until
    // this transaction ends so no takeover lands in between.
    leases::check(&mut tx, OP, &LeaseScope::User(user.clone()), fence)?;
    insert_user(&mut tx, user, &at).ctx(OP, u)?;
    // Two commits for one user (a retried pass, a second worker) take turns from here on, so
    // neither reads pairs the other is about to change.
    tx.execute(
        "SELECT 1 FROM users WHERE user_key = $1 FOR UPDATE",
        &[&user.as_str()],
    )
    .ctx(OP, u)?;

    let pairs_removed = remove_pairs(&mut tx, c)?;
    let pairs_written = upsert_pairs(&mut tx, c, &at)?;
    let cursors_changed = advance_cursors(&mut tx, c, &at)?;
    update_unresolved(&mut tx, c, &at)?;
    if !c.settled_intents.is_empty() {
        tx.execute(
            "DELETE FROM intents WHERE id = ANY($1)",
            &[&c.settled_intents],
        )
        .ctx(OP, u)?;
    }
    let run_id = if c.partial {
        for write in &c.crm_writes {
            insert_crm_write(&mut tx, write, u).ctx(OP, u)?;
        }
        0
    } else {
        record_run(&mut tx, c, &at)?
    };
    tx.commit().ctx(OP, u)?;
    tracing::debug!(
        user = %user,
        run_id,
        pairs_written,
        pairs_removed,
        cursors_changed,
        unresolved = c.unresolved.len(),
        conflicts = c.conflicts.len(),
        "pass committed"
    );
    Ok(CommitReceipt {
        run_id,
        pairs_written,
        pairs_removed,
        cursors_changed,
    })
}

fn remove_pairs(tx: &mut Transaction<'_>, c: &PassCommit) -> StoreResult<u64> {
    let u = Some(&c.user);
    let stmt = tx
        .prepare(
            "DELETE FROM pairs WHERE user_key = $1 AND kind = $2 AND crm_id = $3 AND exchange_id = $4",
        )
        .ctx(OP, u)?;
    let mut removed = 0;
    for key in &c.removals {
        // A retried pass removes what the first attempt already removed: zero rows is fine.
        removed += tx
            .execute(
                &stmt,
                &[
                    &c.user.as_str(),
                    &key.kind.as_str(),
                    &key.crm_id.as_str(),
                    &key.exchange_id.as_str(),
                ],
            )
            .ctx(OP, u)?;
    }
    Ok(removed)
}

fn upsert_pairs(tx: &mut Transaction<'_>, c: &PassCommit, at: &str) -> StoreResult<u64> {
    let u = Some(&c.user);
    let find = tx
        .prepare(
            "SELECT id, crm_id, exchange_id FROM pairs \
             WHERE user_key = $1 AND kind = $2 AND (crm_id = $3 OR exchange_id = $4) ORDER BY id",
        )
        .ctx(OP, u)?;
    let insert = tx
        .prepare(
            "INSERT INTO pairs (user_key, kind, crm_id, exchange_id, content, content_hash, \
             crm_version, exchange_version, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT DO NOTHING",
        )
        .ctx(OP, u)?;
    let update = tx
        .prepare(
            "UPDATE pairs SET crm_id = $2, exchange_id = $3, content = $4, content_hash = $5, \
             crm_version = $6, exchange_version = $7, updated_at = $8 WHERE id = $1",
        )
        .ctx(OP, u)?;
    for pair in &c.upserts {
        let content =
            serde_json::to_string(&pair.content).map_err(|e| StoreError::InvalidCommit {
                user: c.user.clone(),
                reason: format!(
                    "pair {}/{}: content cannot be stored: {e}",
                    pair.crm_id, pair.exchange_id
                ),
            })?;
        let hash = content_text_hash(&content);
        // As on SQLite: insert first, so a new pair costs one round trip, not two.
        let inserted = tx
            .execute(
                &insert,
                &[
                    &c.user.as_str(),
                    &pair.kind.as_str(),
                    &pair.crm_id.as_str(),
                    &pair.exchange_id.as_str(),
                    &content,
                    &hash,
                    &pair.crm_version,
                    &pair.exchange_version,
                    &at,
                ],
            )
            .ctx(OP, u)?;
        if inserted == 1 {
            continue;
        }
        let rows = tx
            .query(
                &find,
                &[
                    &c.user.as_str(),
                    &pair.kind.as_str(),
                    &pair.crm_id.as_str(),
                    &pair.exchange_id.as_str(),
                ],
            )
            .ctx(OP, u)?;
        let mut existing: Vec<(i64, String, String)> = Vec::with_capacity(rows.len());
        for row in &rows {
            existing.push((
                row.try_get(0).ctx(OP, u)?,
                row.try_get(1).ctx(OP, u)?,
                row.try_get(2).ctx(OP, u)?,
            ));
        }
        match existing.as_slice() {
            [] => {
                return Err(StoreError::InvalidCommit {
                    user: c.user.clone(),
                    reason: format!(
                        "pair {}/{} was neither inserted nor found",
                        pair.crm_id, pair.exchange_id
                    ),
                });
            }
            [(id, _, _)] => {
                tx.execute(
                    &update,
                    &[
                        id,
                        &pair.crm_id.as_str(),
                        &pair.exchange_id.as_str(),
                        &content,
                        &hash,
                        &pair.crm_version,
                        &pair.exchange_version,
                        &at,
                    ],
                )
                .ctx(OP, u)?;
            }
            [(_, crm_a, exchange_a), (_, crm_b, exchange_b), ..] => {
                return Err(StoreError::PairConflict {
                    user: c.user.clone(),
                    kind: pair.kind,
                    record: ItemId::Crm(pair.crm_id.clone()),
                    detail: format!(
                        "pairing it with Exchange item {} would join the stored pairs \
                         {crm_a}/{exchange_a} and {crm_b}/{exchange_b}; remove one of them in \
                         the same commit",
                        pair.exchange_id
                    ),
                });
            }
        }
    }
    Ok(c.upserts.len() as u64)
}

fn advance_cursors(tx: &mut Transaction<'_>, c: &PassCommit, at: &str) -> StoreResult<u64> {
    let u = Some(&c.user);
    let mut changed = 0;
    for advance in &c.cursors {
        changed += write_cursor(tx, advance, at).ctx(OP, u)?;
    }
    Ok(changed)
}

/// Sets or clears one cursor.
pub(super) fn write_cursor(
    tx: &mut Transaction<'_>,
    advance: &CursorAdvance,
    at: &str,
) -> Result<u64, postgres::Error> {
    let (kind, user_key, name) = scope_key(&advance.scope);
    match &advance.value {
        Some(value) => tx.execute(
            "INSERT INTO cursors (scope_kind, user_key, name, value, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope_kind, user_key, name) \
             DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            &[&kind, &user_key, &name, value, &at],
        ),
        None => tx.execute(
            "DELETE FROM cursors WHERE scope_kind = $1 AND user_key = $2 AND name = $3",
            &[&kind, &user_key, &name],
        ),
    }
}

fn update_unresolved(tx: &mut Transaction<'_>, c: &PassCommit, at: &str) -> StoreResult<()> {
    let u = Some(&c.user);
    // An item that synced (written into a pair, or its pair removed) is no longer failing.
    let mut cleared: Vec<(ItemKind, Side, &str)> = Vec::new();
    for pair in &c.upserts {
        cleared.push((pair.kind, Side::Crm, pair.crm_id.as_str()));
        cleared.push((pair.kind, Side::Exchange, pair.exchange_id.as_str()));
    }
    for key in &c.removals {
        cleared.push((key.kind, Side::Crm, key.crm_id.as_str()));
        cleared.push((key.kind, Side::Exchange, key.exchange_id.as_str()));
    }
    for item in &c.resolved {
        cleared.push((item.kind, item.id.side(), item.id.as_str()));
    }
    if !cleared.is_empty() {
        let clear = tx
            .prepare(
                "DELETE FROM unresolved WHERE user_key = $1 AND kind = $2 AND side = $3 \
                 AND item_id = $4",
            )
            .ctx(OP, u)?;
        for (kind, side, id) in cleared {
            tx.execute(
                &clear,
                &[&c.user.as_str(), &kind.as_str(), &side.as_str(), &id],
            )
            .ctx(OP, u)?;
        }
    }
    if c.unresolved.is_empty() {
        return Ok(());
    }
    let report = tx
        .prepare(
            "INSERT INTO unresolved (user_key, kind, side, item_id, reason, first_seen, last_seen, \
             name) VALUES ($1, $2, $3, $4, $5, $6, $6, $7) \
             ON CONFLICT (user_key, kind, side, item_id) \
             DO UPDATE SET reason = excluded.reason, last_seen = excluded.last_seen, \
             occurrences = unresolved.occurrences + 1, \
             name = coalesce(excluded.name, unresolved.name)",
        )
        .ctx(OP, u)?;
    for item in &c.unresolved {
        let name = item.name.as_deref().map(cap_name);
        tx.execute(
            &report,
            &[
                &c.user.as_str(),
                &item.kind.as_str(),
                &item.id.side().as_str(),
                &item.id.as_str(),
                &item.reason,
                &at,
                &name,
            ],
        )
        .ctx(OP, u)?;
    }
    Ok(())
}

fn record_run(tx: &mut Transaction<'_>, c: &PassCommit, at: &str) -> StoreResult<i64> {
    let u = Some(&c.user);
    let refuse = |reason: String| StoreError::InvalidCommit {
        user: c.user.clone(),
        reason,
    };
    let n = |v: u64, what: &str| to_sql_count(v, what).map_err(refuse);
    let kept = &c.notices[..c.notices.len().min(MAX_NOTICES)];
    let notices = serde_json::to_string(kept).map_err(|e| refuse(format!("notices: {e}")))?;
    let run_id: i64 = tx
        .query_one(
            "INSERT INTO runs (user_key, started_at, finished_at, created, updated, deleted, \
             conflicts, failures, error, notices, backend, configuration, via_group) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
            &[
                &c.user.as_str(),
                &time_text(&c.started),
                &at,
                &n(c.counts.created, "created")?,
                &n(c.counts.updated, "updated")?,
                &n(c.counts.deleted, "deleted")?,
                &n(c.counts.conflicts, "conflicts")?,
                &n(c.counts.failures, "failures")?,
                &c.error,
                &notices,
                &c.backend,
                &c.assignment.as_ref().map(|a| a.configuration.as_str()),
                &c.assignment.as_ref().and_then(|a| a.group.as_deref()),
            ],
        )
        .ctx(OP, u)?
        .try_get(0)
        .ctx(OP, u)?;

    if !c.conflicts.is_empty() {
        let conflict = tx
            .prepare(
                "INSERT INTO conflicts (run_id, user_key, at, kind, crm_id, exchange_id, field, \
                 crm_value, exchange_value, winner, first_link, name) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .ctx(OP, u)?;
        for entry in &c.conflicts {
            let json = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
            let name = entry.name.as_deref().map(cap_name);
            tx.execute(
                &conflict,
                &[
                    &run_id,
                    &c.user.as_str(),
                    &at,
                    &entry.kind.as_str(),
                    &entry.crm_id.as_str(),
                    &entry.exchange_id.as_str(),
                    &entry.conflict.field,
                    &json(&entry.conflict.crm_value),
                    &json(&entry.conflict.exchange_value),
                    &entry.conflict.winner.as_str(),
                    &entry.conflict.first_link,
                    &name,
                ],
            )
            .ctx(OP, u)?;
        }
    }
    for write in &c.crm_writes {
        insert_crm_write(tx, write, u).ctx(OP, u)?;
    }
    tx.execute(
        "UPDATE users SET last_run_id = $2 WHERE user_key = $1",
        &[&c.user.as_str(), &run_id],
    )
    .ctx(OP, u)?;
    if let Some(reason) = &c.pause {
        pause(tx, &c.user, reason, at).ctx(OP, u)?;
        tracing::warn!(user = %c.user, reason = %reason, "user paused by its pass");
    }
    Ok(run_id)
}

const ORG_OP: &str = "advance org-wide cursors";

/// Folder cursors belong to a user's pass and move with its commit only.
pub(super) fn only_org_cursors(op: &'static str, advances: &[CursorAdvance]) -> StoreResult<()> {
    match advances
        .iter()
        .find(|a| !matches!(a.scope, CursorScope::CrmObject { .. }))
    {
        Some(folder) => Err(StoreError::InvalidInput {
            op,
            reason: format!("{:?} is not an org-wide cursor", folder.scope),
        }),
        None => Ok(()),
    }
}

/// Moves org-wide CRM cursors together; folder cursors belong to a user's pass.
pub(super) fn advance_org(
    client: &mut Client,
    advances: &[CursorAdvance],
    at: &chrono::DateTime<chrono::Utc>,
    fence: &Fence,
) -> StoreResult<u64> {
    only_org_cursors(ORG_OP, advances)?;
    let at = time_text(at);
    let mut tx = client.transaction().ctx(ORG_OP, None)?;
    leases::check(
        &mut tx,
        ORG_OP,
        &LeaseScope::Org(ORG_CRM_READ.to_owned()),
        fence,
    )?;
    let mut changed = 0;
    for advance in advances {
        changed += write_cursor(&mut tx, advance, &at).ctx(ORG_OP, None)?;
    }
    tx.commit().ctx(ORG_OP, None)?;
    Ok(changed)
}
