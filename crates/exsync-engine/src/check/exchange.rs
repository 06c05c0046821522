//! The Exchange steps: the stored password, DNS, Autodiscover, TLS, the authentication
//! schemes offered, EWS itself with the service account's credentials, impersonation of the
//! mailbox and access to its calendar and its contact sync folder (the one the passes use, found
//! by the id the state database holds).

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use exsync_core::config::{ExchangeConfig, ExsyncConfig, StoreConfig};
use exsync_core::{ItemKind, Record, UserKey};
use exsync_ews::diagnostics::{chosen_scheme as choose, offered_schemes as offered, Scheme};
use exsync_ews::{
    AuthMode, Credentials, EwsClient, EwsConfig, EwsError, FolderPlace, FolderRef, MailboxClient,
    Resolve,
};
use exsync_ews::{Autodiscover, AutodiscoverConfig};
use exsync_store::{SqliteStore, SyncState};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use url::Url;

use super::net::{handshake, resolve, TIMEOUT};
use super::test_contact::{TestContact, ROUND_TRIP};
use super::{sync_folder, Inputs, Outcome, Step};
use crate::sync::pass::{cursor_folder, folder_cursor};

const PASSWORD: &str = "Service account password";
const DNS: &str = "DNS";
const AUTODISCOVER: &str = "Autodiscover";
const TLS: &str = "TLS and certificate chain";
const AUTH: &str = "Authentication schemes";
const EWS: &str = "EWS reachable with the service account";
const IMPERSONATION: &str = "Impersonation";
const CALENDAR: &str = "Calendar access";
const CONTACTS: &str = "Contacts folder access";

pub(super) fn domain_of(address: &str) -> Option<String> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.trim().to_ascii_lowercase())
        .filter(|d| !d.is_empty())
}

pub(super) fn impersonation_command(service_account: &str) -> String {
    format!(
        "in the Exchange Management Shell: New-ManagementRoleAssignment -Name exsync-impersonation -Role ApplicationImpersonation -User {service_account} \
         (to limit it to the syncing users, add -CustomRecipientWriteScope with a management scope that holds them)"
    )
}

/// The fix for an Autodiscover failure, by what its candidates answered (`seen`, the error's
/// text, which names each candidate's failure): the CA file when TLS failed, the password when
/// the credentials were refused, else where Autodiscover must be published.
pub(super) fn autodiscover_fix(seen: &str, domain: &str, allowed: &[String]) -> String {
    if seen.contains("rejected the credentials") {
        "the server refused the service account's credentials: check exchange.service_account \
         and store the password again with `exsync secrets set exchange.password`"
            .to_owned()
    } else if seen.contains("TLS with") {
        "the Autodiscover server's certificate is not trusted: put the company CA (PEM) in a file \
         and set exchange.ca_file to it, or fix the server's certificate"
            .to_owned()
    } else {
        format!(
            "check that Autodiscover is published for {domain} (credentials are only sent to {}); \
             or set exchange.ews_url",
            allowed.join(", ")
        )
    }
}

pub(super) fn response_code(e: &EwsError) -> Option<&str> {
    match e {
        EwsError::Mailbox { error, .. }
        | EwsError::Response { error, .. }
        | EwsError::Fault { error, .. } => Some(error.code.as_str()),
        _ => None,
    }
}

/// A logged-in EWS client and the URL it reached, for the per-user checks to reuse.
pub(super) struct EwsReach {
    pub(super) client: std::sync::Arc<EwsClient>,
    pub(super) url: Url,
}

/// The Exchange steps, and the client they logged in with unless logging in failed.
pub(super) async fn checks(inputs: &Inputs, x: &ExchangeConfig) -> (Vec<Step>, Option<EwsReach>) {
    let mut reach = None;
    let steps = checks_reaching(inputs, x, &mut reach).await;
    let login_failed = steps
        .iter()
        .any(|s| (s.name == EWS || s.name == AUTH) && s.outcome == Outcome::Fail);
    (steps, reach.filter(|_| !login_failed))
}

