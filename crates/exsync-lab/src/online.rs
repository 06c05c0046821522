//! Exchange Online in the lab: the Graph simulator beside the Exchange one, the Graph backend
//! wired to it, and mailbox moves from on premises to online.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use exsync_core::plan::Change;
use exsync_core::{AllowList, Contact, Event, ItemId, ItemKind, Record};
use exsync_engine::connect::graph::setup::OnlineSide;
use exsync_engine::connect::graph::{GraphConnection, GraphSettings};
use exsync_engine::sync::mailboxes::{Backend, Optional, Unconfigured};
use exsync_engine::sync::sides::MailboxSide;
use exsync_graph::mapping::{write_contact, write_event};
use exsync_graph::{Cloud, Credential, GraphClient, GraphConfig, GraphRequest, Secret};
use exsync_sim::graph::{GraphSim, Options};
use serde_json::json;

use super::{Lab, LabUser};

/// The sync folder's name in the lab's mailboxes (the configuration's default).
const FOLDER: &str = "Salesforce_Sync";

/// The lab tenant's routing domain: a remote mailbox's targetAddress is in it, and
/// on-premises Autodiscover redirects a moved mailbox there.
pub const ROUTING_DOMAIN: &str = "contoso.mail.onmicrosoft.com";

/// How the written `[exchange_online]` routes mailboxes.
pub(super) enum Routing<'a> {
    /// These users online (every user when `None`), the others on premises.
    Listed(Option<&'a [&'a LabUser]>),
    /// Every mailbox located by on-premises Autodiscover.
    Auto,
    /// These users online and these located by Autodiscover, the others on premises.
    Some {
        online: &'a [&'a LabUser],
        auto: &'a [&'a LabUser],
    },
}

/// How the lab's service locates `auto` users: on-premises Autodiscover over the EWS client's
/// connections, at the simulator (`mail_host`'s domain), as the service built from the written
/// configuration does.
pub(super) fn auto_routing(
    http: Arc<exsync_ews::HttpClient>,
    mail_host: &str,
) -> exsync_engine::sync::locate::AutoRouting {
    let domain = mail_host.trim_start_matches("mail.");
    let autodiscover = exsync_ews::Autodiscover::new(
        http,
        exsync_ews::AutodiscoverConfig::new(AllowList::new([domain])),
    );
    exsync_engine::sync::locate::AutoRouting::new(Arc::new(
        exsync_engine::connect::locate::AutodiscoverLocator::new(autodiscover, ROUTING_DOMAIN),
    ))
}

/// The Graph simulator with a mailbox for each of `users` lab users, and a client of its app.
/// The app's signing key is `key_pem` when given (generating one is slow in a debug build).
pub(super) async fn start(
    dir: &Path,
    users: usize,
    key_pem: Option<&[u8]>,
    observer: exsync_core::observe::Observer,
) -> Result<(GraphSim, Arc<GraphClient>)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if let Some(pem) = key_pem {
        let key = dir.join("app-key.pem");
        if !key.exists() {
            std::fs::write(&key, pem).with_context(|| format!("writing {}", key.display()))?;
        }
    }
    let options = Options {
        mailboxes: users,
        ..Options::default()
    };
    let sim = GraphSim::start_with(dir, "127.0.0.1:0".parse()?, &options)
        .await
        .context("starting the Graph simulator")?;
    let info = &sim.info;
    let authority = info.authority_url();
    let mut config = GraphConfig::new(
        info.tenant_id.clone(),
        info.client_id.clone(),
        Cloud::custom(authority, info.graph_url.clone()),
        Credential::Secret(Secret::new(info.client_secret.clone())),
    );
    config.ca_pem = Some(std::fs::read(&info.ca_pem)?);
    config.system_roots = false;
    config.allow = AllowList::new(["127.0.0.1"]);
    config.limits.timeout = Duration::from_secs(30);
    config.observer = Some(observer);
    let client = Arc::new(GraphClient::new(config).context("Graph connector")?);
    Ok((sim, client))
}

/// The Graph backend over that client, or none.
pub(super) fn side(client: Option<&Arc<GraphClient>>, app_id: &str) -> OnlineSide {
    match client {
        Some(client) => Optional::Configured(Box::new(GraphConnection::new(
            Arc::clone(client),
            GraphSettings::new(app_id),
        ))),
        None => Optional::Unconfigured(Unconfigured(Backend::Graph)),
    }
}

impl Lab {
    /// Moves the user's mailbox online as a mailbox move does: every item of the sync folder
    /// and of the calendar arrives in Exchange Online with its content and our tags under a
    /// new id, and the service serves the user through Graph from then on. Returns how many
    /// items moved.
    pub async fn move_online(&self, user: &LabUser) -> Result<usize> {
        let moved = self.copy_online(user).await?;
        self.syncer.exchange.route(user.key.clone(), Backend::Graph);
        Ok(moved)
    }

    /// Moves the user's mailbox online as a completed migration does, telling the service
    /// nothing: every item copied to Exchange Online, and on premises a remote mailbox whose
    /// Autodiscover answer redirects to its routing address and which EWS no longer finds.
    /// Returns how many items moved.
    pub async fn migrate_online(&self, user: &LabUser) -> Result<usize> {
        let moved = self.copy_online(user).await?;
        self.make_remote(user).await?;
        Ok(moved)
    }

