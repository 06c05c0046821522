//! One user's pass: read what changed on both sides, plan, write, and commit what was written
//! together with the cursors that cover it, in one store transaction.
//!
//! Each step of a pass has its own file, so a change to one step is read and reviewed alone.
//! This file holds the user's pass ([`run_user`]) and, for each kind, the order of the steps
//! (`KindPass::run`); the steps themselves are methods of `KindPass` in:
//! - `read.rs`: both sides' changes, page by page, into the pass's scratch [`Stage`], with
//!   `unlisted.rs` (what a full CRM read says by leaving a synced record out) and `ahead.rs`
//!   (events remembered until the window reaches them);
//! - `recover.rs`: the writes a crashed pass journaled and never settled, settled by evidence;
//! - `relink.rs`: the pairs of a mailbox that moved to another backend, moved to their items'
//!   new ids;
//! - `select.rs`: the CRM counterparts of Outlook events selected again by their category;
//! - `plan.rs`: the safety valve over the whole plan's deletes, then the plan in slices;
//! - `execute.rs`: each slice's writes, journaled, then batched per side, and the slice's own
//!   commit, which settles them;
//! - `names.rs`: the names the records a pass reports are shown by;
//! - `cursor.rs`: the mailbox folder cursors, and what each commit moves them to.

mod ahead;
mod cursor;
mod execute;
mod names;
mod plan;
mod read;
mod recover;
mod relink;
mod select;
mod start;
mod unlisted;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use exsync_core::config::SyncConfiguration;
use exsync_core::plan::{Change, Op, SyncedPair};
use exsync_core::zones::DayZone;
use exsync_core::{CrmId, ItemId, ItemKind, Side, UserKey};
use exsync_store::{ItemRef, Notice, PassCommit, RunCounts, Store, StoreError, UnresolvedReport};

use super::mailboxes::Backend;
use super::sides::{CrmFilter, CrmSide, MailboxSide, SideError};
use super::spool::Spool;
use super::stage::{Stage, StageError};
use crate::failpoints::{self, failpoint};
use execute::Written;
use start::{KindStored, Stored};

// Other crates and the service name the cursor scope through this module, as before the split.
pub use cursor::{cursor_folder, cursor_folder_on, folder_cursor};

/// How many records a pass plans at once: a pass holds a few slices (one being planned, up to
/// two waiting, the batches out) and one page of each side's reads in memory, whatever the
/// mailbox's size.
pub const SLICE: usize = 500;

/// A user the service syncs, with the configuration that applies to them.
#[derive(Debug, Clone)]
pub struct SyncUser {
    /// The user's mailbox address, which keys everything the store keeps for them.
    pub key: UserKey,
    /// The user's CRM id: the owner whose records sync to their mailbox.
    pub crm_id: CrmId,
    /// The sync configuration that applies to the user, shared with the other users it applies to.
    pub config: Arc<SyncConfiguration>,
    /// The user's time zone as the CRM holds it (see [`super::sides::CrmUser::time_zone`]).
    pub time_zone: String,
    /// The CRM profile (group) that assigned `config`; `None` when it lists the user by
    /// address. Stored with each run, so status says how the user came to the configuration.
    pub group: Option<String>,
}

