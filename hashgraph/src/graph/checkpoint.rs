//! The hashgraph's state as a value: what a host persists so that a restart resumes in a time
//! that depends on the history kept in memory (bounded by eviction), not on the whole history.
//!
//! A checkpoint holds every consensus fact the core computed (rounds, ancestry vectors,
//! strong-seeing matrices, votes, fame, order) and the ids of the events in memory, not their
//! bodies: the host already stores those, and hands them back to [`Hashgraph::restore`].
//! Nothing is recomputed on restore, so a restored hashgraph is the one that was saved, and
//! continues exactly as it would have.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::membership::AwaitingReceipts;
use super::{Anc, Config, Hashgraph, Node, Ready, RoundState, Seq, Stats, WitnessState};
use crate::block::Root;
use crate::crypto::{Hash, PublicKey};
use crate::error::HashgraphError;
use crate::event::Event;
use crate::peers::PeerSet;

/// Format of [`Checkpoint`]; a host refuses (and falls back to a full replay) on another.
pub const CHECKPOINT_FORMAT: u32 = 2;

/// A saved [`Hashgraph`], see the module documentation. Serialisable; its fields are private.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    format: u32,
    creators: Vec<CreatorCk>,
    peer_sets: Vec<(u64, PeerSet)>,
    arena_base: Seq,
    arena: Vec<Option<NodeCk>>,
    round_base: u64,
    rounds: Vec<RoundCk>,
    fame_next: u64,
    received_next: u64,
    undetermined: Vec<(u64, Vec<Seq>)>,
    any_fork: bool,
    next_block_index: u64,
    prev_block_hash: Hash,
    stats: Stats,
    awaiting: Option<AwaitingReceipts>,
}

