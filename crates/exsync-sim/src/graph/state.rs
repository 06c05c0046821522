//! The tenant's mailboxes and their stores, and how they reach `DIR/state.json`.
//!
//! Each mailbox sits behind its own lock so requests for different mailboxes never wait on
//! each other. A background task writes the file when something changed (at most every
//! [`SAVE_EVERY`]), off the request path; a mailbox that did not change since the last
//! write reuses its serialised form, so a write costs what changed plus a file copy.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::calendar::Calendar;
use super::contacts::Contacts;

/// How often the background task looks for changes to write.
pub(crate) const SAVE_EVERY: Duration = Duration::from_millis(200);
/// The longest a slow write may delay the next one.
const MAX_SAVE_PAUSE: Duration = Duration::from_secs(5);

/// Requests a mailbox takes from one app in a [`BUDGET_WINDOW_SECS`] window, as Exchange
/// Online allows.
pub(crate) const DEFAULT_BUDGET: u64 = 10_000;

/// The management-scope roles of RBAC for Applications that reach each store.
pub(crate) const ROLE_CONTACTS: &str = "Application Contacts.ReadWrite";
pub(crate) const ROLE_CALENDARS: &str = "Application Calendars.ReadWrite";

const STATE_FILE: &str = "state.json";

/// Locks a mutex, carrying on with the data if a panicking thread poisoned it: the stores
/// change only through whole calls, and losing the simulator to one bad request is worse.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a mailbox holds besides its fixed identity.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct MailboxData {
    /// Roles of RBAC for Applications whose management scope includes this mailbox.
    pub(crate) scope: BTreeSet<String>,
    /// Requests per budget window.
    pub(crate) budget: u64,
    pub(crate) contacts: Contacts,
    pub(crate) calendar: Calendar,
}

/// One mailbox of the tenant.
#[derive(Debug)]
pub(crate) struct Mailbox {
    pub(crate) id: String,
    pub(crate) address: String,
    pub(crate) display_name: String,
    pub(crate) data: Mutex<MailboxData>,
    dirty: AtomicBool,
    /// The last serialised form of this mailbox, reused while it stays clean.
    saved: Mutex<Option<Arc<Vec<u8>>>>,
}

impl Mailbox {
    fn new(id: String, address: String, display_name: String, data: MailboxData) -> Mailbox {
        Mailbox {
            id,
            address,
            display_name,
            data: Mutex::new(data),
            dirty: AtomicBool::new(true),
            saved: Mutex::new(None),
        }
    }

    pub(crate) fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    pub(crate) fn in_scope_for(&self, role: &str) -> bool {
        lock(&self.data).scope.contains(role)
    }

    /// The user as `GET /users/{id}` shows it.
    pub(crate) fn user_json(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "userPrincipalName": self.address,
            "mail": self.address,
            "displayName": self.display_name,
        })
    }

    fn serialised(&self) -> anyhow::Result<Arc<Vec<u8>>> {
        // Cleared before reading, so a change made while serialising is written next time.
        let was_dirty = self.dirty.swap(false, Ordering::AcqRel);
        let mut saved = lock(&self.saved);
        if let (false, Some(bytes)) = (was_dirty, saved.as_ref()) {
            return Ok(bytes.clone());
        }
        let data = lock(&self.data);
        let record = StoredMailboxRef {
            id: &self.id,
            address: &self.address,
            display_name: &self.display_name,
            data: &data,
        };
        let bytes = match serde_json::to_vec(&record) {
            Ok(b) => Arc::new(b),
            Err(e) => {
                self.mark_dirty();
                return Err(e).context("serialising a mailbox");
            }
        };
        *saved = Some(bytes.clone());
        Ok(bytes)
    }
}

// `data` is a field of its own, not flattened: serde cannot read maps with integer keys
// (as the stores keep) through a flattened struct.
#[derive(Serialize)]
struct StoredMailboxRef<'a> {
    id: &'a str,
    address: &'a str,
    display_name: &'a str,
    data: &'a MailboxData,
}

#[derive(Deserialize)]
struct StoredMailbox {
    id: String,
    address: String,
    display_name: String,
    data: MailboxData,
}

/// Settings of the tenant that outlive a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Settings {
    pub(crate) domain: String,
    pub(crate) control_token: String,
}

#[derive(Deserialize)]
struct StoredState {
    settings: Settings,
    mailboxes: Vec<StoredMailbox>,
}

#[derive(Debug, Default)]
struct Registry {
    mailboxes: Vec<Arc<Mailbox>>,
    /// Lower-cased id and address → index in `mailboxes`.
    by_key: HashMap<String, usize>,
}

/// Every mailbox of the tenant and the tenant's settings.
#[derive(Debug)]
pub(crate) struct Tenant {
    path: PathBuf,
    settings: Mutex<Settings>,
    settings_dirty: AtomicBool,
    registry: RwLock<Registry>,
    /// Serialises writers of the file (the background task and shutdown).
    writing: Mutex<()>,
}

