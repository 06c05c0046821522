//! The scratch space of one user's pass. A pass reads a whole mailbox (and the user's CRM
//! records) page by page; keeping every record in memory would make a pass grow with the
//! mailbox. Each page is spilled here instead, into a private temporary SQLite database with a
//! small page cache, and the pass plans in slices read back from it: touched pairs a slice at
//! a time, first-sync matching over indexes ([`Candidates`]), then the records no pair holds.
//! One stage per user pass and record kind, deleted by SQLite when dropped, or emptied and kept
//! for a later pass when small ([`Stage::recycle`]); nothing in it needs to survive a crash,
//! since the next pass reads both sides again from their cursors.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};

use exsync_core::plan::{Candidates, Change, LinkReason};
use exsync_core::{CrmId, ExchangeId, ItemId, Side};
use rusqlite::types::ToSql;
use rusqlite::{params, Connection, OptionalExtension, Params, Row, Statement};

/// Why the pass's scratch database failed. The user's pass ends ([`super::pass::PassError::Stage`])
/// and the next pass reads both sides again.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// SQLite refused an operation.
    #[error("pass stage (scratch database): {op}: {source}")]
    Sqlite {
        /// Which of the stage's operations failed, for instance `new records`.
        op: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A record could not be turned into JSON to be staged, or read back from it.
    #[error("pass stage (scratch database): {op}: record {id}: {source}")]
    Json {
        /// Which of the stage's operations failed.
        op: &'static str,
        /// The record's id.
        id: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// The stage was asked for something it cannot do, such as linking two records of the same
    /// side: a bug in the caller.
    #[error("pass stage (scratch database): {op}: {detail}")]
    Inconsistent {
        /// Which of the stage's operations was asked.
        op: &'static str,
        /// What was asked, with the records involved.
        detail: String,
    },
}

type Result<T, E = StageError> = std::result::Result<T, E>;

pub(super) fn sql(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StageError {
    move |source| StageError::Sqlite { op, source }
}

/// The error of a record that did not turn into JSON or back; the record is named only then.
pub(super) fn json(
    op: &'static str,
    id: impl Fn() -> String,
) -> impl FnOnce(serde_json::Error) -> StageError {
    move |source| StageError::Json {
        op,
        id: id(),
        source,
    }
}

/// A private scratch database with `schema`, for records read during a pass (the stage, the
/// spool). An empty path is a private database in a temporary file SQLite deletes on close;
/// SQLite creates such files 0600 and unlinks them at once, so no other user can open them (a
/// test below holds it to that). A 2 MiB cache keeps memory bounded whatever the amount read,
/// and losing the file on a crash costs nothing, so no journal and no syncing. No other
/// connection ever opens it, so it is locked once for good instead of around each statement.
pub(super) fn scratch_database(schema: &str) -> Result<Connection> {
    let db = Connection::open("").map_err(sql("open"))?;
    for (pragma, value) in [
        ("cache_size", "-2048"),
        ("journal_mode", "OFF"),
        ("locking_mode", "EXCLUSIVE"),
        ("synchronous", "OFF"),
        ("temp_store", "FILE"),
    ] {
        db.pragma_update(None, pragma, value)
            .map_err(sql("configure"))?;
    }
    db.execute_batch(schema).map_err(sql("create"))?;
    // Every statement of a stage or spool stays prepared for the database's life (the default
    // of 16 is fewer than a stage uses, and a statement pushed out is parsed again).
    db.set_prepared_statement_cache_capacity(64);
    Ok(db)
}

/// Emptied stages kept for the next pass ([`Stage::recycle`]). Creating a scratch database,
/// its schema and then every statement prepared anew, was half of a no-change pass's CPU per
/// user. At most this many are kept: as many as users run at once, or nearly.
const SPARES_KEPT: usize = 16;

/// Only a stage whose file stayed this small is kept (pages of 4 KiB: 1 MiB), so the spares
/// hold little disk and memory; a large mailbox's stage costs little to create next to its
/// reading.
const SPARE_PAGES: i64 = 256;

static SPARES: Mutex<Vec<Connection>> = Mutex::new(Vec::new());

fn spares() -> MutexGuard<'static, Vec<Connection>> {
    // Pushing or popping a connection cannot be interrupted half-way by a panic.
    SPARES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One record read this pass.
#[derive(Debug, Clone, PartialEq)]
pub struct StagedRecord {
    /// The record as read.
    pub change: Change,
    /// The CRM id of the pair holding this record, when a pair holds it.
    pub pair: Option<CrmId>,
    /// Match keys as (rule, key), from `exsync_core::plan::record_keys`; empty for paired records.
    pub keys: Vec<(u8, String)>,
}

/// A record no pair holds, with the record it was matched to (and why), if any.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRecord {
    /// The unpaired record; a CRM one when it comes with a link.
    pub change: Change,
    /// The Exchange record first-sync matching linked it to, and the rule that matched; `None` when
    /// none matched.
    pub linked: Option<(Change, LinkReason)>,
}

/// A CRM record read back from a scratch database (the spool) as its stored text, with what
/// staging needs to know of it: staged so ([`Stage::put_stored`]), it is not parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    /// The record's id.
    pub id: ItemId,
    /// Whether its change is an upsert.
    pub upsert: bool,
    /// The record it was created from, for an upsert the side tagged.
    pub origin: Option<ItemId>,
    /// The CRM id of the pair holding it, when a pair holds it.
    pub pair: Option<CrmId>,
    /// Its match keys as JSON, for an unpaired upsert that has any.
    pub keys: Option<String>,
    /// The change as the scratch database holds it ([`super::scratch_json::to_text`]).
    pub stored: String,
}

/// One record as a row of `records`, and the keys that go to `keys`.
struct RecordRow<'a> {
    id: &'a ItemId,
    text: Cow<'a, str>,
    upsert: bool,
    origin: Option<&'a ItemId>,
    pair: Option<&'a CrmId>,
    /// An Exchange record's keys, for the key index.
    keys: &'a [(u8, String)],
    /// A CRM record's keys, as JSON.
    crm_keys: Option<Cow<'a, str>>,
}

// `change` is NULL for an item only listed as unchanged. `partner` is the id on the other side
// a first-sync match linked the record to. Side is 'crm'/'exchange', so (side, id) in BINARY
// order is ItemId order. The partial indexes hold only what later calls look for, so settled
// and paired records cost nothing once staging is over.
//
// Matching walks the CRM records and looks each of their keys up among the Exchange ones, so
// only Exchange keys are ever searched by key: they go to `keys` and its index. A CRM record's
// keys are only ever read with the record, so they stay in its row (`crm_keys`, a JSON array of
// [rule, key]); a first sync into an empty mailbox then writes no index at all.
const SCHEMA: &str = "
CREATE TABLE records (
    side TEXT NOT NULL,
    id TEXT NOT NULL,
    change TEXT,
    upsert INTEGER NOT NULL DEFAULT 0,
    pair TEXT,
    origin_side TEXT,
    origin_id TEXT,
    done INTEGER NOT NULL DEFAULT 0,
    partner TEXT,
    reason TEXT,
    crm_keys TEXT,
    UNIQUE (side, id)
);
CREATE INDEX records_open ON records (side, id) WHERE pair IS NULL AND done = 0;
CREATE INDEX records_pair ON records (pair, side, id) WHERE pair IS NOT NULL;
CREATE INDEX records_origin ON records (origin_side, origin_id, side, id)
    WHERE origin_id IS NOT NULL;
CREATE TABLE keys (
    side TEXT NOT NULL,
    id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    rule INTEGER NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (side, id, seq)
) WITHOUT ROWID;
CREATE INDEX keys_by_key ON keys (rule, key, side, id);
";

