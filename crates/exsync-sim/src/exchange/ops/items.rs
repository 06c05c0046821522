//! CreateItem, GetItem, UpdateItem, DeleteItem, FindItem.

use super::calendar::{self, Occurrence};
use super::folders::paging;
use super::shape::{effective_props, ext_prop_key, field_element, prop_values, render_item, Shape};
use super::{item_not_found, list, respond, restrict, Ctx, OpResult};
use crate::exchange::soap::EwsError;
use crate::exchange::store::{
    change_key, now_string, parse_change_key, parse_time, Id, Item, Tombstone,
};
use crate::exchange::xml::Element;

const ITEM_KINDS: &[&str] = &["Contact", "CalendarItem", "Message", "Task", "Item"];

/// Properties Exchange keeps to 255 characters. The Subject reference says "The subject is
/// limited to 255 characters", and Exchange cuts a longer one on CreateItem/UpdateItem
/// instead of refusing it (exchangelib's maintainer on a >255 subject: EWS truncates it);
/// the contact name fields are 255-character MAPI string properties treated the same way.
const LIMITED_255: &[&str] = &[
    "Subject",
    "DisplayName",
    "GivenName",
    "MiddleName",
    "Surname",
    "Nickname",
    "Initials",
    "Generation",
];
const MAX_LEN: usize = 255;

/// Cuts the length-limited properties to what Exchange stores (see `LIMITED_255`).
fn limit_lengths(props: &mut [Element]) {
    for p in props.iter_mut() {
        if LIMITED_255.contains(&p.name.as_str()) && p.text.chars().count() > MAX_LEN {
            p.text = p.text.chars().take(MAX_LEN).collect();
        }
    }
}

fn default_folder(kind: &str) -> &'static str {
    match kind {
        "Contact" => "contacts",
        "CalendarItem" => "calendar",
        "Task" => "tasks",
        _ => "drafts",
    }
}

/// Key under which a property's last change is tracked (for AutoResolve).
fn prop_key(p: &Element) -> String {
    if p.name == "ExtendedProperty" {
        format!("ext:{}", ext_prop_key(p).unwrap_or_default())
    } else {
        p.name.clone()
    }
}

pub(crate) fn create_item(ctx: &mut Ctx<'_>, op: &Element) -> OpResult {
    let target = op
        .child("SavedItemFolderId")
        .and_then(|f| f.children.first());
    let explicit = match target {
        Some(t) => match ctx.folder_ref(t) {
            Ok(f) => Some(f.id),
            Err(e) => return Ok(respond("CreateItem", vec![Err(e)])),
        },
        None => None,
    };
    let mut msgs = Vec::new();
    for it in list(op, "Items") {
        msgs.push(create_one(ctx, it, explicit));
    }
    Ok(respond("CreateItem", msgs))
}

pub(crate) fn create_one(
    ctx: &mut Ctx<'_>,
    it: &Element,
    explicit: Option<u64>,
) -> Result<String, EwsError> {
    if !ITEM_KINDS.contains(&it.name.as_str()) {
        return Err(EwsError::new(
            "ErrorInvalidItemForOperationCreateItem",
            format!("{} items cannot be created here.", it.name),
        ));
    }
    let folder = match explicit {
        Some(f) => f,
        None => {
            ctx.mb()?
                .distinguished(default_folder(&it.name))
                .ok_or_else(super::folder_not_found)?
                .id
        }
    };
    if it.name == "CalendarItem" {
        let s = it.child_text("Start").and_then(parse_time);
        let e = it.child_text("End").and_then(parse_time);
        if let (Some(s), Some(e)) = (s, e) {
            if e < s {
                return Err(EwsError::new(
                    "ErrorCalendarEndDateIsEarlierThanStartDate",
                    "The end date occurs before the start date.",
                ));
            }
        }
    }
    let seq = ctx.next_seq();
    let now = now_string();
    let mut props: Vec<Element> = it
        .children
        .iter()
        .filter(|p| p.name != "ItemId" && p.name != "ParentFolderId")
        .cloned()
        .collect();
    limit_lengths(&mut props);
    if it.name == "CalendarItem" {
        calendar::snap_all_day(&mut props);
    }
    let prop_seq = props.iter().map(|p| (prop_key(p), seq)).collect();
    let item = Item {
        id: seq,
        folder,
        kind: it.name.clone(),
        props,
        prop_seq,
        created_seq: seq,
        seq,
        created: now.clone(),
        modified: now,
        ..Default::default()
    };
    let mb = ctx.mb_mut()?;
    let id = Id::Item {
        mailbox: mb.key(),
        id: seq,
    };
    mb.items.insert(seq, item);
    Ok(format!(
        r#"<m:Items><t:{k}><t:ItemId Id="{}" ChangeKey="{}"/></t:{k}></m:Items>"#,
        id.encode(),
        change_key(seq),
        k = it.name
    ))
}

