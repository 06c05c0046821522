//! The connector as the sync engine uses it: one [`EwsClient`] per service account, and a
//! [`MailboxClient`] per syncing user with the operations the sync needs.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use url::Url;

use exsync_core::plan::{Change, Item};
use exsync_core::zones::DayZone;
use exsync_core::{Contact, CrmId, Event, ExchangeId, Fields, ItemId, ItemKind, Record};

use crate::error::{classify, CodeClass, EwsError, ResponseError};
use crate::mapping::{self, ItemRef};
use crate::ops::{folders, items, sync, FolderRef, ItemResult, SearchFolder};
use crate::soap::{self, CallContext};
use crate::throttle::{Limits, RetryPolicy};
use crate::trace::WireTrace;
use crate::transport::auth::{AuthMode, Credentials};
use crate::transport::conn::Resolve;
use crate::transport::{HttpClient, HttpConfig};
use crate::xml::{Element, XmlWriter};

/// Pages one FindItem by tag reads at most per group of tags: far more than tagged items can
/// fill, so reaching it means a server that keeps saying there is more.
const MAX_FIND_PAGES: u32 = 100;

/// How many times a batch write sends the items Exchange stopped before (ErrorBatchProcessingStopped).
const MAX_ROUNDS: u32 = 3;

/// How the connector reaches Exchange and how hard it may push it.
#[derive(Debug, Clone)]
pub struct EwsConfig {
    /// The service account that impersonates each mailbox.
    pub credentials: Credentials,
    /// Which authentication scheme to use (or let the server's offer decide).
    pub auth: AuthMode,
    /// The Kerberos login, when a realm is configured (`auto` then prefers Kerberos).
    pub kerberos: Option<crate::KerberosLogin>,
    /// Extra trusted CA certificates (PEM), for a company CA outside the system roots.
    pub ca_file: Option<PathBuf>,
    /// Fixed addresses for hosts DNS must not be asked about (split DNS, tests).
    pub resolve: Resolve,
    /// Name of our contact folder under each user's Contacts.
    pub contacts_folder: String,
    /// Requests in flight for the whole service account (Exchange allows 27 by default).
    pub max_concurrency: usize,
    /// Requests in flight per mailbox.
    pub max_per_mailbox: usize,
    /// When other processes send for the same service account: this process's share of its
    /// requests in flight, granted from outside; every request waits for a granted one.
    pub share: Option<crate::AccountShare>,
    /// How transient failures and throttling are retried.
    pub retry: RetryPolicy,
    /// Items per GetItem, CreateItem, UpdateItem or DeleteItem request.
    pub batch_size: usize,
    /// Changes per SyncFolderItems page.
    pub sync_page_size: u16,
    /// Where to write the wire trace (secrets redacted); none when unset.
    pub trace_dir: Option<PathBuf>,
    /// How long a TCP and TLS connect may take.
    pub connect_timeout: Duration,
    /// The whole of one request: connecting, authenticating and reading the complete reply.
    pub request_timeout: Duration,
    /// The largest reply read (64 MiB by default: no genuine EWS reply comes near it).
    pub max_reply_bytes: u64,
    /// Told of every request and every wait the server asked for (metrics).
    pub observer: Option<exsync_core::observe::Observer>,
}

impl EwsConfig {
    /// The defaults for `credentials`: automatic scheme, our contact folder name, moderate concurrency.
    pub fn new(credentials: Credentials) -> Self {
        EwsConfig {
            credentials,
            auth: AuthMode::Auto,
            kerberos: None,
            ca_file: None,
            resolve: Resolve::new(),
            contacts_folder: "Salesforce_Sync".into(),
            max_concurrency: 10,
            max_per_mailbox: 2,
            share: None,
            retry: RetryPolicy::default(),
            batch_size: items::BATCH,
            sync_page_size: sync::MAX_CHANGES,
            trace_dir: None,
            connect_timeout: Duration::from_secs(15),
            request_timeout: Duration::from_secs(120),
            max_reply_bytes: crate::transport::conn::DEFAULT_MAX_REPLY_BYTES,
            observer: None,
        }
    }
}

/// The connector for one service account: connections, scheme pins and throttling shared by all its mailboxes.
pub struct EwsClient {
    http: Arc<HttpClient>,
    config: EwsConfig,
    limits: Limits,
    trace: Option<WireTrace>,
    /// The `ServerVersionInfo` of the last answer that carried one.
    server_version: std::sync::Mutex<Option<String>>,
}

/// Whether repeating a request can do harm if the first one reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Idempotent {
    Yes,
    /// Repeat only on answers that say the request was not processed (busy, 503).
    No,
}

impl EwsClient {
    /// A client for `config`; fails only on a bad CA file or trace folder, without contacting the server.
    pub fn new(config: EwsConfig) -> Result<Arc<Self>, EwsError> {
        let http = Arc::new(HttpClient::new(HttpConfig {
            credentials: config.credentials.clone(),
            auth: config.auth,
            kerberos: config.kerberos.clone(),
            ca_file: config.ca_file.clone(),
            resolve: config.resolve.clone(),
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
            max_reply_bytes: config.max_reply_bytes,
        })?);
        let trace = match &config.trace_dir {
            Some(dir) => Some(WireTrace::new(dir).map_err(|e| {
                EwsError::InvalidInput(format!("wire trace folder {}: {e}", dir.display()))
            })?),
            None => None,
        };
        Ok(Arc::new(EwsClient {
            http,
            limits: Limits::new(
                config.max_concurrency,
                config.max_per_mailbox,
                config.share.clone(),
            ),
            config,
            trace,
            server_version: std::sync::Mutex::new(None),
        }))
    }

