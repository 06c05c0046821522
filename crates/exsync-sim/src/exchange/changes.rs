//! What one committed request changed in the mailbox store, as a journal record, and how a
//! record is replayed on load (see [`crate::journal`]).
//!
//! Changes are found from the sequence numbers every write takes, not by comparing the
//! store: an object written since the request began has a sequence above the one the
//! request started at, new items and folders are keyed by that sequence (so they sit at the
//! end of their maps), and every removal appends a tombstone. The one exception, an item
//! changed in place, is named in [`Mailbox::changed_in_place`]. So a record costs the size of
//! the change plus a walk of the mailbox's few folders.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::store::{self, Folder, Item, Mailbox, State, Tombstone};
use crate::journal::{self, Journal};

/// The journal beside the snapshot in a data directory.
pub(crate) const JOURNAL_FILE: &str = "journal.jsonl";

/// One committed request: the global sequence after it and what it did to each mailbox.
#[derive(Serialize, Deserialize)]
struct Commit<'a> {
    seq: u64,
    mailboxes: Vec<MailboxChange<'a>>,
}

/// A mailbox's fields (always, they are small) and the objects one request wrote or removed.
/// Tombstones carry the index they start at, so replaying a record twice adds them once.
#[derive(Serialize, Deserialize)]
struct MailboxChange<'a> {
    key: String,
    address: String,
    display_name: String,
    impersonation: bool,
    redirect_addr: Option<String>,
    redirect_url: Option<String>,
    #[serde(default)]
    remote: bool,
    #[serde(default)]
    folders: Vec<Cow<'a, Folder>>,
    #[serde(default)]
    folders_gone: Vec<u64>,
    #[serde(default)]
    items: Vec<Cow<'a, Item>>,
    #[serde(default)]
    items_gone: Vec<u64>,
    #[serde(default)]
    tombstones_at: usize,
    #[serde(default)]
    tombstones: Vec<Cow<'a, Tombstone>>,
    #[serde(default)]
    folder_tombstones_at: usize,
    #[serde(default)]
    folder_tombstones: Vec<Cow<'a, Tombstone>>,
}

/// Index of the first tombstone written after sequence `since` (they are appended in order).
fn first_after(tombstones: &[Tombstone], since: u64) -> usize {
    tombstones
        .iter()
        .rposition(|t| t.seq <= since)
        .map_or(0, |i| i + 1)
}

/// What the request that started at sequence `since` did to `mb`.
fn change_of<'a>(key: &str, mb: &'a Mailbox, since: u64) -> MailboxChange<'a> {
    let mut ids: BTreeSet<u64> = mb.items.range(since + 1..).map(|(id, _)| *id).collect();
    ids.extend(mb.touched.iter().filter(|id| mb.items.contains_key(id)));
    #[cfg(debug_assertions)]
    for item in mb.items.values().filter(|i| i.seq > since) {
        debug_assert!(
            ids.contains(&item.id),
            "item {} was written without being journaled",
            item.id
        );
    }
    let tombstones_at = first_after(&mb.tombstones, since);
    let folder_tombstones_at = first_after(&mb.folder_tombstones, since);
    let tombstones = &mb.tombstones[tombstones_at..];
    let folder_tombstones = &mb.folder_tombstones[folder_tombstones_at..];
    MailboxChange {
        key: key.to_owned(),
        address: mb.address.clone(),
        display_name: mb.display_name.clone(),
        impersonation: mb.impersonation,
        redirect_addr: mb.redirect_addr.clone(),
        redirect_url: mb.redirect_url.clone(),
        remote: mb.remote,
        folders: mb
            .folders
            .values()
            .filter(|f| f.seq > since || f.id > since)
            .map(Cow::Borrowed)
            .collect(),
        folders_gone: folder_tombstones
            .iter()
            .map(|t| t.id)
            .filter(|id| !mb.folders.contains_key(id))
            .collect(),
        items: ids
            .iter()
            .filter_map(|id| mb.items.get(id))
            .map(Cow::Borrowed)
            .collect(),
        items_gone: tombstones
            .iter()
            .map(|t| t.id)
            .filter(|id| !mb.items.contains_key(id))
            .collect(),
        tombstones_at,
        tombstones: tombstones.iter().map(Cow::Borrowed).collect(),
        folder_tombstones_at,
        folder_tombstones: folder_tombstones.iter().map(Cow::Borrowed).collect(),
    }
}

