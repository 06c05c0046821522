//! HTTPS (and optional plain-HTTP redirect) listeners, routing, auth, faults and throttling
//! around the EWS operations.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::auth::{negotiate_step, Account, ConnAuth, NegotiateStep, NtlmStep, Schemes};
use super::changes::Persistence;
use super::faults::{Action, Faults};
use super::ops::{self, Ctx};
use super::soap::{self, EwsError, Impersonation};
use super::store::{self, State};
use super::throttle::{Refused, Throttle};
use super::xml;
use super::{autodiscover, control};

const MAX_BODY: usize = 16 * 1024 * 1024;

/// Counters read through the control API.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Counters {
    pub requests_per_operation: BTreeMap<String, u64>,
    pub requests_per_mailbox: BTreeMap<String, u64>,
    /// Requests that carried an Authorization header, by Host (port stripped).
    pub authorization_headers_per_host: BTreeMap<String, u64>,
    /// The same, for requests that reached the plain-HTTP listener.
    pub authorization_headers_plain_http: BTreeMap<String, u64>,
    pub http_status: BTreeMap<u16, u64>,
    /// Successful logons by scheme (`basic`, `ntlm`, `negotiate`).
    pub logons_per_scheme: BTreeMap<String, u64>,
    pub throttled: u64,
    pub faults_injected: u64,
    /// The most EWS requests the account had in flight at once (let past the throttle and not
    /// yet answered): what a client's concurrency cap, or several clients' together, let through.
    pub peak_requests_in_flight: u64,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub domain: String,
    pub schemes: Schemes,
    pub extended_protection: bool,
    pub trace_dir: Option<PathBuf>,
    pub data_dir: PathBuf,
}

pub struct App {
    pub cfg: Config,
    pub state: Mutex<State>,
    /// Where committed writes go; locked after `state`, never before.
    pub(crate) persistence: Mutex<Persistence>,
    pub counters: Mutex<Counters>,
    pub faults: Mutex<Faults>,
    pub throttle: Arc<Throttle>,
    pub account: Account,
    /// The EWS URL Autodiscover hands out (host name form).
    pub ews_url_by_name: Mutex<String>,
    /// Where the plain-HTTP Autodiscover redirect points; the control API can change it.
    pub http_redirect: Mutex<Option<String>>,
    pub channel_binding: Option<exsync_ntlm::ChannelBinding>,
    /// The keytab's keys, when Negotiate is offered.
    pub kerberos: Option<exsync_gss::AcceptorCredential>,
    trace_seq: AtomicU64,
}

type Body = Full<Bytes>;

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

/// Signals the connection loop to drop the connection without answering.
#[derive(Debug)]
struct DropConnection;
impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fault injection: connection dropped")
    }
}
impl std::error::Error for DropConnection {}

impl App {
    pub(crate) fn new(
        cfg: Config,
        state: State,
        persistence: Persistence,
        throttle: Arc<Throttle>,
        channel_binding: Option<exsync_ntlm::ChannelBinding>,
        kerberos: Option<exsync_gss::AcceptorCredential>,
    ) -> App {
        let netbios = cfg
            .domain
            .split('.')
            .next()
            .unwrap_or("CONTOSO")
            .to_ascii_uppercase();
        let account = Account {
            netbios_domain: netbios,
            dns_domain: cfg.domain.clone(),
            username: state.service_account.clone(),
            password: state.password.clone(),
        };
        App {
            cfg,
            state: Mutex::new(state),
            persistence: Mutex::new(persistence),
            counters: Mutex::new(Counters::default()),
            faults: Mutex::new(Faults::default()),
            throttle,
            account,
            ews_url_by_name: Mutex::new(String::new()),
            http_redirect: Mutex::new(None),
            channel_binding,
            kerberos,
            trace_seq: AtomicU64::new(0),
        }
    }

    fn count<F: FnOnce(&mut Counters)>(&self, f: F) {
        if let Ok(mut c) = self.counters.lock() {
            f(&mut c);
        }
    }

