//! What the sync service needs from each side: the CRM ([`CrmSide`]) and the mailboxes
//! ([`MailboxSide`], which each mailbox backend implements). The connectors implement these
//! through small adapters; tests implement them in memory. Each call may fail as a whole
//! ([`SideError`]); a batch of writes answers item by item ([`WriteResult`]).

use std::fmt;
use std::future::Future;

use chrono::{DateTime, Utc};
use exsync_core::plan::{Change, WriteResult};
use exsync_core::zones::DayZone;
use exsync_core::{CrmId, ExchangeId, Fields, ItemId, ItemKind, UserKey};
use exsync_store::Notice;

use super::mailboxes::Backend;

/// One write of a plan, as a side's connector receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write<'a> {
    /// Create a record with these fields, tagged with the record it copies (`origin`), so a
    /// create retried after a lost answer is found rather than repeated.
    Create {
        /// The record's fields as the plan wants them on this side.
        fields: &'a Fields,
        /// The record on the other side that this one copies; it becomes the copy's tag.
        origin: &'a ItemId,
    },
    /// Write the `changed` fields (values from `fields`), conditional on `expected_version`.
    Update {
        /// The record's id on this side.
        id: &'a str,
        /// The record's fields; only the `changed` ones are written.
        fields: &'a Fields,
        /// Names of the fields to write.
        changed: &'a [String],
        /// The version the pass last read; a backend that can make the update conditional on it
        /// does. `None` when no version is known.
        expected_version: Option<&'a str>,
    },
    /// Delete the record; one already gone counts as done.
    Delete {
        /// The record's id on this side.
        id: &'a str,
    },
}

/// What a side can say, after a crash, about the copy a journaled create may have made of
/// `origin` (see [`CrmSide::find_copies`] and [`MailboxSide::find_copies`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyEvidence {
    /// A record carrying the tag exists: its current state.
    Present(Change),
    /// A record carrying the tag was made and has been deleted since (it sits in the
    /// recycle bin or the Deleted Items folder).
    Deleted(ItemId),
    /// The side is sure no record ever carried the tag.
    Never,
    /// The side cannot tell.
    Unknown,
}

/// How a whole call failed, which decides what the service does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SideErrorKind {
    /// Worth retrying next pass (network, throttling that outlasted our patience, 5xx).
    Transient,
    /// Only this user is affected (impersonation denied, mailbox missing): the user's pass
    /// fails, the others go on.
    User,
    /// The CRM's API allowance is down to the configured reserve: stop calling it this pass.
    LimitReserved,
    /// Nothing will work until an admin fixes something (bad credentials, untrusted TLS).
    Fatal,
}

/// A failed call, with what an admin can do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideError {
    /// What the service does about it.
    pub kind: SideErrorKind,
    /// What failed, in words for the admin; logs and the user's report show it.
    pub message: String,
    /// What the admin can do about it, when known; `Display` appends it as `(fix: ...)`.
    pub remedy: Option<String>,
    /// The backend has no such mailbox (on premises, a mailbox moved online; online, one
    /// not there yet): where an `auto` mailbox is must be looked up again.
    pub mailbox_missing: bool,
}

impl SideError {
    /// The user's contact sync folder is not there and this pass may not make it (a dry run),
    /// for a call that needs it.
    pub fn no_sync_folder() -> Self {
        SideError::new(
            SideErrorKind::User,
            "the contact sync folder is not there, and a dry run makes none",
        )
    }

    /// A failure with no remedy known.
    pub fn new(kind: SideErrorKind, message: impl Into<String>) -> Self {
        SideError {
            kind,
            message: message.into(),
            remedy: None,
            mailbox_missing: false,
        }
    }

    /// Marks the failure as the backend not finding the mailbox at all.
    pub fn mailbox_missing(mut self) -> Self {
        self.mailbox_missing = true;
        self
    }

    /// Adds what the admin can do about the failure.
    pub fn with_remedy(mut self, remedy: impl Into<String>) -> Self {
        self.remedy = Some(remedy.into());
        self
    }
}

