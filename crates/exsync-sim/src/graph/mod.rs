//! A Microsoft Graph (Exchange Online) simulator: the identity platform's token endpoint,
//! RBAC for Applications, Graph v1.0 contacts and calendar, delta, `$batch` and Exchange
//! Online's throttling, with a control API for tests. State lives in a data directory and
//! survives restarts.

mod batch;
mod calendar;
mod calendar_view;
mod call;
pub mod cli;
mod contacts;
mod control;
mod date_filter;
mod event;
mod event_body;
mod identity;
mod odata;
mod paging;
mod recurrence;
mod server;
mod state;
mod throttle;
mod time_zone;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::tls::SimCa;

/// The file in the data directory that [`SimInfo`] is written to once the simulator is ready.
pub const SIM_JSON: &str = "sim.json";
/// The domain of the tenant's mailboxes unless told otherwise.
pub const DEFAULT_DOMAIN: &str = "contoso.test";

/// How the tenant is made the first time a data directory is used; a restart keeps the
/// tenant it finds and ignores these.
#[derive(Debug, Clone)]
pub struct Options {
    /// Domain of the mailboxes' addresses.
    pub domain: String,
    /// Mailboxes in the app's management scope: `user1@<domain>`…
    pub mailboxes: usize,
    /// Mailboxes that exist outside it: `outside1@<domain>`…
    pub out_of_scope: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            domain: DEFAULT_DOMAIN.to_owned(),
            mailboxes: 2,
            out_of_scope: 1,
        }
    }
}

/// What a client needs to talk to the simulator; written to `DIR/sim.json` when it is ready.
/// It holds the app's secret, so the file is private to its owner.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimInfo {
    /// `https://127.0.0.1:PORT/v1.0`.
    pub graph_url: String,
    /// `https://127.0.0.1:PORT/<tenant_id>`, as msal takes it.
    pub authority: String,
    /// `<authority>/oauth2/v2.0/token`.
    pub token_url: String,
    /// The tenant's id (a GUID).
    pub tenant_id: String,
    /// The app registration's client id.
    pub client_id: String,
    /// The app's service principal (the Enterprise application's object id), which Exchange's
    /// `New-ServicePrincipal -ObjectId` names in RBAC for Applications.
    pub service_principal_id: String,
    /// Its client secret.
    pub client_secret: String,
    /// The app's certificate credential (PEM), registered with the app.
    pub certificate_pem: PathBuf,
    /// Its private key (PEM), for signing client assertions.
    pub private_key_pem: PathBuf,
    /// The CA certificate (PEM) a client must trust to reach the simulator over HTTPS.
    pub ca_pem: PathBuf,
    /// The domain of the tenant's mailboxes (`contoso.test`), which also names the tenant in
    /// authority URLs.
    pub domain: String,
    /// Mailbox addresses in the app's management scope (both roles) at start-up.
    pub mailboxes: Vec<String>,
    /// Mailbox addresses that exist but are outside the scope at start-up.
    pub out_of_scope: Vec<String>,
    /// Base URL of the control API that tests use to seed data and inject faults.
    pub control_url: String,
    /// Bearer token the control API requires (Graph access tokens are not accepted there).
    pub control_token: String,
}

impl SimInfo {
    /// The sign-in authority without the tenant (`https://127.0.0.1:PORT`), as
    /// `exchange_online.authority_url` and the Graph connector's custom cloud take it.
    pub fn authority_url(&self) -> &str {
        self.authority
            .strip_suffix(&format!("/{}", self.tenant_id))
            .unwrap_or(&self.authority)
    }
}

/// A running simulator. Dropping it (or calling [`GraphSim::shutdown`]) stops accepting
/// connections; `shutdown` also writes the state a last time.
pub struct GraphSim {
    /// What was written to `sim.json`.
    pub info: SimInfo,
    /// The address actually bound (the port chosen when asked for port 0).
    pub addr: SocketAddr,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    task: Option<tokio::task::JoinHandle<()>>,
    saver: Option<tokio::task::JoinHandle<()>>,
}

impl GraphSim {
    /// Starts the simulator on `addr` (port 0 picks one) with its state in `dir` and the
    /// default [`Options`], and writes `dir/sim.json` once it accepts connections.
    pub async fn start(dir: &Path, addr: SocketAddr) -> anyhow::Result<GraphSim> {
        GraphSim::start_with(dir, addr, &Options::default()).await
    }

    /// [`GraphSim::start`] with a tenant made from `options` if `dir` holds none yet.
    pub async fn start_with(
        dir: &Path,
        addr: SocketAddr,
        options: &Options,
    ) -> anyhow::Result<GraphSim> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let ca = SimCa::load_or_create(dir)?;
        let identity = Arc::new(identity::Identity::load_or_create(dir)?);
        let tenant = Arc::new(state::Tenant::load_or_create(
            dir,
            &options.domain,
            options.mailboxes,
            options.out_of_scope,
        )?);
        let settings = tenant.settings();
        identity.add_domain(&settings.domain);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let host = addr.ip().to_string();
        let tls = ca.server_config(&[host.as_str(), "localhost"])?;
        let base_url = format!("https://{}", crate::https::host_port(addr));
        let authority = format!("{base_url}/{}", identity.tenant_id());
        let (mut mailboxes, mut out_of_scope) = (Vec::new(), Vec::new());
        for m in tenant.mailboxes() {
            let data = state::lock(&m.data);
            if data.scope.contains(state::ROLE_CONTACTS)
                && data.scope.contains(state::ROLE_CALENDARS)
            {
                mailboxes.push(m.address.clone());
            } else {
                out_of_scope.push(m.address.clone());
            }
        }
        let info = SimInfo {
            graph_url: format!("{base_url}/v1.0"),
            token_url: format!("{authority}/oauth2/v2.0/token"),
            authority,
            tenant_id: identity.tenant_id().to_string(),
            client_id: identity.client_id().to_string(),
            service_principal_id: identity.service_principal_id().to_string(),
            client_secret: identity.client_secret().to_string(),
            certificate_pem: identity.certificate_path().to_path_buf(),
            private_key_pem: identity.private_key_path().to_path_buf(),
            ca_pem: ca.ca_cert_path(),
            domain: settings.domain.clone(),
            mailboxes,
            out_of_scope,
            control_url: format!("{base_url}/_control"),
            control_token: settings.control_token,
        };
        let graph = Arc::new(server::Graph {
            tenant: tenant.clone(),
            identity,
            throttle: Arc::new(throttle::Throttle::default()),
            faults: Mutex::new(control::Faults::default()),
            counters: Mutex::new(control::Counters::default()),
            base_url,
        });
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let saver = tokio::spawn(state::persist(tenant, stopped.clone()));
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let task = tokio::spawn(async move {
            let mut stopped = stopped;
            let stop = async move {
                let _ = stopped.changed().await;
            };
            crate::https::serve(listener, acceptor, stop, move |req| {
                server::handle(graph.clone(), req)
            })
            .await
        });
        crate::cli_support::write_private_json(&dir.join(SIM_JSON), &info)?;
        tracing::info!(url = %info.graph_url, "graph simulator ready");
        Ok(GraphSim {
            info,
            addr,
            stop: Some(stop),
            task: Some(task),
            saver: Some(saver),
        })
    }

    /// Stops accepting connections, waits for the accept loop to end and writes the state.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Some(saver) = self.saver.take() {
            let _ = saver.await;
        }
    }
}

impl Drop for GraphSim {
    fn drop(&mut self) {
        // The save task sees the stop too and writes a last time if the runtime lives on.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
    }
}
