//! `hearsay sim`: sweeps seeds of the deterministic network simulator
//! ([`hearsay_testkit::sim`]) over one or more network sizes, with Byzantine validators.
//!
//! Prints one summary line per configuration. On a violation it prints the seed and the exact
//! command that replays that seed alone, and exits with status 1. Runs are independent and
//! deterministic, so seeds are spread over threads; the output does not depend on that.

use std::fmt::Write as _;
use std::ops::Range;
use std::panic::AssertUnwindSafe;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use anyhow::{bail, Context as _};
use hearsay_testkit::sim::{self, Behaviour, SimConfig, SimResult};

/// Arguments of `hearsay sim`.
#[derive(clap::Args)]
pub struct SimArgs {
    /// Numbers of validators, comma-separated: one configuration each (e.g. 1,4,7,10).
    #[arg(long, value_delimiter = ',', default_value = "4")]
    nodes: Vec<usize>,
    /// Byzantine validators in each configuration [default: the maximum, ⌊(n−1)/3⌋].
    #[arg(long)]
    byzantine: Option<usize>,
    /// Seeds to run: a count N (seeds 0..N), a range A..B (B excluded) or A..=B.
    #[arg(long, default_value = "100")]
    seeds: Seeds,
    /// Events created per run before the load stops and the network drains. The default
    /// keeps `--nodes 1,4,7,10 --seeds 0..500` (the CI sweep) under three minutes on two
    /// cores; use more for deeper runs.
    #[arg(long, default_value_t = 300)]
    events: usize,
    /// Behaviours Byzantine validators draw from, comma-separated (forking, withholding,
    /// invalid-signatures, garbage) [default: all of them].
    #[arg(long, value_delimiter = ',')]
    behaviour: Vec<Behaviour>,
    /// Partitions per run [default: drawn from the seed, 0 to 2].
    #[arg(long)]
    partitions: Option<usize>,
    /// Rounds of history each validator keeps behind its last consensus round.
    #[arg(long, default_value_t = sim::DEFAULT_EVICT_LAG)]
    evict_lag: u64,
    /// Sync by `known()` alone: do not ask peers for missing parents by id.
    #[arg(long)]
    no_fetch: bool,
    /// Worker threads [default: the available parallelism].
    #[arg(long)]
    threads: Option<usize>,
    /// Print one line per run.
    #[arg(long)]
    verbose: bool,
}

/// A set of seeds: `N` (0..N), `A..B` or `A..=B`.
#[derive(Clone, Debug)]
struct Seeds(Range<u64>);

impl FromStr for Seeds {
    type Err = String;

    fn from_str(s: &str) -> Result<Seeds, String> {
        let parse = |t: &str| {
            t.trim()
                .parse::<u64>()
                .map_err(|e| format!("bad seed {t:?} in {s:?}: {e}"))
        };
        let range = if let Some((a, b)) = s.split_once("..=") {
            parse(a)?..parse(b)?.checked_add(1).ok_or("seed range too large")?
        } else if let Some((a, b)) = s.split_once("..") {
            parse(a)?..parse(b)?
        } else {
            0..parse(s)?
        };
        if range.is_empty() {
            return Err(format!("seed range {s:?} is empty"));
        }
        Ok(Seeds(range))
    }
}

