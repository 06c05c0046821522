//! The org's first CRM read, routed to its users on disk. On the org's first pass (or once its
//! cursor is gone) every user's records must be read; one org-wide paged read costs a query per
//! page, where a read per user would cost one per user and kind. Its pages are routed to their
//! users as they come and spilled here, into a private temporary SQLite database, so memory
//! stays flat whatever the org's size; each user's pass then reads its own records back from it
//! in slices. Nothing here needs to survive a crash: the org cursor moves only after every
//! user's pass is committed, so the next pass reads the CRM again.

use std::sync::{Mutex, MutexGuard, PoisonError};

use exsync_core::plan::Change;
use exsync_core::{ItemKind, UserKey};
use rusqlite::{params, Connection};

use super::stage::{scratch_database, sql, StageError};

type Result<T, E = StageError> = std::result::Result<T, E>;

/// The error of a row that did not turn into JSON or back; the row is named only then.
fn json(op: &'static str, id: impl Fn() -> String) -> impl FnOnce(serde_json::Error) -> StageError {
    move |source| StageError::Json {
        op,
        id: id(),
        source,
    }
}

const SCHEMA: &str = "
CREATE TABLE routed (
    seq INTEGER PRIMARY KEY,
    user TEXT NOT NULL,
    kind TEXT NOT NULL,
    change TEXT NOT NULL,
    notes TEXT NOT NULL
);
CREATE INDEX routed_by_user ON routed (user, kind, seq);
";

/// One CRM change routed to a user, with what had to be cut from it to fit Exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    /// Where to continue reading the user's records after this one.
    pub seq: i64,
    /// The change, as the CRM side reported it (or as routing made it: out of scope for a
    /// user who holds a copy of a record given to someone else).
    pub change: Change,
    /// What had to be cut from the record (see `exsync_core::Contact::sanitize`).
    pub notes: Vec<String>,
    /// `change` as the spool holds it, which is how the stage holds it too
    /// ([`super::stage::Stage::put_stored`]): staged as read, it is not written out again.
    pub stored: String,
}

/// The routed records of the org's first read (see the module comment). Shared by every
/// user's pass of that run.
#[derive(Debug)]
pub struct Spool {
    // Behind a lock because user passes run as concurrent tasks; each holds it for one
    // statement at a time.
    db: Mutex<Connection>,
}

impl Spool {
    /// An empty spool in a private temporary database that SQLite deletes when it is dropped.
    pub fn new() -> Result<Spool> {
        Ok(Spool {
            db: Mutex::new(scratch_database(SCHEMA)?),
        })
    }

    // A panic while the lock was held cannot have stopped SQLite mid-call, so the connection
    // is still sound.
    fn db(&self) -> MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds one page of routed changes of `kind`, in the order read.
    pub fn put(&self, kind: ItemKind, routed: &[(UserKey, Change, Vec<String>)]) -> Result<()> {
        let op = "spool put";
        let mut db = self.db();
        let tx = db.transaction().map_err(sql(op))?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO routed (user, kind, change, notes) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(sql(op))?;
            for (user, change, notes) in routed {
                let id = || change.id().to_string();
                let change = super::scratch_json::to_text(change).map_err(json(op, id))?;
                let notes = serde_json::to_string(notes).map_err(json(op, id))?;
                insert
                    .execute(params![user.as_str(), kind.as_str(), change, notes])
                    .map_err(sql(op))?;
            }
        }
        tx.commit().map_err(sql(op))
    }

    /// Up to `limit` of the changes routed to `user` for `kind`, after `after` (from the
    /// start when `None`), in the order read.
    pub fn page(
        &self,
        user: &UserKey,
        kind: ItemKind,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Routed>> {
        let op = "spool page";
        let db = self.db();
        // The limit is written, not bound: a bound one is parsed again each call (see
        // `Stage::paged`).
        let mut select = db
            .prepare_cached(&format!(
                "SELECT seq, change, notes FROM routed
                 WHERE user = ?1 AND kind = ?2 AND seq > ?3 ORDER BY seq LIMIT {limit}"
            ))
            .map_err(sql(op))?;
        let rows = select
            .query_map(
                params![user.as_str(), kind.as_str(), after.unwrap_or(0)],
                |row| Ok((row.get(0)?, row.get::<_, String>(1)?, row.get(2)?)),
            )
            .map_err(sql(op))?;
        let mut page = Vec::new();
        for row in rows {
            let (seq, stored, notes): (i64, String, String) = row.map_err(sql(op))?;
            let change =
                super::scratch_json::from_text(&stored).map_err(json(op, || format!("#{seq}")))?;
            let notes =
                serde_json::from_str(&notes).map_err(json(op, || change.id().to_string()))?;
            page.push(Routed {
                seq,
                change,
                notes,
                stored,
            });
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use exsync_core::{CrmId, ItemId};

    fn deleted(id: &str) -> Change {
        Change::Deleted {
            id: ItemId::Crm(CrmId::new(id)),
        }
    }

    #[test]
    fn each_user_reads_back_their_own_changes_of_a_kind_in_order_and_in_pages() {
        let spool = Spool::new().unwrap();
        let (ann, bob) = (UserKey::new("ann@x.test"), UserKey::new("bob@x.test"));
        spool
            .put(
                ItemKind::Contact,
                &[
                    (ann.clone(), deleted("c1"), Vec::new()),
                    (bob.clone(), deleted("c2"), vec!["cut".into()]),
                    (ann.clone(), deleted("c3"), Vec::new()),
                ],
            )
            .unwrap();
        spool
            .put(ItemKind::Event, &[(ann.clone(), deleted("e1"), Vec::new())])
            .unwrap();
        spool
            .put(
                ItemKind::Contact,
                &[(ann.clone(), deleted("c4"), Vec::new())],
            )
            .unwrap();

        let mut ids = Vec::new();
        let mut after = None;
        loop {
            let page = spool.page(&ann, ItemKind::Contact, after, 2).unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.seq);
            ids.extend(page.into_iter().map(|r| r.change.id().as_str().to_owned()));
        }
        assert_eq!(ids, ["c1", "c3", "c4"]);
        let bobs = spool.page(&bob, ItemKind::Contact, None, 10).unwrap();
        assert_eq!(bobs.len(), 1);
        assert_eq!(bobs[0].notes, ["cut"]);
        assert!(spool
            .page(&bob, ItemKind::Event, None, 10)
            .unwrap()
            .is_empty());
    }
}
