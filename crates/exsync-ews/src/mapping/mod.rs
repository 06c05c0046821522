//! Domain records ↔ EWS item XML: what we write on create, the per-field updates, and reading
//! an item back into a record plus its id, ChangeKey, modification time and our tag.

pub(crate) mod contact;
pub(crate) mod event;
pub(crate) mod expand;
mod recurrence;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use exsync_core::plan::{Change, Item};
use exsync_core::{CrmId, ExchangeId, ItemId, ItemKind, Record};

use crate::xml::{Element, XmlWriter};

pub(crate) use contact::{contact_updates, read_contact_as_typed, write_contact};
pub(crate) use event::{
    event_updates_in, occurrence_date, occurrence_updates, read_event_as_typed, write_event_in,
};

// Shared with the Graph backend, so both address the same MAPI named properties.
pub(crate) use exsync_core::tags::{CRM_ID_PROPERTY, PROPERTY_SET_ID, TIME_ZONE_PROPERTY};

/// `<t:ExtendedFieldURI …/>` for one of our properties.
pub(crate) fn extended_field_uri(w: &mut XmlWriter, name: &str) {
    w.empty(
        "t:ExtendedFieldURI",
        &[
            ("PropertySetId", PROPERTY_SET_ID),
            ("PropertyName", name),
            ("PropertyType", "String"),
        ],
    );
}

pub(crate) fn extended_property(w: &mut XmlWriter, name: &str, value: &str) {
    w.open("t:ExtendedProperty", &[]);
    extended_field_uri(w, name);
    w.text("t:Value", value);
    w.close("t:ExtendedProperty");
}

/// The value of one of our extended properties on an item element.
pub(crate) fn read_extended(item: &Element, name: &str) -> Option<String> {
    item.children_named("ExtendedProperty").find_map(|p| {
        let uri = p.child("ExtendedFieldURI")?;
        let ours = uri
            .attr("PropertySetId")
            .is_some_and(|s| s.eq_ignore_ascii_case(PROPERTY_SET_ID))
            && uri.attr("PropertyName") == Some(name);
        if ours {
            p.child_text("Value").map(str::to_owned)
        } else {
            None
        }
    })
}

/// An item's id and the ChangeKey that versions it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRef {
    /// The item's EWS id, stable while it stays in its folder.
    pub id: ExchangeId,
    /// The item's version; an update against an older one is refused as stale.
    pub change_key: String,
}

impl ItemRef {
    /// Reads an `ItemId` element.
    pub fn read(item_id: &Element) -> Option<ItemRef> {
        let id = item_id.attr("Id").filter(|s| !s.is_empty())?;
        Some(ItemRef {
            id: ExchangeId::new(id),
            change_key: item_id.attr("ChangeKey").unwrap_or("").to_owned(),
        })
    }
}

/// EWS dateTime in UTC, seconds precision (neither side stores less).
pub(crate) fn format_instant(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Reads an EWS dateTime. A value without an offset is UTC, which is what Exchange means by it
/// when the request declared no time zone context.
pub(crate) fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

/// Reads an xs:date, which may carry an offset suffix (`2026-03-02-08:00`, `2026-03-02Z`).
pub(crate) fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok()
}

/// Turns a Contact or CalendarItem element into the planner's view of it: an upsert, or
/// `Invalid` with the reason when it does not map to a record.
pub(crate) fn item_change(kind: ItemKind, element: &Element) -> Option<Change> {
    noted_item_change(kind, element).map(|(change, _)| change)
}

