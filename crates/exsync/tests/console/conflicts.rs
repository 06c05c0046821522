//! What the first sync chose, in the console: a configuration's `first_link` rule shows
//! next to its conflict rule and survives edits made from the console, and each user's
//! conflicts page lists conflicts and first-link merges so an admin tells them apart, with
//! every value the CRM or the mailbox held encoded on the page.

use crate::support::*;
use axum::http::{Method, StatusCode};
use chrono::{TimeDelta, Utc};
use exsync_core::config::FirstLink;
use exsync_core::plan::Conflict;
use exsync_core::{ItemKind, Side, UserKey};
use exsync_store::{ConflictEntry, PassCommit, Role};
use serde_json::{json, Value};

const ANN: &str = "ann@contoso.test";

/// The `sales` configuration of the test server with contacts settling a first link by the
/// conflict policy (and events left at the default).
fn with_first_link_policy(env: &Env) {
    let text = std::fs::read_to_string(env.config_path()).unwrap();
    let text = text.replace(
        "groups = [\"Sales User\"]\n",
        "groups = [\"Sales User\"]\ncontacts.conflict = \"exchange_wins\"\ncontacts.first_link = \"policy\"\n",
    );
    std::fs::write(env.config_path(), text).unwrap();
    let loaded = exsync_core::config::load(&env.config_path()).unwrap();
    assert_eq!(
        loaded.configuration("sales").unwrap().contacts.first_link,
        FirstLink::Policy
    );
}

fn sales(list: &Value) -> &Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "sales")
        .unwrap()
}

#[tokio::test]
async fn the_first_link_rule_shows_and_survives_an_edit_from_the_console() {
    let env = Env::new();
    with_first_link_policy(&env);
    let admin = Auth::Token(env.token(Role::Admin).to_owned());

    let a = env
        .send(request(Method::GET, "/api/configurations", &admin, None))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let list = a.json();
    let c = sales(&list);
    assert_eq!(c["contacts"]["first_link"], "policy", "{}", a.body);
    assert_eq!(c["contacts"]["conflict"], "exchange_wins");
    assert_eq!(c["events"]["first_link"], "newest", "the default");

    // An edit from the API leaves the rule as it was, in the answer and in the file.
    let a = env
        .send(request(
            Method::PUT,
            "/api/configurations/sales",
            &admin,
            Some(Body2::Json(
                json!({ "active": false, "events_direction": "off" }),
            )),
        ))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["contacts"]["first_link"], "policy", "{}", a.body);
    assert_eq!(a.json()["active"], false);
    let loaded = exsync_core::config::load(&env.config_path()).unwrap();
    let sales_now = loaded.configuration("sales").unwrap();
    assert_eq!(sales_now.contacts.first_link, FirstLink::Policy);
    assert_eq!(sales_now.events.first_link, FirstLink::Newest);

    // And one from the page's form too; the page shows both rules of each kind.
    let (cookie, csrf) = env.session(Role::Admin);
    let session = Auth::Session {
        cookie,
        csrf: Some(csrf),
    };
    let page = env
        .send(request(
            Method::POST,
            "/configurations/sales",
            &session,
            Some(form(&[("active", "true"), ("contacts_direction", "both")])),
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("Configuration sales saved."),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(
            r#"<div class="settling muted" data-kind="contacts">conflict: <span class="conflict">exchange_wins</span>; first link: <span class="first-link">policy</span></div>"#
        ),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(
            r#"data-kind="events">conflict: <span class="conflict">crm_wins</span>; first link: <span class="first-link">newest</span>"#
        ),
        "{}",
        page.body
    );
    let loaded = exsync_core::config::load(&env.config_path()).unwrap();
    assert_eq!(
        loaded.configuration("sales").unwrap().contacts.first_link,
        FirstLink::Policy
    );
    let a = env
        .send(request(Method::GET, "/api/configurations", &admin, None))
        .await;
    assert_eq!(sales(&a.json())["contacts"]["first_link"], "policy");
    assert_eq!(sales(&a.json())["active"], true);
}

const HOSTILE: &str = "</td><script>alert('x')</script><img src=x onerror=alert(1)>&amp;\"`";

