//! Where each automatically routed mailbox was last found, on SQLite.

use exsync_core::UserKey;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::codec::{non_empty, parse_time, time_text, Ctx, Decode};
use super::users::{check_key, insert_user};
use crate::error::StoreResult;
use crate::types::{MailboxRoute, ROUTE_TEXT_MAX};

const SELECT: &str = "SELECT user_key, backend, evidence, checked_at, recheck FROM mailbox_routes";

type Raw = (String, String, String, String, Option<String>);

fn raw(row: &Row<'_>) -> rusqlite::Result<Raw> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

pub(crate) fn decode(raw: Raw) -> Result<MailboxRoute, String> {
    let (user, backend, evidence, checked_at, recheck) = raw;
    Ok(MailboxRoute {
        user: UserKey::parse(&user).map_err(|e| format!("route of {user:?}: {e}"))?,
        backend,
        evidence,
        checked_at: parse_time(&checked_at)?,
        recheck,
    })
}

/// Text kept whole up to [`ROUTE_TEXT_MAX`] characters: evidence comes from a server's answer.
pub(crate) fn bounded(text: &str) -> String {
    text.chars().take(ROUTE_TEXT_MAX).collect()
}

pub(crate) fn mailbox_route(
    conn: &Connection,
    user: &UserKey,
) -> StoreResult<Option<MailboxRoute>> {
    const OP: &str = "read mailbox route";
    let u = Some(user);
    let row = conn
        .prepare_cached(&format!("{SELECT} WHERE user_key = ?1"))
        .ctx(OP, u)?
        .query_row(params![user.as_str()], raw)
        .optional()
        .ctx(OP, u)?;
    row.map(|r| decode(r).decoded(OP, u)).transpose()
}

pub(crate) fn mailbox_routes(conn: &Connection) -> StoreResult<Vec<MailboxRoute>> {
    const OP: &str = "list mailbox routes";
    let rows = conn
        .prepare_cached(&format!("{SELECT} ORDER BY user_key"))
        .ctx(OP, None)?
        .query_map([], raw)
        .ctx(OP, None)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .ctx(OP, None)?;
    rows.into_iter()
        .map(|r| decode(r).decoded(OP, None))
        .collect()
}

pub(crate) fn put_mailbox_route(conn: &Connection, route: &MailboxRoute) -> StoreResult<()> {
    const OP: &str = "store mailbox route";
    let u = Some(&route.user);
    check_key(OP, &route.user)?;
    non_empty(OP, "backend", &route.backend)?;
    let at = time_text(&route.checked_at);
    insert_user(conn, &route.user, &at).ctx(OP, u)?;
    conn.prepare_cached(
        "INSERT INTO mailbox_routes (user_key, backend, evidence, checked_at, recheck) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (user_key) DO UPDATE SET \
         backend = excluded.backend, evidence = excluded.evidence, \
         checked_at = excluded.checked_at, recheck = excluded.recheck",
    )
    .ctx(OP, u)?
    .execute(params![
        route.user.as_str(),
        route.backend,
        bounded(&route.evidence),
        at,
        route.recheck.as_deref().map(bounded),
    ])
    .ctx(OP, u)?;
    Ok(())
}

pub(crate) fn recheck_mailbox_route(
    conn: &Connection,
    user: &UserKey,
    why: &str,
) -> StoreResult<bool> {
    const OP: &str = "mark mailbox route for re-check";
    let u = Some(user);
    non_empty(OP, "reason", why)?;
    let changed = conn
        .prepare_cached("UPDATE mailbox_routes SET recheck = ?2 WHERE user_key = ?1")
        .ctx(OP, u)?
        .execute(params![user.as_str(), bounded(why)])
        .ctx(OP, u)?;
    Ok(changed > 0)
}
