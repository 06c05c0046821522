//! The Graph client against the Graph simulator, in-process over real HTTPS: tokens with a
//! secret and with both certificate forms, Entra's refusals, token reuse and renewal, a 429
//! ridden out, a mailbox outside the app's scope, the allow-list, `$batch` and delta paging.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use exsync_core::observe::{Observer, RequestObserver};
use exsync_core::AllowList;
use exsync_graph::{
    AssertionAlgorithm, BatchRequest, Cloud, Credential, Error, GraphClient, GraphConfig,
    GraphRequest, Page, Secret, TransportError,
};
use exsync_sim::graph::{GraphSim, Options};
use exsync_testkit::sim::Control;
use reqwest::Method;
use serde_json::{json, Value};

const USER1: &str = "user1@contoso.test";
const USER2: &str = "user2@contoso.test";
const OUTSIDE: &str = "outside1@contoso.test";
const TOKEN_ENDPOINT: &str = "POST /{tenant}/oauth2/v2.0/token";

struct Harness {
    sim: GraphSim,
    _dir: tempfile::TempDir,
    control: Control,
}

impl Harness {
    async fn start() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        // An RSA key takes seconds to make unoptimised: the binary's shared one serves as the
        // app's key, and the simulator makes its certificate for it.
        std::fs::write(
            dir.path().join("app-key.pem"),
            exsync_testkit::keys::jwt_key_pem(),
        )
        .unwrap();
        let options = Options {
            domain: "contoso.test".into(),
            mailboxes: 2,
            out_of_scope: 1,
        };
        let sim = GraphSim::start_with(dir.path(), "127.0.0.1:0".parse().unwrap(), &options)
            .await
            .unwrap();
        let control = Control::new(
            &sim.info.control_url,
            &sim.info.control_token,
            &sim.info.ca_pem,
        );
        Harness {
            sim,
            _dir: dir,
            control,
        }
    }

    fn config(&self, credential: Credential) -> GraphConfig {
        let info = &self.sim.info;
        let authority = info.authority_url().to_owned();
        let mut config = GraphConfig::new(
            info.tenant_id.clone(),
            info.client_id.clone(),
            Cloud::custom(authority, info.graph_url.clone()),
            credential,
        );
        config.ca_pem = Some(std::fs::read(&info.ca_pem).unwrap());
        config.system_roots = false;
        config.allow = AllowList::new(["127.0.0.1"]);
        config.limits.retry_base = Duration::from_millis(50);
        config.limits.timeout = Duration::from_secs(20);
        config
    }

    fn secret(&self) -> Credential {
        Credential::Secret(Secret::new(self.sim.info.client_secret.clone()))
    }

    fn certificate(&self, algorithm: AssertionAlgorithm) -> Credential {
        let info = &self.sim.info;
        Credential::Certificate {
            certificate_pem: std::fs::read(&info.certificate_pem).unwrap(),
            private_key_pem: Secret::new(std::fs::read(&info.private_key_pem).unwrap()),
            algorithm,
        }
    }

    fn client(&self, credential: Credential) -> GraphClient {
        GraphClient::new(self.config(credential)).unwrap()
    }

    async fn counter(&self, path: &[&str]) -> u64 {
        let counters = self.control.counters().await;
        let mut v = &counters;
        for key in path {
            v = &v[*key];
        }
        v.as_u64().unwrap_or(0)
    }
}

#[derive(Default)]
struct Seen {
    requests: Mutex<Vec<(String, String)>>,
    waits: Mutex<Vec<Duration>>,
}

impl RequestObserver for Seen {
    fn request(&self, system: &'static str, endpoint: &str, outcome: &str) {
        assert_eq!(system, "graph");
        self.requests
            .lock()
            .unwrap()
            .push((endpoint.to_owned(), outcome.to_owned()));
    }

    fn throttled(&self, system: &'static str, wait: Duration) {
        assert_eq!(system, "graph");
        self.waits.lock().unwrap().push(wait);
    }
}

