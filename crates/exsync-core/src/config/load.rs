//! Reading `exsync.toml`: every section is read key by key, every problem is collected, and
//! the result carries every default filled in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use super::check;
use super::configurations::read_configurations;
use super::error::ConfigErrors;
use super::file::*;
use super::walk::{join, Reader, Tbl};

/// Reads and checks a configuration file. On failure every problem found is returned, not
/// just the first.
pub fn load(path: &Path) -> Result<ExsyncConfig, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors::whole_file(path, format!("cannot read the file: {e}")))?;
    parse(&text, path)
}

/// Checks configuration text as if it had been read from `path`: problems name that path,
/// and relative paths in it are taken from its directory.
pub fn parse(text: &str, path: &Path) -> Result<ExsyncConfig, ConfigErrors> {
    let dir = path.parent().unwrap_or(Path::new(""));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let base = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut r = Reader::new(path, &base, text);

    let (document, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        // A recovered parse guesses at what was meant; checking its contents would report
        // problems that are not there.
        for e in &syntax {
            let mut message = e.message().to_owned();
            // The parser's "duplicate key" does not say which; the span does.
            let named = e.span().and_then(|span| text.get(span)).map(str::trim);
            if let Some(key) = named.filter(|k| !k.is_empty() && !k.contains('\n')) {
                if message.trim() == "duplicate key" {
                    message = format!("duplicate key `{key}`: a key or table may appear only once");
                }
            }
            r.syntax_error(e.span(), &message);
        }
        return Err(finish(r));
    }
    let root = Tbl {
        path: String::new(),
        line: None,
        map: document.get_ref(),
    };
    let config = read_file(&mut r, &root);
    if r.errors.is_empty() {
        Ok(config)
    } else {
        Err(finish(r))
    }
}

/// Problems in file order; those without a line (a missing section) last.
fn finish(r: Reader) -> ConfigErrors {
    let mut errors = r.errors;
    errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
    ConfigErrors(errors)
}

const ROOT_KEYS: &[&str] = &[
    "store",
    "exchange",
    "exchange_online",
    "network",
    "crm",
    "service",
    "console",
    "configurations",
];

fn read_file(r: &mut Reader, root: &Tbl<'_, '_>) -> ExsyncConfig {
    r.check_keys(root, ROOT_KEYS);
    let empty = DeTable::new();
    let section = |r: &mut Reader, name: &str| -> Option<Tbl<'_, '_>> { r.sub(root, name) };
    let absent = |name: &str| Tbl {
        path: name.to_owned(),
        line: None,
        map: &empty,
    };

    let t = section(r, "store").unwrap_or_else(|| absent("store"));
    let store = read_store(r, &t);
    let exchange_table = section(r, "exchange");
    let online_table = section(r, "exchange_online");
    let exchange = exchange_table.as_ref().map(|t| read_exchange(r, t));
    if exchange_table.is_none()
        && online_table.is_none()
        && r.item(root, "exchange").is_none()
        && r.item(root, "exchange_online").is_none()
    {
        r.error(
            "exchange",
            None,
            "missing: the [exchange] section (Exchange on premises, with at least `service_account`), \
             or [exchange_online] when every mailbox is in Exchange Online",
        );
    }
    let mut exchange_online = online_table
        .as_ref()
        .map(|t| super::online::read_exchange_online(r, t));
    if let (Some(online), Some(t)) = (&exchange_online, &online_table) {
        super::online::check_auto(r, t, online, exchange.is_some());
    }
    if let (None, Some(online), Some(t)) = (&exchange, &mut exchange_online, &online_table) {
        super::online::serve_every_user(r, t, online);
    }
    let sync_folder = read_sync_folder(r, exchange_table.as_ref(), online_table.as_ref());
    let t = section(r, "network").unwrap_or_else(|| absent("network"));
    let network = read_network(r, &t);
    let crm = match section(r, "crm") {
        Some(t) => read_crm(r, &t),
        None => {
            if r.item(root, "crm").is_none() {
                r.error(
                    "crm",
                    None,
                    "missing: the [crm] section, with at least `client_id` and `username`",
                );
            }
            read_crm(&mut defaults_only(), &absent("crm"))
        }
    };
    let t = section(r, "service").unwrap_or_else(|| absent("service"));
    let service = read_service(r, &t, exchange.as_ref());
    let present = section(r, "console");
    let configured = present.is_some();
    let t = present.unwrap_or_else(|| absent("console"));
    let console = ConsoleConfig {
        configured,
        ..read_console(r, &t)
    };
    let configurations = read_configurations(r, root);

    ExsyncConfig {
        store,
        exchange,
        exchange_online,
        sync_folder,
        network,
        crm,
        service,
        console,
        configurations,
    }
}

