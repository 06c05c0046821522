//! Servers that try to hurt the client instead of answering it: replies that never end, are
//! huge, are nested deeper than any stack, trickle in, or redirect to hosts outside the
//! allow-list through addresses and URLs crafted to fool a string match. Each test has a
//! server of its own on 127.0.0.1, reached through the name-resolution override.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use url::Url;

use exsync_ews::{AllowList, Autodiscover, AutodiscoverConfig};
use exsync_ews::{AuthMode, Credentials, EwsClient, EwsConfig, EwsError, Resolve};
use exsync_ews::{SrvRecord, StaticSrv};
use exsync_testkit::hostile::{self, Hostile, Reply};

const DOMAIN: &str = "contoso.test";
const AUTODISCOVER_HOST: &str = "autodiscover.contoso.test";
const MIB: u64 = 1024 * 1024;

fn closed() -> SocketAddr {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    SocketAddr::from(([127, 0, 0, 1], 1))
}

fn config(ca_file: Option<std::path::PathBuf>, resolve: Resolve) -> EwsConfig {
    let mut cfg = EwsConfig::new(Credentials::new("svc@contoso.test", "pw"));
    cfg.auth = AuthMode::Basic;
    cfg.ca_file = ca_file;
    cfg.resolve = resolve;
    cfg.retry.base_delay = Duration::from_millis(50);
    cfg
}

/// Autodiscover for contoso.test with every candidate but the domain itself refused at once
/// (unless the resolve map says otherwise), and no SRV records.
fn autodiscover(cfg: EwsConfig, https_port: u16, http_port: Option<u16>) -> Autodiscover {
    let client = EwsClient::new(cfg).unwrap();
    let mut ad = AutodiscoverConfig::new(AllowList::new([DOMAIN]));
    ad.https_port = Some(https_port);
    ad.http_port = http_port;
    Autodiscover::new(Arc::clone(client.http()), ad)
}

