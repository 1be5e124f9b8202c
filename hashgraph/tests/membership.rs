//! Validator sets that change between rounds.

mod common;

use common::{all_events, gossip, keys, network_with, peer_set};
use hashgraph::{Config, Hashgraph, PeerSet};

#[test]
fn a_peer_set_change_between_rounds_moves_witnesses_and_supermajority() {
    let keys = keys(5);
    let genesis = peer_set(&keys[0..4]);
    let later: PeerSet = peer_set(&keys[1..5]);
    const CHANGE: u64 = 4;
    let mut members = network_with(keys.clone(), &genesis, Config::default());
    for m in &mut members {
        m.hg.set_peer_set(CHANGE, later.clone()).unwrap();
    }
    gossip(&mut members, 500, 21, &[]);

    let events = all_events(&members);
    let hg = &members[1].hg;
    let mut late_witnesses = [0usize; 5];
    for e in &events {
        let Some(info) = hg.event_info(&e.id()) else {
            continue;
        };
        if !info.witness {
            continue;
        }
        let who = keys
            .iter()
            .position(|k| k.public_key() == *e.creator())
            .unwrap();
        if info.round < CHANGE {
            assert!(who < 4, "round {} witness by non-member {who}", info.round);
        } else {
            assert!(
                who >= 1,
                "round {} witness by departed member 0",
                info.round
            );
            late_witnesses[who] += 1;
        }
    }
    assert!(
        late_witnesses[4] > 0,
        "the new member has witnesses: {late_witnesses:?}"
    );

    // Blocks before the change carry the genesis set's hash, blocks after it the new one.
    let blocks = &members[1].blocks;
    assert!(blocks
        .iter()
        .any(|b| b.body.round_received < CHANGE && b.body.peers_hash == genesis.hash()));
    assert!(blocks
        .iter()
        .any(|b| b.body.round_received >= CHANGE && b.body.peers_hash == later.hash()));
    let shortest = members.iter().map(|m| m.blocks.len()).min().unwrap();
    assert!(shortest > 3);
    for m in &members {
        assert_eq!(m.blocks[..shortest], members[0].blocks[..shortest]);
    }

    // A peer set cannot be changed for a round the DAG already reached.
    let mut replay = Hashgraph::new(Config::default(), genesis.clone());
    replay.set_peer_set(CHANGE, later.clone()).unwrap();
    for e in &events {
        replay.insert_event(e.clone()).unwrap();
    }
    assert!(replay.set_peer_set(1, later.clone()).is_err());
    assert_eq!(replay.peer_set(CHANGE + 3), &later);
    assert_eq!(replay.peer_set(CHANGE - 1), &genesis);
}
