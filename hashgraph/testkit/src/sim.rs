//! A deterministic, seeded network simulator for the hashgraph core.
//!
//! `n` validators each own a [`Hashgraph`] and gossip over a simulated network: a discrete-event
//! queue in virtual nanoseconds, with random delays, random loss and partitions that cut the
//! validators into two groups for a while and then heal. A validator's tick pulls from a random
//! peer: the request carries [`Hashgraph::known`], the response the encoded events the peer
//! lacks ([`Hashgraph::events_unknown_to`], [`Event::to_bytes`]). On arrival the events are
//! decoded and inserted one by one (errors are counted, never fatal), then the validator
//! creates an event on top of the sender's head carrying the transactions submitted to it since
//! its last event, runs consensus and keeps the blocks. Validators evict history
//! [`SimConfig::evict_lag`] rounds behind their last consensus round as they go.
//!
//! Missing parents are fetched by a later sync: the request also names (up to 64 of) the
//! parents the requester's held events wait for ([`hashgraph::InsertOutcome::missing_parents`]),
//! and the responder sends those it holds with some of their self-ancestors. Sync by `known()`
//! alone cannot deliver a fork branch below the requester's count of the forker's events, so a
//! forker would otherwise stall honest validators ([`SimConfig::fetch_missing`] turns this
//! off). A partition heals early once one side is [`SimConfig::evict_lag`]/2 rounds ahead,
//! since rejoining after more than the retained history needs fast-sync, which the core leaves
//! to the host.
//!
//! Up to ⌊(n−1)/3⌋ validators are Byzantine, each with a [`Behaviour`] drawn from the seed:
//! forking, withholding, invalid signatures or garbage. After the load phase the network heals,
//! the Byzantine validators fall silent and the honest ones keep gossiping without new load
//! until they agree (or a step budget runs out). Then the run is checked:
//! - honest validators' block sequences are prefixes of one another (bodies and hash chain);
//! - every transaction submitted to an honest validator is in every honest validator's blocks
//!   exactly once;
//! - every honest validator made at least one block.
//!
//! Everything derives from [`SimConfig::seed`] through one [`ChaCha8Rng`]: there are no clocks,
//! threads or global randomness, and the simulator never iterates a hash map where the order
//! matters, so a seed replays exactly.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::str::FromStr;

use hashgraph::{
    BlockBody, Config, Event, EventBody, Hash, Hashgraph, InsertError, Peer, PeerSet, PublicKey,
    SecretKey,
};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Rounds of history a validator keeps behind its last consensus round, by default.
/// The core keeps at least [`Config::min_retained_rounds`] whatever is asked.
pub const DEFAULT_EVICT_LAG: u64 = 44;

/// One millisecond of virtual time, in nanoseconds.
const MS: u64 = 1_000_000;
/// Virtual time 0 as an event timestamp (ns since the Unix epoch, November 2023).
const EPOCH_NS: i64 = 1_700_000_000_000_000_000;
/// A validator pulls from a peer every 10–30 ms of virtual time.
const TICK_MIN: u64 = 10 * MS;
const TICK_MAX: u64 = 30 * MS;
/// A message takes 1–15 ms, or one time in 20 up to 200 ms.
const DELAY_MIN: u64 = MS;
const DELAY_MAX: u64 = 15 * MS;
const DELAY_SLOW: u64 = 200 * MS;
/// Mean tick interval, for estimating how long the load phase lasts.
const TICK_MEAN: u64 = (TICK_MIN + TICK_MAX) / 2;
/// Most missing parents asked for in one request.
const MAX_WANTS: usize = 64;
/// Most missing parents a validator remembers (the oldest are forgotten first).
const MAX_WANTED: usize = 1024;
/// Self-ancestors sent along with a wanted event.
const FETCH_DEPTH: usize = 16;
/// Most consensus rounds between two evictions of a validator.
const EVICT_EVERY: u64 = 4;
/// The load phase ends at this multiple of its estimated length even if `events` were not
/// all created (e.g. when a partition isolates every validator).
const LOAD_TIME_CAP: u64 = 40;

/// What a Byzantine validator does wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Behaviour {
    /// From some index on keeps two branches of its own events (the second signed directly
    /// from [`EventBody`] values on a shared self-parent), and sends one branch to one group
    /// of peers and the other to the rest.
    Forking,
    /// Creates events but answers syncs with nothing or with a stale prefix of its DAG for a
    /// while, then releases everything.
    Withholding,
    /// Sends events whose signatures do not verify: its own and relayed events with corrupted
    /// signatures, and events it forges in honest validators' names.
    InvalidSignatures,
    /// Sends random bytes, truncated, bit-flipped and padded encodings, and reorders what it
    /// sends.
    Garbage,
}

impl Behaviour {
    /// Every behaviour, in the order the seed draws from.
    pub const ALL: [Behaviour; 4] = [
        Behaviour::Forking,
        Behaviour::Withholding,
        Behaviour::InvalidSignatures,
        Behaviour::Garbage,
    ];

    /// The behaviour's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Behaviour::Forking => "forking",
            Behaviour::Withholding => "withholding",
            Behaviour::InvalidSignatures => "invalid-signatures",
            Behaviour::Garbage => "garbage",
        }
    }
}

impl fmt::Display for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Behaviour {
    type Err = String;

