//! exsync: the sync service and the pieces of the command-line tool that tests drive.

pub mod sync;
