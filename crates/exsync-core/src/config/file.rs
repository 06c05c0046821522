//! The whole `exsync.toml`: connections, service settings and the sync configurations.
//! Every optional setting has its default here, so the documented defaults live in one place.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::model::SyncConfiguration;

/// Exchange's default `EWSMaxConcurrency` per account; we must stay under it.
pub const EXCHANGE_MAX_CONCURRENCY_LIMIT: u32 = 27;
/// Longest event window on either side of today, in days (ten years).
pub const MAX_WINDOW_DAYS: u32 = 3650;

/// `store.path` when none is given: a SQLite file beside the configuration file.
pub const DEFAULT_STORE_PATH: &str = "exsync.db";
/// `exchange.sync_folder` when none is given: the contacts subfolder that syncs in each mailbox.
pub const DEFAULT_SYNC_FOLDER: &str = "Salesforce_Sync";
/// `exchange.max_concurrency` when none is given; kept well under
/// [`EXCHANGE_MAX_CONCURRENCY_LIMIT`].
pub const DEFAULT_MAX_CONCURRENCY: u32 = 10;
/// `crm.login_url` when none is given: Salesforce production (sandboxes use
/// `https://test.salesforce.com`).
pub const DEFAULT_LOGIN_URL: &str = "https://login.salesforce.com";
/// `crm.api_reserve` when none is given: a fifth of the daily API allowance is left to other
/// integrations.
pub const DEFAULT_API_RESERVE: f64 = 0.2;
/// `crm.settle_secs` when none is given.
pub const DEFAULT_CRM_SETTLE_SECS: u64 = 2;
/// `service.poll_interval_secs` when none is given: five minutes between passes.
pub const DEFAULT_POLL_INTERVAL_SECS: u64 = 300;
/// `service.concurrent_users` when none is given.
pub const DEFAULT_CONCURRENT_USERS: u32 = 4;
/// `service.per_user_concurrency` when none is given; lowered to `exchange.max_concurrency` if that
/// is smaller. Three requests out per mailbox hide most of a distant server's latency from a
/// first sync, and stay within every limit Exchange sets: EWS charges impersonated requests to
/// the service account's own budget (27 at once by default), which `max_concurrency` caps
/// lower, and Graph takes four per mailbox.
pub const DEFAULT_PER_USER_CONCURRENCY: u32 = 3;
/// `service.metrics_listen` when none is given: loopback only, Prometheus' usual port.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";
/// `console.listen` when none is given: loopback only, so the console is not exposed by accident.
pub const DEFAULT_CONSOLE_LISTEN: &str = "127.0.0.1:8080";
/// The largest reply read from any server, in MiB. Genuine replies stay far below it: a
/// Salesforce query page of 2,000 records is a few MiB (64 only if every record carried a
/// full 32,000-character description), and Exchange refuses EWS messages over 64 MiB.
pub const DEFAULT_MAX_REPLY_MIB: u64 = 64;
/// Bounds of `network.max_reply_mib`: at least one page must fit, and no single reply should
/// be allowed to take gigabytes of memory.
pub const MAX_REPLY_MIB_RANGE: (u64, u64) = (1, 1024);

/// The configuration file, read and checked, with every default filled in. Relative paths
/// have been resolved against the directory of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct ExsyncConfig {
    /// Where the sync state (pairs, cursors, failures) is kept.
    pub store: StoreConfig,
    /// How the service account reaches Exchange on premises over EWS; `None` when every
    /// mailbox is in Exchange Online.
    pub exchange: Option<ExchangeConfig>,
    /// How exsync reaches Exchange Online mailboxes through Microsoft Graph, and which users'
    /// mailboxes are there; `None` when the organisation has none.
    pub exchange_online: Option<super::ExchangeOnlineConfig>,
    /// Limits and overrides for every outgoing connection, to Exchange and to the CRM alike.
    pub network: NetworkConfig,
    /// The contact folder under Contacts that syncs, in every mailbox whichever backend serves
    /// it, so a mailbox that moves online keeps its folder (`[exchange] sync_folder`, or
    /// `[exchange_online] sync_folder` when there is no `[exchange]`).
    pub sync_folder: String,
    /// How the service account reaches the CRM.
    pub crm: CrmConfig,
    /// How the service runs passes and reports on them.
    pub service: ServiceConfig,
    /// Where the admin console listens.
    pub console: ConsoleConfig,
    /// In name order.
    pub configurations: Vec<SyncConfiguration>,
}

impl ExsyncConfig {
    /// The sync configuration called `name`, if the file defines one.
    pub fn configuration(&self, name: &str) -> Option<&SyncConfiguration> {
        self.configurations.iter().find(|c| c.name == name)
    }
}

