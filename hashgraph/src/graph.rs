//! The DAG and the consensus state machine.
//!
//! Everything here is incremental. Per inserted event the core computes:
//! - its *last-ancestor vector*: for each creator, the highest index among the creator's events
//!   in the event's ancestry, or FORKED when the ancestry holds two branches of that creator
//!   (then, per the paper, the event sees none of that creator's events);
//! - two *strong-seeing matrices*, for its round and the round before: row = a witness slot,
//!   bit d = "this event sees an event of member d that sees that witness". A row's popcount
//!   (masked by the members whose events it can still see) is the number of members through
//!   which it sees the witness, so "strongly sees" costs a popcount, and the matrices of a new
//!   event are the union of its parents' plus one bit column for itself: O(n·⌈n/64⌉) work.
//!
//! Fame is decided by virtual voting with dense per-candidate vote tables; a round is decided
//! when all its known witnesses are; rounds are then received in order, producing ordered events
//! and blocks.
//!
//! Order key and coin: Hearsay whitens the *event id* (not the signature) with the ids of the
//! round's unique famous witnesses, and takes a coin round's coin from the middle bit of the
//! voter's id. ECDSA signatures are malleable: one event id can carry several valid signatures,
//! and two honest nodes holding different ones would order or vote differently. The id is fixed
//! by the DAG, and a creator can grind it (through the timestamp) no more than it can grind a
//! signature's nonce.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

mod anchor;
mod checkpoint;
mod membership;
pub use anchor::{Window, WindowEvent};
pub use checkpoint::{Checkpoint, CHECKPOINT_FORMAT};
pub use membership::{PeerSetChange, PEER_CHANGE_DELAY_ROUNDS};

use crate::block::{Block, BlockBody, Frame, FrameEvent, Root};
use crate::crypto::{Hash, PublicKey, SecretKey};
use crate::error::{HashgraphError, InsertError};
use crate::event::{BlockSignature, Event, EventBody, InternalTransaction, VerifiedEvent};
use crate::peers::PeerSet;

/// Tunables of the core. Every field has a sensible default.
#[derive(Clone, Debug)]
pub struct Config {
    /// Every `coin_round_frequency`-th voting round is a coin round (the paper's c; 10).
    pub coin_round_frequency: u64,
    /// Largest accepted encoded event, in bytes.
    pub max_event_bytes: usize,
    /// Most events held while their parents are missing.
    pub max_pending_events: usize,
    /// An event not yet ordered when round `r` is received, and whose own round is below
    /// `r - stale_rounds`, is *stale*: it is never ordered (see [`Ready::stale`]). Every node
    /// decides this alike, and it lets history be evicted behind a withholding or cut-off
    /// creator instead of waiting for its events forever.
    pub stale_rounds: u64,
    /// An event whose other-parent's round is more than this many rounds below its
    /// self-parent's round is refused ([`InsertError::OtherParentTooOld`]).
    pub max_parent_round_gap: u64,
    /// Rounds by which two honest nodes' consensus progress may differ while eviction stays
    /// invisible to the consensus (see [`Config::min_retained_rounds`]). A node further behind
    /// than this may find its events refused as too old and has to fast-sync.
    pub eviction_margin_rounds: u64,
}

impl Config {
    /// The fewest rounds [`Hashgraph::evict_before`] keeps behind the last received round:
    /// the stale horizon, plus room for two maximal parent-round gaps and a margin for nodes
    /// whose consensus progress differs. An event that names an evicted parent is then stale
    /// or invalid at every node whose progress is within the margin of ours.
    pub fn min_retained_rounds(&self) -> u64 {
        self.stale_rounds + 2 * self.max_parent_round_gap + self.eviction_margin_rounds
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            coin_round_frequency: 10,
            max_event_bytes: 4 << 20,
            max_pending_events: 20_000,
            stale_rounds: 20,
            max_parent_round_gap: 8,
            eviction_margin_rounds: 8,
        }
    }
}

/// Two events by one creator that conflict: proof that the creator forked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForkEvidence {
    /// The forking creator.
    pub creator: PublicKey,
    /// The event held first.
    pub first: Event,
    /// The conflicting event (same index, different content).
    pub second: Event,
}

/// What one insertion did. Accumulates over a batch with [`InsertOutcome::accumulate`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    /// Events added to the DAG: the one inserted and any held children it released.
    pub added: Vec<Hash>,
    /// Parents to fetch: the event is held until they arrive.
    pub missing_parents: Vec<Hash>,
    /// Forks discovered.
    pub forks: Vec<ForkEvidence>,
    /// Events that were already known (ignored).
    pub duplicates: usize,
}

impl InsertOutcome {
    /// Adds `other` to `self`.
    pub fn accumulate(&mut self, other: InsertOutcome) {
        self.added.extend(other.added);
        self.missing_parents.extend(other.missing_parents);
        self.forks.extend(other.forks);
        self.duplicates += other.duplicates;
    }
}

/// An event placed in the consensus order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderedEvent {
    /// The event.
    pub id: Hash,
    /// Its round received.
    pub round_received: u64,
    /// Its consensus timestamp (ns).
    pub consensus_timestamp: i64,
}

/// What the host must act on, taken with [`Hashgraph::take_ready`]: persist the events first,
/// then gossip, then deliver the blocks to the app.
#[derive(Clone, Debug, Default)]
pub struct Ready {
    /// Every event accepted since the last call, in insertion (topological) order.
    pub events: Vec<Event>,
    /// Events placed in the consensus order, in that order.
    pub ordered: Vec<OrderedEvent>,
    /// New blocks, by increasing index.
    pub blocks: Vec<Block>,
    /// Frames of the new blocks, same order as `blocks`.
    pub frames: Vec<Frame>,
    /// Hashes of the new blocks' bodies, same order as `blocks`: computed here for the hash
    /// chain, and needed again for every signature on the block.
    pub block_hashes: Vec<Hash>,
    /// Forks discovered.
    pub forks: Vec<ForkEvidence>,
    /// Events that went stale ([`Config::stale_rounds`]): they will never be ordered, at any
    /// node. A host re-submits the transactions of its own stale events.
    pub stale: Vec<Event>,
}

impl Ready {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.ordered.is_empty()
            && self.blocks.is_empty()
            && self.forks.is_empty()
            && self.stale.is_empty()
    }
}

/// Consensus facts about one event, for tools, tests and the HTTP service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventInfo {
    /// The event.
    pub event: Event,
    /// Its round created.
    pub round: u64,
    /// Whether it is its creator's first event in that round (and the creator a member).
    pub witness: bool,
    /// For witnesses: `Some(true/false)` once decided.
    pub famous: Option<bool>,
    /// Once ordered.
    pub round_received: Option<u64>,
    /// Once ordered.
    pub consensus_timestamp: Option<i64>,
    /// 0 without parents, else 1 + the larger parent's.
    pub lamport: u64,
}

