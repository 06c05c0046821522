//! The org-wide change cursor of one object: `SystemModstamp > watermark` with an Id
//! tie-break (records sharing a stamp are neither skipped nor read twice), deletes from
//! getDeleted, and a full reconciliation of ids once the cursor is older than the delete
//! log's window.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, Duration, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use exsync_core::plan::{Change, Item};
use exsync_core::{Contact, CrmId, Event, ExchangeId, ItemId, ItemKind, Record};

use crate::client::{Idempotency, SalesforceClient};
use crate::error::{Error, Result};
use crate::mapping::{
    event_relation_from_sobject, format_sf_datetime, parse_sf_datetime, read_contact_as_typed,
    read_event_as_typed, CONTACT_FIELDS, EVENT_FIELDS, EVENT_RELATION_FIELDS,
};
use crate::query::{page_of, quote, quote_list, PageAt};
use crate::record::SfRecord;
use crate::rows::Field;

/// getDeleted reaches back 15 days; we reconcile a little before that.
pub const DELETED_WINDOW: Duration = Duration::days(15);
const DELETED_MARGIN: Duration = Duration::hours(1);
const DELETED_OVERLAP: Duration = Duration::minutes(2);
/// Ids per IN list, keeping each query URL short.
const IN_CHUNK: usize = 200;

/// The Salesforce objects whose records sync, one per [`ItemKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncObject {
    /// The `Contact` object.
    Contact,
    /// The `Event` object; its invitees are read from `EventRelation` alongside.
    Event,
}

impl From<ItemKind> for SyncObject {
    fn from(kind: ItemKind) -> Self {
        match kind {
            ItemKind::Contact => SyncObject::Contact,
            ItemKind::Event => SyncObject::Event,
        }
    }
}

impl SyncObject {
    /// The object's API name, as SOQL and the REST paths spell it.
    pub fn name(self) -> &'static str {
        match self {
            SyncObject::Contact => "Contact",
            SyncObject::Event => "Event",
        }
    }

    pub(crate) fn fields(self) -> &'static [&'static str] {
        match self {
            SyncObject::Contact => CONTACT_FIELDS,
            SyncObject::Event => EVENT_FIELDS,
        }
    }
}

/// Where reading stopped. Commit it only after the changes it covers are processed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeCursor {
    /// SystemModstamp of the last record read.
    pub stamp: Option<DateTime<Utc>>,
    /// Id of the last record read at `stamp`.
    pub last_id: Option<String>,
    /// End of the last getDeleted window (or reconciliation).
    pub deletes_checked: Option<DateTime<Utc>>,
    /// Deletes already reported that the next, overlapping window will list again, with
    /// their deletion time.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub recent_deletes: BTreeMap<String, DateTime<Utc>>,
    /// A read from no cursor at all is under way: it lists every record there is, so what
    /// was deleted before it is simply absent, and it reads no delete log. What is deleted
    /// while it runs is in the delete log of the read after it, which starts from when this
    /// one did.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub full_read: bool,
}

/// Which records are read.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Owners whose records sync; empty means every owner.
    pub owner_ids: Vec<String>,
    /// An extra SOQL condition from the configuration.
    pub condition: Option<String>,
    /// Read changes of every owner and report records owned by others as `OutOfScope`, so
    /// a record handed to a user who does not sync is dropped from its pair. Costs reading
    /// the org's other changes too.
    pub report_out_of_scope: bool,
}

/// The most owners a query names in `OwnerId IN (…)`. An org with thousands of synced users
/// would otherwise send a query longer than a URL and than SOQL take; past this many the query
/// reads every owner's records and [`Owners`] leaves the others out.
pub const MAX_OWNERS_IN_QUERY: usize = 100;

/// The owners of a scope as a set, so that checking each record read is cheap however many
/// users sync.
enum Owners<'a> {
    Everyone,
    Only(HashSet<&'a str>),
}

