//! The planner: a pure function from (CRM changes, Exchange changes, last-synced state,
//! configuration) to the operations that bring both sides together. No I/O.

mod types;

pub use types::*;
