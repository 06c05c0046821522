//! The EWS connector as a mailbox backend of the sync service ([`Backend::Ews`]): one
//! impersonated mailbox at a time, the user's `Salesforce_Sync` contact folder and primary
//! calendar.
//!
//! The contact folder is followed by its id: a user who renames it or moves it under another
//! folder keeps syncing there, and no second `Salesforce_Sync` is made beside it. Each pass
//! checks where the folder stored with the cursor now is; one deleted (into Deleted Items, or
//! for good) is made again under Contacts, and its listing starts over (see
//! `sync/pass/read.rs` for what becomes of the contacts that were in it).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use exsync_core::plan::WriteResult;
use exsync_core::zones::DayZone;
use exsync_core::{CrmId, ExchangeId, ItemId, ItemKind, UserKey};
use exsync_ews::{
    Autodiscover, DeletedFolder, EwsClient, EwsError, FolderPlace, FolderRef, ItemRef,
    MailboxClient, SearchFolder, TagSearch, TaggedItem, Update,
};
use exsync_store::Notice;
use url::Url;

use crate::sync::mailboxes::{Backend, Mailboxes};
use crate::sync::sides::{
    crm_origins, folder_replaced_notice, CopyEvidence, MailboxPage, MailboxSide, OwnedChange,
    SideError, SideErrorKind, SideResult, Write,
};
use exsync_core::plan::Change;

/// Where each mailbox's EWS endpoint is: configured once, or discovered per mailbox.
pub enum Endpoint {
    /// `exchange.ews_url`: every mailbox is reached at this URL, already checked against the
    /// allow-list.
    Configured(Url),
    /// No URL is configured: Autodiscover finds each mailbox's, within the allow-list.
    Discovered(Autodiscover),
}

/// The EWS backend of the mailbox side: the connector, where each mailbox's endpoint is, and the
/// folders already found.
pub struct ExchangeConnection {
    /// The connector, shared by every mailbox; it holds the service account's credentials and the
    /// request limits.
    pub client: Arc<EwsClient>,
    /// How each mailbox's EWS URL is found.
    pub endpoint: Endpoint,
    /// Each user's contact folder and calendar, found (or created) once, or known from the
    /// cursors of an earlier process.
    folders: Mutex<HashMap<(UserKey, ItemKind), FolderRef>>,
    /// The folders the stored cursors name ([`MailboxSide::known_folder`]): where the user's
    /// contact folder is checked for (renamed, moved, deleted) before it is used.
    hints: Mutex<HashMap<(UserKey, ItemKind), FolderRef>>,
    /// Contact folders a pass made ready ([`MailboxSide::prepare`]) by making them, and has
    /// neither listed nor written to since: they hold nothing, so their first listing is
    /// skipped (the next pass lists them from the start).
    made: Mutex<HashSet<(UserKey, ItemKind)>>,
    /// What the connection noticed per user since the pass last asked
    /// ([`MailboxSide::take_notices`]).
    notices: Mutex<HashMap<UserKey, Vec<Notice>>>,
    /// Each user's zone for all-day events ([`MailboxSide::day_zone`]); UTC until told.
    day_zones: Mutex<HashMap<UserKey, DayZone>>,
    /// The users whose pass is a dry run ([`MailboxSide::dry_run`]): no folder is made for them.
    dry: Mutex<HashSet<UserKey>>,
}

impl ExchangeConnection {
    /// A backend that knows no folder yet; each user's folders are found, or created, on first use.
    pub fn new(client: Arc<EwsClient>, endpoint: Endpoint) -> Self {
        ExchangeConnection {
            client,
            endpoint,
            folders: Mutex::new(HashMap::new()),
            hints: Mutex::new(HashMap::new()),
            made: Mutex::new(HashSet::new()),
            notices: Mutex::new(HashMap::new()),
            day_zones: Mutex::new(HashMap::new()),
            dry: Mutex::new(HashSet::new()),
        }
    }

