//! Random edits, creates and deletes on both sides, planned and applied in passes, must always
//! converge, never put one record in two pairs, and leave nothing to do right after a pass —
//! also when writes fail, or succeed without the executor learning of it (a crash right after
//! the write), and the records involved are fetched again in the next pass.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::config::{ConflictPolicy, DeleteMode, Direction, KindRules};
use crate::model::{Contact, Record};

/// One side of the model: records by id, plus the change feed it reports since the last pass,
/// including our own writes (as EWS SyncFolderItems and a SystemModstamp query would).
#[derive(Debug, Default, Clone)]
struct Store {
    side: Option<Side>,
    records: BTreeMap<String, (Fields, Option<ItemId>)>,
    feed: Vec<Change>,
    next: u32,
}

impl Store {
    fn new(side: Side) -> Self {
        Store {
            side: Some(side),
            ..Store::default()
        }
    }

    fn side(&self) -> Side {
        self.side.unwrap()
    }

    fn item_id(&self, id: &str) -> ItemId {
        match self.side() {
            Side::Crm => ItemId::Crm(id.into()),
            Side::Exchange => ItemId::Exchange(id.into()),
        }
    }

    fn report(&mut self, id: &str) {
        let change = match self.records.get(id) {
            Some((fields, origin)) => Change::Upsert(Item {
                id: self.item_id(id),
                fields: fields.clone(),
                version: None,
                modified: None,
                origin: origin.clone(),
            }),
            None => Change::Deleted {
                id: self.item_id(id),
            },
        };
        self.feed.push(change);
    }

    fn create(&mut self, fields: Fields, origin: Option<ItemId>) -> String {
        self.next += 1;
        let id = format!(
            "{}{}",
            if self.side() == Side::Crm { "c" } else { "e" },
            self.next
        );
        self.records.insert(id.clone(), (fields, origin));
        self.report(&id);
        id
    }

    fn nth(&self, n: usize) -> Option<String> {
        if self.records.is_empty() {
            return None;
        }
        self.records.keys().nth(n % self.records.len()).cloned()
    }
}

/// A CRM without a department field: it keeps everything else, and reading back takes the
/// department from what was last synced.
#[derive(Debug)]
struct NoDepartment;

impl Lens for NoDepartment {
    fn narrow(&self, _kind: ItemKind, fields: &Fields) -> Fields {
        let mut kept = fields.clone();
        kept.remove("department");
        kept
    }

    fn widen(&self, _kind: ItemKind, narrow: &Fields, wide: &Fields) -> Fields {
        let mut full = narrow.clone();
        match wide.get("department") {
            Some(d) => full.insert("department".into(), d.clone()),
            None => full.remove("department"),
        };
        full
    }
}

#[derive(Debug, Clone)]
enum Action {
    Create(Side, Fields),
    Edit(Side, usize, &'static str, Option<serde_json::Value>),
    Delete(Side, usize),
    Sync,
    /// A pass in which writes fail (`Fail`: nothing written) or are lost (`Lost`: written, but
    /// the executor never hears back), following the pattern.
    FaultySync(Vec<Outcome>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Fail,
    Lost,
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![4 => Just(Outcome::Ok), 1 => Just(Outcome::Fail), 1 => Just(Outcome::Lost)]
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Crm), Just(Side::Exchange)]
}

/// Contacts from a small vocabulary, so that e-mail and name matches happen often.
fn contact() -> impl Strategy<Value = Fields> {
    (
        prop::sample::select(vec!["Ada", "Bob", "Cy"]),
        prop::sample::select(vec!["Lovelace", "Marley"]),
        prop::option::of(prop::sample::select(vec![
            "a@x.test", "b@x.test", "c@x.test",
        ])),
        prop::option::of(prop::sample::select(vec!["Dr", "Prof"])),
    )
        .prop_map(|(first, last, email, title)| {
            Contact {
                first_name: first.into(),
                last_name: last.into(),
                emails: email.map(|e| vec![e.to_owned()]).unwrap_or_default(),
                title: title.unwrap_or_default().into(),
                ..Contact::default()
            }
            .to_fields()
        })
}

