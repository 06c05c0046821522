//! Salesforce records ↔ the domain model: Contact, Event (with `IsRecurrence2` series and
//! all-day events), EventRelation and User.
//!
//! What Salesforce cannot hold is dropped on the way in and documented here: a contact's
//! second and third e-mail addresses and its home address; an event's `Tentative` free/busy
//! state (written as `Busy`); a single (non-recurring) event's time zone (Salesforce keeps
//! UTC instants; a series keeps its zone in `Recurrence2PatternTimeZone`); a series'
//! deleted and modified occurrences (separate child events in Salesforce).

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{json, Map, Value};

use crate::record::SfRecord;
use exsync_core::{
    Address, AddressKind, Attendee, AttendeeKind, Contact, Event, EventTime, ItemKind, PhoneKind,
    Recurrence, ShowAs,
};

/// The fields read for a contact (`Account.Name` gives the company).
pub const CONTACT_FIELDS: &[&str] = &[
    "Id",
    "OwnerId",
    "FirstName",
    "MiddleName",
    "LastName",
    "Email",
    "Phone",
    "MobilePhone",
    "HomePhone",
    "OtherPhone",
    "Fax",
    "AssistantPhone",
    "Title",
    "Department",
    "Birthdate",
    "Description",
    "Account.Name",
    "MailingStreet",
    "MailingCity",
    "MailingState",
    "MailingPostalCode",
    "MailingCountry",
    "OtherStreet",
    "OtherCity",
    "OtherState",
    "OtherPostalCode",
    "OtherCountry",
    "SystemModstamp",
    "LastModifiedDate",
    "Exsync_Id__c",
];

/// The fields read for an event: its times, recurrence and owner besides the text, and the
/// stamps the cursor orders by.
pub const EVENT_FIELDS: &[&str] = &[
    "Id",
    "OwnerId",
    "Subject",
    "Location",
    "Description",
    "StartDateTime",
    "EndDateTime",
    "ActivityDate",
    "DurationInMinutes",
    "IsAllDayEvent",
    "IsPrivate",
    "ShowAs",
    "IsReminderSet",
    "ReminderDateTime",
    "IsRecurrence2",
    "Recurrence2PatternText",
    "Recurrence2PatternTimeZone",
    "SystemModstamp",
    "LastModifiedDate",
    "Exsync_Id__c",
];

const PHONES: &[(PhoneKind, &str)] = &[
    (PhoneKind::Business, "Phone"),
    (PhoneKind::Mobile, "MobilePhone"),
    (PhoneKind::Home, "HomePhone"),
    (PhoneKind::Other, "OtherPhone"),
    (PhoneKind::BusinessFax, "Fax"),
    (PhoneKind::Assistant, "AssistantPhone"),
];

/// Each address kind with its street, city, state, postal code and country fields.
const ADDRESSES: &[(AddressKind, [&str; 5])] = &[
    (
        AddressKind::Business,
        [
            "MailingStreet",
            "MailingCity",
            "MailingState",
            "MailingPostalCode",
            "MailingCountry",
        ],
    ),
    (
        AddressKind::Other,
        [
            "OtherStreet",
            "OtherCity",
            "OtherState",
            "OtherPostalCode",
            "OtherCountry",
        ],
    ),
];

fn text(record: &impl SfRecord, field: &str) -> String {
    record.str_field(field).unwrap_or_default().to_owned()
}

fn opt_text(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::String(s.to_owned())
    }
}

/// Parses Salesforce datetime text (`2024-05-01T10:00:00.000+0000`).
pub fn parse_sf_datetime(s: &str) -> Option<DateTime<Utc>> {
    parse_rest_datetime(s).or_else(|| {
        DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
            .or_else(|_| DateTime::parse_from_rfc3339(s))
            .ok()
            .map(|t| t.with_timezone(&Utc))
    })
}

