//! The one place access is decided: every routed request passes through [`guard`], which
//! finds the route in [`super::routes::ROUTES`] (refusing routes missing from it),
//! authenticates the caller, checks the role and, for state-changing requests made with a
//! session cookie, the CSRF token.

use axum::body::{to_bytes, Body};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;

use super::auth::{allows, same, sha256_hex, Caller, Via, SESSION_COOKIE};
use super::error::ConsoleError;
use super::routes::{is_api, lookup, Access};
use super::{html, AppState};

/// Largest form body read to find its CSRF field (a PEM key upload fits easily).
const FORM_LIMIT: usize = 256 * 1024;
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
pub(crate) const CSRF_FIELD: &str = "csrf";

pub(crate) async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = if req.method() == Method::HEAD {
        Method::GET
    } else {
        req.method().clone()
    };
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let api = is_api(&path);
    let Some(access) = lookup(method.as_str(), &path) else {
        tracing::error!(%method, path, "route missing from the access table; refused");
        return refuse(
            api,
            StatusCode::FORBIDDEN,
            "this route has no access rule, so it is refused",
        );
    };
    if access == Access::Public {
        return next.run(req).await;
    }
    let caller = match authenticate(&state, req.headers()) {
        Ok(Some(caller)) => caller,
        Ok(None) if api => {
            let mut res = refuse(
                true,
                StatusCode::UNAUTHORIZED,
                "not logged in: send a session cookie from POST /api/login or an API token as `Authorization: Bearer <token>`",
            );
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return res;
        }
        Ok(None) => return Redirect::to("/login").into_response(),
        Err(e) => return refuse(api, e.status, &e.message),
    };
    if let Access::Role(need) = access {
        if !allows(caller.role, need) {
            return refuse(
                api,
                StatusCode::FORBIDDEN,
                &format!(
                    "the {} role may not do this; it needs the {need} role",
                    caller.role
                ),
            );
        }
    }
    let mut req = req;
    if method != Method::GET {
        if let Via::Session { csrf } = &caller.via {
            let (sent, rebuilt) = match csrf_sent(req).await {
                Ok(found) => found,
                Err(e) => return refuse(api, e.status, &e.message),
            };
            req = rebuilt;
            if !sent.as_deref().is_some_and(|s| same(s, csrf)) {
                tracing::warn!(user = %caller.name, path, "request without a valid CSRF token refused");
                return refuse(
                    api,
                    StatusCode::FORBIDDEN,
                    "CSRF token missing or wrong: reload the page and try again (API clients: send the `X-CSRF-Token` header from the login answer)",
                );
            }
        }
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

fn refuse(api: bool, status: StatusCode, message: &str) -> Response {
    if api {
        ConsoleError::new(status, message).into_response()
    } else {
        (status, html::error_page(status, message)).into_response()
    }
}

fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Option<Caller>, ConsoleError> {
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let Some(token) = auth.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) else {
            return Ok(None);
        };
        let Some(found) = state.store.api_token_by_hash(&sha256_hex(token.trim()))? else {
            return Ok(None);
        };
        state.store.touch_api_token(found.id, Utc::now())?;
        return Ok(Some(Caller {
            name: found.name,
            role: found.role,
            via: Via::Token { id: found.id },
        }));
    }
    let Some(cookie) = session_cookie(headers) else {
        return Ok(None);
    };
    let Some(session) = state.store.session(&sha256_hex(&cookie), Utc::now())? else {
        return Ok(None);
    };
    // The account's current role, so a demotion takes effect at once.
    let Some(user) = state.store.admin_user(&session.admin_user)? else {
        return Ok(None);
    };
    Ok(Some(Caller {
        name: user.name,
        role: user.role,
        via: Via::Session {
            csrf: session.csrf_token,
        },
    }))
}

pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The CSRF token from the header or, for a form post, from its `csrf` field; the body is
/// read to find it and put back for the handler.
async fn csrf_sent(req: Request) -> Result<(Option<String>, Request), ConsoleError> {
    if let Some(v) = req.headers().get(CSRF_HEADER) {
        let token = v.to_str().ok().map(str::to_owned);
        return Ok((token, req));
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok((None, req));
    }
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, FORM_LIMIT).await.map_err(|_| {
        ConsoleError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the form is larger than {FORM_LIMIT} bytes"),
        )
    })?;
    let token = url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v.into_owned());
    Ok((token, Request::from_parts(parts, Body::from(bytes))))
}

/// The content policy of every answer. Scripts and styles come only from the console's own
/// files (`/assets/`): an inline script, an event-handler attribute or a `style` attribute
/// is not run or applied, so markup that slipped through unencoded still cannot act.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Headers on every answer: no framing (clickjacking), no caching of pages that show
/// settings (unless the handler chose a policy, as the static assets do), no MIME sniffing,
/// a strict content policy.
pub(crate) async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    res
}
