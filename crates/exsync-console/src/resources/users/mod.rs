//! Synced users: their status (`GET /api/users` and the status page at `/`), the CRM users
//! the last pass left out, each user's conflicts and first-link merges, Reset Sync and the
//! connection test.

pub(crate) mod conflicts;
pub(crate) mod detail;
pub(crate) mod reset;
pub(crate) mod skipped;
pub(crate) mod test;
pub(crate) mod unmatched;

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, SecondsFormat, Utc};
use exsync_core::config::{
    effective_configuration, AssignedBy, ExchangeOnlineConfig, ExsyncConfig, MailboxRouting,
    SyncConfiguration,
};
use exsync_core::UserKey;
use exsync_store::{
    LeaseInfo, LeaseScope, MailboxRoute, Notice, Pause, Role, RunCounts, RunRecord, UserStatus,
};
use serde::Serialize;

use crate::auth::{allows, Caller};
use crate::error::ConsoleResult;
use crate::html::{address, csrf_field, error_box, esc, notice, page, seg};
use crate::AppState;

use super::internal;
use super::sync::SyncView;
use skipped::SkippedUserView;

/// One user's status, with the configuration that applies to them: one that lists them, or
/// one a group (CRM profile) brings, as the last pass found the user's profile (only a pass
/// reads it).
#[derive(Serialize)]
pub(crate) struct UserView {
    /// The configuration that applies to the user; `null` when none does (or none by a
    /// profile the last pass saw), or when the configuration file cannot be read.
    pub configuration: Option<AssignedView>,
    /// CRM contacts currently linked to a contact in the mailbox.
    pub contact_pairs: u64,
    /// CRM events currently linked to an event in the mailbox.
    pub event_pairs: u64,
    /// The worker holding the user's lease, when several workers share a PostgreSQL store;
    /// absent when no worker holds the user (and always on SQLite, which has one process).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_by: Option<HolderView>,
    /// The user's most recent pass; `null` before the first.
    pub last_run: Option<RunView>,
    /// Why and since when the user's sync is paused (e.g. a pass would have deleted too
    /// much); `null` while it runs.
    pub paused: Option<Pause>,
    /// For a mailbox located automatically (`[exchange_online] auto`): the backend it was
    /// last found on, when, and what said so; absent for any other mailbox.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<detail::RouteView>,
    /// `syncing`, `failing` (the last pass failed), `paused`, or `new` (no pass yet).
    pub state: &'static str,
    /// Records that keep failing to sync, each counted once however many passes it failed.
    pub unresolved: u64,
    /// The mailbox address, lower-cased.
    pub user: UserKey,
    /// For a mailbox located automatically (`[exchange_online] auto`), where it was last
    /// found and why (`None` before the first lookup); shown in the page's backend cell. Not
    /// part of the API's answer, whose shape clients know.
    #[serde(skip)]
    pub auto: Option<Option<MailboxRoute>>,
}

/// The worker that holds a user.
#[derive(Serialize)]
pub(crate) struct HolderView {
    /// Until when, UTC, unless renewed.
    pub expires_at: DateTime<Utc>,
    /// The lease ran out without being renewed or given back: the worker stopped, stalled or
    /// lost the database, and any worker may take the user.
    pub lapsed: bool,
    /// The worker's name (`[store] worker_id`, else host name and process id).
    pub worker: String,
}

/// The configuration that applies to a user, and how it came to.
#[derive(Serialize)]
pub(crate) struct AssignedView {
    /// `individual` (listed by address) or `group` (through a CRM profile).
    pub assigned_by: AssignedBy,
    /// The group (CRM profile) that brought it, for a group assignment. Untrusted text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The configuration's name.
    pub name: String,
}

impl AssignedView {
    /// "sales, assigned individually" or "sales, via group Sales User".
    pub(crate) fn text(&self) -> String {
        match (&self.assigned_by, &self.group) {
            (AssignedBy::Group, Some(g)) => format!("{}, via group {g}", self.name),
            (AssignedBy::Group, None) => format!("{}, via a group", self.name),
            (AssignedBy::Individual, _) => format!("{}, assigned individually", self.name),
        }
    }
}

/// The group (CRM profile) through which the user's last pass found their configuration.
pub(crate) fn last_group(status: &UserStatus) -> Option<BTreeSet<String>> {
    status
        .last_run
        .as_ref()
        .and_then(|r| r.assignment.as_ref())
        .and_then(|a| a.group.clone())
        .map(|g| BTreeSet::from([g]))
}

