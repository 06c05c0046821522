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
    /// Every mailbox not in `users` is located before its pass (`auto`): on-premises
    /// Autodiscover answering with the tenant's routing address means online.
    pub auto: bool,
    /// Mailboxes located that way, lower-cased, when not every other one is.
    pub auto_users: Vec<String>,
    /// The tenant's routing domain as written (`tenant.mail.onmicrosoft.com`, the domain of a
    /// remote mailbox's targetAddress); see [`ExchangeOnlineConfig::routing_domain`].
    pub routing_domain: Option<String>,
    /// How long, in hours, where an `auto` mailbox was found holds before Autodiscover is asked
    /// again (a mailbox the backend reports missing is asked about at once whatever this is).
    pub route_ttl_hours: u32,
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

/// How one mailbox's backend is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailboxRouting {
    /// On premises, over EWS.
    Ews,
    /// In Exchange Online, over Microsoft Graph.
    Graph,
    /// Located before each pass by on-premises Autodiscover.
    Auto,
}

impl MailboxRouting {
    /// The name `config show` and status print: `ews`, `graph` or `auto`.
    pub fn as_str(self) -> &'static str {
        match self {
            MailboxRouting::Ews => "ews",
            MailboxRouting::Graph => "graph",
            MailboxRouting::Auto => "auto",
        }
    }
}

impl ExchangeOnlineConfig {
    /// Whether the mailbox `address` is served through Graph by configuration (an `auto`
    /// mailbox is not: Autodiscover decides).
    pub fn serves(&self, address: &str) -> bool {
        self.routing_of(address) == MailboxRouting::Graph
    }

    /// How the backend of `address` is chosen, and the setting that says so.
    pub fn routing_of(&self, address: &str) -> MailboxRouting {
        let named = |list: &[String]| list.iter().any(|u| u.eq_ignore_ascii_case(address));
        if self.all_users || named(&self.users) {
            MailboxRouting::Graph
        } else if self.auto || named(&self.auto_users) {
            MailboxRouting::Auto
        } else {
            MailboxRouting::Ews
        }
    }

    /// How the backend of `address` is chosen, in words for `config show --user`: the rule
    /// and the setting behind it.
    pub fn explain_routing(&self, address: &str) -> String {
        let listed = |list: &[String]| list.iter().any(|u| u.eq_ignore_ascii_case(address));
        let setting = if self.all_users {
            "exchange_online.all_users"
        } else if listed(&self.users) {
            "exchange_online.users"
        } else if listed(&self.auto_users) {
            "exchange_online.auto_users"
        } else if self.auto {
            "exchange_online.auto"
        } else {
            "the default: mailboxes [exchange_online] does not name are on premises"
        };
        match self.routing_of(address) {
            MailboxRouting::Auto => format!(
                "auto ({setting}): located before each pass by on-premises Autodiscover; a \
                 redirect to the routing domain {} means Exchange Online",
                self.routing_domain().as_deref().unwrap_or("(unknown)")
            ),
            other => format!("{} ({setting})", other.as_str()),
        }
    }

    /// Whether any mailbox is located by Autodiscover.
    pub fn routes_automatically(&self) -> bool {
        self.auto || !self.auto_users.is_empty()
    }

    /// The routing domain a redirect to means Exchange Online: as written, else derived from
    /// a tenant named `name.onmicrosoft.com` (its `name.mail.onmicrosoft.com`); `None` when
    /// the tenant is a GUID or a custom domain, which name no routing domain.
    pub fn routing_domain(&self) -> Option<String> {
        if let Some(domain) = &self.routing_domain {
            return Some(domain.clone());
        }
        let tenant = self.tenant.trim().to_ascii_lowercase();
        let name = tenant.strip_suffix(".onmicrosoft.com")?;
        (!name.is_empty() && !name.contains('.')).then(|| format!("{name}.mail.onmicrosoft.com"))
    }
}

pub(crate) const KEYS: &[&str] = &[
    "tenant",
    "client_id",
    "cloud",
    "credential",
    "all_users",
    "users",
    "auto",
    "auto_users",
    "routing_domain",
    "route_ttl_hours",
    "authority_url",
    "graph_url",
    "ca_file",
    "sync_folder",
];

/// A day: mailboxes rarely move, and a move is noticed at once anyway when the old backend
/// reports the mailbox missing.
pub const ROUTE_TTL_DEFAULT_HOURS: u32 = 24;

