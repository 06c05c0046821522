//! The Salesforce connector as the sync service's CRM side.

use exsync_core::plan::{Change, WriteResult};
use exsync_core::{Contact, CrmId, Event, Fields, ItemId, ItemKind, Record};
use exsync_salesforce::{
    ChangeCursor, CrmChange, Error, NewRecord, SalesforceClient, Scope, SyncObject, Tagged,
    WriteOutcome,
};

use crate::sync::sides::{
    CopyEvidence, CrmFilter, CrmPage, CrmSide, CrmUser, OwnedChange, SideError, SideErrorKind,
    SideResult, Write,
};

/// The Salesforce connector as the service's [`CrmSide`].
pub struct SalesforceSide {
    /// The connector, configured from `[crm]` and the vault's CRM secret (see
    /// [`super::build::salesforce_config`]).
    pub client: SalesforceClient,
}

/// The records a read covers, in the connector's terms.
fn scope_of(filter: &CrmFilter) -> Scope {
    Scope {
        owner_ids: filter
            .owners
            .iter()
            .map(|o| o.as_str().to_owned())
            .collect(),
        condition: filter.condition.clone(),
        report_out_of_scope: false,
    }
}

/// Connector errors in the terms the service acts on.
pub fn side_error(e: Error) -> SideError {
    let kind = match &e {
        Error::LimitReserved { .. } | Error::BudgetSpent { .. } => SideErrorKind::LimitReserved,
        Error::Auth { .. } | Error::Config(_) => SideErrorKind::Fatal,
        Error::Api { .. } | Error::Transport(_) | Error::Decode(_) | Error::Budget(_) => {
            SideErrorKind::Transient
        }
    };
    let remedy = match &e {
        Error::LimitReserved { .. } => Some(
            "wait for the org's rolling 24-hour API allowance to recover, or lower crm.api_reserve",
        ),
        Error::BudgetSpent { .. } => Some(
            "wait: every worker draws from this budget in the state database, and it refills as the org's rolling 24-hour allowance does; or lower crm.api_reserve",
        ),
        Error::Budget(_) => Some(
            "check the state database: no CRM call is sent while it cannot count it",
        ),
        Error::Auth { .. } => {
            Some("check crm.client_id, crm.username and the private key (`exsync secrets set`)")
        }
        _ => None,
    };
    let error = SideError::new(kind, format!("Salesforce: {e}"));
    match remedy {
        Some(remedy) => error.with_remedy(remedy),
        None => error,
    }
}

fn owned(change: CrmChange) -> OwnedChange {
    OwnedChange {
        owner: change.owner_id.map(CrmId::new),
        change: change.change,
        notes: change.notes,
    }
}

fn result(outcome: WriteOutcome) -> WriteResult {
    match (outcome.error, outcome.id) {
        (None, Some(id)) => WriteResult::Done {
            id: ItemId::Crm(id),
            version: outcome.version,
        },
        (Some(error), _) => WriteResult::Failed {
            reason: error.to_string(),
        },
        (None, None) => WriteResult::Failed {
            reason: "Salesforce did not return the record's id".into(),
        },
    }
}

impl CrmSide for SalesforceSide {
    fn lens(&self) -> &dyn exsync_core::plan::Lens {
        &exsync_salesforce::SalesforceLens
    }

    fn write_batch(&self) -> usize {
        exsync_salesforce::COLLECTION_MAX
    }

    fn mailbox_field(&self) -> &str {
        self.client.mailbox_field().as_str()
    }

    async fn users(&self) -> SideResult<Vec<CrmUser>> {
        // Each pass starts here: if the last one stopped at the reserve, see whether the
        // rolling allowance has recovered before refusing again.
        if self.client.reserve_reached() {
            self.client.refresh_api_usage().await.map_err(side_error)?;
        }
        let users = self.client.users().await.map_err(side_error)?;
        Ok(users
            .into_iter()
            .map(|u| CrmUser {
                id: CrmId::new(u.id),
                email: u.mailbox,
                profile: u.profile,
                active: u.active,
                time_zone: u.time_zone,
            })
            .collect())
    }