/// The one form the REST API writes, `2024-05-01T10:00:00.000+0000`, read by position: a
/// first sync reads one for every record, and a format string cost about 1% of its CPU.
/// Anything else (another form, a leap second) is left to the general parser.
fn parse_rest_datetime(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    let shaped = b.len() == 28
        && [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
        ]
        .iter()
        .all(|&(at, c)| b[at] == c);
    let sign = match b.get(23) {
        Some(b'+') if shaped => 1,
        Some(b'-') if shaped => -1,
        _ => return None,
    };
    let num = |from: usize, to: usize| -> Option<u32> {
        b.get(from..to)?.iter().try_fold(0u32, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let date = NaiveDate::from_ymd_opt(i32::try_from(num(0, 4)?).ok()?, num(5, 7)?, num(8, 10)?)?;
    let time = chrono::NaiveTime::from_hms_milli_opt(
        num(11, 13)?,
        num(14, 16)?,
        num(17, 19)?,
        num(20, 23)?,
    )?;
    let offset = i64::from(num(24, 26)? * 60 + num(26, 28)?) * 60 * sign;
    Some(date.and_time(time).and_utc() - Duration::seconds(offset))
}

/// Formats an instant for a Salesforce field or SOQL literal.
pub fn format_sf_datetime(t: DateTime<Utc>) -> String {
    use chrono::Timelike;
    // The documented SOQL form has whole seconds, which is all Salesforce stores.
    if t.nanosecond() == 0 {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }
}

/// A contact read from Salesforce. Every Salesforce contact maps (there is nothing to refuse),
/// so this cannot fail.
pub fn contact_from_sobject(record: &impl SfRecord) -> Contact {
    read_contact(record).0
}

/// [`contact_from_sobject`], with what had to be cut or left out for the contact to fit
/// Exchange (see [`Contact::sanitize`]): the record syncs, and the admin learns why it
/// differs from the CRM.
pub fn read_contact(record: &impl SfRecord) -> (Contact, Vec<String>) {
    let mut contact = read_contact_as_typed(record);
    let notes = contact.sanitize();
    (contact, notes)
}

/// A contact as Salesforce holds it, before it is made to fit (see [`Contact::sanitize`]):
/// for a caller that sanitises it once on its way to fields
/// (`exsync_core::Record::into_noted_fields`).
pub fn read_contact_as_typed(record: &impl SfRecord) -> Contact {
    let mut contact = Contact {
        first_name: text(record, "FirstName"),
        middle_name: text(record, "MiddleName"),
        last_name: text(record, "LastName"),
        title: text(record, "Title"),
        department: text(record, "Department"),
        notes: text(record, "Description"),
        company: record
            .record("Account")
            .map(|a| text(a, "Name"))
            .unwrap_or_default(),
        birthday: record
            .str_field("Birthdate")
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
        ..Contact::default()
    };
    let email = text(record, "Email");
    if !email.is_empty() {
        contact.emails.push(email);
    }
    for (kind, field) in PHONES {
        let number = text(record, field);
        if !number.is_empty() {
            contact.phones.insert(*kind, number);
        }
    }
    for (kind, [street, city, state, postal_code, country]) in ADDRESSES {
        let address = Address {
            street: text(record, street),
            city: text(record, city),
            state: text(record, state),
            postal_code: text(record, postal_code),
            country: text(record, country),
        };
        if !address.is_empty() {
            contact.addresses.insert(*kind, address);
        }
    }
    contact
}

/// The Salesforce fields of a contact, with nulls for what it lacks so an update clears them.
/// The company is not here: it becomes an `AccountId` once the account is resolved.
pub fn contact_to_sobject(contact: &Contact) -> Map<String, Value> {
    let mut c = contact.clone();
    c.normalize();
    let mut out = Map::new();
    out.insert("FirstName".into(), opt_text(&c.first_name));
    out.insert("MiddleName".into(), opt_text(&c.middle_name));
    out.insert("LastName".into(), opt_text(&c.last_name));
    out.insert(
        "Email".into(),
        c.emails
            .first()
            .map_or(Value::Null, |e| Value::String(e.clone())),
    );
    for (kind, field) in PHONES {
        out.insert(
            (*field).into(),
            c.phones
                .get(kind)
                .map_or(Value::Null, |n| Value::String(n.clone())),
        );
    }
    out.insert("Title".into(), opt_text(&c.title));
    out.insert("Department".into(), opt_text(&c.department));
    out.insert("Description".into(), opt_text(&c.notes));
    out.insert(
        "Birthdate".into(),
        c.birthday
            .map_or(Value::Null, |d| json!(d.format("%Y-%m-%d").to_string())),
    );
    for (kind, fields) in ADDRESSES {
        let address = c.addresses.get(kind).cloned().unwrap_or_default();
        let parts = [
            &address.street,
            &address.city,
            &address.state,
            &address.postal_code,
            &address.country,
        ];
        for (field, part) in fields.iter().zip(parts) {
            out.insert((*field).to_owned(), opt_text(part));
        }
    }
    out
}

fn show_as_from(s: &str) -> ShowAs {
    match s {
        "Free" => ShowAs::Free,
        "OutOfOffice" => ShowAs::OutOfOffice,
        "WorkingElsewhere" => ShowAs::WorkingElsewhere,
        _ => ShowAs::Busy,
    }
}

fn show_as_to(s: ShowAs) -> &'static str {
    match s {
        ShowAs::Free => "Free",
        ShowAs::OutOfOffice => "OutOfOffice",
        ShowAs::WorkingElsewhere => "WorkingElsewhere",
        ShowAs::Busy | ShowAs::Tentative => "Busy",
    }
}

/// An event read from Salesforce, with the attendees resolved from its EventRelations.
/// Errors carry the reason the record cannot be an event (it becomes an `Invalid` change).
pub fn event_from_sobject(
    record: &impl SfRecord,
    attendees: Vec<Attendee>,
) -> Result<Event, String> {
    read_event(record, attendees).map(|(event, _)| event)
}

/// [`event_from_sobject`], with what had to be cut or left out for the event to fit Exchange
/// (see [`Event::sanitize`]).
pub fn read_event(
    record: &impl SfRecord,
    attendees: Vec<Attendee>,
) -> Result<(Event, Vec<String>), String> {
    let mut event = read_event_as_typed(record, attendees)?;
    let notes = event.sanitize();
    Ok((event, notes))
}

/// An event as Salesforce holds it, before it is made to fit (see [`Event::sanitize`]): for a
/// caller that sanitises it once on its way to fields (`exsync_core::Record::into_noted_fields`).
pub fn read_event_as_typed(
    record: &impl SfRecord,
    attendees: Vec<Attendee>,
) -> Result<Event, String> {
    let all_day = record.bool_field("IsAllDayEvent").unwrap_or(false);
    let tz_name = text(record, "Recurrence2PatternTimeZone");
    let (start, end, first_day) = if all_day {
        let day = record
            .str_field("ActivityDate")
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .ok_or("an all-day event without a valid ActivityDate")?;
        let minutes = record.i64_field("DurationInMinutes").unwrap_or(1440);
        let days = (minutes.saturating_add(1439) / 1440).max(1);
        let end = u64::try_from(days)
            .ok()
            .and_then(|d| day.checked_add_days(chrono::Days::new(d)))
            .ok_or("an all-day event whose DurationInMinutes is out of range")?;
        (EventTime::Date(day), EventTime::Date(end), day)
    } else {
        let start = record
            .str_field("StartDateTime")
            .and_then(parse_sf_datetime)
            .ok_or("an event without a valid StartDateTime")?;
        let end = match record.str_field("EndDateTime").and_then(parse_sf_datetime) {
            Some(end) => end,
            None => {
                let minutes = record
                    .i64_field("DurationInMinutes")
                    .ok_or("an event with neither EndDateTime nor DurationInMinutes")?;
                Duration::try_minutes(minutes)
                    .and_then(|d| start.checked_add_signed(d))
                    .ok_or("an event whose DurationInMinutes is out of range")?
            }
        };
        let first_day = match tz_name.parse::<chrono_tz::Tz>() {
            Ok(tz) => start.with_timezone(&tz).date_naive(),
            Err(_) => start.date_naive(),
        };
        (EventTime::At(start), EventTime::At(end), first_day)
    };
    let mut event = Event::new(&text(record, "Subject"), start, end);
    event.location = text(record, "Location");
    event.body = text(record, "Description");
    event.private = record.bool_field("IsPrivate").unwrap_or(false);
    event.show_as = show_as_from(&text(record, "ShowAs"));
    if record.bool_field("IsReminderSet") == Some(true) {
        if let Some(reminder) = record
            .str_field("ReminderDateTime")
            .and_then(parse_sf_datetime)
        {
            let minutes = (event.start.approx_instant() - reminder).num_minutes();
            if minutes >= 0 {
                event.reminder_minutes = u32::try_from(minutes).ok();
            }
        }
    }
    if record.bool_field("IsRecurrence2") == Some(true) {
        let rule = text(record, "Recurrence2PatternText");
        let recurrence = Recurrence::from_rrule(&rule, first_day)
            .map_err(|e| format!("recurrence {:?}: {}", e.rule, e.reason))?;
        event.recurrence = Some(recurrence);
        if !all_day {
            event.time_zone = tz_name;
        }
    }
    event.attendees = attendees;
    Ok(event)
}

/// The Salesforce fields of an event. Errors are reasons it cannot be written.
pub fn event_to_sobject(event: &Event) -> Result<Map<String, Value>, String> {
    let mut e = event.clone();
    e.normalize();
    let problems = e.problems();
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let mut out = Map::new();
    out.insert("Subject".into(), opt_text(&e.subject));
    out.insert("Location".into(), opt_text(&e.location));
    out.insert("Description".into(), opt_text(&e.body));
    out.insert("IsPrivate".into(), json!(e.private));
    out.insert("ShowAs".into(), json!(show_as_to(e.show_as)));
    match (e.start, e.end) {
        (EventTime::Date(start), EventTime::Date(end)) => {
            let days = (end - start).num_days().max(1);
            out.insert("IsAllDayEvent".into(), json!(true));
            out.insert(
                "ActivityDate".into(),
                json!(start.format("%Y-%m-%d").to_string()),
            );
            out.insert("DurationInMinutes".into(), json!(days * 1440));
        }
        (EventTime::At(start), EventTime::At(end)) => {
            out.insert("IsAllDayEvent".into(), json!(false));
            out.insert("StartDateTime".into(), json!(format_sf_datetime(start)));
            out.insert("EndDateTime".into(), json!(format_sf_datetime(end)));
        }
        _ => return Err("start and end must both be dates or both be times".into()),
    }
    match e.reminder_minutes {
        Some(minutes) => {
            out.insert("IsReminderSet".into(), json!(true));
            let at = e.start.approx_instant() - Duration::minutes(i64::from(minutes));
            out.insert("ReminderDateTime".into(), json!(format_sf_datetime(at)));
        }
        None => {
            out.insert("IsReminderSet".into(), json!(false));
            out.insert("ReminderDateTime".into(), Value::Null);
        }
    }
    match &e.recurrence {
        Some(recurrence) => {
            out.insert("IsRecurrence2".into(), json!(true));
            out.insert(
                "Recurrence2PatternText".into(),
                json!(format!("RRULE:{}", recurrence.to_rrule())),
            );
            out.insert("Recurrence2PatternTimeZone".into(), opt_text(&e.time_zone));
        }
        None => {
            out.insert("IsRecurrence2".into(), json!(false));
            out.insert("Recurrence2PatternText".into(), Value::Null);
            out.insert("Recurrence2PatternTimeZone".into(), Value::Null);
        }
    }
    Ok(out)
}

/// An invitee link between an event and a contact, lead or user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRelation {
    /// The EventRelation record's own id.
    pub id: String,
    /// The event the invitee belongs to.
    pub event_id: String,
    /// The contact, lead or user invited.
    pub relation_id: String,
    /// The invitee's e-mail address, from the related record; empty when it has none.
    pub email: String,
    /// The invitee's name, from the related record.
    pub name: String,
    /// The invitee's response as Salesforce records it (`New`, `Accepted`, `Declined`).
    pub status: String,
}

