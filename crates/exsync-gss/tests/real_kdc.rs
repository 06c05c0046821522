//! Our initiator and acceptor against a real MIT KDC on 127.0.0.1, and our initiator against two
//! independent acceptors with the service keytab: python-gssapi, and pyspnego from the interop
//! venv. One KDC serves every case, in one
//! test, because `KRB5_CONFIG` is process-wide.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use exsync_gss::{
    Accepted, Acceptor, AcceptorCredential, ClientCredential, ClientSecret, Initiator, Problem,
};
use exsync_testkit::kdc::{self, Kdc, PASSWORD};

const HOST: &str = "mail.exsync.test";
const BINDING: &[u8] = b"tls-server-end-point:0123456789abcdef0123456789abcdef";

fn handshake(
    client: &ClientCredential,
    server: &AcceptorCredential,
    host: &str,
    client_binding: Option<&[u8]>,
    server_binding: Option<&[u8]>,
) -> Result<(String, bool), exsync_gss::KrbError> {
    let (mut initiator, token) =
        Initiator::start(client, host, client_binding.map(<[u8]>::to_vec))?;
    let mut acceptor = Acceptor::new(server);
    match acceptor.step(&token, server_binding) {
        Ok(Accepted::Done {
            client,
            token,
            channel_bound,
        }) => {
            initiator.finish(&token)?;
            assert!(initiator.is_complete());
            Ok((client, channel_bound))
        }
        Ok(Accepted::Continue(_)) => panic!("one round should do for Kerberos"),
        Err(refused) => {
            // What the client makes of the server's KRB-ERROR, as it would over HTTP: a
            // specific reason wins over the acceptor's view, a generic one does not.
            if !refused.token.is_empty() {
                if let Err(e) = initiator.finish(&refused.token) {
                    if e.problem != Problem::Other {
                        return Err(e);
                    }
                }
            }
            Err(refused.error)
        }
    }
}

#[test]
fn client_and_acceptor_against_a_real_kdc() {
    let Some(kdc) = Kdc::start() else { return };
    eprintln!("KDC started in {:?}", kdc.start_time);
    std::env::set_var("KRB5_CONFIG", &kdc.krb5_conf);
    let principal = kdc.user_principal();
    let server = AcceptorCredential::from_keytab(&kdc.service_keytab).unwrap();

    // Password.
    let by_password =
        ClientCredential::acquire(&principal, &ClientSecret::Password(PASSWORD.into())).unwrap();
    let lifetime = by_password.lifetime_secs().unwrap();
    assert!(lifetime > 3600, "TGT lifetime {lifetime}");
    let (client, bound) = handshake(&by_password, &server, HOST, None, None).unwrap();
    assert_eq!(client, principal);
    assert!(!bound);

    // Keytab.
    let by_keytab =
        ClientCredential::acquire(&principal, &ClientSecret::Keytab(kdc.client_keytab.clone()))
            .unwrap();
    let (client, _) = handshake(&by_keytab, &server, HOST, None, None).unwrap();
    assert_eq!(client, principal);

    // Channel binding: matching is checked and reported; a different one is refused.
    let (_, bound) = handshake(&by_password, &server, HOST, Some(BINDING), Some(BINDING)).unwrap();
    assert!(bound, "a matching binding is reported as checked");
    let err = handshake(
        &by_password,
        &server,
        HOST,
        Some(b"tls-server-end-point:another certificate"),
        Some(BINDING),
    )
    .unwrap_err();
    assert_eq!(err.problem, Problem::ChannelBinding, "{err}");
    // A client without a binding is accepted but not reported as bound: the server's policy
    // (Extended Protection) decides.
    let (_, bound) = handshake(&by_password, &server, HOST, None, Some(BINDING)).unwrap();
    assert!(!bound);

    // Wrong password.
    let err =
        ClientCredential::acquire(&principal, &ClientSecret::Password("wrong".into())).unwrap_err();
    assert_eq!(err.problem, Problem::WrongKey, "{err}");
    assert!(err.to_string().contains("exsync secrets set"), "{err}");

    // Unknown client.
    let err = ClientCredential::acquire(
        &format!("nobody@{}", kdc::REALM),
        &ClientSecret::Password(PASSWORD.into()),
    )
    .unwrap_err();
    assert_eq!(err.problem, Problem::UnknownClient, "{err}");

    // Unknown SPN: the fix names setspn for the host.
    let err = handshake(&by_password, &server, "owa.exsync.test", None, None).unwrap_err();
    assert_eq!(err.problem, Problem::UnknownService, "{err}");
    assert!(
        err.to_string().contains("setspn -s http/owa.exsync.test"),
        "{err}"
    );

    // The independent acceptors: python-gssapi (Debian's), and pyspnego (pinned in the venv).
    let acceptors = [
        (
            std::path::PathBuf::from("/usr/bin/python3"),
            "acceptor.py",
            "import gssapi",
            "python-gssapi is not installed (apt-get install python3-gssapi)",
        ),
        (
            // Not `paths::python()`, which fails without the venv: here a missing venv skips
            // this acceptor (an error under EXSYNC_REQUIRE_KERBEROS=1, as scripts/test sets).
            std::env::var_os("EXSYNC_PYTHON")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| exsync_testkit::paths::workspace().join(".venv/bin/python")),
            "pyspnego_acceptor.py",
            "import spnego, gssapi, krb5",
            "pyspnego's Kerberos is not in the interop venv (pip install -r tests/interop/requirements.txt)",
        ),
    ];
    for (python, script, probe, missing) in acceptors {
        let probe = Command::new(&python).args(["-c", probe]).output();
        if !probe.map(|o| o.status.success()).unwrap_or(false) {
            kdc::skip(missing);
            continue;
        }
        independent_acceptor(&kdc, &by_password, &principal, &python, script);
    }
}

