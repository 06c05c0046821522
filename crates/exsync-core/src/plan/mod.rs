//! The planner: a pure function from (CRM changes, Exchange changes, last-synced state,
//! configuration) to the operations that bring both sides together. No I/O, no clock: the time
//! of the pass is an input.
//!
//! Rules, per record kind:
//! - **Echo suppression:** a reported record whose synced fields equal the pair's last-synced
//!   content is no change (our own writes come back this way).
//! - **Three-way merge** against the last-synced content; a field changed differently on both
//!   sides is settled by the conflict policy and recorded.
//! - **Directions:** with one direction, the target side mirrors the source: its edits are
//!   overwritten, its deletions recreated, and records only it holds are left alone.
//! - **Deletes** propagate from a side whose changes flow (or are undone under `recreate`); an
//!   edit on the other side wins over a delete when both sides flow; both deleted → forgotten.
//! - **First-sync matching** links unpaired records (tag, e-mail, name + company; events by
//!   subject + start + end) instead of duplicating them.
//! - **Safety valve:** a plan that would delete more than the configured share of the user's
//!   pairs becomes a single `PauseUser`.

mod lens;
mod matching;
mod merge;
mod scope;
mod settle;
mod types;
mod validate;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::config::{ConflictPolicy, DeleteMode, Direction, FirstLink, KindRules};
use crate::model::{required_fields, CrmId, ExchangeId, Fields, ItemId, ItemKind, Side};

pub use lens::{Identity, Lens};
pub use matching::{link_rules, link_unpaired, match_keys, Candidates};
pub use merge::{changed_fields, three_way};
pub use scope::out_of_scope;
pub use settle::{settle, ItemFailure, Settlement, WriteResult};
pub use types::*;

/// Everything the planner reads for one user and one record kind.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    /// The record kind planned; the changes and pairs given must all be of this kind.
    pub kind: ItemKind,
    /// The user's sync rules for this kind: direction, fields, conflict and delete policy, scope.
    pub rules: &'a KindRules,
    /// The user's pairs of this kind, as last synced.
    pub pairs: &'a [SyncedPair],
    /// What the CRM reports since the last pass, in the order it happened. Given rather than
    /// lent ([`Cow::Owned`]), the records are moved into the writes that copy them instead of
    /// copied.
    pub crm_changes: Cow<'a, [Change]>,
    /// What Exchange reports since the last pass, in the order it happened; given or lent, as
    /// the CRM's.
    pub exchange_changes: Cow<'a, [Change]>,
    /// The time of the pass, against which time-based scope rules (such as an event window) are
    /// judged.
    pub now: DateTime<Utc>,
    /// What the CRM can hold; [`Identity`] for a CRM that holds everything.
    pub crm_lens: &'a dyn Lens,
    /// What to do with reported records no pair holds.
    pub new_records: NewRecords<'a>,
}

/// How a plan treats records no pair holds. A pass too large to plan at once plans its pairs
/// in slices ([`NewRecords::Claim`]), matches the rest on disk, then plans them in slices with
/// the links found ([`NewRecords::Linked`]); [`NewRecords::Match`] does it all in one go.
#[derive(Debug, Clone, Copy)]
pub enum NewRecords<'a> {
    /// Match them against each other, then create the rest on the other side.
    Match,
    /// Only take those a pair's lost recreate produced (found by our tag); leave the others.
    Claim,
    /// Link these (CRM id, Exchange id) as matched, and create the rest.
    Linked(&'a [(ItemId, ItemId, LinkReason)]),
}

/// The fields that sync for a kind under these rules (the configured ones and the required).
fn synced_fields(kind: ItemKind, rules: &KindRules) -> BTreeSet<String> {
    rules
        .fields
        .keys()
        .cloned()
        .chain(required_fields(kind).iter().map(|f| (*f).to_owned()))
        .collect()
}

/// The match keys of a record as the planner sees it under these rules (see [`match_keys`]).
pub fn record_keys(kind: ItemKind, rules: &KindRules, item: &Item) -> Vec<(u8, String)> {
    // Called for every record a first sync reads: the fields that do not sync are hidden from
    // the rules, not copied out.
    let required = required_fields(kind);
    matching::keys_of(kind, item, &|name| {
        let syncs = rules.fields.contains_key(name) || required.contains(&name);
        syncs.then(|| item.fields.get(name)).flatten()
    })
}