/// Appends `new` (which starts at index `at` of the record's list) to `list`, skipping what a
/// snapshot already holds.
fn extend_at(list: &mut Vec<Tombstone>, at: usize, new: Vec<Cow<'_, Tombstone>>) -> Result<()> {
    if list.len() < at {
        bail!(
            "tombstones start at {at} but only {} precede them",
            list.len()
        );
    }
    let known = list.len() - at;
    list.extend(new.into_iter().skip(known).map(Cow::into_owned));
    Ok(())
}

fn apply(st: &mut State, commit: Commit<'_>) -> Result<()> {
    st.seq = st.seq.max(commit.seq);
    for c in commit.mailboxes {
        let mb = st.mailboxes.entry(c.key).or_default();
        mb.address = c.address;
        mb.display_name = c.display_name;
        mb.impersonation = c.impersonation;
        mb.redirect_addr = c.redirect_addr;
        mb.redirect_url = c.redirect_url;
        mb.remote = c.remote;
        for id in c.folders_gone {
            mb.folders.remove(&id);
        }
        for f in c.folders {
            mb.folders.insert(f.id, f.into_owned());
        }
        for id in c.items_gone {
            mb.items.remove(&id);
        }
        for item in c.items {
            mb.items.insert(item.id, item.into_owned());
        }
        extend_at(&mut mb.tombstones, c.tombstones_at, c.tombstones)?;
        extend_at(
            &mut mb.folder_tombstones,
            c.folder_tombstones_at,
            c.folder_tombstones,
        )?;
    }
    Ok(())
}

/// Replays the journal in `dir` over `st`, the snapshot loaded from there.
pub(crate) fn replay(dir: &Path, st: &mut State) -> Result<()> {
    journal::replay(&dir.join(JOURNAL_FILE), |commit: Commit<'static>| {
        apply(st, commit)
    })
}

/// The store's persistence: the snapshot in the data directory and the journal after it.
#[derive(Debug)]
pub(crate) struct Persistence {
    dir: std::path::PathBuf,
    journal: Journal,
    /// Each mailbox file's size, and the meta file's under the empty key: the snapshot's.
    sizes: BTreeMap<String, u64>,
    /// Mailboxes the journal changed since the last snapshot: the next one writes only these
    /// (the others' files still hold them), so with many mailboxes a snapshot costs what
    /// changed since the last, not the whole store.
    dirty: BTreeSet<String>,
}

impl Persistence {
    /// Writes `st` as the snapshot in `dir` and starts an empty journal after it (on every
    /// start, which also drops a torn line a crash left).
    pub(crate) fn start(dir: &Path, st: &State) -> Result<Persistence> {
        let mut sizes = BTreeMap::new();
        let snapshot_len = note_sizes(&mut sizes, store::save(dir, st, st.mailboxes.keys())?, st);
        let journal = Journal::start_empty(&dir.join(JOURNAL_FILE), snapshot_len)?;
        Ok(Persistence {
            dir: dir.to_owned(),
            journal,
            sizes,
            dirty: BTreeSet::new(),
        })
    }

