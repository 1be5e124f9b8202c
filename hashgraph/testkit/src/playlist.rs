//! Play lists: a DAG written as JSON (the format of `vectors/README.md`), played into a real
//! [`Hashgraph`] with real signatures, and the consensus it produced as JSON.
//!
//! Each creator id gets a deterministic key ([`creator_key`]), so a play list always gives the
//! same event ids, and every event is signed and verified on insertion like a gossiped one.

use std::collections::{BTreeMap, HashMap, HashSet};

use hashgraph::{
    Block, Config, EventBody, Hash, Hashgraph, InsertError, OrderedEvent, Peer, PeerSet, PublicKey,
    SecretKey,
};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

/// Largest play list accepted, in bytes.
pub const MAX_PLAYLIST_BYTES: usize = 64 << 20;
/// Most events a play list may hold.
pub const MAX_EVENTS: usize = 1_000_000;
/// Most distinct creator ids.
pub const MAX_CREATORS: usize = 1_000;

/// Why a play list could not be played. Names the event at fault where there is one.
#[derive(Debug, thiserror::Error)]
pub enum PlayListError {
    /// Larger than [`MAX_PLAYLIST_BYTES`].
    #[error("the play list is {size} bytes; the limit is {MAX_PLAYLIST_BYTES}")]
    TooLarge {
        /// Its size.
        size: usize,
    },
    /// Not JSON of the play-list shape.
    #[error("not a valid play list: {0}")]
    Json(#[from] serde_json::Error),
    /// The participants section is unusable.
    #[error("participants: {0}")]
    Participants(String),
    /// An event is malformed or was refused by the hashgraph.
    #[error("event {name:?} (number {position} in the list): {reason}")]
    Event {
        /// The event's name.
        name: String,
        /// Its 0-based position in `events`.
        position: usize,
        /// What is wrong.
        reason: String,
    },
}

/// A play list as read from JSON. Unknown keys (such as the vectors' `expected`) are ignored.
#[derive(Clone, Debug, Deserialize)]
pub struct PlayList {
    /// Who creates events.
    pub participants: Participants,
    /// Events in insertion order.
    pub events: Vec<PlayEvent>,
}

/// The `participants` section.
#[derive(Clone, Debug, Deserialize)]
pub struct Participants {
    /// Creator ids in peer-set order.
    #[serde(default)]
    pub ids: Option<Vec<u64>>,
    /// Without `ids`: ids `0..count`.
    #[serde(default)]
    pub count: Option<u64>,
    /// Validator sets from a round on: `{"<round>": [ids]}`.
    #[serde(default)]
    pub peer_sets_by_round: Option<BTreeMap<String, Vec<u64>>>,
}

/// One event of a play list.
#[derive(Clone, Debug, Deserialize)]
pub struct PlayEvent {
    /// Unique name, used by parents and in the output.
    pub name: String,
    /// Creator id.
    pub creator: u64,
    /// Position in the creator's sequence.
    pub index: u64,
    /// Name of the self-parent.
    #[serde(default)]
    pub self_parent: Option<String>,
    /// Name of the other parent.
    #[serde(default)]
    pub other_parent: Option<String>,
    /// Transactions, as text.
    #[serde(default)]
    pub transactions: Vec<String>,
    /// Creator timestamp; the event's Lamport timestamp when absent.
    #[serde(default)]
    pub timestamp: Option<i64>,
}

/// The deterministic key of creator `id`.
pub fn creator_key(id: u64) -> SecretKey {
    SecretKey::from_seed(format!("hearsay dag creator {id}").as_bytes())
}

impl PlayList {
    /// Parses a play list, bounded in size.
    pub fn from_json(text: &[u8]) -> Result<PlayList, PlayListError> {
        if text.len() > MAX_PLAYLIST_BYTES {
            return Err(PlayListError::TooLarge { size: text.len() });
        }
        let list: PlayList = serde_json::from_slice(text)?;
        if list.events.len() > MAX_EVENTS {
            return Err(PlayListError::Participants(format!(
                "{} events; the limit is {MAX_EVENTS}",
                list.events.len()
            )));
        }
        Ok(list)
    }

