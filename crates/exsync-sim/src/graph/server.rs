//! The HTTPS front: routes to the identity platform, the control API, `$batch` and
//! `/v1.0/users/{id}/…`; checks the token, the app's management scope and the throttle,
//! injects faults, and hands the [`Call`] to the stores.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::call::{Answer, Call, Prefer, Query};
use super::control::{self, Counters, Faults, Mangle};
use super::identity::{Caller, Identity};
use super::state::{lock, Mailbox, Tenant, ROLE_CALENDARS, ROLE_CONTACTS};
use super::throttle::{Refusal, Throttle};

/// Largest request body accepted (Graph refuses bodies of 4 MB and more).
pub(crate) const MAX_BODY: usize = 4 * 1024 * 1024;
/// Content type of every Graph answer with a body.
const GRAPH_JSON: &str = "application/json; odata.metadata=minimal";
/// More distinct `Host` values than any client sends; beyond it they are counted together.
const MAX_HOSTS_COUNTED: usize = 64;
/// Path segments a counter key keeps; deeper paths are cut (ids are never kept anyway).
const MAX_TEMPLATE_SEGMENTS: usize = 10;

/// Path segments Graph names (as opposed to ids) under `/users/{id}`: they stay as they
/// are in counter keys, everything else becomes `{id}`.
const NAMED_SEGMENTS: &[&str] = &[
    "users",
    "contactFolders",
    "childFolders",
    "contacts",
    "delta",
    "calendar",
    "calendars",
    "events",
    "calendarView",
    "instances",
    "exceptionOccurrences",
    "singleValueExtendedProperties",
    "multiValueExtendedProperties",
    "extensions",
    "attachments",
    "photo",
    "cancel",
    "accept",
    "decline",
    "tentativelyAccept",
    "dismissReminder",
    "snoozeReminder",
    "forward",
    "mailboxSettings",
    "$value",
    "$count",
    "$batch",
];

pub(crate) type Reply = Response<Full<Bytes>>;

/// Returned by the service to make hyper close the connection without an answer.
#[derive(Debug)]
pub(crate) struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

/// Everything the simulated tenant holds.
pub(crate) struct Graph {
    pub(crate) tenant: Arc<Tenant>,
    pub(crate) identity: Arc<Identity>,
    pub(crate) throttle: Arc<Throttle>,
    pub(crate) faults: Mutex<Faults>,
    pub(crate) counters: Mutex<Counters>,
    /// `https://127.0.0.1:PORT`.
    pub(crate) base_url: String,
}

/// One Graph request, from the wire or from a `$batch` item.
#[derive(Debug)]
pub(crate) struct GraphRequest<'a> {
    pub(crate) method: Method,
    /// What follows `/v1.0`: `/users/x/contacts?$top=5`.
    pub(crate) url: &'a str,
    pub(crate) authorization: Option<&'a str>,
    /// Every `Prefer` header value.
    pub(crate) prefer: Vec<&'a str>,
    pub(crate) if_match: Option<&'a str>,
    pub(crate) body: Option<Value>,
    /// Bytes of the body, for the upload limit.
    pub(crate) upload: u64,
    /// False for a `$batch` item: drop and malformed faults act on whole HTTP answers.
    pub(crate) top_level: bool,
}

/// What [`execute`] decided.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) answer: Answer,
    pub(crate) mangle: Mangle,
}

impl From<Answer> for Outcome {
    fn from(answer: Answer) -> Outcome {
        Outcome {
            answer,
            mangle: Mangle::None,
        }
    }
}

/// Graph's answer to a path no resource takes.
pub(crate) fn segment_not_found(segment: &str) -> Answer {
    Answer::error(
        400,
        "BadRequest",
        &format!("Resource not found for the segment '{segment}'."),
    )
}

