//! Item shapes and rendering of stored property bags back to schema-ordered XML.

use std::collections::BTreeSet;

use super::calendar::{self, Occurrence};
use crate::exchange::order;
use crate::exchange::store::{change_key, Id, Item, Mailbox};
use crate::exchange::xml::Element;

/// What the client asked to see: BaseShape plus AdditionalProperties.
#[derive(Debug, Default, Clone)]
pub(crate) struct Shape {
    pub id_only: bool,
    pub names: BTreeSet<String>,
    pub ext: BTreeSet<String>,
}

impl Shape {
    pub(crate) fn parse(el: Option<&Element>) -> Shape {
        let mut s = Shape::default();
        let Some(el) = el else {
            return s;
        };
        s.id_only = el.child_text("BaseShape") == Some("IdOnly");
        if let Some(add) = el.child("AdditionalProperties") {
            for p in &add.children {
                match p.name.as_str() {
                    "ExtendedFieldURI" => {
                        s.ext.insert(ext_key(p));
                    }
                    _ => {
                        if let Some(n) = p.attr("FieldURI").and_then(field_element) {
                            s.names.insert(n.to_string());
                        }
                    }
                }
            }
        }
        s
    }
}

/// Element name a FieldURI (or IndexedFieldURI) refers to.
pub(crate) fn field_element(uri: &str) -> Option<&str> {
    let mut parts = uri.split(':');
    let _prefix = parts.next()?;
    let name = parts.next()?;
    Some(match name {
        "EmailAddress" => "EmailAddresses",
        "PhoneNumber" => "PhoneNumbers",
        "ImAddress" => "ImAddresses",
        "PhysicalAddress" => "PhysicalAddresses",
        other => other,
    })
}

/// Canonical identity of an extended property path (ignores PropertyType and case of GUIDs).
pub(crate) fn ext_key(uri: &Element) -> String {
    let tag = uri.attr("PropertyTag").map(|t| {
        let t = t.trim();
        let n = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            Some(h) => u32::from_str_radix(h, 16).ok(),
            None => t.parse::<u32>().ok(),
        };
        n.map(|n| n.to_string()).unwrap_or_else(|| t.to_string())
    });
    format!(
        "{}|{}|{}|{}|{}",
        uri.attr("DistinguishedPropertySetId").unwrap_or(""),
        uri.attr("PropertySetId").unwrap_or("").to_ascii_lowercase(),
        tag.unwrap_or_default(),
        uri.attr("PropertyName").unwrap_or(""),
        uri.attr("PropertyId").unwrap_or("")
    )
}

/// Key of a stored ExtendedProperty element.
pub(crate) fn ext_prop_key(p: &Element) -> Option<String> {
    p.child("ExtendedFieldURI").map(ext_key)
}

/// Values of the property a path element names, for restrictions: one for a single-valued
/// property, every member of a multi-valued one (`Categories` holds `<t:String>` children,
/// an extended array holds `<t:Values>`), none when the item lacks it.
pub(crate) fn prop_values(props: &[Element], path: &Element) -> Vec<String> {
    prop_values_opt(props, path).unwrap_or_default()
}

fn prop_values_opt(props: &[Element], path: &Element) -> Option<Vec<String>> {
    match path.name.as_str() {
        "ExtendedFieldURI" => {
            let key = ext_key(path);
            let p = props.iter().find(|p| {
                p.name == "ExtendedProperty" && ext_prop_key(p).as_deref() == Some(&key)
            })?;
            if let Some(v) = p.child("Value") {
                return Some(vec![v.text.clone()]);
            }
            p.child("Values")
                .map(|vs| vs.children.iter().map(|v| v.text.clone()).collect())
        }
        "IndexedFieldURI" => {
            let parent = path.attr("FieldURI").and_then(field_element)?;
            let index = path.attr("FieldIndex")?;
            let p = props.iter().find(|p| p.name == parent)?;
            let entry = p.children.iter().find(|e| e.attr("Key") == Some(index))?;
            Some(vec![entry.text.clone()])
        }
        _ => {
            let name = path.attr("FieldURI").and_then(field_element)?;
            let p = props.iter().find(|p| p.name == name)?;
            // A multi-valued property is a list of `<t:String>` members, not text.
            if !p.children.is_empty() && p.children.iter().all(|c| c.name == "String") {
                return Some(p.children.iter().map(|c| c.text.clone()).collect());
            }
            Some(vec![p.text.clone()])
        }
    }
}

fn order_index(kind: &str, name: &str) -> Option<usize> {
    if let Some(i) = order::ITEM.iter().position(|n| *n == name) {
        return Some(i);
    }
    let extra = match kind {
        "Contact" => order::CONTACT_EXTRA,
        "CalendarItem" => order::CALENDAR_EXTRA,
        "Message" => order::MESSAGE_EXTRA,
        _ => &[],
    };
    extra
        .iter()
        .position(|n| *n == name)
        .map(|i| order::ITEM.len() + i)
}

/// Properties the server owns; values a client sent for them are not echoed.
const SERVER_OWNED: &[&str] = &[
    "ItemId",
    "ParentFolderId",
    "DateTimeCreated",
    "LastModifiedTime",
    "CalendarItemType",
    "ModifiedOccurrences",
    "DeletedOccurrences",
    "FirstOccurrence",
    "LastOccurrence",
    "OriginalStart",
    "RecurrenceId",
    "IsRecurring",
    "Size",
];

