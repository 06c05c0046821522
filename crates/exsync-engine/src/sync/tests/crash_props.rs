//! Random work by people on both sides, interleaved with passes that crash at a random write
//! call (the request lost, the answer lost, or the whole call failing after the side wrote),
//! then clean passes: no human edit is ever lost, every delete holds, and every record is on
//! each side exactly once.
//!
//! People edit disjoint fields (the CRM the title, Outlook the department), so no edit can be
//! a real conflict and the expected end state follows from the edits alone; a record is only
//! deleted when none of its edits is waiting to sync, since an edit waiting on the other side
//! would rightly win over the delete.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use exsync_core::{ItemKind, Side};
use proptest::prelude::*;
use serde_json::{json, Value};
use tokio::sync::Notify;

use super::*;

const ANN: &str = "ann@example.com";

#[derive(Debug, Clone)]
enum Step {
    Create(Side),
    Edit(Side, usize),
    Delete(Side, usize),
    Pass,
    Crash(Side, CrashAt, usize),
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Crm), Just(Side::Exchange)]
}

fn step() -> impl Strategy<Value = Step> {
    let at = prop_oneof![
        Just(CrashAt::Sent),
        Just(CrashAt::Answered),
        Just(CrashAt::FailedAfterWriting)
    ];
    prop_oneof![
        3 => side().prop_map(Step::Create),
        4 => (side(), any::<usize>()).prop_map(|(s, n)| Step::Edit(s, n)),
        2 => (side(), any::<usize>()).prop_map(|(s, n)| Step::Delete(s, n)),
        1 => Just(Step::Pass),
        4 => (side(), at, 0..3usize).prop_map(|(s, a, k)| Step::Crash(s, a, k)),
    ]
}

/// What the records should hold once synced, by their last name (never edited, so it names
/// one record across both sides).
#[derive(Default)]
struct Expected {
    alive: BTreeMap<String, [Option<Value>; 2]>,
    dead: BTreeSet<String>,
    /// Records with an edit no completed pass has synced yet.
    dirty: BTreeSet<String>,
}

/// The field each side's people edit: `[title, department]` in [`Expected::alive`].
fn edited_field(side: Side) -> (&'static str, usize) {
    match side {
        Side::Crm => ("title", 0),
        Side::Exchange => ("department", 1),
    }
}

impl World {
    /// The id of the record named `name` on `side`, if that side has it.
    fn named(&self, side: Side, name: &str) -> Option<String> {
        let find = |log: &Log| {
            log.records
                .iter()
                .find(|(_, r)| r.1.get("last_name") == Some(&json!(name)))
                .map(|(id, _)| id.clone())
        };
        match side {
            Side::Crm => find(&self.mem.crm.lock().unwrap()),
            Side::Exchange => self.mem.mailboxes.lock().unwrap().get(ANN).and_then(find),
        }
    }

    fn set_field(&self, side: Side, id: &str, field: &str, value: Value) {
        match side {
            Side::Crm => self.crm_edit(id, field, value),
            Side::Exchange => self.mailbox_edit(ANN, id, field, value),
        }
    }

    fn remove_on(&self, side: Side, id: &str) {
        match side {
            Side::Crm => self.crm_delete(id),
            Side::Exchange => self.mailbox_delete(ANN, id),
        }
    }

    /// Every record on `side` as (last name, title, department).
    fn held(&self, side: Side) -> Vec<(String, Option<Value>, Option<Value>)> {
        let list = |log: &Log| {
            log.records
                .values()
                .map(|r| {
                    let f = &r.1;
                    (
                        f.get("last_name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        f.get("title").cloned(),
                        f.get("department").cloned(),
                    )
                })
                .collect::<Vec<_>>()
        };
        let mut held = match side {
            Side::Crm => list(&self.mem.crm.lock().unwrap()),
            Side::Exchange => self
                .mem
                .mailboxes
                .lock()
                .unwrap()
                .get(ANN)
                .map(list)
                .unwrap_or_default(),
        };
        held.sort_by(|a, b| a.0.cmp(&b.0));
        held
    }

    /// A pass that crashes in the write call to `side` after `skip` others, if it makes one;
    /// the crash is disarmed either way.
    async fn pass_crashing(&self, side: Side, at: CrashAt, skip: usize) {
        let crashed = Arc::new(Notify::new());
        self.mem.faults.lock().unwrap().crash = Some(Crash {
            side,
            at,
            skip,
            crashed: Arc::clone(&crashed),
        });
        tokio::select! {
            _ = self.pass() => {}
            () = crashed.notified() => {}
        }
        self.mem.faults.lock().unwrap().crash = None;
    }
}

fn pick(names: &BTreeMap<String, [Option<Value>; 2]>, n: usize) -> Option<String> {
    (!names.is_empty()).then(|| names.keys().nth(n % names.len()).cloned())?
}

async fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let w = world(&[ANN]);
    let mut expected = Expected::default();
    for (n, step) in steps.into_iter().enumerate() {
        match step {
            Step::Create(side) => {
                let name = format!("N{n}");
                let fields = person(&name, &format!("n{n}@example.com"));
                match side {
                    Side::Crm => w.crm_create(0, fields),
                    Side::Exchange => w.mailbox_create(ANN, fields),
                };
                expected.alive.insert(name, [None, None]);
            }
            Step::Edit(side, k) => {
                let Some(name) = pick(&expected.alive, k) else {
                    continue;
                };
                let Some(id) = w.named(side, &name) else {
                    continue;
                };
                let (field, slot) = edited_field(side);
                let value = json!(format!("{field} {n}"));
                w.set_field(side, &id, field, value.clone());
                if let Some(fields) = expected.alive.get_mut(&name) {
                    fields[slot] = Some(value);
                }
                expected.dirty.insert(name);
            }
            Step::Delete(side, k) => {
                let Some(name) = pick(&expected.alive, k) else {
                    continue;
                };
                if expected.dirty.contains(&name) {
                    continue;
                }
                let Some(id) = w.named(side, &name) else {
                    continue;
                };
                w.remove_on(side, &id);
                expected.alive.remove(&name);
                expected.dead.insert(name);
            }
            Step::Pass => {
                w.pass().await;
                expected.dirty.clear();
            }
            Step::Crash(side, at, skip) => w.pass_crashing(side, at, skip).await,
        }
    }

    w.pass().await;
    let again = w.pass().await;
    let counts = &again.users[0].counts;
    prop_assert_eq!(
        (
            counts.created,
            counts.updated,
            counts.deleted,
            counts.failures
        ),
        (0, 0, 0, 0),
        "a further clean pass writes nothing"
    );
    let want: Vec<(String, Option<Value>, Option<Value>)> = expected
        .alive
        .iter()
        .map(|(name, [title, department])| (name.clone(), title.clone(), department.clone()))
        .collect();
    for side in [Side::Crm, Side::Exchange] {
        prop_assert_eq!(
            w.held(side),
            want.clone(),
            "{}: every record once, with every edit, the deleted ones ({:?}) gone",
            side,
            expected.dead
        );
    }
    let key = UserKey::new(ANN);
    let store = &w.syncer.store;
    prop_assert!(store.intents(&key, ItemKind::Contact).unwrap().is_empty());
    prop_assert_eq!(store.conflicts(&key, 10).unwrap(), vec![]);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn crashes_at_random_writes_never_lose_an_edit_or_undo_a_delete(
        steps in prop::collection::vec(step(), 1..30)
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(run(steps))?;
    }
}
