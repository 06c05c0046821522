//! The test-only control API under `/_control/`, behind its own bearer token
//! (`control_token` in sim.json): mailboxes and their management scope, the app's
//! tenant-wide roles and tokens, delta-token expiry, budgets, seeding through the stores,
//! injected faults and request counters. `{address}` is a mailbox's address or id.
//!
//! | Route | Body | Effect |
//! |---|---|---|
//! | `GET /mailboxes`, `GET /mailboxes/{address}` | | id, address, scope, budget |
//! | `POST /mailboxes` | `{"address", "display_name"?, "in_scope"?: true}` | adds a mailbox |
//! | `POST /mailboxes/{address}/scope` | `{"in_scope": bool}` or `{"roles": [...]}` | RBAC scope |
//! | `POST /mailboxes/{address}/budget` | `{"budget"?: N, "reset"?: true}` | requests per 10 min |
//! | `POST /mailboxes/{address}/expire-delta-tokens` | | next use of a token: 410 |
//! | `POST /mailboxes/{address}/contacts[?folder=ID]`, `…/events[?calendar=ID]` | a Graph item or an array | seeds |
//! | `GET /mailboxes/{address}/contactFolders` | | every contact folder: id, name, parent, items; the ids of Contacts (`root`) and Deleted Items (`bin`) |
//! | `POST /mailboxes/{address}/contactFolders` | `{"name", "parent"?}` | a folder, as Outlook makes one |
//! | `POST /mailboxes/{address}/contactFolders/change` | `{"folder", "rename" \| "move_to" \| "delete": "deleteditems" \| "hard"}` | the user's change in Outlook |
//! | `GET /roles`; `PUT /roles`; `POST`/`DELETE /roles/{role}` | `{"roles": [...]}` | tenant-wide roles |
//! | `GET`/`POST /token-lifetime` | `{"seconds": N}` | access-token lifetime |
//! | `POST /expire-tokens` | | every access token issued so far fails |
//! | `GET`/`DELETE /faults`; `POST /faults` | see [`add_fault`] | injected faults |
//! | `GET /counters`; `POST /counters/reset` | | see [`Counters`] |
//!
//! Roles and token lifetimes apply to the tokens issued afterwards, as in Entra.

use std::collections::BTreeMap;

use chrono::Utc;
use http::Method;
use serde::Serialize;
use serde_json::{json, Value};

use super::call::{Answer, Call, Prefer, Query};
use super::server::Graph;
use super::state::{lock, AddError, Mailbox, ROLE_CALENDARS, ROLE_CONTACTS};

/// Items one bulk seed may carry.
const MAX_SEED_ITEMS: usize = 10_000;
/// Longest latency a fault may add, so a typo cannot hang a test run for hours.
const MAX_LATENCY_MS: u64 = 120_000;

/// What a fault rule does to the requests it catches.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum FaultKind {
    /// Answer with this status (and `Retry-After` when given).
    Status {
        status: u16,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
    },
    /// Close the connection without an answer.
    Drop,
    /// Answer with the body cut short.
    Malformed,
}

/// One fault rule: the next `remaining` Graph requests (for `mailbox`, or any) get `kind`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FaultRule {
    /// A mailbox id; `None` catches every Graph request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) mailbox: Option<String>,
    #[serde(flatten)]
    pub(crate) kind: FaultKind,
    pub(crate) remaining: u32,
}

/// Faults injected on Graph requests (never on the control API or the identity platform).
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Faults {
    pub(crate) rules: Vec<FaultRule>,
    /// Delay before a request is handled, per mailbox id; the `"*"` entry for any mailbox.
    pub(crate) latency_ms: BTreeMap<String, u64>,
}

/// What the front does with a request a drop or malformed rule caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mangle {
    None,
    Drop,
    Malformed,
}

