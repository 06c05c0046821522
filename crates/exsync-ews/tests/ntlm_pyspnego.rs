//! Our HTTPS client's NTLM (v2, MIC, channel binding) against an independent acceptor:
//! pyspnego behind a Python TLS keep-alive server that requires channel binding
//! (tests/interop/ntlm/ntlm_server.py, shared with exsync-ntlm's tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use exsync_ews::testing::HttpConfig;
use exsync_ews::HttpClient;
use exsync_ews::Scheme;
use exsync_ews::{AuthMode, Credentials, EwsError, Resolve};

const USER: &str = "CONTOSO\\svc-sync";
const PASSWORD: &str = "Passw0rd!";

struct Server {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let script = exsync_testkit::paths::workspace().join("tests/interop/ntlm/ntlm_server.py");
    let mut child = Command::new(exsync_testkit::paths::python())
        .arg(&script)
        .arg(dir.path())
        .args(["CONTOSO", "svc-sync", PASSWORD])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the Python NTLM server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the Python NTLM server did not start: {line:?}"));
    Server { child, port, dir }
}

fn client(server: &Server, password: &str, auth: AuthMode) -> HttpClient {
    let mut cfg = HttpConfig::new(Credentials::new(USER, password));
    cfg.auth = auth;
    cfg.ca_file = Some(server.dir.path().join("server.pem"));
    cfg.resolve = Resolve::new().with("localhost", SocketAddr::from(([127, 0, 0, 1], server.port)));
    HttpClient::new(cfg).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyspnego_accepts_our_ntlm_with_channel_binding() {
    let server = start();
    let url = url::Url::parse(&format!(
        "https://localhost:{}/EWS/Exchange.asmx",
        server.port
    ))
    .unwrap();
    for auth in [AuthMode::Auto, AuthMode::Ntlm] {
        let http = client(&server, PASSWORD, auth);
        let first = http.post(&url, "<x/>", &[]).await.unwrap();
        assert_eq!(first.status, 200, "{}", first.text());
        assert_eq!(first.text(), "hello CONTOSO\\svc-sync");
        assert_eq!(http.pinned("localhost"), Some(Scheme::Ntlm));
        // Later requests ride the authenticated connection: the server answers 200 without a
        // new handshake only on the connection that completed one.
        for _ in 0..3 {
            let next = http.post(&url, "<x/>", &[]).await.unwrap();
            assert_eq!(next.status, 200);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyspnego_rejects_a_wrong_password_and_we_say_whose() {
    let server = start();
    let url = url::Url::parse(&format!(
        "https://localhost:{}/EWS/Exchange.asmx",
        server.port
    ))
    .unwrap();
    let http = client(&server, "not-the-password", AuthMode::Ntlm);
    let err = http.post(&url, "<x/>", &[]).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, EwsError::Unauthorized { .. }), "{text}");
    assert!(
        text.contains("svc-sync") && text.contains("localhost"),
        "{text}"
    );
    assert!(!text.contains("not-the-password"), "{text}");
}
