//! The `microsoft.graph.contact` entity: which properties a body may carry and of what type
//! (Graph's v1.0 CSDL), how a valid body is kept, and the JSON a GET answers.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::graph::call::Answer;
use crate::graph::odata::extended::ExtendedProps;
use crate::graph::odata::{etag, new_change_key};

/// `Edm.String` properties a client writes.
const STRINGS: &[&str] = &[
    "assistantName",
    "businessHomePage",
    "companyName",
    "department",
    "displayName",
    "fileAs",
    "generation",
    "givenName",
    "initials",
    "jobTitle",
    "manager",
    "middleName",
    "mobilePhone",
    "nickName",
    "officeLocation",
    "personalNotes",
    "profession",
    "spouseName",
    "surname",
    "title",
    "yomiCompanyName",
    "yomiGivenName",
    "yomiSurname",
];

/// `Collection(Edm.String)` properties, with the number of slots an Exchange contact has
/// for each (two business and two home phones, three IM addresses).
const STRING_LISTS: &[(&str, usize)] = &[
    ("businessPhones", 2),
    ("homePhones", 2),
    ("imAddresses", 3),
    ("children", 50),
    ("categories", 50),
];

/// `graph.physicalAddress` properties and that type's fields.
const ADDRESSES: &[&str] = &["businessAddress", "homeAddress", "otherAddress"];
const ADDRESS_FIELDS: &[&str] = &["city", "countryOrRegion", "postalCode", "state", "street"];

/// `graph.emailAddress` properties, served only once written (Outlook leaves them out).
const EMAILS: &[&str] = &[
    "primaryEmailAddress",
    "secondaryEmailAddress",
    "tertiaryEmailAddress",
];
/// An Exchange contact has three e-mail slots (Email1…Email3).
const MAX_EMAIL_ADDRESSES: usize = 3;

/// Properties the server sets; a body may carry them (a client echoing what it read), and
/// they are ignored.
const READ_ONLY: &[&str] = &[
    "id",
    "changeKey",
    "createdDateTime",
    "lastModifiedDateTime",
    "parentFolderId",
];

/// Navigation properties this store does not take in a body.
const UNSUPPORTED: &[&str] = &["extensions", "multiValueExtendedProperties", "photo"];

/// Longest string property kept; notes may be long, a name may not.
pub(crate) const MAX_STRING: usize = 4 * 1024;
pub(crate) const MAX_NOTES: usize = 128 * 1024;

/// Every property of a contact as `$select` and `$filter` may name them.
pub(crate) fn selectable() -> Vec<&'static str> {
    let mut all: Vec<&str> = STRINGS.to_vec();
    all.extend(STRING_LISTS.iter().map(|(n, _)| *n));
    all.extend(ADDRESSES);
    all.extend(EMAILS);
    all.extend(READ_ONLY);
    all.extend(["birthday", "emailAddresses"]);
    all
}

/// The string properties `$filter` compares.
pub(crate) const FILTERABLE: &[&str] = &[
    "displayName",
    "givenName",
    "surname",
    "middleName",
    "nickName",
    "companyName",
    "department",
    "jobTitle",
    "fileAs",
    "mobilePhone",
];

/// The properties `$orderby` sorts a contact list by.
pub(crate) const ORDERABLE: &[&str] = &[
    "displayName",
    "givenName",
    "surname",
    "companyName",
    "fileAs",
    "createdDateTime",
    "lastModifiedDateTime",
];

fn type_error(name: &str, expected: &str, got: &Value) -> Answer {
    let shown = match got {
        Value::String(s) => s.chars().take(64).collect::<String>(),
        other => other.to_string().chars().take(64).collect(),
    };
    Answer::error(
        400,
        "BadRequest",
        &format!("Cannot convert the literal '{shown}' to the expected type '{expected}' of property '{name}'."),
    )
}

fn too_long(name: &str, max: usize) -> Answer {
    Answer::error(
        400,
        "ErrorInvalidProperty",
        &format!("The value of property '{name}' is longer than the {max} characters allowed."),
    )
}

fn unknown_property(owner: &str, name: &str) -> Answer {
    Answer::error(
        400,
        "RequestBodyRead",
        &format!(
            "The property '{name}' does not exist on type '{owner}'. Make sure to only use property names that are defined by the type or mark the type as open type."
        ),
    )
}

fn string(name: &str, value: &Value, max: usize) -> Result<Value, Answer> {
    match value {
        Value::Null => Ok(Value::Null),
        Value::String(s) if s.chars().count() > max => Err(too_long(name, max)),
        Value::String(_) => Ok(value.clone()),
        other => Err(type_error(name, "Edm.String", other)),
    }
}

