//! The Graph client: JSON requests with the app's token, to the Graph host only, each under a
//! deadline and a reply cap, held to the per-mailbox limits, retried on 429/503/504 as Graph
//! asks, with typed errors.

use std::fmt;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value;
use url::Url;

use crate::assertion::Certificate;
use crate::batch::BatchReply;
use crate::config::GraphConfig;
use crate::error::{Error, GraphError, Result};
use crate::throttle::{mailbox_of, parse_retry_after, spread, Limiter};
use crate::token::{AccessToken, TokenClient};
use crate::transport::{host_of, Failure, Http, RawReply};

/// Pages one listing follows at most: far more than a mailbox fills at Graph's page sizes,
/// so reaching it means a server that keeps saying there is more.
pub const MAX_PAGES: usize = 100_000;

/// Whether a request may be sent again when its answer was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Sending it twice does no harm (reads, PATCHes, deletes): it is sent again after a
    /// dropped connection, a 503 or a 504.
    Safe,
    /// Sent again only when it surely was not processed (no connection, a 429): a create
    /// sent twice would make two items.
    OnlyIfNotSent,
}

/// One Graph request.
#[derive(Debug, Clone)]
pub struct GraphRequest {
    /// The HTTP method.
    pub method: Method,
    /// A path relative to the version (`/users/{id}/contacts?$top=10`), or an absolute URL
    /// on the Graph host (a next or delta link).
    pub url: String,
    /// Extra headers (`Prefer`, `If-Match`…).
    pub headers: Vec<(String, String)>,
    /// A JSON body.
    pub body: Option<Value>,
    /// Whether it may be repeated; by method unless set.
    pub idempotency: Idempotency,
}

impl GraphRequest {
    /// A request with no body; POSTs are [`Idempotency::OnlyIfNotSent`], the rest
    /// [`Idempotency::Safe`].
    pub fn new(method: Method, url: impl Into<String>) -> GraphRequest {
        let idempotency = if method == Method::POST {
            Idempotency::OnlyIfNotSent
        } else {
            Idempotency::Safe
        };
        GraphRequest {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
            idempotency,
        }
    }

    /// `GET url`.
    pub fn get(url: impl Into<String>) -> GraphRequest {
        GraphRequest::new(Method::GET, url)
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> GraphRequest {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the JSON body.
    pub fn json(mut self, body: Value) -> GraphRequest {
        self.body = Some(body);
        self
    }

    /// Overrides whether the request may be repeated.
    pub fn idempotency(mut self, idempotency: Idempotency) -> GraphRequest {
        self.idempotency = idempotency;
        self
    }
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct GraphReply {
    /// The HTTP status (2xx).
    pub status: u16,
    /// The JSON body; `Null` when empty (204).
    pub body: Value,
    /// The `ETag` header, when there is one.
    pub etag: Option<String>,
    /// The `Location` header, when there is one.
    pub location: Option<String>,
}

/// One page of a listing.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The page's `value`.
    pub items: Vec<Value>,
    /// `@odata.nextLink`: there is more.
    pub next_link: Option<String>,
    /// `@odata.deltaLink`: the round is complete; keep this for the next one.
    pub delta_link: Option<String>,
}

/// A listing followed to its end.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    /// Every page's items, in order.
    pub items: Vec<Value>,
    /// The final `@odata.deltaLink` (none for a listing that is not a delta query).
    pub delta_link: Option<String>,
}

/// A connection to one tenant's Graph, shared by all its mailboxes.
pub struct GraphClient {
    pub(crate) http: Http,
    tokens: TokenClient,
    pub(crate) limiter: Limiter,
    graph_url: Url,
    observer: Option<exsync_core::observe::Observer>,
    tenant_id: String,
    client_id: String,
}

impl fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphClient")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("graph_url", &self.graph_url.as_str())
            .finish_non_exhaustive()
    }
}

/// What the metrics call a request: its path with ids replaced, without the query.
pub(crate) fn endpoint(path: &str) -> String {
    const NAMED: &[&str] = &[
        "users",
        "contactFolders",
        "childFolders",
        "contacts",
        "delta",
        "calendar",
        "calendars",
        "events",
        "calendarView",
        "instances",
        "exceptionOccurrences",
        "$batch",
    ];
    let path = path.split(['?', '#']).next().unwrap_or("");
    let path = path.split_once("://").map_or(path, |(_, rest)| {
        rest.split_once('/').map_or("", |(_, p)| p)
    });
    let mut key = String::new();
    for segment in path
        .split('/')
        .filter(|s| !s.is_empty() && *s != crate::cloud::API_VERSION)
        .take(8)
    {
        key.push('/');
        key.push_str(if NAMED.contains(&segment) {
            segment
        } else {
            "{id}"
        });
    }
    if key.is_empty() {
        key.push('/');
    }
    key
}