    fn is_dry(&self, user: &UserKey) -> bool {
        self.dry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(user)
    }

    fn notice(&self, user: &UserKey, notice: Notice) {
        self.notices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(user.clone())
            .or_default()
            .push(notice);
    }

    /// Takes the mark of a folder a pass made and has not listed or written to since.
    fn take_made(&self, user: &UserKey, kind: ItemKind) -> bool {
        self.made
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(user.clone(), kind))
    }

    fn hint(&self, user: &UserKey, kind: ItemKind) -> Option<FolderRef> {
        self.hints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(user.clone(), kind))
            .cloned()
    }

    async fn mailbox(&self, user: &UserKey) -> SideResult<MailboxClient> {
        let url = match &self.endpoint {
            Endpoint::Configured(url) => url.clone(),
            Endpoint::Discovered(autodiscover) => autodiscover
                .ews_url(user.as_str())
                .await
                .map_err(side_error)?,
        };
        let day_zone = self
            .day_zones
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(user)
            .copied()
            .unwrap_or_default();
        Ok(self
            .client
            .mailbox(user.as_str(), url)
            .with_day_zone(day_zone))
    }

    fn cached(&self, user: &UserKey, kind: ItemKind) -> Option<FolderRef> {
        self.folders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(user.clone(), kind))
            .cloned()
    }

    fn remember(&self, user: &UserKey, kind: ItemKind, folder: FolderRef) {
        self.folders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((user.clone(), kind), folder);
    }

    /// The user's folder for `kind`; `None` only in a dry run, for a contact folder that is
    /// not there.
    async fn folder(
        &self,
        mailbox: &MailboxClient,
        user: &UserKey,
        kind: ItemKind,
    ) -> SideResult<Option<FolderRef>> {
        if let Some(folder) = self.cached(user, kind) {
            return Ok(Some(folder));
        }
        let folder = match kind {
            ItemKind::Contact => self
                .contact_folder(mailbox, user)
                .await
                .map(|found| found.map(|(f, _)| f)),
            // Every request can name the calendar by its role: no lookup.
            ItemKind::Event => Ok(Some(FolderRef::distinguished("calendar"))),
        }
        .map_err(side_error)?;
        if let Some(folder) = &folder {
            self.remember(user, kind, folder.clone());
        }
        Ok(folder)
    }

    /// The user's folder for `kind`, which a write or a search needs to be there.
    async fn existing_folder(
        &self,
        mailbox: &MailboxClient,
        user: &UserKey,
        kind: ItemKind,
    ) -> SideResult<FolderRef> {
        self.folder(mailbox, user, kind)
            .await?
            .ok_or_else(SideError::no_sync_folder)
    }

    /// The user's contact folder: the one the stored cursor names, wherever the user put it
    /// or whatever they renamed it to; our folder under Contacts (created when missing) when
    /// no cursor names one, or the one it names was deleted. Says whether it was made now.
    /// A dry run makes nothing: our folder under Contacts is looked for, and `None` when it is
    /// not there.
    async fn contact_folder(
        &self,
        mailbox: &MailboxClient,
        user: &UserKey,
    ) -> Result<Option<(FolderRef, bool)>, EwsError> {
        let deleted = match self.hint(user, ItemKind::Contact) {
            None => None,
            Some(hint) => match mailbox.folder_place(&hint).await? {
                FolderPlace::Live(folder) => return Ok(Some((folder, false))),
                place => Some((hint, place.how_deleted())),
            },
        };
        if self.is_dry(user) {
            let found = mailbox.existing_contacts_folder().await?;
            return Ok(found.map(|folder| (folder, false)));
        }
        let (folder, made) = mailbox.create_contacts_folder().await?;
        if let Some((hint, how)) = deleted {
            let notice = folder_replaced_notice(how, &self.client.config().contacts_folder);
            tracing::warn!(
                user = %user,
                old_folder = %hint.id,
                new_folder = %folder.id,
                "{} {}",
                notice.message,
                notice.fix
            );
            self.notice(user, notice);
        }
        Ok(Some((folder, made)))
    }

    /// The user's folder for `kind` (contacts: our sync folder, created when missing).
    pub async fn folder_of(
        &self,
        user: &UserKey,
        kind: ItemKind,
    ) -> SideResult<(MailboxClient, FolderRef)> {
        let mailbox = self.mailbox(user).await?;
        let folder = self.existing_folder(&mailbox, user, kind).await?;
        Ok((mailbox, folder))
    }

    /// Every item of the user's folder for `kind`, read in full (for checks and tooling; the
    /// sync pass reads page by page).
    pub async fn read_folder(&self, user: &UserKey, kind: ItemKind) -> SideResult<Vec<Change>> {
        let (mailbox, folder) = self.folder_of(user, kind).await?;
        let batch = mailbox
            .sync_all(kind, &folder, None)
            .await
            .map_err(side_error)?;
        Ok(batch.changes)
    }

    /// The items of `kind` tagged with `crm_ids` in the user's folder for it, looked up
    /// again once when the server refuses a folder remembered from before (deleted since);
    /// `None` when it refuses that one too.
    async fn tagged_in_folder(
        &self,
        user: &UserKey,
        kind: ItemKind,
        crm_ids: &[CrmId],
    ) -> SideResult<(MailboxClient, Option<Vec<TaggedItem>>)> {
        let (mut mailbox, mut folder) = self.folder_of(user, kind).await?;
        let mut looked_up_again = false;
        loop {
            let search = SearchFolder::Folder(folder);
            match mailbox.find_tagged(kind, &search, crm_ids).await {
                Ok(TagSearch::Searched(found)) => return Ok((mailbox, Some(found))),
                Ok(TagSearch::Refused(error)) if !looked_up_again => {
                    tracing::warn!(user = %user, %kind, code = ?error.code, "Exchange refused to search the folder; looking it up again.");
                    looked_up_again = true;
                    self.forget(user);
                    (mailbox, folder) = self.folder_of(user, kind).await?;
                }
                Ok(TagSearch::Refused(error)) => {
                    tracing::warn!(user = %user, %kind, code = ?error.code, "Exchange refused to search the folder again.");
                    return Ok((mailbox, None));
                }
                Err(e) => return Err(side_error(e)),
            }
        }
    }

    fn forget(&self, user: &UserKey) {
        // A folder someone deleted or a mailbox that moved is looked up again next time.
        self.folders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(u, _), _| u != user);
        self.made
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(u, _)| u != user);
        if let Endpoint::Discovered(autodiscover) = &self.endpoint {
            autodiscover.invalidate(user.as_str());
        }
    }
}

