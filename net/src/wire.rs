//! The gossip wire protocol: message types, their encoding and framing, and the limits every
//! decoder enforces.
//!
//! # Encoding
//!
//! A message is encoded with [`postcard`] and sent as one *frame*: a big-endian `u32` body
//! length followed by the body. Decoding is bounded: a frame longer than the configured limit
//! (at most [`MAX_FRAME_BYTES`]) is refused before its body is read, every list inside a
//! message is bounded ([`MAX_EVENTS`], [`MAX_FETCH_IDS`], [`MAX_KNOWN`]) while it is decoded
//! (so a tiny frame cannot announce a huge allocation), and a body with bytes left over after
//! the message is refused. Every failure is a [`WireError`]; no input makes a decoder panic.
//!
//! # Compatibility
//!
//! Postcard tags an enum variant by its *index*, so [`Request`] and [`Response`] may only grow
//! by **appending** variants (a join request, fast-sync, …); never reorder, remove or change
//! the fields of an existing variant. A node that receives a variant it does not know gets a
//! decoding error and answers [`Response::Error`], so an old node refuses a new request cleanly.
//!
//! Events travel as opaque byte strings (each one an event in hashgraph's canonical encoding);
//! this crate never decodes them, and knows no consensus rule.

use hashgraph::{Block, Frame, Hash, InternalTransaction, Peer, PeerSet, PublicKey, WindowEvent};
use serde::de::{DeserializeOwned, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::marker::PhantomData;

/// The largest frame body any decoder accepts: 32 MiB. A transport may be configured lower.
pub const MAX_FRAME_BYTES: usize = 32 << 20;
/// The most events one message may carry.
pub const MAX_EVENTS: usize = 100_000;
/// The most event ids one [`Request::FetchEvents`] may ask for.
pub const MAX_FETCH_IDS: usize = 10_000;
/// The most entries of a known-map (`creator → events known`) in one message.
pub const MAX_KNOWN: usize = 10_000;
/// The most validators one [`JoinStatus::Accepted`] may list.
pub const MAX_PEERS: usize = 10_000;
/// The most validator sets one [`FastSyncOffer`] may carry.
pub const MAX_PEER_SETS: usize = 10_000;
/// The length of the frame header (a big-endian `u32` body length).
pub const FRAME_HEADER_BYTES: usize = 4;

/// A creator's public key and the number of its events a node knows (Babble's "known map":
/// the next index the node lacks).
pub type KnownEntry = (PublicKey, u64);

/// A pull request: "here is what I know; send me what I lack".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// The requester's known-map: for each creator, how many of its events it holds.
    #[serde(deserialize_with = "bounded_known")]
    pub known: Vec<KnownEntry>,
    /// The most events the responder should return.
    pub limit: u32,
}

/// The answer to a [`SyncRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// Encoded events the requester lacks, in topological order, at most `limit` of them.
    #[serde(serialize_with = "ser_events", deserialize_with = "bounded_events")]
    pub events: Vec<Vec<u8>>,
    /// The responder's own known-map, so the requester can push back what the responder lacks.
    #[serde(deserialize_with = "bounded_known")]
    pub known: Vec<KnownEntry>,
    /// True when the responder holds more events for the requester than it sent.
    pub more: bool,
}

/// A request from one node to another. Append new variants only (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Pull: ask for the events the requester lacks.
    Sync(SyncRequest),
    /// Push: encoded events (topological order) the receiver probably lacks.
    EagerSync(
        #[serde(serialize_with = "ser_events", deserialize_with = "bounded_events")] Vec<Vec<u8>>,
    ),
    /// Ask for events by id (typically missing parents).
    FetchEvents(#[serde(deserialize_with = "bounded_ids")] Vec<Hash>),
    /// A node outside the validator set asks to join: its PEER_ADD, signed by itself (the key
    /// the connection's handshake proved). The receiver puts it in its next event and answers
    /// [`Response::Join`] with where it stands; the joiner asks again until it is decided.
    Join(InternalTransaction),
    /// Fast-sync: ask for the latest anchored block the receiver can resume a node at,
    /// answered with [`Response::FastSync`].
    FastSync,
}

