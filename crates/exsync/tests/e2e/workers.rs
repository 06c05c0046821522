//! Several `exsync run` workers on one PostgreSQL database, as real processes: they share a
//! first sync that takes several batches, one is killed with SIGKILL in the middle and the
//! others finish its users with nothing lost and nothing copied twice, then carry changes
//! made on both sides (the CRM's through the shared read); twenty such kills; and a worker stopped
//! past its lease and then resumed cannot commit over the worker that took its user over.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use exsync_core::ItemKind;
use exsync_engine::sync::mailboxes::Backend;
use exsync_lab::{crm_contact, Lab, Seed};
use serde_json::json;

use crate::{shared_key, MASTER_KEY};

/// Short leases, so a dead or stopped worker's users move on within seconds.
pub(super) const LEASE_SECS: u64 = 2;

/// A lab on the PostgreSQL database at `url`, and a configuration for workers that take one
/// user at a time on short leases.
pub(super) async fn lab(
    url: String,
    dir: &Path,
    users: usize,
    seed: &Seed,
    backend: Backend,
) -> (Lab, PathBuf) {
    let mut options = crate::lab_options(dir.join("lab"), users, backend);
    options.crm_key_pem = Some(shared_key());
    options.postgres_url = Some(url);
    let lab = Lab::start(options).await.unwrap();
    lab.seed(seed).await.unwrap();
    let config = dir.join("exsync.toml");
    lab.write_config(&config, MASTER_KEY).unwrap();
    // One user per batch, so a first sync spans several batches and every worker gets some.
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "[store]\n",
        &format!("[store]\nlease_secs = {LEASE_SECS}\nworker_batch = 1\n"),
        1,
    );
    std::fs::write(&config, text).unwrap();
    // The CRM connector leaves the last second's records for the next pass.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    (lab, config)
}

/// An `exsync run` process, with its metrics on a port of its own.
pub(super) struct Worker {
    pub(super) child: Child,
    log: PathBuf,
    /// Where its /metrics and /readyz answer.
    pub(super) metrics: String,
}

