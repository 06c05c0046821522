//! `exsync`: the command-line entry point. Parsing lives in `cli`, each command in
//! `commands`; this file only wires them together and turns the outcome into an exit code.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("exsync: {e:#}");
            ExitCode::FAILURE
        }
    }
}
