//! Sync configurations and which one applies to a user: `GET`/`POST /api/configurations`,
//! `PUT /api/configurations/{name}`, `GET /api/assignment`, and the `/configurations` page
//! with its forms.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form, Json};
use exsync_core::config::{
    explain_assignment, AssignedBy, Assignment, ConflictPolicy, ContactScope, DeleteMode,
    Direction, EventSelect, FirstLink, KindRules, SyncConfiguration,
};
use exsync_core::{field_names, ItemKind, UserKey};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::json;

use crate::auth::Caller;
use crate::error::{ConsoleError, ConsoleResult};
use crate::html::{address, csrf_field, error_box, esc, notice, page, seg};
use crate::settings::{set_bool, set_list, set_value, table_at};
use crate::AppState;

use super::internal;
use super::rule_settings::{self, RuleEdit};
use super::users::last_group;

/// One configuration with every rule, defaults filled in, in the layout of its
/// `[configurations.<name>]` table in `exsync.toml` (what `configuration_value` in
/// exsync-core renders), plus its name.
#[derive(Serialize)]
pub(crate) struct ConfigurationView<'a> {
    /// Whether it applies to anyone; an inactive configuration stays in the file but syncs
    /// nobody.
    pub active: bool,
    /// How contacts sync for the users it applies to.
    pub contacts: RulesView<'a>,
    /// How events sync for them.
    pub events: RulesView<'a>,
    /// CRM profile names whose users it applies to, unless a user has an individual
    /// assignment elsewhere.
    pub groups: Vec<&'a str>,
    /// The name the admin gave it, unique in the file; the update route takes it in the path.
    pub name: &'a str,
    /// Mailbox addresses assigned to it individually.
    pub users: Vec<&'a str>,
}

/// The rules for one record kind. Contacts have a scope and maybe a condition; events have
/// a window and the private flag; a field the kind does not have is left out.
#[derive(Serialize)]
pub(crate) struct RulesView<'a> {
    /// Events only: the Outlook category that selects an event for the CRM when `select` is
    /// `category`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<&'a str>,
    /// Contacts only: the extra condition a CRM contact must meet to sync, when one is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<&'a str>,
    /// Which side wins when both changed the same field differently.
    pub conflict: ConflictPolicy,
    /// Whether a deletion on one side is carried over to the other or undone.
    pub deletes: DeleteMode,
    /// Which way records flow: off, to Exchange, to the CRM, or both ways.
    pub direction: Direction,
    /// Every field of the kind, whether it syncs or not.
    pub fields: BTreeMap<&'static str, FieldRule<'a>>,
    /// How the first sync of two records never linked before settles the fields they hold
    /// differently: `newest` takes the record modified more recently (a tie or an unknown
    /// time falls back to `conflict`), `policy` settles them by `conflict`.
    pub first_link: FirstLink,
    /// Events only: how many days ahead of a pass an event may start and still sync.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub future_days: Option<u32>,
    /// The share (0.0 to 1.0) of a user's synced records one pass may delete; a pass that
    /// would delete more pauses the user instead.
    pub max_delete_share: f64,
    /// The fewest deletions in one pass that can trip that pause, so that small mailboxes
    /// can still delete most of what they hold.
    pub min_deletes_for_valve: usize,
    /// Events only: how many days before a pass an event may have ended and still sync.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub past_days: Option<u32>,
    /// Contacts only: the user's own CRM contacts, or every contact the user can see.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<ContactScope>,
    /// Events only: `all` Outlook events sync to the CRM, or only those carrying `category`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub select: Option<EventSelect>,
    /// Events only: whether events marked private sync too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_private: Option<bool>,
}

/// The CRM field a field syncs with, or `false` when it does not sync, as in the file.
pub(crate) struct FieldRule<'a>(pub Option<&'a str>);

impl Serialize for FieldRule<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(crm) => s.serialize_str(crm),
            None => s.serialize_bool(false),
        }
    }
}