#[tokio::test]
async fn secret_token_is_fetched_once_and_reused_for_many_calls() {
    let h = Harness::start().await;
    let client = Arc::new(h.client(h.secret()));
    // Callers that start together wait for the one token request rather than each asking.
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let client = client.clone();
        calls.spawn(async move { client.get(&format!("/users/{USER2}")).await });
    }
    while let Some(r) = calls.join_next().await {
        r.unwrap().unwrap();
    }
    for _ in 0..5 {
        let user = client.get(&format!("/users/{USER1}")).await.unwrap();
        assert_eq!(user["userPrincipalName"], USER1, "{user}");
    }
    assert_eq!(h.counter(&["endpoints", TOKEN_ENDPOINT]).await, 1);
    let token = client.token().await.unwrap();
    assert!(token.expires_at() > chrono::Utc::now());
    // RBAC for Applications, not tenant-wide roles: the token carries none.
    assert!(token.roles().is_empty(), "{:?}", token.roles());
    assert!(!format!("{token:?} {client:?}").contains(&h.sim.info.client_secret));
}

#[tokio::test]
async fn certificate_tokens_in_both_forms() {
    let h = Harness::start().await;
    for algorithm in [AssertionAlgorithm::Ps256, AssertionAlgorithm::Rs256] {
        let client = h.client(h.certificate(algorithm));
        let expiry = client.certificate_expiry().unwrap();
        assert!(expiry.timestamp() > chrono::Utc::now().timestamp());
        let user = client.get(&format!("/users/{USER1}")).await.unwrap();
        assert_eq!(user["userPrincipalName"], USER1, "{algorithm:?}: {user}");
    }
    assert_eq!(h.counter(&["endpoints", TOKEN_ENDPOINT]).await, 2);
}

#[tokio::test]
async fn a_wrong_secret_names_aadsts7000215() {
    let h = Harness::start().await;
    let client = h.client(Credential::Secret(Secret::new("not-the-secret")));
    let err = client.get(&format!("/users/{USER1}")).await.unwrap_err();
    let Error::Auth(auth) = &err else {
        panic!("expected an Entra refusal, got {err:?}");
    };
    assert_eq!(auth.aadsts, Some(7000215));
    assert_eq!(auth.error, "invalid_client");
    let text = err.to_string();
    assert!(text.contains("AADSTS7000215"), "{text}");
    assert!(text.contains("client secret is wrong"), "{text}");
    assert!(!text.contains("not-the-secret"), "{text}");
    // Refused at the token endpoint: Graph itself was never asked.
    assert_eq!(h.counter(&["requests"]).await, 0);
}

#[tokio::test]
async fn a_revoked_token_is_dropped_and_renewed_once() {
    let h = Harness::start().await;
    let client = h.client(h.secret());
    client.get(&format!("/users/{USER1}")).await.unwrap();
    h.control.ok("POST", "/expire-tokens", None).await;
    // Graph answers 401 InvalidAuthenticationToken; the client fetches a new token and the
    // call succeeds.
    client.get(&format!("/users/{USER1}")).await.unwrap();
    assert_eq!(h.counter(&["endpoints", TOKEN_ENDPOINT]).await, 2);
}

#[tokio::test]
async fn a_429_with_retry_after_is_ridden_out_and_reported() {
    let h = Harness::start().await;
    let seen = Arc::new(Seen::default());
    let mut config = h.config(h.secret());
    config.observer = Some(Observer(seen.clone()));
    let client = GraphClient::new(config).unwrap();
    client.token().await.unwrap();
    h.control
        .ok(
            "POST",
            "/faults",
            Some(&json!({"mailbox": USER1, "status": 429, "count": 1, "retry_after": 1})),
        )
        .await;
    let start = Instant::now();
    let contacts = client
        .get(&format!("/users/{USER1}/contacts"))
        .await
        .unwrap();
    assert!(contacts["value"].is_array(), "{contacts}");
    assert!(
        start.elapsed() >= Duration::from_millis(950),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(h.counter(&["faults", "429"]).await, 1);
    assert_eq!(*seen.waits.lock().unwrap(), [Duration::from_secs(1)]);
    let outcomes: Vec<String> = seen
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|(e, o)| format!("{e} {o}"))
        .collect();
    assert_eq!(
        outcomes,
        ["/users/{id}/contacts throttled", "/users/{id}/contacts ok"]
    );
}

