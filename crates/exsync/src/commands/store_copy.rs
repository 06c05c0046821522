//! `exsync store copy --to postgres://…`: moving an organisation that outgrew SQLite onto
//! PostgreSQL with its links, cursors and history, so nothing is matched again.

use std::process::ExitCode;

use anyhow::{bail, Context};
use exsync_core::config::{load, StoreConfig};
use exsync_store::{
    copy_sqlite_to_postgres, Accounts, AuditEvent, PgOptions, PgStore, PgTls, SqliteStore,
};

use super::store_password::store_password;
use crate::cli::StoreCopyArgs;

pub fn run(args: &StoreCopyArgs) -> anyhow::Result<ExitCode> {
    let config = load(&args.config.config).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    let StoreConfig::Sqlite { path } = &config.store else {
        bail!(
            "{}: the state is already in PostgreSQL (store.url); store copy moves a SQLite \
             state (store.path)",
            args.config.config.display()
        );
    };
    if !path.exists() {
        bail!(
            "the SQLite state database {} does not exist",
            path.display()
        );
    }
    let source =
        SqliteStore::open(path).with_context(|| format!("state database {}", path.display()))?;
    let mut options = PgOptions::new(args.to.clone());
    options.password = store_password(args.password_file.as_deref())?;
    if let Some(ca) = &args.ca_file {
        options.tls = PgTls::CaFile(ca.clone());
    }
    let target = PgStore::open(&options).context("target database")?;
    let counts = copy_sqlite_to_postgres(&source, &target).context("store copy")?;
    target.append_audit(&AuditEvent {
        at: chrono::Utc::now(),
        actor: super::cli_actor(),
        action: "store.copy".into(),
        detail: serde_json::json!({ "from": path.display().to_string() }),
    })?;
    for (table, rows) in &counts {
        println!("{table:<18} {rows}");
    }
    eprintln!(
        "copied {} into {}; set [store] url = \"{}\" (and remove path) before the next start",
        path.display(),
        target.target(),
        args.to
    );
    Ok(ExitCode::SUCCESS)
}
