//! What `exsync status` says of mailboxes whose backend is located automatically (`auto`):
//! the backend the service last found and why, from the state database.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use exsync_core::config::{ExsyncConfig, MailboxRouting};
use exsync_core::UserKey;
use exsync_store::{MailboxRoute, Store};
use serde_json::{json, Value};

/// The `auto` users among `users`, each with where their mailbox was last found (`None`
/// before the first lookup).
pub(crate) type AutoRoutes = BTreeMap<UserKey, Option<MailboxRoute>>;

/// Reads the routes of the users the configuration locates automatically.
pub(crate) fn auto_routes<'a>(
    config: &ExsyncConfig,
    store: &dyn Store,
    users: impl IntoIterator<Item = &'a UserKey>,
) -> anyhow::Result<AutoRoutes> {
    let Some(online) = config
        .exchange_online
        .as_ref()
        .filter(|o| o.routes_automatically())
    else {
        return Ok(AutoRoutes::new());
    };
    let mut stored: BTreeMap<UserKey, MailboxRoute> = store
        .mailbox_routes()?
        .into_iter()
        .map(|r| (r.user.clone(), r))
        .collect();
    Ok(users
        .into_iter()
        .filter(|u| online.routing_of(u.as_str()) == MailboxRouting::Auto)
        .map(|u| (u.clone(), stored.remove(u)))
        .collect())
}

/// The table's backend cell: `auto→graph`, or `auto` before the first lookup.
pub(crate) fn cell(route: Option<&MailboxRoute>) -> String {
    match route {
        Some(r) => format!("auto→{}", super::state::printable(&r.backend)),
        None => "auto".to_owned(),
    }
}

/// One line: `auto → graph (Autodiscover: routing address …, checked 3 min ago)`, and why it
/// is due to be looked up again when it is.
pub(crate) fn line(route: Option<&MailboxRoute>, now: DateTime<Utc>) -> String {
    let Some(r) = route else {
        return "auto (not located yet: the next pass asks Autodiscover)".to_owned();
    };
    let mut text = format!(
        "auto → {} ({}, checked {})",
        super::state::printable(&r.backend),
        super::state::printable(&r.evidence),
        super::state::when(r.checked_at, now)
    );
    if let Some(why) = &r.recheck {
        text.push_str(&format!(
            "; looked up again next pass: {}",
            super::state::printable(why)
        ));
    }
    text
}

/// The same for `--json`.
pub(crate) fn value(route: Option<&MailboxRoute>) -> Value {
    json!({ "rule": "auto", "route": route })
}