/// The configuration that applies to `user` now, given the group their last pass found
/// (an individual assignment beats it, as in the pass).
fn assigned(
    configurations: &[SyncConfiguration],
    user: &UserKey,
    groups: Option<&BTreeSet<String>>,
) -> Option<AssignedView> {
    let none = BTreeSet::new();
    let groups = groups.unwrap_or(&none);
    effective_configuration(configurations, user, groups).map(|(c, by)| AssignedView {
        assigned_by: by,
        group: match by {
            AssignedBy::Group => c.groups.intersection(groups).next().cloned(),
            AssignedBy::Individual => None,
        },
        name: c.name.clone(),
    })
}

/// The user's last pass.
#[derive(Serialize)]
pub(crate) struct RunView {
    /// The mailbox backend that served the pass: `ews` (on premises) or `graph` (Exchange
    /// Online); `null` for passes stored before backends were recorded.
    pub backend: Option<String>,
    /// What the pass changed.
    pub counts: CountsView,
    /// Why the pass failed as a whole; `null` when it did not (single failed writes are in
    /// `counts.failures`).
    pub error: Option<String>,
    /// When it ended, UTC.
    pub finished: DateTime<Utc>,
    /// The pass's number in the state database.
    pub id: i64,
    /// What the pass noticed that the admin should know, with what to do about it; empty
    /// when nothing.
    pub notices: Vec<NoticeView>,
    /// When it began, UTC.
    pub started: DateTime<Utc>,
    /// The mailbox it synced.
    pub user: UserKey,
}

/// Something the pass noticed.
#[derive(Serialize)]
pub(crate) struct NoticeView {
    /// A stable name for what happened, such as `sync_folder_replaced`.
    pub code: String,
    /// What the admin can do about it, or why nothing needs doing.
    pub fix: String,
    /// What happened.
    pub message: String,
}

impl From<Notice> for NoticeView {
    fn from(n: Notice) -> Self {
        NoticeView {
            code: n.code,
            fix: n.fix,
            message: n.message,
        }
    }
}

/// What a pass did.
#[derive(Serialize)]
pub(crate) struct CountsView {
    /// Records both sides had changed differently, settled by the conflict rule.
    pub conflicts: u64,
    /// Records created, on either side.
    pub created: u64,
    /// Records deleted, on either side.
    pub deleted: u64,
    /// Writes that failed; each failing record also shows up among the user's unresolved.
    pub failures: u64,
    /// Records updated, on either side.
    pub updated: u64,
}

impl From<RunCounts> for CountsView {
    fn from(c: RunCounts) -> Self {
        CountsView {
            conflicts: c.conflicts,
            created: c.created,
            deleted: c.deleted,
            failures: c.failures,
            updated: c.updated,
        }
    }
}

impl From<RunRecord> for RunView {
    fn from(r: RunRecord) -> Self {
        RunView {
            backend: r.backend,
            counts: r.counts.into(),
            error: r.error,
            finished: r.finished,
            id: r.id,
            notices: r.notices.into_iter().map(NoticeView::from).collect(),
            started: r.started,
            user: r.user,
        }
    }
}

/// A time as the API writes it (chrono's serde form), so the page shows the same text.
pub(crate) fn time_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// `[exchange_online]` when it locates some mailboxes by Autodiscover (`auto`), whose rows
/// then show where each was found.
fn auto_routing(config: Option<&ExsyncConfig>) -> Option<&ExchangeOnlineConfig> {
    config
        .and_then(|c| c.exchange_online.as_ref())
        .filter(|o| o.routes_automatically())
}

/// The user a lease covers and who holds it; `None` for an org-wide lease.
fn user_holder(lease: LeaseInfo) -> Option<(UserKey, HolderView)> {
    match lease.scope {
        LeaseScope::User(user) => Some((
            user,
            HolderView {
                expires_at: lease.expires_at,
                lapsed: lease.expired,
                worker: lease.holder,
            },
        )),
        LeaseScope::Org(_) => None,
    }
}

