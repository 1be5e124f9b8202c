//! The node's proxy listener (`serve_proxy`) and the app's `ProxyClient`, over real TCP.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use common::{within, Raw};
use hearsay_proxy::jsonrpc::{MessageReader, Request};
use hearsay_proxy::{serve_proxy_with_config, ClientError, ProxyClient, ServerConfig, SubmitFn};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

type Received = Arc<Mutex<Vec<Vec<u8>>>>;

struct Node {
    addr: SocketAddr,
    received: Received,
    server: JoinHandle<()>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Node {
    fn received(&self) -> Vec<Vec<u8>> {
        self.received.lock().unwrap().clone()
    }
}

/// A proxy listener whose pool refuses the transaction "full".
async fn start_node(config: ServerConfig) -> Node {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Received::default();
    let sink = Arc::clone(&received);
    let submit: SubmitFn = Arc::new(move |txs: Vec<Vec<u8>>| {
        txs.into_iter()
            .map(|tx| {
                if tx == b"full" {
                    return Err("transaction pool is full".to_string());
                }
                sink.lock().unwrap().push(tx);
                Ok(())
            })
            .collect()
    });
    let server = tokio::spawn(serve_proxy_with_config(listener, submit, config));
    Node {
        addr,
        received,
        server,
    }
}

const HELLO: &str = r#"{"method":"Babble.SubmitTx","params":["aGVsbG8="],"id":7}"#;
const HELLO_OK: &str = r#"{"id":7,"result":true,"error":null}"#;

/// A good client still gets served.
async fn assert_serves_new_client(node: &Node) {
    let mut raw = Raw::connect(node.addr).await;
    assert_eq!(raw.call(&format!("{HELLO}\n")).await, HELLO_OK);
}

#[tokio::test]
async fn submit_tx_is_answered_like_babble() {
    let node = start_node(ServerConfig::default()).await;
    let mut raw = Raw::connect(node.addr).await;
    assert_eq!(raw.call(&format!("{HELLO}\n")).await, HELLO_OK);
    assert_eq!(node.received(), vec![b"hello".to_vec()]);
}

#[tokio::test]
async fn alias_back_to_back_and_split_requests() {
    let node = start_node(ServerConfig::default()).await;
    let mut raw = Raw::connect(node.addr).await;
    // Two requests in one write, no newline, the alias second.
    raw.send(
        br#"{"method":"Babble.SubmitTx","params":["YQ=="],"id":1}{"method":"Hearsay.SubmitTx","params":["Yg=="],"id":"two"}"#,
    )
    .await;
    assert_eq!(
        raw.line().await.unwrap(),
        r#"{"id":1,"result":true,"error":null}"#
    );
    assert_eq!(
        raw.line().await.unwrap(),
        r#"{"id":"two","result":true,"error":null}"#
    );
    // One request written a byte at a time.
    for byte in HELLO.as_bytes() {
        raw.send(std::slice::from_ref(byte)).await;
    }
    assert_eq!(raw.line().await.unwrap(), HELLO_OK);
    assert_eq!(
        node.received(),
        vec![b"a".to_vec(), b"b".to_vec(), b"hello".to_vec()]
    );
}

/// Calls pipelined in one write are answered together, each in its place: a refusal, a bad
/// call or a non-request among them changes only its own answer; a malformed message after
/// them is answered after theirs, then the connection closes.
#[tokio::test]
async fn pipelined_calls_are_answered_in_order_each_on_its_own() {
    let node = start_node(ServerConfig::default()).await;
    let mut raw = Raw::connect(node.addr).await;
    raw.send(
        concat!(
            r#"{"method":"Babble.SubmitTx","params":["YQ=="],"id":1}"#,
            r#"{"method":"Babble.SubmitTx","params":["not base64!"],"id":2}"#,
            r#"{"method":"Babble.SubmitTx","params":["ZnVsbA=="],"id":3}"#,
            r#"{"params":["YQ=="],"id":4}"#,
            r#"{"method":"Babble.SubmitTx","params":["Yg=="],"id":5}"#,
            r#"{"method":"Babble.SubmitTx","id":}"#,
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(
        raw.line().await.unwrap(),
        r#"{"id":1,"result":true,"error":null}"#
    );
    let second = raw.line().await.unwrap();
    assert!(
        second.starts_with(
            r#"{"id":2,"result":null,"error":"Babble.SubmitTx: the transaction is not valid base64"#
        ),
        "{second}"
    );
    assert_eq!(
        raw.line().await.unwrap(),
        r#"{"id":3,"result":null,"error":"transaction pool is full"}"#
    );
    assert_eq!(
        raw.line().await.unwrap(),
        r#"{"id":4,"result":null,"error":"request has no string \"method\""}"#
    );
    assert_eq!(
        raw.line().await.unwrap(),
        r#"{"id":5,"result":true,"error":null}"#
    );
    let last = raw.line().await.unwrap();
    assert!(
        last.starts_with(r#"{"id":null,"result":null,"error":"invalid JSON: "#),
        "{last}"
    );
    assert_eq!(raw.line().await, None);
    assert_eq!(node.received(), vec![b"a".to_vec(), b"b".to_vec()]);
}

#[tokio::test]
async fn bad_calls_get_error_answers_and_the_connection_stays_usable() {
    let node = start_node(ServerConfig::default()).await;
    let mut raw = Raw::connect(node.addr).await;
    let answer = raw
        .call(r#"{"method":"Babble.SubmitTx","params":["not base64!"],"id":1}"#)
        .await;
    assert!(
        answer.starts_with(
            r#"{"id":1,"result":null,"error":"Babble.SubmitTx: the transaction is not valid base64"#
        ),
        "{answer}"
    );
    assert_eq!(
        raw.call(r#"{"method":"Babble.SubmitTx","params":[],"id":2}"#)
            .await,
        r#"{"id":2,"result":null,"error":"Babble.SubmitTx takes exactly one parameter (the base64 transaction), got 0"}"#
    );
    assert_eq!(
        raw.call(r#"{"method":"Babble.SubmitTx","params":["YQ==","Yg=="],"id":3}"#)
            .await,
        r#"{"id":3,"result":null,"error":"Babble.SubmitTx takes exactly one parameter (the base64 transaction), got 2"}"#
    );
    assert_eq!(
        raw.call(r#"{"method":"Babble.SubmitTx","params":[42],"id":4}"#)
            .await,
        r#"{"id":4,"result":null,"error":"Babble.SubmitTx: the transaction must be a base64 string"}"#
    );
    assert_eq!(
        raw.call(r#"{"method":"Babble.Steal","params":["YQ=="],"id":5}"#)
            .await,
        r#"{"id":5,"result":null,"error":"rpc: can't find method Babble.Steal"}"#
    );
    assert_eq!(
        raw.call(r#"{"params":["YQ=="],"id":6}"#).await,
        r#"{"id":6,"result":null,"error":"request has no string \"method\""}"#
    );
    assert_eq!(
        raw.call(r#"{"method":"Babble.SubmitTx","params":["ZnVsbA=="],"id":7}"#)
            .await,
        r#"{"id":7,"result":null,"error":"transaction pool is full"}"#
    );
    assert_eq!(raw.call(HELLO).await, HELLO_OK);
    assert_eq!(node.received(), vec![b"hello".to_vec()]);
}

#[tokio::test]
async fn malformed_json_is_answered_then_closed() {
    let node = start_node(ServerConfig::default()).await;
    let mut raw = Raw::connect(node.addr).await;
    let answer = raw.call(r#"{"method":"Babble.SubmitTx","id":}"#).await;
    assert!(
        answer.starts_with(r#"{"id":null,"result":null,"error":"invalid JSON: "#),
        "{answer}"
    );
    assert_eq!(raw.line().await, None);
    assert_serves_new_client(&node).await;
}

#[tokio::test]
async fn non_object_is_answered_then_closed() {
    let node = start_node(ServerConfig::default()).await;
    let mut raw = Raw::connect(node.addr).await;
    assert_eq!(
        raw.call(r#"["Babble.SubmitTx"]"#).await,
        r#"{"id":null,"result":null,"error":"message is not a JSON object (it starts with byte 0x5b)"}"#
    );
    assert_eq!(raw.line().await, None);
    assert_serves_new_client(&node).await;
}

#[tokio::test]
async fn oversized_message_is_answered_then_closed() {
    let node = start_node(ServerConfig {
        max_message_bytes: 1024,
        ..ServerConfig::default()
    })
    .await;
    let mut raw = Raw::connect(node.addr).await;
    let big = format!(
        r#"{{"method":"Babble.SubmitTx","params":["{}"],"id":1}}"#,
        "QUFB".repeat(5000)
    );
    assert_eq!(
        raw.call(&big).await,
        r#"{"id":null,"result":null,"error":"message exceeds the limit of 1024 bytes"}"#
    );
    assert_eq!(raw.line().await, None);
    assert!(node.received().is_empty());
    assert_serves_new_client(&node).await;
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused() {
    let node = start_node(ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    })
    .await;
    let mut first = Raw::connect(node.addr).await;
    assert_eq!(first.call(HELLO).await, HELLO_OK);
    let mut second = Raw::connect(node.addr).await;
    assert_eq!(
        second.line().await.unwrap(),
        r#"{"id":null,"result":null,"error":"too many connections"}"#
    );
    assert_eq!(second.line().await, None);
    assert_eq!(first.call(HELLO).await, HELLO_OK);
}

#[tokio::test]
async fn proxy_client_submits_and_reports_refusals() {
    let node = start_node(ServerConfig::default()).await;
    let client = ProxyClient::new(node.addr.to_string());
    within(client.submit_tx(b"one")).await.unwrap();
    within(client.submit_tx(b"two".to_vec())).await.unwrap();
    match within(client.submit_tx(b"full")).await {
        Err(ClientError::Remote(text)) => assert_eq!(text, "transaction pool is full"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    within(client.submit_tx(b"three")).await.unwrap();
    assert_eq!(
        node.received(),
        vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );
}

#[tokio::test]
async fn proxy_client_reports_an_unreachable_node() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = ProxyClient::new(addr.to_string());
    assert!(matches!(
        within(client.submit_tx(b"x")).await,
        Err(ClientError::Connect { .. })
    ));
}

/// A node that answers one request per connection, then closes it.
#[tokio::test]
async fn proxy_client_reconnects_after_the_node_closes_the_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let node = tokio::spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..2 {
            let (stream, _) = listener.accept().await.unwrap();
            let (reader, mut writer) = stream.into_split();
            let mut reader = MessageReader::new(reader);
            let request =
                Request::from_object(reader.read_object().await.unwrap().unwrap()).unwrap();
            assert_eq!(request.method, "Babble.SubmitTx");
            seen.push(request.params[0].clone());
            let answer = format!(r#"{{"id":{},"result":true,"error":null}}"#, request.id);
            writer.write_all(answer.as_bytes()).await.unwrap();
            // Dropping both halves closes the connection.
        }
        seen
    });
    let client = ProxyClient::new(addr.to_string());
    within(client.submit_tx(b"first")).await.unwrap();
    within(client.submit_tx(b"second")).await.unwrap();
    assert_eq!(
        within(node).await.unwrap(),
        vec![json!("Zmlyc3Q="), json!("c2Vjb25k")]
    );
}

/// What the app puts on the wire, byte for byte.
#[tokio::test]
async fn proxy_client_request_bytes_are_go_style() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let node = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (reader, mut writer) = stream.into_split();
        let mut reader = BufReader::new(reader);
        let mut lines = Vec::new();
        for id in 0..2 {
            let mut line = String::new();
            reader.read_line(&mut line).await.unwrap();
            lines.push(line);
            let answer = format!(r#"{{"id":{id},"result":true,"error":null}}"#);
            writer.write_all(answer.as_bytes()).await.unwrap();
        }
        lines
    });
    let client = ProxyClient::new(addr.to_string());
    within(client.submit_tx(b"hi")).await.unwrap();
    within(client.submit_tx(b"")).await.unwrap();
    assert_eq!(
        within(node).await.unwrap(),
        vec![
            "{\"method\":\"Babble.SubmitTx\",\"params\":[\"aGk=\"],\"id\":0}\n".to_string(),
            "{\"method\":\"Babble.SubmitTx\",\"params\":[\"\"],\"id\":1}\n".to_string(),
        ]
    );
}