    fn trace(&self, op: &str, request: &[u8], response: &str) {
        let Some(dir) = &self.cfg.trace_dir else {
            return;
        };
        let n = self.trace_seq.fetch_add(1, Ordering::SeqCst);
        let op: String = op.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        // The pid keeps traces of successive runs on one directory apart.
        let base = dir.join(format!("{}-{:06}-{op}", std::process::id(), n));
        let r1 = std::fs::write(base.with_extension("request.xml"), request);
        let r2 = std::fs::write(base.with_extension("response.xml"), response);
        if let Err(e) = r1.and(r2) {
            tracing::warn!(error = %e, "writing the wire trace failed");
        }
    }
}

/// Serves TLS connections on `listener` until the process ends.
pub(crate) async fn serve_https(
    app: Arc<App>,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let app = Arc::clone(&app);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(error = %e, %peer, "TLS handshake failed");
                    return;
                }
            };
            serve_connection(app, TokioIo::new(tls), peer, true).await;
        });
    }
}

/// Serves the plain-HTTP listener (Autodiscover redirect only).
pub(crate) async fn serve_http(app: Arc<App>, listener: TcpListener) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            serve_connection(app, TokioIo::new(tcp), peer, false).await;
        });
    }
}

async fn serve_connection<I>(app: Arc<App>, io: I, peer: SocketAddr, secure: bool)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    // NTLM authenticates the connection: its state lives as long as this closure.
    let conn = Arc::new(Mutex::new(ConnAuth::default()));
    let service = service_fn(move |req: Request<Incoming>| {
        let app = Arc::clone(&app);
        let conn = Arc::clone(&conn);
        async move {
            if secure {
                handle(app, conn, req).await
            } else {
                Ok::<_, DropConnection>(handle_plain(&app, &req))
            }
        }
    });
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service)
        .await
    {
        tracing::debug!(error = %e, %peer, "connection ended with an error");
    }
}

fn handle_plain(app: &App, req: &Request<Incoming>) -> Response<Body> {
    if req.headers().contains_key(http::header::AUTHORIZATION) {
        // Credentials over plain HTTP are a client bug the security tests look for.
        let host = host_of(req);
        app.count(|c| *c.authorization_headers_plain_http.entry(host).or_default() += 1);
    }
    let path = req.uri().path().to_ascii_lowercase();
    if req.method() == http::Method::GET && path == "/autodiscover/autodiscover.xml" {
        let target = app.http_redirect.lock().ok().and_then(|g| g.clone());
        if let Some(t) = target {
            let mut r = reply(StatusCode::FOUND, "text/html", "");
            if let Ok(v) = http::HeaderValue::from_str(&t) {
                r.headers_mut().insert(http::header::LOCATION, v);
            }
            return r;
        }
    }
    reply(StatusCode::NOT_FOUND, "text/plain", "not found")
}

fn host_of(req: &Request<Incoming>) -> String {
    let h = req
        .headers()
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().host())
        .unwrap_or("");
    let h = h.trim().to_ascii_lowercase();
    // Strip the port, keeping IPv6 literals intact.
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("").to_string();
    }
    h.split(':').next().unwrap_or("").to_string()
}

enum Authn {
    /// Authenticated; a `WWW-Authenticate` value for the reply (Kerberos mutual authentication).
    Ok(Option<String>),
    Reply(Response<Body>),
}

fn unauthorized(app: &App, host: &str, extra: Option<String>) -> Response<Body> {
    let mut r = reply(StatusCode::UNAUTHORIZED, "text/html", "401 - Unauthorized");
    let values = match extra {
        Some(v) => vec![v],
        None => app.cfg.schemes.challenges(host),
    };
    for v in values {
        if let Ok(v) = http::HeaderValue::from_str(&v) {
            r.headers_mut().append(http::header::WWW_AUTHENTICATE, v);
        }
    }
    r
}

