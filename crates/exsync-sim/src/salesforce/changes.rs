//! What one committed request changed in the org, as a journal record, and how a record is
//! replayed on load (see [`crate::journal`]).
//!
//! The store notes each record it writes (`Db::touch`); a record carries those records whole,
//! the entries the deletion log gained, and the org's few counters.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::store::{ApiAllowance, Db, DeletedEntry, Rec};
use crate::journal::{self, Journal};

/// The journal's name, beside the snapshot.
const JOURNAL_FILE: &str = "journal.jsonl";

/// One record as a commit left it: `None` when it no longer exists (an all-or-none
/// collection rolled its creation back).
#[derive(Serialize, Deserialize)]
struct RecordChange<'a> {
    object: String,
    id: String,
    record: Option<Cow<'a, Rec>>,
}

/// One committed request. The deletion log entries carry the index they start at, so
/// replaying a record twice adds them once.
#[derive(Serialize, Deserialize)]
struct Commit<'a> {
    #[serde(default)]
    records: Vec<RecordChange<'a>>,
    #[serde(default)]
    deleted_at: usize,
    #[serde(default)]
    deleted: Vec<Cow<'a, DeletedEntry>>,
    next_serial: u64,
    api: Cow<'a, ApiAllowance>,
    clock_offset_seconds: i64,
}

fn journal_path(snapshot: &Path) -> PathBuf {
    snapshot.with_file_name(JOURNAL_FILE)
}

fn apply(db: &mut Db, commit: Commit<'_>) -> Result<()> {
    for change in commit.records {
        let records = db.records.entry(change.object).or_default();
        match change.record {
            Some(rec) => {
                records.insert(change.id, rec.into_owned());
            }
            None => {
                records.remove(&change.id);
            }
        }
    }
    if db.deleted_log.len() < commit.deleted_at {
        bail!(
            "deletions start at {} but only {} precede them",
            commit.deleted_at,
            db.deleted_log.len()
        );
    }
    let known = db.deleted_log.len() - commit.deleted_at;
    db.deleted_log
        .extend(commit.deleted.into_iter().skip(known).map(Cow::into_owned));
    db.next_serial = db.next_serial.max(commit.next_serial);
    db.api = commit.api.into_owned();
    db.clock_offset_seconds = commit.clock_offset_seconds;
    Ok(())
}

/// Replays the journal beside the snapshot at `snapshot` over `db`, loaded from it.
pub(super) fn replay(snapshot: &Path, db: &mut Db) -> Result<()> {
    journal::replay(&journal_path(snapshot), |commit: Commit<'static>| {
        apply(db, commit)
    })?;
    db.journaled();
    Ok(())
}

/// The org's persistence: the snapshot and the journal after it.
#[derive(Debug)]
pub(super) struct Persistence {
    snapshot: PathBuf,
    journal: Journal,
}

impl Persistence {
    /// Writes `db` as the snapshot at `snapshot` and starts an empty journal beside it (on
    /// every start, which also drops a torn line a crash left).
    pub(super) fn start(snapshot: &Path, db: &mut Db) -> Result<Persistence> {
        let snapshot_len = db.save(snapshot)?;
        db.journaled();
        let journal = Journal::start_empty(&journal_path(snapshot), snapshot_len)?;
        Ok(Persistence {
            snapshot: snapshot.to_owned(),
            journal,
        })
    }

    /// Makes durable what `db` changed since the last commit; returns once it is fsync'd.
    /// A snapshot may follow, whose failure only leaves the journal longer.
    pub(super) fn commit(&mut self, db: &mut Db) -> Result<()> {
        if self.journal.wants_snapshot() {
            return self.snapshot(db);
        }
        let deleted_at = db.journaled_deletions().min(db.deleted_log.len());
        let record = Commit {
            records: db
                .touched()
                .map(|(object, id)| RecordChange {
                    object: object.clone(),
                    id: id.clone(),
                    record: db
                        .records
                        .get(object)
                        .and_then(|r| r.get(id))
                        .map(Cow::Borrowed),
                })
                .collect(),
            deleted_at,
            deleted: db.deleted_log[deleted_at..]
                .iter()
                .map(Cow::Borrowed)
                .collect(),
            next_serial: db.next_serial,
            api: Cow::Borrowed(&db.api),
            clock_offset_seconds: db.clock_offset_seconds,
        };
        let appended = self.journal.append(&record);
        db.journaled();
        appended?;
        if self.journal.wants_snapshot() {
            if let Err(e) = self.snapshot(db) {
                tracing::warn!(error = %e, "writing a snapshot failed; the journal keeps growing");
            }
        }
        Ok(())
    }