/// The folder to store with the cursor: one found by id; none for one named by its role.
fn stored_folder(folder: &FolderRef) -> Option<(String, String)> {
    (!folder.distinguished).then(|| (folder.id.clone(), folder.change_key.clone()))
}

/// Connector errors in the terms the service acts on.
pub fn side_error(e: EwsError) -> SideError {
    let missing =
        matches!(&e, EwsError::Mailbox { error, .. } if error.code == "ErrorNonExistentMailbox");
    let kind = if e.is_per_user() {
        SideErrorKind::User
    } else {
        match &e {
            EwsError::Tls { .. }
            | EwsError::Unauthorized { .. }
            | EwsError::AuthDowngrade { .. }
            | EwsError::NoUsableAuth { .. }
            | EwsError::CredentialsRefused { .. } => SideErrorKind::Fatal,
            _ => SideErrorKind::Transient,
        }
    };
    let error = SideError::new(kind, format!("Exchange: {e}"));
    if missing {
        error.mailbox_missing()
    } else {
        error
    }
}

fn item_result(result: Result<ItemRef, EwsError>) -> WriteResult {
    match result {
        Ok(item) => WriteResult::Done {
            id: ItemId::Exchange(item.id),
            version: Some(item.change_key),
        },
        Err(e) => WriteResult::Failed {
            reason: e.to_string(),
        },
    }
}

