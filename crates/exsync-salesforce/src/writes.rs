//! Writes through sObject Collections (200 records a call, `allOrNone=false`): each record
//! gets its own outcome, failures do not stop the others, and every written record comes
//! back with its id and new SystemModstamp for echo suppression.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use reqwest::Method;
use serde_json::{json, Map, Value};

use exsync_core::{Attendee, Contact, CrmId, Event, ItemKind};

use crate::client::{Idempotency, SalesforceClient};
use crate::error::{Error, Result};
use crate::mapping::{contact_to_sobject, event_to_sobject};
use crate::query::quote_list;

/// Records per sObject Collections call.
pub const COLLECTION_MAX: usize = 200;
/// Values per SOQL IN list.
const IN_CHUNK: usize = 200;

/// Why one record was not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    /// Salesforce's status code for the failure (`DUPLICATE_VALUE`, `ENTITY_IS_DELETED`, …), or one
    /// of ours such as `INVALID_RECORD` for a record refused before sending.
    pub code: String,
    /// Why the record was refused, passed on to the admin.
    pub message: String,
    /// The API names of the fields the failure concerns, when Salesforce names them.
    pub fields: Vec<String>,
}

impl std::fmt::Display for ItemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// What happened to one record of a write, in the order the records were given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WriteOutcome {
    /// The record's id: the new id after a create, the given id otherwise; `None` when a create
    /// failed.
    pub id: Option<CrmId>,
    /// SystemModstamp after the write: the version to record so the change is not synced back.
    pub version: Option<String>,
    /// True when an upsert created the record.
    pub created: bool,
    /// Why the record was not written; `None` when it was.
    pub error: Option<ItemError>,
    /// Parts that did not apply although the record was written (e.g. an invitee that did
    /// not resolve).
    pub warnings: Vec<String>,
}

impl WriteOutcome {
    fn failed(code: &str, message: impl Into<String>) -> WriteOutcome {
        WriteOutcome {
            error: Some(ItemError {
                code: code.into(),
                message: message.into(),
                fields: Vec::new(),
            }),
            ..WriteOutcome::default()
        }
    }

    /// Whether the record was written.
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }
}

/// A record to create. With an external key the create is an upsert on
/// [`crate::EXTERNAL_ID_FIELD`], so a retried pass finds the record instead of duplicating it.
#[derive(Debug, Clone)]
pub struct NewRecord<T> {
    /// Value for [`crate::EXTERNAL_ID_FIELD`]; with it the create is an upsert, without it a plain
    /// create that a retry may duplicate.
    pub external_key: Option<String>,
    /// The user to own the record; `None` leaves it to the integration user.
    pub owner_id: Option<String>,
    /// The record to create.
    pub record: T,
}

/// A record ready to create: external key, owner, and the fields or why it cannot be written.
type Prepared = (
    Option<String>,
    Option<String>,
    Result<Map<String, Value>, String>,
);

