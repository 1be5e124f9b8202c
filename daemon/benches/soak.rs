//! Soak: a 4-node network of real `hearsay run` processes at half its maximum load for a long
//! time, each node's resident memory sampled at a fixed period; the aim is RSS flat within 10%
//! after warm-up.
//!
//! `cargo bench -p hearsay --bench soak` first finds the maximum load with an open-loop ramp on
//! a fresh network: 1000, 2000, 4000, 8000 and 16000 tx/s of 200-byte transactions split over
//! the four proxies, 8 s each; the maximum is the highest offered rate whose committed rate is
//! at least 90% of it and whose p99 submit-to-commit latency is under 1 s (the ramp stops at
//! the first rate that fails). It then runs a fresh network at half that rate for 30 minutes
//! and, every 10 s, reads each node's VmRSS from `/proc/<pid>/status` and its `/stats` (events
//! in memory, undetermined events, transaction pool, blocks waiting for the app, last block),
//! printing one line per sample and writing them as CSV. The summary gives, per node, RSS
//! min / median / max after warm-up (the first 5 minutes, or the first third of a shorter run)
//! and, against the 10% aim, the largest deviation of a sample from the median and the spread
//! (max - min) / median; the trend (median of the first
//! fifth after warm-up against the last fifth), of the RSS and of the RSS less the memory the
//! database reports holding (memtables, block cache, table readers, from `/metrics`); the
//! committed rate over the run,
//! and the transactions lost (accepted by a proxy but never delivered; asserted to be 0).
//!
//! Options, after `--`: `--rate N` soaks at N tx/s in total without a ramp; `--minutes M`
//! (default 30, fractions allowed); `--period S` is the sampling period in seconds (default
//! 10); `--csv FILE` (default `soak.csv` in Cargo's target tmp directory). `-- --test` skips the
//! ramp and soaks at 400 tx/s for 20 s with a sample every 2 s, to keep the benchmark working.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::load::{self, Load, TimingApp};

/// Offered rates of the ramp, tx/s in total.
const RAMP: [u64; 5] = [1_000, 2_000, 4_000, 8_000, 16_000];
/// Length of one ramp step.
const RAMP_STEP: Duration = Duration::from_secs(8);
/// How long a ramp step's transactions may take to commit after its load ends.
const RAMP_DRAIN: Duration = Duration::from_secs(10);
/// How long the soak's last transactions may take to commit after its load ends.
const TAIL_WAIT: Duration = Duration::from_secs(60);
/// The memory-related `/stats` fields sampled, then the last block.
const STATS_FIELDS: [&str; 5] = [
    "events_in_memory",
    "undetermined_events",
    "transaction_pool",
    "blocks_waiting_for_app",
    "last_block_index",
];
const NODES: usize = 4;

struct Options {
    /// Soak rate; `None` to find it with the ramp.
    rate: Option<u64>,
    duration: Duration,
    period: Duration,
    csv: PathBuf,
}

fn usage(problem: &str) -> ! {
    panic!(
        "{problem}\nusage: cargo bench -p hearsay --bench soak -- [--test] [--rate N] \
         [--minutes M] [--period S] [--csv FILE]"
    )
}