fn insufficient_privileges() -> Answer {
    Answer::error(
        403,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
}

fn access_denied() -> Answer {
    Answer::error(
        403,
        "ErrorAccessDenied",
        "Access is denied. Check credentials and try again.",
    )
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Percent-decodes a path segment, where `+` is itself.
fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// Decodes a query-string name or value as application/x-www-form-urlencoded: `+` is a space
/// (what form encoders such as reqwest's `query()` write), `%2B` a plus. An offset such as
/// `+01:00` left unencoded therefore reads as ` 01:00`, and Graph refuses it the same way
/// (msgraph-sdk-javascript issue #529: `startDateTime=…+05:30` is "invalid").
fn decode_query(text: &str) -> String {
    decode(&text.replace('+', " "))
}

/// Splits and decodes the query string into OData's system options and the rest.
pub(crate) fn parse_query(raw: Option<&str>) -> Result<Query, Answer> {
    let mut query = Query::default();
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode_query(key);
        let value = decode_query(value);
        let Some(option) = key.strip_prefix('$') else {
            query.params.insert(key, value);
            continue;
        };
        let option = option.to_ascii_lowercase();
        let number = |v: &str, what: &str| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| Answer::bad_request(&format!("Invalid value '{v}' for ${what}.")))
        };
        match option.as_str() {
            "select" => {
                query.select = Some(
                    value
                        .split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect(),
                )
            }
            "filter" => query.filter = Some(value),
            "expand" => query.expand = Some(value),
            "orderby" => query.orderby = Some(value),
            "top" => query.top = Some(number(&value, "top")?),
            "skip" => query.skip = Some(number(&value, "skip")?),
            "deltatoken" | "skiptoken" | "count" | "search" => {
                query.params.insert(format!("${option}"), value);
            }
            _ => {
                return Err(Answer::error(
                    400,
                    "BadRequest",
                    &format!("Query option '${option}' is not supported."),
                ))
            }
        }
    }
    Ok(query)
}

/// Reads every `Prefer` value: preferences are comma-separated, in one header or several.
pub(crate) fn parse_prefer(values: &[&str]) -> Prefer {
    let mut prefer = Prefer::default();
    for value in values {
        for item in split_outside_quotes(value) {
            let (name, arg) = item.split_once('=').unwrap_or((item, ""));
            let arg = arg.trim().trim_matches('"');
            match name.trim().to_ascii_lowercase().as_str() {
                "odata.maxpagesize" => {
                    if let Ok(n) = arg.parse::<usize>() {
                        prefer.max_page_size = Some(n);
                    }
                }
                "outlook.timezone" if !arg.is_empty() => {
                    prefer.time_zone = Some(arg.to_owned());
                }
                _ => {}
            }
        }
    }
    prefer
}