impl<'a> Owners<'a> {
    fn of(scope: &'a Scope) -> Owners<'a> {
        if scope.owner_ids.is_empty() {
            Owners::Everyone
        } else {
            Owners::Only(scope.owner_ids.iter().map(String::as_str).collect())
        }
    }

    fn own(&self, owner: Option<&str>) -> bool {
        match self {
            Owners::Everyone => true,
            Owners::Only(set) => owner.is_some_and(|o| set.contains(o)),
        }
    }
}

/// Records and deletes since a cursor, before mapping.
#[derive(Debug, Clone)]
pub struct RawChanges {
    /// Records in (SystemModstamp, Id) order.
    pub records: Vec<Value>,
    /// Ids of records the delete log reports deleted since the last window.
    pub deleted: Vec<String>,
    /// Set when a full reconciliation ran: every id now in scope. A known id missing from it
    /// was deleted (or left the scope).
    pub live_ids: Option<BTreeSet<String>>,
    /// Where to continue; commit it once these changes are processed.
    pub cursor: ChangeCursor,
    /// Another page is waiting: call again with `cursor`.
    pub more: bool,
}

/// One change with the owner it belongs to, so the service can route it to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmChange {
    /// The record's `OwnerId`, by which the service routes the change to a user; `None` for a
    /// delete, whose owner the delete log does not give.
    pub owner_id: Option<String>,
    /// What happened to the record, in the planner's terms.
    pub change: Change,
    /// What had to be cut or left out of the record for it to fit Exchange (see
    /// `exsync_core::Contact::sanitize`); it syncs without it, and the admin is told.
    pub notes: Vec<String>,
}

/// One page of changes of an object, mapped to the planner's input, with the cursor to store once
/// it is processed.
#[derive(Debug, Clone)]
pub struct ChangeBatch {
    /// Upserts, out-of-scope and invalid records in stamp order, then the deletes.
    pub changes: Vec<CrmChange>,
    /// Set when a full reconciliation ran: every id now in scope; a known id missing from it was
    /// deleted or left the scope.
    pub live_ids: Option<BTreeSet<CrmId>>,
    /// Where to continue; commit it once these changes are processed.
    pub cursor: ChangeCursor,
    /// Another page is waiting: call again with `cursor`.
    pub more: bool,
}

impl SalesforceClient {
    /// Reads one page of changes of `object` after `cursor`.
    pub async fn read_raw_changes(
        &self,
        object: SyncObject,
        scope: &Scope,
        cursor: &ChangeCursor,
    ) -> Result<RawChanges> {
        let read = self.change_query(scope, object, cursor);
        let records = self.query_all(&read.soql).await?;
        let last = records.last().map(place_of);
        let end = self
            .end_read(object, scope, read, records.len(), last)
            .await?;
        Ok(RawChanges {
            records,
            deleted: end.deleted,
            live_ids: end.live_ids,
            cursor: end.cursor,
            more: end.more,
        })
    }

    /// The query of one page of changes after `cursor`, and the cursor it starts from.
    fn change_query(
        &self,
        scope: &Scope,
        object: SyncObject,
        cursor: &ChangeCursor,
    ) -> ChangeQuery {
        let now = Utc::now();
        let mut next = cursor.clone();
        if next.stamp.is_none() && next.deletes_checked.is_none() {
            next.deletes_checked = Some(now);
            next.full_read = true;
        }
        let mut conditions = if scope.report_out_of_scope {
            let everyone = Scope {
                owner_ids: Vec::new(),
                ..scope.clone()
            };
            scope_conditions(&everyone)
        } else {
            scope_conditions(scope)
        };
        if let Some(stamp) = cursor.stamp {
            let s = format_sf_datetime(stamp);
            conditions.push(match &cursor.last_id {
                Some(id) => format!(
                    "(SystemModstamp > {s} OR (SystemModstamp = {s} AND Id > {}))",
                    quote(id)
                ),
                None => format!("SystemModstamp > {s}"),
            });
        }
        if !self.config.settle.is_zero() {
            let settle = Duration::from_std(self.config.settle).unwrap_or(Duration::seconds(2));
            conditions.push(format!(
                "SystemModstamp <= {}",
                format_sf_datetime(now - settle)
            ));
        }
        let page_size = self.config.page_size.max(1);
        let soql = format!(
            "SELECT {} FROM {}{} ORDER BY SystemModstamp ASC, Id ASC LIMIT {page_size}",
            object.fields().join(", "),
            object.name(),
            where_clause(&conditions),
        );
        ChangeQuery {
            soql,
            next,
            now,
            page_size,
        }
    }

