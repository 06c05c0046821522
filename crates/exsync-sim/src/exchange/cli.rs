//! Command line of the exchange simulator: `exsync-sim exchange --listen … --data-dir …`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Parser;
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::json;

use super::auth::Schemes;
use super::server::{self, App, Config};
use super::store::{self, State};
use super::throttle::Throttle;
use crate::tls::SimCa;

#[derive(Parser, Debug)]
#[command(
    name = "exsync-sim exchange",
    about = "Simulated Exchange server (EWS + Autodiscover)"
)]
struct Args {
    /// HTTPS address (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Optional plain-HTTP address answering the Autodiscover redirect GET.
    #[arg(long)]
    http_listen: Option<String>,
    /// Directory for the CA, the state snapshot and sim.json.
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long, default_value = "contoso.test")]
    domain: String,
    /// Number of user mailboxes created on first start (user1@…, user2@…).
    #[arg(long, default_value_t = 3)]
    mailboxes: usize,
    /// Offered auth schemes: basic, ntlm or both.
    #[arg(long, default_value = "basic,ntlm")]
    auth: String,
    /// Require NTLM channel binding (tls-server-end-point of the leaf certificate).
    #[arg(long)]
    extended_protection: bool,
    /// EWSMaxConcurrency for the service account and for each mailbox.
    #[arg(long, default_value_t = 27)]
    max_concurrency: usize,
    /// BackOffMilliseconds in ErrorServerBusy answers caused by throttling.
    #[arg(long, default_value_t = 500)]
    back_off_ms: u64,
    /// Write every EWS request and reply body here (for schema validation).
    #[arg(long)]
    trace_dir: Option<PathBuf>,
}

