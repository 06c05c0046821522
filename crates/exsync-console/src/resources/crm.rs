//! The CRM connection: `GET`/`PUT /api/crm` and the `/crm` page with its form.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form, Json};
use exsync_core::config::CrmAuth;
use exsync_engine::vault::{SecretValue, CRM_CLIENT_SECRET, CRM_PRIVATE_KEY};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::Caller;
use crate::error::{ConsoleError, ConsoleResult};
use crate::html::{csrf_field, error_box, esc, notice, page};
use crate::settings::{set_str, table_at};
use crate::AppState;

use super::{blank_to_none, internal, typed_choice};

/// The CRM connection as configured. The private key and the client secret are never
/// shown, only whether they are stored.
#[derive(Serialize)]
pub(crate) struct CrmView {
    /// `jwt` or `client_credentials`.
    pub auth: &'static str,
    /// A PEM file of extra CA certificates trusted for the CRM; `null` when none is set.
    pub ca_file: Option<String>,
    /// The connected app's consumer key.
    pub client_id: String,
    /// Whether a client secret is stored (needed for `client_credentials`).
    pub client_secret_provided: bool,
    /// The org's own URL (My Domain); `null` when the token answer is left to supply it.
    pub instance_url: Option<String>,
    /// Which CRM this is; `salesforce` is the only one.
    pub kind: &'static str,
    /// Where access tokens are requested.
    pub login_url: String,
    /// In the vault, or as a file named in the configuration.
    pub private_key_provided: bool,
    /// The integration user the JWT is issued for (`jwt` only).
    pub username: Option<String>,
}

impl CrmView {
    pub(crate) fn load(st: &AppState) -> ConsoleResult<CrmView> {
        let config = st.config.load()?;
        let c = config.crm;
        Ok(CrmView {
            auth: c.auth.as_str(),
            ca_file: c.ca_file.as_ref().map(|p| p.display().to_string()),
            client_id: c.client_id,
            client_secret_provided: st.vault.contains(CRM_CLIENT_SECRET)?,
            instance_url: c.instance_url,
            kind: c.kind.as_str(),
            login_url: c.login_url,
            private_key_provided: c.private_key_file.is_some()
                || st.vault.contains(CRM_PRIVATE_KEY)?,
            username: c.username,
        })
    }

    fn render(&self, caller: &Caller, message: Option<&str>, error: Option<&str>) -> String {
        let stored = |b: bool| if b { "stored" } else { "not stored" };
        let selected = |auth: &str| if self.auth == auth { " selected" } else { "" };
        format!(
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
            esc(&self.client_id),
            esc(&self.login_url),
            esc(self.instance_url.as_deref().unwrap_or_default()),
            selected("jwt"),
            selected("client_credentials"),
            esc(self.username.as_deref().unwrap_or_default()),
            stored(self.private_key_provided),
            stored(self.client_secret_provided),
        )
    }
}

/// The call's body and the form's fields alike.
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

pub(crate) fn apply_crm(st: &AppState, caller: &Caller, input: CrmInput) -> ConsoleResult<CrmView> {
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
    CrmView::load(st)
}

// ---- JSON ------------------------------------------------------------------------------------

pub(crate) async fn get_json(State(st): State<AppState>) -> ConsoleResult<Json<CrmView>> {
    CrmView::load(&st).map(Json)
}

pub(crate) async fn put_json(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(input): Json<CrmInput>,
) -> ConsoleResult<Json<CrmView>> {
    apply_crm(&st, &caller, input).map(Json)
}

// ---- page ------------------------------------------------------------------------------------

/// What the form's admin typed, shown again when the save is refused; never a secret.
struct Typed {
    auth: Option<String>,
    client_id: String,
    instance_url: Option<String>,
    login_url: Option<String>,
    username: Option<String>,
}

impl CrmView {
    /// The stored connection with what the admin typed in place of it.
    fn with_typed(mut self, t: Typed) -> CrmView {
        let flows = [CrmAuth::Jwt, CrmAuth::ClientCredentials].map(|a| a.as_str());
        if let Some(auth) = typed_choice(&flows, t.auth.as_deref()) {
            self.auth = auth;
        }
        self.client_id = t.client_id;
        self.instance_url = t.instance_url;
        self.login_url = t.login_url.unwrap_or_default();
        self.username = t.username;
        self
    }
}

/// The page, showing `typed` in place of the stored values when a save was refused.
fn crm_page(
    st: &AppState,
    caller: &Caller,
    message: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
    typed: Option<Typed>,
) -> Response {
    match CrmView::load(st) {
        Ok(view) => {
            let view = match typed {
                Some(t) => view.with_typed(t),
                None => view,
            };
            (
                status,
                page(
                    "CRM connection",
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
    crm_page(&st, &caller, None, None, StatusCode::OK, None)
}

pub(crate) async fn post_form(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Form(input): Form<CrmInput>,
) -> Response {
    let typed = Typed {
        auth: input.auth.clone(),
        client_id: input.client_id.clone(),
        instance_url: input.instance_url.clone(),
        login_url: input.login_url.clone(),
        username: input.username.clone(),
    };
    match apply_crm(&st, &caller, input) {
        Ok(_) => crm_page(&st, &caller, Some("Saved."), None, StatusCode::OK, None),
        Err(e) => crm_page(&st, &caller, None, Some(&e.message), e.status, Some(typed)),
    }
}