    /// Has the lab's service look `user`'s mailbox up again, as it does when the backend it
    /// used no longer finds the mailbox: for a user located automatically, Autodiscover's
    /// answer now decides where the service (and the scripted Outlook edits made through it)
    /// reaches the mailbox. Returns what the service noticed.
    pub async fn relocate(&self, user: &LabUser) -> Result<Vec<exsync_store::Notice>> {
        self.syncer
            .exchange
            .settle_route(&user.key, &self.syncer.store, true, false)
            .await
            .map_err(|e| anyhow::anyhow!("locating {}: {e}", user.key))
    }

    /// Makes the user's on-premises mailbox a remote one (see [`Self::migrate_online`]).
    pub async fn make_remote(&self, user: &LabUser) -> Result<()> {
        let local = user.key.as_str().split('@').next().unwrap_or_default();
        self.exchange_control(
            reqwest::Method::POST,
            "/autodiscover",
            &json!({
                "mailbox": user.key.as_str(),
                "redirect_addr": format!("{local}@{ROUTING_DOMAIN}"),
                "remote": true,
            }),
        )
        .await?;
        Ok(())
    }

    /// Copies the user's on-premises sync folder and calendar into Exchange Online, content
    /// and tags, as a mailbox move does; returns how many items were copied.
    pub(super) async fn copy_online(&self, user: &LabUser) -> Result<usize> {
        let Some(client) = &self.graph else {
            bail!("the lab has no Exchange Online (LabOptions::exchange_online)");
        };
        let base = format!("/users/{}", user.key.as_str());
        let folder = self.online_folder(client, &base).await?;
        let mut moved = 0;
        for kind in [ItemKind::Contact, ItemKind::Event] {
            let items = self
                .syncer
                .exchange
                .ews()
                .read_folder(&user.key, kind)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            for change in items {
                let Change::Upsert(item) = change else {
                    continue;
                };
                let origin = match &item.origin {
                    Some(ItemId::Crm(id)) => Some(id.clone()),
                    _ => None,
                };
                let (url, body) = match kind {
                    ItemKind::Contact => (
                        format!("{base}/contactFolders/{folder}/contacts"),
                        write_contact(&Contact::from_fields(&item.fields)?, origin.as_ref()),
                    ),
                    ItemKind::Event => (
                        format!("{base}/events"),
                        write_event(&Event::from_fields(&item.fields)?, origin.as_ref()),
                    ),
                };
                client
                    .send(GraphRequest::new(reqwest::Method::POST, url).json(body))
                    .await
                    .with_context(|| format!("moving an item of {}", user.key))?;
                moved += 1;
            }
        }
        Ok(moved)
    }

    /// The id of the user's sync folder online, made when missing.
    pub(super) async fn online_folder(&self, client: &GraphClient, base: &str) -> Result<String> {
        let listed = client
            .get(&format!("{base}/contactFolders?$select=id,displayName"))
            .await?;
        let found = listed["value"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["displayName"] == FOLDER)
            .and_then(|f| f["id"].as_str());
        if let Some(id) = found {
            return Ok(id.to_owned());
        }
        let made = client
            .send(
                GraphRequest::new(reqwest::Method::POST, format!("{base}/contactFolders"))
                    .json(json!({ "displayName": FOLDER })),
            )
            .await?;
        made.body["id"]
            .as_str()
            .map(str::to_owned)
            .context("the new folder has no id")
    }

    /// Calls the Graph simulator's control API (faults, scopes, token lifetimes).
    pub async fn graph_control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value> {
        let Some(sim) = &self.graph_sim else {
            bail!("the lab has no Exchange Online (LabOptions::exchange_online)");
        };
        let pem = std::fs::read(&sim.info.ca_pem)?;
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem)?)
            .build()?;
        let url = format!("{}{path}", sim.info.control_url);
        super::call(&client, method, &url, &sim.info.control_token, body).await
    }

    /// The users whose mailbox is online now.
    pub fn online_users(&self) -> Vec<&LabUser> {
        let rule = self.syncer.exchange.rule();
        self.users
            .iter()
            .filter(|u| rule.backend_of(&u.key) == Backend::Graph)
            .collect()
    }
}

/// `[exchange_online]` for the lab's Graph simulator, naming `users` (every user when `None`).
pub(super) fn config_section(sim: &GraphSim, routing: Routing<'_>) -> Result<String> {
    let info = &sim.info;
    let quoted = |s: &str| super::toml_string(s);
    let authority = info.authority_url();
    let routing = match routing {
        Routing::Auto => format!("auto = true\nrouting_domain = {}", quoted(ROUTING_DOMAIN)),
        Routing::Listed(None) => "all_users = true".to_owned(),
        Routing::Some { online, auto } => {
            let list = |users: &[&LabUser]| {
                users
                    .iter()
                    .map(|u| quoted(u.key.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "users = [{}]\nauto_users = [{}]\nrouting_domain = {}",
                list(online),
                list(auto),
                quoted(ROUTING_DOMAIN)
            )
        }
        Routing::Listed(Some(users)) => format!(
            "users = [{}]",
            users
                .iter()
                .map(|u| quoted(u.key.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Ok(format!(
        "\n[exchange_online]\ntenant = {}\nclient_id = {}\ncredential = \"secret\"\n{routing}\n\
         authority_url = {}\ngraph_url = {}\nca_file = {}\n",
        quoted(&info.tenant_id),
        quoted(&info.client_id),
        quoted(authority),
        quoted(&info.graph_url),
        quoted(&info.ca_pem.display().to_string()),
    ))
}
