//! Runs the Exchange simulator binary for a test and talks to its control API.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use serde_json::Value;
use url::Url;

use exsync_ews::transport::conn::{Connection, ReplyLimits, Resolve, DEFAULT_MAX_REPLY_BYTES};
use exsync_ews::transport::tls::client_config;
use exsync_ews::{AuthMode, Credentials, EwsConfig};

pub const DOMAIN: &str = "contoso.test";
pub const MAIL_HOST: &str = "mail.contoso.test";

/// The directory holding our binaries: `EXSYNC_BIN_DIR`, else the target dir this test was
/// built into.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("EXSYNC_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/<test> → target/debug
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

pub struct Sim {
    child: Child,
    pub dir: tempfile::TempDir,
    pub info: Value,
    pub port: u16,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
            super::validate_requests(&trace);
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
        }
    }
}

impl Sim {
    pub fn start(opts: SimOptions<'_>) -> Sim {
        let bin = bin_dir().join("exsync-sim");
        assert!(
            bin.exists(),
            "{} not found: build it first (cargo build -p exsync-sim) or set EXSYNC_BIN_DIR",
            bin.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let data_dir = opts
            .data_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("data"));
        let _ = std::fs::remove_file(data_dir.join("sim.json"));
        let listen = opts
            .listen
            .map_or_else(|| "127.0.0.1:0".to_owned(), |a| a.to_string());
        let mut cmd = Command::new(&bin);
        cmd.arg("exchange")
            .arg("--listen")
            .arg(&listen)
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--domain")
            .arg(DOMAIN)
            .arg("--mailboxes")
            .arg(opts.mailboxes.to_string())
            .arg("--auth")
            .arg(opts.auth)
            .arg("--back-off-ms")
            .arg("200")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if opts.extended_protection {
            cmd.arg("--extended-protection");
        }
        if opts.http_listen {
            cmd.arg("--http-listen").arg("127.0.0.1:0");
        }
        if let Some(max) = opts.max_concurrency {
            cmd.arg("--max-concurrency").arg(max.to_string());
        }
        let child = cmd.spawn().expect("start exsync-sim");
        let json_path = data_dir.join("sim.json");
        let deadline = Instant::now() + Duration::from_secs(30);
        let info: Value = loop {
            if let Ok(text) = std::fs::read_to_string(&json_path) {
                if let Ok(v) = serde_json::from_str(&text) {
                    break v;
                }
            }
            assert!(
                Instant::now() < deadline,
                "simulator did not write sim.json"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let port = info["port"].as_u64().unwrap() as u16;
        Sim {
            child,
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

    /// One control API call; returns status and JSON.
    pub async fn control(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let tls = client_config(Some(&self.ca())).unwrap();
        let mut conn = Connection::open(
            "127.0.0.1",
            self.port,
            Some(&tls),
            &Resolve::new(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        let token = self.info["control_token"].as_str().unwrap();
        let request = http::Request::builder()
            .method(method)
            .uri(format!("/_control{path}"))
            .header("Host", format!("127.0.0.1:{}", self.port))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .unwrap();
        let limits = ReplyLimits::new(Duration::from_secs(10), DEFAULT_MAX_REPLY_BYTES);
        let response = conn.send(request, limits).await.unwrap();
        let value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        (response.status, value)
    }

    pub async fn counters(&self) -> Value {
        self.control("GET", "/counters", None).await.1
    }

    pub async fn faults(&self, faults: Value) {
        let (status, body) = self.control("PUT", "/faults", Some(faults)).await;
        assert_eq!(status, 200, "{body}");
    }
}

pub fn arc<T>(t: T) -> Arc<T> {
    Arc::new(t)
}
