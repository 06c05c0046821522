//! One user's page, `/users/{user}`, and its JSON, `GET /api/users/{user}`: the
//! configuration that applies and why, the backend (and, for an `auto` mailbox, what located
//! it), the recent passes with the full error of each, the unresolved records and the recent
//! conflicts by name, Reset Sync and the connection test. The status table links each user
//! here and shows only the start of a long error.
//!
//! Names, reasons, errors and values come from the CRM, the mailbox or a server's answer:
//! every one is encoded where it lands.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use exsync_core::{ItemKind, Side, UserKey};
use exsync_store::{MailboxRoute, UnresolvedItem};
use serde::Serialize;

use crate::auth::Caller;
use crate::error::{ConsoleError, ConsoleResult};
use crate::html::{esc, page, seg};
use crate::resources::configurations::AssignmentView;
use crate::AppState;

use super::super::internal;
use super::conflicts::ConflictView;
use super::{problems, time_element, RunView, UserView};

/// How many of the user's passes the page shows, newest first.
const RECENT_RUNS: usize = 10;
/// How many conflicts and first-link merges it shows; the conflicts page lists more.
const RECENT_CONFLICTS: usize = 20;
/// How many unresolved records it lists, oldest first; `status.unresolved` counts them all.
const UNRESOLVED_SHOWN: usize = 200;

/// Everything the user's page shows.
#[derive(Serialize)]
pub(crate) struct UserDetailView {
    /// Which configuration applies to the user and why: an individual assignment, or a
    /// group one through the CRM profile the last pass found (only a pass reads it).
    pub assignment: AssignmentView,
    /// The backend that served the last pass (`ews`, `graph`); `null` before the first.
    pub backend: Option<String>,
    /// Recent conflicts and first-link merges, newest first, each with its record's name.
    pub conflicts: Vec<ConflictView>,
    /// The last pass's error in full (the status table shows its start); `null` when it
    /// did not fail.
    pub last_error: Option<String>,
    /// For a mailbox located automatically (`[exchange_online] auto`), where it was last
    /// found and what said so; absent for any other mailbox.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteView>,
    /// The user's most recent passes, newest first (the state database keeps every pass).
    pub runs: Vec<RunView>,
    /// `syncing`, `failing`, `paused` or `new`, as on the status page.
    pub state: &'static str,
    /// The status row: counts, pause, lease.
    pub status: UserView,
    /// Records that keep failing to sync, with their names and why: the 200 seen first
    /// (`status.unresolved` counts them all).
    pub unresolved: Vec<UnresolvedView>,
    /// The mailbox address, lower-cased.
    pub user: UserKey,
}

/// Where an `auto` mailbox was last found.
#[derive(Serialize)]
pub(crate) struct RouteView {
    /// `ews` or `graph`; `null` before the mailbox was first located.
    pub backend: Option<String>,
    /// When it was located.
    pub checked_at: Option<DateTime<Utc>>,
    /// What said so (the routing address Autodiscover answered with, or the EWS URL).
    pub evidence: Option<String>,
}

impl From<Option<&MailboxRoute>> for RouteView {
    fn from(r: Option<&MailboxRoute>) -> Self {
        RouteView {
            backend: r.map(|r| r.backend.clone()),
            checked_at: r.map(|r| r.checked_at),
            evidence: r.map(|r| r.evidence.clone()),
        }
    }
}

/// A record that keeps failing to sync.
#[derive(Serialize)]
pub(crate) struct UnresolvedView {
    /// When a pass first reported it, since it last synced.
    pub first_seen: DateTime<Utc>,
    /// The record's id, on `side`.
    pub id: String,
    /// `contact` or `event`.
    pub kind: ItemKind,
    /// When a pass last reported it.
    pub last_seen: DateTime<Utc>,
    /// A contact's name and address, an event's subject and start; `null` when no pass had
    /// the record's content. Untrusted text.
    pub name: Option<String>,
    /// How many passes reported it.
    pub occurrences: u64,
    /// Why it fails, as the last pass said.
    pub reason: String,
    /// `crm` or `exchange`: the side the id belongs to.
    pub side: Side,
}

