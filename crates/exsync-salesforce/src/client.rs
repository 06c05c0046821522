//! The HTTP side: OAuth tokens (cached, refreshed on `INVALID_SESSION_ID`), bounded retries
//! with jitter, and API allowance accounting from `Sforce-Limit-Info`.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use rand::Rng;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::budget::BudgetDraw;
use crate::config::{AuthConfig, SalesforceConfig};
use crate::error::{Error, Result, TransportError};

/// Calls used and allowed today, as the last answer reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiUsage {
    /// Calls made in the org's rolling 24 hours, every integration counted.
    pub used: u64,
    /// Calls the org's edition and licences allow in 24 hours.
    pub max: u64,
}

impl ApiUsage {
    /// Reads `api-usage=25/5000` (possibly followed by `;per-app-api-usage=…`).
    pub fn parse(header: &str) -> Option<ApiUsage> {
        let part = header
            .split([';', ','])
            .find_map(|p| p.trim().strip_prefix("api-usage="))?;
        let (used, max) = part.split_once('/')?;
        Some(ApiUsage {
            used: used.trim().parse().ok()?,
            max: max.trim().parse().ok()?,
        })
    }
}

#[derive(Clone)]
struct Token {
    access_token: String,
    instance_url: String,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    instance_url: String,
}

#[derive(Deserialize)]
struct OAuthErrorAnswer {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// Whether a request may be sent again after a connection dropped mid-way. Creates without
/// an external id are not: the first attempt may have been applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Sending it twice does no harm (reads, updates, deletes, upserts on the external id), so it
    /// is sent again after a dropped connection or a reply cut short.
    Safe,
    /// Sent again only when the connection could not be made: a request that reached the server
    /// may have been applied (a plain create would be duplicated).
    OnlyIfNotSent,
}

/// A connection to one org.
pub struct SalesforceClient {
    pub(crate) config: SalesforceConfig,
    http: reqwest::Client,
    token: tokio::sync::Mutex<Option<Token>>,
    usage: Mutex<Option<ApiUsage>>,
    /// The shared budget refused this process's last draw.
    spent: AtomicBool,
}

impl std::fmt::Debug for SalesforceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SalesforceClient")
            .field("login_url", &self.config.login_url)
            .finish()
    }
}

