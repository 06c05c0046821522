//! `exsync status` and `exsync reset`: what the state database says about each user, and
//! Reset Sync.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use exsync_core::config::{load, StoreConfig};
use exsync_core::UserKey;
use exsync_store::{SkippedCrmUser, SqliteStore, Store, UserStatus};
use serde_json::json;

use crate::cli::{ConfigFileArg, ResetArgs, StatusArgs};

/// Opens the state database the configuration names.
pub fn open_store(config: &ConfigFileArg) -> anyhow::Result<Arc<dyn Store>> {
    let loaded = load(&config.config).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    match &loaded.store {
        StoreConfig::Sqlite { path } => {
            let store = SqliteStore::open(path)
                .with_context(|| format!("state database {}", path.display()))?;
            Ok(Arc::new(store))
        }
        StoreConfig::Postgres { .. } => {
            bail!(
                "{}: store.url: PostgreSQL is not supported by this version yet; use store.path",
                config.config.display()
            )
        }
    }
}

pub fn status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(&args.config)?;
    match &args.user {
        Some(user) => user_detail(store.as_ref(), &UserKey::from_email(user), args.json),
        None => {
            let users = store.list_users()?;
            let skipped = store.skipped_crm_users()?;
            if args.json {
                // The answer stays the list of users that scripts read.
                println!("{}", serde_json::to_string_pretty(&users)?);
                if !skipped.is_empty() {
                    eprintln!(
                        "exsync: {} CRM users are not synced; `exsync status` without --json says why",
                        skipped.len()
                    );
                }
            } else {
                print!("{}", table(&users));
                print!("{}", notices(&users));
                print!("{}", skipped_table(&skipped));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn user_detail(store: &dyn Store, user: &UserKey, as_json: bool) -> anyhow::Result<ExitCode> {
    let Some(status) = store.user_status(user)? else {
        eprintln!("exsync: {user} has never been synced");
        return Ok(ExitCode::FAILURE);
    };
    let unresolved = store.unresolved(user)?;
    let runs = store.runs(user, 10)?;
    let conflicts = store.conflicts(user, 20)?;
    if as_json {
        let detail = json!({ "status": status, "unresolved": unresolved, "runs": runs, "conflicts": conflicts });
        println!("{}", serde_json::to_string_pretty(&detail)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", table(std::slice::from_ref(&status)));
    if let Some(pause) = &status.paused {
        println!(
            "\nPaused since {}: {}",
            pause.since.format("%Y-%m-%d %H:%M UTC"),
            pause.reason
        );
    }
    println!("\nUnresolved items ({}):", unresolved.len());
    for item in &unresolved {
        println!(
            "  {} {}  seen {}x since {}: {}",
            item.kind,
            item.id,
            item.occurrences,
            item.first_seen.format("%Y-%m-%d %H:%M"),
            item.reason
        );
    }
    println!("\nRecent passes:");
    for run in &runs {
        let c = run.counts;
        println!(
            "  {}  created {} updated {} deleted {} conflicts {} failures {}{}",
            run.finished.format("%Y-%m-%d %H:%M:%S"),
            c.created,
            c.updated,
            c.deleted,
            c.conflicts,
            c.failures,
            run.error
                .as_deref()
                .map(|e| format!("  error: {e}"))
                .unwrap_or_default()
        );
        for n in &run.notices {
            println!(
                "    notice [{}] {} {}",
                printable(&n.code),
                printable(&n.message),
                printable(&n.fix)
            );
        }
    }
    println!("\nRecent conflicts and first-link merges:");
    for c in &conflicts {
        let settled = if c.conflict.first_link {
            format!("first link, taken from the newer {}", c.conflict.winner)
        } else {
            format!("{} won", c.conflict.winner)
        };
        println!(
            "  {} {} {} {}: {settled}",
            c.at.format("%Y-%m-%d %H:%M"),
            c.kind,
            c.crm_id,
            c.conflict.field,
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per user; the error column is last so long messages do not break the table.
fn table(users: &[UserStatus]) -> String {
    let mut out = format!(
        "{:<32} {:<7} {:<17} {:>7} {:>7} {:>7} {:>9} {:>8} {:>8} {:>6} {:>10}  {}\n",
        "USER",
        "STATE",
        "LAST PASS",
        "CREATED",
        "UPDATED",
        "DELETED",
        "CONFLICTS",
        "FAILURES",
        "CONTACTS",
        "EVENTS",
        "UNRESOLVED",
        "LAST ERROR"
    );
    for u in users {
        let run = u.last_run.as_ref();
        let counts = run.map(|r| r.counts).unwrap_or_default();
        out.push_str(&format!(
            "{:<32} {:<7} {:<17} {:>7} {:>7} {:>7} {:>9} {:>8} {:>8} {:>6} {:>10}  {}\n",
            u.user,
            if u.paused.is_some() {
                "paused"
            } else {
                "active"
            },
            run.map_or("never".to_owned(), |r| r
                .finished
                .format("%Y-%m-%d %H:%M")
                .to_string()),
            counts.created,
            counts.updated,
            counts.deleted,
            counts.conflicts,
            counts.failures,
            u.contact_pairs,
            u.event_pairs,
            u.unresolved,
            run.and_then(|r| r.error.as_deref()).unwrap_or("")
        ));
    }
    out
}

/// What each user's last pass noticed, with what to do about it.
fn notices(users: &[UserStatus]) -> String {
    let mut out = String::new();
    for u in users {
        for n in u.last_run.iter().flat_map(|r| &r.notices) {
            if out.is_empty() {
                out.push_str("\nNoticed in the last pass:\n");
            }
            out.push_str(&format!(
                "  {} [{}] {} {}\n",
                u.user,
                printable(&n.code),
                printable(&n.message),
                printable(&n.fix)
            ));
        }
    }
    out
}

/// The CRM users the last pass left out. Their addresses are whatever a CRM admin typed, so
/// they are printed quoted and escaped: a terminal never receives their control characters.
fn skipped_table(skipped: &[SkippedCrmUser]) -> String {
    if skipped.is_empty() {
        return String::new();
    }
    let mut out = format!("\nCRM users not synced ({}):\n", skipped.len());
    for user in skipped {
        out.push_str(&format!(
            "  {} {:?}  since {}: {}\n",
            user.crm_id,
            user.address,
            user.first_seen.format("%Y-%m-%d %H:%M"),
            printable(&user.reason)
        ));
    }
    out
}

/// `s` with its control characters escaped, so printing it cannot drive the terminal.
fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

pub fn reset(args: &ResetArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(&args.config)?;
    let user = UserKey::from_email(&args.user);
    if store.user_status(&user)?.is_none() {
        eprintln!("exsync: {user} has never been synced; nothing to reset");
        return Ok(ExitCode::FAILURE);
    }
    let counts = store.reset_user(&user)?;
    println!(
        "Reset {user}: forgot {} pairs and {} cursors{}. No contact or event was changed; the next pass matches everything again.",
        counts.pairs,
        counts.cursors,
        if counts.was_paused { ", and resumed the user" } else { "" }
    );
    Ok(ExitCode::SUCCESS)
}