/// [`item_change`] with what had to be cut from the item for the CRM to hold it (see
/// [`exsync_core::Contact::sanitize`]): it syncs without it, and the admin is told.
pub(crate) fn noted_item_change(
    kind: ItemKind,
    element: &Element,
) -> Option<(Change, Vec<String>)> {
    let item_ref = element.child("ItemId").and_then(ItemRef::read)?;
    let id = ItemId::Exchange(item_ref.id.clone());
    let read = match kind {
        ItemKind::Contact => read_contact_as_typed(element).map(Record::into_noted_fields),
        ItemKind::Event => read_event_as_typed(element).map(Record::into_noted_fields),
    };
    let (fields, notes) = match read {
        Ok((fields, notes)) => (Ok(fields), notes),
        Err(reason) => (Err(reason), Vec::new()),
    };
    let change = match fields {
        Ok(fields) => Change::Upsert(Item {
            id,
            fields,
            version: Some(item_ref.change_key),
            modified: element
                .child_text("LastModifiedTime")
                .and_then(parse_instant),
            origin: read_extended(element, CRM_ID_PROPERTY)
                .filter(|s| !s.trim().is_empty())
                .map(|s| ItemId::Crm(CrmId::new(s.trim()))),
        }),
        Err(reason) => Change::Invalid { id, reason },
    };
    Some((change, notes))
}

/// The element name of an item kind.
pub(crate) fn element_name(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::Contact => "Contact",
        ItemKind::Event => "CalendarItem",
    }
}

/// Where one property lives, for UpdateItem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldPath {
    Field(&'static str),
    Indexed(&'static str, &'static str),
    Extended(&'static str),
}

impl FieldPath {
    pub fn write(&self, w: &mut XmlWriter) {
        match self {
            FieldPath::Field(uri) => {
                w.empty("t:FieldURI", &[("FieldURI", uri)]);
            }
            FieldPath::Indexed(uri, index) => {
                w.empty(
                    "t:IndexedFieldURI",
                    &[("FieldURI", uri), ("FieldIndex", index)],
                );
            }
            FieldPath::Extended(name) => extended_field_uri(w, name),
        }
    }
}

/// One change inside an UpdateItem `ItemChange`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldUpdate {
    /// Set the property; `value` is the property's element(s) as they sit inside the item.
    Set {
        path: FieldPath,
        value: String,
    },
    Delete {
        path: FieldPath,
    },
}

impl FieldUpdate {
    pub fn write(&self, kind: ItemKind, w: &mut XmlWriter) {
        match self {
            FieldUpdate::Set { path, value } => {
                w.open("t:SetItemField", &[]);
                path.write(w);
                let element = format!("t:{}", element_name(kind));
                w.open(&element, &[]).raw(value).close(&element);
                w.close("t:SetItemField");
            }
            FieldUpdate::Delete { path } => {
                w.open("t:DeleteItemField", &[]);
                path.write(w);
                w.close("t:DeleteItemField");
            }
        }
    }
}

/// Helper for building a property's XML in isolation.
fn fragment(build: impl FnOnce(&mut XmlWriter)) -> String {
    let mut w = XmlWriter::new();
    build(&mut w);
    w.finish()
}

/// A one-element Set, or a Delete when the value is empty.
fn set_text(updates: &mut Vec<FieldUpdate>, uri: &'static str, element: &str, value: &str) {
    if value.is_empty() {
        updates.push(FieldUpdate::Delete {
            path: FieldPath::Field(uri),
        });
    } else {
        updates.push(FieldUpdate::Set {
            path: FieldPath::Field(uri),
            value: fragment(|w| {
                w.text(element, value);
            }),
        });
    }
}

fn body(w: &mut XmlWriter, text: &str) {
    w.text_with("t:Body", &[("BodyType", "Text")], text);
}

/// Body text of an item; HTML bodies (which we never ask for, but a server may send) lose their
/// tags.
fn read_body(item: &Element) -> String {
    let Some(body) = item.child("Body") else {
        return String::new();
    };
    if body.attr("BodyType") == Some("HTML") {
        let mut out = String::new();
        let mut in_tag = false;
        for c in body.text.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => out.push(c),
                _ => {}
            }
        }
        out
    } else {
        body.text.clone()
    }
}

#[cfg(test)]
mod tests;
