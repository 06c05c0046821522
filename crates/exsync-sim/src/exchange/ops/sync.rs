//! SyncFolderItems and SyncFolderHierarchy.
//!
//! A sync state is the change sequence number the client has seen, bound to the folder it
//! was issued for. Every write stamps items with a new sequence number, so "changes since
//! state" is a filter, and paging returns the oldest changes first.

use base64::Engine;

use super::folders::folder_xml;
use super::shape::{render_item, Shape};
use super::{respond, Ctx, OpResult};
use crate::exchange::soap::EwsError;
use crate::exchange::store::{change_key, Id};
use crate::exchange::xml::{escape, Element};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn encode_state(kind: &str, folder: u64, seq: u64) -> String {
    B64.encode(format!("exsim-sync|{kind}|{folder}|{seq}"))
}

fn decode_state(s: &str, kind: &str, folder: u64) -> Result<u64, EwsError> {
    let bad = || {
        EwsError::new(
            "ErrorInvalidSyncStateData",
            "Synchronization state data is corrupt or otherwise invalid.",
        )
    };
    let raw = B64.decode(s.trim()).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let parts: Vec<&str> = raw.split('|').collect();
    match parts.as_slice() {
        ["exsim-sync", k, f, seq] if *k == kind && f.parse::<u64>().ok() == Some(folder) => {
            seq.parse().map_err(|_| bad())
        }
        _ => Err(bad()),
    }
}

enum Change {
    Create(u64),
    Update(u64),
    Delete(u64, u64),
}

pub(crate) fn sync_folder_items(ctx: &mut Ctx<'_>, op: &Element) -> OpResult {
    let shape = Shape::parse(op.child("ItemShape"));
    let max: i64 = op
        .child_text("MaxChangesReturned")
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| EwsError::new("ErrorSchemaValidation", "MaxChangesReturned is required."))?;
    if !(1..=512).contains(&max) {
        // The schema bounds it (MaxSyncChangesReturnedType), so Exchange rejects the request.
        return Err(EwsError::new(
            "ErrorSchemaValidation",
            "The request failed schema validation: MaxChangesReturned must be between 1 and 512.",
        ));
    }
    let folder_el = op
        .child("SyncFolderId")
        .and_then(|f| f.children.first())
        .ok_or_else(|| EwsError::new("ErrorSchemaValidation", "SyncFolderId is required."))?;
    let folder = match ctx.folder_ref(folder_el) {
        Ok(f) => f.id,
        Err(e) => return Ok(respond("SyncFolderItems", vec![Err(e)])),
    };
    let since = match op.child_text("SyncState").filter(|s| !s.is_empty()) {
        Some(s) => match decode_state(s, "items", folder) {
            Ok(v) => v,
            Err(e) => return Ok(respond("SyncFolderItems", vec![Err(e)])),
        },
        None => 0,
    };
    let ignored: Vec<u64> = op
        .child("Ignore")
        .map(|i| {
            i.children
                .iter()
                .filter_map(|c| match Id::decode(c.attr("Id").unwrap_or("")) {
                    Some(Id::Item { id, .. }) => Some(id),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let mb = ctx.mb()?;
    let mut changes: Vec<(u64, Change)> = Vec::new();
    for item in mb
        .items
        .values()
        .filter(|i| i.folder == folder && i.seq > since)
    {
        if ignored.contains(&item.id) {
            continue;
        }
        let c = if item.created_seq > since {
            Change::Create(item.id)
        } else {
            Change::Update(item.id)
        };
        changes.push((item.seq, c));
    }
    for t in mb
        .tombstones
        .iter()
        .filter(|t| t.folder == folder && t.seq > since && t.created_seq <= since)
    {
        changes.push((t.seq, Change::Delete(t.id, t.seq)));
    }
    changes.sort_by_key(|(s, _)| *s);
    let total = changes.len();
    let page: Vec<&(u64, Change)> = changes.iter().take(max as usize).collect();
    let last = page.len() == total;
    let new_seq = if last {
        // Nothing newer is pending for this folder; the whole store sequence is covered.
        ctx.st.seq.max(since)
    } else {
        page.last().map(|(s, _)| *s).unwrap_or(since)
    };
    let mut s = format!(
        "<m:SyncState>{}</m:SyncState><m:IncludesLastItemInRange>{last}</m:IncludesLastItemInRange><m:Changes>",
        escape(&encode_state("items", folder, new_seq))
    );
    for (_, c) in page {
        match c {
            Change::Create(id) | Change::Update(id) => {
                let Some(item) = mb.items.get(id) else {
                    continue;
                };
                let tag = if matches!(c, Change::Create(_)) {
                    "Create"
                } else {
                    "Update"
                };
                s.push_str(&format!("<t:{tag}>"));
                s.push_str(&render_item(mb, item, &shape, None));
                s.push_str(&format!("</t:{tag}>"));
            }
            Change::Delete(id, seq) => {
                s.push_str(&format!(
                    r#"<t:Delete><t:ItemId Id="{}" ChangeKey="{}"/></t:Delete>"#,
                    Id::Item {
                        mailbox: mb.key(),
                        id: *id
                    }
                    .encode(),
                    change_key(*seq)
                ));
            }
        }
    }
    s.push_str("</m:Changes>");
    Ok(respond("SyncFolderItems", vec![Ok(s)]))
}

pub(crate) fn sync_folder_hierarchy(ctx: &mut Ctx<'_>, op: &Element) -> OpResult {
    let root = match op.child("SyncFolderId").and_then(|f| f.children.first()) {
        Some(el) => match ctx.folder_ref(el) {
            Ok(f) => f.id,
            Err(e) => return Ok(respond("SyncFolderHierarchy", vec![Err(e)])),
        },
        None => ctx
            .mb()?
            .distinguished("root")
            .map(|f| f.id)
            .ok_or_else(super::folder_not_found)?,
    };
    let since = match op.child_text("SyncState").filter(|s| !s.is_empty()) {
        Some(s) => match decode_state(s, "folders", root) {
            Ok(v) => v,
            Err(e) => return Ok(respond("SyncFolderHierarchy", vec![Err(e)])),
        },
        None => 0,
    };
    let mb = ctx.mb()?;
    let mut under = Vec::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        for f in mb.folders.values().filter(|f| f.parent == Some(p)) {
            under.push(f);
            stack.push(f.id);
        }
    }
    under.sort_by_key(|f| f.seq);
    let mut s = format!(
        "<m:SyncState>{}</m:SyncState><m:IncludesLastFolderInRange>true</m:IncludesLastFolderInRange><m:Changes>",
        escape(&encode_state("folders", root, ctx.st.seq))
    );
    for f in under.into_iter().filter(|f| f.seq > since) {
        let tag = if f.created_seq > since {
            "Create"
        } else {
            "Update"
        };
        s.push_str(&format!("<t:{tag}>{}</t:{tag}>", folder_xml(mb, f)));
    }
    // Folders deleted since the state; only the ones the client had seen.
    for t in mb
        .folder_tombstones
        .iter()
        .filter(|t| t.seq > since && t.created_seq <= since)
    {
        s.push_str(&format!(
            r#"<t:Delete><t:FolderId Id="{}" ChangeKey="{}"/></t:Delete>"#,
            Id::Folder {
                mailbox: mb.key(),
                id: t.id
            }
            .encode(),
            change_key(t.seq)
        ));
    }
    s.push_str("</m:Changes>");
    Ok(respond("SyncFolderHierarchy", vec![Ok(s)]))
}
