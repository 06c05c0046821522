//! The Exchange simulator: EWS (SOAP) and Autodiscover over HTTPS, Basic and NTLM auth,
//! impersonation rights, throttling and injected faults, with state kept in a data directory.

pub(crate) mod auth;
pub(crate) mod autodiscover;
pub(crate) mod changes;
pub mod cli;
pub(crate) mod control;
pub(crate) mod faults;
pub(crate) mod launch;
pub(crate) mod ops;
pub(crate) mod order;
pub(crate) mod outlook_view;
pub(crate) mod server;
pub(crate) mod soap;
pub(crate) mod store;
pub(crate) mod throttle;
pub(crate) mod xml;

pub use launch::{ExchangeSim, ExchangeSimOptions};