impl Faults {
    fn take(
        &mut self,
        mailbox: Option<&str>,
        wanted: impl Fn(&FaultKind) -> bool,
    ) -> Option<FaultKind> {
        let index = self.rules.iter().position(|r| {
            wanted(&r.kind)
                && r.remaining > 0
                && (r.mailbox.is_none() || r.mailbox.as_deref() == mailbox)
        })?;
        let rule = &mut self.rules[index];
        rule.remaining -= 1;
        let kind = rule.kind.clone();
        if rule.remaining == 0 {
            self.rules.remove(index);
        }
        Some(kind)
    }

    /// The injected error answer for the next request for `mailbox`, if one is due.
    pub(crate) fn status_for(&mut self, mailbox: &str) -> Option<Answer> {
        match self.take(Some(mailbox), |k| matches!(k, FaultKind::Status { .. }))? {
            FaultKind::Status {
                status,
                retry_after,
            } => {
                let answer = injected_error(status);
                Some(match retry_after {
                    Some(s) => answer.header("Retry-After", s.to_string()),
                    None => answer,
                })
            }
            _ => None,
        }
    }

    /// Whether the next answer (for `mailbox`, or a request naming none) is dropped or cut.
    pub(crate) fn mangle_for(&mut self, mailbox: Option<&str>) -> Mangle {
        match self.take(mailbox, |k| {
            matches!(k, FaultKind::Drop | FaultKind::Malformed)
        }) {
            Some(FaultKind::Drop) => Mangle::Drop,
            Some(FaultKind::Malformed) => Mangle::Malformed,
            _ => Mangle::None,
        }
    }

    pub(crate) fn latency_for(&self, mailbox: &str) -> u64 {
        self.latency_ms
            .get(mailbox)
            .or_else(|| self.latency_ms.get("*"))
            .copied()
            .unwrap_or(0)
    }
}

/// Graph's error bodies for the statuses a fault may inject.
fn injected_error(status: u16) -> Answer {
    match status {
        429 => super::throttle::throttled("TooManyRequests", "Please retry again later."),
        503 => Answer::error(
            503,
            "ServiceUnavailable",
            "The service is temporarily unavailable. Please retry later.",
        ),
        504 => Answer::error(504, "GatewayTimeout", "The gateway timed out."),
        _ => Answer::error(status, "InternalServerError", "An injected fault."),
    }
}

/// Requests carrying an `Authorization` header, or not, sent to one `Host`.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct HostSeen {
    pub(crate) requests: u64,
    pub(crate) with_authorization: u64,
    /// Authorization schemes seen (`Bearer`, `Basic`…), never the credentials.
    pub(crate) schemes: BTreeMap<String, u64>,
}

/// What the Graph front counted since the start or the last reset.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Counters {
    /// Graph requests (a `$batch` item counts as one, the batch itself too).
    pub(crate) requests: u64,
    /// Graph requests per mailbox address.
    pub(crate) mailboxes: BTreeMap<String, u64>,
    /// Requests per method and path template (`GET /users/{id}/contacts`).
    pub(crate) endpoints: BTreeMap<String, u64>,
    /// 429s answered by the throttle, by reason: `ApplicationThrottled` (concurrency),
    /// `TooManyRequests` (the request budget), `UploadLimit` (bytes sent; also answered
    /// `TooManyRequests`).
    pub(crate) throttled: BTreeMap<String, u64>,
    /// Throttle refusals per mailbox address.
    pub(crate) throttled_mailboxes: BTreeMap<String, u64>,
    /// Faults injected, by kind (`429`, `503`, `drop`, `malformed`).
    pub(crate) faults: BTreeMap<String, u64>,
    /// Per `Host` header value (every request but the control API's).
    pub(crate) hosts: BTreeMap<String, HostSeen>,
}

