//! Persistence: what a node must not forget across a crash. One trait, two stores: RocksDB
//! for nodes ([`rocks::RocksStore`]) and memory for logic tests ([`memory::MemoryStore`]);
//! the same test suite runs against both.
//!
//! Stored: every accepted event (by id, and in acceptance order so a peer asking for old
//! history can be served); the node's own events by index, written durably *before* they are
//! gossiped, so a crash can never make it sign two events at one index; blocks with their
//! signatures; frames; the validator-set history; the last block the app acknowledged.

pub mod memory;
pub mod rocks;

use hashgraph::{Block, Event, Frame, Hash, PeerSet, PublicKey};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the database.
    #[error(
        "the database at {path} is locked by another process: is another `hearsay run` using \
         this datadir? Stop it, or give this node its own --datadir"
    )]
    Locked {
        /// The database folder.
        path: String,
    },
    /// The database is damaged.
    #[error(
        "the database at {path} is corrupt ({detail}): move the folder away and restart; the \
         node then syncs its history from its peers"
    )]
    Corrupt {
        /// The database folder.
        path: String,
        /// What the database library said.
        detail: String,
    },
    /// Written by an incompatible version.
    #[error(
        "the database at {path} has format {found}, this hearsay reads format {expected}: use \
         the hearsay version that wrote it, or move the folder away to start afresh"
    )]
    Incompatible {
        /// The database folder.
        path: String,
        /// Its format.
        found: u32,
        /// Ours.
        expected: u32,
    },
    /// The disk is full.
    #[error("the disk holding {path} is full: free space, then restart")]
    DiskFull {
        /// The database folder.
        path: String,
    },
    /// Any other I/O failure.
    #[error("database error at {path}: {detail}")]
    Io {
        /// The database folder.
        path: String,
        /// What failed.
        detail: String,
    },
    /// A stored value does not decode.
    #[error("a stored {what} does not decode: {detail}")]
    Decode {
        /// What kind of value.
        what: &'static str,
        /// Why.
        detail: String,
    },
}