impl SalesforceClient {
    /// A client for the org in `config`, trusting `config.ca_pem` or else the system's roots.
    /// Nothing is sent yet: the first call logs in. Fails only on an unusable CA file.
    pub fn new(config: SalesforceConfig) -> Result<SalesforceClient> {
        // reqwest and the rest of the workspace share rustls' ring provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(15)))
            .user_agent(concat!("exsync/", env!("CARGO_PKG_VERSION")));
        match &config.ca_pem {
            Some(pem) => {
                let certs = reqwest::Certificate::from_pem_bundle(pem)
                    .map_err(|e| Error::Config(format!("CA file is not PEM certificates: {e}")))?;
                if certs.is_empty() {
                    return Err(Error::Config("CA file holds no certificate".into()));
                }
                for cert in certs {
                    builder = builder.add_root_certificate(cert);
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                for cert in native.certs {
                    if let Ok(cert) = reqwest::Certificate::from_der(cert.as_ref()) {
                        builder = builder.add_root_certificate(cert);
                    }
                }
            }
        }
        let http = builder
            .build()
            .map_err(|e| Error::Config(format!("building the HTTP client: {e}")))?;
        Ok(SalesforceClient {
            config,
            http,
            token: tokio::sync::Mutex::new(None),
            usage: Mutex::new(None),
            spent: AtomicBool::new(false),
        })
    }

    /// The pairing rule this client reads users by.
    pub fn mailbox_field(&self) -> &exsync_core::config::MailboxField {
        &self.config.mailbox_field
    }

    /// The allowance as of the last answer.
    pub fn api_usage(&self) -> Option<ApiUsage> {
        *self.usage.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn record_usage(&self, headers: &reqwest::header::HeaderMap) {
        if let Some(usage) = headers
            .get("Sforce-Limit-Info")
            .and_then(|v| v.to_str().ok())
            .and_then(ApiUsage::parse)
        {
            *self.usage.lock().unwrap_or_else(|p| p.into_inner()) = Some(usage);
            self.share_usage(usage).await;
        }
    }

    /// Tells the other workers what Salesforce just counted.
    async fn share_usage(&self, usage: ApiUsage) {
        if let Some(budget) = &self.config.budget {
            if let Err(e) = budget.0.report(usage, self.reserve(usage.max)).await {
                tracing::warn!(error = %e, "Could not pass the API use Salesforce reported on to the other workers; they go by the last count they have.");
            }
        }
    }

    /// Takes one call from the budget shared with the other workers, if there is one. A
    /// budget no worker has reported yet is learned from `/limits`, which Salesforce does not
    /// count, so not even a worker's first call goes out unaccounted for.
    async fn draw_shared(&self) -> Result<()> {
        let Some(budget) = &self.config.budget else {
            return Ok(());
        };
        for _ in 0..2 {
            match budget.0.draw(1).await.map_err(Error::Budget)? {
                BudgetDraw::Granted => {
                    self.spent.store(false, Ordering::Relaxed);
                    return Ok(());
                }
                BudgetDraw::Refused { used, max, reserve } => {
                    self.spent.store(true, Ordering::Relaxed);
                    return Err(Error::BudgetSpent { used, max, reserve });
                }
                // Boxed: `/limits` goes through `send` as well, though never drawn for.
                BudgetDraw::Unknown => {
                    Box::pin(self.refresh_api_usage()).await?;
                }
            }
        }
        Err(Error::Budget(
            "the allowance was reported but could not be read back".into(),
        ))
    }

    /// Calls kept for the org: the configured count, or its share of the allowance if larger.
    fn reserve(&self, max: u64) -> u64 {
        let share = (max as f64 * self.config.limit_reserve_share.clamp(0.0, 1.0)) as u64;
        self.config.limit_reserve.max(share)
    }

    /// Whether the last answer left the allowance at or below the reserve, or the budget
    /// shared with other workers refused the last call. The org's allowance is a rolling 24
    /// hours, so callers ask again ([`Self::refresh_api_usage`]) before giving up on a new
    /// pass; that answer also reaches the shared budget, which is how it recovers.
    pub fn reserve_reached(&self) -> bool {
        self.spent.load(Ordering::Relaxed)
            || self
                .api_usage()
                .is_some_and(|u| u.max.saturating_sub(u.used) <= self.reserve(u.max))
    }

    /// Tells the metrics of a request: `endpoint` is the resource without ids or query.
    fn observe(&self, path: &str, outcome: &str) {
        if let Some(observer) = &self.config.observer {
            let resource = path
                .trim_start_matches('/')
                .split(['?', '/'])
                .next()
                .unwrap_or("");
            let endpoint = match resource {
                "composite" => "composite/sobjects",
                "" => "other",
                r => r,
            };
            observer.0.request("crm", endpoint, outcome);
        }
    }

    fn check_reserve(&self) -> Result<()> {
        if let Some(usage) = self.api_usage() {
            let reserve = self.reserve(usage.max);
            if usage.max.saturating_sub(usage.used) <= reserve {
                return Err(Error::LimitReserved {
                    used: usage.used,
                    max: usage.max,
                    reserve,
                });
            }
        }
        Ok(())
    }

    /// The instance URL of the current session, logging in if needed.
    pub async fn instance_url(&self) -> Result<String> {
        Ok(self.token().await?.instance_url)
    }

    async fn token(&self) -> Result<Token> {
        let mut slot = self.token.lock().await;
        if let Some(token) = slot.as_ref() {
            return Ok(token.clone());
        }
        let token = self.login().await?;
        *slot = Some(token.clone());
        Ok(token)
    }

    async fn forget_token(&self, stale: &str) {
        let mut slot = self.token.lock().await;
        // Another task may already have replaced it; keep a fresh one.
        if slot.as_ref().is_some_and(|t| t.access_token == stale) {
            *slot = None;
        }
    }

    async fn login(&self) -> Result<Token> {
        let url = format!(
            "{}/services/oauth2/token",
            self.config.login_url.trim_end_matches('/')
        );
        let form: Vec<(&str, String)> = match &self.config.auth {
            AuthConfig::JwtBearer {
                client_id,
                username,
                private_key_pem,
                audience,
            } => {
                let assertion =
                    crate::auth::jwt_assertion(client_id, username, audience, private_key_pem)?;
                vec![
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
                    ),
                    ("assertion", assertion),
                ]
            }
            AuthConfig::ClientCredentials {
                client_id,
                client_secret,
            } => vec![
                ("grant_type", "client_credentials".into()),
                ("client_id", client_id.clone()),
                (
                    "client_secret",
                    std::str::from_utf8(client_secret.expose())
                        .map_err(|_| Error::Config("the client secret is not UTF-8 text".into()))?
                        .to_owned(),
                ),
            ],
        };
        let host = host_of(&url);
        let mut attempt = 0;
        loop {
            let deadline = Instant::now() + self.config.timeout;
            let sent =
                match tokio::time::timeout_at(deadline, self.http.post(&url).form(&form).send())
                    .await
                {
                    Ok(sent) => sent,
                    Err(_) => return Err(self.timed_out(&host).into()),
                };
            let response = match sent {
                Ok(r) if r.status().is_server_error() && attempt < self.config.max_retries => {
                    tracing::warn!(status = %r.status(), attempt, "token endpoint failed; retrying");
                    attempt += 1;
                    self.back_off(attempt).await;
                    continue;
                }
                Ok(r) => r,
                Err(e) if stalled(&e) => return Err(self.timed_out(&host).into()),
                Err(e) if attempt < self.config.max_retries => {
                    tracing::warn!(error = %e, attempt, "token request failed; retrying");
                    attempt += 1;
                    self.back_off(attempt).await;
                    continue;
                }
                Err(e) => {
                    return Err(TransportError::Failed(format!(
                        "token endpoint {url}: {}",
                        chain(&e)
                    ))
                    .into())
                }
            };
            let status = response.status();
            let text = self
                .read_reply(response, &host, deadline)
                .await
                .map_err(|e| match e {
                    TransportError::Failed(reason) => {
                        TransportError::Failed(format!("reading the token answer: {reason}"))
                    }
                    other => other,
                })?;
            if !status.is_success() {
                let answer: OAuthErrorAnswer =
                    serde_json::from_str(&text).unwrap_or(OAuthErrorAnswer {
                        error: format!("HTTP {status}"),
                        error_description: text.chars().take(200).collect(),
                    });
                return Err(Error::Auth {
                    error: answer.error,
                    description: answer.error_description,
                });
            }
            let answer: TokenAnswer = serde_json::from_str(&text)
                .map_err(|e| Error::Decode(format!("token answer: {e}")))?;
            tracing::debug!(instance = %answer.instance_url, "logged in to Salesforce");
            return Ok(Token {
                access_token: answer.access_token,
                instance_url: answer.instance_url,
            });
        }
    }

    async fn back_off(&self, attempt: u32) {
        let base = self.config.retry_base.as_millis() as u64;
        let exp = base.saturating_mul(1u64 << attempt.min(10));
        let jitter = rand::thread_rng().gen_range(0..=exp / 2 + 1);
        tokio::time::sleep(Duration::from_millis(exp / 2 + jitter)).await;
    }

    /// Sends one REST call. `path` is relative to `/services/data/vXX.X/` unless it starts
    /// with `/`. Returns the status and the decoded body (Null when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        idempotency: Idempotency,
    ) -> Result<(StatusCode, Value)> {
        self.call_with(method, path, query, body, idempotency, &[])
            .await
    }