async fn checks_reaching(
    inputs: &Inputs,
    x: &ExchangeConfig,
    reach: &mut Option<EwsReach>,
) -> Vec<Step> {
    let config = &inputs.config;
    let svc = x.service_account.as_str();
    let mut steps = Vec::new();

    let password = inputs.exchange_password.clone();
    let kerberos = match &inputs.kerberos {
        Ok(login) => login.clone(),
        Err(why) => {
            steps.push(
                Step::new(AUTH, Outcome::Fail)
                    .saw(format!("Kerberos cannot be set up: {why}"))
                    .fix("correct exchange.realm, exchange.kdcs or exchange.krb5_conf, or the secret exchange.keytab"),
            );
            return steps;
        }
    };
    steps.push(match &password {
        Some(_) if kerberos.as_ref().is_some_and(|k| k.keytab.is_some()) => {
            Step::new(PASSWORD, Outcome::Pass).saw(format!(
                "a Kerberos keytab is stored (encrypted) in the vault for {}",
                kerberos.as_ref().map(|k| k.principal.as_str()).unwrap_or(svc)
            ))
        }
        Some(_) => Step::new(PASSWORD, Outcome::Pass)
            .saw(format!("stored (encrypted) in the vault for {svc}")),
        None => Step::new(PASSWORD, Outcome::Fail)
            .saw(format!("no password is stored for {svc}"))
            .fix("store it with `exsync secrets set exchange.password` or on the console's Service account page"),
    });

    // The mailbox the per-user steps look at.
    let target = inputs.user.clone().or_else(|| {
        config
            .configurations
            .iter()
            .filter(|c| c.active)
            .flat_map(|c| c.users.iter())
            .next()
            .map(|u| u.as_str().to_owned())
    });

    let mut resolve_map = Resolve::new();
    for (host, addr) in &config.network.resolve {
        resolve_map.insert(host, *addr);
    }

    // Where EWS is.
    let mut ews_url: Option<Url> = None;
    let dns_started = Instant::now();
    let mut dns = Step::new(DNS, Outcome::Pass);
    let mut dns_failed_all = true;
    let mut candidate_hosts = Vec::new();
    if let Some(configured) = &x.ews_url {
        match Url::parse(configured) {
            Ok(u) => {
                candidate_hosts.push(u.host_str().unwrap_or("").to_owned());
                ews_url = Some(u);
            }
            Err(e) => {
                steps.push(
                    Step::new(DNS, Outcome::Fail)
                        .saw(format!("exchange.ews_url {configured:?} is not a URL: {e}"))
                        .fix("correct exchange.ews_url"),
                );
                return steps;
            }
        }
    } else if let Some(domain) = target.as_deref().and_then(domain_of) {
        candidate_hosts.push(domain.clone());
        candidate_hosts.push(format!("autodiscover.{domain}"));
    }
    let mut resolved: Vec<(String, SocketAddr)> = Vec::new();
    for host in &candidate_hosts {
        match resolve(config, host, 443).await {
            Ok((addrs, fact)) => {
                dns_failed_all = false;
                dns.evidence.push(fact);
                if let Some(a) = addrs.first() {
                    resolved.push((host.clone(), *a));
                }
            }
            Err(fact) => {
                dns.outcome = Outcome::Warn;
                dns.evidence.push(fact);
            }
        }
    }
    if candidate_hosts.is_empty() {
        steps.push(
            Step::new(DNS, Outcome::Skip)
                .saw("no EWS URL is configured and no mailbox address is known to run Autodiscover for")
                .fix("set exchange.ews_url, or run with --user EMAIL"),
        );
        return steps;
    }
    if dns_failed_all {
        dns.outcome = Outcome::Fail;
        dns.fix = Some(
            "make the names resolvable from this server (DNS or [network.resolve]), or set exchange.ews_url"
                .to_owned(),
        );
    } else if dns.outcome == Outcome::Warn {
        dns.fix = Some(
            "not every candidate resolves; that is fine if one that does answers Autodiscover"
                .to_owned(),
        );
    }
    let dns_ok = dns.outcome != Outcome::Fail;
    steps.push(dns.took(dns_started));
    if !dns_ok {
        return steps;
    }

    let ews_config = |password: &crate::vault::SecretValue| {
        let mut c = EwsConfig::new(Credentials::new(svc, password.expose()));
        c.auth = AuthMode::parse(x.auth.as_str()).unwrap_or_default();
        c.kerberos = kerberos.clone();
        c.ca_file = x.ca_file.clone();
        c.resolve = resolve_map.clone();
        c.contacts_folder = config.sync_folder.clone();
        c.connect_timeout = TIMEOUT;
        c.request_timeout = TIMEOUT * 3;
        c.max_reply_bytes = inputs.config.network.max_reply_bytes();
        c
    };
    let client = match password.as_ref().map(|p| EwsClient::new(ews_config(p))) {
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            steps.push(
                Step::new(TLS, Outcome::Fail)
                    .saw(e.to_string())
                    .fix("check exchange.ca_file"),
            );
            return steps;
        }
        None => None,
    };

    if ews_url.is_none() {
        let started = Instant::now();
        let mut step = Step::new(AUTODISCOVER, Outcome::Fail);
        for (host, addr) in &resolved {
            let reachable = tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect(addr))
                .await
                .map(|r| r.is_ok())
                .unwrap_or(false);
            step.evidence.push(format!(
                "candidate https://{host}/autodiscover/autodiscover.xml: {}",
                if reachable {
                    "accepts connections"
                } else {
                    "does not accept connections"
                }
            ));
        }
        match (&client, target.as_deref()) {
            (Some(client), Some(address)) => {
                let allow = x.allow_list();
                let domains = allow.domains().to_vec();
                let ad = Autodiscover::new(client.http().clone(), AutodiscoverConfig::new(allow));
                match ad.ews_url(address).await {
                    Ok(url) => {
                        step.outcome = Outcome::Pass;
                        step.evidence.push(format!("{address} → EWS at {url}"));
                        ews_url = Some(url);
                    }
                    Err(e) => {
                        let seen = e.to_string();
                        step.fix = Some(autodiscover_fix(
                            &seen,
                            &domain_of(address).unwrap_or_default(),
                            &domains,
                        ));
                        step.evidence.push(seen);
                    }
                }
            }
            _ => {
                step.outcome = Outcome::Skip;
                step.evidence.push(
                    "Autodiscover needs the service account password and a mailbox address"
                        .to_owned(),
                );
            }
        }
        let ok = step.outcome == Outcome::Pass;
        steps.push(step.took(started));
        if !ok {
            return steps;
        }
    }
    let Some(url) = ews_url else {
        return steps;
    };
    let host = url
        .host_str()
        .unwrap_or("")
        .trim_matches(['[', ']'])
        .to_ascii_lowercase();
    let port = url.port_or_known_default().unwrap_or(443);

    // TLS, then the schemes offered to an anonymous request on the same connection.
    let tls_started = Instant::now();
    let addr = match resolve(config, &host, port).await {
        Ok((addrs, _)) => addrs.into_iter().next(),
        Err(_) => None,
    };
    let tls_config = match exsync_ews::diagnostics::tls_client_config(x.ca_file.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            steps.push(
                Step::new(TLS, Outcome::Fail)
                    .saw(e.to_string())
                    .fix("check exchange.ca_file"),
            );
            return steps;
        }
    };
    let Some(addr) = addr else {
        steps.push(Step::new(TLS, Outcome::Fail).saw(format!("{host} does not resolve")));
        return steps;
    };
    let seen = match handshake(tls_config, addr, &host).await {
        Ok(seen) => seen,
        Err(reason) => {
            steps.push(
                Step::new(TLS, Outcome::Fail)
                    .saw(format!("{host} ({addr}): {reason}"))
                    .fix("install a certificate from a CA this server trusts for that name, or name the company CA in exchange.ca_file; Exchange must offer TLS 1.2 or later"),
            );
            return steps;
        }
    };
    let mut tls = Step::new(TLS, Outcome::Pass).saw(format!("{host} ({addr})"));
    tls.evidence.extend(seen.facts);
    if let Some(days) = seen.leaf_days_left.filter(|d| *d < 30) {
        tls.outcome = Outcome::Warn;
        tls.fix = Some(format!(
            "the server certificate expires in {days} days; renew it"
        ));
    }
    steps.push(tls.took(tls_started));
    let auth_started = Instant::now();
    steps.push(
        auth_step(seen.stream, &url, &host, x.auth.as_str(), x.realm.is_some())
            .await
            .took(auth_started),
    );

    let Some(client) = client else {
        steps.push(Step::new(EWS, Outcome::Skip).saw("no service account password to log in with"));
        return steps;
    };
    *reach = Some(EwsReach {
        client: std::sync::Arc::clone(&client),
        url: url.clone(),
    });
    let Some(mailbox_address) = target else {
        steps.push(
            Step::new(EWS, Outcome::Skip)
                .saw("no mailbox to check")
                .fix("run with --user EMAIL"),
        );
        return steps;
    };
    let mailbox = client.mailbox(&mailbox_address, url.clone());
    let login_started = Instant::now();
    match mailbox.calendar_folder().await {
        Ok(folder) => {
            let scheme = client
                .http()
                .pinned(&host)
                .map(|s| s.name().to_owned())
                .unwrap_or_else(|| "the configured scheme".to_owned());
            let mut ews = Step::new(EWS, Outcome::Pass)
                .saw(format!(
                    "{url} answered GetFolder; {svc} logged in with {scheme}"
                ))
                .took(login_started);
            ews.evidence.push(match client.server_version() {
                Some(version) => format!("Exchange version {version} (ServerVersionInfo)"),
                None => {
                    "the server sent no ServerVersionInfo, so its version is not known".to_owned()
                }
            });
            if let Some(status) = client.http().kerberos_status().await {
                ews.evidence.push(format!(
                    "Kerberos principal {}; ticket-granting ticket valid for {}",
                    status.principal,
                    status
                        .lifetime_secs
                        .map_or("an unknown time".to_owned(), |s| format!("{} min", s / 60))
                ));
            }
            steps.push(ews);
            steps.push(
                Step::new(
                    format!("{IMPERSONATION} of {mailbox_address}"),
                    Outcome::Pass,
                )
                .saw(format!("{svc} acts as {mailbox_address}")),
            );
            steps.push(Step::new(CALENDAR, Outcome::Pass).saw(format!(
                "calendar folder of {mailbox_address} read (id {}…)",
                folder.id.chars().take(12).collect::<String>()
            )));
            let contacts_started = Instant::now();
            let contacts = contacts_step(&mailbox, config, &mailbox_address, svc)
                .await
                .took(contacts_started);
            let writable = contacts.outcome == Outcome::Pass;
            steps.push(contacts);
            steps.push(if writable {
                round_trip(&mailbox, config, &mailbox_address).await
            } else {
                Step::new(ROUND_TRIP, Outcome::Skip).saw(format!(
                    "nothing written: the contact sync folder of {mailbox_address} is not usable (see above)"
                ))
            });
        }
        Err(e) => {
            let code = response_code(&e).map(str::to_owned);
            match (&e, code.as_deref()) {
                (EwsError::Kerberos { error, .. }, _) => steps.push(
                    Step::new(EWS, Outcome::Fail)
                        .saw(e.to_string())
                        .fix(error.fix()),
                ),
                (EwsError::Unauthorized { .. }, _) => steps.push(
                    Step::new(EWS, Outcome::Fail)
                        .saw(e.to_string())
                        .fix("the server refused the service account's user name or password: correct them on the Service account page (or `exsync secrets set exchange.password`)"),
                ),
                (_, Some(c)) if c.starts_with("ErrorImpersonat") => {
                    steps.push(Step::new(EWS, Outcome::Pass).saw(format!("{url} answered; {svc} logged in")));
                    steps.push(
                        Step::new(format!("{IMPERSONATION} of {mailbox_address}"), Outcome::Fail)
                            .saw(format!("{c}: {svc} may not impersonate {mailbox_address}"))
                            .fix(impersonation_command(svc)),
                    );
                }
                (_, Some(c @ ("ErrorNonExistentMailbox" | "ErrorInvalidExchangeImpersonationHeaderData"))) => {
                    steps.push(Step::new(EWS, Outcome::Pass).saw(format!("{url} answered; {svc} logged in")));
                    steps.push(
                        Step::new(format!("{IMPERSONATION} of {mailbox_address}"), Outcome::Fail)
                            .saw(format!("{c}: no mailbox with the primary address {mailbox_address}"))
                            .fix(format!("check the address with Get-Mailbox -Identity {mailbox_address} | fl PrimarySmtpAddress")),
                    );
                }
                (_, Some(c)) => {
                    steps.push(Step::new(EWS, Outcome::Pass).saw(format!("{url} answered; {svc} logged in")));
                    steps.push(
                        Step::new(CALENDAR, Outcome::Fail)
                            .saw(format!("{c}: {e}"))
                            .fix(format!("check the ApplicationImpersonation assignment: Get-ManagementRoleAssignment -Role ApplicationImpersonation -RoleAssignee {svc}")),
                    );
                }
                _ => steps.push(
                    Step::new(EWS, Outcome::Fail)
                        .saw(e.to_string())
                        .fix("check that EWS is enabled on the server (Get-WebServicesVirtualDirectory) and reachable from here"),
                ),
            }
        }
    }
    steps
}

