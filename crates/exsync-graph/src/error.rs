//! What can go wrong talking to Entra ID and Graph. No variant carries a secret, a token or
//! an assertion: error texts end up in logs and in the console.

use std::time::Duration;

/// A failure of the Graph transport or of the token client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot be used (a key or certificate that does not parse, a key that
    /// does not belong to its certificate, a URL that is not https); retrying will not help.
    #[error("configuration: {0}")]
    Config(String),
    /// Nothing was sent: the URL is not https, or its host is outside the allow-list, so no
    /// credential may travel there.
    #[error("refused to send credentials to {url}: {reason}")]
    Refused {
        /// The URL that was refused (never one carrying a credential).
        url: String,
        /// Why.
        reason: String,
    },
    /// Entra ID refused the token request.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Graph answered with an error (boxed: it is the largest variant, and errors travel in
    /// every `Result`).
    #[error(transparent)]
    Api(Box<GraphError>),
    /// Graph asked us to leave this mailbox alone for longer than a request may wait; nothing
    /// was sent. Other mailboxes are not affected.
    #[error("Graph throttled mailbox {mailbox}: paused for another {}s", wait.as_secs())]
    Paused {
        /// The mailbox (as named in the request path, lower-cased).
        mailbox: String,
        /// How much longer the pause lasts.
        wait: Duration,
    },
    /// No usable answer: the connection failed after the retries, or the server stalled or
    /// sent more than any genuine reply holds.
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// An answer arrived but was not what Graph documents.
    #[error("unexpected response: {0}")]
    Decode(String),
}

impl From<GraphError> for Error {
    fn from(e: GraphError) -> Error {
        Error::Api(Box::new(e))
    }
}

impl Error {
    /// The Graph error, when Graph answered with one.
    pub fn graph(&self) -> Option<&GraphError> {
        match self {
            Error::Api(e) => Some(e),
            _ => None,
        }
    }

    /// See [`GraphError::is_not_authorised`].
    pub fn is_not_authorised(&self) -> bool {
        self.graph().is_some_and(GraphError::is_not_authorised)
    }

    /// See [`GraphError::is_sync_state_lost`].
    pub fn is_sync_state_lost(&self) -> bool {
        self.graph().is_some_and(GraphError::is_sync_state_lost)
    }

    /// See [`GraphError::is_stale_etag`].
    pub fn is_stale_etag(&self) -> bool {
        self.graph().is_some_and(GraphError::is_stale_etag)
    }

    /// See [`GraphError::is_not_found`].
    pub fn is_not_found(&self) -> bool {
        self.graph().is_some_and(GraphError::is_not_found)
    }

    /// Whether Graph is holding this mailbox back (a 429 left after the retries, or a pause
    /// too long to wait out): the mailbox should be retried later, the others go on.
    pub fn is_throttled(&self) -> bool {
        matches!(self, Error::Paused { .. }) || self.graph().is_some_and(|g| g.status == 429)
    }

    /// How long Graph asked us to wait, when it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Paused { wait, .. } => Some(*wait),
            Error::Api(g) => g.retry_after,
            _ => None,
        }
    }
}

/// Graph's error answer: `{"error": {"code", "message", "innerError": {…}}}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Graph answered HTTP {status}: {code}: {message}")]
pub struct GraphError {
    /// The HTTP status (or a `$batch` item's own status).
    pub status: u16,
    /// Graph's `error.code` (`ErrorAccessDenied`, `syncStateNotFound`, …); empty when the body
    /// had none.
    pub code: String,
    /// Graph's explanation, passed on to the admin.
    pub message: String,
    /// `innerError.code` (or `innererror.code`), which some services use for the real reason.
    pub inner_code: Option<String>,
    /// `request-id`, for Microsoft support.
    pub request_id: Option<String>,
    /// The wait the answer asked for (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// The `Location` header: a 410 for a migrated mailbox names the URL to list afresh.
    pub location: Option<String>,
}

/// Codes Graph (and clients in the wild) use to say a delta token can no longer be used.
const SYNC_STATE_CODES: &[&str] = &["syncStateNotFound", "resyncRequired", "fullSyncRequired"];

