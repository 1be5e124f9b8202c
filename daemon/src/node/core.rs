//! The consensus task: the one owner of the [`Hashgraph`], the transaction pool's drain and
//! the blocks. Every other task talks to it through [`CoreHandle`] commands, so the core stays
//! single-threaded and nothing holds a lock across I/O.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use hashgraph::{
    Block, BlockSignature, Event, Frame, Hash, Hashgraph, InsertError, InternalTransaction,
    InternalTransactionKind, Peer, PeerSet, PublicKey, SecretKey, Signature, VerifiedEvent,
};
use hearsay_net::wire::{JoinStatus, Response};
use hearsay_net::SyncResponse;
use tokio::sync::{mpsc, oneshot};

use super::membership::{self, History, JoinRefusal, Joins};
use super::pool::TxPool;
use super::taken::TakenWatch;
use super::NodeState;
use crate::store::{Store, StoreError};

/// Most bytes of transactions put in one event (well under the core's event size limit).
pub const MAX_EVENT_PAYLOAD: usize = 1 << 20;
/// Bytes of events after which an answer to a fetch stops (well inside a wire frame).
const MAX_FETCH_ANSWER_BYTES: usize = 8 << 20;
/// How often a node suspended for lack of progress still creates an event, so that consensus
/// can resume once a quorum is back.
pub const PROBE_PERIOD: std::time::Duration = std::time::Duration::from_millis(500);
/// Most block signatures of others kept while waiting for our own app's answer.
const MAX_STASHED_SIGNATURES: usize = 100_000;
/// Blocks kept in memory, by count and by bytes of transactions (under load a block holds
/// thousands); older ones are read from the store.
const RECENT_BLOCKS: usize = 256;
const RECENT_BLOCK_BYTES: usize = 8 << 20;
/// Consensus rounds between two evictions of decided history, each followed by a checkpoint
/// of the consensus state (a restart replays only the events accepted since).
pub const CHECKPOINT_EVERY_ROUNDS: u64 = 16;

/// How long our own events that a fast-sync window lacks wait for every other validator to
/// show (by what it knows of us) that it lacks them too, before they are abandoned anyway.
const UNPLACED_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// What to do after a sync's insertion if no parent is missing.
#[derive(Clone)]
pub struct ThenCreate {
    /// The peer synced with.
    pub other: PublicKey,
    /// How many of our events it holds, from its answer.
    pub ours_held: u64,
    /// Its known map, to list what it lacks.
    pub known: Vec<(PublicKey, u64)>,
    /// Most events to list.
    pub limit: usize,
}

/// The answer to [`CoreHandle::after_pull`].
pub struct AfterPull {
    /// The insertion.
    pub summary: InsertSummary,
    /// If no parent was missing: what creating our event led to, and (unless a fast-sync is
    /// due) the peer's `Unknown` answer, to push.
    pub created: Option<(Creation, Option<Response>)>,
    /// Whether there is work for the network after all this (as [`CoreHandle::busy`]), so
    /// that the gossip loop need not ask again before its next sync.
    pub busy: bool,
}

/// What a request to create an event led to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Creation {
    /// An event was created.
    Created,
    /// None was (no work, or not allowed now).
    Nothing,
    /// The peer says it holds our own events that the last fast-sync window lacked: it must
    /// show the first of them, which has this id (see [`CoreHandle::unplaced_shown`]).
    ShowOurs(Hash),
    /// A peer showed it holds our own events that the last fast-sync window lacked:
    /// fast-sync again.
    FastSyncAgain,
    /// The other validators take none of our new events (see [`super::taken`]): the node
    /// must resume from a fast-sync window.
    OursRefused,
}

/// Our own stored events, `first..=last`, that the fast-sync window lacked.
struct Unplaced {
    first: u64,
    last: u64,
    /// The validators that showed they lack them too.
    lacking: Vec<PublicKey>,
    since: std::time::Instant,
    /// A peer showed it holds them: wait for the next fast-sync.
    held_elsewhere: bool,
}

impl Unplaced {
    /// Counts `peer` among the validators that lack them.
    fn lacks(&mut self, peer: PublicKey) {
        if !self.lacking.contains(&peer) {
            self.lacking.push(peer);
        }
    }
}

/// What a restart saves besides the hashgraph: the core's own counters.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct SavedCore {
    /// Transactions ordered so far.
    pub transactions: u64,
    /// The consensus state.
    pub hashgraph: hashgraph::Checkpoint,
}

/// Saves `hg` (whose ready work was taken and whose events are all stored) and the count of
/// ordered transactions as the store's checkpoint; returns its size in bytes.
pub fn save_checkpoint(
    hg: &Hashgraph,
    transactions: u64,
    store: &dyn Store,
) -> Result<usize, StoreError> {
    let saved = SavedCore {
        transactions,
        hashgraph: hg.checkpoint(),
    };
    let bytes = postcard::to_stdvec(&saved).expect("encoding into a Vec cannot fail");
    store.put_checkpoint(&bytes, store.event_count()?)?;
    Ok(bytes.len())
}

/// Hands `hg` the app's receipts stored in `block`, the block whose receipts consensus waits
/// on (see [`Hashgraph::awaiting_receipts`]); records a resulting validator-set change in the
/// store. Returns whether consensus may go on.
pub fn apply_block_receipts(
    hg: &mut Hashgraph,
    block: &Block,
    store: &dyn Store,
) -> Result<bool, StoreError> {
    let accepted: Vec<bool> = block.receipts.iter().map(|r| r.accepted).collect();
    match hg.apply_receipts(block.body.index, &accepted) {
        Ok(Some(change)) => {
            tracing::info!(
                block = block.body.index,
                from_round = change.round,
                validators = change.peers.len(),
                "the validator set changes"
            );
            store.put_peer_set(change.round, &change.peers)?;
            Ok(true)
        }
        Ok(None) => {
            tracing::info!(
                block = block.body.index,
                "validator-set changes refused by the app: the set stays"
            );
            Ok(true)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot apply the app's receipts");
            Ok(false)
        }
    }
}

/// A block kept in memory, with the hash of its body: every signature on the block is over a
/// digest of it, and hashing the body (every transaction of its round) once per signature was
/// the largest cost of a node under load.
struct RecentBlock {
    block: Block,
    body_hash: Hash,
}

/// Our key and a block's body hash, to sign the block and check others' signatures on it.
struct Signer<'a> {
    key: &'a SecretKey,
    body_hash: Hash,
}

impl Signer<'_> {
    fn sign(&self, block: &mut Block) -> Signature {
        block.sign_with_body_hash(self.key, &self.body_hash)
    }

    fn verify(&self, block: &Block, signer: &PublicKey, signature: &Signature) -> bool {
        block.verify_signature_with_body_hash(&self.body_hash, signer, signature)
    }
}

/// Bytes of transactions in a block, for the bound on blocks kept in memory.
fn payload_bytes(block: &Block) -> usize {
    block.body.transactions.iter().map(Vec::len).sum()
}

/// Whether more than a third of `set`, the validators of the block's round, have signed it.
fn is_anchored(set: &PeerSet, block: &Block) -> bool {
    let signers = block.signatures.keys().filter(|k| set.contains(k)).count();
    signers * 3 > set.len()
}

/// Adds `signer`'s `signature` to `block`, whose validators are `set`. Until the block is
/// anchored each signature is checked first, so that an anchored block is one that more than a
/// third of its validators validly signed. After that the rest are kept unchecked, and checked
/// when the block is read for someone ([`without_bad_signatures`]): one signature of the three
/// others' was all the anchor needed with four validators, and checking them all took 3.9% of
/// the machine's CPU at a 1 ms heartbeat, on the consensus task. Only the signer can put its
/// signature in an event (events are checked), so an unchecked one is at worst its own lie.
/// Returns whether the block changed.
fn add_signature_to(
    block: &mut Block,
    set: &PeerSet,
    keys: &Signer<'_>,
    signer: PublicKey,
    signature: Signature,
) -> bool {
    if block.signatures.contains_key(&signer) {
        return false;
    }
    if !is_anchored(set, block) && !keys.verify(block, &signer, &signature) {
        return false;
    }
    block.signatures.insert(signer, signature);
    true
}