/// Two passes for ann: the first linked a contact for the first time and took the newer
/// Outlook value; the second met a real conflict, which the CRM won, over a hostile value.
fn seed(env: &Env) {
    let user = UserKey::from_email(ANN);
    let first = Utc::now() - TimeDelta::hours(2);
    let mut commit = PassCommit::new(user.clone(), first, first + TimeDelta::seconds(5));
    commit.conflicts = vec![ConflictEntry {
        kind: ItemKind::Contact,
        crm_id: "003FIRST".into(),
        exchange_id: "AAMkFIRST".into(),
        conflict: Conflict {
            field: "phone".to_owned(),
            crm_value: Some(json!("+1 555 0100")),
            exchange_value: Some(json!("+1 555 0199")),
            winner: Side::Exchange,
            first_link: true,
        },
        name: None,
    }];
    env.store.commit_pass(&commit).unwrap();

    let later = Utc::now() - TimeDelta::hours(1);
    let mut commit = PassCommit::new(user, later, later + TimeDelta::seconds(5));
    commit.counts.conflicts = 1;
    commit.conflicts = vec![ConflictEntry {
        kind: ItemKind::Event,
        crm_id: "00UCONFLICT".into(),
        exchange_id: "AAMkCONFLICT".into(),
        conflict: Conflict {
            field: "subject".to_owned(),
            crm_value: Some(json!("Quarterly review")),
            exchange_value: Some(json!(HOSTILE)),
            winner: Side::Crm,
            first_link: false,
        },
        name: None,
    }];
    env.store.commit_pass(&commit).unwrap();
}

#[tokio::test]
async fn the_conflicts_json_tells_a_first_link_merge_from_a_conflict() {
    let env = Env::new();
    seed(&env);
    let viewer = Auth::Token(env.token(Role::Viewer).to_owned());
    let a = env
        .send(request(
            Method::GET,
            "/api/users/ann%40contoso.test/conflicts",
            &viewer,
            None,
        ))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let list = a.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{}", a.body);

    // Newest first: the conflict, then the first link's merge.
    let conflict = &list[0];
    assert_eq!(conflict["first_link"], false);
    assert_eq!(conflict["winner"], "crm");
    assert_eq!(conflict["kind"], "event");
    assert_eq!(conflict["crm_id"], "00UCONFLICT");
    assert_eq!(conflict["exchange_id"], "AAMkCONFLICT");
    assert_eq!(conflict["field"], "subject");
    assert_eq!(conflict["crm_value"], "Quarterly review");
    assert_eq!(
        conflict["exchange_value"], HOSTILE,
        "JSON carries the value as it is"
    );

    let merge = &list[1];
    assert_eq!(merge["first_link"], true);
    assert_eq!(merge["winner"], "exchange");
    assert_eq!(merge["kind"], "contact");
    assert_eq!(merge["crm_id"], "003FIRST");
    assert_eq!(merge["exchange_id"], "AAMkFIRST");
    assert_eq!(merge["field"], "phone");
    assert_eq!(merge["crm_value"], "+1 555 0100");
    assert_eq!(merge["exchange_value"], "+1 555 0199");
    assert!(
        merge["at"].as_str().unwrap() < conflict["at"].as_str().unwrap(),
        "{}",
        a.body
    );
    assert!(merge["id"].as_i64().unwrap() < conflict["id"].as_i64().unwrap());

    // `limit` keeps the newest.
    let a = env
        .send(request(
            Method::GET,
            "/api/users/ann%40contoso.test/conflicts?limit=1",
            &viewer,
            None,
        ))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let list = a.json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["crm_id"], "00UCONFLICT");
}

