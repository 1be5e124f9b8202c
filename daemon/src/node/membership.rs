//! Joins and leaves as the node runtime sees them: the join requests a validator carries for
//! joiners, the validator-set history the other tasks read (whom to gossip with, whose
//! requests to answer), and the joiner's side of the join.
//!
//! A joiner sends its PEER_ADD (signed by itself) to a validator in a [`Request::Join`]. The
//! validator puts it in its next event and answers [`JoinStatus::Pending`]; the joiner asks
//! again until the change is ordered and the app has answered: [`JoinStatus::Accepted`] once
//! the joiner is in the validator-set history, [`JoinStatus::Refused`] if the app refused.
//! Asking again is cheap and idempotent, so no request is held open for seconds and a
//! validator that restarts or goes away costs the joiner one retry with another.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hashgraph::{
    InternalTransaction, InternalTransactionKind, InternalTransactionReceipt, Peer, PeerSet,
    PublicKey, SecretKey,
};
use hearsay_net::wire::{JoinStatus, Request, Response};
use hearsay_net::QuicTransport;
use rand::seq::SliceRandom;
use tokio::sync::watch;

/// Validator sets by first round, oldest first (never empty: round 0's set comes first).
pub type History = Arc<Vec<(u64, PeerSet)>>;

/// Most joins a validator carries at once; more are told to try again.
pub const MAX_PENDING_JOINS: usize = 4;
/// How long a carried join may stay undecided before it is dropped (its joiner has given up
/// by then; it may ask again).
const PENDING_JOIN_TTL: Duration = Duration::from_secs(120);
/// How long a refusal is remembered, so that the joiner's next poll hears it.
const REFUSAL_TTL: Duration = Duration::from_secs(120);
/// Longest accepted moniker and network address in a join request, in bytes.
pub const MAX_JOIN_FIELD_BYTES: usize = 256;
/// How often a joiner asks the validator carrying its join where it stands.
const JOIN_POLL: Duration = Duration::from_millis(200);

/// The first round from which `key` has been a validator without a break up to the latest
/// set, if it is in the latest set.
pub fn member_since(history: &[(u64, PeerSet)], key: &PublicKey) -> Option<u64> {
    let mut since = None;
    for (round, set) in history.iter().rev() {
        if !set.contains(key) {
            break;
        }
        since = Some(*round);
    }
    since
}

/// The latest validator set of `history`.
pub fn latest(history: &[(u64, PeerSet)]) -> &PeerSet {
    &history
        .last()
        .expect("the history starts with round 0's set")
        .1
}

/// Why a validator does not carry a join request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JoinRefusal {
    /// Not a PEER_ADD, not signed by its subject, or not from the key it names.
    #[error("not a valid join request: {0}")]
    Invalid(&'static str),
    /// This node cannot put it in an event.
    #[error("this node is not a validator: ask another")]
    NotAValidator,
    /// Too many joins in progress.
    #[error("{MAX_PENDING_JOINS} joins are in progress: try again later")]
    Busy,
}

enum JoinEntry {
    Pending { since: Instant },
    Refused { at: Instant },
}

/// The joins a validator carries, and the refusals its app gave.
#[derive(Default)]
pub struct Joins {
    entries: HashMap<PublicKey, JoinEntry>,
}