/// What one user's pass did.
#[derive(Debug, Clone, Default)]
pub struct UserReport {
    /// Whose pass it was; always set in a report the service returns.
    pub user: Option<UserKey>,
    /// The mailbox backend that served the user in this pass.
    pub backend: Option<Backend>,
    /// What the pass wrote and how many records failed or conflicted, as committed to the store's
    /// run history.
    pub counts: RunCounts,
    /// Why (part of) the pass failed; the records involved are fetched again next pass.
    pub error: Option<String>,
    /// Set when the safety valve paused the user in this pass.
    pub paused: Option<String>,
    /// The plan, per kind (kept for `--dry-run`).
    pub plans: Vec<(ItemKind, Vec<Op>)>,
    /// The names of the records in `plans` (see `exsync_core::record_name`), by id; a record
    /// the pass knows no content of has none. They come from outside: encode them where shown.
    pub names: BTreeMap<ItemId, String>,
    /// Copies a crashed pass made, found by their tag and paired from the journal.
    pub recovered_pairs: u64,
    /// Creates a crashed pass sent whose copy neither a read nor the side could account for,
    /// made again (see `recover.rs`).
    pub uncertain_creates: u64,
    /// Records synced without what the side they went to cannot hold, by that side (their
    /// reasons are stored as unresolved items).
    pub cut: BTreeMap<Side, u64>,
    /// What the mailbox's backend noticed that the admin should know (stored with the run).
    pub notices: Vec<Notice>,
    /// Writes that succeeded, by kind, the side written to and what was done there (`create`,
    /// `update`, `delete`); their sum is in `counts`.
    pub written: BTreeMap<(ItemKind, Side, &'static str), u64>,
}

/// Where the pass stopped, when it could not go on at all.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// The state database failed a read or a commit; what the pass had not committed is read again
    /// next pass.
    #[error("state database: {0}")]
    Store(#[from] StoreError),
    /// A blocking store call's task panicked or was cancelled; the text is the task's error.
    #[error("state database task: {0}")]
    Join(String),
    /// The pass's scratch database failed.
    #[error(transparent)]
    Stage(#[from] StageError),
}

/// The record kinds a pass syncs, in the order it syncs them: contacts, then events.
pub const KINDS: [ItemKind; 2] = [ItemKind::Contact, ItemKind::Event];

/// Runs a blocking store call off the async threads.
pub async fn on_store<T, F>(store: &Arc<dyn Store>, f: F) -> Result<T, PassError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
{
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|e| PassError::Join(e.to_string()))?
        .map_err(PassError::from)
}

/// What had to be cut or left out of records for them to fit the other side, by record (see
/// `exsync_core::Contact::sanitize`): CRM records for Exchange, mailbox items for the CRM. The
/// records sync without it; the pass keeps each one unresolved with these reasons, so the
/// admin sees why one side differs from the other.
pub type Notes = BTreeMap<ItemId, Vec<String>>;

/// Where a user's pass reads all of the user's CRM records of a kind.
#[derive(Debug, Clone)]
pub enum FullRead {
    /// From the CRM, by this filter: a user new to an org that syncs already, or reset.
    Crm(CrmFilter),
    /// From the org's first read, routed to its users on disk.
    Spooled(Arc<Spool>),
}

/// Inputs of one user's pass besides the sides and the store.
pub struct UserPass<'a> {
    /// Whose pass it is.
    pub user: &'a SyncUser,
    /// What the org-wide CRM read found for this user, per kind.
    pub crm_changes: BTreeMap<ItemKind, Vec<Change>>,
    /// What had to be cut from those records, per kind.
    pub crm_notes: BTreeMap<ItemKind, Notes>,
    /// Kinds whose CRM records this user reads in full in this pass (new or reset, or the
    /// org's first pass), and where from.
    pub crm_full_reads: BTreeMap<ItemKind, FullRead>,
    /// The time the event window is measured from and writes are stamped with; the same for every
    /// user of a pass.
    pub now: DateTime<Utc>,
    /// Plan only: nothing is written to either side or to the store.
    pub dry_run: bool,
    /// Records per slice (see [`SLICE`]).
    pub slice: usize,
}

/// The zone the user's all-day events are whole days in: their CRM zone, else UTC with a
/// notice saying why, since Outlook then shows those events across two days.
fn day_zone_of(time_zone: &str) -> (DayZone, Option<Notice>) {
    let why = if time_zone.trim().is_empty() {
        "the CRM user has no time zone (TimeZoneSidKey)".to_owned()
    } else {
        match DayZone::from_iana(time_zone) {
            Ok(zone) => return (zone, None),
            Err(why) => why,
        }
    };
    let notice = Notice {
        code: "day_zone_unknown".into(),
        message: format!("All-day events are written in UTC: {why}."),
        fix: "Set the user's time zone in the CRM to one Exchange knows (an IANA name such as \
              Europe/Berlin); all-day events written from then on are whole days in it."
            .into(),
    };
    (DayZone::UTC, Some(notice))
}

