//! The server-rendered setup pages. A form post answers with the page itself, showing what
//! happened, rather than redirecting with a message in the URL.

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use exsync_core::config::explain_assignment;
use exsync_core::UserKey;
use exsync_store::Role;
use serde::Deserialize;
use serde_json::Value;

use super::api::{self, ConfigurationInput, CrmInput, ServiceAccountInput};
use super::auth::{allows, Caller, SESSION_TTL};
use super::error::ConsoleError;
use super::html::{csrf_field, error_box, esc, notice, page, seg};
use super::{client_addr, AppState};
use exsync_engine::vault::SecretValue;

fn fail(status: StatusCode, title: &str, caller: &Caller, message: &str) -> Response {
    (status, page(title, Some(caller), &error_box(Some(message)))).into_response()
}

fn internal(caller: &Caller, e: ConsoleError) -> Response {
    fail(e.status, "Error", caller, &e.message)
}

// ---- login -----------------------------------------------------------------------------------

fn login_page(message: Option<&str>) -> Html<String> {
    page(
        "Log in",
        None,
        &format!(
            r#"{}<form method="post" action="/login" id="login-form">
<label>User name <input type="text" name="username" id="username" autocomplete="username" required></label>
<label>Password <input type="password" name="password" id="password" autocomplete="current-password" required></label>
<button type="submit" id="login">Log in</button></form>"#,
            error_box(message)
        ),
    )
}

