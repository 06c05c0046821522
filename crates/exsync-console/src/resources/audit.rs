//! The audit log: `GET /api/audit` and the `/audit` page.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use exsync_store::AuditRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::Caller;
use crate::error::ConsoleResult;
use crate::html::{esc, page};
use crate::AppState;

use super::internal;

/// One entry of the audit log, newest first.
#[derive(Serialize)]
pub(crate) struct AuditView {
    /// What was done, e.g. a settings change or a user's reset.
    pub action: String,
    /// Who did it: the account name, or `token:<name>#<id>` for an API token.
    pub actor: String,
    /// When, UTC.
    pub at: DateTime<Utc>,
    /// What the action was about, as the action recorded it: names and flags, never a
    /// secret. Its shape differs from action to action, so it stays free-form JSON; the
    /// page shows it whole.
    pub detail: Value,
    /// The entry's number; later entries have larger ones.
    pub id: i64,
}

impl From<AuditRecord> for AuditView {
    fn from(r: AuditRecord) -> Self {
        AuditView {
            action: r.action,
            actor: r.actor,
            at: r.at,
            detail: r.detail,
            id: r.id,
        }
    }
}

impl AuditView {
    fn list(st: &AppState, limit: usize, before: Option<i64>) -> ConsoleResult<Vec<AuditView>> {
        Ok(st
            .store
            .list_audit(limit, before)?
            .into_iter()
            .map(AuditView::from)
            .collect())
    }

    fn render_row(&self) -> String {
        format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            self.id,
            esc(&self.at.format("%Y-%m-%d %H:%M:%S").to_string()),
            esc(&self.actor),
            esc(&self.action),
            esc(&self.detail.to_string())
        )
    }
}

#[derive(Deserialize)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub before: Option<i64>,
}

pub(crate) async fn list_json(
    State(st): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> ConsoleResult<Json<Vec<AuditView>>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    AuditView::list(&st, limit, q.before).map(Json)
}

pub(crate) async fn get_page(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let entries = match AuditView::list(&st, 200, None) {
        Ok(e) => e,
        Err(e) => return internal(&caller, e),
    };
    let mut body = String::from(
        r#"<table id="audit"><tr><th>#</th><th>When (UTC)</th><th>Who</th><th>What</th><th>Detail</th></tr>"#,
    );
    for e in &entries {
        body.push_str(&e.render_row());
    }
    body.push_str("</table>");
    page("Audit log", Some(&caller), &body).into_response()
}