impl MailboxSide for ExchangeConnection {
    fn backend(&self, _user: &UserKey) -> Backend {
        Backend::Ews
    }

    fn write_batch(&self, _user: &UserKey) -> usize {
        self.client.config().batch_size.max(1)
    }

    fn requests_at_once(&self, _user: &UserKey) -> usize {
        self.client.config().max_per_mailbox.max(1)
    }

    async fn prepare(&self, user: &UserKey) -> SideResult<()> {
        let mailbox = self.mailbox(user).await?;
        let kind = ItemKind::Contact;
        if self.cached(user, kind).is_some() {
            return Ok(());
        }
        let (folder, made) = self
            .contact_folder(&mailbox, user)
            .await
            .map_err(side_error)?
            .ok_or_else(SideError::no_sync_folder)?;
        self.remember(user, kind, folder);
        if made {
            self.made
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((user.clone(), kind));
        }
        Ok(())
    }

    /// The contact folder is looked at again at the start of each pass (one GetFolder): its
    /// user may have renamed, moved or deleted it since. The calendar cannot be any of these,
    /// and is named by its role anyway.
    fn take_notices(&self, user: &UserKey) -> Vec<Notice> {
        self.notices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(user)
            .unwrap_or_default()
    }

    fn day_zone(&self, user: &UserKey, zone: DayZone) {
        self.day_zones
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(user.clone(), zone);
    }

    fn dry_run(&self, user: &UserKey, dry_run: bool) {
        let mut dry = self.dry.lock().unwrap_or_else(|p| p.into_inner());
        if dry_run {
            dry.insert(user.clone());
        } else {
            dry.remove(user);
        }
    }

