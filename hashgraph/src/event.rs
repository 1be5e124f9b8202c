//! Events: the signed units of the hashgraph, and their one canonical binary encoding.
//!
//! The encoding is postcard over the structs below, in field order. Decoding is bounded by
//! [`MAX_EVENT_BYTES`] and rejects any input whose re-encoding differs from the bytes received,
//! so every event has exactly one byte form and therefore one id.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha3::{Digest, Sha3_256};

use crate::crypto::{Hash, PublicKey, SecretKey, Signature};
use crate::peers::Peer;

/// Upper bound on an encoded event; decoding refuses anything larger before parsing it.
pub const MAX_EVENT_BYTES: usize = 8 << 20;

/// Errors from decoding or checking a single event, before it meets the DAG.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    /// The encoding is larger than the limit.
    #[error("event of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The bytes do not decode as an event.
    #[error("malformed event encoding: {0}")]
    Malformed(String),
    /// The bytes decode, but are not the canonical encoding of what they decode to.
    #[error("non-canonical event encoding")]
    NonCanonical,
    /// The signature does not verify against the creator's key.
    #[error("bad signature on event {id:?}")]
    BadSignature {
        /// Id of the event.
        id: Hash,
    },
    /// Index 0 with a self-parent, or a later index without one.
    #[error("event {id:?}: index {index} does not match its self-parent")]
    BadSelfParent {
        /// Id of the event.
        id: Hash,
        /// Its index.
        index: u64,
    },
    /// A membership change the event carries is not signed by its subject peer.
    #[error("event {id:?}: internal transaction {position} is not signed by its subject peer")]
    BadInternalTransaction {
        /// Id of the event.
        id: Hash,
        /// Position of the change among the event's internal transactions.
        position: usize,
    },
}

/// What a membership change does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InternalTransactionKind {
    /// PEER_ADD (Babble type 0).
    PeerAdd,
    /// PEER_REMOVE (Babble type 1).
    PeerRemove,
}

/// The signed part of a membership change.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InternalTransactionBody {
    /// Add or remove.
    pub kind: InternalTransactionKind,
    /// The peer that joins or leaves; it signs the change itself.
    pub peer: Peer,
}

/// A membership change riding in an event, signed by the subject peer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InternalTransaction {
    /// What changes.
    pub body: InternalTransactionBody,
    /// The subject peer's signature over [`InternalTransaction::body_hash`].
    pub signature: Signature,
}

impl InternalTransaction {
    /// Builds and signs a change with the subject peer's own key.
    pub fn new(kind: InternalTransactionKind, peer: Peer, key: &SecretKey) -> InternalTransaction {
        let body = InternalTransactionBody { kind, peer };
        let signature = key.sign(&hash_encoded(&body));
        InternalTransaction { body, signature }
    }

    /// Hash of the canonical encoding of the body.
    pub fn body_hash(&self) -> Hash {
        hash_encoded(&self.body)
    }

    /// Whether the subject peer really signed this change.
    pub fn verify(&self) -> bool {
        self.body
            .peer
            .pub_key
            .verify(&self.body_hash(), &self.signature)
    }
}

/// A validator's signature over a block, carried in one of its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlockSignature {
    /// Index of the signed block.
    pub index: u64,
    /// Signature over the block's signing digest, by the event's creator.
    pub signature: Signature,
}

/// The signed content of an event.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EventBody {
    /// The creating validator.
    pub creator: PublicKey,
    /// Position in the creator's own sequence: 0, 1, 2, …
    pub index: u64,
    /// The creator's previous event; `None` exactly when `index` is 0.
    pub self_parent: Option<Hash>,
    /// An event of another validator, learnt in the sync that led to this event.
    pub other_parent: Option<Hash>,
    /// The creator's clock when it made the event, in nanoseconds since the Unix epoch.
    pub timestamp: i64,
    /// Application transactions, opaque bytes, in submission order.
    #[serde(with = "byte_lists")]
    pub transactions: Vec<Vec<u8>>,
    /// Membership changes.
    pub internal_transactions: Vec<InternalTransaction>,
    /// The creator's signatures over committed blocks.
    pub block_signatures: Vec<BlockSignature>,
}

