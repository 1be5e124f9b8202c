//! Resuming the hashgraph at an anchored block, without the history before it (fast-sync).
//!
//! A block signed by more than a third of a validator set the node trusts is genuine: at least
//! one honest validator computed it. Its body fixes the frame (by hash), and the frame fixes the
//! validator set of its round, each creator's last event ordered by then (the *roots*) and the
//! events received in that round. What a node needs beyond that to go on exactly as the others
//! do is the recent DAG: the *window*, every event the serving node holds from round
//! `start` on, in insertion order, plus each creator's latest event (the parent of its next one).
//!
//! The window is chosen so that nothing below it can matter any more, for the same reasons
//! eviction is invisible to consensus ([`Hashgraph::evict_before`]): an event still waiting to
//! be ordered after round `r` is at most [`Config::stale_rounds`] below `r + 1`, and whether one
//! event strongly sees a witness depends only on the witness's descendants. So the resuming node
//! *recomputes* ancestry, rounds, witnesses, fame and order from the window's events; it takes
//! from the serving node only what cannot be recomputed without the history below the window:
//! the round and Lamport time of the events whose parents lie below it, and which events were
//! ordered by the anchored round. Everything the block certifies is checked (frame, validator
//! set, the frame's events and roots against the recomputed ones), every event's signature is
//! checked, and every recomputed placement must equal the serving node's claim; an answer that
//! fails any check is refused as a whole.

use serde::{Deserialize, Serialize};

use super::{Config, Hashgraph, InsertOutcome, Node, Seq, WitnessState, PEER_CHANGE_DELAY_ROUNDS};
use crate::block::{BlockBody, Frame};
use crate::crypto::Hash;
use crate::error::HashgraphError;
use crate::event::Event;
use crate::peers::PeerSet;

/// How the serving node placed one event of a [`Window`], as of the anchored round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowEvent {
    /// The event id; its body travels separately and is checked against it.
    pub id: Hash,
    /// Its round.
    pub round: u64,
    /// Its Lamport timestamp.
    pub lamport: u64,
    /// Whether it is a witness.
    pub witness: bool,
    /// Its round received, if it was ordered by the anchored round.
    pub round_received: Option<u64>,
    /// Its consensus timestamp, if it was ordered by the anchored round.
    pub consensus_timestamp: Option<i64>,
}

/// What a node resuming at an anchored block needs besides the block and its frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// The anchored block's round received.
    pub round: u64,
    /// Every event of this round or later is included.
    pub start: u64,
    /// The validator sets known at the anchored round, with their first rounds, from round 0.
    pub peer_sets: Vec<(u64, PeerSet)>,
    /// The events, in an order where parents come first.
    pub events: Vec<WindowEvent>,
}

impl Window {
    /// Ids of the events whose bodies the resuming node must fetch.
    pub fn event_ids(&self) -> impl Iterator<Item = Hash> + '_ {
        self.events.iter().map(|e| e.id)
    }
}

impl Hashgraph {
    /// The window for resuming just after round `round` was received (see the module docs), or
    /// `None` if that round is not received yet or its window has left memory.
    pub fn window(&self, round: u64) -> Option<Window> {
        if round >= self.received_next {
            return None;
        }
        let needed = (round + 1).saturating_sub(self.config.stale_rounds);
        if self.round_base > needed.min(round.saturating_sub(1)) {
            return None;
        }
        let start = (round + 1)
            .saturating_sub(self.config.min_retained_rounds())
            .max(self.round_base);
        let tips: std::collections::HashSet<Seq> = self
            .creators
            .iter()
            .filter_map(|c| c.chain.back().copied())
            .collect();
        let as_of = |rr: Option<u64>| rr.filter(|&rr| rr <= round);
        let events = self
            .arena
            .iter()
            .enumerate()
            .filter_map(|(i, n)| Some((self.arena_base + i as Seq, n.as_ref()?)))
            .filter(|(seq, n)| n.round >= start || tips.contains(seq))
            .map(|(_, n)| WindowEvent {
                id: n.event.id(),
                round: n.round,
                lamport: n.lamport,
                witness: n.witness.is_some(),
                round_received: as_of(n.round_received),
                consensus_timestamp: as_of(n.round_received).and(n.consensus_ts),
            })
            .collect();
        let peer_sets = self
            .peer_set_history()
            .into_iter()
            .filter(|(first, _)| *first <= round + PEER_CHANGE_DELAY_ROUNDS)
            .collect();
        Some(Window {
            round,
            start,
            peer_sets,
            events,
        })
    }

