//! What a client may write on an event (POST / PATCH body), checked property by property
//! against the v1.0 schema: an unknown name or a wrong type is a 400 saying which, before
//! anything is stored.

use chrono::NaiveDateTime;
use serde_json::{Map, Value};

use super::call::Answer;
use super::odata::extended::{ExtendedProps, ExtendedValue};
use super::recurrence::{self, Rule};
use super::time_zone::{parse_local, Zone};

/// The type of a property, as far as a write needs to check it.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Bool,
    Int32,
    Number,
    Enum(&'static [&'static str]),
    Object(&'static str, &'static [(&'static str, Kind)]),
    List(&'static Kind),
}

const BODY_TYPE: &[&str] = &["text", "html"];
pub(crate) const SHOW_AS: &[&str] = &[
    "unknown",
    "free",
    "tentative",
    "busy",
    "oof",
    "workingElsewhere",
];
pub(crate) const SENSITIVITY: &[&str] = &["normal", "personal", "private", "confidential"];
pub(crate) const IMPORTANCE: &[&str] = &["low", "normal", "high"];
const LOCATION_TYPE: &[&str] = &[
    "default",
    "conferenceRoom",
    "homeAddress",
    "businessAddress",
    "geoCoordinates",
    "streetAddress",
    "hotel",
    "restaurant",
    "localBusiness",
    "postalAddress",
];
const UNIQUE_ID_TYPE: &[&str] = &["unknown", "locationStore", "directory", "private", "bing"];
const ATTENDEE_TYPE: &[&str] = &["required", "optional", "resource"];
const RESPONSE_TYPE: &[&str] = &[
    "none",
    "organizer",
    "tentativelyAccepted",
    "accepted",
    "declined",
    "notResponded",
];
const MEETING_PROVIDER: &[&str] = &[
    "unknown",
    "skypeForBusiness",
    "skypeForConsumer",
    "teamsForBusiness",
];

const ITEM_BODY: Kind = Kind::Object(
    "itemBody",
    &[
        ("contentType", Kind::Enum(BODY_TYPE)),
        ("content", Kind::Str),
    ],
);
const EMAIL_ADDRESS: Kind = Kind::Object(
    "emailAddress",
    &[("address", Kind::Str), ("name", Kind::Str)],
);
const RECIPIENT: Kind = Kind::Object("recipient", &[("emailAddress", EMAIL_ADDRESS)]);
const PHYSICAL_ADDRESS: Kind = Kind::Object(
    "physicalAddress",
    &[
        ("city", Kind::Str),
        ("countryOrRegion", Kind::Str),
        ("postalCode", Kind::Str),
        ("state", Kind::Str),
        ("street", Kind::Str),
    ],
);
const COORDINATES: Kind = Kind::Object(
    "outlookGeoCoordinates",
    &[
        ("accuracy", Kind::Number),
        ("altitude", Kind::Number),
        ("altitudeAccuracy", Kind::Number),
        ("latitude", Kind::Number),
        ("longitude", Kind::Number),
    ],
);
const LOCATION: Kind = Kind::Object(
    "location",
    &[
        ("address", PHYSICAL_ADDRESS),
        ("coordinates", COORDINATES),
        ("displayName", Kind::Str),
        ("locationEmailAddress", Kind::Str),
        ("locationType", Kind::Enum(LOCATION_TYPE)),
        ("locationUri", Kind::Str),
        ("uniqueId", Kind::Str),
        ("uniqueIdType", Kind::Enum(UNIQUE_ID_TYPE)),
    ],
);
const RESPONSE_STATUS: Kind = Kind::Object(
    "responseStatus",
    &[("response", Kind::Enum(RESPONSE_TYPE)), ("time", Kind::Str)],
);
const ATTENDEE: Kind = Kind::Object(
    "attendee",
    &[
        ("emailAddress", EMAIL_ADDRESS),
        ("type", Kind::Enum(ATTENDEE_TYPE)),
        ("status", RESPONSE_STATUS),
    ],
);

/// The plain properties an event stores as written (after their check).
const WRITABLE: &[(&str, Kind)] = &[
    ("subject", Kind::Str),
    ("body", ITEM_BODY),
    ("location", LOCATION),
    ("locations", Kind::List(&LOCATION)),
    ("attendees", Kind::List(&ATTENDEE)),
    ("organizer", RECIPIENT),
    ("showAs", Kind::Enum(SHOW_AS)),
    ("sensitivity", Kind::Enum(SENSITIVITY)),
    ("importance", Kind::Enum(IMPORTANCE)),
    ("categories", Kind::List(&Kind::Str)),
    ("isReminderOn", Kind::Bool),
    ("reminderMinutesBeforeStart", Kind::Int32),
    ("responseRequested", Kind::Bool),
    ("allowNewTimeProposals", Kind::Bool),
    ("isOnlineMeeting", Kind::Bool),
    ("hideAttendees", Kind::Bool),
    ("onlineMeetingProvider", Kind::Enum(MEETING_PROVIDER)),
];

/// Properties of the schema a client may send back as it read them; Graph ignores them.
const READ_ONLY: &[&str] = &[
    "id",
    "changeKey",
    "createdDateTime",
    "lastModifiedDateTime",
    "iCalUId",
    "type",
    "seriesMasterId",
    "webLink",
    "bodyPreview",
    "hasAttachments",
    "isOrganizer",
    "isCancelled",
    "isDraft",
    "originalStart",
    "originalStartTimeZone",
    "originalEndTimeZone",
    "responseStatus",
    "onlineMeeting",
    "onlineMeetingUrl",
    "cancelledOccurrences",
];

/// Longest string kept in any property (a body included).
const MAX_TEXT: usize = 1 << 20;
/// Most entries in any list (attendees, categories, locations).
const MAX_LIST: usize = 500;

/// A wall-clock time and the zone it was given in.
#[derive(Debug, Clone)]
pub(crate) struct When {
    pub(crate) local: NaiveDateTime,
    pub(crate) zone: Zone,
}

/// A checked write.
#[derive(Debug, Default)]
pub(crate) struct Write {
    /// Plain properties to set; `Value::Null` clears one.
    pub(crate) props: Vec<(String, Value)>,
    pub(crate) start: Option<When>,
    pub(crate) end: Option<When>,
    pub(crate) all_day: Option<bool>,
    /// `Some(None)`: `"recurrence": null`, which makes a series a single event again.
    pub(crate) recurrence: Option<Option<Rule>>,
    pub(crate) transaction_id: Option<String>,
    pub(crate) extended: Option<Vec<(String, ExtendedValue)>>,
}

fn read_error(message: &str) -> Answer {
    Answer::error(400, "RequestBodyRead", message)
}

fn check(value: &Value, kind: Kind, path: &str) -> Result<Value, Answer> {
    let wrong = |expected: &str| {
        read_error(&format!(
            "Cannot convert the value of '{path}' to the expected type '{expected}'."
        ))
    };
    if value.is_null() {
        return Ok(Value::Null);
    }
    match kind {
        Kind::Str => match value {
            Value::String(s) if s.len() <= MAX_TEXT => Ok(value.clone()),
            Value::String(_) => Err(read_error(&format!("'{path}' is too long."))),
            _ => Err(wrong("Edm.String")),
        },
        Kind::Bool => value
            .is_boolean()
            .then(|| value.clone())
            .ok_or_else(|| wrong("Edm.Boolean")),
        Kind::Int32 => value
            .as_i64()
            .filter(|n| i32::try_from(*n).is_ok())
            .map(Value::from)
            .ok_or_else(|| wrong("Edm.Int32")),
        Kind::Number => value
            .is_number()
            .then(|| value.clone())
            .ok_or_else(|| wrong("Edm.Double")),
        Kind::Enum(names) => {
            let text = value.as_str().ok_or_else(|| wrong("Edm.String"))?;
            names
                .iter()
                .find(|n| n.eq_ignore_ascii_case(text))
                .map(|n| Value::from(*n))
                .ok_or_else(|| {
                    read_error(&format!(
                        "The value '{text}' of '{path}' is not valid; expected one of: {}.",
                        names.join(", ")
                    ))
                })
        }
        Kind::List(item) => {
            let items = value.as_array().ok_or_else(|| wrong("Collection"))?;
            if items.len() > MAX_LIST {
                return Err(read_error(&format!(
                    "'{path}' has more than {MAX_LIST} entries."
                )));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, v)| check(v, *item, &format!("{path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        Kind::Object(type_name, fields) => {
            let map = value.as_object().ok_or_else(|| wrong(type_name))?;
            let mut out = Map::new();
            for (key, v) in map {
                if key.starts_with("@odata.") {
                    continue;
                }
                let Some((name, kind)) = fields.iter().find(|(n, _)| n == key) else {
                    return Err(unknown_property(key, type_name));
                };
                out.insert(
                    (*name).to_owned(),
                    check(v, *kind, &format!("{path}.{key}"))?,
                );
            }
            Ok(Value::Object(out))
        }
    }
}

fn unknown_property(name: &str, type_name: &str) -> Answer {
    read_error(&format!(
        "The property '{name}' does not exist on type 'microsoft.graph.{type_name}'. Make sure to only use property names that are defined by the type or mark the type as open type."
    ))
}

fn when(value: &Value, path: &str) -> Result<When, Answer> {
    let map = value.as_object().ok_or_else(|| {
        read_error(&format!(
            "Cannot convert the value of '{path}' to the expected type 'microsoft.graph.dateTimeTimeZone'."
        ))
    })?;
    if let Some(key) = map
        .keys()
        .find(|k| !k.starts_with("@odata.") && *k != "dateTime" && *k != "timeZone")
    {
        return Err(unknown_property(key, "dateTimeTimeZone"));
    }
    let text = match map.get("dateTime") {
        Some(Value::String(s)) => s,
        Some(_) => {
            return Err(read_error(&format!(
                "Cannot convert the value of '{path}.dateTime' to the expected type 'Edm.String'."
            )))
        }
        None => {
            return Err(Answer::bad_request(&format!(
                "{path}.dateTime is required."
            )))
        }
    };
    let local = parse_local(text).ok_or_else(|| {
        Answer::bad_request(&format!(
            "'{text}' in {path}.dateTime is not a date and time (yyyy-MM-ddTHH:mm:ss)."
        ))
    })?;
    let zone = match map.get("timeZone") {
        None | Some(Value::Null) => Zone::utc(),
        Some(Value::String(name)) => Zone::parse(name).ok_or_else(|| {
            Answer::error(
                400,
                "TimeZoneNotSupportedException",
                &format!("A valid TimeZone value must be specified. The following TimeZone value is not supported: '{name}'."),
            )
        })?,
        Some(_) => {
            return Err(read_error(&format!(
                "Cannot convert the value of '{path}.timeZone' to the expected type 'Edm.String'."
            )))
        }
    };
    Ok(When { local, zone })
}

/// Checks a POST or PATCH body.
pub(crate) fn parse(body: Option<&Value>) -> Result<Write, Answer> {
    let map = match body {
        Some(Value::Object(map)) => map,
        Some(_) => return Err(read_error("The request body must be a JSON object.")),
        None => {
            return Err(read_error(
                "The request body is empty; an event is expected.",
            ))
        }
    };
    let mut write = Write::default();
    for (key, value) in map {
        if let Some((name, kind)) = WRITABLE.iter().find(|(n, _)| n == key) {
            write
                .props
                .push(((*name).to_owned(), check(value, *kind, key)?));
            continue;
        }
        match key.as_str() {
            "@odata.type" => match value.as_str() {
                Some("#microsoft.graph.event" | "microsoft.graph.event") => {}
                None if value.is_null() => {}
                _ => {
                    return Err(read_error(&format!(
                        "The @odata.type '{value}' is not microsoft.graph.event."
                    )))
                }
            },
            k if k.starts_with("@odata.") => {}
            k if READ_ONLY.contains(&k) => {}
            "start" => write.start = Some(when(value, "start")?),
            "end" => write.end = Some(when(value, "end")?),
            "isAllDay" => {
                write.all_day = Some(value.as_bool().ok_or_else(|| {
                    read_error(
                    "Cannot convert the value of 'isAllDay' to the expected type 'Edm.Boolean'.",
                )
                })?)
            }
            "recurrence" => {
                write.recurrence = Some(if value.is_null() {
                    None
                } else {
                    Some(recurrence::parse(value).map_err(|m| Answer::bad_request(&m))?)
                })
            }
            "transactionId" => match value {
                Value::String(s) if s.len() <= 256 => write.transaction_id = Some(s.clone()),
                Value::Null => {}
                _ => {
                    return Err(read_error(
                        "transactionId must be a string of at most 256 characters.",
                    ))
                }
            },
            "singleValueExtendedProperties" => write.extended = Some(ExtendedProps::parse(value)?),
            other => return Err(unknown_property(other, "event")),
        }
    }
    Ok(write)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn a_full_event_is_accepted_and_enums_take_graphs_spelling() {
        let write = parse(Some(&json!({
            "subject": "Review",
            "body": {"contentType": "HTML", "content": "<p>hi</p>"},
            "start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": "2026-03-02T10:00:00", "timeZone": "W. Europe Standard Time"},
            "location": {"displayName": "Room 1", "address": {"city": "Berlin"}},
            "attendees": [{"emailAddress": {"address": "a@contoso.test", "name": "A"}, "type": "required"}],
            "showAs": "Busy",
            "categories": ["Blue"],
            "isReminderOn": false,
            "reminderMinutesBeforeStart": 5,
            "transactionId": "t-1",
            "singleValueExtendedProperties": [{"id": "String {66f5a359-4659-4830-9070-00040ec6ac6e} Name CrmId", "value": "003"}],
            "@odata.type": "#microsoft.graph.event",
            "id": "ignored",
        })))
        .unwrap();
        let prop = |name: &str| {
            write
                .props
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(prop("showAs"), Some(json!("busy")));
        assert_eq!(prop("body").unwrap()["contentType"], "html");
        assert_eq!(write.start.unwrap().zone.name, "W. Europe Standard Time");
        assert_eq!(write.transaction_id.as_deref(), Some("t-1"));
        assert_eq!(write.extended.unwrap().len(), 1);
    }

    #[test]
    fn unknown_names_and_wrong_types_are_400_naming_them() {
        let cases = [
            (json!({"subjekt": "x"}), "subjekt"),
            (json!({"subject": 5}), "subject"),
            (json!({"isReminderOn": "yes"}), "isReminderOn"),
            (
                json!({"reminderMinutesBeforeStart": 1.5}),
                "reminderMinutesBeforeStart",
            ),
            (json!({"showAs": "sleeping"}), "sleeping"),
            (
                json!({"body": {"contentType": "text", "colour": "red"}}),
                "colour",
            ),
            (
                json!({"attendees": [{"emailAddress": {"address": 3}}]}),
                "attendees[0].emailAddress.address",
            ),
            (
                json!({"start": {"dateTime": "noon", "timeZone": "UTC"}}),
                "noon",
            ),
            (
                json!({"start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "Atlantis"}}),
                "Atlantis",
            ),
            (
                json!({"recurrence": {"pattern": {"type": "weekly"}}}),
                "range",
            ),
            (json!({"categories": "Blue"}), "categories"),
        ];
        for (body, needle) in cases {
            let err = parse(Some(&body)).unwrap_err();
            assert_eq!(err.status, 400, "{body}");
            let message = err.body.unwrap()["error"]["message"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(message.contains(needle), "{body}: {message}");
        }
        assert_eq!(parse(Some(&json!([1]))).unwrap_err().status, 400);
        assert_eq!(
            parse(Some(&json!({"@odata.type": "#microsoft.graph.contact"})))
                .unwrap_err()
                .status,
            400
        );
        assert!(parse(Some(&json!({"@odata.type": null, "subject": "x"}))).is_ok());
        assert_eq!(parse(None).unwrap_err().status, 400);
    }
}