fn string_list(name: &str, value: &Value, slots: usize) -> Result<Value, Answer> {
    let items = match value {
        Value::Null => return Ok(json!([])),
        Value::Array(items) => items,
        other => return Err(type_error(name, "Collection(Edm.String)", other)),
    };
    if items.len() > slots {
        return Err(Answer::error(
            400,
            "ErrorInvalidProperty",
            &format!("A contact holds at most {slots} values in '{name}'."),
        ));
    }
    for item in items {
        match item {
            Value::String(s) if s.chars().count() > MAX_STRING => {
                return Err(too_long(name, MAX_STRING))
            }
            Value::String(_) => {}
            other => return Err(type_error(name, "Edm.String", other)),
        }
    }
    Ok(value.clone())
}

fn complex(name: &str, value: &Value, owner: &str, fields: &[&str]) -> Result<Value, Answer> {
    let map = match value {
        Value::Null => return Ok(Value::Null),
        Value::Object(map) => map,
        other => return Err(type_error(name, owner, other)),
    };
    let mut kept = Map::new();
    for (key, v) in map {
        if key.starts_with("@odata.") {
            continue;
        }
        if !fields.contains(&key.as_str()) {
            return Err(unknown_property(owner, key));
        }
        kept.insert(key.clone(), string(key, v, MAX_STRING)?);
    }
    Ok(Value::Object(kept))
}

fn email(name: &str, value: &Value) -> Result<Value, Answer> {
    complex(
        name,
        value,
        "microsoft.graph.emailAddress",
        &["address", "name"],
    )
}

fn birthday(value: &Value) -> Result<Value, Answer> {
    match value {
        Value::Null => Ok(Value::Null),
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .map(|d| json!(stamp(d.with_timezone(&Utc))))
            .map_err(|_| type_error("birthday", "Edm.DateTimeOffset", value)),
        other => Err(type_error("birthday", "Edm.DateTimeOffset", other)),
    }
}

/// Graph's timestamps: UTC, whole seconds, `Z`.
pub(crate) fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A checked body: the properties to write (`Null` clears) and the extended properties.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    pub(crate) props: Map<String, Value>,
    pub(crate) extended: Option<Value>,
}

/// Checks a POST or PATCH body property by property; nothing is written unless all of it
/// is valid.
pub(crate) fn check_body(body: Option<&Value>) -> Result<Changes, Answer> {
    let Some(Value::Object(map)) = body else {
        return Err(Answer::bad_request(
            "The request body must be a JSON object describing a contact.",
        ));
    };
    let mut changes = Changes::default();
    for (name, value) in map {
        let name = name.as_str();
        let checked = if name == "@odata.type" {
            match value.as_str() {
                Some("#microsoft.graph.contact" | "microsoft.graph.contact") => continue,
                _ => {
                    return Err(Answer::bad_request(&format!(
                        "A contact cannot be written as '{value}'."
                    )))
                }
            }
        } else if name.starts_with("@odata.") || READ_ONLY.contains(&name) {
            continue;
        } else if name == "singleValueExtendedProperties" {
            changes.extended = Some(value.clone());
            continue;
        } else if name == "personalNotes" {
            string(name, value, MAX_NOTES)?
        } else if STRINGS.contains(&name) {
            string(name, value, MAX_STRING)?
        } else if let Some((_, slots)) = STRING_LISTS.iter().find(|(n, _)| *n == name) {
            string_list(name, value, *slots)?
        } else if ADDRESSES.contains(&name) {
            complex(
                name,
                value,
                "microsoft.graph.physicalAddress",
                ADDRESS_FIELDS,
            )?
        } else if EMAILS.contains(&name) {
            email(name, value)?
        } else if name == "emailAddresses" {
            let list = match value {
                Value::Null => Vec::new(),
                Value::Array(list) => list.clone(),
                other => {
                    return Err(type_error(
                        name,
                        "Collection(microsoft.graph.emailAddress)",
                        other,
                    ))
                }
            };
            if list.len() > MAX_EMAIL_ADDRESSES {
                return Err(Answer::error(
                    400,
                    "ErrorInvalidProperty",
                    &format!("A contact holds at most {MAX_EMAIL_ADDRESSES} emailAddresses."),
                ));
            }
            let checked: Result<Vec<Value>, Answer> = list.iter().map(|a| email(name, a)).collect();
            Value::Array(checked?)
        } else if name == "birthday" {
            birthday(value)?
        } else if UNSUPPORTED.contains(&name) {
            return Err(Answer::bad_request(&format!(
                "'{name}' cannot be written with the contact in this service."
            )));
        } else {
            return Err(unknown_property("microsoft.graph.contact", name));
        };
        changes.props.insert(name.to_owned(), checked);
    }
    Ok(changes)
}

