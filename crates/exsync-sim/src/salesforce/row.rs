//! A record as a query or a read returns it, written straight from the stored record.
//!
//! A change query's page holds up to 2,000 records; copying each into a new JSON map only to
//! write it out and drop it was most of the simulator's CPU on a first sync.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::Value;

use super::schema::{reference_field_for, Schema};
use super::soql::Path;
use super::store::{Db, Rec};

/// A field of `rec` by name, matched exactly first and then ignoring case, as SOQL names are.
pub(super) fn get_ci<'a>(rec: &'a Rec, name: &str) -> Option<&'a Value> {
    rec.get(name).or_else(|| {
        rec.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// The fields of `rec` named by `fields` (canonical paths), as Salesforce writes a record:
/// its `attributes` first, then each field in the order asked once, a parent's fields
/// gathered under its relationship (null when the record has no parent).
pub(super) struct Row<'a> {
    pub schema: &'a Schema,
    /// The API version of the request, for the records' URLs.
    pub version: &'a str,
    pub db: &'a Db,
    pub object: &'a str,
    pub rec: &'a Rec,
    pub fields: &'a [Path],
}

impl Row<'_> {
    /// The row as a JSON value, for what must be kept past the reply (a query cursor).
    pub(super) fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Whether `name` was written by an earlier path than the one at `at`.
    fn written_before(&self, at: usize, name: &str) -> bool {
        self.fields[..at]
            .iter()
            .any(|p| p.first().is_some_and(|n| n == name))
    }
}

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(
            "attributes",
            &attributes(self.version, self.object, self.rec),
        )?;
        for (at, path) in self.fields.iter().enumerate() {
            match path.as_slice() {
                [field] if !self.written_before(at, field) => {
                    map.serialize_entry(field, self.rec.get(field).unwrap_or(&Value::Null))?;
                }
                [relationship, _] if !self.written_before(at, relationship) => {
                    let parent = get_ci(self.rec, &reference_field_for(relationship))
                        .and_then(Value::as_str)
                        .and_then(|pid| self.db.find(self.schema, pid));
                    match parent {
                        None => map.serialize_entry(relationship, &Value::Null)?,
                        Some((object, rec)) => map.serialize_entry(
                            relationship,
                            &Parent {
                                row: self,
                                relationship,
                                object,
                                rec,
                            },
                        )?,
                    }
                }
                _ => {}
            }
        }
        map.end()
    }
}

/// A parent's fields under a relationship of a [`Row`].
struct Parent<'a> {
    row: &'a Row<'a>,
    relationship: &'a str,
    object: &'a str,
    rec: &'a Rec,
}

impl Serialize for Parent<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let def = self.row.schema.object(self.object);
        let mut written: Vec<&str> = Vec::new();
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(
            "attributes",
            &attributes(self.row.version, self.object, self.rec),
        )?;
        for path in self.row.fields {
            let [relationship, field] = path.as_slice() else {
                continue;
            };
            let name = def
                .and_then(|o| o.field(field))
                .map_or(field.as_str(), |f| f.name);
            if relationship != self.relationship || written.contains(&name) {
                continue;
            }
            written.push(name);
            map.serialize_entry(name, get_ci(self.rec, field).unwrap_or(&Value::Null))?;
        }
        map.end()
    }
}

/// A record's `attributes`: its type and URL.
#[derive(Serialize)]
struct Attributes<'a> {
    #[serde(rename = "type")]
    object: &'a str,
    url: String,
}

/// The `attributes` of `rec`, a record of `object`.
fn attributes<'a>(version: &str, object: &'a str, rec: &Rec) -> Attributes<'a> {
    let id = rec.get("Id").and_then(Value::as_str).unwrap_or_default();
    Attributes {
        object,
        url: record_url(version, object, id),
    }
}

/// Where a record is read, in API `version`.
pub(super) fn record_url(version: &str, object: &str, id: &str) -> String {
    format!("/services/data/v{version}/sobjects/{object}/{id}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::Utc;
    use serde_json::json;

    use super::*;
    use crate::salesforce::store::as_rec;

    /// Attributes first, then the fields in the order asked, each once, a parent's fields
    /// under its relationship with its canonical names, and null for a missing parent.
    #[test]
    fn a_row_is_written_as_salesforce_writes_a_record() {
        let schema = Schema::standard();
        let mut db = Db::fresh(&schema).unwrap();
        let now = Utc::now();
        let account = db
            .create(
                &schema,
                "Account",
                as_rec(json!({"Name": "Acme \"1\""})),
                "",
                now,
            )
            .unwrap();
        let contact = |db: &mut Db, fields: Value| {
            let id = db
                .create(&schema, "Contact", as_rec(fields), "", now)
                .unwrap();
            db.find(&schema, &id).unwrap().1.clone()
        };
        let with = contact(&mut db, json!({"LastName": "Ann", "AccountId": account}));
        let without = contact(&mut db, json!({"LastName": "Bob"}));
        let path = |p: &str| p.split('.').map(str::to_owned).collect::<Vec<_>>();
        let fields: Vec<Path> = [
            "LastName",
            "Account.name",
            "Id",
            "Account.Name",
            "LastName",
            "Email",
        ]
        .into_iter()
        .map(path)
        .collect();
        let text = |rec: &Rec| {
            let row = Row {
                schema: &schema,
                version: "61.0",
                db: &db,
                object: "Contact",
                rec,
                fields: &fields,
            };
            assert_eq!(
                row.to_value(),
                serde_json::from_str::<Value>(&serde_json::to_string(&row).unwrap()).unwrap()
            );
            serde_json::to_string(&row).unwrap()
        };
        let id = |rec: &Rec| rec["Id"].as_str().unwrap().to_owned();
        assert_eq!(
            text(&with),
            format!(
                concat!(
                    r#"{{"attributes":{{"type":"Contact","url":"/services/data/v61.0/sobjects/Contact/{}"}},"#,
                    r#""LastName":"Ann","Account":{{"attributes":{{"type":"Account","url":"/services/data/v61.0/sobjects/Account/{}"}},"#,
                    r#""Name":"Acme \"1\""}},"Id":"{}","Email":null}}"#
                ),
                id(&with),
                account,
                id(&with)
            )
        );
        assert_eq!(
            text(&without),
            format!(
                concat!(
                    r#"{{"attributes":{{"type":"Contact","url":"/services/data/v61.0/sobjects/Contact/{}"}},"#,
                    r#""LastName":"Bob","Account":null,"Id":"{}","Email":null}}"#
                ),
                id(&without),
                id(&without)
            )
        );
    }
}
