//! Schema migrations. `PRAGMA user_version` holds how many of [`MIGRATIONS`] a database has
//! had applied; opening applies the missing ones in one transaction and refuses a database
//! written by a newer exsync rather than guess at its schema. Never edit a released entry:
//! append a new one.

use rusqlite::{Connection, TransactionBehavior};

use crate::error::StoreError;

/// Every table is STRICT so a wrong type is an error, not a silent conversion. Times are
/// RFC 3339 UTC text with nanoseconds at fixed width, so text order is time order.
const V1: &str = r#"
CREATE TABLE users (
    user_key     TEXT PRIMARY KEY NOT NULL CHECK (user_key <> ''),
    paused       INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    paused_reason TEXT,
    paused_at    TEXT,
    last_run_id  INTEGER REFERENCES runs(id) ON DELETE SET NULL,
    created_at   TEXT NOT NULL,
    CHECK ((paused = 1) = (paused_reason IS NOT NULL))
) STRICT;

CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    user_key    TEXT NOT NULL REFERENCES users(user_key) ON DELETE CASCADE,
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    created     INTEGER NOT NULL DEFAULT 0 CHECK (created >= 0),
    updated     INTEGER NOT NULL DEFAULT 0 CHECK (updated >= 0),
    deleted     INTEGER NOT NULL DEFAULT 0 CHECK (deleted >= 0),
    conflicts   INTEGER NOT NULL DEFAULT 0 CHECK (conflicts >= 0),
    failures    INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
    error       TEXT
) STRICT;
CREATE INDEX runs_by_user ON runs (user_key, id);

-- One row per linked pair: the merge base of the three-way merge. The two UNIQUE
-- constraints make it impossible for one record to sit in two pairs.
CREATE TABLE pairs (
    id               INTEGER PRIMARY KEY,
    user_key         TEXT NOT NULL REFERENCES users(user_key) ON DELETE CASCADE,
    kind             TEXT NOT NULL CHECK (kind IN ('contact', 'event')),
    crm_id           TEXT NOT NULL CHECK (crm_id <> ''),
    exchange_id      TEXT NOT NULL CHECK (exchange_id <> ''),
    content          TEXT NOT NULL CHECK (json_valid(content)),
    content_hash     TEXT NOT NULL,
    crm_version      TEXT,
    exchange_version TEXT,
    updated_at       TEXT NOT NULL,
    UNIQUE (user_key, kind, crm_id),
    UNIQUE (user_key, kind, exchange_id)
) STRICT;

-- Per-mailbox-folder Exchange SyncStates (user_key set) and org-wide CRM watermarks
-- (user_key empty).
CREATE TABLE cursors (
    scope_kind TEXT NOT NULL CHECK (scope_kind IN ('folder', 'crm_object')),
    user_key   TEXT NOT NULL,
    name       TEXT NOT NULL CHECK (name <> ''),
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (scope_kind, user_key, name),
    CHECK ((scope_kind = 'folder') = (user_key <> ''))
) STRICT;

CREATE TABLE unresolved (
    user_key    TEXT NOT NULL REFERENCES users(user_key) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('contact', 'event')),
    side        TEXT NOT NULL CHECK (side IN ('crm', 'exchange')),
    item_id     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    occurrences INTEGER NOT NULL DEFAULT 1 CHECK (occurrences >= 1),
    PRIMARY KEY (user_key, kind, side, item_id)
) STRICT;

CREATE TABLE conflicts (
    id             INTEGER PRIMARY KEY,
    run_id         INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    user_key       TEXT NOT NULL REFERENCES users(user_key) ON DELETE CASCADE,
    at             TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('contact', 'event')),
    crm_id         TEXT NOT NULL,
    exchange_id    TEXT NOT NULL,
    field          TEXT NOT NULL,
    crm_value      TEXT CHECK (crm_value IS NULL OR json_valid(crm_value)),
    exchange_value TEXT CHECK (exchange_value IS NULL OR json_valid(exchange_value)),
    winner         TEXT NOT NULL CHECK (winner IN ('crm', 'exchange'))
) STRICT;
CREATE INDEX conflicts_by_user ON conflicts (user_key, id);

