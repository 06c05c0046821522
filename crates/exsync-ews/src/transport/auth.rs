//! Credentials, the schemes a server offers, and the per-host pin of the scheme that worked.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::error::EwsError;

/// Which scheme to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// Always Basic, refusing a server that does not offer it.
    Basic,
    /// Always NTLM, refusing a server that does not offer it.
    Ntlm,
    /// Always Kerberos (`Negotiate`), refusing a server that does not offer it.
    Kerberos,
    /// Kerberos when configured and offered; else Basic when the server offers it (Lightning
    /// Sync's rule), NTLM otherwise.
    #[default]
    Auto,
}

impl AuthMode {
    /// Reads the configuration's `basic`, `ntlm` or `auto` (any case).
    pub fn parse(s: &str) -> Option<AuthMode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "basic" => Some(AuthMode::Basic),
            "ntlm" => Some(AuthMode::Ntlm),
            "kerberos" => Some(AuthMode::Kerberos),
            "auto" => Some(AuthMode::Auto),
            _ => None,
        }
    }
}

/// A scheme in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Basic: the password on every request, so over TLS only.
    Basic,
    /// NTLM: a challenge-response handshake per connection.
    Ntlm,
    /// Kerberos inside SPNEGO: a ticket per request, the server proving itself in return.
    Negotiate,
}

impl Scheme {
    /// The scheme's name as it appears in `WWW-Authenticate`.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Basic => "Basic",
            Scheme::Ntlm => "NTLM",
            Scheme::Negotiate => "Negotiate",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A password that never shows up in Debug output, logs or errors.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a password so it cannot leak through `Debug`.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The password itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The service account.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// `DOMAIN\user` or `user@domain`.
    pub username: String,
    /// The account's password.
    pub password: Secret,
}

impl Credentials {
    /// Credentials for `username` (`DOMAIN\user` or a UPN).
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: Secret::new(password),
        }
    }

    /// The `Authorization` value for Basic.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password.expose());
        format!("Basic {}", STANDARD.encode(raw.as_bytes()))
    }

    /// The DNS domain of the account (`svc@contoso.com` → `contoso.com`), if it names one.
    pub fn domain(&self) -> Option<String> {
        self.username
            .rsplit_once('@')
            .map(|(_, d)| d.trim().to_ascii_lowercase())
            .filter(|d| !d.is_empty())
    }
}

