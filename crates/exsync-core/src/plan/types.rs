//! What the planner reads and what it decides.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{CrmId, ExchangeId, Fields, ItemId, ItemKind, Side};

/// The last-synced state of one linked pair: one row of the status database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncedPair {
    /// Whether the pair is a contact or an event.
    pub kind: ItemKind,
    /// The record's id in the CRM.
    pub crm_id: CrmId,
    /// The record's id in the Exchange mailbox.
    pub exchange_id: ExchangeId,
    /// Normalised content both sides held when the pair was last synced: the merge base.
    pub content: Fields,
    /// CRM version last seen (SystemModstamp), for echo detection and conditional writes.
    pub crm_version: Option<String>,
    /// Exchange ChangeKey last seen; updates are conditional on it.
    pub exchange_version: Option<String>,
}

impl SyncedPair {
    /// The pair's record id on `side`, for looking it up among that side's changes.
    pub fn id_on(&self, side: Side) -> ItemId {
        match side {
            Side::Crm => ItemId::Crm(self.crm_id.clone()),
            Side::Exchange => ItemId::Exchange(self.exchange_id.clone()),
        }
    }

    /// The version last seen on `side`, which a conditional write to that side expects to find.
    pub fn version_on(&self, side: Side) -> Option<&str> {
        match side {
            Side::Crm => self.crm_version.as_deref(),
            Side::Exchange => self.exchange_version.as_deref(),
        }
    }
}

/// A record as one side holds it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// The record's id on the side that reported it.
    pub id: ItemId,
    /// Normalised fields (see [`crate::model::Record::to_fields`]).
    pub fields: Fields,
    /// Opaque version: SystemModstamp on the CRM, ChangeKey on Exchange.
    pub version: Option<String>,
    /// When the side last modified it, for `newest_wins`.
    pub modified: Option<DateTime<Utc>>,
    /// The record on the other side this one was created from, when the side tagged it (our
    /// `CrmId` extended property on Exchange items). A retried create after a crash is linked
    /// through it instead of being created twice.
    pub origin: Option<ItemId>,
}

/// One thing a side reports since the last pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// Created or modified (sides often cannot tell which).
    Upsert(Item),
    /// Deleted on that side.
    Deleted {
        /// The deleted record.
        id: ItemId,
    },
    /// Still exists but no longer in scope (owner changed, moved out of the sync folder…):
    /// the pair is dropped and nothing is deleted.
    OutOfScope {
        /// The record that left the scope.
        id: ItemId,
    },
    /// Could not be read into a record; skipped with the reason.
    Invalid {
        /// The record that could not be read.
        id: ItemId,
        /// Why it could not be read, shown to the admin.
        reason: String,
    },
}

impl Change {
    /// The id of the record the change is about, whatever the change.
    pub fn id(&self) -> &ItemId {
        match self {
            Change::Upsert(item) => &item.id,
            Change::Deleted { id } | Change::OutOfScope { id } | Change::Invalid { id, .. } => id,
        }
    }
}

/// How a pair came to be linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkReason {
    /// The item carries our tag naming its counterpart.
    Tag,
    /// First-sync match on e-mail address.
    Email,
    /// First-sync match on first name + last name + company.
    NameAndCompany,
    /// First-sync match on subject + start + end.
    SubjectAndTime,
    /// Both sides already hold the same content (e.g. both edited to the same value).
    SameContent,
    /// The pair's content after the updates before this op in the plan.
    Merged,
}

impl LinkReason {
    /// Whether the link pairs two records for the first time (rather than updating a pair).
    pub fn is_match(self) -> bool {
        matches!(
            self,
            LinkReason::Tag
                | LinkReason::Email
                | LinkReason::NameAndCompany
                | LinkReason::SubjectAndTime
        )
    }
}

/// A field both sides changed differently since the last sync, and how it was settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// Name of the field in the normalised [`Fields`].
    pub field: String,
    /// The value the CRM holds now, `None` when the field is empty there.
    pub crm_value: Option<serde_json::Value>,
    /// The value Exchange holds now, `None` when the field is empty there.
    pub exchange_value: Option<serde_json::Value>,
    /// The side whose value the conflict policy kept; its value is written to the other side.
    pub winner: Side,
    /// Not a conflict but a first link's merge: two records never synced held the field
    /// differently and the one modified more recently was taken (see
    /// [`crate::config::FirstLink`]). Kept so the admin can see what a first sync chose.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub first_link: bool,
}

