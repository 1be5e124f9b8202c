//! The `hearsay-chat` binary against a fake node played by the test.

mod common;

use std::process::Stdio;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::{within, Raw};
use hearsay_proxy::jsonrpc::{MessageReader, Request};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::Command;

/// The chat's rule, computed here independently: h = sha256(h ‖ sha256(tx)) from empty h.
fn expected_state_hash(txs: &[&[u8]]) -> String {
    let mut h: Vec<u8> = Vec::new();
    for tx in txs {
        let mut input = h.clone();
        input.extend_from_slice(&Sha256::digest(tx));
        h = Sha256::digest(&input).to_vec();
    }
    STANDARD.encode(h)
}

#[tokio::test]
async fn chat_submits_lines_and_commits_blocks() {
    // The test plays the node's proxy listener.
    let node = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node_addr = node.local_addr().unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_hearsay-chat"))
        .args(["--name", "alice", "--client-listen", "127.0.0.1:0"])
        .args(["--proxy-connect", &node_addr.to_string()])
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start hearsay-chat");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();

    // The app logs the address it serves on; keep draining stderr afterwards.
    let app_addr = within(async {
        loop {
            let line = stderr.next_line().await.unwrap().expect("chat app exited");
            if let Some(rest) = line.split("client_listen=").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        }
    })
    .await;
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });

    // A typed line arrives as Babble.SubmitTx "alice: hi"; an empty line is not sent.
    stdin.write_all(b"\nhi\n").await.unwrap();
    stdin.flush().await.unwrap();
    let (stream, _) = within(node.accept()).await.unwrap();
    let (reader, mut writer) = stream.into_split();
    let mut reader = MessageReader::new(reader);
    let request =
        Request::from_object(within(reader.read_object()).await.unwrap().unwrap()).unwrap();
    assert_eq!(request.method, "Babble.SubmitTx");
    assert_eq!(request.params, vec![serde_json::json!("YWxpY2U6IGhp")]);
    let answer = format!("{{\"id\":{},\"result\":true,\"error\":null}}\n", request.id);
    writer.write_all(answer.as_bytes()).await.unwrap();

    // End of input does not stop the app.
    drop(stdin);

    // The node delivers block 0 with two transactions and one internal transaction.
    let mut app = Raw::connect(app_addr.parse().unwrap()).await;
    let commit = concat!(
        r#"{"method":"State.CommitBlock","params":[{"Body":{"Index":0,"RoundReceived":4,"#,
        r#""Timestamp":1795336550,"StateHash":"","FrameHash":"AQI=","PeersHash":"AwQ=","#,
        r#""Transactions":["YWxpY2U6IGhp","Ym9iOiB5bw=="],"InternalTransactions":[{"Body":"#,
        r#"{"Type":1,"Peer":{"NetAddr":"127.0.0.1:1340","PubKeyHex":"0X04CAFE","#,
        r#""Moniker":"node5"}},"Signature":"r|s"}],"InternalTransactionReceipts":[]},"#,
        r#""Signatures":{}}],"id":0}"#
    );
    let hash0 = expected_state_hash(&[b"alice: hi", b"bob: yo"]);
    // python3: same rule, pasted to check the test's own computation.
    assert_eq!(hash0, "ujGM7+AMGvlspkVI3Z2zFO5KeoskqPbJnk4GC4uP73U=");
    assert_eq!(
        app.call(commit).await,
        format!(
            concat!(
                r#"{{"id":0,"result":{{"StateHash":"{}","InternalTransactionReceipts":"#,
                r#"[{{"InternalTransaction":{{"Body":{{"Type":1,"Peer":{{"#,
                r#""NetAddr":"127.0.0.1:1340","PubKeyHex":"0X04CAFE","Moniker":"node5"}}}},"#,
                r#""Signature":"r|s"}},"Accepted":true}}]}},"error":null}}"#
            ),
            hash0
        )
    );
    assert_eq!(
        within(stdout.next_line()).await.unwrap().unwrap(),
        "[block 0] alice: hi"
    );
    assert_eq!(
        within(stdout.next_line()).await.unwrap().unwrap(),
        "[block 0] bob: yo"
    );

    // Block 1 folds onto block 0's hash.
    let commit = concat!(
        r#"{"method":"State.CommitBlock","params":[{"Body":{"Index":1,"RoundReceived":5,"#,
        r#""Timestamp":1795336551,"StateHash":"","FrameHash":"","PeersHash":"","#,
        r#""Transactions":["Y2Fyb2w6IDM="],"InternalTransactions":null,"#,
        r#""InternalTransactionReceipts":null},"Signatures":null}],"id":1}"#
    );
    let hash1 = expected_state_hash(&[b"alice: hi", b"bob: yo", b"carol: 3"]);
    assert_eq!(hash1, "mXtJbJ9FPS42iySBEgrc5HemxZ54SFVtE+rh2P+yvgw=");
    assert_eq!(
        app.call(commit).await,
        format!(
            r#"{{"id":1,"result":{{"StateHash":"{hash1}","InternalTransactionReceipts":[]}},"error":null}}"#
        )
    );
    assert_eq!(
        within(stdout.next_line()).await.unwrap().unwrap(),
        "[block 1] carol: 3"
    );

    // Snapshots are the state hash as of each block; restore sets the state hash.
    assert_eq!(
        app.call(r#"{"method":"State.GetSnapshot","params":[0],"id":2}"#)
            .await,
        format!(r#"{{"id":2,"result":"{hash0}","error":null}}"#)
    );
    assert_eq!(
        app.call(r#"{"method":"State.GetSnapshot","params":[7],"id":3}"#)
            .await,
        r#"{"id":3,"result":null,"error":"Snapshot 7 not found"}"#
    );
    assert_eq!(
        app.call(&format!(
            r#"{{"method":"State.Restore","params":["{hash0}"],"id":4}}"#
        ))
        .await,
        format!(r#"{{"id":4,"result":"{hash0}","error":null}}"#)
    );
    assert_eq!(
        app.call(r#"{"method":"State.OnStateChanged","params":[0],"id":5}"#)
            .await,
        r#"{"id":5,"result":true,"error":null}"#
    );

    // SIGTERM ends it cleanly.
    let pid = child.id().expect("still running").to_string();
    let status = within(Command::new("kill").args(["-TERM", &pid]).status())
        .await
        .unwrap();
    assert!(status.success());
    let status = within(child.wait()).await.unwrap();
    assert!(status.success(), "exit status {status}");
}

/// SIGTERM stops the app even while its stdin is open and idle (a blocking read).
#[tokio::test]
async fn chat_exits_on_sigterm_with_stdin_open() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearsay-chat"))
        .args([
            "--client-listen",
            "127.0.0.1:0",
            "--proxy-connect",
            "127.0.0.1:9",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start hearsay-chat");
    let _stdin = child.stdin.take().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    within(async {
        while !stderr
            .next_line()
            .await
            .unwrap()
            .expect("chat app exited")
            .contains("chat app ready")
        {}
    })
    .await;
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
    let pid = child.id().expect("still running").to_string();
    let status = within(Command::new("kill").args(["-TERM", &pid]).status())
        .await
        .unwrap();
    assert!(status.success());
    let status = within(child.wait()).await.unwrap();
    assert!(status.success(), "exit status {status}");
}
