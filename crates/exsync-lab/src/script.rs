//! Edits made "by people" on either side between passes: what `exsync demo` scripts and the
//! end-to-end tests use. They go through the same connectors, as any EWS or REST client would.

use anyhow::{anyhow, bail, Context, Result};
use exsync_core::plan::{Change, Item, WriteResult};
use exsync_core::{CrmId, Fields, ItemId, ItemKind, Side};
use exsync_salesforce::{quote, SyncObject};

use super::{Lab, LabUser};
use exsync_engine::sync::sides::{CrmSide, MailboxSide, Write};

fn text_field<'a>(fields: &'a Fields, name: &str) -> &'a str {
    fields
        .get(name)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
}

/// Whether a record is the one named: contacts by last name, events by subject.
pub fn named(kind: ItemKind, fields: &Fields, name: &str) -> bool {
    match kind {
        ItemKind::Contact => text_field(fields, "last_name") == name,
        ItemKind::Event => text_field(fields, "subject") == name,
    }
}

fn done(results: Vec<WriteResult>) -> Result<()> {
    match results.into_iter().next() {
        Some(WriteResult::Done { .. }) => Ok(()),
        Some(WriteResult::Failed { reason }) => bail!("write refused: {reason}"),
        None => bail!("no answer for the write"),
    }
}

impl Lab {
    /// The ids of the user's CRM records of `kind`.
    pub(super) async fn crm_ids(&self, user: &LabUser, kind: ItemKind) -> Result<Vec<CrmId>> {
        let soql = format!(
            "SELECT Id FROM {} WHERE OwnerId = {}",
            SyncObject::from(kind).name(),
            quote(user.crm_id.as_str())
        );
        Ok(self
            .crm
            .query_all(&soql)
            .await?
            .iter()
            .filter_map(|r| r.get("Id").and_then(|v| v.as_str()).map(CrmId::new))
            .collect())
    }

    /// The user's CRM record of `kind` with that last name (contacts) or subject (events).
    pub async fn crm_record(&self, user: &LabUser, kind: ItemKind, name: &str) -> Result<Item> {
        let ids = self.crm_ids(user, kind).await?;
        self.crm
            .fetch_changes(kind.into(), &ids)
            .await?
            .into_iter()
            .find_map(|c| match c.change {
                Change::Upsert(item) if named(kind, &item.fields, name) => Some(item),
                _ => None,
            })
            .with_context(|| format!("no CRM {kind} {name:?} for {}", user.key))
    }

    /// The user's Exchange item of `kind` with that last name or subject.
    pub async fn exchange_item(&self, user: &LabUser, kind: ItemKind, name: &str) -> Result<Item> {
        let read = self
            .syncer
            .exchange
            .read_folder(&user.key, kind)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        read.into_iter()
            .find_map(|c| match c {
                Change::Upsert(item) if named(kind, &item.fields, name) => Some(item),
                _ => None,
            })
            .with_context(|| format!("no Exchange {kind} {name:?} in {}", user.key))
    }

    /// The user's record of `kind` named `name` on `side`.
    async fn record_on(
        &self,
        side: Side,
        user: &LabUser,
        kind: ItemKind,
        name: &str,
    ) -> Result<Item> {
        match side {
            Side::Crm => self.crm_record(user, kind, name).await,
            Side::Exchange => self.exchange_item(user, kind, name).await,
        }
    }

    /// One write on `side`, through that side's connector.
    async fn write_on(
        &self,
        side: Side,
        user: &LabUser,
        kind: ItemKind,
        write: Write<'_>,
    ) -> Result<()> {
        let results = match side {
            Side::Crm => self.syncer.crm.write(kind, &user.crm_id, &[write]).await,
            Side::Exchange => self.syncer.exchange.write(&user.key, kind, &[write]).await,
        };
        done(results.map_err(|e| anyhow!("{e}"))?)
    }

    /// Changes a record on `side` as a person would there.
    pub async fn edit(
        &self,
        side: Side,
        user: &LabUser,
        kind: ItemKind,
        name: &str,
        edit: impl FnOnce(&mut Fields),
    ) -> Result<()> {
        let item = self.record_on(side, user, kind, name).await?;
        let mut fields = item.fields.clone();
        edit(&mut fields);
        let changed = exsync_core::plan::changed_fields(&item.fields, &fields);
        let write = Write::Update {
            id: item.id.as_str(),
            fields: &fields,
            changed: &changed,
            expected_version: item.version.as_deref(),
        };
        self.write_on(side, user, kind, write).await
    }