#[tokio::test]
async fn a_long_retry_after_pauses_that_mailbox_alone() {
    let h = Harness::start().await;
    let mut config = h.config(h.secret());
    config.limits.max_wait = Duration::from_secs(5);
    let client = GraphClient::new(config).unwrap();
    h.control
        .ok(
            "POST",
            "/faults",
            Some(&json!({"mailbox": USER1, "status": 429, "count": 1, "retry_after": 600})),
        )
        .await;
    let err = client.get(&format!("/users/{USER1}")).await.unwrap_err();
    assert!(err.is_throttled(), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(600)));
    // The mailbox stays paused: the next call fails without being sent…
    let before = h.counter(&["mailboxes", USER1]).await;
    let err = client.get(&format!("/users/{USER1}")).await.unwrap_err();
    assert!(matches!(err, Error::Paused { .. }), "{err:?}");
    assert_eq!(h.counter(&["mailboxes", USER1]).await, before);
    assert!(client.paused_for(USER1) > Duration::from_secs(590));
    assert_eq!(client.paused_for(USER2), Duration::ZERO);
    // …while another mailbox goes on.
    client.get(&format!("/users/{USER2}")).await.unwrap();
}

#[tokio::test]
async fn a_mailbox_outside_the_scope_is_not_authorised() {
    let h = Harness::start().await;
    let client = h.client(h.secret());
    let err = client
        .get(&format!("/users/{OUTSIDE}/contacts"))
        .await
        .unwrap_err();
    assert!(err.is_not_authorised(), "{err:?}");
    let graph = err.graph().unwrap();
    assert_eq!(
        (graph.status, graph.code.as_str()),
        (403, "ErrorAccessDenied")
    );
    assert!(!err.is_not_found() && !err.is_sync_state_lost());
    // An item that is gone: 404.
    let created = client
        .send(
            GraphRequest::new(Method::POST, format!("/users/{USER1}/contacts"))
                .json(json!({"givenName": "Gone"})),
        )
        .await
        .unwrap();
    let path = format!(
        "/users/{USER1}/contacts/{}",
        created.body["id"].as_str().unwrap()
    );
    client
        .send(GraphRequest::new(Method::DELETE, &path))
        .await
        .unwrap();
    let err = client.get(&path).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
}

#[tokio::test]
async fn hosts_outside_the_allow_list_get_nothing() {
    let h = Harness::start().await;
    let mut config = h.config(h.secret());
    config.allow = AllowList::new(["contoso.test"]);
    let client = GraphClient::new(config).unwrap();
    let err = client.get(&format!("/users/{USER1}")).await.unwrap_err();
    assert!(matches!(err, Error::Refused { .. }), "{err:?}");
    assert!(err.to_string().contains("outside the allow-list"), "{err}");
    // Not even the token endpoint was asked.
    let counters = h.control.counters().await;
    assert_eq!(
        counters["endpoints"].get(TOKEN_ENDPOINT),
        None,
        "{counters}"
    );
    assert_eq!(counters["hosts"], json!({}), "{counters}");

    // A next link off the Graph host is refused before the token goes there, even on the
    // same address with another port.
    let client = h.client(h.secret());
    for link in [
        "https://evil.test/v1.0/users/x/contacts?$skiptoken=1".to_owned(),
        format!("https://127.0.0.1:1/v1.0/users/{USER1}/contacts"),
        format!("http://{}/v1.0/users/{USER1}/contacts", h.sim.addr),
    ] {
        let err = client.page(&link, &[]).await.unwrap_err();
        assert!(matches!(err, Error::Refused { .. }), "{link}: {err:?}");
    }
    assert_eq!(h.counter(&["requests"]).await, 0);
}