    /// The Exchange version the server last reported (`ServerVersionInfo`), such as
    /// `15.2.1544.4 (V2017_07_11)`; `None` before any answer carried it.
    pub fn server_version(&self) -> Option<String> {
        self.server_version
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The HTTPS client (shared with Autodiscover, so scheme pins hold across both).
    pub fn http(&self) -> &Arc<HttpClient> {
        &self.http
    }

    /// The configuration it was built with, e.g. for the folder name in messages.
    pub fn config(&self) -> &EwsConfig {
        &self.config
    }

    /// The operations for one mailbox at an EWS URL (configured, or found by Autodiscover).
    pub fn mailbox(self: &Arc<Self>, address: &str, ews_url: Url) -> MailboxClient {
        MailboxClient {
            client: Arc::clone(self),
            address: address.trim().to_owned(),
            url: ews_url,
            day_zone: DayZone::UTC,
        }
    }

    async fn call_once(
        &self,
        url: &Url,
        mailbox: &str,
        operation: &'static str,
        body: &str,
    ) -> Result<Element, EwsError> {
        let host = url.host_str().unwrap_or("").to_owned();
        let envelope = soap::envelope(mailbox, body);
        let headers = [("X-AnchorMailbox", mailbox.to_owned())];
        let result = {
            let _permit = self.limits.acquire(mailbox).await;
            self.http.post(url, &envelope, &headers).await
        };
        if let Some(trace) = &self.trace {
            let (status, text) = match &result {
                Ok(r) => (Some(r.status), Some(r.text())),
                Err(_) => (None, None),
            };
            trace.record(
                operation,
                url.as_str(),
                &headers,
                &envelope,
                status,
                text.as_deref(),
            );
        }
        let response = result?;
        let ctx = CallContext {
            host: &host,
            service_account: &self.config.credentials.username,
            mailbox,
            operation,
        };
        match response.status {
            // Exchange sends SOAP faults with 500.
            200 | 500 if looks_like_soap(&response.body) => {
                soap::parse_envelope(&ctx, &response.text()).map(|(body, version)| {
                    if let Some(version) = version {
                        *self
                            .server_version
                            .lock()
                            .unwrap_or_else(|p| p.into_inner()) = Some(version);
                    }
                    body
                })
            }
            503 => Err(EwsError::Http {
                host,
                status: 503,
                excerpt: excerpt(&response.text()),
                retry_after: retry_after(&response.headers),
            }),
            status => Err(EwsError::Http {
                host,
                status,
                excerpt: excerpt(&response.text()),
                retry_after: retry_after(&response.headers),
            }),
        }
    }

    /// One EWS call with throttling, retries and tracing; returns the operation's response
    /// element.
    async fn call(
        &self,
        url: &Url,
        mailbox: &str,
        operation: &'static str,
        body: &str,
        idempotent: Idempotent,
    ) -> Result<Element, EwsError> {
        let policy = &self.config.retry;
        let mut attempt = 0;
        loop {
            let result = self.call_once(url, mailbox, operation, body).await;
            if let Some(observer) = &self.config.observer {
                let outcome = match &result {
                    Ok(_) => "ok",
                    Err(EwsError::Throttled { .. }) => "throttled",
                    Err(EwsError::Http { status: 503, .. }) => "http_503",
                    Err(EwsError::Connect { .. }) => "connection",
                    Err(EwsError::Timeout { .. }) => "timeout",
                    Err(EwsError::ReplyTooLarge { .. }) => "too_large",
                    Err(EwsError::Xml(_) | EwsError::Protocol { .. }) => "malformed",
                    Err(_) => "error",
                };
                observer.0.request("exchange", operation, outcome);
            }
            let error = match result {
                Ok(response) => return Ok(response),
                Err(e) => e,
            };
            let server_said_wait = matches!(error, EwsError::Throttled { .. })
                || matches!(error, EwsError::Http { status: 503, .. });
            // A server that let a whole request timeout pass, or answered with more than any
            // genuine reply holds, would most likely do it again: asking at once would cost
            // another full timeout (or download) per attempt. The next pass tries again.
            let stalled = matches!(
                error,
                EwsError::Timeout { .. } | EwsError::ReplyTooLarge { .. }
            );
            let retryable = match idempotent {
                _ if stalled => false,
                Idempotent::Yes => error.is_transient() || matches!(error, EwsError::Xml(_)),
                Idempotent::No => server_said_wait,
            };
            attempt += 1;
            if !retryable || attempt >= policy.max_attempts.max(1) {
                return Err(error);
            }
            let wait = match error.back_off() {
                Some(wait) if wait > policy.max_wait => {
                    tracing::warn!(
                        mailbox,
                        operation,
                        wait_ms = wait.as_millis() as u64,
                        "server asks for a longer pause than we wait"
                    );
                    return Err(error);
                }
                Some(wait) => policy.spread(wait),
                None => policy.delay(attempt - 1),
            };
            tracing::info!(mailbox, operation, attempt, wait_ms = wait.as_millis() as u64, error = %error, "retrying");
            if server_said_wait {
                if let Some(observer) = &self.config.observer {
                    observer.0.throttled("exchange", wait);
                }
                // Everyone on this account holds off, not just this request.
                self.limits.pause(wait);
                self.limits.wait_pause().await;
            } else {
                tokio::time::sleep(wait).await;
            }
        }
    }
}

fn looks_like_soap(body: &[u8]) -> bool {
    let head = String::from_utf8_lossy(&body[..body.len().min(512)]).to_ascii_lowercase();
    head.contains("envelope")
}

fn excerpt(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    flat.chars().take(200).collect()
}

fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// A page of changes with the cursor that covers exactly them.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncBatch {
    /// The created, updated and deleted items, fetched in full.
    pub changes: Vec<Change>,
    /// Items listed with the ChangeKey the caller already knew: unchanged, so not fetched.
    pub unchanged: Vec<ExchangeId>,
    /// Store this only after the changes are committed.
    pub state: String,
    /// No more changes after this page.
    pub last: bool,
    /// The stored state was refused and the cursor started over: these changes are a full
    /// listing of the folder.
    pub restarted: bool,
}

/// One page of a folder's changes, listed but not fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncListing {
    /// Created or updated items of the kind asked for, with their ChangeKey.
    pub upserts: Vec<ItemRef>,
    /// Items deleted since the previous state.
    pub deleted: Vec<ExchangeId>,
    /// Store this only after the changes are committed.
    pub state: String,
    /// No more changes after this page.
    pub last: bool,
}