/// Runs one user's pass and commits it. Errors of a side end the pass for this user only:
/// the CRM changes it could not apply are recorded as unresolved, so they are fetched again.
///
/// When the backend found no mailbox and an `auto` lookup now places it on another one (it
/// moved), the pass runs again at once there, re-linking its items, so a move costs no failed
/// pass; the failed attempt stays in the run history.
pub async fn run_user<E: MailboxSide, C: CrmSide>(
    exchange: &E,
    crm: &C,
    store: &Arc<dyn Store>,
    pass: UserPass<'_>,
) -> Result<UserReport, PassError> {
    let (first, moved) = run_user_once(exchange, crm, store, &pass).await?;
    if !moved {
        return Ok(first);
    }
    tracing::info!(user = %pass.user.key, backend = %exchange.backend(&pass.user.key), "Mailbox moved; its pass runs again on the new backend");
    let (mut again, _) = run_user_once(exchange, crm, store, &pass).await?;
    let mut notices = first.notices;
    notices.append(&mut again.notices);
    again.notices = notices;
    Ok(again)
}

async fn run_user_once<E: MailboxSide, C: CrmSide>(
    exchange: &E,
    crm: &C,
    store: &Arc<dyn Store>,
    pass: &UserPass<'_>,
) -> Result<(UserReport, bool), PassError> {
    let started = Utc::now();
    let user = pass.user;
    // An `auto` mailbox is located first: every call of the pass goes to the backend found.
    let routed = exchange
        .settle_route(&user.key, store, false, pass.dry_run)
        .await;
    let mut report = UserReport {
        user: Some(user.key.clone()),
        backend: Some(exchange.backend(&user.key)),
        ..UserReport::default()
    };
    let routed = match routed {
        Ok(notices) => {
            report.notices.extend(notices);
            Ok(())
        }
        Err(e) => Err(e),
    };
    let mut commit = PassCommit::new(user.key.clone(), started, started);
    let stored = Stored::read(store, user).await?;

    let (day_zone, zone_notice) = day_zone_of(&user.time_zone);
    exchange.day_zone(&user.key, day_zone);
    exchange.dry_run(&user.key, pass.dry_run);
    report.notices.extend(zone_notice);

    // The mailbox is made ready (the sync folder created) once; after that, the folders
    // stored with the cursors are used as they are.
    let known = stored.folders_known(exchange.backend(&user.key));
    let prepared = if let Err(e) = routed {
        Err(e)
    } else if pass.dry_run || known {
        Ok(())
    } else {
        exchange.prepare(&user.key).await
    };
    let mut missing: Option<String> = None;
    for kind in KINDS {
        let crm_changes = pass.crm_changes.get(&kind).cloned().unwrap_or_default();
        let crm_notes = pass.crm_notes.get(&kind).cloned().unwrap_or_default();
        if user.config.rules(kind).direction == exsync_core::config::Direction::Off {
            continue;
        }
        let retry: Vec<ItemId> = stored
            .unresolved
            .iter()
            .filter(|u| u.kind == kind)
            .map(|u| u.id.clone())
            .collect();
        let result = match &prepared {
            Err(e) => Err(e.clone()),
            Ok(()) => {
                let kind_pass = KindPass {
                    exchange,
                    crm,
                    store,
                    user,
                    kind,
                    stored: stored.kind(kind),
                    now: pass.now,
                    dry_run: pass.dry_run,
                    slice: pass.slice.max(1),
                };
                let full_read = pass.crm_full_reads.get(&kind);
                let mut stage = Stage::new()?;
                let ran = kind_pass
                    .run(
                        &mut stage,
                        crm_changes.clone(),
                        crm_notes,
                        full_read,
                        &retry,
                        &mut commit,
                        &mut report,
                    )
                    .await;
                stage.recycle();
                ran?
            }
        };
        if let Err(e) = result {
            if e.mailbox_missing {
                missing.get_or_insert_with(|| e.message.clone());
            }
            // Nothing of this kind was written. Keep what the CRM reported, so the changes
            // are fetched again instead of being lost with the org-wide cursor.
            let reason = format!("{kind}s not synced: {e}");
            // A deletion carries no content: it is named by what its pair last synced.
            let deleted: Vec<ItemId> = crm_changes
                .iter()
                .filter(|c| !matches!(c, Change::Upsert(_)))
                .map(|c| c.id().clone())
                .collect();
            let mut stored = names::of_pairs(store, &user.key, kind, &deleted, pass.slice).await?;
            commit
                .unresolved
                .extend(crm_changes.iter().map(|c| UnresolvedReport {
                    kind,
                    id: c.id().clone(),
                    reason: reason.clone(),
                    name: names::of_change(kind, c).or_else(|| stored.remove(c.id())),
                }));
            report.error.get_or_insert(reason);
        }
    }

    if pass.dry_run {
        return Ok((report, false));
    }
    let moved = match missing {
        Some(why) => relocate(exchange, store, &user.key, &why, &mut report).await?,
        None => false,
    };
    report.notices.extend(exchange.take_notices(&user.key));
    commit.finished = Utc::now();
    commit.counts = report.counts;
    commit.error = report.error.clone();
    commit.notices = report.notices.clone();
    commit.backend = report.backend.map(|b| b.as_str().to_owned());
    commit.assignment = Some(exsync_store::RunAssignment {
        configuration: user.config.name.clone(),
        group: user.group.clone(),
    });
    // A crash here loses the pass's reports and cursor moves, not its writes: the slices
    // committed those, and the next pass must find them without writing them again.
    failpoint(failpoints::BEFORE_FINAL_COMMIT);
    on_store(store, move |s| s.commit_pass(&commit)).await?;
    Ok((report, moved))
}