/// A response to a [`Request`]. Append new variants only (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The answer to [`Request::Sync`].
    Sync(SyncResponse),
    /// The answer to [`Request::EagerSync`]: how many of the pushed events were accepted.
    EagerSync {
        /// The number of pushed events the receiver inserted.
        accepted: u32,
    },
    /// The answer to [`Request::FetchEvents`]: the encoded events found (unknown ids are
    /// skipped).
    Events(
        #[serde(serialize_with = "ser_events", deserialize_with = "bounded_events")] Vec<Vec<u8>>,
    ),
    /// The node refuses the request (malformed, unknown, overloaded…); the text says why.
    Error(String),
    /// The answer to a [`Request::Sync`] from too far behind: the node has pruned events the
    /// requester lacks, so the requester cannot catch up from it and must fast-sync.
    Pruned {
        /// A creator whose early events are gone.
        creator: PublicKey,
        /// Its events below this index are pruned.
        below: u64,
    },
    /// The answer to [`Request::Join`].
    Join(JoinStatus),
    /// The answer to [`Request::FastSync`]. The event bodies of the window are fetched
    /// separately ([`Request::FetchEvents`]).
    FastSync(Box<FastSyncOffer>),
}

/// An anchored block and what a node needs to resume at it (see `hashgraph::Window`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FastSyncOffer {
    /// The block, with the validators' signatures that anchor it.
    pub block: Block,
    /// Its frame.
    pub frame: Frame,
    /// The first round whose events are all in the window.
    pub window_start: u64,
    /// The validator sets known at the block's round, with their first rounds.
    #[serde(deserialize_with = "bounded_peer_sets")]
    pub peer_sets: Vec<(u64, PeerSet)>,
    /// The window's events as the serving node placed them.
    #[serde(deserialize_with = "bounded_window")]
    pub window: Vec<WindowEvent>,
    /// The app's snapshot as of the block (`State.GetSnapshot`).
    pub snapshot: Vec<u8>,
}

/// Where a join request stands, as the validator asked sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinStatus {
    /// The PEER_ADD waits to be ordered and answered by the app: ask again later.
    Pending,
    /// The app accepted it: the joiner is a validator from `round` on.
    Accepted {
        /// The first round whose validator set holds the joiner.
        round: u64,
        /// The validator set from that round.
        #[serde(deserialize_with = "bounded_peers")]
        peers: Vec<Peer>,
    },
    /// The app refused it.
    Refused,
}

/// A message that can travel in a frame: [`Request`] or [`Response`].
pub trait Message: Serialize + DeserializeOwned + sealed::Sealed {}
impl Message for Request {}
impl Message for Response {}

mod sealed {
    /// Keeps [`super::Message`] implemented by this crate's messages only.
    pub trait Sealed {}
    impl Sealed for super::Request {}
    impl Sealed for super::Response {}
    impl Sealed for crate::quic::handshake::Hello {}
}
impl Message for crate::quic::handshake::Hello {}

/// Why a frame or message could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The frame announces (or would need) a body longer than the limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The announced or needed body length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The buffer holds only part of a frame; `needed` more bytes are required.
    #[error("incomplete frame: {needed} more bytes needed")]
    Incomplete {
        /// How many more bytes the frame needs.
        needed: usize,
    },
    /// The body is not a valid message (bad tag, truncated field, invalid key, a list over its
    /// bound, …).
    #[error("malformed message: {0}")]
    Malformed(#[from] postcard::Error),
    /// The body holds bytes after a complete message.
    #[error("{count} trailing bytes after the message")]
    TrailingBytes {
        /// How many bytes were left over.
        count: usize,
    },
}

/// Encodes `msg` as a frame body (no length header).
pub fn encode_body<M: Message>(msg: &M) -> Result<Vec<u8>, WireError> {
    Ok(postcard::to_stdvec(msg)?)
}

/// Encodes `msg` as a complete frame: a big-endian `u32` length then the body. Fails if the
/// body would exceed [`MAX_FRAME_BYTES`].
pub fn encode_frame<M: Message>(msg: &M) -> Result<Vec<u8>, WireError> {
    let mut out = postcard::to_extend(msg, vec![0u8; FRAME_HEADER_BYTES])?;
    let len = out.len() - FRAME_HEADER_BYTES;
    if len > MAX_FRAME_BYTES {
        return Err(WireError::FrameTooLarge {
            len,
            max: MAX_FRAME_BYTES,
        });
    }
    let header = u32::try_from(len).map_err(|_| WireError::FrameTooLarge {
        len,
        max: MAX_FRAME_BYTES,
    })?;
    out[..FRAME_HEADER_BYTES].copy_from_slice(&header.to_be_bytes());
    Ok(out)
}

/// Decodes one message from a complete frame body; the whole body must be consumed.
pub fn decode_body<M: Message>(body: &[u8]) -> Result<M, WireError> {
    if body.len() > MAX_FRAME_BYTES {
        return Err(WireError::FrameTooLarge {
            len: body.len(),
            max: MAX_FRAME_BYTES,
        });
    }
    let (msg, rest) = postcard::take_from_bytes(body)?;
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes { count: rest.len() });
    }
    Ok(msg)
}

