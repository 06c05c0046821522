//! HTTP `Negotiate` with Kerberos: a ticket for `HTTP/<host>` (the host as configured) on every
//! request, bound to the TLS channel, and the server's reply token checked, so a response counts
//! only once the server has proved it holds the service key.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use exsync_gss::{ClientCredential, ClientSecret, Initiator, KrbError, Problem};

use super::auth::{offered, Scheme};
use super::conn::{Connection, Deadline, Response, SendFailure};
use super::{HttpClient, Outgoing};
use crate::error::EwsError;

/// A credential with less life left than this is acquired again before use.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// When a credential that lives `life` is acquired again: [`RENEW_BEFORE`] ahead of its end, or
/// a quarter of its life ahead for a short one, so a ticket of a few minutes is still reused
/// (a fixed five minutes would log in again on every request) and never used to its last second.
fn renew_after(life: Duration) -> Duration {
    life.saturating_sub(RENEW_BEFORE.min(life / 4))
}

/// The largest Negotiate token we read from a server (a Kerberos AP-REP is a few hundred bytes).
const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// How the service account logs in to Kerberos.
#[derive(Debug, Clone)]
pub struct KerberosLogin {
    /// `user@REALM`.
    pub principal: String,
    /// A keytab file with the account's keys; without one, the account's password is used.
    pub keytab: Option<PathBuf>,
    /// Keeps the private directory holding the keytab (and krb5.conf) while a client uses it.
    pub files: Option<Arc<exsync_gss::PrivateFiles>>,
}

/// The cached credential and when it must be renewed.
#[derive(Default)]
pub(crate) struct TicketCache {
    current: tokio::sync::Mutex<Option<(Arc<ClientCredential>, Instant)>>,
}

/// What `exsync check` reports about the Kerberos login.
#[derive(Debug, Clone)]
pub struct KerberosStatus {
    /// The principal logged in.
    pub principal: String,
    /// Seconds the ticket-granting ticket had left when last looked at.
    pub lifetime_secs: Option<u32>,
}

impl HttpClient {
    fn kerberos_error(&self, host: &str, error: KrbError) -> EwsError {
        let principal = self
            .config
            .kerberos
            .as_ref()
            .map(|k| k.principal.clone())
            .unwrap_or_default();
        tracing::warn!(host, principal = %principal, problem = ?error.problem, "Kerberos failed");
        EwsError::Kerberos {
            host: host.to_owned(),
            principal,
            error: error.for_host(host),
        }
    }

    /// The service account's credential, acquired (blocking on the KDC, off the async threads)
    /// when there is none or it is about to expire.
    pub(crate) async fn kerberos_credential(
        &self,
        host: &str,
    ) -> Result<Arc<ClientCredential>, EwsError> {
        let Some(login) = self.config.kerberos.clone() else {
            return Err(EwsError::InvalidInput(
                "Kerberos was chosen but this connection has no Kerberos login: set exchange.realm"
                    .into(),
            ));
        };
        let mut current = self.tickets.current.lock().await;
        if let Some((cred, renew_at)) = current.as_ref() {
            if Instant::now() < *renew_at {
                return Ok(Arc::clone(cred));
            }
        }
        let secret = match &login.keytab {
            Some(path) => ClientSecret::Keytab(path.clone()),
            None => ClientSecret::Password(self.config.credentials.password.expose().to_owned()),
        };
        let principal = login.principal.clone();
        let cred =
            tokio::task::spawn_blocking(move || ClientCredential::acquire(&principal, &secret))
                .await
                .map_err(|e| EwsError::InvalidInput(format!("Kerberos login task failed: {e}")))?
                .map_err(|e| self.kerberos_error(host, e))?;
        // A keytab credential reports no lifetime before its first use; MIT renews those from
        // the keytab itself, so looking again in a while is enough.
        let life = cred
            .lifetime_secs()
            .map(|s| Duration::from_secs(u64::from(s)))
            .unwrap_or(RENEW_BEFORE * 2);
        let renew_at = Instant::now() + renew_after(life);
        tracing::info!(principal = %login.principal, lifetime_secs = life.as_secs(), "Kerberos ticket acquired");
        let cred = Arc::new(cred);
        *current = Some((Arc::clone(&cred), renew_at));
        Ok(cred)
    }

