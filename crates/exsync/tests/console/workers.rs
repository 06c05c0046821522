//! On a PostgreSQL store shared by workers, the users' status names the worker holding each
//! user, until when, and that its lease lapsed once it did; a user nobody holds names none.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use exsync_core::UserKey;
use exsync_store::{PgOptions, PgStore, Role, Store};

use crate::support::{request, Auth, Env};

/// A console and a worker on one throwaway PostgreSQL database, and two users; `None` when
/// PostgreSQL is not installed (the store's tests say whether that may be skipped).
struct Shared {
    db: exsync_testkit::postgres::Database,
    env: Env,
    worker_store: Arc<dyn Store>,
    ann: UserKey,
    bob: UserKey,
}

async fn shared() -> Option<Shared> {
    let db = exsync_testkit::postgres::database()?;
    let options = PgOptions::new(db.conninfo());
    let open = move || -> Arc<dyn Store> { Arc::new(PgStore::open(&options).unwrap()) };
    let (console_store, worker_store) = tokio::task::spawn_blocking(move || (open(), open()))
        .await
        .unwrap();
    Some(Shared {
        db,
        env: Env::with_store(tempfile::tempdir().unwrap(), console_store),
        worker_store,
        ann: UserKey::from_email("ann@contoso.test"),
        bob: UserKey::from_email("bob@contoso.test"),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_list_names_the_worker_holding_each_user() {
    let Some(Shared {
        db: _db,
        env,
        worker_store,
        ann,
        bob,
    }) = shared().await
    else {
        return;
    };
    // A worker named with markup, which the page must show as text.
    let worker = "w<1>";
    let taken = {
        let users = vec![ann.clone()];
        tokio::task::spawn_blocking(move || {
            worker_store.ensure_user(&UserKey::from_email("bob@contoso.test"))?;
            worker_store.acquire_users(
                worker,
                &users,
                10,
                Duration::from_millis(1500),
                Duration::ZERO,
            )
        })
        .await
        .unwrap()
        .unwrap()
    };
    assert_eq!(taken.len(), 1);

    let token = Auth::Token(env.token(Role::Viewer).to_owned());
    let users = env
        .send(request(Method::GET, "/api/users", &token, None))
        .await;
    assert_eq!(users.status, StatusCode::OK, "{}", users.body);
    let list = users.json();
    let row = |key: &UserKey| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|u| u["user"] == key.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("{key} missing: {list}"))
    };
    assert_eq!(row(&ann)["held_by"]["worker"], worker, "{list}");
    assert_eq!(row(&ann)["held_by"]["lapsed"], false, "{list}");
    assert!(row(&bob).get("held_by").is_none(), "{list}");

    let page = env.send(request(Method::GET, "/", &token, None)).await;
    assert!(page.body.contains("<th>Held by</th>"), "{}", page.body);
    assert!(
        page.body.contains("w&lt;1&gt; until <time"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("w<1>"));

    // Not renewed, the lease lapses, and the list says so.
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let list = env
        .send(request(Method::GET, "/api/users", &token, None))
        .await
        .json();
    let ann_row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user"] == ann.as_str())
        .cloned()
        .unwrap();
    assert_eq!(ann_row["held_by"]["lapsed"], true, "{list}");
    let page = env.send(request(Method::GET, "/", &token, None)).await;
    assert!(
        page.body.contains("w&lt;1&gt; (lease lapsed)"),
        "{}",
        page.body
    );
}

/// A user's page reads that user's lease alone. Another user's lease row is damaged behind
/// the store's back (an expiry no client can read), so the list of every lease fails: a
/// page that scanned the list for its user would fail with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_page_reads_only_that_users_lease() {
    let Some(Shared {
        db,
        env,
        worker_store,
        ann,
        bob,
    }) = shared().await
    else {
        return;
    };
    let taken = {
        let users = vec![ann.clone(), bob.clone()];
        tokio::task::spawn_blocking(move || {
            worker_store.acquire_users("w<1>", &users, 10, Duration::from_secs(60), Duration::ZERO)
        })
        .await
        .unwrap()
        .unwrap()
    };
    assert_eq!(taken.len(), 2);
    db.psql("UPDATE user_lease SET expires_at = 'infinity' WHERE user_key = 'bob@contoso.test'");
    let token = Auth::Token(env.token(Role::Viewer).to_owned());
    let list = env
        .send(request(Method::GET, "/api/users", &token, None))
        .await;
    assert_eq!(
        list.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "the damage must break the list of leases: {}",
        list.body
    );

    let one = env
        .send(request(
            Method::GET,
            "/api/users/ann%40contoso.test",
            &token,
            None,
        ))
        .await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    assert_eq!(
        one.json()["status"]["held_by"]["worker"],
        "w<1>",
        "{}",
        one.body
    );
    let page = env
        .send(request(
            Method::GET,
            "/users/ann%40contoso.test",
            &token,
            None,
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
}
