//! The SQLite backend: one database file in WAL mode, so the console can read while a pass
//! writes, with foreign keys enforced and a busy timeout for the moments two writers meet.

mod codec;
mod commit;
mod console;
mod echo;
mod migrations;
mod state;
mod users;

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use exsync_core::plan::SyncedPair;
use exsync_core::{CrmId, ItemId, ItemKind, UserKey};
use rusqlite::Connection;

use crate::console::{
    AdminUser, ApiToken, AuditEvent, AuditRecord, Role, Secret, SecretInfo, Session,
};
use crate::error::{StoreError, StoreResult};
use crate::store::Store;
use crate::types::{
    CommitReceipt, ConflictRecord, CrmUserSkip, CrmWrite, CursorAdvance, CursorEntry, CursorScope,
    PassCommit, ResetCounts, RunRecord, SkippedCrmUser, UnresolvedItem, UserStatus,
};

pub(crate) use migrations::{migrate, user_version, MIGRATIONS};

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: i64 = 3;

/// How long a statement waits for another connection's write lock before failing with
/// [`StoreError::Busy`]. A pass commit is short, so waiting this long means something is stuck.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Points inside a pass commit's transaction, for the crash tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CommitStep {
    Removals,
    Upserts,
    Cursors,
    Unresolved,
    Run,
}

#[cfg(test)]
pub(crate) type CommitHook = Box<dyn Fn(CommitStep, &Connection) + Send + Sync>;

/// A [`Store`] on one SQLite file. The connection sits behind a mutex; one process serves a
/// small org, and several processes may share the file (SQLite serialises writers).
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: String,
    #[cfg(test)]
    commit_hook: Option<CommitHook>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: impl AsRef<Path>) -> StoreResult<Self> {
        Self::open_with_busy_timeout(path, BUSY_TIMEOUT)
    }

    /// [`SqliteStore::open`] with another wait for a write lock held elsewhere (default 10 s).
    pub fn open_with_busy_timeout(
        path: impl AsRef<Path>,
        busy_timeout: Duration,
    ) -> StoreResult<Self> {
        let path_text = path.as_ref().display().to_string();
        create_private(path.as_ref()).map_err(|e| StoreError::Open {
            path: path_text.clone(),
            detail: format!("creating the file: {e}"),
        })?;
        let conn = Connection::open(path.as_ref()).map_err(|e| StoreError::Open {
            path: path_text.clone(),
            detail: e.to_string(),
        })?;
        Self::setup(conn, path_text, true, busy_timeout)
    }

    /// A private database that lives as long as the store; for tests and dry runs.
    pub fn open_in_memory() -> StoreResult<Self> {
        let path = ":memory:".to_owned();
        let conn = Connection::open_in_memory().map_err(|e| StoreError::Open {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        Self::setup(conn, path, false, BUSY_TIMEOUT)
    }

    fn setup(
        mut conn: Connection,
        path: String,
        wal: bool,
        busy_timeout: Duration,
    ) -> StoreResult<Self> {
        let open_err = |detail: String| StoreError::Open {
            path: path.clone(),
            detail,
        };
        conn.busy_timeout(busy_timeout)
            .map_err(|e| open_err(e.to_string()))?;
        if wal {
            let mode: String = conn
                .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
                .map_err(|e| open_err(e.to_string()))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(open_err(format!(
                    "the database could not switch to WAL journal mode (it reports {mode:?}); \
                     put it on a local file system"
                )));
            }
        }
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(|e| open_err(e.to_string()))?;
        let fk: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |row| row.get(0))
            .map_err(|e| open_err(e.to_string()))?;
        if fk != 1 {
            return Err(open_err(
                "this SQLite build cannot enforce foreign keys".into(),
            ));
        }
        // FULL: a committed pass survives power loss too, not only a crash of the process.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| open_err(e.to_string()))?;
        migrate(&mut conn, &path, MIGRATIONS)?;
        tracing::debug!(path = %path, "state database open");
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path,
            #[cfg(test)]
            commit_hook: None,
        })
    }

    /// Where the database lives, for messages.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The schema version recorded in the file.
    pub fn schema_version(&self) -> StoreResult<i64> {
        user_version(&self.lock()).map_err(|e| codec::backend("read schema version", None, &e))
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held cannot leave a half-done write behind: an open
        // transaction rolls back when it is dropped during unwinding.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    pub(crate) fn set_commit_hook(&mut self, hook: CommitHook) {
        self.commit_hook = Some(hook);
    }

    #[cfg(test)]
    pub(crate) fn total_changes(&self) -> u64 {
        self.lock().total_changes()
    }

    /// Raw access for tests that tamper with or inspect the file.
    #[cfg(test)]
    pub(crate) fn with_conn<R>(&self, f: impl FnOnce(&Connection) -> R) -> R {
        f(&self.lock())
    }

    #[cfg_attr(not(test), allow(unused_variables))]
    fn checkpoint(&self, step: CommitStep, conn: &Connection) {
        #[cfg(test)]
        if let Some(hook) = &self.commit_hook {
            hook(step, conn);
        }
    }
}

