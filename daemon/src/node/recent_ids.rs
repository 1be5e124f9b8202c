//! The ids of the events the core inserted lately, shared with the tasks that check received
//! events: a copy of an event the DAG already holds is dropped before its signature is
//! checked.
//!
//! Pushes and pulls cross: a peer pushes what our known map lacked when it asked, and by the
//! time the push arrives another peer's answer often brought the same events. At a 1 ms
//! heartbeat four nodes checked 1.65 signatures per event they added (README, "Benchmark"),
//! and a check (about 50 µs) is the largest single cost of an event. Dropping a copy is what
//! the core would do with it; only ids the core has inserted are listed, so a copy is never
//! dropped in favour of one that might still fail.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use hashgraph::Hash;

/// Ids the core inserted lately, the oldest forgotten past a fixed count. A copy older than
/// that is checked as before and the core drops it.
#[derive(Debug)]
pub struct RecentIds {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    ids: HashSet<Hash>,
    order: VecDeque<Hash>,
}

impl RecentIds {
    /// Remembers up to `capacity` ids.
    pub fn new(capacity: usize) -> RecentIds {
        RecentIds {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Records ids the core has inserted.
    pub fn record(&self, ids: impl IntoIterator<Item = Hash>) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for id in ids {
            if inner.ids.insert(id) {
                inner.order.push_back(id);
            }
        }
        while inner.order.len() > self.capacity {
            if let Some(oldest) = inner.order.pop_front() {
                inner.ids.remove(&oldest);
            }
        }
    }

    /// Forgets every id: the DAG was replaced (a fast-sync), and an id recorded before may
    /// name an event the new one lacks and must be able to take again.
    pub fn clear(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.ids.clear();
        inner.order.clear();
    }

    /// Removes from `items` those whose id (by `id_of`) was recorded, in one lock; answers
    /// how many went.
    pub fn drop_held<T>(&self, items: &mut Vec<T>, id_of: impl Fn(&T) -> Hash) -> usize {
        let before = items.len();
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        items.retain(|item| !inner.ids.contains(&id_of(item)));
        before - items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Hash {
        Hash([n; 32])
    }

    #[test]
    fn recorded_ids_are_dropped_and_others_kept_in_order() {
        let recent = RecentIds::new(8);
        recent.record([id(1), id(3)]);
        let mut items = vec![id(1), id(2), id(3), id(4)];
        assert_eq!(recent.drop_held(&mut items, |h| *h), 2);
        assert_eq!(items, vec![id(2), id(4)]);
    }

    #[test]
    fn the_oldest_ids_are_forgotten_past_the_capacity() {
        let recent = RecentIds::new(2);
        recent.record([id(1), id(2)]);
        // A repeat does not count twice nor refresh.
        recent.record([id(2), id(3)]);
        let mut items = vec![id(1), id(2), id(3)];
        assert_eq!(recent.drop_held(&mut items, |h| *h), 2);
        assert_eq!(items, vec![id(1)]);
        recent.clear();
        assert_eq!(recent.drop_held(&mut items, |h| *h), 0);
        // Recording after a clear starts the count afresh.
        recent.record([id(4), id(5), id(6)]);
        let mut items = vec![id(4), id(5), id(6)];
        assert_eq!(recent.drop_held(&mut items, |h| *h), 2);
        assert_eq!(items, vec![id(4)]);
    }
}
