//! The `exsync` binary's admin commands, as one test binary: `config` checks and shows
//! configuration files, `state` runs `exsync status` and `exsync reset` on a real state
//! database, `guide` checks the admin guide's commands and keys against the command line and
//! the configuration loader, `help` that every command and flag says what it does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod check;
mod config;
mod guide;
mod help;
mod state;
mod version;

/// The binary's command-line definition itself, so the tests parse and inspect arguments
/// exactly as `exsync` does, without running anything.
#[allow(dead_code)]
#[path = "../../src/cli.rs"]
mod exsync_cli;
