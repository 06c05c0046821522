//! Runs the Salesforce simulator in-process and builds connector clients for it.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use exsync_salesforce::{AuthConfig, SalesforceClient, SalesforceConfig, Secret};
use exsync_sim::salesforce::{generate_key_pem, SalesforceSim, JWT_KEY_FILE};
use serde_json::Value;

/// One RSA key for every simulator of this test binary: generating one takes seconds in an
/// unoptimised build.
fn shared_key() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| generate_key_pem().expect("generating the test JWT key"))
}

pub struct Harness {
    pub sim: SalesforceSim,
    pub dir: tempfile::TempDir,
    control: reqwest::Client,
}

impl Harness {
    pub async fn start() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(JWT_KEY_FILE), shared_key()).unwrap();
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let sim = SalesforceSim::start(dir.path(), addr).await.unwrap();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca = std::fs::read(&sim.info.ca_file).unwrap();
        let control = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap();
        Harness { sim, dir, control }
    }

    /// A connector configured for JWT bearer as `username`, with fast retries and no settle
    /// delay.
    pub fn config_for(&self, username: &str) -> SalesforceConfig {
        let info = &self.sim.info;
        let key = std::fs::read(&info.private_key_file).unwrap();
        let mut config = SalesforceConfig::new(
            info.instance_url.clone(),
            AuthConfig::JwtBearer {
                client_id: info.client_id.clone(),
                username: username.to_owned(),
                private_key_pem: Secret::new(key),
                audience: "https://login.salesforce.com".into(),
            },
        );
        config.api_version = info.api_version.clone();
        config.ca_pem = Some(std::fs::read(&info.ca_file).unwrap());
        config.retry_base = Duration::from_millis(5);
        config.timeout = Duration::from_secs(20);
        config.settle = Duration::ZERO;
        config.limit_reserve = 0;
        config
    }

    pub fn config(&self) -> SalesforceConfig {
        self.config_for(&self.sim.info.integration_user.username)
    }

    pub fn client(&self) -> SalesforceClient {
        SalesforceClient::new(self.config()).unwrap()
    }

    pub fn user_id(&self, username_prefix: &str) -> String {
        self.sim
            .info
            .users
            .iter()
            .find(|u| u.username.starts_with(username_prefix))
            .unwrap()
            .id
            .clone()
    }

    pub async fn control(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.sim.info.control_url);
        let response = self
            .control
            .request(method, url)
            .bearer_auth(&self.sim.info.control_token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "control {path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    pub async fn counter(&self, key: &str) -> u64 {
        let counters = self
            .control(reqwest::Method::GET, "/counters", Value::Null)
            .await;
        counters["counters"][key].as_u64().unwrap_or(0)
    }
}
