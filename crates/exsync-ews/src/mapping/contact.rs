//! Contact ↔ EWS `t:Contact`.

use chrono::{Duration, NaiveTime};

use exsync_core::{Address, AddressKind, Contact, CrmId, PhoneKind, MAX_EMAILS};

use super::{
    body, extended_property, fragment, parse_instant, read_body, set_text, FieldPath, FieldUpdate,
    CRM_ID_PROPERTY,
};
use crate::xml::{Element, XmlWriter};

const EMAIL_KEYS: [&str; MAX_EMAILS] = ["EmailAddress1", "EmailAddress2", "EmailAddress3"];

const PHONE_KEYS: [(PhoneKind, &str); 6] = [
    (PhoneKind::Business, "BusinessPhone"),
    (PhoneKind::Mobile, "MobilePhone"),
    (PhoneKind::Home, "HomePhone"),
    (PhoneKind::Other, "OtherTelephone"),
    (PhoneKind::BusinessFax, "BusinessFax"),
    (PhoneKind::Assistant, "AssistantPhone"),
];

const ADDRESS_KEYS: [(AddressKind, &str); 3] = [
    (AddressKind::Business, "Business"),
    (AddressKind::Home, "Home"),
    (AddressKind::Other, "Other"),
];

/// Parts of a physical address in schema order, with their FieldURIs.
const ADDRESS_PARTS: [(&str, &str); 5] = [
    ("Street", "contacts:PhysicalAddress:Street"),
    ("City", "contacts:PhysicalAddress:City"),
    ("State", "contacts:PhysicalAddress:State"),
    (
        "CountryOrRegion",
        "contacts:PhysicalAddress:CountryOrRegion",
    ),
    ("PostalCode", "contacts:PhysicalAddress:PostalCode"),
];

fn address_part<'a>(a: &'a Address, part: &str) -> &'a str {
    match part {
        "Street" => &a.street,
        "City" => &a.city,
        "State" => &a.state,
        "CountryOrRegion" => &a.country,
        _ => &a.postal_code,
    }
}

fn address_part_mut<'a>(a: &'a mut Address, part: &str) -> &'a mut String {
    match part {
        "Street" => &mut a.street,
        "City" => &mut a.city,
        "State" => &mut a.state,
        "CountryOrRegion" => &mut a.country,
        _ => &mut a.postal_code,
    }
}

fn display_name(c: &Contact) -> String {
    let name = c.display_name();
    if name.is_empty() {
        c.company.clone()
    } else {
        name
    }
}

/// Birthdays go over the wire as midnight UTC of the day.
fn write_birthday(w: &mut XmlWriter, c: &Contact) {
    if let Some(day) = c.birthday {
        w.text(
            "t:Birthday",
            &super::format_instant(&day.and_time(NaiveTime::MIN).and_utc()),
        );
    }
}

/// The `t:Contact` element for CreateItem, tagged with the CRM id it comes from.
pub fn write_contact(w: &mut XmlWriter, c: &Contact, crm_id: Option<&CrmId>) {
    w.open("t:Contact", &[]);
    if !c.notes.is_empty() {
        body(w, &c.notes);
    }
    if let Some(crm_id) = crm_id {
        extended_property(w, CRM_ID_PROPERTY, crm_id.as_str());
    }
    let display = display_name(c);
    if !display.is_empty() {
        w.text("t:FileAs", &display);
        w.text("t:DisplayName", &display);
    }
    if !c.first_name.is_empty() {
        w.text("t:GivenName", &c.first_name);
    }
    if !c.middle_name.is_empty() {
        w.text("t:MiddleName", &c.middle_name);
    }
    if !c.company.is_empty() {
        w.text("t:CompanyName", &c.company);
    }
    if !c.emails.is_empty() {
        w.open("t:EmailAddresses", &[]);
        for (key, email) in EMAIL_KEYS.iter().zip(&c.emails) {
            w.text_with("t:Entry", &[("Key", key)], email);
        }
        w.close("t:EmailAddresses");
    }
    if !c.addresses.is_empty() {
        w.open("t:PhysicalAddresses", &[]);
        for (kind, key) in ADDRESS_KEYS {
            if let Some(address) = c.addresses.get(&kind) {
                w.open("t:Entry", &[("Key", key)]);
                for (part, _) in ADDRESS_PARTS {
                    let value = address_part(address, part);
                    if !value.is_empty() {
                        w.text(&format!("t:{part}"), value);
                    }
                }
                w.close("t:Entry");
            }
        }
        w.close("t:PhysicalAddresses");
    }
    if !c.phones.is_empty() {
        w.open("t:PhoneNumbers", &[]);
        for (kind, key) in PHONE_KEYS {
            if let Some(number) = c.phones.get(&kind) {
                w.text_with("t:Entry", &[("Key", key)], number);
            }
        }
        w.close("t:PhoneNumbers");
    }
    write_birthday(w, c);
    if !c.department.is_empty() {
        w.text("t:Department", &c.department);
    }
    if !c.title.is_empty() {
        w.text("t:JobTitle", &c.title);
    }
    if !c.last_name.is_empty() {
        w.text("t:Surname", &c.last_name);
    }
    w.close("t:Contact");
}

