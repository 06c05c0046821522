//! Domain records ↔ Microsoft Graph v1.0 JSON: what we send on create, the PATCH body that
//! writes only the changed fields, and reading an item back into a record plus its id,
//! change key, ETag, modification time and our tag. The Graph twin of exsync-ews's mapping,
//! with the same decisions (private events, IANA zone kept in our own property, all-day
//! events as dates, a series read with its exceptions and cancelled occurrences as one
//! record), so a record reads the same through either backend and a mailbox moved from
//! on-premises Exchange to Exchange Online keeps its links.

pub mod contact;
pub mod event;
mod recurrence;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value};

use exsync_core::plan::{Change, Item};
use exsync_core::tags::{CRM_ID_PROPERTY, PROPERTY_SET_ID};
use exsync_core::zones::windows_to_iana;
use exsync_core::{CrmId, ExchangeId, ItemId, ItemKind, Record};

pub use contact::{
    contact_expand, contact_updates, contact_updates_keeping, read_contact, read_contact_as_typed,
    write_contact, CONTACT_SELECT,
};
pub use event::{
    cancelled_occurrence_date, event_expand, event_updates, event_updates_in, find_occurrence,
    instances_window, occurrence_date, occurrence_patch, read_event, read_event_as_typed,
    read_series, write_event, write_event_in, EVENT_SELECT,
};

/// The `Prefer` value that asks for bodies as text, which is what we store and compare
/// (an HTML body is still read, its tags dropped).
pub const PREFER_TEXT_BODY: &str = "outlook.body-content-type=\"text\"";

/// The `Prefer` value that asks for times in UTC. Reading does not rely on it: any zone Graph
/// answers in is read.
pub const PREFER_UTC: &str = "outlook.timezone=\"UTC\"";

/// Most entries read from one collection of an item (attendees, e-mail addresses, extended
/// properties, exceptions): the reply is already capped in bytes, this bounds the work and
/// memory one hostile item can cost.
pub(crate) const MAX_ENTRIES: usize = 1000;

/// Graph's id of one of our named properties, the same MAPI property EWS addresses with
/// `PropertySetId` and `PropertyName` (so the tag survives a mailbox move).
pub fn property_id(name: &str) -> String {
    format!("String {{{PROPERTY_SET_ID}}} Name {name}")
}

/// The id of our CRM-id tag.
pub fn crm_id_property_id() -> String {
    property_id(CRM_ID_PROPERTY)
}

/// A string literal for an OData filter: quoted, with `'` doubled as OData escapes it.
pub fn odata_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// `singleValueExtendedProperties($filter=id eq '…' or id eq '…')`, the `$expand` value that
/// returns the given extended properties with an item (Graph cannot list all of them).
pub fn expand_properties(ids: &[String]) -> String {
    let filter: Vec<String> = ids
        .iter()
        .map(|id| format!("id eq {}", odata_string(id)))
        .collect();
    format!(
        "singleValueExtendedProperties($filter={})",
        filter.join(" or ")
    )
}

/// The `$filter` value that finds the items tagged with a CRM id: how a retried create finds
/// its first try and how a moved mailbox's items are linked again.
pub fn tag_filter(crm_id: &CrmId) -> String {
    format!(
        "singleValueExtendedProperties/Any(ep: ep/id eq {} and ep/value eq {})",
        odata_string(&crm_id_property_id()),
        odata_string(crm_id.as_str())
    )
}

/// One entry of `singleValueExtendedProperties`.
pub(crate) fn extended_property(id: String, value: &str) -> Value {
    let mut entry = Map::new();
    entry.insert("id".into(), Value::String(id));
    entry.insert("value".into(), Value::String(value.to_owned()));
    Value::Object(entry)
}

