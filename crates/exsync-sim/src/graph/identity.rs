//! The Entra identity platform as the app sees it: its tenant, its credentials (a client
//! secret and a certificate), the token endpoint with client credentials, the OpenID
//! configuration msal discovers, and the check of the access tokens Graph calls carry.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use anyhow::Context;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::Rng;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::{RsaPrivateKey, RsaPublicKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Digest;

use super::call::Answer;
use crate::cli_support::write_private;

const IDENTITY_FILE: &str = "identity.json";
/// The app's certificate credential (public part, as uploaded to the app registration).
pub(crate) const APP_CERT_FILE: &str = "app-cert.pem";
/// Its RSA private key (PKCS#8). A PEM placed there before start is used instead of
/// generating one, which is slow in debug builds.
pub(crate) const APP_KEY_FILE: &str = "app-key.pem";

/// The one resource this tenant issues tokens for.
pub(crate) const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
const GRAPH_AUDIENCE: &str = "https://graph.microsoft.com";
/// Microsoft Graph's own application id: `<id>/.default` names the same resource.
const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

const DEFAULT_TOKEN_LIFETIME_SECS: u64 = 3599;
/// Short lifetimes are allowed so tests can watch tokens expire; a day is Entra's maximum.
const MAX_TOKEN_LIFETIME_SECS: u64 = 86_400;
/// The clock skew Entra tolerates on assertion times.
const CLOCK_SKEW_SECS: i64 = 300;
/// Entra asks for assertions of 5–10 minutes and lets longer ones through; an hour is where
/// this simulator calls one absurd.
const MAX_ASSERTION_LIFETIME_SECS: i64 = 3600;
/// A form value larger than this is not a credential; refused before any parsing.
const MAX_FORM_VALUE_BYTES: usize = 16 * 1024;

/// Application permissions of Microsoft Graph an admin can grant tenant-wide; the names the
/// `roles` claim carries.
const KNOWN_APP_ROLES: &[&str] = &[
    "Calendars.Read",
    "Calendars.ReadBasic.All",
    "Calendars.ReadWrite",
    "Contacts.Read",
    "Contacts.ReadWrite",
    "Directory.Read.All",
    "Group.Read.All",
    "Mail.Read",
    "Mail.ReadBasic",
    "Mail.ReadBasic.All",
    "Mail.ReadWrite",
    "Mail.Send",
    "MailboxSettings.Read",
    "MailboxSettings.ReadWrite",
    "User.Read.All",
    "User.ReadBasic.All",
];

/// The app that called Graph, as its access token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    pub(crate) app_id: String,
    /// The tenant-wide application permissions (`roles` claim); empty unless granted.
    pub(crate) roles: Vec<String>,
}

/// `identity.json`: what must stay the same across restarts.
#[derive(Clone, Serialize, Deserialize)]
struct Stored {
    tenant_id: String,
    client_id: String,
    /// The enterprise application (service principal) object id: the token's `oid`, and
    /// what an Exchange admin's `New-ServicePrincipal -ObjectId` points at.
    service_principal_id: String,
    client_secret: String,
    /// Base64 of the HS256 key access tokens are signed with.
    token_key: String,
    token_lifetime_secs: u64,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    token_generation: u64,
}

/// The app's certificate credential as the token endpoint checks it.
struct AppCertificate {
    /// Verifies assertion signatures (the certificate's public key).
    verifier: DecodingKey,
    /// SHA-1 of the certificate DER (`x5t`).
    x5t: [u8; 20],
    /// SHA-256 of the certificate DER (`x5t#S256`).
    x5t_s256: [u8; 32],
}

struct Mutable {
    stored: Stored,
    /// `jti` → (the assertion's signature, its `exp`), until `exp` passes.
    jtis: HashMap<String, (String, i64)>,
    /// Lower-case domain names the tenant answers to besides its id.
    domains: Vec<String>,
}

/// The tenant and its one app registration, persisted in the data directory.
pub(crate) struct Identity {
    dir: PathBuf,
    tenant_id: String,
    client_id: String,
    service_principal_id: String,
    client_secret: String,
    signing: EncodingKey,
    checking: DecodingKey,
    app: AppCertificate,
    state: Mutex<Mutable>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets and keys are deliberately left out.
        f.debug_struct("Identity")
            .field("dir", &self.dir)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .finish()
    }
}

/// An Entra error, before it gets its trace ids.
struct Refusal {
    status: u16,
    error: &'static str,
    code: u32,
    description: String,
}

fn refuse(status: u16, error: &'static str, code: u32, description: impl Into<String>) -> Refusal {
    Refusal {
        status,
        error,
        code,
        description: description.into(),
    }
}

fn missing(parameter: &str) -> Refusal {
    refuse(
        400,
        "invalid_request",
        900144,
        format!("The request body must contain the following parameter: '{parameter}'."),
    )
}

