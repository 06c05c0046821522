//! Runs the Salesforce simulator in-process and builds connector clients for it.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use exsync_salesforce::{AuthConfig, SalesforceClient, SalesforceConfig, Secret};
use exsync_sim::salesforce::{SalesforceSim, JWT_KEY_FILE};
use exsync_testkit::keys::jwt_key_pem;
use exsync_testkit::sim::SalesforceControl;

pub struct Harness {
    pub sim: SalesforceSim,
    pub dir: tempfile::TempDir,
    pub control: SalesforceControl,
}

impl Harness {
    pub async fn start() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        // One key for every simulator of the binary (see `exsync_testkit::keys`).
        std::fs::write(dir.path().join(JWT_KEY_FILE), jwt_key_pem()).unwrap();
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let sim = SalesforceSim::start(dir.path(), addr).await.unwrap();
        let control = SalesforceControl::new(
            &sim.info.control_url,
            &sim.info.control_token,
            &sim.info.ca_file,
        );
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

    pub async fn counter(&self, key: &str) -> u64 {
        self.control.counter(key).await
    }
}
