//! The mailbox folder cursors: what a pass starts from, and what its commits move them to.
//!
//! A folder's cursor is the mailbox backend's own cursor (EWS: a SyncState) plus the items the
//! pass created after reading it. A slice's commit keeps the backend's cursor where the pass
//! started but adds the items created so far; only the pass's last commit moves it, with
//! everything it covers.

use std::sync::Arc;

use exsync_core::config::Direction;
use exsync_core::{ExchangeId, ItemKind, UserKey};
use exsync_store::{CursorAdvance, CursorScope, Store};

use super::execute::Written;
use super::read::ExchangeListed;
use super::{on_store, KindPass, PassError, SyncUser, KINDS};
use crate::sync::sides::{CrmSide, MailboxSide};

/// The Exchange cursor of one user's folder for one kind.
pub fn folder_cursor(user: &UserKey, kind: ItemKind) -> CursorScope {
    CursorScope::folder(user, kind.as_str())
}

/// The folder (id and version) a stored folder cursor names, if any: a cursor stored before
/// folders were (a bare SyncState) names none.
pub fn cursor_folder(stored: Option<&str>) -> Option<(String, String)> {
    FolderCursor::parse(stored).folder
}

/// What the service stores as a mailbox folder's cursor: the backend's cursor, and the items
/// the pass itself created after reading it (see `read.rs`, where it is read).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct FolderCursor {
    pub(super) state: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) created: Vec<ExchangeId>,
    /// The folder's id and version, so a new process need not look it up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) folder: Option<(String, String)>,
}

impl FolderCursor {
    pub(super) fn parse(text: Option<&str>) -> FolderCursor {
        match text {
            None => FolderCursor::default(),
            // A bare EWS SyncState, as stored before the created items were remembered.
            Some(text) => serde_json::from_str(text).unwrap_or_else(|_| FolderCursor {
                state: Some(text.to_owned()),
                created: Vec::new(),
                folder: None,
            }),
        }
    }

    pub(super) fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| self.state.clone().unwrap_or_default())
    }
}

/// Whether every synced kind has been read to the end once. The mailbox is made ready (the
/// sync folder created) once; after that, each kind finds its folder from its cursor (or by
/// its role, as the calendar) when it reads.
pub(super) async fn folders_known(
    store: &Arc<dyn Store>,
    user: &SyncUser,
) -> Result<bool, PassError> {
    let mut known = true;
    for kind in KINDS {
        if user.config.rules(kind).direction == Direction::Off {
            continue;
        }
        let scope = folder_cursor(&user.key, kind);
        let stored = on_store(store, move |s| s.cursor(&scope)).await?;
        known &= FolderCursor::parse(stored.as_deref()).state.is_some();
    }
    Ok(known)
}

impl<E: MailboxSide, C: CrmSide> KindPass<'_, E, C> {
    /// The folder cursor this kind's pass starts from; the side learns the folder it names,
    /// so it need not look it up.
    pub(super) async fn stored_cursor(&self) -> Result<FolderCursor, PassError> {
        let (user, kind) = (&self.user.key, self.kind);
        let cursor = {
            let scope = folder_cursor(user, kind);
            on_store(self.store, move |s| s.cursor(&scope)).await?
        };
        let cursor = FolderCursor::parse(cursor.as_deref());
        if let Some(folder) = &cursor.folder {
            self.exchange.known_folder(user, kind, folder);
        }
        Ok(cursor)
    }

    /// What a slice's commit stores as the folder's cursor: the backend's cursor the pass started
    /// from, with every item created so far, so a crash before the pass's end cannot hide
    /// their deletion. Nothing when there is no backend cursor yet (the next pass lists the folder
    /// in full, which shows those items anyway) or nothing was created.
    pub(super) fn created_so_far(&self, written: &Written) -> Option<CursorAdvance> {
        if written.base.state.is_none() || written.created.is_empty() {
            return None;
        }
        Some(CursorAdvance {
            scope: folder_cursor(&self.user.key, self.kind),
            value: Some(
                FolderCursor {
                    state: written.base.state.clone(),
                    created: written
                        .base
                        .created
                        .iter()
                        .chain(&written.created)
                        .cloned()
                        .collect(),
                    folder: written.base.folder.clone(),
                }
                .to_text(),
            ),
        })
    }

    /// What the pass's last commit stores as the folder's cursor: where the mailbox read
    /// ended, with the items the pass created after it.
    pub(super) fn read_to_end(
        &self,
        read: ExchangeListed,
        created: Vec<ExchangeId>,
    ) -> CursorAdvance {
        CursorAdvance {
            scope: folder_cursor(&self.user.key, self.kind),
            value: Some(
                FolderCursor {
                    state: Some(read.state),
                    created,
                    folder: read.folder,
                }
                .to_text(),
            ),
        }
    }
}
