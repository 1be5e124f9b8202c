//! The `hearsay` command: the consensus daemon and its tools.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use hearsay::{bench, config, dag, datadir, node, sim, testnet};

/// Hearsay: a hashgraph consensus daemon.
#[derive(Parser)]
#[command(name = "hearsay", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node from its datadir.
    Run(Box<config::RunArgs>),
    /// Create a key pair (priv_key, key.pub) in the datadir.
    Keygen(datadir::KeygenArgs),
    /// Write N ready datadirs for a local network, and testnet.json describing them.
    Testnet(testnet::TestnetArgs),
    /// Play a DAG from a play list and print its consensus as JSON.
    Dag(dag::DagArgs),
    /// Run the deterministic, seeded network simulator with Byzantine validators.
    Sim(sim::SimArgs),
    /// Measure a network under an open-loop load: throughput, latency, CPU and memory.
    Bench(bench::BenchArgs),
    /// Print the version and git commit.
    Version,
}

/// jemalloc for the whole process, RocksDB's C++ included (its `malloc` replaces glibc's): a
/// node allocates and frees tens of MB per second in sizes that drift with the load, and
/// glibc's arenas kept a growing share of it (README, "Soak").
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run_node(*args),
        Command::Keygen(args) => datadir::keygen(args).map(|()| ExitCode::SUCCESS),
        Command::Testnet(args) => testnet::run(args).map(|()| ExitCode::SUCCESS),
        Command::Dag(args) => dag::run(args),
        Command::Sim(args) => sim::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Version => {
            println!(
                "hearsay {} ({})",
                env!("CARGO_PKG_VERSION"),
                option_env!("HEARSAY_GIT_COMMIT").unwrap_or("unknown commit")
            );
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn run_node(args: config::RunArgs) -> anyhow::Result<ExitCode> {
    let config = args.resolve()?;
    let filter = match config.log.as_str() {
        "debug" | "info" | "warn" | "error" | "trace" => {
            format!("{},quinn=warn,rustls=warn", config.log)
        }
        other => anyhow::bail!("--log {other:?}: use debug, info, warn or error"),
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    for key in &config.ignored_keys {
        tracing::warn!("ignoring {key}: this version does not support it yet");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(node::run(config))?;
    Ok(ExitCode::SUCCESS)
}