impl Counters {
    pub(crate) fn host(&mut self, host: &str, authorization: Option<&str>) {
        let seen = self.hosts.entry(host.to_owned()).or_default();
        seen.requests += 1;
        if let Some(value) = authorization {
            seen.with_authorization += 1;
            let scheme = value.split_whitespace().next().unwrap_or("").to_owned();
            // The scheme is the client's text: keep the key short and printable.
            let scheme: String = scheme
                .chars()
                .take(32)
                .filter(|c| c.is_ascii_graphic())
                .collect();
            *seen.schemes.entry(scheme).or_insert(0) += 1;
        }
    }

    pub(crate) fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
        match map.get_mut(key) {
            Some(n) => *n += 1,
            None => {
                map.insert(key.to_owned(), 1);
            }
        }
    }
}

fn error(status: u16, message: &str) -> Answer {
    Answer::with(status, json!({"error": message}))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Answers `method path` under `/_control` (path without that prefix).
pub(crate) fn handle(
    graph: &Graph,
    method: &Method,
    path: &str,
    query: Option<&str>,
    authorization: Option<&str>,
    body: &[u8],
) -> Answer {
    let expected = graph.tenant.settings().control_token;
    let given = authorization
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("");
    if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return error(401, "control token missing or wrong");
    }
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return error(400, &format!("body is not JSON: {e}")),
        }
    };
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (method, segments.as_slice()) {
        (&Method::GET, ["mailboxes"]) => {
            let list: Vec<Value> = graph
                .tenant
                .mailboxes()
                .iter()
                .map(|m| describe(m))
                .collect();
            Answer::ok(json!({"mailboxes": list}))
        }
        (&Method::POST, ["mailboxes"]) => add_mailbox(graph, &body),
        (&Method::GET, ["mailboxes", address]) => {
            with_mailbox(graph, address, |m| Answer::ok(describe(m)))
        }
        (&Method::POST | &Method::PUT, ["mailboxes", address, "scope"]) => {
            with_mailbox(graph, address, |m| set_scope(m, &body))
        }
        (&Method::POST | &Method::PUT, ["mailboxes", address, "budget"]) => {
            with_mailbox(graph, address, |m| set_budget(graph, m, &body))
        }
        (&Method::POST, ["mailboxes", address, "expire-delta-tokens"]) => {
            with_mailbox(graph, address, |m| {
                let mut data = lock(&m.data);
                data.contacts.expire_delta_tokens();
                data.calendar.expire_delta_tokens();
                drop(data);
                m.mark_dirty();
                Answer::ok(json!({"expired": true}))
            })
        }
        (&Method::POST, ["mailboxes", address, kind @ ("contacts" | "events")]) => {
            // `?folder=<contactFolder id>` or `?calendar=<calendar id>`: where the items go.
            let container = query.and_then(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "folder" || k == "calendar")
                    .map(|(_, v)| v.into_owned())
            });
            with_mailbox(graph, address, |m| {
                seed(graph, m, kind, container.as_deref(), &body)
            })
        }
        (&Method::GET, ["mailboxes", address, "contactFolders"]) => {
            with_mailbox(graph, address, |m| {
                Answer::ok(lock(&m.data).contacts.folder_listing())
            })
        }
        (&Method::POST, ["mailboxes", address, "contactFolders"]) => {
            with_mailbox(graph, address, |m| add_contact_folder(graph, m, &body))
        }
        (&Method::POST, ["mailboxes", address, "contactFolders", "change"]) => {
            with_mailbox(graph, address, |m| change_contact_folder(graph, m, &body))
        }
        (&Method::GET, ["roles"]) => Answer::ok(json!({"roles": graph.identity.roles()})),
        (&Method::PUT | &Method::POST, ["roles"]) => match strings(&body, "roles") {
            Some(roles) => set_roles(graph, roles),
            None => error(400, "expected {\"roles\": [\"Contacts.ReadWrite\", …]}"),
        },
        (&Method::POST | &Method::PUT, ["roles", role]) => {
            let mut roles = graph.identity.roles();
            if !roles.iter().any(|r| r == role) {
                roles.push((*role).to_owned());
            }
            set_roles(graph, roles)
        }
        (&Method::DELETE, ["roles", role]) => {
            let roles = graph
                .identity
                .roles()
                .into_iter()
                .filter(|r| r != role)
                .collect();
            set_roles(graph, roles)
        }
        (&Method::GET, ["token-lifetime"]) => {
            Answer::ok(json!({"seconds": graph.identity.token_lifetime()}))
        }
        (&Method::POST | &Method::PUT, ["token-lifetime"]) => {
            match body.get("seconds").and_then(Value::as_u64) {
                Some(secs) if (1..=86_400).contains(&secs) => {
                    match graph.identity.set_token_lifetime(secs) {
                        Ok(()) => Answer::ok(json!({"seconds": secs})),
                        Err(e) => error(500, &format!("{e:#}")),
                    }
                }
                _ => error(400, "expected {\"seconds\": 1..86400}"),
            }
        }
        (&Method::POST, ["expire-tokens"]) => match graph.identity.expire_tokens() {
            Ok(()) => Answer::ok(json!({"expired": true})),
            Err(e) => error(500, &format!("{e:#}")),
        },
        (&Method::GET, ["faults"]) => Answer::ok(json!(*lock(&graph.faults))),
        (&Method::POST, ["faults"]) => add_fault(graph, &body),
        (&Method::DELETE, ["faults"]) => {
            *lock(&graph.faults) = Faults::default();
            Answer::ok(json!(Faults::default()))
        }
        (&Method::GET, ["counters"]) => Answer::ok(json!(*lock(&graph.counters))),
        (&Method::POST, ["counters", "reset"]) | (&Method::DELETE, ["counters"]) => {
            *lock(&graph.counters) = Counters::default();
            Answer::ok(json!({"reset": true}))
        }
        _ => error(404, "no such control resource"),
    }
}

