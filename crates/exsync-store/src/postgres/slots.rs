//! Slots on PostgreSQL. The pool's rows are made on first use; a take locks one free row with
//! `FOR UPDATE SKIP LOCKED`, so racing workers each get a different slot or none, never the
//! same. Expiries run by the database's clock, the one clock all workers share.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use postgres::Row;

use super::codec::Ctx;
use super::PgStore;
use crate::error::{StoreError, StoreResult};
use crate::roles::slots::{check_take, slot_lost};
use crate::roles::{Slot, SlotInfo, Slots};

const EXPIRES: &str = "(extract(epoch FROM expires_at) * 1000000)::bigint";

/// The slot's length as whole milliseconds for SQL, at least one.
fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1)
}

fn expiry(op: &'static str, row: &Row, index: usize) -> StoreResult<DateTime<Utc>> {
    let value: i64 = row.try_get(index).ctx(op, None)?;
    Utc.timestamp_micros(value)
        .single()
        .ok_or_else(|| StoreError::Corrupt {
            op,
            user: None,
            detail: format!("slot expiry {value} is not a time"),
        })
}

fn number(op: &'static str, row: &Row, index: usize) -> StoreResult<u32> {
    let value: i32 = row.try_get(index).ctx(op, None)?;
    u32::try_from(value).map_err(|_| StoreError::Corrupt {
        op,
        user: None,
        detail: format!("slot number {value} is negative"),
    })
}

impl Slots for PgStore {
    fn take_slot(
        &self,
        name: &str,
        holder: &str,
        size: u32,
        ttl: Duration,
    ) -> StoreResult<Option<Slot>> {
        const OP: &str = "take a slot";
        check_take(OP, name, holder, size)?;
        let size = i32::try_from(size).unwrap_or(i32::MAX);
        let row = self.with(OP, |client| {
            // Rows first, so the take below only locks rows that exist and skips the ones
            // another worker is locking.
            client
                .execute(
                    "INSERT INTO slots (pool, number) SELECT $1::text, generate_series(0, $2::int - 1) \
                     ON CONFLICT (pool, number) DO NOTHING",
                    &[&name, &size],
                )
                .ctx(OP, None)?;
            client
                .query_opt(
                    &format!(
                        "WITH free AS ( \
                           SELECT number FROM slots \
                           WHERE pool = $1 AND number < $2 \
                             AND (holder IS NULL OR expires_at < now()) \
                           ORDER BY number LIMIT 1 FOR UPDATE SKIP LOCKED) \
                         UPDATE slots s SET holder = $3, epoch = s.epoch + 1, \
                           expires_at = now() + $4::bigint * interval '1 millisecond' \
                         FROM free WHERE s.pool = $1 AND s.number = free.number \
                         RETURNING s.number, s.epoch, {EXPIRES}"
                    ),
                    &[&name, &size, &holder, &ttl_ms(ttl)],
                )
                .ctx(OP, None)
        })?;
        row.map(|row| {
            Ok(Slot {
                pool: name.to_owned(),
                number: number(OP, &row, 0)?,
                holder: holder.to_owned(),
                epoch: row.try_get(1).ctx(OP, None)?,
                expires_at: expiry(OP, &row, 2)?,
            })
        })
        .transpose()
    }

    fn renew_slot(&self, slot: &Slot, ttl: Duration) -> StoreResult<Slot> {
        const OP: &str = "renew a slot";
        let at = i32::try_from(slot.number).unwrap_or(i32::MAX);
        let row = self.with(OP, |client| {
            client
                .query_opt(
                    &format!(
                        "UPDATE slots SET expires_at = now() + $5::bigint * interval '1 millisecond' \
                         WHERE pool = $1 AND number = $2 AND holder = $3 AND epoch = $4 \
                         RETURNING {EXPIRES}"
                    ),
                    &[&slot.pool, &at, &slot.holder, &slot.epoch, &ttl_ms(ttl)],
                )
                .ctx(OP, None)
        })?;
        let Some(row) = row else {
            return Err(slot_lost(OP, slot));
        };
        Ok(Slot {
            expires_at: expiry(OP, &row, 0)?,
            ..slot.clone()
        })
    }

    fn release_slot(&self, slot: &Slot) -> StoreResult<()> {
        const OP: &str = "give a slot back";
        let at = i32::try_from(slot.number).unwrap_or(i32::MAX);
        self.with(OP, |client| {
            client
                .execute(
                    "UPDATE slots SET holder = NULL, expires_at = NULL \
                     WHERE pool = $1 AND number = $2 AND holder = $3 AND epoch = $4",
                    &[&slot.pool, &at, &slot.holder, &slot.epoch],
                )
                .ctx(OP, None)
        })?;
        Ok(())
    }

    fn held_slots(&self, name: &str) -> StoreResult<Vec<SlotInfo>> {
        const OP: &str = "list slots";
        let rows = self.with(OP, |client| {
            client
                .query(
                    "SELECT number, holder, expires_at < now() FROM slots \
                     WHERE pool = $1 AND holder IS NOT NULL ORDER BY number",
                    &[&name],
                )
                .ctx(OP, None)
        })?;
        rows.iter()
            .map(|row| {
                Ok(SlotInfo {
                    number: number(OP, row, 0)?,
                    holder: row.try_get(1).ctx(OP, None)?,
                    expired: row.try_get(2).ctx(OP, None)?,
                })
            })
            .collect()
    }
}
