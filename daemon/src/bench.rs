//! `hearsay bench`: starts a local network of real `hearsay run` processes (or drives running
//! nodes described by a `testnet.json`), serves as every node's app, submits an open-loop
//! load through the proxies and reports committed throughput, submit-to-delivery latency,
//! consensus rates, CPU and memory.
//!
//! Each transaction carries the run, the rate it belongs to, its node, its number and the
//! time it was due; its latency runs from that due time to its delivery to the app of the
//! node it was submitted to. Timing from the due time rather than from the write means a
//! connection that falls behind shows up as latency instead of hiding it (no coordinated
//! omission).

mod load;
mod report;
mod system;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::Child;

use crate::testnet::{self, TestnetNode};
use load::{Clock, LiveCounts, Schedule, TimingApp};
use report::{Latency, NodeReport, PointReport, RunConfig};
use system::{Counters, Machine};

/// Arguments of `hearsay bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Nodes of the local network to start (not with --external)
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Offered load, transactions per second over all nodes
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Offered loads to run one after the other on the same network, comma-separated (e.g.
    /// 1000,4000,16000); replaces --rate, and also writes a plot (see --plot)
    #[arg(long, value_delimiter = ',')]
    pub sweep: Vec<u64>,
    /// Seconds of load per rate
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Bytes per transaction (at least 32: the first 28 say where and when it was submitted)
    #[arg(long, default_value_t = 200)]
    pub tx_size: usize,
    /// Drive running nodes described by this testnet.json (as `hearsay testnet` writes it)
    /// instead of starting a network: the benchmark serves as their app on each node's
    /// client_connect address, so no other app may be attached
    #[arg(long, value_name = "FILE")]
    pub external: Option<PathBuf>,
    /// Write the results here as JSON: one object, or with --sweep an array of one per rate
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write an SVG plot of latency against committed throughput here [default with --sweep:
    /// the --json file with .svg, or bench.svg]
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Seconds to wait after the load for the last accepted transactions to be delivered
    #[arg(long, default_value_t = 30)]
    pub drain: u64,
    /// Folder for the local network's datadirs and logs, kept afterwards [default: a
    /// temporary folder, removed afterwards]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Proxy connections per node that share its load
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Log level of the local nodes (their logs are in the network's folder). Their other
    /// settings come from the environment as for `hearsay run`, e.g. HEARSAY_HEARTBEAT=5ms
    #[arg(long, default_value = "warn")]
    pub node_log: String,
}

/// Most nodes a local network may have.
const MAX_LOCAL_NODES: usize = 32;
/// How long the network may take to order its first transaction.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a local node may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `hearsay bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let rates = check(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut network = Network::start(&args).await?;
        let outcome = tokio::select! {
            outcome = run_points(&args, &rates, &network) => outcome,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        };
        network.stop().await;
        let points = outcome?;
        write_outputs(&args, &points)?;
        let lost: u64 = points.iter().map(|p| p.lost).sum();
        let twice: u64 = points.iter().map(|p| p.duplicates).sum();
        if lost + twice > 0 {
            eprintln!(
                "error: {lost} accepted transactions were not delivered within --drain {} s \
                 (lost, or the network fell that far behind), {twice} were delivered twice",
                args.drain
            );
            return Ok(ExitCode::from(2));
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Checks the arguments; returns the rates to run.
fn check(args: &BenchArgs) -> anyhow::Result<Vec<u64>> {
    let rates = if args.sweep.is_empty() {
        vec![args.rate]
    } else {
        args.sweep.clone()
    };
    if rates.contains(&0) {
        bail!("rates must be at least 1 tx/s");
    }
    if rates.len() > usize::from(u16::MAX) {
        bail!("--sweep takes at most {} rates", u16::MAX);
    }
    if args.duration == 0 {
        bail!("--duration must be at least 1 second");
    }
    if args.tx_size < load::MIN_TX_BYTES || args.tx_size > hearsay_proxy::MAX_MESSAGE_BYTES / 2 {
        bail!(
            "--tx-size must be between {} and {} bytes",
            load::MIN_TX_BYTES,
            hearsay_proxy::MAX_MESSAGE_BYTES / 2
        );
    }
    if args.connections == 0 || args.connections > 64 {
        bail!("--connections must be between 1 and 64");
    }
    if args.external.is_none() && !(1..=MAX_LOCAL_NODES).contains(&args.nodes) {
        bail!("--nodes must be between 1 and {MAX_LOCAL_NODES}");
    }
    Ok(rates)
}

/// The nodes under load: started here, or already running.
struct Network {
    nodes: Vec<TestnetNode>,
    /// The local nodes' processes (none for --external).
    children: Vec<Child>,
    apps: Vec<Arc<TimingApp>>,
    clock: Clock,
    nonce: u32,
    /// The local network's folder and whether to remove it.
    folder: Option<(PathBuf, bool)>,
    external: Option<String>,
    app_servers: Vec<tokio::task::JoinHandle<()>>,
}

impl Network {
    async fn start(args: &BenchArgs) -> anyhow::Result<Network> {
        let clock = Clock::start();
        // Tells this run's transactions from any other's (an earlier run on the same nodes).
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
            ^ std::process::id().rotate_left(16);
        let (nodes, folder, external) = match &args.external {
            Some(file) => (
                testnet::read_testnet(file)?,
                None,
                Some(file.display().to_string()),
            ),
            None => {
                let (dir, remove) = match &args.dir {
                    Some(dir) => (dir.clone(), false),
                    None => (
                        std::env::temp_dir()
                            .join(format!("hearsay-bench-{}-{nonce:08x}", std::process::id())),
                        true,
                    ),
                };
                let nodes = testnet::write_testnet(&dir, args.nodes, [127, 0, 0, 1].into())?;
                (nodes, Some((dir, remove)), None)
            }
        };
        if nodes.is_empty() || nodes.len() > usize::from(u16::MAX) {
            bail!("the network must have between 1 and {} nodes", u16::MAX);
        }
        let mut network = Network {
            apps: (0..nodes.len())
                .map(|i| Arc::new(TimingApp::new(i as u16, nonce, clock)))
                .collect(),
            nodes,
            children: Vec::new(),
            clock,
            nonce,
            folder,
            external,
            app_servers: Vec::new(),
        };
        if let Err(e) = network.bring_up(args).await {
            network.stop().await;
            return Err(e);
        }
        Ok(network)
    }

    /// Serves the apps, starts the local nodes and waits until a transaction reached every app.
    async fn bring_up(&mut self, args: &BenchArgs) -> anyhow::Result<()> {
        for (node, app) in self.nodes.iter().zip(&self.apps) {
            let listener = tokio::net::TcpListener::bind(node.client_connect)
                .await
                .with_context(|| {
                    format!(
                        "cannot serve {}'s app on {}: is another app attached?",
                        node.moniker, node.client_connect
                    )
                })?;
            self.app_servers.push(tokio::spawn(hearsay_proxy::serve_app(
                listener,
                Arc::clone(app),
            )));
        }
        if let Some((dir, _)) = &self.folder {
            let exe = std::env::current_exe().context("cannot find the hearsay binary")?;
            for node in &self.nodes {
                let log = std::fs::File::create(dir.join(format!("{}.log", node.moniker)))?;
                let child = tokio::process::Command::new(&exe)
                    .arg("run")
                    .arg("--datadir")
                    .arg(&node.datadir)
                    .args(["--log", &args.node_log, "--no-leave"])
                    .stdin(std::process::Stdio::null())
                    .stdout(log.try_clone()?)
                    .stderr(log)
                    .kill_on_drop(true)
                    .spawn()
                    .with_context(|| format!("cannot start {}", node.moniker))?;
                self.children.push(child);
            }
        }
        // Warm up: one transaction through the first node must reach every app.
        let first = self.nodes[0].proxy_listen;
        let client = hearsay_proxy::ProxyClient::new(first.to_string());
        let started = Instant::now();
        loop {
            match client.submit_tx(b"hearsay bench warm-up").await {
                Ok(()) => break,
                Err(e) if started.elapsed() > START_TIMEOUT => {
                    bail!("{} did not take a transaction: {e}", self.nodes[0].moniker)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        while self.apps.iter().any(|a| a.transactions() == 0) {
            if started.elapsed() > START_TIMEOUT {
                let waiting: Vec<&str> = self
                    .nodes
                    .iter()
                    .zip(&self.apps)
                    .filter(|(_, a)| a.transactions() == 0)
                    .map(|(n, _)| n.moniker.as_str())
                    .collect();
                bail!(
                    "the network did not deliver a first transaction within {:?} to the apps \
                     of {}{}",
                    START_TIMEOUT,
                    waiting.join(", "),
                    self.folder.as_ref().map_or(String::new(), |(d, _)| format!(
                        " (node logs in {})",
                        d.display()
                    ))
                );
            }
            self.check_children()?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Fails if a local node has exited.
    fn check_children(&mut self) -> anyhow::Result<()> {
        for (node, child) in self.nodes.iter().zip(&mut self.children) {
            if let Ok(Some(status)) = child.try_wait() {
                bail!(
                    "{} exited ({status}); its log is in {}",
                    node.moniker,
                    self.folder
                        .as_ref()
                        .map_or_else(String::new, |(d, _)| d.display().to_string())
                );
            }
        }
        Ok(())
    }

    fn pid(&self, i: usize) -> Option<u32> {
        self.children.get(i).and_then(Child::id)
    }

    /// Stops the local nodes (SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]), the app servers,
    /// and removes a temporary folder.
    async fn stop(&mut self) {
        for child in &self.children {
            if let Some(pid) = child.id() {
                let _ = tokio::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .await;
            }
        }
        for child in &mut self.children {
            if tokio::time::timeout(STOP_TIMEOUT, child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        self.children.clear();
        for server in self.app_servers.drain(..) {
            server.abort();
        }
        if let Some((dir, remove)) = &self.folder {
            if *remove {
                let _ = std::fs::remove_dir_all(dir);
            } else {
                eprintln!("the network's datadirs and logs are in {}", dir.display());
            }
        }
        self.folder = None;
    }
}

/// Runs every rate in turn, printing each row as it completes.
async fn run_points(
    args: &BenchArgs,
    rates: &[u64],
    network: &Network,
) -> anyhow::Result<Vec<PointReport>> {
    let machine = Machine::describe();
    println!("{}", report::table_header());
    let mut points = Vec::new();
    for (i, &rate) in rates.iter().enumerate() {
        let point = run_point(args, network, i as u16, rate, &machine).await?;
        println!("{}", report::table_row(&point));
        points.push(point);
    }
    Ok(points)
}

/// Per node at a moment: its consensus counters, and CPU seconds when its process is visible.
async fn snapshot(network: &Network) -> anyhow::Result<Vec<(Counters, Option<f64>)>> {
    let mut out = Vec::new();
    for (i, node) in network.nodes.iter().enumerate() {
        let counters = system::counters(node.service_listen).await?;
        out.push((counters, network.pid(i).and_then(system::cpu_seconds)));
    }
    Ok(out)
}

async fn run_point(
    args: &BenchArgs,
    network: &Network,
    point: u16,
    rate: u64,
    machine: &Machine,
) -> anyhow::Result<PointReport> {
    let clock = network.clock;
    let nodes = network.nodes.len();
    let connections = args.connections;
    let before = snapshot(network).await?;
    let began = Instant::now();
    // Start slightly ahead so that every connection is open when the first is due.
    let start = clock.now() + 50_000_000;
    let load_nanos = args.duration * 1_000_000_000;
    let answer_deadline = start + load_nanos + args.drain * 1_000_000_000;
    let live = Arc::new(LiveCounts::default());
    let per_node = rate as f64 / nodes as f64;
    let per_node_count = (per_node * args.duration as f64).round() as u64;
    let mut tasks = Vec::new();
    for (node, target) in network.nodes.iter().enumerate() {
        for c in 0..connections as u64 {
            // Connection c sends seqs c, c + connections, …
            let count = per_node_count / connections as u64
                + u64::from(c < per_node_count % connections as u64);
            if count == 0 {
                continue;
            }
            let schedule = Schedule {
                nonce: network.nonce,
                point,
                node: node as u16,
                first: c,
                stride: connections as u64,
                count,
                rate: per_node / connections as f64,
                start: start + (c as f64 * 1e9 / per_node) as u64,
                tx_size: args.tx_size,
            };
            tasks.push((
                node,
                tokio::spawn(load::submit(
                    target.proxy_listen,
                    schedule,
                    clock,
                    answer_deadline,
                    Arc::clone(&live),
                )),
            ));
        }
    }
    let progress = Progress::new(rate, args.duration);
    let delivered_now = |network: &Network| -> u64 {
        network
            .apps
            .iter()
            .map(|a| a.with_point(point, |p| p.delivered_count))
            .sum()
    };
    // The load: show progress until every submitter is done.
    while tasks.iter().any(|(_, t)| !t.is_finished()) {
        progress.update(
            clock.now().saturating_sub(start),
            load_nanos,
            &live,
            delivered_now(network),
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut accepted: Vec<Vec<u64>> = vec![Vec::new(); nodes];
    let mut refused = vec![0u64; nodes];
    let mut first_refusal: Vec<Option<String>> = vec![None; nodes];
    for (node, task) in tasks {
        let answers = task.await.context("a submitter failed")??;
        if let Some(text) = &answers.first_refusal {
            tracing::debug!(node, refusal = %text, "the proxy refused transactions");
        }
        if first_refusal[node].is_none() {
            first_refusal[node] = answers.first_refusal;
        }
        accepted[node].extend(answers.accepted);
        refused[node] += answers.refused + answers.unanswered;
    }
    // The drain: wait for the accepted ones to arrive.
    let accepted_total: u64 = accepted.iter().map(|a| a.len() as u64).sum();
    let drain_end = Instant::now() + Duration::from_secs(args.drain);
    loop {
        let delivered = delivered_now(network);
        if delivered >= accepted_total || Instant::now() >= drain_end {
            break;
        }
        progress.draining(delivered, accepted_total);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    progress.finish();
    let after = snapshot(network).await?;
    let seconds = began.elapsed().as_secs_f64();

    let mut histogram = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?;
    let mut lost = 0;
    let mut duplicates = 0;
    let mut last_delivery = 0;
    let mut node_reports = Vec::new();
    for (i, node) in network.nodes.iter().enumerate() {
        let delivered = network.apps[i].with_point(point, |p| {
            histogram.add(&p.latency_us).map(|()| {
                lost += accepted[i].iter().filter(|&&s| !p.was_delivered(s)).count() as u64;
                duplicates += p.duplicates;
                last_delivery = last_delivery.max(p.last_delivery);
                p.delivered_count
            })
        })?;
        let pid = network.pid(i);
        let rss = pid.and_then(system::rss_kib);
        let (b, a) = (before[i], after[i]);
        node_reports.push(NodeReport {
            moniker: node.moniker.clone(),
            pid,
            cpu_percent: b.1.zip(a.1).map(|(b, a)| (a - b) / seconds * 100.0),
            peak_rss_mib: rss.map(|r| r.1 as f64 / 1024.0),
            rss_mib: rss.map(|r| r.0 as f64 / 1024.0),
            events_per_sec: a.0.consensus_events.saturating_sub(b.0.consensus_events) as f64
                / seconds,
            rounds_per_sec: a
                .0
                .last_consensus_round
                .saturating_sub(b.0.last_consensus_round) as f64
                / seconds,
            accepted: accepted[i].len() as u64,
            refused: refused[i],
            first_refusal: first_refusal[i].take(),
            delivered,
        });
    }
    let mean = |f: fn(&NodeReport) -> f64| {
        node_reports.iter().map(f).sum::<f64>() / node_reports.len() as f64
    };
    let delivered_total = histogram.len();
    let window = last_delivery.saturating_sub(start) as f64 / 1e9;
    Ok(PointReport {
        committed_tps: delivered_total as f64 / window.max(args.duration as f64),
        latency_ms: Latency::of(&histogram),
        events_per_sec: mean(|n| n.events_per_sec),
        rounds_per_sec: mean(|n| n.rounds_per_sec),
        offered: per_node_count * nodes as u64,
        accepted: accepted_total,
        refused: refused.iter().sum(),
        lost,
        duplicates,
        nodes: node_reports,
        config: RunConfig {
            nodes,
            rate,
            duration_s: args.duration,
            tx_size: args.tx_size,
            connections,
            external: network.external.clone(),
        },
        commit: option_env!("HEARSAY_GIT_COMMIT")
            .unwrap_or("unknown")
            .to_string(),
        machine: machine.clone(),
    })
}

/// A progress bar on a terminal; nothing otherwise.
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new(rate: u64, seconds: u64) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new(seconds * 1000);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {elapsed_precise} {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{rate} tx/s"));
        Progress(Some(bar))
    }

    fn update(&self, elapsed_nanos: u64, total_nanos: u64, live: &LiveCounts, delivered: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(elapsed_nanos.min(total_nanos) / 1_000_000);
            bar.set_message(format!(
                "accepted {} refused {} delivered {delivered}",
                live.accepted.load(Ordering::Relaxed),
                live.refused.load(Ordering::Relaxed),
            ));
        }
    }

    fn draining(&self, delivered: u64, accepted: u64) {
        if let Some(bar) = &self.0 {
            bar.set_message(format!("draining: delivered {delivered} of {accepted}"));
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// Writes the JSON and the plot, if asked for (the plot by default with a sweep).
fn write_outputs(args: &BenchArgs, points: &[PointReport]) -> anyhow::Result<()> {
    if let Some(path) = &args.json {
        let json = if args.sweep.is_empty() {
            serde_json::to_string_pretty(&points[0])?
        } else {
            serde_json::to_string_pretty(points)?
        };
        write_file(path, json + "\n")?;
    }
    let plot = args.plot.clone().or_else(|| {
        (!args.sweep.is_empty()).then(|| {
            args.json
                .as_ref()
                .map_or_else(|| PathBuf::from("bench.svg"), |j| j.with_extension("svg"))
        })
    });
    if let Some(path) = plot {
        write_file(&path, report::svg_plot(points))?;
    }
    Ok(())
}

fn write_file(path: &Path, contents: String) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn parse(line: &[&str]) -> BenchArgs {
        Cli::try_parse_from(std::iter::once("bench").chain(line.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn a_sweep_replaces_the_rate() {
        assert_eq!(check(&parse(&[])).unwrap(), vec![1000]);
        assert_eq!(
            check(&parse(&["--sweep", "500,2000,8000"])).unwrap(),
            vec![500, 2000, 8000]
        );
    }

    #[test]
    fn impossible_settings_are_refused_with_the_flag_named() {
        for (line, flag) in [
            (&["--rate", "0"][..], "rates"),
            (&["--sweep", "100,0"], "rates"),
            (&["--duration", "0"], "--duration"),
            (&["--tx-size", "31"], "--tx-size"),
            (&["--connections", "0"], "--connections"),
            (&["--nodes", "0"], "--nodes"),
        ] {
            let error = check(&parse(line)).unwrap_err().to_string();
            assert!(error.contains(flag), "{line:?}: {error}");
        }
        assert!(Cli::try_parse_from(["bench", "--sweep", "1000,fast"]).is_err());
    }
}
