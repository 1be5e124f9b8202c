//! `hearsay dag FILE`: plays a DAG from a play list (`vectors/README.md`) through the real
//! consensus core and prints what it decided as JSON.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use hearsay_testkit::playlist::{PlayList, MAX_PLAYLIST_BYTES};

/// Arguments of `hearsay dag`.
#[derive(clap::Args)]
pub struct DagArgs {
    /// The play list (JSON); `-` reads standard input.
    file: PathBuf,
    /// Print compact JSON on one line instead of indented JSON.
    #[arg(long)]
    compact: bool,
}

/// Runs `hearsay dag`. A file that cannot be read or played is reported on stderr with exit
/// status 2.
pub fn run(args: DagArgs) -> anyhow::Result<ExitCode> {
    let played = match read(&args.file).and_then(|bytes| {
        PlayList::from_json(&bytes)
            .and_then(|list| list.play())
            .map_err(anyhow::Error::from)
    }) {
        Ok(played) => played,
        Err(error) => {
            eprintln!("error: {}: {error:#}", args.file.display());
            return Ok(ExitCode::from(2));
        }
    };
    let output = played.output();
    let mut stdout = std::io::stdout().lock();
    if args.compact {
        serde_json::to_writer(&mut stdout, &output)?;
    } else {
        serde_json::to_writer_pretty(&mut stdout, &output)?;
    }
    writeln!(stdout)?;
    Ok(ExitCode::SUCCESS)
}

/// Reads the file (or stdin), refusing more than the play-list limit.
fn read(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let limit = MAX_PLAYLIST_BYTES as u64 + 1;
    let mut bytes = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .take(limit)
            .read_to_end(&mut bytes)
            .context("reading standard input")?;
    } else {
        std::fs::File::open(path)
            .context("cannot open the play list")?
            .take(limit)
            .read_to_end(&mut bytes)
            .context("cannot read the play list")?;
    }
    Ok(bytes)
}