    fn from_str(s: &str) -> Result<Behaviour, String> {
        Behaviour::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Behaviour::ALL.iter().map(|b| b.name()).collect();
                format!(
                    "unknown behaviour {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// Parameters of one simulated run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// Number of validators, n ≥ 1.
    pub nodes: usize,
    /// Number of Byzantine validators, at most [`SimConfig::max_byzantine`].
    pub byzantine: usize,
    /// Events created (by all validators) before the load stops and the network drains.
    pub events: usize,
    /// The seed everything derives from.
    pub seed: u64,
    /// The behaviours Byzantine validators draw from (each draws one, uniformly, from the
    /// seed). Must not be empty when `byzantine > 0`.
    pub behaviours: Vec<Behaviour>,
    /// Number of partitions during the load phase; `None` lets the seed choose 0, 1 or 2.
    pub partitions: Option<usize>,
    /// Each validator evicts history older than this many rounds behind its last consensus
    /// round.
    pub evict_lag: u64,
    /// Honest events created while draining before giving up; `None` for a default that scales
    /// with `events` and `nodes`.
    pub drain_budget: Option<usize>,
    /// Whether a sync request also names the missing parents the requester holds events for
    /// ([`hashgraph::InsertOutcome::missing_parents`]), and the responder sends those it has
    /// with some of their self-ancestors. Without it, sync is by [`Hashgraph::known`] alone.
    pub fetch_missing: bool,
}

impl SimConfig {
    /// A run of `nodes` validators with the maximum number of Byzantine ones, `events` events
    /// and the given seed, everything else by default.
    pub fn new(nodes: usize, events: usize, seed: u64) -> SimConfig {
        SimConfig {
            nodes,
            byzantine: SimConfig::max_byzantine(nodes),
            events,
            seed,
            behaviours: Behaviour::ALL.to_vec(),
            partitions: None,
            evict_lag: DEFAULT_EVICT_LAG,
            drain_budget: None,
            fetch_missing: true,
        }
    }

    /// ⌊(n−1)/3⌋: the most Byzantine validators consensus tolerates among `nodes`.
    pub fn max_byzantine(nodes: usize) -> usize {
        nodes.saturating_sub(1) / 3
    }

    fn drain_budget(&self) -> usize {
        self.drain_budget
            .unwrap_or_else(|| (self.events / 2).max(200 * self.nodes))
    }
}

/// A broken guarantee found by a run. Node numbers are validator positions (0..n).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Two honest validators hold different block bodies at one index.
    Diverged {
        /// The validator whose block differs.
        node: usize,
        /// The validator with the longest chain, compared against.
        other: usize,
        /// The first index where they differ.
        index: u64,
    },
    /// A validator's blocks are not a dense, hash-chained sequence.
    BrokenChain {
        /// The validator.
        node: usize,
        /// Position of the first bad block.
        index: u64,
    },
    /// After draining, transactions submitted to honest validators are missing from a
    /// validator's blocks.
    MissingTransactions {
        /// The validator.
        node: usize,
        /// How many are missing.
        missing: usize,
        /// The first missing one, in submission order.
        first: String,
    },
    /// Transactions committed more than once by a validator.
    DuplicateTransactions {
        /// The validator.
        node: usize,
        /// How many transactions appear more than once.
        duplicated: usize,
        /// The first such transaction, in submission order.
        first: String,
    },
    /// An honest validator made no block at all.
    NoProgress {
        /// The validator.
        node: usize,
    },
    /// An honest validator holds fork evidence against another honest validator.
    HonestAccused {
        /// The validator holding the evidence.
        node: usize,
        /// The honest validator it accuses.
        accused: usize,
    },
    /// The core refused to create an honest validator's own event.
    CreateFailed {
        /// The validator.
        node: usize,
        /// The error.
        error: String,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Diverged { node, other, index } => write!(
                f,
                "node {node} diverged from node {other}: different block at index {index}"
            ),
            Violation::BrokenChain { node, index } => write!(
                f,
                "node {node}: block at position {index} breaks the index/prev_hash chain"
            ),
            Violation::MissingTransactions {
                node,
                missing,
                first,
            } => write!(
                f,
                "node {node}: {missing} honest transactions never committed (first {first:?})"
            ),
            Violation::DuplicateTransactions {
                node,
                duplicated,
                first,
            } => write!(
                f,
                "node {node}: {duplicated} transactions committed more than once (first {first:?})"
            ),
            Violation::NoProgress { node } => write!(f, "node {node} made no block"),
            Violation::HonestAccused { node, accused } => write!(
                f,
                "node {node} holds fork evidence against honest node {accused}"
            ),
            Violation::CreateFailed { node, error } => {
                write!(f, "node {node} could not create an event: {error}")
            }
        }
    }
}

