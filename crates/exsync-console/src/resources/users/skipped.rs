//! CRM users the last pass left out (`GET /api/skipped-users` and a section of the status
//! page): an address that names no mailbox is said, with the reason and the fix, instead of
//! the user silently never syncing.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use exsync_core::CrmId;
use exsync_store::SkippedCrmUser;
use serde::Serialize;

use crate::error::ConsoleResult;
use crate::html::esc;
use crate::AppState;

/// One CRM user left out. The address is whatever the CRM holds: escape it wherever it is
/// shown.
#[derive(Serialize)]
pub(crate) struct SkippedUserView {
    // In the store's order, not alphabetical: this answer was serialised from the store's
    // type directly, never through a map.
    /// The user's id in the CRM.
    pub crm_id: CrmId,
    /// The email address the CRM holds for the user, which did not lead to a mailbox.
    pub address: String,
    /// Why the user was left out, in a sentence.
    pub reason: String,
    /// The first pass that left the user out, of those in a row up to the last.
    pub first_seen: DateTime<Utc>,
    /// The last pass that did.
    pub last_seen: DateTime<Utc>,
}

impl From<SkippedCrmUser> for SkippedUserView {
    fn from(s: SkippedCrmUser) -> Self {
        SkippedUserView {
            crm_id: s.crm_id,
            address: s.address,
            reason: s.reason,
            first_seen: s.first_seen,
            last_seen: s.last_seen,
        }
    }
}

impl SkippedUserView {
    pub(crate) fn list(st: &AppState) -> ConsoleResult<Vec<SkippedUserView>> {
        Ok(st
            .store
            .skipped_crm_users()?
            .into_iter()
            .map(SkippedUserView::from)
            .collect())
    }

    fn render_row(&self) -> String {
        format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(self.crm_id.as_str()),
            esc(&self.address),
            esc(&self.reason),
            esc(&self.first_seen.to_rfc3339()),
            esc(&self.last_seen.to_rfc3339()),
        )
    }
}

/// The status page's section; nothing when no user was left out.
pub(crate) fn render_section(skipped: &[SkippedUserView]) -> String {
    if skipped.is_empty() {
        return String::new();
    }
    let mut out = format!(
        r#"<h2>CRM users not synced ({})</h2>
<p class="muted">Their address in the CRM names no mailbox. Correct the user's e-mail address in the CRM; the next pass picks them up.</p>
<table id="skipped-users"><tr><th>CRM user</th><th>Address in the CRM</th><th>Reason</th><th>Left out since</th><th>Last pass</th></tr>"#,
        skipped.len()
    );
    for s in skipped {
        out.push_str(&s.render_row());
    }
    out.push_str("</table>");
    out
}

pub(crate) async fn list_json(
    State(st): State<AppState>,
) -> ConsoleResult<Json<Vec<SkippedUserView>>> {
    SkippedUserView::list(&st).map(Json)
}
