//! `hearsay dag` (being written).

use std::process::ExitCode;

/// Arguments of `hearsay dag`.
#[derive(clap::Args)]
pub struct DagArgs {}

/// Runs `hearsay dag`.
pub fn run(_args: DagArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not written yet")
}
