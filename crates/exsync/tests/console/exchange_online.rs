//! Exchange Online in the console: the app's tenant, client id and cloud are saved to
//! `[exchange_online]`, its secret or certificate into the vault and never back out; a new
//! tenant, app or cloud needs the credential again; a certificate goes in only with the key
//! that signs for it; the page says which connection methods the installation uses.

use crate::support::*;
use axum::http::{Method, StatusCode};
use exsync_store::Role;
use serde_json::{json, Value};

const SECRET: &str = "Eo-App-Secret-unique-5521";

async fn put(env: &Env, auth: &Auth, body: Value) -> Answer {
    env.send(request(
        Method::PUT,
        "/api/exchange-online",
        auth,
        Some(Body2::Json(body)),
    ))
    .await
}

#[tokio::test]
async fn the_app_is_saved_with_a_write_only_credential() {
    let env = Env::new();
    let admin = Auth::Token(env.token(Role::Admin).to_owned());
    let before = env
        .send(request(Method::GET, "/api/exchange-online", &admin, None))
        .await
        .json();
    assert_eq!(before["configured"], false);
    assert_eq!(before["connection_methods"], "ews");

    // No credential for a new app: refused, and nothing is written.
    let app = json!({ "tenant": "contoso.onmicrosoft.com", "client_id": "app-1", "credential": "secret" });
    let refused = put(&env, &admin, app.clone()).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("requires the app's client secret again"),
        "{}",
        refused.body
    );
    assert!(!std::fs::read_to_string(env.config_path())
        .unwrap()
        .contains("exchange_online"));

    let mut with_secret = app.clone();
    with_secret["client_secret"] = json!(SECRET);
    with_secret["users"] = json!(["Carol@Contoso.test"]);
    let saved = put(&env, &admin, with_secret).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    let view = saved.json();
    assert_eq!(view["configured"], true);
    assert_eq!(view["connection_methods"], "hybrid");
    assert_eq!(view["client_secret_provided"], true);
    assert_eq!(view["users"], json!(["carol@contoso.test"]));
    let file = std::fs::read_to_string(env.config_path()).unwrap();
    assert!(
        file.contains("[exchange_online]") && file.contains("tenant = \"contoso.onmicrosoft.com\""),
        "{file}"
    );
    assert!(!file.contains(SECRET));

    // The same app again needs no secret; every user online.
    let mut all = app.clone();
    all["all_users"] = json!(true);
    let saved = put(&env, &admin, all).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    assert_eq!(saved.json()["all_users"], true);

    // Another tenant with the stored secret: refused.
    let mut elsewhere = app.clone();
    elsewhere["tenant"] = json!("fabrikam.onmicrosoft.com");
    let refused = put(&env, &admin, elsewhere).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);

    // A certificate without its key, or with a key that is not its own, is not stored.
    let mut half = app.clone();
    half["credential"] = json!("certificate");
    half["certificate"] = json!("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    let refused = put(&env, &admin, half.clone()).await;
    assert!(refused.body.contains("together"), "{}", refused.body);
    half["private_key"] = json!("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n");
    let refused = put(&env, &admin, half).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(
        refused.body.contains("the certificate was not stored"),
        "{}",
        refused.body
    );

    // Nothing anyone can read holds the secret; the change is audited.
    let mut seen = String::new();
    for path in [
        "/api/exchange-online",
        "/exchange-online",
        "/api/audit",
        "/audit",
    ] {
        let a = env.send(request(Method::GET, path, &admin, None)).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        seen.push_str(&a.body);
    }
    assert!(!seen.contains(SECRET));
    assert!(seen.contains("exchange_online.update"));
}

#[tokio::test]
async fn the_page_saves_through_its_form_and_encodes_what_it_shows() {
    let env = Env::new();
    let (cookie, csrf) = env.session(Role::Admin);
    let admin = Auth::Session {
        cookie,
        csrf: Some(csrf),
    };
    let hostile = "t\"><script>alert(1)</script>";
    let a = env
        .send(request(
            Method::POST,
            "/exchange-online",
            &admin,
            Some(form(&[
                ("tenant", hostile),
                ("client_id", "app-1"),
                ("cloud", "usgov"),
                ("credential", "secret"),
                ("client_secret", SECRET),
                ("all_users", "true"),
                ("users", ""),
            ])),
        ))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains("Saved."), "{}", a.body);
    assert!(!a.body.contains("<script>alert(1)"), "{}", a.body);
    assert!(a.body.contains("t&quot;&gt;&lt;script&gt;"), "{}", a.body);
    assert!(
        a.body.contains(r#"<option value="usgov" selected>"#),
        "{}",
        a.body
    );
    assert!(
        a.body.contains(r#"id="eo-all-users" value="true" checked"#),
        "{}",
        a.body
    );
    assert!(
        a.body
            .contains("Connection methods: Exchange on premises (EWS) and Exchange Online"),
        "{}",
        a.body
    );
    assert!(!a.body.contains(SECRET));
    // Viewers and operators do not see the page.
    for role in [Role::Viewer, Role::Operator] {
        let auth = Auth::Token(env.token(role).to_owned());
        let a = env
            .send(request(Method::GET, "/exchange-online", &auth, None))
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{role}");
    }
}