    async fn changes_page(
        &self,
        kind: ItemKind,
        cursor: Option<&str>,
        filter: &CrmFilter,
    ) -> SideResult<CrmPage> {
        let position: ChangeCursor = match cursor {
            None => ChangeCursor::default(),
            Some(text) => serde_json::from_str(text).map_err(|e| {
                SideError::new(
                    SideErrorKind::Fatal,
                    format!("the stored Salesforce {kind} cursor is unreadable: {e}"),
                )
                .with_remedy("run `exsync reset` for the affected users, or delete the cursor row")
            })?,
        };
        let batch = self
            .client
            .read_changes(SyncObject::from(kind), &scope_of(filter), &position)
            .await
            .map_err(side_error)?;
        Ok(CrmPage {
            changes: batch.changes.into_iter().map(owned).collect(),
            cursor: serde_json::to_string(&batch.cursor).map_err(|e| {
                SideError::new(SideErrorKind::Fatal, format!("writing the cursor: {e}"))
            })?,
            more: batch.more,
            live_ids: batch.live_ids,
        })
    }

    async fn fetch(&self, kind: ItemKind, ids: &[CrmId]) -> SideResult<Vec<OwnedChange>> {
        let changes = self
            .client
            .fetch_changes(SyncObject::from(kind), ids)
            .await
            .map_err(side_error)?;
        Ok(changes.into_iter().map(owned).collect())
    }

    async fn write(
        &self,
        kind: ItemKind,
        owner: &CrmId,
        writes: &[Write<'_>],
    ) -> SideResult<Vec<WriteResult>> {
        let mut results: Vec<Option<WriteResult>> = vec![None; writes.len()];
        let mut creates = Vec::new();
        let mut updates = Vec::new();
        let mut deletes = Vec::new();
        for (i, write) in writes.iter().enumerate() {
            match write {
                Write::Create { fields, origin } => creates.push((i, *fields, *origin)),
                Write::Update {
                    id,
                    fields,
                    changed,
                    ..
                } => updates.push((i, CrmId::new(*id), *fields, *changed)),
                Write::Delete { id } => deletes.push((i, CrmId::new(*id))),
            }
        }
        match kind {
            ItemKind::Contact => {
                let (at, items) = new_records::<Contact>(&creates, owner, &mut results);
                if !items.is_empty() {
                    fill(
                        &mut results,
                        &at,
                        self.client
                            .create_contacts(&items)
                            .await
                            .map_err(side_error)?,
                    );
                }
                let (at, items) = changed_records::<Contact>(&updates, &mut results);
                if !items.is_empty() {
                    fill(
                        &mut results,
                        &at,
                        self.client
                            .update_contacts_changed(&items)
                            .await
                            .map_err(side_error)?,
                    );
                }
            }
            ItemKind::Event => {
                let (at, items) = new_records::<Event>(&creates, owner, &mut results);
                if !items.is_empty() {
                    fill(
                        &mut results,
                        &at,
                        self.client
                            .create_events(&items)
                            .await
                            .map_err(side_error)?,
                    );
                }
                let (at, items) = changed_records::<Event>(&updates, &mut results);
                if !items.is_empty() {
                    fill(
                        &mut results,
                        &at,
                        self.client
                            .update_events_changed(&items)
                            .await
                            .map_err(side_error)?,
                    );
                }
            }
        }
        if !deletes.is_empty() {
            let ids: Vec<CrmId> = deletes.iter().map(|(_, id)| id.clone()).collect();
            let outcomes = self.client.delete_records(&ids).await.map_err(side_error)?;
            for ((i, id), outcome) in deletes.into_iter().zip(outcomes) {
                // A record someone else deleted first is as good as deleted by us.
                let gone = outcome
                    .error
                    .as_ref()
                    .is_some_and(|e| e.code == "ENTITY_IS_DELETED" || e.code == "NOT_FOUND");
                results[i] = Some(if gone {
                    WriteResult::Done {
                        id: ItemId::Crm(id),
                        version: None,
                    }
                } else {
                    result(WriteOutcome {
                        id: Some(id),
                        ..outcome
                    })
                });
            }
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or(WriteResult::Failed {
                    reason: "not written".into(),
                })
            })
            .collect())
    }

    /// Creates are upserts keyed on the Exchange id they copy (see `new_records`), so the
    /// copies are found by that tag, recycle bin included; a live copy is read as any fetch
    /// reads it. Only an Exchange id can be a tag: any other origin is unknown.
    async fn find_copies(
        &self,
        kind: ItemKind,
        origins: &[ItemId],
        since: chrono::DateTime<chrono::Utc>,
    ) -> SideResult<Vec<CopyEvidence>> {
        let tags: Vec<&str> = origins
            .iter()
            .filter_map(|origin| match origin {
                ItemId::Exchange(id) => Some(id.as_str()),
                _ => None,
            })
            .collect();
        if tags.is_empty() {
            return Ok(vec![CopyEvidence::Unknown; origins.len()]);
        }
        let tagged = self
            .client
            .find_tagged(SyncObject::from(kind), &tags, since)
            .await
            .map_err(side_error)?;
        let live: Vec<CrmId> = tagged
            .iter()
            .filter_map(|t| match t {
                Tagged::Live(id) => Some(id.clone()),
                _ => None,
            })
            .collect();
        let current: Vec<Change> = if live.is_empty() {
            Vec::new()
        } else {
            self.fetch(kind, &live)
                .await?
                .into_iter()
                .map(|owned| owned.change)
                .collect()
        };
        let mut tagged = tagged.into_iter();
        Ok(origins
            .iter()
            .map(|origin| match origin {
                ItemId::Exchange(_) => match tagged.next() {
                    Some(Tagged::Live(id)) => {
                        let id = ItemId::Crm(id);
                        match current.iter().find(|c| *c.id() == id) {
                            // Deleted between the two queries.
                            Some(Change::Deleted { .. }) => CopyEvidence::Deleted(id),
                            Some(change) => CopyEvidence::Present(change.clone()),
                            None => CopyEvidence::Unknown,
                        }
                    }
                    Some(Tagged::Deleted(id)) => CopyEvidence::Deleted(ItemId::Crm(id)),
                    Some(Tagged::Never) => CopyEvidence::Never,
                    None => CopyEvidence::Unknown,
                },
                _ => CopyEvidence::Unknown,
            })
            .collect())
    }
}

