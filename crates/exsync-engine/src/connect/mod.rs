//! Adapters from the connectors to what the sync service needs of each side.

pub mod budget;
pub mod build;
pub mod ews;
pub mod graph;
pub mod locate;
pub mod salesforce;

pub use build::BuildError;
