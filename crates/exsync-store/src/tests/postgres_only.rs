//! What only the PostgreSQL backend has: its URL checks, its migrations shared by several
//! workers, its connection pool and its use from async code.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::{PgOptions, PgStore, StoreError, PG_SCHEMA_VERSION};

fn pg() -> Option<(exsync_testkit::postgres::Database, PgOptions)> {
    let db = exsync_testkit::postgres::database()?;
    let options = PgOptions::new(db.conninfo());
    Some((db, options))
}

#[test]
fn a_url_with_a_password_or_a_cleartext_fallback_is_refused_before_connecting() {
    let refused = |url: &str| match PgStore::open(&PgOptions::new(url)) {
        Err(StoreError::Open { detail, path }) => format!("{path}: {detail}"),
        other => panic!("{url}: expected a refusal, got {other:?}"),
    };
    let text = refused("postgres://exsync:hunter2@db.example.com/exsync");
    assert!(text.contains("holds a password"), "{text}");
    assert!(!text.contains("hunter2"), "the password leaked: {text}");
    let text = refused("postgres://exsync@db.example.com/exsync?sslmode=disable");
    assert!(text.contains("only for a database on this host"), "{text}");
    let text = refused("postgres://exsync@db.example.com/exsync?sslmode=prefer");
    assert!(text.contains("fall back to plain text"), "{text}");
    let text = refused("postgres:///exsync");
    assert!(text.contains("names no"), "{text}");
    let text = refused("mysql://x");
    assert!(text.contains("cannot be parsed"), "{text}");
    // The options print without the password.
    let mut options = PgOptions::new("postgres://exsync@db.example.com/exsync");
    options.password = Some("hunter2".into());
    assert!(!format!("{options:?}").contains("hunter2"));
}

#[test]
fn a_remote_database_is_reached_over_verified_tls_only() {
    // Nothing listens on this loopback port: what matters is that the attempt was a TLS one
    // with a CA file that must exist, not a clear-text login.
    let mut options = PgOptions::new("postgres://exsync@127.0.0.1:1/exsync");
    options.tls = crate::PgTls::CaFile("/nonexistent/ca.pem".into());
    match PgStore::open(&options) {
        Err(StoreError::Open { detail, .. }) => {
            assert!(detail.contains("cannot read the CA file"), "{detail}")
        }
        other => panic!("expected the CA file to be required, got {other:?}"),
    }
}

#[test]
fn a_database_from_a_newer_exsync_is_refused_untouched() {
    let Some((db, options)) = pg() else { return };
    let store = PgStore::open(&options).unwrap();
    assert_eq!(store.schema_version().unwrap(), PG_SCHEMA_VERSION);
    store.ensure_user(&user("alice")).unwrap();
    drop(store);
    db.psql("UPDATE exsync_schema SET version = 99");
    let err = PgStore::open(&options).unwrap_err();
    match &err {
        StoreError::SchemaTooNew {
            found, supported, ..
        } => assert_eq!((*found, *supported), (99, PG_SCHEMA_VERSION)),
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    assert!(
        err.to_string().contains("written by a newer exsync"),
        "{err}"
    );
    assert_eq!(db.psql("SELECT version FROM exsync_schema"), "99");
    assert_eq!(db.psql("SELECT count(*) FROM users"), "1");
}

#[test]
fn workers_opening_a_fresh_database_at_once_migrate_it_once() {
    let Some((db, options)) = pg() else { return };
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let options = options.clone();
            std::thread::spawn(move || PgStore::open(&options).map(|s| s.schema_version()))
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.join().unwrap().unwrap().unwrap(), PG_SCHEMA_VERSION);
    }
    assert_eq!(db.psql("SELECT count(*) FROM exsync_schema"), "1");
}

#[test]
fn calls_from_an_async_service_run_on_blocking_threads() {
    let Some((_db, options)) = pg() else { return };
    let store: Arc<dyn Store> = Arc::new(PgStore::open(&options).unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let users = runtime.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = Arc::clone(&store);
            tasks.push(tokio::task::spawn_blocking(move || {
                let who = user(&format!("u{i}"));
                let mut pass = commit(&who, i);
                pass.upserts = vec![contact(&format!("003{i}"), &format!("X{i}"), "Lovelace")];
                store.commit_pass(&pass).map(|_| ())
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        // A handler that calls the store straight from async code, as the console's status
        // pages do, must not panic on the client's own runtime.
        store.list_users().unwrap()
    });
    assert_eq!(users.len(), 8);
    assert!(users.iter().all(|u| u.contact_pairs == 1));
}

#[test]
fn the_pool_replaces_connections_the_server_dropped() {
    let Some((db, options)) = pg() else { return };
    let store = PgStore::open(&options).unwrap();
    store.ensure_user(&user("alice")).unwrap();
    // What a server restart or failover does to every open session.
    let killed = db.psql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    );
    assert_eq!(killed, "1", "the store's one pooled connection");
    std::thread::sleep(Duration::from_millis(2_100));
    assert!(store.user_status(&user("alice")).unwrap().is_some());
}

#[test]
fn commits_for_one_user_from_two_workers_take_turns() {
    let Some((_db, options)) = pg() else { return };
    let store = Arc::new(PgStore::open(&options).unwrap());
    let alice = user("alice");
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let store = Arc::clone(&store);
            let alice = alice.clone();
            std::thread::spawn(move || {
                for j in 0..5 {
                    let mut pass = commit(&alice, i * 10 + j);
                    pass.upserts = vec![contact(
                        &format!("003-{i}-{j}"),
                        &format!("X-{i}-{j}"),
                        "Lovelace",
                    )];
                    store.commit_pass(&pass).unwrap();
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    assert_eq!(store.pair_count(&alice, ItemKind::Contact).unwrap(), 20);
    assert_eq!(store.runs(&alice, 100).unwrap().len(), 20);
}

#[test]
fn tls_is_verified_against_the_ca_file_and_used() {
    let Some(db) = exsync_testkit::postgres::database() else {
        return;
    };
    // sslmode is not given: a TCP host means TLS, verified.
    let mut options = PgOptions::new(db.tls_url());
    options.tls = crate::PgTls::CaFile(db.ca_file());
    let store = PgStore::open(&options).unwrap();
    store.ensure_user(&user("alice")).unwrap();
    assert!(store.user_status(&user("alice")).unwrap().is_some());
    assert_eq!(
        db.psql(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = current_database() AND a.application_name = 'exsync' AND s.ssl"
        ),
        "1",
        "the store's connection is encrypted"
    );

    // The system roots do not know the test CA: the connection is refused, nothing sent.
    let err = PgStore::open(&PgOptions::new(db.tls_url())).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("certificate") || text.contains("UnknownIssuer"),
        "{text}"
    );
}