/// `blocks` as someone else may see them (the HTTP service, a fast-syncing node): without the
/// signatures that do not check (see [`add_signature_to`]). Checked on the blocking pool: a
/// call may hash up to fifty block bodies and check every validator's signature of each, which
/// must not hold up the consensus task or an async thread.
async fn without_bad_signatures(blocks: Vec<Block>) -> Vec<Block> {
    let checking = tokio::task::spawn_blocking(move || {
        blocks
            .into_iter()
            .map(|mut block| {
                let body_hash = block.body.hash();
                drop_bad_signatures(&mut block, &body_hash);
                block
            })
            .collect()
    });
    match checking.await {
        Ok(blocks) => blocks,
        Err(e) => {
            tracing::error!(error = %e, "checking blocks' signatures failed");
            Vec::new()
        }
    }
}

/// Removes from `block`, whose body hashes to `body_hash`, the signatures that do not check.
fn drop_bad_signatures(block: &mut Block, body_hash: &Hash) {
    let digest = block.signing_digest_with_body_hash(body_hash);
    block
        .signatures
        .retain(|signer, signature| signer.verify(&digest, signature));
}

/// Stops the process on a failed write: going on with a store that lacks what the node did
/// could make it sign a second event at an index after a restart, or lose a block.
pub(super) fn fatal_store_error(error: &StoreError, what: &str) -> ! {
    tracing::error!(error = %error, "cannot persist {what}; stopping so that nothing is lost or signed twice after a restart");
    std::process::exit(1);
}

/// What an insertion batch did, for the gossip task.
#[derive(Debug, Default)]
pub struct InsertSummary {
    /// Events added to the DAG.
    pub added: usize,
    /// Parents to fetch from the sender.
    pub missing: Vec<Hash>,
    /// Events refused (bad self-parent, unknown creator, …), with the reason of the first.
    pub refused: usize,
    /// Reason of the first refusal.
    pub first_error: Option<String>,
}

/// The figures `/stats` and `/metrics` report.
#[derive(Debug, Clone, Default)]
pub struct CoreStatus {
    /// Node state.
    pub state: Option<NodeState>,
    /// Counters of the hashgraph.
    pub stats: hashgraph::Stats,
    /// Transactions ordered so far.
    pub transactions: u64,
    /// Blocks produced by consensus.
    pub blocks: u64,
    /// Blocks the app has acknowledged.
    pub blocks_committed: u64,
    /// Validators of the current round's set.
    pub num_peers: usize,
    /// Last round at which the validator set changed, if ever.
    pub last_peer_change: Option<u64>,
    /// Events this node created.
    pub self_events: u64,
    /// The latest block signed by more than a third of its round's validators.
    pub last_anchored: Option<u64>,
}

/// The latest anchored block and what a node needs to resume at it (fast-sync), as this
/// node serves it.
pub struct Anchor {
    /// The block, with its signatures.
    pub block: Block,
    /// Its frame.
    pub frame: Frame,
    /// The recent DAG from its round on.
    pub window: hashgraph::Window,
}

/// A hashgraph resumed at an anchored block by fast-sync, for [`Command::Reset`].
pub struct ResetTo {
    /// The resumed hashgraph (its window's events in its ready work).
    pub hg: Hashgraph,
    /// The anchored block.
    pub block: Block,
    /// Its frame.
    pub frame: Frame,
}

/// A round and its witnesses with their fame (`None` while undecided).
pub type RoundWitnesses = (u64, Vec<(Hash, Option<bool>)>);

/// The recent part of the DAG, for `/graph`.
#[derive(Debug, Default)]
pub struct GraphSnapshot {
    /// Recent events with their consensus facts, in topological order.
    pub events: Vec<hashgraph::EventInfo>,
    /// Recent rounds.
    pub rounds: Vec<RoundWitnesses>,
    /// The last blocks.
    pub blocks: Vec<Block>,
}

/// Commands to the core.
pub enum Command {
    /// The latest anchored block and its window, to serve a fast-sync; or why there is none.
    Anchor(oneshot::Sender<Result<Anchor, String>>),
    /// Replace the hashgraph by one resumed at an anchored block (fast-sync); answers the
    /// anchored block's index once the store holds the new state.
    Reset(Box<ResetTo>, oneshot::Sender<u64>),
    /// Our known map (creator → events held), for a sync request.
    Known(oneshot::Sender<Vec<(PublicKey, u64)>>),
    /// Events a peer with this known map lacks, at most `limit`, encoded, plus our known map.
    Unknown {
        /// The peer's known map.
        known: Vec<(PublicKey, u64)>,
        /// Most events.
        limit: usize,
        /// Answer: the events, our known map, whether more were left; or that we pruned
        /// events the peer lacks.
        reply: oneshot::Sender<Response>,
    },
    /// Events by id (missing parents a peer asked for).
    Fetch(Vec<Hash>, oneshot::Sender<Vec<Vec<u8>>>),
    /// Verified events to insert, in the order received.
    Insert(Vec<VerifiedEvent>, oneshot::Sender<InsertSummary>),
    /// The rest of a sync in one step: insert the peer's events and, if none lacks a
    /// parent, create our next event on the peer's latest and list what the peer lacks.
    AfterPull {
        /// The peer's events, verified.
        events: Vec<VerifiedEvent>,
        /// What follows the insertion when nothing is missing.
        then: Box<ThenCreate>,
        /// Answer.
        reply: oneshot::Sender<AfterPull>,
    },
    /// Create our next event on top of `other`'s latest event if there is work (or if
    /// `force`); answers whether one was created.
    CreateEvent {
        /// The peer we just synced with.
        other: Option<PublicKey>,
        /// How many of our events that peer holds, from its sync answer.
        ours_held: Option<u64>,
        /// Answer.
        reply: oneshot::Sender<Creation>,
    },
    /// Whether a peer that claimed to hold our unplaced events showed the first of them.
    UnplacedShown {
        /// The peer.
        peer: Peer,
        /// Whether it sent the event.
        shown: bool,
        /// Answer: fast-sync again, or what creating went on to.
        reply: oneshot::Sender<Creation>,
    },
    /// Whether there is work: transactions waiting or ordered-but-unsettled payloads.
    Busy(oneshot::Sender<bool>),
    /// The app acknowledged block `index` with this state hash: sign it.
    Committed {
        /// Block index.
        index: u64,
        /// The app's state hash.
        state_hash: Vec<u8>,
        /// The app's receipts.
        receipts: Vec<hashgraph::InternalTransactionReceipt>,
    },
    /// Figures for `/stats`.
    Status(oneshot::Sender<CoreStatus>),
    /// Blocks `start..start+count` (those that exist).
    Blocks {
        /// First index.
        start: u64,
        /// Most blocks.
        count: usize,
        /// Answer.
        reply: oneshot::Sender<Vec<Block>>,
    },
    /// The validator-set history.
    History(oneshot::Sender<Vec<(u64, PeerSet)>>),
    /// The recent DAG, for visualisers.
    Graph {
        /// Most events.
        limit: usize,
        /// Answer.
        reply: oneshot::Sender<GraphSnapshot>,
    },
    /// Change the node state (suspend, resume, shut down).
    SetState(NodeState),
    /// A join request from `from` (see [`membership`]): answers where it stands.
    Join {
        /// The key the request's connection proved.
        from: PublicKey,
        /// The joiner's PEER_ADD.
        request: InternalTransaction,
        /// Answer.
        reply: oneshot::Sender<Result<JoinStatus, JoinRefusal>>,
    },
    /// Submit our own PEER_REMOVE and move to `Leaving`; answers whether there was a set to
    /// leave (we are in the latest set and not its only member).
    Leave(oneshot::Sender<bool>),
}

/// A cheap, cloneable handle to the core task.
#[derive(Clone)]
pub struct CoreHandle {
    tx: mpsc::Sender<Command>,
}

/// The core task stopped (the node is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the node is shutting down")]
pub struct CoreGone;

