//! The mailbox backends an installation has, and which one serves each user. A hybrid org keeps
//! some mailboxes on premises (EWS) and some in Exchange Online (Microsoft Graph); the router
//! [`Mailboxes`] is itself a [`MailboxSide`] that sends every call to the user's backend, so the
//! service, the pass and the daemon see one mailbox side whatever the mix.
//!
//! Cursors, folders and pairs are stored per user, not per backend: a user whose mailbox moves
//! to another backend keeps them, and the new backend restarts a cursor it did not issue (see
//! [`MailboxSide::changes_page`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use exsync_core::plan::{Change, WriteResult};
use exsync_core::zones::DayZone;
use exsync_core::{ExchangeId, ItemId, ItemKind, UserKey};
use exsync_store::{Notice, Store};

use super::locate::AutoRouting;
use super::sides::{
    CopyEvidence, MailboxPage, MailboxSide, OwnedChange, SideError, SideErrorKind, SideResult,
    Write,
};

/// A mailbox backend: the protocol a user's mailbox is reached through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Backend {
    /// Exchange on premises, through EWS with impersonation.
    #[default]
    Ews,
    /// Exchange Online, through Microsoft Graph (`GraphConnection`). A user routed here while
    /// `[exchange_online]` is not configured fails their pass with a message saying so.
    Graph,
}

impl Backend {
    /// The backend's name in logs and reports: `ews` or `graph`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Ews => "ews",
            Backend::Graph => "graph",
        }
    }

    /// The backend [`Self::as_str`] names.
    pub fn parse(name: &str) -> Option<Backend> {
        [Backend::Ews, Backend::Graph]
            .into_iter()
            .find(|b| b.as_str() == name)
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which backend serves each user: one for everyone, with named users sent elsewhere, and
/// the users whose backend is located before each pass (`auto`, see [`super::locate`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendRule {
    /// The backend of every user not named below.
    pub default: Backend,
    /// Users whose mailbox another backend serves.
    pub users: BTreeMap<UserKey, Backend>,
    /// Every user not in `users` is located automatically.
    pub auto_default: bool,
    /// Users located automatically when not everyone else is.
    pub auto_users: BTreeSet<UserKey>,
}

impl BackendRule {
    /// Every user on `backend`.
    pub fn every_user(backend: Backend) -> Self {
        BackendRule {
            default: backend,
            ..BackendRule::default()
        }
    }

    /// The same rule with `user` on `backend`.
    pub fn with_user(mut self, user: UserKey, backend: Backend) -> Self {
        self.users.insert(user, backend);
        self
    }

    /// The same rule with `user` located automatically.
    pub fn with_auto_user(mut self, user: UserKey) -> Self {
        self.auto_users.insert(user);
        self
    }

    /// The backend serving `user` by configuration: the one the rule names for them, else the
    /// default. For a user located automatically, the backend until they are.
    pub fn backend_of(&self, user: &UserKey) -> Backend {
        self.users.get(user).copied().unwrap_or(self.default)
    }

    /// Whether `user`'s backend is located before each pass rather than configured.
    pub fn is_auto(&self, user: &UserKey) -> bool {
        !self.users.contains_key(user) && (self.auto_default || self.auto_users.contains(user))
    }
}

/// The router: the EWS backend, the Graph backend, and the rule naming each user's. Each
/// backend has its own type, so a call is dispatched without boxing, and tooling can reach a
/// backend's own operations (see [`Self::ews`]).
pub struct Mailboxes<W, G = Unconfigured> {
    ews: W,
    graph: G,
    // Behind a lock so a user can be routed elsewhere while the service runs (a mailbox
    // moved); read once per call, never held across an await.
    rule: std::sync::RwLock<BackendRule>,
    // Where each `auto` user's mailbox was found this run, settled before their pass.
    located: std::sync::RwLock<BTreeMap<UserKey, Backend>>,
    auto: Option<AutoRouting>,
}

impl<W: MailboxSide> Mailboxes<W, Unconfigured> {
    /// Every user on EWS, and no Graph backend: an on-premises installation.
    pub fn ews_only(ews: W) -> Self {
        Mailboxes {
            ews,
            graph: Unconfigured(Backend::Graph),
            rule: std::sync::RwLock::new(BackendRule::every_user(Backend::Ews)),
            located: std::sync::RwLock::default(),
            auto: None,
        }
    }
}

impl<W: MailboxSide, G: MailboxSide> Mailboxes<W, G> {
    /// A router over both backends, with `rule` naming each user's.
    pub fn new(ews: W, graph: G, rule: BackendRule) -> Self {
        Mailboxes {
            ews,
            graph,
            rule: std::sync::RwLock::new(rule),
            located: std::sync::RwLock::default(),
            auto: None,
        }
    }

    /// The same router, locating the rule's `auto` users with `auto` before their passes.
    pub fn with_auto(mut self, auto: AutoRouting) -> Self {
        self.auto = Some(auto);
        self
    }

    /// The EWS backend, for tooling that needs operations of its own.
    pub fn ews(&self) -> &W {
        &self.ews
    }

