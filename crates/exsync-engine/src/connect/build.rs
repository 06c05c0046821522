//! The sync service as `exsync.toml` and the vault describe it: the EWS connector (configured
//! URL or Autodiscover within the allow-list) when there is an `[exchange]` section, the Graph
//! connector when there is an `[exchange_online]`, the Salesforce connector, and the store.

use std::path::PathBuf;
use std::sync::Arc;

use exsync_core::config::{CrmAuth, ExchangeConfig, ExsyncConfig};
use exsync_ews::{AllowList, Autodiscover, AutodiscoverConfig};
use exsync_ews::{AuthMode, Credentials, EwsClient, EwsConfig, Resolve};
use exsync_salesforce::{AuthConfig, SalesforceClient, SalesforceConfig, Secret};
use exsync_store::Store;

use super::ews::{Endpoint, ExchangeConnection};
use super::graph::setup::{backend_rule, online_side, GraphSecrets, GraphSetupError, OnlineSide};
use super::locate::AutodiscoverLocator;
use super::salesforce::SalesforceSide;
use crate::sync::exchange_slots::ExchangeSlots;
use crate::sync::locate::AutoRouting;
use crate::sync::mailboxes::{Backend, Mailboxes, Optional, Unconfigured};
use crate::sync::service::Syncer;
use crate::vault::{
    SecretValue, Vault, VaultError, CRM_CLIENT_SECRET, CRM_PRIVATE_KEY, EXCHANGE_KEYTAB,
    EXCHANGE_PASSWORD,
};

/// The EWS backend of an installation: connected when `[exchange]` is present.
pub type OnPremisesSide = Optional<ExchangeConnection>;

/// The sync service the CLI runs: each user's mailbox on EWS, or on Graph when
/// `[exchange_online]` names it (or there is no `[exchange]`).
pub type ConfiguredSyncer = Syncer<Mailboxes<OnPremisesSide, OnlineSide>, SalesforceSide>;

