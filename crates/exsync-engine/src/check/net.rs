//! Name resolution and a TLS handshake that reports what it saw (protocol, cipher suite,
//! the certificate chain), for the DNS and TLS steps.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use exsync_core::config::ExsyncConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

pub(super) const TIMEOUT: Duration = Duration::from_secs(10);

/// Addresses for `host:port`: the `[network.resolve]` override when there is one (its port
/// wins, as in the connectors), else DNS. The text says which.
pub(super) async fn resolve(
    config: &ExsyncConfig,
    host: &str,
    port: u16,
) -> Result<(Vec<SocketAddr>, String), String> {
    if let Some(addr) = config.network.resolve.get(&host.to_ascii_lowercase()) {
        return Ok((
            vec![*addr],
            format!("{host} → {addr} ([network.resolve] override)"),
        ));
    }
    match tokio::time::timeout(TIMEOUT, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                return Err(format!("{host}: DNS returned no address"));
            }
            let list: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
            Ok((addrs, format!("{host} → {}", list.join(", "))))
        }
        Ok(Err(e)) => Err(format!("{host}: cannot resolve: {e}")),
        Err(_) => Err(format!("{host}: DNS did not answer within {TIMEOUT:?}")),
    }
}

pub(super) struct TlsSeen {
    pub stream: TlsStream<TcpStream>,
    pub facts: Vec<String>,
    /// Days until the server certificate expires.
    pub leaf_days_left: Option<i64>,
}

pub(super) async fn handshake(
    tls: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    host: &str,
) -> Result<TlsSeen, String> {
    let tcp = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connecting to {addr} timed out"))?
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| format!("{host} is not a valid server name: {e}"))?;
    let stream = tokio::time::timeout(TIMEOUT, TlsConnector::from(tls).connect(name, tcp))
        .await
        .map_err(|_| format!("TLS handshake with {host} timed out"))?
        .map_err(|e| exsync_ews::diagnostics::tls_handshake_error(host, &e).to_string())?;
    let (_, session) = stream.get_ref();
    let mut facts = vec![format!(
        "{} with {}",
        session
            .protocol_version()
            .map(|v| format!("{v:?}").replace('_', "."))
            .unwrap_or_else(|| "unknown protocol".to_owned()),
        session
            .negotiated_cipher_suite()
            .map(|c| format!("{:?}", c.suite()))
            .unwrap_or_else(|| "unknown cipher suite".to_owned())
    )];
    let mut leaf_days_left = None;
    for (i, der) in session
        .peer_certificates()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        match x509_parser::parse_x509_certificate(der.as_ref()) {
            Ok((_, cert)) => {
                let not_after = cert.validity().not_after.timestamp();
                let days = (not_after - chrono::Utc::now().timestamp()) / 86_400;
                if i == 0 {
                    leaf_days_left = Some(days);
                }
                facts.push(format!(
                    "certificate {i}: subject {}; issuer {}; expires {} ({days} days)",
                    cert.subject(),
                    cert.issuer(),
                    cert.validity().not_after
                ));
            }
            Err(e) => facts.push(format!("certificate {i}: cannot be parsed: {e}")),
        }
    }
    Ok(TlsSeen {
        stream,
        facts,
        leaf_days_left,
    })
}