impl<'a> RulesView<'a> {
    fn of(rules: &'a KindRules, kind: ItemKind) -> RulesView<'a> {
        RulesView {
            category: None,
            condition: None,
            conflict: rules.conflict,
            deletes: rules.deletes,
            direction: rules.direction,
            fields: field_names(kind)
                .iter()
                .map(|f| (*f, FieldRule(rules.fields.get(*f).map(String::as_str))))
                .collect(),
            first_link: rules.first_link,
            future_days: None,
            max_delete_share: rules.max_delete_share,
            min_deletes_for_valve: rules.min_deletes_for_valve,
            past_days: None,
            scope: None,
            select: None,
            sync_private: None,
        }
    }
}

impl<'a> ConfigurationView<'a> {
    pub(crate) fn of(c: &'a SyncConfiguration) -> ConfigurationView<'a> {
        let contacts = RulesView {
            condition: c.contact_condition.as_deref(),
            scope: Some(c.contact_scope),
            ..RulesView::of(&c.contacts, ItemKind::Contact)
        };
        let window = c.events.window;
        let events = RulesView {
            past_days: window.map(|w| w.past_days),
            future_days: window.map(|w| w.future_days),
            sync_private: Some(c.events.sync_private),
            select: Some(c.events.select),
            category: Some(c.events.category.as_str()),
            ..RulesView::of(&c.events, ItemKind::Event)
        };
        ConfigurationView {
            active: c.active,
            contacts,
            events,
            groups: c.groups.iter().map(String::as_str).collect(),
            name: &c.name,
            users: c.users.iter().map(UserKey::as_str).collect(),
        }
    }
}

/// Which configuration applies to a user and why (`GET /api/assignment`, the page's
/// per-user table and its "Check a user" form).
#[derive(Serialize)]
pub(crate) struct AssignmentView {
    /// `individual` or `group`; `null` when no configuration applies.
    pub assigned_by: Option<AssignedBy>,
    /// The name of the configuration that applies; `null` when none does, and the user is
    /// not synced.
    pub configuration: Option<String>,
    /// The group that brought it, for a group assignment.
    pub group: Option<String>,
    /// One sentence per fact that decided it.
    pub reasons: Vec<String>,
    /// The mailbox address that was asked about.
    pub user: String,
}

impl From<Assignment> for AssignmentView {
    fn from(a: Assignment) -> Self {
        AssignmentView {
            assigned_by: a.assigned_by,
            configuration: a.configuration,
            group: a.group,
            reasons: a.reasons,
            user: a.user,
        }
    }
}

impl AssignmentView {
    pub(crate) fn explain(
        configurations: &[SyncConfiguration],
        user: &UserKey,
        groups: &BTreeSet<String>,
    ) -> AssignmentView {
        explain_assignment(configurations, user, groups).into()
    }
}

fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::Off => "off",
        Direction::CrmToExchange => "crm_to_exchange",
        Direction::ExchangeToCrm => "exchange_to_crm",
        Direction::Both => "both",
    }
}

fn conflict_name(c: ConflictPolicy) -> &'static str {
    match c {
        ConflictPolicy::CrmWins => "crm_wins",
        ConflictPolicy::ExchangeWins => "exchange_wins",
        ConflictPolicy::NewestWins => "newest_wins",
    }
}