/// Plans one pass. The result is deterministic for a given input.
pub fn plan(input: PlanInput<'_>) -> Vec<Op> {
    let (kind, rules, pairs) = (input.kind, input.rules, input.pairs.len());
    let ops = plan_unchecked(input);
    let deletes = ops
        .iter()
        .filter(|op| matches!(op, Op::Delete { .. }))
        .count();
    match valve(kind, rules, deletes, pairs) {
        Some(pause) => vec![pause],
        None => ops,
    }
}

/// [`plan`] without the safety valve, for a pass planned in slices: the valve weighs the
/// deletes of all slices against all the user's pairs (see [`valve`]).
pub fn plan_unchecked(input: PlanInput<'_>) -> Vec<Op> {
    if input.rules.direction == Direction::Off {
        return Vec::new();
    }
    let ctx = Ctx::new(input);
    let mut ops = Vec::new();
    ctx.run(&mut ops);
    ops
}

/// The mass-delete safety valve: the `PauseUser` a plan becomes when it would delete
/// `deletes` of the user's `pairs` pairs, more than the rules allow.
pub fn valve(kind: ItemKind, rules: &KindRules, deletes: usize, pairs: usize) -> Option<Op> {
    // The share is of the pairs the user had: deleting 6 of 10 trips a 50% valve.
    let trips = deletes > 0
        && deletes >= rules.min_deletes_for_valve
        && deletes as f64 > rules.max_delete_share * pairs as f64;
    trips.then(|| Op::PauseUser {
        kind,
        reason: format!(
            "this pass would delete {deletes} of the user's {pairs} synced {kind}s, more than the {share}% \
             the configuration allows; nothing was changed. Check what removed them, then resume the user.",
            share = rules.max_delete_share * 100.0,
        ),
    })
}

/// The side whose record was modified more recently; none on a tie or an unknown time.
fn newer(crm: Option<&Item>, exchange: Option<&Item>) -> Option<Side> {
    let (c, e) = (crm?.modified?, exchange?.modified?);
    match c.cmp(&e) {
        std::cmp::Ordering::Greater => Some(Side::Crm),
        std::cmp::Ordering::Less => Some(Side::Exchange),
        std::cmp::Ordering::Equal => None,
    }
}

/// The latest report about one record.
#[derive(Debug, Clone)]
enum Report {
    Upsert(Item),
    Deleted,
    OutOfScope,
    Invalid(String),
}

/// One side of a pair as the planner sees it in this pass.
#[derive(Debug, Clone, Copy)]
enum State<'a> {
    /// Not reported, or reported with the last-synced content.
    Same(Option<&'a Item>),
    Changed(&'a Item),
    Deleted,
    OutOfScope,
}

impl<'a> State<'a> {
    fn item(self) -> Option<&'a Item> {
        match self {
            State::Same(item) => item,
            State::Changed(item) => Some(item),
            State::Deleted | State::OutOfScope => None,
        }
    }

    fn is_gone(self) -> bool {
        matches!(self, State::Deleted | State::OutOfScope)
    }
}

/// The input read once into the shape the rules need; never changed while planning.
struct Ctx<'a> {
    input: PlanInput<'a>,
    synced: BTreeSet<String>,
    crm: BTreeMap<ItemId, Report>,
    exchange: BTreeMap<ItemId, Report>,
}

impl<'a> Ctx<'a> {
    fn new(mut input: PlanInput<'a>) -> Self {
        let synced = synced_fields(input.kind, input.rules);
        let crm = std::mem::take(&mut input.crm_changes);
        let exchange = std::mem::take(&mut input.exchange_changes);
        let mut ctx = Ctx {
            input,
            synced,
            crm: BTreeMap::new(),
            exchange: BTreeMap::new(),
        };
        ctx.crm = ctx.latest_reports(crm);
        ctx.exchange = ctx.latest_reports(exchange);
        ctx
    }

