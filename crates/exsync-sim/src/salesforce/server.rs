//! The HTTPS front of the simulated org: TLS, connections, fault injection, the OAuth token
//! endpoint, session checks, API allowance accounting and dispatch to the REST resources.

use super::changes::Persistence;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::{self, JwtKeys, Sessions};
use super::schema::Schema;
use super::store::Db;
use super::{api, control};

/// Largest request body accepted (a full collection of large records fits easily).
const MAX_BODY: usize = 32 * 1024 * 1024;

pub(super) type Reply = Response<Full<Bytes>>;

/// Returned by the service to make hyper close the connection without an answer.
#[derive(Debug)]
pub(super) struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

/// Faults injected on the REST and OAuth endpoints (never on the control API).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Delay, in milliseconds, added before every request is handled.
    pub latency_ms: u64,
    /// Share of requests answered 503 (0.0–1.0).
    pub error_rate: f64,
    /// Share of requests whose connection is closed without an answer.
    pub drop_rate: f64,
    /// The next N requests are answered 503.
    pub fail_next: u32,
    /// The next N requests have their connection dropped.
    pub drop_next: u32,
}

enum FaultAction {
    None,
    Fail,
    Drop,
}

impl Faults {
    fn decide(&mut self) -> FaultAction {
        if self.drop_next > 0 {
            self.drop_next -= 1;
            return FaultAction::Drop;
        }
        if self.fail_next > 0 {
            self.fail_next -= 1;
            return FaultAction::Fail;
        }
        let mut rng = rand::thread_rng();
        if self.drop_rate > 0.0 && rng.gen::<f64>() < self.drop_rate {
            return FaultAction::Drop;
        }
        if self.error_rate > 0.0 && rng.gen::<f64>() < self.error_rate {
            return FaultAction::Fail;
        }
        FaultAction::None
    }
}

/// A page-by-page query result held for `nextRecordsUrl`.
pub(super) struct QueryCursor {
    pub records: Vec<Value>,
    pub batch: usize,
}

/// Everything one simulated org holds.
pub(super) struct Org {
    pub schema: Schema,
    /// Where committed writes go; locked after `db`, never before.
    pub persistence: Mutex<Persistence>,
    pub db: Mutex<Db>,
    pub sessions: Mutex<Sessions>,
    pub keys: JwtKeys,
    pub faults: Mutex<Faults>,
    pub counters: Mutex<BTreeMap<String, u64>>,
    pub cursors: Mutex<BTreeMap<u64, QueryCursor>>,
    pub next_cursor: Mutex<u64>,
    /// Per object, its records in change-query order as of a version of the org
    /// (`api::by_stamp`).
    pub stamp_order: Mutex<HashMap<String, StampOrder>>,
    pub base_url: String,
    pub audiences: Vec<String>,
}

/// An object's records as (SystemModstamp, Id), in change-query order.
pub(super) type StampEntries = Arc<Vec<(DateTime<Utc>, String)>>;

/// [`StampEntries`] built at [`super::store::Db::version`].
pub(super) struct StampOrder {
    pub version: u64,
    pub entries: StampEntries,
}

/// Locks a mutex, carrying on with the data if a panicking thread poisoned it (the state is
/// only ever replaced whole, so it stays consistent).
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Org {
    /// Makes what `db` changed since the last commit durable (a journal record, fsync'd).
    pub(super) fn save(&self, db: &mut Db) {
        if let Err(e) = lock(&self.persistence).commit(db) {
            tracing::error!(error = %e, "saving the simulated org failed");
        }
    }

    fn count(&self, key: String) {
        *lock(&self.counters).entry(key).or_insert(0) += 1;
    }
}

pub(super) fn json_reply<T: serde::Serialize + ?Sized>(status: StatusCode, body: &T) -> Reply {
    let bytes = crate::lone_surrogate::inject(serde_json::to_vec(body).unwrap_or_default());
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    r
}

pub(super) fn empty_reply(status: StatusCode) -> Reply {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// Salesforce's REST error body: a list of `{message, errorCode}`.
pub(super) fn sf_error(status: StatusCode, code: &str, message: &str) -> Reply {
    json_reply(status, &json!([{ "message": message, "errorCode": code }]))
}

/// Salesforce's reply for an unknown object, record or resource.
pub(super) fn not_found() -> Reply {
    sf_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Reply {
    json_reply(
        status,
        &json!({ "error": error, "error_description": description }),
    )
}

pub(super) fn parse_form(text: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect()
}

/// One request, start to end. `Err` closes the connection without an answer.
pub(super) async fn handle(org: Arc<Org>, req: Request<Incoming>) -> Result<Reply, Dropped> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            tracing::debug!(error = %e, "reading a request body failed");
            return Ok(sf_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "REQUEST_TOO_LARGE",
                "request body too large",
            ));
        }
    };
    let path = parts.uri.path().to_owned();
    let query = parse_form(parts.uri.query().unwrap_or_default());
    if let Some(rest) = path.strip_prefix("/_control") {
        return Ok(control::handle(
            &org,
            &parts.method,
            rest,
            &query,
            &parts.headers,
            &body,
        ));
    }
    let (latency, action) = {
        let mut faults = lock(&org.faults);
        (faults.latency_ms, faults.decide())
    };
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    match action {
        FaultAction::Drop => {
            org.count("fault.dropped".into());
            return Err(Dropped);
        }
        FaultAction::Fail => {
            org.count("fault.503".into());
            return Ok(sf_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVER_UNAVAILABLE",
                "Server temporarily unavailable, please try again",
            ));
        }
        FaultAction::None => {}
    }
    if path.ends_with("/services/oauth2/token") {
        org.count(format!("{} oauth2/token", parts.method));
        if parts.method != Method::POST {
            return Ok(oauth_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                "must use HTTP POST",
            ));
        }
        return Ok(token(&org, &parts.headers, &body));
    }
    if path == "/services/data" || path == "/services/data/" {
        org.count("GET versions".into());
        return Ok(json_reply(StatusCode::OK, &api::versions()));
    }
    if let Some(rest) = path.strip_prefix("/services/data/") {
        return Ok(data(
            &org,
            &parts.method,
            rest,
            &query,
            &parts.headers,
            &body,
        ));
    }
    Ok(not_found())
}

