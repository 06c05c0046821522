//! Errors a console request ends with: a status and a message fit to show the caller (never
//! a secret; store and file errors are logged in full and summarised).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// A failed request: answered with `status` and `{"error": message}` as JSON (the pages
/// render their own error page from the same two).
#[derive(Debug, Clone)]
pub struct ConsoleError {
    /// The HTTP status of the answer.
    pub status: StatusCode,
    /// What the caller is told went wrong; never holds a secret.
    pub message: String,
}

impl ConsoleError {
    /// An error answered with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ConsoleError {
        ConsoleError {
            status,
            message: message.into(),
        }
    }

    /// 400: the request itself is wrong (a bad value, a change the configuration check
    /// rejects).
    pub fn bad_request(message: impl Into<String>) -> ConsoleError {
        ConsoleError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: the named configuration, user or other resource does not exist.
    pub fn not_found(message: impl Into<String>) -> ConsoleError {
        ConsoleError::new(StatusCode::NOT_FOUND, message)
    }

    /// 500: the console failed (database, vault, configuration file). The message is logged
    /// as an error as well, so callers pass a summary free of secrets.
    pub fn internal(message: impl Into<String>) -> ConsoleError {
        let message = message.into();
        tracing::error!(error = %message, "console request failed");
        ConsoleError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl From<exsync_store::StoreError> for ConsoleError {
    fn from(e: exsync_store::StoreError) -> Self {
        ConsoleError::internal(format!("state database: {e}"))
    }
}

impl From<exsync_engine::vault::VaultError> for ConsoleError {
    fn from(e: exsync_engine::vault::VaultError) -> Self {
        match e {
            exsync_engine::vault::VaultError::InvalidName(_)
            | exsync_engine::vault::VaultError::Empty(_) => {
                ConsoleError::bad_request(e.to_string())
            }
            other => ConsoleError::internal(format!("vault: {other}")),
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// What handlers and console helpers return.
pub type ConsoleResult<T> = Result<T, ConsoleError>;