impl fmt::Display for SideError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(remedy) = &self.remedy {
            write!(f, " (fix: {remedy})")?;
        }
        Ok(())
    }
}

impl std::error::Error for SideError {}

/// What a call to a side returns.
pub type SideResult<T> = Result<T, SideError>;

/// A CRM user, as far as assignment to a configuration and ownership of records go. Workers
/// on one database share the list as JSON (`exsync_store::Leases::share_crm_users`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CrmUser {
    /// The user's CRM id, which owns the records that sync to their mailbox.
    pub id: CrmId,
    /// The address of the user's mailbox, from the CRM field the pairing rule names
    /// ([`CrmSide::mailbox_field`], `Email` by default). It becomes a [`UserKey`] only once the
    /// service has checked it is an address.
    pub email: String,
    /// The profile name, which configurations assign as a group.
    pub profile: String,
    /// Whether the user is active; the service syncs only active users.
    pub active: bool,
    /// The user's time zone as the CRM holds it (an IANA name; empty when unknown): their
    /// all-day events are whole days in it.
    pub time_zone: String,
}

/// A change as a side read it: on the CRM side with the user that owns the record (the user
/// whose mailbox it syncs to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedChange {
    /// The user who owns the record; `None` for a deletion, whose owner the CRM no longer
    /// keeps, and for a mailbox item, whose owner is the mailbox's.
    pub owner: Option<CrmId>,
    /// The record's change as read.
    pub change: Change,
    /// What had to be cut or left out of the record for it to fit the other side (the limits
    /// both sides share, see [`exsync_core::Contact::sanitize`]); it syncs without it, and the
    /// pass records why for the admin.
    pub notes: Vec<String>,
}

impl OwnedChange {
    /// A change the read needed nothing cut from.
    pub fn new(owner: Option<CrmId>, change: Change) -> Self {
        OwnedChange {
            owner,
            change,
            notes: Vec::new(),
        }
    }
}

/// Which records an org-wide read covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrmFilter {
    /// Owners whose records are read; empty for every owner.
    pub owners: Vec<CrmId>,
    /// An extra SOQL condition from the configuration.
    pub condition: Option<String>,
}

/// What one org-wide read of the CRM found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrmRead {
    /// The changes read, with their owners.
    pub changes: Vec<OwnedChange>,
    /// The cursor that covers these changes.
    pub cursor: String,
    /// Set when the cursor was too old for the CRM's delete log and every id in scope was
    /// listed instead: a synced record missing from it was deleted.
    pub live_ids: Option<std::collections::BTreeSet<CrmId>>,
}

/// One page of a CRM read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrmPage {
    /// This page's changes, with their owners.
    pub changes: Vec<OwnedChange>,
    /// The cursor covering this page and the ones before; the next page reads from it.
    pub cursor: String,
    /// Another page follows.
    pub more: bool,
    /// See [`CrmRead::live_ids`]; the union over the pages counts.
    pub live_ids: Option<std::collections::BTreeSet<CrmId>>,
}

/// The CRM: read org-wide, once per pass, whatever the number of users.
pub trait CrmSide: Send + Sync {
    /// Every CRM user, active or not; the service keeps the active ones whose address can name a
    /// mailbox.
    fn users(&self) -> impl Future<Output = SideResult<Vec<CrmUser>>> + Send;

    /// The CRM user field that [`CrmUser::email`] is read from (the pairing rule), named in
    /// what the service reports about a user it cannot pair.
    fn mailbox_field(&self) -> &str {
        "Email"
    }

    /// What this CRM can hold of a record (see [`exsync_core::plan::Lens`]).
    fn lens(&self) -> &dyn exsync_core::plan::Lens {
        &exsync_core::plan::Identity
    }

    /// One page of changes since `cursor`: records the filter admits, with their owner, and
    /// deletions of any record, without one (the CRM does not keep the owner of a deleted
    /// record; the service routes them to the users holding a copy). The page's cursor covers
    /// it and the pages before. From `None`, a full read: every record there is and no
    /// deletions (a synced record it leaves out is gone); the cursor its last page gives
    /// reports what is deleted from when it began.
    fn changes_page(
        &self,
        kind: ItemKind,
        cursor: Option<&str>,
        filter: &CrmFilter,
    ) -> impl Future<Output = SideResult<CrmPage>> + Send;