    /// The creator ids in peer-set order.
    fn creator_ids(&self) -> Result<Vec<u64>, PlayListError> {
        let ids = match (&self.participants.ids, self.participants.count) {
            (Some(ids), _) => ids.clone(),
            (None, Some(count)) if count as usize <= MAX_CREATORS => (0..count).collect(),
            (None, Some(count)) => {
                return Err(PlayListError::Participants(format!(
                    "count {count} exceeds the limit of {MAX_CREATORS}"
                )))
            }
            (None, None) => {
                return Err(PlayListError::Participants(
                    "give either `ids` or `count`".into(),
                ))
            }
        };
        if ids.is_empty() || ids.len() > MAX_CREATORS {
            return Err(PlayListError::Participants(format!(
                "{} creators; between 1 and {MAX_CREATORS} are needed",
                ids.len()
            )));
        }
        let mut seen = HashSet::new();
        if let Some(dup) = ids.iter().find(|id| !seen.insert(**id)) {
            return Err(PlayListError::Participants(format!(
                "creator id {dup} is listed twice"
            )));
        }
        Ok(ids)
    }

    /// Validator sets by first round, starting with round 0.
    fn peer_sets(&self, ids: &[u64]) -> Result<Vec<(u64, Vec<u64>)>, PlayListError> {
        let Some(by_round) = &self.participants.peer_sets_by_round else {
            return Ok(vec![(0, ids.to_vec())]);
        };
        let mut sets = Vec::new();
        for (round, members) in by_round {
            let round: u64 = round.parse().map_err(|_| {
                PlayListError::Participants(format!(
                    "peer_sets_by_round: {round:?} is not a round number"
                ))
            })?;
            if let Some(unknown) = members.iter().find(|m| !ids.contains(m)) {
                return Err(PlayListError::Participants(format!(
                    "peer_sets_by_round[{round}]: creator {unknown} is not among the participants"
                )));
            }
            sets.push((round, members.clone()));
        }
        sets.sort_by_key(|(r, _)| *r);
        if sets.first().map(|(r, _)| *r) != Some(0) {
            return Err(PlayListError::Participants(
                "peer_sets_by_round must give the set of round 0".into(),
            ));
        }
        Ok(sets)
    }

    /// Inserts every event into a fresh hashgraph and runs consensus.
    pub fn play(&self) -> Result<Played, PlayListError> {
        let ids = self.creator_ids()?;
        let keys: HashMap<u64, SecretKey> = ids.iter().map(|&id| (id, creator_key(id))).collect();
        let peer_set = |members: &[u64]| -> Result<PeerSet, PlayListError> {
            PeerSet::new(
                members
                    .iter()
                    .map(|id| {
                        Peer::new(
                            keys[id].public_key(),
                            format!("creator-{id}"),
                            id.to_string(),
                        )
                    })
                    .collect(),
            )
            .map_err(|e| PlayListError::Participants(e.to_string()))
        };
        let sets = self.peer_sets(&ids)?;
        let mut hg = Hashgraph::new(Config::default(), peer_set(&sets[0].1)?);
        for (round, members) in &sets[1..] {
            hg.set_peer_set(*round, peer_set(members)?)
                .map_err(|e| PlayListError::Participants(e.to_string()))?;
        }

        let mut played = Played {
            hg,
            names: Vec::with_capacity(self.events.len()),
            by_name: HashMap::with_capacity(self.events.len()),
            ordered: Vec::new(),
            blocks: Vec::new(),
        };
        let mut lamport: HashMap<Hash, i64> = HashMap::new();
        for (position, e) in self.events.iter().enumerate() {
            let fail = |reason: String| PlayListError::Event {
                name: e.name.clone(),
                position,
                reason,
            };
            if played.by_name.contains_key(&e.name) {
                return Err(fail("the name is used by an earlier event".into()));
            }
            let key = keys
                .get(&e.creator)
                .ok_or_else(|| fail(format!("creator {} is not a participant", e.creator)))?;
            let parent = |name: &Option<String>| -> Result<Option<Hash>, PlayListError> {
                name.as_ref()
                    .map(|n| {
                        played.by_name.get(n).copied().ok_or_else(|| {
                            fail(format!(
                                "unknown parent {n:?} (parents must come earlier in the list)"
                            ))
                        })
                    })
                    .transpose()
            };
            let self_parent = parent(&e.self_parent)?;
            let other_parent = parent(&e.other_parent)?;
            let own_lamport = [self_parent, other_parent]
                .iter()
                .flatten()
                .map(|p| lamport[p] + 1)
                .max()
                .unwrap_or(0);
            let event = EventBody {
                creator: key.public_key(),
                index: e.index,
                self_parent,
                other_parent,
                timestamp: e.timestamp.unwrap_or(own_lamport),
                transactions: e
                    .transactions
                    .iter()
                    .map(|t| t.as_bytes().to_vec())
                    .collect(),
                internal_transactions: Vec::new(),
                block_signatures: Vec::new(),
            }
            .sign(key);
            let id = event.id();
            let outcome = played
                .hg
                .insert_event(event)
                .map_err(|err: InsertError| fail(err.to_string()))?;
            if outcome.duplicates > 0 {
                return Err(fail("identical to an earlier event".into()));
            }
            lamport.insert(id, own_lamport);
            played.by_name.insert(e.name.clone(), id);
            played.names.push((id, e.name.clone()));
        }
        played.hg.run_consensus();
        let ready = played.hg.take_ready();
        played.ordered = ready.ordered;
        played.blocks = ready.blocks;
        Ok(played)
    }
}

/// A played DAG: the hashgraph and the consensus it produced.
pub struct Played {
    /// The hashgraph holding every event.
    pub hg: Hashgraph,
    /// (id, name) in insertion order.
    names: Vec<(Hash, String)>,
    by_name: HashMap<String, Hash>,
    /// Events in consensus order.
    pub ordered: Vec<OrderedEvent>,
    /// Blocks produced.
    pub blocks: Vec<Block>,
}

impl Played {
    /// The id of the event called `name`.
    pub fn id(&self, name: &str) -> Option<Hash> {
        self.by_name.get(name).copied()
    }