fn first_link_name(f: FirstLink) -> &'static str {
    match f {
        FirstLink::Newest => "newest",
        FirstLink::Policy => "policy",
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct ConfigurationInput {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub users: Option<Vec<String>>,
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    #[serde(default)]
    pub contacts_direction: Option<String>,
    #[serde(default)]
    pub events_direction: Option<String>,
    /// Rules of the contacts, keyed as in the file (`{"conflict": "crm_wins"}`).
    #[serde(default)]
    pub contacts: Option<BTreeMap<String, serde_json::Value>>,
    /// Rules of the events, keyed as in the file.
    #[serde(default)]
    pub events: Option<BTreeMap<String, serde_json::Value>>,
}

/// What a create or edit asks for, from the API or a form: fields left `None` (and rules not
/// listed) stay as the file has them.
#[derive(Default)]
pub(crate) struct ConfigurationChange {
    pub active: Option<bool>,
    pub users: Option<Vec<String>>,
    pub groups: Option<Vec<String>>,
    pub rules: Vec<RuleEdit>,
}

impl TryFrom<ConfigurationInput> for ConfigurationChange {
    type Error = ConsoleError;

    fn try_from(input: ConfigurationInput) -> Result<Self, ConsoleError> {
        let mut rules = Vec::new();
        for (kind, direction) in [
            ("contacts", input.contacts_direction),
            ("events", input.events_direction),
        ] {
            if let Some(d) = direction
                .map(|d| d.trim().to_owned())
                .filter(|d| !d.is_empty())
            {
                rules.push(RuleEdit {
                    kind,
                    table: None,
                    key: "direction".to_owned(),
                    value: Some(d.as_str().into()),
                });
            }
        }
        for (kind, object) in [("contacts", input.contacts), ("events", input.events)] {
            if let Some(object) = object {
                rules.extend(rule_settings::from_json(kind, &object)?);
            }
        }
        Ok(ConfigurationChange {
            active: input.active,
            users: input.users,
            groups: input.groups,
            rules,
        })
    }
}

/// A configuration that sets nothing but its name, as the loader reads one: every rule at
/// its default.
fn fresh_configuration(name: &str) -> SyncConfiguration {
    SyncConfiguration {
        name: name.to_owned(),
        active: true,
        contacts: KindRules::default_for(ItemKind::Contact),
        contact_scope: ContactScope::Owned,
        contact_condition: None,
        events: KindRules::default_for(ItemKind::Event),
        users: BTreeSet::new(),
        groups: BTreeSet::new(),
    }
}

fn valid_configuration_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Creates (`create`) or edits a configuration in `exsync.toml`. The loader's checks apply,
/// so assigning a user who already has an individual assignment elsewhere is refused.
/// Answers with the configuration as it now reads back.
pub(crate) fn apply_configuration(
    st: &AppState,
    caller: &Caller,
    name: &str,
    input: ConfigurationChange,
    create: bool,
) -> ConsoleResult<Option<SyncConfiguration>> {
    let name = name.trim().to_owned();
    if !valid_configuration_name(&name) {
        return Err(ConsoleError::bad_request(
            "a configuration name is 1-64 letters, digits, '_' or '-'",
        ));
    }
    let current = st.config.load()?;
    let exists = current.configuration(&name).is_some();
    if create && exists {
        return Err(ConsoleError::new(
            StatusCode::CONFLICT,
            format!("configuration `{name}` already exists"),
        ));
    }
    if !create && !exists {
        return Err(ConsoleError::not_found(format!(
            "no configuration `{name}`"
        )));
    }
    let clean = |list: Vec<String>, lower: bool| -> Vec<String> {
        let set: BTreeSet<String> = list
            .iter()
            .flat_map(|s| s.split([',', '\n', '\r']))
            .map(|s| {
                if lower {
                    s.trim().to_lowercase()
                } else {
                    s.trim().to_owned()
                }
            })
            .filter(|s| !s.is_empty())
            .collect();
        set.into_iter().collect()
    };
    let users = input.users.map(|u| clean(u, true));
    let groups = input.groups.map(|g| clean(g, false));
    // A form posts every rule of its row; writing the ones that did not change would pin
    // today's defaults into the file, so only what differs from what applies is written. A
    // new configuration starts from the defaults.
    let fresh = fresh_configuration(&name);
    let applies = serde_json::to_value(ConfigurationView::of(
        current.configuration(&name).unwrap_or(&fresh),
    ))
    .ok();
    let rules: Vec<&RuleEdit> = input
        .rules
        .iter()
        .filter(|e| applies.as_ref().is_none_or(|a| !e.already(e.shown_in(a))))
        .collect();
    let checked = st.config.edit(|doc| {
        let t = table_at(doc, &["configurations", &name])?;
        if let Some(active) = input.active {
            set_bool(t, "active", active);
        } else if create {
            set_bool(t, "active", true);
        }
        if let Some(u) = &users {
            set_list(t, "users", u);
        }
        if let Some(g) = &groups {
            set_list(t, "groups", g);
        }
        for edit in &rules {
            set_value(
                table_at(doc, &edit.path(&name))?,
                &edit.key,
                edit.value.clone(),
            );
        }
        Ok(())
    })?;
    st.audit(
        &caller.actor(),
        if create {
            "configuration.create"
        } else {
            "configuration.update"
        },
        json!({
            "name": name,
            "active": input.active,
            "users": users,
            "groups": groups,
            "rules": rules.iter().map(|e| e.audited()).collect::<serde_json::Map<_, _>>(),
        }),
    );
    Ok(checked.configuration(&name).cloned())
}

// ---- JSON ------------------------------------------------------------------------------------

pub(crate) async fn list_json(State(st): State<AppState>) -> ConsoleResult<Response> {
    let config = st.config.load()?;
    let views: Vec<ConfigurationView> = config
        .configurations
        .iter()
        .map(ConfigurationView::of)
        .collect();
    Ok(Json(views).into_response())
}

pub(crate) async fn create_json(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(input): Json<ConfigurationInput>,
) -> ConsoleResult<Response> {
    let name = input.name.clone().unwrap_or_default();
    let saved = apply_configuration(&st, &caller, &name, input.try_into()?, true)?;
    Ok((
        StatusCode::CREATED,
        Json(saved.as_ref().map(ConfigurationView::of)),
    )
        .into_response())
}

pub(crate) async fn update_json(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Json(input): Json<ConfigurationInput>,
) -> ConsoleResult<Response> {
    let saved = apply_configuration(&st, &caller, &name, input.try_into()?, false)?;
    Ok(Json(saved.as_ref().map(ConfigurationView::of)).into_response())
}

#[derive(Deserialize)]
pub(crate) struct AssignmentQuery {
    pub user: String,
    #[serde(default)]
    pub groups: Option<String>,
}

pub(crate) fn groups_of(text: Option<&str>) -> BTreeSet<String> {
    text.unwrap_or_default()
        .split(',')
        .map(|g| g.trim().to_owned())
        .filter(|g| !g.is_empty())
        .collect()
}

pub(crate) async fn assignment_json(
    State(st): State<AppState>,
    Query(q): Query<AssignmentQuery>,
) -> ConsoleResult<Json<AssignmentView>> {
    let config = st.config.load()?;
    Ok(Json(AssignmentView::explain(
        &config.configurations,
        &UserKey::from_email(&q.user),
        &groups_of(q.groups.as_deref()),
    )))
}

// ---- page ------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub(crate) struct ExplainQuery {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    groups: Option<String>,
}

