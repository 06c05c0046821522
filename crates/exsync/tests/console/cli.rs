//! The console's command-line side, as an admin runs it: `exsync admin add-user|add-token`,
//! `exsync secrets set|list|rotate-key` (values only from stdin), and `exsync serve` over
//! plain HTTP on loopback and over TLS.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use exsync_engine::vault::{load_master_key, Vault};
use exsync_store::{Accounts, SqliteStore, Store};
use exsync_testkit::cli::{Cli, Ran};

const CONFIG: &str = r#"
[store]
path = "state.db"

[exchange]
service_account = "svc@contoso.test"

[crm]
client_id = "client"
username = "integration@contoso.test"

[configurations.sales]
users = ["ann@contoso.test"]
"#;

fn exsync(dir: &Path, args: &[&str], stdin: &str) -> Ran {
    exsync_with_key(dir, args, stdin, None)
}

/// Runs exsync with the master key in `EXSYNC_MASTER_KEY`, or from the key file when `None`.
fn exsync_with_key(dir: &Path, args: &[&str], stdin: &str, key: Option<&str>) -> Ran {
    let mut command = Cli::new(env!("CARGO_BIN_EXE_exsync"))
        .current_dir(dir)
        .args(args)
        .env_remove("EXSYNC_MASTER_KEY");
    if let Some(key) = key {
        command = command.env("EXSYNC_MASTER_KEY", key);
    }
    command.stdin(stdin).run()
}

fn setup(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exsync.toml"), format!("{CONFIG}{extra}")).unwrap();
    dir
}

#[test]
fn secrets_are_set_from_stdin_listed_without_values_and_rotated() {
    let dir = setup("");
    let d = dir.path();
    let secret = "Cli-Secret-Value-7731-unique";
    let out = exsync(
        d,
        &["secrets", "set", "exchange.password"],
        &format!("{secret}\n"),
    );
    assert!(out.status.success(), "{}", out.text());
    assert!(!out.text().contains(secret));

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("exsync.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let out = exsync(d, &["secrets", "list"], "");
    assert!(out.status.success(), "{}", out.text());
    assert!(out.text().contains("exchange.password"), "{}", out.text());
    assert!(!out.text().contains(secret));

    let read_back = || {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(d.join("state.db")).unwrap());
        let (key, _) = load_master_key(None, &d.join("exsync.key")).unwrap();
        Vault::new(store, key)
            .get("exchange.password")
            .unwrap()
            .unwrap()
            .expose()
            .to_owned()
    };
    assert_eq!(
        read_back(),
        secret,
        "the trailing newline is not part of it"
    );
    let old_key = std::fs::read(d.join("exsync.key")).unwrap();

    let out = exsync(d, &["secrets", "rotate-key"], "");
    assert!(out.status.success(), "{}", out.text());
    assert!(
        out.text().contains("1 secrets re-encrypted"),
        "{}",
        out.text()
    );
    assert_ne!(std::fs::read(d.join("exsync.key")).unwrap(), old_key);
    assert!(!d.join("exsync.key.new").exists());
    assert_eq!(read_back(), secret);

    for bytes in [
        std::fs::read(d.join("state.db")).unwrap(),
        std::fs::read(d.join("state.db-wal")).unwrap_or_default(),
    ] {
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }

    // A key file others can read is refused.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.join("exsync.key"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let out = exsync(d, &["secrets", "list"], "");
        assert!(!out.status.success());
        assert!(out.text().contains("chmod 600"), "{}", out.text());
    }

    let out = exsync(d, &["secrets", "set", "Bad Name"], "x");
    assert!(!out.status.success());
    assert!(out.text().contains("unknown secret name"), "{}", out.text());
}

