//! `exsync demo`: both simulators on loopback, users with contacts and events on both sides,
//! a first sync, scripted changes on both sides (edits, deletes, a conflict, a moved occurrence
//! of a series), a second sync, a table per user, and a check that both sides agree.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use exsync_core::{Event, EventTime, ItemKind, Occurrence, Record, UserKey};
use exsync_store::RunCounts;
use serde_json::json;

use super::{crm_contact, Lab, LabOptions, Seed};
use exsync_engine::sync::service::{PassOptions, PassReport, Progress};

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub users: usize,
    pub contacts: usize,
    pub events: usize,
    /// Users whose mailbox is in Exchange Online (the Graph simulator) from the start; a
    /// third of them when `None`. The last user on premises is located by Autodiscover
    /// (`auto`) and migrated online between the passes.
    pub online: Option<usize>,
    /// Where the simulators and the state database live; a temporary folder when `None`.
    pub dir: Option<PathBuf>,
    /// Log in to Exchange with Kerberos (from [`crate::kerberos::start_kdc`]) instead of NTLM;
    /// the simulator then offers Negotiate only.
    pub kerberos: Option<crate::kerberos::LabKerberos>,
}

/// What the demo found.
pub struct DemoOutcome {
    pub converged: bool,
    pub lab: Lab,
    /// Kept alive while the lab runs from it.
    pub temp: Option<tempfile::TempDir>,
}

/// Waits out the CRM connector's settle time, so records just written are read in the next pass.
async fn settle(lab: &Lab) {
    tokio::time::sleep(lab.options.crm_settle + Duration::from_millis(100)).await;
}

async fn pass_with_progress(lab: &Lab, label: &str) -> Result<PassReport> {
    let total = lab.users.len();
    let done = Arc::new(AtomicUsize::new(0));
    let label = label.to_owned();
    let shown = label.clone();
    let progress = Progress(Arc::new(move |_| {
        let n = done.fetch_add(1, Ordering::SeqCst) + 1;
        let width = 30;
        let filled = n * width / total.max(1);
        eprint!(
            "\r  {shown:<12} [{}{}] {n}/{total} users",
            "#".repeat(filled),
            " ".repeat(width - filled)
        );
        let _ = std::io::stderr().flush();
    }));
    let started = Instant::now();
    let report = lab
        .syncer
        .run_pass(&PassOptions {
            progress: Some(progress),
            ..PassOptions::default()
        })
        .await?;
    eprintln!("  {:.1}s", started.elapsed().as_secs_f64());
    if let Some(e) = &report.crm_error {
        bail!("{label}: the CRM could not be read: {e}");
    }
    Ok(report)
}

/// Edits on both sides, as people would make them between two passes.
async fn scripted_changes(lab: &Lab) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for (u, user) in lab.users.iter().enumerate() {
        let name = |i: usize| crm_contact(u, i).last_name;
        lab.edit_crm(user, ItemKind::Contact, &name(0), |f| {
            f.insert("title".into(), json!("Chief Buyer"));
        })
        .await?;
        lab.edit_exchange(user, ItemKind::Contact, &name(1), |f| {
            f.insert("department".into(), json!("Research"));
        })
        .await?;
        lab.delete_crm(user, ItemKind::Contact, &name(2)).await?;
        lab.delete_exchange(user, ItemKind::Contact, &name(3))
            .await?;
        // Both sides change the same field: the configuration's policy (CRM wins) settles it.
        lab.edit_crm(user, ItemKind::Contact, &name(4), |f| {
            f.insert("title".into(), json!("Head of Purchasing"));
        })
        .await?;
        lab.edit_exchange(user, ItemKind::Contact, &name(4), |f| {
            f.insert("title".into(), json!("Purchasing Lead"));
        })
        .await?;
        // The second occurrence of a weekly series moves an hour later in Outlook.
        let series = format!("CRM meeting {u}.0");
        lab.edit_exchange(user, ItemKind::Event, &series, |f| {
            if let Ok(mut event) = Event::from_fields(f) {
                if let (Some(r), EventTime::At(start), EventTime::At(end)) =
                    (&mut event.recurrence, event.start, event.end)
                {
                    let week = chrono::Duration::days(7);
                    let hour = chrono::Duration::hours(1);
                    r.modified.push(Occurrence {
                        original_start: EventTime::At(start + week),
                        start: EventTime::At(start + week + hour),
                        end: EventTime::At(end + week + hour),
                        subject: None,
                        location: None,
                    });
                }
                *f = event.to_fields();
            }
        })
        .await?;
        done.push(user.key.to_string());
    }
    Ok(done)
}

fn table(passes: &[&PassReport], unresolved: &BTreeMap<UserKey, u64>) -> String {
    let mut totals: BTreeMap<UserKey, RunCounts> = BTreeMap::new();
    // Each user's backends in pass order: "ews", "graph", or "ews → graph" for a move.
    let mut backends: BTreeMap<UserKey, Vec<&'static str>> = BTreeMap::new();
    for report in passes {
        for user in &report.users {
            let Some(key) = &user.user else { continue };
            if let Some(backend) = user.backend {
                let seen = backends.entry(key.clone()).or_default();
                if seen.last() != Some(&backend.as_str()) {
                    seen.push(backend.as_str());
                }
            }
            let t = totals.entry(key.clone()).or_default();
            let c = user.counts;
            t.created += c.created;
            t.updated += c.updated;
            t.deleted += c.deleted;
            t.conflicts += c.conflicts;
            t.failures += c.failures;
        }
    }
    let mut out = format!(
        "  {:<24} {:<12} {:>8} {:>8} {:>8} {:>10} {:>9} {:>11}\n",
        "user", "backend", "created", "updated", "deleted", "conflicts", "failures", "unresolved"
    );
    for (user, c) in &totals {
        let backend = backends.get(user).map_or(String::new(), |b| b.join(" → "));
        out.push_str(&format!(
            "  {:<24} {:<12} {:>8} {:>8} {:>8} {:>10} {:>9} {:>11}\n",
            user.as_str(),
            backend,
            c.created,
            c.updated,
            c.deleted,
            c.conflicts,
            c.failures,
            unresolved.get(user).copied().unwrap_or(0)
        ));
    }
    out
}