/// The fields read for an invitee link, the related record's address and name included.
pub const EVENT_RELATION_FIELDS: &[&str] = &[
    "Id",
    "EventId",
    "RelationId",
    "Relation.Email",
    "Relation.Name",
    "Status",
    "IsInvitee",
];

/// An invitee link read from a query row; missing fields read as empty text.
pub fn event_relation_from_sobject(record: &impl SfRecord) -> EventRelation {
    let relation = |field| {
        record
            .record("Relation")
            .map(|r| text(r, field))
            .unwrap_or_default()
    };
    EventRelation {
        id: text(record, "Id"),
        event_id: text(record, "EventId"),
        relation_id: text(record, "RelationId"),
        email: relation("Email"),
        name: relation("Name"),
        status: text(record, "Status"),
    }
}

impl EventRelation {
    /// The domain attendee for this link, or `None` when the related record has no e-mail address
    /// and so cannot be invited in Exchange.
    pub fn attendee(&self) -> Option<Attendee> {
        if self.email.is_empty() {
            return None;
        }
        Some(Attendee {
            email: self.email.clone(),
            name: self.name.clone(),
            kind: AttendeeKind::Required,
        })
    }
}

/// A Salesforce user: who may be synced, and the profile that assigns a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfUser {
    /// The user's record id, which `OwnerId` on contacts and events refers to.
    pub id: String,
    /// The Salesforce login name: in e-mail form, but not necessarily a mailbox that exists.
    pub username: String,
    /// The user's e-mail address, lower-cased.
    pub email: String,
    /// The value of the pairing rule's field (`Email` unless configured otherwise),
    /// lower-cased: the address of the user's mailbox, checked before it is used as one.
    pub mailbox: String,
    /// Full name, for the console and reports.
    pub name: String,
    /// Whether the user may log in; inactive users are not synced.
    pub active: bool,
    /// The user's profile name, which configurations assign by (their `groups`).
    pub profile: String,
    /// The user's `TimeZoneSidKey` (an IANA name such as `Europe/Berlin`): the zone whose
    /// midnights bound their all-day events in Outlook. Empty when the org did not say.
    pub time_zone: String,
}

