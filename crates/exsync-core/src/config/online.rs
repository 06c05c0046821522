//! The `[exchange_online]` section: the Entra app through which exsync reaches Exchange Online
//! mailboxes over Microsoft Graph, and which users' mailboxes are there. Its certificate and
//! key, or its secret, live in the vault.

use serde::{Deserialize, Serialize};

use super::check;
use super::walk::{Reader, Tbl};

/// The national cloud an Exchange Online tenant lives in: it sets the sign-in authority, the
/// Graph host and the token scope together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnlineCloud {
    /// The worldwide service (also Microsoft 365 GCC).
    Global,
    /// US Government L4 (GCC High).
    UsGov,
    /// US Government L5 (DoD).
    UsDod,
    /// China, operated by 21Vianet.
    China,
}

impl OnlineCloud {
    /// The setting's spelling in `exchange_online.cloud`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnlineCloud::Global => "global",
            OnlineCloud::UsGov => "usgov",
            OnlineCloud::UsDod => "usdod",
            OnlineCloud::China => "china",
        }
    }
}

/// How the app proves who it is to Entra ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnlineCredential {
    /// A certificate registered with the app; its PEM and private key are in the vault.
    Certificate,
    /// A client secret, in the vault. Secrets expire (24 months at most); a certificate is
    /// preferred.
    Secret,
}

impl OnlineCredential {
    /// The setting's spelling in `exchange_online.credential`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnlineCredential::Certificate => "certificate",
            OnlineCredential::Secret => "secret",
        }
    }
}

/// The `[exchange_online]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeOnlineConfig {
    /// The directory (tenant) id, a GUID or a verified domain such as
    /// `contoso.onmicrosoft.com`.
    pub tenant: String,
    /// The app registration's application (client) id.
    pub client_id: String,
    /// Which cloud the tenant is in.
    pub cloud: OnlineCloud,
    /// Certificate (default) or secret.
    pub credential: OnlineCredential,
    /// Every syncing user's mailbox is in Exchange Online (no EWS for anyone).
    pub all_users: bool,
    /// Mailboxes in Exchange Online, lower-cased, when not all of them are: the others stay
    /// on EWS.
    pub users: Vec<String>,
    /// The sign-in authority and Graph endpoint to use instead of the cloud's, both https
    /// (`authority_url` without the tenant, `graph_url` such as `https://host/v1.0`): for a
    /// tenant behind a private endpoint, or exsync's Graph simulator. The app's credential
    /// goes to these hosts only.
    pub endpoints: Option<OnlineEndpoints>,
    /// Extra CA certificates (PEM) to trust for those endpoints, beside the system's.
    pub ca_file: Option<std::path::PathBuf>,
}

/// `exchange_online.authority_url` and `graph_url`, set together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineEndpoints {
    /// Where tokens are asked for, without the tenant: `https://login.example/`.
    pub authority_url: String,
    /// Graph's base URL, with or without the version: `https://graph.example/v1.0`.
    pub graph_url: String,
}

impl ExchangeOnlineConfig {
    /// Whether the mailbox `address` is served through Graph.
    pub fn serves(&self, address: &str) -> bool {
        self.all_users || self.users.iter().any(|u| u.eq_ignore_ascii_case(address))
    }
}

pub(crate) const KEYS: &[&str] = &[
    "tenant",
    "client_id",
    "cloud",
    "credential",
    "all_users",
    "users",
    "authority_url",
    "graph_url",
    "ca_file",
    "sync_folder",
];