fn outcome_of(result: &Value) -> WriteOutcome {
    let id = result
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(CrmId::new);
    let success = result
        .get("success")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let error = if success {
        None
    } else {
        let first = result
            .get("errors")
            .and_then(Value::as_array)
            .and_then(|e| e.first())
            .cloned()
            .unwrap_or(Value::Null);
        Some(ItemError {
            code: first
                .get("statusCode")
                .and_then(Value::as_str)
                .unwrap_or("UNKNOWN_ERROR")
                .to_owned(),
            message: first
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            fields: first
                .get("fields")
                .and_then(Value::as_array)
                .map(|f| {
                    f.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        })
    };
    WriteOutcome {
        id,
        version: None,
        created: result
            .get("created")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        error,
        warnings: Vec::new(),
    }
}

fn results_of(value: &Value, expected: usize) -> Result<Vec<WriteOutcome>> {
    let list = value
        .as_array()
        .ok_or_else(|| Error::Decode("collection answer is not a list".into()))?;
    if list.len() != expected {
        return Err(Error::Decode(format!(
            "collection answer has {} results for {expected} records",
            list.len()
        )));
    }
    Ok(list.iter().map(outcome_of).collect())
}

impl SalesforceClient {
    /// Creates records of one object (`POST /composite/sobjects`).
    pub async fn create_sobjects(
        &self,
        object: &str,
        records: &[Map<String, Value>],
    ) -> Result<Vec<WriteOutcome>> {
        let mut out = Vec::with_capacity(records.len());
        for chunk in records.chunks(COLLECTION_MAX) {
            let body = json!({"allOrNone": false, "records": with_type(object, chunk)});
            let (_, value) = self
                .call(
                    Method::POST,
                    "composite/sobjects",
                    &[],
                    Some(&body),
                    Idempotency::OnlyIfNotSent,
                )
                .await?;
            out.extend(results_of(&value, chunk.len())?);
        }
        Ok(out)
    }

    /// Creates or updates records keyed by an external id field
    /// (`PATCH /composite/sobjects/{object}/{field}`); safe to retry.
    pub async fn upsert_sobjects(
        &self,
        object: &str,
        field: &str,
        records: &[Map<String, Value>],
    ) -> Result<Vec<WriteOutcome>> {
        let mut out = Vec::with_capacity(records.len());
        let path = format!("composite/sobjects/{object}/{field}");
        for chunk in records.chunks(COLLECTION_MAX) {
            let body = json!({"allOrNone": false, "records": with_type(object, chunk)});
            let (_, value) = self
                .call(Method::PATCH, &path, &[], Some(&body), Idempotency::Safe)
                .await?;
            out.extend(results_of(&value, chunk.len())?);
        }
        Ok(out)
    }

    /// Updates records by id (`PATCH /composite/sobjects`).
    pub async fn update_sobjects(
        &self,
        object: &str,
        records: &[(CrmId, Map<String, Value>)],
    ) -> Result<Vec<WriteOutcome>> {
        let mut out = Vec::with_capacity(records.len());
        for chunk in records.chunks(COLLECTION_MAX) {
            let list: Vec<Value> = chunk
                .iter()
                .map(|(id, fields)| {
                    let mut record = fields.clone();
                    record.insert("attributes".into(), json!({"type": object}));
                    record.insert("id".into(), json!(id.as_str()));
                    Value::Object(record)
                })
                .collect();
            let body = json!({"allOrNone": false, "records": list});
            let (_, value) = self
                .call(
                    Method::PATCH,
                    "composite/sobjects",
                    &[],
                    Some(&body),
                    Idempotency::Safe,
                )
                .await?;
            let mut results = results_of(&value, chunk.len())?;
            for (result, (id, _)) in results.iter_mut().zip(chunk) {
                result.id.get_or_insert_with(|| id.clone());
            }
            out.extend(results);
        }
        Ok(out)
    }

    /// Deletes records by id (`DELETE /composite/sobjects?ids=…`).
    pub async fn delete_records(&self, ids: &[CrmId]) -> Result<Vec<WriteOutcome>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(COLLECTION_MAX) {
            let list: Vec<&str> = chunk.iter().map(CrmId::as_str).collect();
            let joined = list.join(",");
            let (_, value) = self
                .call(
                    Method::DELETE,
                    "composite/sobjects",
                    &[("ids", &joined), ("allOrNone", "false")],
                    None,
                    Idempotency::Safe,
                )
                .await?;
            let mut results = results_of(&value, chunk.len())?;
            for (result, id) in results.iter_mut().zip(chunk) {
                // Already gone is what we wanted.
                if result
                    .error
                    .as_ref()
                    .is_some_and(|e| e.code == "ENTITY_IS_DELETED")
                {
                    result.error = None;
                }
                result.id.get_or_insert_with(|| id.clone());
            }
            out.extend(results);
        }
        Ok(out)
    }

    /// Fills `version` of the written records with their SystemModstamp.
    async fn stamp(&self, object: &str, outcomes: &mut [WriteOutcome]) -> Result<()> {
        let ids: Vec<String> = outcomes
            .iter()
            .filter(|o| o.is_ok())
            .filter_map(|o| o.id.as_ref().map(|i| i.as_str().to_owned()))
            .collect();
        let mut stamps = HashMap::new();
        for chunk in ids.chunks(IN_CHUNK) {
            let soql = format!(
                "SELECT Id, SystemModstamp FROM {object} WHERE Id IN {}",
                quote_list(chunk)
            );
            for record in self.query_all(&soql).await? {
                if let (Some(id), Some(stamp)) = (
                    record.get("Id").and_then(Value::as_str),
                    record.get("SystemModstamp").and_then(Value::as_str),
                ) {
                    stamps.insert(id.to_owned(), stamp.to_owned());
                }
            }
        }
        for outcome in outcomes.iter_mut().filter(|o| o.is_ok()) {
            if let Some(id) = &outcome.id {
                outcome.version = stamps.get(id.as_str()).cloned();
            }
        }
        Ok(())
    }

    /// Account ids for company names, creating the accounts that do not exist yet.
    async fn accounts_for(&self, names: &BTreeSet<String>) -> Result<HashMap<String, String>> {
        let mut found: HashMap<String, String> = HashMap::new();
        let list: Vec<&String> = names.iter().collect();
        for chunk in list.chunks(IN_CHUNK) {
            let soql = format!(
                "SELECT Id, Name FROM Account WHERE Name IN {}",
                quote_list(chunk)
            );
            for record in self.query_all(&soql).await? {
                if let (Some(id), Some(name)) = (
                    record.get("Id").and_then(Value::as_str),
                    record.get("Name").and_then(Value::as_str),
                ) {
                    found
                        .entry(name.to_lowercase())
                        .or_insert_with(|| id.to_owned());
                }
            }
        }
        let missing: Vec<&String> = names
            .iter()
            .filter(|n| !found.contains_key(&n.to_lowercase()))
            .collect();
        if !missing.is_empty() {
            let records: Vec<Map<String, Value>> = missing
                .iter()
                .map(|n| {
                    let mut m = Map::new();
                    m.insert("Name".into(), json!(n));
                    m
                })
                .collect();
            for (name, outcome) in missing
                .iter()
                .zip(self.create_sobjects("Account", &records).await?)
            {
                match (outcome.id, outcome.error) {
                    (Some(id), None) => {
                        found.insert(name.to_lowercase(), id.0);
                    }
                    (_, error) => {
                        tracing::warn!(error = ?error, "creating an account for a contact's company failed")
                    }
                }
            }
        }
        Ok(found)
    }

    async fn contact_records(&self, contacts: &[&Contact]) -> Result<Vec<Map<String, Value>>> {
        let companies: BTreeSet<String> = contacts
            .iter()
            .map(|c| exsync_core::clean_line(&c.company))
            .filter(|c| !c.is_empty())
            .collect();
        let accounts = if companies.is_empty() {
            HashMap::new()
        } else {
            self.accounts_for(&companies).await?
        };
        Ok(contacts
            .iter()
            .map(|c| {
                let mut record = contact_to_sobject(c);
                let company = exsync_core::clean_line(&c.company).to_lowercase();
                record.insert(
                    "AccountId".into(),
                    accounts.get(&company).map_or(Value::Null, |id| json!(id)),
                );
                record
            })
            .collect())
    }

    /// Writes new records: upserts for those with an external key, creates for the rest.
    async fn create_mapped(&self, object: &str, items: Vec<Prepared>) -> Result<Vec<WriteOutcome>> {
        let mut outcomes: Vec<WriteOutcome> = vec![WriteOutcome::default(); items.len()];
        let mut keyed: Vec<(usize, Map<String, Value>)> = Vec::new();
        let mut plain: Vec<(usize, Map<String, Value>)> = Vec::new();
        for (i, (key, owner, record)) in items.into_iter().enumerate() {
            match record {
                Err(reason) => outcomes[i] = WriteOutcome::failed("INVALID_RECORD", reason),
                Ok(mut record) => {
                    if let Some(owner) = owner {
                        record.insert("OwnerId".into(), json!(owner));
                    }
                    match key {
                        Some(key) => {
                            record.insert(crate::EXTERNAL_ID_FIELD.into(), json!(key));
                            keyed.push((i, record));
                        }
                        None => plain.push((i, record)),
                    }
                }
            }
        }
        if !keyed.is_empty() {
            let records: Vec<Map<String, Value>> = keyed.iter().map(|(_, r)| r.clone()).collect();
            let results = self
                .upsert_sobjects(object, crate::EXTERNAL_ID_FIELD, &records)
                .await?;
            for ((i, _), result) in keyed.iter().zip(results) {
                outcomes[*i] = result;
            }
        }
        if !plain.is_empty() {
            let records: Vec<Map<String, Value>> = plain.iter().map(|(_, r)| r.clone()).collect();
            let results = self.create_sobjects(object, &records).await?;
            for ((i, _), result) in plain.iter().zip(results) {
                outcomes[*i] = result;
            }
        }
        Ok(outcomes)
    }

    /// Creates contacts, each with its outcome in the order given. Companies become `AccountId`s:
    /// existing accounts are found by name, missing ones created.
    pub async fn create_contacts(&self, items: &[NewRecord<Contact>]) -> Result<Vec<WriteOutcome>> {
        let contacts: Vec<&Contact> = items.iter().map(|i| &i.record).collect();
        let records = self.contact_records(&contacts).await?;
        let mapped = items
            .iter()
            .zip(records)
            .map(|(i, r)| (i.external_key.clone(), i.owner_id.clone(), Ok(r)))
            .collect();
        let mut outcomes = self.create_mapped("Contact", mapped).await?;
        self.stamp("Contact", &mut outcomes).await?;
        Ok(outcomes)
    }

    /// Writes every field the connector maps for each contact (see
    /// [`Self::update_contacts_changed`] to write only some).
    pub async fn update_contacts(&self, items: &[(CrmId, Contact)]) -> Result<Vec<WriteOutcome>> {
        let items: Vec<(CrmId, Contact, Option<&[String]>)> = items
            .iter()
            .map(|(id, c)| (id.clone(), c.clone(), None))
            .collect();
        self.update_contacts_changed(&items).await
    }

    /// Updates contacts, writing for each only the Salesforce fields of the domain fields
    /// named (all of them with `None`).
    pub async fn update_contacts_changed(
        &self,
        items: &[(CrmId, Contact, Option<&[String]>)],
    ) -> Result<Vec<WriteOutcome>> {
        let contacts: Vec<&Contact> = items.iter().map(|(_, c, _)| c).collect();
        let records = self.contact_records(&contacts).await?;
        let updates: Vec<(CrmId, Map<String, Value>)> = items
            .iter()
            .zip(records)
            .map(|((id, _, changed), record)| {
                (
                    id.clone(),
                    only_changed(ItemKind::Contact, record, *changed),
                )
            })
            .collect();
        let mut outcomes = self.update_sobjects("Contact", &updates).await?;
        self.stamp("Contact", &mut outcomes).await?;
        Ok(outcomes)
    }

    /// Creates events, then relates their invitees; an invitee that does not resolve is a warning
    /// on the outcome, not a failure.
    pub async fn create_events(&self, items: &[NewRecord<Event>]) -> Result<Vec<WriteOutcome>> {
        let mapped = items
            .iter()
            .map(|i| {
                (
                    i.external_key.clone(),
                    i.owner_id.clone(),
                    event_to_sobject(&i.record),
                )
            })
            .collect();
        let mut outcomes = self.create_mapped("Event", mapped).await?;
        let attendees: Vec<(String, &[Attendee])> = outcomes
            .iter()
            .zip(items)
            .filter(|(o, _)| o.is_ok())
            .filter_map(|(o, i)| {
                o.id.as_ref()
                    .map(|id| (id.as_str().to_owned(), i.record.attendees.as_slice()))
            })
            .collect();
        let warnings = self.sync_invitees(&attendees).await?;
        attach_warnings(&mut outcomes, warnings);
        self.stamp("Event", &mut outcomes).await?;
        Ok(outcomes)
    }

    /// Writes every field the connector maps for each event, invitees included (see
    /// [`Self::update_events_changed`] to write only some).
    pub async fn update_events(&self, items: &[(CrmId, Event)]) -> Result<Vec<WriteOutcome>> {
        let items: Vec<(CrmId, Event, Option<&[String]>)> = items
            .iter()
            .map(|(id, e)| (id.clone(), e.clone(), None))
            .collect();
        self.update_events_changed(&items).await
    }

    /// Updates events, writing for each only the Salesforce fields of the domain fields named
    /// (all of them with `None`); invitees are rewritten only when attendees changed.
    pub async fn update_events_changed(
        &self,
        items: &[(CrmId, Event, Option<&[String]>)],
    ) -> Result<Vec<WriteOutcome>> {
        let mut outcomes: Vec<WriteOutcome> = vec![WriteOutcome::default(); items.len()];
        let mut updates = Vec::new();
        let mut positions = Vec::new();
        for (i, (id, event, changed)) in items.iter().enumerate() {
            match event_to_sobject(event) {
                Ok(record) => {
                    updates.push((id.clone(), only_changed(ItemKind::Event, record, *changed)));
                    positions.push(i);
                }
                Err(reason) => {
                    outcomes[i] = WriteOutcome::failed("INVALID_RECORD", reason);
                    outcomes[i].id = Some(id.clone());
                }
            }
        }
        for (i, result) in positions
            .iter()
            .zip(self.update_sobjects("Event", &updates).await?)
        {
            outcomes[*i] = result;
        }
        let attendees: Vec<(String, &[Attendee])> = outcomes
            .iter()
            .zip(items)
            .filter(|(o, (_, _, changed))| {
                o.is_ok() && changed.is_none_or(|c| c.iter().any(|f| f == "attendees"))
            })
            .map(|(_, (id, e, _))| (id.as_str().to_owned(), e.attendees.as_slice()))
            .collect();
        let warnings = self.sync_invitees(&attendees).await?;
        attach_warnings(&mut outcomes, warnings);
        self.stamp("Event", &mut outcomes).await?;
        Ok(outcomes)
    }

    /// Makes each event's invitee relations match its attendees. Attendees that are no
    /// contact, lead or user are left out, with a warning.
    async fn sync_invitees(
        &self,
        events: &[(String, &[Attendee])],
    ) -> Result<BTreeMap<String, Vec<String>>> {
        let mut warnings: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if events.is_empty() {
            return Ok(warnings);
        }
        let emails: BTreeSet<String> = events
            .iter()
            .flat_map(|(_, a)| a.iter().map(|a| a.email.trim().to_lowercase()))
            .filter(|e| !e.is_empty())
            .collect();
        let mut who: HashMap<String, String> = HashMap::new();
        let list: Vec<&String> = emails.iter().collect();
        // Contacts first, then leads, then users: the first match names the invitee.
        for object in ["Contact", "Lead", "User"] {
            for chunk in list.chunks(IN_CHUNK) {
                let soql = format!(
                    "SELECT Id, Email FROM {object} WHERE Email IN {}",
                    quote_list(chunk)
                );
                for record in self.query_all(&soql).await? {
                    if let (Some(id), Some(email)) = (
                        record.get("Id").and_then(Value::as_str),
                        record.get("Email").and_then(Value::as_str),
                    ) {
                        who.entry(email.to_lowercase())
                            .or_insert_with(|| id.to_owned());
                    }
                }
            }
        }
        let event_ids: Vec<&String> = events.iter().map(|(id, _)| id).collect();
        let mut existing: HashMap<(String, String), String> = HashMap::new();
        for chunk in event_ids.chunks(IN_CHUNK) {
            let soql = format!(
                "SELECT Id, EventId, RelationId FROM EventRelation WHERE EventId IN {} AND IsInvitee = true",
                quote_list(chunk)
            );
            for record in self.query_all(&soql).await? {
                let text = |k: &str| {
                    record
                        .get(k)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                existing.insert((text("EventId"), text("RelationId")), text("Id"));
            }
        }
        let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
        for (event_id, attendees) in events {
            for attendee in attendees.iter() {
                let email = attendee.email.trim().to_lowercase();
                match who.get(&email) {
                    Some(relation) => {
                        wanted.insert((event_id.clone(), relation.clone()));
                    }
                    None => warnings.entry(event_id.clone()).or_default().push(format!(
                        "attendee {email} is not a contact, lead or user; not related"
                    )),
                }
            }
        }
        let to_create: Vec<Map<String, Value>> = wanted
            .iter()
            .filter(|k| !existing.contains_key(*k))
            .map(|(event, relation)| {
                let mut m = Map::new();
                m.insert("EventId".into(), json!(event));
                m.insert("RelationId".into(), json!(relation));
                m
            })
            .collect();
        let to_delete: Vec<CrmId> = existing
            .iter()
            .filter(|(k, _)| !wanted.contains(*k))
            .map(|(_, id)| CrmId::new(id.clone()))
            .collect();
        if !to_create.is_empty() {
            for (record, outcome) in to_create
                .iter()
                .zip(self.create_sobjects("EventRelation", &to_create).await?)
            {
                if let Some(error) = outcome.error {
                    let event = record
                        .get("EventId")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    warnings
                        .entry(event)
                        .or_default()
                        .push(format!("relating an invitee failed: {error}"));
                }
            }
        }
        if !to_delete.is_empty() {
            for outcome in self.delete_records(&to_delete).await? {
                if let Some(error) = outcome.error {
                    tracing::warn!(%error, "removing an invitee relation failed");
                }
            }
        }
        Ok(warnings)
    }
}

fn attach_warnings(outcomes: &mut [WriteOutcome], mut warnings: BTreeMap<String, Vec<String>>) {
    for outcome in outcomes {
        if let Some(list) = outcome
            .id
            .as_ref()
            .and_then(|id| warnings.remove(id.as_str()))
        {
            outcome.warnings.extend(list);
        }
    }
}

fn with_type(object: &str, records: &[Map<String, Value>]) -> Vec<Value> {
    records
        .iter()
        .map(|r| {
            let mut record = r.clone();
            record.insert("attributes".into(), json!({"type": object}));
            Value::Object(record)
        })
        .collect()
}

/// Keeps the Salesforce fields of the changed domain fields; everything with `None`.
fn only_changed(
    kind: ItemKind,
    mut record: Map<String, Value>,
    changed: Option<&[String]>,
) -> Map<String, Value> {
    if let Some(changed) = changed {
        let keep: BTreeSet<String> = changed
            .iter()
            .flat_map(|f| crate::mapping::sobject_fields(kind, f))
            .collect();
        record.retain(|field, _| keep.contains(field));
    }
    record
}
