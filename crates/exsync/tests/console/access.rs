//! Who may call what: every console route, called with no login and as each role (by
//! session and by API token), answers the status this table expects. Also CSRF, sessions,
//! login and its rate limit.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::*;
use axum::http::{Method, StatusCode};
use exsync_console::routes::ROUTES;
use exsync_store::Role;
use serde_json::json;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", COUNTER.fetch_add(1, Ordering::SeqCst))
}

/// A valid request for the route (path with parameters filled in, body).
fn call_for(method: &str, path: &str) -> (String, Option<Body2>) {
    let p = path
        .replace("{name}", "sales")
        .replace("{user}", "ann%40contoso.test");
    let body = match (method, path) {
        ("POST", "/api/login") => Some(Body2::Json(
            json!({ "username": "viewer", "password": PASSWORD }),
        )),
        ("PUT", "/api/sync") => Some(Body2::Json(json!({ "enabled": true }))),
        ("PUT", "/api/service-account") => Some(Body2::Json(json!({
            "username": "svc@contoso.test", "password": "Exchange-Pw-1", "other_domains": []
        }))),
        ("PUT", "/api/exchange-online") => Some(Body2::Json(json!({
            "tenant": "contoso.onmicrosoft.com", "client_id": "app-1",
            "credential": "secret", "client_secret": "App-Secret-1"
        }))),
        ("PUT", "/api/crm") => Some(Body2::Json(
            json!({ "client_id": "client", "username": "integration@contoso.test" }),
        )),
        ("POST", "/api/configurations") => Some(Body2::Json(
            json!({ "name": unique("api"), "groups": [unique("Group ")] }),
        )),
        ("PUT", "/api/configurations/{name}") => Some(Body2::Json(json!({ "active": true }))),
        ("POST", "/login") => Some(form(&[("username", "viewer"), ("password", PASSWORD)])),
        ("POST", "/sync") => Some(form(&[("enabled", "true")])),
        ("POST", "/service-account") => Some(form(&[
            ("username", "svc@contoso.test"),
            ("password", "Exchange-Pw-1"),
            ("other_domains", ""),
        ])),
        ("POST", "/exchange-online") => Some(form(&[
            ("tenant", "contoso.onmicrosoft.com"),
            ("client_id", "app-1"),
            ("credential", "secret"),
            ("client_secret", "App-Secret-1"),
        ])),
        ("POST", "/crm") => Some(form(&[
            ("client_id", "client"),
            ("username", "integration@contoso.test"),
        ])),
        ("POST", "/configurations") => Some(Body2::Form(vec![
            ("name".to_owned(), unique("page")),
            ("groups".to_owned(), unique("Profile ")),
        ])),
        ("POST", "/configurations/{name}") => Some(form(&[("active", "true")])),
        ("GET", "/api/assignment") => return (format!("{p}?user=ann%40contoso.test"), None),
        (m, _) if m != "GET" => Some(form(&[])),
        _ => None,
    };
    (p, body)
}

/// The status a caller with `role` (None: not logged in) gets, written out by hand: this
/// is the access policy, not a copy of the route table.
fn expected(method: &str, path: &str, role: Option<Role>) -> StatusCode {
    use StatusCode as S;
    let api = path.starts_with("/api/");
    let success = match (method, path) {
        ("POST", "/api/configurations") => S::CREATED,
        ("POST", "/api/logout") => S::NO_CONTENT,
        ("POST", "/api/users/{user}/test") | ("POST", "/users/{user}/test") => S::NOT_IMPLEMENTED,
        ("POST", "/login") | ("POST", "/logout") => S::SEE_OTHER,
        _ => S::OK,
    };
    let need: Option<Role> = match (method, path) {
        ("POST", "/api/login")
        | ("GET", "/login")
        | ("POST", "/login")
        | ("GET", "/assets/console.css")
        | ("GET", "/assets/console.js") => return success,
        ("POST", "/api/logout") | ("POST", "/logout") => None,
        ("GET", "/api/me")
        | ("GET", "/api/sync")
        | ("GET", "/api/users")
        | ("GET", "/api/skipped-users")
        | ("GET", "/api/unmatched-users")
        | ("GET", "/api/audit") => Some(Role::Viewer),
        ("GET", "/") | ("GET", "/audit") => Some(Role::Viewer),
        ("GET", "/api/users/{user}/conflicts") | ("GET", "/users/{user}/conflicts") => {
            Some(Role::Viewer)
        }
        ("GET", "/api/users/{user}") | ("GET", "/users/{user}") => Some(Role::Viewer),
        (_, p) if p.ends_with("/reset") || p.ends_with("/test") => Some(Role::Operator),
        _ => Some(Role::Admin),
    };
    let Some(role) = role else {
        return if api { S::UNAUTHORIZED } else { S::SEE_OTHER };
    };
    let rank = |r: Role| match r {
        Role::Viewer => 1,
        Role::Operator => 2,
        Role::Admin => 3,
    };
    match need {
        Some(n) if rank(role) < rank(n) => S::FORBIDDEN,
        _ => success,
    }
}

