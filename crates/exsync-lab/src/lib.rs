//! A whole exsync installation on loopback: both simulators, CRM users matching the mailboxes,
//! and the sync service wired to them through the real connectors. `exsync demo`, the
//! end-to-end tests and the benchmark build on it.

pub mod bench;
mod check;
pub mod demo;
mod folders;
pub mod kerberos;
mod migration;
pub mod online;
mod outlook;
mod script;
mod seed;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use exsync_core::config::{KindRules, MailboxField, SyncConfiguration};
use exsync_core::{CrmId, ItemKind, UserKey};
use exsync_ews::{Credentials, EwsClient, EwsConfig};
use exsync_salesforce::{AuthConfig, SalesforceClient, SalesforceConfig, Secret};
use exsync_sim::exchange::{ExchangeSim, ExchangeSimOptions};
use exsync_sim::salesforce::SalesforceSim;
use exsync_store::{PgOptions, PgStore, SqliteStore, Store};
use serde_json::{json, Value};

use exsync_engine::connect::ews::{Endpoint, ExchangeConnection};
use exsync_engine::connect::graph::setup::OnlineSide;
use exsync_engine::connect::salesforce::SalesforceSide;
use exsync_engine::sync::mailboxes::Mailboxes;
use exsync_engine::sync::mailboxes::{Backend, BackendRule};
use exsync_engine::sync::service::Syncer;
use exsync_sim::graph::GraphSim;

pub use check::{Convergence, Problem};
pub use folders::{FolderChange, MailboxFolder};
pub use script::named;
pub use seed::{crm_contact, event, exchange_contact, Seed};

/// The profile every lab user has; the lab's configuration is assigned to it.
pub const PROFILE: &str = "Sales User";

/// What to build.
#[derive(Debug, Clone)]
pub struct LabOptions {
    pub dir: PathBuf,
    pub users: usize,
    /// Users synced at once.
    pub concurrency: usize,
    /// `service.per_user_concurrency` of the configuration `write_config` writes; its default
    /// when `None`.
    pub per_user_concurrency: Option<u32>,
    /// Write every EWS request and reply here.
    pub exchange_trace: Option<PathBuf>,
    /// Auth schemes the Exchange simulator offers (`basic`, `ntlm`, `negotiate`).
    pub exchange_auth: String,
    /// The keytab of `HTTP/mail.<domain>`, which `negotiate` needs.
    pub exchange_keytab: Option<PathBuf>,
    /// Salesforce records stamped within this long are left for the next pass.
    pub crm_settle: Duration,
    /// The Salesforce simulator's JWT signing key (PEM); generated when `None` (which takes a
    /// few seconds in a debug build, so tests that start many labs share one).
    pub crm_key_pem: Option<String>,
    /// The sync configuration; [`lab_configuration`] when `None`.
    pub configuration: Option<SyncConfiguration>,
    /// A PostgreSQL database (a `postgres://` URL without password) to keep the state in,
    /// instead of `exsync.db` in `dir`; the written configuration names it too.
    pub postgres_url: Option<String>,
    /// Exchange Online beside Exchange on premises: the Graph simulator, with the last this
    /// many users' mailboxes in it (the others on premises). `None`: on premises only.
    pub exchange_online: Option<usize>,
    /// The written `exsync.toml` locates every mailbox automatically (`[exchange_online] auto`,
    /// with [`online::ROUTING_DOMAIN`]) instead of naming the online ones.
    pub auto_routing: bool,
    /// These users (by index) are located by on-premises Autodiscover, as
    /// `[exchange_online] auto_users` does, in the lab's service and in the written
    /// configuration: a mailbox migrated online ([`Lab::migrate_online`]) is then followed
    /// with no change to either.
    pub auto_users: Vec<usize>,
    /// The users' time zone (IANA): their CRM `TimeZoneSidKey` and their on-premises
    /// mailboxes' zone. `None`: the simulators' own (`Europe/London` in the CRM, UTC in
    /// Exchange).
    pub time_zone: Option<String>,
    /// The service logs in to Exchange with Kerberos as this says (the simulator must offer
    /// `negotiate` with the service principal's keytab); NTLM when `None`.
    pub kerberos: Option<kerberos::LabKerberos>,
    /// The pairing rule (`crm.mailbox_field`). With a rule other than `Email` each CRM user's
    /// Email is an address at `home.test`, where no mailbox is, and the rule's field holds the
    /// mailbox address: only the rule pairs them.
    pub mailbox_field: MailboxField,
}

