//! Blocks (one per round received that carries transactions) and frames (the state a node
//! needs to continue the hashgraph from a block, hashed into it).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::crypto::{Hash, PublicKey, SecretKey, Signature};
use crate::event::{hash_encoded, InternalTransaction};
use crate::peers::PeerSet;

/// The part of a block that consensus alone determines; every honest node computes the same.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockBody {
    /// Dense from 0.
    pub index: u64,
    /// The round whose decision ordered these transactions.
    pub round_received: u64,
    /// Median creator timestamp of the round's unique famous witnesses, in nanoseconds.
    pub timestamp: i64,
    /// Hash of the previous block's body ([`Hash::ZERO`] for block 0): a hash-chained log.
    pub prev_hash: Hash,
    /// Hash of the frame of `round_received`.
    pub frame_hash: Hash,
    /// Hash of the validator set in force at `round_received`.
    pub peers_hash: Hash,
    /// Transactions in consensus order.
    #[serde(with = "crate::event::byte_lists")]
    pub transactions: Vec<Vec<u8>>,
    /// Membership changes in consensus order.
    pub internal_transactions: Vec<InternalTransaction>,
}

impl BlockBody {
    /// SHA3-256 of the canonical encoding; the next block's `prev_hash`.
    pub fn hash(&self) -> Hash {
        hash_encoded(self)
    }
}

/// The app's verdict on one internal transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternalTransactionReceipt {
    /// The change.
    pub internal_transaction: InternalTransaction,
    /// Whether the app accepted it.
    pub accepted: bool,
}

/// A block: the consensus body, then what the app and the validators add to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// The consensus part.
    pub body: BlockBody,
    /// The state hash the app returned after committing the block (empty until then).
    pub state_hash: Vec<u8>,
    /// The app's receipts for the internal transactions (empty until committed).
    pub receipts: Vec<InternalTransactionReceipt>,
    /// Validator signatures over [`Block::signing_digest`].
    pub signatures: BTreeMap<PublicKey, Signature>,
}

impl Block {
    /// A block with no app answer and no signatures yet.
    pub fn new(body: BlockBody) -> Block {
        Block {
            body,
            state_hash: Vec::new(),
            receipts: Vec::new(),
            signatures: BTreeMap::new(),
        }
    }

    /// What validators sign: the body hash bound to the app's state hash.
    pub fn signing_digest(&self) -> Hash {
        self.signing_digest_with_body_hash(&self.body.hash())
    }

    /// [`Block::signing_digest`] given the body's hash, which the caller computed once (the
    /// body holds every transaction of its round, so hashing it is the expensive part).
    pub fn signing_digest_with_body_hash(&self, body_hash: &Hash) -> Hash {
        Hash::digest_parts(&[&body_hash.0, &self.state_hash])
    }

    /// Signs the block with `key` and records the signature.
    pub fn sign(&mut self, key: &SecretKey) -> Signature {
        self.sign_with_body_hash(key, &self.body.hash())
    }

    /// [`Block::sign`] given the hash of the body, which must be `self.body.hash()`.
    pub fn sign_with_body_hash(&mut self, key: &SecretKey, body_hash: &Hash) -> Signature {
        let signature = key.sign(&self.signing_digest_with_body_hash(body_hash));
        self.signatures.insert(key.public_key(), signature);
        signature
    }

    /// Whether `signature` by `signer` is valid for this block.
    pub fn verify_signature(&self, signer: &PublicKey, signature: &Signature) -> bool {
        self.verify_signature_with_body_hash(&self.body.hash(), signer, signature)
    }

    /// [`Block::verify_signature`] given the hash of the body, which must be
    /// `self.body.hash()`.
    pub fn verify_signature_with_body_hash(
        &self,
        body_hash: &Hash,
        signer: &PublicKey,
        signature: &Signature,
    ) -> bool {
        signer.verify(&self.signing_digest_with_body_hash(body_hash), signature)
    }
}

/// A creator's last consensus event before a frame, enough to continue its sequence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    /// The creator.
    pub creator: PublicKey,
    /// Its last event ordered before the frame's round, if any.
    pub last_event: Option<Hash>,
    /// That event's index.
    pub index: u64,
    /// That event's round.
    pub round: u64,
    /// That event's Lamport timestamp.
    pub lamport: u64,
}

/// Everything a node needs to resume the hashgraph at a block without the history before it:
/// the validator set, each creator's last consensus event, and the events of the round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// The round received the frame belongs to.
    pub round: u64,
    /// The validator set in force at `round`.
    pub peers: PeerSet,
    /// Per member, its last consensus event before this round received.
    pub roots: Vec<Root>,
    /// The events received in `round`, in consensus order.
    pub events: Vec<FrameEvent>,
}

/// An event inside a frame: its id and the consensus facts a resuming node cannot recompute.
/// The bodies travel separately and are checked against the ids.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameEvent {
    /// The event id.
    pub id: Hash,
    /// Its round.
    pub round: u64,
    /// Its Lamport timestamp.
    pub lamport: u64,
    /// Whether it is a witness.
    pub witness: bool,
}

impl Frame {
    /// SHA3-256 of the canonical encoding; goes into the block.
    pub fn hash(&self) -> Hash {
        hash_encoded(self)
    }
}
