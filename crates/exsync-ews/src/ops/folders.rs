//! GetFolder, FindFolder, CreateFolder: the primary Calendar and our contact folder, and where
//! a folder now is (renamed, moved or deleted by its user).

use super::FolderRef;
use crate::xml::{Element, XmlWriter};

/// GetFolder for a distinguished folder (`contacts`, `calendar`), ids only.
pub fn get_distinguished(name: &str) -> String {
    let mut w = XmlWriter::new();
    w.open("m:GetFolder", &[])
        .open("m:FolderShape", &[])
        .text("t:BaseShape", "IdOnly")
        .close("m:FolderShape")
        .open("m:FolderIds", &[])
        .empty("t:DistinguishedFolderId", &[("Id", name)])
        .close("m:FolderIds")
        .close("m:GetFolder");
    w.finish()
}

/// GetFolder of `folder` (when given) and of the distinguished folders `roles`, in that
/// order, each with its parent folder's id.
pub fn get_with_parent(folder: Option<&FolderRef>, roles: &[&str]) -> String {
    let mut w = XmlWriter::new();
    w.open("m:GetFolder", &[])
        .open("m:FolderShape", &[])
        .text("t:BaseShape", "IdOnly")
        .open("t:AdditionalProperties", &[])
        .empty("t:FieldURI", &[("FieldURI", "folder:ParentFolderId")])
        .close("t:AdditionalProperties")
        .close("m:FolderShape")
        .open("m:FolderIds", &[]);
    if let Some(folder) = folder {
        folder.write(&mut w);
    }
    for role in roles {
        w.empty("t:DistinguishedFolderId", &[("Id", role)]);
    }
    w.close("m:FolderIds").close("m:GetFolder");
    w.finish()
}

/// The folder in a GetFolder response message, with its parent folder's id (none for the
/// mailbox's root).
pub fn read_with_parent(message: &Element) -> Option<(FolderRef, Option<String>)> {
    let folder = message.child("Folders")?.children.first()?;
    let id = folder.child("FolderId").and_then(FolderRef::read)?;
    let parent = folder
        .child("ParentFolderId")
        .and_then(|p| p.attr("Id"))
        .filter(|p| !p.is_empty())
        .map(str::to_owned);
    Some((id, parent))
}

/// FindFolder for a direct child of a distinguished folder by display name.
pub fn find_child(parent: &str, display_name: &str) -> String {
    let mut w = XmlWriter::new();
    w.open("m:FindFolder", &[("Traversal", "Shallow")])
        .open("m:FolderShape", &[])
        .text("t:BaseShape", "IdOnly")
        .open("t:AdditionalProperties", &[])
        .empty("t:FieldURI", &[("FieldURI", "folder:DisplayName")])
        .close("t:AdditionalProperties")
        .close("m:FolderShape")
        .open("m:Restriction", &[])
        .open("t:IsEqualTo", &[])
        .empty("t:FieldURI", &[("FieldURI", "folder:DisplayName")])
        .open("t:FieldURIOrConstant", &[])
        .empty("t:Constant", &[("Value", display_name)])
        .close("t:FieldURIOrConstant")
        .close("t:IsEqualTo")
        .close("m:Restriction")
        .open("m:ParentFolderIds", &[])
        .empty("t:DistinguishedFolderId", &[("Id", parent)])
        .close("m:ParentFolderIds")
        .close("m:FindFolder");
    w.finish()
}

/// CreateFolder of a contacts folder under a distinguished folder.
pub fn create_contacts_folder(parent: &str, display_name: &str) -> String {
    let mut w = XmlWriter::new();
    w.open("m:CreateFolder", &[])
        .open("m:ParentFolderId", &[])
        .empty("t:DistinguishedFolderId", &[("Id", parent)])
        .close("m:ParentFolderId")
        .open("m:Folders", &[])
        .open("t:ContactsFolder", &[])
        .text("t:FolderClass", "IPF.Contact")
        .text("t:DisplayName", display_name)
        .close("t:ContactsFolder")
        .close("m:Folders")
        .close("m:CreateFolder");
    w.finish()
}

/// The folder id in a GetFolder or CreateFolder response message.
pub fn read_folder(message: &Element) -> Option<FolderRef> {
    message
        .child("Folders")?
        .children
        .first()?
        .child("FolderId")
        .and_then(FolderRef::read)
}

/// The folder with exactly this display name (case-insensitively, as Exchange compares) in a
/// FindFolder response message.
pub fn read_found(message: &Element, display_name: &str) -> Option<FolderRef> {
    message
        .path(&["RootFolder", "Folders"])?
        .children
        .iter()
        .find(|f| {
            f.child_text("DisplayName")
                .is_some_and(|n| n.trim().eq_ignore_ascii_case(display_name))
        })
        .and_then(|f| f.child("FolderId"))
        .and_then(FolderRef::read)
}
