//! Records for the lab: contacts and events on both sides, with the variety a real org has
//! (recurring series, all-day, private, several time zones) and, on request, one record the CRM
//! cannot take.

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use exsync_core::{
    Address, AddressKind, Attendee, AttendeeKind, Contact, Event, EventTime, ItemKind, PhoneKind,
    Recurrence, ShowAs,
};
use exsync_ews::XmlWriter;
use exsync_salesforce::NewRecord;
use serde_json::json;

use super::{Lab, LabUser};

/// How many records to create per user, on each side.
#[derive(Debug, Clone, Default)]
pub struct Seed {
    pub crm_contacts: usize,
    pub crm_events: usize,
    pub exchange_contacts: usize,
    pub exchange_events: usize,
    /// Add one Exchange contact without a last name, which the CRM refuses.
    pub invalid_record: bool,
}

impl Seed {
    /// Whether any item is made in the mailboxes. Without one, no sync folder is made either.
    fn in_mailboxes(&self) -> bool {
        self.exchange_contacts > 0 || self.exchange_events > 0 || self.invalid_record
    }
}

/// Exchange items seeded per control call: well under the simulator's 16 MiB request limit.
const EXCHANGE_SEED_BATCH: usize = 1000;

const FIRST: [&str; 8] = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John",
];
const COMPANIES: [&str; 3] = ["Analytical Engines", "Bletchley Park", "Harvard Mark I"];
const ZONES: [&str; 4] = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC"];

/// A contact as the CRM side creates it.
pub fn crm_contact(user: usize, i: usize) -> Contact {
    let mut contact = Contact {
        first_name: FIRST[i % FIRST.len()].into(),
        last_name: format!("Crm{user}x{i:04}"),
        emails: vec![format!("crm{user}.{i}@customer.test")],
        company: COMPANIES[i % COMPANIES.len()].into(),
        title: "Buyer".into(),
        department: "Procurement".into(),
        ..Contact::default()
    };
    contact
        .phones
        .insert(PhoneKind::Business, format!("+1 555 01{:04}", i % 10_000));
    if i % 3 == 0 {
        contact.addresses.insert(
            AddressKind::Business,
            Address {
                street: format!("{i} Main St"),
                city: "Springfield".into(),
                country: "USA".into(),
                ..Address::default()
            },
        );
    }
    contact
}

/// A contact the user keeps in Outlook.
/// A contact the user keeps in Outlook; every other one has a second address and a home
/// address, which Salesforce cannot hold and which must stay in Outlook.
pub fn exchange_contact(user: usize, i: usize) -> Contact {
    let mut contact = Contact {
        first_name: FIRST[(i + 3) % FIRST.len()].into(),
        last_name: format!("Box{user}x{i:04}"),
        emails: vec![format!("box{user}.{i}@partner.test")],
        company: COMPANIES[(i + 1) % COMPANIES.len()].into(),
        title: "Engineer".into(),
        ..Contact::default()
    };
    if i % 2 == 0 {
        contact.emails.push(format!("box{user}.{i}@home.test"));
        contact.addresses.insert(
            AddressKind::Home,
            Address {
                street: format!("{i} Elm St"),
                city: "Shelbyville".into(),
                ..Address::default()
            },
        );
    }
    contact
}

