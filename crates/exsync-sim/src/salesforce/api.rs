//! The REST resources under `/services/data/vXX.X/`: query / queryAll with cursors,
//! sObject rows and upsert by external id, sObject Collections, getUpdated / getDeleted,
//! describe and limits.

// Handlers return the finished error reply as their `Err`; one per request, so its size
// does not matter.
#![allow(clippy::result_large_err)]

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

use super::row::{self, get_ci, Row};
use super::schema::{reference_field_for, FieldType, ObjectDef, Schema};
use super::server::{
    empty_reply, json_reply, lock, not_found, sf_error, Org, QueryCursor, Reply, StampEntries,
    StampOrder,
};
use super::soql::{self, format_datetime, parse_datetime, Lookup, Path, Query};
use super::store::{as_rec, full_id, is_deleted, Db, Rec, RecordError};

/// The most records one sObject Collections call takes.
pub(super) const COLLECTION_MAX: usize = 200;
/// Query page size bounds (Salesforce: default and maximum 2000, minimum 200).
pub(super) const QUERY_BATCH_DEFAULT: usize = 2000;
pub(super) const QUERY_BATCH_MIN: usize = 200;
/// getUpdated and getDeleted reach back this far.
pub(super) const UPDATED_WINDOW_DAYS: i64 = 30;
pub(super) const DELETED_WINDOW_DAYS: i64 = 15;
/// Query cursors kept open at once; older ones are dropped as Salesforce expires them.
const MAX_CURSORS: usize = 200;

pub(super) struct Ctx<'a> {
    pub org: &'a Org,
    pub version: &'a str,
    pub user_id: &'a str,
    pub now: DateTime<Utc>,
    pub headers: &'a HeaderMap,
    pub query: &'a HashMap<String, String>,
}

impl Ctx<'_> {
    fn record_url(&self, object: &str, id: &str) -> String {
        row::record_url(self.version, object, id)
    }

    /// `rec` of `object` as this request reads it: the `fields` asked for.
    fn row<'a>(&'a self, db: &'a Db, object: &'a str, rec: &'a Rec, fields: &'a [Path]) -> Row<'a> {
        Row {
            schema: &self.org.schema,
            version: self.version,
            db,
            object,
            rec,
            fields,
        }
    }
}

pub(super) fn versions() -> Value {
    let list: Vec<Value> = [
        ("Winter '24", "59.0"),
        ("Spring '24", "60.0"),
        ("Summer '24", "61.0"),
        ("Winter '25", "62.0"),
    ]
    .iter()
    .map(|(label, v)| json!({"label": label, "url": format!("/services/data/v{v}"), "version": v}))
    .collect();
    Value::Array(list)
}

/// A stable name for the per-endpoint call counters.
pub(super) fn route_name(route: &[&str]) -> String {
    match route {
        [] => "resources".into(),
        ["query" | "queryAll", ..] if route.len() > 1 => format!("{}/more", route[0]),
        ["sobjects", _, "updated" | "deleted" | "describe"] => format!("sobjects/{}", route[2]),
        ["sobjects", _, _, _] => "sobjects/external-id".into(),
        ["sobjects", _, _] => "sobjects/row".into(),
        ["composite", "sobjects", ..] => "composite/sobjects".into(),
        [first, ..] => (*first).into(),
    }
}

/// Runs one REST request; the flag says whether the org's data changed.
pub(super) fn route(
    ctx: &Ctx,
    db: &mut Db,
    method: &Method,
    route: &[&str],
    body: &[u8],
) -> (Reply, bool) {
    let schema = &ctx.org.schema;
    let read = |r: Reply| (r, false);
    match (method.clone(), route) {
        (Method::GET, []) => read(json_reply(StatusCode::OK, &resources(ctx.version))),
        (Method::GET, ["limits"]) => read(json_reply(StatusCode::OK, &limits(db))),
        (Method::GET, [kind @ ("query" | "queryAll")]) => match ctx.query.get("q") {
            Some(q) => read(run_query(ctx, db, q, *kind == "queryAll")),
            None => read(sf_error(
                StatusCode::BAD_REQUEST,
                "MALFORMED_QUERY",
                "A query string has to be specified",
            )),
        },
        (Method::GET, [kind @ ("query" | "queryAll"), locator]) => {
            read(query_more(ctx, kind, locator))
        }
        (Method::GET, ["sobjects"]) => read(json_reply(StatusCode::OK, &describe_global(schema))),
        (_, ["sobjects", object, ..]) if schema.object(object).is_none() => read(not_found()),
        (Method::GET, ["sobjects", object]) => read(json_reply(
            StatusCode::OK,
            &json!({"objectDescribe": describe(schema, object, false), "recentItems": []}),
        )),
        (Method::GET, ["sobjects", object, "describe"]) => {
            read(json_reply(StatusCode::OK, &describe(schema, object, true)))
        }
        (Method::GET, ["sobjects", object, "updated"]) => read(updated(ctx, db, object)),
        (Method::GET, ["sobjects", object, "deleted"]) => read(deleted(ctx, db, object)),
        (Method::POST, ["sobjects", object]) => create_one(ctx, db, object, body),
        (Method::GET, ["sobjects", object, id]) => read(get_row(ctx, db, object, id)),
        (Method::PATCH, ["sobjects", object, id]) => update_one(ctx, db, object, id, body),
        (Method::DELETE, ["sobjects", object, id]) => delete_one(ctx, db, object, id),
        (Method::GET | Method::PATCH, ["sobjects", object, field, value]) => {
            by_external_id(ctx, db, method, object, field, value, body)
        }
        (Method::POST, ["composite", "sobjects"]) => collection_create(ctx, db, body),
        (Method::PATCH, ["composite", "sobjects"]) => collection_update(ctx, db, body),
        (Method::DELETE, ["composite", "sobjects"]) => collection_delete(ctx, db),
        (Method::PATCH, ["composite", "sobjects", object, field]) => {
            collection_upsert(ctx, db, object, field, body)
        }
        _ => read(not_found()),
    }
}

fn resources(version: &str) -> Value {
    let base = format!("/services/data/v{version}");
    json!({
        "sobjects": format!("{base}/sobjects"),
        "query": format!("{base}/query"),
        "queryAll": format!("{base}/queryAll"),
        "limits": format!("{base}/limits"),
        "composite": format!("{base}/composite"),
    })
}

fn limits(db: &Db) -> Value {
    json!({
        "DailyApiRequests": {"Max": db.api.max, "Remaining": db.api.max.saturating_sub(db.api.used)},
        "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
        "DataStorageMB": {"Max": 1024, "Remaining": 1000},
    })
}

