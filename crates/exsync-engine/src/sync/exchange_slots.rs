//! Exchange's cap on the service account's requests in flight, shared by every process that
//! sends for it. Each process caps itself at `exchange.max_concurrency`; on a shared store
//! the cap is also a pool of that many slots in the database (`exsync_store::Slots`), and a
//! user's pass takes one before it starts and gives it back when it ends. Each slot held
//! grants the process's EWS client one request in flight (`exsync_ews::AccountShare`), so
//! the processes together never send more than the cap, and the database is asked once per
//! user pass, not per request; a user Graph serves by configuration takes none. A slot is
//! renewed while its pass runs; a process that dies leaves its slots to lapse after one lease
//! length. A pass that finds every slot held waits for one, and says so in the log.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use exsync_core::UserKey;
use exsync_ews::AccountShare;
use exsync_store::{Slot, Store, StoreError, EXCHANGE_REQUESTS};
use tokio::sync::watch;

use super::pass::{on_store, PassError};
use crate::metrics::{names, Metrics};

/// How often a pass waiting for a slot asks again: short next to a user's pass, long next to
/// one database round trip.
const POLL: Duration = Duration::from_millis(250);

/// The pool this process takes its Exchange requests from.
#[derive(Clone)]
pub struct ExchangeSlots {
    /// What the slots held grant the EWS client.
    pub share: AccountShare,
    /// `exchange.max_concurrency`: the pool's size.
    pub size: u32,
    /// Where the time passes wait for a slot is counted.
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for ExchangeSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangeSlots")
            .field("share", &self.share)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// A slot a user's pass holds, renewed until given back.
pub(super) struct HeldSlot {
    renewal: tokio::task::JoinHandle<()>,
    slot: Arc<Mutex<Slot>>,
    share: AccountShare,
    store: Arc<dyn Store>,
}

/// How a user's pass got its turn at Exchange.
pub(super) enum Turn {
    /// This process alone sends for the account: its own cap is the whole of it.
    Alone,
    /// A slot, held until given back.
    Held(HeldSlot),
    /// The service is stopping: the pass does not start.
    Stopping,
}

impl ExchangeSlots {
    /// Waits for a free slot for `user`'s pass (asking the database every [`POLL`]), renews
    /// it every third of `ttl` and grants the EWS client one more request in flight.
    pub(super) async fn take(
        &self,
        store: &Arc<dyn Store>,
        holder: &str,
        ttl: Duration,
        user: &UserKey,
        stop: Option<&watch::Receiver<bool>>,
    ) -> Result<Turn, PassError> {
        let mut waiting: Option<Instant> = None;
        let slot = loop {
            let (holder, size) = (holder.to_owned(), self.size);
            let taken = on_store(store, move |s| {
                s.take_slot(EXCHANGE_REQUESTS, &holder, size, ttl)
            })
            .await?;
            if let Some(slot) = taken {
                break slot;
            }
            if stop.is_some_and(|s| *s.borrow()) {
                return Ok(Turn::Stopping);
            }
            if waiting.is_none() {
                tracing::info!(user = %user, max_concurrency = self.size, "Waiting for a free Exchange slot: the workers together already have exchange.max_concurrency requests in flight for the service account.");
                waiting = Some(Instant::now());
            }
            tokio::time::sleep(POLL).await;
        };
        if let Some(since) = waiting {
            let waited = since.elapsed();
            self.metrics
                .add(names::EXCHANGE_SLOT_WAIT, vec![], waited.as_secs_f64());
            tracing::info!(user = %user, slot = slot.number, waited_ms = waited.as_millis() as u64, "Got an Exchange slot; the pass starts.");
        }
        self.share.grant();
        let held = Arc::new(Mutex::new(slot));
        let renewal = tokio::spawn(renew(Arc::clone(store), Arc::clone(&held), ttl));
        Ok(Turn::Held(HeldSlot {
            renewal,
            slot: held,
            share: self.share.clone(),
            store: Arc::clone(store),
        }))
    }
}

/// Renews the slot every third of `ttl` until stopped. A slot another process took after it
/// lapsed (this one stalled) is said; the pass's requests then wait for the others' to end
/// no longer than they run, and the pass gives the grant back at its end as usual.
async fn renew(store: Arc<dyn Store>, held: Arc<Mutex<Slot>>, ttl: Duration) {
    let every = (ttl / 3).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        let slot = held.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let number = slot.number;
        match on_store(&store, move |s| s.renew_slot(&slot, ttl)).await {
            Ok(renewed) => *held.lock().unwrap_or_else(PoisonError::into_inner) = renewed,
            Err(PassError::Store(e @ StoreError::LeaseLost { .. })) => {
                tracing::warn!(slot = number, error = %e, "Exchange slot lost: this worker stalled past it and another took it; for the rest of this pass the two may together pass exchange.max_concurrency.");
                return;
            }
            Err(e) => {
                tracing::warn!(slot = number, error = %e, "Could not renew an Exchange slot; trying again at the next beat.");
            }
        }
    }
}

impl HeldSlot {
    /// Takes the grant back once one fewer request is in flight, then gives the slot back.
    /// A slot that cannot be given back (the database is unreachable) lapses by itself.
    pub(super) async fn give_back(self) {
        self.renewal.abort();
        self.share.withdraw().await;
        let slot = self
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let number = slot.number;
        if let Err(e) = on_store(&self.store, move |s| s.release_slot(&slot)).await {
            tracing::warn!(slot = number, error = %e, "Could not give an Exchange slot back; it lapses by itself and another worker takes it then.");
        }
    }
}

impl Turn {
    /// Ends the turn: a held slot is given back.
    pub(super) async fn end(self) {
        if let Turn::Held(slot) = self {
            slot.give_back().await;
        }
    }
}