    fn known_folder(&self, user: &UserKey, kind: ItemKind, folder: &(String, String)) {
        if kind != ItemKind::Contact {
            return;
        }
        let (id, change_key) = folder.clone();
        let folder = FolderRef {
            id,
            change_key,
            distinguished: false,
        };
        self.hints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((user.clone(), kind), folder);
        self.folders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(user.clone(), kind));
    }

    async fn changes_page(
        &self,
        user: &UserKey,
        kind: ItemKind,
        cursor: Option<&str>,
    ) -> SideResult<MailboxPage> {
        let mailbox = self.mailbox(user).await?;
        let Some(mut folder) = self.folder(&mailbox, user, kind).await? else {
            return Ok(MailboxPage::not_made(cursor.is_some()));
        };
        let mut restarted = false;
        let cursor_given = cursor.is_some();
        // A cursor of a folder that was deleted and made again means nothing in the new one.
        let replaced = |folder: &FolderRef| {
            cursor.is_some() && self.hint(user, kind).is_some_and(|h| h.id != folder.id)
        };
        // An empty cursor is the folder's start (see below): what is listed from it is the
        // whole folder, so a synced item missing from it was deleted.
        let mut cursor = cursor.filter(|c| !c.is_empty());
        if cursor.is_none() && cursor_given {
            restarted = true;
        }
        if replaced(&folder) {
            restarted = true;
            cursor = None;
        }
        if cursor.is_none() && self.take_made(user, kind) {
            // Made by this pass: nothing to list. The empty cursor has the next pass list the
            // folder from its start, which then holds what this pass wrote, as a cursor taken
            // now would.
            return Ok(MailboxPage {
                upserts: Vec::new(),
                deleted: Vec::new(),
                cursor: String::new(),
                last: true,
                restarted,
                folder: stored_folder(&folder),
            });
        }
        let listing = match mailbox.list_page(kind, &folder, cursor).await {
            Ok(listing) => listing,
            Err(EwsError::InvalidSyncState) if cursor.is_some() => {
                tracing::warn!(user = %user, %kind, "Exchange refused the stored sync state; listing the folder from the start.");
                restarted = true;
                mailbox
                    .list_page(kind, &folder, None)
                    .await
                    .map_err(side_error)?
            }
            Err(first) => {
                // The folder may be one remembered from an earlier process and gone since (or
                // the mailbox moved): look everything up again, once.
                tracing::warn!(user = %user, %kind, error = %first, "Reading the folder failed; looking it up again.");
                self.forget(user);
                let mailbox = self.mailbox(user).await?;
                let Some(found) = self.folder(&mailbox, user, kind).await? else {
                    return Ok(MailboxPage::not_made(cursor_given));
                };
                folder = found;
                if replaced(&folder) {
                    restarted = true;
                    cursor = None;
                }
                mailbox
                    .list_page(kind, &folder, cursor)
                    .await
                    .map_err(|e| {
                        self.forget(user);
                        side_error(e)
                    })?
            }
        };
        Ok(MailboxPage {
            upserts: listing
                .upserts
                .into_iter()
                .map(|item| (item.id, item.change_key))
                .collect(),
            deleted: listing.deleted,
            cursor: listing.state,
            last: listing.last,
            restarted,
            folder: stored_folder(&folder),
        })
    }

    async fn fetch(
        &self,
        user: &UserKey,
        kind: ItemKind,
        ids: &[ExchangeId],
    ) -> SideResult<Vec<OwnedChange>> {
        let mailbox = self.mailbox(user).await?;
        let read = mailbox
            .get_noted_changes(kind, ids)
            .await
            .map_err(side_error)?;
        Ok(read
            .into_iter()
            .map(|(change, notes)| OwnedChange {
                owner: None,
                change,
                notes,
            })
            .collect())
    }

    async fn write(
        &self,
        user: &UserKey,
        kind: ItemKind,
        writes: &[Write<'_>],
    ) -> SideResult<Vec<WriteResult>> {
        let mailbox = self.mailbox(user).await?;
        let folder = self.existing_folder(&mailbox, user, kind).await?;
        // Written to, the folder is no longer known to be empty.
        self.take_made(user, kind);
        let mut results: Vec<Option<WriteResult>> = vec![None; writes.len()];
        let mut creates = (Vec::new(), Vec::new());
        let mut updates = (Vec::new(), Vec::new());
        let mut deletes = (Vec::new(), Vec::new());
        for (i, write) in writes.iter().enumerate() {
            match write {
                Write::Create { fields, origin } => {
                    creates.0.push(i);
                    creates.1.push((CrmId::new(origin.as_str()), *fields));
                }
                Write::Update {
                    id,
                    fields,
                    changed,
                    expected_version,
                } => {
                    updates.0.push(i);
                    updates.1.push(Update {
                        item: ItemRef {
                            id: ExchangeId::new(*id),
                            change_key: expected_version.unwrap_or_default().to_owned(),
                        },
                        fields: (*fields).clone(),
                        changed: changed.to_vec(),
                    });
                }
                Write::Delete { id } => {
                    deletes.0.push(i);
                    deletes.1.push(ExchangeId::new(*id));
                }
            }
        }
        if !creates.1.is_empty() {
            let answers = mailbox
                .create(kind, &folder, &creates.1)
                .await
                .map_err(side_error)?;
            for (i, answer) in creates.0.iter().zip(answers) {
                results[*i] = Some(item_result(answer));
            }
        }
        if !updates.1.is_empty() {
            let answers = mailbox.update(kind, &updates.1).await.map_err(side_error)?;
            for (i, answer) in updates.0.iter().zip(answers) {
                results[*i] = Some(item_result(answer));
            }
        }
        if !deletes.1.is_empty() {
            let answers = mailbox.delete(kind, &deletes.1).await.map_err(side_error)?;
            for ((i, id), answer) in deletes.0.iter().zip(&deletes.1).zip(answers) {
                results[*i] = Some(match answer {
                    Ok(()) => WriteResult::Done {
                        id: ItemId::Exchange(id.clone()),
                        version: None,
                    },
                    Err(e) => WriteResult::Failed {
                        reason: e.to_string(),
                    },
                });
            }
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or(WriteResult::Failed {
                    reason: "not written".into(),
                })
            })
            .collect())
    }

    /// Searches by tag the kind's folder, then Deleted Items, then Recoverable Items
    /// Deletions (when the server version has it), counting only items created at or after
    /// `since`: a copy in the folder is present (read as [`Self::fetch`] reads it), one only
    /// in a deleted folder was deleted, one nowhere was never made. A folder the server
    /// refuses, or a tagged item whose creation time did not come back, leaves the origins it
    /// could be a copy of unknown.
    async fn find_copies(
        &self,
        user: &UserKey,
        kind: ItemKind,
        origins: &[ItemId],
        since: chrono::DateTime<chrono::Utc>,
    ) -> SideResult<Vec<CopyEvidence>> {
        let crm_ids = crm_origins(origins);
        let mut searched = Searched::default();
        if crm_ids.is_empty() {
            return Ok(copy_evidence(origins, &searched));
        }
        let (mailbox, in_folder) = self.tagged_in_folder(user, kind, &crm_ids).await?;
        if let Some(found) = in_folder {
            let mut first: Vec<(CrmId, ExchangeId)> = Vec::new();
            for tagged in found {
                match created_since(tagged.created, since) {
                    Some(true) => {
                        if !first.iter().any(|(c, _)| *c == tagged.crm_id) {
                            first.push((tagged.crm_id, tagged.item.id));
                        }
                    }
                    Some(false) => {}
                    None => {
                        searched.unsure_in_folder.insert(tagged.crm_id);
                    }
                }
            }
            let ids: Vec<ExchangeId> = first.iter().map(|(_, id)| id.clone()).collect();
            let changes = if ids.is_empty() {
                Vec::new()
            } else {
                mailbox.get_changes(kind, &ids).await.map_err(side_error)?
            };
            // One change per id, in order; one naming another id is left out.
            searched.in_folder = Some(
                first
                    .into_iter()
                    .zip(changes)
                    .filter(|((_, id), change)| *change.id() == ItemId::Exchange(id.clone()))
                    .map(|((crm_id, _), change)| (crm_id, change))
                    .collect(),
            );
        }
        searched.deleted_searched = true;
        for place in DeletedFolder::ALL {
            if !place.available() {
                tracing::debug!(user = %user, folder = place.distinguished_id(), "the server version has no such folder; not searched");
                searched.deleted_searched = false;
                continue;
            }
            match mailbox
                .find_tagged(kind, &SearchFolder::Deleted(place), &crm_ids)
                .await
                .map_err(side_error)?
            {
                TagSearch::Searched(found) => {
                    for tagged in found {
                        match created_since(tagged.created, since) {
                            Some(true) => {
                                searched
                                    .deleted
                                    .entry(tagged.crm_id)
                                    .or_insert(tagged.item.id);
                            }
                            Some(false) => {}
                            None => {
                                searched.unsure_deleted.insert(tagged.crm_id);
                            }
                        }
                    }
                }
                TagSearch::Refused(error) => {
                    tracing::warn!(user = %user, folder = place.distinguished_id(), code = ?error.code, "Exchange refused to search a deleted-items folder; copies it may hold stay unknown");
                    searched.deleted_searched = false;
                }
            }
        }
        if !searched.unsure_in_folder.is_empty() || !searched.unsure_deleted.is_empty() {
            tracing::warn!(user = %user, %kind, "Exchange left out the creation time of tagged items; the copies they may be stay unknown");
        }
        Ok(copy_evidence(origins, &searched))
    }
}

