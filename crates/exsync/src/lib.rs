//! exsync: the sync service and the pieces of the command-line tool that tests drive.

pub mod connect;
pub mod console;
pub mod lab;
pub mod metrics;
pub mod sync;
pub mod vault;