/// A loopback port free now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Worker {
    pub(super) fn spawn(config: &Path, log: PathBuf, env: &[(&str, &str)]) -> Worker {
        let metrics = format!("127.0.0.1:{}", free_port());
        let mut command = Command::new(env!("CARGO_BIN_EXE_exsync"));
        command
            .args(["run", "--metrics-listen", &metrics, "--config"])
            .arg(config)
            .env("EXSYNC_MASTER_KEY", MASTER_KEY)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap());
        for (name, value) in env {
            command.env(name, value);
        }
        Worker {
            child: command.spawn().expect("exsync runs"),
            log,
            metrics,
        }
    }

    pub(super) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal}");
    }

    /// Whether the process is stopped (state `T` in /proc).
    fn stopped(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .ok()
            .and_then(|stat| {
                let after = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
                Some(after == 'T')
            })
            .unwrap_or(false)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `exsync status` prints.
pub(super) fn exsync_status(config: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_exsync"))
        .args(["status", "--config"])
        .arg(config)
        .env("EXSYNC_MASTER_KEY", MASTER_KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until every user has committed a pass and both sides agree.
pub(super) async fn converged(lab: &Lab, workers: &[&Worker], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if all_ran(lab) {
            let check = lab.convergence().await.unwrap();
            if check.converged() {
                return;
            }
            if Instant::now() > deadline {
                panic!("{:#?}", check.problems);
            }
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = workers.iter().map(|w| w.log()).collect();
            panic!(
                "the workers did not finish in {within:?}:\n{}",
                logs.join("\n----\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Whether every user's last run finished without an error.
pub(super) fn all_ran(lab: &Lab) -> bool {
    lab.users.iter().all(|u| {
        lab.syncer
            .store
            .runs(&u.key, 1)
            .unwrap()
            .first()
            .is_some_and(|r| r.error.is_none())
    })
}

/// Pairs equal to both sides' records, one each: nothing lost, nothing copied twice, and every
/// user served by `backend`.
pub(super) async fn nothing_lost_nothing_doubled(lab: &Lab, per_user: usize, backend: Backend) {
    crate::served_by(lab, backend);
    let check = lab.convergence().await.unwrap();
    assert!(check.converged(), "{:#?}", check.problems);
    assert_eq!(check.pairs, per_user * lab.users.len(), "{check:#?}");
    assert_eq!(check.crm_records, check.pairs, "{check:#?}");
    assert_eq!(check.exchange_items, check.pairs, "{check:#?}");
}

async fn three_workers_share_a_first_sync_and_finish_the_users_of_one_killed_midway(
    backend: Backend,
) {
    let Some(db) = exsync_testkit::postgres::database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let seed = Seed {
        crm_contacts: 6,
        crm_events: 3,
        exchange_contacts: 3,
        exchange_events: 2,
        invalid_record: false,
    };
    let (lab, config) = lab(db.url(), dir.path(), 6, &seed, backend).await;
    let workers: Vec<Worker> = (0..3)
        .map(|i| Worker::spawn(&config, dir.path().join(format!("worker{i}.log")), &[]))
        .collect();

    // Kill, mid-sync, a worker that holds a user, once some users are done.
    let deadline = Instant::now() + Duration::from_secs(60);
    let victim = loop {
        assert!(Instant::now() < deadline, "no worker took a user");
        let done = db.psql("SELECT count(*) FROM runs");
        let holder = db.psql(
            "SELECT holder FROM user_lease WHERE holder IS NOT NULL ORDER BY user_key LIMIT 1",
        );
        let pid = holder
            .rsplit('-')
            .next()
            .and_then(|p| p.trim().parse::<u32>().ok());
        if done != "0" {
            if let Some(victim) = workers.iter().position(|w| Some(w.child.id()) == pid) {
                break victim;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    workers[victim].signal("KILL");
    let alive: Vec<&Worker> = workers
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, w)| w)
        .collect();
    converged(&lab, &alive, Duration::from_secs(120)).await;
    nothing_lost_nothing_doubled(&lab, 6 + 3 + 3 + 2, backend).await;

    if std::env::var("LEASE_DEBUG").is_ok() {
        for w in &workers {
            eprintln!("==== {} ====\n{}", w.child.id(), w.log());
        }
        eprintln!(
            "{}",
            db.psql("SELECT user_key, count(*) FROM runs GROUP BY 1")
        );
    }
    // Then changes on both sides: the CRM's reach each user through the read one worker does
    // for all and the inbox it fills; the mailbox's through whichever worker syncs the user.
    for (u, user) in lab.users.iter().enumerate() {
        let title = format!("Title {u}");
        lab.edit_crm(user, ItemKind::Contact, &crm_contact(u, 0).last_name, |f| {
            f.insert("title".into(), json!(title));
        })
        .await
        .unwrap();
        let department = format!("Dept {u}");
        lab.edit_exchange(user, ItemKind::Contact, &crm_contact(u, 1).last_name, |f| {
            f.insert("department".into(), json!(department));
        })
        .await
        .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for (u, user) in lab.users.iter().enumerate() {
        loop {
            let in_exchange = lab
                .exchange_item(user, ItemKind::Contact, &crm_contact(u, 0).last_name)
                .await
                .unwrap();
            let in_crm = lab
                .crm_record(user, ItemKind::Contact, &crm_contact(u, 1).last_name)
                .await
                .unwrap();
            if in_exchange.fields.get("title") == Some(&json!(format!("Title {u}")))
                && in_crm.fields.get("department") == Some(&json!(format!("Dept {u}")))
            {
                break;
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = alive.iter().map(|w| w.log()).collect();
                panic!(
                    "{}'s changes did not cross: {in_exchange:?} / {in_crm:?}\n{}",
                    user.key,
                    logs.join("\n----\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    converged(&lab, &alive, Duration::from_secs(60)).await;
    nothing_lost_nothing_doubled(&lab, 6 + 3 + 3 + 2, backend).await;
    assert!(
        alive
            .iter()
            .any(|w| w.log().contains("Read the CRM for every worker.")),
        "one worker read the CRM for all"
    );

    // Every worker alive took users: the work was shared, not done by one.
    for worker in &alive {
        assert!(
            worker.log().contains("Took a batch of users."),
            "{}",
            worker.log()
        );
    }
    // The killed worker's users were taken over once its leases lapsed.
    let leases = lab.syncer.store.leases().unwrap();
    assert!(
        leases.iter().all(|l| !l
            .holder
            .ends_with(&format!("-{}", workers[victim].child.id()))
            || l.expired),
        "{leases:#?}"
    );
}

async fn workers_killed_at_twenty_moments_of_a_first_sync_lose_nothing_and_copy_nothing_twice(
    backend: Backend,
) {
    let Some(db) = exsync_testkit::postgres::database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let seed = Seed {
        crm_contacts: 20,
        crm_events: 6,
        exchange_contacts: 6,
        exchange_events: 2,
        invalid_record: false,
    };
    let (lab, config) = lab(db.url(), dir.path(), 8, &seed, backend).await;
    let log = |n: usize| dir.path().join(format!("worker{n}.log"));
    let mut workers: Vec<Worker> = (0..3)
        .map(|i| Worker::spawn(&config, log(i), &[]))
        .collect();
    // Twenty times: find a worker in the middle of a user's pass, let it go on for a varying
    // moment, SIGKILL it and start a fresh one in its place, as a supervisor would.
    for kill in 0..20u64 {
        let spawned = 3 + kill as usize;
        let deadline = Instant::now() + Duration::from_secs(30);
        let victim = loop {
            assert!(
                Instant::now() < deadline,
                "kill {kill}: no worker held a user"
            );
            let holder = db.psql(
                "SELECT holder FROM user_lease WHERE holder IS NOT NULL AND expires_at > now() \
                 ORDER BY random() LIMIT 1",
            );
            let pid = holder
                .rsplit('-')
                .next()
                .and_then(|p| p.trim().parse::<u32>().ok());
            if let Some(victim) = workers.iter().position(|w| Some(w.child.id()) == pid) {
                break victim;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        tokio::time::sleep(Duration::from_millis((kill * 37) % 150)).await;
        workers[victim].signal("KILL");
        workers[victim] = Worker::spawn(&config, log(spawned), &[]);
    }
    let alive: Vec<&Worker> = workers.iter().collect();
    converged(&lab, &alive, Duration::from_secs(120)).await;
    nothing_lost_nothing_doubled(&lab, 20 + 6 + 6 + 2, backend).await;
}

#[cfg(feature = "failpoints")]
async fn a_worker_stopped_past_its_lease_cannot_commit_over_its_successor(backend: Backend) {
    use exsync_engine::failpoints::{ACTION_ENV, BEFORE_FINAL_COMMIT, ENV};

    let Some(db) = exsync_testkit::postgres::database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let seed = Seed {
        crm_contacts: 4,
        crm_events: 2,
        exchange_contacts: 2,
        exchange_events: 1,
        invalid_record: false,
    };
    let (lab, config) = lab(db.url(), dir.path(), 2, &seed, backend).await;
    // The stalled worker stops itself just before its first user's final commit.
    let stalled = Worker::spawn(
        &config,
        dir.path().join("stalled.log"),
        &[(ENV, BEFORE_FINAL_COMMIT), (ACTION_ENV, "stop")],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stalled.stopped() {
        assert!(Instant::now() < deadline, "{}", stalled.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stalled_user = db.psql(&format!(
        "SELECT user_key FROM user_lease WHERE holder LIKE '%-{}'",
        stalled.child.id()
    ));
    assert!(!stalled_user.is_empty(), "the stopped worker holds a user");

    // `exsync status` says which worker holds the user, and then that its lease lapsed.
    let stalled_id = format!("-{}", stalled.child.id());
    let status = exsync_status(&config);
    assert!(
        status.contains(&format!("user {stalled_user}: held by ")) && status.contains(&stalled_id),
        "{status}"
    );
    tokio::time::sleep(Duration::from_secs(LEASE_SECS + 1)).await;
    let status = exsync_status(&config);
    assert!(status.contains("LAPSED"), "{status}");

    // Past its lease, another worker takes its user over and finishes everything.
    let successor = Worker::spawn(&config, dir.path().join("successor.log"), &[]);
    converged(&lab, &[&successor], Duration::from_secs(90)).await;
    nothing_lost_nothing_doubled(&lab, 4 + 2 + 2 + 1, backend).await;
    let before = db.psql(
        "SELECT user_key, kind, crm_id, exchange_id, content_hash FROM pairs ORDER BY 1, 2, 3",
    );
    let runs_before = db.psql(&format!(
        "SELECT count(*) FROM runs WHERE user_key = '{stalled_user}'"
    ));

    // Resumed, the stalled worker's commit is refused by the fence.
    stalled.signal("CONT");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stalled
        .log()
        .contains("Lease lost: this user's pass stopped without committing")
    {
        assert!(Instant::now() < deadline, "{}", stalled.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stalled.signal("KILL");
    let log = stalled.log();
    assert!(
        log.contains("commit pass: refused, nothing written") && log.contains("took it over"),
        "{log}"
    );
    assert_eq!(
        db.psql(
            "SELECT user_key, kind, crm_id, exchange_id, content_hash FROM pairs ORDER BY 1, 2, 3"
        ),
        before,
        "the stalled worker changed no pair"
    );
    assert_eq!(
        db.psql(&format!(
            "SELECT count(*) FROM runs WHERE user_key = '{stalled_user}'"
        )),
        runs_before,
        "the stalled worker recorded no pass"
    );
    nothing_lost_nothing_doubled(&lab, 4 + 2 + 2 + 1, backend).await;
}

/// Workers started while another is still reading the CRM for the first time wait for that
/// read instead of taking users they cannot sync yet, which would then wait a whole poll
/// interval: the first sync ends within one pass of every worker.
#[cfg(feature = "failpoints")]
async fn workers_wait_for_the_first_crm_read_instead_of_putting_users_off(backend: Backend) {
    use exsync_engine::failpoints::{HOLD_ENV, ORG_READ_UNDELIVERED};

    let Some(db) = exsync_testkit::postgres::database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let seed = Seed {
        crm_contacts: 3,
        crm_events: 1,
        exchange_contacts: 1,
        exchange_events: 1,
        invalid_record: false,
    };
    let (lab, config) = lab(db.url(), dir.path(), 6, &seed, backend).await;
    // A lease long enough that the others' wait (one lease) outlasts the held read.
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        &format!("lease_secs = {LEASE_SECS}"),
        "lease_secs = 8",
        1,
    );
    std::fs::write(&config, text).unwrap();
    let reader = Worker::spawn(
        &config,
        dir.path().join("reader.log"),
        &[(HOLD_ENV, &format!("{ORG_READ_UNDELIVERED}:3000"))],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.psql("SELECT count(*) FROM org_lease WHERE holder IS NOT NULL") != "1" {
        assert!(Instant::now() < deadline, "{}", reader.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The others start while the reader holds its read back.
    let others: Vec<Worker> = (0..2)
        .map(|i| Worker::spawn(&config, dir.path().join(format!("worker{i}.log")), &[]))
        .collect();
    let all: Vec<&Worker> = std::iter::once(&reader).chain(others.iter()).collect();
    // Within the first pass: a user put off would wait out the 10 s poll interval.
    converged(&lab, &all, Duration::from_secs(9)).await;
    let logs: Vec<String> = all.iter().map(|w| w.log()).collect();
    let all_logs = logs.join("\n----\n");
    assert!(
        others.iter().any(|w| w
            .log()
            .contains("Waiting for another worker's first read of the CRM")),
        "{all_logs}"
    );
    assert!(!all_logs.contains("syncs in a later pass"), "{all_logs}");
    nothing_lost_nothing_doubled(&lab, 3 + 1 + 1 + 1, backend).await;
}

/// `exsync sync` for one user beside running workers (alone or as a dry run) takes that
/// user's lease: while another worker holds the user it syncs nothing and names the holder,
/// and once the user is free it takes the lease (a new epoch), syncs and gives it back.
async fn a_pass_by_hand_for_one_user_takes_its_lease_or_names_the_worker_holding_it(
    backend: Backend,
) {
    use exsync_store::Leases;

    let Some(db) = exsync_testkit::postgres::database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let seed = Seed {
        crm_contacts: 2,
        crm_events: 1,
        exchange_contacts: 1,
        exchange_events: 1,
        invalid_record: false,
    };
    let (lab, config) = lab(db.url(), dir.path(), 2, &seed, backend).await;
    let user = lab.users[0].key.clone();
    let by_hand = |dry_run: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_exsync"));
        command
            .args(["sync", "--user", user.as_str(), "--config"])
            .arg(&config)
            .env("EXSYNC_MASTER_KEY", MASTER_KEY);
        if dry_run {
            command.arg("--dry-run");
        }
        let out = command.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let lease_row = || {
        db.psql(&format!(
            "SELECT epoch || ' ' || coalesce(holder, '-') FROM user_lease WHERE user_key = '{}'",
            user.as_str()
        ))
    };

    // Another worker holds the user.
    let elsewhere =
        exsync_store::PgStore::open(&exsync_store::PgOptions::new(db.conninfo())).unwrap();
    let held = elsewhere
        .acquire_users(
            "worker-elsewhere-7",
            std::slice::from_ref(&user),
            1,
            Duration::from_secs(120),
            Duration::ZERO,
        )
        .unwrap();
    assert_eq!(held.len(), 1);
    for dry_run in [false, true] {
        let (ok, text) = by_hand(dry_run);
        assert!(!ok, "dry run {dry_run}: {text}");
        assert!(
            text.contains("worker worker-elsewhere-7 is syncing this user now"),
            "dry run {dry_run}: {text}"
        );
    }
    assert_eq!(
        lease_row(),
        "1 worker-elsewhere-7",
        "the holder kept the user"
    );
    assert_eq!(
        db.psql("SELECT count(*) FROM runs"),
        "0",
        "nothing was synced"
    );

    // Free, the user is taken (epoch 2), synced and given back.
    elsewhere.release(&held[0]).unwrap();
    let (ok, text) = by_hand(false);
    assert!(ok, "{text}");
    assert_eq!(lease_row(), "2 -");
    assert_eq!(
        db.psql(&format!(
            "SELECT count(*) FROM runs WHERE user_key = '{}' AND error IS NULL",
            user.as_str()
        )),
        "1"
    );
    let runs = lab.syncer.store.runs(&user, 1).unwrap();
    assert_eq!(
        runs[0].backend.as_deref(),
        Some(backend.as_str()),
        "{runs:?}"
    );
}

crate::on_each_backend!(
    three_workers_share_a_first_sync_and_finish_the_users_of_one_killed_midway,
    workers_killed_at_twenty_moments_of_a_first_sync_lose_nothing_and_copy_nothing_twice,
    a_worker_stopped_past_its_lease_cannot_commit_over_its_successor,
    workers_wait_for_the_first_crm_read_instead_of_putting_users_off,
    a_pass_by_hand_for_one_user_takes_its_lease_or_names_the_worker_holding_it,
);
