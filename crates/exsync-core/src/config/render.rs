//! Showing the effective configuration back, defaults filled in, in the file's own layout:
//! the TOML text reads back to the same configuration. Also explains which configuration a
//! user gets and why.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;
use toml::{Table, Value};

use super::check::format_duration;
use super::file::*;
use super::model::*;
use crate::model::{field_names, ItemKind, UserKey};

fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

fn path(p: &Path) -> Value {
    s(p.display().to_string())
}

fn int(n: impl TryInto<i64>) -> Value {
    Value::Integer(n.try_into().unwrap_or(i64::MAX))
}

fn enum_name<T: Serialize>(v: &T) -> Value {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(name)) => s(name),
        _ => s(""),
    }
}

fn table(entries: Vec<(&str, Option<Value>)>) -> Value {
    Value::Table(
        entries
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
            .collect(),
    )
}

fn rules_table(rules: &KindRules, kind: ItemKind, extra: Vec<(&str, Option<Value>)>) -> Value {
    let fields: Table = field_names(kind)
        .iter()
        .map(|f| {
            let v = rules
                .fields
                .get(*f)
                .map_or(Value::Boolean(false), |crm| s(crm.clone()));
            ((*f).to_owned(), v)
        })
        .collect();
    let mut entries = vec![
        ("direction", Some(enum_name(&rules.direction))),
        ("conflict", Some(enum_name(&rules.conflict))),
        ("first_link", Some(enum_name(&rules.first_link))),
        ("deletes", Some(enum_name(&rules.deletes))),
        (
            "max_delete_share",
            Some(Value::Float(rules.max_delete_share)),
        ),
        (
            "min_deletes_for_valve",
            Some(int(rules.min_deletes_for_valve)),
        ),
    ];
    entries.extend(extra);
    entries.push(("fields", Some(Value::Table(fields))));
    table(entries)
}

/// One configuration in the layout of a `[configurations.<name>]` table.
pub fn configuration_value(c: &SyncConfiguration) -> Value {
    let contacts = rules_table(
        &c.contacts,
        ItemKind::Contact,
        vec![
            ("scope", Some(enum_name(&c.contact_scope))),
            ("condition", c.contact_condition.clone().map(s)),
        ],
    );
    let window = c.events.window;
    let events = rules_table(
        &c.events,
        ItemKind::Event,
        vec![
            ("past_days", window.map(|w| int(w.past_days))),
            ("future_days", window.map(|w| int(w.future_days))),
            ("sync_private", Some(Value::Boolean(c.events.sync_private))),
            ("select", Some(enum_name(&c.events.select))),
            ("category", Some(s(c.events.category.clone()))),
        ],
    );
    table(vec![
        ("active", Some(Value::Boolean(c.active))),
        (
            "users",
            Some(Value::Array(
                c.users.iter().map(|u| s(u.as_str())).collect(),
            )),
        ),
        (
            "groups",
            Some(Value::Array(
                c.groups.iter().map(|g| s(g.clone())).collect(),
            )),
        ),
        ("contacts", Some(contacts)),
        ("events", Some(events)),
    ])
}

/// One configuration as TOML text under its `[configurations.<name>]` header, so it can be
/// pasted into a file.
pub fn configuration_toml(c: &SyncConfiguration) -> Result<String, toml::ser::Error> {
    let mut configurations = Table::new();
    configurations.insert(c.name.clone(), configuration_value(c));
    let mut root = Table::new();
    root.insert("configurations".to_owned(), Value::Table(configurations));
    toml::to_string_pretty(&root)
}

