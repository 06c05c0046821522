//! A console on a temporary configuration, state database and vault, driven in-process
//! through the router (no sockets), with one account and one API token per role.

pub mod sims;

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use chrono::Utc;
use exsync_console::{hash_password, router, sha256_hex, AppState, Console};
use exsync_core::UserKey;
use exsync_engine::vault::{MasterKey, Vault};
use exsync_store::{Role, Session, SqliteStore, Store};
use tower::ServiceExt;

pub const CONFIG: &str = r#"# The test server's configuration.
[store]
path = "state.db"

[exchange]
# The account with ApplicationImpersonation.
service_account = "svc@contoso.test"

[crm]
client_id = "client"
username = "integration@contoso.test"

[configurations.sales]
users = ["ann@contoso.test"]
groups = ["Sales User"]
"#;

pub const PASSWORD: &str = "console-password-for-tests";

pub struct Env {
    pub dir: tempfile::TempDir,
    pub store: Arc<dyn Store>,
    pub state: AppState,
    pub app: Router,
    /// Plain API tokens by role name.
    pub tokens: Vec<(Role, String)>,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(dir.path().join("state.db")).unwrap());
        Env::with_store(dir, store)
    }

    /// A console over `store` (e.g. a PostgreSQL one), its configuration in `dir`.
    pub fn with_store(dir: tempfile::TempDir, store: Arc<dyn Store>) -> Env {
        std::fs::write(dir.path().join("exsync.toml"), CONFIG).unwrap();
        let vault = Vault::new(store.clone(), MasterKey::generate());
        // One hash for all three accounts: argon2 is slow in a debug build.
        let hash = hash_password(PASSWORD).unwrap();
        let mut tokens = Vec::new();
        for role in [Role::Admin, Role::Operator, Role::Viewer] {
            store
                .create_admin_user(role.as_str(), &hash, role, Utc::now())
                .unwrap();
            let token = exsync_console::new_api_token();
            store
                .create_api_token(
                    &sha256_hex(&token),
                    &format!("{role}-bot"),
                    role,
                    Utc::now(),
                )
                .unwrap();
            tokens.push((role, token));
        }
        store
            .ensure_user(&UserKey::from_email("ann@contoso.test"))
            .unwrap();
        let state = Arc::new(Console::new(
            store.clone(),
            vault,
            dir.path().join("exsync.toml"),
        ));
        let app = router(state.clone());
        Env {
            dir,
            store,
            state,
            app,
            tokens,
        }
    }

    /// A router over this console's store, vault and configuration with its connection tests
    /// turned on (the analyzer reaches the simulators).
    pub fn router_with_connection_tests(&self) -> Router {
        let mut console = Console::new(
            self.store.clone(),
            self.state.vault.clone(),
            self.config_path(),
        );
        console.connection_tests = true;
        router(Arc::new(console))
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("exsync.toml")
    }

    pub fn token(&self, role: Role) -> &str {
        &self.tokens.iter().find(|(r, _)| *r == role).unwrap().1
    }

    /// A fresh session for the account named after `role`: (cookie value, CSRF token).
    pub fn session(&self, role: Role) -> (String, String) {
        let cookie = exsync_console::new_api_token();
        let csrf = exsync_console::new_api_token();
        self.store
            .create_session(&Session {
                id: sha256_hex(&cookie),
                admin_user: role.as_str().to_owned(),
                csrf_token: csrf.clone(),
                created_at: Utc::now(),
                expires_at: Utc::now() + chrono::TimeDelta::hours(1),
            })
            .unwrap();
        (cookie, csrf)
    }

    pub async fn send(&self, req: Request<Body>) -> Answer {
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), 16 * 1024 * 1024)
            .await
            .unwrap();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }
}

/// How a request authenticates in these tests.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    Session {
        cookie: String,
        csrf: Option<String>,
    },
    Token(String),
}

pub fn request(method: Method, path: &str, auth: &Auth, body: Option<Body2>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    match auth {
        Auth::None => {}
        Auth::Session { cookie, csrf } => {
            b = b.header("cookie", format!("exsync_session={cookie}"));
            if let (Some(csrf), false) = (csrf, matches!(body, Some(Body2::Form(_)))) {
                b = b.header("x-csrf-token", csrf);
            }
        }
        Auth::Token(t) => b = b.header("authorization", format!("Bearer {t}")),
    }
    match body {
        None => b.body(Body::empty()).unwrap(),
        Some(Body2::Json(v)) => b
            .header("content-type", "application/json")
            .body(Body::from(v.to_string()))
            .unwrap(),
        Some(Body2::Form(mut pairs)) => {
            if let Auth::Session {
                csrf: Some(csrf), ..
            } = auth
            {
                pairs.push(("csrf".to_owned(), csrf.clone()));
            }
            let text = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish();
            b.header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(text))
                .unwrap()
        }
    }
}

#[derive(Debug, Clone)]
pub enum Body2 {
    Json(serde_json::Value),
    Form(Vec<(String, String)>),
}

pub fn form(pairs: &[(&str, &str)]) -> Body2 {
    Body2::Form(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}
