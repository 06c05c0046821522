//! The Entra identity platform as the app sees it: its tenant, its credentials (a client
//! secret and a certificate), the token endpoint with client credentials, the OpenID
//! configuration msal discovers, and the check of the access tokens Graph calls carry.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::call::Answer;

/// The app that called Graph, as its access token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    pub(crate) app_id: String,
    /// The tenant-wide application permissions (`roles` claim); empty unless granted.
    pub(crate) roles: Vec<String>,
}

/// The tenant and its one app registration, persisted in the data directory.
pub(crate) struct Identity {
    dir: PathBuf,
    state: Mutex<()>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets and keys are deliberately left out.
        f.debug_struct("Identity").field("dir", &self.dir).finish()
    }
}

impl Identity {
    /// Reads `dir/identity.json`, `app-cert.pem` and `app-key.pem`, creating what is missing.
    pub(crate) fn load_or_create(dir: &Path) -> anyhow::Result<Identity> {
        Ok(Identity {
            dir: dir.to_path_buf(),
            state: Mutex::new(()),
        })
    }

    pub(crate) fn tenant_id(&self) -> String {
        String::new()
    }

    pub(crate) fn client_id(&self) -> String {
        String::new()
    }

    pub(crate) fn client_secret(&self) -> String {
        String::new()
    }

    pub(crate) fn certificate_path(&self) -> PathBuf {
        self.dir.join("app-cert.pem")
    }

    pub(crate) fn private_key_path(&self) -> PathBuf {
        self.dir.join("app-key.pem")
    }

    /// True for the tenant id or one of the tenant's domains, as an authority path segment.
    pub(crate) fn is_tenant(&self, segment: &str) -> bool {
        let _ = segment;
        false
    }

    /// Adds a domain the tenant answers to in authority URLs (besides its id).
    pub(crate) fn add_domain(&self, domain: &str) {
        let _ = domain;
    }

    /// `<authority>/v2.0/.well-known/openid-configuration`.
    pub(crate) fn openid_configuration(&self, authority_url: &str) -> Value {
        json!({ "authority": authority_url })
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
        let _ = (token_url, tenant_in_path, form, authorization, now);
        Answer::with(400, json!({"error": "invalid_request"})).header("Cache-Control", "no-store")
    }

    /// The caller of a Graph request, from its `Authorization` header.
    pub(crate) fn verify(
        &self,
        authorization: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Caller, Answer> {
        let _ = (authorization, now);
        Err(Answer::error(
            401,
            "InvalidAuthenticationToken",
            "Access token is empty.",
        ))
    }

    /// Grants tenant-wide application permissions (replacing the previous grant).
    pub(crate) fn set_roles(&self, roles: Vec<String>) -> anyhow::Result<()> {
        let _ = roles;
        Ok(())
    }

    pub(crate) fn roles(&self) -> Vec<String> {
        Vec::new()
    }

    /// Lifetime of access tokens issued from now on, in seconds.
    pub(crate) fn set_token_lifetime(&self, secs: u64) -> anyhow::Result<()> {
        let _ = secs;
        Ok(())
    }

    /// Makes every access token issued so far fail with "expired".
    pub(crate) fn expire_tokens(&self) -> anyhow::Result<()> {
        Ok(())
    }
}
