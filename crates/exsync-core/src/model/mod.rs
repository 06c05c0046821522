//! The records exsync syncs, the identifiers on each side, and the normalised field view the
//! planner compares.

mod address;
mod contact;
mod event;
mod expand;
mod ids;
mod name;
mod recurrence;
mod text;

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use address::{check_address, is_address, AddressError, Charset};
pub use contact::{Address, AddressKind, Contact, PhoneKind, MAX_EMAILS};
pub use event::{
    Attendee, AttendeeKind, Event, EventTime, ShowAs, MAX_ATTENDEES, MAX_MEETING_RECIPIENTS,
};
pub use expand::occurrence_dates;
pub use ids::{CrmId, ExchangeId, ItemId, ItemKind, Side, UserKey};
pub use name::{cap_name, record_name, NAME_MAX};
pub use recurrence::{Day, Occurrence, Pattern, Recurrence, RecurrenceEnd, RruleError, WeekIndex};
pub use text::{clean_email, clean_line, clean_multiline, MAX_LINE, MAX_TEXT};

/// A record as a map of top-level field name to normalised value. Empty fields are absent, so
/// "missing on one side" and "blank on the other" compare equal. The planner merges at this
/// granularity: a field is the unit of change and of conflict.
pub type Fields = BTreeMap<String, serde_json::Value>;

/// Why a field map could not be turned back into a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} fields do not form a valid record: {reason}")]
pub struct FieldsError {
    /// The kind of record the fields were meant to form.
    pub kind: ItemKind,
    /// What deserialising found wrong (a missing or mistyped field), for the admin.
    pub reason: String,
}

/// A record type the planner can sync.
pub trait Record: Serialize + DeserializeOwned + Clone {
    /// The kind written in pairs, plans and field paths for this record type.
    const KIND: ItemKind;

    /// Puts the record in its canonical form, so that two copies of the same data compare and hash
    /// equal.
    fn normalize(&mut self);

    /// [`Record::normalize`], returning what had to be removed or cut for the record to fit
    /// (see [`Contact::sanitize`]), for the admin.
    fn sanitize(&mut self) -> Vec<String>;

    /// Reasons this record cannot be written to any side (e.g. an end before its start).
    fn problems(&self) -> Vec<String>;

    /// The normalised field view.
    fn to_fields(&self) -> Fields {
        self.clone().into_fields()
    }

    /// [`Record::to_fields`] of a record no longer needed, without copying it first.
    fn into_fields(mut self) -> Fields {
        self.normalize();
        fields_of(&self)
    }

    /// [`Record::into_fields`] of a record as a side read it, with what had to be cut for it
    /// to fit (see [`Record::sanitize`]), so the pass can tell the admin.
    fn into_noted_fields(mut self) -> (Fields, Vec<String>) {
        let notes = self.sanitize();
        (fields_of(&self), notes)
    }

    /// Turns a field map (from the status database or a merge) back into a record; fails on a
    /// missing required field or a value of the wrong shape.
    fn from_fields(fields: &Fields) -> Result<Self, FieldsError> {
        // Read off the map where it lies: every pair and every write turns fields back into a
        // record, and copying each key and value first was most of what that cost.
        let map = serde::de::value::MapDeserializer::<_, serde_json::Error>::new(
            fields.iter().map(|(k, v)| (k.as_str(), v)),
        );
        Self::deserialize(map).map_err(|e| FieldsError {
            kind: Self::KIND,
            reason: e.to_string(),
        })
    }
}

/// The field view of a record already in its canonical form.
fn fields_of(record: &impl Serialize) -> Fields {
    match serde_json::to_value(record) {
        Ok(serde_json::Value::Object(map)) => map.into_iter().collect(),
        // Records are structs with string keys; serialising one cannot fail or yield a
        // non-object, so this arm is unreachable in practice.
        _ => Fields::new(),
    }
}

impl Record for Contact {
    const KIND: ItemKind = ItemKind::Contact;

    fn normalize(&mut self) {
        Contact::normalize(self);
    }

    fn sanitize(&mut self) -> Vec<String> {
        Contact::sanitize(self)
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.last_name.is_empty() && self.first_name.is_empty() && self.company.is_empty() {
            problems.push("a contact needs a name or a company".into());
        }
        for email in &self.emails {
            if !plausible_email(email) {
                problems.push(format!("{email:?} is not an e-mail address"));
            }
        }
        problems
    }
}

impl Record for Event {
    const KIND: ItemKind = ItemKind::Event;

    fn normalize(&mut self) {
        Event::normalize(self);
    }

    fn sanitize(&mut self) -> Vec<String> {
        Event::sanitize(self)
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Event::problems(self);
        for attendee in self.attendees.iter().chain(self.organizer.as_ref()) {
            if !plausible_email(&attendee.email) {
                problems.push(format!(
                    "attendee {:?} is not an e-mail address",
                    attendee.email
                ));
            }
        }
        problems
    }
}

/// An address a contact or an invitee may have (see [`check_address`]).
fn plausible_email(s: &str) -> bool {
    is_address(s, Charset::International)
}

/// Hex SHA-256 of the canonical JSON of a field map: equal content, equal hash.
pub fn content_hash(fields: &Fields) -> String {
    // BTreeMap keys serialise in order and serde_json maps are sorted, so the text is canonical.
    content_text_hash(&serde_json::to_string(fields).unwrap_or_default())
}

/// [`content_hash`] of a field map already serialised by `serde_json::to_string`, for the
/// store, which keeps that text beside the hash.
pub fn content_text_hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Field names a record kind has, for validating field mappings.
pub fn field_names(kind: ItemKind) -> &'static [&'static str] {
    match kind {
        ItemKind::Contact => &[
            "first_name",
            "middle_name",
            "last_name",
            "emails",
            "phones",
            "company",
            "title",
            "department",
            "addresses",
            "notes",
            "birthday",
        ],
        ItemKind::Event => &[
            "subject",
            "location",
            "body",
            "start",
            "end",
            "time_zone",
            "private",
            "show_as",
            "reminder_minutes",
            "recurrence",
            "organizer",
            "attendees",
        ],
    }
}

/// Fields that must stay together whatever the mapping says: an event without its times is
/// not an event.
pub fn required_fields(kind: ItemKind) -> &'static [&'static str] {
    match kind {
        ItemKind::Contact => &[],
        ItemKind::Event => &["start", "end"],
    }
}

#[cfg(test)]
mod tests;
