//! HTTPS with the credential policy (`ARCHITECTURE.md`, "Credentials"): verified TLS only,
//! Basic, NTLM or Kerberos chosen per host and pinned once it worked, NTLM legs and the requests after them on one kept-alive connection,
//! every connection through the name-resolution override.

pub(crate) mod auth;
pub(crate) mod conn;
pub(crate) mod negotiate;
pub(crate) mod tls;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use url::Url;

use self::auth::{choose, offered, AuthMode, Credentials, Pins, Scheme};
use self::conn::{
    Connection, Deadline, ReplyLimits, Resolve, Response, SendFailure, DEFAULT_MAX_REPLY_BYTES,
};
use self::negotiate::{KerberosLogin, TicketCache};
use crate::error::EwsError;

/// Idle connections kept per host beyond those in use.
const MAX_IDLE_PER_HOST: usize = 32;

/// What the HTTPS client needs: credentials, trust, addressing and limits.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The account every request authenticates as.
    pub credentials: Credentials,
    /// Which scheme to use, or let the server's offer decide.
    pub auth: AuthMode,
    /// The Kerberos login, when a realm is configured.
    pub kerberos: Option<KerberosLogin>,
    /// Extra trusted CA certificates (PEM), on top of the system roots.
    pub ca_file: Option<PathBuf>,
    /// Fixed addresses for hosts DNS must not be asked about.
    pub resolve: Resolve,
    /// How long a TCP and TLS connect may take.
    pub connect_timeout: Duration,
    /// The whole of one request: connecting, every authentication leg, the complete reply.
    pub request_timeout: Duration,
    /// The largest reply read; a larger one is an error, and is never held in full.
    pub max_reply_bytes: u64,
}

impl HttpConfig {
    /// The defaults for `credentials`: automatic scheme, system roots, 15 s connect, 120 s per request.
    pub fn new(credentials: Credentials) -> Self {
        HttpConfig {
            credentials,
            auth: AuthMode::Auto,
            kerberos: None,
            ca_file: None,
            resolve: Resolve::new(),
            connect_timeout: Duration::from_secs(15),
            request_timeout: Duration::from_secs(120),
            max_reply_bytes: DEFAULT_MAX_REPLY_BYTES,
        }
    }
}

/// HTTPS with the credential policy, shared by EWS calls and Autodiscover so scheme pins hold for both.
pub struct HttpClient {
    config: HttpConfig,
    tls: Arc<rustls::ClientConfig>,
    pins: Pins,
    tickets: TicketCache,
    idle: Mutex<HashMap<(String, u16), Vec<Connection>>>,
}

/// The parts of a request we may send more than once (NTLM legs, a retry on a fresh connection).
struct Outgoing<'a> {
    url: &'a Url,
    host: &'a str,
    body: &'a str,
    headers: &'a [(&'a str, String)],
}

impl Outgoing<'_> {
    fn build(&self, authorization: Option<&str>) -> Result<http::Request<Full<Bytes>>, EwsError> {
        let mut path = self.url.path().to_owned();
        if let Some(query) = self.url.query() {
            path.push('?');
            path.push_str(query);
        }
        let host_header = match self.url.port() {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.to_owned(),
        };
        let method = if self.body.is_empty() {
            http::Method::GET
        } else {
            http::Method::POST
        };
        let mut builder = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, host_header)
            .header(http::header::USER_AGENT, "exsync")
            .header(http::header::CONNECTION, "keep-alive");
        if !self.body.is_empty() {
            builder = builder.header(http::header::CONTENT_TYPE, "text/xml; charset=utf-8");
        }
        for (name, value) in self.headers {
            builder = builder.header(*name, value.as_str());
        }
        if let Some(authorization) = authorization {
            builder = builder.header(http::header::AUTHORIZATION, authorization);
        }
        builder
            .body(Full::new(Bytes::from(self.body.to_owned())))
            .map_err(|e| EwsError::InvalidInput(format!("cannot build a request: {e}")))
    }
}

/// The connection's `tls-server-end-point` binding (RFC 5929), which NTLM and Kerberos both
/// send for Extended Protection; none over plain HTTP.
fn channel_binding(
    conn: &Connection,
    host: &str,
) -> Result<Option<exsync_ntlm::ChannelBinding>, EwsError> {
    conn.peer_cert
        .as_ref()
        .map(|der| {
            exsync_ntlm::ChannelBinding::tls_server_end_point(der).map_err(|e| EwsError::Tls {
                host: host.to_owned(),
                reason: format!("cannot compute the channel binding: {e}"),
            })
        })
        .transpose()
}

impl HttpClient {
    /// A client for `config`; fails only when the CA file cannot be used.
    pub fn new(config: HttpConfig) -> Result<Self, EwsError> {
        let tls = tls::client_config(config.ca_file.as_deref())?;
        Ok(HttpClient {
            config,
            tls,
            pins: Pins::default(),
            tickets: TicketCache::default(),
            idle: Mutex::new(HashMap::new()),
        })
    }