/// `form` is the id of the form the select belongs to when it sits outside it, or empty.
fn direction_select(name: &str, current: &str, form: &str) -> String {
    rule_settings::select(name, form, rule_settings::directions(), current)
}

impl RulesView<'_> {
    /// How the kind settles fields both records hold differently, under its direction
    /// select; `kind` is `contacts` or `events`.
    fn render_settling(&self, kind: &str) -> String {
        format!(
            r#"<div class="settling muted" data-kind="{kind}">conflict: <span class="conflict">{}</span>; first link: <span class="first-link">{}</span></div>"#,
            esc(conflict_name(self.conflict)),
            esc(first_link_name(self.first_link)),
        )
    }

    /// Each rule and field mapping of the kind as the form shows it: what the admin typed
    /// into a refused form, else the value the file gives it.
    fn render_rules(&self, kind: &str, form: &str, typed: Option<&ConfigurationForm>) -> String {
        let shown = serde_json::to_value(self).unwrap_or_default();
        let value = |name: String, shown: &serde_json::Value| {
            if let Some(t) = typed.and_then(|f| f.get(&name)) {
                return t.to_owned();
            }
            match shown {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            }
        };
        let mut out = rule_settings::render_fields(kind, form, typed.is_some(), |key| {
            value(format!("{kind}_{key}"), &shown[key])
        });
        out.push_str(&rule_settings::render_mappings(
            kind,
            form,
            typed.is_some(),
            |field| {
                value(
                    rule_settings::mapping_form_name(kind, field),
                    &shown[rule_settings::FIELDS][field],
                )
            },
        ));
        out
    }
}