impl Joins {
    /// Where `request`, sent by `from`, stands; `Ok((status, true))` when it is new and must
    /// go into our next event. `me` is this node, `history` the validator sets.
    pub fn ask(
        &mut self,
        now: Instant,
        from: &PublicKey,
        request: &InternalTransaction,
        me: &PublicKey,
        history: &[(u64, PeerSet)],
    ) -> Result<(JoinStatus, bool), JoinRefusal> {
        let peer = &request.body.peer;
        if request.body.kind != InternalTransactionKind::PeerAdd {
            return Err(JoinRefusal::Invalid("not a PEER_ADD"));
        }
        if peer.pub_key != *from {
            return Err(JoinRefusal::Invalid(
                "the PEER_ADD names another key than the connection's",
            ));
        }
        if peer.moniker.len() > MAX_JOIN_FIELD_BYTES || peer.net_addr.len() > MAX_JOIN_FIELD_BYTES {
            return Err(JoinRefusal::Invalid("moniker or address too long"));
        }
        if peer.net_addr.is_empty() {
            return Err(JoinRefusal::Invalid("no network address"));
        }
        if !request.verify() {
            return Err(JoinRefusal::Invalid("bad signature"));
        }
        if let Some(round) = member_since(history, from) {
            self.entries.remove(from);
            return Ok((
                JoinStatus::Accepted {
                    round,
                    peers: latest(history).peers().to_vec(),
                },
                false,
            ));
        }
        self.entries.retain(|_, e| match e {
            JoinEntry::Pending { since } => now.duration_since(*since) < PENDING_JOIN_TTL,
            JoinEntry::Refused { at } => now.duration_since(*at) < REFUSAL_TTL,
        });
        match self.entries.get(from) {
            Some(JoinEntry::Refused { .. }) => return Ok((JoinStatus::Refused, false)),
            Some(JoinEntry::Pending { .. }) => return Ok((JoinStatus::Pending, false)),
            None => {}
        }
        if !latest(history).contains(me) {
            return Err(JoinRefusal::NotAValidator);
        }
        let pending = self
            .entries
            .values()
            .filter(|e| matches!(e, JoinEntry::Pending { .. }))
            .count();
        if pending >= MAX_PENDING_JOINS {
            return Err(JoinRefusal::Busy);
        }
        self.entries
            .insert(*from, JoinEntry::Pending { since: now });
        Ok((JoinStatus::Pending, true))
    }

    /// Records the app's receipts for a block: a refused PEER_ADD we carry is remembered as
    /// refused; an accepted one is answered from the history from now on.
    pub fn decided(&mut self, now: Instant, receipts: &[InternalTransactionReceipt]) {
        for receipt in receipts {
            let itx = &receipt.internal_transaction;
            if itx.body.kind != InternalTransactionKind::PeerAdd {
                continue;
            }
            let key = itx.body.peer.pub_key;
            if !self.entries.contains_key(&key) {
                continue;
            }
            if receipt.accepted {
                self.entries.remove(&key);
            } else {
                self.entries.insert(key, JoinEntry::Refused { at: now });
            }
        }
    }

    /// Whether we still carry a join by `key` (a stale event's PEER_ADD goes out again then).
    pub fn carries(&self, key: &PublicKey) -> bool {
        matches!(self.entries.get(key), Some(JoinEntry::Pending { .. }))
    }
}

/// The validator sets as the core last published them, with the peers of `peers.json`: what
/// the gossip and request-serving tasks use to pick and admit peers.
#[derive(Clone)]
pub struct MembershipView {
    history: watch::Receiver<History>,
    configured: PeerSet,
}

impl MembershipView {
    /// A view of the history the core publishes on `history`, plus `configured` (peers.json).
    pub fn new(history: watch::Receiver<History>, configured: PeerSet) -> MembershipView {
        MembershipView {
            history,
            configured,
        }
    }

    /// The validator-set history.
    pub fn history(&self) -> History {
        Arc::clone(&self.history.borrow())
    }

    /// The latest validator set.
    pub fn latest(&self) -> PeerSet {
        latest(&self.history.borrow()).clone()
    }

    /// Whether `key` is, was or is about to be a validator, or is in peers.json: such peers'
    /// requests are answered; others may only ask to join.
    pub fn admits(&self, key: &PublicKey) -> bool {
        self.configured.contains(key) || self.history.borrow().iter().any(|(_, s)| s.contains(key))
    }

    /// The latest description of `key` (history first, then peers.json).
    pub fn peer(&self, key: &PublicKey) -> Option<Peer> {
        let find = |set: &PeerSet| set.peers().iter().find(|p| p.pub_key == *key).cloned();
        let history = self.history.borrow();
        history
            .iter()
            .rev()
            .find_map(|(_, set)| find(set))
            .or_else(|| find(&self.configured))
    }

    /// Whom to gossip with: the latest validator set, and the peers of peers.json the history
    /// does not know yet (a joiner, or a node that was away, learns the current set from
    /// them), without `me`. Peers the history shows leaving are not dialled again.
    pub fn gossip_targets(&self, me: &PublicKey) -> Vec<Peer> {
        let history = self.history.borrow();
        let mut out: Vec<Peer> = latest(&history).peers().to_vec();
        for peer in self.configured.peers() {
            if !history.iter().any(|(_, set)| set.contains(&peer.pub_key)) {
                out.push(peer.clone());
            }
        }
        out.retain(|p| p.pub_key != *me);
        out
    }