/// Inserts of one to four keys of one record in one statement (a record has about three):
/// one statement per record instead of one per key.
const KEYS_AT_ONCE: [&str; 4] = [
    "INSERT INTO keys (side, id, seq, rule, key) VALUES (?1, ?2, ?3, ?4, ?5)",
    "INSERT INTO keys (side, id, seq, rule, key) VALUES (?1, ?2, ?3, ?4, ?5),
         (?1, ?2, ?6, ?7, ?8)",
    "INSERT INTO keys (side, id, seq, rule, key) VALUES (?1, ?2, ?3, ?4, ?5),
         (?1, ?2, ?6, ?7, ?8), (?1, ?2, ?9, ?10, ?11)",
    "INSERT INTO keys (side, id, seq, rule, key) VALUES (?1, ?2, ?3, ?4, ?5),
         (?1, ?2, ?6, ?7, ?8), (?1, ?2, ?9, ?10, ?11), (?1, ?2, ?12, ?13, ?14)",
];

/// How many ids [`Stage::missing`] looks up in one statement: far inside SQLite's limit on a
/// statement's variables.
const MISSING_AT_ONCE: usize = 500;

/// [`Stage::missing`]'s statement for a full chunk, written once.
static FULL_MISSING: LazyLock<String> = LazyLock::new(|| missing_statement(MISSING_AT_ONCE));

/// The statement returning which of `ids` bound ids are neither staged nor listed on the
/// Exchange side: each is looked up in the records' unique index, and only those not found
/// come back, which in an echo pass is next to none.
fn missing_statement(ids: usize) -> String {
    let binds: Vec<String> = (1..=ids).map(|n| format!("(?{n})")).collect();
    format!(
        "SELECT v.column1 FROM (VALUES {}) AS v WHERE NOT EXISTS
             (SELECT 1 FROM records WHERE side = 'exchange' AND id = v.column1)",
        binds.join(", ")
    )
}

/// A matching candidate: unpaired, not settled, present, not linked yet. A macro so that the
/// queries using it stay `&'static str` (and are prepared once).
macro_rules! candidate {
    () => {
        " pair IS NULL AND done = 0 AND upsert = 1 AND partner IS NULL "
    };
}

/// The records one user's pass read, for one record kind (see the module comment).
#[derive(Debug)]
pub struct Stage {
    // Behind a lock only so that `&Stage` may be held across an await in a task that moves
    // between threads; a pass uses its stage from one task, so the lock is never contended.
    db: Mutex<Connection>,
}

impl Stage {
    /// An empty stage in a private temporary database that SQLite deletes when the stage is
    /// dropped: a spare one a finished pass left ([`Self::recycle`]), or a new one.
    pub fn new() -> Result<Stage> {
        let db = match spares().pop() {
            Some(db) => db,
            None => scratch_database(SCHEMA)?,
        };
        Ok(Stage { db: Mutex::new(db) })
    }

    /// Ends the stage, keeping its database for a later pass when it is small: emptied first,
    /// so nothing of this pass reaches the next (a user's records are only ever seen by that
    /// user's pass). A stage in the middle of a transaction, or that fails to empty, is dropped.
    pub fn recycle(self) {
        let db = self.db.into_inner().unwrap_or_else(PoisonError::into_inner);
        if !db.is_autocommit() || spares().len() >= SPARES_KEPT {
            return;
        }
        let pages = db
            .prepare_cached("PRAGMA page_count")
            .and_then(|mut pages| pages.query_row([], |row| row.get::<_, i64>(0)));
        if !matches!(pages, Ok(pages) if pages <= SPARE_PAGES) {
            return;
        }
        let emptied = ["DELETE FROM records", "DELETE FROM keys"]
            .into_iter()
            .try_for_each(|empty| db.prepare_cached(empty)?.execute([]).map(drop));
        if emptied.is_ok() {
            let mut spares = spares();
            if spares.len() < SPARES_KEPT {
                spares.push(db);
            }
        }
    }