fn type_label(ty: FieldType) -> &'static str {
    match ty {
        FieldType::Id => "id",
        FieldType::Reference => "reference",
        FieldType::String(_) => "string",
        FieldType::TextArea(_) => "textarea",
        FieldType::Email => "email",
        FieldType::Phone => "phone",
        FieldType::Boolean => "boolean",
        FieldType::Int => "int",
        FieldType::DateTime => "datetime",
        FieldType::Date => "date",
        FieldType::Picklist(_) => "picklist",
    }
}

fn describe_global(schema: &Schema) -> Value {
    let list: Vec<Value> = schema
        .objects
        .iter()
        .map(|o| describe(schema, o.name, false))
        .collect();
    json!({"encoding": "UTF-8", "maxBatchSize": COLLECTION_MAX, "sobjects": list})
}

fn describe(schema: &Schema, object: &str, with_fields: bool) -> Value {
    let Some(def) = schema.object(object) else {
        return Value::Null;
    };
    let mut out = json!({
        "name": def.name, "label": def.name, "keyPrefix": def.prefix, "custom": false,
        "createable": true, "updateable": true, "deletable": !matches!(def.name, "User" | "Profile"),
        "queryable": true, "replicateable": true,
        "urls": {"sobject": format!("/services/data/v59.0/sobjects/{}", def.name)},
    });
    if with_fields {
        let fields: Vec<Value> = def
            .fields
            .iter()
            .map(|f| {
                let length = match f.ty {
                    FieldType::String(n) | FieldType::TextArea(n) => n,
                    FieldType::Email => 80,
                    FieldType::Phone => 40,
                    FieldType::Id | FieldType::Reference => 18,
                    _ => 0,
                };
                let picklist: Vec<Value> = match f.ty {
                    FieldType::Picklist(values) => values
                        .iter()
                        .map(|v| json!({"value": v, "label": v, "active": true}))
                        .collect(),
                    _ => Vec::new(),
                };
                json!({
                    "name": f.name, "type": type_label(f.ty), "length": length,
                    "nillable": !f.required, "createable": f.writable, "updateable": f.writable,
                    "externalId": f.external_id, "idLookup": f.external_id || f.name == "Id",
                    "picklistValues": picklist,
                })
            })
            .collect();
        out["fields"] = Value::Array(fields);
    }
    out
}

/// A record's field values for the query evaluator, following parent relationships.
struct View<'a> {
    db: &'a Db,
    schema: &'a Schema,
    rec: &'a Rec,
}

impl<'a> View<'a> {
    /// A field of the record, or of a parent through a relationship; null when absent.
    fn field(&self, path: &[String]) -> Cow<'a, Value> {
        let found = match path {
            [field] => get_ci(self.rec, field),
            [relationship, field] => {
                let reference = reference_field_for(relationship);
                get_ci(self.rec, &reference)
                    .and_then(Value::as_str)
                    .and_then(|id| self.db.find(self.schema, id))
                    .and_then(|(_, parent)| get_ci(parent, field))
            }
            _ => None,
        };
        found.map_or(Cow::Owned(Value::Null), Cow::Borrowed)
    }
}

impl Lookup for View<'_> {
    fn value(&self, path: &[String]) -> Cow<'_, Value> {
        self.field(path)
    }
}

/// The records a filter can only match, when a top-level condition (beside any others
/// joined by AND) names them: `Id IN (…)` or `Id = '…'` whose ids are all records of `all` as
/// written (another spelling is left to the scan), or an indexed field (the external id, an
/// invitee's event) `IN (…)` or `= '…'`, through the org's index. Then only those records
/// need the filter, not every record of the object. `None`: scan.
fn named_records(
    filter: &soql::Expr,
    db: &Db,
    object: &str,
    all: &BTreeMap<String, Rec>,
) -> Option<BTreeSet<String>> {
    use soql::{CmpOp, Expr, Literal};
    let texts = |values: &[Literal]| -> Option<Vec<String>> {
        values
            .iter()
            .map(|v| match v {
                Literal::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    };
    match filter {
        Expr::And(a, b) => {
            named_records(a, db, object, all).or_else(|| named_records(b, db, object, all))
        }
        Expr::In {
            path,
            values,
            negated: false,
        } if path.len() == 1 && path[0] == "Id" => {
            let ids = texts(values)?;
            ids.iter()
                .all(|id| all.contains_key(id))
                .then(|| ids.into_iter().collect())
        }
        Expr::Cmp {
            path,
            op: CmpOp::Eq,
            value: Literal::Str(id),
        } if path.len() == 1 && path[0] == "Id" => {
            all.contains_key(id).then(|| BTreeSet::from([id.clone()]))
        }
        Expr::In {
            path,
            values,
            negated: false,
        } if path.len() == 1 => {
            let mut named = BTreeSet::new();
            for value in texts(values)? {
                named.extend(db.indexed(object, &path[0], &value)?.cloned());
            }
            Some(named)
        }
        Expr::Cmp {
            path,
            op: CmpOp::Eq,
            value: Literal::Str(value),
        } if path.len() == 1 => Some(db.indexed(object, &path[0], value)?.cloned().collect()),
        _ => None,
    }
}

/// Checks a field path against the object and returns it with canonical names.
fn canonical_path(
    schema: &Schema,
    def: &ObjectDef,
    path: &[String],
) -> Result<Path, (&'static str, String)> {
    match path {
        [field] => def.field(field).map(|f| vec![f.name.to_owned()]).ok_or_else(|| {
            (
                "INVALID_FIELD",
                format!(
                    "No such column '{field}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
                    def.name
                ),
            )
        }),
        [relationship, field] => {
            let reference = def
                .field(&reference_field_for(relationship))
                .filter(|f| f.ty == FieldType::Reference)
                .ok_or_else(|| {
                    (
                        "INVALID_FIELD",
                        format!(
                            "Didn't understand relationship '{relationship}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name."
                        ),
                    )
                })?;
            let relationship = match reference.name.strip_suffix("__c") {
                Some(base) => format!("{base}__r"),
                None => reference.name.trim_end_matches("Id").to_owned(),
            };
            let field = schema
                .objects
                .iter()
                .find_map(|o| o.field(field))
                .map(|f| f.name.to_owned())
                .ok_or_else(|| ("INVALID_FIELD", format!("No such column '{field}' on entity '{relationship}'.")))?;
            Ok(vec![relationship, field])
        }
        _ => Err(("MALFORMED_QUERY", "unsupported field path".into())),
    }
}

fn canonical_expr(
    schema: &Schema,
    def: &ObjectDef,
    expr: &soql::Expr,
) -> Result<soql::Expr, (&'static str, String)> {
    use soql::Expr;
    Ok(match expr {
        Expr::And(a, b) => Expr::And(
            Box::new(canonical_expr(schema, def, a)?),
            Box::new(canonical_expr(schema, def, b)?),
        ),
        Expr::Or(a, b) => Expr::Or(
            Box::new(canonical_expr(schema, def, a)?),
            Box::new(canonical_expr(schema, def, b)?),
        ),
        Expr::Not(a) => Expr::Not(Box::new(canonical_expr(schema, def, a)?)),
        Expr::Cmp { path, op, value } => Expr::Cmp {
            path: canonical_path(schema, def, path)?,
            op: *op,
            value: value.clone(),
        },
        Expr::In {
            path,
            values,
            negated,
        } => Expr::In {
            path: canonical_path(schema, def, path)?,
            values: values.clone(),
            negated: *negated,
        },
        Expr::Like { path, pattern } => Expr::Like {
            path: canonical_path(schema, def, path)?,
            pattern: pattern.clone(),
        },
        Expr::InText {
            path,
            lowered,
            negated,
        } => Expr::InText {
            path: canonical_path(schema, def, path)?,
            lowered: lowered.clone(),
            negated: *negated,
        },
    })
}

fn batch_size(headers: &HeaderMap) -> usize {
    let asked = headers
        .get("Sforce-Query-Options")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split([',', ';'])
                .filter_map(|part| part.trim().strip_prefix("batchSize="))
                .find_map(|n| n.trim().parse::<usize>().ok())
        });
    asked.map_or(QUERY_BATCH_DEFAULT, |n| {
        n.clamp(QUERY_BATCH_MIN, QUERY_BATCH_DEFAULT)
    })
}

