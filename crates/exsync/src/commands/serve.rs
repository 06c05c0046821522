//! `exsync serve`: the admin console on [console] listen (loopback by default), over TLS
//! when [console] names a certificate and key. `exsync run` serves the same console beside the
//! sync service when the configuration has a [console] section.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use exsync_console::{serve, Console, ServeOptions, TlsFiles};
use exsync_core::config::{load, ExsyncConfig};
use exsync_engine::vault::Vault;
use exsync_store::Store;
use tokio::net::TcpListener;

use super::secrets::open_vault;
use crate::cli::ServeArgs;

/// The console, bound to its address and ready to serve.
pub struct ConsoleServer {
    listener: TcpListener,
    state: Arc<Console>,
    tls: Option<TlsFiles>,
    /// Where it answers, for the ready line.
    pub url: String,
}

impl ConsoleServer {
    /// Binds the console of `config` on `listen`. An address other than loopback needs TLS: admin
    /// passwords would cross the network in clear.
    pub async fn bind(
        config: &ExsyncConfig,
        config_path: &Path,
        store: Arc<dyn Store>,
        vault: Vault,
        listen: SocketAddr,
    ) -> anyhow::Result<ConsoleServer> {
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
        let mut console = Console::new(store, vault, config_path.to_owned());
        console.tls = tls.is_some();
        console.connection_tests = true;
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen} for the console"))?;
        let bound = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        Ok(ConsoleServer {
            listener,
            state: Arc::new(console),
            tls,
            url: format!("{scheme}://{bound}/"),
        })
    }

    /// Serves until the listener fails.
    pub async fn serve(self) -> anyhow::Result<()> {
        serve(self.listener, self.state, ServeOptions { tls: self.tls })
            .await
            .map_err(anyhow::Error::from)
    }
}

/// Lets the console's connection test log in with Kerberos settings edited while it runs. Call
/// before the async runtime starts (it sets `KRB5_CONFIG`) and keep what it returns while the
/// console runs; a failure is reported, and only that test's Kerberos login is affected.
pub(crate) fn prepare_console_kerberos() -> Option<exsync_gss::krb5_conf::Switchable> {
    exsync_gss::krb5_conf::use_switchable()
        .inspect_err(|e| {
            tracing::warn!(error = %e, "The console's connection test cannot log in with Kerberos.");
            eprintln!("warning: the console's connection test cannot log in with Kerberos: {e}");
        })
        .ok()
}

pub fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let config = load(&args.config.config).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    let (store, vault, _) = open_vault(&args.config, &args.key)?;
    let listen = args.listen.unwrap_or(config.console.listen);
    let _krb5_conf = prepare_console_kerberos();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let server =
            ConsoleServer::bind(&config, &args.config.config, store, vault, listen).await?;
        eprintln!("exsync console listening on {}", server.url);
        tokio::select! {
            result = server.serve() => result,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("exsync console stopped");
                Ok(())
            }
        }
    })?;
    Ok(ExitCode::SUCCESS)
}
