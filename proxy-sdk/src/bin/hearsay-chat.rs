//! `hearsay-chat`: Babble's `dummy` chat app on the Hearsay socket proxy.
//!
//! Reads lines from stdin and submits each as the transaction `"<name>: <line>"`; prints every
//! committed transaction to stdout as `[block <index>] <transaction>`; logs to stderr. The
//! state hash is `h = sha256(h ‖ sha256(tx))` folded over every committed transaction from an
//! empty `h`; the snapshot of block `i` is the state hash after block `i`; restoring sets the
//! state hash to the snapshot; every internal transaction is accepted. End of stdin only stops
//! the input: the app serves blocks until SIGINT or SIGTERM.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context as _;
use clap::Parser;
use hearsay_proxy::{serve_app, AppHandler, Block, CommitResponse, NodeState, ProxyClient};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tracing::{info, warn};

/// Babble's dummy chat app, for Hearsay.
#[derive(Debug, Parser)]
#[command(name = "hearsay-chat", version)]
struct Args {
    /// Name put in front of every message.
    #[arg(long, default_value = "client")]
    name: String,
    /// Where to serve the node's State.* calls (the node's --client-connect).
    #[arg(long, default_value = "127.0.0.1:1339")]
    client_listen: String,
    /// The node's --proxy-listen address, for submitting transactions.
    #[arg(long, default_value = "127.0.0.1:1338")]
    proxy_connect: String,
    /// Log filter for stderr: error, warn, info, debug or any `tracing` directive.
    #[arg(long, default_value = "info", env = "RUST_LOG")]
    log: String,
}

/// `sha256(h ‖ sha256(tx))`: one step of the state hash.
fn fold_state_hash(state_hash: &[u8], tx: &[u8]) -> Vec<u8> {
    let tx_hash = Sha256::digest(tx);
    let mut hasher = Sha256::new();
    hasher.update(state_hash);
    hasher.update(tx_hash);
    hasher.finalize().to_vec()
}

/// The chat's state: just the hash, plus the snapshot of each committed block.
#[derive(Debug, Default)]
struct ChatState {
    state_hash: Vec<u8>,
    snapshots: BTreeMap<u64, Vec<u8>>,
}

/// Answers the node; prints committed transactions to stdout.
#[derive(Debug, Default)]
struct Chat {
    state: Mutex<ChatState>,
}

impl Chat {
    fn state(&self) -> MutexGuard<'_, ChatState> {
        // A panic elsewhere cannot leave the state half-written (every update is one
        // assignment), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The transaction as one printable line: control characters escaped, invalid UTF-8 replaced.
fn printable(tx: &[u8]) -> String {
    String::from_utf8_lossy(tx)
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

impl AppHandler for Chat {
    fn commit_block(&self, block: &Block) -> Result<CommitResponse, String> {
        let index = block.body.index;
        let mut state = self.state();
        let mut hash = state.state_hash.clone();
        let mut out = std::io::stdout().lock();
        for tx in &block.body.transactions {
            hash = fold_state_hash(&hash, tx);
            // A closed stdout must not stop consensus: printing is best effort.
            let _ = writeln!(out, "[block {index}] {}", printable(tx));
        }
        let _ = out.flush();
        for itx in &block.body.internal_transactions {
            info!(
                block = index,
                kind = %itx.body.kind,
                moniker = %printable(itx.body.peer.moniker.as_bytes()),
                "accepting internal transaction"
            );
        }
        state.state_hash = hash.clone();
        state.snapshots.insert(index, hash.clone());
        Ok(CommitResponse::accept_all(hash, block))
    }

    fn get_snapshot(&self, block_index: u64) -> Result<Vec<u8>, String> {
        self.state()
            .snapshots
            .get(&block_index)
            .cloned()
            .ok_or_else(|| format!("Snapshot {block_index} not found"))
    }

    fn restore(&self, snapshot: &[u8]) -> Result<Vec<u8>, String> {
        self.state().state_hash = snapshot.to_vec();
        info!("state restored from a snapshot");
        Ok(snapshot.to_vec())
    }

    fn on_state_changed(&self, state: NodeState) {
        info!(%state, "node state changed");
    }
}

/// Submits `"<name>: <line>"` for every non-empty line of stdin until it ends.
async fn read_input(name: String, proxy: ProxyClient) {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => {
                let line = line.trim_end_matches('\r');
                if line.is_empty() {
                    continue;
                }
                let tx = format!("{name}: {line}");
                if let Err(e) = proxy.submit_tx(tx.as_bytes()).await {
                    warn!(error = %e, node = proxy.addr(), "transaction not submitted");
                }
            }
            Ok(None) => {
                info!("end of input; still serving blocks until SIGINT or SIGTERM");
                return;
            }
            Err(e) => {
                warn!(error = %e, "cannot read stdin; still serving blocks");
                return;
            }
        }
    }
}

/// Waits for SIGINT or SIGTERM. The handlers are installed by [`Shutdown::install`], before
/// the app says it is ready, so that a signal sent right after cannot kill it uncleanly.
struct Shutdown {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Shutdown {
    fn install() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())
                    .context("installing the SIGINT handler")?,
                terminate: signal(SignalKind::terminate())
                    .context("installing the SIGTERM handler")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn wait(mut self) -> anyhow::Result<()> {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log)
                .with_context(|| format!("invalid --log filter {:?}", args.log))?,
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(run(args));
    // The stdin reader is a blocking read that cannot be cancelled: do not wait for it.
    runtime.shutdown_background();
    result
}

async fn run(args: Args) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&args.client_listen)
        .await
        .with_context(|| format!("cannot listen on --client-listen {}", args.client_listen))?;
    let local = listener
        .local_addr()
        .context("reading the --client-listen address")?;
    let shutdown = Shutdown::install()?;
    info!(client_listen = %local, proxy_connect = %args.proxy_connect, name = %args.name, "chat app ready");

    let server = tokio::spawn(serve_app(listener, Arc::new(Chat::default())));
    let input = tokio::spawn(read_input(
        args.name.clone(),
        ProxyClient::new(args.proxy_connect.clone()),
    ));
    shutdown.wait().await?;
    info!("shutting down");
    input.abort();
    server.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_hash_matches_the_rule() {
        // python3 -c "import hashlib as h;s=lambda b:h.sha256(b).digest();\
        //   print(s(s(s(b'a: hi'))+s(b'b: yo')).hex())"
        const EXPECTED: &str = "72bfa2b78b3e2b8961a785e00cb72a796fe2c30de2560a2ddb401be27adb9e8e";
        let h = fold_state_hash(&fold_state_hash(&[], b"a: hi"), b"b: yo");
        let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, EXPECTED);
    }

    #[test]
    fn printable_escapes_control_characters() {
        assert_eq!(printable(b"a\x1b[2Jb\n"), "a\\u{1b}[2Jb\\n");
        assert_eq!(printable(&[0x61, 0xff]), "a\u{fffd}");
    }
}
