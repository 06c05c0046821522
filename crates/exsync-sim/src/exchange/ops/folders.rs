//! GetFolder, FindFolder, CreateFolder, DeleteFolder.

use super::{folder_not_found, list, respond, restrict, Ctx, OpResult};
use crate::exchange::soap::EwsError;
use crate::exchange::store::{change_key, Folder, Id, Mailbox, Tombstone};
use crate::exchange::xml::{escape, Element};

pub fn folder_element_name(class: &str) -> &'static str {
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

pub fn folder_id_xml(mb: &Mailbox, f: &Folder) -> String {
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

/// A folder with the properties every shape returns (schema order of BaseFolderType).
pub fn folder_xml(mb: &Mailbox, f: &Folder) -> String {
    let el = folder_element_name(&f.class);
    let mut s = format!("<t:{el}>");
    s.push_str(&folder_id_xml(mb, f));
    if let Some(p) = f.parent {
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
    if !f.class.is_empty() {
        s.push_str(&format!(
            "<t:FolderClass>{}</t:FolderClass>",
            escape(&f.class)
        ));
    }
    s.push_str(&format!(
        "<t:DisplayName>{}</t:DisplayName>",
        escape(&f.name)
    ));
    let total = mb.items.values().filter(|i| i.folder == f.id).count();
    let children = mb
        .folders
        .values()
        .filter(|c| c.parent == Some(f.id))
        .count();
    s.push_str(&format!(
        "<t:TotalCount>{total}</t:TotalCount><t:ChildFolderCount>{children}</t:ChildFolderCount>"
    ));
    if el == "Folder" {
        s.push_str("<t:UnreadCount>0</t:UnreadCount>");
    }
    s.push_str(&format!("</t:{el}>"));
    s
}

pub fn get_folder(ctx: &mut Ctx<'_>, op: &Element) -> OpResult {
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

pub fn find_folder(ctx: &mut Ctx<'_>, op: &Element) -> OpResult {
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
                s.push_str(&folder_xml(mb, f));
            }
            s.push_str("</t:Folders></m:RootFolder>");
            Ok(s)
        }));
    }
    Ok(respond("FindFolder", msgs))
}

/// Offset and page size of an Indexed*View (BasePoint End is counted from the back by
/// the callers that need it; exchangelib only pages from the beginning).
pub fn paging(view: Option<&Element>) -> (usize, usize) {
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

pub fn create_folder(ctx: &mut Ctx<'_>, op: &Element) -> OpResult {
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
        let class = match f.child_text("FolderClass") {
            Some(c) => c.to_string(),
            None => match f.name.as_str() {
                "ContactsFolder" => "IPF.Contact".into(),
                "CalendarFolder" => "IPF.Appointment".into(),
                "TasksFolder" => "IPF.Task".into(),
                _ => "IPF.Note".into(),
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

pub fn delete_folder(ctx: &mut Ctx<'_>, op: &Element) -> OpResult {
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
        msgs.push(Ok(String::new()));
    }
    if msgs.is_empty() {
        return Err(folder_not_found());
    }
    Ok(respond("DeleteFolder", msgs))
}