/// One stored contact.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Contact {
    /// The written properties, as checked (absent = never written).
    props: Map<String, Value>,
    #[serde(default, skip_serializing_if = "ExtendedProps::is_empty")]
    pub(crate) extended: ExtendedProps,
    created: DateTime<Utc>,
    modified: DateTime<Utc>,
    pub(crate) change_key: String,
    /// Whether the client chose the display name; if not, Outlook's is derived from the
    /// name parts and follows them.
    display_name_chosen: bool,
}

impl Contact {
    /// A new contact from a checked body (extended properties are applied by the caller,
    /// who validated them).
    pub(crate) fn new(changes: Changes, now: DateTime<Utc>) -> Contact {
        let mut contact = Contact {
            props: Map::new(),
            extended: ExtendedProps::default(),
            created: now,
            modified: now,
            change_key: new_change_key(),
            display_name_chosen: false,
        };
        contact.write(changes.props);
        contact
    }

    /// Applies checked properties and marks a new version.
    pub(crate) fn patch(&mut self, changes: Changes, now: DateTime<Utc>) {
        self.write(changes.props);
        self.modified = now;
        self.change_key = new_change_key();
    }

    /// A move to another folder: a new version, as Exchange gives a moved item.
    pub(crate) fn moved(&mut self, now: DateTime<Utc>) {
        self.modified = now;
        self.change_key = new_change_key();
    }

    fn write(&mut self, props: Map<String, Value>) {
        for (name, value) in props {
            if name == "displayName" {
                self.display_name_chosen = value.as_str().is_some_and(|s| !s.is_empty());
            }
            if value.is_null() {
                self.props.remove(&name);
            } else {
                self.props.insert(name, value);
            }
        }
        if !self.display_name_chosen {
            let derived = self.derived_display_name();
            self.props
                .insert("displayName".to_owned(), Value::String(derived));
        }
    }

