//! The Exchange simulator: EWS (SOAP) and Autodiscover over HTTPS, Basic and NTLM auth,
//! impersonation rights, throttling and injected faults, with state kept in a data directory.

pub mod auth;
pub mod autodiscover;
pub mod cli;
pub mod control;
pub mod faults;
pub mod launch;
pub mod ops;
pub mod order;
pub mod server;
pub mod soap;
pub mod store;
pub mod throttle;
pub mod xml;

pub use launch::{ExchangeSim, ExchangeSimOptions};