impl Identity {
    /// Reads `dir/identity.json`, `app-cert.pem` and `app-key.pem`, creating what is missing.
    pub(crate) fn load_or_create(dir: &Path) -> anyhow::Result<Identity> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(IDENTITY_FILE);
        let stored = if path.exists() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str::<Stored>(&text)
                .with_context(|| format!("{} is not an identity file", path.display()))?
        } else {
            let stored = Stored {
                tenant_id: uuid::Uuid::new_v4().to_string(),
                client_id: uuid::Uuid::new_v4().to_string(),
                service_principal_id: uuid::Uuid::new_v4().to_string(),
                client_secret: new_client_secret(),
                token_key: base64::engine::general_purpose::STANDARD
                    .encode(rand::thread_rng().gen::<[u8; 32]>()),
                token_lifetime_secs: DEFAULT_TOKEN_LIFETIME_SECS,
                roles: Vec::new(),
                token_generation: 0,
            };
            crate::cli_support::write_private_json(&path, &stored)?;
            stored
        };
        let key = base64::engine::general_purpose::STANDARD
            .decode(&stored.token_key)
            .with_context(|| format!("the token key in {} is not base64", path.display()))?;
        let app = load_or_create_certificate(dir)?;
        Ok(Identity {
            dir: dir.to_path_buf(),
            tenant_id: stored.tenant_id.clone(),
            client_id: stored.client_id.clone(),
            service_principal_id: stored.service_principal_id.clone(),
            client_secret: stored.client_secret.clone(),
            signing: EncodingKey::from_secret(&key),
            checking: DecodingKey::from_secret(&key),
            app,
            state: Mutex::new(Mutable {
                stored,
                jtis: HashMap::new(),
                domains: Vec::new(),
            }),
        })
    }

    pub(crate) fn tenant_id(&self) -> String {
        self.tenant_id.clone()
    }

    pub(crate) fn client_id(&self) -> String {
        self.client_id.clone()
    }

    /// The enterprise application's object id (`oid` of the app's tokens).
    pub(crate) fn service_principal_id(&self) -> String {
        self.service_principal_id.clone()
    }

    pub(crate) fn client_secret(&self) -> String {
        self.client_secret.clone()
    }

    pub(crate) fn certificate_path(&self) -> PathBuf {
        self.dir.join(APP_CERT_FILE)
    }

    pub(crate) fn private_key_path(&self) -> PathBuf {
        self.dir.join(APP_KEY_FILE)
    }

    fn lock(&self) -> MutexGuard<'_, Mutable> {
        // A panic elsewhere leaves the state consistent (every change is one assignment).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True for the tenant id or one of the tenant's domains, as an authority path segment.
    pub(crate) fn is_tenant(&self, segment: &str) -> bool {
        segment.eq_ignore_ascii_case(&self.tenant_id)
            || self
                .lock()
                .domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(segment))
    }

    /// Adds a domain the tenant answers to in authority URLs (besides its id).
    pub(crate) fn add_domain(&self, domain: &str) {
        let domain = domain.trim().to_ascii_lowercase();
        let mut state = self.lock();
        if !domain.is_empty() && !state.domains.contains(&domain) {
            state.domains.push(domain);
        }
    }

    /// `<authority>/v2.0/.well-known/openid-configuration`. As Entra does, every endpoint
    /// names the tenant by its id, whichever name the authority used; msal reads the tenant
    /// back from `token_endpoint`.
    pub(crate) fn openid_configuration(&self, authority_url: &str) -> Value {
        let base = format!("{}/{}", origin(authority_url), self.tenant_id);
        json!({
            "token_endpoint": format!("{base}/oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported":
                ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{base}/discovery/v2.0/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": format!("{base}/v2.0"),
            "request_uri_parameter_supported": false,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
            "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
            "http_logout_supported": true,
            "frontchannel_logout_supported": true,
            "end_session_endpoint": format!("{base}/oauth2/v2.0/logout"),
            "claims_supported": [
                "sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
                "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time",
                "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash",
                "c_hash", "email"
            ],
            "kerberos_endpoint": format!("{base}/kerberos"),
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net"
        })
    }

    /// `<authority>/discovery/v2.0/keys`. Access tokens here are opaque to clients (signed
    /// with a key only this simulator holds), so there is no public key to publish.
    pub(crate) fn jwks(&self) -> Value {
        json!({ "keys": [] })
    }

    /// `POST <authority>/oauth2/v2.0/token`: `token_url` is the URL the client posted to
    /// (the assertion's audience), `tenant_in_path` the authority's path segment.
    pub(crate) fn token(
        &self,
        token_url: &str,
        tenant_in_path: &str,
        form: &[(String, String)],
        authorization: Option<&str>,
        now: DateTime<Utc>,
    ) -> Answer {
        let answer = match self.grant(token_url, tenant_in_path, form, authorization, now) {
            Ok(body) => Answer::ok(body),
            Err(refusal) => entra_error(token_url, refusal, now),
        };
        answer
            .header("Cache-Control", "no-store, no-cache")
            .header("Pragma", "no-cache")
    }

    fn grant(
        &self,
        token_url: &str,
        tenant_in_path: &str,
        form: &[(String, String)],
        authorization: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Value, Refusal> {
        if !self.is_tenant(tenant_in_path) {
            return Err(refuse(
                400,
                "invalid_request",
                90002,
                format!(
                    "Tenant '{tenant_in_path}' not found. Check to make sure you have the \
                     correct tenant ID and are signing in to the correct cloud. Check with your \
                     subscription administrator, this may happen if there are no active \
                     subscriptions for the tenant."
                ),
            ));
        }
        let mut fields: HashMap<&str, &str> = HashMap::new();
        for (name, value) in form {
            if value.len() > MAX_FORM_VALUE_BYTES {
                return Err(refuse(
                    400,
                    "invalid_request",
                    90014,
                    format!("The request parameter '{name}' is too long."),
                ));
            }
            // The first of a repeated parameter counts, as most form readers do.
            fields.entry(name.as_str()).or_insert(value.as_str());
        }
        let field = |name: &str| fields.get(name).copied().filter(|v| !v.is_empty());

        match field("grant_type") {
            None => return Err(missing("grant_type")),
            Some("client_credentials") => {}
            Some(other) => {
                return Err(refuse(
                    400,
                    "unsupported_grant_type",
                    70003,
                    format!("The app requested an unsupported grant type '{other}'."),
                ))
            }
        }

        let basic = match authorization {
            Some(header) => match basic_credentials(header) {
                Some(pair) => Some(pair),
                None if header.trim().is_empty() => None,
                None => {
                    return Err(refuse(
                        401,
                        "invalid_client",
                        7000216,
                        "The Authorization header is not HTTP Basic with a client id and \
                         secret ('client_id:client_secret', each form-encoded, in base64).",
                    ))
                }
            },
            None => None,
        };
        let assertion = field("client_assertion");
        let assertion_type = field("client_assertion_type");
        let client_id = match (&basic, field("client_id")) {
            (Some((id, _)), _) => id.clone(),
            (None, Some(id)) => id.to_owned(),
            // RFC 7523 lets an assertion stand for the client id; the signature and iss
            // checks below hold it to the registered app.
            (None, None) => match assertion.and_then(unverified_issuer) {
                Some(iss) => iss,
                None => return Err(missing("client_id")),
            },
        };
        if !client_id.eq_ignore_ascii_case(&self.client_id) {
            return Err(refuse(
                400,
                "unauthorized_client",
                700016,
                format!(
                    "Application with identifier '{client_id}' was not found in the directory \
                     '{}'. This can happen if the application has not been installed by the \
                     administrator of the tenant or consented to by any user in the tenant. \
                     You may have sent your authentication request to the wrong tenant.",
                    self.tenant_id
                ),
            ));
        }

        let scope = field("scope").ok_or_else(|| missing("scope"))?;
        self.check_scope(scope)?;

        let secret = basic
            .as_ref()
            .map(|(_, s)| s.as_str())
            .or(field("client_secret"));
        if secret.is_none() && assertion.is_none() {
            return Err(refuse(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' \
                 or 'client_secret'.",
            ));
        }
        let mut appidacr = "1";
        if let Some(secret) = secret {
            if !constant_time_eq(secret.as_bytes(), self.client_secret.as_bytes()) {
                return Err(refuse(
                    401,
                    "invalid_client",
                    7000215,
                    format!(
                        "Invalid client secret provided. Ensure the secret being sent in the \
                         request is the client secret value, not the client secret ID, for a \
                         secret added to app '{}'.",
                        self.client_id
                    ),
                ));
            }
        }
        if let Some(assertion) = assertion {
            if assertion_type != Some(JWT_BEARER) {
                return Err(refuse(
                    400,
                    "invalid_request",
                    700023,
                    format!(
                        "The client_assertion_type must be '{JWT_BEARER}', not '{}'.",
                        assertion_type.unwrap_or_default()
                    ),
                ));
            }
            self.check_assertion(assertion, token_url, now)?;
            appidacr = "2";
        }
        Ok(self.issue(appidacr, now))
    }

    fn check_scope(&self, scope: &str) -> Result<(), Refusal> {
        let mut resource = None;
        for item in scope.split(' ').filter(|s| !s.is_empty()) {
            // msal may add OpenID Connect's reserved scopes; Entra ignores them here.
            if matches!(item, "openid" | "profile" | "offline_access") {
                continue;
            }
            if resource.is_some() {
                return Err(invalid_scope(scope));
            }
            resource = Some(item);
        }
        let graph_by_id = format!("{GRAPH_APP_ID}/.default");
        match resource {
            Some(r)
                if r.trim_end_matches('/')
                    .eq_ignore_ascii_case(GRAPH_SCOPE.trim_end_matches('/'))
                    || r.eq_ignore_ascii_case(&graph_by_id) =>
            {
                Ok(())
            }
            _ => Err(invalid_scope(scope)),
        }
    }

    /// The checks Entra makes of a certificate credential's client assertion.
    fn check_assertion(
        &self,
        assertion: &str,
        token_url: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Refusal> {
        let bad = |why: String| refuse(401, "invalid_client", 700027, why);
        let header = jsonwebtoken::decode_header(assertion).map_err(|e| {
            bad(format!(
                "Client assertion is not a well-formed JWT ({e}). Review the documentation at \
                 https://learn.microsoft.com/entra/identity-platform/certificate-credentials ."
            ))
        })?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256) {
            return Err(bad(format!(
                "Client assertion is signed with {:?}; the app's certificate credential \
                 takes RS256 or PS256.",
                header.alg
            )));
        }
        // Each thumbprint the header names must be the registered certificate's.
        let named = [
            (header.x5t_s256.as_deref(), &self.app.x5t_s256[..]),
            (header.x5t.as_deref(), &self.app.x5t[..]),
        ];
        if named.iter().all(|(given, _)| given.is_none()) {
            return Err(bad(
                "The client assertion's header names no certificate: it needs 'x5t#S256' \
                 (or 'x5t')."
                    .to_owned(),
            ));
        }
        for (given, registered) in named {
            if let Some(given) = given {
                if thumbprint_bytes(given).as_deref() != Some(registered) {
                    return Err(bad(format!(
                        "The certificate with identifier used to sign the client assertion is \
                         not registered on application. [Reason - The key was not found., \
                         Thumbprint of key used by client: '{}', Please visit the Azure \
                         Portal, Graph Explorer or directly use MS Graph to see configured \
                         keys for app Id '{}'.]",
                        thumbprint_hex(given),
                        self.client_id
                    )));
                }
            }
        }
        let mut validation = Validation::new(header.alg);
        // Times and audience are checked below against `now` and the URL posted to.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = match jsonwebtoken::decode::<Value>(assertion, &self.app.verifier, &validation)
        {
            Ok(data) => data.claims,
            Err(e) => {
                return Err(bad(match e.kind() {
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                        "Client assertion failed signature validation.".to_owned()
                    }
                    _ => format!("Client assertion could not be read ({e})."),
                }))
            }
        };

        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        let audience_ok = |a: &str| a.trim_end_matches('/') == token_url.trim_end_matches('/');
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => audience_ok(a),
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(audience_ok),
            _ => false,
        };
        if !aud_ok {
            return Err(bad(format!(
                "The audience claim of the client assertion ({}) is not the token endpoint \
                 it was sent to ('{token_url}').",
                claims.get("aud").map(Value::to_string).unwrap_or_default()
            )));
        }
        for name in ["iss", "sub"] {
            if !text(name).is_some_and(|v| v.eq_ignore_ascii_case(&self.client_id)) {
                return Err(refuse(
                    401,
                    "invalid_client",
                    700021,
                    format!(
                        "Client assertion application identifier doesn't match 'client_id' \
                         parameter: its '{name}' claim is {}, the app is '{}'.",
                        claims
                            .get(name)
                            .map(Value::to_string)
                            .unwrap_or("absent".into()),
                        self.client_id
                    ),
                ));
            }
        }

        let time = |name: &str| claims.get(name).and_then(numeric_date);
        let now_s = now.timestamp();
        let exp = time("exp")
            .ok_or_else(|| bad("The client assertion has no numeric 'exp' claim.".to_owned()))?;
        let nbf = time("nbf");
        let out_of_range = |why: &str| {
            refuse(
                401,
                "invalid_client",
                700024,
                format!(
                    "Client assertion is not within its valid time range ({why}). Current \
                     time: {}, assertion valid from {}, expiry time of assertion {}.",
                    format_time(now_s),
                    nbf.map(format_time).unwrap_or_else(|| "(no nbf)".into()),
                    format_time(exp)
                ),
            )
        };
        if exp <= now_s - CLOCK_SKEW_SECS {
            return Err(out_of_range("it has expired"));
        }
        if nbf.is_some_and(|nbf| nbf > now_s + CLOCK_SKEW_SECS) {
            return Err(out_of_range("it is not valid yet"));
        }
        let start = nbf.or(time("iat")).unwrap_or(now_s);
        if exp - start > MAX_ASSERTION_LIFETIME_SECS {
            return Err(bad(format!(
                "Client assertion lifetime is too long: {} s between its start and its 'exp' \
                 (at most {MAX_ASSERTION_LIFETIME_SECS} s; 10 minutes is usual).",
                exp - start
            )));
        }

        let jti = text("jti")
            .filter(|j| !j.is_empty())
            .ok_or_else(|| bad("The client assertion has no 'jti' claim.".to_owned()))?;
        // msal sends the very same assertion again for up to 9 minutes (it caches it), and
        // Entra takes it; what is refused is a different assertion reusing an id.
        let signature = assertion.rsplit('.').next().unwrap_or_default().to_owned();
        let mut state = self.lock();
        state
            .jtis
            .retain(|_, (_, exp)| *exp > now_s - CLOCK_SKEW_SECS);
        match state.jtis.get(jti) {
            Some((seen, _)) if *seen != signature => {
                return Err(bad(format!(
                    "The client assertion's 'jti' ({jti}) was already used by another \
                     assertion: each assertion needs a unique id."
                )))
            }
            Some(_) => {}
            None => {
                state.jtis.insert(jti.to_owned(), (signature, exp));
            }
        }
        Ok(())
    }

    fn issue(&self, appidacr: &str, now: DateTime<Utc>) -> Value {
        let (lifetime, roles, generation) = {
            let state = self.lock();
            (
                state.stored.token_lifetime_secs,
                state.stored.roles.clone(),
                state.stored.token_generation,
            )
        };
        let now_s = now.timestamp();
        let issuer = format!("https://sts.windows.net/{}/", self.tenant_id);
        let mut claims = json!({
            "aud": GRAPH_AUDIENCE,
            "iss": issuer,
            // Entra back-dates tokens by its clock skew allowance.
            "iat": now_s - CLOCK_SKEW_SECS,
            "nbf": now_s - CLOCK_SKEW_SECS,
            "exp": now_s + i64::try_from(lifetime).unwrap_or(i64::MAX / 2),
            "app_displayname": "exsync",
            "appid": self.client_id,
            "appidacr": appidacr,
            "idp": issuer,
            "idtyp": "app",
            "oid": self.service_principal_id,
            "sub": self.service_principal_id,
            "tid": self.tenant_id,
            "uti": new_uti(),
            "ver": "1.0",
            "gen": generation,
        });
        if !roles.is_empty() {
            claims["roles"] = json!(roles);
        }
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("JWT".to_owned());
        // Signing with an in-memory HMAC key and a JSON value cannot fail.
        let access_token =
            jsonwebtoken::encode(&header, &claims, &self.signing).unwrap_or_else(|_| String::new());
        json!({
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access_token,
        })
    }

    /// The caller of a Graph request, from its `Authorization` header.
    pub(crate) fn verify(
        &self,
        authorization: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Caller, Answer> {
        let token = authorization
            .map(str::trim)
            .and_then(|h| {
                let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
                scheme.eq_ignore_ascii_case("Bearer").then_some(rest.trim())
            })
            .unwrap_or_default();
        if token.is_empty() {
            return Err(unauthenticated("Access token is empty."));
        }
        if token.matches('.').count() != 2 {
            return Err(unauthenticated(
                "IDX14100: JWT is not well formed, there are no dots (.).\nThe token needs to \
                 be in JWS or JWE Compact Serialization Format. (JWS): \
                 'EncodedHeader.EndcodedPayload.EncodedSignature'. (JWE): \
                 'EncodedProtectedHeader.EncodedEncryptedKey.EncodedInitializationVector.\
                 EncodedCiphertext.EncodedAuthenticationTag'.",
            ));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = match jsonwebtoken::decode::<Value>(token, &self.checking, &validation) {
            Ok(data) => data.claims,
            Err(e) => {
                use jsonwebtoken::errors::ErrorKind;
                return Err(unauthenticated(&match e.kind() {
                    ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => {
                        "Access token validation failure. Invalid signature.".to_owned()
                    }
                    _ => format!("IDX14102: Unable to decode the token: {e}."),
                }));
            }
        };
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        if text("aud") != Some(GRAPH_AUDIENCE) {
            return Err(unauthenticated(
                "Access token validation failure. Invalid audience.",
            ));
        }
        if text("tid") != Some(self.tenant_id.as_str()) {
            return Err(unauthenticated(
                "Access token validation failure. Invalid issuer.",
            ));
        }
        let now_s = now.timestamp();
        let exp = claims.get("exp").and_then(numeric_date).unwrap_or(i64::MIN);
        let nbf = claims.get("nbf").and_then(numeric_date).unwrap_or(i64::MAX);
        let generation = claims.get("gen").and_then(Value::as_u64);
        let current = self.lock().stored.token_generation;
        if exp <= now_s || nbf > now_s || generation != Some(current) {
            return Err(unauthenticated(
                "Access token has expired or is not yet valid.",
            ));
        }
        let roles = claims
            .get("roles")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Caller {
            app_id: text("appid").unwrap_or_default().to_owned(),
            roles,
        })
    }

    /// Grants tenant-wide application permissions (replacing the previous grant). Tokens
    /// already issued keep the roles they were issued with, as Entra's do.
    pub(crate) fn set_roles(&self, roles: Vec<String>) -> anyhow::Result<()> {
        let mut normalized: Vec<String> = Vec::new();
        for role in &roles {
            let known = known_role(role).ok_or_else(|| {
                anyhow::anyhow!(
                    "'{role}' is not a Microsoft Graph application permission this \
                         simulator knows (known: {})",
                    KNOWN_APP_ROLES.join(", ")
                )
            })?;
            if !normalized.iter().any(|n| n == known) {
                normalized.push(known.to_owned());
            }
        }
        self.change(|stored| stored.roles = normalized)
    }

    pub(crate) fn roles(&self) -> Vec<String> {
        self.lock().stored.roles.clone()
    }

    /// Lifetime of access tokens issued from now on, in seconds.
    pub(crate) fn set_token_lifetime(&self, secs: u64) -> anyhow::Result<()> {
        if !(1..=MAX_TOKEN_LIFETIME_SECS).contains(&secs) {
            anyhow::bail!(
                "a token lifetime is between 1 and {MAX_TOKEN_LIFETIME_SECS} seconds, not {secs}"
            );
        }
        self.change(|stored| stored.token_lifetime_secs = secs)
    }

    pub(crate) fn token_lifetime(&self) -> u64 {
        self.lock().stored.token_lifetime_secs
    }

    /// Makes every access token issued so far fail with "expired".
    pub(crate) fn expire_tokens(&self) -> anyhow::Result<()> {
        self.change(|stored| stored.token_generation += 1)
    }

    /// Applies `edit` and persists the result; on a write failure the change is undone.
    fn change(&self, edit: impl FnOnce(&mut Stored)) -> anyhow::Result<()> {
        let mut state = self.lock();
        let mut next = state.stored.clone();
        edit(&mut next);
        crate::cli_support::write_private_json(&self.dir.join(IDENTITY_FILE), &next)?;
        state.stored = next;
        Ok(())
    }
}

