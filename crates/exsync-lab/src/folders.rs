//! A mailbox's folders in their user's hands, on whichever backend serves the user: listed,
//! made, renamed, moved and deleted as in Outlook, through the Exchange simulator's control API
//! on premises and the Graph simulator's online, so one test body runs on both. None of it
//! counts as a request a test measures.

use anyhow::{Context, Result};
use exsync_engine::sync::mailboxes::Backend;
use exsync_engine::sync::sides::MailboxSide;
use serde_json::{json, Value};

use super::{Lab, LabUser};

/// A folder as its user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxFolder {
    pub id: String,
    pub name: String,
    pub parent: Option<String>,
    /// The folder's well-known role (`contacts`, `deleteditems`, `msgfolderroot`…), if any.
    pub role: Option<String>,
    /// Items in the folder itself.
    pub items: usize,
}

/// What the user does to a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderChange {
    Rename(String),
    /// Under the folder with this id.
    MoveTo(String),
    /// Into Deleted Items, as Outlook's Delete does.
    DeleteToDeletedItems,
    /// For good.
    DeleteHard,
}

impl Lab {
    fn online(&self, user: &LabUser) -> bool {
        self.syncer.exchange.backend(&user.key) == Backend::Graph
    }

    fn graph_folders_path(user: &LabUser) -> String {
        format!("/mailboxes/{}/contactFolders", user.key.as_str())
    }

    /// The user's folders. On premises every folder of the mailbox; online the contact
    /// folders, the Contacts folder with the role `contacts`, and Deleted Items (a mail folder,
    /// with the role `deleteditems`; its own items are not counted).
    pub async fn mailbox_folders(&self, user: &LabUser) -> Result<Vec<MailboxFolder>> {
        let text = |v: &Value, key: &str| v[key].as_str().map(str::to_owned);
        let count = |v: &Value| v["items"].as_u64().unwrap_or(0) as usize;
        if self.online(user) {
            let listed = self
                .graph_control(
                    reqwest::Method::GET,
                    &Self::graph_folders_path(user),
                    &Value::Null,
                )
                .await?;
            let root = text(&listed, "root").context("no Contacts folder listed")?;
            let bin = MailboxFolder {
                id: text(&listed, "bin").context("no Deleted Items listed")?,
                name: "Deleted Items".into(),
                parent: None,
                role: Some("deleteditems".into()),
                items: 0,
            };
            return Ok(listed["folders"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| {
                    let id = text(f, "id").unwrap_or_default();
                    MailboxFolder {
                        role: (id == root).then(|| "contacts".to_owned()),
                        id,
                        name: text(f, "name").unwrap_or_default(),
                        parent: text(f, "parent"),
                        items: count(f),
                    }
                })
                .chain([bin])
                .collect());
        }
        let state = self
            .exchange_control(reqwest::Method::GET, "/state", &Value::Null)
            .await?;
        let mailbox = state["mailboxes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| {
                m["address"]
                    .as_str()
                    .is_some_and(|a| a.eq_ignore_ascii_case(user.key.as_str()))
            })
            .with_context(|| format!("no mailbox {} in the simulator", user.key))?;
        Ok(mailbox["folders"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| MailboxFolder {
                id: text(f, "id").unwrap_or_default(),
                name: text(f, "name").unwrap_or_default(),
                parent: text(f, "parent"),
                role: text(f, "distinguished"),
                items: count(f),
            })
            .collect())
    }

    /// Makes a contact folder named `name` at the top: of the mailbox on premises, of the
    /// contact folders online (Graph has no other place for one). Returns its id.
    pub async fn new_top_folder(&self, user: &LabUser, name: &str) -> Result<String> {
        let made = if self.online(user) {
            self.graph_control(
                reqwest::Method::POST,
                &Self::graph_folders_path(user),
                &json!({ "name": name }),
            )
            .await?
        } else {
            let folders = self.mailbox_folders(user).await?;
            let top = folders
                .iter()
                .find(|f| f.role.as_deref() == Some("msgfolderroot"))
                .context("the mailbox has no top folder")?;
            self.exchange_control(
                reqwest::Method::POST,
                "/folders",
                &json!({
                    "mailbox": user.key.as_str(),
                    "parent": top.id,
                    "name": name,
                    "class": "IPF.Contact",
                }),
            )
            .await?
        };
        made["id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("the new folder {name:?} has no id: {made}"))
    }

    /// Changes the folder `id` of the user's mailbox as they would in Outlook.
    pub async fn change_folder(
        &self,
        user: &LabUser,
        id: &str,
        change: FolderChange,
    ) -> Result<()> {
        let what = match &change {
            FolderChange::Rename(name) => json!({ "rename": name }),
            FolderChange::MoveTo(to) => json!({ "move_to": to }),
            FolderChange::DeleteToDeletedItems => json!({ "delete": "deleteditems" }),
            FolderChange::DeleteHard => json!({ "delete": "hard" }),
        };
        let mut body = json!({ "folder": id });
        for (k, v) in what.as_object().into_iter().flatten() {
            body[k] = v.clone();
        }
        if self.online(user) {
            let path = format!("{}/change", Self::graph_folders_path(user));
            self.graph_control(reqwest::Method::POST, &path, &body)
                .await?;
        } else {
            body["mailbox"] = json!(user.key.as_str());
            self.exchange_control(reqwest::Method::POST, "/folders/change", &body)
                .await?;
        }
        Ok(())
    }
}
