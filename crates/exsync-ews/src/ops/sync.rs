//! SyncFolderItems: the per-folder change cursor.

use exsync_core::ExchangeId;

use super::FolderRef;
use crate::mapping::ItemRef;
use crate::xml::{Element, XmlWriter};

/// The most changes Exchange returns per call (the schema's bound).
pub const MAX_CHANGES: u16 = 512;

/// SyncFolderItems asking for ids only; content is fetched with GetItem in batches.
pub fn request(folder: &FolderRef, state: Option<&str>, max_changes: u16) -> String {
    let max = max_changes.clamp(1, MAX_CHANGES).to_string();
    let mut w = XmlWriter::new();
    w.open("m:SyncFolderItems", &[])
        .open("m:ItemShape", &[])
        .text("t:BaseShape", "IdOnly")
        .close("m:ItemShape")
        .open("m:SyncFolderId", &[]);
    folder.write(&mut w);
    w.close("m:SyncFolderId");
    if let Some(state) = state.filter(|s| !s.is_empty()) {
        w.text("m:SyncState", state);
    }
    w.text("m:MaxChangesReturned", &max)
        .text("m:SyncScope", "NormalItems")
        .close("m:SyncFolderItems");
    w.finish()
}

/// One entry of a page of changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncChange {
    /// Created or updated: the element name says which kind of item it is.
    Upsert {
        /// Its id and current ChangeKey.
        item: ItemRef,
        /// The item's element name (`Contact`, `CalendarItem`, …).
        element: String,
    },
    /// Deleted (or moved out of the folder).
    Deleted(ExchangeId),
}

/// One page of SyncFolderItems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPage {
    /// The state to ask from next time.
    pub state: String,
    /// No more changes after this page.
    pub last: bool,
    /// The page's changes, in server order.
    pub changes: Vec<SyncChange>,
}

/// Reads a successful SyncFolderItemsResponseMessage. Read-flag changes do not concern
/// contacts or events and are dropped.
pub fn read(message: &Element) -> Result<SyncPage, String> {
    let state = message
        .child_text("SyncState")
        .ok_or("SyncFolderItems response without SyncState")?
        .trim()
        .to_owned();
    let last = message
        .child_text("IncludesLastItemInRange")
        .map(str::trim)
        .is_none_or(|v| v == "true");
    let mut changes = Vec::new();
    if let Some(list) = message.child("Changes") {
        for change in &list.children {
            match change.name.as_str() {
                "Create" | "Update" => {
                    let element = change
                        .children
                        .first()
                        .ok_or("a Create/Update change without an item")?;
                    let item = element
                        .child("ItemId")
                        .and_then(ItemRef::read)
                        .ok_or("a changed item without ItemId")?;
                    changes.push(SyncChange::Upsert {
                        item,
                        element: element.name.clone(),
                    });
                }
                "Delete" => {
                    let id = change
                        .child("ItemId")
                        .and_then(|i| i.attr("Id"))
                        .ok_or("a Delete change without ItemId")?;
                    changes.push(SyncChange::Deleted(ExchangeId::new(id)));
                }
                _ => {}
            }
        }
    }
    Ok(SyncPage {
        state,
        last,
        changes,
    })
}
