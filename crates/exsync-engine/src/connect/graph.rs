//! The Microsoft Graph connector as a mailbox backend of the sync service ([`Backend::Graph`]):
//! Exchange Online mailboxes reached with the app's own identity, the user's
//! `Salesforce_Sync` contact folder and primary calendar.
//!
//! - Contacts are read through the folder's contacts delta, events through calendarView
//!   delta over a window wider than the sync window (Graph needs one; see [`ViewWindow`]). A
//!   series is reported and fetched as its master, never occurrence by occurrence.
//! - The listing reports ids and ETags only; [`MailboxSide::fetch`] reads what the pass does
//!   not know yet, 20 items per `$batch`, with our tag expanded.
//! - Writes go 20 to a `$batch`; updates carry `If-Match`, so an item someone changed since it
//!   was read is refused (412) and read again by the next pass, never overwritten.
//! - Items carry the same extended property as EWS writes, so a mailbox moved from on
//!   premises keeps its links, and a create retried after a crash finds its first copy.
//! - The contact folder is followed by its id; each pass looks at where it stands in the
//!   `$batch` of its first contacts read, and one deleted (into Deleted Items, or for good)
//!   is made again under Contacts (`graph/place.rs`).

mod cursor;
mod place;
mod series;
pub mod setup;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SubsecRound, Utc};
use exsync_core::config::Window;
use exsync_core::plan::{Change, WriteResult};
use exsync_core::zones::DayZone;
use exsync_core::{Contact, CrmId, Event, ExchangeId, ItemId, ItemKind, Record, UserKey};
use exsync_graph::mapping::{
    contact_expand, contact_updates, contact_updates_keeping, crm_id_property_id, event_expand,
    event_updates_in, expand_properties, noted_item_change, tag_filter, write_contact,
    write_event_in, GraphRef, CONTACT_SELECT, EVENT_SELECT, PREFER_TEXT_BODY,
};
use exsync_graph::{BatchReply, BatchRequest, Error as GraphFailure, GraphClient, BATCH_MAX};
use exsync_store::Notice;
use http::Method;
use serde_json::{json, Value};

use self::cursor::{kept_masters, GraphCursor, ViewWindow};
use self::place::{climb, Standing};
pub(crate) use self::place::{folder_place, Place};
use crate::sync::mailboxes::Backend;
use crate::sync::sides::{
    crm_origins, folder_replaced_notice, CopyEvidence, MailboxPage, MailboxSide, OwnedChange,
    SideError, SideErrorKind, SideResult, Write,
};

/// Items a listing page holds at most (`Prefer: odata.maxpagesize`).
pub const DEFAULT_PAGE_SIZE: usize = 200;

/// What the Graph backend needs besides the client.
#[derive(Debug, Clone)]
pub struct GraphSettings {
    /// The app registration's client id, named in the commands an admin is given.
    pub app_id: String,
    /// The contact folder under the user's Contacts (`exchange.contacts_folder`, as EWS).
    pub contacts_folder: String,
    /// The event window of users with no window of their own (see
    /// [`GraphConnection::set_window`]).
    pub window: Window,
    /// Items per listing page.
    pub page_size: usize,
}

