//! Logging in and out, and who is calling: `POST /api/login`, `POST /api/logout`,
//! `GET /api/me`, and the login form with `POST /login` and `POST /logout`.

use std::time::Duration;

use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form, Json};
use chrono::Utc;
use exsync_engine::vault::SecretValue;
use exsync_store::{Role, Session};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::{
    random_token, sha256_hex, verify_password, Caller, Via, SESSION_COOKIE, SESSION_TTL,
};
use crate::error::ConsoleError;
use crate::html::{error_box, page};
use crate::{client_addr, AppState};

/// What the log and the audit record as the name of a failed login whose name is not an
/// account.
pub(crate) const UNKNOWN_ACCOUNT: &str = "unknown account";

/// A new session: what `POST /api/login` answers. The cookie itself goes in a header, never
/// in the body.
#[derive(Serialize)]
pub(crate) struct LoginView<'a> {
    /// Sent back in `X-CSRF-Token` with every state change made through the session.
    pub csrf_token: &'a str,
    /// What the account may do: `viewer`, `operator` or `admin`.
    pub role: Role,
    /// The account that logged in.
    pub user: &'a str,
}

/// The caller as `GET /api/me` shows them. The login answer has other fields (`user`,
/// `csrf_token`), which is why it is a view of its own.
#[derive(Serialize)]
pub(crate) struct MeView<'a> {
    /// The console account, or the API token's name.
    pub name: &'a str,
    /// What the caller may do: `viewer`, `operator` or `admin`.
    pub role: Role,
    /// `session` or `token`.
    pub via: &'static str,
}

impl<'a> MeView<'a> {
    pub(crate) fn of(caller: &'a Caller) -> MeView<'a> {
        MeView {
            name: &caller.name,
            role: caller.role,
            via: match caller.via {
                Via::Session { .. } => "session",
                Via::Token { .. } => "token",
            },
        }
    }
}

pub(crate) struct LoggedIn {
    pub name: String,
    pub role: Role,
    pub cookie: String,
    pub csrf: String,
}

impl LoggedIn {
    pub(crate) fn view(&self) -> LoginView<'_> {
        LoginView {
            csrf_token: &self.csrf,
            role: self.role,
            user: &self.name,
        }
    }
}

pub(crate) enum LoginFailure {
    Limited(Duration),
    Wrong,
    Internal(ConsoleError),
}

impl LoginFailure {
    pub(crate) fn message(&self) -> String {
        match self {
            LoginFailure::Limited(wait) => format!(
                "too many failed logins for this account or from this address; try again in {} minutes",
                wait.as_secs().div_ceil(60).max(1)
            ),
            LoginFailure::Wrong => "wrong user name or password".to_owned(),
            LoginFailure::Internal(e) => e.message.clone(),
        }
    }

    pub(crate) fn status(&self) -> StatusCode {
        match self {
            LoginFailure::Limited(_) => StatusCode::TOO_MANY_REQUESTS,
            LoginFailure::Wrong => StatusCode::UNAUTHORIZED,
            LoginFailure::Internal(e) => e.status,
        }
    }

    pub(crate) fn retry_after(&self) -> Option<HeaderValue> {
        match self {
            LoginFailure::Limited(wait) => {
                HeaderValue::from_str(&wait.as_secs().max(1).to_string()).ok()
            }
            _ => None,
        }
    }
}

pub(crate) async fn do_login(
    st: &AppState,
    client: &str,
    username: &str,
    password: SecretValue,
) -> Result<LoggedIn, LoginFailure> {
    let username = username.trim().to_owned();
    let account = st
        .store
        .admin_user(&username)
        .map_err(|e| LoginFailure::Internal(e.into()))?;
    // Whatever was typed as the name may be a password typed into the wrong field; it is
    // only ever written down (log, audit) when it names an existing account.
    let who = account
        .as_ref()
        .map_or(UNKNOWN_ACCOUNT, |a| a.name.as_str())
        .to_owned();
    if let Err(wait) = st.limiter.check(&username, client) {
        tracing::warn!(user = %who, client, "login refused: rate limit");
        return Err(LoginFailure::Limited(wait));
    }
    let hash = account.as_ref().map(|a| a.password_hash.clone());
    // argon2 is deliberately slow: keep it off the async workers.
    let ok =
        tokio::task::spawn_blocking(move || verify_password(hash.as_deref(), password.expose()))
            .await
            .unwrap_or(false);
    let Some(account) = account.filter(|_| ok) else {
        st.limiter.failed(&username, client);
        tracing::info!(user = %who, client, "login failed");
        st.audit(&who, "login.failed", json!({ "client": client }));
        return Err(LoginFailure::Wrong);
    };
    st.limiter.succeeded(&username);
    let cookie = random_token();
    let csrf = random_token();
    let now = Utc::now();
    st.store
        .create_session(&Session {
            id: sha256_hex(&cookie),
            admin_user: account.name.clone(),
            csrf_token: csrf.clone(),
            created_at: now,
            expires_at: now + SESSION_TTL,
        })
        .map_err(|e| LoginFailure::Internal(e.into()))?;
    st.audit(&account.name, "login", json!({ "client": client }));
    Ok(LoggedIn {
        name: account.name,
        role: account.role,
        cookie,
        csrf,
    })
}