/// The Graph application permission `name` names (any case), spelled as Graph spells it;
/// `None` for a name Graph has no such permission for.
pub(crate) fn known_role(name: &str) -> Option<&'static str> {
    KNOWN_APP_ROLES
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name.trim()))
        .copied()
}

/// Uses `dir/app-key.pem` when present (PKCS#8, or PKCS#1) and `dir/app-cert.pem` when it
/// holds that key; generates whichever is missing or stale.
fn load_or_create_certificate(dir: &Path) -> anyhow::Result<AppCertificate> {
    let key_path = dir.join(APP_KEY_FILE);
    let key = if key_path.exists() {
        let pem = std::fs::read_to_string(&key_path)
            .with_context(|| format!("reading {}", key_path.display()))?;
        let key = RsaPrivateKey::from_pkcs8_pem(&pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(&pem))
            .with_context(|| format!("{} is not an RSA private key", key_path.display()))?;
        // A key placed by hand is held to the same mode as a generated one.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("restricting {}", key_path.display()))?;
        }
        key
    } else {
        let pem = crate::salesforce::generate_key_pem()?;
        write_private(&key_path, pem.as_bytes())?;
        RsaPrivateKey::from_pkcs8_pem(&pem).context("re-reading the generated app key")?
    };
    let public = RsaPublicKey::from(&key);
    let spki = public
        .to_public_key_der()
        .context("encoding the app's public key")?;

    let cert_path = dir.join(APP_CERT_FILE);
    let existing = std::fs::read(&cert_path)
        .ok()
        .and_then(|pem| CertificateDer::from_pem_slice(&pem).ok())
        // A certificate embeds its subject's public key verbatim.
        .filter(|der| {
            der.as_ref()
                .windows(spki.as_bytes().len())
                .any(|w| w == spki.as_bytes())
        });
    let cert_der = match existing {
        Some(der) => der.as_ref().to_vec(),
        None => {
            let (pem, der) = self_signed_certificate(&key)?;
            let tmp = cert_path.with_extension("pem.tmp");
            std::fs::write(&tmp, pem).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &cert_path)
                .with_context(|| format!("renaming to {}", cert_path.display()))?;
            der
        }
    };
    let public_pem = public
        .to_public_key_pem(LineEnding::LF)
        .context("encoding the app's public key")?;
    let verifier =
        DecodingKey::from_rsa_pem(public_pem.as_bytes()).context("loading the app's public key")?;
    Ok(AppCertificate {
        verifier,
        x5t: sha1::digest(&cert_der),
        x5t_s256: sha2::Sha256::digest(&cert_der).into(),
    })
}

