//! A store in memory, for logic tests: the same behaviour as RocksDB, nothing durable.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use hashgraph::{Block, Event, Frame, Hash, PeerSet, PublicKey};

use super::{Store, StoreError};

/// [`Store`] in memory.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    events: HashMap<Hash, Event>,
    order: Vec<Hash>,
    own: BTreeMap<u64, Hash>,
    blocks: BTreeMap<u64, Block>,
    frames: BTreeMap<u64, Frame>,
    peer_sets: BTreeMap<u64, PeerSet>,
    acknowledged: Option<u64>,
    pending: BTreeMap<u64, Vec<u8>>,
    /// (creator, index) → position of the first event held there.
    by_creator: BTreeMap<(PublicKey, u64), u64>,
    /// (creator, index, position) of the other events held at an index: fork branches and
    /// our abandoned events.
    branches: std::collections::BTreeSet<(PublicKey, u64, u64)>,
    checkpoint: Option<(Vec<u8>, u64)>,
    resubmitted: std::collections::HashSet<Hash>,
    pruned: HashMap<PublicKey, u64>,
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every update is a single insertion: a poisoned lock leaves nothing half-done.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    fn add(&mut self, event: &Event) {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.events.entry(event.id()) {
            slot.insert(event.clone());
            let position = self.order.len() as u64;
            let at = (*event.creator(), event.index());
            match self.by_creator.entry(at) {
                std::collections::btree_map::Entry::Occupied(_) => {
                    self.branches.insert((at.0, at.1, position));
                }
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(position);
                }
            }
            self.order.push(event.id());
        }
    }
}

impl Store for MemoryStore {
    fn put_events(&self, events: &[Event]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for e in events {
            inner.add(e);
        }
        Ok(())
    }

    fn put_self_event(&self, event: &Event, consumed: &[u64]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.add(event);
        inner.own.insert(event.index(), event.id());
        for seq in consumed {
            inner.pending.remove(seq);
        }
        Ok(())
    }

    fn sync_log(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn put_pending_transactions(&self, first_seq: u64, txs: &[Vec<u8>]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for (seq, tx) in (first_seq..).zip(txs) {
            inner.pending.insert(seq, tx.clone());
        }
        Ok(())
    }

    fn put_resubmitted(&self, event: &Hash, txs: &[(u64, Vec<u8>)]) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        if !inner.resubmitted.insert(*event) {
            return Ok(false);
        }
        for (seq, tx) in txs {
            inner.pending.insert(*seq, tx.clone());
        }
        Ok(true)
    }

    fn pending_transactions(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        Ok(self
            .lock()
            .pending
            .iter()
            .map(|(s, t)| (*s, t.clone()))
            .collect())
    }

    fn event(&self, id: &Hash) -> Result<Option<Event>, StoreError> {
        Ok(self.lock().events.get(id).cloned())
    }

    fn self_head(&self) -> Result<Option<(u64, Hash)>, StoreError> {
        Ok(self.lock().own.iter().next_back().map(|(i, h)| (*i, *h)))
    }

    fn self_event(&self, index: u64) -> Result<Option<Event>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .own
            .get(&index)
            .and_then(|id| inner.events.get(id))
            .cloned())
    }

    fn abandon_self_events(&self, index: u64) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let abandoned = inner.own.split_off(&index);
        for (i, id) in abandoned {
            if let Some(creator) = inner.events.get(&id).map(|e| *e.creator()) {
                if let Some(position) = inner.by_creator.remove(&(creator, i)) {
                    inner.branches.insert((creator, i, position));
                }
            }
        }
        Ok(())
    }

    fn events_from(&self, from: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .order
            .iter()
            .skip(usize::try_from(from).unwrap_or(usize::MAX))
            .filter_map(|id| inner.events.get(id).cloned())
            .take(limit)
            .collect())
    }

    fn event_count(&self) -> Result<u64, StoreError> {
        Ok(self.lock().order.len() as u64)
    }

    fn creator_events(
        &self,
        creator: &PublicKey,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Event)>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .by_creator
            .range((*creator, from)..=(*creator, u64::MAX))
            .take(limit)
            .map(|(_, &p)| (p, inner.events[&inner.order[p as usize]].clone()))
            .collect())
    }

    fn prune_below(&self, floors: &[(PublicKey, u64)]) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let mut pruned = 0;
        for (creator, floor) in floors {
            let done = inner.pruned.get(creator).copied().unwrap_or(0);
            if *floor <= done {
                continue;
            }
            let gone: Vec<(PublicKey, u64)> = inner
                .by_creator
                .range((*creator, done)..(*creator, *floor))
                .map(|(k, _)| *k)
                .collect();
            for k in gone {
                if let Some(position) = inner.by_creator.remove(&k) {
                    let id = inner.order[position as usize];
                    inner.events.remove(&id);
                    if inner.own.get(&k.1) == Some(&id) {
                        inner.own.remove(&k.1);
                    }
                    pruned += 1;
                }
            }
            let branches: Vec<(PublicKey, u64, u64)> = inner
                .branches
                .range((*creator, done, 0)..(*creator, *floor, 0))
                .copied()
                .collect();
            for branch in branches {
                inner.branches.remove(&branch);
                let id = inner.order[branch.2 as usize];
                inner.events.remove(&id);
                pruned += 1;
            }
            inner.pruned.insert(*creator, *floor);
        }
        Ok(pruned)
    }

    fn pruned_below(&self, creator: &PublicKey) -> Result<u64, StoreError> {
        Ok(self.lock().pruned.get(creator).copied().unwrap_or(0))
    }

    fn put_checkpoint(&self, checkpoint: &[u8], events: u64) -> Result<(), StoreError> {
        self.lock().checkpoint = Some((checkpoint.to_vec(), events));
        Ok(())
    }

    fn checkpoint(&self) -> Result<Option<(Vec<u8>, u64)>, StoreError> {
        Ok(self.lock().checkpoint.clone())
    }

    fn put_block(&self, block: &Block) -> Result<(), StoreError> {
        self.lock().blocks.insert(block.body.index, block.clone());
        Ok(())
    }

    fn block(&self, index: u64) -> Result<Option<Block>, StoreError> {
        Ok(self.lock().blocks.get(&index).cloned())
    }

    fn last_block_index(&self) -> Result<Option<u64>, StoreError> {
        Ok(self.lock().blocks.keys().next_back().copied())
    }

    fn put_frame(&self, block_index: u64, frame: &Frame) -> Result<(), StoreError> {
        self.lock().frames.insert(block_index, frame.clone());
        Ok(())
    }

    fn frame(&self, block_index: u64) -> Result<Option<Frame>, StoreError> {
        Ok(self.lock().frames.get(&block_index).cloned())
    }

    fn put_peer_set(&self, round: u64, set: &PeerSet) -> Result<(), StoreError> {
        self.lock().peer_sets.insert(round, set.clone());
        Ok(())
    }

    fn peer_sets(&self) -> Result<Vec<(u64, PeerSet)>, StoreError> {
        Ok(self
            .lock()
            .peer_sets
            .iter()
            .map(|(r, s)| (*r, s.clone()))
            .collect())
    }

    fn set_app_acknowledged(&self, index: u64) -> Result<(), StoreError> {
        self.lock().acknowledged = Some(index);
        Ok(())
    }

    fn app_acknowledged(&self) -> Result<Option<u64>, StoreError> {
        Ok(self.lock().acknowledged)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passes_the_store_suite() {
        super::super::suite::run(&super::MemoryStore::default());
    }
}