/// Why a mailbox could not be added.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AddError {
    Exists,
    BadAddress,
}

impl Tenant {
    /// Loads `dir/state.json`, or makes a tenant of `mailboxes` users in scope and
    /// `out_of_scope` outside it when there is none yet.
    pub(crate) fn load_or_create(
        dir: &Path,
        domain: &str,
        mailboxes: usize,
        out_of_scope: usize,
    ) -> anyhow::Result<Tenant> {
        let path = dir.join(STATE_FILE);
        if path.exists() {
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let stored: StoredState = serde_json::from_slice(&bytes)
                .with_context(|| format!("parsing {}", path.display()))?;
            let tenant = Tenant::empty(path, stored.settings);
            for m in stored.mailboxes {
                tenant.insert(Mailbox::new(m.id, m.address, m.display_name, m.data));
            }
            tenant.settings_dirty.store(false, Ordering::Release);
            return Ok(tenant);
        }
        let settings = Settings {
            domain: domain.to_owned(),
            control_token: random_token(),
        };
        let tenant = Tenant::empty(path, settings);
        let addresses = (1..=mailboxes)
            .map(|i| (format!("user{i}@{domain}"), true))
            .chain((1..=out_of_scope).map(|i| (format!("outside{i}@{domain}"), false)));
        for (address, in_scope) in addresses {
            if let Err(e) = tenant.add(&address, None, in_scope) {
                anyhow::bail!("cannot make mailbox {address:?} ({e:?}): is {domain:?} a domain?");
            }
        }
        tenant.save()?;
        Ok(tenant)
    }

    fn empty(path: PathBuf, settings: Settings) -> Tenant {
        Tenant {
            path,
            settings: Mutex::new(settings),
            settings_dirty: AtomicBool::new(true),
            registry: RwLock::new(Registry::default()),
            writing: Mutex::new(()),
        }
    }

    fn insert(&self, mailbox: Mailbox) -> Arc<Mailbox> {
        let mut reg = self.registry.write().unwrap_or_else(|p| p.into_inner());
        let index = reg.mailboxes.len();
        reg.by_key.insert(mailbox.id.to_lowercase(), index);
        reg.by_key.insert(mailbox.address.to_lowercase(), index);
        let mailbox = Arc::new(mailbox);
        reg.mailboxes.push(mailbox.clone());
        mailbox
    }

    /// Adds a mailbox `address`, in the app's scope (both roles) or outside it.
    pub(crate) fn add(
        &self,
        address: &str,
        display_name: Option<&str>,
        in_scope: bool,
    ) -> Result<Arc<Mailbox>, AddError> {
        let address = address.trim();
        let valid = address.len() <= 320
            && address.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !address.chars().any(|c| c.is_whitespace() || c == '/')
            });
        if !valid {
            return Err(AddError::BadAddress);
        }
        if self.find(address).is_some() {
            return Err(AddError::Exists);
        }
        let display_name = match display_name {
            Some(n) if !n.trim().is_empty() => n.trim().to_owned(),
            _ => default_display_name(address),
        };
        let data = MailboxData {
            scope: if in_scope {
                all_roles()
            } else {
                BTreeSet::new()
            },
            budget: DEFAULT_BUDGET,
            ..MailboxData::default()
        };
        let mailbox = Mailbox::new(
            uuid::Uuid::new_v4().to_string(),
            address.to_owned(),
            display_name,
            data,
        );
        Ok(self.insert(mailbox))
    }

    /// The mailbox whose id or address is `key`, compared without case.
    pub(crate) fn find(&self, key: &str) -> Option<Arc<Mailbox>> {
        let reg = self.registry.read().unwrap_or_else(|p| p.into_inner());
        reg.by_key
            .get(&key.to_lowercase())
            .and_then(|&i| reg.mailboxes.get(i).cloned())
    }

    pub(crate) fn mailboxes(&self) -> Vec<Arc<Mailbox>> {
        self.registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .mailboxes
            .clone()
    }

    pub(crate) fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    fn needs_saving(&self) -> bool {
        self.settings_dirty.load(Ordering::Acquire)
            || self
                .mailboxes()
                .iter()
                .any(|m| m.dirty.load(Ordering::Acquire))
    }

    /// Writes `state.json` if anything changed since the last write.
    pub(crate) fn save_if_dirty(&self) -> anyhow::Result<bool> {
        if !self.needs_saving() {
            return Ok(false);
        }
        self.save()?;
        Ok(true)
    }

    /// Writes `state.json` atomically. The mailboxes are copied one at a time, each under
    /// its own lock, so a request waits at most for its own mailbox's copy.
    pub(crate) fn save(&self) -> anyhow::Result<()> {
        let _writing = lock(&self.writing);
        self.settings_dirty.store(false, Ordering::Release);
        let settings = serde_json::to_vec(&self.settings()).context("serialising settings")?;
        let mut out = Vec::with_capacity(1024);
        out.extend_from_slice(b"{\"settings\":");
        out.extend_from_slice(&settings);
        out.extend_from_slice(b",\"mailboxes\":[");
        for (i, mailbox) in self.mailboxes().iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match mailbox.serialised() {
                Ok(bytes) => out.extend_from_slice(&bytes),
                Err(e) => {
                    self.settings_dirty.store(true, Ordering::Release);
                    return Err(e);
                }
            }
        }
        out.extend_from_slice(b"]}");
        if let Err(e) = crate::journal::write_atomic(&self.path, &out) {
            // Nothing reached the disk: every mailbox copied above must be written again.
            self.settings_dirty.store(true, Ordering::Release);
            for m in self.mailboxes() {
                m.mark_dirty();
            }
            return Err(e);
        }
        Ok(())
    }
}

