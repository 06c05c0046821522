//! Committing a pass on PostgreSQL: everything one user's pass changes, in one transaction,
//! checked first by the same validation as the SQLite backend so refusals are identical.

use std::collections::{HashMap, HashSet};

use exsync_core::{cap_name, ItemId, ItemKind, Side};
use postgres::{Client, Transaction};

use super::codec::Ctx;
use super::echo::insert_crm_writes;
use super::leases::{self, Fence};
use super::users::{insert_user, pause};
use crate::error::{StoreError, StoreResult};
use crate::roles::{LeaseScope, ORG_CRM_READ};
use crate::sqlite::codec::{time_text, to_sql_count};
use crate::sqlite::commit::stored_content;
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
        insert_crm_writes(&mut tx, &c.crm_writes, u).ctx(OP, u)?;
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

/// Removes the commit's pairs in one statement. A retried pass removes what the first attempt
/// already removed: a key that matches nothing is fine.
fn remove_pairs(tx: &mut Transaction<'_>, c: &PassCommit) -> StoreResult<u64> {
    if c.removals.is_empty() {
        return Ok(0);
    }
    let kinds: Vec<&str> = c.removals.iter().map(|k| k.kind.as_str()).collect();
    let crm_ids: Vec<&str> = c.removals.iter().map(|k| k.crm_id.as_str()).collect();
    let exchange_ids: Vec<&str> = c.removals.iter().map(|k| k.exchange_id.as_str()).collect();
    // Each found by its unique index, as in `update_met_pairs`; `OFFSET 0` keeps the
    // subquery from being turned into a join (see `state::by_ids`).
    tx.execute(
        "DELETE FROM pairs WHERE id IN (SELECT p.id \
         FROM unnest($2::TEXT[], $3::TEXT[], $4::TEXT[]) AS r(kind, crm_id, exchange_id) \
         CROSS JOIN LATERAL (SELECT id FROM pairs WHERE user_key = $1 AND kind = r.kind \
         AND crm_id = r.crm_id AND exchange_id = r.exchange_id OFFSET 0) p)",
        &[&c.user.as_str(), &kinds, &crm_ids, &exchange_ids],
    )
    .ctx(OP, Some(&c.user))
}

