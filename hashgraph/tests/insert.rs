//! Insertion: validation errors, held events, forks and their effect on seeing.

use hashgraph::{
    Config, Event, EventBody, EventError, Hash, Hashgraph, InsertError, Peer, PeerSet, SecretKey,
    Signature,
};

struct Net {
    keys: Vec<SecretKey>,
    hg: Hashgraph,
}

fn net(n: usize, config: Config) -> Net {
    let keys: Vec<SecretKey> = (0..n)
        .map(|i| SecretKey::from_seed(&[b'k', i as u8]))
        .collect();
    let set = PeerSet::new(
        keys.iter()
            .enumerate()
            .map(|(i, k)| Peer::new(k.public_key(), format!("n{i}"), format!("n{i}")))
            .collect(),
    )
    .unwrap();
    Net {
        keys,
        hg: Hashgraph::new(config, set),
    }
}

fn make(
    key: &SecretKey,
    index: u64,
    sp: Option<&Event>,
    op: Option<&Event>,
    txs: &[&str],
) -> Event {
    EventBody {
        creator: key.public_key(),
        index,
        self_parent: sp.map(Event::id),
        other_parent: op.map(Event::id),
        timestamp: index as i64,
        transactions: txs.iter().map(|t| t.as_bytes().to_vec()).collect(),
        internal_transactions: vec![],
        block_signatures: vec![],
    }
    .sign(key)
}

#[test]
fn bad_signature_unknown_creator_and_bad_index_are_typed_errors() {
    let mut n = net(2, Config::default());
    let a0 = make(&n.keys[0], 0, None, None, &[]);
    let forged = Event::from_parts(a0.body().clone(), Signature([1; 64]));
    assert!(matches!(
        n.hg.insert_event(forged),
        Err(InsertError::Event(EventError::BadSignature { .. }))
    ));
    let stranger = SecretKey::from_seed(b"stranger");
    assert!(matches!(
        n.hg.insert_event(make(&stranger, 0, None, None, &[])),
        Err(InsertError::UnknownCreator { .. })
    ));
    n.hg.insert_event(a0.clone()).unwrap();
    let skipped = make(&n.keys[0], 2, Some(&a0), None, &[]);
    assert!(matches!(
        n.hg.insert_event(skipped),
        Err(InsertError::BadSelfParent { index: 2, .. })
    ));
    let b0 = make(&n.keys[1], 0, None, None, &[]);
    n.hg.insert_event(b0.clone()).unwrap();
    let wrong_creator_parent = make(&n.keys[0], 1, Some(&b0), None, &[]);
    assert!(matches!(
        n.hg.insert_event(wrong_creator_parent),
        Err(InsertError::BadSelfParent { .. })
    ));
    let self_other = make(&n.keys[0], 1, Some(&a0), Some(&a0), &[]);
    assert!(matches!(
        n.hg.insert_event(self_other),
        Err(InsertError::OtherParentBySelf { .. })
    ));
    // The graph is untouched by the refusals.
    assert_eq!(n.hg.stats().events_in_memory, 2);
    assert!(n.hg.take_ready().forks.is_empty());
}

#[test]
fn oversized_payload_is_refused() {
    let mut n = net(
        1,
        Config {
            max_event_bytes: 1000,
            ..Config::default()
        },
    );
    let big = "x".repeat(2000);
    let e = make(&n.keys[0], 0, None, None, &[&big]);
    assert!(matches!(
        n.hg.insert_event(e),
        Err(InsertError::TooLarge { limit: 1000, .. })
    ));
}

#[test]
fn events_before_their_parents_are_held_then_released_in_order() {
    let mut n = net(2, Config::default());
    let a0 = make(&n.keys[0], 0, None, None, &[]);
    let b0 = make(&n.keys[1], 0, None, None, &[]);
    let a1 = make(&n.keys[0], 1, Some(&a0), Some(&b0), &[]);
    let a2 = make(&n.keys[0], 2, Some(&a1), None, &[]);
    let out = n.hg.insert_event(a2.clone()).unwrap();
    assert_eq!(out.missing_parents, vec![a1.id()]);
    assert!(out.added.is_empty());
    let out = n.hg.insert_event(a1.clone()).unwrap();
    let mut missing = out.missing_parents.clone();
    missing.sort();
    let mut expect = vec![a0.id(), b0.id()];
    expect.sort();
    assert_eq!(missing, expect);
    assert_eq!(n.hg.stats().pending_events, 2);
    assert_eq!(n.hg.insert_event(b0.clone()).unwrap().added, vec![b0.id()]);
    let out = n.hg.insert_event(a0.clone()).unwrap();
    assert_eq!(out.added, vec![a0.id(), a1.id(), a2.id()]);
    assert_eq!(n.hg.stats().pending_events, 0);
    let ready = n.hg.take_ready();
    let order: Vec<Hash> = ready.events.iter().map(Event::id).collect();
    assert_eq!(order, vec![b0.id(), a0.id(), a1.id(), a2.id()]);
    // Inserting again is a harmless duplicate.
    assert_eq!(n.hg.insert_event(a1).unwrap().duplicates, 1);
}

