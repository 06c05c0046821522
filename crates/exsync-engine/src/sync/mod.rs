//! The sync service: the org-wide pass ([`service`]), one user's pass ([`pass`]), what it
//! needs from each side ([`sides`]), and the router sending each user's mailbox calls to the
//! backend that serves them ([`mailboxes`]).

pub mod daemon;
mod departures;
pub mod exchange_slots;
pub mod locate;
pub mod mailboxes;
pub mod pass;
mod scratch_json;
pub mod service;
pub mod sides;
pub mod spool;
pub mod stage;
pub mod workers;

#[cfg(test)]
mod tests;
