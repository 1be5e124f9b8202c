//! Errors of the hashgraph core.

use crate::crypto::{Hash, PublicKey};
use crate::event::EventError;

/// Why an event was not inserted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InsertError {
    /// The event is malformed or badly signed.
    #[error(transparent)]
    Event(#[from] EventError),
    /// The creator is in no validator set this node knows.
    #[error("event {id:?}: creator {creator:?} is not a known peer")]
    UnknownCreator {
        /// Id of the event.
        id: Hash,
        /// Its creator.
        creator: PublicKey,
    },
    /// The self-parent is by another creator or its index is not the event's index − 1.
    #[error("event {id:?}: index {index} does not follow its self-parent")]
    BadSelfParent {
        /// Id of the event.
        id: Hash,
        /// The event's index.
        index: u64,
    },
    /// The other-parent was made by the event's own creator.
    #[error("event {id:?}: other-parent is by the same creator")]
    OtherParentBySelf {
        /// Id of the event.
        id: Hash,
    },
    /// The payload is larger than [`crate::Config::max_event_bytes`].
    #[error("event {id:?}: {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Id of the event.
        id: Hash,
        /// Encoded size.
        size: usize,
        /// Limit in force.
        limit: usize,
    },
    /// Too many events already wait for missing parents.
    #[error("event {id:?}: the pool of events waiting for parents is full ({limit})")]
    PendingFull {
        /// Id of the event.
        id: Hash,
        /// Capacity of the pool.
        limit: usize,
    },
    /// The other-parent is more than [`crate::Config::max_parent_round_gap`] rounds older than
    /// the self-parent. Honest creators never build on such a stale tip, and refusing it is a
    /// decision every node makes alike (it depends on the two parents only), so no honest event
    /// can come to depend on history some nodes have already evicted.
    #[error(
        "event {id:?}: its other-parent is in round {other_round}, more than {gap} rounds \
         before its self-parent's round {self_round}"
    )]
    OtherParentTooOld {
        /// Id of the event.
        id: Hash,
        /// Round of the other-parent.
        other_round: u64,
        /// Round of the self-parent.
        self_round: u64,
        /// The gap allowed.
        gap: u64,
    },
    /// A parent belongs to history this node has evicted; the sender should fast-sync us or be
    /// fast-synced.
    #[error("event {id:?}: its parent {parent:?} is older than the retained history")]
    TooOld {
        /// Id of the event.
        id: Hash,
        /// The parent that is no longer held or whose round was evicted; the zero hash for an
        /// event without parents, which would belong to an evicted round 0.
        parent: Hash,
    },
}

/// Why a call other than insertion failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HashgraphError {
    /// A validator set can only be registered for a round the DAG has not reached yet.
    #[error("round {round} already exists; a peer-set change must start after round {last}")]
    RoundAlreadyStarted {
        /// The round asked for.
        round: u64,
        /// The highest round already started.
        last: u64,
    },
    /// The other-parent asked for is not in the DAG.
    #[error("unknown other-parent {0:?}")]
    UnknownOtherParent(Hash),
    /// A checkpoint given to [`crate::Hashgraph::restore`] cannot be used.
    #[error("the checkpoint cannot be restored: {0}")]
    BadCheckpoint(String),
    /// An anchored block, its frame and window given to [`crate::Hashgraph::from_anchor`] do
    /// not fit together.
    #[error("the fast-sync answer is inconsistent: {0}")]
    BadAnchor(String),
    /// Receipts were given for a block consensus is not waiting on.
    #[error("no receipts are awaited for block {block_index} (awaited: {awaited:?})")]
    NotAwaitingReceipts {
        /// The block the receipts were for.
        block_index: u64,
        /// The block whose receipts are awaited, if any.
        awaited: Option<u64>,
    },
    /// Receipts whose count differs from the block's internal transactions.
    #[error("block {block_index} has {expected} internal transactions, got {got} receipts")]
    ReceiptCount {
        /// The block.
        block_index: u64,
        /// Its internal transactions.
        expected: usize,
        /// Receipts given.
        got: usize,
    },
    /// Creating a self-event failed insertion (e.g. payload too large).
    #[error(transparent)]
    Insert(#[from] InsertError),
}
