//! The certificate credential: the certificate (its thumbprints and expiry) and the client
//! assertion signed with its key, as Entra's certificate credentials take it.

use std::fmt;

use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Serialize;
use x509_parser::pem::Pem;

use crate::config::{AssertionAlgorithm, Secret};
use crate::error::{Error, Result};

/// Assertions are valid this long after `nbf`; Entra takes at most 10 minutes.
pub(crate) const ASSERTION_LIFETIME_SECS: i64 = 300;
/// An admin is warned this many days before the certificate expires.
pub const CERTIFICATE_WARNING_DAYS: i64 = 30;

/// The app's certificate and private key, checked to belong together.
#[derive(Clone)]
pub struct Certificate {
    key: EncodingKey,
    algorithm: AssertionAlgorithm,
    /// base64url SHA-1 of the certificate's DER (`x5t`).
    x5t: String,
    /// base64url SHA-256 of the certificate's DER (`x5t#S256`).
    x5t_s256: String,
    not_after: DateTime<Utc>,
    subject: String,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out; the thumbprint is public (it is in every assertion header).
        f.debug_struct("Certificate")
            .field("subject", &self.subject)
            .field("x5t#S256", &self.x5t_s256)
            .field("not_after", &self.not_after)
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: i64,
    iat: i64,
    exp: i64,
}

fn pem_blocks(pem: &[u8]) -> Vec<Pem> {
    // A block that does not parse ends the scan: what came before is still usable.
    Pem::iter_from_buffer(pem).map_while(|b| b.ok()).collect()
}

fn to_pem_text(block: &Pem) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(&block.contents);
    let mut text = format!("-----BEGIN {}-----\n", block.label);
    for line in b64.as_bytes().chunks(64) {
        text.push_str(&String::from_utf8_lossy(line));
        text.push('\n');
    }
    text.push_str(&format!("-----END {}-----\n", block.label));
    text
}

fn digest_b64(algorithm: &'static ring::digest::Algorithm, data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ring::digest::digest(algorithm, data))
}

/// When the certificate in `certificate_pem` (the first of a chain) expires, read without its
/// key: a check can name the date even when the key is missing or wrong.
pub fn certificate_expiry(certificate_pem: &[u8]) -> Result<DateTime<Utc>> {
    let der = pem_blocks(certificate_pem)
        .into_iter()
        .find(|b| b.label == "CERTIFICATE")
        .ok_or_else(|| Error::Config("the certificate file holds no PEM CERTIFICATE".into()))?
        .contents;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| Error::Config(format!("the certificate does not parse: {e}")))?;
    DateTime::<Utc>::from_timestamp(cert.validity().not_after.timestamp(), 0)
        .ok_or_else(|| Error::Config("the certificate's expiry is out of range".into()))
}

impl Certificate {
    /// Reads the certificate (the first of a PEM chain) and its RSA key (PKCS#8 or PKCS#1,
    /// possibly in the same PEM), and checks the key signs what the certificate's public key
    /// verifies. Error texts never quote the key.
    pub fn from_pem(
        certificate_pem: &[u8],
        private_key_pem: &Secret,
        algorithm: AssertionAlgorithm,
    ) -> Result<Certificate> {
        let der = pem_blocks(certificate_pem)
            .into_iter()
            .find(|b| b.label == "CERTIFICATE")
            .ok_or_else(|| Error::Config("the certificate file holds no PEM CERTIFICATE".into()))?
            .contents;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| Error::Config(format!("the certificate does not parse: {e}")))?;
        let not_after =
            DateTime::<Utc>::from_timestamp(cert.validity().not_after.timestamp(), 0)
                .ok_or_else(|| Error::Config("the certificate's expiry is out of range".into()))?;
        let subject = cert.subject().to_string();
        let public = DecodingKey::from_rsa_der(&cert.public_key().subject_public_key.data);

        let blocks = pem_blocks(private_key_pem.expose());
        if blocks.iter().any(|b| b.label.contains("ENCRYPTED")) {
            return Err(Error::Config(
                "the private key is encrypted: store it unencrypted in exsync's vault, which \
                 encrypts it"
                    .into(),
            ));
        }
        let key_block = blocks
            .iter()
            .find(|b| b.label == "PRIVATE KEY" || b.label == "RSA PRIVATE KEY")
            .ok_or_else(|| {
                Error::Config("the private key file holds no PEM RSA private key".into())
            })?;
        let key = EncodingKey::from_rsa_pem(to_pem_text(key_block).as_bytes())
            .map_err(|_| Error::Config("the private key is not an RSA key in PEM form".into()))?;