fn independent_acceptor(
    kdc: &Kdc,
    credential: &ClientCredential,
    principal: &str,
    python: &std::path::Path,
    script: &str,
) {
    let script = exsync_testkit::paths::workspace()
        .join("tests/interop/krb")
        .join(script);
    let mut child = Command::new(python)
        .arg(&script)
        .env("KRB5_CONFIG", &kdc.krb5_conf)
        .env("KRB5_KTNAME", &kdc.service_keytab)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut ask = |token: &[u8], binding: Option<&[u8]>| -> serde_json::Value {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let request = serde_json::json!({
            "token": b64.encode(token),
            "binding": binding.map(|b| b64.encode(b)),
        });
        writeln!(stdin, "{request}").unwrap();
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    };
    let b64 = |v: &serde_json::Value| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    };

    let (mut initiator, token) =
        Initiator::start(credential, HOST, Some(BINDING.to_vec())).unwrap();
    let answer = ask(&token, Some(BINDING));
    assert_eq!(answer["ok"], true, "{script:?}: {answer}");
    assert_eq!(answer["client"], principal, "{script:?}");
    // Mutual authentication: the acceptor's token completes our context.
    initiator.finish(&b64(&answer["token"])).unwrap();

    // A forged mutual-authentication token is refused.
    let (mut initiator, token) = Initiator::start(credential, HOST, None).unwrap();
    let answer = ask(&token, None);
    assert_eq!(answer["ok"], true, "{answer}");
    let mut forged = b64(&answer["token"]);
    let last = forged.len() - 1;
    forged[last] ^= 0x55;
    assert!(initiator.finish(&forged).is_err());

    // The independent acceptor refuses our token bound to another channel.
    let (_, token) =
        Initiator::start(credential, HOST, Some(b"tls-server-end-point:x".to_vec())).unwrap();
    let answer = ask(&token, Some(BINDING));
    assert_eq!(answer["ok"], false, "{script:?}: {answer}");
    drop(stdin);
    let _ = child.wait();
}