fn describe(m: &Mailbox) -> Value {
    let data = lock(&m.data);
    json!({
        "id": m.id,
        "address": m.address,
        "display_name": m.display_name,
        "in_scope": data.scope.contains(ROLE_CONTACTS) && data.scope.contains(ROLE_CALENDARS),
        "scope": data.scope,
        "budget": data.budget,
    })
}

fn with_mailbox(graph: &Graph, address: &str, f: impl FnOnce(&Mailbox) -> Answer) -> Answer {
    match graph.tenant.find(address) {
        Some(m) => f(&m),
        None => error(404, &format!("no mailbox {address}")),
    }
}

fn strings(body: &Value, key: &str) -> Option<Vec<String>> {
    body.get(key)?
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// `{"address", "display_name"?, "in_scope"?: true}`.
fn add_mailbox(graph: &Graph, body: &Value) -> Answer {
    let Some(address) = body.get("address").and_then(Value::as_str) else {
        return error(
            400,
            "expected {\"address\": \"…\", \"in_scope\": true|false}",
        );
    };
    let in_scope = body
        .get("in_scope")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let name = body.get("display_name").and_then(Value::as_str);
    match graph.tenant.add(address, name, in_scope) {
        Ok(m) => Answer::created(describe(&m)),
        Err(AddError::Exists) => error(409, &format!("{address} exists")),
        Err(AddError::BadAddress) => error(400, &format!("{address:?} is not a mailbox address")),
    }
}

/// `{"in_scope": bool}` for both roles, or `{"roles": ["Application Contacts.ReadWrite"]}`.
fn set_scope(m: &Mailbox, body: &Value) -> Answer {
    let scope = if let Some(in_scope) = body.get("in_scope").and_then(Value::as_bool) {
        if in_scope {
            super::state::all_roles()
        } else {
            Default::default()
        }
    } else if let Some(roles) = strings(body, "roles") {
        if let Some(bad) = roles
            .iter()
            .find(|r| *r != ROLE_CONTACTS && *r != ROLE_CALENDARS)
        {
            return error(
                400,
                &format!("unknown role {bad:?}: use {ROLE_CONTACTS:?} or {ROLE_CALENDARS:?}"),
            );
        }
        roles.into_iter().collect()
    } else {
        return error(400, "expected {\"in_scope\": bool} or {\"roles\": [...]}");
    };
    lock(&m.data).scope = scope;
    m.mark_dirty();
    Answer::ok(describe(m))
}

/// `{"budget": N}`: requests per 10 minutes; `{"reset": true}` forgets what was used.
fn set_budget(graph: &Graph, m: &Mailbox, body: &Value) -> Answer {
    let budget = body
        .get("budget")
        .or_else(|| body.get("requests"))
        .and_then(Value::as_u64);
    let reset = body.get("reset").and_then(Value::as_bool) == Some(true);
    if budget.is_none() && !reset {
        return error(400, "expected {\"budget\": N} and/or {\"reset\": true}");
    }
    if let Some(b) = budget {
        lock(&m.data).budget = b;
        m.mark_dirty();
    }
    if reset {
        graph.throttle.reset_budget(&m.id);
    }
    Answer::ok(describe(m))
}

fn set_roles(graph: &Graph, roles: Vec<String>) -> Answer {
    match graph.identity.set_roles(roles) {
        Ok(()) => Answer::ok(json!({"roles": graph.identity.roles()})),
        Err(e) => error(500, &format!("{e:#}")),
    }
}

/// `{"mailbox"?, "status": 429|503, "count": N, "retry_after"?: S}`,
/// `{"mailbox"?, "drop": true, "count": N}`, `{"mailbox"?, "malformed": true, "count": N}`,
/// `{"mailbox"?, "latency_ms": MS}` (0 removes it).
fn add_fault(graph: &Graph, body: &Value) -> Answer {
    let mailbox = match body.get("mailbox") {
        None | Some(Value::Null) => None,
        Some(Value::String(a)) => match graph.tenant.find(a) {
            Some(m) => Some(m.id.clone()),
            None => return error(404, &format!("no mailbox {a}")),
        },
        Some(_) => return error(400, "mailbox must be an address"),
    };
    if let Some(ms) = body.get("latency_ms") {
        let Some(ms) = ms.as_u64().filter(|ms| *ms <= MAX_LATENCY_MS) else {
            return error(400, &format!("latency_ms must be 0..={MAX_LATENCY_MS}"));
        };
        let key = mailbox.clone().unwrap_or_else(|| "*".to_owned());
        let mut faults = lock(&graph.faults);
        if ms == 0 {
            faults.latency_ms.remove(&key);
        } else {
            faults.latency_ms.insert(key, ms);
        }
        return Answer::ok(json!(*faults));
    }
    let count = match body.get("count") {
        None => 1,
        Some(c) => match c.as_u64().and_then(|c| u32::try_from(c).ok()) {
            Some(c) if c > 0 => c,
            _ => return error(400, "count must be a positive integer"),
        },
    };
    let kind = if body.get("drop").and_then(Value::as_bool) == Some(true) {
        FaultKind::Drop
    } else if body.get("malformed").and_then(Value::as_bool) == Some(true) {
        FaultKind::Malformed
    } else if let Some(status) = body.get("status") {
        let Some(status) = status
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .filter(|s| (400..=599).contains(s))
        else {
            return error(
                400,
                "status must be 400..=599 (429 and 503 are Graph's throttling)",
            );
        };
        let retry_after = match body.get("retry_after") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(s) => Some(s),
                None => return error(400, "retry_after must be whole seconds"),
            },
        };
        FaultKind::Status {
            status,
            retry_after,
        }
    } else {
        return error(
            400,
            "expected one of status, drop, malformed or latency_ms (see the control API)",
        );
    };
    let mut faults = lock(&graph.faults);
    faults.rules.push(FaultRule {
        mailbox,
        kind,
        remaining: count,
    });
    Answer::ok(json!(*faults))
}