impl EventBody {
    /// Whether the event carries anything to order: transactions, internal transactions or
    /// block signatures. While such events are undetermined the network has work.
    pub fn has_payload(&self) -> bool {
        !self.transactions.is_empty()
            || !self.internal_transactions.is_empty()
            || !self.block_signatures.is_empty()
    }

    /// The event id: SHA3-256 of the canonical encoding of the body.
    pub fn id(&self) -> Hash {
        hash_encoded(self)
    }

    /// Signs the body, producing an event.
    pub fn sign(self, key: &SecretKey) -> Event {
        let id = self.id();
        let signature = key.sign(&id);
        Event {
            inner: Arc::new(EventInner {
                body: self,
                signature,
                id,
            }),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct EventInner {
    body: EventBody,
    signature: Signature,
    id: Hash,
}

/// A signed event. Cheap to clone (shared), with its id computed once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    inner: Arc<EventInner>,
}

#[derive(Serialize)]
struct WireEventRef<'a> {
    body: &'a EventBody,
    signature: &'a Signature,
}

#[derive(Deserialize)]
struct WireEvent {
    body: EventBody,
    signature: Signature,
}

impl Event {
    /// Builds an event from a body and a signature received from elsewhere (not yet verified).
    pub fn from_parts(body: EventBody, signature: Signature) -> Event {
        let id = body.id();
        Event {
            inner: Arc::new(EventInner {
                body,
                signature,
                id,
            }),
        }
    }

    /// The signed content.
    pub fn body(&self) -> &EventBody {
        &self.inner.body
    }

    /// The creator's signature over the id.
    pub fn signature(&self) -> &Signature {
        &self.inner.signature
    }

    /// The event id (hash of the body).
    pub fn id(&self) -> Hash {
        self.inner.id
    }

    /// The creator's key.
    pub fn creator(&self) -> &PublicKey {
        &self.inner.body.creator
    }

    /// The creator's sequence number.
    pub fn index(&self) -> u64 {
        self.inner.body.index
    }

    /// The canonical encoding of the signed event (body, then signature).
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_stdvec(&WireEventRef {
            body: &self.inner.body,
            signature: &self.inner.signature,
        })
        .expect("encoding into a Vec cannot fail")
    }

    /// Decodes a signed event, refusing oversized, malformed and non-canonical input.
    /// The signature is not checked here: see [`Event::verify`]. The creator's key comes from
    /// the process's cache of parsed keys (see [`PublicKey`]'s `Deserialize`): parsing a
    /// compressed key costs about a seventh of a signature check.
    pub fn from_bytes(bytes: &[u8]) -> Result<Event, EventError> {
        if bytes.len() > MAX_EVENT_BYTES {
            return Err(EventError::TooLarge {
                size: bytes.len(),
                limit: MAX_EVENT_BYTES,
            });
        }
        let wire: WireEvent =
            postcard::from_bytes(bytes).map_err(|e| EventError::Malformed(e.to_string()))?;
        let event = Event::from_parts(wire.body, wire.signature);
        if event.to_bytes() != bytes {
            return Err(EventError::NonCanonical);
        }
        Ok(event)
    }

    /// Checks what can be checked on the event alone: the signature against the creator's key,
    /// and that index 0 and only index 0 has no self-parent. Pure and thread-safe, so hosts run
    /// it in parallel before handing the result to the single-threaded core.
    pub fn verify(self) -> Result<VerifiedEvent, EventError> {
        let body = self.body();
        if (body.index == 0) != body.self_parent.is_none() {
            return Err(EventError::BadSelfParent {
                id: self.id(),
                index: body.index,
            });
        }
        if !body.creator.verify(&self.id(), self.signature()) {
            return Err(EventError::BadSignature { id: self.id() });
        }
        // A change of the validator set needs its subject's consent, whoever carries it.
        if let Some(position) = body.internal_transactions.iter().position(|t| !t.verify()) {
            return Err(EventError::BadInternalTransaction {
                id: self.id(),
                position,
            });
        }
        Ok(VerifiedEvent(self))
    }