    /// A hashgraph that continues from the anchored block `block` as the nodes that ordered it
    /// do, built from its frame, the serving node's `window` and the window's event bodies
    /// (`event` by id). The caller has checked the block's signatures; everything else is
    /// checked here (see the module docs). Fails, with the reason, on any inconsistency.
    /// The window's events are in [`Ready::events`](super::Ready) for the host to store.
    pub fn from_anchor(
        config: Config,
        block: &BlockBody,
        frame: &Frame,
        window: Window,
        mut event: impl FnMut(&Hash) -> Option<Event>,
    ) -> Result<Hashgraph, HashgraphError> {
        let bad = |detail: String| HashgraphError::BadAnchor(detail);
        let r = block.round_received;
        if frame.hash() != block.frame_hash {
            return Err(bad("the frame does not match the block's frame hash".into()));
        }
        if frame.round != r || window.round != r {
            return Err(bad(format!(
                "the block is of round {r}, the frame of {}, the window of {}",
                frame.round, window.round
            )));
        }
        if frame.peers.hash() != block.peers_hash {
            return Err(bad(
                "the frame's validator set does not match the block's peer-set hash".into(),
            ));
        }
        if window.start
            > (r + 1)
                .saturating_sub(config.stale_rounds)
                .min(r.saturating_sub(1))
        {
            return Err(bad(format!(
                "the window starts at round {}, too late for round {r}",
                window.start
            )));
        }
        let mut sets = window.peer_sets.into_iter();
        let Some((0, genesis)) = sets.next() else {
            return Err(bad("no validator set from round 0".into()));
        };
        let mut hg = Hashgraph::new(config, genesis);
        let mut last_first = 0;
        for (first, set) in sets {
            if first <= last_first || first > r + PEER_CHANGE_DELAY_ROUNDS {
                return Err(bad(format!(
                    "a validator set from round {first} is out of place"
                )));
            }
            last_first = first;
            hg.add_peer_set(first, set);
        }
        if hg.peers_for(r).hash != block.peers_hash {
            return Err(bad(format!(
                "the validator sets given do not put the block's set at round {r}"
            )));
        }

        hg.round_base = window.start;
        hg.fame_next = r + 1;
        hg.received_next = r + 1;
        hg.next_block_index = block.index + 1;
        hg.prev_block_hash = block.hash();
        hg.stats.last_block_index = Some(block.index);
        if r >= window.start {
            hg.ensure_round(r);
            for rs in hg.rounds.iter_mut() {
                rs.decided = true;
            }
        }
        // Ordered by round r: a creator's events up to its root's index (an event's
        // self-ancestors are ordered no later than it).
        let mut ordered_up_to: Vec<Option<u64>> = vec![None; hg.creators.len()];
        for root in &frame.roots {
            let Some(&c) = hg.creator_of.get(&root.creator) else {
                return Err(bad("a root's creator is in no validator set".into()));
            };
            if root.last_event.is_some() {
                ordered_up_to[c as usize] = Some(root.index);
                hg.creators[c as usize].last_consensus = Some(root.clone());
            }
        }
        // The roots are the last events ordered before round r; those of round r come next.
        for fe in &frame.events {
            let body = event(&fe.id).ok_or_else(|| bad(format!("event {:?} is missing", fe.id)))?;
            let Some(&c) = hg.creator_of.get(body.creator()) else {
                return Err(bad("a frame event's creator is in no validator set".into()));
            };
            let index = body.index();
            if ordered_up_to[c as usize].is_none_or(|i| i < index) {
                ordered_up_to[c as usize] = Some(index);
                hg.creators[c as usize].last_consensus = Some(crate::block::Root {
                    creator: *body.creator(),
                    last_event: Some(fe.id),
                    index,
                    round: fe.round,
                    lamport: fe.lamport,
                });
            }
        }
        let frame_events: std::collections::HashMap<Hash, &crate::block::FrameEvent> =
            frame.events.iter().map(|e| (e.id, e)).collect();
        let mut frame_events_seen = 0;

        let mut outcome = InsertOutcome::default();
        for claim in window.events {
            let id = claim.id;
            let body = event(&id).ok_or_else(|| bad(format!("event {id:?} is missing")))?;
            if body.id() != id {
                return Err(bad(format!("event {id:?} does not match its id")));
            }
            if hg.by_id.contains_key(&id) {
                return Err(bad(format!("event {id:?} is listed twice")));
            }
            let body = body
                .verify()
                .map_err(|e| bad(format!("event {id:?}: {e}")))?
                .event()
                .clone();
            let Some(&creator) = hg.creator_of.get(body.creator()) else {
                return Err(bad(format!(
                    "event {id:?} is by a creator in no validator set"
                )));
            };
            let index = body.index();
            let present = |parent: Option<Hash>| parent.and_then(|p| hg.by_id.get(&p).copied());
            let self_parent = present(body.body().self_parent);
            let other_parent = present(body.body().other_parent);
            let missing_parent = (body.body().self_parent.is_some() && self_parent.is_none())
                || (body.body().other_parent.is_some() && other_parent.is_none());
            let cs = &hg.creators[creator as usize];
            match self_parent {
                Some(sp) if hg.live(sp).index() + 1 != index || hg.live(sp).creator != creator => {
                    return Err(bad(format!("event {id:?} has a bad self-parent")));
                }
                Some(_) => {}
                None if cs.chain.is_empty() && cs.extra.is_empty() => {
                    if body.body().self_parent.is_none() && index != 0 {
                        return Err(bad(format!("event {id:?} has a bad self-parent")));
                    }
                    hg.creators[creator as usize].chain_base = index;
                }
                None => {
                    return Err(bad(format!(
                        "event {id:?} comes after its creator's earlier events without them"
                    )));
                }
            }
            let below = claim.round < window.start;
            if below && (self_parent.is_some() || other_parent.is_some()) {
                return Err(bad(format!(
                    "event {id:?} is below the window but has parents in it"
                )));
            }
            let parents: Vec<Seq> = self_parent.into_iter().chain(other_parent).collect();
            let seq = hg.arena_base + hg.arena.len() as Seq;
            hg.inserting = Some((seq, index, self_parent));
            hg.add_to_chain(creator, seq, &body, &mut outcome);
            let la = hg.ancestry(creator, index, seq, self_parent, &parents);
            let lamport = if missing_parent {
                claim.lamport
            } else {
                parents
                    .iter()
                    .map(|&p| hg.live(p).lamport + 1)
                    .max()
                    .unwrap_or(0)
            };
            let (round, see_cur, see_prev, witness) = if below {
                let witness = claim.witness.then(|| {
                    Box::new(WitnessState {
                        strongly_seen: Vec::new(),
                        famous: Some(false),
                        votes: Vec::new(),
                    })
                });
                (claim.round, Box::default(), Box::default(), witness)
            } else if missing_parent {
                let parent_round = parents.iter().map(|&p| hg.live(p).round).max().unwrap_or(0);
                let member = hg.peers_for(claim.round).slot(creator).is_some();
                let witness_ok = match self_parent {
                    Some(sp) => claim.witness == (member && hg.live(sp).round < claim.round),
                    None => !claim.witness || member,
                };
                if claim.round < parent_round || !witness_ok {
                    return Err(bad(format!("event {id:?} is placed impossibly")));
                }
                let p = hg.place_at(seq, creator, &parents, &la, claim.round, claim.witness);
                (claim.round, p.see_cur, p.see_prev, p.witness)
            } else {
                let p = hg.place(seq, creator, self_parent, &parents, &la);
                (p.round, p.see_cur, p.see_prev, p.witness)
            };
            if round != claim.round
                || lamport != claim.lamport
                || witness.is_some() != claim.witness
            {
                return Err(bad(format!(
                    "event {id:?} is placed at round {round}, not {} as claimed",
                    claim.round
                )));
            }
            let forked = hg.creators[creator as usize].forker;
            let ordered_by_index = ordered_up_to[creator as usize].is_some_and(|i| index <= i);
            match claim.round_received {
                Some(rr) if rr > r => {
                    return Err(bad(format!(
                        "event {id:?} is claimed ordered after round {r}"
                    )));
                }
                _ if !forked && claim.round_received.is_some() != ordered_by_index => {
                    return Err(bad(format!("event {id:?} contradicts the frame's roots")));
                }
                _ => {}
            }
            if let Some(fe) = frame_events.get(&id) {
                if claim.round_received != Some(r)
                    || fe.round != round
                    || fe.lamport != lamport
                    || fe.witness != claim.witness
                {
                    return Err(bad(format!("event {id:?} contradicts the frame")));
                }
                frame_events_seen += 1;
            } else if claim.round_received == Some(r) {
                return Err(bad(format!(
                    "event {id:?} is ordered in round {r} but not in its frame"
                )));
            }
            if let Some(root) = frame.roots.iter().find(|root| root.last_event == Some(id)) {
                if root.index != index || root.round != round || root.lamport != lamport {
                    return Err(bad(format!("event {id:?} contradicts its root")));
                }
            }
            hg.arena.push_back(Some(Node {
                event: body.clone(),
                creator,
                self_parent,
                other_parent,
                lamport,
                round,
                la,
                see_cur,
                see_prev,
                witness,
                round_received: claim.round_received,
                consensus_ts: claim.round_received.and(claim.consensus_timestamp),
            }));
            hg.inserting = None;
            hg.by_id.insert(id, seq);
            if claim.round_received.is_none() {
                hg.undetermined.entry(round).or_default().push(seq);
                hg.undetermined_len += 1;
                hg.undetermined_payload += usize::from(body.body().has_payload());
            } else {
                hg.stats.consensus_events += 1;
            }
            hg.stats.events_inserted += 1;
            hg.ready.events.push(body);
        }
        if frame_events_seen != frame.events.len() {
            return Err(bad(format!(
                "{} of the frame's {} events are not in the window",
                frame.events.len() - frame_events_seen,
                frame.events.len()
            )));
        }
        for c in &hg.creators {
            let below = c
                .chain
                .iter()
                .any(|&s| hg.node(s).is_some_and(|n| n.round < window.start));
            if below && c.chain.len() > 1 {
                return Err(bad(
                    "an event below the window is not its creator's latest".into()
                ));
            }
        }
        hg.ready.forks.clear();
        Ok(hg)
    }

