//! Users a configuration assigns whom the last pass found no active CRM user for (`GET
//! /api/unmatched-users` and a section of the status page): listed by address, they would
//! otherwise show nowhere but in the pass's summary and metrics.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use exsync_core::UserKey;
use exsync_store::UnmatchedUser;
use serde::Serialize;

use crate::error::ConsoleResult;
use crate::html::{address, esc};
use crate::AppState;

/// One configured user no CRM user pairs with.
#[derive(Serialize)]
pub(crate) struct UnmatchedUserView {
    /// The first pass that found them unmatched, of those in a row up to the last.
    pub first_seen: DateTime<Utc>,
    /// The last pass that did.
    pub last_seen: DateTime<Utc>,
    /// Why they are not synced, in a sentence.
    pub reason: String,
    /// The mailbox address the configuration names.
    pub user: UserKey,
}

impl From<UnmatchedUser> for UnmatchedUserView {
    fn from(u: UnmatchedUser) -> Self {
        UnmatchedUserView {
            first_seen: u.first_seen,
            last_seen: u.last_seen,
            reason: u.reason,
            user: u.user,
        }
    }
}

impl UnmatchedUserView {
    pub(crate) fn list(st: &AppState) -> ConsoleResult<Vec<UnmatchedUserView>> {
        Ok(st
            .store
            .unmatched_users()?
            .into_iter()
            .map(UnmatchedUserView::from)
            .collect())
    }
}

/// The status page's section; nothing when every configured user pairs.
pub(crate) fn render_section(unmatched: &[UnmatchedUserView]) -> String {
    if unmatched.is_empty() {
        return String::new();
    }
    let mut out = format!(
        r#"<h2>Configured users not synced ({})</h2>
<p class="muted">A configuration names them, but no active CRM user pairs with their address. Activate or correct the CRM user, or take the address out of the configuration; <code class="command">exsync check</code> says more.</p>
<table id="unmatched-users"><tr><th>User</th><th>Reason</th><th>Since</th><th>Last pass</th></tr>"#,
        unmatched.len()
    );
    for u in unmatched {
        out.push_str(&format!(
            "<tr data-user=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(u.user.as_str()),
            address(u.user.as_str()),
            esc(&u.reason),
            esc(&u.first_seen.to_rfc3339()),
            esc(&u.last_seen.to_rfc3339()),
        ));
    }
    out.push_str("</table>");
    out
}

pub(crate) async fn list_json(
    State(st): State<AppState>,
) -> ConsoleResult<Json<Vec<UnmatchedUserView>>> {
    UnmatchedUserView::list(&st).map(Json)
}
