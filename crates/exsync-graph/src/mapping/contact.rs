//! Contact ↔ Graph `contact`.
//!
//! Graph names three phone kinds of ours (`businessPhones`, `homePhones`, `mobilePhone`); the
//! fax, other and assistant numbers have no Graph property, so they are written as the MAPI
//! properties EWS's `BusinessFax`, `OtherTelephone` and `AssistantPhone` are, which keeps
//! them through a mailbox move as well.

use chrono::{Duration, NaiveTime};
use serde_json::{Map, Value};

use exsync_core::tags::CRM_ID_PROPERTY;
use exsync_core::{Address, AddressKind, Contact, CrmId, PhoneKind, MAX_EMAILS};

use super::{
    array, crm_id_property_id, expand_properties, extended_property, format_instant, object,
    parse_instant, property_id, read_extended, text,
};

/// The phone kinds Graph has no property for, with their MAPI property ids
/// (PidTagBusinessFaxNumber, PidTagOtherTelephoneNumber, PidTagAssistantTelephoneNumber).
const TAGGED_PHONES: [(PhoneKind, &str); 3] = [
    (PhoneKind::BusinessFax, "String 0x3A24"),
    (PhoneKind::Other, "String 0x3A1F"),
    (PhoneKind::Assistant, "String 0x3A2E"),
];

const ADDRESS_KEYS: [(AddressKind, &str); 3] = [
    (AddressKind::Business, "businessAddress"),
    (AddressKind::Home, "homeAddress"),
    (AddressKind::Other, "otherAddress"),
];

/// The properties a contact read uses, for `$select` (the first delta call takes it).
pub const CONTACT_SELECT: &str = "id,changeKey,lastModifiedDateTime,givenName,middleName,\
surname,companyName,jobTitle,department,emailAddresses,businessPhones,homePhones,mobilePhone,\
businessAddress,homeAddress,otherAddress,personalNotes,birthday";

/// The `$expand` a contact read needs: our tag and the phone numbers kept in MAPI properties.
pub fn contact_expand() -> String {
    let mut ids = vec![crm_id_property_id()];
    ids.extend(TAGGED_PHONES.iter().map(|(_, id)| (*id).to_owned()));
    expand_properties(&ids)
}

/// A `physicalAddress` with every part present, empty ones as `""`: a PATCH then replaces the
/// whole address whether the server merges complex values or replaces them.
fn address_json(a: &Address, all_parts: bool) -> Value {
    let mut out = Map::new();
    for (name, value) in [
        ("street", &a.street),
        ("city", &a.city),
        ("state", &a.state),
        ("countryOrRegion", &a.country),
        ("postalCode", &a.postal_code),
    ] {
        if all_parts || !value.is_empty() {
            out.insert(name.into(), Value::from(value.as_str()));
        }
    }
    Value::Object(out)
}

fn read_address(v: &Value) -> Result<Address, String> {
    Ok(Address {
        street: text(v, "street")?.to_owned(),
        city: text(v, "city")?.to_owned(),
        state: text(v, "state")?.to_owned(),
        country: text(v, "countryOrRegion")?.to_owned(),
        postal_code: text(v, "postalCode")?.to_owned(),
    })
}

/// Exchange's display name and file-as for a contact, as the EWS mapping writes them.
fn display_name(c: &Contact) -> String {
    let name = c.display_name();
    if name.is_empty() {
        c.company.clone()
    } else {
        name
    }
}

fn emails_json(c: &Contact) -> Value {
    // No `name`: Exchange fills the display name of each address itself, as it does for
    // EWS's EmailAddress entries, so both backends leave the same thing behind.
    Value::Array(
        c.emails
            .iter()
            .map(|e| {
                let mut entry = Map::new();
                entry.insert("address".into(), Value::from(e.as_str()));
                Value::Object(entry)
            })
            .collect(),
    )
}

fn one_phone(c: &Contact, kind: PhoneKind) -> Value {
    Value::Array(
        c.phones
            .get(&kind)
            .map(|p| Value::from(p.as_str()))
            .into_iter()
            .collect(),
    )
}

/// Birthdays go over the wire as midnight UTC of the day, as in EWS.
fn birthday_json(c: &Contact) -> Value {
    c.birthday.map_or(Value::Null, |day| {
        Value::from(format_instant(&day.and_time(NaiveTime::MIN).and_utc()))
    })
}

fn put_text(out: &mut Map<String, Value>, name: &str, value: &str) {
    if !value.is_empty() {
        out.insert(name.into(), Value::from(value));
    }
}