/// Resolves ItemId / OccurrenceItemId / RecurringMasterItemId to (item, instance index).
fn item_ref(ctx: &Ctx<'_>, el: &Element) -> Result<(u64, Option<u32>), EwsError> {
    let mb = ctx.mb()?;
    let own = |mailbox: &str| -> Result<(), EwsError> {
        if mailbox == mb.key() {
            Ok(())
        } else {
            Err(EwsError::new(
                "ErrorAccessDenied",
                "Access is denied. Check credentials and try again.",
            ))
        }
    };
    let malformed = || EwsError::new("ErrorInvalidIdMalformed", "Id is malformed.");
    let (id, index) = match el.name.as_str() {
        "ItemId" => match Id::decode(el.attr("Id").unwrap_or("")) {
            Some(Id::Item { mailbox, id }) => {
                own(&mailbox)?;
                (id, None)
            }
            Some(Id::Occurrence { mailbox, id, index }) => {
                own(&mailbox)?;
                (id, Some(index))
            }
            _ => return Err(malformed()),
        },
        "OccurrenceItemId" => {
            let index: u32 = el
                .attr("InstanceIndex")
                .and_then(|i| i.parse().ok())
                .ok_or_else(malformed)?;
            match Id::decode(el.attr("RecurringMasterId").unwrap_or("")) {
                Some(Id::Item { mailbox, id }) => {
                    own(&mailbox)?;
                    (id, Some(index))
                }
                _ => return Err(malformed()),
            }
        }
        "RecurringMasterItemId" => match Id::decode(el.attr("OccurrenceId").unwrap_or("")) {
            Some(Id::Item { mailbox, id }) | Some(Id::Occurrence { mailbox, id, .. }) => {
                own(&mailbox)?;
                (id, None)
            }
            _ => return Err(malformed()),
        },
        _ => return Err(malformed()),
    };
    let item = mb.items.get(&id).ok_or_else(item_not_found)?;
    if let Some(i) = index {
        if item.prop("Recurrence").is_none() {
            return Err(EwsError::new(
                "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange",
                "The item is not a recurring master.",
            ));
        }
        if item.deleted_occurrences.contains(&i) || calendar::occurrence(item, i).is_none() {
            return Err(EwsError::new(
                "ErrorCalendarOccurrenceIsDeletedFromRecurrence",
                "The occurrence was deleted from the recurrence.",
            ));
        }
    }
    Ok((id, index))
}

pub(crate) fn get_item(ctx: &mut Ctx<'_>, op: &Element) -> OpResult {
    let shape = Shape::parse(op.child("ItemShape"));
    let mut msgs = Vec::new();
    for r in list(op, "ItemIds") {
        msgs.push(item_ref(ctx, r).and_then(|(id, index)| {
            let mb = ctx.mb()?;
            let item = mb.items.get(&id).ok_or_else(item_not_found)?;
            let occ = match index {
                Some(i) => Some(calendar::occurrence(item, i).ok_or_else(item_not_found)?),
                None => None,
            };
            Ok(format!(
                "<m:Items>{}</m:Items>",
                render_item(mb, item, &shape, occ.as_ref())
            ))
        }));
    }
    Ok(respond("GetItem", msgs))
}

/// The one property element inside an update's item element.
fn update_value(upd: &Element) -> Result<&Element, EwsError> {
    upd.children
        .iter()
        .find(|c| ITEM_KINDS.contains(&c.name.as_str()))
        .and_then(|it| it.children.first())
        .ok_or_else(|| {
            EwsError::new(
                "ErrorInvalidPropertySet",
                "The update does not carry a property value.",
            )
        })
}

