//! The Exchange Online steps, run when `[exchange_online]` is configured: a token for the
//! app from the identity platform (and its certificate's expiry), the tenant-wide Entra
//! permissions that would bypass the RBAC for Applications scope, and per mailbox checked the
//! app's scope, the contact sync folder and the primary calendar.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use exsync_core::config::{ExchangeOnlineConfig, ExsyncConfig, OnlineCredential};
use exsync_core::UserKey;
use exsync_graph::{Error as GraphFailure, GraphClient, CERTIFICATE_WARNING_DAYS};
use serde_json::Value;

use super::{sync_folder, Inputs, Outcome, Step};
use crate::connect::graph::setup::{graph_client, GraphSetupError};
use crate::connect::graph::{folder_place, graph_id, Place};
use crate::sync::mailboxes::Backend;
use crate::sync::pass::cursor_folder_on;

const TOKEN: &str = "Exchange Online app token";
const ROLES: &str = "Tenant-wide Graph permissions";
const SCOPE: &str = "Mailbox in the app's scope";
const FOLDERS: &str = "Contact folder and calendar";
/// Mailboxes checked at most when `[exchange_online]` names more and no `--user` was given.
const MAX_USERS: usize = 10;
/// The management scope the fixes name.
const SCOPE_NAME: &str = "exsync-users";

/// The contact sync folder the mailbox steps look for: the one whose id the passes stored in
/// the state database, when `config` names one this process can read, else the one named
/// `name` under Contacts.
#[derive(Debug, Clone, Copy)]
pub(super) struct SyncFolder<'a> {
    pub(super) name: &'a str,
    pub(super) config: Option<&'a ExsyncConfig>,
}

impl<'a> SyncFolder<'a> {
    /// The folder `config` syncs into, looked up as its passes do.
    pub(super) fn of(config: &'a ExsyncConfig) -> Self {
        SyncFolder {
            name: &config.sync_folder,
            config: Some(config),
        }
    }
}

impl<'a> From<&'a str> for SyncFolder<'a> {
    fn from(name: &'a str) -> Self {
        SyncFolder { name, config: None }
    }
}

/// What one mailbox's scope and folders checks found: the worst outcome, what was seen and
/// the fix.
pub(super) type Probe = (Outcome, Vec<String>, Option<String>);

/// The mailboxes the Exchange Online steps probed, by address, so the per-user checks do not
/// ask Graph the same again.
pub(super) type Probed = BTreeMap<UserKey, Probe>;

/// The Exchange Online steps, the client that got a token, for the per-user checks, and the
/// mailboxes probed.
pub(super) async fn checks(inputs: &Inputs) -> (Vec<Step>, Option<GraphClient>, Probed) {
    let config = &inputs.config;
    let Some(online) = &config.exchange_online else {
        return (Vec::new(), None, Probed::new());
    };
    let (users, unchecked) = mailboxes(inputs, online);
    let client = match graph_client(config, online, &inputs.graph, None) {
        Ok(client) => client,
        Err(e) => {
            let mut steps = vec![setup_failed(online, inputs, &e)];
            steps.extend(skipped_after_token(&users));
            return (steps, None, Probed::new());
        }
    };
    let (mut steps, probed) =
        checks_with(&client, online, SyncFolder::of(config), &users, Utc::now()).await;
    if unchecked > 0 {
        if let Some(last) = steps.last_mut() {
            last.evidence.push(format!(
                "{unchecked} more mailboxes in exchange_online.users were not checked here; \
                 the assigned users' lines below cover each one that syncs"
            ));
        }
    }
    let token = steps
        .iter()
        .any(|s| s.name == TOKEN && s.outcome != Outcome::Fail);
    (steps, token.then_some(client), probed)
}

/// One mailbox's scope and folders, as the per-user checks see them.
pub(super) async fn probe_mailbox(
    client: &GraphClient,
    app: &str,
    user: &str,
    sync_folder: SyncFolder<'_>,
) -> Probe {
    probe_of(&mailbox_steps(client, app, user, sync_folder).await)
}

/// A mailbox's steps as one probe: the worst outcome, everything seen, the first fix.
fn probe_of(steps: &[Step]) -> Probe {
    let worst = steps
        .iter()
        .map(|s| s.outcome)
        .max_by_key(|o| match o {
            Outcome::Pass => 0,
            Outcome::Skip => 1,
            Outcome::Warn => 2,
            Outcome::Fail => 3,
        })
        .unwrap_or(Outcome::Pass);
    let evidence = steps.iter().flat_map(|s| s.evidence.clone()).collect();
    let fix = steps.iter().find_map(|s| s.fix.clone());
    (worst, evidence, fix)
}

/// The mailboxes to check, and how many Graph mailboxes were left out: the `--user` mailbox
/// when Graph serves it; else those `[exchange_online]` names (at most [`MAX_USERS`]), or with
/// `all_users` the first syncing user.
fn mailboxes(inputs: &Inputs, online: &ExchangeOnlineConfig) -> (Vec<String>, usize) {
    if let Some(user) = &inputs.user {
        if online.serves(user) {
            return (vec![user.clone()], 0);
        }
    }
    if !online.users.is_empty() {
        let users: Vec<String> = online.users.iter().take(MAX_USERS).cloned().collect();
        let left = online.users.len() - users.len();
        return (users, left);
    }
    let first = inputs
        .config
        .configurations
        .iter()
        .filter(|c| c.active)
        .flat_map(|c| c.users.iter())
        .next()
        .map(|u| u.as_str().to_owned());
    (first.into_iter().collect(), 0)
}

