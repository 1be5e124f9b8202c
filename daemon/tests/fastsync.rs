//! Fast-sync with real `hearsay run` processes: a node joins with `--fast-sync` at the latest
//! anchored block of a network with a long history, instead of replaying it; its app is
//! restored from a peer's snapshot and then holds the same state as the others' after every
//! block.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{
    app_has_all as has_all, assert_identical_blocks, stat, submit_via, BackgroundLoad, Network,
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
    let states = net.apps[4].states();
    assert!(!states.is_empty());
    for (index, state) in states {
        assert_eq!(
            net.apps[0].state_after(index),
            Some(state),
            "the joiner's app state after block {index} differs from node 0's"
        );
    }
    // The history's transactions stayed ordered once everywhere.
    assert_identical_blocks(&net, &[0, 1, 2, 3]);
    let ordered: HashSet<String> = net.apps[0].transactions().into_iter().collect();
    assert!(history.iter().all(|t| ordered.contains(t)));
}