/// The first `wanted` of `rows` (in id order) by `order`, ties kept in id order as a stable
/// sort keeps them. Each row's sort values are looked up once, not at every comparison, and
/// with a LIMIT, as a change query's page has, only the rows of the page are sorted, after a
/// partition: a page of a large org otherwise sorted every record of the object.
fn in_order<'a>(
    db: &'a Db,
    schema: &'a Schema,
    rows: Vec<&'a Rec>,
    order: &[soql::OrderItem],
    wanted: usize,
) -> Vec<&'a Rec> {
    let mut keyed: Vec<(Vec<Cow<'a, Value>>, usize, &'a Rec)> = rows
        .into_iter()
        .enumerate()
        .map(|(at, rec)| {
            let view = View { db, schema, rec };
            let keys = order.iter().map(|item| view.field(&item.path)).collect();
            (keys, at, rec)
        })
        .collect();
    let compare = |(a, at_a, _): &(Vec<Cow<'a, Value>>, usize, &Rec),
                   (b, at_b, _): &(Vec<Cow<'a, Value>>, usize, &Rec)| {
        order
            .iter()
            .zip(a.iter().zip(b))
            .map(|(item, (va, vb))| order_of(item, va, vb))
            .find(|ord| ord.is_ne())
            .unwrap_or_else(|| at_a.cmp(at_b))
    };
    if wanted < keyed.len() {
        keyed.select_nth_unstable_by(wanted, compare);
        keyed.truncate(wanted);
    }
    // Positions break every tie, so an unstable sort gives the stable order.
    keyed.sort_unstable_by(compare);
    keyed.into_iter().map(|(_, _, rec)| rec).collect()
}

/// How two records' values of one ORDER BY item compare, nulls first unless NULLS LAST.
fn order_of(item: &soql::OrderItem, a: &Value, b: &Value) -> Ordering {
    match (a.is_null(), b.is_null()) {
        (true, true) => Ordering::Equal,
        (true, false) if item.nulls_last => Ordering::Greater,
        (true, false) => Ordering::Less,
        (false, true) if item.nulls_last => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => {
            let ord = soql::compare_values(a, b);
            if item.descending {
                ord.reverse()
            } else {
                ord
            }
        }
    }
}

/// A change query (ORDER BY SystemModstamp, Id, as a connector pages through what changed)
/// over an object it would otherwise scan whole for every page: the object's records in that
/// order, kept until the next write, so that a page is read from its cursor on and stops when
/// full. `None` when the query is another, names its records, or when a record's stamp is not
/// in the form the org writes (then text order and time order could differ).
fn by_stamp(
    ctx: &Ctx,
    db: &Db,
    object: &str,
    all: &BTreeMap<String, Rec>,
    named: bool,
    order: &[soql::OrderItem],
) -> Option<StampEntries> {
    let ascending = |item: &soql::OrderItem, field: &str| {
        item.path == [field] && !item.descending && !item.nulls_last
    };
    let change_order =
        matches!(order, [stamp, id] if ascending(stamp, "SystemModstamp") && ascending(id, "Id"));
    if named || !change_order {
        return None;
    }
    let mut kept = lock(&ctx.org.stamp_order);
    if let Some(order) = kept.get(object).filter(|o| o.version == db.version()) {
        return Some(Arc::clone(&order.entries));
    }
    let entries = Arc::new(stamp_entries(all)?);
    kept.insert(
        object.to_owned(),
        StampOrder {
            version: db.version(),
            entries: Arc::clone(&entries),
        },
    );
    Some(entries)
}

/// The records as (SystemModstamp, Id), in the order ORDER BY SystemModstamp, Id gives them:
/// ids ignoring case, the scan's id order breaking ties. `None` if a stamp is not in the form
/// the org writes.
fn stamp_entries(all: &BTreeMap<String, Rec>) -> Option<Vec<(DateTime<Utc>, String)>> {
    let mut entries = all
        .iter()
        .map(|(id, rec)| {
            let stamp = rec.get("SystemModstamp").and_then(Value::as_str)?;
            Some((soql::stored_datetime(stamp)?, id.clone()))
        })
        .collect::<Option<Vec<_>>>()?;
    entries
        .sort_by(|(a, id_a), (b, id_b)| a.cmp(b).then_with(|| soql::cmp_ignoring_case(id_a, id_b)));
    Some(entries)
}

/// The first `wanted` records `keep` keeps, in `entries`' order, from the first that `floor`
/// does not pass over.
fn walk_from<'a>(
    entries: &[(DateTime<Utc>, String)],
    all: &'a BTreeMap<String, Rec>,
    floor: Option<Floor<'_>>,
    keep: impl FnMut(&&'a Rec) -> bool,
    wanted: usize,
) -> Vec<&'a Rec> {
    let from = floor.map_or(0, |floor| {
        entries.partition_point(|(stamp, id)| floor.passes_over(*stamp, id))
    });
    entries[from..]
        .iter()
        .filter_map(|(_, id)| all.get(id))
        .filter(keep)
        .take(wanted)
        .collect()
}

