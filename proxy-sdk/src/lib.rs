//! Hearsay's socket proxy: the Babble-compatible JSON-RPC between a node and its app.
//!
//! Two TCP connections, both JSON-RPC 1.0 as Go's `net/rpc/jsonrpc` speaks it ([`jsonrpc`]):
//!
//! - app → node, on the node's `--proxy-listen`: `Babble.SubmitTx`. The app uses
//!   [`ProxyClient`]; the node answers with [`serve_proxy`].
//! - node → app, on the app's `--client-listen`: `State.CommitBlock`, `State.GetSnapshot`,
//!   `State.Restore`, `State.OnStateChanged`. The node calls with [`AppClient`]; the app
//!   implements [`AppHandler`] and answers with [`serve_app`].
//!
//! The payloads are Babble's JSON shapes ([`types`]), plain data with no dependency on the
//! hashgraph. The `hearsay-chat` binary is Babble's `dummy` chat app built on this crate.

pub mod jsonrpc;
pub mod types;

mod app;
mod node;
mod rpc;

pub use app::{serve_app, serve_app_with_config, AppHandler, ProxyClient, ProxyError};
pub use jsonrpc::MAX_MESSAGE_BYTES;
pub use node::{serve_proxy, serve_proxy_with_config, AppClient, AppError, SubmitFn};
pub use rpc::{ClientConfig, ClientError, ServerConfig};
pub use types::{
    Block, BlockBody, CommitResponse, InternalTransaction, InternalTransactionBody,
    InternalTransactionReceipt, InternalTransactionType, NodeState, Peer,
};

/// The JSON-RPC method names.
pub mod methods {
    /// App → node: submit one transaction (`params[0]`: base64).
    pub const SUBMIT_TX: &str = "Babble.SubmitTx";
    /// Hearsay's alias of [`SUBMIT_TX`].
    pub const HEARSAY_SUBMIT_TX: &str = "Hearsay.SubmitTx";
    /// Node → app: deliver a block (`params[0]`: the block).
    pub const COMMIT_BLOCK: &str = "State.CommitBlock";
    /// Node → app: ask for a snapshot (`params[0]`: block index).
    pub const GET_SNAPSHOT: &str = "State.GetSnapshot";
    /// Node → app: restore a snapshot (`params[0]`: base64 snapshot).
    pub const RESTORE: &str = "State.Restore";
    /// Node → app: the node's state changed (`params[0]`: 0 to 5).
    pub const ON_STATE_CHANGED: &str = "State.OnStateChanged";
}