/// What one run did and what it found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimResult {
    /// The configuration that was run.
    pub config: SimConfig,
    /// The Byzantine validators and their behaviours, by validator number.
    pub byzantine: Vec<(usize, Behaviour)>,
    /// Broken guarantees; empty when the run passed.
    pub violations: Vec<Violation>,
    /// Fewest blocks held by an honest validator at the end.
    pub blocks_min: usize,
    /// Most blocks held by an honest validator at the end.
    pub blocks_max: usize,
    /// Events created by all validators (second fork branches not counted).
    pub events: u64,
    /// Rounds decided by the most advanced honest validator.
    pub rounds: u64,
    /// Fork evidence reported to honest validators (summed over them).
    pub forks_detected: u64,
    /// Validators (by number) that some honest validator caught forking.
    pub forkers_caught: Vec<usize>,
    /// Payloads honest validators rejected: undecodable, badly signed or refused by the core.
    pub rejected_events: u64,
    /// Of those, correctly signed events of honest creators that the core refused (e.g. as
    /// too old after eviction).
    pub refused_honest_events: u64,
    /// Events still waiting for parents at the end, summed over honest validators.
    pub pending_events: usize,
    /// Transactions submitted to honest validators.
    pub transactions: u64,
    /// Most events an honest validator held in memory, sampled at its evictions and at the end.
    pub peak_events_in_memory: usize,
    /// Messages sent.
    pub messages_sent: u64,
    /// Messages lost at random.
    pub messages_lost: u64,
    /// Messages cut by a partition.
    pub messages_cut: u64,
    /// Partitions that took effect.
    pub partitions: usize,
    /// Honest events created while draining.
    pub drain_events: u64,
    /// Whether the honest validators agreed before the drain budget ran out.
    pub drained: bool,
    /// Virtual time at the end, in nanoseconds.
    pub virtual_ns: u64,
    /// Hash of the last block of the longest honest chain.
    pub last_block_hash: Option<Hash>,
}

impl SimResult {
    /// Whether the run found no violation.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// What one validator did in a run, for replaying it against a single [`Hashgraph`] when a
/// run finds a violation: its events in insertion order and when it ran consensus.
#[derive(Clone, Debug)]
pub struct NodeRecord {
    /// The validator's number.
    pub node: usize,
    /// Whether it was honest.
    pub honest: bool,
    /// Every event its hashgraph accepted (its own included), in insertion order.
    pub inserted: Vec<Event>,
    /// For each call of [`Hashgraph::run_consensus`], how many events were inserted before it.
    pub consensus_points: Vec<usize>,
    /// Its blocks.
    pub blocks: Vec<BlockBody>,
}

/// The validator set of a run of `nodes` validators and the validators' keys.
pub fn validators(nodes: usize) -> (Vec<SecretKey>, PeerSet) {
    let keys: Vec<SecretKey> = (0..nodes)
        .map(|i| SecretKey::from_seed(format!("hearsay-sim-{i}").as_bytes()))
        .collect();
    let peers = PeerSet::new(
        keys.iter()
            .enumerate()
            .map(|(i, k)| Peer::new(k.public_key(), format!("sim:{i}"), format!("node{i}")))
            .collect(),
    )
    .expect("distinct keys");
    (keys, peers)
}

/// Runs one simulation. Deterministic: the same configuration gives the same result.
pub fn run(config: &SimConfig) -> SimResult {
    run_inner(config, false).0
}

/// The Byzantine validators a run of `config` draws and their behaviours, without running
/// it (e.g. to describe a run that panicked).
pub fn byzantine_roles(config: &SimConfig) -> Vec<(usize, Behaviour)> {
    check(config);
    Sim::new(config.clone(), false).roles()
}

/// Runs one simulation like [`run`] and also returns what each validator did.
pub fn run_recorded(config: &SimConfig) -> (SimResult, Vec<NodeRecord>) {
    run_inner(config, true)
}

fn check(config: &SimConfig) {
    assert!(config.nodes >= 1, "a network needs at least one validator");
    assert!(
        config.byzantine == 0 || !config.behaviours.is_empty(),
        "Byzantine validators need behaviours to draw from"
    );
    assert!(
        config.byzantine <= SimConfig::max_byzantine(config.nodes),
        "{} Byzantine validators among {} exceed ⌊(n−1)/3⌋",
        config.byzantine,
        config.nodes
    );
}

fn run_inner(config: &SimConfig, record: bool) -> (SimResult, Vec<NodeRecord>) {
    check(config);
    let mut sim = Sim::new(config.clone(), record);
    sim.run();
    let records = sim
        .records
        .iter()
        .enumerate()
        .map(|(i, (inserted, points))| NodeRecord {
            node: i,
            honest: sim.honest(i),
            inserted: inserted.clone(),
            consensus_points: points.clone(),
            blocks: sim.nodes[i].blocks.clone(),
        })
        .collect();
    (sim.finish(), records)
}

// ----- the simulation ---------------------------------------------------------------------------

/// A forker's second branch.
struct Forker {
    /// First index of the second branch.
    from_index: u64,
    /// The second branch, by index from `from_index`.
    branch: Vec<Event>,
    /// Ids of the second branch.
    branch_ids: HashSet<Hash>,
    /// Peers (by number) that are shown the second branch.
    second_group: Vec<bool>,
}

/// A withholder's schedule.
struct Withholder {
    /// Virtual time from which it withholds.
    start: u64,
    /// Virtual time from which it releases everything.
    release: u64,
    /// Whether it answers with a stale prefix (else with nothing).
    stale: bool,
    /// Its view when it started withholding: events per creator.
    frozen: Option<HashMap<PublicKey, u64>>,
}

enum Role {
    Honest,
    Forking(Forker),
    Withholding(Withholder),
    InvalidSignatures,
    Garbage,
}

impl Role {
    fn is_honest(&self) -> bool {
        matches!(self, Role::Honest)
    }
}

struct Node {
    key: SecretKey,
    pk: PublicKey,
    hg: Hashgraph,
    role: Role,
    blocks: Vec<BlockBody>,
    /// Transactions submitted since the node's last event.
    pending_txs: Vec<Vec<u8>>,
    next_tx: u64,
    /// Commit count of each honest transaction in this node's blocks.
    committed: HashMap<Vec<u8>, u32>,
    /// Distinct honest transactions committed.
    committed_distinct: usize,
    /// Parents this node waits for, oldest first.
    wanted: VecDeque<Hash>,
    /// Last consensus round at the last eviction.
    evicted_at: u64,
}

enum Msg {
    Request {
        known: Vec<(PublicKey, u64)>,
        want: Vec<Hash>,
    },
    Response(Vec<Vec<u8>>),
}

enum Action {
    Tick(usize),
    Deliver { from: usize, to: usize, msg: Msg },
    PartitionStart(Vec<bool>),
    PartitionEnd,
}

struct Scheduled {
    time: u64,
    seq: u64,
    action: Action,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Scheduled) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Scheduled) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    /// Reversed, so that the max-heap pops the earliest action (ties by scheduling order).
    fn cmp(&self, other: &Scheduled) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

