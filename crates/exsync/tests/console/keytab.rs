//! With Kerberos and a stored keytab the keytab is the service account's credential: a new
//! account or new domains are saved with a new keytab given in the same request (or, in
//! Automatic mode, the password), refused with the reason when neither comes, and the stored
//! credential not given again is removed rather than left to follow the account elsewhere.
//! A keytab is checked where it is given; the form keeps what the admin typed when a save is
//! refused.

use crate::support::*;
use axum::http::{Method, StatusCode};
use base64::Engine;
use exsync_store::Role;
use serde_json::{json, Value};

/// A keytab file's bytes as `base64` prints them; `tag` makes two keytabs differ.
fn keytab(tag: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([5, 2, 0, 0, 0, 40, 0, 1, tag])
}

fn account(domains: &[&str]) -> Value {
    json!({
        "username": "svc@contoso.test",
        "auth": "kerberos",
        "realm": "CONTOSO.TEST",
        "other_domains": domains,
    })
}

fn with(mut body: Value, key: &str, value: &str) -> Value {
    body[key] = json!(value);
    body
}

async fn put(env: &Env, body: Value) -> Answer {
    let admin = Auth::Token(env.token(Role::Admin).to_owned());
    env.send(request(
        Method::PUT,
        "/api/service-account",
        &admin,
        Some(Body2::Json(body)),
    ))
    .await
}

fn error(a: &Answer) -> String {
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    a.json()["error"].as_str().unwrap_or_default().to_owned()
}

fn stored(env: &Env, name: &str) -> Option<String> {
    env.state
        .vault
        .get(name)
        .unwrap()
        .map(|v| v.expose().to_owned())
}

