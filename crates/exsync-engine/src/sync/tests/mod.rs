//! The service against in-memory sides: the connectors' contracts without the network, with
//! faults injected per user and per record. End-to-end runs against the simulators live in the
//! crate's integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use exsync_core::config::{KindRules, SyncConfiguration};
use exsync_core::plan::{Change, Item, WriteResult};
use exsync_core::{Contact, CrmId, ExchangeId, Fields, ItemId, ItemKind, Record, UserKey};
use exsync_store::{Notice, SqliteStore, Store};

use super::mailboxes::{Backend, BackendRule, Mailboxes, Unconfigured};
use super::pass::folder_cursor;
use super::service::{PassOptions, Syncer};
use super::sides::*;

mod crash;
mod crash_props;
mod departures;
mod exchange_turn;
mod select;

/// Records of one side with a change log; a cursor is a position in the log.
#[derive(Clone, Default)]
struct Log {
    records: BTreeMap<String, (Option<String>, Fields, Option<ItemId>)>,
    versions: BTreeMap<String, String>,
    log: Vec<String>,
    next: u32,
    /// Deleted records, with the tag they carried: the recycle bin a side searches when asked
    /// what became of a copy.
    graveyard: BTreeMap<String, Option<ItemId>>,
}

/// Records per page of a read, and per slice of a pass: small, so every test pages.
const PAGE: usize = 2;
/// How the in-memory CRM marks the cursors of a read that began from none.
const FULL_READ: &str = "full:";
const SLICE: usize = 3;
/// Writes per request: smaller than a slice, so every test writes a slice in batches.
const WRITE_BATCH: usize = 2;

impl Log {
    fn put(&mut self, id: &str, owner: Option<String>, fields: Fields, origin: Option<ItemId>) {
        self.records.insert(id.to_owned(), (owner, fields, origin));
        self.log.push(id.to_owned());
        self.versions
            .insert(id.to_owned(), format!("v{}", self.log.len()));
    }

    /// One page of the log from `cursor`: the records touched, the next cursor, and whether
    /// more follow.
    fn page(&self, cursor: Option<&str>) -> (Vec<String>, String, bool) {
        let from: usize = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
        let from = from.min(self.log.len());
        let to = (from + PAGE).min(self.log.len());
        let mut ids: Vec<String> = self.log[from..to].to_vec();
        ids.dedup();
        (ids, to.to_string(), to < self.log.len())
    }

    /// A person sets one field of a record; its owner and tag stay.
    fn edit(&mut self, id: &str, field: &str, value: serde_json::Value) {
        let (owner, mut fields, origin) = self.records[id].clone();
        fields.insert(field.to_owned(), value);
        self.put(id, owner, fields, origin);
    }

    /// Deletes a record, keeping its tag in the graveyard.
    fn remove(&mut self, id: &str) {
        if let Some((_, _, origin)) = self.records.remove(id) {
            self.graveyard.insert(id.to_owned(), origin);
        }
        self.log.push(id.to_owned());
    }

    /// What became of copies tagged with these origins: live, deleted, or never made.
    fn copies(&self, origins: &[ItemId], item_id: impl Fn(&str) -> ItemId) -> Vec<CopyEvidence> {
        origins
            .iter()
            .map(|origin| {
                let tagged = |tag: &Option<ItemId>| tag.as_ref() == Some(origin);
                if let Some(id) = self.records.iter().find(|(_, r)| tagged(&r.2)).map(|r| r.0) {
                    return CopyEvidence::Present(self.state(id, item_id(id)).1);
                }
                match self.graveyard.iter().find(|(_, tag)| tagged(tag)) {
                    Some((id, _)) => CopyEvidence::Deleted(item_id(id)),
                    None => CopyEvidence::Never,
                }
            })
            .collect()
    }

    fn new_id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{}", self.next)
    }

    fn state(&self, id: &str, item_id: ItemId) -> (Option<String>, Change) {
        match self.records.get(id) {
            Some((owner, fields, origin)) => (
                owner.clone(),
                Change::Upsert(Item {
                    id: item_id,
                    fields: fields.clone(),
                    version: self.versions.get(id).cloned(),
                    modified: None,
                    origin: origin.clone(),
                }),
            ),
            None => (None, Change::Deleted { id: item_id }),
        }
    }

    fn write(&mut self, prefix: &str, owner: Option<String>, write: &Write<'_>) -> WriteResult {
        let id = match write {
            Write::Create { fields, origin } => {
                let id = self.new_id(prefix);
                self.put(&id, owner, (*fields).clone(), Some((*origin).clone()));
                id
            }
            Write::Update {
                id,
                fields,
                changed,
                ..
            } => {
                let Some((owner, record, origin)) = self.records.get(*id).cloned() else {
                    return WriteResult::Failed {
                        reason: format!("{id} does not exist"),
                    };
                };
                let mut record = record;
                for name in changed.iter() {
                    match fields.get(name) {
                        Some(v) => record.insert(name.clone(), v.clone()),
                        None => record.remove(name),
                    };
                }
                self.put(id, owner, record, origin);
                (*id).to_owned()
            }
            Write::Delete { id } => {
                self.remove(id);
                (*id).to_owned()
            }
        };
        let item = if prefix == "c" {
            ItemId::Crm(id.as_str().into())
        } else {
            ItemId::Exchange(id.as_str().into())
        };
        WriteResult::Done {
            version: self.versions.get(item.as_str()).cloned(),
            id: item,
        }
    }
}

/// Faults: users whose mailbox answers nothing, and records whose writes fail.
#[derive(Default)]
struct Faults {
    down: BTreeSet<String>,
    bad_last_names: BTreeSet<String>,
    /// Every delete is refused, as a side that may not delete refuses it.
    refuse_deletes: bool,
    /// Mailboxes whose reads wait until the test releases them.
    stalled: BTreeMap<String, Arc<tokio::sync::Notify>>,
    /// The process "dies" in the next write call to this side (see [`Crash`]).
    crash: Option<Crash>,
    /// Mailbox write calls wait (a while) for another to be out with them, and the most out
    /// at once is kept: how a test sees the pass's writes overlap.
    overlap: Option<Overlap>,
}

struct Overlap {
    /// The requests the mailbox says it takes at once.
    at_once: usize,
    out: usize,
    most: usize,
    arrivals: usize,
}

impl Overlap {
    fn taking(at_once: usize) -> Overlap {
        Overlap {
            at_once,
            out: 0,
            most: 0,
            arrivals: 0,
        }
    }
}