impl UserView {
    /// Every known user. Without a readable configuration file the users are still listed,
    /// with no configuration.
    pub(crate) fn list(st: &AppState) -> ConsoleResult<Vec<UserView>> {
        let config = st.config.load().ok();
        let online = auto_routing(config.as_ref());
        let mut routes: BTreeMap<UserKey, MailboxRoute> = match online {
            Some(_) => st
                .store
                .mailbox_routes()?
                .into_iter()
                .map(|r| (r.user.clone(), r))
                .collect(),
            None => BTreeMap::new(),
        };
        let mut holders: BTreeMap<UserKey, HolderView> = st
            .store
            .leases()?
            .into_iter()
            .filter_map(user_holder)
            .collect();
        let views = st
            .store
            .list_users()?
            .into_iter()
            .map(|status: UserStatus| {
                let auto = online
                    .filter(|o| o.routing_of(status.user.as_str()) == MailboxRouting::Auto)
                    .map(|_| routes.remove(&status.user));
                let held_by = holders.remove(&status.user);
                UserView::of(status, config.as_ref(), auto, held_by)
            })
            .collect();
        Ok(views)
    }

    /// One user's row, read for that user alone (the user's page); `None` for a user the
    /// store has never seen.
    pub(crate) fn one(st: &AppState, user: &UserKey) -> ConsoleResult<Option<UserView>> {
        let Some(status) = st.store.user_status(user)? else {
            return Ok(None);
        };
        let config = st.config.load().ok();
        let auto = match auto_routing(config.as_ref()) {
            Some(o) if o.routing_of(user.as_str()) == MailboxRouting::Auto => {
                Some(st.store.mailbox_route(user)?)
            }
            _ => None,
        };
        let held_by = st
            .store
            .user_lease(user)?
            .and_then(user_holder)
            .map(|(_, h)| h);
        Ok(Some(UserView::of(status, config.as_ref(), auto, held_by)))
    }

    /// A user's row from their status, the configuration file (`None` when unreadable),
    /// where an `auto` mailbox was found (`None` for any other mailbox) and who holds them.
    fn of(
        status: UserStatus,
        config: Option<&ExsyncConfig>,
        auto: Option<Option<MailboxRoute>>,
        held_by: Option<HolderView>,
    ) -> UserView {
        UserView {
            held_by,
            state: status.state(),
            configuration: config.and_then(|c| {
                assigned(
                    &c.configurations,
                    &status.user,
                    last_group(&status).as_ref(),
                )
            }),
            contact_pairs: status.contact_pairs,
            event_pairs: status.event_pairs,
            last_run: status.last_run.map(RunView::from),
            paused: status.paused,
            unresolved: status.unresolved,
            route: auto.as_ref().map(|r| detail::RouteView::from(r.as_ref())),
            auto,
            user: status.user,
        }
    }

    /// The backend that served the last pass; for an `auto` mailbox, the one it was last
    /// found on, with which answer said so as the cell's title.
    fn backend_cell(&self) -> String {
        let last = self.last_run.as_ref().and_then(|r| r.backend.as_deref());
        match &self.auto {
            None => esc(last.unwrap_or_default()),
            Some(None) => "auto".to_owned(),
            Some(Some(route)) => format!(
                "<span title=\"{} (checked {})\">auto → {}</span>",
                esc(&route.evidence),
                time_text(&route.checked_at),
                esc(&route.backend)
            ),
        }
    }

    fn render_row(&self, caller: &Caller) -> String {
        let user = self.user.as_str();
        let paused = match &self.paused {
            None => "no".to_owned(),
            Some(p) => format!("yes: {}", p.reason),
        };
        let config = match &self.configuration {
            None => "(none yet: a group assignment shows after a pass)".to_owned(),
            Some(c) => c.text(),
        };
        let actions = self.actions(caller);
        let worker = match &self.held_by {
            None => String::new(),
            Some(h) if h.lapsed => format!("{} (lease lapsed)", esc(&h.worker)),
            Some(h) => format!("{} until {}", esc(&h.worker), time_element(&h.expires_at)),
        };
        // A user who never had a pass shows empty cells for it.
        let run = self.last_run.as_ref();
        let count =
            |f: fn(&CountsView) -> u64| run.map(|r| f(&r.counts).to_string()).unwrap_or_default();
        format!(
            "<tr data-user=\"{e}\" data-state=\"{state}\"><td><a class=\"user\" href=\"/users/{s}\">{}</a></td><td>{}</td><td class=\"state {state}\">{state}</td><td class=\"worker\">{worker}</td><td class=\"backend\">{}</td><td>{}</td><td>{} / {} / {}</td><td>{}</td><td>{}</td><td class=\"problems\">{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{actions}</td></tr>",
            address(user),
            esc(&config),
            self.backend_cell(),
            run.map(|r| time_element(&r.finished)).unwrap_or_default(),
            esc(&count(|c| c.created)),
            esc(&count(|c| c.updated)),
            esc(&count(|c| c.deleted)),
            esc(&count(|c| c.conflicts)),
            esc(&count(|c| c.failures)),
            short_problems(run, user),
            esc(&paused),
            esc(&self.unresolved.to_string()),
            esc(&self.contact_pairs.to_string()),
            esc(&self.event_pairs.to_string()),
            e = esc(user),
            s = seg(user),
            state = self.state,
        )
    }

