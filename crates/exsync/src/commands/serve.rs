//! `exsync serve`: the admin console on [console] listen (loopback by default), over TLS
//! when [console] names a certificate and key.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use exsync_console::{serve, Console, ServeOptions, TlsFiles};
use exsync_core::config::load;

use super::secrets::open_vault;
use crate::cli::ServeArgs;

pub fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let config = load(&args.config.config).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    let (store, vault, _) = open_vault(&args.config, &args.key)?;
    let listen = args.listen.unwrap_or(config.console.listen);
    let tls = match (&config.console.tls_cert_file, &config.console.tls_key_file) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    if tls.is_none() && !listen.ip().is_loopback() {
        bail!(
            "refusing to serve the console on {listen} without TLS: admin passwords would cross the network in clear; set [console] tls_cert_file and tls_key_file"
        );
    }
    let mut console = Console::new(store, vault, args.config.config.clone());
    console.tls = tls.is_some();
    console.connection_tests = true;
    let state = Arc::new(console);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let bound = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        eprintln!("exsync console listening on {scheme}://{bound}/");
        tokio::select! {
            result = serve(listener, state, ServeOptions { tls }) => result.map_err(anyhow::Error::from),
            _ = tokio::signal::ctrl_c() => {
                eprintln!("exsync console stopped");
                Ok(())
            }
        }
    })?;
    Ok(ExitCode::SUCCESS)
}