/// A self-signed certificate for the app's key, as an admin makes one to upload to the app
/// registration. Returns its PEM and DER.
fn self_signed_certificate(key: &RsaPrivateKey) -> anyhow::Result<(String, Vec<u8>)> {
    let pkcs8 = key
        .to_pkcs8_pem(LineEnding::LF)
        .context("encoding the app key")?;
    let signer = rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA256)
        .context("loading the app key for signing")?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .context("app certificate parameters")?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, "exsync Graph app");
    params.distinguished_name = dn;
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2099, 12, 31);
    let cert = params
        .self_signed(&signer)
        .context("self-signing the app certificate")?;
    Ok((cert.pem(), cert.der().as_ref().to_vec()))
}

/// Entra's error body, with the trace and correlation ids its descriptions end with.
fn entra_error(token_url: &str, refusal: Refusal, now: DateTime<Utc>) -> Answer {
    let trace_id = uuid::Uuid::new_v4().to_string();
    let correlation_id = uuid::Uuid::new_v4().to_string();
    let timestamp = now.format("%Y-%m-%d %H:%M:%SZ").to_string();
    Answer::with(
        refusal.status,
        json!({
            "error": refusal.error,
            "error_description": format!(
                "AADSTS{}: {} Trace ID: {trace_id} Correlation ID: {correlation_id} \
                 Timestamp: {timestamp}",
                refusal.code, refusal.description
            ),
            "error_codes": [refusal.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("{}/error?code={}", origin(token_url), refusal.code),
        }),
    )
}

fn invalid_scope(scope: &str) -> Refusal {
    refuse(
        400,
        "invalid_scope",
        70011,
        format!(
            "The provided request must include a 'scope' input parameter. The provided value \
             for the input parameter 'scope' is not valid. The scope {scope} is not valid. \
             Client credential flows must have a scope value with /.default suffixed to the \
             resource identifier (here {GRAPH_SCOPE})."
        ),
    )
}

/// Graph's 401, with the challenge that names where a token comes from.
fn unauthenticated(message: &str) -> Answer {
    Answer::error(401, "InvalidAuthenticationToken", message).header(
        "WWW-Authenticate",
        format!(
            "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/\
             oauth2/authorize\", client_id=\"{GRAPH_APP_ID}\""
        ),
    )
}

/// `https://host:port` of a URL (everything before its path).
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url.trim_end_matches('/'),
    }
}

