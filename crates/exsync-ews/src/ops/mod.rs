//! Request bodies and response readers for each EWS operation we use. Pure functions: the
//! client sends what these build and hands them what came back.

pub mod folders;
pub mod items;
pub mod sync;

use crate::error::ResponseError;
use crate::mapping::ItemRef;
use crate::xml::{Element, XmlWriter};

/// A folder's id and ChangeKey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderRef {
    /// The folder's EWS id.
    pub id: String,
    /// The folder's version, which requests naming the folder carry.
    pub change_key: String,
}

impl FolderRef {
    /// Reads a `FolderId` element.
    pub fn read(folder_id: &Element) -> Option<FolderRef> {
        Some(FolderRef {
            id: folder_id.attr("Id").filter(|s| !s.is_empty())?.to_owned(),
            change_key: folder_id.attr("ChangeKey").unwrap_or("").to_owned(),
        })
    }

    pub(crate) fn write(&self, w: &mut XmlWriter) {
        w.empty("t:FolderId", &[("Id", &self.id)]);
    }
}

/// The outcome of one item of a batch.
pub(crate) type ItemResult<T> = Result<T, ResponseError>;

/// The ItemId of the (first) item inside a response message's `Items`.
pub(crate) fn first_item_ref(message: &Element) -> Option<ItemRef> {
    message
        .child("Items")?
        .children
        .first()?
        .child("ItemId")
        .and_then(ItemRef::read)
}

/// The first item element inside a response message's `Items`.
pub(crate) fn first_item(message: &Element) -> Option<&Element> {
    message.child("Items")?.children.first()
}
