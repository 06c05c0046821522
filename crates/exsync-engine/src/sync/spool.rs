//! The org's first CRM read, routed to its users on disk. On the org's first pass (or once its
//! cursor is gone) every user's records must be read; one org-wide paged read costs a query per
//! page, where a read per user would cost one per user and kind. Its pages are routed to their
//! users as they come and spilled here, into a private temporary SQLite database, so memory
//! stays flat whatever the org's size; each user's pass then reads its own records back from it
//! in slices. Nothing here needs to survive a crash: the org cursor moves only after every
//! user's pass is committed, so the next pass reads the CRM again.

use std::sync::{Mutex, MutexGuard, PoisonError};

use exsync_core::plan::Change;
use exsync_core::{CrmId, ExchangeId, ItemId, ItemKind, UserKey};
use rusqlite::{params, Connection};

use super::stage::{json, scratch_database, sql, StageError};

type Result<T, E = StageError> = std::result::Result<T, E>;

// Beside each change, what the user's pass needs of it without reading it: its id, whether it
// is an upsert, the record it was created from, and its match keys under the user's rules (a
// JSON array, as the stage keeps a CRM record's).
/// An id the spool wrote as its side's name and its text.
fn item_id(op: &'static str, side: &str, id: String) -> Result<ItemId> {
    match side {
        "crm" => Ok(ItemId::Crm(CrmId::new(id))),
        "exchange" => Ok(ItemId::Exchange(ExchangeId::new(id))),
        other => Err(StageError::Inconsistent {
            op,
            detail: format!("record {id} names an unknown side {other:?}"),
        }),
    }
}

const SCHEMA: &str = "
CREATE TABLE routed (
    seq INTEGER PRIMARY KEY,
    user TEXT NOT NULL,
    kind TEXT NOT NULL,
    change TEXT NOT NULL,
    notes TEXT NOT NULL,
    id TEXT NOT NULL,
    upsert INTEGER NOT NULL,
    origin_side TEXT,
    origin_id TEXT,
    keys TEXT
);
CREATE INDEX routed_by_user ON routed (user, kind, seq);
";

/// One CRM change routed to a user, to be spooled: with what had to be cut from it to fit
/// Exchange and its match keys under the user's rules.
#[derive(Debug, Clone, PartialEq)]
pub struct ToSpool {
    /// The user it is routed to.
    pub user: UserKey,
    /// The change, as the CRM side reported it (or as routing made it: out of scope for a
    /// user who holds a copy of a record given to someone else).
    pub change: Change,
    /// What had to be cut from the record (see `exsync_core::Contact::sanitize`).
    pub notes: Vec<String>,
    /// The record's match keys under the user's rules (`exsync_core::plan::record_keys`).
    pub keys: Vec<(u8, String)>,
}

/// One CRM change routed to a user, read back as the spool holds it: what the user's pass
/// needs to stage it, and the change itself unread, which the stage keeps as it is
/// ([`super::stage::Stage::put_stored`]). Parsing it ([`Routed::change`]) is left to the few
/// records whose reading needs their content.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    /// Where to continue reading the user's records after this one.
    pub seq: i64,
    /// The record's id.
    pub id: CrmId,
    /// Whether the change is an upsert (not a delete, nor out of scope, nor invalid).
    pub upsert: bool,
    /// The record it was created from, for an upsert the side tagged.
    pub origin: Option<ItemId>,
    /// Its match keys as JSON (see [`ToSpool::keys`]); `None` when it has none.
    pub keys: Option<String>,
    /// What had to be cut from the record.
    pub notes: Vec<String>,
    /// The change as the spool holds it.
    pub stored: String,
}

impl Routed {
    /// The change, read from the spool's text.
    pub fn change(&self) -> Result<Change> {
        super::scratch_json::from_text(&self.stored)
            .map_err(json("spool read", || self.id.as_str().to_owned()))
    }
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