#[tokio::test]
async fn batch_with_depends_on_and_each_items_status() {
    let h = Harness::start().await;
    let client = h.client(h.secret());
    let requests = vec![
        BatchRequest::new("1", Method::POST, format!("/users/{USER1}/contacts"))
            .json(json!({"givenName": "Ada", "surname": "Lovelace"})),
        BatchRequest::new("2", Method::GET, format!("/users/{USER1}/contacts")).depends_on("1"),
        BatchRequest::new("3", Method::GET, format!("/users/{OUTSIDE}/contacts")),
        BatchRequest::new("4", Method::GET, format!("/users/{OUTSIDE}/contacts")).depends_on("3"),
    ];
    let replies = client.batch(requests).await.unwrap();
    let ids: Vec<&str> = replies.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["1", "2", "3", "4"]);
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [201, 200, 403, 424], "{replies:?}");
    let listed = replies[1].clone().into_result().unwrap();
    assert!(
        listed["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["givenName"] == "Ada"),
        "{listed}"
    );
    assert!(replies[2].error().unwrap().is_not_authorised());
}

#[tokio::test]
async fn a_throttled_batch_item_is_sent_again_alone() {
    let h = Harness::start().await;
    let client = h.client(h.secret());
    client.token().await.unwrap();
    h.control
        .ok(
            "POST",
            "/faults",
            Some(&json!({"mailbox": USER2, "status": 429, "count": 1, "retry_after": 1})),
        )
        .await;
    let requests = vec![
        BatchRequest::new("a", Method::GET, format!("/users/{USER1}/contacts")),
        BatchRequest::new("b", Method::GET, format!("/users/{USER2}/contacts")),
    ];
    let replies = client.batch(requests).await.unwrap();
    assert!(replies.iter().all(|r| r.status == 200), "{replies:?}");
    // user1's item ran once; user2's twice (the 429, then the retry); two batches in all.
    assert_eq!(h.counter(&["mailboxes", USER1]).await, 1);
    assert_eq!(h.counter(&["mailboxes", USER2]).await, 2);
    assert_eq!(h.counter(&["endpoints", "POST /$batch"]).await, 2);
}

#[tokio::test]
async fn more_than_twenty_requests_go_in_several_batches() {
    let h = Harness::start().await;
    let client = h.client(h.secret());
    let requests: Vec<BatchRequest> = (0..45)
        .map(|i| BatchRequest::new(i.to_string(), Method::GET, format!("/users/{USER1}")))
        .collect();
    let replies = client.batch(requests).await.unwrap();
    assert_eq!(replies.len(), 45);
    assert!(replies.iter().all(|r| r.status == 200));
    assert_eq!(h.counter(&["endpoints", "POST /$batch"]).await, 3);
}

#[tokio::test]
async fn delta_pages_are_followed_to_the_delta_link() {
    let h = Harness::start().await;
    let seed: Vec<Value> = (0..7)
        .map(|i| json!({"givenName": format!("P{i}"), "surname": "Seed"}))
        .collect();
    h.control
        .ok(
            "POST",
            &format!("/mailboxes/{USER1}/contacts"),
            Some(&json!(seed)),
        )
        .await;
    let client = h.client(h.secret());
    let prefer = vec![("Prefer".to_owned(), "odata.maxpagesize=3".to_owned())];
    let first = client
        .collect(&format!("/users/{USER1}/contacts/delta"), &prefer)
        .await
        .unwrap();
    assert_eq!(first.items.len(), 7);
    let delta = first.delta_link.expect("a delta link");
    assert!(delta.starts_with(client.graph_url()), "{delta}");
    // Nothing changed: the next round is empty and gives a new delta link.
    let again = client.collect(&delta, &prefer).await.unwrap();
    assert!(again.items.is_empty(), "{:?}", again.items);
    assert!(again.delta_link.is_some());
    // Three pages for seven items, then one for the empty round.
    assert_eq!(
        h.counter(&["endpoints", "GET /users/{id}/contacts/delta"])
            .await,
        4
    );

    // An expired delta token is classified as a lost sync state.
    h.control
        .ok(
            "POST",
            &format!("/mailboxes/{USER1}/expire-delta-tokens"),
            None,
        )
        .await;
    let err = client
        .collect(&again.delta_link.unwrap(), &prefer)
        .await
        .unwrap_err();
    assert!(err.is_sync_state_lost(), "{err:?}");
}

