//! Babble's JSON shapes for the socket proxy, as plain data.
//!
//! Keys are spelled and ordered as Babble's Go structs marshal them, and byte fields are
//! standard base64 with padding (Go's `[]byte` encoding). On input a `null` list or byte field
//! (Go's nil slice) reads as empty, and unknown keys are ignored. This crate knows nothing of
//! the hashgraph: the daemon converts its own blocks to and from these types.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A block as the app receives it in `State.CommitBlock`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Block {
    /// The signed content.
    #[serde(rename = "Body")]
    pub body: BlockBody,
    /// Validator public key (`0X04…`) → signature, sorted by key as Go marshals maps.
    #[serde(rename = "Signatures", default, deserialize_with = "null_as_default")]
    pub signatures: BTreeMap<String, String>,
}

/// The content of a [`Block`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BlockBody {
    /// Position in the chain, from 0.
    #[serde(rename = "Index")]
    pub index: u64,
    /// The consensus round whose events the block holds.
    #[serde(rename = "RoundReceived")]
    pub round_received: u64,
    /// Consensus timestamp (Unix seconds in Babble).
    #[serde(rename = "Timestamp")]
    pub timestamp: i64,
    /// The app's state hash after the previous block.
    #[serde(rename = "StateHash", with = "base64_bytes", default)]
    pub state_hash: Vec<u8>,
    /// Hash of the frame the block was built from.
    #[serde(rename = "FrameHash", with = "base64_bytes", default)]
    pub frame_hash: Vec<u8>,
    /// Hash of the validator set.
    #[serde(rename = "PeersHash", with = "base64_bytes", default)]
    pub peers_hash: Vec<u8>,
    /// The app's transactions, in consensus order.
    #[serde(rename = "Transactions", with = "base64_list", default)]
    pub transactions: Vec<Vec<u8>>,
    /// Membership changes, in consensus order.
    #[serde(
        rename = "InternalTransactions",
        default,
        deserialize_with = "null_as_default"
    )]
    pub internal_transactions: Vec<InternalTransaction>,
    /// The app's verdicts on the internal transactions, once known.
    #[serde(
        rename = "InternalTransactionReceipts",
        default,
        deserialize_with = "null_as_default"
    )]
    pub internal_transaction_receipts: Vec<InternalTransactionReceipt>,
    /// Hearsay's addition: the hash of the previous block. Absent from Babble's blocks, and
    /// not written when `None`.
    #[serde(
        rename = "PrevHash",
        default,
        skip_serializing_if = "Option::is_none",
        with = "base64_opt"
    )]
    pub prev_hash: Option<Vec<u8>>,
}

/// What an [`InternalTransaction`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InternalTransactionType {
    /// `PEER_ADD` (0): add the peer to the validator set.
    PeerAdd,
    /// `PEER_REMOVE` (1): remove the peer from the validator set.
    PeerRemove,
}

impl InternalTransactionType {
    /// The wire number: 0 or 1.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::PeerAdd => 0,
            Self::PeerRemove => 1,
        }
    }

    /// The type for a wire number, if it is one.
    pub fn from_u8(n: u8) -> Option<Self> {
        match n {
            0 => Some(Self::PeerAdd),
            1 => Some(Self::PeerRemove),
            _ => None,
        }
    }
}

impl fmt::Display for InternalTransactionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::PeerAdd => "PEER_ADD",
            Self::PeerRemove => "PEER_REMOVE",
        })
    }
}

impl Serialize for InternalTransactionType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.as_u8())
    }
}

impl<'de> Deserialize<'de> for InternalTransactionType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u8::deserialize(d)?;
        Self::from_u8(n).ok_or_else(|| {
            serde::de::Error::custom(format!("unknown internal transaction type {n}"))
        })
    }
}

/// A validator as Babble's `peers.json` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Peer {
    /// Gossip address (or public-key hex with WebRTC).
    #[serde(rename = "NetAddr")]
    pub net_addr: String,
    /// `0X04…`, upper-case hex of the uncompressed public key.
    #[serde(rename = "PubKeyHex")]
    pub pub_key_hex: String,
    /// Friendly name.
    #[serde(rename = "Moniker")]
    pub moniker: String,
}

/// A membership change, signed by the subject peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternalTransaction {
    /// The signed content.
    #[serde(rename = "Body")]
    pub body: InternalTransactionBody,
    /// The subject peer's signature, in Babble's text encoding.
    #[serde(rename = "Signature", default)]
    pub signature: String,
}

