//! An EWS URL set through the console's API must lie inside the domains the service account's
//! password may be sent to (its own and `exchange.other_domains`), as Autodiscover's answers
//! must; otherwise nothing is written and the answer says why and how to allow it.

use crate::support::*;
use axum::http::{Method, StatusCode};
use exsync_store::Role;
use serde_json::json;

#[tokio::test]
async fn an_ews_url_outside_the_allow_list_is_refused_and_the_file_kept() {
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
    let saved = env
        .send(put(json!({
            "username": "svc@contoso.test",
            "password": "console-allowlist-pw",
            "other_domains": ["fabrikam.test"],
            "ews_url": "https://mail.contoso.test/EWS/Exchange.asmx",
        })))
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);

    for outside in [
        "https://127.0.0.1:8443/EWS/Exchange.asmx",
        "https://mail.evil.test/EWS/Exchange.asmx",
        "https://mail.contoso.test.evil.test/EWS/Exchange.asmx",
    ] {
        let before = std::fs::read_to_string(env.config_path()).unwrap();
        let refused = env
            .send(put(json!({
                "username": "svc@contoso.test",
                "password": "console-allowlist-pw",
                "other_domains": ["fabrikam.test"],
                "ews_url": outside,
            })))
            .await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{outside}: {}",
            refused.body
        );
        let error = refused.json()["error"].as_str().unwrap().to_owned();
        for part in [
            "exsync.toml",
            "exchange.ews_url",
            "outside the domains the service account's password may be sent to (contoso.test, fabrikam.test)",
            "add its domain to exchange.other_domains",
        ] {
            assert!(error.contains(part), "{outside}: `{part}` missing from {error}");
        }
        assert_eq!(
            std::fs::read_to_string(env.config_path()).unwrap(),
            before,
            "{outside}: the file changed"
        );
    }
    let view = env
        .send(request(Method::GET, "/api/service-account", &token, None))
        .await
        .json();
    assert_eq!(
        view["ews_url"],
        "https://mail.contoso.test/EWS/Exchange.asmx"
    );

    // Listing the server's domain is how an admin allows it.
    let allowed = env
        .send(put(json!({
            "username": "svc@contoso.test",
            "password": "console-allowlist-pw",
            "other_domains": ["fabrikam.test", "evil.test"],
            "ews_url": "https://mail.evil.test/EWS/Exchange.asmx",
        })))
        .await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.body);
    assert_eq!(
        allowed.json()["ews_url"],
        "https://mail.evil.test/EWS/Exchange.asmx"
    );
}
