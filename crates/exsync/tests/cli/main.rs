//! The `exsync` binary's admin commands, as one test binary: `config` checks and shows
//! configuration files, `state` runs `exsync status` and `exsync reset` on a real state
//! database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod check;
mod config;
mod state;
