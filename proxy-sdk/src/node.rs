//! The node's side: accepting apps' transactions, and delivering blocks to the app.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;
use tokio::net::TcpListener;

use crate::jsonrpc::Request;
use crate::methods;
use crate::rpc::{serve, ClientConfig, ClientError, Dispatch, RpcClient, ServerConfig};
use crate::types::{Block, CommitResponse, NodeState};

/// Takes transactions submitted together (the calls an app pipelined on one connection that
/// arrived together, in order), and accepts or refuses each, with a text the app receives
/// (e.g. the pool is full); one answer per transaction, in order. Taking them together lets
/// the node store them in one write. Called on the connection's task: it must not block.
pub type SubmitFn = Arc<dyn Fn(Vec<Vec<u8>>) -> Vec<Result<(), String>> + Send + Sync>;

/// Serves `Babble.SubmitTx` (and its alias `Hearsay.SubmitTx`) on `listener` (the node's
/// `--proxy-listen`) with the default [`ServerConfig`]. Runs until dropped; dropping it closes
/// every connection.
///
/// Each call must have exactly one parameter, a base64 string; anything else, and an unknown
/// method, is answered with an error naming the problem and the connection stays open. A
/// message that is not a JSON object, is not valid JSON or exceeds the size limit is answered
/// with an error (id null) and the connection closed. Other clients are unaffected.
pub async fn serve_proxy(listener: TcpListener, submit: SubmitFn) {
    serve_proxy_with_config(listener, submit, ServerConfig::default()).await;
}

/// [`serve_proxy`] with explicit limits.
pub async fn serve_proxy_with_config(
    listener: TcpListener,
    submit: SubmitFn,
    config: ServerConfig,
) {
    serve(listener, Arc::new(ProxyDispatch { submit }), config).await;
}

struct ProxyDispatch {
    submit: SubmitFn,
}

impl ProxyDispatch {
    /// The transaction a `SubmitTx` call carries, or why the call is wrong.
    fn transaction(request: Request) -> Result<Vec<u8>, String> {
        let method = request.method;
        if method != methods::SUBMIT_TX && method != methods::HEARSAY_SUBMIT_TX {
            return Err(format!("rpc: can't find method {method}"));
        }
        let [param]: [Value; 1] = request.params.try_into().map_err(|params: Vec<Value>| {
            format!(
                "{method} takes exactly one parameter (the base64 transaction), got {}",
                params.len()
            )
        })?;
        let text = param
            .as_str()
            .ok_or_else(|| format!("{method}: the transaction must be a base64 string"))?;
        STANDARD
            .decode(text)
            .map_err(|e| format!("{method}: the transaction is not valid base64: {e}"))
    }

    fn submit_all(&self, requests: Vec<Request>) -> Vec<Result<String, String>> {
        let mut answers: Vec<Result<String, String>> = Vec::with_capacity(requests.len());
        let mut txs = Vec::with_capacity(requests.len());
        for request in requests {
            match Self::transaction(request) {
                Ok(tx) => {
                    txs.push(tx);
                    answers.push(Ok(String::new()));
                }
                Err(e) => answers.push(Err(e)),
            }
        }
        let verdicts = if txs.is_empty() {
            Vec::new()
        } else {
            (self.submit)(txs)
        };
        let mut verdicts = verdicts.into_iter();
        for answer in answers.iter_mut().filter(|a| a.is_ok()) {
            *answer = match verdicts.next() {
                Some(Ok(())) => Ok("true".to_owned()),
                Some(Err(e)) => Err(e),
                None => Err("internal error: the node answered for too few transactions".into()),
            };
        }
        answers
    }
}

impl Dispatch for ProxyDispatch {
    async fn call(&self, request: Request) -> Result<String, String> {
        self.submit_all(vec![request])
            .pop()
            .unwrap_or_else(|| Err("internal error".to_owned()))
    }

    async fn call_batch(&self, requests: Vec<Request>) -> Vec<Result<String, String>> {
        self.submit_all(requests)
    }
}

/// Error of an [`AppClient`] call. [`ClientError::Remote`] is the app's own error answer.
pub type AppError = ClientError;

/// The node's connection to the app's `--client-connect` address.
///
/// Dials lazily, keeps one connection, gives each call the configured deadline (default 1 s)
/// and, after any failure, drops the connection and dials again on the next call. It never
/// retries by itself: the caller decides (the daemon retries a block until the app answers).
pub struct AppClient {
    rpc: RpcClient,
}

