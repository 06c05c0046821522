//! HTTP authentication: Basic, NTLMv2 bound to the TCP connection, and Kerberos (Negotiate)
//! checked by MIT's GSSAPI against a keytab.

use base64::Engine;
use exsync_ntlm::{
    parse_header, Acceptor, ChannelBinding, NtlmHeader, ServerNames, UserTable, VerifyPolicy,
};

/// Which schemes the server offers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Schemes {
    pub basic: bool,
    pub ntlm: bool,
    pub negotiate: bool,
}

impl Schemes {
    pub fn parse(s: &str) -> Result<Schemes, String> {
        let mut out = Schemes::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.to_ascii_lowercase().as_str() {
                "basic" => out.basic = true,
                "ntlm" => out.ntlm = true,
                "negotiate" | "kerberos" => out.negotiate = true,
                other => {
                    return Err(format!(
                        "unknown auth scheme {other:?} (basic, ntlm, negotiate)"
                    ))
                }
            }
        }
        if !out.basic && !out.ntlm && !out.negotiate {
            return Err("--auth needs at least one of basic, ntlm, negotiate".into());
        }
        Ok(out)
    }

    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.basic {
            v.push("basic");
        }
        if self.ntlm {
            v.push("ntlm");
        }
        if self.negotiate {
            v.push("negotiate");
        }
        v
    }

    /// `WWW-Authenticate` values of a 401, in the order IIS sends them.
    pub fn challenges(&self, realm: &str) -> Vec<String> {
        let mut v = Vec::new();
        if self.negotiate {
            v.push("Negotiate".to_string());
        }
        if self.ntlm {
            v.push("NTLM".to_string());
        }
        if self.basic {
            v.push(format!("Basic realm=\"{realm}\""));
        }
        v
    }
}

/// The service account as it may log on.
#[derive(Debug, Clone)]
pub struct Account {
    pub netbios_domain: String,
    pub dns_domain: String,
    pub username: String,
    pub password: String,
}

impl Account {
    /// Accepts `user`, `DOMAIN\user` and `user@domain`, case-insensitively.
    pub fn matches_name(&self, name: &str) -> bool {
        let name = name.trim();
        let user = if let Some((d, u)) = name.split_once('\\') {
            if !d.eq_ignore_ascii_case(&self.netbios_domain)
                && !d.eq_ignore_ascii_case(&self.dns_domain)
            {
                return false;
            }
            u
        } else if let Some((u, d)) = name.split_once('@') {
            if !d.eq_ignore_ascii_case(&self.dns_domain) {
                return false;
            }
            u
        } else {
            name
        };
        user.eq_ignore_ascii_case(&self.username)
    }

    /// Checks an `Authorization: Basic …` value.
    pub fn check_basic(&self, header: &str) -> bool {
        let Some(rest) = header
            .strip_prefix("Basic ")
            .or_else(|| header.strip_prefix("basic "))
        else {
            return false;
        };
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(rest.trim()) else {
            return false;
        };
        let Ok(text) = String::from_utf8(raw) else {
            return false;
        };
        let Some((user, pass)) = text.split_once(':') else {
            return false;
        };
        self.matches_name(user) && constant_time_eq(pass.as_bytes(), self.password.as_bytes())
    }

    fn ntlm_table(&self) -> UserTable {
        // An empty domain matches whatever domain the client names (e.g. CONTOSO or contoso.test);
        // a client may also log in with the UPN as user name and no domain, as Exchange accepts.
        let upn = format!("{}@{}", self.username, self.dns_domain);
        UserTable::new()
            .with_password("", &self.username, &self.password)
            .with_password("", &upn, &self.password)
    }

    fn server_names(&self) -> ServerNames {
        ServerNames {
            netbios_domain: self.netbios_domain.clone(),
            netbios_computer: "EXCH01".into(),
            dns_domain: self.dns_domain.clone(),
            dns_computer: format!("exch01.{}", self.dns_domain),
        }
    }
}

/// The largest Negotiate token read from a client (a ticket with a large PAC stays far below).
const MAX_NEGOTIATE_TOKEN: usize = 64 * 1024;

/// What a Negotiate attempt came to.
pub(crate) enum NegotiateStep {
    /// Authenticated; the value for the reply's `WWW-Authenticate` (mutual authentication).
    Done(Option<String>),
    /// Refused: why, and a `WWW-Authenticate` value carrying the KRB-ERROR, if any.
    Failed(String, Option<String>),
}