impl GraphSettings {
    /// Settings with the default folder name, page size and a window of 30 days back and a year
    /// ahead (the configuration's defaults).
    pub fn new(app_id: impl Into<String>) -> Self {
        GraphSettings {
            app_id: app_id.into(),
            contacts_folder: "Salesforce_Sync".into(),
            window: Window {
                past_days: 30,
                future_days: 365,
            },
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

/// The Graph backend of the mailbox side: the tenant's client, and what it found per user.
pub struct GraphConnection {
    /// The tenant's client, shared by every mailbox; it holds the app's credential and keeps
    /// each mailbox within Graph's limits.
    pub client: Arc<GraphClient>,
    settings: GraphSettings,
    /// Each user's event window, when their configuration has one.
    windows: Mutex<HashMap<UserKey, Window>>,
    /// Each user's contact folder id, found or created once.
    folders: Mutex<HashMap<UserKey, String>>,
    /// Where each user's contact folder stood when last seen (see `graph/place.rs`).
    standings: Mutex<HashMap<UserKey, Standing>>,
    /// Users whose folder this pass has not looked at yet: its first contacts read does.
    due: Mutex<HashSet<UserKey>>,
    /// The folder ids the stored cursors name, with the default Contacts folder's id
    /// ([`MailboxSide::known_folder`]).
    hints: Mutex<HashMap<UserKey, (String, String)>>,
    /// Folders made by [`MailboxSide::prepare`] and neither listed nor written since.
    made: Mutex<HashSet<UserKey>>,
    /// Occurrence (and exception) ids seen in listings → their series master: a delta reports
    /// a cancelled occurrence only as a removed id, which must reach its master.
    occurrences: Mutex<HashMap<UserKey, HashMap<String, String>>>,
    /// Cancelled occurrence ids whose date this process knows (it cancelled them), for a
    /// server whose ids do not carry the date.
    cancelled: Mutex<HashMap<String, chrono::NaiveDate>>,
    /// When set, contacts are read with our tag alone in `$expand`: the server refused the
    /// MAPI properties addressed by tag that hold the fax, other and assistant numbers.
    tag_only_expand: std::sync::atomic::AtomicBool,
    notices: Mutex<HashMap<UserKey, Vec<Notice>>>,
    /// Each user's zone for all-day events ([`MailboxSide::day_zone`]); UTC until told.
    day_zones: Mutex<HashMap<UserKey, DayZone>>,
    /// The users whose pass is a dry run ([`MailboxSide::dry_run`]): no folder is made for them.
    dry: Mutex<HashSet<UserKey>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A path segment: ids hold `/`, `+` and `=`, which must not reach the path as they are.
pub(crate) fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query value, spaces as `%20`.
pub(crate) fn enc(s: &str) -> String {
    let form: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
    form.replace('+', "%20")
}

/// The EWS form of a Graph id. Graph's ids are EWS's made URL-safe (`/` → `-`, `+` → `_`, as
/// Outlook's `convertToRestId` does); the backend answers EWS's form, so a mailbox moved from
/// on premises keeps the ids its pairs hold (see [`MailboxSide`]).
pub fn ews_id(graph: &str) -> String {
    graph.replace('-', "/").replace('_', "+")
}

/// The Graph form of an id the backend answered (see [`ews_id`]).
pub fn graph_id(ews: &str) -> String {
    ews.replace('/', "-").replace('+', "_")
}

fn ews_item(id: ItemId) -> ItemId {
    match id {
        ItemId::Exchange(x) => ItemId::Exchange(ExchangeId::new(ews_id(x.as_str()))),
        crm => crm,
    }
}

fn ews_change(change: Change) -> Change {
    match change {
        Change::Upsert(mut item) => {
            item.id = ews_item(item.id);
            Change::Upsert(item)
        }
        Change::Deleted { id } => Change::Deleted { id: ews_item(id) },
        Change::OutOfScope { id } => Change::OutOfScope { id: ews_item(id) },
        Change::Invalid { id, reason } => Change::Invalid {
            id: ews_item(id),
            reason,
        },
    }
}

fn ews_page(mut page: MailboxPage) -> MailboxPage {
    for (id, _) in &mut page.upserts {
        *id = ExchangeId::new(ews_id(id.as_str()));
    }
    for id in &mut page.deleted {
        *id = ExchangeId::new(ews_id(id.as_str()));
    }
    if let Some((folder, _)) = &mut page.folder {
        *folder = ews_id(folder);
    }
    page
}

/// What to tell the admin when the app's RBAC scope does not cover a mailbox.
pub fn scope_remedy(app_id: &str, mailbox: &str) -> String {
    format!(
        "the app's RBAC for Applications scope does not cover {mailbox}. In Exchange Online \
         PowerShell, check it with Test-ServicePrincipalAuthorization -Identity {app_id} \
         -Resource {mailbox} (InScope per role); then add the mailbox to the scope's recipients \
         (the group or attribute its filter names), or assign the roles on a scope that covers \
         it: New-ManagementRoleAssignment -App {app_id} -Role \"Application \
         Contacts.ReadWrite\" -CustomResourceScope <scope> and New-ManagementRoleAssignment -App \
         {app_id} -Role \"Application Calendars.ReadWrite\" -CustomResourceScope <scope>. \
         Changes to a scope can take an hour to apply."
    )
}

/// Connector errors in the terms the service acts on.
pub fn side_error(e: &GraphFailure, user: &UserKey, app_id: &str) -> SideError {
    if e.is_not_authorised() {
        return SideError::new(
            SideErrorKind::User,
            format!("Graph: access to the mailbox {user} was denied (403 ErrorAccessDenied): {e}"),
        )
        .with_remedy(scope_remedy(app_id, user.as_str()));
    }
    let kind = match e {
        GraphFailure::Config(_) | GraphFailure::Refused { .. } | GraphFailure::Auth(_) => {
            SideErrorKind::Fatal
        }
        GraphFailure::Paused { .. } | GraphFailure::Transport(_) | GraphFailure::Decode(_) => {
            SideErrorKind::Transient
        }
        GraphFailure::Api(g) if g.status == 429 || g.status >= 500 => SideErrorKind::Transient,
        // Only this mailbox's requests failed (no such mailbox, one not on Exchange Online).
        GraphFailure::Api(_) => SideErrorKind::User,
    };
    let error = SideError::new(kind, format!("Graph: {e}"));
    match e {
        GraphFailure::Auth(auth) => error.with_remedy(auth.hint()),
        GraphFailure::Api(g) if g.status == 404 => {
            let error = error.with_remedy(format!(
                "check that {user} is a mailbox in Exchange Online (Get-EXOMailbox {user}); a \
                 mailbox still on premises belongs to the EWS backend"
            ));
            // Graph's ways of saying the tenant has no such mailbox (as opposed to an item or
            // folder that is not there).
            if matches!(
                g.code.as_str(),
                "ErrorInvalidUser" | "MailboxNotEnabledForRESTAPI" | "ErrorNonExistentMailbox"
            ) {
                error.mailbox_missing()
            } else {
                error
            }
        }
        _ => error,
    }
}

/// The reason a refused conditional update is recorded with: the same as EWS's for a stale
/// ChangeKey, so the pass reads the item again and merges rather than overwrite it.
fn stale_reason(id: &str) -> String {
    format!(
        "item {id} changed in the mailbox since it was read (HTTP 412, ETag no longer matches); \
         refetch and replan"
    )
}

/// A `transactionId` for an event create: the same for the same record created from the same
/// origin, so a create sent again after a lost answer gives back the first event (Graph keeps
/// transaction ids to make creates idempotent). Two FNV-1a hashes make 128 bits, which no
/// library version changes.
fn transaction_id(user: &UserKey, origin: &ItemId, body: &Value) -> String {
    let text = format!("{user}\u{0}{}\u{0}{body}", origin.as_str());
    let fnv = |seed: u64| {
        text.bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    format!(
        "exsync-{:016x}{:016x}",
        fnv(0xcbf2_9ce4_8422_2325),
        fnv(0x6c62_272e_07bb_0142)
    )
}

/// Whether an event JSON is an occurrence or an exception of a series.
fn is_instance(item: &Value) -> bool {
    matches!(
        item.get("type").and_then(Value::as_str),
        Some("occurrence" | "exception")
    )
}

/// Whether an event JSON is a series master.
fn is_master(item: &Value) -> bool {
    item.get("type").and_then(Value::as_str) == Some("seriesMaster")
}

/// The series master an occurrence or exception names, when it names one that could be an id.
fn master_of(item: &Value) -> Option<&str> {
    item.get("seriesMasterId")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty() && id.len() <= 4096)
}

impl GraphConnection {
    /// A backend that knows no folder yet.
    pub fn new(client: Arc<GraphClient>, settings: GraphSettings) -> Self {
        GraphConnection {
            client,
            settings,
            windows: Mutex::new(HashMap::new()),
            folders: Mutex::new(HashMap::new()),
            standings: Mutex::new(HashMap::new()),
            due: Mutex::new(HashSet::new()),
            hints: Mutex::new(HashMap::new()),
            made: Mutex::new(HashSet::new()),
            occurrences: Mutex::new(HashMap::new()),
            cancelled: Mutex::new(HashMap::new()),
            tag_only_expand: std::sync::atomic::AtomicBool::new(false),
            notices: Mutex::new(HashMap::new()),
            day_zones: Mutex::new(HashMap::new()),
            dry: Mutex::new(HashSet::new()),
        }
    }

    /// The zone the user's all-day events are whole days in.
    pub(crate) fn day_zone_of(&self, user: &UserKey) -> DayZone {
        locked(&self.day_zones)
            .get(user)
            .copied()
            .unwrap_or_default()
    }

    /// The backend's settings.
    pub fn settings(&self) -> &GraphSettings {
        &self.settings
    }

    /// Sets the event window of `user` (their configuration's); the events delta covers it.
    pub fn set_window(&self, user: &UserKey, window: Window) {
        locked(&self.windows).insert(user.clone(), window);
    }

    fn error(&self, user: &UserKey, e: &GraphFailure) -> SideError {
        side_error(e, user, &self.settings.app_id)
    }

    fn window_of(&self, user: &UserKey) -> ViewWindow {
        let window = locked(&self.windows)
            .get(user)
            .copied()
            .unwrap_or(self.settings.window);
        ViewWindow::around(Utc::now().date_naive(), &window)
    }

    fn notice(&self, user: &UserKey, notice: Notice) {
        locked(&self.notices)
            .entry(user.clone())
            .or_default()
            .push(notice);
    }

    fn user_path(user: &UserKey) -> String {
        format!("/users/{}", seg(user.as_str()))
    }

    fn item_path(user: &UserKey, kind: ItemKind, id: &str) -> String {
        let collection = match kind {
            ItemKind::Contact => "contacts",
            ItemKind::Event => "events",
        };
        format!("{}/{collection}/{}", Self::user_path(user), seg(id))
    }

    fn page_headers(&self) -> Vec<(String, String)> {
        vec![(
            "Prefer".to_owned(),
            format!("odata.maxpagesize={}", self.settings.page_size.max(1)),
        )]
    }

    /// The user's contact folder: the one found before, or the one the stored cursor names if
    /// it is still among the user's contact folders, or ours under Contacts, made when
    /// missing. Says whether it was made. A dry run makes none: `None` when ours is missing.
    async fn contact_folder(&self, user: &UserKey) -> SideResult<Option<(String, bool)>> {
        if let Some(id) = locked(&self.folders).get(user).cloned() {
            return Ok(Some((id, false)));
        }
        let hint = locked(&self.hints).get(user).cloned();
        let (id, made) = match hint {
            Some((hint, root)) if !root.is_empty() && locked(&self.due).contains(user) => {
                // Taken as it was: this pass's first contacts read looks at where it stands
                // in the same round trip (`page_checking`).
                let standing = Standing {
                    root,
                    chain: Vec::new(),
                };
                locked(&self.standings).insert(user.clone(), standing);
                locked(&self.folders).insert(user.clone(), hint.clone());
                return Ok(Some((hint, false)));
            }
            Some((hint, root)) => {
                match folder_place(&self.client, &Self::user_path(user), &hint, &root)
                    .await
                    .map_err(|e| self.error(user, &e))?
                {
                    Place::Home(standing) => {
                        locked(&self.standings).insert(user.clone(), standing);
                        (hint, false)
                    }
                    away => match self.replace_folder(user, &hint, away.how()).await? {
                        Some(found) => found,
                        None => return Ok(None),
                    },
                }
            }
            None => match self.find_or_create_folder(user).await? {
                Some(found) => found,
                None => return Ok(None),
            },
        };
        locked(&self.due).remove(user);
        locked(&self.folders).insert(user.clone(), id.clone());
        Ok(Some((id, made)))
    }

    /// The user's contact folder, which a write or a search needs to be there.
    async fn existing_contact_folder(&self, user: &UserKey) -> SideResult<String> {
        let found = self.contact_folder(user).await?;
        found
            .map(|(id, _)| id)
            .ok_or_else(SideError::no_sync_folder)
    }

    /// Makes the user's folder again (or finds one of its name under Contacts) in place of
    /// `old`, which went away `how`, and says so to the admin. A dry run makes none.
    async fn replace_folder(
        &self,
        user: &UserKey,
        old: &str,
        how: &str,
    ) -> SideResult<Option<(String, bool)>> {
        self.forget_folder(user);
        let Some((id, made)) = self.find_or_create_folder(user).await? else {
            return Ok(None);
        };
        let notice = folder_replaced_notice(how, &self.settings.contacts_folder);
        tracing::warn!(
            user = %user,
            old_folder = %old,
            new_folder = %id,
            "{} {}",
            notice.message,
            notice.fix
        );
        self.notice(user, notice);
        locked(&self.folders).insert(user.clone(), id.clone());
        Ok(Some((id, made)))
    }

    /// The default Contacts folder's id as last seen, empty when not known.
    fn root_of(&self, user: &UserKey) -> String {
        locked(&self.standings)
            .get(user)
            .map(|s| s.root.clone())
            .unwrap_or_default()
    }

    /// Ours under Contacts, found by name, else made (`None` in a dry run, which makes none).
    async fn find_or_create_folder(&self, user: &UserKey) -> SideResult<Option<(String, bool)>> {
        let name = &self.settings.contacts_folder;
        let filter = format!(
            "displayName eq {}",
            exsync_graph::mapping::odata_string(name)
        );
        let url = format!(
            "{}/contactFolders?$filter={}&$select=id,displayName,parentFolderId",
            Self::user_path(user),
            enc(&filter)
        );
        let found = self
            .client
            .collect(&url, &[])
            .await
            .map_err(|e| self.error(user, &e))?;
        // Both the folders listed and the one made are right under the default Contacts
        // folder, whose id they carry as their parent.
        let stand = |user: &UserKey, folder: &Value| {
            let root = folder.get("parentFolderId").and_then(Value::as_str);
            let standing = Standing {
                root: root.unwrap_or_default().to_owned(),
                chain: Vec::new(),
            };
            locked(&self.standings).insert(user.clone(), standing);
        };
        let existing = found.items.iter().find(|f| {
            f.get("displayName")
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        });
        if let Some((folder, id)) =
            existing.and_then(|f| Some((f, f.get("id").and_then(Value::as_str)?)))
        {
            stand(user, folder);
            return Ok(Some((id.to_owned(), false)));
        }
        if locked(&self.dry).contains(user) {
            return Ok(None);
        }
        let request = exsync_graph::GraphRequest::new(
            Method::POST,
            format!("{}/contactFolders", Self::user_path(user)),
        )
        .json(json!({ "displayName": name }));
        let created = self
            .client
            .send(request)
            .await
            .map_err(|e| self.error(user, &e))?;
        let id = created
            .body
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                SideError::new(
                    SideErrorKind::Transient,
                    "Graph: the contact folder was created but its id did not come back",
                )
            })?
            .to_owned();
        stand(user, &created.body);
        tracing::info!(user = %user, folder = %id, "made the contact sync folder");
        Ok(Some((id, true)))
    }

    fn forget_folder(&self, user: &UserKey) {
        locked(&self.folders).remove(user);
        locked(&self.made).remove(user);
        locked(&self.standings).remove(user);
    }

    /// Where the user's folder stood, if this pass has yet to look at it and it can be told.
    fn take_due(&self, user: &UserKey) -> Option<Standing> {
        if !locked(&self.due).remove(user) {
            return None;
        }
        locked(&self.standings)
            .get(user)
            .filter(|s| !s.root.is_empty())
            .cloned()
    }

    /// Sends `requests` as `$batch`es; a whole-call failure is the user's error.
    async fn batch(
        &self,
        user: &UserKey,
        requests: Vec<BatchRequest>,
    ) -> SideResult<Vec<BatchReply>> {
        self.client
            .batch(requests)
            .await
            .map_err(|e| self.error(user, &e))
    }

    /// A batch item's error that stops the whole call: the mailbox left the app's scope.
    fn mailbox_refused(&self, user: &UserKey, reply: &BatchReply) -> SideResult<()> {
        match reply.error() {
            Some(e) if e.is_not_authorised() => {
                Err(self.error(user, &GraphFailure::Api(Box::new(e))))
            }
            _ => Ok(()),
        }
    }

    async fn contacts_page(&self, user: &UserKey, cursor: Option<&str>) -> SideResult<MailboxPage> {
        let Some((folder, _)) = self.contact_folder(user).await? else {
            return Ok(MailboxPage::not_made(cursor.is_some()));
        };
        let root = self.root_of(user);
        let given = cursor.is_some();
        let mut link = match cursor.filter(|c| !c.is_empty()).map(GraphCursor::decode) {
            Some(Some(GraphCursor::Contacts { f, l })) if f == folder => Some(l),
            // Another backend's cursor, or one of a folder that has been replaced.
            _ => None,
        };
        let mut restarted = given && link.is_none();
        let made = locked(&self.made).remove(user);
        if link.is_none() && made {
            // Made by this pass: nothing to list; the empty cursor has the next pass list it
            // from the start, which then holds what this pass wrote.
            return Ok(MailboxPage {
                cursor: String::new(),
                last: true,
                restarted,
                folder: Some((folder, root)),
                ..MailboxPage::default()
            });
        }
        let start = format!(
            "{}/contactFolders/{}/contacts/delta?$select=id,changeKey",
            Self::user_path(user),
            seg(&folder)
        );
        let headers = self.page_headers();
        let mut first = match self.take_due(user) {
            Some(standing) => {
                let url = link.clone().unwrap_or_else(|| start.clone());
                match self.page_checking(user, &folder, &standing, &url).await? {
                    Ok(page) => Some(page),
                    Err(away) => {
                        if self
                            .replace_folder(user, &folder, away.how())
                            .await?
                            .is_none()
                        {
                            return Ok(MailboxPage::not_made(true));
                        }
                        return Box::pin(self.contacts_page(user, Some(""))).await;
                    }
                }
            }
            None => None,
        };
        let page = loop {
            let url = link.clone().unwrap_or_else(|| start.clone());
            let read = match first.take() {
                Some(read) => read,
                None => self.client.page(&url, &headers).await,
            };
            match read {
                Ok(page) => break page,
                Err(e) if e.is_sync_state_lost() && link.is_some() => {
                    tracing::warn!(user = %user, error = %e, "Graph no longer knows the contacts delta token; listing the folder from the start.");
                    restarted = true;
                    link = None;
                }
                Err(e) if e.is_not_found() && link.is_some() => {
                    // The folder may have gone away since: it is looked up again as a new
                    // process would, from its id, which says so if it is gone and a new one
                    // takes its place.
                    tracing::warn!(user = %user, error = %e, "The contact folder's delta is gone; looking the folder up again.");
                    let root = self.root_of(user);
                    self.forget_folder(user);
                    locked(&self.hints).insert(user.clone(), (folder.clone(), root));
                    return Box::pin(self.contacts_page(user, Some(""))).await;
                }
                Err(e) => return Err(self.error(user, &e)),
            }
        };
        let mut out = MailboxPage {
            restarted,
            folder: Some((folder.clone(), self.root_of(user))),
            ..MailboxPage::default()
        };
        for item in &page.items {
            let Some(id) = item.get("id").and_then(Value::as_str) else {
                continue;
            };
            if item.get("@removed").is_some() {
                out.deleted.push(ExchangeId::new(id));
            } else if let Some(r) = GraphRef::read(item) {
                out.upserts.push((r.id, r.etag));
            }
        }
        let (l, last) = match (page.delta_link, page.next_link) {
            (Some(delta), _) => (delta, true),
            (None, Some(next)) => (next, false),
            (None, None) => {
                return Err(SideError::new(
                    SideErrorKind::Transient,
                    "Graph: a contacts delta page without a next or delta link",
                ))
            }
        };
        out.cursor = GraphCursor::Contacts { f: folder, l }.encode();
        out.last = last;
        Ok(out)
    }

    /// The page at `url` of the folder's contacts delta, read in one `$batch` with the look at
    /// where the folder stands (`standing`, as last seen). The page's own failure comes back
    /// as the page; a folder out of the user's contact folders comes back as where it went.
    async fn page_checking(
        &self,
        user: &UserKey,
        folder: &str,
        standing: &Standing,
        url: &str,
    ) -> SideResult<Result<Result<exsync_graph::Page, GraphFailure>, Place>> {
        let path = Self::user_path(user);
        let relative = self
            .client
            .relative(url)
            .map_err(|e| self.error(user, &e))?;
        let mut page = BatchRequest::new("page", Method::GET, relative);
        page.headers = self.page_headers();
        let mut requests = place::confirm_requests(&path, folder, standing);
        requests.push(page);
        let replies = self.batch(user, requests).await?;
        let (looks, mut rest): (Vec<_>, Vec<_>) =
            replies.into_iter().partition(place::is_confirmation);
        let page = rest.pop().ok_or_else(|| {
            SideError::new(SideErrorKind::Transient, "Graph: the $batch gave no page")
        })?;
        let place = match place::confirmed(looks, standing).map_err(|e| self.error(user, &e))? {
            Some(place) => place,
            None => climb(&self.client, &path, folder, &standing.root)
                .await
                .map_err(|e| self.error(user, &e))?,
        };
        match place {
            Place::Home(standing) => {
                locked(&self.standings).insert(user.clone(), standing);
                Ok(Ok(exsync_graph::Page::from_reply(page)))
            }
            away => Ok(Err(away)),
        }
    }

    async fn events_page(&self, user: &UserKey, cursor: Option<&str>) -> SideResult<MailboxPage> {
        let current = self.window_of(user);
        let (mut position, mut restarted) = match cursor {
            // A first listing: the window's current state is every item there is to sync.
            None => (
                GraphCursor::Events {
                    w: current,
                    l: String::new(),
                    m: Vec::new(),
                },
                false,
            ),
            Some(stored) => match GraphCursor::decode(stored) {
                Some(c @ (GraphCursor::Events { .. } | GraphCursor::AllEvents { .. })) => {
                    (c, false)
                }
                _ => (
                    GraphCursor::AllEvents {
                        w: current,
                        l: String::new(),
                        m: Vec::new(),
                    },
                    true,
                ),
            },
        };
        loop {
            match position {
                GraphCursor::AllEvents { w, l, m } => {
                    return self.all_events_page(user, w, &l, m, restarted).await;
                }
                GraphCursor::Events { w, l, m } => {
                    let url = if l.is_empty() {
                        format!(
                            "{}/calendarView/delta?startDateTime={}&endDateTime={}",
                            Self::user_path(user),
                            enc(&format!("{}T00:00:00Z", w.from)),
                            enc(&format!("{}T00:00:00Z", w.to)),
                        )
                    } else {
                        l.clone()
                    };
                    let page = match self.client.page(&url, &self.page_headers()).await {
                        Ok(page) => page,
                        Err(e) if e.is_sync_state_lost() && !l.is_empty() => {
                            tracing::warn!(user = %user, error = %e, "Graph no longer knows the events delta token; listing the calendar from the start.");
                            restarted = true;
                            position = GraphCursor::AllEvents {
                                w: current,
                                l: String::new(),
                                m: Vec::new(),
                            };
                            continue;
                        }
                        Err(e) => return Err(self.error(user, &e)),
                    };
                    let mut masters: BTreeSet<String> = m.into_iter().collect();
                    let mut out = self.event_changes(user, &page.items, &mut masters).await?;
                    out.restarted = restarted;
                    let m = kept_masters(masters);
                    match (page.delta_link, page.next_link) {
                        // The round of a window that has moved since is over: what changed in
                        // it was reported, and the new window's round starts now. Nothing that
                        // left the window counts as deleted, as the pass applies the window.
                        // Its first listing names every series in the new window again.
                        (Some(_), _) if w != current => {
                            out.cursor = GraphCursor::Events {
                                w: current,
                                l: String::new(),
                                m: Vec::new(),
                            }
                            .encode();
                            out.last = false;
                        }
                        (Some(delta), _) => {
                            out.cursor = GraphCursor::Events { w, l: delta, m }.encode();
                            out.last = true;
                        }
                        (None, Some(next)) => {
                            out.cursor = GraphCursor::Events { w, l: next, m }.encode();
                            out.last = false;
                        }
                        (None, None) => {
                            return Err(SideError::new(
                                SideErrorKind::Transient,
                                "Graph: a calendarView delta page without a next or delta link",
                            ))
                        }
                    }
                    return Ok(out);
                }
                GraphCursor::Contacts { .. } => {
                    restarted = true;
                    position = GraphCursor::AllEvents {
                        w: current,
                        l: String::new(),
                        m: Vec::new(),
                    };
                }
            }
        }
    }

    /// One page of every single event and series master of the calendar (ids and ETags),
    /// listed when a delta token was lost: calendarView covers only the window, and a synced
    /// event outside it must not be taken for deleted. The window's delta follows.
    async fn all_events_page(
        &self,
        user: &UserKey,
        w: ViewWindow,
        link: &str,
        m: Vec<String>,
        restarted: bool,
    ) -> SideResult<MailboxPage> {
        let url = if link.is_empty() {
            format!(
                "{}/calendar/events?$select=id,changeKey,type",
                Self::user_path(user)
            )
        } else {
            link.to_owned()
        };
        let page = self
            .client
            .page(&url, &self.page_headers())
            .await
            .map_err(|e| self.error(user, &e))?;
        let mut out = MailboxPage {
            restarted,
            ..MailboxPage::default()
        };
        let mut masters: BTreeSet<String> = m.into_iter().collect();
        for item in &page.items {
            if is_instance(item) {
                continue;
            }
            if let Some(r) = GraphRef::read(item) {
                if is_master(item) {
                    masters.insert(r.id.to_string());
                }
                out.upserts.push((r.id, r.etag));
            }
        }
        let m = kept_masters(masters);
        out.cursor = match page.next_link {
            Some(next) => GraphCursor::AllEvents { w, l: next, m },
            None => GraphCursor::Events {
                w,
                l: String::new(),
                m,
            },
        }
        .encode();
        out.last = false;
        Ok(out)
    }

    /// What one calendarView delta page says, in series masters: occurrences and exceptions
    /// stand for their master (read for its ETag), and a removed id is checked, since Graph
    /// also reports as removed an event changed outside the window, and a cancelled
    /// occurrence only by its own id.
    ///
    /// `masters` are the series the cursor has seen (updated here). A removed id found gone
    /// that this process cannot tie to a master may be an occurrence of a series deleted or
    /// changed since the process started, so every one of them is read again: one request per
    /// 20 series, only on a page that reports such an id.
    async fn event_changes(
        &self,
        user: &UserKey,
        items: &[Value],
        masters: &mut BTreeSet<String>,
    ) -> SideResult<MailboxPage> {
        let mut upserts: BTreeMap<String, String> = BTreeMap::new();
        let mut check: BTreeSet<String> = BTreeSet::new();
        // Removed ids this process has not seen as occurrences.
        let mut unmapped: BTreeSet<String> = BTreeSet::new();
        {
            let mut occurrences = locked(&self.occurrences);
            let seen = occurrences.entry(user.clone()).or_default();
            for item in items {
                let Some(id) = item.get("id").and_then(Value::as_str) else {
                    continue;
                };
                if item.get("@removed").is_some() {
                    match seen.get(id) {
                        Some(master) => check.insert(master.clone()),
                        None => {
                            unmapped.insert(id.to_owned());
                            check.insert(id.to_owned())
                        }
                    };
                } else if is_instance(item) {
                    if let Some(master) = master_of(item) {
                        seen.insert(id.to_owned(), master.to_owned());
                        masters.insert(master.to_owned());
                        check.insert(master.to_owned());
                    }
                } else if let Some(r) = GraphRef::read(item) {
                    upserts.insert(r.id.to_string(), r.etag);
                }
            }
        }
        let mut deleted = BTreeSet::new();
        // Up to three rounds: an id found to be an occurrence still names its master to read,
        // and an unmapped id found gone sends the known masters to be read.
        for round in 0..3 {
            if round > 0 && unmapped.iter().any(|id| deleted.contains(id)) {
                unmapped.clear();
                check.extend(masters.iter().filter(|id| !deleted.contains(*id)).cloned());
            }
            let ids: Vec<String> = std::mem::take(&mut check)
                .into_iter()
                .filter(|id| !upserts.contains_key(id))
                .collect();
            for chunk in ids.chunks(BATCH_MAX) {
                let requests = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, id)| {
                        BatchRequest::new(
                            i.to_string(),
                            Method::GET,
                            format!(
                                "{}?$select=id,changeKey,type,seriesMasterId",
                                Self::item_path(user, ItemKind::Event, id)
                            ),
                        )
                    })
                    .collect();
                let replies = self.batch(user, requests).await?;
                for (id, reply) in chunk.iter().zip(replies) {
                    self.mailbox_refused(user, &reply)?;
                    if reply.status == 404 {
                        deleted.insert(id.clone());
                    } else if !reply.is_success() {
                        // Unknown version: the pass fetches it, and learns what it is then.
                        upserts.insert(id.clone(), String::new());
                    } else if is_instance(&reply.body) {
                        if let Some(master) = master_of(&reply.body) {
                            masters.insert(master.to_owned());
                            check.insert(master.to_owned());
                        }
                    } else if let Some(r) = GraphRef::read(&reply.body) {
                        if is_master(&reply.body) {
                            masters.insert(r.id.to_string());
                        }
                        upserts.insert(r.id.to_string(), r.etag);
                    }
                }
            }
        }
        for id in &deleted {
            masters.remove(id);
        }
        Ok(MailboxPage {
            deleted: deleted
                .into_iter()
                .filter(|id| !upserts.contains_key(id))
                .map(ExchangeId::new)
                .collect(),
            upserts: upserts
                .into_iter()
                .map(|(id, etag)| (ExchangeId::new(id), etag))
                .collect(),
            ..MailboxPage::default()
        })
    }