#[test]
fn the_pool_of_held_events_is_bounded() {
    let mut n = net(
        2,
        Config {
            max_pending_events: 2,
            ..Config::default()
        },
    );
    let a0 = make(&n.keys[0], 0, None, None, &[]);
    let mut tip = a0.clone();
    let mut chain = Vec::new();
    for i in 1..=3 {
        tip = make(&n.keys[0], i, Some(&tip), None, &[]);
        chain.push(tip.clone());
    }
    n.hg.insert_event(chain[0].clone()).unwrap();
    n.hg.insert_event(chain[1].clone()).unwrap();
    assert!(matches!(
        n.hg.insert_event(chain[2].clone()),
        Err(InsertError::PendingFull { limit: 2, .. })
    ));
    // The held ones still go in when the root arrives.
    assert_eq!(n.hg.insert_event(a0).unwrap().added.len(), 3);
}

/// A forker's events stop counting once an ancestry holds both of its branches.
#[test]
fn a_fork_is_detected_and_the_forker_stops_counting_in_strongly_seeing() {
    let mut n = net(4, Config::default());
    let [a, b, c, d] = [0, 1, 2, 3].map(|i| n.keys[i].clone());
    let a0 = make(&a, 0, None, None, &[]);
    let b0 = make(&b, 0, None, None, &[]);
    let c0 = make(&c, 0, None, None, &[]);
    let d0 = make(&d, 0, None, None, &[]);
    let d1 = make(&d, 1, Some(&d0), Some(&a0), &[]);
    let c1 = make(&c, 1, Some(&c0), Some(&d1), &[]);
    let a1 = make(&a, 1, Some(&a0), Some(&c1), &[]);
    let d1_fork = make(&d, 1, Some(&d0), Some(&b0), &["conflicting"]);
    let a2 = make(&a, 2, Some(&a1), Some(&d1_fork), &[]);
    let mut forks = Vec::new();
    for e in [&a0, &b0, &c0, &d0, &d1, &c1, &a1, &d1_fork, &a2] {
        forks.extend(n.hg.insert_event(e.clone()).unwrap().forks);
    }
    assert_eq!(forks.len(), 1);
    assert_eq!(forks[0].creator, d.public_key());
    assert_eq!(
        (forks[0].first.id(), forks[0].second.id()),
        (d1.id(), d1_fork.id())
    );
    assert!(n.hg.is_forker(&d.public_key()));
    // Both branches are kept.
    assert!(n.hg.event(&d1.id()).is_some() && n.hg.event(&d1_fork.id()).is_some());

    // a1 sees a0 through A, C (c1) and D (d1): 3 of 4, a supermajority.
    assert!(n.hg.see(&a1.id(), &d0.id()));
    assert!(n.hg.strongly_see(&a1.id(), &a0.id()));
    // a2 also has d1' in its ancestry: it sees the fork, so no event of D counts any more.
    assert!(n.hg.ancestor(&a2.id(), &d1.id()) && n.hg.ancestor(&a2.id(), &d1_fork.id()));
    assert!(!n.hg.see(&a2.id(), &d0.id()));
    assert!(!n.hg.see(&a2.id(), &d1.id()));
    assert!(n.hg.see(&a2.id(), &a0.id()));
    assert!(!n.hg.strongly_see(&a2.id(), &a0.id()));
    // An event with one branch only still sees D.
    assert!(n.hg.see(&c1.id(), &d1.id()));
}

#[test]
fn creating_on_an_unknown_other_parent_is_an_error_and_timestamps_never_go_back() {
    let mut n = net(2, Config::default());
    let key = n.keys[0].clone();
    let e0 =
        n.hg.create_event(&key, None, 100, vec![], vec![], vec![])
            .unwrap();
    assert!(n
        .hg
        .create_event(
            &key,
            Some(Hash::digest(b"nothing")),
            200,
            vec![],
            vec![],
            vec![]
        )
        .is_err());
    let e1 =
        n.hg.create_event(&key, None, 50, vec![], vec![], vec![])
            .unwrap();
    assert_eq!(e1.body().self_parent, Some(e0.id()));
    assert_eq!(e1.body().timestamp, 101);
}
