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
}

/// Delivers blocks from `blocks` to the app on `--client-connect`, and node-state changes.
pub async fn deliver_loop(
    shared: Arc<Shared>,
    target: App,
    mut blocks: mpsc::UnboundedReceiver<hashgraph::Block>,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = match target {
        App::Remote => Target::Remote(AppClient::with_config(
            shared.config.client_connect.to_string(),
            ClientConfig {
                timeout: Duration::from_secs(5),
                ..ClientConfig::default()
            },
        )),
        App::InProcess(handler) => Target::InProcess(handler),
    };
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

/// The app as the delivery loop calls it.
enum Target {
    Remote(AppClient),
    InProcess(Arc<dyn hearsay_proxy::AppHandler>),
}

impl Target {
    async fn commit_block(
        &self,
        block: &hearsay_proxy::Block,
    ) -> Result<hearsay_proxy::CommitResponse, String> {
        match self {
            Target::Remote(client) => client.commit_block(block).await.map_err(|e| e.to_string()),
            Target::InProcess(handler) => {
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
            Target::Remote(client) => client
                .on_state_changed(state)
                .await
                .map_err(|e| e.to_string()),
            Target::InProcess(handler) => {
                let handler = Arc::clone(handler);
                tokio::task::spawn_blocking(move || handler.on_state_changed(state))
                    .await
                    .map_err(|e| format!("the app's handler panicked: {e}"))
            }
        }
    }
}