    /// The encoded size, for payload limits.
    pub fn encoded_len(&self) -> usize {
        postcard::experimental::serialized_size(&WireEventRef {
            body: &self.inner.body,
            signature: &self.inner.signature,
        })
        .expect("sizing cannot fail")
    }
}

/// An event whose signature and self-parent shape have been checked by [`Event::verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedEvent(Event);

impl VerifiedEvent {
    /// The event.
    pub fn event(&self) -> &Event {
        &self.0
    }

    /// Unwraps the event.
    pub fn into_event(self) -> Event {
        self.0
    }

    /// Skips verification. Only for events this process signed itself or already verified
    /// (replayed from its own store).
    pub fn assume_verified(event: Event) -> VerifiedEvent {
        VerifiedEvent(event)
    }
}

/// SHA3-256 of the canonical encoding of any value, fed to the hash as it is encoded (a
/// block body holds every transaction of its round: encoding it into a buffer first cost as
/// much again as hashing it).
pub(crate) fn hash_encoded<T: Serialize>(value: &T) -> Hash {
    postcard::serialize_with_flavor(value, HashFlavor(Sha3_256::new()))
        .expect("hashing an encoding cannot fail")
}

/// A postcard output that hashes instead of storing.
struct HashFlavor(Sha3_256);

impl postcard::ser_flavors::Flavor for HashFlavor {
    type Output = Hash;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.update(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.update([data]);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Hash> {
        Ok(Hash(self.0.finalize().into()))
    }
}

/// Serde for lists of byte strings (transactions) as lists of byte strings rather than lists
/// of lists of numbers: in postcard both are a length then the bytes, so the encoding and every
/// hash stay the same, but the bytes are copied at once instead of one `u8` at a time (the
/// element-wise form was the largest cost of encoding events and blocks).
pub(crate) mod byte_lists {
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_bytes::{ByteBuf, Bytes};

    /// Writes each element as a byte string.
    pub fn serialize<S: Serializer>(list: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(|bytes| Bytes::new(bytes)))
    }