/// Where a folder is now ([`MailboxClient::folder_place`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderPlace {
    /// Among the mailbox's folders, not deleted: the folder as it is now. A rename or a move
    /// changes its change key, not its id.
    Live(FolderRef),
    /// Deleted, but still there: in Deleted Items (itself or inside a deleted folder), or
    /// outside the folders a user sees (Recoverable Items).
    Deleted,
    /// The server no longer knows the folder: deleted for good.
    Gone,
}

impl FolderPlace {
    /// How a folder that is not live went away, for messages to the admin.
    pub fn how_deleted(&self) -> &'static str {
        match self {
            FolderPlace::Live(_) => "not deleted",
            FolderPlace::Deleted => "deleted into Deleted Items (or Recoverable Items)",
            FolderPlace::Gone => "deleted for good",
        }
    }
}

/// How many parents [`MailboxClient::folder_place`] climbs at most; folders nest far less.
const MAX_FOLDER_DEPTH: usize = 64;

/// Response codes that say a folder id names no folder (any more).
fn folder_gone(code: &str) -> bool {
    matches!(
        code,
        "ErrorFolderNotFound" | "ErrorItemNotFound" | "ErrorInvalidIdMalformed"
    )
}

/// One folder's answer to a search by tag ([`MailboxClient::find_tagged`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagSearch {
    /// The folder was searched: each item of the kind asked for that carries one of the
    /// tags, in the server's order (a tag may appear more than once).
    Searched(Vec<TaggedItem>),
    /// The server would not search the folder (it is gone, or closed to the service
    /// account): nothing is known of what it holds.
    Refused(ResponseError),
}

/// An item a search by tag found ([`TagSearch::Searched`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedItem {
    /// The tag it carries: the CRM id it was copied from.
    pub crm_id: CrmId,
    /// Its id and ChangeKey.
    pub item: ItemRef,
    /// When it was created (DateTimeCreated, kept when the item moves to a deleted-items
    /// folder), to the second as Exchange keeps it; `None` when the server sent none that
    /// reads as a date and time.
    pub created: Option<DateTime<Utc>>,
}

/// One requested update.
#[derive(Debug, Clone)]
pub struct Update {
    /// The item to change, with the ChangeKey the update was planned against.
    pub item: ItemRef,
    /// The pair's merged content.
    pub fields: Fields,
    /// The fields to write (the planner's `changed`).
    pub changed: Vec<String>,
}

/// The operations on one impersonated mailbox at its EWS URL.
pub struct MailboxClient {
    client: Arc<EwsClient>,
    address: String,
    url: Url,
    /// The owner's zone: all-day events are written as whole days in it.
    day_zone: DayZone,
}

impl MailboxClient {
    /// The same mailbox, writing all-day events as whole days in `zone` (the owner's).
    pub fn with_day_zone(mut self, zone: DayZone) -> Self {
        self.day_zone = zone;
        self
    }

    /// The mailbox's address, as impersonated.
    pub fn address(&self) -> &str {
        &self.address
    }

    async fn call(
        &self,
        operation: &'static str,
        body: &str,
        idempotent: Idempotent,
    ) -> Result<Element, EwsError> {
        self.client
            .call(&self.url, &self.address, operation, body, idempotent)
            .await
    }

    fn ctx(&self, operation: &'static str) -> (String, CallContext<'_>) {
        let host = self.url.host_str().unwrap_or("").to_owned();
        (
            host,
            CallContext {
                host: "",
                service_account: &self.client.config.credentials.username,
                mailbox: &self.address,
                operation,
            },
        )
    }

    async fn single(
        &self,
        operation: &'static str,
        body: &str,
        idempotent: Idempotent,
    ) -> Result<Element, EwsError> {
        let response = self.call(operation, body, idempotent).await?;
        let (host, mut ctx) = self.ctx(operation);
        ctx.host = &host;
        soap::single_message(&ctx, &response).cloned()
    }

    /// Per-message results of a batch call, with operation-wide failures (mailbox errors)
    /// surfacing as the error of the whole call.
    async fn batch(
        &self,
        operation: &'static str,
        body: &str,
        idempotent: Idempotent,
    ) -> Result<Vec<Element>, EwsError> {
        let response = self.call(operation, body, idempotent).await?;
        let (host, mut ctx) = self.ctx(operation);
        ctx.host = &host;
        let messages: Vec<Element> = soap::response_messages(&ctx, &response)?
            .into_iter()
            .cloned()
            .collect();
        // A mailbox-level error on the first message concerns them all (impersonation).
        if let Some(first) = messages.first() {
            if let Err(e) = soap::message_status(first) {
                if classify(&e.code) == CodeClass::Mailbox {
                    return Err(ctx.error(e));
                }
            }
        }
        Ok(messages)
    }

    fn protocol(&self, reason: impl Into<String>) -> EwsError {
        EwsError::Protocol {
            host: self.url.host_str().unwrap_or("").to_owned(),
            reason: reason.into(),
        }
    }

    /// The mailbox's primary calendar, whose events are synced.
    pub async fn calendar_folder(&self) -> Result<FolderRef, EwsError> {
        let message = self
            .single(
                "GetFolder",
                &folders::get_distinguished("calendar"),
                Idempotent::Yes,
            )
            .await?;
        folders::read_folder(&message).ok_or_else(|| self.protocol("GetFolder without a folder id"))
    }

    /// Our contact folder under Contacts, made the first time.
    pub async fn ensure_contacts_folder(&self) -> Result<FolderRef, EwsError> {
        Ok(self.create_contacts_folder().await?.0)
    }