fn authenticate(app: &App, conn: &Mutex<ConnAuth>, headers: &http::HeaderMap, host: &str) -> Authn {
    let header = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let Ok(mut conn) = conn.lock() else {
        return Authn::Reply(reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "lock",
        ));
    };
    match header {
        None => {
            if conn.authenticated {
                Authn::Ok(None)
            } else {
                Authn::Reply(unauthorized(app, host, None))
            }
        }
        Some(h) => {
            let scheme = h
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            match scheme.as_str() {
                "basic" if app.cfg.schemes.basic => {
                    if app.account.check_basic(&h) {
                        app.count(|c| *c.logons_per_scheme.entry(scheme.clone()).or_default() += 1);
                        Authn::Ok(None)
                    } else {
                        tracing::info!(host, "Basic logon failed");
                        Authn::Reply(unauthorized(app, host, None))
                    }
                }
                "ntlm" if app.cfg.schemes.ntlm => {
                    let binding = if app.cfg.extended_protection {
                        app.channel_binding.as_ref()
                    } else {
                        None
                    };
                    match conn.ntlm_step(&app.account, &h, binding) {
                        NtlmStep::Challenge(c) => Authn::Reply(unauthorized(app, host, Some(c))),
                        NtlmStep::Done => {
                            app.count(|c| {
                                *c.logons_per_scheme.entry(scheme.clone()).or_default() += 1
                            });
                            Authn::Ok(None)
                        }
                        NtlmStep::Failed(why) => {
                            tracing::info!(host, reason = %why, "NTLM logon failed");
                            Authn::Reply(unauthorized(app, host, None))
                        }
                    }
                }
                "negotiate" if app.cfg.schemes.negotiate => {
                    let Some(credential) = app.kerberos.as_ref() else {
                        return Authn::Reply(unauthorized(app, host, None));
                    };
                    let binding = if app.cfg.extended_protection {
                        app.channel_binding.as_ref()
                    } else {
                        None
                    };
                    match negotiate_step(&app.account, credential, &h, binding) {
                        NegotiateStep::Done(mutual) => {
                            app.count(|c| {
                                *c.logons_per_scheme.entry(scheme.clone()).or_default() += 1
                            });
                            Authn::Ok(mutual)
                        }
                        NegotiateStep::Failed(why, challenge) => {
                            tracing::info!(host, reason = %why, "Kerberos logon failed");
                            Authn::Reply(unauthorized(app, host, challenge))
                        }
                    }
                }
                _ => Authn::Reply(unauthorized(app, host, None)),
            }
        }
    }
}

async fn handle(
    app: Arc<App>,
    conn: Arc<Mutex<ConnAuth>>,
    req: Request<Incoming>,
) -> Result<Response<Body>, DropConnection> {
    let path = req.uri().path().to_ascii_lowercase();
    let host = host_of(&req);
    if path.starts_with("/_control") {
        let method = req.method().clone();
        let token = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = match read_body(req.into_body()).await {
            Ok(b) => b,
            Err(r) => return Ok(r),
        };
        return Ok(control::handle(
            &app,
            &method,
            &path,
            token.as_deref(),
            &body,
        ));
    }
    if req.headers().contains_key(http::header::AUTHORIZATION) {
        app.count(|c| {
            *c.authorization_headers_per_host
                .entry(host.clone())
                .or_default() += 1
        });
    }
    let is_ews = path == "/ews/exchange.asmx";
    let is_ad_svc = path == "/autodiscover/autodiscover.svc";
    let is_ad_xml = path == "/autodiscover/autodiscover.xml";
    if !(is_ews || is_ad_svc || is_ad_xml) {
        return Ok(reply(StatusCode::NOT_FOUND, "text/plain", "not found"));
    }
    if req.method() != http::Method::POST {
        // exchangelib probes redirect targets with an unauthenticated HEAD/GET.
        return Ok(unauthorized(&app, &host, None));
    }
    let (parts, incoming) = req.into_parts();
    // Read the body before any 401: a reply that leaves the body unread makes hyper close
    // the connection, and NTLM's legs must share one connection.
    let body = match read_body(incoming).await {
        Ok(b) => b,
        Err(r) => return Ok(r),
    };
    let mutual = match authenticate(&app, &conn, &parts.headers, &host) {
        Authn::Reply(r) => {
            app.count(|c| *c.http_status.entry(r.status().as_u16()).or_default() += 1);
            return Ok(r);
        }
        Authn::Ok(mutual) => mutual,
    };
    let mut resp = if is_ews {
        ews(&app, &body).await?
    } else {
        let text = String::from_utf8_lossy(&body);
        match xml::parse(&text) {
            Ok(doc) => {
                let st = app.state.lock().map_err(|_| DropConnection)?;
                let url = app
                    .ews_url_by_name
                    .lock()
                    .map(|u| u.clone())
                    .unwrap_or_default();
                if is_ad_svc {
                    reply(
                        StatusCode::OK,
                        "text/xml; charset=utf-8",
                        autodiscover::soap(&st, &doc, &url),
                    )
                } else {
                    reply(
                        StatusCode::OK,
                        "text/xml; charset=utf-8",
                        autodiscover::pox(&st, &doc, &url),
                    )
                }
            }
            Err(e) => reply(
                StatusCode::BAD_REQUEST,
                "text/plain",
                format!("the request is not well-formed XML: {e}"),
            ),
        }
    };
    if let Some(v) = mutual.and_then(|v| http::HeaderValue::from_str(&v).ok()) {
        resp.headers_mut().insert(http::header::WWW_AUTHENTICATE, v);
    }
    app.count(|c| *c.http_status.entry(resp.status().as_u16()).or_default() += 1);
    Ok(resp)
}

