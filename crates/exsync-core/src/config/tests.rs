#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::*;
use crate::model::{ItemKind, UserKey};

const FILE: &str = "/etc/exsync/exsync.toml";

/// Lines 1-5: the smallest valid [exchange] and [crm]; a case's own text starts at line 6.
const HEAD: &str = "[exchange]
service_account = \"svc@example.com\"
[crm]
client_id = \"abc\"
username = \"int@example.com\"
";

/// A configuration to make a file complete.
const CONFIG: &str = "[configurations.a]
users = [\"a@example.com\"]
";

/// The head with one extra line at line 3, inside [exchange].
fn exchange_line(line: &str) -> String {
    format!(
        "[exchange]\nservice_account = \"svc@example.com\"\n{line}\n[crm]\nclient_id = \"abc\"\nusername = \"int@example.com\"\n{CONFIG}"
    )
}

/// The head with one extra line at line 6, inside [crm].
fn crm_line(line: &str) -> String {
    format!("{HEAD}{line}\n{CONFIG}")
}

/// The head, then `text` from line 6.
fn tail(text: &str) -> String {
    format!("{HEAD}{text}")
}

fn problems(text: &str) -> Vec<String> {
    match parse(text, Path::new(FILE)) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

fn at(line: usize, key: &str, reason: &str) -> String {
    format!("{FILE}:{line}: {key}: {reason}")
}

const SECRET: &str = "secrets do not belong in the configuration file; store it in the vault with `exsync secrets set` instead";

#[test]
fn every_invalid_input_is_reported_with_file_key_line_and_reason() {
    let contact_fields = "first_name, middle_name, last_name, emails, phones, company, title, department, addresses, notes, birthday";
    let cases: Vec<(&str, String, Vec<String>)> = vec![
        (
            "unknown key, close to a valid one",
            exchange_line("max_concurency = 5"),
            vec![at(3, "exchange.max_concurency", "unknown key `max_concurency`; did you mean `max_concurrency`?")],
        ),
        (
            "unknown key, nothing close",
            tail(&format!("[service]\nzzz = 1\n{CONFIG}")),
            vec![at(7, "service.zzz", "unknown key `zzz`; valid keys here: poll_interval, concurrent_users, per_user_concurrency, metrics_listen, log_format")],
        ),
        (
            "unknown section",
            tail(&format!("[metrics]\nlisten = 1\n{CONFIG}")),
            vec![at(6, "metrics", "unknown key `metrics`; valid keys here: store, exchange, exchange_online, network, crm, service, console, configurations")],
        ),
        (
            "unknown key in a configuration",
            tail("[configurations.a]\nusers = [\"a@example.com\"]\nevents.past_dys = 3\n"),
            vec![at(8, "configurations.a.events.past_dys", "unknown key `past_dys`; did you mean `past_days`?")],
        ),
        (
            "wrong type",
            tail("[configurations.a]\nusers = [\"a@example.com\"]\n[configurations.a.events]\npast_days = \"30\"\n"),
            vec![at(9, "configurations.a.events.past_days", "expected an integer, found a string")],
        ),
        (
            "wrong type: a list expected",
            tail("[configurations.a]\nusers = \"a@example.com\"\n"),
            vec![at(7, "configurations.a.users", "expected a list of strings, found a string")],
        ),
        (
            "window days out of range",
            tail("[configurations.a]\nusers = [\"a@example.com\"]\n[configurations.a.events]\nfuture_days = 4000\n"),
            vec![at(9, "configurations.a.events.future_days", "must be between 0 and 3650 days, found 4000")],
        ),
        (
            "delete share out of range",
            tail("[configurations.a]\nusers = [\"a@example.com\"]\ncontacts.max_delete_share = 1.5\n"),
            vec![at(8, "configurations.a.contacts.max_delete_share", "must be a share between 0 and 1 (0.5 means 50%), found 1.5")],
        ),
        (
            "the CRM settle time is bounded",
            crm_line("settle = 90"),
            vec![at(6, "crm.settle", "must be between 0 and 60 seconds, found 90")],
        ),
        (
            "the pairing rule names a User field: a standard one or a custom API name",
            crm_line("mailbox_field = \"Exchange Mailbox\""),
            vec![at(6, "crm.mailbox_field", "`Exchange Mailbox` is not Email, Username, FederationIdentifier or the API name of a custom User field (ending in __c, such as Exchange_Mailbox__c)")],
        ),
        (
            "a custom pairing field is checked as an API name, since it lands in SOQL",
            crm_line("mailbox_field = \"Id FROM User WHERE Name != ''--__c\""),
            vec![at(6, "crm.mailbox_field", "`Id FROM User WHERE Name != ''--__c` is not a custom field's API name: the name before __c may hold only letters, digits and underscores")],
        ),
        (
            "api reserve must stay below 1",
            crm_line("api_reserve = 1.0"),
            vec![at(6, "crm.api_reserve", "must be a share at least 0 and below 1 (0.5 means 50%), found 1")],
        ),
        (
            "invalid e-mail in users, on its own line",
            tail("[configurations.a]\nusers = [\n  \"a@example.com\",\n  \"not-an-address\",\n]\n"),
            vec![at(9, "configurations.a.users", "`not-an-address` is not an e-mail address")],
        ),
        (
            "user listed twice in one configuration",
            tail("[configurations.a]\nusers = [\"a@example.com\", \"A@example.com\"]\n"),
            vec![at(7, "configurations.a.users", "`A@example.com` is listed twice")],
        ),
        (
            "unknown field name in a field map",
            tail("[configurations.a]\nusers = [\"a@example.com\"]\n[configurations.a.contacts.fields]\ncolour = \"Colour__c\"\n"),
            vec![at(9, "configurations.a.contacts.fields.colour", &format!("`colour` is not a contact field; expected one of: {contact_fields}"))],
        ),
        (
            "misspelt field name in a field map",
            tail("[configurations.a]\nusers = [\"a@example.com\"]\n[configurations.a.contacts.fields]\ntitel = \"Title\"\n"),
            vec![at(9, "configurations.a.contacts.fields.titel", "`titel` is not a contact field; did you mean `title`?")],
        ),
        (
            "a required event field turned off",
            tail("[configurations.a]\nusers = [\"a@example.com\"]\n[configurations.a.events.fields]\nstart = false\n"),
            vec![at(9, "configurations.a.events.fields.start", "`start` cannot be turned off: an event cannot sync without start and end")],
        ),
        (
            "a field mapped to something that is not a CRM field",
            tail("[configurations.a]\nusers = [\"a@example.com\"]\n[configurations.a.contacts.fields]\nnotes = \"Not a field\"\n"),
            vec![at(9, "configurations.a.contacts.fields.notes", "`Not a field` is not a Salesforce field name such as Phone or Account.Name")],
        ),
        (
            "a field map value of the wrong type",
            tail("[configurations.a]\nusers = [\"a@example.com\"]\n[configurations.a.contacts.fields]\nnotes = 3\n"),
            vec![at(9, "configurations.a.contacts.fields.notes", "expected a Salesforce field name or false, found an integer")],
        ),
        (
            "a user assigned individually to two configurations",
            tail("[configurations.a]\nusers = [\"bob@example.com\"]\n[configurations.b]\nusers = [\"Bob@Example.com\"]\n"),
            vec![at(9, "configurations.b.users", "`bob@example.com` is already assigned to configuration `a` (line 7); a user can be assigned individually to one active configuration only")],
        ),
        (
            "one group assigned to two configurations",
            tail("[configurations.a]\ngroups = [\"Sales\"]\n[configurations.b]\ngroups = [\"Sales\"]\n"),
            vec![at(9, "configurations.b.groups", "group `Sales` is already assigned to configuration `a` (line 7); a group can be assigned to one active configuration only")],
        ),
        (
            "an invalid URL",
            exchange_line("ews_url = \"mail.example.com/EWS/Exchange.asmx\""),
            vec![at(3, "exchange.ews_url", "`mail.example.com/EWS/Exchange.asmx` is not a valid URL: it does not start with a scheme such as https://")],
        ),
        (
            "a URL with a bad port",
            crm_line("instance_url = \"https://example.my.salesforce.com:99999\""),
            vec![at(6, "crm.instance_url", "`https://example.my.salesforce.com:99999` is not a valid URL: `99999` is not a port number (1-65535)")],
        ),
        (
            "ews_url not https",
            exchange_line("ews_url = \"http://mail.example.com/EWS/Exchange.asmx\""),
            vec![at(3, "exchange.ews_url", "must be an https:// URL: the service account's password is only ever sent over TLS")],
        ),
        (
            "login_url not https",
            crm_line("login_url = \"http://login.salesforce.com\""),
            vec![at(6, "crm.login_url", "must be an https:// URL: OAuth tokens are only ever sent over TLS")],
        ),
        (
            "a CA file that does not exist",
            exchange_line("ca_file = \"certs/ca.pem\""),
            vec![at(3, "exchange.ca_file", "the file /etc/exsync/certs/ca.pem does not exist")],
        ),
        (
            "a resolve entry that is not address:port",
            tail(&format!("[network.resolve]\n\"mail.example.com\" = \"10.0.0.1\"\n{CONFIG}")),
            vec![at(7, "network.resolve.\"mail.example.com\"", "`10.0.0.1` is not an address:port such as 127.0.0.1:8443 or [::1]:8443")],
        ),
        (
            "a resolve entry for something that is not a host name",
            tail(&format!("[network.resolve]\n\"mail example\" = \"10.0.0.1:443\"\n{CONFIG}")),
            vec![at(7, "network.resolve.\"mail example\"", "`mail example` is not a host name")],
        ),
        (
            "a reply cap of zero",
            tail(&format!("[network]\nmax_reply_mib = 0\n{CONFIG}")),
            vec![at(7, "network.max_reply_mib", "must be between 1 and 1024 MiB, found 0")],
        ),
        (
            "a reply cap too large to protect anything",
            tail(&format!("[network]\nmax_reply_mib = 4096\n{CONFIG}")),
            vec![at(7, "network.max_reply_mib", "must be between 1 and 1024 MiB, found 4096")],
        ),
        (
            "a reply cap that is not a number",
            tail(&format!("[network]\nmax_reply_mib = \"64M\"\n{CONFIG}")),
            vec![at(7, "network.max_reply_mib", "expected an integer, found a string")],
        ),
        (
            "a reply cap in the wrong unit",
            tail(&format!("[network]\nmax_reply_mb = 64\n{CONFIG}")),
            vec![at(7, "network.max_reply_mb", "unknown key `max_reply_mb`; did you mean `max_reply_mib`?")],
        ),
        (
            "a configuration with both directions off",
            tail("[configurations.a]\nusers = [\"a@example.com\"]\ncontacts.direction = \"off\"\nevents.direction = \"off\"\n"),
            vec![at(6, "configurations.a", "contacts and events are both off, so this configuration syncs nothing; set contacts.direction or events.direction")],
        ),
        (
            "an empty configuration name",
            tail("[configurations.\"\"]\nusers = [\"a@example.com\"]\n"),
            vec![at(6, "configurations.\"\"", "a configuration needs a name")],
        ),
        (
            "zero configurations",
            HEAD.to_owned(),
            vec![format!("{FILE}: configurations: no configuration is defined; add a [configurations.<name>] table")],
        ),
        (
            "an empty configurations table",
            tail("[configurations]\n"),
            vec![at(6, "configurations", "no configuration is defined; add a [configurations.<name>] table")],
        ),
        (
            "a password in the file",
            exchange_line("password = \"hunter2\""),
            vec![at(3, "exchange.password", SECRET)],
        ),
        (
            "a client secret in the file",
            crm_line("client_secret = \"s3cr3t\""),
            vec![at(6, "crm.client_secret", SECRET)],
        ),
        (
            "a private key pasted into the file",
            crm_line("private_key_file = \"-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----\""),
            vec![at(6, "crm.private_key_file", SECRET)],
        ),
        (
            "a store URL carrying a password",
            tail(&format!("[store]\nurl = \"postgres://exsync:pw@db.example.com/exsync\"\n{CONFIG}")),
            vec![at(7, "store.url", SECRET)],
        ),
        (
            "a store with both a file and a URL",
            tail(&format!("[store]\npath = \"x.db\"\nurl = \"postgres://exsync@db.example.com/exsync\"\n{CONFIG}")),
            vec![at(8, "store.url", "give either `path` (a SQLite file) or `url` (PostgreSQL), not both")],
        ),
        (
            "a lease too short to renew",
            tail(&format!("[store]\nurl = \"postgres://exsync@db.example.com/exsync\"\nlease_secs = 1\n{CONFIG}")),
            vec![at(8, "store.lease_secs", "must be between 2 and 3600 seconds, found 1")],
        ),
        (
            "worker settings for a SQLite store",
            tail(&format!("[store]\nworker_id = \"w1\"\n{CONFIG}")),
            vec![at(7, "store.worker_id", "applies to a PostgreSQL store only; give `url` too, or remove it")],
        ),
        (
            "a store URL that is not PostgreSQL",
            tail(&format!("[store]\nurl = \"mysql://db.example.com/exsync\"\n{CONFIG}")),
            vec![at(7, "store.url", "must be a postgres:// URL; a SQLite file is given with `path`")],
        ),
        (
            "an unknown direction",
            tail("[configurations.a]\nusers = [\"a@example.com\"]\nevents.direction = \"sideways\"\n"),
            vec![at(8, "configurations.a.events.direction", "`sideways` is not a direction; expected one of: off, crm_to_exchange, exchange_to_crm, both")],
        ),
        (
            "a misspelt conflict policy",
            tail("[configurations.a]\nusers = [\"a@example.com\"]\ncontacts.conflict = \"crm_win\"\n"),
            vec![at(8, "configurations.a.contacts.conflict", "`crm_win` is not a conflict policy; did you mean `crm_wins`?")],
        ),
        (
            "an unknown first-link rule",
            tail("[configurations.a]\nusers = [\"a@example.com\"]\ncontacts.first_link = \"oldest\"\n"),
            vec![at(8, "configurations.a.contacts.first_link", "`oldest` is not a first-link rule; expected one of: newest, policy")],
        ),
        (
            "an unknown contact scope",
            tail("[configurations.a]\nusers = [\"a@example.com\"]\ncontacts.scope = \"mine\"\n"),
            vec![at(8, "configurations.a.contacts.scope", "`mine` is not a contact scope; expected one of: owned, visible")],
        ),
        (
            "an unusable SOQL condition",
            tail("[configurations.a]\nusers = [\"a@example.com\"]\ncontacts.condition = \"Name = 'x\"\n"),
            vec![at(8, "configurations.a.contacts.condition", "not a usable SOQL condition: a quoted value is not closed with `'`")],
        ),
        (
            "an unknown Exchange auth method",
            exchange_line("auth = \"digest\""),
            vec![at(3, "exchange.auth", "`digest` is not an authentication method; expected one of: auto, basic, ntlm, kerberos")],
        ),
        (
            "a realm that is not one",
            exchange_line("realm = \"CONTOSO COM\""),
            vec![at(3, "exchange.realm", "`CONTOSO COM` is not a Kerberos realm such as CONTOSO.COM")],
        ),
        (
            "a KDC that is not a host",
            exchange_line("realm = \"CONTOSO.COM\"\nkdcs = [\"dc1 contoso\"]"),
            vec![at(4, "exchange.kdcs", "`dc1 contoso` is not a KDC such as dc1.contoso.com or dc1.contoso.com:88")],
        ),
        (
            "KDCs without a realm",
            exchange_line("kdcs = [\"dc1.contoso.com:88\"]"),
            vec![at(3, "exchange.kdcs", "KDCs serve a realm: set exchange.realm too (e.g. CONTOSO.COM)")],
        ),
        (
            "a service account that is no account name",
            "[exchange]\nservice_account = \"svc\"\n[crm]\nclient_id = \"abc\"\nusername = \"int@example.com\"\n[configurations.a]\nusers = [\"a@example.com\"]\n".to_owned(),
            vec![at(2, "exchange.service_account", "`svc` is not an account name; write user@domain or DOMAIN\\user")],
        ),
        (
            "a missing service account",
            "[exchange]\nauth = \"ntlm\"\n[crm]\nclient_id = \"abc\"\nusername = \"int@example.com\"\n[configurations.a]\nusers = [\"a@example.com\"]\n".to_owned(),
            vec![at(1, "exchange.service_account", "missing: the account that impersonates users, e.g. svc-exsync@example.com")],
        ),
        (
            "missing sections",
            CONFIG.to_owned(),
            vec![
                format!("{FILE}: exchange: missing: the [exchange] section (Exchange on premises, with at least `service_account`), or [exchange_online] when every mailbox is in Exchange Online"),
                format!("{FILE}: crm: missing: the [crm] section, with at least `client_id` and `username`"),
            ],
        ),
        (
            "JWT without a username",
            "[exchange]\nservice_account = \"svc@example.com\"\n[crm]\nclient_id = \"abc\"\n[configurations.a]\nusers = [\"a@example.com\"]\n".to_owned(),
            vec![at(3, "crm.username", "missing: the integration user the JWT is issued for (auth = \"jwt\")")],
        ),
        (
            "a username with client credentials",
            crm_line("auth = \"client_credentials\""),
            vec![at(5, "crm.username", "only used with auth = \"jwt\"; client credentials run as the connected app's user")],
        ),
        (
            "an Autodiscover domain that is not a domain",
            exchange_line("other_domains = [\"example.org\", \"not a domain\"]"),
            vec![at(3, "exchange.other_domains", "`not a domain` is not a domain name such as example.com")],
        ),
        (
            "concurrency above Exchange's limit",
            exchange_line("max_concurrency = 40"),
            vec![at(3, "exchange.max_concurrency", "must be between 1 and 27, found 40")],
        ),
        (
            "per-user concurrency above the account's",
            exchange_line("max_concurrency = 3") + "[service]\nper_user_concurrency = 5\n",
            vec![at(10, "service.per_user_concurrency", "5 is more than exchange.max_concurrency (3): one mailbox cannot use more requests than the whole service account")],
        ),
        (
            "a poll interval too short",
            tail(&format!("[service]\npoll_interval = \"1s\"\n{CONFIG}")),
            vec![at(7, "service.poll_interval", "must be between 10s and 24h, found 1s")],
        ),
        (
            "a poll interval that is no duration",
            tail(&format!("[service]\npoll_interval = \"5 minutes\"\n{CONFIG}")),
            vec![at(7, "service.poll_interval", "`5 minutes` is not a duration such as 30s, 5m or 1h")],
        ),
        (
            "a metrics address that is not address:port",
            tail(&format!("[service]\nmetrics_listen = \"localhost\"\n{CONFIG}")),
            vec![at(7, "service.metrics_listen", "`localhost` is not an address:port such as 127.0.0.1:8443 or [::1]:8443")],
        ),
        (
            "a console open to the network without TLS",
            tail(&format!("[console]\nlisten = \"0.0.0.0:8443\"\n{CONFIG}")),
            vec![at(7, "console.listen", "0.0.0.0:8443 is reachable from other machines, and admin passwords would cross the network unencrypted; set tls_cert_file and tls_key_file, or listen on 127.0.0.1")],
        ),
        (
            "a console certificate without its key",
            tail(&format!("[console]\ntls_cert_file = \"{}\"\n{CONFIG}", concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))),
            vec![at(7, "console.tls_cert_file", "needs tls_key_file as well: give both the certificate and its key")],
        ),
        (
            "several problems are all reported, in file order",
            tail("[configurations.a]\nusers = [\"nobody\"]\ncontacts.direction = \"bothh\"\nevents.past_days = -1\n"),
            vec![
                at(7, "configurations.a.users", "`nobody` is not an e-mail address"),
                at(8, "configurations.a.contacts.direction", "`bothh` is not a direction; did you mean `both`?"),
                at(9, "configurations.a.events.past_days", "must be between 0 and 3650 days, found -1"),
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (name, text, expected) in &cases {
        let got = problems(text);
        if &got != expected {
            failures.push(format!(
                "case `{name}`:\n  expected: {expected:#?}\n  got:      {got:#?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_syntax_error_names_its_line() {
    let got = problems("[exchange]\nservice_account = \"svc@example.com\nauth = \"ntlm\"\n");
    assert!(!got.is_empty());
    assert!(
        got[0].starts_with(&format!("{FILE}:2: not valid TOML: ")),
        "{got:?}"
    );
}

#[test]
fn a_duplicate_key_is_named() {
    let got = problems(&format!("{HEAD}client_id = \"again\"\n{CONFIG}"));
    assert_eq!(
        got,
        vec![format!(
            "{FILE}:6: not valid TOML: duplicate key `client_id`: a key or table may appear only once"
        )]
    );
}

#[test]
fn an_unreadable_file_is_one_problem() {
    let path = Path::new("/nonexistent/exsync.toml");
    let errors = load(path).unwrap_err();
    assert_eq!(errors.len(), 1);
    let text = errors.to_string();
    assert!(
        text.starts_with("/nonexistent/exsync.toml: cannot read the file: "),
        "{text}"
    );
}

#[test]
fn an_ews_url_outside_the_allow_list_is_refused_with_the_fix() {
    let outside = |host: &str, allowed: &str| {
        vec![at(3, "exchange.ews_url", &format!(
            "`{host}` is outside the domains the service account's password may be sent to ({allowed}); \
             if that server belongs to you, add its domain to exchange.other_domains"
        ))]
    };
    let with_domains = |domains: &str, url: &str| {
        format!(
            "[exchange]\nservice_account = \"svc@example.com\"\news_url = \"{url}\"\nother_domains = [{domains}]\n[crm]\nclient_id = \"abc\"\nusername = \"int@example.com\"\n{CONFIG}"
        )
    };
    let url = |host: &str| format!("ews_url = \"https://{host}/EWS/Exchange.asmx\"");
    let cases: Vec<(&str, String, Vec<String>)> = vec![
        ("the account's domain", exchange_line(&url("example.com")), vec![]),
        ("a subdomain of it", exchange_line(&url("mail.example.com")), vec![]),
        ("any case, and a port", exchange_line(&url("Mail.EXAMPLE.com:8443")), vec![]),
        (
            "a domain listed in other_domains",
            with_domains("\"example.org\"", "https://ews.example.org/EWS/Exchange.asmx"),
            vec![],
        ),
        (
            "an IP address, which is no domain",
            exchange_line(&url("127.0.0.1:8443")),
            outside("127.0.0.1", "example.com"),
        ),
        ("an IPv6 address", exchange_line(&url("[::1]:8443")), outside("::1", "example.com")),
        ("another domain", exchange_line(&url("mail.evil.test")), outside("mail.evil.test", "example.com")),
        (
            "the account's domain inside another one",
            exchange_line(&url("mail.example.com.evil.test")),
            outside("mail.example.com.evil.test", "example.com"),
        ),
        (
            "a name that only ends like the domain",
            exchange_line(&url("notexample.com")),
            outside("notexample.com", "example.com"),
        ),
        (
            "user info does not make the host",
            exchange_line(&url("mail.example.com@evil.test")),
            outside("evil.test", "example.com"),
        ),
        (
            "the list names every allowed domain",
            with_domains("\"example.org\", \"example.net\"", "https://mail.evil.test/EWS/Exchange.asmx"),
            outside("mail.evil.test", "example.com, example.org, example.net"),
        ),
        (
            "a DOMAIN\\user account allows only other_domains",
            format!(
                "[exchange]\nservice_account = 'EXAMPLE\\svc'\news_url = \"https://mail.example.com/EWS/Exchange.asmx\"\n[crm]\nclient_id = \"abc\"\nusername = \"int@example.com\"\n{CONFIG}"
            ),
            outside("mail.example.com", "none: a DOMAIN\\user account has no domain of its own"),
        ),
    ];
    let mut failures = Vec::new();
    for (name, text, expected) in &cases {
        let got = problems(text);
        if &got != expected {
            failures.push(format!(
                "case `{name}`:\n  expected: {expected:#?}\n  got:      {got:#?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn an_unreadable_account_does_not_add_an_allow_list_problem() {
    let text = format!(
        "[exchange]\nservice_account = \"nobody\"\news_url = \"https://mail.evil.test/EWS\"\n[crm]\nclient_id = \"abc\"\nusername = \"int@example.com\"\n{CONFIG}"
    );
    assert_eq!(
        problems(&text),
        vec![at(
            2,
            "exchange.service_account",
            "`nobody` is not an account name; write user@domain or DOMAIN\\user"
        )]
    );
}

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../exsync.example.toml")
}

#[test]
fn the_example_file_loads_cleanly() {
    let config = load(&example_path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.exchange.as_ref().unwrap().service_account,
        "svc-exsync@example.com"
    );
    assert_eq!(
        config.exchange.as_ref().unwrap().other_domains,
        vec!["example.org".to_owned()]
    );
    assert_eq!(config.configurations.len(), 2);
    let sales = config.configuration("sales").unwrap();
    assert!(sales.active);
    assert_eq!(
        sales.users,
        [
            UserKey::from_email("alice@example.com"),
            UserKey::from_email("bob@example.com")
        ]
        .into_iter()
        .collect()
    );
    assert!(!sales.contacts.fields.contains_key("birthday"));
    assert!(!sales.events.fields.contains_key("body"));
    assert_eq!(sales.events.fields["start"], "StartDateTime");
    let support = config.configuration("support").unwrap();
    assert_eq!(support.contacts.direction, Direction::CrmToExchange);
    assert_eq!(support.contact_scope, ContactScope::Visible);
    assert_eq!(
        support.contact_condition.as_deref(),
        Some("Account.Type = 'Customer'")
    );
    assert_eq!(support.events.direction, Direction::Off);
}

#[test]
fn defaults_are_filled_in() {
    let config = parse(&format!("{HEAD}{CONFIG}"), Path::new(FILE)).unwrap();
    assert_eq!(
        config.store,
        StoreConfig::Sqlite {
            path: PathBuf::from("/etc/exsync/exsync.db")
        }
    );
    let x = config.exchange.as_ref().unwrap();
    assert_eq!(x.ews_url, None);
    assert_eq!(x.auth, ExchangeAuth::Auto);
    assert!(x.other_domains.is_empty());
    assert_eq!(x.ca_file, None);
    assert_eq!(config.sync_folder, "Salesforce_Sync");
    assert_eq!(x.max_concurrency, 10);
    assert!(x.max_concurrency < EXCHANGE_MAX_CONCURRENCY_LIMIT);
    assert_eq!(x.wire_trace_dir, None);
    assert!(config.network.resolve.is_empty());
    assert_eq!(config.network.max_reply_mib, DEFAULT_MAX_REPLY_MIB);
    assert_eq!(config.network.max_reply_bytes(), 64 * 1024 * 1024);
    let c = &config.crm;
    assert_eq!(c.kind, CrmKind::Salesforce);
    assert_eq!(c.login_url, "https://login.salesforce.com");
    assert_eq!(c.auth, CrmAuth::Jwt);
    assert_eq!(c.username.as_deref(), Some("int@example.com"));
    assert_eq!(c.private_key_file, None);
    assert_eq!(c.api_reserve, 0.2);
    assert_eq!(
        c.mailbox_field,
        MailboxField::Email,
        "a CRM user pairs with the mailbox of their Email, as under Lightning Sync"
    );
    assert_eq!(config.service, ServiceConfig::default());
    assert_eq!(config.service.poll_interval_secs, 300);
    assert_eq!(
        config.service.metrics_listen,
        Some("127.0.0.1:9464".parse().unwrap())
    );
    assert_eq!(config.console.listen, "127.0.0.1:8080".parse().unwrap());
    let a = config.configuration("a").unwrap();
    assert!(a.active);
    assert_eq!(a.contacts, KindRules::default_for(ItemKind::Contact));
    assert_eq!(a.events, KindRules::default_for(ItemKind::Event));
    assert_eq!(a.contact_scope, ContactScope::Owned);
    assert_eq!(a.contact_condition, None);
    assert!(a.groups.is_empty());
}

#[test]
fn settings_given_are_read() {
    let text = tail(
        "[network]
max_reply_mib = 16
[network.resolve]
\"Mail.Example.com\" = \"127.0.0.1:8443\"
[service]
poll_interval = \"90s\"
metrics_listen = false
log_format = \"json\"
[configurations.a]
users = [\"A@Example.com\"]
groups = [\"Sales User\"]
[configurations.a.contacts]
direction = \"exchange_to_crm\"
deletes = \"recreate\"
min_deletes_for_valve = 0
fields.phones = \"MobilePhone\"
fields.notes = false
[configurations.a.events]
conflict = \"newest_wins\"
first_link = \"policy\"
past_days = 0
future_days = 3650
sync_private = true
",
    );
    let config = parse(&text, Path::new(FILE)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.network.resolve.get("mail.example.com"),
        Some(&"127.0.0.1:8443".parse().unwrap())
    );
    assert_eq!(config.network.max_reply_mib, 16);
    assert_eq!(config.network.max_reply_bytes(), 16 * 1024 * 1024);
    assert_eq!(config.service.poll_interval_secs, 90);
    assert_eq!(config.service.metrics_listen, None);
    assert_eq!(config.service.log_format, LogFormat::Json);
    let a = config.configuration("a").unwrap();
    assert!(a.users.contains(&UserKey::from_email("a@example.com")));
    assert_eq!(a.contacts.direction, Direction::ExchangeToCrm);
    assert_eq!(a.contacts.deletes, DeleteMode::Recreate);
    assert_eq!(a.contacts.min_deletes_for_valve, 0);
    assert_eq!(a.contacts.fields["phones"], "MobilePhone");
    assert!(!a.contacts.fields.contains_key("notes"));
    assert_eq!(a.contacts.fields["last_name"], "LastName");
    assert_eq!(a.events.conflict, ConflictPolicy::NewestWins);
    assert_eq!(a.events.first_link, FirstLink::Policy);
    assert_eq!(
        a.contacts.first_link,
        FirstLink::Newest,
        "a first link takes the newer record unless told otherwise"
    );
    assert_eq!(
        a.events.window,
        Some(Window {
            past_days: 0,
            future_days: 3650
        })
    );
    assert!(a.events.sync_private);
}

#[test]
fn the_pairing_rule_is_read_and_shown_back() {
    for (text, field) in [
        ("Username", MailboxField::Username),
        ("FederationIdentifier", MailboxField::FederationIdentifier),
        (
            "Exchange_Mailbox__c",
            MailboxField::Custom("Exchange_Mailbox__c".into()),
        ),
    ] {
        let file = crm_line(&format!("mailbox_field = \"{text}\""));
        let config = parse(&file, Path::new(FILE)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.crm.mailbox_field, field);
        let shown = config.to_toml_string().unwrap();
        assert!(
            shown.contains(&format!("mailbox_field = \"{text}\"")),
            "{shown}"
        );
        assert_eq!(config.to_json()["crm"]["mailbox_field"], text);
    }
}

#[test]
fn an_existing_ca_file_is_accepted() {
    let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let config = parse(
        &exchange_line(&format!("ca_file = \"{ca}\"")),
        Path::new(FILE),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.exchange.as_ref().unwrap().ca_file.as_deref(),
        Some(Path::new(ca))
    );
}

#[test]
fn inactive_configurations_may_repeat_assignments() {
    let text = tail(
        "[configurations.a]
users = [\"bob@example.com\"]
groups = [\"Sales\"]
[configurations.old]
active = false
users = [\"bob@example.com\"]
groups = [\"Sales\"]
",
    );
    let config = parse(&text, Path::new(FILE)).unwrap_or_else(|e| panic!("{e}"));
    assert!(!config.configuration("old").unwrap().active);
}

#[test]
fn the_shown_configuration_loads_back_to_the_same() {
    let config = load(&example_path()).unwrap();
    let text = config.to_toml_string().unwrap();
    let again =
        parse(&text, Path::new("/elsewhere/shown.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(again, config);
    assert!(text.starts_with("[store]"), "{text}");
    assert!(text.contains("[network]\nmax_reply_mib = 64\n"), "{text}");
    let json = config.to_json();
    assert_eq!(json["exchange"]["max_concurrency"], 10);
    assert_eq!(json["network"]["max_reply_mib"], 64);
    assert_eq!(
        json["configurations"]["sales"]["contacts"]["fields"]["birthday"],
        false
    );
}

fn precedence_fixture() -> Vec<SyncConfiguration> {
    let text = tail(
        "[configurations.individual]
users = [\"bob@example.com\"]
[configurations.by_group]
groups = [\"Sales\"]
[configurations.retired]
active = false
users = [\"carol@example.com\"]
groups = [\"Support\"]
",
    );
    parse(&text, Path::new(FILE))
        .unwrap_or_else(|e| panic!("{e}"))
        .configurations
}

fn groups(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|g| (*g).to_owned()).collect()
}

#[test]
fn an_individual_assignment_beats_a_group_one() {
    let configs = precedence_fixture();
    let bob = UserKey::from_email("bob@example.com");
    let (c, by) = effective_configuration(&configs, &bob, &groups(&["Sales"])).unwrap();
    assert_eq!(
        (c.name.as_str(), by),
        ("individual", AssignedBy::Individual)
    );

    let dave = UserKey::from_email("dave@example.com");
    let (c, by) = effective_configuration(&configs, &dave, &groups(&["Sales"])).unwrap();
    assert_eq!((c.name.as_str(), by), ("by_group", AssignedBy::Group));
    assert!(effective_configuration(&configs, &dave, &groups(&[])).is_none());

    let explained = explain_assignment(&configs, &bob, &groups(&["Sales"]));
    assert_eq!(explained.configuration.as_deref(), Some("individual"));
    assert_eq!(
        explained.reasons,
        vec![
            "`bob@example.com` is assigned individually to configuration `individual`".to_owned(),
            "group `Sales` is assigned to configuration `by_group`, but an individual assignment beats a group one".to_owned(),
        ]
    );
}

#[test]
fn an_inactive_configuration_assigns_nobody() {
    let configs = precedence_fixture();
    let carol = UserKey::from_email("carol@example.com");
    assert!(effective_configuration(&configs, &carol, &groups(&["Support"])).is_none());
    let explained = explain_assignment(&configs, &carol, &groups(&["Support"]));
    assert_eq!(explained.configuration, None);
    assert_eq!(
        explained.reasons,
        vec![
            "`carol@example.com` is not assigned individually to an active configuration".to_owned(),
            "none of the groups Support is assigned to an active configuration".to_owned(),
            "configuration `retired` lists `carol@example.com` but is inactive, so it assigns nobody".to_owned(),
            "configuration `retired` lists group `Support` but is inactive, so it assigns nobody".to_owned(),
        ]
    );
    // With no groups known, the reason says where they come from, in the console as in the CLI.
    let explained = explain_assignment(&configs, &carol, &groups(&[]));
    assert!(
        explained.reasons[1].starts_with("no CRM groups are known for them (a pass reads them"),
        "{:?}",
        explained.reasons
    );
    // Carol also in an active group: the group applies.
    let (c, by) =
        effective_configuration(&configs, &carol, &groups(&["Support", "Sales"])).unwrap();
    assert_eq!((c.name.as_str(), by), ("by_group", AssignedBy::Group));
}

#[test]
fn value_checks_accept_what_admins_write_and_refuse_typos() {
    use super::check::*;
    for ok in [
        "https://mail.example.com/EWS/Exchange.asmx",
        "https://127.0.0.1:8443/EWS/Exchange.asmx",
        "https://[::1]:8443/",
        "postgres://exsync@db.example.com:5432/exsync",
    ] {
        assert!(parse_url(ok).is_ok(), "{ok}");
    }
    assert!(parse_url("postgres://u:pw@db/x").unwrap().has_password);
    assert!(!parse_url("postgres://u@db/x").unwrap().has_password);
    for bad in [
        "mail.example.com",
        "https://",
        "https://mail example.com/",
        "https://mail.example.com:0/",
        "https://[::1/",
        "1https://x/",
    ] {
        assert!(parse_url(bad).is_err(), "{bad}");
    }
    assert!(is_email("a.b+c@mail.example.com"));
    for bad in [
        "a@b",
        "@example.com",
        "a@@example.com",
        "a b@example.com",
        "a@-x.com",
    ] {
        assert!(!is_email(bad), "{bad}");
    }
    assert_eq!(duration_secs("90"), Ok(90));
    assert_eq!(duration_secs("5m"), Ok(300));
    assert_eq!(duration_secs("2h"), Ok(7200));
    assert!(duration_secs("5 minutes").is_err());
    assert!(duration_secs("m").is_err());
    assert_eq!(format_duration(300), "5m");
    assert_eq!(format_duration(7200), "2h");
    assert_eq!(format_duration(90), "90s");
    assert!(soql_condition("(A = 'x (' OR B = 'it\\'s') AND C != null").is_ok());
    assert!(soql_condition("A = 1)").is_err());
    assert!(soql_condition("(A = 1").is_err());
    assert!(soql_condition("A = 1; DELETE").is_err());
    assert!(is_crm_field("Account.Name"));
    assert!(is_crm_field("Custom_Field__c"));
    assert!(!is_crm_field("Account..Name"));
    assert!(!is_crm_field("1Name"));
}

#[test]
fn event_selection_by_category_is_read_rendered_and_read_back() {
    let text = tail(
        "[configurations.a]
users = [\"a@example.com\"]
[configurations.a.events]
select = \"category\"
category = \" CRM & <Sales> \"
",
    );
    let config = parse(&text, Path::new(FILE)).unwrap_or_else(|e| panic!("{e}"));
    let a = &config.configurations[0];
    assert_eq!(a.events.select, EventSelect::Category);
    assert_eq!(a.events.category, "CRM & <Sales>");
    // Contacts are not selected by category.
    assert_eq!(a.contacts.select, EventSelect::All);

    let shown = configuration_toml(a).unwrap();
    assert!(shown.contains("select = \"category\""), "{shown}");
    assert!(shown.contains("category = \"CRM & <Sales>\""), "{shown}");
    let again = parse(&tail(&shown), Path::new(FILE)).unwrap_or_else(|e| panic!("{e}\n{shown}"));
    assert_eq!(again.configurations[0], *a);
}

#[test]
fn event_selection_defaults_to_all_with_the_salesforce_category() {
    let config = parse(&tail(CONFIG), Path::new(FILE)).unwrap_or_else(|e| panic!("{e}"));
    let a = &config.configurations[0];
    assert_eq!(a.events.select, EventSelect::All);
    assert_eq!(a.events.category, DEFAULT_CATEGORY);
    assert_eq!(DEFAULT_CATEGORY, "Salesforce");
    let shown = configuration_toml(a).unwrap();
    assert!(shown.contains("select = \"all\""), "{shown}");
    assert!(shown.contains("category = \"Salesforce\""), "{shown}");
}

#[test]
fn a_bad_event_selection_is_named_with_file_key_and_reason() {
    let long = "x".repeat(256);
    for (case, line, expected) in [
        (
            "an unknown selection",
            "events.select = \"tagged\"".to_owned(),
            at(
                8,
                "configurations.a.events.select",
                "`tagged` is not an event selection; expected one of: all, category",
            ),
        ),
        (
            "an empty category",
            "events.category = \"  \"".to_owned(),
            at(8, "configurations.a.events.category", "must not be empty"),
        ),
        (
            "a category with a control character",
            "events.category = \"Sales\\tforce\"".to_owned(),
            at(
                8,
                "configurations.a.events.category",
                "a category name must not contain control characters",
            ),
        ),
        (
            "a category too long",
            format!("events.category = \"{long}\""),
            at(
                8,
                "configurations.a.events.category",
                "a category name is at most 255 characters long, this one has 256",
            ),
        ),
        (
            "a category on contacts",
            "contacts.category = \"Salesforce\"".to_owned(),
            String::new(),
        ),
    ] {
        let found = problems(&tail(&format!(
            "[configurations.a]\nusers = [\"a@example.com\"]\n{line}\n"
        )));
        if expected.is_empty() {
            assert_eq!(found.len(), 1, "{case}: {found:?}");
            assert!(
                found[0].contains("configurations.a.contacts.category"),
                "{case}: {found:?}"
            );
        } else {
            assert_eq!(found, vec![expected], "{case}");
        }
    }
    // 255 characters are fine.
    let fine = "y".repeat(255);
    assert!(problems(&tail(&format!(
        "[configurations.a]\nusers = [\"a@example.com\"]\nevents.category = \"{fine}\"\n"
    )))
    .is_empty());
}

#[test]
fn kerberos_settings_are_read_and_name_the_principal() {
    let text = exchange_line(
        "auth = \"kerberos\"\nrealm = \"contoso.com\"\nkdcs = [\"DC1.contoso.com:88\", \"10.0.0.2\"]",
    );
    let config = parse(&text, Path::new(FILE)).unwrap();
    let x = config.exchange.as_ref().unwrap();
    assert_eq!(x.auth, ExchangeAuth::Kerberos);
    assert_eq!(x.realm.as_deref(), Some("CONTOSO.COM"));
    assert_eq!(x.kdcs, vec!["dc1.contoso.com:88", "10.0.0.2"]);
    assert_eq!(x.kerberos_principal().as_deref(), Some("svc@CONTOSO.COM"));
    // Without a realm, the account's own domain in upper case.
    let config = parse(&exchange_line("auth = \"kerberos\""), Path::new(FILE)).unwrap();
    assert_eq!(
        config
            .exchange
            .as_ref()
            .unwrap()
            .kerberos_principal()
            .as_deref(),
        Some("svc@EXAMPLE.COM")
    );
}

#[test]
fn a_postgres_store_names_its_worker_and_leases() {
    let text = format!(
        "{HEAD}[store]\nurl = \"postgres://exsync@db.example.com/exsync\"\nworker_id = \"sync-1\"\nlease_secs = 5\nworker_batch = 3\n{CONFIG}"
    );
    let config = parse(&text, Path::new(FILE)).unwrap_or_else(|e| panic!("{e}"));
    match &config.store {
        StoreConfig::Postgres { worker, .. } => assert_eq!(
            worker,
            &WorkerConfig {
                id: Some("sync-1".into()),
                lease_secs: 5,
                batch: 3
            }
        ),
        other => panic!("{other:?}"),
    }
    let rendered = toml::to_string(&config.to_toml_table()).unwrap();
    assert!(rendered.contains("worker_id = \"sync-1\""), "{rendered}");
    assert!(rendered.contains("lease_secs = 5"), "{rendered}");
    let default = parse(
        &format!("{HEAD}[store]\nurl = \"postgres://exsync@db.example.com/exsync\"\n{CONFIG}"),
        Path::new(FILE),
    )
    .unwrap();
    match &default.store {
        StoreConfig::Postgres { worker, .. } => assert_eq!(worker, &WorkerConfig::default()),
        other => panic!("{other:?}"),
    }
}
