//! The workers benchmark: one `exsync run` worker against three on a throwaway PostgreSQL,
//! each time with fresh simulators set up alike (the sync benchmark's: its throttling
//! budgets, eight users at a time per process). For each: the first sync's users finished per
//! second, then what the running workers ask for over three poll intervals once nothing
//! changes (EWS requests per user pass, CRM calls). Then the same no-change pass over 1,000 users, with one worker and with three: the
//! CRM is read once per pass for the org, so its calls must not grow with users or workers.
//! Prints figures; asserts nothing.
//!
//!     bench/workers.sh [--users 48] [--contacts 100] [--events 50] [--idle-users 1000]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use exsync_lab::bench::{arg, counters, exsync_binary};
use exsync_lab::{Lab, LabOptions, Seed};
use exsync_pgcluster::Cluster;

const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// Users a process syncs at once, as in the sync benchmark; also the users a worker takes at
/// a time, so a worker is never short of work its concurrency could do.
const CONCURRENCY: usize = 8;
/// How long the no-change passes are counted: three of the lab's poll intervals (10 s).
const IDLE_WINDOW: Duration = Duration::from_secs(30);
/// How long a phase may take before the benchmark gives up.
const PHASE_WITHIN: Duration = Duration::from_secs(1800);

/// A lab of `users` on a fresh database `name` of the cluster, seeded, with a configuration
/// for workers.
async fn lab(
    cluster: &Cluster,
    name: &str,
    dir: &Path,
    users: usize,
    seed: &Seed,
) -> Result<(Lab, PathBuf)> {
    cluster.create_database(name)?;
    let mut options = LabOptions::new(dir.join(name), users);
    options.concurrency = CONCURRENCY;
    options.postgres_url = Some(cluster.url(name));
    let lab = Lab::start(options).await?;
    lab.seed(seed).await?;
    let config = dir.join(format!("{name}.toml"));
    lab.write_config(&config, MASTER_KEY)?;
    let text = std::fs::read_to_string(&config)?
        .replacen(
            "[store]\n",
            &format!("[store]\nworker_batch = {CONCURRENCY}\n"),
            1,
        )
        .replacen("[service]\n", "[service]\nmetrics_listen = false\n", 1);
    std::fs::write(&config, text)?;
    tokio::time::sleep(lab.options.crm_settle + Duration::from_millis(100)).await;
    Ok((lab, config))
}

/// `exsync run` processes, stopped with SIGTERM (then SIGKILL) when dropped.
struct Workers(Vec<Child>);

