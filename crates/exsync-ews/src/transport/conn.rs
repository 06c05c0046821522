//! One HTTP/1.1 connection we own: TCP (through the name-resolution override), TLS that
//! verifies the original host name, and hyper's connection-level client. NTLM authenticates a
//! connection, so connections are never swapped behind our back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::tls::handshake_error;
use crate::error::EwsError;

/// Where to connect for a host, when DNS must not be asked (split DNS, tests).
#[derive(Debug, Clone, Default)]
pub struct Resolve {
    map: HashMap<String, SocketAddr>,
}

impl Resolve {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, host: &str, addr: SocketAddr) {
        self.map.insert(host.to_ascii_lowercase(), addr);
    }

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

/// A response read to the end.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
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

pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    /// DER of the server's leaf certificate, for NTLM channel binding.
    pub peer_cert: Option<Vec<u8>>,
    /// NTLM completed on this connection.
    pub authenticated: bool,
    pub host: String,
}

impl Connection {
    pub async fn open(
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

    pub fn is_usable(&self) -> bool {
        !self.sender.is_closed()
    }

    /// Sends one request and reads the whole response.
    pub async fn send(
        &mut self,
        request: http::Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<Response, EwsError> {
        self.send_tracked(request, timeout)
            .await
            .map_err(|f| f.error)
    }

    /// Like [`Connection::send`], but a failure says whether the request may have reached the
    /// server: only one that certainly did not may be repeated blindly.
    pub(crate) async fn send_tracked(
        &mut self,
        request: http::Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<Response, SendFailure> {
        let host = self.host.clone();
        let fail = |reason: String, maybe_sent: bool| SendFailure {
            error: EwsError::Connect {
                host: host.clone(),
                reason,
            },
            maybe_sent,
        };
        let exchange = async {
            self.sender
                .ready()
                .await
                .map_err(|e| fail(format!("connection not ready: {e}"), false))?;
            let response = self
                .sender
                .send_request(request)
                .await
                .map_err(|e| fail(format!("request failed: {e}"), true))?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| fail(format!("reading the response failed: {e}"), true))?
                .to_bytes();
            Ok(Response {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| fail(format!("no response within {timeout:?}"), true))?
    }
}