fn edit() -> impl Strategy<Value = (&'static str, Option<serde_json::Value>)> {
    prop_oneof![
        prop::sample::select(vec!["Dr", "Prof", "Sir"]).prop_map(|v| ("title", Some(json!(v)))),
        Just(("title", None)),
        prop::sample::select(vec!["Math", "Poetry"]).prop_map(|v| ("department", Some(json!(v)))),
        Just(("department", None)),
        prop::sample::select(vec!["Ada", "Bob", "Dee"])
            .prop_map(|v| ("first_name", Some(json!(v)))),
        prop::sample::select(vec!["a@x.test", "d@x.test"])
            .prop_map(|v| ("emails", Some(json!([v])))),
        Just(("emails", None)),
        // Not synced under the test rules: edits to it must never cause writes.
        prop::sample::select(vec!["n1", "n2"]).prop_map(|v| ("notes", Some(json!(v)))),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => (side(), contact()).prop_map(|(s, f)| Action::Create(s, f)),
        5 => (side(), any::<usize>(), edit()).prop_map(|(s, n, (k, v))| Action::Edit(s, n, k, v)),
        2 => (side(), any::<usize>()).prop_map(|(s, n)| Action::Delete(s, n)),
        2 => Just(Action::Sync),
        1 => prop::collection::vec(outcome(), 1..6).prop_map(Action::FaultySync),
    ]
}

fn rules() -> impl Strategy<Value = KindRules> {
    (
        prop_oneof![
            Just(Direction::Both),
            Just(Direction::CrmToExchange),
            Just(Direction::ExchangeToCrm)
        ],
        prop_oneof![
            Just(ConflictPolicy::CrmWins),
            Just(ConflictPolicy::ExchangeWins),
            Just(ConflictPolicy::NewestWins)
        ],
        prop_oneof![Just(DeleteMode::Propagate), Just(DeleteMode::Recreate)],
    )
        .prop_map(|(direction, conflict, deletes)| {
            let mut rules = KindRules::default_for(ItemKind::Contact);
            rules.direction = direction;
            rules.conflict = conflict;
            rules.deletes = deletes;
            rules.fields.remove("notes");
            // The valve is tested by table tests; here every delete must go through.
            rules.max_delete_share = 1.0;
            rules
        })
}

#[derive(Clone)]
struct World {
    crm: Store,
    exchange: Store,
    pairs: Vec<SyncedPair>,
    rules: KindRules,
    /// The CRM cannot hold `department` (a lossy CRM, as Salesforce is for some fields).
    lossy: bool,
    /// Records that failed to sync; fetched again at the start of the next pass.
    retry: BTreeSet<ItemId>,
    created: u32,
}

impl World {
    fn store(&mut self, side: Side) -> &mut Store {
        match side {
            Side::Crm => &mut self.crm,
            Side::Exchange => &mut self.exchange,
        }
    }

    fn lens(&self) -> &dyn Lens {
        if self.lossy {
            &NoDepartment
        } else {
            &Identity
        }
    }

    /// Keeps only what the CRM can hold of one of its records.
    fn narrow_crm(&mut self, id: &str) {
        let lens = if self.lossy {
            &NoDepartment as &dyn Lens
        } else {
            &Identity
        };
        if let Some((record, _)) = self.crm.records.get_mut(id) {
            *record = lens.narrow(ItemKind::Contact, record);
        }
    }

    /// The plan of the pass, which is the same whether the changes are lent to the planner
    /// or given to it.
    fn plan(&self) -> Vec<Op> {
        let input = PlanInput {
            crm_lens: self.lens(),
            new_records: NewRecords::Match,
            kind: ItemKind::Contact,
            rules: &self.rules,
            pairs: &self.pairs,
            crm_changes: Cow::Borrowed(&self.crm.feed),
            exchange_changes: Cow::Borrowed(&self.exchange.feed),
            now: Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap(),
        };
        let given = PlanInput {
            crm_changes: Cow::Owned(self.crm.feed.clone()),
            exchange_changes: Cow::Owned(self.exchange.feed.clone()),
            ..input.clone()
        };
        let ops = plan(input);
        assert_eq!(plan(given), ops, "given changes plan as lent ones do");
        ops
    }

