//! Mailboxes as Lightning Sync leaves them: every CRM contact and event of a user copied into
//! their `Salesforce_Sync` folder and calendar as plain items, without exsync's tag, as an org
//! moving to exsync finds them on its first sync.

use anyhow::{anyhow, Context, Result};
use exsync_core::plan::Change;
use exsync_core::{Contact, Event, ItemKind, Record};
use exsync_ews::XmlWriter;
use serde_json::json;

use super::Lab;

impl Lab {
    /// Copies every user's CRM contacts and events into their mailbox as Lightning Sync would
    /// have: same content, no exsync tag, created by the server (so the copies are modified
    /// after the CRM records). A mailbox in Exchange Online gets its copies as a mailbox move
    /// brings them: made on premises, then moved. Returns how many items were made.
    pub async fn fill_as_lightning_sync(&self) -> Result<usize> {
        let mut made = 0;
        for user in &self.users {
            for kind in [ItemKind::Contact, ItemKind::Event] {
                let ids = self.crm_ids(user, kind).await?;
                let records = self.crm.fetch_changes(kind.into(), &ids).await?;
                let (_, folder) = self
                    .syncer
                    .exchange
                    .ews()
                    .folder_of(&user.key, kind)
                    .await
                    .map_err(|e| anyhow!("{e}"))?;
                for owned in records {
                    let Change::Upsert(item) = owned.change else {
                        continue;
                    };
                    let mut w = XmlWriter::new();
                    match kind {
                        ItemKind::Contact => exsync_ews::write_contact(
                            &mut w,
                            &Contact::from_fields(&item.fields)?,
                            None,
                        ),
                        ItemKind::Event => exsync_ews::write_event(
                            &mut w,
                            &Event::from_fields(&item.fields)?,
                            None,
                        ),
                    }
                    self.exchange_control(
                        reqwest::Method::POST,
                        "/items",
                        &json!({ "mailbox": user.key.as_str(), "folder": folder.id, "xml": w.finish() }),
                    )
                    .await
                    .with_context(|| format!("filling {}'s mailbox", user.key))?;
                    made += 1;
                }
            }
        }
        for user in self.online_users() {
            self.copy_online(user).await?;
        }
        Ok(made)
    }
}
