//! `exsync check`: the connectivity analyzer from the command line, plus a look at the
//! permissions of the state database and key file on this server. Exit 1 when a step
//! failed, so scripts can gate a go-live on it.
//!
//! A check changes nothing: the file permissions are read before anything is opened, and
//! when there is no state database or no master key yet, the secrets are reported missing
//! rather than a database or key created to look for them.

use std::process::ExitCode;

use anyhow::Context;
use exsync_core::config::{load, StoreConfig};
use exsync_engine::check::files::{permissions, state_files, LocalFile};
use exsync_engine::check::{run as run_checks, Inputs};
use exsync_engine::vault::MASTER_KEY_ENV;

use super::secrets::{key_file_path, open_vault};
use crate::cli::CheckArgs;

pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let config = load(&args.config.config).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    // Absolute, so that the fix can be pasted from anywhere.
    let key_file = key_file_path(&args.config, &args.key);
    let key_file = std::path::absolute(&key_file).unwrap_or(key_file);
    let key_from_env = std::env::var_os(MASTER_KEY_ENV).is_some();
    let state = match &config.store {
        StoreConfig::Sqlite { path } => Some(path.clone()),
        StoreConfig::Postgres { .. } => None,
    };
    let mut files = state.as_deref().map(state_files).unwrap_or_default();
    files.push(LocalFile {
        what: "master key file",
        path: key_file.clone(),
        expected: !key_from_env,
    });
    let mut local = permissions(&files);

    let state_exists = state.as_deref().is_none_or(|p| p.exists());
    let key_exists = key_from_env || key_file.exists();
    let inputs = if state_exists && key_exists {
        let (_, vault, _) = open_vault(&args.config, &args.key)?;
        Inputs::from_vault(config, &vault, args.user.clone())?.with_kerberos(&vault)
    } else {
        local.evidence.push(if state_exists {
            format!(
                "no master key ({MASTER_KEY_ENV} is not set and {} does not exist), so no stored secret can be read",
                key_file.display()
            )
        } else {
            "no state database yet, so no secret is stored".to_owned()
        });
        Inputs::without_secrets(config, args.user.clone())
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut report = runtime.block_on(run_checks(&inputs));
    report.push_front(local);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
