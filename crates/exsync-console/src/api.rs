//! The JSON API (described in `openapi.json`), and the operations the pages share with it:
//! logging in, saving the service account and CRM connection, editing configurations,
//! Reset Sync, connection tests.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use exsync_core::config::{configuration_value, explain_assignment, ExsyncConfig};
use exsync_core::UserKey;
use exsync_store::Session;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{
    random_token, sha256_hex, verify_password, Caller, Via, SESSION_COOKIE, SESSION_TTL,
};
use super::error::{ConsoleError, ConsoleResult};
use super::settings::{set_bool, set_list, set_str, table_at};
use super::{client_addr, AppState};
use exsync_engine::vault::{SecretValue, CRM_CLIENT_SECRET, CRM_PRIVATE_KEY, EXCHANGE_PASSWORD};

// ---- login -----------------------------------------------------------------------------------

/// What the log and the audit record as the name of a failed login whose name is not an
/// account.
pub(crate) const UNKNOWN_ACCOUNT: &str = "unknown account";

pub(crate) struct LoggedIn {
    pub name: String,
    pub role: exsync_store::Role,
    pub cookie: String,
    pub csrf: String,
}

pub(crate) enum LoginFailure {
    Limited(Duration),
    Wrong,
    Internal(ConsoleError),
}