pub fn run(args: Vec<String>) -> ExitCode {
    let args = match Args::try_parse_from(&args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("exsync-sim exchange: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(main(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("exsync-sim exchange: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn random_secret(n: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

fn initial_state(dir: &Path, domain: &str, mailboxes: usize) -> Result<State> {
    if let Some(st) = store::load(dir)? {
        if !st.domain.eq_ignore_ascii_case(domain) {
            bail!(
                "{} holds state for domain {} (asked for {domain})",
                dir.display(),
                st.domain
            );
        }
        return Ok(st);
    }
    let mut st = State::new(
        domain,
        "svc-sync",
        &format!("Sim-{}!", random_secret(20)),
        &random_secret(32),
    );
    let service = st.service_address();
    st.add_mailbox(&service, "Sync Service", false);
    for i in 1..=mailboxes {
        // Every other mailbox but the last grants impersonation, so tests have a denied one.
        let allowed = i < mailboxes || mailboxes == 1;
        st.add_mailbox(&format!("user{i}@{domain}"), &format!("User {i}"), allowed);
    }
    store::save(dir, &st)?;
    Ok(st)
}

async fn main(mut args: Args) -> Result<()> {
    let schemes = Schemes::parse(&args.auth).map_err(anyhow::Error::msg)?;
    let domain = args.domain.to_ascii_lowercase();
    if domain.is_empty() || domain.contains('/') {
        bail!("--domain must be a DNS name");
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    // Absolute paths, because sim.json hands them to other processes.
    args.data_dir = std::fs::canonicalize(&args.data_dir)
        .with_context(|| format!("resolving {}", args.data_dir.display()))?;
    if let Some(t) = &args.trace_dir {
        std::fs::create_dir_all(t).with_context(|| format!("creating {}", t.display()))?;
    }
    let ca = SimCa::load_or_create(&args.data_dir)?;
    let autodiscover_host = format!("autodiscover.{domain}");
    let mail_host = format!("mail.{domain}");
    let hosts = [
        domain.as_str(),
        &autodiscover_host,
        &mail_host,
        "127.0.0.1",
        "localhost",
    ];
    let leaf = ca.issue_leaf(&hosts)?;
    let binding = exsync_ntlm::ChannelBinding::tls_server_end_point(leaf.cert_der.as_ref())
        .map_err(|e| anyhow::anyhow!("channel binding of the leaf certificate: {e}"))?;
    let tls = crate::tls::server_config_for_leaf(leaf)?;

    let state = initial_state(&args.data_dir, &domain, args.mailboxes)?;
    let listener = server::bind(&args.listen).await?;
    let port = listener.local_addr().context("local address")?.port();
    let ip = listener.local_addr().context("local address")?.ip();
    let http_listener = match &args.http_listen {
        Some(a) => Some(server::bind(a).await?),
        None => None,
    };
    let http_port = match &http_listener {
        Some(l) => Some(l.local_addr().context("local address")?.port()),
        None => None,
    };

    let cfg = Config {
        domain: domain.clone(),
        schemes,
        extended_protection: args.extended_protection,
        trace_dir: args.trace_dir.clone(),
        data_dir: args.data_dir.clone(),
    };
    let throttle = Throttle::new(args.max_concurrency.max(1), args.back_off_ms);
    let info = {
        let mailboxes: Vec<serde_json::Value> = state
            .mailboxes
            .values()
            .filter(|m| !m.address.eq_ignore_ascii_case(&state.service_address()))
            .map(|m| json!({"address": m.address, "display_name": m.display_name, "impersonation": m.impersonation}))
            .collect();
        let allowed: Vec<&str> = state
            .mailboxes
            .values()
            .filter(|m| m.impersonation)
            .map(|m| m.address.as_str())
            .collect();
        let host = if ip.is_ipv6() {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        json!({
            "ews_url": format!("https://{host}:{port}/EWS/Exchange.asmx"),
            "ews_url_by_name": format!("https://{mail_host}:{port}/EWS/Exchange.asmx"),
            "autodiscover_urls": [
                format!("https://{domain}:{port}/autodiscover/autodiscover.svc"),
                format!("https://{autodiscover_host}:{port}/autodiscover/autodiscover.svc"),
                format!("https://{domain}:{port}/autodiscover/autodiscover.xml"),
                format!("https://{autodiscover_host}:{port}/autodiscover/autodiscover.xml"),
            ],
            "autodiscover_http_url": http_port.map(|p| format!("http://{autodiscover_host}:{p}/autodiscover/autodiscover.xml")),
            "host": host,
            "port": port,
            "http_port": http_port,
            "domain": domain,
            "ca_cert": ca.ca_cert_path(),
            "service_account": {
                "username": format!("{}\\{}", domain.split('.').next().unwrap_or("").to_ascii_uppercase(), state.service_account),
                "upn": state.service_address(),
                "password": state.password,
            },
            "mailboxes": mailboxes,
            "impersonation_allowed": allowed,
            "control_url": format!("https://{host}:{port}/_control"),
            "control_token": state.control_token,
            "auth": schemes.names(),
            "extended_protection": args.extended_protection,
            "max_concurrency": args.max_concurrency,
        })
    };
    let app = Arc::new(App::new(cfg, state, throttle, Some(binding)));
    if let Ok(mut u) = app.ews_url_by_name.lock() {
        *u = format!("https://{mail_host}:{port}/EWS/Exchange.asmx");
    }
    if let Ok(mut r) = app.http_redirect.lock() {
        *r = Some(format!(
            "https://{autodiscover_host}:{port}/autodiscover/autodiscover.xml"
        ));
    }
    if let Some(l) = http_listener {
        tokio::spawn(server::serve_http(Arc::clone(&app), l));
    }
    let serving = tokio::spawn(server::serve_https(Arc::clone(&app), listener, tls));
    write_sim_json(&args.data_dir, &info)?;
    tracing::info!(port, "exchange simulator ready");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        r = serving => { r.context("server task")?; }
    }
    Ok(())
}

/// sim.json holds the service password and control token: written 0600, atomically.
fn write_sim_json(dir: &Path, info: &serde_json::Value) -> Result<()> {
    use std::io::Write;
    let path = dir.join("sim.json");
    let tmp = dir.join("sim.json.tmp");
    let data = serde_json::to_vec_pretty(info).context("serialising sim.json")?;
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(&data)
            .with_context(|| format!("writing {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}