/// Runs `hearsay sim`.
pub fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    if args.nodes.is_empty() {
        bail!("--nodes needs at least one validator count");
    }
    for &n in &args.nodes {
        if n == 0 {
            bail!("--nodes: a network needs at least one validator");
        }
        if let Some(b) = args.byzantine {
            let max = SimConfig::max_byzantine(n);
            if b > max {
                bail!(
                    "--byzantine {b} is too many for {n} validators: consensus tolerates at \
                     most ⌊(n−1)/3⌋ = {max}"
                );
            }
        }
    }
    if args.events == 0 {
        bail!("--events must be at least 1");
    }
    let threads = match args.threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(t) => t,
        None => std::thread::available_parallelism().map_or(1, |p| p.get()),
    };

    let mut failed = false;
    for &n in &args.nodes {
        let byzantine = args.byzantine.unwrap_or(SimConfig::max_byzantine(n));
        let configs: Vec<SimConfig> = args
            .seeds
            .0
            .clone()
            .map(|seed| SimConfig {
                byzantine,
                behaviours: if args.behaviour.is_empty() {
                    Behaviour::ALL.to_vec()
                } else {
                    args.behaviour.clone()
                },
                partitions: args.partitions,
                evict_lag: args.evict_lag,
                fetch_missing: !args.no_fetch,
                ..SimConfig::new(n, args.events, seed)
            })
            .collect();
        let outcomes = run_all(&configs, threads)?;
        let mut results = Vec::with_capacity(outcomes.len());
        let mut panics = 0;
        for (config, outcome) in configs.iter().zip(outcomes) {
            match outcome {
                Ok(result) => {
                    if args.verbose {
                        println!("{}", run_line(&result));
                    }
                    if !result.passed() {
                        failed = true;
                        println!(
                            "VIOLATION nodes={n} byzantine={byzantine} seed={} [{}]",
                            config.seed,
                            describe(&result.byzantine)
                        );
                        for v in &result.violations {
                            println!("  {v}");
                        }
                        println!(
                            "  replay: {}",
                            replay_command(&args, n, byzantine, config.seed)
                        );
                    }
                    results.push(result);
                }
                Err(message) => {
                    failed = true;
                    panics += 1;
                    println!(
                        "PANIC nodes={n} byzantine={byzantine} seed={} [{}]",
                        config.seed,
                        describe(&sim::byzantine_roles(config))
                    );
                    for line in message.lines() {
                        println!("  {line}");
                    }
                    println!(
                        "  replay: {}",
                        replay_command(&args, n, byzantine, config.seed)
                    );
                }
            }
        }
        println!("{}", summary_line(n, byzantine, &results, panics));
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// "node 2 forking, node 5 garbage".
fn describe(byzantine: &[(usize, Behaviour)]) -> String {
    let parts: Vec<String> = byzantine
        .iter()
        .map(|(i, b)| format!("node {i} {b}"))
        .collect();
    parts.join(", ")
}

thread_local! {
    /// The message of the last panic on this thread, recorded by the hook `run_all` installs.
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Runs every configuration on `threads` workers; outcomes in the order of `configs`. A run
/// that panics (a bug in the core or the simulator) yields its panic message instead of
/// stopping the sweep.
fn run_all(
    configs: &[SimConfig],
    threads: usize,
) -> anyhow::Result<Vec<Result<SimResult, String>>> {
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<Result<SimResult, String>>>> =
        Mutex::new((0..configs.len()).map(|_| None).collect());
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let message = info.to_string();
        LAST_PANIC.with(|last| *last.borrow_mut() = Some(message));
    }));
    std::thread::scope(|scope| {
        for _ in 0..threads.min(configs.len()) {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(config) = configs.get(k) else { break };
                let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| sim::run(config)))
                    .map_err(|_| {
                        LAST_PANIC
                            .with(|last| last.borrow_mut().take())
                            .unwrap_or_else(|| "panicked".to_owned())
                    });
                slots.lock().unwrap_or_else(PoisonError::into_inner)[k] = Some(outcome);
            });
        }
    });
    std::panic::set_hook(default_hook);
    slots
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .into_iter()
        .map(|r| r.context("a run produced no result"))
        .collect()
}

fn run_line(r: &SimResult) -> String {
    let mut line = format!(
        "seed {}: blocks {}..{} events {} rounds {} txs {} forks {} rejected {} refused {} pending {} \
         lost {} cut {} partitions {} drain {} peak-memory {}",
        r.config.seed,
        r.blocks_min,
        r.blocks_max,
        r.events,
        r.rounds,
        r.transactions,
        r.forks_detected,
        r.rejected_events,
        r.refused_honest_events,
        r.pending_events,
        r.messages_lost,
        r.messages_cut,
        r.partitions,
        r.drain_events,
        r.peak_events_in_memory,
    );
    if !r.byzantine.is_empty() {
        let names: Vec<&str> = r.byzantine.iter().map(|(_, b)| b.name()).collect();
        let _ = write!(line, " byzantine [{}]", names.join(","));
    }
    line.push_str(if r.passed() { " ok" } else { " VIOLATION" });
    line
}

fn summary_line(n: usize, byzantine: usize, results: &[SimResult], panics: usize) -> String {
    let mut blocks: Vec<usize> = results.iter().map(|r| r.blocks_min).collect();
    blocks.sort_unstable();
    let forks: u64 = results.iter().map(|r| r.forks_detected).sum();
    let fork_runs = results.iter().filter(|r| r.forks_detected > 0).count();
    let violations: usize = results.iter().map(|r| r.violations.len()).sum();
    let failing = results.iter().filter(|r| !r.passed()).count() + panics;
    format!(
        "nodes={n} byzantine={byzantine} seeds={} blocks min={} median={} forks detected={} \
         (in {} runs) violations={} (in {} seeds) panics={}",
        results.len() + panics,
        blocks.first().copied().unwrap_or(0),
        blocks.get(blocks.len() / 2).copied().unwrap_or(0),
        forks,
        fork_runs,
        violations,
        failing,
        panics,
    )
}

/// The command that replays one seed of one configuration.
fn replay_command(args: &SimArgs, n: usize, byzantine: usize, seed: u64) -> String {
    let mut cmd = format!(
        "hearsay sim --nodes {n} --byzantine {byzantine} --seeds {seed}..={seed} --events {}",
        args.events
    );
    if !args.behaviour.is_empty() {
        let names: Vec<&str> = args.behaviour.iter().map(|b| b.name()).collect();
        let _ = write!(cmd, " --behaviour {}", names.join(","));
    }
    if let Some(p) = args.partitions {
        let _ = write!(cmd, " --partitions {p}");
    }
    if args.evict_lag != sim::DEFAULT_EVICT_LAG {
        let _ = write!(cmd, " --evict-lag {}", args.evict_lag);
    }
    if args.no_fetch {
        cmd.push_str(" --no-fetch");
    }
    cmd.push_str(" --verbose");
    cmd
}
