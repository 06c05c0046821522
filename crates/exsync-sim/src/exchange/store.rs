//! Mailbox state: mailboxes, folders, items as property bags, change sequence numbers.
//!
//! On disk: a snapshot (`state.json` plus one file per mailbox, each written atomically)
//! and, after it, the journal of the requests committed since (see [`super::changes`]), each
//! fsync'd before its reply goes out, so a committed write is never lost and costs the size
//! of what it changed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::xml::Element;
use crate::journal::{sync_dir, write_atomic};

pub(crate) const SNAPSHOT_FILE: &str = "state.json";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    pub domain: String,
    /// sAMAccountName of the service account; it logs on as `DOMAIN\name` or `name@domain`.
    pub service_account: String,
    pub password: String,
    pub control_token: String,
    /// Global change sequence; every write takes the next value (also used as ChangeKey).
    pub seq: u64,
    pub mailboxes: BTreeMap<String, Mailbox>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Mailbox {
    pub address: String,
    pub display_name: String,
    pub impersonation: bool,
    #[serde(default)]
    pub redirect_addr: Option<String>,
    #[serde(default)]
    pub redirect_url: Option<String>,
    /// Moved to Exchange Online: a remote mailbox here, which EWS impersonation no longer
    /// reaches (`ErrorNonExistentMailbox`); its Autodiscover answer is the redirect above.
    #[serde(default)]
    pub remote: bool,
    /// The owner's time zone (IANA), which Outlook shows the calendar in; empty: UTC.
    #[serde(default)]
    pub time_zone: String,
    pub folders: BTreeMap<u64, Folder>,
    pub items: BTreeMap<u64, Item>,
    #[serde(default)]
    pub tombstones: Vec<Tombstone>,
    /// Deleted folders, for SyncFolderHierarchy (`folder` is the former parent).
    #[serde(default)]
    pub folder_tombstones: Vec<Tombstone>,
    /// Items changed in place (same id) by the request being committed; the journal finds
    /// every other change from sequence numbers alone.
    #[serde(skip)]
    pub touched: BTreeSet<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Folder {
    pub id: u64,
    pub parent: Option<u64>,
    pub name: String,
    pub class: String,
    pub distinguished: Option<String>,
    pub created_seq: u64,
    pub seq: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Item {
    pub id: u64,
    pub folder: u64,
    /// Element name of the item: Contact, CalendarItem, Message, Item.
    pub kind: String,
    /// The properties as sent (element trees, schema order restored on output).
    pub props: Vec<Element>,
    /// Sequence number at which each property (by element name or extended-property key)
    /// last changed; AutoResolve uses it to decide whether a stale update conflicts.
    #[serde(default)]
    pub prop_seq: BTreeMap<String, u64>,
    pub created_seq: u64,
    pub seq: u64,
    pub created: String,
    pub modified: String,
    /// Recurring masters: instance index → properties that override the master's.
    #[serde(default)]
    pub modified_occurrences: BTreeMap<u32, Vec<Element>>,
    #[serde(default)]
    pub deleted_occurrences: BTreeSet<u32>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Tombstone {
    pub id: u64,
    pub folder: u64,
    pub created_seq: u64,
    pub seq: u64,
}

impl Item {
    pub fn prop(&self, name: &str) -> Option<&Element> {
        self.props.iter().find(|p| p.name == name)
    }
    pub fn prop_text(&self, name: &str) -> Option<&str> {
        self.prop(name).map(|p| p.text.trim())
    }
}

/// Opaque identifiers shaped like Exchange's EwsId: base64 of a binary record (about 150
/// characters for a typical mailbox), so clients that store, index or size ids see what
/// Exchange gives them. The record follows the EwsId layout (compression byte, storage type,
/// length-prefixed mailbox moniker, id-processing instruction, length-prefixed store entry
/// id); ids from earlier simulator versions (base64 of `exsim|…`) still decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Id {
    Folder {
        mailbox: String,
        id: u64,
    },
    Item {
        mailbox: String,
        id: u64,
    },
    Occurrence {
        mailbox: String,
        id: u64,
        index: u32,
    },
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// First bytes of an id: no compression, a mailbox-item storage type (Exchange's ids start
/// `AAM` in base64 for the same reason).
const ID_HEADER: [u8; 2] = [0x00, 0x03];
/// Store entry ids are this long, like a MAPI message entry id with its long-term ids.
const ENTRY_LEN: usize = 88;
/// The provider UID every entry id of this store carries (fixed, as a store's is).
const PROVIDER: [u8; 16] = [
    0x2f, 0x8b, 0x9e, 0x41, 0x6c, 0x0d, 0x4a, 0x5b, 0x93, 0x17, 0xe4, 0x62, 0x1a, 0xc5, 0x70, 0x3d,
];

impl Id {
    fn mailbox(&self) -> &str {
        match self {
            Id::Folder { mailbox, .. }
            | Id::Item { mailbox, .. }
            | Id::Occurrence { mailbox, .. } => mailbox,
        }
    }

    /// The store entry id (what ConvertId's EntryId / HexEntryId formats carry): flags,
    /// provider UID, kind, object number, instance index, zero fill.
    pub(crate) fn entry_id(&self) -> Vec<u8> {
        let (kind, id, index) = match self {
            Id::Folder { id, .. } => (b'f', *id, 0),
            Id::Item { id, .. } => (b'i', *id, 0),
            Id::Occurrence { id, index, .. } => (b'o', *id, *index),
        };
        let mut e = Vec::with_capacity(ENTRY_LEN);
        e.extend_from_slice(&[0, 0, 0, 0]);
        e.extend_from_slice(&PROVIDER);
        e.push(kind);
        e.extend_from_slice(&id.to_be_bytes());
        e.extend_from_slice(&index.to_be_bytes());
        e.resize(ENTRY_LEN, 0);
        e
    }

    /// The id an entry id names in `mailbox`, if it is one of this store's.
    pub(crate) fn from_entry_id(mailbox: &str, e: &[u8]) -> Option<Id> {
        if e.len() != ENTRY_LEN || e.get(4..20)? != PROVIDER {
            return None;
        }
        let id = u64::from_be_bytes(e.get(21..29)?.try_into().ok()?);
        let index = u32::from_be_bytes(e.get(29..33)?.try_into().ok()?);
        let mailbox = mailbox.to_ascii_lowercase();
        match e.get(20)? {
            b'f' => Some(Id::Folder { mailbox, id }),
            b'i' => Some(Id::Item { mailbox, id }),
            b'o' => Some(Id::Occurrence { mailbox, id, index }),
            _ => None,
        }
    }

    pub(crate) fn encode(&self) -> String {
        let mb = self.mailbox().as_bytes();
        let entry = self.entry_id();
        let mut raw = Vec::with_capacity(7 + mb.len() + entry.len());
        raw.extend_from_slice(&ID_HEADER);
        raw.extend_from_slice(&(mb.len() as u16).to_le_bytes());
        raw.extend_from_slice(mb);
        // Id-processing instruction: 1 marks an occurrence (a recurrence instance).
        raw.push(u8::from(matches!(self, Id::Occurrence { .. })));
        raw.extend_from_slice(&(entry.len() as u16).to_le_bytes());
        raw.extend_from_slice(&entry);
        B64.encode(raw)
    }

    pub(crate) fn decode(s: &str) -> Option<Id> {
        let raw = B64.decode(s.trim()).ok()?;
        if raw.starts_with(b"exsim|") {
            return Self::decode_legacy(&raw);
        }
        if raw.get(..2)? != ID_HEADER {
            return None;
        }
        let mlen = u16::from_le_bytes([*raw.get(2)?, *raw.get(3)?]) as usize;
        let mailbox = std::str::from_utf8(raw.get(4..4 + mlen)?).ok()?;
        let rest = raw.get(4 + mlen..)?;
        let elen = u16::from_le_bytes([*rest.get(1)?, *rest.get(2)?]) as usize;
        let entry = rest.get(3..)?;
        if entry.len() != elen {
            return None;
        }
        Self::from_entry_id(mailbox, entry)
    }

    /// Ids as earlier versions issued them (clients may still hold some).
    fn decode_legacy(raw: &[u8]) -> Option<Id> {
        let raw = std::str::from_utf8(raw).ok()?;
        let parts: Vec<&str> = raw.split('|').collect();
        match parts.as_slice() {
            ["exsim", mb, "f", id] => Some(Id::Folder {
                mailbox: mb.to_string(),
                id: id.parse().ok()?,
            }),
            ["exsim", mb, "i", id] => Some(Id::Item {
                mailbox: mb.to_string(),
                id: id.parse().ok()?,
            }),
            ["exsim", mb, "o", id, idx] => Some(Id::Occurrence {
                mailbox: mb.to_string(),
                id: id.parse().ok()?,
                index: idx.parse().ok()?,
            }),
            _ => None,
        }
    }
}

/// Change key header, as Exchange's keys begin (`EQAAABYAAAA` in base64): a 4-byte kind and
/// the 4-byte length (22) of the predecessor-change-list entry that follows.
const CK_HEADER: [u8; 8] = [0x11, 0, 0, 0, 0x16, 0, 0, 0];

/// A change key like Exchange's: 30 bytes (40 base64 characters), the store's 16-byte UID
/// and a 6-byte change number, here the object's sequence number.
pub(crate) fn change_key(seq: u64) -> String {
    let mut raw = Vec::with_capacity(30);
    raw.extend_from_slice(&CK_HEADER);
    raw.extend_from_slice(&PROVIDER);
    raw.extend_from_slice(&seq.to_be_bytes()[2..]);
    B64.encode(raw)
}

pub(crate) fn parse_change_key(s: &str) -> Option<u64> {
    let raw = B64.decode(s.trim()).ok()?;
    if let Some(legacy) = raw.strip_prefix(b"ck|") {
        return std::str::from_utf8(legacy).ok()?.parse().ok();
    }
    if raw.len() != 30 || raw.get(..8)? != CK_HEADER || raw.get(8..24)? != PROVIDER {
        return None;
    }
    let mut n = [0u8; 8];
    n[2..].copy_from_slice(raw.get(24..30)?);
    Some(u64::from_be_bytes(n))
}

pub(crate) fn now_string() -> String {
    Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// The folders every mailbox starts with: (key, parent key, class, display name, whether the
/// key is a DistinguishedFolderId). Besides the usual well-known folders Exchange creates
/// the system folders clients meet when they walk a mailbox: Sync Issues and its children,
/// Conversation History, the search and Recoverable Items roots, and the system folders
/// Exchange 2016/2019 keep under Contacts: Recipient Cache and PeopleCentricConversation
/// Buddies (which have DistinguishedFolderIds), Companies, Organizational Contacts and GAL
/// Contacts (which do not), each with the contact subclass Exchange gives it. All but
/// Companies are hidden from Outlook's folder list; a client walking Contacts still sees them.
const DISTINGUISHED: &[(&str, Option<&str>, &str, &str, bool)] = &[
    // Exchange answers the mailbox root with an empty DisplayName (`<t:DisplayName/>`, as a
    // recorded Exchange Online GetFolder of `root` shows).
    ("root", None, "", "", true),
    (
        "msgfolderroot",
        Some("root"),
        "IPF.Note",
        "Top of Information Store",
        true,
    ),
    ("inbox", Some("msgfolderroot"), "IPF.Note", "Inbox", true),
    (
        "calendar",
        Some("msgfolderroot"),
        "IPF.Appointment",
        "Calendar",
        true,
    ),
    (
        "contacts",
        Some("msgfolderroot"),
        "IPF.Contact",
        "Contacts",
        true,
    ),
    (
        "recipientcache",
        Some("contacts"),
        "IPF.Contact.RecipientCache",
        "Recipient Cache",
        true,
    ),
    (
        "quickcontacts",
        Some("contacts"),
        "IPF.Contact.MOC.QuickContacts",
        "PeopleCentricConversation Buddies",
        true,
    ),
    (
        "companies",
        Some("contacts"),
        "IPF.Contact.Company",
        "Companies",
        false,
    ),
    (
        "organizationalcontacts",
        Some("contacts"),
        "IPF.Contact.OrganizationalContacts",
        "Organizational Contacts",
        false,
    ),
    (
        "galcontacts",
        Some("contacts"),
        "IPF.Contact.GalContacts",
        "GAL Contacts",
        false,
    ),
    (
        "deleteditems",
        Some("msgfolderroot"),
        "IPF.Note",
        "Deleted Items",
        true,
    ),
    ("drafts", Some("msgfolderroot"), "IPF.Note", "Drafts", true),
    (
        "sentitems",
        Some("msgfolderroot"),
        "IPF.Note",
        "Sent Items",
        true,
    ),
    ("outbox", Some("msgfolderroot"), "IPF.Note", "Outbox", true),
    (
        "junkemail",
        Some("msgfolderroot"),
        "IPF.Note",
        "Junk Email",
        true,
    ),
    ("tasks", Some("msgfolderroot"), "IPF.Task", "Tasks", true),
    (
        "notes",
        Some("msgfolderroot"),
        "IPF.StickyNote",
        "Notes",
        true,
    ),
    (
        "journal",
        Some("msgfolderroot"),
        "IPF.Journal",
        "Journal",
        true,
    ),
    (
        "conversationhistory",
        Some("msgfolderroot"),
        "IPF.Note",
        "Conversation History",
        true,
    ),
    (
        "syncissues",
        Some("msgfolderroot"),
        "IPF.Note",
        "Sync Issues",
        true,
    ),
    (
        "conflicts",
        Some("syncissues"),
        "IPF.Note",
        "Conflicts",
        true,
    ),
    (
        "localfailures",
        Some("syncissues"),
        "IPF.Note",
        "Local Failures",
        true,
    ),
    (
        "serverfailures",
        Some("syncissues"),
        "IPF.Note",
        "Server Failures",
        true,
    ),
    ("searchfolders", Some("root"), "", "Finder", true),
    (
        "recoverableitemsroot",
        Some("root"),
        "",
        "Recoverable Items",
        true,
    ),
    (
        "recoverableitemsdeletions",
        Some("recoverableitemsroot"),
        "",
        "Deletions",
        true,
    ),
    (
        "recoverableitemsversions",
        Some("recoverableitemsroot"),
        "",
        "Versions",
        true,
    ),
    (
        "recoverableitemspurges",
        Some("recoverableitemsroot"),
        "",
        "Purges",
        true,
    ),
];

impl State {
    pub fn new(domain: &str, service_account: &str, password: &str, token: &str) -> State {
        State {
            domain: domain.to_string(),
            service_account: service_account.to_string(),
            password: password.to_string(),
            control_token: token.to_string(),
            seq: 0,
            mailboxes: BTreeMap::new(),
        }
    }

    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub fn service_address(&self) -> String {
        format!("{}@{}", self.service_account, self.domain)
    }

    /// Creates a mailbox with its distinguished folders; returns false if it existed.
    pub fn add_mailbox(&mut self, address: &str, display_name: &str, impersonation: bool) -> bool {
        let key = address.to_ascii_lowercase();
        if self.mailboxes.contains_key(&key) {
            return false;
        }
        let mut mb = Mailbox {
            address: address.to_string(),
            display_name: display_name.to_string(),
            impersonation,
            ..Default::default()
        };
        let mut ids: BTreeMap<&str, u64> = BTreeMap::new();
        for (name, parent, class, display, well_known) in DISTINGUISHED {
            let seq = self.next_seq();
            let parent_id = parent.and_then(|p| ids.get(p).copied());
            mb.folders.insert(
                seq,
                Folder {
                    id: seq,
                    parent: parent_id,
                    name: display.to_string(),
                    class: class.to_string(),
                    distinguished: well_known.then(|| name.to_string()),
                    created_seq: seq,
                    seq,
                },
            );
            ids.insert(name, seq);
        }
        self.mailboxes.insert(key, mb);
        true
    }

    pub fn mailbox(&self, address: &str) -> Option<&Mailbox> {
        self.mailboxes.get(&address.to_ascii_lowercase())
    }

    pub fn mailbox_mut(&mut self, address: &str) -> Option<&mut Mailbox> {
        self.mailboxes.get_mut(&address.to_ascii_lowercase())
    }
}

impl Mailbox {
    /// Notes that item `id` is about to change in place, so the commit journals it. Call it
    /// before changing an existing item without giving it a new id.
    pub(crate) fn changed_in_place(&mut self, id: u64) {
        self.touched.insert(id);
    }

    pub fn key(&self) -> String {
        self.address.to_ascii_lowercase()
    }

    pub fn distinguished(&self, name: &str) -> Option<&Folder> {
        self.folders
            .values()
            .find(|f| f.distinguished.as_deref() == Some(name))
    }

    /// The id of the well-known folder `name`, made with id `seq` under its usual parent when
    /// the mailbox lacks it (a snapshot from a simulator that did not create it); `None` for
    /// a name that is not one of [`DISTINGUISHED`].
    pub(crate) fn distinguished_or_add(&mut self, name: &str, seq: u64) -> Option<u64> {
        if let Some(folder) = self.distinguished(name) {
            return Some(folder.id);
        }
        let (_, parent, class, display, _) = DISTINGUISHED.iter().find(|d| d.0 == name && d.4)?;
        let parent = parent
            .and_then(|p| self.distinguished(p))
            .or_else(|| self.distinguished("root"))
            .map(|f| f.id);
        self.folders.insert(
            seq,
            Folder {
                id: seq,
                parent,
                name: display.to_string(),
                class: class.to_string(),
                distinguished: Some(name.to_string()),
                created_seq: seq,
                seq,
            },
        );
        Some(seq)
    }
}

/// What `state.json` holds: everything but the mailboxes' contents, which live in one file
/// per mailbox so a write costs the size of one mailbox, not of the whole store. Its `seq`
/// may lag; `load` takes the highest sequence any mailbox file recorded.
#[derive(Serialize, Deserialize)]
struct Meta {
    domain: String,
    service_account: String,
    password: String,
    control_token: String,
    seq: u64,
    mailboxes: Vec<String>,
}

const MAILBOX_DIR: &str = "mailboxes";

fn mailbox_file(dir: &Path, key: &str) -> PathBuf {
    let name: String = key.bytes().map(|b| format!("{b:02x}")).collect();
    dir.join(MAILBOX_DIR).join(format!("{name}.json"))
}

fn save_meta(dir: &Path, state: &State) -> Result<u64> {
    let meta = Meta {
        domain: state.domain.clone(),
        service_account: state.service_account.clone(),
        password: state.password.clone(),
        control_token: state.control_token.clone(),
        seq: state.seq,
        mailboxes: state.mailboxes.keys().cloned().collect(),
    };
    let data = serde_json::to_vec(&meta).context("serialising state")?;
    write_atomic(&dir.join(SNAPSHOT_FILE), &data)?;
    Ok(data.len() as u64)
}

/// One mailbox file: the mailbox plus the global sequence at the time it was written, so
/// one fsync'd file per request is enough to never reuse a sequence number after a restart.
#[derive(Serialize)]
struct MailboxOut<'a> {
    seq: u64,
    mailbox: &'a Mailbox,
}

#[derive(Deserialize)]
struct MailboxIn {
    seq: u64,
    mailbox: Mailbox,
}

fn write_mailbox(dir: &Path, state: &State, key: &str, mb: &Mailbox) -> Result<u64> {
    let data = serde_json::to_vec(&MailboxOut {
        seq: state.seq,
        mailbox: mb,
    })
    .context("serialising mailbox")?;
    write_atomic(&mailbox_file(dir, key), &data)?;
    Ok(data.len() as u64)
}

/// Writes the files of the mailboxes `keys` (those of `state`; others are skipped) and the
/// store's meta file, which names every mailbox, as the snapshot (on start, and when the
/// journal outgrows it). Returns each mailbox file's size and the meta file's. The renames are
/// durable when it returns, so the journal the snapshot replaces may be emptied once every
/// mailbox it changed was written.
pub(crate) fn save<'k>(
    dir: &Path,
    state: &State,
    keys: impl IntoIterator<Item = &'k String>,
) -> Result<Saved> {
    fs::create_dir_all(dir.join(MAILBOX_DIR))
        .with_context(|| format!("creating {}", dir.join(MAILBOX_DIR).display()))?;
    let mut mailboxes = Vec::new();
    for key in keys {
        if let Some(mb) = state.mailboxes.get(key) {
            mailboxes.push((key.clone(), write_mailbox(dir, state, key, mb)?));
        }
    }
    sync_dir(&dir.join(MAILBOX_DIR))?;
    let meta = save_meta(dir, state)?;
    sync_dir(dir)?;
    Ok(Saved { mailboxes, meta })
}

/// What [`save`] wrote: each mailbox file's size, and the meta file's.
pub(crate) struct Saved {
    pub mailboxes: Vec<(String, u64)>,
    pub meta: u64,
}

fn highest_seq(mb: &Mailbox) -> u64 {
    let folders = mb.folders.values().map(|f| f.seq.max(f.id));
    let items = mb.items.values().map(|i| i.seq.max(i.id));
    let tombs = mb
        .tombstones
        .iter()
        .chain(mb.folder_tombstones.iter())
        .map(|t| t.seq);
    folders.chain(items).chain(tombs).max().unwrap_or(0)
}

/// Loads the snapshot from `dir`, if any, and replays the journal after it.
pub(crate) fn load(dir: &Path) -> Result<Option<State>> {
    let p = dir.join(SNAPSHOT_FILE);
    if !p.exists() {
        return Ok(None);
    }
    let text = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    let meta: Meta =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))?;
    let mut st = State::new(
        &meta.domain,
        &meta.service_account,
        &meta.password,
        &meta.control_token,
    );
    st.seq = meta.seq;
    for key in &meta.mailboxes {
        let f = mailbox_file(dir, key);
        let text = fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        let file: MailboxIn =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", f.display()))?;
        // Never hand out a sequence number (an id, change key or sync state) twice.
        st.seq = st.seq.max(file.seq).max(highest_seq(&file.mailbox));
        st.mailboxes.insert(key.clone(), file.mailbox);
    }
    super::changes::replay(dir, &mut st)?;
    Ok(Some(st))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_garbage() {
        let id = Id::Occurrence {
            mailbox: "a@b.test".into(),
            id: 7,
            index: 3,
        };
        assert_eq!(Id::decode(&id.encode()), Some(id.clone()));
        assert_eq!(Id::decode("DUMMY"), None);
        assert_eq!(parse_change_key(&change_key(42)), Some(42));
        // Exchange-like sizes: ~150-character ids, 40-character change keys.
        assert!((140..=170).contains(&id.encode().len()), "{}", id.encode());
        assert!(id.encode().starts_with("AAM"));
        assert_eq!(change_key(7).len(), 40);
        assert!(change_key(7).starts_with("EQAAABYAAAA"));
        // Ids and keys from earlier versions still resolve.
        assert_eq!(Id::decode(&B64.encode("exsim|a@b.test|o|7|3")), Some(id));
        assert_eq!(parse_change_key(&B64.encode("ck|42")), Some(42));
        // A truncated id is malformed, not a panic.
        let enc = Id::Item {
            mailbox: "a@b.test".into(),
            id: 1,
        }
        .encode();
        let raw = B64.decode(&enc).unwrap();
        for cut in 0..raw.len() {
            assert_eq!(Id::decode(&B64.encode(&raw[..cut])), None);
        }
    }

    #[test]
    fn snapshot_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = State::new("contoso.test", "svc", "pw", "tok");
        assert!(st.add_mailbox("A@contoso.test", "A", true));
        assert!(!st.add_mailbox("a@contoso.test", "A", true));
        save(dir.path(), &st, st.mailboxes.keys()).unwrap();
        let back = load(dir.path()).unwrap().unwrap();
        assert_eq!(back.seq, st.seq);
        // A mailbox file newer than state.json (earlier simulators wrote one per request)
        // still wins.
        let mut newer = back.clone();
        let seq = newer.next_seq();
        newer
            .mailbox_mut("a@contoso.test")
            .unwrap()
            .folders
            .values_mut()
            .for_each(|f| f.seq = seq);
        let mb = newer.mailbox("a@contoso.test").unwrap();
        write_mailbox(dir.path(), &newer, "a@contoso.test", mb).unwrap();
        assert_eq!(load(dir.path()).unwrap().unwrap().seq, seq);
        // The sequence also survives when it was spent without touching an object.
        newer.next_seq();
        let mb = newer.mailbox("a@contoso.test").unwrap();
        write_mailbox(dir.path(), &newer, "a@contoso.test", mb).unwrap();
        assert_eq!(load(dir.path()).unwrap().unwrap().seq, seq + 1);
        assert!(back
            .mailbox("a@CONTOSO.test")
            .unwrap()
            .distinguished("contacts")
            .is_some());
    }
}
