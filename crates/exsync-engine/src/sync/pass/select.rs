//! Selecting: under `events.select = "category"`, an Outlook event that loses the category
//! stops syncing (its pair is forgotten, nothing deleted) and one that carries it again must be
//! linked to its CRM counterpart, not copied a second time. That counterpart is unchanged, so
//! no read reports it: this step looks it up before anything is planned.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use exsync_core::config::EventSelect;
use exsync_core::plan::{record_keys, Change};
use exsync_core::{CrmId, ItemId, ItemKind, Side};

use super::{KindPass, PassError};
use crate::sync::sides::{CopyEvidence, CrmSide, MailboxSide, SideError};
use crate::sync::stage::{Stage, StagedRecord};

impl<E: MailboxSide, C: CrmSide> KindPass<'_, E, C> {
    /// Stages the CRM counterparts of the unpaired Outlook events this pass read, when events
    /// are selected by category: the CRM copy exsync made of an Outlook event (found by the
    /// Outlook id it carries as its tag) and the CRM original of an Outlook copy exsync made
    /// (named by the copy's tag). Matching then links them, as on a first sync. Costs one CRM
    /// query per page of such events, and nothing under the default selection.
    pub(super) async fn stage_reselected(
        &self,
        stage: &mut Stage,
    ) -> Result<Result<(), SideError>, PassError> {
        let rules = self.user.config.rules(self.kind);
        if self.kind != ItemKind::Event || rules.select != EventSelect::Category {
            return Ok(Ok(()));
        }
        let mut after: Option<ItemId> = None;
        loop {
            let records = stage.new_records(after.as_ref(), self.slice)?;
            let Some(last) = records.last() else {
                return Ok(Ok(()));
            };
            after = Some(last.change.id().clone());
            let mut untagged = Vec::new();
            let mut origins = Vec::new();
            for record in &records {
                let Change::Upsert(item) = &record.change else {
                    continue;
                };
                if item.id.side() != Side::Exchange {
                    continue;
                }
                match &item.origin {
                    Some(ItemId::Crm(crm_id)) => origins.push(crm_id.clone()),
                    _ => untagged.push(item.id.clone()),
                }
            }
            let mut found: Vec<Change> = Vec::new();
            if !untagged.is_empty() {
                let answers = match self
                    .crm
                    .find_copies(self.kind, &untagged, DateTime::<Utc>::MIN_UTC)
                    .await
                {
                    Ok(answers) => answers,
                    Err(e) => return Ok(Err(e)),
                };
                found.extend(answers.into_iter().filter_map(|a| match a {
                    CopyEvidence::Present(change) => Some(change),
                    _ => None,
                }));
            }
            if !origins.is_empty() {
                match self.crm.fetch(self.kind, &origins).await {
                    Ok(owned) => found.extend(owned.into_iter().map(|o| o.change)),
                    Err(e) => return Ok(Err(e)),
                }
            }
            self.stage_unpaired_crm(stage, found).await?;
        }
    }

    /// Stages CRM records found for matching, unless this pass staged them already or a pair
    /// holds them (then they are not a counterpart to match).
    async fn stage_unpaired_crm(
        &self,
        stage: &mut Stage,
        found: Vec<Change>,
    ) -> Result<(), PassError> {
        let rules = self.user.config.rules(self.kind);
        let mut records: BTreeMap<CrmId, StagedRecord> = BTreeMap::new();
        for change in found {
            let Change::Upsert(item) = &change else {
                continue;
            };
            let ItemId::Crm(crm_id) = &item.id else {
                continue;
            };
            if !stage.staged(std::slice::from_ref(&item.id))?.is_empty() {
                continue;
            }
            let (key, kind, id) = (self.user.key.clone(), self.kind, item.id.clone());
            let paired = super::on_store(self.store, move |s| s.find_pair(&key, kind, &id))
                .await?
                .is_some();
            if paired {
                continue;
            }
            let keys = record_keys(self.kind, rules, item);
            records.insert(
                crm_id.clone(),
                StagedRecord {
                    change,
                    pair: None,
                    keys,
                },
            );
        }
        let records: Vec<StagedRecord> = records.into_values().collect();
        stage.put(&records)?;
        Ok(())
    }
}
