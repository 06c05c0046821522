//! The test-only control API under `/_control/`, protected by its own bearer token:
//! seeding users and records, fault injection, token expiry, the API allowance, the clock
//! and per-endpoint call counters.

use std::collections::HashMap;

use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

use super::server::{json_reply, lock, Faults, Org, Reply};
use super::soql::{format_datetime, parse_datetime};
use super::store::as_rec;

const MAX_CLOCK_SHIFT: i64 = 10 * 366 * 24 * 3600;

fn error(status: StatusCode, message: &str) -> Reply {
    json_reply(status, &json!({"error": message}))
}

fn authorised(org: &Org, headers: &HeaderMap) -> bool {
    let expected = lock(&org.db).settings.control_token.clone();
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| constant_time_eq(t.trim().as_bytes(), expected.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(super) fn handle(
    org: &Org,
    method: &Method,
    path: &str,
    _query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Reply {
    if !authorised(org, headers) {
        return error(StatusCode::UNAUTHORIZED, "control token missing or wrong");
    }
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("body is not JSON: {e}")),
        }
    };
    match (method.clone(), path.trim_end_matches('/')) {
        (Method::POST, "/seed") => seed(org, &body),
        (Method::GET, "/faults") => json_reply(StatusCode::OK, &json!(*lock(&org.faults))),
        (Method::POST | Method::PUT, "/faults") => match serde_json::from_value::<Faults>(body) {
            Ok(faults) => {
                *lock(&org.faults) = faults.clone();
                json_reply(StatusCode::OK, &json!(faults))
            }
            Err(e) => error(StatusCode::BAD_REQUEST, &format!("bad faults: {e}")),
        },
        (Method::DELETE, "/faults") => {
            *lock(&org.faults) = Faults::default();
            json_reply(StatusCode::OK, &json!(Faults::default()))
        }
        (Method::POST, "/expire-tokens") => {
            let n = lock(&org.sessions).expire_all();
            json_reply(StatusCode::OK, &json!({"expired": n}))
        }
        (Method::GET, "/limits") => {
            let db = lock(&org.db);
            json_reply(
                StatusCode::OK,
                &json!({"used": db.api.used, "max": db.api.max}),
            )
        }
        (Method::POST, "/limits") => {
            let mut db = lock(&org.db);
            if let Some(max) = body.get("max").and_then(Value::as_u64) {
                db.api.max = max;
            }
            if let Some(used) = body.get("used").and_then(Value::as_u64) {
                db.api.used = used;
            }
            if body.get("exhaust").and_then(Value::as_bool) == Some(true) {
                db.api.used = db.api.max;
            }
            org.save(&mut db);
            json_reply(
                StatusCode::OK,
                &json!({"used": db.api.used, "max": db.api.max}),
            )
        }
        (Method::POST, "/clock") => {
            let mut db = lock(&org.db);
            if let Some(offset) = body.get("offset_seconds").and_then(Value::as_i64) {
                db.clock_offset_seconds = offset;
            }
            if let Some(advance) = body.get("advance_seconds").and_then(Value::as_i64) {
                db.clock_offset_seconds = db.clock_offset_seconds.saturating_add(advance);
            }
            // Ten years either way is plenty for any window test and keeps dates in range.
            db.clock_offset_seconds = db
                .clock_offset_seconds
                .clamp(-MAX_CLOCK_SHIFT, MAX_CLOCK_SHIFT);
            org.save(&mut db);
            json_reply(
                StatusCode::OK,
                &json!({"offset_seconds": db.clock_offset_seconds, "now": format_datetime(db.now())}),
            )
        }
        (Method::GET, "/counters") => {
            let counters = lock(&org.counters).clone();
            let total: u64 = counters
                .iter()
                .filter(|(k, _)| !k.starts_with("fault."))
                .map(|(_, v)| v)
                .sum();
            json_reply(
                StatusCode::OK,
                &json!({"counters": counters, "total": total}),
            )
        }
        (Method::POST, "/counters/reset") | (Method::DELETE, "/counters") => {
            lock(&org.counters).clear();
            json_reply(StatusCode::OK, &json!({"reset": true}))
        }
        _ => error(StatusCode::NOT_FOUND, "no such control resource"),
    }
}

