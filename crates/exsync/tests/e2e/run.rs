//! `exsync run` as an admin runs it: a real process that syncs on its interval, serves
//! metrics, and stops cleanly on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::MASTER_KEY;
use exsync_engine::sync::mailboxes::Backend;
use exsync_lab::{Lab, LabOptions, Seed};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn scrape(addr: &str) -> Option<String> {
    get(addr, "/metrics").await
}

/// The answer to `GET path` on `addr`, status line first, or `None` when nothing answers.
pub(super) async fn get(addr: &str, path: &str) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await.ok()?;
    Some(text)
}

async fn the_service_syncs_serves_metrics_and_stops_on_sigterm(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let lab = Lab::start(crate::lab_options(dir.path(), 1, backend))
        .await
        .unwrap();
    lab.seed(&Seed {
        crm_contacts: 5,
        crm_events: 2,
        ..Seed::default()
    })
    .await
    .unwrap();
    let config = dir.path().join("exsync.toml");
    lab.write_config(&config, MASTER_KEY).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = format!("127.0.0.1:{port}");
    let console_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let console = format!("127.0.0.1:{console_port}");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(!text.contains("[console]"), "{text}");
    std::fs::write(
        &config,
        text.replace(
            "[service]\n",
            &format!("[service]\nmetrics_listen = \"{metrics}\"\n"),
        ) + &format!("\n[console]\nlisten = \"{console}\"\n"),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let mut child = Command::new(env!("CARGO_BIN_EXE_exsync"))
        .args(["run", "--log-format", "json", "--config"])
        .arg(&config)
        .env("EXSYNC_MASTER_KEY", MASTER_KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first pass ends when the metrics show a pass duration.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "no pass was reported");
        if let Some(text) = scrape(&metrics).await {
            if text.contains("exsync_pass_duration_seconds_count 1") {
                for line in [
                    r#"exsync_items_synced_total{kind="contact",direction="to_exchange",op="create"} 5"#,
                    r#"exsync_items_synced_total{kind="event",direction="to_exchange",op="create"} 2"#,
                    r#"exsync_users{state="syncing"} 1"#,
                    r#"exsync_users{state="failing"} 0"#,
                    r#"exsync_users{state="unassigned"} 0"#,
                    "exsync_last_pass_end_timestamp_seconds ",
                    "exsync_user_last_success_timestamp_seconds{user=",
                    concat!(
                        "exsync_build_info{version=\"",
                        env!("CARGO_PKG_VERSION"),
                        "\"} 1"
                    ),
                ] {
                    assert!(text.contains(line), "{line} missing in {text}");
                }
                // The mailbox's writes, counted under the backend's own name for them.
                let writes = match backend {
                    Backend::Ews => {
                        r#"exsync_requests_total{side="exchange",endpoint="CreateItem",outcome="ok"}"#
                    }
                    Backend::Graph => {
                        r#"exsync_requests_total{side="graph",endpoint="/$batch",outcome="ok"}"#
                    }
                };
                assert!(text.contains(writes), "{writes} missing in {text}");
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // One process: the service serves the console beside its passes.
    let login = get(&console, "/login").await.unwrap();
    assert!(login.starts_with("HTTP/1.1 200 OK"), "{login}");
    assert!(login.contains("login-form"), "{login}");
    let health = get(&metrics, "/healthz").await.unwrap();
    assert!(health.starts_with("HTTP/1.1 200 OK"), "{health}");
    let ready = get(&metrics, "/readyz").await.unwrap();
    assert!(ready.starts_with("HTTP/1.1 200 OK"), "{ready}");
    assert!(ready.contains("ready: the last pass ended"), "{ready}");
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let stopped = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            stopped.elapsed() < Duration::from_secs(20),
            "still running after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{:?}", output.status);
    let logs = String::from_utf8_lossy(&output.stderr);
    // One JSON object per line.
    for line in logs.lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
    assert!(logs.contains("Sync service stopped."), "{logs}");
    assert_eq!(
        lab.syncer
            .store
            .load_pairs(&lab.users[0].key, exsync_core::ItemKind::Contact)
            .unwrap()
            .len(),
        5
    );
    crate::served_by(&lab, backend);
}

/// Two workers on one host given the same metrics port: the second refuses to start before it
/// syncs anything, naming the setting and the fix; given a port of its own, it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_metrics_port_stops_the_service_at_start_and_says_how_to_give_it_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let lab = Lab::start(LabOptions::new(dir.path(), 1)).await.unwrap();
    let config = dir.path().join("exsync.toml");
    lab.write_config(&config, MASTER_KEY).unwrap();
    // Another worker's listener.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "[service]\n",
            &format!("[service]\nmetrics_listen = \"{addr}\"\n"),
        ),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_exsync"))
            .arg("run")
            .args(extra)
            .arg("--config")
            .arg(&config)
            .env("EXSYNC_MASTER_KEY", MASTER_KEY)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut child = run(&[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("exsync run kept running on a taken metrics port");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    for part in [
        format!("cannot serve metrics on {addr} (service.metrics_listen)"),
        "several workers on one host need a port each".to_owned(),
        "exsync run --metrics-listen 127.0.0.1:PORT".to_owned(),
    ] {
        assert!(stderr.contains(&part), "{part:?} missing: {stderr}");
    }
    assert!(
        lab.syncer
            .store
            .runs(&lab.users[0].key, 1)
            .unwrap()
            .is_empty(),
        "it synced before it stopped"
    );

    // Its own port on the command line: it serves there, beside the other.
    let own = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let mut child = run(&["--metrics-listen", &own]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if get(&own, "/healthz")
            .await
            .is_some_and(|t| t.ends_with("ok\n"))
        {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "exsync run ended");
        assert!(Instant::now() < deadline, "no /healthz on {own}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    // Its text logs go to a pipe here, as to a journal or a file: no colour codes in them.
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(logs.contains("Sync service started."), "{logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "colour codes in logs to a pipe: {logs:?}"
    );
    drop(taken);
}

crate::on_each_backend!(the_service_syncs_serves_metrics_and_stops_on_sigterm);