fn split_outside_quotes(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(text[start..].trim());
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

/// The JSON body of a POST, PATCH or PUT; `None` for an empty one or another method.
pub(crate) fn parse_body(
    method: &Method,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Option<Value>, Answer> {
    let writes = matches!(*method, Method::POST | Method::PATCH | Method::PUT);
    if !writes || body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let is_json = content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|ct| ct.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(Answer::error(
            415,
            "UnsupportedMediaType",
            &format!(
                "The content type '{}' is not supported: send application/json.",
                content_type.unwrap_or("")
            ),
        ));
    }
    serde_json::from_slice(body).map(Some).map_err(|_| {
        Answer::error(
            400,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        )
    })
}

/// `GET /users/{id}/contactFolders/{id}/contacts/delta`: the counter key of a request.
pub(crate) fn endpoint_template(method: &Method, segments: &[String]) -> String {
    // Extension methods are the client's text: one key for all of them keeps the map small.
    let method = match *method {
        Method::GET | Method::POST | Method::PATCH | Method::PUT | Method::DELETE => {
            method.as_str()
        }
        _ => "OTHER",
    };
    let mut key = format!("{method} ");
    for (i, segment) in segments.iter().take(MAX_TEMPLATE_SEGMENTS).enumerate() {
        key.push('/');
        if NAMED_SEGMENTS.contains(&segment.as_str()) && !(i == 1 && segments[0] == "users") {
            key.push_str(segment);
        } else {
            key.push_str("{id}");
        }
    }
    if segments.len() > MAX_TEMPLATE_SEGMENTS {
        key.push_str("/…");
    }
    if segments.is_empty() {
        key.push('/');
    }
    key
}

/// The RBAC for Applications role a path under `/users/{id}/` needs, if any.
fn role_for(first: &str) -> Option<(&'static str, &'static str)> {
    match first {
        "contactFolders" | "contacts" => Some((ROLE_CONTACTS, "Contacts")),
        "calendar" | "calendars" | "events" | "calendarView" => Some((ROLE_CALENDARS, "Calendars")),
        _ => None,
    }
}

/// Whether the token's tenant-wide roles reach every mailbox for `area` (`Contacts`…).
fn tenant_wide(caller: &Caller, area: &str, method: &Method) -> bool {
    caller.roles.iter().any(|r| {
        r == &format!("{area}.ReadWrite") || (method == Method::GET && r == &format!("{area}.Read"))
    })
}

fn allowed(caller: &Caller, mailbox: &Mailbox, method: &Method, first: Option<&str>) -> bool {
    let needs: Vec<(&str, &str)> = match first {
        // The user itself: either role will do.
        None => vec![(ROLE_CONTACTS, "Contacts"), (ROLE_CALENDARS, "Calendars")],
        Some(first) => match role_for(first) {
            Some(r) => vec![r],
            // A path no store owns: let the dispatch say so.
            None => return true,
        },
    };
    needs
        .iter()
        .any(|(role, area)| mailbox.in_scope_for(role) || tenant_wide(caller, area, method))
}

/// Runs one Graph request through the checks and the stores.
pub(crate) async fn execute(graph: &Graph, req: &GraphRequest<'_>) -> Outcome {
    let (path, raw_query) = match req.url.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (req.url, None),
    };
    // A function called without parameters may carry its empty parentheses (`delta()`, as
    // the SDKs generated by Kiota send it); Graph reads both forms the same.
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let s = decode(s);
            match s.strip_suffix("()") {
                Some(name) if !name.is_empty() => name.to_owned(),
                _ => s,
            }
        })
        .collect();
    {
        let mut counters = lock(&graph.counters);
        counters.requests += 1;
        Counters::bump(
            &mut counters.endpoints,
            &endpoint_template(&req.method, &segments),
        );
    }
    let now = Utc::now();
    // Graph checks the token before it looks at the path.
    let caller = match graph.identity.verify(req.authorization, now) {
        Ok(c) => c,
        Err(answer) => return answer.into(),
    };
    match segments.first().map(String::as_str) {
        Some("users") => {}
        Some("me") => {
            return Answer::error(
                400,
                "BadRequest",
                "/me request is only valid with delegated authentication flow.",
            )
            .into()
        }
        Some(other) => return segment_not_found(other).into(),
        None => return Answer::bad_request("Invalid request: no resource named.").into(),
    }
    let Some(key) = segments.get(1) else {
        // Listing users takes User.Read.All, which this app never has.
        return insufficient_privileges().into();
    };
    let query = match parse_query(raw_query) {
        Ok(q) => q,
        Err(a) => return a.into(),
    };
    let Some(mailbox) = graph.tenant.find(key) else {
        return Answer::error(
            404,
            "ErrorInvalidUser",
            &format!("The requested user '{key}' is invalid."),
        )
        .into();
    };
    let rest = &segments[2..];
    Counters::bump(&mut lock(&graph.counters).mailboxes, &mailbox.address);
    if !allowed(
        &caller,
        &mailbox,
        &req.method,
        rest.first().map(String::as_str),
    ) {
        return access_denied().into();
    }
    let budget = lock(&mailbox.data).budget;
    let _permit = match graph.throttle.admit(
        &caller.app_id,
        &mailbox.id,
        budget,
        req.upload,
        Instant::now(),
    ) {
        Ok(p) => p,
        Err((why, answer)) => {
            let mut counters = lock(&graph.counters);
            let code = match why {
                Refusal::Concurrency => "ApplicationThrottled",
                Refusal::Budget => "TooManyRequests",
                Refusal::Upload => "UploadLimit",
            };
            Counters::bump(&mut counters.throttled, code);
            Counters::bump(&mut counters.throttled_mailboxes, &mailbox.address);
            return answer.into();
        }
    };
    let latency = lock(&graph.faults).latency_for(&mailbox.id);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let (injected, mangle) = {
        let mut faults = lock(&graph.faults);
        let injected = faults.status_for(&mailbox.id);
        let mangle = if req.top_level && injected.is_none() {
            faults.mangle_for(Some(&mailbox.id))
        } else {
            Mangle::None
        };
        (injected, mangle)
    };
    if let Some(answer) = injected {
        Counters::bump(
            &mut lock(&graph.counters).faults,
            &answer.status.to_string(),
        );
        return answer.into();
    }
    // Read the clock again: an injected latency has passed since the token was checked.
    let answer = dispatch(graph, &mailbox, req, rest, &query, Utc::now());
    Outcome { answer, mangle }
}

