//! What Salesforce holds of a record, for the planner (see `exsync_core::plan::Lens`): one
//! e-mail address, the mailing and other addresses (no home), no Tentative (written as Busy),
//! and a series without its deleted and modified occurrences.

use exsync_core::plan::Lens;
use exsync_core::{AddressKind, Contact, Event, Fields, ItemKind, Record, ShowAs};

/// The [`Lens`] of a Salesforce org: what of a contact or event Salesforce can hold, so the
/// planner does not see what it drops as an edit to undo.
#[derive(Debug, Clone, Copy, Default)]
pub struct SalesforceLens;

fn narrow_contact(mut c: Contact) -> Contact {
    c.emails.truncate(1);
    c.addresses.remove(&AddressKind::Home);
    c
}

fn narrow_event(mut e: Event) -> Event {
    if e.show_as == ShowAs::Tentative {
        e.show_as = ShowAs::Busy;
    }
    if let Some(r) = &mut e.recurrence {
        r.deleted.clear();
        r.modified.clear();
    }
    e
}

impl Lens for SalesforceLens {
    fn narrow(&self, kind: ItemKind, fields: &Fields) -> Fields {
        match kind {
            ItemKind::Contact => {
                Contact::from_fields(fields).map(|c| narrow_contact(c).into_fields())
            }
            ItemKind::Event => Event::from_fields(fields).map(|e| narrow_event(e).into_fields()),
        }
        // Fields that are no record are left to the planner's validation.
        .unwrap_or_else(|_| fields.clone())
    }

    fn widen(&self, kind: ItemKind, narrow: &Fields, wide: &Fields) -> Fields {
        let widened = match kind {
            ItemKind::Contact => Contact::from_fields(narrow).and_then(|mut n| {
                let w = Contact::from_fields(wide)?;
                // The CRM's address first, then the ones it cannot hold.
                for email in w.emails.iter().skip(1) {
                    if !n.emails.contains(email) {
                        n.emails.push(email.clone());
                    }
                }
                if let Some(home) = w.addresses.get(&AddressKind::Home) {
                    n.addresses.insert(AddressKind::Home, home.clone());
                }
                Ok(n.into_fields())
            }),
            ItemKind::Event => Event::from_fields(narrow).and_then(|mut n| {
                let w = Event::from_fields(wide)?;
                if n.show_as == ShowAs::Busy && w.show_as == ShowAs::Tentative {
                    n.show_as = ShowAs::Tentative;
                }
                if let (Some(nr), Some(wr)) = (&mut n.recurrence, &w.recurrence) {
                    // The same series keeps the exceptions the CRM cannot hold.
                    if nr.pattern == wr.pattern
                        && nr.start_date == wr.start_date
                        && nr.end == wr.end
                    {
                        nr.deleted = wr.deleted.clone();
                        nr.modified = wr.modified.clone();
                    }
                }
                Ok(n.into_fields())
            }),
        };
        widened.unwrap_or_else(|_| narrow.clone())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeSet;

    use chrono::{NaiveDate, TimeZone, Utc};
    use exsync_core::{Address, EventTime, Occurrence, Recurrence};

    use super::*;

    fn rich_contact() -> Contact {
        let mut c = Contact {
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            emails: vec![
                "ada@work.test".into(),
                "ada@home.test".into(),
                "ada@club.test".into(),
            ],
            ..Contact::default()
        };
        c.addresses.insert(
            AddressKind::Business,
            Address {
                city: "London".into(),
                ..Address::default()
            },
        );
        c.addresses.insert(
            AddressKind::Home,
            Address {
                city: "Marylebone".into(),
                ..Address::default()
            },
        );
        c
    }

    fn rich_series() -> Event {
        let at = |d, h| EventTime::At(Utc.with_ymd_and_hms(2026, 6, d, h, 0, 0).unwrap());
        let mut e = Event::new("Weekly", at(1, 9), at(1, 10));
        e.time_zone = "Europe/London".into();
        e.show_as = ShowAs::Tentative;
        let mut r = Recurrence::from_rrule(
            "FREQ=WEEKLY;COUNT=5",
            NaiveDate::from_ymd_opt(2026, 6, 1).unwrap(),
        )
        .unwrap();
        r.deleted = BTreeSet::from([NaiveDate::from_ymd_opt(2026, 6, 8).unwrap()]);
        r.modified = vec![Occurrence {
            original_start: at(15, 9),
            start: at(15, 11),
            end: at(15, 12),
            subject: None,
            location: None,
        }];
        e.recurrence = Some(r);
        e
    }

    #[test]
    fn reading_back_what_was_written_is_no_change() {
        let lens = SalesforceLens;
        for (kind, wide) in [
            (ItemKind::Contact, rich_contact().to_fields()),
            (ItemKind::Event, rich_series().to_fields()),
        ] {
            let held = lens.narrow(kind, &wide);
            assert_ne!(held, wide, "{kind}: Salesforce holds less");
            assert_eq!(lens.widen(kind, &held, &wide), wide, "{kind}");
        }
    }

    #[test]
    fn a_crm_edit_keeps_what_the_crm_cannot_hold() {
        let lens = SalesforceLens;
        let wide = rich_contact().to_fields();
        let mut edited = Contact::from_fields(&lens.narrow(ItemKind::Contact, &wide)).unwrap();
        edited.emails = vec!["ada@new.test".into()];
        let back = Contact::from_fields(&lens.widen(ItemKind::Contact, &edited.to_fields(), &wide))
            .unwrap();
        assert_eq!(
            back.emails,
            ["ada@new.test", "ada@home.test", "ada@club.test"]
        );
        assert!(back.addresses.contains_key(&AddressKind::Home));
    }

    #[test]
    fn a_changed_series_drops_the_old_exceptions() {
        let lens = SalesforceLens;
        let wide = rich_series().to_fields();
        let mut moved = Event::from_fields(&lens.narrow(ItemKind::Event, &wide)).unwrap();
        if let Some(r) = &mut moved.recurrence {
            r.end = exsync_core::RecurrenceEnd::Count(3);
        }
        let back =
            Event::from_fields(&lens.widen(ItemKind::Event, &moved.to_fields(), &wide)).unwrap();
        let r = back.recurrence.unwrap();
        assert!(r.deleted.is_empty() && r.modified.is_empty());
    }
}
