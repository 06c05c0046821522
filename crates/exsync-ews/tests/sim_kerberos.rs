//! Kerberos (Negotiate) between our EWS client and the Exchange simulator, both using a real MIT
//! KDC started on 127.0.0.1. One test, because `KRB5_CONFIG` is process-wide.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::sim::{with_kdc, Sim, DOMAIN, MAIL_HOST};
use exsync_ews::{AuthMode, Credentials, EwsClient, EwsError, Scheme};
use exsync_gss::Problem;
use exsync_testkit::kdc::{Kdc, KdcOptions, PASSWORD};

fn kerberos_config(sim: &Sim, kdc: &Kdc, auth: AuthMode, keytab: bool) -> exsync_ews::EwsConfig {
    let keytab = keytab.then(|| kdc.client_keytab.clone());
    sim.kerberos_config(auth, &kdc.user_principal(), PASSWORD, keytab)
}

fn kerberos_error(err: EwsError) -> exsync_gss::KrbError {
    match err {
        EwsError::Kerberos { error, .. } => error,
        other => panic!("expected a Kerberos error, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kerberos_to_the_simulator() {
    let Some((kdc, sim)) = with_kdc(
        KdcOptions {
            ..KdcOptions::default()
        },
        "negotiate,ntlm,basic",
        true,
    ) else {
        return;
    };

    // Password, under Extended Protection (the binding matched, or the simulator would have
    // refused), auto choosing Kerberos over the Basic and NTLM also offered.
    let client = EwsClient::new(kerberos_config(&sim, &kdc, AuthMode::Auto, false)).unwrap();
    let mb = client.mailbox(&sim.allowed_mailbox(), sim.ews_url());
    for _ in 0..3 {
        mb.calendar_folder().await.unwrap();
    }
    assert_eq!(client.http().pinned(MAIL_HOST), Some(Scheme::Negotiate));
    let status = client.http().kerberos_status().await.unwrap();
    assert_eq!(status.principal, kdc.user_principal());
    assert!(status.lifetime_secs.unwrap() > 3600, "{status:?}");
    // Kerberos authenticates each request: every call carried a ticket.
    let counters = sim.counters().await;
    assert_eq!(
        counters["authorization_headers_per_host"][MAIL_HOST].as_u64(),
        Some(3),
        "{counters}"
    );

    // Keytab.
    let client = EwsClient::new(kerberos_config(&sim, &kdc, AuthMode::Kerberos, true)).unwrap();
    client
        .mailbox(&sim.allowed_mailbox(), sim.ews_url())
        .calendar_folder()
        .await
        .unwrap();

    // Without a realm configured, auto keeps the seeds' order (Basic first).
    let mut cfg = sim.config(AuthMode::Auto, None);
    cfg.credentials = Credentials::new(sim.username(), sim.password());
    let client = EwsClient::new(cfg).unwrap();
    client
        .mailbox(&sim.allowed_mailbox(), sim.ews_url())
        .calendar_folder()
        .await
        .unwrap();
    assert_eq!(client.http().pinned(MAIL_HOST), Some(Scheme::Basic));

    // Wrong password: named, with the fix, and the password nowhere in the message.
    let mut cfg = kerberos_config(&sim, &kdc, AuthMode::Kerberos, false);
    cfg.credentials = Credentials::new(kdc.user_principal(), "Wr0ng-Kerb-XYZ");
    let err = sim.calendar_error(cfg).await;
    let text = format!("{err} {err:?}");
    assert!(!text.contains("Wr0ng-Kerb-XYZ"), "{text}");
    assert_eq!(kerberos_error(err).problem, Problem::WrongKey, "{text}");

    // Unknown SPN: the domain's own name has no HTTP/ principal in the KDC.
    let url = url::Url::parse(&format!("https://{DOMAIN}:{}/EWS/Exchange.asmx", sim.port)).unwrap();
    let err = EwsClient::new(kerberos_config(&sim, &kdc, AuthMode::Kerberos, false))
        .unwrap()
        .mailbox(&sim.allowed_mailbox(), url)
        .calendar_folder()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&format!("setspn -s http/{DOMAIN}")), "{text}");
    assert_eq!(kerberos_error(err).problem, Problem::UnknownService);
}