    /// [`Hashgraph::place`] for an event some of whose parents are below the window: its round
    /// and witness flag are given, the matrices come from the parents held.
    fn place_at(
        &mut self,
        seq: Seq,
        creator: u32,
        parents: &[Seq],
        la: &[super::Anc],
        round: u64,
        is_witness: bool,
    ) -> super::Placement {
        self.ensure_round(round);
        let round_peers = std::sync::Arc::clone(&self.round_state(round).expect("ensured").peers);
        let mut see_cur = self.see_matrix(round, parents, creator, la);
        let see_prev = match round.checked_sub(1) {
            Some(prev) => self.see_matrix(prev, parents, creator, la),
            None => Box::default(),
        };
        let witness = if is_witness {
            let me = round_peers
                .slot(creator)
                .expect("checked: a witness is a member");
            see_cur[me * round_peers.words + me / 64] |= 1 << (me % 64);
            let strongly_seen = match round.checked_sub(1) {
                Some(prev) => self.strongly_seen(prev, la, &see_prev),
                None => Vec::new(),
            };
            let rs = &mut self.rounds[(round - self.round_base) as usize];
            rs.witnesses.push(seq);
            Some(Box::new(WitnessState {
                strongly_seen,
                famous: rs.decided.then_some(false),
                votes: Vec::new(),
            }))
        } else {
            None
        };
        super::Placement {
            round,
            see_cur,
            see_prev,
            witness,
        }
    }
}
