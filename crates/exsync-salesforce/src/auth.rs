//! The JWT bearer assertion: RS256 over `{iss, sub, aud, exp}`.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::config::Secret;
use crate::error::{Error, Result};

/// Assertions are valid this long; Salesforce accepts at most a few minutes.
const ASSERTION_LIFETIME_SECS: i64 = 180;

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
}

/// Signs an assertion for `username`. The key is read from PEM (PKCS#1 or PKCS#8) and never
/// appears in an error or a log line.
pub(crate) fn jwt_assertion(
    client_id: &str,
    username: &str,
    audience: &str,
    private_key_pem: &Secret,
) -> Result<String> {
    let key = EncodingKey::from_rsa_pem(private_key_pem.expose())
        .map_err(|_| Error::Config("the JWT private key is not an RSA key in PEM form".into()))?;
    let claims = Claims {
        iss: client_id,
        sub: username,
        aud: audience,
        exp: chrono::Utc::now().timestamp() + ASSERTION_LIFETIME_SECS,
    };
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key)
        .map_err(|e| Error::Config(format!("signing the JWT assertion failed: {e}")))
}