/// The steps against Graph with a client already built: the token, its roles, then each
/// mailbox in `users`; `sync_folder` is the contact folder's name, `now` dates the certificate.
/// Also returns what each mailbox's probe found.
pub(super) async fn checks_with(
    client: &GraphClient,
    online: &ExchangeOnlineConfig,
    sync_folder: SyncFolder<'_>,
    users: &[String],
    now: DateTime<Utc>,
) -> (Vec<Step>, Probed) {
    let mut steps = Vec::new();
    let mut probed = Probed::new();
    let mut token_step = app_facts(Step::new(TOKEN, Outcome::Pass), online);
    if let Some(certificate) = client.certificate() {
        token_step = token_step.saw(format!(
            "certificate {}, thumbprint {} (as the app registration's Certificates & secrets shows it)",
            certificate.subject(),
            portal_thumbprint(certificate.x5t())
        ));
        token_step = certificate_expiry(token_step, certificate.not_after(), now);
    }
    let token_started = std::time::Instant::now();
    let token = match client.token().await {
        Ok(token) => token,
        Err(e) => {
            steps.push(token_failed(token_step, &e));
            steps.extend(skipped_after_token(users));
            return (steps, probed);
        }
    };
    token_step = token_step
        .saw(format!(
            "token issued, expires {}",
            token.expires_at().format("%Y-%m-%d %H:%M UTC")
        ))
        .took(token_started);
    steps.push(token_step);
    steps.push(roles_step(&token.roles(), &online.client_id));
    if users.is_empty() {
        steps.push(
            Step::new(SCOPE, Outcome::Skip)
                .saw("no mailbox to check: exchange_online names none and no user syncs")
                .fix("name one with `exsync check --user <address>`"),
        );
    }
    for (i, user) in users.iter().enumerate() {
        let started = std::time::Instant::now();
        let mailbox = mailbox_steps(client, &online.client_id, user, sync_folder).await;
        probed.insert(UserKey::from_email(user), probe_of(&mailbox));
        let reachable = mailbox.iter().all(|s| s.outcome == Outcome::Pass);
        // The scope step makes the calls; the folders step reads what they returned.
        steps.extend(
            mailbox
                .into_iter()
                .enumerate()
                .map(|(j, s)| if j == 0 { s.took(started) } else { s }),
        );
        // One mailbox is enough to show the app may write where the passes write.
        if i == 0 {
            steps.push(if reachable {
                // A stored folder that is gone made the folders step warn: none is made here.
                let stored = stored_folder(sync_folder, user)
                    .await
                    .ok()
                    .flatten()
                    .map(|(id, _)| id);
                super::graph_write::round_trip(client, user, sync_folder.name, stored.as_deref())
                    .await
            } else {
                Step::new(
                    format!("{} ({user})", super::test_contact::ROUND_TRIP),
                    Outcome::Skip,
                )
                .saw("nothing written: the app cannot reach this mailbox's folders (see above)")
            });
        }
    }
    (steps, probed)
}

/// The SHA-1 thumbprint in upper-case hex, as the Azure portal shows it, from `x5t`'s base64url.
fn portal_thumbprint(x5t: &str) -> String {
    use base64::Engine as _;
    match base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(x5t.trim_end_matches('=')) {
        Ok(bytes) => bytes.iter().map(|b| format!("{b:02X}")).collect(),
        Err(_) => x5t.to_owned(),
    }
}

/// The app's settings, which every outcome of the token step shows.
fn app_facts(step: Step, online: &ExchangeOnlineConfig) -> Step {
    let credential = match online.credential {
        OnlineCredential::Certificate => "certificate",
        OnlineCredential::Secret => "client secret",
    };
    step.saw(format!("tenant {}", online.tenant))
        .saw(format!("client id {}", online.client_id))
        .saw(format!("cloud {}", online.cloud.as_str()))
        .saw(format!("credential: {credential}"))
}

const CERTIFICATE_FIX: &str = "create a new certificate, upload its public part (.cer) to the app \
     registration's Certificates & secrets in Entra ID, and store it and its key with \
     `exsync secrets set exchange_online.certificate` and `exsync secrets set \
     exchange_online.private_key` (each PEM on stdin)";

/// The certificate's expiry on `step`: a failure once it has expired (Entra refuses its
/// assertions), a warning within [`CERTIFICATE_WARNING_DAYS`].
fn certificate_expiry(step: Step, not_after: DateTime<Utc>, now: DateTime<Utc>) -> Step {
    let date = not_after.format("%Y-%m-%d %H:%M UTC");
    let left = not_after - now;
    if left <= chrono::Duration::zero() {
        let mut step = step
            .saw(format!("the certificate expired on {date}"))
            .fix(CERTIFICATE_FIX);
        step.outcome = Outcome::Fail;
        step
    } else if left <= chrono::Duration::days(CERTIFICATE_WARNING_DAYS) {
        let mut step = step
            .saw(format!(
                "the certificate expires on {date}, in {} days",
                left.num_days()
            ))
            .fix(format!(
                "before it expires (Entra then refuses every token request): {CERTIFICATE_FIX}"
            ));
        if step.outcome == Outcome::Pass {
            step.outcome = Outcome::Warn;
        }
        step
    } else {
        step.saw(format!(
            "the certificate expires on {date}, in {} days",
            left.num_days()
        ))
    }
}

