//! The sync service: the org-wide pass ([`service`]), one user's pass ([`pass`]), and what it
//! needs from each side ([`sides`]).

pub mod daemon;
pub mod pass;
pub mod service;
pub mod sides;
pub mod stage;

#[cfg(test)]
mod tests;
