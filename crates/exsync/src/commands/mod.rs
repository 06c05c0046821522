//! One module per command; `run` dispatches to them.

mod admin;
mod auto_routes;
mod check;
mod config;
#[cfg(feature = "demo")]
mod demo;
#[cfg(feature = "demo")]
mod demo_workers;
mod secrets;
mod serve;
mod service;
mod state;
mod store_copy;
mod store_password;

use std::process::ExitCode;

use crate::cli::Command;

/// Who made a change from the command line, for the audit log: the OS user.
pub(crate) fn cli_actor() -> String {
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()));
    let user = user.unwrap_or_else(|| {
        #[cfg(unix)]
        {
            format!("uid {}", rustix::process::getuid().as_raw())
        }
        #[cfg(not(unix))]
        {
            "unknown".to_owned()
        }
    });
    format!("cli:{user}")
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
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
        Command::Store(crate::cli::StoreCommand::Copy(args)) => store_copy::run(&args),
    }
}