/// The client could not be built: a credential missing from the vault or unusable.
fn setup_failed(online: &ExchangeOnlineConfig, inputs: &Inputs, e: &GraphSetupError) -> Step {
    let mut step = app_facts(Step::new(TOKEN, Outcome::Fail), online);
    // The expiry can be read without the key.
    if let Some(pem) = &inputs.graph.certificate {
        if let Ok(not_after) = exsync_graph::certificate_expiry(pem.expose().as_bytes()) {
            step = certificate_expiry(step, not_after, Utc::now());
        }
    }
    match e {
        GraphSetupError::NoCertificate | GraphSetupError::NoClientSecret => step
            .saw("the app's credential is not in the vault")
            .fix(e.to_string()),
        GraphSetupError::CaFile { source, .. } => step
            .saw(format!("{e}: {source}"))
            .fix("make exchange_online.ca_file name a readable PEM file, or remove it"),
        GraphSetupError::Graph(source) => step
            .saw(format!("the credential cannot be used: {source}"))
            .fix(
                "store the app's certificate and its private key again, both PEM, the key \
                 being the certificate's (`exsync secrets set exchange_online.certificate`, \
                 `exsync secrets set exchange_online.private_key`)",
            ),
    }
}

/// The identity platform gave no token: Entra's refusal with the fix for its AADSTS code, or
/// the sign-in host out of reach.
fn token_failed(step: Step, e: &GraphFailure) -> Step {
    let mut step = step.saw(format!("no token: {e}"));
    step.outcome = Outcome::Fail;
    let fix = match e {
        GraphFailure::Auth(auth) => {
            let code = auth
                .aadsts
                .map_or_else(String::new, |c| format!("AADSTS{c}: "));
            format!("{code}{}", auth.hint())
        }
        GraphFailure::Transport(_) | GraphFailure::Refused { .. } => {
            "check that this server reaches the cloud's sign-in host over HTTPS (proxy, firewall, \
             DNS) and that exchange_online.cloud is the tenant's cloud"
                .to_owned()
        }
        _ => "check exchange_online's tenant, client id and cloud, and the credential in the vault"
            .to_owned(),
    };
    // An expired certificate's fix says more than Entra's code.
    if step.fix.is_some() {
        return step;
    }
    step.fix(fix)
}

fn skipped_after_token(users: &[String]) -> Vec<Step> {
    let mut steps =
        vec![Step::new(ROLES, Outcome::Skip).saw("no token, so its permissions are unknown")];
    for user in users {
        steps.push(
            Step::new(format!("{SCOPE} ({user})"), Outcome::Skip)
                .saw("no token, so Graph was not asked"),
        );
    }
    steps
}

/// Application permissions that reach every mailbox's contacts, calendar or mail.
fn is_mailbox_wide(role: &str) -> bool {
    ["Contacts.", "Calendars.", "Mail."]
        .iter()
        .any(|area| role.starts_with(area))
}

fn roles_step(roles: &[String], app: &str) -> Step {
    let wide: Vec<&str> = roles
        .iter()
        .map(String::as_str)
        .filter(|r| is_mailbox_wide(r))
        .collect();
    let all = if roles.is_empty() {
        "none".to_owned()
    } else {
        roles.join(", ")
    };
    if wide.is_empty() {
        return Step::new(ROLES, Outcome::Pass)
            .saw(format!("application roles in the token: {all}"))
            .saw("no tenant-wide Contacts, Calendars or Mail permission: only the RBAC for Applications scope reaches mailboxes");
    }
    Step::new(ROLES, Outcome::Warn)
        .saw(format!("application roles in the token: {all}"))
        .saw(format!(
            "{} reach every mailbox in the tenant: grants are additive, so the RBAC for \
             Applications scope is bypassed for every mailbox",
            wide.join(", ")
        ))
        .fix(format!(
            "in Entra ID, remove the Microsoft Graph application permissions {} from the app \
             registration {app} (API permissions; then revoke their admin consent on the \
             Enterprise application's Permissions page), and rely on RBAC for Applications: \
             New-ManagementRoleAssignment -App {app} -Role \"Application Contacts.ReadWrite\" \
             -CustomResourceScope \"{SCOPE_NAME}\" and the same for \"Application \
             Calendars.ReadWrite\"",
            wide.join(", ")
        ))
}