/// A month: an answer older than that may name a backend the mailbox left long ago, and the
/// lookup costs one Autodiscover request per user.
pub const ROUTE_TTL_MAX_HOURS: u32 = 720;

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
    let users = mailbox_list(r, t, "users");
    let auto = r
        .item(t, "auto")
        .and_then(|item| r.boolean(&item))
        .unwrap_or(false);
    let auto_users = mailbox_list(r, t, "auto_users");
    if let Some(item) = r.item(t, "auto_users") {
        if let Some(both) = auto_users.iter().find(|a| users.contains(a)) {
            r.error(
                &item.key,
                Some(item.key_line),
                format!("{both} is in users as well: a mailbox is either online or located automatically"),
            );
        }
    }
    if all_users && (auto || !auto_users.is_empty()) {
        if let Some(item) = r.item(t, "all_users") {
            r.error(
                &item.key,
                Some(item.key_line),
                "every mailbox is online, so none is left to locate automatically: \
                 remove auto and auto_users, or all_users",
            );
        }
    }
    let routing_domain = r.item(t, "routing_domain").and_then(|item| {
        let text = r.text(&item)?;
        let domain = crate::dns_name(text.trim());
        if domain.is_none() {
            r.error(
                &item.key,
                Some(item.value_line),
                format!("`{text}` is not a domain name such as contoso.mail.onmicrosoft.com"),
            );
        }
        domain
    });
    let route_ttl_hours = r
        .item(t, "route_ttl_hours")
        .and_then(|item| r.integer(&item, 1, u64::from(ROUTE_TTL_MAX_HOURS), "hours"))
        .and_then(|h| u32::try_from(h).ok())
        .unwrap_or(ROUTE_TTL_DEFAULT_HOURS);
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
        auto,
        auto_users,
        routing_domain,
        route_ttl_hours,
        endpoints,
        ca_file,
    }
}

/// A list of mailbox addresses under `name`, lower-cased, each checked and kept once.
fn mailbox_list(r: &mut Reader, t: &Tbl<'_, '_>, name: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(item) = r.item(t, name) {
        for (address, line) in r.string_list(&item).unwrap_or_default() {
            let address = address.trim().to_ascii_lowercase();
            if !check::is_email(&address) {
                r.error(
                    &item.key,
                    Some(line),
                    format!("`{address}` is not a mailbox address such as user@example.com"),
                );
            } else if !found.contains(&address) {
                found.push(address);
            }
        }
    }
    found
}