/// Schemes named in `WWW-Authenticate` headers.
pub(crate) fn offered(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| {
            // One header may list several challenges ("Negotiate, NTLM"); a Basic challenge
            // carries parameters (realm="…") that are not schemes.
            v.split(',')
                .filter_map(|part| part.split_whitespace().next())
                .filter(|token| !token.contains('='))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn offers(offers: &[String], scheme: Scheme) -> bool {
    offers.iter().any(|o| o.eq_ignore_ascii_case(scheme.name()))
}

/// Picks the scheme for a host from what it offers; `kerberos` says whether Kerberos is
/// configured (a realm), which `auto` then prefers.
pub(crate) fn choose(
    mode: AuthMode,
    kerberos: bool,
    host: &str,
    offered: &[String],
) -> Result<Scheme, EwsError> {
    let pick = match mode {
        AuthMode::Basic => offers(offered, Scheme::Basic).then_some(Scheme::Basic),
        AuthMode::Ntlm => offers(offered, Scheme::Ntlm).then_some(Scheme::Ntlm),
        AuthMode::Kerberos => offers(offered, Scheme::Negotiate).then_some(Scheme::Negotiate),
        AuthMode::Auto => {
            if kerberos && offers(offered, Scheme::Negotiate) {
                Some(Scheme::Negotiate)
            } else if offers(offered, Scheme::Basic) {
                Some(Scheme::Basic)
            } else if offers(offered, Scheme::Ntlm) {
                Some(Scheme::Ntlm)
            } else {
                None
            }
        }
    };
    pick.ok_or_else(|| EwsError::NoUsableAuth {
        host: host.to_owned(),
        offered: if offered.is_empty() {
            "nothing".into()
        } else {
            offered.join(", ")
        },
    })
}

/// The scheme that worked for each host. A host that later stops offering it is refused:
/// following it would let a man in the middle downgrade us (e.g. from NTLM to Basic).
#[derive(Debug, Default)]
pub(crate) struct Pins {
    pins: Mutex<HashMap<String, Scheme>>,
}

impl Pins {
    pub(crate) fn get(&self, host: &str) -> Option<Scheme> {
        self.pins
            .lock()
            .ok()
            .and_then(|p| p.get(&host.to_ascii_lowercase()).copied())
    }

    pub(crate) fn pin(&self, host: &str, scheme: Scheme) {
        if let Ok(mut pins) = self.pins.lock() {
            pins.entry(host.to_ascii_lowercase()).or_insert(scheme);
        }
    }

    /// Checks a 401's offers against the pin for this host.
    pub(crate) fn check(&self, host: &str, offered: &[String]) -> Result<(), EwsError> {
        match self.get(host) {
            Some(pinned) if !offers(offered, pinned) => {
                tracing::error!(host, pinned = %pinned, offered = ?offered, "authentication downgrade refused");
                Err(EwsError::AuthDowngrade {
                    host: host.to_owned(),
                    pinned: pinned.name().to_owned(),
                    offered: if offered.is_empty() {
                        "nothing".into()
                    } else {
                        offered.join(", ")
                    },
                })
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn headers(values: &[&str]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for v in values {
            h.append(http::header::WWW_AUTHENTICATE, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn auto_prefers_basic_when_both_are_offered() {
        let o = offered(&headers(&[
            "NTLM",
            "Negotiate",
            "Basic realm=\"mail.contoso.test\"",
        ]));
        assert_eq!(o, vec!["NTLM", "Negotiate", "Basic"]);
        assert_eq!(
            choose(AuthMode::Auto, false, "h", &o).unwrap(),
            Scheme::Basic
        );
        assert_eq!(
            choose(AuthMode::Ntlm, false, "h", &o).unwrap(),
            Scheme::Ntlm
        );
        // With a realm configured, auto prefers Kerberos; without Negotiate offered it falls back.
        assert_eq!(
            choose(AuthMode::Auto, true, "h", &o).unwrap(),
            Scheme::Negotiate
        );
        assert_eq!(
            choose(AuthMode::Kerberos, false, "h", &o).unwrap(),
            Scheme::Negotiate
        );
        let no_negotiate = offered(&headers(&["NTLM", "Basic realm=\"x\""]));
        assert_eq!(
            choose(AuthMode::Auto, true, "h", &no_negotiate).unwrap(),
            Scheme::Basic
        );
        assert!(matches!(
            choose(AuthMode::Kerberos, true, "h", &no_negotiate),
            Err(EwsError::NoUsableAuth { .. })
        ));
        let ntlm_only = offered(&headers(&["Negotiate, NTLM"]));
        assert_eq!(
            choose(AuthMode::Auto, false, "h", &ntlm_only).unwrap(),
            Scheme::Ntlm
        );
        assert!(matches!(
            choose(AuthMode::Basic, false, "h", &ntlm_only),
            Err(EwsError::NoUsableAuth { .. })
        ));
    }

    #[test]
    fn pinned_scheme_refuses_a_later_weaker_offer() {
        let pins = Pins::default();
        pins.pin("Mail.Contoso.test", Scheme::Ntlm);
        assert!(pins.check("mail.contoso.test", &["NTLM".into()]).is_ok());
        let err = pins
            .check("mail.contoso.test", &["Basic".into()])
            .unwrap_err();
        assert!(matches!(err, EwsError::AuthDowngrade { .. }));
        assert!(err.to_string().contains("NTLM"), "{err}");
        // Other hosts are unaffected.
        assert!(pins.check("other.test", &["Basic".into()]).is_ok());
    }

    #[test]
    fn secrets_do_not_print() {
        let c = Credentials::new("svc@contoso.test", "hunter2-very-secret");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.domain().as_deref(), Some("contoso.test"));
    }
}
