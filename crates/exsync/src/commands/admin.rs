//! `exsync admin add-user|add-token`: bootstrapping console access from the command line.

use std::process::ExitCode;

use anyhow::bail;
use chrono::Utc;
use exsync_console::{hash_password, new_api_token, sha256_hex};
use exsync_store::{AuditEvent, Role, StoreError};
use serde_json::json;

use super::secrets::read_secret;
use super::state::open_store;
use crate::cli::{AdminAddArgs, AdminCommand, RoleArg};

fn role(r: RoleArg) -> Role {
    match r {
        RoleArg::Admin => Role::Admin,
        RoleArg::Operator => Role::Operator,
        RoleArg::Viewer => Role::Viewer,
    }
}

pub fn run(command: AdminCommand) -> anyhow::Result<ExitCode> {
    match command {
        AdminCommand::AddUser(args) => add_user(&args),
        AdminCommand::AddToken(args) => add_token(&args),
    }
}

fn check_name(name: &str) -> anyhow::Result<String> {
    let name = name.trim();
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
    {
        bail!("name {name:?} is not valid: 1-64 letters, digits, '.', '_', '-' or '@'");
    }
    Ok(name.to_owned())
}

fn add_user(args: &AdminAddArgs) -> anyhow::Result<ExitCode> {
    let name = check_name(&args.name)?;
    let store = open_store(&args.config)?;
    let password = read_secret(&format!("Password for {name}: "))?;
    if password.expose().chars().count() < 12 {
        bail!("the password must be at least 12 characters");
    }
    let hash = hash_password(password.expose())?;
    let role = role(args.role);
    match store.create_admin_user(&name, &hash, role, Utc::now()) {
        Err(StoreError::AlreadyExists { .. }) => bail!("an account named {name} already exists"),
        other => other?,
    }
    store.append_audit(&AuditEvent {
        at: Utc::now(),
        actor: super::cli_actor(),
        action: "admin_user.create".to_owned(),
        detail: json!({ "name": name, "role": role }),
    })?;
    eprintln!("account {name} created with role {role}");
    Ok(ExitCode::SUCCESS)
}

fn add_token(args: &AdminAddArgs) -> anyhow::Result<ExitCode> {
    let name = check_name(&args.name)?;
    let store = open_store(&args.config)?;
    let token = new_api_token();
    let role = role(args.role);
    let id = store.create_api_token(&sha256_hex(&token), &name, role, Utc::now())?;
    store.append_audit(&AuditEvent {
        at: Utc::now(),
        actor: super::cli_actor(),
        action: "api_token.create".to_owned(),
        detail: json!({ "name": name, "role": role, "id": id }),
    })?;
    eprintln!("API token {name} (#{id}, role {role}) created; it is shown only this once:");
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}
