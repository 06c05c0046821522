//! One HTTP/1.1 connection we own: TCP (through the name-resolution override), TLS that
//! verifies the original host name, and hyper's connection-level client. NTLM authenticates a
//! connection, so connections are never swapped behind our back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use super::tls::handshake_error;
use crate::error::EwsError;

/// Where to connect for a host, when DNS must not be asked (split DNS, tests).
#[derive(Debug, Clone, Default)]
pub struct Resolve {
    map: HashMap<String, SocketAddr>,
}

impl Resolve {
    /// No overrides: every host is looked up in DNS.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends `host` (or `host:port`) to `addr` instead of asking DNS.
    pub fn insert(&mut self, host: &str, addr: SocketAddr) {
        self.map.insert(host.to_ascii_lowercase(), addr);
    }

    /// Builder form of [`Resolve::insert`].
    pub fn with(mut self, host: &str, addr: SocketAddr) -> Self {
        self.insert(host, addr);
        self
    }

    /// `host:port` entries win over plain `host` ones, so one name can point to different
    /// places for http and https.
    pub fn lookup(&self, host: &str, port: u16) -> Option<SocketAddr> {
        let host = host.to_ascii_lowercase();
        self.map
            .get(&format!("{host}:{port}"))
            .or_else(|| self.map.get(&host))
            .copied()
    }
}

/// Replies up to this size are accepted unless configured otherwise. The largest genuine
/// replies are GetItem batches (100 items with all properties and text bodies) and Exchange
/// itself refuses EWS messages over 64 MiB by default; a SyncFolderItems page of 512 ids is a
/// few hundred KiB.
pub(crate) const DEFAULT_MAX_REPLY_BYTES: u64 = 64 * 1024 * 1024;

/// The moment an exchange (or a series of them, such as an Autodiscover candidate and its
/// redirects) must be over, and the budget it was given, for messages.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    budget: Duration,
}

impl Deadline {
    pub fn after(budget: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + budget,
            budget,
        }
    }

    pub fn at(&self) -> Instant {
        self.at
    }

    pub fn budget(&self) -> Duration {
        self.budget
    }

    pub(crate) fn expired(&self, host: &str) -> EwsError {
        EwsError::Timeout {
            host: host.to_owned(),
            timeout: self.budget,
        }
    }
}

/// How long an exchange may take in all and how large its reply may be.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReplyLimits {
    pub deadline: Deadline,
    pub max_bytes: u64,
}

/// A response read to the end.
#[derive(Debug, Clone)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The reply's headers (e.g. `WWW-Authenticate`, `Retry-After`).
    pub headers: http::HeaderMap,
    /// The whole body, within the size cap.
    pub body: Bytes,
}

impl Response {
    /// The body as text, for messages and parsing; invalid UTF-8 is replaced.
    pub fn text(&self) -> String {
        // Checking a valid body whole is several times cheaper than the lossy walk, which
        // only a body with invalid bytes needs.
        match std::str::from_utf8(&self.body) {
            Ok(text) => text.to_owned(),
            Err(_) => String::from_utf8_lossy(&self.body).into_owned(),
        }
    }
}

/// A failed exchange, and whether the server may have acted on the request.
#[derive(Debug)]
pub(crate) struct SendFailure {
    pub error: EwsError,
    pub maybe_sent: bool,
}

impl From<EwsError> for SendFailure {
    /// Errors from outside the send itself (auth refused, a bad challenge) come after the
    /// request reached the server.
    fn from(error: EwsError) -> Self {
        SendFailure {
            error,
            maybe_sent: true,
        }
    }
}

pub(crate) struct Connection {
    sender: SendRequest<Full<Bytes>>,
    /// DER of the server's leaf certificate, for NTLM channel binding.
    pub peer_cert: Option<Vec<u8>>,
    /// NTLM completed on this connection.
    pub authenticated: bool,
    pub host: String,
}