fn update_path(upd: &Element) -> Result<&Element, EwsError> {
    upd.children
        .iter()
        .find(|c| c.name.ends_with("FieldURI"))
        .ok_or_else(|| {
            EwsError::new(
                "ErrorInvalidPropertySet",
                "The update has no property path.",
            )
        })
}

/// Names (tracking keys) of the properties an update touches.
fn touched_key(path: &Element) -> String {
    match path.name.as_str() {
        "ExtendedFieldURI" => format!("ext:{}", super::shape::ext_key(path)),
        _ => path
            .attr("FieldURI")
            .and_then(field_element)
            .unwrap_or("")
            .to_string(),
    }
}

fn set_prop(props: &mut Vec<Element>, value: &Element, path: &Element, append: bool) {
    if value.name == "ExtendedProperty" {
        let k = ext_prop_key(value);
        props.retain(|p| p.name != "ExtendedProperty" || ext_prop_key(p) != k);
        props.push(value.clone());
        return;
    }
    if path.name == "IndexedFieldURI" {
        // Merge the entries into the stored dictionary (e.g. EmailAddresses/Entry[@Key]).
        match props.iter_mut().find(|p| p.name == value.name) {
            Some(existing) => {
                for entry in &value.children {
                    let key = entry.attr("Key");
                    match existing.children.iter_mut().find(|e| e.attr("Key") == key) {
                        Some(old) if !entry.children.is_empty() => {
                            for part in &entry.children {
                                old.children.retain(|c| c.name != part.name);
                                old.children.push(part.clone());
                            }
                        }
                        Some(old) => *old = entry.clone(),
                        None => existing.children.push(entry.clone()),
                    }
                }
            }
            None => props.push(value.clone()),
        }
        return;
    }
    match props.iter_mut().find(|p| p.name == value.name) {
        Some(existing) if append => {
            existing.text.push_str(&value.text);
            existing.children.extend(value.children.iter().cloned());
        }
        Some(existing) => *existing = value.clone(),
        None => props.push(value.clone()),
    }
}

fn delete_prop(props: &mut Vec<Element>, path: &Element) {
    match path.name.as_str() {
        "ExtendedFieldURI" => {
            let k = Some(super::shape::ext_key(path));
            props.retain(|p| p.name != "ExtendedProperty" || ext_prop_key(p) != k);
        }
        "IndexedFieldURI" => {
            let uri = path.attr("FieldURI").unwrap_or("");
            let Some(parent) = field_element(uri) else {
                return;
            };
            let index = path.attr("FieldIndex");
            let sub = uri.split(':').nth(2);
            if let Some(p) = props.iter_mut().find(|p| p.name == parent) {
                match sub {
                    Some(part) => {
                        for e in p.children.iter_mut().filter(|e| e.attr("Key") == index) {
                            e.children.retain(|c| c.name != part);
                        }
                        // An address whose last field went is gone: Exchange omits it
                        // rather than answering an empty <t:Entry Key="…"/>.
                        p.children.retain(|e| {
                            e.attr("Key") != index
                                || !e.children.is_empty()
                                || !e.text.trim().is_empty()
                        });
                    }
                    None => p.children.retain(|e| e.attr("Key") != index),
                }
            }
            props.retain(|p| p.name != parent || !p.children.is_empty());
        }
        _ => {
            if let Some(name) = path.attr("FieldURI").and_then(field_element) {
                props.retain(|p| p.name != name);
            }
        }
    }
}

pub(crate) fn update_item(ctx: &mut Ctx<'_>, op: &Element) -> OpResult {
    let mode = op
        .attr("ConflictResolution")
        .unwrap_or("AutoResolve")
        .to_string();
    let mut msgs = Vec::new();
    for change in list(op, "ItemChanges") {
        msgs.push(update_one(ctx, change, &mode));
    }
    Ok(respond("UpdateItem", msgs))
}