/// The fields read for a user.
pub const USER_FIELDS: &[&str] = &[
    "Id",
    "Username",
    "Email",
    "Name",
    "IsActive",
    "Profile.Name",
    "TimeZoneSidKey",
];

/// A user read from a query row, their mailbox address from `mailbox_field`; missing fields
/// read as empty text, a missing `IsActive` as inactive.
pub fn user_from_sobject(record: &impl SfRecord, mailbox_field: &str) -> SfUser {
    SfUser {
        id: text(record, "Id"),
        username: text(record, "Username"),
        email: text(record, "Email").to_lowercase(),
        mailbox: text(record, mailbox_field).trim().to_lowercase(),
        name: text(record, "Name"),
        active: record.bool_field("IsActive").unwrap_or(false),
        profile: record
            .record("Profile")
            .map(|p| text(p, "Name"))
            .unwrap_or_default(),
        time_zone: text(record, "TimeZoneSidKey").trim().to_owned(),
    }
}

/// The Salesforce fields that hold a domain field, so an update writes only what changed and
/// leaves the rest of the record (fields exsync does not sync) as it is. Event times travel
/// together: start, end, all-day, recurrence and the reminder (set relative to the start).
pub fn sobject_fields(kind: ItemKind, domain_field: &str) -> Vec<String> {
    let fixed = |names: &[&str]| {
        names
            .iter()
            .map(|n| (*n).to_owned())
            .collect::<Vec<String>>()
    };
    match (kind, domain_field) {
        (ItemKind::Contact, "first_name") => fixed(&["FirstName"]),
        (ItemKind::Contact, "middle_name") => fixed(&["MiddleName"]),
        (ItemKind::Contact, "last_name") => fixed(&["LastName"]),
        (ItemKind::Contact, "emails") => fixed(&["Email"]),
        (ItemKind::Contact, "phones") => PHONES.iter().map(|(_, f)| (*f).to_owned()).collect(),
        (ItemKind::Contact, "company") => fixed(&["AccountId"]),
        (ItemKind::Contact, "title") => fixed(&["Title"]),
        (ItemKind::Contact, "department") => fixed(&["Department"]),
        (ItemKind::Contact, "notes") => fixed(&["Description"]),
        (ItemKind::Contact, "birthday") => fixed(&["Birthdate"]),
        (ItemKind::Contact, "addresses") => ADDRESSES
            .iter()
            .flat_map(|(_, fields)| fields.map(str::to_owned))
            .collect(),
        (ItemKind::Event, "subject") => fixed(&["Subject"]),
        (ItemKind::Event, "location") => fixed(&["Location"]),
        (ItemKind::Event, "body") => fixed(&["Description"]),
        (ItemKind::Event, "private") => fixed(&["IsPrivate"]),
        (ItemKind::Event, "show_as") => fixed(&["ShowAs"]),
        (ItemKind::Event, "reminder_minutes") => fixed(&["IsReminderSet", "ReminderDateTime"]),
        (ItemKind::Event, "start" | "end" | "time_zone" | "recurrence") => fixed(&[
            "IsAllDayEvent",
            "ActivityDate",
            "DurationInMinutes",
            "StartDateTime",
            "EndDateTime",
            "IsRecurrence2",
            "Recurrence2PatternText",
            "Recurrence2PatternTimeZone",
            "IsReminderSet",
            "ReminderDateTime",
        ]),
        // Attendees are EventRelation records, written separately; the organizer is the owner.
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_rest_form_is_read_by_position_as_the_general_parser_reads_it() {
        let general = |s: &str| {
            DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
                .ok()
                .map(|t| t.with_timezone(&Utc))
        };
        for s in [
            "2024-05-01T10:00:00.000+0000",
            "2024-12-31T23:59:59.999+0000",
            "2024-02-29T00:00:00.000-0800",
            "2023-06-15T08:30:15.250+0530",
            "1999-01-01T00:00:00.001-1200",
        ] {
            assert_eq!(parse_rest_datetime(s), general(s), "{s}");
            assert!(parse_rest_datetime(s).is_some(), "{s}");
        }
        // Not the REST form, or not a time: the general parser decides.
        for s in [
            "2023-02-29T00:00:00.000+0000",
            "2024-05-01T24:00:00.000+0000",
            "2024-05-01T10:00:60.000+0000",
            "2024-05-01T10:00:00.000Z",
            "2024-05-01T10:00:00+00:00",
            "2024-05-01T10:0a:00.000+0000",
            "2024-05-01 10:00:00.000+0000",
            "+024-05-01T10:00:00.000+0000",
            "",
        ] {
            assert_eq!(parse_rest_datetime(s), None, "{s}");
        }
        assert_eq!(
            parse_sf_datetime("2024-05-01T10:00:00Z"),
            general("2024-05-01T10:00:00.000+0000")
        );
    }

    #[test]
    fn an_unmappable_series_is_refused_with_the_reason() {
        let record = json!({
            "StartDateTime": "2024-05-01T10:00:00.000+0000", "EndDateTime": "2024-05-01T11:00:00.000+0000",
            "IsRecurrence2": true, "Recurrence2PatternText": "RRULE:FREQ=HOURLY;INTERVAL=2",
        });
        let err = event_from_sobject(&record, vec![]).unwrap_err();
        assert!(err.contains("recurrence"), "{err}");
        assert!(event_from_sobject(&json!({"Subject": "x"}), vec![])
            .unwrap_err()
            .contains("StartDateTime"));
    }

    #[test]
    fn all_day_events_use_activity_date_and_whole_days() {
        let record = json!({"IsAllDayEvent": true, "ActivityDate": "2024-05-01", "DurationInMinutes": 2880, "Subject": "Off"});
        let event = event_from_sobject(&record, vec![]).unwrap();
        assert_eq!(
            event.start,
            EventTime::Date(NaiveDate::from_ymd_opt(2024, 5, 1).unwrap())
        );
        assert_eq!(
            event.end,
            EventTime::Date(NaiveDate::from_ymd_opt(2024, 5, 3).unwrap())
        );
        let back = event_to_sobject(&event).unwrap();
        assert_eq!(back["DurationInMinutes"], 2880);
    }

    #[test]
    fn a_hostile_contact_maps_cut_to_fit_with_the_reasons() {
        let record = json!({
            "FirstName": "N".repeat(1 << 20),
            "LastName": "Hostile\u{0}",
            "Email": "not an address@customer.test",
            "Description": "one\u{7}\r\ntwo",
        });
        let (contact, notes) = read_contact(&record);
        assert_eq!(contact.first_name.len(), exsync_core::MAX_LINE);
        assert_eq!(contact.last_name, "Hostile");
        assert!(contact.emails.is_empty());
        assert_eq!(contact.notes, "one\ntwo");
        assert_eq!(notes.len(), 4, "{notes:?}");
        assert!(
            notes[0].starts_with("first_name: 1048576 characters"),
            "{notes:?}"
        );
        assert!(
            notes[2].starts_with("emails: \"not an address@customer.test\""),
            "{notes:?}"
        );
        // The plain mapping reads the same record, and what goes back to the CRM is what fits.
        assert_eq!(contact_from_sobject(&record), contact);
        assert_eq!(
            contact_to_sobject(&contact)["FirstName"]
                .as_str()
                .map(str::len),
            Some(255)
        );
    }

    #[test]
    fn a_hostile_event_maps_cut_to_fit_with_the_reasons() {
        let record = json!({
            "Subject": format!("Review{}", "!".repeat(300)),
            "StartDateTime": "2024-05-01T10:00:00.000+0000",
            "EndDateTime": "2024-05-01T11:00:00.000+0000",
        });
        let invitee = |email: &str| Attendee {
            email: email.into(),
            name: String::new(),
            kind: AttendeeKind::Required,
        };
        let (event, notes) = read_event(
            &record,
            vec![
                invitee("ok@customer.test"),
                invitee("x@evil.test#.customer.test"),
            ],
        )
        .unwrap();
        assert_eq!(event.subject.chars().count(), exsync_core::MAX_LINE);
        assert_eq!(event.attendees, vec![invitee("ok@customer.test")]);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[1].starts_with("attendees: \"x@evil.test#.customer.test\""),
            "{notes:?}"
        );
        assert_eq!(
            event_from_sobject(&record, vec![]).unwrap().subject,
            event.subject
        );
    }
}
