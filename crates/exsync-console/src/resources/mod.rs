//! One module per resource the console manages. Each resource has one view type: the JSON
//! handler returns it as it is, and the page renders it by reading its fields, so the API
//! and the page show the same thing and a page never looks a value up by a string key.
//! Each module also holds the operations its API call and its form post share (log in,
//! save, reset, test).
//!
//! The fields of every view are declared in alphabetical order. The API answered with
//! `serde_json::Value` maps before, which keep their keys sorted; declaring the fields in
//! that order keeps every answer byte for byte what it was.

pub(crate) mod audit;
pub(crate) mod configurations;
pub(crate) mod crm;
pub(crate) mod exchange_online;
pub(crate) mod rule_settings;
pub(crate) mod service_account;
pub(crate) mod session;
pub(crate) mod sync;
pub(crate) mod users;

#[cfg(test)]
mod shapes;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::auth::Caller;
use super::error::ConsoleError;
use super::html::{error_box, page};

/// A page that only says what went wrong.
pub(crate) fn fail(status: StatusCode, title: &str, caller: &Caller, message: &str) -> Response {
    (status, page(title, Some(caller), &error_box(Some(message)))).into_response()
}

/// The page for an error that keeps a page from being built at all.
pub(crate) fn internal(caller: &Caller, e: ConsoleError) -> Response {
    fail(e.status, "Error", caller, &e.message)
}

/// An optional text field: blank means not given, so an emptied form field clears the
/// setting instead of storing whitespace.
pub(crate) fn blank_to_none(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// The choice a refused form sent, as one of the page's own `options`, so the page shows it
/// selected again; `None` for anything else (the stored choice is shown then).
pub(crate) fn typed_choice(options: &[&'static str], typed: Option<&str>) -> Option<&'static str> {
    let typed = typed?.trim();
    options.iter().copied().find(|o| *o == typed)
}