    /// The Graph backend ([`Unconfigured`] when the installation has none).
    pub fn graph(&self) -> &G {
        &self.graph
    }

    /// The rule that picks each user's backend, as it is now.
    pub fn rule(&self) -> BackendRule {
        self.rule
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Serves `user` through `backend` from the next call on: their mailbox moved. The next
    /// pass finds their items again under the new backend's ids (see `pass/relink.rs`).
    pub fn route(&self, user: UserKey, backend: Backend) {
        self.rule
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .users
            .insert(user, backend);
    }

    fn backend_of(&self, user: &UserKey) -> Backend {
        let rule = self
            .rule
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if rule.is_auto(user) {
            if let Some(found) = self
                .located
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(user)
            {
                return *found;
            }
        }
        rule.backend_of(user)
    }

    /// Every item of the user's folder of `kind` (the calendar within the backend's window),
    /// listed from the start and fetched, through the backend serving the user: for tools
    /// and checks, not for passes, which read from their cursors.
    pub async fn read_all(&self, user: &UserKey, kind: ItemKind) -> SideResult<Vec<Change>> {
        let mut cursor: Option<String> = None;
        let mut items = Vec::new();
        loop {
            let page = self.changes_page(user, kind, cursor.as_deref()).await?;
            let ids: Vec<ExchangeId> = page.upserts.into_iter().map(|(id, _)| id).collect();
            if !ids.is_empty() {
                let read = self.fetch(user, kind, &ids).await?;
                items.extend(read.into_iter().map(|owned| owned.change));
            }
            cursor = Some(page.cursor);
            if page.last {
                return Ok(items);
            }
        }
    }
}

/// Sends a call to the backend serving `$user`; each arm awaits its own backend's future.
macro_rules! dispatch {
    ($self:ident, $user:expr, $side:ident => $call:expr) => {
        match $self.backend_of($user) {
            Backend::Ews => {
                let $side = &$self.ews;
                $call
            }
            Backend::Graph => {
                let $side = &$self.graph;
                $call
            }
        }
    };
}

impl<W: MailboxSide, G: MailboxSide> MailboxSide for Mailboxes<W, G> {
    fn backend(&self, user: &UserKey) -> Backend {
        self.backend_of(user)
    }

    fn uses_exchange_account(&self, user: &UserKey) -> bool {
        let rule = self
            .rule
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // By the rule, not where an `auto` user was last found: a pass that misses their
        // mailbox online looks for it on premises again.
        rule.is_auto(user) || rule.backend_of(user) == Backend::Ews
    }

    async fn settle_route(
        &self,
        user: &UserKey,
        store: &Arc<dyn Store>,
        recheck: bool,
        dry_run: bool,
    ) -> SideResult<Vec<Notice>> {
        if !self.rule().is_auto(user) {
            return Ok(Vec::new());
        }
        let Some(auto) = &self.auto else {
            return Err(SideError::new(
                SideErrorKind::User,
                format!(
                    "{user}'s mailbox is to be located automatically, but this installation \
                     has no on-premises Autodiscover to ask"
                ),
            )
            .with_remedy(
                "configure [exchange] beside [exchange_online], or name the user's backend",
            ));
        };
        let settled =
            super::locate::settle(auto, user, store, recheck, dry_run, chrono::Utc::now()).await?;
        self.located
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(user.clone(), settled.backend);
        Ok(settled.notices)
    }

    async fn prepare(&self, user: &UserKey) -> SideResult<()> {
        dispatch!(self, user, side => side.prepare(user).await)
    }

    fn take_notices(&self, user: &UserKey) -> Vec<Notice> {
        dispatch!(self, user, side => side.take_notices(user))
    }

    fn known_folder(&self, user: &UserKey, kind: ItemKind, folder: &(String, String)) {
        dispatch!(self, user, side => side.known_folder(user, kind, folder))
    }

    // Both backends hear it: a mailbox moved during the run writes in its zone on either.
    fn day_zone(&self, user: &UserKey, zone: DayZone) {
        self.ews.day_zone(user, zone);
        self.graph.day_zone(user, zone);
    }

    fn dry_run(&self, user: &UserKey, dry_run: bool) {
        self.ews.dry_run(user, dry_run);
        self.graph.dry_run(user, dry_run);
    }

    async fn changes_page(
        &self,
        user: &UserKey,
        kind: ItemKind,
        cursor: Option<&str>,
    ) -> SideResult<MailboxPage> {
        dispatch!(self, user, side => side.changes_page(user, kind, cursor).await)
    }

    async fn fetch(
        &self,
        user: &UserKey,
        kind: ItemKind,
        ids: &[ExchangeId],
    ) -> SideResult<Vec<OwnedChange>> {
        dispatch!(self, user, side => side.fetch(user, kind, ids).await)
    }

