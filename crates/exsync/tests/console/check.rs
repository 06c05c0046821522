//! The connectivity analyzer against the Exchange and Salesforce simulators: every step
//! passes for a mailbox the service account may impersonate; a denied mailbox fails with
//! the exact role-assignment command; a wrong password fails the login step; the CLI's
//! `--json` output and exit code, and the console's connection test, carry the same report.
//! Basic in use is a warning that names NTLM with Extended Protection; a state database or
//! key file others may read is a warning with the `chmod` that fixes it, and the check
//! creates no file.

use crate::support::sims::sims;
use crate::support::{request, Auth, Env};
use axum::http::{Method, StatusCode};
use exsync_engine::check::{run, Outcome, Report};
use exsync_engine::vault::SecretValue;
use exsync_store::Role;
use exsync_testkit::cli::{Cli, Ran};

fn step<'a>(report: &'a Report, prefix: &str) -> &'a exsync_engine::check::Step {
    report
        .steps
        .iter()
        .find(|s| s.name.starts_with(prefix))
        .unwrap_or_else(|| panic!("no step {prefix}:\n{}", report.render()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_passes_through_autodiscover_for_an_impersonable_mailbox() {
    let sims = sims().await;
    let dir = tempfile::tempdir().unwrap();
    let inputs = sims.inputs(
        dir.path(),
        "",
        "user1@contoso.test",
        Some(sims.exchange_password()),
    );
    let report = run(&inputs).await;
    let text = report.render();
    assert!(!report.failed(), "{text}");
    for name in [
        "Service account password",
        "DNS",
        "Autodiscover",
        "TLS",
        "Authentication schemes",
        "EWS reachable",
        "Impersonation",
        "Calendar access",
        "Contacts folder access",
        "CRM token",
        "CRM API allowance",
    ] {
        let s = step(&report, name);
        assert!(
            matches!(s.outcome, Outcome::Pass | Outcome::Warn),
            "{name}: {text}"
        );
        assert!(!s.evidence.is_empty(), "{name} has evidence: {text}");
    }
    assert!(
        step(&report, "Autodiscover")
            .evidence
            .iter()
            .any(|e| e.contains("autodiscover.contoso.test")),
        "{text}"
    );
    assert!(
        step(&report, "TLS")
            .evidence
            .iter()
            .any(|e| e.contains("TLSv1")),
        "{text}"
    );
    assert!(
        step(&report, "TLS")
            .evidence
            .iter()
            .any(|e| e.contains("certificate 0: subject")),
        "{text}"
    );
    assert!(
        step(&report, "Authentication schemes")
            .evidence
            .iter()
            .any(|e| e.contains("offered: ") && e.contains("Basic")),
        "{text}"
    );
    assert!(
        step(&report, "Authentication schemes")
            .evidence
            .iter()
            .any(|e| e.contains("exsync will use Basic")),
        "{text}"
    );
    assert!(
        step(&report, "CRM API allowance").evidence[0].contains("daily API calls used"),
        "{text}"
    );
    assert!(
        !text.contains(sims.exchange_password().expose()),
        "no secret in the report"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_mailbox_fails_impersonation_with_the_role_assignment_command() {
    let sims = sims().await;
    let dir = tempfile::tempdir().unwrap();
    let ews = format!(
        "ews_url = \"https://mail.contoso.test:{}/EWS/Exchange.asmx\"",
        sims.exchange.port()
    );
    let inputs = sims.inputs(
        dir.path(),
        &ews,
        "user3@contoso.test",
        Some(sims.exchange_password()),
    );
    let report = run(&inputs).await;
    let text = report.render();
    assert!(report.failed(), "{text}");
    let s = step(&report, "Impersonation of user3@contoso.test");
    assert_eq!(s.outcome, Outcome::Fail, "{text}");
    let fix = s.fix.as_deref().unwrap();
    assert!(
        fix.contains("New-ManagementRoleAssignment -Name exsync-impersonation -Role ApplicationImpersonation -User svc-sync@contoso.test"),
        "{fix}"
    );
    assert_eq!(
        step(&report, "EWS reachable").outcome,
        Outcome::Pass,
        "{text}"
    );
    assert!(
        report.steps.iter().all(|s| s.name != "Autodiscover"),
        "a configured EWS URL needs no Autodiscover"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_the_login_and_a_missing_one_says_how_to_store_it() {
    let sims = sims().await;
    let dir = tempfile::tempdir().unwrap();
    let ews = format!(
        "ews_url = \"https://mail.contoso.test:{}/EWS/Exchange.asmx\"",
        sims.exchange.port()
    );
    let inputs = sims.inputs(
        dir.path(),
        &ews,
        "user1@contoso.test",
        Some(SecretValue::new("wrong-password".to_owned())),
    );
    let report = run(&inputs).await;
    let s = step(&report, "EWS reachable");
    assert_eq!(s.outcome, Outcome::Fail, "{}", report.render());
    assert!(s.fix.as_deref().unwrap().contains("user name or password"));

    let inputs = sims.inputs(dir.path(), &ews, "user1@contoso.test", None);
    let report = run(&inputs).await;
    let s = step(&report, "Service account password");
    assert_eq!(s.outcome, Outcome::Fail);
    assert!(s
        .fix
        .as_deref()
        .unwrap()
        .contains("exsync secrets set exchange.password"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_prints_json_and_exits_1_on_a_failure_and_the_console_runs_the_same_checks() {
    let sims = sims().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    std::fs::write(d.join("exsync.toml"), sims.config("")).unwrap();
    let set = |name: &str, value: String| {
        let out = exsync_in(&d, &["secrets", "set", name], &value);
        assert!(out.status.success(), "{}", out.text());
    };
    set(
        "exchange.password",
        sims.exchange_password().expose().to_owned(),
    );
    set("crm.private_key", sims.private_key().expose().to_owned());
    let check = |user: &'static str| {
        let d = d.clone();
        tokio::task::spawn_blocking(move || exsync_in(&d, &["check", "--user", user, "--json"], ""))
    };
    let ok = check("user1@contoso.test").await.unwrap();
    assert!(ok.status.success(), "{}", ok.text());
    let denied = check("user3@contoso.test").await.unwrap();
    assert_eq!(denied.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_str(&denied.stdout).unwrap();
    assert_eq!(json["status"], "fail");
    assert!(json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["outcome"] == "fail"
            && s["fix"]
                .as_str()
                .unwrap_or("")
                .contains("ApplicationImpersonation")));
    assert!(!denied.stdout.contains(sims.exchange_password().expose()));

    // The console's connection test (operator) runs the same analyzer.
    let env = Env::new();
    std::fs::write(env.config_path(), sims.config("")).unwrap();
    env.state
        .vault
        .set("exchange.password", &sims.exchange_password())
        .unwrap();
    env.state
        .vault
        .set("crm.private_key", &sims.private_key())
        .unwrap();
    let app = env.router_with_connection_tests();
    let req = request(
        Method::POST,
        "/api/users/user3%40contoso.test/test",
        &Auth::Token(env.token(Role::Operator).to_owned()),
        None,
    );
    let res = tower::ServiceExt::oneshot(app, req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(report["status"], "fail", "{report}");
    assert_eq!(report["user"], "user3@contoso.test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_in_use_is_a_warning_that_names_ntlm_with_extended_protection() {
    let sims = sims().await;
    let dir = tempfile::tempdir().unwrap();
    let ews = format!(
        "ews_url = \"https://mail.contoso.test:{}/EWS/Exchange.asmx\"",
        sims.exchange.port()
    );
    // `auto` takes Basic when the server offers it, as the simulator does (with NTLM).
    let inputs = sims.inputs(
        dir.path(),
        &ews,
        "user1@contoso.test",
        Some(sims.exchange_password()),
    );
    let report = run(&inputs).await;
    let text = report.render();
    assert!(!report.failed(), "{text}");
    let s = step(&report, "Authentication schemes");
    assert_eq!(s.outcome, Outcome::Warn, "{text}");
    assert!(
        s.evidence
            .iter()
            .any(|e| e.contains("password") && e.contains("every request")),
        "{text}"
    );
    let fix = s.fix.as_deref().unwrap();
    assert!(
        fix.contains("NTLM with Extended Protection")
            && fix.contains("exchange.auth = \"ntlm\"")
            && fix.contains("-ExtendedProtectionTokenChecking Require"),
        "{fix}"
    );
    assert!(text.contains("WARN  Authentication schemes"), "{text}");

    // With NTLM chosen there is nothing to warn about.
    let inputs = sims.inputs(
        dir.path(),
        &format!("{ews}\nauth = \"ntlm\""),
        "user1@contoso.test",
        Some(sims.exchange_password()),
    );
    let report = run(&inputs).await;
    let text = report.render();
    let s = step(&report, "Authentication schemes");
    assert_eq!(s.outcome, Outcome::Pass, "{text}");
    assert!(s.fix.is_none(), "{text}");
    assert!(
        s.evidence
            .iter()
            .any(|e| e.contains("exsync will use NTLM")),
        "{text}"
    );
    assert_eq!(
        step(&report, "EWS reachable").outcome,
        Outcome::Pass,
        "{text}"
    );
}

fn exsync_in(dir: &std::path::Path, args: &[&str], stdin: &str) -> Ran {
    Cli::new(env!("CARGO_BIN_EXE_exsync"))
        .current_dir(dir)
        .args(args)
        .env_remove("EXSYNC_MASTER_KEY")
        .stdin(stdin)
        .run()
}

/// `exsync check --json` in `dir`, off the async workers (it runs its own runtime).
async fn check_json(dir: &std::path::Path) -> serde_json::Value {
    let dir = dir.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        exsync_in(
            &dir,
            &["check", "--user", "user1@contoso.test", "--json"],
            "",
        )
    })
    .await
    .unwrap();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", out.text()))
}

fn files_step(report: &serde_json::Value) -> serde_json::Value {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "State and key file permissions")
        .unwrap_or_else(|| panic!("no file permission step: {report:#}"))
        .clone()
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_database_others_can_read_is_a_warning_with_the_chmod_that_fixes_it() {
    use std::os::unix::fs::PermissionsExt;
    let sims = sims().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("exsync.toml"), sims.config("auth = \"ntlm\"")).unwrap();
    let out = exsync_in(
        d,
        &["secrets", "set", "exchange.password"],
        sims.exchange_password().expose(),
    );
    assert!(out.status.success(), "{out:?}");
    let db = std::fs::canonicalize(d.join("state.db")).unwrap();
    let key = std::fs::canonicalize(d.join("exsync.key")).unwrap();
    let chmod = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };

    chmod(&db, 0o644);
    let report = check_json(d).await;
    let s = files_step(&report);
    assert_eq!(s["outcome"], "warn", "{s:#}");
    let fix = s["fix"].as_str().unwrap();
    assert!(
        fix.starts_with(&format!("chmod 600 {}", db.display())),
        "{fix}"
    );
    assert!(
        !fix.contains("exsync.key"),
        "the key file is private: {fix}"
    );
    assert!(
        s["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().contains("has mode 644")),
        "{s:#}"
    );

    chmod(&db, 0o600);
    let report = check_json(d).await;
    let s = files_step(&report);
    assert_eq!(s["outcome"], "pass", "{s:#}");
    assert!(s["fix"].is_null(), "{s:#}");
    assert!(!report.to_string().contains("chmod"), "{report:#}");

    // The key file is looked at the same way (a loose key file is refused when it is read,
    // so with the key in the environment the check is what still says so).
    chmod(&key, 0o640);
    let dir_path = d.to_owned();
    let key_text = std::fs::read_to_string(&key).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Cli::new(env!("CARGO_BIN_EXE_exsync"))
            .current_dir(&dir_path)
            .args(["check", "--user", "user1@contoso.test", "--json"])
            .env("EXSYNC_MASTER_KEY", key_text.trim())
            .run()
    })
    .await
    .unwrap();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let s = files_step(&report);
    assert_eq!(s["outcome"], "warn", "{s:#}");
    assert_eq!(
        s["fix"].as_str().unwrap().split(" (").next().unwrap(),
        format!("chmod 600 {}", key.display())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_creates_no_state_database_or_key_file() {
    let sims = sims().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("exsync.toml"), sims.config("")).unwrap();
    let listing = || {
        let mut names: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = listing();
    let report = check_json(d).await;
    assert_eq!(listing(), before, "{report:#}");
    let s = files_step(&report);
    assert_eq!(s["outcome"], "pass", "{s:#}");
    let evidence = s["evidence"].to_string();
    assert!(evidence.contains("does not exist"), "{s:#}");
    assert!(evidence.contains("no state database yet"), "{s:#}");
    assert_eq!(
        step_json(&report, "Service account password")["outcome"],
        "fail",
        "no secret can be stored without a database: {report:#}"
    );
}

fn step_json(report: &serde_json::Value, name: &str) -> serde_json::Value {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name}: {report:#}"))
        .clone()
}