impl ConfigurationView<'_> {
    /// One row of the table; `i` is its position. `typed` is what the admin posted for this
    /// row when the server refused it: shown instead of the file's values.
    fn render_row(&self, caller: &Caller, i: usize, typed: Option<&ConfigurationForm>) -> String {
        let active = typed
            .and_then(|f| f.get("active"))
            .map_or(self.active, |a| a == "true");
        let users = typed
            .and_then(|f| f.get("users"))
            .map_or_else(|| self.users.join(", "), str::to_owned);
        let groups = typed
            .and_then(|f| f.get("groups"))
            .map_or_else(|| self.groups.join(", "), str::to_owned);
        let contacts = typed
            .and_then(|f| f.get("contacts_direction"))
            .unwrap_or(direction_name(self.contacts.direction));
        let events = typed
            .and_then(|f| f.get("events_direction"))
            .unwrap_or(direction_name(self.events.direction));
        // The fields sit in other cells than their form and join it by id. The id is the
        // row's position, not the name, which a hand-edited file may fill with anything.
        let form = format!("cfg-{i}");
        format!(
            r#"<tr data-configuration="{n}">
<td>{n}</td>
<td><select name="active" form="{f}"><option value="true"{a1}>active</option><option value="false"{a0}>inactive</option></select></td>
<td><textarea name="users" rows="2" form="{f}">{users}</textarea></td>
<td><textarea name="groups" rows="2" form="{f}">{groups}</textarea></td>
<td>{cd}{cs}{cr}</td><td>{ed}{es}{er}</td>
<td><form method="post" action="/configurations/{s}" id="{f}">{csrf}<button type="submit" class="save-configuration">Save</button></form></td></tr>"#,
            n = esc(self.name),
            s = seg(self.name),
            f = esc(&form),
            csrf = csrf_field(caller),
            a1 = if active { " selected" } else { "" },
            a0 = if active { "" } else { " selected" },
            users = esc(&users),
            groups = esc(&groups),
            cd = direction_select("contacts_direction", contacts, &form),
            ed = direction_select("events_direction", events, &form),
            cs = self.contacts.render_settling("contacts"),
            es = self.events.render_settling("events"),
            cr = self.contacts.render_rules("contacts", &form, typed),
            er = self.events.render_rules("events", &form, typed),
        )
    }
}

impl AssignmentView {
    /// A row of the per-user table.
    fn render_row(&self) -> String {
        format!(
            r#"<tr data-user="{}"><td>{}</td><td>{}</td><td class="reason">{}</td></tr>"#,
            esc(&self.user),
            address(&self.user),
            esc(self.configuration.as_deref().unwrap_or("(none)")),
            esc(&self.reasons.join("; ")),
        )
    }

    /// The answer to "Check a user".
    fn render_explanation(&self) -> String {
        format!(
            r#"<div id="explanation"><p><strong>{}</strong>: {}</p><ul>{}</ul></div>"#,
            esc(&self.user),
            esc(self
                .configuration
                .as_deref()
                .unwrap_or("no configuration applies")),
            self.reasons
                .iter()
                .map(|r| format!("<li>{}</li>", esc(r)))
                .collect::<String>()
        )
    }
}