#[tokio::test]
async fn with_kerberos_and_a_keytab_a_new_account_or_domains_need_the_keytab_again() {
    let env = Env::new();
    let a = put(&env, with(account(&["a.test"]), "password", "first-pw")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = put(&env, with(account(&["a.test"]), "keytab", &keytab(1))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["keytab_provided"], true, "{}", a.body);
    let before = std::fs::read_to_string(env.config_path()).unwrap();

    // Neither credential, or the password, which Kerberos does not log in with here.
    for body in [
        account(&["a.test", "evil.test"]),
        with(account(&["a.test", "evil.test"]), "password", "first-pw"),
    ] {
        let e = error(&put(&env, body).await);
        assert_eq!(
            e,
            "changing the domains to sync requires the account's keytab again: Kerberos logs \
             in with the stored keytab, which was given for the old account and domains; \
             upload the keytab with the change"
        );
    }
    let e = error(
        &put(
            &env,
            with(account(&["a.test"]), "username", "other@contoso.test"),
        )
        .await,
    );
    assert!(
        e.starts_with("changing the service account requires the account's keytab again"),
        "{e}"
    );
    // The KDCs see the login's pre-authentication: new ones are a new destination too.
    for (key, value) in [
        ("realm", json!("EVIL.TEST")),
        ("kdcs", json!(["kdc.evil.test"])),
    ] {
        let mut body = account(&["a.test"]);
        body[key] = value;
        let e = error(&put(&env, body).await);
        assert!(
            e.starts_with(
                "changing the Kerberos realm or KDCs requires the account's keytab again"
            ),
            "{key}: {e}"
        );
    }
    // A keytab that is not one is refused where it is given.
    for (bad, says) in [
        (
            "not base64!",
            "the keytab was not stored: the keytab is not base64",
        ),
        (
            "LS0tLS1CRUdJTg==",
            "the keytab was not stored: this is not a keytab file",
        ),
    ] {
        let e = error(&put(&env, with(account(&["a.test", "evil.test"]), "keytab", bad)).await);
        assert!(e.starts_with(says), "{e}");
    }
    assert_eq!(
        std::fs::read_to_string(env.config_path()).unwrap(),
        before,
        "nothing refused was written"
    );
    assert_eq!(stored(&env, "exchange.keytab"), Some(keytab(1)));
    assert!(stored(&env, "exchange.password").is_some());

    // With the new keytab (wrapped, as `base64` without -w0 prints it) the change is saved,
    // and the password given for the old domains is gone.
    let wrapped = keytab(2);
    let wrapped = format!("{}\n{}\n", &wrapped[..4], &wrapped[4..]);
    let a = put(
        &env,
        with(account(&["a.test", "b.test"]), "keytab", &wrapped),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let view = a.json();
    assert_eq!(view["other_domains"], json!(["a.test", "b.test"]));
    assert_eq!(
        (&view["keytab_provided"], &view["password_provided"]),
        (&json!(true), &json!(false)),
        "{view}"
    );
    assert_eq!(stored(&env, "exchange.keytab"), Some(wrapped));
    assert!(
        !a.body.contains(&keytab(2)[4..]),
        "the keytab is never shown"
    );
    let audit = env.store.list_audit(10, None).unwrap();
    let saved = audit
        .iter()
        .find(|e| e.action == "service_account.update")
        .unwrap();
    assert_eq!(saved.detail["keytab_changed"], true, "{:?}", saved.detail);
    assert_eq!(saved.detail["removed"], json!(["exchange.password"]));
    assert!(!saved.detail.to_string().contains(&keytab(2)[4..]));

    let a = put(
        &env,
        with(
            with(
                account(&["a.test", "b.test"]),
                "username",
                "other@contoso.test",
            ),
            "keytab",
            &keytab(3),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["username"], "other@contoso.test");

    // A keytab serves Kerberos only.
    let e = error(
        &put(
            &env,
            with(
                with(account(&["a.test", "b.test"]), "auth", "ntlm"),
                "keytab",
                &keytab(4),
            ),
        )
        .await,
    );
    assert!(e.starts_with("a keytab serves Kerberos only"), "{e}");
}

#[tokio::test]
async fn in_automatic_mode_the_password_or_a_keytab_carries_a_change() {
    let env = Env::new();
    let auto = |domains: &[&str]| with(account(domains), "auth", "auto");
    let a = put(
        &env,
        with(
            with(auto(&["a.test"]), "password", "pw"),
            "keytab",
            &keytab(1),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);

    let e = error(&put(&env, auto(&["a.test", "b.test"])).await);
    assert_eq!(
        e,
        "changing the domains to sync requires the service account password again, or a new \
         keytab for Kerberos, in the same change: the stored ones were given for the old \
         account and domains"
    );
    // The password carries it; the keytab given for the old domains is removed.
    let a = put(&env, with(auto(&["a.test", "b.test"]), "password", "pw2")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["keytab_provided"], false, "{}", a.body);
    // A keytab carries it too; then the password goes.
    let a = put(&env, with(auto(&["c.test"]), "keytab", &keytab(2))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let view = a.json();
    assert_eq!(
        (&view["keytab_provided"], &view["password_provided"]),
        (&json!(true), &json!(false)),
        "{view}"
    );
}

/// The form: a refused change comes back with what was typed, the reason and no server path;
/// the page offers the keytab as a file or pasted, never showing it.
#[tokio::test]
async fn a_refused_form_keeps_what_was_typed() {
    let env = Env::new();
    let a = put(
        &env,
        with(
            with(account(&["a.test"]), "password", "pw"),
            "keytab",
            &keytab(1),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let (cookie, csrf) = env.session(Role::Admin);
    let admin = Auth::Session {
        cookie,
        csrf: Some(csrf),
    };
    let page = env
        .send(request(
            Method::POST,
            "/service-account",
            &admin,
            Some(Body2::Form(vec![
                ("username".into(), "svc@contoso.test".into()),
                ("auth".into(), "kerberos".into()),
                ("realm".into(), "CONTOSO.TEST".into()),
                (
                    "kdcs".into(),
                    "kdc1.contoso.test, kdc2.contoso.test:88".into(),
                ),
                ("other_domains".into(), "a.test, <b>.test".into()),
                (
                    "ews_url".into(),
                    "https://mail.contoso.test/EWS/Exchange.asmx".into(),
                ),
            ])),
        ))
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    let body = &page.body;
    assert!(
        body.contains("requires the account&#39;s keytab again"),
        "the reason, encoded: {body}"
    );
    for kept in [
        r#"id="other-domains" value="a.test, &lt;b&gt;.test""#,
        r#"id="kdcs" value="kdc1.contoso.test, kdc2.contoso.test:88""#,
        r#"id="ews-url" value="https://mail.contoso.test/EWS/Exchange.asmx""#,
        r#"<option value="kerberos" selected>"#,
    ] {
        assert!(body.contains(kept), "{kept} kept: {body}");
    }
    assert!(
        !body.contains(&env.dir.path().to_string_lossy().into_owned()),
        "{body}"
    );
    assert!(
        body.contains(r#"data-fills="sa-keytab" data-encoding="base64""#)
            && body.contains(r#"<textarea name="keytab" id="sa-keytab""#),
        "{body}"
    );
    assert!(!body.contains(&keytab(1)), "{body}");

    // Saved, the page says what it removed.
    let page = env
        .send(request(
            Method::POST,
            "/service-account",
            &admin,
            Some(Body2::Form(vec![
                ("username".into(), "svc@contoso.test".into()),
                ("auth".into(), "kerberos".into()),
                ("realm".into(), "CONTOSO.TEST".into()),
                ("other_domains".into(), "a.test, b.test".into()),
                ("keytab".into(), keytab(2)),
            ])),
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("Saved. The stored password was removed"),
        "{}",
        page.body
    );
}
