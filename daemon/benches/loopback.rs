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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hearsay_proxy::{AppHandler, Block, CommitResponse};

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// An app that records when each transaction reached it.
#[derive(Default)]
struct TimingApp {
    seen: Mutex<HashMap<String, u128>>,
}

impl AppHandler for TimingApp {
    fn commit_block(&self, block: &Block) -> Result<CommitResponse, String> {
        let now = now_nanos();
        let mut seen = self.seen.lock().unwrap();
        for tx in &block.body.transactions {
            let text = String::from_utf8_lossy(tx);
            let id = text.split(' ').next().unwrap_or_default().to_string();
            seen.entry(id).or_insert(now);
        }
        Ok(CommitResponse::accept_all(vec![0; 32], block))
    }
    fn get_snapshot(&self, _index: u64) -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }
    fn restore(&self, _snapshot: &[u8]) -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }
}

struct RunResult {
    committed_tps: f64,
    p50_ms: f64,
    p99_ms: f64,
    lost: usize,
}

async fn one_run(rate: u64, seconds: u64) -> RunResult {
    let mut net = common::Network::create(4).await;
    net.log_level = "info".into();
    // Replace the recording apps with timing apps on the same addresses.
    let apps: Vec<Arc<TimingApp>> = (0..4).map(|_| Arc::new(TimingApp::default())).collect();
    for (i, app) in apps.iter().enumerate() {
        net.replace_app(i, Arc::clone(app)).await;
    }
    net.start_all();
    // Warm up: one transaction through node 0, committed everywhere.
    let mut warm = common::RawProxy::connect(net.nodes[0].proxy_listen);
    assert_eq!(warm.submit(0, b"warmup")["result"], true);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !apps
        .iter()
        .all(|a| a.seen.lock().unwrap().contains_key("warmup"))
    {
        assert!(Instant::now() < deadline, "the network did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let per_node = rate / 4;
    let total_per_node = per_node * seconds;
    let interval = Duration::from_nanos(1_000_000_000 / per_node.max(1));
    let started = Instant::now();
    let mut threads = Vec::new();
    for (node, info) in net.nodes.iter().enumerate() {
        let addr = info.proxy_listen;
        threads.push(std::thread::spawn(move || {
            let mut proxy = common::RawProxy::connect(addr);
            let mut submitted = Vec::with_capacity(total_per_node as usize);
            let begin = Instant::now();
            for i in 0..total_per_node {
                let due = begin + interval * i as u32;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let id = format!("b{node}-{i}");
                let mut tx = format!("{id} ").into_bytes();
                tx.resize(200, b'.');
                let at = now_nanos();
                if proxy.submit(i, &tx)["result"] == true {
                    submitted.push((id, at));
                }
            }
            submitted
        }));
    }
    let mut submitted: Vec<(usize, String, u128)> = Vec::new();
    for (node, t) in threads.into_iter().enumerate() {
        let list = tokio::task::spawn_blocking(move || t.join().unwrap())
            .await
            .unwrap();
        submitted.extend(list.into_iter().map(|(id, at)| (node, id, at)));
    }
    // Wait for the tail to commit.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = submitted
            .iter()
            .all(|(node, id, _)| apps[*node].seen.lock().unwrap().contains_key(id));
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies: Vec<f64> = Vec::new();
    let mut lost = 0;
    let mut last_commit = 0u128;
    let first_submit = submitted.iter().map(|(_, _, at)| *at).min().unwrap_or(0);
    for (node, id, at) in &submitted {
        match apps[*node].seen.lock().unwrap().get(id) {
            Some(&done) => {
                latencies.push((done.saturating_sub(*at)) as f64 / 1e6);
                last_commit = last_commit.max(done);
            }
            None => lost += 1,
        }
    }
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        latencies[((latencies.len() - 1) as f64 * p).round() as usize]
    };
    let window = ((last_commit.saturating_sub(first_submit)) as f64 / 1e9).max(elapsed.min(1.0));
    RunResult {
        committed_tps: latencies.len() as f64 / window,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        lost,
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
            .map(|_| runtime.block_on(one_run(rate, seconds)))
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
