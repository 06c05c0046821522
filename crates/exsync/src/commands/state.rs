//! `exsync status` and `exsync reset`: what the state database says about each user, and
//! Reset Sync.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Local, Utc};
use exsync_core::config::{load, ExsyncConfig, StoreConfig};
use exsync_core::UserKey;
use exsync_store::{
    LeaseInfo, LeaseScope, PgOptions, PgStore, PgTls, SkippedCrmUser, SqliteStore, Store,
    UnmatchedUser, UserStatus,
};
use serde_json::json;

use super::auto_routes::{self, AutoRoutes};
use super::store_password::store_password;
use crate::cli::{ConfigFileArg, ResetArgs, StatusArgs};

/// Opens the state database the configuration names.
pub fn open_store(config: &ConfigFileArg) -> anyhow::Result<Arc<dyn Store>> {
    open_with_config(config).map(|(_, store)| store)
}

/// The configuration, and the state database it names.
fn open_with_config(config: &ConfigFileArg) -> anyhow::Result<(ExsyncConfig, Arc<dyn Store>)> {
    let loaded = load(&config.config).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    match &loaded.store {
        StoreConfig::Sqlite { path } => {
            let store = SqliteStore::open(path)
                .with_context(|| format!("state database {}", path.display()))?;
            Ok((loaded, Arc::new(store)))
        }
        StoreConfig::Postgres {
            url,
            password_file,
            ca_file,
            ..
        } => {
            let mut options = PgOptions::new(url.clone());
            options.password = store_password(password_file.as_deref())?;
            options.tls = match ca_file {
                Some(path) => PgTls::CaFile(path.clone()),
                None => PgTls::SystemRoots,
            };
            let store = PgStore::open(&options).context("state database")?;
            Ok((loaded, Arc::new(store)))
        }
    }
}