    // A panic while the lock was held cannot have stopped SQLite mid-call, so the connection
    // is still sound; poisoning carries no information here.
    fn db(&self) -> MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn conn(&mut self) -> &mut Connection {
        self.db.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records latest-wins by id: staging an id again replaces its change, pair, keys and
    /// origin, and whether it was only listed.
    pub fn put(&mut self, records: &[StagedRecord]) -> Result<()> {
        let op = "put";
        let rows = records.iter().map(|record| {
            let id = record.change.id();
            let named = || id.to_string();
            let text = super::scratch_json::to_text(&record.change).map_err(json(op, named))?;
            let (upsert, origin) = match &record.change {
                Change::Upsert(item) => (true, item.origin.as_ref()),
                _ => (false, None),
            };
            // A CRM record's keys stay in its row, as JSON (see the schema).
            let (keys, crm_keys) = match (id.side(), record.keys.is_empty()) {
                (Side::Crm, false) => {
                    let keys = serde_json::to_string(&record.keys).map_err(json(op, named))?;
                    (&[][..], Some(Cow::Owned(keys)))
                }
                (Side::Crm, true) => (&[][..], None),
                (Side::Exchange, _) => (record.keys.as_slice(), None),
            };
            Ok(RecordRow {
                id,
                text: Cow::Owned(text),
                upsert,
                origin,
                pair: record.pair.as_ref(),
                keys,
                crm_keys,
            })
        });
        self.put_rows(op, rows)
    }

    /// [`Self::put`] of CRM records read back from a scratch database as it holds them,
    /// which are staged as they are: neither parsed nor written out again.
    pub fn put_stored(&mut self, records: &[StoredRecord]) -> Result<()> {
        let rows = records.iter().map(|record| {
            Ok(RecordRow {
                id: &record.id,
                text: Cow::Borrowed(record.stored.as_str()),
                upsert: record.upsert,
                origin: record.origin.as_ref(),
                pair: record.pair.as_ref(),
                keys: &[],
                crm_keys: record.keys.as_deref().map(Cow::Borrowed),
            })
        });
        self.put_rows("put stored", rows)
    }

    fn put_rows<'a>(
        &mut self,
        op: &'static str,
        rows: impl Iterator<Item = Result<RecordRow<'a>>>,
    ) -> Result<()> {
        let tx = self.conn().transaction().map_err(sql(op))?;
        {
            // Nearly every record is staged once: inserting first spares it the update and
            // the key delete a record staged again needs.
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO records
                         (side, id, change, upsert, pair, origin_side, origin_id, crm_keys)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (side, id) DO NOTHING",
                )
                .map_err(sql(op))?;
            let mut replace = tx
                .prepare_cached(
                    "UPDATE records SET change = ?3, upsert = ?4, pair = ?5, origin_side = ?6,
                         origin_id = ?7, crm_keys = ?8
                     WHERE side = ?1 AND id = ?2",
                )
                .map_err(sql(op))?;
            let mut forget_keys = tx
                .prepare_cached("DELETE FROM keys WHERE side = ?1 AND id = ?2")
                .map_err(sql(op))?;
            for row in rows {
                let RecordRow {
                    id,
                    text,
                    upsert,
                    origin,
                    pair,
                    keys,
                    crm_keys,
                } = row?;
                let side = id.side().as_str();
                let on_crm = id.side() == Side::Crm;
                let values = params![
                    side,
                    id.as_str(),
                    text,
                    upsert,
                    pair.map(CrmId::as_str),
                    origin.map(|o| o.side().as_str()),
                    origin.map(ItemId::as_str),
                    crm_keys,
                ];
                if insert.execute(values).map_err(sql(op))? == 0 {
                    replace.execute(values).map_err(sql(op))?;
                    if !on_crm {
                        forget_keys
                            .execute(params![side, id.as_str()])
                            .map_err(sql(op))?;
                    }
                }
                for (chunk, keys) in keys.chunks(KEYS_AT_ONCE.len()).enumerate() {
                    let mut add_keys = tx
                        .prepare_cached(KEYS_AT_ONCE[keys.len() - 1])
                        .map_err(sql(op))?;
                    let first = chunk * KEYS_AT_ONCE.len();
                    let bind = |statement: &mut rusqlite::CachedStatement<'_>| {
                        statement.raw_bind_parameter(1, side)?;
                        statement.raw_bind_parameter(2, id.as_str())?;
                        for (n, (rule, key)) in keys.iter().enumerate() {
                            let at = 3 + 3 * n;
                            statement.raw_bind_parameter(at, (first + n) as i64)?;
                            statement.raw_bind_parameter(at + 1, rule)?;
                            statement.raw_bind_parameter(at + 2, key)?;
                        }
                        statement.raw_execute()
                    };
                    bind(&mut add_keys).map_err(sql(op))?;
                }
            }
        }
        tx.commit().map_err(sql(op))
    }

    /// Exchange items listed as present and unchanged (our own writes coming back): they
    /// exist, nothing to plan. Latest-wins like [`Self::put`], which replaces this in turn.
    pub fn put_listed(&mut self, ids: &[ExchangeId]) -> Result<()> {
        let op = "put listed";
        let tx = self.conn().transaction().map_err(sql(op))?;
        {
            // As in `put`: an echo pass lists every item once, so inserting first spares
            // nearly all of them the update and the key delete.
            let mut listed = tx
                .prepare_cached(
                    "INSERT INTO records (side, id) VALUES ('exchange', ?1)
                     ON CONFLICT (side, id) DO NOTHING",
                )
                .map_err(sql(op))?;
            let mut relisted = tx
                .prepare_cached(
                    "UPDATE records SET change = NULL, upsert = 0, pair = NULL,
                         origin_side = NULL, origin_id = NULL
                     WHERE side = 'exchange' AND id = ?1",
                )
                .map_err(sql(op))?;
            let mut forget_keys = tx
                .prepare_cached("DELETE FROM keys WHERE side = 'exchange' AND id = ?1")
                .map_err(sql(op))?;
            for id in ids {
                if listed.execute([id.as_str()]).map_err(sql(op))? == 0 {
                    relisted.execute([id.as_str()]).map_err(sql(op))?;
                    forget_keys.execute([id.as_str()]).map_err(sql(op))?;
                }
            }
        }
        tx.commit().map_err(sql(op))
    }

    /// Forgets everything staged for one side (the Exchange listing started over).
    pub fn clear_side(&mut self, side: Side) -> Result<()> {
        let op = "clear side";
        let tx = self.conn().transaction().map_err(sql(op))?;
        tx.execute("DELETE FROM records WHERE side = ?1", [side.as_str()])
            .map_err(sql(op))?;
        tx.execute("DELETE FROM keys WHERE side = ?1", [side.as_str()])
            .map_err(sql(op))?;
        // A match with a record that is gone no longer holds.
        tx.execute(
            "UPDATE records SET partner = NULL, reason = NULL
             WHERE side = ?1 AND partner IS NOT NULL",
            [side.other().as_str()],
        )
        .map_err(sql(op))?;
        tx.commit().map_err(sql(op))
    }

    /// Of these ids, those neither staged nor listed (in input order). Looked up
    /// [`MISSING_AT_ONCE`] at a time, each statement returning only the ids it did not find:
    /// an echo pass asks for every pair's item, and a statement per id cost more than the
    /// look-ups themselves.
    pub fn missing(&self, ids: &[ExchangeId]) -> Result<Vec<ExchangeId>> {
        let op = "missing";
        let db = self.db();
        let mut missing = Vec::new();
        for chunk in ids.chunks(MISSING_AT_ONCE) {
            // Full chunks share one cached statement; a call's one shorter chunk is prepared
            // for its size, so odd sizes do not crowd the statement cache.
            let (mut cached, mut once);
            let lookup: &mut Statement<'_> = if chunk.len() == MISSING_AT_ONCE {
                cached = db.prepare_cached(&FULL_MISSING).map_err(sql(op))?;
                &mut cached
            } else {
                once = db
                    .prepare(&missing_statement(chunk.len()))
                    .map_err(sql(op))?;
                &mut once
            };
            for (n, id) in chunk.iter().enumerate() {
                lookup
                    .raw_bind_parameter(n + 1, id.as_str())
                    .map_err(sql(op))?;
            }
            let mut absent: HashSet<String> = HashSet::new();
            let mut rows = lookup.raw_query();
            while let Some(row) = rows.next().map_err(sql(op))? {
                absent.insert(row.get(0).map_err(sql(op))?);
            }
            if !absent.is_empty() {
                missing.extend(
                    chunk
                        .iter()
                        .filter(|id| absent.contains(id.as_str()))
                        .cloned(),
                );
            }
        }
        Ok(missing)
    }

    /// CRM ids of pairs that have a staged change (not merely listed) on either side not yet
    /// done, after `after`, ascending, at most `limit`.
    pub fn touched_pairs(&self, after: Option<&CrmId>, limit: usize) -> Result<Vec<CrmId>> {
        let after = after.map(CrmId::as_str);
        self.paged(
            "touched pairs",
            [
                "SELECT DISTINCT pair FROM records WHERE pair IS NOT NULL
                 AND change IS NOT NULL AND done = 0 ORDER BY pair",
                "SELECT DISTINCT pair FROM records WHERE pair > ?1
                 AND change IS NOT NULL AND done = 0 ORDER BY pair",
            ],
            after.as_ref().map(|a| a as &dyn ToSql).as_slice(),
            limit,
            |row| row.get::<_, String>(0).map(CrmId::new),
        )
    }

    /// The staged changes (not listed-only rows) of the records these pairs hold, both sides.
    pub fn changes_of_pairs(&self, pairs: &[CrmId]) -> Result<Vec<Change>> {
        self.changes(
            "changes of pairs",
            "SELECT id, change FROM records WHERE pair = ?1 AND change IS NOT NULL
             ORDER BY side, id",
            pairs.iter().map(|pair| [pair.as_str()]),
        )
    }

    /// Changes of unpaired, not-done records that are Upserts whose `origin` (our tag) is one
    /// of these ids.
    pub fn tagged(&self, origins: &[ItemId]) -> Result<Vec<Change>> {
        self.changes(
            "tagged",
            "SELECT id, change FROM records WHERE origin_side = ?1 AND origin_id = ?2
             AND pair IS NULL AND done = 0 AND upsert = 1 ORDER BY side, id",
            origins.iter().map(|o| [o.side().as_str(), o.as_str()]),
        )
    }

    /// The changes `query` (selecting id, change) finds for each binding in turn. One indexed
    /// lookup per id: no SQL variable limit, and no id ever enters SQL text.
    fn changes<P: Params>(
        &self,
        op: &'static str,
        query: &str,
        binds: impl Iterator<Item = P>,
    ) -> Result<Vec<Change>> {
        let db = self.db();
        let mut statement = db.prepare_cached(query).map_err(sql(op))?;
        let mut changes = Vec::new();
        for bind in binds {
            let mut rows = statement.query(bind).map_err(sql(op))?;
            while let Some(row) = rows.next().map_err(sql(op))? {
                let (id, json): (String, String) =
                    (row.get(0).map_err(sql(op))?, row.get(1).map_err(sql(op))?);
                changes.push(parse_change(op, &id, &json)?);
            }
        }
        Ok(changes)
    }

    /// Which of these records are staged with a change (not merely listed), and that change.
    pub fn staged(&self, ids: &[ItemId]) -> Result<Vec<Change>> {
        self.changes(
            "staged",
            "SELECT id, change FROM records WHERE side = ?1 AND id = ?2 AND change IS NOT NULL",
            ids.iter().map(|id| [id.side().as_str(), id.as_str()]),
        )
    }

    /// Files staged records under a pair the pass learnt of after staging them (one a crashed
    /// pass made, recovered from the journal), so they are planned with it, not matched.
    pub fn set_pair(&mut self, ids: &[ItemId], pair: &CrmId) -> Result<()> {
        let op = "set pair";
        let tx = self.conn().transaction().map_err(sql(op))?;
        {
            let mut set = tx
                .prepare_cached(
                    "UPDATE records SET pair = ?3, partner = NULL, reason = NULL,
                         crm_keys = NULL
                     WHERE side = ?1 AND id = ?2",
                )
                .map_err(sql(op))?;
            let mut forget_keys = tx
                .prepare_cached("DELETE FROM keys WHERE side = ?1 AND id = ?2")
                .map_err(sql(op))?;
            for id in ids {
                set.execute(params![id.side().as_str(), id.as_str(), pair.as_str()])
                    .map_err(sql(op))?;
                forget_keys
                    .execute([id.side().as_str(), id.as_str()])
                    .map_err(sql(op))?;
            }
        }
        tx.commit().map_err(sql(op))
    }

    /// These records are settled: later touched_pairs/tagged/matching/new_records skip them.
    pub fn mark_done(&mut self, ids: &[ItemId]) -> Result<()> {
        let op = "mark done";
        let tx = self.conn().transaction().map_err(sql(op))?;
        {
            let mut done = tx
                .prepare_cached("UPDATE records SET done = 1 WHERE side = ?1 AND id = ?2")
                .map_err(sql(op))?;
            for id in ids {
                done.execute([id.side().as_str(), id.as_str()])
                    .map_err(sql(op))?;
            }
        }
        tx.commit().map_err(sql(op))
    }

    /// Unpaired, not-done records in ItemId order after `after` (CRM side first), at most
    /// `limit`. A CRM record linked to an Exchange one comes with it; that Exchange record is
    /// then left out on its own. Listed-only rows never appear.
    pub fn new_records(&self, after: Option<&ItemId>, limit: usize) -> Result<Vec<NewRecord>> {
        let op = "new records";
        let after = after.map(|a| (a.side().as_str(), a.as_str()));
        let bind: Vec<&dyn ToSql> = match &after {
            Some((side, id)) => vec![side, id],
            None => Vec::new(),
        };
        let rows = self.paged(
            op,
            [
                "SELECT r.id, r.change, p.id, p.change, r.reason FROM records r
                 LEFT JOIN records p ON r.side = 'crm' AND p.side = 'exchange' AND p.id = r.partner
                 WHERE r.pair IS NULL AND r.done = 0 AND r.change IS NOT NULL
                 AND (r.side = 'crm' OR r.partner IS NULL)
                 ORDER BY r.side, r.id",
                "SELECT r.id, r.change, p.id, p.change, r.reason FROM records r
                 LEFT JOIN records p ON r.side = 'crm' AND p.side = 'exchange' AND p.id = r.partner
                 WHERE r.pair IS NULL AND r.done = 0 AND r.change IS NOT NULL
                 AND (r.side = 'crm' OR r.partner IS NULL) AND (r.side, r.id) > (?1, ?2)
                 ORDER BY r.side, r.id",
            ],
            &bind,
            limit,
            |row: &Row<'_>| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Option<String>>(2)?,
                    row.get::<_, Option<String>>(3)?,
                    row.get::<_, Option<String>>(4)?,
                ))
            },
        )?;
        rows.into_iter()
            .map(|(id, json, partner, partner_json, reason)| {
                let change = parse_change(op, &id, &json)?;
                let linked = match (partner, partner_json, reason) {
                    (Some(partner), Some(partner_json), Some(reason)) => Some((
                        parse_change(op, &partner, &partner_json)?,
                        serde_json::from_str(&reason).map_err(|source| StageError::Json {
                            op,
                            id,
                            source,
                        })?,
                    )),
                    _ => None,
                };
                Ok(NewRecord { change, linked })
            })
            .collect()
    }

    /// CRM ids of staged changes (any state), ascending after `after`.
    pub fn crm_ids(&self, after: Option<&CrmId>, limit: usize) -> Result<Vec<CrmId>> {
        let after = after.map(CrmId::as_str);
        self.paged(
            "crm ids",
            [
                "SELECT id FROM records WHERE side = 'crm' AND change IS NOT NULL
                 ORDER BY id",
                "SELECT id FROM records WHERE side = 'crm' AND id > ?1 AND change IS NOT NULL
                 ORDER BY id",
            ],
            after.as_ref().map(|a| a as &dyn ToSql).as_slice(),
            limit,
            |row| row.get::<_, String>(0).map(CrmId::new),
        )
    }

    /// A query read a page at a time: `from_start`, or `after_sql` binding `after` from ?1 on.
    /// Two statements rather than `?1 IS NULL OR …`, so that each page is a range scan from its
    /// start instead of a scan from the first row. The limit is written into the statement, not
    /// bound: SQLite plans with a bound limit's value, so binding another one (any, each page)
    /// made it parse the statement again, which cost a small user's pass more than its reads.
    /// A pass pages with one slice size, so this is one cached statement per query.
    fn paged<T>(
        &self,
        op: &'static str,
        [from_start, after_sql]: [&str; 2],
        after: &[&dyn ToSql],
        limit: usize,
        read: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let text = if after.is_empty() {
            from_start
        } else {
            after_sql
        };
        let text = format!("{text} LIMIT {limit}");
        let db = self.db();
        let mut statement = db.prepare_cached(&text).map_err(sql(op))?;
        let rows = statement.query_map(after, read).map_err(sql(op))?;
        rows.collect::<rusqlite::Result<Vec<T>>>().map_err(sql(op))
    }
}