/// Writes the tenant every [`SAVE_EVERY`] while it changes, until `stop` fires; then a last
/// time.
pub(crate) async fn persist(tenant: Arc<Tenant>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(SAVE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let t = tenant.clone();
        let started = std::time::Instant::now();
        match tokio::task::spawn_blocking(move || t.save_if_dirty()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %format!("{e:#}"), "saving the Graph tenant failed")
            }
            Err(e) => tracing::error!(error = %e, "the Graph tenant's save task failed"),
        }
        // A big tenant takes a while to copy, and each copy holds a mailbox's lock in turn:
        // space the writes out so they never take more than a fifth of the time.
        let pause = (started.elapsed() * 4)
            .saturating_sub(SAVE_EVERY)
            .min(MAX_SAVE_PAUSE);
        if !pause.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => break,
            }
        }
    }
    let t = tenant.clone();
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || t.save()).await {
        tracing::error!(error = %format!("{e:#}"), "saving the Graph tenant at shutdown failed");
    }
}

pub(crate) fn all_roles() -> BTreeSet<String> {
    [ROLE_CONTACTS, ROLE_CALENDARS]
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// `user1@contoso.test` → `User1`; `jane.doe@…` → `Jane Doe`.
fn default_display_name(address: &str) -> String {
    let local = address.split('@').next().unwrap_or(address);
    local
        .split(['.', '_', '-'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(first) => first.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::thread_rng().gen();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn creates_users_and_outsiders_then_reloads_them_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tenant::load_or_create(dir.path(), "contoso.test", 2, 1).unwrap();
        let names: Vec<String> = t.mailboxes().iter().map(|m| m.address.clone()).collect();
        assert_eq!(
            names,
            [
                "user1@contoso.test",
                "user2@contoso.test",
                "outside1@contoso.test"
            ]
        );
        let outside = t.find("OUTSIDE1@contoso.TEST").unwrap();
        assert!(!outside.in_scope_for(ROLE_CONTACTS));
        assert!(t
            .find("user1@contoso.test")
            .unwrap()
            .in_scope_for(ROLE_CALENDARS));
        let id = t.find("user2@contoso.test").unwrap().id.clone();
        assert_eq!(
            t.find(&id.to_uppercase()).unwrap().address,
            "user2@contoso.test"
        );
        t.add("late@contoso.test", Some("Late Comer"), false)
            .unwrap();
        let token = t.settings().control_token;
        assert!(t.save_if_dirty().unwrap());
        assert!(!t.save_if_dirty().unwrap());

        let again = Tenant::load_or_create(dir.path(), "other.test", 9, 9).unwrap();
        assert_eq!(again.mailboxes().len(), 4);
        assert_eq!(again.find(&id).unwrap().address, "user2@contoso.test");
        assert_eq!(
            again.find("late@contoso.test").unwrap().display_name,
            "Late Comer"
        );
        assert_eq!(again.settings().control_token, token);
        assert_eq!(again.settings().domain, "contoso.test");
    }

    #[test]
    fn refuses_duplicates_and_non_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tenant::load_or_create(dir.path(), "contoso.test", 1, 0).unwrap();
        assert_eq!(
            t.add("USER1@contoso.test", None, true).err(),
            Some(AddError::Exists)
        );
        assert!(Tenant::load_or_create(&dir.path().join("x"), "localhost", 1, 0).is_err());
        for bad in [
            "",
            "nobody",
            "@contoso.test",
            "a b@contoso.test",
            "a@b",
            "a/b@c.d",
        ] {
            assert_eq!(
                t.add(bad, None, true).err(),
                Some(AddError::BadAddress),
                "{bad}"
            );
        }
        assert_eq!(default_display_name("jane.doe@x.test"), "Jane Doe");
    }

    #[test]
    fn a_clean_mailbox_is_not_serialised_again() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tenant::load_or_create(dir.path(), "contoso.test", 1, 0).unwrap();
        let m = t.find("user1@contoso.test").unwrap();
        let a = m.serialised().unwrap();
        let b = m.serialised().unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        m.mark_dirty();
        assert!(!Arc::ptr_eq(&a, &m.serialised().unwrap()));
    }
}
