//! Whole-DAG behaviour of the core under simple random gossip between in-process instances.

mod common;

use common::{all_events, gossip, network};
use hashgraph::{Config, Hashgraph};

#[test]
fn four_members_agree_on_a_growing_chain_of_blocks() {
    let mut members = network(4, Config::default());
    gossip(&mut members, 400, 7, &[]);
    let lens: Vec<usize> = members.iter().map(|m| m.blocks.len()).collect();
    assert!(
        lens.iter().all(|&l| l > 5),
        "every member made blocks: {lens:?}"
    );
    let shortest = *lens.iter().min().unwrap();
    for m in &members[1..] {
        assert_eq!(m.blocks[..shortest], members[0].blocks[..shortest]);
    }
    for (i, b) in members[0].blocks.iter().enumerate() {
        assert_eq!(b.body.index, i as u64);
        if i > 0 {
            assert_eq!(b.body.prev_hash, members[0].blocks[i - 1].body.hash());
        }
    }
}

#[test]
fn a_single_validator_orders_its_own_events() {
    let mut members = network(1, Config::default());
    gossip(&mut members, 20, 1, &[]);
    let m = &members[0];
    // With n = 1 every event is a witness; round r is decided at round r + 2.
    assert!(m.blocks.len() >= 17, "{} blocks", m.blocks.len());
    let txs: Vec<Vec<u8>> = m
        .blocks
        .iter()
        .flat_map(|b| b.body.transactions.clone())
        .collect();
    assert_eq!(txs[0], b"genesis 0");
    assert_eq!(txs[1], b"tx 0");
}

/// The bitset matrices behind round assignment agree with the paper's definition, evaluated
/// directly: round(x) = r + 1 exactly when x strongly sees a supermajority of round r's
/// witnesses, r being its parents' highest round.
#[test]
fn rounds_match_the_definition_through_strongly_seeing() {
    for (n, seed) in [(4, 3), (5, 11), (7, 5)] {
        let mut members = network(n, Config::default());
        gossip(&mut members, 60 * n, seed, &[n - 1]);
        let events = all_events(&members);
        let mut hg = Hashgraph::new(Config::default(), common::peer_set(&common::keys(n)));
        for e in &events {
            hg.insert_event(e.clone()).unwrap();
        }
        let supermajority = 2 * n / 3 + 1;
        let mut advanced = 0;
        for e in &events {
            let info = hg.event_info(&e.id()).unwrap();
            let parents: Vec<_> = [e.body().self_parent, e.body().other_parent]
                .into_iter()
                .flatten()
                .collect();
            let r = parents
                .iter()
                .map(|p| hg.event_info(p).unwrap().round)
                .max()
                .unwrap_or(0);
            let seen = hg
                .witnesses(r)
                .iter()
                .filter(|w| hg.strongly_see(&e.id(), w))
                .count();
            let expected = if parents.is_empty() {
                0
            } else {
                r + u64::from(seen >= supermajority)
            };
            assert_eq!(info.round, expected, "n={n} seed={seed} event {:?}", e.id());
            advanced += usize::from(info.round > r);
            let first_in_round = e
                .body()
                .self_parent
                .is_none_or(|sp| hg.event_info(&sp).unwrap().round < info.round);
            assert_eq!(info.witness, first_in_round, "witness flag of {:?}", e.id());
        }
        assert!(advanced > 10, "n={n}: rounds advanced {advanced} times");
    }
}

/// With decided history evicted as it goes, memory stays bounded and members still agree;
/// an event naming evicted history is refused as too old rather than held forever.
#[test]
fn evicting_decided_history_bounds_memory_without_changing_consensus() {
    // Short horizons, so that eviction 3 rounds behind is allowed.
    let config = Config {
        stale_rounds: 1,
        max_parent_round_gap: 1,
        eviction_margin_rounds: 0,
        ..Config::default()
    };
    let mut evicting = network(4, config.clone());
    let mut keeping = network(4, config);
    let mut peak = 0;
    for chunk in 0..10u64 {
        gossip(&mut evicting, 150, 100 + chunk, &[]);
        gossip(&mut keeping, 150, 100 + chunk, &[]);
        for m in &mut evicting {
            if let Some(r) = m.hg.last_consensus_round() {
                m.hg.evict_before(r.saturating_sub(3));
            }
            peak = peak.max(m.hg.stats().events_in_memory);
        }
    }
    let kept = keeping[0].hg.stats().events_in_memory;
    assert!(
        peak * 3 < kept,
        "peak in memory {peak}, without eviction {kept}"
    );
    for (a, b) in evicting.iter().zip(&keeping) {
        assert_eq!(a.ordered, b.ordered, "eviction changed the order");
        assert!(!a.blocks.is_empty());
    }
    // The first event of member 0 is long gone from memory; a new event on top of it is stale.
    let old = keeping[0].hg.events_unknown_to(&[], 1)[0].clone();
    let m = &mut evicting[1];
    assert!(m.hg.event(&old.id()).is_none());
    let stale = hashgraph::EventBody {
        creator: old.creator().to_owned(),
        index: 1,
        self_parent: Some(old.id()),
        other_parent: None,
        timestamp: 5,
        transactions: vec![],
        internal_transactions: vec![],
        block_signatures: vec![],
    }
    .sign(&evicting[0].key);
    assert!(matches!(
        evicting[1].hg.insert_event(stale),
        Err(hashgraph::InsertError::TooOld { .. })
    ));
}

/// A hashgraph saved with `checkpoint` (through its serialised form) and restored continues
/// exactly as the original: same rounds, order and blocks, with history evicted before and
/// after. A checkpoint whose events are not all handed back is refused.
#[test]
fn a_restored_checkpoint_continues_exactly_like_the_original() {
    let config = Config {
        stale_rounds: 2,
        max_parent_round_gap: 2,
        eviction_margin_rounds: 1,
        ..Config::default()
    };
    let mut restored = network(4, config.clone());
    let mut original = network(4, config.clone());
    let mut bodies = std::collections::HashMap::new();
    for chunk in 0..6u64 {
        for net in [&mut restored, &mut original] {
            gossip(net, 120, 500 + chunk, &[]);
            for m in net.iter_mut() {
                if let Some(r) = m.hg.last_consensus_round() {
                    m.hg.evict_before(r);
                }
            }
        }
        for e in all_events(&restored) {
            bodies.insert(e.id(), e);
        }
        // Save and restore every member of one network; the other goes on untouched.
        for m in &mut restored {
            let saved = postcard::to_allocvec(&m.hg.checkpoint()).unwrap();
            let checkpoint: hashgraph::Checkpoint = postcard::from_bytes(&saved).unwrap();
            if chunk == 0 {
                let partial = Hashgraph::restore(config.clone(), checkpoint.clone(), |_| None);
                assert!(
                    matches!(partial, Err(hashgraph::HashgraphError::BadCheckpoint(_))),
                    "a checkpoint without its events was accepted"
                );
            }
            m.hg = Hashgraph::restore(config.clone(), checkpoint, |id| bodies.get(id).cloned())
                .unwrap();
        }
    }
    for (a, b) in restored.iter().zip(&original) {
        assert!(!b.blocks.is_empty(), "no blocks: the test proves nothing");
        assert_eq!(a.ordered, b.ordered, "restoring changed the order");
        assert_eq!(a.blocks, b.blocks, "restoring changed the blocks");
        assert_eq!(a.hg.stats(), b.hg.stats());
    }
}