/// A resolve map sending the domain to `server` and the other candidates nowhere.
fn only_the_domain(server: &Hostile) -> Resolve {
    Resolve::new()
        .with(DOMAIN, server.addr)
        .with(AUTODISCOVER_HOST, closed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deeply_nested_autodiscover_reply_is_an_error_not_a_crash() {
    // 200,000 levels in 1.4 MB: a tree that deep overflows any stack when built, searched or
    // dropped recursively.
    let depth = 200_000;
    let xml = format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
    assert!(xml.len() > 1_300_000);
    let server = hostile::start(&[DOMAIN], Reply::Body(xml)).await;
    let ad = autodiscover(
        config(server.ca_file.clone(), only_the_domain(&server)),
        server.addr.port(),
        None,
    );
    let err = ad.ews_url("ann@contoso.test").await.unwrap_err();
    assert!(matches!(err, EwsError::Autodiscover { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("nested deeper than 256 levels"), "{text}");
    assert!(server.requests() >= 1, "the server was never asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_reply_is_cut_at_the_cap_naming_host_and_limit() {
    let server = hostile::start(&["mail.contoso.test"], Reply::Endless).await;
    let mut cfg = config(
        server.ca_file.clone(),
        Resolve::new().with("mail.contoso.test", server.addr),
    );
    cfg.max_reply_bytes = 8 * MIB;
    let client = EwsClient::new(cfg).unwrap();
    let url = Url::parse(&format!(
        "https://mail.contoso.test:{}/EWS/Exchange.asmx",
        server.addr.port()
    ))
    .unwrap();
    let mailbox = client.mailbox("ann@contoso.test", url);
    let start = Instant::now();
    let err = mailbox.calendar_folder().await.unwrap_err();
    let elapsed = start.elapsed();
    match &err {
        EwsError::ReplyTooLarge { host, limit } => {
            assert_eq!(host, "mail.contoso.test");
            assert_eq!(*limit, 8 * MIB);
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("mail.contoso.test"), "{text}");
    assert!(text.contains("8 MiB"), "{text}");
    assert!(text.contains("network.max_reply_mib"), "{text}");
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    // Not asked again: another attempt would download as much again.
    assert_eq!(server.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_300_mib_reply_is_refused_without_being_held() {
    let before = hostile::peak_rss();
    // Chunked, so no Content-Length gives its size away: only reading it tells.
    let server = hostile::start(&[DOMAIN], Reply::Chunked { size: 300 * MIB }).await;
    let ad = autodiscover(
        config(server.ca_file.clone(), only_the_domain(&server)),
        server.addr.port(),
        None,
    );
    let err = ad.ews_url("ann@contoso.test").await.unwrap_err();
    let after = hostile::peak_rss();
    println!(
        "peak RSS before {:.1} MiB, after {:.1} MiB",
        before as f64 / MIB as f64,
        after as f64 / MIB as f64
    );
    let text = err.to_string();
    assert!(
        text.contains("contoso.test sent a reply larger than the 64 MiB limit"),
        "{text}"
    );
    assert!(after < 200 * MIB, "peak RSS {after} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_announced_larger_than_the_cap_is_not_read_at_all() {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
        300 * MIB
    );
    let server = hostile::start(&[DOMAIN], Reply::Raw(head.into_bytes())).await;
    let mut cfg = config(server.ca_file.clone(), only_the_domain(&server));
    cfg.request_timeout = Duration::from_secs(30);
    let ad = autodiscover(cfg, server.addr.port(), None);
    let start = Instant::now();
    let err = ad.ews_url("ann@contoso.test").await.unwrap_err();
    // Refused on the header: waiting for the body would have taken the whole timeout.
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert!(err.to_string().contains("64 MiB limit"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalling_server_costs_one_timeout_per_autodiscover_candidate() {
    let timeout = Duration::from_secs(2);
    // Each step stays under a timeout of its own: the handshake waits 1.5 s, the 401 takes
    // about 1.3 s, and only the authenticated answer never ends. Timed step by step, each
    // https candidate would cost about 2.5 timeouts.
    let paced = hostile::start(
        &[DOMAIN, AUTODISCOVER_HOST],
        Reply::Paced {
            handshake_delay: Duration::from_millis(1500),
            every: Duration::from_millis(15),
        },
    )
    .await;
    // The plain-http candidate: one byte every two seconds.
    let slow_http = hostile::start(
        &[],
        Reply::Trickle {
            every: Duration::from_secs(2),
        },
    )
    .await;
    let mut cfg = config(
        paced.ca_file.clone(),
        Resolve::new()
            .with(DOMAIN, paced.addr)
            .with(AUTODISCOVER_HOST, paced.addr)
            .with(
                &format!("{AUTODISCOVER_HOST}:{}", slow_http.addr.port()),
                slow_http.addr,
            ),
    );
    cfg.connect_timeout = timeout;
    cfg.request_timeout = timeout;
    let ad = autodiscover(cfg, paced.addr.port(), Some(slow_http.addr.port()));
    let start = Instant::now();
    let err = ad.ews_url("ann@contoso.test").await.unwrap_err();
    let elapsed = start.elapsed();
    let text = err.to_string();
    // Three candidates (the domain, autodiscover.<domain>, plain http), one timeout each.
    assert!(
        elapsed < timeout * 3 + Duration::from_millis(1500),
        "{elapsed:?}: {text}"
    );
    assert!(
        text.contains("did not complete its reply within 2s"),
        "{text}"
    );
    assert_eq!(paced.connections(), 2, "{text}");
    assert_eq!(slow_http.connections(), 1, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_ews_server_costs_one_timeout_not_one_per_retry() {
    let server = hostile::start(
        &["mail.contoso.test"],
        Reply::Trickle {
            every: Duration::from_secs(2),
        },
    )
    .await;
    let timeout = Duration::from_secs(3);
    let mut cfg = config(
        server.ca_file.clone(),
        Resolve::new().with("mail.contoso.test", server.addr),
    );
    cfg.request_timeout = timeout;
    let client = EwsClient::new(cfg).unwrap();
    let url = Url::parse(&format!(
        "https://mail.contoso.test:{}/EWS/Exchange.asmx",
        server.addr.port()
    ))
    .unwrap();
    let start = Instant::now();
    let err = client
        .mailbox("ann@contoso.test", url)
        .calendar_folder()
        .await
        .unwrap_err();
    let elapsed = start.elapsed();
    assert!(matches!(err, EwsError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("mail.contoso.test"), "{err}");
    assert!(elapsed < timeout * 2, "{elapsed:?}");
    assert_eq!(server.requests(), 1);
}

/// A server for names outside the allow-list: whatever reaches it is counted.
async fn evil() -> (Hostile, Resolve) {
    let server = hostile::start(
        &[],
        Reply::Raw(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()),
    )
    .await;
    let resolve = Resolve::new()
        .with("evil.test", server.addr)
        .with("autodiscover.evil.test", server.addr);
    (server, resolve)
}

const TRICK_ADDRESSES: [&str; 2] = [
    "user1@evil.test#.contoso.test",
    "user1@evil.test?.contoso.test",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crafted_own_address_sends_nothing_outside_the_allow_list() {
    let (evil, resolve) = evil().await;
    let resolve = resolve
        .with(DOMAIN, closed())
        .with(AUTODISCOVER_HOST, closed());
    let ad = autodiscover(config(None, resolve), 443, None);
    for address in TRICK_ADDRESSES {
        let err = ad.ews_url(address).await.unwrap_err();
        assert_eq!(
            evil.connections(),
            0,
            "{address}: a request reached evil.test ({err})"
        );
        assert!(
            err.to_string().contains("is not an e-mail address"),
            "{address}: {err}"
        );
    }
}

fn pox_account(inner: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\
<Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a\">\
<Account>{inner}</Account></Response></Autodiscover>"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crafted_redirect_address_sends_nothing_outside_the_allow_list() {
    for address in TRICK_ADDRESSES {
        let (evil, resolve) = evil().await;
        let answer = pox_account(&format!(
            "<Action>redirectAddr</Action><RedirectAddr>{address}</RedirectAddr>"
        ));
        let server = hostile::start(&[DOMAIN], Reply::Body(answer)).await;
        let resolve = resolve
            .with(DOMAIN, server.addr)
            .with(AUTODISCOVER_HOST, closed())
            .with(&format!("{AUTODISCOVER_HOST}:80"), closed());
        let ad = autodiscover(
            config(server.ca_file.clone(), resolve),
            server.addr.port(),
            None,
        );
        let err = ad.ews_url("ann@contoso.test").await.unwrap_err();
        assert_eq!(
            evil.connections(),
            0,
            "{address}: a request reached evil.test ({err})"
        );
        assert!(
            err.to_string().contains("is not an e-mail address"),
            "{address}: {err}"
        );
        assert_eq!(server.requests(), 1, "{address}");
    }
}

/// URLs whose text contains an allowed domain but whose host is evil.test.
const TRICK_URLS: [&str; 4] = [
    "https://evil.test#.contoso.test/autodiscover/autodiscover.xml",
    "https://evil.test?.contoso.test/autodiscover/autodiscover.xml",
    "https://contoso.test@evil.test/autodiscover/autodiscover.xml",
    "https://evil.test\\.contoso.test/autodiscover/autodiscover.xml",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_redirect_urls_and_locations_send_nothing_outside_the_allow_list() {
    for url in TRICK_URLS {
        let (evil, resolve) = evil().await;
        // A redirectUrl answer from the domain's own endpoint…
        let answer = pox_account(&format!(
            "<Action>redirectUrl</Action><RedirectUrl>{}</RedirectUrl>",
            url.replace('&', "&amp;")
        ));
        let server = hostile::start(&[DOMAIN], Reply::Body(answer)).await;
        // …and an http Location from the plain-http candidate.
        let location =
            format!("HTTP/1.1 302 Found\r\nLocation: {url}\r\nContent-Length: 0\r\n\r\n");
        let http = hostile::start(&[], Reply::Raw(location.into_bytes())).await;
        let resolve = resolve
            .with(DOMAIN, server.addr)
            .with(AUTODISCOVER_HOST, closed())
            .with(
                &format!("{AUTODISCOVER_HOST}:{}", http.addr.port()),
                http.addr,
            );
        let ad = autodiscover(
            config(server.ca_file.clone(), resolve),
            server.addr.port(),
            Some(http.addr.port()),
        );
        let err = ad.ews_url("ann@contoso.test").await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("outside the allow-list"), "{url}: {text}");
        assert_eq!(server.requests(), 1, "{url}: {text}");
        assert_eq!(http.requests(), 1, "{url}: {text}");
        assert_eq!(evil.connections(), 0, "{url}: a request reached evil.test");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_srv_targets_send_nothing_outside_the_allow_list() {
    let (evil, resolve) = evil().await;
    let resolve = resolve
        .with(DOMAIN, closed())
        .with(AUTODISCOVER_HOST, closed());
    let mut srv = StaticSrv::default();
    srv.records.insert(
        format!("_autodiscover._tcp.{DOMAIN}"),
        [
            "evil.test#.contoso.test",
            "evil.test?.contoso.test",
            "evil.test/.contoso.test",
        ]
        .into_iter()
        .map(|target| SrvRecord {
            priority: 0,
            weight: 0,
            port: 443,
            target: target.into(),
        })
        .collect(),
    );
    let client = EwsClient::new(config(None, resolve)).unwrap();
    let mut ad = AutodiscoverConfig::new(AllowList::new([DOMAIN]));
    ad.srv = Arc::new(srv);
    ad.http_port = Some(closed().port());
    let ad = Autodiscover::new(Arc::clone(client.http()), ad);
    let err = ad.ews_url("ann@contoso.test").await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("is not a host name"), "{text}");
    assert_eq!(evil.connections(), 0, "a request reached evil.test");
}
