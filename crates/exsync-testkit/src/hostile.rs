//! Hostile servers for the limits a reply must stay within. One speaks just enough HTTP/1.1 to
//! read a request (head and Content-Length body), then answers with its script: a reply that
//! trickles, never ends, is huge, announces more than it sends, or is whatever bytes the test
//! wrote. It counts every TCP connection and request, so a test can also prove that nothing
//! reached it. The EWS and Salesforce connectors are both tested against it; they differ only
//! in the body type ([`Flavor`]) and in the routes a script answers differently.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// What the server answers one request with.
#[derive(Clone, Debug)]
pub enum Reply {
    /// These bytes, then the connection stays open (the client decides when it has enough).
    Raw(Vec<u8>),
    /// A 200 with a Content-Length whose body is this text (of the script's [`Flavor`]), then
    /// the connection stays open without reading further requests.
    Body(String),
    /// A complete 200 with this body (of the script's [`Flavor`]), after which the connection
    /// serves the next request, as a well-behaved endpoint would (a token endpoint in front of
    /// a hostile API).
    Answer(String),
    /// One byte of a plausible reply every `every`, from the status line on, never done.
    Trickle { every: Duration },
    /// A server that keeps every step just short of a timeout of its own: it waits
    /// `handshake_delay` before the TLS handshake, sends its 401 one byte every `every` to a
    /// request without credentials, and trickles the answer to the authenticated request
    /// forever.
    Paced {
        handshake_delay: Duration,
        every: Duration,
    },
    /// A chunked 200 whose chunks never stop coming.
    Endless,
    /// A chunked 200 of `size` bytes in all: no Content-Length says how big it is up front.
    Chunked { size: u64 },
    /// A Content-Length of `size`, then nothing.
    Announced { size: u64 },
}

/// The kind of body the server pretends to serve: its Content-Type, what an unfinished body
/// starts with, and the filler of a huge one.
#[derive(Clone, Copy, Debug)]
pub struct Flavor {
    pub content_type: &'static str,
    pub opening: &'static [u8],
    pub filler: u8,
}

impl Flavor {
    /// SOAP, as EWS and Autodiscover speak it.
    pub const XML: Flavor = Flavor {
        content_type: "text/xml; charset=utf-8",
        opening: b"<?xml version=\"1.0\"?>",
        filler: b'x',
    };
    /// JSON, as the Salesforce REST API and its token endpoint speak it.
    pub const JSON: Flavor = Flavor {
        content_type: "application/json",
        opening: b"[",
        filler: b' ',
    };
}

/// A server's whole script: the reply to every request, except those whose path starts with
/// one of `routes`.
#[derive(Clone, Debug)]
pub struct Script {
    pub flavor: Flavor,
    pub reply: Reply,
    pub routes: Vec<(String, Reply)>,
}

impl Script {
    pub fn new(flavor: Flavor, reply: Reply) -> Script {
        Script {
            flavor,
            reply,
            routes: Vec::new(),
        }
    }

    /// Requests whose path starts with `prefix` get `reply` instead.
    pub fn route(mut self, prefix: &str, reply: Reply) -> Script {
        self.routes.push((prefix.to_owned(), reply));
        self
    }

    fn reply_to(&self, path: &str) -> &Reply {
        self.routes
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix.as_str()))
            .map_or(&self.reply, |(_, reply)| reply)
    }
}

/// A running server. Its tasks live as long as the test's runtime.
pub struct Hostile {
    pub addr: SocketAddr,
    /// The CA that signed the server's certificate (TLS servers only).
    pub ca_file: Option<PathBuf>,
    pub connections: Arc<AtomicUsize>,
    pub requests: Arc<AtomicUsize>,
    _dir: Option<tempfile::TempDir>,
}

impl Hostile {
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// `http://addr` (or `https://`), no trailing slash.
    pub fn url(&self) -> String {
        let scheme = if self.ca_file.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }
}

/// A server bound to a free port on 127.0.0.1 but not yet answering, so that a script can
/// name the server's own address (a token answer's `instance_url`).
pub struct Bound {
    listener: TcpListener,
    pub addr: SocketAddr,
    tls: Option<(TlsAcceptor, PathBuf, tempfile::TempDir)>,
}

/// Binds a server: https with a certificate for `names` when any are given, plain http
/// otherwise.
pub async fn bind(names: &[&str]) -> Bound {
    let tls = (!names.is_empty()).then(|| tls(names, false));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    Bound {
        listener,
        addr,
        tls,
    }
}

/// Starts an XML server (see [`bind`]) that answers every request with `reply`.
pub async fn start(names: &[&str], reply: Reply) -> Hostile {
    bind(names).await.serve(Script::new(Flavor::XML, reply))
}