/// Where the records a change query can keep start in the stamp order, as its filter says:
/// at `stamp`, and there from what `above` lets through, as a connector's cursor
/// (`SystemModstamp > s OR (SystemModstamp = s AND Id > '…')`) says. Many records share a stamp
/// (a bulk load writes thousands in one second), so with the stamp alone every page read them
/// all again.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Floor<'a> {
    stamp: DateTime<Utc>,
    above: Above<'a>,
}

/// Which records at a [`Floor`]'s stamp the filter may keep.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Above<'a> {
    /// Any of them (`>=`, `=`).
    Any,
    /// Those whose id is above this one, ignoring case (`Id > '…'`).
    Id(&'a str),
    /// None of them (`>`).
    Nothing,
}

impl<'a> Floor<'a> {
    /// Whether an entry sorts before every record the filter keeps.
    fn passes_over(&self, stamp: DateTime<Utc>, id: &str) -> bool {
        stamp < self.stamp
            || (stamp == self.stamp
                && match self.above {
                    Above::Any => false,
                    Above::Id(above) => soql::cmp_ignoring_case(id, above).is_le(),
                    Above::Nothing => true,
                })
    }

    /// The lower of two floors: what either alternative of an OR may keep.
    fn lower(a: Floor<'a>, b: Floor<'a>) -> Floor<'a> {
        Floor::pick(a, b, Ordering::Less, Above::or)
    }

    /// The higher of two floors: what both conjuncts of an AND keep.
    fn higher(a: Floor<'a>, b: Floor<'a>) -> Floor<'a> {
        Floor::pick(a, b, Ordering::Greater, Above::and)
    }

    /// Of `a` and `b` the one whose stamp compares to the other's as `wanted`; at one stamp,
    /// their bounds joined by `join`.
    fn pick(
        a: Floor<'a>,
        b: Floor<'a>,
        wanted: Ordering,
        join: fn(Above<'a>, Above<'a>) -> Above<'a>,
    ) -> Floor<'a> {
        match a.stamp.cmp(&b.stamp) {
            Ordering::Equal => Floor {
                stamp: a.stamp,
                above: join(a.above, b.above),
            },
            ord if ord == wanted => a,
            _ => b,
        }
    }
}

impl<'a> Above<'a> {
    /// What either bound lets through.
    fn or(self, other: Above<'a>) -> Above<'a> {
        match (self, other) {
            (Above::Any, _) | (_, Above::Any) => Above::Any,
            (Above::Nothing, other) | (other, Above::Nothing) => other,
            (Above::Id(x), Above::Id(y)) => Above::Id(lowest(x, y)),
        }
    }

    /// What both bounds let through.
    fn and(self, other: Above<'a>) -> Above<'a> {
        match (self, other) {
            (Above::Nothing, _) | (_, Above::Nothing) => Above::Nothing,
            (Above::Any, other) | (other, Above::Any) => other,
            (Above::Id(x), Above::Id(y)) => Above::Id(if lowest(x, y) == x { y } else { x }),
        }
    }
}

/// The lower of two ids, ignoring case.
fn lowest<'a>(x: &'a str, y: &'a str) -> &'a str {
    if soql::cmp_ignoring_case(x, y).is_le() {
        x
    } else {
        y
    }
}

/// The [`Floor`] of `filter`, where it has one: a conjunct `SystemModstamp` `>`, `>=` or `=`
/// a datetime (or an OR of such), raised within its stamp by a conjunct `Id > '…'`.
fn stamp_floor(filter: &soql::Expr) -> Option<Floor<'_>> {
    use soql::{CmpOp, Expr, Literal};
    fn id_above(expr: &Expr) -> Above<'_> {
        match expr {
            Expr::Cmp {
                path,
                op: CmpOp::Gt,
                value: Literal::Str(id),
            } if path == &["Id"] => Above::Id(id),
            _ => Above::Any,
        }
    }
    match filter {
        Expr::And(a, b) => {
            let floor = match (stamp_floor(a), stamp_floor(b)) {
                (Some(x), Some(y)) => Floor::higher(x, y),
                (x, y) => x.or(y)?,
            };
            Some(Floor {
                above: floor.above.and(id_above(a)).and(id_above(b)),
                ..floor
            })
        }
        Expr::Or(a, b) => Some(Floor::lower(stamp_floor(a)?, stamp_floor(b)?)),
        Expr::Cmp {
            path,
            op: op @ (CmpOp::Gt | CmpOp::Ge | CmpOp::Eq),
            value: Literal::DateTime(t),
        } if path == &["SystemModstamp"] => Some(Floor {
            stamp: *t,
            above: if *op == CmpOp::Gt {
                Above::Nothing
            } else {
                Above::Any
            },
        }),
        _ => None,
    }
}

fn run_query(ctx: &Ctx, db: &Db, text: &str, include_deleted: bool) -> Reply {
    let schema = &ctx.org.schema;
    let query: Query = match soql::parse_at(text, ctx.now) {
        Ok(q) => q,
        Err(e) => return sf_error(StatusCode::BAD_REQUEST, e.code, &e.message),
    };
    let Some(def) = schema.object(&query.object) else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_TYPE",
            &format!("sObject type '{}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.", query.object),
        );
    };
    let checked = (|| {
        let fields = query
            .fields
            .iter()
            .map(|p| canonical_path(schema, def, p))
            .collect::<Result<Vec<_>, _>>()?;
        let filter = query
            .filter
            .as_ref()
            .map(|f| canonical_expr(schema, def, f))
            .transpose()?;
        let order = query
            .order
            .iter()
            .map(|o| {
                Ok(soql::OrderItem {
                    path: canonical_path(schema, def, &o.path)?,
                    ..o.clone()
                })
            })
            .collect::<Result<Vec<_>, (&'static str, String)>>()?;
        Ok::<_, (&'static str, String)>((fields, filter, order))
    })();
    let (fields, filter, order) = match checked {
        Ok(x) => x,
        Err((code, message)) => return sf_error(StatusCode::BAD_REQUEST, code, &message),
    };
    let empty = Default::default();
    let all = db.records.get(def.name).unwrap_or(&empty);
    // Records in id order either way, as the scan yields them.
    let named = filter
        .as_ref()
        .and_then(|f| named_records(f, db, def.name, all));
    let candidates: Box<dyn Iterator<Item = &Rec>> = match &named {
        Some(ids) => Box::new(ids.iter().filter_map(|id| all.get(id))),
        None => Box::new(all.values()),
    };
    let prepared = filter.clone().map(soql::prepare);
    let keep = |r: &&Rec| {
        (include_deleted || !is_deleted(r))
            && prepared
                .as_ref()
                .is_none_or(|f| soql::matches(f, &View { db, schema, rec: r }))
    };
    let wanted = query
        .offset
        .unwrap_or(0)
        .saturating_add(query.limit.unwrap_or(usize::MAX));
    let rows: Vec<&Rec> = match by_stamp(ctx, db, def.name, all, named.is_some(), &order) {
        Some(entries) => {
            let floor = prepared.as_ref().and_then(stamp_floor);
            walk_from(&entries, all, floor, keep, wanted)
        }
        None => {
            let rows: Vec<&Rec> = candidates.filter(keep).collect();
            if order.is_empty() {
                rows
            } else {
                in_order(db, schema, rows, &order, wanted)
            }
        }
    };
    let rows: Vec<&Rec> = rows
        .into_iter()
        .skip(query.offset.unwrap_or(0))
        .take(query.limit.unwrap_or(usize::MAX))
        .collect();
    if query.count_only {
        return json_reply(
            StatusCode::OK,
            &json!({"totalSize": rows.len(), "done": true, "records": []}),
        );
    }
    let rows: Vec<Row> = rows
        .iter()
        .map(|rec| ctx.row(db, def.name, rec, &fields))
        .collect();
    page(ctx, &rows, batch_size(ctx.headers), include_deleted)
}

/// A page of a query's records as Salesforce writes it.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct QueryPage<'a, R> {
    total_size: usize,
    done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_records_url: Option<String>,
    records: &'a [R],
}

