//! Fast-sync: a joining node (with `--fast-sync`), or one whose peers pruned the history it
//! lacks, resumes at the latest anchored block instead of syncing the history.
//!
//! The node asks a peer for its latest anchored block ([`Request::FastSync`]): the block with
//! its signatures, its frame, the window of recent events as the peer placed them, the
//! validator sets and the app's snapshot as of the block. It fetches the window's event bodies
//! ([`Request::FetchEvents`]) and checks, in order: more than a third of the validator set it
//! trusts (its stored history, from peers.json at first) signed the block, so at least one
//! honest validator vouches for it; the frame, the validator sets and the window against the
//! block, with every event's signature and placement (`Hashgraph::from_anchor`); and its app,
//! restored from the snapshot, reports the block's state hash. An answer failing any check is
//! refused with a warning and the next peer is tried. Then the core takes the new hashgraph
//! (its store holds it before anything else happens) and gossip goes on from there.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use hashgraph::{Block, Event, Hash, Hashgraph, Peer, PeerSet, Window};
use hearsay_net::wire::{FastSyncOffer, Request, Response};
use hearsay_net::QuicTransport;
use rand::seq::SliceRandom;

use super::core::ResetTo;
use super::gossip::peer_addr;
use super::Shared;

/// Event ids asked for in one fetch of the window's bodies.
const FETCH_CHUNK: usize = 1_000;
/// How far ahead of ours an anchored block must be for a fast-sync that only a peer's word
/// asked for (a known map, a `Pruned` answer).
const CLAIMED_LEAD_BLOCKS: u64 = 10;
/// How long fast-sync waits for the blocks already handed to the app before restoring it.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Why one peer's answer was not used.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// The peer has nothing to offer now (no anchored block yet, unreachable…).
    #[error("{0}")]
    Unavailable(String),
    /// The peer's anchored block (validly signed) is behind the blocks this node committed.
    #[error("{0}")]
    NotAhead(String),
    /// The answer is forged or inconsistent.
    #[error("{0:#}")]
    Refused(anyhow::Error),
}

/// Why a fast-sync did not happen.
#[derive(Debug, thiserror::Error)]
pub enum FastSyncFailed {
    /// No peer offered an anchored block ahead of this node's blocks, and at least one showed
    /// a validly signed one behind them: this node is not behind.
    #[error("no peer's anchored block is ahead of this node's: {0}")]
    NotBehind(String),
    /// No usable answer; the reasons, peer by peer.
    #[error("no usable fast-sync answer: {0}")]
    NoAnswer(String),
}

/// Resumes the node at the latest anchored block one of its peers offers; returns the block's
/// index. Fails, naming each peer's reason, if no peer gave a usable answer. `claimed`: only a
/// peer's word says this node is behind, so only a block [`CLAIMED_LEAD_BLOCKS`] ahead of ours
/// will do (a fast-sync of our own events missing from the last window may resume at the
/// block we stand at).
pub async fn fast_sync(
    shared: &Shared,
    transport: &QuicTransport,
    claimed: bool,
) -> Result<u64, FastSyncFailed> {
    let trusted = shared.membership.latest();
    let mut peers = shared.membership.gossip_targets(&shared.me);
    peers.shuffle(&mut rand::thread_rng());
    let mut reasons = Vec::new();
    let mut not_ahead = 0;
    for peer in &peers {
        match from_peer(shared, transport, peer, &trusted, claimed).await {
            Ok(index) => return Ok(index),
            Err(Failure::NotAhead(reason)) => {
                tracing::debug!(peer = %peer.moniker, %reason, "no fast-sync answer ahead of us");
                not_ahead += 1;
                reasons.push(format!("{}: {reason}", peer.moniker));
            }
            Err(Failure::Unavailable(reason)) => {
                tracing::debug!(peer = %peer.moniker, %reason, "no fast-sync answer");
                reasons.push(format!("{}: {reason}", peer.moniker));
            }
            Err(Failure::Refused(e)) => {
                tracing::warn!(
                    peer = %peer.moniker,
                    error = %format!("{e:#}"),
                    "refused a peer's fast-sync answer; trying another peer"
                );
                reasons.push(format!("{}: {e:#}", peer.moniker));
            }
        }
    }
    if reasons.is_empty() {
        return Err(FastSyncFailed::NoAnswer("no peer to fast-sync from".into()));
    }
    // Forged answers count for nothing either way: a liar cannot keep us waiting by answering
    // with garbage instead of an old anchored block.
    if not_ahead > 0 {
        return Err(FastSyncFailed::NotBehind(reasons.join("; ")));
    }
    Err(FastSyncFailed::NoAnswer(reasons.join("; ")))
}

