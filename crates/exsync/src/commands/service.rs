//! `exsync run` (the service) and `exsync sync` (one pass).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use exsync_core::config::{load, ExsyncConfig, LogFormat};
use exsync_core::plan::Op;
use exsync_core::{ItemId, UserKey};
use exsync_engine::connect::build::{syncer, Secrets};
use exsync_engine::metrics::Metrics;
use exsync_engine::sync::daemon::{record, run_until_stopped};
use exsync_engine::sync::service::{PassOptions, PassReport};

use super::secrets::open_vault;
use super::serve::{prepare_console_kerberos, ConsoleServer};
use crate::cli::{ConfigFileArg, KeyFileArg, LogFormatArg, RunArgs, SyncArgs};
use exsync_engine::vault::Vault;
use exsync_store::Store;

/// Structured logs on stderr, as text or one JSON object per line. `RUST_LOG` refines the level.
fn init_logging(config: &ExsyncConfig, arg: Option<LogFormatArg>) {
    let json = match arg {
        Some(LogFormatArg::Json) => true,
        Some(LogFormatArg::Text) => false,
        None => config.service.log_format == LogFormat::Json,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only where a person reads them: a journal or a file gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

fn prepare(
    config_arg: &ConfigFileArg,
    key: &KeyFileArg,
    log_format: Option<LogFormatArg>,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Prepared> {
    let config = load(&config_arg.config).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    init_logging(&config, log_format);
    let (store, vault, _) = open_vault(config_arg, key)?;
    let secrets = Secrets::from_vault(&vault)?;
    let syncer = syncer(&config, Arc::clone(&store), &secrets, metrics)?;
    Ok(Prepared {
        config,
        syncer,
        store,
        vault,
    })
}

/// What a command that syncs works with.
struct Prepared {
    config: ExsyncConfig,
    syncer: Arc<exsync_engine::connect::build::ConfiguredSyncer>,
    store: Arc<dyn Store>,
    vault: Vault,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let metrics = Arc::new(Metrics::default());
    let Prepared {
        config,
        syncer,
        store,
        vault,
    } = prepare(&args.config, &args.key, args.log_format, &metrics)?;
    let interval = Duration::from_secs(config.service.poll_interval_secs.max(1));
    metrics.set(
        exsync_engine::metrics::names::BUILD_INFO,
        vec![("version", env!("CARGO_PKG_VERSION").to_owned())],
        1.0,
    );
    let _krb5_conf = config
        .console
        .configured
        .then(prepare_console_kerberos)
        .flatten();
    runtime()?.block_on(async {
        if let Some(addr) = args.metrics_listen.or(config.service.metrics_listen) {
            let listener = bind_metrics(addr, args.metrics_listen.is_some()).await?;
            let metrics = Arc::clone(&metrics);
            let readiness = Arc::new(exsync_engine::metrics::Readiness {
                store: Arc::clone(&syncer.store),
                interval,
                started: std::time::SystemTime::now(),
            });
            tokio::spawn(async move {
                if let Err(e) = exsync_engine::metrics::serve_on(listener, metrics, readiness).await
                {
                    tracing::error!(%addr, error = %e, "The metrics listener stopped; /metrics and /readyz no longer answer. Restart the service.");
                }
            });
        }
        // One service to supervise: the console runs beside the passes when configured.
        if config.console.configured {
            let listen = config.console.listen;
            let console =
                ConsoleServer::bind(&config, &args.config.config, store, vault, listen).await?;
            tracing::info!(url = %console.url, "Serving the console.");
            tokio::spawn(async move {
                if let Err(e) = console.serve().await {
                    tracing::error!(%listen, error = %e, "The console stopped.");
                }
            });
        }
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("Stopping: users already started finish their pass.");
            let _ = stop.send(true);
        });
        tracing::info!(interval_secs = interval.as_secs(), "Sync service started.");
        run_until_stopped(syncer, interval, metrics, stopped).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// The metrics listener, bound before any pass: a service whose probes cannot answer is not
/// one a supervisor can watch, so a taken port stops it at once with what to change.
async fn bind_metrics(
    addr: std::net::SocketAddr,
    from_flag: bool,
) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        let setting = if from_flag {
            "--metrics-listen"
        } else {
            "service.metrics_listen"
        };
        let taken = if e.kind() == std::io::ErrorKind::AddrInUse {
            " Another process holds the port; several workers on one host need a port each."
        } else {
            ""
        };
        anyhow::anyhow!(
            "cannot serve metrics on {addr} ({setting}): {e}.{taken} Give this worker its own \
             with `exsync run --metrics-listen 127.0.0.1:PORT`, or set `metrics_listen = false` \
             under [service] to serve none."
        )
    })
}

/// SIGINT or SIGTERM.
pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub fn sync(args: &SyncArgs) -> anyhow::Result<ExitCode> {
    if args.enable || args.disable {
        return switch(&args.config, args.enable);
    }
    let metrics = Arc::new(Metrics::default());
    let syncer = prepare(&args.config, &args.key, args.log_format, &metrics)?.syncer;
    let options = PassOptions {
        only_user: args.user.as_deref().map(UserKey::from_email),
        dry_run: args.dry_run,
        ..PassOptions::default()
    };
    let report = runtime()?.block_on(async {
        let started = std::time::Instant::now();
        let report = syncer.run_pass(&options).await;
        if let Ok(report) = &report {
            record(&metrics, report, started.elapsed());
        }
        report
    })?;
    print!("{}", summary(&report, args.dry_run));
    let failed = report.crm_error.is_some() || report.failed_users() > 0;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `exsync sync --enable | --disable`: the console's switch, from the command line (audited
/// the same way). It needs no connector and no secret.
fn switch(config: &ConfigFileArg, enabled: bool) -> anyhow::Result<ExitCode> {
    let store = super::state::open_store(config)?;
    let was = exsync_engine::switch::is_enabled(store.as_ref())?;
    exsync_engine::switch::set_enabled(store.as_ref(), enabled, chrono::Utc::now())?;
    store.append_audit(&exsync_store::AuditEvent {
        at: chrono::Utc::now(),
        actor: super::cli_actor(),
        action: if enabled {
            "sync.enable"
        } else {
            "sync.disable"
        }
        .to_owned(),
        detail: serde_json::json!({}),
    })?;
    let now = if enabled { "on" } else { "off" };
    let note = if was == enabled {
        " (it already was)"
    } else {
        ""
    };
    println!("Sync is switched {now}{note}.");
    Ok(ExitCode::SUCCESS)
}

/// The record a plan's line is about, by the id its name is kept under.
fn record_of(op: &Op) -> Option<ItemId> {
    match op {
        Op::Create { source, .. } => Some(source.clone()),
        Op::Update { crm_id, .. }
        | Op::Delete { crm_id, .. }
        | Op::Link { crm_id, .. }
        | Op::Forget { crm_id, .. }
        | Op::Conflict { crm_id, .. } => Some(ItemId::Crm(crm_id.clone())),
        Op::Skip { id, .. } => Some(id.clone()),
        Op::PauseUser { .. } => None,
    }
}

fn describe(op: &Op) -> String {
    match op {
        Op::Create {
            kind,
            on,
            source,
            replaces,
            ..
        } => match replaces {
            Some(_) => format!("recreate {kind} {source} in {on}"),
            None => format!("create {kind} in {on} from {source}"),
        },
        Op::Update {
            kind,
            on,
            crm_id,
            exchange_id,
            changed,
            ..
        } => {
            format!(
                "update {kind} {crm_id}/{exchange_id} in {on}: {}",
                changed.join(", ")
            )
        }
        Op::Delete {
            kind,
            on,
            crm_id,
            exchange_id,
        } => format!("delete {kind} {crm_id}/{exchange_id} in {on}"),
        Op::Link {
            kind,
            crm_id,
            exchange_id,
            reason,
            ..
        } => format!("link {kind} {crm_id}/{exchange_id} ({reason:?})"),
        Op::Forget {
            kind,
            crm_id,
            exchange_id,
            reason,
        } => format!("forget {kind} {crm_id}/{exchange_id}: {reason}"),
        Op::Conflict {
            kind,
            crm_id,
            conflict,
            ..
        } if conflict.first_link => format!(
            "first link of {kind} {crm_id} field {}: taken from the newer {}",
            conflict.field, conflict.winner
        ),
        Op::Conflict {
            kind,
            crm_id,
            conflict,
            ..
        } => {
            format!(
                "conflict on {kind} {crm_id} field {}: {} wins",
                conflict.field, conflict.winner
            )
        }
        Op::Skip { kind, id, reason } => format!("skip {kind} {id}: {reason}"),
        Op::PauseUser { kind, reason } => format!("pause the user ({kind}s): {reason}"),
    }
}

fn summary(report: &PassReport, dry_run: bool) -> String {
    let mut out = String::new();
    if report.disabled {
        out.push_str("Sync is switched off (exsync serve, Setup); nothing was done.\n");
    }
    if let Some(e) = &report.crm_error {
        out.push_str(&format!(
            "The CRM could not be read; no user was synced: {e}\n"
        ));
    }
    for user in &report.users {
        let who = user
            .user
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        if dry_run {
            let ops: usize = user.plans.iter().map(|(_, ops)| ops.len()).sum();
            // A user whose pass could not be planned says why, as `sync` does.
            let error = user
                .error
                .as_deref()
                .map(|e| format!("  ERROR: {e}"))
                .unwrap_or_default();
            out.push_str(&format!("{who}: {ops} operations planned{error}\n"));
            for (_, ops) in &user.plans {
                for op in ops {
                    let name = record_of(op).and_then(|id| user.names.get(&id));
                    out.push_str(&format!(
                        "  {}{}\n",
                        super::state::printable(&describe(op)),
                        super::state::named(name.map(String::as_str))
                    ));
                }
            }
        } else {
            let c = user.counts;
            out.push_str(&format!(
                "{who}: created {} updated {} deleted {} conflicts {} failures {}{}{}\n",
                c.created,
                c.updated,
                c.deleted,
                c.conflicts,
                c.failures,
                user.paused
                    .as_deref()
                    .map(|p| format!("  PAUSED: {p}"))
                    .unwrap_or_default(),
                user.error
                    .as_deref()
                    .map(|e| format!("  ERROR: {e}"))
                    .unwrap_or_default(),
            ));
            for n in &user.notices {
                out.push_str(&format!("  NOTICE [{}] {} {}\n", n.code, n.message, n.fix));
            }
        }
    }
    // Paused users are named; CRM users no configuration assigns are most of a large org and
    // not news, so they are counted.
    let (paused, unassigned): (Vec<_>, Vec<_>) = report
        .skipped
        .iter()
        .partition(|(_, why)| why.starts_with("paused"));
    for (user, why) in paused {
        out.push_str(&format!("{user}: PAUSED ({why})\n"));
    }
    match unassigned.len() {
        0 => {}
        1 => out.push_str(&format!(
            "{}: not synced ({}; `exsync config show --user ADDRESS` explains)\n",
            unassigned[0].0, unassigned[0].1
        )),
        n => out.push_str(&format!(
            "{n} CRM users are not synced: no active configuration assigns them \
             (`exsync config show --user ADDRESS` explains)\n"
        )),
    }
    for (user, why) in &report.missing_users {
        out.push_str(&format!("{user}: configured but not synced ({why})\n"));
    }
    for user in &report.skipped_crm_users {
        // Debug formatting quotes and escapes the address: it is whatever the CRM holds.
        out.push_str(&format!(
            "CRM user {} ({:?}): not synced ({})\n",
            user.crm_id, user.address, user.reason
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One line per user who synced or is paused; the CRM users no configuration assigns are
    /// counted on one line, however many.
    #[test]
    fn the_summary_names_paused_users_and_counts_the_unassigned() {
        let mut skipped: Vec<(UserKey, String)> = (0..500)
            .map(|i| {
                (
                    UserKey::from_email(&format!("u{i}@x.test")),
                    "no active configuration".to_owned(),
                )
            })
            .collect();
        skipped.push((
            UserKey::from_email("p@x.test"),
            "paused: mass delete".to_owned(),
        ));
        let report = PassReport {
            skipped,
            ..PassReport::default()
        };
        let text = summary(&report, false);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.contains("p@x.test: PAUSED (paused: mass delete)"),
            "{text}"
        );
        assert!(text.contains("500 CRM users are not synced"), "{text}");
    }

    /// A dry run names a failing user's error on the user's line, as a real run does.
    #[test]
    fn a_dry_run_prints_a_failing_users_error() {
        let failing = exsync_engine::sync::pass::UserReport {
            user: Some(UserKey::from_email("a@x.test")),
            error: Some("Exchange refused the login: 401".to_owned()),
            ..exsync_engine::sync::pass::UserReport::default()
        };
        let report = PassReport {
            users: vec![failing],
            ..PassReport::default()
        };
        for dry_run in [true, false] {
            let text = summary(&report, dry_run);
            assert!(
                text.contains("a@x.test: ")
                    && text.contains("ERROR: Exchange refused the login: 401"),
                "dry run {dry_run}: {text}"
            );
        }
    }

    /// A dry run's plan names each record next to its ids, deletes and skips too, on one
    /// terminal line.
    #[test]
    fn a_dry_runs_plan_names_its_records() {
        use exsync_core::{CrmId, ExchangeId, ItemKind, Side};
        let (crm, exchange) = (CrmId::new("003A"), ExchangeId::new("AAMk1"));
        let skipped = ItemId::Exchange(ExchangeId::new("AAMk2"));
        let user = exsync_engine::sync::pass::UserReport {
            user: Some(UserKey::from_email("a@x.test")),
            plans: vec![(
                ItemKind::Contact,
                vec![
                    Op::Delete {
                        kind: ItemKind::Contact,
                        on: Side::Exchange,
                        crm_id: crm.clone(),
                        exchange_id: exchange,
                    },
                    Op::Skip {
                        kind: ItemKind::Contact,
                        id: skipped.clone(),
                        reason: "not created in crm: no last name\u{1b}[2J".into(),
                    },
                ],
            )],
            names: [
                (ItemId::Crm(crm), "Ann Lee <ann@x.test>".to_owned()),
                (skipped, "Bo\nLee\u{1b}[31m <bo@x.test>".to_owned()),
            ]
            .into_iter()
            .collect(),
            ..exsync_engine::sync::pass::UserReport::default()
        };
        let report = PassReport {
            users: vec![user],
            ..PassReport::default()
        };
        let text = summary(&report, true);
        assert!(
            text.contains("  delete contact 003A/AAMk1 in exchange \"Ann Lee <ann@x.test>\"\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "  skip contact exchange:AAMk2: not created in crm: no last name\\u{1b}[2J \"Bo Lee[31m <bo@x.test>\"\n"
            ),
            "{text}"
        );
    }
}