pub async fn login_form() -> Html<String> {
    login_page(None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: SecretValue,
}

pub async fn login(State(st): State<AppState>, req: Request) -> Response {
    use axum::extract::FromRequest;
    let client = client_addr(req.extensions());
    let Ok(Form(form)) = Form::<LoginForm>::from_request(req, &st).await else {
        return (
            StatusCode::BAD_REQUEST,
            login_page(Some("fill in user name and password")),
        )
            .into_response();
    };
    match api::do_login(&st, &client, &form.username, form.password).await {
        Ok(done) => {
            let mut res = Redirect::to("/").into_response();
            res.headers_mut().insert(
                header::SET_COOKIE,
                api::set_cookie(&st, &done.cookie, SESSION_TTL.num_seconds()),
            );
            res
        }
        Err(failure) => {
            let mut res = (failure.status(), login_page(Some(&failure.message()))).into_response();
            if let Some(v) = failure.retry_after() {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            res
        }
    }
}

pub async fn logout(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: http::HeaderMap,
) -> Response {
    api::end_session(&st, &headers, &caller);
    let mut res = Redirect::to("/login").into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, api::set_cookie(&st, "", 0));
    res
}

// ---- overview: sync switch and user status ---------------------------------------------------

fn overview_page(
    st: &AppState,
    caller: &Caller,
    message: Option<&str>,
    error: Option<&str>,
) -> Response {
    let (enabled, users) = match (st.sync_enabled(), api::users_view(st)) {
        (Ok(e), Ok(u)) => (e, u),
        (Err(e), _) | (_, Err(e)) => return internal(caller, e),
    };
    let skipped = match st.store.skipped_crm_users() {
        Ok(s) => s,
        Err(e) => return internal(caller, e.into()),
    };
    let mut body = String::new();
    body.push_str(&notice(message));
    body.push_str(&error_box(error));
    body.push_str(&format!(
        r#"<p>Sync is <strong id="sync-state">{}</strong>.</p>"#,
        if enabled { "enabled" } else { "disabled" }
    ));
    if allows(caller.role, Role::Admin) {
        body.push_str(&format!(
            r#"<form method="post" action="/sync">{}<input type="hidden" name="enabled" value="{}"><button type="submit" id="sync-toggle">{}</button></form>"#,
            csrf_field(caller),
            !enabled,
            if enabled { "Disable sync" } else { "Enable sync" }
        ));
    }
    body.push_str("<h2>Users</h2>");
    if users.is_empty() {
        body.push_str(r#"<p class="muted">No user has been synced yet.</p>"#);
    } else {
        body.push_str(
            r#"<table id="users"><tr><th>User</th><th>Configuration</th><th>Last pass</th><th>Created / updated / deleted</th><th>Conflicts</th><th>Failures</th><th>Error</th><th>Paused</th><th>Unresolved items</th><th>Pairs (contacts / events)</th><th></th></tr>"#,
        );
        for u in &users {
            body.push_str(&user_row(caller, u));
        }
        body.push_str("</table>");
    }
    body.push_str(&skipped_section(&skipped));
    page("Status", Some(caller), &body).into_response()
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// CRM users the last pass left out: an address that names no mailbox is said here, with the
/// reason and the fix, instead of the user silently never syncing.
fn skipped_section(skipped: &[exsync_store::SkippedCrmUser]) -> String {
    if skipped.is_empty() {
        return String::new();
    }
    let mut out = format!(
        r#"<h2>CRM users not synced ({})</h2>
<p class="muted">Their address in the CRM names no mailbox. Correct the user's e-mail address in the CRM; the next pass picks them up.</p>
<table id="skipped-users"><tr><th>CRM user</th><th>Address in the CRM</th><th>Reason</th><th>Left out since</th><th>Last pass</th></tr>"#,
        skipped.len()
    );
    for s in skipped {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(s.crm_id.as_str()),
            esc(&s.address),
            esc(&s.reason),
            esc(&s.first_seen.to_rfc3339()),
            esc(&s.last_seen.to_rfc3339()),
        ));
    }
    out.push_str("</table>");
    out
}

fn user_row(caller: &Caller, u: &Value) -> String {
    let user = text(&u["user"]);
    let run = &u["last_run"];
    let counts = &run["counts"];
    let paused = if u["paused"].is_null() {
        "no".to_owned()
    } else {
        format!("yes: {}", text(&u["paused"]["reason"]))
    };
    let config = match &u["configuration"] {
        Value::Null => "(by group, or none)".to_owned(),
        c => format!("{} ({})", text(&c["name"]), text(&c["assigned_by"])),
    };
    let mut actions = String::new();
    if allows(caller.role, Role::Operator) {
        // The question is attribute text that the console's script hands to `confirm` as a
        // string; the address never becomes part of any code.
        let question = format!(
            "Reset Sync for {user}? Its pairs and cursors are forgotten; no data is deleted."
        );
        actions = format!(
            r#"<form class="inline" method="post" action="/users/{s}/reset" data-confirm="{q}">{c}<button type="submit" class="reset" data-user="{e}">Reset Sync</button></form>
<form class="inline" method="post" action="/users/{s}/test">{c}<button type="submit" class="test" data-user="{e}">Test connection</button></form>"#,
            s = seg(&user),
            e = esc(&user),
            q = esc(&question),
            c = csrf_field(caller)
        );
    }
    format!(
        "<tr data-user=\"{e}\"><td>{e}</td><td>{}</td><td>{}</td><td>{} / {} / {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{actions}</td></tr>",
        esc(&config),
        esc(&text(&run["finished"])),
        esc(&text(&counts["created"])),
        esc(&text(&counts["updated"])),
        esc(&text(&counts["deleted"])),
        esc(&text(&counts["conflicts"])),
        esc(&text(&counts["failures"])),
        esc(&text(&run["error"])),
        esc(&paused),
        esc(&text(&u["unresolved"])),
        esc(&text(&u["contact_pairs"])),
        esc(&text(&u["event_pairs"])),
        e = esc(&user),
    )
}

pub async fn overview(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Response {
    overview_page(&st, &caller, None, None)
}

#[derive(Deserialize)]
pub struct SyncForm {
    enabled: String,
}

pub async fn set_sync(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Form(form): Form<SyncForm>,
) -> Response {
    let enabled = form.enabled == "true";
    let result = api::set_sync(&st, &caller, enabled);
    let msg = if enabled {
        "Sync enabled."
    } else {
        "Sync disabled."
    };
    match result {
        Ok(()) => overview_page(&st, &caller, Some(msg), None),
        Err(e) => overview_page(&st, &caller, None, Some(&e.message)),
    }
}

pub async fn reset_user(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(user): Path<String>,
) -> Response {
    match api::do_reset(&st, &caller, &user) {
        Ok(done) => overview_page(
            &st,
            &caller,
            Some(&format!(
                "Reset Sync for {}: {} pairs and {} cursors forgotten; the next pass matches everything again.",
                text(&done["user"]),
                text(&done["pairs_forgotten"]),
                text(&done["cursors_forgotten"])
            )),
            None,
        ),
        Err(e) => overview_page(&st, &caller, None, Some(&e.message)),
    }
}

pub async fn test_user(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(user): Path<String>,
) -> Response {
    let (status, report) = api::do_test(&st, &caller, &user).await;
    let mut body = format!(
        r#"<p id="test-status">Connection test for {}: <strong>{}</strong></p><p>{}</p>"#,
        esc(&user),
        esc(&text(&report["status"])),
        esc(&text(&report["message"])),
    );
    if let Some(steps) = report["steps"].as_array() {
        body.push_str(r#"<table id="test-steps"><tr><th>Result</th><th>Step</th><th>Evidence</th><th>Fix</th></tr>"#);
        for step in steps {
            let evidence: String = step["evidence"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|e| format!("<li>{}</li>", esc(&text(e))))
                        .collect()
                })
                .unwrap_or_default();
            body.push_str(&format!(
                r#"<tr class="{o}"><td>{o}</td><td>{}</td><td><ul>{evidence}</ul></td><td>{}</td></tr>"#,
                esc(&text(&step["name"])),
                esc(&text(&step["fix"])),
                o = esc(&text(&step["outcome"])),
            ));
        }
        body.push_str("</table>");
    }
    body.push_str(&format!(
        r#"<details><summary>As JSON</summary><pre id="test-report">{}</pre></details><p><a href="/">Back to status</a></p>"#,
        esc(&serde_json::to_string_pretty(&report).unwrap_or_default())
    ));
    (status, page("Connection test", Some(&caller), &body)).into_response()
}

// ---- service account -------------------------------------------------------------------------

fn service_account_page(
    st: &AppState,
    caller: &Caller,
    message: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let v = match api::service_account_view(st) {
        Ok(v) => v,
        Err(e) => return internal(caller, e),
    };
    let username = text(&v["username"]);
    let provided = if v["password_provided"] == Value::Bool(true) {
        format!(
            r#"<p class="notice" id="provided">Service account provided: {}</p>"#,
            esc(&username)
        )
    } else {
        r#"<p class="muted" id="provided">No service account password stored yet.</p>"#.to_owned()
    };
    let auth = text(&v["auth"]);
    let option = |value: &str, label: &str| {
        format!(
            r#"<option value="{value}"{}>{label}</option>"#,
            if auth == value { " selected" } else { "" }
        )
    };
    let domains: Vec<String> = v["other_domains"]
        .as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default();
    let body = format!(
        r#"{}{}{provided}
<form method="post" action="/service-account" autocomplete="off" id="service-account-form">{}
<fieldset><legend>Connection method</legend>
<label>Method <select name="method" disabled><option selected>Exchange Web Services through a service account with impersonation</option></select></label>
<label>Authentication <select name="auth" id="auth">{}{}{}</select></label></fieldset>
<fieldset><legend>Service account</legend>
<label>User name (user@domain or DOMAIN\user) <input type="text" name="username" id="sa-username" value="{}" autocomplete="off" required></label>
<label>Password <input type="password" name="password" id="sa-password" value="" autocomplete="off" data-no-copy placeholder="{}"></label>
<p class="muted">The password is stored encrypted and is never shown again. Type it again to change it; changing the domains below also requires it.</p></fieldset>
<fieldset><legend>Where mailboxes are found</legend>
<label>EWS URL (leave empty to use Autodiscover) <input type="text" name="ews_url" id="ews-url" value="{}" placeholder="https://mail.example.com/EWS/Exchange.asmx"></label>
<label>Other domains to sync, comma-separated <input type="text" name="other_domains" id="other-domains" value="{}"></label>
<label>CA file (PEM, for a company PKI) <input type="text" name="ca_file" id="ca-file" value="{}"></label></fieldset>
<button type="submit" id="save-service-account">Save</button></form>"#,
        notice(message),
        error_box(error),
        csrf_field(caller),
        option("auto", "Basic when offered, NTLM otherwise"),
        option("basic", "Basic"),
        option("ntlm", "NTLM"),
        esc(&username),
        if v["password_provided"] == Value::Bool(true) {
            "(stored; type it again to change it)"
        } else {
            "required"
        },
        esc(&text(&v["ews_url"])),
        esc(&domains.join(", ")),
        esc(&text(&v["ca_file"])),
    );
    (status, page("Service account", Some(caller), &body)).into_response()
}

pub async fn service_account(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Response {
    service_account_page(&st, &caller, None, None, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct ServiceAccountForm {
    username: String,
    #[serde(default)]
    password: Option<SecretValue>,
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    ews_url: Option<String>,
    #[serde(default)]
    other_domains: String,
    #[serde(default)]
    ca_file: Option<String>,
}

pub async fn save_service_account(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Form(form): Form<ServiceAccountForm>,
) -> Response {
    let input = ServiceAccountInput {
        username: form.username,
        password: form.password,
        auth: form.auth,
        ews_url: form.ews_url,
        other_domains: vec![form.other_domains],
        ca_file: form.ca_file,
    };
    match api::apply_service_account(&st, &caller, input) {
        Ok(_) => service_account_page(&st, &caller, Some("Saved."), None, StatusCode::OK),
        Err(e) => service_account_page(&st, &caller, None, Some(&e.message), e.status),
    }
}

// ---- CRM connection --------------------------------------------------------------------------

fn crm_page(
    st: &AppState,
    caller: &Caller,
    message: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let v = match api::crm_view(st) {
        Ok(v) => v,
        Err(e) => return internal(caller, e),
    };
    let auth = text(&v["auth"]);
    let yes = |b: &Value| {
        if *b == Value::Bool(true) {
            "stored"
        } else {
            "not stored"
        }
    };
    let body = format!(
        r#"{}{}<form method="post" action="/crm" autocomplete="off" id="crm-form">{}
<label>Consumer key (client id) <input type="text" name="client_id" value="{}" required></label>
<label>Login URL <input type="text" name="login_url" value="{}"></label>
<label>Instance URL <input type="text" name="instance_url" value="{}"></label>
<label>Authentication <select name="auth"><option value="jwt"{}>JWT bearer</option><option value="client_credentials"{}>Client credentials</option></select></label>
<label>Integration user <input type="text" name="username" value="{}"></label>
<fieldset><legend>Private key (JWT): <span id="key-state">{}</span></legend>
<label>Upload a PEM file <input type="file" id="key-file" accept=".pem,.key" data-fills="private-key"></label>
<textarea name="private_key" id="private-key" rows="4" autocomplete="off" placeholder="or paste it here; it is never shown again"></textarea></fieldset>
<label>Client secret ({}) <input type="password" name="client_secret" autocomplete="off" data-no-copy value=""></label>
<button type="submit" id="save-crm">Save</button></form>"#,
        notice(message),
        error_box(error),
        csrf_field(caller),
        esc(&text(&v["client_id"])),
        esc(&text(&v["login_url"])),
        esc(&text(&v["instance_url"])),
        if auth == "jwt" { " selected" } else { "" },
        if auth == "client_credentials" {
            " selected"
        } else {
            ""
        },
        esc(&text(&v["username"])),
        yes(&v["private_key_provided"]),
        yes(&v["client_secret_provided"]),
    );
    (status, page("CRM connection", Some(caller), &body)).into_response()
}

pub async fn crm(State(st): State<AppState>, Extension(caller): Extension<Caller>) -> Response {
    crm_page(&st, &caller, None, None, StatusCode::OK)
}

pub async fn save_crm(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Form(input): Form<CrmInput>,
) -> Response {
    match api::apply_crm(&st, &caller, input) {
        Ok(_) => crm_page(&st, &caller, Some("Saved."), None, StatusCode::OK),
        Err(e) => crm_page(&st, &caller, None, Some(&e.message), e.status),
    }
}

// ---- configurations --------------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct ExplainQuery {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    groups: Option<String>,
}

/// `form` is the id of the form the select belongs to when it sits outside it.
fn direction_select(name: &str, current: &str, form: Option<&str>) -> String {
    let form = form
        .map(|f| format!(r#" form="{}""#, esc(f)))
        .unwrap_or_default();
    let mut s = format!(r#"<select name="{name}"{form}>"#);
    for d in ["both", "crm_to_exchange", "exchange_to_crm", "off"] {
        s.push_str(&format!(
            r#"<option value="{d}"{}>{d}</option>"#,
            if d == current { " selected" } else { "" }
        ));
    }
    s.push_str("</select>");
    s
}

fn list_text(v: &Value) -> String {
    v.as_array()
        .map(|a| a.iter().map(text).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

fn configurations_page(
    st: &AppState,
    caller: &Caller,
    explain: &ExplainQuery,
    message: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let config = match st.config.load() {
        Ok(c) => c,
        Err(e) => return internal(caller, e),
    };
    let mut body = String::new();
    body.push_str(&notice(message));
    body.push_str(&error_box(error));
    body.push_str(r#"<table id="configurations"><tr><th>Name</th><th>Active</th><th>Users</th><th>Groups</th><th>Contacts</th><th>Events</th><th></th></tr>"#);
    for (i, (c, v)) in config
        .configurations
        .iter()
        .zip(
            api::configurations_view(&config)
                .as_array()
                .cloned()
                .unwrap_or_default(),
        )
        .enumerate()
    {
        // The fields sit in other cells than their form and join it by id. The id is the
        // row's position, not the name, which a hand-edited file may fill with anything.
        let form = format!("cfg-{i}");
        body.push_str(&format!(
            r#"<tr data-configuration="{n}">
<td>{n}</td>
<td><select name="active" form="{f}"><option value="true"{a1}>active</option><option value="false"{a0}>inactive</option></select></td>
<td><textarea name="users" rows="2" form="{f}">{users}</textarea></td>
<td><textarea name="groups" rows="2" form="{f}">{groups}</textarea></td>
<td>{cd}</td><td>{ed}</td>
<td><form method="post" action="/configurations/{s}" id="{f}">{csrf}<button type="submit" class="save-configuration">Save</button></form></td></tr>"#,
            n = esc(&c.name),
            s = seg(&c.name),
            f = esc(&form),
            csrf = csrf_field(caller),
            a1 = if c.active { " selected" } else { "" },
            a0 = if c.active { "" } else { " selected" },
            users = esc(&list_text(&v["users"])),
            groups = esc(&list_text(&v["groups"])),
            cd = direction_select("contacts_direction", &text(&v["contacts"]["direction"]), Some(&form)),
            ed = direction_select("events_direction", &text(&v["events"]["direction"]), Some(&form)),
        ));
    }
    body.push_str("</table>");
    body.push_str(&format!(
        r#"<h2>New configuration</h2><form method="post" action="/configurations" id="new-configuration">{}
<label>Name <input type="text" name="name" id="new-name" required pattern="[A-Za-z0-9_-]+"></label>
<label>Users (addresses, comma-separated) <input type="text" name="users" id="new-users"></label>
<label>Groups (Salesforce profiles, comma-separated) <input type="text" name="groups" id="new-groups"></label>
<label>Contacts {}</label><label>Events {}</label>
<button type="submit" id="create-configuration">Create</button></form>"#,
        csrf_field(caller),
        direction_select("contacts_direction", "both", None),
        direction_select("events_direction", "both", None),
    ));

    // Every user anyone assigned or that has synced, with what applies to them.
    let mut known: std::collections::BTreeSet<UserKey> = config
        .configurations
        .iter()
        .flat_map(|c| c.users.iter().cloned())
        .collect();
    if let Ok(users) = st.store.list_users() {
        known.extend(users.into_iter().map(|u| u.user));
    }
    body.push_str(r#"<h2>Effective configuration per user</h2><p class="muted">An individual assignment beats a group one. Group assignments depend on the user's Salesforce profile; check one below.</p><table id="effective"><tr><th>User</th><th>Configuration</th><th>How</th></tr>"#);
    let none = std::collections::BTreeSet::new();
    for user in &known {
        let a = explain_assignment(&config.configurations, user, &none);
        body.push_str(&format!(
            r#"<tr data-user="{u}"><td>{u}</td><td>{}</td><td>{}</td></tr>"#,
            esc(a.configuration.as_deref().unwrap_or("(none individually)")),
            esc(&a.reasons.join("; ")),
            u = esc(user.as_str())
        ));
    }
    body.push_str("</table>");
    body.push_str(&format!(
        r#"<h3>Check a user</h3><form method="get" action="/configurations" id="explain-form">
<label>User <input type="text" name="user" value="{}"></label>
<label>Groups, comma-separated <input type="text" name="groups" value="{}"></label>
<button type="submit">Explain</button></form>"#,
        esc(explain.user.as_deref().unwrap_or("")),
        esc(explain.groups.as_deref().unwrap_or("")),
    ));
    if let Some(user) = explain.user.as_deref().filter(|u| !u.trim().is_empty()) {
        let a = explain_assignment(
            &config.configurations,
            &UserKey::from_email(user),
            &api::groups_of(explain.groups.as_deref()),
        );
        body.push_str(&format!(
            r#"<div id="explanation"><p><strong>{}</strong>: {}</p><ul>{}</ul></div>"#,
            esc(&a.user),
            esc(a
                .configuration
                .as_deref()
                .unwrap_or("no configuration applies")),
            a.reasons
                .iter()
                .map(|r| format!("<li>{}</li>", esc(r)))
                .collect::<String>()
        ));
    }
    (status, page("Configurations", Some(caller), &body)).into_response()
}

pub async fn configurations(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ExplainQuery>,
) -> Response {
    configurations_page(&st, &caller, &q, None, None, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct ConfigurationForm {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    active: Option<String>,
    #[serde(default)]
    users: Option<String>,
    #[serde(default)]
    groups: Option<String>,
    #[serde(default)]
    contacts_direction: Option<String>,
    #[serde(default)]
    events_direction: Option<String>,
}

impl From<ConfigurationForm> for ConfigurationInput {
    fn from(f: ConfigurationForm) -> Self {
        ConfigurationInput {
            name: f.name,
            active: f.active.map(|a| a == "true"),
            users: f.users.map(|u| vec![u]),
            groups: f.groups.map(|g| vec![g]),
            contacts_direction: f.contacts_direction,
            events_direction: f.events_direction,
        }
    }
}

fn after_configuration_change(
    st: &AppState,
    caller: &Caller,
    result: Result<Value, ConsoleError>,
    done: &str,
) -> Response {
    let q = ExplainQuery::default();
    match result {
        Ok(_) => configurations_page(st, caller, &q, Some(done), None, StatusCode::OK),
        Err(e) => configurations_page(st, caller, &q, None, Some(&e.message), e.status),
    }
}

pub async fn create_configuration(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Form(form): Form<ConfigurationForm>,
) -> Response {
    let name = form.name.clone().unwrap_or_default();
    let result = api::apply_configuration(&st, &caller, &name, form.into(), true);
    after_configuration_change(
        &st,
        &caller,
        result,
        &format!("Configuration {name} created."),
    )
}

pub async fn update_configuration(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Form(form): Form<ConfigurationForm>,
) -> Response {
    let result = api::apply_configuration(&st, &caller, &name, form.into(), false);
    after_configuration_change(
        &st,
        &caller,
        result,
        &format!("Configuration {name} saved."),
    )
}

// ---- audit log -------------------------------------------------------------------------------

pub async fn audit(State(st): State<AppState>, Extension(caller): Extension<Caller>) -> Response {
    let entries = match st.store.list_audit(200, None) {
        Ok(e) => e,
        Err(e) => return internal(&caller, e.into()),
    };
    let mut body = String::from(
        r#"<table id="audit"><tr><th>#</th><th>When (UTC)</th><th>Who</th><th>What</th><th>Detail</th></tr>"#,
    );
    for e in entries {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            e.id,
            esc(&e.at.format("%Y-%m-%d %H:%M:%S").to_string()),
            esc(&e.actor),
            esc(&e.action),
            esc(&e.detail.to_string())
        ));
    }
    body.push_str("</table>");
    page("Audit log", Some(&caller), &body).into_response()
}
