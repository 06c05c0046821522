//! The one error type every backend returns. It names the operation and, where there is one,
//! the user, so a log line or an API answer says what failed for whom without a backtrace.

use exsync_core::{ItemId, ItemKind, UserKey};

/// Why a store operation failed. Backend errors are carried as text so that no backend type
/// (rusqlite, a PostgreSQL driver) leaks through [`crate::Store`] or any of its roles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened or set up: the file could not be created or read, or
    /// SQLite refused WAL mode or foreign keys.
    #[error("cannot open the state database {path}: {detail}")]
    Open {
        /// The file as given to open, or `:memory:`.
        path: String,
        /// What went wrong, as SQLite, the file system or a check made on opening put it.
        detail: String,
    },

    /// The file was written by a newer exsync. It is left as it is; this build will not guess
    /// at its schema.
    #[error(
        "the state database {path} has schema version {found}, but this exsync knows versions up \
         to {supported}; it was written by a newer exsync: run that version, or restore a backup \
         taken before the upgrade"
    )]
    SchemaTooNew {
        /// The database file.
        path: String,
        /// The schema version the file records.
        found: i64,
        /// The newest version this build knows, [`crate::SCHEMA_VERSION`].
        supported: i64,
    },

    /// A schema upgrade failed when the database was opened. The upgrade runs in one
    /// transaction, so the file keeps its old version and data.
    #[error(
        "cannot upgrade the state database {path} from schema version {from} to {to}: {detail}"
    )]
    Migration {
        /// The database file.
        path: String,
        /// The schema version the file had, which it still has.
        from: i64,
        /// The version whose step failed.
        to: i64,
        /// What SQLite said.
        detail: String,
    },

    /// Another connection held the write lock past the busy timeout. Nothing was written;
    /// the operation can be retried.
    #[error(
        "{op}{}: the state database stayed locked by another connection past the busy timeout",
        for_user(.user)
    )]
    Busy {
        /// The operation, in words ("commit pass").
        op: &'static str,
        /// The user it was for, if it was for one.
        user: Option<UserKey>,
    },

    /// The backend failed in some other way (I/O, a full disk, a failed statement).
    #[error("{op}{}: {detail}", for_user(.user))]
    Backend {
        /// The operation, in words.
        op: &'static str,
        /// The user it was for, if it was for one.
        user: Option<UserKey>,
        /// What the backend said.
        detail: String,
    },

    /// Stored data could not be decoded or failed its check, such as a pair whose content no
    /// longer matches its hash. It is reported rather than used.
    #[error("{op}{}: stored data is damaged: {detail}", for_user(.user))]
    Corrupt {
        /// The operation, in words.
        op: &'static str,
        /// The user it was for, if it was for one.
        user: Option<UserKey>,
        /// What is wrong with the data, and where.
        detail: String,
    },

    /// A pass commit would have put one record in two pairs; nothing of it was written.
    #[error(
        "pass commit for {user} refused, nothing written: {kind} {record} would be in two pairs \
         ({detail})"
    )]
    PairConflict {
        /// The user whose commit it was.
        user: UserKey,
        /// Whether the record is a contact or an event.
        kind: ItemKind,
        /// The record that would have been in two pairs.
        record: ItemId,
        /// Which pairs clash.
        detail: String,
    },

    /// A pass commit was malformed (see [`crate::SyncState::commit_pass`]); nothing of it was
    /// written.
    #[error("pass commit for {user} refused, nothing written: {reason}")]
    InvalidCommit {
        /// The user whose commit it was.
        user: UserKey,
        /// What is wrong with it.
        reason: String,
    },

    /// A create met a name, hash or id that is already stored.
    #[error("{op}: {what} already exists")]
    AlreadyExists {
        /// The operation, in words.
        op: &'static str,
        /// What is already there, for the message.
        what: String,
    },

    /// A write on behalf of a user (or an org-wide job) was refused because this worker no
    /// longer holds its lease at the epoch it took: another worker took over after the lease
    /// lapsed (a stall, a pause, a cut-off network), or it was never taken. Nothing was
    /// written; the work belongs to the lease's holder now.
    #[error("{op}: refused, nothing written: worker {holder} no longer holds the lease on {scope}: {detail}")]
    LeaseLost {
        /// The operation, in words.
        op: &'static str,
        /// What the lease covers, in words ("user alice@example.com").
        scope: String,
        /// This worker.
        holder: String,
        /// Who holds it now and since which epoch, or that nobody does.
        detail: String,
    },

    /// An argument was refused before anything was written: a blank name or key, a pause
    /// without a reason, a folder cursor where only org-wide ones are allowed.
    #[error("{op}: {reason}")]
    InvalidInput {
        /// The operation, in words.
        op: &'static str,
        /// What was wrong with the input.
        reason: String,
    },
}

fn for_user(user: &Option<UserKey>) -> String {
    match user {
        Some(user) => format!(" for {user}"),
        None => String::new(),
    }
}

/// What every store method returns.
pub type StoreResult<T> = Result<T, StoreError>;
