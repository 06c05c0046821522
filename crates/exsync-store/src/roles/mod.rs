//! The roles the storage interface is cut into, one per consumer. A consumer that needs one
//! role depends on that role alone, and a backend can be written and tested one role at a
//! time; [`crate::Store`] joins them for the service, which holds the whole database.

mod accounts;
pub(crate) mod budgets;
mod departures;
mod leases;
mod secrets;
pub(crate) mod slots;
mod sync_state;

pub use accounts::Accounts;
pub use budgets::{BudgetLevel, Budgets, Draw, CRM_API_CALLS};
pub use departures::{Departures, Retired};
pub use leases::{
    InboxEntry, Lease, LeaseInfo, LeaseScope, Leases, RoutedChange, CRM_USERS_MAX, ORG_CRM_READ,
};
pub use secrets::Secrets;
pub use slots::{Slot, SlotInfo, Slots, EXCHANGE_REQUESTS, SLOTS_MAX};
pub use sync_state::SyncState;