    /// What follows a page of changes once its `count` records are read: the cursor moved
    /// past the `last` of them (refused when it has no Id or SystemModstamp), and, once the
    /// read reached the newest change, the deletes since the last window (or every id in
    /// scope, when the delete log no longer reaches back that far).
    async fn end_read(
        &self,
        object: SyncObject,
        scope: &Scope,
        read: ChangeQuery,
        count: usize,
        last: Option<Place>,
    ) -> Result<ReadEnd> {
        let ChangeQuery {
            mut next,
            now,
            page_size,
            ..
        } = read;
        if let Some(last) = last {
            match last {
                Some((stamp, id)) => {
                    next.stamp = Some(stamp);
                    next.last_id = Some(id);
                }
                None => {
                    return Err(Error::Decode(format!(
                        "{} record without Id or SystemModstamp",
                        object.name()
                    )))
                }
            }
        }
        let more = count >= page_size;
        let mut deleted = Vec::new();
        let mut live_ids = None;
        if !more && next.full_read {
            next.full_read = false;
        } else if !more {
            match next.deletes_checked {
                Some(checked) if now - checked < DELETED_WINDOW - DELETED_MARGIN => {
                    // Windows overlap a little because the delete log is coarser than our
                    // clock; what the overlap lists again is filtered out.
                    let start =
                        (checked - DELETED_OVERLAP).max(now - DELETED_WINDOW + DELETED_MARGIN);
                    match self.get_deleted(object, start, now).await {
                        Ok((entries, covered)) => {
                            let covered = covered.unwrap_or(now).max(checked);
                            for (id, when) in entries {
                                if !next.recent_deletes.contains_key(&id) {
                                    deleted.push(id.clone());
                                }
                                next.recent_deletes.insert(id, when);
                            }
                            next.recent_deletes
                                .retain(|_, when| *when >= covered - DELETED_OVERLAP);
                            next.deletes_checked = Some(covered);
                        }
                        Err(Error::Api { code, .. }) if code == "INVALID_REPLICATION_DATE" => {
                            tracing::info!(
                                object = object.name(),
                                "delete log no longer covers the cursor; reconciling ids"
                            );
                            live_ids = Some(self.live_ids(object, scope).await?);
                            next.deletes_checked = Some(now);
                            next.recent_deletes.clear();
                        }
                        Err(e) => return Err(e),
                    }
                }
                _ => {
                    tracing::info!(
                        object = object.name(),
                        "cursor older than the delete log; reconciling ids"
                    );
                    live_ids = Some(self.live_ids(object, scope).await?);
                    next.deletes_checked = Some(now);
                    next.recent_deletes.clear();
                }
            }
        }
        Ok(ReadEnd {
            deleted,
            live_ids,
            cursor: next,
            more,
        })
    }

