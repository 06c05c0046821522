//! One user's pass: read what changed on both sides, plan, write, and commit what was written
//! together with the cursors that cover it, in one store transaction.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use exsync_core::config::SyncConfiguration;
use exsync_core::plan::{plan, settle, Change, Op, PlanInput, SyncedPair, WriteResult};
use exsync_core::{CrmId, ExchangeId, ItemId, ItemKind, Side, UserKey};
use exsync_store::{
    ConflictEntry, CrmWrite, CursorAdvance, CursorScope, ItemRef, PairKey, PassCommit, RunCounts,
    Store, StoreError, UnresolvedReport,
};

use super::sides::{CrmFilter, CrmSide, ExchangeSide, SideError, Write};

/// A user the service syncs, with the configuration that applies to them.
#[derive(Debug, Clone)]
pub struct SyncUser {
    pub key: UserKey,
    pub crm_id: CrmId,
    pub config: Arc<SyncConfiguration>,
}

/// What one user's pass did.
#[derive(Debug, Clone, Default)]
pub struct UserReport {
    pub user: Option<UserKey>,
    pub counts: RunCounts,
    /// Why (part of) the pass failed; the records involved are fetched again next pass.
    pub error: Option<String>,
    /// Set when the safety valve paused the user in this pass.
    pub paused: Option<String>,
    /// The plan, per kind (kept for `--dry-run`).
    pub plans: Vec<(ItemKind, Vec<Op>)>,
}

/// Where the pass stopped, when it could not go on at all.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("state database: {0}")]
    Store(#[from] StoreError),
    #[error("state database task: {0}")]
    Join(String),
}

pub const KINDS: [ItemKind; 2] = [ItemKind::Contact, ItemKind::Event];

/// The Exchange cursor of one user's folder for one kind.
pub fn folder_cursor(user: &UserKey, kind: ItemKind) -> CursorScope {
    CursorScope::folder(user, kind.as_str())
}

/// What the service stores as a mailbox folder's cursor: Exchange's SyncState, and the items
/// the pass itself created after reading it (see where it is read).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct FolderCursor {
    state: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    created: Vec<ExchangeId>,
    /// The folder's id and ChangeKey, so a new process need not look it up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    folder: Option<(String, String)>,
}

impl FolderCursor {
    fn parse(text: Option<&str>) -> FolderCursor {
        match text {
            None => FolderCursor::default(),
            // A bare SyncState, as stored before the created items were remembered.
            Some(text) => serde_json::from_str(text).unwrap_or_else(|_| FolderCursor {
                state: Some(text.to_owned()),
                created: Vec::new(),
                folder: None,
            }),
        }
    }

    fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| self.state.clone().unwrap_or_default())
    }
}

/// Runs a blocking store call off the async threads.
pub async fn on_store<T, F>(store: &Arc<dyn Store>, f: F) -> Result<T, PassError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
{
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|e| PassError::Join(e.to_string()))?
        .map_err(PassError::from)
}

/// Inputs of one user's pass besides the sides and the store.
pub struct UserPass<'a> {
    pub user: &'a SyncUser,
    /// What the org-wide CRM read found for this user, per kind.
    pub crm_changes: BTreeMap<ItemKind, Vec<Change>>,
    /// Kinds whose CRM records this user reads in full in this pass (new or reset), and how.
    pub crm_full_reads: BTreeMap<ItemKind, CrmFilter>,
    pub now: DateTime<Utc>,
    /// Plan only: nothing is written to either side or to the store.
    pub dry_run: bool,
}

