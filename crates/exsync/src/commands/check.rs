//! `exsync check`: the connectivity analyzer from the command line. Exit 1 when a step
//! failed, so scripts can gate a go-live on it.

use std::process::ExitCode;

use anyhow::Context;
use exsync::console::check::{run as run_checks, Inputs};
use exsync_core::config::load;

use super::secrets::open_vault;
use crate::cli::CheckArgs;

pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let config = load(&args.config.config).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    let (_, vault, _) = open_vault(&args.config, &args.key)?;
    let inputs = Inputs::from_vault(config, &vault, args.user.clone())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(run_checks(&inputs));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