    /// Adds one page of routed CRM changes of `kind`, in the order read.
    pub fn put(&self, kind: ItemKind, routed: &[ToSpool]) -> Result<()> {
        let op = "spool put";
        let mut db = self.db();
        let tx = db.transaction().map_err(sql(op))?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO routed
                         (user, kind, change, notes, id, upsert, origin_side, origin_id, keys)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(sql(op))?;
            for ToSpool {
                user,
                change,
                notes,
                keys,
            } in routed
            {
                let id = change.id();
                let ItemId::Crm(crm_id) = id else {
                    return Err(StageError::Inconsistent {
                        op,
                        detail: format!("{id} is not a CRM record"),
                    });
                };
                let named = || id.to_string();
                let text = super::scratch_json::to_text(change).map_err(json(op, named))?;
                let notes = serde_json::to_string(notes).map_err(json(op, named))?;
                let keys = match keys.is_empty() {
                    true => None,
                    false => Some(serde_json::to_string(keys).map_err(json(op, named))?),
                };
                let (upsert, origin) = match change {
                    Change::Upsert(item) => (true, item.origin.as_ref()),
                    _ => (false, None),
                };
                insert
                    .execute(params![
                        user.as_str(),
                        kind.as_str(),
                        text,
                        notes,
                        crm_id.as_str(),
                        upsert,
                        origin.map(|o| o.side().as_str()),
                        origin.map(ItemId::as_str),
                        keys,
                    ])
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
                "SELECT seq, change, notes, id, upsert, origin_side, origin_id, keys FROM routed
                 WHERE user = ?1 AND kind = ?2 AND seq > ?3 ORDER BY seq LIMIT {limit}"
            ))
            .map_err(sql(op))?;
        let mut rows = select
            .query(params![user.as_str(), kind.as_str(), after.unwrap_or(0)])
            .map_err(sql(op))?;
        let mut page = Vec::new();
        while let Some(row) = rows.next().map_err(sql(op))? {
            let id = CrmId::new(row.get::<_, String>(3).map_err(sql(op))?);
            let notes: String = row.get(2).map_err(sql(op))?;
            let notes = serde_json::from_str(&notes).map_err(json(op, || id.to_string()))?;
            let origin = match (
                row.get::<_, Option<String>>(5).map_err(sql(op))?,
                row.get::<_, Option<String>>(6).map_err(sql(op))?,
            ) {
                (Some(side), Some(origin)) => Some(item_id(op, &side, origin)?),
                _ => None,
            };
            page.push(Routed {
                seq: row.get(0).map_err(sql(op))?,
                id,
                upsert: row.get(4).map_err(sql(op))?,
                origin,
                keys: row.get(7).map_err(sql(op))?,
                notes,
                stored: row.get(1).map_err(sql(op))?,
            });
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use exsync_core::plan::Item;
    use exsync_core::{CrmId, ExchangeId, Fields, ItemId};

    fn deleted(user: &UserKey, id: &str, notes: &[&str]) -> ToSpool {
        ToSpool {
            user: user.clone(),
            change: Change::Deleted {
                id: ItemId::Crm(CrmId::new(id)),
            },
            notes: notes.iter().map(|n| (*n).to_owned()).collect(),
            keys: Vec::new(),
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
                    deleted(&ann, "c1", &[]),
                    deleted(&bob, "c2", &["cut"]),
                    deleted(&ann, "c3", &[]),
                ],
            )
            .unwrap();
        spool
            .put(ItemKind::Event, &[deleted(&ann, "e1", &[])])
            .unwrap();
        spool
            .put(ItemKind::Contact, &[deleted(&ann, "c4", &[])])
            .unwrap();

        let mut ids = Vec::new();
        let mut after = None;
        loop {
            let page = spool.page(&ann, ItemKind::Contact, after, 2).unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.seq);
            ids.extend(page.into_iter().map(|r| r.id.as_str().to_owned()));
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

    #[test]
    fn a_change_comes_back_with_what_staging_needs_and_reads_as_spooled() {
        let spool = Spool::new().unwrap();
        let ann = UserKey::new("ann@x.test");
        let mut fields = Fields::new();
        fields.insert("last_name".into(), "Ng \"Q\"".into());
        let upsert = Change::Upsert(Item {
            id: ItemId::Crm(CrmId::new("c1")),
            fields,
            version: Some("v1".into()),
            modified: None,
            origin: Some(ItemId::Exchange(ExchangeId::new("AAMk=="))),
        });
        let keys = vec![(1, "ng".to_owned()), (2, "ng|acme".to_owned())];
        spool
            .put(
                ItemKind::Contact,
                &[
                    ToSpool {
                        user: ann.clone(),
                        change: upsert.clone(),
                        notes: Vec::new(),
                        keys: keys.clone(),
                    },
                    deleted(&ann, "c2", &[]),
                ],
            )
            .unwrap();
        let page = spool.page(&ann, ItemKind::Contact, None, 10).unwrap();
        assert_eq!(page.len(), 2);
        let (first, second) = (&page[0], &page[1]);
        assert_eq!(first.id.as_str(), "c1");
        assert!(first.upsert);
        assert_eq!(
            first.origin,
            Some(ItemId::Exchange(ExchangeId::new("AAMk==")))
        );
        assert_eq!(
            serde_json::from_str::<Vec<(u8, String)>>(first.keys.as_deref().unwrap()).unwrap(),
            keys
        );
        assert_eq!(first.change().unwrap(), upsert);
        assert_eq!(
            first.stored,
            super::super::scratch_json::to_text(&upsert).unwrap()
        );
        assert!(!second.upsert);
        assert_eq!((second.origin.as_ref(), second.keys.as_ref()), (None, None));

        // Only CRM records are routed to users.
        let exchange = ToSpool {
            change: Change::Deleted {
                id: ItemId::Exchange(ExchangeId::new("AAMk")),
            },
            ..deleted(&ann, "c3", &[])
        };
        let err = spool.put(ItemKind::Contact, &[exchange]).unwrap_err();
        assert!(matches!(err, StageError::Inconsistent { .. }), "{err}");
    }
}
