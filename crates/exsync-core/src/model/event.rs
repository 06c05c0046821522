//! A calendar event as both sides see it.

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use super::recurrence::Recurrence;
use super::text::{clean_email, Dropped, Fit, MAX_LINE, MAX_TEXT};

/// Salesforce relates at most 50 invitees to one event.
pub const MAX_ATTENDEES: usize = 50;

/// Exchange's default limit on the recipients of one meeting.
pub const MAX_MEETING_RECIPIENTS: usize = 500;

/// Most Outlook categories kept on one event; more are cut (in sorted order) when normalising.
const MAX_CATEGORIES: usize = 50;

/// A calendar event in the form both sides are mapped to and compared in. Each connector fills
/// what its side has; [`Event::normalize`] makes two copies of the same meeting compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Title; one line, cut to 255 characters. With `start` and `end` it is the first-sync match
    /// key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
    /// Where it takes place, as free text; one line, cut to 255 characters.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub location: String,
    /// Description; line endings normalised, cut to 32,000 characters.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub body: String,
    /// When it begins; a date for an all-day event, otherwise an instant (whole seconds).
    pub start: EventTime,
    /// When it ends; the same variant as `start` and not before it (see [`Event::problems`]).
    pub end: EventTime,
    /// IANA zone a series was scheduled in (e.g. `Europe/Berlin`), which its occurrences follow
    /// across daylight saving; empty for single and all-day events once normalised.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub time_zone: String,
    /// Marked private by its owner; such events sync only when the rules set `sync_private`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub private: bool,
    /// How the time shows in the owner's free/busy; busy when a side does not say.
    #[serde(default, skip_serializing_if = "ShowAs::is_default")]
    pub show_as: ShowAs,
    /// Minutes before `start` the owner is reminded; `None` for no reminder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminder_minutes: Option<u32>,
    /// The series rule when this is the master of a recurring series; `None` for a single event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<Recurrence>,
    /// Who sent the invitation, when the side knows; never also listed among `attendees`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizer: Option<Attendee>,
    /// Invitees, one per address, sorted; Salesforce relates at most [`MAX_ATTENDEES`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attendees: Vec<Attendee>,
    /// Outlook categories (EWS `item:Categories`): each one line, cut to 255 characters, blank
    /// ones dropped, sorted, one of each, at most 50. Exchange only: no CRM
    /// field holds them, so they are not in the field map and never sync to the CRM; a
    /// configuration that selects events by category reads them (see
    /// `exsync_core::plan::unselected`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A point in time, or a whole day for all-day events (the end day is exclusive, as in EWS
/// and iCalendar).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EventTime {
    /// An all-day time: the day itself, in no time zone.
    Date(NaiveDate),
    /// An exact instant.
    At(DateTime<Utc>),
}

impl EventTime {
    /// Whether this is an all-day date rather than an instant.
    pub fn is_date(&self) -> bool {
        matches!(self, EventTime::Date(_))
    }

    /// The instant this time starts at, all-day dates taken at midnight UTC. Used for window
    /// checks, where a day either way does not matter.
    pub fn approx_instant(&self) -> DateTime<Utc> {
        match self {
            EventTime::At(t) => *t,
            EventTime::Date(d) => d.and_time(chrono::NaiveTime::MIN).and_utc(),
        }
    }

    fn normalized(self) -> EventTime {
        match self {
            // Neither side stores sub-second precision, so it is never a real change.
            EventTime::At(t) => EventTime::At(t.trunc_subsecs(0)),
            date => date,
        }
    }
}

/// How an event's time shows to others looking at the owner's calendar (EWS
/// `LegacyFreeBusyStatus`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShowAs {
    /// Shown as available.
    Free,
    /// Shown as possibly busy.
    Tentative,
    /// Shown as busy; the default.
    #[default]
    Busy,
    /// Shown as away.
    OutOfOffice,
    /// Shown as working from another place.
    WorkingElsewhere,
}

impl ShowAs {
    fn is_default(&self) -> bool {
        *self == ShowAs::Busy
    }
}

/// Someone invited to an event, identified by address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attendee {
    /// The invitee's e-mail address, lower-cased and trimmed; the identity both sides match on.
    pub email: String,
    /// Display name; cleared by normalising, since each side shows the name its own directory has.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// How the invitee is asked to take part.
    #[serde(default, skip_serializing_if = "AttendeeKind::is_default")]
    pub kind: AttendeeKind,
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
/// How an invitee is asked to take part in an event.
#[serde(rename_all = "snake_case")]
pub enum AttendeeKind {
    /// Must attend; the default.
    #[default]
    Required,
    /// May attend.
    Optional,
    /// A room or equipment booked for the event.
    Resource,
}

impl AttendeeKind {
    fn is_default(&self) -> bool {
        *self == AttendeeKind::Required
    }
}

