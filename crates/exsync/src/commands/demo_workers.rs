//! `exsync demo --workers N`: the simulators, a throwaway PostgreSQL, and N `exsync run`
//! processes sharing one first sync through it. One worker is killed with SIGKILL while it
//! holds a user; the others take its users over once its leases lapse and finish them. The
//! demo prints who held each user and who finished it, checks both sides agree, stops the
//! workers and removes the database.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use exsync_core::UserKey;
use exsync_lab::{Lab, LabOptions, Seed};
use exsync_store::LeaseScope;

/// How long a lease lasts unless renewed: short, so the killed worker's users move on within
/// seconds.
const LEASE_SECS: u64 = 3;
/// How long the first sync may take, the takeover included.
const FINISH_WITHIN: Duration = Duration::from_secs(180);
/// How often the demo looks at who holds what.
const WATCH_EVERY: Duration = Duration::from_millis(40);
/// What a worker logs as it commits a user's pass.
const COMMITTED: &str = "Committed a user's pass.";
/// How long a worker told to stop may take to finish the user it is on.
const STOP_WITHIN: Duration = Duration::from_secs(30);

/// What the demo runs.
pub struct WorkersDemo {
    pub workers: usize,
    pub users: usize,
    pub contacts: usize,
    pub events: usize,
    pub dir: Option<PathBuf>,
}

/// One `exsync run` process.
struct Worker {
    number: usize,
    child: Child,
    log: PathBuf,
    killed: bool,
}

impl Worker {
    /// Whether a lease holder's name is this worker's (the default name ends in its pid).
    fn holds_as(&self, holder: &str) -> bool {
        holder.rsplit_once('-').map(|(_, pid)| pid) == Some(&self.child.id().to_string())
    }

    fn name(&self) -> String {
        if self.killed {
            format!("worker {} (killed)", self.number)
        } else {
            format!("worker {}", self.number)
        }
    }