        // A key that does not belong to the certificate would only show as AADSTS700027 at
        // the first token request; say so now, with the cause.
        let probe = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &ProbeClaims {}, &key)
            .map_err(|_| Error::Config("the private key cannot sign (not RSA?)".into()))?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        if jsonwebtoken::decode::<serde_json::Value>(&probe, &public, &validation).is_err() {
            return Err(Error::Config(format!(
                "the private key does not belong to the certificate {subject}"
            )));
        }

        Ok(Certificate {
            key,
            algorithm,
            x5t: digest_b64(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der),
            x5t_s256: digest_b64(&ring::digest::SHA256, &der),
            not_after,
            subject,
        })
    }

    /// When the certificate expires; Entra refuses its assertions after that.
    pub fn not_after(&self) -> DateTime<Utc> {
        self.not_after
    }

    /// The certificate's subject, to name it to the admin.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The SHA-256 thumbprint as `x5t#S256` carries it (base64url).
    pub fn x5t_s256(&self) -> &str {
        &self.x5t_s256
    }

    /// The SHA-1 thumbprint as `x5t` carries it (base64url); the Azure portal shows it in hex.
    pub fn x5t(&self) -> &str {
        &self.x5t
    }

    /// Whether the certificate expires within [`CERTIFICATE_WARNING_DAYS`] of `now` (or has).
    pub fn expires_soon(&self, now: DateTime<Utc>) -> bool {
        self.not_after - now <= chrono::Duration::days(CERTIFICATE_WARNING_DAYS)
    }

    /// A client assertion for `client_id` at the token endpoint `token_url`, valid from `now`
    /// for five minutes, with a fresh `jti`.
    pub(crate) fn assertion(
        &self,
        client_id: &str,
        token_url: &str,
        now: DateTime<Utc>,
    ) -> Result<String> {
        let mut header = match self.algorithm {
            AssertionAlgorithm::Ps256 => {
                let mut h = Header::new(Algorithm::PS256);
                h.x5t_s256 = Some(self.x5t_s256.clone());
                h
            }
            AssertionAlgorithm::Rs256 => {
                let mut h = Header::new(Algorithm::RS256);
                h.x5t = Some(self.x5t.clone());
                h
            }
        };
        header.typ = Some("JWT".into());
        let now = now.timestamp();
        let claims = Claims {
            aud: token_url,
            iss: client_id,
            sub: client_id,
            jti: uuid::Uuid::new_v4().to_string(),
            nbf: now,
            iat: now,
            exp: now + ASSERTION_LIFETIME_SECS,
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| Error::Config(format!("signing the client assertion failed: {e}")))
    }
}