pub fn status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let (config, store) = open_with_config(&args.config)?;
    let poll_interval = config.service.poll_interval_secs.max(1);
    match &args.user {
        Some(user) => {
            let user = UserKey::from_email(user);
            let routes = auto_routes::auto_routes(&config, store.as_ref(), [&user])?;
            user_detail(store.as_ref(), &user, &routes, args.json)
        }
        None => {
            let users = store.list_users()?;
            let skipped = store.skipped_crm_users()?;
            let unmatched = store.unmatched_users()?;
            let routes =
                auto_routes::auto_routes(&config, store.as_ref(), users.iter().map(|u| &u.user))?;
            if args.json {
                // The answer stays the list of users that scripts read; an `auto` user's
                // entry also says where the mailbox was found.
                let mut listed = serde_json::to_value(&users)?;
                for entry in listed.as_array_mut().into_iter().flatten() {
                    let route = entry["user"]
                        .as_str()
                        .and_then(|u| routes.get(&UserKey::from_email(u)));
                    if let (Some(route), Some(object)) = (route, entry.as_object_mut()) {
                        object.insert("backend".into(), auto_routes::value(route.as_ref()));
                    }
                }
                println!("{}", serde_json::to_string_pretty(&listed)?);
                if !skipped.is_empty() || !unmatched.is_empty() {
                    eprintln!(
                        "exsync: {} CRM users and {} configured users are not synced; `exsync \
                         status` without --json says why",
                        skipped.len(),
                        unmatched.len()
                    );
                }
            } else {
                let now = Utc::now();
                print!("{}", header(&users, poll_interval, now));
                print!("{}", table(&users, &routes, now));
                print!("{}", located(&routes, now));
                print!("{}", notices(&users));
                print!("{}", skipped_table(&skipped));
                print!("{}", unmatched_table(&unmatched));
                if store.shared() {
                    print!("{}", leases_table(&store.leases()?, now));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn user_detail(
    store: &dyn Store,
    user: &UserKey,
    routes: &AutoRoutes,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let Some(status) = store.user_status(user)? else {
        eprintln!("exsync: {user} has never been synced");
        return Ok(ExitCode::FAILURE);
    };
    let unresolved = store.unresolved(user)?;
    let runs = store.runs(user, 10)?;
    let conflicts = store.conflicts(user, 20)?;
    let scope = LeaseScope::User(user.clone());
    let lease = if store.shared() {
        store.leases()?.into_iter().find(|l| l.scope == scope)
    } else {
        None
    };
    if as_json {
        let backend = routes.get(user).map(|r| auto_routes::value(r.as_ref()));
        let detail = json!({ "status": status, "backend": backend, "unresolved": unresolved, "runs": runs, "conflicts": conflicts, "lease": lease });
        println!("{}", serde_json::to_string_pretty(&detail)?);
        return Ok(ExitCode::SUCCESS);
    }
    let now = Utc::now();
    print!("{}", table(std::slice::from_ref(&status), routes, now));
    if let Some(route) = routes.get(user) {
        println!("\nBackend: {}", auto_routes::line(route.as_ref(), now));
    }
    if let Some(a) = status.last_run.as_ref().and_then(|r| r.assignment.as_ref()) {
        let how = match &a.group {
            Some(g) => format!("via group {}", printable(g)),
            None => "assigned individually".to_owned(),
        };
        println!(
            "\nConfiguration: {}, {how} (as the last pass found it)",
            printable(&a.configuration)
        );
    }
    if let Some(run) = &status.last_run {
        println!("\nLast pass ended {}.", when(run.finished, now));
        if let Some(error) = &run.error {
            println!("It failed: {}", printable(error));
        }
    }
    if let Some(lease) = &lease {
        println!("\n{}", lease_line(lease, now));
    }
    if let Some(pause) = &status.paused {
        println!(
            "\nPaused since {}: {}",
            when(pause.since, now),
            printable(&pause.reason)
        );
    }
    println!("\nUnresolved items ({}):", unresolved.len());
    for item in &unresolved {
        println!(
            "  {} {}{}  seen {}x since {}: {}",
            item.kind,
            printable(&item.id.to_string()),
            named(item.name.as_deref()),
            item.occurrences,
            item.first_seen.format("%Y-%m-%d %H:%M"),
            printable(&item.reason)
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
            "  {} {} {}{} {}: {settled}",
            c.at.format("%Y-%m-%d %H:%M"),
            c.kind,
            printable(c.crm_id.as_str()),
            named(c.name.as_deref()),
            printable(&c.conflict.field),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A record's name after its id, ` "Ann Lee <ann@contoso.test>"`, or nothing when the store
/// has none. Names come from the CRM and the mailbox: quoted and cut to one terminal line.
pub(crate) fn named(name: Option<&str>) -> String {
    name.map(|n| format!(" \"{}\"", printable(&exsync_core::cap_name(n))))
        .unwrap_or_default()
}

/// How long ago `then` was, in the largest unit that fits: "45 s ago", "3 min ago".
pub(crate) fn ago(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - then).num_seconds();
    match secs {
        s if s < 0 => "in the future (check the clocks)".to_owned(),
        s if s < 60 => format!("{s} s ago"),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 2 * 86400 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86400),
    }
}

/// A time in the machine's zone, with its offset, and how long ago it was.
pub(crate) fn when(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!(
        "{} ({})",
        then.with_timezone(&Local).format("%Y-%m-%d %H:%M %:z"),
        ago(then, now)
    )
}

/// The most of an error the table shows; `exsync status --user` shows all of it.
const ERROR_CELL: usize = 60;

/// The health header: whether passes are ending as often as the service runs them, the last
/// one, and how many users are in each state.
fn header(users: &[UserStatus], poll_interval: u64, now: DateTime<Utc>) -> String {
    let last = users
        .iter()
        .filter_map(|u| u.last_run.as_ref().map(|r| r.finished))
        .max();
    let service = match last {
        None => "no pass has ended yet".to_owned(),
        Some(end) if (now - end).num_seconds() <= 3 * poll_interval as i64 => format!(
            "running: the last pass ended {}; a pass every {}",
            when(end, now),
            interval_text(poll_interval)
        ),
        Some(end) => format!(
            "NOT RUNNING? the last pass ended {}, more than three poll intervals of {} ago \
             (is `exsync run` up?)",
            when(end, now),
            interval_text(poll_interval)
        ),
    };
    let count = |state: &str| users.iter().filter(|u| u.state() == state).count();
    format!(
        "Service: {service}\nUsers: {} — {} syncing, {} failing, {} paused, {} new\n\n",
        users.len(),
        count("syncing"),
        count("failing"),
        count("paused"),
        count("new")
    )
}

fn interval_text(secs: u64) -> String {
    if secs % 3600 == 0 {
        format!("{} h", secs / 3600)
    } else if secs % 60 == 0 {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

/// One line per user, aligned on the longest address; the error column is last and cut, so
/// long messages do not break the table.
fn table(users: &[UserStatus], routes: &AutoRoutes, now: DateTime<Utc>) -> String {
    let width = users
        .iter()
        .map(|u| u.user.as_str().chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    let row = |cells: [&str; 13]| {
        format!(
            "{:<width$} {:<7} {:<7} {:<13} {:>7} {:>7} {:>7} {:>9} {:>8} {:>8} {:>6} {:>10}  {}\n",
            cells[0],
            cells[1],
            cells[12],
            cells[2],
            cells[3],
            cells[4],
            cells[5],
            cells[6],
            cells[7],
            cells[8],
            cells[9],
            cells[10],
            cells[11],
        )
    };
    let mut out = row([
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
        "LAST ERROR",
        "BACKEND",
    ]);
    let mut cut = false;
    for u in users {
        let run = u.last_run.as_ref();
        let counts = run.map(|r| r.counts).unwrap_or_default();
        let error = printable(run.and_then(|r| r.error.as_deref()).unwrap_or(""));
        let error = if error.chars().count() > ERROR_CELL {
            cut = true;
            format!(
                "{}…",
                error.chars().take(ERROR_CELL - 1).collect::<String>()
            )
        } else {
            error
        };
        out.push_str(&row([
            u.user.as_str(),
            u.state(),
            &run.map_or("never".to_owned(), |r| ago(r.finished, now)),
            &counts.created.to_string(),
            &counts.updated.to_string(),
            &counts.deleted.to_string(),
            &counts.conflicts.to_string(),
            &counts.failures.to_string(),
            &u.contact_pairs.to_string(),
            &u.event_pairs.to_string(),
            &u.unresolved.to_string(),
            &error,
            &match routes.get(&u.user) {
                Some(route) => auto_routes::cell(route.as_ref()),
                None => run
                    .and_then(|r| r.backend.as_deref())
                    .unwrap_or("-")
                    .to_owned(),
            },
        ]));
    }
    if cut {
        out.push_str("(errors cut short: `exsync status --user ADDRESS` shows the whole text)\n");
    }
    out
}

/// Where each `auto` user's mailbox was found, and why.
fn located(routes: &AutoRoutes, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    for (user, route) in routes {
        if out.is_empty() {
            out.push_str("\nMailboxes located automatically:\n");
        }
        out.push_str(&format!(
            "  {user}: {}\n",
            auto_routes::line(route.as_ref(), now)
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

/// The users a configuration assigns whom the last pass found no active CRM user for.
fn unmatched_table(unmatched: &[UnmatchedUser]) -> String {
    if unmatched.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "\nConfigured users not synced ({}; `exsync check` says more):\n",
        unmatched.len()
    );
    for user in unmatched {
        out.push_str(&format!(
            "  {}  since {}: {}\n",
            printable(user.user.as_str()),
            user.first_seen.format("%Y-%m-%d %H:%M"),
            printable(&user.reason)
        ));
    }
    out
}

/// Which worker holds each user and the org-wide CRM read, on a store several workers share.
fn leases_table(leases: &[LeaseInfo], now: DateTime<Utc>) -> String {
    if leases.is_empty() {
        return "\nWorkers: no user is being synced right now.\n".to_owned();
    }
    let mut out = "\nWorkers:\n".to_owned();
    for lease in leases {
        out.push_str(&format!("  {}\n", lease_line(lease, now)));
    }
    out
}

fn lease_line(lease: &LeaseInfo, now: DateTime<Utc>) -> String {
    let holder = printable(&lease.holder);
    let what = printable(&lease.scope.to_string());
    if lease.expired {
        format!(
            "{what}: held by {holder} until {}, LAPSED: the worker stopped renewing it \
             (stopped, stalled or cut off); another worker takes it over",
            ago(lease.expires_at, now)
        )
    } else {
        format!(
            "{what}: held by {holder}, {} s left on its lease (epoch {})",
            (lease.expires_at - now).num_seconds().max(0),
            lease.epoch
        )
    }
}

/// `s` with its control characters escaped, so printing it cannot drive the terminal.
pub(crate) fn printable(s: &str) -> String {
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
    store.append_audit(&exsync_store::AuditEvent {
        at: Utc::now(),
        actor: super::cli_actor(),
        action: "user.reset".to_owned(),
        detail: json!({ "user": user, "pairs": counts.pairs, "cursors": counts.cursors }),
    })?;
    println!(
        "Reset {user}: forgot {} pairs and {} cursors{}. No contact or event was changed; the next pass matches everything again.",
        counts.pairs,
        counts.cursors,
        if counts.was_paused { ", and resumed the user" } else { "" }
    );
    Ok(ExitCode::SUCCESS)
}