    async fn get_deleted(
        &self,
        object: SyncObject,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<(Vec<(String, DateTime<Utc>)>, Option<DateTime<Utc>>)> {
        if end <= start {
            return Ok((Vec::new(), None));
        }
        let path = format!("sobjects/{}/deleted/", object.name());
        let (start_s, end_s) = (format_sf_datetime(start), format_sf_datetime(end));
        let (_, value) = self
            .call(
                Method::GET,
                &path,
                &[("start", &start_s), ("end", &end_s)],
                None,
                Idempotency::Safe,
            )
            .await?;
        let ids = value
            .get("deletedRecords")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|r| {
                        let id = r.get("id").and_then(Value::as_str)?;
                        let when = r
                            .get("deletedDate")
                            .and_then(Value::as_str)
                            .and_then(parse_sf_datetime)
                            .unwrap_or(end);
                        Some((id.to_owned(), when))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let covered = value
            .get("latestDateCovered")
            .and_then(Value::as_str)
            .and_then(parse_sf_datetime);
        Ok((ids, covered))
    }

    /// Every id in scope now, for reconciling deletes the delete log no longer holds.
    pub async fn live_ids(&self, object: SyncObject, scope: &Scope) -> Result<BTreeSet<String>> {
        let soql = format!(
            "SELECT Id FROM {}{}",
            object.name(),
            where_clause(&scope_conditions(scope))
        );
        Ok(self
            .query_all(&soql)
            .await?
            .iter()
            .filter_map(|r| r.get("Id").and_then(Value::as_str).map(str::to_owned))
            .collect())
    }

    /// Reads one page of changes and maps them to the planner's input. Events come with
    /// their invitees; a record that does not map is an `Invalid` change with the reason.
    pub async fn read_changes(
        &self,
        object: SyncObject,
        scope: &Scope,
        cursor: &ChangeCursor,
    ) -> Result<ChangeBatch> {
        let read = self.change_query(scope, object, cursor);
        let owners = Owners::of(scope);
        let mut records = Vec::new();
        let mut event_ids = Vec::new();
        let (mut count, mut last) = (0, None);
        // Each answer is parsed into rows that borrow its text (`rows.rs`), and both are gone
        // once its records are read; the invitees of an event are added after the read.
        let first = PageAt::First {
            soql: &read.soql,
            include_deleted: false,
        };
        self.each_page(first, |answer| {
            let page = page_of::<Field<'_>>(answer.parse()?)?;
            count += page.records.len();
            if let Some(record) = page.records.last() {
                last = Some(place_of(record));
            }
            for record in &page.records {
                if object == SyncObject::Event {
                    event_ids.extend(record.str_field("Id").map(str::to_owned));
                }
                // Without the option a record of another owner is not read at all when the
                // query names the owners; when it could not name them all, it is left out here.
                let owner = record.str_field("OwnerId");
                if !scope.report_out_of_scope && !owners.own(owner) {
                    continue;
                }
                records.push(ReadRecord::of(object, record, owner));
            }
            Ok(page.follow())
        })
        .await?;
        let end = self.end_read(object, scope, read, count, last).await?;
        let attendees = match object {
            SyncObject::Event => self.invitees(&event_ids).await?,
            SyncObject::Contact => BTreeMap::new(),
        };
        let mut changes = Vec::with_capacity(records.len() + end.deleted.len());
        for record in records {
            changes.push(record.into_change(&owners, &attendees));
        }
        for id in end.deleted {
            changes.push(CrmChange {
                owner_id: None,
                change: Change::Deleted {
                    id: ItemId::Crm(CrmId::new(id)),
                },
                notes: Vec::new(),
            });
        }
        Ok(ChangeBatch {
            changes,
            live_ids: end
                .live_ids
                .map(|ids| ids.into_iter().map(CrmId::new).collect()),
            cursor: end.cursor,
            more: end.more,
        })
    }

    /// The current state of these records, for retrying ones that failed: an upsert for each
    /// record that exists, `Deleted` for the rest.
    pub async fn fetch_changes(&self, object: SyncObject, ids: &[CrmId]) -> Result<Vec<CrmChange>> {
        let mut records = Vec::new();
        for chunk in ids.chunks(IN_CHUNK) {
            let list: Vec<&str> = chunk.iter().map(CrmId::as_str).collect();
            let soql = format!(
                "SELECT {} FROM {} WHERE Id IN {}",
                object.fields().join(", "),
                object.name(),
                quote_list(&list)
            );
            records.extend(self.query_all(&soql).await?);
        }
        let found: Vec<String> = records
            .iter()
            .filter_map(|r| r.get("Id").and_then(Value::as_str).map(str::to_owned))
            .collect();
        let attendees = match object {
            SyncObject::Event => self.invitees(&found).await?,
            SyncObject::Contact => BTreeMap::new(),
        };
        let every_owner = Owners::Everyone;
        let mut changes: Vec<CrmChange> = records
            .iter()
            .map(|record| record_change(object, &every_owner, record, &attendees))
            .collect();
        for id in ids {
            // Salesforce may answer with the 18-character form of a 15-character id.
            let present = found
                .iter()
                .any(|f| f == id.as_str() || f.get(..15) == id.as_str().get(..15));
            if !present {
                changes.push(CrmChange {
                    owner_id: None,
                    change: Change::Deleted {
                        id: ItemId::Crm(id.clone()),
                    },
                    notes: Vec::new(),
                });
            }
        }
        Ok(changes)
    }

    /// Invitees of the given events, by event id.
    pub async fn invitees(
        &self,
        event_ids: &[String],
    ) -> Result<BTreeMap<String, Vec<exsync_core::Attendee>>> {
        let mut out: BTreeMap<String, Vec<exsync_core::Attendee>> = BTreeMap::new();
        for chunk in event_ids.chunks(IN_CHUNK) {
            let soql = format!(
                "SELECT {} FROM EventRelation WHERE EventId IN {} AND IsInvitee = true",
                EVENT_RELATION_FIELDS.join(", "),
                quote_list(chunk)
            );
            for record in self.query_all(&soql).await? {
                let relation = event_relation_from_sobject(&record);
                if let Some(attendee) = relation.attendee() {
                    out.entry(relation.event_id.clone())
                        .or_default()
                        .push(attendee);
                }
            }
        }
        Ok(out)
    }
}

fn scope_conditions(scope: &Scope) -> Vec<String> {
    let mut conditions = Vec::new();
    if !scope.owner_ids.is_empty() && scope.owner_ids.len() <= MAX_OWNERS_IN_QUERY {
        conditions.push(format!("OwnerId IN {}", quote_list(&scope.owner_ids)));
    }
    if let Some(condition) = scope.condition.as_deref().filter(|c| !c.trim().is_empty()) {
        conditions.push(format!("({condition})"));
    }
    conditions
}

fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    }
}