/// `{"users": [{username, first_name, last_name, profile, email, time_zone, fields}], "records": [{attributes: {type}, …}]}`.
/// A user's `time_zone` is their `TimeZoneSidKey` (default `Europe/London`); `fields` sets
/// other `User` fields by API name (`FederationIdentifier`, `Exchange_Mailbox__c`), checked as
/// an update would be.
/// Records may carry `CreatedDate` / `LastModifiedDate` / `SystemModstamp` to backdate them.
/// A record with `"unchecked": true` is stored as given, past Salesforce's validation, and a
/// user's `email` is stored even when Salesforce would refuse it: the data a connector must
/// survive in an org that holds it (imported before a rule existed, or written around it).
fn seed(org: &Org, body: &Value) -> Reply {
    let schema = &org.schema;
    let mut db = lock(&org.db);
    let now = db.now();
    let mut users = Vec::new();
    for user in body
        .get("users")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let text = |k: &str| {
            user.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let username = text("username");
        if username.is_empty() {
            return error(StatusCode::BAD_REQUEST, "a seeded user needs a username");
        }
        let profile_name = if text("profile").is_empty() {
            "Standard User".to_owned()
        } else {
            text("profile")
        };
        let profile = db.records.get("Profile").and_then(|ps| {
            ps.iter()
                .find(|(_, p)| p.get("Name").and_then(Value::as_str) == Some(profile_name.as_str()))
                .map(|(id, _)| id.clone())
        });
        let profile = match profile {
            Some(p) => p,
            None => match db.create(
                schema,
                "Profile",
                as_rec(json!({"Name": profile_name})),
                "",
                now,
            ) {
                Ok(p) => p,
                Err(e) => return error(StatusCode::BAD_REQUEST, &format!("profile: {e:?}")),
            },
        };
        let last = if text("last_name").is_empty() {
            username.clone()
        } else {
            text("last_name")
        };
        match db.seed_user(schema, &username, &text("first_name"), &last, &profile, now) {
            Ok(id) => {
                if let Some(email) = user.get("email").and_then(Value::as_str) {
                    let checked = db.update(
                        schema,
                        Some("User"),
                        &id,
                        as_rec(json!({"Email": email})),
                        "",
                        now,
                    );
                    if checked.is_err() {
                        if let Some(rec) = db.records.get_mut("User").and_then(|r| r.get_mut(&id)) {
                            rec.insert("Email".into(), Value::String(email.to_owned()));
                        }
                    }
                }
                if let Some(fields) = user.get("fields").filter(|f| !f.is_null()) {
                    if let Err(e) =
                        db.update(schema, Some("User"), &id, as_rec(fields.clone()), "", now)
                    {
                        return error(StatusCode::BAD_REQUEST, &format!("fields: {e:?}"));
                    }
                }
                if !text("time_zone").is_empty() {
                    let zone = json!({"TimeZoneSidKey": text("time_zone")});
                    if let Err(e) = db.update(schema, Some("User"), &id, as_rec(zone), "", now) {
                        return error(StatusCode::BAD_REQUEST, &format!("time_zone: {e:?}"));
                    }
                }
                users.push(json!({"id": id, "username": username}));
            }
            Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
        }
    }
    let mut results = Vec::new();
    for record in body
        .get("records")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(object) = record
            .get("attributes")
            .and_then(|a| a.get("type"))
            .and_then(Value::as_str)
        else {
            results.push(json!({"success": false, "errors": ["attributes.type is required"]}));
            continue;
        };
        let mut input = as_rec(record.clone());
        input.remove("attributes");
        let unchecked = input.remove("unchecked") == Some(Value::Bool(true));
        let mut stamps = Vec::new();
        for name in ["CreatedDate", "LastModifiedDate", "SystemModstamp"] {
            if let Some(v) = input.remove(name) {
                match v.as_str().and_then(parse_datetime) {
                    Some(t) => stamps.push((name, t)),
                    None => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            &format!("{name} is not a date/time"),
                        )
                    }
                }
            }
        }
        let created = if unchecked {
            db.insert_unchecked(schema, object, input, now)
        } else {
            db.create(schema, object, input, "", now)
        };
        match created {
            Ok(id) => {
                let name = schema.object(object).map_or(object, |o| o.name);
                if let Some(rec) = db.records.get_mut(name).and_then(|r| r.get_mut(&id)) {
                    for (name, t) in &stamps {
                        rec.insert((*name).to_owned(), Value::String(format_datetime(*t)));
                    }
                }
                results.push(json!({"id": id, "success": true}));
            }
            Err(errors) => results.push(json!({"success": false, "errors": errors})),
        }
    }
    org.save(&mut db);
    json_reply(StatusCode::OK, &json!({"users": users, "records": results}))
}