/// Where the state database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// A SQLite file (the default, `exsync.db` beside the configuration file).
    Sqlite {
        /// The database file, resolved against the configuration file's directory.
        path: PathBuf,
    },
    /// A PostgreSQL database shared by several workers. The URL carries no password: the
    /// vault keeps its ciphertext in this database, so the password that opens it comes from
    /// `password_file` or `EXSYNC_STORE_PASSWORD` instead.
    Postgres {
        /// A `postgres://` connection URL without the password (`?sslmode=` allowed).
        url: String,
        /// A file holding only the database password, readable by its owner alone (0600).
        password_file: Option<PathBuf>,
        /// The CA certificates (PEM) the server's certificate is verified against, instead of
        /// the system's roots.
        ca_file: Option<PathBuf>,
        /// How this process shares the database's users with the other workers.
        worker: WorkerConfig,
    },
}

/// `lease_secs` when none is given: a worker that dies leaves its users for a minute.
pub const DEFAULT_LEASE_SECS: u64 = 60;

/// `worker_batch` when none is given.
pub const DEFAULT_WORKER_BATCH: u32 = 20;

/// One worker among several on a PostgreSQL store (`[store]` `worker_id`, `lease_secs`,
/// `worker_batch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// The worker's name in leases and status; the host name and process id when not given.
    pub id: Option<String>,
    /// How long a worker's lease on a user lasts unless renewed; renewed every third of it.
    /// A worker that stops renewing (killed, stalled, cut off) loses its users after this.
    pub lease_secs: u64,
    /// How many users a worker takes at a time.
    pub batch: u32,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            id: None,
            lease_secs: DEFAULT_LEASE_SECS,
            batch: DEFAULT_WORKER_BATCH,
        }
    }
}

/// How the service account authenticates to Exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExchangeAuth {
    /// Kerberos when a realm is configured and the server offers Negotiate; else Basic when the
    /// server offers it, NTLM otherwise (Lightning Sync's rule).
    Auto,
    /// Basic only: the password goes with every request, which the HTTPS-only EWS URL protects.
    Basic,
    /// NTLMv2 only, with channel binding, for servers that refuse Basic.
    Ntlm,
    /// Kerberos only (HTTP Negotiate), with channel binding and mutual authentication.
    Kerberos,
}

impl ExchangeAuth {
    /// The setting's spelling in `exchange.auth`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeAuth::Auto => "auto",
            ExchangeAuth::Basic => "basic",
            ExchangeAuth::Ntlm => "ntlm",
            ExchangeAuth::Kerberos => "kerberos",
        }
    }
}

/// The `[exchange]` section: where EWS is, the service account that impersonates each mailbox, and
/// how hard it may be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeConfig {
    /// The EWS endpoint; `None` means Autodiscover finds it per mailbox.
    pub ews_url: Option<String>,
    /// `user@domain` or `DOMAIN\user`; its password is in the vault.
    pub service_account: String,
    /// How the service account authenticates.
    pub auth: ExchangeAuth,
    /// Mailbox domains besides the service account's that Autodiscover may send credentials
    /// to, lower-cased.
    pub other_domains: Vec<String>,
    /// Extra CA certificates (PEM) trusted besides the system roots, for on-premises PKI.
    pub ca_file: Option<PathBuf>,
    /// Most EWS requests in flight for the service account at once.
    pub max_concurrency: u32,
    /// When set, every SOAP request and response is written there, secrets redacted.
    pub wire_trace_dir: Option<PathBuf>,
    /// The Kerberos realm (upper case); the service account logs in as `user@REALM`.
    pub realm: Option<String>,
    /// The realm's KDCs (`host` or `host:port`); empty means the krb5.conf decides.
    pub kdcs: Vec<String>,
    /// A krb5.conf to use instead of one written from `realm` and `kdcs`.
    pub krb5_conf: Option<PathBuf>,
}

impl ExchangeConfig {
    /// The service account's Kerberos principal: its user name at the configured realm, else at
    /// its own domain in upper case (`svc@contoso.com` → `svc@CONTOSO.COM`).
    pub fn kerberos_principal(&self) -> Option<String> {
        let (user, domain) = match self.service_account.split_once('\\') {
            Some((_, user)) => (user, None),
            None => match self.service_account.rsplit_once('@') {
                Some((user, domain)) => (user, Some(domain)),
                None => (self.service_account.as_str(), None),
            },
        };
        let realm = self
            .realm
            .clone()
            .or_else(|| domain.map(str::to_ascii_uppercase))?;
        Some(format!("{user}@{realm}"))
    }

    /// Where the service account's password may be sent: its own domain (a `DOMAIN\user`
    /// account has none) and the other domains.
    pub fn allow_list(&self) -> crate::AllowList {
        let own = self.service_account.rsplit_once('@').map(|(_, d)| d);
        crate::AllowList::new(
            own.into_iter()
                .chain(self.other_domains.iter().map(String::as_str)),
        )
    }
}