async fn read_body(body: Incoming) -> Result<Bytes, Response<Body>> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) => Err(reply(
            StatusCode::BAD_REQUEST,
            "text/plain",
            format!("could not read the request body: {e}"),
        )),
    }
}

fn soap_fault(err: &EwsError) -> Response<Body> {
    reply(
        StatusCode::INTERNAL_SERVER_ERROR,
        "text/xml; charset=utf-8",
        soap::fault(err),
    )
}

/// Resolves the mailbox a request acts on (impersonation header, or the service account).
fn acting_mailbox(st: &State, imp: &Option<Impersonation>) -> Result<String, EwsError> {
    let addr = match imp {
        None => return Ok(st.service_address().to_ascii_lowercase()),
        Some(Impersonation::Smtp(a)) | Some(Impersonation::Principal(a)) => a.clone(),
        Some(Impersonation::Sid(_)) => {
            return Err(EwsError::new(
                "ErrorImpersonationFailed",
                "Impersonation by SID is not supported by this server.",
            ))
        }
    };
    let Some(mb) = st.mailbox(&addr).filter(|mb| !mb.remote) else {
        return Err(EwsError::new(
            "ErrorNonExistentMailbox",
            format!("The SMTP address has no mailbox associated with it: {addr}"),
        ));
    };
    if !mb.impersonation && !mb.address.eq_ignore_ascii_case(&st.service_address()) {
        return Err(EwsError::new(
            "ErrorImpersonateUserDenied",
            "The account does not have permission to impersonate the requested user.",
        ));
    }
    Ok(mb.key())
}

