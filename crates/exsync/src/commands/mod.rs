//! One module per command; `run` dispatches to them.

mod admin;
mod check;
mod config;
#[cfg(feature = "demo")]
mod demo;
mod secrets;
mod serve;
mod service;
mod state;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        #[cfg(feature = "demo")]
        Command::Demo(args) => demo::run(&args),
        Command::Run(args) => service::run(&args),
        Command::Sync(args) => service::sync(&args),
        Command::Config(command) => config::run(command),
        Command::Status(args) => state::status(&args),
        Command::Reset(args) => state::reset(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Secrets(command) => secrets::run(command),
        Command::Admin(command) => admin::run(command),
        Command::Check(args) => check::run(&args),
    }
}
