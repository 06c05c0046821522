//! Starting the Exchange simulator, in-process (tests, benchmarks, `exsync demo`) or from its
//! command line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::json;
use tokio::task::JoinHandle;

use super::auth::Schemes;
use super::changes::Persistence;
use super::server::{self, App, Config};
use super::store::{self, State};
use super::throttle::Throttle;
use crate::tls::SimCa;

/// How to start the simulator; the command-line flags of `exsync-sim exchange`.
#[derive(Debug, Clone)]
pub struct ExchangeSimOptions {
    /// HTTPS address to listen on, `host:port`; port 0 picks a free one, which `sim.json`
    /// then names.
    pub listen: String,
    /// A second, plain-HTTP address answering only the Autodiscover redirect GET; `None`
    /// serves HTTPS alone.
    pub http_listen: Option<String>,
    /// Where the CA, the mailbox state and `sim.json` live; created if missing and made
    /// absolute on start, since `sim.json` hands its paths to other processes.
    pub data_dir: PathBuf,
    /// The mail domain (lower-cased on start); the certificate also covers `mail.` and
    /// `autodiscover.` under it. State left by another domain in `data_dir` is refused.
    pub domain: String,
    /// How many user mailboxes (`user1@…`, `user2@…`) to create; only read on the first start
    /// in an empty `data_dir`. Of two or more, all but the last may be impersonated, so tests
    /// have a denied one.
    pub mailboxes: usize,
    /// The schemes offered, comma-separated: `basic`, `ntlm`, `negotiate`. Anything else, or
    /// none, makes [`ExchangeSim::start`] fail.
    pub auth: String,
    /// The keytab holding `HTTP/mail.<domain>`'s keys, which `negotiate` needs.
    pub keytab: Option<PathBuf>,
    /// Require NTLM channel binding to the leaf certificate, as Exchange's Extended
    /// Protection does.
    pub extended_protection: bool,
    /// Requests in flight allowed per mailbox (and for the service account) before the
    /// simulator answers ErrorServerBusy, like EWSMaxConcurrency; 0 counts as 1.
    pub max_concurrency: usize,
    /// The BackOffMilliseconds hint, in milliseconds, sent with a throttling ErrorServerBusy.
    pub back_off_ms: u64,
    /// When set, every EWS request and reply body is written to this directory (created if
    /// missing), for checking replies against the EWS schema.
    pub trace_dir: Option<PathBuf>,
}

impl ExchangeSimOptions {
    /// Defaults of the command line, with state in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ExchangeSimOptions {
            listen: "127.0.0.1:0".into(),
            http_listen: None,
            data_dir: data_dir.into(),
            domain: "contoso.test".into(),
            mailboxes: 3,
            auth: "basic,ntlm".into(),
            keytab: None,
            extended_protection: false,
            max_concurrency: 27,
            back_off_ms: 500,
            trace_dir: None,
        }
    }
}

/// A running simulator: what `sim.json` says, and the server state for in-process control.
/// Dropping it stops serving.
pub struct ExchangeSim {
    /// The content of `sim.json`.
    pub info: serde_json::Value,
    /// The live server state, for a test in the same process to inspect or change without
    /// going through the control API.
    pub app: Arc<App>,
    port: u16,
    /// The data directory in use, absolute.
    pub data_dir: PathBuf,
    serving: Option<JoinHandle<()>>,
    http: Option<JoinHandle<()>>,
}

impl ExchangeSim {
    /// The HTTPS port actually bound (the one chosen when `listen` asked for port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits until the HTTPS server stops (it runs until the process ends or the handle drops).
    pub async fn serving(mut self) -> std::result::Result<(), tokio::task::JoinError> {
        match self.serving.take() {
            Some(task) => task.await,
            None => Ok(()),
        }
    }
}

impl Drop for ExchangeSim {
    fn drop(&mut self) {
        for task in [self.serving.take(), self.http.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
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
    Ok(st)
}

impl ExchangeSim {
    /// Starts the simulator with its state in `options.data_dir` and writes `sim.json` there
    /// once it accepts connections.
    pub async fn start(mut args: ExchangeSimOptions) -> Result<ExchangeSim> {
        let schemes = Schemes::parse(&args.auth).map_err(anyhow::Error::msg)?;
        let kerberos = match (&args.keytab, schemes.negotiate) {
            (Some(keytab), true) => Some(
                exsync_gss::AcceptorCredential::from_keytab(keytab)
                    .map_err(|e| anyhow::anyhow!("--keytab {}: {e}", keytab.display()))?,
            ),
            (None, true) => {
                bail!("--auth negotiate needs --keytab FILE (the keys of HTTP/mail.<domain>)")
            }
            (_, false) => None,
        };
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
        let persistence = Persistence::start(&args.data_dir, &state)?;
        let app = Arc::new(App::new(
            cfg,
            state,
            persistence,
            throttle,
            Some(binding),
            kerberos,
        ));
        if let Ok(mut u) = app.ews_url_by_name.lock() {
            *u = format!("https://{mail_host}:{port}/EWS/Exchange.asmx");
        }
        if let Ok(mut r) = app.http_redirect.lock() {
            *r = Some(format!(
                "https://{autodiscover_host}:{port}/autodiscover/autodiscover.xml"
            ));
        }
        let http = http_listener.map(|l| tokio::spawn(server::serve_http(Arc::clone(&app), l)));
        let serving = tokio::spawn(server::serve_https(Arc::clone(&app), listener, tls));
        write_sim_json(&args.data_dir, &info)?;
        Ok(ExchangeSim {
            info,
            app,
            port,
            data_dir: args.data_dir,
            serving: Some(serving),
            http,
        })
    }
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
