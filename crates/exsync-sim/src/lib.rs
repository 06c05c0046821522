//! Simulators of an Exchange server (EWS + Autodiscover) and of the Salesforce REST API,
//! faithful enough that real third-party clients work against them. Used by tests,
//! benchmarks and `exsync demo`.
//!
//! Other crates start a simulator in-process with [`exchange::ExchangeSim`] or
//! [`salesforce::SalesforceSim`]; the `exsync-sim` binary runs the two `cli::run`s. The
//! request handling behind them is private to this crate.

#![warn(unreachable_pub)]
#![warn(missing_docs)]

mod cli_support;
pub mod exchange;
pub mod graph;
mod journal;
pub mod salesforce;
pub mod tls;