    /// [`Self::changes_page`] to the end, for reads whose size is the org's change rate.
    fn changes(
        &self,
        kind: ItemKind,
        cursor: Option<&str>,
        filter: &CrmFilter,
    ) -> impl Future<Output = SideResult<CrmRead>> + Send {
        async move {
            let mut read = CrmRead::default();
            let mut position = cursor.map(str::to_owned);
            loop {
                let page = self.changes_page(kind, position.as_deref(), filter).await?;
                read.changes.extend(page.changes);
                if let Some(live) = page.live_ids {
                    read.live_ids
                        .get_or_insert_with(Default::default)
                        .extend(live);
                }
                read.cursor = page.cursor.clone();
                position = Some(page.cursor);
                if !page.more {
                    return Ok(read);
                }
            }
        }
    }

    /// The current state of these records (deleted ones as [`Change::Deleted`]).
    fn fetch(
        &self,
        kind: ItemKind,
        ids: &[CrmId],
    ) -> impl Future<Output = SideResult<Vec<OwnedChange>>> + Send;

    /// How many writes the CRM takes in one request. A pass hands it at most this many at a
    /// time and commits their outcome before the next, so a crash loses the answers of one
    /// request at most (the journal settles those).
    fn write_batch(&self) -> usize {
        200
    }

    /// Writes in plan order, on behalf of `owner`; one result per write, in order.
    fn write(
        &self,
        kind: ItemKind,
        owner: &CrmId,
        writes: &[Write<'_>],
    ) -> impl Future<Output = SideResult<Vec<WriteResult>>> + Send;

    /// After a crash, what became of the records creates tagged with these origins may have
    /// made, one answer per origin, in order: found by the tag among live and deleted
    /// records created at or after `since` (a copy deleted before the create was journaled,
    /// by exsync or a person, is an earlier copy's, and must not count as this create's).
    /// Asked only for journaled creates that were sent and whose copy no read found, so it
    /// is rare. A CRM that cannot search its deleted records answers
    /// [`CopyEvidence::Unknown`].
    fn find_copies(
        &self,
        _kind: ItemKind,
        origins: &[ItemId],
        _since: DateTime<Utc>,
    ) -> impl Future<Output = SideResult<Vec<CopyEvidence>>> + Send {
        let unknown = vec![CopyEvidence::Unknown; origins.len()];
        async move { Ok(unknown) }
    }
}

/// One page of a mailbox folder's changes, listed but not fetched: the service fetches only
/// what it does not already know (see [`MailboxSide::fetch`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxPage {
    /// Items created or changed since the cursor, each with its current version.
    pub upserts: Vec<(ExchangeId, String)>,
    /// Items deleted since the cursor.
    pub deleted: Vec<ExchangeId>,
    /// The cursor covering this page and the ones before. Empty means the folder's start: a
    /// backend gives that for a folder it made this pass, which it need not list.
    pub cursor: String,
    /// No more changes after this page.
    pub last: bool,
    /// The cursor given was refused and this page starts the folder over: the pages from
    /// here on list the whole folder, so a synced item missing from them was deleted.
    pub restarted: bool,
    /// The folder read (its id and version), stored with the cursor so the next process need
    /// not look it up again.
    pub folder: Option<(String, String)>,
}

impl MailboxPage {
    /// The listing of a sync folder a dry run would have made: empty, and named by an empty id,
    /// which differs from any folder a stored cursor names (so the pass reads a deleted folder
    /// as replaced, as the real pass will). `restarted` when a cursor was given.
    pub fn not_made(restarted: bool) -> Self {
        MailboxPage {
            upserts: Vec::new(),
            deleted: Vec::new(),
            cursor: String::new(),
            last: true,
            restarted,
            folder: Some((String::new(), String::new())),
        }
    }
}

