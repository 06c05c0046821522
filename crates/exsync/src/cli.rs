//! The command line. Each subcommand's arguments are a struct here; the code that runs it is
//! in `commands/<name>.rs`. A new command is one enum variant, one struct, one module.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "exsync",
    version,
    about = "Keeps CRM contacts and events in sync with Exchange mailboxes"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check or show a configuration file (exsync.toml).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Show each user's sync status: last pass, counts, errors, pause, unresolved items.
    Status(StatusArgs),
    /// Reset Sync for a user: forget their pairs and cursors (never any data), so the next
    /// pass matches everything again without duplicates.
    Reset(ResetArgs),
}

#[derive(Debug, Args)]
pub struct ConfigFileArg {
    /// The configuration file.
    #[arg(long, short = 'c', value_name = "FILE", default_value = "exsync.toml")]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub config: ConfigFileArg,
    /// Only this user, with their unresolved items, recent passes and conflicts.
    #[arg(long, value_name = "EMAIL")]
    pub user: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    #[command(flatten)]
    pub config: ConfigFileArg,
    /// The user to reset (primary SMTP address).
    #[arg(long, value_name = "EMAIL")]
    pub user: String,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Report every problem in the file (exit 1), or summarise it when it is clean.
    Check(ConfigCheckArgs),
    /// Print the effective configuration, defaults filled in; with --user, which
    /// configuration applies to that user and why.
    Show(ConfigShowArgs),
}

#[derive(Debug, Args)]
pub struct ConfigCheckArgs {
    /// The configuration file.
    pub file: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Toml,
    Json,
}

#[derive(Debug, Args)]
pub struct ConfigShowArgs {
    /// The configuration file.
    pub file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Toml)]
    pub format: Format,
    /// Show only the configuration that applies to this user (primary SMTP address).
    #[arg(long, value_name = "EMAIL")]
    pub user: Option<String>,
    /// The user's groups (Salesforce profile names), comma-separated.
    #[arg(long, value_name = "G,...", value_delimiter = ',', requires = "user")]
    pub groups: Vec<String>,
}