impl LoginFailure {
    pub fn message(&self) -> String {
        match self {
            LoginFailure::Limited(wait) => format!(
                "too many failed logins for this account or from this address; try again in {} minutes",
                wait.as_secs().div_ceil(60).max(1)
            ),
            LoginFailure::Wrong => "wrong user name or password".to_owned(),
            LoginFailure::Internal(e) => e.message.clone(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            LoginFailure::Limited(_) => StatusCode::TOO_MANY_REQUESTS,
            LoginFailure::Wrong => StatusCode::UNAUTHORIZED,
            LoginFailure::Internal(e) => e.status,
        }
    }

    pub fn retry_after(&self) -> Option<HeaderValue> {
        match self {
            LoginFailure::Limited(wait) => {
                HeaderValue::from_str(&wait.as_secs().max(1).to_string()).ok()
            }
            _ => None,
        }
    }
}

pub(crate) async fn do_login(
    st: &AppState,
    client: &str,
    username: &str,
    password: SecretValue,
) -> Result<LoggedIn, LoginFailure> {
    let username = username.trim().to_owned();
    let account = st
        .store
        .admin_user(&username)
        .map_err(|e| LoginFailure::Internal(e.into()))?;
    // Whatever was typed as the name may be a password typed into the wrong field; it is
    // only ever written down (log, audit) when it names an existing account.
    let who = account
        .as_ref()
        .map_or(UNKNOWN_ACCOUNT, |a| a.name.as_str())
        .to_owned();
    if let Err(wait) = st.limiter.check(&username, client) {
        tracing::warn!(user = %who, client, "login refused: rate limit");
        return Err(LoginFailure::Limited(wait));
    }
    let hash = account.as_ref().map(|a| a.password_hash.clone());
    // argon2 is deliberately slow: keep it off the async workers.
    let ok =
        tokio::task::spawn_blocking(move || verify_password(hash.as_deref(), password.expose()))
            .await
            .unwrap_or(false);
    let Some(account) = account.filter(|_| ok) else {
        st.limiter.failed(&username, client);
        tracing::info!(user = %who, client, "login failed");
        st.audit(&who, "login.failed", json!({ "client": client }));
        return Err(LoginFailure::Wrong);
    };
    st.limiter.succeeded(&username);
    let cookie = random_token();
    let csrf = random_token();
    let now = Utc::now();
    st.store
        .create_session(&Session {
            id: sha256_hex(&cookie),
            admin_user: account.name.clone(),
            csrf_token: csrf.clone(),
            created_at: now,
            expires_at: now + SESSION_TTL,
        })
        .map_err(|e| LoginFailure::Internal(e.into()))?;
    st.audit(&account.name, "login", json!({ "client": client }));
    Ok(LoggedIn {
        name: account.name,
        role: account.role,
        cookie,
        csrf,
    })
}

pub(crate) fn set_cookie(st: &AppState, value: &str, max_age: i64) -> HeaderValue {
    let secure = if st.tls { "; Secure" } else { "" };
    let text = format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub(crate) fn end_session(st: &AppState, req_headers: &http::HeaderMap, caller: &Caller) {
    if let Some(cookie) = super::guard::session_cookie(req_headers) {
        if let Err(e) = st.store.delete_session(&sha256_hex(&cookie)) {
            tracing::error!(error = %e, "cannot delete a session");
        }
    }
    st.audit(&caller.actor(), "logout", json!({}));
}

#[derive(Deserialize)]
pub(crate) struct LoginInput {
    pub username: String,
    pub password: SecretValue,
}

pub async fn login(State(st): State<AppState>, req: Request) -> Response {
    let client = client_addr(req.extensions());
    let body = match axum::body::to_bytes(req.into_body(), 64 * 1024).await {
        Ok(b) => b,
        Err(_) => return ConsoleError::bad_request("the login body is too large").into_response(),
    };
    let input: LoginInput = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(e) => {
            return ConsoleError::bad_request(format!(
                "expected JSON {{\"username\", \"password\"}}: {e}"
            ))
            .into_response()
        }
    };
    match do_login(&st, &client, &input.username, input.password).await {
        Ok(done) => {
            let mut res = Json(json!({
                "user": done.name,
                "role": done.role,
                "csrf_token": done.csrf,
            }))
            .into_response();
            res.headers_mut().insert(
                header::SET_COOKIE,
                set_cookie(&st, &done.cookie, SESSION_TTL.num_seconds()),
            );
            res
        }
        Err(failure) => {
            let mut res = ConsoleError::new(failure.status(), failure.message()).into_response();
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
    end_session(&st, &headers, &caller);
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&st, "", 0));
    res
}

pub async fn me(Extension(caller): Extension<Caller>) -> Json<Value> {
    let via = match caller.via {
        Via::Session { .. } => "session",
        Via::Token { .. } => "token",
    };
    Json(json!({ "name": caller.name, "role": caller.role, "via": via }))
}

// ---- sync on/off -----------------------------------------------------------------------------

pub async fn get_sync(State(st): State<AppState>) -> ConsoleResult<Json<Value>> {
    Ok(Json(json!({ "enabled": st.sync_enabled()? })))
}

#[derive(Deserialize)]
pub(crate) struct SyncInput {
    pub enabled: bool,
}

pub(crate) fn set_sync(st: &AppState, caller: &Caller, enabled: bool) -> ConsoleResult<()> {
    exsync_engine::switch::set_enabled(st.store.as_ref(), enabled, Utc::now())?;
    st.audit(
        &caller.actor(),
        if enabled {
            "sync.enable"
        } else {
            "sync.disable"
        },
        json!({}),
    );
    Ok(())
}

pub async fn put_sync(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(input): Json<SyncInput>,
) -> ConsoleResult<Json<Value>> {
    set_sync(&st, &caller, input.enabled)?;
    Ok(Json(json!({ "enabled": input.enabled })))
}

// ---- service account -------------------------------------------------------------------------

pub(crate) fn service_account_view(st: &AppState) -> ConsoleResult<Value> {
    let config = st.config.load()?;
    let x = &config.exchange;
    Ok(json!({
        "connection_method": "ews_service_account",
        "username": x.service_account,
        "password_provided": st.vault.contains(EXCHANGE_PASSWORD)?,
        "auth": x.auth.as_str(),
        "ews_url": x.ews_url,
        "autodiscover": x.ews_url.is_none(),
        "other_domains": x.other_domains,
        "ca_file": x.ca_file.as_ref().map(|p| p.display().to_string()),
    }))
}

#[derive(Deserialize)]
pub(crate) struct ServiceAccountInput {
    pub username: String,
    #[serde(default)]
    pub password: Option<SecretValue>,
    #[serde(default)]
    pub auth: Option<String>,
    #[serde(default)]
    pub ews_url: Option<String>,
    #[serde(default)]
    pub other_domains: Vec<String>,
    #[serde(default)]
    pub ca_file: Option<String>,
}

fn blank_to_none(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

pub(crate) fn domain_set(domains: &[String]) -> BTreeSet<String> {
    domains
        .iter()
        .flat_map(|d| d.split([',', ' ', '\n', '\r', '\t']))
        .map(|d| d.trim().to_lowercase())
        .filter(|d| !d.is_empty())
        .collect()
}

/// Saves the service account. A new account, a first password or any change of the
/// domains the credentials may be sent to requires the password again, so that someone at an
/// unattended console cannot redirect the stored credentials to a domain they control.
pub(crate) fn apply_service_account(
    st: &AppState,
    caller: &Caller,
    input: ServiceAccountInput,
) -> ConsoleResult<Value> {
    let current = st.config.load()?;
    let password = input.password.filter(|p| !p.is_empty());
    let username = input.username.trim().to_owned();
    if username.is_empty() {
        return Err(ConsoleError::bad_request(
            "the service account's user name is required",
        ));
    }
    let domains: Vec<String> = domain_set(&input.other_domains).into_iter().collect();
    let old_domains: BTreeSet<String> = current.exchange.other_domains.iter().cloned().collect();
    let domains_changed = domains.iter().cloned().collect::<BTreeSet<_>>() != old_domains;
    let user_changed = username != current.exchange.service_account;
    let has_password = st.vault.contains(EXCHANGE_PASSWORD)?;
    if password.is_none() {
        if domains_changed {
            return Err(ConsoleError::bad_request(
                "changing the domains to sync requires the service account password again",
            ));
        }
        if user_changed {
            return Err(ConsoleError::bad_request(
                "changing the service account requires its password",
            ));
        }
        if !has_password {
            return Err(ConsoleError::bad_request(
                "the service account password is required",
            ));
        }
    }
    let ews_url = blank_to_none(input.ews_url);
    let ca_file = blank_to_none(input.ca_file);
    let auth = blank_to_none(input.auth);
    st.config.edit(|doc| {
        let t = table_at(doc, &["exchange"])?;
        set_str(t, "service_account", Some(&username));
        set_str(t, "ews_url", ews_url.as_deref());
        if let Some(a) = &auth {
            set_str(t, "auth", Some(a));
        }
        set_list(t, "other_domains", &domains);
        set_str(t, "ca_file", ca_file.as_deref());
        Ok(())
    })?;
    if let Some(p) = &password {
        st.vault.set(EXCHANGE_PASSWORD, p)?;
    }
    st.audit(
        &caller.actor(),
        "service_account.update",
        json!({
            "username": username,
            "password_changed": password.is_some(),
            "ews_url": ews_url,
            "other_domains": domains,
            "ca_file": ca_file,
            "auth": auth,
        }),
    );
    service_account_view(st)
}

pub async fn get_service_account(State(st): State<AppState>) -> ConsoleResult<Json<Value>> {
    service_account_view(&st).map(Json)
}

pub async fn put_service_account(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(input): Json<ServiceAccountInput>,
) -> ConsoleResult<Json<Value>> {
    apply_service_account(&st, &caller, input).map(Json)
}

// ---- CRM connection --------------------------------------------------------------------------

pub(crate) fn crm_view(st: &AppState) -> ConsoleResult<Value> {
    let config = st.config.load()?;
    let c = &config.crm;
    Ok(json!({
        "kind": c.kind.as_str(),
        "login_url": c.login_url,
        "instance_url": c.instance_url,
        "client_id": c.client_id,
        "auth": c.auth.as_str(),
        "username": c.username,
        "private_key_provided": c.private_key_file.is_some() || st.vault.contains(CRM_PRIVATE_KEY)?,
        "client_secret_provided": st.vault.contains(CRM_CLIENT_SECRET)?,
        "ca_file": c.ca_file.as_ref().map(|p| p.display().to_string()),
    }))
}

#[derive(Deserialize)]
pub(crate) struct CrmInput {
    pub client_id: String,
    #[serde(default)]
    pub login_url: Option<String>,
    #[serde(default)]
    pub instance_url: Option<String>,
    #[serde(default)]
    pub auth: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    /// PEM; write-only.
    #[serde(default)]
    pub private_key: Option<SecretValue>,
    /// Write-only.
    #[serde(default)]
    pub client_secret: Option<SecretValue>,
}

pub(crate) fn apply_crm(st: &AppState, caller: &Caller, input: CrmInput) -> ConsoleResult<Value> {
    let private_key = input.private_key.filter(|k| !k.expose().trim().is_empty());
    let client_secret = input.client_secret.filter(|s| !s.is_empty());
    if let Some(key) = &private_key {
        let text = key.expose();
        if !(text.contains("-----BEGIN") && text.contains("PRIVATE KEY-----")) {
            return Err(ConsoleError::bad_request(
                "the private key must be a PEM file (-----BEGIN ... PRIVATE KEY-----)",
            ));
        }
    }
    let login_url = blank_to_none(input.login_url);
    let instance_url = blank_to_none(input.instance_url);
    let auth = blank_to_none(input.auth);
    let username = blank_to_none(input.username);
    let client_id = input.client_id.trim().to_owned();
    st.config.edit(|doc| {
        let t = table_at(doc, &["crm"])?;
        set_str(t, "client_id", Some(&client_id));
        if login_url.is_some() {
            set_str(t, "login_url", login_url.as_deref());
        }
        set_str(t, "instance_url", instance_url.as_deref());
        if let Some(a) = &auth {
            set_str(t, "auth", Some(a));
        }
        set_str(t, "username", username.as_deref());
        if private_key.is_some() {
            // The vault holds the key from now on; one place for it, not two.
            set_str(t, "private_key_file", None);
        }
        Ok(())
    })?;
    if let Some(k) = &private_key {
        st.vault.set(CRM_PRIVATE_KEY, k)?;
    }
    if let Some(s) = &client_secret {
        st.vault.set(CRM_CLIENT_SECRET, s)?;
    }
    st.audit(
        &caller.actor(),
        "crm.update",
        json!({
            "client_id": client_id,
            "login_url": login_url,
            "instance_url": instance_url,
            "auth": auth,
            "username": username,
            "private_key_changed": private_key.is_some(),
            "client_secret_changed": client_secret.is_some(),
        }),
    );
    crm_view(st)
}

pub async fn get_crm(State(st): State<AppState>) -> ConsoleResult<Json<Value>> {
    crm_view(&st).map(Json)
}

pub async fn put_crm(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(input): Json<CrmInput>,
) -> ConsoleResult<Json<Value>> {
    apply_crm(&st, &caller, input).map(Json)
}

// ---- configurations --------------------------------------------------------------------------

pub(crate) fn configurations_view(config: &ExsyncConfig) -> Value {
    Value::Array(
        config
            .configurations
            .iter()
            .map(configuration_json)
            .collect(),
    )
}

/// One configuration as the API shows it: every rule with defaults filled in, and its name.
pub(crate) fn configuration_json(c: &exsync_core::config::SyncConfiguration) -> Value {
    let mut v = serde_json::to_value(configuration_value(c)).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        map.insert("name".to_owned(), json!(c.name));
    }
    v
}

#[derive(Deserialize, Default)]
pub(crate) struct ConfigurationInput {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub users: Option<Vec<String>>,
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    #[serde(default)]
    pub contacts_direction: Option<String>,
    #[serde(default)]
    pub events_direction: Option<String>,
}

fn valid_configuration_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Creates (`create`) or edits a configuration in `exsync.toml`. The loader's checks apply,
/// so assigning a user who already has an individual assignment elsewhere is refused.
pub(crate) fn apply_configuration(
    st: &AppState,
    caller: &Caller,
    name: &str,
    input: ConfigurationInput,
    create: bool,
) -> ConsoleResult<Value> {
    let name = name.trim().to_owned();
    if !valid_configuration_name(&name) {
        return Err(ConsoleError::bad_request(
            "a configuration name is 1-64 letters, digits, '_' or '-'",
        ));
    }
    let current = st.config.load()?;
    let exists = current.configuration(&name).is_some();
    if create && exists {
        return Err(ConsoleError::new(
            StatusCode::CONFLICT,
            format!("configuration `{name}` already exists"),
        ));
    }
    if !create && !exists {
        return Err(ConsoleError::not_found(format!(
            "no configuration `{name}`"
        )));
    }
    let clean = |list: Vec<String>, lower: bool| -> Vec<String> {
        let set: BTreeSet<String> = list
            .iter()
            .flat_map(|s| s.split([',', '\n', '\r']))
            .map(|s| {
                if lower {
                    s.trim().to_lowercase()
                } else {
                    s.trim().to_owned()
                }
            })
            .filter(|s| !s.is_empty())
            .collect();
        set.into_iter().collect()
    };
    let users = input.users.map(|u| clean(u, true));
    let groups = input.groups.map(|g| clean(g, false));
    let checked = st.config.edit(|doc| {
        let t = table_at(doc, &["configurations", &name])?;
        if let Some(active) = input.active {
            set_bool(t, "active", active);
        } else if create {
            set_bool(t, "active", true);
        }
        if let Some(u) = &users {
            set_list(t, "users", u);
        }
        if let Some(g) = &groups {
            set_list(t, "groups", g);
        }
        for (kind, dir) in [
            ("contacts", &input.contacts_direction),
            ("events", &input.events_direction),
        ] {
            if let Some(d) = dir.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
                set_str(
                    table_at(doc, &["configurations", &name, kind])?,
                    "direction",
                    Some(d),
                );
            }
        }
        Ok(())
    })?;
    st.audit(
        &caller.actor(),
        if create {
            "configuration.create"
        } else {
            "configuration.update"
        },
        json!({
            "name": name,
            "active": input.active,
            "users": users,
            "groups": groups,
            "contacts_direction": input.contacts_direction,
            "events_direction": input.events_direction,
        }),
    );
    let c = checked
        .configuration(&name)
        .map(configuration_json)
        .unwrap_or(Value::Null);
    Ok(c)
}

