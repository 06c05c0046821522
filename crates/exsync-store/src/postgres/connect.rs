//! What a connection needs: the database's URL, the password kept apart from it, and how TLS
//! is verified. The URL is parsed here and checked before anything connects, so a password in
//! it or a remote database without TLS is refused with the reason rather than tried.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use postgres::config::{Host, SslMode};
use postgres::Config;

use crate::error::{StoreError, StoreResult};

/// How long connecting (TCP, TLS, authentication) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Server-side deadlines for every session: a statement that runs this long is cancelled, a
/// row lock waited for this long is an error (reported as busy, like SQLite's busy timeout),
/// and a session that sits inside a transaction this long (a stalled process) is ended, so it
/// cannot hold locks over the others.
const SESSION_OPTIONS: &str = "-c statement_timeout=60000 -c lock_timeout=10000 \
     -c idle_in_transaction_session_timeout=60000";

/// How the server's certificate is checked when TLS is used. It is always verified, against
/// the system's roots or the given CA file; there is no mode that accepts any certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PgTls {
    /// The operating system's trusted roots.
    #[default]
    SystemRoots,
    /// Only the CA certificates in this PEM file (a private CA, as most database servers have).
    CaFile(PathBuf),
}

/// Where the state database is and how to reach it.
#[derive(Clone)]
pub struct PgOptions {
    /// `postgres://user@host[:port]/db[?sslmode=…]`, or a `host=/run/postgresql` socket form.
    /// Never holds a password.
    pub url: String,
    /// The database user's password, from the vault's bootstrap file or the environment.
    pub password: Option<String>,
    /// How the server's certificate is verified.
    pub tls: PgTls,
    /// Most connections the pool opens at once.
    pub max_connections: usize,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("tls", &self.tls)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl PgOptions {
    /// Options for `url` with no password, the system roots and a pool of 8.
    pub fn new(url: impl Into<String>) -> Self {
        PgOptions {
            url: url.into(),
            password: None,
            tls: PgTls::SystemRoots,
            max_connections: 8,
        }
    }
}

/// A parsed and checked connection setup.
pub(super) struct Prepared {
    pub(super) config: Config,
    /// Whether the connection is made over TLS (TCP hosts) or not (a Unix socket).
    pub(super) tls: Option<PgTls>,
    /// `postgres://user@host:port/db`, for messages.
    pub(super) target: String,
}

pub(super) fn prepare(options: &PgOptions) -> StoreResult<Prepared> {
    let refuse = |target: &str, detail: String| StoreError::Open {
        path: target.to_owned(),
        detail,
    };
    let mut config = Config::from_str(&options.url).map_err(|e| {
        // The parser's message may quote the URL; only its kind is kept.
        refuse(
            "the PostgreSQL URL",
            format!("it cannot be parsed ({e}); write postgres://user@host/database"),
        )
    })?;
    let target = describe(&config);
    if config.get_password().is_some() {
        return Err(refuse(
            &target,
            "the URL holds a password; remove it and keep it in the password file or \
             EXSYNC_STORE_PASSWORD"
                .into(),
        ));
    }
    if config.get_hosts().is_empty() {
        return Err(refuse(&target, "the URL names no host".into()));
    }
    if config.get_user().is_none() {
        return Err(refuse(&target, "the URL names no user".into()));
    }
    let sockets_only = config
        .get_hosts()
        .iter()
        .all(|h| matches!(h, Host::Unix(_)));
    let tls = if sockets_only {
        None
    } else {
        let explicit = options.url.contains("sslmode=");
        match config.get_ssl_mode() {
            SslMode::Disable if !all_loopback(&config) => {
                return Err(refuse(
                    &target,
                    "sslmode=disable is allowed only for a database on this host; a remote \
                     database is reached over TLS"
                        .into(),
                ));
            }
            SslMode::Disable => None,
            // `prefer` would fall back to plain text when the server offers no TLS; over a
            // network that is a downgrade anyone in the path can force, so it means `require`.
            SslMode::Prefer if explicit => {
                return Err(refuse(
                    &target,
                    "sslmode=prefer can fall back to plain text; use require, or disable for \
                     a database on this host"
                        .into(),
                ));
            }
            _ => {
                config.ssl_mode(SslMode::Require);
                Some(options.tls.clone())
            }
        }
    };
    if let Some(password) = &options.password {
        config.password(password.as_bytes());
    }
    config
        .connect_timeout(CONNECT_TIMEOUT)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .application_name("exsync")
        .options(SESSION_OPTIONS);
    Ok(Prepared {
        config,
        tls,
        target,
    })
}

fn all_loopback(config: &Config) -> bool {
    config.get_hosts().iter().all(|h| match h {
        Host::Tcp(name) => {
            name == "localhost"
                || name
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Host::Unix(_) => true,
    })
}

/// The URL without secrets: user, hosts, ports and database.
fn describe(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            match config.get_ports().get(i).or(config.get_ports().first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    format!(
        "postgres://{}@{}/{}",
        config.get_user().unwrap_or(""),
        hosts.join(","),
        config
            .get_dbname()
            .or(config.get_user())
            .unwrap_or_default()
    )
}
