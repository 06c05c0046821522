//! The admin console: setup pages and a JSON API over the configuration file,
//! the vault and the state database, behind local accounts, sessions with CSRF tokens and
//! API tokens. `routes` says who may call what; `guard` enforces it for every request.

#![warn(unreachable_pub)]
#![warn(missing_docs)]

mod assets;
mod auth;
mod error;
mod fixes;
mod guard;
mod html;
mod resources;
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
    hash_password, new_api_token, sha256_hex, verify_password, Caller, LoginLimiter,
    PasswordHashError, Via, SESSION_COOKIE, TOKEN_PREFIX,
};
pub use error::{ConsoleError, ConsoleResult};
pub use serve::{serve, ServeError, ServeOptions, TlsFiles};
pub use settings::ConfigFile;

use exsync_engine::vault::Vault;

/// Everything a request handler needs.
pub struct Console {
    /// The state database: console accounts, sessions, API tokens, the audit log and the
    /// sync state the status pages show.
    pub store: Arc<dyn Store>,
    /// Where the secrets the admin enters (the service account password, the CRM key or
    /// client secret) are kept, rather than in the configuration file.
    pub vault: Vault,
    /// `exsync.toml`, which the settings pages edit in place.
    pub config: ConfigFile,
    /// Whether the console is served over TLS (cookies get `Secure`).
    pub tls: bool,
    /// Counts failed logins per account and per client address and turns away guessers.
    pub limiter: LoginLimiter,
    /// Whether the per-user connection test runs the connectivity analyzer. Off, the test
    /// endpoints answer 501 "not available" rather than pretend.
    pub connection_tests: bool,
}

/// The console as axum hands it to every handler and to the guard.
pub type AppState = Arc<Console>;

impl Console {
    /// A console over `store`, `vault` and the configuration file at `config_path`, with
    /// plain-HTTP cookies, the default login limits and connection tests off; the caller
    /// changes those fields before serving.
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

    /// Whether the sync switch in the state database is on, i.e. whether the service syncs
    /// at all; an error when the database cannot be read.
    pub fn sync_enabled(&self) -> ConsoleResult<bool> {
        Ok(exsync_engine::switch::is_enabled(self.store.as_ref())?)
    }
}

/// The console's routes with the guard in front of every one of them.
pub fn router(state: AppState) -> Router {
    use resources::users::{conflicts, detail, reset, skipped, test, unmatched};
    use resources::{
        audit, configurations, crm, exchange_online, service_account, session, sync, users,
    };
    Router::new()
        .route("/api/login", post(session::login_json))
        .route("/api/logout", post(session::logout_json))
        .route("/api/me", get(session::me_json))
        .route("/api/sync", get(sync::get_json).put(sync::put_json))
        .route(
            "/api/service-account",
            get(service_account::get_json).put(service_account::put_json),
        )
        .route(
            "/api/exchange-online",
            get(exchange_online::get_json).put(exchange_online::put_json),
        )
        .route("/api/crm", get(crm::get_json).put(crm::put_json))
        .route(
            "/api/configurations",
            get(configurations::list_json).post(configurations::create_json),
        )
        .route(
            "/api/configurations/{name}",
            put(configurations::update_json),
        )
        .route("/api/assignment", get(configurations::assignment_json))
        .route("/api/users", get(users::list_json))
        .route("/api/skipped-users", get(skipped::list_json))
        .route("/api/unmatched-users", get(unmatched::list_json))
        .route("/api/users/{user}", get(detail::get_json))
        .route("/api/users/{user}/reset", post(reset::post_json))
        .route("/api/users/{user}/test", post(test::post_json))
        .route("/api/users/{user}/conflicts", get(conflicts::list_json))
        .route("/api/audit", get(audit::list_json))
        .route("/login", get(session::login_form).post(session::login_post))
        .route("/logout", post(session::logout_post))
        .route("/", get(users::status_get_page))
        .route("/sync", post(sync::post_form))
        .route(
            "/service-account",
            get(service_account::get_page).post(service_account::post_form),
        )
        .route(
            "/exchange-online",
            get(exchange_online::get_page).post(exchange_online::post_form),
        )
        .route("/crm", get(crm::get_page).post(crm::post_form))
        .route(
            "/configurations",
            get(configurations::get_page).post(configurations::create_form),
        )
        .route("/configurations/{name}", post(configurations::update_form))
        .route("/users/{user}", get(detail::get_page))
        .route("/users/{user}/reset", post(reset::post_form))
        .route("/users/{user}/test", post(test::post_form))
        .route("/users/{user}/conflicts", get(conflicts::get_page))
        .route("/audit", get(audit::get_page))
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