pub async fn list_configurations(State(st): State<AppState>) -> ConsoleResult<Json<Value>> {
    Ok(Json(configurations_view(&st.config.load()?)))
}

pub async fn create_configuration(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(input): Json<ConfigurationInput>,
) -> ConsoleResult<(StatusCode, Json<Value>)> {
    let name = input.name.clone().unwrap_or_default();
    apply_configuration(&st, &caller, &name, input, true).map(|v| (StatusCode::CREATED, Json(v)))
}

pub async fn update_configuration(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Json(input): Json<ConfigurationInput>,
) -> ConsoleResult<Json<Value>> {
    apply_configuration(&st, &caller, &name, input, false).map(Json)
}

#[derive(Deserialize)]
pub(crate) struct AssignmentQuery {
    pub user: String,
    #[serde(default)]
    pub groups: Option<String>,
}

pub(crate) fn groups_of(text: Option<&str>) -> BTreeSet<String> {
    text.unwrap_or_default()
        .split(',')
        .map(|g| g.trim().to_owned())
        .filter(|g| !g.is_empty())
        .collect()
}

pub async fn assignment(
    State(st): State<AppState>,
    Query(q): Query<AssignmentQuery>,
) -> ConsoleResult<Json<Value>> {
    let config = st.config.load()?;
    let explained = explain_assignment(
        &config.configurations,
        &UserKey::from_email(&q.user),
        &groups_of(q.groups.as_deref()),
    );
    Ok(Json(serde_json::to_value(explained).unwrap_or(Value::Null)))
}