fn parse_change(op: &'static str, id: &str, json: &str) -> Result<Change> {
    super::scratch_json::from_text(json).map_err(|source| StageError::Json {
        op,
        id: id.to_owned(),
        source,
    })
}

impl Candidates for Stage {
    type Error = StageError;

    fn unlinked_crm(
        &mut self,
        rule: u8,
        after: Option<&ItemId>,
        limit: usize,
    ) -> Result<Vec<(ItemId, Vec<String>)>> {
        let op = "matching: unlinked crm records";
        let after = after.map(ItemId::as_str);
        let rows = self.paged(
            op,
            [
                concat!(
                    "SELECT id, crm_keys FROM records WHERE side = 'crm' AND",
                    candidate!(),
                    "ORDER BY id"
                ),
                concat!(
                    "SELECT id, crm_keys FROM records WHERE side = 'crm' AND id > ?1 AND",
                    candidate!(),
                    "ORDER BY id"
                ),
            ],
            after.as_ref().map(|a| a as &dyn ToSql).as_slice(),
            limit,
            |row| Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?)),
        )?;
        rows.into_iter()
            .map(|(id, keys)| {
                let keys: Vec<(u8, String)> = match keys {
                    Some(json) => {
                        serde_json::from_str(&json).map_err(|source| StageError::Json {
                            op,
                            id: id.clone(),
                            source,
                        })?
                    }
                    None => Vec::new(),
                };
                let keys = keys
                    .into_iter()
                    .filter(|(of, _)| *of == rule)
                    .map(|(_, key)| key)
                    .collect();
                Ok((ItemId::Crm(CrmId::new(id)), keys))
            })
            .collect()
    }

    fn any_exchange(&mut self, rule: u8) -> Result<bool> {
        let op = "matching: any exchange record";
        // Once per rule: it walks the rule's keys of both sides until it meets a candidate.
        self.db()
            .prepare_cached(concat!(
                "SELECT 1 FROM keys k JOIN records r ON r.side = k.side AND r.id = k.id
                 WHERE k.rule = ?1 AND k.side = 'exchange' AND",
                candidate!(),
                "LIMIT 1"
            ))
            .map_err(sql(op))?
            .exists([rule])
            .map_err(sql(op))
    }

    fn exchange_with(&mut self, rule: u8, key: &str) -> Result<Option<ItemId>> {
        let op = "matching: exchange record by key";
        self.db()
            .prepare_cached(concat!(
                "SELECT k.id FROM keys k JOIN records r ON r.side = k.side AND r.id = k.id
                 WHERE k.rule = ?1 AND k.key = ?2 AND k.side = 'exchange' AND",
                candidate!(),
                "ORDER BY k.id LIMIT 1"
            ))
            .map_err(sql(op))?
            .query_row(params![rule, key], |row| row.get::<_, String>(0))
            .optional()
            .map_err(sql(op))
            .map(|id| id.map(|id| ItemId::Exchange(ExchangeId::new(id))))
    }

    fn link(&mut self, crm: &ItemId, exchange: &ItemId, reason: LinkReason) -> Result<()> {
        let op = "matching: link";
        if crm.side() != Side::Crm || exchange.side() != Side::Exchange {
            return Err(StageError::Inconsistent {
                op,
                detail: format!("cannot link {crm} with {exchange}"),
            });
        }
        let reason = serde_json::to_string(&reason).map_err(|source| StageError::Json {
            op,
            id: crm.to_string(),
            source,
        })?;
        let tx = self.conn().transaction().map_err(sql(op))?;
        tx.execute(
            "UPDATE records SET partner = ?2, reason = ?3 WHERE side = 'crm' AND id = ?1",
            params![crm.as_str(), exchange.as_str(), reason],
        )
        .map_err(sql(op))?;
        tx.execute(
            "UPDATE records SET partner = ?1, reason = ?3 WHERE side = 'exchange' AND id = ?2",
            params![crm.as_str(), exchange.as_str(), reason],
        )
        .map_err(sql(op))?;
        tx.commit().map_err(sql(op))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use chrono::{TimeZone, Utc};
    use exsync_core::config::KindRules;
    use exsync_core::plan::{
        link_rules, link_unpaired, plan, record_keys, Identity, Item, NewRecords, Op, PlanInput,
    };
    use exsync_core::{Contact, ItemKind, Record};

    use super::*;

    fn c(id: &str) -> ItemId {
        ItemId::Crm(CrmId::new(id))
    }

    fn e(id: &str) -> ItemId {
        ItemId::Exchange(ExchangeId::new(id))
    }

    fn ex(ids: &[&str]) -> Vec<ExchangeId> {
        ids.iter().map(|id| ExchangeId::new(*id)).collect()
    }

    fn item(id: ItemId, emails: &[&str], first: &str, last: &str, company: &str) -> Item {
        let fields = Contact {
            first_name: first.into(),
            last_name: last.into(),
            emails: emails.iter().map(|m| (*m).to_owned()).collect(),
            company: company.into(),
            ..Contact::default()
        }
        .to_fields();
        Item {
            id,
            fields,
            version: None,
            modified: None,
            origin: None,
        }
    }

    fn tagged_item(id: ItemId, origin: ItemId) -> Item {
        Item {
            origin: Some(origin),
            ..item(id, &[], "Tag", "Ged", "")
        }
    }

    /// An unpaired record with its keys, as the pass stages it.
    fn new(item: Item) -> StagedRecord {
        let keys = record_keys(
            ItemKind::Contact,
            &KindRules::default_for(ItemKind::Contact),
            &item,
        );
        StagedRecord {
            change: Change::Upsert(item),
            pair: None,
            keys,
        }
    }

    fn paired(change: Change, pair: &str) -> StagedRecord {
        StagedRecord {
            change,
            pair: Some(CrmId::new(pair)),
            keys: Vec::new(),
        }
    }

    fn upsert(id: ItemId) -> Change {
        Change::Upsert(item(id, &[], "A", "B", ""))
    }

    fn ids(changes: &[Change]) -> Vec<ItemId> {
        changes.iter().map(|c| c.id().clone()).collect()
    }

    fn crm_ids(ids: &[&str]) -> Vec<CrmId> {
        ids.iter().map(|id| CrmId::new(*id)).collect()
    }

    fn new_ids(records: &[NewRecord]) -> Vec<(ItemId, Option<ItemId>)> {
        records
            .iter()
            .map(|r| {
                let linked = r.linked.as_ref().map(|(l, _)| l.id().clone());
                (r.change.id().clone(), linked)
            })
            .collect()
    }

    #[test]
    fn a_record_with_more_keys_than_one_statement_holds_keeps_them_all_in_order() {
        // Keys go in up to four per statement; nine cover a full chunk, a second and a rest.
        let many: Vec<String> = (0..9).map(|n| format!("k{n}@x.test")).collect();
        let record = |id: ItemId, keys: &[String]| StagedRecord {
            change: upsert(id),
            pair: None,
            keys: keys.iter().map(|k| (1, k.clone())).collect(),
        };
        let mut stage = Stage::new().unwrap();
        stage.put(&[record(c("c1"), &many)]).unwrap();
        assert_eq!(
            stage.unlinked_crm(1, None, 10).unwrap(),
            vec![(c("c1"), many.clone())]
        );
        // Staged again with fewer keys: the old ones are gone, none left over.
        stage.put(&[record(c("c1"), &many[..5])]).unwrap();
        assert_eq!(
            stage.unlinked_crm(1, None, 10).unwrap(),
            vec![(c("c1"), many[..5].to_vec())]
        );
    }

    fn user_version(stage: &Stage) -> i64 {
        stage
            .db()
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap()
    }

    /// A finished pass's stage serves a later pass, most likely another user's: it comes back
    /// with nothing of what it held. (Each test runs in its own process, so the spare this
    /// test leaves is the one it gets back.)
    #[test]
    fn a_recycled_stage_comes_back_empty() {
        let mut stage = Stage::new().unwrap();
        stage
            .put(&[
                new(item(c("c1"), &["ann@x.test"], "Ann", "Lee", "")),
                new(item(e("e1"), &["ann@x.test"], "Ann", "Lee", "")),
                paired(upsert(e("e2")), "c2"),
            ])
            .unwrap();
        stage.put_listed(&[ExchangeId::new("e3")]).unwrap();
        // Marks the database, which emptying leaves alone, to know it when it comes back.
        stage.db().pragma_update(None, "user_version", 7).unwrap();
        stage.recycle();

        let mut again = Stage::new().unwrap();
        assert_eq!(user_version(&again), 7, "the spare was not used");
        let rows: i64 = again
            .db()
            .query_row(
                "SELECT (SELECT count(*) FROM records) + (SELECT count(*) FROM keys)",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(rows, 0, "rows of the last pass are left");
        assert_eq!(again.exchange_with(1, "ann@x.test").unwrap(), None);
        assert!(again.new_records(None, 10).unwrap().is_empty());
        // And it works as a new one does.
        again
            .put(&[new(item(c("c9"), &["bo@x.test"], "Bo", "", ""))])
            .unwrap();
        let records = again.new_records(None, 10).unwrap();
        assert_eq!(new_ids(&records), [(c("c9"), None)]);
    }

    /// Only a small stage is kept: a large mailbox's would hold its disk and cache for
    /// nothing.
    #[test]
    fn a_large_stage_is_not_kept() {
        let stage = Stage::new().unwrap();
        stage
            .db()
            .execute_batch(
                "PRAGMA user_version = 8;
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
                 INSERT INTO records (side, id, change) SELECT 'crm', i, randomblob(4096) FROM n;",
            )
            .unwrap();
        stage.recycle();
        assert_eq!(
            user_version(&Stage::new().unwrap()),
            0,
            "a large stage was kept"
        );
    }

    #[test]
    fn put_is_latest_wins_and_replaces_keys() {
        let mut stage = Stage::new().unwrap();
        stage
            .put(&[
                new(item(c("c1"), &["old@x.test"], "Ann", "Lee", "")),
                new(item(e("e1"), &["old@x.test"], "Ann", "Lee", "")),
            ])
            .unwrap();
        let second = item(c("c1"), &["new@x.test"], "Ann", "Lee", "");
        stage
            .put(&[
                new(second.clone()),
                new(item(e("e1"), &["new@x.test"], "Ann", "Lee", "")),
            ])
            .unwrap();

        let records = stage.new_records(None, 10).unwrap();
        assert_eq!(
            ids(&records.iter().map(|r| r.change.clone()).collect::<Vec<_>>()),
            [c("c1"), e("e1")]
        );
        assert_eq!(records[0].change, Change::Upsert(second));
        // Keys come back in the order staged (primary address first), not sorted.
        stage
            .put(&[new(item(c("c2"), &["z@x.test", "a@x.test"], "", "", ""))])
            .unwrap();
        let crm = stage.unlinked_crm(1, None, 10).unwrap();
        let keys = |k: &[&str]| k.iter().map(|k| (*k).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            crm,
            vec![
                (c("c1"), keys(&["new@x.test"])),
                (c("c2"), keys(&["z@x.test", "a@x.test"]))
            ]
        );
        assert_eq!(stage.exchange_with(1, "old@x.test").unwrap(), None);
        assert_eq!(stage.exchange_with(1, "new@x.test").unwrap(), Some(e("e1")));

        // Staged again as paired: no longer a candidate, and its keys are gone.
        stage.put(&[paired(upsert(e("e1")), "c9")]).unwrap();
        assert_eq!(stage.exchange_with(1, "new@x.test").unwrap(), None);
        assert_eq!(
            ids(&stage.changes_of_pairs(&crm_ids(&["c9"])).unwrap()),
            [e("e1")]
        );
    }

    /// Every row of the stage, as text.
    fn dump(stage: &mut Stage) -> Vec<String> {
        let conn = stage.conn();
        let mut rows = Vec::new();
        for query in [
            "SELECT side, id, change, upsert, pair, origin_side, origin_id, done, partner,
                 reason, crm_keys FROM records ORDER BY side, id",
            "SELECT side, id, seq, rule, key, '', '', '', '', '', '' FROM keys
                 ORDER BY side, id, seq",
        ] {
            let mut statement = conn.prepare(query).unwrap();
            let mut found = statement.query([]).unwrap();
            while let Some(row) = found.next().unwrap() {
                let cells: Vec<String> = (0..11)
                    .map(|i| format!("{:?}", row.get::<_, rusqlite::types::Value>(i).unwrap()))
                    .collect();
                rows.push(cells.join(" | "));
            }
        }
        rows
    }

    #[test]
    fn records_staged_as_stored_are_staged_as_the_records_themselves() {
        let made_from = Item {
            origin: Some(e("eX")),
            ..item(c("c1"), &["a@x.test"], "Ann", "Ng", "Acme")
        };
        let records = [
            new(made_from.clone()),
            paired(upsert(c("c2")), "c2"),
            StagedRecord {
                change: Change::Deleted { id: c("c3") },
                pair: None,
                keys: Vec::new(),
            },
        ];
        let stored: Vec<StoredRecord> = records
            .iter()
            .map(|record| StoredRecord {
                id: record.change.id().clone(),
                upsert: matches!(record.change, Change::Upsert(_)),
                origin: match &record.change {
                    Change::Upsert(item) => item.origin.clone(),
                    _ => None,
                },
                pair: record.pair.clone(),
                keys: (!record.keys.is_empty())
                    .then(|| serde_json::to_string(&record.keys).unwrap()),
                stored: super::super::scratch_json::to_text(&record.change).unwrap(),
            })
            .collect();
        let (mut read, mut spooled) = (Stage::new().unwrap(), Stage::new().unwrap());
        read.put(&records).unwrap();
        spooled.put_stored(&stored).unwrap();
        let rows = dump(&mut spooled);
        assert_eq!(rows, dump(&mut read));
        assert!(
            rows[0].contains("acme") && !rows[0].ends_with("| Null"),
            "the keys are kept: {rows:?}"
        );
        assert_eq!(
            spooled.staged(&[c("c1")]).unwrap(),
            [Change::Upsert(made_from)]
        );
        assert_eq!(spooled.tagged(&[e("eX")]).unwrap().len(), 1);
    }

    #[test]
    fn missing_ids_are_found_across_many_look_ups() {
        let mut stage = Stage::new().unwrap();
        let n = 2 * MISSING_AT_ONCE + 7;
        let all: Vec<String> = (0..n).map(|i| format!("e{i:04}")).collect();
        // Every third item listed, every fifth staged; the others are missing.
        let listed: Vec<&str> = all.iter().step_by(3).map(String::as_str).collect();
        stage.put_listed(&ex(&listed)).unwrap();
        let staged: Vec<StagedRecord> = all
            .iter()
            .step_by(5)
            .map(|id| paired(upsert(e(id)), "c1"))
            .collect();
        stage.put(&staged).unwrap();
        let mut asked = ex(&all.iter().map(String::as_str).collect::<Vec<_>>());
        asked.reverse();
        let expected: Vec<ExchangeId> = asked
            .iter()
            .filter(|id| {
                let i: usize = id.as_str()[1..].parse().unwrap();
                i % 3 != 0 && i % 5 != 0
            })
            .cloned()
            .collect();
        assert_eq!(stage.missing(&asked).unwrap(), expected);
    }

    #[test]
    fn listed_items_exist_but_are_never_planned() {
        let mut stage = Stage::new().unwrap();
        stage.put(&[paired(upsert(e("e3")), "c3")]).unwrap();
        stage.put_listed(&ex(&["e1", "e2", "e3"])).unwrap();
        assert_eq!(
            stage.missing(&ex(&["e4", "e2", "e0", "e1", "e3"])).unwrap(),
            ex(&["e4", "e0"])
        );
        // Listing replaced the change staged before it.
        assert!(stage
            .changes_of_pairs(&crm_ids(&["c3"]))
            .unwrap()
            .is_empty());
        assert!(stage.touched_pairs(None, 10).unwrap().is_empty());
        assert!(stage.new_records(None, 10).unwrap().is_empty());

        // A change staged after the listing replaces it.
        stage.put(&[paired(upsert(e("e2")), "c2")]).unwrap();
        assert_eq!(stage.touched_pairs(None, 10).unwrap(), crm_ids(&["c2"]));
        assert_eq!(
            ids(&stage.changes_of_pairs(&crm_ids(&["c2"])).unwrap()),
            [e("e2")]
        );
        assert!(stage.missing(&ex(&["e2"])).unwrap().is_empty());

        // A record staged with keys and then listed unchanged is no match candidate any more.
        stage
            .put(&[new(item(e("e8"), &["eight@x.test"], "A", "B", ""))])
            .unwrap();
        assert_eq!(
            stage.exchange_with(1, "eight@x.test").unwrap(),
            Some(e("e8"))
        );
        stage.put_listed(&ex(&["e8"])).unwrap();
        assert_eq!(stage.exchange_with(1, "eight@x.test").unwrap(), None);
        assert_eq!(
            stage
                .db()
                .query_row("SELECT count(*) FROM keys", [], |row| row.get::<_, i64>(0))
                .unwrap(),
            0
        );
    }

    #[test]
    fn touched_pairs_page_in_order_and_skip_settled_ones() {
        let mut stage = Stage::new().unwrap();
        stage
            .put(&[
                paired(upsert(c("c6")), "c6"),
                paired(upsert(e("e2")), "c2"),
                paired(Change::Deleted { id: c("c2") }, "c2"),
                paired(upsert(c("c1")), "c1"),
                paired(upsert(c("c4")), "c4"),
                paired(upsert(e("e4")), "c4"),
                paired(upsert(e("e5")), "c5"),
                new(item(c("c7"), &[], "A", "B", "")),
            ])
            .unwrap();
        stage.put_listed(&ex(&["e3"])).unwrap();
        stage.mark_done(&[c("c4"), e("e4")]).unwrap();

        assert_eq!(
            stage.touched_pairs(None, 2).unwrap(),
            crm_ids(&["c1", "c2"])
        );
        let c2 = CrmId::new("c2");
        assert_eq!(
            stage.touched_pairs(Some(&c2), 2).unwrap(),
            crm_ids(&["c5", "c6"])
        );
        let c6 = CrmId::new("c6");
        assert!(stage.touched_pairs(Some(&c6), 2).unwrap().is_empty());

        let changes = stage
            .changes_of_pairs(&crm_ids(&["c2", "c1", "c3"]))
            .unwrap();
        assert_eq!(ids(&changes), [c("c2"), e("e2"), c("c1")]);
        assert_eq!(changes[0], Change::Deleted { id: c("c2") });

        // Every staged CRM change, settled or paired or not.
        assert_eq!(
            stage.crm_ids(None, 10).unwrap(),
            crm_ids(&["c1", "c2", "c4", "c6", "c7"])
        );
        assert_eq!(stage.crm_ids(Some(&c2), 2).unwrap(), crm_ids(&["c4", "c6"]));
    }

    #[test]
    fn tagged_finds_unpaired_unsettled_copies_by_origin() {
        let mut stage = Stage::new().unwrap();
        stage
            .put(&[
                new(tagged_item(e("e1"), c("c1"))),
                paired(Change::Upsert(tagged_item(e("e2"), c("c1"))), "c9"),
                new(tagged_item(e("e3"), c("c1"))),
                new(tagged_item(e("e4"), c("c2"))),
                new(tagged_item(e("e5"), c("c3"))),
                new(tagged_item(c("c7"), e("e7"))),
            ])
            .unwrap();
        stage.mark_done(&[e("e3")]).unwrap();
        assert_eq!(ids(&stage.tagged(&[c("c1")]).unwrap()), [e("e1")]);
        assert_eq!(
            ids(&stage.tagged(&[c("c2"), c("c1")]).unwrap()),
            [e("e4"), e("e1")]
        );
        assert_eq!(ids(&stage.tagged(&[e("e7"), c("c8")]).unwrap()), [c("c7")]);
    }

    /// The staged matching links what the planner's in-memory matching links.
    #[test]
    fn only_an_unlinked_exchange_record_makes_a_rule_worth_going_through() {
        let rules = || 0..u8::try_from(link_rules(ItemKind::Contact).len()).unwrap();
        let mut stage = Stage::new().unwrap();
        stage
            .put(&[new(item(c("c1"), &["ann@x.test"], "Ann", "Lee", "Acme"))])
            .unwrap();
        for rule in rules() {
            assert!(!stage.any_exchange(rule).unwrap(), "rule {rule}, CRM only");
        }
        stage
            .put(&[new(item(e("e1"), &["ann@x.test"], "Ann", "Lee", "Acme"))])
            .unwrap();
        assert!(rules().any(|rule| stage.any_exchange(rule).unwrap()));
        stage
            .link(&c("c1"), &e("e1"), link_rules(ItemKind::Contact)[0])
            .unwrap();
        for rule in rules() {
            assert!(!stage.any_exchange(rule).unwrap(), "rule {rule}, linked");
        }
    }

    /// The stage, counting the key look-ups matching makes.
    struct Counting<'a>(&'a mut Stage, usize);

    impl Candidates for Counting<'_> {
        type Error = StageError;
        fn unlinked_crm(
            &mut self,
            rule: u8,
            after: Option<&ItemId>,
            limit: usize,
        ) -> Result<Vec<(ItemId, Vec<String>)>> {
            self.0.unlinked_crm(rule, after, limit)
        }
        fn any_exchange(&mut self, rule: u8) -> Result<bool> {
            self.0.any_exchange(rule)
        }
        fn exchange_with(&mut self, rule: u8, key: &str) -> Result<Option<ItemId>> {
            self.1 += 1;
            self.0.exchange_with(rule, key)
        }
        fn link(&mut self, crm: &ItemId, exchange: &ItemId, reason: LinkReason) -> Result<()> {
            self.0.link(crm, exchange, reason)
        }
    }

    #[test]
    fn only_exchange_keys_are_indexed_and_crm_keys_stay_with_their_record() {
        let mut stage = Stage::new().unwrap();
        let crm: Vec<StagedRecord> = (0..20)
            .map(|n| {
                new(item(
                    c(&format!("c{n}")),
                    &[&format!("p{n}@x.test")],
                    "A",
                    "B",
                    "",
                ))
            })
            .collect();
        stage.put(&crm).unwrap();
        let indexed = |stage: &Stage| -> i64 {
            stage
                .db()
                .query_row("SELECT count(*) FROM keys", [], |row| row.get(0))
                .unwrap()
        };
        // A first sync into an empty mailbox writes no key index at all.
        assert_eq!(indexed(&stage), 0);
        stage
            .put(&[new(item(e("e1"), &["p7@x.test"], "A", "B", ""))])
            .unwrap();
        assert!(indexed(&stage) > 0);
        // The CRM record's keys still come back with it, and matching still links.
        let seven = stage.unlinked_crm(1, Some(&c("c6")), 1).unwrap();
        assert_eq!(seven, vec![(c("c7"), vec!["p7@x.test".to_owned()])]);
        link_unpaired(ItemKind::Contact, &mut stage, 10).unwrap();
        let linked = stage.new_records(Some(&c("c6")), 1).unwrap();
        assert_eq!(
            linked[0].linked.as_ref().map(|(l, _)| l.id().clone()),
            Some(e("e1"))
        );
    }

    #[test]
    fn a_first_sync_into_an_empty_mailbox_looks_up_no_keys() {
        let mut stage = Stage::new().unwrap();
        let crm: Vec<StagedRecord> = (0..50)
            .map(|n| {
                new(item(
                    c(&format!("c{n}")),
                    &[&format!("p{n}@x.test")],
                    "A",
                    "B",
                    "C",
                ))
            })
            .collect();
        stage.put(&crm).unwrap();
        let mut counting = Counting(&mut stage, 0);
        link_unpaired(ItemKind::Contact, &mut counting, 10).unwrap();
        assert_eq!(counting.1, 0);
        // One Exchange record with a key: its rules are gone through again.
        stage
            .put(&[new(item(e("e1"), &["p7@x.test"], "A", "B", "C"))])
            .unwrap();
        let mut counting = Counting(&mut stage, 0);
        link_unpaired(ItemKind::Contact, &mut counting, 10).unwrap();
        assert!(counting.1 > 0);
    }

    #[test]
    fn matching_on_disk_gives_the_planners_links() {
        let crm = vec![
            // Its e-mail is the tagged copy's; the tag is the stronger rule.
            item(c("c0"), &["zed@x.test"], "Zed", "Zee", ""),
            item(c("c1"), &["ann@x.test"], "Ann", "Lee", "Acme"),
            // Its second address matches.
            item(
                c("c2"),
                &["bob@x.test", "robert@y.test"],
                "Bob",
                "Ray",
                "Acme",
            ),
            item(c("c3"), &[], "Cat", "Kim", "Beta"),
            // e4a has its name, e4b its e-mail: the e-mail wins.
            item(c("c4"), &["dan@x.test"], "Dan", "Fox", "Acme"),
            item(c("c5"), &["dan2@x.test"], "Dan", "Fox", "Acme"),
            // Two Exchange records share its address: the lowest id is taken.
            item(c("c6"), &["eve@x.test"], "Eve", "Ng", ""),
            item(c("c7"), &[], "Tom", "Tag", ""),
        ];
        let exchange = vec![
            item(e("e1"), &["ann@x.test"], "Annie", "Lee", ""),
            item(e("e2"), &["robert@y.test"], "Robert", "Ray", ""),
            item(e("e3"), &[], "cat", "KIM", "beta"),
            item(e("e4a"), &["other@x.test"], "Dan", "Fox", "Acme"),
            item(e("e4b"), &["dan@x.test"], "Daniel", "Fox", ""),
            item(e("e6b"), &["eve@x.test"], "Eve", "Ng", ""),
            item(e("e6a"), &["eve@x.test"], "Eve", "Ng", ""),
            Item {
                origin: Some(c("c7")),
                ..item(e("e7"), &["zed@x.test"], "Tom", "Tag", "")
            },
        ];
        let mut stage = Stage::new().unwrap();
        let records: Vec<StagedRecord> = crm.iter().chain(&exchange).cloned().map(new).collect();
        stage.put(&records).unwrap();
        // Neither a paired record nor a settled one is a candidate.
        stage
            .put(&[
                StagedRecord {
                    pair: Some(CrmId::new("c00")),
                    ..new(item(c("c00"), &["ann@x.test"], "Ann", "Lee", "Acme"))
                },
                new(item(e("e0"), &["ann@x.test"], "Ann", "Lee", "Acme")),
            ])
            .unwrap();
        stage.mark_done(&[e("e0")]).unwrap();

        link_unpaired(ItemKind::Contact, &mut stage, 2).unwrap();

        let records = stage.new_records(None, 100).unwrap();
        // Linked Exchange records come with their CRM partners only.
        let unlinked = [c("c0"), e("e6b")];
        assert_eq!(
            records
                .iter()
                .filter(|r| r.linked.is_none())
                .map(|r| r.change.id().clone())
                .collect::<Vec<_>>(),
            unlinked
        );
        let mut staged: Vec<(ItemId, ItemId, LinkReason)> = records
            .into_iter()
            .filter_map(|r| {
                let (partner, reason) = r.linked?;
                Some((r.change.id().clone(), partner.id().clone(), reason))
            })
            .collect();
        staged.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let expected = vec![
            (c("c1"), e("e1"), LinkReason::Email),
            (c("c2"), e("e2"), LinkReason::Email),
            (c("c3"), e("e3"), LinkReason::NameAndCompany),
            (c("c4"), e("e4b"), LinkReason::Email),
            (c("c5"), e("e4a"), LinkReason::NameAndCompany),
            (c("c6"), e("e6a"), LinkReason::Email),
            (c("c7"), e("e7"), LinkReason::Tag),
        ];
        assert_eq!(staged, expected);

        let rules = KindRules::default_for(ItemKind::Contact);
        let upserts =
            |items: &[Item]| -> Vec<Change> { items.iter().cloned().map(Change::Upsert).collect() };
        let (crm_changes, exchange_changes) = (upserts(&crm), upserts(&exchange));
        let ops = plan(PlanInput {
            kind: ItemKind::Contact,
            rules: &rules,
            pairs: &[],
            crm_changes: Cow::Borrowed(&crm_changes),
            exchange_changes: Cow::Borrowed(&exchange_changes),
            now: Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap(),
            crm_lens: &Identity,
            new_records: NewRecords::Match,
        });
        let mut in_memory: Vec<(ItemId, ItemId, LinkReason)> = ops
            .into_iter()
            .filter_map(|op| match op {
                Op::Link {
                    crm_id,
                    exchange_id,
                    reason,
                    ..
                } if reason.is_match() => {
                    Some((ItemId::Crm(crm_id), ItemId::Exchange(exchange_id), reason))
                }
                _ => None,
            })
            .collect();
        in_memory.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        assert_eq!(staged, in_memory);
    }

    #[test]
    fn new_records_page_crm_first_with_their_links() {
        let mut stage = Stage::new().unwrap();
        stage
            .put(&[
                new(item(e("e1"), &[], "A", "B", "")),
                new(item(c("c3"), &[], "A", "B", "")),
                new(item(e("e2"), &[], "A", "B", "")),
                new(item(c("c1"), &[], "A", "B", "")),
                new(item(c("c2"), &[], "A", "B", "")),
                paired(upsert(e("e4")), "c4"),
                StagedRecord {
                    change: Change::Deleted { id: e("e5") },
                    pair: None,
                    keys: Vec::new(),
                },
            ])
            .unwrap();
        stage.put_listed(&ex(&["e3"])).unwrap();
        stage
            .link(&c("c1"), &e("e2"), LinkReason::NameAndCompany)
            .unwrap();
        stage.mark_done(&[c("c2")]).unwrap();

        assert_eq!(
            new_ids(&stage.new_records(None, 10).unwrap()),
            [
                (c("c1"), Some(e("e2"))),
                (c("c3"), None),
                (e("e1"), None),
                (e("e5"), None)
            ]
        );
        let first = stage.new_records(None, 2).unwrap();
        assert_eq!(new_ids(&first), [(c("c1"), Some(e("e2"))), (c("c3"), None)]);
        assert_eq!(
            first[0].linked.as_ref().map(|(_, reason)| *reason),
            Some(LinkReason::NameAndCompany)
        );
        assert_eq!(
            new_ids(&stage.new_records(Some(&c("c3")), 1).unwrap()),
            [(e("e1"), None)]
        );
        assert_eq!(
            new_ids(&stage.new_records(Some(&c("c3")), 5).unwrap()),
            [(e("e1"), None), (e("e5"), None)]
        );
        assert!(stage.new_records(Some(&e("e5")), 5).unwrap().is_empty());
    }

    #[test]
    fn clear_side_forgets_that_side_only() {
        let mut stage = Stage::new().unwrap();
        stage
            .put(&[
                new(item(c("c1"), &["a@x.test"], "A", "B", "")),
                new(item(e("e1"), &["a@x.test"], "A", "B", "")),
                new(item(e("e2"), &["b@x.test"], "A", "B", "")),
            ])
            .unwrap();
        stage.put_listed(&ex(&["e3"])).unwrap();
        stage.link(&c("c1"), &e("e1"), LinkReason::Email).unwrap();

        stage.clear_side(Side::Exchange).unwrap();
        assert_eq!(
            stage.missing(&ex(&["e1", "e2", "e3"])).unwrap(),
            ex(&["e1", "e2", "e3"])
        );
        assert_eq!(stage.exchange_with(1, "b@x.test").unwrap(), None);
        assert_eq!(
            new_ids(&stage.new_records(None, 10).unwrap()),
            [(c("c1"), None)]
        );
        assert_eq!(stage.crm_ids(None, 10).unwrap(), crm_ids(&["c1"]));
        // The CRM record is a candidate again.
        assert_eq!(stage.unlinked_crm(1, None, 10).unwrap().len(), 1);
    }

    /// A pass holds `&Stage` across awaits in a task the runtime may move between threads.
    #[test]
    fn a_stage_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Stage>();
    }

    /// The scratch file holds a whole mailbox's contacts and events while a pass runs: it is
    /// its owner's alone, whatever the umask, and has no name another process could open.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_scratch_file_is_private_and_nameless() {
        use std::os::unix::fs::PermissionsExt;
        let stage = Stage::new().unwrap();
        // More than the page cache holds, so the database spills to its file.
        stage
            .db()
            .execute_batch(
                "CREATE TABLE filler (x BLOB);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4096)
                 INSERT INTO filler SELECT randomblob(1024) FROM n;",
            )
            .unwrap();
        let mut scratch = Vec::new();
        for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
            let Ok(target) = std::fs::read_link(entry.path()) else {
                continue;
            };
            // SQLite names its temporary files etilqs_*.
            if target.to_string_lossy().contains("etilqs_") {
                let mode = std::fs::metadata(entry.path())
                    .unwrap()
                    .permissions()
                    .mode();
                scratch.push((target, mode & 0o777));
            }
        }
        assert!(!scratch.is_empty(), "the stage never reached its file");
        for (target, mode) in &scratch {
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", target.display());
            assert!(
                target.to_string_lossy().ends_with("(deleted)"),
                "{} can be opened by name",
                target.display()
            );
        }
    }
}