impl Connection {
    pub(crate) async fn open(
        host: &str,
        port: u16,
        tls: Option<&Arc<rustls::ClientConfig>>,
        resolve: &Resolve,
        timeout: Duration,
    ) -> Result<Connection, EwsError> {
        let connect_error = |reason: String| EwsError::Connect {
            host: host.to_owned(),
            reason,
        };
        let tcp = match resolve.lookup(host, port) {
            Some(addr) => tokio::time::timeout(timeout, TcpStream::connect(addr)).await,
            None => tokio::time::timeout(timeout, TcpStream::connect((host, port))).await,
        }
        .map_err(|_| connect_error(format!("no connection within {timeout:?}")))?
        .map_err(|e| connect_error(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        match tls {
            Some(config) => {
                let name = ServerName::try_from(host.to_owned())
                    .map_err(|e| connect_error(format!("not a valid TLS server name: {e}")))?;
                let stream = tokio::time::timeout(
                    timeout,
                    TlsConnector::from(Arc::clone(config)).connect(name, tcp),
                )
                .await
                .map_err(|_| connect_error(format!("no TLS handshake within {timeout:?}")))?
                .map_err(|e| handshake_error(host, &e))?;
                let peer_cert = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| c.as_ref().to_vec());
                Self::handshake(host, TokioIo::new(stream), peer_cert).await
            }
            None => Self::handshake(host, TokioIo::new(tcp), None).await,
        }
    }

    async fn handshake<I>(host: &str, io: I, peer_cert: Option<Vec<u8>>) -> Result<Self, EwsError>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| EwsError::Connect {
                host: host.to_owned(),
                reason: e.to_string(),
            })?;
        let host_owned = host.to_owned();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(host = %host_owned, error = %e, "connection ended");
            }
        });
        Ok(Connection {
            sender,
            peer_cert,
            authenticated: false,
            host: host.to_owned(),
        })
    }

    pub(crate) fn is_usable(&self) -> bool {
        !self.sender.is_closed()
    }

    /// Sends one request and reads the whole response, within `limits`.
    pub(crate) async fn send(
        &mut self,
        request: http::Request<Full<Bytes>>,
        limits: ReplyLimits,
    ) -> Result<Response, EwsError> {
        self.send_tracked(request, limits)
            .await
            .map_err(|f| f.error)
    }

    /// Like [`Connection::send`], but a failure says whether the request may have reached the
    /// server: only one that certainly did not may be repeated blindly.
    pub(crate) async fn send_tracked(
        &mut self,
        request: http::Request<Full<Bytes>>,
        limits: ReplyLimits,
    ) -> Result<Response, SendFailure> {
        let host = self.host.clone();
        let fail = |reason: String, maybe_sent: bool| SendFailure {
            error: EwsError::Connect {
                host: host.clone(),
                reason,
            },
            maybe_sent,
        };
        let deadline = limits.deadline;
        // One deadline for every step, so a server that keeps each step just short of a
        // timeout of its own cannot stretch the whole.
        let expired = |maybe_sent: bool| SendFailure {
            error: deadline.expired(&host),
            maybe_sent,
        };
        tokio::time::timeout_at(deadline.at(), self.sender.ready())
            .await
            .map_err(|_| expired(false))?
            .map_err(|e| fail(format!("connection not ready: {e}"), false))?;
        let response = tokio::time::timeout_at(deadline.at(), self.sender.send_request(request))
            .await
            .map_err(|_| expired(true))?
            .map_err(|e| fail(format!("request failed: {e}"), true))?;
        let (parts, body) = response.into_parts();
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = tokio::time::timeout_at(
            deadline.at(),
            read_body(&host, body, declared, limits.max_bytes),
        )
        .await
        .map_err(|_| expired(true))?
        .map_err(|error| SendFailure {
            error,
            maybe_sent: true,
        })?;
        Ok(Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }
}

/// Reads a body frame by frame, refusing it as soon as it would pass `max` bytes: a reply is
/// never held whole before its size is known to be acceptable.
async fn read_body(
    host: &str,
    mut body: hyper::body::Incoming,
    declared: Option<u64>,
    max: u64,
) -> Result<Bytes, EwsError> {
    let too_large = || EwsError::ReplyTooLarge {
        host: host.to_owned(),
        limit: max,
    };
    if declared.is_some_and(|n| n > max) {
        return Err(too_large());
    }
    // A declared length is only a claim: reserve for it up to a modest size and let the
    // buffer grow with what actually arrives.
    let reserve = declared.unwrap_or(0).min(max).min(1024 * 1024);
    let mut buf = BytesMut::with_capacity(usize::try_from(reserve).unwrap_or(0));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| EwsError::Connect {
            host: host.to_owned(),
            reason: format!("reading the response failed: {e}"),
        })?;
        if let Ok(data) = frame.into_data() {
            if (buf.len() as u64).saturating_add(data.len() as u64) > max {
                return Err(too_large());
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(body: &'static [u8]) -> Response {
        Response {
            status: 200,
            headers: http::HeaderMap::new(),
            body: Bytes::from_static(body),
        }
    }

    #[test]
    fn a_body_reads_as_text_and_invalid_bytes_are_replaced() {
        assert_eq!(response("<a>é</a>".as_bytes()).text(), "<a>é</a>");
        assert_eq!(
            response(b"<a>\xff\xfe</a>").text(),
            "<a>\u{fffd}\u{fffd}</a>"
        );
        assert_eq!(response(b"").text(), "");
    }
}
