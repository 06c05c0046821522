//! The mailbox folder cursors: what a pass starts from, and what its commits move them to.
//!
//! A folder's cursor is the mailbox backend's own cursor (EWS: a SyncState) plus the items the
//! pass created after reading it. A slice's commit keeps the backend's cursor where the pass
//! started; only the pass's last commit moves it, with everything it covers. The items a
//! slice created go beside it, in a chunk of their own (`<kind>.created.<n>`): rewriting the
//! cursor with every item created so far at each slice made a pass that creates n items
//! write O(n²) bytes (an import of 20,000 contacts into a synced mailbox cost three times a
//! first sync per item). The last commit folds them into the cursor and removes the chunks;
//! a pass that did not end leaves them for the next, which reads them with the cursor.

use exsync_core::{ExchangeId, ItemKind, UserKey};
use exsync_store::{CursorAdvance, CursorScope};

use super::execute::Written;
use super::read::ExchangeListed;
use super::KindPass;
use crate::sync::mailboxes::Backend;
use crate::sync::sides::{CrmSide, MailboxSide};

/// The Exchange cursor of one user's folder for one kind.
pub fn folder_cursor(user: &UserKey, kind: ItemKind) -> CursorScope {
    CursorScope::folder(user, kind.as_str())
}

/// The `n`th chunk (from 1) of items created beside the user's folder cursor for `kind`.
pub(super) fn created_chunk(user: &UserKey, kind: ItemKind, n: usize) -> CursorScope {
    CursorScope::folder(user, format!("{}.created.{n}", kind.as_str()))
}

/// The folder (id and version) a stored folder cursor names, if any: a cursor stored before
/// folders were (a bare SyncState) names none.
pub fn cursor_folder(stored: Option<&str>) -> Option<(String, String)> {
    FolderCursor::parse(stored).folder
}

/// The folder a stored folder cursor names when `backend` issued it; a cursor that names no
/// backend was stored before there was more than EWS.
pub fn cursor_folder_on(stored: Option<&str>, backend: Backend) -> Option<(String, String)> {
    let cursor = FolderCursor::parse(stored);
    let issuer = cursor.backend.as_deref().unwrap_or(Backend::Ews.as_str());
    if issuer == backend.as_str() {
        cursor.folder
    } else {
        None
    }
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
    /// The backend that issued the cursor and the folder id (`ews`, `graph`); none in cursors
    /// stored before there was more than EWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) backend: Option<String>,
    /// Set, and nothing else, when the stored cursor was issued by another backend than the
    /// one serving the user now: the mailbox moved (see `relink.rs`).
    #[serde(skip)]
    pub(super) moved_from: Option<Backend>,
    /// How many created-item chunks are stored beside the cursor (their items are in
    /// `created` when the cursor belongs to the backend serving the user).
    #[serde(skip)]
    pub(super) chunks: usize,
}

impl FolderCursor {
    pub(super) fn parse(text: Option<&str>) -> FolderCursor {
        match text {
            None => FolderCursor::default(),
            // A bare EWS SyncState, as stored before the created items were remembered.
            Some(text) => serde_json::from_str(text).unwrap_or_else(|_| FolderCursor {
                state: Some(text.to_owned()),
                ..FolderCursor::default()
            }),
        }
    }

    /// The backend that issued this cursor: EWS for one stored before backends were named, and
    /// `None` for a name this build does not know.
    fn issued_by(&self) -> Option<Backend> {
        match &self.backend {
            None => Some(Backend::Ews),
            Some(name) => Backend::parse(name),
        }
    }

    /// Whether the cursor is one `current` can read on from: it issued it, or nothing was read
    /// yet.
    pub(super) fn belongs_to(&self, current: Backend) -> bool {
        self.state.is_none() || self.issued_by() == Some(current)
    }

    pub(super) fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| self.state.clone().unwrap_or_default())
    }
}

