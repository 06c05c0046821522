//! The configuration model: what `exsync.toml` describes, once read and checked.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::{field_names, Fields, ItemKind, UserKey};
use crate::plan::Change;

/// Which way records of one kind flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Nothing of this kind syncs; the planner returns no operations.
    Off,
    /// The CRM is the source: Exchange mirrors it, and edits or deletes made in Exchange are
    /// undone.
    CrmToExchange,
    /// Exchange is the source: the CRM mirrors it, and edits or deletes made in the CRM are undone.
    ExchangeToCrm,
    /// Changes flow both ways, merged field by field.
    Both,
}

impl Direction {
    /// Whether changes made on `from` are carried to the other side.
    pub fn flows_from(self, from: crate::model::Side) -> bool {
        use crate::model::Side;
        matches!(
            (self, from),
            (Direction::Both, _)
                | (Direction::CrmToExchange, Side::Crm)
                | (Direction::ExchangeToCrm, Side::Exchange)
        )
    }
}

/// How a field changed differently on both sides is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// The CRM's value is kept and written to Exchange.
    CrmWins,
    /// Exchange's value is kept and written to the CRM.
    ExchangeWins,
    /// The side whose record was modified last; the CRM on a tie or when a time is unknown.
    NewestWins,
}

/// How a first link settles the fields two records hold differently: the two records were
/// never synced, so there is no last-synced state to tell which side changed a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FirstLink {
    /// From the record modified more recently (a mailbox Lightning Sync filled, then edited in
    /// Outlook, keeps the Outlook edit); ties and unknown times fall back to the conflict
    /// policy. A field one record lacks is filled from the other.
    #[default]
    Newest,
    /// By the conflict policy, as a conflict.
    Policy,
}

/// What happens to a pair when one side deletes its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteMode {
    /// The delete is carried to the other side when the direction lets that side's changes
    /// flow; otherwise the record is recreated from the side that still has it.
    Propagate,
    /// Lightning Sync's behaviour: a deleted record is recreated from the other side.
    Recreate,
}

/// Which CRM contacts a user syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactScope {
    /// Contacts the user owns.
    Owned,
    /// Every contact the user can see.
    Visible,
}

/// Which Outlook events sync to the CRM (Lightning Sync's "all events" or "events users
/// select"). CRM events sync to Outlook either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EventSelect {
    /// Every Outlook event in the window.
    #[default]
    All,
    /// Only Outlook events carrying the configured category ([`KindRules::category`]). An
    /// event whose category is removed stops syncing: its pair is forgotten and neither copy
    /// is deleted. A copy exsync makes in Outlook of a CRM event is meant to carry the category
    /// ([`KindRules::mark_for_exchange`]) so it keeps syncing.
    Category,
}

/// The Outlook category that selects events when none is configured.
pub const DEFAULT_CATEGORY: &str = "Salesforce";

fn default_category() -> String {
    DEFAULT_CATEGORY.to_owned()
}

/// The event window, relative to the time of the pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Days before the pass an event (or the last occurrence of a series) may end and still sync;
    /// at most [`MAX_WINDOW_DAYS`](super::MAX_WINDOW_DAYS).
    pub past_days: u32,
    /// Days after the pass an event may start and still sync; at most
    /// [`MAX_WINDOW_DAYS`](super::MAX_WINDOW_DAYS).
    pub future_days: u32,
}

/// The rules the planner applies to one record kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindRules {
    /// Which way records flow.
    pub direction: Direction,
    /// Which side wins a field both sides changed differently.
    pub conflict: ConflictPolicy,
    /// How the first link of two records settles the fields they hold differently.
    #[serde(default)]
    pub first_link: FirstLink,
    /// Whether a deletion is carried over or undone.
    pub deletes: DeleteMode,
    /// Share of a user's pairs one pass may delete before the user is paused (0.0-1.0).
    pub max_delete_share: f64,
    /// The valve only trips once a pass would delete at least this many records, so a user
    /// with three contacts may still delete two.
    pub min_deletes_for_valve: usize,
    /// Domain field → CRM field name, for the fields that sync. Fields left out are neither
    /// compared nor written.
    pub fields: BTreeMap<String, String>,
    /// Events only: the window of events that sync; `None` for contacts.
    pub window: Option<Window>,
    /// Events only: whether events marked private sync.
    pub sync_private: bool,
    /// Events only: which Outlook events sync to the CRM; [`EventSelect::All`] for contacts.
    #[serde(default)]
    pub select: EventSelect,
    /// Events only: the Outlook category that selects events under [`EventSelect::Category`]
    /// (one line, at most 255 characters, compared ignoring case).
    #[serde(default = "default_category")]
    pub category: String,
}

