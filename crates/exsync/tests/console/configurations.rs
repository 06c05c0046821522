//! Configurations edited from the console land in `exsync.toml`, pass the same checks as a
//! hand-edited file, and show each user's effective configuration; Reset Sync and the
//! connection test behave as promised; every change is in the audit log.

use crate::support::*;
use axum::http::{Method, StatusCode};
use chrono::Utc;
use exsync_core::plan::SyncedPair;
use exsync_core::{Contact, ItemKind, Record, UserKey};
use exsync_store::{PassCommit, Role};
use serde_json::json;

#[tokio::test]
async fn create_edit_activate_and_assign_configurations() {
    let env = Env::new();
    let admin = Auth::Token(env.token(Role::Admin).to_owned());
    let a = env
        .send(request(
            Method::POST,
            "/api/configurations",
            &admin,
            Some(Body2::Json(json!({
                "name": "support", "users": ["Bob@Contoso.test"], "groups": ["Support Agent"],
                "contacts_direction": "crm_to_exchange", "events_direction": "off"
            }))),
        ))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let loaded = exsync_core::config::load(&env.config_path()).unwrap();
    let support = loaded.configuration("support").unwrap();
    assert!(support.active);
    assert!(support
        .users
        .contains(&UserKey::from_email("bob@contoso.test")));
    assert_eq!(
        support.events.direction,
        exsync_core::config::Direction::Off
    );

    // Individual beats group: ann is in `sales` individually, even with the support profile.
    let a = env
        .send(request(
            Method::GET,
            "/api/assignment?user=ann%40contoso.test&groups=Support%20Agent",
            &admin,
            None,
        ))
        .await;
    assert_eq!(a.json()["configuration"], "sales", "{}", a.body);
    assert_eq!(a.json()["assigned_by"], "individual");
    let a = env
        .send(request(
            Method::GET,
            "/api/assignment?user=carol%40contoso.test&groups=Support%20Agent",
            &admin,
            None,
        ))
        .await;
    assert_eq!(a.json()["configuration"], "support");
    assert_eq!(a.json()["assigned_by"], "group");

    // Assigning ann to a second configuration individually is what the file check refuses.
    let before = std::fs::read_to_string(env.config_path()).unwrap();
    let a = env
        .send(request(
            Method::PUT,
            "/api/configurations/support",
            &admin,
            Some(Body2::Json(
                json!({"users": ["bob@contoso.test", "ann@contoso.test"]}),
            )),
        ))
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(std::fs::read_to_string(env.config_path()).unwrap(), before);

    // Deactivate sales: ann now gets nothing individually.
    let a = env
        .send(request(
            Method::PUT,
            "/api/configurations/sales",
            &admin,
            Some(Body2::Json(json!({"active": false}))),
        ))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = env
        .send(request(
            Method::GET,
            "/api/assignment?user=ann%40contoso.test",
            &admin,
            None,
        ))
        .await;
    assert_eq!(a.json()["configuration"], serde_json::Value::Null);

    let a = env
        .send(request(
            Method::POST,
            "/api/configurations",
            &admin,
            Some(Body2::Json(json!({"name": "support"}))),
        ))
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    let a = env
        .send(request(
            Method::POST,
            "/api/configurations",
            &admin,
            Some(Body2::Json(json!({"name": "bad name]"}))),
        ))
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = env
        .send(request(
            Method::PUT,
            "/api/configurations/nope",
            &admin,
            Some(Body2::Json(json!({"active": true}))),
        ))
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    let list = env
        .send(request(Method::GET, "/api/configurations", &admin, None))
        .await
        .json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sales", "support"]);

    // The page shows the effective configuration per user.
    let page = env
        .send(request(Method::GET, "/configurations", &admin, None))
        .await;
    let row = page
        .body
        .split(r#"<tr data-user="bob@contoso.test">"#)
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .unwrap_or_else(|| panic!("no row for bob: {}", page.body));
    assert!(
        row.starts_with(r#"<td><span class="address" title="bob@contoso.test">"#)
            && row.contains("</td><td>support</td>"),
        "{row}"
    );

    let audit = env.store.list_audit(20, None).unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"configuration.create"), "{actions:?}");
    assert!(actions.contains(&"configuration.update"), "{actions:?}");
    assert!(
        audit
            .iter()
            .all(|e| e.actor == "admin-bot" || e.actor.starts_with("token:admin-bot")),
        "{audit:?}"
    );
}

