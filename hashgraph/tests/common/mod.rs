//! Shared by the integration tests: in-process members gossiping at random.

#![allow(dead_code)]

use hashgraph::{
    Block, Config, Event, Frame, Hashgraph, InsertError, OrderedEvent, Peer, PeerSet, SecretKey,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One validator: its key, its hashgraph and what consensus gave it.
pub struct Member {
    pub key: SecretKey,
    pub hg: Hashgraph,
    pub blocks: Vec<Block>,
    /// The frame of each block, same order.
    pub frames: Vec<Frame>,
    pub ordered: Vec<OrderedEvent>,
}

/// Keys derived from the member number.
pub fn keys(n: usize) -> Vec<SecretKey> {
    (0..n).map(|i| SecretKey::from_seed(&[i as u8])).collect()
}

/// The validator set of `keys`, in order.
pub fn peer_set(keys: &[SecretKey]) -> PeerSet {
    PeerSet::new(
        keys.iter()
            .enumerate()
            .map(|(i, k)| Peer::new(k.public_key(), format!("n{i}"), format!("n{i}")))
            .collect(),
    )
    .unwrap()
}

/// `n` members with empty hashgraphs.
pub fn network(n: usize, config: Config) -> Vec<Member> {
    let keys = keys(n);
    let set = peer_set(&keys);
    network_with(keys, &set, config)
}

/// Members holding `keys`, all starting from the validator set `genesis`.
pub fn network_with(keys: Vec<SecretKey>, genesis: &PeerSet, config: Config) -> Vec<Member> {
    let set = genesis.clone();
    keys.into_iter()
        .map(|key| Member {
            key,
            hg: Hashgraph::new(config.clone(), set.clone()),
            blocks: Vec::new(),
            frames: Vec::new(),
            ordered: Vec::new(),
        })
        .collect()
}

impl Member {
    /// Runs consensus and keeps what it produced; an app that accepts every validator-set
    /// change answers the blocks that carry one.
    pub fn settle(&mut self) {
        self.hg.run_consensus();
        while let Some(index) = self.hg.awaiting_receipts() {
            self.take();
            let block = self.blocks.iter().find(|b| b.body.index == index).unwrap();
            let accept = vec![true; block.body.internal_transactions.len()];
            self.hg.apply_receipts(index, &accept).unwrap();
            self.hg.run_consensus();
        }
        self.take();
    }

    fn take(&mut self) {
        let ready = self.hg.take_ready();
        assert_eq!(ready.block_hashes.len(), ready.blocks.len());
        for (block, hash) in ready.blocks.iter().zip(&ready.block_hashes) {
            assert_eq!(block.body.hash(), *hash, "block {}", block.body.index);
        }
        self.blocks.extend(ready.blocks);
        self.frames.extend(ready.frames);
        self.ordered.extend(ready.ordered);
    }
}

/// Runs `steps` random syncs: a member pulls what it lacks from another, then creates an
/// event with one transaction on top of the other's head. `lazy` members (by index) sync
/// only rarely, which makes late witnesses and split votes more likely.
pub fn gossip(members: &mut [Member], steps: usize, seed: u64, lazy: &[usize]) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = members.len();
    for (i, m) in members.iter_mut().enumerate() {
        if m.hg.head(&m.key.public_key()).is_none() {
            m.hg.create_event(
                &m.key,
                None,
                i as i64,
                vec![format!("genesis {i}").into_bytes()],
                vec![],
                vec![],
            )
            .unwrap();
        }
    }
    for step in 0..steps {
        let to = rng.gen_range(0..n);
        if lazy.contains(&to) && rng.gen_range(0..8) != 0 {
            continue;
        }
        let from = (to + rng.gen_range(1..n.max(2))) % n;
        if n > 1 {
            let known = members[to].hg.known();
            let events: Vec<Event> = members[from].hg.events_unknown_to(&known, usize::MAX);
            for e in events {
                match members[to].hg.insert_event(e) {
                    // A joiner's events, before this member has applied the change admitting
                    // it; they come again in a later sync.
                    Err(InsertError::UnknownCreator { .. }) => {}
                    other => {
                        other.unwrap();
                    }
                }
            }
        }
        // As an honest host does: a head too far behind ours would make the event invalid.
        let other = if n > 1 {
            let hg = &members[to].hg;
            hg.head(&members[from].key.public_key())
                .filter(|head| hg.fits_as_other_parent(&members[to].key.public_key(), head))
        } else {
            None
        };
        let m = &mut members[to];
        let tx = format!("tx {step}").into_bytes();
        let now = 1000 + step as i64 * 10 + rng.gen_range(0..10);
        m.hg.create_event(&m.key, other, now, vec![tx], vec![], vec![])
            .unwrap();
        m.settle();
    }
}

/// Every event any member holds, in a topological order (each member's insertion order,
/// merged without duplicates).
pub fn all_events(members: &[Member]) -> Vec<Event> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for m in members {
        for e in m.hg.events_unknown_to(&[], usize::MAX) {
            if seen.insert(e.id()) {
                out.push(e);
            }
        }
    }
    out
}