fn dispatch(
    graph: &Graph,
    mailbox: &Mailbox,
    req: &GraphRequest<'_>,
    rest: &[String],
    query: &Query,
    now: chrono::DateTime<Utc>,
) -> Answer {
    let Some(first) = rest.first() else {
        return user(graph, mailbox, &req.method, query);
    };
    let prefer = parse_prefer(&req.prefer);
    let user_url = format!("{}/v1.0/users/{}", graph.base_url, mailbox.id);
    let call = Call {
        method: &req.method,
        path: rest,
        query,
        prefer: &prefer,
        if_match: req.if_match,
        body: req.body.as_ref(),
        now,
        user_url: &user_url,
    };
    let answer = {
        let mut guard = lock(&mailbox.data);
        let data = &mut *guard;
        data.contacts
            .handle(&call)
            .or_else(|| data.calendar.handle(&call))
    };
    if req.method != Method::GET {
        mailbox.mark_dirty();
    }
    answer.unwrap_or_else(|| {
        // Name the segment no store took: the first one unless it is a collection a store
        // owns, then the last.
        let segment = if role_for(first).is_some() {
            rest.last().unwrap_or(first)
        } else {
            first
        };
        segment_not_found(segment)
    })
}

/// `GET /users/{id}`.
fn user(graph: &Graph, mailbox: &Mailbox, method: &Method, query: &Query) -> Answer {
    if method != Method::GET {
        return insufficient_privileges();
    }
    let mut body = mailbox.user_json();
    if let (Some(select), Some(object)) = (&query.select, body.as_object_mut()) {
        object.retain(|k, _| k == "id" || select.iter().any(|s| s.eq_ignore_ascii_case(k)));
    }
    if let Some(object) = body.as_object_mut() {
        object.insert(
            "@odata.context".to_owned(),
            json!(format!("{}/v1.0/$metadata#users/$entity", graph.base_url)),
        );
    }
    Answer::ok(body)
}