async fn from_peer(
    shared: &Shared,
    transport: &QuicTransport,
    peer: &Peer,
    trusted: &PeerSet,
    claimed: bool,
) -> Result<u64, Failure> {
    let unavailable = |e: anyhow::Error| Failure::Unavailable(format!("{e:#}"));
    let addr = peer_addr(peer).map_err(unavailable)?;
    let offer = match transport
        .request(peer.pub_key, addr, Request::FastSync)
        .await
    {
        Ok(Response::FastSync(offer)) => *offer,
        Ok(Response::Error(e)) => return Err(Failure::Unavailable(e)),
        Ok(_) => {
            return Err(Failure::Refused(anyhow!(
                "answered a fast-sync with another message"
            )))
        }
        Err(e) => return Err(Failure::Unavailable(e.to_string())),
    };
    let index = offer.block.body.index;
    let ours = shared
        .core
        .status()
        .await
        .map_err(|e| Failure::Unavailable(e.to_string()))?
        .blocks_committed;
    // Checked first, so that only a block the validators signed can show that we are not
    // behind.
    check_signatures(&offer.block, trusted).map_err(Failure::Refused)?;
    if index + 1 < ours {
        // Going back would only hand the app blocks it has again. The block we stand at is
        // fine for a fast-sync again from a window that holds our own latest events.
        return Err(Failure::NotAhead(format!(
            "its anchored block {index} is behind ours ({ours} committed)"
        )));
    }
    if claimed && index < ours + CLAIMED_LEAD_BLOCKS {
        // A node a few blocks behind catches up by gossip; resuming it from a snapshot on a
        // peer's word would hand its app a restore instead of those blocks.
        return Err(Failure::NotAhead(format!(
            "its anchored block {index} is not {CLAIMED_LEAD_BLOCKS} blocks ahead of ours \
             ({ours} committed)"
        )));
    }
    let ids: Vec<Hash> = offer.window.iter().map(|e| e.id).collect();
    let bodies = fetch_bodies(transport, peer, ids).await?;
    let events = bodies.len();
    let (resumed, snapshot) = tokio::task::spawn_blocking(move || verify_offer(offer, &bodies))
        .await
        .map_err(|e| Failure::Unavailable(format!("the check was interrupted: {e}")))?
        .map_err(Failure::Refused)?;

    // Blocks already handed to the app go first, so that no commit races the restore.
    let drained = Instant::now() + DRAIN_DEADLINE;
    while shared.delivery.waiting.load(Ordering::Relaxed) > 0 && Instant::now() < drained {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let state_hash =
        shared.app.restore(snapshot).await.map_err(|e| {
            Failure::Unavailable(format!("our app did not restore the snapshot: {e}"))
        })?;
    if state_hash != resumed.block.state_hash {
        return Err(Failure::Refused(anyhow!(
            "the app restored from the snapshot reports another state hash than block {index}"
        )));
    }
    shared.delivery.restored_at.store(index, Ordering::Relaxed);
    let round = resumed.block.body.round_received;
    shared
        .core
        .reset(resumed)
        .await
        .map_err(|e| Failure::Unavailable(e.to_string()))?;
    tracing::info!(
        peer = %peer.moniker,
        block = index,
        round,
        events,
        "fast-synced: resumed at an anchored block"
    );
    Ok(index)
}

/// Checks an offer whose block's signatures were checked ([`check_signatures`]) against the
/// block, with the window's event `bodies` (see `Hashgraph::from_anchor`); returns the
/// resumed hashgraph and the app snapshot still to check.
pub fn verify_offer(
    offer: FastSyncOffer,
    bodies: &HashMap<Hash, Event>,
) -> anyhow::Result<(ResetTo, Vec<u8>)> {
    let FastSyncOffer {
        block,
        frame,
        window_start,
        peer_sets,
        window,
        snapshot,
    } = offer;
    let window = Window {
        round: block.body.round_received,
        start: window_start,
        peer_sets,
        events: window,
    };
    let hg = Hashgraph::from_anchor(
        hashgraph::Config::default(),
        &block.body,
        &frame,
        window,
        |id| bodies.get(id).cloned(),
    )?;
    Ok((ResetTo { hg, block, frame }, snapshot))
}

/// Checks that more than a third of `trusted` validly signed `block` (so at least one honest
/// validator did, and the block is the network's).
pub fn check_signatures(block: &Block, trusted: &PeerSet) -> anyhow::Result<()> {
    if block.state_hash.is_empty() {
        bail!("block {} carries no state hash", block.body.index);
    }
    let valid = block
        .signatures
        .iter()
        .filter(|(key, sig)| trusted.contains(key) && block.verify_signature(key, sig))
        .count();
    if valid * 3 <= trusted.len() {
        bail!(
            "block {} carries {valid} valid signatures of the {} validators this node trusts: \
             it is not anchored",
            block.body.index,
            trusted.len()
        );
    }
    Ok(())
}

/// Fetches the bodies of the window's events from `peer`, which may answer in parts.
async fn fetch_bodies(
    transport: &QuicTransport,
    peer: &Peer,
    mut missing: Vec<Hash>,
) -> Result<HashMap<Hash, Event>, Failure> {
    let addr = peer_addr(peer).map_err(|e| Failure::Unavailable(format!("{e:#}")))?;
    let mut bodies = HashMap::with_capacity(missing.len());
    while !missing.is_empty() {
        let ask: Vec<Hash> = missing.iter().take(FETCH_CHUNK).copied().collect();
        let raw = match transport
            .request(peer.pub_key, addr, Request::FetchEvents(ask))
            .await
        {
            Ok(Response::Events(raw)) => raw,
            Ok(Response::Error(e)) => return Err(Failure::Unavailable(e)),
            Ok(_) => {
                return Err(Failure::Refused(anyhow!(
                    "answered a fetch with another message"
                )))
            }
            Err(e) => return Err(Failure::Unavailable(e.to_string())),
        };
        let before = bodies.len();
        for bytes in raw {
            // Signatures are checked with everything else, by `Hashgraph::from_anchor`.
            let event = Event::from_bytes(&bytes)
                .context("an undecodable event")
                .map_err(Failure::Refused)?;
            bodies.insert(event.id(), event);
        }
        if bodies.len() == before {
            return Err(Failure::Refused(anyhow!(
                "the peer does not give the events of its own window"
            )));
        }
        missing.retain(|id| !bodies.contains_key(id));
    }
    Ok(bodies)
}

/// The answer to a peer's [`Request::FastSync`]: our latest anchored block whose window is in
/// memory, with our app's snapshot as of it.
pub async fn offer(shared: &Shared) -> Response {
    let anchor = match shared.core.anchor().await {
        Ok(Ok(anchor)) => anchor,
        Ok(Err(reason)) => return Response::Error(reason),
        Err(e) => return Response::Error(e.to_string()),
    };
    let index = anchor.block.body.index;
    let snapshot = match shared.app.get_snapshot(index).await {
        Ok(snapshot) => snapshot,
        Err(e) => {
            return Response::Error(format!("our app gave no snapshot of block {index}: {e}"))
        }
    };
    Response::FastSync(Box::new(FastSyncOffer {
        block: anchor.block,
        frame: anchor.frame,
        window_start: anchor.window.start,
        peer_sets: anchor.window.peer_sets,
        window: anchor.window.events,
        snapshot,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashgraph::{BlockBody, SecretKey};

    trait SignCopy {
        fn sign_copy(self, key: &SecretKey) -> hashgraph::Signature;
    }
    impl SignCopy for Block {
        fn sign_copy(mut self, key: &SecretKey) -> hashgraph::Signature {
            self.sign(key)
        }
    }

    fn block(state_hash: &[u8]) -> Block {
        let mut block = Block::new(BlockBody {
            index: 7,
            round_received: 20,
            timestamp: 1,
            prev_hash: Hash([1; 32]),
            frame_hash: Hash([2; 32]),
            peers_hash: Hash([3; 32]),
            transactions: vec![b"tx".to_vec()],
            internal_transactions: vec![],
        });
        block.state_hash = state_hash.to_vec();
        block
    }

    /// Four validators gossiping in turn; member 0's hashgraph, blocks and frames.
    fn network(
        steps: usize,
    ) -> (
        Vec<SecretKey>,
        PeerSet,
        Hashgraph,
        Vec<(Block, hashgraph::Frame)>,
    ) {
        let keys: Vec<SecretKey> = (0..4u8).map(|i| SecretKey::from_seed(&[i])).collect();
        let set = PeerSet::new(
            keys.iter()
                .map(|k| Peer::new(k.public_key(), "127.0.0.1:1", "v"))
                .collect(),
        )
        .unwrap();
        let mut members: Vec<Hashgraph> = (0..4)
            .map(|_| Hashgraph::new(hashgraph::Config::default(), set.clone()))
            .collect();
        let mut made = Vec::new();
        for step in 0..steps {
            let (to, from) = (step % 4, (step * 7 + 1 + step / 4) % 4);
            if from != to {
                let known = members[to].known();
                for e in members[from].events_unknown_to(&known, usize::MAX) {
                    members[to].insert_event(e).unwrap();
                }
            }
            let me = keys[to].public_key();
            let other = (from != to)
                .then(|| members[to].head(&keys[from].public_key()))
                .flatten()
                .filter(|h| members[to].fits_as_other_parent(&me, h));
            let tx = format!("tx {step}").into_bytes();
            members[to]
                .create_event(&keys[to], other, step as i64, vec![tx], vec![], vec![])
                .unwrap();
            for (i, m) in members.iter_mut().enumerate() {
                m.run_consensus();
                let ready = m.take_ready();
                if i == 0 {
                    made.extend(ready.blocks.into_iter().zip(ready.frames));
                }
            }
        }
        let server = members.swap_remove(0);
        (keys, set, server, made)
    }

    fn offer_at(
        server: &Hashgraph,
        made: &[(Block, hashgraph::Frame)],
        keys: &[SecretKey],
    ) -> (FastSyncOffer, HashMap<Hash, Event>) {
        let (mut block, frame) = made[made.len() - 2].clone();
        block.state_hash = b"state".to_vec();
        for key in &keys[..2] {
            block.sign(key);
        }
        let window = server.window(block.body.round_received).unwrap();
        let bodies = window
            .event_ids()
            .map(|id| (id, server.event(&id).unwrap().clone()))
            .collect();
        let offer = FastSyncOffer {
            block,
            frame,
            window_start: window.start,
            peer_sets: window.peer_sets,
            window: window.events,
            snapshot: b"state".to_vec(),
        };
        (offer, bodies)
    }

    #[test]
    fn an_honest_offer_passes_and_forged_ones_are_refused_with_the_reason() {
        let (keys, set, server, made) = network(240);
        assert!(made.len() >= 5, "only {} blocks", made.len());
        let (honest, bodies) = offer_at(&server, &made, &keys);
        check_signatures(&honest.block, &set).unwrap();
        let (resumed, snapshot) = verify_offer(honest.clone(), &bodies).unwrap();
        assert_eq!(resumed.block, honest.block);
        assert_eq!(snapshot, b"state");
        assert_eq!(
            resumed.hg.stats().last_block_index,
            Some(honest.block.body.index)
        );

        let mut forged = honest.clone();
        let stranger = SecretKey::from_seed(b"stranger");
        forged.block.signatures.clear();
        forged.block.sign(&stranger);
        forged.block.sign(&keys[0]);
        let reason = check_signatures(&forged.block, &set)
            .unwrap_err()
            .to_string();
        assert!(reason.contains("not anchored"), "{reason}");

        let mut forged = honest.clone();
        forged.frame.events.pop();
        let reason = format!("{:#}", verify_offer(forged, &bodies).err().unwrap());
        assert!(reason.contains("frame hash"), "{reason}");

        let mut forged = honest.clone();
        let fewer = set.without_peer(&keys[3].public_key()).unwrap();
        forged.peer_sets = vec![(0, fewer)];
        let reason = format!("{:#}", verify_offer(forged, &bodies).err().unwrap());
        assert!(reason.contains("validator sets given"), "{reason}");

        let mut forged = honest.clone();
        let last = forged.window.last_mut().unwrap();
        last.round += 1;
        let reason = format!("{:#}", verify_offer(forged, &bodies).err().unwrap());
        assert!(reason.contains("placed"), "{reason}");
    }

    #[test]
    fn a_block_is_anchored_by_more_than_a_third_of_the_trusted_set() {
        let keys: Vec<SecretKey> = (0..4u8).map(|i| SecretKey::from_seed(&[i])).collect();
        let trusted = PeerSet::new(
            keys.iter()
                .map(|k| Peer::new(k.public_key(), "127.0.0.1:1", "v"))
                .collect(),
        )
        .unwrap();
        let mut b = block(b"state");
        b.sign(&keys[0]);
        let one = check_signatures(&b, &trusted).unwrap_err().to_string();
        assert!(one.contains("1 valid signatures of the 4"), "{one}");

        // A stranger's signature and a signature of another block count for nothing.
        let stranger = SecretKey::from_seed(b"stranger");
        b.sign(&stranger);
        let other = block(b"another state").sign_copy(&keys[1]);
        b.signatures.insert(keys[1].public_key(), other);
        assert!(check_signatures(&b, &trusted).is_err());

        b.sign(&keys[1]);
        check_signatures(&b, &trusted).unwrap();

        let mut unanswered = block(b"");
        for k in &keys {
            unanswered.sign(k);
        }
        let reason = check_signatures(&unanswered, &trusted)
            .unwrap_err()
            .to_string();
        assert!(reason.contains("no state hash"), "{reason}");
    }
}
