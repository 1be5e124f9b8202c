//! Validators and validator sets.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::crypto::{Hash, PublicKey};
use crate::event::hash_encoded;

/// A validator as Babble's `peers.json` describes it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Peer {
    /// Address other nodes dial (or the public-key hex with WebRTC).
    #[serde(rename = "NetAddr")]
    pub net_addr: String,
    /// The validator's key.
    #[serde(rename = "PubKeyHex")]
    pub pub_key: PublicKey,
    /// A friendly name.
    #[serde(rename = "Moniker")]
    pub moniker: String,
}

impl Peer {
    /// A peer with the given key, address and name.
    pub fn new(
        pub_key: PublicKey,
        net_addr: impl Into<String>,
        moniker: impl Into<String>,
    ) -> Peer {
        Peer {
            net_addr: net_addr.into(),
            pub_key,
            moniker: moniker.into(),
        }
    }

    /// Babble's numeric peer id.
    pub fn id(&self) -> u32 {
        self.pub_key.peer_id()
    }
}

/// Errors building a peer set.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeerSetError {
    /// A validator set needs at least one member.
    #[error("a peer set needs at least one peer")]
    Empty,
    /// The same key appears twice.
    #[error("peer {0} appears twice")]
    Duplicate(PublicKey),
}

/// An ordered validator set. The order is the one given (Babble keeps insertion order) and
/// fixes each member's slot in per-round tables.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Peer>", into = "Vec<Peer>")]
pub struct PeerSet {
    peers: Vec<Peer>,
    #[serde(skip)]
    slots: HashMap<PublicKey, usize>,
}

impl PeerSet {
    /// Builds a set; refuses an empty list and duplicate keys.
    pub fn new(peers: Vec<Peer>) -> Result<PeerSet, PeerSetError> {
        if peers.is_empty() {
            return Err(PeerSetError::Empty);
        }
        let mut slots = HashMap::with_capacity(peers.len());
        for (slot, peer) in peers.iter().enumerate() {
            if slots.insert(peer.pub_key, slot).is_some() {
                return Err(PeerSetError::Duplicate(peer.pub_key));
            }
        }
        Ok(PeerSet { peers, slots })
    }

    /// The members in order.
    pub fn peers(&self) -> &[Peer] {
        &self.peers
    }

    /// Number of members, n.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Always false: a set has at least one member.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// ⌊2n/3⌋ + 1: the number of members that makes a supermajority.
    pub fn supermajority(&self) -> usize {
        2 * self.peers.len() / 3 + 1
    }

    /// The member's position, if `key` is a member.
    pub fn slot(&self, key: &PublicKey) -> Option<usize> {
        self.slots.get(key).copied()
    }

    /// Whether `key` is a member.
    pub fn contains(&self, key: &PublicKey) -> bool {
        self.slots.contains_key(key)
    }

    /// SHA3-256 of the canonical encoding of the ordered member list; it goes into blocks.
    pub fn hash(&self) -> Hash {
        hash_encoded(&self.peers)
    }

    /// A copy with `peer` added at the end (no change if already present).
    pub fn with_peer(&self, peer: Peer) -> PeerSet {
        let mut peers = self.peers.clone();
        if !self.contains(&peer.pub_key) {
            peers.push(peer);
        }
        PeerSet::new(peers).expect("adding a new key keeps the set valid")
    }

    /// A copy without `key`; `None` if that would leave the set empty.
    pub fn without_peer(&self, key: &PublicKey) -> Option<PeerSet> {
        let peers: Vec<Peer> = self
            .peers
            .iter()
            .filter(|p| p.pub_key != *key)
            .cloned()
            .collect();
        PeerSet::new(peers).ok()
    }
}

impl TryFrom<Vec<Peer>> for PeerSet {
    type Error = PeerSetError;
    fn try_from(peers: Vec<Peer>) -> Result<PeerSet, PeerSetError> {
        PeerSet::new(peers)
    }
}

impl From<PeerSet> for Vec<Peer> {
    fn from(set: PeerSet) -> Vec<Peer> {
        set.peers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;

    fn peer(i: u8) -> Peer {
        Peer::new(
            SecretKey::from_seed(&[i]).public_key(),
            format!("127.0.0.1:{}", 1000 + u16::from(i)),
            format!("node{i}"),
        )
    }

    #[test]
    fn supermajority_is_two_thirds_plus_one() {
        let expect = [
            (1, 1),
            (2, 2),
            (3, 3),
            (4, 3),
            (5, 4),
            (6, 5),
            (7, 5),
            (10, 7),
            (64, 43),
        ];
        for (n, sm) in expect {
            let set = PeerSet::new((0..n).map(|i| peer(i as u8)).collect()).unwrap();
            assert_eq!(set.supermajority(), sm, "n = {n}");
        }
    }

    #[test]
    fn duplicates_and_empty_sets_are_refused() {
        assert_eq!(PeerSet::new(vec![]), Err(PeerSetError::Empty));
        assert!(matches!(
            PeerSet::new(vec![peer(1), peer(1)]),
            Err(PeerSetError::Duplicate(_))
        ));
    }

    #[test]
    fn babble_peers_json_parses_and_hash_depends_on_order() {
        let a = peer(1);
        let json = format!(
            r#"[{{"NetAddr":"127.0.0.1:1337","PubKeyHex":"{}","Moniker":"node1"}}]"#,
            a.pub_key.to_hex().to_lowercase()
        );
        let set: PeerSet = serde_json::from_str(&json).unwrap();
        assert_eq!(set.peers()[0].pub_key, a.pub_key);
        assert_eq!(set.peers()[0].moniker, "node1");
        let back = serde_json::to_string(&set).unwrap();
        assert!(back.starts_with(r#"[{"NetAddr":"127.0.0.1:1337","PubKeyHex":"0X04"#));
        let ab = PeerSet::new(vec![peer(1), peer(2)]).unwrap();
        let ba = PeerSet::new(vec![peer(2), peer(1)]).unwrap();
        assert_ne!(ab.hash(), ba.hash());
    }
}