/// Runs one user's pass and commits it. Errors of a side end the pass for this user only:
/// the CRM changes it could not apply are recorded as unresolved, so they are fetched again.
pub async fn run_user<E: ExchangeSide, C: CrmSide>(
    exchange: &E,
    crm: &C,
    store: &Arc<dyn Store>,
    pass: UserPass<'_>,
) -> Result<UserReport, PassError> {
    let started = Utc::now();
    let user = pass.user;
    let mut report = UserReport {
        user: Some(user.key.clone()),
        ..UserReport::default()
    };
    let mut commit = PassCommit::new(user.key.clone(), started, started);
    let unresolved = {
        let key = user.key.clone();
        on_store(store, move |s| s.unresolved(&key)).await?
    };

    // The mailbox is made ready (the sync folder created) once; after that, the folders
    // stored with the cursors are used as they are.
    let mut known = true;
    for kind in KINDS {
        if user.config.rules(kind).direction == exsync_core::config::Direction::Off {
            continue;
        }
        let scope = folder_cursor(&user.key, kind);
        let stored = on_store(store, move |s| s.cursor(&scope)).await?;
        known &= FolderCursor::parse(stored.as_deref()).folder.is_some();
    }
    let prepared = if pass.dry_run || known {
        Ok(())
    } else {
        exchange.prepare(&user.key).await
    };
    for kind in KINDS {
        let crm_changes = pass.crm_changes.get(&kind).cloned().unwrap_or_default();
        if user.config.rules(kind).direction == exsync_core::config::Direction::Off {
            continue;
        }
        let retry: Vec<ItemId> = unresolved
            .iter()
            .filter(|u| u.kind == kind)
            .map(|u| u.id.clone())
            .collect();
        let result = match &prepared {
            Err(e) => Err(e.clone()),
            Ok(()) => {
                let kind_pass = KindPass {
                    exchange,
                    crm,
                    store,
                    user,
                    kind,
                    now: pass.now,
                    dry_run: pass.dry_run,
                };
                let full_read = pass.crm_full_reads.get(&kind);
                kind_pass
                    .run(
                        crm_changes.clone(),
                        full_read,
                        &retry,
                        &mut commit,
                        &mut report,
                    )
                    .await?
            }
        };
        if let Err(e) = result {
            // Nothing of this kind was written. Keep what the CRM reported, so the changes
            // are fetched again instead of being lost with the org-wide cursor.
            let reason = format!("{kind}s not synced: {e}");
            commit
                .unresolved
                .extend(crm_changes.iter().map(|c| UnresolvedReport {
                    kind,
                    id: c.id().clone(),
                    reason: reason.clone(),
                }));
            report.error.get_or_insert(reason);
        }
    }

    if pass.dry_run {
        return Ok(report);
    }
    commit.finished = Utc::now();
    commit.counts = report.counts;
    commit.error = report.error.clone();
    on_store(store, move |s| s.commit_pass(&commit)).await?;
    Ok(report)
}

/// One kind of one user's pass.
struct KindPass<'a, E, C> {
    exchange: &'a E,
    crm: &'a C,
    store: &'a Arc<dyn Store>,
    user: &'a SyncUser,
    kind: ItemKind,
    now: DateTime<Utc>,
    dry_run: bool,
}