/// A JSON answer from `url`, parsed after each lone UTF-16 surrogate escape in it (text cut
/// between an emoji's halves) became `BROKEN` (U+FFFD once the record is cleaned): one such
/// string would otherwise refuse the whole page, on every pass. The trace names the endpoint only, never the text.
pub(crate) fn parse_answer(body: &[u8], url: &str) -> serde_json::Result<Value> {
    let mended = exsync_core::surrogates::mend_lone_surrogates(body);
    if mended.replaced > 0 {
        tracing::warn!(
            endpoint = %endpoint(url),
            replaced = mended.replaced,
            "Graph's answer held lone UTF-16 surrogate escapes; each was read as U+FFFD"
        );
    }
    serde_json::from_slice(&mended.text)
}

impl GraphClient {
    /// A client for `config`. Nothing is sent yet; fails only on an unusable configuration
    /// (a certificate or key that does not parse or belong together, a CA file, a URL).
    pub fn new(config: GraphConfig) -> Result<GraphClient> {
        config.cloud.validate()?;
        let http = Http::new(&config)?;
        let tokens = TokenClient::new(&config)?;
        let graph_url = Url::parse(&format!("{}/", config.cloud.graph_url()))
            .map_err(|e| Error::Config(format!("the Graph URL: {e}")))?;
        let limits = &config.limits;
        Ok(GraphClient {
            limiter: Limiter::new(
                limits.per_mailbox,
                limits.budget_per_minute,
                limits.max_wait,
            ),
            http,
            tokens,
            graph_url,
            observer: config.observer,
            tenant_id: config.tenant_id,
            client_id: config.client_id,
        })
    }

    /// How many requests one mailbox may have in flight at once (`Limits::per_mailbox`).
    pub fn requests_per_mailbox(&self) -> usize {
        self.limiter.per_mailbox()
    }

    /// The app's certificate, when it authenticates with one (its expiry, thumbprints).
    pub fn certificate(&self) -> Option<&Certificate> {
        self.tokens.certificate()
    }

    /// When the app's certificate expires, when it authenticates with one.
    pub fn certificate_expiry(&self) -> Option<DateTime<Utc>> {
        self.certificate().map(Certificate::not_after)
    }

    /// The current token (fetched if needed): its expiry and roles, for checks.
    pub async fn token(&self) -> Result<AccessToken> {
        self.tokens.get(&self.http).await
    }

    /// How much longer Graph's throttling keeps `mailbox` (as named in request paths: the
    /// id or address after `/users/`) paused; zero when it is not. Requests name a mailbox
    /// one way throughout, so its slots, budget and pause are one.
    pub fn paused_for(&self, mailbox: &str) -> Duration {
        self.limiter.paused_for(mailbox)
    }

    /// `<graph>/v1.0/`, which relative paths are resolved against.
    pub fn graph_url(&self) -> &str {
        self.graph_url.as_str()
    }

    /// The URL a request goes to: a relative path under the version, or an absolute URL that
    /// must be on the Graph host (a next link pointing elsewhere is refused before the token
    /// goes there) and in the allow-list.
    pub(crate) fn resolve(&self, url: &str) -> Result<Url> {
        let absolute = if url.contains("://") {
            let parsed = Url::parse(url).map_err(|e| Error::Refused {
                url: url.chars().take(200).collect(),
                reason: format!("not a URL: {e}"),
            })?;
            let same_origin = parsed.scheme() == self.graph_url.scheme()
                && parsed.host() == self.graph_url.host()
                && parsed.port_or_known_default() == self.graph_url.port_or_known_default();
            if !same_origin {
                return Err(Error::Refused {
                    url: url.chars().take(200).collect(),
                    reason: format!("not on the Graph host {}", host_of(&self.graph_url)),
                });
            }
            url.to_owned()
        } else {
            let path = url.trim_start_matches('/');
            format!("{}{path}", self.graph_url)
        };
        self.http.check(&absolute)
    }

