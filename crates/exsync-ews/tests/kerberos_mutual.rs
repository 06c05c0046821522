//! A server that takes our Kerberos ticket but cannot prove it holds the service key (an
//! impostor, or a proxy) gets no reply of ours believed: the client refuses a success reply
//! without the mutual-authentication token, or with a forged one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::fake;
use exsync_ews::testing::HttpConfig;
use exsync_ews::{AuthMode, Credentials, EwsError, HttpClient, KerberosLogin, Resolve};
use exsync_gss::Problem;
use exsync_testkit::kdc::{Kdc, KdcOptions, PASSWORD};

const HOST: &str = "mail.contoso.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_without_the_servers_proof_is_refused() {
    let Some(kdc) = Kdc::start_with(KdcOptions {
        service_host: HOST.into(),
        ..KdcOptions::default()
    }) else {
        return;
    };
    std::env::set_var("KRB5_CONFIG", &kdc.krb5_conf);
    for mutual in [None, Some("Negotiate oYGJMIGGoAMKAQChCwYJKoZIgvcSAQICon")] {
        let server = fake::start_with_challenge(
            &[HOST],
            false,
            "Negotiate",
            Arc::new(move |_s: &fake::Seen| {
                let (status, mut headers, body) = fake::soap_ok("");
                if let Some(v) = mutual {
                    headers.push(("WWW-Authenticate".into(), v.into()));
                }
                (status, headers, body)
            }),
        )
        .await;
        let mut cfg = HttpConfig::new(Credentials::new(kdc.user_principal(), PASSWORD));
        cfg.auth = AuthMode::Kerberos;
        cfg.kerberos = Some(KerberosLogin {
            principal: kdc.user_principal(),
            keytab: None,
            files: None,
        });
        cfg.ca_file = Some(server.ca_file.clone());
        cfg.resolve = Resolve::new().with(HOST, server.addr);
        let client = HttpClient::new(cfg).unwrap();
        let url = url::Url::parse(&format!(
            "https://{HOST}:{}/EWS/Exchange.asmx",
            server.addr.port()
        ))
        .unwrap();
        let err = client.post(&url, "<x/>", &[]).await.unwrap_err();
        let text = err.to_string();
        match err {
            EwsError::Kerberos { error, .. } => {
                assert_eq!(error.problem, Problem::MutualAuth, "{text}")
            }
            other => panic!("expected a mutual-authentication failure, got {other}"),
        }
        // The ticket did go (the server could not use it), and no scheme was pinned.
        assert!(server.seen.lock().unwrap().iter().any(|s| s
            .authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Negotiate "))));
        assert_eq!(client.pinned(HOST), None);
    }
}