/// Counters for `/stats` and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Events in memory.
    pub events_in_memory: usize,
    /// Events inserted since start.
    pub events_inserted: u64,
    /// Events placed in the consensus order since start.
    pub consensus_events: u64,
    /// Inserted events not yet ordered.
    pub undetermined_events: usize,
    /// Of those, the ones carrying transactions, internal transactions or block signatures:
    /// while there are any, the network has work and nodes keep gossiping and creating events.
    pub undetermined_with_payload: usize,
    /// Events waiting for parents.
    pub pending_events: usize,
    /// Highest round any event reached.
    pub last_round: Option<u64>,
    /// Highest round whose fame is decided and which was received.
    pub last_consensus_round: Option<u64>,
    /// Index of the last block produced.
    pub last_block_index: Option<u64>,
    /// Creators caught forking.
    pub forkers: usize,
    /// Votes cast by coin flip in coin rounds (no supermajority either way).
    pub coin_votes: u64,
    /// Events that went stale (never to be ordered) since start.
    pub stale_events: u64,
}

type Seq = u64;
const NO_SEQ: Seq = u64::MAX;
const FORKED: Seq = u64::MAX - 1;

/// Creator `c`'s highest event in an ancestry: its index and arena sequence number, or
/// `seq == NO_SEQ` (none) or `seq == FORKED` (two branches; `index` is then the highest seen).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Anc {
    index: u64,
    seq: Seq,
}

const NO_ANC: Anc = Anc {
    index: 0,
    seq: NO_SEQ,
};

impl Anc {
    fn is_none(self) -> bool {
        self.seq == NO_SEQ
    }
    fn is_forked(self) -> bool {
        self.seq == FORKED
    }
}

/// A validator set as the per-round tables use it.
#[derive(Debug)]
struct RoundPeers {
    set: PeerSet,
    hash: Hash,
    /// creator index of each slot
    creators: Vec<u32>,
    /// slot of each creator index, u32::MAX for non-members
    slot_of: Vec<u32>,
    supermajority: usize,
    words: usize,
}

impl RoundPeers {
    fn slot(&self, creator: u32) -> Option<usize> {
        match self.slot_of.get(creator as usize) {
            Some(&s) if s != u32::MAX => Some(s as usize),
            _ => None,
        }
    }
    fn matrix_len(&self) -> usize {
        self.creators.len() * self.words
    }
}

struct WitnessState {
    /// ordinals of the previous round's witnesses this witness strongly sees
    strongly_seen: Vec<u32>,
    famous: Option<bool>,
    /// votes[d-1][voter ordinal in round + d]
    votes: Vec<Vec<bool>>,
}

struct Node {
    event: Event,
    creator: u32,
    self_parent: Option<Seq>,
    other_parent: Option<Seq>,
    lamport: u64,
    round: u64,
    la: Box<[Anc]>,
    see_cur: Box<[u64]>,
    see_prev: Box<[u64]>,
    witness: Option<Box<WitnessState>>,
    round_received: Option<u64>,
    consensus_ts: Option<i64>,
}

/// Where [`Hashgraph::place`] puts an event.
struct Placement {
    round: u64,
    see_cur: Box<[u64]>,
    see_prev: Box<[u64]>,
    witness: Option<Box<WitnessState>>,
}

impl Node {
    fn anc(&self, creator: u32) -> Anc {
        self.la.get(creator as usize).copied().unwrap_or(NO_ANC)
    }
    fn index(&self) -> u64 {
        self.event.index()
    }
}

struct CreatorState {
    key: PublicKey,
    forker: bool,
    /// first-held event at each index, from `chain_base`
    chain: VecDeque<Seq>,
    chain_base: u64,
    /// further events at an index (forks)
    extra: HashMap<u64, Vec<Seq>>,
    /// last event ordered by consensus (frame roots)
    last_consensus: Option<Root>,
}

struct RoundState {
    peers: Arc<RoundPeers>,
    witnesses: Vec<Seq>,
    decided: bool,
}

/// The hashgraph: a DAG of signed events and the consensus derived from it. Sans-IO and
/// deterministic: the host feeds events and time, and takes what to do from [`Hashgraph::take_ready`].
pub struct Hashgraph {
    config: Config,
    creators: Vec<CreatorState>,
    creator_of: HashMap<PublicKey, u32>,
    peer_sets: Vec<(u64, Arc<RoundPeers>)>,
    arena: VecDeque<Option<Node>>,
    arena_base: Seq,
    by_id: HashMap<Hash, Seq>,
    rounds: VecDeque<RoundState>,
    round_base: u64,
    /// first round whose fame is not yet settled
    fame_next: u64,
    /// next round to receive
    received_next: u64,
    /// Events not yet ordered, by round created: receiving round r only looks at rounds ≤ r,
    /// so a large backlog of later events costs nothing per received round.
    undetermined: std::collections::BTreeMap<u64, Vec<Seq>>,
    undetermined_len: usize,
    /// How many undetermined events have a payload ([`EventBody::has_payload`]).
    undetermined_payload: usize,
    pending: HashMap<Hash, Vec<VerifiedEvent>>,
    pending_ids: HashSet<Hash>,
    any_fork: bool,
    next_block_index: u64,
    prev_block_hash: Hash,
    stats: Stats,
    ready: Ready,
    /// The event being inserted, before it joins the arena: its sequence number, index and
    /// self-parent, so that ancestry walks starting at it (a forker's own entry) work.
    inserting: Option<(Seq, u64, Option<Seq>)>,
    /// A block of validator-set changes waiting for the app's receipts: consensus stops after
    /// its round until then (see the `membership` module).
    awaiting: Option<membership::AwaitingReceipts>,
}

impl Hashgraph {
    /// A hashgraph whose validator set at round 0 is `genesis`.
    pub fn new(config: Config, genesis: PeerSet) -> Hashgraph {
        let mut hg = Hashgraph {
            config,
            creators: Vec::new(),
            creator_of: HashMap::new(),
            peer_sets: Vec::new(),
            arena: VecDeque::new(),
            arena_base: 0,
            by_id: HashMap::new(),
            rounds: VecDeque::new(),
            round_base: 0,
            fame_next: 0,
            received_next: 0,
            undetermined: std::collections::BTreeMap::new(),
            undetermined_len: 0,
            undetermined_payload: 0,
            pending: HashMap::new(),
            pending_ids: HashSet::new(),
            any_fork: false,
            next_block_index: 0,
            prev_block_hash: Hash::ZERO,
            stats: Stats::default(),
            ready: Ready::default(),
            inserting: None,
            awaiting: None,
        };
        hg.add_peer_set(0, genesis);
        hg
    }

    // ----- validator sets -------------------------------------------------------------------

