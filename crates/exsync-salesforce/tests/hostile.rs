//! Salesforce endpoints that try to hurt the client instead of answering it: a token endpoint
//! or REST answer over the size cap, one that never ends, one that trickles. A scripted
//! plain-http server on 127.0.0.1 plays the org; the connector is pointed at it directly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use exsync_salesforce::{AuthConfig, Error, SalesforceClient, SalesforceConfig, Secret};
use exsync_testkit::hostile::{self, Flavor, Hostile, Reply, Script};

const MIB: u64 = 1024 * 1024;

/// The org: a token endpoint that answers properly unless `token` says otherwise, and `rest`
/// for every other path.
async fn org(token: Option<Reply>, rest: Reply) -> Hostile {
    let bound = hostile::bind(&[]).await;
    let token = token.unwrap_or_else(|| {
        Reply::Answer(format!(
            "{{\"access_token\":\"t\",\"instance_url\":\"http://{}\"}}",
            bound.addr
        ))
    });
    bound.serve(Script::new(Flavor::JSON, rest).route("/services/oauth2/token", token))
}

fn client(org: &Hostile, configure: impl FnOnce(&mut SalesforceConfig)) -> SalesforceClient {
    let mut config = SalesforceConfig::new(
        org.url(),
        AuthConfig::ClientCredentials {
            client_id: "id".into(),
            client_secret: Secret::new("secret"),
        },
    );
    config.retry_base = Duration::from_millis(5);
    configure(&mut config);
    SalesforceClient::new(config).unwrap()
}

fn transport_text(result: exsync_salesforce::Result<impl std::fmt::Debug>) -> String {
    match result {
        Err(e @ Error::Transport(_)) => e.to_string(),
        other => panic!("expected a transport error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_rest_answer_over_the_cap_is_refused_naming_host_and_limit() {
    let org = org(None, Reply::Chunked { size: 5 * MIB }).await;
    let client = client(&org, |c| c.max_reply_bytes = MIB);
    let text = transport_text(client.limits().await);
    assert!(
        text.contains("127.0.0.1 sent a reply larger than the 1 MiB limit"),
        "{text}"
    );
    assert!(text.contains("network.max_reply_mib"), "{text}");
    // The token, then the one answer: an oversized one is not asked for again.
    assert_eq!(org.requests(), 2);
}

#[tokio::test]
async fn an_answer_announced_over_the_cap_is_refused_before_reading() {
    let org = org(None, Reply::Announced { size: 300 * MIB }).await;
    let client = client(&org, |c| c.timeout = Duration::from_secs(30));
    let start = Instant::now();
    let text = transport_text(client.limits().await);
    assert!(text.contains("larger than the 64 MiB limit"), "{text}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_rest_answer_that_never_ends_is_cut_at_the_default_cap() {
    let org = org(None, Reply::Endless).await;
    let client = client(&org, |_| {});
    let start = Instant::now();
    let text = transport_text(client.limits().await);
    assert!(
        text.contains("127.0.0.1 sent a reply larger than the 64 MiB limit"),
        "{text}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_token_answer_that_never_ends_is_cut_at_the_cap() {
    let org = org(Some(Reply::Endless), Reply::Endless).await;
    let client = client(&org, |c| c.max_reply_bytes = 2 * MIB);
    let text = transport_text(client.instance_url().await);
    assert!(
        text.contains("127.0.0.1 sent a reply larger than the 2 MiB limit"),
        "{text}"
    );
    assert_eq!(org.requests(), 1);
}

#[tokio::test]
async fn a_trickling_answer_costs_one_timeout_not_one_per_retry() {
    let org = org(
        None,
        Reply::Trickle {
            every: Duration::from_millis(500),
        },
    )
    .await;
    let timeout = Duration::from_secs(2);
    let client = client(&org, |c| c.timeout = timeout);
    let start = Instant::now();
    let text = transport_text(client.limits().await);
    let elapsed = start.elapsed();
    assert!(
        text.contains("127.0.0.1 did not complete its reply within 2s"),
        "{text}"
    );
    assert!(elapsed < timeout * 2, "{elapsed:?}");
    assert_eq!(org.requests(), 2);
}

#[tokio::test]
async fn a_trickling_token_endpoint_costs_one_timeout() {
    let trickle = Reply::Trickle {
        every: Duration::from_millis(500),
    };
    let org = org(Some(trickle.clone()), trickle).await;
    let timeout = Duration::from_secs(2);
    let client = client(&org, |c| c.timeout = timeout);
    let start = Instant::now();
    let text = transport_text(client.instance_url().await);
    assert!(
        text.contains("did not complete its reply within 2s"),
        "{text}"
    );
    assert!(start.elapsed() < timeout * 2, "{:?}", start.elapsed());
}
