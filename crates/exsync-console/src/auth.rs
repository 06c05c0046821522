//! Who is calling: argon2id password hashes, session and API-token lookup, CSRF token
//! comparison, and the login rate limiter.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use exsync_store::Role;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "exsync_session";
/// How long a console login lasts.
pub(crate) const SESSION_TTL: chrono::TimeDelta = chrono::TimeDelta::hours(8);
/// API tokens start with this, so a leaked one is easy to recognise in a scan.
pub const TOKEN_PREFIX: &str = "exs_";

/// How a caller proved who they are.
#[derive(Clone, PartialEq, Eq)]
pub enum Via {
    /// A browser session; state-changing requests must carry this CSRF token.
    Session {
        /// The session's CSRF token, issued at login and embedded in its pages.
        csrf: String,
    },
    /// An API token: not a cookie, so a cross-site page cannot make the browser send it.
    Token {
        /// The token's id in the state database, recorded with its actions in the audit log.
        id: i64,
    },
}

/// The authenticated caller of a request.
#[derive(Clone)]
pub struct Caller {
    /// The console account's name, or for an API token the name it was created with.
    pub name: String,
    /// What the caller may do; checked against each route's [`crate::routes::Access`].
    pub role: Role,
    /// Session or API token; decides whether a CSRF token is required.
    pub via: Via,
}

impl Caller {
    /// The CSRF token pages put in their forms; empty for an API token, which needs none.
    pub fn csrf(&self) -> &str {
        match &self.via {
            Via::Session { csrf } => csrf,
            Via::Token { .. } => "",
        }
    }

    /// What the audit log records as the actor.
    pub fn actor(&self) -> String {
        match self.via {
            Via::Session { .. } => self.name.clone(),
            Via::Token { id } => format!("token:{}#{id}", self.name),
        }
    }
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Admin > operator > viewer.
pub(crate) fn rank(role: Role) -> u8 {
    match role {
        Role::Viewer => 1,
        Role::Operator => 2,
        Role::Admin => 3,
    }
}

pub(crate) fn allows(have: Role, need: Role) -> bool {
    rank(have) >= rank(need)
}

/// Hashing a password failed. argon2 fails only on inputs outside its limits (such as a
/// password longer than 4 GiB); its error stays inside, so the hashing crate's types are no
/// part of this crate's API.
#[derive(Debug, thiserror::Error)]
#[error("cannot hash the password: {0}")]
pub struct PasswordHashError(argon2::password_hash::Error);

/// An argon2id hash of `password` with a fresh random salt, in PHC string form, for storing
/// a console account's password.
pub fn hash_password(password: &str) -> Result<String, PasswordHashError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(PasswordHashError)
}

/// A hash that matches nothing, checked when the account does not exist so that a wrong
/// name costs as long as a wrong password and does not reveal which names exist.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password nobody has").unwrap_or_default())
}

/// Whether `password` matches the stored `hash`. `None` (no such account) is checked against a
/// decoy hash, so it fails as slowly as a wrong password; an unreadable stored hash fails too.
pub fn verify_password(hash: Option<&str>, password: &str) -> bool {
    let stored = hash.unwrap_or_else(|| decoy_hash());
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && hash.is_some()
}

/// 32 random bytes, URL-safe base64.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A new API token: [`TOKEN_PREFIX`] and 32 random bytes in URL-safe base64. Shown to the
/// admin once; only its [`sha256_hex`] is stored.
pub fn new_api_token() -> String {
    format!("{TOKEN_PREFIX}{}", random_token())
}

/// Sessions and API tokens are stored as this, so a copy of the database opens nothing.
pub fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// Compares without stopping at the first difference, so timing does not leak a prefix.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Failed logins allowed per account, and per client address, within [`LoginLimiter::WINDOW`].
#[derive(Debug)]
pub struct LoginLimiter {
    per_user: usize,
    per_client: usize,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::new(5, 20)
    }
}

impl LoginLimiter {
    /// How long a failed login counts against the account and the address (15 minutes).
    pub const WINDOW: Duration = Duration::from_secs(15 * 60);

    /// A limiter allowing `per_user` failures per account name and `per_client` per client
    /// address within [`Self::WINDOW`] (the default is 5 and 20).
    pub fn new(per_user: usize, per_client: usize) -> LoginLimiter {
        LoginLimiter {
            per_user,
            per_client,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` when this account or this client has failed too often lately.
    pub fn check(&self, user: &str, client: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut wait = None;
        for (key, max) in [
            (user_key(user), self.per_user),
            (client_key(client), self.per_client),
        ] {
            if let Some(times) = map.get_mut(&key) {
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > Self::WINDOW)
                {
                    times.pop_front();
                }
                if times.len() >= max {
                    let oldest = times.front().copied().unwrap_or(now);
                    let left = Self::WINDOW.saturating_sub(now.duration_since(oldest));
                    wait = Some(wait.map_or(left, |w: Duration| w.max(left)));
                }
            }
        }
        wait.map_or(Ok(()), Err)
    }

    /// Counts a failed login against both the typed account name and the client address.
    pub fn failed(&self, user: &str, client: &str) {
        let now = Instant::now();
        let mut map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Names are chosen by whoever is guessing: forget stale ones so the map stays small.
        if map.len() > 10_000 {
            map.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) <= Self::WINDOW)
            });
        }
        for key in [user_key(user), client_key(client)] {
            map.entry(key).or_default().push_back(now);
        }
    }

    /// A good login clears the account's count (not the client's: one address guessing at
    /// many accounts stays limited).
    pub fn succeeded(&self, user: &str) {
        let mut map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(&user_key(user));
    }
}

/// The typed name may be a password typed into the wrong field: only its digest is kept.
fn user_key(user: &str) -> String {
    format!("user:{}", sha256_hex(&user.to_lowercase()))
}

fn client_key(client: &str) -> String {
    format!("client:{client}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password(Some(&hash), "correct horse"));
        assert!(!verify_password(Some(&hash), "wrong"));
        assert!(!verify_password(None, "decoy password nobody has"));
    }

    #[test]
    fn the_limiter_counts_per_user_and_per_client() {
        let limiter = LoginLimiter::new(2, 3);
        limiter.failed("alice", "1.1.1.1");
        assert!(limiter.check("alice", "2.2.2.2").is_ok());
        limiter.failed("alice", "2.2.2.2");
        assert!(limiter.check("alice", "3.3.3.3").is_err());
        assert!(limiter.check("bob", "3.3.3.3").is_ok());
        limiter.failed("bob", "1.1.1.1");
        assert!(
            limiter.check("carol", "1.1.1.1").is_ok(),
            "two failures from it so far"
        );
        limiter.failed("dave", "1.1.1.1");
        assert!(limiter.check("carol", "1.1.1.1").is_err(), "client limit");
        limiter.succeeded("alice");
        assert!(limiter.check("alice", "9.9.9.9").is_ok());
    }

    #[test]
    fn comparison_is_exact() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }
}
