//! Restart time: opening the RocksDB store and replaying `N` stored events into a fresh
//! hashgraph, as `hearsay run` does on start. `cargo bench -p hearsay --bench restart` stores
//! one million events of a 4-validator network (signed, as gossip would have delivered them)
//! and prints the median of three restarts; `-- --test` runs 2,000 events once.

use std::time::Instant;

use hashgraph::{Config, Hashgraph};
use hearsay::store::rocks::RocksStore;
use hearsay::store::Store;

fn main() {
    let test_mode = std::env::args().any(|a| a == "--test");
    let (events, runs) = if test_mode {
        (2_000, 1)
    } else {
        (1_000_000, 3)
    };
    let (keys, set) = hearsay_testkit::sim::validators(4);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");

    // Write: one hashgraph plays all four members in turn, each event on top of the previous
    // member's latest one, with a 200-byte transaction; every event goes to the store.
    let started = Instant::now();
    {
        let store = RocksStore::open(&path).unwrap();
        let mut hg = Hashgraph::new(Config::default(), set.clone());
        let mut batch = Vec::with_capacity(10_000);
        for i in 0..events {
            let me = i % 4;
            let other = hg.head(&keys[(me + 3) % 4].public_key());
            let event = hg
                .create_event(
                    &keys[me],
                    other,
                    i as i64,
                    vec![vec![b'x'; 200]],
                    vec![],
                    vec![],
                )
                .unwrap();
            batch.push(event);
            if batch.len() == 10_000 {
                store.put_events(&batch).unwrap();
                batch.clear();
                hg.run_consensus();
                let _ = hg.take_ready();
            }
        }
        store.put_events(&batch).unwrap();
    }
    println!(
        "stored {events} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut times = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let store = RocksStore::open(&path).unwrap();
        let mut hg = Hashgraph::new(Config::default(), set.clone());
        hearsay::node::replay(&mut hg, &store, 0).unwrap();
        hg.run_consensus();
        let ready = hg.take_ready();
        let elapsed = started.elapsed().as_secs_f64();
        assert_eq!(hg.stats().events_inserted, events as u64);
        assert!(!ready.blocks.is_empty());
        times.push(elapsed);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "restart (open + replay + consensus) of {events} events: median {:.2} s over {runs} run(s), {:.1} µs per event",
        times[times.len() / 2],
        times[times.len() / 2] * 1e6 / events as f64
    );
}