    /// Runs the writes of a plan against the stores, each with the next outcome of the
    /// pattern, then commits what `settle` says, the way the executor and store must.
    fn execute(&mut self, ops: &[Op], pattern: &[Outcome]) -> bool {
        self.crm.feed.clear();
        self.exchange.feed.clear();
        let mut results = Vec::new();
        let mut outcomes = pattern.iter().copied().cycle();
        for op in ops.iter().filter(|op| op.writes()) {
            let outcome = if pattern.is_empty() {
                Outcome::Ok
            } else {
                outcomes.next().unwrap_or(Outcome::Ok)
            };
            if outcome == Outcome::Fail {
                results.push(WriteResult::Failed {
                    reason: "injected".into(),
                });
                continue;
            }
            let id = match op {
                Op::Create {
                    on, source, fields, ..
                } => {
                    // Both connectors tag what they create with the source record's id.
                    let new = self.store(*on).create(fields.clone(), Some(source.clone()));
                    if *on == Side::Crm {
                        self.narrow_crm(&new);
                        self.crm.feed.pop();
                        self.crm.report(&new);
                    }
                    self.store(*on).item_id(&new)
                }
                Op::Update {
                    on,
                    crm_id,
                    exchange_id,
                    fields,
                    changed,
                    ..
                } => {
                    let id = pair_side_id(*on, crm_id, exchange_id);
                    let store = self.store(*on);
                    let (record, _) = store
                        .records
                        .get_mut(&id)
                        .expect("update of a record that exists");
                    for name in changed {
                        match fields.get(name) {
                            Some(value) => record.insert(name.clone(), value.clone()),
                            None => record.remove(name),
                        };
                    }
                    if *on == Side::Crm {
                        self.narrow_crm(&id);
                    }
                    let store = self.store(*on);
                    store.report(&id);
                    store.item_id(&id)
                }
                Op::Delete {
                    on,
                    crm_id,
                    exchange_id,
                    ..
                } => {
                    let id = pair_side_id(*on, crm_id, exchange_id);
                    let store = self.store(*on);
                    assert!(
                        store.records.remove(&id).is_some(),
                        "delete of a missing record {id}"
                    );
                    store.report(&id);
                    store.item_id(&id)
                }
                other => unreachable!("{other:?} does not write"),
            };
            results.push(match outcome {
                Outcome::Lost => WriteResult::Failed {
                    reason: "no answer".into(),
                },
                _ => WriteResult::Done { id, version: None },
            });
        }
        let settlement = settle(&mut ops.to_vec(), &results);
        // Removals first: a recreated record replaces its forgotten pair.
        for (crm_id, exchange_id) in &settlement.removals {
            self.pairs
                .retain(|p| !(&p.crm_id == crm_id && &p.exchange_id == exchange_id));
        }
        // An upsert replaces the row of the same pair; it must never meet a different pair
        // holding one of its records.
        for pair in settlement.upserts {
            self.pairs
                .retain(|p| !(p.crm_id == pair.crm_id && p.exchange_id == pair.exchange_id));
            assert!(
                !self
                    .pairs
                    .iter()
                    .any(|p| p.crm_id == pair.crm_id || p.exchange_id == pair.exchange_id),
                "settlement would put a record in two pairs: {pair:?}"
            );
            self.pairs.push(pair);
        }
        assert!(settlement.paused.is_none(), "paused with the valve off");
        if pattern.is_empty() {
            assert!(
                settlement.failures.is_empty(),
                "valid data failed: {:?}",
                settlement.failures
            );
        }
        self.retry
            .extend(settlement.failures.iter().map(|f| f.id.clone()));
        settlement.failures.is_empty()
    }

