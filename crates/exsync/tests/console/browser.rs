//! The setup pages in a real browser: headless Chromium driven through chromedriver's W3C
//! WebDriver HTTP API. Logs in, saves the service account (masked, copy blocked, never shown
//! back, "provided" afterwards), creates a configuration and assigns a user, resets a user
//! and runs a connection test. A user whose address is also JavaScript is shown as text and
//! its Reset Sync button runs nothing but the confirmation. Screenshots go to
//! `<workspace>/test-artifacts/browser/`.
//!
//! The test fails (does not skip) when chromium or chromedriver is missing: the test script
//! installs both (Debian packages `chromium` and `chromium-driver`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::Utc;
use exsync_console::{hash_password, serve, Console, ServeOptions};
use exsync_core::plan::SyncedPair;
use exsync_core::{Contact, ItemKind, Record, UserKey};
use exsync_engine::vault::{MasterKey, Vault};
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
    let dir = exsync_testkit::paths::workspace().join("test-artifacts/browser");
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
        // A test that fails never reaches `quit`; ending the session here still closes the
        // browser, which would otherwise outlive chromedriver. Plain blocking HTTP, since a
        // drop cannot wait on the async client.
        if let Some(addr) = self.base.strip_prefix("http://") {
            if let Ok(mut stream) = std::net::TcpStream::connect(addr) {
                use std::io::{Read, Write};
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = write!(
                    stream,
                    "DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
                    self.session
                );
                let _ = stream.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// `prompts` is the session's unhandled prompt behaviour: "accept" lets a confirm
    /// dialog pass unseen; "ignore" leaves it open for the test to read and answer.
    async fn start(prompts: &str) -> Driver {
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
            "unhandledPromptBehavior": prompts,
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

    /// The command's `value`, which holds `error` when the command failed.
    async fn raw(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r: Value = req.send().await.unwrap().json().await.unwrap();
        r["value"].clone()
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let value = self.raw(method, path, body).await;
        if value.get("error").is_some() {
            panic!("WebDriver {path}: {value}");
        }
        value
    }

    /// The text of the open alert, confirm or prompt dialog, if one is open.
    async fn dialog(&self) -> Option<String> {
        let v = self.raw(reqwest::Method::GET, "/alert/text", None).await;
        match v.get("error").and_then(Value::as_str) {
            None => Some(v.as_str().unwrap_or_default().to_owned()),
            Some("no such alert") => None,
            Some(other) => panic!("WebDriver /alert/text: {other}: {v}"),
        }
    }

    /// Waits up to two seconds for a dialog to open, and returns its text.
    async fn wait_dialog(&self) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            if let Some(text) = self.dialog().await {
                return Some(text);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn answer_dialog(&self, accept: bool) {
        let path = if accept {
            "/alert/accept"
        } else {
            "/alert/dismiss"
        };
        self.cmd(reqwest::Method::POST, path, Some(json!({}))).await;
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
        self.mark_page().await;
        self.click(css).await;
        self.wait_new_page(css).await;
    }

    /// Marks the page loaded now, so that [`Driver::wait_new_page`] can tell it from the next.
    async fn mark_page(&self) {
        self.script("window.__exsyncOldPage = true; return null;")
            .await;
    }

    async fn wait_new_page(&self, after: &str) {
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
                "no new page after clicking {after}"
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

    /// Whether each element is displayed (not hidden, nor inside a hidden part).
    async fn shown(&self, selectors: &[&str]) -> Vec<bool> {
        let list = serde_json::to_string(selectors).unwrap();
        let v = self
            .script(&format!(
                "return {list}.map(function (s) {{ var e = document.querySelector(s); \
                 if (!e) {{ throw new Error('no ' + s); }} return e.getClientRects().length > 0; }});"
            ))
            .await;
        serde_json::from_value(v).unwrap()
    }

    /// The status table's link for `user` as the browser lays it out: its text line by line,
    /// and the address's title.
    async fn address_lines(&self, user: &str) -> (Vec<String>, String) {
        let row =
            serde_json::to_string(&format!("#users tr[data-user=\"{user}\"] a.user")).unwrap();
        let v = self
            .script(&format!(
                "var a = document.querySelector({row}); var range = document.createRange(); \
                 var lines = []; var line = ''; var top = null; \
                 var walk = document.createTreeWalker(a, NodeFilter.SHOW_TEXT); var node; \
                 while ((node = walk.nextNode())) {{ for (var i = 0; i < node.data.length; i++) {{ \
                   range.setStart(node, i); range.setEnd(node, i + 1); \
                   var r = range.getBoundingClientRect(); \
                   if (top !== null && r.top > top + 1) {{ lines.push(line); line = ''; }} \
                   top = r.top; line += node.data[i]; }} }} \
                 lines.push(line); return [lines, (a.querySelector('.address') || a).title];"
            ))
            .await;
        serde_json::from_value(v).unwrap()
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
    let sims = crate::support::sims::sims().await;
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

    let d = Driver::start("accept").await;

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
    // Status at a glance: the last pass and who is where, each user's state, and times in the
    // reader's zone with how long ago (the script's work: the page itself says UTC).
    let health = d.text("#health").await;
    assert!(health.starts_with("Last pass ended "), "{health}");
    assert!(
        health.ends_with("1 users: 1 syncing, 0 failing, 0 paused, 0 new."),
        "{health}"
    );
    assert!(
        health.contains(" s ago)") || health.contains(" min ago)"),
        "{health}"
    );
    assert_eq!(
        d.text("#users tr[data-user=\"user1@contoso.test\"] td.state")
            .await,
        "syncing"
    );
    let shown = d
        .script("var t = document.querySelector('#users time'); return [t.textContent, t.title];")
        .await;
    assert!(shown[0].as_str().unwrap().ends_with(" ago)"), "{shown}");
    assert!(shown[1].as_str().unwrap().ends_with('Z'), "{shown}");
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
    // Only the chosen mode's fields show: the realm and KDCs for Kerberos (and Automatic,
    // the stored mode), not for Basic; the password for both, no keytab being stored.
    assert_eq!(
        d.shown(&["#kerberos-fields", "#password-fields"]).await,
        [true, true]
    );
    d.click("#auth option[value='kerberos']").await;
    assert_eq!(
        d.shown(&["#kerberos-fields", "#password-fields"]).await,
        [true, true]
    );
    d.screenshot("20-service-account-kerberos").await;
    d.click("#auth option[value='basic']").await;
    assert_eq!(
        d.shown(&["#kerberos-fields", "#password-fields"]).await,
        [false, true]
    );
    // NTLM rather than Basic, so that the connection test below passes without a warning.
    d.click("#auth option[value='ntlm']").await;
    assert_eq!(
        d.shown(&["#kerberos-fields", "#password-fields"]).await,
        [false, true]
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
    // Picked as a file: the console's script copies its text into the field.
    let pem_file = dir.path().join("crm-key.pem");
    std::fs::write(&pem_file, &pem).unwrap();
    let picker = d.find("#key-file").await;
    d.cmd(
        reqwest::Method::POST,
        &format!("/element/{picker}/value"),
        Some(json!({"text": pem_file.display().to_string()})),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while d
        .script("return document.getElementById('private-key').value;")
        .await
        != json!(pem)
    {
        assert!(
            Instant::now() < deadline,
            "the picked file's text never reached the field"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

    // Its rules, in the row's box: the events' window narrowed and private events synced,
    // saved by the row's button into the file.
    let row = "tr[data-configuration='support']";
    d.click(&format!("{row} details.rules[data-kind='events'] summary"))
        .await;
    d.typ(&format!("{row} input[name='events_past_days']"), "7")
        .await;
    d.script(&format!(
        "document.querySelector(\"{row} select[name='events_sync_private']\").value = 'true'; return null;"
    ))
    .await;
    d.screenshot("06-configuration-rules").await;
    d.submit(&format!("{row} button.save-configuration")).await;
    assert_eq!(d.text("#notice").await, "Configuration support saved.");
    let loaded = exsync_core::config::load(&dir.path().join("exsync.toml")).unwrap();
    let events = &loaded.configuration("support").unwrap().events;
    assert_eq!(events.window.map(|w| w.past_days), Some(7));
    assert!(events.sync_private);
    let text = std::fs::read_to_string(dir.path().join("exsync.toml")).unwrap();
    assert!(
        text.contains("past_days = 7") && !text.contains("future_days"),
        "only the changed rules are written: {text}"
    );

    // Its field mappings, in the row's Fields box: notes to a custom field, birthday off.
    d.click(&format!(
        "{row} details.fields[data-kind='contacts'] summary"
    ))
    .await;
    d.typ(
        &format!("{row} input[name='contacts_field_notes']"),
        "Notes__c",
    )
    .await;
    d.typ(
        &format!("{row} input[name='contacts_field_birthday']"),
        "false",
    )
    .await;
    d.screenshot("06-configuration-fields").await;
    let width = d
        .script("return document.documentElement.scrollWidth;")
        .await;
    assert!(width.as_u64().is_some_and(|w| w <= 1280), "{width}");
    d.submit(&format!("{row} button.save-configuration")).await;
    assert_eq!(d.text("#notice").await, "Configuration support saved.");
    let loaded = exsync_core::config::load(&dir.path().join("exsync.toml")).unwrap();
    let contacts = &loaded.configuration("support").unwrap().contacts;
    assert_eq!(contacts.fields["notes"], "Notes__c");
    assert!(!contacts.fields.contains_key("birthday"));
    let text = std::fs::read_to_string(dir.path().join("exsync.toml")).unwrap();
    assert!(
        text.contains(
            "[configurations.support.contacts.fields]\nnotes = \"Notes__c\"\nbirthday = false\n"
        ) && !text.contains("Description"),
        "only the changed mappings are written: {text}"
    );

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

    // Exchange Online shows the certificate's fields or the secret's, as the credential
    // chosen.
    d.go(&format!("{base}/exchange-online")).await;
    let parts = ["#eo-certificate-fields", "#eo-secret-fields"];
    assert_eq!(d.shown(&parts).await, [true, false]);
    d.click("#eo-credential option[value='secret']").await;
    assert_eq!(d.shown(&parts).await, [false, true]);
    d.screenshot("21-exchange-online-secret").await;
    d.click("#eo-credential option[value='certificate']").await;
    assert_eq!(d.shown(&parts).await, [true, false]);

    // Long addresses in the status table: one breaks only before `@` and `.`, one whose
    // part is too long for the column is cut, the whole address in the link's title.
    for (n, user) in [LONG_ADDRESS, LONG_PART].into_iter().enumerate() {
        synced(store.as_ref(), &UserKey::from_email(user), 20 + n);
    }
    d.go(&format!("{base}/")).await;
    let (lines, title) = d.address_lines(LONG_ADDRESS).await;
    assert!(
        lines.len() > 1,
        "the address fits one line, testing nothing: {lines:?}"
    );
    assert_eq!(lines.concat(), LONG_ADDRESS);
    for line in &lines[1..] {
        assert!(
            line.starts_with('@') || line.starts_with('.'),
            "a line breaks mid-word: {lines:?}"
        );
    }
    assert_eq!(title, LONG_ADDRESS);
    let (lines, title) = d.address_lines(LONG_PART).await;
    assert_eq!(title, LONG_PART);
    assert!(lines.concat().contains('…'), "{lines:?}");

    // Every page the console serves fits a 1280-pixel screen without scrolling sideways,
    // and each is kept as a screenshot. The user's page is reached by the status table's
    // link on the user's name.
    d.go(&format!("{base}/")).await;
    let link = d
        .script("return document.querySelector('#users tr[data-user=\"user1@contoso.test\"] a.user').getAttribute('href');")
        .await;
    assert_eq!(link, json!("/users/user1%40contoso.test"));
    for (path, name) in [
        ("/", "11-status"),
        ("/users/user1%40contoso.test", "12-user"),
        ("/users/user1%40contoso.test/conflicts", "13-conflicts"),
        ("/service-account", "14-service-account"),
        ("/exchange-online", "15-exchange-online"),
        ("/crm", "16-crm"),
        ("/configurations", "17-configurations"),
        ("/audit", "18-audit"),
    ] {
        d.go(&format!("{base}{path}")).await;
        d.screenshot(name).await;
        let width = d
            .script("return document.documentElement.scrollWidth;")
            .await;
        assert!(
            width.as_u64().is_some_and(|w| w <= 1280),
            "{path} is {width} pixels wide, wider than a 1280-pixel screen"
        );
    }
    assert_eq!(
        d.text("main h1").await,
        "Audit log",
        "the last page loaded as itself"
    );
    // A validation error: the reason without the server's path, the input kept, the page
    // still 1280 pixels wide.
    d.go(&format!("{base}/configurations")).await;
    d.typ("#new-name", "broken").await;
    d.typ("#new-users", "not-an-address").await;
    d.submit("#create-configuration").await;
    let error = d.text("#error").await;
    assert!(
        error.contains("configurations.broken.users") && error.contains("not an e-mail address"),
        "{error}"
    );
    assert!(
        !error.contains(&dir.path().to_string_lossy().into_owned()),
        "{error}"
    );
    let kept = d
        .script("return [document.getElementById('new-name').value, document.getElementById('new-users').value];")
        .await;
    assert_eq!(kept, json!(["broken", "not-an-address"]));
    d.screenshot("19-validation-error").await;
    let width = d
        .script("return document.documentElement.scrollWidth;")
        .await;
    assert!(width.as_u64().is_some_and(|w| w <= 1280), "{width}");

    // Kerberos with a keytab, picked as a file (the script puts its bytes in as base64), carries
    // a change of the domains; a later change without it is refused, with the input kept.
    d.go(&format!("{base}/service-account")).await;
    d.click("#auth option[value='kerberos']").await;
    d.typ("#realm", "CONTOSO.TEST").await;
    let keytab = [5u8, 2, 0, 0, 0, 40, 0xff, 0x80];
    let keytab_file = dir.path().join("svc.keytab");
    std::fs::write(&keytab_file, keytab).unwrap();
    let picker = d.find("#keytab-file").await;
    d.cmd(
        reqwest::Method::POST,
        &format!("/element/{picker}/value"),
        Some(json!({"text": keytab_file.display().to_string()})),
    )
    .await;
    let encoded = base64::engine::general_purpose::STANDARD.encode(keytab);
    let deadline = Instant::now() + Duration::from_secs(10);
    while d
        .script("return document.getElementById('sa-keytab').value;")
        .await
        != json!(encoded)
    {
        assert!(
            Instant::now() < deadline,
            "the picked keytab never reached the field as base64"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    d.typ("#other-domains", "fabrikam.test, northwind.test")
        .await;
    d.submit("#save-service-account").await;
    assert!(
        d.text("#notice")
            .await
            .starts_with("Saved. The stored password was removed"),
        "{}",
        d.source().await
    );
    assert!(d
        .text("#keytab-state")
        .await
        .starts_with("A keytab is stored"));
    assert_eq!(d.shown(&["#password-fields"]).await, [false]);
    d.typ("#other-domains", "fabrikam.test, northwind.test, evil.test")
        .await;
    d.submit("#save-service-account").await;
    assert!(
        d.text("#error")
            .await
            .contains("requires the account's keytab again"),
        "{}",
        d.source().await
    );
    let kept = d
        .script("return [document.getElementById('other-domains').value, document.getElementById('auth').value, document.getElementById('sa-keytab').value];")
        .await;
    assert_eq!(
        kept,
        json!(["fabrikam.test, northwind.test, evil.test", "kerberos", ""]),
        "the input kept, the keytab not shown back"
    );
    d.screenshot("21-service-account-keytab-refused").await;

    d.go(&format!("{base}/users/user1%40contoso.test")).await;
    assert_eq!(d.text("#detail-user").await, "user1@contoso.test");
    assert!(
        d.text("#detail-actions").await.contains("Reset Sync"),
        "an admin may reset the user from the page"
    );

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

/// An address longer than the status table's first column, with a dot or `@` every few
/// letters.
const LONG_ADDRESS: &str = "firstname.middlename.lastname@subsidiary.department.contoso-intl.test";
/// An address with a part longer than the column shows whole.
const LONG_PART: &str = "averyveryverylonglocalpartwithoutanydots@contoso.test";

/// A valid address (RFC 5322 dot-atom) that is also JavaScript: pasted into a script string
/// it would call `alert`, opening a dialog before the confirmation.
const ALERTING: &str = "x'-alert`document.domain`-'@contoso.test";
/// The same trick leaving a mark instead of a dialog: it would retitle the page.
const MARKING: &str = "x'-`${document.title='pwned'}`-'@contoso.test";

/// Gives `user` one synced pair, so that Reset Sync has something to forget.
fn synced(store: &dyn Store, user: &UserKey, n: usize) {
    let mut commit = PassCommit::new(user.clone(), Utc::now(), Utc::now());
    commit.upserts = vec![SyncedPair {
        kind: ItemKind::Contact,
        crm_id: format!("003X{n}").as_str().into(),
        exchange_id: format!("AAMkX{n}").as_str().into(),
        content: Contact {
            last_name: "Lee".to_owned(),
            ..Contact::default()
        }
        .to_fields(),
        crm_version: None,
        exchange_version: None,
    }];
    store.commit_pass(&commit).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_address_is_shown_as_text_and_its_reset_button_runs_no_script_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exsync.toml"), crate::support::CONFIG).unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("state.db")).unwrap());
    store
        .create_admin_user(
            "root",
            &hash_password("a-long-admin-password").unwrap(),
            Role::Admin,
            Utc::now(),
        )
        .unwrap();
    for (n, user) in [ALERTING, MARKING].into_iter().enumerate() {
        synced(store.as_ref(), &UserKey::from_email(user), n);
    }
    let console = Console::new(
        store.clone(),
        Vault::new(store.clone(), MasterKey::generate()),
        dir.path().join("exsync.toml"),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(serve(listener, Arc::new(console), ServeOptions::default()));

    // The policy the browser enforces on the status page: scripts from the console only.
    let http = reqwest::Client::new();
    let login = http
        .post(format!("{base}/api/login"))
        .json(&json!({"username": "root", "password": "a-long-admin-password"}))
        .send()
        .await
        .unwrap();
    assert!(login.status().is_success());
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let status = http
        .get(format!("{base}/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert!(status.status().is_success());
    let csp = status.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
    assert!(directives.contains(&"script-src 'self'"), "{csp}");
    assert!(!csp.contains("'unsafe-"), "{csp}");

    let d = Driver::start("ignore").await;
    d.go(&format!("{base}/login")).await;
    d.typ("#username", "root").await;
    d.typ("#password", "a-long-admin-password").await;
    d.submit("#login").await;
    let title = d.script("return document.title;").await;
    assert_eq!(title, json!("Status · exsync"));
    d.screenshot("09-hostile-addresses").await;

    for user in [ALERTING, MARKING] {
        let key = UserKey::from_email(user);
        let row = format!("#users tr[data-user=\"{user}\"]");
        // As text: whole in the title, and in the cell but for a part cut to fit.
        let shown = d
            .script(&format!(
                "var a = document.querySelector({}); return [a.title, a.textContent];",
                serde_json::to_string(&format!("{row} td .address")).unwrap()
            ))
            .await;
        assert_eq!(shown[0], json!(user), "the address is shown as text");
        let text = shown[1].as_str().unwrap();
        let (kept, rest) = text.split_once('…').unwrap_or((text, ""));
        assert!(
            user.starts_with(kept) && user.ends_with(rest),
            "{text} shows {user}"
        );
        let button = format!("{row} button.reset");
        let confirmation = format!(
            "Reset Sync for {user}? Its pairs and cursors are forgotten; no data is deleted."
        );

        // Dismissed: the only dialog is the confirmation, with the address as text; nothing
        // else runs and nothing is reset.
        let before = d
            .script("window.__exsyncSamePage = true; return [document.title, location.href, true];")
            .await;
        d.click(&button).await;
        assert_eq!(
            d.wait_dialog().await.as_deref(),
            Some(confirmation.as_str()),
            "the first dialog after the click is the confirmation"
        );
        d.answer_dialog(false).await;
        assert_eq!(d.wait_dialog().await, None, "no dialog after it");
        let seen = d
            .script("return [document.title, location.href, window.__exsyncSamePage === true];")
            .await;
        assert_eq!(
            seen, before,
            "no script changed the page, and it was not left"
        );
        assert_eq!(store.user_status(&key).unwrap().unwrap().contact_pairs, 1);

        // Accepted: the reset happens, and still nothing else runs.
        d.mark_page().await;
        d.click(&button).await;
        assert_eq!(
            d.wait_dialog().await.as_deref(),
            Some(confirmation.as_str())
        );
        d.answer_dialog(true).await;
        d.wait_new_page(&button).await;
        assert_eq!(d.dialog().await, None, "no dialog on the answer page");
        let notice = d.text("#notice").await;
        assert!(
            notice.starts_with(&format!("Reset Sync for {user}: 1 pairs")),
            "{notice}"
        );
        assert_eq!(d.script("return document.title;").await, title);
        assert_eq!(store.user_status(&key).unwrap().unwrap().contact_pairs, 0);
    }
    d.screenshot("10-hostile-addresses-reset").await;

    // Nothing on the page carries an inline handler, and every script is the console's file.
    let handlers = d
        .script(
            "var found = []; document.querySelectorAll('*').forEach(function (e) { \
             for (var i = 0; i < e.attributes.length; i++) { \
             if (/^on/i.test(e.attributes[i].name)) found.push(e.tagName + ' ' + e.attributes[i].name); } }); \
             return found;",
        )
        .await;
    assert_eq!(handlers, json!([]));
    let scripts = d
        .script("return Array.prototype.map.call(document.scripts, function (s) { return s.getAttribute('src'); });")
        .await;
    let scripts = scripts.as_array().unwrap();
    assert!(!scripts.is_empty(), "the page loads the console's script");
    assert!(
        scripts
            .iter()
            .all(|s| s.as_str().is_some_and(|s| s.starts_with("/assets/"))),
        "{scripts:?}"
    );
    d.quit().await;
    server.abort();
}
