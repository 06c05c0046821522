//! The connection test for one user: `POST /api/users/{user}/test` and the status page's
//! button. It runs the connectivity analyzer, the checks `exsync check` runs, or says
//! plainly that it is not available.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use exsync_core::UserKey;
use exsync_engine::check::{Outcome, Report, Step};
use serde::Serialize;
use serde_json::json;

use crate::auth::Caller;
use crate::error::ConsoleError;
use crate::html::{esc, page};
use crate::AppState;

/// What a connection test found. The three answers share `status`; clients tell them apart
/// by it (`pass`, `warn` or `fail` for a test that ran).
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum TestView {
    /// The analyzer ran: its report.
    Ran {
        /// `fail` when any step failed, `warn` when any warned, else `pass`.
        status: Outcome,
        /// Every check in the order it ran, skipped ones included.
        steps: Vec<StepView>,
        /// The mailbox whose impersonation and folders were checked.
        user: Option<String>,
    },
    /// Connection tests are turned off for this console.
    NotAvailable {
        /// Says that the test is turned off for this console.
        message: &'static str,
        /// Always `not_available`.
        status: &'static str,
        /// The mailbox the test was asked for.
        user: String,
    },
    /// The test could not start (no readable configuration, a secret missing).
    Failed {
        /// Why the test could not start.
        message: String,
        /// Always `error`.
        status: &'static str,
    },
}

/// One check of the analyzer.
#[derive(Serialize)]
pub(crate) struct StepView {
    /// What was seen, one fact per line.
    pub evidence: Vec<String>,
    /// What to do about a warning or failure.
    pub fix: Option<String>,
    /// How long the step took, in milliseconds; absent where it was not timed (a skipped
    /// step, a user's line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ms: Option<u64>,
    /// What the step checks, e.g. DNS, TLS or impersonation.
    pub name: String,
    /// `pass`, `warn`, `fail`, or `skip` when an earlier failure or a missing input kept it
    /// from running.
    pub outcome: Outcome,
}

impl From<Step> for StepView {
    fn from(s: Step) -> Self {
        StepView {
            evidence: s.evidence,
            fix: s.fix,
            ms: s.ms,
            name: s.name,
            outcome: s.outcome,
        }
    }
}

impl From<Report> for TestView {
    fn from(r: Report) -> Self {
        TestView::Ran {
            status: r.status,
            // The user's own line (CRM user and mailbox) reads as one more step on the page.
            steps: r
                .steps
                .into_iter()
                .map(StepView::from)
                .chain(r.users.into_iter().map(|u| StepView {
                    evidence: u.evidence,
                    fix: u.fix,
                    ms: None,
                    name: format!("User {} ({})", u.user, u.configuration),
                    outcome: u.outcome,
                }))
                .collect(),
            user: r.user,
        }
    }
}

impl From<ConsoleError> for TestView {
    fn from(e: ConsoleError) -> Self {
        TestView::Failed {
            message: e.message,
            status: "error",
        }
    }
}

/// An outcome as the API writes it, for the page.
fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Warn => "warn",
        Outcome::Fail => "fail",
        Outcome::Skip => "skip",
    }
}

impl TestView {
    fn status_text(&self) -> &'static str {
        match self {
            TestView::Ran { status, .. } => outcome_name(*status),
            TestView::NotAvailable { status, .. } | TestView::Failed { status, .. } => status,
        }
    }

    fn message(&self) -> &str {
        match self {
            TestView::Ran { .. } => "",
            TestView::NotAvailable { message, .. } => message,
            TestView::Failed { message, .. } => message,
        }
    }

    fn render(&self, user: &str) -> String {
        let mut body = format!(
            r#"<p id="test-status">Connection test for {}: <strong>{}</strong></p><p>{}</p>"#,
            esc(user),
            esc(self.status_text()),
            esc(self.message()),
        );
        if let TestView::Ran { steps, .. } = self {
            body.push_str(r#"<table id="test-steps"><tr><th>Result</th><th>Step</th><th>Time</th><th>Evidence</th><th>Fix</th></tr>"#);
            for step in steps {
                let evidence: String = step
                    .evidence
                    .iter()
                    .map(|e| format!("<li>{}</li>", esc(e)))
                    .collect();
                body.push_str(&format!(
                    r#"<tr class="{o}"><td>{o}</td><td>{}</td><td class="ms">{}</td><td><ul>{evidence}</ul></td><td class="fix">{}</td></tr>"#,
                    esc(&step.name),
                    step.ms.map(|ms| format!("{ms} ms")).unwrap_or_default(),
                    crate::fixes::render(step.fix.as_deref().unwrap_or_default()),
                    o = esc(outcome_name(step.outcome)),
                ));
            }
            body.push_str("</table>");
        }
        body.push_str(&format!(
            r#"<details><summary>As JSON</summary><pre id="test-report">{}</pre></details><p><a href="/">Back to status</a></p>"#,
            esc(&serde_json::to_string_pretty(self).unwrap_or_default())
        ));
        body
    }
}

/// Runs the connection test for a user, or says plainly that it is not available.
pub(crate) async fn do_test(st: &AppState, caller: &Caller, user: &str) -> (StatusCode, TestView) {
    let key = UserKey::from_email(user);
    st.audit(
        &caller.actor(),
        "user.test",
        json!({ "user": key.as_str() }),
    );
    if !st.connection_tests {
        return (
            StatusCode::NOT_IMPLEMENTED,
            TestView::NotAvailable {
                message: "connection tests are turned off for this console",
                status: "not_available",
                user: key.as_str().to_owned(),
            },
        );
    }
    let config = match st.config.load() {
        Ok(c) => c,
        Err(e) => return (e.status, e.into()),
    };
    let inputs = match exsync_engine::check::Inputs::from_vault(
        config,
        &st.vault,
        Some(key.as_str().to_owned()),
    ) {
        // As `exsync check` does; the realm and KDCs edited while the console runs apply,
        // because `exsync serve` made MIT's configuration file switchable at start.
        Ok(i) => i.with_kerberos(&st.vault),
        Err(e) => {
            let e = ConsoleError::from(e);
            return (e.status, e.into());
        }
    };
    let report = exsync_engine::check::run(&inputs).await;
    (StatusCode::OK, report.into())
}

pub(crate) async fn post_json(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(user): Path<String>,
) -> (StatusCode, Json<TestView>) {
    let (status, view) = do_test(&st, &caller, &user).await;
    (status, Json(view))
}

pub(crate) async fn post_form(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(user): Path<String>,
) -> Response {
    let (status, view) = do_test(&st, &caller, &user).await;
    (
        status,
        page("Connection test", Some(&caller), &view.render(&user)),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page gives each timed step its milliseconds, as `exsync check` prints them, and
    /// an untimed one an empty cell.
    #[test]
    fn each_step_shows_the_milliseconds_it_took() {
        let report = Report {
            user: Some("a@b.test".to_owned()),
            status: Outcome::Pass,
            steps: vec![
                Step {
                    ms: Some(42),
                    ..Step::new("Login", Outcome::Pass)
                },
                Step::new("Write round trip", Outcome::Skip),
            ],
            users: Vec::new(),
        };
        let page = TestView::from(report).render("a@b.test");
        for cells in [
            r#"<td>Login</td><td class="ms">42 ms</td>"#,
            r#"<td>Write round trip</td><td class="ms"></td>"#,
        ] {
            assert!(page.contains(cells), "{cells}: {page}");
        }
    }
}