/// Requests made as the mailbox's own user makes them in Outlook: through the stores, past
/// scope, budget and faults, and counted nowhere.
struct AsOwner {
    query: Query,
    prefer: Prefer,
    user_url: String,
    now: chrono::DateTime<Utc>,
}

impl AsOwner {
    fn new(graph: &Graph, m: &Mailbox) -> AsOwner {
        AsOwner {
            query: Query::default(),
            prefer: Prefer::default(),
            user_url: format!("{}/v1.0/users/{}", graph.base_url, m.id),
            now: Utc::now(),
        }
    }

    fn call<'a>(
        &'a self,
        method: &'a Method,
        path: &'a [String],
        body: Option<&'a Value>,
    ) -> Call<'a> {
        Call {
            method,
            path,
            query: &self.query,
            prefer: &self.prefer,
            if_match: None,
            body,
            now: self.now,
            user_url: &self.user_url,
        }
    }
}

/// `method path` on the mailbox's contacts, as its user's own request.
fn contacts_call(
    graph: &Graph,
    m: &Mailbox,
    method: &Method,
    path: &[String],
    body: Option<&Value>,
) -> Answer {
    let owner = AsOwner::new(graph, m);
    let answer = lock(&m.data)
        .contacts
        .handle(&owner.call(method, path, body))
        .unwrap_or_else(|| error(404, "no such contacts resource"));
    m.mark_dirty();
    answer
}