    fn read_url(&self, user: &UserKey, kind: ItemKind, id: &str) -> String {
        let path = Self::item_path(user, kind, id);
        match kind {
            ItemKind::Contact => {
                let expand = if self
                    .tag_only_expand
                    .load(std::sync::atomic::Ordering::Relaxed)
                {
                    expand_properties(&[crm_id_property_id()])
                } else {
                    contact_expand()
                };
                format!("{path}?$select={CONTACT_SELECT}&$expand={}", enc(&expand))
            }
            ItemKind::Event => format!(
                "{path}?$select={EVENT_SELECT}&$expand=exceptionOccurrences,{}",
                enc(&event_expand())
            ),
        }
    }

    async fn read_items(
        &self,
        user: &UserKey,
        kind: ItemKind,
        ids: &[String],
    ) -> SideResult<Vec<BatchReply>> {
        let requests = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                BatchRequest::new(i.to_string(), Method::GET, self.read_url(user, kind, id))
                    .header("Prefer", PREFER_TEXT_BODY)
            })
            .collect();
        self.batch(user, requests).await
    }

    /// Reads a fetched item, with what had to be cut from it for the CRM to hold it; a series
    /// whose cancelled occurrences' ids do not name their dates has them worked out from its
    /// instances (see `series.rs`).
    async fn change_of(
        &self,
        user: &UserKey,
        kind: ItemKind,
        id: &str,
        body: &Value,
    ) -> OwnedChange {
        let invalid = |reason: String| {
            OwnedChange::new(
                None,
                Change::Invalid {
                    id: ItemId::Exchange(ExchangeId::new(id)),
                    reason,
                },
            )
        };
        let noted = |(change, notes)| OwnedChange {
            owner: None,
            change,
            notes,
        };
        if kind == ItemKind::Event {
            let unresolved = series::unresolved_cancellations(body, &locked(&self.cancelled));
            if !unresolved.is_empty() {
                return match series::resolve(self, user, id, body, &unresolved).await {
                    Ok(resolved) => series::item_change_with(body, &resolved)
                        .map_or_else(|| invalid("an event without an id".into()), noted),
                    Err(reason) => invalid(reason),
                };
            }
            let known = locked(&self.cancelled).clone();
            if !known.is_empty() {
                return series::item_change_with(body, &known)
                    .map_or_else(|| invalid("an event without an id".into()), noted);
            }
        }
        noted_item_change(kind, body).map_or_else(|| invalid("an item without an id".into()), noted)
    }

    async fn fetch_chunk(
        &self,
        user: &UserKey,
        kind: ItemKind,
        ids: &[String],
    ) -> SideResult<Vec<OwnedChange>> {
        let mut replies = self.read_items(user, kind, ids).await?;
        if kind == ItemKind::Contact
            && replies.iter().any(|r| {
                r.status == 400
                    && r.error().is_some_and(|e| {
                        e.message.to_ascii_lowercase().contains("extended property")
                    })
            })
            && !self
                .tag_only_expand
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(user = %user, "Graph refused the MAPI properties addressed by tag (fax, other and assistant numbers); contacts are read without them.");
            replies = self.read_items(user, kind, ids).await?;
        }
        let mut out = Vec::with_capacity(ids.len());
        for (id, reply) in ids.iter().zip(replies) {
            self.mailbox_refused(user, &reply)?;
            let item_id = ItemId::Exchange(ExchangeId::new(id.as_str()));
            if reply.status == 404 {
                out.push(OwnedChange::new(None, Change::Deleted { id: item_id }));
                continue;
            }
            match reply.error() {
                Some(e) if e.status == 429 || e.status >= 500 => {
                    return Err(self.error(user, &GraphFailure::Api(Box::new(e))));
                }
                Some(e) => out.push(OwnedChange::new(
                    None,
                    Change::Invalid {
                        id: item_id,
                        reason: format!("Graph could not read it: {e}"),
                    },
                )),
                None => out.push(self.change_of(user, kind, id, &reply.body).await),
            }
        }
        Ok(out)
    }

    /// The phone collections of the contacts whose numbers `writes` update, as they are now: a
    /// PATCH replaces a whole collection, and the second business and home numbers (which do
    /// not sync) must be written back rather than lost. One that cannot be read is written
    /// without them; its `If-Match` still guards against overwriting an edit.
    async fn current_phones(
        &self,
        user: &UserKey,
        kind: ItemKind,
        writes: &[Write<'_>],
    ) -> SideResult<HashMap<String, Value>> {
        if kind != ItemKind::Contact {
            return Ok(HashMap::new());
        }
        let ids: Vec<String> = writes
            .iter()
            .filter_map(|w| match w {
                Write::Update { id, changed, .. } if changed.iter().any(|c| c == "phones") => {
                    Some((*id).to_owned())
                }
                _ => None,
            })
            .collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let requests = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                BatchRequest::new(
                    i.to_string(),
                    Method::GET,
                    format!(
                        "{}?$select=id,businessPhones,homePhones",
                        Self::item_path(user, kind, id)
                    ),
                )
            })
            .collect();
        let replies = self.batch(user, requests).await?;
        Ok(ids
            .into_iter()
            .zip(replies)
            .filter(|(_, r)| r.is_success())
            .map(|(id, r)| (id, r.body))
            .collect())
    }

    /// The write requests for `writes`, and the results of those that cannot be sent.
    fn write_requests(
        &self,
        user: &UserKey,
        kind: ItemKind,
        folder: Option<&str>,
        writes: &[Write<'_>],
        phones: &HashMap<String, Value>,
    ) -> (Vec<BatchRequest>, Vec<Option<WriteResult>>) {
        let mut requests = Vec::new();
        let mut results: Vec<Option<WriteResult>> = vec![None; writes.len()];
        for (i, write) in writes.iter().enumerate() {
            let rid = i.to_string();
            let request = match write {
                Write::Create { fields, origin } => {
                    let crm_id = CrmId::new(origin.as_str());
                    let body = match kind {
                        ItemKind::Contact => {
                            Contact::from_fields(fields).map(|c| write_contact(&c, Some(&crm_id)))
                        }
                        ItemKind::Event => Event::from_fields(fields).map(|e| {
                            let mut body =
                                write_event_in(&e, Some(&crm_id), self.day_zone_of(user));
                            let tid = transaction_id(user, origin, &body);
                            if let Some(map) = body.as_object_mut() {
                                map.insert("transactionId".into(), Value::String(tid));
                            }
                            body
                        }),
                    };
                    let url = match (kind, folder) {
                        (ItemKind::Contact, Some(f)) => format!(
                            "{}/contactFolders/{}/contacts",
                            Self::user_path(user),
                            seg(f)
                        ),
                        (ItemKind::Contact, None) => {
                            format!("{}/contacts", Self::user_path(user))
                        }
                        (ItemKind::Event, _) => {
                            format!("{}/calendar/events", Self::user_path(user))
                        }
                    };
                    body.map(|b| BatchRequest::new(rid, Method::POST, url).json(b))
                        .map_err(|e| e.to_string())
                }
                Write::Update {
                    id,
                    fields,
                    changed,
                    expected_version,
                } => {
                    let patch = match kind {
                        ItemKind::Contact => Contact::from_fields(fields)
                            .map_err(|e| e.to_string())
                            .and_then(|c| match phones.get(*id) {
                                Some(current) => contact_updates_keeping(&c, changed, current),
                                None => contact_updates(&c, changed),
                            }),
                        ItemKind::Event => Event::from_fields(fields)
                            .map_err(|e| e.to_string())
                            .and_then(|e| event_updates_in(&e, changed, self.day_zone_of(user))),
                    };
                    patch.map(|p| {
                        let mut r =
                            BatchRequest::new(rid, Method::PATCH, Self::item_path(user, kind, id))
                                .json(Value::Object(p));
                        if let Some(etag) = expected_version.filter(|v| !v.is_empty()) {
                            r = r.header("If-Match", etag);
                        }
                        r
                    })
                }
                Write::Delete { id } => Ok(BatchRequest::new(
                    rid,
                    Method::DELETE,
                    Self::item_path(user, kind, id),
                )),
            };
            match request {
                Ok(r) => requests.push(r),
                Err(reason) => {
                    results[i] = Some(WriteResult::Failed {
                        reason: format!("not written: {reason}"),
                    })
                }
            }
        }
        (requests, results)
    }

    /// The result of one write from its reply.
    fn write_result(write: &Write<'_>, reply: &BatchReply) -> WriteResult {
        let done = |body: &Value, fallback: &str| {
            let r = GraphRef::read(body);
            WriteResult::Done {
                id: ItemId::Exchange(
                    r.as_ref()
                        .map_or_else(|| ExchangeId::new(fallback), |r| r.id.clone()),
                ),
                version: r.map(|r| r.etag).filter(|e| !e.is_empty()),
            }
        };
        match (write, reply.error()) {
            (Write::Delete { id }, None) => WriteResult::Done {
                id: ItemId::Exchange(ExchangeId::new(*id)),
                version: None,
            },
            (Write::Delete { id }, Some(e)) if e.is_not_found() => WriteResult::Done {
                id: ItemId::Exchange(ExchangeId::new(*id)),
                version: None,
            },
            (Write::Update { id, .. }, Some(e)) if e.is_stale_etag() => WriteResult::Failed {
                reason: stale_reason(id),
            },
            (Write::Update { id, .. }, None) => done(&reply.body, id),
            (Write::Create { .. }, None) => match GraphRef::read(&reply.body) {
                Some(_) => done(&reply.body, ""),
                None => WriteResult::Failed {
                    reason: "Graph created the item but did not answer its id".into(),
                },
            },
            (_, Some(e)) => WriteResult::Failed {
                reason: format!("Graph: {e}"),
            },
        }
    }
}

