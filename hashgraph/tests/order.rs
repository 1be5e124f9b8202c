//! Consensus is a function of the DAG alone: any delivery order of the same events, with
//! consensus run at arbitrary moments, yields the same order and the same blocks.

mod common;

use common::{all_events, gossip, network};
use hashgraph::{Config, Event, Hashgraph, VerifiedEvent};
use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn replay(
    events: &[Event],
    n: usize,
    config: &Config,
    seed: u64,
    shuffle: bool,
) -> (Vec<hashgraph::OrderedEvent>, Vec<hashgraph::Block>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut order = events.to_vec();
    if shuffle {
        order.shuffle(&mut rng);
    }
    let mut hg = Hashgraph::new(config.clone(), common::peer_set(&common::keys(n)));
    let mut ordered = Vec::new();
    let mut blocks = Vec::new();
    for e in order {
        // Signatures were checked when the DAG was built; this is about ordering only.
        hg.insert_verified(VerifiedEvent::assume_verified(e))
            .unwrap();
        if rng.gen_range(0..5) == 0 {
            hg.run_consensus();
            let ready = hg.take_ready();
            ordered.extend(ready.ordered);
            blocks.extend(ready.blocks);
        }
    }
    hg.run_consensus();
    let ready = hg.take_ready();
    ordered.extend(ready.ordered);
    blocks.extend(ready.blocks);
    assert_eq!(hg.stats().pending_events, 0);
    (ordered, blocks)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_delivery_order_gives_the_same_consensus(
        dag_seed in 0u64..1000,
        order_seed in any::<u64>(),
        n in prop::sample::select(vec![1usize, 3, 4, 5, 7]),
        coin in prop::sample::select(vec![2u64, 3, 10]),
    ) {
        let config = Config { coin_round_frequency: coin, ..Config::default() };
        let mut members = network(n, config.clone());
        let lazy: Vec<usize> = if n >= 4 { vec![n - 1] } else { vec![] };
        // Termination is probabilistic (coin rounds): a short DAG may decide nothing yet, so
        // it grows until some member has ordered events, within a bound.
        let mut chunks = 0;
        while members.iter().all(|m| m.ordered.is_empty()) {
            prop_assert!(chunks < 8, "nothing ordered after {} gossip steps", chunks * (40 * n + 80));
            gossip(&mut members, 40 * n + 80, dag_seed * 8 + chunks as u64, &lazy);
            chunks += 1;
        }
        let events = all_events(&members);
        let (reference, ref_blocks) = replay(&events, n, &config, order_seed, false);
        prop_assert!(!reference.is_empty(), "the DAG must order something");
        let (shuffled, blocks) = replay(&events, n, &config, order_seed, true);
        prop_assert_eq!(&shuffled, &reference);
        prop_assert_eq!(&blocks, &ref_blocks);
    }
}

/// Coin rounds are really reached (votes without a supermajority take the coin) and
/// consensus still agrees across delivery orders when they are.
#[test]
fn coin_rounds_are_reached_and_still_agree() {
    let config = Config {
        coin_round_frequency: 2,
        ..Config::default()
    };
    let mut coin_votes = 0;
    for seed in 0..12 {
        let mut members = network(4, config.clone());
        gossip(&mut members, 300, seed, &[3]);
        coin_votes += members.iter().map(|m| m.hg.stats().coin_votes).sum::<u64>();
        let events = all_events(&members);
        let (reference, _) = replay(&events, 4, &config, seed, false);
        let (shuffled, _) = replay(&events, 4, &config, seed, true);
        assert_eq!(shuffled, reference, "seed {seed}");
    }
    assert!(coin_votes > 0, "no coin vote in 12 DAGs");
}