/// `{"name", "parent"?}`: a contact folder under `parent` (a folder id), else at the top of
/// the contact folders, as the user makes one in Outlook.
fn add_contact_folder(graph: &Graph, m: &Mailbox, body: &Value) -> Answer {
    let Some(name) = body.get("name").and_then(Value::as_str) else {
        return error(
            400,
            "expected {\"name\": \"…\", \"parent\"?: \"folder id\"}",
        );
    };
    let path: Vec<String> = match body.get("parent").and_then(Value::as_str) {
        Some(parent) => vec![
            "contactFolders".into(),
            parent.into(),
            "childFolders".into(),
        ],
        None => vec!["contactFolders".into()],
    };
    contacts_call(
        graph,
        m,
        &Method::POST,
        &path,
        Some(&json!({ "displayName": name })),
    )
}

/// `{"folder": id, "rename": name}`, `{"folder", "move_to": id}` or `{"folder", "delete":
/// "deleteditems" | "hard"}`: what the user does to a contact folder in Outlook (Delete, or
/// a permanent delete).
fn change_contact_folder(graph: &Graph, m: &Mailbox, body: &Value) -> Answer {
    let text = |key: &str| body.get(key).and_then(Value::as_str);
    let Some(folder) = text("folder") else {
        return error(400, "expected {\"folder\": \"folder id\", …}");
    };
    let path = vec!["contactFolders".to_owned(), folder.to_owned()];
    match (text("rename"), text("move_to"), text("delete")) {
        (Some(name), None, None) => contacts_call(
            graph,
            m,
            &Method::PATCH,
            &path,
            Some(&json!({ "displayName": name })),
        ),
        (None, Some(to), None) => {
            let moved = lock(&m.data).contacts.move_folder(folder, to);
            m.mark_dirty();
            moved.map_or_else(|a| a, Answer::ok)
        }
        (None, None, Some("hard")) => contacts_call(graph, m, &Method::DELETE, &path, None),
        (None, None, Some("deleteditems")) => {
            let moved = lock(&m.data).contacts.delete_to_bin(folder);
            m.mark_dirty();
            moved.map_or_else(|a| a, Answer::ok)
        }
        (None, None, Some(other)) => error(
            400,
            &format!("delete {other:?}: \"deleteditems\" or \"hard\""),
        ),
        _ => error(400, "say one of rename, move_to or delete"),
    }
}

