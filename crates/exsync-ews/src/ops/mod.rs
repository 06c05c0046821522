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
    /// `id` is the name of a folder every mailbox has (`calendar`): requests name it by that
    /// role, so nobody has to look its id up first.
    pub distinguished: bool,
}

impl FolderRef {
    /// Reads a `FolderId` element.
    pub fn read(folder_id: &Element) -> Option<FolderRef> {
        Some(FolderRef {
            id: folder_id.attr("Id").filter(|s| !s.is_empty())?.to_owned(),
            change_key: folder_id.attr("ChangeKey").unwrap_or("").to_owned(),
            distinguished: false,
        })
    }

    /// The folder with this role in the mailbox (`calendar`, `contacts`), named by it.
    pub fn distinguished(role: &str) -> FolderRef {
        FolderRef {
            id: role.to_owned(),
            change_key: String::new(),
            distinguished: true,
        }
    }

    pub(crate) fn write(&self, w: &mut XmlWriter) {
        if self.distinguished {
            w.empty("t:DistinguishedFolderId", &[("Id", &self.id)]);
        } else {
            w.empty("t:FolderId", &[("Id", &self.id)]);
        }
    }
}

/// A folder where items go when they are deleted, which Exchange names by its role in every
/// mailbox (a `DistinguishedFolderId`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletedFolder {
    /// Deleted Items: where a delete that moves (`MoveToDeletedItems`) puts an item, and where
    /// a user can still see it.
    DeletedItems,
    /// Recoverable Items, Deletions: what a soft delete or emptying Deleted Items leaves,
    /// until the retention period ends.
    RecoverableDeletions,
}

impl DeletedFolder {
    /// Both, in the order an item passes through them.
    pub const ALL: [DeletedFolder; 2] = [
        DeletedFolder::DeletedItems,
        DeletedFolder::RecoverableDeletions,
    ];

    /// Its `DistinguishedFolderId` name.
    pub fn distinguished_id(self) -> &'static str {
        match self {
            DeletedFolder::DeletedItems => "deleteditems",
            DeletedFolder::RecoverableDeletions => "recoverableitemsdeletions",
        }
    }

    /// The request version that introduced the name.
    fn since(self) -> &'static str {
        match self {
            DeletedFolder::DeletedItems => "Exchange2007",
            DeletedFolder::RecoverableDeletions => "Exchange2010_SP1",
        }
    }

    /// Whether the server version this connector declares knows the name (an older one
    /// rejects the whole request that uses it).
    pub fn available(self) -> bool {
        crate::soap::version_reaches(crate::soap::SERVER_VERSION, self.since())
    }
}

/// Where a FindItem looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchFolder {
    /// A folder by its id (the contact sync folder, the calendar).
    Folder(FolderRef),
    /// One of the folders deleted items go to.
    Deleted(DeletedFolder),
}

impl SearchFolder {
    pub(crate) fn write(&self, w: &mut XmlWriter) {
        match self {
            SearchFolder::Folder(folder) => folder.write(w),
            SearchFolder::Deleted(deleted) => {
                w.empty(
                    "t:DistinguishedFolderId",
                    &[("Id", deleted.distinguished_id())],
                );
            }
        }
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
