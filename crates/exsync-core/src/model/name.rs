//! The name a record is shown by next to its id (status, the console, the API): who a contact
//! is, what an event is and when. Ids alone tell an admin nothing; the CRM and the mailbox
//! both search by name.

use super::text::clean_line;
use super::{Fields, ItemKind};

/// The most characters of a name that are kept: enough to recognise any record, and a name
/// comes from outside, so a status row must not grow with it.
pub const NAME_MAX: usize = 160;

/// The record's name for the admin, from its normalised fields: a contact's name and primary
/// address (`Ann Lee <ann@contoso.test>`), an event's subject and start
/// (`Board review (2026-12-07T09:00:00Z)`). One line, at most [`NAME_MAX`] characters (cut
/// ones end in `…`); `None` when the fields hold nothing to name it by.
pub fn record_name(kind: ItemKind, fields: &Fields) -> Option<String> {
    let text = |key: &str| {
        fields
            .get(key)
            .and_then(|v| v.as_str())
            .map(clean_line)
            .filter(|s| !s.is_empty())
    };
    let name = match kind {
        ItemKind::Contact => {
            let person = [text("first_name"), text("last_name")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            let email = fields
                .get("emails")
                .and_then(|v| v.as_array())
                .and_then(|a| a.first())
                .and_then(|v| v.as_str())
                .map(clean_line)
                .filter(|s| !s.is_empty());
            let person = if person.is_empty() {
                text("company").unwrap_or_default()
            } else {
                person
            };
            match (person.is_empty(), email) {
                (true, None) => return None,
                (true, Some(e)) => format!("<{e}>"),
                (false, None) => person,
                (false, Some(e)) => format!("{person} <{e}>"),
            }
        }
        ItemKind::Event => {
            let subject = text("subject");
            let start = fields.get("start").and_then(|v| v.as_str()).map(clean_line);
            match (subject, start) {
                (None, None) => return None,
                (Some(s), None) => s,
                (None, Some(t)) => format!("(no subject) ({t})"),
                (Some(s), Some(t)) => format!("{s} ({t})"),
            }
        }
    };
    Some(cap_name(&name))
}

/// `name` on one line and at most [`NAME_MAX`] characters, for names that come from a store
/// or any other place that may not have capped them.
pub fn cap_name(name: &str) -> String {
    let line = clean_line(name);
    if line.chars().count() <= NAME_MAX {
        return line;
    }
    let mut cut: String = line.chars().take(NAME_MAX - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(v: serde_json::Value) -> Fields {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn a_contact_is_named_by_person_and_primary_address() {
        let f = fields(json!({"first_name": "Ann", "last_name": "Lee",
            "emails": ["ann@contoso.test", "a2@contoso.test"]}));
        assert_eq!(
            record_name(ItemKind::Contact, &f).as_deref(),
            Some("Ann Lee <ann@contoso.test>")
        );
        let f = fields(json!({"last_name": "Lee"}));
        assert_eq!(record_name(ItemKind::Contact, &f).as_deref(), Some("Lee"));
        let f = fields(json!({"company": "Contoso", "emails": ["x@contoso.test"]}));
        assert_eq!(
            record_name(ItemKind::Contact, &f).as_deref(),
            Some("Contoso <x@contoso.test>")
        );
        assert_eq!(record_name(ItemKind::Contact, &fields(json!({}))), None);
    }

    #[test]
    fn an_event_is_named_by_subject_and_start() {
        let f = fields(
            json!({"subject": "Board review", "start": "2026-12-07T09:00:00Z",
            "end": "2026-12-07T10:00:00Z"}),
        );
        assert_eq!(
            record_name(ItemKind::Event, &f).as_deref(),
            Some("Board review (2026-12-07T09:00:00Z)")
        );
        let f = fields(json!({"start": "2026-12-07", "end": "2026-12-08"}));
        assert_eq!(
            record_name(ItemKind::Event, &f).as_deref(),
            Some("(no subject) (2026-12-07)")
        );
    }

    /// Names come from outside: one line whatever they hold, and cut to the cap.
    #[test]
    fn a_name_is_one_line_and_capped() {
        let f = fields(json!({"subject": format!("a\nb\u{1b}[31m{}", "x".repeat(500))}));
        let name = record_name(ItemKind::Event, &f).unwrap_or_default();
        assert!(!name.chars().any(char::is_control), "{name:?}");
        assert_eq!(name.chars().count(), NAME_MAX);
        assert!(name.starts_with("a b[31m") && name.ends_with('…'), "{name}");
    }
}