    pub(crate) async fn call_with(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        idempotency: Idempotency,
        headers: &[(&str, &str)],
    ) -> Result<(StatusCode, Value)> {
        let answer = self
            .send_for_answer(method, path, query, body, idempotency, headers, true)
            .await?;
        Ok((answer.status, answer.parse()?))
    }

    /// A `GET` whose successful answer the caller parses as it needs: a query page's rows
    /// borrow its text (`rows.rs`). Failures are handled as [`Self::call`] handles them.
    pub(crate) async fn get_answer(&self, path: &str, query: &[(&str, &str)]) -> Result<Answer> {
        self.send_for_answer(Method::GET, path, query, None, Idempotency::Safe, &[], true)
            .await
    }

    /// Sends a request until it is answered with success (or 300), retrying what may be
    /// retried; any other answer is read as Salesforce's error and becomes the error.
    #[allow(clippy::too_many_arguments)]
    async fn send_for_answer(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        idempotency: Idempotency,
        headers: &[(&str, &str)],
        enforce_reserve: bool,
    ) -> Result<Answer> {
        let mut attempt = 0;
        let mut refreshed = false;
        loop {
            // The shared budget holds every count this process reported, and the other
            // workers' calls besides, so it alone decides when there is one.
            if enforce_reserve && self.config.budget.is_some() {
                self.draw_shared().await?;
            } else if enforce_reserve {
                self.check_reserve()?;
            }
            let token = self.token().await?;
            let url = if path.starts_with('/') {
                format!("{}{path}", token.instance_url)
            } else {
                format!(
                    "{}/services/data/v{}/{path}",
                    token.instance_url, self.config.api_version
                )
            };
            // The client name lets change events tell our own writes apart (changeOrigin).
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(&token.access_token)
                .header("Sforce-Call-Options", "client=exsync")
                .query(query);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let host = host_of(&url);
            // One deadline for sending and for the whole reply: a server that trickles its
            // answer cannot make a request last longer than the timeout.
            let deadline = Instant::now() + self.config.timeout;
            let sent = match tokio::time::timeout_at(deadline, request.send()).await {
                Ok(sent) => sent,
                Err(_) => {
                    self.observe(path, "timeout");
                    return Err(self.timed_out(&host).into());
                }
            };
            let response = match sent {
                Ok(r) => r,
                Err(e) if stalled(&e) => {
                    self.observe(path, "timeout");
                    return Err(self.timed_out(&host).into());
                }
                Err(e) => {
                    self.observe(path, "connection");
                    let retry = attempt < self.config.max_retries
                        && (idempotency == Idempotency::Safe || e.is_connect());
                    if retry {
                        attempt += 1;
                        tracing::warn!(error = %e, attempt, %method, path, "request failed; retrying");
                        self.back_off(attempt).await;
                        continue;
                    }
                    return Err(
                        TransportError::Failed(format!("{method} {path}: {}", chain(&e))).into(),
                    );
                }
            };
            self.record_usage(response.headers()).await;
            let status = response.status();
            self.observe(
                path,
                if status.is_success() {
                    "ok"
                } else if status.is_server_error() {
                    "http_5xx"
                } else {
                    "http_4xx"
                },
            );
            let text = match self.read_reply(response, &host, deadline).await {
                Ok(t) => t,
                // A reply cut short is worth asking again; one that stalled or overflowed is
                // not: the next attempt would most likely cost as much again.
                Err(TransportError::Failed(e))
                    if attempt < self.config.max_retries && idempotency == Idempotency::Safe =>
                {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, %method, path, "reading an answer failed; retrying");
                    self.back_off(attempt).await;
                    continue;
                }
                Err(TransportError::Failed(e)) => {
                    return Err(TransportError::Failed(format!(
                        "{method} {path}: reading the answer: {e}"
                    ))
                    .into())
                }
                Err(e) => return Err(e.into()),
            };
            let answer = Answer {
                status,
                request: format!("{method} {path}"),
                text: mend_answer(text, path),
            };
            if status.is_success() || status == StatusCode::MULTIPLE_CHOICES {
                return Ok(answer);
            }
            let value: Value = answer.parse()?;
            let (code, message) = first_error(&value);
            if status == StatusCode::UNAUTHORIZED && code == "INVALID_SESSION_ID" && !refreshed {
                tracing::info!("Salesforce session expired; logging in again");
                refreshed = true;
                self.forget_token(&token.access_token).await;
                continue;
            }
            if code == "REQUEST_LIMIT_EXCEEDED" {
                let usage = self.api_usage().unwrap_or(ApiUsage { used: 0, max: 0 });
                return Err(Error::LimitReserved {
                    used: usage.used,
                    max: usage.max,
                    reserve: self.reserve(usage.max),
                });
            }
            if status.is_server_error() && attempt < self.config.max_retries {
                attempt += 1;
                tracing::warn!(%status, code, attempt, %method, path, "server error; retrying");
                self.back_off(attempt).await;
                continue;
            }
            return Err(Error::Api {
                status: status.as_u16(),
                code,
                message,
            });
        }
    }

    fn timed_out(&self, host: &str) -> TransportError {
        TransportError::Timeout {
            host: host.to_owned(),
            timeout: self.config.timeout,
        }
    }

    /// Reads a reply to its end as text, chunk by chunk, refusing it as soon as it passes
    /// the size cap or `deadline`: a reply is never held whole before its size is known to
    /// be acceptable.
    async fn read_reply(
        &self,
        mut response: reqwest::Response,
        host: &str,
        deadline: Instant,
    ) -> std::result::Result<String, TransportError> {
        let limit = self.config.max_reply_bytes;
        let too_large = || TransportError::ReplyTooLarge {
            host: host.to_owned(),
            limit,
        };
        let declared = response.content_length().unwrap_or(0);
        if declared > limit {
            return Err(too_large());
        }
        // Room for what the reply says it holds (within the limit), so a page of records is
        // not copied again each time the buffer doubles.
        let mut body: Vec<u8> = Vec::with_capacity(usize::try_from(declared).unwrap_or(0));
        loop {
            let chunk = tokio::time::timeout_at(deadline, response.chunk())
                .await
                .map_err(|_| self.timed_out(host))?;
            match chunk {
                Ok(Some(chunk)) => {
                    if (body.len() as u64).saturating_add(chunk.len() as u64) > limit {
                        return Err(too_large());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if stalled(&e) => return Err(self.timed_out(host)),
                Err(e) => return Err(TransportError::Failed(chain(&e))),
            }
        }
        Ok(match String::from_utf8(body) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// `GET /limits`: the org's allowances. Salesforce does not count this call, so it is
    /// sent even when the reserve is reached.
    pub async fn limits(&self) -> Result<Value> {
        self.send_for_answer(
            Method::GET,
            "limits",
            &[],
            None,
            Idempotency::Safe,
            &[],
            false,
        )
        .await?
        .parse()
    }

    /// Asks the org how much of the allowance is left (after a pause, before resuming).
    pub async fn refresh_api_usage(&self) -> Result<ApiUsage> {
        let limits = self.limits().await?;
        let daily = &limits["DailyApiRequests"];
        let usage = match (daily["Max"].as_u64(), daily["Remaining"].as_u64()) {
            (Some(max), Some(remaining)) => ApiUsage {
                used: max.saturating_sub(remaining),
                max,
            },
            _ => self
                .api_usage()
                .ok_or_else(|| Error::Decode("limits without DailyApiRequests".into()))?,
        };
        *self.usage.lock().unwrap_or_else(|p| p.into_inner()) = Some(usage);
        self.share_usage(usage).await;
        Ok(usage)
    }
}

/// An answer's body, its lone surrogates mended (see [`mend_answer`]), parsed by whoever
/// asked for it: into a `Value`, or into rows that borrow the text (`rows.rs`).
pub(crate) struct Answer {
    status: StatusCode,
    /// The method and path, which a body that is no JSON is reported with.
    request: String,
    text: String,
}

impl Answer {
    /// The answer `GET path` would make of `text` with status 200, for tests.
    #[cfg(test)]
    pub(crate) fn of_text(path: &str, text: &str) -> Answer {
        Answer {
            status: StatusCode::OK,
            request: format!("GET {path}"),
            text: mend_answer(text.to_owned(), path),
        }
    }

    /// The body as `T`; an empty body is `T::default()` (`Value::Null`).
    pub(crate) fn parse<'a, T: Deserialize<'a> + Default>(&'a self) -> Result<T> {
        if self.text.trim().is_empty() {
            return Ok(T::default());
        }
        serde_json::from_str(&self.text).map_err(|e| {
            Error::Decode(format!(
                "{}: HTTP {}: body is not JSON: {e}",
                self.request, self.status
            ))
        })
    }
}

/// The text of an answer from `path` with each lone UTF-16 surrogate escape in it (text cut
/// between an emoji's halves) made `BROKEN` (U+FFFD once the record is cleaned): one such
/// field would otherwise refuse the whole page, on every pass. Every answer goes through here
/// before it is parsed. The trace names the resource only, never the text or the query.
fn mend_answer(text: String, path: &str) -> String {
    let mended = exsync_core::surrogates::mend_lone_surrogates(text.as_bytes());
    let (replaced, Cow::Owned(bytes)) = (mended.replaced, mended.text) else {
        return text;
    };
    tracing::warn!(
        endpoint = %path.split('?').next().unwrap_or(""),
        replaced,
        "Salesforce's answer held lone UTF-16 surrogate escapes; each was read as U+FFFD"
    );
    // Mending swaps ASCII escapes for ASCII escapes, so the text stays UTF-8.
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn first_error(value: &Value) -> (String, String) {
    let first = value.as_array().and_then(|a| a.first()).unwrap_or(value);
    let text = |k: &str| {
        first
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (text("errorCode"), text("message"))
}

/// The host of a URL, for messages.
fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| url.to_owned())
}

/// reqwest's own whole-request timeout (set to the same duration as our deadline) may fire
/// first; it means the same. A connect timeout does not: that is a network failure, retried.
fn stalled(e: &reqwest::Error) -> bool {
    e.is_timeout() && !e.is_connect()
}

/// An error with its causes ("error sending request" alone does not say a certificate was
/// refused).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_header_parses() {
        assert_eq!(
            ApiUsage::parse("api-usage=18/5000"),
            Some(ApiUsage {
                used: 18,
                max: 5000
            })
        );
        assert_eq!(
            ApiUsage::parse("api-usage=25/5000; per-app-api-usage=17/250(appName=sample)"),
            Some(ApiUsage {
                used: 25,
                max: 5000
            })
        );
        assert_eq!(ApiUsage::parse("nothing"), None);
    }
}