pub(crate) fn set_cookie(st: &AppState, value: &str, max_age: i64) -> HeaderValue {
    let secure = if st.tls { "; Secure" } else { "" };
    let text = format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub(crate) fn end_session(st: &AppState, req_headers: &http::HeaderMap, caller: &Caller) {
    if let Some(cookie) = crate::guard::session_cookie(req_headers) {
        if let Err(e) = st.store.delete_session(&sha256_hex(&cookie)) {
            tracing::error!(error = %e, "cannot delete a session");
        }
    }
    st.audit(&caller.actor(), "logout", json!({}));
}

/// The login call's body, and the login form's fields.
#[derive(Deserialize)]
pub(crate) struct LoginInput {
    pub username: String,
    pub password: SecretValue,
}

fn with_retry_after(mut res: Response, failure: &LoginFailure) -> Response {
    if let Some(v) = failure.retry_after() {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

// ---- JSON ------------------------------------------------------------------------------------

pub(crate) async fn login_json(State(st): State<AppState>, req: Request) -> Response {
    let client = client_addr(req.extensions());
    let body = match axum::body::to_bytes(req.into_body(), 64 * 1024).await {
        Ok(b) => b,
        Err(_) => return ConsoleError::bad_request("the login body is too large").into_response(),
    };
    let input: LoginInput = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(e) => {
            return ConsoleError::bad_request(format!(
                "expected JSON {{\"username\", \"password\"}}: {e}"
            ))
            .into_response()
        }
    };
    match do_login(&st, &client, &input.username, input.password).await {
        Ok(done) => {
            let mut res = Json(done.view()).into_response();
            res.headers_mut().insert(
                header::SET_COOKIE,
                set_cookie(&st, &done.cookie, SESSION_TTL.num_seconds()),
            );
            res
        }
        Err(failure) => with_retry_after(
            ConsoleError::new(failure.status(), failure.message()).into_response(),
            &failure,
        ),
    }
}

pub(crate) async fn logout_json(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: http::HeaderMap,
) -> Response {
    end_session(&st, &headers, &caller);
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&st, "", 0));
    res
}

pub(crate) async fn me_json(Extension(caller): Extension<Caller>) -> Response {
    Json(MeView::of(&caller)).into_response()
}

// ---- pages -----------------------------------------------------------------------------------

fn login_page(message: Option<&str>) -> Html<String> {
    page(
        "Log in",
        None,
        &format!(
            r#"{}<form method="post" action="/login" id="login-form">
<label>User name <input type="text" name="username" id="username" autocomplete="username" required></label>
<label>Password <input type="password" name="password" id="password" autocomplete="current-password" required></label>
<button type="submit" id="login">Log in</button></form>"#,
            error_box(message)
        ),
    )
}

pub(crate) async fn login_form() -> Html<String> {
    login_page(None)
}

pub(crate) async fn login_post(State(st): State<AppState>, req: Request) -> Response {
    let client = client_addr(req.extensions());
    let Ok(Form(form)) = Form::<LoginInput>::from_request(req, &st).await else {
        return (
            StatusCode::BAD_REQUEST,
            login_page(Some("fill in user name and password")),
        )
            .into_response();
    };
    match do_login(&st, &client, &form.username, form.password).await {
        Ok(done) => {
            let mut res = Redirect::to("/").into_response();
            res.headers_mut().insert(
                header::SET_COOKIE,
                set_cookie(&st, &done.cookie, SESSION_TTL.num_seconds()),
            );
            res
        }
        Err(failure) => with_retry_after(
            (failure.status(), login_page(Some(&failure.message()))).into_response(),
            &failure,
        ),
    }
}

pub(crate) async fn logout_post(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: http::HeaderMap,
) -> Response {
    end_session(&st, &headers, &caller);
    let mut res = Redirect::to("/login").into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&st, "", 0));
    res
}