/// Writes the commit's pairs in a few statements, whatever their number:
/// 1. the new ones (a first sync writes nothing else) in one insert;
/// 2. those that met a stored pair, each the one stored pair it replaces, in one look-up and
///    one update, unless one of them meets two stored pairs or two of them meet the same one;
/// 3. then, and only then, those one at a time, in the commit's order, as SQLite does.
///
/// Doing the first two at once changes nothing. The commit's pairs share no id (`validate`),
/// so no update of one can free or take the ids another needs; and one stored pair that two of
/// them would replace takes the third way.
fn upsert_pairs(tx: &mut Transaction<'_>, c: &PassCommit, at: &str) -> StoreResult<u64> {
    let u = Some(&c.user);
    let contents = c
        .upserts
        .iter()
        .map(|pair| stored_content(c, pair))
        .collect::<StoreResult<Vec<_>>>()?;
    let inserted = insert_new_pairs(tx, c, &contents, at)?;
    let met: Vec<usize> = (0..c.upserts.len()).filter(|&i| !inserted[i]).collect();
    if met.is_empty() || update_met_pairs(tx, c, &contents, &met, at)? {
        return Ok(c.upserts.len() as u64);
    }
    // Two look-ups by index: with an `OR`, PostgreSQL scanned the user's pairs for each.
    let find = tx
        .prepare(
            "SELECT id, crm_id, exchange_id FROM pairs \
             WHERE user_key = $1 AND kind = $2 AND crm_id = $3 \
             UNION SELECT id, crm_id, exchange_id FROM pairs \
             WHERE user_key = $1 AND kind = $2 AND exchange_id = $4 ORDER BY id",
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
    for (pair, (content, hash)) in met.into_iter().map(|i| (&c.upserts[i], &contents[i])) {
        // Tried again: an update earlier in the commit may have freed the ids it met.
        let inserted = tx
            .execute(
                &insert,
                &[
                    &c.user.as_str(),
                    &pair.kind.as_str(),
                    &pair.crm_id.as_str(),
                    &pair.exchange_id.as_str(),
                    content,
                    hash,
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
                        content,
                        hash,
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

/// Replaces, for each of the `met` pairs of the commit, the one stored pair that holds its
/// CRM id or its Exchange id, in one look-up and one update. Writes nothing and answers
/// `false` unless each meets exactly one stored pair and no two meet the same.
fn update_met_pairs(
    tx: &mut Transaction<'_>,
    c: &PassCommit,
    contents: &[(String, String)],
    met: &[usize],
    at: &str,
) -> StoreResult<bool> {
    let u = Some(&c.user);
    let pairs: Vec<&exsync_core::plan::SyncedPair> = met.iter().map(|&i| &c.upserts[i]).collect();
    let kinds: Vec<&str> = pairs.iter().map(|p| p.kind.as_str()).collect();
    let crm_ids: Vec<&str> = pairs.iter().map(|p| p.crm_id.as_str()).collect();
    let exchange_ids: Vec<&str> = pairs.iter().map(|p| p.exchange_id.as_str()).collect();
    // One look-up per pair and unique index (see `state::by_ids`; a `UNION` is never turned
    // into a join): with a plain join, or `= ANY` of the arrays, PostgreSQL's estimates for a
    // table filled since it was last analysed (a first sync's) had it read every pair of the
    // user, each commit.
    let found = tx
        .query(
            "SELECT v.n, p.id FROM unnest($2::TEXT[], $3::TEXT[], $4::TEXT[]) WITH ORDINALITY \
             AS v(kind, crm_id, exchange_id, n) \
             CROSS JOIN LATERAL ( \
             SELECT id FROM pairs WHERE user_key = $1 AND kind = v.kind AND crm_id = v.crm_id \
             UNION \
             SELECT id FROM pairs WHERE user_key = $1 AND kind = v.kind \
             AND exchange_id = v.exchange_id) p",
            &[&c.user.as_str(), &kinds, &crm_ids, &exchange_ids],
        )
        .ctx(OP, u)?;
    let mut stored: Vec<Option<i64>> = vec![None; met.len()];
    let mut taken = HashSet::with_capacity(found.len());
    for row in &found {
        let n: i64 = row.try_get(0).ctx(OP, u)?;
        let id: i64 = row.try_get(1).ctx(OP, u)?;
        let Some(slot) = usize::try_from(n - 1).ok().and_then(|i| stored.get_mut(i)) else {
            return Ok(false);
        };
        // A second stored pair for one of them, or a stored pair two of them meet.
        if slot.replace(id).is_some() || !taken.insert(id) {
            return Ok(false);
        }
    }
    let Some(ids) = stored.into_iter().collect::<Option<Vec<i64>>>() else {
        return Ok(false);
    };
    let texts: Vec<&str> = met.iter().map(|&i| contents[i].0.as_str()).collect();
    let hashes: Vec<&str> = met.iter().map(|&i| contents[i].1.as_str()).collect();
    let crm_versions: Vec<Option<&str>> = pairs.iter().map(|p| p.crm_version.as_deref()).collect();
    let exchange_versions: Vec<Option<&str>> = pairs
        .iter()
        .map(|p| p.exchange_version.as_deref())
        .collect();
    tx.execute(
        "UPDATE pairs p SET crm_id = v.crm_id, exchange_id = v.exchange_id, content = v.content, \
         content_hash = v.hash, crm_version = v.crm_version, \
         exchange_version = v.exchange_version, updated_at = $1 \
         FROM unnest($2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], \
         $8::TEXT[]) AS v(id, crm_id, exchange_id, content, hash, crm_version, exchange_version) \
         WHERE p.id = v.id AND p.id = ANY($2)",
        &[
            &at,
            &ids,
            &crm_ids,
            &exchange_ids,
            &texts,
            &hashes,
            &crm_versions,
            &exchange_versions,
        ],
    )
    .ctx(OP, u)?;
    Ok(true)
}

/// Inserts every pair of the commit that meets no stored one, in one round trip; answers,
/// for each of the commit's pairs in order, whether it was inserted.
fn insert_new_pairs(
    tx: &mut Transaction<'_>,
    c: &PassCommit,
    contents: &[(String, String)],
    at: &str,
) -> StoreResult<Vec<bool>> {
    let u = Some(&c.user);
    let mut inserted = vec![false; c.upserts.len()];
    if c.upserts.is_empty() {
        return Ok(inserted);
    }
    let kinds: Vec<&str> = c.upserts.iter().map(|p| p.kind.as_str()).collect();
    let crm_ids: Vec<&str> = c.upserts.iter().map(|p| p.crm_id.as_str()).collect();
    let exchange_ids: Vec<&str> = c.upserts.iter().map(|p| p.exchange_id.as_str()).collect();
    let texts: Vec<&str> = contents.iter().map(|(t, _)| t.as_str()).collect();
    let hashes: Vec<&str> = contents.iter().map(|(_, h)| h.as_str()).collect();
    let crm_versions: Vec<Option<&str>> =
        c.upserts.iter().map(|p| p.crm_version.as_deref()).collect();
    let exchange_versions: Vec<Option<&str>> = c
        .upserts
        .iter()
        .map(|p| p.exchange_version.as_deref())
        .collect();
    // In the commit's order, so new pairs' ids ascend as they did one insert at a time.
    let rows = tx
        .query(
            "INSERT INTO pairs (user_key, kind, crm_id, exchange_id, content, content_hash, \
             crm_version, exchange_version, updated_at) \
             SELECT $1, v.kind, v.crm_id, v.exchange_id, v.content, v.hash, v.crm_version, \
             v.exchange_version, $9 \
             FROM unnest($2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], \
             $7::TEXT[], $8::TEXT[]) WITH ORDINALITY \
             AS v(kind, crm_id, exchange_id, content, hash, crm_version, exchange_version, n) \
             ORDER BY v.n \
             ON CONFLICT DO NOTHING RETURNING kind, crm_id",
            &[
                &c.user.as_str(),
                &kinds,
                &crm_ids,
                &exchange_ids,
                &texts,
                &hashes,
                &crm_versions,
                &exchange_versions,
                &at,
            ],
        )
        .ctx(OP, u)?;
    // The commit's pairs share no (kind, CRM id) (`validate`): each names one of them.
    let at_index: HashMap<(&str, &str), usize> = kinds
        .iter()
        .zip(&crm_ids)
        .enumerate()
        .map(|(i, (kind, crm_id))| ((*kind, *crm_id), i))
        .collect();
    for row in &rows {
        let kind: &str = row.try_get(0).ctx(OP, u)?;
        let crm_id: &str = row.try_get(1).ctx(OP, u)?;
        if let Some(&i) = at_index.get(&(kind, crm_id)) {
            inserted[i] = true;
        }
    }
    Ok(inserted)
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
    // In one statement: a first sync's commit names every pair it writes.
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
        let kinds: Vec<&str> = cleared.iter().map(|(k, _, _)| k.as_str()).collect();
        let sides: Vec<&str> = cleared.iter().map(|(_, s, _)| s.as_str()).collect();
        let ids: Vec<&str> = cleared.iter().map(|(_, _, id)| *id).collect();
        tx.execute(
            "DELETE FROM unresolved x USING unnest($2::TEXT[], $3::TEXT[], $4::TEXT[]) \
             AS r(kind, side, item_id) \
             WHERE x.user_key = $1 AND x.kind = r.kind AND x.side = r.side \
             AND x.item_id = r.item_id",
            &[&c.user.as_str(), &kinds, &sides, &ids],
        )
        .ctx(OP, u)?;
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
    insert_crm_writes(tx, &c.crm_writes, u).ctx(OP, u)?;
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