/// The first page of `rows`, and a cursor that keeps the rest when there is more.
fn page(ctx: &Ctx, rows: &[Row], batch: usize, include_deleted: bool) -> Reply {
    let total = rows.len();
    if total <= batch {
        return json_reply(
            StatusCode::OK,
            &QueryPage {
                total_size: total,
                done: true,
                next_records_url: None,
                records: rows,
            },
        );
    }
    let (first, rest) = rows.split_at(batch);
    let serial = {
        let mut next = lock(&ctx.org.next_cursor);
        *next += 1;
        *next
    };
    let mut cursors = lock(&ctx.org.cursors);
    while cursors.len() >= MAX_CURSORS {
        cursors.pop_first();
    }
    cursors.insert(
        serial,
        QueryCursor {
            records: rest.iter().map(Row::to_value).collect(),
            batch,
        },
    );
    let endpoint = if include_deleted { "queryAll" } else { "query" };
    let next = format!(
        "/services/data/v{}/{endpoint}/01gSIM{serial:09}-{batch}",
        ctx.version
    );
    json_reply(
        StatusCode::OK,
        &QueryPage {
            total_size: total,
            done: false,
            next_records_url: Some(next),
            records: first,
        },
    )
}

fn query_more(ctx: &Ctx, endpoint: &str, locator: &str) -> Reply {
    let invalid = || {
        sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        )
    };
    let Some((serial, offset)) = locator
        .strip_prefix("01gSIM")
        .and_then(|l| l.split_once('-'))
    else {
        return invalid();
    };
    let (Ok(serial), Ok(offset)) = (serial.parse::<u64>(), offset.parse::<usize>()) else {
        return invalid();
    };
    let cursors = lock(&ctx.org.cursors);
    let Some(cursor) = cursors.get(&serial) else {
        return invalid();
    };
    // `offset` counts from the start of the whole result; the cursor holds what followed
    // the first page.
    let Some(skip) = offset.checked_sub(cursor.batch) else {
        return invalid();
    };
    let total = cursor.records.len() + cursor.batch;
    let records = cursor.records.get(skip..).unwrap_or_default();
    let records = &records[..records.len().min(cursor.batch)];
    let consumed = offset + records.len();
    let next_records_url = (consumed < total).then(|| {
        format!(
            "/services/data/v{}/{endpoint}/01gSIM{serial:09}-{consumed}",
            ctx.version
        )
    });
    json_reply(
        StatusCode::OK,
        &QueryPage {
            total_size: total,
            done: consumed >= total,
            next_records_url,
            records,
        },
    )
}

fn window_args(ctx: &Ctx, days: i64) -> Result<(DateTime<Utc>, DateTime<Utc>), Reply> {
    let arg = |name: &str| {
        ctx.query
            .get(name)
            .and_then(|v| parse_datetime(v))
            .ok_or_else(|| {
                sf_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_REPLICATION_DATE",
                    &format!("{name} is missing or not a valid date/time"),
                )
            })
    };
    let (start, end) = (arg("start")?, arg("end")?);
    if start >= end {
        return Err(sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_REPLICATION_DATE",
            "startDate must chronologically precede endDate",
        ));
    }
    if start < ctx.now - Duration::days(days) {
        return Err(sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_REPLICATION_DATE",
            &format!("startDate cannot be more than {days} days ago"),
        ));
    }
    Ok((start, end.min(ctx.now)))
}

fn updated(ctx: &Ctx, db: &Db, object: &str) -> Reply {
    let (start, end) = match window_args(ctx, UPDATED_WINDOW_DAYS) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let name = ctx.org.schema.object(object).map_or(object, |o| o.name);
    let ids: Vec<Value> = db
        .records
        .get(name)
        .map(|all| {
            all.values()
                .filter(|r| !is_deleted(r))
                .filter(|r| {
                    r.get("SystemModstamp")
                        .and_then(Value::as_str)
                        .and_then(parse_datetime)
                        .is_some_and(|t| t >= start && t <= end)
                })
                .filter_map(|r| r.get("Id").cloned())
                .collect()
        })
        .unwrap_or_default();
    json_reply(
        StatusCode::OK,
        &json!({"ids": ids, "latestDateCovered": format_datetime(end)}),
    )
}

fn deleted(ctx: &Ctx, db: &Db, object: &str) -> Reply {
    let (start, end) = match window_args(ctx, DELETED_WINDOW_DAYS) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let name = ctx.org.schema.object(object).map_or(object, |o| o.name);
    let records: Vec<Value> = db
        .deleted_log
        .iter()
        .filter(|d| d.object == name && d.deleted >= start && d.deleted <= end)
        .map(|d| json!({"id": d.id, "deletedDate": format_datetime(d.deleted)}))
        .collect();
    json_reply(
        StatusCode::OK,
        &json!({
            "deletedRecords": records,
            "earliestDateAvailable": format_datetime(ctx.now - Duration::days(DELETED_WINDOW_DAYS)),
            "latestDateCovered": format_datetime(end),
        }),
    )
}

fn parse_body(body: &[u8]) -> Result<Value, Reply> {
    serde_json::from_slice(body).map_err(|e| {
        sf_error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            &format!("The request body is not valid JSON: {e}"),
        )
    })
}

