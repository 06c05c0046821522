//! The org's data: records of every object (deleted ones kept for queryAll and getDeleted),
//! validated and stamped the way Salesforce does. On disk: one JSON snapshot and the journal
//! of the writes since (see [`super::changes`]), so a write costs the size of its records.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::schema::{case_safe_suffix, FieldDef, FieldType, ObjectDef, Schema, EXTERNAL_ID_FIELD};
use super::soql::{format_datetime, parse_datetime};

pub(super) type Rec = Map<String, Value>;

/// One per-record failure, as Salesforce reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(super) struct RecordError {
    #[serde(rename = "statusCode")]
    pub code: String,
    pub message: String,
    pub fields: Vec<String>,
}

impl RecordError {
    pub(super) fn new(code: &str, message: impl Into<String>, fields: &[&str]) -> RecordError {
        RecordError {
            code: code.to_owned(),
            message: message.into(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct DeletedEntry {
    pub object: String,
    pub id: String,
    pub deleted: DateTime<Utc>,
}

/// Values the org was created with; they survive restarts so configured clients keep working.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Settings {
    pub org_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub control_token: String,
    pub integration_user_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ApiAllowance {
    pub used: u64,
    pub max: u64,
    pub window_start: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Db {
    pub settings: Settings,
    /// object name → id → record, in id (= creation) order.
    pub records: BTreeMap<String, BTreeMap<String, Rec>>,
    pub deleted_log: Vec<DeletedEntry>,
    pub next_serial: u64,
    pub api: ApiAllowance,
    /// Shift applied to the wall clock, so tests can age cursors past Salesforce's windows.
    #[serde(default)]
    pub clock_offset_seconds: i64,
    /// (object, id) of the records written since the last commit to the journal.
    #[serde(skip)]
    touched: BTreeSet<(String, String)>,
    /// How many entries of `deleted_log` the snapshot and journal hold.
    #[serde(skip)]
    journaled_deletions: usize,
    /// (object, one of [`INDEXED_FIELDS`], its value in lower case) → ids of the records ever
    /// written with it: the duplicate checks, an event's cascade to its invitees, and queries
    /// by external id or by event look here instead of scanning the object, as Salesforce's
    /// own indexes spare it. A superset (a record may have changed or gone since), checked
    /// against the records, so writes only ever add to it.
    #[serde(skip)]
    indexed: HashMap<(String, &'static str, String), Vec<String>>,
    /// Changes with every write (and is unique to this process), so what is worked out from
    /// the records can be kept until they change.
    #[serde(skip)]
    version: u64,
}

/// A new [`Db::version`], never one any org of this process had.
fn next_version() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

pub(super) const DEFAULT_DAILY_ALLOWANCE: u64 = 100_000;

/// The fields the org finds records by without a scan: the external id (upserts, duplicate
/// checks, copies) and an invitee's event (invitee queries, the cascade of an event's delete).
const INDEXED_FIELDS: [&str; 2] = [EXTERNAL_ID_FIELD, "EventId"];

fn random_token(len: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(CHARS[rng.gen_range(0..CHARS.len())]))
        .collect()
}

pub(super) fn new_secret(len: usize) -> String {
    random_token(len)
}

impl Db {
    /// A fresh org: two profiles, an integration user and two sales users.
    pub(super) fn fresh(schema: &Schema) -> anyhow::Result<Db> {
        let now = Utc::now();
        let mut db = Db {
            settings: Settings {
                org_id: String::new(),
                client_id: format!("3MVG9{}", random_token(80)),
                client_secret: random_token(64),
                control_token: random_token(40),
                integration_user_id: String::new(),
            },
            records: BTreeMap::new(),
            deleted_log: Vec::new(),
            next_serial: 1,
            api: ApiAllowance {
                used: 0,
                max: DEFAULT_DAILY_ALLOWANCE,
                window_start: now,
            },
            clock_offset_seconds: 0,
            touched: BTreeSet::new(),
            journaled_deletions: 0,
            indexed: HashMap::new(),
            version: next_version(),
        };
        db.settings.org_id = db.mint_id("00D");
        let admin = db.seed_profile(schema, "System Administrator", now)?;
        let standard = db.seed_profile(schema, "Standard User", now)?;
        let integration = db.seed_user(
            schema,
            "integration@exsync-sim.test",
            "Integration",
            "User",
            &admin,
            now,
        )?;
        db.settings.integration_user_id = integration;
        db.seed_user(
            schema,
            "alice@exsync-sim.test",
            "Alice",
            "Able",
            &standard,
            now,
        )?;
        db.seed_user(
            schema,
            "bob@exsync-sim.test",
            "Bob",
            "Baker",
            &standard,
            now,
        )?;
        Ok(db)
    }

    fn seed_profile(
        &mut self,
        schema: &Schema,
        name: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<String> {
        let fields = json!({ "Name": name });
        self.create(schema, "Profile", as_rec(fields), "", now)
            .map_err(|e| anyhow::anyhow!("seeding profile {name}: {e:?}"))
    }

    pub(super) fn seed_user(
        &mut self,
        schema: &Schema,
        username: &str,
        first: &str,
        last: &str,
        profile_id: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<String> {
        let fields = json!({
            "Username": username, "Email": username, "FirstName": first, "LastName": last,
            "ProfileId": profile_id, "TimeZoneSidKey": "Europe/London",
        });
        self.create(schema, "User", as_rec(fields), "", now)
            .map_err(|e| anyhow::anyhow!("seeding user {username}: {e:?}"))
    }

    /// The org's clock. Salesforce keeps datetimes to the second (milliseconds always read
    /// `.000`), so many records share a SystemModstamp; the simulator does the same.
    pub(super) fn now(&self) -> DateTime<Utc> {
        use chrono::SubsecRound;
        (Utc::now() + Duration::seconds(self.clock_offset_seconds)).trunc_subsecs(0)
    }

    /// The snapshot at `path` with the journal beside it replayed, or a fresh org.
    pub(super) fn load_or_create(path: &Path, schema: &Schema) -> anyhow::Result<Db> {
        if path.exists() {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let mut db: Db = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            super::changes::replay(path, &mut db)?;
            db.index_fields();
            db.version = next_version();
            Ok(db)
        } else {
            Db::fresh(schema)
        }
    }

    /// Writes the snapshot next to its final name (mode 0600: it holds the client secret),
    /// fsyncs it and renames it over, so a crash leaves either the old or the new state.
    /// Returns its size.
    pub(super) fn save(&self, path: &Path) -> anyhow::Result<u64> {
        let text = serde_json::to_vec(self).context("serialising the org state")?;
        crate::journal::write_atomic(path, &text)?;
        if let Some(dir) = path.parent() {
            crate::journal::sync_dir(dir)?;
        }
        Ok(text.len() as u64)
    }

    /// Notes that a record is written, for the next commit to the journal.
    fn touch(&mut self, object: &str, id: &str) {
        self.touched.insert((object.to_owned(), id.to_owned()));
        self.version = next_version();
    }

    /// The records' version: another one after every write.
    pub(super) fn version(&self) -> u64 {
        self.version
    }

    /// The records written since the last commit, as (object, id).
    pub(super) fn touched(&self) -> impl Iterator<Item = &(String, String)> {
        self.touched.iter()
    }

    /// How many entries of the deletion log were committed.
    pub(super) fn journaled_deletions(&self) -> usize {
        self.journaled_deletions
    }

    /// Marks everything so far as committed (after a journal record or a snapshot).
    pub(super) fn journaled(&mut self) {
        self.touched.clear();
        self.journaled_deletions = self.deleted_log.len();
    }

    /// A new 18-character id with the object's key prefix. Serials are fixed-width so ids
    /// sort in creation order.
    pub(super) fn mint_id(&mut self, prefix: &str) -> String {
        let mut n = self.next_serial;
        self.next_serial += 1;
        let mut digits = [b'0'; 10];
        for slot in digits.iter_mut().rev() {
            let d = (n % 36) as u8;
            *slot = if d < 10 { b'0' + d } else { b'A' + d - 10 };
            n /= 36;
        }
        let id15 = format!("{prefix}5S{}", String::from_utf8_lossy(&digits));
        let suffix = case_safe_suffix(&id15);
        format!("{id15}{suffix}")
    }

    /// Finds a live or deleted record by id (15 or 18 characters) in any object.
    pub(super) fn find(&self, schema: &Schema, id: &str) -> Option<(&'static str, &Rec)> {
        let object = schema.object_for_id(id)?;
        let full = full_id(id)?;
        self.records
            .get(object.name)?
            .get(&full)
            .map(|r| (object.name, r))
    }

    pub(super) fn live(&self, schema: &Schema, id: &str) -> Option<(&'static str, &Rec)> {
        self.find(schema, id).filter(|(_, r)| !is_deleted(r))
    }

    /// Ids of the live records of `object` whose `field` is `value`, in id order.
    pub(super) fn find_by_field(&self, object: &str, field: &str, value: &str) -> Vec<String> {
        let Some(records) = self.records.get(object) else {
            return Vec::new();
        };
        let holds = |r: &Rec| !is_deleted(r) && r.get(field).and_then(Value::as_str) == Some(value);
        let Some(named) = self.indexed(object, field, value) else {
            return records
                .iter()
                .filter(|(_, r)| holds(r))
                .map(|(id, _)| id.clone())
                .collect();
        };
        let mut ids: Vec<String> = named
            .filter(|id| records.get(*id).is_some_and(holds))
            .cloned()
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Ids of the records of `object` that were ever written with `field` equal to `value`
    /// ignoring case (as SOQL compares); they may have changed since. `None` when `field` is
    /// not one of [`INDEXED_FIELDS`], so the caller scans.
    pub(super) fn indexed<'a>(
        &'a self,
        object: &str,
        field: &str,
        value: &str,
    ) -> Option<impl Iterator<Item = &'a String> + 'a> {
        let field = INDEXED_FIELDS.into_iter().find(|f| *f == field)?;
        let ids = self
            .indexed
            .get(&(object.to_owned(), field, value.to_lowercase()));
        Some(ids.into_iter().flatten())
    }

    /// Notes `rec`'s indexed values before it is stored as record `id` of `object`.
    fn remember_indexed(&mut self, object: &str, id: &str, rec: &Rec) {
        for field in INDEXED_FIELDS {
            if let Some(value) = text_field(rec, field) {
                let ids = self
                    .indexed
                    .entry((object.to_owned(), field, value.to_lowercase()))
                    .or_default();
                if !ids.iter().any(|i| i == id) {
                    ids.push(id.to_owned());
                }
            }
        }
    }

    /// Builds the index of [`INDEXED_FIELDS`] from the records (after loading them).
    fn index_fields(&mut self) {
        self.indexed.clear();
        let records = std::mem::take(&mut self.records);
        for (object, recs) in &records {
            for (id, rec) in recs {
                self.remember_indexed(object, id, rec);
            }
        }
        self.records = records;
    }

    /// Stores a record as given, without the checks [`Db::create`] makes (lengths, formats,
    /// picklists, references, duplicates, defaults): data that reached an org before a rule
    /// existed, or through a path that skipped it, as a connector must be ready to read. Only
    /// the id, the audit fields, `IsDeleted`, unset booleans and a missing owner (the
    /// integration user) are filled in.
    pub(super) fn insert_unchecked(
        &mut self,
        schema: &Schema,
        object: &str,
        input: Rec,
        now: DateTime<Utc>,
    ) -> Result<String, Vec<RecordError>> {
        let def = schema.object(object).ok_or_else(|| {
            vec![RecordError::new(
                "INVALID_TYPE",
                format!("sObject type '{object}' is not supported."),
                &[],
            )]
        })?;
        let mut rec = Rec::new();
        for field in &def.fields {
            if field.ty == FieldType::Boolean {
                rec.insert(field.name.to_owned(), Value::Bool(false));
            }
        }
        rec.extend(input);
        let id = self.mint_id(def.prefix);
        rec.insert("Id".into(), Value::String(id.clone()));
        let actor = self.settings.integration_user_id.clone();
        if def.field("OwnerId").is_some() && rec.get("OwnerId").is_none_or(Value::is_null) {
            rec.insert("OwnerId".into(), Value::String(actor.clone()));
        }
        let stamp = Value::String(format_datetime(now));
        for field in ["CreatedDate", "LastModifiedDate", "SystemModstamp"] {
            rec.insert(field.into(), stamp.clone());
        }
        for field in ["CreatedById", "LastModifiedById"] {
            rec.insert(field.into(), Value::String(actor.clone()));
        }
        self.touch(def.name, &id);
        self.remember_indexed(def.name, &id, &rec);
        self.records
            .entry(def.name.to_owned())
            .or_default()
            .insert(id.clone(), rec);
        Ok(id)
    }

    /// Creates a record as `user_id` (empty: the record's own or the integration user).
    pub(super) fn create(
        &mut self,
        schema: &Schema,
        object: &str,
        input: Rec,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<String, Vec<RecordError>> {
        let def = schema.object(object).ok_or_else(|| {
            vec![RecordError::new(
                "INVALID_TYPE",
                format!("sObject type '{object}' is not supported."),
                &[],
            )]
        })?;
        if input.keys().any(|k| k.eq_ignore_ascii_case("Id")) {
            return Err(vec![RecordError::new(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                "cannot specify Id in an insert call",
                &["Id"],
            )]);
        }
        let mut rec = Rec::new();
        for field in &def.fields {
            if field.ty == FieldType::Boolean {
                rec.insert(field.name.to_owned(), Value::Bool(false));
            }
        }
        self.apply_input(schema, def, &mut rec, &input)?;
        let id = self.mint_id(def.prefix);
        let actor = if user_id.is_empty() {
            self.settings.integration_user_id.clone()
        } else {
            user_id.to_owned()
        };
        rec.insert("Id".into(), Value::String(id.clone()));
        if def.field("OwnerId").is_some()
            && rec.get("OwnerId").is_none_or(Value::is_null)
            && !actor.is_empty()
        {
            rec.insert("OwnerId".into(), Value::String(actor.clone()));
        }
        let stamp = Value::String(format_datetime(now));
        rec.insert("CreatedDate".into(), stamp.clone());
        rec.insert("LastModifiedDate".into(), stamp.clone());
        rec.insert("SystemModstamp".into(), stamp);
        if !actor.is_empty() {
            rec.insert("CreatedById".into(), Value::String(actor.clone()));
            rec.insert("LastModifiedById".into(), Value::String(actor));
        }
        self.defaults_and_rules(schema, def, &mut rec, &input, true)?;
        self.touch(def.name, &id);
        self.remember_indexed(def.name, &id, &rec);
        self.records
            .entry(def.name.to_owned())
            .or_default()
            .insert(id.clone(), rec);
        Ok(id)
    }

    /// Applies a PATCH to a live record of `object` (any object when `None`).
    pub(super) fn update(
        &mut self,
        schema: &Schema,
        object: Option<&str>,
        id: &str,
        input: Rec,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<String, Vec<RecordError>> {
        let def = match schema.object_for_id(id) {
            Some(def) if object.is_none_or(|o| o.eq_ignore_ascii_case(def.name)) => def,
            _ => {
                return Err(vec![RecordError::new(
                    "MALFORMED_ID",
                    format!("malformed id {id}"),
                    &["Id"],
                )])
            }
        };
        let full = full_id(id).ok_or_else(|| {
            vec![RecordError::new(
                "MALFORMED_ID",
                format!("malformed id {id}"),
                &["Id"],
            )]
        })?;
        let mut rec = match self.records.get(def.name).and_then(|r| r.get(&full)) {
            Some(r) if is_deleted(r) => {
                return Err(vec![RecordError::new(
                    "ENTITY_IS_DELETED",
                    "entity is deleted",
                    &[],
                )]);
            }
            Some(r) => r.clone(),
            None => {
                return Err(vec![RecordError::new(
                    "INVALID_CROSS_REFERENCE_KEY",
                    format!("invalid cross reference id: {id}"),
                    &[],
                )])
            }
        };
        let input: Rec = input
            .into_iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("Id"))
            .collect();
        self.apply_input(schema, def, &mut rec, &input)?;
        let stamp = Value::String(format_datetime(now));
        rec.insert("LastModifiedDate".into(), stamp.clone());
        rec.insert("SystemModstamp".into(), stamp);
        let actor = if user_id.is_empty() {
            self.settings.integration_user_id.clone()
        } else {
            user_id.to_owned()
        };
        rec.insert("LastModifiedById".into(), Value::String(actor));
        self.defaults_and_rules(schema, def, &mut rec, &input, false)?;
        self.touch(def.name, &full);
        self.remember_indexed(def.name, &full, &rec);
        self.records
            .entry(def.name.to_owned())
            .or_default()
            .insert(full.clone(), rec);
        Ok(full)
    }

    pub(super) fn delete(
        &mut self,
        schema: &Schema,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<String, RecordError> {
        let def = schema
            .object_for_id(id)
            .ok_or_else(|| RecordError::new("MALFORMED_ID", format!("malformed id {id}"), &[]))?;
        if matches!(def.name, "User" | "Profile") {
            return Err(RecordError::new(
                "INVALID_TYPE_FOR_OPERATION",
                format!("entity type {} does not support delete", def.name),
                &[],
            ));
        }
        let full = full_id(id)
            .ok_or_else(|| RecordError::new("MALFORMED_ID", format!("malformed id {id}"), &[]))?;
        let stamp = format_datetime(now);
        match self
            .records
            .get_mut(def.name)
            .and_then(|r| r.get_mut(&full))
        {
            None => {
                return Err(RecordError::new(
                    "INVALID_CROSS_REFERENCE_KEY",
                    format!("invalid cross reference id: {id}"),
                    &[],
                ))
            }
            Some(r) if is_deleted(r) => {
                return Err(RecordError::new(
                    "ENTITY_IS_DELETED",
                    "entity is deleted",
                    &[],
                ))
            }
            Some(r) => {
                r.insert("IsDeleted".into(), Value::Bool(true));
                r.insert("SystemModstamp".into(), Value::String(stamp.clone()));
                r.insert("LastModifiedDate".into(), Value::String(stamp));
            }
        }
        self.touch(def.name, &full);
        self.deleted_log.push(DeletedEntry {
            object: def.name.to_owned(),
            id: full.clone(),
            deleted: now,
        });
        // An event's invitee relations go with it, as in Salesforce.
        if def.name == "Event" {
            let children = self.find_by_field("EventRelation", "EventId", &full);
            for child in children {
                let _ = self.delete(schema, &child, now);
            }
        }
        Ok(full)
    }

    fn apply_input(
        &self,
        schema: &Schema,
        def: &ObjectDef,
        rec: &mut Rec,
        input: &Rec,
    ) -> Result<(), Vec<RecordError>> {
        let mut errors = Vec::new();
        for (key, value) in input {
            if key == "attributes" {
                continue;
            }
            let Some(field) = def.field(key) else {
                errors.push(RecordError::new(
                    "INVALID_FIELD",
                    format!("No such column '{key}' on sobject of type {}", def.name),
                    &[],
                ));
                continue;
            };
            if !field.writable {
                errors.push(RecordError::new(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    format!("Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.", field.name),
                    &[field.name],
                ));
                continue;
            }
            match self.check_value(schema, field, value) {
                Ok(v) => {
                    rec.insert(field.name.to_owned(), v);
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn check_value(
        &self,
        schema: &Schema,
        field: &FieldDef,
        value: &Value,
    ) -> Result<Value, RecordError> {
        if value.is_null() {
            return Ok(Value::Null);
        }
        let parse_error = || {
            RecordError::new(
                "JSON_PARSER_ERROR",
                format!(
                    "Cannot deserialize instance of {} from {value} for field {}",
                    type_name(field.ty),
                    field.name
                ),
                &[field.name],
            )
        };
        match field.ty {
            FieldType::String(max) | FieldType::TextArea(max) => {
                let s = match value {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => return Err(parse_error()),
                };
                if s.chars().count() > max {
                    return Err(RecordError::new(
                        "STRING_TOO_LONG",
                        format!(
                            "{}: data value too large: {} (max length={max})",
                            field.name,
                            truncate(&s, 40)
                        ),
                        &[field.name],
                    ));
                }
                Ok(Value::String(s))
            }
            FieldType::Phone => match value {
                Value::String(s) if s.chars().count() <= 40 => Ok(value.clone()),
                Value::String(s) => Err(RecordError::new(
                    "STRING_TOO_LONG",
                    format!(
                        "{}: data value too large: {} (max length=40)",
                        field.name,
                        truncate(s, 40)
                    ),
                    &[field.name],
                )),
                _ => Err(parse_error()),
            },
            FieldType::Email => match value {
                Value::String(s) if s.is_empty() => Ok(Value::Null),
                Value::String(s) if plausible_email(s) && s.len() <= 80 => Ok(value.clone()),
                Value::String(s) => Err(RecordError::new(
                    "INVALID_EMAIL_ADDRESS",
                    format!("{}: invalid email address: {}", field.name, truncate(s, 80)),
                    &[field.name],
                )),
                _ => Err(parse_error()),
            },
            FieldType::Boolean => match value {
                Value::Bool(_) => Ok(value.clone()),
                Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
                Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
                _ => Err(parse_error()),
            },
            FieldType::Int => match value.as_i64() {
                Some(n) => Ok(json!(n)),
                None => Err(parse_error()),
            },
            FieldType::DateTime => match value.as_str().and_then(parse_datetime) {
                Some(t) => Ok(Value::String(format_datetime(t))),
                None => Err(parse_error()),
            },
            FieldType::Date => match value.as_str() {
                Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .ok()
                    .or_else(|| parse_datetime(s).map(|t| t.date_naive()))
                    .map(|d| Value::String(d.format("%Y-%m-%d").to_string()))
                    .ok_or_else(parse_error),
                None => Err(parse_error()),
            },
            FieldType::Picklist(values) => match value.as_str() {
                Some(s) if values.contains(&s) => Ok(value.clone()),
                Some(s) => Err(RecordError::new(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    format!(
                        "{}: bad value for restricted picklist field: {s}",
                        field.name
                    ),
                    &[field.name],
                )),
                None => Err(parse_error()),
            },
            FieldType::Reference | FieldType::Id => {
                let s = value.as_str().ok_or_else(parse_error)?;
                let full = full_id(s).ok_or_else(|| {
                    RecordError::new(
                        "MALFORMED_ID",
                        format!("{}: id value of incorrect type: {s}", field.name),
                        &[field.name],
                    )
                })?;
                if self.live(schema, &full).is_none() {
                    return Err(RecordError::new(
                        "INVALID_CROSS_REFERENCE_KEY",
                        format!("invalid cross reference id: {s}"),
                        &[field.name],
                    ));
                }
                Ok(Value::String(full))
            }
        }
    }

    /// Derived fields and cross-field rules, after the input has been applied.
    fn defaults_and_rules(
        &self,
        schema: &Schema,
        def: &ObjectDef,
        rec: &mut Rec,
        input: &Rec,
        creating: bool,
    ) -> Result<(), Vec<RecordError>> {
        let missing: Vec<&str> = def
            .fields
            .iter()
            .filter(|f| {
                f.required
                    && rec
                        .get(f.name)
                        .is_none_or(|v| v.is_null() || v.as_str() == Some(""))
            })
            .map(|f| f.name)
            .collect();
        if !missing.is_empty() {
            return Err(vec![RecordError::new(
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", missing.join(", ")),
                &missing,
            )]);
        }
        if let Some(ext) = rec.get(EXTERNAL_ID_FIELD).and_then(Value::as_str) {
            let own = rec.get("Id").and_then(Value::as_str).unwrap_or_default();
            if let Some(other) = self
                .find_by_field(def.name, EXTERNAL_ID_FIELD, ext)
                .into_iter()
                .find(|i| i != own)
            {
                return Err(vec![RecordError::new(
                    "DUPLICATE_VALUE",
                    format!("duplicate value found: {EXTERNAL_ID_FIELD} duplicates value on record with id: {other}"),
                    &[EXTERNAL_ID_FIELD],
                )]);
            }
        }
        if matches!(def.name, "Contact" | "Lead" | "User") {
            let name = ["FirstName", "MiddleName", "LastName"]
                .iter()
                .filter_map(|f| rec.get(*f).and_then(Value::as_str))
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            rec.insert("Name".into(), Value::String(name));
        }
        match def.name {
            "User" if creating => {
                if rec.get("IsActive") == Some(&Value::Bool(false))
                    && !input.contains_key("IsActive")
                {
                    rec.insert("IsActive".into(), Value::Bool(true));
                }
                if rec.get("Alias").is_none_or(Value::is_null) {
                    let alias: String = rec
                        .get("LastName")
                        .and_then(Value::as_str)
                        .unwrap_or("user")
                        .chars()
                        .take(8)
                        .collect();
                    rec.insert("Alias".into(), Value::String(alias));
                }
            }
            "Lead" if rec.get("Status").is_none_or(Value::is_null) => {
                rec.insert(
                    "Status".into(),
                    Value::String("Open - Not Contacted".into()),
                );
            }
            "EventRelation" => {
                if creating && !input.contains_key("IsInvitee") {
                    rec.insert("IsInvitee".into(), Value::Bool(true));
                }
                if rec.get("Status").is_none_or(Value::is_null) {
                    rec.insert("Status".into(), Value::String("New".into()));
                }
                let event = rec
                    .get("EventId")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let relation = rec
                    .get("RelationId")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if schema.object_for_id(event).map(|o| o.name) != Some("Event") {
                    return Err(vec![RecordError::new(
                        "FIELD_INTEGRITY_EXCEPTION",
                        "EventId must be an event",
                        &["EventId"],
                    )]);
                }
                if !matches!(
                    schema.object_for_id(relation).map(|o| o.name),
                    Some("Contact" | "Lead" | "User")
                ) {
                    return Err(vec![RecordError::new(
                        "FIELD_INTEGRITY_EXCEPTION",
                        "RelationId must be a contact, lead or user",
                        &["RelationId"],
                    )]);
                }
                let own = rec.get("Id").and_then(Value::as_str).unwrap_or_default();
                let duplicate = self
                    .find_by_field("EventRelation", "EventId", event)
                    .iter()
                    .filter_map(|id| Some((id, self.records.get("EventRelation")?.get(id)?)))
                    .any(|(id, r)| {
                        r.get("RelationId").and_then(Value::as_str) == Some(relation) && id != own
                    });
                if duplicate {
                    return Err(vec![RecordError::new(
                        "DUPLICATE_VALUE",
                        "duplicate value found: RelationId duplicates value on record",
                        &["RelationId"],
                    )]);
                }
            }
            "Event" => event_rules(rec, input)?,
            _ => {}
        }
        Ok(())
    }
}

/// Salesforce refuses events longer than 14 days.
const MAX_EVENT_DAYS: i64 = 14;

fn event_rules(rec: &mut Rec, input: &Rec) -> Result<(), Vec<RecordError>> {
    let given = |name: &str| input.keys().any(|k| k.eq_ignore_ascii_case(name));
    let datetime = |rec: &Rec, name: &str| {
        rec.get(name)
            .and_then(Value::as_str)
            .and_then(parse_datetime)
    };
    let int = |rec: &Rec, name: &str| rec.get(name).and_then(Value::as_i64);
    if rec.get("ShowAs").is_none_or(Value::is_null) {
        rec.insert("ShowAs".into(), Value::String("Busy".into()));
    }
    let all_day = rec.get("IsAllDayEvent") == Some(&Value::Bool(true));
    if all_day {
        let day = if given("ActivityDate") {
            rec.get("ActivityDate")
                .and_then(Value::as_str)
                .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        } else if given("StartDateTime") {
            datetime(rec, "StartDateTime").map(|t| t.date_naive())
        } else {
            rec.get("ActivityDate")
                .and_then(Value::as_str)
                .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        };
        let Some(day) = day else {
            return Err(vec![RecordError::new(
                "REQUIRED_FIELD_MISSING",
                "Required fields are missing: [ActivityDate]",
                &["ActivityDate"],
            )]);
        };
        let days = if given("DurationInMinutes") && int(rec, "DurationInMinutes").is_some() {
            int(rec, "DurationInMinutes")
                .unwrap_or(1440)
                .saturating_add(1439)
                / 1440
        } else if given("EndDateTime") && datetime(rec, "EndDateTime").is_some() {
            let end = datetime(rec, "EndDateTime")
                .map(|t| t.date_naive())
                .unwrap_or(day);
            (end - day).num_days() + 1
        } else {
            int(rec, "DurationInMinutes")
                .map(|m| m.saturating_add(1439) / 1440)
                .unwrap_or(1)
        };
        if days < 1 {
            return Err(vec![RecordError::new(
                "FIELD_INTEGRITY_EXCEPTION",
                "End Date/Time: End time can't be before the start time.",
                &["EndDateTime"],
            )]);
        }
        if days > MAX_EVENT_DAYS {
            return Err(vec![RecordError::new(
                "FIELD_INTEGRITY_EXCEPTION",
                "Event duration cannot exceed 14 days",
                &["DurationInMinutes"],
            )]);
        }
        let start = day.and_time(chrono::NaiveTime::MIN).and_utc();
        rec.insert(
            "ActivityDate".into(),
            Value::String(day.format("%Y-%m-%d").to_string()),
        );
        rec.insert(
            "StartDateTime".into(),
            Value::String(format_datetime(start)),
        );
        rec.insert(
            "EndDateTime".into(),
            Value::String(format_datetime(start + Duration::days(days - 1))),
        );
        rec.insert("DurationInMinutes".into(), json!(days * 1440));
        rec.insert("ActivityDateTime".into(), Value::Null);
    } else {
        let start = if given("StartDateTime") {
            datetime(rec, "StartDateTime")
        } else if given("ActivityDateTime") {
            datetime(rec, "ActivityDateTime")
        } else {
            datetime(rec, "StartDateTime")
        };
        let Some(start) = start else {
            return Err(vec![RecordError::new(
                "REQUIRED_FIELD_MISSING",
                "Required fields are missing: [StartDateTime]",
                &["StartDateTime"],
            )]);
        };
        let minutes = if given("EndDateTime") && datetime(rec, "EndDateTime").is_some() {
            datetime(rec, "EndDateTime").map(|end| (end - start).num_minutes())
        } else if let Some(m) = int(rec, "DurationInMinutes") {
            Some(m)
        } else {
            datetime(rec, "EndDateTime").map(|end| (end - start).num_minutes())
        };
        let Some(minutes) = minutes else {
            return Err(vec![RecordError::new(
                "REQUIRED_FIELD_MISSING",
                "Required fields are missing: [DurationInMinutes]",
                &["DurationInMinutes"],
            )]);
        };
        if minutes < 0 {
            return Err(vec![RecordError::new(
                "FIELD_INTEGRITY_EXCEPTION",
                "End Date/Time: End time can't be before the start time.",
                &["EndDateTime"],
            )]);
        }
        if minutes > MAX_EVENT_DAYS * 24 * 60 {
            return Err(vec![RecordError::new(
                "FIELD_INTEGRITY_EXCEPTION",
                "Event duration cannot exceed 14 days",
                &["DurationInMinutes"],
            )]);
        }
        rec.insert(
            "StartDateTime".into(),
            Value::String(format_datetime(start)),
        );
        rec.insert(
            "ActivityDateTime".into(),
            Value::String(format_datetime(start)),
        );
        rec.insert(
            "ActivityDate".into(),
            Value::String(start.date_naive().format("%Y-%m-%d").to_string()),
        );
        rec.insert(
            "EndDateTime".into(),
            Value::String(format_datetime(start + Duration::minutes(minutes))),
        );
        rec.insert("DurationInMinutes".into(), json!(minutes));
    }
    if rec.get("IsRecurrence2") == Some(&Value::Bool(true)) {
        let rule = rec
            .get("Recurrence2PatternText")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !rule.to_ascii_uppercase().contains("FREQ=") {
            return Err(vec![RecordError::new(
                "FIELD_INTEGRITY_EXCEPTION",
                "Recurrence2PatternText: a recurring event needs an RRULE with FREQ",
                &["Recurrence2PatternText"],
            )]);
        }
        rec.insert(
            "Recurrence2PatternVersion".into(),
            Value::String("1".into()),
        );
    } else {
        rec.insert("Recurrence2PatternVersion".into(), Value::Null);
    }
    Ok(())
}

fn type_name(ty: FieldType) -> &'static str {
    match ty {
        FieldType::Boolean => "boolean",
        FieldType::Int => "int",
        FieldType::DateTime => "datetime",
        FieldType::Date => "date",
        FieldType::Reference | FieldType::Id => "reference",
        _ => "string",
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn plausible_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// The record's external id; the key in any case, as an unchecked record may spell it.
/// `rec`'s text in `field`, whatever the case of the name it was stored under.
fn text_field<'a>(rec: &'a Rec, field: &str) -> Option<&'a str> {
    rec.get(field)
        .or_else(|| {
            rec.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(field))
                .map(|(_, v)| v)
        })
        .and_then(Value::as_str)
}

pub(super) fn is_deleted(rec: &Rec) -> bool {
    rec.get("IsDeleted") == Some(&Value::Bool(true))
}

/// An 18-character id from a 15- or 18-character one (None when it cannot be an id).
pub(super) fn full_id(id: &str) -> Option<String> {
    if !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    match id.len() {
        15 => Some(format!("{id}{}", case_safe_suffix(id))),
        18 => Some(id.to_owned()),
        _ => None,
    }
}

pub(super) fn as_rec(value: Value) -> Rec {
    match value {
        Value::Object(map) => map,
        _ => Rec::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn ids_have_prefix_suffix_and_sort_in_creation_order() {
        let schema = Schema::standard();
        let mut db = Db::fresh(&schema).unwrap();
        let a = db.mint_id("003");
        let b = db.mint_id("003");
        assert_eq!(a.len(), 18);
        assert!(a.starts_with("003"));
        assert!(a < b);
        assert_eq!(full_id(&a[..15]).unwrap(), a);
    }

    #[test]
    fn validation_errors_carry_salesforce_codes() {
        let schema = Schema::standard();
        let mut db = Db::fresh(&schema).unwrap();
        let now = Utc::now();
        let err = db
            .create(
                &schema,
                "Contact",
                as_rec(json!({"FirstName": "A"})),
                "",
                now,
            )
            .unwrap_err();
        assert_eq!(err[0].code, "REQUIRED_FIELD_MISSING");
        let err = db
            .create(
                &schema,
                "Contact",
                as_rec(json!({"LastName": "A", "Email": "nope"})),
                "",
                now,
            )
            .unwrap_err();
        assert_eq!(err[0].code, "INVALID_EMAIL_ADDRESS");
        let err = db
            .create(
                &schema,
                "Event",
                as_rec(json!({"StartDateTime": "2024-05-01T10:00:00Z"})),
                "",
                now,
            )
            .unwrap_err();
        assert_eq!(err[0].code, "REQUIRED_FIELD_MISSING");
        let id = db
            .create(
                &schema,
                "Event",
                as_rec(json!({"StartDateTime": "2024-05-01T10:00:00Z", "DurationInMinutes": 30})),
                "",
                now,
            )
            .unwrap();
        let (_, rec) = db.find(&schema, &id).unwrap();
        assert_eq!(rec["EndDateTime"], "2024-05-01T10:30:00.000+0000");
        let id = db
            .create(&schema, "Event", as_rec(json!({"IsAllDayEvent": true, "ActivityDate": "2024-05-01", "DurationInMinutes": 2880})), "", now)
            .unwrap();
        let (_, rec) = db.find(&schema, &id).unwrap();
        assert_eq!(rec["EndDateTime"], "2024-05-02T00:00:00.000+0000");
    }

    #[test]
    fn an_external_id_is_unique_among_live_records_across_updates_deletes_and_restarts() {
        let schema = Schema::standard();
        let mut db = Db::fresh(&schema).unwrap();
        let now = Utc::now();
        let tagged =
            |name: &str, tag: &str| as_rec(json!({"LastName": name, (EXTERNAL_ID_FIELD): tag}));
        let first = db
            .create(&schema, "Contact", tagged("A", "x1"), "", now)
            .unwrap();
        let dup = db.create(&schema, "Contact", tagged("B", "x1"), "", now);
        assert_eq!(dup.unwrap_err()[0].code, "DUPLICATE_VALUE");
        // Retagged, the old value is free and the new one taken.
        db.update(
            &schema,
            Some("Contact"),
            &first,
            as_rec(json!({(EXTERNAL_ID_FIELD): "x2"})),
            "",
            now,
        )
        .unwrap();
        let second = db
            .create(&schema, "Contact", tagged("B", "x1"), "", now)
            .unwrap();
        assert_eq!(
            db.find_by_field("Contact", EXTERNAL_ID_FIELD, "x2"),
            vec![first.clone()]
        );
        // Deleted, its value is free again.
        db.delete(&schema, &second, now).unwrap();
        db.create(&schema, "Contact", tagged("C", "x1"), "", now)
            .unwrap();
        // After a load the index is rebuilt from the records.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        db.save(&path).unwrap();
        let mut back = Db::load_or_create(&path, &schema).unwrap();
        let dup = back.create(&schema, "Contact", tagged("D", "x2"), "", now);
        assert_eq!(dup.unwrap_err()[0].code, "DUPLICATE_VALUE");
    }

    /// The index of invitees by event stays a superset of the truth: a relation moved to
    /// another event is found under both (and filtered), and after a load it is rebuilt.
    #[test]
    fn an_events_invitees_are_found_by_index_across_moves_deletes_and_restarts() {
        let schema = Schema::standard();
        let mut db = Db::fresh(&schema).unwrap();
        let now = Utc::now();
        let event = |db: &mut Db| {
            db.create(&schema, "Event", as_rec(json!({"Subject": "S", "StartDateTime": "2024-05-01T10:00:00Z", "EndDateTime": "2024-05-01T11:00:00Z"})), "", now)
                .unwrap()
        };
        let (first, second) = (event(&mut db), event(&mut db));
        let contact = |db: &mut Db, name: &str| {
            db.create(
                &schema,
                "Contact",
                as_rec(json!({"LastName": name})),
                "",
                now,
            )
            .unwrap()
        };
        let (a, b) = (contact(&mut db, "A"), contact(&mut db, "B"));
        let relate = |db: &mut Db, event: &str, who: &str| {
            db.create(
                &schema,
                "EventRelation",
                as_rec(json!({"EventId": event, "RelationId": who})),
                "",
                now,
            )
        };
        let to_a = relate(&mut db, &first, &a).unwrap();
        let moved = relate(&mut db, &first, &b).unwrap();
        let dup = relate(&mut db, &first, &a);
        assert_eq!(dup.unwrap_err()[0].code, "DUPLICATE_VALUE");
        db.update(
            &schema,
            Some("EventRelation"),
            &moved,
            as_rec(json!({"EventId": second})),
            "",
            now,
        )
        .unwrap();
        assert_eq!(
            db.find_by_field("EventRelation", "EventId", &first),
            vec![to_a.clone()]
        );
        assert_eq!(
            db.find_by_field("EventRelation", "EventId", &second),
            vec![moved.clone()]
        );
        // The moved relation no longer holds its first event's place.
        relate(&mut db, &first, &b).unwrap();
        // An event's delete takes its own invitees only.
        db.delete(&schema, &first, now).unwrap();
        assert!(db.live(&schema, &to_a).is_none());
        assert!(db.live(&schema, &moved).is_some());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        db.save(&path).unwrap();
        let mut back = Db::load_or_create(&path, &schema).unwrap();
        let dup = relate(&mut back, &second, &b);
        assert_eq!(dup.unwrap_err()[0].code, "DUPLICATE_VALUE");
        back.delete(&schema, &second, now).unwrap();
        assert!(back.live(&schema, &moved).is_none());
    }

    #[test]
    fn an_unchecked_record_is_stored_as_given() {
        let schema = Schema::standard();
        let mut db = Db::fresh(&schema).unwrap();
        let long = "N".repeat(1000);
        let id = db
            .insert_unchecked(
                &schema,
                "Contact",
                as_rec(json!({"FirstName": long, "LastName": "X\u{0}", "Email": "a b@c.test"})),
                Utc::now(),
            )
            .unwrap();
        let (_, rec) = db.live(&schema, &id).unwrap();
        assert_eq!(rec["FirstName"], long);
        assert_eq!(rec["Email"], "a b@c.test");
        assert_eq!(rec["OwnerId"], db.settings.integration_user_id.as_str());
        assert!(rec.contains_key("SystemModstamp"));
    }
}
