//! GetItem, CreateItem, UpdateItem, DeleteItem, FindItem (by our tag, and the CalendarView).

use chrono::{DateTime, Utc};

use exsync_core::{CrmId, ExchangeId, ItemKind};

use super::{first_item, first_item_ref, FolderRef, ItemResult};
use crate::mapping::{
    element_name, extended_field_uri, format_instant, FieldUpdate, ItemRef, CRM_ID_PROPERTY,
    TIME_ZONE_PROPERTY,
};
use crate::soap::message_status;
use crate::xml::{Element, XmlWriter};

/// Items per GetItem/CreateItem/UpdateItem/DeleteItem call.
pub const BATCH: usize = 100;

/// The shape that returns everything the mapping reads, text bodies and our tags.
fn full_shape(w: &mut XmlWriter, kind: ItemKind) {
    w.open("m:ItemShape", &[])
        .text("t:BaseShape", "AllProperties")
        .text("t:BodyType", "Text")
        .open("t:AdditionalProperties", &[]);
    if kind == ItemKind::Event {
        for uri in [
            "calendar:Recurrence",
            "calendar:ModifiedOccurrences",
            "calendar:DeletedOccurrences",
            "calendar:StartTimeZone",
            "calendar:EndTimeZone",
        ] {
            w.empty("t:FieldURI", &[("FieldURI", uri)]);
        }
        extended_field_uri(w, TIME_ZONE_PROPERTY);
    }
    extended_field_uri(w, CRM_ID_PROPERTY);
    w.close("t:AdditionalProperties").close("m:ItemShape");
}

fn id_shape(w: &mut XmlWriter, extra_fields: &[&str]) {
    w.open("m:ItemShape", &[])
        .text("t:BaseShape", "IdOnly")
        .open("t:AdditionalProperties", &[]);
    for uri in extra_fields {
        w.empty("t:FieldURI", &[("FieldURI", uri)]);
    }
    extended_field_uri(w, CRM_ID_PROPERTY);
    w.close("t:AdditionalProperties").close("m:ItemShape");
}

/// GetItem of `ids` with every property the mapping reads.
pub fn get_items(kind: ItemKind, ids: &[ExchangeId]) -> String {
    get_items_by(kind, ids, false)
}

/// GetItem of occurrences' own subject and location.
pub fn get_occurrence_details(ids: &[ExchangeId]) -> String {
    let mut w = XmlWriter::new();
    w.open("m:GetItem", &[]);
    id_shape(&mut w, &["item:Subject", "calendar:Location"]);
    w.open("m:ItemIds", &[]);
    for id in ids {
        w.empty("t:ItemId", &[("Id", id.as_str())]);
    }
    w.close("m:ItemIds").close("m:GetItem");
    w.finish()
}

/// GetItem of the series masters of occurrences (by an occurrence's id).
pub fn get_masters(ids: &[ExchangeId]) -> String {
    get_items_by(ItemKind::Event, ids, true)
}

fn get_items_by(kind: ItemKind, ids: &[ExchangeId], masters_of: bool) -> String {
    let mut w = XmlWriter::new();
    w.open("m:GetItem", &[]);
    full_shape(&mut w, kind);
    w.open("m:ItemIds", &[]);
    for id in ids {
        if masters_of {
            w.empty("t:RecurringMasterItemId", &[("OccurrenceId", id.as_str())]);
        } else {
            w.empty("t:ItemId", &[("Id", id.as_str())]);
        }
    }
    w.close("m:ItemIds").close("m:GetItem");
    w.finish()
}

/// Per requested id: the item element, or the error for that id.
pub fn read_get_items(messages: &[&Element]) -> Vec<ItemResult<Element>> {
    messages
        .iter()
        .map(|m| {
            message_status(m)?;
            first_item(m).cloned().ok_or_else(|| missing("GetItem"))
        })
        .collect()
}

fn missing(operation: &str) -> crate::error::ResponseError {
    crate::error::ResponseError {
        code: "ErrorInternalServerError".into(),
        message: format!("{operation} response message without an item"),
        back_off: None,
    }
}

