//! A simulator (`exsync-sim exchange|salesforce`) as a child process of a test, typed
//! clients for the control APIs of both simulators, and [`post_ews`], one raw SOAP request to
//! the Exchange simulator.
//!
//! The binary's path is a parameter: only `exsync-sim`'s own tests get it from
//! `CARGO_BIN_EXE_exsync-sim`; the others pass [`crate::paths::bin`]`("exsync-sim")`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Which simulator `exsync-sim` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Simulator {
    Exchange,
    Salesforce,
}

impl Simulator {
    fn arg(self) -> &'static str {
        match self {
            Simulator::Exchange => "exchange",
            Simulator::Salesforce => "salesforce",
        }
    }
}

/// How long a simulator may take to write `sim.json`: it generates its CA (and, for Salesforce,
/// perhaps an RSA key) first, which is slow in a debug build on a busy machine.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A simulator to start: `exsync-sim <which> --listen 127.0.0.1:0 --data-dir DIR [args…]`.
pub struct SimCommand {
    bin: PathBuf,
    which: Simulator,
    data_dir: PathBuf,
    listen: String,
    args: Vec<OsString>,
}

impl SimCommand {
    pub fn new(bin: impl Into<PathBuf>, which: Simulator, data_dir: impl Into<PathBuf>) -> Self {
        SimCommand {
            bin: bin.into(),
            which,
            data_dir: data_dir.into(),
            listen: "127.0.0.1:0".to_owned(),
            args: Vec::new(),
        }
    }

    /// Listens here instead of on a free port (a restart on the same address).
    pub fn listen(mut self, addr: impl ToString) -> Self {
        self.listen = addr.to_string();
        self
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Spawns the simulator (its output discarded) and waits until it has written a complete
    /// `sim.json`. A `sim.json` left by an earlier run in the same data dir is removed first,
    /// so the one read is this run's.
    pub fn start(self) -> SimProcess {
        let sim_json = self.data_dir.join("sim.json");
        let _ = std::fs::remove_file(&sim_json);
        let child = Command::new(&self.bin)
            .arg(self.which.arg())
            .arg("--listen")
            .arg(&self.listen)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.bin.display()));
        // Killed by the guard should the wait below panic.
        let mut process = SimProcess {
            child,
            data_dir: self.data_dir,
            info: Value::Null,
        };
        process.info = wait_for_sim_json(&sim_json, START_TIMEOUT);
        process
    }
}

