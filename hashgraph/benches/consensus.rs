//! Events ordered per second by the consensus core alone, and with signature checking.
//!
//! `cargo bench -p hashgraph --bench consensus` prints a table: for n = 4, 16 and 64
//! validators, the median over repeated runs of inserting a random-gossip DAG and ordering it
//! (consensus run after every 64 insertions, history evicted as a node would), the cost per
//! event, and its ratio to n = 4 measured in the same run. `-- --test` runs a tiny version, so
//! CI keeps the benchmark compiling and working.

mod common;

use common::{play, random_gossip_dag};

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

fn main() {
    let test_mode = std::env::args().any(|a| a == "--test");
    let (sizes, events, runs, sig_runs): (&[usize], usize, usize, usize) = if test_mode {
        (&[4, 16], 2_000, 1, 1)
    } else {
        (&[4, 16, 64], 60_000, 7, 3)
    };
    println!("| validators | events | ordered | consensus only: events/s (median of {runs}) | ns/event | ns/event vs n=4 | with signature checks: events/s (median of {sig_runs}) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let mut base_ns = None;
    for &n in sizes {
        let (set, dag) = random_gossip_dag(n, events, 42);
        let mut ordered = 0;
        let plain = median(
            (0..runs)
                .map(|_| {
                    let (secs, o) = play(&set, &dag, false);
                    ordered = o;
                    dag.len() as f64 / secs
                })
                .collect(),
        );
        assert!(ordered > 0, "n = {n}: nothing ordered");
        let signed = median(
            (0..sig_runs)
                .map(|_| dag.len() as f64 / play(&set, &dag, true).0)
                .collect(),
        );
        let ns = 1e9 / plain;
        let base = *base_ns.get_or_insert(ns);
        println!(
            "| {n} | {} | {ordered} | {plain:.0} | {ns:.0} | {:.2}x | {signed:.0} |",
            dag.len(),
            ns / base
        );
    }
}