impl LabOptions {
    pub fn new(dir: impl Into<PathBuf>, users: usize) -> Self {
        LabOptions {
            dir: dir.into(),
            users,
            concurrency: 4,
            per_user_concurrency: None,
            exchange_trace: None,
            exchange_auth: "ntlm".into(),
            exchange_keytab: None,
            crm_settle: Duration::from_secs(1),
            crm_key_pem: None,
            configuration: None,
            postgres_url: None,
            exchange_online: None,
            auto_routing: false,
            auto_users: Vec::new(),
            time_zone: None,
            kerberos: None,
            mailbox_field: MailboxField::Email,
        }
    }
}

/// A syncing user: the mailbox and the CRM user that owns their records.
#[derive(Debug, Clone)]
pub struct LabUser {
    pub key: UserKey,
    pub crm_id: CrmId,
}

pub type LabSyncer = Syncer<Mailboxes<ExchangeConnection, OnlineSide>, SalesforceSide>;

pub struct Lab {
    pub options: LabOptions,
    pub exchange_sim: ExchangeSim,
    pub salesforce_sim: SalesforceSim,
    /// Exchange Online, when [`LabOptions::exchange_online`] asked for it.
    pub graph_sim: Option<GraphSim>,
    /// The Graph client the service uses, for moving mailboxes online.
    graph: Option<Arc<exsync_graph::GraphClient>>,
    pub users: Vec<LabUser>,
    pub syncer: Arc<LabSyncer>,
    /// The CRM as the integration user sees it, for seeding and reading back.
    pub crm: Arc<SalesforceClient>,
    /// What the service's connectors reported (requests, throttling waits).
    pub metrics: Arc<exsync_engine::metrics::Metrics>,
    control: reqwest::Client,
}

/// The lab's configuration: both ways for contacts and events, CRM wins conflicts, private
/// events included so the demo can show they stay private.
pub fn lab_configuration() -> SyncConfiguration {
    SyncConfiguration {
        name: "sales".into(),
        active: true,
        contacts: KindRules::default_for(ItemKind::Contact),
        contact_scope: exsync_core::config::ContactScope::Owned,
        contact_condition: None,
        events: KindRules {
            sync_private: true,
            ..KindRules::default_for(ItemKind::Event)
        },
        users: BTreeSet::new(),
        groups: BTreeSet::from([PROFILE.to_owned()]),
    }
}

