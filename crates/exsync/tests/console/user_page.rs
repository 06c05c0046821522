//! One user's page (`/users/{user}`, `GET /api/users/{user}`): the configuration that
//! applies and why, the backend, the recent passes, the full last error (the status table
//! shows its start and links here), the unresolved records and the conflicts by name, and
//! Reset Sync and the connection test for those who may use them.

use crate::support::*;
use axum::http::{Method, StatusCode};
use chrono::{TimeDelta, Utc};
use exsync_core::plan::Conflict;
use exsync_core::{ItemId, ItemKind, Side, UserKey};
use exsync_store::{ConflictEntry, Notice, PassCommit, Role, RunAssignment, UnresolvedReport};
use serde_json::json;

const ANN: &str = "ann@contoso.test";
const ANN_SEG: &str = "ann%40contoso.test";
const BO: &str = "bo@contoso.test";

/// The tail of ann's last error, which only her page shows.
const ERROR_TAIL: &str = "and the end of the error, which names the cause";

/// A notice's fix naming a command in backticks and a cmdlet in prose.
const FIX: &str = "run `exsync reset --user ann@contoso.test`, or check the address with \
                   Get-Mailbox -Identity ann@contoso.test; then wait";

/// Two passes for ann: one that synced and met a conflict, then one that failed with a long
/// error and left a contact unresolved.
fn seed(env: &Env) {
    let user = UserKey::from_email(ANN);
    let first = Utc::now() - TimeDelta::hours(2);
    let mut commit = PassCommit::new(user.clone(), first, first + TimeDelta::seconds(5));
    commit.backend = Some("ews".into());
    commit.counts.created = 4;
    commit.counts.conflicts = 1;
    commit.conflicts = vec![ConflictEntry {
        kind: ItemKind::Event,
        crm_id: "00U1".into(),
        exchange_id: "AAMkE1".into(),
        conflict: Conflict {
            field: "location".into(),
            crm_value: Some(json!("Room 1")),
            exchange_value: Some(json!("Room 2")),
            winner: Side::Crm,
            first_link: false,
        },
        name: Some("Board review (2026-12-07T09:00:00Z)".into()),
    }];
    env.store.commit_pass(&commit).unwrap();

    let later = Utc::now() - TimeDelta::minutes(5);
    let mut commit = PassCommit::new(user, later, later + TimeDelta::seconds(5));
    commit.backend = Some("ews".into());
    commit.counts.failures = 1;
    commit.error = Some(format!(
        "contacts not synced: {} {ERROR_TAIL}",
        "the server said no ".repeat(10)
    ));
    commit.unresolved = vec![UnresolvedReport {
        kind: ItemKind::Contact,
        id: ItemId::Crm("003REJ".into()),
        reason: "FIELD_TOO_LONG: Title".into(),
        name: Some("Pat Rejected <pat@fabrikam.test>".into()),
    }];
    commit.assignment = Some(RunAssignment {
        configuration: "sales".into(),
        group: None,
    });
    commit.notices = vec![Notice {
        code: "day_zone_unknown".into(),
        message: "The owner's time zone is unknown.".into(),
        fix: FIX.into(),
    }];
    env.store.commit_pass(&commit).unwrap();

    // cy is listed in a configuration, but no active CRM user has the address.
    env.store
        .record_unmatched_users(
            &[(
                UserKey::from_email("cy@contoso.test"),
                "no active CRM user has <this> address".into(),
            )],
            later,
        )
        .unwrap();

    // bo is in no configuration's list: the Sales User profile brought him to `sales`.
    let mut commit = PassCommit::new(UserKey::from_email(BO), later, later);
    commit.assignment = Some(RunAssignment {
        configuration: "sales".into(),
        group: Some("Sales User".into()),
    });
    env.store.commit_pass(&commit).unwrap();
}

