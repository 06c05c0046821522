//! The sync benchmark: an initial sync of U users × C contacts × E events, the pass that reads
//! our own writes back, a no-change pass, and a pass after 1% of the contacts changed on each
//! side. Each pass runs the real `exsync sync` as a child process; requests are counted by the
//! simulators and the child's peak RSS is read from /proc. Prints figures; asserts nothing.
//!
//! CPU is reported twice, apart: exsync's own (user+sys of the `exsync sync` child) and the
//! simulators' (user+sys of this process over the pass, which hosts both simulators), so a
//! slow simulator cannot pass for a slow exsync.
//!
//!     bench/sync.sh [--users 50] [--contacts 500] [--events 500] [--latency-ms 0]
//!                   [--per-user-concurrency N] [--contacts-only] [--import]
//!                   [--graph | --hybrid]
//!
//! `--latency-ms N` makes the Exchange simulator wait N ms before answering each EWS request
//! (as a remote server would), after seeding. `--graph` puts every mailbox in Exchange Online:
//! the Graph simulator serves them through `[exchange_online]`, its HTTP requests are counted
//! (a `$batch` is one), and the 1% pass changes contacts in the CRM only. `--hybrid` puts half
//! the mailboxes online and half on premises; the mailbox requests are then both kinds added.
//! `--import` syncs the mailboxes once before the CRM is seeded, so the records arrive as a
//! bulk load into synced mailboxes, in a pass that starts from stored cursors.
//! `--contacts-only` syncs contacts alone (events' direction "off"), so no calendar is read.
//! `--per-user-concurrency N` sets `service.per_user_concurrency` (requests, and so write
//! batches, out at once per mailbox) instead of its default.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use exsync_core::config::Direction;
use exsync_core::{ItemKind, Side};
use exsync_lab::bench::{arg, counters, ews_operations, exsync_binary, flag};
use exsync_lab::{crm_contact, lab_configuration, Lab, LabOptions, Seed};
use reqwest::Method;
use serde_json::json;

// The simulators this process hosts allocate as they do in `exsync demo`, whose binary uses
// mimalloc: with glibc's malloc, their CPU was mostly allocation and outgrew exsync's own.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

struct Figures {
    phase: &'static str,
    seconds: f64,
    items: u64,
    ews_requests: u64,
    crm_calls: u64,
    peak_rss_kib: u64,
    /// User+sys CPU of the `exsync sync` child.
    exsync_cpu: Duration,
    /// User+sys CPU of this process (the simulators) over the pass.
    sims_cpu: Duration,
}

/// Whose CPU time [`cpu_time`] reads.
#[derive(Clone, Copy)]
enum Whose {
    /// This process: the simulators (and the little the benchmark itself does).
    Mine,
    /// The children already waited for: the `exsync sync` passes.
    Children,
}