/// Where a write call to one side ends the pass, as a crash would: the call never returns,
/// and the test drops the pass when `crashed` fires.
#[derive(Clone)]
struct Crash {
    side: exsync_core::Side,
    at: CrashAt,
    /// Write calls to that side that go through before the one that crashes.
    skip: usize,
    crashed: Arc<tokio::sync::Notify>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CrashAt {
    /// The request went out and was lost: the side wrote nothing.
    Sent,
    /// The side wrote everything and the answer never came back.
    Answered,
    /// The side wrote everything, then the call failed as a whole (a timeout after the
    /// server did the work): the pass goes on without knowing what it wrote.
    FailedAfterWriting,
}

impl Mem {
    /// Under the `overlap` probe, counts this mailbox write call as out and waits until
    /// another has come out after it, or half a second has passed (the last call of a pass
    /// has none).
    async fn wait_for_company(&self) {
        let arrivals = |faults: &Faults| faults.overlap.as_ref().map_or(0, |o| o.arrivals);
        let mine = {
            let mut faults = self.faults.lock().unwrap();
            let Some(overlap) = &mut faults.overlap else {
                return;
            };
            overlap.out += 1;
            overlap.arrivals += 1;
            overlap.most = overlap.most.max(overlap.out);
            overlap.arrivals
        };
        for _ in 0..50 {
            if arrivals(&self.faults.lock().unwrap()) > mine {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Runs a write call under the armed crash, if it is for `side`.
    async fn write_call(
        &self,
        side: exsync_core::Side,
        apply: impl FnOnce() -> Vec<WriteResult>,
    ) -> SideResult<Vec<WriteResult>> {
        let crash = {
            let mut faults = self.faults.lock().unwrap();
            match &mut faults.crash {
                Some(c) if c.side == side && c.skip > 0 => {
                    c.skip -= 1;
                    None
                }
                Some(c) if c.side == side => faults.crash.take(),
                _ => None,
            }
        };
        let Some(crash) = crash else {
            return Ok(apply());
        };
        if crash.at != CrashAt::Sent {
            apply();
        }
        if crash.at == CrashAt::FailedAfterWriting {
            return Err(SideError::new(
                SideErrorKind::Transient,
                "the answer timed out",
            ));
        }
        crash.crashed.notify_one();
        std::future::pending().await
    }
}

#[derive(Clone, Default)]
struct Mem {
    crm: Arc<Mutex<Log>>,
    mailboxes: Arc<Mutex<BTreeMap<String, Log>>>,
    users: Arc<Mutex<Vec<CrmUser>>>,
    faults: Arc<Mutex<Faults>>,
    crm_reads: Arc<Mutex<u32>>,
    /// Times the CRM's user list was asked for.
    user_lists: Arc<std::sync::atomic::AtomicUsize>,
    /// What a side says it had to cut from a record to fit the other, by CRM or mailbox id.
    noted: Arc<Mutex<BTreeMap<String, Vec<String>>>>,
    /// Mailbox reads begun, stalled or not.
    mailbox_reads: Arc<std::sync::atomic::AtomicUsize>,
    /// The mailbox backend this side plays; its cursors carry the backend's prefix, so one
    /// given to another backend is refused there, as a real backend's would be.
    backend: Backend,
    /// What the mailbox side will say it noticed, per user, until a pass takes it.
    notices: Arc<Mutex<BTreeMap<String, Vec<Notice>>>>,
}

impl Mem {
    fn owned(&self, owner: Option<String>, change: Change) -> OwnedChange {
        let mut owned = OwnedChange::new(owner.map(CrmId::new), change);
        if let Some(notes) = self.noted.lock().unwrap().get(owned.change.id().as_str()) {
            owned.notes = notes.clone();
        }
        owned
    }
}

fn rejects(faults: &Faults, write: &Write<'_>) -> bool {
    let fields = match write {
        Write::Create { fields, .. } | Write::Update { fields, .. } => fields,
        Write::Delete { .. } => return faults.refuse_deletes,
    };
    fields
        .get("last_name")
        .and_then(|v| v.as_str())
        .is_some_and(|n| faults.bad_last_names.contains(n))
}

impl CrmSide for Mem {
    async fn users(&self) -> SideResult<Vec<CrmUser>> {
        self.user_lists
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(self.users.lock().unwrap().clone())
    }

    async fn changes_page(
        &self,
        _kind: ItemKind,
        cursor: Option<&str>,
        filter: &CrmFilter,
    ) -> SideResult<CrmPage> {
        let owners = &filter.owners;
        *self.crm_reads.lock().unwrap() += 1;
        let crm = self.crm.lock().unwrap();
        // A read from no cursor lists the records there are, as a CRM's query does: what was
        // deleted is simply absent. Its cursors say so, page after page; the last one is an
        // ordinary cursor, from which later reads report deletes again.
        let full = cursor.is_none_or(|c| c.starts_with(FULL_READ));
        let (ids, next, more) = crm.page(cursor.map(|c| c.trim_start_matches(FULL_READ)));
        let owners: BTreeSet<&str> = owners.iter().map(CrmId::as_str).collect();
        let changes = ids
            .iter()
            .map(|id| crm.state(id, ItemId::Crm(id.as_str().into())))
            .filter(|(owner, change)| match change {
                Change::Deleted { .. } => !full,
                _ => {
                    (owners.is_empty() && owner.is_some())
                        || owner.as_deref().is_some_and(|o| owners.contains(o))
                }
            })
            .map(|(owner, change)| self.owned(owner, change))
            .collect();
        Ok(CrmPage {
            changes,
            cursor: if full && more {
                format!("{FULL_READ}{next}")
            } else {
                next
            },
            more,
            live_ids: None,
        })
    }

    async fn fetch(&self, _kind: ItemKind, ids: &[CrmId]) -> SideResult<Vec<OwnedChange>> {
        let crm = self.crm.lock().unwrap();
        Ok(ids
            .iter()
            .map(|id| {
                let (owner, change) = crm.state(id.as_str(), ItemId::Crm(id.clone()));
                self.owned(owner, change)
            })
            .collect())
    }

    async fn write(
        &self,
        _kind: ItemKind,
        owner: &CrmId,
        writes: &[Write<'_>],
    ) -> SideResult<Vec<WriteResult>> {
        self.write_call(exsync_core::Side::Crm, || {
            let faults = self.faults.lock().unwrap();
            let mut crm = self.crm.lock().unwrap();
            writes
                .iter()
                .map(|w| {
                    if rejects(&faults, w) {
                        return WriteResult::Failed {
                            reason: "FIELD_CUSTOM_VALIDATION_EXCEPTION".into(),
                        };
                    }
                    crm.write("c", Some(owner.as_str().to_owned()), w)
                })
                .collect()
        })
        .await
    }

    fn write_batch(&self) -> usize {
        WRITE_BATCH
    }

    async fn find_copies(
        &self,
        _kind: ItemKind,
        origins: &[ItemId],
        _since: chrono::DateTime<chrono::Utc>,
    ) -> SideResult<Vec<CopyEvidence>> {
        let crm = self.crm.lock().unwrap();
        Ok(crm.copies(origins, |id| ItemId::Crm(CrmId::new(id))))
    }
}

impl Mem {
    fn check_up(&self, user: &UserKey) -> SideResult<()> {
        if self.faults.lock().unwrap().down.contains(user.as_str()) {
            return Err(SideError::new(
                SideErrorKind::User,
                format!("ErrorImpersonateUserDenied for {user}"),
            ));
        }
        Ok(())
    }
}

impl Mem {
    fn cursor_prefix(&self) -> &'static str {
        match self.backend {
            Backend::Ews => "",
            Backend::Graph => "g",
        }
    }
}

impl MailboxSide for Mem {
    fn backend(&self, _user: &UserKey) -> Backend {
        self.backend
    }

    fn take_notices(&self, user: &UserKey) -> Vec<Notice> {
        self.notices
            .lock()
            .unwrap()
            .remove(user.as_str())
            .unwrap_or_default()
    }

    async fn prepare(&self, user: &UserKey) -> SideResult<()> {
        self.check_up(user)?;
        self.mailboxes
            .lock()
            .unwrap()
            .entry(user.as_str().to_owned())
            .or_default();
        Ok(())
    }

    async fn changes_page(
        &self,
        user: &UserKey,
        _kind: ItemKind,
        cursor: Option<&str>,
    ) -> SideResult<MailboxPage> {
        self.check_up(user)?;
        self.mailbox_reads
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let stall = self
            .faults
            .lock()
            .unwrap()
            .stalled
            .get(user.as_str())
            .cloned();
        if let Some(release) = stall {
            release.notified().await;
        }
        let prefix = self.cursor_prefix();
        // A cursor this backend did not issue is refused, and the folder listed from the start.
        let position = cursor.map(|c| {
            c.strip_prefix(prefix)
                .filter(|p| p.parse::<usize>().is_ok())
        });
        let restarted = matches!(position, Some(None));
        let position = position.flatten();
        let boxes = self.mailboxes.lock().unwrap();
        let Some(mailbox) = boxes.get(user.as_str()) else {
            return Ok(MailboxPage {
                cursor: format!("{prefix}0"),
                last: true,
                restarted,
                ..MailboxPage::default()
            });
        };
        let (ids, next, more) = mailbox.page(position);
        let mut page = MailboxPage {
            cursor: format!("{prefix}{next}"),
            last: !more,
            restarted,
            ..MailboxPage::default()
        };
        for id in ids {
            match mailbox.versions.get(&id) {
                Some(version) if mailbox.records.contains_key(&id) => {
                    page.upserts.push((ExchangeId::new(&id), version.clone()))
                }
                _ => page.deleted.push(ExchangeId::new(&id)),
            }
        }
        Ok(page)
    }

    async fn fetch(
        &self,
        user: &UserKey,
        _kind: ItemKind,
        ids: &[ExchangeId],
    ) -> SideResult<Vec<OwnedChange>> {
        self.check_up(user)?;
        let boxes = self.mailboxes.lock().unwrap();
        let mailbox = boxes.get(user.as_str());
        Ok(ids
            .iter()
            .map(|id| {
                let change = match mailbox {
                    Some(m) => m.state(id.as_str(), ItemId::Exchange(id.clone())).1,
                    None => Change::Deleted {
                        id: ItemId::Exchange(id.clone()),
                    },
                };
                self.owned(None, change)
            })
            .collect())
    }

    async fn write(
        &self,
        user: &UserKey,
        _kind: ItemKind,
        writes: &[Write<'_>],
    ) -> SideResult<Vec<WriteResult>> {
        self.check_up(user)?;
        self.wait_for_company().await;
        let answer = self
            .write_call(exsync_core::Side::Exchange, || {
                let faults = self.faults.lock().unwrap();
                let mut boxes = self.mailboxes.lock().unwrap();
                let mailbox = boxes.entry(user.as_str().to_owned()).or_default();
                writes
                    .iter()
                    .map(|w| {
                        if rejects(&faults, w) {
                            WriteResult::Failed {
                                reason: "ErrorInvalidPropertySet".into(),
                            }
                        } else {
                            mailbox.write("e", None, w)
                        }
                    })
                    .collect()
            })
            .await;
        if let Some(overlap) = &mut self.faults.lock().unwrap().overlap {
            overlap.out -= 1;
        }
        answer
    }

    fn write_batch(&self, _user: &UserKey) -> usize {
        WRITE_BATCH
    }

    fn requests_at_once(&self, _user: &UserKey) -> usize {
        let faults = self.faults.lock().unwrap();
        faults.overlap.as_ref().map_or(2, |o| o.at_once)
    }

    async fn find_copies(
        &self,
        user: &UserKey,
        _kind: ItemKind,
        origins: &[ItemId],
        _since: chrono::DateTime<chrono::Utc>,
    ) -> SideResult<Vec<CopyEvidence>> {
        self.check_up(user)?;
        let boxes = self.mailboxes.lock().unwrap();
        Ok(match boxes.get(user.as_str()) {
            Some(mailbox) => mailbox.copies(origins, |id| ItemId::Exchange(ExchangeId::new(id))),
            None => vec![CopyEvidence::Never; origins.len()],
        })
    }
}

fn person(last: &str, email: &str) -> Fields {
    Contact {
        first_name: "Pat".into(),
        last_name: last.into(),
        emails: vec![email.into()],
        ..Contact::default()
    }
    .to_fields()
}

fn configuration(users: &[&str]) -> SyncConfiguration {
    SyncConfiguration {
        name: "all".into(),
        active: true,
        contacts: KindRules::default_for(ItemKind::Contact),
        contact_scope: exsync_core::config::ContactScope::Owned,
        contact_condition: None,
        events: KindRules {
            direction: exsync_core::config::Direction::Off,
            ..KindRules::default_for(ItemKind::Event)
        },
        users: users.iter().map(|u| UserKey::new(*u)).collect(),
        groups: BTreeSet::new(),
    }
}

struct World {
    mem: Mem,
    syncer: Arc<Syncer<Mem, Mem>>,
    _dir: tempfile::TempDir,
}

fn world(users: &[&str]) -> World {
    world_with(users, configuration(users))
}

fn world_with(users: &[&str], config: SyncConfiguration) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("state.db")).unwrap());
    let mem = Mem::default();
    *mem.users.lock().unwrap() = users
        .iter()
        .enumerate()
        .map(|(i, u)| CrmUser {
            id: CrmId::new(format!("u{i}")),
            email: (*u).to_owned(),
            profile: "Sales".into(),
            active: true,
            time_zone: "UTC".into(),
        })
        .collect();
    let syncer = Arc::new(Syncer {
        exchange: mem.clone(),
        crm: mem.clone(),
        store,
        configurations: vec![config],
        concurrency: 4,
        slice: SLICE,
        worker: None,
    });
    World {
        mem,
        syncer,
        _dir: dir,
    }
}

impl World {
    fn crm_create(&self, owner: usize, fields: Fields) -> String {
        let mut crm = self.mem.crm.lock().unwrap();
        let id = crm.new_id("c");
        crm.put(&id, Some(format!("u{owner}")), fields, None);
        id
    }