impl Attendee {
    fn normalize(&mut self) {
        self.email = clean_email(&self.email);
        // Each system shows the name its own directory has for the address (the CRM fills it
        // in from the related contact), so the address is what identifies an attendee.
        self.name.clear();
    }
}

impl Event {
    /// An event with the given subject and times and nothing else set.
    pub fn new(subject: &str, start: EventTime, end: EventTime) -> Event {
        Event {
            subject: subject.to_owned(),
            location: String::new(),
            body: String::new(),
            start,
            end,
            time_zone: String::new(),
            private: false,
            show_as: ShowAs::Busy,
            reminder_minutes: None,
            recurrence: None,
            organizer: None,
            attendees: Vec::new(),
            categories: Vec::new(),
        }
    }

    /// Whether the event carries the Outlook category `name`; categories compare as Outlook
    /// does, ignoring case and surrounding spaces.
    pub fn has_category(&self, name: &str) -> bool {
        let name = name.trim();
        self.categories
            .iter()
            .any(|c| c.trim().to_lowercase() == name.to_lowercase())
    }

    /// Whether the event takes whole days (its `start` is a date).
    pub fn is_all_day(&self) -> bool {
        self.start.is_date()
    }

    /// Puts the event in the one form both sides are compared in.
    pub fn normalize(&mut self) {
        self.sanitize();
    }

    /// [`Event::normalize`], returning what had to go for the event to fit Exchange: control
    /// characters, text beyond a field's limit, invitees whose address is no e-mail address.
    /// Formatting (spaces, line endings, case, order of invitees) is never reported.
    pub fn sanitize(&mut self) -> Vec<String> {
        let mut fit = Fit::default();
        fit.line_in_place("subject", &mut self.subject, MAX_LINE);
        fit.line_in_place("location", &mut self.location, MAX_LINE);
        fit.multiline_in_place("body", &mut self.body, MAX_TEXT);
        self.start = self.start.normalized();
        self.end = self.end.normalized();
        self.time_zone = self.time_zone.trim().to_owned();
        // Start and end are instants, so the zone of a single event is display only, and the
        // two systems disagree about it (the CRM keeps none, Exchange answers `Etc/UTC`). It
        // matters only to a series, whose occurrences follow its zone's daylight saving.
        if self.is_all_day() || self.recurrence.is_none() {
            self.time_zone.clear();
        }
        let mut dropped = Dropped::default();
        if let Some(organizer) = &mut self.organizer {
            organizer.normalize();
        }
        if self
            .organizer
            .as_ref()
            .is_some_and(|o| !dropped.admits(&o.email))
        {
            self.organizer = None;
        }
        dropped.note("organizer", &mut fit.notes);
        let mut dropped = Dropped::default();
        for attendee in &mut self.attendees {
            attendee.normalize();
        }
        self.attendees
            .retain(|a| !a.email.is_empty() && dropped.admits(&a.email));
        dropped.note("attendees", &mut fit.notes);
        // Order carries no meaning on either side; one attendee per address.
        self.attendees.sort();
        self.attendees.dedup_by(|a, b| a.email == b.email);
        if let Some(organizer) = &self.organizer {
            let organizer = organizer.email.clone();
            self.attendees.retain(|a| a.email != organizer);
        }
        if let Some(recurrence) = &mut self.recurrence {
            recurrence.normalize();
        }
        let mut categories: Vec<String> = self
            .categories
            .iter()
            .map(|c| fit.line("categories", c, MAX_LINE))
            .filter(|c| !c.is_empty())
            .collect();
        categories.sort();
        categories.dedup();
        if categories.len() > MAX_CATEGORIES {
            fit.notes.push(format!(
                "categories: {} categories, cut to the first {MAX_CATEGORIES}",
                categories.len()
            ));
            categories.truncate(MAX_CATEGORIES);
        }
        self.categories = categories;
        fit.notes
    }

    /// Problems that stop this event from being written anywhere.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.start.is_date() != self.end.is_date() {
            problems.push("start and end must both be dates (all-day) or both be times".into());
        } else if self.end < self.start {
            problems.push("end is before start".into());
        } else if self.is_all_day() && self.end == self.start {
            problems.push("an all-day event must end at least one day after it starts".into());
        }
        if !self.time_zone.is_empty() && self.time_zone.parse::<chrono_tz::Tz>().is_err() {
            problems.push(format!("unknown time zone {:?}", self.time_zone));
        }
        if self.attendees.len() > MAX_MEETING_RECIPIENTS {
            problems.push(format!(
                "{} attendees, more than the {MAX_MEETING_RECIPIENTS} Exchange takes in one meeting (and the {MAX_ATTENDEES} a CRM event can relate)",
                self.attendees.len()
            ));
        } else if self.attendees.len() > MAX_ATTENDEES {
            problems.push(format!(
                "{} attendees, more than the {MAX_ATTENDEES} a CRM event can relate",
                self.attendees.len()
            ));
        }
        if let Some(recurrence) = &self.recurrence {
            problems.extend(recurrence.problems());
        }
        problems
    }
}
