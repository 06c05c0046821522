//! What a full CRM read says by leaving a record out. A user's full read (new, reset, or a
//! first pass that runs again after a crash) lists every record in their scope, so a synced
//! record it does not list was deleted, or left the scope, since the pair was stored: the delete
//! log is not read for it (it would only cover the last minutes anyway).

use exsync_core::plan::Change;
use exsync_core::{CrmId, ItemId};

use super::{on_store, KindPass, PassError};
use crate::sync::sides::{CrmSide, MailboxSide};
use crate::sync::stage::Stage;

impl<E: MailboxSide, C: CrmSide> KindPass<'_, E, C> {
    /// Stages a delete for each of the user's pairs whose CRM record the full read just
    /// staged did not list. One page of pairs per slice; nothing to page through for a user
    /// who had none.
    pub(super) async fn stage_unlisted(&self, stage: &mut Stage) -> Result<(), PassError> {
        let (user, kind) = (&self.user.key, self.kind);
        let mut after: Option<CrmId> = None;
        loop {
            let page = {
                let (key, from, limit) = (user.clone(), after.clone(), self.slice.max(1));
                on_store(self.store, move |s| {
                    s.pair_ids_page(&key, kind, from.as_ref(), limit)
                })
                .await?
            };
            let Some((last, _)) = page.last() else {
                return Ok(());
            };
            after = Some(last.clone());
            let ids: Vec<ItemId> = page.into_iter().map(|(crm, _)| ItemId::Crm(crm)).collect();
            let listed: std::collections::BTreeSet<ItemId> = stage
                .staged(&ids)?
                .into_iter()
                .map(|c| c.id().clone())
                .collect();
            let gone: Vec<Change> = ids
                .into_iter()
                .filter(|id| !listed.contains(id))
                .map(|id| Change::Deleted { id })
                .collect();
            if !gone.is_empty() {
                tracing::info!(user = %user, %kind, records = gone.len(), "Synced CRM records the full read did not list count as deleted.");
                self.stage(stage, gone).await?;
            }
        }
    }
}
