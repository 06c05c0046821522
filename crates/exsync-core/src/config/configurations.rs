//! The `[configurations.<name>]` tables: who is assigned, and the rules for contacts and
//! events, including field maps and the refusal of double assignments.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use toml::de::DeValue;

use super::check;
use super::file::MAX_WINDOW_DAYS;
use super::model::*;
use super::walk::{hint, join, Reader, Tbl};
use crate::model::{field_names, required_fields, ItemKind, UserKey};

/// Where each user and group is assigned, to refuse double assignments.
struct Assignments {
    name: String,
    active: bool,
    users: Vec<(UserKey, String, usize)>,
    groups: Vec<(String, usize)>,
    key: String,
    order: usize,
}

pub(super) fn read_configurations(r: &mut Reader, root: &Tbl<'_, '_>) -> Vec<SyncConfiguration> {
    let Some(table) = r.sub(root, "configurations") else {
        if r.item(root, "configurations").is_none() {
            r.error(
                "configurations",
                None,
                "no configuration is defined; add a [configurations.<name>] table",
            );
        }
        return Vec::new();
    };
    if table.map.is_empty() {
        r.error(
            "configurations",
            table.line,
            "no configuration is defined; add a [configurations.<name>] table",
        );
        return Vec::new();
    }
    let mut configurations = Vec::new();
    let mut assignments = Vec::new();
    for (key, value) in table.map.iter() {
        let name: &str = key.get_ref();
        let item = r.make_item(join(&table.path, name), key, value);
        let Some(map) = r.table(&item) else {
            continue;
        };
        let t = Tbl {
            path: item.key.clone(),
            line: Some(item.key_line),
            map,
        };
        if name.trim().is_empty() {
            r.error(
                &item.key,
                Some(item.key_line),
                "a configuration needs a name",
            );
        }
        let (config, assigned) = read_configuration(r, &t, name.trim());
        assignments.push(Assignments {
            order: item.key_line,
            ..assigned
        });
        configurations.push(config);
    }
    check_assignments(r, assignments);
    configurations
}

fn read_configuration(
    r: &mut Reader,
    t: &Tbl<'_, '_>,
    name: &str,
) -> (SyncConfiguration, Assignments) {
    r.check_keys(t, &["active", "users", "groups", "contacts", "events"]);
    let active = r
        .item(t, "active")
        .and_then(|item| r.boolean(&item))
        .unwrap_or(true);

    let mut users = Vec::new();
    if let Some(item) = r.item(t, "users") {
        for (email, line) in r.string_list(&item).unwrap_or_default() {
            let shown = email.trim().to_owned();
            if !check::is_email(&shown) {
                r.error(
                    &item.key,
                    Some(line),
                    format!("`{shown}` is not an e-mail address"),
                );
                continue;
            }
            let user = UserKey::from_email(&shown);
            if users.iter().any(|(u, _, _)| *u == user) {
                r.error(&item.key, Some(line), format!("`{shown}` is listed twice"));
                continue;
            }
            users.push((user, item.key.clone(), line));
        }
    }
    let mut groups: Vec<(String, usize)> = Vec::new();
    if let Some(item) = r.item(t, "groups") {
        for (group, line) in r.string_list(&item).unwrap_or_default() {
            let group = group.trim().to_owned();
            if group.is_empty() {
                r.error(&item.key, Some(line), "a group name must not be empty");
            } else if groups.iter().any(|(g, _)| *g == group) {
                r.error(
                    &item.key,
                    Some(line),
                    format!("group `{group}` is listed twice"),
                );
            } else {
                groups.push((group, line));
            }
        }
    }

    let contacts_table = r.sub(t, "contacts");
    let (contacts, scope, condition) = read_rules(r, contacts_table.as_ref(), ItemKind::Contact);
    let events_table = r.sub(t, "events");
    let (events, _, _) = read_rules(r, events_table.as_ref(), ItemKind::Event);
    if contacts.direction == Direction::Off && events.direction == Direction::Off {
        r.error(
            &t.path,
            t.line,
            "contacts and events are both off, so this configuration syncs nothing; set contacts.direction or events.direction",
        );
    }

    let config = SyncConfiguration {
        name: name.to_owned(),
        active,
        contacts,
        contact_scope: scope,
        contact_condition: condition,
        events,
        users: users.iter().map(|(u, _, _)| u.clone()).collect(),
        groups: groups
            .iter()
            .map(|(g, _)| g.clone())
            .collect::<BTreeSet<_>>(),
    };
    let assigned = Assignments {
        name: name.to_owned(),
        active,
        users,
        groups,
        key: t.path.clone(),
        order: 0,
    };
    (config, assigned)
}