/// A reader whose problems are dropped: a missing section has been reported once, so its
/// required keys are not reported again one by one; only its defaults are wanted.
fn defaults_only() -> Reader {
    Reader::new(Path::new(""), Path::new(""), "")
}

/// A path to a file that must exist now.
pub(crate) fn existing_file(r: &mut Reader, t: &Tbl<'_, '_>, name: &str) -> Option<PathBuf> {
    let item = r.item(t, name)?;
    let text = r.text(&item)?;
    let path = r.resolve_path(&text);
    if !path.exists() {
        r.error(
            &item.key,
            Some(item.value_line),
            format!("the file {} does not exist", path.display()),
        );
        return None;
    }
    if !path.is_file() {
        r.error(
            &item.key,
            Some(item.value_line),
            format!("{} is not a file", path.display()),
        );
        return None;
    }
    Some(path)
}

/// A URL that must use https, because credentials or tokens travel to it.
pub(crate) fn https_url(r: &mut Reader, t: &Tbl<'_, '_>, name: &str, why: &str) -> Option<String> {
    let item = r.item(t, name)?;
    let text = r.text(&item)?;
    match check::parse_url(&text) {
        Err(reason) => {
            r.error(
                &item.key,
                Some(item.value_line),
                format!("`{text}` is not a valid URL: {reason}"),
            );
            None
        }
        Ok(url) if url.scheme != "https" => {
            r.error(
                &item.key,
                Some(item.value_line),
                format!("must be an https:// URL: {why}"),
            );
            None
        }
        Ok(url) if url.has_password => {
            r.error(&item.key, Some(item.value_line), super::walk::SECRET_REASON);
            None
        }
        Ok(_) => Some(text),
    }
}

fn read_store(r: &mut Reader, t: &Tbl<'_, '_>) -> StoreConfig {
    r.check_keys(
        t,
        &[
            "path",
            "url",
            "password_file",
            "ca_file",
            "worker_id",
            "lease_secs",
            "worker_batch",
        ],
    );
    let path = r.item(t, "path").and_then(|item| r.text(&item));
    let url_item = r.item(t, "url");
    let url = url_item.as_ref().and_then(|item| {
        let text = r.text(item)?;
        match check::parse_url(&text) {
            Err(reason) => {
                r.error(
                    &item.key,
                    Some(item.value_line),
                    format!("`{text}` is not a valid URL: {reason}"),
                );
                None
            }
            Ok(u) if u.scheme != "postgres" && u.scheme != "postgresql" => {
                r.error(
                    &item.key,
                    Some(item.value_line),
                    "must be a postgres:// URL; a SQLite file is given with `path`",
                );
                None
            }
            Ok(u) if u.has_password => {
                r.error(&item.key, Some(item.value_line), super::walk::SECRET_REASON);
                None
            }
            Ok(_) => Some(text),
        }
    });
    if let (Some(_), Some(item)) = (&path, &url_item) {
        r.error(
            &item.key,
            Some(item.key_line),
            "give either `path` (a SQLite file) or `url` (PostgreSQL), not both",
        );
    }
    let password_file = existing_file(r, t, "password_file");
    let ca_file = existing_file(r, t, "ca_file");
    let mut worker = WorkerConfig::default();
    if let Some(item) = r.item(t, "worker_id") {
        worker.id = r.text(&item);
    }
    if let Some(n) = r
        .item(t, "lease_secs")
        .and_then(|item| r.integer(&item, 2, 3600, "seconds"))
    {
        worker.lease_secs = n;
    }
    if let Some(n) = r
        .item(t, "worker_batch")
        .and_then(|item| r.integer(&item, 1, 10_000, ""))
    {
        worker.batch = u32::try_from(n).unwrap_or(DEFAULT_WORKER_BATCH);
    }
    if url_item.is_none() {
        for name in [
            "password_file",
            "ca_file",
            "worker_id",
            "lease_secs",
            "worker_batch",
        ] {
            if let Some(item) = r.item(t, name) {
                r.error(
                    &item.key,
                    Some(item.key_line),
                    "applies to a PostgreSQL store only; give `url` too, or remove it",
                );
            }
        }
    }
    match (url, path) {
        (Some(url), None) => StoreConfig::Postgres {
            url,
            password_file,
            ca_file,
            worker,
        },
        (_, path) => StoreConfig::Sqlite {
            path: r.resolve_path(path.as_deref().unwrap_or(DEFAULT_STORE_PATH)),
        },
    }
}

