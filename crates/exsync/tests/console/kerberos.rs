//! The service-account page over Kerberos, against a real MIT KDC and the Exchange simulator
//! accepting Negotiate only: the page offers Kerberos with its realm and KDC fields (shown for
//! the modes that read them), the settings saved through the API reach the configuration, and
//! the connection test logs in with them at once, without a restart, reporting the scheme, the
//! principal and the ticket's lifetime; with a wrong password it fails with the fix.

use crate::support::sims::sims_with;
use crate::support::{request, Auth, Body2, Env};
use axum::http::{Method, StatusCode};
use exsync_store::Role;
use exsync_testkit::kdc::{Kdc, KdcOptions, PASSWORD, REALM};
use serde_json::{json, Value};

fn step<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"].as_str().unwrap_or("").starts_with(name))
        .unwrap_or_else(|| panic!("no step {name}: {report:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_test_logs_in_with_kerberos_settings_saved_in_the_console() {
    // What `exsync serve` does before its runtime starts: the realm edited below applies
    // to the next login.
    let _krb5_conf = exsync_gss::krb5_conf::use_switchable().unwrap();
    let Some(kdc) = Kdc::start_with(KdcOptions {
        service_host: "mail.contoso.test".into(),
        ..KdcOptions::default()
    }) else {
        return;
    };
    let sims = sims_with(|o| {
        o.auth = "negotiate".into();
        o.keytab = Some(kdc.service_keytab.clone());
    })
    .await;
    let env = Env::new();
    std::fs::write(env.config_path(), sims.config("")).unwrap();
    env.state
        .vault
        .set("crm.private_key", &sims.private_key())
        .unwrap();
    let app = env.router_with_connection_tests();
    let send = |method: Method, path: &str, role: Role, body: Option<Body2>| {
        let req = request(method, path, &Auth::Token(env.token(role).to_owned()), body);
        let app = app.clone();
        async move {
            let res = tower::ServiceExt::oneshot(app, req).await.unwrap();
            let status = res.status();
            let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
                .await
                .unwrap();
            (status, String::from_utf8_lossy(&bytes).into_owned())
        }
    };
    let upn = sims.exchange.info["service_account"]["upn"]
        .as_str()
        .unwrap()
        .to_owned();
    let ca_file = sims.exchange.info["ca_cert"].clone();
    // The KDC knows HTTP/mail.contoso.test only: EWS by that name, no Autodiscover.
    let ews_url = sims.exchange.info["ews_url_by_name"].clone();
    let kdc_addr = format!("127.0.0.1:{}", kdc.port);
    let save = |password: &'static str| {
        Body2::Json(json!({
            "username": upn,
            "ca_file": ca_file,
            "ews_url": ews_url,
            "password": password,
            "auth": "kerberos",
            "realm": REALM,
            "kdcs": [kdc_addr],
        }))
    };

    let (status, body) = send(
        Method::PUT,
        "/api/service-account",
        Role::Admin,
        Some(save(PASSWORD)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let view: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(view["auth"], "kerberos", "{view}");
    assert_eq!(view["realm"], REALM, "{view}");
    assert_eq!(view["kdcs"], json!([kdc_addr]), "{view}");
    assert_eq!(view["keytab_provided"], false, "{view}");
    let text = std::fs::read_to_string(env.config_path()).unwrap();
    assert!(text.contains(&format!("realm = \"{REALM}\"")), "{text}");

    // The page shows the mode chosen and the Kerberos fields, marked for the modes that read
    // them (the console's script hides them for the others, the page for the stored mode).
    let (status, page) = send(Method::GET, "/service-account", Role::Admin, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(r#"<option value="kerberos" selected>"#),
        "{page}"
    );
    assert!(
        page.contains(
            r#"<fieldset id="kerberos-fields" data-shown-by="auth" data-shown-for="auto kerberos">"#
        ),
        "{page}"
    );
    assert!(
        page.contains(&format!(r#"id="realm" value="{REALM}""#)),
        "{page}"
    );
    assert!(
        page.contains(&format!(r#"id="kdcs" value="{kdc_addr}""#)),
        "{page}"
    );

    let test = |role| {
        send(
            Method::POST,
            "/api/users/user1%40contoso.test/test",
            role,
            None,
        )
    };
    let (status, body) = test(Role::Operator).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    let schemes = step(&report, "Authentication schemes").to_string();
    assert!(schemes.contains("exsync will use Negotiate"), "{schemes}");
    let ews = step(&report, "EWS reachable");
    assert_eq!(ews["outcome"], "pass", "{report:#}");
    let evidence = ews["evidence"].to_string();
    assert!(evidence.contains("logged in with Negotiate"), "{evidence}");
    assert!(
        evidence.contains(&format!("Kerberos principal svc-sync@{REALM}")),
        "{evidence}"
    );
    assert!(
        evidence.contains("ticket-granting ticket valid for"),
        "{evidence}"
    );
    assert!(
        kdc.initial_tickets_issued() > 0,
        "no ticket from the KDC: {}",
        kdc.log()
    );
    assert!(!body.contains(PASSWORD));

    // A wrong password: the test fails at the login, with the fix.
    let (status, body) = send(
        Method::PUT,
        "/api/service-account",
        Role::Admin,
        Some(save("not-the-password")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = test(Role::Operator).await;
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["status"], "fail", "{report:#}");
    let failed = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["outcome"] == "fail")
        .unwrap_or_else(|| panic!("no failed step: {report:#}"));
    let failed = failed.to_string();
    assert!(failed.contains("wrong password or key"), "{failed}");
    assert!(
        failed.contains("exsync secrets set exchange.password"),
        "{failed}"
    );
    assert!(!body.contains("not-the-password"));
}