impl<E: ExchangeSide, C: CrmSide> KindPass<'_, E, C> {
    /// Returns `Ok(Err(_))` when a side failed (the user's problem), `Err` when the store did.
    async fn run(
        &self,
        mut crm_changes: Vec<Change>,
        full_read: Option<&CrmFilter>,
        retry: &[ItemId],
        commit: &mut PassCommit,
        report: &mut UserReport,
    ) -> Result<Result<(), SideError>, PassError> {
        let (user, kind) = (&self.user.key, self.kind);
        if let Some(filter) = full_read {
            // Everything of this user's, then what the org-wide read routed here (newer).
            let read = match self.crm.changes(kind, None, filter).await {
                Ok(read) => read,
                Err(e) => return Ok(Err(e)),
            };
            let mut all: Vec<Change> = read.changes.into_iter().map(|c| c.change).collect();
            all.append(&mut crm_changes);
            crm_changes = all;
        }
        let scope = folder_cursor(user, kind);
        let (pairs, cursor) = {
            let (key, scope) = (user.clone(), scope.clone());
            on_store(self.store, move |s| {
                Ok((s.load_pairs(&key, kind)?, s.cursor(&scope)?))
            })
            .await?
        };
        let cursor = FolderCursor::parse(cursor.as_deref());
        if let Some(folder) = &cursor.folder {
            self.exchange.known_folder(user, kind, folder);
        }
        // Our last writes come back as changes; the versions they were given skip the fetch.
        let known: std::collections::HashMap<ExchangeId, String> = pairs
            .iter()
            .filter_map(|p| {
                p.exchange_version
                    .clone()
                    .map(|v| (p.exchange_id.clone(), v))
            })
            .collect();
        let read = match self
            .exchange
            .changes(user, kind, cursor.state.as_deref(), &known)
            .await
        {
            Ok(read) => read,
            Err(e) => return Ok(Err(e)),
        };
        let next_state = read.cursor;
        let folder = read.folder.clone().or_else(|| cursor.folder.clone());
        let mut exchange_changes = read.changes;
        let listed: std::collections::BTreeSet<ItemId> = exchange_changes
            .iter()
            .map(|c| c.id().clone())
            .chain(read.unchanged.iter().map(|id| ItemId::Exchange(id.clone())))
            .collect();
        // Items the last pass created came after the cursor it stored, so they must be listed
        // now: Exchange reports one created and deleted since a SyncState as nothing at all.
        // After a full listing (the cursor was refused), every synced item must be listed.
        let expected: Vec<ItemId> = if read.full_listing {
            pairs.iter().map(|p| p.id_on(Side::Exchange)).collect()
        } else {
            cursor
                .created
                .iter()
                .map(|id| ItemId::Exchange(id.clone()))
                .collect()
        };
        exchange_changes.extend(
            expected
                .into_iter()
                .filter(|id| !listed.contains(id))
                .map(|id| Change::Deleted { id }),
        );

        // Records that failed last time are read again as they are now.
        let crm_retry: Vec<CrmId> = retry.iter().filter_map(crm_id).collect();
        let exchange_retry: Vec<ExchangeId> = retry.iter().filter_map(exchange_id).collect();
        if !crm_retry.is_empty() {
            match self.crm.fetch(kind, &crm_retry).await {
                Ok(found) => crm_changes.extend(found.into_iter().map(|c| c.change)),
                Err(e) => return Ok(Err(e)),
            }
        }
        if !exchange_retry.is_empty() {
            match self.exchange.fetch(user, kind, &exchange_retry).await {
                Ok(found) => exchange_changes.extend(found),
                Err(e) => return Ok(Err(e)),
            }
        }

        let rules = self.user.config.rules(kind);
        let ops = plan(&PlanInput {
            crm_lens: self.crm.lens(),
            kind,
            rules,
            pairs: &pairs,
            crm_changes: &crm_changes,
            exchange_changes: &exchange_changes,
            now: self.now,
        });
        if self.dry_run {
            report.plans.push((kind, ops));
            return Ok(Ok(()));
        }
        if let Some(Op::PauseUser { reason, .. }) = ops.first() {
            // Nothing is written and the Exchange cursor stays; the CRM changes wait as
            // unresolved items until an admin resumes the user.
            commit.pause = Some(reason.clone());
            report.paused = Some(reason.clone());
            commit
                .unresolved
                .extend(crm_changes.iter().map(|c| UnresolvedReport {
                    kind,
                    id: c.id().clone(),
                    reason: "waiting: the user is paused".into(),
                }));
            return Ok(Ok(()));
        }

        let results = self.execute(&ops).await;
        let settlement = settle(&ops, &results);
        commit.crm_writes.extend(self.crm_writes(&ops, &results));
        commit.removals.extend(
            settlement
                .removals
                .iter()
                .map(|(crm_id, exchange_id)| PairKey {
                    kind,
                    crm_id: crm_id.clone(),
                    exchange_id: exchange_id.clone(),
                }),
        );
        commit.upserts.extend(settlement.upserts);
        commit
            .conflicts
            .extend(
                settlement
                    .conflicts
                    .into_iter()
                    .map(|(crm_id, exchange_id, conflict)| ConflictEntry {
                        kind,
                        crm_id,
                        exchange_id,
                        conflict,
                    }),
            );
        report.counts.failures += settlement.failures.len() as u64;
        commit
            .unresolved
            .extend(settlement.failures.into_iter().map(|f| UnresolvedReport {
                kind,
                id: f.id,
                reason: f.reason,
            }));
        // A record fetched again because it failed before, and that did not fail now, is
        // resolved, whether it needed a write or was already in step.
        let failed: std::collections::BTreeSet<&ItemId> =
            commit.unresolved.iter().map(|u| &u.id).collect();
        let recovered: Vec<ItemId> = retry
            .iter()
            .filter(|id| !failed.contains(id))
            .cloned()
            .collect();
        commit.resolved.extend(
            settlement
                .resolved
                .into_iter()
                .chain(recovered)
                .map(|id| ItemRef { kind, id }),
        );
        let created: Vec<ExchangeId> = ops
            .iter()
            .filter(|op| op.writes())
            .zip(&results)
            .filter_map(|(op, result)| match (op, result) {
                (
                    Op::Create {
                        on: Side::Exchange, ..
                    },
                    WriteResult::Done {
                        id: ItemId::Exchange(id),
                        ..
                    },
                ) => Some(id.clone()),
                _ => None,
            })
            .collect();
        commit.cursors.push(CursorAdvance {
            scope,
            value: Some(
                FolderCursor {
                    state: Some(next_state),
                    created,
                    folder,
                }
                .to_text(),
            ),
        });
        report.counts.created += settlement.created as u64;
        report.counts.updated += settlement.updated as u64;
        report.counts.deleted += settlement.deleted as u64;
        report.counts.conflicts +=
            commit.conflicts.iter().filter(|c| c.kind == kind).count() as u64;
        Ok(Ok(()))
    }

    /// Sends the plan's writes, each side in one call (connectors batch and throttle), and
    /// returns one result per write in plan order. A side that fails as a whole fails each of
    /// its writes with its reason.
    async fn execute(&self, ops: &[Op]) -> Vec<WriteResult> {
        let writes: Vec<&Op> = ops.iter().filter(|op| op.writes()).collect();
        let mut per_side: BTreeMap<Side, (Vec<usize>, Vec<Write<'_>>)> = BTreeMap::new();
        for (i, op) in writes.iter().enumerate() {
            let (side, write) = match op {
                Op::Create {
                    on, source, fields, ..
                } => (
                    *on,
                    Write::Create {
                        fields,
                        origin: source,
                    },
                ),
                Op::Update {
                    on,
                    crm_id,
                    exchange_id,
                    fields,
                    changed,
                    expected_version,
                    ..
                } => (
                    *on,
                    Write::Update {
                        id: side_id(*on, crm_id, exchange_id),
                        fields,
                        changed,
                        expected_version: expected_version.as_deref(),
                    },
                ),
                Op::Delete {
                    on,
                    crm_id,
                    exchange_id,
                    ..
                } => (
                    *on,
                    Write::Delete {
                        id: side_id(*on, crm_id, exchange_id),
                    },
                ),
                _ => continue,
            };
            let entry = per_side.entry(side).or_default();
            entry.0.push(i);
            entry.1.push(write);
        }
        let empty = (Vec::new(), Vec::new());
        let crm_batch = per_side.get(&Side::Crm).unwrap_or(&empty);
        let exchange_batch = per_side.get(&Side::Exchange).unwrap_or(&empty);
        let (crm_results, exchange_results) = tokio::join!(
            async {
                if crm_batch.1.is_empty() {
                    return Ok(Vec::new());
                }
                self.crm
                    .write(self.kind, &self.user.crm_id, &crm_batch.1)
                    .await
            },
            async {
                if exchange_batch.1.is_empty() {
                    return Ok(Vec::new());
                }
                self.exchange
                    .write(&self.user.key, self.kind, &exchange_batch.1)
                    .await
            },
        );
        let mut results: Vec<WriteResult> = vec![
            WriteResult::Failed {
                reason: "not attempted".into()
            };
            writes.len()
        ];
        for ((indexes, sent), answer) in
            [(crm_batch, crm_results), (exchange_batch, exchange_results)]
        {
            match answer {
                Ok(answers) => {
                    for (n, index) in indexes.iter().enumerate() {
                        results[*index] =
                            answers
                                .get(n)
                                .cloned()
                                .unwrap_or_else(|| WriteResult::Failed {
                                    reason: format!(
                                        "the connector answered {} of {} writes",
                                        answers.len(),
                                        sent.len()
                                    ),
                                });
                    }
                }
                Err(e) => {
                    for index in indexes {
                        results[*index] = WriteResult::Failed {
                            reason: e.to_string(),
                        };
                    }
                }
            }
        }
        results
    }

    /// Our CRM writes and the versions they produced, so their echo is recognised.
    fn crm_writes(&self, ops: &[Op], results: &[WriteResult]) -> Vec<CrmWrite> {
        let written = ops.iter().filter(|op| op.writes()).zip(results);
        written
            .filter_map(|(op, result)| match (op, result) {
                (
                    Op::Create { on: Side::Crm, .. } | Op::Update { on: Side::Crm, .. },
                    WriteResult::Done {
                        id,
                        version: Some(version),
                    },
                ) => Some(CrmWrite {
                    crm_id: CrmId::new(id.as_str()),
                    system_modstamp: version.clone(),
                    kind: self.kind,
                    user: Some(self.user.key.clone()),
                    written_at: self.now,
                }),
                _ => None,
            })
            .collect()
    }
}

fn side_id<'a>(on: Side, crm_id: &'a CrmId, exchange_id: &'a ExchangeId) -> &'a str {
    match on {
        Side::Crm => crm_id.as_str(),
        Side::Exchange => exchange_id.as_str(),
    }
}

fn crm_id(id: &ItemId) -> Option<CrmId> {
    match id {
        ItemId::Crm(id) => Some(id.clone()),
        ItemId::Exchange(_) => None,
    }
}

fn exchange_id(id: &ItemId) -> Option<ExchangeId> {
    match id {
        ItemId::Exchange(id) => Some(id.clone()),
        ItemId::Crm(_) => None,
    }
}

/// The pairs a user has, for status pages.
pub async fn user_pairs(
    store: &Arc<dyn Store>,
    user: &UserKey,
    kind: ItemKind,
) -> Result<Vec<SyncedPair>, PassError> {
    let key = user.clone();
    on_store(store, move |s| s.load_pairs(&key, kind)).await
}
