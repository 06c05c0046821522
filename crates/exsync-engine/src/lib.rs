//! exsync's sync engine: the service that runs passes and each user's pass (read, plan,
//! execute, commit), the mailbox and CRM sides with their adapters to the connectors, the vault
//! that keeps secrets encrypted at rest, the connectivity analyzer, and metrics. See
//! `ARCHITECTURE.md` at the repository's root for how a pass flows through these files.

#![warn(unreachable_pub)]
#![warn(missing_docs)]

pub mod check;
pub mod connect;
pub mod failpoints;
pub mod metrics;
pub mod switch;
pub mod sync;
pub mod vault;
