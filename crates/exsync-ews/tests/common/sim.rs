//! Runs the Exchange simulator binary for a test and talks to its control API.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use url::Url;

use exsync_ews::Resolve;
use exsync_ews::{AuthMode, Credentials, EwsConfig};
use exsync_testkit::paths::bin;
use exsync_testkit::sim::{ExchangeControl, SimCommand, SimProcess, Simulator};

pub const DOMAIN: &str = "contoso.test";
pub const MAIL_HOST: &str = "mail.contoso.test";

pub struct Sim {
    process: SimProcess,
    pub dir: tempfile::TempDir,
    pub info: Value,
    pub port: u16,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.process.kill();
        // Every SOAP request a client built from `config` sent to this simulator must be
        // schema-valid; checked here so that no test can forget it.
        let trace = self.client_trace();
        let has_requests = std::fs::read_dir(&trace).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.ends_with(".xml") && !name.ends_with(".response.xml")
            })
        });
        if has_requests && !std::thread::panicking() {
            exsync_testkit::schema::validate_requests(&trace);
        }
    }
}

pub struct SimOptions<'a> {
    pub auth: &'a str,
    pub extended_protection: bool,
    pub mailboxes: usize,
    pub http_listen: bool,
    pub max_concurrency: Option<usize>,
    pub listen: Option<SocketAddr>,
    /// Reuse an earlier simulator's data dir (same CA, same mailboxes).
    pub data_dir: Option<PathBuf>,
    /// The service keytab, for `auth: "negotiate"`.
    pub keytab: Option<PathBuf>,
}

impl Default for SimOptions<'_> {
    fn default() -> Self {
        SimOptions {
            auth: "basic,ntlm",
            extended_protection: false,
            mailboxes: 3,
            http_listen: false,
            max_concurrency: None,
            listen: None,
            data_dir: None,
            keytab: None,
        }
    }
}

/// A throwaway KDC with `HTTP/<MAIL_HOST>` (plus `options`), made the process's Kerberos
/// configuration, and the simulator offering `auth` with that service's keytab; `None` (after
/// saying why) without MIT's KDC.
pub fn with_kdc(
    options: exsync_testkit::kdc::KdcOptions,
    auth: &'static str,
    extended_protection: bool,
) -> Option<(exsync_testkit::kdc::Kdc, Sim)> {
    let kdc = exsync_testkit::kdc::Kdc::start_with(exsync_testkit::kdc::KdcOptions {
        service_host: MAIL_HOST.into(),
        ..options
    })?;
    std::env::set_var("KRB5_CONFIG", &kdc.krb5_conf);
    let sim = Sim::start(SimOptions {
        auth,
        extended_protection,
        keytab: Some(kdc.service_keytab.clone()),
        ..SimOptions::default()
    });
    Some((kdc, sim))
}

/// [`with_kdc`] with the simulator offering Negotiate only, and a client configuration logging
/// in with Kerberos as the service account, with its password.
pub fn kerberos_by_password(
    options: exsync_testkit::kdc::KdcOptions,
) -> Option<(exsync_testkit::kdc::Kdc, Sim, EwsConfig)> {
    let (kdc, sim) = with_kdc(options, "negotiate", false)?;
    let cfg = sim.kerberos_config(
        AuthMode::Kerberos,
        &kdc.user_principal(),
        exsync_testkit::kdc::PASSWORD,
        None,
    );
    Some((kdc, sim, cfg))
}

