//! Tickets are renewed: with a service account whose tickets live six seconds, a request after
//! they expired still succeeds, because the client logged in again (the KDC issued a second
//! initial ticket). Its own test binary, because `KRB5_CONFIG` is process-wide.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::sim::kerberos_by_password;
use exsync_ews::EwsClient;
use exsync_testkit::kdc::KdcOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_ticket_is_replaced_by_a_new_login() {
    let Some((kdc, sim, cfg)) = kerberos_by_password(KdcOptions {
        user_max_life_secs: Some(6),
        ..KdcOptions::default()
    }) else {
        return;
    };
    let client = EwsClient::new(cfg).unwrap();
    let mb = client.mailbox(&sim.allowed_mailbox(), sim.ews_url());
    mb.calendar_folder().await.unwrap();
    let lifetime = client.http().kerberos_status().await.unwrap().lifetime_secs;
    assert!(lifetime.unwrap_or(0) <= 6, "{lifetime:?}");
    let logins = kdc.initial_tickets_issued();
    tokio::time::sleep(Duration::from_secs(7)).await;
    mb.calendar_folder().await.unwrap();
    assert!(
        kdc.initial_tickets_issued() > logins,
        "no new login after the ticket expired: {}",
        kdc.log()
    );
}
