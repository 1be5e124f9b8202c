//! The Hearsay consensus core: signed events, a DAG with fork detection, virtual voting and
//! blocks, after the Swirlds hashgraph paper.
//!
//! Sans-IO and deterministic, in the manner of raft-rs: a [`Hashgraph`] is a plain state
//! machine. The host inserts events ([`Hashgraph::insert_event`]), creates its own
//! ([`Hashgraph::create_event`]), runs consensus ([`Hashgraph::run_consensus`]) and takes what
//! to do from [`Hashgraph::take_ready`]: events to persist and gossip, blocks to deliver, fork
//! evidence. Time is a parameter; nothing here reads clocks, touches files or sockets, or
//! draws randomness.

pub mod block;
pub mod crypto;
pub mod error;
pub mod event;
pub mod graph;
pub mod peers;

pub use block::{Block, BlockBody, Frame, FrameEvent, InternalTransactionReceipt, Root};
pub use crypto::{Hash, KeyError, PublicKey, SecretKey, Signature};
pub use error::{HashgraphError, InsertError};
pub use event::{
    BlockSignature, Event, EventBody, EventError, InternalTransaction, InternalTransactionBody,
    InternalTransactionKind, VerifiedEvent, MAX_EVENT_BYTES,
};
pub use graph::{
    Checkpoint, Config, EventInfo, ForkEvidence, Hashgraph, InsertOutcome, OrderedEvent,
    PeerSetChange, Ready, Stats, Window, WindowEvent, PEER_CHANGE_DELAY_ROUNDS,
};
pub use peers::{Peer, PeerSet, PeerSetError};