    /// `url` as a `$batch` item names it: relative to the version. A link Graph gave must be
    /// on its host and under the version, as [`Self::resolve`] requires of any request.
    pub fn relative(&self, url: &str) -> Result<String> {
        if !url.contains("://") {
            return Ok(format!("/{}", url.trim_start_matches('/')));
        }
        let absolute = self.resolve(url)?;
        absolute
            .as_str()
            .strip_prefix(self.graph_url.as_str())
            .map(|rest| format!("/{rest}"))
            .ok_or_else(|| Error::Refused {
                url: url.chars().take(200).collect(),
                reason: format!("not under {}", self.graph_url),
            })
    }

    fn observe(&self, url: &str, outcome: &str) {
        if let Some(o) = &self.observer {
            o.0.request("graph", &endpoint(url), outcome);
        }
    }

    pub(crate) fn observe_wait(&self, wait: Duration) {
        if let Some(o) = &self.observer {
            o.0.throttled("graph", wait);
        }
    }

    /// Sends `request`; a 2xx answer comes back, anything else as an error.
    pub async fn send(&self, request: GraphRequest) -> Result<GraphReply> {
        let mailbox = mailbox_of(&request.url);
        let costs = vec![(mailbox, 1)];
        let raw = self.execute(&request, &costs).await?;
        let body = if raw.body.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            parse_answer(&raw.body, &request.url).map_err(|e| {
                Error::Decode(format!(
                    "{} {}: HTTP {}: body is not JSON: {e}",
                    request.method,
                    endpoint(&request.url),
                    raw.status
                ))
            })?
        };
        let header = |name: &str| {
            raw.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(GraphReply {
            status: raw.status,
            etag: header("etag"),
            location: header("location"),
            body,
        })
    }

    /// `GET url`, its JSON body.
    pub async fn get(&self, url: &str) -> Result<Value> {
        Ok(self.send(GraphRequest::get(url)).await?.body)
    }