/// The storage the node uses. Implementations are thread-safe; every write is atomic.
pub trait Store: Send + Sync {
    /// Records accepted events (any order of creators, each after its parents).
    fn put_events(&self, events: &[Event]) -> Result<(), StoreError>;
    /// Records one of our own events, removing the pending transactions it carries (by
    /// sequence number) in the same write. Not synced: it must not leave the process before
    /// a [`Store::sync_log`] that started after this write has returned.
    fn put_self_event(&self, event: &Event, consumed: &[u64]) -> Result<(), StoreError>;
    /// Makes every write made before the call durable (synced to disk). Writes may go on
    /// while it runs (they wait for a later call).
    fn sync_log(&self) -> Result<(), StoreError>;
    /// Records transactions accepted from the app and not yet in an event, numbered from
    /// `first_seq`, in one write. Survives a crash of the process (not necessarily of the
    /// machine: it is not synced).
    fn put_pending_transactions(&self, first_seq: u64, txs: &[Vec<u8>]) -> Result<(), StoreError>;
    /// Records the transactions of our stale event `event` as pending again, with the fact
    /// that this was done, in one write; does nothing and returns false if it was done before.
    fn put_resubmitted(&self, event: &Hash, txs: &[(u64, Vec<u8>)]) -> Result<bool, StoreError>;
    /// Accepted transactions not yet in one of our events, by sequence number.
    fn pending_transactions(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
    /// An event by id.
    fn event(&self, id: &Hash) -> Result<Option<Event>, StoreError>;
    /// Our own latest event: its index and id.
    fn self_head(&self) -> Result<Option<(u64, Hash)>, StoreError>;
    /// Our own event at `index`.
    fn self_event(&self, index: u64) -> Result<Option<Event>, StoreError>;
    /// Forgets, durably, that our own events from `index` on are ours: they leave our event
    /// sequence and the by-creator index (bodies stay, reachable by id), so that the events we
    /// create at those indices next take their place. Only for events no node can ever accept
    /// (see `Core::resume_own_events`).
    fn abandon_self_events(&self, index: u64) -> Result<(), StoreError>;
    /// Events in acceptance order from position `from`, at most `limit`.
    fn events_from(&self, from: u64, limit: usize) -> Result<Vec<Event>, StoreError>;
    /// Number of events stored.
    fn event_count(&self) -> Result<u64, StoreError>;
    /// `creator`'s events from index `from` on (the first stored at each index; forks
    /// excluded), ascending, at most `limit`, each with its position in acceptance order.
    fn creator_events(
        &self,
        creator: &PublicKey,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Event)>, StoreError>;
    /// Records a checkpoint of the consensus state that covers the first `events` stored
    /// events, replacing the previous one, durably.
    fn put_checkpoint(&self, checkpoint: &[u8], events: u64) -> Result<(), StoreError>;
    /// The last checkpoint and the number of events it covers.
    fn checkpoint(&self) -> Result<Option<(Vec<u8>, u64)>, StoreError>;
    /// Deletes, per creator, the events at indices below its floor (fork branches and our
    /// abandoned events among them), and remembers the floors; returns how many events went.
    fn prune_below(&self, floors: &[(PublicKey, u64)]) -> Result<u64, StoreError>;
    /// Below which index `creator`'s events were pruned (0 if none were).
    fn pruned_below(&self, creator: &PublicKey) -> Result<u64, StoreError>;
    /// Memory the store itself holds, by part (name, bytes), for `/metrics`; empty for a
    /// store that has nothing to report.
    fn memory_usage(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
    /// Records a block (again, when its signatures or state hash change).
    fn put_block(&self, block: &Block) -> Result<(), StoreError>;
    /// A block by index.
    fn block(&self, index: u64) -> Result<Option<Block>, StoreError>;
    /// The highest block index stored.
    fn last_block_index(&self) -> Result<Option<u64>, StoreError>;
    /// Records the frame of a block.
    fn put_frame(&self, block_index: u64, frame: &Frame) -> Result<(), StoreError>;
    /// The frame of a block.
    fn frame(&self, block_index: u64) -> Result<Option<Frame>, StoreError>;
    /// Records the validator set in force from `round`.
    fn put_peer_set(&self, round: u64, set: &PeerSet) -> Result<(), StoreError>;
    /// Every validator set by first round, ascending.
    fn peer_sets(&self) -> Result<Vec<(u64, PeerSet)>, StoreError>;
    /// Records that the app acknowledged block `index`: at once for a crash of the process,
    /// and for one of the machine with the next [`Store::sync_log`] (the one for our next
    /// event, which carries our signature of the block). Until then a power loss can deliver the block again
    /// (delivery is at least once).
    fn set_app_acknowledged(&self, index: u64) -> Result<(), StoreError>;
    /// The last block the app acknowledged.
    fn app_acknowledged(&self) -> Result<Option<u64>, StoreError>;
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("encoding into a Vec cannot fail")
}

fn decode<T: serde::de::DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Decode {
        what,
        detail: e.to_string(),
    })
}

fn decode_event(bytes: &[u8]) -> Result<Event, StoreError> {
    Event::from_bytes(bytes).map_err(|e| StoreError::Decode {
        what: "event",
        detail: e.to_string(),
    })
}

/// The test suite every store must pass; used by both stores' tests.
#[cfg(test)]
pub(crate) mod suite {
    use super::*;
    use hashgraph::{BlockBody, EventBody, SecretKey};

    fn event(key: &SecretKey, index: u64, self_parent: Option<Hash>, tx: &str) -> Event {
        EventBody {
            creator: key.public_key(),
            index,
            self_parent,
            other_parent: None,
            timestamp: index as i64,
            transactions: vec![tx.as_bytes().to_vec()],
            internal_transactions: vec![],
            block_signatures: vec![],
        }
        .sign(key)
    }