fn update_one(ctx: &mut Ctx<'_>, change: &Element, mode: &str) -> Result<String, EwsError> {
    let r = change
        .children
        .iter()
        .find(|c| c.name.ends_with("ItemId"))
        .ok_or_else(|| EwsError::new("ErrorInvalidIdEmpty", "The item change has no id."))?;
    let (id, index) = item_ref(ctx, r)?;
    let updates: Vec<&Element> = change
        .child("Updates")
        .map(|u| u.children.iter().collect())
        .unwrap_or_default();
    let client_ck =
        match r.attr("ChangeKey") {
            Some(ck) => Some(parse_change_key(ck).ok_or_else(|| {
                EwsError::new("ErrorInvalidChangeKey", "The change key is invalid.")
            })?),
            None => None,
        };
    {
        let item = ctx.mb()?.items.get(&id).ok_or_else(item_not_found)?;
        if let Some(ck) = client_ck {
            if ck != item.seq {
                let conflict = match mode {
                    "NeverOverwrite" => true,
                    "AlwaysOverwrite" => false,
                    // AutoResolve: conflict only if a property we set changed since the key.
                    _ => updates.iter().any(|u| {
                        update_path(u)
                            .map(|p| item.prop_seq.get(&touched_key(p)).is_some_and(|s| *s > ck))
                            .unwrap_or(false)
                    }),
                };
                if conflict {
                    return Err(EwsError::new(
                        "ErrorIrresolvableConflict",
                        "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
                    ));
                }
            }
        }
    }
    let seq = ctx.next_seq();
    let now = now_string();
    let mbkey = ctx.mailbox.clone();
    let mb = ctx.mb_mut()?;
    mb.changed_in_place(id);
    let item = mb.items.get_mut(&id).ok_or_else(item_not_found)?;
    let mut props = match index {
        Some(i) => item
            .modified_occurrences
            .get(&i)
            .cloned()
            .unwrap_or_default(),
        None => item.props.clone(),
    };
    for u in &updates {
        let path = update_path(u)?;
        match u.name.as_str() {
            "SetItemField" => set_prop(&mut props, update_value(u)?, path, false),
            "AppendToItemField" => set_prop(&mut props, update_value(u)?, path, true),
            "DeleteItemField" => delete_prop(&mut props, path),
            other => {
                return Err(EwsError::new(
                    "ErrorInvalidRequest",
                    format!("unknown update {other}"),
                ))
            }
        }
        item.prop_seq.insert(touched_key(path), seq);
    }
    limit_lengths(&mut props);
    // A new pattern invalidates the exceptions of the old one, as in Exchange.
    if index.is_none()
        && updates
            .iter()
            .any(|u| update_path(u).is_ok_and(|p| touched_key(p) == "Recurrence"))
    {
        item.modified_occurrences.clear();
        item.deleted_occurrences.clear();
    }
    if item.kind == "CalendarItem" && index.is_none() {
        calendar::snap_all_day(&mut props);
    }
    if item.kind == "CalendarItem" {
        let s = props
            .iter()
            .find(|p| p.name == "Start")
            .and_then(|p| parse_time(&p.text));
        let e = props
            .iter()
            .find(|p| p.name == "End")
            .and_then(|p| parse_time(&p.text));
        if let (Some(s), Some(e)) = (s, e) {
            if e < s {
                return Err(EwsError::new(
                    "ErrorCalendarEndDateIsEarlierThanStartDate",
                    "The end date occurs before the start date.",
                ));
            }
        }
    }
    match index {
        Some(i) => {
            item.modified_occurrences.insert(i, props);
        }
        None => item.props = props,
    }
    item.seq = seq;
    item.modified = now;
    let kind = item.kind.clone();
    let new_id = match index {
        Some(index) => Id::Occurrence {
            mailbox: mbkey,
            id,
            index,
        },
        None => Id::Item { mailbox: mbkey, id },
    };
    Ok(format!(
        r#"<m:Items><t:{kind}><t:ItemId Id="{}" ChangeKey="{}"/></t:{kind}></m:Items><m:ConflictResults><t:Count>0</t:Count></m:ConflictResults>"#,
        new_id.encode(),
        change_key(seq)
    ))
}

