//! The app's listener (`serve_app`) driven by the node's `AppClient`, over real TCP.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{within, Raw};
use hearsay_proxy::jsonrpc::{MessageReader, Request};
use hearsay_proxy::{
    serve_app, AppClient, AppHandler, Block, BlockBody, ClientConfig, ClientError, CommitResponse,
    InternalTransaction, InternalTransactionBody, InternalTransactionType, NodeState, Peer,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Records what the node told it; the state hash is the number of transactions seen.
#[derive(Default)]
struct TestApp {
    blocks: Mutex<Vec<u64>>,
    txs: Mutex<u8>,
    states: Mutex<Vec<NodeState>>,
}

impl AppHandler for TestApp {
    fn commit_block(&self, block: &Block) -> Result<CommitResponse, String> {
        self.blocks.lock().unwrap().push(block.body.index);
        let mut txs = self.txs.lock().unwrap();
        *txs += u8::try_from(block.body.transactions.len()).map_err(|e| e.to_string())?;
        Ok(CommitResponse::accept_all(vec![*txs], block))
    }

    fn get_snapshot(&self, block_index: u64) -> Result<Vec<u8>, String> {
        if block_index == 3 {
            Ok(b"snapshot 3".to_vec())
        } else {
            Err(format!("snapshot {block_index} not found"))
        }
    }

    fn restore(&self, snapshot: &[u8]) -> Result<Vec<u8>, String> {
        Ok(snapshot.iter().rev().copied().collect())
    }

    fn on_state_changed(&self, state: NodeState) {
        self.states.lock().unwrap().push(state);
    }
}

struct App {
    addr: SocketAddr,
    handler: Arc<TestApp>,
    server: JoinHandle<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn start_app() -> App {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(TestApp::default());
    let server = tokio::spawn(serve_app(listener, Arc::clone(&handler)));
    App {
        addr,
        handler,
        server,
    }
}

fn peer_add() -> InternalTransaction {
    InternalTransaction {
        body: InternalTransactionBody {
            kind: InternalTransactionType::PeerAdd,
            peer: Peer {
                net_addr: "127.0.0.1:1340".into(),
                pub_key_hex: "0X04CAFE".into(),
                moniker: "node5".into(),
            },
        },
        signature: "r|s".into(),
    }
}

fn block(index: u64, txs: &[&[u8]]) -> Block {
    Block {
        body: BlockBody {
            index,
            round_received: index + 1,
            timestamp: 1_795_336_550,
            transactions: txs.iter().map(|tx| tx.to_vec()).collect(),
            internal_transactions: vec![peer_add()],
            ..BlockBody::default()
        },
        ..Block::default()
    }
}

#[tokio::test]
async fn all_state_calls_through_app_client() {
    let app = start_app().await;
    let client = AppClient::new(app.addr.to_string());

    let response = within(client.commit_block(&block(0, &[b"a", b"b"])))
        .await
        .unwrap();
    assert_eq!(response.state_hash, vec![2]);
    assert_eq!(response.internal_transaction_receipts.len(), 1);
    assert!(response.internal_transaction_receipts[0].accepted);
    assert_eq!(
        response.internal_transaction_receipts[0].internal_transaction,
        peer_add()
    );
    let response = within(client.commit_block(&block(1, &[b"c"])))
        .await
        .unwrap();
    assert_eq!(response.state_hash, vec![3]);
    assert_eq!(*app.handler.blocks.lock().unwrap(), vec![0, 1]);

    assert_eq!(
        within(client.get_snapshot(3)).await.unwrap(),
        b"snapshot 3".to_vec()
    );
    match within(client.get_snapshot(9)).await {
        Err(ClientError::Remote(text)) => assert_eq!(text, "snapshot 9 not found"),
        other => panic!("expected the app's error, got {other:?}"),
    }
    assert_eq!(
        within(client.restore(b"abc")).await.unwrap(),
        b"cba".to_vec()
    );
    within(client.on_state_changed(NodeState::Suspended))
        .await
        .unwrap();
    within(client.on_state_changed(NodeState::Babbling))
        .await
        .unwrap();
    assert_eq!(
        *app.handler.states.lock().unwrap(),
        vec![NodeState::Suspended, NodeState::Babbling]
    );
}

#[tokio::test]
async fn go_style_state_calls_are_answered_byte_exact() {
    let app = start_app().await;
    let mut raw = Raw::connect(app.addr).await;
    let commit = concat!(
        r#"{"method":"State.CommitBlock","params":[{"Body":{"Index":0,"RoundReceived":4,"#,
        r#""Timestamp":1795336550,"StateHash":"","FrameHash":"AQI=","PeersHash":"AwQ=","#,
        r#""Transactions":["aGVsbG8="],"InternalTransactions":[],"#,
        r#""InternalTransactionReceipts":[]},"Signatures":{"0X04AA":"1|2"}}],"id":0}"#,
        "\n"
    );
    assert_eq!(
        raw.call(commit).await,
        r#"{"id":0,"result":{"StateHash":"AQ==","InternalTransactionReceipts":[]},"error":null}"#
    );
    assert_eq!(
        raw.call(r#"{"method":"State.GetSnapshot","params":[3],"id":1}"#)
            .await,
        r#"{"id":1,"result":"c25hcHNob3QgMw==","error":null}"#
    );
    assert_eq!(
        raw.call(r#"{"method":"State.Restore","params":["AQID"],"id":2}"#)
            .await,
        r#"{"id":2,"result":"AwIB","error":null}"#
    );
    assert_eq!(
        raw.call(r#"{"method":"State.OnStateChanged","params":[1],"id":3}"#)
            .await,
        r#"{"id":3,"result":true,"error":null}"#
    );
    assert_eq!(
        *app.handler.states.lock().unwrap(),
        vec![NodeState::CatchingUp]
    );
}

#[tokio::test]
async fn bad_state_calls_get_error_answers_and_the_connection_stays_open() {
    let app = start_app().await;
    let mut raw = Raw::connect(app.addr).await;
    assert_eq!(
        raw.call(r#"{"method":"State.Dance","params":[1],"id":1}"#)
            .await,
        r#"{"id":1,"result":null,"error":"rpc: can't find method State.Dance"}"#
    );
    assert_eq!(
        raw.call(r#"{"method":"State.GetSnapshot","params":[-1],"id":2}"#)
            .await,
        r#"{"id":2,"result":null,"error":"State.GetSnapshot: the block index must be a non-negative integer"}"#
    );
    assert_eq!(
        raw.call(r#"{"method":"State.OnStateChanged","params":[6],"id":3}"#)
            .await,
        r#"{"id":3,"result":null,"error":"State.OnStateChanged: the state must be a number from 0 to 5"}"#
    );
    assert_eq!(
        raw.call(r#"{"method":"State.Restore","params":[],"id":4}"#)
            .await,
        r#"{"id":4,"result":null,"error":"State.Restore takes exactly one parameter, got 0"}"#
    );
    let answer = raw
        .call(r#"{"method":"State.CommitBlock","params":[{"Body":7}],"id":5}"#)
        .await;
    assert!(
        answer.starts_with(r#"{"id":5,"result":null,"error":"State.CommitBlock: invalid block: "#),
        "{answer}"
    );
    assert_eq!(
        raw.call(r#"{"method":"State.Restore","params":["AQID"],"id":6}"#)
            .await,
        r#"{"id":6,"result":"AwIB","error":null}"#
    );
    assert!(app.handler.blocks.lock().unwrap().is_empty());
}

#[tokio::test]
async fn app_client_reports_an_app_that_is_down() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = AppClient::new(addr.to_string());
    assert!(matches!(
        within(client.on_state_changed(NodeState::Babbling)).await,
        Err(ClientError::Connect { .. })
    ));
}

/// An app that never answers on its first connection: the call times out, and the next call
/// dials a new connection, which answers.
#[tokio::test]
async fn app_client_times_out_then_reconnects() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = tokio::spawn(async move {
        let (silent, _) = listener.accept().await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let (reader, mut writer) = stream.into_split();
        let mut reader = MessageReader::new(reader);
        let request = Request::from_object(reader.read_object().await.unwrap().unwrap()).unwrap();
        let answer = format!(r#"{{"id":{},"result":"AQI=","error":null}}"#, request.id);
        writer.write_all(answer.as_bytes()).await.unwrap();
        drop(silent);
        request
    });
    let client = AppClient::with_config(
        addr.to_string(),
        ClientConfig {
            timeout: Duration::from_millis(200),
            ..ClientConfig::default()
        },
    );
    assert!(matches!(
        within(client.get_snapshot(5)).await,
        Err(ClientError::Timeout(_))
    ));
    assert_eq!(within(client.get_snapshot(6)).await.unwrap(), vec![1, 2]);
    let request = within(app).await.unwrap();
    assert_eq!(request.method, "State.GetSnapshot");
    assert_eq!(request.params, vec![serde_json::json!(6)]);
}

/// What the node puts on the wire, byte for byte, against a hand-written Babble block.
#[tokio::test]
async fn app_client_sends_blocks_in_babble_key_order() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (reader, mut writer) = stream.into_split();
        let mut reader = BufReader::new(reader);
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        writer
            .write_all(br#"{"id":0,"result":{"StateHash":"AQ==","InternalTransactionReceipts":null},"error":null}"#)
            .await
            .unwrap();
        line
    });
    let mut block = block(2, &[b"hello"]);
    block.body.state_hash = vec![9];
    block.signatures.insert("0X04BB".into(), "3|4".into());
    block.signatures.insert("0X04AA".into(), "1|2".into());
    let client = AppClient::new(addr.to_string());
    let response = within(client.commit_block(&block)).await.unwrap();
    assert_eq!(response.state_hash, vec![1]);
    assert!(response.internal_transaction_receipts.is_empty());
    assert_eq!(
        within(app).await.unwrap(),
        concat!(
            r#"{"method":"State.CommitBlock","params":[{"Body":{"Index":2,"RoundReceived":3,"#,
            r#""Timestamp":1795336550,"StateHash":"CQ==","FrameHash":"","PeersHash":"","#,
            r#""Transactions":["aGVsbG8="],"InternalTransactions":[{"Body":{"Type":0,"Peer":"#,
            r#"{"NetAddr":"127.0.0.1:1340","PubKeyHex":"0X04CAFE","Moniker":"node5"}},"#,
            r#""Signature":"r|s"}],"InternalTransactionReceipts":[]},"#,
            r#""Signatures":{"0X04AA":"1|2","0X04BB":"3|4"}}],"id":0}"#,
            "\n"
        )
    );
}
