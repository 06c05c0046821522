//! Simulators of an Exchange server (EWS + Autodiscover), of the Salesforce REST API and of
//! Microsoft Graph with Exchange Online behind it (and the Entra token endpoint), faithful
//! enough that real third-party clients work against them. Used by tests, benchmarks and
//! `exsync demo`.
//!
//! Other crates start a simulator in-process with [`exchange::ExchangeSim`],
//! [`salesforce::SalesforceSim`] or [`graph::GraphSim`]; the `exsync-sim` binary runs their
//! `cli::run`s. The request handling behind them is private to this crate.

#![warn(unreachable_pub)]
#![warn(missing_docs)]

mod cli_support;
pub mod exchange;
pub mod graph;
mod https;
mod journal;
pub mod kdc;
mod lone_surrogate;
pub mod salesforce;
pub mod tls;

pub use lone_surrogate::LONE_SURROGATE;