/// Names the service never reads are refused, a secret can be deleted, and every change from
/// the command line is in the audit log with the OS user who made it. `-c` works before the
/// subcommand as well as after it.
#[test]
fn secret_names_are_checked_deletes_exist_and_cli_changes_are_audited() {
    let dir = setup("");
    let d = dir.path();
    std::fs::rename(d.join("exsync.toml"), d.join("other.toml")).unwrap();
    let run = |args: &[&str], stdin: &str| {
        Cli::new(env!("CARGO_BIN_EXE_exsync"))
            .current_dir(d)
            .args(args)
            .env_remove("EXSYNC_MASTER_KEY")
            .env("USER", "jdoe")
            .stdin(stdin)
            .run()
    };
    let typo = run(
        &["-c", "other.toml", "secrets", "set", "exchange.pasword"],
        "x\n",
    );
    assert!(!typo.status.success());
    assert!(
        typo.text()
            .contains("unknown secret name \"exchange.pasword\"")
            && typo
                .text()
                .contains("exchange.password, crm.private_key, crm.client_secret"),
        "{}",
        typo.text()
    );
    let set = run(
        &["-c", "other.toml", "secrets", "set", "crm.client_secret"],
        "s3cret-value\n",
    );
    assert!(set.status.success(), "{}", set.text());
    let deleted = run(
        &["secrets", "delete", "crm.client_secret", "-c", "other.toml"],
        "",
    );
    assert!(deleted.status.success(), "{}", deleted.text());
    let again = run(
        &[
            "secrets",
            "delete",
            "crm.client_secret",
            "--config",
            "other.toml",
        ],
        "",
    );
    assert_eq!(again.status.code(), Some(1), "{}", again.text());
    assert!(again.text().contains("no secret named crm.client_secret"));
    let listed = run(&["-c", "other.toml", "secrets", "list"], "");
    assert!(
        listed.text().contains("no secrets stored"),
        "{}",
        listed.text()
    );
    let off = run(&["-c", "other.toml", "sync", "--disable"], "");
    assert!(off.status.success(), "{}", off.text());
    assert!(
        off.text().contains("Sync is switched off."),
        "{}",
        off.text()
    );
    let store = SqliteStore::open(d.join("state.db")).unwrap();
    assert!(!exsync_engine::switch::is_enabled(&store).unwrap());
    let on = run(&["-c", "other.toml", "sync", "--enable"], "");
    assert!(on.text().contains("Sync is switched on."), "{}", on.text());
    assert!(exsync_engine::switch::is_enabled(&store).unwrap());

    let audit: Vec<(String, String, String)> = store
        .list_audit(50, None)
        .unwrap()
        .into_iter()
        .map(|e| (e.actor, e.action, e.detail.to_string()))
        .collect();
    let actions: Vec<&str> = audit.iter().map(|(_, a, _)| a.as_str()).collect();
    for expected in ["secret.set", "secret.delete", "sync.disable", "sync.enable"] {
        assert!(
            actions.contains(&expected),
            "{expected} missing in {audit:?}"
        );
    }
    assert!(
        audit.iter().all(|(actor, _, _)| actor == "cli:jdoe"),
        "{audit:?}"
    );
    assert!(
        !audit.iter().any(|(_, _, detail)| detail.contains("s3cret")),
        "a value reached the audit log: {audit:?}"
    );
}

#[test]
fn the_env_master_key_must_be_32_bytes_of_base64() {
    let dir = setup("");
    let out = Cli::new(env!("CARGO_BIN_EXE_exsync"))
        .current_dir(dir.path())
        .args(["secrets", "list"])
        .env("EXSYNC_MASTER_KEY", "dG9vIHNob3J0")
        .run();
    assert!(!out.status.success());
    assert!(out.text().contains("EXSYNC_MASTER_KEY"), "{}", out.text());
    assert!(out.text().contains("32 bytes"), "{}", out.text());
}