    /// The last report per record, with fields cut down to the ones that sync: a given
    /// record keeps only those, a lent one has only those copied.
    fn latest_reports(&self, changes: Cow<'_, [Change]>) -> BTreeMap<ItemId, Report> {
        let mut latest = BTreeMap::new();
        let mut add = |change: Change| {
            let id = change.id().clone();
            let report = match change {
                Change::Upsert(mut item) => {
                    item.fields.retain(|name, _| self.synced.contains(name));
                    Report::Upsert(item)
                }
                Change::Deleted { .. } => Report::Deleted,
                Change::OutOfScope { .. } => Report::OutOfScope,
                Change::Invalid { reason, .. } => Report::Invalid(reason),
            };
            latest.insert(id, report);
        };
        match changes {
            Cow::Owned(changes) => changes.into_iter().for_each(add),
            Cow::Borrowed(changes) => changes.iter().for_each(|change| match change {
                Change::Upsert(item) => add(Change::Upsert(Item {
                    id: item.id.clone(),
                    fields: self.project(&item.fields),
                    version: item.version.clone(),
                    modified: item.modified,
                    origin: item.origin.clone(),
                })),
                other => add(other.clone()),
            }),
        }
        latest
    }

    fn project(&self, fields: &Fields) -> Fields {
        fields
            .iter()
            .filter(|(k, _)| self.synced.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn kind(&self) -> ItemKind {
        self.input.kind
    }

    fn rules(&self) -> &KindRules {
        self.input.rules
    }

    fn flows_from(&self, side: Side) -> bool {
        self.rules().direction.flows_from(side)
    }

    fn reports(&self, side: Side) -> &BTreeMap<ItemId, Report> {
        match side {
            Side::Crm => &self.crm,
            Side::Exchange => &self.exchange,
        }
    }

    fn skip(&self, ops: &mut Vec<Op>, id: ItemId, reason: String) {
        ops.push(Op::Skip {
            kind: self.kind(),
            id,
            reason,
        });
    }

    fn out_of_scope(&self, item: &Item) -> bool {
        scope::out_of_scope(self.kind(), self.rules(), &item.fields, self.input.now).is_some()
    }

    /// Plans everything; the records to create move out of the reports into their creates.
    fn run(mut self, ops: &mut Vec<Op>) {
        let mut pairs: Vec<&SyncedPair> = self.input.pairs.iter().collect();
        pairs.sort_by(|a, b| a.crm_id.cmp(&b.crm_id));
        let paired: BTreeSet<ItemId> = pairs
            .iter()
            .flat_map(|p| [p.id_on(Side::Crm), p.id_on(Side::Exchange)])
            .collect();
        let mut crm_new = self.unpaired(ops, Side::Crm, &paired);
        let mut exchange_new = self.unpaired(ops, Side::Exchange, &paired);

        // Unpaired records carrying our tag, by the record they were copied from: a recreate
        // whose answer was lost finds its first attempt here instead of creating it again.
        let tagged: BTreeMap<&ItemId, &Item> = crm_new
            .iter()
            .chain(exchange_new.iter())
            .filter_map(|item| item.origin.as_ref().map(|origin| (origin, *item)))
            .collect();
        let mut claimed = BTreeSet::new();
        for pair in &pairs {
            self.plan_pair(ops, pair, &tagged, &mut claimed);
        }
        crm_new.retain(|item| !claimed.contains(&item.id));
        exchange_new.retain(|item| !claimed.contains(&item.id));

        let links = match self.input.new_records {
            NewRecords::Claim => return,
            NewRecords::Match => matching::match_items(self.kind(), &crm_new, &exchange_new),
            NewRecords::Linked(given) => {
                let by_id: BTreeMap<&ItemId, &Item> = crm_new
                    .iter()
                    .chain(exchange_new.iter())
                    .map(|item| (&item.id, *item))
                    .collect();
                given
                    .iter()
                    .filter_map(|(c, e, reason)| Some((*by_id.get(c)?, *by_id.get(e)?, *reason)))
                    .collect()
            }
        };
        let linked: BTreeSet<&ItemId> = links.iter().flat_map(|(c, e, _)| [&c.id, &e.id]).collect();
        for (c, e, reason) in &links {
            let (ItemId::Crm(crm_id), ItemId::Exchange(exchange_id)) = (&c.id, &e.id) else {
                continue;
            };
            let states = [State::Changed(c), State::Changed(e)];
            self.reconcile(
                ops,
                crm_id,
                exchange_id,
                &Fields::new(),
                states,
                None,
                *reason,
            );
        }
        let to_create: Vec<ItemId> = crm_new
            .iter()
            .chain(exchange_new.iter())
            .filter(|i| !linked.contains(&i.id) && self.flows_from(i.id.side()))
            .map(|i| i.id.clone())
            .collect();
        for id in to_create {
            let from = id.side();
            let reports = match from {
                Side::Crm => &mut self.crm,
                Side::Exchange => &mut self.exchange,
            };
            if let Some(Report::Upsert(item)) = reports.remove(&id) {
                self.create(ops, from.other(), item);
            }
        }
    }

    /// Unpaired records reported as present, in scope and readable. Unreadable ones are skipped
    /// with their reason; deletions of records we never paired mean nothing.
    fn unpaired(&self, ops: &mut Vec<Op>, side: Side, paired: &BTreeSet<ItemId>) -> Vec<&Item> {
        let mut items = Vec::new();
        for (id, report) in self
            .reports(side)
            .iter()
            .filter(|(id, _)| !paired.contains(*id))
        {
            match report {
                Report::Upsert(item) if !self.out_of_scope(item) => items.push(item),
                Report::Invalid(reason) => self.skip(ops, id.clone(), reason.clone()),
                Report::Upsert(_) | Report::Deleted | Report::OutOfScope => {}
            }
        }
        items
    }

    fn state(
        &self,
        pair: &SyncedPair,
        side: Side,
        base: &Fields,
    ) -> Result<State<'_>, Option<String>> {
        match self.reports(side).get(&pair.id_on(side)) {
            None => Ok(State::Same(None)),
            Some(Report::Upsert(item)) if self.out_of_scope(item) => Err(None),
            Some(Report::Upsert(item)) if &self.full(side, &item.fields, base) == base => {
                Ok(State::Same(Some(item)))
            }
            Some(Report::Upsert(item)) => Ok(State::Changed(item)),
            Some(Report::Deleted) => Ok(State::Deleted),
            Some(Report::OutOfScope) => Ok(State::OutOfScope),
            Some(Report::Invalid(reason)) => Err(Some(reason.clone())),
        }
    }

    /// A side's record in full form: the CRM's read back through its lens against `reference`
    /// (what was last synced, or the Exchange record when first matching).
    fn full(&self, side: Side, fields: &Fields, reference: &Fields) -> Fields {
        match side {
            Side::Crm => self.input.crm_lens.widen(self.kind(), fields, reference),
            Side::Exchange => fields.clone(),
        }
    }

    fn plan_pair(
        &self,
        ops: &mut Vec<Op>,
        pair: &SyncedPair,
        tagged: &BTreeMap<&ItemId, &Item>,
        claimed: &mut BTreeSet<ItemId>,
    ) {
        let base = self.project(&pair.content);
        let (crm, exchange) = match (
            self.state(pair, Side::Crm, &base),
            self.state(pair, Side::Exchange, &base),
        ) {
            (Ok(crm), Ok(exchange)) => (crm, exchange),
            (crm, exchange) => {
                // A side we cannot read, or a record that left the window: the pair waits. Any
                // change reported for it is skipped with a reason so it is fetched again later
                // rather than lost.
                for (side, state) in [(Side::Crm, crm), (Side::Exchange, exchange)] {
                    let reason = match state {
                        Err(Some(reason)) => reason,
                        Err(None) | Ok(State::Same(None)) => continue,
                        Ok(_) => "its counterpart could not be read in this pass".to_owned(),
                    };
                    self.skip(ops, pair.id_on(side), reason);
                }
                return;
            }
        };
        match (crm, exchange) {
            (State::Same(_), State::Same(_)) => {}
            (c, e) if c.is_gone() && e.is_gone() => ops.push(Op::Forget {
                kind: self.kind(),
                crm_id: pair.crm_id.clone(),
                exchange_id: pair.exchange_id.clone(),
                reason: "gone on both sides".into(),
            }),
            (gone, other) if gone.is_gone() => {
                self.one_side_gone(ops, pair, Side::Crm, [gone, other], &base, tagged, claimed)
            }
            (other, gone) if gone.is_gone() => self.one_side_gone(
                ops,
                pair,
                Side::Exchange,
                [gone, other],
                &base,
                tagged,
                claimed,
            ),
            (c, e) => self.reconcile(
                ops,
                &pair.crm_id,
                &pair.exchange_id,
                &base,
                [c, e],
                Some(pair),
                LinkReason::Merged,
            ),
        }
    }

    /// `side` deleted its record (or it left that side's scope) and the other side holds it.
    #[allow(clippy::too_many_arguments)]
    fn one_side_gone(
        &self,
        ops: &mut Vec<Op>,
        pair: &SyncedPair,
        side: Side,
        [gone, other]: [State<'_>; 2],
        base: &Fields,
        tagged: &BTreeMap<&ItemId, &Item>,
        claimed: &mut BTreeSet<ItemId>,
    ) {
        let delete_other = Op::Delete {
            kind: self.kind(),
            on: side.other(),
            crm_id: pair.crm_id.clone(),
            exchange_id: pair.exchange_id.clone(),
        };
        if matches!(gone, State::OutOfScope) {
            // The Exchange copy is a per-user view of CRM data, so it goes when the CRM record
            // leaves the user's scope; CRM data is never deleted for a scope change.
            if side == Side::Crm && self.flows_from(Side::Crm) {
                ops.push(delete_other);
            } else {
                ops.push(Op::Forget {
                    kind: self.kind(),
                    crm_id: pair.crm_id.clone(),
                    exchange_id: pair.exchange_id.clone(),
                    reason: "left the user's scope".into(),
                });
            }
            return;
        }
        let both_ways = self.rules().direction == Direction::Both;
        let recreate = if !self.flows_from(side) {
            // A target deleted a mirrored record: the source puts it back.
            true
        } else if both_ways {
            // Under `recreate` the delete is undone; otherwise an edit on the other side since
            // the last sync wins over the delete, so no one's work is lost.
            self.rules().deletes == DeleteMode::Recreate || matches!(other, State::Changed(_))
        } else {
            false
        };
        if !recreate {
            ops.push(delete_other);
            return;
        }
        let source_id = pair.id_on(side.other());
        if let Some(found) = tagged
            .get(&source_id)
            .filter(|found| found.id.side() == side)
        {
            // An earlier recreate succeeded though we never heard back: pair with it. What it
            // holds is what we wrote, so it is the base the source's later edits apply to.
            claimed.insert(found.id.clone());
            ops.push(Op::Forget {
                kind: self.kind(),
                crm_id: pair.crm_id.clone(),
                exchange_id: pair.exchange_id.clone(),
                reason: format!("deleted in {side}; recreated earlier as {}", found.id),
            });
            let (crm_id, exchange_id, states) = match side {
                Side::Crm => (
                    CrmId::new(found.id.as_str()),
                    pair.exchange_id.clone(),
                    [State::Same(Some(found)), other],
                ),
                Side::Exchange => (
                    pair.crm_id.clone(),
                    ExchangeId::new(found.id.as_str()),
                    [other, State::Same(Some(found))],
                ),
            };
            let written = self.full(side, &found.fields, base);
            self.reconcile(
                ops,
                &crm_id,
                &exchange_id,
                &written,
                states,
                None,
                LinkReason::Tag,
            );
            return;
        }
        // The surviving record in full: a CRM record is read through its lens, so what the CRM
        // cannot hold is not lost from the copy.
        let fields = other.item().map_or_else(
            || base.clone(),
            |item| self.full(side.other(), &item.fields, base),
        );
        let problems = validate::problems(self.kind(), &fields, side);
        if !problems.is_empty() {
            self.skip(
                ops,
                source_id,
                format!("not recreated in {side}: {}", problems.join("; ")),
            );
            return;
        }
        let source_version = other
            .item()
            .and_then(|i| i.version.clone())
            .or_else(|| pair.version_on(side.other()).map(str::to_owned));
        ops.push(Op::Create {
            kind: self.kind(),
            on: side,
            source: source_id,
            source_version,
            fields: self.marked(side, fields),
            replaces: Some((pair.crm_id.clone(), pair.exchange_id.clone())),
        });
    }

    /// Brings two present records together against `base`: merge, write each side that differs
    /// from the result, then link the pair with the result.
    #[allow(clippy::too_many_arguments)]
    fn reconcile(
        &self,
        ops: &mut Vec<Op>,
        crm_id: &CrmId,
        exchange_id: &ExchangeId,
        base: &Fields,
        states: [State<'_>; 2],
        pair: Option<&SyncedPair>,
        reason: LinkReason,
    ) {
        let [crm, exchange] = states;
        let current = |state: State<'_>| {
            state
                .item()
                .map_or_else(|| base.clone(), |item| item.fields.clone())
        };
        let exchange_now = current(exchange);
        // A first match has no base: what the CRM cannot hold is taken from the Exchange record.
        let reference = if base.is_empty() { &exchange_now } else { base };
        let crm_now = self.full(Side::Crm, &current(crm), reference);
        // Two records never synced: no base says which side changed a field.
        let first = pair.is_none() && base.is_empty() && reason.is_match();
        let winner = self.winner(crm.item(), exchange.item());
        let (merged, conflicts) = match self.rules().direction {
            Direction::CrmToExchange => (crm_now.clone(), Vec::new()),
            Direction::ExchangeToCrm => (exchange_now.clone(), Vec::new()),
            Direction::Both | Direction::Off
                if first && self.rules().first_link == FirstLink::Newest =>
            {
                merge::first_link(
                    &crm_now,
                    &exchange_now,
                    newer(crm.item(), exchange.item()),
                    winner,
                )
            }
            Direction::Both | Direction::Off => three_way(base, &crm_now, &exchange_now, winner),
        };
        let version = |side: Side, state: State<'_>| {
            state
                .item()
                .and_then(|i| i.version.clone())
                .or_else(|| pair.and_then(|p| p.version_on(side).map(str::to_owned)))
        };
        let mut writes = Vec::new();
        for (side, now, state) in [
            (Side::Crm, &crm_now, crm),
            (Side::Exchange, &exchange_now, exchange),
        ] {
            // The CRM is written only when what it can hold would change.
            let (now, target) = match side {
                Side::Crm => (
                    self.input.crm_lens.narrow(self.kind(), now),
                    self.input.crm_lens.narrow(self.kind(), &merged),
                ),
                Side::Exchange => (now.clone(), merged.clone()),
            };
            if now == target {
                continue;
            }
            let problems = validate::problems(self.kind(), &merged, side);
            if !problems.is_empty() {
                // Nothing of this pair is written; both records are skipped so both are
                // fetched again once someone fixes the data.
                let reason = format!(
                    "merged record cannot be written to {side}: {}",
                    problems.join("; ")
                );
                self.skip(ops, ItemId::Crm(crm_id.clone()), reason.clone());
                self.skip(ops, ItemId::Exchange(exchange_id.clone()), reason);
                return;
            }
            writes.push(Op::Update {
                kind: self.kind(),
                on: side,
                crm_id: crm_id.clone(),
                exchange_id: exchange_id.clone(),
                fields: merged.clone(),
                changed: changed_fields(&now, &target),
                expected_version: version(side, state),
            });
        }
        let reason = match (reason, writes.is_empty()) {
            (LinkReason::Merged, true) => LinkReason::SameContent,
            (reason, _) => reason,
        };
        if pair.is_some() && writes.is_empty() && &merged == base {
            return;
        }
        ops.extend(conflicts.into_iter().map(|conflict| Op::Conflict {
            kind: self.kind(),
            crm_id: crm_id.clone(),
            exchange_id: exchange_id.clone(),
            conflict,
        }));
        ops.extend(writes);
        ops.push(Op::Link {
            kind: self.kind(),
            crm_id: crm_id.clone(),
            exchange_id: exchange_id.clone(),
            fields: merged,
            crm_version: version(Side::Crm, crm),
            exchange_version: version(Side::Exchange, exchange),
            reason,
        });
    }

    fn winner(&self, crm: Option<&Item>, exchange: Option<&Item>) -> Side {
        match self.rules().conflict {
            ConflictPolicy::CrmWins => Side::Crm,
            ConflictPolicy::ExchangeWins => Side::Exchange,
            ConflictPolicy::NewestWins => {
                match (
                    crm.and_then(|i| i.modified),
                    exchange.and_then(|i| i.modified),
                ) {
                    (Some(c), Some(e)) if e > c => Side::Exchange,
                    _ => Side::Crm,
                }
            }
        }
    }

    /// A record about to be created on `on` with what keeps it syncing there: an Outlook copy
    /// of a CRM event carries the category that selects events (see
    /// [`KindRules::mark_for_exchange`]), or it would stop syncing at its first edit.
    fn marked(&self, on: Side, mut fields: Fields) -> Fields {
        if on == Side::Exchange {
            self.rules().mark_for_exchange(self.kind(), &mut fields);
        }
        fields
    }

    fn create(&self, ops: &mut Vec<Op>, on: Side, source: Item) {
        let problems = validate::problems(self.kind(), &source.fields, on);
        if problems.is_empty() {
            ops.push(Op::Create {
                kind: self.kind(),
                on,
                source: source.id,
                source_version: source.version,
                fields: self.marked(on, source.fields),
                replaces: None,
            });
        } else {
            self.skip(
                ops,
                source.id,
                format!("not created in {on}: {}", problems.join("; ")),
            );
        }
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