struct Sim {
    cfg: SimConfig,
    rng: ChaCha8Rng,
    nodes: Vec<Node>,
    queue: BinaryHeap<Scheduled>,
    next_seq: u64,
    now: u64,
    /// Chance in 1/1000 that a message is lost.
    loss_permille: u32,
    /// Most events in one sync response.
    limit: usize,
    /// Group of each validator while a partition holds.
    partition: Option<Vec<bool>>,
    /// The highest honest consensus round when the partition began.
    partition_round: u64,
    draining: bool,
    agreed: bool,
    done: bool,
    load_deadline: u64,
    submitted: Vec<Vec<u8>>,
    submitted_set: HashSet<Vec<u8>>,
    violations: Vec<Violation>,
    events: u64,
    drain_events: u64,
    forks_detected: u64,
    rejected_events: u64,
    refused_honest_events: u64,
    peak_events_in_memory: usize,
    messages_sent: u64,
    messages_lost: u64,
    messages_cut: u64,
    partitions: usize,
    /// Per validator when recording: inserted events and consensus points.
    records: Vec<(Vec<Event>, Vec<usize>)>,
}

impl Sim {
    fn new(cfg: SimConfig, record: bool) -> Sim {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let n = cfg.nodes;
        let (keys, peers) = validators(n);

        // Estimated virtual length of the load phase: every validator makes about one event
        // per tick.
        let load_estimate = (cfg.events as u64 * TICK_MEAN / n as u64).max(TICK_MAX);
        let loss_permille = rng.gen_range(0..=100);
        let limit = *[50, 200, 1000].choose(&mut rng).expect("non-empty");

        // Byzantine validators and their behaviours.
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let mut byzantine: Vec<usize> = order[..cfg.byzantine].to_vec();
        byzantine.sort_unstable();
        let mut roles: Vec<Role> = (0..n).map(|_| Role::Honest).collect();
        for &b in &byzantine {
            let behaviour = *cfg
                .behaviours
                .choose(&mut rng)
                .expect("behaviours to draw from");
            roles[b] = match behaviour {
                Behaviour::Forking => {
                    let own_events = (cfg.events / n) as u64;
                    Role::Forking(Forker {
                        from_index: rng.gen_range(1..=(own_events / 3).max(1)),
                        branch: Vec::new(),
                        branch_ids: HashSet::new(),
                        second_group: {
                            // Both branches go out: the other validators are split in two
                            // non-empty groups.
                            let mut others: Vec<usize> = (0..n).filter(|&i| i != b).collect();
                            others.shuffle(&mut rng);
                            let cut = rng.gen_range(1..others.len());
                            let mut group = vec![false; n];
                            for &i in &others[..cut] {
                                group[i] = true;
                            }
                            group
                        },
                    })
                }
                Behaviour::Withholding => {
                    let start = rng.gen_range(0..=load_estimate * 2 / 5);
                    let release = start + rng.gen_range(load_estimate / 5..=load_estimate / 2);
                    Role::Withholding(Withholder {
                        start,
                        release,
                        stale: rng.gen_bool(0.5),
                        frozen: None,
                    })
                }
                Behaviour::InvalidSignatures => Role::InvalidSignatures,
                Behaviour::Garbage => Role::Garbage,
            };
        }

        let nodes = keys
            .into_iter()
            .zip(roles)
            .map(|(key, role)| Node {
                pk: key.public_key(),
                key,
                hg: Hashgraph::new(Config::default(), peers.clone()),
                role,
                blocks: Vec::new(),
                pending_txs: Vec::new(),
                next_tx: 0,
                committed: HashMap::new(),
                committed_distinct: 0,
                wanted: VecDeque::new(),
                evicted_at: 0,
            })
            .collect();

        let mut sim = Sim {
            rng,
            nodes,
            queue: BinaryHeap::new(),
            next_seq: 0,
            now: 0,
            loss_permille,
            limit,
            partition: None,
            partition_round: 0,
            draining: false,
            agreed: false,
            done: false,
            load_deadline: load_estimate * LOAD_TIME_CAP,
            submitted: Vec::new(),
            submitted_set: HashSet::new(),
            violations: Vec::new(),
            events: 0,
            drain_events: 0,
            forks_detected: 0,
            rejected_events: 0,
            refused_honest_events: 0,
            peak_events_in_memory: 0,
            messages_sent: 0,
            messages_lost: 0,
            messages_cut: 0,
            partitions: 0,
            records: if record {
                vec![(Vec::new(), Vec::new()); n]
            } else {
                Vec::new()
            },
            cfg,
        };

        // Partitions: each in its own slice of the estimated load phase.
        let count = match sim.cfg.partitions {
            Some(k) => k,
            None => sim.rng.gen_range(0..=2),
        };
        if n >= 2 && count > 0 {
            let span = load_estimate * 4 / 5;
            let slot = span / count as u64;
            for k in 0..count as u64 {
                let base = load_estimate / 10 + k * slot;
                let start = base + sim.rng.gen_range(0..=slot / 3);
                let length = sim.rng.gen_range(slot / 4..=slot * 2 / 3).max(1);
                let mut members: Vec<usize> = (0..n).collect();
                members.shuffle(&mut sim.rng);
                let cut = sim.rng.gen_range(1..n);
                let mut groups = vec![false; n];
                for &m in &members[..cut] {
                    groups[m] = true;
                }
                sim.schedule(start, Action::PartitionStart(groups));
                sim.schedule(start + length, Action::PartitionEnd);
            }
        }
        for i in 0..n {
            let first = sim.rng.gen_range(0..TICK_MAX);
            sim.schedule(first, Action::Tick(i));
        }
        sim
    }