    /// Makes durable what the request that started at sequence `since` did to the mailboxes
    /// `keys` (lower-case addresses). Returns once the change is fsync'd; a snapshot may
    /// follow, whose failure only leaves the journal longer.
    pub(crate) fn commit(&mut self, st: &mut State, since: u64, keys: &[String]) -> Result<()> {
        self.dirty.extend(keys.iter().cloned());
        let result = if self.journal.wants_snapshot() {
            self.snapshot(st)
        } else {
            let record = Commit {
                seq: st.seq,
                mailboxes: keys
                    .iter()
                    .filter_map(|k| st.mailboxes.get(k).map(|mb| change_of(k, mb, since)))
                    .collect(),
            };
            self.journal.append(&record)
        };
        for k in keys {
            if let Some(mb) = st.mailboxes.get_mut(k) {
                mb.touched.clear();
            }
        }
        result?;
        if self.journal.wants_snapshot() {
            if let Err(e) = self.snapshot(st) {
                tracing::warn!(error = %e, "writing a snapshot failed; the journal keeps growing");
            }
        }
        Ok(())
    }

    /// Writes the mailboxes changed since the last snapshot and the meta file, then empties
    /// the journal.
    fn snapshot(&mut self, st: &State) -> Result<()> {
        let saved = store::save(&self.dir, st, &self.dirty)?;
        self.dirty.clear();
        let snapshot_len = note_sizes(&mut self.sizes, saved, st);
        self.journal
            .snapshot_written(snapshot_len)
            .context("emptying the journal after a snapshot")
    }
}