impl From<UnresolvedItem> for UnresolvedView {
    fn from(u: UnresolvedItem) -> Self {
        UnresolvedView {
            first_seen: u.first_seen,
            side: u.id.side(),
            id: u.id.as_str().to_owned(),
            kind: u.kind,
            last_seen: u.last_seen,
            name: u.name,
            occurrences: u.occurrences,
            reason: u.reason,
        }
    }
}

impl UserDetailView {
    /// The user's page; a user the store does not know is refused rather than shown empty.
    pub(crate) fn load(st: &AppState, user: &str) -> ConsoleResult<UserDetailView> {
        let key = UserKey::from_email(user);
        let status = UserView::one(st, &key)?
            .ok_or_else(|| ConsoleError::not_found(format!("{key} has never been synced")))?;
        // The group the last pass found the user in: only a pass reads the CRM profile.
        let groups: BTreeSet<String> = status
            .configuration
            .as_ref()
            .and_then(|c| c.group.clone())
            .into_iter()
            .collect();
        let assignment = match st.config.load() {
            Ok(config) => AssignmentView::explain(&config.configurations, &key, &groups),
            Err(_) => AssignmentView {
                assigned_by: None,
                configuration: None,
                group: None,
                // The error names the file's path, which the page does not show.
                reasons: vec![
                    "the configuration file cannot be read; `exsync config check` says why"
                        .to_owned(),
                ],
                user: key.to_string(),
            },
        };
        let runs: Vec<RunView> = st
            .store
            .runs(&key, RECENT_RUNS)?
            .into_iter()
            .map(RunView::from)
            .collect();
        let unresolved = st
            .store
            .unresolved(&key)?
            .into_iter()
            .take(UNRESOLVED_SHOWN)
            .map(UnresolvedView::from)
            .collect();
        let conflicts = ConflictView::list(st, key.as_str(), RECENT_CONFLICTS)?;
        let last = status.last_run.as_ref();
        Ok(UserDetailView {
            assignment,
            backend: last.and_then(|r| r.backend.clone()),
            conflicts,
            last_error: last.and_then(|r| r.error.clone()),
            route: status.auto.as_ref().map(|r| RouteView::from(r.as_ref())),
            runs,
            state: status.state,
            unresolved,
            user: key,
            status,
        })
    }

