//! Nodes embedded in a Rust app's own process (Babble's InmemProxy): four nodes in this test
//! process, gossiping over real QUIC sockets, each delivering blocks straight to an in-process
//! handler.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::RecordingApp;
use hearsay::node::{self, App, NodeState};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_embedded_nodes_order_transactions_identically() {
    let dir = tempfile::tempdir().unwrap();
    let nodes =
        hearsay::testnet::write_testnet(dir.path(), 4, "127.0.0.1".parse().unwrap()).unwrap();
    let apps: Vec<Arc<RecordingApp>> = (0..4).map(|_| Arc::new(RecordingApp::default())).collect();
    let mut running = Vec::new();
    for (info, app) in nodes.iter().zip(&apps) {
        let config = hearsay::config::RunArgs {
            datadir: Some(info.datadir.clone()),
            no_service: Some(true),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        running.push(
            node::start(config, App::InProcess(app.clone()))
                .await
                .unwrap(),
        );
    }
    // No proxy port is opened for an embedded node.
    assert!(std::net::TcpStream::connect(nodes[0].proxy_listen).is_err());
    assert!(running.iter().all(|n| n.state() == NodeState::Babbling));

    let mut wanted = HashSet::new();
    for (i, node) in running.iter().enumerate() {
        for k in 0..50 {
            let tx = format!("embedded-{i}-{k}");
            node.submit_tx(tx.clone().into_bytes()).unwrap();
            wanted.insert(tx);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = apps.iter().all(|a| {
            let txs: HashSet<String> = a.transactions().into_iter().collect();
            wanted.iter().all(|t| txs.contains(t))
        });
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "timed out; apps hold {:?} transactions",
            apps.iter()
                .map(|a| a.transactions().len())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let summaries: Vec<_> = apps.iter().map(|a| a.summary()).collect();
    let common = summaries.iter().map(Vec::len).min().unwrap();
    for s in &summaries {
        assert_eq!(s[..common], summaries[0][..common]);
    }
    assert_eq!(apps[0].transactions().len(), wanted.len());
    // An empty transaction is refused with a clear error, as on the proxy.
    assert!(running[0].submit_tx(Vec::new()).is_err());
    for node in running {
        node.shutdown().await;
    }
}
