//! The one error type every backend returns. It names the operation and, where there is one,
//! the user, so a log line or an API answer says what failed for whom without a backtrace.

use exsync_core::{ItemId, ItemKind, UserKey};

/// Why a store operation failed. Backend errors are carried as text so that no backend type
/// (rusqlite, a PostgreSQL driver) leaks through [`crate::Store`] or any of its roles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cannot open the state database {path}: {detail}")]
    Open { path: String, detail: String },

    #[error(
        "the state database {path} has schema version {found}, but this exsync knows versions up \
         to {supported}; it was written by a newer exsync: run that version, or restore a backup \
         taken before the upgrade"
    )]
    SchemaTooNew {
        path: String,
        found: i64,
        supported: i64,
    },

    #[error(
        "cannot upgrade the state database {path} from schema version {from} to {to}: {detail}"
    )]
    Migration {
        path: String,
        from: i64,
        to: i64,
        detail: String,
    },

    #[error(
        "{op}{}: the state database stayed locked by another connection past the busy timeout",
        for_user(.user)
    )]
    Busy {
        op: &'static str,
        user: Option<UserKey>,
    },

    #[error("{op}{}: {detail}", for_user(.user))]
    Backend {
        op: &'static str,
        user: Option<UserKey>,
        detail: String,
    },

    #[error("{op}{}: stored data is damaged: {detail}", for_user(.user))]
    Corrupt {
        op: &'static str,
        user: Option<UserKey>,
        detail: String,
    },

    #[error(
        "pass commit for {user} refused, nothing written: {kind} {record} would be in two pairs \
         ({detail})"
    )]
    PairConflict {
        user: UserKey,
        kind: ItemKind,
        record: ItemId,
        detail: String,
    },

    #[error("pass commit for {user} refused, nothing written: {reason}")]
    InvalidCommit { user: UserKey, reason: String },

    #[error("{op}: {what} already exists")]
    AlreadyExists { op: &'static str, what: String },

    #[error("{op}: {reason}")]
    InvalidInput { op: &'static str, reason: String },
}

fn for_user(user: &Option<UserKey>) -> String {
    match user {
        Some(user) => format!(" for {user}"),
        None => String::new(),
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