    fn schedule(&mut self, time: u64, action: Action) {
        self.queue.push(Scheduled {
            time,
            seq: self.next_seq,
            action,
        });
        self.next_seq += 1;
    }

    fn honest(&self, i: usize) -> bool {
        self.nodes[i].role.is_honest()
    }

    fn cut(&self, a: usize, b: usize) -> bool {
        self.partition.as_ref().is_some_and(|g| g[a] != g[b])
    }

    fn run(&mut self) {
        while !self.done {
            let Some(next) = self.queue.pop() else { break };
            self.now = next.time;
            if !self.draining && self.now > self.load_deadline {
                self.start_drain();
                if self.done {
                    break;
                }
            }
            match next.action {
                Action::Tick(i) => self.tick(i),
                Action::Deliver { from, to, msg } => self.deliver(from, to, msg),
                Action::PartitionStart(groups) => {
                    if !self.draining {
                        self.partition = Some(groups);
                        self.partition_round = self.highest_consensus_round();
                        self.partitions += 1;
                    }
                }
                Action::PartitionEnd => self.partition = None,
            }
        }
    }

    /// The Byzantine validators and their behaviours.
    fn roles(&self) -> Vec<(usize, Behaviour)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let b = match n.role {
                    Role::Honest => return None,
                    Role::Forking(_) => Behaviour::Forking,
                    Role::Withholding(_) => Behaviour::Withholding,
                    Role::InvalidSignatures => Behaviour::InvalidSignatures,
                    Role::Garbage => Behaviour::Garbage,
                };
                Some((i, b))
            })
            .collect()
    }

    /// The highest last consensus round among honest validators (0 before any).
    fn highest_consensus_round(&self) -> u64 {
        self.nodes
            .iter()
            .filter(|n| n.role.is_honest())
            .filter_map(|n| n.hg.last_consensus_round())
            .max()
            .unwrap_or(0)
    }

    fn start_drain(&mut self) {
        self.draining = true;
        self.partition = None;
        self.check_drained();
    }

    fn send(&mut self, from: usize, to: usize, msg: Msg) {
        self.messages_sent += 1;
        if self.cut(from, to) {
            self.messages_cut += 1;
            return;
        }
        if self.rng.gen_range(0..1000) < self.loss_permille {
            self.messages_lost += 1;
            return;
        }
        let delay = if self.rng.gen_ratio(1, 20) {
            self.rng.gen_range(DELAY_MAX..=DELAY_SLOW)
        } else {
            self.rng.gen_range(DELAY_MIN..=DELAY_MAX)
        };
        self.schedule(self.now + delay, Action::Deliver { from, to, msg });
    }

    fn tick(&mut self, i: usize) {
        if self.draining && !self.honest(i) {
            return; // Byzantine validators fall silent while the network drains.
        }
        if !self.draining && self.honest(i) {
            for _ in 0..self.rng.gen_range(0..=2) {
                let node = &mut self.nodes[i];
                let tx = format!("tx-{i}-{}", node.next_tx).into_bytes();
                node.next_tx += 1;
                node.pending_txs.push(tx.clone());
                self.submitted_set.insert(tx.clone());
                self.submitted.push(tx);
            }
        }
        let n = self.nodes.len();
        if n == 1 {
            self.create_event(i, None);
        } else {
            let peers: Vec<usize> = (0..n)
                .filter(|&j| j != i && (!self.draining || self.honest(j)))
                .collect();
            if let Some(&j) = peers.choose(&mut self.rng) {
                let known = self.nodes[i].hg.known();
                let want = self.wants(i);
                self.send(i, j, Msg::Request { known, want });
            }
        }
        if !self.done {
            let next = self.now + self.rng.gen_range(TICK_MIN..=TICK_MAX);
            self.schedule(next, Action::Tick(i));
        }
    }

    fn deliver(&mut self, from: usize, to: usize, msg: Msg) {
        if self.cut(from, to) {
            self.messages_cut += 1;
            return;
        }
        if self.draining && !(self.honest(from) && self.honest(to)) {
            return;
        }
        match msg {
            Msg::Request { known, want } => {
                let payload = self.respond(to, from, &known, &want);
                self.send(to, from, Msg::Response(payload));
            }
            Msg::Response(payload) => self.receive(to, from, payload),
        }
    }

    // ----- answering syncs, honestly or not -----------------------------------------------

    /// What validator `me` sends to `peer`, whose [`Hashgraph::known`] is `known`.
    fn respond(
        &mut self,
        me: usize,
        peer: usize,
        known: &[(PublicKey, u64)],
        want: &[Hash],
    ) -> Vec<Vec<u8>> {
        let limit = self.limit;
        let now = self.now;
        let node = &mut self.nodes[me];
        let unknown = node.hg.events_unknown_to(known, limit);
        let events = with_wanted(&node.hg, want, known, unknown);
        match &mut node.role {
            Role::Honest => events.iter().map(Event::to_bytes).collect(),
            Role::Forking(forker) => {
                let pk = node.pk;
                let mut seen = HashSet::new();
                let mut out = Vec::new();
                for e in events {
                    let own_forked = *e.creator() == pk && e.index() >= forker.from_index;
                    let e = if !own_forked {
                        e
                    } else if forker.second_group[peer] {
                        // Show this peer the second branch in place of the first.
                        let pos = (e.index() - forker.from_index) as usize;
                        match forker.branch.get(pos) {
                            Some(b) => b.clone(),
                            None => continue,
                        }
                    } else if forker.branch_ids.contains(&e.id()) {
                        continue; // this peer only ever sees the first branch from us
                    } else {
                        e
                    };
                    if seen.insert(e.id()) {
                        out.push(e.to_bytes());
                    }
                }
                out
            }
            Role::Withholding(w) => {
                if now < w.start || now >= w.release {
                    return events.iter().map(Event::to_bytes).collect();
                }
                if !w.stale {
                    return Vec::new();
                }
                let frozen = w
                    .frozen
                    .get_or_insert_with(|| node.hg.known().into_iter().collect());
                events
                    .iter()
                    .filter(|e| e.index() < frozen.get(e.creator()).copied().unwrap_or(0))
                    .map(Event::to_bytes)
                    .collect()
            }
            Role::InvalidSignatures => {
                let mut out = Vec::with_capacity(events.len() + 1);
                for e in &events {
                    let bad = match self.rng.gen_range(0..4) {
                        0 => {
                            let mut sig = *e.signature();
                            sig.0[self.rng.gen_range(0..64)] ^= 1 << self.rng.gen_range(0..8);
                            Some(Event::from_parts(e.body().clone(), sig))
                        }
                        1 if *e.creator() == node.pk => {
                            let sig = node.key.sign(&Hash::digest(b"not this event"));
                            Some(Event::from_parts(e.body().clone(), sig))
                        }
                        _ => None,
                    };
                    out.push(bad.as_ref().unwrap_or(e).to_bytes());
                }
                if self.rng.gen_bool(0.5) {
                    // Forge the next event of an honest validator, signed with our own key.
                    let victim = (me + self.rng.gen_range(1..self.cfg.nodes)) % self.cfg.nodes;
                    let victim_pk = self.nodes[victim].pk;
                    let node = &self.nodes[me];
                    let index = node
                        .hg
                        .known()
                        .iter()
                        .find(|(k, _)| *k == victim_pk)
                        .map_or(0, |(_, count)| *count);
                    let self_parent = if index == 0 {
                        None
                    } else {
                        node.hg.head(&victim_pk)
                    };
                    let forged = EventBody {
                        creator: victim_pk,
                        index,
                        self_parent,
                        other_parent: node.hg.head(&node.pk),
                        timestamp: EPOCH_NS + now as i64,
                        transactions: vec![b"forged".to_vec()],
                        internal_transactions: vec![],
                        block_signatures: vec![],
                    }
                    .sign(&node.key);
                    out.push(forged.to_bytes());
                }
                out
            }
            Role::Garbage => {
                let rng = &mut self.rng;
                let mut out: Vec<Vec<u8>> = events
                    .iter()
                    .map(|e| {
                        let mut bytes = e.to_bytes();
                        match rng.gen_range(0..6) {
                            0 => random_bytes(rng, 300),
                            1 => {
                                bytes.truncate(rng.gen_range(0..bytes.len()));
                                bytes
                            }
                            2 => {
                                let at = rng.gen_range(0..bytes.len());
                                bytes[at] ^= 1 << rng.gen_range(0..8);
                                bytes
                            }
                            3 => {
                                bytes.push(rng.gen());
                                bytes
                            }
                            _ => bytes,
                        }
                    })
                    .collect();
                for _ in 0..rng.gen_range(0..=3) {
                    out.push(random_bytes(rng, 300));
                }
                if rng.gen_bool(0.25) {
                    out.reverse(); // children before parents: they must wait in the pool
                }
                out
            }
        }
    }

    // ----- receiving a sync and creating an event -----------------------------------------

    fn receive(&mut self, me: usize, from: usize, payload: Vec<Vec<u8>>) {
        let honest = self.honest(me);
        for bytes in payload {
            let result = match Event::from_bytes(&bytes) {
                Ok(event) => {
                    let creator = *event.creator();
                    let node = &mut self.nodes[me];
                    node.hg
                        .insert_event(event)
                        .map(|outcome| {
                            if self.cfg.fetch_missing {
                                for id in outcome.missing_parents {
                                    if !node.wanted.contains(&id) {
                                        if node.wanted.len() == MAX_WANTED {
                                            node.wanted.pop_front();
                                        }
                                        node.wanted.push_back(id);
                                    }
                                }
                            }
                        })
                        .map_err(|e| Some((creator, e)))
                }
                Err(_) => Err(None),
            };
            if let (Err(error), true) = (result, honest) {
                self.rejected_events += 1;
                if let Some((creator, error)) = error {
                    let honest_creator = self
                        .nodes
                        .iter()
                        .any(|n| n.pk == creator && n.role.is_honest());
                    if honest_creator && !matches!(error, InsertError::Event(_)) {
                        self.refused_honest_events += 1;
                    }
                }
            }
        }
        let node = &self.nodes[me];
        // A stale tip (a creator far behind) would make the event invalid: build on none.
        let other = node
            .hg
            .head(&self.nodes[from].pk)
            .filter(|head| node.hg.fits_as_other_parent(&node.pk, head));
        self.create_event(me, other);
    }

    /// The missing parents `me` asks for in its next request: up to [`MAX_WANTS`], taken in
    /// turn from those it still waits for (those that arrived are forgotten).
    fn wants(&mut self, me: usize) -> Vec<Hash> {
        let node = &mut self.nodes[me];
        let hg = &node.hg;
        node.wanted.retain(|id| hg.event(id).is_none());
        let take = node.wanted.len().min(MAX_WANTS);
        let want: Vec<Hash> = node.wanted.drain(..take).collect();
        node.wanted.extend(want.iter().copied());
        want
    }

    fn create_event(&mut self, me: usize, other_parent: Option<Hash>) {
        let timestamp = EPOCH_NS + self.now as i64;
        let node = &mut self.nodes[me];
        let txs = std::mem::take(&mut node.pending_txs);
        match node
            .hg
            .create_event(&node.key, other_parent, timestamp, txs, vec![], vec![])
        {
            Ok(event) => {
                self.events += 1;
                if self.draining {
                    self.drain_events += 1;
                }
                if let Role::Forking(forker) = &mut node.role {
                    if event.index() >= forker.from_index {
                        let self_parent = match forker.branch.last() {
                            Some(prev) => Some(prev.id()),
                            None => event.body().self_parent,
                        };
                        let second = EventBody {
                            creator: node.pk,
                            index: event.index(),
                            self_parent,
                            other_parent: event.body().other_parent,
                            timestamp: event.body().timestamp + 1,
                            transactions: vec![format!("fork-{me}-{}", event.index()).into_bytes()],
                            internal_transactions: vec![],
                            block_signatures: vec![],
                        }
                        .sign(&node.key);
                        forker.branch_ids.insert(second.id());
                        forker.branch.push(second);
                    }
                }
            }
            Err(error) => self.violations.push(Violation::CreateFailed {
                node: me,
                error: error.to_string(),
            }),
        }
        self.settle(me);
        if !self.draining && self.events >= self.cfg.events as u64 {
            self.start_drain();
        } else if self.draining {
            self.check_drained();
        }
    }

    /// Runs consensus on `me` and keeps what it produced.
    fn settle(&mut self, me: usize) {
        let node = &mut self.nodes[me];
        node.hg.run_consensus();
        let ready = node.hg.take_ready();
        if let Some((inserted, points)) = self.records.get_mut(me) {
            inserted.extend(ready.events.iter().cloned());
            points.push(inserted.len());
        }
        if node.role.is_honest() {
            // Our events that went stale will never be ordered: submit their transactions again.
            for event in ready.stale.iter().filter(|e| *e.creator() == node.pk) {
                node.pending_txs
                    .extend(event.body().transactions.iter().cloned());
            }
            self.forks_detected += ready.forks.len() as u64;
            for block in ready.blocks {
                for tx in &block.body.transactions {
                    if self.submitted_set.contains(tx) {
                        let count = node.committed.entry(tx.clone()).or_insert(0);
                        *count += 1;
                        if *count == 1 {
                            node.committed_distinct += 1;
                        }
                    }
                }
                node.blocks.push(block.body);
            }
        }
        if let Some(round) = node.hg.last_consensus_round() {
            // A partition heals early once one side is half the retained history ahead: a
            // validator cut off for longer would need fast-sync to rejoin (its events would
            // name parents its peers have evicted), which the simulator does not model.
            let honest = node.role.is_honest();
            if honest
                && self.partition.is_some()
                && round >= self.partition_round + (self.cfg.evict_lag / 2).max(1)
            {
                self.partition = None;
            }
            if round >= node.evicted_at + EVICT_EVERY {
                node.evicted_at = round;
                if node.role.is_honest() {
                    let held = node.hg.stats().events_in_memory;
                    self.peak_events_in_memory = self.peak_events_in_memory.max(held);
                }
                node.hg
                    .evict_before(round.saturating_sub(self.cfg.evict_lag));
            }
        }
    }

    /// While draining: stop once every honest validator committed every honest transaction
    /// and they hold the same number of blocks, or when the budget is spent.
    fn check_drained(&mut self) {
        let total = self.submitted.len();
        let mut honest = self.nodes.iter().filter(|n| n.role.is_honest());
        let first = honest.next().expect("at least one honest validator");
        let agreed = first.committed_distinct == total
            && honest
                .all(|n| n.committed_distinct == total && n.blocks.len() == first.blocks.len());
        if agreed {
            self.agreed = true;
            self.done = true;
        } else if self.drain_events >= self.cfg.drain_budget() as u64 {
            self.done = true;
        }
    }

    // ----- the checks -------------------------------------------------------------------------

    fn finish(mut self) -> SimResult {
        let honest: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.honest(i)).collect();

        // (a) Dense hash chains, each a prefix of the longest.
        for &i in &honest {
            let blocks = &self.nodes[i].blocks;
            for (pos, b) in blocks.iter().enumerate() {
                let prev = if pos == 0 {
                    Hash::ZERO
                } else {
                    blocks[pos - 1].hash()
                };
                if b.index != pos as u64 || b.prev_hash != prev {
                    self.violations.push(Violation::BrokenChain {
                        node: i,
                        index: pos as u64,
                    });
                    break;
                }
            }
        }
        let longest = *honest
            .iter()
            .max_by_key(|&&i| (self.nodes[i].blocks.len(), std::cmp::Reverse(i)))
            .expect("at least one honest validator");
        for &i in &honest {
            let (mine, theirs) = (&self.nodes[i].blocks, &self.nodes[longest].blocks);
            if let Some(index) = mine.iter().zip(theirs).position(|(a, b)| a != b) {
                self.violations.push(Violation::Diverged {
                    node: i,
                    other: longest,
                    index: index as u64,
                });
            }
        }

        // (b) Every honest transaction exactly once everywhere; (c) progress.
        for &i in &honest {
            let node = &self.nodes[i];
            let count = |tx: &Vec<u8>| node.committed.get(tx).copied().unwrap_or(0);
            let missing: Vec<&Vec<u8>> = self.submitted.iter().filter(|t| count(t) == 0).collect();
            let duplicated: Vec<&Vec<u8>> =
                self.submitted.iter().filter(|t| count(t) > 1).collect();
            if let Some(first) = missing.first() {
                self.violations.push(Violation::MissingTransactions {
                    node: i,
                    missing: missing.len(),
                    first: String::from_utf8_lossy(first).into_owned(),
                });
            }
            if let Some(first) = duplicated.first() {
                self.violations.push(Violation::DuplicateTransactions {
                    node: i,
                    duplicated: duplicated.len(),
                    first: String::from_utf8_lossy(first).into_owned(),
                });
            }
            if node.blocks.is_empty() {
                self.violations.push(Violation::NoProgress { node: i });
            }
        }

        let mut forkers_caught = Vec::new();
        let mut rounds = 0;
        let mut pending_events = 0;
        for &i in &honest {
            let hg = &self.nodes[i].hg;
            for (accused, n) in self.nodes.iter().enumerate() {
                if hg.is_forker(&n.pk) {
                    if n.role.is_honest() {
                        self.violations
                            .push(Violation::HonestAccused { node: i, accused });
                    }
                    if !forkers_caught.contains(&accused) {
                        forkers_caught.push(accused);
                    }
                }
            }
            let stats = hg.stats();
            rounds = rounds.max(stats.last_consensus_round.map_or(0, |r| r + 1));
            pending_events += stats.pending_events;
            self.peak_events_in_memory = self.peak_events_in_memory.max(stats.events_in_memory);
        }
        let blocks: Vec<usize> = honest.iter().map(|&i| self.nodes[i].blocks.len()).collect();
        SimResult {
            byzantine: self.roles(),
            violations: self.violations,
            blocks_min: blocks.iter().copied().min().unwrap_or(0),
            blocks_max: blocks.iter().copied().max().unwrap_or(0),
            events: self.events,
            rounds,
            forks_detected: self.forks_detected,
            forkers_caught: {
                forkers_caught.sort_unstable();
                forkers_caught
            },
            rejected_events: self.rejected_events,
            refused_honest_events: self.refused_honest_events,
            pending_events,
            transactions: self.submitted.len() as u64,
            peak_events_in_memory: self.peak_events_in_memory,
            messages_sent: self.messages_sent,
            messages_lost: self.messages_lost,
            messages_cut: self.messages_cut,
            partitions: self.partitions,
            drain_events: self.drain_events,
            drained: self.agreed,
            virtual_ns: self.now,
            last_block_hash: self.nodes[longest].blocks.last().map(BlockBody::hash),
            config: self.cfg,
        }
    }
}

