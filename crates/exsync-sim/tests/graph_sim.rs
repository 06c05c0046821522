//! The Graph simulator over real HTTPS, in-process: start-up and sim.json, a restart that
//! keeps the tenant, tokens, RBAC for Applications, throttling, injected faults, `$batch`
//! rules and the control API's counters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use exsync_sim::graph::{GraphSim, Options, SimInfo};
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};

async fn start(dir: &Path) -> GraphSim {
    let options = Options {
        domain: "contoso.test".into(),
        mailboxes: 2,
        out_of_scope: 1,
    };
    GraphSim::start_with(dir, "127.0.0.1:0".parse().unwrap(), &options)
        .await
        .unwrap()
}

fn client(info: &SimInfo) -> Client {
    let pem = std::fs::read(&info.ca_pem).unwrap();
    Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn token(http: &Client, info: &SimInfo) -> String {
    let reply = http
        .post(&info.token_url)
        .form(&[
            ("client_id", info.client_id.as_str()),
            ("client_secret", info.client_secret.as_str()),
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    let body: Value = reply.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn control(http: &Client, info: &SimInfo, method: &str, path: &str, body: Value) -> Value {
    let url = format!("{}{path}", info.control_url);
    let request = match method {
        "GET" => http.get(url),
        "DELETE" => http.delete(url),
        _ => http.post(url).json(&body),
    };
    let reply = request
        .bearer_auth(&info.control_token)
        .send()
        .await
        .unwrap();
    let status = reply.status();
    let body: Value = reply.json().await.unwrap();
    assert!(status.is_success(), "{method} {path}: {status} {body}");
    body
}

async fn get(http: &Client, info: &SimInfo, token: &str, path: &str) -> Response {
    http.get(format!("{}{path}", info.graph_url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn error_code(reply: Response) -> (StatusCode, String) {
    let status = reply.status();
    let body: Value = reply.json().await.unwrap();
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_start_writes_a_private_sim_json() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(dir.path()).await;
    let text = std::fs::read_to_string(dir.path().join("sim.json")).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    let port = sim.addr.port();
    assert_eq!(json["graph_url"], format!("https://127.0.0.1:{port}/v1.0"));
    let tenant = json["tenant_id"].as_str().unwrap();
    assert!(!tenant.is_empty());
    assert_eq!(
        json["authority"],
        format!("https://127.0.0.1:{port}/{tenant}")
    );
    assert_eq!(
        json["token_url"],
        format!("https://127.0.0.1:{port}/{tenant}/oauth2/v2.0/token")
    );
    for key in [
        "client_id",
        "client_secret",
        "service_principal_id",
        "control_token",
        "control_url",
    ] {
        assert!(!json[key].as_str().unwrap().is_empty(), "{key}");
    }
    for key in ["certificate_pem", "private_key_pem", "ca_pem"] {
        assert!(Path::new(json[key].as_str().unwrap()).exists(), "{key}");
    }
    assert_eq!(
        json["mailboxes"],
        json!(["user1@contoso.test", "user2@contoso.test"])
    );
    assert_eq!(json["out_of_scope"], json!(["outside1@contoso.test"]));
    assert_eq!(json["domain"], "contoso.test");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("sim.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let http = client(&sim.info);
    let discovery: Value = http
        .get(format!(
            "{}/v2.0/.well-known/openid-configuration",
            sim.info.authority
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["token_endpoint"], json!(sim.info.token_url));
    // The tenant answers to its domain as well as to its id.
    let by_domain: Value = http
        .get(format!(
            "https://127.0.0.1:{port}/contoso.test/v2.0/.well-known/openid-configuration"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_domain["token_endpoint"], json!(sim.info.token_url));
    let unknown = http
        .get(format!(
            "https://127.0.0.1:{port}/fabrikam.test/v2.0/.well-known/openid-configuration"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_restart_keeps_mailboxes_and_seeded_items() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(dir.path()).await;
    let http = client(&sim.info);
    let added = control(
        &http,
        &sim.info,
        "POST",
        "/mailboxes",
        json!({"address": "late@contoso.test", "in_scope": true}),
    )
    .await;
    let seeded = control(
        &http,
        &sim.info,
        "POST",
        "/mailboxes/late@contoso.test/contacts",
        json!([{"givenName": "Ada", "surname": "Lovelace"}, {"givenName": "Alan"}]),
    )
    .await;
    assert_eq!(seeded["created"].as_array().unwrap().len(), 2);
    let token1 = token(&http, &sim.info).await;
    let folder: Value = http
        .post(format!(
            "{}/users/late@contoso.test/contactFolders",
            sim.info.graph_url
        ))
        .bearer_auth(&token1)
        .json(&json!({"displayName": "Salesforce_Sync"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let folder_id = folder["id"].as_str().unwrap().to_owned();
    control(
        &http,
        &sim.info,
        "POST",
        &format!("/mailboxes/late@contoso.test/contacts?folder={folder_id}"),
        json!({"givenName": "Grace"}),
    )
    .await;
    let info = sim.info.clone();
    sim.shutdown().await;

    let options = Options {
        domain: "other.test".into(),
        mailboxes: 7,
        out_of_scope: 0,
    };
    let sim = GraphSim::start_with(dir.path(), "127.0.0.1:0".parse().unwrap(), &options)
        .await
        .unwrap();
    assert_eq!(sim.info.control_token, info.control_token);
    assert_eq!(sim.info.client_id, info.client_id);
    assert_eq!(sim.info.out_of_scope, info.out_of_scope);
    assert_eq!(
        sim.info.mailboxes,
        [
            "user1@contoso.test",
            "user2@contoso.test",
            "late@contoso.test"
        ]
    );
    let http = client(&sim.info);
    let token = token(&http, &sim.info).await;
    let user: Value = get(&http, &sim.info, &token, "/users/LATE@contoso.test")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(user["id"], added["id"]);
    assert_eq!(user["userPrincipalName"], "late@contoso.test");
    let contacts: Value = get(
        &http,
        &sim.info,
        &token,
        "/users/late@contoso.test/contacts",
    )
    .await
    .json()
    .await
    .unwrap();
    let mut names: Vec<&str> = contacts["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["givenName"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["Ada", "Alan"]);
    let in_folder: Value = get(
        &http,
        &sim.info,
        &token,
        &format!("/users/late@contoso.test/contactFolders/{folder_id}/contacts"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(in_folder["value"][0]["givenName"], "Grace");
    assert_eq!(in_folder["value"].as_array().unwrap().len(), 1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_needs_a_token_and_the_mailbox_in_scope_unless_a_tenant_role_is_granted() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(dir.path()).await;
    let info = &sim.info;
    let http = client(info);
    let reply = http
        .get(format!("{}/users/user1@contoso.test", info.graph_url))
        .header("client-request-id", "my-id-1")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(reply.headers()["client-request-id"], "my-id-1");
    let request_id = reply.headers()["request-id"].to_str().unwrap().to_owned();
    let body: Value = reply.json().await.unwrap();
    assert_eq!(body["error"]["innerError"]["request-id"], json!(request_id));
    assert_eq!(body["error"]["innerError"]["client-request-id"], "my-id-1");

    let token1 = token(&http, info).await;
    let reply = get(&http, info, &token1, "/users/user1@contoso.test").await;
    assert_eq!(reply.status(), StatusCode::OK);
    assert!(reply.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json; odata.metadata=minimal"));
    let user: Value = reply.json().await.unwrap();
    assert_eq!(user["mail"], "user1@contoso.test");
    assert_eq!(
        error_code(get(&http, info, &token1, "/me/contacts").await).await,
        (StatusCode::BAD_REQUEST, "BadRequest".into())
    );
    assert_eq!(
        error_code(get(&http, info, &token1, "/users/nobody@contoso.test").await).await,
        (StatusCode::NOT_FOUND, "ErrorInvalidUser".into())
    );
    for path in ["", "/contacts", "/calendar/events"] {
        assert_eq!(
            error_code(
                get(
                    &http,
                    info,
                    &token1,
                    &format!("/users/outside1@contoso.test{path}")
                )
                .await
            )
            .await,
            (StatusCode::FORBIDDEN, "ErrorAccessDenied".into()),
            "{path}"
        );
    }
    assert_eq!(
        error_code(
            get(
                &http,
                info,
                &token1,
                "/users/user1@contoso.test/contacts?$bogus=1"
            )
            .await
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );

    // A tenant-wide Entra permission reaches every mailbox, scope or not, in the tokens
    // issued after the grant.
    control(&http, info, "POST", "/roles/Contacts.ReadWrite", json!({})).await;
    let token2 = token(&http, info).await;
    let reply = get(
        &http,
        info,
        &token2,
        "/users/outside1@contoso.test/contacts",
    )
    .await;
    assert_ne!(reply.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        get(&http, info, &token2, "/users/outside1@contoso.test")
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        error_code(get(&http, info, &token2, "/users/outside1@contoso.test/events").await).await,
        (StatusCode::FORBIDDEN, "ErrorAccessDenied".into())
    );

    // The management scope, changed through the control API, grants per role.
    control(
        &http,
        info,
        "DELETE",
        "/roles/Contacts.ReadWrite",
        Value::Null,
    )
    .await;
    control(
        &http,
        info,
        "POST",
        "/mailboxes/outside1@contoso.test/scope",
        json!({"roles": ["Application Calendars.ReadWrite"]}),
    )
    .await;
    let token3 = token(&http, info).await;
    assert_eq!(
        error_code(
            get(
                &http,
                info,
                &token3,
                "/users/outside1@contoso.test/contacts"
            )
            .await
        )
        .await,
        (StatusCode::FORBIDDEN, "ErrorAccessDenied".into())
    );
    assert_ne!(
        get(&http, info, &token3, "/users/outside1@contoso.test/events")
            .await
            .status(),
        StatusCode::FORBIDDEN
    );

    control(&http, info, "POST", "/expire-tokens", json!({})).await;
    assert_eq!(
        get(&http, info, &token3, "/users/user1@contoso.test")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_throttles_five_in_flight_and_requests_over_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(dir.path()).await;
    let info = sim.info.clone();
    let http = client(&info);
    let token = token(&http, &info).await;
    control(
        &http,
        &info,
        "POST",
        "/faults",
        json!({"mailbox": "user1@contoso.test", "latency_ms": 700}),
    )
    .await;
    let calls = (0..5).map(|_| {
        let (http, info, token) = (http.clone(), info.clone(), token.clone());
        tokio::spawn(async move {
            let reply = get(&http, &info, &token, "/users/user1@contoso.test").await;
            let status = reply.status();
            let body: Value = reply.json().await.unwrap();
            (
                status,
                body["error"]["code"].as_str().unwrap_or("").to_owned(),
            )
        })
    });
    let mut results = Vec::new();
    for call in calls.collect::<Vec<_>>() {
        results.push(call.await.unwrap());
    }
    let throttled: Vec<_> = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(throttled.len(), 1, "{results:?}");
    assert_eq!(throttled[0].1, "ApplicationThrottled");
    assert_eq!(
        results.iter().filter(|(s, _)| *s == StatusCode::OK).count(),
        4
    );
    control(
        &http,
        &info,
        "POST",
        "/faults",
        json!({"mailbox": "user1@contoso.test", "latency_ms": 0}),
    )
    .await;

    control(
        &http,
        &info,
        "POST",
        "/mailboxes/user1@contoso.test/budget",
        json!({"budget": 3, "reset": true}),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(
            get(&http, &info, &token, "/users/user1@contoso.test")
                .await
                .status(),
            StatusCode::OK
        );
    }
    let reply = get(&http, &info, &token, "/users/user1@contoso.test").await;
    let retry_after: u64 = reply.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&retry_after));
    assert_eq!(
        error_code(reply).await,
        (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests".into())
    );
    // Each mailbox is throttled on its own.
    assert_eq!(
        get(&http, &info, &token, "/users/user2@contoso.test")
            .await
            .status(),
        StatusCode::OK
    );
    let counters = control(&http, &info, "GET", "/counters", Value::Null).await;
    assert_eq!(counters["throttled"]["ApplicationThrottled"], 1);
    assert_eq!(counters["throttled"]["TooManyRequests"], 1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_injected_faults_then_success_and_counters() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(dir.path()).await;
    let info = &sim.info;
    let http = client(info);
    let token = token(&http, info).await;
    control(&http, info, "POST", "/counters/reset", json!({})).await;
    control(
        &http,
        info,
        "POST",
        "/faults",
        json!({"mailbox": "user1@contoso.test", "status": 429, "count": 2, "retry_after": 3}),
    )
    .await;
    for _ in 0..2 {
        let reply = get(&http, info, &token, "/users/user1@contoso.test").await;
        assert_eq!(reply.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(reply.headers()["retry-after"], "3");
    }
    // The other mailbox never saw the fault.
    assert_eq!(
        get(&http, info, &token, "/users/user2@contoso.test")
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        get(&http, info, &token, "/users/user1@contoso.test")
            .await
            .status(),
        StatusCode::OK
    );

    control(
        &http,
        info,
        "POST",
        "/faults",
        json!({"status": 503, "count": 1}),
    )
    .await;
    assert_eq!(
        error_code(get(&http, info, &token, "/users/user2@contoso.test").await).await,
        (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable".into())
    );
    control(
        &http,
        info,
        "POST",
        "/faults",
        json!({"malformed": true, "count": 1}),
    )
    .await;
    let text = get(&http, info, &token, "/users/user1@contoso.test")
        .await
        .text()
        .await
        .unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    control(
        &http,
        info,
        "POST",
        "/faults",
        json!({"drop": true, "count": 1}),
    )
    .await;
    assert!(http
        .get(format!("{}/users/user1@contoso.test", info.graph_url))
        .bearer_auth(&token)
        .send()
        .await
        .is_err());
    assert_eq!(
        get(&http, info, &token, "/users/user1@contoso.test")
            .await
            .status(),
        StatusCode::OK
    );

    let counters = control(&http, info, "GET", "/counters", Value::Null).await;
    assert_eq!(counters["mailboxes"]["user1@contoso.test"], 6);
    assert_eq!(counters["mailboxes"]["user2@contoso.test"], 2);
    assert_eq!(counters["endpoints"]["GET /users/{id}"], 8);
    assert_eq!(counters["faults"]["429"], 2);
    assert_eq!(counters["faults"]["503"], 1);
    assert_eq!(counters["faults"]["malformed"], 1);
    assert_eq!(counters["faults"]["drop"], 1);
    let host = format!("127.0.0.1:{}", sim.addr.port());
    assert_eq!(counters["hosts"][&host]["with_authorization"], 8);
    assert_eq!(counters["hosts"][&host]["schemes"]["Bearer"], 8);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_batch_follows_graphs_rules() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(dir.path()).await;
    let info = &sim.info;
    let http = client(info);
    let token = token(&http, info).await;
    let batch = |body: Value| {
        http.post(format!("{}/$batch", info.graph_url))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let many: Vec<Value> = (1..=21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users/user1@contoso.test"}))
        .collect();
    assert_eq!(
        batch(json!({"requests": many})).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    let dup = json!({"requests": [
        {"id": "1", "method": "GET", "url": "/users/user1@contoso.test"},
        {"id": "1", "method": "GET", "url": "/users/user2@contoso.test"},
    ]});
    assert_eq!(batch(dup).await.unwrap().status(), StatusCode::BAD_REQUEST);
    let mixed = json!({"requests": [
        {"id": "1", "method": "GET", "url": "/users/user1@contoso.test"},
        {"id": "2", "method": "GET", "url": "/users/user1@contoso.test", "dependsOn": ["1"]},
        {"id": "3", "method": "GET", "url": "/users/user2@contoso.test"},
    ]});
    assert_eq!(
        batch(mixed).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );

    let statuses = |body: &Value| -> Vec<(String, u64)> {
        let mut list: Vec<(String, u64)> = body["responses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["id"].as_str().unwrap().to_owned(),
                    r["status"].as_u64().unwrap(),
                )
            })
            .collect();
        list.sort();
        list
    };
    let reply = batch(json!({"requests": [
        {"id": "1", "method": "GET", "url": "/users/user1@contoso.test"},
        {"id": "2", "method": "GET", "url": "/users/nobody@contoso.test", "dependsOn": ["1"]},
        {"id": "3", "method": "GET", "url": "/users/user2@contoso.test", "dependsOn": ["2"]},
    ]}))
    .await
    .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    let body: Value = reply.json().await.unwrap();
    let expected = [("1", 200), ("2", 404), ("3", 424)];
    let expected: Vec<(String, u64)> = expected.iter().map(|(i, s)| ((*i).into(), *s)).collect();
    assert_eq!(statuses(&body), expected);

    let reply = batch(json!({"requests": [
        {"id": "a", "method": "GET", "url": "/users/user2@contoso.test?$select=displayName"},
        {"id": "b", "method": "GET", "url": "users/outside1@contoso.test/contacts"},
    ]}))
    .await
    .unwrap();
    let body: Value = reply.json().await.unwrap();
    let expected: Vec<(String, u64)> = vec![("a".into(), 200), ("b".into(), 403)];
    assert_eq!(statuses(&body), expected);
    let a = body["responses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "a")
        .unwrap();
    assert_eq!(a["body"]["displayName"], "User2");
    assert!(a["body"].get("mail").is_none());
    let unauthenticated = http
        .post(format!("{}/$batch", info.graph_url))
        .json(&json!({"requests": [{"id": "1", "method": "GET", "url": "/users/user1@contoso.test"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    sim.shutdown().await;
}

#[test]
fn graph_command_line_makes_the_tenant_it_is_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_exsync-sim"))
        .args(["graph", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args([
            "--domain",
            "fabrikam.test",
            "--mailboxes",
            "3",
            "--out-of-scope",
            "2",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The path of sim.json is printed once the simulator is ready.
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let info: Value = serde_json::from_str(&std::fs::read_to_string(line.trim()).unwrap()).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        info["mailboxes"],
        json!([
            "user1@fabrikam.test",
            "user2@fabrikam.test",
            "user3@fabrikam.test"
        ])
    );
    assert_eq!(
        info["out_of_scope"],
        json!(["outside1@fabrikam.test", "outside2@fabrikam.test"])
    );
    let usage = std::process::Command::new(env!("CARGO_BIN_EXE_exsync-sim"))
        .args(["graph", "--mailboxes", "many"])
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_parallel_batch_items_share_the_mailbox_concurrency_limit() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(dir.path()).await;
    let info = sim.info.clone();
    let http = client(&info);
    let token = token(&http, &info).await;
    control(
        &http,
        &info,
        "POST",
        "/faults",
        json!({"mailbox": "user1@contoso.test", "latency_ms": 600}),
    )
    .await;
    let items = |n: usize| -> Value {
        let list: Vec<Value> = (0..n)
            .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users/user1@contoso.test"}))
            .collect();
        json!({ "requests": list })
    };
    let statuses = |body: Value| -> Vec<u64> {
        let mut s: Vec<u64> = body["responses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["status"].as_u64().unwrap())
            .collect();
        s.sort_unstable();
        s
    };
    // Alone, a parallel batch never trips the limit: Graph hands its items over 4 at a time.
    let started = std::time::Instant::now();
    let body: Value = http
        .post(format!("{}/$batch", info.graph_url))
        .bearer_auth(&token)
        .json(&items(6))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(statuses(body), [200; 6]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1200) && took < Duration::from_millis(3000),
        "two waves of 600 ms: {took:?}"
    );
    // With another request of the app in flight for the mailbox, one item is one too many.
    let single = {
        let (http, info, token) = (http.clone(), info.clone(), token.clone());
        tokio::spawn(async move {
            get(&http, &info, &token, "/users/user1@contoso.test")
                .await
                .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let body: Value = http
        .post(format!("{}/$batch", info.graph_url))
        .bearer_auth(&token)
        .json(&items(4))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(statuses(body), [200, 200, 200, 429]);
    assert_eq!(single.await.unwrap(), StatusCode::OK);
    sim.shutdown().await;
}