fn errors_reply(status: StatusCode, errors: &[RecordError]) -> Reply {
    let list: Vec<Value> = errors
        .iter()
        .map(|e| json!({"message": e.message, "errorCode": e.code, "fields": e.fields}))
        .collect();
    json_reply(status, &Value::Array(list))
}

fn status_for(errors: &[RecordError]) -> StatusCode {
    match errors.first().map(|e| e.code.as_str()) {
        Some("INVALID_CROSS_REFERENCE_KEY" | "ENTITY_IS_DELETED") => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    }
}

fn create_one(ctx: &Ctx, db: &mut Db, object: &str, body: &[u8]) -> (Reply, bool) {
    let input = match parse_body(body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => {
            return (
                sf_error(
                    StatusCode::BAD_REQUEST,
                    "JSON_PARSER_ERROR",
                    "expected a JSON object",
                ),
                false,
            )
        }
        Err(r) => return (r, false),
    };
    match db.create(&ctx.org.schema, object, input, ctx.user_id, ctx.now) {
        Ok(id) => (
            json_reply(
                StatusCode::CREATED,
                &json!({"id": id, "success": true, "errors": []}),
            ),
            true,
        ),
        Err(errors) => (errors_reply(StatusCode::BAD_REQUEST, &errors), false),
    }
}

fn full_record(ctx: &Ctx, db: &Db, def: &ObjectDef, rec: &Rec) -> Value {
    let wanted: Option<Vec<String>> = ctx
        .query
        .get("fields")
        .map(|f| f.split(',').map(|s| s.trim().to_owned()).collect());
    let fields: Vec<Path> = def
        .fields
        .iter()
        .filter(|f| {
            wanted
                .as_ref()
                .is_none_or(|w| w.iter().any(|x| x.eq_ignore_ascii_case(f.name)))
        })
        .map(|f| vec![f.name.to_owned()])
        .collect();
    ctx.row(db, def.name, rec, &fields).to_value()
}

fn get_row(ctx: &Ctx, db: &Db, object: &str, id: &str) -> Reply {
    let schema = &ctx.org.schema;
    let Some(def) = schema.object(object) else {
        return not_found();
    };
    match db.live(schema, id) {
        Some((name, rec)) if name == def.name => {
            json_reply(StatusCode::OK, &full_record(ctx, db, def, rec))
        }
        _ if full_id(id).is_none() => sf_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("Provided external ID field does not exist or is not accessible: {id}"),
        ),
        _ => not_found(),
    }
}

fn update_one(ctx: &Ctx, db: &mut Db, object: &str, id: &str, body: &[u8]) -> (Reply, bool) {
    let input = match parse_body(body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => {
            return (
                sf_error(
                    StatusCode::BAD_REQUEST,
                    "JSON_PARSER_ERROR",
                    "expected a JSON object",
                ),
                false,
            )
        }
        Err(r) => return (r, false),
    };
    let name = ctx.org.schema.object(object).map_or(object, |o| o.name);
    match db.update(&ctx.org.schema, Some(name), id, input, ctx.user_id, ctx.now) {
        Ok(_) => (empty_reply(StatusCode::NO_CONTENT), true),
        Err(errors)
            if errors.first().is_some_and(|e| {
                e.code == "INVALID_CROSS_REFERENCE_KEY" && e.fields.is_empty()
            }) =>
        {
            (not_found(), false)
        }
        Err(errors) => (errors_reply(status_for(&errors), &errors), false),
    }
}

fn delete_one(ctx: &Ctx, db: &mut Db, object: &str, id: &str) -> (Reply, bool) {
    let schema = &ctx.org.schema;
    let name = schema.object(object).map_or(object, |o| o.name);
    if schema.object_for_id(id).map(|o| o.name) != Some(name) {
        return (not_found(), false);
    }
    match db.delete(schema, id, ctx.now) {
        Ok(_) => (empty_reply(StatusCode::NO_CONTENT), true),
        Err(e) if e.code == "INVALID_CROSS_REFERENCE_KEY" => (not_found(), false),
        Err(e) => (
            errors_reply(status_for(std::slice::from_ref(&e)), &[e]),
            false,
        ),
    }
}

fn by_external_id(
    ctx: &Ctx,
    db: &mut Db,
    method: &Method,
    object: &str,
    field: &str,
    value: &str,
    body: &[u8],
) -> (Reply, bool) {
    let schema = &ctx.org.schema;
    let Some(def) = schema.object(object) else {
        return (not_found(), false);
    };
    let Some(field_def) = def.field(field).filter(|f| f.external_id) else {
        return (
            sf_error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                &format!("Provided external ID field does not exist or is not accessible: {field}"),
            ),
            false,
        );
    };
    let value = percent_encoding::percent_decode_str(value)
        .decode_utf8_lossy()
        .into_owned();
    let matches = db.find_by_field(def.name, field_def.name, &value);
    if matches.len() > 1 {
        let urls: Vec<Value> = matches
            .iter()
            .map(|id| json!(ctx.record_url(def.name, id)))
            .collect();
        return (
            json_reply(StatusCode::MULTIPLE_CHOICES, &Value::Array(urls)),
            false,
        );
    }
    if *method == Method::GET {
        return match matches.first().and_then(|id| db.live(schema, id)) {
            Some((_, rec)) => (
                json_reply(StatusCode::OK, &full_record(ctx, db, def, rec)),
                false,
            ),
            None => (not_found(), false),
        };
    }
    let mut input = match parse_body(body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => {
            return (
                sf_error(
                    StatusCode::BAD_REQUEST,
                    "JSON_PARSER_ERROR",
                    "expected a JSON object",
                ),
                false,
            )
        }
        Err(r) => return (r, false),
    };
    match upsert_one(ctx, db, def, field_def.name, &value, &mut input) {
        Ok((id, true)) => (
            json_reply(
                StatusCode::CREATED,
                &json!({"id": id, "success": true, "errors": [], "created": true}),
            ),
            true,
        ),
        Ok((id, false)) => (
            json_reply(
                StatusCode::OK,
                &json!({"id": id, "success": true, "errors": [], "created": false}),
            ),
            true,
        ),
        Err(errors) if errors.first().is_some_and(|e| e.code == "NOT_FOUND") => {
            (not_found(), false)
        }
        Err(errors) => (errors_reply(StatusCode::BAD_REQUEST, &errors), false),
    }
}