/// The commands that show and widen the app's scope for `mailbox`.
fn scope_fix(app: &str, mailbox: &str) -> String {
    format!(
        "in Exchange Online PowerShell, see which roles cover the mailbox: \
         Test-ServicePrincipalAuthorization -Identity {app} -Resource {mailbox} (InScope per role). \
         Then put the mailbox in the app's scope: add it to the recipients the scope's filter \
         names, or create a scope and assign both roles on it: \
         New-ManagementScope -Name \"{SCOPE_NAME}\" -RecipientRestrictionFilter \"CustomAttribute1 -eq 'exsync'\" \
         (with Set-Mailbox {mailbox} -CustomAttribute1 exsync), \
         New-ManagementRoleAssignment -App {app} -Role \"Application Contacts.ReadWrite\" -CustomResourceScope \"{SCOPE_NAME}\" and \
         New-ManagementRoleAssignment -App {app} -Role \"Application Calendars.ReadWrite\" -CustomResourceScope \"{SCOPE_NAME}\". \
         The app needs its Exchange service principal first (New-ServicePrincipal -AppId {app} \
         -ObjectId <the Enterprise application's object id>); scope changes can take an hour to apply"
    )
}

/// A path segment for a mailbox address: what an address may hold is kept, the rest escaped.
fn segment(address: &str) -> String {
    let mut out = String::with_capacity(address.len());
    for byte in address.bytes() {
        if byte.is_ascii_alphanumeric() || b"@._-+'".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// What one read of the mailbox gave.
enum Read {
    Got(Value),
    Denied(GraphFailure),
    Failed(GraphFailure),
}

async fn read(client: &GraphClient, url: &str) -> Read {
    match client.get(url).await {
        Ok(body) => Read::Got(body),
        Err(e) if e.is_not_authorised() => Read::Denied(e),
        Err(e) => Read::Failed(e),
    }
}

fn text<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value.get(key).and_then(Value::as_str)
}

/// The scope step and the folders step for one mailbox.
async fn mailbox_steps(
    client: &GraphClient,
    app: &str,
    user: &str,
    sync_folder: SyncFolder<'_>,
) -> Vec<Step> {
    let scope_name = format!("{SCOPE} ({user})");
    let folders_name = format!("{FOLDERS} ({user})");
    if UserKey::parse(user).is_err() {
        return vec![Step::new(scope_name, Outcome::Fail)
            .saw(format!("{user:?} is not a mailbox address"))
            .fix("name the mailbox by its primary SMTP address")];
    }
    let path = format!("/users/{}", segment(user));
    let mut scope = Step::new(scope_name, Outcome::Pass);
    let mut denied = Vec::new();
    let mut failed = Vec::new();

    match read(client, &format!("{path}?$select=id,displayName,mail")).await {
        Read::Got(body) => {
            scope = scope.saw(format!(
                "mailbox {} ({})",
                text(&body, "mail").unwrap_or(user),
                text(&body, "displayName").unwrap_or("no display name")
            ));
        }
        Read::Denied(e) => denied.push(("the user", e)),
        Read::Failed(e) if e.is_not_found() => {
            return vec![scope
                .saw(format!("Graph knows no user {user} (404)"))
                .fix(format!(
                    "check the address; a mailbox still on-premises is served over EWS: list \
                     only the online mailboxes in exchange_online.users, without {user}"
                ))
                .outcome_of(Outcome::Fail)];
        }
        Read::Failed(e) => failed.push(("the user", e)),
    }
    let contacts = match client
        .collect(
            &format!("{path}/contactFolders?$select=id,displayName"),
            &[],
        )
        .await
    {
        Ok(found) => Read::Got(Value::Array(found.items)),
        Err(e) if e.is_not_authorised() => Read::Denied(e),
        Err(e) => Read::Failed(e),
    };
    let calendar = read(client, &format!("{path}/calendar?$select=id,name")).await;
    let mut folders = Step::new(folders_name, Outcome::Pass);
    let name = sync_folder.name;
    match contacts {
        Read::Got(body) => {
            scope = scope.saw("contact folders: readable");
            folders = match stored_folder(sync_folder, user).await {
                // The passes follow the folder by its id wherever its user put it, and make
                // a new one only once it is gone: looking it up by name would tell otherwise.
                Ok(Some((id, root))) => match folder_place(client, &path, &id, &root).await {
                    Ok(Place::Home(_)) => folders.saw(sync_folder::found_by_id(user, &id, name)),
                    Ok(away) => folders
                        .saw(sync_folder::gone(user, &id, away.how()))
                        .fix(sync_folder::gone_fix(name))
                        .outcome_of(Outcome::Warn),
                    Err(e) if e.is_not_authorised() => {
                        denied.push(("the contact sync folder", e));
                        folders
                    }
                    Err(e) => {
                        failed.push(("the contact sync folder", e));
                        folders
                    }
                },
                stored => {
                    if let Err(reason) = stored {
                        folders = folders.saw(format!(
                            "the state database could not be read ({reason}), so the folder \
                             the passes sync into is not known; looked for by name"
                        ));
                    }
                    let found = body.as_array().into_iter().flatten().find(|f| {
                        text(f, "displayName").is_some_and(|n| n.eq_ignore_ascii_case(name))
                    });
                    match found {
                        Some(_) => folders.saw(format!("contact folder {name} found under Contacts")),
                        None => folders.saw(format!(
                            "contact folder {name} not there yet: it will be created on the first pass"
                        )),
                    }
                }
            };
        }
        Read::Denied(e) => denied.push(("the contact folders", e)),
        Read::Failed(e) => failed.push(("the contact folders", e)),
    }
    match calendar {
        Read::Got(body) => {
            scope = scope.saw("calendar: readable");
            folders = folders.saw(format!(
                "primary calendar {} found",
                text(&body, "name").unwrap_or("(unnamed)")
            ));
        }
        Read::Denied(e) => denied.push(("the calendar", e)),
        Read::Failed(e) => failed.push(("the calendar", e)),
    }
    for (what, e) in &denied {
        scope = scope.saw(format!("{what}: access denied: {e}"));
    }
    for (what, e) in &failed {
        scope = scope.saw(format!("{what}: {e}"));
    }
    if !denied.is_empty() {
        let scope = scope.fix(scope_fix(app, user)).outcome_of(Outcome::Fail);
        let folders = folders
            .saw("not looked at: the app may not read this mailbox")
            .outcome_of(Outcome::Skip);
        return vec![scope, folders];
    }
    if !failed.is_empty() && failed.iter().all(|(_, e)| e.is_throttled()) {
        let scope = scope
            .fix("Graph is throttling this mailbox: the passes wait as Graph asks; run the check again later")
            .outcome_of(Outcome::Warn);
        let folders = folders.outcome_of(Outcome::Skip);
        return vec![scope, folders];
    }
    if !failed.is_empty() {
        let scope = scope
            .fix("check that this server reaches Graph over HTTPS (proxy, firewall) and run the check again")
            .outcome_of(Outcome::Fail);
        let folders = folders.outcome_of(Outcome::Skip);
        return vec![scope, folders];
    }
    vec![scope, folders]
}

/// The id (Graph's form) of the contact folder the passes stored for `user` on Graph, if any,
/// with the default Contacts folder's id they stored with it (empty when they did not).
async fn stored_folder(
    sync_folder: SyncFolder<'_>,
    user: &str,
) -> Result<Option<(String, String)>, String> {
    let Some(config) = sync_folder.config else {
        return Ok(None);
    };
    let cursor = super::exchange::stored_contact_cursor(config, user).await?;
    Ok(cursor_folder_on(cursor.as_deref(), Backend::Graph).map(|(id, root)| (graph_id(&id), root)))
}

trait OutcomeOf {
    fn outcome_of(self, outcome: Outcome) -> Self;
}

impl OutcomeOf for Step {
    fn outcome_of(mut self, outcome: Outcome) -> Step {
        self.outcome = outcome;
        self
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use chrono::TimeZone;
    use exsync_core::config::OnlineCloud;
    use exsync_core::AllowList;
    use exsync_graph::{AssertionAlgorithm, Cloud, Credential, GraphConfig, Secret};
    use exsync_sim::graph::{GraphSim, Options, SimInfo};
    use serde_json::json;

    use super::*;
    use crate::vault::SecretValue;

    struct Lab {
        sim: GraphSim,
        _dir: tempfile::TempDir,
        http: reqwest::Client,
    }

    async fn lab() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let options = Options {
            domain: "contoso.test".into(),
            mailboxes: 1,
            out_of_scope: 1,
        };
        let sim = GraphSim::start_with(dir.path(), "127.0.0.1:0".parse().unwrap(), &options)
            .await
            .unwrap();
        let pem = std::fs::read(&sim.info.ca_pem).unwrap();
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .tls_built_in_root_certs(false)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Lab {
            sim,
            _dir: dir,
            http,
        }
    }

    impl Lab {
        fn info(&self) -> &SimInfo {
            &self.sim.info
        }

        /// A fresh client (so a fresh token) with `credential`.
        fn client_with(&self, credential: Credential) -> GraphClient {
            let info = self.info();
            let authority = info.authority_url().to_owned();
            let mut config = GraphConfig::new(
                info.tenant_id.clone(),
                info.client_id.clone(),
                Cloud::custom(authority, info.graph_url.clone()),
                credential,
            );
            config.ca_pem = Some(std::fs::read(&info.ca_pem).unwrap());
            config.system_roots = false;
            config.allow = AllowList::new(["127.0.0.1"]);
            config.limits.timeout = Duration::from_secs(20);
            config.limits.retry_base = Duration::from_millis(50);
            GraphClient::new(config).unwrap()
        }

        fn client(&self) -> GraphClient {
            self.client_with(Credential::Secret(Secret::new(
                self.info().client_secret.clone(),
            )))
        }

        fn online(&self, credential: OnlineCredential) -> ExchangeOnlineConfig {
            ExchangeOnlineConfig {
                tenant: self.info().tenant_id.clone(),
                client_id: self.info().client_id.clone(),
                cloud: OnlineCloud::Global,
                credential,
                all_users: false,
                users: self.info().mailboxes.clone(),
                auto: false,
                auto_users: Vec::new(),
                routing_domain: None,
                route_ttl_hours: exsync_core::config::ROUTE_TTL_DEFAULT_HOURS,
                endpoints: None,
                ca_file: None,
            }
        }

        async fn control(&self, method: reqwest::Method, path: &str, body: Value) {
            let reply = self
                .http
                .request(method, format!("{}{path}", self.info().control_url))
                .json(&body)
                .bearer_auth(&self.info().control_token)
                .send()
                .await
                .unwrap();
            assert!(reply.status().is_success(), "{path}: {}", reply.status());
        }

        async fn check(&self, client: &GraphClient, user: &str) -> Vec<Step> {
            checks_with(
                client,
                &self.online(OnlineCredential::Secret),
                "Salesforce_Sync".into(),
                &[user.to_owned()],
                Utc::now(),
            )
            .await
            .0
        }
    }

    fn step<'s>(steps: &'s [Step], name: &str) -> &'s Step {
        steps
            .iter()
            .find(|s| s.name.starts_with(name))
            .unwrap_or_else(|| panic!("no step {name} in {steps:#?}"))
    }

    fn evidence(step: &Step) -> String {
        step.evidence.join("\n")
    }

    #[tokio::test]
    async fn check_graph_passes_every_step_for_a_mailbox_in_scope() {
        let lab = lab().await;
        let user = lab.info().mailboxes[0].clone();
        let steps = lab.check(&lab.client(), &user).await;
        assert!(
            steps.iter().all(|s| s.outcome == Outcome::Pass),
            "{steps:#?}"
        );
        let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                TOKEN.to_owned(),
                ROLES.to_owned(),
                format!("{SCOPE} ({user})"),
                format!("{FOLDERS} ({user})"),
                format!("{} ({user})", super::super::test_contact::ROUND_TRIP),
            ]
        );
        let round_trip = evidence(steps.last().unwrap());
        for said in [
            "created a contact tagged exsync-check-",
            "read it back by its tag (",
            "deleted it (",
        ] {
            assert!(round_trip.contains(said), "{said}: {round_trip}");
        }
        assert!(steps[0].ms.is_some() && steps[4].ms.is_some(), "{steps:#?}");
        // The test contact is gone again; the folder the first pass would make is there.
        let client = lab.client();
        let path = format!("/users/{}/contactFolders", segment(&user));
        let folders = client.collect(&path, &[]).await.unwrap().items;
        let ours = folders
            .iter()
            .find(|f| f["displayName"] == "Salesforce_Sync")
            .unwrap();
        let left = client
            .collect(
                &format!("{path}/{}/contacts", ours["id"].as_str().unwrap()),
                &[],
            )
            .await
            .unwrap()
            .items;
        assert!(left.is_empty(), "{left:#?}");
        let token = evidence(step(&steps, TOKEN));
        for fact in [
            format!("tenant {}", lab.info().tenant_id),
            format!("client id {}", lab.info().client_id),
            "cloud global".to_owned(),
            "credential: client secret".to_owned(),
            "token issued, expires ".to_owned(),
        ] {
            assert!(token.contains(&fact), "{fact} not in {token}");
        }
        let folders = evidence(step(&steps, FOLDERS));
        assert!(
            folders.contains("Salesforce_Sync not there yet: it will be created on the first pass"),
            "{folders}"
        );
        assert!(folders.contains("primary calendar"), "{folders}");

        // The round trip made the folder, as the first pass would; the check now finds it.
        let steps = lab.check(&lab.client(), &user).await;
        let folders = evidence(step(&steps, FOLDERS));
        assert!(
            folders.contains("contact folder Salesforce_Sync found under Contacts"),
            "{folders}"
        );
    }

    #[tokio::test]
    async fn check_graph_certificate_credential_passes_and_shows_the_expiry() {
        let lab = lab().await;
        let info = lab.info();
        let client = lab.client_with(Credential::Certificate {
            certificate_pem: std::fs::read(&info.certificate_pem).unwrap(),
            private_key_pem: Secret::new(std::fs::read(&info.private_key_pem).unwrap()),
            algorithm: AssertionAlgorithm::Ps256,
        });
        let user = info.mailboxes[0].clone();
        let steps = checks_with(
            &client,
            &lab.online(OnlineCredential::Certificate),
            "Salesforce_Sync".into(),
            &[user],
            Utc::now(),
        )
        .await
        .0;
        let token = step(&steps, TOKEN);
        assert_eq!(token.outcome, Outcome::Pass, "{token:#?}");
        let seen = evidence(token);
        assert!(seen.contains("credential: certificate"), "{seen}");
        assert!(seen.contains("the certificate expires on "), "{seen}");
        let thumbprint = seen
            .split("thumbprint ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .unwrap();
        assert_eq!(thumbprint.len(), 40, "{seen}");
        assert!(thumbprint.chars().all(|c| c.is_ascii_hexdigit()), "{seen}");

        // Ten days before the same certificate expires, the step warns and the rest passes.
        let not_after = client.certificate_expiry().unwrap();
        let steps = checks_with(
            &client,
            &lab.online(OnlineCredential::Certificate),
            "Salesforce_Sync".into(),
            &[info.mailboxes[0].clone()],
            not_after - chrono::Duration::days(10),
        )
        .await
        .0;
        let token = step(&steps, TOKEN);
        assert_eq!(token.outcome, Outcome::Warn, "{token:#?}");
        assert!(evidence(token).contains("in 10 days"), "{token:#?}");
        assert!(evidence(token).contains("token issued"), "{token:#?}");
        assert!(token
            .fix
            .as_deref()
            .unwrap()
            .contains("upload its public part (.cer) to the app registration"));
        assert_eq!(step(&steps, SCOPE).outcome, Outcome::Pass);
        // Once it has expired, the step fails.
        let steps = checks_with(
            &client,
            &lab.online(OnlineCredential::Certificate),
            "Salesforce_Sync".into(),
            &[],
            not_after + chrono::Duration::hours(1),
        )
        .await
        .0;
        assert_eq!(step(&steps, TOKEN).outcome, Outcome::Fail);
    }

    #[tokio::test]
    async fn check_graph_mailbox_outside_the_scope_fails_with_the_commands() {
        let lab = lab().await;
        let outside = lab.info().out_of_scope[0].clone();
        let app = lab.info().client_id.clone();
        let steps = lab.check(&lab.client(), &outside).await;
        assert_eq!(step(&steps, TOKEN).outcome, Outcome::Pass);
        assert_eq!(step(&steps, ROLES).outcome, Outcome::Pass);
        let scope = step(&steps, SCOPE);
        assert_eq!(scope.outcome, Outcome::Fail, "{scope:#?}");
        assert!(evidence(scope).contains("access denied"), "{scope:#?}");
        let fix = scope.fix.clone().unwrap();
        for command in [
            format!("Test-ServicePrincipalAuthorization -Identity {app} -Resource {outside}"),
            "New-ManagementScope -Name \"exsync-users\" -RecipientRestrictionFilter \"".to_owned(),
            format!("New-ManagementRoleAssignment -App {app} -Role \"Application Contacts.ReadWrite\" -CustomResourceScope \"exsync-users\""),
            format!("New-ManagementRoleAssignment -App {app} -Role \"Application Calendars.ReadWrite\" -CustomResourceScope \"exsync-users\""),
        ] {
            assert!(fix.contains(&command), "{command} not in {fix}");
        }
        assert_eq!(step(&steps, FOLDERS).outcome, Outcome::Skip);

        // A mailbox with only the contacts role fails too, naming the calendar.
        lab.control(
            reqwest::Method::POST,
            &format!("/mailboxes/{outside}/scope"),
            json!({"roles": ["Application Contacts.ReadWrite"]}),
        )
        .await;
        let steps = lab.check(&lab.client(), &outside).await;
        let scope = step(&steps, SCOPE);
        assert_eq!(scope.outcome, Outcome::Fail, "{scope:#?}");
        let seen = evidence(scope);
        assert!(seen.contains("contact folders: readable"), "{seen}");
        assert!(seen.contains("the calendar: access denied"), "{seen}");
    }

    #[tokio::test]
    async fn check_graph_tenant_wide_roles_warn_that_the_scope_is_bypassed() {
        let lab = lab().await;
        let user = lab.info().mailboxes[0].clone();
        let before = lab.client();
        before.token().await.unwrap();
        lab.control(
            reqwest::Method::PUT,
            "/roles",
            json!({"roles": ["Contacts.ReadWrite", "User.Read.All"]}),
        )
        .await;
        // Roles reach the tokens issued afterwards: the cached one still has none.
        let steps = lab.check(&before, &user).await;
        assert_eq!(step(&steps, ROLES).outcome, Outcome::Pass);
        let steps = lab.check(&lab.client(), &user).await;
        let roles = step(&steps, ROLES);
        assert_eq!(roles.outcome, Outcome::Warn, "{roles:#?}");
        let seen = evidence(roles);
        assert!(
            seen.contains("Contacts.ReadWrite reach every mailbox"),
            "{seen}"
        );
        assert!(seen.contains("bypassed for every mailbox"), "{seen}");
        let fix = roles.fix.clone().unwrap();
        assert!(
            fix.contains("remove the Microsoft Graph application permissions Contacts.ReadWrite"),
            "{fix}"
        );
        assert!(!fix.contains("User.Read.All"), "{fix}");
        assert!(fix.contains("RBAC for Applications"), "{fix}");
        // The other steps still pass: the warning does not fail the report.
        assert_eq!(step(&steps, SCOPE).outcome, Outcome::Pass);
        assert_eq!(step(&steps, TOKEN).outcome, Outcome::Pass);
    }

    #[tokio::test]
    async fn check_graph_throttled_mailbox_warns_rather_than_fails() {
        let lab = lab().await;
        let user = lab.info().mailboxes[0].clone();
        let client = lab.client();
        client.token().await.unwrap();
        lab.control(
            reqwest::Method::POST,
            "/faults",
            json!({"mailbox": user, "status": 429, "count": 50}),
        )
        .await;
        let steps = lab.check(&client, &user).await;
        let scope = step(&steps, SCOPE);
        assert_eq!(scope.outcome, Outcome::Warn, "{scope:#?}");
        assert!(
            scope.fix.as_deref().unwrap().contains("throttling"),
            "{scope:#?}"
        );
        assert_eq!(step(&steps, FOLDERS).outcome, Outcome::Skip);
    }

    #[tokio::test]
    async fn check_graph_wrong_secret_fails_naming_aadsts7000215() {
        let lab = lab().await;
        let user = lab.info().mailboxes[0].clone();
        let client = lab.client_with(Credential::Secret(Secret::new("not-the-secret")));
        let steps = lab.check(&client, &user).await;
        let token = step(&steps, TOKEN);
        assert_eq!(token.outcome, Outcome::Fail, "{token:#?}");
        assert!(evidence(token).contains("AADSTS7000215"), "{token:#?}");
        let fix = token.fix.clone().unwrap();
        assert!(fix.starts_with("AADSTS7000215: "), "{fix}");
        assert!(fix.contains("the secret's Value"), "{fix}");
        assert_eq!(step(&steps, ROLES).outcome, Outcome::Skip);
        assert_eq!(step(&steps, SCOPE).outcome, Outcome::Skip);
    }

    #[test]
    fn check_graph_certificate_warns_within_30_days_and_fails_once_expired() {
        let now = Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).unwrap();
        let base = || Step::new(TOKEN, Outcome::Pass);
        let far = certificate_expiry(base(), now + chrono::Duration::days(200), now);
        assert_eq!(far.outcome, Outcome::Pass);
        assert!(evidence(&far).contains("in 200 days"), "{far:#?}");
        assert!(far.fix.is_none());
        let soon = certificate_expiry(base(), now + chrono::Duration::days(10), now);
        assert_eq!(soon.outcome, Outcome::Warn);
        assert!(
            evidence(&soon).contains("expires on 2026-12-16 12:00 UTC, in 10 days"),
            "{soon:#?}"
        );
        assert!(soon
            .fix
            .as_deref()
            .unwrap()
            .contains("exsync secrets set exchange_online.certificate"));
        let edge = certificate_expiry(base(), now + chrono::Duration::days(30), now);
        assert_eq!(edge.outcome, Outcome::Warn);
        let gone = certificate_expiry(base(), now - chrono::Duration::days(1), now);
        assert_eq!(gone.outcome, Outcome::Fail);
        assert!(
            evidence(&gone).contains("expired on 2026-12-05"),
            "{gone:#?}"
        );
    }

    const FILE: &str = "[exchange]