    /// The links and buttons about the user a caller of this role may use: the conflicts
    /// page for everyone, Reset Sync and the connection test for operators and admins.
    pub(crate) fn actions(&self, caller: &Caller) -> String {
        let user = self.user.as_str();
        // Every role that sees the user may read what their passes settled.
        let mut actions = format!(
            r#"<a class="conflicts" href="/users/{}/conflicts" data-user="{}">Conflicts</a> "#,
            seg(user),
            esc(user)
        );
        if allows(caller.role, Role::Operator) {
            // The question is attribute text that the console's script hands to `confirm` as
            // a string; the address never becomes part of any code.
            let question = format!(
                "Reset Sync for {user}? Its pairs and cursors are forgotten; no data is deleted."
            );
            actions.push_str(&format!(
                r#"<form class="inline" method="post" action="/users/{s}/reset" data-confirm="{q}">{c}<button type="submit" class="reset" data-user="{e}">Reset Sync</button></form>
<form class="inline" method="post" action="/users/{s}/test">{c}<button type="submit" class="test" data-user="{e}">Test connection</button></form>"#,
                s = seg(user),
                e = esc(user),
                q = esc(&question),
                c = csrf_field(caller)
            ));
        }
        actions
    }
}

/// A time the console's script shows in the reader's zone and as how long ago; the UTC text
/// is what a page without script shows.
fn time_element(t: &DateTime<Utc>) -> String {
    format!("<time datetime=\"{t}\">{t}</time>", t = esc(&time_text(t)))
}

/// One line above the users: when the last pass ended and how many users are in each state.
fn health(users: &[UserView]) -> String {
    let last = users
        .iter()
        .filter_map(|u| u.last_run.as_ref().map(|r| r.finished))
        .max();
    let count = |state: &str| users.iter().filter(|u| u.state == state).count();
    let ended = match last {
        Some(t) => format!("Last pass ended {}.", time_element(&t)),
        None => "No pass has ended yet.".to_owned(),
    };
    format!(
        r#"<p id="health">{ended} {} users: <span class="syncing">{} syncing</span>, <span class="failing">{} failing</span>, <span class="paused">{} paused</span>, {} new.</p>"#,
        users.len(),
        count("syncing"),
        count("failing"),
        count("paused"),
        count("new"),
    )
}

/// The most of an error the status table shows; the user's page shows all of it.
const ERROR_CELL: usize = 120;

/// The status table's Error cell: the start of a long error, with a link to the user's page
/// for the rest, then what the pass noticed.
fn short_problems(run: Option<&RunView>, user: &str) -> String {
    let Some(run) = run else {
        return String::new();
    };
    let error = run.error.as_deref().unwrap_or_default();
    let mut cell = if error.chars().count() > ERROR_CELL {
        let start: String = error.chars().take(ERROR_CELL).collect();
        format!(
            r#"{}… <a class="more" href="/users/{}">full error</a>"#,
            esc(&start),
            seg(user)
        )
    } else {
        esc(error)
    };
    cell.push_str(&notices_list(run));
    cell
}

/// Why the last pass failed, then what it noticed, each with its fix.
fn problems(run: Option<&RunView>) -> String {
    let Some(run) = run else {
        return String::new();
    };
    let mut cell = esc(run.error.as_deref().unwrap_or_default());
    cell.push_str(&notices_list(run));
    cell
}