// ---- users -----------------------------------------------------------------------------------

/// Each known user's status with the configuration assigned to them individually (a group
/// assignment depends on the user's CRM profile, which only the sync pass knows).
pub(crate) fn users_view(st: &AppState) -> ConsoleResult<Vec<Value>> {
    let config = st.config.load().ok();
    let none = BTreeSet::new();
    let mut out = Vec::new();
    for status in st.store.list_users()? {
        let effective = config.as_ref().and_then(|c| {
            exsync_core::config::effective_configuration(&c.configurations, &status.user, &none)
                .map(|(c, by)| json!({ "name": c.name, "assigned_by": by }))
        });
        let mut v = serde_json::to_value(&status).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut v {
            map.insert("configuration".to_owned(), effective.unwrap_or(Value::Null));
        }
        out.push(v);
    }
    Ok(out)
}

pub async fn users(State(st): State<AppState>) -> ConsoleResult<Json<Value>> {
    Ok(Json(Value::Array(users_view(&st)?)))
}

/// The CRM users the last pass left out, with the reason (an address that names no mailbox).
pub async fn skipped_users(
    State(st): State<AppState>,
) -> ConsoleResult<Json<Vec<exsync_store::SkippedCrmUser>>> {
    Ok(Json(st.store.skipped_crm_users()?))
}

