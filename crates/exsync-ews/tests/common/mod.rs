//! Shared by the integration tests of this crate: a scriptable HTTPS server and the Exchange
//! simulator with EWS clients for it. What other crates' tests need too lives in
//! `exsync-testkit`.

pub mod fake;
pub mod sim;
