//! What the store holds for a user as their pass starts, read in one store call: the records
//! that failed before, and for each kind synced the folder cursor, the writes a crashed pass
//! left journaled and (events) the events ahead of the window. Each store call is a trip to
//! the blocking pool and back, which for a user with nothing to sync costs more than the
//! reads themselves.
//!
//! Read once, these stay true for the whole pass: the user's state has one writer at a time
//! (the lease), and a kind's pass changes only its own cursor, journal entries and memory of
//! events ahead, after it has taken what was read for it (the memory it then carries, and
//! marks as stored whenever it stores it).

use std::collections::BTreeMap;
use std::sync::Arc;

use exsync_core::config::Direction;
use exsync_core::ItemKind;
use exsync_store::{Intent, Store, UnresolvedItem};

use super::ahead;
use super::cursor::{created_chunk, folder_cursor, FolderCursor};
use super::{on_store, PassError, SyncUser, KINDS};
use crate::sync::mailboxes::Backend;

/// One kind's part of [`Stored`].
#[derive(Debug, Default)]
pub(super) struct KindStored {
    /// The folder cursor's text, as stored.
    pub(super) cursor: Option<String>,
    /// The texts of the created-item chunks stored beside it, in order: what the slices of a
    /// pass that did not end had created (see `cursor.rs`).
    pub(super) created_chunks: Vec<String>,
    /// Writes journaled and never settled, oldest first.
    pub(super) intents: Vec<Intent>,
    /// The events ahead of the window, as stored (events only).
    pub(super) ahead: Option<String>,
}

/// What the store held for the user when their pass started.
#[derive(Debug)]
pub(super) struct Stored {
    /// The user's records that failed before and are fetched again.
    pub(super) unresolved: Vec<UnresolvedItem>,
    /// Each synced kind's part; a kind turned off has none.
    kinds: BTreeMap<ItemKind, KindStored>,
}

impl Stored {
    pub(super) async fn read(store: &Arc<dyn Store>, user: &SyncUser) -> Result<Stored, PassError> {
        let key = user.key.clone();
        let kinds: Vec<ItemKind> = KINDS
            .into_iter()
            .filter(|kind| user.config.rules(*kind).direction != Direction::Off)
            .collect();
        on_store(store, move |s| {
            let unresolved = s.unresolved(&key)?;
            let mut stored = BTreeMap::new();
            for kind in kinds {
                let cursor = s.cursor(&folder_cursor(&key, kind))?;
                let mut created_chunks = Vec::new();
                while let Some(chunk) =
                    s.cursor(&created_chunk(&key, kind, created_chunks.len() + 1))?
                {
                    created_chunks.push(chunk);
                }
                let intents = s.intents(&key, kind)?;
                let ahead = match kind {
                    ItemKind::Event => s.cursor(&ahead::scope(&key))?,
                    ItemKind::Contact => None,
                };
                stored.insert(
                    kind,
                    KindStored {
                        cursor,
                        created_chunks,
                        intents,
                        ahead,
                    },
                );
            }
            Ok(Stored {
                unresolved,
                kinds: stored,
            })
        })
        .await
    }

    /// One kind's part (nothing for a kind not synced).
    pub(super) fn kind(&self, kind: ItemKind) -> &KindStored {
        static NONE: KindStored = KindStored {
            cursor: None,
            created_chunks: Vec::new(),
            intents: Vec::new(),
            ahead: None,
        };
        self.kinds.get(&kind).unwrap_or(&NONE)
    }

    /// Whether every synced kind has been read to the end once by the backend serving the
    /// user now. The mailbox is made ready (the sync folder created) once per backend; after
    /// that, each kind finds its folder from its cursor (or by its role, as the calendar)
    /// when it reads.
    pub(super) fn folders_known(&self, current: Backend) -> bool {
        self.kinds.values().all(|kind| {
            let cursor = FolderCursor::parse(kind.cursor.as_deref());
            cursor.state.is_some() && cursor.belongs_to(current)
        })
    }
}