/// `sync_folder`: set in `[exchange]`, or in `[exchange_online]` when there is no `[exchange]`.
/// A hybrid organisation names it once, in `[exchange]`, since a mailbox that moves online keeps
/// its folder.
fn read_sync_folder(
    r: &mut Reader,
    exchange: Option<&Tbl<'_, '_>>,
    online: Option<&Tbl<'_, '_>>,
) -> String {
    if let (Some(_), Some(online)) = (exchange, online) {
        if let Some(item) = r.item(online, "sync_folder") {
            r.error(
                &item.key,
                Some(item.key_line),
                "a hybrid organisation names its folder once, in exchange.sync_folder: \
                 a mailbox that moves online keeps its folder",
            );
        }
    }
    exchange
        .or(online)
        .and_then(|t| r.item(t, "sync_folder"))
        .and_then(|item| {
            let name = r.text(&item)?;
            if name.contains(['/', '\\']) || name.chars().count() > 255 {
                r.error(
                    &item.key,
                    Some(item.value_line),
                    "must be one folder name (no `/` or `\\`, at most 255 characters)",
                );
                return None;
            }
            Some(name)
        })
        .unwrap_or_else(|| DEFAULT_SYNC_FOLDER.to_owned())
}

fn read_exchange(r: &mut Reader, t: &Tbl<'_, '_>) -> ExchangeConfig {
    r.check_keys(
        t,
        &[
            "ews_url",
            "service_account",
            "auth",
            "other_domains",
            "ca_file",
            "sync_folder",
            "max_concurrency",
            "wire_trace_dir",
            "realm",
            "kdcs",
            "krb5_conf",
        ],
    );
    let ews_url = https_url(
        r,
        t,
        "ews_url",
        "the service account's password is only ever sent over TLS",
    );
    let service_account = match r.item(t, "service_account") {
        None => {
            r.missing(
                t,
                "service_account",
                "the account that impersonates users, e.g. svc-exsync@example.com",
            );
            String::new()
        }
        Some(item) => match r.text(&item) {
            Some(account) => {
                let down_level = account
                    .split_once('\\')
                    .is_some_and(|(d, u)| !d.is_empty() && !u.is_empty() && !u.contains('\\'));
                if !check::is_email(&account) && !down_level {
                    r.error(
                        &item.key,
                        Some(item.value_line),
                        format!(
                            "`{account}` is not an account name; write user@domain or DOMAIN\\user"
                        ),
                    );
                }
                account
            }
            None => String::new(),
        },
    };
    let auth = r
        .item(t, "auth")
        .and_then(|item| {
            r.choice(
                &item,
                "an authentication method",
                &[
                    ("auto", ExchangeAuth::Auto),
                    ("basic", ExchangeAuth::Basic),
                    ("ntlm", ExchangeAuth::Ntlm),
                    ("kerberos", ExchangeAuth::Kerberos),
                ],
            )
        })
        .unwrap_or(ExchangeAuth::Auto);
    let mut other_domains = Vec::new();
    if let Some(item) = r.item(t, "other_domains") {
        for (domain, line) in r.string_list(&item).unwrap_or_default() {
            let domain = domain.trim().to_ascii_lowercase();
            if !check::is_domain(&domain) {
                r.error(
                    &item.key,
                    Some(line),
                    format!("`{domain}` is not a domain name such as example.com"),
                );
            } else if !other_domains.contains(&domain) {
                other_domains.push(domain);
            }
        }
    }
    if let (Some(url), Some(item)) = (&ews_url, r.item(t, "ews_url")) {
        let own = service_account
            .rsplit_once('@')
            .map(|(_, domain)| domain.to_ascii_lowercase())
            .filter(|domain| check::is_domain(domain));
        // Without a readable account the allow-list is unknown; the account's own problem is
        // reported instead of a second, confusing one here.
        let account_known = own.is_some() || service_account.contains('\\');
        let allow = crate::AllowList::new(own.iter().chain(&other_domains));
        let outside = url_host(url).filter(|host| account_known && !allow.allows(host));
        if let Some(host) = outside {
            let allowed = if allow.domains().is_empty() {
                "none: a DOMAIN\\user account has no domain of its own".to_owned()
            } else {
                allow.domains().join(", ")
            };
            r.error(
                &item.key,
                Some(item.value_line),
                format!(
                    "`{host}` is outside the domains the service account's password may be sent to ({allowed}); \
                     if that server belongs to you, add its domain to exchange.other_domains"
                ),
            );
        }
    }
    let ca_file = existing_file(r, t, "ca_file");
    let max_concurrency = r
        .item(t, "max_concurrency")
        .and_then(|item| r.integer(&item, 1, u64::from(EXCHANGE_MAX_CONCURRENCY_LIMIT), ""))
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(DEFAULT_MAX_CONCURRENCY);
    let wire_trace_dir = r.item(t, "wire_trace_dir").and_then(|item| {
        let text = r.text(&item)?;
        let dir = r.resolve_path(&text);
        if dir.exists() && !dir.is_dir() {
            r.error(
                &item.key,
                Some(item.value_line),
                format!("{} is a file, not a folder", dir.display()),
            );
            return None;
        }
        Some(dir)
    });
    let realm = r.item(t, "realm").and_then(|item| {
        let realm = r.text(&item)?.trim().to_owned();
        if !realm
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        {
            r.error(
                &item.key,
                Some(item.value_line),
                format!("`{realm}` is not a Kerberos realm such as CONTOSO.COM"),
            );
            return None;
        }
        Some(realm.to_ascii_uppercase())
    });
    let mut kdcs = Vec::new();
    if let Some(item) = r.item(t, "kdcs") {
        for (kdc, line) in r.string_list(&item).unwrap_or_default() {
            let kdc = kdc.trim().to_ascii_lowercase();
            let (host, port) = match kdc.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p.to_owned())),
                None => (kdc.clone(), None),
            };
            let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
            if !(check::is_domain(&host) || host.parse::<std::net::Ipv4Addr>().is_ok()) || !port_ok
            {
                r.error(
                    &item.key,
                    Some(line),
                    format!("`{kdc}` is not a KDC such as dc1.contoso.com or dc1.contoso.com:88"),
                );
            } else {
                kdcs.push(kdc);
            }
        }
    }
    let krb5_conf = existing_file(r, t, "krb5_conf");
    if !kdcs.is_empty() && realm.is_none() {
        if let Some(item) = r.item(t, "kdcs") {
            r.error(
                &item.key,
                Some(item.value_line),
                "KDCs serve a realm: set exchange.realm too (e.g. CONTOSO.COM)",
            );
        }
    }
    ExchangeConfig {
        ews_url,
        service_account,
        auth,
        realm,
        kdcs,
        krb5_conf,
        other_domains,
        ca_file,
        max_concurrency,
        wire_trace_dir,
    }
}