impl Lab {
    pub async fn start(options: LabOptions) -> Result<Lab> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        std::fs::create_dir_all(&options.dir)
            .with_context(|| format!("creating {}", options.dir.display()))?;
        let mut exchange_options = ExchangeSimOptions::new(options.dir.join("exchange"));
        exchange_options.mailboxes = options.users;
        exchange_options.auth = options.exchange_auth.clone();
        exchange_options.keytab = options.exchange_keytab.clone();
        exchange_options.trace_dir = options.exchange_trace.clone();
        let exchange_sim = ExchangeSim::start(exchange_options)
            .await
            .context("starting the Exchange simulator")?;
        if let Some(pem) = &options.crm_key_pem {
            let dir = options.dir.join("salesforce");
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join(exsync_sim::salesforce::JWT_KEY_FILE), pem)?;
        }
        let salesforce_sim =
            SalesforceSim::start(&options.dir.join("salesforce"), "127.0.0.1:0".parse()?)
                .await
                .context("starting the Salesforce simulator")?;

        let info = &exchange_sim.info;
        let text = |v: &Value| {
            v.as_str()
                .map(str::to_owned)
                .context("sim.json lacks a field")
        };
        let ca_file = PathBuf::from(text(&info["ca_cert"])?);
        let ca_pem =
            std::fs::read(&ca_file).with_context(|| format!("reading {}", ca_file.display()))?;
        // Each simulator has its own CA, kept in its data directory.
        let crm_ca = std::fs::read(&salesforce_sim.info.ca_file)?;
        let control = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem)?)
            .add_root_certificate(reqwest::Certificate::from_pem(&crm_ca)?)
            .build()?;

        let mut lab_users = Vec::new();
        let mut seeds = Vec::new();
        for i in 1..=options.users {
            let address = format!("user{i}@contoso.test");
            seeds.push(crm_user_seed(&options, i, &address));
        }
        let seeded = post(
            &control,
            &salesforce_sim.info.control_url,
            &salesforce_sim.info.control_token,
            "/seed",
            &json!({ "users": seeds }),
        )
        .await?;
        for (i, user) in seeded["users"].as_array().into_iter().flatten().enumerate() {
            let id = user["id"].as_str().context("seeded user without an id")?;
            lab_users.push(LabUser {
                key: UserKey::new(format!("user{}@contoso.test", i + 1)),
                crm_id: CrmId::new(id),
            });
        }
        // The simulator leaves the last mailbox without impersonation rights; the lab syncs
        // them all, granted in one call.
        let mailboxes: Vec<&str> = lab_users.iter().map(|u| u.key.as_str()).collect();
        if !mailboxes.is_empty() {
            post(
                &control,
                text(&info["control_url"])?.as_str(),
                text(&info["control_token"])?.as_str(),
                "/impersonation",
                &json!({ "mailboxes": mailboxes, "allowed": true }),
            )
            .await?;
        }
        if let Some(zone) = &options.time_zone {
            call(
                &control,
                reqwest::Method::PUT,
                &format!("{}/mailboxes/time_zone", text(&info["control_url"])?),
                text(&info["control_token"])?.as_str(),
                &json!({ "time_zone": zone }),
            )
            .await?;
        }
        if lab_users.len() != options.users {
            bail!(
                "the Salesforce simulator seeded {} of {} users",
                lab_users.len(),
                options.users
            );
        }

        let sf = &salesforce_sim.info;
        let key = std::fs::read(&sf.private_key_file)
            .with_context(|| format!("reading {}", sf.private_key_file.display()))?;
        let mut crm_config = SalesforceConfig::new(
            sf.instance_url.clone(),
            AuthConfig::JwtBearer {
                client_id: sf.client_id.clone(),
                username: sf.integration_user.username.clone(),
                private_key_pem: Secret::new(key),
                audience: "https://login.salesforce.com".into(),
            },
        );
        crm_config.api_version = sf.api_version.clone();
        crm_config.ca_pem = Some(std::fs::read(&sf.ca_file)?);
        crm_config.settle = options.crm_settle;
        crm_config.limit_reserve = 0;
        crm_config.mailbox_field = options.mailbox_field.clone();
        let crm =
            Arc::new(SalesforceClient::new(crm_config.clone()).context("Salesforce connector")?);

        let account = &info["service_account"];
        let mut ews_config = EwsConfig::new(Credentials::new(
            text(&account["username"])?,
            text(&account["password"])?,
        ));
        ews_config.ca_file = Some(ca_file);
        if let Some(k) = &options.kerberos {
            ews_config.auth = exsync_ews::AuthMode::Kerberos;
            ews_config.kerberos = Some(exsync_ews::KerberosLogin {
                principal: k.principal.clone(),
                keytab: Some(k.client_keytab.clone()),
                files: None,
            });
        }
        ews_config.trace_dir = options.exchange_trace.as_ref().map(|d| d.join("client"));

        // The service reaches the simulator by its mail host name, which is inside the service
        // account's domain, as a configured EWS URL must be; the name resolves to loopback.
        let ews_url = url::Url::parse(&text(&info["ews_url_by_name"])?)?;
        let (mail_host, sim_addr) = sim_address(info)?;
        let mut resolve = exsync_ews::Resolve::new();
        resolve.insert(&mail_host, sim_addr);
        // Autodiscover's candidates for the mailboxes' domain, for the users located by it.
        resolve.insert(mail_host.trim_start_matches("mail."), sim_addr);
        resolve.insert(&mail_host.replacen("mail.", "autodiscover.", 1), sim_addr);
        ews_config.resolve = resolve;

        let metrics = Arc::new(exsync_engine::metrics::Metrics::default());
        let observer = exsync_core::observe::Observer(
            Arc::clone(&metrics) as Arc<dyn exsync_core::observe::RequestObserver>
        );
        ews_config.observer = Some(observer.clone());
        let ews = EwsClient::new(ews_config).context("EWS connector")?;
        crm_config.observer = Some(observer.clone());
        let (graph_sim, graph) = match options.exchange_online {
            Some(_) => {
                let key = std::fs::read(&sf.private_key_file)?;
                let (sim, client) = online::start(
                    &options.dir.join("graph"),
                    options.users,
                    Some(&key),
                    observer.clone(),
                )
                .await?;
                (Some(sim), Some(client))
            }
            None => (None, None),
        };
        let online_from = options.users - options.exchange_online.unwrap_or(0).min(options.users);
        let rule = lab_users[online_from..]
            .iter()
            .fold(BackendRule::every_user(Backend::Ews), |rule, u| {
                rule.with_user(u.key.clone(), Backend::Graph)
            });
        let rule = options
            .auto_users
            .iter()
            .filter_map(|&i| lab_users.get(i))
            .fold(rule, |rule, u| rule.with_auto_user(u.key.clone()));
        let ews_http = Arc::clone(ews.http());
        let app_id = graph_sim
            .as_ref()
            .map(|g| g.info.client_id.clone())
            .unwrap_or_default();
        let store: Arc<dyn Store> = match &options.postgres_url {
            Some(url) => Arc::new(PgStore::open(&PgOptions::new(url.clone()))?),
            None => Arc::new(SqliteStore::open(options.dir.join("exsync.db"))?),
        };
        let mut exchange = Mailboxes::new(
            ExchangeConnection::new(ews, Endpoint::Configured(ews_url)),
            online::side(graph.as_ref(), &app_id),
            rule,
        );
        if graph.is_some() {
            exchange = exchange.with_auto(online::auto_routing(ews_http, &mail_host));
        }
        let syncer = Arc::new(Syncer {
            exchange,
            crm: SalesforceSide {
                client: SalesforceClient::new(crm_config).context("Salesforce connector")?,
            },
            store,
            configurations: vec![options
                .configuration
                .clone()
                .unwrap_or_else(lab_configuration)],
            concurrency: options.concurrency,
            slice: exsync_engine::sync::pass::SLICE,
            worker: None,
        });
        Ok(Lab {
            options,
            exchange_sim,
            salesforce_sim,
            graph_sim,
            graph,
            users: lab_users,
            syncer,
            crm,
            metrics,
            control,
        })
    }

    /// Calls the Exchange simulator's control API.
    pub async fn exchange_control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> Result<Value> {
        let info = &self.exchange_sim.info;
        let url = format!("{}{path}", info["control_url"].as_str().unwrap_or_default());
        let token = info["control_token"].as_str().unwrap_or_default();
        call(&self.control, method, &url, token, body).await
    }

    /// Calls the Salesforce simulator's control API.
    pub async fn crm_control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> Result<Value> {
        let info = &self.salesforce_sim.info;
        call(
            &self.control,
            method,
            &format!("{}{path}", info.control_url),
            &info.control_token,
            body,
        )
        .await
    }
}

