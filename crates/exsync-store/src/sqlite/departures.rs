//! Users who left the sync, on SQLite: the same marks as on PostgreSQL. One process reads the
//! CRM for its own users, so there is no inbox to empty.

use chrono::{DateTime, Utc};
use exsync_core::UserKey;
use rusqlite::{params, OptionalExtension};

use super::codec::{parse_time, time_text, Ctx, Decode};
use super::users::check_key;
use super::SqliteStore;
use crate::error::{StoreError, StoreResult};
use crate::roles::{Departures, Retired};

impl Departures for SqliteStore {
    fn retire_departed(&self, active: &[UserKey], at: DateTime<Utc>) -> StoreResult<Retired> {
        const OP: &str = "retire the users who left the sync";
        for user in active {
            check_key(OP, user)?;
        }
        let keys: Vec<&str> = active.iter().map(UserKey::as_str).collect();
        let keys = serde_json::to_string(&keys).map_err(|e| StoreError::InvalidInput {
            op: OP,
            reason: format!("the active users cannot be listed: {e}"),
        })?;
        let marked = self
            .lock()
            .prepare_cached(
                "INSERT INTO crm_full_reads_due (user_key, since) \
                 SELECT user_key, ?2 FROM users \
                 WHERE user_key NOT IN (SELECT value FROM json_each(?1)) \
                 ON CONFLICT (user_key) DO NOTHING",
            )
            .ctx(OP, None)?
            .execute(params![keys, time_text(&at)])
            .ctx(OP, None)?;
        Ok(Retired {
            marked: marked as u64,
            inbox_removed: 0,
        })
    }

    fn full_read_due(&self, user: &UserKey) -> StoreResult<Option<DateTime<Utc>>> {
        const OP: &str = "read whether a full read is due";
        let since: Option<String> = self
            .lock()
            .prepare_cached("SELECT since FROM crm_full_reads_due WHERE user_key = ?1")
            .ctx(OP, Some(user))?
            .query_row(params![user.as_str()], |row| row.get(0))
            .optional()
            .ctx(OP, Some(user))?;
        since
            .map(|text| parse_time(&text).decoded(OP, Some(user)))
            .transpose()
    }

    fn settle_full_read(&self, user: &UserKey, since: DateTime<Utc>) -> StoreResult<bool> {
        const OP: &str = "settle a full read";
        let removed = self
            .lock()
            .prepare_cached("DELETE FROM crm_full_reads_due WHERE user_key = ?1 AND since = ?2")
            .ctx(OP, Some(user))?
            .execute(params![user.as_str(), time_text(&since)])
            .ctx(OP, Some(user))?;
        Ok(removed > 0)
    }
}