impl KindRules {
    /// Defaults for a kind: both ways, CRM wins conflicts, deletes propagate, 50% valve, all
    /// fields under their standard Salesforce names.
    pub fn default_for(kind: ItemKind) -> KindRules {
        KindRules {
            direction: Direction::Both,
            conflict: ConflictPolicy::CrmWins,
            first_link: FirstLink::Newest,
            deletes: DeleteMode::Propagate,
            max_delete_share: 0.5,
            min_deletes_for_valve: 5,
            fields: default_field_map(kind),
            window: match kind {
                ItemKind::Contact => None,
                ItemKind::Event => Some(Window {
                    past_days: 30,
                    future_days: 365,
                }),
            },
            sync_private: false,
            select: EventSelect::All,
            category: default_category(),
        }
    }

    /// Why an Exchange record is not selected to sync under these rules, or `None` when it
    /// is: under [`EventSelect::Category`] an Outlook event must carry [`KindRules::category`]
    /// (compared ignoring case). CRM records are never judged by this; they hold no
    /// categories.
    pub fn unselected(&self, kind: ItemKind, fields: &Fields) -> Option<String> {
        if kind != ItemKind::Event || self.select != EventSelect::Category {
            return None;
        }
        let wanted = self.category.trim().to_lowercase();
        let carries = fields
            .get("categories")
            .and_then(|v| v.as_array())
            .is_some_and(|list| {
                list.iter()
                    .filter_map(|c| c.as_str())
                    .any(|c| c.trim().to_lowercase() == wanted)
            });
        (!carries).then(|| {
            format!(
                "does not carry the Outlook category `{}`, which selects the events that sync",
                self.category
            )
        })
    }

    /// What an Exchange report means under these rules: an upsert of an event that is not
    /// selected (see [`KindRules::unselected`]) becomes [`Change::OutOfScope`], so a pair
    /// whose Outlook event lost the category is forgotten with nothing deleted, and an
    /// unpaired one is left alone. Every other report is returned as it is.
    pub fn select_exchange(&self, kind: ItemKind, change: Change) -> Change {
        match change {
            Change::Upsert(item) if self.unselected(kind, &item.fields).is_some() => {
                Change::OutOfScope { id: item.id }
            }
            other => other,
        }
    }