/// Notes in `sizes` the files a snapshot of `st` wrote; returns the whole snapshot's size.
fn note_sizes(sizes: &mut BTreeMap<String, u64>, saved: store::Saved, st: &State) -> u64 {
    sizes.extend(saved.mailboxes);
    sizes.insert(String::new(), saved.meta);
    sizes.retain(|key, _| key.is_empty() || st.mailboxes.contains_key(key));
    sizes.values().sum()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::io::Write;

    use super::*;
    use crate::exchange::ops::{self, Ctx};
    use crate::exchange::store::Id;
    use crate::exchange::xml::{self, Element};

    const USER: &str = "ann@contoso.test";
    const OTHER: &str = "bob@contoso.test";

    fn fresh(dir: &Path) -> (State, Persistence) {
        let mut st = State::new("contoso.test", "svc", "pw", "tok");
        assert!(st.add_mailbox(USER, "Ann", true));
        assert!(st.add_mailbox(OTHER, "Bob", false));
        let p = Persistence::start(dir, &st).unwrap();
        (st, p)
    }

    /// Runs one EWS operation as the server does: dispatch, then commit what it wrote.
    fn run(st: &mut State, p: &mut Persistence, mailbox: &str, op: &str) -> Element {
        let since = st.seq;
        let mut ctx = Ctx {
            st,
            mailbox: mailbox.into(),
            dirty: false,
        };
        let answer = ops::dispatch(&mut ctx, &xml::parse(op).unwrap()).unwrap();
        if ctx.dirty {
            p.commit(st, since, &[mailbox.to_owned()]).unwrap();
        }
        xml::parse(&answer).unwrap()
    }

    fn ids(el: &Element, name: &str, out: &mut Vec<String>) {
        if el.name == name {
            out.extend(el.attr("Id").map(str::to_owned));
        }
        for c in &el.children {
            ids(c, name, out);
        }
    }

    fn create_contacts(
        st: &mut State,
        p: &mut Persistence,
        mailbox: &str,
        n: usize,
    ) -> Vec<String> {
        let contacts: String = (0..n)
            .map(|i| {
                format!(
                    "<Contact><GivenName>Ada</GivenName><Surname>Lovelace {i}</Surname>\
                     <CompanyName>Analytical Engines</CompanyName></Contact>"
                )
            })
            .collect();
        let answer = run(
            st,
            p,
            mailbox,
            &format!(
                r#"<CreateItem><SavedItemFolderId><DistinguishedFolderId Id="contacts"/></SavedItemFolderId><Items>{contacts}</Items></CreateItem>"#
            ),
        );
        let mut out = Vec::new();
        ids(&answer, "ItemId", &mut out);
        assert_eq!(out.len(), n);
        out
    }

    fn update(st: &mut State, p: &mut Persistence, id: &str, surname: &str) {
        run(
            st,
            p,
            USER,
            &format!(
                r#"<UpdateItem ConflictResolution="AlwaysOverwrite"><ItemChanges><ItemChange><ItemId Id="{id}"/><Updates><SetItemField><FieldURI FieldURI="contacts:Surname"/><Contact><Surname>{surname}</Surname></Contact></SetItemField></Updates></ItemChange></ItemChanges></UpdateItem>"#
            ),
        );
    }

    fn delete(st: &mut State, p: &mut Persistence, id: &str, how: &str) {
        run(
            st,
            p,
            USER,
            &format!(
                r#"<DeleteItem DeleteType="{how}"><ItemIds><ItemId Id="{id}"/></ItemIds></DeleteItem>"#
            ),
        );
    }

    fn as_json(st: &State) -> serde_json::Value {
        serde_json::to_value(st).unwrap()
    }

    /// Creates, updates, deletes (hard and into Deleted Items, which moves the item to a new
    /// id), folder creates, renames and deletes, and an impersonation change, in both
    /// mailboxes; enough to pass a snapshot threshold more than once.
    fn many_writes(st: &mut State, p: &mut Persistence) {
        for round in 0..12 {
            if round == 6 {
                // Half the writes before a snapshot, half in the journal after it.
                p.snapshot(st).unwrap();
            }
            let created = create_contacts(st, p, USER, 60);
            create_contacts(st, p, OTHER, 5);
            for (i, id) in created.iter().enumerate() {
                match i % 6 {
                    0 => update(st, p, id, &format!("Byron {round}")),
                    1 => delete(st, p, id, "HardDelete"),
                    2 => delete(st, p, id, "MoveToDeletedItems"),
                    _ => {}
                }
            }
            let folder = run(
                st,
                p,
                USER,
                &format!(
                    r#"<CreateFolder><ParentFolderId><DistinguishedFolderId Id="contacts"/></ParentFolderId><Folders><ContactsFolder><DisplayName>Round {round}</DisplayName></ContactsFolder></Folders></CreateFolder>"#
                ),
            );
            let mut folder_ids = Vec::new();
            ids(&folder, "FolderId", &mut folder_ids);
            let how = if round % 2 == 0 {
                "HardDelete"
            } else {
                "MoveToDeletedItems"
            };
            if round % 3 != 0 {
                run(
                    st,
                    p,
                    USER,
                    &format!(
                        r#"<DeleteFolder DeleteType="{how}"><FolderIds><FolderId Id="{}"/></FolderIds></DeleteFolder>"#,
                        folder_ids[0]
                    ),
                );
            }
        }
        let since = st.seq;
        st.mailbox_mut(OTHER).unwrap().impersonation = true;
        p.commit(st, since, &[OTHER.to_owned()]).unwrap();
    }

    #[test]
    fn many_writes_survive_a_restart_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, mut p) = fresh(dir.path());
        many_writes(&mut st, &mut p);
        let journal = std::fs::metadata(dir.path().join(JOURNAL_FILE))
            .unwrap()
            .len();
        assert!(journal > 0, "the last writes are in the journal");
        let back = store::load(dir.path()).unwrap().unwrap();
        assert_eq!(as_json(&back), as_json(&st));
        assert_eq!(back.seq, st.seq);
        // A restart folds the journal into a snapshot and loads the same state again.
        drop(Persistence::start(dir.path(), &back).unwrap());
        assert_eq!(
            std::fs::metadata(dir.path().join(JOURNAL_FILE))
                .unwrap()
                .len(),
            0
        );
        let again = store::load(dir.path()).unwrap().unwrap();
        assert_eq!(as_json(&again), as_json(&st));
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_a_replayed_snapshot_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, mut p) = fresh(dir.path());
        let created = create_contacts(&mut st, &mut p, USER, 10);
        update(&mut st, &mut p, &created[0], "Byron");
        delete(&mut st, &mut p, &created[1], "MoveToDeletedItems");
        let committed = as_json(&st);
        // A crash in the middle of appending the next request's record.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(JOURNAL_FILE))
            .unwrap();
        f.write_all(br#"{"seq":999,"mailboxes":[{"key":"ann@con"#)
            .unwrap();
        drop(f);
        let back = store::load(dir.path()).unwrap().unwrap();
        assert_eq!(as_json(&back), committed);
        // A crash after a snapshot was written but before the journal was emptied replays
        // records the snapshot already holds: nothing changes.
        store::save(dir.path(), &st, st.mailboxes.keys()).unwrap();
        let back = store::load(dir.path()).unwrap().unwrap();
        assert_eq!(as_json(&back), committed);
        // The id the moved item had is gone after a restart, as before it.
        let old = Id::decode(&created[1]).unwrap();
        let Id::Item { id, .. } = old else {
            panic!("not an item id")
        };
        assert!(!back.mailbox(USER).unwrap().items.contains_key(&id));
    }

    /// A snapshot writes the mailboxes changed since the last one; the others' files are left
    /// as they are, and the store loads whole from both.
    #[test]
    fn a_snapshot_writes_only_the_mailboxes_changed_since_the_last() {
        let files = |dir: &Path| -> BTreeMap<String, Vec<u8>> {
            std::fs::read_dir(dir.join("mailboxes"))
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    let name = e.file_name().to_string_lossy().into_owned();
                    (name, std::fs::read(e.path()).unwrap())
                })
                .collect()
        };
        let dir = tempfile::tempdir().unwrap();
        let (mut st, mut p) = fresh(dir.path());
        create_contacts(&mut st, &mut p, OTHER, 3);
        p.snapshot(&st).unwrap();
        let before = files(dir.path());
        assert_eq!(before.len(), 2);
        create_contacts(&mut st, &mut p, USER, 3);
        p.snapshot(&st).unwrap();
        let after = files(dir.path());
        let changed: Vec<&String> = after
            .iter()
            .filter(|(name, bytes)| before.get(*name) != Some(*bytes))
            .map(|(name, _)| name)
            .collect();
        assert_eq!(changed.len(), 1, "{changed:?}");
        assert_eq!(
            std::fs::metadata(dir.path().join(JOURNAL_FILE))
                .unwrap()
                .len(),
            0
        );
        let back = store::load(dir.path()).unwrap().unwrap();
        assert_eq!(as_json(&back), as_json(&st));
        assert_eq!(back.mailbox(OTHER).unwrap().items.len(), 3);
        // Its size counts with the others': the journal may grow four times the whole store.
        let whole: u64 = std::fs::read_dir(dir.path().join("mailboxes"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum::<u64>()
            + std::fs::metadata(dir.path().join("state.json"))
                .unwrap()
                .len();
        assert_eq!(p.sizes.values().sum::<u64>(), whole);
    }

    #[test]
    fn a_write_costs_its_change_not_the_mailbox() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, mut p) = fresh(dir.path());
        create_contacts(&mut st, &mut p, USER, 500);
        let path = dir.path().join(JOURNAL_FILE);
        let before = std::fs::metadata(&path).unwrap().len();
        let one = create_contacts(&mut st, &mut p, USER, 1);
        let grew = std::fs::metadata(&path).unwrap().len() - before;
        assert!(grew < 4096, "one contact took {grew} bytes of journal");
        let before = std::fs::metadata(&path).unwrap().len();
        update(&mut st, &mut p, &one[0], "Byron");
        let grew = std::fs::metadata(&path).unwrap().len() - before;
        assert!(grew < 4096, "one update took {grew} bytes of journal");
    }
}
