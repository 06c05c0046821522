//! `exsync secrets set|delete|list|rotate-key`, and the pieces other commands share: opening the
//! vault and reading a secret from stdin or a prompt that does not echo (never from argv,
//! which other local users can read in the process list).

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use exsync_engine::vault::{
    load_master_key, staged_key_path, KeySource, MasterKey, SecretValue, Vault, KNOWN_SECRETS,
    MASTER_KEY_ENV,
};
use exsync_store::{AuditEvent, Store};

use super::state::open_store;
use crate::cli::{ConfigFileArg, KeyFileArg, SecretsArgs, SecretsCommand};

pub fn run(command: SecretsCommand) -> anyhow::Result<ExitCode> {
    match command {
        SecretsCommand::Set(args) => {
            known(&args.name)?;
            let (store, vault, _) = open_vault(&args.common.config, &args.common.key)?;
            let value = read_secret(&format!("Value for {}: ", args.name))?;
            vault.set(&args.name, &value)?;
            audit(store.as_ref(), "secret.set", &args.name)?;
            eprintln!("secret {} stored (encrypted)", args.name);
            Ok(ExitCode::SUCCESS)
        }
        SecretsCommand::Delete(args) => {
            known(&args.name)?;
            let (store, vault, _) = open_vault(&args.common.config, &args.common.key)?;
            if !vault.delete(&args.name)? {
                eprintln!("exsync: no secret named {} is stored", args.name);
                return Ok(ExitCode::FAILURE);
            }
            audit(store.as_ref(), "secret.delete", &args.name)?;
            eprintln!("secret {} deleted", args.name);
            Ok(ExitCode::SUCCESS)
        }
        SecretsCommand::List(args) => {
            let (_, vault, _) = open_vault(&args.config, &args.key)?;
            let secrets = vault.list()?;
            if secrets.is_empty() {
                println!("no secrets stored");
            }
            for s in secrets {
                println!(
                    "{}\t{}",
                    s.name,
                    s.updated_at.format("%Y-%m-%d %H:%M:%S UTC")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        SecretsCommand::RotateKey(args) => rotate(&args),
    }
}

/// Refuses a name the service never reads: it would be stored and silently unused.
fn known(name: &str) -> anyhow::Result<()> {
    if !KNOWN_SECRETS.contains(&name) {
        bail!(
            "unknown secret name {name:?}: exsync reads only {}",
            KNOWN_SECRETS.join(", ")
        );
    }
    Ok(())
}

/// Records a change of the vault from the command line (the name, never the value).
fn audit(store: &dyn Store, action: &str, name: &str) -> anyhow::Result<()> {
    store.append_audit(&AuditEvent {
        at: chrono::Utc::now(),
        actor: super::cli_actor(),
        action: action.to_owned(),
        detail: serde_json::json!({ "name": name }),
    })?;
    Ok(())
}

fn rotate(args: &SecretsArgs) -> anyhow::Result<ExitCode> {
    let (store, vault, source) = open_vault(&args.config, &args.key)?;
    match source {
        KeySource::File(path) => {
            // The new key is on disk before the database switches to it, so a crash in
            // between never leaves secrets under a key that exists nowhere.
            let staged = staged_key_path(&path);
            let _ = std::fs::remove_file(&staged);
            let new_key = MasterKey::generate();
            exsync_engine::vault::create_key_file(&staged, &new_key)?;
            let moved = match vault.rotate(&new_key) {
                Ok(n) => n,
                Err(e) => {
                    let _ = std::fs::remove_file(&staged);
                    return Err(e.into());
                }
            };
            std::fs::rename(&staged, &path).with_context(|| {
                format!(
                    "the secrets are now under the key in {}; move it to {} by hand",
                    staged.display(),
                    path.display()
                )
            })?;
            eprintln!(
                "{moved} secrets re-encrypted; new master key written to {}",
                path.display()
            );
        }
        KeySource::Env => {
            // The key lives wherever the operator keeps EXSYNC_MASTER_KEY; they supply the
            // new one the same way (on stdin), and set it in the environment afterwards.
            let text = read_secret("New master key (base64 of 32 bytes): ")?;
            let new_key = MasterKey::from_base64(text.expose())?;
            let moved = vault.rotate(&new_key)?;
            eprintln!(
                "{moved} secrets re-encrypted; set {MASTER_KEY_ENV} to the new key before the next start"
            );
        }
    }
    audit(store.as_ref(), "secret.rotate_key", "every secret")?;
    Ok(ExitCode::SUCCESS)
}

pub fn key_file_path(config: &ConfigFileArg, key: &KeyFileArg) -> PathBuf {
    key.key_file.clone().unwrap_or_else(|| {
        config
            .config
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| p.join("exsync.key"))
            .unwrap_or_else(|| PathBuf::from("exsync.key"))
    })
}

pub fn open_vault(
    config: &ConfigFileArg,
    key: &KeyFileArg,
) -> anyhow::Result<(Arc<dyn Store>, Vault, KeySource)> {
    let store = open_store(config)?;
    let env = std::env::var(MASTER_KEY_ENV).ok();
    let (master, source) = load_master_key(env.as_deref(), &key_file_path(config, key))?;
    Ok((store.clone(), Vault::new(store, master), source))
}

/// A secret from a no-echo prompt when stdin is a terminal, else all of stdin (one trailing
/// newline removed, so `echo pw |` works and a PEM file keeps its lines).
pub fn read_secret(prompt: &str) -> anyhow::Result<SecretValue> {
    let stdin = std::io::stdin();
    let value = if stdin.is_terminal() {
        rpassword::prompt_password(prompt).context("cannot read from the terminal")?
    } else {
        let mut text = String::new();
        stdin
            .lock()
            .read_to_string(&mut text)
            .context("cannot read the value from stdin")?;
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        text
    };
    let value = SecretValue::new(value);
    if value.is_empty() {
        bail!("the value is empty; nothing stored");
    }
    Ok(value)
}