/// Why the sync service cannot be built from the configuration and the vault. The admin reads
/// these at startup, so each names the setting or secret at fault and, where there is one, the
/// command or setting that fixes it. The cause, when there is one, is the error's `source`, so
/// a caller that prints the chain (`{:#}` in the binary) shows it after the setting's name.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The vault holds no service account password, and no mailbox can be reached without it.
    #[error(
        "no service account password is stored: run `exsync secrets set {}`",
        EXCHANGE_PASSWORD
    )]
    NoExchangePassword,
    /// `crm.auth` is JWT bearer, but the vault holds no private key to sign the assertion with.
    #[error(
        "no CRM private key is stored: run `exsync secrets set {}` with the PEM on stdin",
        CRM_PRIVATE_KEY
    )]
    NoCrmPrivateKey,
    /// `crm.auth` is client credentials, but the vault holds no client secret.
    #[error(
        "no CRM client secret is stored: run `exsync secrets set {}`",
        CRM_CLIENT_SECRET
    )]
    NoCrmClientSecret,
    /// The CA certificates file named by `crm.ca_file` could not be read.
    #[error("crm.ca_file {}", path.display())]
    CrmCaFile {
        /// The path as configured.
        path: PathBuf,
        /// Why reading it failed.
        #[source]
        source: std::io::Error,
    },
    /// `exchange.ews_url` is not a valid URL.
    #[error("exchange.ews_url {url}")]
    EwsUrl {
        /// The text as configured.
        url: String,
        /// Why it does not parse.
        #[source]
        source: url::ParseError,
    },
    /// `exchange.ews_url` names a host outside the allow-list (the service account's domain and
    /// `exchange.other_domains`), so no connector is built that would send the password there.
    #[error(
        "exchange.ews_url {url}: `{host}` is outside the domains the service account's password may be sent to; \
         add its domain to exchange.other_domains if that server belongs to you"
    )]
    EwsUrlOutsideAllowList {
        /// The URL as configured.
        url: String,
        /// Its host as checked against the allow-list, without an IPv6 address's brackets;
        /// empty when the URL has none.
        host: String,
    },
    /// The EWS connector could not be built from these settings; the source says why.
    #[error("the EWS connector")]
    Ews(#[source] exsync_ews::EwsError),
    /// The Salesforce connector could not be built from these settings; the source says why.
    #[error("the Salesforce connector")]
    Salesforce(#[source] exsync_salesforce::Error),
    /// Reading a secret failed (wrong master key, damaged database); the vault's message says
    /// which secret and why.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The Graph backend (`[exchange_online]`) could not be built; the text names the secret
    /// or setting at fault.
    #[error(transparent)]
    Graph(#[from] GraphSetupError),
    /// Kerberos is configured but cannot be set up; the text names the setting or secret.
    #[error("Kerberos: {0}")]
    Kerberos(String),
}

/// The secrets the service needs, read from the vault.
pub struct Secrets {
    /// The service account's password; `None` when none is stored, an error only if there is
    /// an `[exchange]` section and no keytab.
    pub exchange_password: Option<SecretValue>,
    /// The service account's Kerberos keytab (base64), used instead of the password with
    /// Kerberos.
    pub exchange_keytab: Option<SecretValue>,
    /// The PEM key for the CRM's JWT bearer flow; `None` when none is stored, an error only if
    /// `crm.auth` is JWT.
    pub crm_private_key: Option<SecretValue>,
    /// The connected app's secret for the client-credentials flow; `None` when none is stored, an
    /// error only if `crm.auth` uses that flow.
    pub crm_client_secret: Option<SecretValue>,
    /// The Entra app's certificate and key, or secret, for `[exchange_online]`; a missing one
    /// is an error only if that section's credential needs it.
    pub graph: GraphSecrets,
}

impl Secrets {
    /// Reads the secrets from the vault. Fails when a secret does not decrypt; a missing one
    /// fails later, when the service is built, only if the configuration needs it.
    pub fn from_vault(vault: &Vault) -> Result<Secrets, BuildError> {
        Ok(Secrets {
            exchange_password: vault.get(EXCHANGE_PASSWORD)?,
            exchange_keytab: vault.get(EXCHANGE_KEYTAB)?,
            crm_private_key: vault.get(CRM_PRIVATE_KEY)?,
            crm_client_secret: vault.get(CRM_CLIENT_SECRET)?,
            graph: GraphSecrets::from_vault(vault)?,
        })
    }
}

/// The largest keytab taken, decoded: a service account's keys for a few encryption types
/// and key versions take a few hundred bytes.
pub const KEYTAB_MAX: usize = 64 * 1024;

/// A keytab as the vault keeps it (base64; line breaks allowed, as `base64` without `-w0`
/// writes it) back to its bytes, refused unless it is a keytab file (MIT's format, which
/// `ktutil`, `ktpass` and `msktutil` write), so a wrong file is refused where it is given
/// rather than at the first login.
pub fn decode_keytab(encoded: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let text: String = encoded
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let too_large = || format!("the keytab is larger than {KEYTAB_MAX} bytes");
    // Refused before decoding, so a huge paste costs nothing.
    if text.len() > KEYTAB_MAX.div_ceil(3) * 4 {
        return Err(too_large());
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| "the keytab is not base64".to_owned())?;
    if bytes.len() > KEYTAB_MAX {
        return Err(too_large());
    }
    // Format 0x0502 since MIT 1.0; 0x0501 before, still read.
    match bytes.get(..2) {
        Some([5, 1 | 2]) => Ok(bytes),
        _ => Err("this is not a keytab file (one starts with the bytes 05 02)".to_owned()),
    }
}

/// The Kerberos login when `exchange.auth` is `kerberos`, or `auto` with a realm configured:
/// the principal, the keytab from the vault written to a private file, and MIT's library
/// pointed at the configured krb5.conf or one written from `realm` and `kdcs`. Runs before the
/// async runtime starts, because the library's configuration is an environment variable.
pub fn kerberos_login(
    x: &exsync_core::config::ExchangeConfig,
    keytab: Option<&SecretValue>,
) -> Result<Option<exsync_ews::KerberosLogin>, BuildError> {
    use exsync_core::config::ExchangeAuth;
    let wanted = match x.auth {
        ExchangeAuth::Kerberos => true,
        ExchangeAuth::Auto => x.realm.is_some(),
        ExchangeAuth::Basic | ExchangeAuth::Ntlm => false,
    };
    if !wanted {
        return Ok(None);
    }
    let principal = x.kerberos_principal().ok_or_else(|| {
        BuildError::Kerberos(
            "no realm: set exchange.realm, or write the service account as user@domain".into(),
        )
    })?;
    let files = exsync_gss::PrivateFiles::new()
        .map_err(|e| BuildError::Kerberos(format!("cannot create a private directory: {e}")))?;
    let keytab = match keytab {
        Some(encoded) => {
            let bytes = decode_keytab(encoded.expose()).map_err(|e| {
                BuildError::Kerberos(format!(
                    "the secret {EXCHANGE_KEYTAB}: {e}; store it with \
                     `base64 -w0 FILE | exsync secrets set {EXCHANGE_KEYTAB}`"
                ))
            })?;
            Some(files.write_keytab(&bytes).map_err(|e| {
                BuildError::Kerberos(format!("cannot write the keytab to a private file: {e}"))
            })?)
        }
        None => None,
    };
    let krb5_conf = match (&x.krb5_conf, &x.realm) {
        (Some(path), _) => Some(path.clone()),
        (None, Some(realm)) if !x.kdcs.is_empty() => Some(
            files
                .write_krb5_conf(realm, &x.kdcs)
                .map_err(BuildError::Kerberos)?,
        ),
        _ => None,
    };
    if let Some(path) = krb5_conf {
        exsync_gss::krb5_conf::use_config(&path).map_err(BuildError::Kerberos)?;
    }
    Ok(Some(exsync_ews::KerberosLogin {
        principal,
        keytab,
        files: Some(Arc::new(files)),
    }))
}

/// The Salesforce connector's settings.
pub fn salesforce_config(
    config: &ExsyncConfig,
    secrets: &Secrets,
) -> Result<SalesforceConfig, BuildError> {
    let crm = &config.crm;
    let auth = match crm.auth {
        CrmAuth::Jwt => {
            let Some(key) = &secrets.crm_private_key else {
                return Err(BuildError::NoCrmPrivateKey);
            };
            let audience = if crm.login_url.contains("test.salesforce.com") {
                "https://test.salesforce.com"
            } else {
                "https://login.salesforce.com"
            };
            AuthConfig::JwtBearer {
                client_id: crm.client_id.clone(),
                username: crm.username.clone().unwrap_or_default(),
                private_key_pem: Secret::new(key.expose().as_bytes().to_vec()),
                audience: audience.to_owned(),
            }
        }
        CrmAuth::ClientCredentials => {
            let Some(secret) = &secrets.crm_client_secret else {
                return Err(BuildError::NoCrmClientSecret);
            };
            AuthConfig::ClientCredentials {
                client_id: crm.client_id.clone(),
                client_secret: Secret::new(secret.expose().as_bytes().to_vec()),
            }
        }
    };
    let mut sf = SalesforceConfig::new(
        crm.instance_url
            .clone()
            .unwrap_or_else(|| crm.login_url.clone()),
        auth,
    );
    if let Some(ca) = &crm.ca_file {
        let pem = std::fs::read(ca).map_err(|source| BuildError::CrmCaFile {
            path: ca.clone(),
            source,
        })?;
        sf.ca_pem = Some(pem);
    }
    sf.settle = std::time::Duration::from_secs(crm.settle_secs);
    sf.limit_reserve = 0;
    sf.limit_reserve_share = crm.api_reserve;
    sf.max_reply_bytes = config.network.max_reply_bytes();
    sf.mailbox_field = crm.mailbox_field.clone();
    Ok(sf)
}

/// The sync service for this configuration.
pub fn syncer(
    config: &ExsyncConfig,
    store: Arc<dyn Store>,
    secrets: &Secrets,
    metrics: &Arc<crate::metrics::Metrics>,
) -> Result<Arc<ConfiguredSyncer>, BuildError> {
    let observer = exsync_core::observe::Observer(
        Arc::clone(metrics) as Arc<dyn exsync_core::observe::RequestObserver>
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Workers on one database share the service account's requests in flight through slots
    // there; a process alone keeps its own cap.
    let share = (store.shared() && config.exchange.is_some()).then(exsync_ews::AccountShare::new);
    let (on_premises, locator) = match &config.exchange {
        Some(x) => {
            let side = ews_side(config, x, secrets, &observer, share.clone())?;
            let locator = auto_locator(config, x, &side);
            (Optional::Configured(Box::new(side)), locator)
        }
        None => (Optional::Unconfigured(Unconfigured(Backend::Ews)), None),
    };
    let online = online_side(config, &secrets.graph, Some(observer.clone()))?;
    let mut crm_config = salesforce_config(config, secrets)?;
    crm_config.observer = Some(observer);
    // Workers on one database draw every CRM call from one budget there; a process alone
    // paces itself by Salesforce's replies.
    if store.shared() {
        crm_config.budget = Some(exsync_salesforce::Budget(Arc::new(
            super::budget::StoreBudget::new(Arc::clone(&store), Arc::clone(metrics)),
        )));
    }
    let crm = SalesforceClient::new(crm_config).map_err(BuildError::Salesforce)?;
    let mut exchange = Mailboxes::new(on_premises, online, backend_rule(config));
    // A locator exists only for `[exchange_online]` with `auto`.
    if let (Some(locator), Some(x)) = (locator, &config.exchange_online) {
        exchange = exchange.with_auto(AutoRouting::configured(Arc::new(locator), x));
    }
    Ok(Arc::new(Syncer {
        exchange,
        crm: SalesforceSide { client: crm },
        store,
        configurations: config.configurations.clone(),
        concurrency: config.service.concurrent_users.max(1) as usize,
        slice: crate::sync::pass::SLICE,
        worker: worker_options(config, share, metrics),
    }))
}

/// On a PostgreSQL store, this process is one worker among others.
fn worker_options(
    config: &ExsyncConfig,
    share: Option<exsync_ews::AccountShare>,
    metrics: &Arc<crate::metrics::Metrics>,
) -> Option<crate::sync::workers::WorkerOptions> {
    match &config.store {
        exsync_core::config::StoreConfig::Postgres { worker, .. } => {
            let options = crate::sync::workers::WorkerOptions::new(
                worker.id.clone(),
                std::time::Duration::from_secs(worker.lease_secs),
                usize::try_from(worker.batch).unwrap_or(1),
            );
            Some(match (share, &config.exchange) {
                (Some(share), Some(x)) => options.with_exchange_slots(ExchangeSlots {
                    share,
                    size: x.max_concurrency,
                    metrics: Arc::clone(metrics),
                }),
                _ => options,
            })
        }
        exsync_core::config::StoreConfig::Sqlite { .. } => None,
    }
}

/// The EWS backend for `[exchange]` (configured URL or Autodiscover) with the service
/// account's password from the vault; nothing is sent yet.
fn ews_side(
    config: &ExsyncConfig,
    x: &ExchangeConfig,
    secrets: &Secrets,
    observer: &exsync_core::observe::Observer,
    share: Option<exsync_ews::AccountShare>,
) -> Result<ExchangeConnection, BuildError> {
    let password = match (&secrets.exchange_password, &secrets.exchange_keytab) {
        (Some(password), _) => password.clone(),
        // A keytab alone serves Kerberos; a scheme that needs the password fails with the
        // server's refusal, naming the account.
        (None, Some(_)) => SecretValue::new(String::new()),
        (None, None) => return Err(BuildError::NoExchangePassword),
    };
    // Credentials go only to the service account's own domain and the other domains the
    // admin listed, whether the endpoint is configured or discovered; a configured one is
    // checked before any connector holds the password.
    let allow = x.allow_list();
    let configured = x
        .ews_url
        .as_deref()
        .map(|text| configured_url(text, &allow))
        .transpose()?;
    let mut ews = EwsConfig::new(Credentials::new(
        x.service_account.clone(),
        password.expose(),
    ));
    ews.auth = AuthMode::parse(x.auth.as_str()).unwrap_or_default();
    ews.kerberos = kerberos_login(x, secrets.exchange_keytab.as_ref())?;
    ews.ca_file = x.ca_file.clone();
    let mut resolve = Resolve::new();
    for (host, addr) in &config.network.resolve {
        resolve.insert(host, *addr);
    }
    ews.resolve = resolve;
    ews.max_reply_bytes = config.network.max_reply_bytes();
    ews.contacts_folder = config.sync_folder.clone();
    ews.max_concurrency = x.max_concurrency as usize;
    ews.max_per_mailbox = config.service.per_user_concurrency as usize;
    ews.share = share;
    ews.trace_dir = x.wire_trace_dir.clone();
    ews.observer = Some(observer.clone());
    let client = EwsClient::new(ews).map_err(BuildError::Ews)?;
    let endpoint = match configured {
        Some(url) => Endpoint::Configured(url),
        None => Endpoint::Discovered(Autodiscover::new(
            Arc::clone(client.http()),
            AutodiscoverConfig::new(allow),
        )),
    };
    Ok(ExchangeConnection::new(client, endpoint))
}

/// The Autodiscover lookup `auto` routing asks, when `[exchange_online]` locates mailboxes
/// automatically: within the allow-list, over the EWS client's connections (so its caps and
/// deadlines hold), even when an EWS URL is configured.
fn auto_locator(
    config: &ExsyncConfig,
    x: &ExchangeConfig,
    side: &ExchangeConnection,
) -> Option<AutodiscoverLocator> {
    let online = config.exchange_online.as_ref()?;
    if !online.routes_automatically() {
        return None;
    }
    // The configuration check refuses `auto` without a routing domain.
    let routing_domain = online.routing_domain()?;
    let autodiscover = Autodiscover::new(
        Arc::clone(side.client.http()),
        AutodiscoverConfig::new(x.allow_list()),
    );
    Some(AutodiscoverLocator::new(autodiscover, routing_domain))
}

/// The configured EWS URL, refused when its host is outside the allow-list. The configuration
/// check refuses such a file already; this holds for a configuration that reached the service
/// some other way.
fn configured_url(text: &str, allow: &AllowList) -> Result<url::Url, BuildError> {
    let url = url::Url::parse(text).map_err(|source| BuildError::EwsUrl {
        url: text.to_owned(),
        source,
    })?;
    let host = url
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .unwrap_or_default();
    if host.is_empty() || !allow.allows(host) {
        return Err(BuildError::EwsUrlOutsideAllowList {
            url: text.to_owned(),
            host: host.to_owned(),
        });
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_configured_url_outside_the_allow_list_never_gets_a_connector() {
        let allow = AllowList::new(["contoso.test", "fabrikam.test"]);
        for inside in [
            "https://mail.contoso.test/EWS/Exchange.asmx",
            "https://contoso.test:8443/EWS/Exchange.asmx",
            "https://ews.fabrikam.test/EWS/Exchange.asmx",
        ] {
            assert!(configured_url(inside, &allow).is_ok(), "{inside}");
        }
        for outside in [
            "https://127.0.0.1:8443/EWS/Exchange.asmx",
            "https://[::1]:8443/EWS/Exchange.asmx",
            "https://mail.contoso.test.evil.test/EWS/Exchange.asmx",
            "https://notcontoso.test/EWS/Exchange.asmx",
            "https://mail.contoso.test@evil.test/EWS/Exchange.asmx",
        ] {
            let refused = configured_url(outside, &allow).map(|_| ()).unwrap_err();
            assert!(
                refused
                    .to_string()
                    .contains("add its domain to exchange.other_domains"),
                "{outside}: {refused}"
            );
        }
    }

    /// A keytab is taken as base64 of a keytab file, line breaks and all, and anything else
    /// is refused with what it is not.
    #[test]
    fn a_keytab_is_base64_of_a_keytab_file() {
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let file = [5u8, 2, 0, 0, 0, 40, 0xff];
        assert_eq!(decode_keytab(&b64(&file)).unwrap(), file);
        let text = b64(&file);
        let wrapped = format!(" {}\n{}\r\n", &text[..4], &text[4..]);
        assert_eq!(decode_keytab(&wrapped).unwrap(), file);
        assert_eq!(decode_keytab(&b64(&[5, 1, 9])).unwrap(), [5, 1, 9]);
        assert!(decode_keytab("not base64!")
            .unwrap_err()
            .contains("not base64"));
        for not_one in [&b"-----BEGIN"[..], &[5], &[5, 3, 0], &[]] {
            assert!(
                decode_keytab(&b64(not_one))
                    .unwrap_err()
                    .contains("not a keytab file"),
                "{not_one:?}"
            );
        }
        let large: Vec<u8> = [5, 2].into_iter().chain([0; KEYTAB_MAX]).collect();
        assert!(decode_keytab(&b64(&large))
            .unwrap_err()
            .contains("larger than"));
    }

    /// The text and its causes as the binary prints them (`{:#}` of an `anyhow::Error`).
    fn chain(e: &dyn std::error::Error) -> String {
        let mut text = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            text.push_str(&format!(": {c}"));
            cause = c.source();
        }
        text
    }

    #[test]
    fn messages_name_the_setting_and_the_fix() {
        assert_eq!(
            BuildError::NoExchangePassword.to_string(),
            "no service account password is stored: run `exsync secrets set exchange.password`"
        );
        assert_eq!(
            BuildError::NoCrmPrivateKey.to_string(),
            format!("no CRM private key is stored: run `exsync secrets set {CRM_PRIVATE_KEY}` with the PEM on stdin")
        );
        assert_eq!(
            BuildError::NoCrmClientSecret.to_string(),
            format!("no CRM client secret is stored: run `exsync secrets set {CRM_CLIENT_SECRET}`")
        );
        let missing = std::env::temp_dir().join("exsync-no-such-dir/ca.pem");
        let io = std::fs::read(&missing).unwrap_err();
        let expected = format!("crm.ca_file {}: {io}", missing.display());
        let e = BuildError::CrmCaFile {
            path: missing,
            source: io,
        };
        assert_eq!(chain(&e), expected);
        let allow = AllowList::new(["contoso.test"]);
        let e = configured_url("not a url", &allow).unwrap_err();
        assert!(matches!(e, BuildError::EwsUrl { .. }));
        assert_eq!(
            chain(&e),
            "exchange.ews_url not a url: relative URL without a base"
        );
    }
}