/// Entra's answer for an authority naming no tenant it knows.
fn unknown_tenant(tenant: &str) -> Answer {
    let now = Utc::now();
    Answer::with(
        400,
        json!({
            "error": "invalid_tenant",
            "error_description": format!("AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
            "error_codes": [90002],
            "timestamp": now.format("%Y-%m-%d %H:%M:%SZ").to_string(),
            "trace_id": uuid::Uuid::new_v4().to_string(),
            "correlation_id": uuid::Uuid::new_v4().to_string(),
        }),
    )
}

struct ReplyIds {
    request_id: String,
    client_request_id: String,
}

fn reply(answer: &Answer, ids: &ReplyIds, content_type: &str, malformed: bool) -> Reply {
    let bytes = match &answer.body {
        Some(body) => {
            let mut bytes = match body.pointer("/error/innerError") {
                // Graph's error names the request it answers, as the headers do.
                Some(Value::Object(_)) => {
                    let mut body = body.clone();
                    if let Some(Value::Object(inner)) = body.pointer_mut("/error/innerError") {
                        inner.insert("request-id".to_owned(), json!(ids.request_id));
                        inner.insert("client-request-id".to_owned(), json!(ids.client_request_id));
                    }
                    serde_json::to_vec(&body)
                }
                _ => serde_json::to_vec(body),
            }
            .unwrap_or_default();
            if malformed {
                bytes.truncate(bytes.len() / 2);
            }
            crate::lone_surrogate::inject(bytes)
        }
        None => Vec::new(),
    };
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = r.headers_mut();
    let mut put = |name: &str, value: &str| {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            headers.append(n, v);
        }
    };
    if answer.body.is_some() {
        put("content-type", content_type);
    }
    put("request-id", &ids.request_id);
    put("client-request-id", &ids.client_request_id);
    for (name, value) in &answer.headers {
        put(name, value);
    }
    r
}

