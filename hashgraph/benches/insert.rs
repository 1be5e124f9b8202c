//! The core's insert-and-order path under divan, as raft-rs and narwhal benchmark theirs:
//! a random-gossip DAG of 4,000 signed events inserted into a fresh hashgraph and ordered
//! (consensus after every 64 insertions, history evicted as a node would), with signatures
//! taken as verified (the node verifies them off the consensus task) and with them checked.
//! Throughput is reported in events per second.
//!
//! `cargo bench -p hashgraph --bench insert` measures; `cargo test -p hashgraph --bench
//! insert` runs each benchmark once, which CI does so that it keeps compiling and working.

mod common;

use common::{play, random_gossip_dag};

/// Events per played DAG.
const EVENTS: usize = 4_000;

fn main() {
    divan::main();
}

/// Consensus alone, for n validators.
#[divan::bench(args = [4, 16], sample_count = 10, sample_size = 1)]
fn insert_verified_and_order(bencher: divan::Bencher<'_, '_>, n: usize) {
    let (set, dag) = random_gossip_dag(n, EVENTS, 42);
    bencher
        .counter(divan::counter::ItemsCount::new(dag.len()))
        .bench(|| {
            let (_, ordered) = play(&set, &dag, false);
            assert!(ordered > 0, "nothing ordered");
        });
}

/// The same with each event's signature checked on insertion, for 4 validators.
#[divan::bench(sample_count = 3, sample_size = 1)]
fn insert_checked_and_order(bencher: divan::Bencher<'_, '_>) {
    let (set, dag) = random_gossip_dag(4, EVENTS, 42);
    bencher
        .counter(divan::counter::ItemsCount::new(dag.len()))
        .bench(|| {
            let (_, ordered) = play(&set, &dag, true);
            assert!(ordered > 0, "nothing ordered");
        });
}