/// Creates items through the store as a Graph POST would, so they get ids, etags and
/// change tracking. The body is one Graph item or an array of them; they go to `container`
/// (a contact folder's or a calendar's id) if given, else to the default folder or calendar.
fn seed(graph: &Graph, m: &Mailbox, kind: &str, container: Option<&str>, body: &Value) -> Answer {
    let items: Vec<&Value> = match body {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![body],
        _ => return error(400, "expected a Graph item (object) or an array of them"),
    };
    if items.len() > MAX_SEED_ITEMS {
        return error(400, &format!("at most {MAX_SEED_ITEMS} items per seed"));
    }
    let path: Vec<String> = match container {
        None => vec![kind.to_owned()],
        Some(id) if kind == "contacts" => vec!["contactFolders".into(), id.into(), kind.into()],
        Some(id) => vec!["calendars".into(), id.into(), kind.into()],
    };
    let owner = AsOwner::new(graph, m);
    let mut created = Vec::with_capacity(items.len());
    let mut data = lock(&m.data);
    for item in items {
        let call = owner.call(&Method::POST, &path, Some(item));
        let data = &mut *data;
        let answer = if kind == "contacts" {
            data.contacts.handle(&call)
        } else {
            data.calendar.handle(&call)
        };
        match answer {
            Some(a) if (200..300).contains(&a.status) => {
                created.push(a.body.unwrap_or(Value::Null));
            }
            Some(a) => {
                m.mark_dirty();
                return Answer::with(
                    a.status,
                    json!({"error": "the store refused an item", "created": created.len(), "answer": a.body}),
                );
            }
            None => return error(501, &format!("the {kind} store does not take POST yet")),
        }
    }
    drop(data);
    m.mark_dirty();
    Answer::ok(json!({"created": created}))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn status_rules_count_down_per_mailbox() {
        let mut f = Faults::default();
        f.rules.push(FaultRule {
            mailbox: Some("m1".into()),
            kind: FaultKind::Status {
                status: 429,
                retry_after: Some(2),
            },
            remaining: 2,
        });
        assert!(f.status_for("m2").is_none());
        let a = f.status_for("m1").unwrap();
        assert_eq!(a.status, 429);
        assert!(a.headers.contains(&("Retry-After".into(), "2".into())));
        let body = a.body.clone().unwrap();
        assert_eq!(body["error"]["code"], "TooManyRequests");
        let inner = &body["error"]["innerError"];
        assert_eq!(inner["code"], "429");
        assert_eq!(inner["status"], "429");
        assert_eq!(inner["message"], "Please retry after");
        assert!(inner["request-id"].is_string() && inner["date"].is_string());
        assert!(f.status_for("m1").is_some());
        assert!(f.status_for("m1").is_none());
        assert!(f.rules.is_empty());
    }

    #[test]
    fn unscoped_mangles_catch_any_request_and_latency_falls_back_to_star() {
        let mut f = Faults::default();
        f.rules.push(FaultRule {
            mailbox: None,
            kind: FaultKind::Malformed,
            remaining: 1,
        });
        f.rules.push(FaultRule {
            mailbox: Some("m1".into()),
            kind: FaultKind::Drop,
            remaining: 1,
        });
        assert_eq!(f.mangle_for(None), Mangle::Malformed);
        assert_eq!(f.mangle_for(Some("m2")), Mangle::None);
        assert_eq!(f.mangle_for(Some("m1")), Mangle::Drop);
        f.latency_ms.insert("*".into(), 5);
        f.latency_ms.insert("m1".into(), 9);
        assert_eq!(f.latency_for("m1"), 9);
        assert_eq!(f.latency_for("m2"), 5);
    }

    #[test]
    fn host_counters_keep_the_scheme_not_the_credentials() {
        let mut c = Counters::default();
        c.host("127.0.0.1:1", Some("Bearer secret.token"));
        c.host("127.0.0.1:1", None);
        let seen = &c.hosts["127.0.0.1:1"];
        assert_eq!((seen.requests, seen.with_authorization), (2, 1));
        assert_eq!(seen.schemes.keys().collect::<Vec<_>>(), ["Bearer"]);
    }
}
