//! A clock skew between the KDC and the acceptor, against a real MIT KDC whose clock runs ahead
//! (libfaketime). Its own test binary, because `KRB5_CONFIG` is process-wide.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use exsync_gss::{
    Accepted, Acceptor, AcceptorCredential, ClientCredential, ClientSecret, Initiator, Problem,
};
use exsync_testkit::kdc::{Kdc, KdcOptions, PASSWORD};

const HOST: &str = "mail.exsync.test";

fn handshake(
    client: &ClientCredential,
    server: &AcceptorCredential,
) -> Result<(), exsync_gss::KrbError> {
    let (mut initiator, token) = Initiator::start(client, HOST, None)?;
    match Acceptor::new(server).step(&token, None) {
        Ok(Accepted::Done { token, .. }) => initiator.finish(&token),
        Ok(Accepted::Continue(_)) => panic!("one round should do for Kerberos"),
        Err(refused) => {
            eprintln!("acceptor: {}", refused.error);
            // The client reads the server's KRB-ERROR as it would from a 401.
            if !refused.token.is_empty() {
                initiator.finish(&refused.token)?;
            }
            Err(refused.error)
        }
    }
}

#[test]
fn clock_skew_is_named_with_its_fix() {
    // The KDC's clock runs two hours ahead, so the tickets it issues are not yet valid for an
    // acceptor with the right time.
    let Some(kdc) = Kdc::start_with(KdcOptions {
        clock_ahead_secs: Some(7200),
        ..KdcOptions::default()
    }) else {
        return;
    };
    std::env::set_var("KRB5_CONFIG", &kdc.krb5_conf);
    let principal = kdc.user_principal();
    let server = AcceptorCredential::from_keytab(&kdc.service_keytab).unwrap();
    let client =
        ClientCredential::acquire(&principal, &ClientSecret::Password(PASSWORD.into())).unwrap();
    let err = handshake(&client, &server).unwrap_err();
    assert_eq!(err.problem, Problem::ClockSkew, "{err}");
    assert!(err.to_string().contains("NTP"), "{err}");
}