/// Client id and secret of an HTTP Basic header (RFC 6749 §2.3.1: each form-encoded).
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("Basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unform = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .ok()
            .map(|c| c.into_owned())
    };
    let id = unform(id)?;
    (!id.is_empty()).then_some(())?;
    Some((id, unform(secret)?))
}

/// The `iss` of an assertion, read without checking it (only to name the client).
fn unverified_issuer(assertion: &str) -> Option<String> {
    let payload = assertion.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// A JWT NumericDate: a number of seconds (some clients send a fraction or a string).
fn numeric_date(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse::<f64>().ok().map(|f| f as i64),
        _ => None,
    }
}

fn format_time(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .map(|t| t.format("%m/%d/%Y %H:%M:%S").to_string())
        .unwrap_or_else(|| secs.to_string())
}

/// The bytes of a header's thumbprint. msal pads its base64url (`…=`), others do not; a
/// standard-alphabet one is taken too.
fn thumbprint_bytes(given: &str) -> Option<Vec<u8>> {
    let bare = given.trim().trim_end_matches('=');
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(bare)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(bare))
        .ok()
}

/// A header's thumbprint as the upper-case hex Entra's messages show.
fn thumbprint_hex(given: &str) -> String {
    match thumbprint_bytes(given) {
        Some(bytes) => bytes.iter().map(|b| format!("{b:02X}")).collect(),
        None => given.to_owned(),
    }
}

/// Entra's secrets: three characters, `8Q~`, then 34 more (40 in all).
fn new_client_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.~";
    let mut rng = rand::thread_rng();
    let mut pick = |n: usize| -> String {
        (0..n)
            .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
            .collect()
    };
    format!("{}8Q~{}", pick(3), pick(34))
}

/// The token's `uti`: 22 base64url characters, as Entra's look.
fn new_uti() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::thread_rng().gen::<[u8; 16]>())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// SHA-1, needed only for the `x5t` thumbprint msal still sends; no crate of this workspace
/// exposes it.
mod sha1 {
    pub(super) fn digest(data: &[u8]) -> [u8; 20] {
        let mut h: [u32; 5] = [
            0x6745_2301,
            0xEFCD_AB89,
            0x98BA_DCFE,
            0x1032_5476,
            0xC3D2_E1F0,
        ];
        let mut message = data.to_vec();
        let bit_len = (data.len() as u64).wrapping_mul(8);
        message.push(0x80);
        while message.len() % 64 != 56 {
            message.push(0);
        }
        message.extend_from_slice(&bit_len.to_be_bytes());
        for block in message.chunks_exact(64) {
            let mut w = [0u32; 80];
            for (i, word) in block.chunks_exact(4).enumerate() {
                w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
            }
            for i in 16..80 {
                w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
            }
            let [mut a, mut b, mut c, mut d, mut e] = h;
            for (i, wi) in w.iter().enumerate() {
                let (f, k) = match i {
                    0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                    20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                    40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                    _ => (b ^ c ^ d, 0xCA62_C1D6),
                };
                let t = a
                    .rotate_left(5)
                    .wrapping_add(f)
                    .wrapping_add(e)
                    .wrapping_add(k)
                    .wrapping_add(*wi);
                e = d;
                d = c;
                c = b.rotate_left(30);
                b = a;
                a = t;
            }
            for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
                *x = x.wrapping_add(y);
            }
        }
        let mut out = [0u8; 20];
        for (chunk, word) in out.chunks_exact_mut(4).zip(h) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::OnceLock;

    use super::*;

    const TOKEN_URL: &str = "https://127.0.0.1:8443/TENANT/oauth2/v2.0/token";