/// CreateItem of already-written item elements into a folder. Invitations never go out: a
/// synced event is a copy, not a new meeting.
pub fn create_items(kind: ItemKind, folder: &FolderRef, items: &[String]) -> String {
    let mut w = XmlWriter::new();
    let attrs: &[(&str, &str)] = match kind {
        ItemKind::Event => &[("SendMeetingInvitations", "SendToNone")],
        ItemKind::Contact => &[],
    };
    w.open("m:CreateItem", attrs)
        .open("m:SavedItemFolderId", &[]);
    folder.write(&mut w);
    w.close("m:SavedItemFolderId").open("m:Items", &[]);
    for item in items {
        w.raw(item);
    }
    w.close("m:Items").close("m:CreateItem");
    w.finish()
}

/// Per created item: its id and ChangeKey, or the error.
pub fn read_created(messages: &[&Element]) -> Vec<ItemResult<ItemRef>> {
    messages
        .iter()
        .map(|m| {
            message_status(m)?;
            first_item_ref(m).ok_or_else(|| missing("CreateItem"))
        })
        .collect()
}

/// UpdateItem that only succeeds on the ChangeKey we read (NeverOverwrite): a concurrent
/// change makes the server refuse instead of us overwriting it blindly.
pub fn update_items(kind: ItemKind, changes: &[(ItemRef, Vec<FieldUpdate>)]) -> String {
    let mut w = XmlWriter::new();
    let mut attrs = vec![("ConflictResolution", "NeverOverwrite")];
    if kind == ItemKind::Event {
        attrs.push(("SendMeetingInvitationsOrCancellations", "SendToNone"));
    }
    w.open("m:UpdateItem", &attrs).open("m:ItemChanges", &[]);
    for (item, updates) in changes {
        w.open("t:ItemChange", &[]).empty(
            "t:ItemId",
            &[("Id", item.id.as_str()), ("ChangeKey", &item.change_key)],
        );
        w.open("t:Updates", &[]);
        for update in updates {
            update.write(kind, &mut w);
        }
        w.close("t:Updates").close("t:ItemChange");
    }
    w.close("m:ItemChanges").close("m:UpdateItem");
    w.finish()
}

/// The new ChangeKey of each updated item, or its error, in request order.
pub fn read_updated(messages: &[&Element]) -> Vec<ItemResult<ItemRef>> {
    messages
        .iter()
        .map(|m| {
            message_status(m)?;
            first_item_ref(m).ok_or_else(|| missing("UpdateItem"))
        })
        .collect()
}

/// DeleteItem to the Deleted Items folder, where a user can still recover it.
pub fn delete_items(kind: ItemKind, ids: &[ExchangeId]) -> String {
    let mut w = XmlWriter::new();
    let mut attrs = vec![("DeleteType", "MoveToDeletedItems")];
    if kind == ItemKind::Event {
        attrs.push(("SendMeetingCancellations", "SendToNone"));
    }
    w.open("m:DeleteItem", &attrs).open("m:ItemIds", &[]);
    for id in ids {
        w.empty("t:ItemId", &[("Id", id.as_str())]);
    }
    w.close("m:ItemIds").close("m:DeleteItem");
    w.finish()
}

/// Per deleted id: `Ok` also when the item was already gone, which is what we wanted.
pub fn read_deleted(messages: &[&Element]) -> Vec<ItemResult<()>> {
    messages
        .iter()
        .map(|m| match message_status(m) {
            Err(e) if e.code == "ErrorItemNotFound" => Ok(()),
            other => other,
        })
        .collect()
}