#[tokio::test]
async fn a_link_graph_gave_is_read_inside_a_batch() {
    let h = Harness::start().await;
    let seed: Vec<Value> = (0..5)
        .map(|i| json!({"givenName": format!("P{i}"), "surname": "Seed"}))
        .collect();
    h.control
        .ok(
            "POST",
            &format!("/mailboxes/{USER1}/contacts"),
            Some(&json!(seed)),
        )
        .await;
    let client = h.client(h.secret());
    let prefer = ("Prefer".to_owned(), "odata.maxpagesize=2".to_owned());
    let first = client
        .page(
            &format!("/users/{USER1}/contacts/delta"),
            std::slice::from_ref(&prefer),
        )
        .await
        .unwrap();
    let next = first.next_link.expect("a next link");
    let relative = client.relative(&next).unwrap();
    assert!(
        relative.starts_with("/users/") && relative.contains("/contacts/delta?"),
        "{relative}"
    );
    // The next page and another read share one round trip.
    let requests = vec![
        BatchRequest::new("user", Method::GET, format!("/users/{USER1}?$select=id")),
        BatchRequest::new("page", Method::GET, relative).header(prefer.0, prefer.1),
    ];
    let mut replies = client.batch(requests).await.unwrap();
    assert_eq!(h.counter(&["endpoints", "POST /$batch"]).await, 1);
    let page = Page::from_reply(replies.remove(1)).unwrap();
    assert_eq!(page.items.len(), 2, "{page:?}");
    assert!(page.next_link.is_some(), "{page:?}");
    // An item's error comes back as the page's error, classified as any other.
    let missing = BatchRequest::new(
        "page",
        Method::GET,
        format!("/users/{USER1}/contactFolders/AAMkAGI2TAAAAAAA/contacts/delta"),
    );
    let reply = client.batch(vec![missing]).await.unwrap().remove(0);
    assert!(Page::from_reply(reply).unwrap_err().is_not_found());
    // A link off the Graph host is refused, as for a page read alone.
    for link in [
        "https://evil.test/v1.0/users/x/contacts?$skiptoken=1".to_owned(),
        format!("http://{}/v1.0/users/{USER1}/contacts", h.sim.addr),
    ] {
        let err = client.relative(&link).unwrap_err();
        assert!(matches!(err, Error::Refused { .. }), "{link}: {err:?}");
    }
}

#[tokio::test]
async fn requests_write_and_read_json() {
    let h = Harness::start().await;
    let client = h.client(h.secret());
    let created = client
        .send(
            GraphRequest::new(Method::POST, format!("/users/{USER1}/contacts"))
                .json(json!({"givenName": "Grace", "surname": "Hopper"})),
        )
        .await
        .unwrap();
    assert_eq!(created.status, 201);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let etag = created.body["@odata.etag"].as_str().unwrap().to_owned();
    let path = format!("/users/{USER1}/contacts/{id}");
    client
        .send(
            GraphRequest::new(Method::PATCH, &path)
                .header("If-Match", &etag)
                .json(json!({"surname": "Hopper-Murray"})),
        )
        .await
        .unwrap();
    // The old ETag is stale now.
    let err = client
        .send(
            GraphRequest::new(Method::PATCH, &path)
                .header("If-Match", &etag)
                .json(json!({"surname": "Again"})),
        )
        .await
        .unwrap_err();
    assert!(err.is_stale_etag(), "{err:?}");
    let deleted = client
        .send(GraphRequest::new(Method::DELETE, &path))
        .await
        .unwrap();
    assert_eq!((deleted.status, deleted.body.clone()), (204, Value::Null));
}

