//! The HTTPS front the Graph and Salesforce simulators share: accept, TLS handshake, one HTTP/1.1
//! connection per client, until told to stop. (The Exchange simulator also speaks plain HTTP
//! and NTLM per connection, so it keeps a loop of its own.)

use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Serves `handle` over TLS on `listener` until `stop` completes. A failed accept or handshake
/// ends only that connection.
pub(crate) async fn serve<H, Fut, E>(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    stop: impl Future<Output = ()>,
    handle: H,
) where
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Full<Bytes>>, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a connection failed");
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let handle = handle.clone();
                tokio::spawn(async move {
                    let tls = match acceptor.accept(tcp).await {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::debug!(error = %e, %peer, "TLS handshake failed");
                            return;
                        }
                    };
                    let service = service_fn(handle);
                    if let Err(e) = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await
                    {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                });
            }
        }
    }
}

/// `host:port`, with an IPv6 address in brackets, as URLs want it.
pub(crate) fn host_port(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    }
}
