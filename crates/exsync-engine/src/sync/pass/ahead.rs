//! Events read while they start beyond the event window's end, remembered until the window
//! reaches them.
//!
//! Both reads follow change cursors (the CRM's SystemModstamp, EWS SyncFolderItems), so an event
//! out of the window when it was read, and never edited since, is never reported again: without
//! this memory it would never be copied once time brings it into the window. The pass keeps each
//! such event's id and start, and fetches it by id in the first pass whose window reaches that
//! start. In steady state this asks nothing of either side; only an event coming due costs one
//! fetch per side and pass.
//!
//! The memory is stored per user as a cursor of its own (cursors go with the user's reset),
//! written by a partial commit as soon as a read changes it: an entry remembered early only
//! costs a fetch, and an entry that comes due leaves the memory in the same commit that records
//! it as unresolved, so a pass that crashes or fails before syncing it leaves it to the next
//! pass's retry; a slice commit that pairs it clears it.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use exsync_core::plan::{out_of_scope, Change};
use exsync_core::{CrmId, Event, ExchangeId, ItemId, ItemKind, Record, Side, UserKey};
use exsync_store::{CursorAdvance, CursorScope, PassCommit, UnresolvedReport};

use super::{on_store, KindPass, PassError};
use crate::sync::sides::{CrmSide, MailboxSide};

/// The cursor scope that holds one user's events ahead of the window.
pub(super) fn scope(user: &UserKey) -> CursorScope {
    CursorScope::folder(user, "event-ahead")
}

/// Why a record that came due is fetched again until a pass syncs it.
const DUE: &str = "entered the event window: read again until a pass syncs it";

/// The events ahead of the window, by side and id, with their start.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct Ahead {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    crm: BTreeMap<String, DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    exchange: BTreeMap<String, DateTime<Utc>>,
    /// As stored, so an unchanged memory is not written again.
    #[serde(skip)]
    stored: Option<Box<Ahead>>,
}

impl Ahead {
    fn side(&mut self, side: Side) -> &mut BTreeMap<String, DateTime<Utc>> {
        match side {
            Side::Crm => &mut self.crm,
            Side::Exchange => &mut self.exchange,
        }
    }

    /// Whether this record is remembered as ahead of the window.
    pub(super) fn holds(&self, id: &ItemId) -> bool {
        match id {
            ItemId::Crm(id) => self.crm.contains_key(id.as_str()),
            ItemId::Exchange(id) => self.exchange.contains_key(id.as_str()),
        }
    }

    /// Takes what the memory holds now as what is stored.
    fn mark_stored(&mut self) {
        self.stored = None;
        self.stored = Some(Box::new(self.clone()));
    }

    fn changed(&self) -> bool {
        match &self.stored {
            Some(stored) => stored.crm != self.crm || stored.exchange != self.exchange,
            None => !self.crm.is_empty() || !self.exchange.is_empty(),
        }
    }
}

impl<E: MailboxSide, C: CrmSide> KindPass<'_, E, C> {
    /// The user's events ahead of the window as the pass found them stored; empty for other
    /// kinds, which have no window.
    pub(super) fn ahead(&self) -> Ahead {
        if self.kind != ItemKind::Event {
            return Ahead::default();
        }
        let text = self.stored.ahead.as_deref();
        // A memory that cannot be read is started again: the events it held are lost to it,
        // as they were before it existed, and logged so the admin knows why.
        let mut ahead: Ahead = match text.map(serde_json::from_str) {
            None => Ahead::default(),
            Some(Ok(ahead)) => ahead,
            Some(Err(e)) => {
                tracing::warn!(
                    user = %self.user.key,
                    error = %e,
                    "The events ahead of the window could not be read; starting that memory again."
                );
                Ahead::default()
            }
        };
        ahead.mark_stored();
        ahead
    }

    /// Notes what a read says about a record: an event that only the window's end keeps out
    /// is remembered with its start; anything else read of it (in the window, deleted, out of
    /// scope for another reason) forgets it, since the change cursors follow it from there.
    pub(super) fn observe(&self, ahead: &mut Ahead, change: &Change) {
        if self.kind != ItemKind::Event {
            return;
        }
        let id = change.id();
        let start = match change {
            Change::Upsert(item) => self.start_ahead(&item.fields),
            _ => None,
        };
        let side = ahead.side(id.side());
        match start {
            Some(start) => side.insert(id.as_str().to_owned(), start),
            None => side.remove(id.as_str()),
        };
    }

    /// The start of an event that is out of scope now only because it starts after the window's
    /// end: in scope once the window reaches its start.
    fn start_ahead(&self, fields: &exsync_core::Fields) -> Option<DateTime<Utc>> {
        let rules = self.user.config.rules(self.kind);
        let window = rules.window?;
        let start = Event::from_fields(fields).ok()?.start.approx_instant();
        let ahead_by = Duration::days(i64::from(window.future_days));
        if start <= self.now + ahead_by
            || out_of_scope(self.kind, rules, fields, self.now).is_none()
        {
            return None;
        }
        // When the window's end reaches its start, as the window's rules say then.
        let due = start - ahead_by;
        out_of_scope(self.kind, rules, fields, due)
            .is_none()
            .then_some(start)
    }

    /// Takes out of the memory this side's events the window now reaches (all of them when the
    /// configuration no longer has a window).
    pub(super) fn take_due(&self, ahead: &mut Ahead, side: Side) -> Vec<ItemId> {
        let end = match self.user.config.rules(self.kind).window {
            Some(window) => self.now + Duration::days(i64::from(window.future_days)),
            None => DateTime::<Utc>::MAX_UTC,
        };
        let entries = ahead.side(side);
        let due: Vec<String> = entries
            .iter()
            .filter(|(_, start)| **start <= end)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &due {
            entries.remove(id);
        }
        due.into_iter()
            .map(|id| match side {
                Side::Crm => ItemId::Crm(CrmId::new(id)),
                Side::Exchange => ItemId::Exchange(ExchangeId::new(id)),
            })
            .collect()
    }

    /// Stores the memory when the read changed it, and records the events that came due and
    /// are to be synced (`due`, with their names) as unresolved in the same commit, so they
    /// are read again until a pass syncs them. Nothing is written in a dry run.
    pub(super) async fn keep_ahead(
        &self,
        ahead: &mut Ahead,
        due: Vec<(ItemId, Option<String>)>,
    ) -> Result<(), PassError> {
        if self.dry_run || (due.is_empty() && !ahead.changed()) {
            return Ok(());
        }
        let now = Utc::now();
        let mut commit = PassCommit::new(self.user.key.clone(), now, now);
        commit.partial = true;
        let empty = ahead.crm.is_empty() && ahead.exchange.is_empty();
        commit.cursors.push(CursorAdvance {
            scope: scope(&self.user.key),
            // Ids and instants always serialize; an empty memory is no row at all.
            value: (!empty)
                .then(|| serde_json::to_string(ahead).ok())
                .flatten(),
        });
        commit
            .unresolved
            .extend(due.into_iter().map(|(id, name)| UnresolvedReport {
                kind: self.kind,
                id,
                reason: DUE.into(),
                name,
            }));
        on_store(self.store, move |s| s.commit_pass(&commit).map(|_| ())).await?;
        ahead.mark_stored();
        Ok(())
    }
}