impl Checkpoint {
    /// Ids of the events the checkpoint refers to (those in memory when it was taken).
    pub fn event_ids(&self) -> impl Iterator<Item = Hash> + '_ {
        self.arena.iter().flatten().map(|n| n.id)
    }

    /// The last round received when it was taken, if any.
    pub fn last_consensus_round(&self) -> Option<u64> {
        self.received_next.checked_sub(1)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct CreatorCk {
    key: PublicKey,
    forker: bool,
    chain: Vec<Seq>,
    chain_base: u64,
    extra: Vec<(u64, Vec<Seq>)>,
    last_consensus: Option<Root>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct NodeCk {
    id: Hash,
    creator: u32,
    self_parent: Option<Seq>,
    other_parent: Option<Seq>,
    lamport: u64,
    round: u64,
    la: Vec<(u64, Seq)>,
    see_cur: Vec<u64>,
    see_prev: Vec<u64>,
    witness: Option<WitnessCk>,
    round_received: Option<u64>,
    consensus_ts: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct WitnessCk {
    strongly_seen: Vec<u32>,
    famous: Option<bool>,
    votes: Vec<Vec<bool>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct RoundCk {
    witnesses: Vec<Seq>,
    decided: bool,
}

impl Hashgraph {
    /// The state as a value. Take [`Hashgraph::take_ready`] first: what it holds is not saved.
    /// Events waiting for missing parents are not saved either; peers send them again.
    pub fn checkpoint(&self) -> Checkpoint {
        debug_assert!(self.ready.is_empty(), "take_ready before checkpoint");
        Checkpoint {
            format: CHECKPOINT_FORMAT,
            creators: self
                .creators
                .iter()
                .map(|c| {
                    let mut extra: Vec<(u64, Vec<Seq>)> =
                        c.extra.iter().map(|(i, v)| (*i, v.clone())).collect();
                    extra.sort_unstable();
                    CreatorCk {
                        key: c.key,
                        forker: c.forker,
                        chain: c.chain.iter().copied().collect(),
                        chain_base: c.chain_base,
                        extra,
                        last_consensus: c.last_consensus.clone(),
                    }
                })
                .collect(),
            peer_sets: self.peer_set_history(),
            arena_base: self.arena_base,
            arena: self
                .arena
                .iter()
                .map(|slot| {
                    slot.as_ref().map(|n| NodeCk {
                        id: n.event.id(),
                        creator: n.creator,
                        self_parent: n.self_parent,
                        other_parent: n.other_parent,
                        lamport: n.lamport,
                        round: n.round,
                        la: n.la.iter().map(|a| (a.index, a.seq)).collect(),
                        see_cur: n.see_cur.to_vec(),
                        see_prev: n.see_prev.to_vec(),
                        witness: n.witness.as_ref().map(|w| WitnessCk {
                            strongly_seen: w.strongly_seen.clone(),
                            famous: w.famous,
                            votes: w.votes.clone(),
                        }),
                        round_received: n.round_received,
                        consensus_ts: n.consensus_ts,
                    })
                })
                .collect(),
            round_base: self.round_base,
            rounds: self
                .rounds
                .iter()
                .map(|r| RoundCk {
                    witnesses: r.witnesses.clone(),
                    decided: r.decided,
                })
                .collect(),
            fame_next: self.fame_next,
            received_next: self.received_next,
            undetermined: self
                .undetermined
                .iter()
                .map(|(r, v)| (*r, v.clone()))
                .collect(),
            any_fork: self.any_fork,
            next_block_index: self.next_block_index,
            prev_block_hash: self.prev_block_hash,
            stats: self.stats.clone(),
            awaiting: self.awaiting.clone(),
        }
    }

    /// The hashgraph saved in `checkpoint`, with the bodies of its events from `event` (by
    /// id). Fails, changing nothing, if the checkpoint is of another format, an event is
    /// missing or does not match its id, or the checkpoint is inconsistent.
    pub fn restore(
        config: Config,
        checkpoint: Checkpoint,
        mut event: impl FnMut(&Hash) -> Option<Event>,
    ) -> Result<Hashgraph, HashgraphError> {
        let bad = |detail: String| HashgraphError::BadCheckpoint(detail);
        if checkpoint.format != CHECKPOINT_FORMAT {
            return Err(bad(format!(
                "format {} (this version reads {CHECKPOINT_FORMAT})",
                checkpoint.format
            )));
        }
        let mut peer_sets = checkpoint.peer_sets.into_iter();
        let Some((0, genesis)) = peer_sets.next() else {
            return Err(bad("no validator set from round 0".into()));
        };
        let mut hg = Hashgraph::new(config, genesis);
        for (round, set) in peer_sets {
            hg.add_peer_set(round, set);
        }
        for c in &checkpoint.creators {
            hg.creator_index_or_register(c.key);
        }
        if hg.creators.len() != checkpoint.creators.len() {
            return Err(bad("creators out of order".into()));
        }
        let width = hg.creators.len();
        let arena_len = checkpoint.arena.len() as u64;
        let end = checkpoint.arena_base + arena_len;
        let seq_ok = |s: Seq| s < end || s == super::NO_SEQ || s == super::FORKED;
        let mut arena = VecDeque::with_capacity(checkpoint.arena.len());
        let mut by_id = HashMap::with_capacity(checkpoint.arena.len());
        for (i, slot) in checkpoint.arena.into_iter().enumerate() {
            let Some(n) = slot else {
                arena.push_back(None);
                continue;
            };
            let body = event(&n.id).ok_or_else(|| bad(format!("event {:?} is missing", n.id)))?;
            if body.id() != n.id {
                return Err(bad(format!("event {:?} does not match its id", n.id)));
            }
            if n.creator as usize >= width
                || hg.creators[n.creator as usize].key != *body.creator()
                || n.la.len() > width
                || !n.la.iter().all(|&(_, s)| seq_ok(s))
                || !n.self_parent.into_iter().chain(n.other_parent).all(seq_ok)
            {
                return Err(bad(format!("event {:?} is inconsistent", n.id)));
            }
            by_id.insert(n.id, checkpoint.arena_base + i as Seq);
            arena.push_back(Some(Node {
                event: body,
                creator: n.creator,
                self_parent: n.self_parent,
                other_parent: n.other_parent,
                lamport: n.lamport,
                round: n.round,
                la: n
                    .la
                    .into_iter()
                    .map(|(index, seq)| Anc { index, seq })
                    .collect(),
                see_cur: n.see_cur.into_boxed_slice(),
                see_prev: n.see_prev.into_boxed_slice(),
                witness: n.witness.map(|w| {
                    Box::new(WitnessState {
                        strongly_seen: w.strongly_seen,
                        famous: w.famous,
                        votes: w.votes,
                    })
                }),
                round_received: n.round_received,
                consensus_ts: n.consensus_ts,
            }));
        }
        let live = |s: Seq| {
            s >= checkpoint.arena_base
                && arena
                    .get((s - checkpoint.arena_base) as usize)
                    .is_some_and(Option::is_some)
        };
        for (state, ck) in hg.creators.iter_mut().zip(checkpoint.creators) {
            if !ck.chain.iter().all(|&s| live(s))
                || !ck.extra.iter().flat_map(|(_, v)| v).all(|&s| live(s))
            {
                return Err(bad("a creator's chain names an event not held".into()));
            }
            state.forker = ck.forker;
            state.chain = ck.chain.into();
            state.chain_base = ck.chain_base;
            state.extra = ck.extra.into_iter().collect();
            state.last_consensus = ck.last_consensus;
        }
        let mut rounds = VecDeque::with_capacity(checkpoint.rounds.len());
        for (i, r) in checkpoint.rounds.into_iter().enumerate() {
            if !r.witnesses.iter().all(|&s| live(s)) {
                return Err(bad("a round names a witness not held".into()));
            }
            let round = checkpoint.round_base + i as u64;
            rounds.push_back(RoundState {
                peers: Arc::clone(hg.peers_for(round)),
                witnesses: r.witnesses,
                decided: r.decided,
            });
        }
        let mut undetermined = BTreeMap::new();
        let (mut undetermined_len, mut undetermined_payload) = (0, 0);
        for (round, seqs) in checkpoint.undetermined {
            for &s in &seqs {
                let Some(Some(n)) = arena.get(s.wrapping_sub(checkpoint.arena_base) as usize)
                else {
                    return Err(bad("an undetermined event is not held".into()));
                };
                undetermined_len += 1;
                undetermined_payload += usize::from(n.event.body().has_payload());
            }
            undetermined.insert(round, seqs);
        }
        hg.arena = arena;
        hg.arena_base = checkpoint.arena_base;
        hg.by_id = by_id;
        hg.rounds = rounds;
        hg.round_base = checkpoint.round_base;
        hg.fame_next = checkpoint.fame_next;
        hg.received_next = checkpoint.received_next;
        hg.undetermined = undetermined;
        hg.undetermined_len = undetermined_len;
        hg.undetermined_payload = undetermined_payload;
        hg.any_fork = checkpoint.any_fork;
        hg.next_block_index = checkpoint.next_block_index;
        hg.prev_block_hash = checkpoint.prev_block_hash;
        hg.stats = checkpoint.stats;
        hg.awaiting = checkpoint.awaiting;
        hg.pending = HashMap::new();
        hg.pending_ids = HashSet::new();
        hg.ready = Ready::default();
        Ok(hg)
    }
}