/// A change read about to be sent: its query, and the cursor it moves.
struct ChangeQuery {
    soql: String,
    /// The cursor to move past what is read.
    next: ChangeCursor,
    now: DateTime<Utc>,
    page_size: usize,
}

/// What [`SalesforceClient::end_read`] found after a page of changes.
struct ReadEnd {
    deleted: Vec<String>,
    live_ids: Option<BTreeSet<String>>,
    cursor: ChangeCursor,
    more: bool,
}

/// Where a record stands in the cursor's order, its SystemModstamp and Id; `None` when it
/// lacks either.
type Place = Option<(DateTime<Utc>, String)>;

fn place_of(record: &impl SfRecord) -> Place {
    let stamp = record
        .str_field("SystemModstamp")
        .and_then(parse_sf_datetime)?;
    let id = record.str_field("Id")?;
    Some((stamp, id.to_owned()))
}

/// A record as read, owning what it needs, mapped but for an event's invitees, which are read
/// after the records.
struct ReadRecord {
    id: String,
    owner_id: Option<String>,
    version: Option<String>,
    origin: Option<ItemId>,
    modified: Option<DateTime<Utc>>,
    /// The record as Salesforce holds it, not yet cut to fit; the reason when it maps to
    /// no record.
    typed: std::result::Result<Typed, String>,
}

enum Typed {
    Contact(Contact),
    Event(Event),
}

impl ReadRecord {
    /// `record` read, its `OwnerId` being `owner`.
    fn of(object: SyncObject, record: &impl SfRecord, owner: Option<&str>) -> ReadRecord {
        let typed = match object {
            SyncObject::Contact => Ok(Typed::Contact(read_contact_as_typed(record))),
            SyncObject::Event => read_event_as_typed(record, Vec::new()).map(Typed::Event),
        };
        ReadRecord {
            id: record.str_field("Id").unwrap_or_default().to_owned(),
            owner_id: owner.map(str::to_owned),
            version: record.str_field("SystemModstamp").map(str::to_owned),
            // Records we created carry the Exchange id they came from as their external key.
            origin: record
                .str_field(crate::EXTERNAL_ID_FIELD)
                .filter(|s| !s.is_empty())
                .map(|s| ItemId::Exchange(ExchangeId::new(s))),
            modified: record
                .str_field("LastModifiedDate")
                .and_then(parse_sf_datetime),
            typed,
        }
    }

