//! The sync switch: one flag in the state database, not in `exsync.toml`, so an admin can stop
//! every user's sync from the console or the command line without editing the file, and a
//! running service obeys it from its next pass on. Unset means on.

use chrono::{DateTime, Utc};
use exsync_store::{StoreResult, SyncState};

/// The setting's name in the state database.
pub const SETTING: &str = "sync.enabled";

/// Whether passes sync anything.
pub fn is_enabled(store: &(impl SyncState + ?Sized)) -> StoreResult<bool> {
    Ok(store
        .setting(SETTING)?
        .and_then(|v| v.as_bool())
        .unwrap_or(true))
}

/// Turns syncing on or off.
pub fn set_enabled(
    store: &(impl SyncState + ?Sized),
    enabled: bool,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    store.put_setting(SETTING, &serde_json::Value::Bool(enabled), at)
}