/// The value of an extended property in an item's expanded `singleValueExtendedProperties`.
/// Graph may answer an id in another case than we wrote it (the GUID, the `0x` tag), so ids
/// compare without case.
pub fn read_extended(item: &Value, id: &str) -> Option<String> {
    item.get("singleValueExtendedProperties")?
        .as_array()?
        .iter()
        .take(MAX_ENTRIES)
        .find(|p| {
            p.get("id")
                .and_then(Value::as_str)
                .is_some_and(|i| i.trim().eq_ignore_ascii_case(id))
        })
        .and_then(|p| p.get("value")?.as_str())
        .map(str::to_owned)
}

/// An item's id and the versions Graph gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphRef {
    /// The item's Graph id.
    pub id: ExchangeId,
    /// The item's change key (empty when not selected).
    pub change_key: String,
    /// The ETag to send in `If-Match`: `@odata.etag`, or built from the change key, which is
    /// what Exchange's ETag holds.
    pub etag: String,
}

impl GraphRef {
    /// Reads an item's id and versions; `None` without an id.
    pub fn read(item: &Value) -> Option<GraphRef> {
        let id = item
            .get("id")?
            .as_str()
            .filter(|s| !s.is_empty() && s.len() <= 4096)?;
        let change_key = item
            .get("changeKey")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let etag = match item.get("@odata.etag").and_then(Value::as_str) {
            Some(etag) if !etag.is_empty() => etag.to_owned(),
            _ if !change_key.is_empty() => format!("W/\"{change_key}\""),
            _ => String::new(),
        };
        Some(GraphRef {
            id: ExchangeId::new(id),
            change_key,
            etag,
        })
    }
}

/// Turns a contact or event JSON object into the planner's view of it: an upsert, or
/// `Invalid` with the reason when it does not map to a record; `None` without an id. The
/// version is the ETag, which conditional updates send back.
pub fn item_change(kind: ItemKind, item: &Value) -> Option<Change> {
    noted_item_change(kind, item).map(|(change, _)| change)
}

/// [`item_change`] with what had to be cut from the item for the CRM to hold it (see
/// [`exsync_core::Contact::sanitize`]): it syncs without it, and the admin is told.
pub fn noted_item_change(kind: ItemKind, item: &Value) -> Option<(Change, Vec<String>)> {
    let item_ref = GraphRef::read(item)?;
    let id = ItemId::Exchange(item_ref.id.clone());
    let read = match kind {
        ItemKind::Contact => read_contact_as_typed(item).map(Record::into_noted_fields),
        ItemKind::Event => read_event_as_typed(item).map(Record::into_noted_fields),
    };
    let (fields, notes) = match read {
        Ok((fields, notes)) => (Ok(fields), notes),
        Err(reason) => (Err(reason), Vec::new()),
    };
    let change = match fields {
        Ok(fields) => Change::Upsert(Item {
            id,
            fields,
            version: Some(item_ref.etag).filter(|v| !v.is_empty()),
            modified: item
                .get("lastModifiedDateTime")
                .and_then(Value::as_str)
                .and_then(parse_instant),
            origin: read_extended(item, &crm_id_property_id())
                .filter(|s| !s.trim().is_empty())
                .map(|s| ItemId::Crm(CrmId::new(s.trim()))),
        }),
        Err(reason) => Change::Invalid { id, reason },
    };
    Some((change, notes))
}

/// A string property: missing and `null` read as empty, any other non-string is an error.
pub(crate) fn text<'a>(item: &'a Value, name: &str) -> Result<&'a str, String> {
    match item.get(name) {
        None | Some(Value::Null) => Ok(""),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!("{name} is {}, not a string", kind_of(other))),
    }
}

/// An object property: missing and `null` read as `None`.
pub(crate) fn object<'a>(item: &'a Value, name: &str) -> Result<Option<&'a Value>, String> {
    match item.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v)),
        Some(other) => Err(format!("{name} is {}, not an object", kind_of(other))),
    }
}

/// A collection property, at most [`MAX_ENTRIES`] of it: missing and `null` read as empty.
pub(crate) fn array<'a>(item: &'a Value, name: &str) -> Result<&'a [Value], String> {
    match item.get(name) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(&a[..a.len().min(MAX_ENTRIES)]),
        Some(other) => Err(format!("{name} is {}, not a collection", kind_of(other))),
    }
}

