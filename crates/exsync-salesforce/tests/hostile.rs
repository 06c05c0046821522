//! Salesforce endpoints that try to hurt the client instead of answering it: a token endpoint
//! or REST answer over the size cap, one that never ends, one that trickles. A scripted
//! plain-http server on 127.0.0.1 plays the org; the connector is pointed at it directly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use exsync_salesforce::{AuthConfig, Error, SalesforceClient, SalesforceConfig, Secret};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

const MIB: u64 = 1024 * 1024;

/// What the scripted org answers.
#[derive(Clone, Copy)]
enum Script {
    /// `size` bytes of JSON-ish filler, chunked, so no length is announced.
    Chunked { size: u64 },
    /// A Content-Length of `size`, then nothing.
    Announced { size: u64 },
    /// Chunks that never stop.
    Endless,
    /// One byte every `every`, never done.
    Trickle { every: Duration },
}

struct Org {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
}

impl Org {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Starts the org: the token endpoint answers with `token` when given, else like every other
/// path, with `rest`.
async fn org(token: Option<Script>, rest: Script) -> Org {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&requests);
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                continue;
            };
            let counted = Arc::clone(&counted);
            tokio::spawn(async move {
                while let Some(path) = read_request(&mut tcp).await {
                    counted.fetch_add(1, Ordering::SeqCst);
                    let is_token = path.starts_with("/services/oauth2/token");
                    let result = match (is_token, token) {
                        (true, None) => {
                            let body = format!(
                                "{{\"access_token\":\"t\",\"instance_url\":\"http://{addr}\"}}"
                            );
                            let head = format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                                body.len()
                            );
                            tcp.write_all(format!("{head}{body}").as_bytes()).await
                        }
                        (true, Some(script)) => answer(&mut tcp, script).await,
                        (false, _) => answer(&mut tcp, rest).await,
                    };
                    if result.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Org { addr, requests }
}

/// Reads one request; its path, or `None` when the client went away.
async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let length: usize = text
        .to_ascii_lowercase()
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.ok()?;
    text.split_whitespace().nth(1).map(str::to_owned)
}

fn chunk(n: usize) -> Vec<u8> {
    let mut out = format!("{n:x}\r\n").into_bytes();
    out.extend(std::iter::repeat_n(b' ', n));
    out.extend_from_slice(b"\r\n");
    out
}

/// Plays a script; an error means the client hung up.
async fn answer<S: AsyncWrite + Unpin>(stream: &mut S, script: Script) -> std::io::Result<()> {
    const CHUNKED: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    match script {
        Script::Chunked { size } => {
            stream.write_all(CHUNKED).await?;
            let piece = chunk(64 * 1024);
            let mut left = size;
            while left >= 64 * 1024 {
                stream.write_all(&piece).await?;
                left -= 64 * 1024;
            }
            if left > 0 {
                stream.write_all(&chunk(left as usize)).await?;
            }
            stream.write_all(b"0\r\n\r\n").await?;
            std::future::pending::<()>().await;
        }
        Script::Announced { size } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await?;
            std::future::pending::<()>().await;
        }
        Script::Endless => {
            stream.write_all(CHUNKED).await?;
            let piece = chunk(64 * 1024);
            loop {
                stream.write_all(&piece).await?;
            }
        }
        Script::Trickle { every } => {
            let text = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n[";
            for byte in text.iter().chain(std::iter::repeat(&b' ')) {
                stream.write_all(&[*byte]).await?;
                stream.flush().await?;
                tokio::time::sleep(every).await;
            }
        }
    }
    Ok(())
}

fn client(org: &Org, configure: impl FnOnce(&mut SalesforceConfig)) -> SalesforceClient {
    let mut config = SalesforceConfig::new(
        org.url(),
        AuthConfig::ClientCredentials {
            client_id: "id".into(),
            client_secret: Secret::new("secret"),
        },
    );
    config.retry_base = Duration::from_millis(5);
    configure(&mut config);
    SalesforceClient::new(config).unwrap()
}

fn transport_text(result: exsync_salesforce::Result<impl std::fmt::Debug>) -> String {
    match result {
        Err(e @ Error::Transport(_)) => e.to_string(),
        other => panic!("expected a transport error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_rest_answer_over_the_cap_is_refused_naming_host_and_limit() {
    let org = org(None, Script::Chunked { size: 5 * MIB }).await;
    let client = client(&org, |c| c.max_reply_bytes = MIB);
    let text = transport_text(client.limits().await);
    assert!(
        text.contains("127.0.0.1 sent a reply larger than the 1 MiB limit"),
        "{text}"
    );
    assert!(text.contains("network.max_reply_mib"), "{text}");
    // The token, then the one answer: an oversized one is not asked for again.
    assert_eq!(org.requests(), 2);
}

#[tokio::test]
async fn an_answer_announced_over_the_cap_is_refused_before_reading() {
    let org = org(None, Script::Announced { size: 300 * MIB }).await;
    let client = client(&org, |c| c.timeout = Duration::from_secs(30));
    let start = Instant::now();
    let text = transport_text(client.limits().await);
    assert!(text.contains("larger than the 64 MiB limit"), "{text}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_rest_answer_that_never_ends_is_cut_at_the_default_cap() {
    let org = org(None, Script::Endless).await;
    let client = client(&org, |_| {});
    let start = Instant::now();
    let text = transport_text(client.limits().await);
    assert!(
        text.contains("127.0.0.1 sent a reply larger than the 64 MiB limit"),
        "{text}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_token_answer_that_never_ends_is_cut_at_the_cap() {
    let org = org(Some(Script::Endless), Script::Endless).await;
    let client = client(&org, |c| c.max_reply_bytes = 2 * MIB);
    let text = transport_text(client.instance_url().await);
    assert!(
        text.contains("127.0.0.1 sent a reply larger than the 2 MiB limit"),
        "{text}"
    );
    assert_eq!(org.requests(), 1);
}

#[tokio::test]
async fn a_trickling_answer_costs_one_timeout_not_one_per_retry() {
    let org = org(
        None,
        Script::Trickle {
            every: Duration::from_millis(500),
        },
    )
    .await;
    let timeout = Duration::from_secs(2);
    let client = client(&org, |c| c.timeout = timeout);
    let start = Instant::now();
    let text = transport_text(client.limits().await);
    let elapsed = start.elapsed();
    assert!(
        text.contains("127.0.0.1 did not complete its reply within 2s"),
        "{text}"
    );
    assert!(elapsed < timeout * 2, "{elapsed:?}");
    assert_eq!(org.requests(), 2);
}

#[tokio::test]
async fn a_trickling_token_endpoint_costs_one_timeout() {
    let trickle = Script::Trickle {
        every: Duration::from_millis(500),
    };
    let org = org(Some(trickle), trickle).await;
    let timeout = Duration::from_secs(2);
    let client = client(&org, |c| c.timeout = timeout);
    let start = Instant::now();
    let text = transport_text(client.instance_url().await);
    assert!(
        text.contains("did not complete its reply within 2s"),
        "{text}"
    );
    assert!(start.elapsed() < timeout * 2, "{:?}", start.elapsed());
}