/// `auto` locates mailboxes with on-premises Autodiscover and tells an online one by a
/// redirect to the tenant's routing domain, so it needs both: an `[exchange]` section and a
/// routing domain, written or derived from the tenant.
pub(crate) fn check_auto(
    r: &mut Reader,
    t: &Tbl<'_, '_>,
    online: &ExchangeOnlineConfig,
    on_premises: bool,
) {
    if !online.routes_automatically() {
        return;
    }
    let key = if online.auto { "auto" } else { "auto_users" };
    let Some(item) = r.item(t, key) else {
        return;
    };
    if !on_premises {
        r.error(
            &item.key,
            Some(item.key_line),
            "locates mailboxes with on-premises Autodiscover, which needs an [exchange] section; \
             without one every mailbox is in Exchange Online, so remove it",
        );
    } else if online.routing_domain().is_none() {
        r.missing(
            t,
            "routing_domain",
            &format!(
                "{key} tells an online mailbox by Autodiscover's redirect to the tenant's routing \
                 domain, and the tenant `{}` does not name it (only a tenant written as \
                 name.onmicrosoft.com does); give it, e.g. contoso.mail.onmicrosoft.com (the \
                 domain of Get-RemoteMailbox's RemoteRoutingAddress)",
                online.tenant
            ),
        );
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

    /// How long a located route holds: a day unless written, whole hours from one to a month,
    /// shown back only where `auto` is used; a bad value names the file, key and reason.
    #[test]
    fn graph_route_ttl_is_a_day_unless_set_and_checked() {
        let path = Path::new("/etc/exsync/exsync.toml");
        let online = "[exchange_online]\ntenant = \"contoso.onmicrosoft.com\"\nclient_id = \"c\"\n";
        let plain = parse(&format!("{HEAD}{online}auto = true\n"), path).unwrap();
        let x = plain.exchange_online.unwrap();
        assert_eq!(x.route_ttl_hours, ROUTE_TTL_DEFAULT_HOURS);
        assert_eq!(ROUTE_TTL_DEFAULT_HOURS, 24);

        let set = parse(
            &format!("{HEAD}{online}auto = true\nroute_ttl_hours = 6\n"),
            path,
        )
        .unwrap();
        let x = set.exchange_online.clone().unwrap();
        assert_eq!(x.route_ttl_hours, 6);
        let shown = set.to_toml_string().unwrap();
        assert!(shown.contains("route_ttl_hours = 6"), "{shown}");
        assert_eq!(parse(&shown, path).unwrap().exchange_online, Some(x));
        let without_auto = parse(
            &format!("{HEAD}{online}users = [\"b@example.com\"]\n"),
            path,
        )
        .unwrap()
        .to_toml_string()
        .unwrap();
        assert!(!without_auto.contains("route_ttl_hours"), "{without_auto}");

        for (value, reason) in [
            ("0", "must be between 1 and 720 hours, found 0"),
            ("721", "must be between 1 and 720 hours, found 721"),
            ("\"24h\"", "an integer"),
        ] {
            let found = problems(&format!(
                "{HEAD}{online}auto = true\nroute_ttl_hours = {value}\n"
            ))
            .join("\n");
            assert!(
                found.contains("/etc/exsync/exsync.toml")
                    && found.contains("exchange_online.route_ttl_hours")
                    && found.contains(reason),
                "{value}: {found}"
            );
        }
    }

    /// `auto` per user or for everyone not listed: it needs `[exchange]` and a routing
    /// domain, written or derived from a tenant named name.onmicrosoft.com, and each problem
    /// names its key.
    #[test]
    fn graph_auto_routing_needs_exchange_and_a_routing_domain() {
        let path = Path::new("/etc/exsync/exsync.toml");
        let online = "[exchange_online]\ntenant = \"Contoso.onmicrosoft.com\"\nclient_id = \"c\"\n";
        let text = format!(
            "{HEAD}{online}users = [\"b@example.com\"]\nauto_users = [\"A@example.com\"]\n"
        );
        let config = parse(&text, path).unwrap();
        let x = config.exchange_online.clone().unwrap();
        assert_eq!(x.auto_users, ["a@example.com"]);
        assert_eq!(
            x.routing_domain().as_deref(),
            Some("contoso.mail.onmicrosoft.com")
        );
        assert_eq!(x.routing_of("a@example.com"), MailboxRouting::Auto);
        assert_eq!(x.routing_of("b@example.com"), MailboxRouting::Graph);
        assert_eq!(x.routing_of("c@example.com"), MailboxRouting::Ews);
        assert!(!x.serves("a@example.com"));
        assert!(
            x.explain_routing("a@example.com").starts_with(
                "auto (exchange_online.auto_users): located before each pass by on-premises Autodiscover"
            ) && x
                .explain_routing("a@example.com")
                .contains("contoso.mail.onmicrosoft.com"),
            "{}",
            x.explain_routing("a@example.com")
        );
        // `config show` loads back the same, the derived domain left derived.
        let shown = config.to_toml_string().unwrap();
        assert!(!shown.contains("routing_domain"), "{shown}");
        assert_eq!(parse(&shown, path).unwrap().exchange_online, Some(x));

        // Everyone not listed is auto, with the routing domain written.
        let every = format!(
            "{HEAD}[exchange_online]\ntenant = \"11111111-2222-3333-4444-555555555555\"\nclient_id = \"c\"\nauto = true\nrouting_domain = \"Fabrikam.mail.onmicrosoft.com\"\n"
        );
        let config = parse(&every, path).unwrap();
        let x = config.exchange_online.clone().unwrap();
        assert_eq!(x.routing_of("z@example.com"), MailboxRouting::Auto);
        assert_eq!(
            x.routing_domain().as_deref(),
            Some("fabrikam.mail.onmicrosoft.com")
        );
        let shown = config.to_toml_string().unwrap();
        assert_eq!(parse(&shown, path).unwrap().exchange_online, Some(x));

        // A GUID tenant names no routing domain.
        let guid = every.replace("routing_domain = \"Fabrikam.mail.onmicrosoft.com\"\n", "");
        let found = problems(&guid).join("\n");
        assert!(
            found.contains("exchange_online.routing_domain: missing: auto tells an online mailbox")
                && found.contains("/etc/exsync/exsync.toml"),
            "{found}"
        );
        let bad =
            problems(&every.replace("Fabrikam.mail.onmicrosoft.com", "not a domain")).join("\n");
        assert!(
            bad.contains("exchange_online.routing_domain") && bad.contains("is not a domain name"),
            "{bad}"
        );
        // Without [exchange] there is no Autodiscover on premises to ask.
        let tail = "[crm]\nclient_id = \"abc\"\nusername = \"int@example.com\"\n[configurations.a]\nusers = [\"a@example.com\"]\n";
        let alone = problems(&format!("{online}auto = true\n{tail}")).join("\n");
        assert!(
            alone.contains("exchange_online.auto: locates mailboxes with on-premises Autodiscover, which needs an [exchange] section"),
            "{alone}"
        );
        // all_users leaves nobody to locate; a mailbox cannot be both listed and auto.
        let all = problems(&format!("{HEAD}{online}all_users = true\nauto = true\n")).join("\n");
        assert!(
            all.contains("exchange_online.all_users: every mailbox is online"),
            "{all}"
        );
        let both = problems(&format!(
            "{HEAD}{online}users = [\"a@example.com\"]\nauto_users = [\"a@example.com\"]\n"
        ))
        .join("\n");
        assert!(
            both.contains("exchange_online.auto_users: a@example.com is in users as well"),
            "{both}"
        );
    }
}
