//! TLS, authentication, pinning, name-resolution override and impersonation against the
//! simulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::sim::{Sim, SimOptions, MAIL_HOST};
use exsync_ews::Scheme;
use exsync_ews::{AuthMode, Credentials, EwsClient, EwsError};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_prefers_basic_and_pins_it() {
    let sim = Sim::start(SimOptions::default());
    let client = EwsClient::new(sim.config(AuthMode::Auto, None)).unwrap();
    let mb = client.mailbox(&sim.allowed_mailbox(), sim.ews_url());
    mb.calendar_folder().await.unwrap();
    assert_eq!(client.http().pinned(MAIL_HOST), Some(Scheme::Basic));
    // Every connection went to the override address while TLS checked the mail host name:
    // the simulator saw our requests under that Host.
    let counters = sim.counters().await;
    assert!(
        counters["authorization_headers_per_host"][MAIL_HOST]
            .as_u64()
            .unwrap_or(0)
            >= 1,
        "{counters}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntlm_with_channel_binding_keeps_one_connection() {
    let sim = Sim::start(SimOptions {
        auth: "ntlm",
        extended_protection: true,
        ..SimOptions::default()
    });
    let client = EwsClient::new(sim.config(AuthMode::Auto, None)).unwrap();
    let mb = client.mailbox(&sim.allowed_mailbox(), sim.ews_url());
    for _ in 0..5 {
        mb.calendar_folder().await.unwrap();
    }
    assert_eq!(client.http().pinned(MAIL_HOST), Some(Scheme::Ntlm));
    // NTLM authenticates the connection: two legs with Authorization, then the five calls ride
    // the authenticated connection without any.
    let counters = sim.counters().await;
    assert_eq!(
        counters["authorization_headers_per_host"][MAIL_HOST].as_u64(),
        Some(2),
        "{counters}"
    );
    // Explicit NTLM mode works the same.
    let client = EwsClient::new(sim.config(AuthMode::Ntlm, None)).unwrap();
    client
        .mailbox(&sim.allowed_mailbox(), sim.ews_url())
        .calendar_folder()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_names_account_and_host_never_the_password() {
    for auth in ["basic", "ntlm"] {
        let sim = Sim::start(SimOptions {
            auth,
            ..SimOptions::default()
        });
        let mut cfg = sim.config(AuthMode::Auto, None);
        let wrong = "Wr0ng-Passw0rd-XYZ";
        cfg.credentials = Credentials::new(sim.username(), wrong);
        let client = EwsClient::new(cfg).unwrap();
        let err = client
            .mailbox(&sim.allowed_mailbox(), sim.ews_url())
            .calendar_folder()
            .await
            .unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(matches!(err, EwsError::Unauthorized { .. }), "{text}");
        assert!(text.contains(&sim.username()), "{text}");
        assert!(text.contains(MAIL_HOST), "{text}");
        assert!(!text.contains(wrong), "{text}");
        assert!(!text.contains(&sim.password()), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_certificate_is_refused_naming_the_host() {
    let sim = Sim::start(SimOptions::default());
    let mut cfg = sim.config(AuthMode::Basic, None);
    cfg.ca_file = None;
    let client = EwsClient::new(cfg).unwrap();
    let err = client
        .mailbox(&sim.allowed_mailbox(), sim.ews_url())
        .calendar_folder()
        .await
        .unwrap_err();
    match &err {
        EwsError::Tls { host, reason } => {
            assert_eq!(host, MAIL_HOST);
            assert!(reason.contains("not trusted"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // No credentials were sent before the certificate check failed.
    let counters = sim.counters().await;
    assert!(
        counters["authorization_headers_per_host"][MAIL_HOST].is_null(),
        "{counters}"
    );

    // A name the certificate does not cover is refused too, although the CA is trusted.
    let mut cfg = sim.config(AuthMode::Basic, None);
    cfg.resolve = cfg.resolve.with("evil.example", sim.addr());
    let client = EwsClient::new(cfg).unwrap();
    let url = url::Url::parse(&format!(
        "https://evil.example:{}/EWS/Exchange.asmx",
        sim.port
    ))
    .unwrap();
    let err = client
        .mailbox(&sim.allowed_mailbox(), url)
        .calendar_folder()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EwsError::Tls { reason, .. } if reason.contains("not issued for the name")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_go_over_plain_http() {
    let sim = Sim::start(SimOptions::default());
    let client = EwsClient::new(sim.config(AuthMode::Basic, None)).unwrap();
    let url = url::Url::parse(&format!(
        "http://{MAIL_HOST}:{}/EWS/Exchange.asmx",
        sim.port
    ))
    .unwrap();
    let err = client
        .mailbox(&sim.allowed_mailbox(), url)
        .calendar_folder()
        .await
        .unwrap_err();
    assert!(
        matches!(err, EwsError::CredentialsRefused { .. }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_weaker_offer_is_refused() {
    // The host first offers NTLM only; we pin it. Both runs share one data dir (one CA).
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("sim");
    let first = Sim::start(SimOptions {
        auth: "ntlm",
        data_dir: Some(data_dir.clone()),
        ..SimOptions::default()
    });
    let addr = first.addr();
    let client = EwsClient::new(first.config(AuthMode::Auto, None)).unwrap();
    let mb = client.mailbox(&first.allowed_mailbox(), first.ews_url());
    mb.calendar_folder().await.unwrap();
    assert_eq!(client.http().pinned(MAIL_HOST), Some(Scheme::Ntlm));
    // Then the same host (same address, same certificate) offers only Basic.
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = Sim::start(SimOptions {
        auth: "basic",
        listen: Some(addr),
        data_dir: Some(data_dir),
        ..SimOptions::default()
    });
    let err = mb.calendar_folder().await.unwrap_err();
    assert!(matches!(err, EwsError::AuthDowngrade { .. }), "{err:?}");
    assert!(err.to_string().contains("NTLM"), "{err}");
    // The only Authorization it saw is the NTLM NEGOTIATE of the pinned scheme (flags, no
    // secret); no Basic credentials followed the weaker offer.
    let counters = second.counters().await;
    assert_eq!(
        counters["authorization_headers_per_host"][MAIL_HOST].as_u64(),
        Some(1),
        "{counters}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impersonation_errors_are_per_user_with_remediation() {
    let sim = Sim::start(SimOptions::default());
    let client = EwsClient::new(sim.config(AuthMode::Basic, None)).unwrap();
    let denied = sim.denied_mailbox();
    let mb = client.mailbox(&denied, sim.ews_url());
    let err = mb.calendar_folder().await.unwrap_err();
    assert!(err.is_per_user(), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("ErrorImpersonateUserDenied"), "{text}");
    assert!(text.contains("New-ManagementRoleAssignment"), "{text}");
    assert!(text.contains(&denied), "{text}");
    // Other users are unaffected.
    client
        .mailbox(&sim.allowed_mailbox(), sim.ews_url())
        .calendar_folder()
        .await
        .unwrap();
    // Once the admin grants the role, the same user works.
    let (status, body) = sim
        .control(
            "POST",
            "/impersonation",
            Some(json!({"mailbox": denied, "allowed": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    mb.calendar_folder().await.unwrap();

    // Reaching into another user's folder is denied for that user, with the hint.
    let other_folder = client
        .mailbox(&sim.allowed_mailbox(), sim.ews_url())
        .ensure_contacts_folder()
        .await
        .unwrap();
    let err = mb
        .sync_page(
            exsync_core::ItemKind::Contact,
            &other_folder,
            None,
            &Default::default(),
        )
        .await
        .unwrap_err();
    assert!(err.is_per_user(), "{err:?}");
    assert!(err.to_string().contains("ErrorAccessDenied"), "{err}");
    assert!(
        err.to_string().contains("Get-ManagementRoleAssignment"),
        "{err}"
    );

    let missing = client.mailbox("nobody@contoso.test", sim.ews_url());
    let err = missing.ensure_contacts_folder().await.unwrap_err();
    assert!(err.is_per_user(), "{err:?}");
    assert!(err.to_string().contains("ErrorNonExistentMailbox"), "{err}");
}