impl Workers {
    fn start(binary: &Path, config: &Path, n: usize) -> Result<Workers> {
        let mut children = Vec::with_capacity(n);
        for _ in 0..n {
            children.push(
                Command::new(binary)
                    .args(["run", "--config"])
                    .arg(config)
                    .env("EXSYNC_MASTER_KEY", MASTER_KEY)
                    .env("RUST_LOG", "error")
                    .stdout(Stdio::null())
                    .spawn()
                    .context("starting exsync run")?,
            );
        }
        Ok(Workers(children))
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &self.0 {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for child in &mut self.0 {
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Users whose `round`-th pass (1 = the first) ended without an error.
fn users_done(cluster: &Cluster, db: &str, round: usize) -> Result<usize> {
    let count = cluster.psql(
        db,
        &format!(
            "SELECT count(*) FROM (SELECT user_key FROM runs WHERE error IS NULL \
             GROUP BY user_key HAVING count(*) >= {round}) t"
        ),
    )?;
    count
        .parse()
        .with_context(|| format!("counting finished users: {count:?}"))
}

/// Waits until every user's `round`-th pass ended; the seconds it took from `since`.
async fn round_done(
    cluster: &Cluster,
    db: &str,
    users: usize,
    round: usize,
    since: Instant,
) -> Result<f64> {
    loop {
        if users_done(cluster, db, round)? >= users {
            return Ok(since.elapsed().as_secs_f64());
        }
        if since.elapsed() > PHASE_WITHIN {
            bail!("{db}: round {round} did not end within {PHASE_WITHIN:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What one set of workers did.
struct Run {
    workers: usize,
    users: usize,
    first_sync_seconds: f64,
    first_sync_ews: u64,
    first_sync_crm: u64,
    /// Over [`IDLE_WINDOW`] once nothing changes: EWS requests, CRM calls, user passes.
    idle_ews: u64,
    idle_crm: u64,
    idle_user_passes: u64,
}

/// User passes recorded so far.
fn runs(cluster: &Cluster, db: &str) -> Result<u64> {
    let count = cluster.psql(db, "SELECT count(*) FROM runs")?;
    count
        .parse()
        .with_context(|| format!("counting passes: {count:?}"))
}

/// `workers` processes on a fresh lab: the first sync, timed, then (after the pass that reads
/// the workers' own writes back) one no-change pass, counted.
async fn run(
    cluster: &Cluster,
    binary: &Path,
    dir: &Path,
    db: &str,
    workers: usize,
    users: usize,
    seed: &Seed,
) -> Result<Run> {
    let (lab, config) = lab(cluster, db, dir, users, seed).await?;
    let (ews0, crm0) = counters(&lab).await?;
    let started = Instant::now();
    let running = Workers::start(binary, &config, workers)?;
    let first_sync_seconds = round_done(cluster, db, users, 1, started).await?;
    let (ews1, crm1) = counters(&lab).await?;
    println!(
        "{db}: {workers} worker(s) finished the first sync of {users} users in {first_sync_seconds:.1}s"
    );
    // Past the pass that reads the workers' own writes back, nothing changes: what the
    // running workers ask for over a few poll intervals is the cost of passes doing nothing.
    round_done(cluster, db, users, 2, started).await?;
    let ((ews2, crm2), runs2) = (counters(&lab).await?, runs(cluster, db)?);
    tokio::time::sleep(IDLE_WINDOW).await;
    let ((ews3, crm3), runs3) = (counters(&lab).await?, runs(cluster, db)?);
    drop(running);
    let check = lab.convergence().await?;
    if !check.converged() {
        bail!("{db}: not converged: {:?}", check.problems);
    }
    Ok(Run {
        idle_user_passes: runs3.saturating_sub(runs2),
        workers,
        users,
        first_sync_seconds,
        first_sync_ews: ews1 - ews0,
        first_sync_crm: crm1 - crm0,
        idle_ews: ews3 - ews2,
        idle_crm: crm3 - crm2,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let (users, contacts, events, idle_users) = (
        arg("--users", 48),
        arg("--contacts", 100),
        arg("--events", 50),
        arg("--idle-users", 1000),
    );
    let binary = exsync_binary("bench/workers.sh")?;
    let dir = tempfile::tempdir()?;
    let cluster = Cluster::start()?;
    println!(
        "PostgreSQL on 127.0.0.1:{}; {users} users × {contacts} contacts × {events} events, \
         {CONCURRENCY} users at a time per worker",
        cluster.port()
    );
    let seed = Seed {
        crm_contacts: contacts,
        crm_events: events,
        ..Seed::default()
    };
    let mut runs = Vec::new();
    for workers in [1, 3] {
        let db = format!("sync_{workers}");
        runs.push(run(&cluster, &binary, dir.path(), &db, workers, users, &seed).await?);
    }
    // Many users with little each: what a pass costs when nothing changed.
    let small = Seed {
        crm_contacts: 2,
        crm_events: 1,
        ..Seed::default()
    };
    for workers in [1, 3] {
        let db = format!("idle_{workers}");
        runs.push(
            run(
                &cluster,
                &binary,
                dir.path(),
                &db,
                workers,
                idle_users,
                &small,
            )
            .await?,
        );
    }

    println!(
        "\n{:<8} {:>6} {:>13} {:>9} {:>14} {:>16} {:>18} {:>17} {:>18}",
        "workers",
        "users",
        "first sync s",
        "users/s",
        "EWS req (1st)",
        "CRM calls (1st)",
        "idle user passes",
        "EWS req per pass",
        "idle CRM calls"
    );
    for r in &runs {
        println!(
            "{:<8} {:>6} {:>13.1} {:>9.2} {:>14} {:>16} {:>18} {:>17.2} {:>18}",
            r.workers,
            r.users,
            r.first_sync_seconds,
            r.users as f64 / r.first_sync_seconds.max(0.001),
            r.first_sync_ews,
            r.first_sync_crm,
            r.idle_user_passes,
            r.idle_ews as f64 / r.idle_user_passes.max(1) as f64,
            r.idle_crm
        );
    }
    let rate = |r: &Run| r.users as f64 / r.first_sync_seconds.max(0.001);
    println!(
        "\nfirst sync, 3 workers against 1: {:.2}× the users finished per second",
        rate(&runs[1]) / rate(&runs[0]).max(1e-9)
    );
    println!(
        "no change, over {} s ({} poll intervals): CRM calls {} / {} with 1 / 3 workers over \
         {users} users, {} / {} over {idle_users} users",
        IDLE_WINDOW.as_secs(),
        IDLE_WINDOW.as_secs() / 10,
        runs[0].idle_crm,
        runs[1].idle_crm,
        runs[2].idle_crm,
        runs[3].idle_crm,
    );
    Ok(())
}
