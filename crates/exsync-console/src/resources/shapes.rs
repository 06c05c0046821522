//! Every view against the answer the API gave before it had views: a `serde_json::Value`
//! built from the store's and the analyzer's types, or with `json!`. Clients and
//! `openapi.json` know those answers; the views must give them byte for byte.

use chrono::{DateTime, TimeZone, Utc};
use exsync_core::config::AssignedBy;
use exsync_core::{CrmId, UserKey};
use exsync_engine::check::{Outcome, Report, Step};
use exsync_store::{
    AuditRecord, Notice, Pause, Role, RunCounts, RunRecord, SkippedCrmUser, UserStatus,
};
use serde::Serialize;
use serde_json::{json, Value};

use super::audit::AuditView;
use super::crm::CrmView;
use super::service_account::ServiceAccountView;
use super::session::{LoginView, MeView};
use super::sync::SyncView;
use super::users::reset::ResetView;
use super::users::skipped::SkippedUserView;
use super::users::test::TestView;
use super::users::{AssignedView, RunView, UserView};

type R = Result<(), serde_json::Error>;

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + secs, 500_000_000)
        .single()
        .unwrap_or_default()
}

/// The view's bytes are those of the map the API used to answer with.
fn same(view: &impl Serialize, old: &Value) -> R {
    assert_eq!(serde_json::to_string(view)?, serde_json::to_string(old)?);
    Ok(())
}

#[test]
fn users_as_the_status_with_its_configuration() -> R {
    let run = RunRecord {
        id: 7,
        user: UserKey::from_email("a@b.test"),
        started: at(0),
        finished: at(30),
        counts: RunCounts {
            created: 1,
            updated: 2,
            deleted: 3,
            conflicts: 4,
            failures: 5,
        },
        error: Some("boom".to_owned()),
        backend: Some("ews".to_owned()),
        assignment: None,
        // The view always has the list; the store's type leaves an empty one out.
        notices: vec![Notice {
            code: "sync_folder_replaced".to_owned(),
            message: "The folder was deleted.".to_owned(),
            fix: "Nothing to do.".to_owned(),
        }],
    };
    for (status, configuration) in [
        (
            UserStatus {
                user: UserKey::from_email("a@b.test"),
                paused: Some(Pause {
                    reason: "mass delete".to_owned(),
                    since: at(40),
                }),
                last_run: Some(run.clone()),
                contact_pairs: 10,
                event_pairs: 11,
                unresolved: 2,
            },
            Some(("sales", AssignedBy::Individual)),
        ),
        (
            UserStatus {
                user: UserKey::from_email("c@b.test"),
                paused: None,
                last_run: None,
                contact_pairs: 0,
                event_pairs: 0,
                unresolved: 0,
            },
            None,
        ),
    ] {
        let mut old = serde_json::to_value(&status)?;
        if let Value::Object(map) = &mut old {
            map.insert("state".to_owned(), json!(status.state()));
            map.insert(
                "configuration".to_owned(),
                configuration.map_or(
                    Value::Null,
                    |(name, by)| json!({ "name": name, "assigned_by": by }),
                ),
            );
        }
        let view = UserView {
            configuration: configuration.map(|(name, by)| AssignedView {
                assigned_by: by,
                group: None,
                name: name.to_owned(),
            }),
            contact_pairs: status.contact_pairs,
            event_pairs: status.event_pairs,
            held_by: None,
            last_run: status.last_run.clone().map(RunView::from),
            paused: status.paused.clone(),
            state: status.state(),
            unresolved: status.unresolved,
            user: status.user.clone(),
            auto: Some(None),
            route: None,
        };
        same(&view, &old)?;
    }
    Ok(())
}

#[test]
fn skipped_users_as_the_store_has_them() -> R {
    let s = SkippedCrmUser {
        crm_id: CrmId::new("005x"),
        address: "x'<y>@z".to_owned(),
        reason: "no mailbox".to_owned(),
        first_seen: at(0),
        last_seen: at(60),
    };
    // This answer was the store's type serialised directly, in its field order.
    assert_eq!(
        serde_json::to_string(&vec![SkippedUserView::from(s.clone())])?,
        serde_json::to_string(&vec![s])?
    );
    Ok(())
}