pub(crate) fn do_reset(st: &AppState, caller: &Caller, user: &str) -> ConsoleResult<Value> {
    let key = UserKey::from_email(user);
    if st.store.user_status(&key)?.is_none() {
        return Err(ConsoleError::not_found(format!(
            "{key} has never been synced"
        )));
    }
    let counts = st.store.reset_user(&key)?;
    let detail = json!({
        "user": key.as_str(),
        "pairs_forgotten": counts.pairs,
        "cursors_forgotten": counts.cursors,
        "was_paused": counts.was_paused,
    });
    st.audit(&caller.actor(), "user.reset", detail.clone());
    Ok(detail)
}

pub async fn reset_user(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(user): Path<String>,
) -> ConsoleResult<Json<Value>> {
    do_reset(&st, &caller, &user).map(Json)
}

/// Runs the connection test for a user, or says plainly that it is not available.
pub(crate) async fn do_test(st: &AppState, caller: &Caller, user: &str) -> (StatusCode, Value) {
    let key = UserKey::from_email(user);
    st.audit(
        &caller.actor(),
        "user.test",
        json!({ "user": key.as_str() }),
    );
    if !st.connection_tests {
        return (
            StatusCode::NOT_IMPLEMENTED,
            json!({
                "status": "not_available",
                "user": key.as_str(),
                "message": "connection tests are turned off for this console",
            }),
        );
    }
    let config = match st.config.load() {
        Ok(c) => c,
        Err(e) => return (e.status, json!({ "status": "error", "message": e.message })),
    };
    let inputs = match exsync_engine::check::Inputs::from_vault(
        config,
        &st.vault,
        Some(key.as_str().to_owned()),
    ) {
        Ok(i) => i,
        Err(e) => {
            let e = ConsoleError::from(e);
            return (e.status, json!({ "status": "error", "message": e.message }));
        }
    };
    let report = exsync_engine::check::run(&inputs).await;
    (
        StatusCode::OK,
        serde_json::to_value(&report).unwrap_or(Value::Null),
    )
}

pub async fn test_user(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(user): Path<String>,
) -> (StatusCode, Json<Value>) {
    let (status, body) = do_test(&st, &caller, &user).await;
    (status, Json(body))
}

// ---- audit log -------------------------------------------------------------------------------

#[derive(Deserialize)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub before: Option<i64>,
}

pub async fn audit(
    State(st): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> ConsoleResult<Json<Value>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    let entries = st.store.list_audit(limit, q.before)?;
    Ok(Json(serde_json::to_value(entries).unwrap_or(Value::Null)))
}