    /// Registers the validator set in force from `round` on (until a later registration).
    /// Only rounds the DAG has not reached can change.
    pub fn set_peer_set(&mut self, round: u64, set: PeerSet) -> Result<(), HashgraphError> {
        if let Some(last) = self.last_round() {
            if round <= last {
                return Err(HashgraphError::RoundAlreadyStarted { round, last });
            }
        }
        self.add_peer_set(round, set);
        Ok(())
    }

    fn add_peer_set(&mut self, round: u64, set: PeerSet) {
        for peer in set.peers() {
            self.creator_index_or_register(peer.pub_key);
        }
        let creators: Vec<u32> = set
            .peers()
            .iter()
            .map(|p| self.creator_of[&p.pub_key])
            .collect();
        let mut slot_of = vec![u32::MAX; self.creators.len()];
        for (slot, &c) in creators.iter().enumerate() {
            slot_of[c as usize] = slot as u32;
        }
        let peers = Arc::new(RoundPeers {
            hash: set.hash(),
            supermajority: set.supermajority(),
            words: set.len().div_ceil(64),
            creators,
            slot_of,
            set,
        });
        self.peer_sets.retain(|(r, _)| *r < round);
        self.peer_sets.push((round, peers));
    }

    fn creator_index_or_register(&mut self, key: PublicKey) -> u32 {
        if let Some(&c) = self.creator_of.get(&key) {
            return c;
        }
        let c = self.creators.len() as u32;
        self.creators.push(CreatorState {
            key,
            forker: false,
            chain: VecDeque::new(),
            chain_base: 0,
            extra: HashMap::new(),
            last_consensus: None,
        });
        self.creator_of.insert(key, c);
        c
    }

    fn peers_for(&self, round: u64) -> &Arc<RoundPeers> {
        &self
            .peer_sets
            .iter()
            .rev()
            .find(|(r, _)| *r <= round)
            .expect("a set is registered from round 0")
            .1
    }

    /// The validator set in force at `round`.
    pub fn peer_set(&self, round: u64) -> &PeerSet {
        &self.peers_for(round).set
    }

    /// The first round of the latest validator set (0 while the genesis set governs).
    pub fn latest_peer_change(&self) -> u64 {
        self.peer_sets.last().map_or(0, |(r, _)| *r)
    }

    /// Every registered validator set with its first round.
    pub fn peer_set_history(&self) -> Vec<(u64, PeerSet)> {
        self.peer_sets
            .iter()
            .map(|(r, p)| (*r, p.set.clone()))
            .collect()
    }

    // ----- arena helpers --------------------------------------------------------------------

    fn node(&self, seq: Seq) -> Option<&Node> {
        if seq < self.arena_base {
            return None;
        }
        self.arena
            .get((seq - self.arena_base) as usize)
            .and_then(Option::as_ref)
    }

    fn node_mut(&mut self, seq: Seq) -> &mut Node {
        self.arena[(seq - self.arena_base) as usize]
            .as_mut()
            .expect("live node")
    }

    fn live(&self, seq: Seq) -> &Node {
        self.node(seq).expect("live node")
    }

    fn round_state(&self, round: u64) -> Option<&RoundState> {
        if round < self.round_base {
            return None;
        }
        self.rounds.get((round - self.round_base) as usize)
    }

    fn ensure_round(&mut self, round: u64) {
        while self.round_base + (self.rounds.len() as u64) <= round {
            let r = self.round_base + self.rounds.len() as u64;
            let peers = Arc::clone(self.peers_for(r));
            self.rounds.push_back(RoundState {
                peers,
                witnesses: Vec::new(),
                decided: false,
            });
        }
    }

    fn last_round(&self) -> Option<u64> {
        if self.rounds.is_empty() {
            None
        } else {
            Some(self.round_base + self.rounds.len() as u64 - 1)
        }
    }

    // ----- ancestry -------------------------------------------------------------------------

    /// Whether `a` is `b` or a self-ancestor of `b` (both by the same creator).
    fn self_ancestor_seq(&self, b: Seq, a: Seq) -> bool {
        let Some(target) = self.node(a) else {
            return false;
        };
        let target_index = target.index();
        let mut cursor = b;
        loop {
            if cursor == a {
                return true;
            }
            let (index, self_parent) = match (self.node(cursor), self.inserting) {
                (Some(node), _) => (node.index(), node.self_parent),
                (None, Some((seq, index, self_parent))) if seq == cursor => (index, self_parent),
                (None, _) => return false,
            };
            if index <= target_index {
                return false;
            }
            match self_parent {
                Some(sp) => cursor = sp,
                None => return false,
            }
        }
    }

    /// Whether the event at `y` is in an ancestry whose entry for y's creator is `anc`,
    /// provided that ancestry holds no fork of the creator ("sees").
    fn anc_covers(&self, anc: Anc, y: Seq, y_creator: u32, y_index: u64) -> bool {
        if anc.is_none() || anc.is_forked() || anc.index < y_index {
            return false;
        }
        !self.creators[y_creator as usize].forker || self.self_ancestor_seq(anc.seq, y)
    }

    fn sees_seq(&self, x: Seq, y: Seq) -> bool {
        let (Some(xn), Some(yn)) = (self.node(x), self.node(y)) else {
            return false;
        };
        self.anc_covers(xn.anc(yn.creator), y, yn.creator, yn.index())
    }

    /// Ancestry regardless of forks: falls back to a bounded graph search when x's ancestry
    /// holds a fork of y's creator.
    fn ancestor_seq(&self, x: Seq, y: Seq) -> bool {
        let (Some(xn), Some(yn)) = (self.node(x), self.node(y)) else {
            return false;
        };
        let anc = xn.anc(yn.creator);
        if !anc.is_forked() {
            return self.anc_covers(anc, y, yn.creator, yn.index());
        }
        // Descendants are inserted after their ancestors and have larger Lamport timestamps,
        // which bounds the search to the part of the DAG between y and x.
        let floor_lamport = yn.lamport;
        let mut stack = vec![x];
        let mut seen = HashSet::new();
        while let Some(s) = stack.pop() {
            if s == y {
                return true;
            }
            if s < y || !seen.insert(s) {
                continue;
            }
            let Some(node) = self.node(s) else { continue };
            if node.lamport <= floor_lamport {
                continue;
            }
            stack.extend(node.self_parent);
            stack.extend(node.other_parent);
        }
        false
    }

    fn merge_anc(&self, creator: u32, a: Anc, b: Anc) -> Anc {
        if a.is_none() {
            return b;
        }
        if b.is_none() || a.seq == b.seq {
            return a;
        }
        let index = a.index.max(b.index);
        if a.is_forked() || b.is_forked() {
            return Anc { index, seq: FORKED };
        }
        let (hi, lo) = if a.index >= b.index { (a, b) } else { (b, a) };
        if !self.creators[creator as usize].forker || self.self_ancestor_seq(hi.seq, lo.seq) {
            hi
        } else {
            Anc { index, seq: FORKED }
        }
    }

    // ----- strong seeing --------------------------------------------------------------------