/// The contact sync folder, looked up as the passes do: by the id the state database stores
/// for the mailbox, wherever its user has renamed or moved it since. Only a mailbox no pass
/// has stored a folder for is looked up by the configured name (and the folder made, as the
/// first pass would); a folder the passes used and its user deleted is reported, not made
/// again: the next pass does that, and copies the synced CRM contacts into it.
async fn contacts_step(
    mailbox: &MailboxClient,
    config: &ExsyncConfig,
    address: &str,
    svc: &str,
) -> Step {
    let name = &config.sync_folder;
    let access_fix =
        || format!("check that {svc} may create and read folders under Contacts in {address}");
    let stored = match stored_contact_folder(config, address).await {
        Ok(stored) => stored,
        // Looking it up by name could make a second folder beside the one the passes use.
        Err(reason) => {
            return Step::new(CONTACTS, Outcome::Warn)
                .saw(format!(
                    "the state database could not be read ({reason}), so the folder the passes \
                     sync into for {address} is not known; it was not looked for by name"
                ))
                .fix("run the check where the state database (store.path) can be read")
        }
    };
    let Some((id, change_key)) = stored else {
        return match mailbox.ensure_contacts_folder().await {
            Ok(_) => Step::new(CONTACTS, Outcome::Pass).saw(format!(
                "Contacts/{name} of {address} is there (created now if it was missing, as the first pass would)"
            )),
            Err(e) => Step::new(CONTACTS, Outcome::Fail)
                .saw(e.to_string())
                .fix(access_fix()),
        };
    };
    let folder = FolderRef {
        id,
        change_key,
        distinguished: false,
    };
    match mailbox.folder_place(&folder).await {
        Ok(FolderPlace::Live(_)) => Step::new(CONTACTS, Outcome::Pass)
            .saw(sync_folder::found_by_id(address, &folder.id, name)),
        Ok(place) => Step::new(CONTACTS, Outcome::Warn)
            .saw(sync_folder::gone(address, &folder.id, place.how_deleted()))
            .fix(sync_folder::gone_fix(name)),
        Err(e) => Step::new(CONTACTS, Outcome::Fail)
            .saw(e.to_string())
            .fix(access_fix()),
    }
}

