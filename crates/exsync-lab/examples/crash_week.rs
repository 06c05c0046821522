//! An operator's worst week (a scenario, not a test): the lab is seeded on both sides, then
//! `exsync sync` is started and SIGKILLed at random moments, again and again; between the kills
//! people keep working on both sides (CRM users retitle contacts, Outlook users change their
//! department, both delete a few). Two clean passes follow, and the scenario prints what became
//! of that work: edits lost, deletes undone, contacts copied twice or missing, and whether the
//! sides agree. It exits non-zero when anything of people's work was lost, so it can gate.
//!
//!     bench/crash_week.sh [--users 3] [--contacts 1000] [--events 200] [--kills 8] [--seed N]
//!
//! Contacts are followed by last name, which nobody edits and which names a contact on both
//! sides. Every edit writes a value used once, so a value found later says which edit it was.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use exsync_core::plan::Change;
use exsync_core::{Fields, ItemKind, Side};
use exsync_lab::bench::exsync_binary;
use exsync_lab::{crm_contact, exchange_contact, Lab, LabOptions, LabUser, Seed};
use exsync_salesforce::{quote, SyncObject};
use serde_json::{json, Value};

const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The CRM connector leaves records stamped within the last second for the next pass, so a
/// pass starts this long after anyone's last write.
const SETTLE: Duration = Duration::from_millis(1100);

/// After a kill, requests the dead process had already sent may still be served; people start
/// working once they are.
const DRAIN: Duration = Duration::from_millis(300);

/// The earliest kill after a pass starts: early enough to land in the short passes after the
/// first sync (a tenth of a second or two on a release build).
const KILL_MIN: f64 = 0.02;

/// Edits per user, per side and round.
const EDITS: usize = 4;

/// Deletes per user and round, each on a side picked at random.
const DELETES: usize = 2;

struct Options {
    users: usize,
    contacts: usize,
    events: usize,
    kills: usize,
    seed: u64,
}

fn options() -> Result<Options> {
    let mut o = Options {
        users: 3,
        contacts: 1000,
        events: 200,
        kills: 8,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos() as u64,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args
            .get(i + 1)
            .with_context(|| format!("{} needs a value", args[i]))?;
        let number = || -> Result<u64> {
            value
                .parse()
                .with_context(|| format!("{} {value}: not a number", args[i]))
        };
        match args[i].as_str() {
            "--users" => o.users = number()? as usize,
            "--contacts" => o.contacts = number()? as usize,
            "--events" => o.events = number()? as usize,
            "--kills" => o.kills = number()? as usize,
            "--seed" => o.seed = number()?,
            other => {
                bail!("unknown option {other}; options: --users --contacts --events --kills --seed")
            }
        }
        i += 2;
    }
    if o.users == 0 || o.contacts < 4 {
        bail!("at least one user and four contacts");
    }
    Ok(o)
}

/// xorshift64*: small, deterministic from the seed, good enough to pick moments and contacts.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // Zero would stay zero; mix the seed so nearby seeds start far apart.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Up to `k` distinct elements of `from`, in random order.
    fn pick<T: Clone>(&mut self, from: &[T], k: usize) -> Vec<T> {
        let mut pool = from.to_vec();
        let mut out = Vec::new();
        while out.len() < k && !pool.is_empty() {
            let i = self.below(pool.len());
            out.push(pool.swap_remove(i));
        }
        out
    }
}

/// What should be true of one contact at the end.
#[derive(Default)]
struct Expected {
    deleted: Option<String>,
    /// The last title a CRM user gave it.
    title: Option<String>,
    /// The last department an Outlook user gave it.
    department: Option<String>,
    /// Edited since the last pass that ran to its end: then a delete on the other side could
    /// rightly lose to the edit, so people leave it alone (deletes only).
    edited_since_pass: bool,
}