/// One step of a plan.
///
/// Ops on one pair come together: its writes (`Update`s) first, then the `Link` that records
/// the content both sides hold afterwards. The executor commits a `Link` only if every write
/// for that pair earlier in the plan succeeded, so a failed write never leaves the status
/// database claiming content a side does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Create `fields` on `on`, copied from `source` on the other side. Once created, the new
    /// pair (source, new record) has `fields` as its content. When a deleted record is
    /// recreated, `replaces` names the old pair, which is dropped only if the create succeeds: a
    /// failed recreate leaves the pair as it was, to be planned again.
    Create {
        /// Whether the record is a contact or an event.
        kind: ItemKind,
        /// The side the record is created on.
        on: Side,
        /// The record on the other side it is copied from.
        source: ItemId,
        /// The source record's version, stored with the new pair so later writes to it are
        /// conditional on what was read.
        source_version: Option<String>,
        /// The normalised content to write.
        fields: Fields,
        /// The `(CRM, Exchange)` ids of the pair this create replaces, if any.
        replaces: Option<(CrmId, ExchangeId)>,
    },
    /// Write the fields named in `changed` (taking their values from `fields`, the pair's merged
    /// content) to the pair's record on `on`, conditional on `expected_version`. Fields not
    /// synced or not changed are left as they are on that side.
    Update {
        /// Whether the pair is a contact or an event.
        kind: ItemKind,
        /// The side written to.
        on: Side,
        /// The pair's CRM id.
        crm_id: CrmId,
        /// The pair's Exchange id.
        exchange_id: ExchangeId,
        /// The pair's whole merged content; only the `changed` fields are written.
        fields: Fields,
        /// Names of the fields to write, as keys of `fields`.
        changed: Vec<String>,
        /// The version the record on `on` must still have for the write to go ahead (`None` when
        /// none was seen).
        expected_version: Option<String>,
    },
    /// Delete the pair's record on `on` (the other side deleted it or it left the user's
    /// scope), then forget the pair.
    Delete {
        /// Whether the pair is a contact or an event.
        kind: ItemKind,
        /// The side the record is deleted from.
        on: Side,
        /// The pair's CRM id.
        crm_id: CrmId,
        /// The pair's Exchange id.
        exchange_id: ExchangeId,
    },
    /// Record the pair with `fields` as the content both sides hold (after this pair's updates).
    Link {
        /// Whether the pair is a contact or an event.
        kind: ItemKind,
        /// The pair's CRM id.
        crm_id: CrmId,
        /// The pair's Exchange id.
        exchange_id: ExchangeId,
        /// The content both sides hold once this pair's updates are written: the next merge base.
        fields: Fields,
        /// The CRM version as read; `settle` stores the one an update in the same plan returned
        /// instead.
        crm_version: Option<String>,
        /// The Exchange version as read; `settle` stores the one an update in the same plan
        /// returned instead.
        exchange_version: Option<String>,
        /// Why the pair is linked, for the report and the first-sync counts.
        reason: LinkReason,
    },
    /// Drop a pair from the status database; neither side is touched.
    Forget {
        /// Whether the pair is a contact or an event.
        kind: ItemKind,
        /// The pair's CRM id.
        crm_id: CrmId,
        /// The pair's Exchange id.
        exchange_id: ExchangeId,
        /// Why the pair is dropped, for the log.
        reason: String,
    },
    /// A field both sides changed differently, settled by the conflict policy; recorded for the
    /// admin.
    Conflict {
        /// Whether the pair is a contact or an event.
        kind: ItemKind,
        /// The pair's CRM id.
        crm_id: CrmId,
        /// The pair's Exchange id.
        exchange_id: ExchangeId,
        /// The field, both values and the side that won.
        conflict: Conflict,
    },
    /// A record left out of this pass, with the reason; the rest of the pass goes on.
    Skip {
        /// Whether the record is a contact or an event.
        kind: ItemKind,
        /// The record left out, on whichever side reported it.
        id: ItemId,
        /// Why it was left out, shown to the admin.
        reason: String,
    },
    /// Stop syncing this user until an admin looks (mass-delete safety valve). A plan with this
    /// op has no other ops.
    PauseUser {
        /// The kind whose plan was replaced by the pause.
        kind: ItemKind,
        /// What tripped the valve (how many deletes against how many pairs), shown to the admin.
        reason: String,
    },
}

impl Op {
    /// Whether executing this op writes to Exchange or the CRM.
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Op::Create { .. } | Op::Update { .. } | Op::Delete { .. }
        )
    }
}