impl CoreHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, CoreGone> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| CoreGone)?;
        rx.await.map_err(|_| CoreGone)
    }

    /// Our known map.
    pub async fn known(&self) -> Result<Vec<(PublicKey, u64)>, CoreGone> {
        self.ask(Command::Known).await
    }

    /// Events a peer lacks.
    pub async fn unknown(
        &self,
        known: Vec<(PublicKey, u64)>,
        limit: usize,
    ) -> Result<Response, CoreGone> {
        self.ask(|reply| Command::Unknown {
            known,
            limit,
            reply,
        })
        .await
    }

    /// Events by id.
    pub async fn fetch(&self, ids: Vec<Hash>) -> Result<Vec<Vec<u8>>, CoreGone> {
        self.ask(|reply| Command::Fetch(ids, reply)).await
    }

    /// Inserts verified events.
    pub async fn insert(&self, events: Vec<VerifiedEvent>) -> Result<InsertSummary, CoreGone> {
        self.ask(|reply| Command::Insert(events, reply)).await
    }

    /// Inserts a peer's events and, if none lacks a parent, creates our next event and lists
    /// what the peer lacks: a sync's three steps in one round trip to the core.
    pub async fn after_pull(
        &self,
        events: Vec<VerifiedEvent>,
        then: ThenCreate,
    ) -> Result<AfterPull, CoreGone> {
        self.ask(|reply| Command::AfterPull {
            events,
            then: Box::new(then),
            reply,
        })
        .await
    }

    /// Creates our next event if there is work; `ours_held` is how many of our events the peer
    /// `other` holds, from its sync answer.
    pub async fn create_event(
        &self,
        other: Option<PublicKey>,
        ours_held: Option<u64>,
    ) -> Result<Creation, CoreGone> {
        self.ask(|reply| Command::CreateEvent {
            other,
            ours_held,
            reply,
        })
        .await
    }

    /// Whether `peer`, which said it holds our own events that the last fast-sync window
    /// lacked ([`Creation::ShowOurs`]), showed the first of them: then we fast-sync again;
    /// else it counts as lacking them.
    pub async fn unplaced_shown(&self, peer: &Peer, shown: bool) -> Result<Creation, CoreGone> {
        let peer = peer.clone();
        self.ask(|reply| Command::UnplacedShown { peer, shown, reply })
            .await
    }

    /// Whether there is work.
    pub async fn busy(&self) -> Result<bool, CoreGone> {
        self.ask(Command::Busy).await
    }

    /// Reports the app's answer for a block.
    pub async fn committed(
        &self,
        index: u64,
        state_hash: Vec<u8>,
        receipts: Vec<hashgraph::InternalTransactionReceipt>,
    ) -> Result<(), CoreGone> {
        self.tx
            .send(Command::Committed {
                index,
                state_hash,
                receipts,
            })
            .await
            .map_err(|_| CoreGone)
    }

    /// Figures for `/stats`.
    pub async fn status(&self) -> Result<CoreStatus, CoreGone> {
        self.ask(Command::Status).await
    }

    /// Blocks from `start`.
    pub async fn blocks(&self, start: u64, count: usize) -> Result<Vec<Block>, CoreGone> {
        let blocks = self
            .ask(|reply| Command::Blocks {
                start,
                count,
                reply,
            })
            .await?;
        Ok(without_bad_signatures(blocks).await)
    }

    /// The recent DAG, at most `limit` events.
    pub async fn graph(&self, limit: usize) -> Result<GraphSnapshot, CoreGone> {
        self.ask(|reply| Command::Graph { limit, reply }).await
    }

    /// Validator sets by first round.
    pub async fn history(&self) -> Result<Vec<(u64, PeerSet)>, CoreGone> {
        self.ask(Command::History).await
    }

    /// The latest anchored block to serve a fast-sync from, or why there is none.
    pub async fn anchor(&self) -> Result<Result<Anchor, String>, CoreGone> {
        let mut anchor = match self.ask(Command::Anchor).await? {
            Ok(anchor) => anchor,
            Err(why) => return Ok(Err(why)),
        };
        match without_bad_signatures(vec![anchor.block]).await.pop() {
            Some(block) => {
                anchor.block = block;
                Ok(Ok(anchor))
            }
            None => Ok(Err("the anchored block could not be checked".into())),
        }
    }

    /// Resumes the node at an anchored block (fast-sync); returns the block's index.
    pub async fn reset(&self, to: ResetTo) -> Result<u64, CoreGone> {
        self.ask(|reply| Command::Reset(Box::new(to), reply)).await
    }

    /// Where a join request stands (carrying it if it is new).
    pub async fn join(
        &self,
        from: PublicKey,
        request: InternalTransaction,
    ) -> Result<Result<JoinStatus, JoinRefusal>, CoreGone> {
        self.ask(|reply| Command::Join {
            from,
            request,
            reply,
        })
        .await
    }

    /// Starts leaving the validator set; `false` if there is nothing to leave.
    pub async fn leave(&self) -> Result<bool, CoreGone> {
        self.ask(Command::Leave).await
    }

    /// Changes the node state.
    pub async fn set_state(&self, state: NodeState) -> Result<(), CoreGone> {
        self.tx
            .send(Command::SetState(state))
            .await
            .map_err(|_| CoreGone)
    }
}

/// Where the core sends what it produces.
pub struct CoreOutputs {
    /// New blocks, to the delivery task.
    pub deliver: mpsc::UnboundedSender<Block>,
    /// The node state.
    pub state_changes: tokio::sync::watch::Sender<NodeState>,
    /// Wakes the gossip loop when work arrives.
    pub wake: Arc<tokio::sync::Notify>,
    /// The node's store.
    pub store: Arc<dyn Store>,
    /// Deliver every block to the app again (`--bootstrap`).
    pub bootstrap: bool,
    /// Blocks made before the state the hashgraph was restored from: they are in the store,
    /// and those the app has not acknowledged are delivered first.
    pub blocks_before: u64,
    /// Transactions ordered in those blocks.
    pub transactions_before: u64,
    /// Rounds of decided history kept in memory.
    pub memory_rounds: u64,
    /// Where the validator-set history is published whenever it changes.
    pub membership: tokio::sync::watch::Sender<History>,
    /// Rounds of history kept on disk (0: all); at least `memory_rounds`.
    pub prune_rounds: u64,
    /// Where the events per consensus round lately are published (for gossip's estimate of
    /// how far behind a peer we are).
    pub events_per_round: Arc<std::sync::atomic::AtomicU64>,
    /// Where the ids of inserted events are recorded, for the tasks that check received ones.
    pub recent_ids: Arc<super::recent_ids::RecentIds>,
    /// Told of each own event stored, for the thread that syncs them before they leave.
    pub own_events: super::durable::OwnEventsStored,
}

/// The core's state, owned by its task.
pub struct Core {
    hg: Hashgraph,
    key: SecretKey,
    pool: Arc<TxPool>,
    state: NodeState,
    suspend_limit: usize,
    /// Suspended because consensus fell behind (not by the operator's maintenance mode):
    /// the node probes with one event per [`PROBE_PERIOD`] and resumes once consensus has
    /// caught up, so a network that lost its quorum recovers on its own when it returns.
    suspended_by_limit: bool,
    last_probe: Option<std::time::Instant>,
    /// Our events with transactions that consensus has not ordered yet: how many transactions
    /// and bytes each holds, handed back to the pool's limits when it is ordered or given back.
    own_in_flight: HashMap<Hash, (usize, usize)>,
    /// The latest blocks, from index `recent_base`; older ones are in the store.
    recent: VecDeque<RecentBlock>,
    recent_base: u64,
    /// Bytes of transactions in `recent`.
    recent_bytes: usize,
    /// Rounds of decided history kept in memory, and the round of the last checkpoint.
    memory_rounds: u64,
    checkpointed_round: u64,
    /// Rounds kept on disk (0: all), and per checkpoint round what memory held from then
    /// (each creator's lowest index): what falls out of the disk window is pruned.
    prune_rounds: u64,
    floors: VecDeque<(u64, Vec<(PublicKey, u64)>)>,
    /// Signatures of ours waiting to ride in our next event.
    our_signatures: Vec<BlockSignature>,
    /// Others' signatures for blocks our app has not answered yet.
    stashed: HashMap<u64, Vec<(PublicKey, hashgraph::Signature)>>,
    stashed_count: usize,
    transactions: u64,
    blocks_committed: u64,
    self_events: u64,
    /// New blocks go to the delivery task.
    deliver: mpsc::UnboundedSender<Block>,
    state_changes: tokio::sync::watch::Sender<NodeState>,
    /// Wakes the gossip loop from its idle period when work arrives.
    wake: Arc<tokio::sync::Notify>,
    /// Where everything that must survive a crash goes.
    store: Arc<dyn Store>,
    /// The last block the app acknowledged before this start: blocks up to it are not
    /// delivered again.
    acknowledged_at_start: Option<u64>,
    /// Internal transactions (a joiner's PEER_ADD, our PEER_REMOVE) for our next event.
    internal_queue: Vec<InternalTransaction>,
    /// The joins we carry for joiners.
    joins: Joins,
    /// Publishes the validator-set history.
    membership: tokio::sync::watch::Sender<History>,
    /// The latest block signed by more than a third of its round's validators.
    last_anchored: Option<u64>,
    /// Our own stored events that the fast-sync window lacked, waiting to be abandoned.
    unplaced: Option<Unplaced>,
    /// Events per consensus round over the last checkpoint period, published for gossip.
    events_per_round: Arc<std::sync::atomic::AtomicU64>,
    /// Events inserted when the last checkpoint was taken.
    checkpointed_events: u64,
    /// Ids of the events inserted lately, shared with the signature-checking tasks.
    recent_ids: Arc<super::recent_ids::RecentIds>,
    /// The other validators' counts of our events, to see whether they take our new ones.
    taken: TakenWatch,
    /// [`Creation::OursRefused`] was answered (once until our events are reset).
    refusal_told: bool,
    /// Told of each own event stored; senders wait for its sync.
    own_events: super::durable::OwnEventsStored,
}

