//! GetFolder, FindFolder, CreateFolder, DeleteFolder, UpdateFolder, MoveFolder, EmptyFolder.

use super::{folder_not_found, list, respond, restrict, Ctx, OpResult};
use crate::exchange::soap::EwsError;
use crate::exchange::store::{change_key, Folder, Id, Mailbox, Tombstone};
use crate::exchange::xml::{escape, Element};

pub(crate) fn folder_element_name(class: &str) -> &'static str {
    if class.starts_with("IPF.Contact") {
        "ContactsFolder"
    } else if class.starts_with("IPF.Appointment") {
        "CalendarFolder"
    } else if class.starts_with("IPF.Task") {
        "TasksFolder"
    } else {
        "Folder"
    }
}

pub(crate) fn folder_id_xml(mb: &Mailbox, f: &Folder) -> String {
    format!(
        r#"<t:FolderId Id="{}" ChangeKey="{}"/>"#,
        Id::Folder {
            mailbox: mb.key(),
            id: f.id
        }
        .encode(),
        change_key(f.seq)
    )
}

/// The BaseShape of a FolderShape plus the `folder:` properties AdditionalProperties names.
pub(crate) struct FolderShape {
    base: &'static str,
    extra: Vec<String>,
}

impl FolderShape {
    /// Every property (what GetFolder and SyncFolderHierarchy answer here).
    pub(crate) fn all() -> FolderShape {
        FolderShape {
            base: "AllProperties",
            extra: Vec::new(),
        }
    }

