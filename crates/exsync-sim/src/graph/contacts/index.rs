//! An index of extended property values, so the lookup a sync makes by CRM id
//! (`singleValueExtendedProperties/any(ep: ep/id eq '…' and ep/value eq '…')`) reads the few
//! contacts carrying that value instead of every contact of the folder.
//!
//! It is derived state: not persisted, rebuilt from the contacts on first use after a load,
//! and kept up to date by every write of a contact. Values are keyed in lower case, since
//! Graph compares extended property values without regard to case.

use std::collections::{BTreeSet, HashMap};

use crate::graph::odata::extended::ExtendedProps;

#[derive(Debug, Default)]
pub(crate) struct ExtIndex {
    built: bool,
    /// (folder id, canonical property id, lower-cased value) → contact ids.
    ids: HashMap<(String, String, String), BTreeSet<String>>,
}

impl ExtIndex {
    pub(crate) fn is_built(&self) -> bool {
        self.built
    }

    pub(crate) fn mark_built(&mut self) {
        self.built = true;
    }

    pub(crate) fn add(&mut self, folder: &str, id: &str, props: &ExtendedProps) {
        for (key, prop) in props.iter() {
            self.ids
                .entry((folder.to_owned(), key.clone(), prop.value.to_lowercase()))
                .or_default()
                .insert(id.to_owned());
        }
    }

    pub(crate) fn remove(&mut self, folder: &str, id: &str, props: &ExtendedProps) {
        for (key, prop) in props.iter() {
            let slot = (folder.to_owned(), key.clone(), prop.value.to_lowercase());
            if let Some(set) = self.ids.get_mut(&slot) {
                set.remove(id);
                if set.is_empty() {
                    self.ids.remove(&slot);
                }
            }
        }
    }

    /// The contacts of `folder` whose property `key` has `value` (in any case).
    pub(crate) fn lookup(&self, folder: &str, key: &str, value: &str) -> Vec<&str> {
        self.ids
            .get(&(folder.to_owned(), key.to_owned(), value.to_lowercase()))
            .map(|set| set.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Forgets a deleted folder's entries.
    pub(crate) fn drop_folder(&mut self, folder: &str) {
        self.ids.retain(|(f, _, _), _| f != folder);
    }
}
