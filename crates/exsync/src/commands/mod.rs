//! One module per command; `run` dispatches to them.

mod config;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Config(command) => config::run(command),
    }
}