    /// The name of the event `id`.
    pub fn name(&self, id: &Hash) -> Option<&str> {
        self.names
            .iter()
            .find(|(known, _)| known == id)
            .map(|(_, n)| n.as_str())
    }

    /// The public key of creator `id`.
    pub fn creator(id: u64) -> PublicKey {
        creator_key(id).public_key()
    }

    /// The consensus as the JSON of `vectors/README.md`.
    pub fn output(&self) -> DagOutput {
        let names: HashMap<Hash, &str> =
            self.names.iter().map(|(id, n)| (*id, n.as_str())).collect();
        let events = self
            .names
            .iter()
            .filter_map(|(id, name)| {
                let info = self.hg.event_info(id)?;
                Some((
                    name.clone(),
                    EventOutput {
                        round: info.round,
                        witness: info.witness,
                        famous: info.famous,
                        round_received: info.round_received,
                        consensus_timestamp: info.consensus_timestamp,
                        lamport_timestamp: info.lamport,
                    },
                ))
            })
            .collect();
        DagOutput {
            events: OrderedMap(events),
            consensus_order: self
                .ordered
                .iter()
                .map(|o| {
                    names
                        .get(&o.id)
                        .map_or_else(|| o.id.to_hex(), |n| n.to_string())
                })
                .collect(),
            last_consensus_round: self.hg.last_consensus_round(),
            blocks: self
                .blocks
                .iter()
                .map(|b| BlockOutput {
                    index: b.body.index,
                    round_received: b.body.round_received,
                    transactions: b
                        .body
                        .transactions
                        .iter()
                        .map(|t| String::from_utf8_lossy(t).into_owned())
                        .collect(),
                })
                .collect(),
        }
    }
}

/// The output of `hearsay dag`.
#[derive(Clone, Debug, Serialize)]
pub struct DagOutput {
    /// Per event, in play-list order.
    pub events: OrderedMap<EventOutput>,
    /// Event names in consensus order.
    pub consensus_order: Vec<String>,
    /// The last round received.
    pub last_consensus_round: Option<u64>,
    /// The blocks.
    pub blocks: Vec<BlockOutput>,
}

/// Consensus facts of one event (`null` = undecided).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EventOutput {
    /// Round created.
    pub round: u64,
    /// Whether it is a witness.
    pub witness: bool,
    /// Fame, for a decided witness.
    pub famous: Option<bool>,
    /// Round received, once ordered.
    pub round_received: Option<u64>,
    /// Consensus timestamp, once ordered.
    pub consensus_timestamp: Option<i64>,
    /// Lamport timestamp.
    pub lamport_timestamp: u64,
}

/// One block of the output.
#[derive(Clone, Debug, Serialize)]
pub struct BlockOutput {
    /// Block index.
    pub index: u64,
    /// The round whose events it holds.
    pub round_received: u64,
    /// Its transactions, as text.
    pub transactions: Vec<String>,
}

/// A JSON object whose keys keep their insertion order.
#[derive(Clone, Debug)]
pub struct OrderedMap<V>(pub Vec<(String, V)>);

impl<V> OrderedMap<V> {
    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

impl<V: Serialize> Serialize for OrderedMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}