fn configurations_page(
    st: &AppState,
    caller: &Caller,
    explain: &ExplainQuery,
    message: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
    kept: Option<&Kept>,
) -> Response {
    let config = match st.config.load() {
        Ok(c) => c,
        Err(e) => return internal(caller, e),
    };
    let mut body = String::new();
    body.push_str(&notice(message));
    body.push_str(&error_box(error));
    body.push_str(r#"<table id="configurations"><tr><th>Name</th><th>Active</th><th>Users</th><th>Groups</th><th>Contacts</th><th>Events</th><th></th></tr>"#);
    for (i, c) in config.configurations.iter().enumerate() {
        let typed = kept
            .filter(|k| k.name.as_deref() == Some(c.name.as_str()))
            .map(|k| &k.form);
        body.push_str(&ConfigurationView::of(c).render_row(caller, i, typed));
    }
    let typed_new = kept.filter(|k| k.name.is_none()).map(|k| &k.form);
    let typed = |key: &str| esc(typed_new.and_then(|k| k.get(key)).unwrap_or_default());
    body.push_str("</table>");
    // The new configuration's rules start at what a configuration that sets none gets.
    let fresh = fresh_configuration("");
    let fresh = ConfigurationView::of(&fresh);
    let new_form = "new-configuration";
    body.push_str(&format!(
        r#"<h2>New configuration</h2><form method="post" action="/configurations" id="{new_form}">{}
<label>Name <input type="text" name="name" id="new-name" required pattern="[A-Za-z0-9_-]+" value="{}"></label>
<label>Users (addresses, comma-separated) <input type="text" name="users" id="new-users" value="{}"></label>
<label>Groups (Salesforce profiles, comma-separated) <input type="text" name="groups" id="new-groups" value="{}"></label>
<div class="new-rules"><div data-kind="contacts"><label>Contacts {}</label>{}</div><div data-kind="events"><label>Events {}</label>{}</div></div>
<button type="submit" id="create-configuration">Create</button></form>"#,
        csrf_field(caller),
        typed("name"),
        typed("users"),
        typed("groups"),
        direction_select(
            "contacts_direction",
            typed_new
                .and_then(|f| f.get("contacts_direction"))
                .unwrap_or("both"),
            ""
        ),
        fresh.contacts.render_rules("contacts", new_form, typed_new),
        direction_select(
            "events_direction",
            typed_new
                .and_then(|f| f.get("events_direction"))
                .unwrap_or("both"),
            ""
        ),
        fresh.events.render_rules("events", new_form, typed_new),
    ));

    // Every user anyone assigned or that has synced, with what applies to them: a synced
    // user's group is the one their last pass found them in (only a pass reads CRM
    // profiles), as on the status page.
    let mut known: BTreeMap<UserKey, BTreeSet<String>> = config
        .configurations
        .iter()
        .flat_map(|c| c.users.iter().map(|u| (u.clone(), BTreeSet::new())))
        .collect();
    if let Ok(users) = st.store.list_users() {
        for status in users {
            let groups = last_group(&status).unwrap_or_default();
            known.insert(status.user, groups);
        }
    }
    body.push_str(r#"<h2>Effective configuration per user</h2><p class="muted">An individual assignment beats a group one. A group assignment shows once a pass has read the user's Salesforce profile; check any user and profile below.</p><table id="effective"><tr><th>User</th><th>Configuration</th><th>How</th></tr>"#);
    for (user, groups) in &known {
        body.push_str(&AssignmentView::explain(&config.configurations, user, groups).render_row());
    }
    body.push_str("</table>");
    body.push_str(&format!(
        r#"<h3>Check a user</h3><form method="get" action="/configurations" id="explain-form">
<label>User <input type="text" name="user" value="{}"></label>
<label>Groups, comma-separated <input type="text" name="groups" value="{}"></label>
<button type="submit">Explain</button></form>"#,
        esc(explain.user.as_deref().unwrap_or("")),
        esc(explain.groups.as_deref().unwrap_or("")),
    ));
    if let Some(user) = explain.user.as_deref().filter(|u| !u.trim().is_empty()) {
        let a = AssignmentView::explain(
            &config.configurations,
            &UserKey::from_email(user),
            &groups_of(explain.groups.as_deref()),
        );
        body.push_str(&a.render_explanation());
    }
    (status, page("Configurations", Some(caller), &body)).into_response()
}

pub(crate) async fn get_page(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ExplainQuery>,
) -> Response {
    configurations_page(&st, &caller, &q, None, None, StatusCode::OK, None)
}

/// The form's fields by name: all text, lists comma- or line-separated, each rule named
/// `<kind>_<key>` (`events_past_days`). Kept as posted so a refused form shows it again.
#[derive(Deserialize, Clone, Default)]
#[serde(transparent)]
pub(crate) struct ConfigurationForm(BTreeMap<String, String>);

impl ConfigurationForm {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

impl From<&ConfigurationForm> for ConfigurationChange {
    fn from(f: &ConfigurationForm) -> Self {
        ConfigurationChange {
            active: f.get("active").map(|a| a == "true"),
            users: f.get("users").map(|u| vec![u.to_owned()]),
            groups: f.get("groups").map(|g| vec![g.to_owned()]),
            rules: rule_settings::from_form(&f.0),
        }
    }
}

/// What the admin typed into a form the server refused, shown again in place of the file's
/// values so nothing has to be typed twice.
pub(crate) struct Kept {
    /// The configuration whose row was posted; `None` for the new-configuration form.
    name: Option<String>,
    form: ConfigurationForm,
}

fn after_change<T>(
    st: &AppState,
    caller: &Caller,
    result: ConsoleResult<T>,
    done: &str,
    kept: Kept,
) -> Response {
    let q = ExplainQuery::default();
    match result {
        Ok(_) => configurations_page(st, caller, &q, Some(done), None, StatusCode::OK, None),
        Err(e) => configurations_page(
            st,
            caller,
            &q,
            None,
            Some(&e.message),
            e.status,
            Some(&kept),
        ),
    }
}

pub(crate) async fn create_form(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Form(form): Form<ConfigurationForm>,
) -> Response {
    let name = form.get("name").unwrap_or_default().to_owned();
    let result = apply_configuration(&st, &caller, &name, (&form).into(), true);
    let kept = Kept { name: None, form };
    after_change(
        &st,
        &caller,
        result,
        &format!("Configuration {name} created."),
        kept,
    )
}

pub(crate) async fn update_form(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Form(form): Form<ConfigurationForm>,
) -> Response {
    let result = apply_configuration(&st, &caller, &name, (&form).into(), false);
    let kept = Kept {
        name: Some(name.clone()),
        form,
    };
    after_change(
        &st,
        &caller,
        result,
        &format!("Configuration {name} saved."),
        kept,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use exsync_core::config::{configuration_value, Window};

    fn sample(condition: Option<&str>, window: Option<Window>) -> SyncConfiguration {
        let mut contacts = KindRules::default_for(ItemKind::Contact);
        contacts.fields.remove("first_name");
        let mut events = KindRules::default_for(ItemKind::Event);
        events.window = window;
        events.direction = Direction::CrmToExchange;
        SyncConfiguration {
            name: "sales".to_owned(),
            active: true,
            contacts,
            contact_scope: ContactScope::Visible,
            contact_condition: condition.map(str::to_owned),
            events,
            users: [UserKey::from_email("a@b.test")].into_iter().collect(),
            groups: ["Sales".to_owned()].into_iter().collect(),
        }
    }

    /// A new configuration's form starts at, and its save is compared with, what the loader
    /// gives a configuration that sets no rule.
    #[test]
    fn a_fresh_configuration_is_what_the_loader_gives_one_that_sets_nothing() {
        let text =
            "[store]\npath = \"state.db\"\n[exchange]\nservice_account = \"svc@contoso.test\"\n\
                    [crm]\nclient_id = \"c\"\nusername = \"i@contoso.test\"\n\
                    [configurations.bare]\ngroups = [\"G\"]\n";
        let loaded = exsync_core::config::parse(text, std::path::Path::new("exsync.toml"))
            .map_err(|e| e.to_string());
        let loaded = loaded.as_ref().map(|c| c.configuration("bare"));
        let mut fresh = fresh_configuration("bare");
        fresh.groups.insert("G".to_owned());
        assert_eq!(loaded, Ok(Some(&fresh)));
    }

    /// The view must answer what the API answered when it built the configuration from
    /// exsync-core's rendering of the file layout, byte for byte.
    #[test]
    fn the_view_serialises_as_the_rendered_file_layout() -> Result<(), serde_json::Error> {
        let mut policy = sample(
            Some("Department = 'x'"),
            Some(Window {
                past_days: 7,
                future_days: 90,
            }),
        );
        policy.events.first_link = FirstLink::Policy;
        for c in [sample(None, None), policy] {
            let mut old = serde_json::to_value(configuration_value(&c))?;
            if let serde_json::Value::Object(map) = &mut old {
                map.insert("name".to_owned(), json!(c.name));
            }
            assert_eq!(
                serde_json::to_string(&ConfigurationView::of(&c))?,
                serde_json::to_string(&old)?
            );
        }
        Ok(())
    }
}