    /// The planner's input: an upsert, or `Invalid` with the reason when the record does not
    /// map; `OutOfScope` when its owner is not in the scope.
    fn into_change(
        self,
        owners: &Owners<'_>,
        attendees: &BTreeMap<String, Vec<exsync_core::Attendee>>,
    ) -> CrmChange {
        let mut notes = Vec::new();
        let change = if !owners.own(self.owner_id.as_deref()) {
            Change::OutOfScope {
                id: ItemId::Crm(CrmId::new(self.id)),
            }
        } else {
            // Sanitised once, on the way to fields, which keeps what was cut.
            let fields = self.typed.map(|typed| match typed {
                Typed::Contact(contact) => contact.into_noted_fields(),
                Typed::Event(mut event) => {
                    event.attendees = attendees.get(&self.id).cloned().unwrap_or_default();
                    event.into_noted_fields()
                }
            });
            let item_id = ItemId::Crm(CrmId::new(self.id));
            match fields {
                Ok((fields, noted)) => {
                    notes = noted;
                    Change::Upsert(Item {
                        id: item_id,
                        fields,
                        version: self.version,
                        modified: self.modified,
                        origin: self.origin,
                    })
                }
                Err(reason) => Change::Invalid {
                    id: item_id,
                    reason,
                },
            }
        };
        CrmChange {
            owner_id: self.owner_id,
            change,
            notes,
        }
    }
}