/// Waits for `path` to hold complete JSON (the simulator may be mid-write when it first
/// appears) and returns it; panics after `timeout`.
pub fn wait_for_sim_json(path: &Path, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(value) = serde_json::from_str(&text) {
                return value;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the simulator did not write {} within {timeout:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running simulator; killed (and reaped) when dropped.
pub struct SimProcess {
    child: Child,
    pub data_dir: PathBuf,
    /// Its `sim.json`.
    pub info: Value,
}

impl SimProcess {
    pub fn port(&self) -> u16 {
        let port = self.info["port"]
            .as_u64()
            .or_else(|| {
                // The Salesforce simulator names its base URL rather than its port.
                let url = self.info["instance_url"].as_str()?;
                url.rsplit(':').next()?.trim_end_matches('/').parse().ok()
            })
            .expect("sim.json names the port");
        u16::try_from(port).expect("a TCP port")
    }

    /// The CA that signed the simulator's certificate (`ca_cert` for Exchange, `ca_file` for
    /// Salesforce).
    pub fn ca_file(&self) -> PathBuf {
        let ca = self.info["ca_cert"]
            .as_str()
            .or_else(|| self.info["ca_file"].as_str())
            .expect("sim.json names the CA");
        PathBuf::from(ca)
    }

    /// A client for its control API (either simulator's; see [`ExchangeControl`] and
    /// [`SalesforceControl`] for the typed calls).
    pub fn control(&self) -> Control {
        Control::from_info(&self.info, &self.ca_file())
    }

    /// Kills it now, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The control API of either simulator (`control_url`, bearer `control_token`, over HTTPS with
/// the simulator's CA). [`ExchangeControl`] and [`SalesforceControl`] add the calls tests make.
#[derive(Clone)]
pub struct Control {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Control {
    pub fn new(control_url: &str, token: &str, ca_file: &Path) -> Control {
        // reqwest is built without a default crypto provider; the simulators and our
        // connectors use ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca = std::fs::read(ca_file)
            .unwrap_or_else(|e| panic!("read the simulator CA {}: {e}", ca_file.display()));
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("a PEM CA"))
            // A connection per call, as a test would open by hand: an idle pooled connection
            // must not hold one of the simulator's connection slots between calls.
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client");
        Control {
            http,
            url: control_url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
    }

    /// From a simulator's `sim.json` (either simulator writes `control_url` and
    /// `control_token`).
    pub fn from_info(info: &Value, ca_file: &Path) -> Control {
        Control::new(
            info["control_url"]
                .as_str()
                .expect("sim.json has control_url"),
            info["control_token"]
                .as_str()
                .expect("sim.json has control_token"),
            ca_file,
        )
    }

    /// One call: `method` on `control_url` + `path`, with `body` as JSON when given. Its
    /// status and JSON answer (`Null` when the answer is not JSON).
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("control {path}: {e}"));
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// A call that must succeed (2xx); its JSON answer.
    pub async fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, answer) = self.call(method, path, body).await;
        assert!(
            (200..300).contains(&status),
            "control {method} {path}: {status} {answer}"
        );
        answer
    }

    /// `GET /counters`.
    pub async fn counters(&self) -> Value {
        self.ok("GET", "/counters", None).await
    }
}

/// The Exchange simulator's control API.
#[derive(Clone)]
pub struct ExchangeControl(pub Control);

impl ExchangeControl {
    pub fn from_info(info: &Value) -> ExchangeControl {
        let ca = info["ca_cert"].as_str().expect("sim.json has ca_cert");
        ExchangeControl(Control::from_info(info, Path::new(ca)))
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.0.call(method, path, body).await
    }

    /// `GET /counters`.
    pub async fn counters(&self) -> Value {
        self.0.counters().await
    }

    /// `DELETE /counters`.
    pub async fn reset_counters(&self) {
        self.0.ok("DELETE", "/counters", None).await;
    }

    /// `PUT /faults`: the faults to inject from now on.
    pub async fn faults(&self, faults: &Value) {
        self.0.ok("PUT", "/faults", Some(faults)).await;
    }

    /// `DELETE /faults`.
    pub async fn clear_faults(&self) {
        self.0.ok("DELETE", "/faults", None).await;
    }
}

/// The Salesforce simulator's control API.
#[derive(Clone)]
pub struct SalesforceControl(pub Control);

impl SalesforceControl {
    pub fn new(control_url: &str, token: &str, ca_file: &Path) -> SalesforceControl {
        SalesforceControl(Control::new(control_url, token, ca_file))
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.0.call(method, path, body).await
    }

    /// A call that must succeed; its JSON answer.
    pub async fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        self.0.ok(method, path, body).await
    }

    /// `POST /seed`: records to create; the simulator's answer (the ids it gave).
    pub async fn seed(&self, body: &Value) -> Value {
        self.0.ok("POST", "/seed", Some(body)).await
    }

    /// `POST /faults`: replaces the fault plan (`{}` clears it).
    pub async fn faults(&self, faults: &Value) {
        self.0.ok("POST", "/faults", Some(faults)).await;
    }

    /// `GET /counters`.
    pub async fn counters(&self) -> Value {
        self.0.counters().await
    }

    /// One counter of `GET /counters`, 0 when absent.
    pub async fn counter(&self, key: &str) -> u64 {
        self.counters().await["counters"][key].as_u64().unwrap_or(0)
    }

    /// `POST /counters/reset`.
    pub async fn reset_counters(&self) {
        self.0.ok("POST", "/counters/reset", None).await;
    }

    /// `GET /limits`: the org's API allowance (`max`, `used`).
    pub async fn limits(&self) -> Value {
        self.0.ok("GET", "/limits", None).await
    }

    /// `POST /limits`: sets `max` and `used`, or `exhaust`s the allowance.
    pub async fn set_limits(&self, limits: &Value) {
        self.0.ok("POST", "/limits", Some(limits)).await;
    }

    /// `POST /clock`: moves the org's clock (`advance_seconds`, or an absolute
    /// `offset_seconds`).
    pub async fn clock(&self, clock: &Value) {
        self.0.ok("POST", "/clock", Some(clock)).await;
    }

    /// `POST /expire-tokens`: every issued access token stops working; how many did.
    pub async fn expire_tokens(&self) -> u64 {
        let answer = self.0.ok("POST", "/expire-tokens", None).await;
        answer["expired"].as_u64().unwrap_or(0)
    }
}

/// What the Exchange simulator answered to one [`post_ews`].
pub struct EwsReply {
    /// The HTTP status (200, 401 without valid credentials, 500 for a SOAP fault).
    pub status: u16,
    /// The reply's headers, e.g. `WWW-Authenticate` on a 401.
    pub headers: reqwest::header::HeaderMap,
    /// The reply body (a SOAP envelope, or empty); panics first if it is not UTF-8.
    pub body: String,
}

/// POSTs `envelope` (a complete SOAP envelope) to the EWS endpoint of the Exchange simulator
/// `sim`, with Basic credentials `auth` (user, password) when given, over a fresh TLS
/// connection that trusts only the simulator's CA and names `mail.contoso.test`, the host its
/// certificate is for. Panics if the connection or the exchange fails.
pub async fn post_ews(sim: &SimProcess, auth: Option<(&str, &str)>, envelope: &str) -> EwsReply {
    use rustls_pki_types::pem::PemObject;
    const HOST: &str = "mail.contoso.test";

    let ca_file = PathBuf::from(sim.info["ca_cert"].as_str().expect("sim.json has ca_cert"));
    let ca = std::fs::read(&ca_file)
        .unwrap_or_else(|e| panic!("read the simulator CA {}: {e}", ca_file.display()));
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(&ca).expect("a PEM CA"))
        .expect("a usable CA certificate");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions the ring provider supports")
        .with_root_certificates(roots)
        .with_no_client_auth();
    // HTTP/1.1 on one new connection per call, no redirects: exactly one request reaches the
    // simulator, as a hand-made client would send it.
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .http1_only()
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .resolve(
            HOST,
            std::net::SocketAddr::from(([127, 0, 0, 1], sim.port())),
        )
        .build()
        .expect("an HTTP client");
    let mut request = http
        .post(format!("https://{HOST}:{}/EWS/Exchange.asmx", sim.port()))
        .header(reqwest::header::HOST, HOST)
        .header(reqwest::header::CONTENT_TYPE, "text/xml; charset=utf-8")
        .body(envelope.to_owned());
    if let Some((user, password)) = auth {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.unwrap_or_else(|e| {
        panic!("POST to the simulator's EWS (TLS with a certificate from its CA): {e:?}")
    });
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("read the simulator's EWS reply: {e}"));
    EwsReply {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).expect("a UTF-8 EWS reply"),
    }
}