impl Sim {
    pub fn start(opts: SimOptions<'_>) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = opts
            .data_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("data"));
        let mut cmd = SimCommand::new(bin("exsync-sim"), Simulator::Exchange, &data_dir)
            .arg("--domain")
            .arg(DOMAIN)
            .arg("--mailboxes")
            .arg(opts.mailboxes.to_string())
            .arg("--auth")
            .arg(opts.auth)
            .args(["--back-off-ms", "200"]);
        if let Some(listen) = opts.listen {
            cmd = cmd.listen(listen);
        }
        if opts.extended_protection {
            cmd = cmd.arg("--extended-protection");
        }
        if let Some(keytab) = &opts.keytab {
            cmd = cmd.arg("--keytab").arg(keytab);
        }
        if opts.http_listen {
            cmd = cmd.args(["--http-listen", "127.0.0.1:0"]);
        }
        if let Some(max) = opts.max_concurrency {
            cmd = cmd.args(["--max-concurrency".to_owned(), max.to_string()]);
        }
        let process = cmd.start();
        let info = process.info.clone();
        let port = info["port"].as_u64().unwrap() as u16;
        Sim {
            process,
            dir,
            info,
            port,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn data_dir(&self) -> PathBuf {
        PathBuf::from(self.info["ca_cert"].as_str().unwrap())
            .parent()
            .unwrap()
            .to_path_buf()
    }

    pub fn ca(&self) -> PathBuf {
        PathBuf::from(self.info["ca_cert"].as_str().unwrap())
    }

    pub fn password(&self) -> String {
        self.info["service_account"]["password"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub fn username(&self) -> String {
        self.info["service_account"]["username"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub fn upn(&self) -> String {
        self.info["service_account"]["upn"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The EWS URL under the mail host name, reached through the resolve override.
    pub fn ews_url(&self) -> Url {
        Url::parse(&format!(
            "https://{MAIL_HOST}:{}/EWS/Exchange.asmx",
            self.port
        ))
        .unwrap()
    }

    pub fn resolve(&self) -> Resolve {
        Resolve::new()
            .with(MAIL_HOST, self.addr())
            .with(DOMAIN, self.addr())
            .with(&format!("autodiscover.{DOMAIN}"), self.addr())
    }

    /// A mailbox the service account may impersonate, and one it may not.
    pub fn allowed_mailbox(&self) -> String {
        self.info["impersonation_allowed"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .find(|a| a.starts_with("user"))
            .unwrap()
            .to_owned()
    }

    pub fn denied_mailbox(&self) -> String {
        self.info["mailboxes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["impersonation"] == Value::Bool(false))
            .and_then(|m| m["address"].as_str())
            .unwrap()
            .to_owned()
    }

    /// Where clients made by [`Sim::config`] write their wire trace unless told otherwise.
    pub fn client_trace(&self) -> PathBuf {
        self.dir.path().join("client-trace")
    }

    pub fn config(&self, auth: AuthMode, trace: Option<&Path>) -> EwsConfig {
        let mut cfg = EwsConfig::new(Credentials::new(self.username(), self.password()));
        cfg.auth = auth;
        cfg.ca_file = Some(self.ca());
        cfg.resolve = self.resolve();
        cfg.trace_dir = Some(trace.map_or_else(|| self.client_trace(), Path::to_path_buf));
        cfg.retry.base_delay = Duration::from_millis(50);
        cfg
    }

    /// [`Sim::config`] logging in with Kerberos as `principal`, with `password` or a keytab.
    pub fn kerberos_config(
        &self,
        auth: AuthMode,
        principal: &str,
        password: &str,
        keytab: Option<PathBuf>,
    ) -> EwsConfig {
        let mut cfg = self.config(auth, None);
        cfg.credentials = Credentials::new(principal, password);
        cfg.kerberos = Some(exsync_ews::KerberosLogin {
            principal: principal.to_owned(),
            keytab,
            files: None,
        });
        cfg
    }

    /// What reading the allowed mailbox's calendar folder with `cfg` fails with.
    pub async fn calendar_error(&self, cfg: EwsConfig) -> exsync_ews::EwsError {
        exsync_ews::EwsClient::new(cfg)
            .unwrap()
            .mailbox(&self.allowed_mailbox(), self.ews_url())
            .calendar_folder()
            .await
            .unwrap_err()
    }

    /// The simulator's control API.
    pub fn control_api(&self) -> ExchangeControl {
        ExchangeControl::from_info(&self.info)
    }

    /// One control API call; returns status and JSON.
    pub async fn control(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.control_api().call(method, path, body.as_ref()).await
    }

    pub async fn counters(&self) -> Value {
        self.control_api().counters().await
    }

    pub async fn faults(&self, faults: Value) {
        self.control_api().faults(&faults).await;
    }
}

pub fn arc<T>(t: T) -> Arc<T> {
    Arc::new(t)
}