    fn synced(&self, fields: &Fields) -> Fields {
        fields
            .iter()
            .filter(|(k, _)| self.rules.fields.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let crm_ids: BTreeSet<&CrmId> = self.pairs.iter().map(|p| &p.crm_id).collect();
        let exchange_ids: BTreeSet<&ExchangeId> =
            self.pairs.iter().map(|p| &p.exchange_id).collect();
        prop_assert_eq!(
            crm_ids.len(),
            self.pairs.len(),
            "a CRM record is in two pairs"
        );
        prop_assert_eq!(
            exchange_ids.len(),
            self.pairs.len(),
            "an Exchange record is in two pairs"
        );
        for pair in &self.pairs {
            let c = self.crm.records.get(pair.crm_id.as_str());
            let e = self.exchange.records.get(pair.exchange_id.as_str());
            prop_assert!(
                c.is_some() && e.is_some(),
                "pair {pair:?} points at a missing record"
            );
            let (c, e) = (self.synced(&c.unwrap().0), self.synced(&e.unwrap().0));
            // The CRM holds what it can of the pair; Exchange holds all of it.
            prop_assert_eq!(
                &c,
                &self.lens().narrow(ItemKind::Contact, &e),
                "pair {}/{} did not converge",
                pair.crm_id,
                pair.exchange_id
            );
            prop_assert_eq!(&e, &pair.content, "status differs from the records");
        }
        // No side ever holds two copies of one record (a create retried after a lost answer
        // must find its first attempt).
        for store in [&self.crm, &self.exchange] {
            let mut markers = BTreeSet::new();
            for (id, (fields, _)) in &store.records {
                let marker = fields.get("middle_name").map(ToString::to_string);
                prop_assert!(
                    markers.insert(marker.clone()),
                    "{:?} holds a duplicate of {marker:?} ({id})",
                    store.side
                );
            }
        }
        // Every record of a side whose changes flow has its counterpart.
        for (store, flows) in [(&self.crm, Side::Crm), (&self.exchange, Side::Exchange)] {
            if !self.rules.direction.flows_from(flows) {
                continue;
            }
            for id in store.records.keys() {
                let paired = self.pairs.iter().any(|p| p.id_on(flows).as_str() == id);
                prop_assert!(paired, "{flows} record {id} was never synced");
            }
        }
        Ok(())
    }

    /// The synced content both sides hold, without ids (a retried create gets a new id).
    /// Unsynced fields are left out: when two records share a match key, a deferred link may
    /// pick the other one, which is as right, and only side-local fields show the difference.
    fn contents(&self) -> [Vec<String>; 2] {
        [&self.crm, &self.exchange].map(|store| {
            let mut all: Vec<String> = store
                .records
                .values()
                .map(|(f, _)| format!("{:?}", self.synced(f)))
                .collect();
            all.sort();
            all
        })
    }

    /// Fetches the records that failed last time, as the service does at the start of a pass.
    fn refetch(&mut self) {
        for id in std::mem::take(&mut self.retry) {
            let side = id.side();
            self.store(side).report(id.as_str());
        }
    }

    fn sync(&mut self) -> Result<(), TestCaseError> {
        self.refetch();
        let ops = self.plan();
        self.execute(&ops, &[]);
        self.check()?;
        // Right after a pass, the echoes of our own writes plan to nothing.
        let again = self.plan();
        prop_assert!(
            again.is_empty(),
            "planning right after a pass gave {again:?}"
        );
        self.crm.feed.clear();
        self.exchange.feed.clear();
        Ok(())
    }

    /// A pass with injected faults: whatever happens, no record may end up in two pairs and
    /// every pair must point at records that exist.
    fn faulty_sync(&mut self, pattern: &[Outcome]) -> Result<(), TestCaseError> {
        self.refetch();
        let ops = self.plan();
        self.execute(&ops, pattern);
        let crm_ids: BTreeSet<&CrmId> = self.pairs.iter().map(|p| &p.crm_id).collect();
        let exchange_ids: BTreeSet<&ExchangeId> =
            self.pairs.iter().map(|p| &p.exchange_id).collect();
        prop_assert_eq!(crm_ids.len(), self.pairs.len());
        prop_assert_eq!(exchange_ids.len(), self.pairs.len());
        Ok(())
    }
}

fn pair_side_id(on: Side, crm_id: &CrmId, exchange_id: &ExchangeId) -> String {
    match on {
        Side::Crm => crm_id.as_str().to_owned(),
        Side::Exchange => exchange_id.as_str().to_owned(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn passes_converge_without_duplicates(rules in rules(), lossy in any::<bool>(), actions in prop::collection::vec(action(), 1..40)) {
        let mut world = World {
            crm: Store::new(Side::Crm),
            exchange: Store::new(Side::Exchange),
            pairs: Vec::new(),
            rules,
            lossy,
            retry: BTreeSet::new(),
            created: 0,
        };
        for action in actions {
            match action {
                Action::Create(side, mut fields) => {
                    // A marker no edit touches: one logical record, one marker, on each side.
                    world.created += 1;
                    fields.insert("middle_name".into(), json!(format!("m{}", world.created)));
                    let id = world.store(side).create(fields, None);
                    if side == Side::Crm {
                        world.narrow_crm(&id);
                        world.crm.feed.pop();
                        world.crm.report(&id);
                    }
                }
                Action::Edit(side, n, key, value) => {
                    let store = world.store(side);
                    if let Some(id) = store.nth(n) {
                        if let Some((record, _)) = store.records.get_mut(&id) {
                            match value {
                                Some(v) => record.insert(key.to_owned(), v),
                                None => record.remove(key),
                            };
                        }
                        if side == Side::Crm {
                            world.narrow_crm(&id);
                        }
                        world.store(side).report(&id);
                    }
                }
                Action::Delete(side, n) => {
                    let store = world.store(side);
                    if let Some(id) = store.nth(n) {
                        store.records.remove(&id);
                        store.report(&id);
                    }
                }
                Action::Sync => world.sync()?,
                Action::FaultySync(pattern) => {
                    // Faults only delay: a faulty pass then a clean one must leave the same
                    // contents as one clean pass, or some write was lost or undone.
                    let mut twin = world.clone();
                    twin.sync()?;
                    world.faulty_sync(&pattern)?;
                    world.sync()?;
                    prop_assert_eq!(world.contents(), twin.contents(), "faults changed the outcome");
                }
            }
        }
        // Faults are over: one clean pass fetches what failed and converges.
        world.sync()?;
        // A further pass with no edits changes nothing.
        prop_assert!(world.plan().is_empty());
    }
}
