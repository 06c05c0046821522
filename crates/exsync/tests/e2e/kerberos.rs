//! A full `exsync sync` pass over Kerberos: the binary logs in with a keytab from the vault to a
//! real MIT KDC on 127.0.0.1 (found through `exchange.realm` and `exchange.kdcs`, no krb5.conf of
//! the machine's), and the Exchange simulator checks every ticket against its keytab under
//! Extended Protection.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{shared_key, MASTER_KEY};
use base64::Engine;
use exsync_lab::{Lab, LabOptions, Seed};
use exsync_testkit::kdc::{Kdc, KdcOptions, REALM};
use reqwest::Method;
use serde_json::Value;

fn exsync(config: &std::path::Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_exsync"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("EXSYNC_MASTER_KEY", MASTER_KEY)
        // The binary must find the KDC from its own configuration.
        .env_remove("KRB5_CONFIG")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn logons(lab: &Lab) -> Value {
    lab.exchange_control(Method::GET, "/counters", &Value::Null)
        .await
        .unwrap()["logons_per_scheme"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_pass_over_kerberos_with_a_keytab_from_the_vault() {
    let Some(kdc) = Kdc::start_with(KdcOptions {
        service_host: "mail.contoso.test".into(),
        ..KdcOptions::default()
    }) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut options = LabOptions::new(dir.path(), 1);
    options.crm_key_pem = Some(shared_key());
    // NTLM stays offered for the lab's own seeding client; the service must choose Kerberos.
    options.exchange_auth = "negotiate,ntlm".into();
    options.exchange_keytab = Some(kdc.service_keytab.clone());
    let lab = Lab::start(options).await.unwrap();
    lab.seed(&Seed {
        crm_contacts: 3,
        crm_events: 1,
        exchange_contacts: 1,
        exchange_events: 0,
        invalid_record: false,
    })
    .await
    .unwrap();
    let config = dir.path().join("exsync.toml");
    lab.write_config(&config, MASTER_KEY).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("auth = \"ntlm\""), "{text}");
    std::fs::write(
        &config,
        text.replace(
            "auth = \"ntlm\"",
            &format!(
                "auth = \"kerberos\"\nrealm = \"{REALM}\"\nkdcs = [\"127.0.0.1:{}\"]",
                kdc.port
            ),
        ),
    )
    .unwrap();
    // The keytab replaces the password: the password the lab stored is removed.
    let keytab = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(&kdc.client_keytab).unwrap());
    let (ok, out) = exsync(
        &config,
        &["secrets", "set", "exchange.keytab"],
        Some(&keytab),
    );
    assert!(ok, "{out}");
    let (ok, out) = exsync(&config, &["secrets", "delete", "exchange.password"], None);
    assert!(ok, "{out}");
    let before = logons(&lab).await;

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (ok, out) = tokio::task::spawn_blocking({
        let config = config.clone();
        move || exsync(&config, &["sync"], None)
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    assert!(!out.contains(&keytab), "the keytab leaked into the output");

    let after = logons(&lab).await;
    let negotiate = after["negotiate"].as_u64().unwrap_or(0);
    assert!(negotiate >= 3, "the pass logged in with Kerberos: {after}");
    assert_eq!(
        before["ntlm"], after["ntlm"],
        "the pass used NTLM: {before} → {after}"
    );
    // Both sides hold the same records: the pass over Kerberos did the whole job.
    let check = lab.convergence().await.unwrap();
    assert!(check.converged(), "{:#?}", check.problems);
    // `exsync check` logs in the same way and says how: the scheme offered and used, the
    // principal and the ticket's lifetime.
    let user = lab.users[0].key.as_str().to_owned();
    let (_, out) = tokio::task::spawn_blocking({
        let config = config.clone();
        move || exsync(&config, &["check", "--user", &user, "--json"], None)
    })
    .await
    .unwrap();
    let json_start = out.find('{').unwrap_or(0);
    let report: Value = serde_json::Deserializer::from_str(&out[json_start..])
        .into_iter::<Value>()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("no JSON report: {out}"));
    let steps = report["steps"].as_array().unwrap();
    let step = |name: &str| {
        steps
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no {name} step: {report:#}"))
            .clone()
    };
    let auth = step("Authentication schemes").to_string();
    assert!(
        auth.contains("Negotiate") && auth.contains("exsync will use Negotiate"),
        "{auth}"
    );
    let ews = step("EWS reachable with the service account");
    assert_eq!(ews["outcome"], "pass", "{ews:#}");
    let ews = ews.to_string();
    assert!(ews.contains("logged in with Negotiate"), "{ews}");
    assert!(
        ews.contains(&format!("Kerberos principal svc-sync@{REALM}")),
        "{ews}"
    );
    assert!(ews.contains("ticket-granting ticket valid for"), "{ews}");
    assert!(!out.contains(&keytab));

    // The keytab written for MIT is gone with the process.
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("exsync-krb5-"))
        .filter(|e| e.path().join("exchange.keytab").exists())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// `exsync demo --auth kerberos`: its own KDC, the simulator accepting Negotiate only, every
/// Exchange logon with Kerberos, and both sides converged. Without MIT's KDC, a refusal naming
/// the Debian packages before anything starts.
#[test]
fn the_demo_over_kerberos_converges_with_every_logon_by_kerberos() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let output = Command::new(env!("CARGO_BIN_EXE_exsync"))
        .args(["demo", "--auth", "kerberos", "--users", "1"])
        .args(["--contacts", "5", "--events", "2", "--data-dir"])
        .arg(&data)
        // The demo must bring its own Kerberos configuration.
        .env_remove("KRB5_CONFIG")
        .output()
        .unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !exsync_testkit::kdc::installed() {
        assert!(!output.status.success(), "{out}");
        assert!(
            out.contains("apt-get install krb5-kdc krb5-admin-server"),
            "{out}"
        );
        assert!(!data.exists(), "something was started: {out}");
        return;
    }
    assert!(output.status.success(), "{out}");
    assert!(
        out.contains(&format!(
            "Kerberos as svc-sync@{REALM} from the KDC at 127.0.0.1:"
        )),
        "{out}"
    );
    let logons = out
        .lines()
        .find_map(|l| l.strip_prefix("Exchange logons: "))
        .unwrap_or_else(|| panic!("no logon counts: {out}"));
    let kerberos: u64 = logons
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(kerberos > 0, "{out}");
    assert!(logons.contains(" 0 with NTLM, 0 with Basic."), "{logons}");
    assert!(out.contains("Converged:"), "{out}");
}
