//! The service account password and CRM key go in and never come out: not in any answer,
//! page, audit entry or log line, and not in the database file in clear. Also the rules
//! around saving them.

use crate::support::*;
use axum::http::{Method, StatusCode};
use exsync_store::Role;
use serde_json::json;

const SA_PASSWORD: &str = "Zq7-ServiceAccount-Pw-unique-8841";
const NEW_PASSWORD: &str = "Zq7-Second-Pw-unique-1958";
const PEM_MARKER: &str = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQUniqueKeyBody";

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn secrets_never_leave_the_vault() {
    let logs = exsync_testkit::logs::Captured::everywhere();
    let env = Env::new();
    let (cookie, csrf) = env.session(Role::Admin);
    let admin = Auth::Session {
        cookie,
        csrf: Some(csrf),
    };
    let mut seen = String::new();

    // Save through the page form, as a browser would.
    let a = env
        .send(request(
            Method::POST,
            "/service-account",
            &admin,
            Some(form(&[
                ("username", "svc@contoso.test"),
                ("password", SA_PASSWORD),
                ("auth", "auto"),
                ("ews_url", ""),
                ("other_domains", "fabrikam.test"),
                ("ca_file", ""),
            ])),
        ))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(
        a.body
            .contains("Service account provided: svc@contoso.test"),
        "{}",
        a.body
    );
    assert!(a
        .body
        .contains(r#"type="password" name="password" id="sa-password" value="""#));
    assert!(a.body.contains(r#"autocomplete="off""#));
    assert!(
        a.body
            .contains(r#"id="sa-password" value="" autocomplete="off" data-no-copy"#),
        "the console's script blocks copy and cut on the field: {}",
        a.body
    );
    seen.push_str(&a.body);

    // And through the API, with a CRM key too.
    let token = Auth::Token(env.token(Role::Admin).to_owned());
    let a = env
        .send(request(Method::PUT, "/api/service-account", &token, Some(Body2::Json(json!({
            "username": "svc@contoso.test", "password": NEW_PASSWORD, "other_domains": ["fabrikam.test"]
        })))))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["password_provided"], true);
    seen.push_str(&a.body);
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{PEM_MARKER}\n-----END PRIVATE KEY-----\n");
    let a = env
        .send(request(
            Method::PUT,
            "/api/crm",
            &token,
            Some(Body2::Json(json!({
                "client_id": "client", "username": "integration@contoso.test", "private_key": pem
            }))),
        ))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["private_key_provided"], true);
    seen.push_str(&a.body);

    // Everything anyone can read back.
    for (method, path) in [
        (Method::GET, "/api/service-account"),
        (Method::GET, "/api/crm"),
        (Method::GET, "/api/audit"),
        (Method::GET, "/api/users"),
        (Method::GET, "/api/configurations"),
        (Method::GET, "/service-account"),
        (Method::GET, "/crm"),
        (Method::GET, "/audit"),
        (Method::GET, "/"),
    ] {
        let a = env.send(request(method, path, &token, None)).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        seen.push_str(&a.body);
    }
    assert!(
        seen.contains("service_account.update"),
        "the change is audited"
    );
    assert!(seen.contains("password_changed"));

    // The vault does hold them.
    assert_eq!(
        env.state
            .vault
            .get("exchange.password")
            .unwrap()
            .unwrap()
            .expose(),
        NEW_PASSWORD
    );
    assert!(env
        .state
        .vault
        .get("crm.private_key")
        .unwrap()
        .unwrap()
        .expose()
        .contains(PEM_MARKER));

    let config_text = std::fs::read_to_string(env.config_path()).unwrap();
    assert!(config_text.contains("fabrikam.test"), "{config_text}");
    assert!(
        config_text.contains("# The account with ApplicationImpersonation."),
        "comments survive"
    );

    let mut files = Vec::new();
    for entry in std::fs::read_dir(env.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        files.push((path.display().to_string(), std::fs::read(&path).unwrap()));
    }
    let logs = logs.text();
    assert!(
        logs.contains("secret stored"),
        "the logs were captured: {logs}"
    );
    for secret in [SA_PASSWORD, NEW_PASSWORD, PEM_MARKER] {
        assert!(!seen.contains(secret), "an answer contains {secret}");
        assert!(!logs.contains(secret), "the logs contain {secret}");
        for (name, bytes) in &files {
            assert!(
                !contains(bytes, secret),
                "{name} contains {secret} in clear"
            );
        }
    }
}

#[tokio::test]
async fn changing_the_domains_requires_the_password_again() {
    let env = Env::new();
    let token = Auth::Token(env.token(Role::Admin).to_owned());
    let put = |body: serde_json::Value| {
        request(
            Method::PUT,
            "/api/service-account",
            &token,
            Some(Body2::Json(body)),
        )
    };

    let a = env
        .send(put(
            json!({"username": "svc@contoso.test", "other_domains": []}),
        ))
        .await;
    assert_eq!(
        a.status,
        StatusCode::BAD_REQUEST,
        "no password stored yet: {}",
        a.body
    );

    let a = env.send(put(json!({"username": "svc@contoso.test", "password": "first-pw", "other_domains": ["a.test"]}))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);

    // Same domains, no password: fine (the stored one stays).
    let a = env.send(put(json!({"username": "svc@contoso.test", "other_domains": ["A.test"], "ews_url": "https://mail.contoso.test/EWS/Exchange.asmx"}))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["autodiscover"], false);

    let a = env
        .send(put(
            json!({"username": "svc@contoso.test", "other_domains": ["a.test", "evil.test"]}),
        ))
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.json()["error"]
        .as_str()
        .unwrap()
        .contains("requires the service account password"));
    let a = env
        .send(put(
            json!({"username": "other@contoso.test", "other_domains": ["a.test"]}),
        ))
        .await;
    assert_eq!(
        a.status,
        StatusCode::BAD_REQUEST,
        "a new account needs its password"
    );
    let view = env
        .send(request(Method::GET, "/api/service-account", &token, None))
        .await
        .json();
    assert_eq!(view["other_domains"], json!(["a.test"]));
    assert_eq!(view["username"], "svc@contoso.test");

    let a = env.send(put(json!({"username": "svc@contoso.test", "password": "second-pw", "other_domains": ["a.test", "b.test"]}))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["other_domains"], json!(["a.test", "b.test"]));

    // A change the configuration check refuses is not written.
    let before = std::fs::read_to_string(env.config_path()).unwrap();
    let a = env.send(put(json!({"username": "svc@contoso.test", "other_domains": ["a.test", "b.test"], "ews_url": "http://plain.test/EWS"}))).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(std::fs::read_to_string(env.config_path()).unwrap(), before);
}

#[tokio::test]
async fn a_crm_key_that_is_not_pem_is_refused() {
    let env = Env::new();
    let token = Auth::Token(env.token(Role::Admin).to_owned());
    let a = env
        .send(request(
            Method::PUT,
            "/api/crm",
            &token,
            Some(Body2::Json(
                json!({"client_id": "c", "username": "i@contoso.test", "private_key": "not a key"}),
            )),
        ))
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(!env.state.vault.contains("crm.private_key").unwrap());
}