/// The backend found no such mailbox: where an `auto` mailbox is is looked up again now, so
/// its calls go to the backend it moved to (where its items are re-linked). The mark stays in
/// the store until a lookup answers, so a restart or a failed lookup looks again. Returns
/// whether the mailbox is on another backend now.
async fn relocate<E: MailboxSide>(
    exchange: &E,
    store: &Arc<dyn Store>,
    user: &UserKey,
    why: &str,
    report: &mut UserReport,
) -> Result<bool, PassError> {
    let (key, why) = (user.clone(), why.to_owned());
    let marked = on_store(store, move |s| s.recheck_mailbox_route(&key, &why)).await?;
    if !marked {
        return Ok(false);
    }
    let before = exchange.backend(user);
    match exchange.settle_route(user, store, true, false).await {
        Ok(notices) => {
            report.notices.extend(notices);
            let now = exchange.backend(user);
            if now != before {
                if let Some(error) = &mut report.error {
                    error.push_str(&format!("; the mailbox is now on {now}"));
                }
                return Ok(true);
            }
        }
        Err(e) => tracing::warn!(user = %user, error = %e, "Mailbox could not be located again"),
    }
    Ok(false)
}

/// One kind of one user's pass.
struct KindPass<'a, E, C> {
    exchange: &'a E,
    crm: &'a C,
    store: &'a Arc<dyn Store>,
    user: &'a SyncUser,
    kind: ItemKind,
    /// The kind's cursor, journal and events ahead as the user's pass found them.
    stored: &'a KindStored,
    now: DateTime<Utc>,
    dry_run: bool,
    slice: usize,
}