#[tokio::test]
async fn the_conflicts_page_says_how_each_was_settled_and_encodes_the_values() {
    let env = Env::new();
    seed(&env);
    let (cookie, csrf) = env.session(Role::Viewer);
    let viewer = Auth::Session {
        cookie,
        csrf: Some(csrf),
    };

    // The user's row on the status page links to it, for a viewer too.
    let status = env.send(request(Method::GET, "/", &viewer, None)).await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    assert!(
        status
            .body
            .contains(r#"href="/users/ann%40contoso.test/conflicts""#),
        "{}",
        status.body
    );

    let page = env
        .send(request(
            Method::GET,
            "/users/ann%40contoso.test/conflicts",
            &viewer,
            None,
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    assert!(body.contains(r#"<table id="conflicts">"#), "{body}");

    let rows: Vec<&str> = body
        .split("<tr ")
        .skip(1)
        .map(|r| r.split("</tr>").next().unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{body}");
    let (conflict, merge) = (rows[0], rows[1]);
    assert!(conflict.starts_with(r#"class="conflict" data-first-link="false" data-winner="crm""#));
    assert!(conflict.contains("conflict — CRM won"), "{conflict}");
    for cell in [
        "<td>event</td>",
        "<td>00UCONFLICT</td>",
        "<td>AAMkCONFLICT</td>",
        "<td>subject</td>",
        "<td>Quarterly review</td>",
    ] {
        assert!(conflict.contains(cell), "{cell} in {conflict}");
    }
    assert!(
        merge.starts_with(r#"class="first-link" data-first-link="true" data-winner="exchange""#)
    );
    assert!(
        merge.contains("first link — taken from the newer Exchange"),
        "{merge}"
    );
    for cell in [
        "<td>contact</td>",
        "<td>003FIRST</td>",
        "<td>AAMkFIRST</td>",
        "<td>phone</td>",
        "<td>+1 555 0100</td>",
        "<td>+1 555 0199</td>",
    ] {
        assert!(merge.contains(cell), "{cell} in {merge}");
    }

    // The hostile value is text in its cell, never markup.
    assert!(!body.contains(HOSTILE), "{body}");
    assert!(!body.contains("<script>alert"), "{body}");
    assert!(!body.contains("<img"), "{body}");
    assert!(
        conflict.contains(
            "<td>&lt;/td&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;&amp;amp;&quot;&#96;</td>"
        ),
        "{conflict}"
    );
}

#[tokio::test]
async fn the_conflicts_page_and_api_answer_as_the_other_user_pages_do() {
    let env = Env::new();
    seed(&env);
    let api = "/api/users/ann%40contoso.test/conflicts";
    let html = "/users/ann%40contoso.test/conflicts";

    // Not logged in: the API says 401, the page sends to the login form.
    let a = env.send(request(Method::GET, api, &Auth::None, None)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    let a = env
        .send(request(Method::GET, html, &Auth::None, None))
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert!(!a.body.contains("00UCONFLICT"));

    // Every role may read it, by token and by session.
    for role in [Role::Viewer, Role::Operator, Role::Admin] {
        let token = Auth::Token(env.token(role).to_owned());
        let (cookie, csrf) = env.session(role);
        let session = Auth::Session {
            cookie,
            csrf: Some(csrf),
        };
        for auth in [&token, &session] {
            let a = env.send(request(Method::GET, api, auth, None)).await;
            assert_eq!(a.status, StatusCode::OK, "{role:?}: {}", a.body);
            assert_eq!(a.json().as_array().unwrap().len(), 2);
            let a = env.send(request(Method::GET, html, auth, None)).await;
            assert_eq!(a.status, StatusCode::OK, "{role:?}: {}", a.body);
            assert!(a.body.contains("00UCONFLICT"));
        }
        // Read-only: there is nothing to post to.
        let a = env
            .send(request(
                Method::POST,
                api,
                &token,
                Some(Body2::Json(json!({}))),
            ))
            .await;
        assert!(
            a.status == StatusCode::METHOD_NOT_ALLOWED || a.status == StatusCode::FORBIDDEN,
            "{role:?}: {} {}",
            a.status,
            a.body
        );
    }

    // A user the store does not know is not found, not an empty list.
    let viewer = Auth::Token(env.token(Role::Viewer).to_owned());
    let a = env
        .send(request(
            Method::GET,
            "/api/users/nobody%40contoso.test/conflicts",
            &viewer,
            None,
        ))
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
    assert!(a.json()["error"]
        .as_str()
        .unwrap()
        .contains("never been synced"));
    let a = env
        .send(request(
            Method::GET,
            "/users/nobody%40contoso.test/conflicts",
            &viewer,
            None,
        ))
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);

    // A user with no conflicts yet gets an empty list and a page that says so.
    let other = UserKey::from_email("bob@contoso.test");
    env.store.ensure_user(&other).unwrap();
    let a = env
        .send(request(
            Method::GET,
            "/api/users/bob%40contoso.test/conflicts",
            &viewer,
            None,
        ))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json(), json!([]));
    let a = env
        .send(request(
            Method::GET,
            "/users/bob%40contoso.test/conflicts",
            &viewer,
            None,
        ))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains(r#"id="no-conflicts""#), "{}", a.body);
}