    /// When this worker committed a pass of each user, from its log (one JSON object a line,
    /// stamped in UTC, so the stamps order as text).
    fn commits(&self) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|v| v["fields"]["message"] == COMMITTED)
            .filter_map(|v| {
                let at = v["timestamp"].as_str()?.to_owned();
                Some((at, v["fields"]["user"].as_str()?.to_owned()))
            })
            .collect()
    }

    /// The last lines of its log, for a demo that went wrong.
    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// SIGTERM, then up to [`STOP_WITHIN`] to finish, then SIGKILL.
    fn stop(&mut self) {
        if self.killed {
            let _ = self.child.wait();
            return;
        }
        let terminated = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .map(|pid| rustix::process::kill_process(pid, rustix::process::Signal::TERM));
        if matches!(terminated, Some(Ok(()))) {
            let deadline = Instant::now() + STOP_WITHIN;
            while Instant::now() < deadline {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the demo; `Ok(true)` when it converged with the killed worker's users finished by
/// the others.
pub async fn run(options: &WorkersDemo) -> Result<bool> {
    if options.workers < 2 {
        bail!("--workers needs at least 2: one is killed and another finishes its users");
    }
    if options.contacts < 1 || options.events < 1 {
        bail!("the demo needs at least 1 contact and 1 event per user");
    }
    // Enough users that every worker takes some and the killed one leaves some behind.
    let users = options.users.max(3 * options.workers);
    let cluster = exsync_pgcluster::Cluster::start()
        .context("exsync demo --workers runs its workers on a throwaway PostgreSQL")?;
    cluster.create_database("exsync_demo")?;
    let (dir, _temp) = exsync_lab::demo::demo_dir(options.dir.as_ref())?;
    println!(
        "exsync demo --workers {}: {users} users, each with {} contacts and {} events in the CRM and a few of their own in Outlook,\n\
         synced by {} `exsync run` processes sharing a throwaway PostgreSQL on 127.0.0.1:{} (leases of {LEASE_SECS} s, one user at a time).",
        options.workers, options.contacts, options.events, options.workers, cluster.port()
    );
    let mut lab_options = LabOptions::new(dir.join("lab"), users);
    lab_options.postgres_url = Some(cluster.url("exsync_demo"));
    let lab = Lab::start(lab_options).await?;
    lab.seed(&Seed {
        crm_contacts: options.contacts,
        crm_events: options.events,
        exchange_contacts: (options.contacts / 5).max(1),
        exchange_events: (options.events / 5).max(1),
        invalid_record: false,
    })
    .await?;
    let key = exsync_engine::vault::MasterKey::generate().to_base64();
    let config = dir.join("exsync.toml");
    write_config(&lab, &config, &key)?;
    // The CRM connector leaves the last second's records for the next pass.
    tokio::time::sleep(lab.options.crm_settle + Duration::from_millis(100)).await;

    let program = std::env::current_exe().context("finding the exsync program")?;
    let mut workers = Vec::with_capacity(options.workers);
    for number in 1..=options.workers {
        let log = dir.join(format!("worker{number}.log"));
        let child = Command::new(&program)
            .args(["run", "--log-format", "json", "--config"])
            .arg(&config)
            .env("EXSYNC_MASTER_KEY", key.as_str())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).with_context(|| format!("creating {}", log.display()))?)
            .spawn()
            .context("starting an exsync run worker")?;
        println!("Started worker {number} (pid {}).", child.id());
        workers.push(Worker {
            number,
            child,
            log,
            killed: false,
        });
    }

    let outcome = watch(&lab, &mut workers).await;
    for worker in &mut workers {
        worker.stop();
    }
    let (held_by, victim) = match outcome {
        Ok(seen) => seen,
        Err(e) => {
            for worker in &workers {
                eprintln!(
                    "--- {} log ({}):\n{}",
                    worker.name(),
                    worker.log.display(),
                    worker.tail()
                );
            }
            return Err(e);
        }
    };

    // Whoever committed a user's first pass finished the user; later passes change nothing.
    let mut finished_by: BTreeMap<String, (String, String)> = BTreeMap::new();
    for worker in &workers {
        for (at, user) in worker.commits() {
            let first = finished_by
                .entry(user)
                .or_insert_with(|| (at.clone(), worker.name()));
            if at < first.0 {
                *first = (at, worker.name());
            }
        }
    }
    println!(
        "\n  {:<26} {:<40} first sync finished by",
        "user", "held by, in turn"
    );
    let mut taken_over = 0;
    for user in &lab.users {
        let held: Vec<String> = held_by
            .get(&user.key)
            .map(|numbers| numbers.iter().map(|n| workers[*n].name()).collect())
            .unwrap_or_default();
        let finished = finished_by
            .get(user.key.as_str())
            .map(|(_, name)| name.clone())
            .unwrap_or_else(|| "-".to_owned());
        if held.iter().any(|h| h.ends_with("(killed)")) && !finished.ends_with("(killed)") {
            taken_over += 1;
        }
        let held = if held.is_empty() {
            "-".to_owned()
        } else {
            held.join(" → ")
        };
        println!("  {:<26} {held:<40} {finished}", user.key.as_str());
    }
    let check = lab.convergence().await?;
    let converged = check.converged();
    println!();
    exsync_lab::demo::print_convergence(&check);
    println!(
        "Worker {} was killed while it held a user; the other workers finished {taken_over} of the users it had held.",
        workers[victim].number
    );
    drop(lab);
    drop(cluster);
    println!("Stopped the workers and removed the throwaway PostgreSQL.");
    Ok(converged && taken_over > 0)
}

/// Who held each user in turn (worker indexes), and which worker was killed: watches the
/// leases until a worker holds a user after some user finished, kills it, and goes on until
/// every user's last pass succeeded and both sides agree.
async fn watch(
    lab: &Lab,
    workers: &mut [Worker],
) -> Result<(BTreeMap<UserKey, Vec<usize>>, usize)> {
    let store = &lab.syncer.store;
    let deadline = Instant::now() + FINISH_WITHIN;
    let mut held_by: BTreeMap<UserKey, Vec<usize>> = BTreeMap::new();
    let mut victim: Option<usize> = None;
    let mut last_check = Instant::now();
    loop {
        if Instant::now() > deadline {
            bail!("the workers did not finish the first sync within {FINISH_WITHIN:?}");
        }
        for lease in store.leases()? {
            let LeaseScope::User(user) = &lease.scope else {
                continue;
            };
            if lease.expired {
                continue;
            }
            if let Some(n) = workers.iter().position(|w| w.holds_as(&lease.holder)) {
                let seen = held_by.entry(user.clone()).or_default();
                if seen.last() != Some(&n) {
                    seen.push(n);
                }
                // A user still to finish, so the kill cuts a first pass short.
                if victim.is_none()
                    && finished(lab)? > 0
                    && store
                        .runs(user, 1)?
                        .first()
                        .is_none_or(|r| r.error.is_some())
                {
                    workers[n].killed = true;
                    workers[n].child.kill().context("killing a worker")?;
                    println!(
                        "Killed worker {} (pid {}) with SIGKILL in the middle of the first sync, while it held {}.",
                        workers[n].number,
                        workers[n].child.id(),
                        user
                    );
                    victim = Some(n);
                }
            }
        }
        if let Some(victim) = victim {
            if last_check.elapsed() > Duration::from_secs(1) && finished(lab)? == lab.users.len() {
                last_check = Instant::now();
                if lab.convergence().await?.converged() {
                    return Ok((held_by, victim));
                }
            }
        }
        for worker in workers.iter_mut().filter(|w| !w.killed) {
            if let Ok(Some(status)) = worker.child.try_wait() {
                bail!("worker {} ended by itself ({status})", worker.number);
            }
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
}

/// How many users' last pass ran to its end.
fn finished(lab: &Lab) -> Result<usize> {
    let mut done = 0;
    for user in &lab.users {
        let last = lab.syncer.store.runs(&user.key, 1)?;
        if last.first().is_some_and(|r| r.error.is_none()) {
            done += 1;
        }
    }
    Ok(done)
}

/// The lab's configuration for workers: short leases, one user at a time, no metrics
/// listener (the workers share a host).
fn write_config(lab: &Lab, path: &Path, key: &str) -> Result<()> {
    lab.write_config(path, key)?;
    let text = std::fs::read_to_string(path)?;
    if !text.contains("[store]\n") || !text.contains("[service]\n") {
        bail!("the lab's configuration has no [store] or [service] section");
    }
    let text = text
        .replacen(
            "[store]\n",
            &format!("[store]\nlease_secs = {LEASE_SECS}\nworker_batch = 1\n"),
            1,
        )
        .replacen("[service]\n", "[service]\nmetrics_listen = false\n", 1);
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
