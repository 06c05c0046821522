//! One module per command; `run` dispatches to them.

mod config;
mod state;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Config(command) => config::run(command),
        Command::Status(args) => state::status(&args),
        Command::Reset(args) => state::reset(&args),
    }
}