/// Creates one contact tagged as exsync tags what it writes in the contact sync folder, reads
/// it back by its tag and deletes it: the rights a pass needs, used once, with each call's time.
async fn round_trip(mailbox: &MailboxClient, config: &ExsyncConfig, address: &str) -> Step {
    let started = Instant::now();
    let name = &config.sync_folder;
    let folder = match stored_contact_folder(config, address).await {
        Ok(Some((id, change_key))) => Ok(Some(FolderRef {
            id,
            change_key,
            distinguished: false,
        })),
        _ => mailbox.existing_contacts_folder().await,
    };
    let folder = match folder {
        Ok(Some(folder)) => folder,
        Ok(None) => {
            return Step::new(ROUND_TRIP, Outcome::Skip)
                .saw(format!(
                    "Contacts/{name} of {address} was not found to write in"
                ))
                .took(started)
        }
        Err(e) => {
            return Step::new(ROUND_TRIP, Outcome::Fail)
                .saw(e.to_string())
                .fix(format!(
                    "check that the service account may read folders under Contacts in {address}"
                ))
                .took(started)
        }
    };
    let test = TestContact::new();
    let (tag, contact) = (&test.tag, &test.contact);
    let mut step = Step::new(ROUND_TRIP, Outcome::Pass);
    let leftover = |step: Step, e: String| {
        step.saw(e)
            .fix(test.leftover_fix(name, address))
            .outcome_fail()
    };
    let t = Instant::now();
    let created = mailbox
        .create(
            ItemKind::Contact,
            &folder,
            &[(tag.clone(), contact.to_fields())],
        )
        .await
        .map(|mut r| r.pop());
    let item = match created {
        Ok(Some(Ok(item))) => item,
        Ok(Some(Err(e))) | Err(e) => {
            return step
                .saw(format!("creating a contact in Contacts/{name} of {address}: {e}"))
                .fix(format!(
                    "the service account must be able to create items in {address}: check the ApplicationImpersonation assignment"
                ))
                .outcome_fail()
                .took(started)
        }
        Ok(None) => {
            return step
                .saw("the server answered CreateItem without an item")
                .outcome_fail()
                .took(started)
        }
    };
    step = step.saw(format!(
        "created a contact tagged {tag} in Contacts/{name} of {address} ({} ms)",
        t.elapsed().as_millis()
    ));
    let t = Instant::now();
    match mailbox.find_by_crm_id(&folder, tag).await {
        Ok(Some(found)) if found.id == item.id => {
            step = step.saw(format!(
                "read it back by its tag ({} ms)",
                t.elapsed().as_millis()
            ));
        }
        Ok(_) => {
            step = step
                .saw("it could not be found again by its tag")
                .fix("the server does not return exsync's tag property; a pass could not find the items it wrote")
                .outcome_fail();
        }
        Err(e) => step = step.saw(format!("reading it back: {e}")).outcome_fail(),
    }
    let t = Instant::now();
    match mailbox
        .delete(ItemKind::Contact, std::slice::from_ref(&item.id))
        .await
    {
        Ok(results) if results.iter().all(Result::is_ok) => {
            step = step.saw(format!("deleted it ({} ms)", t.elapsed().as_millis()));
        }
        Ok(results) => {
            let why = results
                .into_iter()
                .find_map(Result::err)
                .map_or_else(String::new, |e| e.to_string());
            step = leftover(step, format!("deleting it: {why}"));
        }
        Err(e) => step = leftover(step, format!("deleting it: {e}")),
    }
    step.took(started)
}