#[test]
fn reset_and_test_as_before() -> R {
    same(
        &ResetView {
            cursors_forgotten: 2,
            pairs_forgotten: 5,
            user: UserKey::from_email("a@b.test"),
            was_paused: true,
        },
        &json!({
            "user": "a@b.test",
            "pairs_forgotten": 5,
            "cursors_forgotten": 2,
            "was_paused": true,
        }),
    )?;
    let report = Report {
        user: Some("a@b.test".to_owned()),
        status: Outcome::Warn,
        steps: vec![
            // A timed step keeps its milliseconds.
            Step {
                ms: Some(42),
                ..Step::new("login", Outcome::Pass).saw("200 OK")
            },
            Step::new("basic", Outcome::Warn)
                .saw("Basic offered")
                .saw("NTLM too")
                .fix("turn Basic off"),
        ],
        users: Vec::new(),
    };
    same(
        &TestView::from(report.clone()),
        &serde_json::to_value(&report)?,
    )?;
    same(
        &TestView::NotAvailable {
            message: "connection tests are turned off for this console",
            status: "not_available",
            user: "a@b.test".to_owned(),
        },
        &json!({
            "status": "not_available",
            "user": "a@b.test",
            "message": "connection tests are turned off for this console",
        }),
    )?;
    same(
        &TestView::Failed {
            message: "no file".to_owned(),
            status: "error",
        },
        &json!({ "status": "error", "message": "no file" }),
    )
}

#[test]
fn audit_entries_as_the_store_has_them_through_a_map() -> R {
    let records = vec![AuditRecord {
        id: 3,
        at: at(0),
        actor: "admin".to_owned(),
        action: "crm.update".to_owned(),
        detail: json!({ "client_id": "x", "auth": null }),
    }];
    let old = serde_json::to_value(&records)?;
    let views: Vec<AuditView> = records.into_iter().map(AuditView::from).collect();
    same(&views, &old)
}

#[test]
fn settings_and_session_as_before() -> R {
    same(
        &ServiceAccountView {
            auth: "ntlm",
            autodiscover: false,
            ca_file: Some("/etc/ca.pem".to_owned()),
            connection_method: "ews_service_account",
            ews_url: Some("https://mail.b.test/EWS/Exchange.asmx".to_owned()),
            kdcs: vec!["dc1.b.test".to_owned()],
            keytab_provided: false,
            other_domains: vec!["c.test".to_owned()],
            password_provided: true,
            realm: Some("B.TEST".to_owned()),
            username: "svc@b.test".to_owned(),
        },
        &json!({
            "connection_method": "ews_service_account",
            "username": "svc@b.test",
            "password_provided": true,
            "auth": "ntlm",
            "ews_url": "https://mail.b.test/EWS/Exchange.asmx",
            "autodiscover": false,
            "other_domains": ["c.test"],
            "ca_file": "/etc/ca.pem",
            "realm": "B.TEST",
            "kdcs": ["dc1.b.test"],
            "keytab_provided": false,
        }),
    )?;
    same(
        &CrmView {
            auth: "jwt",
            ca_file: None,
            client_id: "cid".to_owned(),
            client_secret_provided: false,
            instance_url: None,
            kind: "salesforce",
            login_url: "https://login.salesforce.com".to_owned(),
            private_key_provided: true,
            username: Some("int@b.test".to_owned()),
        },
        &json!({
            "kind": "salesforce",
            "login_url": "https://login.salesforce.com",
            "instance_url": null,
            "client_id": "cid",
            "auth": "jwt",
            "username": "int@b.test",
            "private_key_provided": true,
            "client_secret_provided": false,
            "ca_file": null,
        }),
    )?;
    same(&SyncView { enabled: true }, &json!({ "enabled": true }))?;
    same(
        &LoginView {
            csrf_token: "t",
            role: Role::Operator,
            user: "op",
        },
        &json!({ "user": "op", "role": Role::Operator, "csrf_token": "t" }),
    )?;
    same(
        &MeView {
            name: "op",
            role: Role::Viewer,
            via: "token",
        },
        &json!({ "name": "op", "role": Role::Viewer, "via": "token" }),
    )
}

#[test]
fn an_assignment_as_exsync_core_explains_it() -> R {
    let a = exsync_core::config::Assignment {
        user: "a@b.test".to_owned(),
        configuration: Some("sales".to_owned()),
        assigned_by: Some(AssignedBy::Group),
        group: Some("Sales".to_owned()),
        reasons: vec!["one".to_owned(), "two".to_owned()],
    };
    same(
        &super::configurations::AssignmentView::from(a.clone()),
        &serde_json::to_value(&a)?,
    )
}
