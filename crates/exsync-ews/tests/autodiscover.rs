//! Each Autodiscover security rule, against the simulator and, where a host outside the test domain
//! must present a valid certificate, a scripted server. The simulator's counters show where
//! Authorization headers went.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use url::Url;

use common::fake;
use common::sim::{Sim, SimOptions, DOMAIN, MAIL_HOST};
use exsync_ews::{AllowList, Autodiscover, AutodiscoverConfig, MailboxLocation};
use exsync_ews::{AuthMode, EwsClient, EwsError, Resolve};
use exsync_ews::{SrvRecord, StaticSrv};

const AUTODISCOVER_HOST: &str = "autodiscover.contoso.test";

fn closed() -> SocketAddr {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    SocketAddr::from(([127, 0, 0, 1], 1))
}

fn http_port(sim: &Sim) -> u16 {
    sim.info["http_port"].as_u64().unwrap() as u16
}

struct Setup {
    resolve: Resolve,
    srv: StaticSrv,
    configured: Option<Url>,
    ttl: Duration,
    ca_file: Option<std::path::PathBuf>,
}

impl Setup {
    fn new(sim: &Sim) -> Setup {
        let resolve = sim.resolve().with(
            &format!("{AUTODISCOVER_HOST}:{}", http_port(sim)),
            SocketAddr::from(([127, 0, 0, 1], http_port(sim))),
        );
        Setup {
            resolve,
            srv: StaticSrv::default(),
            configured: None,
            ttl: Duration::from_secs(3600),
            ca_file: None,
        }
    }

    fn build(self, sim: &Sim) -> (Arc<EwsClient>, Autodiscover) {
        let mut cfg = sim.config(AuthMode::Basic, None);
        cfg.resolve = self.resolve;
        if let Some(ca) = self.ca_file {
            cfg.ca_file = Some(ca);
        }
        let client = EwsClient::new(cfg).unwrap();
        let mut ad = AutodiscoverConfig::new(AllowList::new([DOMAIN]));
        ad.configured = self.configured;
        ad.ttl = self.ttl;
        ad.srv = Arc::new(self.srv);
        ad.https_port = Some(sim.port);
        ad.http_port = Some(http_port(sim));
        let autodiscover = Autodiscover::new(Arc::clone(client.http()), ad);
        (client, autodiscover)
    }
}

fn sim() -> Sim {
    Sim::start(SimOptions {
        http_listen: true,
        ..SimOptions::default()
    })
}

fn expected_ews(sim: &Sim) -> Url {
    Url::parse(&format!(
        "https://{MAIL_HOST}:{}/EWS/Exchange.asmx",
        sim.port
    ))
    .unwrap()
}

