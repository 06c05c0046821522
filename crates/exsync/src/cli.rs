//! The command line. Each subcommand's arguments are a struct here; the code that runs it is
//! in `commands/<name>.rs`. A new command is one enum variant, one struct, one module.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "exsync",
    version = VERSION,
    about = "Keeps CRM contacts and events in sync with Exchange mailboxes"
)]
pub struct Cli {
    /// The configuration file, before or after the subcommand. Default: exsync.toml.
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// `exsync --version`: the release and the commit it was built from (see `build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("EXSYNC_COMMIT"),
    ")"
);

/// The configuration file when neither `-c` nor a `config` command's FILE names one.
pub const DEFAULT_CONFIG: &str = "exsync.toml";

impl Cli {
    /// Gives every command the configuration file named once on the command line: `-c` before
    /// or after the subcommand, or `config check FILE`; `exsync.toml` otherwise.
    pub fn resolve_config(mut self) -> Command {
        let chosen = self
            .config
            .take()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
        let fill = |arg: &mut ConfigFileArg| arg.config = chosen.clone();
        match &mut self.command {
            Command::Run(a) => fill(&mut a.config),
            Command::Sync(a) => fill(&mut a.config),
            #[cfg(feature = "demo")]
            Command::Demo(_) => {}
            Command::Config(ConfigCommand::Check(a)) => {
                a.file.get_or_insert(chosen.clone());
            }
            Command::Config(ConfigCommand::Show(a)) => {
                a.file.get_or_insert(chosen.clone());
            }
            Command::Status(a) => fill(&mut a.config),
            Command::Reset(a) => fill(&mut a.config),
            Command::Serve(a) => fill(&mut a.config),
            Command::Secrets(SecretsCommand::List(a) | SecretsCommand::RotateKey(a)) => {
                fill(&mut a.config)
            }
            Command::Secrets(SecretsCommand::Set(a) | SecretsCommand::Delete(a)) => {
                fill(&mut a.common.config)
            }
            Command::Admin(AdminCommand::AddUser(a) | AdminCommand::AddToken(a)) => {
                fill(&mut a.config)
            }
            Command::Check(a) => fill(&mut a.config),
            Command::Store(StoreCommand::Copy(a)) => fill(&mut a.config),
        }
        self.command
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The sync service: a pass every poll interval until SIGINT or SIGTERM.
    Run(RunArgs),
    /// One pass now; with --dry-run, print the plan and write nothing.
    Sync(SyncArgs),
    /// Run both simulators and a full sync on this machine: seeded users, a first sync,
    /// scripted changes on both sides, a second sync, a table, and a convergence check
    /// (exit 0 only if both sides agree).
    #[cfg(feature = "demo")]
    Demo(DemoArgs),
    /// Check or show a configuration file (exsync.toml).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Show each user's sync status: last pass, counts, errors, pause, unresolved items.
    Status(StatusArgs),
    /// Reset Sync for a user: forget their pairs and cursors (never any data), so the next
    /// pass matches everything again without duplicates.
    Reset(ResetArgs),
    /// Serve the admin console: setup pages and the JSON API.
    Serve(ServeArgs),
    /// Store, list and re-key the encrypted secrets (service account password, CRM key).
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Manage the console's accounts and API tokens.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Check connectivity to Exchange and the CRM, step by step, with evidence and fixes.
    Check(CheckArgs),
    /// Move the state database to PostgreSQL.
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy the configuration's SQLite state (pairs, cursors, unresolved items, echo log,
    /// journal, secrets' ciphertext, accounts, audit) into an empty PostgreSQL database, in
    /// one transaction, so syncing there re-matches nothing. Stop the service first; then
    /// set `[store] url` to the target.
    Copy(StoreCopyArgs),
}

#[derive(Debug, Args)]
pub struct StoreCopyArgs {
    #[command(flatten)]
    pub config: ConfigFileArg,
    /// The target database: postgres://user@host[:port]/db, without a password.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// A file (mode 0600) holding the target database's password; else
    /// EXSYNC_STORE_PASSWORD, else none.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// CA certificates (PEM) the target's certificate is verified against, instead of the
    /// system roots.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

/// The configuration file a command works with: `-c FILE` anywhere on the command line (see
/// [`Cli::resolve_config`]).
#[derive(Debug, Args)]
pub struct ConfigFileArg {
    #[arg(skip = PathBuf::from(DEFAULT_CONFIG))]
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
    /// The configuration file (or -c FILE; default exsync.toml).
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Toml,
    Json,
}

#[derive(Debug, Args)]
pub struct ConfigShowArgs {
    /// The configuration file (or -c FILE; default exsync.toml).
    pub file: Option<PathBuf>,
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

#[derive(Debug, Args)]
pub struct KeyFileArg {
    /// The master key file (created 0600 on first use). Default: exsync.key beside the
    /// configuration file. EXSYNC_MASTER_KEY (base64 of 32 bytes) takes precedence.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigFileArg,
    #[command(flatten)]
    pub key: KeyFileArg,
    /// Listen here instead of [console] listen (an address other than loopback needs TLS).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Store a secret; the value is read from stdin, or from a prompt that does not echo.
    /// Names: exchange.password, crm.private_key, crm.client_secret, and for Exchange Online
    /// exchange_online.certificate, exchange_online.private_key, exchange_online.client_secret.
    Set(SecretSetArgs),
    /// Delete a stored secret.
    Delete(SecretSetArgs),
    /// List the stored secrets' names and when they were set (never their values).
    List(SecretsArgs),
    /// Re-encrypt every secret under a new master key, in one transaction.
    RotateKey(SecretsArgs),
}

#[derive(Debug, Args)]
pub struct SecretsArgs {
    #[command(flatten)]
    pub config: ConfigFileArg,
    #[command(flatten)]
    pub key: KeyFileArg,
}

#[derive(Debug, Args)]
pub struct SecretSetArgs {
    #[command(flatten)]
    pub common: SecretsArgs,
    /// The secret's name: exchange.password, crm.private_key, crm.client_secret,
    /// exchange_online.certificate, exchange_online.private_key or exchange_online.client_secret.
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Admin,
    Operator,
    Viewer,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a console account; its password is read from stdin or a no-echo prompt.
    AddUser(AdminAddArgs),
    /// Create an API token with a role; the token is printed once and stored hashed.
    AddToken(AdminAddArgs),
}

#[derive(Debug, Args)]
pub struct AdminAddArgs {
    #[command(flatten)]
    pub config: ConfigFileArg,
    /// The account's or token's name.
    pub name: String,
    /// What the account or token may do: view, operate (pause, reset, test) or administer.
    #[arg(long, value_enum)]
    pub role: RoleArg,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigFileArg,
    #[command(flatten)]
    pub key: KeyFileArg,
    /// The mailbox to check impersonation and folder access for (default: the first user
    /// assigned individually to an active configuration).
    #[arg(long, value_name = "EMAIL")]
    pub user: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[cfg(feature = "demo")]
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Users (mailboxes and CRM users).
    #[arg(long, default_value_t = 3)]
    pub users: usize,
    /// CRM contacts per user (at least 5; a fifth as many are made in Outlook).
    #[arg(long, default_value_t = 20)]
    pub contacts: usize,
    /// CRM events per user (a fifth as many are made in Outlook).
    #[arg(long, default_value_t = 20)]
    pub events: usize,
    /// Users whose mailbox is in Exchange Online from the start (default: a third of them); the
    /// last user on premises moves online between the two passes.
    #[arg(long, value_name = "N")]
    pub online: Option<usize>,
    /// Keep the simulators running afterwards, print how to reach them, and keep syncing
    /// every poll interval as `exsync run` does, until Ctrl-C or SIGTERM.
    #[arg(long)]
    pub keep_running: bool,
    /// Seconds between passes with --keep-running.
    #[arg(long, value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub poll_interval: u64,
    /// Keep the simulators' data and the state database here instead of a temporary folder.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// How the service logs in to the simulated Exchange: NTLM, or Kerberos from a throwaway
    /// MIT KDC on 127.0.0.1 (needs the Debian packages krb5-kdc and krb5-admin-server).
    #[arg(long, value_enum, default_value_t = DemoAuthArg::Ntlm)]
    pub auth: DemoAuthArg,
    /// Sync with N `exsync run` processes (at least 2) sharing a throwaway PostgreSQL (needs
    /// the Debian package postgresql), kill one in the middle and watch the others finish.
    #[arg(long, value_name = "N", conflicts_with_all = ["keep_running", "online", "auth"])]
    pub workers: Option<usize>,
}

#[cfg(feature = "demo")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoAuthArg {
    Ntlm,
    Kerberos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigFileArg,
    #[command(flatten)]
    pub key: KeyFileArg,
    /// Log format (default: service.log_format of the configuration).
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormatArg>,
    /// Serve /metrics, /healthz and /readyz here instead of service.metrics_listen: each
    /// worker on one host needs a port of its own (e.g. 127.0.0.1:946%i in a systemd template).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub config: ConfigFileArg,
    #[command(flatten)]
    pub key: KeyFileArg,
    /// Only this user (the org-wide CRM cursors then stay where they are).
    #[arg(long, value_name = "EMAIL")]
    pub user: Option<String>,
    /// Print what would be done and write nothing, to either side or to the state database.
    #[arg(long)]
    pub dry_run: bool,
    /// Switch sync on (as the console's switch does) and run no pass.
    #[arg(long, conflicts_with_all = ["disable", "dry_run", "user"])]
    pub enable: bool,
    /// Switch sync off (as the console's switch does): the service runs no pass until it is
    /// switched on again.
    #[arg(long, conflicts_with_all = ["dry_run", "user"])]
    pub disable: bool,
    /// Log format (default: service.log_format of the configuration).
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormatArg>,
}
