//! The Salesforce simulator over plain HTTP (no connector): files it keeps private, state and the API
//! allowance across a restart, and the error shapes plain HTTP clients see.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use exsync_sim::salesforce::{SalesforceSim, JWT_KEY_FILE, SIM_JSON};
use exsync_testkit::keys::jwt_key_pem as key;
use serde_json::{json, Value};

fn http(ca_file: &std::path::Path) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = std::fs::read(ca_file).unwrap();
    reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap()
}

async fn token(client: &reqwest::Client, sim: &SalesforceSim) -> String {
    let answer: Value = client
        .post(&sim.info.token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", sim.info.client_id.as_str()),
            ("client_secret", sim.info.client_secret.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn state_and_allowance_survive_a_restart_and_secrets_stay_private() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(JWT_KEY_FILE), key()).unwrap();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let sim = SalesforceSim::start(dir.path(), addr).await.unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(SIM_JSON))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "sim.json holds secrets");
    }
    let client = http(&sim.info.ca_file);
    let bearer = token(&client, &sim).await;
    let base = format!(
        "{}/services/data/v{}",
        sim.info.instance_url, sim.info.api_version
    );
    let created = client
        .post(format!("{base}/sobjects/Contact/"))
        .bearer_auth(&bearer)
        .json(&json!({"LastName": "Persisted"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let usage = created.headers()["Sforce-Limit-Info"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(usage, "api-usage=1/100000");
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sim.shutdown().await;

    let sim = SalesforceSim::start(dir.path(), addr).await.unwrap();
    let client = http(&sim.info.ca_file);
    let base = format!(
        "{}/services/data/v{}",
        sim.info.instance_url, sim.info.api_version
    );
    // Sessions do not survive a restart, as after a session timeout.
    let stale = client
        .get(format!("{base}/sobjects/Contact/{id}"))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 401);
    let body: Value = stale.json().await.unwrap();
    assert_eq!(body[0]["errorCode"], "INVALID_SESSION_ID");
    let bearer = token(&client, &sim).await;
    let got = client
        .get(format!("{base}/sobjects/Contact/{id}"))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.headers()["Sforce-Limit-Info"].to_str().unwrap(),
        "api-usage=2/100000"
    );
    let record: Value = got.json().await.unwrap();
    assert_eq!(record["LastName"], "Persisted");
    assert_eq!(record["attributes"]["type"], "Contact");
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_salesforce_error_bodies() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(JWT_KEY_FILE), key()).unwrap();
    let sim = SalesforceSim::start(dir.path(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let client = http(&sim.info.ca_file);
    let bearer = token(&client, &sim).await;
    let base = format!(
        "{}/services/data/v{}",
        sim.info.instance_url, sim.info.api_version
    );
    let cases = [
        (
            "GET",
            format!("{base}/query?q=SELEC+Id"),
            Value::Null,
            400,
            "MALFORMED_QUERY",
        ),
        (
            "GET",
            format!("{base}/sobjects/Contact/003000000000000AAA"),
            Value::Null,
            404,
            "NOT_FOUND",
        ),
        (
            "POST",
            format!("{base}/sobjects/Contact"),
            json!({"LastName": "x", "Bogus": 1}),
            400,
            "INVALID_FIELD",
        ),
        (
            "POST",
            format!("{base}/sobjects/Contact"),
            json!({"LastName": "x".repeat(81)}),
            400,
            "STRING_TOO_LONG",
        ),
        (
            "PATCH",
            format!("{base}/sobjects/Contact/003000000000000AAA"),
            json!({"LastName": "x"}),
            404,
            "NOT_FOUND",
        ),
        (
            "GET",
            format!("{base}/queryAll/01gSIM000000999-2000"),
            Value::Null,
            400,
            "INVALID_QUERY_LOCATOR",
        ),
        (
            "GET",
            format!("{base}/sobjects/Contact/deleted/?start=x&end=y"),
            Value::Null,
            400,
            "INVALID_REPLICATION_DATE",
        ),
    ];
    for (method, url, body, status, code) in cases {
        let mut request = client
            .request(method.parse().unwrap(), &url)
            .bearer_auth(&bearer);
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {url}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer[0]["errorCode"], code, "{method} {url}: {answer}");
        assert!(answer[0]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let refused = client
        .post(&sim.info.token_url)
        .form(&[
            ("grant_type", "password"),
            ("username", "x"),
            ("password", "y"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let answer: Value = refused.json().await.unwrap();
    assert_eq!(answer["error"], "unsupported_grant_type");
}
