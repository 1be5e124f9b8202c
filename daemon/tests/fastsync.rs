//! Fast-sync with real `hearsay run` processes: a node joins with `--fast-sync` at the latest
//! anchored block of a network with a long history, instead of replaying it; its app is
//! restored from a peer's snapshot and then holds the same state as the others' after every
//! block. Forged answers from Byzantine peers are refused and an honest one is used.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hashgraph::{Peer, PeerSet, SecretKey};
use hearsay_net::wire::{FastSyncOffer, Response};
use hearsay_net::{QuicTransport, TransportConfig};

use common::{
    app_has_all as has_all, assert_identical_blocks, assert_same_states, stat, submit_via,
    BackgroundLoad, Network,
};

/// Blocks the network orders before the joiner starts: `HEARSAY_TEST_FAST_SYNC_BLOCKS`, or
/// 5,000 (about three minutes).
fn history_blocks() -> u64 {
    std::env::var("HEARSAY_TEST_FAST_SYNC_BLOCKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_joins_with_fast_sync_at_an_anchored_block_and_its_app_state_matches() {
    let blocks = history_blocks();
    let mut net = Network::create(5).await;
    net.limit_validators(4);
    for i in 0..4 {
        net.start(i);
    }
    let load = BackgroundLoad::start(&net, &[0, 1, 2, 3], "history");
    net.wait_for(
        &format!("{blocks} blocks of history"),
        Duration::from_secs(900),
        |net| stat(net, 0, "last_block_index").is_some_and(|b| b + 1 >= blocks),
    )
    .await;

    net.start_with(4, &["--fast-sync"]);
    net.wait_for(
        "the joiner to fast-sync and become a validator",
        Duration::from_secs(120),
        |net| {
            net.stats(4)["state"] == "Babbling" && !net.apps[4].restores.lock().unwrap().is_empty()
        },
    )
    .await;
    let history = load.stop().await;
    let after: HashSet<String> = submit_via(&net, &[4, 0], "after", 60)
        .await
        .into_iter()
        .collect();
    net.wait_for(
        "every app, the joiner's too, to order what was sent after the join",
        Duration::from_secs(60),
        |net| (0..5).all(|i| has_all(net, i, &after)),
    )
    .await;

    // The joiner's app started from the snapshot, far into the history, not from block 0.
    let joined = net.apps[4].summary();
    let first = joined.first().expect("the joiner's app got blocks").0;
    assert!(
        first + 1 >= blocks,
        "the joiner's app got block {first} of a {blocks}-block history: no fast-sync"
    );
    let log = std::fs::read_to_string(net.log_path(4)).unwrap();
    assert!(log.contains("fast-synced"), "{}", net.log_tail(4, 30));
    // Its blocks are the others', index for index, and so is its state after each of them.
    let reference = net.apps[0].summary();
    for (index, txs) in &joined {
        assert_eq!(
            Some(txs),
            reference.get(*index as usize).map(|(_, t)| t),
            "block {index} differs"
        );
    }
    assert!(!net.apps[4].states().is_empty());
    assert_same_states(&net, 4, 0);
    // The history's transactions stayed ordered once everywhere.
    assert_identical_blocks(&net, &[0, 1, 2, 3]);
    let ordered: HashSet<String> = net.apps[0].transactions().into_iter().collect();
    assert!(history.iter().all(|t| ordered.contains(t)));
}

/// How a Byzantine peer forges its first fast-sync answer.
#[derive(Clone, Copy, Debug)]
enum Forgery {
    /// Keeps one signature of the block: not anchored.
    Signatures,
    /// Drops an event from the frame: its hash is not the block's.
    Frame,
    /// Drops a validator from the sets: they do not give the block's peer-set hash.
    PeerSets,
    /// Changes the app snapshot: the restored app reports another state hash.
    Snapshot,
}

fn forge(offer: &mut FastSyncOffer, forgery: Forgery) {
    match forgery {
        Forgery::Signatures => {
            let keep = offer.block.signatures.keys().next().copied();
            offer.block.signatures.retain(|k, _| Some(*k) == keep);
        }
        Forgery::Frame => {
            offer.frame.events.pop();
        }
        Forgery::PeerSets => {
            let set = offer.peer_sets[0].1.clone();
            let first = set.peers()[0].pub_key;
            offer.peer_sets = vec![(0, set.without_peer(&first).unwrap())];
        }
        Forgery::Snapshot => offer.snapshot.push(0),
    }
}

/// A validator as a Byzantine copy of it shows itself: in this process, with the validator's
/// key, it forwards every request to the real one, but forges its first fast-sync answer.
/// Returns the address it listens on.
fn start_forging_proxy(key: SecretKey, real: SocketAddr, forgery: Forgery) -> SocketAddr {
    let listen = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .unwrap();
    let real_key = key.public_key();
    let (transport, mut inbound) =
        QuicTransport::bind(listen, key, Arc::new(|_| true), TransportConfig::default()).unwrap();
    let transport = Arc::new(transport);
    let addr = transport.local_addr();
    let forged = Arc::new(AtomicBool::new(false));
    tokio::spawn(async move {
        while let Some(request) = inbound.recv().await {
            let (transport, forged) = (Arc::clone(&transport), Arc::clone(&forged));
            tokio::spawn(async move {
                let answer = transport
                    .request(real_key, real, request.request.clone())
                    .await
                    .unwrap_or_else(|e| Response::Error(e.to_string()));
                let answer = match answer {
                    Response::FastSync(mut offer) if !forged.swap(true, Ordering::Relaxed) => {
                        forge(&mut offer, forgery);
                        Response::FastSync(offer)
                    }
                    other => other,
                };
                request.respond(answer);
            });
        }
    });
    addr
}

/// Every validator the joiner gossips with is first reached through a Byzantine copy that
/// forges its first fast-sync answer, each in another way: the joiner refuses all four with
/// the reason, tries again, and resumes from an honest answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_fast_sync_answers_are_refused_and_an_honest_one_is_used() {
    let mut net = Network::create(5).await;
    net.limit_validators(4);
    for i in 0..4 {
        net.start(i);
    }
    let history: HashSet<String> = submit_via(&net, &[0, 1, 2, 3], "history", 400)
        .await
        .into_iter()
        .collect();
    net.wait_for(
        "an anchored block everywhere",
        Duration::from_secs(60),
        |net| {
            (0..4)
                .all(|i| has_all(net, i, &history) && stat(net, i, "last_anchored_block").is_some())
        },
    )
    .await;

    // The joiner asks to join at the real addresses (peers.json) but knows the validators, for
    // gossip and fast-sync, at the forging copies' (its genesis file).
    let forgeries = [
        Forgery::Signatures,
        Forgery::Frame,
        Forgery::PeerSets,
        Forgery::Snapshot,
    ];
    let mut copies = Vec::new();
    for (k, forgery) in forgeries.into_iter().enumerate() {
        let key = hearsay::datadir::read_key(&net.nodes[k].datadir).unwrap();
        let addr = start_forging_proxy(key.clone(), net.nodes[k].listen, forgery);
        copies.push(Peer::new(
            key.public_key(),
            addr.to_string(),
            net.nodes[k].moniker.clone(),
        ));
    }
    let genesis = net.nodes[4]
        .datadir
        .join(hearsay::datadir::GENESIS_PEERS[0]);
    hearsay::datadir::write_peers(&genesis, &PeerSet::new(copies).unwrap()).unwrap();

    net.start_with(4, &["--fast-sync"]);
    net.wait_for("the joiner to fast-sync", Duration::from_secs(60), |net| {
        std::fs::read_to_string(net.log_path(4)).is_ok_and(|log| log.contains("fast-synced"))
    })
    .await;
    let log = std::fs::read_to_string(net.log_path(4)).unwrap();
    for reason in [
        "it is not anchored",
        "does not match the block's frame hash",
        "validator sets given do not put the block's set",
        "another state hash",
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains("refused a peer's fast-sync answer") && l.contains(reason)),
            "no refusal for {reason:?}:\n{}",
            net.log_tail(4, 40)
        );
    }

    let after: HashSet<String> = submit_via(&net, &[4, 1], "after", 40)
        .await
        .into_iter()
        .collect();
    net.wait_for(
        "every app to order what was sent after",
        Duration::from_secs(60),
        |net| (0..5).all(|i| has_all(net, i, &after)),
    )
    .await;
    assert_same_states(&net, 4, 0);
}