impl ExsyncConfig {
    /// The effective configuration as a TOML table, in the layout of the file.
    pub fn to_toml_table(&self) -> Table {
        let store = match &self.store {
            StoreConfig::Sqlite { path: p } => table(vec![("path", Some(path(p)))]),
            StoreConfig::Postgres {
                url,
                password_file,
                ca_file,
                worker,
            } => table(vec![
                ("url", Some(s(url.clone()))),
                ("password_file", password_file.as_deref().map(path)),
                ("ca_file", ca_file.as_deref().map(path)),
                ("worker_id", worker.id.clone().map(s)),
                ("lease_secs", Some(int(worker.lease_secs))),
                ("worker_batch", Some(int(worker.batch))),
            ]),
        };
        // The folder is written where it was read from: `[exchange]`, else `[exchange_online]`.
        let folder = Some(s(self.sync_folder.clone()));
        let exchange = self.exchange.as_ref().map(|x| {
            table(vec![
                ("ews_url", x.ews_url.clone().map(s)),
                ("service_account", Some(s(x.service_account.clone()))),
                ("auth", Some(s(x.auth.as_str()))),
                (
                    "other_domains",
                    Some(Value::Array(
                        x.other_domains.iter().map(|d| s(d.clone())).collect(),
                    )),
                ),
                ("ca_file", x.ca_file.as_deref().map(path)),
                ("sync_folder", folder.clone()),
                ("max_concurrency", Some(int(x.max_concurrency))),
                ("wire_trace_dir", x.wire_trace_dir.as_deref().map(path)),
                ("realm", x.realm.clone().map(s)),
                (
                    "kdcs",
                    (!x.kdcs.is_empty())
                        .then(|| Value::Array(x.kdcs.iter().map(|k| s(k.clone())).collect())),
                ),
                ("krb5_conf", x.krb5_conf.as_deref().map(path)),
            ])
        });
        let exchange_online = self.exchange_online.as_ref().map(|x| {
            table(vec![
                ("tenant", Some(s(x.tenant.clone()))),
                ("client_id", Some(s(x.client_id.clone()))),
                ("cloud", Some(s(x.cloud.as_str()))),
                ("credential", Some(s(x.credential.as_str()))),
                ("all_users", Some(Value::Boolean(x.all_users))),
                (
                    "users",
                    (!x.users.is_empty())
                        .then(|| Value::Array(x.users.iter().map(|u| s(u.clone())).collect())),
                ),
                ("auto", x.auto.then_some(Value::Boolean(true))),
                (
                    "auto_users",
                    (!x.auto_users.is_empty())
                        .then(|| Value::Array(x.auto_users.iter().map(|u| s(u.clone())).collect())),
                ),
                ("routing_domain", x.routing_domain.clone().map(s)),
                (
                    "route_ttl_hours",
                    x.routes_automatically()
                        .then(|| Value::Integer(i64::from(x.route_ttl_hours))),
                ),
                (
                    "authority_url",
                    x.endpoints.as_ref().map(|e| s(e.authority_url.clone())),
                ),
                (
                    "graph_url",
                    x.endpoints.as_ref().map(|e| s(e.graph_url.clone())),
                ),
                ("ca_file", x.ca_file.as_deref().map(path)),
                (
                    "sync_folder",
                    self.exchange.is_none().then(|| folder.clone()).flatten(),
                ),
            ])
        });
        let resolve: Table = self
            .network
            .resolve
            .iter()
            .map(|(host, addr)| (host.clone(), s(addr.to_string())))
            .collect();
        let network = table(vec![
            ("max_reply_mib", Some(int(self.network.max_reply_mib))),
            ("resolve", Some(Value::Table(resolve))),
        ]);
        let c = &self.crm;
        let crm = table(vec![
            ("kind", Some(s(c.kind.as_str()))),
            ("login_url", Some(s(c.login_url.clone()))),
            ("instance_url", c.instance_url.clone().map(s)),
            ("client_id", Some(s(c.client_id.clone()))),
            ("auth", Some(s(c.auth.as_str()))),
            ("username", c.username.clone().map(s)),
            ("private_key_file", c.private_key_file.as_deref().map(path)),
            ("ca_file", c.ca_file.as_deref().map(path)),
            ("api_reserve", Some(Value::Float(c.api_reserve))),
            ("settle", Some(Value::Integer(c.settle_secs as i64))),
            ("mailbox_field", Some(s(c.mailbox_field.as_str()))),
        ]);
        let v = &self.service;
        let service = table(vec![
            (
                "poll_interval",
                Some(s(format_duration(v.poll_interval_secs))),
            ),
            ("concurrent_users", Some(int(v.concurrent_users))),
            ("per_user_concurrency", Some(int(v.per_user_concurrency))),
            (
                "metrics_listen",
                Some(
                    v.metrics_listen
                        .map_or(Value::Boolean(false), |a| s(a.to_string())),
                ),
            ),
            ("log_format", Some(s(v.log_format.as_str()))),
        ]);
        let o = &self.console;
        let console = table(vec![
            ("listen", Some(s(o.listen.to_string()))),
            ("tls_cert_file", o.tls_cert_file.as_deref().map(path)),
            ("tls_key_file", o.tls_key_file.as_deref().map(path)),
        ]);
        let configurations: Table = self
            .configurations
            .iter()
            .map(|c| (c.name.clone(), configuration_value(c)))
            .collect();
        [
            ("store", Some(store)),
            ("exchange", exchange),
            ("exchange_online", exchange_online),
            ("network", Some(network)),
            ("crm", Some(crm)),
            ("service", Some(service)),
            ("console", Some(console)),
            ("configurations", Some(Value::Table(configurations))),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
        .collect()
    }

    /// TOML text that loads back to this configuration, sections in the order the example
    /// file uses rather than alphabetical order.
    pub fn to_toml_string(&self) -> Result<String, toml::ser::Error> {
        let mut all = self.to_toml_table();
        let mut parts = Vec::new();
        for name in [
            "store",
            "exchange",
            "exchange_online",
            "network",
            "crm",
            "service",
            "console",
            "configurations",
        ] {
            if let Some(value) = all.remove(name) {
                let mut one = Table::new();
                one.insert(name.to_owned(), value);
                parts.push(toml::to_string_pretty(&one)?);
            }
        }
        Ok(parts.join("\n"))
    }

    /// The same table as [`ExsyncConfig::to_toml_string`] as JSON, for `--format json` output.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.to_toml_table()).unwrap_or(serde_json::Value::Null)
    }
}

