//! The storage interface. SQLite implements it today; a PostgreSQL backend shared by several
//! workers will implement it later, so nothing here names a backend type, every method takes
//! `&self` (backends synchronise internally) and every trait is object-safe.
//!
//! The methods are grouped into roles by who calls them: [`SyncState`] for the sync engine,
//! [`Accounts`] for the console's accounts and [`Secrets`] for the vault. A backend implements
//! each role; [`Store`] joins them.
//!
//! Calls block; async callers run them on a blocking thread.

use crate::roles::{Accounts, Budgets, Departures, Leases, Secrets, Slots, SyncState};

/// The whole state database: every role at once. The service opens one database and hands it
/// to every part of exsync as an `Arc<dyn Store>`.
///
/// It has no methods of its own, and any type that implements every role is a `Store` without
/// saying so, so a backend cannot provide the roles and forget the union.
pub trait Store:
    SyncState + Accounts + Secrets + Leases + Budgets + Slots + Departures + Send + Sync
{
}

impl<T: SyncState + Accounts + Secrets + Leases + Budgets + Slots + Departures> Store for T {}