    pub(crate) fn parse(el: Option<&Element>) -> FolderShape {
        let base = match el.and_then(|e| e.child_text("BaseShape")) {
            Some("IdOnly") => "IdOnly",
            Some("AllProperties") => "AllProperties",
            _ => "Default",
        };
        let extra = el
            .and_then(|e| e.child("AdditionalProperties"))
            .map(|a| {
                a.children
                    .iter()
                    .filter_map(|p| p.attr("FieldURI"))
                    .filter_map(|u| u.strip_prefix("folder:"))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        FolderShape { base, extra }
    }

    /// Whether the element `name` is in this shape. Default is Exchange's default folder
    /// set (FolderId, DisplayName, TotalCount, ChildFolderCount, UnreadCount); IdOnly is the
    /// FolderId alone; either plus what AdditionalProperties adds.
    fn wants(&self, name: &str) -> bool {
        name == "FolderId"
            || self.base == "AllProperties"
            || self.extra.iter().any(|e| e == name)
            || (self.base == "Default"
                && matches!(
                    name,
                    "DisplayName" | "TotalCount" | "ChildFolderCount" | "UnreadCount"
                ))
    }
}

/// A folder with every property (schema order of BaseFolderType).
pub(crate) fn folder_xml(mb: &Mailbox, f: &Folder) -> String {
    folder_xml_shaped(mb, f, &FolderShape::all())
}

/// A folder with the properties `shape` asks for, in the schema order of BaseFolderType.
pub(crate) fn folder_xml_shaped(mb: &Mailbox, f: &Folder, shape: &FolderShape) -> String {
    let el = folder_element_name(&f.class);
    let mut s = format!("<t:{el}>");
    s.push_str(&folder_id_xml(mb, f));
    if let Some(p) = f.parent.filter(|_| shape.wants("ParentFolderId")) {
        s.push_str(&format!(
            r#"<t:ParentFolderId Id="{}" ChangeKey="{}"/>"#,
            Id::Folder {
                mailbox: mb.key(),
                id: p
            }
            .encode(),
            change_key(mb.folders.get(&p).map(|p| p.seq).unwrap_or(0))
        ));
    }
    if !f.class.is_empty() && shape.wants("FolderClass") {
        s.push_str(&format!(
            "<t:FolderClass>{}</t:FolderClass>",
            escape(&f.class)
        ));
    }
    if shape.wants("DisplayName") {
        s.push_str(&format!(
            "<t:DisplayName>{}</t:DisplayName>",
            escape(&f.name)
        ));
    }
    if shape.wants("TotalCount") {
        let total = mb.items.values().filter(|i| i.folder == f.id).count();
        s.push_str(&format!("<t:TotalCount>{total}</t:TotalCount>"));
    }
    if shape.wants("ChildFolderCount") {
        let children = mb
            .folders
            .values()
            .filter(|c| c.parent == Some(f.id))
            .count();
        s.push_str(&format!(
            "<t:ChildFolderCount>{children}</t:ChildFolderCount>"
        ));
    }
    // UnreadCount belongs to FolderType only (the schema has none on contact, calendar or
    // task folders).
    if el == "Folder" && shape.wants("UnreadCount") {
        s.push_str("<t:UnreadCount>0</t:UnreadCount>");
    }
    s.push_str(&format!("</t:{el}>"));
    s
}

pub(crate) fn get_folder(ctx: &mut Ctx<'_>, op: &Element) -> OpResult {
    let mut msgs = Vec::new();
    for r in list(op, "FolderIds") {
        msgs.push(ctx.folder_ref(r).and_then(|f| {
            let mb = ctx.mb()?;
            Ok(format!("<m:Folders>{}</m:Folders>", folder_xml(mb, f)))
        }));
    }
    Ok(respond("GetFolder", msgs))
}

fn descendants(mb: &Mailbox, root: u64, deep: bool, out: &mut Vec<u64>) {
    for f in mb.folders.values().filter(|f| f.parent == Some(root)) {
        out.push(f.id);
        if deep {
            descendants(mb, f.id, deep, out);
        }
    }
}

pub(crate) fn find_folder(ctx: &mut Ctx<'_>, op: &Element) -> OpResult {
    let shape = FolderShape::parse(op.child("FolderShape"));
    let deep = op.attr("Traversal") == Some("Deep");
    let restriction = op.child("Restriction").and_then(|r| r.children.first());
    let view = op.child("IndexedPageFolderView");
    let mut msgs = Vec::new();
    for r in list(op, "ParentFolderIds") {
        msgs.push(ctx.folder_ref(r).and_then(|parent| {
            let mb = ctx.mb()?;
            let mut ids = Vec::new();
            descendants(mb, parent.id, deep, &mut ids);
            let mut matched: Vec<&Folder> = Vec::new();
            for id in ids {
                let Some(f) = mb.folders.get(&id) else {
                    continue;
                };
                if let Some(r) = restriction {
                    let get = |uri: &Element| -> Vec<String> {
                        match uri.attr("FieldURI") {
                            Some("folder:DisplayName") => vec![f.name.clone()],
                            Some("folder:FolderClass") => vec![f.class.clone()],
                            _ => Vec::new(),
                        }
                    };
                    if !restrict::eval(r, &get)? {
                        continue;
                    }
                }
                matched.push(f);
            }
            let total = matched.len();
            let (offset, max) = paging(view);
            let page: Vec<&Folder> = matched.into_iter().skip(offset).take(max).collect();
            let last = offset + page.len() >= total;
            let mut s = format!(
                r#"<m:RootFolder IndexedPagingOffset="{}" TotalItemsInView="{total}" IncludesLastItemInRange="{last}"><t:Folders>"#,
                offset + page.len()
            );
            for f in page {
                s.push_str(&folder_xml_shaped(mb, f, &shape));
            }
            s.push_str("</t:Folders></m:RootFolder>");
            Ok(s)
        }));
    }
    Ok(respond("FindFolder", msgs))
}

/// Offset and page size of an Indexed*View (BasePoint End is counted from the back by
/// the callers that need it; exchangelib only pages from the beginning).
pub(crate) fn paging(view: Option<&Element>) -> (usize, usize) {
    let Some(v) = view else {
        return (0, usize::MAX);
    };
    let offset = v.attr("Offset").and_then(|o| o.parse().ok()).unwrap_or(0);
    let max = v
        .attr("MaxEntriesReturned")
        .and_then(|o| o.parse().ok())
        .unwrap_or(usize::MAX);
    (offset, max)
}

pub(crate) fn create_folder(ctx: &mut Ctx<'_>, op: &Element) -> OpResult {
    let parent_el = op
        .child("ParentFolderId")
        .and_then(|p| p.children.first())
        .ok_or_else(|| EwsError::new("ErrorInvalidRequest", "ParentFolderId is missing"))?;
    let parent = match ctx.folder_ref(parent_el) {
        Ok(p) => p.id,
        Err(e) => return Ok(respond("CreateFolder", vec![Err(e)])),
    };
    let mut msgs = Vec::new();
    for f in list(op, "Folders") {
        let name = f.child_text("DisplayName").unwrap_or("").to_string();
        // Without a FolderClass the typed elements say the kind; a plain <t:Folder> takes the
        // kind of its parent (a folder made under Contacts is a contacts folder), and
        // IPF.Note where the parent has none (the roots).
        let parent_class = ctx
            .mb()?
            .folders
            .get(&parent)
            .map(|p| p.class.clone())
            .unwrap_or_default();
        let class = match f.child_text("FolderClass") {
            Some(c) => c.to_string(),
            None => match f.name.as_str() {
                "ContactsFolder" => "IPF.Contact".into(),
                "CalendarFolder" => "IPF.Appointment".into(),
                "TasksFolder" => "IPF.Task".into(),
                _ if parent_class.is_empty() => "IPF.Note".into(),
                _ => parent_class
                    .split('.')
                    .take(2)
                    .collect::<Vec<_>>()
                    .join("."),
            },
        };
        if name.is_empty() {
            msgs.push(Err(EwsError::new(
                "ErrorInvalidFolderName",
                "A folder needs a display name.",
            )));
            continue;
        }
        let exists = ctx
            .mb()?
            .folders
            .values()
            .any(|x| x.parent == Some(parent) && x.name.eq_ignore_ascii_case(&name));
        if exists {
            msgs.push(Err(EwsError::new(
                "ErrorFolderExists",
                "A folder with the specified name already exists.",
            )));
            continue;
        }
        let seq = ctx.next_seq();
        let folder = Folder {
            id: seq,
            parent: Some(parent),
            name,
            class,
            distinguished: None,
            created_seq: seq,
            seq,
        };
        let mb = ctx.mb_mut()?;
        mb.folders.insert(seq, folder.clone());
        let el = folder_element_name(&folder.class);
        msgs.push(Ok(format!(
            "<m:Folders><t:{el}>{}</t:{el}></m:Folders>",
            folder_id_xml(mb, &folder)
        )));
    }
    Ok(respond("CreateFolder", msgs))
}

/// DeleteFolder: `HardDelete` and `SoftDelete` remove the folder, its subfolders and their
/// items; `MoveToDeletedItems` moves it into Deleted Items with everything in it, keeping its
/// id, as Exchange does (and as a delete in Outlook does).
pub(crate) fn delete_folder(ctx: &mut Ctx<'_>, op: &Element) -> OpResult {
    let to_deleted_items = op.attr("DeleteType") == Some("MoveToDeletedItems");
    let mut msgs = Vec::new();
    for r in list(op, "FolderIds") {
        let res = ctx.folder_ref(r).map(|f| (f.id, f.distinguished.is_some()));
        let (id, distinguished) = match res {
            Ok(x) => x,
            Err(e) => {
                msgs.push(Err(e));
                continue;
            }
        };
        if distinguished {
            msgs.push(Err(EwsError::new(
                "ErrorDeleteDistinguishedFolder",
                "Distinguished folders cannot be deleted.",
            )));
            continue;
        }
        let seq = ctx.next_seq();
        let mb = ctx.mb_mut()?;
        if to_deleted_items {
            msgs.push(move_to_deleted_items(mb, id, seq).map(|_| String::new()));
        } else {
            remove_folder_tree(mb, id, seq);
            msgs.push(Ok(String::new()));
        }
    }
    if msgs.is_empty() {
        return Err(folder_not_found());
    }
    Ok(respond("DeleteFolder", msgs))
}

/// Removes a folder for good with its subfolders and their items, leaving tombstones for
/// SyncFolderItems and SyncFolderHierarchy at `seq`.
pub(crate) fn remove_folder_tree(mb: &mut Mailbox, id: u64, seq: u64) {
    let mut doomed = vec![id];
    descendants(mb, id, true, &mut doomed);
    for fid in &doomed {
        if let Some(f) = mb.folders.remove(fid) {
            mb.folder_tombstones.push(Tombstone {
                id: f.id,
                folder: f.parent.unwrap_or(0),
                created_seq: f.created_seq,
                seq,
            });
        }
    }
    let items: Vec<u64> = mb
        .items
        .values()
        .filter(|i| doomed.contains(&i.folder))
        .map(|i| i.id)
        .collect();
    for iid in items {
        if let Some(it) = mb.items.remove(&iid) {
            mb.tombstones.push(Tombstone {
                id: it.id,
                folder: it.folder,
                created_seq: it.created_seq,
                seq,
            });
        }
    }
}

/// Moves a folder into Deleted Items with everything below it; it keeps its id and its items
/// theirs. Where Deleted Items already holds a folder of that name, the moved one is
/// numbered (`Name1`, `Name2`, …) so both stay. Returns the folder's new name.
pub(crate) fn move_to_deleted_items(
    mb: &mut Mailbox,
    id: u64,
    seq: u64,
) -> Result<String, EwsError> {
    let bin = mb
        .distinguished("deleteditems")
        .map(|f| f.id)
        .ok_or_else(folder_not_found)?;
    let name = mb
        .folders
        .get(&id)
        .map(|f| f.name.clone())
        .ok_or_else(folder_not_found)?;
    let mut below = vec![id];
    descendants(mb, id, true, &mut below);
    if below.contains(&bin) {
        return Err(EwsError::new(
            "ErrorMoveCopyFailed",
            "A folder cannot be moved into itself or one of its subfolders.",
        ));
    }
    let mut free = name.clone();
    let mut n = 0;
    while name_taken(mb, bin, &free, id) {
        n += 1;
        free = format!("{name}{n}");
    }
    let f = mb.folders.get_mut(&id).ok_or_else(folder_not_found)?;
    f.parent = Some(bin);
    f.name = free.clone();
    f.seq = seq;
    Ok(free)
}

/// The folder a `<t:FolderId>`/`<t:DistinguishedFolderId>` names, checked against the change
/// key it carries: a key of an older version is ErrorStaleObject, as for items.
fn folder_for_write(ctx: &Ctx<'_>, r: &Element) -> Result<u64, EwsError> {
    let f = ctx.folder_ref(r)?;
    if let Some(ck) = r.attr("ChangeKey").filter(|c| !c.trim().is_empty()) {
        let seq = crate::exchange::store::parse_change_key(ck)
            .ok_or_else(|| EwsError::new("ErrorInvalidChangeKey", "The change key is invalid."))?;
        if seq != f.seq {
            return Err(EwsError::new(
                "ErrorStaleObject",
                "The change key passed in the request does not match the current change key for the folder.",
            ));
        }
    }
    Ok(f.id)
}

fn refuse_distinguished(ctx: &Ctx<'_>, id: u64, what: &str) -> Result<(), EwsError> {
    if ctx
        .mb()?
        .folders
        .get(&id)
        .is_some_and(|f| f.distinguished.is_some())
    {
        return Err(EwsError::new(
            "ErrorMoveDistinguishedFolder",
            format!("Distinguished folders cannot be {what}."),
        ));
    }
    Ok(())
}

/// A sibling under `parent` (other than `except`) already has `name`, case-insensitively.
fn name_taken(mb: &Mailbox, parent: u64, name: &str, except: u64) -> bool {
    mb.folders
        .values()
        .any(|x| x.parent == Some(parent) && x.id != except && x.name.eq_ignore_ascii_case(name))
}

fn folder_info(mb: &Mailbox, id: u64) -> Result<String, EwsError> {
    let f = mb.folders.get(&id).ok_or_else(folder_not_found)?;
    let el = folder_element_name(&f.class);
    Ok(format!(
        "<m:Folders><t:{el}>{}</t:{el}></m:Folders>",
        folder_id_xml(mb, f)
    ))
}

/// UpdateFolder: Set/Delete of DisplayName (a rename) and FolderClass, PermissionSet taken and
/// ignored. A user renaming the sync folder in Outlook is this operation; its id stays, its
/// change key moves on.
pub(crate) fn update_folder(ctx: &mut Ctx<'_>, op: &Element) -> OpResult {
    let mut msgs = Vec::new();
    for change in list(op, "FolderChanges") {
        msgs.push(update_folder_one(ctx, change));
    }
    Ok(respond("UpdateFolder", msgs))
}

fn update_folder_one(ctx: &mut Ctx<'_>, change: &Element) -> Result<String, EwsError> {
    let r = change
        .children
        .iter()
        .find(|c| c.name.ends_with("FolderId"))
        .ok_or_else(|| EwsError::new("ErrorInvalidIdEmpty", "The folder change has no id."))?;
    let id = folder_for_write(ctx, r)?;
    let (mut name, mut class, parent) = {
        let f = ctx.mb()?.folders.get(&id).ok_or_else(folder_not_found)?;
        (f.name.clone(), f.class.clone(), f.parent)
    };
    let updates = change
        .child("Updates")
        .map(|u| u.children.as_slice())
        .unwrap_or(&[]);
    for u in updates {
        let field = u
            .children
            .iter()
            .find(|c| c.name == "FieldURI")
            .and_then(|c| c.attr("FieldURI"))
            .unwrap_or("");
        let value = u
            .children
            .iter()
            .find(|c| c.name.ends_with("Folder"))
            .and_then(|f| f.children.first());
        match (u.name.as_str(), field) {
            ("SetFolderField", "folder:DisplayName") => {
                name = value.map(|v| v.text.trim().to_string()).unwrap_or_default();
            }
            ("SetFolderField", "folder:FolderClass") => {
                class = value.map(|v| v.text.trim().to_string()).unwrap_or_default();
            }
            ("DeleteFolderField", "folder:FolderClass") => class.clear(),
            // The simulator keeps no folder permissions. exchangelib's `Folder.save()` sends
            // this delete with every rename, and Exchange takes it (it leaves the default
            // permissions), so refusing it would refuse a rename Exchange makes.
            ("SetFolderField" | "DeleteFolderField", "folder:PermissionSet") => {}
            _ => {
                return Err(EwsError::new(
                    "ErrorInvalidPropertySet",
                    format!("{} of {field} is not supported here.", u.name),
                ))
            }
        }
    }
    if name.is_empty() {
        return Err(EwsError::new(
            "ErrorInvalidFolderName",
            "A folder needs a display name.",
        ));
    }
    if let Some(p) = parent {
        if name_taken(ctx.mb()?, p, &name, id) {
            return Err(EwsError::new(
                "ErrorFolderExists",
                "A folder with the specified name already exists.",
            ));
        }
    }
    let seq = ctx.next_seq();
    let mb = ctx.mb_mut()?;
    let f = mb.folders.get_mut(&id).ok_or_else(folder_not_found)?;
    f.name = name;
    f.class = class;
    f.seq = seq;
    folder_info(mb, id)
}

/// MoveFolder: the folder keeps its id under the new parent (Exchange keeps folder ids on a
/// move within a mailbox); a folder cannot go under itself or its own subtree.
pub(crate) fn move_folder(ctx: &mut Ctx<'_>, op: &Element) -> OpResult {
    let to_el = op
        .child("ToFolderId")
        .and_then(|t| t.children.first())
        .ok_or_else(|| EwsError::new("ErrorInvalidRequest", "ToFolderId is missing"))?;
    let to = match ctx.folder_ref(to_el) {
        Ok(f) => f.id,
        Err(e) => return Ok(respond("MoveFolder", vec![Err(e)])),
    };
    let mut msgs = Vec::new();
    for r in list(op, "FolderIds") {
        msgs.push((|| {
            let id = folder_for_write(ctx, r)?;
            refuse_distinguished(ctx, id, "moved")?;
            let mb = ctx.mb()?;
            let mut below = vec![id];
            descendants(mb, id, true, &mut below);
            if below.contains(&to) {
                return Err(EwsError::new(
                    "ErrorMoveCopyFailed",
                    "A folder cannot be moved into itself or one of its subfolders.",
                ));
            }
            let name = mb
                .folders
                .get(&id)
                .map(|f| f.name.clone())
                .unwrap_or_default();
            if name_taken(mb, to, &name, id) {
                return Err(EwsError::new(
                    "ErrorFolderExists",
                    "A folder with the specified name already exists.",
                ));
            }
            let seq = ctx.next_seq();
            let mb = ctx.mb_mut()?;
            let f = mb.folders.get_mut(&id).ok_or_else(folder_not_found)?;
            f.parent = Some(to);
            f.seq = seq;
            folder_info(mb, id)
        })());
    }
    Ok(respond("MoveFolder", msgs))
}

/// EmptyFolder: deletes the folder's items, and its subfolders when DeleteSubFolders is true.
/// Exchange refuses it on the root and the calendar/search folders; here on the roots.
pub(crate) fn empty_folder(ctx: &mut Ctx<'_>, op: &Element) -> OpResult {
    let subfolders = matches!(op.attr("DeleteSubFolders"), Some("true") | Some("1"));
    let mut msgs = Vec::new();
    for r in list(op, "FolderIds") {
        msgs.push((|| {
            let f = ctx.folder_ref(r)?;
            let id = f.id;
            if matches!(
                f.distinguished.as_deref(),
                Some("root") | Some("msgfolderroot")
            ) {
                return Err(EwsError::new(
                    "ErrorCannotEmptyFolder",
                    "This folder cannot be emptied.",
                ));
            }
            let seq = ctx.next_seq();
            let mb = ctx.mb_mut()?;
            let mut doomed = Vec::new();
            if subfolders {
                descendants(mb, id, true, &mut doomed);
                for fid in &doomed {
                    if let Some(f) = mb.folders.remove(fid) {
                        mb.folder_tombstones.push(Tombstone {
                            id: f.id,
                            folder: f.parent.unwrap_or(0),
                            created_seq: f.created_seq,
                            seq,
                        });
                    }
                }
            }
            doomed.push(id);
            let items: Vec<u64> = mb
                .items
                .values()
                .filter(|i| doomed.contains(&i.folder))
                .map(|i| i.id)
                .collect();
            for iid in items {
                if let Some(it) = mb.items.remove(&iid) {
                    mb.tombstones.push(Tombstone {
                        id: it.id,
                        folder: it.folder,
                        created_seq: it.created_seq,
                        seq,
                    });
                }
            }
            Ok(String::new())
        })());
    }
    Ok(respond("EmptyFolder", msgs))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::exchange::store::State;
    use crate::exchange::xml::parse;

    const USER: &str = "ann@contoso.test";

    fn state() -> State {
        let mut st = State::new("contoso.test", "svc", "pw", "tok");
        assert!(st.add_mailbox(USER, "Ann", true));
        st
    }

    fn run(st: &mut State, op: fn(&mut Ctx<'_>, &Element) -> OpResult, xml: &str) -> Element {
        let mut ctx = Ctx {
            st,
            mailbox: USER.into(),
            dirty: false,
        };
        let el = parse(xml).unwrap();
        parse(&op(&mut ctx, &el).unwrap()).unwrap()
    }

    /// Every element named `name` in the tree, depth first.
    fn all<'a>(el: &'a Element, name: &str, out: &mut Vec<&'a Element>) {
        if el.name == name {
            out.push(el);
        }
        for c in &el.children {
            all(c, name, out);
        }
    }

    fn texts(el: &Element, name: &str) -> Vec<String> {
        let mut found = Vec::new();
        all(el, name, &mut found);
        found.iter().map(|e| e.text.trim().to_string()).collect()
    }

    const SYSTEM: [(&str, &str); 5] = [
        ("Recipient Cache", "IPF.Contact.RecipientCache"),
        (
            "PeopleCentricConversation Buddies",
            "IPF.Contact.MOC.QuickContacts",
        ),
        ("Companies", "IPF.Contact.Company"),
        (
            "Organizational Contacts",
            "IPF.Contact.OrganizationalContacts",
        ),
        ("GAL Contacts", "IPF.Contact.GalContacts"),
    ];

    #[test]
    fn a_new_mailbox_has_the_system_folders_under_contacts() {
        let mut st = state();
        let found = run(
            &mut st,
            find_folder,
            r#"<FindFolder Traversal="Shallow"><FolderShape><BaseShape>AllProperties</BaseShape></FolderShape><ParentFolderIds><DistinguishedFolderId Id="contacts"/></ParentFolderIds></FindFolder>"#,
        );
        let mut listed: Vec<(String, String)> = texts(&found, "DisplayName")
            .into_iter()
            .zip(texts(&found, "FolderClass"))
            .collect();
        listed.sort();
        let mut expected: Vec<(String, String)> = SYSTEM
            .iter()
            .map(|(n, c)| (n.to_string(), c.to_string()))
            .collect();
        expected.sort();
        assert_eq!(listed, expected);
        let mut folders = Vec::new();
        all(&found, "ContactsFolder", &mut folders);
        assert_eq!(folders.len(), SYSTEM.len(), "each is a contacts folder");

        // Two of them answer to a DistinguishedFolderId, and none can be deleted.
        for (id, name) in [
            ("recipientcache", "Recipient Cache"),
            ("quickcontacts", "PeopleCentricConversation Buddies"),
        ] {
            let got = run(
                &mut st,
                get_folder,
                &format!(
                    r#"<GetFolder><FolderIds><DistinguishedFolderId Id="{id}"/></FolderIds></GetFolder>"#
                ),
            );
            assert_eq!(texts(&got, "DisplayName"), [name]);
            let refused = run(
                &mut st,
                delete_folder,
                &format!(
                    r#"<DeleteFolder DeleteType="HardDelete"><FolderIds><DistinguishedFolderId Id="{id}"/></FolderIds></DeleteFolder>"#
                ),
            );
            assert_eq!(
                texts(&refused, "ResponseCode"),
                ["ErrorDeleteDistinguishedFolder"]
            );
        }
        // The Deleted Items a delete moves items to is still found by its role.
        let mb = st.mailbox(USER).unwrap();
        assert_eq!(
            mb.distinguished("deleteditems").map(|f| f.name.as_str()),
            Some("Deleted Items")
        );
        assert!(mb.distinguished("companies").is_none());
    }

    #[test]
    fn a_folder_deleted_to_deleted_items_keeps_its_id_and_items() {
        let mut st = state();
        let created = run(
            &mut st,
            create_folder,
            r#"<CreateFolder><ParentFolderId><DistinguishedFolderId Id="contacts"/></ParentFolderId><Folders><ContactsFolder><DisplayName>Salesforce_Sync</DisplayName></ContactsFolder></Folders></CreateFolder>"#,
        );
        let mut ids = Vec::new();
        all(&created, "FolderId", &mut ids);
        let id = ids[0].attr("Id").unwrap().to_string();
        let bin = st
            .mailbox(USER)
            .unwrap()
            .distinguished("deleteditems")
            .unwrap()
            .id;

        for round in 0..2 {
            if round == 1 {
                // A second folder of the same name deleted after the first is numbered.
                let again = run(
                    &mut st,
                    create_folder,
                    r#"<CreateFolder><ParentFolderId><DistinguishedFolderId Id="contacts"/></ParentFolderId><Folders><ContactsFolder><DisplayName>Salesforce_Sync</DisplayName></ContactsFolder></Folders></CreateFolder>"#,
                );
                let mut ids = Vec::new();
                all(&again, "FolderId", &mut ids);
                let second = ids[0].attr("Id").unwrap().to_string();
                run(
                    &mut st,
                    delete_folder,
                    &format!(
                        r#"<DeleteFolder DeleteType="MoveToDeletedItems"><FolderIds><FolderId Id="{second}"/></FolderIds></DeleteFolder>"#
                    ),
                );
                let got = run(
                    &mut st,
                    get_folder,
                    &format!(
                        r#"<GetFolder><FolderIds><FolderId Id="{second}"/></FolderIds></GetFolder>"#
                    ),
                );
                assert_eq!(texts(&got, "DisplayName"), ["Salesforce_Sync1"]);
                continue;
            }
            let moved = run(
                &mut st,
                delete_folder,
                &format!(
                    r#"<DeleteFolder DeleteType="MoveToDeletedItems"><FolderIds><FolderId Id="{id}"/></FolderIds></DeleteFolder>"#
                ),
            );
            assert_eq!(texts(&moved, "ResponseCode"), ["NoError"]);
            let got = run(
                &mut st,
                get_folder,
                &format!(r#"<GetFolder><FolderIds><FolderId Id="{id}"/></FolderIds></GetFolder>"#),
            );
            let mut parents = Vec::new();
            all(&got, "ParentFolderId", &mut parents);
            let parent = Id::decode(parents[0].attr("Id").unwrap());
            assert_eq!(
                parent,
                Some(Id::Folder {
                    mailbox: USER.into(),
                    id: bin
                })
            );
        }

        // A hard delete leaves nothing to find.
        run(
            &mut st,
            delete_folder,
            &format!(
                r#"<DeleteFolder DeleteType="HardDelete"><FolderIds><FolderId Id="{id}"/></FolderIds></DeleteFolder>"#
            ),
        );
        let gone = run(
            &mut st,
            get_folder,
            &format!(r#"<GetFolder><FolderIds><FolderId Id="{id}"/></FolderIds></GetFolder>"#),
        );
        assert_eq!(texts(&gone, "ResponseCode"), ["ErrorFolderNotFound"]);
    }
}