#[tokio::test]
async fn every_route_answers_every_role_as_the_policy_says() {
    let env = Env::new();
    let mut failures = Vec::new();
    let mut calls = 0;
    for route in ROUTES {
        for role in [
            None,
            Some(Role::Viewer),
            Some(Role::Operator),
            Some(Role::Admin),
        ] {
            let auths = match role {
                None => vec![("nobody", Auth::None)],
                Some(r) => {
                    let (cookie, csrf) = env.session(r);
                    vec![
                        (
                            "session",
                            Auth::Session {
                                cookie,
                                csrf: Some(csrf),
                            },
                        ),
                        ("token", Auth::Token(env.token(r).to_owned())),
                    ]
                }
            };
            for (how, auth) in auths {
                let (uri, body) = call_for(route.method, route.path);
                let method = Method::from_bytes(route.method.as_bytes()).unwrap();
                let answer = env.send(request(method, &uri, &auth, body)).await;
                calls += 1;
                let want = expected(route.method, route.path, role);
                if answer.status != want {
                    failures.push(format!(
                        "{} {} as {:?} by {how}: got {}, expected {want}: {}",
                        route.method,
                        route.path,
                        role.map(|r| r.as_str()),
                        answer.status,
                        answer.body.chars().take(200).collect::<String>()
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {calls} calls wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(calls > 150, "{calls}");
}

#[tokio::test]
async fn a_route_the_router_serves_but_the_table_lacks_would_be_refused() {
    // Every routed path is in the table: an unknown path is a plain 404, not a guarded
    // route, and every table entry is routed (the role test above gets no 404/405).
    let env = Env::new();
    let paths: BTreeSet<&str> = ROUTES.iter().map(|r| r.path).collect();
    assert!(paths.len() > 20);
    let a = env
        .send(request(
            Method::GET,
            "/api/nothing-here",
            &Auth::Token(env.token(Role::Admin).to_owned()),
            None,
        ))
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_state_change_with_a_session_but_without_the_csrf_token_is_refused() {
    let env = Env::new();
    let (cookie, csrf) = env.session(Role::Admin);
    let (_, other_csrf) = env.session(Role::Admin);
    let cases = [
        (
            "no token (API)",
            Method::PUT,
            "/api/sync",
            None,
            Some(Body2::Json(json!({"enabled": false}))),
        ),
        (
            "wrong token (API)",
            Method::PUT,
            "/api/sync",
            Some("nope".to_owned()),
            Some(Body2::Json(json!({"enabled": false}))),
        ),
        (
            "another session's token",
            Method::PUT,
            "/api/sync",
            Some(other_csrf),
            Some(Body2::Json(json!({"enabled": false}))),
        ),
        (
            "no token (form)",
            Method::POST,
            "/sync",
            None,
            Some(form(&[("enabled", "false")])),
        ),
        (
            "no token (reset)",
            Method::POST,
            "/users/ann%40contoso.test/reset",
            None,
            Some(form(&[])),
        ),
    ];
    for (what, method, path, token, body) in cases {
        let a = env
            .send(request(
                method,
                path,
                &Auth::Session {
                    cookie: cookie.clone(),
                    csrf: token,
                },
                body,
            ))
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{what}: {}", a.body);
        assert!(a.body.contains("CSRF"), "{what}: {}", a.body);
    }
    assert!(env.state.sync_enabled().unwrap(), "nothing changed");
    let audit = env.store.list_audit(50, None).unwrap();
    assert!(audit
        .iter()
        .all(|e| e.action != "user.reset" && e.action != "sync.disable"));

    // The right token, as a header and as a form field, works.
    let ok = env
        .send(request(
            Method::PUT,
            "/api/sync",
            &Auth::Session {
                cookie: cookie.clone(),
                csrf: Some(csrf.clone()),
            },
            Some(Body2::Json(json!({"enabled": false}))),
        ))
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let ok = env
        .send(request(
            Method::POST,
            "/sync",
            &Auth::Session {
                cookie,
                csrf: Some(csrf),
            },
            Some(form(&[("enabled", "true")])),
        ))
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    // API tokens are not cookies, so they need no CSRF token.
    let ok = env
        .send(request(
            Method::PUT,
            "/api/sync",
            &Auth::Token(env.token(Role::Admin).to_owned()),
            Some(Body2::Json(json!({"enabled": false}))),
        ))
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert!(!env.state.sync_enabled().unwrap());
}

#[tokio::test]
async fn login_sets_a_strict_http_only_cookie_and_logout_ends_the_session() {
    let env = Env::new();
    let a = env
        .send(request(
            Method::POST,
            "/api/login",
            &Auth::None,
            Some(Body2::Json(
                json!({"username": "operator", "password": PASSWORD}),
            )),
        ))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let cookie_header = a.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie_header.contains("HttpOnly"), "{cookie_header}");
    assert!(cookie_header.contains("SameSite=Strict"), "{cookie_header}");
    assert!(
        !cookie_header.contains("Secure"),
        "no TLS here: {cookie_header}"
    );
    let cookie = cookie_header
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("exsync_session=")
        .unwrap()
        .to_owned();
    let csrf = a.json()["csrf_token"].as_str().unwrap().to_owned();
    assert_eq!(a.json()["role"], "operator");

    // The database holds a hash of the cookie, not the cookie.
    let db = std::fs::read(env.dir.path().join("state.db")).unwrap();
    let wal = std::fs::read(env.dir.path().join("state.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(!bytes.windows(cookie.len()).any(|w| w == cookie.as_bytes()));
    }

    let auth = Auth::Session {
        cookie: cookie.clone(),
        csrf: Some(csrf),
    };
    let me = env.send(request(Method::GET, "/api/me", &auth, None)).await;
    assert_eq!(me.json()["name"], "operator");
    let out = env
        .send(request(Method::POST, "/api/logout", &auth, None))
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let me = env.send(request(Method::GET, "/api/me", &auth, None)).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);

    let page = env.send(request(Method::GET, "/", &Auth::None, None)).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.headers["location"], "/login");
}

#[tokio::test]
async fn wrong_passwords_are_rate_limited_per_account_with_a_clear_429() {
    let env = Env::new();
    let try_login = |user: &'static str, pw: &'static str| {
        request(
            Method::POST,
            "/api/login",
            &Auth::None,
            Some(Body2::Json(json!({"username": user, "password": pw}))),
        )
    };
    for _ in 0..5 {
        let a = env.send(try_login("admin", "wrong")).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
        assert!(a.json()["error"]
            .as_str()
            .unwrap()
            .contains("wrong user name or password"));
    }
    // Now even the right password is refused for a while, with a reason and a wait.
    let a = env.send(try_login("admin", PASSWORD)).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
    assert!(a.json()["error"]
        .as_str()
        .unwrap()
        .contains("too many failed logins"));
    let wait: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(wait > 0 && wait <= 900, "{wait}");
    // Other accounts are not locked by someone guessing at this one (per-client limit is higher).
    let b = env.send(try_login("viewer", PASSWORD)).await;
    assert_eq!(b.status, StatusCode::OK, "{}", b.body);
    // Unknown accounts get the same answer as wrong passwords.
    let c = env.send(try_login("nobody-here", "x")).await;
    assert_eq!(c.status, StatusCode::UNAUTHORIZED);
    let failed = env.store.list_audit(100, None).unwrap();
    assert!(failed.iter().filter(|e| e.action == "login.failed").count() >= 6);
}

#[tokio::test]
async fn a_demoted_account_loses_its_rights_at_once() {
    let env = Env::new();
    let (cookie, csrf) = env.session(Role::Admin);
    let auth = Auth::Session {
        cookie,
        csrf: Some(csrf),
    };
    let a = env
        .send(request(Method::GET, "/api/service-account", &auth, None))
        .await;
    assert_eq!(a.status, StatusCode::OK);
    env.store
        .set_admin_role("admin", Role::Viewer, chrono::Utc::now())
        .unwrap();
    let a = env
        .send(request(Method::GET, "/api/service-account", &auth, None))
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn one_client_address_guessing_at_many_accounts_is_limited_too() {
    let env = Env::new();
    let mut console = exsync_console::Console::new(
        env.store.clone(),
        env.state.vault.clone(),
        env.config_path(),
    );
    console.limiter = exsync_console::LoginLimiter::new(5, 3);
    let app = exsync_console::router(std::sync::Arc::new(console));
    let from = |ip: [u8; 4], user: &str, password: &str| {
        let mut req = request(
            Method::POST,
            "/api/login",
            &Auth::None,
            Some(Body2::Json(json!({"username": user, "password": password}))),
        );
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
                ip, 40000,
            ))));
        req
    };
    let send = |req: axum::http::Request<axum::body::Body>| {
        let app = app.clone();
        async move { tower::ServiceExt::oneshot(app, req).await.unwrap().status() }
    };
    for user in ["a1", "a2", "a3"] {
        assert_eq!(
            send(from([10, 0, 0, 1], user, "x")).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        send(from([10, 0, 0, 1], "operator", PASSWORD)).await,
        StatusCode::TOO_MANY_REQUESTS,
        "the address is limited, whatever account it tries"
    );
    assert_eq!(
        send(from([10, 0, 0, 2], "operator", PASSWORD)).await,
        StatusCode::OK,
        "another address is not"
    );
}

#[tokio::test]
async fn a_failed_login_records_the_name_only_when_it_is_an_account() {
    // Every log line of this test's thread, which runs the whole (single-threaded) server.
    let (captured, _logs) = exsync_testkit::logs::Captured::on_this_thread();
    let env = Env::new();
    // A password typed into the name field, through the API and through the login form.
    let typed = "Tr0ub4dor&3-typed-as-a-name";
    let api = |user: &str, password: &str| {
        request(
            Method::POST,
            "/api/login",
            &Auth::None,
            Some(Body2::Json(json!({"username": user, "password": password}))),
        )
    };
    let a = env.send(api(typed, "whatever")).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = env
        .send(request(
            Method::POST,
            "/login",
            &Auth::None,
            Some(form(&[("username", typed), ("password", "whatever")])),
        ))
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(!a.body.contains(typed), "the login page does not echo it");
    // An existing account with a wrong password is named.
    let a = env.send(api("operator", "wrong")).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    // Past the rate limit the typed name is still not written down.
    for _ in 0..4 {
        env.send(api(typed, "whatever")).await;
    }
    let a = env.send(api(typed, "whatever")).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);

    let failed: Vec<String> = env
        .store
        .list_audit(100, None)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "login.failed")
        .map(|e| e.actor)
        .collect();
    assert_eq!(failed.iter().filter(|a| *a == "operator").count(), 1);
    assert_eq!(
        failed.iter().filter(|a| *a == "unknown account").count(),
        failed.len() - 1,
        "{failed:?}"
    );
    assert_eq!(failed.len(), 6, "{failed:?}");

    // Nothing a viewer can read, nor the log, holds the typed name.
    let (cookie, csrf) = env.session(Role::Viewer);
    let viewer = Auth::Session {
        cookie,
        csrf: Some(csrf),
    };
    for path in ["/api/audit", "/audit"] {
        let a = env.send(request(Method::GET, path, &viewer, None)).await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.body.contains("unknown account"), "{path}: {}", a.body);
        assert!(!a.body.contains(typed), "{path}: {}", a.body);
    }
    let logs = captured.text();
    assert!(logs.contains("login"), "the log was captured: {logs}");
    assert!(!logs.contains(typed), "{logs}");
}
