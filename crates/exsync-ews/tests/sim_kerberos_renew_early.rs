//! Tickets are renewed before they run out, not after a request failed: with a service account
//! whose tickets live eight seconds, a request made shortly before the end (the ticket still
//! valid) logs in again first, and the server refuses nothing in between; a request made early
//! in the ticket's life reuses it. Its own test binary, because `KRB5_CONFIG` is process-wide.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::sim::kerberos_by_password;
use exsync_ews::EwsClient;
use exsync_testkit::kdc::KdcOptions;

const LIFE_SECS: u32 = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_near_its_end_is_renewed_before_a_request_uses_it() {
    let Some((kdc, sim, cfg)) = kerberos_by_password(KdcOptions {
        user_max_life_secs: Some(LIFE_SECS),
        ..KdcOptions::default()
    }) else {
        return;
    };
    let client = EwsClient::new(cfg).unwrap();
    let mb = client.mailbox(&sim.allowed_mailbox(), sim.ews_url());
    let before_login = kdc.initial_tickets_issued();
    let acquired = Instant::now();
    mb.calendar_folder().await.unwrap();
    let life = client.http().kerberos_status().await.unwrap().lifetime_secs;
    let life = Duration::from_secs(u64::from(life.unwrap()));
    assert!(life <= Duration::from_secs(LIFE_SECS.into()), "{life:?}");
    let logins = kdc.initial_tickets_issued();
    assert_eq!(logins, before_login + 1, "{}", kdc.log());

    // Early in its life the ticket is reused.
    mb.calendar_folder().await.unwrap();
    assert_eq!(
        kdc.initial_tickets_issued(),
        logins,
        "a fresh ticket was not reused: {}",
        kdc.log()
    );

    // Past the renewal point (a quarter of the life before the end) but before the end.
    let refused = |c: &serde_json::Value| c["http_status"]["401"].as_u64().unwrap_or(0);
    let refused_before = refused(&sim.counters().await);
    tokio::time::sleep_until((acquired + life.mul_f64(0.85)).into()).await;
    assert!(
        acquired.elapsed() < life,
        "too slow to test a ticket before its end: {:?} of {life:?}",
        acquired.elapsed()
    );
    mb.calendar_folder().await.unwrap();
    assert_eq!(
        kdc.initial_tickets_issued(),
        logins + 1,
        "the ticket near its end was used instead of renewed: {}",
        kdc.log()
    );
    assert_eq!(
        refused(&sim.counters().await),
        refused_before,
        "a request was refused on the way"
    );
}