/// Where a demo keeps its files: `dir`, or a fresh temporary folder that lives as long as
/// the returned guard.
pub fn demo_dir(dir: Option<&PathBuf>) -> Result<(PathBuf, Option<tempfile::TempDir>)> {
    Ok(match dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let temp = tempfile::Builder::new()
                .prefix("exsync-demo-")
                .tempdir()
                .context("creating a temporary folder")?;
            (temp.path().to_path_buf(), Some(temp))
        }
    })
}

/// Whether both sides agree, or each problem.
pub fn print_convergence(check: &crate::Convergence) {
    if check.converged() {
        println!(
            "Converged: {} pairs; every CRM record and Outlook item is paired or waiting with a reason ({} waiting).",
            check.pairs, check.unresolved
        );
    } else {
        println!("NOT converged:");
        for p in &check.problems {
            println!("  {} {}: {}", p.user, p.kind, p.what);
        }
    }
}

/// Runs the demo, printing as it goes.
pub async fn run(options: &DemoOptions) -> Result<DemoOutcome> {
    if options.users == 0 || options.contacts < 5 || options.events < 1 {
        bail!("the demo needs at least 1 user, 5 contacts and 1 event per user (its script edits 5 contacts and a series)");
    }
    let (dir, temp) = demo_dir(options.dir.as_ref())?;
    let online = options
        .online
        .unwrap_or(options.users / 3)
        .min(options.users);
    // The last user on premises moves online between the passes, when there is one.
    let mover = (online < options.users && options.users > 1).then(|| options.users - online - 1);
    let login = match &options.kerberos {
        Some(k) => format!("Kerberos as {} from the KDC at {}", k.principal, k.kdc),
        None => "NTLM".into(),
    };
    println!(
        "exsync demo: {} users, each with {} contacts and {} events in the CRM and a few of their own in Outlook,\n\
         synced through simulated Exchange on premises (EWS, {login}, impersonation) for {} of them, Exchange Online\n\
         (Microsoft Graph, an app scoped by RBAC for Applications) for {online}, and Salesforce (REST, JWT), all on 127.0.0.1.",
        options.users,
        options.contacts,
        options.events,
        options.users - online,
    );
    let mut lab_options = LabOptions::new(&dir, options.users);
    lab_options.exchange_online = Some(online);
    lab_options.auto_users = mover.into_iter().collect();
    if let Some(k) = &options.kerberos {
        // Negotiate only: a request that fell back to another scheme would be refused.
        lab_options.exchange_auth = "negotiate".into();
        lab_options.exchange_keytab = Some(k.service_keytab.clone());
        lab_options.kerberos = Some(k.clone());
    }
    let lab = Lab::start(lab_options).await?;
    let seed = Seed {
        crm_contacts: options.contacts,
        crm_events: options.events,
        exchange_contacts: (options.contacts / 5).max(1),
        exchange_events: (options.events / 5).max(1),
        invalid_record: true,
    };
    lab.seed(&seed).await?;
    println!("Seeded. One Outlook contact per user has no last name, which the CRM refuses: it is skipped with its reason.");
    settle(&lab).await;
    let first = pass_with_progress(&lab, "first sync").await?;

    if let Some(u) = mover {
        let user = &lab.users[u];
        let moved = lab.migrate_online(user).await?;
        println!(
            "Migrated {}'s mailbox to Exchange Online ({moved} items, with their tags, under new ids). Its backend is\n\
             located automatically (auto): on premises it is now a remote mailbox whose Autodiscover answer points\n\
             online, and nothing in the configuration changes. EWS no longer finds it, so the service asks again:",
            user.key
        );
        for notice in lab.relocate(user).await? {
            println!("  [{}] {}", notice.code, notice.message);
        }
    }
    let edited = scripted_changes(&lab).await?;
    println!(
        "Changed on both sides for {} users: a title in the CRM, a department in Outlook, one contact deleted on each side,\n\
         the same title changed on both sides (the CRM wins), and one occurrence of a weekly series moved in Outlook.",
        edited.len()
    );
    settle(&lab).await;
    let second = pass_with_progress(&lab, "second sync").await?;

    let mut unresolved = BTreeMap::new();
    for user in &lab.users {
        unresolved.insert(
            user.key.clone(),
            lab.syncer.store.unresolved(&user.key)?.len() as u64,
        );
    }
    println!("\n{}", table(&[&first, &second], &unresolved));
    if options.kerberos.is_some() {
        let counters = lab
            .exchange_control(reqwest::Method::GET, "/counters", &serde_json::Value::Null)
            .await?;
        let logons = &counters["logons_per_scheme"];
        println!(
            "Exchange logons: {} with Kerberos (Negotiate), {} with NTLM, {} with Basic.",
            logons["negotiate"].as_u64().unwrap_or(0),
            logons["ntlm"].as_u64().unwrap_or(0),
            logons["basic"].as_u64().unwrap_or(0),
        );
    }
    let check = lab.convergence().await?;
    print_convergence(&check);
    Ok(DemoOutcome {
        converged: check.converged(),
        lab,
        temp,
    })
}
