//! Selecting: under `events.select = "category"`, an Outlook event that loses the category
//! stops syncing (its pair is forgotten, nothing deleted) and one that carries it again must be
//! linked to its CRM counterpart, not copied a second time. That counterpart is unchanged, so
//! no read reports it: this step looks it up before anything is planned. The other way round,
//! a CRM event edited while its Outlook counterpart lacks the category is held back, not
//! copied into Outlook a second time.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use exsync_core::config::EventSelect;
use exsync_core::plan::{record_keys, Change};
use exsync_core::{CrmId, ExchangeId, ItemId, ItemKind, Side};

use super::{KindPass, PassError};
use crate::sync::sides::{CopyEvidence, CrmSide, MailboxSide, SideError};
use crate::sync::stage::{Stage, StagedRecord};

impl<E: MailboxSide, C: CrmSide> KindPass<'_, E, C> {
    /// Stages the CRM counterparts of the unpaired Outlook events this pass read, when events
    /// are selected by category: the CRM copy exsync made of an Outlook event (found by the
    /// Outlook id it carries as its tag) and the CRM original of an Outlook copy exsync made
    /// (named by the copy's tag). Matching then links them, as on a first sync. Costs, per page
    /// of unpaired events, one CRM query and one mailbox search, and nothing under the default
    /// selection.
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
            let mut crm_records = Vec::new();
            for record in &records {
                let Change::Upsert(item) = &record.change else {
                    continue;
                };
                if item.id.side() != Side::Exchange {
                    crm_records.push(item.clone());
                    continue;
                }
                match &item.origin {
                    Some(ItemId::Crm(crm_id)) => origins.push(crm_id.clone()),
                    _ => untagged.push(item.id.clone()),
                }
            }
            if let Err(e) = self.hold_unselected(stage, &crm_records).await? {
                return Ok(Err(e));
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

    /// Holds back CRM events whose Outlook counterpart exists but lost the category: it stopped
    /// syncing on purpose, so a CRM edit must not make a second Outlook copy beside it. The
    /// counterpart is the Outlook event a CRM copy was made from (its tag) or the Outlook copy
    /// made of a CRM original (found by the CRM id it carries).
    async fn hold_unselected(
        &self,
        stage: &mut Stage,
        crm_records: &[exsync_core::plan::Item],
    ) -> Result<Result<(), SideError>, PassError> {
        if crm_records.is_empty() {
            return Ok(Ok(()));
        }
        let rules = self.user.config.rules(self.kind);
        let user = &self.user.key;
        let mut counterparts: Vec<(ItemId, Change)> = Vec::new();
        let (tagged, originals): (Vec<_>, Vec<_>) = crm_records
            .iter()
            .partition(|item| matches!(item.origin, Some(ItemId::Exchange(_))));
        let sources: Vec<ExchangeId> = tagged
            .iter()
            .filter_map(|item| match &item.origin {
                Some(ItemId::Exchange(id)) => Some(id.clone()),
                _ => None,
            })
            .collect();
        if !sources.is_empty() {
            match self.exchange.fetch(user, self.kind, &sources).await {
                Ok(read) => {
                    for (item, owned) in tagged.iter().zip(read) {
                        counterparts.push((item.id.clone(), owned.change));
                    }
                }
                Err(e) => return Ok(Err(e)),
            }
        }
        let ids: Vec<ItemId> = originals.iter().map(|item| item.id.clone()).collect();
        if !ids.is_empty() {
            match self
                .exchange
                .find_copies(user, self.kind, &ids, DateTime::<Utc>::MIN_UTC)
                .await
            {
                Ok(answers) => {
                    for (id, answer) in ids.into_iter().zip(answers) {
                        if let CopyEvidence::Present(change) = answer {
                            counterparts.push((id, change));
                        }
                    }
                }
                Err(e) => return Ok(Err(e)),
            }
        }
        let held: Vec<ItemId> = counterparts
            .into_iter()
            .filter(|(_, change)| match change {
                Change::Upsert(item) => rules.unselected(self.kind, &item.fields).is_some(),
                _ => false,
            })
            .map(|(crm, _)| crm)
            .collect();
        if !held.is_empty() {
            tracing::debug!(
                user = %user,
                held = held.len(),
                "CRM events whose Outlook event lost its category are not copied again"
            );
            stage.mark_done(&held)?;
        }
        Ok(Ok(()))
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