/// The content of an [`InternalTransaction`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternalTransactionBody {
    /// Add or remove.
    #[serde(rename = "Type")]
    pub kind: InternalTransactionType,
    /// The peer concerned.
    #[serde(rename = "Peer")]
    pub peer: Peer,
}

/// The app's verdict on one internal transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternalTransactionReceipt {
    /// The transaction judged.
    #[serde(rename = "InternalTransaction")]
    pub internal_transaction: InternalTransaction,
    /// Whether the app accepts it.
    #[serde(rename = "Accepted")]
    pub accepted: bool,
}

/// The app's answer to `State.CommitBlock`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CommitResponse {
    /// The app's state hash after the block.
    #[serde(rename = "StateHash", with = "base64_bytes", default)]
    pub state_hash: Vec<u8>,
    /// One receipt per internal transaction of the block, in order.
    #[serde(
        rename = "InternalTransactionReceipts",
        default,
        deserialize_with = "null_as_default"
    )]
    pub internal_transaction_receipts: Vec<InternalTransactionReceipt>,
}

impl CommitResponse {
    /// An answer with `state_hash` that accepts every internal transaction of `block`.
    pub fn accept_all(state_hash: Vec<u8>, block: &Block) -> Self {
        Self {
            state_hash,
            internal_transaction_receipts: block
                .body
                .internal_transactions
                .iter()
                .map(|itx| InternalTransactionReceipt {
                    internal_transaction: itx.clone(),
                    accepted: true,
                })
                .collect(),
        }
    }
}

/// The node's state, as `State.OnStateChanged` reports it (a number on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum NodeState {
    /// 0: in consensus.
    Babbling = 0,
    /// 1: fetching what it missed.
    CatchingUp = 1,
    /// 2: asking to join the validator set.
    Joining = 2,
    /// 3: asking to leave the validator set.
    Leaving = 3,
    /// 4: stopping.
    Shutdown = 4,
    /// 5: creating no events (maintenance mode or too many undetermined events).
    Suspended = 5,
}

impl NodeState {
    /// Every state, in wire order.
    pub const ALL: [NodeState; 6] = [
        Self::Babbling,
        Self::CatchingUp,
        Self::Joining,
        Self::Leaving,
        Self::Shutdown,
        Self::Suspended,
    ];

    /// The wire number, 0 to 5.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The state for a wire number, if it is one.
    pub fn from_u8(n: u8) -> Option<Self> {
        Self::ALL.get(usize::from(n)).copied()
    }

    /// Babble's name for the state, as `/stats` shows it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Babbling => "Babbling",
            Self::CatchingUp => "CatchingUp",
            Self::Joining => "Joining",
            Self::Leaving => "Leaving",
            Self::Shutdown => "Shutdown",
            Self::Suspended => "Suspended",
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for NodeState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.as_u8())
    }
}

impl<'de> Deserialize<'de> for NodeState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u8::deserialize(d)?;
        Self::from_u8(n).ok_or_else(|| serde::de::Error::custom(format!("unknown node state {n}")))
    }
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Go's `[]byte` JSON encoding: standard base64 with padding; `null` reads as empty.
pub mod base64_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `bytes` as a base64 string.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    /// Reads a base64 string (or `null`, as empty).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(Vec::new()),
            Some(text) => STANDARD
                .decode(text.as_bytes())
                .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}"))),
        }
    }
}

mod base64_opt {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => super::base64_bytes::serialize(bytes, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => STANDARD
                .decode(text.as_bytes())
                .map(Some)
                .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}"))),
        }
    }
}

