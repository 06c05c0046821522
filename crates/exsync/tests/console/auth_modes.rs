//! The setup pages show the fields of the authentication mode in use only: the service
//! account's Kerberos realm and KDCs for Automatic and Kerberos, its password for every mode
//! but Kerberos with a stored keytab; Exchange Online's certificate and key, or its client
//! secret, as the credential chosen. The server renders them for the stored mode (a browser
//! without script keeps that); the console's script follows the selects (`browser.rs`).

use crate::support::*;
use axum::http::{Method, StatusCode};
use exsync_engine::vault::SecretValue;
use exsync_store::Role;
use serde_json::{json, Value};

/// Whether the page renders the part with this opening tag's id hidden. Panics when the page
/// lacks it.
fn hidden(page: &str, id: &str) -> bool {
    let start = page
        .find(&format!(r#"id="{id}""#))
        .unwrap_or_else(|| panic!("no #{id}: {page}"));
    let tag_end = start + page[start..].find('>').unwrap_or(0);
    page[start..tag_end].ends_with(" hidden")
}

async fn page_of(env: &Env, admin: &Auth, path: &str) -> String {
    let page = env.send(request(Method::GET, path, admin, None)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    page.body
}

async fn put(env: &Env, admin: &Auth, path: &str, body: Value) {
    let a = env
        .send(request(Method::PUT, path, admin, Some(Body2::Json(body))))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
}

#[tokio::test]
async fn the_service_account_page_shows_the_fields_of_the_stored_mode() {
    let env = Env::new();
    let admin = Auth::Token(env.token(Role::Admin).to_owned());
    let account = |auth: &str| json!({"username": "svc@contoso.test", "password": "pw-for-the-test", "auth": auth});
    // (mode, keytab stored, Kerberos fields shown, password shown)
    let mut seen = Vec::new();
    for (auth, keytab) in [
        ("auto", false),
        ("basic", false),
        ("ntlm", false),
        ("kerberos", false),
        ("kerberos", true),
        ("auto", true),
    ] {
        if keytab {
            env.state
                .vault
                .set("exchange.keytab", &SecretValue::from("a2V5dGFi".to_owned()))
                .unwrap();
        }
        put(&env, &admin, "/api/service-account", account(auth)).await;
        let page = page_of(&env, &admin, "/service-account").await;
        assert!(
            page.contains(&format!(r#"<option value="{auth}" selected>"#)),
            "{page}"
        );
        seen.push((
            auth,
            keytab,
            !hidden(&page, "kerberos-fields"),
            !hidden(&page, "password-fields"),
        ));
        // Each part names the select and the modes the script shows it for.
        assert!(
            page.contains(
                r#"id="password-fields" data-shown-by="auth" data-shown-for="auto basic ntlm"#
            ),
            "{page}"
        );
    }
    assert_eq!(
        seen,
        [
            ("auto", false, true, true),
            ("basic", false, false, true),
            ("ntlm", false, false, true),
            ("kerberos", false, true, true),
            ("kerberos", true, true, false),
            ("auto", true, true, true),
        ]
    );
}

#[tokio::test]
async fn the_exchange_online_page_shows_the_fields_of_the_stored_credential() {
    let env = Env::new();
    let admin = Auth::Token(env.token(Role::Admin).to_owned());
    // Nothing stored yet: a certificate, the default.
    let page = page_of(&env, &admin, "/exchange-online").await;
    assert!(!hidden(&page, "eo-certificate-fields"), "{page}");
    assert!(hidden(&page, "eo-secret-fields"), "{page}");
    assert!(
        page.contains(
            r#"id="eo-secret-fields" data-shown-by="eo-credential" data-shown-for="secret" hidden>"#
        ),
        "{page}"
    );

    put(
        &env,
        &admin,
        "/api/exchange-online",
        json!({"tenant": "contoso.onmicrosoft.com", "client_id": "app-1",
               "credential": "secret", "client_secret": "Eo-App-Secret-for-a-test"}),
    )
    .await;
    let page = page_of(&env, &admin, "/exchange-online").await;
    assert!(
        page.contains(r#"<option value="secret" selected>"#),
        "{page}"
    );
    assert!(hidden(&page, "eo-certificate-fields"), "{page}");
    assert!(!hidden(&page, "eo-secret-fields"), "{page}");
}