    fn mailbox_create(&self, user: &str, fields: Fields) -> String {
        let mut boxes = self.mem.mailboxes.lock().unwrap();
        let mailbox = boxes.entry(user.to_owned()).or_default();
        let id = mailbox.new_id("e");
        mailbox.put(&id, None, fields, None);
        id
    }

    fn mailbox(&self, user: &str) -> Vec<Fields> {
        self.mem
            .mailboxes
            .lock()
            .unwrap()
            .get(user)
            .map(|m| m.records.values().map(|r| r.1.clone()).collect())
            .unwrap_or_default()
    }

    fn crm_records(&self, owner: usize) -> Vec<Fields> {
        let owner = format!("u{owner}");
        self.mem
            .crm
            .lock()
            .unwrap()
            .records
            .values()
            .filter(|r| r.0.as_deref() == Some(&owner))
            .map(|r| r.1.clone())
            .collect()
    }

    fn mailbox_ids(&self, user: &str) -> Vec<String> {
        let boxes = self.mem.mailboxes.lock().unwrap();
        boxes
            .get(user)
            .map(|m| m.records.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn crm_ids(&self) -> Vec<String> {
        self.mem
            .crm
            .lock()
            .unwrap()
            .records
            .keys()
            .cloned()
            .collect()
    }

    /// A person edits a field of a mailbox item in Outlook.
    fn mailbox_edit(&self, user: &str, id: &str, field: &str, value: serde_json::Value) {
        let mut boxes = self.mem.mailboxes.lock().unwrap();
        boxes.get_mut(user).unwrap().edit(id, field, value);
    }

    /// A person edits a field of a CRM record.
    fn crm_edit(&self, id: &str, field: &str, value: serde_json::Value) {
        self.mem.crm.lock().unwrap().edit(id, field, value);
    }

    fn mailbox_delete(&self, user: &str, id: &str) {
        let mut boxes = self.mem.mailboxes.lock().unwrap();
        boxes.get_mut(user).unwrap().remove(id);
    }

    fn crm_delete(&self, id: &str) {
        self.mem.crm.lock().unwrap().remove(id);
    }

    async fn pass(&self) -> super::service::PassReport {
        self.syncer.run_pass(&PassOptions::default()).await.unwrap()
    }
}

#[tokio::test]
async fn first_pass_copies_both_ways_and_second_pass_writes_nothing() {
    let w = world(&["ann@x.test", "bo@x.test"]);
    w.crm_create(0, person("Crm", "crm@x.test"));
    w.mailbox_create("ann@x.test", person("Box", "box@x.test"));
    let report = w.pass().await;
    assert_eq!(report.failed_users(), 0, "{report:?}");
    assert_eq!(w.mailbox("ann@x.test").len(), 2);
    assert_eq!(w.crm_records(0).len(), 2);
    assert!(w.mailbox("bo@x.test").is_empty());
    let again = w.pass().await;
    let writes: u64 = again
        .users
        .iter()
        .map(|u| u.counts.created + u.counts.updated + u.counts.deleted)
        .sum();
    assert_eq!(writes, 0, "{again:?}");
}

#[tokio::test]
async fn as_many_write_batches_are_out_as_the_mailbox_takes_and_never_more() {
    for at_once in [1, 2, 3] {
        let w = world(&["ann@x.test"]);
        // Slices of 3 and batches of 2: batches of one slice and of the next overlap.
        let contacts: Vec<String> = (0..15)
            .map(|i| w.crm_create(0, person(&format!("P{i}"), &format!("p{i}@x.test"))))
            .collect();
        w.mem.faults.lock().unwrap().overlap = Some(Overlap::taking(at_once));
        let report = w.pass().await;
        assert_eq!(report.failed_users(), 0, "{report:?}");
        let most = w.mem.faults.lock().unwrap().overlap.take().unwrap().most;
        assert_eq!(most, at_once, "the mailbox's write calls out at once");
        assert_eq!(
            w.mailbox("ann@x.test").len(),
            contacts.len(),
            "each copied once"
        );
        let again = w.pass().await;
        assert_eq!(again.users[0].counts.created, 0, "{again:?}");
    }
}

#[tokio::test]
async fn one_failing_mailbox_does_not_hold_the_others_and_loses_nothing() {
    let w = world(&["ann@x.test", "bo@x.test"]);
    // Both have synced once, so the next CRM changes come from the org-wide read.
    w.pass().await;
    w.crm_create(0, person("ForAnn", "a1@x.test"));
    w.crm_create(1, person("ForBo", "b1@x.test"));
    w.mem
        .faults
        .lock()
        .unwrap()
        .down
        .insert("ann@x.test".into());
    let report = w.pass().await;
    let ann = report
        .users
        .iter()
        .find(|u| u.user == Some(UserKey::new("ann@x.test")))
        .unwrap();
    assert!(
        ann.error
            .as_deref()
            .unwrap_or("")
            .contains("ErrorImpersonateUserDenied"),
        "{ann:?}"
    );
    assert_eq!(
        w.mailbox("bo@x.test").len(),
        1,
        "bo synced although ann failed"
    );
    // The org-wide cursor moved past ann's contact; it waits as an unresolved item instead.
    let status = w
        .syncer
        .store
        .user_status(&UserKey::new("ann@x.test"))
        .unwrap()
        .unwrap();
    assert_eq!(status.unresolved, 1);
    w.mem.faults.lock().unwrap().down.clear();
    let report = w.pass().await;
    assert_eq!(report.failed_users(), 0, "{report:?}");
    assert_eq!(w.mailbox("ann@x.test").len(), 1);
    assert_eq!(
        w.syncer
            .store
            .user_status(&UserKey::new("ann@x.test"))
            .unwrap()
            .unwrap()
            .unresolved,
        0
    );
}

#[tokio::test]
async fn a_rejected_record_is_recorded_and_retried_while_the_rest_syncs() {
    let w = world(&["ann@x.test"]);
    w.crm_create(0, person("Good", "g@x.test"));
    w.crm_create(0, person("Rejected", "r@x.test"));
    w.mem
        .faults
        .lock()
        .unwrap()
        .bad_last_names
        .insert("Rejected".into());
    let report = w.pass().await;
    assert_eq!(report.users[0].counts.created, 1);
    assert_eq!(report.users[0].counts.failures, 1);
    let unresolved = w
        .syncer
        .store
        .unresolved(&UserKey::new("ann@x.test"))
        .unwrap();
    assert_eq!(unresolved.len(), 1);
    assert_eq!(unresolved[0].reason, "ErrorInvalidPropertySet");
    // Kept with the name the admin knows it by, not only its id.
    assert_eq!(
        unresolved[0].name.as_deref(),
        Some("Pat Rejected <r@x.test>")
    );
    w.mem.faults.lock().unwrap().bad_last_names.clear();
    let report = w.pass().await;
    assert_eq!(report.users[0].counts.created, 1);
    assert_eq!(w.mailbox("ann@x.test").len(), 2);
    assert!(w
        .syncer
        .store
        .unresolved(&UserKey::new("ann@x.test"))
        .unwrap()
        .is_empty());
}

/// A delete and a skip carry no content, yet each is reported by the record's name: the
/// delete by the content its pair last synced, the skip by the record as the pass read it. A
/// dry run's plan names them too.
#[tokio::test]
async fn deletes_and_skips_are_reported_by_name() {
    let w = world(&["ann@x.test"]);
    let ann = UserKey::new("ann@x.test");
    let gone = w.crm_create(0, person("Gone", "gone@x.test"));
    w.pass().await;
    assert_eq!(w.mailbox("ann@x.test").len(), 1);
    {
        let mut crm = w.mem.crm.lock().unwrap();
        crm.records.remove(&gone);
        crm.log.push(gone.clone());
    }
    // Outlook holds a contact the CRM cannot take: it has no last name.
    let nameless = w.mailbox_create("ann@x.test", person("", "nolast@x.test"));
    let names = |report: &super::service::PassReport| report.users[0].names.clone();
    let planned = w
        .syncer
        .run_pass(&PassOptions {
            dry_run: true,
            ..PassOptions::default()
        })
        .await
        .unwrap();
    let gone_name = "Pat Gone <gone@x.test>".to_owned();
    let nameless_name = "Pat <nolast@x.test>".to_owned();
    assert_eq!(
        names(&planned).get(&ItemId::Crm(CrmId::new(&gone))),
        Some(&gone_name),
        "{planned:?}"
    );
    assert_eq!(
        names(&planned).get(&ItemId::Exchange(ExchangeId::new(&nameless))),
        Some(&nameless_name),
        "{planned:?}"
    );

    w.mem.faults.lock().unwrap().refuse_deletes = true;
    let report = w.pass().await;
    assert_eq!(report.users[0].counts.failures, 3, "{report:?}");
    let unresolved: BTreeMap<String, (Option<String>, String)> = w
        .syncer
        .store
        .unresolved(&ann)
        .unwrap()
        .into_iter()
        .map(|u| (u.id.to_string(), (u.name, u.reason)))
        .collect();
    let named = |id: String| unresolved.get(&id).and_then(|(name, _)| name.clone());
    assert_eq!(
        named(format!("crm:{gone}")),
        Some(gone_name.clone()),
        "{unresolved:?}"
    );
    let copy = w.mem.mailboxes.lock().unwrap()["ann@x.test"]
        .records
        .keys()
        .find(|id| **id != nameless)
        .cloned()
        .unwrap();
    assert_eq!(
        named(format!("exchange:{copy}")),
        Some(gone_name),
        "{unresolved:?}"
    );
    assert_eq!(
        named(format!("exchange:{nameless}")),
        Some(nameless_name),
        "{unresolved:?}"
    );
}

/// A CRM deletion a failing mailbox could not take waits for the next pass by the name its
/// pair last synced, as the deletion itself carries none.
#[tokio::test]
async fn a_deletion_a_failing_mailbox_missed_waits_by_its_name() {
    let w = world(&["ann@x.test"]);
    let ann = UserKey::new("ann@x.test");
    let gone = w.crm_create(0, person("Gone", "gone@x.test"));
    w.pass().await;
    {
        let mut crm = w.mem.crm.lock().unwrap();
        crm.records.remove(&gone);
        crm.log.push(gone.clone());
    }
    w.mem.faults.lock().unwrap().down.insert(ann.to_string());
    let report = w.pass().await;
    assert!(report.users[0].error.is_some(), "{report:?}");
    let waiting: Vec<(String, Option<String>)> = w
        .syncer
        .store
        .unresolved(&ann)
        .unwrap()
        .into_iter()
        .map(|u| (u.id.to_string(), u.name))
        .collect();
    assert_eq!(
        waiting,
        [(
            format!("crm:{gone}"),
            Some("Pat Gone <gone@x.test>".to_owned())
        )]
    );
}

#[tokio::test]
async fn mass_delete_pauses_the_user_and_deletes_nothing() {
    let w = world(&["ann@x.test"]);
    let ids: Vec<String> = (0..10)
        .map(|i| w.crm_create(0, person(&format!("P{i}"), &format!("p{i}@x.test"))))
        .collect();
    w.pass().await;
    assert_eq!(w.mailbox("ann@x.test").len(), 10);
    {
        let mut crm = w.mem.crm.lock().unwrap();
        for id in &ids[..8] {
            crm.records.remove(id);
            crm.log.push(id.clone());
        }
    }
    let report = w.pass().await;
    assert!(
        report.users[0]
            .paused
            .as_deref()
            .unwrap_or("")
            .contains("delete 8 of the user's 10"),
        "{report:?}"
    );
    assert_eq!(w.mailbox("ann@x.test").len(), 10, "nothing deleted");
    // What waits is named by the content its pair last synced: a deletion carries none.
    let mut waiting: Vec<(String, Option<String>)> = w
        .syncer
        .store
        .unresolved(&UserKey::new("ann@x.test"))
        .unwrap()
        .into_iter()
        .map(|u| (u.id.to_string(), u.name))
        .collect();
    waiting.sort();
    let mut expected: Vec<(String, Option<String>)> = (0..8)
        .map(|i| {
            (
                format!("crm:{}", ids[i]),
                Some(format!("Pat P{i} <p{i}@x.test>")),
            )
        })
        .collect();
    expected.sort();
    assert_eq!(waiting, expected);
    let next = w.pass().await;
    assert!(
        next.users.is_empty() && next.skipped[0].1.starts_with("paused"),
        "{next:?}"
    );
    // The admin looks, agrees, and resumes: the deletes are applied from the kept changes.
    w.syncer
        .store
        .set_paused(&UserKey::new("ann@x.test"), None)
        .unwrap();
    let mut relaxed = w.syncer.configurations.clone();
    relaxed[0].contacts.max_delete_share = 1.0;
    let syncer = Arc::new(Syncer {
        exchange: w.mem.clone(),
        crm: w.mem.clone(),
        store: Arc::clone(&w.syncer.store),
        configurations: relaxed,
        concurrency: 1,
        slice: SLICE,
        worker: None,
    });
    let report = syncer.run_pass(&PassOptions::default()).await.unwrap();
    assert_eq!(report.users[0].counts.deleted, 8, "{report:?}");
    assert_eq!(w.mailbox("ann@x.test").len(), 2);
}

#[tokio::test]
async fn dry_run_plans_and_writes_nothing() {
    let w = world(&["ann@x.test"]);
    w.crm_create(0, person("Crm", "crm@x.test"));
    let report = w
        .syncer
        .run_pass(&PassOptions {
            dry_run: true,
            ..PassOptions::default()
        })
        .await
        .unwrap();
    assert_eq!(report.users[0].plans.len(), 1);
    assert_eq!(report.users[0].plans[0].1.len(), 1);
    assert!(w.mailbox("ann@x.test").is_empty());
    assert!(w.syncer.store.list_cursors().unwrap().is_empty());
}

#[tokio::test]
async fn an_empty_pairing_field_is_reported_only_where_a_group_would_sync_the_user() {
    let config = SyncConfiguration {
        groups: BTreeSet::from(["Sales".to_owned()]),
        ..configuration(&["ann@x.test"])
    };
    let w = world_with(&["ann@x.test", "", ""], config);
    w.mem.users.lock().unwrap()[2].profile = "Service".into();
    let report = w.pass().await;
    assert_eq!(report.failed_users(), 0, "{report:?}");
    assert_eq!(report.users.len(), 1, "{report:?}");
    let skipped: Vec<(String, String)> = report
        .skipped_crm_users
        .iter()
        .map(|s| (s.crm_id.to_string(), s.reason.clone()))
        .collect();
    assert_eq!(
        skipped,
        [(
            "u1".to_owned(),
            "the CRM user's Email field is empty, so it names no mailbox".to_owned()
        )],
        "the Service user has no configuration and so is no concern of the admin's"
    );
}

/// Each run keeps the configuration it synced its user by and the CRM profile that brought
/// it, so status says "all, via group Sales" rather than only the configuration's name.
#[tokio::test]
async fn each_run_keeps_how_its_user_came_to_the_configuration() {
    let config = SyncConfiguration {
        groups: BTreeSet::from(["Sales".to_owned()]),
        ..configuration(&["ann@x.test"])
    };
    let w = world_with(&["ann@x.test", "bo@x.test"], config);
    let report = w.pass().await;
    assert_eq!(report.failed_users(), 0, "{report:?}");
    let assignment = |user: &str| {
        w.syncer
            .store
            .user_status(&UserKey::new(user))
            .unwrap()
            .and_then(|s| s.last_run)
            .and_then(|r| r.assignment)
    };
    assert_eq!(
        assignment("ann@x.test"),
        Some(exsync_store::RunAssignment {
            configuration: "all".into(),
            group: None,
        }),
        "listed by address"
    );
    assert_eq!(
        assignment("bo@x.test"),
        Some(exsync_store::RunAssignment {
            configuration: "all".into(),
            group: Some("Sales".into()),
        }),
        "brought by the Sales profile"
    );
}

#[tokio::test]
async fn a_user_added_later_gets_all_their_records() {
    let w = world(&["ann@x.test"]);
    w.crm_create(1, person("Early", "early@x.test"));
    w.pass().await;
    // bo is enabled after the org-wide cursor has moved past bo's contact.
    w.mem.users.lock().unwrap().push(CrmUser {
        id: CrmId::new("u1"),
        email: "bo@x.test".to_owned(),
        profile: "Sales".into(),
        active: true,
        time_zone: "UTC".into(),
    });
    let syncer = Arc::new(Syncer {
        exchange: w.mem.clone(),
        crm: w.mem.clone(),
        store: Arc::clone(&w.syncer.store),
        configurations: vec![configuration(&["ann@x.test", "bo@x.test"])],
        concurrency: 2,
        slice: SLICE,
        worker: None,
    });
    syncer.run_pass(&PassOptions::default()).await.unwrap();
    assert_eq!(w.mailbox("bo@x.test").len(), 1);
    assert!(w
        .syncer
        .store
        .cursor(&folder_cursor(
            &UserKey::new("bo@x.test"),
            ItemKind::Contact
        ))
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn the_crm_is_read_once_per_pass_whatever_the_number_of_users() {
    let users: Vec<String> = (0..6).map(|i| format!("u{i}@x.test")).collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    let w = world(&refs);
    // Three pages of records (PAGE is 2), the users' among them.
    for i in 0..6 {
        w.crm_create(i, person(&format!("P{i}"), &format!("p{i}@x.test")));
    }
    w.pass().await;
    assert_eq!(
        *w.mem.crm_reads.lock().unwrap(),
        3,
        "the first pass reads the org's records once, page by page, not per user"
    );
    for (i, user) in users.iter().enumerate() {
        let mailbox = w.mailbox(user);
        assert_eq!(mailbox.len(), 1, "{user} got their own record: {mailbox:?}");
        assert_eq!(mailbox[0]["last_name"], format!("P{i}"));
    }
    *w.mem.crm_reads.lock().unwrap() = 0;
    w.pass().await;
    assert_eq!(
        *w.mem.crm_reads.lock().unwrap(),
        1,
        "contacts only: one org-wide read"
    );
}

/// Workers on one database ask the CRM for its users once between them: the worker holding
/// the org-wide read lists them and shares the list through the database, and the others take
/// it from there, so CRM calls do not grow with workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_on_one_database_list_the_crm_users_once_between_them() {
    use std::sync::atomic::Ordering;

    let Some(db) = exsync_testkit::postgres::database() else {
        return;
    };
    let users = ["a@x.test", "b@x.test", "c@x.test"];
    let w = world(&users);
    for i in 0..users.len() {
        w.crm_create(i, person(&format!("P{i}"), &format!("p{i}@x.test")));
    }
    let mut workers = Vec::new();
    for i in 0..3 {
        let options = exsync_store::PgOptions::new(db.conninfo());
        // Each worker is a process of its own, with its own connections.
        let store: Arc<dyn Store> = Arc::new(
            tokio::task::spawn_blocking(move || exsync_store::PgStore::open(&options).unwrap())
                .await
                .unwrap(),
        );
        workers.push(Arc::new(Syncer {
            exchange: w.mem.clone(),
            crm: w.mem.clone(),
            store,
            configurations: vec![configuration(&users)],
            concurrency: 4,
            slice: SLICE,
            worker: Some(super::workers::WorkerOptions::new(
                Some(format!("worker-{i}")),
                std::time::Duration::from_secs(30),
                10,
            )),
        }));
    }
    // As the service runs them: a user or read done less than half an interval ago rests.
    let options = PassOptions {
        rest: std::time::Duration::from_secs(60),
        ..PassOptions::default()
    };
    for worker in &workers {
        let report = worker.run_pass(&options).await.unwrap();
        assert!(report.crm_error.is_none(), "{report:?}");
    }
    assert_eq!(
        w.mem.user_lists.load(Ordering::SeqCst),
        1,
        "three workers' passes asked the CRM for its users as often as one worker's"
    );
    // The passes did their work: every user has their record.
    for (i, user) in users.iter().enumerate() {
        let mailbox = w.mailbox(user);
        assert_eq!(mailbox.len(), 1, "{user}: {mailbox:?}");
        assert_eq!(mailbox[0]["last_name"], format!("P{i}"));
    }
}

#[tokio::test]
async fn a_contact_given_to_another_owner_moves_to_their_mailbox() {
    let w = world(&["ann@x.test", "bo@x.test"]);
    let id = w.crm_create(0, person("Moving", "m@x.test"));
    w.pass().await;
    assert_eq!(w.mailbox("ann@x.test").len(), 1);
    {
        let mut crm = w.mem.crm.lock().unwrap();
        let (_, fields, origin) = crm.records.get(&id).cloned().unwrap();
        crm.put(&id, Some("u1".into()), fields, origin);
    }
    let report = w.pass().await;
    assert_eq!(report.failed_users(), 0, "{report:?}");
    assert!(
        w.mailbox("ann@x.test").is_empty(),
        "the copy left ann's mailbox"
    );
    assert_eq!(w.mailbox("bo@x.test").len(), 1);
    assert_eq!(
        w.crm_records(1).len(),
        1,
        "the CRM record itself is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_mailbox_does_not_hold_the_others() {
    let w = world(&["ann@x.test", "bo@x.test", "cy@x.test"]);
    w.crm_create(1, person("ForBo", "b@x.test"));
    w.crm_create(2, person("ForCy", "c@x.test"));
    let release = Arc::new(tokio::sync::Notify::new());
    w.mem
        .faults
        .lock()
        .unwrap()
        .stalled
        .insert("ann@x.test".into(), Arc::clone(&release));
    let syncer = Arc::clone(&w.syncer);
    let pass = tokio::spawn(async move { syncer.run_pass(&PassOptions::default()).await });
    // bo and cy are synced while ann's mailbox still has not answered.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while w.mailbox("bo@x.test").is_empty() || w.mailbox("cy@x.test").is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the others waited for the stuck mailbox"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!pass.is_finished());
    release.notify_one();
    let report = pass.await.unwrap().unwrap();
    assert_eq!(report.users.len(), 3);
    assert_eq!(report.failed_users(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_mid_pass_finishes_started_users_and_loses_nothing() {
    let users = ["ann@x.test", "bo@x.test", "cy@x.test"];
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("state.db")).unwrap());
    let w = world(&users);
    let syncer = Arc::new(Syncer {
        exchange: w.mem.clone(),
        crm: w.mem.clone(),
        store: Arc::clone(&store),
        configurations: vec![configuration(&users)],
        concurrency: 1,
        slice: SLICE,
        worker: None,
    });
    for i in 0..3 {
        w.crm_create(i, person(&format!("For{i}"), &format!("p{i}@x.test")));
    }
    // Every mailbox stalls on its first read; with one user at a time, exactly one is under way.
    let release = Arc::new(tokio::sync::Notify::new());
    for user in users {
        w.mem
            .faults
            .lock()
            .unwrap()
            .stalled
            .insert(user.into(), Arc::clone(&release));
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let metrics = Arc::new(crate::metrics::Metrics::default());
    let daemon = tokio::spawn(super::daemon::run_until_stopped(
        Arc::clone(&syncer),
        std::time::Duration::from_millis(5),
        Arc::clone(&metrics),
        stop_rx,
    ));
    // Once one user's pass is under way (stalled in its mailbox read), stop, then let it finish.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while w
        .mem
        .mailbox_reads
        .load(std::sync::atomic::Ordering::SeqCst)
        == 0
    {
        assert!(tokio::time::Instant::now() < deadline, "no pass started");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    stop_tx.send(true).unwrap();
    release.notify_one();
    let passes = daemon.await.unwrap().unwrap();
    assert_eq!(passes, 1);
    let synced: Vec<usize> = users.iter().map(|u| w.mailbox(u).len()).collect();
    assert_eq!(
        synced.iter().sum::<usize>(),
        1,
        "the started user finished and no other started: {synced:?}"
    );
    assert!(
        store
            .cursor(&exsync_store::CursorScope::crm_object("Contact"))
            .unwrap()
            .is_none(),
        "org cursor kept"
    );
    assert!(metrics
        .render()
        .contains("exsync_pass_duration_seconds_count 1"));

    // The restarted service picks up everything, once.
    w.mem.faults.lock().unwrap().stalled.clear();
    let report = syncer.run_pass(&PassOptions::default()).await.unwrap();
    assert_eq!(
        report.users.iter().map(|u| u.counts.created).sum::<u64>(),
        2,
        "{report:?}"
    );
    for user in users {
        assert_eq!(w.mailbox(user).len(), 1, "{user}");
    }
}

#[tokio::test]
async fn visible_scope_gives_every_contact_to_every_user_of_the_configuration() {
    let w = world(&["ann@x.test", "bo@x.test"]);
    let mut visible = configuration(&["ann@x.test", "bo@x.test"]);
    visible.contact_scope = exsync_core::config::ContactScope::Visible;
    // Only one direction, so neither mailbox's copy comes back as a second CRM record.
    visible.contacts.direction = exsync_core::config::Direction::CrmToExchange;
    let syncer = Arc::new(Syncer {
        exchange: w.mem.clone(),
        crm: w.mem.clone(),
        store: Arc::clone(&w.syncer.store),
        configurations: vec![visible],
        concurrency: 2,
        slice: SLICE,
        worker: None,
    });
    w.crm_create(0, person("Shared", "s@x.test"));
    syncer.run_pass(&PassOptions::default()).await.unwrap();
    assert_eq!(w.mailbox("ann@x.test").len(), 1);
    assert_eq!(w.mailbox("bo@x.test").len(), 1);
    let cursors = w.syncer.store.list_cursors().unwrap();
    assert!(
        cursors
            .iter()
            .any(|c| c.scope == exsync_store::CursorScope::crm_object("Contact visible")),
        "{cursors:?}"
    );
}

#[tokio::test]
async fn a_pass_does_nothing_while_sync_is_switched_off() {
    let w = world(&["ann@x.test"]);
    w.crm_create(0, person("Crm", "crm@x.test"));
    crate::switch::set_enabled(w.syncer.store.as_ref(), false, chrono::Utc::now()).unwrap();
    let report = w.pass().await;
    assert!(report.disabled && report.users.is_empty());
    assert!(w.mailbox("ann@x.test").is_empty());
    crate::switch::set_enabled(w.syncer.store.as_ref(), true, chrono::Utc::now()).unwrap();
    w.pass().await;
    assert_eq!(w.mailbox("ann@x.test").len(), 1);
}

#[tokio::test]
async fn a_new_user_whose_first_pass_fails_reads_everything_again_next_time() {
    let w = world(&["ann@x.test"]);
    w.crm_create(0, person("ForAnn", "a1@x.test"));
    w.mem
        .faults
        .lock()
        .unwrap()
        .down
        .insert("ann@x.test".into());
    let report = w.pass().await;
    assert_eq!(report.failed_users(), 1);
    // Ann has no Exchange cursor yet, so nothing needs remembering: her next pass reads all
    // her records again, although the org-wide cursor has moved on.
    assert!(w
        .syncer
        .store
        .cursor(&exsync_store::CursorScope::crm_object("Contact"))
        .unwrap()
        .is_some());
    w.mem.faults.lock().unwrap().down.clear();
    w.pass().await;
    assert_eq!(w.mailbox("ann@x.test").len(), 1);
}

/// Both sides' records, as sorted JSON, for comparing worlds whose ids differ.
fn contents(w: &World, user: &str) -> (Vec<String>, Vec<String>) {
    let sorted = |records: Vec<Fields>| {
        let mut out: Vec<String> = records
            .iter()
            .map(|f| serde_json::to_string(f).unwrap())
            .collect();
        out.sort();
        out
    };
    (sorted(w.crm_records(0)), sorted(w.mailbox(user)))
}

fn company_person(first: &str, last: &str, company: &str) -> Fields {
    Contact {
        first_name: first.into(),
        last_name: last.into(),
        company: company.into(),
        ..Contact::default()
    }
    .to_fields()
}

#[tokio::test]
async fn a_pass_in_slices_ends_where_one_plan_would() {
    let user = "ann@x.test";
    let build = |slice: usize| {
        let mut w = world(&[user]);
        Arc::get_mut(&mut w.syncer).unwrap().slice = slice;
        // Records both sides hold (by e-mail, or by name and company), some only one side
        // holds, and two CRM records that want the same mailbox contact.
        for i in 0..9 {
            w.crm_create(0, person(&format!("Both{i}"), &format!("both{i}@x.test")));
            w.mailbox_create(
                user,
                person(&format!("Both{i}"), &format!("both{i}@x.test")),
            );
        }
        for i in 0..4 {
            w.crm_create(0, company_person("Kim", &format!("Lee{i}"), "Acme"));
            w.mailbox_create(user, company_person("Kim", &format!("Lee{i}"), "Acme"));
            w.crm_create(0, person(&format!("CrmOnly{i}"), &format!("c{i}@x.test")));
            w.mailbox_create(
                user,
                person(&format!("BoxOnly{i}"), &format!("b{i}@x.test")),
            );
        }
        w.crm_create(0, person("Twin", "twin@x.test"));
        w.crm_create(0, person("Twin", "twin@x.test"));
        w.mailbox_create(user, person("Twin", "twin@x.test"));
        w
    };
    let (sliced, whole) = (build(SLICE), build(100_000));
    for w in [&sliced, &whole] {
        let report = w.pass().await;
        assert_eq!(report.failed_users(), 0, "{report:?}");
    }
    assert_eq!(contents(&sliced, user), contents(&whole, user));
    let (crm, mailbox) = contents(&sliced, user);
    // 9 + 4 matched, 4 + 4 copied, the twins: one matched, one copied.
    assert_eq!((crm.len(), mailbox.len()), (23, 23));

    // Edits, deletes and creates on both sides, the same in both worlds.
    for w in [&sliced, &whole] {
        let crm_ids: Vec<String> = w.mem.crm.lock().unwrap().records.keys().cloned().collect();
        let box_ids: Vec<String> = w.mem.mailboxes.lock().unwrap()[user]
            .records
            .keys()
            .cloned()
            .collect();
        let mut crm = w.mem.crm.lock().unwrap();
        for id in crm_ids.iter().take(3) {
            let (owner, mut fields, origin) = crm.records[id].clone();
            fields.insert("title".into(), serde_json::json!("Edited in the CRM"));
            crm.put(id, owner, fields, origin);
        }
        crm.records.remove(&crm_ids[5]);
        crm.log.push(crm_ids[5].clone());
        drop(crm);
        let mut boxes = w.mem.mailboxes.lock().unwrap();
        let mailbox = boxes.get_mut(user).unwrap();
        for id in box_ids.iter().rev().take(3) {
            let (owner, mut fields, origin) = mailbox.records[id].clone();
            fields.insert("department".into(), serde_json::json!("Edited in Outlook"));
            mailbox.put(id, owner, fields, origin);
        }
        mailbox.records.remove(&box_ids[7]);
        mailbox.log.push(box_ids[7].clone());
        drop(boxes);
        w.crm_create(0, person("Later", "later@x.test"));
    }
    let mut counts = Vec::new();
    for w in [&sliced, &whole] {
        let report = w.pass().await;
        assert_eq!(report.failed_users(), 0, "{report:?}");
        counts.push(report.users[0].counts);
        let again = w.pass().await;
        assert_eq!(
            again.users[0].counts.created + again.users[0].counts.updated,
            0
        );
    }
    assert_eq!(counts[0], counts[1]);
    assert_eq!(contents(&sliced, user), contents(&whole, user));
    let (crm, mailbox) = contents(&sliced, user);
    assert_eq!(crm, mailbox, "both sides hold the same records");
    assert_eq!(crm.len(), 23 - 2 + 1);
}

#[tokio::test]
async fn a_crm_user_whose_address_names_no_mailbox_is_left_out_with_the_reason() {
    // Odd but valid: an atom may hold quotes, backticks and hyphens.
    let odd = "x'-alert`document.domain`-'@x.test";
    let w = world(&[
        "ann@x.test",
        "a b@x.test",
        "x@evil.test#.x.test",
        "bo@x.test",
        odd,
    ]);
    w.crm_create(0, person("ForAnn", "a1@x.test"));
    w.crm_create(1, person("ForSpace", "s1@x.test"));
    w.crm_create(2, person("ForEvil", "e1@x.test"));
    w.crm_create(3, person("ForBo", "b1@x.test"));
    w.crm_create(4, person("ForOdd", "o1@x.test"));
    let report = w.pass().await;
    assert_eq!(report.failed_users(), 0, "{report:?}");
    let synced: Vec<String> = report
        .users
        .iter()
        .filter_map(|u| u.user.as_ref().map(ToString::to_string))
        .collect();
    assert_eq!(synced, ["ann@x.test", "bo@x.test", odd]);
    assert_eq!(w.mailbox("ann@x.test").len(), 1);
    assert_eq!(w.mailbox("bo@x.test").len(), 1);
    assert_eq!(w.mailbox(odd).len(), 1);
    assert!(w
        .mem
        .mailboxes
        .lock()
        .unwrap()
        .keys()
        .all(|m| !m.contains('#') && !m.contains(' ')));
    let skipped: Vec<(String, String, String)> = report
        .skipped_crm_users
        .iter()
        .map(|s| (s.crm_id.to_string(), s.address.clone(), s.reason.clone()))
        .collect();
    assert_eq!(
        skipped,
        [
            (
                "u1".to_owned(),
                "a b@x.test".to_owned(),
                "the CRM user's Email field cannot name a mailbox: the part before `@` has ` ` where only letters, digits and !#$%&'*+-/=?^_`{|}~ may be, unless it is quoted".to_owned()
            ),
            (
                "u2".to_owned(),
                "x@evil.test#.x.test".to_owned(),
                "the CRM user's Email field cannot name a mailbox: the domain has `#`, where only letters, digits, hyphens and dots may be".to_owned()
            ),
        ]
    );
    // The store keeps them for the console; no user key was made of them.
    let stored = w.syncer.store.skipped_crm_users().unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].reason, skipped[0].2);
    let keys: Vec<String> = w
        .syncer
        .store
        .list_users()
        .unwrap()
        .into_iter()
        .map(|u| u.user.to_string())
        .collect();
    assert_eq!(keys, ["ann@x.test", "bo@x.test", odd]);

    // Once the CRM holds a proper address the user syncs and leaves the list.
    w.mem.users.lock().unwrap()[1].email = "ab@x.test".into();
    let syncer = Arc::new(Syncer {
        exchange: w.mem.clone(),
        crm: w.mem.clone(),
        store: Arc::clone(&w.syncer.store),
        configurations: vec![configuration(&[
            "ann@x.test",
            "ab@x.test",
            "bo@x.test",
            odd,
        ])],
        concurrency: 2,
        slice: SLICE,
        worker: None,
    });
    syncer.run_pass(&PassOptions::default()).await.unwrap();
    assert_eq!(w.mailbox("ab@x.test").len(), 1);
    let stored = w.syncer.store.skipped_crm_users().unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].crm_id.as_str(), "u2");
}

#[tokio::test]
async fn a_record_cut_to_fit_syncs_and_waits_with_its_reason_while_passes_stay_idle() {
    let w = world(&["ann@x.test"]);
    let first = w.crm_create(0, person("Early", "early@x.test"));
    w.mem.noted.lock().unwrap().insert(
        first.clone(),
        vec!["first_name: 300 characters, cut to the first 255".into()],
    );
    // A user's first pass reads their records in full.
    let report = w.pass().await;
    assert_eq!(report.users[0].counts.created, 1, "{report:?}");
    // Later records come through the org-wide read.
    let later = w.crm_create(0, person("Later", "later@x.test"));
    w.mem.noted.lock().unwrap().insert(
        later.clone(),
        vec!["title: control characters removed".into()],
    );
    let report = w.pass().await;
    assert_eq!(report.users[0].counts.created, 1, "{report:?}");
    assert_eq!(w.mailbox("ann@x.test").len(), 2);
    let ann = UserKey::new("ann@x.test");
    let waiting = |w: &World| -> Vec<(String, String, u64)> {
        w.syncer
            .store
            .unresolved(&ann)
            .unwrap()
            .into_iter()
            .map(|u| (u.id.to_string(), u.reason, u.occurrences))
            .collect()
    };
    let names: Vec<Option<String>> = w
        .syncer
        .store
        .unresolved(&ann)
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(
        names,
        [
            Some("Pat Early <early@x.test>".to_owned()),
            Some("Pat Later <later@x.test>".to_owned())
        ]
    );
    let reasons: Vec<(String, String)> = waiting(&w).into_iter().map(|(i, r, _)| (i, r)).collect();
    assert_eq!(
        reasons,
        [
            (
                format!("crm:{first}"),
                "synced without what Exchange cannot hold: first_name: 300 characters, cut to the first 255".to_owned()
            ),
            (
                format!("crm:{later}"),
                "synced without what Exchange cannot hold: title: control characters removed".to_owned()
            ),
        ]
    );
    // They are read again each pass (the CRM still holds what was cut), and nothing is
    // written; the reason stays, counted.
    for _ in 0..2 {
        let again = w.pass().await;
        let c = again.users[0].counts;
        assert_eq!(
            c.created + c.updated + c.deleted + c.failures,
            0,
            "{again:?}"
        );
    }
    assert!(
        waiting(&w).iter().all(|(_, _, n)| *n >= 2),
        "{:?}",
        waiting(&w)
    );
    // Once the CRM record fits, it is no longer waiting.
    w.mem.noted.lock().unwrap().remove(&first);
    w.mem.crm.lock().unwrap().put(
        &first,
        Some("u0".into()),
        person("Early", "early@x.test"),
        None,
    );
    w.pass().await;
    let left: Vec<String> = waiting(&w).into_iter().map(|(i, _, _)| i).collect();
    assert_eq!(left, [format!("crm:{later}")]);
}

#[tokio::test]
async fn an_outlook_item_cut_to_fit_the_crm_syncs_and_waits_with_its_reason() {
    let w = world(&["ann@x.test"]);
    w.pass().await;
    let typed = w.mailbox_create("ann@x.test", person("Typed", "typed@x.test"));
    w.mem.noted.lock().unwrap().insert(
        typed.clone(),
        vec!["company: 4000 characters, cut to the first 255".into()],
    );
    let report = w.pass().await;
    assert_eq!(report.users[0].counts.created, 1, "{report:?}");
    assert_eq!(w.crm_records(0).len(), 1);
    let ann = UserKey::new("ann@x.test");
    let waiting = |w: &World| -> Vec<(String, Option<String>, String, u64)> {
        w.syncer
            .store
            .unresolved(&ann)
            .unwrap()
            .into_iter()
            .map(|u| (u.id.to_string(), u.name, u.reason, u.occurrences))
            .collect()
    };
    let reported: Vec<_> = waiting(&w)
        .into_iter()
        .map(|(id, name, reason, _)| (id, name, reason))
        .collect();
    assert_eq!(
        reported,
        [(
            format!("exchange:{typed}"),
            Some("Pat Typed <typed@x.test>".to_owned()),
            "synced without what Salesforce cannot hold: company: 4000 characters, cut to the first 255".to_owned()
        )]
    );
    // The item is read again each pass (Outlook still holds what was cut); nothing is
    // written, and the reason stays, counted.
    for _ in 0..2 {
        let again = w.pass().await;
        let c = again.users[0].counts;
        assert_eq!(
            c.created + c.updated + c.deleted + c.failures,
            0,
            "{again:?}"
        );
    }
    assert!(waiting(&w).iter().all(|u| u.3 >= 2), "{:?}", waiting(&w));
    // Once the item fits, it is no longer waiting.
    w.mem.noted.lock().unwrap().remove(&typed);
    w.pass().await;
    assert_eq!(waiting(&w), []);
}

#[tokio::test]
async fn an_outlook_item_that_does_not_go_to_the_crm_is_not_reported_cut() {
    let w = world(&["ann@x.test"]);
    let mut mirror = configuration(&["ann@x.test"]);
    mirror.contacts.direction = exsync_core::config::Direction::CrmToExchange;
    let syncer = Arc::new(Syncer {
        exchange: w.mem.clone(),
        crm: w.mem.clone(),
        store: Arc::clone(&w.syncer.store),
        configurations: vec![mirror],
        concurrency: 2,
        slice: SLICE,
        worker: None,
    });
    let typed = w.mailbox_create("ann@x.test", person("Typed", "typed@x.test"));
    w.mem.noted.lock().unwrap().insert(
        typed,
        vec!["company: 4000 characters, cut to the first 255".into()],
    );
    for _ in 0..2 {
        syncer.run_pass(&PassOptions::default()).await.unwrap();
    }
    assert!(w.crm_records(0).is_empty());
    let ann = UserKey::new("ann@x.test");
    let waiting = w.syncer.store.unresolved(&ann).unwrap();
    assert!(waiting.is_empty(), "{waiting:?}");
}

/// Creates an item in `user`'s mailbox of this in-memory backend.
fn create_in(mem: &Mem, user: &str, fields: Fields) -> String {
    let mut boxes = mem.mailboxes.lock().unwrap();
    let mailbox = boxes.entry(user.to_owned()).or_default();
    let id = mailbox.new_id("e");
    mailbox.put(&id, None, fields, None);
    id
}

/// The users whose mailbox this in-memory backend holds.
fn mailbox_users(mem: &Mem) -> Vec<String> {
    mem.mailboxes.lock().unwrap().keys().cloned().collect()
}

fn backends(report: &super::service::PassReport) -> Vec<(String, Option<Backend>)> {
    report
        .users
        .iter()
        .map(|u| (u.user.as_ref().unwrap().to_string(), u.backend))
        .collect()
}

#[tokio::test]
async fn each_user_syncs_with_their_own_backend_and_a_moved_mailbox_keeps_its_pairs() {
    let users = ["ann@x.test", "bo@x.test", "cy@x.test"];
    let w = world(&users);
    // A second backend over the same CRM, with mailboxes of its own.
    let graph = Mem {
        backend: Backend::Graph,
        mailboxes: Arc::default(),
        ..w.mem.clone()
    };
    let syncer = |rule: BackendRule| {
        Arc::new(Syncer {
            exchange: Mailboxes::new(w.mem.clone(), graph.clone(), rule),
            crm: w.mem.clone(),
            store: Arc::clone(&w.syncer.store),
            configurations: vec![configuration(&users)],
            concurrency: 2,
            slice: SLICE,
            worker: None,
        })
    };
    let rule =
        BackendRule::every_user(Backend::Ews).with_user(UserKey::new("bo@x.test"), Backend::Graph);
    for (i, user) in users.iter().enumerate() {
        w.crm_create(i, person(&format!("Crm{i}"), &format!("crm{i}@x.test")));
        // Each user's mailbox item is in their own backend; the other holds a decoy under the
        // same address, which must never be read for them.
        let (own, other) = if *user == "bo@x.test" {
            (&graph, &w.mem)
        } else {
            (&w.mem, &graph)
        };
        create_in(
            own,
            user,
            person(&format!("Box{i}"), &format!("box{i}@x.test")),
        );
        create_in(other, user, person("Decoy", "decoy@x.test"));
    }
    let report = syncer(rule.clone())
        .run_pass(&PassOptions::default())
        .await
        .unwrap();
    assert_eq!(report.failed_users(), 0, "{report:?}");
    assert_eq!(
        backends(&report),
        [
            ("ann@x.test".to_owned(), Some(Backend::Ews)),
            ("bo@x.test".to_owned(), Some(Backend::Graph)),
            ("cy@x.test".to_owned(), Some(Backend::Ews)),
        ]
    );
    for (i, user) in users.iter().enumerate() {
        let (own, other) = if *user == "bo@x.test" {
            (&graph, &w.mem)
        } else {
            (&w.mem, &graph)
        };
        let boxed = |mem: &Mem| -> Vec<Fields> {
            mem.mailboxes.lock().unwrap()[*user]
                .records
                .values()
                .map(|r| r.1.clone())
                .collect()
        };
        assert_eq!(boxed(own).len(), 2, "{user}: own item and the CRM's copy");
        assert_eq!(boxed(other), [person("Decoy", "decoy@x.test")], "{user}");
        let crm: Vec<String> = w
            .crm_records(i)
            .iter()
            .map(|f| f["last_name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(crm.len(), 2, "{user}: {crm:?}");
        assert!(!crm.contains(&"Decoy".to_owned()), "{user}: {crm:?}");
    }

    // cy's mailbox moves to the other backend, which holds the same items with the same ids,
    // versions and tags; the old backend no longer has it.
    let cy = UserKey::new("cy@x.test");
    let moved = w.mem.mailboxes.lock().unwrap().remove("cy@x.test").unwrap();
    graph
        .mailboxes
        .lock()
        .unwrap()
        .insert("cy@x.test".to_owned(), moved);
    let pairs = |store: &Arc<dyn Store>| -> Vec<(String, String)> {
        store
            .load_pairs(&cy, ItemKind::Contact)
            .unwrap()
            .into_iter()
            .map(|p| (p.crm_id.to_string(), p.exchange_id.to_string()))
            .collect()
    };
    let before = pairs(&w.syncer.store);
    assert_eq!(before.len(), 2);
    let rule = rule.with_user(cy.clone(), Backend::Graph);
    let moved = syncer(rule.clone());
    let report = moved.run_pass(&PassOptions::default()).await.unwrap();
    assert_eq!(report.failed_users(), 0, "{report:?}");
    assert_eq!(
        backends(&report)[2],
        ("cy@x.test".to_owned(), Some(Backend::Graph))
    );
    let c = report.users[2].counts;
    assert_eq!(c.created + c.updated + c.deleted, 0, "{report:?}");
    assert_eq!(pairs(&w.syncer.store), before, "cy keeps their pairs");
    assert_eq!(mailbox_users(&w.mem), ["ann@x.test", "bo@x.test"]);
    // The new backend's cursor is the one stored now, and cy's edits there reach the CRM.
    let cursor = w
        .syncer
        .store
        .cursor(&folder_cursor(&cy, ItemKind::Contact))
        .unwrap();
    assert!(cursor.unwrap().contains("\"g"), "the new backend's cursor");
    {
        let mut boxes = graph.mailboxes.lock().unwrap();
        let mailbox = boxes.get_mut("cy@x.test").unwrap();
        let id = mailbox
            .records
            .iter()
            .find(|(_, r)| r.1["last_name"] == "Box2")
            .map(|(id, _)| id.clone())
            .unwrap();
        let (owner, mut fields, origin) = mailbox.records[&id].clone();
        fields.insert("title".into(), serde_json::json!("Edited after the move"));
        mailbox.put(&id, owner, fields, origin);
    }
    let report = moved.run_pass(&PassOptions::default()).await.unwrap();
    assert_eq!(report.failed_users(), 0, "{report:?}");
    assert_eq!(report.users[2].counts.updated, 1, "{report:?}");
    assert!(w
        .crm_records(2)
        .iter()
        .any(|f| f.get("title") == Some(&serde_json::json!("Edited after the move"))));
    assert_eq!(pairs(&w.syncer.store), before);
}

#[tokio::test]
async fn a_user_routed_to_an_unconfigured_backend_fails_alone_and_says_why() {
    let users = ["ann@x.test", "bo@x.test"];
    let w = world(&users);
    w.crm_create(0, person("ForAnn", "a@x.test"));
    w.crm_create(1, person("ForBo", "b@x.test"));
    let rule =
        BackendRule::every_user(Backend::Ews).with_user(UserKey::new("bo@x.test"), Backend::Graph);
    let syncer = Arc::new(Syncer {
        exchange: Mailboxes::new(w.mem.clone(), Unconfigured(Backend::Graph), rule),
        crm: w.mem.clone(),
        store: Arc::clone(&w.syncer.store),
        configurations: vec![configuration(&users)],
        concurrency: 2,
        slice: SLICE,
        worker: None,
    });
    let report = syncer.run_pass(&PassOptions::default()).await.unwrap();
    assert_eq!(report.failed_users(), 1, "{report:?}");
    let bo = &report.users[1];
    assert_eq!(bo.backend, Some(Backend::Graph));
    assert!(
        bo.error
            .as_deref()
            .unwrap_or("")
            .contains("served by the graph backend, which is not configured"),
        "{bo:?}"
    );
    assert_eq!(w.mailbox("ann@x.test").len(), 1);
    assert!(w.mailbox("bo@x.test").is_empty());
}

#[tokio::test]
async fn what_a_backend_notices_is_reported_stored_with_the_run_and_counted_once() {
    let w = world(&["ann@x.test", "bo@x.test"]);
    let notice = Notice {
        code: "sync_folder_replaced".to_owned(),
        message: "The contact sync folder was deleted.".to_owned(),
        fix: "Nothing to do.".to_owned(),
    };
    w.mem
        .notices
        .lock()
        .unwrap()
        .insert("ann@x.test".to_owned(), vec![notice.clone()]);
    let report = w.pass().await;
    let of = |report: &super::service::PassReport, who: &str| {
        report
            .users
            .iter()
            .find(|u| u.user.as_ref().is_some_and(|k| k.as_str() == who))
            .map(|u| u.notices.clone())
            .unwrap()
    };
    assert_eq!(of(&report, "ann@x.test"), vec![notice.clone()]);
    assert!(of(&report, "bo@x.test").is_empty());
    let status = |who: &str| {
        w.syncer
            .store
            .user_status(&UserKey::from_email(who))
            .unwrap()
            .unwrap()
            .last_run
            .unwrap()
            .notices
    };
    assert_eq!(status("ann@x.test"), vec![notice]);
    assert!(status("bo@x.test").is_empty());
    let metrics = crate::metrics::Metrics::default();
    super::daemon::record(&metrics, &report, std::time::Duration::from_secs(1));
    assert!(
        metrics
            .render()
            .contains("exsync_notices_total{code=\"sync_folder_replaced\"} 1"),
        "{}",
        metrics.render()
    );

    // Taken once: the next pass has nothing to say.
    let again = w.pass().await;
    assert!(of(&again, "ann@x.test").is_empty());
    assert!(status("ann@x.test").is_empty());
}

#[tokio::test]
async fn the_metrics_say_who_syncs_fails_or_is_missing_and_what_went_where() {
    let mut config = configuration(&["ann@x.test", "bo@x.test"]);
    config.users.insert(UserKey::from_email("gone@x.test"));
    let w = world_with(&["ann@x.test", "bo@x.test"], config);
    let crm = w.crm_create(0, person("Crm", "crm@x.test"));
    let typed = w.mailbox_create("ann@x.test", person("Box", "box@x.test"));
    // Each had to be cut to fit the side it goes to.
    for id in [crm, typed] {
        w.mem.noted.lock().unwrap().insert(
            id,
            vec!["company: 4000 characters, cut to the first 255".into()],
        );
    }
    w.mem
        .faults
        .lock()
        .unwrap()
        .down
        .insert("bo@x.test".to_owned());
    let report = w.pass().await;
    assert_eq!(
        report.missing_users,
        vec![(
            UserKey::from_email("gone@x.test"),
            "no active CRM user has this address in their Email field".to_owned()
        )]
    );
    // Kept for `exsync status` and the console.
    let stored = w.syncer.store.unmatched_users().unwrap();
    assert_eq!(
        stored
            .iter()
            .map(|u| (u.user.clone(), u.reason.clone()))
            .collect::<Vec<_>>(),
        report.missing_users
    );
    let metrics = crate::metrics::Metrics::default();
    super::daemon::record(&metrics, &report, std::time::Duration::from_secs(1));
    let text = metrics.render();
    for line in [
        "exsync_users{state=\"syncing\"} 1",
        "exsync_users{state=\"failing\"} 1",
        "exsync_users{state=\"paused\"} 0",
        "exsync_users{state=\"unassigned\"} 1",
        "exsync_items_synced_total{kind=\"contact\",direction=\"to_exchange\",op=\"create\"} 1",
        "exsync_items_synced_total{kind=\"contact\",direction=\"to_crm\",op=\"create\"} 1",
        "exsync_records_cut_total{direction=\"to_exchange\"} 1",
        "exsync_records_cut_total{direction=\"to_crm\"} 1",
        "exsync_user_last_success_timestamp_seconds{user=\"ann@x.test\"} ",
    ] {
        assert!(text.contains(line), "{line} missing in {text}");
    }
    assert!(!text.contains("user=\"bo@x.test\""), "{text}");
    assert!(
        text.contains("exsync_last_pass_end_timestamp_seconds "),
        "{text}"
    );
}