/// One HTTP request, start to end. `Err` closes the connection without an answer.
pub(crate) async fn handle(graph: Arc<Graph>, req: Request<Incoming>) -> Result<Reply, Dropped> {
    let (parts, body) = req.into_parts();
    let request_id = uuid::Uuid::new_v4().to_string();
    let ids = ReplyIds {
        client_request_id: header(&parts.headers, "client-request-id")
            .filter(|v| v.len() <= 200)
            .map_or_else(|| request_id.clone(), str::to_owned),
        request_id,
    };
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            tracing::debug!(error = %e, "reading a request body failed");
            let answer = Answer::error(
                413,
                "RequestEntityTooLarge",
                &format!("The request body is larger than {MAX_BODY} bytes."),
            );
            return Ok(reply(&answer, &ids, GRAPH_JSON, false));
        }
    };
    let authorization = header(&parts.headers, "authorization");
    let path = parts.uri.path();
    if let Some(rest) = path.strip_prefix("/_control") {
        if rest.is_empty() || rest.starts_with('/') {
            let answer = control::handle(
                &graph,
                &parts.method,
                rest,
                parts.uri.query(),
                authorization,
                &body,
            );
            return Ok(reply(&answer, &ids, "application/json", false));
        }
    }
    let host = header(&parts.headers, "host")
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    {
        let mut counters = lock(&graph.counters);
        let host =
            if counters.hosts.len() >= MAX_HOSTS_COUNTED && !counters.hosts.contains_key(&host) {
                "(other)".to_owned()
            } else {
                host
            };
        counters.host(&host, authorization);
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [tenant, "v2.0", ".well-known", "openid-configuration"] => {
            Counters::bump(
                &mut lock(&graph.counters).endpoints,
                "GET /{tenant}/v2.0/.well-known/openid-configuration",
            );
            let tenant = decode(tenant);
            let answer = if !graph.identity.is_tenant(&tenant) {
                unknown_tenant(&tenant)
            } else if parts.method != Method::GET {
                Answer::with(405, json!({"error": "invalid_request"}))
            } else {
                let authority = format!("{}/{tenant}", graph.base_url);
                Answer::ok(graph.identity.openid_configuration(&authority))
            };
            Ok(reply(
                &answer,
                &ids,
                "application/json; charset=utf-8",
                false,
            ))
        }
        [tenant, "discovery", "v2.0", "keys"] => {
            let tenant = decode(tenant);
            let answer = if graph.identity.is_tenant(&tenant) {
                Answer::ok(graph.identity.jwks())
            } else {
                unknown_tenant(&tenant)
            };
            Ok(reply(
                &answer,
                &ids,
                "application/json; charset=utf-8",
                false,
            ))
        }
        [tenant, "oauth2", "v2.0", "token"] => {
            Counters::bump(
                &mut lock(&graph.counters).endpoints,
                "POST /{tenant}/oauth2/v2.0/token",
            );
            let tenant = decode(tenant);
            let answer = if parts.method != Method::POST {
                Answer::with(
                    405,
                    json!({"error": "invalid_request", "error_description": "AADSTS900561: The endpoint only accepts POST requests."}),
                )
            } else {
                let token_url = format!("{}/{tenant}/oauth2/v2.0/token", graph.base_url);
                let form: Vec<(String, String)> =
                    url::form_urlencoded::parse(&body).into_owned().collect();
                graph
                    .identity
                    .token(&token_url, &tenant, &form, authorization, Utc::now())
            };
            Ok(reply(
                &answer,
                &ids,
                "application/json; charset=utf-8",
                false,
            ))
        }
        ["v1.0", "$batch"] => {
            {
                let mut counters = lock(&graph.counters);
                counters.requests += 1;
                Counters::bump(
                    &mut counters.endpoints,
                    &format!("{} /$batch", parts.method),
                );
            }
            let content_type = header(&parts.headers, "content-type");
            let answer = if parts.method != Method::POST {
                Answer::error(405, "BadRequest", "$batch takes POST.")
            } else {
                super::batch::run(&graph, authorization, content_type, &body).await
            };
            let mangle = lock(&graph.faults).mangle_for(None);
            finish(answer, mangle, &ids, &graph)
        }
        ["v1.0", ..] => {
            let url = &parts.uri.path_and_query().map_or(path, |pq| pq.as_str())["/v1.0".len()..];
            let upload = u64::try_from(body.len()).unwrap_or(u64::MAX);
            let body_json =
                match parse_body(&parts.method, header(&parts.headers, "content-type"), &body) {
                    Ok(b) => b,
                    Err(answer) => return Ok(reply(&answer, &ids, GRAPH_JSON, false)),
                };
            let request = GraphRequest {
                method: parts.method.clone(),
                url,
                authorization,
                prefer: parts
                    .headers
                    .get_all("prefer")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect(),
                if_match: header(&parts.headers, "if-match"),
                upload: if body_json.is_some() { upload } else { 0 },
                body: body_json,
                top_level: true,
            };
            let outcome = execute(&graph, &request).await;
            finish(outcome.answer, outcome.mangle, &ids, &graph)
        }
        [version, ..] => {
            let answer = Answer::error(400, "BadRequest", &format!("Invalid version: {version}"));
            Ok(reply(&answer, &ids, GRAPH_JSON, false))
        }
        [] => Ok(reply(&Answer::not_found("/"), &ids, GRAPH_JSON, false)),
    }
}

