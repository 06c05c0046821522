//! `exsync check` for an organisation whose mailboxes are all in Exchange Online: the Graph
//! steps in its text output, before anything is sent when the app's credential is missing or
//! unusable.

use std::path::Path;

use exsync_testkit::cli::{Cli, Ran};

const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

const CONFIG: &str = r#"
[store]
path = "state.db"

[exchange]
service_account = "svc@contoso.test"

[exchange_online]
tenant = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
all_users = true

[crm]
client_id = "client"
username = "integration@contoso.test"

[configurations.sales]
users = ["ann@contoso.test"]
"#;

fn exsync(dir: &Path, args: &[&str], stdin: Option<&str>) -> Ran {
    let mut cli = Cli::new(env!("CARGO_BIN_EXE_exsync"))
        .current_dir(dir)
        .env("EXSYNC_MASTER_KEY", MASTER_KEY)
        .args(args);
    if let Some(text) = stdin {
        cli = cli.stdin(text);
    }
    cli.run()
}

/// The outcome lines of a report, without the time a timed step took (`  (12 ms)`).
fn blocks(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| {
            l.starts_with("PASS")
                || l.starts_with("WARN")
                || l.starts_with("FAIL")
                || l.starts_with("SKIP")
        })
        .map(|l| match l.rsplit_once("  (") {
            Some((head, ms)) if ms.ends_with(" ms)") => head,
            _ => l,
        })
        .collect()
}

#[test]
fn check_graph_without_the_apps_certificate_fails_with_the_secrets_commands() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exsync.toml"), CONFIG).unwrap();
    let out = exsync(dir.path(), &["check", "-c", "exsync.toml"], None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = out.stdout.clone();
    let steps = blocks(&text);
    // Every mailbox is online: no EWS step runs.
    assert!(!text.contains("Autodiscover"), "{text}");
    assert!(steps.contains(&"FAIL  Exchange Online app token"), "{text}");
    assert!(
        steps.contains(&"SKIP  Tenant-wide Graph permissions"),
        "{text}"
    );
    assert!(
        steps.contains(&"SKIP  Mailbox in the app's scope (ann@contoso.test)"),
        "{text}"
    );
    for line in [
        "      tenant contoso.onmicrosoft.com",
        "      client id 11111111-2222-3333-4444-555555555555",
        "      cloud global",
        "      credential: certificate",
        "      the app's credential is not in the vault",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(
        text.contains("exsync secrets set exchange_online.certificate"),
        "{text}"
    );
}

#[test]
fn check_graph_reads_the_apps_certificate_from_the_vault() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exsync.toml"), CONFIG).unwrap();
    for name in ["exchange_online.certificate", "exchange_online.private_key"] {
        let set = exsync(
            dir.path(),
            &["secrets", "set", name, "-c", "exsync.toml"],
            Some("not a PEM\n"),
        );
        assert_eq!(set.status.code(), Some(0), "{set:?}");
    }
    let out = exsync(dir.path(), &["check", "-c", "exsync.toml"], None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = out.stdout.clone();
    assert!(
        blocks(&text).contains(&"FAIL  Exchange Online app token"),
        "{text}"
    );
    assert!(text.contains("the credential cannot be used"), "{text}");
    assert!(!text.contains("not a PEM"), "{text}");
}

/// Through `exsync.toml` alone (the endpoints and CA of a private deployment, here the Graph
/// simulator's) the binary gets a token with the secret from the vault and finds the mailbox in
/// the app's scope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_graph_reaches_endpoints_the_configuration_names() {
    let dir = tempfile::tempdir().unwrap();
    let sim = exsync_sim::graph::GraphSim::start(
        &dir.path().join("graph"),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let info = sim.info.clone();
    let authority = info.authority_url().to_owned();
    let user = info.mailboxes[0].clone();
    let config = format!(
        r#"
[store]
path = "state.db"

[exchange]
service_account = "svc@contoso.test"

[exchange_online]
tenant = "{tenant}"
client_id = "{client}"
credential = "secret"
all_users = true
authority_url = "{authority}"
graph_url = "{graph}"
ca_file = "{ca}"

[crm]
client_id = "client"
username = "integration@contoso.test"

[configurations.sales]
users = ["{user}"]
"#,
        tenant = info.tenant_id,
        client = info.client_id,
        graph = info.graph_url,
        ca = info.ca_pem.display(),
    );
    std::fs::write(dir.path().join("exsync.toml"), config).unwrap();
    let root = dir.path().to_owned();
    let secret = format!("{}\n", info.client_secret);
    let out = tokio::task::spawn_blocking(move || {
        let set = exsync(
            &root,
            &["secrets", "set", "exchange_online.client_secret"],
            Some(&secret),
        );
        assert!(set.status.success(), "{set:?}");
        exsync(&root, &["check"], None)
    })
    .await
    .unwrap();
    let text = out.stdout.clone();
    let steps = blocks(&text);
    for step in [
        "PASS  Exchange Online app token".to_owned(),
        "PASS  Tenant-wide Graph permissions".to_owned(),
        format!("PASS  Mailbox in the app's scope ({user})"),
        format!("PASS  Contact folder and calendar ({user})"),
        format!("PASS  Write round trip ({user})"),
    ] {
        assert!(steps.contains(&step.as_str()), "{step} missing in {text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("PASS  Exchange Online app token  (") && l.ends_with(" ms)")),
        "the token step shows its time: {text}"
    );
    sim.shutdown().await;
}