    /// Adds to `fields`, the record exsync writes as a new Outlook copy of a CRM event, the
    /// category that keeps it selected under [`EventSelect::Category`]; the categories it
    /// already has stay. Does nothing under [`EventSelect::All`] or for contacts.
    pub fn mark_for_exchange(&self, kind: ItemKind, fields: &mut Fields) {
        if kind != ItemKind::Event
            || self.select != EventSelect::Category
            || self.unselected(kind, fields).is_none()
        {
            return;
        }
        let mut categories: Vec<String> = fields
            .get("categories")
            .and_then(|v| v.as_array())
            .map(|list| {
                list.iter()
                    .filter_map(|c| c.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        categories.push(self.category.trim().to_owned());
        categories.sort();
        categories.dedup();
        fields.insert(
            "categories".to_owned(),
            serde_json::Value::Array(
                categories
                    .into_iter()
                    .map(serde_json::Value::String)
                    .collect(),
            ),
        );
    }

    /// The domain fields that sync under these rules, by their domain names.
    pub fn synced_fields(&self) -> BTreeSet<&str> {
        self.fields.keys().map(String::as_str).collect()
    }
}

/// Standard Salesforce field for each domain field. Composite domain fields (phones,
/// addresses, recurrence, attendees) map to the group of CRM fields the connector knows.
pub fn default_field_map(kind: ItemKind) -> BTreeMap<String, String> {
    let crm = |field: &str| -> &'static str {
        match (kind, field) {
            (ItemKind::Contact, "first_name") => "FirstName",
            (ItemKind::Contact, "middle_name") => "MiddleName",
            (ItemKind::Contact, "last_name") => "LastName",
            (ItemKind::Contact, "emails") => "Email",
            (ItemKind::Contact, "phones") => "Phone",
            (ItemKind::Contact, "company") => "Account.Name",
            (ItemKind::Contact, "title") => "Title",
            (ItemKind::Contact, "department") => "Department",
            (ItemKind::Contact, "addresses") => "MailingAddress",
            (ItemKind::Contact, "notes") => "Description",
            (ItemKind::Contact, "birthday") => "Birthdate",
            (ItemKind::Event, "subject") => "Subject",
            (ItemKind::Event, "location") => "Location",
            (ItemKind::Event, "body") => "Description",
            (ItemKind::Event, "start") => "StartDateTime",
            (ItemKind::Event, "end") => "EndDateTime",
            (ItemKind::Event, "time_zone") => "Owner.TimeZoneSidKey",
            (ItemKind::Event, "private") => "IsPrivate",
            (ItemKind::Event, "show_as") => "ShowAs",
            (ItemKind::Event, "reminder_minutes") => "ReminderDateTime",
            (ItemKind::Event, "recurrence") => "Recurrence2PatternText",
            (ItemKind::Event, "organizer") => "OwnerId",
            (ItemKind::Event, "attendees") => "EventRelation",
            _ => "",
        }
    };
    field_names(kind)
        .iter()
        .map(|f| ((*f).to_owned(), crm(f).to_owned()))
        .collect()
}

/// One named configuration: the rules for contacts and events, and who gets them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncConfiguration {
    /// The name the admin gave it, unique in the file; the console and the CLI refer to it by this
    /// name.
    pub name: String,
    /// Whether it assigns anyone; an inactive configuration is kept in the file but syncs nobody.
    pub active: bool,
    /// How contacts sync.
    pub contacts: KindRules,
    /// Which CRM contacts count as the user's.
    pub contact_scope: ContactScope,
    /// Extra SOQL condition ANDed to the contact query, as the admin wrote it.
    pub contact_condition: Option<String>,
    /// How events sync.
    pub events: KindRules,
    /// Users assigned individually (primary SMTP addresses).
    pub users: BTreeSet<UserKey>,
    /// Groups (Salesforce profile names) assigned.
    pub groups: BTreeSet<String>,
}

impl SyncConfiguration {
    /// The rules for records of `kind`.
    pub fn rules(&self, kind: ItemKind) -> &KindRules {
        match kind {
            ItemKind::Contact => &self.contacts,
            ItemKind::Event => &self.events,
        }
    }
}

/// How a user came by their configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignedBy {
    /// The user is listed in the configuration's `users`.
    Individual,
    /// One of the user's groups is listed in the configuration's `groups`.
    Group,
}

/// Picks the configuration that applies to a user: an individual assignment beats a group one
/// (Lightning Sync's rule); inactive configurations assign nobody. The configuration check
/// refuses files where a user is assigned individually twice, or one group to two
/// configurations, so at most one candidate remains at each level.
pub fn effective_configuration<'a>(
    configurations: &'a [SyncConfiguration],
    user: &UserKey,
    groups: &BTreeSet<String>,
) -> Option<(&'a SyncConfiguration, AssignedBy)> {
    let active = || configurations.iter().filter(|c| c.active);
    if let Some(config) = active().find(|c| c.users.contains(user)) {
        return Some((config, AssignedBy::Individual));
    }
    active()
        .find(|c| c.groups.iter().any(|g| groups.contains(g)))
        .map(|c| (c, AssignedBy::Group))
}
