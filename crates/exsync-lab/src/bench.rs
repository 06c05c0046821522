//! What the benchmark examples share: their flags, the exsync binary built beside them, and
//! the requests the simulators answered.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use exsync_sim::graph::GraphSim;
use reqwest::Method;
use serde_json::{json, Value};

use crate::Lab;

/// Whether `name` is on the command line.
pub fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// The number after `name` on the command line, or `default`.
pub fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The exsync binary built beside the running example (target/<profile>/exsync); when it is
/// missing, the error names `script`, which builds both.
pub fn exsync_binary(script: &str) -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let binary = me
        .parent()
        .and_then(Path::parent)
        .context("locating the target directory")?
        .join("exsync");
    if !binary.exists() {
        bail!(
            "{} is missing: run `{script}`, which builds it",
            binary.display()
        );
    }
    Ok(binary)
}

/// EWS requests so far, by operation.
pub async fn ews_operations(lab: &Lab) -> Result<BTreeMap<String, u64>> {
    let ews = lab
        .exchange_control(Method::GET, "/counters", &json!({}))
        .await?;
    Ok(serde_json::from_value(ews["requests_per_operation"].clone()).unwrap_or_default())
}

/// Mailbox requests (EWS operations, and Graph's HTTP requests when it serves the mailboxes)
/// and CRM calls so far.
pub async fn counters(lab: &Lab) -> Result<(u64, u64)> {
    let ews_total: u64 = ews_operations(lab).await?.values().sum();
    let crm = lab
        .crm_control(Method::GET, "/counters", &json!({}))
        .await?;
    let graph_total = match &lab.graph_sim {
        Some(sim) => graph_requests(sim).await?,
        None => 0,
    };
    Ok((ews_total + graph_total, crm["total"].as_u64().unwrap_or(0)))
}

/// HTTP requests the Graph simulator answered (tokens included): a `$batch` counts once, as it
/// is one request on the wire.
async fn graph_requests(sim: &GraphSim) -> Result<u64> {
    let info = &sim.info;
    let pem = std::fs::read(&info.ca_pem)?;
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem)?)
        .build()?;
    let counters: Value = http
        .get(format!("{}/counters", info.control_url))
        .bearer_auth(&info.control_token)
        .send()
        .await?
        .json()
        .await?;
    Ok(counters["hosts"]
        .as_object()
        .map(|hosts| hosts.values().filter_map(|h| h["requests"].as_u64()).sum())
        .unwrap_or(0))
}