#[tokio::test]
async fn a_mangled_answer_to_a_read_is_asked_again() {
    let h = Harness::start().await;
    let client = h.client(h.secret());
    client.token().await.unwrap();
    h.control
        .ok(
            "POST",
            "/faults",
            Some(&json!({"mailbox": USER1, "drop": true, "count": 1})),
        )
        .await;
    client
        .get(&format!("/users/{USER1}/contacts"))
        .await
        .unwrap();
    assert_eq!(h.counter(&["faults", "drop"]).await, 1);
}

#[tokio::test]
async fn a_short_lived_token_is_renewed_before_it_expires() {
    let h = Harness::start().await;
    // Four seconds: renewed at half its life, as a token under ten minutes is.
    h.control
        .ok("POST", "/token-lifetime", Some(&json!({"seconds": 4})))
        .await;
    let client = h.client(h.secret());
    client.get(&format!("/users/{USER1}")).await.unwrap();
    client.get(&format!("/users/{USER1}")).await.unwrap();
    assert_eq!(h.counter(&["endpoints", TOKEN_ENDPOINT]).await, 1);
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    client.get(&format!("/users/{USER1}")).await.unwrap();
    assert_eq!(h.counter(&["endpoints", TOKEN_ENDPOINT]).await, 2);
    // Graph never saw an expired token.
    assert_eq!(h.counter(&["requests"]).await, 3);
}

#[tokio::test]
async fn at_most_three_in_flight_per_mailbox_so_graph_never_throttles_concurrency() {
    let h = Harness::start().await;
    let client = Arc::new(h.client(h.secret()));
    client.token().await.unwrap();
    // Slow answers keep requests in flight; Graph allows four per mailbox.
    h.control
        .ok(
            "POST",
            "/faults",
            Some(&json!({"mailbox": USER1, "latency_ms": 200})),
        )
        .await;
    let start = Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..9 {
        let client = client.clone();
        calls.spawn(async move { client.get(&format!("/users/{USER1}/contacts")).await });
    }
    while let Some(r) = calls.join_next().await {
        r.unwrap().unwrap();
    }
    // Nine requests three at a time: three rounds of 200 ms.
    assert!(
        start.elapsed() >= Duration::from_millis(580),
        "{:?}",
        start.elapsed()
    );
    let counters = h.control.counters().await;
    assert_eq!(counters["throttled"], json!({}), "{counters}");
    assert_eq!(counters["mailboxes"][USER1], 9, "{counters}");
}

