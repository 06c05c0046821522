//! Simulators of an Exchange server (EWS + Autodiscover) and of the Salesforce REST API,
//! faithful enough that real third-party clients work against them. Used by tests,
//! benchmarks and `exsync demo`.

#![warn(unreachable_pub)]

mod cli_support;
pub mod exchange;
pub mod salesforce;
pub mod tls;