/// Reads a frame header and checks the announced length against `max` (itself capped at
/// [`MAX_FRAME_BYTES`]). Returns the body length.
pub fn parse_header(header: [u8; FRAME_HEADER_BYTES], max: usize) -> Result<usize, WireError> {
    let max = max.min(MAX_FRAME_BYTES);
    // u32 always fits in usize on the platforms quinn supports; saturate rather than panic.
    let len = usize::try_from(u32::from_be_bytes(header)).unwrap_or(usize::MAX);
    if len > max {
        return Err(WireError::FrameTooLarge { len, max });
    }
    Ok(len)
}

/// Decodes the first frame of `buf` with a body limit of `max` bytes. Returns the message and
/// the number of bytes consumed (header included), or [`WireError::Incomplete`] if `buf` holds
/// only part of the frame.
pub fn decode_frame<M: Message>(buf: &[u8], max: usize) -> Result<(M, usize), WireError> {
    let Some((header, rest)) = buf.split_first_chunk::<FRAME_HEADER_BYTES>() else {
        return Err(WireError::Incomplete {
            needed: FRAME_HEADER_BYTES - buf.len(),
        });
    };
    let len = parse_header(*header, max)?;
    let Some(body) = rest.get(..len) else {
        return Err(WireError::Incomplete {
            needed: len - rest.len(),
        });
    };
    Ok((decode_body(body)?, FRAME_HEADER_BYTES + len))
}

// ---------------------------------------------------------------------------------------------
// Bounded sequences. serde's own `Vec` visitor trusts the announced length only cautiously, but
// would still decode millions of tiny elements from a large frame; these visitors stop at the
// bound, before allocating past it.

struct BoundedVec<T, const MAX: usize>(PhantomData<T>);

impl<'de, T: Deserialize<'de>, const MAX: usize> Visitor<'de> for BoundedVec<T, MAX> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a sequence of at most {MAX} elements")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let hint = seq.size_hint().unwrap_or(0);
        if hint > MAX {
            return Err(serde::de::Error::invalid_length(hint, &self));
        }
        // Never preallocate more than a small amount on the sender's word.
        let mut out = Vec::with_capacity(hint.min(1024));
        while let Some(item) = seq.next_element()? {
            if out.len() == MAX {
                return Err(serde::de::Error::invalid_length(MAX + 1, &self));
            }
            out.push(item);
        }
        Ok(out)
    }
}

fn bounded_known<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<KnownEntry>, D::Error> {
    d.deserialize_seq(BoundedVec::<KnownEntry, MAX_KNOWN>(PhantomData))
}

fn bounded_peers<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Peer>, D::Error> {
    d.deserialize_seq(BoundedVec::<Peer, MAX_PEERS>(PhantomData))
}

fn bounded_peer_sets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(u64, PeerSet)>, D::Error> {
    d.deserialize_seq(BoundedVec::<(u64, PeerSet), MAX_PEER_SETS>(PhantomData))
}

fn bounded_window<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<WindowEvent>, D::Error> {
    d.deserialize_seq(BoundedVec::<WindowEvent, MAX_EVENTS>(PhantomData))
}

fn bounded_ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Hash>, D::Error> {
    d.deserialize_seq(BoundedVec::<Hash, MAX_FETCH_IDS>(PhantomData))
}

fn bounded_events<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
    let events: Vec<EventBytes> =
        d.deserialize_seq(BoundedVec::<EventBytes, MAX_EVENTS>(PhantomData))?;
    Ok(events.into_iter().map(|e| e.0).collect())
}

/// Serializes each event as a byte string. In postcard this is the same bytes as a sequence of
/// `u8` (a varint length then the bytes), but written and read with one copy instead of one
/// call per byte.
fn ser_events<S: Serializer>(events: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(events.iter().map(|e| RawBytes(e)))
}

struct RawBytes<'a>(&'a [u8]);

impl Serialize for RawBytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

struct EventBytes(Vec<u8>);

