//! The network simulator: determinism, a short sweep with the maximum number of Byzantine
//! validators, fork detection, and agreement after a partition heals. (The long sweep is
//! `hearsay sim --nodes 1,4,7,10 --seeds 0..500`, run by the `hearsay` crate's tests.) The
//! last two tests pin two bugs the simulator found in the core.

use std::panic::{catch_unwind, AssertUnwindSafe};

use hashgraph::{Config, Hashgraph, InsertError};
use hearsay_testkit::sim::{self, Behaviour, SimConfig, SimResult};

/// Panics with every violation of every failing run, and the command that replays it.
fn assert_passed(results: &[SimResult]) {
    let failures: Vec<String> = results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| {
            let c = &r.config;
            let behaviours: Vec<&str> = c.behaviours.iter().map(|b| b.name()).collect();
            let mut replay = format!(
                "hearsay sim --nodes {} --byzantine {} --seeds {}..={} --events {} --behaviour {}",
                c.nodes,
                c.byzantine,
                c.seed,
                c.seed,
                c.events,
                behaviours.join(",")
            );
            if let Some(p) = c.partitions {
                replay.push_str(&format!(" --partitions {p}"));
            }
            let violations: Vec<String> = r.violations.iter().map(|v| v.to_string()).collect();
            format!(
                "seed {} (byzantine {:?}): {}\n  replay: {replay}",
                c.seed,
                r.byzantine,
                violations.join("; ")
            )
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_same_seed_replays_exactly() {
    let config = SimConfig::new(7, 300, 42);
    let first = sim::run(&config);
    let second = sim::run(&config);
    assert_eq!(first, second);
    // The comparison is not vacuous: the run did something, and another seed differs.
    assert!(first.blocks_min > 0 && first.last_block_hash.is_some());
    assert!(first.messages_sent > 100 && first.transactions > 50);
    let other = sim::run(&SimConfig::new(7, 300, 43));
    assert_ne!(first.last_block_hash, other.last_block_hash);
    assert_ne!(first.messages_sent, other.messages_sent);
}

#[test]
fn a_short_sweep_with_maximum_byzantine_passes() {
    let mut results = Vec::new();
    for nodes in [1, 4, 7] {
        for seed in 0..24 {
            let r = sim::run(&SimConfig::new(nodes, 300, seed));
            assert_eq!(r.byzantine.len(), (nodes - 1) / 3);
            results.push(r);
        }
    }
    assert_passed(&results);
    // Every behaviour was exercised, partitions and losses happened, hostile input was
    // rejected, and every run drained to agreement.
    for b in Behaviour::ALL {
        assert!(
            results
                .iter()
                .any(|r| r.byzantine.iter().any(|(_, x)| *x == b)),
            "no run had a {b} validator"
        );
    }
    assert!(results
        .iter()
        .any(|r| r.partitions > 0 && r.messages_cut > 0));
    assert!(results.iter().any(|r| r.messages_lost > 0));
    assert!(results.iter().any(|r| r.rejected_events > 0));
    assert!(results.iter().all(|r| r.drained));
}

#[test]
fn forkers_are_caught_and_only_forkers() {
    for (nodes, seed) in [(4, 0), (4, 1), (7, 2)] {
        let config = SimConfig {
            behaviours: vec![Behaviour::Forking],
            ..SimConfig::new(nodes, 300, seed)
        };
        let r = sim::run(&config);
        let forkers: Vec<usize> = r.byzantine.iter().map(|(i, _)| *i).collect();
        assert!(r.forks_detected > 0, "seed {seed}: no fork detected");
        assert!(
            !r.forkers_caught.is_empty() && r.forkers_caught.iter().all(|f| forkers.contains(f)),
            "seed {seed}: caught {:?}, forkers {forkers:?}",
            r.forkers_caught
        );
        assert!(!r
            .violations
            .iter()
            .any(|v| matches!(v, sim::Violation::HonestAccused { .. })));
    }
}

#[test]
fn validators_agree_after_a_partition_heals() {
    for (nodes, seed) in [(4, 7), (7, 8)] {
        let config = SimConfig {
            partitions: Some(1),
            ..SimConfig::new(nodes, 300, seed)
        };
        let r = sim::run(&config);
        assert_eq!(r.partitions, 1, "the partition took effect");
        assert!(r.messages_cut > 20, "it cut {} messages", r.messages_cut);
        assert_passed(std::slice::from_ref(&r));
        assert!(r.drained && r.blocks_min > 0);
        assert_eq!(r.blocks_min, r.blocks_max, "all honest validators agree");
    }
}

#[test]
fn eviction_keeps_memory_bounded() {
    let config = SimConfig {
        byzantine: 0,
        ..SimConfig::new(4, 5000, 5)
    };
    // The simulator asks for the least history the core keeps.
    assert_eq!(
        sim::DEFAULT_EVICT_LAG,
        Config::default().min_retained_rounds()
    );
    let r = sim::run(&config);
    assert_passed(std::slice::from_ref(&r));
    assert!(r.rounds > 3 * sim::DEFAULT_EVICT_LAG, "{} rounds", r.rounds);
    assert!(
        r.peak_events_in_memory * 3 < r.events as usize,
        "peak {} events in memory out of {}",
        r.peak_events_in_memory,
        r.events
    );
}

/// Regression: while a creator was known to have forked, the round of its next event was
/// computed with its own ancestry entry pointing at the event being inserted, not yet in the
/// arena, so it failed to see its own creator's witnesses. The same event got a lower round on
/// a node that learnt of the fork before receiving it, and honest validators' blocks diverged.
#[test]
fn forking_validators_do_not_split_honest_ones() {
    let mut results = Vec::new();
    for (nodes, seeds) in [(4, 0..8), (7, 0..4)] {
        for seed in seeds {
            let config = SimConfig {
                behaviours: vec![Behaviour::Forking],
                ..SimConfig::new(nodes, 300, seed)
            };
            results.push(sim::run(&config));
        }
    }
    assert_passed(&results);
}

/// Regression: after `evict_before`, an event whose parents' rounds (round 0 for a first event)
/// are below the retained rounds made `insert_event` panic instead of being refused as too
/// old. Any peer could do this, e.g. by withholding its first event.
#[test]
fn a_first_event_released_after_eviction_is_refused() {
    let (keys, peers) = sim::validators(4);
    // Short horizons, so that round 3 can be evicted once round 5 is received.
    let config = Config {
        stale_rounds: 1,
        max_parent_round_gap: 1,
        eviction_margin_rounds: 0,
        ..Config::default()
    };
    let mut hgs: Vec<Hashgraph> = (0..3)
        .map(|_| Hashgraph::new(config.clone(), peers.clone()))
        .collect();
    // Validator 3 makes its first event and keeps it to itself.
    let mut withholder = Hashgraph::new(config.clone(), peers.clone());
    let late = withholder
        .create_event(&keys[3], None, 0, vec![], vec![], vec![])
        .unwrap();
    // The other three (a supermajority) gossip in turn until round 5 is decided.
    let mut step = 0;
    while hgs[0].last_consensus_round().is_none_or(|r| r < 5) {
        assert!(step < 1000, "no progress");
        let (i, j) = (step % 3, (step + 1) % 3);
        let known = hgs[i].known();
        for e in hgs[j].events_unknown_to(&known, usize::MAX) {
            hgs[i].insert_event(e).unwrap();
        }
        let other = hgs[i].head(&keys[j].public_key());
        let tx = vec![format!("tx {step}").into_bytes()];
        hgs[i]
            .create_event(&keys[i], other, step as i64 + 1, tx, vec![], vec![])
            .unwrap();
        hgs[i].run_consensus();
        step += 1;
    }
    hgs[0].evict_before(3);
    let outcome = catch_unwind(AssertUnwindSafe(|| hgs[0].insert_event(late)));
    assert!(
        matches!(outcome, Ok(Err(InsertError::TooOld { .. }))),
        "{:?}",
        outcome.map_err(|_| "insert_event panicked")
    );
}