/// Creates the database file readable by its owner only, when it does not exist yet: it holds
/// every synced contact and event. SQLite gives its `-wal` and `-shm` files the mode of the
/// database file, so they follow. An existing file keeps the mode it has; `exsync check` warns
/// about one others can read.
fn create_private(path: &Path) -> std::io::Result<()> {
    let text = path.to_string_lossy();
    // In-memory and URI names are not files this code should create.
    if text.is_empty() || text == ":memory:" || text.starts_with("file:") {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

impl Store for SqliteStore {
    fn load_pairs(&self, user: &UserKey, kind: ItemKind) -> StoreResult<Vec<SyncedPair>> {
        state::load_pairs(&self.lock(), user, kind)
    }

    fn pairs_page(
        &self,
        user: &UserKey,
        kind: ItemKind,
        after: Option<&CrmId>,
        limit: usize,
    ) -> StoreResult<Vec<SyncedPair>> {
        state::pairs_page(&self.lock(), user, kind, after, limit)
    }

    fn pairs_of(
        &self,
        user: &UserKey,
        kind: ItemKind,
        ids: &[ItemId],
    ) -> StoreResult<Vec<SyncedPair>> {
        state::pairs_of(&self.lock(), user, kind, ids)
    }

    fn pair_count(&self, user: &UserKey, kind: ItemKind) -> StoreResult<u64> {
        state::pair_count(&self.lock(), user, kind)
    }

    fn crm_pair_users(
        &self,
        kind: ItemKind,
        crm_ids: &[CrmId],
    ) -> StoreResult<Vec<(CrmId, UserKey)>> {
        state::crm_pair_users(&self.lock(), kind, crm_ids)
    }

    fn find_pair(
        &self,
        user: &UserKey,
        kind: ItemKind,
        id: &ItemId,
    ) -> StoreResult<Option<SyncedPair>> {
        state::find_pair(&self.lock(), user, kind, id)
    }

    fn cursor(&self, scope: &CursorScope) -> StoreResult<Option<String>> {
        state::cursor(&self.lock(), scope)
    }

    fn list_cursors(&self) -> StoreResult<Vec<CursorEntry>> {
        state::list_cursors(&self.lock())
    }

    fn commit_pass(&self, commit: &PassCommit) -> StoreResult<CommitReceipt> {
        commit::validate(commit)?;
        let mut conn = self.lock();
        commit::apply(&mut conn, commit, |step, conn| self.checkpoint(step, conn))
    }

    fn advance_org_cursors(
        &self,
        advances: &[CursorAdvance],
        at: DateTime<Utc>,
    ) -> StoreResult<u64> {
        commit::advance_org(&mut self.lock(), advances, &at)
    }

    fn reset_user(&self, user: &UserKey) -> StoreResult<ResetCounts> {
        users::reset_user(&mut self.lock(), user)
    }

    fn ensure_user(&self, user: &UserKey) -> StoreResult<()> {
        users::ensure_user(&self.lock(), user)
    }

    fn set_paused(&self, user: &UserKey, reason: Option<&str>) -> StoreResult<()> {
        users::set_paused(&self.lock(), user, reason)
    }

    fn user_status(&self, user: &UserKey) -> StoreResult<Option<UserStatus>> {
        users::user_status(&self.lock(), user)
    }

    fn list_users(&self) -> StoreResult<Vec<UserStatus>> {
        users::list_users(&self.lock())
    }

    fn unresolved(&self, user: &UserKey) -> StoreResult<Vec<UnresolvedItem>> {
        users::unresolved(&self.lock(), user)
    }

    fn runs(&self, user: &UserKey, limit: usize) -> StoreResult<Vec<RunRecord>> {
        users::runs(&self.lock(), user, limit)
    }

    fn conflicts(&self, user: &UserKey, limit: usize) -> StoreResult<Vec<ConflictRecord>> {
        users::conflicts(&self.lock(), user, limit)
    }

    fn record_skipped_crm_users(
        &self,
        skipped: &[CrmUserSkip],
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        users::record_skipped_crm_users(&mut self.lock(), skipped, &at)
    }

    fn skipped_crm_users(&self) -> StoreResult<Vec<SkippedCrmUser>> {
        users::skipped_crm_users(&self.lock())
    }

    fn record_crm_writes(&self, writes: &[CrmWrite]) -> StoreResult<()> {
        echo::record(&mut self.lock(), writes)
    }

    fn is_own_crm_write(&self, crm_id: &CrmId, system_modstamp: &str) -> StoreResult<bool> {
        echo::is_own(&self.lock(), crm_id, system_modstamp)
    }

    fn crm_writes_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<CrmWrite>> {
        echo::since(&self.lock(), since)
    }

    fn prune_crm_writes(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        echo::prune(&self.lock(), before)
    }

    fn put_secrets(&self, secrets: &[Secret]) -> StoreResult<()> {
        console::put_secrets(&mut self.lock(), secrets)
    }

    fn get_secret(&self, name: &str) -> StoreResult<Option<Secret>> {
        console::get_secret(&self.lock(), name)
    }

    fn list_secrets(&self) -> StoreResult<Vec<SecretInfo>> {
        console::list_secrets(&self.lock())
    }

    fn delete_secret(&self, name: &str) -> StoreResult<bool> {
        console::delete_secret(&self.lock(), name)
    }

    fn create_admin_user(
        &self,
        name: &str,
        password_hash: &str,
        role: Role,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        console::create_admin_user(&self.lock(), name, password_hash, role, at)
    }

    fn admin_user(&self, name: &str) -> StoreResult<Option<AdminUser>> {
        console::admin_user(&self.lock(), name)
    }

    fn list_admin_users(&self) -> StoreResult<Vec<AdminUser>> {
        console::list_admin_users(&self.lock())
    }

    fn set_admin_password(
        &self,
        name: &str,
        password_hash: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        console::set_admin_password(&self.lock(), name, password_hash, at)
    }

    fn set_admin_role(&self, name: &str, role: Role, at: DateTime<Utc>) -> StoreResult<bool> {
        console::set_admin_role(&self.lock(), name, role, at)
    }

    fn delete_admin_user(&self, name: &str) -> StoreResult<bool> {
        console::delete_admin_user(&self.lock(), name)
    }

    fn create_api_token(
        &self,
        token_hash: &str,
        name: &str,
        role: Role,
        at: DateTime<Utc>,
    ) -> StoreResult<i64> {
        console::create_api_token(&self.lock(), token_hash, name, role, at)
    }

    fn api_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiToken>> {
        console::api_token_by_hash(&self.lock(), token_hash)
    }

    fn list_api_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        console::list_api_tokens(&self.lock())
    }

    fn touch_api_token(&self, id: i64, at: DateTime<Utc>) -> StoreResult<bool> {
        console::touch_api_token(&self.lock(), id, at)
    }

    fn delete_api_token(&self, id: i64) -> StoreResult<bool> {
        console::delete_api_token(&self.lock(), id)
    }

    fn create_session(&self, session: &Session) -> StoreResult<()> {
        console::create_session(&self.lock(), session)
    }

    fn session(&self, id: &str, now: DateTime<Utc>) -> StoreResult<Option<Session>> {
        console::session(&self.lock(), id, now)
    }

    fn delete_session(&self, id: &str) -> StoreResult<bool> {
        console::delete_session(&self.lock(), id)
    }

    fn delete_sessions_of(&self, admin_user: &str) -> StoreResult<u64> {
        console::delete_sessions_of(&self.lock(), admin_user)
    }

    fn delete_expired_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        console::delete_expired_sessions(&self.lock(), now)
    }

    fn append_audit(&self, event: &AuditEvent) -> StoreResult<i64> {
        console::append_audit(&self.lock(), event)
    }

    fn list_audit(&self, limit: usize, before: Option<i64>) -> StoreResult<Vec<AuditRecord>> {
        console::list_audit(&self.lock(), limit, before)
    }

    fn setting(&self, name: &str) -> StoreResult<Option<serde_json::Value>> {
        console::setting(&self.lock(), name)
    }

    fn put_setting(
        &self,
        name: &str,
        value: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        console::put_setting(&self.lock(), name, value, at)
    }
}