impl Core {
    /// A core for `hg` that signs with `key`, takes transactions from `pool` and sends what
    /// it produces to `outputs`.
    pub fn new(
        hg: Hashgraph,
        key: SecretKey,
        pool: Arc<TxPool>,
        initial: NodeState,
        suspend_limit: usize,
        outputs: CoreOutputs,
    ) -> Core {
        let CoreOutputs {
            deliver,
            state_changes,
            wake,
            store,
            bootstrap,
            blocks_before,
            transactions_before,
            memory_rounds,
            prune_rounds,
            membership,
            events_per_round,
            recent_ids,
            own_events,
        } = outputs;
        let acknowledged_at_start = if bootstrap {
            None
        } else {
            store.app_acknowledged().unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot read the app's last acknowledged block");
                None
            })
        };
        let checkpointed_round = hg.last_consensus_round().unwrap_or(0);
        let stats = hg.stats();
        if let Some(round) = stats.last_round.filter(|r| *r > 0) {
            events_per_round.store(
                stats.events_inserted / round,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        let checkpointed_events = stats.events_inserted;
        let mut core = Core {
            hg,
            key,
            pool,
            state: initial,
            suspend_limit,
            suspended_by_limit: false,
            last_probe: None,
            own_in_flight: HashMap::new(),
            recent: VecDeque::new(),
            recent_bytes: 0,
            recent_base: blocks_before,
            memory_rounds,
            checkpointed_round,
            prune_rounds,
            floors: VecDeque::new(),
            our_signatures: Vec::new(),
            stashed: HashMap::new(),
            stashed_count: 0,
            transactions: transactions_before,
            blocks_committed: if bootstrap {
                0
            } else {
                acknowledged_at_start.map_or(0, |a| (a + 1).min(blocks_before))
            },
            self_events: 0,
            deliver,
            state_changes,
            wake,
            store,
            acknowledged_at_start,
            internal_queue: Vec::new(),
            joins: Joins::default(),
            membership,
            last_anchored: None,
            unplaced: None,
            events_per_round,
            checkpointed_events,
            recent_ids,
            taken: TakenWatch::default(),
            refusal_told: false,
            own_events,
        };
        // Our own events that a restart could not replay are invalid to every node.
        core.resume_own_events(true);
        core
    }

    /// Starts the task; it ends when every handle is dropped.
    pub fn spawn(self) -> (CoreHandle, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(1024);
        let task = tokio::spawn(self.run(rx));
        (CoreHandle { tx }, task)
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        // Stored blocks the app has not acknowledged go out first, then those recomputed from
        // the events replayed since the checkpoint (or recognised as delivered).
        let first = if self.acknowledged_at_start.is_none() {
            0
        } else {
            self.blocks_committed
        };
        for index in first..self.recent_base {
            match self.store.block(index) {
                Ok(Some(block)) => {
                    let _ = self.deliver.send(block);
                }
                Ok(None) => tracing::error!(block = index, "a stored block is missing"),
                Err(e) => tracing::error!(error = %e, block = index, "cannot read a stored block"),
            }
        }
        self.settle();
        while let Some(command) = rx.recv().await {
            self.handle(command);
            // Once shut down, the core answers nothing more: tasks still holding a handle (a
            // request in flight) get `CoreGone` at once instead of keeping the process up.
            if self.state == NodeState::Shutdown {
                break;
            }
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Anchor(reply) => {
                let _ = reply.send(self.anchor());
            }
            Command::Reset(to, reply) => {
                let index = self.reset(*to);
                let _ = reply.send(index);
            }
            Command::AfterPull {
                events,
                then,
                reply,
            } => {
                let summary = self.insert(events);
                let created = summary.missing.is_empty().then(|| {
                    let creation = self.creation(Some(then.other), Some(then.ours_held));
                    let push = matches!(creation, Creation::Created | Creation::Nothing)
                        .then(|| self.unknown_answer(&then.known, then.limit));
                    (creation, push)
                });
                let busy = self.busy();
                let _ = reply.send(AfterPull {
                    summary,
                    created,
                    busy,
                });
            }
            Command::Known(reply) => {
                let _ = reply.send(self.hg.known());
            }
            Command::Unknown {
                known,
                limit,
                reply,
            } => {
                let _ = reply.send(self.unknown_answer(&known, limit));
            }
            Command::Fetch(ids, reply) => {
                // Bounded by bytes too, so that the answer fits in a frame: the asker asks
                // again for what is left.
                let mut bytes = 0;
                let mut events = Vec::new();
                for id in &ids {
                    let event = match self.hg.event(id) {
                        Some(e) => Some(e.to_bytes()),
                        None => self.store.event(id).ok().flatten().map(|e| e.to_bytes()),
                    };
                    if let Some(event) = event {
                        bytes += event.len();
                        events.push(event);
                        if bytes >= MAX_FETCH_ANSWER_BYTES {
                            break;
                        }
                    }
                }
                let _ = reply.send(events);
            }
            Command::Insert(events, reply) => {
                let summary = self.insert(events);
                let _ = reply.send(summary);
            }
            Command::CreateEvent {
                other,
                ours_held,
                reply,
            } => {
                let _ = reply.send(self.creation(other, ours_held));
            }
            Command::UnplacedShown { peer, shown, reply } => {
                let _ = reply.send(self.unplaced_shown(peer, shown));
            }
            Command::Busy(reply) => {
                let _ = reply.send(self.busy());
            }
            Command::Committed {
                index,
                state_hash,
                receipts,
            } => self.on_committed(index, state_hash, receipts),
            Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Command::Blocks {
                start,
                count,
                reply,
            } => {
                let end = start.saturating_add(count as u64).min(self.block_count());
                let blocks = (start..end).filter_map(|i| self.block(i)).collect();
                let _ = reply.send(blocks);
            }
            Command::History(reply) => {
                let _ = reply.send(self.hg.peer_set_history());
            }
            Command::Graph { limit, reply } => {
                let _ = reply.send(self.graph(limit));
            }
            Command::SetState(state) => self.set_state(state),
            Command::Join {
                from,
                request,
                reply,
            } => {
                let me = self.key.public_key();
                let history = self.hg.peer_set_history();
                let answer = self
                    .joins
                    .ask(std::time::Instant::now(), &from, &request, &me, &history)
                    .map(|(status, new)| {
                        if new {
                            tracing::info!(
                                joiner = %request.body.peer.moniker,
                                addr = %request.body.peer.net_addr,
                                "carrying a join request"
                            );
                            self.internal_queue.push(request);
                            self.wake.notify_one();
                        }
                        status
                    });
                let _ = reply.send(answer);
            }
            Command::Leave(reply) => {
                let _ = reply.send(self.start_leaving());
            }
        }
    }

    /// Queues our PEER_REMOVE and moves to `Leaving`, if we are in the latest set with others.
    /// A node in maintenance mode creates no events, so it does not leave: it just stops.
    fn start_leaving(&mut self) -> bool {
        if self.state == NodeState::Suspended && !self.suspended_by_limit {
            return false;
        }
        let me = self.key.public_key();
        let history = self.hg.peer_set_history();
        let latest = membership::latest(&history);
        let Some(own) = latest.peers().iter().find(|p| p.pub_key == me) else {
            return false;
        };
        if latest.len() < 2 {
            return false;
        }
        let remove =
            InternalTransaction::new(InternalTransactionKind::PeerRemove, own.clone(), &self.key);
        self.internal_queue.push(remove);
        self.set_state(NodeState::Leaving);
        self.wake.notify_one();
        true
    }

    fn set_state(&mut self, state: NodeState) {
        if self.state != state {
            tracing::info!(from = %self.state, to = %state, "node state");
            self.state = state;
            let _ = self.state_changes.send(state);
        }
    }

    fn insert(&mut self, events: Vec<VerifiedEvent>) -> InsertSummary {
        let mut summary = InsertSummary::default();
        let mut added = Vec::new();
        for event in events {
            match self.hg.insert_verified(event) {
                Ok(outcome) => {
                    added.extend(outcome.added);
                    summary.missing.extend(outcome.missing_parents);
                }
                Err(e) => {
                    summary.refused += 1;
                    if summary.first_error.is_none() {
                        summary.first_error = Some(e.to_string());
                    }
                    if !matches!(
                        e,
                        InsertError::PendingFull { .. } | InsertError::TooOld { .. }
                    ) {
                        tracing::debug!(error = %e, "event refused");
                    }
                }
            }
        }
        summary.missing.sort_unstable();
        summary.missing.dedup();
        summary.added = added.len();
        self.recent_ids.record(added);
        self.settle();
        summary
    }

    /// Whether there is work for the network: our pool, unsettled payloads, or a validator-set
    /// change that does not govern yet (its rounds must be reached even on an idle network, or
    /// a leaver would wait for ever, or leave a round short of its quorum).
    fn busy(&self) -> bool {
        let change = self.hg.latest_peer_change();
        let change_in_flight =
            change > 0 && self.hg.last_consensus_round().is_none_or(|r| r < change);
        !self.pool.is_empty()
            || !self.our_signatures.is_empty()
            || !self.internal_queue.is_empty()
            || change_in_flight
            || self.hg.stats().undetermined_with_payload > 0
    }

    /// Our next event on `other`'s latest, if there is work and our own events allow it.
    fn creation(&mut self, other: Option<PublicKey>, ours_held: Option<u64>) -> Creation {
        if self.ours_refused(other, ours_held) {
            return Creation::OursRefused;
        }
        match self.check_unplaced(other, ours_held) {
            Some(creation) => creation,
            None if self.create_event(other) => Creation::Created,
            None => Creation::Nothing,
        }
    }

    /// Records `other`'s count of our events; whether the validators refuse our new events,
    /// said once (until a fast-sync resets our events).
    fn ours_refused(&mut self, other: Option<PublicKey>, ours_held: Option<u64>) -> bool {
        let now = std::time::Instant::now();
        if let (Some(peer), Some(held)) = (other, ours_held) {
            self.taken.record(peer, held, now);
        }
        if self.refusal_told || self.unplaced.is_some() {
            return false;
        }
        let me = self.key.public_key();
        let Some(ours) = self
            .hg
            .head(&me)
            .and_then(|h| self.hg.event(&h).map(|e| e.index() + 1))
        else {
            return false;
        };
        let others = membership::latest(&self.membership.borrow())
            .len()
            .saturating_sub(1);
        // More than a third of the set: one at least is honest.
        let needed = (others / 3 + 1).min(others);
        let Some(held) = self.taken.refused(ours, needed, now) else {
            return false;
        };
        self.refusal_told = true;
        tracing::warn!(
            held,
            ours,
            "the other validators have taken none of our events past the first {held} for {}s: \
             those name history they dropped (an event signed just before a crash and never \
             sent), and this node must resume from a fast-sync (restart it with --fast-sync if \
             it runs without; see /stats needs_fast_sync)",
            super::taken::REFUSED_AFTER.as_secs()
        );
        true
    }

    /// The answer to a peer with `known`: at most `limit` events it lacks, our known map and
    /// whether more were left; or that we pruned events it lacks.
    fn unknown_answer(&self, known: &[(PublicKey, u64)], limit: usize) -> Response {
        match self.events_unknown_to(known, limit.saturating_add(1)) {
            Ok(mut events) => {
                let more = events.len() > limit;
                events.truncate(limit);
                Response::Sync(SyncResponse {
                    events: events.iter().map(Event::to_bytes).collect(),
                    known: self.hg.known(),
                    more,
                })
            }
            Err((creator, below)) => Response::Pruned { creator, below },
        }
    }

    fn create_event(&mut self, other: Option<PublicKey>) -> bool {
        let probing = self.state == NodeState::Suspended
            && self.suspended_by_limit
            && self.last_probe.is_none_or(|t| t.elapsed() >= PROBE_PERIOD);
        let creating = matches!(self.state, NodeState::Babbling | NodeState::Leaving);
        if !(creating || probing) || !self.busy() {
            return false;
        }
        if probing {
            self.last_probe = Some(std::time::Instant::now());
        }
        let me = self.key.public_key();
        // A head far behind ours would make the event invalid: build on none instead.
        let other_parent = other
            .and_then(|o| self.hg.head(&o))
            .filter(|head| self.hg.fits_as_other_parent(&me, head));
        let (consumed, transactions): (Vec<u64>, Vec<Vec<u8>>) =
            self.pool.take(MAX_EVENT_PAYLOAD).into_iter().unzip();
        let signatures = std::mem::take(&mut self.our_signatures);
        let internal = std::mem::take(&mut self.internal_queue);
        let count = transactions.len();
        let bytes = transactions.iter().map(Vec::len).sum();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        match self.hg.create_event(
            &self.key,
            other_parent,
            now,
            transactions,
            internal.clone(),
            signatures,
        ) {
            Ok(event) => {
                // Stored before anyone can see it (commands run one at a time, so no sync can
                // hand this event out before the write returns), and durable before it leaves
                // the process: senders wait for the sync thread (`durable`).
                if let Err(e) = self.store.put_self_event(&event, &consumed) {
                    fatal_store_error(&e, "our own event");
                }
                self.own_events.stored();
                self.self_events += 1;
                self.recent_ids.record([event.id()]);
                if count > 0 {
                    self.own_in_flight.insert(event.id(), (count, bytes));
                }
                self.settle();
                true
            }
            Err(e) => {
                // Cannot happen with a head from our own DAG; never lose the transactions.
                tracing::error!(error = %e, count, "could not create an event");
                self.internal_queue.extend(internal);
                false
            }
        }
    }

    /// Runs consensus, hands new blocks to the delivery task, collects others' block
    /// signatures, and suspends the node if consensus is not keeping up.
    fn settle(&mut self) {
        self.hg.run_consensus();
        let ready = self.hg.take_ready();
        if ready.events.iter().any(|e| e.body().has_payload()) {
            self.wake.notify_one();
        }
        if !self.own_in_flight.is_empty() {
            for ordered in &ready.ordered {
                if let Some((count, bytes)) = self.own_in_flight.remove(&ordered.id) {
                    self.pool.ordered(count, bytes);
                }
            }
        }
        if let Err(e) = self.store.put_events(&ready.events) {
            fatal_store_error(&e, "received events");
        }
        let me = self.key.public_key();
        for event in ready.stale.iter().filter(|e| *e.creator() == me) {
            self.give_back(event, "our event went stale");
        }
        for event in &ready.events {
            let creator = *event.creator();
            for sig in &event.body().block_signatures {
                self.add_signature(creator, *sig);
            }
        }
        let made = ready.blocks.into_iter().zip(ready.frames);
        for ((block, frame), body_hash) in made.zip(ready.block_hashes) {
            self.transactions += block.body.transactions.len() as u64;
            let index = block.body.index;
            let already = self.acknowledged_at_start.is_some_and(|ack| index <= ack);
            let stored = if already {
                self.store.block(index).ok().flatten()
            } else {
                None
            };
            match stored {
                // The app has this block from before the restart: keep its answer and
                // signatures, and do not deliver it twice.
                Some(stored) if stored.body == block.body && !stored.state_hash.is_empty() => {
                    self.push_block(stored, body_hash);
                    self.blocks_committed = self.blocks_committed.max(index + 1);
                }
                _ => {
                    if let Err(e) = self
                        .store
                        .put_block(&block)
                        .and_then(|()| self.store.put_frame(index, &frame))
                    {
                        fatal_store_error(&e, "a block");
                    }
                    let _ = self.deliver.send(block.clone());
                    self.push_block(block, body_hash);
                }
            }
        }
        // A block the app answered before a restart is not delivered again: its stored
        // receipts let consensus go on.
        if self.apply_answered_receipts() {
            return self.settle();
        }
        self.evict_and_checkpoint();
        let stats = self.hg.stats();
        let n = self.hg.peer_set(stats.last_round.unwrap_or(0)).len();
        self.pool.set_validators(n);
        let limit = self.suspend_limit.saturating_mul(n);
        // Events without a payload at the tip of an idle network stay undetermined until new
        // work comes; they are no sign of consensus falling behind, and counting them alone
        // would keep an idle network suspended (it creates no events to decide them).
        let work_waiting = stats.undetermined_with_payload > 0;
        if self.state == NodeState::Babbling && stats.undetermined_events > limit && work_waiting {
            tracing::warn!(
                undetermined = stats.undetermined_events,
                limit,
                "too many undetermined events: suspending (no quorum?); probing until consensus catches up"
            );
            self.suspended_by_limit = true;
            self.set_state(NodeState::Suspended);
        } else if self.state == NodeState::Suspended
            && self.suspended_by_limit
            && (stats.undetermined_events <= limit / 2 || !work_waiting)
        {
            tracing::info!(
                undetermined = stats.undetermined_events,
                "consensus caught up: resuming"
            );
            self.suspended_by_limit = false;
            self.set_state(NodeState::Babbling);
        }
    }

    fn add_signature(&mut self, signer: PublicKey, sig: BlockSignature) {
        // Blocks are committed in order, so every index below `blocks_committed` has our
        // app's state hash and can be checked now.
        if self.blocks_committed > sig.index {
            self.change_block(sig.index, "a block signature", |block, set, keys| {
                add_signature_to(block, set, keys, signer, sig.signature)
            });
        } else if self.stashed_count < MAX_STASHED_SIGNATURES {
            self.stashed
                .entry(sig.index)
                .or_default()
                .push((signer, sig.signature));
            self.stashed_count += 1;
        }
    }

    fn on_committed(
        &mut self,
        index: u64,
        state_hash: Vec<u8>,
        receipts: Vec<hashgraph::InternalTransactionReceipt>,
    ) {
        let stashed = self.stashed.remove(&index).unwrap_or_default();
        self.stashed_count -= stashed.len();
        let mut signature = None;
        self.change_block(index, "the app's answer", |block, set, keys| {
            block.state_hash = state_hash;
            block.receipts = receipts;
            signature = Some(keys.sign(block));
            for (signer, sig) in stashed {
                add_signature_to(block, set, keys, signer, sig);
            }
            true
        });
        let Some(signature) = signature else {
            return;
        };
        self.blocks_committed = self.blocks_committed.max(index + 1);
        if let Err(e) = self.store.set_app_acknowledged(index) {
            fatal_store_error(&e, "the app's answer");
        }
        self.our_signatures
            .push(BlockSignature { index, signature });
        if self.apply_answered_receipts() {
            self.settle();
        }
    }

    /// If consensus waits on the receipts of a block the app has answered, hands them over;
    /// returns whether it did.
    fn apply_answered_receipts(&mut self) -> bool {
        let Some(index) = self.hg.awaiting_receipts() else {
            return false;
        };
        if index >= self.blocks_committed {
            return false;
        }
        let Some(block) = self.block(index) else {
            return false;
        };
        match apply_block_receipts(&mut self.hg, &block, self.store.as_ref()) {
            Ok(applied) => {
                if applied {
                    self.joins
                        .decided(std::time::Instant::now(), &block.receipts);
                    self.membership
                        .send_replace(Arc::new(self.hg.peer_set_history()));
                }
                applied
            }
            Err(e) => fatal_store_error(&e, "a validator-set change"),
        }
    }

    fn block_count(&self) -> u64 {
        self.recent_base + self.recent.len() as u64
    }

    /// Keeps `block`, whose body hashes to `body_hash`, among the recent blocks.
    fn push_block(&mut self, block: Block, body_hash: Hash) {
        self.recent_bytes += payload_bytes(&block);
        self.recent.push_back(RecentBlock { block, body_hash });
        while self.recent.len() > RECENT_BLOCKS
            || (self.recent_bytes > RECENT_BLOCK_BYTES && self.recent.len() > 1)
        {
            if let Some(old) = self.recent.pop_front() {
                self.recent_bytes -= payload_bytes(&old.block);
            }
            self.recent_base += 1;
        }
    }

    /// A block from memory or, if older, from the store.
    fn block(&self, index: u64) -> Option<Block> {
        match index.checked_sub(self.recent_base) {
            Some(i) => self
                .recent
                .get(usize::try_from(i).ok()?)
                .map(|r| r.block.clone()),
            None => self.store.block(index).ok().flatten(),
        }
    }

    /// Applies `change` to block `index` where it is (in memory if recent, else loaded from the
    /// store) and, if `change` answers that it changed it, stores it and notes whether it is
    /// now anchored. Blocks are changed in place because a copy per signature was a tenth of
    /// the bytes a node allocated under load.
    fn change_block(
        &mut self,
        index: u64,
        what: &str,
        change: impl FnOnce(&mut Block, &PeerSet, &Signer<'_>) -> bool,
    ) {
        let slot = index
            .checked_sub(self.recent_base)
            .and_then(|i| usize::try_from(i).ok());
        let mut loaded = None;
        let (block, body_hash) = match slot.and_then(|i| self.recent.get_mut(i)) {
            Some(recent) => (&mut recent.block, recent.body_hash),
            None => match self.store.block(index).ok().flatten() {
                Some(block) => {
                    let block = loaded.insert(block);
                    let body_hash = block.body.hash();
                    (block, body_hash)
                }
                None => return,
            },
        };
        let signer = Signer {
            key: &self.key,
            body_hash,
        };
        let set = self.hg.peer_set(block.body.round_received);
        if !change(block, set, &signer) {
            return;
        }
        if let Err(e) = self.store.put_block(block) {
            fatal_store_error(&e, what);
        }
        if is_anchored(set, block) && self.last_anchored.is_none_or(|a| a < index) {
            self.last_anchored = Some(index);
        }
    }

    /// Every [`CHECKPOINT_EVERY_ROUNDS`] consensus rounds: drops decided history older than
    /// `memory_rounds` from memory and saves the consensus state, so that a restart replays
    /// only the events accepted since.
    fn evict_and_checkpoint(&mut self) {
        let Some(round) = self.hg.last_consensus_round() else {
            return;
        };
        if round < self.checkpointed_round + CHECKPOINT_EVERY_ROUNDS {
            return;
        }
        let inserted = self.hg.stats().events_inserted;
        self.events_per_round.store(
            inserted.saturating_sub(self.checkpointed_events) / (round - self.checkpointed_round),
            std::sync::atomic::Ordering::Relaxed,
        );
        self.checkpointed_events = inserted;
        self.checkpointed_round = round;
        self.hg
            .evict_before(round.saturating_sub(self.memory_rounds));
        match save_checkpoint(&self.hg, self.transactions, self.store.as_ref()) {
            Ok(bytes) => tracing::debug!(round, bytes, "checkpoint"),
            Err(e) => fatal_store_error(&e, "a checkpoint"),
        }
        if self.prune_rounds == 0 {
            return;
        }
        // Events evicted by the checkpoint at round c are older than c - memory_rounds: once
        // c is prune_rounds - memory_rounds behind, they are older than prune_rounds.
        self.floors.push_back((round, self.hg.held_from()));
        let horizon = round.saturating_sub(self.prune_rounds.saturating_sub(self.memory_rounds));
        let mut due = None;
        while self.floors.front().is_some_and(|(r, _)| *r <= horizon) {
            due = self.floors.pop_front();
        }
        if let Some((at, floors)) = due {
            match self.store.prune_below(&floors) {
                Ok(pruned) => tracing::debug!(at, pruned, "pruned history from disk"),
                Err(e) => fatal_store_error(&e, "the pruning of old history"),
            }
        }
    }

    /// The events a peer whose counts are `known` lacks, in a topological order: from memory,
    /// or, when the peer is behind what memory holds, from the store (acceptance order); or
    /// the creator and index below which we pruned events the peer lacks.
    fn events_unknown_to(
        &self,
        known: &[(PublicKey, u64)],
        limit: usize,
    ) -> Result<Vec<Event>, (PublicKey, u64)> {
        let theirs: HashMap<PublicKey, u64> = known.iter().copied().collect();
        let behind: Vec<(PublicKey, u64)> = self
            .hg
            .held_from()
            .into_iter()
            .filter_map(|(creator, held)| {
                let from = theirs.get(&creator).copied().unwrap_or(0);
                (from < held).then_some((creator, from))
            })
            .collect();
        if behind.is_empty() {
            return Ok(self.hg.events_unknown_to(known, limit));
        }
        for (creator, from) in &behind {
            let pruned = self.store.pruned_below(creator).unwrap_or(0);
            if *from < pruned {
                return Err((*creator, pruned));
            }
        }
        let mut found: Vec<(u64, Event)> = Vec::new();
        for (creator, ours) in self.hg.known() {
            let from = theirs.get(&creator).copied().unwrap_or(0);
            if from >= ours {
                continue;
            }
            match self.store.creator_events(&creator, from, limit) {
                Ok(events) => found.extend(events),
                Err(e) => {
                    tracing::error!(error = %e, "cannot read stored events for a peer");
                    return Ok(Vec::new());
                }
            }
        }
        found.sort_unstable_by_key(|(position, _)| *position);
        found.truncate(limit);
        Ok(found.into_iter().map(|(_, e)| e).collect())
    }

    fn graph(&self, limit: usize) -> GraphSnapshot {
        let known = self.hg.known();
        let per_creator = (limit / known.len().max(1)) as u64;
        let from: Vec<(PublicKey, u64)> = known
            .iter()
            .map(|(k, n)| (*k, n.saturating_sub(per_creator)))
            .collect();
        let events = self
            .hg
            .events_unknown_to(&from, limit)
            .iter()
            .filter_map(|e| self.hg.event_info(&e.id()))
            .collect();
        let last = self.hg.stats().last_round.unwrap_or(0);
        let rounds = (last.saturating_sub(10)..=last)
            .map(|r| {
                let witnesses = self
                    .hg
                    .witnesses(r)
                    .into_iter()
                    .map(|w| (w, self.hg.event_info(&w).and_then(|i| i.famous)))
                    .collect();
                (r, witnesses)
            })
            .collect();
        let blocks = self
            .recent
            .iter()
            .rev()
            .take(10)
            .rev()
            .map(|r| r.block.clone())
            .collect();
        GraphSnapshot {
            events,
            rounds,
            blocks,
        }
    }

    fn status(&self) -> CoreStatus {
        let stats = self.hg.stats();
        let history = self.hg.peer_set_history();
        let round = stats.last_consensus_round.unwrap_or(0);
        CoreStatus {
            state: Some(self.state),
            num_peers: self.hg.peer_set(round).len(),
            last_peer_change: history.iter().map(|(r, _)| *r).filter(|r| *r > 0).max(),
            stats,
            transactions: self.transactions,
            blocks: self.block_count(),
            blocks_committed: self.blocks_committed,
            self_events: self.self_events,
            last_anchored: self.last_anchored,
        }
    }

    /// The latest anchored block whose window is still in memory.
    fn anchor(&self) -> Result<Anchor, String> {
        let index = self
            .last_anchored
            .ok_or("no block is anchored here yet (signatures still to come)")?;
        let block = self
            .block(index)
            .ok_or_else(|| format!("anchored block {index} is not in the store"))?;
        let frame = self
            .store
            .frame(index)
            .ok()
            .flatten()
            .ok_or_else(|| format!("the frame of block {index} is not in the store"))?;
        let window = self
            .hg
            .window(block.body.round_received)
            .ok_or_else(|| format!("the history after block {index} has left memory"))?;
        Ok(Anchor {
            block,
            frame,
            window,
        })
    }

    /// Replaces the hashgraph by one resumed at an anchored block: stores its window, the
    /// block, its frame, the validator sets and the app's position, puts back our own stored
    /// events the window lacks, and saves a checkpoint, so that a restart resumes from here.
    fn reset(&mut self, to: ResetTo) -> u64 {
        let ResetTo {
            mut hg,
            block,
            frame,
        } = to;
        let index = block.body.index;
        let ready = hg.take_ready();
        let stored = self
            .store
            .put_events(&ready.events)
            .and_then(|()| {
                hg.peer_set_history()
                    .iter()
                    .try_for_each(|(round, set)| self.store.put_peer_set(*round, set))
            })
            .and_then(|()| self.store.put_block(&block))
            .and_then(|()| self.store.put_frame(index, &frame))
            .and_then(|()| self.store.set_app_acknowledged(index));
        if let Err(e) = stored {
            fatal_store_error(&e, "the state fast-sync resumed at");
        }
        self.hg = hg;
        self.recent_ids.clear();
        // Our unordered events are now ordered in the snapshot or given back by
        // resume_own_events below; either way they no longer hold the pool's room.
        self.own_in_flight.clear();
        self.pool.forget_in_flight();
        self.resume_own_events(false);
        self.taken.clear();
        self.refusal_told = false;
        self.recent.clear();
        self.recent_bytes = 0;
        self.recent_base = index;
        let body_hash = block.body.hash();
        self.push_block(block, body_hash);
        self.blocks_committed = index + 1;
        self.acknowledged_at_start = Some(index);
        self.last_anchored = Some(index);
        self.checkpointed_round = self.hg.last_consensus_round().unwrap_or(0);
        self.checkpointed_events = self.hg.stats().events_inserted;
        self.floors.clear();
        self.stashed.retain(|i, _| *i > index);
        self.stashed_count = self.stashed.values().map(Vec::len).sum();
        self.our_signatures.retain(|s| s.index > index);
        if let Err(e) = save_checkpoint(&self.hg, self.transactions, self.store.as_ref()) {
            fatal_store_error(&e, "a checkpoint");
        }
        self.membership
            .send_replace(Arc::new(self.hg.peer_set_history()));
        self.settle();
        index
    }

    /// Puts the transactions of our own event, which will never be ordered, back in the pool
    /// (once per event, across restarts), and queues again a join we still carry or our own
    /// leave that it held.
    fn give_back(&mut self, event: &Event, why: &'static str) {
        if let Some((count, bytes)) = self.own_in_flight.remove(&event.id()) {
            self.pool.ordered(count, bytes);
        }
        let body = event.body();
        if body.transactions.is_empty() && body.internal_transactions.is_empty() {
            return;
        }
        match self.pool.resubmit(&event.id(), body.transactions.clone()) {
            Ok(true) => tracing::info!(
                event = ?event.id(),
                transactions = body.transactions.len(),
                "{why}: its transactions are submitted again"
            ),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot submit a lost event's transactions again")
            }
        }
        let me = self.key.public_key();
        for itx in &body.internal_transactions {
            let subject = itx.body.peer.pub_key;
            if (self.joins.carries(&subject) || subject == me) && !self.internal_queue.contains(itx)
            {
                self.internal_queue.push(itx.clone());
            }
        }
    }

    /// After a reset (or a restart): our stored events after the latest one the hashgraph
    /// holds go back in, in order. One that cannot (its parents lie below the fast-sync
    /// window) was not held by the serving node, which keeps every creator's latest event
    /// whatever its age; typically it was signed just before a crash and never sent. Creating
    /// our next event at its index would fork us if some node holds it, so none is created
    /// until every other validator has shown in a sync that it lacks it too (then it can never
    /// be ordered and is abandoned: its transactions go back to the pool), or one shows that
    /// it holds it (then we fast-sync again, from a window that has it). After
    /// [`UNPLACED_GRACE`] without every answer, it is abandoned anyway: only a node that
    /// received it and has been silent since could then see us fork. With `abandon_now` (a
    /// restart's replay refused it: it is invalid to every node) it goes at once.
    fn resume_own_events(&mut self, abandon_now: bool) {
        self.unplaced = None;
        let me = self.key.public_key();
        let stored = match self.store.self_head() {
            Ok(Some((index, _))) => index,
            Ok(None) => return,
            Err(e) => fatal_store_error(&e, "our own events"),
        };
        let held = self
            .hg
            .head(&me)
            .and_then(|h| self.hg.event(&h).map(Event::index));
        let first = held.map_or(0, |i| i + 1);
        for i in first..=stored {
            let event = match self.store.self_event(i) {
                Ok(Some(event)) => event,
                Ok(None) => return,
                Err(e) => fatal_store_error(&e, "our own events"),
            };
            let body = event.body();
            let placeable = [body.self_parent, body.other_parent]
                .into_iter()
                .flatten()
                .all(|parent| self.hg.event(&parent).is_some());
            let inserted = placeable
                && matches!(
                    self.hg.insert_verified(VerifiedEvent::assume_verified(event.clone())),
                    Ok(outcome) if outcome.missing_parents.is_empty()
                );
            if !inserted {
                if abandon_now {
                    self.abandon_own_events(i, stored);
                } else {
                    tracing::info!(
                        first = i,
                        last = stored,
                        "our latest own events are not in the fast-sync window: creating none \
                         until the other validators show whether they hold them"
                    );
                    self.unplaced = Some(Unplaced {
                        first: i,
                        last: stored,
                        lacking: Vec::new(),
                        since: std::time::Instant::now(),
                        held_elsewhere: false,
                    });
                }
                return;
            }
        }
    }

    /// While our own events are unplaced, counts `peer`'s answer (it holds `ours_held` of our
    /// events) and abandons them once every other validator lacks them or the grace is over.
    /// `None` when event creation may go on.
    fn check_unplaced(
        &mut self,
        peer: Option<PublicKey>,
        ours_held: Option<u64>,
    ) -> Option<Creation> {
        let unplaced = self.unplaced.as_mut()?;
        if unplaced.held_elsewhere {
            // Until the next fast-sync resets us from a window that has them.
            return Some(Creation::Nothing);
        }
        if let (Some(peer), Some(held)) = (peer, ours_held) {
            // A peer that could not show them once is not asked again.
            if held > unplaced.first && !unplaced.lacking.contains(&peer) {
                // Only a word so far: a Byzantine peer saying this after every fast-sync
                // would keep us fast-syncing for good. It must show the event.
                return Some(match self.store.self_event(unplaced.first) {
                    Ok(Some(event)) => Creation::ShowOurs(event.id()),
                    Ok(None) => Creation::Nothing,
                    Err(e) => fatal_store_error(&e, "our own events"),
                });
            }
            unplaced.lacks(peer);
        }
        self.abandon_unplaced_when_due()
    }

    /// The end of [`Creation::ShowOurs`]: `peer` showed the first of our unplaced events, and
    /// we fast-sync again from a window that has it; or it did not, and counts as lacking it.
    fn unplaced_shown(&mut self, peer: Peer, shown: bool) -> Creation {
        let Some(unplaced) = self.unplaced.as_mut() else {
            return Creation::Nothing;
        };
        if shown {
            tracing::info!(
                first = unplaced.first,
                peer = %peer.moniker,
                "a peer holds our own events the fast-sync window lacked: fast-syncing again"
            );
            unplaced.held_elsewhere = true;
            return Creation::FastSyncAgain;
        }
        tracing::warn!(
            first = unplaced.first,
            peer = %peer.moniker,
            "a validator said it holds our latest own events but did not show them when asked: \
             it counts as lacking them"
        );
        unplaced.lacks(peer.pub_key);
        self.abandon_unplaced_when_due()
            .unwrap_or(Creation::Nothing)
    }

    /// Abandons our unplaced events once every other validator showed it lacks them, or the
    /// grace is over; `None` when event creation may go on.
    fn abandon_unplaced_when_due(&mut self) -> Option<Creation> {
        let unplaced = self.unplaced.as_mut()?;
        let me = self.key.public_key();
        let history = self.hg.peer_set_history();
        let silent: Vec<String> = membership::latest(&history)
            .peers()
            .iter()
            .filter(|p| p.pub_key != me && !unplaced.lacking.contains(&p.pub_key))
            .map(|p| p.moniker.clone())
            .collect();
        if !silent.is_empty() && unplaced.since.elapsed() < UNPLACED_GRACE {
            return Some(Creation::Nothing);
        }
        if !silent.is_empty() {
            tracing::warn!(
                ?silent,
                "validators did not show within the grace whether they hold our latest own \
                 events; abandoning them anyway (one that holds them will see us fork)"
            );
        }
        let (first, last) = (unplaced.first, unplaced.last);
        self.unplaced = None;
        self.abandon_own_events(first, last);
        None
    }

    /// Abandons our stored events `first..=last`, which no node can accept (see
    /// [`Self::resume_own_events`]): gives their transactions back, then forgets them.
    fn abandon_own_events(&mut self, first: u64, last: u64) {
        tracing::warn!(
            first,
            last,
            "our latest own events are held by no node and can never be ordered: they are \
             abandoned, their transactions submitted again"
        );
        for i in first..=last {
            match self.store.self_event(i) {
                Ok(Some(event)) => self.give_back(&event, "our event was abandoned"),
                Ok(None) => {}
                Err(e) => fatal_store_error(&e, "our own events"),
            }
        }
        if let Err(e) = self.store.abandon_self_events(first) {
            fatal_store_error(&e, "our own events");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashgraph::{BlockBody, Peer};

    #[tokio::test]
    async fn signatures_are_checked_until_the_block_is_anchored_and_on_reading_after() {
        let keys: Vec<SecretKey> = (0..4u8).map(|i| SecretKey::from_seed(&[i; 8])).collect();
        let set = PeerSet::new(
            keys.iter()
                .enumerate()
                .map(|(i, k)| Peer::new(k.public_key(), format!("127.0.0.1:{}", 1000 + i), "v"))
                .collect(),
        )
        .unwrap();
        let mut block = Block::new(BlockBody {
            index: 3,
            round_received: 0,
            timestamp: 1,
            prev_hash: Hash::ZERO,
            frame_hash: Hash::ZERO,
            peers_hash: set.hash(),
            transactions: vec![b"tx".to_vec()],
            internal_transactions: Vec::new(),
        });
        block.state_hash = b"state".to_vec();
        let body_hash = block.body.hash();
        let unsigned = block.clone();
        let valid = |i: usize| unsigned.clone().sign_with_body_hash(&keys[i], &body_hash);
        let forged = valid(0);
        let ours = Signer {
            key: &keys[0],
            body_hash,
        };
        ours.sign(&mut block);
        // One of four signatures: not anchored, so a bad one is refused...
        let key = |i: usize| keys[i].public_key();
        assert!(!add_signature_to(&mut block, &set, &ours, key(1), forged));
        assert!(!block.signatures.contains_key(&key(1)));
        // ...and a good one taken, which anchors the block (2 of 4).
        assert!(add_signature_to(&mut block, &set, &ours, key(1), valid(1)));
        assert!(is_anchored(&set, &block));
        // Anchored: the rest are kept unchecked, once per signer.
        assert!(add_signature_to(&mut block, &set, &ours, key(2), forged));
        assert!(add_signature_to(&mut block, &set, &ours, key(3), valid(3)));
        assert!(!add_signature_to(&mut block, &set, &ours, key(3), valid(3)));
        // Read for someone, the block shows only the signatures that check.
        let block = without_bad_signatures(vec![block]).await.remove(0);
        let signers: Vec<PublicKey> = block.signatures.keys().copied().collect();
        let mut expected = vec![key(0), key(1), key(3)];
        expected.sort();
        assert_eq!(signers, expected);
        assert!(is_anchored(&set, &block));
    }
}
