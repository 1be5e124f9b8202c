//! End-to-end figure for a 4-node network on loopback: committed transactions per second and
//! submit-to-commit latency (p50, p99), with real `hearsay run` processes.
//!
//! `cargo bench -p hearsay --bench loopback` runs, for each offered rate, three networks of
//! 4 nodes; each node's proxy gets an open-loop load of 200-byte transactions that carry their
//! submit time; the latency of a transaction is the time from its `SubmitTx` to its delivery
//! to the app of the node it was submitted to. Medians over the three runs are printed.
//! `-- --test` runs one short network, to keep the benchmark working.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::load::{self, Load};

struct RunResult {
    committed_tps: f64,
    p50_ms: f64,
    p99_ms: f64,
    lost: usize,
}

fn one_run(runtime: &tokio::runtime::Runtime, rate: u64, seconds: u64) -> RunResult {
    let mut net = runtime.block_on(common::Network::create(4));
    net.log_level = "info".into();
    let apps = runtime.block_on(load::start_timed(&mut net));
    let proxies: Vec<_> = net.nodes.iter().map(|n| n.proxy_listen).collect();
    let submitted = Load::start(&proxies, rate, Duration::from_secs(seconds), 0).join();
    // Wait for the tail to commit.
    submitted.wait_delivered(&apps, Duration::from_secs(60));
    let outcome = submitted.outcome(&apps);
    RunResult {
        committed_tps: outcome.committed_tps(),
        p50_ms: outcome.percentile(0.50),
        p99_ms: outcome.percentile(0.99),
        lost: outcome.lost,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let test_mode = std::env::args().any(|a| a == "--test");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (rates, runs, seconds): (&[u64], usize, u64) = if test_mode {
        (&[200], 1, 1)
    } else {
        (&[1_000, 4_000], 3, 10)
    };
    println!("| offered tx/s | committed tx/s (median of {runs}) | p50 ms | p99 ms | lost |");
    println!("|---:|---:|---:|---:|---:|");
    for &rate in rates {
        let results: Vec<RunResult> = (0..runs)
            .map(|_| one_run(&runtime, rate, seconds))
            .collect();
        println!(
            "| {rate} | {:.0} | {:.1} | {:.1} | {} |",
            median(results.iter().map(|r| r.committed_tps).collect()),
            median(results.iter().map(|r| r.p50_ms).collect()),
            median(results.iter().map(|r| r.p99_ms).collect()),
            results.iter().map(|r| r.lost).sum::<usize>()
        );
        assert_eq!(
            results.iter().map(|r| r.lost).sum::<usize>(),
            0,
            "transactions lost"
        );
    }
}