/// User+sys CPU time so far, as getrusage(RUSAGE_SELF / RUSAGE_CHILDREN) reports it, read
/// from /proc/self/stat because the workspace forbids the unsafe call. The kernel reports it
/// in USER_HZ ticks, 100 per second on Linux: 10 ms resolution, fine for passes of seconds.
fn cpu_time(whose: Whose) -> Duration {
    const TICKS_PER_SECOND: u64 = 100;
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // The command name may hold spaces; the numeric fields start after its closing ')'.
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // Fields 14–17 of stat(5) (utime, stime, cutime, cstime) sit at 11–14 after the ')'.
    let (user, system) = match whose {
        Whose::Mine => (11, 12),
        Whose::Children => (13, 14),
    };
    let ticks = fields.get(user).copied().unwrap_or(0) + fields.get(system).copied().unwrap_or(0);
    Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn run_pass(lab: &Lab, binary: &Path, config: &Path, phase: &'static str) -> Result<Figures> {
    tokio::time::sleep(lab.options.crm_settle + Duration::from_millis(100)).await;
    let (ews_before, crm_before) = counters(lab).await?;
    let operations_before = ews_operations(lab).await?;
    let started = Instant::now();
    let (children_before, self_before) = (cpu_time(Whose::Children), cpu_time(Whose::Mine));
    // BENCH_WRAP runs the pass under a profiler, e.g. BENCH_WRAP="heaptrack -o /tmp/pass".
    let wrap = std::env::var("BENCH_WRAP").unwrap_or_default();
    let mut words = wrap.split_whitespace();
    let mut command = match words.next() {
        Some(tool) => {
            let mut command = Command::new(tool);
            command.args(words).arg(binary);
            command
        }
        None => Command::new(binary),
    };
    let mut child = command
        .args(["sync", "--config"])
        .arg(config)
        .env("EXSYNC_MASTER_KEY", MASTER_KEY)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let mut peak = 0;
    while child.try_wait()?.is_none() {
        peak = peak.max(peak_rss_kib(pid).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let output = child.wait_with_output()?;
    let seconds = started.elapsed().as_secs_f64();
    let exsync_cpu = cpu_time(Whose::Children).saturating_sub(children_before);
    let sims_cpu = cpu_time(Whose::Mine).saturating_sub(self_before);
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("{phase}: exsync sync failed: {stdout}");
    }
    // "user: created N updated N deleted N ..."
    let mut items = 0;
    for line in stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            if matches!(*w, "created" | "updated" | "deleted") {
                items += words
                    .get(i + 1)
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    let (ews_after, crm_after) = counters(lab).await?;
    let operations: Vec<String> = ews_operations(lab)
        .await?
        .into_iter()
        .filter_map(|(op, n)| {
            let n = n - operations_before.get(&op).copied().unwrap_or(0);
            (n > 0).then(|| format!("{op} {n}"))
        })
        .collect();
    // Each pass as it ends, so a long run shows its figures early.
    println!(
        "{phase}: {seconds:.1}s, {items} items, exsync CPU {:.2}s, simulators CPU {:.2}s; \
         EWS: {}",
        exsync_cpu.as_secs_f64(),
        sims_cpu.as_secs_f64(),
        if operations.is_empty() {
            "none".to_owned()
        } else {
            operations.join(", ")
        }
    );
    Ok(Figures {
        phase,
        seconds,
        items,
        ews_requests: ews_after - ews_before,
        crm_calls: crm_after - crm_before,
        peak_rss_kib: peak,
        exsync_cpu,
        sims_cpu,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let whole_run = Instant::now();
    let (users, contacts, events) = (
        arg("--users", 50),
        arg("--contacts", 500),
        arg("--events", 500),
    );
    let binary = exsync_binary("bench/sync.sh")?;
    let dir = tempfile::tempdir()?;
    let mut options = LabOptions::new(dir.path(), users);
    options.concurrency = 8;
    let per_user = arg("--per-user-concurrency", 0);
    options.per_user_concurrency = (per_user > 0).then_some(per_user as u32);
    if flag("--contacts-only") {
        let mut configuration = lab_configuration();
        configuration.events.direction = Direction::Off;
        options.configuration = Some(configuration);
    }
    let graph = flag("--graph");
    let hybrid = !graph && flag("--hybrid");
    if graph {
        options.exchange_online = Some(users);
    } else if hybrid {
        options.exchange_online = Some(users / 2);
    }
    let requests = match (graph, hybrid) {
        (true, _) => "Graph",
        (false, true) => "EWS+Graph",
        (false, false) => "EWS",
    };
    let starting = (Instant::now(), cpu_time(Whose::Mine));
    let lab = Lab::start(options).await?;
    let latency_ms = arg("--latency-ms", 0);
    println!(
        "lab started in {:.1}s (simulators' CPU {:.1}s)",
        starting.0.elapsed().as_secs_f64(),
        cpu_time(Whose::Mine)
            .saturating_sub(starting.1)
            .as_secs_f64()
    );
    let config = dir.path().join("exsync.toml");
    lab.write_config(&config, MASTER_KEY)?;
    // An import: the mailboxes were synced while the CRM held nothing, so the records arrive
    // in a pass that starts from stored cursors, as a bulk load into a running org does.
    let mut figures = Vec::new();
    if flag("--import") {
        figures.push(run_pass(&lab, &binary, &config, "empty first sync").await?);
    }
    println!("seeding {users} users × {contacts} contacts × {events} events in the CRM …");
    let seeding = (Instant::now(), cpu_time(Whose::Mine));
    lab.seed(&Seed {
        crm_contacts: contacts,
        crm_events: events,
        ..Seed::default()
    })
    .await?;
    println!(
        "seeded in {:.1}s (CPU of the simulators and the seeding client {:.1}s)",
        seeding.0.elapsed().as_secs_f64(),
        cpu_time(Whose::Mine)
            .saturating_sub(seeding.1)
            .as_secs_f64()
    );
    if latency_ms > 0 {
        lab.exchange_control(Method::PUT, "/faults", &json!({ "latency_ms": latency_ms }))
            .await?;
        println!("the Exchange simulator answers each EWS request after {latency_ms} ms");
    }
    if graph {
        println!("every mailbox is in Exchange Online: the Graph simulator serves them");
    } else if hybrid {
        println!(
            "{} mailboxes are in Exchange Online (the Graph simulator), {} on premises (EWS)",
            users / 2,
            users - users / 2
        );
    }

    let first = if figures.is_empty() {
        "initial sync"
    } else {
        "import"
    };
    figures.push(run_pass(&lab, &binary, &config, first).await?);
    figures.push(run_pass(&lab, &binary, &config, "echo pass").await?);
    figures.push(run_pass(&lab, &binary, &config, "no-change pass").await?);
    // 1% of each user's contacts change in the CRM, and another 1% in Outlook.
    let changed = contacts.div_ceil(100);
    for (u, user) in lab.users.iter().enumerate() {
        let in_crm: Vec<String> = (0..changed).map(|i| crm_contact(u, i).last_name).collect();
        let in_outlook: Vec<String> = (0..changed)
            .map(|i| crm_contact(u, contacts - 1 - i).last_name)
            .collect();
        lab.edit_each(Side::Crm, user, ItemKind::Contact, &in_crm, |f| {
            f.insert("title".into(), json!("Changed in the CRM"));
        })
        .await?;
        lab.edit_each(Side::Exchange, user, ItemKind::Contact, &in_outlook, |f| {
            f.insert("department".into(), json!("Changed in Outlook"));
        })
        .await?;
    }
    figures.push(run_pass(&lab, &binary, &config, "1% changed").await?);

    println!(
        "\n{users} users × {contacts} contacts × {events} events ({} records)\n",
        users * (contacts + events)
    );
    println!(
        "{:<16} {:>9} {:>9} {:>10} {:>14} {:>10} {:>11} {:>12} {:>12}",
        "pass",
        "seconds",
        "items",
        "items/s",
        format!("{requests} req"),
        "req/item",
        "req/user",
        "CRM calls",
        "peak RSS"
    );
    for f in &figures {
        let per_item = |n: u64| {
            if f.items == 0 {
                "-".to_owned()
            } else {
                format!("{:.4}", n as f64 / f.items as f64)
            }
        };
        println!(
            "{:<16} {:>9.1} {:>9} {:>10.0} {:>14} {:>10} {:>11.1} {:>12} {:>9} MiB",
            f.phase,
            f.seconds,
            f.items,
            f.items as f64 / f.seconds.max(0.001),
            f.ews_requests,
            per_item(f.ews_requests),
            f.ews_requests as f64 / users as f64,
            f.crm_calls,
            f.peak_rss_kib / 1024
        );
    }
    // The first pass that synced the seeded records, and the no-change pass, three after it.
    let synced = figures.len() - 4;
    println!(
        "\nCRM calls per synced item: {} {}; CRM calls of the no-change pass: {}",
        figures[synced].phase,
        {
            let f = &figures[synced];
            format!("{:.4}", f.crm_calls as f64 / f.items.max(1) as f64)
        },
        figures[synced + 2].crm_calls
    );
    println!(
        "\nCPU (user+sys) per pass. exsync: the `exsync sync` child alone. simulators: this \
         process, which hosts both simulators (and the benchmark's own polling)\n"
    );
    println!(
        "{:<16} {:>13} {:>13} {:>14} {:>17} {:>12}",
        "pass", "exsync CPU s", "exsync µs/it", "exsync ms/usr", "simulators CPU s", "sims/exsync"
    );
    for f in &figures {
        let exsync = f.exsync_cpu.as_secs_f64();
        let per_item = if f.items == 0 {
            "-".to_owned()
        } else {
            format!("{:.0}", exsync * 1e6 / f.items as f64)
        };
        println!(
            "{:<16} {:>13.2} {:>13} {:>14.1} {:>17.2} {:>12.2}",
            f.phase,
            exsync,
            per_item,
            exsync * 1e3 / users as f64,
            f.sims_cpu.as_secs_f64(),
            f.sims_cpu.as_secs_f64() / exsync.max(1e-6)
        );
    }
    // A running service: one long-lived process polls, so what it learnt once (each
    // mailbox's folders, the tokens) is not asked again. The first pass here pays for that.
    let options = exsync_engine::sync::service::PassOptions::default();
    let service = || lab.syncer.run_pass(&options);
    tokio::time::sleep(lab.options.crm_settle + Duration::from_millis(100)).await;
    service().await?;
    let (mailbox_before, crm_before) = counters(&lab).await?;
    let report = service().await?;
    let (mailbox_after, crm_after) = counters(&lab).await?;
    let wrote: u64 = report
        .users
        .iter()
        .map(|u| u.counts.created + u.counts.updated + u.counts.deleted)
        .sum();
    println!(
        "\nno-change pass of a running service (`exsync run`): {:.2} {} requests per mailbox, {} CRM calls, {wrote} writes",
        (mailbox_after - mailbox_before) as f64 / users as f64,
        requests,
        crm_after - crm_before,
    );
    println!(
        "\nwhole run (start, seeding, six passes): {:.1}s",
        whole_run.elapsed().as_secs_f64()
    );
    Ok(())
}