pub(crate) fn default_item_class(kind: &str) -> &'static str {
    match kind {
        "Contact" => "IPM.Contact",
        "CalendarItem" => "IPM.Appointment",
        "Task" => "IPM.Task",
        _ => "IPM.Note",
    }
}

pub(crate) fn id_element(id: &Id, seq: u64) -> Element {
    let mut e = Element::new("ItemId");
    e.set_attr("Id", &id.encode());
    e.set_attr("ChangeKey", &change_key(seq));
    e
}

/// The item's properties with an occurrence's overrides applied.
pub(crate) fn effective_props(item: &Item, occ: Option<&Occurrence>) -> Vec<Element> {
    let mut props: Vec<Element> = item.props.clone();
    if let Some(o) = occ {
        props.retain(|p| p.name != "Recurrence");
        for (name, value) in [("Start", &o.start), ("End", &o.end)] {
            props.retain(|p| p.name != name);
            props.push(Element::with_text(name, &calendar::fmt(value)));
        }
        if let Some(over) = item.modified_occurrences.get(&o.index) {
            for p in over {
                if p.name == "ExtendedProperty" {
                    let k = ext_prop_key(p);
                    props.retain(|q| q.name != "ExtendedProperty" || ext_prop_key(q) != k);
                } else {
                    props.retain(|q| q.name != p.name);
                }
                props.push(p.clone());
            }
        }
    }
    props
}

/// Renders an item (or one occurrence of a recurring master) as `<t:{Kind}>…</t:{Kind}>`.
pub(crate) fn render_item(
    mb: &Mailbox,
    item: &Item,
    shape: &Shape,
    occ: Option<&Occurrence>,
) -> String {
    let id = match occ {
        Some(o) => Id::Occurrence {
            mailbox: mb.key(),
            id: item.id,
            index: o.index,
        },
        None => Id::Item {
            mailbox: mb.key(),
            id: item.id,
        },
    };
    let mut out: Vec<Element> = vec![id_element(&id, item.seq)];
    let mut parent = Element::new("ParentFolderId");
    parent.set_attr(
        "Id",
        &Id::Folder {
            mailbox: mb.key(),
            id: item.folder,
        }
        .encode(),
    );
    parent.set_attr(
        "ChangeKey",
        &change_key(mb.folders.get(&item.folder).map(|f| f.seq).unwrap_or(0)),
    );
    out.push(parent);
    let props = effective_props(item, occ);
    let mut has_class = false;
    let mut has_display = false;
    for p in &props {
        if SERVER_OWNED.contains(&p.name.as_str()) {
            continue;
        }
        has_class |= p.name == "ItemClass";
        has_display |= p.name == "DisplayName";
        if p.name == "Recurrence" && item.kind == "CalendarItem" {
            out.push(calendar::recurrence_with_zone(item, p));
            continue;
        }
        out.push(normalise_bool(p));
    }
    if !has_class {
        out.push(Element::with_text(
            "ItemClass",
            default_item_class(&item.kind),
        ));
    }
    if item.kind == "Contact" && !has_display {
        let given = props
            .iter()
            .find(|p| p.name == "GivenName")
            .map(|p| p.text.trim());
        let sur = props
            .iter()
            .find(|p| p.name == "Surname")
            .map(|p| p.text.trim());
        let name = [given, sur]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if !name.is_empty() {
            out.push(Element::with_text("DisplayName", &name));
        }
    }
    out.push(Element::with_text("DateTimeCreated", &item.created));
    out.push(Element::with_text("LastModifiedTime", &item.modified));
    if item.kind == "CalendarItem" {
        out.extend(calendar::computed_props(mb, item, occ));
    }
    out.retain(|p| {
        if p.name == "ItemId" {
            return true;
        }
        if p.name == "ExtendedProperty" {
            return ext_prop_key(p).is_some_and(|k| shape.ext.contains(&k));
        }
        !shape.id_only || shape.names.contains(&p.name)
    });
    let mut keyed: Vec<(usize, Element)> = out
        .into_iter()
        .filter_map(|p| order_index(&item.kind, &p.name).map(|i| (i, p)))
        .collect();
    keyed.sort_by_key(|(i, _)| *i);
    let mut s = format!("<t:{}>", item.kind);
    for (_, p) in &keyed {
        p.write("t", &mut s);
    }
    s.push_str(&format!("</t:{}>", item.kind));
    s
}

/// Exchange answers booleans as `true`/`false` whatever lexical form the client used.
fn normalise_bool(p: &Element) -> Element {
    let boolean = p.name.starts_with("Is")
        || p.name.starts_with("Has")
        || matches!(
            p.name.as_str(),
            "ReminderIsSet" | "AllowNewTimeProposal" | "MeetingRequestWasSent"
        );
    let mut p = p.clone();
    if boolean && p.children.is_empty() {
        match p.text.trim() {
            "1" => p.text = "true".into(),
            "0" => p.text = "false".into(),
            _ => {}
        }
    }
    p
}