    /// Our contact folder under Contacts, and whether this call made it (it then holds
    /// nothing yet, so there is nothing to list). CreateFolder goes first: a mailbox meets
    /// exsync once, and on that first contact the folder is usually missing, so looking for it
    /// first would cost a FindFolder per mailbox for nothing. When it exists already (Lightning
    /// Sync made it, another worker did, or a retried request), FindFolder finds it.
    pub async fn create_contacts_folder(&self) -> Result<(FolderRef, bool), EwsError> {
        let name = &self.client.config.contacts_folder;
        let created = self
            .single(
                "CreateFolder",
                &folders::create_contacts_folder("contacts", name),
                Idempotent::No,
            )
            .await;
        match created {
            Ok(message) => folders::read_folder(&message)
                .map(|folder| (folder, true))
                .ok_or_else(|| self.protocol("CreateFolder without a folder id")),
            Err(EwsError::Response { error, .. }) if error.code == "ErrorFolderExists" => self
                .find_contacts_folder(name)
                .await?
                .map(|folder| (folder, false))
                .ok_or_else(|| self.protocol(format!("{name} exists but cannot be found"))),
            Err(e) => Err(e),
        }
    }

    /// Where `folder` is now, by its id whatever its name: among the mailbox's folders (where
    /// its user may have renamed or moved it), deleted into Deleted Items, or gone. One
    /// GetFolder when it sits under Contacts or the top of the mailbox, one more per level
    /// deeper. When it cannot tell (a parent that vanished meanwhile, a very deep tree), the
    /// folder counts as live.
    pub async fn folder_place(&self, folder: &FolderRef) -> Result<FolderPlace, EwsError> {
        const ROLES: [&str; 3] = ["deleteditems", "msgfolderroot", "contacts"];
        let body = folders::get_with_parent(Some(folder), &ROLES);
        let messages = self.batch("GetFolder", &body, Idempotent::Yes).await?;
        let (host, mut ctx) = self.ctx("GetFolder");
        ctx.host = &host;
        let first = messages
            .first()
            .ok_or_else(|| self.protocol("GetFolder answered no message"))?;
        if let Err(e) = soap::message_status(first) {
            if folder_gone(&e.code) {
                return Ok(FolderPlace::Gone);
            }
            return Err(ctx.error(e));
        }
        let (current, mut parent) = folders::read_with_parent(first)
            .ok_or_else(|| self.protocol("GetFolder without a folder id"))?;
        let role = |i: usize| {
            messages
                .get(i + 1)
                .filter(|m| soap::message_status(m).is_ok())
                .and_then(folders::read_with_parent)
                .map(|(f, _)| f.id)
        };
        let bin = role(0).ok_or_else(|| self.protocol("GetFolder did not find Deleted Items"))?;
        let (top, contacts) = (role(1), role(2));
        for _ in 0..MAX_FOLDER_DEPTH {
            let Some(at) = parent else {
                // The mailbox's root, reached without passing the top of the folders a user
                // sees: the folder is in Recoverable Items or another system tree.
                return Ok(if top.is_some() {
                    FolderPlace::Deleted
                } else {
                    FolderPlace::Live(current)
                });
            };
            if at == bin {
                return Ok(FolderPlace::Deleted);
            }
            if Some(&at) == top.as_ref() || Some(&at) == contacts.as_ref() {
                return Ok(FolderPlace::Live(current));
            }
            let up = FolderRef {
                id: at,
                change_key: String::new(),
                distinguished: false,
            };
            let message = match self
                .single(
                    "GetFolder",
                    &folders::get_with_parent(Some(&up), &[]),
                    Idempotent::Yes,
                )
                .await
            {
                Ok(message) => message,
                Err(EwsError::Response { error, .. }) if folder_gone(&error.code) => {
                    return Ok(FolderPlace::Live(current))
                }
                Err(e) => return Err(e),
            };
            parent = folders::read_with_parent(&message)
                .ok_or_else(|| self.protocol("GetFolder without a folder id"))?
                .1;
        }
        Ok(FolderPlace::Live(current))
    }

    /// Our contact folder under Contacts if it is there, found by name; nothing is made (the
    /// connectivity check looks, the first pass creates).
    pub async fn existing_contacts_folder(&self) -> Result<Option<FolderRef>, EwsError> {
        let name = self.client.config.contacts_folder.clone();
        self.find_contacts_folder(&name).await
    }

    async fn find_contacts_folder(&self, name: &str) -> Result<Option<FolderRef>, EwsError> {
        let message = self
            .single(
                "FindFolder",
                &folders::find_child("contacts", name),
                Idempotent::Yes,
            )
            .await?;
        Ok(folders::read_found(&message, name))
    }

    /// One page of SyncFolderItems since `state` (None: from the beginning), listing what
    /// changed without fetching it: the caller decides which items it needs (see
    /// [`Self::get_changes`]). Items of other kinds in the folder are left out.
    pub async fn list_page(
        &self,
        kind: ItemKind,
        folder: &FolderRef,
        state: Option<&str>,
    ) -> Result<SyncListing, EwsError> {
        let body = sync::request(folder, state, self.client.config.sync_page_size);
        let message = self
            .single("SyncFolderItems", &body, Idempotent::Yes)
            .await?;
        let page = sync::read(&message).map_err(|e| self.protocol(e))?;
        let mut listing = SyncListing {
            upserts: Vec::new(),
            deleted: Vec::new(),
            state: page.state,
            last: page.last,
        };
        for change in page.changes {
            match change {
                sync::SyncChange::Deleted(id) => listing.deleted.push(id),
                sync::SyncChange::Upsert { item, element } => {
                    if element == mapping::element_name(kind) {
                        listing.upserts.push(item);
                    } else {
                        // Distribution lists in the contact folder, meeting messages…: not
                        // records we sync.
                        tracing::debug!(mailbox = %self.address, element, "ignoring an item of another kind");
                    }
                }
            }
        }
        Ok(listing)
    }

    /// One page of changes since `state` (None: from the beginning), with the content of
    /// every created or updated item fetched, except those whose ChangeKey is in `known`
    /// (listed as unchanged). The returned state covers exactly these changes.
    pub async fn sync_page(
        &self,
        kind: ItemKind,
        folder: &FolderRef,
        state: Option<&str>,
        known: &HashMap<ExchangeId, String>,
    ) -> Result<SyncBatch, EwsError> {
        let listing = self.list_page(kind, folder, state).await?;
        let mut changes: Vec<Change> = listing
            .deleted
            .into_iter()
            .map(|id| Change::Deleted {
                id: ItemId::Exchange(id),
            })
            .collect();
        let (unchanged, wanted): (Vec<ItemRef>, Vec<ItemRef>) = listing
            .upserts
            .into_iter()
            .partition(|item| known.get(&item.id) == Some(&item.change_key));
        let wanted: Vec<ExchangeId> = wanted.into_iter().map(|item| item.id).collect();
        changes.extend(self.get_changes(kind, &wanted).await?);
        Ok(SyncBatch {
            changes,
            unchanged: unchanged.into_iter().map(|item| item.id).collect(),
            state: listing.state,
            last: listing.last,
            restarted: false,
        })
    }