/// Reads `[exchange_online]`.
pub(crate) fn read_exchange_online(r: &mut Reader, t: &Tbl<'_, '_>) -> ExchangeOnlineConfig {
    r.check_keys(t, KEYS);
    let required = |r: &mut Reader, name: &str, what: &str| match r.item(t, name) {
        None => {
            r.missing(t, name, what);
            String::new()
        }
        Some(item) => r.text(&item).unwrap_or_default(),
    };
    let tenant = required(
        r,
        "tenant",
        "the directory (tenant) id, or a verified domain such as contoso.onmicrosoft.com",
    );
    let client_id = required(
        r,
        "client_id",
        "the app registration's application (client) id",
    );
    let cloud = r
        .item(t, "cloud")
        .and_then(|item| {
            r.choice(
                &item,
                "a cloud",
                &[
                    ("global", OnlineCloud::Global),
                    ("usgov", OnlineCloud::UsGov),
                    ("usdod", OnlineCloud::UsDod),
                    ("china", OnlineCloud::China),
                ],
            )
        })
        .unwrap_or(OnlineCloud::Global);
    let credential = r
        .item(t, "credential")
        .and_then(|item| {
            r.choice(
                &item,
                "a credential kind",
                &[
                    ("certificate", OnlineCredential::Certificate),
                    ("secret", OnlineCredential::Secret),
                ],
            )
        })
        .unwrap_or(OnlineCredential::Certificate);
    let all_users = r
        .item(t, "all_users")
        .and_then(|item| r.boolean(&item))
        .unwrap_or(false);
    let mut users = Vec::new();
    if let Some(item) = r.item(t, "users") {
        for (address, line) in r.string_list(&item).unwrap_or_default() {
            let address = address.trim().to_ascii_lowercase();
            if !check::is_email(&address) {
                r.error(
                    &item.key,
                    Some(line),
                    format!("`{address}` is not a mailbox address such as user@example.com"),
                );
            } else if !users.contains(&address) {
                users.push(address);
            }
        }
    }
    const WHY: &str = "the app's credential and its tokens are only ever sent over TLS";
    let authority_url = super::load::https_url(r, t, "authority_url", WHY);
    let graph_url = super::load::https_url(r, t, "graph_url", WHY);
    let endpoints = match (authority_url, graph_url) {
        (Some(authority_url), Some(graph_url)) => Some(OnlineEndpoints {
            authority_url,
            graph_url,
        }),
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => {
            let (set, other) = if r.item(t, "authority_url").is_some() {
                ("authority_url", "graph_url")
            } else {
                ("graph_url", "authority_url")
            };
            if let Some(item) = r.item(t, set) {
                r.error(
                    &item.key,
                    Some(item.key_line),
                    format!(
                        "needs {other} as well: give both endpoints, or neither for the cloud's"
                    ),
                );
            }
            None
        }
    };
    let ca_file = super::load::existing_file(r, t, "ca_file");
    ExchangeOnlineConfig {
        tenant,
        client_id,
        cloud,
        credential,
        all_users,
        users,
        endpoints,
        ca_file,
    }
}

