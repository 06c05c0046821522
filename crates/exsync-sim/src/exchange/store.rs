//! Mailbox state: mailboxes, folders, items as property bags, change sequence numbers.
//!
//! The whole state is one JSON snapshot written atomically (temp file, fsync, rename) after
//! every mutating request and before the reply goes out, so a committed write is never lost.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::xml::Element;

pub const SNAPSHOT_FILE: &str = "state.json";

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
    pub folders: BTreeMap<u64, Folder>,
    pub items: BTreeMap<u64, Item>,
    #[serde(default)]
    pub tombstones: Vec<Tombstone>,
    /// Deleted folders, for SyncFolderHierarchy (`folder` is the former parent).
    #[serde(default)]
    pub folder_tombstones: Vec<Tombstone>,
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

/// Opaque identifiers: base64 of a readable form, as Exchange ids are opaque base64.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Id {
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

impl Id {
    pub fn encode(&self) -> String {
        let raw = match self {
            Id::Folder { mailbox, id } => format!("exsim|{mailbox}|f|{id}"),
            Id::Item { mailbox, id } => format!("exsim|{mailbox}|i|{id}"),
            Id::Occurrence { mailbox, id, index } => format!("exsim|{mailbox}|o|{id}|{index}"),
        };
        B64.encode(raw)
    }

    pub fn decode(s: &str) -> Option<Id> {
        let raw = B64.decode(s.trim()).ok()?;
        let raw = String::from_utf8(raw).ok()?;
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

pub fn change_key(seq: u64) -> String {
    B64.encode(format!("ck|{seq}"))
}

pub fn parse_change_key(s: &str) -> Option<u64> {
    let raw = B64.decode(s.trim()).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    raw.strip_prefix("ck|")?.parse().ok()
}

pub fn now_string() -> String {
    Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// The distinguished folders every mailbox has: (id, parent, class).
const DISTINGUISHED: &[(&str, Option<&str>, &str, &str)] = &[
    ("root", None, "", "Root"),
    (
        "msgfolderroot",
        Some("root"),
        "IPF.Note",
        "Top of Information Store",
    ),
    ("inbox", Some("msgfolderroot"), "IPF.Note", "Inbox"),
    (
        "calendar",
        Some("msgfolderroot"),
        "IPF.Appointment",
        "Calendar",
    ),
    ("contacts", Some("msgfolderroot"), "IPF.Contact", "Contacts"),
    (
        "deleteditems",
        Some("msgfolderroot"),
        "IPF.Note",
        "Deleted Items",
    ),
    ("drafts", Some("msgfolderroot"), "IPF.Note", "Drafts"),
    ("sentitems", Some("msgfolderroot"), "IPF.Note", "Sent Items"),
    ("outbox", Some("msgfolderroot"), "IPF.Note", "Outbox"),
    ("junkemail", Some("msgfolderroot"), "IPF.Note", "Junk Email"),
    ("tasks", Some("msgfolderroot"), "IPF.Task", "Tasks"),
    ("notes", Some("msgfolderroot"), "IPF.StickyNote", "Notes"),
    ("journal", Some("msgfolderroot"), "IPF.Journal", "Journal"),
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
        for (name, parent, class, display) in DISTINGUISHED {
            let seq = self.next_seq();
            let parent_id = parent.and_then(|p| ids.get(p).copied());
            mb.folders.insert(
                seq,
                Folder {
                    id: seq,
                    parent: parent_id,
                    name: display.to_string(),
                    class: class.to_string(),
                    distinguished: Some(name.to_string()),
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
    pub fn key(&self) -> String {
        self.address.to_ascii_lowercase()
    }

    pub fn distinguished(&self, name: &str) -> Option<&Folder> {
        self.folders
            .values()
            .find(|f| f.distinguished.as_deref() == Some(name))
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

/// Writes `data` to `path` atomically (temp file, fsync, rename), mode 0600: it holds secrets.
fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(data)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
    }
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

fn save_meta(dir: &Path, state: &State) -> Result<()> {
    let meta = Meta {
        domain: state.domain.clone(),
        service_account: state.service_account.clone(),
        password: state.password.clone(),
        control_token: state.control_token.clone(),
        seq: state.seq,
        mailboxes: state.mailboxes.keys().cloned().collect(),
    };
    let data = serde_json::to_vec(&meta).context("serialising state")?;
    write_atomic(&dir.join(SNAPSHOT_FILE), &data)
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

fn write_mailbox(dir: &Path, state: &State, key: &str, mb: &Mailbox) -> Result<()> {
    let data = serde_json::to_vec(&MailboxOut {
        seq: state.seq,
        mailbox: mb,
    })
    .context("serialising mailbox")?;
    write_atomic(&mailbox_file(dir, key), &data)
}

/// Persists one mailbox (an EWS write touches only the mailbox it acts on).
pub fn save_mailbox(dir: &Path, state: &State, key: &str) -> Result<()> {
    match state.mailboxes.get(key) {
        Some(mb) => write_mailbox(dir, state, key, mb),
        None => save(dir, state),
    }
}

/// Persists everything (first start, control API changes).
pub fn save(dir: &Path, state: &State) -> Result<()> {
    fs::create_dir_all(dir.join(MAILBOX_DIR))
        .with_context(|| format!("creating {}", dir.join(MAILBOX_DIR).display()))?;
    for (key, mb) in &state.mailboxes {
        write_mailbox(dir, state, key, mb)?;
    }
    save_meta(dir, state)
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

/// Loads the snapshot from `dir`, if any.
pub fn load(dir: &Path) -> Result<Option<State>> {
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
        assert_eq!(Id::decode(&id.encode()), Some(id));
        assert_eq!(Id::decode("DUMMY"), None);
        assert_eq!(parse_change_key(&change_key(42)), Some(42));
    }

    #[test]
    fn snapshot_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = State::new("contoso.test", "svc", "pw", "tok");
        assert!(st.add_mailbox("A@contoso.test", "A", true));
        assert!(!st.add_mailbox("a@contoso.test", "A", true));
        save(dir.path(), &st).unwrap();
        let back = load(dir.path()).unwrap().unwrap();
        assert_eq!(back.seq, st.seq);
        // A mailbox written after state.json (crash between the two writes) still wins.
        let mut newer = back.clone();
        let seq = newer.next_seq();
        newer
            .mailbox_mut("a@contoso.test")
            .unwrap()
            .folders
            .values_mut()
            .for_each(|f| f.seq = seq);
        save_mailbox(dir.path(), &newer, "a@contoso.test").unwrap();
        assert_eq!(load(dir.path()).unwrap().unwrap().seq, seq);
        // The sequence also survives when it was spent without touching an object.
        newer.next_seq();
        save_mailbox(dir.path(), &newer, "a@contoso.test").unwrap();
        assert_eq!(load(dir.path()).unwrap().unwrap().seq, seq + 1);
        assert!(back
            .mailbox("a@CONTOSO.test")
            .unwrap()
            .distinguished("contacts")
            .is_some());
    }
}
