//! `exsync-sim graph --listen ADDR --data-dir DIR [--domain D] [--mailboxes N] [--out-of-scope M]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "exsync-sim graph",
    about = "Simulated Microsoft Graph (Exchange Online) and Entra token endpoint over HTTPS"
)]
struct Args {
    /// Address to listen on; port 0 picks a free port (see sim.json for the result).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Directory holding the tenant's state, the CA, the app's credentials and sim.json.
    #[arg(long)]
    data_dir: PathBuf,
    /// Domain of the mailboxes' addresses (first start only).
    #[arg(long, default_value = super::DEFAULT_DOMAIN)]
    domain: String,
    /// Mailboxes in the app's management scope, user1@DOMAIN… (first start only).
    #[arg(long, default_value_t = 2)]
    mailboxes: usize,
    /// Mailboxes outside the scope, outside1@DOMAIN… (first start only).
    #[arg(long, default_value_t = 1)]
    out_of_scope: usize,
}

/// Runs `exsync-sim graph` with `args` (the program name first) until stopped; the exit code
/// reports a usage error or a failed start.
pub fn run(args: Vec<String>) -> ExitCode {
    crate::cli_support::run("exsync-sim graph", args, "info", main)
}

async fn main(args: Args) -> anyhow::Result<()> {
    let options = super::Options {
        domain: args.domain,
        mailboxes: args.mailboxes,
        out_of_scope: args.out_of_scope,
    };
    let sim = super::GraphSim::start_with(&args.data_dir, args.listen, &options).await?;
    crate::cli_support::ready(
        "exsync-sim graph",
        &sim.info.graph_url,
        &args.data_dir.join(super::SIM_JSON),
    );
    crate::cli_support::wait_for_stop().await;
    sim.shutdown().await;
    Ok(())
}
