//! PostgreSQL errors as store errors. The column conversions are the SQLite backend's
//! (`crate::sqlite::codec`): both keep times as the same fixed-width text, so the two
//! databases hold byte-for-byte the same values and `store copy` moves them unchanged.

use exsync_core::UserKey;
use postgres::error::SqlState;

use crate::error::StoreError;

/// The server's message and detail, or the client's own error.
pub(crate) fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_owned(),
        },
        None => {
            // The client's Display is terse ("error connecting to server"); its source says why.
            let mut text = e.to_string();
            if let Some(source) = std::error::Error::source(e) {
                text = format!("{text}: {source}");
            }
            text
        }
    }
}

pub(super) fn backend(op: &'static str, user: Option<&UserKey>, e: &postgres::Error) -> StoreError {
    let user = user.cloned();
    // A row lock waited for past lock_timeout, or a transaction PostgreSQL chose to abort
    // because another one needed its rows: nothing was written, and a retry can succeed.
    if matches!(
        e.code(),
        Some(&SqlState::LOCK_NOT_AVAILABLE)
            | Some(&SqlState::T_R_DEADLOCK_DETECTED)
            | Some(&SqlState::T_R_SERIALIZATION_FAILURE)
    ) {
        return StoreError::Busy { op, user };
    }
    StoreError::Backend {
        op,
        user,
        detail: describe(e),
    }
}

pub(super) fn is_unique_violation(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

pub(super) fn is_foreign_key_violation(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION)
}

/// Attaches the operation and user to a client result.
pub(super) trait Ctx<T> {
    fn ctx(self, op: &'static str, user: Option<&UserKey>) -> Result<T, StoreError>;
}

impl<T> Ctx<T> for Result<T, postgres::Error> {
    fn ctx(self, op: &'static str, user: Option<&UserKey>) -> Result<T, StoreError> {
        self.map_err(|e| backend(op, user, &e))
    }
}
