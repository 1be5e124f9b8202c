//! Validator sets that change between rounds.

mod common;

use common::{all_events, gossip, keys, network_with, peer_set};
use hashgraph::{
    Config, Hashgraph, HashgraphError, InternalTransaction, InternalTransactionKind, PeerSet,
    PEER_CHANGE_DELAY_ROUNDS,
};

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

/// A PEER_ADD decided by consensus in round R, accepted by every app, governs from round
/// R + 6 at every member, whenever each learns it: a member that already holds events far
/// past R + 6 when it applies the receipts places them again exactly as members that applied
/// them early did. The joiner then takes part, and everyone, joiner included, orders alike.
#[test]
fn an_accepted_peer_add_governs_six_rounds_later_at_every_member_alike() {
    let keys = keys(5);
    let genesis = peer_set(&keys[0..4]);
    let grown = peer_set(&keys);
    let mut members = network_with(keys[0..4].to_vec(), &genesis, Config::default());
    gossip(&mut members, 120, 7, &[]);

    // The joiner signs its own PEER_ADD; member 0 carries it in an event.
    let joiner = grown.peers()[4].clone();
    let add = InternalTransaction::new(InternalTransactionKind::PeerAdd, joiner, &keys[4]);
    let m0 = &mut members[0];
    m0.hg
        .create_event(&m0.key, None, 10_000, vec![], vec![add], vec![])
        .unwrap();
    gossip(&mut members, 400, 8, &[]);

    let carrier = members[0]
        .blocks
        .iter()
        .find(|b| !b.body.internal_transactions.is_empty())
        .expect("the change was ordered")
        .clone();
    let from = carrier.body.round_received + PEER_CHANGE_DELAY_ROUNDS;
    for m in &members {
        assert_eq!(m.hg.awaiting_receipts(), None);
        assert_eq!(m.hg.peer_set(from - 1), &genesis);
        assert_eq!(m.hg.peer_set(from), &grown);
    }
    assert!(
        members[0].hg.stats().last_round.unwrap_or(0) > from + 3,
        "the network went past round {from}: {:?}",
        members[0].hg.stats()
    );

    // The joiner gets the history, applies the same change, and joins the gossip.
    let mut joined = network_with(vec![keys[4].clone()], &genesis, Config::default()).remove(0);
    for e in members[0].hg.events_unknown_to(&[], usize::MAX) {
        joined.hg.insert_event(e).unwrap();
    }
    joined.settle();
    assert_eq!(joined.hg.peer_set(from), &grown);
    members.push(joined);
    gossip(&mut members, 600, 9, &[]);

    let shortest = members.iter().map(|m| m.blocks.len()).min().unwrap();
    assert!(
        shortest > carrier.body.index as usize + 5,
        "blocks after the change: {shortest}"
    );
    for (i, m) in members.iter().enumerate() {
        assert_eq!(
            m.blocks[..shortest],
            members[0].blocks[..shortest],
            "member {i}"
        );
    }
    assert!(members[0].blocks[..shortest]
        .iter()
        .any(|b| b.body.round_received >= from && b.body.peers_hash == grown.hash()));
    let joiner_key = keys[4].public_key();
    let events = all_events(&members);
    let joiner_witnesses = events
        .iter()
        .filter(|e| *e.creator() == joiner_key)
        .filter_map(|e| members[0].hg.event_info(&e.id()))
        .filter(|info| info.witness)
        .count();
    assert!(joiner_witnesses > 0, "the joiner has witnesses");

    // A member that applies the receipts late: it holds every event of the four (far past
    // round `from`) before it runs consensus, and must end where the others are.
    let mut late = Hashgraph::new(Config::default(), genesis.clone());
    let mut late_blocks = Vec::new();
    let mut applied_at = None;
    for e in &events {
        if late.insert_event(e.clone()).is_ok() {
            continue;
        }
        // The joiner's first event: only now does `late` learn the change.
        late.run_consensus();
        late_blocks.extend(late.take_ready().blocks);
        let index = late
            .awaiting_receipts()
            .expect("waiting on the change's block");
        applied_at = late.stats().last_round;
        let change = late.apply_receipts(index, &[true]).unwrap().unwrap();
        assert_eq!((change.round, &change.peers), (from, &grown));
        late.insert_event(e.clone()).unwrap();
    }
    let applied_at = applied_at.expect("the joiner's events needed the change");
    assert!(
        applied_at > from + 3,
        "the late member held rounds past {from} when it applied the change: {applied_at}"
    );
    late.run_consensus();
    late_blocks.extend(late.take_ready().blocks);
    assert!(late_blocks.len() >= shortest);
    assert_eq!(late_blocks[..shortest], members[0].blocks[..shortest]);
    for e in &events {
        let (a, b) = (late.event_info(&e.id()), members[0].hg.event_info(&e.id()));
        let (Some(a), Some(b)) = (a, b) else { continue };
        assert_eq!(
            (a.round, a.witness, a.round_received),
            (b.round, b.witness, b.round_received),
            "event {:?}",
            e.id()
        );
    }
}

/// A refused change leaves the set alone; receipts for another block or of the wrong count
/// are errors that change nothing; a checkpoint taken while waiting resumes the wait.
#[test]
fn refused_changes_and_wrong_receipts() {
    let keys = keys(5);
    let genesis = peer_set(&keys[0..4]);
    let mut members = network_with(keys[0..4].to_vec(), &genesis, Config::default());
    let joiner = peer_set(&keys).peers()[4].clone();
    let add = InternalTransaction::new(InternalTransactionKind::PeerAdd, joiner, &keys[4]);
    let m0 = &mut members[0];
    m0.hg
        .create_event(&m0.key, None, 10, vec![], vec![add], vec![])
        .unwrap();
    // Gossip without settling member 1, so that it stops at the change's block.
    let mut hg = Hashgraph::new(Config::default(), genesis.clone());
    gossip(&mut members, 300, 3, &[]);
    for e in all_events(&members) {
        hg.insert_event(e).unwrap();
    }
    hg.run_consensus();
    let blocks = hg.take_ready().blocks;
    let index = hg.awaiting_receipts().expect("stopped at the change");
    assert_eq!(blocks.last().unwrap().body.index, index);
    let stopped_at = hg.last_consensus_round();
    hg.run_consensus();
    assert_eq!(
        hg.last_consensus_round(),
        stopped_at,
        "no progress while waiting"
    );

    assert!(matches!(
        hg.apply_receipts(index + 1, &[true]),
        Err(HashgraphError::NotAwaitingReceipts { .. })
    ));
    assert!(matches!(
        hg.apply_receipts(index, &[true, false]),
        Err(HashgraphError::ReceiptCount {
            expected: 1,
            got: 2,
            ..
        })
    ));
    assert_eq!(hg.awaiting_receipts(), Some(index));

    // Through a checkpoint, still waiting; then refused: no change, consensus goes on.
    let saved = hg.checkpoint();
    let events: std::collections::HashMap<_, _> = all_events(&members)
        .into_iter()
        .map(|e| (e.id(), e))
        .collect();
    let mut hg =
        Hashgraph::restore(Config::default(), saved, |id| events.get(id).cloned()).unwrap();
    assert_eq!(hg.awaiting_receipts(), Some(index));
    assert_eq!(hg.apply_receipts(index, &[false]).unwrap(), None);
    hg.run_consensus();
    assert!(hg.last_consensus_round() > stopped_at);
    assert_eq!(hg.peer_set(1_000), &genesis);
}
