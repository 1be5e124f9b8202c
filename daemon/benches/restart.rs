//! Restart time against the length of the history: `cargo bench -p hearsay --bench restart`
//! writes stores of 100,000 and 1,000,000 events of a 4-validator network (signed, 200-byte
//! transactions), checkpointing as a node does (evict decided history beyond 50 rounds, save
//! the consensus state every 16 rounds), then times `hearsay::node::resume` (open the
//! database, restore the checkpoint, replay the events accepted after it): median of three.
//! The baseline, measured in the same run, is the full replay of every stored event that a
//! node without a checkpoint performs. `-- --test` runs 4,000 events once.

use std::time::Instant;

use hashgraph::{Config, Hashgraph};
use hearsay::node::core::{save_checkpoint, CHECKPOINT_EVERY_ROUNDS};
use hearsay::store::rocks::RocksStore;
use hearsay::store::Store;

/// Rounds kept in memory, as `--memory-rounds` by default.
const MEMORY_ROUNDS: u64 = 50;

/// Writes `events` events into a new store at `path` the way a running node would.
fn write_store(
    path: &std::path::Path,
    events: usize,
    keys: &[hashgraph::SecretKey],
    set: &hashgraph::PeerSet,
) {
    let store = RocksStore::open(path).unwrap();
    let mut hg = Hashgraph::new(Config::default(), set.clone());
    let mut batch = Vec::with_capacity(1_000);
    let mut checkpointed = 0;
    let mut transactions = 0u64;
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
        if batch.len() == 1_000 {
            store.put_events(&batch).unwrap();
            batch.clear();
            hg.run_consensus();
            let ready = hg.take_ready();
            transactions += ready
                .blocks
                .iter()
                .map(|b| b.body.transactions.len() as u64)
                .sum::<u64>();
            let round = hg.last_consensus_round().unwrap_or(0);
            if round >= checkpointed + CHECKPOINT_EVERY_ROUNDS {
                checkpointed = round;
                hg.evict_before(round.saturating_sub(MEMORY_ROUNDS));
                save_checkpoint(&hg, transactions, &store).unwrap();
            }
        }
    }
    store.put_events(&batch).unwrap();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let test_mode = std::env::args().any(|a| a == "--test");
    let (sizes, runs): (&[usize], usize) = if test_mode {
        (&[4_000], 1)
    } else {
        (&[100_000, 1_000_000], 3)
    };
    let (keys, set) = hearsay_testkit::sim::validators(4);
    println!("| stored events | resume from checkpoint (median of {runs}) | events replayed | full replay (baseline) | ratio |");
    println!("|---:|---:|---:|---:|---:|");
    for &events in sizes {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let started = Instant::now();
        write_store(&path, events, &keys, &set);
        eprintln!(
            "stored {events} events in {:.1} s",
            started.elapsed().as_secs_f64()
        );

        let mut resume_times = Vec::new();
        let mut replayed = 0;
        for _ in 0..runs {
            let started = Instant::now();
            let store = RocksStore::open(&path).unwrap();
            let resumed = hearsay::node::resume(set.clone(), &store).unwrap();
            resume_times.push(started.elapsed().as_secs_f64());
            let (_, covered) = store.checkpoint().unwrap().expect("a checkpoint was saved");
            replayed = store.event_count().unwrap() - covered;
            assert_eq!(
                resumed.hg.stats().events_inserted,
                events as u64,
                "the resumed hashgraph does not hold every event"
            );
        }
        let started = Instant::now();
        let store = RocksStore::open(&path).unwrap();
        let mut hg = Hashgraph::new(Config::default(), set.clone());
        hearsay::node::replay(&mut hg, &store, 0).unwrap();
        let full = started.elapsed().as_secs_f64();
        assert_eq!(hg.stats().events_inserted, events as u64);
        let resume = median(resume_times);
        println!(
            "| {events} | {:.3} s | {replayed} | {full:.2} s | {:.1}x faster |",
            resume,
            full / resume
        );
    }
}