    /// Matrix of `x` for the witnesses of `target`, from its parents plus its own column.
    fn see_matrix(&self, target: u64, parents: &[Seq], creator: u32, la: &[Anc]) -> Box<[u64]> {
        let peers = self.peers_for(target);
        let mut matrix = vec![0u64; peers.matrix_len()].into_boxed_slice();
        for &p in parents {
            let pn = self.live(p);
            let src = if pn.round == target {
                &pn.see_cur
            } else if pn.round == target + 1 {
                &pn.see_prev
            } else {
                continue;
            };
            for (dst, src) in matrix.iter_mut().zip(src.iter()) {
                *dst |= *src;
            }
        }
        if let (Some(me), Some(rs)) = (peers.slot(creator), self.round_state(target)) {
            for &w in &rs.witnesses {
                let wn = self.live(w);
                let anc = la.get(wn.creator as usize).copied().unwrap_or(NO_ANC);
                if self.anc_covers(anc, w, wn.creator, wn.index()) {
                    let row = peers.slot(wn.creator).expect("witnesses are members");
                    matrix[row * peers.words + me / 64] |= 1 << (me % 64);
                }
            }
        }
        matrix
    }

    /// Mask of the members of `target`'s set whose events an ancestry `la` can still see.
    fn visible_members(&self, peers: &RoundPeers, la: &[Anc]) -> Vec<u64> {
        let mut mask = vec![!0u64; peers.words];
        if self.any_fork {
            for (slot, &c) in peers.creators.iter().enumerate() {
                if la.get(c as usize).is_some_and(|a| a.is_forked()) {
                    mask[slot / 64] &= !(1 << (slot % 64));
                }
            }
        }
        mask
    }

    /// Ordinals of `target`'s witnesses strongly seen by an event with ancestry `la` and
    /// matrix `matrix` for that round.
    fn strongly_seen(&self, target: u64, la: &[Anc], matrix: &[u64]) -> Vec<u32> {
        let Some(rs) = self.round_state(target) else {
            return Vec::new();
        };
        let peers = &rs.peers;
        let mask = self.visible_members(peers, la);
        let mut out = Vec::new();
        for (ordinal, &w) in rs.witnesses.iter().enumerate() {
            let wn = self.live(w);
            let anc = la.get(wn.creator as usize).copied().unwrap_or(NO_ANC);
            if !self.anc_covers(anc, w, wn.creator, wn.index()) {
                continue;
            }
            let row = peers.slot(wn.creator).expect("witnesses are members") * peers.words;
            let count: u32 = matrix[row..row + peers.words]
                .iter()
                .zip(&mask)
                .map(|(bits, m)| (bits & m).count_ones())
                .sum();
            if count as usize >= peers.supermajority {
                out.push(ordinal as u32);
            }
        }
        out
    }

    // ----- insertion ------------------------------------------------------------------------

    /// Verifies an event's signature and inserts it. See [`Hashgraph::insert_verified`].
    pub fn insert_event(&mut self, event: Event) -> Result<InsertOutcome, InsertError> {
        let id = event.id();
        if self.by_id.contains_key(&id) || self.pending_ids.contains(&id) {
            return Ok(InsertOutcome {
                duplicates: 1,
                ..InsertOutcome::default()
            });
        }
        if !self.creator_of.contains_key(event.creator()) {
            return Err(InsertError::UnknownCreator {
                id,
                creator: *event.creator(),
            });
        }
        let verified = event.verify()?;
        self.insert_verified(verified)
    }

    /// Inserts an event whose signature was already checked. An event whose parents are
    /// missing is held (up to [`Config::max_pending_events`]) and the missing ids returned;
    /// it is inserted, with any held descendants, once they arrive.
    pub fn insert_verified(&mut self, event: VerifiedEvent) -> Result<InsertOutcome, InsertError> {
        let mut outcome = InsertOutcome::default();
        let mut work = vec![event];
        let mut first = true;
        while let Some(event) = work.pop() {
            match self.insert_one(event, &mut outcome) {
                Ok(Some(id)) => {
                    if let Some(children) = self.pending.remove(&id) {
                        for child in children {
                            self.pending_ids.remove(&child.event().id());
                            work.push(child);
                        }
                    }
                }
                Ok(None) => {}
                // Only the caller's own event reports an error; a released child that fails is
                // dropped (it was bad all along, and its sender is long gone from this call).
                Err(e) if first => return Err(e),
                Err(_) => {}
            }
            first = false;
        }
        Ok(outcome)
    }

    /// Inserts one event whose parents may be missing. Returns its id if it joined the DAG.
    fn insert_one(
        &mut self,
        verified: VerifiedEvent,
        outcome: &mut InsertOutcome,
    ) -> Result<Option<Hash>, InsertError> {
        let event = verified.event();
        let id = event.id();
        if self.by_id.contains_key(&id) || self.pending_ids.contains(&id) {
            outcome.duplicates += 1;
            return Ok(None);
        }
        let body = event.body();
        let Some(&creator) = self.creator_of.get(&body.creator) else {
            return Err(InsertError::UnknownCreator {
                id,
                creator: body.creator,
            });
        };
        let size = event.encoded_len();
        if size > self.config.max_event_bytes {
            return Err(InsertError::TooLarge {
                id,
                size,
                limit: self.config.max_event_bytes,
            });
        }

        let mut missing = Vec::new();
        let mut lookup = |parent: Option<Hash>| -> Option<Seq> {
            let parent = parent?;
            match self.by_id.get(&parent) {
                Some(&seq) => Some(seq),
                None => {
                    missing.push(parent);
                    None
                }
            }
        };
        let self_parent = lookup(body.self_parent);
        let other_parent = lookup(body.other_parent);
        if !missing.is_empty() {
            let cs = &self.creators[creator as usize];
            if let Some(parent) = body.self_parent {
                if body.index > 0 && body.index - 1 < cs.chain_base {
                    return Err(InsertError::TooOld { id, parent });
                }
            }
            if self.pending_ids.len() >= self.config.max_pending_events {
                return Err(InsertError::PendingFull {
                    id,
                    limit: self.config.max_pending_events,
                });
            }
            self.pending_ids.insert(id);
            self.pending.entry(missing[0]).or_default().push(verified);
            outcome.missing_parents.extend(missing);
            return Ok(None);
        }

        if let Some(sp) = self_parent {
            let spn = self.live(sp);
            if spn.creator != creator || spn.index() + 1 != body.index {
                return Err(InsertError::BadSelfParent {
                    id,
                    index: body.index,
                });
            }
        } else if body.index != 0 {
            return Err(InsertError::BadSelfParent {
                id,
                index: body.index,
            });
        }
        if let Some(op) = other_parent {
            if self.live(op).creator == creator {
                return Err(InsertError::OtherParentBySelf { id });
            }
        }
        if let (Some(sp), Some(op)) = (self_parent, other_parent) {
            let (self_round, other_round) = (self.live(sp).round, self.live(op).round);
            if other_round + self.config.max_parent_round_gap < self_round {
                return Err(InsertError::OtherParentTooOld {
                    id,
                    other_round,
                    self_round,
                    gap: self.config.max_parent_round_gap,
                });
            }
        }
        if body.index < self.creators[creator as usize].chain_base {
            return Err(InsertError::TooOld {
                id,
                parent: body.self_parent.unwrap_or(Hash::ZERO),
            });
        }

        // An event whose round would fall in evicted history cannot be placed: refuse it before
        // any state changes.
        let parents: Vec<Seq> = self_parent.into_iter().chain(other_parent).collect();
        let (parent_round, later_parent) = parents
            .iter()
            .map(|&p| (self.live(p).round, p))
            .max()
            .map_or((0, None), |(r, p)| (r, Some(p)));
        if parent_round < self.round_base {
            return Err(InsertError::TooOld {
                id,
                parent: later_parent.map_or(Hash::ZERO, |p| self.live(p).event.id()),
            });
        }

        let seq = self.arena_base + self.arena.len() as Seq;
        self.inserting = Some((seq, body.index, self_parent));
        self.add_to_chain(creator, seq, event, outcome);
        let la = self.ancestry(creator, body.index, seq, self_parent, &parents);

        let lamport = parents
            .iter()
            .map(|&p| self.live(p).lamport + 1)
            .max()
            .unwrap_or(0);
        let Placement {
            round,
            see_cur,
            see_prev,
            witness,
        } = self.place(seq, creator, self_parent, &parents, &la);

        self.arena.push_back(Some(Node {
            event: event.clone(),
            creator,
            self_parent,
            other_parent,
            lamport,
            round,
            la,
            see_cur,
            see_prev,
            witness,
            round_received: None,
            consensus_ts: None,
        }));
        self.inserting = None;
        self.by_id.insert(id, seq);
        self.undetermined.entry(round).or_default().push(seq);
        self.undetermined_len += 1;
        self.undetermined_payload += usize::from(event.body().has_payload());
        self.stats.events_inserted += 1;
        self.ready.events.push(event.clone());
        outcome.added.push(id);
        Ok(Some(id))
    }

