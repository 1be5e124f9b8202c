//! Validator-set changes decided by consensus (DESIGN.md, "Membership").
//!
//! A PEER_ADD or PEER_REMOVE internal transaction, signed by its subject peer, rides in an
//! event; once ordered it lands in the block of its round received `R`. The app then accepts
//! or refuses each change in its commit receipts, and an accepted change forms the validator
//! set from round `R + 6` on. Until the host hands back those receipts
//! ([`Hashgraph::apply_receipts`]), consensus goes no further than `R`: every node therefore
//! orders round `R + 1` and later with the same sets, whatever the timing of its app.
//!
//! By the time the receipts arrive, a node may already hold events of round `R + 6` or later,
//! placed with the old set. Those are placed again, in insertion order, as if the new set had
//! been known all along ([`Hashgraph::place`] depends only on the parents, the ancestry and
//! the sets), and fame above `R` is decided afresh, since votes of such rounds counted with the
//! old set. Nothing at or below `R` changes: it is ordered already, alike everywhere.

use serde::{Deserialize, Serialize};

use super::{Hashgraph, Seq};
use crate::error::HashgraphError;
use crate::event::{InternalTransaction, InternalTransactionKind};
use crate::peers::PeerSet;

/// Rounds between the round received of an accepted change and the first round it governs.
pub const PEER_CHANGE_DELAY_ROUNDS: u64 = 6;

/// A block holding validator-set changes, whose receipts the core waits for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct AwaitingReceipts {
    pub(super) block_index: u64,
    pub(super) round_received: u64,
    pub(super) changes: Vec<InternalTransaction>,
}

/// A validator-set change that took effect in the core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSetChange {
    /// The first round the new set governs.
    pub round: u64,
    /// The new set.
    pub peers: PeerSet,
}

impl Hashgraph {
    /// The index of the block whose receipts consensus waits for, if any: the host delivers
    /// it to the app and passes the app's answer to [`Hashgraph::apply_receipts`].
    pub fn awaiting_receipts(&self) -> Option<u64> {
        self.awaiting.as_ref().map(|a| a.block_index)
    }

    /// The app's receipts for block `block_index` (the one [`Hashgraph::awaiting_receipts`]
    /// names): one flag per internal transaction, in the block's order, `true` for accepted.
    /// Accepted changes form the validator set from the block's round received + 6, and
    /// consensus may go on (call [`Hashgraph::run_consensus`]). Returns the change, if the set
    /// changed. A removal that would empty the set is ignored.
    pub fn apply_receipts(
        &mut self,
        block_index: u64,
        accepted: &[bool],
    ) -> Result<Option<PeerSetChange>, HashgraphError> {
        let awaited = self.awaiting_receipts();
        let Some(awaiting) = self.awaiting.take_if(|a| a.block_index == block_index) else {
            return Err(HashgraphError::NotAwaitingReceipts {
                block_index,
                awaited,
            });
        };
        if accepted.len() != awaiting.changes.len() {
            let expected = awaiting.changes.len();
            self.awaiting = Some(awaiting);
            return Err(HashgraphError::ReceiptCount {
                block_index,
                expected,
                got: accepted.len(),
            });
        }
        let first_round = awaiting.round_received + PEER_CHANGE_DELAY_ROUNDS;
        let before = self.peer_set(first_round).clone();
        let mut peers = before.clone();
        for (change, _) in awaiting.changes.iter().zip(accepted).filter(|(_, ok)| **ok) {
            match change.body.kind {
                InternalTransactionKind::PeerAdd => {
                    peers = peers.with_peer(change.body.peer.clone())
                }
                InternalTransactionKind::PeerRemove => {
                    if let Some(smaller) = peers.without_peer(&change.body.peer.pub_key) {
                        peers = smaller;
                    }
                }
            }
        }
        if peers.hash() == before.hash() {
            return Ok(None);
        }
        self.add_peer_set(first_round, peers.clone());
        self.rewind(awaiting.round_received, first_round);
        Ok(Some(PeerSetChange {
            round: first_round,
            peers,
        }))
    }

    /// After the set from round `from` on changed, with rounds up to `received` ordered:
    /// decides fame above `received` afresh and places every event of round `from` or later
    /// again. A no-op while the DAG has not reached `from`.
    fn rewind(&mut self, received: u64, from: u64) {
        let Some(last) = self.last_round() else {
            return;
        };
        if last < from {
            return;
        }
        for r in received + 1..=last {
            let Some(i) = r.checked_sub(self.round_base) else {
                continue;
            };
            let i = i as usize;
            self.rounds[i].decided = false;
            if r >= from {
                self.rounds[i].peers = std::sync::Arc::clone(self.peers_for(r));
                self.rounds[i].witnesses.clear();
                continue;
            }
            for w in self.rounds[i].witnesses.clone() {
                let ws = self.node_mut(w).witness.as_mut().expect("witness");
                ws.famous = None;
                ws.votes.clear();
            }
        }
        self.fame_next = self.fame_next.min(received + 1);

        let moved: Vec<Seq> = self
            .arena
            .iter()
            .enumerate()
            .filter(|(_, n)| n.as_ref().is_some_and(|n| n.round >= from))
            .map(|(i, _)| self.arena_base + i as Seq)
            .collect();
        let old_rounds: Vec<u64> = self.undetermined.range(from..).map(|(r, _)| *r).collect();
        for r in old_rounds {
            self.undetermined.remove(&r);
        }
        for seq in moved {
            let node = self.live(seq);
            let (creator, self_parent) = (node.creator, node.self_parent);
            let parents: Vec<Seq> = node
                .self_parent
                .into_iter()
                .chain(node.other_parent)
                .collect();
            let la = node.la.clone();
            let placed = self.place(seq, creator, self_parent, &parents, &la);
            self.undetermined.entry(placed.round).or_default().push(seq);
            let node = self.node_mut(seq);
            node.round = placed.round;
            node.see_cur = placed.see_cur;
            node.see_prev = placed.see_prev;
            node.witness = placed.witness;
        }
    }
}