/// Whether an item created at `created` counts as a copy made at or after `since`: Exchange
/// keeps creation times to the second, so an item of `since`'s own second counts. `None`
/// when its creation time is not known.
fn created_since(
    created: Option<chrono::DateTime<chrono::Utc>>,
    since: chrono::DateTime<chrono::Utc>,
) -> Option<bool> {
    use chrono::SubsecRound;
    created.map(|created| created >= since.trunc_subsecs(0))
}

/// What searching by tag found of the copies of some origins, counting only items created
/// at or after the time asked.
#[derive(Debug, Default)]
struct Searched {
    /// The kind's folder, `None` when it could not be searched: the current state of the
    /// first copy found there for each CRM id.
    in_folder: Option<HashMap<CrmId, Change>>,
    /// CRM ids tagging an item in the kind's folder whose creation time is unknown.
    unsure_in_folder: HashSet<CrmId>,
    /// The first copy found in a deleted-items folder for each CRM id.
    deleted: HashMap<CrmId, ExchangeId>,
    /// CRM ids tagging an item in a deleted-items folder whose creation time is unknown.
    unsure_deleted: HashSet<CrmId>,
    /// Every deleted-items folder was searched.
    deleted_searched: bool,
}

/// What became of the copies of `origins`, from what searching by tag found. A copy in the
/// kind's folder is present; otherwise one in a deleted-items folder was deleted, unless an
/// item in the kind's folder of unknown age may be a live copy; never made only when every
/// folder was searched and no item of unknown age carries the tag.
fn copy_evidence(origins: &[ItemId], searched: &Searched) -> Vec<CopyEvidence> {
    origins
        .iter()
        .map(|origin| {
            // Only CRM records are copied into a mailbox with a tag.
            let ItemId::Crm(crm_id) = origin else {
                return CopyEvidence::Unknown;
            };
            let Some(in_folder) = &searched.in_folder else {
                // A copy may sit unseen in the folder: neither deleted nor never made is sure.
                return CopyEvidence::Unknown;
            };
            match in_folder.get(crm_id) {
                Some(Change::Deleted { .. }) | None => {}
                Some(change) => return CopyEvidence::Present(change.clone()),
            }
            if searched.unsure_in_folder.contains(crm_id) {
                // It may be the copy, live.
                return CopyEvidence::Unknown;
            }
            match searched.deleted.get(crm_id) {
                Some(id) => CopyEvidence::Deleted(ItemId::Exchange(id.clone())),
                None if searched.deleted_searched
                    && !in_folder.contains_key(crm_id)
                    && !searched.unsure_deleted.contains(crm_id) =>
                {
                    CopyEvidence::Never
                }
                // Gone between the search and the fetch, a folder left unsearched, or an item
                // of unknown age that may be the copy, deleted.
                None => CopyEvidence::Unknown,
            }
        })
        .collect()
}