/// DeleteItem's change key rules. The DeleteItem reference deletes by a bare
/// `<t:ItemId Id="…"/>`, so an absent key is accepted; the ItemIdType ChangeKey description
/// (as on the ConversationId reference page) says DeleteItem uses a ChangeKey "to test whether the attempted operation will act upon the most recent
/// version of an item" and answers ErrorStaleObject when it does not (an empty key included),
/// and a key that is not a change key at all is ErrorInvalidChangeKey, as for UpdateItem.
fn check_delete_change_key(ctx: &Ctx<'_>, r: &Element, id: u64) -> Result<(), EwsError> {
    let Some(ck) = r.attr("ChangeKey") else {
        return Ok(());
    };
    let stale = || {
        EwsError::new(
            "ErrorStaleObject",
            "The change key passed in the request does not match the current change key for the item.",
        )
    };
    if ck.trim().is_empty() {
        return Err(stale());
    }
    let seq = parse_change_key(ck)
        .ok_or_else(|| EwsError::new("ErrorInvalidChangeKey", "The change key is invalid."))?;
    let item = ctx.mb()?.items.get(&id).ok_or_else(item_not_found)?;
    if seq != item.seq {
        return Err(stale());
    }
    Ok(())
}

/// Where DeleteItem's `DeleteType` sends an item.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DeleteType {
    /// To Deleted Items, where the user still sees it.
    MoveToDeletedItems,
    /// To Recoverable Items' Deletions, which the user's Recover Deleted Items reaches.
    SoftDelete,
    /// Gone.
    HardDelete,
}

impl DeleteType {
    /// The request's `DeleteType` (the schema requires it; a request without one, from
    /// clients the simulator served before it honoured the attribute, is a hard delete).
    fn of(op: &Element) -> DeleteType {
        match op.attr("DeleteType") {
            Some("MoveToDeletedItems") => DeleteType::MoveToDeletedItems,
            Some("SoftDelete") => DeleteType::SoftDelete,
            _ => DeleteType::HardDelete,
        }
    }

    /// The well-known folder the item goes to from `folder`, or `None` when it is removed:
    /// a delete to where the item already is takes it one step further, as Exchange does
    /// (deleting from Deleted Items soft-deletes, deleting from Deletions purges).
    fn destination(
        self,
        mb: &crate::exchange::store::Mailbox,
        folder: u64,
    ) -> Option<&'static str> {
        let is = |name: &str| mb.distinguished(name).is_some_and(|f| f.id == folder);
        let step = match self {
            DeleteType::MoveToDeletedItems if is(DELETED_ITEMS) => DeleteType::SoftDelete,
            other => other,
        };
        match step {
            DeleteType::MoveToDeletedItems => Some(DELETED_ITEMS),
            DeleteType::SoftDelete if !is(DELETIONS) => Some(DELETIONS),
            _ => None,
        }
    }
}

const DELETED_ITEMS: &str = "deleteditems";
const DELETIONS: &str = "recoverableitemsdeletions";

pub(crate) fn delete_item(ctx: &mut Ctx<'_>, op: &Element) -> OpResult {
    let delete_type = DeleteType::of(op);
    let mut msgs = Vec::new();
    for r in list(op, "ItemIds") {
        let res = item_ref(ctx, r).and_then(|(id, index)| {
            check_delete_change_key(ctx, r, id)?;
            let seq = ctx.next_seq();
            match index {
                Some(i) => {
                    let mb = ctx.mb_mut()?;
                    mb.changed_in_place(id);
                    let item = mb.items.get_mut(&id).ok_or_else(item_not_found)?;
                    item.deleted_occurrences.insert(i);
                    item.modified_occurrences.remove(&i);
                    item.seq = seq;
                    item.modified = now_string();
                }
                None => {
                    let folder = ctx.mb()?.items.get(&id).ok_or_else(item_not_found)?.folder;
                    let destination = delete_type.destination(ctx.mb()?, folder);
                    // A moved item gets a new id, as Exchange's does (its entry id changes
                    // with the folder): the old one no longer finds it.
                    let moved_to = match destination {
                        Some(name) => {
                            let folder_seq = ctx.next_seq();
                            let new_seq = ctx.next_seq();
                            let target = ctx
                                .mb_mut()?
                                .distinguished_or_add(name, folder_seq)
                                .ok_or_else(super::folder_not_found)?;
                            Some((target, new_seq))
                        }
                        None => None,
                    };
                    let mb = ctx.mb_mut()?;
                    let mut item = mb.items.remove(&id).ok_or_else(item_not_found)?;
                    mb.tombstones.push(Tombstone {
                        id,
                        folder: item.folder,
                        created_seq: item.created_seq,
                        seq,
                    });
                    if let Some((target, new_seq)) = moved_to {
                        item.id = new_seq;
                        item.folder = target;
                        item.created_seq = new_seq;
                        item.seq = new_seq;
                        item.modified = now_string();
                        mb.items.insert(new_seq, item);
                    }
                }
            }
            Ok(String::new())
        });
        msgs.push(res);
    }
    Ok(respond("DeleteItem", msgs))
}

