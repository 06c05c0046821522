//! Command line of the exchange simulator: `exsync-sim exchange --listen … --data-dir …`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use super::launch::{ExchangeSim, ExchangeSimOptions};

#[derive(Parser, Debug)]
#[command(
    name = "exsync-sim exchange",
    about = "Simulated Exchange server (EWS + Autodiscover)"
)]
struct Args {
    /// HTTPS address (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Optional plain-HTTP address answering the Autodiscover redirect GET.
    #[arg(long)]
    http_listen: Option<String>,
    /// Directory for the CA, the state snapshot and sim.json.
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long, default_value = "contoso.test")]
    domain: String,
    /// Number of user mailboxes created on first start (user1@…, user2@…).
    #[arg(long, default_value_t = 3)]
    mailboxes: usize,
    /// Offered auth schemes, comma-separated: basic, ntlm, negotiate.
    #[arg(long, default_value = "basic,ntlm")]
    auth: String,
    /// Keytab with the keys of HTTP/mail.<domain>, for --auth negotiate (MIT's krb5.conf, from
    /// KRB5_CONFIG, sets the clock skew allowed).
    #[arg(long)]
    keytab: Option<PathBuf>,
    /// Require channel binding (tls-server-end-point of the leaf certificate) for NTLM and Kerberos.
    #[arg(long)]
    extended_protection: bool,
    /// EWSMaxConcurrency for the service account and for each mailbox.
    #[arg(long, default_value_t = 27)]
    max_concurrency: usize,
    /// BackOffMilliseconds in ErrorServerBusy answers caused by throttling.
    #[arg(long, default_value_t = 500)]
    back_off_ms: u64,
    /// Write every EWS request and reply body here (for schema validation).
    #[arg(long)]
    trace_dir: Option<PathBuf>,
}

/// Runs `exsync-sim exchange` with `args` (the program name first) until stopped; the exit
/// code reports a usage error or a failed start.
pub fn run(args: Vec<String>) -> ExitCode {
    crate::cli_support::run("exsync-sim exchange", args, "warn", main)
}

async fn main(args: Args) -> Result<()> {
    let args_data_dir = args.data_dir.clone();
    let sim = ExchangeSim::start(ExchangeSimOptions {
        listen: args.listen,
        http_listen: args.http_listen,
        data_dir: args.data_dir,
        domain: args.domain,
        mailboxes: args.mailboxes,
        auth: args.auth,
        keytab: args.keytab,
        extended_protection: args.extended_protection,
        max_concurrency: args.max_concurrency,
        back_off_ms: args.back_off_ms,
        trace_dir: args.trace_dir,
    })
    .await?;
    let url = sim
        .info
        .get("ews_url")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    crate::cli_support::ready("exsync-sim exchange", &url, &args_data_dir.join("sim.json"));
    tokio::select! {
        _ = crate::cli_support::wait_for_stop() => {}
        r = sim.serving() => { r.context("server task")?; }
    }
    Ok(())
}
