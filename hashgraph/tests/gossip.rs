//! Whole-DAG behaviour of the core under simple random gossip between in-process instances.

use hashgraph::{Config, Event, Hashgraph, Peer, PeerSet, SecretKey};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Member {
    key: SecretKey,
    hg: Hashgraph,
    blocks: Vec<hashgraph::Block>,
}

fn network(n: usize) -> Vec<Member> {
    let keys: Vec<SecretKey> = (0..n).map(|i| SecretKey::from_seed(&[i as u8])).collect();
    let set = PeerSet::new(
        keys.iter()
            .enumerate()
            .map(|(i, k)| Peer::new(k.public_key(), format!("n{i}"), format!("n{i}")))
            .collect(),
    )
    .unwrap();
    keys.into_iter()
        .map(|key| Member {
            key,
            hg: Hashgraph::new(Config::default(), set.clone()),
            blocks: Vec::new(),
        })
        .collect()
}

/// Runs `steps` random syncs: a member pulls what it lacks from another, then creates an
/// event with one transaction on top of the other's head.
fn gossip(members: &mut [Member], steps: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = members.len();
    for (i, m) in members.iter_mut().enumerate() {
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
    for step in 0..steps {
        let to = rng.gen_range(0..n);
        let from = (to + rng.gen_range(1..n.max(2))) % n;
        if n > 1 {
            let known = members[to].hg.known();
            let events: Vec<Event> = members[from].hg.events_unknown_to(&known, usize::MAX);
            for e in events {
                members[to].hg.insert_event(e).unwrap();
            }
        }
        let other = if n > 1 {
            members[to].hg.head(&members[from].key.public_key())
        } else {
            None
        };
        let m = &mut members[to];
        let tx = format!("tx {step}").into_bytes();
        m.hg.create_event(&m.key, other, 1000 + step as i64, vec![tx], vec![], vec![])
            .unwrap();
        m.hg.run_consensus();
        let ready = m.hg.take_ready();
        m.blocks.extend(ready.blocks);
    }
}

#[test]
fn four_members_agree_on_a_growing_chain_of_blocks() {
    let mut members = network(4);
    gossip(&mut members, 400, 7);
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
    let mut members = network(1);
    gossip(&mut members, 20, 1);
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