/// FindItem for items in a folder carrying our tag with this CRM id.
pub fn find_by_crm_id(folder: &FolderRef, crm_id: &CrmId) -> String {
    let mut w = XmlWriter::new();
    w.open("m:FindItem", &[("Traversal", "Shallow")]);
    id_shape(&mut w, &[]);
    w.empty(
        "m:IndexedPageItemView",
        &[
            ("MaxEntriesReturned", "10"),
            ("Offset", "0"),
            ("BasePoint", "Beginning"),
        ],
    );
    w.open("m:Restriction", &[]).open("t:IsEqualTo", &[]);
    extended_field_uri(&mut w, CRM_ID_PROPERTY);
    w.open("t:FieldURIOrConstant", &[])
        .empty("t:Constant", &[("Value", crm_id.as_str())])
        .close("t:FieldURIOrConstant")
        .close("t:IsEqualTo")
        .close("m:Restriction")
        .open("m:ParentFolderIds", &[]);
    folder.write(&mut w);
    w.close("m:ParentFolderIds").close("m:FindItem");
    w.finish()
}

/// FindItem with a CalendarView: every single event, occurrence and exception in the window.
pub fn calendar_view(
    folder: &FolderRef,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    max_entries: u32,
) -> String {
    let mut w = XmlWriter::new();
    w.open("m:FindItem", &[("Traversal", "Shallow")]);
    id_shape(
        &mut w,
        &[
            "calendar:CalendarItemType",
            "calendar:Start",
            "calendar:End",
        ],
    );
    w.empty(
        "m:CalendarView",
        &[
            ("MaxEntriesReturned", &max_entries.to_string()),
            ("StartDate", &format_instant(&start)),
            ("EndDate", &format_instant(&end)),
        ],
    )
    .open("m:ParentFolderIds", &[]);
    folder.write(&mut w);
    w.close("m:ParentFolderIds").close("m:FindItem");
    w.finish()
}

/// An item FindItem returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its id and ChangeKey.
    pub item: ItemRef,
    /// The item as returned, for the properties FindItem includes.
    pub element: Element,
}

/// Items of a successful FindItem response message, and whether the range was complete.
pub fn read_found(message: &Element) -> (Vec<Found>, bool) {
    let Some(root) = message.child("RootFolder") else {
        return (Vec::new(), true);
    };
    let complete = root.attr("IncludesLastItemInRange") != Some("false");
    let items = root
        .child("Items")
        .map(|items| {
            items
                .children
                .iter()
                .filter_map(|el| {
                    Some(Found {
                        item: el.child("ItemId").and_then(ItemRef::read)?,
                        element: el.clone(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    (items, complete)
}

/// Whether an element is the kind of item we asked for.
pub fn is_kind(element: &Element, kind: ItemKind) -> bool {
    element.name == element_name(kind)
}

fn occurrence_id(w: &mut XmlWriter, master: &ExchangeId, index: u32) {
    w.empty(
        "t:OccurrenceItemId",
        &[
            ("RecurringMasterId", master.as_str()),
            ("InstanceIndex", &index.to_string()),
        ],
    );
}

/// DeleteItem of single occurrences of a series, by their position in it.
pub fn delete_occurrences(master: &ExchangeId, indexes: &[u32]) -> String {
    let mut w = XmlWriter::new();
    w.open(
        "m:DeleteItem",
        &[
            ("DeleteType", "MoveToDeletedItems"),
            ("SendMeetingCancellations", "SendToNone"),
        ],
    )
    .open("m:ItemIds", &[]);
    for index in indexes {
        occurrence_id(&mut w, master, *index);
    }
    w.close("m:ItemIds").close("m:DeleteItem");
    w.finish()
}

/// UpdateItem of single occurrences (their exceptions to the series).
pub fn update_occurrences(master: &ExchangeId, changes: &[(u32, Vec<FieldUpdate>)]) -> String {
    let mut w = XmlWriter::new();
    w.open(
        "m:UpdateItem",
        &[
            ("ConflictResolution", "AlwaysOverwrite"),
            ("SendMeetingInvitationsOrCancellations", "SendToNone"),
        ],
    )
    .open("m:ItemChanges", &[]);
    for (index, updates) in changes {
        w.open("t:ItemChange", &[]);
        occurrence_id(&mut w, master, *index);
        w.open("t:Updates", &[]);
        for update in updates {
            update.write(ItemKind::Event, &mut w);
        }
        w.close("t:Updates").close("t:ItemChange");
    }
    w.close("m:ItemChanges").close("m:UpdateItem");
    w.finish()
}
