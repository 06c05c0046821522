//! `exsync`: the command-line entry point. Parsing lives in `cli`, each command in
//! `commands`; this file only wires them together and turns the outcome into an exit code.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    private_files();
    let cli = cli::Cli::parse();
    match commands::run(cli.resolve_config()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("exsync: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Everything exsync creates (the state database and its journal, wire traces, the pass's
/// scratch files, the demo's simulators) holds synced contacts and events or secrets, so it is
/// created readable by the service's user only, whatever the umask exsync was started with.
fn private_files() {
    #[cfg(unix)]
    {
        use rustix::fs::Mode;
        let inherited = rustix::process::umask(Mode::from_raw_mode(0o077));
        // Keep anything stricter the caller asked for.
        rustix::process::umask(inherited | Mode::from_raw_mode(0o077));
    }
}