impl GraphError {
    /// Reads Graph's error body; anything unreadable still gives the status.
    pub fn from_body(status: u16, body: &serde_json::Value) -> GraphError {
        let error = body.get("error").unwrap_or(body);
        let text = |v: &serde_json::Value, k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        // Graph writes `innerError`; some services and older answers write `innererror`.
        let inner = error.get("innerError").or_else(|| error.get("innererror"));
        GraphError {
            status,
            code: text(error, "code").unwrap_or_default(),
            message: text(error, "message").unwrap_or_default(),
            inner_code: inner.and_then(|i| text(i, "code")),
            request_id: inner.and_then(|i| text(i, "request-id")),
            retry_after: None,
            location: None,
        }
    }

    fn has_code(&self, wanted: &str) -> bool {
        self.code.eq_ignore_ascii_case(wanted)
            || self
                .inner_code
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case(wanted))
    }

    /// 403 `ErrorAccessDenied`: the app's RBAC scope (or access policy) does not cover this
    /// mailbox. That mailbox pauses until an admin widens the scope; the others go on.
    pub fn is_not_authorised(&self) -> bool {
        self.status == 403 && self.has_code("ErrorAccessDenied")
    }

    /// The delta token can no longer be used and the folder must be listed in full: status
    /// 410 (a migrated mailbox), or one of the codes Graph uses for an expired token whatever
    /// the status (it documents only "a 40X-series error").
    pub fn is_sync_state_lost(&self) -> bool {
        self.status == 410 || SYNC_STATE_CODES.iter().any(|c| self.has_code(c))
    }

    /// 412: the item changed since the ETag we sent; re-read and merge, never overwrite.
    pub fn is_stale_etag(&self) -> bool {
        self.status == 412
    }

    /// 404: the item (or the mailbox) does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status == 404
    }
}

/// Entra ID's refusal of a token request, with what the admin should check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct AuthError {
    /// The HTTP status of the answer.
    pub status: u16,
    /// The OAuth error (`invalid_client`, `unauthorized_client`, `invalid_scope`…).
    pub error: String,
    /// The AADSTS number, from `error_codes` or the description.
    pub aadsts: Option<u32>,
    /// Entra's explanation (without the trace and correlation ids' lines folded in).
    pub description: String,
}

impl AuthError {
    /// Reads Entra's error body (`error`, `error_description`, `error_codes`); a body that is
    /// not Entra's still gives the status and a short excerpt.
    pub fn from_body(status: u16, text: &str) -> AuthError {
        let body: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
        let description = body
            .get("error_description")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| text.chars().take(200).collect());
        let aadsts = body
            .get("error_codes")
            .and_then(|c| c.get(0))
            .and_then(serde_json::Value::as_u64)
            .and_then(|c| u32::try_from(c).ok())
            .or_else(|| aadsts_in(&description));
        AuthError {
            status,
            error: body
                .get("error")
                .and_then(serde_json::Value::as_str)
                .map_or_else(|| format!("HTTP {status}"), str::to_owned),
            aadsts,
            description,
        }
    }

    /// What the admin should check for this code.
    pub fn hint(&self) -> &'static str {
        match self.aadsts {
            Some(7000215) => {
                "the client secret is wrong: use the secret's Value (shown once when it was \
                 created), not its Secret ID, and check it was not replaced in the app \
                 registration's Certificates & secrets"
            }
            Some(7000222) => {
                "the client secret has expired: add a new secret to the app registration (or \
                 better, a certificate) and store it in exsync's vault"
            }
            Some(700016) => {
                "the application (client id) is unknown in this tenant: check the client id \
                 and the tenant id, and that the app registration exists in (or was consented \
                 to by) this tenant and cloud"
            }
            Some(90002) | Some(900023) => {
                "the tenant is unknown: check the tenant id (a GUID or a verified domain) and \
                 that it belongs to the configured cloud"
            }
            Some(700027) => {
                "the certificate assertion was refused: upload the certificate (the .cer, \
                 public part only) to the app registration's Certificates & secrets, and check \
                 exsync holds that certificate's private key"
            }
            Some(700024) => {
                "the assertion was outside its valid time: check this server's clock (NTP)"
            }
            Some(700021) => {
                "the assertion names another application: check the client id configured \
                 with the certificate"
            }
            Some(7000218) | Some(7000216) => {
                "no usable credential was sent: configure a certificate or a client secret"
            }
            Some(70011) | Some(500011) => {
                "the scope was refused: the configured cloud's Graph host does not match the \
                 tenant's cloud"
            }
            Some(7000112) => "the application is disabled in the tenant: an admin must enable it",
            Some(700025) => {
                "the app registration is a public client: client credentials need a \
                 confidential (web) app"
            }
            Some(53003) => {
                "a Conditional Access policy blocked the app: exclude the service principal or \
                 allow this server's location"
            }
            _ => "check the tenant id, the client id and the credential in the app registration",
        }
    }

    fn describe(&self) -> String {
        let code = self
            .aadsts
            .map_or_else(String::new, |c| format!("AADSTS{c} "));
        format!(
            "Entra ID refused the token request: {code}({}), HTTP {}: {}. Entra said: {}",
            self.error,
            self.status,
            self.hint(),
            self.description
        )
    }
}

