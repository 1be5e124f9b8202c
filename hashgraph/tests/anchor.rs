//! Fast-sync in the core: a hashgraph built from an anchored block, its frame and a window of
//! a member's DAG goes on exactly as that member does, and a forged answer is refused.

mod common;

use common::{all_events, gossip, network, Member};
use hashgraph::{Config, Event, Hashgraph, HashgraphError, Window};

/// Short horizons, so that a few hundred gossip steps leave history below the window.
fn config(coin: u64) -> Config {
    Config {
        coin_round_frequency: coin,
        stale_rounds: 4,
        max_parent_round_gap: 3,
        eviction_margin_rounds: 2,
        ..Config::default()
    }
}

fn from_anchor(
    server: &Member,
    pos: usize,
    config: &Config,
    edit: impl FnOnce(&mut hashgraph::BlockBody, &mut hashgraph::Frame, &mut Window),
) -> Result<Hashgraph, HashgraphError> {
    let mut body = server.blocks[pos].body.clone();
    let mut frame = server.frames[pos].clone();
    let mut window = server
        .hg
        .window(body.round_received)
        .expect("the window of a recent block is held");
    edit(&mut body, &mut frame, &mut window);
    Hashgraph::from_anchor(config.clone(), &body, &frame, window, |id| {
        server.hg.event(id).cloned()
    })
}

/// Feeds `to` every event `from` holds that `to` lacks, then settles it.
fn catch_up(to: &mut Member, from: &Member) {
    for e in from.hg.events_unknown_to(&to.hg.known(), usize::MAX) {
        to.hg.insert_event(e).unwrap();
    }
    to.settle();
}

#[test]
fn a_hashgraph_resumed_at_an_anchor_orders_what_the_member_orders() {
    let mut checked = 0;
    for (n, coin, seed) in [(4, 10, 1), (4, 3, 2), (5, 10, 3), (7, 3, 4)] {
        let config = config(coin);
        let mut members = network(n, config.clone());
        gossip(&mut members, 30 * n * n, seed, &[n - 1]);
        let server = &members[0];
        let blocks = server.blocks.len();
        assert!(blocks >= 6, "n={n} seed={seed}: only {blocks} blocks");
        let first_round = server.blocks[blocks - 3].body.round_received;
        let window = server.hg.window(first_round).unwrap();
        assert!(
            window.start > 0,
            "n={n} seed={seed}: the window of round {first_round} holds all history"
        );
        let anchors = [blocks - 3, blocks - 1];
        let mut twins: Vec<(usize, Member)> = anchors
            .iter()
            .map(|&pos| {
                let hg = from_anchor(server, pos, &config, |_, _, _| {}).unwrap_or_else(|e| {
                    panic!("n={n} seed={seed} block {pos}: {e}");
                });
                let mut twin = network(1, config.clone()).pop().unwrap();
                twin.hg = hg;
                twin.hg.take_ready();
                (pos, twin)
            })
            .collect();
        gossip(&mut members, 60 * n, seed + 100, &[n - 1]);
        let server = &members[0];
        for (pos, twin) in &mut twins {
            catch_up(twin, server);
            let expected = &server.blocks[*pos + 1..];
            assert!(
                !expected.is_empty(),
                "n={n} seed={seed}: no block after {pos}"
            );
            assert_eq!(
                twin.blocks.len(),
                expected.len(),
                "n={n} seed={seed} anchor {pos}: block count"
            );
            assert_eq!(&twin.blocks[..], expected, "n={n} seed={seed} anchor {pos}");
            assert_eq!(twin.frames[..], server.frames[*pos + 1..]);
            checked += 1;
        }
    }
    assert_eq!(checked, 8);
}

