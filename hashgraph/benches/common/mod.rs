//! Shared by the core's benchmarks: a random-gossip DAG of signed events, and playing it
//! through the core as a node would.

use std::time::Instant;

use hashgraph::{
    Config, Event, EventBody, Hash, Hashgraph, Peer, PeerSet, SecretKey, VerifiedEvent,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A DAG from random pairwise gossip: each step a member learns everything another knows and
/// creates an event on top of the other's latest one. Knowledge is tracked as vector clocks.
pub fn random_gossip_dag(n: usize, events: usize, seed: u64) -> (PeerSet, Vec<Event>) {
    let keys: Vec<SecretKey> = (0..n)
        .map(|i| SecretKey::from_seed(&(i as u32).to_le_bytes()))
        .collect();
    let set = PeerSet::new(
        keys.iter()
            .enumerate()
            .map(|(i, k)| Peer::new(k.public_key(), format!("n{i}"), format!("n{i}")))
            .collect(),
    )
    .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut chains: Vec<Vec<Hash>> = vec![Vec::new(); n];
    let mut clocks: Vec<Vec<usize>> = vec![vec![0; n]; n];
    let mut out = Vec::with_capacity(events);
    let make = |creator: usize,
                other: Option<usize>,
                clocks: &mut Vec<Vec<usize>>,
                chains: &mut Vec<Vec<Hash>>,
                out: &mut Vec<Event>,
                step: usize| {
        let index = chains[creator].len() as u64;
        let event = EventBody {
            creator: keys[creator].public_key(),
            index,
            self_parent: chains[creator].last().copied(),
            other_parent: other.map(|o| chains[o][clocks[creator][o] - 1]),
            timestamp: step as i64 * 1000,
            transactions: vec![vec![step as u8; 32]],
            internal_transactions: vec![],
            block_signatures: vec![],
        }
        .sign(&keys[creator]);
        chains[creator].push(event.id());
        clocks[creator][creator] += 1;
        out.push(event);
    };
    for i in 0..n {
        make(i, None, &mut clocks, &mut chains, &mut out, i);
    }
    while out.len() < events {
        let to = rng.gen_range(0..n);
        let from = (to + rng.gen_range(1..n)) % n;
        let merged: Vec<usize> = (0..n).map(|c| clocks[to][c].max(clocks[from][c])).collect();
        clocks[to] = merged;
        let step = out.len();
        make(to, Some(from), &mut clocks, &mut chains, &mut out, step);
    }
    (set, out)
}

/// Inserts and orders `events`; returns (seconds, events ordered).
pub fn play(set: &PeerSet, events: &[Event], verify: bool) -> (f64, u64) {
    let mut hg = Hashgraph::new(Config::default(), set.clone());
    let start = Instant::now();
    for (i, e) in events.iter().enumerate() {
        if verify {
            hg.insert_event(e.clone()).unwrap();
        } else {
            hg.insert_verified(VerifiedEvent::assume_verified(e.clone()))
                .unwrap();
        }
        if i % 64 == 63 {
            hg.run_consensus();
            let _ = hg.take_ready();
            if i % 4096 == 4095 {
                if let Some(r) = hg.last_consensus_round() {
                    hg.evict_before(r.saturating_sub(8));
                }
            }
        }
    }
    hg.run_consensus();
    let _ = hg.take_ready();
    (start.elapsed().as_secs_f64(), hg.stats().consensus_events)
}
