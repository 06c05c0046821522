//! Shares of a server's concurrency that several workers hold between them, such as the
//! requests in flight Exchange allows one service account: a pool of numbered slots, each
//! taken like a lease (a holder, an epoch, an expiry by the database's clock), so workers
//! that each cap themselves cannot together pass the server's cap, and a crashed worker's
//! slots come back when they lapse.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::StoreResult;

/// The pool of the Exchange service account's requests in flight (`exchange.max_concurrency`).
pub const EXCHANGE_REQUESTS: &str = "Exchange requests";

/// The most slots a pool has: far above any server's cap (Exchange allows 27), low enough
/// that a pool's rows stay few whatever size a worker asks for.
pub const SLOTS_MAX: u32 = 1000;

/// A slot this worker took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// The pool it belongs to.
    pub pool: String,
    /// Its number in the pool, from 0.
    pub number: u32,
    /// The worker holding it.
    pub holder: String,
    /// Which taking of the slot this is: a renewal or release for an older taking changes
    /// nothing.
    pub epoch: i64,
    /// When it lapses unless renewed, by the database's clock.
    pub expires_at: DateTime<Utc>,
}

/// A slot as an administrator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    /// Its number in the pool.
    pub number: u32,
    /// The worker that holds, or last held, it.
    pub holder: String,
    /// Whether it had lapsed when read: any worker may take it.
    pub expired: bool,
}

/// Pools of slots every worker on the database takes from.
///
/// A pool of `size` has slots `0..size`; a worker takes one that nobody holds (or whose
/// holder let it lapse), renews it while it uses it and gives it back. Taking skips slots
/// another worker is taking at that moment, so two never get the same one.
pub trait Slots: Send + Sync {
    /// Takes a free slot of the pool `name` among its first `size` for `ttl`; `None` while
    /// all of them are held.
    fn take_slot(
        &self,
        name: &str,
        holder: &str,
        size: u32,
        ttl: Duration,
    ) -> StoreResult<Option<Slot>>;

    /// Extends a slot by `ttl` from now; [`crate::StoreError::LeaseLost`] when it lapsed and
    /// another worker took it, and then the holder must stop using it.
    fn renew_slot(&self, slot: &Slot, ttl: Duration) -> StoreResult<Slot>;

    /// Gives a slot back, so another worker can take it at once. Giving back a slot someone
    /// else took since changes nothing.
    fn release_slot(&self, slot: &Slot) -> StoreResult<()>;

    /// The pool's slots that are held or were left to lapse, by number.
    fn held_slots(&self, name: &str) -> StoreResult<Vec<SlotInfo>>;
}

/// The error for a renewal that found the slot gone.
pub(crate) fn slot_lost(op: &'static str, slot: &Slot) -> crate::StoreError {
    crate::StoreError::LeaseLost {
        op,
        scope: format!("slot {} of the pool {}", slot.number, slot.pool),
        holder: slot.holder.clone(),
        detail: format!(
            "it lapsed after epoch {} and another worker took it, or it was given back",
            slot.epoch
        ),
    }
}

/// Checks a pool's name, holder and size before they reach SQL.
pub(crate) fn check_take(op: &'static str, name: &str, holder: &str, size: u32) -> StoreResult<()> {
    let refuse = |reason: String| crate::StoreError::InvalidInput { op, reason };
    if name.trim().is_empty() {
        return Err(refuse("a pool of slots needs a name".into()));
    }
    if holder.trim().is_empty() {
        return Err(refuse("a worker needs a name to hold slots".into()));
    }
    if size == 0 || size > SLOTS_MAX {
        return Err(refuse(format!(
            "a pool has between 1 and {SLOTS_MAX} slots, not {size}"
        )));
    }
    Ok(())
}
