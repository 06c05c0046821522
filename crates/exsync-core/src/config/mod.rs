//! Sync configuration: the model the planner and service use.

mod model;

pub use model::*;
