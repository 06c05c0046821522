//! Exchange Online, reached through Microsoft Graph with an Entra app: `GET`/`PUT
//! /api/exchange-online` and the `/exchange-online` page with its form. The app's secret,
//! certificate and key are write-only, like the service account's password.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form, Json};
use exsync_core::config::{OnlineCloud, OnlineCredential};
use exsync_engine::connect::graph::setup::{
    GRAPH_CERTIFICATE, GRAPH_CLIENT_SECRET, GRAPH_PRIVATE_KEY,
};
use exsync_engine::vault::SecretValue;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::Caller;
use crate::error::{ConsoleError, ConsoleResult};
use crate::html::{csrf_field, error_box, esc, notice, page, shown_for};
use crate::settings::{set_bool, set_list, set_str, table_at};
use crate::AppState;

use super::{blank_to_none, internal, typed_choice};

const CLOUDS: [OnlineCloud; 4] = [
    OnlineCloud::Global,
    OnlineCloud::UsGov,
    OnlineCloud::UsDod,
    OnlineCloud::China,
];

/// The `[exchange_online]` section as configured, and which of the app's secrets the vault
/// holds (never the secrets).
#[derive(Serialize)]
pub(crate) struct ExchangeOnlineView {
    /// Every mailbox is online.
    pub all_users: bool,
    /// Whether the app's certificate and its key are stored.
    pub certificate_provided: bool,
    /// The app registration's application (client) id.
    pub client_id: String,
    /// Whether the app's client secret is stored.
    pub client_secret_provided: bool,
    /// `global`, `usgov`, `usdod` or `china`.
    pub cloud: &'static str,
    /// Whether the section is present: some or all mailboxes are in Exchange Online.
    pub configured: bool,
    /// How exsync reaches mailboxes: `ews` (on premises only), `graph` (online only) or
    /// `hybrid`.
    pub connection_methods: &'static str,
    /// `certificate` or `secret`.
    pub credential: &'static str,
    /// The directory (tenant) id or a verified domain.
    pub tenant: String,
    /// The online mailboxes, when not all are.
    pub users: Vec<String>,
}

impl ExchangeOnlineView {
    pub(crate) fn load(st: &AppState) -> ConsoleResult<ExchangeOnlineView> {
        let config = st.config.load()?;
        let certificate_provided =
            st.vault.contains(GRAPH_CERTIFICATE)? && st.vault.contains(GRAPH_PRIVATE_KEY)?;
        let client_secret_provided = st.vault.contains(GRAPH_CLIENT_SECRET)?;
        let on_premises = config.exchange.is_some();
        let online = config.exchange_online;
        let connection_methods = match (on_premises, online.is_some()) {
            (true, true) => "hybrid",
            (false, true) => "graph",
            _ => "ews",
        };
        let view = ExchangeOnlineView {
            configured: online.is_some(),
            connection_methods,
            tenant: String::new(),
            client_id: String::new(),
            cloud: OnlineCloud::Global.as_str(),
            credential: OnlineCredential::Certificate.as_str(),
            all_users: false,
            users: Vec::new(),
            certificate_provided,
            client_secret_provided,
        };
        Ok(match online {
            None => view,
            Some(o) => ExchangeOnlineView {
                tenant: o.tenant,
                client_id: o.client_id,
                cloud: o.cloud.as_str(),
                credential: o.credential.as_str(),
                all_users: o.all_users,
                users: o.users,
                ..view
            },
        })
    }