fn auth_hosts(counters: &Value) -> HashMap<String, u64> {
    counters["authorization_headers_per_host"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

async fn redirect(sim: &Sim, body: Value) {
    let (status, reply) = sim.control("POST", "/autodiscover", Some(body)).await;
    assert_eq!(status, 200, "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_url_wins_and_nothing_is_asked() {
    let sim = sim();
    let mut setup = Setup::new(&sim);
    let configured = Url::parse("https://ews.contoso.test/EWS/Exchange.asmx").unwrap();
    setup.configured = Some(configured.clone());
    let (_, ad) = setup.build(&sim);
    assert_eq!(
        ad.ews_url(&sim.allowed_mailbox()).await.unwrap(),
        configured
    );
    assert!(auth_hosts(&sim.counters().await).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_in_order_and_the_result_works_for_ews() {
    let sim = sim();
    let user = sim.allowed_mailbox();
    // The domain itself answers first.
    let (client, ad) = Setup::new(&sim).build(&sim);
    let url = ad.ews_url(&user).await.unwrap();
    assert_eq!(url, expected_ews(&sim));
    let hosts = auth_hosts(&sim.counters().await);
    assert!(
        hosts.contains_key(DOMAIN) && !hosts.contains_key(AUTODISCOVER_HOST),
        "{hosts:?}"
    );
    // And the URL is usable.
    client.mailbox(&user, url).calendar_folder().await.unwrap();

    // With the domain unreachable, autodiscover.<domain> is next.
    sim.control("DELETE", "/counters", None).await;
    let mut setup = Setup::new(&sim);
    setup.resolve.insert(DOMAIN, closed());
    let (_, ad) = setup.build(&sim);
    assert_eq!(ad.ews_url(&user).await.unwrap(), expected_ews(&sim));
    let hosts = auth_hosts(&sim.counters().await);
    assert!(hosts.contains_key(AUTODISCOVER_HOST), "{hosts:?}");
}

fn https_candidates_closed(sim: &Sim) -> Setup {
    let mut setup = Setup::new(sim);
    setup.resolve.insert(DOMAIN, closed());
    setup.resolve.insert(AUTODISCOVER_HOST, closed());
    setup
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_step_is_anonymous_and_follows_only_https_into_the_allow_list() {
    let sim = sim();
    let user = sim.allowed_mailbox();
    // An https Location inside the allow-list is followed.
    redirect(
        &sim,
        json!({"http_redirect": format!("https://{MAIL_HOST}:{}/autodiscover/autodiscover.xml", sim.port)}),
    )
    .await;
    let (_, ad) = https_candidates_closed(&sim).build(&sim);
    assert_eq!(ad.ews_url(&user).await.unwrap(), expected_ews(&sim));
    let hosts = auth_hosts(&sim.counters().await);
    assert_eq!(
        hosts.keys().collect::<Vec<_>>(),
        vec![MAIL_HOST],
        "{hosts:?}"
    );

    // An http Location is not.
    redirect(
        &sim,
        json!({"http_redirect": format!("http://{MAIL_HOST}:{}/autodiscover/autodiscover.xml", sim.port)}),
    )
    .await;
    let (_, ad) = https_candidates_closed(&sim).build(&sim);
    let err = ad.ews_url(&user).await.unwrap_err();
    assert!(err.to_string().contains("not https"), "{err}");

    // Nor one outside the allow-list, even with a certificate valid for it.
    let evil = fake::start(
        &["evil.example"],
        false,
        Arc::new(|_s: &fake::Seen| fake::soap_ok("")),
    )
    .await;
    redirect(
        &sim,
        json!({"http_redirect": format!("https://evil.example:{}/autodiscover/autodiscover.xml", evil.addr.port())}),
    )
    .await;
    sim.control("DELETE", "/counters", None).await;
    let mut setup = https_candidates_closed(&sim);
    setup.resolve.insert("evil.example", evil.addr);
    setup.ca_file = Some(evil.ca_file.clone());
    let (_, ad) = setup.build(&sim);
    let err = ad.ews_url(&user).await.unwrap_err();
    assert!(err.to_string().contains("outside the allow-list"), "{err}");
    assert!(
        evil.seen.lock().unwrap().is_empty(),
        "a request reached evil.example"
    );
    assert!(auth_hosts(&sim.counters().await).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_url_outside_the_allow_list_is_refused() {
    let sim = sim();
    let user = sim.allowed_mailbox();
    let evil = fake::start(
        &["evil.example"],
        false,
        Arc::new(|_s: &fake::Seen| fake::soap_ok("")),
    )
    .await;
    redirect(
        &sim,
        json!({"mailbox": user, "redirect_url": format!("https://evil.example:{}/autodiscover/autodiscover.xml", evil.addr.port())}),
    )
    .await;
    let mut setup = Setup::new(&sim);
    setup.resolve.insert("evil.example", evil.addr);
    let (_, ad) = setup.build(&sim);
    let err = ad.ews_url(&user).await.unwrap_err();
    assert!(err.to_string().contains("outside the allow-list"), "{err}");
    assert!(evil.seen.lock().unwrap().is_empty());
    let hosts = auth_hosts(&sim.counters().await);
    assert!(!hosts.contains_key("evil.example"), "{hosts:?}");
    assert!(hosts.keys().all(|h| h.ends_with(DOMAIN)), "{hosts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_addr_is_followed_only_inside_the_allow_list() {
    let sim = sim();
    let user = sim.allowed_mailbox();
    let other = sim.denied_mailbox();
    // Within the domain: restart with the new address.
    redirect(&sim, json!({"mailbox": user, "redirect_addr": other})).await;
    let (_, ad) = Setup::new(&sim).build(&sim);
    assert_eq!(ad.ews_url(&user).await.unwrap(), expected_ews(&sim));
    // Into a foreign domain: refused before anything is sent there.
    redirect(
        &sim,
        json!({"mailbox": user, "redirect_addr": "ceo@evil.example"}),
    )
    .await;
    let (_, ad) = Setup::new(&sim).build(&sim);
    let err = ad.ews_url(&user).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("evil.example is not in the allow-list"),
        "{err}"
    );
    // A mailbox in a domain outside the allow-list is never looked up at all.
    sim.control("DELETE", "/counters", None).await;
    let err = ad.ews_url("someone@fabrikam.test").await.unwrap_err();
    assert!(matches!(err, EwsError::Autodiscover { .. }), "{err:?}");
    assert!(auth_hosts(&sim.counters().await).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_loops_are_detected() {
    let sim = sim();
    let user = sim.allowed_mailbox();
    redirect(
        &sim,
        json!({"mailbox": user, "redirect_url": format!("https://{DOMAIN}:{}/autodiscover/autodiscover.xml", sim.port)}),
    )
    .await;
    let (_, ad) = Setup::new(&sim).build(&sim);
    let err = ad.ews_url(&user).await.unwrap_err();
    assert!(err.to_string().contains("redirect loop"), "{err}");
    // Each URL was asked once, not in circles.
    let hosts = auth_hosts(&sim.counters().await);
    assert!(hosts.get(DOMAIN).copied().unwrap_or(0) <= 2, "{hosts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_ten_redirects() {
    let hops = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hops);
    let server = fake::start(
        &[DOMAIN, AUTODISCOVER_HOST, MAIL_HOST],
        false,
        Arc::new(move |_s: &fake::Seen| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            (
                302,
                vec![(
                    "Location".into(),
                    format!("/autodiscover/autodiscover.xml?hop={}", n + 1),
                )],
                String::new(),
            )
        }),
    )
    .await;
    let mut cfg =
        exsync_ews::EwsConfig::new(exsync_ews::Credentials::new("svc@contoso.test", "pw"));
    cfg.auth = AuthMode::Basic;
    cfg.ca_file = Some(server.ca_file.clone());
    cfg.resolve = Resolve::new()
        .with(DOMAIN, server.addr)
        .with(AUTODISCOVER_HOST, server.addr)
        .with(MAIL_HOST, server.addr)
        .with(&format!("{AUTODISCOVER_HOST}:80"), closed());
    let client = EwsClient::new(cfg).unwrap();
    let mut ad = AutodiscoverConfig::new(AllowList::new([DOMAIN]));
    ad.https_port = Some(server.addr.port());
    let ad = Autodiscover::new(Arc::clone(client.http()), ad);
    let err = ad.ews_url("ann@contoso.test").await.unwrap_err();
    assert!(err.to_string().contains("more than 10 redirects"), "{err}");
    // The first URL plus ten redirects were asked, then it stopped.
    assert_eq!(hops.load(Ordering::SeqCst), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_targets_are_used_only_inside_the_allow_list() {
    let sim = sim();
    let user = sim.allowed_mailbox();
    let name = format!("_autodiscover._tcp.{DOMAIN}");
    // A foreign SRV target is skipped.
    let mut setup = https_candidates_closed(&sim);
    setup.resolve.insert(
        &format!("{AUTODISCOVER_HOST}:{}", http_port(&sim)),
        closed(),
    );
    setup.resolve.insert("evil.example", sim.addr());
    setup.srv.records.insert(
        name.clone(),
        vec![SrvRecord {
            priority: 0,
            weight: 0,
            port: sim.port,
            target: "evil.example".into(),
        }],
    );
    let (_, ad) = setup.build(&sim);
    let err = ad.ews_url(&user).await.unwrap_err();
    assert!(err.to_string().contains("outside the allow-list"), "{err}");
    assert!(!auth_hosts(&sim.counters().await).contains_key("evil.example"));
    // One inside is used.
    let mut setup = https_candidates_closed(&sim);
    setup.resolve.insert(
        &format!("{AUTODISCOVER_HOST}:{}", http_port(&sim)),
        closed(),
    );
    setup.srv.records.insert(
        name,
        vec![SrvRecord {
            priority: 0,
            weight: 0,
            port: sim.port,
            target: MAIL_HOST.into(),
        }],
    );
    let (_, ad) = setup.build(&sim);
    assert_eq!(ad.ews_url(&user).await.unwrap(), expected_ews(&sim));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_cached_for_the_ttl() {
    let sim = sim();
    let user = sim.allowed_mailbox();
    let mut setup = Setup::new(&sim);
    setup.ttl = Duration::from_millis(400);
    let (_, ad) = setup.build(&sim);
    let total = |v: Value| auth_hosts(&v).values().sum::<u64>();
    ad.ews_url(&user).await.unwrap();
    let after_first = total(sim.counters().await);
    assert!(after_first > 0);
    ad.ews_url(&user).await.unwrap();
    assert_eq!(
        total(sim.counters().await),
        after_first,
        "second lookup was not cached"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    ad.ews_url(&user).await.unwrap();
    assert!(
        total(sim.counters().await) > after_first,
        "expired entry was not refreshed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_never_walk_up_to_a_parent_domain() {
    let sim = sim();
    // sub.contoso.test is inside the allow-list, but nothing there answers; contoso.test (its
    // parent) would, and must not be asked.
    let mut setup = Setup::new(&sim);
    for host in ["sub.contoso.test", "autodiscover.sub.contoso.test"] {
        setup.resolve.insert(host, closed());
    }
    let (_, ad) = setup.build(&sim);
    let err = ad.ews_url("ann@sub.contoso.test").await.unwrap_err();
    assert!(matches!(err, EwsError::Autodiscover { .. }), "{err:?}");
    assert!(auth_hosts(&sim.counters().await).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_mailbox_is_located_online_by_its_routing_address() {
    const ROUTING: &str = "contoso.mail.onmicrosoft.com";
    let sim = sim();
    let moved = sim.allowed_mailbox();
    let stayed = sim.denied_mailbox();
    // A remote mailbox: on-premises Autodiscover answers with its targetAddress.
    let target = format!("{}@{}", moved.split('@').next().unwrap(), ROUTING);
    redirect(&sim, json!({"mailbox": moved, "redirect_addr": target})).await;
    let (_, ad) = Setup::new(&sim).build(&sim);
    sim.control("DELETE", "/counters", None).await;
    assert_eq!(
        ad.locate(&moved, "Contoso.Mail.OnMicrosoft.com")
            .await
            .unwrap(),
        MailboxLocation::Online {
            target: target.clone()
        }
    );
    // Nothing was sent to the routing domain: it is not a place to look mailboxes up.
    let hosts = auth_hosts(&sim.counters().await);
    assert!(hosts.keys().all(|h| h.ends_with(DOMAIN)), "{hosts:?}");
    // A mailbox still on premises is located at its EWS URL.
    assert_eq!(
        ad.locate(&stayed, ROUTING).await.unwrap(),
        MailboxLocation::OnPremises(expected_ews(&sim))
    );
    // Another tenant's routing domain is just a redirect outside the allow-list.
    let err = ad
        .locate(&moved, "fabrikam.mail.onmicrosoft.com")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not in the allow-list"), "{err}");
    // Looking up the EWS URL of a remote mailbox fails the same way, with nothing sent.
    let err = ad.ews_url(&moved).await.unwrap_err();
    assert!(err.to_string().contains("not in the allow-list"), "{err}");
}