const DIRECTIONS: &[(&str, Direction)] = &[
    ("off", Direction::Off),
    ("crm_to_exchange", Direction::CrmToExchange),
    ("exchange_to_crm", Direction::ExchangeToCrm),
    ("both", Direction::Both),
];
const CONFLICTS: &[(&str, ConflictPolicy)] = &[
    ("crm_wins", ConflictPolicy::CrmWins),
    ("exchange_wins", ConflictPolicy::ExchangeWins),
    ("newest_wins", ConflictPolicy::NewestWins),
];
const FIRST_LINKS: &[(&str, FirstLink)] =
    &[("newest", FirstLink::Newest), ("policy", FirstLink::Policy)];
const DELETES: &[(&str, DeleteMode)] = &[
    ("propagate", DeleteMode::Propagate),
    ("recreate", DeleteMode::Recreate),
];
const SELECTS: &[(&str, EventSelect)] = &[
    ("all", EventSelect::All),
    ("category", EventSelect::Category),
];
const SCOPES: &[(&str, ContactScope)] = &[
    ("owned", ContactScope::Owned),
    ("visible", ContactScope::Visible),
];

/// The rules of one kind, plus the contact scope and condition (contacts only).
fn read_rules(
    r: &mut Reader,
    t: Option<&Tbl<'_, '_>>,
    kind: ItemKind,
) -> (KindRules, ContactScope, Option<String>) {
    let mut rules = KindRules::default_for(kind);
    let mut scope = ContactScope::Owned;
    let mut condition = None;
    let Some(t) = t else {
        return (rules, scope, condition);
    };
    let common = [
        "direction",
        "conflict",
        "first_link",
        "deletes",
        "max_delete_share",
        "min_deletes_for_valve",
        "fields",
    ];
    let extra: &[&str] = match kind {
        ItemKind::Contact => &["scope", "condition"],
        ItemKind::Event => &[
            "past_days",
            "future_days",
            "sync_private",
            "select",
            "category",
        ],
    };
    let known: Vec<&str> = common.iter().chain(extra).copied().collect();
    r.check_keys(t, &known);

    if let Some(v) = r
        .item(t, "direction")
        .and_then(|i| r.choice(&i, "a direction", DIRECTIONS))
    {
        rules.direction = v;
    }
    if let Some(v) = r
        .item(t, "conflict")
        .and_then(|i| r.choice(&i, "a conflict policy", CONFLICTS))
    {
        rules.conflict = v;
    }
    if let Some(v) = r
        .item(t, "first_link")
        .and_then(|i| r.choice(&i, "a first-link rule", FIRST_LINKS))
    {
        rules.first_link = v;
    }
    if let Some(v) = r
        .item(t, "deletes")
        .and_then(|i| r.choice(&i, "a delete policy", DELETES))
    {
        rules.deletes = v;
    }
    if let Some(v) = r
        .item(t, "max_delete_share")
        .and_then(|i| r.share(&i, true))
    {
        rules.max_delete_share = v;
    }
    if let Some(v) = r
        .item(t, "min_deletes_for_valve")
        .and_then(|i| r.integer(&i, 0, 1_000_000, ""))
    {
        rules.min_deletes_for_valve = usize::try_from(v).unwrap_or(rules.min_deletes_for_valve);
    }
    if let Some(fields) = r.sub(t, "fields") {
        read_field_map(r, &fields, kind, &mut rules.fields);
    }
    match kind {
        ItemKind::Contact => {
            if let Some(v) = r
                .item(t, "scope")
                .and_then(|i| r.choice(&i, "a contact scope", SCOPES))
            {
                scope = v;
            }
            if let Some(item) = r.item(t, "condition") {
                if let Some(text) = r.text(&item) {
                    match check::soql_condition(&text) {
                        Ok(()) => condition = Some(text),
                        Err(reason) => r.error(
                            &item.key,
                            Some(item.value_line),
                            format!("not a usable SOQL condition: {reason}"),
                        ),
                    }
                }
            }
        }
        ItemKind::Event => {
            let mut window = rules.window.unwrap_or(Window {
                past_days: 30,
                future_days: 365,
            });
            let max = u64::from(MAX_WINDOW_DAYS);
            if let Some(v) = r
                .item(t, "past_days")
                .and_then(|i| r.integer(&i, 0, max, "days"))
            {
                window.past_days = u32::try_from(v).unwrap_or(window.past_days);
            }
            if let Some(v) = r
                .item(t, "future_days")
                .and_then(|i| r.integer(&i, 0, max, "days"))
            {
                window.future_days = u32::try_from(v).unwrap_or(window.future_days);
            }
            rules.window = Some(window);
            if let Some(v) = r.item(t, "sync_private").and_then(|i| r.boolean(&i)) {
                rules.sync_private = v;
            }
            if let Some(v) = r
                .item(t, "select")
                .and_then(|i| r.choice(&i, "an event selection", SELECTS))
            {
                rules.select = v;
            }
            if let Some(item) = r.item(t, "category") {
                if let Some(name) = r.text(&item) {
                    match check::category_name(&name) {
                        Ok(()) => rules.category = name,
                        Err(reason) => r.error(&item.key, Some(item.value_line), reason),
                    }
                }
            }
        }
    }
    (rules, scope, condition)
}