    fn render(&self, caller: &Caller, message: Option<&str>, error: Option<&str>) -> String {
        let clouds: String = CLOUDS
            .iter()
            .map(|c| {
                format!(
                    r#"<option value="{v}"{s}>{v}</option>"#,
                    v = c.as_str(),
                    s = if self.cloud == c.as_str() {
                        " selected"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        let credential = |value: &str, label: &str| {
            format!(
                r#"<option value="{value}"{}>{label}</option>"#,
                if self.credential == value {
                    " selected"
                } else {
                    ""
                }
            )
        };
        let stored = |provided: bool| {
            if provided {
                "(stored; give it again to change it)"
            } else {
                "not stored yet"
            }
        };
        let methods = match self.connection_methods {
            "hybrid" => "Exchange on premises (EWS) and Exchange Online (Microsoft Graph)",
            "graph" => "Exchange Online (Microsoft Graph) only",
            _ => "Exchange on premises (EWS) only",
        };
        format!(
            r#"{}{}<p id="connection-methods">Connection methods: {methods}</p>
<form method="post" action="/exchange-online" autocomplete="off" id="exchange-online-form">{}
<fieldset><legend>App registration</legend>
<label>Tenant (directory id or verified domain) <input type="text" name="tenant" id="eo-tenant" value="{}" required></label>
<label>Application (client) id <input type="text" name="client_id" id="eo-client-id" value="{}" required></label>
<label>Cloud <select name="cloud" id="eo-cloud">{clouds}</select></label>
<label>Credential <select name="credential" id="eo-credential">{}{}</select></label></fieldset>
<fieldset><legend>Credential (write-only)</legend>
<div id="eo-certificate-fields"{certificate}><label>Certificate (PEM) <textarea name="certificate" id="eo-certificate" data-no-copy placeholder="{}"></textarea></label>
<label>Private key (PEM) <textarea name="private_key" id="eo-private-key" data-no-copy placeholder="{}"></textarea></label></div>
<div id="eo-secret-fields"{secret}><label>Client secret <input type="password" name="client_secret" id="eo-client-secret" value="" autocomplete="off" data-no-copy placeholder="{}"></label></div>
<p class="muted">Stored encrypted and never shown again. Changing the tenant, the app or the cloud requires the credential again.</p></fieldset>
<fieldset><legend>Mailboxes in Exchange Online</legend>
<label><input type="checkbox" name="all_users" id="eo-all-users" value="true"{}> Every mailbox</label>
<label>Or these addresses, comma-separated <input type="text" name="users" id="eo-users" value="{}"></label></fieldset>
<button type="submit" id="save-exchange-online">Save</button></form>"#,
            notice(message),
            error_box(error),
            csrf_field(caller),
            esc(&self.tenant),
            esc(&self.client_id),
            credential("certificate", "Certificate (recommended)"),
            credential("secret", "Client secret"),
            stored(self.certificate_provided),
            stored(self.certificate_provided),
            stored(self.client_secret_provided),
            if self.all_users { " checked" } else { "" },
            esc(&self.users.join(", ")),
            certificate = shown_for("eo-credential", "certificate", self.credential),
            secret = shown_for("eo-credential", "secret", self.credential),
        )
    }
}

#[derive(Deserialize)]
pub(crate) struct ExchangeOnlineInput {
    pub tenant: String,
    pub client_id: String,
    #[serde(default)]
    pub cloud: Option<String>,
    #[serde(default)]
    pub credential: Option<String>,
    #[serde(default)]
    pub all_users: bool,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub certificate: Option<SecretValue>,
    #[serde(default)]
    pub private_key: Option<SecretValue>,
    #[serde(default)]
    pub client_secret: Option<SecretValue>,
}

fn choice<T: Copy>(
    name: &str,
    given: Option<&str>,
    options: &[(T, &'static str)],
    default: T,
) -> ConsoleResult<T> {
    match given.map(str::trim).filter(|g| !g.is_empty()) {
        None => Ok(default),
        Some(g) => options
            .iter()
            .find(|(_, s)| *s == g)
            .map(|(v, _)| *v)
            .ok_or_else(|| {
                let valid: Vec<&str> = options.iter().map(|(_, s)| *s).collect();
                ConsoleError::bad_request(format!(
                    "{name} must be one of {}, not `{g}`",
                    valid.join(", ")
                ))
            }),
    }
}

/// Saves `[exchange_online]` and the app's credential. A new tenant, app or cloud needs the
/// credential again, so a console left open cannot point the stored one elsewhere; a
/// certificate is stored only with its key, and only when the key signs for it.
pub(crate) fn apply_exchange_online(
    st: &AppState,
    caller: &Caller,
    input: ExchangeOnlineInput,
) -> ConsoleResult<ExchangeOnlineView> {
    let current = st.config.load()?;
    let tenant = input.tenant.trim().to_owned();
    let client_id = input.client_id.trim().to_owned();
    if tenant.is_empty() || client_id.is_empty() {
        return Err(ConsoleError::bad_request(
            "the tenant and the app's client id are required",
        ));
    }
    let cloud = choice(
        "cloud",
        input.cloud.as_deref(),
        &CLOUDS.map(|c| (c, c.as_str())),
        OnlineCloud::Global,
    )?;
    let credential = choice(
        "credential",
        input.credential.as_deref(),
        &[
            (OnlineCredential::Certificate, "certificate"),
            (OnlineCredential::Secret, "secret"),
        ],
        OnlineCredential::Certificate,
    )?;
    let given = |v: Option<SecretValue>| v.filter(|s| !s.expose().trim().is_empty());
    let (certificate, private_key, client_secret) = (
        given(input.certificate),
        given(input.private_key),
        given(input.client_secret),
    );
    if certificate.is_some() != private_key.is_some() {
        return Err(ConsoleError::bad_request(
            "give the certificate and its private key together",
        ));
    }
    if let (Some(cert), Some(key)) = (&certificate, &private_key) {
        exsync_graph::Certificate::from_pem(
            cert.expose().as_bytes(),
            &exsync_graph::Secret::new(key.expose().as_bytes().to_vec()),
            exsync_graph::AssertionAlgorithm::Ps256,
        )
        .map_err(|e| ConsoleError::bad_request(format!("the certificate was not stored: {e}")))?;
    }
    let new_credential = match credential {
        OnlineCredential::Certificate => certificate.is_some(),
        OnlineCredential::Secret => client_secret.is_some(),
    };
    let moved = current
        .exchange_online
        .as_ref()
        .is_none_or(|o| o.tenant != tenant || o.client_id != client_id || o.cloud != cloud);
    if moved && !new_credential {
        return Err(ConsoleError::bad_request(format!(
            "a new tenant, app or cloud requires the app's {} again",
            match credential {
                OnlineCredential::Certificate => "certificate and private key",
                OnlineCredential::Secret => "client secret",
            }
        )));
    }
    let stored = match credential {
        OnlineCredential::Certificate => {
            st.vault.contains(GRAPH_CERTIFICATE)? && st.vault.contains(GRAPH_PRIVATE_KEY)?
        }
        OnlineCredential::Secret => st.vault.contains(GRAPH_CLIENT_SECRET)?,
    };
    if !new_credential && !stored {
        return Err(ConsoleError::bad_request(format!(
            "the app's {} is required",
            credential.as_str()
        )));
    }
    let users: Vec<String> = super::service_account::domain_set(&input.users)
        .into_iter()
        .collect();
    st.config.edit(|doc| {
        let t = table_at(doc, &["exchange_online"])?;
        set_str(t, "tenant", Some(&tenant));
        set_str(t, "client_id", Some(&client_id));
        set_str(t, "cloud", Some(cloud.as_str()));
        set_str(t, "credential", Some(credential.as_str()));
        if input.all_users {
            set_bool(t, "all_users", true);
            t.remove("users");
        } else {
            t.remove("all_users");
            if users.is_empty() {
                t.remove("users");
            } else {
                set_list(t, "users", &users);
            }
        }
        Ok(())
    })?;
    for (name, value) in [
        (GRAPH_CERTIFICATE, &certificate),
        (GRAPH_PRIVATE_KEY, &private_key),
        (GRAPH_CLIENT_SECRET, &client_secret),
    ] {
        if let Some(value) = value {
            st.vault.set(name, value)?;
        }
    }
    st.audit(
        &caller.actor(),
        "exchange_online.update",
        json!({
            "tenant": tenant,
            "client_id": client_id,
            "cloud": cloud.as_str(),
            "credential": credential.as_str(),
            "credential_changed": new_credential,
            "all_users": input.all_users,
            "users": users,
        }),
    );
    ExchangeOnlineView::load(st)
}

// ---- JSON ------------------------------------------------------------------------------------

pub(crate) async fn get_json(
    State(st): State<AppState>,
) -> ConsoleResult<Json<ExchangeOnlineView>> {
    ExchangeOnlineView::load(&st).map(Json)
}

pub(crate) async fn put_json(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(input): Json<ExchangeOnlineInput>,
) -> ConsoleResult<Json<ExchangeOnlineView>> {
    apply_exchange_online(&st, &caller, input).map(Json)
}

// ---- page ------------------------------------------------------------------------------------

/// What the form's admin typed, shown again when the save is refused; never a secret.
struct Typed {
    all_users: bool,
    client_id: String,
    cloud: Option<String>,
    credential: Option<String>,
    tenant: String,
    users: String,
}

impl ExchangeOnlineView {
    /// The stored section with what the admin typed in place of it.
    fn with_typed(mut self, t: Typed) -> ExchangeOnlineView {
        if let Some(cloud) = typed_choice(&CLOUDS.map(|c| c.as_str()), t.cloud.as_deref()) {
            self.cloud = cloud;
        }
        let credentials =
            [OnlineCredential::Certificate, OnlineCredential::Secret].map(|c| c.as_str());
        if let Some(credential) = typed_choice(&credentials, t.credential.as_deref()) {
            self.credential = credential;
        }
        self.all_users = t.all_users;
        self.client_id = t.client_id;
        self.tenant = t.tenant;
        self.users = vec![t.users];
        self
    }
}

/// The page, showing `typed` in place of the stored values when a save was refused.
fn exchange_online_page(
    st: &AppState,
    caller: &Caller,
    message: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
    typed: Option<Typed>,
) -> Response {
    match ExchangeOnlineView::load(st) {
        Ok(view) => {
            let view = match typed {
                Some(t) => view.with_typed(t),
                None => view,
            };
            (
                status,
                page(
                    "Exchange Online",
                    Some(caller),
                    &view.render(caller, message, error),
                ),
            )
                .into_response()
        }
        Err(e) => internal(caller, e),
    }
}

pub(crate) async fn get_page(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Response {
    exchange_online_page(&st, &caller, None, None, StatusCode::OK, None)
}

/// The form gives the users as one comma-separated field and the checkbox only when ticked.
#[derive(Deserialize)]
pub(crate) struct ExchangeOnlineForm {
    tenant: String,
    client_id: String,
    #[serde(default)]
    cloud: Option<String>,
    #[serde(default)]
    credential: Option<String>,
    #[serde(default)]
    all_users: Option<String>,
    #[serde(default)]
    users: String,
    #[serde(default)]
    certificate: Option<SecretValue>,
    #[serde(default)]
    private_key: Option<SecretValue>,
    #[serde(default)]
    client_secret: Option<SecretValue>,
}

pub(crate) async fn post_form(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Form(form): Form<ExchangeOnlineForm>,
) -> Response {
    let typed = Typed {
        all_users: form.all_users.is_some(),
        client_id: form.client_id.clone(),
        cloud: form.cloud.clone(),
        credential: form.credential.clone(),
        tenant: form.tenant.clone(),
        users: form.users.clone(),
    };
    let input = ExchangeOnlineInput {
        tenant: form.tenant,
        client_id: form.client_id,
        cloud: blank_to_none(form.cloud),
        credential: blank_to_none(form.credential),
        all_users: form.all_users.is_some(),
        users: vec![form.users],
        certificate: form.certificate,
        private_key: form.private_key,
        client_secret: form.client_secret,
    };
    match apply_exchange_online(&st, &caller, input) {
        Ok(_) => exchange_online_page(&st, &caller, Some("Saved."), None, StatusCode::OK, None),
        Err(e) => exchange_online_page(&st, &caller, None, Some(&e.message), e.status, Some(typed)),
    }
}
