//! The setup pages in a real browser: headless Chromium driven through chromedriver's W3C
//! WebDriver HTTP API. Logs in, saves the service account (masked, copy blocked, never shown
//! back, "provided" afterwards), creates a configuration and assigns a user, resets a user
//! and runs a connection test. Screenshots go to `<workspace>/test-artifacts/browser/`.
//!
//! The test fails (does not skip) when chromium or chromedriver is missing: the test script
//! installs both (Debian packages `chromium` and `chromium-driver`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod console_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::Utc;
use exsync::console::{hash_password, serve, Console, ServeOptions};
use exsync::vault::{MasterKey, Vault};
use exsync_core::plan::SyncedPair;
use exsync_core::{Contact, ItemKind, Record, UserKey};
use exsync_store::{PassCommit, Role, SqliteStore, Store};
use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find_program(env: &str, candidates: &[&str]) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    for c in candidates {
        let p = Path::new(c);
        if p.is_file() {
            return p.to_owned();
        }
    }
    panic!(
        "{} not found (looked at ${env} and {candidates:?}); install the Debian packages `chromium` and `chromium-driver` (scripts/test does)",
        candidates[0]
    );
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test-artifacts/browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Driver {
    child: Child,
    http: reqwest::Client,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start() -> Driver {
        let chromium = find_program(
            "EXSYNC_CHROMIUM",
            &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
        );
        let chromedriver = find_program(
            "EXSYNC_CHROMEDRIVER",
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not come up on {base}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "unhandledPromptBehavior": "accept",
            "goog:chromeOptions": {
                "binary": chromium.display().to_string(),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver refused the session: {r}"))
            .to_owned();
        Driver {
            child,
            http,
            base,
            session,
            _profile: profile,
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r: Value = req.send().await.unwrap().json().await.unwrap();
        if r["value"].get("error").is_some() {
            panic!("WebDriver {path}: {}", r["value"]);
        }
        r["value"].clone()
    }

    /// Ends the session, which closes the browser; killing chromedriver alone would leave it
    /// running.
    async fn quit(self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = self.http.delete(url).send().await;
    }

    async fn go(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    async fn typ(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/clear"),
            Some(json!({})),
        )
        .await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Clicks something that submits a form, and waits for the answer page to be loaded
    /// (a click may return before the navigation it starts has finished).
    async fn submit(&self, css: &str) {
        self.script("window.__exsyncOldPage = true; return null;")
            .await;
        self.click(css).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let done = self
                .script("return window.__exsyncOldPage === undefined && document.readyState === 'complete';")
                .await;
            if done == json!(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no new page after clicking {css}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.cmd(reqwest::Method::GET, &format!("/element/{e}/text"), None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn script(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    async fn source(&self) -> String {
        self.cmd(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn screenshot(&self, name: &str) {
        let png = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(artifacts().join(format!("{name}.png")), bytes).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_sets_up_the_service_account_configurations_and_resets_a_user_in_chromium() {
    let sims = console_support::sims::sims().await;
    let sa_password = sims.exchange_password().expose().to_owned();
    let pem = sims.private_key().expose().to_owned();
    let pem_body = pem.lines().nth(1).unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exsync.toml"), sims.config("")).unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("state.db")).unwrap());
    store
        .create_admin_user(
            "root",
            &hash_password("a-long-admin-password").unwrap(),
            Role::Admin,
            Utc::now(),
        )
        .unwrap();
    let ann = UserKey::from_email("user1@contoso.test");
    let mut commit = PassCommit::new(ann.clone(), Utc::now(), Utc::now());
    commit.upserts = vec![SyncedPair {
        kind: ItemKind::Contact,
        crm_id: "0031".into(),
        exchange_id: "AAMk1".into(),
        content: Contact {
            last_name: "Lee".to_owned(),
            ..Contact::default()
        }
        .to_fields(),
        crm_version: None,
        exchange_version: None,
    }];
    store.commit_pass(&commit).unwrap();
    let mut console = Console::new(
        store.clone(),
        Vault::new(store.clone(), MasterKey::generate()),
        dir.path().join("exsync.toml"),
    );
    console.connection_tests = true;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(serve(listener, Arc::new(console), ServeOptions::default()));

    let d = Driver::start().await;

    // Log in.
    d.go(&format!("{base}/")).await;
    assert!(
        d.source().await.contains("login-form"),
        "an anonymous visit lands on the login page"
    );
    d.typ("#username", "root").await;
    d.typ("#password", "a-long-admin-password").await;
    d.screenshot("01-login").await;
    d.submit("#login").await;
    assert_eq!(d.text("#sync-state").await, "enabled");
    d.screenshot("02-status").await;

    // Service account: masked, copy blocked, saved, never shown back.
    d.go(&format!("{base}/service-account")).await;
    let field = d.script("var p = document.getElementById('sa-password'); return [p.type, p.getAttribute('autocomplete')];").await;
    assert_eq!(field, json!(["password", "off"]));
    d.typ("#sa-password", &sa_password).await;
    let copy_blocked = d.script(
        "var p = document.getElementById('sa-password'); p.select(); \
         var e = new ClipboardEvent('copy', {bubbles: true, cancelable: true}); p.dispatchEvent(e); \
         var c = new ClipboardEvent('cut', {bubbles: true, cancelable: true}); p.dispatchEvent(c); \
         return [e.defaultPrevented, c.defaultPrevented];",
    ).await;
    assert_eq!(
        copy_blocked,
        json!([true, true]),
        "copy and cut of the password are blocked"
    );
    d.typ("#other-domains", "fabrikam.test").await;
    d.screenshot("03-service-account-typing").await;
    d.submit("#save-service-account").await;
    assert_eq!(
        d.text("#provided").await,
        "Service account provided: svc-sync@contoso.test"
    );
    let value = d
        .script("return document.getElementById('sa-password').value;")
        .await;
    assert_eq!(value, json!(""), "the password is not rendered back");
    assert!(!d.source().await.contains(&sa_password));
    d.screenshot("04-service-account-provided").await;
    // Revisiting the page later shows it provided, and still no password.
    d.go(&format!("{base}/service-account")).await;
    assert_eq!(
        d.text("#provided").await,
        "Service account provided: svc-sync@contoso.test"
    );
    assert!(!d.source().await.contains(&sa_password));

    // The CRM key, pasted (as the file picker would fill it in), stored write-only.
    d.go(&format!("{base}/crm")).await;
    assert_eq!(d.text("#key-state").await, "not stored");
    d.typ("#private-key", &pem).await;
    d.submit("#save-crm").await;
    assert_eq!(d.text("#key-state").await, "stored");
    assert!(
        !d.source().await.contains(&pem_body),
        "the key is not rendered back"
    );
    d.screenshot("05-crm-key-stored").await;

    // A configuration, with a user assigned.
    d.go(&format!("{base}/configurations")).await;
    d.typ("#new-name", "support").await;
    d.typ("#new-users", "bob@contoso.test").await;
    d.typ("#new-groups", "Support Agent").await;
    d.submit("#create-configuration").await;
    let main = d.text("main").await;
    assert!(main.contains("Configuration support created."), "{main}");
    assert_eq!(d.text("#notice").await, "Configuration support created.");
    let row = d.text("#effective tr[data-user='bob@contoso.test']").await;
    assert!(row.contains("support"), "{row}");
    d.screenshot("06-configuration-created").await;
    let loaded = exsync_core::config::load(&dir.path().join("exsync.toml")).unwrap();
    assert!(loaded
        .configuration("support")
        .unwrap()
        .users
        .contains(&UserKey::from_email("bob@contoso.test")));

    // Reset Sync (the confirmation dialog is accepted).
    d.go(&format!("{base}/")).await;
    d.submit("button.reset[data-user='user1@contoso.test']")
        .await;
    let notice = d.text("#notice").await;
    assert!(
        notice.starts_with("Reset Sync for user1@contoso.test: 1 pairs"),
        "{notice}"
    );
    d.screenshot("07-reset").await;
    assert_eq!(store.user_status(&ann).unwrap().unwrap().contact_pairs, 0);

    // Connection test: the analyzer's steps against the simulators, all passing.
    d.submit("button.test[data-user='user1@contoso.test']")
        .await;
    let status = d.text("#test-status").await;
    assert!(
        status.contains("pass"),
        "{status}: {}",
        d.text("main").await
    );
    let report = d.text("#test-steps").await;
    assert!(
        report.contains("Impersonation of user1@contoso.test"),
        "{report}"
    );
    assert!(report.contains("CRM token"), "{report}");
    assert!(!report.contains(&sa_password));
    d.screenshot("08-connection-test").await;

    let db = std::fs::read(dir.path().join("state.db")).unwrap();
    let wal = std::fs::read(dir.path().join("state.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(!bytes
            .windows(sa_password.len())
            .any(|w| w == sa_password.as_bytes()));
    }
    let audit = store.list_audit(50, None).unwrap();
    for action in [
        "login",
        "service_account.update",
        "configuration.create",
        "user.reset",
        "user.test",
    ] {
        assert!(
            audit
                .iter()
                .any(|e| e.action == action && e.actor == "root"),
            "{action} audited"
        );
    }
    d.quit().await;
    server.abort();
}
