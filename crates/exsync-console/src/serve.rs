//! Serving the console over HTTP/1.1, with TLS (rustls) when given a certificate and key.
//! One accept loop for both, so a connection's address reaches the login rate limiter the
//! same way.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::Extension;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::{router, AppState};

/// The PEM files the console serves HTTPS with (`--tls-cert`, `--tls-key`).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, the console's own certificate first.
    pub cert: PathBuf,
    /// The private key of that certificate.
    pub key: PathBuf,
}

/// How [`serve`] listens.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// HTTPS with these files; `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
}

/// Why the console cannot start serving. Each message names the file at fault (the
/// `--tls-cert` / `--tls-key` the admin gave); the cause is the error's `source`, so a caller
/// that prints the chain (`{:#}` in the binary) shows it after the file's name.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The certificate file cannot be read or is not PEM.
    #[error("console certificate {}", path.display())]
    Certificate {
        /// The certificate file.
        path: PathBuf,
        /// What reading or decoding it reported.
        #[source]
        source: pem::Error,
    },
    /// The certificate file is PEM but holds no certificate.
    #[error("console certificate {} holds no certificate", path.display())]
    NoCertificate {
        /// The certificate file.
        path: PathBuf,
    },
    /// The key file cannot be read, is not PEM, or holds no private key.
    #[error("console private key {}", path.display())]
    PrivateKey {
        /// The key file.
        path: PathBuf,
        /// What reading or decoding it reported.
        #[source]
        source: pem::Error,
    },
    /// rustls refused the protocol versions the console asks for.
    #[error("TLS versions")]
    TlsVersions(#[source] rustls::Error),
    /// The key does not belong to the certificate, or its type is one rustls cannot use.
    #[error("console certificate and key do not match or are not supported")]
    CertificateAndKey(#[source] rustls::Error),
}

pub(crate) fn tls_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    let cert_error = |source| ServeError::Certificate {
        path: files.cert.clone(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .map_err(cert_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(cert_error)?;
    if certs.is_empty() {
        return Err(ServeError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|source| ServeError::PrivateKey {
            path: files.key.clone(),
            source,
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(ServeError::TlsVersions)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(ServeError::CertificateAndKey)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves until the task is dropped. `state.tls` should say whether `options.tls` is set,
/// so cookies get the `Secure` flag.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    options: ServeOptions,
) -> Result<(), ServeError> {
    let acceptor = match &options.tls {
        Some(files) => Some(TlsAcceptor::from(tls_config(files)?)),
        None => None,
    };
    let app = router(state);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "console accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let app = app
            .clone()
            .layer(Extension(ConnectInfo::<SocketAddr>(peer)));
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let service = TowerToHyperService::new(app);
            let builder = hyper::server::conn::http1::Builder::new();
            let result = match acceptor {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(tls) => builder
                        .serve_connection(TokioIo::new(tls), service)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(format!("TLS handshake: {e}")),
                },
                None => builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                    .map_err(|e| e.to_string()),
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, %peer, "console connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The text and its causes as the binary prints them (`{:#}` of an `anyhow::Error`).
    fn chain(e: &dyn std::error::Error) -> String {
        let mut text = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            text.push_str(&format!(": {c}"));
            cause = c.source();
        }
        text
    }

    #[test]
    fn tls_file_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("exsync-serve-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = TlsFiles {
            cert: dir.join("missing.pem"),
            key: dir.join("missing.key"),
        };
        let e = tls_config(&missing).unwrap_err();
        assert!(matches!(e, ServeError::Certificate { .. }), "{e:?}");
        let text = chain(&e);
        assert!(
            text.starts_with(&format!("console certificate {}: ", missing.cert.display())),
            "{text}"
        );

        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = tls_config(&TlsFiles {
            cert: empty.clone(),
            key: missing.key,
        })
        .unwrap_err();
        assert_eq!(
            chain(&e),
            format!(
                "console certificate {} holds no certificate",
                empty.display()
            )
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