    /// Records event `seq` at its index in its creator's chain, or as a fork when the index is
    /// held already (the creator becomes a forker and the evidence is reported).
    fn add_to_chain(&mut self, creator: u32, seq: Seq, event: &Event, outcome: &mut InsertOutcome) {
        let body = event.body();
        let cs = &self.creators[creator as usize];
        let pos = (body.index - cs.chain_base) as usize;
        if let Some(&existing) = cs.chain.get(pos) {
            let evidence = ForkEvidence {
                creator: body.creator,
                first: self.live(existing).event.clone(),
                second: event.clone(),
            };
            tracing::warn!(target: "hashgraph::fork", creator = ?body.creator, index = body.index, "validator forked");
            let cs = &mut self.creators[creator as usize];
            if !cs.forker {
                cs.forker = true;
                self.stats.forkers += 1;
            }
            cs.extra.entry(body.index).or_default().push(seq);
            self.any_fork = true;
            outcome.forks.push(evidence.clone());
            self.ready.forks.push(evidence);
        } else {
            debug_assert_eq!(pos, cs.chain.len(), "self-parent precedes");
            self.creators[creator as usize].chain.push_back(seq);
        }
    }

    /// The last-ancestor vector of event `seq` (by `creator`, at `index`) from its parents'.
    fn ancestry(
        &self,
        creator: u32,
        index: u64,
        seq: Seq,
        self_parent: Option<Seq>,
        parents: &[Seq],
    ) -> Box<[Anc]> {
        let width = self.creators.len();
        let mut la = vec![NO_ANC; width];
        for &p in parents {
            let pn = self.live(p);
            for (c, slot) in la.iter_mut().enumerate() {
                *slot = self.merge_anc(c as u32, *slot, pn.anc(c as u32));
            }
        }
        let own = Anc { index, seq };
        // For a forker, its own entry is FORKED when the ancestry holds another of its branches.
        la[creator as usize] = if self.creators[creator as usize].forker {
            let conflict = parents.iter().any(|&p| {
                let a = self.live(p).anc(creator);
                !a.is_none()
                    && (a.is_forked()
                        || (Some(a.seq) != self_parent
                            && !self_parent.is_some_and(|sp| self.self_ancestor_seq(sp, a.seq))))
            });
            if conflict {
                Anc {
                    index: index.max(la[creator as usize].index),
                    seq: FORKED,
                }
            } else {
                own
            }
        } else {
            own
        };
        la.into_boxed_slice()
    }

    /// The round, strong-seeing matrices and witness state of event `seq` by `creator`, from
    /// its parents' placement, its ancestry `la` and the validator sets; a witness joins its
    /// round's list. Insertion calls it once per event; a validator-set change calls it again
    /// for the events it affects (`membership::rewind`), in insertion order. Parents evicted
    /// since insertion are far below the rounds concerned and count for nothing.
    fn place(
        &mut self,
        seq: Seq,
        creator: u32,
        self_parent: Option<Seq>,
        parents: &[Seq],
        la: &[Anc],
    ) -> Placement {
        let parents: Vec<Seq> = parents
            .iter()
            .copied()
            .filter(|&p| self.node(p).is_some())
            .collect();
        let parent_round = parents
            .iter()
            .map(|&p| self.live(p).round)
            .max()
            .unwrap_or(0);
        self.ensure_round(parent_round);

        // Round: advance if this event strongly sees a supermajority of the round's witnesses.
        let see_r = self.see_matrix(parent_round, &parents, creator, la);
        let seen_r = self.strongly_seen(parent_round, la, &see_r);
        let advance = seen_r.len() >= self.peers_for(parent_round).supermajority;
        let round = parent_round + u64::from(advance);
        self.ensure_round(round);
        let round_peers = Arc::clone(&self.round_state(round).expect("ensured").peers);
        let self_parent_round = self_parent.and_then(|sp| self.node(sp)).map(|n| n.round);
        let is_witness =
            round_peers.slot(creator).is_some() && self_parent_round.is_none_or(|r| r < round);

        let (mut see_cur, see_prev) = if advance {
            (
                vec![0u64; round_peers.matrix_len()].into_boxed_slice(),
                see_r,
            )
        } else if parent_round > 0 {
            let prev = self.see_matrix(parent_round - 1, &parents, creator, la);
            (see_r, prev)
        } else {
            (see_r, Box::default())
        };
        if is_witness {
            // A witness sees itself through itself.
            let me = round_peers.slot(creator).expect("witness is a member");
            see_cur[me * round_peers.words + me / 64] |= 1 << (me % 64);
        }

        let witness = if is_witness {
            let strongly_seen = if advance {
                seen_r
            } else if round > 0 {
                self.strongly_seen(round - 1, la, &see_prev)
            } else {
                Vec::new()
            };
            let rs = &mut self.rounds[(round - self.round_base) as usize];
            rs.witnesses.push(seq);
            Some(Box::new(WitnessState {
                strongly_seen,
                // A witness that shows up after its round was decided cannot be famous.
                famous: rs.decided.then_some(false),
                votes: Vec::new(),
            }))
        } else {
            None
        };
        Placement {
            round,
            see_cur,
            see_prev,
            witness,
        }
    }

