//! `exsync-sim salesforce --listen ADDR --data-dir DIR`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "exsync-sim salesforce",
    about = "Simulated Salesforce org (REST API + OAuth) over HTTPS"
)]
struct Args {
    /// Address to listen on; port 0 picks a free port (see sim.json for the result).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Directory holding the org's state, the CA, the JWT key and sim.json.
    #[arg(long)]
    data_dir: PathBuf,
}

/// Runs `exsync-sim salesforce` with `args` (the program name first) until stopped; the exit
/// code reports a usage error or a failed start.
pub fn run(args: Vec<String>) -> ExitCode {
    crate::cli_support::run("exsync-sim salesforce", args, "info", main)
}

async fn main(args: Args) -> anyhow::Result<()> {
    let sim = super::SalesforceSim::start(&args.data_dir, args.listen).await?;
    crate::cli_support::ready(
        "exsync-sim salesforce",
        &sim.info.instance_url,
        &args.data_dir.join(super::SIM_JSON),
    );
    crate::cli_support::wait_for_stop().await;
    sim.shutdown().await;
    Ok(())
}