impl<E: MailboxSide, C: CrmSide> KindPass<'_, E, C> {
    /// Returns `Ok(Err(_))` when a side failed (the user's problem), `Err` when the store did.
    ///
    /// Both sides are read page by page into a [`Stage`] on disk, then planned, written and
    /// committed in slices of `slice` records: the pairs that changed first (the safety valve
    /// weighs all their deletes before anything is written), then the records no pair holds,
    /// matched on disk. Memory is bounded by the page and slice sizes, not by the mailbox.
    /// `stage` is empty; the caller recycles it after, whatever happened.
    #[allow(clippy::too_many_arguments)]
    async fn run(
        &self,
        stage: &mut Stage,
        crm_changes: Vec<Change>,
        routed_notes: Notes,
        full_read: Option<&FullRead>,
        retry: &[ItemId],
        commit: &mut PassCommit,
        report: &mut UserReport,
    ) -> Result<Result<(), SideError>, PassError> {
        let kind = self.kind;
        let mut notes = Notes::new();
        let cursor = self.stored_cursor();
        // Both reads note the events ahead of the window, each storing what it changed.
        let mut ahead = self.ahead();

        if let Err(e) = self
            .read_crm(
                stage,
                crm_changes,
                routed_notes,
                &mut notes,
                full_read,
                retry,
                &mut ahead,
            )
            .await?
        {
            return Ok(Err(e));
        }
        let mut read = match self
            .read_exchange(stage, &cursor, retry, &mut notes, &mut ahead)
            .await?
        {
            Ok(read) => read,
            Err(e) => return Ok(Err(e)),
        };
        if let Some(moved) = read.moved.take() {
            let to = self.exchange.backend(&self.user.key);
            tracing::warn!(
                user = %self.user.key,
                %kind,
                from = moved.from.map_or("unknown", |b| b.as_str()),
                %to,
                by_tag = moved.by_tag,
                by_content = moved.by_content,
                deleted = moved.deleted,
                "The mailbox moved to another backend; its synced items were found again under their new ids."
            );
            report.notices.push(moved.notice(kind, to));
        }
        // Everything both sides said is on disk, and nothing is planned or written yet.
        failpoint(failpoints::READS_STAGED);
        // A dry run plans from the pairs as stored: recovering commits.
        if !self.dry_run {
            if let Err(e) = self.recover(stage, report).await? {
                return Ok(Err(e));
            }
        }
        if let Err(e) = self.stage_reselected(stage).await? {
            return Ok(Err(e));
        }

        if self.paused_by_valve(stage, commit, report).await? {
            return Ok(Ok(()));
        }
        let mut written = Written::new(cursor);
        self.write_slices(stage, &mut written, commit, report)
            .await?;
        if self.dry_run {
            return Ok(Ok(()));
        }

        // A record fetched again because it failed before, and that did not fail now, is
        // resolved, whether it needed a write or was already in step; unless something still
        // had to be cut from it.
        commit.resolved.extend(
            retry
                .iter()
                .filter(|id| !written.failed.contains(*id) && !notes.contains_key(*id))
                .map(|id| ItemRef {
                    kind,
                    id: id.clone(),
                }),
        );
        // A record whose write failed or that was skipped keeps that reason instead.
        let cut: Vec<(ItemId, Vec<String>)> = notes
            .into_iter()
            .filter(|(id, _)| !written.failed.contains(id))
            .collect();
        let ids: Vec<ItemId> = cut.iter().map(|(id, _)| id.clone()).collect();
        for id in &ids {
            *report.cut.entry(id.side().other()).or_default() += 1;
        }
        let mut names = self.names_of(stage, &ids).await?;
        commit
            .unresolved
            .extend(cut.into_iter().map(|(id, notes)| UnresolvedReport {
                kind,
                name: names.remove(&id),
                reason: cut_reason(&id, &notes),
                id,
            }));
        // Only the pass's final commit moves the backend's cursor, together with everything it
        // covers; a slice's commit never does (see `cursor.rs`).
        commit.cursors.extend(self.read_to_end(read, written));
        Ok(Ok(()))
    }
}

/// Why a record synced without part of it: what the side it went to cannot hold, which is
/// the side the record was not read from.
fn cut_reason(id: &ItemId, notes: &[String]) -> String {
    let holder = match id {
        ItemId::Crm(_) => "Exchange",
        ItemId::Exchange(_) => "Salesforce",
    };
    format!(
        "synced without what {holder} cannot hold: {}",
        notes.join("; ")
    )
}

/// The pairs a user has, for status pages.
pub async fn user_pairs(
    store: &Arc<dyn Store>,
    user: &UserKey,
    kind: ItemKind,
) -> Result<Vec<SyncedPair>, PassError> {
    let key = user.clone();
    on_store(store, move |s| s.load_pairs(&key, kind)).await
}

#[cfg(test)]
mod day_zone_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_crm_zone_bounds_all_day_events_without_a_notice() {
        let (zone, notice) = day_zone_of("Europe/Berlin");
        assert_eq!(zone.windows(), "W. Europe Standard Time");
        assert!(notice.is_none());
    }

    #[test]
    fn a_missing_or_unknown_zone_falls_back_to_utc_and_says_so() {
        for (zone, why) in [
            ("", "has no time zone"),
            (
                "Mars/Olympus_Mons",
                "\"Mars/Olympus_Mons\" is not an IANA time zone",
            ),
        ] {
            let (day, notice) = day_zone_of(zone);
            assert_eq!(day, DayZone::UTC);
            let notice = notice.unwrap();
            assert_eq!(notice.code, "day_zone_unknown");
            assert!(notice.message.contains(why), "{notice:?}");
            assert!(notice.fix.contains("time zone in the CRM"), "{notice:?}");
        }
    }
}
