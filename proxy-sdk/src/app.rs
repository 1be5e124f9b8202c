//! The app's side: submitting transactions to the node, and answering the node's `State.*`
//! calls.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;
use tokio::net::TcpListener;

use crate::jsonrpc::Request;
use crate::methods;
use crate::rpc::{serve, ClientConfig, ClientError, Dispatch, RpcClient, ServerConfig};
use crate::types::{Block, CommitResponse, NodeState};

/// Error of [`ProxyClient::submit_tx`]. [`ClientError::Remote`] carries the node's refusal,
/// e.g. a full transaction pool (backpressure: try again later).
pub type ProxyError = ClientError;

/// The app's connection to the node's `--proxy-listen` address.
///
/// Keeps one connection, dialled on first use. If the node closed it in the meantime, the next
/// call reconnects and, when the old connection turns out dead before any answer, sends the
/// request once more on the new one. Calls are serialized; share the client behind an `Arc`.
pub struct ProxyClient {
    rpc: RpcClient,
}

impl ProxyClient {
    /// A client for the node at `addr` (`host:port`), with the default [`ClientConfig`].
    pub fn new(addr: impl Into<String>) -> Self {
        Self::with_config(addr, ClientConfig::default())
    }

    /// A client for the node at `addr` with the given deadline and size limit.
    pub fn with_config(addr: impl Into<String>, config: ClientConfig) -> Self {
        Self {
            rpc: RpcClient::new(addr.into(), config, true),
        }
    }

    /// The node's address.
    pub fn addr(&self) -> &str {
        self.rpc.addr()
    }

    /// Submits one transaction with `Babble.SubmitTx`.
    pub async fn submit_tx(&self, tx: impl AsRef<[u8]>) -> Result<(), ProxyError> {
        let encoded = Value::String(STANDARD.encode(tx.as_ref())).to_string();
        self.rpc
            .call(methods::SUBMIT_TX, &[encoded])
            .await
            .map(drop)
    }
}

/// The app's answers to the node: what Babble's `proxy.ProxyHandler` does.
///
/// Methods are called on a blocking-capable thread (`spawn_blocking`), one call at a time per
/// connection; the node holds one connection. A panic becomes an error answer.
pub trait AppHandler: Send + Sync + 'static {
    /// Applies a committed block and returns the new state hash and one receipt per internal
    /// transaction, in order.
    fn commit_block(&self, block: &Block) -> Result<CommitResponse, String>;

    /// The snapshot of the state as of block `block_index`.
    fn get_snapshot(&self, block_index: u64) -> Result<Vec<u8>, String>;

    /// Replaces the state with `snapshot` and returns the resulting state hash.
    fn restore(&self, snapshot: &[u8]) -> Result<Vec<u8>, String>;

    /// Hears that the node changed state. The default does nothing.
    fn on_state_changed(&self, state: NodeState) {
        let _ = state;
    }
}

/// Serves the node's `State.*` calls on `listener` (the app's `--client-listen`) with the
/// default [`ServerConfig`]. Runs until dropped.
pub async fn serve_app<H: AppHandler>(listener: TcpListener, handler: Arc<H>) {
    serve_app_with_config(listener, handler, ServerConfig::default()).await;
}

/// [`serve_app`] with explicit limits.
pub async fn serve_app_with_config<H: AppHandler>(
    listener: TcpListener,
    handler: Arc<H>,
    config: ServerConfig,
) {
    serve(listener, Arc::new(AppDispatch { handler }), config).await;
}

struct AppDispatch<H> {
    handler: Arc<H>,
}

/// A decoded `State.*` call.
enum AppCall {
    Commit(Box<Block>),
    Snapshot(u64),
    Restore(Vec<u8>),
    StateChanged(NodeState),
}

fn parse_app_call(request: Request) -> Result<AppCall, String> {
    let method = request.method;
    let [param]: [Value; 1] = request.params.try_into().map_err(|params: Vec<Value>| {
        format!("{method} takes exactly one parameter, got {}", params.len())
    })?;
    match method.as_str() {
        methods::COMMIT_BLOCK => serde_json::from_value(param)
            .map(|block| AppCall::Commit(Box::new(block)))
            .map_err(|e| format!("{method}: invalid block: {e}")),
        methods::GET_SNAPSHOT => param
            .as_u64()
            .map(AppCall::Snapshot)
            .ok_or_else(|| format!("{method}: the block index must be a non-negative integer")),
        methods::RESTORE => {
            let text = param
                .as_str()
                .ok_or_else(|| format!("{method}: the snapshot must be a base64 string"))?;
            STANDARD
                .decode(text)
                .map(AppCall::Restore)
                .map_err(|e| format!("{method}: the snapshot is not valid base64: {e}"))
        }
        methods::ON_STATE_CHANGED => param
            .as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .and_then(NodeState::from_u8)
            .map(AppCall::StateChanged)
            .ok_or_else(|| format!("{method}: the state must be a number from 0 to 5")),
        _ => Err(format!("rpc: can't find method {method}")),
    }
}

impl<H: AppHandler> Dispatch for AppDispatch<H> {
    async fn call(&self, request: Request) -> Result<String, String> {
        let call = parse_app_call(request)?;
        let handler = Arc::clone(&self.handler);
        let answer = tokio::task::spawn_blocking(move || match call {
            // Serialized straight to text: a `Value` would sort the keys.
            AppCall::Commit(block) => handler
                .commit_block(&block)
                .and_then(|response| serde_json::to_string(&response).map_err(|e| e.to_string())),
            AppCall::Snapshot(index) => handler
                .get_snapshot(index)
                .map(|snapshot| Value::String(STANDARD.encode(snapshot)).to_string()),
            AppCall::Restore(snapshot) => handler
                .restore(&snapshot)
                .map(|hash| Value::String(STANDARD.encode(hash)).to_string()),
            AppCall::StateChanged(state) => {
                handler.on_state_changed(state);
                Ok("true".to_owned())
            }
        })
        .await;
        answer.unwrap_or_else(|e| Err(format!("the app's handler failed: {e}")))
    }
}
