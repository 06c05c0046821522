//! Our initiator against our acceptor.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use exsync_ntlm::{
    Acceptor, ChannelBinding, ChannelBindingPolicy, Credentials, Initiator, NtlmError, UserTable,
    VerifyPolicy, LOGON_FAILURE,
};

fn store() -> UserTable {
    UserTable::new().with_password("CONTOSO", "svc-sync", "Passw0rd!")
}

fn binding(name: &str) -> ChannelBinding {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    ChannelBinding::tls_server_end_point(cert.der()).unwrap()
}

/// Runs the three legs; `tamper` may alter the AUTHENTICATE bytes on the wire.
fn handshake(
    creds: Credentials,
    client_binding: Option<ChannelBinding>,
    policy: &VerifyPolicy,
    tamper: impl FnOnce(&mut Vec<u8>),
) -> Result<exsync_ntlm::AuthenticatedUser, NtlmError> {
    let mut server = Acceptor::new(store());
    let mut client = Initiator::new(creds, client_binding).with_workstation("SYNC01");
    let challenge = server.challenge_message(&client.negotiate_message())?;
    let mut authenticate = client.authenticate_message(&challenge)?;
    tamper(&mut authenticate);
    server.verify(&authenticate, policy)
}

fn right() -> Credentials {
    Credentials::new("CONTOSO", "svc-sync", "Passw0rd!")
}

#[test]
fn right_password_with_matching_channel_binding_logs_on() {
    let cb = binding("mail.contoso.com");
    let user = handshake(
        right(),
        Some(cb.clone()),
        &VerifyPolicy::extended_protection(cb),
        |_| {},
    )
    .unwrap();
    assert_eq!(user.domain, "CONTOSO");
    assert_eq!(user.username, "svc-sync");
    assert_eq!(user.workstation, "SYNC01");
    assert!(user.channel_bound);
}

#[test]
fn user_and_domain_match_case_insensitively() {
    let creds = Credentials::new("contoso", "SVC-SYNC", "Passw0rd!");
    let user = handshake(
        creds,
        None,
        &VerifyPolicy::without_channel_binding(),
        |_| {},
    )
    .unwrap();
    assert_eq!(user.username, "SVC-SYNC");
    assert!(!user.channel_bound);
}

#[test]
fn wrong_password_and_unknown_user_are_one_logon_failure() {
    let wrong = handshake(
        Credentials::new("CONTOSO", "svc-sync", "passw0rd!"),
        None,
        &VerifyPolicy::without_channel_binding(),
        |_| {},
    )
    .unwrap_err();
    let unknown = handshake(
        Credentials::new("CONTOSO", "nobody", "Passw0rd!"),
        None,
        &VerifyPolicy::without_channel_binding(),
        |_| {},
    )
    .unwrap_err();
    assert_eq!(wrong, NtlmError::WrongPassword);
    assert_eq!(unknown, NtlmError::UnknownUser);
    assert!(wrong.is_logon_failure() && unknown.is_logon_failure());
    assert_eq!(wrong.to_string(), unknown.to_string());
    assert_eq!(wrong.to_string(), LOGON_FAILURE);
}

#[test]
fn tampered_mic_is_rejected() {
    let err = handshake(
        right(),
        None,
        &VerifyPolicy::without_channel_binding(),
        |m| {
            m[72] ^= 0x01;
        },
    )
    .unwrap_err();
    assert_eq!(err, NtlmError::BadMic);
}

#[test]
fn tampering_with_a_field_only_the_mic_covers_is_rejected() {
    // The workstation name is outside the NTLMv2 proof; only the MIC protects it.
    let err = handshake(
        right(),
        None,
        &VerifyPolicy::without_channel_binding(),
        |m| {
            let name: Vec<u8> = "SYNC01".encode_utf16().flat_map(u16::to_le_bytes).collect();
            let at = m
                .windows(name.len())
                .position(|w| w == name.as_slice())
                .unwrap();
            m[at] = b'X';
        },
    )
    .unwrap_err();
    assert_eq!(err, NtlmError::BadMic);
}

#[test]
fn tampering_with_the_proof_is_a_logon_failure() {
    let err = handshake(
        right(),
        None,
        &VerifyPolicy::without_channel_binding(),
        |m| {
            let last = m.len() - 20;
            m[last] ^= 0x80;
        },
    )
    .unwrap_err();
    assert!(err.is_logon_failure(), "{err:?}");
}

#[test]
fn channel_binding_of_another_certificate_is_rejected() {
    let err = handshake(
        right(),
        Some(binding("proxy.example.net")),
        &VerifyPolicy::extended_protection(binding("mail.contoso.com")),
        |_| {},
    )
    .unwrap_err();
    assert_eq!(err, NtlmError::ChannelBindingMismatch);
}

#[test]
fn missing_channel_binding_is_rejected_when_required_and_allowed_when_accepted() {
    let cb = binding("mail.contoso.com");
    let err = handshake(
        right(),
        None,
        &VerifyPolicy::extended_protection(cb.clone()),
        |_| {},
    )
    .unwrap_err();
    assert_eq!(err, NtlmError::ChannelBindingMissing);

    let accept = VerifyPolicy {
        channel_binding: ChannelBindingPolicy::Accept(cb.clone()),
        require_mic: true,
    };
    let user = handshake(right(), None, &accept, |_| {}).unwrap();
    assert!(!user.channel_bound);
    let err = handshake(right(), Some(binding("other")), &accept, |_| {}).unwrap_err();
    assert_eq!(err, NtlmError::ChannelBindingMismatch);
}

#[test]
fn a_handshake_is_spent_after_one_verify() {
    let mut server = Acceptor::new(store());
    let mut client = Initiator::new(right(), None);
    let challenge = server
        .challenge_message(&client.negotiate_message())
        .unwrap();
    let authenticate = client.authenticate_message(&challenge).unwrap();
    let policy = VerifyPolicy::without_channel_binding();
    server.verify(&authenticate, &policy).unwrap();
    assert!(matches!(
        server.verify(&authenticate, &policy),
        Err(NtlmError::OutOfOrder(_))
    ));
}

#[test]
fn a_replayed_authenticate_fails_against_a_new_challenge() {
    let mut server = Acceptor::new(store());
    let mut client = Initiator::new(right(), None);
    let negotiate = client.negotiate_message();
    let challenge = server.challenge_message(&negotiate).unwrap();
    let authenticate = client.authenticate_message(&challenge).unwrap();
    server.challenge_message(&negotiate).unwrap();
    let err = server
        .verify(&authenticate, &VerifyPolicy::without_channel_binding())
        .unwrap_err();
    assert_eq!(err, NtlmError::WrongPassword);
}

#[test]
fn authenticate_before_negotiate_is_out_of_order() {
    let mut server = Acceptor::new(store());
    let mut other = Initiator::new(right(), None);
    let challenge = server
        .challenge_message(&other.negotiate_message())
        .unwrap();
    let mut client = Initiator::new(right(), None);
    assert!(matches!(
        client.authenticate_message(&challenge),
        Err(NtlmError::OutOfOrder(_))
    ));
}