fn token(org: &Org, headers: &HeaderMap, body: &[u8]) -> Reply {
    let form = parse_form(&String::from_utf8_lossy(body));
    let now = Utc::now();
    let db = lock(&org.db);
    let user = match form.get("grant_type").map(String::as_str) {
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            let Some(assertion) = form.get("assertion") else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "assertion is required",
                );
            };
            let username = match auth::check_assertion(
                &org.keys,
                assertion,
                &db.settings.client_id,
                &org.audiences,
                now,
            ) {
                Ok(u) => u,
                Err(e) => return oauth_error(StatusCode::BAD_REQUEST, e.error, &e.description),
            };
            let found = db.records.get("User").and_then(|users| {
                users.values().find(|u| {
                    u.get("Username")
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.eq_ignore_ascii_case(&username))
                })
            });
            match found {
                Some(u) if u.get("IsActive") == Some(&Value::Bool(true)) => u
                    .get("Id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                Some(_) => {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "inactive user")
                }
                None => {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "user hasn't approved this consumer",
                    )
                }
            }
        }
        Some("client_credentials") => {
            let authz = headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            match auth::client_credentials(authz, &form) {
                Some((id, secret))
                    if id == db.settings.client_id && secret == db.settings.client_secret =>
                {
                    db.settings.integration_user_id.clone()
                }
                Some(_) => {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_client",
                        "invalid client credentials",
                    )
                }
                None => {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_client",
                        "client credentials are required",
                    )
                }
            }
        }
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant type not supported",
            )
        }
    };
    let org_id = db.settings.org_id.clone();
    // Sessions live on the org's clock, which tests may shift.
    let org_now = db.now();
    drop(db);
    let access_token = lock(&org.sessions).issue(&org_id, &user, org_now);
    let mut signature = [0u8; 32];
    rand::thread_rng().fill(&mut signature);
    use base64::Engine as _;
    json_reply(
        StatusCode::OK,
        &json!({
            "access_token": access_token,
            "instance_url": org.base_url,
            "id": format!("{}/id/{org_id}/{user}", org.base_url),
            "token_type": "Bearer",
            "issued_at": now.timestamp_millis().to_string(),
            "signature": base64::engine::general_purpose::STANDARD.encode(signature),
            "scope": "api",
        }),
    )
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("OAuth "))
        .map(str::trim)
}

fn data(
    org: &Org,
    method: &Method,
    rest: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Reply {
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let Some(version) = segments
        .first()
        .and_then(|v| v.strip_prefix('v'))
        .filter(|v| v.parse::<f32>().is_ok())
    else {
        return not_found();
    };
    let version = version.to_owned();
    let route = &segments[1..];
    org.count(format!("{method} {}", api::route_name(route)));
    let mut db = lock(&org.db);
    let now = db.now();
    let user_id = match bearer(headers)
        .and_then(|t| lock(&org.sessions).check(t, now).map(|s| s.user_id.clone()))
    {
        Some(u) => u,
        None => {
            return sf_error(
                StatusCode::UNAUTHORIZED,
                "INVALID_SESSION_ID",
                "Session expired or invalid",
            )
        }
    };
    if now - db.api.window_start > chrono::Duration::hours(24) {
        db.api.window_start = now;
        db.api.used = 0;
    }
    let counted = route.first() != Some(&"limits");
    if counted && db.api.used >= db.api.max {
        let mut reply = sf_error(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        );
        add_limit_header(&mut reply, &db);
        return reply;
    }
    if counted {
        db.api.used += 1;
    }
    let ctx = api::Ctx {
        org,
        version: &version,
        user_id: &user_id,
        now,
        headers,
        query,
    };
    let (mut reply, wrote) = api::route(&ctx, &mut db, method, route, body);
    // The allowance is part of the org's state even when nothing else changed.
    if wrote || db.api.used % 50 == 0 {
        org.save(&mut db);
    }
    add_limit_header(&mut reply, &db);
    reply
}

fn add_limit_header(reply: &mut Reply, db: &Db) {
    if let Ok(v) = http::HeaderValue::from_str(&format!("api-usage={}/{}", db.api.used, db.api.max))
    {
        reply.headers_mut().insert("Sforce-Limit-Info", v);
    }
}
