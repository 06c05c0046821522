//! The admin console: setup pages and a JSON API over the configuration file,
//! the vault and the state database, behind local accounts, sessions with CSRF tokens and
//! API tokens. `routes` says who may call what; `guard` enforces it for every request.

mod api;
mod assets;
mod auth;
mod error;
mod guard;
mod html;
mod pages;
pub mod routes;
mod serve;
mod settings;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::routing::{get, post, put};
use axum::Router;
use chrono::Utc;
use exsync_store::{AuditEvent, Store};
use serde_json::Value;

pub use auth::{
    hash_password, new_api_token, sha256_hex, verify_password, Caller, LoginLimiter, Via,
    SESSION_COOKIE, TOKEN_PREFIX,
};
pub use error::{ConsoleError, ConsoleResult};
pub use serve::{serve, ServeOptions, TlsFiles};
pub use settings::ConfigFile;

use exsync_engine::vault::Vault;

/// Everything a request handler needs.
pub struct Console {
    pub store: Arc<dyn Store>,
    pub vault: Vault,
    pub config: ConfigFile,
    /// Whether the console is served over TLS (cookies get `Secure`).
    pub tls: bool,
    pub limiter: LoginLimiter,
    /// Whether the per-user connection test runs the connectivity analyzer. Off, the test
    /// endpoints answer 501 "not available" rather than pretend.
    pub connection_tests: bool,
}

pub type AppState = Arc<Console>;

impl Console {
    pub fn new(store: Arc<dyn Store>, vault: Vault, config_path: PathBuf) -> Console {
        Console {
            store,
            vault,
            config: ConfigFile::new(config_path),
            tls: false,
            limiter: LoginLimiter::default(),
            connection_tests: false,
        }
    }

    /// Appends to the audit log. `detail` must not hold a secret; callers pass names and
    /// flags such as `password_changed`, never values.
    pub fn audit(&self, actor: &str, action: &str, detail: Value) {
        let event = AuditEvent {
            at: Utc::now(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            detail,
        };
        if let Err(e) = self.store.append_audit(&event) {
            tracing::error!(error = %e, action, "cannot append to the audit log");
        }
    }

    pub fn sync_enabled(&self) -> ConsoleResult<bool> {
        Ok(exsync_engine::switch::is_enabled(self.store.as_ref())?)
    }
}

/// The console's routes with the guard in front of every one of them.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/login", post(api::login))
        .route("/api/logout", post(api::logout))
        .route("/api/me", get(api::me))
        .route("/api/sync", get(api::get_sync).put(api::put_sync))
        .route(
            "/api/service-account",
            get(api::get_service_account).put(api::put_service_account),
        )
        .route("/api/crm", get(api::get_crm).put(api::put_crm))
        .route(
            "/api/configurations",
            get(api::list_configurations).post(api::create_configuration),
        )
        .route("/api/configurations/{name}", put(api::update_configuration))
        .route("/api/assignment", get(api::assignment))
        .route("/api/users", get(api::users))
        .route("/api/skipped-users", get(api::skipped_users))
        .route("/api/users/{user}/reset", post(api::reset_user))
        .route("/api/users/{user}/test", post(api::test_user))
        .route("/api/audit", get(api::audit))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/", get(pages::overview))
        .route("/sync", post(pages::set_sync))
        .route(
            "/service-account",
            get(pages::service_account).post(pages::save_service_account),
        )
        .route("/crm", get(pages::crm).post(pages::save_crm))
        .route(
            "/configurations",
            get(pages::configurations).post(pages::create_configuration),
        )
        .route("/configurations/{name}", post(pages::update_configuration))
        .route("/users/{user}/reset", post(pages::reset_user))
        .route("/users/{user}/test", post(pages::test_user))
        .route("/audit", get(pages::audit))
        .route("/assets/console.css", get(assets::css))
        .route("/assets/console.js", get(assets::js))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .layer(axum::middleware::map_response(guard::security_headers))
        .with_state(state)
}

/// The client address the rate limiter counts, from the connection (tests may leave it
/// out).
pub(crate) fn client_addr(req_ext: &http::Extensions) -> String {
    req_ext
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}