impl MailboxSide for GraphConnection {
    fn backend(&self, _user: &UserKey) -> Backend {
        Backend::Graph
    }

    fn uses_exchange_account(&self, _user: &UserKey) -> bool {
        false
    }

    fn write_batch(&self, _user: &UserKey) -> usize {
        BATCH_MAX
    }

    fn requests_at_once(&self, _user: &UserKey) -> usize {
        self.client.requests_per_mailbox()
    }

    async fn prepare(&self, user: &UserKey) -> SideResult<()> {
        let (_, made) = self
            .contact_folder(user)
            .await?
            .ok_or_else(SideError::no_sync_folder)?;
        if made {
            locked(&self.made).insert(user.clone());
        }
        Ok(())
    }

    fn take_notices(&self, user: &UserKey) -> Vec<Notice> {
        locked(&self.notices).remove(user).unwrap_or_default()
    }

    fn day_zone(&self, user: &UserKey, zone: DayZone) {
        locked(&self.day_zones).insert(user.clone(), zone);
    }

    fn dry_run(&self, user: &UserKey, dry_run: bool) {
        let mut dry = locked(&self.dry);
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
        let id = graph_id(&folder.0);
        if locked(&self.folders).get(user) != Some(&id) {
            locked(&self.folders).remove(user);
        }
        // A pass begins: its first contacts read looks at where the folder stands.
        locked(&self.due).insert(user.clone());
        locked(&self.hints).insert(user.clone(), (id, folder.1.clone()));
    }

