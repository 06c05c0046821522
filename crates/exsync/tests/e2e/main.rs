//! End to end, in one test binary (one module per area), against both simulators through the
//! real connectors: the `exsync` binary killed at any moment (`crash`) or aborted at each
//! failpoint (`failpoints`, which needs the `failpoints` feature: `scripts/test` builds with
//! `--features exsync/failpoints`), injected faults, what a record means after the trip,
//! all-day events in the owner's time zone (`day_zone`), hostile
//! CRM data, a hybrid organisation (EWS and Graph), the lab and the demo, moving from Lightning Sync, private files, the sync rules,
//! `exsync run`, the user's sync folder in their hands and `exsync check` on it, and each
//! side's answer about the copies a crash may have left (`ews_copies`, `salesforce_copies`).
//!
//! `MASTER_KEY` and `shared_key` are the ones every lab here uses. Under nextest each test runs
//! in its own process; under `cargo test` they all run as threads of one, so the timed kills
//! of `crash` see more load than they did in a binary of their own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

mod budgets;
mod check_auto;
mod check_sync_folder;
mod check_users;
mod crash;
mod day_zone;
mod db_restart;
mod demo_keep_running;
mod demo_workers;
mod ews_copies;
mod exchange_slots;
mod failpoints;
mod faults;
mod fidelity;
mod hostile;
mod hybrid;
mod kerberos;
mod lab;
mod migration;
mod pairing;
mod postgres;
mod private_files;
mod rules;
mod run;
mod salesforce_copies;
mod series_restart;
mod sync_folder;
mod workers;

/// Runs each named test body (an `async fn(Backend)`) once per mailbox backend, as the tests
/// `NAME::ews` (Exchange on premises) and `NAME::graph` (Exchange Online): one suite for both.
macro_rules! on_each_backend {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use exsync_engine::sync::mailboxes::Backend;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ews() {
                super::$name(Backend::Ews).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn graph() {
                super::$name(Backend::Graph).await
            }
        }
    )*};
}
use on_each_backend;

/// Lab options whose every mailbox is on `backend`.
fn lab_options(
    dir: impl Into<std::path::PathBuf>,
    users: usize,
    backend: exsync_engine::sync::mailboxes::Backend,
) -> exsync_lab::LabOptions {
    let mut options = exsync_lab::LabOptions::new(dir, users);
    if backend == exsync_engine::sync::mailboxes::Backend::Graph {
        options.exchange_online = Some(users);
        options.crm_key_pem = Some(shared_key());
    }
    options
}

/// Asserts that every lab user's last run was served by `backend`: the test ran where it says.
fn served_by(lab: &exsync_lab::Lab, backend: exsync_engine::sync::mailboxes::Backend) {
    for user in &lab.users {
        let runs = lab.syncer.store.runs(&user.key, 1).unwrap();
        assert_eq!(
            runs.first().and_then(|r| r.backend.as_deref()),
            Some(backend.as_str()),
            "{}: {runs:?}",
            user.key
        );
    }
}

/// The settings of a Salesforce client of the simulator `info` describes: logged in as its
/// integration user with a JWT bearer assertion, trusting the simulator's CA, keeping no API
/// reserve.
fn salesforce_config(
    info: &exsync_sim::salesforce::SimInfo,
) -> exsync_salesforce::SalesforceConfig {
    use exsync_salesforce::{AuthConfig, SalesforceConfig, Secret};
    let mut config = SalesforceConfig::new(
        info.instance_url.clone(),
        AuthConfig::JwtBearer {
            client_id: info.client_id.clone(),
            username: info.integration_user.username.clone(),
            private_key_pem: Secret::new(std::fs::read(&info.private_key_file).unwrap()),
            audience: "https://login.salesforce.com".into(),
        },
    );
    config.api_version = info.api_version.clone();
    config.ca_pem = Some(std::fs::read(&info.ca_file).unwrap());
    config.limit_reserve = 0;
    config
}

/// The master key the labs' secrets are sealed with.
const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The CRM simulator's JWT signing key, made once per process: an RSA key takes a while.
fn shared_key() -> String {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| exsync_sim::salesforce::generate_key_pem().unwrap())
        .clone()
}