    /// Changes each of the records named `names` on `side` with `edit`, reading the user's
    /// records once and writing them in one call: a benchmark edits hundreds, and one read
    /// per edit would cost more than the passes it measures.
    pub async fn edit_each(
        &self,
        side: Side,
        user: &LabUser,
        kind: ItemKind,
        names: &[String],
        edit: impl Fn(&mut Fields),
    ) -> Result<()> {
        let wanted: std::collections::BTreeSet<&str> = names.iter().map(String::as_str).collect();
        let items: Vec<Item> = match side {
            Side::Crm => {
                let ids = self.crm_ids(user, kind).await?;
                self.crm
                    .fetch_changes(kind.into(), &ids)
                    .await?
                    .into_iter()
                    .filter_map(|c| match c.change {
                        Change::Upsert(item) => Some(item),
                        _ => None,
                    })
                    .collect()
            }
            Side::Exchange => self
                .syncer
                .exchange
                .read_folder(&user.key, kind)
                .await
                .map_err(|e| anyhow!("{e}"))?
                .into_iter()
                .filter_map(|c| match c {
                    Change::Upsert(item) => Some(item),
                    _ => None,
                })
                .collect(),
        };
        let items: Vec<Item> = items
            .into_iter()
            .filter(|item| wanted.iter().any(|name| named(kind, &item.fields, name)))
            .collect();
        if items.len() != wanted.len() {
            bail!(
                "{} of {} records to edit found on {side} for {}",
                items.len(),
                wanted.len(),
                user.key
            );
        }
        let edited: Vec<(Fields, Vec<String>)> = items
            .iter()
            .map(|item| {
                let mut fields = item.fields.clone();
                edit(&mut fields);
                let changed = exsync_core::plan::changed_fields(&item.fields, &fields);
                (fields, changed)
            })
            .collect();
        let writes: Vec<Write<'_>> = items
            .iter()
            .zip(&edited)
            .map(|(item, (fields, changed))| Write::Update {
                id: item.id.as_str(),
                fields,
                changed,
                expected_version: item.version.as_deref(),
            })
            .collect();
        let results = match side {
            Side::Crm => self.syncer.crm.write(kind, &user.crm_id, &writes).await,
            Side::Exchange => self.syncer.exchange.write(&user.key, kind, &writes).await,
        }
        .map_err(|e| anyhow!("{e}"))?;
        for result in results {
            done(vec![result])?;
        }
        Ok(())
    }

    /// Deletes a record on `side`.
    pub async fn delete(
        &self,
        side: Side,
        user: &LabUser,
        kind: ItemKind,
        name: &str,
    ) -> Result<ItemId> {
        let item = self.record_on(side, user, kind, name).await?;
        self.write_on(
            side,
            user,
            kind,
            Write::Delete {
                id: item.id.as_str(),
            },
        )
        .await?;
        Ok(item.id)
    }

    /// Changes a CRM record as a CRM user would.
    pub async fn edit_crm(
        &self,
        user: &LabUser,
        kind: ItemKind,
        name: &str,
        edit: impl FnOnce(&mut Fields),
    ) -> Result<()> {
        self.edit(Side::Crm, user, kind, name, edit).await
    }

    /// Changes an Exchange item as the user would in Outlook.
    pub async fn edit_exchange(
        &self,
        user: &LabUser,
        kind: ItemKind,
        name: &str,
        edit: impl FnOnce(&mut Fields),
    ) -> Result<()> {
        self.edit(Side::Exchange, user, kind, name, edit).await
    }

    /// Deletes a CRM record.
    pub async fn delete_crm(&self, user: &LabUser, kind: ItemKind, name: &str) -> Result<ItemId> {
        self.delete(Side::Crm, user, kind, name).await
    }

    /// Deletes an Exchange item.
    pub async fn delete_exchange(
        &self,
        user: &LabUser,
        kind: ItemKind,
        name: &str,
    ) -> Result<ItemId> {
        self.delete(Side::Exchange, user, kind, name).await
    }
}