impl AppClient {
    /// A client for the app at `addr` (`host:port`), with the default [`ClientConfig`].
    pub fn new(addr: impl Into<String>) -> Self {
        Self::with_config(addr, ClientConfig::default())
    }

    /// A client for the app at `addr` with the given deadline and size limit.
    pub fn with_config(addr: impl Into<String>, config: ClientConfig) -> Self {
        Self {
            rpc: RpcClient::new(addr.into(), config, false),
        }
    }

    /// The app's address.
    pub fn addr(&self) -> &str {
        self.rpc.addr()
    }

    /// `State.CommitBlock`: delivers a block, returns the app's state hash and receipts.
    pub async fn commit_block(&self, block: &Block) -> Result<CommitResponse, AppError> {
        // Serialized straight into the request: a `Value` would sort the keys out of Babble's
        // order, and a string first would copy a block of megabytes once more.
        let result = self
            .rpc
            .call_one(methods::COMMIT_BLOCK, block, json_len_hint(block))
            .await?;
        serde_json::from_value(result)
            .map_err(|e| ClientError::BadResponse(format!("{}: {e}", methods::COMMIT_BLOCK)))
    }

    /// `State.GetSnapshot`: the app's snapshot as of block `block_index`.
    pub async fn get_snapshot(&self, block_index: u64) -> Result<Vec<u8>, AppError> {
        let result = self
            .rpc
            .call(methods::GET_SNAPSHOT, &[block_index.to_string()])
            .await?;
        decode_bytes(methods::GET_SNAPSHOT, &result)
    }

    /// `State.Restore`: replaces the app's state with `snapshot`; returns its state hash.
    pub async fn restore(&self, snapshot: &[u8]) -> Result<Vec<u8>, AppError> {
        let param = Value::String(STANDARD.encode(snapshot)).to_string();
        let result = self.rpc.call(methods::RESTORE, &[param]).await?;
        decode_bytes(methods::RESTORE, &result)
    }

    /// `State.OnStateChanged`: tells the app the node's new state. The result is ignored.
    pub async fn on_state_changed(&self, state: NodeState) -> Result<(), AppError> {
        self.rpc
            .call(methods::ON_STATE_CHANGED, &[state.as_u8().to_string()])
            .await
            .map(drop)
    }
}

/// About the length of `block` in JSON, from above for usual blocks: each transaction in
/// base64 with its quotes and comma, each signature with its key, and room for the rest.
fn json_len_hint(block: &Block) -> usize {
    let transactions: usize = block
        .body
        .transactions
        .iter()
        .map(|tx| tx.len().div_ceil(3) * 4 + 3)
        .sum();
    let signatures: usize = block
        .signatures
        .iter()
        .map(|(key, signature)| key.len() + signature.len() + 6)
        .sum();
    transactions + signatures + 1024
}

/// Go's `[]byte` result: a base64 string, or null for empty.
fn decode_bytes(method: &str, result: &Value) -> Result<Vec<u8>, AppError> {
    match result {
        Value::Null => Ok(Vec::new()),
        Value::String(text) => STANDARD
            .decode(text)
            .map_err(|e| ClientError::BadResponse(format!("{method}: invalid base64: {e}"))),
        other => Err(ClientError::BadResponse(format!(
            "{method}: expected a base64 string, got {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_length_hint_covers_a_block_s_json_without_much_to_spare() {
        for sizes in [
            vec![],
            vec![0, 1, 2, 3, 4],
            vec![200; 5000],
            vec![1, 65_536, 7],
        ] {
            let mut block = Block::default();
            block.body.index = u64::MAX;
            block.body.state_hash = vec![0xab; 32];
            block.body.frame_hash = vec![0xcd; 32];
            block.body.peers_hash = vec![0xef; 32];
            block.body.transactions = sizes.iter().map(|&n| vec![b'x'; n]).collect();
            for i in 0..4 {
                block
                    .signatures
                    .insert(format!("0X04{i:0128}"), format!("{i:0140}"));
            }
            let actual = serde_json::to_vec(&block).unwrap().len();
            let hint = json_len_hint(&block);
            assert!(
                hint >= actual && hint <= actual + 1024,
                "{} transactions: hint {hint}, JSON {actual} bytes",
                sizes.len()
            );
        }
    }
}