/// The host of a URL that has passed [`check::parse_url`], lower-cased, without a trailing dot
/// or the brackets of an IPv6 address.
fn url_host(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match hostport.strip_prefix('[') {
        Some(v6) => v6.split_once(']')?.0,
        None => hostport.rsplit_once(':').map_or(hostport, |(h, _)| h),
    };
    Some(host.trim_end_matches('.').to_ascii_lowercase())
}

fn read_network(r: &mut Reader, t: &Tbl<'_, '_>) -> NetworkConfig {
    r.check_keys(t, &["resolve", "max_reply_mib"]);
    let (min, max) = MAX_REPLY_MIB_RANGE;
    let max_reply_mib = r
        .item(t, "max_reply_mib")
        .and_then(|item| r.integer(&item, min, max, "MiB"))
        .unwrap_or(DEFAULT_MAX_REPLY_MIB);
    let mut resolve = BTreeMap::new();
    if let Some(table) = r.sub(t, "resolve") {
        for (key, value) in table.map.iter() {
            let host: &str = key.get_ref();
            let item = r.make_item(join(&table.path, host), key, value);
            let host = host.trim().to_ascii_lowercase();
            if !check::is_host(&host) {
                r.error(
                    &item.key,
                    Some(item.key_line),
                    format!("`{host}` is not a host name"),
                );
                continue;
            }
            let Some(text) = r.string(&item) else {
                continue;
            };
            match check::socket_addr(&text) {
                Ok(addr) => {
                    resolve.insert(host, addr);
                }
                Err(reason) => r.error(&item.key, Some(item.value_line), reason),
            }
        }
    }
    NetworkConfig {
        resolve,
        max_reply_mib,
    }
}

