//! The Graph backend as `exsync.toml`'s `[exchange_online]` and the vault describe it, and
//! the rule that sends each user to EWS or to Graph.

use exsync_core::config::{
    ExchangeOnlineConfig, ExsyncConfig, OnlineCloud, OnlineCredential, Window,
};
use exsync_core::UserKey;
use exsync_graph::{AssertionAlgorithm, Cloud, Credential, GraphClient, GraphConfig, Secret};

use super::{GraphConnection, GraphSettings};
use crate::sync::mailboxes::{Backend, BackendRule, Optional, Unconfigured};
use crate::vault::{SecretValue, Vault, VaultError};

/// The app's certificate (PEM) in the vault.
pub const GRAPH_CERTIFICATE: &str = "exchange_online.certificate";
/// The certificate's private key (PEM) in the vault.
pub const GRAPH_PRIVATE_KEY: &str = "exchange_online.private_key";
/// The app's client secret in the vault, when `exchange_online.credential = "secret"`.
pub const GRAPH_CLIENT_SECRET: &str = "exchange_online.client_secret";

/// The app's credential as the vault holds it; each part `None` when not stored.
#[derive(Default)]
pub struct GraphSecrets {
    /// See [`GRAPH_CERTIFICATE`].
    pub certificate: Option<SecretValue>,
    /// See [`GRAPH_PRIVATE_KEY`].
    pub private_key: Option<SecretValue>,
    /// See [`GRAPH_CLIENT_SECRET`].
    pub client_secret: Option<SecretValue>,
}

impl GraphSecrets {
    /// Reads them; a missing one is an error only if the configured credential needs it.
    pub fn from_vault(vault: &Vault) -> Result<GraphSecrets, VaultError> {
        Ok(GraphSecrets {
            certificate: vault.get(GRAPH_CERTIFICATE)?,
            private_key: vault.get(GRAPH_PRIVATE_KEY)?,
            client_secret: vault.get(GRAPH_CLIENT_SECRET)?,
        })
    }
}

/// Why the Graph backend cannot be built; each names the secret or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum GraphSetupError {
    /// A certificate credential without its certificate or key in the vault.
    #[error(
        "exchange_online.credential is certificate, but the vault lacks the certificate or its key: \
         run `exsync secrets set {GRAPH_CERTIFICATE}` and `exsync secrets set {GRAPH_PRIVATE_KEY}` \
         with each PEM on stdin"
    )]
    NoCertificate,
    /// A secret credential without the secret in the vault.
    #[error(
        "exchange_online.credential is secret, but no client secret is stored: run \
         `exsync secrets set {GRAPH_CLIENT_SECRET}`"
    )]
    NoClientSecret,
    /// `exchange_online.ca_file` could not be read.
    #[error("exchange_online.ca_file {}", path.display())]
    CaFile {
        /// The path as configured.
        path: std::path::PathBuf,
        /// Why reading it failed.
        #[source]
        source: std::io::Error,
    },
    /// The Graph client refused these settings (a certificate that does not parse, a key of
    /// another certificate); the source says why.
    #[error("the Graph connector (exchange_online)")]
    Graph(#[source] exsync_graph::Error),
}

/// The Graph backend of an installation: connected when `[exchange_online]` is present.
pub type OnlineSide = Optional<GraphConnection>;

/// The widest event window of the configurations, which the calendarView delta must cover for
/// every user (the pass applies each user's own window).
fn widest_window(config: &ExsyncConfig) -> Option<Window> {
    config
        .configurations
        .iter()
        .filter_map(|c| c.events.window)
        .reduce(|a, b| Window {
            past_days: a.past_days.max(b.past_days),
            future_days: a.future_days.max(b.future_days),
        })
}

/// The Graph client for `[exchange_online]` and the app's credential from the vault (nothing
/// is sent yet): the backend's, and the one `exsync check` asks for a token with.
pub fn graph_client(
    config: &ExsyncConfig,
    online: &ExchangeOnlineConfig,
    secrets: &GraphSecrets,
    observer: Option<exsync_core::observe::Observer>,
) -> Result<GraphClient, GraphSetupError> {
    let credential = match online.credential {
        OnlineCredential::Certificate => {
            let (Some(certificate), Some(key)) = (&secrets.certificate, &secrets.private_key)
            else {
                return Err(GraphSetupError::NoCertificate);
            };
            Credential::Certificate {
                certificate_pem: certificate.expose().as_bytes().to_vec(),
                private_key_pem: Secret::new(key.expose().as_bytes().to_vec()),
                algorithm: AssertionAlgorithm::Ps256,
            }
        }
        OnlineCredential::Secret => {
            let Some(secret) = &secrets.client_secret else {
                return Err(GraphSetupError::NoClientSecret);
            };
            Credential::Secret(Secret::new(secret.expose().as_bytes().to_vec()))
        }
    };
    let cloud = match (&online.endpoints, online.cloud) {
        (Some(at), _) => Cloud::custom(&at.authority_url, &at.graph_url),
        (None, OnlineCloud::Global) => Cloud::Global,
        (None, OnlineCloud::UsGov) => Cloud::UsGov,
        (None, OnlineCloud::UsDod) => Cloud::UsDod,
        (None, OnlineCloud::China) => Cloud::China,
    };
    let mut graph = GraphConfig::new(
        online.tenant.clone(),
        online.client_id.clone(),
        cloud,
        credential,
    );
    if let Some(path) = &online.ca_file {
        let pem = std::fs::read(path).map_err(|source| GraphSetupError::CaFile {
            path: path.clone(),
            source,
        })?;
        graph.ca_pem = Some(pem);
    }
    graph.limits.max_reply_bytes = config.network.max_reply_bytes();
    // Graph allows 4 requests in flight per mailbox; the service's per-user limit may be lower.
    graph.limits.per_mailbox = graph
        .limits
        .per_mailbox
        .min(config.service.per_user_concurrency.max(1) as usize);
    graph.observer = observer;
    GraphClient::new(graph).map_err(GraphSetupError::Graph)
}

