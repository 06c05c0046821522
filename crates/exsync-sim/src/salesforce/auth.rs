//! OAuth 2.0 for the simulated org: the connected app's RSA key (JWT bearer), client
//! credentials, and the access tokens handed out.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::Value;

/// The connected app's RSA private key in the data directory. A PEM placed there before start
/// is used instead of generating one, which is slow in debug builds.
pub const JWT_KEY_FILE: &str = "jwt-key.pem";
pub(super) const JWT_PUBLIC_FILE: &str = "jwt-public.pem";

/// How long an access token lives (Salesforce's default session timeout is 2 hours).
pub(super) const TOKEN_LIFETIME_MINUTES: i64 = 120;

/// The connected app's key pair. The private half is only ever written to the data directory
/// for the clients under test; it is never logged.
pub(super) struct JwtKeys {
    pub private_key_path: PathBuf,
    pub public_key_path: PathBuf,
    decoding: DecodingKey,
}

impl JwtKeys {
    /// Uses `dir/jwt-key.pem` (PKCS#1 or PKCS#8) when present; otherwise generates a 2048-bit
    /// key once (slow in unoptimised builds) and stores it with mode 0600.
    pub(super) fn load_or_create(dir: &Path) -> anyhow::Result<JwtKeys> {
        let private_key_path = dir.join(JWT_KEY_FILE);
        let key = if private_key_path.exists() {
            let pem = std::fs::read_to_string(&private_key_path)
                .with_context(|| format!("reading {}", private_key_path.display()))?;
            RsaPrivateKey::from_pkcs8_pem(&pem)
                .or_else(|_| RsaPrivateKey::from_pkcs1_pem(&pem))
                .with_context(|| {
                    format!("{} is not an RSA private key", private_key_path.display())
                })?
        } else {
            let pem = generate_key_pem()?;
            crate::cli_support::write_private(&private_key_path, pem.as_bytes())?;
            RsaPrivateKey::from_pkcs8_pem(&pem).context("re-reading the generated JWT key")?
        };
        let public = RsaPublicKey::from(&key)
            .to_public_key_pem(LineEnding::LF)
            .context("encoding the JWT public key")?;
        let public_key_path = dir.join(JWT_PUBLIC_FILE);
        std::fs::write(&public_key_path, &public)
            .with_context(|| format!("writing {}", public_key_path.display()))?;
        let decoding =
            DecodingKey::from_rsa_pem(public.as_bytes()).context("loading the JWT public key")?;
        Ok(JwtKeys {
            private_key_path,
            public_key_path,
            decoding,
        })
    }
}

/// A fresh 2048-bit RSA key as PKCS#8 PEM, for placing in a data directory before start
/// (tests share one key instead of generating one per simulator).
pub fn generate_key_pem() -> anyhow::Result<String> {
    let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).context("generating the JWT key")?;
    Ok(key
        .to_pkcs8_pem(LineEnding::LF)
        .context("encoding the JWT key")?
        .to_string())
}

/// Why a token request was refused: OAuth's `error` and `error_description`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OAuthError {
    pub error: &'static str,
    pub description: String,
}

fn oauth(error: &'static str, description: impl Into<String>) -> OAuthError {
    OAuthError {
        error,
        description: description.into(),
    }
}

/// The checks of a JWT bearer assertion. Returns the `sub` claim (a username).
pub(super) fn check_assertion(
    keys: &JwtKeys,
    assertion: &str,
    client_id: &str,
    audiences: &[String],
    now: DateTime<Utc>,
) -> Result<String, OAuthError> {
    let mut validation = Validation::new(Algorithm::RS256);
    // exp arrives as a number or (from some clients) a numeric string, and aud takes several
    // accepted forms, so both are checked below rather than by the library.
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Value>(assertion, &keys.decoding, &validation)
        .map_err(|e| oauth("invalid_grant", format!("invalid assertion: {e}")))?
        .claims;
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    if text("iss") != client_id {
        return Err(oauth("invalid_client_id", "client identifier invalid"));
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => audiences
            .iter()
            .any(|x| x.trim_end_matches('/') == a.trim_end_matches('/')),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(|a| {
            audiences
                .iter()
                .any(|x| x.trim_end_matches('/') == a.trim_end_matches('/'))
        }),
        _ => false,
    };
    if !aud_ok {
        return Err(oauth("invalid_grant", "audience is invalid"));
    }
    let exp = match claims.get("exp") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse::<i64>().ok(),
        _ => None,
    };
    match exp {
        None => return Err(oauth("invalid_grant", "expiration is invalid")),
        Some(exp) if exp < now.timestamp() => {
            return Err(oauth("invalid_grant", "expired authorization code"))
        }
        Some(_) => {}
    }
    let sub = text("sub");
    if sub.is_empty() {
        return Err(oauth("invalid_grant", "user ID or password incorrect"));
    }
    Ok(sub)
}

/// Client id and secret from HTTP Basic or from the form.
pub(super) fn client_credentials(
    authorization: Option<&str>,
    form: &HashMap<String, String>,
) -> Option<(String, String)> {
    if let Some(basic) = authorization.and_then(|h| h.strip_prefix("Basic ")) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (id, secret) = text.split_once(':')?;
        return Some((id.to_owned(), secret.to_owned()));
    }
    Some((
        form.get("client_id")?.clone(),
        form.get("client_secret")?.clone(),
    ))
}

#[derive(Debug, Clone)]
pub(super) struct Session {
    pub user_id: String,
    pub expires: DateTime<Utc>,
}

/// Access tokens in force. They live in memory only: a restarted org makes clients log in
/// again, as an expired session would.
#[derive(Default)]
pub(super) struct Sessions {
    by_token: HashMap<String, Session>,
}

impl Sessions {
    pub(super) fn issue(&mut self, org_id: &str, user_id: &str, now: DateTime<Utc>) -> String {
        let token = format!(
            "{}!{}",
            &org_id[..15.min(org_id.len())],
            super::store::new_secret(96)
        );
        let expires = now + Duration::minutes(TOKEN_LIFETIME_MINUTES);
        self.by_token.retain(|_, s| s.expires > now);
        self.by_token.insert(
            token.clone(),
            Session {
                user_id: user_id.to_owned(),
                expires,
            },
        );
        token
    }

    pub(super) fn check(&self, token: &str, now: DateTime<Utc>) -> Option<&Session> {
        self.by_token.get(token).filter(|s| s.expires > now)
    }

    pub(super) fn expire_all(&mut self) -> usize {
        let n = self.by_token.len();
        self.by_token.clear();
        n
    }
}
