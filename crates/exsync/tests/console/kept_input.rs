//! A refused save of the CRM connection or of Exchange Online comes back with what the admin
//! typed (never a secret), with the reason and no server path, as the configurations and the
//! service account forms do.

use crate::support::*;
use axum::http::{Method, StatusCode};
use exsync_store::Role;

async fn post(env: &Env, path: &str, fields: &[(&str, &str)]) -> Answer {
    let (cookie, csrf) = env.session(Role::Admin);
    let admin = Auth::Session {
        cookie,
        csrf: Some(csrf),
    };
    let fields = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    env.send(request(
        Method::POST,
        path,
        &admin,
        Some(Body2::Form(fields)),
    ))
    .await
}

fn assert_kept(env: &Env, page: &Answer, reason: &str, kept: &[&str], secret: &str) {
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    let body = &page.body;
    assert!(body.contains(reason), "{body}");
    for value in kept {
        assert!(body.contains(value), "{value} kept: {body}");
    }
    assert!(!body.contains(secret), "a secret shown back: {body}");
    assert!(
        !body.contains(&env.dir.path().to_string_lossy().into_owned()),
        "{body}"
    );
}

#[tokio::test]
async fn a_refused_crm_form_keeps_what_was_typed() {
    let env = Env::new();
    let page = post(
        &env,
        "/crm",
        &[
            ("client_id", "typed-client"),
            ("login_url", "https://test.salesforce.com"),
            ("instance_url", "https://contoso.my.salesforce.com"),
            ("auth", "client_credentials"),
            ("username", "typed<x>@contoso.test"),
            ("private_key", "not-a-key-secret-text"),
        ],
    )
    .await;
    assert_kept(
        &env,
        &page,
        "the private key must be a PEM file",
        &[
            r#"name="client_id" value="typed-client""#,
            r#"name="login_url" value="https://test.salesforce.com""#,
            r#"name="instance_url" value="https://contoso.my.salesforce.com""#,
            r#"<option value="client_credentials" selected>"#,
            r#"name="username" value="typed&lt;x&gt;@contoso.test""#,
        ],
        "not-a-key-secret-text",
    );
}

#[tokio::test]
async fn a_refused_exchange_online_form_keeps_what_was_typed() {
    let env = Env::new();
    let page = post(
        &env,
        "/exchange-online",
        &[
            ("tenant", "contoso.onmicrosoft.com"),
            ("client_id", "typed-app"),
            ("cloud", "usgov"),
            ("credential", "secret"),
            ("users", "ann@contoso.test, <bo>@contoso.test"),
            ("certificate", "typed-certificate-secret-text"),
        ],
    )
    .await;
    assert_kept(
        &env,
        &page,
        "give the certificate and its private key together",
        &[
            r#"id="eo-tenant" value="contoso.onmicrosoft.com""#,
            r#"id="eo-client-id" value="typed-app""#,
            r#"<option value="usgov" selected>"#,
            r#"<option value="secret" selected>"#,
            r#"id="eo-users" value="ann@contoso.test, &lt;bo&gt;@contoso.test""#,
        ],
        "typed-certificate-secret-text",
    );
}
