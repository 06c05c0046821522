//! Who may use the console, and what they did.

use chrono::{DateTime, Utc};

use crate::console::{AdminUser, ApiToken, AuditEvent, AuditRecord, Role, Session};
use crate::error::StoreResult;

/// Console accounts, API tokens, login sessions and the audit log.
///
/// The console uses it to authenticate callers, keep their sessions and record what they do;
/// `exsync admin` and `exsync demo` use it to create accounts and tokens from the command line.
/// Passwords and API tokens arrive as hashes and are kept as hashes.
pub trait Accounts: Send + Sync {
    // ---- console accounts -------------------------------------------------------------

    /// Fails with [`crate::StoreError::AlreadyExists`] for a taken name.
    fn create_admin_user(
        &self,
        name: &str,
        password_hash: &str,
        role: Role,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// The account with this name, if there is one.
    fn admin_user(&self, name: &str) -> StoreResult<Option<AdminUser>>;

    /// Every account, ordered by name.
    fn list_admin_users(&self) -> StoreResult<Vec<AdminUser>>;

    /// Replaces the account's password hash; `false` when there is no such account. Its
    /// sessions stay: end them with [`Accounts::delete_sessions_of`].
    fn set_admin_password(
        &self,
        name: &str,
        password_hash: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Changes what the account may do; `false` when there is no such account.
    fn set_admin_role(&self, name: &str, role: Role, at: DateTime<Utc>) -> StoreResult<bool>;

    /// Deletes the account and its sessions.
    fn delete_admin_user(&self, name: &str) -> StoreResult<bool>;

    // ---- API tokens -------------------------------------------------------------------

    /// Returns the new token's id. Fails with [`crate::StoreError::AlreadyExists`] when the
    /// hash is already stored.
    fn create_api_token(
        &self,
        token_hash: &str,
        name: &str,
        role: Role,
        at: DateTime<Utc>,
    ) -> StoreResult<i64>;

    /// The token with this hash, if there is one: how a request carrying a token is
    /// authenticated.
    fn api_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiToken>>;

    /// Every token, oldest first.
    fn list_api_tokens(&self) -> StoreResult<Vec<ApiToken>>;

    /// Records that the token authenticated a request at `at`; `false` when it no longer
    /// exists.
    fn touch_api_token(&self, id: i64, at: DateTime<Utc>) -> StoreResult<bool>;

    /// Revokes the token; `false` when there was none with this id.
    fn delete_api_token(&self, id: i64) -> StoreResult<bool>;

    // ---- sessions ---------------------------------------------------------------------

    /// Stores a new login session. Fails with [`crate::StoreError::InvalidInput`] for a blank
    /// id or CSRF token, an expiry not after the start or an unknown account, and with
    /// [`crate::StoreError::AlreadyExists`] for a taken id.
    fn create_session(&self, session: &Session) -> StoreResult<()>;

    /// The session with this id, if it exists and has not expired at `now`.
    fn session(&self, id: &str, now: DateTime<Utc>) -> StoreResult<Option<Session>>;

    /// Ends one session (a logout); `false` when there was none.
    fn delete_session(&self, id: &str) -> StoreResult<bool>;

    /// Ends every session of one account (after a password change, say).
    fn delete_sessions_of(&self, admin_user: &str) -> StoreResult<u64>;

    /// Removes the sessions expired at `now` and returns how many; they are already ignored,
    /// this only frees the space.
    fn delete_expired_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64>;

    // ---- audit log --------------------------------------------------------------------

    /// Appends an entry and returns its id. A blank actor or action is refused with
    /// [`crate::StoreError::InvalidInput`].
    fn append_audit(&self, event: &AuditEvent) -> StoreResult<i64>;

    /// Up to `limit` entries, newest first, older than entry `before` when given (paging).
    fn list_audit(&self, limit: usize, before: Option<i64>) -> StoreResult<Vec<AuditRecord>>;
}