/// The body of `POST …/contacts`, tagged with the CRM id it comes from.
pub fn write_contact(c: &Contact, crm_id: Option<&CrmId>) -> Value {
    let mut out = Map::new();
    put_text(&mut out, "givenName", &c.first_name);
    put_text(&mut out, "middleName", &c.middle_name);
    put_text(&mut out, "surname", &c.last_name);
    let display = display_name(c);
    put_text(&mut out, "displayName", &display);
    put_text(&mut out, "fileAs", &display);
    put_text(&mut out, "companyName", &c.company);
    put_text(&mut out, "jobTitle", &c.title);
    put_text(&mut out, "department", &c.department);
    if !c.emails.is_empty() {
        out.insert("emailAddresses".into(), emails_json(c));
    }
    if c.phones.contains_key(&PhoneKind::Business) {
        out.insert("businessPhones".into(), one_phone(c, PhoneKind::Business));
    }
    if c.phones.contains_key(&PhoneKind::Home) {
        out.insert("homePhones".into(), one_phone(c, PhoneKind::Home));
    }
    if let Some(mobile) = c.phones.get(&PhoneKind::Mobile) {
        out.insert("mobilePhone".into(), Value::from(mobile.as_str()));
    }
    for (kind, name) in ADDRESS_KEYS {
        if let Some(address) = c.addresses.get(&kind) {
            out.insert(name.into(), address_json(address, false));
        }
    }
    put_text(&mut out, "personalNotes", &c.notes);
    if c.birthday.is_some() {
        out.insert("birthday".into(), birthday_json(c));
    }
    let mut extended = Vec::new();
    if let Some(crm_id) = crm_id {
        extended.push(extended_property(
            property_id(CRM_ID_PROPERTY),
            crm_id.as_str(),
        ));
    }
    for (kind, id) in TAGGED_PHONES {
        if let Some(number) = c.phones.get(&kind) {
            extended.push(extended_property(id.to_owned(), number));
        }
    }
    if !extended.is_empty() {
        out.insert(
            "singleValueExtendedProperties".into(),
            Value::Array(extended),
        );
    }
    Value::Object(out)
}

/// A cleared string property: `null`, which is how Graph clears one.
fn text_or_null(value: &str) -> Value {
    if value.is_empty() {
        Value::Null
    } else {
        Value::from(value)
    }
}

/// The body of `PATCH …/contacts/{id}` that writes the `changed` fields of `c` and nothing
/// else. Cleared values are `null` (strings, the birthday), `[]` (collections) or all-empty
/// parts (addresses); a MAPI phone property cannot be removed through Graph, so a cleared one
/// is written empty, which reads back as no number.
pub fn contact_updates(c: &Contact, changed: &[String]) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    let mut extended = Vec::new();
    let mut names_changed = false;
    for field in changed {
        match field.as_str() {
            "first_name" => {
                names_changed = true;
                out.insert("givenName".into(), text_or_null(&c.first_name));
            }
            "middle_name" => {
                names_changed = true;
                out.insert("middleName".into(), text_or_null(&c.middle_name));
            }
            "last_name" => {
                names_changed = true;
                out.insert("surname".into(), text_or_null(&c.last_name));
            }
            "company" => {
                names_changed = true;
                out.insert("companyName".into(), text_or_null(&c.company));
            }
            "title" => {
                out.insert("jobTitle".into(), text_or_null(&c.title));
            }
            "department" => {
                out.insert("department".into(), text_or_null(&c.department));
            }
            "notes" => {
                out.insert("personalNotes".into(), text_or_null(&c.notes));
            }
            "birthday" => {
                out.insert("birthday".into(), birthday_json(c));
            }
            "emails" => {
                out.insert("emailAddresses".into(), emails_json(c));
            }
            "phones" => {
                out.insert("businessPhones".into(), one_phone(c, PhoneKind::Business));
                out.insert("homePhones".into(), one_phone(c, PhoneKind::Home));
                out.insert(
                    "mobilePhone".into(),
                    text_or_null(c.phones.get(&PhoneKind::Mobile).map_or("", String::as_str)),
                );
                for (kind, id) in TAGGED_PHONES {
                    let number = c.phones.get(&kind).map_or("", String::as_str);
                    extended.push(extended_property(id.to_owned(), number));
                }
            }
            "addresses" => {
                let empty = Address::default();
                for (kind, name) in ADDRESS_KEYS {
                    let address = c.addresses.get(&kind).unwrap_or(&empty);
                    out.insert(name.into(), address_json(address, true));
                }
            }
            other => return Err(format!("contact field {other:?} is not synced to Exchange")),
        }
    }
    if names_changed {
        let display = display_name(c);
        out.insert("displayName".into(), text_or_null(&display));
        out.insert("fileAs".into(), text_or_null(&display));
    }
    if !extended.is_empty() {
        out.insert(
            "singleValueExtendedProperties".into(),
            Value::Array(extended),
        );
    }
    Ok(out)
}