/// One record of a query as the planner's input (see [`ReadRecord::into_change`]).
fn record_change(
    object: SyncObject,
    owners: &Owners<'_>,
    record: &impl SfRecord,
    attendees: &BTreeMap<String, Vec<exsync_core::Attendee>>,
) -> CrmChange {
    ReadRecord::of(object, record, record.str_field("OwnerId")).into_change(owners, attendees)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_query_names_its_owners_only_while_they_fit() {
        let scope = |n: usize| Scope {
            owner_ids: (0..n).map(|i| format!("005{i:015}")).collect(),
            ..Scope::default()
        };
        let named = scope_conditions(&scope(MAX_OWNERS_IN_QUERY));
        assert!(named[0].starts_with("OwnerId IN ('005000000000000000', "));
        assert!(scope_conditions(&scope(MAX_OWNERS_IN_QUERY + 1)).is_empty());
        let owners = scope(MAX_OWNERS_IN_QUERY + 1);
        let owners = Owners::of(&owners);
        assert!(owners.own(Some("005000000000000100")));
        assert!(!owners.own(Some("005999999999999999")));
        assert!(!owners.own(None));
        assert!(Owners::of(&Scope::default()).own(None));
    }

    #[test]
    fn a_record_read_is_cut_to_fit_and_says_what_was_cut() {
        use crate::mapping::{read_contact, read_event};
        let everyone = Scope::default();
        let owners = Owners::of(&everyone);
        let contact = serde_json::json!({
            "Id": "003A",
            "FirstName": "N".repeat(300),
            "LastName": "Hostile\u{0}",
            "Email": "not an address@customer.test",
        });
        let event = serde_json::json!({
            "Id": "00UA",
            "Subject": format!("Review{}", "!".repeat(300)),
            "StartDateTime": "2024-05-01T10:00:00.000+0000",
            "EndDateTime": "2024-05-01T11:00:00.000+0000",
        });
        let read = |object, record: &Value| {
            let read = record_change(object, &owners, record, &BTreeMap::new());
            match read.change {
                Change::Upsert(item) => (item.fields, read.notes),
                other => panic!("{other:?}"),
            }
        };
        let (fitted, notes) = read_contact(&contact);
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert_eq!(
            read(SyncObject::Contact, &contact),
            (fitted.into_fields(), notes)
        );
        let (fitted, notes) = read_event(&event, Vec::new()).unwrap();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(
            read(SyncObject::Event, &event),
            (fitted.into_fields(), notes)
        );
    }

    mod rows_map_as_values {
        //! A record maps to the same change whether its page was read as rows or as
        //! `serde_json::Value`s, and that change is what the public mappings make of it.

        use proptest::prelude::*;
        use serde_json::{json, Value};

        use super::*;
        use crate::client::Answer;
        use crate::mapping::{read_contact, read_event};

        const OWNER: &str = "005A";

        /// Values of the types Salesforce sends, and of the wrong ones.
        fn any_value() -> impl Strategy<Value = Value> {
            prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                (-3000i64..3000).prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                (-1e6f64..1e6).prop_map(Value::from),
                prop::sample::select(vec![
                    "",
                    "2024-05-01",
                    "2024-02-30",
                    "2024-05-01T10:00:00.000+0000",
                    "2024-05-01T11:30:00.000+0200",
                    "2024-05-01T09:45:00Z",
                    "RRULE:FREQ=WEEKLY;INTERVAL=1;COUNT=6",
                    "RRULE:FREQ=HOURLY",
                    "Europe/Berlin",
                    "Free",
                    "OutOfOffice",
                    "ada@customer.test",
                    "not an address",
                    "005A",
                    "005B",
                    "00UA",
                    "003A",
                    "O\"Brien \\ \u{e9}\n\t\u{1}",
                ])
                .prop_map(Value::from),
                "\\PC{0,12}".prop_map(Value::from),
                "\\PC{0,8}"
                    .prop_map(|name| json!({"attributes": {"type": "Account"}, "Name": name})),
            ]
        }

        /// Records as Salesforce sends them (a contact, a timed event, an all-day event, a
        /// series), some of their fields then replaced or added with any value.
        fn any_record() -> impl Strategy<Value = Value> {
            let shapes = vec![
                json!({
                    "attributes": {"type": "Contact", "url": "/services/data/v62.0/sobjects/Contact/003A"},
                    "Id": "003A", "OwnerId": OWNER, "FirstName": "Ada", "MiddleName": null,
                    "LastName": "Lovelace", "Email": "ada@customer.test", "Phone": "+1 555 010 0001",
                    "MobilePhone": null, "Title": "Countess", "Department": "Analytics",
                    "Birthdate": "1815-12-10", "Description": "Notes\nover lines",
                    "Account": {"attributes": {"type": "Account"}, "Name": "Engines Ltd"},
                    "MailingStreet": "12 St James's Sq", "MailingCity": "London",
                    "MailingPostalCode": "SW1", "MailingCountry": "UK", "OtherCity": "Marylebone",
                    "SystemModstamp": "2024-05-01T10:00:00.000+0000",
                    "LastModifiedDate": "2024-05-01T10:00:00.000+0000", "Exsync_Id__c": "AAMkA=",
                }),
                json!({
                    "attributes": {"type": "Event"}, "Id": "00UA", "OwnerId": OWNER,
                    "Subject": "Review", "Location": "Room 1", "Description": "Agenda",
                    "StartDateTime": "2024-05-01T10:00:00.000+0000",
                    "EndDateTime": "2024-05-01T11:00:00.000+0000", "ActivityDate": "2024-05-01",
                    "DurationInMinutes": 60, "IsAllDayEvent": false, "IsPrivate": true,
                    "ShowAs": "OutOfOffice", "IsReminderSet": true,
                    "ReminderDateTime": "2024-05-01T09:45:00.000+0000", "IsRecurrence2": false,
                    "SystemModstamp": "2024-05-01T10:00:00.000+0000",
                    "LastModifiedDate": "2024-05-01T10:00:00.000+0000", "Exsync_Id__c": null,
                }),
                json!({
                    "attributes": {"type": "Event"}, "Id": "00UB", "OwnerId": OWNER,
                    "Subject": "Off", "IsAllDayEvent": true, "ActivityDate": "2024-05-01",
                    "DurationInMinutes": 2880, "StartDateTime": "2024-05-01T00:00:00.000+0000",
                    "SystemModstamp": "2024-05-01T10:00:00.000+0000",
                }),
                json!({
                    "attributes": {"type": "Event"}, "Id": "00UA", "OwnerId": OWNER,
                    "Subject": "Weekly", "StartDateTime": "2024-05-06T08:00:00.000+0000",
                    "EndDateTime": "2024-05-06T08:30:00.000+0000", "IsRecurrence2": true,
                    "Recurrence2PatternText": "RRULE:FREQ=WEEKLY;INTERVAL=1;COUNT=6",
                    "Recurrence2PatternTimeZone": "Europe/Berlin",
                    "SystemModstamp": "2024-05-01T10:00:00.000+0000",
                }),
            ];
            let mut names: Vec<&str> = CONTACT_FIELDS.iter().chain(EVENT_FIELDS).copied().collect();
            names.extend(["Account", "attributes", "Unselected"]);
            names.sort_unstable();
            names.dedup();
            let changes = prop::collection::vec((prop::sample::select(names), any_value()), 0..6);
            (prop::sample::select(shapes), changes).prop_map(|(shape, changes)| {
                let mut record = shape.as_object().cloned().unwrap_or_default();
                for (name, value) in changes {
                    record.insert(name.to_owned(), value);
                }
                Value::Object(record)
            })
        }

        fn invitees() -> BTreeMap<String, Vec<exsync_core::Attendee>> {
            let invitee = |email: &str| exsync_core::Attendee {
                email: email.into(),
                name: "Invitee".into(),
                kind: exsync_core::AttendeeKind::Required,
            };
            BTreeMap::from([(
                "00UA".to_owned(),
                vec![
                    invitee("bo@customer.test"),
                    invitee("x@evil.test#.customer.test"),
                ],
            )])
        }

        /// What the mappings make of a record in scope: its fields and notes, or the reason.
        fn mapped(
            object: SyncObject,
            record: &Value,
        ) -> std::result::Result<(exsync_core::Fields, Vec<String>), String> {
            let id = record.str_field("Id").unwrap_or_default();
            match object {
                SyncObject::Contact => {
                    let (contact, notes) = read_contact(record);
                    Ok((contact.into_fields(), notes))
                }
                SyncObject::Event => {
                    let attendees = invitees().remove(id).unwrap_or_default();
                    read_event(record, attendees).map(|(event, notes)| (event.into_fields(), notes))
                }
            }
        }

        proptest! {
            #[test]
            fn a_row_maps_as_its_value_does(record in any_record(), events in any::<bool>()) {
                let object = if events { SyncObject::Event } else { SyncObject::Contact };
                let text = serde_json::to_string(&json!({"records": [record]})).unwrap();
                let answer = Answer::of_text("query", &text);
                let rows = crate::query::page_of::<Field<'_>>(answer.parse().unwrap()).unwrap();
                let values = crate::query::page_of::<Value>(answer.parse().unwrap()).unwrap();
                let scope = Scope { owner_ids: vec![OWNER.to_owned()], ..Scope::default() };
                let owners = Owners::of(&scope);
                let attendees = invitees();
                let from_row = record_change(object, &owners, &rows.records[0], &attendees);
                let from_value = record_change(object, &owners, &values.records[0], &attendees);
                prop_assert_eq!(&from_row, &from_value);
                prop_assert_eq!(place_of(&rows.records[0]), place_of(&values.records[0]));

                let value = &values.records[0];
                match (from_value.change, mapped(object, value)) {
                    (Change::OutOfScope { .. }, _) => {
                        prop_assert_ne!(value.str_field("OwnerId"), Some(OWNER));
                    }
                    (Change::Upsert(item), Ok((fields, notes))) => {
                        prop_assert_eq!(item.fields, fields);
                        prop_assert_eq!(from_value.notes, notes);
                        prop_assert_eq!(item.version.as_deref(), value.str_field("SystemModstamp"));
                    }
                    (Change::Invalid { reason, .. }, Err(expected)) => {
                        prop_assert_eq!(reason, expected);
                    }
                    (change, expected) => prop_assert!(false, "{:?} against {:?}", change, expected),
                }
            }
        }
    }
}