-- Echo log: versions of CRM records that exsync itself produced.
CREATE TABLE crm_writes (
    crm_id          TEXT NOT NULL,
    system_modstamp TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('contact', 'event')),
    user_key        TEXT REFERENCES users(user_key) ON DELETE SET NULL,
    written_at      TEXT NOT NULL,
    PRIMARY KEY (crm_id, system_modstamp)
) STRICT;
CREATE INDEX crm_writes_by_time ON crm_writes (written_at);

-- Encrypted by the vault; the store never sees plaintext.
CREATE TABLE secrets (
    name       TEXT PRIMARY KEY NOT NULL CHECK (name <> ''),
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;

CREATE TABLE admin_users (
    name          TEXT PRIMARY KEY NOT NULL CHECK (name <> ''),
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
) STRICT;

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    created_at   TEXT NOT NULL,
    last_used_at TEXT
) STRICT;

CREATE TABLE sessions (
    id         TEXT PRIMARY KEY NOT NULL,
    admin_user TEXT NOT NULL REFERENCES admin_users(name) ON DELETE CASCADE ON UPDATE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
) STRICT;
CREATE INDEX sessions_by_user ON sessions (admin_user);

CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY,
    at     TEXT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(detail))
) STRICT;
"#;

/// Console-managed settings that have no place in `exsync.toml` (whether sync is enabled),
/// as JSON values by name.
const V2: &str = r#"
CREATE TABLE settings (
    name       TEXT PRIMARY KEY NOT NULL CHECK (name <> ''),
    value      TEXT NOT NULL CHECK (json_valid(value)),
    updated_at TEXT NOT NULL
) STRICT;
"#;

/// CRM users a pass left out because their address cannot name a mailbox, so the console
/// and `exsync status` can say who is not synced and why. A pass replaces the whole list.
const V3: &str = r#"
CREATE TABLE skipped_crm_users (
    crm_id     TEXT PRIMARY KEY NOT NULL CHECK (crm_id <> ''),
    address    TEXT NOT NULL,
    reason     TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen  TEXT NOT NULL
) STRICT;
"#;

/// The intent journal: the writes a pass is about to make, committed before they go out and
/// removed by the commit that stores their outcome. What is left after a crash is what the
/// next pass must settle by evidence rather than guess (see `exsync-engine`'s `recover.rs`).
const V4: &str = r#"
CREATE TABLE intents (
    id           INTEGER PRIMARY KEY,
    user_key     TEXT NOT NULL REFERENCES users(user_key) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('contact', 'event')),
    op           TEXT NOT NULL CHECK (json_valid(op)),
    sent         INTEGER NOT NULL DEFAULT 0 CHECK (sent IN (0, 1)),
    journaled_at TEXT NOT NULL
) STRICT;
CREATE INDEX intents_by_user ON intents (user_key, kind, id);
"#;

/// A first link's merges are kept with the conflicts, marked: two records never synced held a
/// field differently and the newer one's value was taken (`exsync_core::config::FirstLink`).
const V5: &str = r#"
ALTER TABLE conflicts ADD COLUMN first_link INTEGER NOT NULL DEFAULT 0 CHECK (first_link IN (0, 1));
"#;

/// What a pass noticed that the admin should know (`Notice`), as a JSON array on its run.
const V6: &str = r#"
ALTER TABLE runs ADD COLUMN notices TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(notices));
"#;

/// The mailbox backend (`ews`, `graph`) that served each run, so status shows where a user's
/// mailbox is synced through in a hybrid organisation.
const V7: &str = r#"
ALTER TABLE runs ADD COLUMN backend TEXT CHECK (backend IS NULL OR backend <> '');
"#;

/// The users of a CRM record are looked up for each record the org-wide read returns
/// (`state::PAIR_USERS`); without this index each look-up scanned every pair.
const V8: &str = r#"
CREATE INDEX pairs_by_crm_id ON pairs (kind, crm_id);
"#;

/// Where each mailbox whose backend is located automatically (`auto`) was last found; kept
/// until it is due to be checked again.
const V9: &str = r#"
CREATE TABLE mailbox_routes (
    user_key   TEXT PRIMARY KEY NOT NULL REFERENCES users(user_key) ON DELETE CASCADE,
    backend    TEXT NOT NULL CHECK (backend <> ''),
    evidence   TEXT NOT NULL,
    checked_at TEXT NOT NULL,
    recheck    TEXT CHECK (recheck IS NULL OR recheck <> '')
) STRICT;
"#;