#[derive(Default)]
struct Tally {
    runs: usize,
    killed_inside: usize,
    ended_before_kill: usize,
    not_clean: usize,
    /// Item failures the passes that ran to their end reported.
    item_failures: u64,
    crm_edits: usize,
    outlook_edits: usize,
    crm_deletes: usize,
    outlook_deletes: usize,
}

fn spawn_sync(binary: &Path, config: &Path) -> Result<Child> {
    Command::new(binary)
        .args(["sync", "--config"])
        .arg(config)
        .env("EXSYNC_MASTER_KEY", MASTER_KEY)
        // CRASH_WEEK_LOG sets the passes' log filter, e.g. CRASH_WEEK_LOG=warn to see why an
        // item failed.
        .env(
            "RUST_LOG",
            std::env::var("CRASH_WEEK_LOG").unwrap_or_else(|_| "error".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting exsync sync")
}

async fn wait_output(child: Child) -> Result<Output> {
    Ok(tokio::task::spawn_blocking(move || child.wait_with_output()).await??)
}

/// The per-user summary lines of a pass ("user: created … conflicts N failures N").
fn summary_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.contains(": created "))
        .map(str::to_owned)
        .collect()
}

fn count_after(line: &str, word: &str) -> u64 {
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .iter()
        .position(|w| *w == word)
        .and_then(|i| words.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// How a kill round's pass ended.
enum Round {
    Killed,
    /// It exited by itself before its kill, after this long.
    Ended {
        after: Duration,
        output: Output,
    },
}

/// Starts a pass and SIGKILLs it after `delay`, unless it ends first.
async fn pass_killed_after(binary: &Path, config: &Path, delay: Duration) -> Result<Round> {
    let mut child = spawn_sync(binary, config)?;
    let started = Instant::now();
    while started.elapsed() < delay {
        if child.try_wait()?.is_some() {
            let after = started.elapsed();
            let output = wait_output(child).await?;
            return Ok(Round::Ended { after, output });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill()?; // SIGKILL: nothing of the pass gets to clean up.
    let _ = wait_output(child).await?;
    Ok(Round::Killed)
}

/// Item failures a pass that ran to its end reported, and why (the reasons it stored).
async fn note_failures(
    lab: &Lab,
    output: &Output,
    reasons: &mut BTreeMap<String, usize>,
) -> Result<u64> {
    let failures: u64 = summary_lines(output)
        .iter()
        .map(|l| count_after(l, "failures"))
        .sum();
    if failures > 0 {
        for user in &lab.users {
            for item in lab.syncer.store.unresolved(&user.key)? {
                *reasons
                    .entry(format!("{}: {}", item.kind, item.reason))
                    .or_default() += 1;
            }
        }
    }
    if !output.status.success() {
        *reasons
            .entry(format!(
                "the pass failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
            .or_default() += 1;
    }
    Ok(failures)
}

/// Every contact of the user on `side`, by last name (a name twice is a duplicate).
async fn contacts_on(
    lab: &Lab,
    side: Side,
    user: &LabUser,
) -> Result<BTreeMap<String, Vec<Fields>>> {
    let changes: Vec<Change> = match side {
        Side::Crm => {
            let soql = format!(
                "SELECT Id FROM {} WHERE OwnerId = {}",
                SyncObject::from(ItemKind::Contact).name(),
                quote(user.crm_id.as_str())
            );
            let ids: Vec<_> = lab
                .crm
                .query_all(&soql)
                .await?
                .iter()
                .filter_map(|r| r["Id"].as_str().map(exsync_core::CrmId::new))
                .collect();
            lab.crm
                .fetch_changes(ItemKind::Contact.into(), &ids)
                .await?
                .into_iter()
                .map(|c| c.change)
                .collect()
        }
        Side::Exchange => lab
            .syncer
            .exchange
            .read_folder(&user.key, ItemKind::Contact)
            .await
            .map_err(|e| anyhow!("reading {}'s contacts: {e}", user.key))?,
    };
    let mut out: BTreeMap<String, Vec<Fields>> = BTreeMap::new();
    for change in changes {
        if let Change::Upsert(item) = change {
            let name = item
                .fields
                .get("last_name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            out.entry(name).or_default().push(item.fields);
        }
    }
    Ok(out)
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Crm => "CRM",
        Side::Exchange => "Outlook",
    }
}

/// People work on both sides between two passes: edits, then deletes of contacts nobody
/// edited since the last pass that ran to its end.
async fn people_work(
    lab: &Lab,
    rng: &mut Rng,
    expected: &mut [BTreeMap<String, Expected>],
    tally: &mut Tally,
    round: usize,
) -> Result<()> {
    for (u, user) in lab.users.iter().enumerate() {
        let mut present = BTreeMap::new();
        for side in [Side::Crm, Side::Exchange] {
            present.insert(side, contacts_on(lab, side, user).await?);
        }
        // A contact someone can open on `side`: alive, and there once.
        let usable = |side: Side, expected: &BTreeMap<String, Expected>| -> Vec<String> {
            expected
                .iter()
                .filter(|(name, e)| {
                    e.deleted.is_none() && present[&side].get(*name).is_some_and(|v| v.len() == 1)
                })
                .map(|(name, _)| name.clone())
                .collect()
        };
        // Deletes first, among contacts not edited since the last complete pass.
        for _ in 0..DELETES {
            let side = if rng.below(2) == 0 {
                Side::Crm
            } else {
                Side::Exchange
            };
            let candidates: Vec<String> = usable(side, &expected[u])
                .into_iter()
                .filter(|n| !expected[u][n].edited_since_pass)
                .collect();
            for name in rng.pick(&candidates, 1) {
                lab.delete(side, user, ItemKind::Contact, &name)
                    .await
                    .with_context(|| format!("deleting {name} in {}", side_name(side)))?;
                if let Some(e) = expected[u].get_mut(&name) {
                    e.deleted = Some(format!("round {round}, in {}", side_name(side)));
                }
                match side {
                    Side::Crm => tally.crm_deletes += 1,
                    Side::Exchange => tally.outlook_deletes += 1,
                }
            }
        }
        for side in [Side::Crm, Side::Exchange] {
            let candidates = usable(side, &expected[u]);
            for name in rng.pick(&candidates, EDITS) {
                let (field, value) = match side {
                    Side::Crm => {
                        tally.crm_edits += 1;
                        ("title", format!("Title r{round} #{}", tally.crm_edits))
                    }
                    Side::Exchange => {
                        tally.outlook_edits += 1;
                        (
                            "department",
                            format!("Dept r{round} #{}", tally.outlook_edits),
                        )
                    }
                };
                let v = value.clone();
                lab.edit(side, user, ItemKind::Contact, &name, |f| {
                    f.insert(field.into(), json!(v));
                })
                .await
                .with_context(|| format!("editing {name} in {}", side_name(side)))?;
                let e = expected[u].get_mut(&name).context("an untracked contact")?;
                match side {
                    Side::Crm => e.title = Some(value),
                    Side::Exchange => e.department = Some(value),
                }
                e.edited_since_pass = true;
            }
        }
    }
    Ok(())
}

/// What the final check found.
#[derive(Default)]
struct Findings {
    edits_lost: Vec<String>,
    deletes_undone: Vec<String>,
    duplicates: Vec<String>,
    missing: Vec<String>,
}

async fn check(lab: &Lab, expected: &[BTreeMap<String, Expected>]) -> Result<Findings> {
    let mut f = Findings::default();
    for (u, user) in lab.users.iter().enumerate() {
        for side in [Side::Crm, Side::Exchange] {
            let found = contacts_on(lab, side, user).await?;
            let on = side_name(side);
            for (name, copies) in &found {
                if copies.len() > 1 {
                    f.duplicates.push(format!(
                        "{}: {name} is {} times in {on}",
                        user.key,
                        copies.len()
                    ));
                }
            }
            for (name, e) in &expected[u] {
                let copies = found.get(name).map(Vec::as_slice).unwrap_or_default();
                if let Some(when) = &e.deleted {
                    if !copies.is_empty() {
                        f.deletes_undone
                            .push(format!("{}: {name} (deleted {when}) is in {on}", user.key));
                    }
                    continue;
                }
                let Some(fields) = copies.first() else {
                    f.missing
                        .push(format!("{}: {name} is not in {on}", user.key));
                    continue;
                };
                for (field, want) in [("title", &e.title), ("department", &e.department)] {
                    let Some(want) = want else { continue };
                    let got = fields.get(field).cloned().unwrap_or(Value::Null);
                    if got != json!(want) {
                        f.edits_lost.push(format!(
                            "{}: {name}'s {field} is {got} in {on}, last set to {want:?}",
                            user.key
                        ));
                    }
                }
            }
        }
    }
    Ok(f)
}

fn show(title: &str, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    println!("\n{title} ({}):", lines.len());
    for line in lines.iter().take(20) {
        println!("  {line}");
    }
    if lines.len() > 20 {
        println!("  … and {} more", lines.len() - 20);
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<ExitCode> {
    let o = options()?;
    let binary = exsync_binary("bench/crash_week.sh")?;
    let week = Instant::now();
    println!(
        "crash week: {} users × {} CRM + {} Outlook contacts, {} CRM + {} Outlook events; {} kills; seed {}",
        o.users,
        o.contacts,
        o.contacts / 4,
        o.events,
        o.events / 4,
        o.kills,
        o.seed
    );
    let mut rng = Rng::new(o.seed);
    let dir = tempfile::tempdir()?;
    let lab = Lab::start(LabOptions::new(dir.path(), o.users)).await?;
    let seed = Seed {
        crm_contacts: o.contacts,
        crm_events: o.events,
        exchange_contacts: o.contacts / 4,
        exchange_events: o.events / 4,
        invalid_record: false,
    };
    lab.seed(&seed).await?;
    let config = dir.path().join("exsync.toml");
    lab.write_config(&config, MASTER_KEY)?;
    println!("seeded in {:.1}s", week.elapsed().as_secs_f64());

    let mut expected: Vec<BTreeMap<String, Expected>> = (0..o.users)
        .map(|u| {
            (0..seed.crm_contacts)
                .map(|i| crm_contact(u, i).last_name)
                .chain((0..seed.exchange_contacts).map(|i| exchange_contact(u, i).last_name))
                .map(|name| (name, Expected::default()))
                .collect()
        })
        .collect();
    let mut tally = Tally::default();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();

    // The kills. The latest kill moment follows the passes: it shrinks to a pass's length when
    // a pass ends before its kill, and grows while kills keep landing inside.
    let mut latest = 2.0_f64;
    for round in 1..=o.kills {
        tokio::time::sleep(SETTLE).await;
        let delay = KILL_MIN + rng.unit() * (latest - KILL_MIN);
        tally.runs += 1;
        match pass_killed_after(&binary, &config, Duration::from_secs_f64(delay)).await? {
            Round::Killed => {
                tally.killed_inside += 1;
                latest *= 1.25;
                println!("round {round}: killed after {delay:.2}s");
            }
            Round::Ended { after, output } => {
                tally.ended_before_kill += 1;
                let failures = note_failures(&lab, &output, &mut reasons).await?;
                tally.item_failures += failures;
                let clean = output.status.success()
                    && failures == 0
                    && !String::from_utf8_lossy(&output.stdout).contains("ERROR");
                if clean {
                    // Everything people did before it has reached the other side.
                    for e in expected.iter_mut().flat_map(|m| m.values_mut()) {
                        e.edited_since_pass = false;
                    }
                } else {
                    tally.not_clean += 1;
                }
                latest = after.as_secs_f64().max(KILL_MIN + 0.1);
                println!(
                    "round {round}: the pass ended after {:.2}s, before its kill at {delay:.2}s{}",
                    after.as_secs_f64(),
                    if clean {
                        String::new()
                    } else {
                        format!(" ({failures} item failures or an error)")
                    }
                );
            }
        }
        tokio::time::sleep(DRAIN).await;
        people_work(&lab, &mut rng, &mut expected, &mut tally, round).await?;
    }

    // Two passes to their end: the first finishes the interrupted work, the second sees it.
    let mut conflicts = 0;
    let mut clean_failures = Vec::new();
    let mut clean_item_failures = 0;
    for n in 1..=2 {
        tokio::time::sleep(SETTLE).await;
        let started = Instant::now();
        let output = wait_output(spawn_sync(&binary, &config)?).await?;
        tally.runs += 1;
        clean_item_failures += note_failures(&lab, &output, &mut reasons).await?;
        let lines = summary_lines(&output);
        conflicts += lines
            .iter()
            .map(|l| count_after(l, "conflicts"))
            .sum::<u64>();
        println!(
            "clean pass {n}: {:.2}s, exit {}",
            started.elapsed().as_secs_f64(),
            output.status
        );
        for line in &lines {
            println!("  {line}");
        }
        if !output.status.success() {
            clean_failures.push(format!(
                "clean pass {n} ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
    }

    let findings = check(&lab, &expected).await?;
    let convergence = lab.convergence().await?;
    let edits = tally.crm_edits + tally.outlook_edits;
    let deletes = tally.crm_deletes + tally.outlook_deletes;
    let row = |what: &str, value: String| println!("  {what:<34} {value:>12}");
    println!("\ncrash week summary (seed {})", o.seed);
    row("passes run", tally.runs.to_string());
    row(
        "kills landed inside a pass",
        format!("{} of {}", tally.killed_inside, o.kills),
    );
    row(
        "passes that ended before the kill",
        tally.ended_before_kill.to_string(),
    );
    row("  of which not clean", tally.not_clean.to_string());
    row(
        "edits made (CRM / Outlook)",
        format!("{edits} ({} / {})", tally.crm_edits, tally.outlook_edits),
    );
    row("edits lost", findings.edits_lost.len().to_string());
    row(
        "deletes made (CRM / Outlook)",
        format!(
            "{deletes} ({} / {})",
            tally.crm_deletes, tally.outlook_deletes
        ),
    );
    row("deletes undone", findings.deletes_undone.len().to_string());
    row("duplicates", findings.duplicates.len().to_string());
    row("contacts missing", findings.missing.len().to_string());
    row(
        "convergence problems",
        convergence.problems.len().to_string(),
    );
    row(
        "records left unresolved",
        convergence.unresolved.to_string(),
    );
    row("conflicts (clean passes)", conflicts.to_string());
    row("clean passes failed", clean_failures.len().to_string());
    row(
        "item failures (kill rounds / clean)",
        format!("{} / {clean_item_failures}", tally.item_failures),
    );
    row("wall time", format!("{:.1}s", week.elapsed().as_secs_f64()));

    show("edits lost", &findings.edits_lost);
    show("deletes undone", &findings.deletes_undone);
    show("duplicates", &findings.duplicates);
    show("contacts missing", &findings.missing);
    let problems: Vec<String> = convergence
        .problems
        .iter()
        .map(|p| format!("{} {}: {}", p.user, p.kind, p.what))
        .collect();
    show("convergence problems", &problems);
    show("clean passes failed", &clean_failures);
    let reasons: Vec<String> = reasons
        .iter()
        .map(|(reason, n)| format!("{n}× {reason}"))
        .collect();
    show("why items failed (as the passes stored it)", &reasons);

    let bad = !findings.edits_lost.is_empty()
        || !findings.deletes_undone.is_empty()
        || !findings.duplicates.is_empty()
        || !findings.missing.is_empty()
        || !convergence.problems.is_empty()
        || !clean_failures.is_empty();
    if bad {
        println!("\npeople's work was not kept: rerun with --seed {}", o.seed);
        return Ok(ExitCode::FAILURE);
    }
    println!("\nevery edit and every delete was kept");
    Ok(ExitCode::SUCCESS)
}