    /// Waits until the history changes (or its sender is gone).
    pub async fn changed(&mut self) -> bool {
        self.history.changed().await.is_ok()
    }
}

/// The joiner's side: sends our PEER_ADD to the peers of `candidates` in turn until one
/// answers accepted or refused, within `timeout`. Returns the first round we are a validator
/// in. A refusal or the timeout is an error whose text tells the operator what happened.
pub async fn request_join(
    transport: &QuicTransport,
    key: &SecretKey,
    advertise: &str,
    moniker: &str,
    candidates: &[Peer],
    timeout: Duration,
) -> anyhow::Result<u64> {
    let me = key.public_key();
    let request = InternalTransaction::new(
        InternalTransactionKind::PeerAdd,
        Peer::new(me, advertise, moniker),
        key,
    );
    let mut candidates: Vec<&Peer> = candidates.iter().filter(|p| p.pub_key != me).collect();
    if candidates.is_empty() {
        bail!("peers.json names no validator to send the join request to");
    }
    candidates.shuffle(&mut rand::thread_rng());
    let deadline = Instant::now() + timeout;
    let mut last_problem = String::from("no validator answered");
    'peers: for peer in candidates.iter().cycle() {
        let addr = match super::gossip::peer_addr(peer) {
            Ok(addr) => addr,
            Err(e) => {
                last_problem = format!("{e:#}");
                if Instant::now() >= deadline {
                    break;
                }
                continue;
            }
        };
        loop {
            if Instant::now() >= deadline {
                break 'peers;
            }
            let answer = transport
                .request(peer.pub_key, addr, Request::Join(request.clone()))
                .await;
            // Pending: ask the same validator again; a refusal of the request (not of the
            // join) or no answer: try the next one.
            let problem = match answer {
                Ok(Response::Join(JoinStatus::Pending)) => None,
                Ok(Response::Join(JoinStatus::Accepted { round, .. })) => {
                    tracing::info!(validator = %peer.moniker, round, "join accepted: a validator from that round on");
                    return Ok(round);
                }
                Ok(Response::Join(JoinStatus::Refused)) => bail!(
                    "the validators' app refused this node's PEER_ADD (asked through {}): it \
                     cannot join; stopping",
                    peer.moniker
                ),
                Ok(Response::Error(e)) => {
                    Some(format!("{} refused the join request: {e}", peer.moniker))
                }
                Ok(other) => Some(format!("{} answered {other:?}", peer.moniker)),
                Err(e) => Some(format!("{}: {e}", peer.moniker)),
            };
            tokio::time::sleep(JOIN_POLL.min(deadline.saturating_duration_since(Instant::now())))
                .await;
            if let Some(problem) = problem {
                tracing::debug!(%problem, "join");
                last_problem = problem;
                continue 'peers;
            }
        }
    }
    Err(anyhow::anyhow!(last_problem)).with_context(|| {
        format!(
            "no validator accepted this node's join request within --join-timeout ({:?}); \
             check that the peers in peers.json are running and reachable",
            timeout
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: &str) -> SecretKey {
        SecretKey::from_seed(seed.as_bytes())
    }

    fn set(seeds: &[&str]) -> PeerSet {
        PeerSet::new(
            seeds
                .iter()
                .map(|s| Peer::new(key(s).public_key(), "127.0.0.1:1", *s))
                .collect(),
        )
        .unwrap()
    }

    fn add(seed: &str) -> InternalTransaction {
        let k = key(seed);
        InternalTransaction::new(
            InternalTransactionKind::PeerAdd,
            Peer::new(k.public_key(), "127.0.0.1:7", seed),
            &k,
        )
    }

    #[test]
    fn member_since_finds_the_start_of_the_current_run() {
        let history = vec![
            (0, set(&["a", "b"])),
            (10, set(&["a", "b", "c"])),
            (20, set(&["b", "c"])),
            (30, set(&["a", "b", "c"])),
        ];
        let a = key("a").public_key();
        let b = key("b").public_key();
        let c = key("c").public_key();
        assert_eq!(member_since(&history, &a), Some(30));
        assert_eq!(member_since(&history, &b), Some(0));
        assert_eq!(member_since(&history, &c), Some(10));
        assert_eq!(member_since(&history, &key("d").public_key()), None);
    }

    #[test]
    fn a_join_is_carried_once_then_answered_from_the_receipts_and_the_history() {
        let me = key("a").public_key();
        let mut history = vec![(0, set(&["a", "b", "c"]))];
        let mut joins = Joins::default();
        let now = Instant::now();
        let j = add("j");
        let from = j.body.peer.pub_key;
        assert_eq!(
            joins.ask(now, &from, &j, &me, &history),
            Ok((JoinStatus::Pending, true))
        );
        assert!(joins.carries(&from));
        assert_eq!(
            joins.ask(now, &from, &j, &me, &history),
            Ok((JoinStatus::Pending, false))
        );
        // Accepted: the history answers.
        joins.decided(
            now,
            &[InternalTransactionReceipt {
                internal_transaction: j.clone(),
                accepted: true,
            }],
        );
        history.push((9, set(&["a", "b", "c", "j"])));
        let (status, new) = joins.ask(now, &from, &j, &me, &history).unwrap();
        assert!(!new);
        assert!(matches!(status, JoinStatus::Accepted { round: 9, ref peers } if peers.len() == 4));

        // Refused: remembered for the joiner's next poll, then forgotten.
        let r = add("r");
        let from = r.body.peer.pub_key;
        assert!(joins.ask(now, &from, &r, &me, &history).unwrap().1);
        joins.decided(
            now,
            &[InternalTransactionReceipt {
                internal_transaction: r.clone(),
                accepted: false,
            }],
        );
        assert_eq!(
            joins.ask(now, &from, &r, &me, &history),
            Ok((JoinStatus::Refused, false))
        );
        let later = now + REFUSAL_TTL + Duration::from_secs(1);
        assert_eq!(
            joins.ask(later, &from, &r, &me, &history),
            Ok((JoinStatus::Pending, true))
        );
    }

    #[test]
    fn bad_join_requests_are_refused_with_the_reason() {
        let me = key("a").public_key();
        let history = vec![(0, set(&["a", "b", "c"]))];
        let mut joins = Joins::default();
        let now = Instant::now();
        let j = add("j");
        let from = j.body.peer.pub_key;
        // Sent over another key's connection.
        assert!(matches!(
            joins.ask(now, &key("x").public_key(), &j, &me, &history),
            Err(JoinRefusal::Invalid(_))
        ));
        // A PEER_REMOVE.
        let k = key("j");
        let remove =
            InternalTransaction::new(InternalTransactionKind::PeerRemove, j.body.peer.clone(), &k);
        assert!(matches!(
            joins.ask(now, &from, &remove, &me, &history),
            Err(JoinRefusal::Invalid(_))
        ));
        // Signed by another key.
        let forged = InternalTransaction::new(
            InternalTransactionKind::PeerAdd,
            j.body.peer.clone(),
            &key("x"),
        );
        assert_eq!(
            joins.ask(now, &from, &forged, &me, &history),
            Err(JoinRefusal::Invalid("bad signature"))
        );
        // An oversized moniker.
        let long = InternalTransaction::new(
            InternalTransactionKind::PeerAdd,
            Peer::new(from, "127.0.0.1:7", "m".repeat(MAX_JOIN_FIELD_BYTES + 1)),
            &k,
        );
        assert!(matches!(
            joins.ask(now, &from, &long, &me, &history),
            Err(JoinRefusal::Invalid(_))
        ));
        // Asked of a node outside the latest set.
        assert_eq!(
            joins.ask(now, &from, &j, &key("z").public_key(), &history),
            Err(JoinRefusal::NotAValidator)
        );
        // More joins than the bound.
        for i in 0..MAX_PENDING_JOINS {
            let other = add(&format!("p{i}"));
            let from = other.body.peer.pub_key;
            assert!(joins.ask(now, &from, &other, &me, &history).is_ok());
        }
        assert_eq!(
            joins.ask(now, &from, &j, &me, &history),
            Err(JoinRefusal::Busy)
        );
        // Undecided joins expire.
        let later = now + PENDING_JOIN_TTL + Duration::from_secs(1);
        assert_eq!(
            joins.ask(later, &from, &j, &me, &history),
            Ok((JoinStatus::Pending, true))
        );
    }
}