/// Creates or updates the one record whose external id is `value`.
fn upsert_one(
    ctx: &Ctx,
    db: &mut Db,
    def: &ObjectDef,
    field: &str,
    value: &str,
    input: &mut Rec,
) -> Result<(String, bool), Vec<RecordError>> {
    let schema = &ctx.org.schema;
    input.retain(|k, _| !k.eq_ignore_ascii_case(field) && k != "attributes");
    let matches = db.find_by_field(def.name, field, value);
    match matches.as_slice() {
        [] if ctx.query.get("updateOnly").is_some_and(|v| v == "true") => {
            Err(vec![RecordError::new(
                "NOT_FOUND",
                "The requested resource does not exist",
                &[],
            )])
        }
        [] => {
            input.insert(field.to_owned(), Value::String(value.to_owned()));
            db.create(
                schema,
                def.name,
                std::mem::take(input),
                ctx.user_id,
                ctx.now,
            )
            .map(|id| (id, true))
        }
        [id] => db
            .update(
                schema,
                Some(def.name),
                id,
                std::mem::take(input),
                ctx.user_id,
                ctx.now,
            )
            .map(|id| (id, false)),
        _ => Err(vec![RecordError::new(
            "DUPLICATE_EXTERNAL_ID",
            format!("{field}: more than one record found for external id field: {matches:?}"),
            &[field],
        )]),
    }
}

fn records_arg(body: &[u8]) -> Result<(bool, Vec<Value>), Reply> {
    let value = parse_body(body)?;
    let all_or_none = value
        .get("allOrNone")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let records = match value.get("records") {
        Some(Value::Array(list)) => list.clone(),
        _ => {
            return Err(sf_error(
                StatusCode::BAD_REQUEST,
                "INVALID_FIELD",
                "records is required",
            ))
        }
    };
    if records.len() > COLLECTION_MAX {
        return Err(sf_error(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        ));
    }
    Ok((all_or_none, records))
}

type Outcome = Result<(String, Option<bool>), (Option<String>, Vec<RecordError>)>;

/// Applies each record in order; with allOrNone, any failure rolls every record back.
fn run_collection(
    db: &mut Db,
    all_or_none: bool,
    count: usize,
    mut apply: impl FnMut(&mut Db, usize) -> Outcome,
) -> (Reply, bool) {
    let snapshot = if all_or_none { Some(db.clone()) } else { None };
    let outcomes: Vec<Outcome> = (0..count).map(|i| apply(db, i)).collect();
    let failed = outcomes.iter().any(Result::is_err);
    let rolled_back = all_or_none && failed;
    if let (true, Some(snapshot)) = (rolled_back, snapshot) {
        *db = snapshot;
    }
    let results: Vec<Value> = outcomes
        .into_iter()
        .map(|o| match o {
            Ok((id, created)) if rolled_back => {
                let _ = created;
                json!({"id": id, "success": false, "errors": [{
                    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
                    "fields": [],
                }]})
            }
            Ok((id, Some(created))) => json!({"id": id, "success": true, "errors": [], "created": created}),
            Ok((id, None)) => json!({"id": id, "success": true, "errors": []}),
            Err((id, errors)) => json!({"id": id, "success": false, "errors": errors}),
        })
        .collect();
    (
        json_reply(StatusCode::OK, &Value::Array(results)),
        !rolled_back && count > 0,
    )
}

fn record_type(record: &Value) -> Option<String> {
    record
        .get("attributes")?
        .get("type")?
        .as_str()
        .map(str::to_owned)
}

fn collection_create(ctx: &Ctx, db: &mut Db, body: &[u8]) -> (Reply, bool) {
    let (all_or_none, records) = match records_arg(body) {
        Ok(x) => x,
        Err(r) => return (r, false),
    };
    run_collection(db, all_or_none, records.len(), |db, i| {
        let record = &records[i];
        let Some(object) = record_type(record) else {
            return Err((
                None,
                vec![RecordError::new(
                    "INVALID_TYPE",
                    "Must send a concrete entity type.",
                    &[],
                )],
            ));
        };
        let mut input = as_rec(record.clone());
        input.remove("attributes");
        db.create(&ctx.org.schema, &object, input, ctx.user_id, ctx.now)
            .map(|id| (id, None))
            .map_err(|e| (None, e))
    })
}

fn collection_update(ctx: &Ctx, db: &mut Db, body: &[u8]) -> (Reply, bool) {
    let (all_or_none, records) = match records_arg(body) {
        Ok(x) => x,
        Err(r) => return (r, false),
    };
    run_collection(db, all_or_none, records.len(), |db, i| {
        let record = &records[i];
        let id = get_ci(&as_rec(record.clone()), "id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let Some(id) = id else {
            return Err((
                None,
                vec![RecordError::new(
                    "MISSING_ARGUMENT",
                    "Id not specified in an update call",
                    &[],
                )],
            ));
        };
        let object = record_type(record);
        let mut input = as_rec(record.clone());
        input.remove("attributes");
        db.update(
            &ctx.org.schema,
            object.as_deref(),
            &id,
            input,
            ctx.user_id,
            ctx.now,
        )
        .map(|id| (id, None))
        .map_err(|e| (Some(id), e))
    })
}