/// The name of each unresolved record and conflicting pair (a contact's name and address, an
/// event's subject and start), so status shows more than ids; and the configuration each run
/// synced its user by, with the group that brought it, so status shows how a user is assigned.
const V10: &str = r#"
ALTER TABLE unresolved ADD COLUMN name TEXT;
ALTER TABLE conflicts ADD COLUMN name TEXT;
ALTER TABLE runs ADD COLUMN configuration TEXT CHECK (configuration IS NULL OR configuration <> '');
ALTER TABLE runs ADD COLUMN via_group TEXT CHECK (via_group IS NULL OR configuration IS NOT NULL);
"#;

/// Allowances drawn from (`roles::Budgets`), as on PostgreSQL; `window_ends` is in seconds
/// since 1970 by SQLite's clock.
const V11: &str = r#"
CREATE TABLE call_budgets (
    name        TEXT PRIMARY KEY NOT NULL CHECK (name <> ''),
    used        INTEGER NOT NULL CHECK (used >= 0),
    max         INTEGER NOT NULL CHECK (max >= 0),
    reserve     INTEGER NOT NULL CHECK (reserve >= 0),
    window_ends REAL NOT NULL
) STRICT;
"#;

/// Slots of a server's concurrency taken like leases (`roles::Slots`), as on PostgreSQL;
/// `expires_at` is in seconds since 1970 by SQLite's clock. And the users who left the sync
/// and read their records in full when they are back (`roles::Departures`).
const V12: &str = r#"
CREATE TABLE crm_full_reads_due (
    user_key TEXT PRIMARY KEY NOT NULL REFERENCES users(user_key) ON DELETE CASCADE,
    since    TEXT NOT NULL
) STRICT;

CREATE TABLE slots (
    pool       TEXT NOT NULL CHECK (pool <> ''),
    number     INTEGER NOT NULL CHECK (number >= 0),
    holder     TEXT CHECK (holder IS NULL OR holder <> ''),
    epoch      INTEGER NOT NULL DEFAULT 0,
    expires_at REAL,
    PRIMARY KEY (pool, number),
    CHECK ((holder IS NULL) = (expires_at IS NULL))
) STRICT;
"#;

/// The id a journaled create's side answered with, stored as soon as the side answers: after a
/// crash before the commit, a copy with that id that is gone by its tag was made and deleted,
/// so recovery pairs it as deleted instead of making it again.
const V13: &str = r#"
ALTER TABLE intents ADD COLUMN answered_id TEXT CHECK (answered_id IS NULL OR answered_id <> '');
"#;

/// Users a configuration assigns whom no active CRM user pairs with, as the last pass found
/// them, for `exsync status` and the console (the pass's summary and metrics had them only).
const V14: &str = r#"
CREATE TABLE unmatched_users (
    user_key   TEXT PRIMARY KEY NOT NULL CHECK (user_key <> ''),
    reason     TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen  TEXT NOT NULL
) STRICT;
"#;

/// The two tables every synced item writes to, pairs and the intent journal, rebuilt without
/// their `json_valid` checks: the store itself serialises every value they hold, and parsing
/// each one again on every insert and update was 2.5% of a first sync's CPU. A pair's content is
/// still verified against its hash whenever it is read (`state::PairRow::decode`). Every other
/// column, constraint and index is as before.
const V15: &str = r#"
CREATE TABLE pairs_v15 (
    id               INTEGER PRIMARY KEY,
    user_key         TEXT NOT NULL REFERENCES users(user_key) ON DELETE CASCADE,
    kind             TEXT NOT NULL CHECK (kind IN ('contact', 'event')),
    crm_id           TEXT NOT NULL CHECK (crm_id <> ''),
    exchange_id      TEXT NOT NULL CHECK (exchange_id <> ''),
    content          TEXT NOT NULL,
    content_hash     TEXT NOT NULL,
    crm_version      TEXT,
    exchange_version TEXT,
    updated_at       TEXT NOT NULL,
    UNIQUE (user_key, kind, crm_id),
    UNIQUE (user_key, kind, exchange_id)
) STRICT;
INSERT INTO pairs_v15 (id, user_key, kind, crm_id, exchange_id, content, content_hash,
                       crm_version, exchange_version, updated_at)
    SELECT id, user_key, kind, crm_id, exchange_id, content, content_hash,
           crm_version, exchange_version, updated_at
    FROM pairs;