    /// Runs every check on a fresh, empty store.
    pub fn run(store: &dyn Store) {
        let me = SecretKey::from_seed(b"store me");
        let other = SecretKey::from_seed(b"store other");
        assert_eq!(store.self_head().unwrap(), None);
        assert_eq!(store.event_count().unwrap(), 0);
        assert_eq!(store.last_block_index().unwrap(), None);
        assert_eq!(store.app_acknowledged().unwrap(), None);

        // Events: by id, in acceptance order, our own by index.
        let a0 = event(&other, 0, None, "a0");
        let a1 = event(&other, 1, Some(a0.id()), "a1");
        store.put_events(&[a0.clone(), a1.clone()]).unwrap();
        let m0 = event(&me, 0, None, "m0");
        let m1 = event(&me, 1, Some(m0.id()), "m1");
        store
            .put_pending_transactions(7, &[b"m0".to_vec(), b"m1".to_vec()])
            .unwrap();
        store
            .put_pending_transactions(9, &[b"later".to_vec()])
            .unwrap();
        store.put_self_event(&m0, &[7]).unwrap();
        store.put_self_event(&m1, &[8]).unwrap();
        assert_eq!(
            store.pending_transactions().unwrap(),
            vec![(9, b"later".to_vec())]
        );
        // The host also reports its own events among the accepted ones: no duplicate.
        store.put_events(&[m0.clone(), m1.clone()]).unwrap();
        assert_eq!(store.event(&a1.id()).unwrap(), Some(a1.clone()));
        assert_eq!(store.event(&Hash([9; 32])).unwrap(), None);
        assert_eq!(store.self_head().unwrap(), Some((1, m1.id())));
        assert_eq!(store.self_event(0).unwrap(), Some(m0.clone()));
        assert_eq!(store.self_event(2).unwrap(), None);
        assert_eq!(store.event_count().unwrap(), 4);
        let order: Vec<Hash> = store
            .events_from(0, 10)
            .unwrap()
            .iter()
            .map(Event::id)
            .collect();
        assert_eq!(order, [a0.id(), a1.id(), m0.id(), m1.id()]);
        let tail: Vec<Hash> = store
            .events_from(1, 2)
            .unwrap()
            .iter()
            .map(Event::id)
            .collect();
        assert_eq!(tail, [a1.id(), m0.id()]);
        let of_other: Vec<(u64, Hash)> = store
            .creator_events(&other.public_key(), 1, 10)
            .unwrap()
            .iter()
            .map(|(p, e)| (*p, e.id()))
            .collect();
        assert_eq!(of_other, [(1, a1.id())]);
        let mine: Vec<u64> = store
            .creator_events(&me.public_key(), 0, 1)
            .unwrap()
            .iter()
            .map(|(p, _)| *p)
            .collect();
        assert_eq!(mine, [2]);
        // A fork branch does not replace the first event held at its index.
        let fork = event(&other, 1, Some(a0.id()), "fork");
        store.put_events(std::slice::from_ref(&fork)).unwrap();
        let ids: Vec<Hash> = store
            .creator_events(&other.public_key(), 0, 10)
            .unwrap()
            .iter()
            .map(|(_, e)| e.id())
            .collect();
        assert_eq!(ids, [a0.id(), a1.id()]);

        // A stale event's transactions go back to pending once.
        let txs = vec![(20, b"again".to_vec())];
        assert!(store.put_resubmitted(&m0.id(), &txs).unwrap());
        assert!(!store
            .put_resubmitted(&m0.id(), &[(21, b"twice".to_vec())])
            .unwrap());
        assert_eq!(
            store.pending_transactions().unwrap(),
            vec![(9, b"later".to_vec()), (20, b"again".to_vec())]
        );

        // Pruning: events below a creator's floor go, the rest stay, positions keep counting.
        assert_eq!(store.pruned_below(&other.public_key()).unwrap(), 0);
        assert_eq!(store.prune_below(&[(other.public_key(), 1)]).unwrap(), 1);
        assert_eq!(store.prune_below(&[(other.public_key(), 1)]).unwrap(), 0);
        assert_eq!(store.pruned_below(&other.public_key()).unwrap(), 1);
        assert_eq!(store.event(&a0.id()).unwrap(), None);
        assert_eq!(store.event(&a1.id()).unwrap(), Some(a1.clone()));
        let left: Vec<Hash> = store
            .creator_events(&other.public_key(), 0, 10)
            .unwrap()
            .iter()
            .map(|(_, e)| e.id())
            .collect();
        assert_eq!(left, [a1.id()]);
        let order: Vec<Hash> = store
            .events_from(0, 10)
            .unwrap()
            .iter()
            .map(Event::id)
            .collect();
        assert_eq!(order, [a1.id(), m0.id(), m1.id(), fork.id()]);
        assert_eq!(store.event_count().unwrap(), 5);
        // Our own events go with their index; the head stays.
        assert_eq!(store.prune_below(&[(me.public_key(), 1)]).unwrap(), 1);
        assert_eq!(store.self_event(0).unwrap(), None);
        assert_eq!(store.self_event(1).unwrap(), Some(m1.clone()));
        assert_eq!(store.self_head().unwrap(), Some((1, m1.id())));

        // Abandoned own events leave our sequence and the by-creator index; the next event
        // at that index takes their place; the abandoned body stays reachable by id.
        store.abandon_self_events(1).unwrap();
        assert_eq!(store.self_head().unwrap(), None);
        assert_eq!(store.self_event(1).unwrap(), None);
        assert!(store
            .creator_events(&me.public_key(), 0, 10)
            .unwrap()
            .is_empty());
        let m1_again = event(&me, 1, Some(m0.id()), "m1 again");
        store.put_self_event(&m1_again, &[]).unwrap();
        assert_eq!(store.self_head().unwrap(), Some((1, m1_again.id())));
        let mine: Vec<Hash> = store
            .creator_events(&me.public_key(), 0, 10)
            .unwrap()
            .iter()
            .map(|(_, e)| e.id())
            .collect();
        assert_eq!(mine, [m1_again.id()]);
        assert_eq!(store.event(&m1.id()).unwrap(), Some(m1.clone()));

        // Pruning past them takes the fork branch and the abandoned event too.
        assert_eq!(store.prune_below(&[(other.public_key(), 2)]).unwrap(), 2);
        assert_eq!(store.event(&a1.id()).unwrap(), None);
        assert_eq!(store.event(&fork.id()).unwrap(), None);
        assert_eq!(store.prune_below(&[(me.public_key(), 2)]).unwrap(), 2);
        assert_eq!(store.event(&m1.id()).unwrap(), None);
        assert_eq!(store.event(&m1_again.id()).unwrap(), None);
        assert!(store.events_from(0, 10).unwrap().is_empty());
        assert_eq!(store.event_count().unwrap(), 6);

        // Checkpoints: the last one wins.
        assert_eq!(store.checkpoint().unwrap(), None);
        store.put_checkpoint(b"first", 2).unwrap();
        store.put_checkpoint(b"second", 4).unwrap();
        assert_eq!(store.checkpoint().unwrap(), Some((b"second".to_vec(), 4)));

        // Blocks, rewritten when signatures arrive; frames; peer sets; the app's mark.
        let mut block = Block::new(BlockBody {
            index: 0,
            round_received: 3,
            timestamp: 7,
            prev_hash: Hash::ZERO,
            frame_hash: Hash([1; 32]),
            peers_hash: Hash([2; 32]),
            transactions: vec![b"a0".to_vec()],
            internal_transactions: vec![],
        });
        store.put_block(&block).unwrap();
        block.state_hash = vec![5; 32];
        block.sign(&me);
        store.put_block(&block).unwrap();
        assert_eq!(store.block(0).unwrap(), Some(block.clone()));
        assert_eq!(store.block(1).unwrap(), None);
        assert_eq!(store.last_block_index().unwrap(), Some(0));
        let set = PeerSet::new(vec![hashgraph::Peer::new(me.public_key(), "a", "me")]).unwrap();
        let frame = Frame {
            round: 3,
            peers: set.clone(),
            roots: vec![],
            events: vec![],
        };
        store.put_frame(0, &frame).unwrap();
        assert_eq!(store.frame(0).unwrap(), Some(frame));
        store.put_peer_set(6, &set).unwrap();
        store.put_peer_set(0, &set).unwrap();
        let history: Vec<u64> = store.peer_sets().unwrap().iter().map(|(r, _)| *r).collect();
        assert_eq!(history, [0, 6]);
        store.set_app_acknowledged(0).unwrap();
        assert_eq!(store.app_acknowledged().unwrap(), Some(0));
    }
}