/// What a pass noticed, each with its fix; nothing when it noticed nothing.
fn notices_list(run: &RunView) -> String {
    let mut cell = String::new();
    if !run.notices.is_empty() {
        cell.push_str("<ul class=\"notices\">");
        for n in &run.notices {
            cell.push_str(&format!(
                "<li data-code=\"{}\">{} <em class=\"fix\">{}</em></li>",
                esc(&n.code),
                esc(&n.message),
                crate::fixes::render(&n.fix)
            ));
        }
        cell.push_str("</ul>");
    }
    cell
}

pub(crate) async fn list_json(State(st): State<AppState>) -> ConsoleResult<Json<Vec<UserView>>> {
    UserView::list(&st).map(Json)
}

/// The status page: the sync switch, every user's status and the CRM users left out.
/// Form posts about users and the switch answer with it, saying what happened.
pub(crate) fn status_page(
    st: &AppState,
    caller: &Caller,
    message: Option<&str>,
    error: Option<&str>,
) -> Response {
    let (sync, users) = match (SyncView::load(st), UserView::list(st)) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(e), _) | (_, Err(e)) => return internal(caller, e),
    };
    let skipped = match SkippedUserView::list(st) {
        Ok(s) => s,
        Err(e) => return internal(caller, e),
    };
    let unmatched = match unmatched::UnmatchedUserView::list(st) {
        Ok(u) => u,
        Err(e) => return internal(caller, e),
    };
    let mut body = String::new();
    body.push_str(&notice(message));
    body.push_str(&error_box(error));
    body.push_str(&sync.render(caller));
    body.push_str("<h2>Users</h2>");
    body.push_str(&health(&users));
    if users.is_empty() {
        body.push_str(r#"<p class="muted">No user has been synced yet.</p>"#);
    } else {
        body.push_str(
            r#"<table id="users"><tr><th>User</th><th>Configuration</th><th>State</th><th>Held by</th><th>Backend</th><th>Last pass</th><th>Created / updated / deleted</th><th>Conflicts</th><th>Failures</th><th>Error</th><th>Paused</th><th>Unresolved items</th><th>Pairs (contacts / events)</th><th></th></tr>"#,
        );
        for u in &users {
            body.push_str(&u.render_row(caller));
        }
        body.push_str("</table>");
    }
    body.push_str(&unmatched::render_section(&unmatched));
    body.push_str(&skipped::render_section(&skipped));
    page("Status", Some(caller), &body).into_response()
}

pub(crate) async fn status_get_page(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Response {
    status_page(&st, &caller, None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_the_api_writes_them() -> Result<(), serde_json::Error> {
        for t in [
            "2026-12-05T17:39:49Z",
            "2026-12-05T17:39:49.5Z",
            "2026-12-05T17:39:49.123456789Z",
        ] {
            let t: DateTime<Utc> = serde_json::from_value(serde_json::json!(t))?;
            assert_eq!(serde_json::to_value(t)?, serde_json::json!(time_text(&t)));
        }
        Ok(())
    }

    /// An `auto` mailbox's cell names the backend it was found on, and the answer (a
    /// server's text, encoded) as its title; the API's answer keeps its shape.
    #[test]
    fn an_auto_mailbox_shows_where_it_was_found_and_why() -> Result<(), serde_json::Error> {
        let checked = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let mut view = UserView {
            held_by: None,
            configuration: None,
            contact_pairs: 0,
            event_pairs: 0,
            last_run: None,
            paused: None,
            state: "new",
            unresolved: 0,
            route: None,
            user: UserKey::new("ann@contoso.test"),
            auto: Some(Some(MailboxRoute {
                user: UserKey::new("ann@contoso.test"),
                backend: "graph".to_owned(),
                evidence: "Autodiscover: routing address <ann>@contoso.mail.onmicrosoft.com"
                    .to_owned(),
                checked_at: checked,
                recheck: None,
            })),
        };
        assert_eq!(
            view.backend_cell(),
            "<span title=\"Autodiscover: routing address &lt;ann&gt;@contoso.mail.onmicrosoft.com (checked 2027-01-15T08:00:00Z)\">auto → graph</span>"
        );
        assert!(!serde_json::to_string(&view)?.contains("auto"));
        view.auto = Some(None);
        assert_eq!(view.backend_cell(), "auto");
        view.auto = None;
        assert_eq!(view.backend_cell(), "");
        Ok(())
    }
}
