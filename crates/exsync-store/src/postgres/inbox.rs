//! The org-wide CRM read shared through the database: the worker holding the read's lease
//! puts what it routed into each user's inbox and moves the org cursors in the same
//! transaction; each user's pass, on whichever worker, takes its changes from there.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use exsync_core::plan::Change;
use exsync_core::UserKey;
use postgres::Client;

use super::codec::Ctx;
use super::commit::{only_org_cursors, write_cursor};
use super::leases::{self, Fence};
use super::users::insert_user;
use crate::error::{StoreError, StoreResult};
use crate::roles::{InboxEntry, LeaseScope, RoutedChange, ORG_CRM_READ};
use crate::sqlite::codec::{limit as sql_limit, parse_kind, time_text, Decode};
use crate::sqlite::users::check_key;
use crate::types::CursorAdvance;

pub(super) fn deliver(
    client: &mut Client,
    routed: &[RoutedChange],
    advances: &[CursorAdvance],
    at: &DateTime<Utc>,
    fence: &Fence,
) -> StoreResult<u64> {
    const OP: &str = "deliver the CRM read";
    only_org_cursors(OP, advances)?;
    let mut rows = Vec::with_capacity(routed.len());
    for r in routed {
        check_key(OP, &r.user)?;
        let refuse = |what: &str, e: serde_json::Error| StoreError::InvalidInput {
            op: OP,
            reason: format!("a routed change's {what} cannot be stored: {e}"),
        };
        let change = serde_json::to_string(&r.change).map_err(|e| refuse("record", e))?;
        let notes = serde_json::to_string(&r.notes).map_err(|e| refuse("notes", e))?;
        rows.push((r, change, notes));
    }
    let at = time_text(at);
    let mut tx = client.transaction().ctx(OP, None)?;
    leases::check(
        &mut tx,
        OP,
        &LeaseScope::Org(ORG_CRM_READ.to_owned()),
        fence,
    )?;
    let users: BTreeSet<&UserKey> = routed.iter().map(|r| &r.user).collect();
    for user in users {
        insert_user(&mut tx, user, &at).ctx(OP, Some(user))?;
    }
    let insert = tx
        .prepare(
            "INSERT INTO crm_inbox (user_key, kind, change, notes, routed_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .ctx(OP, None)?;
    for (r, change, notes) in &rows {
        tx.execute(
            &insert,
            &[&r.user.as_str(), &r.kind.as_str(), change, notes, &at],
        )
        .ctx(OP, Some(&r.user))?;
    }
    for advance in advances {
        write_cursor(&mut tx, advance, &at).ctx(OP, None)?;
    }
    tx.commit().ctx(OP, None)?;
    Ok(rows.len() as u64)
}

pub(super) fn inbox(
    client: &mut Client,
    user: &UserKey,
    limit: usize,
) -> StoreResult<Vec<InboxEntry>> {
    const OP: &str = "read the CRM inbox";
    let u = Some(user);
    let rows = client
        .query(
            "SELECT id, kind, change, notes FROM crm_inbox WHERE user_key = $1 ORDER BY id LIMIT $2",
            &[&user.as_str(), &sql_limit(limit)],
        )
        .ctx(OP, u)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: i64 = row.try_get(0).ctx(OP, u)?;
        let kind: String = row.try_get(1).ctx(OP, u)?;
        let change: String = row.try_get(2).ctx(OP, u)?;
        let notes: String = row.try_get(3).ctx(OP, u)?;
        let change: Change = serde_json::from_str(&change)
            .map_err(|e| format!("routed change {id} is unreadable: {e}"))
            .decoded(OP, u)?;
        let notes: Vec<String> = serde_json::from_str(&notes)
            .map_err(|e| format!("routed change {id}'s notes are unreadable: {e}"))
            .decoded(OP, u)?;
        out.push(InboxEntry {
            id,
            routed: RoutedChange {
                user: user.clone(),
                kind: parse_kind(&kind).decoded(OP, u)?,
                change,
                notes,
            },
        });
    }
    Ok(out)
}

pub(super) fn settle(
    client: &mut Client,
    user: &UserKey,
    ids: &[i64],
    fence: &Fence,
) -> StoreResult<u64> {
    const OP: &str = "settle the CRM inbox";
    let u = Some(user);
    let mut tx = client.transaction().ctx(OP, u)?;
    leases::check(&mut tx, OP, &LeaseScope::User(user.clone()), fence)?;
    let removed = tx
        .execute(
            "DELETE FROM crm_inbox WHERE user_key = $1 AND id = ANY($2)",
            &[&user.as_str(), &ids],
        )
        .ctx(OP, u)?;
    tx.commit().ctx(OP, u)?;
    Ok(removed)
}