    fn snapshot(&mut self, db: &mut Db) -> Result<()> {
        let snapshot_len = db.save(&self.snapshot)?;
        db.journaled();
        self.journal
            .snapshot_written(snapshot_len)
            .context("emptying the journal after a snapshot")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::io::Write;

    use serde_json::json;

    use super::*;
    use crate::salesforce::schema::Schema;
    use crate::salesforce::store::as_rec;

    fn as_json(db: &Db) -> serde_json::Value {
        serde_json::to_value(db).unwrap()
    }

    /// Creates, updates and deletes contacts and accounts, committing after each request as
    /// the server does, with a snapshot halfway.
    fn many_writes(db: &mut Db, p: &mut Persistence, schema: &Schema) {
        let now = db.now();
        for round in 0..10 {
            if round == 5 {
                p.snapshot(db).unwrap();
            }
            let mut ids = Vec::new();
            for i in 0..40 {
                let input = as_rec(json!({"LastName": format!("Lovelace {round}.{i}")}));
                ids.push(db.create(schema, "Contact", input, "", now).unwrap());
            }
            db.create(
                schema,
                "Account",
                as_rec(json!({"Name": format!("Engines {round}")})),
                "",
                now,
            )
            .unwrap();
            p.commit(db).unwrap();
            for (i, id) in ids.iter().enumerate() {
                match i % 4 {
                    0 => {
                        let input = as_rec(json!({"Title": format!("Countess {round}")}));
                        db.update(schema, Some("Contact"), id, input, "", now)
                            .unwrap();
                    }
                    1 => {
                        db.delete(schema, id, now).unwrap();
                    }
                    _ => continue,
                }
                p.commit(db).unwrap();
            }
            db.api.used += 7;
            db.clock_offset_seconds += 60;
            p.commit(db).unwrap();
        }
    }

    #[test]
    fn many_writes_survive_a_restart_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Schema::standard();
        let path = dir.path().join("state.json");
        let mut db = Db::fresh(&schema).unwrap();
        let mut p = Persistence::start(&path, &mut db).unwrap();
        many_writes(&mut db, &mut p, &schema);
        assert!(std::fs::metadata(journal_path(&path)).unwrap().len() > 0);
        let mut back = Db::load_or_create(&path, &schema).unwrap();
        assert_eq!(as_json(&back), as_json(&db));
        #[cfg(unix)]
        for file in [path.clone(), journal_path(&path)] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", file.display());
        }
        // A restart folds the journal into the snapshot and loads the same org again.
        drop(Persistence::start(&path, &mut back).unwrap());
        assert_eq!(std::fs::metadata(journal_path(&path)).unwrap().len(), 0);
        assert_eq!(
            as_json(&Db::load_or_create(&path, &schema).unwrap()),
            as_json(&db)
        );
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_a_replayed_snapshot_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Schema::standard();
        let path = dir.path().join("state.json");
        let mut db = Db::fresh(&schema).unwrap();
        let mut p = Persistence::start(&path, &mut db).unwrap();
        let now = db.now();
        let id = db
            .create(
                &schema,
                "Contact",
                as_rec(json!({"LastName": "Ada"})),
                "",
                now,
            )
            .unwrap();
        p.commit(&mut db).unwrap();
        db.delete(&schema, &id, now).unwrap();
        p.commit(&mut db).unwrap();
        let committed = as_json(&db);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(journal_path(&path))
            .unwrap();
        f.write_all(br#"{"records":[{"object":"Contact","id":"003"#)
            .unwrap();
        drop(f);
        assert_eq!(
            as_json(&Db::load_or_create(&path, &schema).unwrap()),
            committed
        );
        // A snapshot written without the journal emptied after it: replaying changes nothing
        // (the deletion is logged once).
        db.save(&path).unwrap();
        let back = Db::load_or_create(&path, &schema).unwrap();
        assert_eq!(as_json(&back), committed);
        assert_eq!(back.deleted_log.len(), 1);
    }
}