    /// Pages to the end. A state the server refuses (ErrorInvalidSyncStateData) restarts the
    /// cursor from empty, and the batch says so.
    pub async fn sync_all(
        &self,
        kind: ItemKind,
        folder: &FolderRef,
        state: Option<&str>,
    ) -> Result<SyncBatch, EwsError> {
        self.sync_all_known(kind, folder, state, &HashMap::new())
            .await
    }

    /// [`Self::sync_all`], skipping the fetch of items whose ChangeKey is in `known` (the
    /// versions the caller last synced or wrote).
    pub async fn sync_all_known(
        &self,
        kind: ItemKind,
        folder: &FolderRef,
        state: Option<&str>,
        known: &HashMap<ExchangeId, String>,
    ) -> Result<SyncBatch, EwsError> {
        let mut state = state.map(str::to_owned);
        let mut all = SyncBatch {
            changes: Vec::new(),
            unchanged: Vec::new(),
            state: state.clone().unwrap_or_default(),
            last: false,
            restarted: false,
        };
        loop {
            let page = match self.sync_page(kind, folder, state.as_deref(), known).await {
                Err(EwsError::InvalidSyncState) if !all.restarted => {
                    tracing::warn!(mailbox = %self.address, "sync state refused; starting the folder over");
                    all = SyncBatch {
                        changes: Vec::new(),
                        unchanged: Vec::new(),
                        state: String::new(),
                        last: false,
                        restarted: true,
                    };
                    state = None;
                    continue;
                }
                other => other?,
            };
            all.changes.extend(page.changes);
            all.unchanged.extend(page.unchanged);
            all.state = page.state.clone();
            state = Some(page.state);
            if page.last {
                all.last = true;
                return Ok(all);
            }
        }
    }

    /// GetItem in batches; an id that is gone reads as deleted.
    pub async fn get_changes(
        &self,
        kind: ItemKind,
        ids: &[ExchangeId],
    ) -> Result<Vec<Change>, EwsError> {
        let noted = self.get_noted_changes(kind, ids).await?;
        Ok(noted.into_iter().map(|(change, _)| change).collect())
    }

