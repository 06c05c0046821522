//! The service on a PostgreSQL state database: `exsync sync` of the lab converges, a second
//! pass writes nothing, and the database password comes from a private file only.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use exsync_engine::sync::mailboxes::Backend;
use exsync_lab::{Lab, Seed};
use exsync_store::SyncState;
use exsync_testkit::cli::Cli;

use crate::{shared_key, MASTER_KEY};

async fn a_sync_on_postgres_converges_and_a_second_pass_writes_nothing(backend: Backend) {
    let Some(db) = exsync_testkit::postgres::database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut options = crate::lab_options(dir.path().join("lab"), 2, backend);
    options.crm_key_pem = Some(shared_key());
    options.postgres_url = Some(db.url());
    let lab = Lab::start(options).await.unwrap();
    lab.seed(&Seed {
        crm_contacts: 5,
        crm_events: 6,
        exchange_contacts: 3,
        exchange_events: 2,
        invalid_record: false,
    })
    .await
    .unwrap();
    let config = dir.path().join("exsync.toml");
    // The vault's secrets go into the PostgreSQL database, as `exsync secrets set` puts them.
    lab.write_config(&config, MASTER_KEY).unwrap();
    let password_file = dir.path().join("store-password");
    std::fs::write(&password_file, "not-needed-on-a-trusted-socket\n").unwrap();
    std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "[store]\n",
        &format!(
            "[store]\npassword_file = {:?}\n",
            password_file.display().to_string()
        ),
        1,
    );
    std::fs::write(&config, text).unwrap();
    let sync = || {
        Cli::new(env!("CARGO_BIN_EXE_exsync"))
            .args(["sync", "--config"])
            .arg(&config)
            .env("EXSYNC_MASTER_KEY", MASTER_KEY)
            .env_remove("EXSYNC_STORE_PASSWORD")
            .run()
    };

    let refused = sync();
    assert!(!refused.status.success());
    assert!(
        refused.stderr.contains("can be read by others") && refused.stderr.contains("chmod 600"),
        "{}",
        refused.stderr
    );
    std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600)).unwrap();

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let first = sync();
    assert!(first.status.success(), "{}\n{}", first.stdout, first.stderr);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = sync();
    assert!(
        second.status.success(),
        "{}\n{}",
        second.stdout,
        second.stderr
    );

    crate::served_by(&lab, backend);
    let check = lab.convergence().await.unwrap();
    assert!(check.converged(), "{:#?}", check.problems);
    assert!(check.pairs >= 16, "{check:#?}");
    for user in &lab.users {
        let runs = lab.syncer.store.runs(&user.key, 2).unwrap();
        assert_eq!(runs.len(), 2, "{runs:#?}");
        let last = runs[0].counts;
        assert_eq!(
            last.created + last.updated + last.deleted,
            0,
            "the second pass wrote: {last:?}"
        );
        assert!(runs[1].counts.created > 0, "{:?}", runs[1].counts);
    }
    assert!(
        !dir.path().join("lab").join("exsync.db").exists(),
        "nothing was kept in SQLite"
    );
    assert_eq!(
        db.psql("SELECT count(*) > 0 FROM pairs"),
        "t",
        "the pairs are in PostgreSQL"
    );
}

async fn after_store_copy_a_pass_on_postgres_creates_and_rematches_nothing(backend: Backend) {
    let Some(db) = exsync_testkit::postgres::database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut options = crate::lab_options(dir.path().join("lab"), 2, backend);
    options.crm_key_pem = Some(shared_key());
    let lab = Lab::start(options).await.unwrap();
    lab.seed(&Seed {
        crm_contacts: 5,
        crm_events: 4,
        exchange_contacts: 3,
        exchange_events: 2,
        invalid_record: true,
    })
    .await
    .unwrap();
    let config = dir.path().join("exsync.toml");
    lab.write_config(&config, MASTER_KEY).unwrap();
    let exsync = || {
        Cli::new(env!("CARGO_BIN_EXE_exsync"))
            .arg("--config")
            .arg(&config)
            .env("EXSYNC_MASTER_KEY", MASTER_KEY)
            .env_remove("EXSYNC_STORE_PASSWORD")
    };
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let first = exsync().arg("sync").run();
    assert!(first.status.success(), "{}\n{}", first.stdout, first.stderr);

    let copied = exsync().args(["store", "copy", "--to"]).arg(db.url()).run();
    assert!(
        copied.status.success(),
        "{}\n{}",
        copied.stdout,
        copied.stderr
    );
    assert!(copied.stdout.contains("pairs"), "{}", copied.stdout);
    let again = exsync().args(["store", "copy", "--to"]).arg(db.url()).run();
    assert!(!again.status.success());
    assert!(again.stderr.contains("already holds"), "{}", again.stderr);

    // The service now runs on PostgreSQL, with the secrets the copy carried.
    let sqlite_path = dir.path().join("lab").join("exsync.db");
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        &format!("path = {:?}", sqlite_path.display().to_string()),
        &format!("url = {:?}", db.url()),
        1,
    );
    assert!(text.contains("url = "), "{text}");
    std::fs::write(&config, text).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before_second = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.9fZ")
        .to_string();
    let second = exsync().arg("sync").run();
    assert!(
        second.status.success(),
        "{}\n{}",
        second.stdout,
        second.stderr
    );
    // Re-matching would write the pairs again, even with the same ids.
    assert_eq!(
        db.psql(&format!(
            "SELECT count(*) FROM pairs WHERE updated_at >= '{before_second}'"
        )),
        "0",
        "the pass after the copy rewrote pairs"
    );

    let pg = exsync_store::PgStore::open(&exsync_store::PgOptions::new(db.conninfo())).unwrap();
    for user in &lab.users {
        let runs = pg.runs(&user.key, 1).unwrap();
        let last = runs[0].counts;
        assert_eq!(
            last.created + last.updated + last.deleted,
            0,
            "the pass after the copy wrote: {last:?}"
        );
        for kind in exsync_engine::sync::pass::KINDS {
            assert_eq!(
                pg.load_pairs(&user.key, kind).unwrap(),
                lab.syncer.store.load_pairs(&user.key, kind).unwrap(),
                "the pairs of {} moved unchanged and nothing was re-matched",
                user.key
            );
        }
    }
    crate::served_by(&lab, backend);
    let check = lab.convergence().await.unwrap();
    assert!(check.converged(), "{:#?}", check.problems);
}

crate::on_each_backend!(
    a_sync_on_postgres_converges_and_a_second_pass_writes_nothing,
    after_store_copy_a_pass_on_postgres_creates_and_rematches_nothing,
);