/// The SetItemField / DeleteItemField changes that write `changed` fields of `c`.
pub fn contact_updates(c: &Contact, changed: &[String]) -> Result<Vec<FieldUpdate>, String> {
    let mut updates = Vec::new();
    let mut names_changed = false;
    for field in changed {
        match field.as_str() {
            "first_name" => {
                names_changed = true;
                set_text(
                    &mut updates,
                    "contacts:GivenName",
                    "t:GivenName",
                    &c.first_name,
                )
            }
            "middle_name" => {
                names_changed = true;
                set_text(
                    &mut updates,
                    "contacts:MiddleName",
                    "t:MiddleName",
                    &c.middle_name,
                )
            }
            "last_name" => {
                names_changed = true;
                set_text(&mut updates, "contacts:Surname", "t:Surname", &c.last_name)
            }
            "company" => {
                names_changed = true;
                set_text(
                    &mut updates,
                    "contacts:CompanyName",
                    "t:CompanyName",
                    &c.company,
                )
            }
            "title" => set_text(&mut updates, "contacts:JobTitle", "t:JobTitle", &c.title),
            "department" => set_text(
                &mut updates,
                "contacts:Department",
                "t:Department",
                &c.department,
            ),
            "notes" => {
                if c.notes.is_empty() {
                    updates.push(FieldUpdate::Delete {
                        path: FieldPath::Field("item:Body"),
                    });
                } else {
                    updates.push(FieldUpdate::Set {
                        path: FieldPath::Field("item:Body"),
                        value: fragment(|w| body(w, &c.notes)),
                    });
                }
            }
            "birthday" => match c.birthday {
                Some(_) => updates.push(FieldUpdate::Set {
                    path: FieldPath::Field("contacts:Birthday"),
                    value: fragment(|w| write_birthday(w, c)),
                }),
                None => updates.push(FieldUpdate::Delete {
                    path: FieldPath::Field("contacts:Birthday"),
                }),
            },
            "emails" => {
                for (i, key) in EMAIL_KEYS.iter().enumerate() {
                    let path = FieldPath::Indexed("contacts:EmailAddress", key);
                    match c.emails.get(i) {
                        Some(email) => updates.push(FieldUpdate::Set {
                            path,
                            value: fragment(|w| {
                                w.open("t:EmailAddresses", &[])
                                    .text_with("t:Entry", &[("Key", key)], email)
                                    .close("t:EmailAddresses");
                            }),
                        }),
                        None => updates.push(FieldUpdate::Delete { path }),
                    }
                }
            }
            "phones" => {
                for (kind, key) in PHONE_KEYS {
                    let path = FieldPath::Indexed("contacts:PhoneNumber", key);
                    match c.phones.get(&kind) {
                        Some(number) => updates.push(FieldUpdate::Set {
                            path,
                            value: fragment(|w| {
                                w.open("t:PhoneNumbers", &[])
                                    .text_with("t:Entry", &[("Key", key)], number)
                                    .close("t:PhoneNumbers");
                            }),
                        }),
                        None => updates.push(FieldUpdate::Delete { path }),
                    }
                }
            }
            "addresses" => {
                let empty = Address::default();
                for (kind, key) in ADDRESS_KEYS {
                    let address = c.addresses.get(&kind).unwrap_or(&empty);
                    for (part, uri) in ADDRESS_PARTS {
                        let path = FieldPath::Indexed(uri, key);
                        let value = address_part(address, part);
                        if value.is_empty() {
                            updates.push(FieldUpdate::Delete { path });
                        } else {
                            updates.push(FieldUpdate::Set {
                                path,
                                value: fragment(|w| {
                                    w.open("t:PhysicalAddresses", &[])
                                        .open("t:Entry", &[("Key", key)])
                                        .text(&format!("t:{part}"), value)
                                        .close("t:Entry")
                                        .close("t:PhysicalAddresses");
                                }),
                            });
                        }
                    }
                }
            }
            other => return Err(format!("contact field {other:?} is not synced to Exchange")),
        }
    }
    if names_changed {
        let display = display_name(c);
        set_text(
            &mut updates,
            "contacts:DisplayName",
            "t:DisplayName",
            &display,
        );
        set_text(&mut updates, "contacts:FileAs", "t:FileAs", &display);
    }
    // The schema wants updates in no particular order, but Exchange applies them in sequence;
    // keeping the item-level Body first mirrors property order and keeps traces readable.
    Ok(updates)
}