impl Bound {
    /// Starts answering with `script`.
    pub fn serve(self, script: Script) -> Hostile {
        let Bound {
            listener,
            addr,
            tls,
        } = self;
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (acceptor, ca_file, dir) = match tls {
            Some((acceptor, ca_file, dir)) => (Some(acceptor), Some(ca_file), Some(dir)),
            None => (None, None, None),
        };
        let counted = Arc::clone(&connections);
        let asked = Arc::clone(&requests);
        let script = Arc::new(script);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let script = Arc::clone(&script);
                let acceptor = acceptor.clone();
                let asked = Arc::clone(&asked);
                tokio::spawn(async move {
                    if let Reply::Paced {
                        handshake_delay, ..
                    } = &script.reply
                    {
                        tokio::time::sleep(*handshake_delay).await;
                    }
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                serve(stream, &script, asked).await;
                            }
                        }
                        None => serve(tcp, &script, asked).await,
                    }
                });
            }
        });
        Hostile {
            addr,
            ca_file,
            connections,
            requests,
            _dir: dir,
        }
    }
}

/// A fresh CA and a leaf certificate for `names` signed by it, as a TLS acceptor, the CA's
/// PEM file and the directory holding it (keep it alive as long as the file is needed).
/// `expired` makes a leaf that ran out in 2021.
pub fn tls(names: &[&str], expired: bool) -> (TlsAcceptor, PathBuf, tempfile::TempDir) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "exsync test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    if expired {
        leaf_params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        leaf_params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let certs: Vec<CertificateDer<'static>> = vec![leaf.der().clone()];
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    (TlsAcceptor::from(Arc::new(config)), ca_file, dir)
}

/// What the server needs of a request.
struct Request {
    path: String,
    authorized: bool,
}

/// Reads one request: its head up to the blank line, then as many body bytes as its
/// Content-Length says. `None` when the client went away.
async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Request> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let lower = text.to_ascii_lowercase();
    let length: usize = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.ok()?;
    Some(Request {
        path: text.split_whitespace().nth(1).unwrap_or("/").to_owned(),
        authorized: lower.contains("\r\nauthorization:"),
    })
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    script: &Script,
    asked: Arc<AtomicUsize>,
) {
    while let Some(request) = read_request(&mut stream).await {
        asked.fetch_add(1, Ordering::SeqCst);
        let reply = script.reply_to(&request.path);
        if let Reply::Paced { every, .. } = reply {
            if !request.authorized {
                let challenge = b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\nContent-Length: 0\r\n\r\n";
                if trickle(&mut stream, challenge, *every).await.is_err() {
                    return;
                }
                continue;
            }
        }
        // A write error means the client hung up: the end of every script. Only a complete
        // answer comes back to read the next request.
        if answer(&mut stream, reply, script.flavor).await.is_err() {
            return;
        }
    }
}

async fn trickle<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    every: Duration,
) -> std::io::Result<()> {
    for byte in bytes {
        stream.write_all(&[*byte]).await?;
        stream.flush().await?;
        tokio::time::sleep(every).await;
    }
    Ok(())
}

async fn answer<S: AsyncWrite + Unpin>(
    stream: &mut S,
    reply: &Reply,
    flavor: Flavor,
) -> std::io::Result<()> {
    let content_type = flavor.content_type;
    let chunked = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    match reply {
        Reply::Raw(bytes) => {
            stream.write_all(bytes).await?;
            stream.flush().await?;
            // Stay open until the client gives up; never end the reply ourselves.
            std::future::pending::<()>().await;
        }
        Reply::Body(body) | Reply::Answer(body) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(body.as_bytes()).await?;
            stream.flush().await?;
            if let Reply::Body(_) = reply {
                std::future::pending::<()>().await;
            }
        }
        Reply::Trickle { every } | Reply::Paced { every, .. } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: 100000\r\n\r\n"
            );
            trickle(stream, head.as_bytes(), *every).await?;
            trickle(stream, flavor.opening, *every).await?;
            loop {
                trickle(stream, &[flavor.filler], *every).await?;
            }
        }
        Reply::Endless => {
            stream.write_all(chunked.as_bytes()).await?;
            let piece = chunk(64 * 1024, flavor.filler);
            loop {
                stream.write_all(&piece).await?;
            }
        }
        Reply::Chunked { size } => {
            stream.write_all(chunked.as_bytes()).await?;
            let piece = 64 * 1024u64;
            let full = chunk(piece as usize, flavor.filler);
            let mut left = *size;
            while left > 0 {
                let n = left.min(piece);
                if n == piece {
                    stream.write_all(&full).await?;
                } else {
                    stream.write_all(&chunk(n as usize, flavor.filler)).await?;
                }
                left -= n;
            }
            stream.write_all(b"0\r\n\r\n").await?;
            stream.flush().await?;
            std::future::pending::<()>().await;
        }
        Reply::Announced { size } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {size}\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await?;
            stream.flush().await?;
            std::future::pending::<()>().await;
        }
    }
    Ok(())
}

/// One chunk of `n` filler bytes, framed for chunked transfer encoding.
fn chunk(n: usize, filler: u8) -> Vec<u8> {
    let mut out = format!("{n:x}\r\n").into_bytes();
    out.extend(std::iter::repeat_n(filler, n));
    out.extend_from_slice(b"\r\n");
    out
}

/// The peak resident set of this process so far (VmHWM), in bytes: how a test proves that a
/// huge reply was never held in memory.
pub fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .unwrap()
}