/// The simulator's seed of the CRM user whose mailbox is `address`, with the pairing rule's
/// field holding it.
fn crm_user_seed(options: &LabOptions, i: usize, address: &str) -> Value {
    let home = format!("user{i}@home.test");
    let (username, email, fields) = match &options.mailbox_field {
        MailboxField::Email => (format!("{address}.crm"), address.to_owned(), json!(null)),
        MailboxField::Username => (address.to_owned(), home, json!(null)),
        other => (
            format!("{address}.crm"),
            home,
            json!({ other.as_str(): address }),
        ),
    };
    json!({
        "username": username,
        "email": email,
        "fields": fields,
        "first_name": "User",
        "last_name": format!("{i}"),
        "profile": PROFILE,
        "time_zone": options.time_zone.as_deref().unwrap_or_default(),
    })
}

async fn post(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
    body: &Value,
) -> Result<Value> {
    call(
        client,
        reqwest::Method::POST,
        &format!("{base}{path}"),
        token,
        body,
    )
    .await
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: &Value,
) -> Result<Value> {
    let response = client
        .request(method.clone(), url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .with_context(|| format!("{method} {url}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{method} {url}: HTTP {status}: {text}");
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

impl Lab {
    /// Writes an `exsync.toml` for this lab, and stores its secrets in the vault under
    /// `master_key` (base64), so `exsync sync`, `run`, `status` and `serve` work against it.
    pub fn write_config(&self, path: &std::path::Path, master_key: &str) -> Result<()> {
        let x = &self.exchange_sim.info;
        let sf = &self.salesforce_sim.info;
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let quoted = |s: &str| toml_string(s);
        let (mail_host, sim_addr) = sim_address(x)?;
        let online = self.online_users();
        // The directions of the lab's configuration; its other rules are the defaults.
        let configuration = self
            .options
            .configuration
            .clone()
            .unwrap_or_else(lab_configuration);
        let direction = |kind: fn(&SyncConfiguration) -> &KindRules| {
            serde_json::to_value(kind(&configuration).direction)
                .map(|v| quoted(&text(&v)))
                .unwrap_or_default()
        };
        // An organisation entirely online has no [exchange] section and no password for it.
        let on_premises = online.len() < self.users.len() || self.graph_sim.is_none();
        let exchange = if on_premises {
            let trace = match &self.options.exchange_trace {
                Some(dir) => format!(
                    "wire_trace_dir = {}\n",
                    quoted(&dir.join("service").display().to_string())
                ),
                None => String::new(),
            };
            // Over Kerberos the password in the vault logs in; the KDC is found from here.
            let auth = match &self.options.kerberos {
                Some(k) => format!(
                    "auth = \"kerberos\"\nrealm = {}\nkdcs = [{}]",
                    quoted(&k.realm),
                    quoted(&k.kdc)
                ),
                None => "auth = \"ntlm\"".into(),
            };
            format!(
                "[exchange]\news_url = {}\nservice_account = {}\n{auth}\nca_file = {}\n{trace}",
                quoted(&text(&x["ews_url_by_name"])),
                quoted(&text(&x["service_account"]["upn"])),
                quoted(&text(&x["ca_cert"])),
            )
        } else {
            String::new()
        };
        let mut config = format!(
            r#"# Written by the exsync lab for its simulators.
[store]
{store}

{exchange}
[network.resolve]
{mail_host} = {sim_addr}
{domain} = {sim_addr}
{autodiscover_host} = {sim_addr}

[crm]
login_url = {login}
client_id = {client}
auth = "jwt"
username = {integration}
ca_file = {crm_ca}
api_reserve = 0.0
settle = {settle}
mailbox_field = {mailbox_field}

[service]
poll_interval = "10s"
concurrent_users = {concurrency}
{per_user}
[configurations.sales]
groups = [{profile}]

[configurations.sales.contacts]
direction = {contacts}

[configurations.sales.events]
direction = {events}
sync_private = true
"#,
            store = match &self.options.postgres_url {
                Some(url) => format!("url = {}", quoted(url)),
                None => format!(
                    "path = {}",
                    quoted(&self.options.dir.join("exsync.db").display().to_string())
                ),
            },
            // Autodiscover's candidates for the mailboxes' domain reach the simulator too.
            domain = quoted(mail_host.trim_start_matches("mail.")),
            autodiscover_host = quoted(&mail_host.replacen("mail.", "autodiscover.", 1)),
            mail_host = quoted(&mail_host),
            sim_addr = quoted(&sim_addr.to_string()),
            login = quoted(&sf.instance_url),
            client = quoted(&sf.client_id),
            integration = quoted(&sf.integration_user.username),
            crm_ca = quoted(&sf.ca_file.display().to_string()),
            concurrency = self.options.concurrency,
            per_user = self
                .options
                .per_user_concurrency
                .map(|n| format!("per_user_concurrency = {n}\n"))
                .unwrap_or_default(),
            settle = self.options.crm_settle.as_secs(),
            profile = quoted(PROFILE),
            contacts = direction(|c| &c.contacts),
            events = direction(|c| &c.events),
            mailbox_field = quoted(self.options.mailbox_field.as_str()),
        );
        if let Some(sim) = &self.graph_sim {
            let users = on_premises.then_some(online.as_slice());
            let auto: Vec<&LabUser> = self
                .options
                .auto_users
                .iter()
                .filter_map(|&i| self.users.get(i))
                .collect();
            let routing = if self.options.auto_routing {
                online::Routing::Auto
            } else if !auto.is_empty() {
                online::Routing::Some {
                    online: &online,
                    auto: &auto,
                }
            } else {
                online::Routing::Listed(users)
            };
            config.push_str(&online::config_section(sim, routing)?);
        }
        std::fs::write(path, config).with_context(|| format!("writing {}", path.display()))?;
        let key = exsync_engine::vault::MasterKey::from_base64(master_key)?;
        let vault = exsync_engine::vault::Vault::new(Arc::clone(&self.syncer.store), key);
        if on_premises {
            // Over Kerberos the KDC's password for the account, not the simulator's NTLM one.
            let password = match &self.options.kerberos {
                Some(k) => k.password.clone(),
                None => text(&x["service_account"]["password"]),
            };
            vault.set(
                exsync_engine::vault::EXCHANGE_PASSWORD,
                &exsync_engine::vault::SecretValue::new(password),
            )?;
        }
        if let Some(sim) = &self.graph_sim {
            vault.set(
                exsync_engine::connect::graph::setup::GRAPH_CLIENT_SECRET,
                &exsync_engine::vault::SecretValue::new(sim.info.client_secret.clone()),
            )?;
        }
        let pem = std::fs::read_to_string(&sf.private_key_file)?;
        vault.set(
            exsync_engine::vault::CRM_PRIVATE_KEY,
            &exsync_engine::vault::SecretValue::new(pem),
        )?;
        Ok(())
    }
}

/// The Exchange simulator's mail host name (from its by-name EWS URL) and the address it
/// listens on.
fn sim_address(info: &Value) -> Result<(String, std::net::SocketAddr)> {
    let by_name = info["ews_url_by_name"]
        .as_str()
        .context("sim.json lacks ews_url_by_name")?;
    let host = url::Url::parse(by_name)?
        .host_str()
        .context("the simulator's by-name EWS URL has no host")?
        .to_owned();
    let addr = format!(
        "{}:{}",
        info["host"].as_str().context("sim.json lacks host")?,
        info["port"].as_u64().context("sim.json lacks port")?
    )
    .parse()
    .context("the simulator's address")?;
    Ok((host, addr))
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let escaped: String = s
        .chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}
