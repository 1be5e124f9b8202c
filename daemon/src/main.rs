//! The `hearsay` command: the consensus daemon and its tools.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod dag;
mod sim;

/// Hearsay: a hashgraph consensus daemon.
#[derive(Parser)]
#[command(name = "hearsay", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Play a DAG from a play list and print its consensus as JSON.
    Dag(dag::DagArgs),
    /// Run the deterministic, seeded network simulator with Byzantine validators.
    Sim(sim::SimArgs),
    /// Print the version and git commit.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
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