/// Without an `[exchange]` section every mailbox is in Exchange Online: `all_users` holds
/// whether or not it was written, and a `users` list (which picks the online mailboxes of a
/// hybrid organisation) is refused rather than leaving everyone else with no backend.
pub(crate) fn serve_every_user(r: &mut Reader, t: &Tbl<'_, '_>, online: &mut ExchangeOnlineConfig) {
    if let Some(item) = r.item(t, "users") {
        r.error(
            &item.key,
            Some(item.key_line),
            "names the online mailboxes of a hybrid organisation; without an [exchange] section \
             every mailbox is in Exchange Online, so remove it (or add [exchange] for the mailboxes on premises)",
        );
    }
    if let Some(item) = r.item(t, "all_users") {
        if matches!(item.value, toml::de::DeValue::Boolean(false)) {
            r.error(
                &item.key,
                Some(item.value_line),
                "without an [exchange] section every mailbox is in Exchange Online; \
                 remove it, or add [exchange] for the mailboxes on premises",
            );
        }
    }
    online.all_users = true;
    online.users.clear();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::path::Path;

    use super::super::parse;
    use super::*;

    const HEAD: &str = "[exchange]
service_account = \"svc@example.com\"
[crm]
client_id = \"abc\"
username = \"int@example.com\"
[configurations.a]
users = [\"a@example.com\"]
";

    fn problems(text: &str) -> Vec<String> {
        match parse(text, Path::new("/etc/exsync/exsync.toml")) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn graph_exchange_online_is_read_with_its_defaults_and_shown_back() {
        let path = Path::new("/etc/exsync/exsync.toml");
        let none = parse(HEAD, path).unwrap();
        assert_eq!(none.exchange_online, None);
        let text = format!(
            "{HEAD}[exchange_online]\ntenant = \"contoso.onmicrosoft.com\"\nclient_id = \"11111111-2222-3333-4444-555555555555\"\nusers = [\"B@Example.com\", \"b@example.com\"]\n"
        );
        let config = parse(&text, path).unwrap();
        let online = config.exchange_online.clone().unwrap();
        assert_eq!(online.tenant, "contoso.onmicrosoft.com");
        assert_eq!(online.cloud, OnlineCloud::Global);
        assert_eq!(online.credential, OnlineCredential::Certificate);
        assert_eq!(online.users, ["b@example.com"]);
        assert!(online.serves("B@example.com") && !online.serves("a@example.com"));
        // What `exsync config show` prints loads back the same.
        let shown = config.to_toml_string().unwrap();
        assert_eq!(parse(&shown, path).unwrap().exchange_online, Some(online));
    }

    /// An organisation entirely in Exchange Online writes no `[exchange]` section: every user
    /// is online, the folder is named in `[exchange_online]`, and `config show` loads back.
    #[test]
    fn graph_only_install_needs_no_exchange_section() {
        let path = Path::new("/etc/exsync/exsync.toml");
        let tail = "[crm]\nclient_id = \"abc\"\nusername = \"int@example.com\"\n[configurations.a]\nusers = [\"a@example.com\"]\n";
        let online =
            "[exchange_online]\ntenant = \"t\"\nclient_id = \"c\"\nsync_folder = \"CRM\"\n";
        let config = parse(&format!("{online}{tail}"), path).unwrap();
        assert_eq!(config.exchange, None);
        assert_eq!(config.sync_folder, "CRM");
        let served = config.exchange_online.clone().unwrap();
        assert!(served.all_users && served.serves("anyone@example.com"));
        let shown = config.to_toml_string().unwrap();
        assert!(!shown.contains("[exchange]"), "{shown}");
        let back = parse(&shown, path).unwrap();
        assert_eq!(
            (back.exchange, back.exchange_online, back.sync_folder),
            (None, Some(served), "CRM".to_owned())
        );

        // A list of online users, or all_users = false, would leave the others with no backend.
        let listed = problems(&format!("{online}users = [\"a@example.com\"]\n{tail}")).join("\n");
        assert!(
            listed.contains(
                "exchange_online.users: names the online mailboxes of a hybrid organisation"
            ),
            "{listed}"
        );
        let off = problems(&format!("{online}all_users = false\n{tail}")).join("\n");
        assert!(
            off.contains("exchange_online.all_users: without an [exchange] section"),
            "{off}"
        );
        // Hybrid: the folder is named once, in [exchange].
        let twice = problems(&format!("{HEAD}{online}")).join("\n");
        assert!(
            twice.contains(
                "exchange_online.sync_folder: a hybrid organisation names its folder once"
            ),
            "{twice}"
        );
        // Neither section: the message names both.
        let neither = problems(tail).join("\n");
        assert!(
            neither.contains("or [exchange_online] when every mailbox is in Exchange Online"),
            "{neither}"
        );
    }

    #[test]
    fn graph_exchange_online_problems_name_the_setting() {
        let text = format!("{HEAD}[exchange_online]\ncloud = \"mars\"\nusers = [\"nobody\"]\nclient_secret = \"x\"\n");
        let found = problems(&text).join("\n");
        assert!(found.contains("exchange_online.tenant: missing"), "{found}");
        assert!(
            found.contains("exchange_online.client_id: missing"),
            "{found}"
        );
        assert!(found.contains("`mars` is not a cloud"), "{found}");
        assert!(
            found.contains("`nobody` is not a mailbox address"),
            "{found}"
        );
        assert!(found.contains("exchange_online.client_secret"), "{found}");
    }

    #[test]
    fn graph_endpoints_are_https_given_together_and_shown_back() {
        let path = Path::new("/etc/exsync/exsync.toml");
        let base = format!(
            "{HEAD}[exchange_online]\ntenant = \"t\"\nclient_id = \"c\"\nall_users = true\n"
        );
        let text = format!(
            "{base}authority_url = \"https://login.example.test\"\ngraph_url = \"https://graph.example.test/v1.0\"\n"
        );
        let config = parse(&text, path).unwrap();
        let online = config.exchange_online.clone().unwrap();
        assert_eq!(
            online.endpoints,
            Some(OnlineEndpoints {
                authority_url: "https://login.example.test".to_owned(),
                graph_url: "https://graph.example.test/v1.0".to_owned(),
            })
        );
        let shown = config.to_toml_string().unwrap();
        assert_eq!(parse(&shown, path).unwrap().exchange_online, Some(online));

        let one = problems(&format!(
            "{base}graph_url = \"https://graph.example.test\"\n"
        ))
        .join("\n");
        assert!(
            one.contains("exchange_online.graph_url")
                && one.contains("needs authority_url as well"),
            "{one}"
        );
        let plain = problems(&format!(
            "{base}authority_url = \"http://login.example.test\"\ngraph_url = \"https://g.example.test\"\n"
        ))
        .join("\n");
        assert!(
            plain.contains("exchange_online.authority_url")
                && plain.contains("must be an https:// URL"),
            "{plain}"
        );
        let missing = problems(&format!("{base}ca_file = \"/nonexistent/ca.pem\"\n")).join("\n");
        assert!(missing.contains("exchange_online.ca_file"), "{missing}");
    }
}