DROP TABLE pairs;
ALTER TABLE pairs_v15 RENAME TO pairs;
CREATE INDEX pairs_by_crm_id ON pairs (kind, crm_id);

CREATE TABLE intents_v15 (
    id           INTEGER PRIMARY KEY,
    user_key     TEXT NOT NULL REFERENCES users(user_key) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('contact', 'event')),
    op           TEXT NOT NULL,
    sent         INTEGER NOT NULL DEFAULT 0 CHECK (sent IN (0, 1)),
    journaled_at TEXT NOT NULL,
    answered_id  TEXT CHECK (answered_id IS NULL OR answered_id <> '')
) STRICT;
INSERT INTO intents_v15 (id, user_key, kind, op, sent, journaled_at, answered_id)
    SELECT id, user_key, kind, op, sent, journaled_at, answered_id FROM intents;
DROP TABLE intents;
ALTER TABLE intents_v15 RENAME TO intents;
CREATE INDEX intents_by_user ON intents (user_key, kind, id);
"#;

/// A write's marks (handed to its side; the id its side answered a create with) are rows of
/// their own instead of columns of the journal entry: SQLite rewrites a whole row to change one
/// column, and an entry holds the write's content, so marking a batch rewrote all of it twice
/// more. `intents_marked` reads an entry with its marks, as the columns did.
const V16: &str = r#"
CREATE TABLE intents_v16 (
    id           INTEGER PRIMARY KEY,
    user_key     TEXT NOT NULL REFERENCES users(user_key) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('contact', 'event')),
    op           TEXT NOT NULL,
    journaled_at TEXT NOT NULL
) STRICT;
INSERT INTO intents_v16 (id, user_key, kind, op, journaled_at)
    SELECT id, user_key, kind, op, journaled_at FROM intents;
CREATE TABLE intents_sent (
    id INTEGER PRIMARY KEY REFERENCES intents_v16(id) ON DELETE CASCADE
) STRICT;
INSERT INTO intents_sent (id) SELECT id FROM intents WHERE sent = 1;
CREATE TABLE intents_answered (
    id          INTEGER PRIMARY KEY REFERENCES intents_v16(id) ON DELETE CASCADE,
    answered_id TEXT NOT NULL CHECK (answered_id <> '')
) STRICT;
INSERT INTO intents_answered (id, answered_id)
    SELECT id, answered_id FROM intents WHERE answered_id IS NOT NULL;
DROP TABLE intents;
ALTER TABLE intents_v16 RENAME TO intents;
CREATE INDEX intents_by_user ON intents (user_key, kind, id);
CREATE VIEW intents_marked AS
    SELECT i.id, i.user_key, i.kind, i.op, s.id IS NOT NULL AS sent, i.journaled_at,
           a.answered_id
    FROM intents i
    LEFT JOIN intents_sent s ON s.id = i.id
    LEFT JOIN intents_answered a ON a.id = i.id;
"#;

/// The journal keeps a batch of writes in one row instead of one row per write: inserting,
/// marking and removing 100 rows per batch cost a first sync more than writing its pairs.
/// An intent's id is its batch's id × 1024 plus its place in the batch, so ids stay ordered
/// and a batch's are consecutive. A batch's marks (which writes were handed to their side,
/// the ids creates were answered with, which writes a commit settled) are JSON in a row of
/// their own beside it, for the reason V16 gave; once every write of a batch is settled the
/// batch goes, and its marks with it. `intents_marked` still reads one row per write with its
/// marks. An entry of V16 becomes a batch of one, keeping its id as the batch's.
const V17: &str = r#"
CREATE TABLE intent_batches (
    id           INTEGER PRIMARY KEY,
    user_key     TEXT NOT NULL REFERENCES users(user_key) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('contact', 'event')),
    ops          TEXT NOT NULL,
    writes       INTEGER NOT NULL CHECK (writes BETWEEN 1 AND 1024),
    journaled_at TEXT NOT NULL
) STRICT;
CREATE INDEX intent_batches_by_user ON intent_batches (user_key, kind, id);
CREATE TABLE intent_marks (
    batch    INTEGER PRIMARY KEY REFERENCES intent_batches(id) ON DELETE CASCADE,
    sent     TEXT NOT NULL DEFAULT '[]',
    answered TEXT NOT NULL DEFAULT '{}',
    settled  TEXT NOT NULL DEFAULT '[]'
) STRICT;
INSERT INTO intent_batches (id, user_key, kind, ops, writes, journaled_at)
    SELECT id, user_key, kind, '[' || op || ']', 1, journaled_at FROM intents;
