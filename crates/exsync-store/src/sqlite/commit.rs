//! Committing a pass: everything one user's pass changes, in one transaction.

use std::collections::{HashMap, HashSet};

use exsync_core::plan::SyncedPair;
use exsync_core::{cap_name, content_text_hash, ItemId, ItemKind, Side, UserKey};
use rusqlite::{params, Connection, TransactionBehavior};

use super::codec::{time_text, to_sql_count, Ctx};
use super::echo::insert_crm_write;
use super::state::scope_key;
use super::users::insert_user;
use super::CommitStep;
use crate::error::{StoreError, StoreResult};
use crate::types::{CommitReceipt, CursorScope, PassCommit, MAX_NOTICES};

const OP: &str = "commit pass";

/// Checks everything that can be checked without the database, so that most bad commits are
/// refused before a write lock is taken.
pub(crate) fn validate(c: &PassCommit) -> StoreResult<()> {
    let refuse = |reason: String| StoreError::InvalidCommit {
        user: c.user.clone(),
        reason,
    };
    if c.user.as_str().is_empty() {
        return Err(refuse("the user key is empty".into()));
    }
    if c.finished < c.started {
        return Err(refuse(format!(
            "the pass finished ({}) before it started ({})",
            c.finished, c.started
        )));
    }

    let mut by_crm: HashMap<(ItemKind, &str), &str> = HashMap::new();
    let mut by_exchange: HashMap<(ItemKind, &str), &str> = HashMap::new();
    for pair in &c.upserts {
        let (crm, exchange) = (pair.crm_id.as_str(), pair.exchange_id.as_str());
        if crm.is_empty() || exchange.is_empty() {
            return Err(refuse(format!(
                "a {} pair has an empty id ({crm:?}, {exchange:?})",
                pair.kind
            )));
        }
        if let Some(other) = by_crm.insert((pair.kind, crm), exchange) {
            return Err(StoreError::PairConflict {
                user: c.user.clone(),
                kind: pair.kind,
                record: ItemId::Crm(pair.crm_id.clone()),
                detail: format!("the commit pairs it with Exchange items {other} and {exchange}"),
            });
        }
        if let Some(other) = by_exchange.insert((pair.kind, exchange), crm) {
            return Err(StoreError::PairConflict {
                user: c.user.clone(),
                kind: pair.kind,
                record: ItemId::Exchange(pair.exchange_id.clone()),
                detail: format!("the commit pairs it with CRM records {other} and {crm}"),
            });
        }
    }

    let mut scopes = HashSet::new();
    for advance in &c.cursors {
        match &advance.scope {
            CursorScope::Folder { user, folder } => {
                if user != &c.user {
                    return Err(refuse(format!(
                        "it moves the cursor of folder {folder:?} of another user, {user}"
                    )));
                }
                if folder.is_empty() {
                    return Err(refuse("a folder cursor has an empty folder name".into()));
                }
            }
            CursorScope::CrmObject { object } if object.is_empty() => {
                return Err(refuse("a CRM cursor has an empty object name".into()));
            }
            CursorScope::CrmObject { .. } => {}
        }
        if !scopes.insert(&advance.scope) {
            return Err(refuse(format!("it moves cursor {:?} twice", advance.scope)));
        }
    }

    for write in &c.crm_writes {
        if write.crm_id.as_str().is_empty() || write.system_modstamp.is_empty() {
            return Err(refuse(
                "an echo-log entry has an empty id or SystemModstamp".into(),
            ));
        }
        if write.user.as_ref().is_some_and(|u| u != &c.user) {
            return Err(refuse(format!(
                "echo-log entry {} belongs to another user",
                write.crm_id
            )));
        }
    }
    if c.unresolved.iter().any(|item| item.id.as_str().is_empty()) {
        return Err(refuse("an unresolved item has an empty id".into()));
    }
    if c.pause
        .as_deref()
        .is_some_and(|reason| reason.trim().is_empty())
    {
        return Err(refuse("a pause needs a reason".into()));
    }
    if c.partial && (c.pause.is_some() || !c.conflicts.is_empty() || c.error.is_some()) {
        return Err(refuse(
            "a partial commit records no run, so it cannot carry conflicts, an error or a pause"
                .into(),
        ));
    }
    let counts = c.counts;
    for (what, n) in [
        ("created", counts.created),
        ("updated", counts.updated),
        ("deleted", counts.deleted),
        ("conflicts", counts.conflicts),
        ("failures", counts.failures),
    ] {
        to_sql_count(n, what).map_err(refuse)?;
    }
    Ok(())
}