/// The `[network]` section: settings shared by the connections to every server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Host name (lower-case) → address to connect to instead of asking DNS: split DNS
    /// inside a company, and tests against local simulators. TLS still checks the name.
    pub resolve: BTreeMap<String, SocketAddr>,
    /// The largest reply read from Exchange, Autodiscover or Salesforce, in MiB.
    pub max_reply_mib: u64,
}

impl NetworkConfig {
    /// `max_reply_mib` in bytes, as the HTTP clients enforce it.
    pub fn max_reply_bytes(&self) -> u64 {
        self.max_reply_mib.saturating_mul(1024 * 1024)
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            resolve: BTreeMap::new(),
            max_reply_mib: DEFAULT_MAX_REPLY_MIB,
        }
    }
}

/// Which CRM the `[crm]` section describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrmKind {
    /// Salesforce, through its REST API.
    Salesforce,
}

impl CrmKind {
    /// The setting's spelling in `crm.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            CrmKind::Salesforce => "salesforce",
        }
    }
}

/// How exsync obtains a CRM access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrmAuth {
    /// OAuth 2.0 JWT bearer: a signed assertion for `username`, no password stored.
    Jwt,
    /// OAuth 2.0 client credentials: the client secret is in the vault.
    ClientCredentials,
}

impl CrmAuth {
    /// The setting's spelling in `crm.auth`.
    pub fn as_str(self) -> &'static str {
        match self {
            CrmAuth::Jwt => "jwt",
            CrmAuth::ClientCredentials => "client_credentials",
        }
    }
}

/// The `[crm]` section: the org, the connected app and how much of the org's API allowance exsync
/// may use.
#[derive(Debug, Clone, PartialEq)]
pub struct CrmConfig {
    /// Which CRM this is; only Salesforce so far.
    pub kind: CrmKind,
    /// Where tokens are requested.
    pub login_url: String,
    /// The org's own URL (My Domain), when known; the token answer supplies it otherwise.
    pub instance_url: Option<String>,
    /// The connected app's consumer key (not a secret).
    pub client_id: String,
    /// How the token is obtained; decides whether `username` and a private key are needed.
    pub auth: CrmAuth,
    /// The integration user the JWT is issued for (`jwt` only).
    pub username: Option<String>,
    /// PEM private key that signs the JWT (`jwt` only); `None` means it is in the vault.
    pub private_key_file: Option<PathBuf>,
    /// Extra CA certificates (PEM) for the CRM connection.
    pub ca_file: Option<PathBuf>,
    /// Share of the org's daily API allowance exsync leaves untouched (0 ≤ share < 1).
    pub api_reserve: f64,
    /// Records stamped within this many seconds are read in the next pass: Salesforce stamps
    /// whole seconds, and a transaction still committing at the cursor's second must not be
    /// skipped.
    pub settle_secs: u64,
    /// The pairing rule: the user field that holds their mailbox's primary SMTP address.
    pub mailbox_field: super::MailboxField,
}

/// How the service writes its log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines, the default.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl LogFormat {
    /// The setting's spelling in `service.log_format`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// The `[service]` section: the pace and parallelism of passes and where metrics go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Pause between two passes over all users.
    pub poll_interval_secs: u64,
    /// Users synced at the same time.
    pub concurrent_users: u32,
    /// Requests in flight for one mailbox at once, and so the write batches a pass keeps out.
    pub per_user_concurrency: u32,
    /// Where Prometheus metrics are served; `None` turns them off.
    pub metrics_listen: Option<SocketAddr>,
    /// Text or JSON log lines; the command line may override it.
    pub log_format: LogFormat,
}

/// The `[console]` section: the admin web console's address and TLS files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// The file has a `[console]` section: `exsync run` then serves the console too.
    pub configured: bool,
    /// Address and port the console serves on.
    pub listen: SocketAddr,
    /// PEM certificate chain and key; both or neither.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key for `tls_cert_file`; both or neither.
    pub tls_key_file: Option<PathBuf>,
}

impl ServiceConfig {
    /// `service.metrics_listen` when the file leaves it out (the value of
    /// [`DEFAULT_METRICS_LISTEN`]).
    pub fn default_metrics_listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9464))
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            poll_interval_secs: DEFAULT_POLL_INTERVAL_SECS,
            concurrent_users: DEFAULT_CONCURRENT_USERS,
            per_user_concurrency: DEFAULT_PER_USER_CONCURRENCY,
            metrics_listen: Some(Self::default_metrics_listen()),
            log_format: LogFormat::Text,
        }
    }
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            configured: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}