    // ----- creating our own events ----------------------------------------------------------

    /// The latest event of `creator` (the chain tip), if any.
    pub fn head(&self, creator: &PublicKey) -> Option<Hash> {
        let c = *self.creator_of.get(creator)?;
        let seq = *self.creators[c as usize].chain.back()?;
        Some(self.live(seq).event.id())
    }

    /// Whether `creator`'s next event may name `other_parent`: it is in the DAG and not more
    /// than [`Config::max_parent_round_gap`] rounds behind the creator's latest event. A host
    /// picks another peer's head, or none, when this is false.
    pub fn fits_as_other_parent(&self, creator: &PublicKey, other_parent: &Hash) -> bool {
        let Some(other) = self.by_id.get(other_parent).and_then(|&s| self.node(s)) else {
            return false;
        };
        let own_round = self
            .creator_of
            .get(creator)
            .and_then(|&c| self.creators[c as usize].chain.back())
            .map_or(0, |&s| self.live(s).round);
        other.round + self.config.max_parent_round_gap >= own_round
    }

    /// Creates, signs and inserts the next event of `key`'s owner, on top of its latest event,
    /// with `other_parent` (which must be in the DAG). The timestamp is raised to one past the
    /// self-parent's if the clock went backwards, keeping each creator's timestamps increasing.
    pub fn create_event(
        &mut self,
        key: &SecretKey,
        other_parent: Option<Hash>,
        timestamp: i64,
        transactions: Vec<Vec<u8>>,
        internal_transactions: Vec<InternalTransaction>,
        block_signatures: Vec<BlockSignature>,
    ) -> Result<Event, HashgraphError> {
        let creator = key.public_key();
        if let Some(op) = other_parent {
            if !self.by_id.contains_key(&op) {
                return Err(HashgraphError::UnknownOtherParent(op));
            }
        }
        let (index, self_parent, timestamp) = match self.head(&creator) {
            Some(head) => {
                let hn = self.live(self.by_id[&head]);
                (
                    hn.index() + 1,
                    Some(head),
                    timestamp.max(hn.event.body().timestamp.saturating_add(1)),
                )
            }
            None => (0, None, timestamp),
        };
        let event = EventBody {
            creator,
            index,
            self_parent,
            other_parent,
            timestamp,
            transactions,
            internal_transactions,
            block_signatures,
        }
        .sign(key);
        self.insert_verified(VerifiedEvent::assume_verified(event.clone()))?;
        Ok(event)
    }

    // ----- consensus ------------------------------------------------------------------------

    /// Decides fame for whatever the new events allow, then receives every decided round in
    /// order: events get their round received and consensus timestamp, blocks are made.
    /// Cheap when there is nothing new; call it after a batch of insertions.
    pub fn run_consensus(&mut self) {
        if self.awaiting.is_some() {
            return;
        }
        self.decide_fame();
        while self.received_next < self.fame_next && self.awaiting.is_none() {
            let r = self.received_next;
            self.receive_round(r);
            self.received_next += 1;
        }
    }

    fn decide_fame(&mut self) {
        let Some(last) = self.last_round() else {
            return;
        };
        let mut r = self.fame_next.max(self.round_base);
        while r <= last {
            let witnesses = self.round_state(r).expect("in range").witnesses.clone();
            for &x in &witnesses {
                self.vote_on(x, r, last);
            }
            r += 1;
        }
        // Settle the decided prefix.
        while self.fame_next <= last {
            let r = self.fame_next;
            let rs = self.round_state(r).expect("in range");
            let all = !rs.witnesses.is_empty()
                && rs.witnesses.iter().all(|&w| {
                    self.live(w)
                        .witness
                        .as_ref()
                        .is_some_and(|ws| ws.famous.is_some())
                });
            if !all {
                break;
            }
            self.rounds[(r - self.round_base) as usize].decided = true;
            self.fame_next += 1;
        }
    }

