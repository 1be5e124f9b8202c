//! The `hearsay` command: the consensus daemon and its tools.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use hearsay::{config, dag, datadir, node, sim, testnet};

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
    /// Print the version and git commit.
    Version,
}

/// glibc's allocator settings for a long-running node (README, "Soak"): two arenas instead of
/// up to eight per core. Each arena keeps the memory freed in it for reuse by its threads, so
/// with many arenas the resident size ratchets up with every burst (a soak measured 28 of
/// 65 MiB of heap free but held, in nine arenas; with two, 8 of 51 MiB).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MALLOC_TUNABLES: &str = "glibc.malloc.arena_max=2";

/// Starts this command again in place (same process id, same arguments and descriptors) with
/// [`MALLOC_TUNABLES`] in `GLIBC_TUNABLES`, unless the environment sets that variable already
/// (the operator's choice wins, and the second start does not loop). glibc reads its tunables
/// only when a process starts, and this way needs no unsafe code.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn restart_with_malloc_tunables() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("GLIBC_TUNABLES").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let error = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("GLIBC_TUNABLES", MALLOC_TUNABLES)
        .exec();
    eprintln!(
        "warning: cannot restart with the allocator settings ({error}); going on without them"
    );
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn restart_with_malloc_tunables() {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Run(_)) {
        restart_with_malloc_tunables();
    }
    let result = match cli.command {
        Command::Run(args) => run_node(*args),
        Command::Keygen(args) => datadir::keygen(args).map(|()| ExitCode::SUCCESS),
        Command::Testnet(args) => testnet::run(args).map(|()| ExitCode::SUCCESS),
        Command::Dag(args) => dag::run(args),
        Command::Sim(args) => sim::run(args),
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