#[tokio::test]
async fn a_stalled_answer_hits_the_deadline() {
    let h = Harness::start().await;
    let mut config = h.config(h.secret());
    config.limits.timeout = Duration::from_millis(500);
    config.limits.max_attempts = 1;
    let client = GraphClient::new(config).unwrap();
    client.token().await.unwrap();
    h.control
        .ok(
            "POST",
            "/faults",
            Some(&json!({"mailbox": USER1, "latency_ms": 3000})),
        )
        .await;
    let start = Instant::now();
    let err = client.get(&format!("/users/{USER1}")).await.unwrap_err();
    assert!(
        matches!(err, Error::Transport(TransportError::Timeout { .. })),
        "{err:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_reply_over_the_cap_is_refused() {
    let h = Harness::start().await;
    let seed: Vec<Value> = (0..20)
        .map(|i| json!({"givenName": format!("P{i}"), "personalNotes": "x".repeat(500)}))
        .collect();
    h.control
        .ok(
            "POST",
            &format!("/mailboxes/{USER1}/contacts"),
            Some(&json!(seed)),
        )
        .await;
    let mut config = h.config(h.secret());
    config.limits.max_reply_bytes = 4096;
    let client = GraphClient::new(config).unwrap();
    let err = client
        .get(&format!("/users/{USER1}/contacts"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport(TransportError::ReplyTooLarge { limit: 4096, .. })
        ),
        "{err:?}"
    );
    // The token answer and a user are small: they still fit.
    client.get(&format!("/users/{USER1}")).await.unwrap();
}

#[tokio::test]
async fn entra_refusals_say_what_to_check() {
    let h = Harness::start().await;
    // The app's key, but a certificate never uploaded to the app registration.
    let key = std::fs::read_to_string(&h.sim.info.private_key_pem).unwrap();
    let signer =
        rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&key, &rcgen::PKCS_RSA_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.not_before = rcgen::date_time_ymd(2021, 1, 1);
    params.not_after = rcgen::date_time_ymd(2098, 1, 1);
    let unregistered = params.self_signed(&signer).unwrap().pem();
    let client = h.client(Credential::Certificate {
        certificate_pem: unregistered.into_bytes(),
        private_key_pem: Secret::new(key),
        algorithm: AssertionAlgorithm::Ps256,
    });
    let err = client.token().await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("AADSTS700027"), "{text}");
    assert!(text.contains("upload the certificate"), "{text}");

    // An application the tenant does not know.
    let mut config = h.config(h.secret());
    config.client_id = "00000000-0000-0000-0000-000000000001".into();
    let err = GraphClient::new(config).unwrap().token().await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("AADSTS700016"), "{text}");
    assert!(text.contains("client id"), "{text}");
    assert_eq!(h.counter(&["requests"]).await, 0);
}

#[tokio::test]
async fn a_throttled_item_of_a_sequence_is_sent_again_with_the_items_behind_it() {
    let h = Harness::start().await;
    let client = h.client(h.secret());
    client.get(&format!("/users/{USER1}")).await.unwrap();
    h.control
        .ok(
            "POST",
            "/faults",
            Some(&json!({"mailbox": USER2, "status": 429, "count": 1, "retry_after": 1})),
        )
        .await;
    let requests = vec![
        BatchRequest::new("get1", Method::GET, format!("/users/{USER1}/contacts")),
        BatchRequest::new("post2", Method::POST, format!("/users/{USER2}/contacts"))
            .depends_on("get1")
            .json(json!({"givenName": "Chained"})),
        BatchRequest::new("list2", Method::GET, format!("/users/{USER2}/contacts"))
            .depends_on("post2"),
    ];
    let replies = client.batch(requests).await.unwrap();
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 201, 200], "{replies:?}");
    // The first item ran once; the throttled one and the one behind it ran again.
    assert_eq!(h.counter(&["mailboxes", USER1]).await, 2);
    assert_eq!(h.counter(&["endpoints", "POST /$batch"]).await, 2);
    let created = client
        .get(&format!("/users/{USER2}/contacts"))
        .await
        .unwrap();
    let chained = created["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["givenName"] == "Chained")
        .count();
    assert_eq!(chained, 1, "{created}");
}

#[tokio::test]
async fn an_unverified_server_gets_no_credential() {
    let h = Harness::start().await;
    let mut config = h.config(h.secret());
    // Trust only the app's own self-signed certificate: the simulator's is not verified.
    config.ca_pem = Some(std::fs::read(&h.sim.info.certificate_pem).unwrap());
    config.limits.max_attempts = 2;
    let client = GraphClient::new(config).unwrap();
    let err = client.get(&format!("/users/{USER1}")).await.unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    // The TLS handshake failed: no request (so no secret) reached the server.
    assert_eq!(h.control.counters().await["hosts"], json!({}));
}
