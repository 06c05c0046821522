//! A Salesforce org simulator: OAuth 2.0 (JWT bearer, client credentials), SOQL query /
//! queryAll, sObject rows, upsert by external id, sObject Collections, getUpdated /
//! getDeleted, limits with an enforced daily allowance, and a control API for tests.
//! State lives in a data directory and survives restarts.

mod api;
mod auth;
mod changes;
pub mod cli;
mod control;
mod row;
mod schema;
mod server;
pub(crate) mod soql;
mod store;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::TcpListener;

pub use auth::{generate_key_pem, JWT_KEY_FILE};
pub use schema::{EXTERNAL_ID_FIELD, USER_MAILBOX_FIELD};
pub use server::Faults;

use crate::tls::SimCa;
use server::Org;

/// The REST API version `sim.json` tells clients to use (the simulator also answers under
/// the few later versions it lists at `/services/data`).
pub const API_VERSION: &str = "59.0";
/// The file in the data directory that [`SimInfo`] is written to once the simulator is ready.
pub const SIM_JSON: &str = "sim.json";

/// A user of the simulated org, as listed in `sim.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SimUser {
    /// The User record's 18-character id.
    pub id: String,
    /// The login name; a JWT bearer assertion names it as `sub` to act as this user.
    pub username: String,
    /// The user's email address.
    pub email: String,
    /// The name of the user's profile, empty if it has none.
    pub profile: String,
}

/// What a client needs to talk to the simulator; written to `DIR/sim.json` when it is ready.
/// It holds the connected app's secrets, so the file is private to its owner.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimInfo {
    /// Base URL of the org, `https://host:port`, for REST calls.
    pub instance_url: String,
    /// The OAuth 2.0 token endpoint.
    pub token_url: String,
    /// Equal to [`API_VERSION`].
    pub api_version: String,
    /// Accepted `aud` values of a JWT bearer assertion.
    pub jwt_audiences: Vec<String>,
    /// The connected app's consumer key: `iss` of a JWT assertion, or the client-credentials
    /// client id.
    pub client_id: String,
    /// The connected app's consumer secret, for the client-credentials flow.
    pub client_secret: String,
    /// The RSA private key a client signs JWT assertions with ([`JWT_KEY_FILE`]).
    pub private_key_file: PathBuf,
    /// Its public half, as registered with the connected app.
    pub public_key_file: PathBuf,
    /// The CA certificate (PEM) a client must trust to reach the simulator over HTTPS.
    pub ca_file: PathBuf,
    /// The user the client-credentials flow runs as.
    pub integration_user: SimUser,
    /// Every user of the org when the simulator started, the integration user included.
    pub users: Vec<SimUser>,
    /// Base URL of the control API that tests use to seed data and inject faults.
    pub control_url: String,
    /// Bearer token the control API requires (the OAuth access tokens are not accepted
    /// there).
    pub control_token: String,
}

/// A running simulator. Dropping it (or calling [`SalesforceSim::shutdown`]) stops accepting
/// connections.
pub struct SalesforceSim {
    /// What was written to `sim.json`.
    pub info: SimInfo,
    /// The address actually bound (the port chosen when asked for port 0).
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SalesforceSim {
    /// Starts the simulator on `addr` (port 0 picks one) with its state in `dir`, and writes
    /// `dir/sim.json` once it accepts connections.
    pub async fn start(dir: &Path, addr: SocketAddr) -> anyhow::Result<SalesforceSim> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let ca = SimCa::load_or_create(dir)?;
        let keys = auth::JwtKeys::load_or_create(dir)?;
        let schema = schema::Schema::standard();
        let state_path = dir.join("state.json");
        let mut db = store::Db::load_or_create(&state_path, &schema)?;
        let persistence = changes::Persistence::start(&state_path, &mut db)?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let host = addr.ip().to_string();
        let tls = ca.server_config(&[host.as_str(), "localhost"])?;
        let base_url = format!("https://{}", crate::https::host_port(addr));
        let audiences = vec![
            "https://login.salesforce.com".to_owned(),
            "https://test.salesforce.com".to_owned(),
            base_url.clone(),
            format!("{base_url}/login.salesforce.com"),
            format!("{base_url}/test.salesforce.com"),
        ];
        let info = SimInfo {
            instance_url: base_url.clone(),
            token_url: format!("{base_url}/services/oauth2/token"),
            api_version: API_VERSION.to_owned(),
            jwt_audiences: audiences.clone(),
            client_id: db.settings.client_id.clone(),
            client_secret: db.settings.client_secret.clone(),
            private_key_file: keys.private_key_path.clone(),
            public_key_file: keys.public_key_path.clone(),
            ca_file: ca.ca_cert_path(),
            integration_user: user_info(&db, &db.settings.integration_user_id),
            users: db
                .records
                .get("User")
                .map(|users| users.keys().map(|id| user_info(&db, id)).collect())
                .unwrap_or_default(),
            control_url: format!("{base_url}/_control"),
            control_token: db.settings.control_token.clone(),
        };
        let org = Arc::new(Org {
            schema,
            persistence: Mutex::new(persistence),
            db: Mutex::new(db),
            sessions: Mutex::new(auth::Sessions::default()),
            keys,
            faults: Mutex::new(Faults::default()),
            counters: Mutex::new(Default::default()),
            cursors: Mutex::new(Default::default()),
            next_cursor: Mutex::new(0),
            stamp_order: Mutex::new(Default::default()),
            base_url,
            audiences,
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let stop_serving = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(crate::https::serve(
            listener,
            acceptor,
            stop_serving,
            move |req| server::handle(org.clone(), req),
        ));
        crate::cli_support::write_private_json(&dir.join(SIM_JSON), &info)?;
        tracing::info!(url = %info.instance_url, "salesforce simulator ready");
        Ok(SalesforceSim {
            info,
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Stops accepting connections and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SalesforceSim {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn user_info(db: &store::Db, id: &str) -> SimUser {
    let empty = Default::default();
    let rec = db
        .records
        .get("User")
        .and_then(|u| u.get(id))
        .unwrap_or(&empty);
    let text = |r: &store::Rec, k: &str| {
        r.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let profile = db
        .records
        .get("Profile")
        .and_then(|p| p.get(&text(rec, "ProfileId")))
        .map(|p| text(p, "Name"))
        .unwrap_or_default();
    SimUser {
        id: id.to_owned(),
        username: text(rec, "Username"),
        email: text(rec, "Email"),
        profile,
    }
}