/// [`contact_updates`] for a contact whose current JSON is known: a PATCH replaces a whole
/// collection, so the second business and home numbers (EWS's `BusinessPhone2` and
/// `HomePhone2`, which we do not sync) are written back as they are instead of lost.
pub fn contact_updates_keeping(
    c: &Contact,
    changed: &[String],
    current: &Value,
) -> Result<Map<String, Value>, String> {
    let mut out = contact_updates(c, changed)?;
    for name in ["businessPhones", "homePhones"] {
        let Some(Value::Array(ours)) = out.get_mut(name) else {
            continue;
        };
        let rest = array(current, name)?.get(1..).unwrap_or(&[]);
        if ours.is_empty() && !rest.is_empty() {
            // Graph keeps the numbers in order: keeping the second alone would move it up and
            // read as our number, so clearing ours clears both (EWS could delete one alone).
            continue;
        }
        ours.extend(rest.iter().filter(|v| v.is_string()).cloned());
    }
    Ok(out)
}

/// The first string of a string collection (`businessPhones`, `homePhones`).
fn first_string(item: &Value, name: &str) -> Result<String, String> {
    match array(item, name)?.first() {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("{name} holds a value that is not a string")),
    }
}

/// Reads a Graph `contact` (expanded with [`contact_expand`] for the tagged phone numbers).
/// Text is bounded by the model's limits; an unexpected shape is an error, never a panic.
pub fn read_contact(item: &Value) -> Result<Contact, String> {
    let mut c = read_contact_as_typed(item)?;
    c.normalize();
    Ok(c)
}

/// A Graph `contact` as the user typed it, before it is made to fit (see
/// [`Contact::sanitize`]), so the caller can say what had to go.
pub fn read_contact_as_typed(item: &Value) -> Result<Contact, String> {
    if !item.is_object() {
        return Err("a contact must be a JSON object".into());
    }
    let mut c = Contact {
        first_name: text(item, "givenName")?.to_owned(),
        middle_name: text(item, "middleName")?.to_owned(),
        last_name: text(item, "surname")?.to_owned(),
        company: text(item, "companyName")?.to_owned(),
        title: text(item, "jobTitle")?.to_owned(),
        department: text(item, "department")?.to_owned(),
        notes: text(item, "personalNotes")?.to_owned(),
        ..Contact::default()
    };
    for entry in array(item, "emailAddresses")? {
        if c.emails.len() == MAX_EMAILS {
            break;
        }
        if entry.is_null() {
            continue;
        }
        let address = text(entry, "address")?.trim();
        // Exchange answers some addresses in their `SMTP:` routing form.
        let address = match address.get(..5) {
            Some(prefix) if prefix.eq_ignore_ascii_case("smtp:") => &address[5..],
            _ => address,
        };
        if !address.is_empty() {
            c.emails.push(address.to_owned());
        }
    }
    let mut phones = vec![
        (PhoneKind::Business, first_string(item, "businessPhones")?),
        (PhoneKind::Home, first_string(item, "homePhones")?),
        (PhoneKind::Mobile, text(item, "mobilePhone")?.to_owned()),
    ];
    for (kind, id) in TAGGED_PHONES {
        phones.push((kind, read_extended(item, id).unwrap_or_default()));
    }
    for (kind, number) in phones {
        if !number.trim().is_empty() {
            c.phones.insert(kind, number);
        }
    }
    for (kind, name) in ADDRESS_KEYS {
        if let Some(v) = object(item, name)? {
            let address = read_address(v)?;
            if !address.is_empty() {
                c.addresses.insert(kind, address);
            }
        }
    }
    let birthday = text(item, "birthday")?;
    if !birthday.trim().is_empty() {
        let instant = parse_instant(birthday)
            .ok_or_else(|| format!("birthday {birthday:?} is not a date"))?;
        // Clients store the day at local midnight (or 11:59), up to 14 hours either side of
        // midnight UTC; the nearest midnight is the day they meant, as the EWS mapping reads it.
        c.birthday = Some((instant + Duration::hours(12)).date_naive());
    }
    Ok(c)
}