/// Records to create, keyed on the Exchange id they copy so a retried create is an update.
/// A field map that does not form a record fails alone.
fn new_records<R: Record>(
    creates: &[(usize, &Fields, &ItemId)],
    owner: &CrmId,
    results: &mut [Option<WriteResult>],
) -> (Vec<usize>, Vec<NewRecord<R>>) {
    let mut at = Vec::new();
    let mut items = Vec::new();
    for (i, fields, origin) in creates {
        match R::from_fields(fields) {
            Ok(record) => {
                at.push(*i);
                items.push(NewRecord {
                    external_key: Some(origin.as_str().to_owned()),
                    owner_id: Some(owner.as_str().to_owned()),
                    record,
                });
            }
            Err(e) => {
                results[*i] = Some(WriteResult::Failed {
                    reason: e.to_string(),
                })
            }
        }
    }
    (at, items)
}

/// Records to update, each with the domain fields that changed.
#[allow(clippy::type_complexity)]
fn changed_records<'a, R: Record>(
    updates: &[(usize, CrmId, &Fields, &'a [String])],
    results: &mut [Option<WriteResult>],
) -> (Vec<usize>, Vec<(CrmId, R, Option<&'a [String]>)>) {
    let mut at = Vec::new();
    let mut items = Vec::new();
    for (i, id, fields, changed) in updates {
        match R::from_fields(fields) {
            Ok(record) => {
                at.push(*i);
                items.push((id.clone(), record, Some(*changed)));
            }
            Err(e) => {
                results[*i] = Some(WriteResult::Failed {
                    reason: e.to_string(),
                })
            }
        }
    }
    (at, items)
}

fn fill(results: &mut [Option<WriteResult>], at: &[usize], outcomes: Vec<WriteOutcome>) {
    for (i, outcome) in at.iter().zip(outcomes) {
        results[*i] = Some(result(outcome));
    }
}