mod base64_list {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(list: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(list.len()))?;
        for bytes in list {
            seq.serialize_element(&STANDARD.encode(bytes))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let texts = Option::<Vec<Option<String>>>::deserialize(d)?.unwrap_or_default();
        texts
            .into_iter()
            .map(|text| {
                STANDARD
                    .decode(text.unwrap_or_default().as_bytes())
                    .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by hand from Babble's `hashgraph.Block` JSON, keys in Go's order.
    const BLOCK_JSON: &str = concat!(
        r#"{"Body":{"Index":3,"RoundReceived":4,"Timestamp":1795336550,"#,
        r#""StateHash":"AQID","FrameHash":"BAUG","PeersHash":"BwgJ","#,
        r#""Transactions":["aGVsbG8=","d29ybGQ="],"#,
        r#""InternalTransactions":[{"Body":{"Type":0,"Peer":{"NetAddr":"127.0.0.1:1337","#,
        r#""PubKeyHex":"0X04AB","Moniker":"node5"}},"Signature":"1a2b|3c4d"}],"#,
        r#""InternalTransactionReceipts":[]},"#,
        r#""Signatures":{"0X04AA":"sig|a","0X04BB":"sig|b"}}"#
    );

    fn fixture() -> Block {
        Block {
            body: BlockBody {
                index: 3,
                round_received: 4,
                timestamp: 1_795_336_550,
                state_hash: vec![1, 2, 3],
                frame_hash: vec![4, 5, 6],
                peers_hash: vec![7, 8, 9],
                transactions: vec![b"hello".to_vec(), b"world".to_vec()],
                internal_transactions: vec![InternalTransaction {
                    body: InternalTransactionBody {
                        kind: InternalTransactionType::PeerAdd,
                        peer: Peer {
                            net_addr: "127.0.0.1:1337".into(),
                            pub_key_hex: "0X04AB".into(),
                            moniker: "node5".into(),
                        },
                    },
                    signature: "1a2b|3c4d".into(),
                }],
                internal_transaction_receipts: vec![],
                prev_hash: None,
            },
            signatures: [
                ("0X04BB".to_string(), "sig|b".to_string()),
                ("0X04AA".to_string(), "sig|a".to_string()),
            ]
            .into_iter()
            .collect(),
        }
    }

    #[test]
    fn block_serializes_in_babble_key_order() {
        assert_eq!(serde_json::to_string(&fixture()).unwrap(), BLOCK_JSON);
        let parsed: Block = serde_json::from_str(BLOCK_JSON).unwrap();
        assert_eq!(parsed, fixture());
    }

    #[test]
    fn prev_hash_comes_last_in_body_and_only_when_set() {
        let mut block = fixture();
        block.body.prev_hash = Some(vec![0xff]);
        let text = serde_json::to_string(&block).unwrap();
        assert!(text.contains(r#""InternalTransactionReceipts":[],"PrevHash":"/w=="},"#));
        assert_eq!(serde_json::from_str::<Block>(&text).unwrap(), block);
    }

    #[test]
    fn go_nil_slices_and_unknown_keys_are_accepted() {
        let go = r#"{"Body":{"Index":0,"RoundReceived":1,"Timestamp":2,"StateHash":null,
            "FrameHash":"","PeersHash":null,"Transactions":null,"InternalTransactions":null,
            "InternalTransactionReceipts":null,"Future":1},"Signatures":null}"#;
        let block: Block = serde_json::from_str(go).unwrap();
        assert_eq!(block.body.round_received, 1);
        assert!(block.body.transactions.is_empty() && block.signatures.is_empty());
        assert_eq!(block.body.prev_hash, None);
    }

    #[test]
    fn bad_base64_and_unknown_types_are_errors() {
        let bad = BLOCK_JSON.replace("aGVsbG8=", "not base64!");
        assert!(serde_json::from_str::<Block>(&bad).is_err());
        let bad = BLOCK_JSON.replace(r#""Type":0"#, r#""Type":7"#);
        assert!(serde_json::from_str::<Block>(&bad).is_err());
    }

    #[test]
    fn commit_response_matches_babble() {
        let block = fixture();
        let resp = CommitResponse::accept_all(vec![0xAB; 2], &block);
        assert_eq!(
            serde_json::to_string(&resp).unwrap(),
            concat!(
                r#"{"StateHash":"q6s=","InternalTransactionReceipts":[{"InternalTransaction":"#,
                r#"{"Body":{"Type":0,"Peer":{"NetAddr":"127.0.0.1:1337","PubKeyHex":"0X04AB","#,
                r#""Moniker":"node5"}},"Signature":"1a2b|3c4d"},"Accepted":true}]}"#
            )
        );
    }

    #[test]
    fn node_states_have_babble_numbers_and_names() {
        let names: Vec<String> = NodeState::ALL.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            names,
            [
                "Babbling",
                "CatchingUp",
                "Joining",
                "Leaving",
                "Shutdown",
                "Suspended"
            ]
        );
        for (n, state) in NodeState::ALL.iter().enumerate() {
            assert_eq!(serde_json::to_string(state).unwrap(), n.to_string());
            assert_eq!(NodeState::from_u8(n as u8), Some(*state));
        }
        assert_eq!(NodeState::from_u8(6), None);
        assert!(serde_json::from_str::<NodeState>("9").is_err());
    }
}
