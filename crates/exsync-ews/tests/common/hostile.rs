//! A hostile server for the limits a reply must stay within. It speaks just enough HTTP/1.1 to
//! read a request (head and Content-Length body), then answers with its script: a reply that
//! trickles, never ends, is huge, or is whatever bytes the test wrote. It counts every TCP
//! connection it accepts, so a test can also prove that nothing reached it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use super::fake;

#[derive(Clone)]
pub enum Reply {
    /// These bytes, then the connection stays open (the client decides when it has enough).
    Raw(Vec<u8>),
    /// A 200 with a Content-Length whose body is `body`.
    Xml(String),
    /// One byte of a plausible reply every `every`, from the status line on, never done.
    Trickle { every: Duration },
    /// A server that keeps every step just short of a timeout of its own: it waits
    /// `handshake_delay` before the TLS handshake, sends its 401 one byte every `every`, and
    /// trickles the answer to the authenticated request forever.
    Paced {
        handshake_delay: Duration,
        every: Duration,
    },
    /// A chunked 200 whose chunks never stop coming.
    Endless,
    /// A chunked 200 of `size` bytes in all: no Content-Length says how big it is up front.
    Chunked { size: u64 },
}

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
}

/// Starts a server on 127.0.0.1: https with a certificate for `names` when any are given,
/// plain http otherwise.
pub async fn start(names: &[&str], reply: Reply) -> Hostile {
    let tls = (!names.is_empty()).then(|| fake::tls(names, false));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (acceptor, ca_file, dir) = match tls {
        Some((acceptor, ca_file, dir)) => (Some(acceptor), Some(ca_file), Some(dir)),
        None => (None, None, None),
    };
    let counted = Arc::clone(&connections);
    let asked = Arc::clone(&requests);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            let reply = reply.clone();
            let acceptor = acceptor.clone();
            let asked = Arc::clone(&asked);
            tokio::spawn(async move {
                if let Reply::Paced {
                    handshake_delay, ..
                } = &reply
                {
                    tokio::time::sleep(*handshake_delay).await;
                }
                match acceptor {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            serve(stream, reply, asked).await;
                        }
                    }
                    None => serve(tcp, reply, asked).await,
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

/// Reads one request: its head up to the blank line, then as many body bytes as its
/// Content-Length says. Whether it carried credentials; `None` when the client went away.
async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Option<bool> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.ok()?;
    Some(text.contains("\r\nauthorization:"))
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    reply: Reply,
    asked: Arc<AtomicUsize>,
) {
    while let Some(authorized) = read_request(&mut stream).await {
        asked.fetch_add(1, Ordering::SeqCst);
        if let Reply::Paced { every, .. } = reply {
            if !authorized {
                let challenge = b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\nContent-Length: 0\r\n\r\n";
                if trickle(&mut stream, challenge, every).await.is_err() {
                    return;
                }
                continue;
            }
        }
        // A write error means the client hung up: the end of every script.
        let _ = answer(&mut stream, reply).await;
        return;
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

async fn answer<S: AsyncWrite + Unpin>(stream: &mut S, reply: Reply) -> std::io::Result<()> {
    match reply {
        Reply::Raw(bytes) => {
            stream.write_all(&bytes).await?;
            stream.flush().await?;
            // Stay open until the client gives up; never end the reply ourselves.
            std::future::pending::<()>().await;
        }
        Reply::Xml(body) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(body.as_bytes()).await?;
            stream.flush().await?;
            std::future::pending::<()>().await;
        }
        Reply::Trickle { every } | Reply::Paced { every, .. } => {
            let text = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 100000\r\n\r\n<?xml version=\"1.0\"?>";
            loop {
                trickle(stream, text, every).await?;
            }
        }
        Reply::Endless => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await?;
            let chunk = chunk(64 * 1024);
            loop {
                stream.write_all(&chunk).await?;
            }
        }
        Reply::Chunked { size } => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await?;
            let piece = 64 * 1024u64;
            let full = chunk(piece as usize);
            let mut left = size;
            while left > 0 {
                let n = left.min(piece);
                if n == piece {
                    stream.write_all(&full).await?;
                } else {
                    stream.write_all(&chunk(n as usize)).await?;
                }
                left -= n;
            }
            stream.write_all(b"0\r\n\r\n").await?;
            stream.flush().await?;
            std::future::pending::<()>().await;
        }
    }
    Ok(())
}

/// One chunk of `n` bytes of XML-ish filler, framed for chunked transfer encoding.
fn chunk(n: usize) -> Vec<u8> {
    let mut out = format!("{n:x}\r\n").into_bytes();
    out.extend(std::iter::repeat_n(b'x', n));
    out.extend_from_slice(b"\r\n");
    out
}

/// The peak resident set of this process so far (VmHWM), in bytes.
pub fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .unwrap()
}
