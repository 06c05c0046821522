//! A scriptable HTTPS server for cases the simulator cannot stage (expired certificates,
//! hosts outside the test domain, long redirect chains, partial batch failures). It asks for
//! Basic auth like a real server and records every Authorization header by Host.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use exsync_testkit::hostile::tls;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub struct Seen {
    pub host: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: String,
}

pub type Handler = Arc<dyn Fn(&Seen) -> (u16, Vec<(String, String)>, String) + Send + Sync>;

pub struct Fake {
    pub addr: SocketAddr,
    pub ca_file: PathBuf,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    _dir: tempfile::TempDir,
}

impl Fake {
    pub fn authorization_hosts(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for s in self.seen.lock().unwrap().iter() {
            if s.authorization.is_some() {
                *out.entry(s.host.clone()).or_default() += 1;
            }
        }
        out
    }
}

/// Starts a server whose certificate covers `names`; `expired` makes it one that ran out.
pub async fn start(names: &[&str], expired: bool, handler: Handler) -> Fake {
    start_with_challenge(names, expired, "Basic realm=\"fake\"", handler).await
}

/// [`start`], answering a request without credentials with `challenge` in its 401.
pub async fn start_with_challenge(
    names: &[&str],
    expired: bool,
    challenge: &'static str,
    handler: Handler,
) -> Fake {
    let (acceptor, ca_file, dir) = tls(names, expired);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let seen_server = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let handler = Arc::clone(&handler);
            let seen = Arc::clone(&seen_server);
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let handler = Arc::clone(&handler);
                    let seen = Arc::clone(&seen);
                    async move {
                        let host = req
                            .headers()
                            .get("host")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .split(':')
                            .next()
                            .unwrap_or("")
                            .to_owned();
                        let path = req.uri().path().to_owned();
                        let authorization = req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let s = Seen {
                            host,
                            path,
                            authorization,
                            body: String::from_utf8_lossy(&body).into_owned(),
                        };
                        let (status, headers, body) = if s.authorization.is_none() {
                            (
                                401,
                                vec![("WWW-Authenticate".to_owned(), challenge.to_owned())],
                                String::new(),
                            )
                        } else {
                            handler(&s)
                        };
                        seen.lock().unwrap().push(s);
                        let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
                        *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        for (k, v) in headers {
                            response.headers_mut().append(
                                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                                v.parse().unwrap(),
                            );
                        }
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Fake {
        addr,
        ca_file,
        seen,
        _dir: dir,
    }
}

pub fn soap_ok(body: &str) -> (u16, Vec<(String, String)>, String) {
    (
        200,
        vec![("Content-Type".into(), "text/xml; charset=utf-8".into())],
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>{body}</s:Body></s:Envelope>"
        ),
    )
}