#[derive(Serialize)]
struct ProbeClaims {}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::Value;

    /// A self-signed certificate for the test key, valid until `not_after`.
    pub(crate) fn certificate_pem(not_after: (i32, u8, u8)) -> String {
        let key = rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(
            exsync_testkit::keys::jwt_key_pem(),
            &rcgen::PKCS_RSA_SHA256,
        )
        .unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "exsync test app");
        params.distinguished_name = dn;
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        params.self_signed(&key).unwrap().pem()
    }

    pub(crate) fn key() -> Secret {
        Secret::new(exsync_testkit::keys::jwt_key_pem())
    }

    fn decode(token: &str, cert_pem: &str) -> (Header, Value) {
        let header = jsonwebtoken::decode_header(token).unwrap();
        let der = pem_blocks(cert_pem.as_bytes()).remove(0).contents;
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let public = DecodingKey::from_rsa_der(&cert.public_key().subject_public_key.data);
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&["https://login.test/t/oauth2/v2.0/token"]);
        let data = jsonwebtoken::decode::<Value>(token, &public, &validation).unwrap();
        (header, data.claims)
    }

    fn thumbprint(alg: &'static ring::digest::Algorithm, cert_pem: &str) -> String {
        let der = pem_blocks(cert_pem.as_bytes()).remove(0).contents;
        digest_b64(alg, &der)
    }

    #[test]
    fn ps256_assertion_names_the_sha256_thumbprint_and_the_claims() {
        let pem = certificate_pem((2099, 1, 1));
        let cert =
            Certificate::from_pem(pem.as_bytes(), &key(), AssertionAlgorithm::Ps256).unwrap();
        let now = Utc::now();
        let token = cert
            .assertion("client-1", "https://login.test/t/oauth2/v2.0/token", now)
            .unwrap();
        let (header, claims) = decode(&token, &pem);
        assert_eq!(header.alg, Algorithm::PS256);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(
            header.x5t_s256.as_deref(),
            Some(thumbprint(&ring::digest::SHA256, &pem).as_str())
        );
        assert_eq!(header.x5t, None);
        assert_eq!(claims["aud"], "https://login.test/t/oauth2/v2.0/token");
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["sub"], "client-1");
        let jti = claims["jti"].as_str().unwrap();
        assert!(uuid::Uuid::parse_str(jti).is_ok(), "{jti}");
        let nbf = claims["nbf"].as_i64().unwrap();
        assert_eq!(nbf, now.timestamp());
        assert_eq!(claims["iat"].as_i64().unwrap(), nbf);
        assert_eq!(claims["exp"].as_i64().unwrap(), nbf + 300);
        // Each assertion has its own id.
        let again = cert
            .assertion("client-1", "https://login.test/t/oauth2/v2.0/token", now)
            .unwrap();
        assert_ne!(decode(&again, &pem).1["jti"], claims["jti"]);
    }

    #[test]
    fn rs256_assertion_names_the_sha1_thumbprint() {
        let pem = certificate_pem((2099, 1, 1));
        let cert =
            Certificate::from_pem(pem.as_bytes(), &key(), AssertionAlgorithm::Rs256).unwrap();
        let token = cert
            .assertion("c", "https://login.test/t/oauth2/v2.0/token", Utc::now())
            .unwrap();
        let (header, claims) = decode(&token, &pem);
        assert_eq!(header.alg, Algorithm::RS256);
        let sha1 = thumbprint(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &pem);
        assert_eq!(header.x5t.as_deref(), Some(sha1.as_str()));
        assert_eq!(sha1.len(), 27); // 20 bytes in base64url without padding
        assert_eq!(header.x5t_s256, None);
        assert_eq!(claims["iss"], "c");
    }

    #[test]
    fn combined_pem_expiry_and_a_foreign_key() {
        let pem = certificate_pem((2030, 6, 1));
        let combined = format!("{}{pem}", exsync_testkit::keys::jwt_key_pem());
        let cert = Certificate::from_pem(
            combined.as_bytes(),
            &Secret::new(combined.clone()),
            AssertionAlgorithm::Ps256,
        )
        .unwrap();
        assert_eq!(cert.not_after().to_rfc3339(), "2030-06-01T00:00:00+00:00");
        assert_eq!(
            certificate_expiry(pem.as_bytes()).unwrap(),
            cert.not_after()
        );
        assert!(certificate_expiry(b"no certificate").is_err());
        let before = DateTime::parse_from_rfc3339("2030-04-01T00:00:00Z").unwrap();
        let near = DateTime::parse_from_rfc3339("2030-05-10T00:00:00Z").unwrap();
        assert!(!cert.expires_soon(before.into()));
        assert!(cert.expires_soon(near.into()));
        // Debug shows the certificate, never the key.
        let debug = format!("{cert:?}");
        assert!(debug.contains("exsync test app") && !debug.contains("PRIVATE"));

        // Another key: refused at load, not at the first token request.
        let other = rsa_other_key();
        let err = Certificate::from_pem(pem.as_bytes(), &other, AssertionAlgorithm::Ps256)
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not belong"), "{err}");
        assert!(Certificate::from_pem(b"junk", &key(), AssertionAlgorithm::Ps256).is_err());
        let err = Certificate::from_pem(
            pem.as_bytes(),
            &Secret::new("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"),
            AssertionAlgorithm::Ps256,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("encrypted"), "{err}");
    }

    /// The certificate's own test key is shared by the binary; another one is generated once.
    fn rsa_other_key() -> Secret {
        use std::sync::OnceLock;
        static OTHER: OnceLock<String> = OnceLock::new();
        let pem = OTHER.get_or_init(|| {
            // rcgen cannot make RSA keys; the simulator's generator can.
            exsync_sim::salesforce::generate_key_pem().unwrap()
        });
        Secret::new(pem.as_bytes())
    }
}
