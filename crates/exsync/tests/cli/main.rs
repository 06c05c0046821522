//! The `exsync` binary's admin commands, as one test binary: `config` checks and shows
//! configuration files, `state` runs `exsync status` and `exsync reset` on a real state
//! database, `guide` checks the admin guide's commands and keys against the command line and
//! the configuration loader.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod check;
mod config;
mod guide;
mod state;
mod version;