fn read_crm(r: &mut Reader, t: &Tbl<'_, '_>) -> CrmConfig {
    r.check_keys(
        t,
        &[
            "kind",
            "login_url",
            "instance_url",
            "client_id",
            "auth",
            "username",
            "private_key_file",
            "ca_file",
            "api_reserve",
            "settle",
            "mailbox_field",
        ],
    );
    let kind = r
        .item(t, "kind")
        .and_then(|item| {
            r.choice(
                &item,
                "a supported CRM",
                &[("salesforce", CrmKind::Salesforce)],
            )
        })
        .unwrap_or(CrmKind::Salesforce);
    let why = "OAuth tokens are only ever sent over TLS";
    let login_url =
        https_url(r, t, "login_url", why).unwrap_or_else(|| DEFAULT_LOGIN_URL.to_owned());
    let instance_url = https_url(r, t, "instance_url", why);
    let client_id = match r.item(t, "client_id") {
        Some(item) => r.text(&item).unwrap_or_default(),
        None => {
            r.missing(t, "client_id", "the connected app's consumer key");
            String::new()
        }
    };
    let auth_item = r.item(t, "auth");
    let auth = auth_item
        .as_ref()
        .and_then(|item| {
            r.choice(
                item,
                "a CRM authentication method",
                &[
                    ("jwt", CrmAuth::Jwt),
                    ("client_credentials", CrmAuth::ClientCredentials),
                ],
            )
        })
        .unwrap_or(CrmAuth::Jwt);
    let username = r.item(t, "username").and_then(|item| {
        let name = r.text(&item)?;
        if auth != CrmAuth::Jwt {
            r.error(
                &item.key,
                Some(item.key_line),
                "only used with auth = \"jwt\"; client credentials run as the connected app's user",
            );
            return None;
        }
        if !check::is_email(&name) {
            r.error(
                &item.key,
                Some(item.value_line),
                format!("`{name}` is not a Salesforce username (they look like e-mail addresses)"),
            );
            return None;
        }
        Some(name)
    });
    if auth == CrmAuth::Jwt && r.item(t, "username").is_none() {
        r.missing(
            t,
            "username",
            "the integration user the JWT is issued for (auth = \"jwt\")",
        );
    }
    let private_key_file = if auth == CrmAuth::Jwt {
        existing_file(r, t, "private_key_file")
    } else {
        if let Some(item) = r.item(t, "private_key_file") {
            r.error(
                &item.key,
                Some(item.key_line),
                "only used with auth = \"jwt\"; store the client secret with `exsync secrets set`",
            );
        }
        None
    };
    let ca_file = existing_file(r, t, "ca_file");
    let api_reserve = r
        .item(t, "api_reserve")
        .and_then(|item| r.share(&item, false))
        .unwrap_or(DEFAULT_API_RESERVE);
    let settle_secs = r
        .item(t, "settle")
        .and_then(|item| r.integer(&item, 0, 60, "seconds"))
        .unwrap_or(DEFAULT_CRM_SETTLE_SECS);
    let mailbox_field = r
        .item(t, "mailbox_field")
        .and_then(|item| {
            let text = r.text(&item)?;
            match super::MailboxField::parse(text.trim()) {
                Ok(field) => Some(field),
                Err(reason) => {
                    r.error(&item.key, Some(item.value_line), reason);
                    None
                }
            }
        })
        .unwrap_or_default();
    CrmConfig {
        kind,
        login_url,
        instance_url,
        client_id,
        auth,
        username,
        private_key_file,
        ca_file,
        api_reserve,
        settle_secs,
        mailbox_field,
    }
}