/// Applies a validated commit. `checkpoint` runs between the groups of writes; the crash
/// tests use it to stop the process half-way.
pub(crate) fn apply(
    conn: &mut Connection,
    c: &PassCommit,
    checkpoint: impl Fn(CommitStep, &Connection),
) -> StoreResult<CommitReceipt> {
    let user = &c.user;
    let u = Some(user);
    let at = time_text(&c.finished);
    // IMMEDIATE takes the write lock now, so a concurrent writer waits at BEGIN instead of
    // failing half-way when a read lock would have had to be upgraded.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx(OP, u)?;
    insert_user(&tx, user, &at).ctx(OP, u)?;

    let pairs_removed = remove_pairs(&tx, c)?;
    checkpoint(CommitStep::Removals, &tx);
    let pairs_written = upsert_pairs(&tx, c, &at)?;
    checkpoint(CommitStep::Upserts, &tx);
    let cursors_changed = advance_cursors(&tx, c, &at)?;
    checkpoint(CommitStep::Cursors, &tx);
    update_unresolved(&tx, c, &at)?;
    super::journal::settle(&tx, OP, &c.settled_intents)?;
    checkpoint(CommitStep::Unresolved, &tx);
    let run_id = if c.partial {
        for write in &c.crm_writes {
            insert_crm_write(&tx, write, u).ctx(OP, u)?;
        }
        0
    } else {
        record_run(&tx, c, &at)?
    };
    checkpoint(CommitStep::Run, &tx);

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

fn remove_pairs(conn: &Connection, c: &PassCommit) -> StoreResult<u64> {
    let u = Some(&c.user);
    let mut stmt = conn
        .prepare_cached(
            "DELETE FROM pairs WHERE user_key = ?1 AND kind = ?2 AND crm_id = ?3 AND exchange_id = ?4",
        )
        .ctx(OP, u)?;
    let mut removed = 0;
    for key in &c.removals {
        let n = stmt
            .execute(params![
                c.user.as_str(),
                key.kind.as_str(),
                key.crm_id.as_str(),
                key.exchange_id.as_str()
            ])
            .ctx(OP, u)?;
        if n == 0 {
            // A retried pass removes what the first attempt already removed.
            tracing::debug!(user = %c.user, kind = %key.kind, crm_id = %key.crm_id, exchange_id = %key.exchange_id, "pair to remove was not there");
        }
        removed += n as u64;
    }
    Ok(removed)
}

/// A pair's content as both backends store it, and its hash.
pub(crate) fn stored_content(c: &PassCommit, pair: &SyncedPair) -> StoreResult<(String, String)> {
    let content = serde_json::to_string(&pair.content).map_err(|e| StoreError::InvalidCommit {
        user: c.user.clone(),
        reason: format!(
            "pair {}/{}: content cannot be stored: {e}",
            pair.crm_id, pair.exchange_id
        ),
    })?;
    let hash = content_text_hash(&content);
    Ok((content, hash))
}

fn upsert_pairs(conn: &Connection, c: &PassCommit, at: &str) -> StoreResult<u64> {
    let u = Some(&c.user);
    let mut find = conn
        .prepare_cached(
            "SELECT id, crm_id, exchange_id FROM pairs \
             WHERE user_key = ?1 AND kind = ?2 AND (crm_id = ?3 OR exchange_id = ?4) ORDER BY id",
        )
        .ctx(OP, u)?;
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO pairs (user_key, kind, crm_id, exchange_id, content, content_hash, \
             crm_version, exchange_version, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT DO NOTHING",
        )
        .ctx(OP, u)?;
    let mut update = conn
        .prepare_cached(
            "UPDATE pairs SET crm_id = ?2, exchange_id = ?3, content = ?4, content_hash = ?5, \
             crm_version = ?6, exchange_version = ?7, updated_at = ?8 WHERE id = ?1",
        )
        .ctx(OP, u)?;

    for pair in &c.upserts {
        let (content, hash) = stored_content(c, pair)?;
        // Most pairs a pass writes are new (a first sync makes nothing else), so the insert
        // goes first and only a pair that meets a stored one pays the look-up.
        let inserted = insert
            .execute(params![
                c.user.as_str(),
                pair.kind.as_str(),
                pair.crm_id.as_str(),
                pair.exchange_id.as_str(),
                content,
                hash,
                pair.crm_version,
                pair.exchange_version,
                at
            ])
            .ctx(OP, u)?;
        if inserted == 1 {
            continue;
        }
        let existing = find
            .query_map(
                params![
                    c.user.as_str(),
                    pair.kind.as_str(),
                    pair.crm_id.as_str(),
                    pair.exchange_id.as_str()
                ],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                    ))
                },
            )
            .ctx(OP, u)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .ctx(OP, u)?;
        match existing.as_slice() {
            [] => {
                // Only a uniqueness conflict makes the insert do nothing, and such a conflict
                // is a stored pair the look-up finds.
                return Err(StoreError::InvalidCommit {
                    user: c.user.clone(),
                    reason: format!(
                        "pair {}/{} was neither inserted nor found",
                        pair.crm_id, pair.exchange_id
                    ),
                });
            }
            [(id, _, _)] => {
                update
                    .execute(params![
                        id,
                        pair.crm_id.as_str(),
                        pair.exchange_id.as_str(),
                        content,
                        hash,
                        pair.crm_version,
                        pair.exchange_version,
                        at
                    ])
                    .ctx(OP, u)?;
            }
            [(_, crm_a, exchange_a), (_, crm_b, exchange_b), ..] => {
                // Replacing either row would leave the record of the other in two pairs; the
                // caller must say which pair goes by removing it in the same commit.
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

fn advance_cursors(conn: &Connection, c: &PassCommit, at: &str) -> StoreResult<u64> {
    let u = Some(&c.user);
    let mut set = conn
        .prepare_cached(
            "INSERT INTO cursors (scope_kind, user_key, name, value, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (scope_kind, user_key, name) \
             DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .ctx(OP, u)?;
    let mut clear = conn
        .prepare_cached("DELETE FROM cursors WHERE scope_kind = ?1 AND user_key = ?2 AND name = ?3")
        .ctx(OP, u)?;
    let mut changed = 0;
    for advance in &c.cursors {
        let (kind, user_key, name) = scope_key(&advance.scope);
        let n = match &advance.value {
            Some(value) => set
                .execute(params![kind, user_key, name, value, at])
                .ctx(OP, u)?,
            None => clear.execute(params![kind, user_key, name]).ctx(OP, u)?,
        };
        changed += n as u64;
    }
    Ok(changed)
}

fn update_unresolved(conn: &Connection, c: &PassCommit, at: &str) -> StoreResult<()> {
    let u = Some(&c.user);
    let mut clear = conn
        .prepare_cached("DELETE FROM unresolved WHERE user_key = ?1 AND kind = ?2 AND side = ?3 AND item_id = ?4")
        .ctx(OP, u)?;
    let mut clear_item = |kind: ItemKind, side: Side, id: &str| -> StoreResult<()> {
        clear
            .execute(params![c.user.as_str(), kind.as_str(), side.as_str(), id])
            .ctx(OP, u)?;
        Ok(())
    };
    // An item that synced (written into a pair, or its pair removed) is no longer failing.
    // Most users have nothing unresolved, and a first sync writes thousands of pairs: one
    // look saves a delete per record then.
    let any_unresolved: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM unresolved WHERE user_key = ?1)")
        .ctx(OP, u)?
        .query_row(params![c.user.as_str()], |row| row.get(0))
        .ctx(OP, u)?;
    if any_unresolved {
        for pair in &c.upserts {
            clear_item(pair.kind, Side::Crm, pair.crm_id.as_str())?;
            clear_item(pair.kind, Side::Exchange, pair.exchange_id.as_str())?;
        }
        for key in &c.removals {
            clear_item(key.kind, Side::Crm, key.crm_id.as_str())?;
            clear_item(key.kind, Side::Exchange, key.exchange_id.as_str())?;
        }
        for item in &c.resolved {
            clear_item(item.kind, item.id.side(), item.id.as_str())?;
        }
    }

    let mut report = conn
        .prepare_cached(
            "INSERT INTO unresolved (user_key, kind, side, item_id, reason, first_seen, last_seen, \
             name) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7) \
             ON CONFLICT (user_key, kind, side, item_id) \
             DO UPDATE SET reason = excluded.reason, last_seen = excluded.last_seen, \
             occurrences = unresolved.occurrences + 1, \
             name = coalesce(excluded.name, unresolved.name)",
        )
        .ctx(OP, u)?;
    for item in &c.unresolved {
        report
            .execute(params![
                c.user.as_str(),
                item.kind.as_str(),
                item.id.side().as_str(),
                item.id.as_str(),
                item.reason,
                at,
                item.name.as_deref().map(cap_name)
            ])
            .ctx(OP, u)?;
    }
    Ok(())
}

fn record_run(conn: &Connection, c: &PassCommit, at: &str) -> StoreResult<i64> {
    let u = Some(&c.user);
    let refuse = |reason: String| StoreError::InvalidCommit {
        user: c.user.clone(),
        reason,
    };
    let n = |v: u64, what: &str| to_sql_count(v, what).map_err(refuse);
    let kept = &c.notices[..c.notices.len().min(MAX_NOTICES)];
    let notices = serde_json::to_string(kept).map_err(|e| refuse(format!("notices: {e}")))?;
    conn.prepare_cached(
        "INSERT INTO runs (user_key, started_at, finished_at, created, updated, deleted, \
         conflicts, failures, error, notices, backend, configuration, via_group) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )
    .ctx(OP, u)?
    .execute(params![
        c.user.as_str(),
        time_text(&c.started),
        at,
        n(c.counts.created, "created")?,
        n(c.counts.updated, "updated")?,
        n(c.counts.deleted, "deleted")?,
        n(c.counts.conflicts, "conflicts")?,
        n(c.counts.failures, "failures")?,
        c.error,
        notices,
        c.backend,
        c.assignment.as_ref().map(|a| a.configuration.as_str()),
        c.assignment.as_ref().and_then(|a| a.group.as_deref())
    ])
    .ctx(OP, u)?;
    let run_id = conn.last_insert_rowid();

    let mut conflict = conn
        .prepare_cached(
            "INSERT INTO conflicts (run_id, user_key, at, kind, crm_id, exchange_id, field, \
             crm_value, exchange_value, winner, first_link, name) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .ctx(OP, u)?;
    for entry in &c.conflicts {
        let json = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
        conflict
            .execute(params![
                run_id,
                c.user.as_str(),
                at,
                entry.kind.as_str(),
                entry.crm_id.as_str(),
                entry.exchange_id.as_str(),
                entry.conflict.field,
                json(&entry.conflict.crm_value),
                json(&entry.conflict.exchange_value),
                entry.conflict.winner.as_str(),
                entry.conflict.first_link,
                entry.name.as_deref().map(cap_name)
            ])
            .ctx(OP, u)?;
    }

    for write in &c.crm_writes {
        insert_crm_write(conn, write, Some(&c.user)).ctx(OP, u)?;
    }

    conn.prepare_cached("UPDATE users SET last_run_id = ?2 WHERE user_key = ?1")
        .ctx(OP, u)?
        .execute(params![c.user.as_str(), run_id])
        .ctx(OP, u)?;
    if let Some(reason) = &c.pause {
        pause(conn, &c.user, reason, at).ctx(OP, u)?;
        tracing::warn!(user = %c.user, reason = %reason, "user paused by its pass");
    }
    Ok(run_id)
}

/// Keeps the first pause time when an already paused user is paused again.
pub(crate) fn pause(
    conn: &Connection,
    user: &UserKey,
    reason: &str,
    at: &str,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "UPDATE users SET paused = 1, paused_reason = ?2, \
         paused_at = CASE WHEN paused = 1 THEN paused_at ELSE ?3 END WHERE user_key = ?1",
    )?
    .execute(params![user.as_str(), reason, at])
}

const ORG_OP: &str = "advance org-wide cursors";

/// Moves org-wide CRM cursors together, once every user's pass that read the changes they
/// cover is committed. Folder cursors belong to a user's pass and are refused here.
pub(crate) fn advance_org(
    conn: &mut Connection,
    advances: &[crate::types::CursorAdvance],
    at: &chrono::DateTime<chrono::Utc>,
) -> StoreResult<u64> {
    if let Some(folder) = advances
        .iter()
        .find(|a| !matches!(a.scope, CursorScope::CrmObject { .. }))
    {
        return Err(StoreError::InvalidInput {
            op: ORG_OP,
            reason: format!("{:?} is not an org-wide cursor", folder.scope),
        });
    }
    let at = time_text(at);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx(ORG_OP, None)?;
    let mut changed = 0;
    for advance in advances {
        let (kind, user_key, name) = scope_key(&advance.scope);
        changed += match &advance.value {
            Some(value) => tx
                .execute(
                    "INSERT INTO cursors (scope_kind, user_key, name, value, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (scope_kind, user_key, name) \
                     DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                    params![kind, user_key, name, value, at],
                )
                .ctx(ORG_OP, None)?,
            None => tx
                .execute(
                    "DELETE FROM cursors WHERE scope_kind = ?1 AND user_key = ?2 AND name = ?3",
                    params![kind, user_key, name],
                )
                .ctx(ORG_OP, None)?,
        } as u64;
    }
    tx.commit().ctx(ORG_OP, None)?;
    Ok(changed)
}
