//! `exsync config check` and `exsync config show`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use exsync_core::config::{
    configuration_toml, configuration_value, explain_assignment, load, AssignedBy, ConfigErrors,
    ExsyncConfig, StoreConfig, SyncConfiguration,
};
use exsync_core::UserKey;

use crate::cli::{ConfigCheckArgs, ConfigCommand, ConfigShowArgs, Format};

pub fn run(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConfigCommand::Check(args) => check(&args),
        ConfigCommand::Show(args) => show(&args),
    }
}

/// The file a `config` command reads: resolved by `Cli::resolve_config`, so always set.
fn file(file: &Option<std::path::PathBuf>) -> std::path::PathBuf {
    file.clone()
        .unwrap_or_else(|| crate::cli::DEFAULT_CONFIG.into())
}

fn check(args: &ConfigCheckArgs) -> anyhow::Result<ExitCode> {
    let path = file(&args.file);
    match load(&path) {
        Ok(config) => {
            print!("{}", summary(&path, &config));
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            println!("{errors}");
            println!("{}", count_line(&errors));
            Ok(ExitCode::FAILURE)
        }
    }
}

fn count_line(errors: &ConfigErrors) -> String {
    match errors.len() {
        1 => "1 problem found".to_owned(),
        n => format!("{n} problems found"),
    }
}

/// The word the file uses for an enum value.
fn word<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::from("?"),
    }
}

fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let items: Vec<&str> = items.collect();
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

fn describe(c: &SyncConfiguration) -> String {
    let state = if c.active { "active" } else { "inactive" };
    let mut events = word(&c.events.direction);
    if let (true, Some(w)) = (
        c.events.direction != exsync_core::config::Direction::Off,
        c.events.window,
    ) {
        events.push_str(&format!(
            " ({} days back, {} ahead)",
            w.past_days, w.future_days
        ));
    }
    format!(
        "  {} ({state}): contacts {} ({}), events {events}\n    users: {}\n    groups: {}\n",
        c.name,
        word(&c.contacts.direction),
        word(&c.contact_scope),
        list(c.users.iter().map(UserKey::as_str)),
        list(c.groups.iter().map(String::as_str)),
    )
}

fn summary(file: &Path, config: &ExsyncConfig) -> String {
    let store = match &config.store {
        StoreConfig::Sqlite { path } => format!("SQLite {}", path.display()),
        StoreConfig::Postgres { url, .. } => format!("PostgreSQL {url}"),
    };
    let mut out = format!("{}: OK\nstore: {store}\n", file.display());
    if let Some(x) = &config.exchange {
        let endpoint = x.ews_url.as_deref().unwrap_or("Autodiscover");
        out.push_str(&format!(
            "exchange: {} via {endpoint} (auth {})\n",
            x.service_account,
            x.auth.as_str()
        ));
    }
    if let Some(o) = &config.exchange_online {
        let mut users = if o.all_users {
            "every user".to_owned()
        } else {
            format!("{} listed users", o.users.len())
        };
        if o.auto {
            users.push_str(", the others located by Autodiscover");
        } else if !o.auto_users.is_empty() {
            users.push_str(&format!(", {} located by Autodiscover", o.auto_users.len()));
        }
        if let (true, Some(domain)) = (o.routes_automatically(), o.routing_domain()) {
            users.push_str(&format!(" (routing domain {domain})"));
        }
        out.push_str(&format!(
            "exchange online: app {} in tenant {} ({} cloud, {}) for {users}\n",
            o.client_id,
            o.tenant,
            o.cloud.as_str(),
            o.credential.as_str(),
        ));
    }
    let crm = &config.crm;
    let crm_user = crm
        .username
        .as_deref()
        .map(|u| format!(" as {u}"))
        .unwrap_or_default();
    let active = config.configurations.iter().filter(|c| c.active).count();
    out.push_str(&format!(
        "crm: {} at {} (auth {}{crm_user})\nconfigurations: {} ({active} active)\n",
        crm.kind.as_str(),
        crm.login_url,
        crm.auth.as_str(),
        config.configurations.len(),
    ));
    for c in &config.configurations {
        out.push_str(&describe(c));
    }
    out
}

/// How the user's mailbox backend is chosen, from the configuration alone: the decision of
/// an `auto` rule is the service's, shown by `exsync status --user`.
fn mailbox_routing(config: &exsync_core::config::ExsyncConfig, user: &UserKey) -> String {
    match &config.exchange_online {
        Some(online) => online.explain_routing(user.as_str()),
        None => "ews (no [exchange_online] section)".to_owned(),
    }
}

fn show(args: &ConfigShowArgs) -> anyhow::Result<ExitCode> {
    let config = match load(&file(&args.file)) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{}", count_line(&errors));
            return Ok(ExitCode::FAILURE);
        }
    };
    let Some(user) = &args.user else {
        match args.format {
            Format::Toml => print!("{}", config.to_toml_string()?),
            Format::Json => println!("{}", serde_json::to_string_pretty(&config.to_json())?),
        }
        return Ok(ExitCode::SUCCESS);
    };
    let user = UserKey::from_email(user);
    let groups: BTreeSet<String> = args
        .groups
        .iter()
        .map(|g| g.trim().to_owned())
        .filter(|g| !g.is_empty())
        .collect();
    let assignment = explain_assignment(&config.configurations, &user, &groups);
    let applied = assignment
        .configuration
        .as_deref()
        .and_then(|name| config.configuration(name));
    match args.format {
        Format::Json => {
            let value = serde_json::json!({
                "paired_by": config.crm.mailbox_field.as_str(),
                "assignment": assignment,
                "mailbox": mailbox_routing(&config, &user),
                "configuration": applied.map(configuration_value),
            });
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        Format::Toml => {
            println!("# user: {}", assignment.user);
            // The rule is shown because it decides which CRM user is this mailbox's: under
            // anything but Email, the CRM user's Email is not what pairs them.
            println!(
                "# paired by {}: {} → mailbox {}",
                config.crm.mailbox_field,
                user.as_str(),
                user.as_str()
            );
            match (&assignment.configuration, assignment.assigned_by) {
                (Some(name), Some(AssignedBy::Individual)) => {
                    println!("# configuration: {name} (assigned individually)")
                }
                (Some(name), Some(AssignedBy::Group)) => println!(
                    "# configuration: {name} (through group `{}`)",
                    assignment.group.as_deref().unwrap_or("?")
                ),
                _ => println!("# configuration: none"),
            }
            for reason in &assignment.reasons {
                println!("# - {reason}");
            }
            println!("# mailbox: {}", mailbox_routing(&config, &user));
            if let Some(c) = applied {
                let text = configuration_toml(c).context("rendering the configuration as TOML")?;
                print!("\n{text}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