#[test]
fn rotation_with_an_env_key_takes_the_new_key_on_stdin() {
    let dir = setup("");
    let d = dir.path();
    let old = exsync_engine::vault::MasterKey::generate();
    let new = exsync_engine::vault::MasterKey::generate();
    let run = |args: &[&str], key: &str, stdin: &str| exsync_with_key(d, args, stdin, Some(key));
    let out = run(
        &["secrets", "set", "crm.client_secret"],
        &old.to_base64(),
        "s3cret-value\n",
    );
    assert!(out.status.success(), "{}", out.text());
    assert!(
        !d.join("exsync.key").exists(),
        "no key file with an env key"
    );
    let out = run(
        &["secrets", "rotate-key"],
        &old.to_base64(),
        &format!("{}\n", *new.to_base64()),
    );
    assert!(out.status.success(), "{}", out.text());
    assert!(
        out.text().contains("set EXSYNC_MASTER_KEY"),
        "{}",
        out.text()
    );
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(d.join("state.db")).unwrap());
    assert!(Vault::new(store.clone(), old)
        .get("crm.client_secret")
        .is_err());
    assert_eq!(
        Vault::new(store, new)
            .get("crm.client_secret")
            .unwrap()
            .unwrap()
            .expose(),
        "s3cret-value"
    );
}

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_exsync"))
        .current_dir(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("EXSYNC_MASTER_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .split("://")
        .nth(1)
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .trim_end_matches('/')
        .to_owned();
    std::thread::spawn(move || for _ in lines {});
    Server { child, addr }
}

#[tokio::test]
async fn bootstrap_an_admin_and_a_token_then_use_them_against_the_served_console() {
    let dir = setup("");
    let d = dir.path();
    let out = exsync(
        d,
        &["admin", "add-user", "root", "--role", "admin"],
        "short\n",
    );
    assert!(!out.status.success(), "a short password is refused");
    let out = exsync(
        d,
        &["admin", "add-user", "root", "--role", "admin"],
        "a-long-admin-password\n",
    );
    assert!(out.status.success(), "{}", out.text());
    let out = exsync(
        d,
        &["admin", "add-user", "root", "--role", "viewer"],
        "a-long-admin-password\n",
    );
    assert!(out.text().contains("already exists"), "{}", out.text());
    let out = exsync(d, &["admin", "add-token", "ci", "--role", "viewer"], "");
    assert!(out.status.success(), "{}", out.text());
    let token = out.stdout.trim().to_owned();
    assert!(token.starts_with("exs_") && token.len() > 40, "{token}");
    let db = std::fs::read(d.join("state.db")).unwrap();
    assert!(
        !db.windows(token.len()).any(|w| w == token.as_bytes()),
        "only a hash is stored"
    );
    // Both are audited as the command line's, with the OS user.
    let audit: Vec<(String, String)> = SqliteStore::open(d.join("state.db"))
        .unwrap()
        .list_audit(10, None)
        .unwrap()
        .into_iter()
        .map(|e| (e.actor, e.action))
        .collect();
    for action in ["admin_user.create", "api_token.create"] {
        assert!(
            audit
                .iter()
                .any(|(actor, a)| a == action && actor.starts_with("cli:")),
            "{action} missing in {audit:?}"
        );
    }

    let server = serve(d);
    assert!(server.addr.starts_with("127.0.0.1:"));
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let me = client
        .get(format!("{base}/api/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let me: serde_json::Value = me.json().await.unwrap();
    assert_eq!(me["role"], "viewer");
    let denied = client
        .put(format!("{base}/api/sync"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);

    let login = client
        .post(format!("{base}/api/login"))
        .json(&serde_json::json!({"username": "root", "password": "a-long-admin-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let csrf = login.json::<serde_json::Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let no_csrf = client
        .put(format!("{base}/api/sync"))
        .json(&serde_json::json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status(), 403);
    let ok = client
        .put(format!("{base}/api/sync"))
        .header("x-csrf-token", &csrf)
        .json(&serde_json::json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let page = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("Sync is <strong id=\"sync-state\">disabled</strong>"));
}

#[tokio::test]
async fn the_console_serves_tls_with_secure_cookies_and_refuses_open_plain_http() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certified =
        rcgen::generate_simple_self_signed(vec!["console.contoso.test".to_owned()]).unwrap();
    let tls = "\n[console]\ntls_cert_file = \"console.pem\"\ntls_key_file = \"console-key.pem\"\n";
    let dir = setup(tls);
    let d = dir.path();
    std::fs::write(d.join("console.pem"), certified.cert.pem()).unwrap();
    std::fs::write(
        d.join("console-key.pem"),
        certified.key_pair.serialize_pem(),
    )
    .unwrap();
    let out = exsync(
        d,
        &["admin", "add-user", "root", "--role", "admin"],
        "a-long-admin-password\n",
    );
    assert!(out.status.success(), "{}", out.text());

    let server = serve(d);
    let addr: std::net::SocketAddr = server.addr.parse().unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap(),
        )
        .resolve("console.contoso.test", addr)
        .build()
        .unwrap();
    let login = client
        .post(format!(
            "https://console.contoso.test:{}/api/login",
            addr.port()
        ))
        .json(&serde_json::json!({"username": "root", "password": "a-long-admin-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    // Without TLS, only loopback.
    let plain = setup("");
    let out = Cli::new(env!("CARGO_BIN_EXE_exsync"))
        .current_dir(plain.path())
        .args(["serve", "--listen", "0.0.0.0:0"])
        .env_remove("EXSYNC_MASTER_KEY")
        .run();
    assert!(!out.status.success());
    assert!(out.text().contains("without TLS"), "{}", out.text());
}