    async fn write(
        &self,
        user: &UserKey,
        kind: ItemKind,
        writes: &[Write<'_>],
    ) -> SideResult<Vec<WriteResult>> {
        dispatch!(self, user, side => side.write(user, kind, writes).await)
    }

    fn write_batch(&self, user: &UserKey) -> usize {
        dispatch!(self, user, side => side.write_batch(user))
    }

    fn requests_at_once(&self, user: &UserKey) -> usize {
        dispatch!(self, user, side => side.requests_at_once(user))
    }

    async fn find_copies(
        &self,
        user: &UserKey,
        kind: ItemKind,
        origins: &[ItemId],
        since: DateTime<Utc>,
    ) -> SideResult<Vec<CopyEvidence>> {
        dispatch!(self, user, side => side.find_copies(user, kind, origins, since).await)
    }
}

/// A backend the installation has no connector for: every call fails for the user alone, so a
/// rule naming it stops only the users it names.
#[derive(Debug, Clone, Copy)]
pub struct Unconfigured(pub Backend);

impl Unconfigured {
    fn refuse(&self, user: &UserKey) -> SideError {
        SideError::new(
            SideErrorKind::User,
            format!(
                "{user}'s mailbox is served by the {} backend, which is not configured",
                self.0
            ),
        )
        .with_remedy("configure that backend, or route the user to a configured one")
    }
}

impl MailboxSide for Unconfigured {
    fn backend(&self, _user: &UserKey) -> Backend {
        self.0
    }

    fn uses_exchange_account(&self, _user: &UserKey) -> bool {
        false
    }

    async fn prepare(&self, user: &UserKey) -> SideResult<()> {
        Err(self.refuse(user))
    }

    async fn changes_page(
        &self,
        user: &UserKey,
        _kind: ItemKind,
        _cursor: Option<&str>,
    ) -> SideResult<MailboxPage> {
        Err(self.refuse(user))
    }

    async fn fetch(
        &self,
        user: &UserKey,
        _kind: ItemKind,
        _ids: &[ExchangeId],
    ) -> SideResult<Vec<OwnedChange>> {
        Err(self.refuse(user))
    }

    async fn write(
        &self,
        user: &UserKey,
        _kind: ItemKind,
        _writes: &[Write<'_>],
    ) -> SideResult<Vec<WriteResult>> {
        Err(self.refuse(user))
    }
}

/// A backend the installation may or may not have: its connector when configured, else
/// [`Unconfigured`], which fails each call for the user alone.
pub enum Optional<S> {
    /// The backend is configured.
    Configured(Box<S>),
    /// It is not.
    Unconfigured(Unconfigured),
}

/// Sends a call to the connector, or to [`Unconfigured`], which refuses it.
macro_rules! either {
    ($self:ident, $side:ident => $call:expr) => {
        match $self {
            Optional::Configured($side) => $call,
            Optional::Unconfigured($side) => $call,
        }
    };
}

impl<S: MailboxSide> MailboxSide for Optional<S> {
    fn backend(&self, user: &UserKey) -> Backend {
        either!(self, side => side.backend(user))
    }

    fn uses_exchange_account(&self, user: &UserKey) -> bool {
        either!(self, side => side.uses_exchange_account(user))
    }

    async fn prepare(&self, user: &UserKey) -> SideResult<()> {
        either!(self, side => side.prepare(user).await)
    }

    fn known_folder(&self, user: &UserKey, kind: ItemKind, folder: &(String, String)) {
        either!(self, side => side.known_folder(user, kind, folder))
    }

    fn day_zone(&self, user: &UserKey, zone: DayZone) {
        either!(self, side => side.day_zone(user, zone))
    }

    fn dry_run(&self, user: &UserKey, dry_run: bool) {
        either!(self, side => side.dry_run(user, dry_run))
    }

    async fn changes_page(
        &self,
        user: &UserKey,
        kind: ItemKind,
        cursor: Option<&str>,
    ) -> SideResult<MailboxPage> {
        either!(self, side => side.changes_page(user, kind, cursor).await)
    }

    async fn fetch(
        &self,
        user: &UserKey,
        kind: ItemKind,
        ids: &[ExchangeId],
    ) -> SideResult<Vec<OwnedChange>> {
        either!(self, side => side.fetch(user, kind, ids).await)
    }

    fn write_batch(&self, user: &UserKey) -> usize {
        either!(self, side => side.write_batch(user))
    }

    fn requests_at_once(&self, user: &UserKey) -> usize {
        either!(self, side => side.requests_at_once(user))
    }

    async fn write(
        &self,
        user: &UserKey,
        kind: ItemKind,
        writes: &[Write<'_>],
    ) -> SideResult<Vec<WriteResult>> {
        either!(self, side => side.write(user, kind, writes).await)
    }

    async fn find_copies(
        &self,
        user: &UserKey,
        kind: ItemKind,
        origins: &[ItemId],
        since: DateTime<Utc>,
    ) -> SideResult<Vec<CopyEvidence>> {
        either!(self, side => side.find_copies(user, kind, origins, since).await)
    }

    fn take_notices(&self, user: &UserKey) -> Vec<Notice> {
        either!(self, side => side.take_notices(user))
    }
}
