//! Four `hearsay run` processes on loopback, with real QUIC gossip, real TCP proxies and the
//! test playing each node's app.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{app_has_all, assert_same_states, http_get, stat, Network, RawProxy};

const TOTAL_TXS: usize = 2000;

/// Submits `count` transactions named `prefix-<node>-<i>` through every node's proxy port,
/// one raw JSON-RPC connection per node, many requests per connection.
async fn submit_everywhere(net: &Network, prefix: &str, count: usize) -> Vec<String> {
    submit_through(net, None, prefix, count).await
}

/// [`submit_everywhere`] through every node but `skip`.
async fn submit_everywhere_but(
    net: &Network,
    skip: usize,
    prefix: &str,
    count: usize,
) -> Vec<String> {
    submit_through(net, Some(skip), prefix, count).await
}

/// [`submit_everywhere`] through every node but `skip`, if any.
async fn submit_through(
    net: &Network,
    skip: Option<usize>,
    prefix: &str,
    count: usize,
) -> Vec<String> {
    let nodes: Vec<usize> = (0..net.nodes.len()).filter(|i| Some(*i) != skip).collect();
    common::submit_via(net, &nodes, prefix, count).await
}

/// Submits `count` transactions named after `prefix` through every node and waits, up to
/// `deadline`, until every app holds them; answers them.
async fn deliver_everywhere(
    net: &Network,
    prefix: &str,
    count: usize,
    deadline: Duration,
) -> HashSet<String> {
    let sent: HashSet<String> = submit_everywhere(net, prefix, count)
        .await
        .into_iter()
        .collect();
    let what = format!("every app to hold the {prefix:?} transactions");
    net.wait_for(&what, deadline, |net| {
        net.apps.iter().all(|a| has_all(&a.transactions(), &sent))
    })
    .await;
    sent
}

/// How many signatures node 0 shows on `block` (0 if it cannot say).
fn block_signers(net: &Network, block: u64) -> usize {
    http_get(net.nodes[0].service_listen, &format!("/block/{block}"))
        .ok()
        .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
        .and_then(|b| b["Signatures"].as_object().map(|m| m.len()))
        .unwrap_or(0)
}

/// Waits until the apps of `nodes` have ordered every transaction of `wanted`.
async fn wait_ordered(
    net: &Network,
    nodes: &[usize],
    what: &str,
    wanted: &HashSet<String>,
    deadline: Duration,
) {
    net.wait_for(what, deadline, |net| {
        nodes.iter().all(|i| app_has_all(net, *i, wanted))
    })
    .await;
}

