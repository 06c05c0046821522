//! The Exchange service account: `GET`/`PUT /api/service-account` and the
//! `/service-account` page with its form.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form, Json};
use exsync_core::config::ExchangeAuth;
use exsync_engine::connect::build::decode_keytab;
use exsync_engine::vault::{SecretValue, EXCHANGE_KEYTAB, EXCHANGE_PASSWORD};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::Caller;
use crate::error::{ConsoleError, ConsoleResult};
use crate::html::{csrf_field, error_box, esc, notice, page, shown_for};
use crate::settings::{set_list, set_str, table_at};
use crate::AppState;

use super::{blank_to_none, internal, typed_choice};

/// The service account as configured. The password is never shown, only whether one is
/// stored.
#[derive(Serialize)]
pub(crate) struct ServiceAccountView {
    /// `auto`, `basic`, `ntlm` or `kerberos`.
    pub auth: &'static str,
    /// Whether mailboxes are found through Autodiscover (no EWS URL set).
    pub autodiscover: bool,
    /// A PEM file of extra CA certificates trusted for Exchange besides the system roots
    /// (on-premises PKI); `null` when none is set.
    pub ca_file: Option<String>,
    /// The only method there is; named so that clients need not assume it.
    pub connection_method: &'static str,
    /// The EWS endpoint; `null` when Autodiscover finds it per mailbox.
    pub ews_url: Option<String>,
    /// The KDCs of the realm (`host` or `host:port`); empty when a krb5.conf decides.
    pub kdcs: Vec<String>,
    /// Whether a keytab for the service account is stored (`exsync secrets set
    /// exchange.keytab`); with Kerberos it replaces the password.
    pub keytab_provided: bool,
    /// Mailbox domains besides the service account's to which Autodiscover may send the
    /// credentials.
    pub other_domains: Vec<String>,
    /// Whether the service account's password is stored.
    pub password_provided: bool,
    /// The Kerberos realm; `null` when none is set.
    pub realm: Option<String>,
    /// The service account, `user@domain` or `DOMAIN\user`.
    pub username: String,
}

impl ServiceAccountView {
    pub(crate) fn load(st: &AppState) -> ConsoleResult<ServiceAccountView> {
        let config = st.config.load()?;
        let password_provided = st.vault.contains(EXCHANGE_PASSWORD)?;
        let keytab_provided = st.vault.contains(EXCHANGE_KEYTAB)?;
        // Without an `[exchange]` section (every mailbox online) the form starts empty; saving
        // it adds the section.
        let Some(x) = config.exchange else {
            return Ok(ServiceAccountView {
                auth: ExchangeAuth::Auto.as_str(),
                autodiscover: true,
                ca_file: None,
                connection_method: "ews_service_account",
                ews_url: None,
                other_domains: Vec::new(),
                kdcs: Vec::new(),
                keytab_provided,
                password_provided,
                realm: None,
                username: String::new(),
            });
        };
        Ok(ServiceAccountView {
            auth: x.auth.as_str(),
            autodiscover: x.ews_url.is_none(),
            ca_file: x.ca_file.as_ref().map(|p| p.display().to_string()),
            connection_method: "ews_service_account",
            ews_url: x.ews_url,
            other_domains: x.other_domains,
            kdcs: x.kdcs,
            keytab_provided,
            password_provided,
            realm: x.realm,
            username: x.service_account,
        })
    }

