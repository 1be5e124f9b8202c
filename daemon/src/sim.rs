//! `hearsay sim` (being written).

use std::process::ExitCode;

/// Arguments of `hearsay sim`.
#[derive(clap::Args)]
pub struct SimArgs {}

/// Runs `hearsay sim`.
pub fn run(_args: SimArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not written yet")
}
