//! `exsync-sim kdc`: the throwaway MIT KDC ([`exsync_kdc`]) as a process, for clients in other
//! languages (the interop tests' pyspnego): its `sim.json` names the realm, the port, a
//! krb5.conf, both keytabs and the service account's password.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::json;

#[derive(Parser, Debug)]
#[command(
    name = "exsync-sim kdc",
    about = "A throwaway MIT KDC on 127.0.0.1 (needs krb5-kdc and krb5-admin-server)"
)]
struct Args {
    /// Directory for sim.json (the KDC's own files live in a temporary directory, removed on
    /// stop).
    #[arg(long)]
    data_dir: PathBuf,
    /// The host of the service principal HTTP/<host>: the Exchange simulator's mail host.
    #[arg(long, default_value = "mail.contoso.test")]
    service_host: String,
    /// The longest ticket the service account gets, in seconds.
    #[arg(long)]
    max_life_secs: Option<u32>,
}

/// Runs `exsync-sim kdc` with `args` (the program name first) until stopped.
pub fn run(args: Vec<String>) -> ExitCode {
    crate::cli_support::run("exsync-sim kdc", args, "warn", main)
}

async fn main(args: Args) -> Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let options = exsync_kdc::KdcOptions {
        service_host: args.service_host,
        user_max_life_secs: args.max_life_secs,
        ..exsync_kdc::KdcOptions::default()
    };
    let kdc = tokio::task::spawn_blocking(move || exsync_kdc::Kdc::start_with(options))
        .await
        .context("the KDC's start task")??;
    let sim_json = args.data_dir.join("sim.json");
    crate::cli_support::write_private_json(
        &sim_json,
        &json!({
            "realm": exsync_kdc::REALM,
            "kdc": format!("127.0.0.1:{}", kdc.port),
            "krb5_conf": kdc.krb5_conf,
            "service_principal": kdc.service_principal,
            "service_keytab": kdc.service_keytab,
            "user_principal": kdc.user_principal(),
            "client_keytab": kdc.client_keytab,
            "password": exsync_kdc::PASSWORD,
        }),
    )?;
    crate::cli_support::ready(
        "exsync-sim kdc",
        &format!("127.0.0.1:{} (realm {})", kdc.port, exsync_kdc::REALM),
        &sim_json,
    );
    crate::cli_support::wait_for_stop().await;
    drop(kdc);
    Ok(())
}