/// A boolean property: missing and `null` read as `false`.
pub(crate) fn flag(item: &Value, name: &str) -> Result<bool, String> {
    match item.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(format!("{name} is {}, not a boolean", kind_of(other))),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a collection",
        Value::Object(_) => "an object",
    }
}

/// The text of an `itemBody`. We ask for text, but a server may answer HTML anyway; its tags
/// are dropped and the common entities decoded, so the text compares with the CRM's.
pub(crate) fn read_body(body: Option<&Value>) -> Result<String, String> {
    let Some(body) = body else {
        return Ok(String::new());
    };
    let content = text(body, "content")?;
    if !text(body, "contentType")?.eq_ignore_ascii_case("html") {
        return Ok(content.to_owned());
    }
    let mut out = String::with_capacity(content.len());
    let mut in_tag = false;
    for c in content.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    Ok(out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&"))
}

/// An `itemBody` holding plain text.
pub(crate) fn text_body(content: &str) -> Value {
    let mut body = Map::new();
    body.insert("contentType".into(), Value::from("text"));
    body.insert("content".into(), Value::from(content));
    Value::Object(body)
}

/// Edm.DateTimeOffset as we write it: UTC, whole seconds (neither side stores less).
pub(crate) fn format_instant(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Reads an Edm.DateTimeOffset (`2026-03-02T08:00:00Z`, any fraction, any offset); a value
/// without an offset is UTC, as Graph means it.
pub(crate) fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    parse_local(s).map(|t| t.and_utc())
}

/// Reads the `dateTime` of a `dateTimeTimeZone`: local time with up to seven fractional
/// digits (`2026-03-02T09:00:00.0000000`). An offset some servers append is ignored: the
/// `timeZone` beside it decides.
pub(crate) fn parse_local(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    let s = s.strip_suffix('Z').unwrap_or(s);
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M"))
        .ok()
}

/// Reads an Edm.Date (`2026-03-02`), ignoring anything after the date.
pub(crate) fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim().get(..10)?, "%Y-%m-%d").ok()
}

/// A zone Graph may name in a `dateTimeTimeZone` or `originalStartTimeZone`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Zone {
    Utc,
    Named(Tz),
}

impl Zone {
    /// A Windows zone id (as Graph writes by default), an IANA name (when a client created
    /// the event with one, or `Prefer: outlook.timezone` asked for one) or UTC in its
    /// spellings; `None` for a zone we cannot place (a custom zone from another organisation).
    pub(crate) fn named(name: &str) -> Option<Zone> {
        let name = name.trim();
        if name.is_empty() {
            return None;
        }
        if [
            "UTC",
            "Etc/UTC",
            "Etc/GMT",
            "GMT",
            "Z",
            "tzone://Microsoft/Utc",
        ]
        .iter()
        .any(|u| u.eq_ignore_ascii_case(name))
        {
            return Some(Zone::Utc);
        }
        windows_to_iana(name)
            .and_then(|iana| iana.parse().ok())
            .or_else(|| name.parse().ok())
            .map(Zone::Named)
    }

    /// The instant a local time in this zone stands for. In the hour skipped by a change to
    /// summer time the time is read an hour later (where Outlook puts it); in the hour lived
    /// twice, the first one.
    pub(crate) fn instant(self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        let Zone::Named(tz) = self else {
            return Some(local.and_utc());
        };
        let at = |t: NaiveDateTime| tz.from_local_datetime(&t).earliest();
        at(local)
            .or_else(|| at(local + chrono::Duration::hours(1)))
            .map(|t| t.with_timezone(&Utc))
    }

    /// The local time of an instant in this zone.
    pub(crate) fn local(self, t: DateTime<Utc>) -> NaiveDateTime {
        match self {
            Zone::Utc => t.naive_utc(),
            Zone::Named(tz) => tz.from_utc_datetime(&t.naive_utc()).naive_local(),
        }
    }
}

#[cfg(test)]
mod tests;
