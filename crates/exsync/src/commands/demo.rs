//! `exsync demo`.

use std::process::ExitCode;

use anyhow::Context;
use exsync::lab::demo::{self, DemoOptions};

use crate::cli::DemoArgs;

pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let options = DemoOptions {
            users: args.users,
            contacts: args.contacts,
            events: args.events,
            dir: args.data_dir.clone(),
        };
        let outcome = demo::run(&options).await?;
        if args.keep_running {
            let lab = &outcome.lab;
            let exchange = &lab.exchange_sim.info;
            println!("\nThe simulators keep running until Ctrl-C:");
            println!("  Exchange (EWS):   {}", exchange["ews_url"].as_str().unwrap_or_default());
            println!("  Salesforce:       {}", lab.salesforce_sim.info.instance_url);
            println!("  data and sim.json files: {}", lab.options.dir.display());
            println!("  state database:   {}", lab.options.dir.join("exsync.db").display());
            println!(
                "  their CA certificates, service account and control API tokens are in each sim.json; \
                 `exsync status` reads the state database."
            );
            tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
        }
        Ok(if outcome.converged { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    })
}
