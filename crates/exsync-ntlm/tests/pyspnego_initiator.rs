//! An independent initiator against our acceptor: pyspnego as the client
//! (tests/interop/ntlm/ntlm_client.py), tokens passed over stdin/stdout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use exsync_ntlm::{
    Acceptor, AuthenticatedUser, ChannelBinding, NtlmError, UserTable, VerifyPolicy,
};

fn store() -> UserTable {
    UserTable::new().with_password("CONTOSO", "svc-sync", "Passw0rd!")
}

/// Runs pyspnego's client through one handshake with our acceptor.
fn pyspnego_logon(
    account: &str,
    password: &str,
    client_cert: Option<&Path>,
    lm_compat_level: Option<&str>,
    policy: &VerifyPolicy,
) -> Result<AuthenticatedUser, NtlmError> {
    let mut command = Command::new(common::python());
    command
        .arg(common::helper("ntlm_client.py"))
        .args([account, password])
        .env("NETBIOS_COMPUTER_NAME", "PYCLIENT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(path) = client_cert {
        command.arg(path);
    }
    if let Some(level) = lm_compat_level {
        command.env("LM_COMPAT_LEVEL", level);
    }
    let mut child = command.spawn().expect("start the pyspnego client");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut read_token = || {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        STANDARD
            .decode(line.trim())
            .unwrap_or_else(|_| panic!("pyspnego printed {line:?}"))
    };

    let mut acceptor = Acceptor::new(store());
    let negotiate = read_token();
    let challenge = acceptor.challenge_message(&negotiate).unwrap();
    writeln!(stdin, "{}", STANDARD.encode(&challenge)).unwrap();
    stdin.flush().unwrap();
    let authenticate = read_token();
    assert!(child.wait().unwrap().success());
    acceptor.verify(&authenticate, policy)
}

fn rcgen_cert(dir: &Path, name: &str) -> (std::path::PathBuf, ChannelBinding) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let path = dir.join(format!("{name}.der"));
    std::fs::write(&path, cert.der()).unwrap();
    (
        path,
        ChannelBinding::tls_server_end_point(cert.der()).unwrap(),
    )
}

#[test]
fn we_accept_pyspnego_with_the_right_password_and_channel_binding() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, binding) = rcgen_cert(dir.path(), "mail.contoso.com");
    let user = pyspnego_logon(
        "CONTOSO\\svc-sync",
        "Passw0rd!",
        Some(&cert),
        None,
        &VerifyPolicy::extended_protection(binding),
    )
    .unwrap();
    assert_eq!(user.domain, "CONTOSO");
    assert_eq!(user.username, "svc-sync");
    assert_eq!(user.workstation, "PYCLIENT");
    assert!(user.channel_bound);
}

#[test]
fn we_refuse_pyspnego_with_a_wrong_password() {
    let err = pyspnego_logon(
        "CONTOSO\\svc-sync",
        "wrong",
        None,
        None,
        &VerifyPolicy::without_channel_binding(),
    )
    .unwrap_err();
    assert_eq!(err, NtlmError::WrongPassword);
}

#[test]
fn we_refuse_pyspnego_bound_to_another_certificate_or_unbound() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ours) = rcgen_cert(dir.path(), "mail.contoso.com");
    let (theirs, _) = rcgen_cert(dir.path(), "proxy.example.net");
    let policy = VerifyPolicy::extended_protection(ours);
    let err = pyspnego_logon(
        "CONTOSO\\svc-sync",
        "Passw0rd!",
        Some(&theirs),
        None,
        &policy,
    )
    .unwrap_err();
    assert_eq!(err, NtlmError::ChannelBindingMismatch);
    let err = pyspnego_logon("CONTOSO\\svc-sync", "Passw0rd!", None, None, &policy).unwrap_err();
    assert_eq!(err, NtlmError::ChannelBindingMissing);
}

#[test]
fn we_refuse_pyspnego_speaking_ntlmv1() {
    // LM_COMPAT_LEVEL 1 makes pyspnego send NTLMv1 (with extended session security).
    let err = pyspnego_logon(
        "CONTOSO\\svc-sync",
        "Passw0rd!",
        None,
        Some("1"),
        &VerifyPolicy::without_channel_binding(),
    )
    .unwrap_err();
    assert_eq!(err, NtlmError::NtlmV1Refused);
}
