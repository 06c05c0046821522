//! Conversions between our types and SQLite columns, and error context.

use chrono::{DateTime, Utc};
use exsync_core::{CrmId, ExchangeId, ItemId, ItemKind, Side, UserKey};
use rusqlite::ErrorCode;

use crate::console::Role;
use crate::error::{StoreError, StoreResult};

/// Fixed-width UTC text, so that comparing the text compares the times.
pub(crate) fn time_text(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

pub(crate) fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("bad time {s:?}: {e}"))
}

pub(crate) fn parse_opt_time(s: Option<&str>) -> Result<Option<DateTime<Utc>>, String> {
    s.map(parse_time).transpose()
}

pub(crate) fn parse_kind(s: &str) -> Result<ItemKind, String> {
    ItemKind::parse(s).ok_or_else(|| format!("unknown record kind {s:?}"))
}

pub(crate) fn parse_side(s: &str) -> Result<Side, String> {
    match s {
        "crm" => Ok(Side::Crm),
        "exchange" => Ok(Side::Exchange),
        _ => Err(format!("unknown side {s:?}")),
    }
}

pub(crate) fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("unknown role {s:?}"))
}

pub(crate) fn item_id(side: Side, id: String) -> ItemId {
    match side {
        Side::Crm => ItemId::Crm(CrmId(id)),
        Side::Exchange => ItemId::Exchange(ExchangeId(id)),
    }
}

pub(crate) fn count(n: i64) -> Result<u64, String> {
    u64::try_from(n).map_err(|_| format!("negative count {n}"))
}

/// SQLite integers are signed; a count that does not fit is refused rather than wrapped.
pub(crate) fn to_sql_count(n: u64, what: &str) -> Result<i64, String> {
    i64::try_from(n).map_err(|_| format!("{what} {n} is too large to store"))
}

/// `LIMIT` for a caller-chosen size.
pub(crate) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn backend(op: &'static str, user: Option<&UserKey>, e: &rusqlite::Error) -> StoreError {
    let user = user.cloned();
    if let rusqlite::Error::SqliteFailure(f, _) = e {
        if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) {
            return StoreError::Busy { op, user };
        }
    }
    StoreError::Backend {
        op,
        user,
        detail: e.to_string(),
    }
}

pub(crate) fn corrupt(op: &'static str, user: Option<&UserKey>, detail: String) -> StoreError {
    StoreError::Corrupt {
        op,
        user: user.cloned(),
        detail,
    }
}

/// Refuses a blank name, id or token: stored, it would identify nothing.
pub(crate) fn non_empty(op: &'static str, what: &str, value: &str) -> StoreResult<()> {
    if value.trim().is_empty() {
        return Err(StoreError::InvalidInput {
            op,
            reason: format!("the {what} is empty"),
        });
    }
    Ok(())
}

pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == ErrorCode::ConstraintViolation
            && (f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY))
}

/// Attaches the operation and user to a rusqlite result.
pub(crate) trait Ctx<T> {
    fn ctx(self, op: &'static str, user: Option<&UserKey>) -> Result<T, StoreError>;
}

impl<T> Ctx<T> for rusqlite::Result<T> {
    fn ctx(self, op: &'static str, user: Option<&UserKey>) -> Result<T, StoreError> {
        self.map_err(|e| backend(op, user, &e))
    }
}

/// Attaches context to a decoding failure of stored data.
pub(crate) trait Decode<T> {
    fn decoded(self, op: &'static str, user: Option<&UserKey>) -> Result<T, StoreError>;
}

impl<T> Decode<T> for Result<T, String> {
    fn decoded(self, op: &'static str, user: Option<&UserKey>) -> Result<T, StoreError> {
        self.map_err(|detail| corrupt(op, user, detail))
    }
}