fn read_service(
    r: &mut Reader,
    t: &Tbl<'_, '_>,
    exchange: Option<&ExchangeConfig>,
) -> ServiceConfig {
    r.check_keys(
        t,
        &[
            "poll_interval",
            "concurrent_users",
            "per_user_concurrency",
            "metrics_listen",
            "log_format",
        ],
    );
    let mut service = ServiceConfig::default();
    if let Some(item) = r.item(t, "poll_interval") {
        let secs = match item.value {
            DeValue::Integer(_) => r.integer(&item, 0, u64::MAX, ""),
            DeValue::String(s) => match check::duration_secs(s) {
                Ok(secs) => Some(secs),
                Err(reason) => {
                    r.error(&item.key, Some(item.value_line), reason);
                    None
                }
            },
            _ => {
                r.wrong_type(&item, "a duration such as \"5m\"");
                None
            }
        };
        match secs {
            Some(secs) if (10..=86_400).contains(&secs) => service.poll_interval_secs = secs,
            Some(secs) => r.error(
                &item.key,
                Some(item.value_line),
                format!(
                    "must be between 10s and 24h, found {}",
                    check::format_duration(secs)
                ),
            ),
            None => {}
        }
    }
    if let Some(n) = r
        .item(t, "concurrent_users")
        .and_then(|item| r.integer(&item, 1, 1000, ""))
    {
        service.concurrent_users = u32::try_from(n).unwrap_or(DEFAULT_CONCURRENT_USERS);
    }
    if let Some(item) = r.item(t, "per_user_concurrency") {
        if let Some(n) = r.integer(&item, 1, u64::from(EXCHANGE_MAX_CONCURRENCY_LIMIT), "") {
            let n = u32::try_from(n).unwrap_or(DEFAULT_PER_USER_CONCURRENCY);
            let limit = exchange.map(|x| x.max_concurrency);
            if let Some(limit) = limit.filter(|limit| n > *limit) {
                r.error(
                    &item.key,
                    Some(item.value_line),
                    format!(
                        "{n} is more than exchange.max_concurrency ({limit}): one mailbox cannot use more requests than the whole service account"
                    ),
                );
            } else {
                service.per_user_concurrency = n;
            }
        }
    } else if let Some(x) = exchange {
        service.per_user_concurrency = service.per_user_concurrency.min(x.max_concurrency);
    }
    if let Some(item) = r.item(t, "metrics_listen") {
        match item.value {
            DeValue::Boolean(false) => service.metrics_listen = None,
            DeValue::String(s) => match check::socket_addr(s) {
                Ok(addr) => service.metrics_listen = Some(addr),
                Err(reason) => r.error(&item.key, Some(item.value_line), reason),
            },
            _ => r.wrong_type(&item, "an address:port, or false to turn metrics off"),
        }
    }
    if let Some(format) = r.item(t, "log_format").and_then(|item| {
        r.choice(
            &item,
            "a log format",
            &[("text", LogFormat::Text), ("json", LogFormat::Json)],
        )
    }) {
        service.log_format = format;
    }
    service
}

fn read_console(r: &mut Reader, t: &Tbl<'_, '_>) -> ConsoleConfig {
    r.check_keys(t, &["listen", "tls_cert_file", "tls_key_file"]);
    let mut console = ConsoleConfig::default();
    let listen_item = r.item(t, "listen");
    if let Some(item) = &listen_item {
        if let Some(text) = r.string(item) {
            match check::socket_addr(&text) {
                Ok(addr) => console.listen = addr,
                Err(reason) => r.error(&item.key, Some(item.value_line), reason),
            }
        }
    }
    console.tls_cert_file = existing_file(r, t, "tls_cert_file");
    console.tls_key_file = existing_file(r, t, "tls_key_file");
    let cert = r.item(t, "tls_cert_file");
    let key = r.item(t, "tls_key_file");
    match (&cert, &key) {
        (Some(item), None) => r.error(
            &item.key,
            Some(item.key_line),
            "needs tls_key_file as well: give both the certificate and its key",
        ),
        (None, Some(item)) => r.error(
            &item.key,
            Some(item.key_line),
            "needs tls_cert_file as well: give both the certificate and its key",
        ),
        (None, None) if !console.listen.ip().is_loopback() => {
            let line = listen_item.as_ref().map(|i| i.value_line);
            r.error(
                &join(&t.path, "listen"),
                line,
                format!(
                    "{} is reachable from other machines, and admin passwords would cross the network unencrypted; set tls_cert_file and tls_key_file, or listen on 127.0.0.1",
                    console.listen
                ),
            );
        }
        _ => {}
    }
    console
}
