//! Dynamic membership with real `hearsay run` processes: a node outside the validator set
//! joins (full history), a validator leaves on SIGTERM, a refused or unanswered join stops the
//! joiner with the reason, and a validator restarted with a stale peers.json follows the
//! stored history.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use common::{
    app_has_all as has_all, assert_identical_blocks, http_get, submit_via, BackgroundLoad, Network,
};

/// `/history` of node `i`: first round → the validators' public keys.
fn history(net: &Network, i: usize) -> BTreeMap<u64, Vec<String>> {
    let Ok((200, body)) = http_get(net.nodes[i].service_listen, "/history") else {
        return BTreeMap::new();
    };
    let map: BTreeMap<String, Vec<serde_json::Value>> =
        serde_json::from_str(&body).unwrap_or_default();
    map.into_iter()
        .map(|(round, peers)| {
            let keys = peers
                .iter()
                .map(|p| p["PubKeyHex"].as_str().unwrap_or_default().to_string())
                .collect();
            (round.parse().unwrap_or(u64::MAX), keys)
        })
        .collect()
}

fn state(net: &Network, i: usize) -> String {
    net.stats(i)["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits for node `i`'s process to end on its own with a failure status and `text` in its
/// log; panics with its log otherwise.
async fn assert_fails_with(net: &mut Network, i: usize, timeout: Duration, text: &str) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = net.exit_status(i) {
            assert!(!status.success(), "{}", net.log_tail(i, 20));
            let log = std::fs::read_to_string(net.log_path(i)).unwrap();
            assert!(log.contains(text), "{}", net.log_tail(i, 20));
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {i} still runs after {timeout:?}\n{}",
            net.log_tail(i, 20)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_joins_with_the_full_history_and_a_validator_leaves_on_sigterm() {
    let mut net = Network::create(5).await;
    net.limit_validators(4);
    for i in [0, 2, 3] {
        net.start(i);
    }
    // Node 1 leaves on SIGTERM later in this test.
    net.start_with(1, &["--no-leave=false"]);
    let mut wanted: HashSet<String> = submit_via(&net, &[0, 1, 2, 3], "before", 400)
        .await
        .into_iter()
        .collect();
    net.wait_for(
        "the four validators to order the first load",
        Duration::from_secs(120),
        |net| (0..4).all(|i| has_all(net, i, &wanted)),
    )
    .await;
    assert_eq!(history(&net, 0).len(), 1);

    // Node 4 is in no peers file's set: it joins.
    let joiner_key = net.nodes[4].pubkey.clone();
    net.start_with(4, &["--join-timeout", "30s"]);
    net.wait_for(
        "node 4 to join and catch up as a validator",
        Duration::from_secs(120),
        |net| state(net, 4) == "Babbling",
    )
    .await;
    let sets = history(&net, 0);
    assert_eq!(sets.len(), 2, "{sets:?}");
    let (&joined_at, last) = sets.iter().next_back().unwrap();
    assert!(joined_at > 0);
    assert_eq!(last.len(), 5);
    assert!(last.contains(&joiner_key));
    assert_eq!(history(&net, 4), sets, "the joiner learnt the same history");
    let (_, peers) = http_get(net.nodes[2].service_listen, "/peers").unwrap();
    assert!(
        peers.contains(&joiner_key),
        "/peers lists the joiner: {peers}"
    );

    // All five order, the joiner's transactions too; its app got the whole history.
    wanted.extend(submit_via(&net, &[0, 1, 2, 3, 4], "five", 500).await);
    net.wait_for(
        "all five to order the second load",
        Duration::from_secs(120),
        |net| (0..5).all(|i| has_all(net, i, &wanted)),
    )
    .await;
    assert_identical_blocks(&net, &[0, 1, 2, 3, 4]);

    // Node 1 leaves: SIGTERM makes it submit its PEER_REMOVE and wait for it.
    let status = net.terminate(1).expect("running");
    assert!(status.success(), "{}", net.log_tail(1, 20));
    let log = std::fs::read_to_string(net.log_path(1)).unwrap();
    assert!(
        log.contains("left the validator set"),
        "{}",
        net.log_tail(1, 20)
    );
    net.wait_for(
        "the others to record the leave",
        Duration::from_secs(60),
        |net| [0, 2, 3, 4].iter().all(|&i| history(net, i).len() == 3),
    )
    .await;
    let sets = history(&net, 0);
    let (_, last) = sets.iter().next_back().unwrap();
    assert_eq!(last.len(), 4);
    assert!(!last.contains(&net.nodes[1].pubkey));

    // Node 0 restarts with its stale peers.json (it lists node 1, not node 4): the stored
    // history wins, and the four go on ordering.
    net.kill(0);
    net.start(0);
    wanted.extend(submit_via(&net, &[0, 2, 3, 4], "four", 400).await);
    net.wait_for(
        "the remaining four to order the third load",
        Duration::from_secs(120),
        |net| [0, 2, 3, 4].iter().all(|&i| has_all(net, i, &wanted)),
    )
    .await;
    assert_identical_blocks(&net, &[0, 2, 3, 4]);
    assert_eq!(history(&net, 0), sets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_or_unanswered_join_stops_the_joiner_with_the_reason() {
    let mut net = Network::create(5).await;
    net.limit_validators(4);

    // Nobody answers: the joiner gives up after --join-timeout.
    net.start_with(4, &["--join-timeout", "1s"]);
    let expected = "no validator accepted this node's join request within --join-timeout";
    assert_fails_with(&mut net, 4, Duration::from_secs(30), expected).await;

    // The validators' apps refuse every change.
    for app in &net.apps[..4] {
        app.refuse_changes
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    for i in 0..4 {
        net.start(i);
    }
    net.start_with(4, &["--join-timeout", "60s"]);
    let expected = "refused this node's PEER_ADD";
    assert_fails_with(&mut net, 4, Duration::from_secs(90), expected).await;
    assert_eq!(history(&net, 0).len(), 1, "the set stays");
    assert_eq!(state(&net, 0), "Babbling");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_load_the_set_grows_from_four_to_seven_and_shrinks_back() {
    let mut net = Network::create(7).await;
    net.log_level = "info".into();
    net.limit_validators(4);
    for i in 0..4 {
        net.start(i);
    }
    net.wait_for("node 0 to serve /history", Duration::from_secs(30), |net| {
        !history(net, 0).is_empty()
    })
    .await;
    let genesis: Vec<String> = history(&net, 0).into_values().next().unwrap_or_default();
    let load = BackgroundLoad::start(&net, &[0, 1, 2, 3], "load");
    for j in 4..7 {
        net.start_with(j, &["--no-leave=false", "--join-timeout", "12s"]);
        let what = format!("node {j} to join and catch up");
        net.wait_for(&what, Duration::from_secs(120), |net| {
            state(net, j) == "Babbling"
        })
        .await;
        let what = format!("every validator to record node {j}'s join");
        net.wait_for(&what, Duration::from_secs(60), |net| {
            (0..=j).all(|i| history(net, i).len() == j - 2)
        })
        .await;
    }
    let sets = history(&net, 0);
    assert_eq!(sets.values().last().map(Vec::len), Some(7), "{sets:?}");
    assert!(load.accepted() > 0);

    for j in (4..7).rev() {
        let status = net.terminate(j).expect("running");
        assert!(status.success(), "{}", net.log_tail(j, 20));
        let log = std::fs::read_to_string(net.log_path(j)).unwrap();
        assert!(
            log.contains("left the validator set"),
            "{}",
            net.log_tail(j, 20)
        );
        let what = format!("the others to record node {j}'s leave");
        let expected = 4 + (7 - j);
        net.wait_for(&what, Duration::from_secs(60), |net| {
            (0..j).all(|i| history(net, i).len() == expected)
        })
        .await;
    }
    let accepted: HashSet<String> = load.stop().await.into_iter().collect();
    assert!(accepted.len() > 100, "only {} accepted", accepted.len());
    net.wait_for(
        "the four to order every accepted transaction",
        Duration::from_secs(120),
        |net| (0..4).all(|i| has_all(net, i, &accepted)),
    )
    .await;
    // The joiners' apps hold what they got while they were there: the same blocks.
    assert_identical_blocks(&net, &[0, 1, 2, 3, 4, 5, 6]);
    let sets = history(&net, 0);
    assert_eq!(sets.len(), 7, "{sets:?}");
    let mut last = sets.values().last().cloned().unwrap();
    let mut first = genesis;
    last.sort();
    first.sort();
    assert_eq!(last, first, "back to the genesis set");
}
