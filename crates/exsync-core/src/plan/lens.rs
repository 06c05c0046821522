//! What the CRM can hold of a record. A CRM keeps less than Exchange (Salesforce: one e-mail
//! address, no home address, no series exceptions…). Compared naively, the CRM's narrower copy
//! would read as an edit that removed the rest, and that "edit" would be carried to Exchange.
//! A lens says what the CRM keeps (`narrow`) and how to read the CRM's record back into the
//! full form (`widen`), taking what the CRM cannot hold from the last-synced content.

use crate::model::{Fields, ItemKind};

/// Invariant: `widen(kind, &narrow(kind, w), w) == w` for every record `w`, so the CRM's echo
/// of what we wrote is no change.
pub trait Lens: Send + Sync + std::fmt::Debug {
    /// What the CRM keeps of `fields`.
    fn narrow(&self, kind: ItemKind, fields: &Fields) -> Fields;

    /// The CRM's record `narrow` in full form: what the CRM cannot hold comes from `wide`.
    fn widen(&self, kind: ItemKind, narrow: &Fields, wide: &Fields) -> Fields;
}

/// A CRM that holds everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Identity;

impl Lens for Identity {
    fn narrow(&self, _kind: ItemKind, fields: &Fields) -> Fields {
        fields.clone()
    }

    fn widen(&self, _kind: ItemKind, narrow: &Fields, _wide: &Fields) -> Fields {
        narrow.clone()
    }
}