/// The notice a backend gives when the user's contact sync folder was `how` ("deleted", "moved
/// to Deleted Items"…) and a new folder named `name` took its place.
pub fn folder_replaced_notice(how: &str, name: &str) -> Notice {
    Notice {
        code: "sync_folder_replaced".to_owned(),
        message: format!(
            "The contact sync folder was {how} in the mailbox; a new {name} folder under \
             Contacts took its place."
        ),
        fix: "Nothing to do: the synced CRM contacts are copied into the new folder where CRM \
              records flow to Exchange, and nothing is deleted in the CRM for it. Ask the user \
              to keep the folder if this repeats."
            .to_owned(),
    }
}

/// The CRM records among `origins` (a copy's tag names its CRM record), sorted and once each:
/// what a backend's [`MailboxSide::find_copies`] searches its folder for.
pub fn crm_origins(origins: &[ItemId]) -> Vec<CrmId> {
    let mut ids: Vec<CrmId> = origins
        .iter()
        .filter_map(|origin| match origin {
            ItemId::Crm(id) => Some(id.clone()),
            ItemId::Exchange(_) => None,
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// A mailbox backend: what the service needs of one mailbox at a time, whichever protocol
/// reaches it (EWS on premises today, Microsoft Graph for Exchange Online next). The router
/// [`super::mailboxes::Mailboxes`] is one too, and sends each user's calls to their backend.
///
/// Every call names the mailbox (`user`) and acts in it alone, in the user's folder for the
/// kind: contacts in the sync folder the backend creates, events in the primary calendar. A
/// call may fail as a whole ([`SideError`]; its kind decides whether the user, the pass or the
/// service stops); a batch of writes answers item by item.
///
/// Ids and versions are opaque strings of the backend's, with three guarantees the planner
/// relies on:
/// - an item's id stays the same while it exists, and a mailbox reached through another
///   backend (a mailbox moved) must answer with the same ids, or its pairs look deleted;
/// - an item's version changes whenever its content does, and the version a write returns is
///   the one the next listing reports for that item unless someone changed it since (that is
///   how the service tells its own writes from the user's edits);
/// - an item created through [`Self::write`] carries its tag (the `origin` of the create),
///   and [`Self::fetch`] reports it as [`exsync_core::plan::Item::origin`], from any backend
///   of the same mailbox.
pub trait MailboxSide: Send + Sync {
    /// Which backend serves this user's mailbox. A single backend answers its own; the
    /// router answers the one its rule names. It only labels reports, so it must not fail.
    fn backend(&self, user: &UserKey) -> Backend;

    /// Whether the user's pass may send EWS requests as the service account, and so must take
    /// one of the Exchange slots workers on one database share. Only a user Graph serves by
    /// configuration sends none; an `auto` user may be located on premises mid-pass.
    fn uses_exchange_account(&self, _user: &UserKey) -> bool {
        true
    }

    /// Settles which backend serves the user before their pass, for a mailbox located
    /// automatically (see [`super::mailboxes::Mailboxes`]); `recheck` asks for a fresh look
    /// whatever is cached, and a `dry_run` stores nothing it finds. Returns what the admin
    /// should hear about it. A single backend has nothing to settle.
    fn settle_route(
        &self,
        _user: &UserKey,
        _store: &std::sync::Arc<dyn exsync_store::Store>,
        _recheck: bool,
        _dry_run: bool,
    ) -> impl Future<Output = SideResult<Vec<Notice>>> + Send {
        std::future::ready(Ok(Vec::new()))
    }

    /// Makes the mailbox ready: finds the user's folders, creating the contacts sync folder
    /// when missing. Idempotent; called before the user's first pass and never in a dry run.
    fn prepare(&self, user: &UserKey) -> impl Future<Output = SideResult<()>> + Send;

    /// Whether the user's pass is a dry run, told before each pass. A dry run's reads make
    /// nothing in the mailbox: where a real pass would make the contact sync folder (the first
    /// pass, or one deleted since), the backend looks for it and, not there, lists it as
    /// [`MailboxPage::not_made`].
    fn dry_run(&self, _user: &UserKey, _dry_run: bool) {}

    /// A folder named in the stored cursor (see [`MailboxPage::folder`]), so the backend may
    /// skip looking it up. Only a hint: a folder the backend does not know (gone since, or
    /// named by another backend) is ignored and looked up again.
    fn known_folder(&self, _user: &UserKey, _kind: ItemKind, _folder: &(String, String)) {}

    /// The zone whose midnights bound the user's all-day events (their CRM zone), told before
    /// each pass. A backend writes an all-day event as whole days in it, so Outlook shows it on
    /// those days; until told, it writes them in UTC.
    fn day_zone(&self, _user: &UserKey, _zone: DayZone) {}

    /// One page of changes in the user's folder for `kind` since `cursor` (`None`: the whole
    /// folder, every item as an upsert). The service calls again with the page's cursor until
    /// a page says `last`; the final cursor is stored and given back next pass, so it must
    /// stay valid across processes. Pages are bounded in size, whatever the folder's.
    ///
    /// A cursor the backend will not take (expired, or issued by another backend before the
    /// mailbox moved) is not an error: the backend lists the folder from the start and sets
    /// `restarted`. Deletions are listed by id; an item created and deleted between two cursors
    /// may not be listed at all (the service lists the items it created itself separately).
    fn changes_page(
        &self,
        user: &UserKey,
        kind: ItemKind,
        cursor: Option<&str>,
    ) -> impl Future<Output = SideResult<MailboxPage>> + Send;

    /// The current content of these items, one change per id, in order: an item as
    /// [`Change::Upsert`] with its fields, version and tag, one that is gone as
    /// [`Change::Deleted`], one that cannot be read as a record as [`Change::Invalid`]. Each
    /// comes with what had to be cut from the item for the CRM to hold it (its `notes`, as
    /// [`CrmSide::fetch`] gives them the other way); the owner is `None`.
    fn fetch(
        &self,
        user: &UserKey,
        kind: ItemKind,
        ids: &[ExchangeId],
    ) -> impl Future<Output = SideResult<Vec<OwnedChange>>> + Send;

    /// How many writes the user's backend takes in one request (see
    /// [`CrmSide::write_batch`]).
    fn write_batch(&self, _user: &UserKey) -> usize {
        100
    }

    /// How many requests the user's backend takes for one mailbox at once
    /// (`service.per_user_concurrency`, within the backend's own limit). A pass keeps this many
    /// write batches out, so a server's latency is paid once per that many requests.
    fn requests_at_once(&self, _user: &UserKey) -> usize {
        2
    }

    /// Writes in the user's folder for `kind`, one result per write, in order: a create tags
    /// the item with its `origin` and answers its new id and version; an update writes only the
    /// `changed` fields and answers the new version (a backend that can make the update
    /// conditional on `expected_version` should); a delete of an item already gone is done.
    /// A write that fails alone is [`WriteResult::Failed`] with the reason, and the others
    /// still happen; only a failure of the whole call is an `Err`.
    fn write(
        &self,
        user: &UserKey,
        kind: ItemKind,
        writes: &[Write<'_>],
    ) -> impl Future<Output = SideResult<Vec<WriteResult>>> + Send;

    /// After a crash, what became of the items creates tagged with these origins may have
    /// made in the user's folder for `kind`, one answer per origin, in order, counting only
    /// items created at or after `since` (see [`CrmSide::find_copies`]). A backend that
    /// cannot search deleted items answers [`CopyEvidence::Unknown`].
    fn find_copies(
        &self,
        _user: &UserKey,
        _kind: ItemKind,
        origins: &[ItemId],
        _since: DateTime<Utc>,
    ) -> impl Future<Output = SideResult<Vec<CopyEvidence>>> + Send {
        let unknown = vec![CopyEvidence::Unknown; origins.len()];
        async move { Ok(unknown) }
    }

    /// What the backend noticed in the user's mailbox since it was last asked, for the admin
    /// (a sync folder it had to make again, say). The pass asks once, at its end, and stores the
    /// notices with its run; a backend that notices nothing keeps the default.
    fn take_notices(&self, _user: &UserKey) -> Vec<Notice> {
        Vec::new()
    }
}
