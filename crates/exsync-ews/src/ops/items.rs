//! GetItem, CreateItem, UpdateItem, DeleteItem, FindItem (by our tag, and the CalendarView).

use chrono::{DateTime, Utc};

use exsync_core::{CrmId, ExchangeId, ItemKind};

use super::{first_item, first_item_ref, FolderRef, ItemResult, SearchFolder};
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
pub fn create_items(kind: ItemKind, folder: &FolderRef, items: &[impl AsRef<str>]) -> String {
    // Sized for the items at once: a batch of a hundred grew it about fifteen times.
    let items_len: usize = items.iter().map(|item| item.as_ref().len()).sum();
    let mut w = XmlWriter::with_capacity(items_len + 512);
    let attrs: &[(&str, &str)] = match kind {
        ItemKind::Event => &[("SendMeetingInvitations", "SendToNone")],
        ItemKind::Contact => &[],
    };
    w.open("m:CreateItem", attrs)
        .open("m:SavedItemFolderId", &[]);
    folder.write(&mut w);
    w.close("m:SavedItemFolderId").open("m:Items", &[]);
    for item in items {
        w.raw(item.as_ref());
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

/// Tags one FindItem by tag asks for at most: each adds an equality to the restriction, and
/// Exchange limits how large one may grow.
pub const TAGS_PER_FIND: usize = 50;

/// Items per page of a FindItem by tag.
pub const FOUND_PER_PAGE: u32 = 200;

/// FindItem, ids, creation times and our tag only, for the items directly in `folder` tagged
/// with any of `crm_ids` (one equality, or an `Or` of them), the page of at most
/// `max_entries` from `offset`. The caller sends between one and [`TAGS_PER_FIND`] ids.
pub fn find_by_tags(
    folder: &SearchFolder,
    crm_ids: &[CrmId],
    offset: u32,
    max_entries: u32,
) -> String {
    let mut w = XmlWriter::new();
    w.open("m:FindItem", &[("Traversal", "Shallow")]);
    id_shape(&mut w, &["item:DateTimeCreated"]);
    w.empty(
        "m:IndexedPageItemView",
        &[
            ("MaxEntriesReturned", &max_entries.max(1).to_string()),
            ("Offset", &offset.to_string()),
            ("BasePoint", "Beginning"),
        ],
    );
    let equal_to = |w: &mut XmlWriter, crm_id: &CrmId| {
        w.open("t:IsEqualTo", &[]);
        extended_field_uri(w, CRM_ID_PROPERTY);
        w.open("t:FieldURIOrConstant", &[])
            .empty("t:Constant", &[("Value", crm_id.as_str())])
            .close("t:FieldURIOrConstant")
            .close("t:IsEqualTo");
    };
    w.open("m:Restriction", &[]);
    match crm_ids {
        [one] => equal_to(&mut w, one),
        many => {
            w.open("t:Or", &[]);
            for crm_id in many {
                equal_to(&mut w, crm_id);
            }
            w.close("t:Or");
        }
    }
    w.close("m:Restriction").open("m:ParentFolderIds", &[]);
    folder.write(&mut w);
    w.close("m:ParentFolderIds").close("m:FindItem");
    w.finish()
}

/// Where the next page of a paged FindItem starts, after the page read from `offset`;
/// `None` when this page was the last.
pub fn next_offset(message: &Element, offset: u32) -> Option<u32> {
    let root = message.child("RootFolder")?;
    if root.attr("IncludesLastItemInRange") != Some("false") {
        return None;
    }
    let returned = root
        .child("Items")
        .map_or(0, |items| items.children.len() as u32);
    let told = root
        .attr("IndexedPagingOffset")
        .and_then(|o| o.trim().parse::<u32>().ok());
    Some(told.unwrap_or(offset.saturating_add(returned)))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::ops::DeletedFolder;
    use crate::xml::parse;

    fn constants(body: &str) -> Vec<String> {
        let root = parse(body).unwrap();
        let mut out = Vec::new();
        let mut stack = vec![&root];
        while let Some(el) = stack.pop() {
            if el.name == "Constant" {
                out.push(el.attr("Value").unwrap().to_owned());
            }
            stack.extend(el.children.iter().rev());
        }
        out
    }

    #[test]
    fn one_tag_is_an_equality_and_several_an_or() {
        let folder = SearchFolder::Deleted(DeletedFolder::DeletedItems);
        let one = find_by_tags(&folder, &[CrmId::new("003A")], 0, 200);
        assert!(!one.contains("<t:Or>"), "{one}");
        assert!(
            one.contains(r#"<t:DistinguishedFolderId Id="deleteditems"/>"#),
            "{one}"
        );
        let ids = [CrmId::new("003A"), CrmId::new("003<&\"'>B")];
        let two = find_by_tags(&folder, &ids, 400, 200);
        assert_eq!(two.matches("<t:IsEqualTo>").count(), 2, "{two}");
        assert!(two.contains(r#"Offset="400""#), "{two}");
        assert!(!two.contains("<&"), "{two}");
        // The values come back exactly when parsed, specials included.
        assert_eq!(constants(&two), ["003A", "003<&\"'>B"]);
    }

    #[test]
    fn paging_follows_the_server_and_stops_at_the_last_page() {
        let page = |attrs: &str, n: usize| {
            let items = "<t:Contact><t:ItemId Id=\"x\"/></t:Contact>".repeat(n);
            parse(&format!(
                r#"<m:FindItemResponseMessage xmlns:m="m" xmlns:t="t" ResponseClass="Success"><m:RootFolder {attrs}><t:Items>{items}</t:Items></m:RootFolder></m:FindItemResponseMessage>"#
            ))
            .unwrap()
        };
        let told = page(
            r#"IndexedPagingOffset="7" IncludesLastItemInRange="false""#,
            2,
        );
        assert_eq!(next_offset(&told, 0), Some(7));
        let counted = page(r#"IncludesLastItemInRange="false""#, 3);
        assert_eq!(next_offset(&counted, 10), Some(13));
        let last = page(
            r#"IndexedPagingOffset="7" IncludesLastItemInRange="true""#,
            2,
        );
        assert_eq!(next_offset(&last, 5), None);
        let unsaid = page("", 2);
        assert_eq!(next_offset(&unsaid, 5), None);
    }
}