/// The tooling of the lab and the checks, through the router: for a user whose mailbox EWS
/// serves, what [`ExchangeConnection`] offers beyond [`MailboxSide`].
impl<G: MailboxSide> Mailboxes<ExchangeConnection, G> {
    fn on_ews(&self, user: &UserKey) -> SideResult<&ExchangeConnection> {
        match self.backend(user) {
            Backend::Ews => Ok(self.ews()),
            other => Err(SideError::new(
                SideErrorKind::User,
                format!("{user}'s mailbox is served by the {other} backend, not EWS"),
            )),
        }
    }

    /// See [`ExchangeConnection::folder_of`].
    pub async fn folder_of(
        &self,
        user: &UserKey,
        kind: ItemKind,
    ) -> SideResult<(MailboxClient, FolderRef)> {
        self.on_ews(user)?.folder_of(user, kind).await
    }

    /// See [`ExchangeConnection::read_folder`]; a user on another backend is read through it
    /// ([`Mailboxes::read_all`]).
    pub async fn read_folder(&self, user: &UserKey, kind: ItemKind) -> SideResult<Vec<Change>> {
        match self.backend(user) {
            Backend::Ews => self.ews().read_folder(user, kind).await,
            _ => self.read_all(user, kind).await,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use exsync_core::plan::Item;

    fn crm(id: &str) -> ItemId {
        ItemId::Crm(CrmId::new(id))
    }

    fn present(id: &str, origin: &str) -> Change {
        Change::Upsert(Item {
            id: ItemId::Exchange(ExchangeId::new(id)),
            fields: Default::default(),
            version: Some("v".into()),
            modified: None,
            origin: Some(crm(origin)),
        })
    }

    #[test]
    fn evidence_says_never_only_when_every_folder_was_searched() {
        let origins = [
            crm("a"),
            crm("b"),
            crm("c"),
            crm("d"),
            ItemId::Exchange(ExchangeId::new("x")),
        ];
        let in_folder = HashMap::from([
            (CrmId::new("a"), present("A", "a")),
            // Gone between the search and the fetch.
            (
                CrmId::new("d"),
                Change::Deleted {
                    id: ItemId::Exchange(ExchangeId::new("D")),
                },
            ),
        ]);
        let deleted = HashMap::from([(CrmId::new("b"), ExchangeId::new("B"))]);

        let mut searched = Searched {
            in_folder: Some(in_folder),
            deleted,
            deleted_searched: true,
            ..Searched::default()
        };
        let all = copy_evidence(&origins, &searched);
        assert_eq!(
            all,
            [
                CopyEvidence::Present(present("A", "a")),
                CopyEvidence::Deleted(ItemId::Exchange(ExchangeId::new("B"))),
                CopyEvidence::Never,
                CopyEvidence::Unknown,
                CopyEvidence::Unknown,
            ]
        );

        // A deleted-items folder refused (or unknown to the server version): what was found
        // stands, what was not is unknown.
        searched.deleted_searched = false;
        let partial = copy_evidence(&origins, &searched);
        assert_eq!(partial[0], all[0]);
        assert_eq!(partial[1], all[1]);
        assert_eq!(partial[2], CopyEvidence::Unknown);

        // The kind's folder refused: a copy may sit there unseen, so nothing is sure.
        searched.deleted_searched = true;
        let in_folder = searched.in_folder.take();
        let blind = copy_evidence(&origins, &searched);
        assert!(
            blind.iter().all(|e| *e == CopyEvidence::Unknown),
            "{blind:?}"
        );
        searched.in_folder = in_folder;

        // Items whose creation time did not come back: one in the kind's folder may be a live
        // copy, so neither a deleted copy nor none decides; one in a deleted-items folder
        // keeps "never" from being said, but not a deleted copy created since; a present
        // copy decides whatever else carries the tag.
        searched.unsure_in_folder = HashSet::from([CrmId::new("a"), CrmId::new("b")]);
        let unsure = copy_evidence(&origins, &searched);
        assert_eq!(unsure[0], all[0]);
        assert_eq!(unsure[1], CopyEvidence::Unknown);
        assert_eq!(unsure[2], CopyEvidence::Never);
        searched.unsure_in_folder.clear();
        searched.unsure_deleted = HashSet::from([CrmId::new("b"), CrmId::new("c")]);
        let unsure = copy_evidence(&origins, &searched);
        assert_eq!(unsure[..2], all[..2]);
        assert_eq!(unsure[2], CopyEvidence::Unknown);
        searched.unsure_deleted.clear();
        searched.unsure_in_folder = HashSet::from([CrmId::new("c")]);
        assert_eq!(copy_evidence(&origins, &searched)[2], CopyEvidence::Unknown);
    }

    #[test]
    fn items_count_from_the_start_of_the_second_asked() {
        let at = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .with_timezone(&chrono::Utc)
        };
        let since = at("2026-12-05T10:00:00.600Z");
        assert_eq!(
            created_since(Some(at("2026-12-05T10:00:00Z")), since),
            Some(true)
        );
        assert_eq!(
            created_since(Some(at("2026-12-05T10:00:01Z")), since),
            Some(true)
        );
        assert_eq!(
            created_since(Some(at("2026-12-05T09:59:59Z")), since),
            Some(false)
        );
        assert_eq!(created_since(None, since), None);
    }
}