fn parse_options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let test_mode = args.iter().any(|a| a == "--test");
    let mut options = Options {
        rate: test_mode.then_some(400),
        duration: Duration::from_secs(if test_mode { 20 } else { 30 * 60 }),
        period: Duration::from_secs(if test_mode { 2 } else { 10 }),
        csv: PathBuf::from(concat!(env!("CARGO_TARGET_TMPDIR"), "/soak.csv")),
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        let number = |name: &str, text: String| -> f64 {
            match text.parse::<f64>() {
                Ok(v) if v > 0.0 && v.is_finite() => v,
                _ => usage(&format!("{name} {text}: not a positive number")),
            }
        };
        match arg.as_str() {
            // `cargo bench` passes `--bench`.
            "--test" | "--bench" => {}
            "--rate" => options.rate = Some(number("--rate", value("--rate")) as u64),
            "--minutes" => {
                options.duration =
                    Duration::from_secs_f64(number("--minutes", value("--minutes")) * 60.0)
            }
            "--period" => {
                options.period = Duration::from_secs_f64(number("--period", value("--period")))
            }
            "--csv" => options.csv = PathBuf::from(value("--csv")),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    options
}

/// A network of `NODES` nodes logging at info, served by timing apps, started and warmed up.
fn timed_network(
    runtime: &tokio::runtime::Runtime,
) -> (
    common::Network,
    Vec<Arc<TimingApp>>,
    Vec<std::net::SocketAddr>,
) {
    let mut net = runtime.block_on(common::Network::create(NODES));
    net.log_level = "info".into();
    let apps = runtime.block_on(load::start_timed(&mut net));
    let proxies = net.nodes.iter().map(|n| n.proxy_listen).collect();
    (net, apps, proxies)
}

/// The ramp: the highest offered rate the network sustains.
fn find_max_rate(runtime: &tokio::runtime::Runtime) -> u64 {
    println!(
        "ramp: open-loop load, {} s per rate, on a fresh {NODES}-node network",
        RAMP_STEP.as_secs()
    );
    let (_net, apps, proxies) = timed_network(runtime);
    println!(
        "| offered tx/s | submitted tx/s | committed tx/s | p50 ms | p99 ms | undelivered | sustained |"
    );
    println!("|---:|---:|---:|---:|---:|---:|:---|");
    let mut max = None;
    let mut seq = 0;
    for rate in RAMP {
        let started = Instant::now();
        let submitted = Load::start(&proxies, rate, RAMP_STEP, seq).join();
        let submit_secs = started.elapsed().as_secs_f64();
        seq = submitted.end_seq();
        submitted.wait_delivered(&apps, RAMP_DRAIN);
        let outcome = submitted.outcome(&apps);
        let committed = outcome.committed_tps();
        let p99 = outcome.percentile(0.99);
        let sustained = committed >= 0.9 * rate as f64 && p99 < 1000.0;
        println!(
            "| {rate} | {:.0} | {committed:.0} | {:.1} | {p99:.1} | {} | {} |",
            submitted.accepted() as f64 / submit_secs,
            outcome.percentile(0.5),
            outcome.lost,
            if sustained { "yes" } else { "no" }
        );
        if !sustained {
            break;
        }
        max = Some(rate);
    }
    max.unwrap_or_else(|| {
        panic!(
            "the network sustained none of the ramp's rates (the lowest is {} tx/s): \
             give the soak rate with --rate N",
            RAMP[0]
        )
    })
}

/// VmRSS of a process in KiB; `None` once it has exited.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A number of a `/stats` answer (they are strings there).
fn stats_field(stats: &serde_json::Value, name: &str) -> Option<i64> {
    match &stats[name] {
        serde_json::Value::String(s) => s.parse().ok(),
        v => v.as_i64(),
    }
}

/// What one sample saw.
struct Sample {
    elapsed_s: f64,
    rss_kib: Vec<u64>,
    /// Per node, the memory its database reports holding (`hearsay_store_memory_bytes`,
    /// all parts), in KiB: what of the RSS RocksDB's bounded caches account for.
    store_kib: Vec<u64>,
    /// Per node, `STATS_FIELDS` in order.
    stats: Vec<Vec<Option<i64>>>,
}

fn take_sample(net: &common::Network, pids: &[u32], elapsed_s: f64) -> Sample {
    let rss_kib = pids
        .iter()
        .enumerate()
        .map(|(i, &pid)| {
            rss_kib(pid).unwrap_or_else(|| {
                panic!(
                    "node {i} (pid {pid}) is gone at {elapsed_s:.0} s\n{}",
                    net.describe()
                )
            })
        })
        .collect();
    let store_kib = (0..pids.len()).map(|i| store_memory_kib(net, i)).collect();
    let stats = (0..pids.len())
        .map(|i| {
            let stats = net.stats(i);
            STATS_FIELDS
                .iter()
                .map(|f| stats_field(&stats, f))
                .collect()
        })
        .collect();
    Sample {
        elapsed_s,
        rss_kib,
        store_kib,
        stats,
    }
}

/// Node `i`'s database memory from `/metrics`, in KiB (0 if it reports none).
fn store_memory_kib(net: &common::Network, i: usize) -> u64 {
    let (_, body) = common::http_get(net.nodes[i].service_listen, "/metrics").unwrap_or_default();
    let bytes: f64 = body
        .lines()
        .filter(|l| l.starts_with("hearsay_store_memory_bytes{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    (bytes / 1024.0) as u64
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn show(value: Option<i64>) -> String {
    value.map_or_else(|| "-".into(), |v| v.to_string())
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn main() {
    let options = parse_options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let rate = match options.rate {
        Some(rate) => {
            println!("soak rate {rate} tx/s (given; no ramp)");
            rate
        }
        None => {
            let max = find_max_rate(&runtime);
            println!("maximum sustained: {max} tx/s; soak rate {} tx/s", max / 2);
            max / 2
        }
    };
    let seconds = options.duration.as_secs_f64();
    let period = options.period.as_secs_f64();
    println!(
        "soak: {NODES} nodes, {rate} tx/s of {}-byte transactions split over the proxies, for \
         {seconds:.0} s, a sample every {period} s; CSV to {}",
        load::TX_BYTES,
        options.csv.display()
    );

    let (net, apps, proxies) = timed_network(&runtime);
    let pids: Vec<u32> = (0..NODES)
        .map(|i| net.pid(i).expect("the node runs"))
        .collect();
    if let serde_json::Value::Object(fields) = net.stats(0) {
        let listed: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("node 0 /stats at start: {}", listed.join(" "));
    }

    let mut csv = std::fs::File::create(&options.csv)
        .unwrap_or_else(|e| panic!("{}: {e}", options.csv.display()));
    let mut header = vec!["elapsed_s".to_string(), "delivered_txs".to_string()];
    for i in 0..NODES {
        header.push(format!("rss_kib_{i}"));
        header.push(format!("store_kib_{i}"));
        header.extend(STATS_FIELDS.iter().map(|f| format!("{f}_{i}")));
    }
    writeln!(csv, "{}", header.join(",")).unwrap();
    println!(
        "{:>7} | {:^31} | {:^31} | {:^31} | {:>10} | {:>7}",
        "elapsed",
        "RSS MiB per node",
        "events in memory per node",
        "undetermined events per node",
        "last block",
        "tx/s"
    );

    let load = Load::start(&proxies, rate, options.duration, 0);
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut previous = (0.0, apps[0].transactions());
    for k in 0u32.. {
        let due = options.period * k;
        if due > options.duration {
            break;
        }
        std::thread::sleep((started + due).saturating_duration_since(Instant::now()));
        let elapsed_s = started.elapsed().as_secs_f64();
        let sample = take_sample(&net, &pids, elapsed_s);
        let delivered = apps[0].transactions();
        let tps = if elapsed_s > previous.0 {
            (delivered - previous.1) as f64 / (elapsed_s - previous.0)
        } else {
            0.0
        };
        previous = (elapsed_s, delivered);
        let per_node = |field: usize| -> String {
            sample
                .stats
                .iter()
                .map(|s| format!("{:>7}", show(s[field])))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let last_block = sample.stats.iter().filter_map(|s| s[4]).max();
        println!(
            "{elapsed_s:>6.0}s | {} | {} | {} | {:>10} | {tps:>7.0}",
            sample
                .rss_kib
                .iter()
                .map(|&k| format!("{:>7.1}", mib(k)))
                .collect::<Vec<_>>()
                .join(" "),
            per_node(0),
            per_node(1),
            show(last_block),
        );
        let mut row = vec![format!("{elapsed_s:.1}"), delivered.to_string()];
        for ((rss, store), stats) in sample
            .rss_kib
            .iter()
            .zip(&sample.store_kib)
            .zip(&sample.stats)
        {
            row.push(rss.to_string());
            row.push(store.to_string());
            row.extend(
                stats
                    .iter()
                    .map(|v| v.map_or_else(String::new, |v| v.to_string())),
            );
        }
        writeln!(csv, "{}", row.join(",")).unwrap();
        samples.push(sample);
    }
    let submitted = load.join();
    let submit_secs = started.elapsed().as_secs_f64();
    let drained = submitted.wait_delivered(&apps, TAIL_WAIT);
    let outcome = submitted.outcome(&apps);

    // Summary.
    let warm_up = (seconds / 3.0).min(300.0);
    let after: Vec<&Sample> = samples.iter().filter(|s| s.elapsed_s >= warm_up).collect();
    println!();
    println!(
        "RSS after warm-up (the first {warm_up:.0} s), {} samples:",
        after.len()
    );
    println!(
        "| node | min MiB | median MiB | max MiB | largest deviation from the median | \
         (max-min)/median |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    // Two readings of "flat within 10%": every sample within 10% of the node's median (a
    // level that does not move, with a bounded swing around it), and the stricter one, the
    // whole range within 10% of the median.
    let mut all_within = !after.is_empty();
    let mut all_narrow = !after.is_empty();
    for i in 0..NODES {
        let mut rss: Vec<f64> = after.iter().map(|s| mib(s.rss_kib[i])).collect();
        rss.sort_by(|a, b| a.partial_cmp(b).unwrap());
        if rss.is_empty() {
            println!("| {i} | - | - | - | - | - |");
            continue;
        }
        let (min, med, max) = (rss[0], median(&rss), rss[rss.len() - 1]);
        let deviation = (med - min).max(max - med) / med * 100.0;
        let spread = (max - min) / med * 100.0;
        all_within &= deviation <= 10.0;
        all_narrow &= spread <= 10.0;
        println!("| {i} | {min:.1} | {med:.1} | {max:.1} | {deviation:.1}% | {spread:.1}% |");
    }
    // A slow leak shows as a trend; the spread above also holds the swing of the
    // memtables filling and being freed. Compare the first and last fifth after warm-up, for
    // the RSS and for the RSS less what the database reports holding.
    println!(
        "trend after warm-up, median of the first fifth -> median of the last fifth (MiB): \
         RSS, and RSS less the database's own memory"
    );
    let fifth = (after.len() / 5).max(1);
    for i in 0..NODES {
        if after.len() < 2 {
            break;
        }
        let rss = |s: &&Sample| mib(s.rss_kib[i]);
        let rest = |s: &&Sample| mib(s.rss_kib[i].saturating_sub(s.store_kib[i]));
        let window = |range: &[&Sample], f: &dyn Fn(&&Sample) -> f64| {
            let mut v: Vec<f64> = range.iter().map(f).collect();
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            median(&v)
        };
        let (head, tail) = (&after[..fifth], &after[after.len() - fifth..]);
        let (r0, r1) = (window(head, &rss), window(tail, &rss));
        let (o0, o1) = (window(head, &rest), window(tail, &rest));
        println!(
            "node {i}: RSS {r0:.1} -> {r1:.1} ({:+.1}%), without the database {o0:.1} -> {o1:.1} ({:+.1}%)",
            (r1 - r0) / r0 * 100.0,
            (o1 - o0) / o0 * 100.0
        );
    }
    println!(
        "events in memory after warm-up (min..max per node): {}",
        (0..NODES)
            .map(|i| {
                let values: Vec<i64> = after.iter().filter_map(|s| s.stats[i][0]).collect();
                match (values.iter().min(), values.iter().max()) {
                    (Some(lo), Some(hi)) => format!("{lo}..{hi}"),
                    _ => "-".into(),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "offered {rate} tx/s for {seconds:.0} s: {} accepted ({:.0} tx/s), {} refused; \
         committed {:.0} tx/s over the run; latency p50 {:.1} ms, p99 {:.1} ms",
        submitted.accepted(),
        submitted.accepted() as f64 / submit_secs,
        submitted.refused(),
        outcome.committed_tps(),
        outcome.percentile(0.5),
        outcome.percentile(0.99),
    );
    println!(
        "lost (accepted, not delivered {} s after the load): {}",
        TAIL_WAIT.as_secs(),
        outcome.lost
    );
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!(
        "after warm-up, every RSS sample within 10% of its node's median: {}; the range \
         (max-min) within 10% of the median: {}",
        yes(all_within),
        yes(all_narrow)
    );
    assert!(
        drained && outcome.lost == 0,
        "{} transactions lost\n{}",
        outcome.lost,
        net.describe()
    );
}