fn has_all(txs: &[String], wanted: &HashSet<String>) -> bool {
    let got: HashSet<&String> = txs.iter().collect();
    wanted.iter().all(|t| got.contains(t))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_nodes_deliver_identical_blocks_with_every_transaction_once() {
    let mut net = Network::create(4).await;
    net.start_all();
    let sent = submit_everywhere(&net, "tx", TOTAL_TXS).await;
    assert_eq!(sent.len(), TOTAL_TXS);
    let wanted: HashSet<String> = sent.iter().cloned().collect();
    net.wait_for(
        "every app to receive every transaction",
        Duration::from_secs(120),
        |net| net.apps.iter().all(|a| has_all(&a.transactions(), &wanted)),
    )
    .await;

    // Identical blocks in identical order, compared over the common prefix (a node may be a
    // block ahead at this instant), and every transaction exactly once.
    let summaries: Vec<_> = net.apps.iter().map(|a| a.summary()).collect();
    let shortest = summaries.iter().map(Vec::len).min().unwrap();
    for (i, s) in summaries.iter().enumerate() {
        assert_eq!(
            s[..shortest],
            summaries[0][..shortest],
            "app {i} differs from app 0"
        );
        let indices: Vec<u64> = s.iter().map(|(index, _)| *index).collect();
        assert_eq!(
            indices,
            (0..s.len() as u64).collect::<Vec<_>>(),
            "app {i}: gaps"
        );
    }
    for (i, app) in net.apps.iter().enumerate() {
        let txs = app.transactions();
        let unique: HashSet<&String> = txs.iter().collect();
        assert_eq!(
            unique.len(),
            txs.len(),
            "app {i} received a transaction twice"
        );
        assert_eq!(
            txs.len(),
            TOTAL_TXS,
            "app {i} received unknown transactions"
        );
    }

    // What /blocks serves agrees with what the apps received.
    for (i, node) in net.nodes.iter().enumerate() {
        let received = net.apps[i].blocks.lock().unwrap().clone();
        let mut start = 0;
        while start < received.len() {
            let (status, body) =
                http_get(node.service_listen, &format!("/blocks/{start}?count=50")).unwrap();
            assert_eq!(status, 200, "{body}");
            let served: Vec<hearsay_proxy::Block> = serde_json::from_str(&body).unwrap();
            assert!(!served.is_empty() && served.len() <= 50);
            for block in &served {
                let Some(app_block) = received.get(block.body.index as usize) else {
                    break;
                };
                assert_eq!(block.body.transactions, app_block.body.transactions);
                assert_eq!(block.body.round_received, app_block.body.round_received);
                assert_eq!(block.body.prev_hash, app_block.body.prev_hash);
            }
            start += served.len();
        }
        let (status, stats) = http_get(node.service_listen, "/stats").unwrap();
        assert_eq!(status, 200);
        let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
        for key in [
            "consensus_events",
            "id",
            "last_block_index",
            "last_consensus_round",
            "last_peer_change",
            "moniker",
            "num_peers",
            "state",
            "transaction_pool",
            "transactions",
            "undetermined_events",
        ] {
            assert!(stats[key].is_string(), "/stats {key} is {}", stats[key]);
        }
        assert_eq!(stats["state"], "Babbling");
        assert_eq!(stats["num_peers"], "4");
        assert_eq!(stats["moniker"], node.moniker);
    }
    // /graph: the recent DAG of every creator, with consensus facts.
    let (status, graph) = http_get(net.nodes[0].service_listen, "/graph").unwrap();
    assert_eq!(status, 200);
    let graph: serde_json::Value = serde_json::from_str(&graph).unwrap();
    let creators = graph["ParticipantEvents"].as_object().unwrap();
    assert_eq!(creators.len(), 4);
    let events: Vec<&serde_json::Value> = creators
        .values()
        .flat_map(|c| c.as_object().unwrap().values())
        .collect();
    assert!(
        events.len() > 4 && events.len() <= 2000,
        "{} events",
        events.len()
    );
    assert!(events
        .iter()
        .all(|e| e["Round"].is_u64() && e["Witness"].is_boolean()));
    assert!(events.iter().any(|e| e["Famous"] == true));
    assert!(!graph["Rounds"].as_array().unwrap().is_empty());

    // A clean stop on SIGTERM.
    for i in 0..4 {
        let status = net.terminate(i).expect("was running");
        assert!(status.success(), "node {i} exited with {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_node_does_not_stop_the_others_and_catches_up_on_restart() {
    let mut net = Network::create(4).await;
    net.start_all();
    let first = submit_everywhere(&net, "before", 200).await;
    let wanted: HashSet<String> = first.into_iter().collect();
    net.wait_for(
        "the first batch everywhere",
        Duration::from_secs(60),
        |net| net.apps.iter().all(|a| has_all(&a.transactions(), &wanted)),
    )
    .await;

    net.kill(3);
    let mut during = Vec::new();
    for (node, info) in net.nodes.iter().enumerate().take(3) {
        let mut proxy = RawProxy::connect(info.proxy_listen);
        for i in 0..100 {
            let tx = format!("during-{node}-{i}");
            assert_eq!(proxy.submit(i, tx.as_bytes())["result"], true);
            during.push(tx);
        }
    }
    let during: HashSet<String> = during.into_iter().collect();
    wait_ordered(
        &net,
        &[0, 1, 2],
        "the three live nodes to commit without the fourth",
        &during,
        Duration::from_secs(60),
    )
    .await;

    // Restarted from its datadir, node 3 resumes from its store (its own events included, so
    // it never signs an index twice), catches up from its peers, and delivers to its app only
    // the blocks the app had not acknowledged: the old and new apps together hold every block
    // once (at most the one block in flight at the kill can come twice: at-least-once).
    let before = net.apps[3].summary();
    net.restart_app(3).await;
    net.start(3);
    net.wait_for(
        "the restarted node to catch up",
        Duration::from_secs(90),
        |net| {
            let mut txs: Vec<String> = before.iter().flat_map(|(_, t)| t.clone()).collect();
            txs.extend(net.apps[3].transactions());
            has_all(&txs, &wanted) && has_all(&txs, &during)
        },
    )
    .await;
    let after = net.apps[3].summary();
    let reference = net.apps[0].summary();
    let last_before = before.last().map(|(i, _)| *i);
    let first_after = after.first().map(|(i, _)| *i).unwrap();
    assert!(
        last_before.is_some_and(|last| first_after == last + 1 || first_after == last),
        "delivery resumed at block {first_after} after block {last_before:?}"
    );
    let mut combined = before.clone();
    combined.retain(|(i, _)| *i < first_after);
    combined.extend(after);
    let common = reference.len().min(combined.len());
    assert_eq!(combined[..common], reference[..common]);
    assert!(
        std::fs::read_to_string(net.log_path(3))
            .unwrap()
            .contains("resumed from the store"),
        "node 3 did not resume from its store"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_clear_errors_and_the_node_keeps_serving() {
    let mut net = Network::create(4).await;
    // Three of four validators are a supermajority; node 3's key plays a peer that misbehaves.
    for i in 0..3 {
        net.start(i);
    }
    let node = net.nodes[0].clone();

    // Proxy port: malformed, unknown method, bad params, non-base64, oversized.
    let mut proxy = RawProxy::connect(node.proxy_listen);
    let answer = proxy
        .call_raw(br#"{"method":"Babble.SubmitTx","params":["%%%"],"id":1}"#)
        .unwrap();
    assert!(
        answer.contains("\"id\":1") && answer.contains("base64"),
        "{answer}"
    );
    let answer = proxy
        .call_raw(br#"{"method":"Babble.Nope","params":[],"id":2}"#)
        .unwrap();
    assert!(
        answer.contains("\"id\":2") && answer.contains("Babble.Nope"),
        "{answer}"
    );
    let answer = proxy
        .call_raw(br#"{"method":"Babble.SubmitTx","params":["YQ==","YQ=="],"id":3}"#)
        .unwrap();
    assert!(
        answer.contains("\"id\":3") && answer.contains("\"error\":\""),
        "{answer}"
    );
    let answer = proxy.call_raw(b"{\"method\": nonsense}").unwrap();
    assert!(answer.contains("\"error\":\""), "{answer}");
    let mut big = RawProxy::connect(node.proxy_listen);
    let mut oversized = br#"{"method":"Babble.SubmitTx","params":[""#.to_vec();
    oversized.extend(std::iter::repeat_n(b'A', 17 << 20));
    oversized.extend(br#""],"id":4}"#);
    let answer = big.call_raw(&oversized).unwrap_or_default();
    assert!(
        answer.is_empty() || answer.contains("\"error\":\""),
        "{answer}"
    );

    // HTTP: bad and missing parameters.
    for (path, status) in [
        ("/block/abc", 400),
        ("/block/99999", 404),
        ("/blocks/0?count=0", 400),
        ("/blocks/0?count=51", 400),
        ("/blocks/-1", 400),
        ("/validators/x", 400),
        ("/nowhere", 404),
    ] {
        let (got, body) = http_get(node.service_listen, path).unwrap();
        assert_eq!(got, status, "{path}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(json["error"].is_string(), "{path}: {body}");
    }

    // Gossip port: UDP garbage, an unknown key, and a validator sending badly signed events.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for size in [1, 100, 1200, 60_000] {
        let _ = udp.send_to(&vec![0xAB; size], node.listen);
    }
    let stranger = hashgraph::SecretKey::from_seed(b"not a validator");
    let (transport, _inbound) = hearsay_net::QuicTransport::bind(
        "127.0.0.1:0".parse().unwrap(),
        stranger.clone(),
        std::sync::Arc::new(|_: &hashgraph::PublicKey| true),
        hearsay_net::TransportConfig::default(),
    )
    .unwrap();
    let refused = transport
        .request(
            peer_key(&node.pubkey),
            node.listen,
            hearsay_net::Request::FetchEvents(vec![]),
        )
        .await;
    // A stranger may connect (to ask to join) but gets nothing else.
    assert!(
        matches!(&refused, Ok(hearsay_net::Response::Error(text)) if text.contains("not a validator")),
        "{refused:?}"
    );
    // A join request that names another key than the connection's, or is not signed by its
    // subject, is refused with the reason.
    let someone = hashgraph::SecretKey::from_seed(b"someone else");
    let bad_joins = [
        hashgraph::InternalTransaction::new(
            hashgraph::InternalTransactionKind::PeerAdd,
            hashgraph::Peer::new(someone.public_key(), "127.0.0.1:9", "someone"),
            &someone,
        ),
        hashgraph::InternalTransaction::new(
            hashgraph::InternalTransactionKind::PeerAdd,
            hashgraph::Peer::new(stranger.public_key(), "127.0.0.1:9", "stranger"),
            &someone,
        ),
    ];
    for join in bad_joins {
        let answer = transport
            .request(
                peer_key(&node.pubkey),
                node.listen,
                hearsay_net::Request::Join(join),
            )
            .await;
        assert!(
            matches!(&answer, Ok(hearsay_net::Response::Error(text)) if text.contains("not a valid join request")),
            "{answer:?}"
        );
    }
    transport.close().await;

    let key3 = node_key(&net, 3);
    let (insider, _inbound) = transport_as(&key3, "127.0.0.1:0".parse().unwrap());
    let good = hashgraph::EventBody {
        creator: key3.public_key(),
        index: 0,
        self_parent: None,
        other_parent: None,
        timestamp: 1,
        transactions: vec![b"forged".to_vec()],
        internal_transactions: vec![],
        block_signatures: vec![],
    }
    .sign(&key3);
    let forged = hashgraph::Event::from_parts(good.body().clone(), hashgraph::Signature([7; 64]));
    // Sent again and again: each time refused, and the operator warned once, not each time.
    for _ in 0..5 {
        let answer = insider
            .request(
                peer_key(&node.pubkey),
                node.listen,
                hearsay_net::Request::EagerSync(vec![forged.to_bytes(), vec![1, 2, 3]]),
            )
            .await
            .unwrap();
        assert!(
            !matches!(answer, hearsay_net::Response::Error(ref e) if e.contains("shutting down")),
            "{answer:?}"
        );
    }
    insider.close().await;
    let log = std::fs::read_to_string(net.log_path(0)).unwrap();
    let warned = log
        .lines()
        .filter(|l| l.contains("peer sent events that fail decoding or signature checks"))
        .count();
    assert_eq!(warned, 1, "{}", net.log_tail(0, 20));
    let (_, metrics) = http_get(node.service_listen, "/metrics").unwrap();
    let rejected: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hearsay_events_rejected_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(rejected >= 10.0, "rejected {rejected}\n{metrics}");

    // After all that, the three nodes still order transactions.
    let mut proxy = RawProxy::connect(node.proxy_listen);
    assert_eq!(proxy.submit(9, b"still alive")["result"], true);
    net.wait_for(
        "a transaction after the bad input",
        Duration::from_secs(60),
        |net| {
            net.apps[..3]
                .iter()
                .all(|a| a.transactions().iter().any(|t| t == "still alive"))
        },
    )
    .await;
    assert!(
        net.apps
            .iter()
            .all(|a| !a.transactions().iter().any(|t| t == "forged")),
        "a badly signed event was ordered"
    );
}

/// Node `i`'s secret key, from its datadir: the test plays that validator.
fn node_key(net: &Network, i: usize) -> hashgraph::SecretKey {
    let hex = std::fs::read_to_string(net.nodes[i].datadir.join("priv_key")).unwrap();
    hashgraph::SecretKey::from_hex(&hex).unwrap()
}

/// A QUIC transport on `addr` proving `key`, answering anyone.
fn transport_as(
    key: &hashgraph::SecretKey,
    addr: std::net::SocketAddr,
) -> (hearsay_net::QuicTransport, hearsay_net::Inbound) {
    hearsay_net::QuicTransport::bind(
        addr,
        key.clone(),
        std::sync::Arc::new(|_: &hashgraph::PublicKey| true),
        hearsay_net::TransportConfig::default(),
    )
    .unwrap()
}

fn peer_key(hex: &str) -> hashgraph::PublicKey {
    hashgraph::PublicKey::from_hex(hex).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_absent_app_delays_delivery_but_loses_and_skips_nothing() {
    let mut net = Network::create(4).await;
    net.stop_app(0).await;
    net.start_all();
    let sent = submit_everywhere(&net, "while-away", 300).await;
    let wanted: HashSet<String> = sent.into_iter().collect();
    net.wait_for("the other apps to commit", Duration::from_secs(60), |net| {
        net.apps[1..]
            .iter()
            .all(|a| has_all(&a.transactions(), &wanted))
    })
    .await;
    // The node says its app is behind.
    let (_, stats) = http_get(net.nodes[0].service_listen, "/stats").unwrap();
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["app_reachable"], "false", "{stats}");
    assert_ne!(stats["blocks_waiting_for_app"], "0", "{stats}");

    // The app comes up: it receives every block from the first, in order, exactly once.
    net.restart_app(0).await;
    net.wait_for("the late app to catch up", Duration::from_secs(60), |net| {
        has_all(&net.apps[0].transactions(), &wanted)
    })
    .await;
    let late = net.apps[0].summary();
    let reference = net.apps[1].summary();
    let common = late.len().min(reference.len());
    assert_eq!(late[..common], reference[..common]);
    assert_eq!(late[0].0, 0, "delivery starts at block 0");
    let txs = net.apps[0].transactions();
    assert_eq!(
        txs.iter().collect::<HashSet<_>>().len(),
        txs.len(),
        "a block came twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn maintenance_mode_and_suspension_without_quorum() {
    let mut net = Network::create(4).await;
    // Node 0 starts suspended: it serves but creates no events.
    net.start_with(0, &["--maintenance-mode"]);
    net.wait_for("node 0 to serve /stats", Duration::from_secs(20), |net| {
        net.stats(0)["state"] == "Suspended"
    })
    .await;
    let mut proxy = RawProxy::connect(net.nodes[0].proxy_listen);
    assert_eq!(proxy.submit(1, b"kept in the pool")["result"], true);

    // Nodes 1 and 2 alone (2 of 4: no supermajority) cannot decide anything; past
    // --suspend-limit × 4 undetermined events they suspend themselves.
    net.start_with(1, &["--suspend-limit", "2"]);
    net.start_with(2, &["--suspend-limit", "2"]);
    let mut proxy = RawProxy::connect(net.nodes[1].proxy_listen);
    assert_eq!(proxy.submit(1, b"no quorum")["result"], true);
    net.wait_for("nodes 1 and 2 to suspend", Duration::from_secs(60), |net| {
        net.stats(1)["state"] == "Suspended" && net.stats(2)["state"] == "Suspended"
    })
    .await;
    let stats = net.stats(1);
    let undetermined: u64 = stats["undetermined_events"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(undetermined > 8, "{stats}");
    assert_eq!(stats["last_block_index"], "-1", "{stats}");
    // The node in maintenance mode created nothing, and still holds its transaction.
    let stats0 = net.stats(0);
    assert_eq!(stats0["self_events"], "0", "{stats0}");
    assert_eq!(stats0["transaction_pool"], "1", "{stats0}");
    assert!(net.apps.iter().all(|a| a.summary().is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_of_four_stopped_the_others_suspend_and_all_resume_when_they_return() {
    let mut net = Network::create(4).await;
    for i in 0..4 {
        net.start_with(i, &["--suspend-limit", "5"]);
    }
    let mut wanted = deliver_everywhere(&net, "first", 200, Duration::from_secs(60)).await;

    // Two of four gone: no supermajority; the two left suspend themselves while they keep
    // accepting transactions.
    net.kill(0);
    net.kill(3);
    wanted.extend(common::submit_via(&net, &[1, 2], "alone", 100).await);
    net.wait_for("nodes 1 and 2 to suspend", Duration::from_secs(60), |net| {
        net.stats(1)["state"] == "Suspended" && net.stats(2)["state"] == "Suspended"
    })
    .await;

    // The two come back from their datadirs: all four resume on their own, nothing deleted.
    net.start_with(0, &["--suspend-limit", "5"]);
    net.start_with(3, &["--suspend-limit", "5"]);
    net.wait_for(
        "all four to be Babbling again",
        Duration::from_secs(120),
        |net| (0..4).all(|i| net.stats(i)["state"] == "Babbling"),
    )
    .await;
    wanted.extend(submit_everywhere(&net, "after", 200).await);
    net.wait_for(
        "every transaction, those of the suspension included",
        Duration::from_secs(120),
        |net| net.apps.iter().all(|a| has_all(&a.transactions(), &wanted)),
    )
    .await;
    common::assert_identical_blocks(&net, &[0, 1, 2, 3]);
}

/// Every validator's signature of a block stays with it when the node is killed (no orderly
/// shutdown to store anything held in memory).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn block_signatures_survive_a_kill() {
    let mut net = Network::create(4).await;
    net.start_all();
    deliver_everywhere(&net, "signed", 40, Duration::from_secs(60)).await;
    let blocks = net.stats(0)["last_block_index"]
        .as_str()
        .and_then(|s| s.parse::<u64>().ok())
        .expect("node 0 made blocks")
        + 1;
    net.wait_for(
        "every validator's signature on every block at node 0",
        Duration::from_secs(30),
        |net| (0..blocks).all(|b| block_signers(net, b) == 4),
    )
    .await;
    net.kill(0);
    net.start(0);
    net.wait_for("node 0 to run again", Duration::from_secs(20), |net| {
        net.stats(0)["state"] == "Babbling"
    })
    .await;
    let after: Vec<usize> = (0..blocks).map(|b| block_signers(&net, b)).collect();
    assert!(
        after.iter().all(|&n| n == 4),
        "signatures per block after the kill: {after:?}\n{}",
        net.log_tail(0, 20)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_whole_network_restart_continues_the_chain_and_delivers_nothing_twice() {
    let mut net = Network::create(4).await;
    net.start_all();
    let first = deliver_everywhere(&net, "first", 200, Duration::from_secs(60)).await;
    let before: Vec<_> = net.apps.iter().map(|a| a.summary()).collect();
    // Every validator's signature of block 0 reaches node 0 (they ride in later events).
    net.wait_for(
        "four signatures on block 0",
        Duration::from_secs(30),
        |net| block_signers(net, 0) == 4,
    )
    .await;
    for i in 0..4 {
        assert!(net.terminate(i).expect("running").success());
    }
    // A second process on a datadir in use is refused before it touches anything.
    net.start(0);
    net.wait_for("node 0 to run again", Duration::from_secs(20), |net| {
        net.stats(0)["state"] == "Babbling"
    })
    .await;
    // The signatures were stored with the block.
    assert_eq!(
        block_signers(&net, 0),
        4,
        "block 0 lost signatures across the restart"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hearsay"))
        .args(["run", "--datadir"])
        .arg(&net.nodes[0].datadir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("locked by another process"), "{err}");

    for i in 0..4 {
        net.restart_app(i).await;
    }
    for i in 1..4 {
        net.start(i);
    }
    deliver_everywhere(&net, "second", 200, Duration::from_secs(90)).await;
    for (i, app) in net.apps.iter().enumerate() {
        let after = app.summary();
        let last_before = before[i].last().expect("blocks before").0;
        assert_eq!(
            after.first().map(|(index, _)| *index),
            Some(last_before + 1),
            "app {i}: the chain must continue at the next index"
        );
        let txs = app.transactions();
        assert!(
            !txs.iter().any(|t| first.contains(t)),
            "app {i} received a block of the first batch again"
        );
    }
    let reference = net.apps[0].summary();
    for (i, app) in net.apps.iter().enumerate() {
        let s = app.summary();
        let common = s.len().min(reference.len());
        assert_eq!(s[..common], reference[..common], "app {i} differs");
    }

    // --bootstrap (Babble's): a clean app gets every block again, from block 0.
    let mut full = before[3].clone();
    full.extend(net.apps[3].summary());
    assert!(net.terminate(3).expect("running").success());
    net.restart_app(3).await;
    net.start_with(3, &["--bootstrap"]);
    let blocks = full.len();
    net.wait_for(
        "a bootstrapped app to get every block",
        Duration::from_secs(60),
        |net| net.apps[3].summary().len() >= blocks,
    )
    .await;
    assert_eq!(net.apps[3].summary()[..blocks], full[..]);
}

/// Decided history leaves memory (events in memory stay a fraction of those ordered), a node
/// down while the others went far past what they keep in memory is served the history it
/// lacks from their databases, and its own restart resumes from a checkpoint instead of
/// replaying everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_leaves_memory_and_a_far_behind_node_is_served_from_the_store() {
    let mut net = Network::create(4).await;
    net.start_all();
    let mut wanted = HashSet::new();
    let peak_in_memory = leave_node_3_behind(&mut net, &mut wanted).await;
    let ordered = stat(&net, 0, "consensus_events").unwrap();
    assert!(
        peak_in_memory * 2 < ordered,
        "node 0 held up to {peak_in_memory} events in memory of {ordered} ordered"
    );

    net.start(3);
    net.wait_for(
        "the node that was down to catch up",
        Duration::from_secs(120),
        |net| net.apps.iter().all(|a| has_all(&a.transactions(), &wanted)),
    )
    .await;
    let reference = net.apps[0].summary();
    net.wait_for("identical blocks", Duration::from_secs(60), |net| {
        net.apps.iter().all(|a| {
            let mine = a.summary();
            let common = mine.len().min(reference.len());
            mine[..common] == reference[..common]
        })
    })
    .await;
    for app in &net.apps {
        let txs = app.transactions();
        assert_eq!(
            txs.len(),
            txs.iter().collect::<HashSet<_>>().len(),
            "a transaction was delivered twice"
        );
    }
    let log = std::fs::read_to_string(net.log_path(3)).unwrap();
    let resumed = log
        .lines()
        .find(|l| l.contains("resumed from the store"))
        .unwrap_or_else(|| panic!("node 3 did not resume from its store:\n{log}"));
    assert!(
        !resumed.contains("checkpoint_events=0"),
        "node 3 replayed everything instead of resuming from a checkpoint: {resumed}"
    );
}

/// Under load, runs the network until round 40 (checkpoints on every node), then kills node 3
/// and runs the other three 150 rounds further (past the 50 kept in memory by default).
/// Returns the most events node 0 held in memory meanwhile.
async fn leave_node_3_behind(net: &mut Network, wanted: &mut HashSet<String>) -> u64 {
    // Progress is bounded by a deadline, not a batch count: how many batches a round takes
    // depends on the machine.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut batch = 0;
    while stat(net, 0, "last_consensus_round").unwrap_or(0) < 40 {
        wanted.extend(submit_everywhere(net, &format!("warm{batch}"), 40).await);
        batch += 1;
        assert!(
            std::time::Instant::now() < deadline,
            "no progress to round 40:\n{}",
            net.describe()
        );
    }
    net.wait_for("the warm-up everywhere", Duration::from_secs(60), |net| {
        net.apps.iter().all(|a| has_all(&a.transactions(), wanted))
    })
    .await;

    net.kill(3);
    let target = stat(net, 0, "last_consensus_round").unwrap() + 150;
    let mut peak_in_memory = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    let mut batch = 0;
    while stat(net, 0, "last_consensus_round").unwrap_or(0) < target {
        wanted.extend(submit_everywhere_but(net, 3, &format!("down{batch}"), 30).await);
        batch += 1;
        assert!(
            std::time::Instant::now() < deadline,
            "no progress to round {target}:\n{}",
            net.describe()
        );
        peak_in_memory = peak_in_memory.max(stat(net, 0, "events_in_memory").unwrap_or(0));
    }
    peak_in_memory
}

/// A validator's flags to prune history 50 rounds behind consensus.
const PRUNE_50: [&str; 2] = ["--prune-rounds", "50"];

/// Four validators with [`PRUNE_50`], node 3 left 150 rounds behind (stopped).
async fn pruning_network_with_node_3_behind() -> Network {
    let mut net = Network::create(4).await;
    for i in 0..4 {
        net.start_with(i, &PRUNE_50);
    }
    leave_node_3_behind(&mut net, &mut HashSet::new()).await;
    net
}

/// Submits a last load through all four nodes and waits until every app ordered it.
async fn order_a_last_load_everywhere(net: &Network) {
    let last: HashSet<String> = submit_everywhere(net, "last", 40)
        .await
        .into_iter()
        .collect();
    net.wait_for(
        "all four to order the last load",
        Duration::from_secs(60),
        |net| net.apps.iter().all(|a| has_all(&a.transactions(), &last)),
    )
    .await;
}

/// Writes into node `i`'s stopped store an event of its own that it signed and never sent,
/// as a crash just after signing leaves one: built on the latest event of node 0 it holds,
/// carrying the transaction `tx`.
fn sign_an_unsent_event(net: &Network, i: usize, tx: &str) {
    use hearsay::store::Store;
    let datadir = &net.nodes[i].datadir;
    let key = hearsay::datadir::read_key(datadir).unwrap();
    let store = hearsay::store::rocks::RocksStore::open(&datadir.join("db")).unwrap();
    let (head, head_id) = store.self_head().unwrap().expect("node has events");
    let node0 = peer_key(&net.nodes[0].pubkey);
    let (_, latest) = store
        .creator_events(&node0, 0, usize::MAX)
        .unwrap()
        .pop()
        .expect("node 0's events are stored");
    let orphan = hashgraph::EventBody {
        creator: key.public_key(),
        index: head + 1,
        self_parent: Some(head_id),
        other_parent: Some(latest.id()),
        timestamp: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64,
        transactions: vec![tx.as_bytes().to_vec()],
        internal_transactions: vec![],
        block_signatures: vec![],
    }
    .sign(&key);
    store.put_self_event(&orphan, &[]).unwrap();
}

/// With `--fast-sync`, a node back from 150 rounds down (more than `--fast-sync-rounds 50`,
/// estimated from the events its peers have and it lacks) resumes at an anchored block
/// instead of catching up by gossip, and then orders what all four order. The event it
/// signed last and never sent (written into its store while it is down) is too old for
/// anyone to accept: it is abandoned, its transaction ordered once through a new event.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_far_behind_fast_syncs_when_allowed_to() {
    let mut net = Network::create(4).await;
    net.start_all();
    let mut wanted = HashSet::new();
    leave_node_3_behind(&mut net, &mut wanted).await;
    let ordered_while_down = net.apps[0].summary().len();
    sign_an_unsent_event(&net, 3, "unsent");

    net.start_with(3, &["--fast-sync", "--fast-sync-rounds", "50"]);
    net.wait_for("node 3 to fast-sync", Duration::from_secs(60), |net| {
        !net.apps[3].restores.lock().unwrap().is_empty()
    })
    .await;
    order_a_last_load_everywhere(&net).await;
    let log = std::fs::read_to_string(net.log_path(3)).unwrap();
    assert!(
        log.contains("far behind its peers"),
        "{}",
        net.log_tail(3, 30)
    );
    // It skipped blocks rather than receiving every one made while it was down.
    let received = net.apps[3].summary();
    assert!(
        received.windows(2).any(|w| w[1].0 > w[0].0 + 1),
        "node 3's app got every block ({} of {ordered_while_down}+): no fast-sync",
        received.len()
    );
    assert_same_states(&net, 3, 0);
    assert!(log.contains("abandoned"), "{}", net.log_tail(3, 30));
    net.wait_for(
        "every app to order the unsent event's transaction",
        Duration::from_secs(60),
        |net| {
            net.apps
                .iter()
                .all(|a| a.transactions().iter().any(|t| t == "unsent"))
        },
    )
    .await;
    assert_unsent_ordered_once_without_forks(&net);
}

/// A node back from far behind catches up by gossip, and its event signed last and never
/// sent names history the others dropped: they can place neither it nor any event the node
/// builds on it. Seeing that the others take none of its new events, the node says it needs
/// a fast-sync; restarted with `--fast-sync` (and `--fast-sync-rounds 0`: it is not behind),
/// it sees the same and resumes from a fast-sync, whose window lacks those events, which are
/// then abandoned: every app orders the unsent transaction once, and those sent through node
/// 3 meanwhile. (Before, node 3 went on making events no one took, and its transactions were
/// never ordered.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_whose_new_events_no_one_takes_resumes_from_a_fast_sync() {
    let mut net = Network::create(4).await;
    net.start_all();
    leave_node_3_behind(&mut net, &mut HashSet::new()).await;
    sign_an_unsent_event(&net, 3, "unsent");
    net.start(3);
    let through_3: HashSet<String> = common::submit_via(&net, &[3], "through-3", 20)
        .await
        .into_iter()
        .collect();
    net.wait_for(
        "node 3 to see its events refused and say it needs a fast-sync",
        Duration::from_secs(60),
        |net| net.stats(3)["needs_fast_sync"] == "true",
    )
    .await;
    let log = std::fs::read_to_string(net.log_path(3)).unwrap();
    assert!(
        log.contains("have taken none of our events"),
        "{}",
        net.log_tail(3, 30)
    );
    assert_eq!(net.terminate(3).map(|s| s.success()), Some(true));
    net.start_with(3, &["--fast-sync", "--fast-sync-rounds", "0"]);
    net.wait_for(
        "every app to order the unsent event's transaction and those sent through node 3",
        Duration::from_secs(90),
        |net| {
            net.apps.iter().all(|a| {
                let ordered = a.transactions();
                ordered.iter().any(|t| t == "unsent") && has_all(&ordered, &through_3)
            })
        },
    )
    .await;
    let log = std::fs::read_to_string(net.log_path(3)).unwrap();
    assert!(
        log.contains("have taken none of our events") && log.contains("abandoned"),
        "{}",
        net.log_tail(3, 30)
    );
    let (_, metrics) = http_get(net.nodes[3].service_listen, "/metrics").unwrap();
    assert!(
        metrics.lines().any(|l| l == "hearsay_fast_syncs_total 1"),
        "{metrics}"
    );
    assert_unsent_ordered_once_without_forks(&net);
}

/// Every app got the unsent event's transaction once, and node 3 went on at the abandoned
/// event's index without any node seeing it fork.
fn assert_unsent_ordered_once_without_forks(net: &Network) {
    for (i, app) in net.apps.iter().enumerate() {
        let copies = app.transactions().iter().filter(|t| *t == "unsent").count();
        assert_eq!(
            copies, 1,
            "app {i} got the unsent event's transaction {copies} times"
        );
        assert_eq!(stat(net, i, "forkers"), Some(0), "{}", net.describe());
    }
}

/// Node `i`'s `count` latest own events in its stopped store, encoded, by id.
fn latest_own_events(
    net: &Network,
    i: usize,
    count: u64,
) -> std::collections::HashMap<hashgraph::Hash, Vec<u8>> {
    use hearsay::store::Store;
    let store = hearsay::store::rocks::RocksStore::open(&net.nodes[i].datadir.join("db")).unwrap();
    let (head, _) = store.self_head().unwrap().expect("node has events");
    (head.saturating_sub(count - 1)..=head)
        .filter_map(|index| store.self_event(index).unwrap())
        .map(|event| (event.id(), event.to_bytes()))
        .collect()
}

/// A node back from far behind (the others pruned what it lacks) fast-syncs, and the event it
/// signed last and never sent is not in the window. A validator says it holds that event (the
/// test process, in node 2's place, claiming it in every sync answer) and is asked to show
/// it: the first time it does, and the node fast-syncs again for a window that holds it;
/// after that it cannot, and counts as lacking it like the others: the event is abandoned
/// and its transaction ordered through a new one. (Before, the claim alone sent the node
/// into fast-sync again, from the same window, for good: it created no event and the three
/// left could order nothing.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_claiming_to_hold_our_unsent_event_must_show_it() {
    // Pruned history, so that node 3 cannot catch up by gossip (the others' pushes could
    // bring it back before its own pulls showed it far behind) and must fast-sync.
    let mut net = pruning_network_with_node_3_behind().await;
    sign_an_unsent_event(&net, 3, "unsent");
    // What the liar can show: node 3's latest events (the one before the unsent one may
    // have been unsent too, when node 3 was killed).
    let showable = latest_own_events(&net, 3, 4);
    net.kill(2);
    let node3 = peer_key(&net.nodes[3].pubkey);
    let (liar, mut inbound) = transport_as(&node_key(&net, 2), net.nodes[2].listen);
    let asked_to_show = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = std::sync::Arc::clone(&asked_to_show);
    let serving = tokio::spawn(async move {
        while let Some(request) = inbound.recv().await {
            let answer = match &request.request {
                hearsay_net::Request::Sync(sync) => {
                    // Whatever node 3 holds of its own events, one more.
                    let mut known = sync.known.clone();
                    known
                        .iter_mut()
                        .filter(|(creator, _)| *creator == node3)
                        .for_each(|(_, count)| *count += 1);
                    hearsay_net::Response::Sync(hearsay_net::SyncResponse {
                        events: Vec::new(),
                        known,
                        more: false,
                    })
                }
                hearsay_net::Request::EagerSync(events) => hearsay_net::Response::EagerSync {
                    accepted: events.len() as u32,
                },
                hearsay_net::Request::FetchEvents(ids) => {
                    let asked = counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let shown = if asked == 0 {
                        ids.iter()
                            .filter_map(|id| showable.get(id).cloned())
                            .collect()
                    } else {
                        Vec::new()
                    };
                    hearsay_net::Response::Events(shown)
                }
                _ => hearsay_net::Response::Error("nothing here".into()),
            };
            request.respond(answer);
        }
    });

    net.start_with(3, &["--prune-rounds", "50", "--fast-sync"]);
    net.wait_for(
        "nodes 0, 1 and 3 to order the unsent event's transaction",
        Duration::from_secs(90),
        |net| {
            [0, 1, 3]
                .iter()
                .all(|i| net.apps[*i].transactions().iter().any(|t| t == "unsent"))
        },
    )
    .await;
    let last: HashSet<String> = submit_everywhere_but(&net, 2, "last", 30)
        .await
        .into_iter()
        .collect();
    wait_ordered(
        &net,
        &[0, 1, 3],
        "nodes 0, 1 and 3 to order the last load",
        &last,
        Duration::from_secs(60),
    )
    .await;
    let log = std::fs::read_to_string(net.log_path(3)).unwrap();
    assert!(
        log.contains("fast-syncing again")
            && log.contains("did not show them when asked")
            && log.contains("abandoned"),
        "{}",
        net.log_tail(3, 30)
    );
    assert!(asked_to_show.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    let (_, metrics) = http_get(net.nodes[3].service_listen, "/metrics").unwrap();
    // The first fast-sync, and at least one more for the events shown.
    let fast_syncs = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hearsay_fast_syncs_total "))
        .and_then(|n| n.parse::<f64>().ok());
    assert!(
        fast_syncs.is_some_and(|n| n >= 2.0),
        "node 3 should have fast-synced again for the event shown:\n{metrics}"
    );
    for i in [0, 1, 3] {
        let copies = net.apps[i]
            .transactions()
            .iter()
            .filter(|t| *t == "unsent")
            .count();
        assert_eq!(
            copies, 1,
            "app {i} got the unsent event's transaction {copies} times"
        );
    }
    liar.close().await;
    serving.abort();
}

/// With `--prune-rounds`, history beyond the window leaves the database too, and a node that
/// comes back needing it is told so (`/stats` `needs_fast_sync`, a warning naming fast-sync)
/// instead of waiting forever; the others go on; restarted with `--fast-sync`, it catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pruned_history_is_gone_from_disk_and_a_node_needing_it_fast_syncs() {
    let mut net = pruning_network_with_node_3_behind().await;
    net.start_with(3, &PRUNE_50);
    net.wait_for(
        "node 3 to learn that it needs fast-sync",
        Duration::from_secs(60),
        |net| net.stats(3)["needs_fast_sync"] == "true",
    )
    .await;
    let log = std::fs::read_to_string(net.log_path(3)).unwrap();
    assert!(
        log.contains("needs fast-sync"),
        "no warning in node 3's log:\n{log}"
    );
    let more: HashSet<String> = submit_everywhere_but(&net, 3, "after", 30)
        .await
        .into_iter()
        .collect();
    wait_ordered(
        &net,
        &[0, 1, 2],
        "the other three to go on",
        &more,
        Duration::from_secs(60),
    )
    .await;

    // Restarted with --fast-sync, node 3 resumes at an anchored block of its peers: its app is
    // restored from a snapshot, and from there it orders what all four order.
    assert_eq!(net.terminate(3).map(|s| s.success()), Some(true));
    net.start_with(3, &["--prune-rounds", "50", "--fast-sync"]);
    net.wait_for("node 3 to fast-sync", Duration::from_secs(60), |net| {
        !net.apps[3].restores.lock().unwrap().is_empty()
            && net.stats(3)["needs_fast_sync"] == "false"
    })
    .await;
    order_a_last_load_everywhere(&net).await;
    assert_same_states(&net, 3, 0);
    let log = std::fs::read_to_string(net.log_path(3)).unwrap();
    assert!(log.contains("fast-synced"), "{}", net.log_tail(3, 30));

    // Node 0's database no longer holds node 3's first events.
    assert_eq!(net.terminate(0).map(|s| s.success()), Some(true));
    let store = hearsay::store::rocks::RocksStore::open(&net.nodes[0].datadir.join("db")).unwrap();
    use hearsay::store::Store;
    let node3 = peer_key(&net.nodes[3].pubkey);
    let floor = store.pruned_below(&node3).unwrap();
    assert!(floor > 0, "node 0 pruned nothing of node 3's events");
    let first = store.creator_events(&node3, 0, 1).unwrap();
    assert!(
        first.iter().all(|(_, e)| e.index() >= floor),
        "an event below the pruning floor {floor} is still stored"
    );
}

/// A validator that lies about being far ahead (answering syncs with a full answer of garbage
/// events and a known map of a million events each, or that it pruned what they lack) makes
/// the honest nodes with `--fast-sync` try a fast-sync, which finds no anchored block ahead of
/// them: they go on gossiping and ordering instead of fast-syncing for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_claiming_the_others_are_far_behind_cannot_stop_them() {
    let mut net = Network::create(4).await;
    let validators: Vec<hashgraph::PublicKey> =
        net.nodes.iter().map(|n| peer_key(&n.pubkey)).collect();
    let (liar, mut inbound) = transport_as(&node_key(&net, 3), net.nodes[3].listen);
    let claims = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = std::sync::Arc::clone(&claims);
    let serving = tokio::spawn(async move {
        while let Some(request) = inbound.recv().await {
            let answer = match &request.request {
                hearsay_net::Request::Sync(sync) => {
                    let n = counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n % 2 == 0 {
                        hearsay_net::Response::Sync(hearsay_net::SyncResponse {
                            events: vec![vec![0]; sync.limit as usize],
                            known: validators.iter().map(|k| (*k, 1_000_000)).collect(),
                            more: true,
                        })
                    } else {
                        hearsay_net::Response::Pruned {
                            creator: validators[0],
                            below: 1_000_000,
                        }
                    }
                }
                hearsay_net::Request::EagerSync(events) => hearsay_net::Response::EagerSync {
                    accepted: events.len() as u32,
                },
                _ => hearsay_net::Response::Error("nothing here".into()),
            };
            request.respond(answer);
        }
    });
    for i in 0..3 {
        net.start_with(i, &["--fast-sync"]);
    }
    // The liar is heard, and every honest node tries a fast-sync, finds no anchored block
    // ahead of it, and goes on. (Before, a node stayed in fast-sync for good.)
    let heard = |net: &Network, i: usize| {
        std::fs::read_to_string(net.log_path(i))
            .unwrap_or_default()
            .contains("fast-sync found no anchored block ahead of this node's: gossip goes on")
    };
    let warm_up = submit_everywhere_but(&net, 3, "before", 30).await;
    let warm_up: HashSet<String> = warm_up.into_iter().collect();
    net.wait_for(
        "every honest node to hear the liar and go on",
        Duration::from_secs(60),
        |net| (0..3).all(|i| heard(net, i)),
    )
    .await;
    assert!(claims.load(std::sync::atomic::Ordering::Relaxed) >= 3);
    let sent = submit_everywhere_but(&net, 3, "despite-the-liar", 300).await;
    let wanted: HashSet<String> = sent.into_iter().chain(warm_up).collect();
    wait_ordered(
        &net,
        &[0, 1, 2],
        "the honest nodes to order every transaction",
        &wanted,
        Duration::from_secs(90),
    )
    .await;
    for i in 0..3 {
        let (_, metrics) = http_get(net.nodes[i].service_listen, "/metrics").unwrap();
        assert!(
            metrics.lines().any(|l| l == "hearsay_fast_syncs_total 0"),
            "node {i}:\n{metrics}"
        );
        assert_eq!(net.stats(i)["needs_fast_sync"], "false", "node {i}");
    }
    liar.close().await;
    serving.abort();
}