    /// The service account, for messages.
    pub fn account(&self) -> &str {
        &self.config.credentials.username
    }

    /// The scheme that worked with `host`, which it may not later downgrade from.
    pub fn pinned(&self, host: &str) -> Option<Scheme> {
        self.pins.get(host)
    }

    /// The budget of one whole request, for callers that spread it over several.
    pub fn request_timeout(&self) -> Duration {
        self.config.request_timeout
    }

    /// A deadline one request timeout from now.
    pub fn deadline(&self) -> Deadline {
        Deadline::after(self.config.request_timeout)
    }

    fn limits(&self, deadline: Deadline) -> ReplyLimits {
        ReplyLimits {
            deadline,
            max_bytes: self.config.max_reply_bytes,
        }
    }

    fn host_port(url: &Url) -> Result<(String, u16), EwsError> {
        let host = url
            .host_str()
            .ok_or_else(|| EwsError::InvalidInput(format!("{url} has no host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| EwsError::InvalidInput(format!("{url} has no port")))?;
        Ok((host, port))
    }

    async fn checkout(
        &self,
        host: &str,
        port: u16,
        https: bool,
    ) -> Result<(Connection, bool), EwsError> {
        if https {
            let reused = self.idle.lock().ok().and_then(|mut idle| {
                let list = idle.get_mut(&(host.to_owned(), port))?;
                while let Some(conn) = list.pop() {
                    if conn.is_usable() {
                        return Some(conn);
                    }
                }
                None
            });
            if let Some(conn) = reused {
                return Ok((conn, true));
            }
        }
        let tls = https.then_some(&self.tls);
        let conn = Connection::open(
            host,
            port,
            tls,
            &self.config.resolve,
            self.config.connect_timeout,
        )
        .await?;
        Ok((conn, false))
    }

    fn checkin(&self, port: u16, conn: Connection) {
        if !conn.is_usable() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            let list = idle.entry((conn.host.clone(), port)).or_default();
            if list.len() < MAX_IDLE_PER_HOST {
                list.push(conn);
            }
        }
    }

    /// An unauthenticated request (Autodiscover's HTTP redirect probe). Never carries
    /// credentials, whatever the scheme.
    pub async fn get_anonymous(&self, url: &Url) -> Result<Response, EwsError> {
        self.get_anonymous_within(url, self.deadline()).await
    }

    /// [`Self::get_anonymous`], over by `deadline` (connecting included).
    pub async fn get_anonymous_within(
        &self,
        url: &Url,
        deadline: Deadline,
    ) -> Result<Response, EwsError> {
        let (host, port) = Self::host_port(url)?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            other => {
                return Err(EwsError::InvalidInput(format!(
                    "unsupported URL scheme {other} in {url}"
                )))
            }
        };
        let exchange = async {
            let (mut conn, _) = self.checkout(&host, port, https).await?;
            let out = Outgoing {
                url,
                host: &host,
                body: "",
                headers: &[],
            };
            let response = conn.send(out.build(None)?, self.limits(deadline)).await?;
            if https {
                self.checkin(port, conn);
            }
            Ok(response)
        };
        tokio::time::timeout_at(deadline.at(), exchange)
            .await
            .map_err(|_| deadline.expired(&host))?
    }

    /// POSTs `body` with the service account's credentials. Only https URLs are accepted, and
    /// https here always means a verified certificate.
    pub async fn post(
        &self,
        url: &Url,
        body: &str,
        headers: &[(&str, String)],
    ) -> Result<Response, EwsError> {
        self.post_within(url, body, headers, self.deadline()).await
    }

    /// [`Self::post`], over by `deadline`: connecting, the TLS handshake, every authentication
    /// leg and the whole reply all count against it.
    pub async fn post_within(
        &self,
        url: &Url,
        body: &str,
        headers: &[(&str, String)],
        deadline: Deadline,
    ) -> Result<Response, EwsError> {
        if url.scheme() != "https" {
            return Err(EwsError::CredentialsRefused {
                url: url.to_string(),
                reason: "credentials go only over https".into(),
            });
        }
        let (host, port) = Self::host_port(url)?;
        let out = Outgoing {
            url,
            host: &host,
            body,
            headers,
        };
        let exchange = async {
            let (mut conn, reused) = self.checkout(&host, port, true).await?;
            let result = match self.exchange(&mut conn, &out, deadline).await {
                // A kept-alive connection the server closed meanwhile, before our request
                // went out: once more on a fresh one. A request that may have arrived is never
                // repeated here; whether that is safe is the caller's decision.
                Err(failure) if reused && !failure.maybe_sent => {
                    let (fresh, _) = self.checkout_fresh(&host, port).await?;
                    conn = fresh;
                    self.exchange(&mut conn, &out, deadline).await
                }
                other => other,
            };
            match result {
                Ok(response) => {
                    self.checkin(port, conn);
                    Ok(response)
                }
                Err(failure) => Err(failure.error),
            }
        };
        tokio::time::timeout_at(deadline.at(), exchange)
            .await
            .map_err(|_| deadline.expired(&host))?
    }

    async fn checkout_fresh(&self, host: &str, port: u16) -> Result<(Connection, bool), EwsError> {
        let conn = Connection::open(
            host,
            port,
            Some(&self.tls),
            &self.config.resolve,
            self.config.connect_timeout,
        )
        .await?;
        Ok((conn, false))
    }

    async fn send(
        &self,
        conn: &mut Connection,
        out: &Outgoing<'_>,
        auth: Option<&str>,
        deadline: Deadline,
    ) -> Result<Response, SendFailure> {
        let request = out.build(auth).map_err(|error| SendFailure {
            error,
            maybe_sent: false,
        })?;
        conn.send_tracked(request, self.limits(deadline)).await
    }

    async fn exchange(
        &self,
        conn: &mut Connection,
        out: &Outgoing<'_>,
        deadline: Deadline,
    ) -> Result<Response, SendFailure> {
        match self.pins.get(out.host) {
            Some(Scheme::Basic) => self.basic(conn, out, deadline).await,
            Some(Scheme::Ntlm) if conn.authenticated => {
                let response = self.send(conn, out, None, deadline).await?;
                if response.status == 401 {
                    // The server forgot the connection's login; authenticate it again.
                    self.pins.check(out.host, &offered(&response.headers))?;
                    conn.authenticated = false;
                    return self.ntlm(conn, out, deadline).await;
                }
                Ok(response)
            }
            Some(Scheme::Ntlm) => self.ntlm(conn, out, deadline).await,
            Some(Scheme::Negotiate) => self.negotiate(conn, out, deadline).await,
            None => {
                // First contact: learn what the host offers before sending any credentials.
                let probe = self.send(conn, out, None, deadline).await?;
                if probe.status != 401 {
                    return Ok(probe);
                }
                let offers = offered(&probe.headers);
                let kerberos = self.config.kerberos.is_some();
                match choose(self.config.auth, kerberos, out.host, &offers)? {
                    Scheme::Basic => self.basic(conn, out, deadline).await,
                    Scheme::Ntlm => self.ntlm(conn, out, deadline).await,
                    Scheme::Negotiate => self.negotiate(conn, out, deadline).await,
                }
            }
        }
    }

    fn unauthorized(&self, out: &Outgoing<'_>, scheme: Scheme) -> EwsError {
        tracing::warn!(account = %self.account(), host = %out.host, scheme = %scheme, "credentials rejected");
        EwsError::Unauthorized {
            account: self.account().to_owned(),
            host: out.host.to_owned(),
            scheme: scheme.name().to_owned(),
        }
    }

    async fn basic(
        &self,
        conn: &mut Connection,
        out: &Outgoing<'_>,
        deadline: Deadline,
    ) -> Result<Response, SendFailure> {
        let header = self.config.credentials.basic_header();
        let response = self.send(conn, out, Some(&header), deadline).await?;
        if response.status == 401 {
            self.pins.check(out.host, &offered(&response.headers))?;
            return Err(self.unauthorized(out, Scheme::Basic).into());
        }
        self.pins.pin(out.host, Scheme::Basic);
        Ok(response)
    }

    async fn ntlm(
        &self,
        conn: &mut Connection,
        out: &Outgoing<'_>,
        deadline: Deadline,
    ) -> Result<Response, SendFailure> {
        let binding = channel_binding(conn, out.host)?;
        let credentials = exsync_ntlm::Credentials::from_account(
            &self.config.credentials.username,
            self.config.credentials.password.expose(),
        );
        let mut initiator = exsync_ntlm::Initiator::new(credentials, binding)
            .with_target_spn(format!("HTTP/{}", out.host));
        let negotiate = exsync_ntlm::header_value(&initiator.negotiate_message());
        let challenge_response = self.send(conn, out, Some(&negotiate), deadline).await?;
        if challenge_response.status != 401 {
            return Ok(challenge_response);
        }
        let offers = offered(&challenge_response.headers);
        self.pins.check(out.host, &offers)?;
        let challenge = challenge_response
            .headers
            .get_all(http::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| match exsync_ntlm::parse_header(v) {
                Ok(exsync_ntlm::NtlmHeader::Token(token)) => Some(token),
                _ => None,
            })
            .ok_or_else(|| self.unauthorized(out, Scheme::Ntlm))?;
        let authenticate =
            initiator
                .authenticate_message(&challenge)
                .map_err(|e| EwsError::Protocol {
                    host: out.host.to_owned(),
                    reason: format!("unusable NTLM challenge: {e}"),
                })?;
        let response = self
            .send(
                conn,
                out,
                Some(&exsync_ntlm::header_value(&authenticate)),
                deadline,
            )
            .await?;
        if response.status == 401 {
            return Err(self.unauthorized(out, Scheme::Ntlm).into());
        }
        conn.authenticated = true;
        self.pins.pin(out.host, Scheme::Ntlm);
        Ok(response)
    }
}