    fn render(&self, caller: &Caller) -> String {
        let user = self.user.as_str();
        let mut body = format!(
            r#"<p id="user-summary">User <strong id="detail-user">{}</strong> is <span class="state {s}" id="detail-state">{s}</span>.</p>"#,
            esc(user),
            s = self.state
        );
        if let Some(p) = &self.status.paused {
            body.push_str(&format!(
                r#"<p class="paused" id="detail-paused">Paused since {}: {}</p>"#,
                time_element(&p.since),
                esc(&p.reason)
            ));
        }
        body.push_str(&format!(
            r#"<div class="actions" id="detail-actions">{}</div>"#,
            self.status.actions(caller)
        ));

        body.push_str("<h2>Configuration</h2>");
        let a = &self.assignment;
        body.push_str(&format!(
            r#"<p id="detail-configuration">{}</p><ul class="reasons">"#,
            match &a.configuration {
                Some(c) => format!("<strong>{}</strong>", esc(&assignment_text(c, a))),
                None => "No configuration applies: none lists the user, and no pass found them in a group one names.".to_owned(),
            }
        ));
        for r in &a.reasons {
            body.push_str(&format!("<li>{}</li>", esc(r)));
        }
        body.push_str("</ul>");

        body.push_str("<h2>Backend</h2>");
        body.push_str(&format!(
            r#"<p id="detail-backend">{}</p>"#,
            self.backend_text()
        ));

        body.push_str("<h2>Last error</h2>");
        match &self.last_error {
            Some(e) => body.push_str(&format!(
                r#"<pre class="error" id="detail-error">{}</pre>"#,
                esc(e)
            )),
            None => body
                .push_str(r#"<p class="muted" id="detail-error">The last pass did not fail.</p>"#),
        }

        body.push_str(&format!(
            "<h2>Unresolved items ({})</h2>",
            self.status.unresolved
        ));
        if self.status.unresolved > self.unresolved.len() as u64 {
            body.push_str(&format!(
                r#"<p class="muted">The {} seen first are listed; `exsync status --user` lists them all.</p>"#,
                self.unresolved.len()
            ));
        }
        if self.unresolved.is_empty() {
            body.push_str(r#"<p class="muted" id="no-unresolved">Every record synced.</p>"#);
        } else {
            body.push_str(r#"<table id="unresolved"><tr><th>Kind</th><th>Record</th><th>Id</th><th>Why</th><th>Seen</th><th>Since</th></tr>"#);
            for u in &self.unresolved {
                body.push_str(&format!(
                    r#"<tr data-id="{id}"><td>{}</td><td class="name">{}</td><td class="id">{} {id}</td><td class="reason">{}</td><td>{}×</td><td>{}</td></tr>"#,
                    esc(u.kind.as_str()),
                    name_cell(u.name.as_deref()),
                    esc(u.side.as_str()),
                    esc(&u.reason),
                    u.occurrences,
                    time_element(&u.first_seen),
                    id = esc(&u.id),
                ));
            }
            body.push_str("</table>");
        }

        body.push_str(&format!(
            "<h2>Recent passes ({} shown, newest first)</h2>",
            self.runs.len()
        ));
        if self.runs.is_empty() {
            body.push_str(r#"<p class="muted">No pass has ended yet.</p>"#);
        } else {
            body.push_str(r#"<table id="runs"><tr><th>Ended</th><th>Backend</th><th>Created / updated / deleted</th><th>Conflicts</th><th>Failures</th><th>Error and notices</th></tr>"#);
            for r in &self.runs {
                body.push_str(&format!(
                    "<tr data-run=\"{}\"><td>{}</td><td>{}</td><td>{} / {} / {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    r.id,
                    time_element(&r.finished),
                    esc(r.backend.as_deref().unwrap_or_default()),
                    r.counts.created,
                    r.counts.updated,
                    r.counts.deleted,
                    r.counts.conflicts,
                    r.counts.failures,
                    problems(Some(r)),
                ));
            }
            body.push_str("</table>");
        }

        body.push_str("<h2>Recent conflicts and first-link merges</h2>");
        if self.conflicts.is_empty() {
            body.push_str(
                r#"<p class="muted" id="no-conflicts">No conflicts or first-link merges recorded.</p>"#,
            );
        } else {
            body.push_str(&ConflictView::table(&self.conflicts));
        }
        body.push_str(&format!(
            r#"<p><a href="/users/{}/conflicts">All conflicts</a> · <a href="/">Back to status</a></p>"#,
            seg(user)
        ));
        body
    }

    fn backend_text(&self) -> String {
        let last = self.backend.as_deref();
        match &self.route {
            None => match last {
                Some(b) => format!("The last pass went through <strong>{}</strong>.", esc(b)),
                None => "No pass has ended yet.".to_owned(),
            },
            Some(RouteView {
                backend: Some(b),
                checked_at,
                evidence,
            }) => format!(
                "<strong>auto → {}</strong>: {}{}",
                esc(b),
                esc(evidence.as_deref().unwrap_or_default()),
                checked_at
                    .map(|t| format!(" (checked {})", time_element(&t)))
                    .unwrap_or_default()
            ),
            Some(_) => "<strong>auto</strong>: not located yet; the next pass asks Autodiscover."
                .to_owned(),
        }
    }
}

/// "sales, assigned individually" or "sales, via group Sales User".
pub(crate) fn assignment_text(configuration: &str, a: &AssignmentView) -> String {
    match &a.group {
        Some(g) => format!("{configuration}, via group {g}"),
        None => format!("{configuration}, assigned individually"),
    }
}

/// A record's name, or a marker when no pass had its content.
pub(crate) fn name_cell(name: Option<&str>) -> String {
    match name {
        Some(n) => esc(n),
        None => r#"<span class="muted">(name unknown)</span>"#.to_owned(),
    }
}

pub(crate) async fn get_json(
    State(st): State<AppState>,
    Path(user): Path<String>,
) -> ConsoleResult<Json<UserDetailView>> {
    UserDetailView::load(&st, &user).map(Json)
}

pub(crate) async fn get_page(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(user): Path<String>,
) -> Response {
    match UserDetailView::load(&st, &user) {
        Ok(view) => page(
            &format!("User {}", view.user),
            Some(&caller),
            &view.render(&caller),
        )
        .into_response(),
        Err(e) => internal(&caller, e),
    }
}