INSERT INTO intent_marks (batch, sent, answered)
    SELECT i.id,
           CASE WHEN s.id IS NULL THEN '[]' ELSE '[0]' END,
           CASE WHEN a.id IS NULL THEN '{}' ELSE json_object('0', a.answered_id) END
    FROM intents i
    LEFT JOIN intents_sent s ON s.id = i.id
    LEFT JOIN intents_answered a ON a.id = i.id
    WHERE s.id IS NOT NULL OR a.id IS NOT NULL;
DROP VIEW intents_marked;
DROP TABLE intents_sent;
DROP TABLE intents_answered;
DROP TABLE intents;
CREATE VIEW intents_marked AS
    SELECT b.id * 1024 + w.key AS id, b.user_key, b.kind, w.value AS op,
           EXISTS (SELECT 1 FROM json_each(m.sent) AS s WHERE s.value = w.key) AS sent,
           b.journaled_at,
           json_extract(m.answered, '$."' || w.key || '"') AS answered_id
    FROM intent_batches AS b
    CROSS JOIN json_each(b.ops) AS w
    LEFT JOIN intent_marks AS m ON m.batch = b.id
    WHERE NOT EXISTS (SELECT 1 FROM json_each(m.settled) AS s WHERE s.value = w.key);
"#;

pub(crate) const MIGRATIONS: &[&str] = &[
    V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11, V12, V13, V14, V15, V16, V17,
];

pub(crate) fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// Brings the database to `migrations.len()`; returns the version it is at afterwards.
pub(crate) fn migrate(
    conn: &mut Connection,
    path: &str,
    migrations: &[&str],
) -> Result<i64, StoreError> {
    let latest = i64::try_from(migrations.len()).unwrap_or(i64::MAX);
    let open_err = |e: rusqlite::Error| StoreError::Open {
        path: path.to_owned(),
        detail: e.to_string(),
    };

    // Fast path without a write lock, so opening an up-to-date database never waits behind a
    // running pass of another process.
    let found = user_version(conn).map_err(open_err)?;
    check_not_newer(path, found, latest)?;
    if found == latest {
        return Ok(found);
    }

    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(open_err)?;
    // Another process may have migrated between our read and the lock.
    let from = user_version(&tx).map_err(open_err)?;
    check_not_newer(path, from, latest)?;
    let fail = |to: i64, e: rusqlite::Error| StoreError::Migration {
        path: path.to_owned(),
        from,
        to,
        detail: e.to_string(),
    };
    for (index, sql) in migrations
        .iter()
        .enumerate()
        .skip(usize::try_from(from).unwrap_or(0))
    {
        let to = i64::try_from(index + 1).unwrap_or(i64::MAX);
        tx.execute_batch(sql).map_err(|e| fail(to, e))?;
        // user_version lives in the database header and is covered by the transaction.
        tx.pragma_update(None, "user_version", to)
            .map_err(|e| fail(to, e))?;
    }
    tx.commit().map_err(|e| fail(latest, e))?;
    tracing::info!(path, from, to = latest, "state database schema upgraded");
    Ok(latest)
}

pub(crate) fn check_not_newer(path: &str, found: i64, supported: i64) -> Result<(), StoreError> {
    if found > supported {
        return Err(StoreError::SchemaTooNew {
            path: path.to_owned(),
            found,
            supported,
        });
    }
    if found < 0 {
        return Err(StoreError::Open {
            path: path.to_owned(),
            detail: format!("schema version {found} is negative; this is not an exsync database"),
        });
    }
    Ok(())
}
