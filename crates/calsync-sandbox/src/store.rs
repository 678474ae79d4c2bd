//! Per-calendar event storage with the two indexes every listing needs: a change log ordered
//! by sequence number (sync tokens, delta links, `orderBy=updated`) and a start-time index
//! (time windows, `orderBy=startTime`). Pages walk an index from a cursor; nothing sorts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One stored event, live or deleted (a tombstone keeps its place in the log).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Item<E> {
    pub ev: E,
    /// Sequence number of the last change; the item's position in the log.
    pub seq: u64,
    /// Instant bounds in epoch milliseconds, `end` exclusive.
    pub start: i64,
    pub end: i64,
    pub updated_ms: i64,
    pub deleted: bool,
}

#[derive(Debug)]
pub(crate) struct EventStore<E> {
    items: HashMap<String, Item<E>>,
    log: BTreeMap<u64, String>,
    by_start: BTreeSet<(i64, String)>,
    /// Longest event span seen: a window query starts this far before `timeMin`, so events
    /// that began earlier but still overlap are found without scanning from the beginning.
    max_span: i64,
}

impl<E> Default for EventStore<E> {
    fn default() -> Self {
        Self { items: HashMap::new(), log: BTreeMap::new(), by_start: BTreeSet::new(), max_span: 0 }
    }
}

impl<E> EventStore<E> {
    pub(crate) fn get(&self, id: &str) -> Option<&Item<E>> {
        self.items.get(id)
    }

    /// Every stored id, live or deleted, in no particular order.
    pub(crate) fn ids(&self) -> impl Iterator<Item = &String> + '_ {
        self.items.keys()
    }

    /// Inserts or replaces an item, moving it to log position `seq`.
    pub(crate) fn put(&mut self, id: &str, item: Item<E>) {
        if let Some(old) = self.items.remove(id) {
            self.log.remove(&old.seq);
            self.by_start.remove(&(old.start, id.to_owned()));
        }
        self.log.insert(item.seq, id.to_owned());
        self.by_start.insert((item.start, id.to_owned()));
        self.max_span = self.max_span.max(item.end - item.start);
        self.items.insert(id.to_owned(), item);
    }

    /// Log entries with `after < seq <= upto`, in change order.
    pub(crate) fn log_range(&self, after: u64, upto: u64) -> impl Iterator<Item = (&String, &Item<E>)> + '_ {
        let range = (Bound::Excluded(after), Bound::Included(upto));
        let iter = if after < upto { Some(self.log.range(range)) } else { None };
        iter.into_iter().flatten().filter_map(move |(_, id)| self.items.get_key_value(id))
    }

    /// Items by ascending start, strictly after the `(start, id)` cursor when one is given,
    /// beginning early enough to catch long events overlapping `time_min`.
    pub(crate) fn by_start_from(
        &self,
        cursor: Option<(i64, String)>,
        time_min: Option<i64>,
    ) -> impl Iterator<Item = (&String, &Item<E>)> + '_ {
        let floor = time_min.map(|t| (t.saturating_sub(self.max_span), String::new()));
        let lower = match (cursor, floor) {
            (Some(c), Some(f)) if f > c => Bound::Included(f),
            (Some(c), _) => Bound::Excluded(c),
            (None, Some(f)) => Bound::Included(f),
            (None, None) => Bound::Unbounded,
        };
        self.by_start.range((lower, Bound::Unbounded)).filter_map(move |(_, id)| self.items.get_key_value(id))
    }
}

/// Saved as the items alone (id → item); the log and start indexes are rebuilt on load.
impl<E: Serialize> Serialize for EventStore<E> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.items.serialize(s)
    }
}

impl<'de, E: Deserialize<'de>> Deserialize<'de> for EventStore<E> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = HashMap::<String, Item<E>>::deserialize(d)?;
        let mut store = EventStore::default();
        for (id, item) in items {
            store.put(&id, item);
        }
        Ok(store)
    }
}
