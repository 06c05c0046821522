//! The SQLite backend: one database file in WAL mode, so the console can read while a pass
//! writes, with foreign keys enforced and a busy timeout for the moments two writers meet.

pub(crate) mod accounts;
mod budgets;
pub(crate) mod codec;
pub(crate) mod commit;
mod departures;
mod echo;
pub(crate) mod journal;
mod leases;
mod migrations;
pub(crate) mod routes;
mod secrets;
mod settings;
mod slots;
pub(crate) mod state;
mod sync_state;
pub(crate) mod users;

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::Connection;

use crate::error::{StoreError, StoreResult};

pub(crate) use migrations::{check_not_newer, migrate, user_version, MIGRATIONS};

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: i64 = 17;

/// How long a statement waits for another connection's write lock before failing with
/// [`StoreError::Busy`]. A pass commit is short, so waiting this long means something is stuck.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How many prepared statements the connection keeps: every statement of the store, with room
/// for the ones built per batch size.
const STATEMENTS_CACHED: usize = 256;

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

/// A [`Store`](crate::Store) on one SQLite file: it implements every role, each in the file
/// for its area. The connection sits behind a mutex; one process serves a small org, and
/// several processes may share the file (SQLite serialises writers).
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
        // The store has about seventy statements; with the default cache of 16 a pass kept
        // pushing out and parsing again the ones it needed next.
        conn.set_prepared_statement_cache_capacity(STATEMENTS_CACHED);
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

    pub(super) fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held cannot leave a half-done write behind: an open
        // transaction rolls back when it is dropped during unwinding.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` inside one read transaction, so everything it reads is one consistent state
    /// even while another process commits a pass. Nothing is written.
    pub(crate) fn with_read_transaction<R>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<R>,
    ) -> StoreResult<R> {
        const OP: &str = "read the state database";
        let mut conn = self.lock();
        let tx = conn
            .transaction()
            .map_err(|e| codec::backend(OP, None, &e))?;
        f(&tx)
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