    /// The login's principal and ticket lifetime, once a request has logged in.
    pub async fn kerberos_status(&self) -> Option<KerberosStatus> {
        let current = self.tickets.current.lock().await;
        let (cred, _) = current.as_ref()?;
        Some(KerberosStatus {
            principal: cred.principal().to_owned(),
            lifetime_secs: cred.lifetime_secs(),
        })
    }

    async fn forget_credential(&self) {
        *self.tickets.current.lock().await = None;
    }

    /// One request authenticated with Kerberos.
    pub(super) async fn negotiate(
        &self,
        conn: &mut Connection,
        out: &Outgoing<'_>,
        deadline: Deadline,
    ) -> Result<Response, SendFailure> {
        let binding =
            super::channel_binding(conn, out.host)?.map(|b| b.application_data().to_vec());
        let (mut initiator, token) = match self.start(out.host, binding.clone()).await {
            // A ticket that expired under us: log in again once.
            Err(e) if e.problem == Problem::Expired => {
                self.forget_credential().await;
                self.start(out.host, binding).await
            }
            other => other,
        }
        .map_err(|e| self.kerberos_error(out.host, e))?;
        let header = format!("Negotiate {}", STANDARD.encode(token));
        let response = self.send(conn, out, Some(&header), deadline).await?;
        let reply_token = negotiate_token(&response.headers);
        if response.status == 401 {
            self.pins.check(out.host, &offered(&response.headers))?;
            // A KRB-ERROR in the 401 names the reason (clock skew, …); without one, the server
            // just refused.
            if let Some(Ok(token)) = reply_token {
                if let Err(e) = initiator.finish(&token) {
                    if e.problem != Problem::Other {
                        return Err(self.kerberos_error(out.host, e).into());
                    }
                }
            }
            return Err(self.unauthorized(out, Scheme::Negotiate).into());
        }
        // Mutual authentication: without the server's proof the reply is not trusted.
        let proof = match reply_token {
            Some(Ok(token)) => initiator.finish(&token),
            Some(Err(why)) => Err(KrbError::mutual_auth(why)),
            None => Err(KrbError::mutual_auth(
                "the reply carried no WWW-Authenticate: Negotiate token",
            )),
        };
        proof.map_err(|e| self.kerberos_error(out.host, e))?;
        self.pins.pin(out.host, Scheme::Negotiate);
        Ok(response)
    }

    async fn start(
        &self,
        host: &str,
        binding: Option<Vec<u8>>,
    ) -> Result<(Initiator, Vec<u8>), KrbError> {
        let cred = match self.kerberos_credential(host).await {
            Ok(cred) => cred,
            Err(EwsError::Kerberos { error, .. }) => return Err(error),
            Err(other) => return Err(KrbError::other(other.to_string())),
        };
        let host = host.to_owned();
        // The first use of a service asks the KDC for its ticket: blocking.
        tokio::task::spawn_blocking(move || Initiator::start(&cred, &host, binding))
            .await
            .map_err(|e| KrbError::other(format!("Kerberos task failed: {e}")))?
    }
}

/// The token of a `WWW-Authenticate: Negotiate <token>` header, if one is there; an unreadable
/// or oversized one is an error.
fn negotiate_token(headers: &http::HeaderMap) -> Option<Result<Vec<u8>, String>> {
    headers
        .get_all(http::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            if !scheme.eq_ignore_ascii_case("negotiate") {
                return None;
            }
            let rest = rest.trim();
            if rest.len() > MAX_TOKEN_BYTES * 4 / 3 + 4 {
                return Some(Err("the server's Negotiate token is too large".to_owned()));
            }
            Some(
                STANDARD
                    .decode(rest)
                    .map_err(|e| format!("the server's Negotiate token is not base64: {e}")),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_comes_five_minutes_or_a_quarter_of_the_life_before_the_end() {
        let h = Duration::from_secs(3600);
        assert_eq!(renew_after(10 * h), 10 * h - RENEW_BEFORE);
        assert_eq!(
            renew_after(Duration::from_secs(600)),
            Duration::from_secs(450)
        );
        assert_eq!(renew_after(Duration::from_secs(8)), Duration::from_secs(6));
        assert_eq!(renew_after(Duration::ZERO), Duration::ZERO);
    }
}