pub(crate) fn find_item(ctx: &mut Ctx<'_>, op: &Element) -> OpResult {
    let shape = Shape::parse(op.child("ItemShape"));
    let restriction = op.child("Restriction").and_then(|r| r.children.first());
    let cal_view = op.child("CalendarView");
    let page_view = op.child("IndexedPageItemView");
    let mut msgs = Vec::new();
    for parent in list(op, "ParentFolderIds") {
        msgs.push(ctx.folder_ref(parent).and_then(|folder| {
            let mb = ctx.mb()?;
            let mut rows: Vec<(&Item, Option<Occurrence>)> = Vec::new();
            match cal_view {
                Some(v) => {
                    let from = v.attr("StartDate").and_then(parse_time).ok_or_else(|| {
                        EwsError::new("ErrorCalendarInvalidDayForTimeChangePattern", "StartDate is invalid.")
                    })?;
                    let to = v.attr("EndDate").and_then(parse_time).ok_or_else(|| {
                        EwsError::new("ErrorCalendarInvalidDayForTimeChangePattern", "EndDate is invalid.")
                    })?;
                    if to < from {
                        return Err(EwsError::new(
                            "ErrorCalendarEndDateIsEarlierThanStartDate",
                            "The end date occurs before the start date.",
                        ));
                    }
                    for item in mb.items.values().filter(|i| i.folder == folder.id) {
                        if item.prop("Recurrence").is_some() {
                            for o in calendar::occurrences_in(item, from, to) {
                                rows.push((item, Some(o)));
                            }
                        } else {
                            let s = item.prop_text("Start").and_then(parse_time);
                            let e = item.prop_text("End").and_then(parse_time);
                            if let (Some(s), Some(e)) = (s, e) {
                                // Ends before StartDate or starts at/after EndDate: out
                                // (CalendarView reference); ending at StartDate is in.
                                if s < to && e >= from {
                                    rows.push((item, None));
                                }
                            }
                        }
                    }
                    rows.sort_by_key(|(i, o)| match o {
                        Some(o) => o.start,
                        None => i.prop_text("Start").and_then(parse_time).unwrap_or(from),
                    });
                }
                None => {
                    for item in mb.items.values().filter(|i| i.folder == folder.id) {
                        rows.push((item, None));
                    }
                }
            }
            if let Some(r) = restriction {
                let mut kept = Vec::new();
                for (item, o) in rows {
                    let props = effective_props(item, o.as_ref());
                    let get = |p: &Element| -> Vec<String> {
                        let values = prop_values(&props, p);
                        if values.is_empty() && p.attr("FieldURI") == Some("item:ItemClass") {
                            return vec![super::shape::default_item_class(&item.kind).to_string()];
                        }
                        values
                    };
                    if restrict::eval(r, &get)? {
                        kept.push((item, o));
                    }
                }
                rows = kept;
            }
            let total = rows.len();
            let (offset, max) = match (cal_view, page_view) {
                (Some(v), _) => (
                    0,
                    v.attr("MaxEntriesReturned")
                        .and_then(|m| m.parse().ok())
                        .unwrap_or(usize::MAX),
                ),
                (None, v) => paging(v),
            };
            let page: Vec<_> = rows.into_iter().skip(offset).take(max).collect();
            let last = offset + page.len() >= total;
            let mut s = if cal_view.is_some() {
                format!(
                    r#"<m:RootFolder TotalItemsInView="{total}" IncludesLastItemInRange="{last}"><t:Items>"#
                )
            } else {
                format!(
                    r#"<m:RootFolder IndexedPagingOffset="{}" TotalItemsInView="{total}" IncludesLastItemInRange="{last}"><t:Items>"#,
                    offset + page.len()
                )
            };
            for (item, o) in page {
                s.push_str(&render_item(mb, item, &shape, o.as_ref()));
            }
            s.push_str("</t:Items></m:RootFolder>");
            Ok(s)
        }));
    }
    Ok(respond("FindItem", msgs))
}