service_account = \"svc@example.com\"
[crm]
client_id = \"abc\"
username = \"int@example.com\"
[configurations.a]
users = [\"a@example.com\", \"b@example.com\"]
";

    fn config(online: &str) -> exsync_core::config::ExsyncConfig {
        exsync_core::config::parse(
            &format!("{FILE}{online}"),
            std::path::Path::new("/etc/exsync/exsync.toml"),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn check_graph_without_its_credential_fails_with_the_secrets_command() {
        let none = Inputs::without_secrets(config(""), None);
        assert!(checks(&none).await.0.is_empty());
        let online =
            "[exchange_online]\ntenant = \"t\"\nclient_id = \"c\"\nusers = [\"b@example.com\"]\n";
        let inputs = Inputs::without_secrets(config(online), None);
        let steps = checks(&inputs).await.0;
        let token = step(&steps, TOKEN);
        assert_eq!(token.outcome, Outcome::Fail);
        assert!(
            token
                .fix
                .as_deref()
                .unwrap()
                .contains("exsync secrets set exchange_online.certificate"),
            "{token:#?}"
        );
        assert_eq!(step(&steps, ROLES).outcome, Outcome::Skip);
        assert_eq!(step(&steps, SCOPE).name, format!("{SCOPE} (b@example.com)"));
        let mut secret = Inputs::without_secrets(
            config(&online.replace(
                "[exchange_online]\n",
                "[exchange_online]\ncredential = \"secret\"\n",
            )),
            None,
        );
        let steps = checks(&secret).await.0;
        assert!(step(&steps, TOKEN)
            .fix
            .as_deref()
            .unwrap()
            .contains("exsync secrets set exchange_online.client_secret"));
        // A certificate that does not parse is named as unusable.
        secret.config.exchange_online.as_mut().unwrap().credential = OnlineCredential::Certificate;
        secret.graph.certificate = Some(SecretValue::new("not a pem".to_owned()));
        secret.graph.private_key = Some(SecretValue::new("not a pem".to_owned()));
        let steps = checks(&secret).await.0;
        let token = step(&steps, TOKEN);
        assert_eq!(token.outcome, Outcome::Fail);
        assert!(
            evidence(token).contains("the credential cannot be used"),
            "{token:#?}"
        );
    }

    #[test]
    fn check_graph_mailboxes_are_the_users_graph_serves() {
        let online =
            "[exchange_online]\ntenant = \"t\"\nclient_id = \"c\"\nusers = [\"b@example.com\"]\n";
        let named = |user: Option<&str>| {
            let inputs = Inputs::without_secrets(config(online), user.map(str::to_owned));
            let online = inputs.config.exchange_online.clone().unwrap();
            mailboxes(&inputs, &online).0
        };
        assert_eq!(named(None), ["b@example.com"]);
        assert_eq!(named(Some("B@example.com")), ["B@example.com"]);
        // A --user on EWS: the Graph steps look at Graph's users.
        assert_eq!(named(Some("a@example.com")), ["b@example.com"]);
        let all = Inputs::without_secrets(
            config("[exchange_online]\ntenant = \"t\"\nclient_id = \"c\"\nall_users = true\n"),
            None,
        );
        let online = all.config.exchange_online.clone().unwrap();
        assert_eq!(mailboxes(&all, &online).0, ["a@example.com"]);
    }
}