fn finish(answer: Answer, mangle: Mangle, ids: &ReplyIds, graph: &Graph) -> Result<Reply, Dropped> {
    match mangle {
        Mangle::Drop => {
            Counters::bump(&mut lock(&graph.counters).faults, "drop");
            Err(Dropped)
        }
        Mangle::Malformed => {
            Counters::bump(&mut lock(&graph.counters).faults, "malformed");
            Ok(reply(&answer, ids, GRAPH_JSON, true))
        }
        Mangle::None => Ok(reply(&answer, ids, GRAPH_JSON, false)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn query_options_are_decoded_split_and_checked() {
        let q = parse_query(Some(
            "$select=subject,%20start&startDateTime=2024-01-01T00:00:00%2B01:00&$deltaToken=a%2Bb&$TOP=5&$filter=id%20eq%20'x'",
        ))
        .unwrap();
        assert_eq!(q.select.unwrap(), ["subject", "start"]);
        assert_eq!(q.params["startDateTime"], "2024-01-01T00:00:00+01:00");
        assert_eq!(q.params["$deltatoken"], "a+b");
        assert_eq!(q.top, Some(5));
        assert_eq!(q.filter.as_deref(), Some("id eq 'x'"));
        let bad = parse_query(Some("$frobnicate=1")).unwrap_err();
        assert_eq!(bad.status, 400);
        assert_eq!(parse_query(Some("$top=x")).unwrap_err().status, 400);
    }

    #[test]
    fn plus_in_a_query_value_is_a_space() {
        let q = parse_query(Some(
            "$filter=singleValueExtendedProperties%2FAny(ep%3A+ep%2Fid+eq+'String+0x3A24'+and+ep%2Fvalue+eq+'a%2Bb')\
             &$expand=singleValueExtendedProperties($filter=id+eq+'String+{8ECCC264-6880-4EBE-992F-8888D2EEAA1D}+Name+CrmId')\
             &startDateTime=2024-01-01T00:00:00+01:00&my+key=x",
        ))
        .unwrap();
        assert_eq!(
            q.filter.as_deref(),
            Some("singleValueExtendedProperties/Any(ep: ep/id eq 'String 0x3A24' and ep/value eq 'a+b')")
        );
        assert_eq!(
            q.expand.as_deref(),
            Some("singleValueExtendedProperties($filter=id eq 'String {8ECCC264-6880-4EBE-992F-8888D2EEAA1D} Name CrmId')")
        );
        // An offset left unencoded is a space, as it is to Graph.
        assert_eq!(q.params["startDateTime"], "2024-01-01T00:00:00 01:00");
        assert_eq!(q.params["my key"], "x");
    }

    #[test]
    fn prefer_reads_several_preferences_and_headers() {
        let p = parse_prefer(&[
            "odata.maxpagesize=50, outlook.timezone=\"W. Europe Standard Time\"",
            "IdType=\"ImmutableId\"",
        ]);
        assert_eq!(p.max_page_size, Some(50));
        assert_eq!(p.time_zone.as_deref(), Some("W. Europe Standard Time"));
        let p = parse_prefer(&[
            "outlook.timezone=\"Pacific Standard Time\"",
            "odata.maxpagesize=7",
        ]);
        assert_eq!((p.max_page_size, p.time_zone.is_some()), (Some(7), true));
    }

    #[test]
    fn bodies_need_json_and_parse() {
        let post = Method::POST;
        assert_eq!(
            parse_body(&post, Some("application/json"), b"").unwrap(),
            None
        );
        assert_eq!(
            parse_body(&post, Some("application/json; charset=utf-8"), b"{\"a\":1}")
                .unwrap()
                .unwrap()["a"],
            1
        );
        assert_eq!(
            parse_body(&post, Some("text/plain"), b"{}")
                .unwrap_err()
                .status,
            415
        );
        assert_eq!(parse_body(&post, None, b"{}").unwrap_err().status, 415);
        assert_eq!(
            parse_body(&post, Some("application/json"), b"{")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(parse_body(&Method::GET, None, b"junk").unwrap(), None);
    }

    #[test]
    fn counter_keys_hide_ids() {
        let key = endpoint_template(
            &Method::GET,
            &strings(&[
                "users",
                "contacts",
                "contactFolders",
                "AAMk=",
                "contacts",
                "delta",
            ]),
        );
        assert_eq!(key, "GET /users/{id}/contactFolders/{id}/contacts/delta");
        let odd = Method::from_bytes(b"FROB").unwrap();
        assert_eq!(
            endpoint_template(&odd, &strings(&["users"])),
            "OTHER /users"
        );
        let deep: Vec<String> = (0..50).map(|i| format!("x{i}")).collect();
        assert!(endpoint_template(&Method::GET, &deep).ends_with("/…"));
    }
}