    fn vote_on(&mut self, x: Seq, r: u64, last: u64) {
        let ws = self.live(x).witness.as_ref().expect("witness");
        if ws.famous.is_some() {
            return;
        }
        let mut votes =
            std::mem::take(&mut self.node_mut(x).witness.as_mut().expect("witness").votes);
        let mut decision = None;
        let mut coin_votes = 0;
        'rounds: for voting_round in r + 1..=last {
            let distance = voting_round - r;
            let d = (distance - 1) as usize;
            if votes.len() <= d {
                votes.push(Vec::new());
            }
            let rs = self.round_state(voting_round).expect("in range");
            let supermajority = self.peers_for(voting_round - 1).supermajority;
            for ordinal in votes[d].len()..rs.witnesses.len() {
                let y = rs.witnesses[ordinal];
                let vote = if distance == 1 {
                    self.sees_seq(y, x)
                } else {
                    let yn = self.live(y);
                    let prev = &votes[d - 1];
                    let ss = &yn.witness.as_ref().expect("witness").strongly_seen;
                    let yes = ss.iter().filter(|&&o| prev[o as usize]).count();
                    let no = ss.len() - yes;
                    let majority = yes >= no;
                    let strength = yes.max(no);
                    if distance % self.config.coin_round_frequency != 0 {
                        if strength >= supermajority {
                            decision = Some(majority);
                            break 'rounds;
                        }
                        majority
                    } else if strength >= supermajority {
                        majority
                    } else {
                        coin_votes += 1;
                        coin_bit(&yn.event.id())
                    }
                };
                votes[d].push(vote);
            }
        }
        self.stats.coin_votes += coin_votes;
        let ws = self.node_mut(x).witness.as_mut().expect("witness");
        ws.votes = votes;
        if let Some(famous) = decision {
            ws.famous = Some(famous);
            ws.votes = Vec::new();
        }
    }

    fn receive_round(&mut self, r: u64) {
        self.drop_stale(r);
        let rs = self.round_state(r).expect("decided rounds are held");
        let famous: Vec<Seq> = rs
            .witnesses
            .iter()
            .copied()
            .filter(|&w| self.live(w).witness.as_ref().and_then(|ws| ws.famous) == Some(true))
            .collect();
        // Unique famous witnesses: drop every famous witness whose creator has another one.
        let unique: Vec<Seq> = famous
            .iter()
            .copied()
            .filter(|&w| {
                let c = self.live(w).creator;
                famous
                    .iter()
                    .filter(|&&o| self.live(o).creator == c)
                    .count()
                    == 1
            })
            .collect();
        if unique.is_empty() {
            return;
        }

        let mut received = Vec::new();
        let candidate_rounds: Vec<u64> = self.undetermined.range(..=r).map(|(k, _)| *k).collect();
        for round in candidate_rounds {
            let waiting = self.undetermined.remove(&round).unwrap_or_default();
            let mut keep = Vec::new();
            for x in waiting {
                if unique.iter().all(|&w| self.ancestor_seq(w, x)) {
                    received.push(x);
                } else {
                    keep.push(x);
                }
            }
            if !keep.is_empty() {
                self.undetermined.insert(round, keep);
            }
        }
        self.undetermined_len -= received.len();
        self.undetermined_payload -= received
            .iter()
            .filter(|&&x| self.live(x).event.body().has_payload())
            .count();
        if received.is_empty() {
            return;
        }

        let mut whitener = [0u8; 32];
        let mut witness_times = Vec::with_capacity(unique.len());
        for &w in &unique {
            let wn = self.live(w);
            for (acc, b) in whitener.iter_mut().zip(wn.event.id().0) {
                *acc ^= b;
            }
            witness_times.push(wn.event.body().timestamp);
        }
        let mut keyed: Vec<(i64, [u8; 32], Seq)> = received
            .iter()
            .map(|&x| {
                let ts = self.consensus_timestamp(x, &unique);
                let mut key = self.live(x).event.id().0;
                for (k, w) in key.iter_mut().zip(whitener) {
                    *k ^= w;
                }
                (ts, key, x)
            })
            .collect();
        keyed.sort_unstable();

        let mut transactions = Vec::new();
        let mut internal = Vec::new();
        let mut frame_events = Vec::with_capacity(keyed.len());
        for &(ts, _, x) in &keyed {
            let node = self.node_mut(x);
            node.round_received = Some(r);
            node.consensus_ts = Some(ts);
            let node = self.live(x);
            let body = node.event.body();
            transactions.extend(body.transactions.iter().cloned());
            internal.extend(body.internal_transactions.iter().cloned());
            frame_events.push(FrameEvent {
                id: node.event.id(),
                round: node.round,
                lamport: node.lamport,
                witness: node.witness.is_some(),
            });
            self.ready.ordered.push(OrderedEvent {
                id: node.event.id(),
                round_received: r,
                consensus_timestamp: ts,
            });
        }
        self.stats.consensus_events += keyed.len() as u64;

        if !transactions.is_empty() || !internal.is_empty() {
            let peers = Arc::clone(self.peers_for(r));
            let roots = peers
                .creators
                .iter()
                .map(|&c| {
                    let cs = &self.creators[c as usize];
                    cs.last_consensus.clone().unwrap_or(Root {
                        creator: cs.key,
                        last_event: None,
                        index: 0,
                        round: 0,
                        lamport: 0,
                    })
                })
                .collect();
            let frame = Frame {
                round: r,
                peers: peers.set.clone(),
                roots,
                events: frame_events,
            };
            witness_times.sort_unstable();
            let body = BlockBody {
                index: self.next_block_index,
                round_received: r,
                timestamp: witness_times[witness_times.len() / 2],
                prev_hash: self.prev_block_hash,
                frame_hash: frame.hash(),
                peers_hash: peers.hash,
                transactions,
                internal_transactions: internal,
            };
            if !body.internal_transactions.is_empty() {
                self.awaiting = Some(membership::AwaitingReceipts {
                    block_index: body.index,
                    round_received: r,
                    changes: body.internal_transactions.clone(),
                });
            }
            self.prev_block_hash = body.hash();
            self.next_block_index += 1;
            self.stats.last_block_index = Some(body.index);
            self.ready.blocks.push(Block::new(body));
            self.ready.frames.push(frame);
            self.ready.block_hashes.push(self.prev_block_hash);
        }
        for &(_, _, x) in &keyed {
            let node = self.live(x);
            let root = Root {
                creator: *node.event.creator(),
                last_event: Some(node.event.id()),
                index: node.index(),
                round: node.round,
                lamport: node.lamport,
            };
            let c = node.creator as usize;
            let newer = self.creators[c]
                .last_consensus
                .as_ref()
                .is_none_or(|old| old.index < root.index);
            if newer {
                self.creators[c].last_consensus = Some(root);
            }
        }
    }

    /// Before receiving round `r`: every waiting event whose round is more than
    /// [`Config::stale_rounds`] below `r` goes stale. All nodes agree: an event that one node
    /// holds and another does not yet is no ancestor of any famous witness the second node has
    /// received (it would hold it), so the first node cannot order it before the second has it;
    /// and once it is stale at one node, it is stale at the next round received anywhere.
    fn drop_stale(&mut self, r: u64) {
        let Some(horizon) = r.checked_sub(self.config.stale_rounds) else {
            return;
        };
        let old_rounds: Vec<u64> = self
            .undetermined
            .range(..horizon)
            .map(|(round, _)| *round)
            .collect();
        for round in old_rounds {
            for x in self.undetermined.remove(&round).unwrap_or_default() {
                let event = self.live(x).event.clone();
                self.undetermined_len -= 1;
                self.undetermined_payload -= usize::from(event.body().has_payload());
                self.stats.stale_events += 1;
                self.ready.stale.push(event);
            }
        }
    }

    /// Median over the unique famous witnesses of the timestamp of the earliest self-ancestor
    /// of each that descends from `x`.
    fn consensus_timestamp(&self, x: Seq, famous: &[Seq]) -> i64 {
        let mut times: Vec<i64> = famous
            .iter()
            .map(|&w| {
                let mut cursor = w;
                while let Some(sp) = self.live(cursor).self_parent {
                    if self.node(sp).is_some() && self.ancestor_seq(sp, x) {
                        cursor = sp;
                    } else {
                        break;
                    }
                }
                self.live(cursor).event.body().timestamp
            })
            .collect();
        times.sort_unstable();
        times[times.len() / 2]
    }

    /// Takes what the host must do since the last call.
    pub fn take_ready(&mut self) -> Ready {
        std::mem::take(&mut self.ready)
    }

    // ----- memory ---------------------------------------------------------------------------

    /// Drops from memory the events and round tables older than `round`, as far as consensus
    /// no longer needs them: at least [`Config::min_retained_rounds`] rounds behind the last
    /// received round are kept, every creator keeps its latest event, and nothing at or above
    /// the round of an event still waiting to be ordered is dropped (waiting events go stale
    /// after [`Config::stale_rounds`], so this holds eviction back only so far). Events that
    /// later name a dropped parent are refused with [`InsertError::TooOld`].
    pub fn evict_before(&mut self, round: u64) {
        let oldest_waiting = self.undetermined.keys().next().copied().unwrap_or(u64::MAX);
        let floor = self
            .received_next
            .saturating_sub(self.config.min_retained_rounds());
        let cutoff = round.min(floor).min(oldest_waiting);
        if cutoff <= self.round_base {
            return;
        }
        let tips: HashSet<Seq> = self
            .creators
            .iter()
            .filter_map(|c| c.chain.back().copied())
            .collect();
        let mut evicted: Vec<(u32, u64)> = Vec::new();
        for i in 0..self.arena.len() {
            let seq = self.arena_base + i as Seq;
            let drop = match &self.arena[i] {
                Some(n) => n.round < cutoff && !tips.contains(&seq),
                None => false,
            };
            if drop {
                let n = self.arena[i].take().expect("checked");
                self.by_id.remove(&n.event.id());
                evicted.push((n.creator, n.index()));
            }
        }
        for (creator, index) in evicted {
            let cs = &mut self.creators[creator as usize];
            cs.extra.remove(&index);
            if index >= cs.chain_base {
                // Chains are evicted from their start: everything below this index is gone too.
                while cs.chain_base <= index && !cs.chain.is_empty() {
                    cs.chain.pop_front();
                    cs.chain_base += 1;
                }
            }
        }
        while matches!(self.arena.front(), Some(None)) {
            self.arena.pop_front();
            self.arena_base += 1;
        }
        while self.round_base < cutoff && !self.rounds.is_empty() {
            self.rounds.pop_front();
            self.round_base += 1;
        }
    }

    // ----- queries --------------------------------------------------------------------------

    /// Consensus facts about an event in memory.
    pub fn event_info(&self, id: &Hash) -> Option<EventInfo> {
        let node = self.node(*self.by_id.get(id)?)?;
        Some(EventInfo {
            event: node.event.clone(),
            round: node.round,
            witness: node.witness.is_some(),
            famous: node.witness.as_ref().and_then(|w| w.famous),
            round_received: node.round_received,
            consensus_timestamp: node.consensus_ts,
            lamport: node.lamport,
        })
    }

    /// The event with this id, if in memory.
    pub fn event(&self, id: &Hash) -> Option<&Event> {
        self.node(*self.by_id.get(id)?).map(|n| &n.event)
    }

    /// Whether `y` is an ancestor of `x` (an event is its own ancestor). False if either is
    /// unknown.
    pub fn ancestor(&self, x: &Hash, y: &Hash) -> bool {
        match (self.by_id.get(x), self.by_id.get(y)) {
            (Some(&x), Some(&y)) => self.ancestor_seq(x, y),
            _ => false,
        }
    }

    /// Whether `y` is `x` or a self-ancestor of `x`.
    pub fn self_ancestor(&self, x: &Hash, y: &Hash) -> bool {
        match (self.by_id.get(x), self.by_id.get(y)) {
            (Some(&xs), Some(&ys)) => {
                self.live(xs).creator == self.live(ys).creator && self.self_ancestor_seq(xs, ys)
            }
            _ => false,
        }
    }

    /// Whether `x` sees `y`: `y` is an ancestor and `x`'s ancestry holds no fork of its creator.
    pub fn see(&self, x: &Hash, y: &Hash) -> bool {
        match (self.by_id.get(x), self.by_id.get(y)) {
            (Some(&x), Some(&y)) => self.sees_seq(x, y),
            _ => false,
        }
    }

    /// Whether `x` strongly sees `y`: it sees `y` through events of a supermajority of the
    /// validators of `y`'s round, each of which sees `y`.
    pub fn strongly_see(&self, x: &Hash, y: &Hash) -> bool {
        let (Some(&xs), Some(&ys)) = (self.by_id.get(x), self.by_id.get(y)) else {
            return false;
        };
        if !self.sees_seq(xs, ys) {
            return false;
        }
        let xn = self.live(xs);
        let yn = self.live(ys);
        let peers = self.peers_for(yn.round);
        let through = peers
            .creators
            .iter()
            .filter(|&&d| {
                let a = xn.anc(d);
                if a.is_none() || a.is_forked() {
                    return false;
                }
                // The latest event of d that x sees; if it sees y, d counts.
                self.node(a.seq).is_some_and(|dn| {
                    self.anc_covers(dn.anc(yn.creator), ys, yn.creator, yn.index())
                })
            })
            .count();
        through >= peers.supermajority
    }

    /// Ids of the witnesses of `round` known so far, in arrival order.
    pub fn witnesses(&self, round: u64) -> Vec<Hash> {
        self.round_state(round)
            .map(|rs| {
                rs.witnesses
                    .iter()
                    .map(|&w| self.live(w).event.id())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `creator` has been caught forking.
    pub fn is_forker(&self, creator: &PublicKey) -> bool {
        self.creator_of
            .get(creator)
            .is_some_and(|&c| self.creators[c as usize].forker)
    }

    /// The last round received (decided and ordered), if any.
    pub fn last_consensus_round(&self) -> Option<u64> {
        self.received_next.checked_sub(1)
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        Stats {
            events_in_memory: self.by_id.len(),
            undetermined_events: self.undetermined_len,
            undetermined_with_payload: self.undetermined_payload,
            pending_events: self.pending_ids.len(),
            last_round: self.last_round(),
            last_consensus_round: self.last_consensus_round(),
            ..self.stats.clone()
        }
    }

    /// For sync: how many events of each creator this node holds on its main chain
    /// (highest index + 1), creators it holds nothing of included with 0.
    pub fn known(&self) -> Vec<(PublicKey, u64)> {
        self.creators
            .iter()
            .map(|c| (c.key, c.chain_base + c.chain.len() as u64))
            .collect()
    }

    /// For sync: per creator, the lowest index still in memory (everything below was
    /// evicted; a host serves it from its store).
    pub fn held_from(&self) -> Vec<(PublicKey, u64)> {
        self.creators
            .iter()
            .map(|c| (c.key, c.chain_base))
            .collect()
    }

    /// For sync: the events in memory that a peer whose [`Hashgraph::known`] is `theirs`
    /// lacks, in topological order, at most `limit`. Fork branches are included, so that the
    /// peer detects the fork too.
    pub fn events_unknown_to(&self, theirs: &[(PublicKey, u64)], limit: usize) -> Vec<Event> {
        let known: HashMap<&PublicKey, u64> = theirs.iter().map(|(k, n)| (k, *n)).collect();
        let mut seqs = Vec::new();
        for cs in &self.creators {
            let from = known.get(&cs.key).copied().unwrap_or(0).max(cs.chain_base);
            let start = (from - cs.chain_base) as usize;
            seqs.extend(cs.chain.iter().skip(start).copied());
            for (index, extra) in &cs.extra {
                if *index >= from {
                    seqs.extend(extra.iter().copied());
                }
            }
        }
        seqs.sort_unstable();
        seqs.truncate(limit);
        seqs.into_iter()
            .filter_map(|s| self.node(s).map(|n| n.event.clone()))
            .collect()
    }
}

/// A coin round's coin: the middle bit of the voter's id (see the module comment on why the id).
fn coin_bit(id: &Hash) -> bool {
    id.0[16] & 1 == 1
}
