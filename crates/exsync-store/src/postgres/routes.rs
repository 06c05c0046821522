//! Where each automatically routed mailbox was last found, on PostgreSQL.

use exsync_core::UserKey;
use postgres::{Client, Row};

use super::codec::Ctx;
use super::users::insert_user;
use crate::error::StoreResult;
use crate::sqlite::codec::{non_empty, time_text, Decode};
use crate::sqlite::routes::{bounded, decode};
use crate::sqlite::users::check_key;
use crate::types::MailboxRoute;

const SELECT: &str = "SELECT user_key, backend, evidence, checked_at, recheck FROM mailbox_routes";

fn raw(row: &Row) -> Result<(String, String, String, String, Option<String>), postgres::Error> {
    Ok((
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
    ))
}

pub(super) fn mailbox_route(
    client: &mut Client,
    user: &UserKey,
) -> StoreResult<Option<MailboxRoute>> {
    const OP: &str = "read mailbox route";
    let u = Some(user);
    let row = client
        .query_opt(&format!("{SELECT} WHERE user_key = $1"), &[&user.as_str()])
        .ctx(OP, u)?;
    row.map(|r| decode(raw(&r).ctx(OP, u)?).decoded(OP, u))
        .transpose()
}

pub(super) fn mailbox_routes(client: &mut Client) -> StoreResult<Vec<MailboxRoute>> {
    const OP: &str = "list mailbox routes";
    client
        .query(&format!("{SELECT} ORDER BY user_key"), &[])
        .ctx(OP, None)?
        .iter()
        .map(|r| decode(raw(r).ctx(OP, None)?).decoded(OP, None))
        .collect()
}

pub(super) fn put_mailbox_route(client: &mut Client, route: &MailboxRoute) -> StoreResult<()> {
    const OP: &str = "store mailbox route";
    let u = Some(&route.user);
    check_key(OP, &route.user)?;
    non_empty(OP, "backend", &route.backend)?;
    let at = time_text(&route.checked_at);
    let mut tx = client.transaction().ctx(OP, u)?;
    insert_user(&mut tx, &route.user, &at).ctx(OP, u)?;
    tx.execute(
        "INSERT INTO mailbox_routes (user_key, backend, evidence, checked_at, recheck) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_key) DO UPDATE SET \
         backend = excluded.backend, evidence = excluded.evidence, \
         checked_at = excluded.checked_at, recheck = excluded.recheck",
        &[
            &route.user.as_str(),
            &route.backend,
            &bounded(&route.evidence),
            &at,
            &route.recheck.as_deref().map(bounded),
        ],
    )
    .ctx(OP, u)?;
    tx.commit().ctx(OP, u)?;
    Ok(())
}

pub(super) fn recheck_mailbox_route(
    client: &mut Client,
    user: &UserKey,
    why: &str,
) -> StoreResult<bool> {
    const OP: &str = "mark mailbox route for re-check";
    let u = Some(user);
    non_empty(OP, "reason", why)?;
    let changed = client
        .execute(
            "UPDATE mailbox_routes SET recheck = $2 WHERE user_key = $1",
            &[&user.as_str(), &bounded(why)],
        )
        .ctx(OP, u)?;
    Ok(changed > 0)
}