#[tokio::test]
async fn the_api_gives_a_users_configuration_passes_and_named_records() {
    let env = Env::new();
    seed(&env);
    let viewer = Auth::Token(env.token(Role::Viewer).to_owned());
    let a = env
        .send(request(
            Method::GET,
            &format!("/api/users/{ANN_SEG}"),
            &viewer,
            None,
        ))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let v = a.json();
    assert_eq!(v["user"], ANN);
    assert_eq!(v["state"], "failing");
    assert_eq!(v["backend"], "ews");
    assert_eq!(v["assignment"]["configuration"], "sales", "{}", a.body);
    assert_eq!(v["assignment"]["assigned_by"], "individual");
    assert!(
        v["assignment"]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("assigned individually"),
        "{}",
        a.body
    );
    assert!(
        v["last_error"].as_str().unwrap().ends_with(ERROR_TAIL),
        "the whole error: {}",
        a.body
    );
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{}", a.body);
    assert_eq!(runs[0]["counts"]["failures"], 1, "newest first");
    assert_eq!(runs[1]["counts"]["created"], 4);
    let unresolved = &v["unresolved"][0];
    assert_eq!(unresolved["name"], "Pat Rejected <pat@fabrikam.test>");
    assert_eq!(unresolved["id"], "003REJ");
    assert_eq!(unresolved["side"], "crm");
    assert_eq!(unresolved["reason"], "FIELD_TOO_LONG: Title");
    assert_eq!(
        v["conflicts"][0]["name"],
        "Board review (2026-12-07T09:00:00Z)"
    );
    assert_eq!(v["status"]["unresolved"], 1);

    // The conflicts list names its records too.
    let a = env
        .send(request(
            Method::GET,
            &format!("/api/users/{ANN_SEG}/conflicts"),
            &viewer,
            None,
        ))
        .await;
    assert_eq!(
        a.json()[0]["name"],
        "Board review (2026-12-07T09:00:00Z)",
        "{}",
        a.body
    );

    // A user the store does not know is not found, not an empty page.
    let a = env
        .send(request(
            Method::GET,
            "/api/users/nobody%40contoso.test",
            &viewer,
            None,
        ))
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
}