/// `events` preceded by the wanted events this DAG holds, each with up to [`FETCH_DEPTH`] of
/// its self-ancestors, oldest first; without duplicates. Self-ancestors below the
/// requester's `known` count of their creator are left out unless the creator forked (then
/// the requester may hold another branch at those indices).
fn with_wanted(
    hg: &Hashgraph,
    want: &[Hash],
    known: &[(PublicKey, u64)],
    events: Vec<Event>,
) -> Vec<Event> {
    if want.is_empty() {
        return events;
    }
    let count = |creator: &PublicKey| {
        known
            .iter()
            .find(|(k, _)| k == creator)
            .map_or(0, |(_, c)| *c)
    };
    let mut out = Vec::new();
    for id in want {
        let mut chain = Vec::new();
        let mut cursor = hg.event(id);
        while let Some(e) = cursor {
            chain.push(e.clone());
            if chain.len() > FETCH_DEPTH {
                break;
            }
            cursor = e
                .body()
                .self_parent
                .and_then(|sp| hg.event(&sp))
                .filter(|p| hg.is_forker(p.creator()) || p.index() >= count(p.creator()));
        }
        out.extend(chain.into_iter().rev());
    }
    out.extend(events);
    let mut seen = HashSet::new();
    out.retain(|e| seen.insert(e.id()));
    out
}

fn random_bytes(rng: &mut ChaCha8Rng, max: usize) -> Vec<u8> {
    let len = rng.gen_range(0..=max);
    (0..len).map(|_| rng.gen()).collect()
}