    async fn changes_page(
        &self,
        user: &UserKey,
        kind: ItemKind,
        cursor: Option<&str>,
    ) -> SideResult<MailboxPage> {
        let page = match kind {
            ItemKind::Contact => self.contacts_page(user, cursor).await?,
            ItemKind::Event => self.events_page(user, cursor).await?,
        };
        Ok(ews_page(page))
    }

    async fn fetch(
        &self,
        user: &UserKey,
        kind: ItemKind,
        ids: &[ExchangeId],
    ) -> SideResult<Vec<OwnedChange>> {
        let ids: Vec<String> = ids.iter().map(|id| graph_id(id.as_str())).collect();
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH_MAX) {
            let changes = self.fetch_chunk(user, kind, chunk).await?;
            out.extend(changes.into_iter().map(|mut owned| {
                owned.change = ews_change(owned.change);
                owned
            }));
        }
        Ok(out)
    }

    async fn write(
        &self,
        user: &UserKey,
        kind: ItemKind,
        writes: &[Write<'_>],
    ) -> SideResult<Vec<WriteResult>> {
        let folder = match kind {
            ItemKind::Contact => Some(self.existing_contact_folder(user).await?),
            ItemKind::Event => None,
        };
        // Written to, the folder is no longer known to be empty.
        locked(&self.made).remove(user);
        // The pass names items in EWS's form (see `ews_id`); Graph's paths take its own.
        let ids: Vec<Option<String>> = writes
            .iter()
            .map(|w| match w {
                Write::Update { id, .. } | Write::Delete { id } => Some(graph_id(id)),
                Write::Create { .. } => None,
            })
            .collect();
        let writes: Vec<Write<'_>> = writes
            .iter()
            .zip(&ids)
            .map(|(w, id)| match (w, id) {
                (
                    Write::Update {
                        fields,
                        changed,
                        expected_version,
                        ..
                    },
                    Some(id),
                ) => Write::Update {
                    id,
                    fields,
                    changed,
                    expected_version: *expected_version,
                },
                (Write::Delete { .. }, Some(id)) => Write::Delete { id },
                (w, _) => w.clone(),
            })
            .collect();
        let mut results = Vec::with_capacity(writes.len());
        for chunk in writes.chunks(BATCH_MAX) {
            let (requests, mut chunk_results) = self.write_requests(
                user,
                kind,
                folder.as_deref(),
                chunk,
                &self.current_phones(user, kind, chunk).await?,
            );
            let sent: Vec<usize> = requests
                .iter()
                .filter_map(|r| r.id.parse::<usize>().ok())
                .collect();
            let replies = if requests.is_empty() {
                Vec::new()
            } else {
                self.batch(user, requests.clone()).await?
            };
            for ((i, reply), request) in sent.into_iter().zip(&replies).zip(&requests) {
                self.mailbox_refused(user, reply)?;
                let Some(write) = chunk.get(i) else { continue };
                let mut result = Self::write_result(write, reply);
                if kind == ItemKind::Event
                    && matches!(write, Write::Create { .. })
                    && matches!(reply.status, 429 | 500..=599)
                {
                    // The create may or may not have been made; its transactionId makes sending
                    // it again safe: Graph answers the first event if there is one.
                    result = self.create_again(request).await;
                }
                if let Some(slot) = chunk_results.get_mut(i) {
                    *slot = Some(result);
                }
            }
            if kind == ItemKind::Event {
                self.write_series_exceptions(user, chunk, &mut chunk_results)
                    .await;
            }
            results.extend(chunk_results.into_iter().map(|r| match r {
                Some(WriteResult::Done { id, version }) => WriteResult::Done {
                    id: ews_item(id),
                    version,
                },
                Some(failed) => failed,
                None => WriteResult::Failed {
                    reason: "not written".into(),
                },
            }));
        }
        Ok(results)
    }

    /// Searches by tag the kind's folder (contacts: our folder; events: the calendar) for items
    /// created at or after `since`. Graph cannot search Deleted Items for contacts and events,
    /// so an origin with no copy found is [`CopyEvidence::Unknown`].
    async fn find_copies(
        &self,
        user: &UserKey,
        kind: ItemKind,
        origins: &[ItemId],
        since: DateTime<Utc>,
    ) -> SideResult<Vec<CopyEvidence>> {
        let crm_ids = crm_origins(origins);
        let collection = match kind {
            ItemKind::Contact => {
                let folder = self.existing_contact_folder(user).await?;
                format!(
                    "{}/contactFolders/{}/contacts",
                    Self::user_path(user),
                    seg(&folder)
                )
            }
            ItemKind::Event => format!("{}/calendar/events", Self::user_path(user)),
        };
        let since = since.trunc_subsecs(0);
        let mut first: HashMap<CrmId, String> = HashMap::new();
        for chunk in crm_ids.chunks(BATCH_MAX) {
            let requests = chunk
                .iter()
                .enumerate()
                .map(|(i, crm_id)| {
                    BatchRequest::new(
                        i.to_string(),
                        Method::GET,
                        format!(
                            "{collection}?$filter={}&$select=id,createdDateTime&$top=50",
                            enc(&tag_filter(crm_id))
                        ),
                    )
                })
                .collect();
            let replies = self.batch(user, requests).await?;
            for (crm_id, reply) in chunk.iter().zip(replies) {
                self.mailbox_refused(user, &reply)?;
                let Some(items) = reply.body.get("value").and_then(Value::as_array) else {
                    tracing::warn!(user = %user, %kind, status = reply.status, "Graph refused to search by tag; the copy stays unknown");
                    continue;
                };
                let mut found: Vec<(DateTime<Utc>, String)> = items
                    .iter()
                    .filter_map(|item| {
                        let created = item
                            .get("createdDateTime")
                            .and_then(Value::as_str)
                            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())?
                            .with_timezone(&Utc);
                        let id = item.get("id").and_then(Value::as_str)?;
                        (created >= since).then(|| (created, id.to_owned()))
                    })
                    .collect();
                found.sort();
                if let Some((_, id)) = found.into_iter().next() {
                    first.insert(crm_id.clone(), id);
                }
            }
        }
        let ids: Vec<String> = first.values().cloned().collect();
        let mut current: HashMap<String, Change> = HashMap::new();
        for chunk in ids.chunks(BATCH_MAX) {
            for (id, read) in chunk.iter().zip(self.fetch_chunk(user, kind, chunk).await?) {
                current.insert(id.clone(), read.change);
            }
        }
        Ok(origins
            .iter()
            .map(|origin| {
                let ItemId::Crm(crm_id) = origin else {
                    return CopyEvidence::Unknown;
                };
                match first.get(crm_id).and_then(|id| current.get(id)) {
                    Some(change @ Change::Upsert(_)) => {
                        CopyEvidence::Present(ews_change(change.clone()))
                    }
                    Some(Change::Deleted { id }) => CopyEvidence::Deleted(ews_item(id.clone())),
                    _ => CopyEvidence::Unknown,
                }
            })
            .collect())
    }
}