    /// Outlook's "First Middle Last", falling back on the company and then the first
    /// e-mail address, as a contact created without a display name shows.
    fn derived_display_name(&self) -> String {
        let text = |name: &str| {
            self.props
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
        };
        let parts: Vec<&str> = ["givenName", "middleName", "surname"]
            .iter()
            .filter_map(|n| text(n))
            .collect();
        if !parts.is_empty() {
            return parts.join(" ");
        }
        if let Some(company) = text("companyName") {
            return company.to_owned();
        }
        self.props
            .get("emailAddresses")
            .and_then(Value::as_array)
            .and_then(|l| l.first())
            .and_then(|a| a.get("address").or_else(|| a.get("name")))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    /// The written properties (`displayName` always among them), which is what `$filter`
    /// reads: a property never written compares as `null`, as in the rendered contact.
    pub(crate) fn filter_view(&self) -> &Map<String, Value> {
        &self.props
    }

    /// A string to sort by for one of [`ORDERABLE`]; timestamps in their served form sort
    /// as text in time order.
    pub(crate) fn sort_value(&self, prop: &str) -> Option<String> {
        match prop {
            "createdDateTime" => Some(stamp(self.created)),
            "lastModifiedDateTime" => Some(stamp(self.modified)),
            _ => self
                .props
                .get(prop)
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
    }

    /// The contact as Graph serves it: every property, `null`/`[]`/`{}` when unset.
    pub(crate) fn render(&self, id: &str, folder_id: &str) -> Value {
        let mut out = Map::new();
        out.insert("@odata.etag".to_owned(), json!(etag(&self.change_key)));
        out.insert("id".to_owned(), json!(id));
        out.insert("createdDateTime".to_owned(), json!(stamp(self.created)));
        out.insert(
            "lastModifiedDateTime".to_owned(),
            json!(stamp(self.modified)),
        );
        out.insert("changeKey".to_owned(), json!(self.change_key));
        out.insert("parentFolderId".to_owned(), json!(folder_id));
        out.insert("birthday".to_owned(), Value::Null);
        for name in STRINGS {
            out.insert((*name).to_owned(), Value::Null);
        }
        for (name, _) in STRING_LISTS {
            out.insert((*name).to_owned(), json!([]));
        }
        for name in ADDRESSES {
            out.insert((*name).to_owned(), json!({}));
        }
        out.insert("emailAddresses".to_owned(), json!([]));
        for (name, value) in &self.props {
            out.insert(name.clone(), value.clone());
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-01-02T03:04:05.678Z".parse().unwrap()
    }

    #[test]
    fn render_has_every_contact_property_and_server_fields() {
        let body = json!({"givenName": "Ann", "surname": "Lee",
                          "emailAddresses": [{"address": "ann@contoso.test", "name": "Ann Lee"}],
                          "businessPhones": ["+1 555"], "homeAddress": {"city": "Oslo"},
                          "birthday": "1990-05-01T00:00:00+02:00"});
        let contact = Contact::new(check_body(Some(&body)).unwrap(), now());
        let out = contact.render("AAMkA1", "AAMkF");
        assert_eq!(out["displayName"], "Ann Lee");
        assert_eq!(out["id"], "AAMkA1");
        assert_eq!(out["parentFolderId"], "AAMkF");
        assert_eq!(out["createdDateTime"], "2026-01-02T03:04:05Z");
        assert_eq!(out["birthday"], "1990-04-30T22:00:00Z");
        assert_eq!(out["homeAddress"], json!({"city": "Oslo"}));
        assert_eq!(out["otherAddress"], json!({}));
        assert_eq!(out["jobTitle"], Value::Null);
        assert_eq!(out["children"], json!([]));
        assert_eq!(
            out["@odata.etag"],
            json!(format!("W/\"{}\"", contact.change_key))
        );
        assert!(out.get("primaryEmailAddress").is_none());
        for key in out.as_object().unwrap().keys() {
            assert!(
                key == "@odata.etag" || selectable().contains(&key.as_str()),
                "{key}"
            );
        }
    }

    #[test]
    fn display_name_follows_names_until_chosen() {
        let mut c = Contact::new(
            check_body(Some(&json!({"givenName": "Ann"}))).unwrap(),
            now(),
        );
        assert_eq!(c.render("i", "f")["displayName"], "Ann");
        c.patch(check_body(Some(&json!({"surname": "Lee"}))).unwrap(), now());
        assert_eq!(c.render("i", "f")["displayName"], "Ann Lee");
        c.patch(
            check_body(Some(&json!({"displayName": "Dr Lee"}))).unwrap(),
            now(),
        );
        c.patch(
            check_body(Some(&json!({"givenName": "Anna"}))).unwrap(),
            now(),
        );
        assert_eq!(c.render("i", "f")["displayName"], "Dr Lee");
        let company = Contact::new(
            check_body(Some(&json!({"companyName": "Contoso"}))).unwrap(),
            now(),
        );
        assert_eq!(company.render("i", "f")["displayName"], "Contoso");
    }

    #[test]
    fn patch_changes_key_and_clears_with_null() {
        let mut c = Contact::new(
            check_body(Some(&json!({"givenName": "Ann", "jobTitle": "CEO"}))).unwrap(),
            now(),
        );
        let key = c.change_key.clone();
        let later = now() + chrono::Duration::seconds(30);
        c.patch(check_body(Some(&json!({"jobTitle": null}))).unwrap(), later);
        let out = c.render("i", "f");
        assert_ne!(c.change_key, key);
        assert_eq!(out["jobTitle"], Value::Null);
        assert_eq!(out["lastModifiedDateTime"], stamp(later));
        assert_eq!(out["givenName"], "Ann");
    }

    #[test]
    fn bodies_with_unknown_or_mistyped_properties_are_400() {
        let cases = [
            (
                json!({"nickname2": "x"}),
                "does not exist on type 'microsoft.graph.contact'",
            ),
            (json!({"givenName": 3}), "Edm.String"),
            (json!({"businessPhones": "x"}), "Collection(Edm.String)"),
            (json!({"businessPhones": ["a", "b", "c"]}), "at most 2"),
            (json!({"businessPhones": [1]}), "Edm.String"),
            (
                json!({"emailAddresses": [{"address": "a", "kind": "x"}]}),
                "microsoft.graph.emailAddress",
            ),
            (json!({"emailAddresses": [{}, {}, {}, {}]}), "at most 3"),
            (json!({"homeAddress": {"town": "x"}}), "physicalAddress"),
            (json!({"homeAddress": "Oslo"}), "physicalAddress"),
            (json!({"birthday": "yesterday"}), "Edm.DateTimeOffset"),
            (
                json!({"givenName": "x".repeat(MAX_STRING + 1)}),
                "longer than",
            ),
            (
                json!({"@odata.type": "#microsoft.graph.event"}),
                "cannot be written",
            ),
            (json!({"photo": {}}), "cannot be written"),
            (json!([1]), "JSON object"),
        ];
        for (body, wanted) in cases {
            let err = check_body(Some(&body)).unwrap_err();
            assert_eq!(err.status, 400, "{body}");
            let message = err.body.unwrap()["error"]["message"].to_string();
            assert!(message.contains(wanted), "{body}: {message}");
        }
        assert!(check_body(None).is_err());
        // What a client read back may be written back: server fields are ignored.
        let echo = json!({"id": "x", "changeKey": "y", "@odata.etag": "z",
                          "parentFolderId": "p", "givenName": "Ann"});
        let changes = check_body(Some(&echo)).unwrap();
        assert_eq!(changes.props.len(), 1);
    }
}