    /// One RSA key for every test. Generating one takes up to a second and nextest runs
    /// each test in its own process, so the key is kept in the temporary directory.
    fn key_pem() -> &'static str {
        static KEY: OnceLock<String> = OnceLock::new();
        KEY.get_or_init(|| {
            let path = std::env::temp_dir().join("exsync-sim-graph-identity-test-key.pem");
            if let Ok(pem) = std::fs::read_to_string(&path) {
                if RsaPrivateKey::from_pkcs8_pem(&pem).is_ok() {
                    return pem;
                }
            }
            let pem = crate::salesforce::generate_key_pem().unwrap();
            // Written aside then renamed: tests starting together never read half a key.
            let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
            std::fs::write(&tmp, &pem).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
            pem
        })
    }

    fn fresh() -> (tempfile::TempDir, Identity) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(APP_KEY_FILE), key_pem()).unwrap();
        let identity = Identity::load_or_create(dir.path()).unwrap();
        (dir, identity)
    }

    fn token_url(id: &Identity) -> String {
        TOKEN_URL.replace("TENANT", &id.tenant_id())
    }

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn secret_form(id: &Identity) -> Vec<(String, String)> {
        let client_id = id.client_id();
        let secret = id.client_secret();
        form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("scope", GRAPH_SCOPE),
        ])
    }

    fn ask(id: &Identity, form: &[(String, String)], now: DateTime<Utc>) -> Answer {
        id.token(&token_url(id), &id.tenant_id(), form, None, now)
    }

    fn body(answer: &Answer) -> &Value {
        answer.body.as_ref().unwrap()
    }

    fn access_token(answer: &Answer) -> String {
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        body(answer)["access_token"].as_str().unwrap().to_owned()
    }

    /// Asserts an Entra error: status, `error`, AADSTS code, and a word of the description.
    fn assert_entra(answer: &Answer, status: u16, error: &str, code: u32, says: &str) {
        let b = body(answer);
        assert_eq!(answer.status, status, "{b}");
        assert_eq!(b["error"], error, "{b}");
        assert_eq!(b["error_codes"], json!([code]), "{b}");
        let description = b["error_description"].as_str().unwrap();
        assert!(
            description.starts_with(&format!("AADSTS{code}: ")),
            "{description}"
        );
        assert!(description.contains(says), "{description}");
        assert!(description.contains("Trace ID: "), "{description}");
        assert!(description.contains("Correlation ID: "), "{description}");
        for field in ["timestamp", "trace_id", "correlation_id", "error_uri"] {
            assert!(b[field].is_string(), "{field} in {b}");
        }
        assert!(no_store(answer));
    }

    fn no_store(answer: &Answer) -> bool {
        answer
            .headers
            .iter()
            .any(|(n, v)| n == "Cache-Control" && v.contains("no-store"))
    }

    fn cert_der(dir: &Path) -> Vec<u8> {
        let pem = std::fs::read(dir.join(APP_CERT_FILE)).unwrap();
        CertificateDer::from_pem_slice(&pem)
            .unwrap()
            .as_ref()
            .to_vec()
    }

    enum Thumb {
        Sha1,
        Sha256,
    }

    /// A client assertion as msal builds one, signed with the app's key; `edit` changes the
    /// header or the claims before signing.
    fn assertion(
        dir: &Path,
        id: &Identity,
        alg: Algorithm,
        thumb: Thumb,
        now: DateTime<Utc>,
        edit: impl FnOnce(&mut Header, &mut Value),
    ) -> String {
        let der = cert_der(dir);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut header = Header::new(alg);
        match thumb {
            // msal pads this one (`base64.urlsafe_b64encode`).
            Thumb::Sha1 => {
                header.x5t =
                    Some(base64::engine::general_purpose::URL_SAFE.encode(sha1::digest(&der)))
            }
            Thumb::Sha256 => header.x5t_s256 = Some(b64.encode(sha2::Sha256::digest(&der))),
        }
        let t = now.timestamp();
        let mut claims = json!({
            "aud": token_url(id),
            "iss": id.client_id(),
            "sub": id.client_id(),
            "exp": t + 600,
            "nbf": t,
            "iat": t,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        edit(&mut header, &mut claims);
        let key = EncodingKey::from_rsa_pem(key_pem().as_bytes()).unwrap();
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }

    fn assertion_form(id: &Identity, assertion: &str) -> Vec<(String, String)> {
        let client_id = id.client_id();
        form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
            ("scope", GRAPH_SCOPE),
            ("client_info", "1"),
        ])
    }

    fn claims_of(token: &str) -> Value {
        let payload = token.split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn sha1_matches_the_standard_vectors() {
        let hex = |d: [u8; 20]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex(sha1::digest(b"")),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        assert_eq!(
            hex(sha1::digest(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(sha1::digest(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
    }

    #[test]
    fn a_secret_in_the_form_gets_a_graph_token() {
        let (_dir, id) = fresh();
        let now = Utc::now();
        let answer = ask(&id, &secret_form(&id), now);
        let token = access_token(&answer);
        let b = body(&answer);
        assert_eq!(b["token_type"], "Bearer");
        assert_eq!(b["expires_in"], 3599);
        assert_eq!(b["ext_expires_in"], 3599);
        assert!(no_store(&answer));
        let claims = claims_of(&token);
        assert_eq!(claims["aud"], "https://graph.microsoft.com");
        assert_eq!(
            claims["iss"],
            format!("https://sts.windows.net/{}/", id.tenant_id())
        );
        assert_eq!(claims["tid"], id.tenant_id());
        assert_eq!(claims["appid"], id.client_id());
        assert_eq!(claims["appidacr"], "1");
        assert_eq!(claims["idtyp"], "app");
        assert_eq!(claims["oid"], id.service_principal_id());
        assert_eq!(claims["exp"], now.timestamp() + 3599);
        assert!(claims.get("roles").is_none(), "no roles granted: {claims}");
        assert!(claims["uti"].is_string());
        let caller = id.verify(Some(&format!("Bearer {token}")), now).unwrap();
        assert_eq!(caller.app_id, id.client_id());
        assert!(caller.roles.is_empty());
    }

    #[test]
    fn a_secret_in_http_basic_gets_a_token_and_the_tenant_may_be_a_domain() {
        let (_dir, id) = fresh();
        id.add_domain("Contoso.test");
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            id.client_id(),
            id.client_secret()
        ));
        let answer = id.token(
            &token_url(&id),
            "contoso.TEST",
            &form(&[("grant_type", "client_credentials"), ("scope", GRAPH_SCOPE)]),
            Some(&format!("Basic {basic}")),
            Utc::now(),
        );
        access_token(&answer);
    }

    #[test]
    fn a_wrong_secret_is_invalid_client() {
        let (_dir, id) = fresh();
        let mut f = secret_form(&id);
        f[2].1.push('x');
        assert_entra(
            &ask(&id, &f, Utc::now()),
            401,
            "invalid_client",
            7000215,
            "Invalid client secret",
        );
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:not-the-secret", id.client_id()));
        let answer = id.token(
            &token_url(&id),
            &id.tenant_id(),
            &form(&[("grant_type", "client_credentials"), ("scope", GRAPH_SCOPE)]),
            Some(&format!("Basic {basic}")),
            Utc::now(),
        );
        assert_entra(&answer, 401, "invalid_client", 7000215, "secret");
    }

    #[test]
    fn no_credential_at_all_is_invalid_client() {
        let (_dir, id) = fresh();
        let mut f = secret_form(&id);
        f.remove(2);
        assert_entra(
            &ask(&id, &f, Utc::now()),
            401,
            "invalid_client",
            7000218,
            "'client_assertion' or 'client_secret'",
        );
    }

    #[test]
    fn an_unknown_client_is_unauthorized_client() {
        let (_dir, id) = fresh();
        let mut f = secret_form(&id);
        f[1].1 = uuid::Uuid::new_v4().to_string();
        assert_entra(
            &ask(&id, &f, Utc::now()),
            400,
            "unauthorized_client",
            700016,
            &f[1].1,
        );
    }

    #[test]
    fn an_unknown_tenant_is_refused() {
        let (_dir, id) = fresh();
        let answer = id.token(
            &token_url(&id),
            "fabrikam.test",
            &secret_form(&id),
            None,
            Utc::now(),
        );
        assert_entra(&answer, 400, "invalid_request", 90002, "fabrikam.test");
    }

    #[test]
    fn only_graph_default_scope_and_client_credentials_are_granted() {
        let (_dir, id) = fresh();
        for scope in [
            "https://graph.microsoft.com/Contacts.ReadWrite",
            "https://outlook.office.com/.default",
            "https://graph.microsoft.com/.default https://outlook.office.com/.default",
        ] {
            let mut f = secret_form(&id);
            f[3].1 = scope.to_owned();
            assert_entra(
                &ask(&id, &f, Utc::now()),
                400,
                "invalid_scope",
                70011,
                scope,
            );
        }
        // Graph named by its application id is the same resource.
        let mut f = secret_form(&id);
        f[3].1 = format!("{GRAPH_APP_ID}/.default");
        access_token(&ask(&id, &f, Utc::now()));

        let mut f = secret_form(&id);
        f[0].1 = "password".to_owned();
        assert_entra(
            &ask(&id, &f, Utc::now()),
            400,
            "unsupported_grant_type",
            70003,
            "'password'",
        );
        let mut f = secret_form(&id);
        f.remove(3);
        assert_entra(
            &ask(&id, &f, Utc::now()),
            400,
            "invalid_request",
            900144,
            "'scope'",
        );
    }

    #[test]
    fn an_rs256_assertion_with_x5t_gets_a_token() {
        let (dir, id) = fresh();
        let now = Utc::now();
        let a = assertion(
            dir.path(),
            &id,
            Algorithm::RS256,
            Thumb::Sha1,
            now,
            |_, _| {},
        );
        let token = access_token(&ask(&id, &assertion_form(&id, &a), now));
        assert_eq!(claims_of(&token)["appidacr"], "2");
        // msal sends the same assertion again while it is fresh; Entra takes it.
        access_token(&ask(&id, &assertion_form(&id, &a), now));
    }

    #[test]
    fn a_ps256_assertion_with_x5t_s256_gets_a_token_without_client_id() {
        let (dir, id) = fresh();
        let now = Utc::now();
        let a = assertion(
            dir.path(),
            &id,
            Algorithm::PS256,
            Thumb::Sha256,
            now,
            |_, _| {},
        );
        let mut f = assertion_form(&id, &a);
        f.remove(1);
        access_token(&ask(&id, &f, now));
    }

    /// An assertion changed by `edit` is refused with `code`, saying `says`.
    fn refused(edit: impl FnOnce(&mut Header, &mut Value), code: u32, says: &str) {
        let (dir, id) = fresh();
        let now = Utc::now();
        let a = assertion(dir.path(), &id, Algorithm::PS256, Thumb::Sha256, now, edit);
        assert_entra(
            &ask(&id, &assertion_form(&id, &a), now),
            401,
            "invalid_client",
            code,
            says,
        );
    }

    #[test]
    fn an_assertion_for_another_audience_is_refused() {
        refused(
            |_, c| c["aud"] = json!("https://login.microsoftonline.com/x/oauth2/v2.0/token"),
            700027,
            "audience",
        );
    }

    #[test]
    fn an_assertion_from_another_issuer_or_subject_is_refused() {
        let other = uuid::Uuid::new_v4().to_string();
        let o = other.clone();
        refused(move |_, c| c["iss"] = json!(o), 700021, &other);
        let o = other.clone();
        refused(move |_, c| c["sub"] = json!(o), 700021, "'sub'");
    }

    #[test]
    fn an_expired_assertion_is_refused() {
        refused(
            |_, c| {
                let exp = c["exp"].as_i64().unwrap() - 600 - CLOCK_SKEW_SECS - 1;
                c["exp"] = json!(exp);
                c["nbf"] = json!(exp - 600);
                c["iat"] = json!(exp - 600);
            },
            700024,
            "expired",
        );
    }

    #[test]
    fn an_assertion_not_yet_valid_is_refused() {
        refused(
            |_, c| {
                let nbf = c["nbf"].as_i64().unwrap() + CLOCK_SKEW_SECS + 60;
                c["nbf"] = json!(nbf);
                c["exp"] = json!(nbf + 600);
            },
            700024,
            "not valid yet",
        );
    }

    #[test]
    fn an_assertion_living_for_days_is_refused() {
        refused(
            |_, c| c["exp"] = json!(c["nbf"].as_i64().unwrap() + 3 * 86_400),
            700027,
            "lifetime",
        );
    }

    #[test]
    fn an_assertion_without_jti_is_refused() {
        refused(
            |_, c| {
                c.as_object_mut().unwrap().remove("jti");
            },
            700027,
            "'jti'",
        );
    }

    #[test]
    fn a_jti_reused_by_another_assertion_is_refused() {
        let (dir, id) = fresh();
        let now = Utc::now();
        let jti = uuid::Uuid::new_v4().to_string();
        let j = jti.clone();
        let first = assertion(
            dir.path(),
            &id,
            Algorithm::RS256,
            Thumb::Sha1,
            now,
            |_, c| c["jti"] = json!(j),
        );
        access_token(&ask(&id, &assertion_form(&id, &first), now));
        let j = jti.clone();
        let second = assertion(
            dir.path(),
            &id,
            Algorithm::RS256,
            Thumb::Sha1,
            now,
            |_, c| {
                c["jti"] = json!(j);
                c["exp"] = json!(c["exp"].as_i64().unwrap() + 1);
            },
        );
        assert_entra(
            &ask(&id, &assertion_form(&id, &second), now),
            401,
            "invalid_client",
            700027,
            &jti,
        );
    }

    #[test]
    fn an_assertion_naming_another_certificate_is_refused() {
        let other = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32]);
        let o = other.clone();
        refused(
            move |h, _| h.x5t_s256 = Some(o),
            700027,
            "not registered on application",
        );
        refused(
            |h, _| h.x5t = Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 20])),
            700027,
            "0707070707",
        );
        refused(|h, _| h.x5t_s256 = None, 700027, "names no certificate");
    }

    #[test]
    fn an_assertion_with_a_wrong_signature_is_refused() {
        let (dir, id) = fresh();
        let now = Utc::now();
        let a = assertion(
            dir.path(),
            &id,
            Algorithm::PS256,
            Thumb::Sha256,
            now,
            |_, _| {},
        );
        // The signature of one assertion under the claims of another.
        let b = assertion(
            dir.path(),
            &id,
            Algorithm::PS256,
            Thumb::Sha256,
            now,
            |_, _| {},
        );
        let mut parts: Vec<&str> = a.split('.').collect();
        parts[1] = b.split('.').nth(1).unwrap();
        let forged = parts.join(".");
        assert_entra(
            &ask(&id, &assertion_form(&id, &forged), now),
            401,
            "invalid_client",
            700027,
            "signature validation",
        );
        let hs = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims_of(&a),
            &EncodingKey::from_secret(b"guess"),
        )
        .unwrap();
        assert_entra(
            &ask(&id, &assertion_form(&id, &hs), now),
            401,
            "invalid_client",
            700027,
            "RS256 or PS256",
        );
    }

    fn graph_error(result: Result<Caller, Answer>) -> (u16, String) {
        let answer = result.unwrap_err();
        assert!(answer
            .headers
            .iter()
            .any(|(n, v)| n == "WWW-Authenticate" && v.starts_with("Bearer ")));
        let b = body(&answer);
        assert_eq!(b["error"]["code"], "InvalidAuthenticationToken", "{b}");
        (
            answer.status,
            b["error"]["message"].as_str().unwrap().to_owned(),
        )
    }

    #[test]
    fn verify_refuses_missing_malformed_foreign_and_expired_tokens() {
        let (_dir, id) = fresh();
        let now = Utc::now();
        let token = access_token(&ask(&id, &secret_form(&id), now));
        let bearer = format!("Bearer {token}");

        assert_eq!(
            graph_error(id.verify(None, now)),
            (401, "Access token is empty.".to_owned())
        );
        assert_eq!(
            graph_error(id.verify(Some("Bearer "), now)).1,
            "Access token is empty."
        );
        assert!(graph_error(id.verify(Some("Bearer abc"), now))
            .1
            .starts_with("IDX14100: JWT is not well formed"));

        let foreign = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims_of(&token),
            &EncodingKey::from_secret(&[1u8; 32]),
        )
        .unwrap();
        assert!(
            graph_error(id.verify(Some(&format!("Bearer {foreign}")), now))
                .1
                .contains("Invalid signature")
        );

        let later = now + chrono::Duration::seconds(3599);
        assert_eq!(
            graph_error(id.verify(Some(&bearer), later)).1,
            "Access token has expired or is not yet valid."
        );
        assert!(id
            .verify(Some(&bearer), later - chrono::Duration::seconds(1))
            .is_ok());
    }

    #[test]
    fn expire_tokens_revokes_every_token_issued_so_far() {
        let (_dir, id) = fresh();
        let now = Utc::now();
        let old = access_token(&ask(&id, &secret_form(&id), now));
        id.expire_tokens().unwrap();
        assert_eq!(
            graph_error(id.verify(Some(&format!("Bearer {old}")), now)).1,
            "Access token has expired or is not yet valid."
        );
        let new = access_token(&ask(&id, &secret_form(&id), now));
        id.verify(Some(&format!("Bearer {new}")), now).unwrap();
    }

    #[test]
    fn granted_roles_and_lifetime_shape_new_tokens() {
        let (_dir, id) = fresh();
        id.set_roles(vec![
            "contacts.readwrite".into(),
            "Calendars.ReadWrite".into(),
        ])
        .unwrap();
        let err = id
            .set_roles(vec!["Contacts.Everything".into()])
            .unwrap_err();
        assert!(err.to_string().contains("Contacts.Everything"), "{err}");
        assert_eq!(id.roles(), ["Contacts.ReadWrite", "Calendars.ReadWrite"]);
        id.set_token_lifetime(5).unwrap();
        assert!(id.set_token_lifetime(0).is_err());
        let now = Utc::now();
        let answer = ask(&id, &secret_form(&id), now);
        assert_eq!(body(&answer)["expires_in"], 5);
        let bearer = format!("Bearer {}", access_token(&answer));
        let caller = id.verify(Some(&bearer), now).unwrap();
        assert_eq!(caller.roles, ["Contacts.ReadWrite", "Calendars.ReadWrite"]);
        assert!(id
            .verify(Some(&bearer), now + chrono::Duration::seconds(5))
            .is_err());
    }

    #[test]
    fn the_identity_survives_a_restart() {
        let (dir, id) = fresh();
        id.set_roles(vec!["Mail.Read".into()]).unwrap();
        id.set_token_lifetime(600).unwrap();
        id.expire_tokens().unwrap();
        let now = Utc::now();
        let token = access_token(&ask(&id, &secret_form(&id), now));
        let cert = std::fs::read(id.certificate_path()).unwrap();

        let again = Identity::load_or_create(dir.path()).unwrap();
        assert_eq!(again.tenant_id(), id.tenant_id());
        assert_eq!(again.client_id(), id.client_id());
        assert_eq!(again.client_secret(), id.client_secret());
        assert_eq!(again.service_principal_id(), id.service_principal_id());
        assert_eq!(again.roles(), ["Mail.Read"]);
        assert_eq!(again.token_lifetime(), 600);
        assert_eq!(std::fs::read(again.certificate_path()).unwrap(), cert);
        // Same signing key and generation: a token from before the restart still works.
        again.verify(Some(&format!("Bearer {token}")), now).unwrap();
        let a = assertion(
            dir.path(),
            &again,
            Algorithm::RS256,
            Thumb::Sha1,
            now,
            |_, _| {},
        );
        access_token(&ask(&again, &assertion_form(&again, &a), now));

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for file in [IDENTITY_FILE, APP_KEY_FILE] {
                let mode = std::fs::metadata(dir.path().join(file))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{file}");
            }
        }
    }

    #[test]
    fn secrets_and_ids_look_like_entra_ones() {
        let (_dir, id) = fresh();
        let secret = id.client_secret();
        assert_eq!(secret.len(), 40);
        assert_eq!(&secret[3..6], "8Q~");
        for guid in [id.tenant_id(), id.client_id()] {
            assert!(uuid::Uuid::parse_str(&guid).is_ok(), "{guid}");
        }
        assert!(id.is_tenant(&id.tenant_id().to_uppercase()));
        assert!(!id.is_tenant("common"));
    }

    #[test]
    fn the_openid_configuration_points_msal_at_this_tenant() {
        let (_dir, id) = fresh();
        let tenant = id.tenant_id();
        let config = id.openid_configuration("https://127.0.0.1:8443/contoso.test");
        assert_eq!(
            config["token_endpoint"],
            format!("https://127.0.0.1:8443/{tenant}/oauth2/v2.0/token")
        );
        assert_eq!(
            config["authorization_endpoint"],
            format!("https://127.0.0.1:8443/{tenant}/oauth2/v2.0/authorize")
        );
        assert_eq!(
            config["issuer"],
            format!("https://127.0.0.1:8443/{tenant}/v2.0")
        );
        assert!(config["jwks_uri"].is_string());
    }
}