    /// Runs `request` to a 2xx answer or an error: admitted by the limiter for `costs`
    /// (mailbox keys and their request counts), retried on 429/503/504 and lost answers as
    /// far as its idempotency allows, and once with a new token after a 401
    /// `InvalidAuthenticationToken`.
    pub(crate) async fn execute(
        &self,
        request: &GraphRequest,
        costs: &[(String, u32)],
    ) -> Result<RawReply> {
        let url = self.resolve(&request.url)?;
        let host = host_of(&url);
        let mut attempt = 1;
        let mut renewed = false;
        loop {
            let permit = self.limiter.admit(costs).await?;
            let token = self.tokens.get(&self.http).await?;
            let mut builder = self
                .http
                .request(request.method.clone(), url.clone())
                .bearer_auth(token.secret())
                .header("Accept", "application/json")
                .header("client-request-id", uuid::Uuid::new_v4().to_string());
            for (name, value) in &request.headers {
                builder = builder.header(name.as_str(), value.as_str());
            }
            if let Some(body) = &request.body {
                builder = builder.json(body);
            }
            let outcome = self.http.exchange(builder, &host).await;
            drop(permit);
            let reply = match outcome {
                Ok(reply) => reply,
                Err(failure) => {
                    self.observe(&request.url, failure.outcome());
                    let retry = attempt < self.http.limits.max_attempts
                        && match &failure {
                            Failure::NotSent(_) => true,
                            Failure::Lost(_) => request.idempotency == Idempotency::Safe,
                            Failure::Final(_) => false,
                        };
                    if !retry {
                        return Err(failure.into_error());
                    }
                    let wait = self.http.backoff(attempt);
                    tracing::warn!(method = %request.method, endpoint = %endpoint(&request.url), attempt, ?wait, error = %failure.into_error(), "Graph request failed; retrying");
                    attempt += 1;
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            let status = reply.status;
            let outcome = match status {
                200..=299 => "ok",
                429 => "throttled",
                500..=599 => "http_5xx",
                _ => "http_4xx",
            };
            self.observe(&request.url, outcome);
            if (200..300).contains(&status) {
                return Ok(reply);
            }
            let mut error = graph_error(&reply);
            if status == 401
                && error
                    .code
                    .eq_ignore_ascii_case("InvalidAuthenticationToken")
            {
                if !renewed {
                    // Revoked or expired early: one new token, one more try.
                    tracing::info!("Graph refused the token; obtaining a new one");
                    renewed = true;
                    self.tokens.forget(&token).await;
                    continue;
                }
                return Err(error.into());
            }
            if matches!(status, 429 | 503 | 504) {
                let asked = error.retry_after;
                let wait = asked.unwrap_or_else(|| self.http.backoff(attempt));
                let mailboxes: Vec<&str> = costs.iter().map(|(m, _)| m.as_str()).collect();
                // The mailbox pauses alone: its other requests wait too, the others go on.
                for m in &mailboxes {
                    self.limiter.pause(m, spread(wait));
                }
                self.observe_wait(wait);
                let may_retry = attempt < self.http.limits.max_attempts
                    && (status == 429 || request.idempotency == Idempotency::Safe)
                    && wait <= self.http.limits.max_wait;
                tracing::warn!(
                    status,
                    code = %error.code,
                    mailbox = mailboxes.join(","),
                    ?wait,
                    attempt,
                    retrying = may_retry,
                    "Graph is throttling"
                );
                if may_retry {
                    attempt += 1;
                    continue;
                }
                error.retry_after = Some(wait);
                return Err(error.into());
            }
            return Err(error.into());
        }
    }

    /// One page of a listing: `url` (relative or a link Graph gave) with `headers` (`Prefer:
    /// odata.maxpagesize=…` must be repeated on every page).
    pub async fn page(&self, url: &str, headers: &[(String, String)]) -> Result<Page> {
        let mut request = GraphRequest::get(url);
        request.headers = headers.to_vec();
        let body = self.send(request).await?.body;
        page_of(body)
    }

    /// Follows `@odata.nextLink` from `url` until a page carries `@odata.deltaLink` (or no
    /// next link), and returns every item with the final delta link. Each link is checked to
    /// be on the Graph host before the token goes there.
    pub async fn collect(&self, url: &str, headers: &[(String, String)]) -> Result<Collected> {
        let mut collected = Collected::default();
        let mut next = url.to_owned();
        for _ in 0..MAX_PAGES {
            let page = self.page(&next, headers).await?;
            collected.items.extend(page.items);
            if let Some(delta) = page.delta_link {
                collected.delta_link = Some(delta);
                return Ok(collected);
            }
            match page.next_link {
                Some(link) => next = link,
                None => return Ok(collected),
            }
        }
        Err(Error::Decode(format!(
            "{}: still more pages after {MAX_PAGES}",
            endpoint(url)
        )))
    }
}

impl Page {
    /// The page a `$batch` item answered, or the item's error.
    pub fn from_reply(reply: BatchReply) -> Result<Page> {
        page_of(reply.into_result()?)
    }
}

/// Reads a listing page.
pub(crate) fn page_of(mut body: Value) -> Result<Page> {
    let link = |body: &Value, key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
    let next_link = link(&body, "@odata.nextLink");
    let delta_link = link(&body, "@odata.deltaLink");
    let items = match body.get_mut("value").map(Value::take) {
        Some(Value::Array(items)) => items,
        Some(_) => return Err(Error::Decode("a page whose value is not a list".into())),
        None => return Err(Error::Decode("a page without value".into())),
    };
    Ok(Page {
        items,
        next_link,
        delta_link,
    })
}

/// Graph's error for a non-2xx answer, with the wait it asked for.
fn graph_error(reply: &RawReply) -> GraphError {
    let body: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
    let mut error = GraphError::from_body(reply.status, &body);
    error.retry_after = retry_after(&reply.headers);
    error.location = reply
        .headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if error.request_id.is_none() {
        error.request_id = reply
            .headers
            .get("request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
    }
    error
}

pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoints_hide_ids_and_queries() {
        assert_eq!(
            endpoint("/users/u@x.test/contactFolders/AAMk=/contacts/delta?$deltatoken=x"),
            "/users/{id}/contactFolders/{id}/contacts/delta"
        );
        assert_eq!(
            endpoint("https://graph.microsoft.com/v1.0/users/u/calendarView/delta?$skiptoken=1"),
            "/users/{id}/calendarView/delta"
        );
        assert_eq!(endpoint("/$batch"), "/$batch");
    }

    #[test]
    fn pages_give_items_and_links() {
        let p = page_of(json!({"value": [1, 2], "@odata.nextLink": "n"})).unwrap();
        assert_eq!((p.items.len(), p.next_link.as_deref()), (2, Some("n")));
        let p = page_of(json!({"value": [], "@odata.deltaLink": "d"})).unwrap();
        assert_eq!(p.delta_link.as_deref(), Some("d"));
        assert!(page_of(json!({"error": {}})).is_err());
    }
}