/// The first `AADSTS<digits>` in a description.
fn aadsts_in(text: &str) -> Option<u32> {
    let start = text.find("AADSTS")? + "AADSTS".len();
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Why a request got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Connection refused or dropped, TLS refused, a reply cut short.
    #[error("{0}")]
    Failed(String),
    /// The reply went past the size cap; reading stopped there.
    #[error("{host} sent a reply larger than {limit} bytes; reading stopped there. No genuine Graph answer to our requests is that large: check the configured cloud's URLs")]
    ReplyTooLarge {
        /// The server that sent it.
        host: String,
        /// The cap that was reached, in bytes.
        limit: u64,
    },
    /// Sending the request and reading the whole reply took longer than the timeout.
    #[error("{host} did not complete its reply within {timeout:?} (sending and reading the whole reply both count): check Microsoft 365's service health and the network path (proxy, firewall)")]
    Timeout {
        /// The server that stalled.
        host: String,
        /// The per-request timeout that ran out.
        timeout: Duration,
    },
}

/// What the crate's calls return; the error is [`Error`] unless said otherwise.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn graph(status: u16, code: &str) -> GraphError {
        GraphError::from_body(status, &json!({"error": {"code": code, "message": "m"}}))
    }

    #[test]
    fn graph_errors_are_classified() {
        assert!(graph(403, "ErrorAccessDenied").is_not_authorised());
        assert!(!graph(403, "Authorization_RequestDenied").is_not_authorised());
        assert!(!graph(401, "ErrorAccessDenied").is_not_authorised());
        // 410 alone, or the codes whatever the status.
        assert!(graph(410, "").is_sync_state_lost());
        assert!(graph(400, "syncStateNotFound").is_sync_state_lost());
        assert!(graph(400, "SyncStateNotFound").is_sync_state_lost());
        assert!(graph(404, "resyncRequired").is_sync_state_lost());
        assert!(graph(400, "fullSyncRequired").is_sync_state_lost());
        assert!(!graph(400, "BadRequest").is_sync_state_lost());
        assert!(graph(412, "ErrorIrresolvableConflict").is_stale_etag());
        assert!(graph(404, "ErrorItemNotFound").is_not_found());
        assert!(!graph(400, "ErrorItemNotFound").is_not_found());
        let e = Error::from(graph(429, "TooManyRequests"));
        assert!(e.is_throttled() && !e.is_not_found());
    }

    #[test]
    fn inner_error_is_read_in_both_spellings() {
        for key in ["innerError", "innererror"] {
            let body = json!({"error": {"code": "BadRequest", "message": "x",
                key: {"code": "syncStateNotFound", "request-id": "r1"}}});
            let e = GraphError::from_body(400, &body);
            assert_eq!(e.inner_code.as_deref(), Some("syncStateNotFound"));
            assert_eq!(e.request_id.as_deref(), Some("r1"));
            assert!(e.is_sync_state_lost());
        }
        let e = GraphError::from_body(502, &json!("not Graph"));
        assert_eq!((e.status, e.code.as_str()), (502, ""));
    }

    #[test]
    fn entra_errors_name_the_code_and_the_fix() {
        let body = json!({"error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided. Trace ID: x",
            "error_codes": [7000215]});
        let e = AuthError::from_body(401, &body.to_string());
        assert_eq!(e.aadsts, Some(7000215));
        let text = e.to_string();
        assert!(text.contains("AADSTS7000215"), "{text}");
        assert!(text.contains("secret's Value"), "{text}");
        // The code is found in the description when error_codes is absent.
        let e = AuthError::from_body(
            401,
            r#"{"error":"invalid_client","error_description":"AADSTS700027: bad"}"#,
        );
        assert_eq!(e.aadsts, Some(700027));
        assert!(e.to_string().contains("upload the certificate"));
        let e = AuthError::from_body(502, "<html>proxy</html>");
        assert_eq!((e.aadsts, e.error.as_str()), (None, "HTTP 502"));
    }
}
