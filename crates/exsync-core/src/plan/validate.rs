//! Checks on a record before it is written to a side: what no side accepts, and what one side
//! refuses (Salesforce requires a contact's last name, for example).

use crate::model::{Contact, Event, Fields, ItemKind, Record, Side};

/// Why `fields` cannot be written to `side`, or an empty list.
pub(super) fn problems(kind: ItemKind, fields: &Fields, side: Side) -> Vec<String> {
    match kind {
        ItemKind::Contact => match Contact::from_fields(fields) {
            Err(e) => vec![e.to_string()],
            Ok(contact) => {
                let mut problems = Record::problems(&contact);
                if side == Side::Crm && contact.last_name.is_empty() {
                    problems.push("the CRM requires a contact's last name".into());
                }
                problems
            }
        },
        ItemKind::Event => match Event::from_fields(fields) {
            Err(e) => vec![e.to_string()],
            Ok(event) => {
                let mut problems = Record::problems(&event);
                if side == Side::Crm && event.subject.chars().count() > 255 {
                    problems.push("the CRM limits an event subject to 255 characters".into());
                }
                problems
            }
        },
    }
}