    /// [`Self::get_changes`], each with what had to be cut from the item for the CRM to hold
    /// it (see [`exsync_core::Contact::sanitize`]).
    pub async fn get_noted_changes(
        &self,
        kind: ItemKind,
        ids: &[ExchangeId],
    ) -> Result<Vec<(Change, Vec<String>)>, EwsError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(self.client.config.batch_size.max(1)) {
            let messages = self
                .batch("GetItem", &items::get_items(kind, chunk), Idempotent::Yes)
                .await?;
            let refs: Vec<&Element> = messages.iter().collect();
            let mut results = items::read_get_items(&refs);
            if kind == ItemKind::Event {
                self.add_occurrence_details(&mut results).await?;
            }
            for (id, result) in chunk.iter().zip(results) {
                match result {
                    Ok(element) => match mapping::noted_item_change(kind, &element) {
                        Some(noted) => out.push(noted),
                        None => out.push((
                            Change::Invalid {
                                id: ItemId::Exchange(id.clone()),
                                reason: "item without an ItemId".into(),
                            },
                            Vec::new(),
                        )),
                    },
                    Err(e) if classify(&e.code) == CodeClass::NotFound => out.push((
                        Change::Deleted {
                            id: ItemId::Exchange(id.clone()),
                        },
                        Vec::new(),
                    )),
                    Err(e) => out.push((
                        Change::Invalid {
                            id: ItemId::Exchange(id.clone()),
                            reason: e.to_string(),
                        },
                        Vec::new(),
                    )),
                }
            }
        }
        Ok(out)
    }

    /// A series lists its modified occurrences with times only; their own subject and
    /// location come from one more GetItem, and are added to each `Occurrence` element for
    /// the mapping to read.
    async fn add_occurrence_details(
        &self,
        results: &mut [crate::ops::ItemResult<Element>],
    ) -> Result<(), EwsError> {
        let occurrence_ids: Vec<ExchangeId> = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .filter_map(|el| el.child("ModifiedOccurrences"))
            .flat_map(|m| m.children_named("Occurrence"))
            .filter_map(|o| o.child("ItemId").and_then(|i| i.attr("Id")))
            .map(ExchangeId::new)
            .collect();
        if occurrence_ids.is_empty() {
            return Ok(());
        }
        let mut details: std::collections::HashMap<String, Element> = Default::default();
        for chunk in occurrence_ids.chunks(self.client.config.batch_size.max(1)) {
            let messages = self
                .batch(
                    "GetItem",
                    &items::get_occurrence_details(chunk),
                    Idempotent::Yes,
                )
                .await?;
            let refs: Vec<&Element> = messages.iter().collect();
            for (id, result) in chunk.iter().zip(items::read_get_items(&refs)) {
                if let Ok(element) = result {
                    details.insert(id.to_string(), element);
                }
            }
        }
        for element in results.iter_mut().filter_map(|r| r.as_mut().ok()) {
            for list in element
                .children
                .iter_mut()
                .filter(|c| c.name == "ModifiedOccurrences")
            {
                for occurrence in list.children.iter_mut() {
                    let id = occurrence
                        .child("ItemId")
                        .and_then(|i| i.attr("Id"))
                        .map(str::to_owned);
                    let Some(detail) = id.and_then(|id| details.get(&id)) else {
                        continue;
                    };
                    for name in ["Subject", "Location"] {
                        occurrence.children.push(Element::with_text(
                            name,
                            detail.child_text(name).unwrap_or(""),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads items into planner items (missing ones are left out).
    pub async fn get_items(
        &self,
        kind: ItemKind,
        ids: &[ExchangeId],
    ) -> Result<Vec<Item>, EwsError> {
        Ok(self
            .get_changes(kind, ids)
            .await?
            .into_iter()
            .filter_map(|c| match c {
                Change::Upsert(item) => Some(item),
                _ => None,
            })
            .collect())
    }

    fn write_record(
        &self,
        kind: ItemKind,
        fields: &Fields,
        crm_id: &CrmId,
    ) -> Result<String, String> {
        // Room for a typical contact's element, so most are written without growing.
        let mut w = XmlWriter::with_capacity(2048);
        match kind {
            ItemKind::Contact => {
                let c = Contact::from_fields(fields).map_err(|e| e.to_string())?;
                mapping::write_contact(&mut w, &c, Some(crm_id));
            }
            ItemKind::Event => {
                let e = Event::from_fields(fields).map_err(|e| e.to_string())?;
                mapping::write_event_in(&mut w, &e, Some(crm_id), self.day_zone);
            }
        }
        Ok(w.finish())
    }

    /// Creates items in `folder`, each tagged with its CRM id. Results are in input order.
    /// When a batch's fate is unknown (the connection broke after sending), the items are
    /// looked up by their tag before anything is created again, so a retry never duplicates.
    pub async fn create(
        &self,
        kind: ItemKind,
        folder: &FolderRef,
        records: &[(CrmId, impl Borrow<Fields>)],
    ) -> Result<Vec<Result<ItemRef, EwsError>>, EwsError> {
        let mut results: Vec<Option<Result<ItemRef, EwsError>>> =
            records.iter().map(|_| None).collect();
        let mut xml: Vec<Option<String>> = Vec::with_capacity(records.len());
        for (i, (crm_id, fields)) in records.iter().enumerate() {
            match self.write_record(kind, fields.borrow(), crm_id) {
                Ok(x) => xml.push(Some(x)),
                Err(reason) => {
                    xml.push(None);
                    results[i] = Some(Err(EwsError::InvalidInput(reason)));
                }
            }
        }
        let mut pending: Vec<usize> = (0..records.len()).filter(|i| xml[*i].is_some()).collect();
        let mut rounds = 0;
        while !pending.is_empty() {
            rounds += 1;
            let mut next = Vec::new();
            for chunk in pending.chunks(self.client.config.batch_size.max(1)) {
                let bodies: Vec<&str> = chunk.iter().filter_map(|i| xml[*i].as_deref()).collect();
                let body = items::create_items(kind, folder, &bodies);
                let messages = match self.batch("CreateItem", &body, Idempotent::No).await {
                    Ok(m) => m,
                    Err(e)
                        if matches!(
                            e,
                            EwsError::Connect { .. }
                                | EwsError::Xml(_)
                                | EwsError::Timeout { .. }
                                | EwsError::ReplyTooLarge { .. }
                        ) =>
                    {
                        // Unknown outcome: recover by tag, then create what is missing.
                        tracing::warn!(mailbox = %self.address, error = %e, "CreateItem outcome unknown; looking items up by tag");
                        for i in chunk {
                            match self.find_by_crm_id(folder, &records[*i].0).await? {
                                Some(found) => results[*i] = Some(Ok(found)),
                                None if rounds < MAX_ROUNDS => next.push(*i),
                                None => {
                                    results[*i] = Some(Err(EwsError::Connect {
                                        host: self.url.host_str().unwrap_or("").to_owned(),
                                        reason: e.to_string(),
                                    }))
                                }
                            }
                        }
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let refs: Vec<&Element> = messages.iter().collect();
                let outcomes = items::read_created(&refs);
                for (pos, i) in chunk.iter().enumerate() {
                    match outcomes.get(pos) {
                        None if rounds < MAX_ROUNDS => next.push(*i),
                        answer => match self.settle("CreateItem", answer, rounds, None) {
                            Some(result) => results[*i] = Some(result),
                            None => next.push(*i),
                        },
                    }
                }
            }
            pending = next;
        }
        let mut out = Vec::with_capacity(results.len());
        for (i, result) in results.into_iter().enumerate() {
            let result = result.unwrap_or_else(|| Err(self.protocol("item left unprocessed")));
            out.push(match (kind, result) {
                (ItemKind::Event, Ok(master)) => match Event::from_fields(records[i].1.borrow()) {
                    Ok(event) => self.apply_exceptions(&master, &event).await,
                    Err(_) => Ok(master),
                },
                (_, other) => other,
            });
        }
        Ok(out)
    }

    /// Writes a series' deleted and modified occurrences (EWS cannot take them with the
    /// master) and returns the master's new ChangeKey.
    async fn apply_exceptions(&self, master: &ItemRef, event: &Event) -> Result<ItemRef, EwsError> {
        let Some(recurrence) = &event.recurrence else {
            return Ok(master.clone());
        };
        if recurrence.deleted.is_empty() && recurrence.modified.is_empty() {
            return Ok(master.clone());
        }
        let index_of = |date: chrono::NaiveDate| {
            mapping::expand::instance_index(recurrence, date).ok_or_else(|| {
                EwsError::InvalidInput(format!("the series has no occurrence on {date}"))
            })
        };
        let mut modified = Vec::new();
        for occurrence in &recurrence.modified {
            let date = mapping::occurrence_date(event, &occurrence.original_start);
            modified.push((
                index_of(date)?,
                mapping::occurrence_updates(occurrence, self.day_zone),
            ));
        }
        let mut deleted = Vec::new();
        for date in &recurrence.deleted {
            deleted.push(index_of(*date)?);
        }
        if !modified.is_empty() {
            let messages = self
                .batch(
                    "UpdateItem",
                    &items::update_occurrences(&master.id, &modified),
                    Idempotent::Yes,
                )
                .await?;
            for message in &messages {
                soap::message_status(message)
                    .map_err(|e| self.item_error("UpdateItem", e, Some(master)))?;
            }
        }
        if !deleted.is_empty() {
            let messages = self
                .batch(
                    "DeleteItem",
                    &items::delete_occurrences(&master.id, &deleted),
                    Idempotent::Yes,
                )
                .await?;
            let refs: Vec<&Element> = messages.iter().collect();
            for outcome in items::read_deleted(&refs) {
                match outcome {
                    Err(e) if classify(&e.code) != CodeClass::NotFound => {
                        return Err(self.item_error("DeleteItem", e, Some(master)))
                    }
                    _ => {}
                }
            }
        }
        let current = self
            .get_items(ItemKind::Event, std::slice::from_ref(&master.id))
            .await?;
        Ok(current
            .into_iter()
            .next()
            .and_then(|item| item.version)
            .map_or_else(
                || master.clone(),
                |change_key| ItemRef {
                    id: master.id.clone(),
                    change_key,
                },
            ))
    }

    /// One item's result from the message a batch answered for it, or `None` when Exchange
    /// stopped the batch before the item and a further round may send it again.
    fn settle<T: Clone>(
        &self,
        operation: &'static str,
        answer: Option<&ItemResult<T>>,
        rounds: u32,
        item: Option<&ItemRef>,
    ) -> Option<Result<T, EwsError>> {
        match answer {
            Some(Ok(value)) => Some(Ok(value.clone())),
            Some(Err(e)) if e.code == "ErrorBatchProcessingStopped" && rounds < MAX_ROUNDS => None,
            Some(Err(e)) => Some(Err(self.item_error(operation, e.clone(), item))),
            None => Some(Err(
                self.protocol(format!("{operation} answered fewer messages than items"))
            )),
        }
    }

    fn item_error(
        &self,
        operation: &'static str,
        error: ResponseError,
        item: Option<&ItemRef>,
    ) -> EwsError {
        match (classify(&error.code), item) {
            (CodeClass::Stale, Some(item)) => EwsError::StaleChangeKey {
                item_id: item.id.to_string(),
                code: error.code,
            },
            (CodeClass::Mailbox, _) => {
                let (host, mut ctx) = self.ctx(operation);
                ctx.host = &host;
                ctx.error(error)
            }
            _ => EwsError::Response { operation, error },
        }
    }

    /// Updates the named fields of each item, conditional on its ChangeKey. A stale key gives
    /// [`EwsError::StaleChangeKey`] for that item: refetch, replan, never overwrite blindly.
    pub async fn update(
        &self,
        kind: ItemKind,
        updates: &[Update],
    ) -> Result<Vec<Result<ItemRef, EwsError>>, EwsError> {
        let mut results: Vec<Option<Result<ItemRef, EwsError>>> =
            updates.iter().map(|_| None).collect();
        let mut prepared: Vec<(usize, ItemRef, Vec<mapping::FieldUpdate>)> = Vec::new();
        for (i, u) in updates.iter().enumerate() {
            let field_updates = match kind {
                ItemKind::Contact => Contact::from_fields(&u.fields)
                    .map_err(|e| e.to_string())
                    .and_then(|c| mapping::contact_updates(&c, &u.changed)),
                ItemKind::Event => Event::from_fields(&u.fields)
                    .map_err(|e| e.to_string())
                    .and_then(|e| mapping::event_updates_in(&e, &u.changed, self.day_zone)),
            };
            match field_updates {
                Ok(list) if list.is_empty() => results[i] = Some(Ok(u.item.clone())),
                Ok(list) => prepared.push((i, u.item.clone(), list)),
                Err(reason) => results[i] = Some(Err(EwsError::InvalidInput(reason))),
            }
        }
        let mut rounds = 0;
        while !prepared.is_empty() {
            rounds += 1;
            let mut next = Vec::new();
            for chunk in prepared.chunks(self.client.config.batch_size.max(1)) {
                let changes: Vec<(ItemRef, Vec<mapping::FieldUpdate>)> = chunk
                    .iter()
                    .map(|(_, r, u)| (r.clone(), u.clone()))
                    .collect();
                // Conditional on the ChangeKey, so a repeat after an unknown outcome fails as
                // stale instead of writing twice.
                let messages = self
                    .batch(
                        "UpdateItem",
                        &items::update_items(kind, &changes),
                        Idempotent::Yes,
                    )
                    .await?;
                let refs: Vec<&Element> = messages.iter().collect();
                let outcomes = items::read_updated(&refs);
                for (pos, (i, item, list)) in chunk.iter().enumerate() {
                    match self.settle("UpdateItem", outcomes.get(pos), rounds, Some(item)) {
                        Some(result) => results[*i] = Some(result),
                        None => next.push((*i, item.clone(), list.clone())),
                    }
                }
            }
            prepared = next;
        }
        let mut out = Vec::with_capacity(results.len());
        for (i, result) in results.into_iter().enumerate() {
            let result = result.unwrap_or_else(|| Err(self.protocol("item left unprocessed")));
            let recurrence_written = updates[i].changed.iter().any(|f| f == "recurrence");
            out.push(match (kind, result) {
                // A new pattern drops the old exceptions; write the wanted ones again.
                (ItemKind::Event, Ok(master)) if recurrence_written => {
                    match Event::from_fields(&updates[i].fields) {
                        Ok(event) => self.apply_exceptions(&master, &event).await,
                        Err(_) => Ok(master),
                    }
                }
                (_, other) => other,
            });
        }
        Ok(out)
    }

    /// Deletes items; one already gone counts as deleted.
    pub async fn delete(
        &self,
        kind: ItemKind,
        ids: &[ExchangeId],
    ) -> Result<Vec<Result<(), EwsError>>, EwsError> {
        let mut results: Vec<Option<Result<(), EwsError>>> = ids.iter().map(|_| None).collect();
        let mut pending: Vec<usize> = (0..ids.len()).collect();
        let mut rounds = 0;
        while !pending.is_empty() {
            rounds += 1;
            let mut next = Vec::new();
            for chunk in pending.chunks(self.client.config.batch_size.max(1)) {
                let chunk_ids: Vec<ExchangeId> = chunk.iter().map(|i| ids[*i].clone()).collect();
                let messages = self
                    .batch(
                        "DeleteItem",
                        &items::delete_items(kind, &chunk_ids),
                        Idempotent::Yes,
                    )
                    .await?;
                let refs: Vec<&Element> = messages.iter().collect();
                let outcomes = items::read_deleted(&refs);
                for (pos, i) in chunk.iter().enumerate() {
                    match self.settle("DeleteItem", outcomes.get(pos), rounds, None) {
                        Some(result) => results[*i] = Some(result),
                        None => next.push(*i),
                    }
                }
            }
            pending = next;
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(self.protocol("item left unprocessed"))))
            .collect())
    }

    /// The item in `folder` tagged with this CRM id, if any.
    pub async fn find_by_crm_id(
        &self,
        folder: &FolderRef,
        crm_id: &CrmId,
    ) -> Result<Option<ItemRef>, EwsError> {
        let message = self
            .single(
                "FindItem",
                &items::find_by_crm_id(folder, crm_id),
                Idempotent::Yes,
            )
            .await?;
        let (found, _) = items::read_found(&message);
        Ok(found
            .into_iter()
            .find(|f| {
                mapping::read_extended(&f.element, mapping::CRM_ID_PROPERTY).as_deref()
                    == Some(crm_id.as_str())
            })
            .map(|f| f.item))
    }

    /// The items of `kind` directly in `folder` that carry our tag with any of `crm_ids`, with
    /// their creation times, asked [`items::TAGS_PER_FIND`] tags at a time and read page by
    /// page. Only an exact match of the tag counts (the server may compare
    /// case-insensitively). A folder the server refuses (not found, access denied) is
    /// [`TagSearch::Refused`]; a failure of the mailbox or the call is an error.
    pub async fn find_tagged(
        &self,
        kind: ItemKind,
        folder: &SearchFolder,
        crm_ids: &[CrmId],
    ) -> Result<TagSearch, EwsError> {
        let mut found = Vec::new();
        for chunk in crm_ids.chunks(items::TAGS_PER_FIND) {
            let mut offset = 0;
            let mut pages = 0;
            loop {
                pages += 1;
                if pages > MAX_FIND_PAGES {
                    return Err(self.protocol("FindItem by tag kept reporting more pages"));
                }
                let body = items::find_by_tags(folder, chunk, offset, items::FOUND_PER_PAGE);
                let response = self.call("FindItem", &body, Idempotent::Yes).await?;
                let (host, mut ctx) = self.ctx("FindItem");
                ctx.host = &host;
                let messages = soap::response_messages(&ctx, &response)?;
                let message = messages
                    .first()
                    .copied()
                    .ok_or_else(|| self.protocol("FindItem answered no message"))?;
                if let Err(e) = soap::message_status(message) {
                    if matches!(
                        e.code.as_str(),
                        "ErrorFolderNotFound" | "ErrorAccessDenied" | "ErrorInvalidIdMalformed"
                    ) {
                        return Ok(TagSearch::Refused(e));
                    }
                    return Err(ctx.error(e));
                }
                for entry in items::read_found(message).0 {
                    if !items::is_kind(&entry.element, kind) {
                        continue;
                    }
                    let Some(tag) =
                        mapping::read_extended(&entry.element, mapping::CRM_ID_PROPERTY)
                    else {
                        continue;
                    };
                    let tag = tag.trim();
                    if let Some(crm_id) = chunk.iter().find(|c| c.as_str() == tag) {
                        let created = entry
                            .element
                            .child_text("DateTimeCreated")
                            .and_then(mapping::parse_instant);
                        found.push(TaggedItem {
                            crm_id: crm_id.clone(),
                            item: entry.item,
                            created,
                        });
                    }
                }
                match items::next_offset(message, offset) {
                    Some(next) if next > offset => offset = next,
                    Some(_) => {
                        return Err(
                            self.protocol("FindItem by tag reported more items without moving on")
                        )
                    }
                    None => break,
                }
            }
        }
        Ok(TagSearch::Searched(found))
    }

    /// Everything on the calendar between `start` and `end`: single events, occurrences and
    /// exceptions (with their CalendarItemType).
    pub async fn calendar_view(
        &self,
        folder: &FolderRef,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<items::Found>, EwsError> {
        let message = self
            .single(
                "FindItem",
                &items::calendar_view(folder, start, end, 1000),
                Idempotent::Yes,
            )
            .await?;
        let (found, complete) = items::read_found(&message);
        if !complete {
            tracing::warn!(mailbox = %self.address, "calendar view truncated at 1000 entries");
        }
        Ok(found)
    }

    /// The events in a window as the planner sees them: single events, and each series that
    /// has an occurrence in the window once, as its master (with its exceptions).
    pub async fn events_in_window(
        &self,
        folder: &FolderRef,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<Change>, EwsError> {
        let view = self.calendar_view(folder, start, end).await?;
        let mut singles = Vec::new();
        let mut occurrences = Vec::new();
        for entry in view {
            match entry.element.child_text("CalendarItemType").map(str::trim) {
                Some("Occurrence") | Some("Exception") => occurrences.push(entry.item.id),
                _ => singles.push(entry.item.id),
            }
        }
        let mut changes = self.get_changes(ItemKind::Event, &singles).await?;
        let mut seen: std::collections::HashSet<ItemId> =
            changes.iter().map(|c| c.id().clone()).collect();
        for chunk in occurrences.chunks(self.client.config.batch_size.max(1)) {
            let messages = self
                .batch("GetItem", &items::get_masters(chunk), Idempotent::Yes)
                .await?;
            let refs: Vec<&Element> = messages.iter().collect();
            for (occurrence, result) in chunk.iter().zip(items::read_get_items(&refs)) {
                let change = match result {
                    Ok(element) => mapping::item_change(ItemKind::Event, &element),
                    Err(e) => Some(Change::Invalid {
                        id: ItemId::Exchange(occurrence.clone()),
                        reason: format!("series of this occurrence: {e}"),
                    }),
                };
                if let Some(change) = change {
                    if seen.insert(change.id().clone()) {
                        changes.push(change);
                    }
                }
            }
        }
        Ok(changes)
    }
}
