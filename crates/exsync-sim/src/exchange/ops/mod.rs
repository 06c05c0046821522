//! EWS operations over the mailbox store.

pub(crate) mod calendar;
pub(crate) mod folders;
pub(crate) mod items;
pub(crate) mod misc;
pub(crate) mod restrict;
pub(crate) mod shape;
pub(crate) mod sync;

use super::soap::{self, EwsError};
use super::store::{Folder, Id, Mailbox, State};
use super::xml::Element;

/// One request's view of the store: the mailbox it acts on and whether it wrote.
pub(crate) struct Ctx<'a> {
    pub st: &'a mut State,
    pub mailbox: String,
    pub dirty: bool,
}

impl Ctx<'_> {
    pub(crate) fn mb(&self) -> Result<&Mailbox, EwsError> {
        self.st
            .mailbox(&self.mailbox)
            .ok_or_else(|| EwsError::new("ErrorNonExistentMailbox", "The mailbox does not exist."))
    }

    pub(crate) fn mb_mut(&mut self) -> Result<&mut Mailbox, EwsError> {
        let key = self.mailbox.clone();
        self.st
            .mailbox_mut(&key)
            .ok_or_else(|| EwsError::new("ErrorNonExistentMailbox", "The mailbox does not exist."))
    }

    pub(crate) fn next_seq(&mut self) -> u64 {
        self.dirty = true;
        self.st.next_seq()
    }

    /// Resolves a `FolderId` or `DistinguishedFolderId` element to a folder of this mailbox.
    pub(crate) fn folder_ref(&self, el: &Element) -> Result<&Folder, EwsError> {
        let mb = self.mb()?;
        match el.name.as_str() {
            "FolderId" => {
                let raw = el.attr("Id").unwrap_or("");
                match Id::decode(raw) {
                    Some(Id::Folder { mailbox, id }) => {
                        if mailbox != mb.key() {
                            return Err(EwsError::new(
                                "ErrorAccessDenied",
                                "Access is denied. Check credentials and try again.",
                            ));
                        }
                        mb.folders.get(&id).ok_or_else(folder_not_found)
                    }
                    _ => Err(EwsError::new("ErrorInvalidIdMalformed", "Id is malformed.")),
                }
            }
            "DistinguishedFolderId" => {
                if let Some(addr) = el.path(&["Mailbox", "EmailAddress"]) {
                    if !addr.text.trim().eq_ignore_ascii_case(&mb.address) {
                        return Err(EwsError::new(
                            "ErrorAccessDenied",
                            "Access is denied. Check credentials and try again.",
                        ));
                    }
                }
                let name = el.attr("Id").unwrap_or("");
                mb.distinguished(name).ok_or_else(folder_not_found)
            }
            other => Err(EwsError::new(
                "ErrorInvalidRequest",
                format!("unexpected folder reference {other}"),
            )),
        }
    }
}

pub(crate) fn folder_not_found() -> EwsError {
    EwsError::new(
        "ErrorFolderNotFound",
        "The specified folder could not be found in the store.",
    )
}

pub(crate) fn item_not_found() -> EwsError {
    EwsError::new(
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}

/// Operation outcome: the child of soap:Body, or a request-level fault.
pub(crate) type OpResult = Result<String, EwsError>;

pub(crate) fn dispatch(ctx: &mut Ctx<'_>, op: &Element) -> OpResult {
    match op.name.as_str() {
        "GetFolder" => folders::get_folder(ctx, op),
        "FindFolder" => folders::find_folder(ctx, op),
        "CreateFolder" => folders::create_folder(ctx, op),
        "DeleteFolder" => folders::delete_folder(ctx, op),
        "UpdateFolder" => folders::update_folder(ctx, op),
        "MoveFolder" => folders::move_folder(ctx, op),
        "EmptyFolder" => folders::empty_folder(ctx, op),
        "SyncFolderHierarchy" => sync::sync_folder_hierarchy(ctx, op),
        "SyncFolderItems" => sync::sync_folder_items(ctx, op),
        "CreateItem" => items::create_item(ctx, op),
        "GetItem" => items::get_item(ctx, op),
        "UpdateItem" => items::update_item(ctx, op),
        "DeleteItem" => items::delete_item(ctx, op),
        "FindItem" => items::find_item(ctx, op),
        "ConvertId" => misc::convert_id(ctx, op),
        "ResolveNames" => misc::resolve_names(ctx, op),
        "GetServerTimeZones" => misc::get_server_time_zones(ctx, op),
        other => Err(EwsError::new(
            "ErrorInvalidRequest",
            format!("The operation {other} is not supported by this server."),
        )),
    }
}

/// Children of a container element (e.g. `m:FolderIds`), empty when absent.
pub(crate) fn list<'a>(op: &'a Element, container: &str) -> &'a [Element] {
    op.child(container)
        .map(|c| c.children.as_slice())
        .unwrap_or(&[])
}

pub(crate) fn respond(op: &str, messages: Vec<Result<String, EwsError>>) -> String {
    let msgs: Vec<String> = messages
        .into_iter()
        .map(|m| match m {
            Ok(inner) => soap::ok_message(op, &inner),
            Err(e) => soap::error_message(op, &e),
        })
        .collect();
    soap::response(op, &msgs)
}
