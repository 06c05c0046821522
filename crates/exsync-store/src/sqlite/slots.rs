//! Slots on SQLite: the same statements as on PostgreSQL, with SQLite's clock in seconds
//! since 1970. One process uses the file and its in-memory cap serves it, so nothing takes
//! slots here but the tests that hold both backends to the same behaviour; the file's write
//! lock orders takes as the row lock does on PostgreSQL.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{params, OptionalExtension};

use super::codec::Ctx;
use super::SqliteStore;
use crate::error::{StoreError, StoreResult};
use crate::roles::slots::{check_take, slot_lost};
use crate::roles::{Slot, SlotInfo, Slots};

/// Now by SQLite's clock, in seconds since 1970.
const NOW: &str = "((julianday('now') - 2440587.5) * 86400.0)";

fn expiry(op: &'static str, seconds: f64) -> StoreResult<DateTime<Utc>> {
    Utc.timestamp_micros((seconds * 1e6) as i64)
        .single()
        .ok_or_else(|| StoreError::Corrupt {
            op,
            user: None,
            detail: format!("slot expiry {seconds} is not a time"),
        })
}

impl Slots for SqliteStore {
    fn take_slot(
        &self,
        name: &str,
        holder: &str,
        size: u32,
        ttl: Duration,
    ) -> StoreResult<Option<Slot>> {
        const OP: &str = "take a slot";
        check_take(OP, name, holder, size)?;
        let mut conn = self.lock();
        // Immediate: several processes on one file take their turn at the start, not deadlock
        // upgrading a read lock.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .ctx(OP, None)?;
        for number in 0..size {
            tx.prepare_cached(
                "INSERT INTO slots (pool, number) VALUES (?1, ?2) \
                 ON CONFLICT (pool, number) DO NOTHING",
            )
            .ctx(OP, None)?
            .execute(params![name, number])
            .ctx(OP, None)?;
        }
        let taken = tx
            .prepare_cached(&format!(
                "UPDATE slots SET holder = ?3, epoch = epoch + 1, expires_at = {NOW} + ?4 \
                 WHERE pool = ?1 AND number = ( \
                   SELECT number FROM slots WHERE pool = ?1 AND number < ?2 \
                     AND (holder IS NULL OR expires_at < {NOW}) \
                   ORDER BY number LIMIT 1) \
                 RETURNING number, epoch, expires_at"
            ))
            .ctx(OP, None)?
            .query_row(params![name, size, holder, ttl.as_secs_f64()], |row| {
                Ok((
                    row.get::<_, u32>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, f64>(2)?,
                ))
            })
            .optional()
            .ctx(OP, None)?;
        tx.commit().ctx(OP, None)?;
        taken
            .map(|(number, epoch, expires)| {
                Ok(Slot {
                    pool: name.to_owned(),
                    number,
                    holder: holder.to_owned(),
                    epoch,
                    expires_at: expiry(OP, expires)?,
                })
            })
            .transpose()
    }

    fn renew_slot(&self, slot: &Slot, ttl: Duration) -> StoreResult<Slot> {
        const OP: &str = "renew a slot";
        let expires = self
            .lock()
            .prepare_cached(&format!(
                "UPDATE slots SET expires_at = {NOW} + ?5 \
                 WHERE pool = ?1 AND number = ?2 AND holder = ?3 AND epoch = ?4 \
                 RETURNING expires_at"
            ))
            .ctx(OP, None)?
            .query_row(
                params![
                    slot.pool,
                    slot.number,
                    slot.holder,
                    slot.epoch,
                    ttl.as_secs_f64()
                ],
                |row| row.get::<_, f64>(0),
            )
            .optional()
            .ctx(OP, None)?;
        let Some(expires) = expires else {
            return Err(slot_lost(OP, slot));
        };
        Ok(Slot {
            expires_at: expiry(OP, expires)?,
            ..slot.clone()
        })
    }

    fn release_slot(&self, slot: &Slot) -> StoreResult<()> {
        const OP: &str = "give a slot back";
        self.lock()
            .prepare_cached(
                "UPDATE slots SET holder = NULL, expires_at = NULL \
                 WHERE pool = ?1 AND number = ?2 AND holder = ?3 AND epoch = ?4",
            )
            .ctx(OP, None)?
            .execute(params![slot.pool, slot.number, slot.holder, slot.epoch])
            .ctx(OP, None)?;
        Ok(())
    }

    fn held_slots(&self, name: &str) -> StoreResult<Vec<SlotInfo>> {
        const OP: &str = "list slots";
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT number, holder, expires_at < {NOW} FROM slots \
                 WHERE pool = ?1 AND holder IS NOT NULL ORDER BY number"
            ))
            .ctx(OP, None)?;
        let rows = stmt
            .query_map(params![name], |row| {
                Ok(SlotInfo {
                    number: row.get(0)?,
                    holder: row.get(1)?,
                    expired: row.get(2)?,
                })
            })
            .ctx(OP, None)?;
        rows.collect::<Result<Vec<_>, _>>().ctx(OP, None)
    }
}
