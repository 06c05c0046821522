//! exsync-core: the domain model (contacts, events, ids), normalisation and content hashing,
//! the sync configuration, and the planner, a pure function from changes on both sides and the
//! last-synced state to the operations that bring the two sides together. No I/O lives here.

#![warn(unreachable_pub)]
#![warn(missing_docs)]

mod allow;
pub mod config;
pub mod model;
pub mod observe;
pub mod plan;
mod secret;
pub mod surrogates;
pub mod tags;
pub mod zones;

pub use allow::{dns_name, AllowList};
pub use model::*;
pub use secret::Secret;
