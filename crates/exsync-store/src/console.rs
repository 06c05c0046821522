//! Records behind the admin console and the secrets vault: encrypted secrets, local admin
//! accounts, API tokens, sessions and the audit log. The store keeps only hashes and
//! ciphertext; their `Debug` output leaves those out so they never reach a log.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What an admin account or API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// May see and change the service account and configurations.
    Admin,
    /// May reset sync and run tests.
    Operator,
    /// Read-only.
    Viewer,
}

impl Role {
    /// The role's name as the database stores it and the API shows it: `admin`, `operator` or
    /// `viewer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    /// The role named by [`Role::as_str`]; `None` for any other text, which the store reports
    /// as damaged data.
    pub(crate) fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "operator" => Some(Role::Operator),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secret as the vault encrypted it. The store never sees the plaintext.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    /// The vault's name for the secret; unique, so storing another under it replaces it.
    pub name: String,
    /// The nonce it was encrypted with; never empty.
    pub nonce: Vec<u8>,
    /// The encrypted value as the vault produced it; never empty. Left out of `Debug`.
    pub ciphertext: Vec<u8>,
    /// When the vault last wrote it (set, or re-encrypted by a key rotation).
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("name", &self.name)
            .field("nonce_len", &self.nonce.len())
            .field("ciphertext_len", &self.ciphertext.len())
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// A secret's name and age, for listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretInfo {
    /// The vault's name for the secret.
    pub name: String,
    /// When the vault last wrote it.
    pub updated_at: DateTime<Utc>,
}

/// A local console account. `password_hash` is an argon2id PHC string.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminUser {
    /// The login name; unique and never empty.
    pub name: String,
    /// The argon2id PHC string, never the password; left out of `Debug`.
    pub password_hash: String,
    /// What the account may do.
    pub role: Role,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// When its password or role last changed.
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for AdminUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminUser")
            .field("name", &self.name)
            .field("password_hash", &"[redacted]")
            .field("role", &self.role)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// An API token for automation; only a hash of the token is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// The store's number for the token, by which it is listed, revoked and marked used.
    pub id: i64,
    /// The hash a request's token is looked up by; unique, and left out of `Debug`.
    pub token_hash: String,
    /// A label the admin gave the token, to tell it apart in listings.
    pub name: String,
    /// What requests carrying the token may do.
    pub role: Role,
    /// When the token was created.
    pub created_at: DateTime<Utc>,
    /// When a request last authenticated with it; `None` if none has.
    pub last_used_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken")
            .field("id", &self.id)
            .field("token_hash", &"[redacted]")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("created_at", &self.created_at)
            .field("last_used_at", &self.last_used_at)
            .finish()
    }
}

/// A console login session. `id` should be a hash of the cookie value, so that reading the
/// database does not hand out live sessions.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// The session's key; unique and never empty. Left out of `Debug`.
    pub id: String,
    /// The account logged in; deleting the account ends the session.
    pub admin_user: String,
    /// The token a request that changes something must send back; never empty and left out of
    /// `Debug`.
    pub csrf_token: String,
    /// When the login happened.
    pub created_at: DateTime<Utc>,
    /// After this the session is no longer found; it must be later than `created_at`.
    pub expires_at: DateTime<Utc>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &"[redacted]")
            .field("admin_user", &self.admin_user)
            .field("csrf_token", &"[redacted]")
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// One audit log entry to append. `detail` is free-form JSON and must hold no secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Who acted, as the caller names itself: a console account, an API token, or the command
    /// line with its login name. Never empty.
    pub actor: String,
    /// What was done, as a dotted name such as `api_token.create`. Never empty.
    pub action: String,
    /// Names and flags that say what the action touched; never a secret's value.
    pub detail: serde_json::Value,
}

/// A stored audit log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The entry's place in the log: a higher one is newer, and [`crate::Accounts::list_audit`]
    /// pages by it.
    pub id: i64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Who acted, as [`AuditEvent::actor`].
    pub actor: String,
    /// What was done, as [`AuditEvent::action`].
    pub action: String,
    /// What the action touched, as [`AuditEvent::detail`].
    pub detail: serde_json::Value,
}