trait FailStep {
    fn outcome_fail(self) -> Self;
}

impl FailStep for Step {
    fn outcome_fail(mut self) -> Step {
        self.outcome = Outcome::Fail;
        self
    }
}

/// The contact sync folder (id and change key) the state database stores for the mailbox, if
/// a pass stored one. Without a state database (the first check before go-live) there is
/// none; it is never created here.
async fn stored_contact_folder(
    config: &ExsyncConfig,
    address: &str,
) -> Result<Option<(String, String)>, String> {
    Ok(cursor_folder(
        stored_contact_cursor(config, address).await?.as_deref(),
    ))
}

/// The contact folder cursor the passes stored for `address`, when the state database is a
/// SQLite file this process can open.
pub(super) async fn stored_contact_cursor(
    config: &ExsyncConfig,
    address: &str,
) -> Result<Option<String>, String> {
    let path = match &config.store {
        StoreConfig::Sqlite { path } if path.exists() => path.clone(),
        _ => return Ok(None),
    };
    let scope = folder_cursor(&UserKey::from_email(address), ItemKind::Contact);
    let read = tokio::task::spawn_blocking(move || {
        let store = SqliteStore::open(&path).map_err(|e| e.to_string())?;
        store.cursor(&scope).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())??;
    Ok(read)
}

/// Basic puts the service account's password on every request, merely base64-encoded: anyone
/// who can read one request (a TLS-inspecting proxy, a request log) can reverse it, and the
/// account may impersonate every syncing mailbox. NTLM never sends the password, and with
/// Extended Protection its answer is bound to the TLS channel, so it cannot be relayed.
fn warn_basic(step: &mut Step, schemes: &[String]) {
    let offers = |name: &str| schemes.iter().any(|s| s.eq_ignore_ascii_case(name));
    step.outcome = Outcome::Warn;
    step.evidence.push(
        "Basic sends the service account's password with every request, only base64-encoded (reversible)"
            .to_owned(),
    );
    if offers("Negotiate") {
        step.evidence.push(
            "the server also offers Negotiate (Kerberos); exsync has no Kerberos client, so NTLM is the stronger scheme it can use"
                .to_owned(),
        );
    }
    const SWITCH: &str =
        "set exchange.auth = \"ntlm\" (Authentication: NTLM on the console's Service account page)";
    const TURN_OFF: &str =
        "last, turn Basic off on that virtual directory (-BasicAuthentication $false)";
    step.fix = Some(if offers("NTLM") {
        format!(
            "use NTLM with Extended Protection instead: the server already offers NTLM, so {SWITCH}; \
             require Extended Protection on the EWS virtual directory (Set-WebServicesVirtualDirectory -Identity \"<server>\\EWS (Default Web Site)\" -ExtendedProtectionTokenChecking Require; exsync binds NTLM to the TLS channel); {TURN_OFF}"
        )
    } else {
        format!(
            "enable NTLM with Extended Protection on the EWS virtual directory (Set-WebServicesVirtualDirectory -Identity \"<server>\\EWS (Default Web Site)\" -WindowsAuthentication $true -ExtendedProtectionTokenChecking Require; exsync binds NTLM to the TLS channel), \
             then {SWITCH}; {TURN_OFF}"
        )
    });
}

/// Sends an anonymous POST to the EWS URL and reads the schemes in `WWW-Authenticate`.
async fn auth_step(
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    url: &Url,
    host: &str,
    mode: &str,
    realm_configured: bool,
) -> Step {
    let probe = async {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP with {host}: {e}"))?;
        tokio::spawn(conn);
        let request = http::Request::builder()
            .method("POST")
            .uri(url.path())
            .header(http::header::HOST, url.authority())
            .header(http::header::CONTENT_TYPE, "text/xml; charset=utf-8")
            .body(Full::new(Bytes::new()))
            .map_err(|e| format!("cannot build the probe: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("{host} did not answer: {e}"))?;
        Ok::<_, String>((response.status(), response.headers().clone()))
    };
    match tokio::time::timeout(TIMEOUT, probe).await {
        Err(_) => {
            Step::new(AUTH, Outcome::Fail).saw(format!("{host} did not answer within {TIMEOUT:?}"))
        }
        Ok(Err(reason)) => Step::new(AUTH, Outcome::Fail).saw(reason),
        Ok(Ok((status, headers))) => {
            let schemes = offered(&headers);
            let mut step = Step::new(AUTH, Outcome::Pass).saw(format!(
                "an anonymous request got HTTP {}; offered: {}",
                status.as_u16(),
                if schemes.is_empty() {
                    "none".to_owned()
                } else {
                    schemes.join(", ")
                }
            ));
            let auth_mode = AuthMode::parse(mode).unwrap_or_default();
            match choose(auth_mode, realm_configured, host, &schemes) {
                Ok(scheme) => {
                    step.evidence.push(format!(
                        "exsync will use {} (exchange.auth = {mode})",
                        scheme.name()
                    ));
                    if scheme == Scheme::Basic {
                        warn_basic(&mut step, &schemes);
                    }
                }
                Err(e) => {
                    step.outcome = Outcome::Fail;
                    step.evidence.push(e.to_string());
                    step.fix = Some(
                        "enable Basic or Windows (NTLM/Negotiate) authentication on the EWS virtual directory (Set-WebServicesVirtualDirectory -BasicAuthentication $true or -WindowsAuthentication $true), or change exchange.auth".to_owned(),
                    );
                }
            }
            step
        }
    }
}

#[cfg(test)]
mod autodiscover_fix_tests {
    use super::autodiscover_fix;

    #[test]
    fn the_autodiscover_fix_matches_the_cause() {
        let allowed = ["contoso.test".to_owned()];
        let tls = "Autodiscover for a@contoso.test failed: no candidate answered: contoso.test: TLS with contoso.test failed: invalid peer certificate";
        assert!(autodiscover_fix(tls, "contoso.test", &allowed).contains("exchange.ca_file"));
        let refused = "Autodiscover for a@contoso.test failed: no candidate answered: contoso.test: contoso.test rejected the credentials of svc@contoso.test (ntlm); check the service account's user name and password";
        assert!(autodiscover_fix(refused, "contoso.test", &allowed)
            .contains("exsync secrets set exchange.password"));
        let absent = "Autodiscover for a@contoso.test failed: no candidate answered: contoso.test: cannot connect";
        assert!(autodiscover_fix(absent, "contoso.test", &allowed)
            .contains("published for contoso.test"));
    }
}
