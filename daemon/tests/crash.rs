//! Crash safety with real processes: four nodes under continuous load, one at a time killed
//! with SIGKILL at random moments and restarted from its datadir. At the end every app holds
//! identical blocks, every transaction whose `SubmitTx` was answered `true` is in them exactly
//! once, and no store shows two events of one creator at one index.
//!
//! `HEARSAY_CRASH_KILLS` sets the number of kills (30 by default, as CI runs it);
//! `HEARSAY_CRASH_SEED` the seed of the kill schedule.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::indexed_app::IndexedApp;
use common::{BackgroundLoad, Network};
use hearsay::store::Store;
use hearsay_proxy::Block;
use rand::{Rng, SeedableRng};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_kills_lose_nothing_duplicate_nothing_and_never_fork() {
    let kills: usize = std::env::var("HEARSAY_CRASH_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(30);
    let seed: u64 = std::env::var("HEARSAY_CRASH_SEED")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(7);
    let mut net = Network::create(4).await;
    net.log_level = "info".into();
    let apps: Vec<Arc<IndexedApp>> = (0..4).map(|_| Arc::new(IndexedApp::default())).collect();
    for (i, app) in apps.iter().enumerate() {
        net.replace_app(i, Arc::clone(app)).await;
    }
    net.start_all();

    // Continuous load through every proxy; only answers `true` count as accepted.
    let load = BackgroundLoad::start(&net, &[0, 1, 2, 3], "crash");

    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    for kill in 0..kills {
        // A random moment: the schedule is the point of the test, not a synchronisation.
        tokio::time::sleep(Duration::from_millis(rng.gen_range(50..400))).await;
        let victim = rng.gen_range(0..4);
        net.kill(victim);
        net.start(victim);
        let what = format!("node {victim} to come back after kill {kill}");
        net.wait_for(&what, Duration::from_secs(30), |net| {
            net.stats(victim)["state"] == "Babbling"
        })
        .await;
    }
    let accepted = load.stop().await;
    assert!(
        accepted.len() > 100,
        "only {} transactions accepted",
        accepted.len()
    );
    let wanted: HashSet<&String> = accepted.iter().collect();

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = apps.iter().all(|a| {
            let txs: HashSet<String> = a.transactions().into_iter().collect();
            wanted.iter().all(|t| txs.contains(*t))
        });
        if done {
            break;
        }
        if Instant::now() > deadline {
            let missing: Vec<usize> = apps
                .iter()
                .map(|a| {
                    let txs: HashSet<String> = a.transactions().into_iter().collect();
                    wanted.iter().filter(|t| !txs.contains(**t)).count()
                })
                .collect();
            panic!(
                "accepted transactions missing per app: {missing:?} (of {})\n{}",
                accepted.len(),
                net.describe()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Identical blocks, dense from 0, every accepted transaction exactly once.
    let chains: Vec<BTreeMap<u64, Block>> = apps
        .iter()
        .map(|a| a.blocks.lock().unwrap().clone())
        .collect();
    for (i, app) in apps.iter().enumerate() {
        assert!(
            app.mismatches.lock().unwrap().is_empty(),
            "app {i}: a redelivered block changed"
        );
        let indices: Vec<u64> = chains[i].keys().copied().collect();
        assert_eq!(
            indices,
            (0..indices.len() as u64).collect::<Vec<_>>(),
            "app {i}: gap"
        );
        let mut seen = HashSet::new();
        for tx in app.transactions() {
            assert!(seen.insert(tx.clone()), "app {i}: {tx} committed twice");
        }
    }
    let common = chains.iter().map(BTreeMap::len).min().unwrap() as u64;
    for i in 1..4 {
        for index in 0..common {
            assert_eq!(
                chains[i][&index].body.transactions, chains[0][&index].body.transactions,
                "app {i} differs at block {index}"
            );
        }
    }

    // No store holds two events of one creator at one index.
    for i in 0..4 {
        net.terminate(i);
    }
    for (i, node) in net.nodes.iter().enumerate() {
        let store = hearsay::store::rocks::RocksStore::open(&node.datadir.join("db")).unwrap();
        let mut at: HashMap<(hashgraph::PublicKey, u64), hashgraph::Hash> = HashMap::new();
        let total = store.event_count().unwrap();
        let mut from = 0;
        while from < total {
            let events = store.events_from(from, 10_000).unwrap();
            from += events.len() as u64;
            for e in events {
                if let Some(other) = at.insert((*e.creator(), e.index()), e.id()) {
                    assert_eq!(
                        other,
                        e.id(),
                        "node {i}'s store: two events by {} at index {}",
                        e.creator(),
                        e.index()
                    );
                }
            }
        }
        assert!(total > 0);
    }
    println!(
        "{kills} kills, {} transactions accepted, {} blocks",
        accepted.len(),
        common
    );
}