/// Which configuration applies to a user, and the reasons, for `exsync config show --user`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assignment {
    /// The user asked about, as given.
    pub user: String,
    /// The configuration that applies, if any.
    pub configuration: Option<String>,
    /// Whether the user was named individually or came in through a group; `None` when no
    /// configuration applies.
    pub assigned_by: Option<AssignedBy>,
    /// The group that brought it, for a group assignment.
    pub group: Option<String>,
    /// One sentence per fact that decided it, in the order they were weighed.
    pub reasons: Vec<String>,
}

/// Explains [`effective_configuration`] for one user and their groups.
pub fn explain_assignment(
    configurations: &[SyncConfiguration],
    user: &UserKey,
    groups: &BTreeSet<String>,
) -> Assignment {
    let chosen = effective_configuration(configurations, user, groups);
    let mut reasons = Vec::new();
    let mut group = None;
    match chosen {
        Some((c, AssignedBy::Individual)) => {
            reasons.push(format!(
                "`{user}` is assigned individually to configuration `{}`",
                c.name
            ));
            for other in configurations.iter().filter(|o| o.active) {
                for g in other.groups.intersection(groups) {
                    reasons.push(format!(
                        "group `{g}` is assigned to configuration `{}`, but an individual assignment beats a group one",
                        other.name
                    ));
                }
            }
        }
        Some((c, AssignedBy::Group)) => {
            let g = c.groups.intersection(groups).next().cloned();
            reasons.push(format!(
                "`{user}` is not assigned individually to an active configuration"
            ));
            if let Some(g) = &g {
                reasons.push(format!(
                    "group `{g}` is assigned to configuration `{}`",
                    c.name
                ));
            }
            group = g;
        }
        None => {
            reasons.push(format!(
                "`{user}` is not assigned individually to an active configuration"
            ));
            if groups.is_empty() {
                reasons.push(
                    "no CRM groups are known for them (a pass reads them from the CRM; \
                     `config show --user` takes them with --groups)"
                        .to_owned(),
                );
            } else {
                let list: Vec<&str> = groups.iter().map(String::as_str).collect();
                reasons.push(format!(
                    "none of the groups {} is assigned to an active configuration",
                    list.join(", ")
                ));
            }
        }
    }
    for inactive in configurations.iter().filter(|c| !c.active) {
        if inactive.users.contains(user) {
            reasons.push(format!(
                "configuration `{}` lists `{user}` but is inactive, so it assigns nobody",
                inactive.name
            ));
        }
        for g in inactive.groups.intersection(groups) {
            reasons.push(format!(
                "configuration `{}` lists group `{g}` but is inactive, so it assigns nobody",
                inactive.name
            ));
        }
    }
    Assignment {
        user: user.to_string(),
        configuration: chosen.map(|(c, _)| c.name.clone()),
        assigned_by: chosen.map(|(_, by)| by),
        group,
        reasons,
    }
}