impl GraphConnection {
    /// Writes the exceptions of the series among a chunk's writes that were made, all
    /// together (`series::write_exceptions`), and gives each its master's version afterwards.
    async fn write_series_exceptions(
        &self,
        user: &UserKey,
        chunk: &[Write<'_>],
        results: &mut [Option<WriteResult>],
    ) {
        let masters: Vec<(usize, ExchangeId)> = results
            .iter()
            .enumerate()
            .filter_map(|(i, result)| match result {
                Some(WriteResult::Done {
                    id: ItemId::Exchange(id),
                    ..
                }) => Some((i, id.clone())),
                _ => None,
            })
            .collect();
        let written: Vec<(&Write<'_>, &ExchangeId)> = masters
            .iter()
            .filter_map(|(i, id)| Some((chunk.get(*i)?, id)))
            .collect();
        let versions = series::write_exceptions(self, user, &written).await;
        for ((i, _), version) in masters.iter().zip(versions) {
            if let (Some(v), Some(Some(WriteResult::Done { version: slot, .. }))) =
                (version, results.get_mut(*i))
            {
                *slot = v;
            }
        }
    }

    /// Sends an event create once more, alone, after Graph failed it in a batch.
    async fn create_again(&self, request: &BatchRequest) -> WriteResult {
        let mut again = exsync_graph::GraphRequest::new(Method::POST, request.url.clone())
            .idempotency(exsync_graph::Idempotency::Safe);
        if let Some(body) = &request.body {
            again = again.json(body.clone());
        }
        match self.client.send(again).await {
            Ok(reply) => match GraphRef::read(&reply.body) {
                Some(r) => WriteResult::Done {
                    id: ItemId::Exchange(r.id),
                    version: Some(r.etag).filter(|e| !e.is_empty()),
                },
                None => WriteResult::Failed {
                    reason: "Graph created the event but did not answer its id".into(),
                },
            },
            Err(e) => WriteResult::Failed {
                reason: format!("Graph: {e}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_path_segments_and_transaction_ids() {
        assert_eq!(seg("AAMk/a+b="), "AAMk%2Fa%2Bb%3D");
        assert_eq!(seg("user1@contoso.test"), "user1@contoso.test");
        let user = UserKey::parse("a@contoso.test").unwrap_or_else(|_| unreachable!());
        let origin = ItemId::Crm(CrmId::new("00U1"));
        let body = json!({"subject": "x"});
        let one = transaction_id(&user, &origin, &body);
        assert_eq!(one, transaction_id(&user, &origin, &body));
        assert_ne!(
            one,
            transaction_id(&user, &origin, &json!({"subject": "y"}))
        );
        assert_eq!(one.len(), "exsync-".len() + 32);
    }

    #[test]
    fn graph_ids_are_answered_in_the_form_ews_uses() {
        let rest = "AAMkADO4JVz_wz9ytC-k=";
        assert_eq!(ews_id(rest), "AAMkADO4JVz+wz9ytC/k=");
        assert_eq!(graph_id(&ews_id(rest)), rest);
        let page = ews_page(MailboxPage {
            upserts: vec![(ExchangeId::new("a-b"), "v".into())],
            deleted: vec![ExchangeId::new("c_d")],
            folder: Some(("f-g".into(), String::new())),
            ..MailboxPage::default()
        });
        assert_eq!(page.upserts[0].0.as_str(), "a/b");
        assert_eq!(page.deleted[0].as_str(), "c+d");
        assert_eq!(page.folder.map(|f| f.0).as_deref(), Some("f/g"));
    }

    #[test]
    fn graph_scope_remedy_names_the_commands() {
        let text = scope_remedy("app-1", "a@contoso.test");
        assert!(text.contains(
            "Test-ServicePrincipalAuthorization -Identity app-1 -Resource a@contoso.test"
        ));
        assert!(text.contains(
            "New-ManagementRoleAssignment -App app-1 -Role \"Application Contacts.ReadWrite\" -CustomResourceScope <scope>"
        ));
    }
}
