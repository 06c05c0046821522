//! App-only tokens from Entra ID (client credentials with a certificate assertion or a
//! secret), cached and renewed before they expire. One renewal is in flight at a time: other
//! callers wait for it rather than each asking Entra.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::time::Instant;

use crate::assertion::Certificate;
use crate::config::{Credential, GraphConfig, Secret};
use crate::error::{AuthError, Error, Result};
use crate::transport::{host_of, Failure, Http};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Tokens are renewed this long before they expire.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// An access token. Its text is shown only to the request that carries it.
#[derive(Clone)]
pub struct AccessToken {
    value: Arc<str>,
    /// When Entra said it expires.
    expires_at: DateTime<Utc>,
    renew_at: Instant,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl AccessToken {
    pub(crate) fn secret(&self) -> &str {
        &self.value
    }

    /// When the token expires.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }

    /// The application roles the token carries (`Contacts.ReadWrite`…): tenant-wide Entra
    /// permissions, which reach every mailbox whatever the RBAC scope says. Read from the
    /// token without checking its signature (it came straight from Entra over TLS); empty
    /// for a token that is not a JWT.
    pub fn roles(&self) -> Vec<String> {
        let payload = self.value.split('.').nth(1).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .and_then(|claims| {
                claims.get("roles").and_then(Value::as_array).map(|roles| {
                    roles
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
            })
            .unwrap_or_default()
    }
}

enum Method {
    Certificate(Certificate),
    Secret(Secret),
}

/// Obtains and caches the tenant's app token.
pub(crate) struct TokenClient {
    token_url: String,
    scope: String,
    client_id: String,
    method: Method,
    /// Held while a token is fetched, so concurrent callers wait for that one.
    cache: tokio::sync::Mutex<Option<AccessToken>>,
}

impl TokenClient {
    pub(crate) fn new(config: &GraphConfig) -> Result<TokenClient> {
        let method = match &config.credential {
            Credential::Certificate {
                certificate_pem,
                private_key_pem,
                algorithm,
            } => Method::Certificate(Certificate::from_pem(
                certificate_pem,
                private_key_pem,
                *algorithm,
            )?),
            Credential::Secret(secret) => {
                if std::str::from_utf8(secret.expose()).is_err() {
                    return Err(Error::Config("the client secret is not UTF-8 text".into()));
                }
                Method::Secret(secret.clone())
            }
        };
        Ok(TokenClient {
            token_url: config.cloud.token_url(&config.tenant_id),
            scope: config.cloud.scope(),
            client_id: config.client_id.clone(),
            method,
            cache: tokio::sync::Mutex::new(None),
        })
    }

    pub(crate) fn certificate(&self) -> Option<&Certificate> {
        match &self.method {
            Method::Certificate(c) => Some(c),
            Method::Secret(_) => None,
        }
    }

    /// The cached token, or a new one when there is none or it is due for renewal.
    pub(crate) async fn get(&self, http: &Http) -> Result<AccessToken> {
        let mut slot = self.cache.lock().await;
        if let Some(token) = slot.as_ref() {
            if Instant::now() < token.renew_at {
                return Ok(token.clone());
            }
        }
        let token = self.fetch(http).await?;
        *slot = Some(token.clone());
        Ok(token)
    }

    /// Drops `stale` from the cache (Graph refused it); a token another caller already
    /// replaced it with stays.
    pub(crate) async fn forget(&self, stale: &AccessToken) {
        let mut slot = self.cache.lock().await;
        if slot
            .as_ref()
            .is_some_and(|t| Arc::ptr_eq(&t.value, &stale.value))
        {
            *slot = None;
        }
    }

    async fn fetch(&self, http: &Http) -> Result<AccessToken> {
        let url = http.check(&self.token_url)?;
        let host = host_of(&url);
        let mut attempt = 1;
        loop {
            // A new assertion per attempt: each carries its own jti and times.
            let mut form: Vec<(&str, String)> = vec![
                ("grant_type", "client_credentials".into()),
                ("client_id", self.client_id.clone()),
                ("scope", self.scope.clone()),
            ];
            match &self.method {
                Method::Certificate(cert) => {
                    form.push(("client_assertion_type", JWT_BEARER.into()));
                    form.push((
                        "client_assertion",
                        cert.assertion(&self.client_id, &self.token_url, Utc::now())?,
                    ));
                }
                Method::Secret(secret) => form.push((
                    "client_secret",
                    String::from_utf8_lossy(secret.expose()).into_owned(),
                )),
            }
            let request = http
                .request(reqwest::Method::POST, url.clone())
                .header("Accept", "application/json")
                .form(&form);
            drop(form);
            let retryable = match http.exchange(request, &host).await {
                Ok(reply) if reply.status == 200 => return self.read(&reply.body),
                // Entra's own trouble is worth another try; a refusal is not.
                Ok(reply) if matches!(reply.status, 429 | 500 | 502 | 503 | 504) => {
                    let wait = reply
                        .headers
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| {
                            crate::throttle::parse_retry_after(v, std::time::SystemTime::now())
                        });
                    if attempt >= http.limits.max_attempts
                        || wait.is_some_and(|w| w > http.limits.max_wait)
                    {
                        let mut error = AuthError::from_body(
                            reply.status,
                            &String::from_utf8_lossy(&reply.body),
                        );
                        self.redact(&mut error);
                        return Err(error.into());
                    }
                    wait
                }
                Ok(reply) => {
                    let mut error =
                        AuthError::from_body(reply.status, &String::from_utf8_lossy(&reply.body));
                    self.redact(&mut error);
                    tracing::warn!(
                        status = reply.status,
                        error = %error.error,
                        aadsts = error.aadsts.unwrap_or(0),
                        "Entra ID refused the token request"
                    );
                    return Err(error.into());
                }
                // The form carries the credential, but Entra only ever answers it once: a
                // repeat is harmless.
                Err(Failure::NotSent(e) | Failure::Lost(e))
                    if attempt < http.limits.max_attempts =>
                {
                    tracing::warn!(error = %e, attempt, "token request failed; retrying");
                    None
                }
                Err(f) => return Err(f.into_error()),
            };
            let wait = retryable.unwrap_or_else(|| http.backoff(attempt));
            attempt += 1;
            tokio::time::sleep(wait).await;
        }
    }

    /// Entra never repeats a credential, but a proxy or a wrong endpoint answering with the
    /// request it got would: the secret is cut out of whatever text an error keeps.
    fn redact(&self, error: &mut AuthError) {
        if let Method::Secret(secret) = &self.method {
            let raw = String::from_utf8_lossy(secret.expose()).into_owned();
            // As sent in the form, too.
            let encoded: String = url::form_urlencoded::byte_serialize(secret.expose()).collect();
            for form in [raw, encoded] {
                if !form.is_empty() && error.description.contains(&form) {
                    error.description = error.description.replace(&form, "[redacted]");
                }
            }
        }
    }

    fn read(&self, body: &[u8]) -> Result<AccessToken> {
        let answer: Value = serde_json::from_slice(body)
            .map_err(|e| Error::Decode(format!("token answer is not JSON: {e}")))?;
        let value = answer
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Decode("token answer without access_token".into()))?;
        // Entra sends a number; ADFS and older endpoints a string.
        let expires_in = match answer.get("expires_in") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .ok_or_else(|| Error::Decode("token answer without expires_in".into()))?;
        let lifetime = Duration::from_secs(expires_in);
        // Renew five minutes ahead; a short-lived token (under ten minutes) at half its life.
        let renew_after = if lifetime > 2 * RENEW_BEFORE {
            lifetime - RENEW_BEFORE
        } else {
            lifetime / 2
        };
        let expires_at = Utc::now()
            + chrono::Duration::from_std(lifetime).unwrap_or_else(|_| chrono::Duration::zero());
        tracing::debug!(%expires_at, "obtained a Graph token");
        Ok(AccessToken {
            value: Arc::from(value),
            expires_at,
            renew_at: Instant::now() + renew_after,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn an_echoed_secret_is_cut_out_of_the_error() {
        let config = GraphConfig::new(
            "t",
            "c",
            crate::Cloud::Global,
            Credential::Secret(Secret::new("a~b+c/d")),
        );
        let tokens = TokenClient::new(&config).unwrap();
        let mut error = AuthError::from_body(
            400,
            "<html>bad request: client_secret=a%7Eb%2Bc%2Fd or a~b+c/d</html>",
        );
        tokens.redact(&mut error);
        assert!(!error.description.contains("a%7Eb") && !error.description.contains("a~b"));
        assert!(
            error.description.contains("[redacted]"),
            "{}",
            error.description
        );
    }

    #[test]
    fn token_debug_hides_the_value_and_roles_are_read() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"roles":["Contacts.ReadWrite","Calendars.Read"]}"#);
        let token = AccessToken {
            value: Arc::from(format!("eyJhbGciOiJub25lIn0.{payload}.sig")),
            expires_at: Utc::now(),
            renew_at: Instant::now(),
        };
        assert_eq!(token.roles(), ["Contacts.ReadWrite", "Calendars.Read"]);
        assert!(!format!("{token:?}").contains("eyJ"));
        let opaque = AccessToken {
            value: Arc::from("opaque"),
            ..token
        };
        assert!(opaque.roles().is_empty());
    }
}