fn text_of(item: &Element, name: &str) -> String {
    item.child_text(name).unwrap_or("").to_owned()
}

/// Reads a `t:Contact` element.
pub(crate) fn read_contact(item: &Element) -> Result<Contact, String> {
    let mut c = read_contact_as_typed(item)?;
    c.normalize();
    Ok(c)
}

/// A `t:Contact` element as the user typed it, before it is made to fit (see
/// [`Contact::sanitize`]), so the caller can say what had to go.
pub(crate) fn read_contact_as_typed(item: &Element) -> Result<Contact, String> {
    let mut c = Contact {
        first_name: text_of(item, "GivenName"),
        middle_name: text_of(item, "MiddleName"),
        last_name: text_of(item, "Surname"),
        company: text_of(item, "CompanyName"),
        title: text_of(item, "JobTitle"),
        department: text_of(item, "Department"),
        notes: read_body(item),
        ..Contact::default()
    };
    if let Some(emails) = item.child("EmailAddresses") {
        for key in EMAIL_KEYS {
            if let Some(entry) = emails.children.iter().find(|e| e.attr("Key") == Some(key)) {
                let text = entry.text.trim();
                let text = if text.len() > 5 && text[..5].eq_ignore_ascii_case("smtp:") {
                    &text[5..]
                } else {
                    text
                };
                if !text.is_empty() {
                    c.emails.push(text.to_owned());
                }
            }
        }
    }
    if let Some(phones) = item.child("PhoneNumbers") {
        for entry in &phones.children {
            let key = entry.attr("Key").unwrap_or("");
            if let Some((kind, _)) = PHONE_KEYS.iter().find(|(_, k)| *k == key) {
                if !entry.text.trim().is_empty() {
                    c.phones.insert(*kind, entry.text.clone());
                }
            }
        }
    }
    if let Some(addresses) = item.child("PhysicalAddresses") {
        for entry in &addresses.children {
            let key = entry.attr("Key").unwrap_or("");
            if let Some((kind, _)) = ADDRESS_KEYS.iter().find(|(_, k)| *k == key) {
                let mut address = Address::default();
                for (part, _) in ADDRESS_PARTS {
                    if let Some(value) = entry.child_text(part) {
                        *address_part_mut(&mut address, part) = value.to_owned();
                    }
                }
                if !address.is_empty() {
                    c.addresses.insert(*kind, address);
                }
            }
        }
    }
    if let Some(birthday) = item.child_text("Birthday").filter(|s| !s.trim().is_empty()) {
        let instant = parse_instant(birthday)
            .ok_or_else(|| format!("Birthday {birthday:?} is not a date"))?;
        // Clients store the day at local midnight, which lands up to 14 hours either side of
        // midnight UTC; the nearest midnight is the day they meant.
        c.birthday = Some((instant + Duration::hours(12)).date_naive());
    }
    Ok(c)
}