impl<'de> Deserialize<'de> for EventBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an encoded event (bytes)")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Vec<u8>, A::Error> {
                BoundedVec::<u8, MAX_FRAME_BYTES>(PhantomData).visit_seq(seq)
            }
        }
        d.deserialize_bytes(BytesVisitor).map(EventBytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashgraph::SecretKey;

    fn key(seed: &str) -> PublicKey {
        SecretKey::from_seed(seed.as_bytes()).public_key()
    }

    #[test]
    fn event_bytes_encode_like_a_vec_of_u8() {
        // The custom (de)serializer must not change the wire format.
        let events = vec![vec![1u8, 2, 3], vec![], vec![0xff; 300]];
        let fast = encode_body(&Request::EagerSync(events.clone())).unwrap();
        #[derive(Serialize)]
        enum Plain {
            _Sync(()),
            EagerSync(Vec<Vec<u8>>),
        }
        let plain = postcard::to_stdvec(&Plain::EagerSync(events.clone())).unwrap();
        assert_eq!(fast, plain);
        assert_eq!(
            decode_body::<Request>(&plain).unwrap(),
            Request::EagerSync(events)
        );
    }

    #[test]
    fn frame_round_trip_and_incomplete() {
        let msg = Response::Sync(SyncResponse {
            events: vec![vec![7; 10]],
            known: vec![(key("a"), 3)],
            more: true,
        });
        let frame = encode_frame(&msg).unwrap();
        let (back, used) = decode_frame::<Response>(&frame, MAX_FRAME_BYTES).unwrap();
        assert_eq!(back, msg);
        assert_eq!(used, frame.len());
        for cut in 0..frame.len() {
            assert!(matches!(
                decode_frame::<Response>(&frame[..cut], MAX_FRAME_BYTES),
                Err(WireError::Incomplete { .. })
            ));
        }
    }

    #[test]
    fn oversized_header_is_refused_before_the_body() {
        let header = u32::MAX.to_be_bytes();
        assert!(matches!(
            decode_frame::<Request>(&header, MAX_FRAME_BYTES),
            Err(WireError::FrameTooLarge { .. })
        ));
        let frame = encode_frame(&Request::FetchEvents(vec![Hash([1; 32]); 4])).unwrap();
        assert!(matches!(
            decode_frame::<Request>(&frame, 16),
            Err(WireError::FrameTooLarge { len: 134, max: 16 })
        ));
    }

    #[test]
    fn counts_over_their_bound_are_refused() {
        // A fetch of MAX_FETCH_IDS + 1 ids.
        let ids = vec![Hash([0; 32]); MAX_FETCH_IDS + 1];
        let body = encode_body(&Request::FetchEvents(ids)).unwrap();
        assert!(matches!(
            decode_body::<Request>(&body),
            Err(WireError::Malformed(_))
        ));
        let ok = encode_body(&Request::FetchEvents(vec![Hash([0; 32]); MAX_FETCH_IDS])).unwrap();
        assert!(decode_body::<Request>(&ok).is_ok());

        // MAX_EVENTS + 1 empty events: a tiny frame announcing a large allocation.
        let body = encode_body(&Request::EagerSync(vec![Vec::new(); MAX_EVENTS + 1])).unwrap();
        assert!(body.len() < 200_000);
        assert!(matches!(
            decode_body::<Request>(&body),
            Err(WireError::Malformed(_))
        ));

        // A known-map of MAX_KNOWN + 1 entries.
        let known = vec![(key("k"), 1); MAX_KNOWN + 1];
        let body = encode_body(&Request::Sync(SyncRequest { known, limit: 1 })).unwrap();
        assert!(matches!(
            decode_body::<Request>(&body),
            Err(WireError::Malformed(_))
        ));

        // A huge announced length with no elements behind it.
        let body = [1u8, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(decode_body::<Request>(&body).is_err());
    }

    #[test]
    fn trailing_bytes_and_unknown_variants_are_refused() {
        let mut body = encode_body(&Response::EagerSync { accepted: 5 }).unwrap();
        body.push(0);
        assert!(matches!(
            decode_body::<Response>(&body),
            Err(WireError::TrailingBytes { count: 1 })
        ));
        assert!(matches!(
            decode_body::<Request>(&[200]),
            Err(WireError::Malformed(_))
        ));
        assert!(decode_body::<Request>(&[]).is_err());
    }

    #[test]
    fn variant_tags_are_pinned() {
        // Postcard tags variants by index: these bytes must never change (append only).
        assert_eq!(
            encode_body(&Request::Sync(SyncRequest {
                known: vec![],
                limit: 5
            }))
            .unwrap(),
            [0, 0, 5]
        );
        assert_eq!(
            encode_body(&Request::EagerSync(vec![vec![9]])).unwrap(),
            [1, 1, 1, 9]
        );
        assert_eq!(encode_body(&Request::FetchEvents(vec![])).unwrap(), [2, 0]);
        assert_eq!(
            encode_body(&Response::Sync(SyncResponse {
                events: vec![],
                known: vec![],
                more: true
            }))
            .unwrap(),
            [0, 0, 0, 1]
        );
        assert_eq!(
            encode_body(&Response::EagerSync { accepted: 300 }).unwrap(),
            [1, 0xac, 0x02]
        );
        assert_eq!(encode_body(&Response::Events(vec![])).unwrap(), [2, 0]);
        assert_eq!(
            encode_body(&Response::Error("no".into())).unwrap(),
            [3, 2, b'n', b'o']
        );
        let pruned = Response::Pruned {
            creator: hashgraph::SecretKey::from_seed(b"pruned").public_key(),
            below: 5,
        };
        let bytes = encode_body(&pruned).unwrap();
        assert_eq!((bytes[0], bytes[bytes.len() - 1]), (4, 5));
        assert!(matches!(
            decode_body::<Response>(&bytes),
            Ok(Response::Pruned { below: 5, .. })
        ));
        assert_eq!(
            encode_body(&Response::Join(JoinStatus::Pending)).unwrap(),
            [5, 0]
        );
        assert_eq!(
            encode_body(&Response::Join(JoinStatus::Refused)).unwrap(),
            [5, 2]
        );
        let join = Request::Join(join_request("j"));
        let bytes = encode_body(&join).unwrap();
        assert_eq!(bytes[0], 3);
        assert_eq!(decode_body::<Request>(&bytes).unwrap(), join);
        assert_eq!(encode_body(&Request::FastSync).unwrap(), [4]);
        let offer = Response::FastSync(Box::new(offer(1)));
        let bytes = encode_body(&offer).unwrap();
        assert_eq!(bytes[0], 6);
        assert_eq!(decode_body::<Response>(&bytes).unwrap(), offer);
    }

    fn offer(window_events: usize) -> FastSyncOffer {
        let peers = PeerSet::new(vec![Peer::new(key("a"), "127.0.0.1:3", "a")]).unwrap();
        let body = hashgraph::BlockBody {
            index: 3,
            round_received: 9,
            timestamp: 1,
            prev_hash: Hash([1; 32]),
            frame_hash: Hash([2; 32]),
            peers_hash: peers.hash(),
            transactions: vec![b"tx".to_vec()],
            internal_transactions: vec![],
        };
        FastSyncOffer {
            block: Block::new(body),
            frame: Frame {
                round: 9,
                peers: peers.clone(),
                roots: vec![],
                events: vec![],
            },
            window_start: 2,
            peer_sets: vec![(0, peers)],
            window: vec![
                WindowEvent {
                    id: Hash([4; 32]),
                    round: 8,
                    lamport: 30,
                    witness: true,
                    round_received: None,
                    consensus_timestamp: None,
                };
                window_events
            ],
            snapshot: vec![5; 10],
        }
    }

    #[test]
    fn fast_sync_offers_round_trip_and_their_windows_are_bounded() {
        let one = Response::FastSync(Box::new(offer(3)));
        assert_eq!(
            decode_body::<Response>(&encode_body(&one).unwrap()).unwrap(),
            one
        );
        let too_many = encode_body(&Response::FastSync(Box::new(offer(MAX_EVENTS + 1)))).unwrap();
        assert!(matches!(
            decode_body::<Response>(&too_many),
            Err(WireError::Malformed(_))
        ));
        let mut cut = encode_body(&one).unwrap();
        cut.truncate(cut.len() - 4);
        assert!(decode_body::<Response>(&cut).is_err());
    }

    fn join_request(seed: &str) -> InternalTransaction {
        let secret = SecretKey::from_seed(seed.as_bytes());
        let peer = Peer::new(secret.public_key(), "127.0.0.1:1", seed);
        InternalTransaction::new(hashgraph::InternalTransactionKind::PeerAdd, peer, &secret)
    }

    #[test]
    fn join_answers_round_trip_and_their_peer_lists_are_bounded() {
        let peers: Vec<Peer> = ["a", "b", "c"]
            .iter()
            .map(|s| Peer::new(key(s), "127.0.0.1:2", *s))
            .collect();
        let accepted = Response::Join(JoinStatus::Accepted { round: 17, peers });
        let body = encode_body(&accepted).unwrap();
        assert_eq!(decode_body::<Response>(&body).unwrap(), accepted);

        let one = Peer::new(key("x"), "", "");
        let too_many = Response::Join(JoinStatus::Accepted {
            round: 1,
            peers: vec![one; MAX_PEERS + 1],
        });
        let body = encode_body(&too_many).unwrap();
        assert!(matches!(
            decode_body::<Response>(&body),
            Err(WireError::Malformed(_))
        ));
        // A join whose strings announce more bytes than the body holds.
        let mut body = encode_body(&Request::Join(join_request("k"))).unwrap();
        body.truncate(body.len() - 3);
        assert!(decode_body::<Request>(&body).is_err());
    }
}