/// A member whose hashgraph is replaced by one resumed from another member's anchor (a node
/// that fast-synced) keeps gossiping, and every member still orders the same blocks.
#[test]
fn a_member_resumed_from_a_peers_anchor_keeps_agreeing_with_the_network() {
    for (n, seed) in [(4, 11), (5, 12)] {
        let config = config(10);
        let mut members = network(n, config.clone());
        gossip(&mut members, 80 * n, seed, &[]);
        let pos = members[1].blocks.len() - 2;
        let hg = from_anchor(&members[1], pos, &config, |_, _, _| {}).unwrap();
        let anchored = members[1].blocks[..=pos].to_vec();
        // As a node does after fast-sync: its own events the server lacked go in again, so that
        // it never signs a second event at an index it used.
        let mut resumed = network(1, config.clone()).pop().unwrap();
        resumed.hg = hg;
        resumed.hg.take_ready();
        catch_up(&mut resumed, &members[0]);
        let m = &mut members[0];
        m.hg = resumed.hg;
        m.blocks = anchored;
        m.blocks.extend(resumed.blocks);
        m.frames.clear();
        m.ordered.clear();
        gossip(&mut members, 80 * n, seed + 50, &[]);
        let shortest = members.iter().map(|m| m.blocks.len()).min().unwrap();
        assert!(
            shortest > pos + 5,
            "n={n} seed={seed}: {shortest} blocks, anchor {pos}"
        );
        for m in &members[1..] {
            assert_eq!(
                members[0].blocks[..shortest],
                m.blocks[..shortest],
                "n={n} seed={seed}"
            );
        }
    }
}

#[test]
fn forged_or_inconsistent_answers_are_refused() {
    let config = config(10);
    let mut members = network(4, config.clone());
    gossip(&mut members, 360, 7, &[3]);
    let server = &members[0];
    let pos = server.blocks.len() - 2;
    let refused =
        |what: &str,
         edit: &dyn Fn(&mut hashgraph::BlockBody, &mut hashgraph::Frame, &mut Window)| {
            match from_anchor(server, pos, &config, edit) {
                Err(HashgraphError::BadAnchor(reason)) => reason,
                Err(other) => panic!("{what}: refused for another reason: {other}"),
                Ok(_) => panic!("{what}: accepted"),
            }
        };
    let reason = refused("a frame that is not the block's", &|_, frame, _| {
        frame.events.pop();
    });
    assert!(reason.contains("frame hash"), "{reason}");
    let reason = refused("another peer-set hash", &|body, _, _| {
        body.peers_hash = hashgraph::Hash([7; 32]);
    });
    assert!(reason.contains("peer-set hash"), "{reason}");
    let reason = refused(
        "validator sets that do not lead to the block's",
        &|_, _, window| {
            let set = window.peer_sets[0].1.clone();
            let smaller = set.without_peer(&set.peers()[0].pub_key).unwrap();
            window.peer_sets = vec![(0, smaller)];
        },
    );
    assert!(reason.contains("validator sets given"), "{reason}");
    let reason = refused("a claimed round off by one", &|_, _, window| {
        let last = window.events.last_mut().unwrap();
        last.round += 1;
    });
    assert!(reason.contains("placed"), "{reason}");
    let reason = refused(
        "an event said to be ordered that was not",
        &|_, _, window| {
            let unordered = window
                .events
                .iter_mut()
                .rev()
                .find(|e| e.round_received.is_none())
                .unwrap();
            unordered.round_received = Some(0);
        },
    );
    assert!(reason.contains("roots"), "{reason}");
    let reason = refused("an event left out", &|_, _, window| {
        let middle = window.events.len() / 2;
        window.events.remove(middle);
    });
    assert!(
        reason.contains("without them") || reason.contains("frame") || reason.contains("placed"),
        "{reason}"
    );
    let reason = refused("a window starting too late", &|body, _, window| {
        window.start = body.round_received;
    });
    assert!(reason.contains("too late"), "{reason}");

    // A body that is not the listed event, and bodies that never come.
    let events: Vec<Event> = all_events(&members);
    let body = server.blocks[pos].body.clone();
    let frame = server.frames[pos].clone();
    let window = server.hg.window(body.round_received).unwrap();
    let swapped = Hashgraph::from_anchor(config.clone(), &body, &frame, window.clone(), |id| {
        let e = server.hg.event(id)?;
        events.iter().find(|o| o.id() != e.id()).cloned()
    });
    assert!(
        matches!(swapped, Err(HashgraphError::BadAnchor(ref r)) if r.contains("does not match its id")),
        "{:?}",
        swapped.err()
    );
    let missing = Hashgraph::from_anchor(config.clone(), &body, &frame, window, |_| None);
    assert!(
        matches!(missing, Err(HashgraphError::BadAnchor(ref r)) if r.contains("missing")),
        "{:?}",
        missing.err()
    );
}