#[tokio::test]
async fn reset_sync_forgets_pairs_and_the_test_says_it_is_not_available() {
    let env = Env::new();
    let ann = UserKey::from_email("ann@contoso.test");
    let mut commit = PassCommit::new(ann.clone(), Utc::now(), Utc::now());
    commit.upserts = vec![SyncedPair {
        kind: ItemKind::Contact,
        crm_id: "0031".into(),
        exchange_id: "AAMk1".into(),
        content: Contact {
            last_name: "Lee".to_owned(),
            ..Contact::default()
        }
        .to_fields(),
        crm_version: None,
        exchange_version: None,
    }];
    env.store.commit_pass(&commit).unwrap();
    env.store
        .set_paused(&ann, Some("too many deletes"))
        .unwrap();

    let (cookie, csrf) = env.session(Role::Operator);
    let op = Auth::Session {
        cookie,
        csrf: Some(csrf),
    };
    let page = env.send(request(Method::GET, "/", &op, None)).await;
    assert!(page.body.contains("yes: too many deletes"), "{}", page.body);
    assert!(page.body.contains("Reset Sync"));
    assert!(
        !page.body.contains("sync-toggle"),
        "only admins see the switch"
    );

    let a = env
        .send(request(
            Method::POST,
            "/users/ann%40contoso.test/reset",
            &op,
            Some(form(&[])),
        ))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(
        a.body.contains("Reset Sync for ann@contoso.test: 1 pairs"),
        "{}",
        a.body
    );
    let status = env.store.user_status(&ann).unwrap().unwrap();
    assert_eq!(status.contact_pairs, 0);
    assert!(status.paused.is_none());

    let a = env
        .send(request(
            Method::POST,
            "/api/users/nobody%40contoso.test/reset",
            &op,
            Some(form(&[])),
        ))
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    let a = env
        .send(request(
            Method::POST,
            "/api/users/ann%40contoso.test/test",
            &op,
            None,
        ))
        .await;
    assert_eq!(a.status, StatusCode::NOT_IMPLEMENTED);
    assert_eq!(a.json()["status"], "not_available");

    let audit = env.store.list_audit(10, None).unwrap();
    let reset = audit.iter().find(|e| e.action == "user.reset").unwrap();
    assert_eq!(reset.actor, "operator");
    assert_eq!(reset.detail["user"], "ann@contoso.test");
    assert_eq!(reset.detail["pairs_forgotten"], 1);
}