fn collection_delete(ctx: &Ctx, db: &mut Db) -> (Reply, bool) {
    let ids: Vec<String> = ctx
        .query
        .get("ids")
        .map(|s| {
            s.split(',')
                .map(|x| x.trim().to_owned())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() {
        return (
            sf_error(
                StatusCode::BAD_REQUEST,
                "MISSING_ARGUMENT",
                "ids is required",
            ),
            false,
        );
    }
    if ids.len() > COLLECTION_MAX {
        return (
            sf_error(
                StatusCode::BAD_REQUEST,
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
            ),
            false,
        );
    }
    let all_or_none = ctx.query.get("allOrNone").is_some_and(|v| v == "true");
    run_collection(db, all_or_none, ids.len(), |db, i| {
        db.delete(&ctx.org.schema, &ids[i], ctx.now)
            .map(|id| (id, None))
            .map_err(|e| (Some(ids[i].clone()), vec![e]))
    })
}

fn collection_upsert(
    ctx: &Ctx,
    db: &mut Db,
    object: &str,
    field: &str,
    body: &[u8],
) -> (Reply, bool) {
    let schema = &ctx.org.schema;
    let Some(def) = schema.object(object) else {
        return (not_found(), false);
    };
    let Some(field_def) = def.field(field).filter(|f| f.external_id) else {
        return (
            sf_error(
                StatusCode::BAD_REQUEST,
                "INVALID_FIELD",
                &format!(
                    "Field name provided, {field} is not an External ID or indexed field for {}",
                    def.name
                ),
            ),
            false,
        );
    };
    let (all_or_none, records) = match records_arg(body) {
        Ok(x) => x,
        Err(r) => return (r, false),
    };
    run_collection(db, all_or_none, records.len(), |db, i| {
        let mut input = as_rec(records[i].clone());
        let Some(value) = get_ci(&input, field_def.name)
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return Err((
                None,
                vec![RecordError::new(
                    "MISSING_ARGUMENT",
                    format!("{} not specified", field_def.name),
                    &[field_def.name],
                )],
            ));
        };
        upsert_one(ctx, db, def, field_def.name, &value, &mut input)
            .map(|(id, created)| (id, Some(created)))
            .map_err(|e| (None, e))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A change query's page read from the stamp order, from its cursor on, holds what the
    /// scan and the sort give, whatever the cursor, with many records sharing a stamp.
    #[test]
    fn a_change_page_from_the_stamp_order_is_the_page_the_scan_gives() {
        let schema = Schema::standard();
        let db = Db::fresh(&schema).unwrap();
        let mut all = BTreeMap::new();
        for n in 0..120u32 {
            let mut rec = Rec::new();
            // Ids not in stamp order and in mixed case, stamps shared by many, a few deleted.
            let id = format!(
                "003{:012}{}",
                (n * 37) % 120,
                ["xYz", "XyZ", "xyz"][n as usize % 3]
            );
            rec.insert("Id".into(), json!(id));
            let stamp = format!("2024-05-01T10:00:0{}.000+0000", n % 7);
            rec.insert("SystemModstamp".into(), json!(stamp));
            rec.insert("IsDeleted".into(), json!(n % 11 == 0));
            all.insert(id, rec);
        }
        let entries = stamp_entries(&all).unwrap();
        let now = soql::parse_datetime("2024-06-01T00:00:00Z").unwrap();
        let cursor = |second: u32, last: u32| {
            format!(
                "(SystemModstamp > 2024-05-01T10:00:0{second}.000+0000 \
                 OR (SystemModstamp = 2024-05-01T10:00:0{second}.000+0000 AND Id > '003{last:012}XYZ')) \
                 AND SystemModstamp <= 2024-05-01T10:00:05Z"
            )
        };
        let from = |second: u32, last: u32| {
            format!(
                "SystemModstamp >= 2024-05-01T10:00:0{second}.000+0000 AND Id > '003{last:012}xyy'"
            )
        };
        let either = |second: u32, last: u32| {
            format!(
                "((SystemModstamp = 2024-05-01T10:00:0{second}.000+0000 AND Id > '003{last:012}XYZ') \
                 OR (SystemModstamp = 2024-05-01T10:00:0{second}.000+0000 AND Id > '003{:012}xyz'))",
                last / 2
            )
        };
        let shapes: [&dyn Fn(u32, u32) -> String; 3] = [&cursor, &from, &either];
        for (shape, (second, last)) in shapes.iter().flat_map(|shape| {
            [(0, 0), (2, 40), (3, 119), (6, 5), (6, 119), (9, 0)].map(|c| (shape, c))
        }) {
            for limit in [1, 7, 50, 500] {
                let text = format!(
                    "SELECT Id FROM Contact WHERE {} ORDER BY SystemModstamp ASC, Id ASC LIMIT {limit}",
                    shape(second, last)
                );
                let query = soql::parse_at(&text, now).unwrap();
                let filter = soql::prepare(query.filter.clone().unwrap());
                let keep = |r: &&Rec| {
                    !is_deleted(r)
                        && soql::matches(
                            &filter,
                            &View {
                                db: &db,
                                schema: &schema,
                                rec: r,
                            },
                        )
                };
                let scanned: Vec<&Rec> = all.values().filter(keep).collect();
                let expected = in_order(&db, &schema, scanned, &query.order, limit);
                let floor = stamp_floor(&filter);
                // The id bound counts: a page does not read again what shares the cursor's stamp.
                assert!(floor.is_some_and(|f| f.above != Above::Any), "{text}");
                let walked = walk_from(&entries, &all, floor, keep, limit);
                let ids = |rows: &[&Rec]| -> Vec<String> {
                    rows.iter()
                        .map(|r| r["Id"].as_str().unwrap().to_owned())
                        .collect()
                };
                assert_eq!(ids(&walked), ids(&expected), "{text}");
            }
        }
    }

    /// A page taken after a partition comes out as the first rows of a full stable sort
    /// would: same rows, same order, ties in id order, nulls where NULLS FIRST/LAST put them.
    #[test]
    fn a_page_in_order_is_the_head_of_the_whole_sorted_object() {
        let schema = Schema::standard();
        let db = Db::fresh(&schema).unwrap();
        let mut seed = 7u64;
        let mut next = move |n: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % n
        };
        // Few distinct values, so that ties and nulls are common.
        let recs: Vec<Rec> = (0..300)
            .map(|_| {
                let mut rec = Rec::new();
                let stamp = next(4);
                if stamp > 0 {
                    rec.insert(
                        "SystemModstamp".into(),
                        json!(format!("2024-05-0{stamp}T10:00:00.000+0000")),
                    );
                }
                rec.insert("LastName".into(), json!(["a", "B", "c"][next(3) as usize]));
                rec
            })
            .collect();
        let rows: Vec<&Rec> = recs.iter().collect();
        let path = |field: &str| vec![field.to_owned()];
        for (descending, nulls_last) in [(false, false), (true, false), (false, true), (true, true)]
        {
            let order = [
                soql::OrderItem {
                    path: path("SystemModstamp"),
                    descending,
                    nulls_last,
                },
                soql::OrderItem {
                    path: path("LastName"),
                    descending: !descending,
                    nulls_last: false,
                },
            ];
            let mut whole = rows.clone();
            whole.sort_by(|a, b| {
                order
                    .iter()
                    .map(|item| {
                        let (va, vb) = (
                            View {
                                db: &db,
                                schema: &schema,
                                rec: a,
                            }
                            .field(&item.path),
                            View {
                                db: &db,
                                schema: &schema,
                                rec: b,
                            }
                            .field(&item.path),
                        );
                        order_of(item, &va, &vb)
                    })
                    .find(|ord| ord.is_ne())
                    .unwrap_or(Ordering::Equal)
            });
            for wanted in [0, 1, 17, 150, 299, 300, usize::MAX] {
                let page = in_order(&db, &schema, rows.clone(), &order, wanted);
                let head: Vec<&Rec> = whole.iter().copied().take(wanted).collect();
                assert!(
                    page.len() == head.len()
                        && page.iter().zip(&head).all(|(a, b)| std::ptr::eq(*a, *b)),
                    "descending {descending}, nulls last {nulls_last}, wanted {wanted}"
                );
            }
        }
    }
}
