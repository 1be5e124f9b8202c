//! Block delivery to the app: in order, each block exactly once the app has answered. A slow,
//! crashed or absent app delays delivery (with retries and backoff) but never loses or skips
//! a block; `/stats` and the log say when it is behind.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearsay_proxy::AppClient;
use hearsay_proxy::ClientConfig;
use tokio::sync::{mpsc, watch};

use super::{convert, App, NodeState, Shared};

/// First wait after a failed delivery; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What the app side looks like, for `/stats` and `/metrics`.
#[derive(Default, Debug)]
pub struct DeliveryStatus {
    /// Blocks the app acknowledged.
    pub delivered: AtomicU64,
    /// Blocks made by consensus and not yet acknowledged.
    pub waiting: AtomicU64,
    /// Failed delivery attempts.
    pub failures: AtomicU64,
    /// Whether the app is currently not answering.
    pub app_down: AtomicBool,
    /// The last delivery error.
    pub last_error: Mutex<Option<String>>,
    /// Set by fast-sync before it restores the app at an anchored block: blocks up to this
    /// index are not delivered (the snapshot holds them). `u64::MAX`: none restored.
    pub restored_at: AtomicU64,
}

impl DeliveryStatus {
    /// A status with nothing delivered and nothing restored.
    pub fn new() -> DeliveryStatus {
        DeliveryStatus {
            restored_at: AtomicU64::new(u64::MAX),
            ..DeliveryStatus::default()
        }
    }
}

/// Delivers blocks from `blocks` to the app, and node-state changes.
pub async fn deliver_loop(
    shared: Arc<Shared>,
    mut blocks: mpsc::UnboundedReceiver<hashgraph::Block>,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = &shared.app;
    let status = &shared.delivery;
    let mut states = shared.state.clone();
    loop {
        let block = tokio::select! {
            b = blocks.recv() => match b { Some(b) => b, None => return },
            changed = states.changed() => {
                if changed.is_err() { return; }
                let state: NodeState = *states.borrow_and_update();
                // Best effort: a state change is information, not data to keep.
                if let Err(e) = app.on_state_changed(state).await {
                    tracing::debug!(error = %e, "the app did not take the state change");
                }
                continue;
            }
            _ = shutdown.changed() => return,
        };
        let restored_at = status.restored_at.load(Ordering::Relaxed);
        if restored_at != u64::MAX && block.body.index <= restored_at {
            tracing::debug!(block = block.body.index, "in the restored snapshot already");
            continue;
        }
        status.waiting.fetch_add(1, Ordering::Relaxed);
        let json = convert::block_json(&block);
        let mut backoff = FIRST_BACKOFF;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            match app.commit_block(&json).await {
                Ok(answer) => {
                    let receipts = convert::receipts(&block, &answer);
                    if shared
                        .core
                        .committed(block.body.index, answer.state_hash, receipts)
                        .await
                        .is_err()
                    {
                        return;
                    }
                    status.delivered.fetch_add(1, Ordering::Relaxed);
                    status.waiting.fetch_sub(1, Ordering::Relaxed);
                    if status.app_down.swap(false, Ordering::Relaxed) {
                        tracing::info!(
                            block = block.body.index,
                            attempts,
                            "the app answers again; delivery resumed"
                        );
                    }
                    break;
                }
                Err(e) => {
                    status.failures.fetch_add(1, Ordering::Relaxed);
                    *status.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(format!("block {}: {e}", block.body.index));
                    if !status.app_down.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            app = %shared.config.client_connect,
                            block = block.body.index,
                            error = %e,
                            "the app did not take the block; retrying until it does (no block is skipped)"
                        );
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// The app, as the node calls it: over the socket proxy or in process.
pub enum AppLink {
    /// An app process at `--client-connect`.
    Remote(AppClient),
    /// An app in this process.
    InProcess(Arc<dyn hearsay_proxy::AppHandler>),
}

impl AppLink {
    /// The link to `app` for a node with `config`.
    pub fn new(app: App, config: &crate::config::Config) -> AppLink {
        match app {
            App::Remote => AppLink::Remote(AppClient::with_config(
                config.client_connect.to_string(),
                ClientConfig {
                    timeout: Duration::from_secs(5),
                    ..ClientConfig::default()
                },
            )),
            App::InProcess(handler) => AppLink::InProcess(handler),
        }
    }

    /// `State.GetSnapshot`: the app's snapshot as of block `index`.
    pub async fn get_snapshot(&self, index: u64) -> Result<Vec<u8>, String> {
        match self {
            AppLink::Remote(client) => client.get_snapshot(index).await.map_err(|e| e.to_string()),
            AppLink::InProcess(handler) => {
                let handler = Arc::clone(handler);
                tokio::task::spawn_blocking(move || handler.get_snapshot(index))
                    .await
                    .map_err(|e| format!("the app's handler panicked: {e}"))?
            }
        }
    }

    /// `State.Restore`: replaces the app's state by `snapshot`; returns its state hash.
    pub async fn restore(&self, snapshot: Vec<u8>) -> Result<Vec<u8>, String> {
        match self {
            AppLink::Remote(client) => client.restore(&snapshot).await.map_err(|e| e.to_string()),
            AppLink::InProcess(handler) => {
                let handler = Arc::clone(handler);
                tokio::task::spawn_blocking(move || handler.restore(&snapshot))
                    .await
                    .map_err(|e| format!("the app's handler panicked: {e}"))?
            }
        }
    }

    async fn commit_block(
        &self,
        block: &hearsay_proxy::Block,
    ) -> Result<hearsay_proxy::CommitResponse, String> {
        match self {
            AppLink::Remote(client) => client.commit_block(block).await.map_err(|e| e.to_string()),
            AppLink::InProcess(handler) => {
                let handler = Arc::clone(handler);
                let block = block.clone();
                // The handler is the app's code: keep it off the async threads, and turn a
                // panic into an error (the block is retried, never skipped).
                tokio::task::spawn_blocking(move || handler.commit_block(&block))
                    .await
                    .map_err(|e| format!("the app's handler panicked: {e}"))?
            }
        }
    }

    async fn on_state_changed(&self, state: NodeState) -> Result<(), String> {
        match self {
            AppLink::Remote(client) => client
                .on_state_changed(state)
                .await
                .map_err(|e| e.to_string()),
            AppLink::InProcess(handler) => {
                let handler = Arc::clone(handler);
                tokio::task::spawn_blocking(move || handler.on_state_changed(state))
                    .await
                    .map_err(|e| format!("the app's handler panicked: {e}"))
            }
        }
    }
}
