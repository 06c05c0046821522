//! A collection that remembers when each item last changed and which ids left it, so a
//! delta query can answer "what changed or went away since N" a page at a time.
//!
//! Every write takes the next sequence number; the log keeps, for each id, only its latest
//! event, so a delta round walks the log in sequence order from its cursor and reads each
//! id once. A delta token holds the generation it was issued in and the sequence it covers:
//! [`Tracked::expire`] bumps the generation (every token out there becomes unknown, 410) and
//! drops the tombstones, which no valid token can need any more.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry<T> {
    item: T,
    /// Sequence of the write that created it: the order plain lists use.
    created: u64,
    /// Sequence of its latest write: its place in the log.
    changed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Tracked<T> {
    items: HashMap<String, Entry<T>>,
    /// created sequence → id, for listing in creation order.
    order: BTreeMap<u64, String>,
    /// latest event's sequence → id (a change of a live item or its removal).
    log: BTreeMap<u64, String>,
    /// removed id → sequence of its removal.
    tombstones: HashMap<String, u64>,
    seq: u64,
    generation: u64,
}

impl<T> Default for Tracked<T> {
    fn default() -> Self {
        Tracked {
            items: HashMap::new(),
            order: BTreeMap::new(),
            log: BTreeMap::new(),
            tombstones: HashMap::new(),
            seq: 0,
            generation: 0,
        }
    }
}

/// One event of a delta round.
#[derive(Debug, PartialEq)]
pub(crate) enum Delta<'a, T> {
    Changed(&'a str, &'a T),
    Removed(&'a str),
}

impl<T> Tracked<T> {
    /// The sequence of the latest write: what a delta round that ends now covers.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn get(&self, id: &str) -> Option<&T> {
        self.items.get(id).map(|e| &e.item)
    }

    /// The sequence an item was created at: its place in creation order.
    pub(crate) fn created(&self, id: &str) -> Option<u64> {
        self.items.get(id).map(|e| e.created)
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.items.contains_key(id)
    }

    /// Inserts or replaces an item; either way it is a change at a new sequence.
    pub(crate) fn put(&mut self, id: &str, item: T) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(old) = self.tombstones.remove(id) {
            self.log.remove(&old);
        }
        match self.items.get_mut(id) {
            Some(entry) => {
                self.log.remove(&entry.changed);
                entry.item = item;
                entry.changed = seq;
            }
            None => {
                self.order.insert(seq, id.to_owned());
                self.items.insert(
                    id.to_owned(),
                    Entry {
                        item,
                        created: seq,
                        changed: seq,
                    },
                );
            }
        }
        self.log.insert(seq, id.to_owned());
    }

    /// Changes an item in place, as a new change; `None` when there is no such item.
    pub(crate) fn update<R>(&mut self, id: &str, change: impl FnOnce(&mut T) -> R) -> Option<R> {
        let entry = self.items.get_mut(id)?;
        let result = change(&mut entry.item);
        self.seq += 1;
        self.log.remove(&entry.changed);
        entry.changed = self.seq;
        self.log.insert(self.seq, id.to_owned());
        Some(result)
    }

    /// Removes an item, leaving a tombstone for delta rounds that knew it.
    pub(crate) fn remove(&mut self, id: &str) -> Option<T> {
        let entry = self.items.remove(id)?;
        self.order.remove(&entry.created);
        self.log.remove(&entry.changed);
        self.seq += 1;
        self.log.insert(self.seq, id.to_owned());
        self.tombstones.insert(id.to_owned(), self.seq);
        Some(entry.item)
    }

    /// Live items in creation order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.order
            .values()
            .filter_map(|id| self.items.get(id).map(|e| (id.as_str(), &e.item)))
    }

    /// The events after sequence `after` up to `upto`, in sequence order, each with its
    /// sequence (the cursor a next page resumes from). With `with_removals` false (the first
    /// round, which returns only the current state) tombstones are skipped.
    pub(crate) fn since(
        &self,
        after: u64,
        upto: u64,
        with_removals: bool,
    ) -> impl Iterator<Item = (u64, Delta<'_, T>)> {
        // An empty round (or a cursor past its end, from a hand-made token) reads nothing;
        // BTreeMap::range would panic on a reversed range.
        let range = if after < upto {
            self.log.range(after + 1..=upto)
        } else {
            self.log.range(0..0)
        };
        range.filter_map(move |(&seq, id)| match self.items.get(id) {
            Some(entry) if entry.changed == seq => {
                Some((seq, Delta::Changed(id.as_str(), &entry.item)))
            }
            Some(_) => None,
            None if with_removals && self.tombstones.get(id) == Some(&seq) => {
                Some((seq, Delta::Removed(id.as_str())))
            }
            None => None,
        })
    }

    /// Forgets every delta round in flight: tokens carry the generation they were issued in
    /// and a mismatch is 410. Tombstones only served those rounds.
    pub(crate) fn expire(&mut self) {
        self.generation += 1;
        for seq in self.tombstones.values() {
            self.log.remove(seq);
        }
        self.tombstones.clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn ids<'a, T: 'a>(events: impl Iterator<Item = (u64, Delta<'a, T>)>) -> Vec<String> {
        events
            .map(|(_, d)| match d {
                Delta::Changed(id, _) => format!("+{id}"),
                Delta::Removed(id) => format!("-{id}"),
            })
            .collect()
    }

    #[test]
    fn delta_reports_latest_change_once_and_removals() {
        let mut t: Tracked<u32> = Tracked::default();
        t.put("a", 1);
        t.put("b", 2);
        t.put("c", 3);
        let mark = t.seq();
        assert_eq!(ids(t.since(0, mark, false)), ["+a", "+b", "+c"]);

        t.update("a", |v| *v = 10).unwrap();
        t.remove("b").unwrap();
        t.put("d", 4);
        t.update("a", |v| *v = 11).unwrap();
        let now = t.seq();
        assert_eq!(ids(t.since(mark, now, true)), ["-b", "+d", "+a"]);
        // The first round shows the current state only.
        assert_eq!(ids(t.since(0, now, false)), ["+c", "+d", "+a"]);
        assert_eq!(t.get("a"), Some(&11));
        assert_eq!(
            t.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            ["a", "c", "d"]
        );
        assert!(t.update("b", |_| ()).is_none());
        assert!(t.remove("b").is_none());
        assert!(ids(t.since(now, now, true)).is_empty());
        assert!(ids(t.since(now + 5, 1, true)).is_empty());
        assert!(ids(t.since(u64::MAX, u64::MAX, true)).is_empty());
    }

    #[test]
    fn changes_after_a_rounds_end_wait_for_the_next_round() {
        let mut t: Tracked<u32> = Tracked::default();
        t.put("a", 1);
        t.put("b", 2);
        let upto = t.seq();
        t.update("a", |v| *v = 5).unwrap();
        // a moved past the round's end: this round sees only b; the next sees a.
        assert_eq!(ids(t.since(0, upto, false)), ["+b"]);
        assert_eq!(ids(t.since(upto, t.seq(), true)), ["+a"]);
    }

    #[test]
    fn expire_bumps_generation_and_drops_tombstones() {
        let mut t: Tracked<u32> = Tracked::default();
        t.put("a", 1);
        t.remove("a");
        let g = t.generation();
        t.expire();
        assert_eq!(t.generation(), g + 1);
        assert!(ids(t.since(0, t.seq(), true)).is_empty());
        let json = serde_json::to_string(&t).unwrap();
        let back: Tracked<u32> = serde_json::from_str(&json).unwrap();
        assert_eq!(back.generation(), g + 1);
        assert_eq!(back.len(), 0);
    }
}