    fn render(&self, caller: &Caller, message: Option<&str>, error: Option<&str>) -> String {
        let provided = if self.password_provided || self.keytab_provided {
            format!(
                r#"<p class="notice" id="provided">Service account provided: {}</p>"#,
                esc(&self.username)
            )
        } else {
            r#"<p class="muted" id="provided">No service account password stored yet.</p>"#
                .to_owned()
        };
        // Kerberos with a stored keytab logs in with the keytab, so it asks for no password.
        let password_modes = if self.keytab_provided {
            "auto basic ntlm"
        } else {
            "auto basic ntlm kerberos"
        };
        let option = |value: &str, label: &str| {
            format!(
                r#"<option value="{value}"{}>{label}</option>"#,
                if self.auth == value { " selected" } else { "" }
            )
        };
        format!(
            r#"{}{}{provided}
<form method="post" action="/service-account" autocomplete="off" id="service-account-form">{}
<fieldset><legend>Connection method</legend>
<label>Method <select name="method" disabled><option selected>Exchange Web Services through a service account with impersonation</option></select></label>
<label>Authentication <select name="auth" id="auth">{}{}{}{}</select></label></fieldset>
<fieldset id="kerberos-fields"{kerberos}><legend>Kerberos</legend>
<label>Realm (upper case, e.g. CONTOSO.COM; with Automatic, setting it prefers Kerberos) <input type="text" name="realm" id="realm" value="{}"></label>
<label>KDCs, comma-separated (host or host:port; empty: the machine's krb5.conf) <input type="text" name="kdcs" id="kdcs" value="{}"></label>
<p class="muted" id="keytab-state">{}</p>
<label>Upload a keytab file <input type="file" id="keytab-file" accept=".keytab,.kt" data-fills="sa-keytab" data-encoding="base64"></label>
<label>Or paste it as base64 (<code>base64 -w0 svc.keytab</code>) <textarea name="keytab" id="sa-keytab" rows="2" autocomplete="off" data-no-copy placeholder="{}"></textarea></label></fieldset>
<fieldset><legend>Service account</legend>
<label>User name (user@domain or DOMAIN\user) <input type="text" name="username" id="sa-username" value="{}" autocomplete="off" required></label>
<div id="password-fields"{password}><label>Password <input type="password" name="password" id="sa-password" value="" autocomplete="off" data-no-copy placeholder="{}"></label>
<p class="muted">The password is stored encrypted and is never shown again. Type it again to change it; changing the account or the domains below also requires it.</p></div></fieldset>
<fieldset><legend>Where mailboxes are found</legend>
<label>EWS URL (leave empty to use Autodiscover) <input type="text" name="ews_url" id="ews-url" value="{}" placeholder="https://mail.example.com/EWS/Exchange.asmx"></label>
<label>Other domains to sync, comma-separated <input type="text" name="other_domains" id="other-domains" value="{}"></label>
<label>CA file (PEM, for a company PKI) <input type="text" name="ca_file" id="ca-file" value="{}"></label></fieldset>
<button type="submit" id="save-service-account">Save</button></form>"#,
            notice(message),
            error_box(error),
            csrf_field(caller),
            option(
                "auto",
                "Automatic: Kerberos when a realm is set, else Basic when offered, else NTLM"
            ),
            option("basic", "Basic"),
            option("ntlm", "NTLM"),
            option("kerberos", "Kerberos (Negotiate)"),
            esc(self.realm.as_deref().unwrap_or_default()),
            esc(&self.kdcs.join(", ")),
            if self.keytab_provided {
                "A keytab is stored: Kerberos logs in with it instead of the password. \
                 Changing the account, the domains, the realm or the KDCs needs the keytab \
                 again."
            } else {
                "Kerberos logs in with the password below, or with a keytab given here (or \
                 stored by `base64 -w0 FILE | exsync secrets set exchange.keytab`)."
            },
            if self.keytab_provided {
                "(stored; give it again to change it)"
            } else {
                "none stored"
            },
            esc(&self.username),
            if self.password_provided {
                "(stored; type it again to change it)"
            } else {
                "required"
            },
            esc(self.ews_url.as_deref().unwrap_or_default()),
            esc(&self.other_domains.join(", ")),
            esc(self.ca_file.as_deref().unwrap_or_default()),
            kerberos = shown_for("auth", "auto kerberos", self.auth),
            password = shown_for("auth", password_modes, self.auth),
        )
    }
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
    #[serde(default)]
    pub realm: Option<String>,
    #[serde(default)]
    pub kdcs: Vec<String>,
    /// A new keytab for the service account, base64 (`base64 -w0 FILE`); Kerberos logs in
    /// with it instead of the password. Never shown back.
    #[serde(default)]
    pub keytab: Option<SecretValue>,
}

pub(crate) fn domain_set(domains: &[String]) -> BTreeSet<String> {
    domains
        .iter()
        .flat_map(|d| d.split([',', ' ', '\n', '\r', '\t']))
        .map(|d| d.trim().to_lowercase())
        .filter(|d| !d.is_empty())
        .collect()
}

/// Saves the service account. A new account, a first credential or any change of the
/// domains the credentials may be sent to (or, with Kerberos, of the realm and KDCs that see
/// the login) requires the credential again, so that someone at an unattended console cannot
/// redirect the stored credentials to a domain they control: the password, or with Kerberos
/// and a keytab the keytab (either, in Automatic mode, which may log in with both). A stored
/// credential not given again is then removed: it was given for the old destination.
pub(crate) fn apply_service_account(
    st: &AppState,
    caller: &Caller,
    input: ServiceAccountInput,
) -> ConsoleResult<Saved> {
    let current = st.config.load()?;
    let password = input.password.filter(|p| !p.is_empty());
    let keytab = input.keytab.filter(|k| !k.expose().trim().is_empty());
    let username = input.username.trim().to_owned();
    if username.is_empty() {
        return Err(ConsoleError::bad_request(
            "the service account's user name is required",
        ));
    }
    let domains: Vec<String> = domain_set(&input.other_domains).into_iter().collect();
    let old = current.exchange.as_ref();
    let old_domains: BTreeSet<String> = old
        .map(|x| x.other_domains.iter().cloned().collect())
        .unwrap_or_default();
    let domains_changed = domains.iter().cloned().collect::<BTreeSet<_>>() != old_domains;
    let user_changed = old.is_none_or(|x| username != x.service_account);
    let has_password = st.vault.contains(EXCHANGE_PASSWORD)?;
    let has_keytab = st.vault.contains(EXCHANGE_KEYTAB)?;
    let auth = blank_to_none(input.auth);
    // The mode the saved file will have: the one given, else the one it has.
    let mode = auth
        .as_deref()
        .map(str::trim)
        .or(old.map(|x| x.auth.as_str()))
        .unwrap_or(ExchangeAuth::Auto.as_str());
    let kerberos_mode = matches!(mode, "kerberos" | "auto");
    if let Some(k) = &keytab {
        if !kerberos_mode {
            return Err(ConsoleError::bad_request(format!(
                "a keytab serves Kerberos only: choose Kerberos or Automatic authentication, \
                 or leave the keytab out ({mode} sends the password)"
            )));
        }
        decode_keytab(k.expose())
            .map_err(|e| ConsoleError::bad_request(format!("the keytab was not stored: {e}")))?;
    }
    let realm = blank_to_none(input.realm).map(|r| r.trim().to_owned());
    // The KDCs are listed like the domains; case is kept for a host:port as typed.
    let kdcs: Vec<String> = input
        .kdcs
        .iter()
        .flat_map(|k| k.split([',', ' ', '\n', '\r', '\t']))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect();
    // With Kerberos and a keytab, the keytab is what logs in; the password is not asked.
    let keytab_logs_in = mode == "kerberos" && (has_keytab || keytab.is_some());
    // Whether this request gives the credential that logs in (in Automatic mode, either).
    let given = match mode {
        "kerberos" if keytab_logs_in => keytab.is_some(),
        "auto" => password.is_some() || keytab.is_some(),
        _ => password.is_some(),
    };
    let stored = if keytab_logs_in {
        has_keytab
    } else {
        has_password
    };
    // The KDCs Kerberos logs in at see the credential's pre-authentication, which can be
    // attacked offline: a new realm or new KDCs are a new destination too.
    let kdcs_changed = kerberos_mode && old.is_some_and(|x| x.realm != realm || x.kdcs != kdcs);
    let moved = domains_changed || user_changed || kdcs_changed;
    if moved && !given && (has_password || has_keytab) {
        let what = if user_changed {
            "changing the service account"
        } else if domains_changed {
            "changing the domains to sync"
        } else {
            "changing the Kerberos realm or KDCs"
        };
        let needs = match mode {
            "kerberos" if keytab_logs_in => {
                "the account's keytab again: Kerberos logs in with the stored keytab, which \
                 was given for the old account and domains; upload the keytab with the change"
            }
            "auto" => {
                "the service account password again, or a new keytab for Kerberos, in the same \
                 change: the stored ones were given for the old account and domains"
            }
            _ => {
                "the service account password again: the stored one was given for the old \
                 account and domains"
            }
        };
        return Err(ConsoleError::bad_request(format!(
            "{what} requires {needs}"
        )));
    }
    if !given && (moved || !stored) {
        return Err(ConsoleError::bad_request(match mode {
            "kerberos" => "the service account password, or its keytab, is required",
            _ => "the service account password is required",
        }));
    }
    // A credential given for the old account or domains does not follow them to new ones.
    let drop_password = moved && has_password && password.is_none();
    let drop_keytab = moved && has_keytab && keytab.is_none();
    let ews_url = blank_to_none(input.ews_url);
    let ca_file = blank_to_none(input.ca_file);
    st.config.edit(|doc| {
        let t = table_at(doc, &["exchange"])?;
        set_str(t, "service_account", Some(&username));
        set_str(t, "ews_url", ews_url.as_deref());
        if let Some(a) = &auth {
            set_str(t, "auth", Some(a));
        }
        set_list(t, "other_domains", &domains);
        set_str(t, "ca_file", ca_file.as_deref());
        set_str(t, "realm", realm.as_deref());
        if kdcs.is_empty() {
            t.remove("kdcs");
        } else {
            set_list(t, "kdcs", &kdcs);
        }
        Ok(())
    })?;
    if let Some(p) = &password {
        st.vault.set(EXCHANGE_PASSWORD, p)?;
    }
    if let Some(k) = &keytab {
        st.vault.set(EXCHANGE_KEYTAB, k)?;
    }
    let mut removed = Vec::new();
    for (drop, name) in [
        (drop_password, EXCHANGE_PASSWORD),
        (drop_keytab, EXCHANGE_KEYTAB),
    ] {
        if drop {
            st.vault.delete(name)?;
            removed.push(name);
        }
    }
    st.audit(
        &caller.actor(),
        "service_account.update",
        json!({
            "username": username,
            "password_changed": password.is_some(),
            "keytab_changed": keytab.is_some(),
            "removed": removed,
            "ews_url": ews_url,
            "other_domains": domains,
            "ca_file": ca_file,
            "auth": auth,
            "realm": realm,
            "kdcs": kdcs,
        }),
    );
    Ok(Saved {
        view: ServiceAccountView::load(st)?,
        removed,
    })
}

/// What a save leaves: the account as now configured, and the stored credentials it removed
/// because they were given for the old account or domains.
pub(crate) struct Saved {
    pub view: ServiceAccountView,
    pub removed: Vec<&'static str>,
}

impl Saved {
    /// What the page says after the save.
    fn message(&self) -> String {
        let mut text = "Saved.".to_owned();
        for name in &self.removed {
            text.push_str(match *name {
                EXCHANGE_PASSWORD => {
                    " The stored password was removed: it was given for the old account or \
                     domains. Type it again if Basic or NTLM needs it."
                }
                _ => {
                    " The stored keytab was removed: it was given for the old account or \
                     domains. Upload the account's keytab if Kerberos needs it."
                }
            });
        }
        text
    }
}

// ---- JSON ------------------------------------------------------------------------------------

pub(crate) async fn get_json(
    State(st): State<AppState>,
) -> ConsoleResult<Json<ServiceAccountView>> {
    ServiceAccountView::load(&st).map(Json)
}

pub(crate) async fn put_json(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(input): Json<ServiceAccountInput>,
) -> ConsoleResult<Json<ServiceAccountView>> {
    apply_service_account(&st, &caller, input).map(|saved| Json(saved.view))
}

// ---- page ------------------------------------------------------------------------------------

/// The page, showing `typed` in place of the stored values when a save was refused, so the
/// admin corrects their input rather than typing it all again.
fn service_account_page(
    st: &AppState,
    caller: &Caller,
    message: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
    typed: Option<Typed>,
) -> Response {
    match ServiceAccountView::load(st) {
        Ok(view) => {
            let view = match typed {
                Some(t) => view.with_typed(t),
                None => view,
            };
            (
                status,
                page(
                    "Service account",
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
    service_account_page(&st, &caller, None, None, StatusCode::OK, None)
}

/// What the form's admin typed, shown again when the save is refused; never a secret.
struct Typed {
    auth: Option<String>,
    ca_file: Option<String>,
    ews_url: Option<String>,
    kdcs: String,
    other_domains: String,
    realm: Option<String>,
    username: String,
}

impl ServiceAccountView {
    /// The stored account with what the admin typed in place of it.
    fn with_typed(mut self, t: Typed) -> ServiceAccountView {
        let modes = [
            ExchangeAuth::Auto,
            ExchangeAuth::Basic,
            ExchangeAuth::Ntlm,
            ExchangeAuth::Kerberos,
        ]
        .map(|m| m.as_str());
        if let Some(mode) = typed_choice(&modes, t.auth.as_deref()) {
            self.auth = mode;
        }
        self.ca_file = t.ca_file;
        self.ews_url = t.ews_url;
        self.kdcs = vec![t.kdcs];
        self.other_domains = vec![t.other_domains];
        self.realm = t.realm;
        self.username = t.username;
        self
    }
}

/// The form gives the other domains as one comma-separated field.
#[derive(Deserialize)]
pub(crate) struct ServiceAccountForm {
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
    #[serde(default)]
    realm: Option<String>,
    #[serde(default)]
    kdcs: String,
    #[serde(default)]
    keytab: Option<SecretValue>,
}

pub(crate) async fn post_form(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Form(form): Form<ServiceAccountForm>,
) -> Response {
    let typed = Typed {
        auth: form.auth.clone(),
        ca_file: form.ca_file.clone(),
        ews_url: form.ews_url.clone(),
        kdcs: form.kdcs.clone(),
        other_domains: form.other_domains.clone(),
        realm: form.realm.clone(),
        username: form.username.clone(),
    };
    let input = ServiceAccountInput {
        username: form.username,
        password: form.password,
        auth: form.auth,
        ews_url: form.ews_url,
        other_domains: vec![form.other_domains],
        ca_file: form.ca_file,
        realm: form.realm,
        kdcs: vec![form.kdcs],
        keytab: form.keytab,
    };
    match apply_service_account(&st, &caller, input) {
        Ok(saved) => service_account_page(
            &st,
            &caller,
            Some(&saved.message()),
            None,
            StatusCode::OK,
            None,
        ),
        Err(e) => service_account_page(&st, &caller, None, Some(&e.message), e.status, Some(typed)),
    }
}