#[tokio::test]
async fn sync_can_be_disabled_and_enabled_by_an_admin() {
    let env = Env::new();
    let admin = session_of(&env, Role::Admin);
    let a = env
        .send(request(
            Method::POST,
            "/sync",
            &admin,
            Some(form(&[("enabled", "false")])),
        ))
        .await;
    assert!(
        a.body
            .contains(r#"<strong id="sync-state">disabled</strong>"#),
        "{}",
        a.body
    );
    let a = env
        .send(request(Method::GET, "/api/sync", &admin, None))
        .await;
    assert_eq!(a.json()["enabled"], false);
    let audit = env.store.list_audit(5, None).unwrap();
    assert_eq!(audit[0].action, "sync.disable");
    assert_eq!(audit[0].actor, "admin");
}

/// A form the configuration check refuses comes back with what the admin typed still in it,
/// and the reason names the key, not the server's path to the file.
#[tokio::test]
async fn a_refused_form_keeps_the_admins_input_and_shows_no_server_path() {
    let env = Env::new();
    let before = std::fs::read_to_string(env.config_path()).unwrap();
    let dir = env.dir.path().to_string_lossy().into_owned();
    let admin = session_of(&env, Role::Admin);

    // A row edited with an address that is not one.
    let page = post_sales(
        &env,
        &admin,
        &[
            ("active", "false"),
            ("users", "ann@contoso.test, not-an-address"),
            ("groups", "Sales User, Field Sales"),
            ("contacts_direction", "crm_to_exchange"),
        ],
    )
    .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert_eq!(std::fs::read_to_string(env.config_path()).unwrap(), before);
    let error = page.body.split("id=\"error\">").nth(1).unwrap_or_default();
    assert!(
        error.starts_with("the change was not saved: exsync.toml:")
            && error.contains(": configurations.sales.users: "),
        "the reason by file name, line and key: {}",
        page.body
    );
    assert!(!page.body.contains(&dir), "no server path: {}", page.body);
    assert!(
        page.body
            .contains(r#"form="cfg-0">ann@contoso.test, not-an-address</textarea>"#),
        "the users as typed: {}",
        page.body
    );
    assert!(
        page.body
            .contains(r#"form="cfg-0">Sales User, Field Sales</textarea>"#),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains(r#"<option value="false" selected>inactive</option>"#),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains(r#"<option value="crm_to_exchange" selected>crm_to_exchange</option>"#),
        "{}",
        page.body
    );

    // A new configuration that assigns ann a second time.
    let page = env
        .send(request(
            Method::POST,
            "/configurations",
            &admin,
            Some(form(&[
                ("name", "support"),
                ("users", "ann@contoso.test"),
                ("groups", "Support Agent"),
                ("events_direction", "off"),
            ])),
        ))
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(
        page.body.contains("already assigned to configuration"),
        "{}",
        page.body
    );
    assert!(!page.body.contains(&dir), "no server path: {}", page.body);
    for kept in [
        r#"id="new-name" required pattern="[A-Za-z0-9_-]+" value="support""#,
        r#"id="new-users" value="ann@contoso.test""#,
        r#"id="new-groups" value="Support Agent""#,
        r#"<option value="off" selected>off</option>"#,
    ] {
        assert!(page.body.contains(kept), "{kept}: {}", page.body);
    }
    assert_eq!(std::fs::read_to_string(env.config_path()).unwrap(), before);
}

/// A logged-in browser session of `role`, with its CSRF token for forms.
fn session_of(env: &Env, role: Role) -> Auth {
    let (cookie, csrf) = env.session(role);
    Auth::Session {
        cookie,
        csrf: Some(csrf),
    }
}

/// The `sales` row's form posted with `fields`.
async fn post_sales(env: &Env, auth: &Auth, fields: &[(&str, &str)]) -> Answer {
    env.send(request(
        Method::POST,
        "/configurations/sales",
        auth,
        Some(form(fields)),
    ))
    .await
}

/// `PUT /api/configurations/sales` with `body`.
async fn put_sales(env: &Env, auth: &Auth, body: serde_json::Value) -> Answer {
    env.send(request(
        Method::PUT,
        "/api/configurations/sales",
        auth,
        Some(Body2::Json(body)),
    ))
    .await
}

/// The file's text, and the `sales` configuration as the API lists it.
async fn sales_now(env: &Env, admin: &Auth) -> (String, serde_json::Value) {
    let list = env
        .send(request(Method::GET, "/api/configurations", admin, None))
        .await
        .json();
    let sales = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "sales")
        .cloned()
        .unwrap();
    (std::fs::read_to_string(env.config_path()).unwrap(), sales)
}

/// Every rule the console edits, set through the API: each lands in the file under its key,
/// loads as the service would read it, reads back from `GET /api/configurations`, and the
/// change is audited with what it set.
#[tokio::test]
async fn every_rule_of_a_configuration_is_saved_through_the_api() {
    let env = Env::new();
    let admin = Auth::Token(env.token(Role::Admin).to_owned());
    let a = put_sales(
        &env,
        &admin,
        json!({
                "contacts": {
                    "conflict": "exchange_wins", "deletes": "recreate",
                    "max_delete_share": 0.25, "min_deletes_for_valve": 7,
                    "first_link": "policy", "scope": "visible",
                    "condition": "Account.Type = 'Customer'"
                },
                "events": {
                    "conflict": "newest_wins", "past_days": 3, "future_days": 40,
                    "sync_private": true, "select": "category", "category": "CRM Sync",
                    "max_delete_share": 1
                }
        }),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);

    let (text, sales) = sales_now(&env, &admin).await;
    for line in [
        "conflict = \"exchange_wins\"",
        "deletes = \"recreate\"",
        "max_delete_share = 0.25",
        "min_deletes_for_valve = 7",
        "first_link = \"policy\"",
        "scope = \"visible\"",
        "condition = \"Account.Type = 'Customer'\"",
        "conflict = \"newest_wins\"",
        "past_days = 3",
        "future_days = 40",
        "sync_private = true",
        "select = \"category\"",
        "category = \"CRM Sync\"",
    ] {
        assert!(text.contains(line), "{line} in the file:\n{text}");
    }
    let c = &sales["contacts"];
    assert_eq!(c["conflict"], "exchange_wins");
    assert_eq!(c["deletes"], "recreate");
    assert_eq!(c["max_delete_share"], 0.25);
    assert_eq!(c["min_deletes_for_valve"], 7);
    assert_eq!(c["first_link"], "policy");
    assert_eq!(c["scope"], "visible");
    assert_eq!(c["condition"], "Account.Type = 'Customer'");
    let e = &sales["events"];
    assert_eq!(e["conflict"], "newest_wins");
    assert_eq!(e["past_days"], 3);
    assert_eq!(e["future_days"], 40);
    assert_eq!(e["sync_private"], true);
    assert_eq!(e["select"], "category");
    assert_eq!(e["category"], "CRM Sync");
    assert_eq!(e["max_delete_share"], 1.0);

    let loaded = exsync_core::config::load(&env.config_path()).unwrap();
    let s = loaded.configuration("sales").unwrap();
    assert_eq!(s.contacts.min_deletes_for_valve, 7);
    assert_eq!(s.events.window.map(|w| w.past_days), Some(3));

    // An empty condition removes it.
    let a = put_sales(&env, &admin, json!({"contacts": {"condition": ""}})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let (text, sales) = sales_now(&env, &admin).await;
    assert!(!text.contains("condition"), "{text}");
    assert!(sales["contacts"].get("condition").is_none(), "{sales}");

    let audit = env.store.list_audit(5, None).unwrap();
    let first = audit
        .iter()
        .rev()
        .find(|e| e.action == "configuration.update")
        .unwrap();
    assert_eq!(first.detail["rules"]["events.past_days"], "3", "{first:?}");
    assert_eq!(
        first.detail["rules"]["contacts.conflict"], "\"exchange_wins\"",
        "{first:?}"
    );
}

/// A value the file check refuses is refused through the API with the key and the reason,
/// and the file is left as it was; a key the console does not edit is refused by name.
#[tokio::test]
async fn a_bad_rule_is_refused_by_the_file_check_with_its_key() {
    let env = Env::new();
    let admin = Auth::Token(env.token(Role::Admin).to_owned());
    let before = std::fs::read_to_string(env.config_path()).unwrap();
    let put = |kind: &str, key: &str, value: serde_json::Value| {
        put_sales(&env, &admin, json!({ kind: { key: value } }))
    };
    for (kind, key, value, reason) in [
        (
            "contacts",
            "max_delete_share",
            json!(1.5),
            "between 0 and 1",
        ),
        ("events", "past_days", json!(-3), "found -3"),
        (
            "contacts",
            "conflict",
            json!("loudest_wins"),
            "not a conflict policy",
        ),
        ("contacts", "deletes", json!("never"), "not a delete policy"),
        (
            "events",
            "min_deletes_for_valve",
            json!("many"),
            "expected an integer",
        ),
        (
            "contacts",
            "condition",
            json!("Name = 'x"),
            "not a usable SOQL",
        ),
    ] {
        let a = put(kind, key, value).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{key}: {}", a.body);
        let named = "exsync.toml:";
        let key = format!(": configurations.sales.{kind}.{key}: ");
        assert!(
            a.body.contains(named) && a.body.contains(&key) && a.body.contains(reason),
            "{key} / {reason} in {}",
            a.body
        );
        assert_eq!(std::fs::read_to_string(env.config_path()).unwrap(), before);
    }
    let a = put("contacts", "past_days", json!(3)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert!(
        a.body
            .contains("`contacts.past_days` is not a rule the console edits"),
        "{}",
        a.body
    );
    assert_eq!(std::fs::read_to_string(env.config_path()).unwrap(), before);
}

/// The edit form shows every rule, saves what the admin picked into the file, and a refused
/// value comes back with the key named, the file unchanged and the typed values kept.
#[tokio::test]
async fn the_rules_are_edited_in_the_configurations_form() {
    let env = Env::new();
    let admin = session_of(&env, Role::Admin);
    let page = env
        .send(request(Method::GET, "/configurations", &admin, None))
        .await;
    for field in [
        r#"<select name="contacts_conflict" form="cfg-0">"#,
        r#"<select name="contacts_deletes" form="cfg-0">"#,
        r#"<select name="contacts_first_link" form="cfg-0">"#,
        r#"<select name="contacts_scope" form="cfg-0">"#,
        r#"<input type="text" name="contacts_condition" form="cfg-0" value="">"#,
        r#"<input type="text" name="contacts_max_delete_share" form="cfg-0" value="0.5">"#,
        r#"<input type="text" name="events_past_days" form="cfg-0" value="30">"#,
        r#"<select name="events_sync_private" form="cfg-0">"#,
        r#"<option value="newest" selected>newest</option>"#,
    ] {
        assert!(page.body.contains(field), "{field}: {}", page.body);
    }

    let page = post_sales(
        &env,
        &admin,
        &[
            ("contacts_conflict", "exchange_wins"),
            ("contacts_deletes", "recreate"),
            ("contacts_max_delete_share", "0.3"),
            ("contacts_min_deletes_for_valve", "12"),
            ("contacts_first_link", "policy"),
            ("contacts_scope", "visible"),
            ("contacts_condition", "Account.Type = 'Customer'"),
            ("events_past_days", "5"),
            ("events_future_days", "60"),
            ("events_sync_private", "true"),
            ("events_select", "category"),
            ("events_category", "To CRM"),
            // What already applies, as a browser posts it, is not written.
            ("events_max_delete_share", "0.5"),
            ("events_conflict", "crm_wins"),
        ],
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let loaded = exsync_core::config::load(&env.config_path()).unwrap();
    let s = loaded.configuration("sales").unwrap();
    assert_eq!(
        s.contacts.conflict,
        exsync_core::config::ConflictPolicy::ExchangeWins
    );
    assert_eq!(
        s.contacts.deletes,
        exsync_core::config::DeleteMode::Recreate
    );
    assert!((s.contacts.max_delete_share - 0.3).abs() < 1e-9);
    assert_eq!(s.contacts.min_deletes_for_valve, 12);
    assert_eq!(
        s.contacts.first_link,
        exsync_core::config::FirstLink::Policy
    );
    assert_eq!(s.contact_scope, exsync_core::config::ContactScope::Visible);
    assert_eq!(
        s.contact_condition.as_deref(),
        Some("Account.Type = 'Customer'")
    );
    let w = s.events.window.unwrap();
    assert_eq!((w.past_days, w.future_days), (5, 60));
    assert!(s.events.sync_private);
    assert_eq!(s.events.select, exsync_core::config::EventSelect::Category);
    assert_eq!(s.events.category, "To CRM");
    let text = std::fs::read_to_string(env.config_path()).unwrap();
    for unchanged in ["max_delete_share = 0.5", "crm_wins"] {
        assert!(!text.contains(unchanged), "{unchanged}: {text}");
    }
    // The page shows the saved values.
    for shown in [
        r#"<input type="text" name="events_past_days" form="cfg-0" value="5">"#,
        r#"<input type="text" name="contacts_condition" form="cfg-0" value="Account.Type = &#39;Customer&#39;">"#,
    ] {
        assert!(page.body.contains(shown), "{shown}: {}", page.body);
    }

    let before = std::fs::read_to_string(env.config_path()).unwrap();
    for (field, typed, key) in [
        (
            "contacts_max_delete_share",
            "1.5",
            "configurations.sales.contacts.max_delete_share",
        ),
        (
            "events_past_days",
            "-3",
            "configurations.sales.events.past_days",
        ),
        (
            "events_future_days",
            "a year",
            "configurations.sales.events.future_days",
        ),
        (
            "contacts_conflict",
            "loudest_wins",
            "configurations.sales.contacts.conflict",
        ),
    ] {
        let page = post_sales(
            &env,
            &admin,
            &[(field, typed), ("events_category", "Typed")],
        )
        .await;
        assert_eq!(
            page.status,
            StatusCode::BAD_REQUEST,
            "{field}: {}",
            page.body
        );
        let error = page.body.split("id=\"error\">").nth(1).unwrap_or_default();
        assert!(
            error.starts_with("the change was not saved: exsync.toml:")
                && error.contains(&format!(": {key}: ")),
            "{field}: {}",
            page.body
        );
        assert_eq!(std::fs::read_to_string(env.config_path()).unwrap(), before);
        assert!(
            page.body
                .contains(r#"<details class="rules" data-kind="events" open>"#)
                && page
                    .body
                    .contains(r#"name="events_category" form="cfg-0" value="Typed">"#),
            "{field}: the typed values kept: {}",
            page.body
        );
        let kept = if field == "contacts_conflict" {
            format!(r#"<option value="{typed}" selected>{typed}</option>"#)
        } else {
            format!(r#"name="{field}" form="cfg-0" value="{typed}">"#)
        };
        assert!(page.body.contains(&kept), "{kept}: {}", page.body);
    }
}

/// Field mappings set through the API land in the file's `fields` table, load as the service
/// reads them, read back from `GET /api/configurations`, are audited, and a null takes one
/// out of the file again.
#[tokio::test]
async fn field_mappings_are_saved_through_the_api() {
    let env = Env::new();
    let admin = Auth::Token(env.token(Role::Admin).to_owned());
    let a = put_sales(
        &env,
        &admin,
        json!({
            "contacts": {"fields": {"notes": "Body__c", "birthday": false}},
            "events": {"fields": {"body": false, "location": "Room__c"}}
        }),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let (text, sales) = sales_now(&env, &admin).await;
    for line in [
        "[configurations.sales.contacts.fields]",
        "notes = \"Body__c\"",
        "birthday = false",
        "[configurations.sales.events.fields]",
        "body = false",
        "location = \"Room__c\"",
    ] {
        assert!(text.contains(line), "{line} in the file:\n{text}");
    }
    assert_eq!(sales["contacts"]["fields"]["notes"], "Body__c", "{sales}");
    assert_eq!(sales["contacts"]["fields"]["birthday"], false, "{sales}");
    assert_eq!(sales["contacts"]["fields"]["title"], "Title", "{sales}");
    assert_eq!(sales["events"]["fields"]["body"], false, "{sales}");
    let loaded = exsync_core::config::load(&env.config_path()).unwrap();
    let s = loaded.configuration("sales").unwrap();
    assert_eq!(s.contacts.fields["notes"], "Body__c");
    assert!(!s.contacts.fields.contains_key("birthday"));
    assert_eq!(s.events.fields["location"], "Room__c");

    let audit = env.store.list_audit(5, None).unwrap();
    let update = audit
        .iter()
        .find(|e| e.action == "configuration.update")
        .unwrap();
    assert_eq!(
        update.detail["rules"]["contacts.fields.notes"], "\"Body__c\"",
        "{update:?}"
    );
    assert_eq!(
        update.detail["rules"]["contacts.fields.birthday"], "false",
        "{update:?}"
    );

    // null restores the standard field by taking the mapping out of the file.
    let a = put_sales(
        &env,
        &admin,
        json!({"contacts": {"fields": {"notes": null}}}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let (text, sales) = sales_now(&env, &admin).await;
    assert!(!text.contains("Body__c"), "{text}");
    assert_eq!(sales["contacts"]["fields"]["notes"], "Description");
}

/// A mapping the file check refuses is refused through the API and the form with the file,
/// line, key and reason; the file is left as it was and the form keeps what was typed.
#[tokio::test]
async fn a_bad_field_mapping_is_refused_by_the_file_check_with_its_key() {
    let env = Env::new();
    let admin = Auth::Token(env.token(Role::Admin).to_owned());
    let before = std::fs::read_to_string(env.config_path()).unwrap();
    for (kind, field, value, reason) in [
        (
            "events",
            "start",
            json!(false),
            "`start` cannot be turned off",
        ),
        (
            "contacts",
            "notes",
            json!("Not a field"),
            "is not a Salesforce field name",
        ),
        (
            "contacts",
            "colour",
            json!("Colour__c"),
            "`colour` is not a contact field",
        ),
    ] {
        let a = put_sales(&env, &admin, json!({ kind: {"fields": { field: value }} })).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{field}: {}", a.body);
        let key = format!(": configurations.sales.{kind}.fields.{field}: ");
        assert!(
            a.body.contains("exsync.toml:") && a.body.contains(&key) && a.body.contains(reason),
            "{key} / {reason} in {}",
            a.body
        );
        assert_eq!(std::fs::read_to_string(env.config_path()).unwrap(), before);
    }
    let a = put_sales(&env, &admin, json!({"contacts": {"fields": {"notes": 3}}})).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert!(
        a.body
            .contains("`contacts.fields.notes` takes a CRM field name, false or null"),
        "{}",
        a.body
    );
    assert_eq!(std::fs::read_to_string(env.config_path()).unwrap(), before);

    let session = session_of(&env, Role::Admin);
    let page = post_sales(
        &env,
        &session,
        &[
            ("contacts_field_notes", "Not a field"),
            ("events_field_subject", "Topic__c"),
        ],
    )
    .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    let error = page.body.split("id=\"error\">").nth(1).unwrap_or_default();
    assert!(
        error.starts_with("the change was not saved: exsync.toml:")
            && error.contains(": configurations.sales.contacts.fields.notes: "),
        "{}",
        page.body
    );
    assert_eq!(std::fs::read_to_string(env.config_path()).unwrap(), before);
    for kept in [
        r#"<details class="fields" data-kind="contacts" open>"#,
        r#"name="contacts_field_notes" form="cfg-0" value="Not a field" placeholder="Description">"#,
        r#"name="events_field_subject" form="cfg-0" value="Topic__c" placeholder="Subject">"#,
    ] {
        assert!(page.body.contains(kept), "{kept}: {}", page.body);
    }
}

/// The row's form shows each field's CRM field; a Save that posts every field (as a browser
/// does) writes only the mapping the admin changed.
#[tokio::test]
async fn field_mappings_are_edited_in_the_configurations_form() {
    let env = Env::new();
    let admin = session_of(&env, Role::Admin);
    let page = env
        .send(request(Method::GET, "/configurations", &admin, None))
        .await;
    for field in [
        r#"<details class="fields" data-kind="contacts"><summary>Fields</summary>"#,
        r#"<input type="text" name="contacts_field_notes" form="cfg-0" value="Description" placeholder="Description">"#,
        r#"<input type="text" name="events_field_start" form="cfg-0" value="StartDateTime" placeholder="StartDateTime">"#,
    ] {
        assert!(page.body.contains(field), "{field}: {}", page.body);
    }
    let mut posted: Vec<(String, String)> = Vec::new();
    for (kind, fields) in [
        ("contacts", exsync_core::field_names(ItemKind::Contact)),
        ("events", exsync_core::field_names(ItemKind::Event)),
    ] {
        let standard = exsync_core::config::default_field_map(match kind {
            "contacts" => ItemKind::Contact,
            _ => ItemKind::Event,
        });
        for f in fields {
            let value = match (kind, *f) {
                ("contacts", "phones") => "MobilePhone".to_owned(),
                ("contacts", "birthday") => "false".to_owned(),
                // Blank: the standard field, which already applies.
                ("events", "location") => String::new(),
                _ => standard[*f].clone(),
            };
            posted.push((format!("{kind}_field_{f}"), value));
        }
    }
    let pairs: Vec<(&str, &str)> = posted
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let page = post_sales(&env, &admin, &pairs).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let text = std::fs::read_to_string(env.config_path()).unwrap();
    assert!(
        text.ends_with(
            "[configurations.sales.contacts.fields]\nphones = \"MobilePhone\"\nbirthday = false\n"
        ),
        "only the changed mappings are written:\n{text}"
    );
    let loaded = exsync_core::config::load(&env.config_path()).unwrap();
    let s = loaded.configuration("sales").unwrap();
    assert_eq!(s.contacts.fields["phones"], "MobilePhone");
    assert!(!s.contacts.fields.contains_key("birthday"));
    assert!(
        page.body.contains(
            r#"name="contacts_field_birthday" form="cfg-0" value="false" placeholder="Birthdate">"#
        ),
        "{}",
        page.body
    );
}

/// The new-configuration form has every rule and field mapping, not only the directions;
/// what it posts is saved, and what a new configuration gets anyway is not written.
#[tokio::test]
async fn the_new_configuration_form_sets_every_rule() {
    let env = Env::new();
    let admin = session_of(&env, Role::Admin);
    let page = env
        .send(request(Method::GET, "/configurations", &admin, None))
        .await;
    for field in [
        r#"<select name="contacts_conflict" form="new-configuration">"#,
        r#"<input type="text" name="contacts_condition" form="new-configuration" value="">"#,
        r#"<input type="text" name="events_past_days" form="new-configuration" value="30">"#,
        r#"<select name="events_sync_private" form="new-configuration">"#,
        r#"<input type="text" name="contacts_field_notes" form="new-configuration" value="Description" placeholder="Description">"#,
    ] {
        assert!(page.body.contains(field), "{field}: {}", page.body);
    }
    let page = env
        .send(request(
            Method::POST,
            "/configurations",
            &admin,
            Some(form(&[
                ("name", "support"),
                ("users", "bob@contoso.test"),
                ("contacts_direction", "both"),
                ("events_direction", "crm_to_exchange"),
                ("contacts_conflict", "exchange_wins"),
                ("contacts_scope", "visible"),
                ("contacts_max_delete_share", "0.5"),
                ("contacts_condition", ""),
                ("events_past_days", "10"),
                ("events_future_days", "365"),
                ("events_sync_private", "true"),
                ("contacts_field_birthday", "false"),
                ("contacts_field_notes", "Description"),
            ])),
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let loaded = exsync_core::config::load(&env.config_path()).unwrap();
    let s = loaded.configuration("support").unwrap();
    assert_eq!(
        s.contacts.conflict,
        exsync_core::config::ConflictPolicy::ExchangeWins
    );
    assert_eq!(s.contact_scope, exsync_core::config::ContactScope::Visible);
    assert_eq!(s.events.window.map(|w| w.past_days), Some(10));
    assert!(s.events.sync_private);
    assert_eq!(
        s.events.direction,
        exsync_core::config::Direction::CrmToExchange
    );
    assert!(!s.contacts.fields.contains_key("birthday"));
    let text = std::fs::read_to_string(env.config_path()).unwrap();
    let support = text
        .split("[configurations.support]")
        .nth(1)
        .unwrap_or_default();
    for unwritten in [
        "max_delete_share",
        "future_days",
        "notes",
        "direction = \"both\"",
    ] {
        assert!(!support.contains(unwritten), "{unwritten}: {text}");
    }

    // Refused: the typed rules come back in the new form, its boxes open.
    let page = env
        .send(request(
            Method::POST,
            "/configurations",
            &admin,
            Some(form(&[
                ("name", "field"),
                ("users", "carol@contoso.test"),
                ("events_past_days", "-1"),
                ("contacts_field_notes", "Bad Name"),
            ])),
        ))
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    for kept in [
        r#"name="events_past_days" form="new-configuration" value="-1">"#,
        r#"name="contacts_field_notes" form="new-configuration" value="Bad Name" placeholder="Description">"#,
    ] {
        assert!(page.body.contains(kept), "{kept}: {}", page.body);
    }
    assert!(exsync_core::config::load(&env.config_path())
        .unwrap()
        .configuration("field")
        .is_none());
}