#[tokio::test]
async fn the_status_table_links_each_user_to_a_page_with_the_full_error_and_named_records() {
    let env = Env::new();
    seed(&env);
    let (cookie, csrf) = env.session(Role::Operator);
    let operator = Auth::Session {
        cookie,
        csrf: Some(csrf),
    };
    let status = env.send(request(Method::GET, "/", &operator, None)).await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    assert!(
        status.body.contains(&format!(
            r#"<a class="user" href="/users/{ANN_SEG}"><span class="address" title="{ANN}"><span>ann</span><wbr><span>@contoso</span><wbr><span>.test</span></span></a>"#
        )),
        "{}",
        status.body
    );
    // A configured user no CRM user pairs with is listed with why, on the page and the API.
    let unmatched = status
        .body
        .split(r#"<table id="unmatched-users">"#)
        .nth(1)
        .unwrap_or_else(|| panic!("no unmatched users: {}", status.body));
    assert!(
        unmatched.contains(r#"<tr data-user="cy@contoso.test"><td><span class="address""#)
            && unmatched.contains("<td>no active CRM user has &lt;this&gt; address</td>"),
        "{}",
        status.body
    );
    let api = env
        .send(request(
            Method::GET,
            "/api/unmatched-users",
            &operator,
            None,
        ))
        .await
        .json();
    assert_eq!(api[0]["user"], "cy@contoso.test", "{api}");
    assert_eq!(api[0]["reason"], "no active CRM user has <this> address");
    // The table shows the error's start and links to the rest.
    assert!(!status.body.contains(ERROR_TAIL), "{}", status.body);
    assert!(
        status.body.contains(&format!(
            r#"… <a class="more" href="/users/{ANN_SEG}">full error</a>"#
        )),
        "{}",
        status.body
    );

    let page = env
        .send(request(
            Method::GET,
            &format!("/users/{ANN_SEG}"),
            &operator,
            None,
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    assert!(
        body.contains("<title>User ann@contoso.test · exsync</title>"),
        "{body}"
    );
    assert!(
        body.contains("<strong>sales, assigned individually</strong>"),
        "{body}"
    );
    assert!(
        body.contains(r#"<pre class="error" id="detail-error">contacts not synced: "#)
            && body.contains(ERROR_TAIL),
        "the whole error: {body}"
    );
    assert!(
        body.contains("The last pass went through <strong>ews</strong>."),
        "{body}"
    );
    assert!(
        body.contains(r#"<td class="name">Pat Rejected &lt;pat@fabrikam.test&gt;</td>"#),
        "the unresolved record by name, encoded: {body}"
    );
    assert!(body.contains("FIELD_TOO_LONG: Title"), "{body}");
    assert!(
        body.contains(r#"<td class="name">Board review (2026-12-07T09:00:00Z)</td>"#),
        "the conflict by its record's name: {body}"
    );
    assert!(body.contains(r#"<table id="runs">"#), "{body}");
    // A fix's commands are code to copy, on the user's page as in the status table.
    let fix = r#"run <code class="command">exsync reset --user ann@contoso.test</code>, or check the address with <code class="command">Get-Mailbox -Identity ann@contoso.test</code>; then wait"#;
    assert!(body.contains(fix), "{body}");
    assert!(status.body.contains(fix), "{}", status.body);
    assert_eq!(body.matches("<tr data-run=").count(), 2, "{body}");
    // An operator may reset the user and test the connection from here.
    assert!(
        body.contains(&format!(r#"action="/users/{ANN_SEG}/reset""#))
            && body.contains(&format!(r#"action="/users/{ANN_SEG}/test""#)),
        "{body}"
    );

    // Users are shown with how they came to their configuration.
    let row = |user: &str| {
        let start = status
            .body
            .find(&format!(r#"<tr data-user="{user}""#))
            .unwrap();
        let end = start + status.body[start..].find("</tr>").unwrap();
        status.body[start..end].to_owned()
    };
    assert!(
        row(ANN).contains("<td>sales, assigned individually</td>"),
        "{}",
        row(ANN)
    );
    assert!(
        row(BO).contains("<td>sales, via group Sales User</td>"),
        "{}",
        row(BO)
    );
    let bo = env
        .send(request(
            Method::GET,
            "/users/bo%40contoso.test",
            &operator,
            None,
        ))
        .await;
    assert!(
        bo.body
            .contains("<strong>sales, via group Sales User</strong>"),
        "{}",
        bo.body
    );
    assert!(
        bo.body
            .contains("group &#96;Sales User&#96; is assigned to configuration &#96;sales&#96;"),
        "why, in the assignment's own words: {}",
        bo.body
    );
    let a = env
        .send(request(
            Method::GET,
            "/api/users",
            &Auth::Token(env.token(Role::Viewer).to_owned()),
            None,
        ))
        .await;
    let users = a.json();
    let bo = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user"] == BO)
        .unwrap();
    assert_eq!(
        bo["configuration"],
        json!({ "assigned_by": "group", "group": "Sales User", "name": "sales" }),
        "{}",
        a.body
    );

    // A viewer sees the page without the buttons.
    let (cookie, _) = env.session(Role::Viewer);
    let viewer = Auth::Session { cookie, csrf: None };
    let page = env
        .send(request(
            Method::GET,
            &format!("/users/{ANN_SEG}"),
            &viewer,
            None,
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Pat Rejected"), "{}", page.body);
    assert!(!page.body.contains("/reset\""), "{}", page.body);
}

/// The configurations page's per-user table gives a synced user the configuration their
/// group brought, by the group the last pass found them in, as the status table does; the
/// user's page shows the same row as the list.
#[tokio::test]
async fn the_effective_table_uses_the_group_the_last_pass_found() {
    let env = Env::new();
    seed(&env);
    let viewer = Auth::Token(env.token(Role::Viewer).to_owned());
    let admin = Auth::Token(env.token(Role::Admin).to_owned());
    let page = env
        .send(request(Method::GET, "/configurations", &admin, None))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let row = page
        .body
        .split(&format!(r#"<tr data-user="{BO}">"#))
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .unwrap_or_else(|| panic!("no row for {BO}: {}", page.body));
    assert!(
        row.starts_with(&format!(r#"<td><span class="address" title="{BO}">"#))
            && row.contains("</td><td>sales</td>"),
        "{row}"
    );
    assert!(row.contains("Sales User"), "{row}");

    let list = env
        .send(request(Method::GET, "/api/users", &viewer, None))
        .await
        .json();
    let one = env
        .send(request(
            Method::GET,
            &format!("/api/users/{}", BO.replace('@', "%40")),
            &viewer,
            None,
        ))
        .await
        .json();
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user"] == BO)
        .unwrap();
    assert_eq!(&one["status"], listed);
}

/// A user's page reads that user alone. Another user's row is damaged behind the store's
/// back (paused with no time, which no reader accepts), so the list of every user fails: a
/// page that read the list and picked its user would fail with it.
#[tokio::test]
async fn a_users_page_reads_only_that_user() {
    let env = Env::new();
    seed(&env);
    rusqlite::Connection::open(env.dir.path().join("state.db"))
        .and_then(|db| {
            db.execute(
                "UPDATE users SET paused = 1, paused_reason = 'x', paused_at = NULL \
                 WHERE user_key = ?1",
                [BO],
            )
        })
        .unwrap();
    let viewer = Auth::Token(env.token(Role::Viewer).to_owned());
    let list = env
        .send(request(Method::GET, "/api/users", &viewer, None))
        .await;
    assert_eq!(
        list.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "the damage must break the list: {}",
        list.body
    );
    let one = env
        .send(request(
            Method::GET,
            &format!("/api/users/{ANN_SEG}"),
            &viewer,
            None,
        ))
        .await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    assert_eq!(one.json()["status"]["user"], ANN, "{}", one.body);
    let page = env
        .send(request(
            Method::GET,
            &format!("/users/{ANN_SEG}"),
            &viewer,
            None,
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains(ERROR_TAIL), "{}", page.body);
}