/// The Graph backend for this configuration.
pub fn online_side(
    config: &ExsyncConfig,
    secrets: &GraphSecrets,
    observer: Option<exsync_core::observe::Observer>,
) -> Result<OnlineSide, GraphSetupError> {
    let Some(online) = &config.exchange_online else {
        return Ok(Optional::Unconfigured(Unconfigured(Backend::Graph)));
    };
    let client = graph_client(config, online, secrets, observer)?;
    let mut settings = GraphSettings::new(online.client_id.clone());
    settings.contacts_folder = config.sync_folder.clone();
    if let Some(window) = widest_window(config) {
        settings.window = window;
    }
    Ok(Optional::Configured(Box::new(GraphConnection::new(
        std::sync::Arc::new(client),
        settings,
    ))))
}

/// Which backend serves each user: Graph for the users `[exchange_online]` names (or all of
/// them), located automatically for those `auto` covers, EWS for the rest.
pub fn backend_rule(config: &ExsyncConfig) -> BackendRule {
    let Some(online) = &config.exchange_online else {
        return BackendRule::every_user(Backend::Ews);
    };
    if online.all_users {
        return BackendRule::every_user(Backend::Graph);
    }
    let mut rule = online
        .users
        .iter()
        .fold(BackendRule::every_user(Backend::Ews), |rule, address| {
            rule.with_user(UserKey::from_email(address), Backend::Graph)
        });
    rule.auto_default = online.auto;
    online.auto_users.iter().fold(rule, |rule, address| {
        rule.with_auto_user(UserKey::from_email(address))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const FILE: &str = "[exchange]
service_account = \"svc@example.com\"
[crm]
client_id = \"abc\"
username = \"int@example.com\"
[configurations.a]
users = [\"a@example.com\"]
[configurations.a.events]
past_days = 60
[configurations.b]
users = [\"b@example.com\"]
[configurations.b.events]
future_days = 500
";

    fn config(online: &str) -> ExsyncConfig {
        exsync_core::config::parse(
            &format!("{FILE}{online}"),
            std::path::Path::new("/etc/exsync/exsync.toml"),
        )
        .unwrap()
    }

    #[test]
    fn graph_users_named_in_exchange_online_are_routed_to_graph() {
        let a = UserKey::new("a@example.com".to_owned());
        let b = UserKey::new("b@example.com".to_owned());
        let none = backend_rule(&config(""));
        assert_eq!(none.backend_of(&a), Backend::Ews);
        let listed = backend_rule(&config(
            "[exchange_online]\ntenant = \"t\"\nclient_id = \"c\"\nusers = [\"b@example.com\"]\n",
        ));
        assert_eq!(
            (listed.backend_of(&a), listed.backend_of(&b)),
            (Backend::Ews, Backend::Graph)
        );
        let all = backend_rule(&config(
            "[exchange_online]\ntenant = \"t\"\nclient_id = \"c\"\nall_users = true\n",
        ));
        assert_eq!(all.backend_of(&a), Backend::Graph);
        let auto = backend_rule(&config(
            "[exchange_online]\ntenant = \"t.onmicrosoft.com\"\nclient_id = \"c\"\nauto_users = [\"a@example.com\"]\n",
        ));
        assert!(auto.is_auto(&a) && !auto.is_auto(&b));
        let everyone = backend_rule(&config(
            "[exchange_online]\ntenant = \"t.onmicrosoft.com\"\nclient_id = \"c\"\nauto = true\nusers = [\"b@example.com\"]\n",
        ));
        assert!(everyone.is_auto(&a) && !everyone.is_auto(&b));
        assert_eq!(everyone.backend_of(&b), Backend::Graph);
        assert_eq!(
            widest_window(&config("")),
            Some(Window {
                past_days: 60,
                future_days: 500
            })
        );
    }

    #[test]
    fn graph_side_needs_its_credential_in_the_vault() {
        let online = config("[exchange_online]\ntenant = \"t\"\nclient_id = \"c\"\n");
        let missing = online_side(&online, &GraphSecrets::default(), None)
            .err()
            .unwrap();
        assert!(
            missing
                .to_string()
                .contains("exsync secrets set exchange_online.certificate"),
            "{missing}"
        );
        let secret = config(
            "[exchange_online]\ntenant = \"t\"\nclient_id = \"c\"\ncredential = \"secret\"\n",
        );
        assert!(matches!(
            online_side(&secret, &GraphSecrets::default(), None),
            Err(GraphSetupError::NoClientSecret)
        ));
        let secrets = GraphSecrets {
            client_secret: Some(SecretValue::new("s3cret".to_owned())),
            ..GraphSecrets::default()
        };
        assert!(matches!(
            online_side(&secret, &secrets, None),
            Ok(Optional::Configured(_))
        ));
        assert!(matches!(
            online_side(&config(""), &GraphSecrets::default(), None),
            Ok(OnlineSide::Unconfigured(_))
        ));
    }
}