/// `domain_field = "CrmField"` remaps, `= false` stops syncing it, `= true` keeps the
/// standard mapping; fields not mentioned keep theirs.
fn read_field_map(
    r: &mut Reader,
    t: &Tbl<'_, '_>,
    kind: ItemKind,
    fields: &mut BTreeMap<String, String>,
) {
    let names = field_names(kind);
    let required = required_fields(kind);
    for (key, value) in t.map.iter() {
        let field: &str = key.get_ref();
        let item = r.make_item(join(&t.path, field), key, value);
        if !names.contains(&field) {
            r.error(
                &item.key,
                Some(item.key_line),
                format!(
                    "`{}` is not {} field; {}",
                    join("", field),
                    match kind {
                        ItemKind::Contact => "a contact",
                        ItemKind::Event => "an event",
                    },
                    hint(field, names)
                ),
            );
            continue;
        }
        match item.value {
            DeValue::Boolean(false) if required.contains(&field) => {
                r.error(
                    &item.key,
                    Some(item.value_line),
                    format!(
                        "`{field}` cannot be turned off: an {} cannot sync without {}",
                        kind.as_str(),
                        required.join(" and ")
                    ),
                );
            }
            DeValue::Boolean(false) => {
                fields.remove(field);
            }
            DeValue::Boolean(true) => {}
            DeValue::String(crm) => {
                let crm = crm.trim();
                if check::is_crm_field(crm) {
                    fields.insert(field.to_owned(), crm.to_owned());
                } else {
                    r.error(
                        &item.key,
                        Some(item.value_line),
                        format!(
                            "`{crm}` is not a Salesforce field name such as Phone or Account.Name"
                        ),
                    );
                }
            }
            _ => r.wrong_type(&item, "a Salesforce field name or false"),
        }
    }
}

/// A user assigned individually to two active configurations, or a group assigned to two,
/// would make the choice of configuration arbitrary; refuse it. Inactive configurations assign
/// nobody, so they may repeat assignments.
fn check_assignments(r: &mut Reader, mut all: Vec<Assignments>) {
    all.sort_by_key(|a| a.order);
    let mut users: HashMap<UserKey, (String, usize)> = HashMap::new();
    let mut groups: HashMap<String, (String, usize)> = HashMap::new();
    for a in all.iter().filter(|a| a.active) {
        for (user, key, line) in &a.users {
            if let Some((other, other_line)) = users.get(user) {
                r.error(
                    key,
                    Some(*line),
                    format!(
                        "`{user}` is already assigned to configuration `{other}` (line {other_line}); a user can be assigned individually to one active configuration only"
                    ),
                );
            } else {
                users.insert(user.clone(), (a.name.clone(), *line));
            }
        }
        for (group, line) in &a.groups {
            if let Some((other, other_line)) = groups.get(group) {
                r.error(
                    &join(&a.key, "groups"),
                    Some(*line),
                    format!(
                        "group `{group}` is already assigned to configuration `{other}` (line {other_line}); a group can be assigned to one active configuration only"
                    ),
                );
            } else {
                groups.insert(group.clone(), (a.name.clone(), *line));
            }
        }
    }
}