impl<E: MailboxSide, C: CrmSide> KindPass<'_, E, C> {
    /// The folder cursor this kind's pass starts from; the side learns the folder it names,
    /// so it need not look it up. A cursor another backend issued means nothing to this one:
    /// the pass starts from nothing, knowing the mailbox moved.
    pub(super) fn stored_cursor(&self) -> FolderCursor {
        let (user, kind) = (&self.user.key, self.kind);
        let mut cursor = FolderCursor::parse(self.stored.cursor.as_deref());
        let chunks = &self.stored.created_chunks;
        let current = self.exchange.backend(user);
        if !cursor.belongs_to(current) {
            return FolderCursor {
                moved_from: cursor.issued_by(),
                chunks: chunks.len(),
                ..FolderCursor::default()
            };
        }
        cursor.chunks = chunks.len();
        for (n, chunk) in chunks.iter().enumerate() {
            match serde_json::from_str::<Vec<ExchangeId>>(chunk) {
                Ok(ids) => cursor.created.extend(ids),
                // Only exsync writes chunks; one it cannot read costs the check of its items.
                Err(e) => {
                    tracing::warn!(user = %user, %kind, chunk = n + 1, error = %e, "a chunk of created items beside the folder cursor is unreadable; its items are not checked for deletion")
                }
            }
        }
        if let Some(folder) = &cursor.folder {
            self.exchange.known_folder(user, kind, folder);
        }
        cursor
    }

    /// What a slice's commit stores beside the folder's cursor: a chunk of the items created
    /// since the last chunk, so a crash before the pass's end cannot hide their deletion.
    /// Nothing when there is no backend cursor yet (the next pass lists the folder in full,
    /// which shows those items anyway) or nothing new was created.
    pub(super) fn created_chunk(&self, written: &mut Written) -> Option<CursorAdvance> {
        let new = written.created.get(written.chunked..)?;
        if written.base.state.is_none() || new.is_empty() {
            return None;
        }
        let value = serde_json::to_string(new).ok()?;
        written.chunked = written.created.len();
        written.chunks += 1;
        Some(CursorAdvance {
            scope: created_chunk(
                &self.user.key,
                self.kind,
                written.base.chunks + written.chunks,
            ),
            value: Some(value),
        })
    }

    /// What the pass's last commit stores as the folder's cursor: where the mailbox read
    /// ended, with the items the pass created after it. The chunks beside it go: the read
    /// covered those the pass started with, and the cursor holds those the pass wrote.
    pub(super) fn read_to_end(&self, read: ExchangeListed, written: Written) -> Vec<CursorAdvance> {
        let (user, kind) = (&self.user.key, self.kind);
        let cursor = CursorAdvance {
            scope: folder_cursor(user, kind),
            value: Some(
                FolderCursor {
                    state: Some(read.state),
                    created: written.created,
                    folder: read.folder,
                    backend: Some(self.exchange.backend(user).as_str().to_owned()),
                    ..FolderCursor::default()
                }
                .to_text(),
            ),
        };
        let chunks = (1..=written.base.chunks + written.chunks).map(|n| CursorAdvance {
            scope: created_chunk(user, kind, n),
            value: None,
        });
        std::iter::once(cursor).chain(chunks).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_belongs_to_the_backend_that_issued_it() {
        // Stored before backends were named: EWS issued it.
        let bare = FolderCursor::parse(Some("H4sIAAAAAAAEAO29B2AcSZYl"));
        assert!(bare.belongs_to(Backend::Ews) && !bare.belongs_to(Backend::Graph));
        let graph = FolderCursor {
            state: Some("delta-link".to_owned()),
            backend: Some(Backend::Graph.as_str().to_owned()),
            ..FolderCursor::default()
        };
        let back = FolderCursor::parse(Some(&graph.to_text()));
        assert!(back.belongs_to(Backend::Graph) && !back.belongs_to(Backend::Ews));
        // A backend this build does not know is nobody's; nothing read yet is anybody's.
        let unknown = FolderCursor {
            backend: Some("imap".to_owned()),
            ..back
        };
        assert!(!unknown.belongs_to(Backend::Graph) && !unknown.belongs_to(Backend::Ews));
        assert!(FolderCursor::default().belongs_to(Backend::Graph));
    }
}
