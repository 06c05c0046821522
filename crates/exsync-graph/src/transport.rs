//! One HTTPS exchange under a deadline and a reply-size cap, to an allowed host only. The
//! token client and the Graph client both send through here; retries are theirs.

use std::time::Duration;

use exsync_core::AllowList;
use reqwest::header::HeaderMap;
use tokio::time::Instant;
use url::{Host, Url};

use crate::config::{GraphConfig, Limits};
use crate::error::{Error, Result, TransportError};

/// An answer read in full (within the cap).
#[derive(Debug)]
pub(crate) struct RawReply {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// Why one exchange gave no answer, and whether the request may have reached the server.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The connection could not be made: nothing was sent, a retry is always safe.
    NotSent(TransportError),
    /// Sent, but the answer was lost or cut short: a retry may repeat the request.
    Lost(TransportError),
    /// Timed out or too large: asking again would most likely cost as much again.
    Final(TransportError),
}

impl Failure {
    pub(crate) fn into_error(self) -> Error {
        match self {
            Failure::NotSent(e) | Failure::Lost(e) | Failure::Final(e) => Error::Transport(e),
        }
    }

    pub(crate) fn outcome(&self) -> &'static str {
        match self {
            Failure::Final(TransportError::Timeout { .. }) => "timeout",
            Failure::Final(_) => "too_large",
            _ => "connection",
        }
    }
}

/// The reqwest client and the rules every exchange follows.
pub(crate) struct Http {
    client: reqwest::Client,
    allow: AllowList,
    pub(crate) limits: Limits,
}

impl Http {
    pub(crate) fn new(config: &GraphConfig) -> Result<Http> {
        // reqwest and the rest of the workspace share rustls' ring provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let limits = config.limits.clone();
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .https_only(true)
            // Graph's redirects are signals (410's Location), not hops; and a token must never
            // follow one to another host.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(limits.timeout)
            .connect_timeout(limits.connect_timeout.min(limits.timeout))
            .user_agent(concat!("exsync/", env!("CARGO_PKG_VERSION")));
        let mut roots = 0usize;
        if let Some(pem) = &config.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::Config(format!("CA file is not PEM certificates: {e}")))?;
            if certs.is_empty() {
                return Err(Error::Config("CA file holds no certificate".into()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
                roots += 1;
            }
        }
        if config.system_roots {
            for cert in rustls_native_certs::load_native_certs().certs {
                if let Ok(cert) = reqwest::Certificate::from_der(cert.as_ref()) {
                    builder = builder.add_root_certificate(cert);
                    roots += 1;
                }
            }
        }
        if roots == 0 {
            return Err(Error::Config(
                "no trusted CA certificate: the system has none and no CA file was given".into(),
            ));
        }
        let client = builder
            .build()
            .map_err(|e| Error::Config(format!("building the HTTP client: {e}")))?;
        let allow = if config.allow.domains().is_empty() {
            // The cloud's own hosts, and nothing else.
            let hosts = [config.cloud.authority_host(), config.cloud.graph_base()]
                .into_iter()
                .filter_map(|u| Url::parse(u).ok())
                .filter_map(|u| u.host_str().map(str::to_owned))
                .collect::<Vec<_>>();
            AllowList::new(hosts)
        } else {
            config.allow.clone()
        };
        Ok(Http {
            client,
            allow,
            limits,
        })
    }

    /// Whether `url` may carry a credential: https, and a host inside the allow-list. A
    /// loopback address is inside only when the list names it exactly (a local simulator);
    /// no other IP address ever is.
    pub(crate) fn check(&self, url: &str) -> Result<Url> {
        let refused = |reason: String| Error::Refused {
            url: url.chars().take(200).collect(),
            reason,
        };
        let parsed = Url::parse(url).map_err(|e| refused(format!("not a URL: {e}")))?;
        if parsed.scheme() != "https" {
            return Err(refused("not https".into()));
        }
        let allowed =
            match parsed.host() {
                Some(Host::Domain(d)) => self.allow.allows(d),
                Some(Host::Ipv4(ip)) => {
                    ip.is_loopback() && self.allow.domains().iter().any(|d| *d == ip.to_string())
                }
                Some(Host::Ipv6(ip)) => {
                    ip.is_loopback()
                        && self.allow.domains().iter().any(|d| {
                            d.trim_start_matches('[').trim_end_matches(']') == ip.to_string()
                        })
                }
                None => false,
            };
        if !allowed {
            return Err(refused(format!(
                "host {} is outside the allow-list ({})",
                parsed.host_str().unwrap_or(""),
                self.allow.domains().join(", ")
            )));
        }
        Ok(parsed)
    }

    pub(crate) fn request(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        self.client.request(method, url)
    }

    /// Sends `request` (already checked) and reads the whole answer, under one deadline.
    pub(crate) async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        host: &str,
    ) -> std::result::Result<RawReply, Failure> {
        let deadline = Instant::now() + self.limits.timeout;
        let timed_out = || TransportError::Timeout {
            host: host.to_owned(),
            timeout: self.limits.timeout,
        };
        let sent = match tokio::time::timeout_at(deadline, request.send()).await {
            Ok(sent) => sent,
            Err(_) => return Err(Failure::Final(timed_out())),
        };
        let mut response = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() && !e.is_connect() => return Err(Failure::Final(timed_out())),
            Err(e) if e.is_connect() => {
                return Err(Failure::NotSent(TransportError::Failed(chain(&e))))
            }
            Err(e) => return Err(Failure::Lost(TransportError::Failed(chain(&e)))),
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let limit = self.limits.max_reply_bytes;
        let too_large = || {
            Failure::Final(TransportError::ReplyTooLarge {
                host: host.to_owned(),
                limit,
            })
        };
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        loop {
            let chunk = tokio::time::timeout_at(deadline, response.chunk())
                .await
                .map_err(|_| Failure::Final(timed_out()))?;
            match chunk {
                Ok(Some(chunk)) => {
                    if (body.len() as u64).saturating_add(chunk.len() as u64) > limit {
                        return Err(too_large());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => return Err(Failure::Final(timed_out())),
                Err(e) => {
                    return Err(Failure::Lost(TransportError::Failed(format!(
                        "reading the answer: {}",
                        chain(&e)
                    ))))
                }
            }
        }
        Ok(RawReply {
            status,
            headers,
            body,
        })
    }

    /// The back-off before retry `attempt` when the server named no wait.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        crate::throttle::backoff(self.limits.retry_base, self.limits.retry_cap, attempt)
    }
}

/// The host (and port) of a URL, for messages.
pub(crate) fn host_of(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => String::new(),
    }
}

/// An error with its causes ("error sending request" alone does not say a certificate was
/// refused).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
