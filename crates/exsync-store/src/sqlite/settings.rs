//! Console settings that `exsync.toml` does not hold, as JSON by name.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::codec::{non_empty, time_text, Ctx};
use crate::error::{StoreError, StoreResult};

pub(crate) fn setting(conn: &Connection, name: &str) -> StoreResult<Option<serde_json::Value>> {
    const OP: &str = "read setting";
    let text: Option<String> = conn
        .prepare_cached("SELECT value FROM settings WHERE name = ?1")
        .ctx(OP, None)?
        .query_row(params![name], |row| row.get(0))
        .optional()
        .ctx(OP, None)?;
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| StoreError::Corrupt {
            op: OP,
            user: None,
            detail: format!("setting {name:?} is not JSON: {e}"),
        })
    })
    .transpose()
}

pub(crate) fn put_setting(
    conn: &Connection,
    name: &str,
    value: &serde_json::Value,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    const OP: &str = "store setting";
    non_empty(OP, "setting name", name)?;
    conn.prepare_cached(
        "INSERT INTO settings (name, value, updated_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .ctx(OP, None)?
    .execute(params![name, value.to_string(), time_text(&at)])
    .ctx(OP, None)?;
    Ok(())
}