/// Checks one `Authorization: Negotiate …` value: the ticket against the keytab, the client
/// against the service account, and under Extended Protection the channel binding, which must
/// be present and match (a client that sends none is refused, as Exchange does).
pub(crate) fn negotiate_step(
    account: &Account,
    credential: &exsync_gss::AcceptorCredential,
    header: &str,
    binding: Option<&ChannelBinding>,
) -> NegotiateStep {
    let b64 = base64::engine::general_purpose::STANDARD;
    let token = header.split_once(' ').map(|(_, t)| t.trim()).unwrap_or("");
    if token.is_empty() || token.len() > MAX_NEGOTIATE_TOKEN * 4 / 3 + 4 {
        return NegotiateStep::Failed("missing or oversized Negotiate token".into(), None);
    }
    let Ok(token) = b64.decode(token) else {
        return NegotiateStep::Failed("Negotiate token is not base64".into(), None);
    };
    let mut acceptor = exsync_gss::Acceptor::new(credential);
    match acceptor.step(&token, binding.map(ChannelBinding::application_data)) {
        Ok(exsync_gss::Accepted::Done {
            client,
            token,
            channel_bound,
        }) => {
            if binding.is_some() && !channel_bound {
                return NegotiateStep::Failed(
                    "Extended Protection: the client sent no channel binding".into(),
                    None,
                );
            }
            let user = client.rsplit_once('@').map_or(client.as_str(), |(u, _)| u);
            if !user.eq_ignore_ascii_case(&account.username) {
                return NegotiateStep::Failed(format!("{client} is not the service account"), None);
            }
            let mutual = (!token.is_empty()).then(|| format!("Negotiate {}", b64.encode(token)));
            NegotiateStep::Done(mutual)
        }
        Ok(exsync_gss::Accepted::Continue(_)) => NegotiateStep::Failed(
            "a Kerberos token that asks for another round is not supported".into(),
            None,
        ),
        Err(refused) => {
            let challenge = (!refused.token.is_empty())
                .then(|| format!("Negotiate {}", b64.encode(&refused.token)));
            NegotiateStep::Failed(refused.error.to_string(), challenge)
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Per-connection NTLM state: NTLM authenticates the connection, not the request.
#[derive(Default)]
pub(crate) struct ConnAuth {
    pending: Option<Acceptor<UserTable>>,
    pub authenticated: bool,
}

pub(crate) enum NtlmStep {
    /// Send 401 with this `WWW-Authenticate` value (the CHALLENGE).
    Challenge(String),
    /// The connection is now authenticated.
    Done,
    /// Logon failed; send a plain 401.
    Failed(String),
}

impl ConnAuth {
    /// Handles one `Authorization: NTLM …` value on this connection.
    pub(crate) fn ntlm_step(
        &mut self,
        account: &Account,
        header: &str,
        binding: Option<&ChannelBinding>,
    ) -> NtlmStep {
        let token = match parse_header(header) {
            Ok(NtlmHeader::Token(t)) => t,
            Ok(NtlmHeader::Offer) => return NtlmStep::Failed("empty NTLM token".into()),
            Err(e) => return NtlmStep::Failed(e.to_string()),
        };
        // Message type is the little-endian u32 after the 8-byte signature.
        let msg_type = token
            .get(8..12)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        match msg_type {
            Some(1) => {
                self.authenticated = false;
                let mut acc = Acceptor::with_names(account.ntlm_table(), account.server_names());
                match acc.challenge_message(&token) {
                    Ok(ch) => {
                        self.pending = Some(acc);
                        NtlmStep::Challenge(exsync_ntlm::header_value(&ch))
                    }
                    Err(e) => NtlmStep::Failed(e.to_string()),
                }
            }
            Some(3) => {
                let Some(mut acc) = self.pending.take() else {
                    return NtlmStep::Failed(
                        "AUTHENTICATE without a CHALLENGE on this connection".into(),
                    );
                };
                let policy = match binding {
                    Some(b) => VerifyPolicy::extended_protection(b.clone()),
                    None => VerifyPolicy::without_channel_binding(),
                };
                match acc.verify(&token, &policy) {
                    Ok(user) if account.matches_name(&user.username) => {
                        self.authenticated = true;
                        NtlmStep::Done
                    }
                    Ok(_) => NtlmStep::Failed("unknown user".into()),
                    Err(e) => NtlmStep::Failed(e.to_string()),
                }
            }
            _ => NtlmStep::Failed("unexpected NTLM message".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn acct() -> Account {
        Account {
            netbios_domain: "CONTOSO".into(),
            dns_domain: "contoso.test".into(),
            username: "svc-sync".into(),
            password: "pw:1".into(),
        }
    }

    #[test]
    fn basic_accepts_all_name_forms_and_rejects_bad_password() {
        let a = acct();
        let b64 = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        assert!(a.check_basic(&b64("CONTOSO\\svc-sync:pw:1")));
        assert!(a.check_basic(&b64("svc-sync@contoso.test:pw:1")));
        assert!(a.check_basic(&b64("SVC-SYNC:pw:1")));
        assert!(!a.check_basic(&b64("svc-sync:pw:2")));
        assert!(!a.check_basic(&b64("OTHER\\svc-sync:pw:1")));
        assert!(!a.check_basic("Basic !!!"));
    }

    fn handshake(
        conn: &mut ConnAuth,
        password: &str,
        client_cb: Option<ChannelBinding>,
        server_cb: Option<&ChannelBinding>,
    ) -> bool {
        let a = acct();
        let mut ini = exsync_ntlm::Initiator::new(
            exsync_ntlm::Credentials::new("CONTOSO", "svc-sync", password),
            client_cb,
        );
        let neg = exsync_ntlm::header_value(&ini.negotiate_message());
        let NtlmStep::Challenge(ch) = conn.ntlm_step(&a, &neg, server_cb) else {
            panic!("no challenge");
        };
        let NtlmHeader::Token(ch) = parse_header(&ch).unwrap() else {
            panic!("bad challenge header");
        };
        let auth = exsync_ntlm::header_value(&ini.authenticate_message(&ch).unwrap());
        matches!(conn.ntlm_step(&a, &auth, server_cb), NtlmStep::Done)
    }

    /// The binding of the simulator's certificate, and of another one for the same name (what
    /// a TLS-inspecting proxy would present).
    fn leaf_and_foreign_bindings() -> (ChannelBinding, ChannelBinding) {
        let dir = tempfile::tempdir().unwrap();
        let ca = crate::tls::SimCa::load_or_create(dir.path()).unwrap();
        let leaf = ca.issue_leaf(&["mail.contoso.test"]).unwrap();
        let foreign = ca.issue_leaf(&["mail.contoso.test"]).unwrap();
        (
            ChannelBinding::tls_server_end_point(leaf.cert_der.as_ref()).unwrap(),
            ChannelBinding::tls_server_end_point(foreign.cert_der.as_ref()).unwrap(),
        )
    }

    #[test]
    fn ntlm_handshake_checks_password_and_channel_binding() {
        let (cb, other) = leaf_and_foreign_bindings();
        let mut conn = ConnAuth::default();
        assert!(handshake(&mut conn, "pw:1", Some(cb.clone()), Some(&cb)));
        assert!(conn.authenticated);
        let mut conn = ConnAuth::default();
        assert!(!handshake(&mut conn, "wrong", Some(cb.clone()), Some(&cb)));
        assert!(!conn.authenticated);
        let mut conn = ConnAuth::default();
        assert!(!handshake(&mut conn, "pw:1", Some(other), Some(&cb)));
        let mut conn = ConnAuth::default();
        assert!(!handshake(&mut conn, "pw:1", None, Some(&cb)));
        let mut conn = ConnAuth::default();
        assert!(handshake(&mut conn, "pw:1", None, None));
    }

    #[test]
    fn negotiate_checks_ticket_account_and_binding_under_extended_protection() {
        use exsync_gss::{AcceptorCredential, ClientCredential, ClientSecret, Initiator};
        use exsync_testkit::kdc::{Kdc, KdcOptions, PASSWORD};
        let Some(kdc) = Kdc::start_with(KdcOptions {
            service_host: "mail.contoso.test".into(),
            ..KdcOptions::default()
        }) else {
            return;
        };
        // Only this test in the simulator's unit tests uses Kerberos.
        std::env::set_var("KRB5_CONFIG", &kdc.krb5_conf);
        let keytab = AcceptorCredential::from_keytab(&kdc.service_keytab).unwrap();
        let client = ClientCredential::acquire(
            &kdc.user_principal(),
            &ClientSecret::Password(PASSWORD.into()),
        )
        .unwrap();
        let (cb, other) = leaf_and_foreign_bindings();
        let header = |binding: Option<&ChannelBinding>| {
            let (_, token) = Initiator::start(
                &client,
                "mail.contoso.test",
                binding.map(|b| b.application_data().to_vec()),
            )
            .unwrap();
            format!(
                "Negotiate {}",
                base64::engine::general_purpose::STANDARD.encode(token)
            )
        };
        let a = acct();
        let done = |step: NegotiateStep| match step {
            NegotiateStep::Done(mutual) => mutual.is_some(),
            NegotiateStep::Failed(why, _) => panic!("refused: {why}"),
        };
        let refused = |step: NegotiateStep| match step {
            NegotiateStep::Done(_) => panic!("accepted"),
            NegotiateStep::Failed(why, _) => why,
        };
        // The right binding passes, with a mutual-authentication token for the reply.
        assert!(done(negotiate_step(
            &a,
            &keytab,
            &header(Some(&cb)),
            Some(&cb)
        )));
        // Another certificate's binding (a TLS-inspecting proxy) is refused.
        let why = refused(negotiate_step(
            &a,
            &keytab,
            &header(Some(&other)),
            Some(&cb),
        ));
        assert!(why.contains("channel binding"), "{why}");
        // No binding at all is refused under Extended Protection, accepted without it.
        let why = refused(negotiate_step(&a, &keytab, &header(None), Some(&cb)));
        assert!(why.contains("no channel binding"), "{why}");
        assert!(done(negotiate_step(&a, &keytab, &header(None), None)));
        // A valid ticket of another account is not the service account's.
        let mut stranger = acct();
        stranger.username = "someone-else".into();
        let why = refused(negotiate_step(&stranger, &keytab, &header(None), None));
        assert!(why.contains("not the service account"), "{why}");
        // Garbage is refused without reaching the library's happy path.
        refused(negotiate_step(&a, &keytab, "Negotiate !!!", None));
        refused(negotiate_step(&a, &keytab, "Negotiate YWJj", None));
    }
}