    /// Reads a list written by [`serialize`] (or, in self-describing formats, a list of lists
    /// of numbers).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let list = Vec::<ByteBuf>::deserialize(d)?;
        Ok(list.into_iter().map(ByteBuf::into_vec).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(index: u64, parent: Option<Hash>) -> EventBody {
        EventBody {
            creator: SecretKey::from_seed(b"0").public_key(),
            index,
            self_parent: parent,
            other_parent: None,
            timestamp: 1_700_000_000_000_000_000,
            transactions: vec![b"hello".to_vec()],
            internal_transactions: vec![],
            block_signatures: vec![],
        }
    }

    #[test]
    fn encoding_round_trips_and_verifies() {
        let key = SecretKey::from_seed(b"0");
        let event = sample(0, None).sign(&key);
        let decoded = Event::from_bytes(&event.to_bytes()).unwrap();
        assert_eq!(decoded, event);
        assert_eq!(decoded.encoded_len(), event.to_bytes().len());
        assert!(decoded.verify().is_ok());
    }

    #[test]
    fn tampered_or_trailing_bytes_are_rejected() {
        let key = SecretKey::from_seed(b"0");
        let bytes = sample(0, None).sign(&key).to_bytes();
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(Event::from_bytes(&trailing), Err(EventError::NonCanonical));
        // Flip a byte of the transaction: it still decodes, but the signature no longer holds.
        let mut tampered = bytes.clone();
        let pos = tampered.windows(5).position(|w| w == b"hello").unwrap();
        tampered[pos] = b'j';
        let event = Event::from_bytes(&tampered).unwrap();
        assert!(matches!(
            event.verify(),
            Err(EventError::BadSignature { .. })
        ));
        assert!(matches!(
            Event::from_bytes(&bytes[..bytes.len() - 3]),
            Err(EventError::Malformed(_))
        ));
    }

    #[test]
    fn overlong_varint_is_non_canonical() {
        let key = SecretKey::from_seed(b"0");
        let bytes = sample(5, Some(Hash::ZERO)).sign(&key).to_bytes();
        // Body starts with the creator (length 33 + 33 bytes), then the index varint (5).
        assert_eq!(bytes[0], 33);
        assert_eq!(bytes[34], 5);
        let mut overlong = bytes[..34].to_vec();
        overlong.extend_from_slice(&[0x85, 0x00]);
        overlong.extend_from_slice(&bytes[35..]);
        assert!(Event::from_bytes(&overlong).is_err());
    }

    #[test]
    fn self_parent_shape_is_checked() {
        let key = SecretKey::from_seed(b"0");
        assert!(matches!(
            sample(1, None).sign(&key).verify(),
            Err(EventError::BadSelfParent { .. })
        ));
        assert!(matches!(
            sample(0, Some(Hash::ZERO)).sign(&key).verify(),
            Err(EventError::BadSelfParent { .. })
        ));
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let big = vec![0u8; MAX_EVENT_BYTES + 1];
        assert!(matches!(
            Event::from_bytes(&big),
            Err(EventError::TooLarge { .. })
        ));
    }

    #[test]
    fn internal_transaction_signature_binds_the_subject() {
        let key = SecretKey::from_seed(b"joiner");
        let peer = Peer::new(key.public_key(), "127.0.0.1:1337", "joiner");
        let itx = InternalTransaction::new(InternalTransactionKind::PeerAdd, peer.clone(), &key);
        assert!(itx.verify());
        let mut forged = itx.clone();
        forged.body.kind = InternalTransactionKind::PeerRemove;
        assert!(!forged.verify());

        // An event carrying a forged change is refused as a whole.
        let creator = SecretKey::from_seed(b"carrier");
        let mut body = sample(0, None);
        body.creator = creator.public_key();
        body.internal_transactions = vec![itx, forged];
        assert!(matches!(
            body.sign(&creator).verify(),
            Err(EventError::BadInternalTransaction { position: 1, .. })
        ));
    }

    /// The byte-string form must not change a single encoded byte: event ids and block hashes
    /// already given out are hashes of the element-wise form.
    #[test]
    fn byte_lists_encode_exactly_as_lists_of_numbers() {
        #[derive(Serialize)]
        struct ElementWise {
            list: Vec<Vec<u8>>,
        }
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct ByteStrings {
            #[serde(with = "byte_lists")]
            list: Vec<Vec<u8>>,
        }
        let cases = [
            vec![],
            vec![vec![]],
            vec![b"hello".to_vec(), vec![0xff; 300], vec![0; 128]],
        ];
        for list in cases {
            let old = postcard::to_stdvec(&ElementWise { list: list.clone() }).unwrap();
            let new = ByteStrings { list };
            assert_eq!(postcard::to_stdvec(&new).unwrap(), old);
            assert_eq!(postcard::from_bytes::<ByteStrings>(&old).unwrap(), new);
            assert_eq!(hash_encoded(&new), Hash::digest(&old));
            // Self-describing formats (tools print blocks as JSON) keep lists of numbers.
            let json = serde_json::to_string(&new).unwrap();
            assert_eq!(
                json,
                serde_json::to_string(&ElementWise {
                    list: new.list.clone()
                })
                .unwrap()
            );
            assert_eq!(serde_json::from_str::<ByteStrings>(&json).unwrap(), new);
        }
    }

    #[test]
    fn an_event_id_is_the_hash_of_its_encoded_body() {
        let body = sample(3, Some(Hash([7; 32])));
        assert_eq!(
            body.id(),
            Hash::digest(&postcard::to_stdvec(&body).unwrap())
        );
    }
}
