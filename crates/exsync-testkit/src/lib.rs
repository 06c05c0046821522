//! What exsync's integration tests share, so that each test crate stops carrying its own copy:
//! where the workspace and its interop Python are ([`paths`]), the EWS schema check
//! ([`schema`]), simulator processes and their control APIs ([`sim`]), running a binary
//! ([`cli`]), scripted servers that misbehave on purpose ([`hostile`]), the one JWT key a
//! test binary needs ([`keys`]), a throwaway PostgreSQL ([`postgres`]) and the log lines a test
//! reads back ([`logs`]).
//!
//! Test code: a helper that cannot do its job panics with the reason, like an assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod cli;
pub mod hostile;
pub mod kdc;
pub mod keys;
pub mod logs;
pub mod paths;
pub mod postgres;
pub mod schema;
pub mod sim;