async fn ews(app: &Arc<App>, body: &[u8]) -> Result<Response<Body>, DropConnection> {
    let text = String::from_utf8_lossy(body);
    let parsed = xml::parse(&text)
        .map_err(|e| e.to_string())
        .and_then(|doc| soap::parse_request(&doc));
    let req = match parsed {
        Ok(r) => r,
        Err(e) => {
            let err = EwsError::new(
                "ErrorSchemaValidation",
                format!("The request failed schema validation: {e}"),
            );
            app.trace("invalid", body, &soap::fault(&err));
            return Ok(soap_fault(&err));
        }
    };
    let op = req.operation.name.clone();
    app.count(|c| *c.requests_per_operation.entry(op.clone()).or_default() += 1);
    let mailbox = {
        let st = app.state.lock().map_err(|_| DropConnection)?;
        acting_mailbox(&st, &req.impersonation)
    };
    let mailbox = match mailbox {
        Ok(m) => m,
        Err(e) => {
            let f = soap::fault(&e);
            app.trace(&op, body, &f);
            return Ok(soap_fault(&e));
        }
    };
    app.count(|c| *c.requests_per_mailbox.entry(mailbox.clone()).or_default() += 1);
    let slot = match app.throttle.acquire(&mailbox) {
        Ok(s) => s,
        Err(refused) => {
            app.count(|c| c.throttled += 1);
            let err = match refused {
                Refused::Account => EwsError::new(
                    "ErrorExceededConnectionCount",
                    "You have exceeded the available concurrent connections for your account. Try again once your other requests have completed.",
                ),
                Refused::Mailbox { back_off_ms } => EwsError {
                    code: "ErrorServerBusy",
                    text: "The server cannot service this request right now. Try again later.".into(),
                    back_off_ms: Some(back_off_ms),
                },
            };
            let f = soap::fault(&err);
            app.trace(&op, body, &f);
            return Ok(soap_fault(&err));
        }
    };
    let in_flight = slot.in_flight as u64;
    app.count(|c| c.peak_requests_in_flight = c.peak_requests_in_flight.max(in_flight));
    let (latency, action) = {
        let mut f = app.faults.lock().map_err(|_| DropConnection)?;
        (f.latency_ms, f.decide(&op))
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    if action != Action::None {
        app.count(|c| c.faults_injected += 1);
    }
    match action {
        Action::Drop => return Err(DropConnection),
        Action::Http503(secs) => {
            let mut r = reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/html",
                "Service Unavailable",
            );
            if let Ok(v) = http::HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert(http::header::RETRY_AFTER, v);
            }
            return Ok(r);
        }
        Action::ServerBusy(ms) => {
            let err = EwsError {
                code: "ErrorServerBusy",
                text: "The server cannot service this request right now. Try again later.".into(),
                back_off_ms: Some(ms),
            };
            let f = soap::fault(&err);
            app.trace(&op, body, &f);
            return Ok(soap_fault(&err));
        }
        Action::Malformed => {
            return Ok(reply(
                StatusCode::OK,
                "text/xml; charset=utf-8",
                "<?xml version=\"1.0\" encoding=\"utf-8\"?><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><m:Broken",
            ));
        }
        Action::InternalError => {
            let msg = soap::error_message(
                &op,
                &EwsError::new(
                    "ErrorInternalServerError",
                    "An internal server error occurred. The operation failed.",
                ),
            );
            let env = soap::envelope(&soap::response(&op, &[msg]));
            app.trace(&op, body, &env);
            return Ok(reply(StatusCode::OK, "text/xml; charset=utf-8", env));
        }
        Action::None => {}
    }
    // The operation and its fsync'd journal record run on this worker thread without stalling
    // the other connections' tasks.
    let result = tokio::task::block_in_place(|| {
        let mut st = app.state.lock().map_err(|_| DropConnection)?;
        let since = st.seq;
        let mut ctx = Ctx {
            st: &mut st,
            mailbox,
            dirty: false,
        };
        let r = ops::dispatch(&mut ctx, &req.operation);
        if !ctx.dirty {
            return Ok(r);
        }
        let key = ctx.mailbox.to_ascii_lowercase();
        let committed =
            app.persistence
                .lock()
                .map_err(|_| DropConnection)?
                .commit(&mut st, since, &[key]);
        if let Err(e) = committed {
            tracing::error!(error = %e, "persisting the mailbox store failed");
            // Not committed: go back to the last snapshot so memory matches the disk.
            match store::load(&app.cfg.data_dir) {
                Ok(Some(previous)) => *st = previous,
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "reloading the snapshot failed"),
            }
            return Ok(Err(EwsError::new(
                "ErrorInternalServerError",
                "The change could not be committed.",
            )));
        }
        Ok(r)
    })?;
    match result {
        Ok(body_xml) => {
            let env = soap::envelope(&body_xml);
            app.trace(&op, body, &env);
            Ok(reply(StatusCode::OK, "text/xml; charset=utf-8", env))
        }
        Err(e) => {
            let f = soap::fault(&e);
            app.trace(&op, body, &f);
            Ok(soap_fault(&e))
        }
    }
}

/// Binds a listener, mapping errors to a clear message.
pub(crate) async fn bind(addr: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))
}