/// The local date and hour of an event, placed `day` days from `now`.
fn at_local(now: DateTime<Utc>, zone: &str, day: i64, hour: u32) -> Option<DateTime<Utc>> {
    let tz: chrono_tz::Tz = zone.parse().ok()?;
    let date = (now + Duration::days(day)).with_timezone(&tz).date_naive();
    tz.from_local_datetime(&date.and_hms_opt(hour, 0, 0)?)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// An event: every 10th a weekly series, every 7th all-day, every 5th private, zones rotating.
pub fn event(prefix: &str, user: usize, i: usize, now: DateTime<Utc>) -> Option<Event> {
    let day = (i % 28) as i64 + 1;
    let zone = ZONES[i % ZONES.len()];
    let mut event = if i % 7 == 3 {
        let date: NaiveDate = (now + Duration::days(day)).date_naive();
        Event::new(
            &format!("{prefix} offsite {user}.{i}"),
            EventTime::Date(date),
            EventTime::Date(date + Duration::days(1)),
        )
    } else {
        let start = at_local(now, zone, day, 9 + (i % 8) as u32)?;
        let mut e = Event::new(
            &format!("{prefix} meeting {user}.{i}"),
            EventTime::At(start),
            EventTime::At(start + Duration::minutes(45)),
        );
        e.time_zone = zone.into();
        e
    };
    event.location = format!("Room {}", i % 12);
    event.body = format!("Agenda for {prefix} meeting {i}.");
    event.private = i % 5 == 4;
    event.show_as = if i % 6 == 5 {
        ShowAs::Free
    } else {
        ShowAs::Busy
    };
    event.reminder_minutes = Some(15);
    if i % 10 == 0 && !event.is_all_day() {
        let start_date = event
            .start
            .approx_instant()
            .with_timezone(&zone.parse::<chrono_tz::Tz>().ok()?)
            .date_naive();
        event.recurrence =
            Recurrence::from_rrule("FREQ=WEEKLY;INTERVAL=1;COUNT=6", start_date).ok();
    }
    if i % 4 == 1 {
        event.attendees = vec![Attendee {
            email: format!("crm{user}.{i}@customer.test"),
            name: String::new(),
            kind: AttendeeKind::Required,
        }];
    }
    Some(event)
}

impl Lab {
    /// Creates the records of `seed` for every user.
    pub async fn seed(&self, seed: &Seed) -> Result<()> {
        let now = Utc::now();
        for (u, user) in self.users.iter().enumerate() {
            self.seed_crm(u, user, seed, now).await?;
            self.seed_exchange(u, user, seed, now).await?;
        }
        // Online users' mailboxes were moved there before exsync came: their Outlook items
        // are made on premises as everyone's, then moved.
        if seed.in_mailboxes() {
            for user in self.online_users() {
                self.copy_online(user).await?;
            }
        }
        Ok(())
    }

    async fn seed_crm(
        &self,
        u: usize,
        user: &LabUser,
        seed: &Seed,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let owner = Some(user.crm_id.as_str().to_owned());
        let contacts: Vec<NewRecord<Contact>> = (0..seed.crm_contacts)
            .map(|i| NewRecord {
                external_key: None,
                owner_id: owner.clone(),
                record: crm_contact(u, i),
            })
            .collect();
        for chunk in contacts.chunks(exsync_salesforce::COLLECTION_MAX) {
            for outcome in self.crm.create_contacts(chunk).await? {
                if let Some(e) = outcome.error {
                    bail!("seeding a CRM contact for {}: {e}", user.key);
                }
            }
        }
        let events: Vec<NewRecord<Event>> = (0..seed.crm_events)
            .filter_map(|i| event("CRM", u, i, now))
            .map(|record| NewRecord {
                external_key: None,
                owner_id: owner.clone(),
                record,
            })
            .collect();
        for chunk in events.chunks(exsync_salesforce::COLLECTION_MAX) {
            for outcome in self.crm.create_events(chunk).await? {
                if let Some(e) = outcome.error {
                    bail!("seeding a CRM event for {}: {e}", user.key);
                }
            }
        }
        Ok(())
    }

    /// Exchange records are created as the user would in Outlook: through the server, in the
    /// sync folder and calendar, without our tag.
    async fn seed_exchange(
        &self,
        u: usize,
        user: &LabUser,
        seed: &Seed,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if !seed.in_mailboxes() {
            return Ok(());
        }
        let (_, contacts) = self
            .syncer
            .exchange
            .ews()
            .folder_of(&user.key, ItemKind::Contact)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let (_, calendar) = self
            .syncer
            .exchange
            .ews()
            .folder_of(&user.key, ItemKind::Event)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut items: Vec<(String, String)> = Vec::new();
        for i in 0..seed.exchange_contacts {
            let mut w = XmlWriter::new();
            exsync_ews::write_contact(&mut w, &exchange_contact(u, i), None);
            items.push((contacts.id.clone(), w.finish()));
        }
        if seed.invalid_record {
            let nameless = Contact {
                first_name: "Cher".into(),
                emails: vec![format!("cher{u}@partner.test")],
                ..Contact::default()
            };
            let mut w = XmlWriter::new();
            exsync_ews::write_contact(&mut w, &nameless, None);
            items.push((contacts.id.clone(), w.finish()));
        }
        for i in 0..seed.exchange_events {
            if let Some(mut e) = event("Outlook", u, i + 1, now) {
                if i % 3 == 0 {
                    // Salesforce has no Tentative; Outlook keeps it.
                    e.show_as = ShowAs::Tentative;
                }
                let mut w = XmlWriter::new();
                exsync_ews::write_event(&mut w, &e, None);
                items.push((calendar.id.clone(), w.finish()));
            }
        }
        // A few calls of many items each (one commit each), not one call per item.
        for chunk in items.chunks(EXCHANGE_SEED_BATCH) {
            let batch: Vec<_> = chunk
                .iter()
                .map(|(folder, xml)| {
                    json!({ "mailbox": user.key.as_str(), "folder": folder, "xml": xml })
                })
                .collect();
            self.exchange_control(
                reqwest::Method::POST,
                "/items/batch",
                &json!({ "items": batch }),
            )
            .await
            .with_context(|| format!("seeding Exchange items for {}", user.key))?;
        }
        Ok(())
    }
}
