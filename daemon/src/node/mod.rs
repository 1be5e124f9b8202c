//! The node runtime of `hearsay run`: the consensus task, gossip over QUIC, the socket proxy
//! to the app and the HTTP service.
//!
//! Tasks: `core` owns the hashgraph and answers commands; `gossip` syncs with a random peer
//! every heartbeat (pull, create an event, push); `inbound` answers peers' requests; `deliver`
//! hands blocks to the app in order, retrying until it answers; the proxy and HTTP servers.
//! Signatures of received events are checked in parallel on the blocking pool, never on the
//! consensus task.

pub mod convert;
pub mod core;
pub mod deliver;
pub mod durable;
pub mod fastsync;
pub mod gossip;
pub mod http;
pub mod membership;
pub mod pool;
pub mod recent_ids;
mod taken;

use std::sync::Arc;

use anyhow::{bail, Context};
use hashgraph::{Hashgraph, PeerSet, PublicKey, SecretKey};
use tokio::sync::watch;

use self::core::{Core, CoreHandle};
use self::pool::TxPool;
use crate::config::Config;
use crate::datadir;

/// The node states of INTERFACES.md, numbered as `State.OnStateChanged` sends them.
pub use hearsay_proxy::NodeState;

/// How often a leaving node checks whether consensus has passed its last round.
const LEAVE_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// The transaction budget of the whole network, shared evenly by the validators (see
/// [`pool`]): transactions waiting for an event plus those in events not ordered yet. It bounds
/// the backlog each node holds in memory, and a block: 11 MiB of transactions is about 15 MiB
/// of JSON in base64, within the 16 MiB message an app built on the SDK accepts by default.
/// At 50,000 tx/s of 200 bytes it leaves room for about 1.1 s from submission to order.
const POOL_MAX_COUNT: usize = 64_000;
const POOL_MAX_BYTES: usize = 11 << 20;
/// Ids of inserted events remembered for dropping copies received again: four seconds of
/// events at the highest event rate measured here (about 2,000 a second at a 1 ms heartbeat),
/// while copies cross within milliseconds; about 1 MB.
const RECENT_IDS: usize = 8192;

/// What the tasks share (read-only after start).
pub struct Shared {
    /// The resolved configuration.
    pub config: Config,
    /// Our key.
    pub me: PublicKey,
    /// Our moniker (peers.json's wins).
    pub moniker: String,
    /// The validator-set history (and peers.json), as the core publishes it.
    pub membership: membership::MembershipView,
    /// The validator set of round 0.
    pub genesis: PeerSet,
    /// The consensus task.
    pub core: CoreHandle,
    /// Transactions waiting.
    pub pool: Arc<TxPool>,
    /// The app side.
    pub delivery: Arc<deliver::DeliveryStatus>,
    /// The app, for deliveries, snapshots and restores.
    pub app: deliver::AppLink,
    /// Gossip counters.
    pub gossip: Arc<gossip::GossipStats>,
    /// The node state, as the core publishes it.
    pub state: watch::Receiver<NodeState>,
    /// Notified when work arrives (a transaction, an event with a payload), so that an idle
    /// gossip loop does not wait out its slow heartbeat.
    pub wake: Arc<tokio::sync::Notify>,
    /// The store, for its memory figures in `/metrics`.
    pub store: Arc<dyn crate::store::Store>,
    /// Waits until our events are durable: everything that sends events to a peer does.
    pub own_events: durable::OwnEventsSynced,
    /// Ids of the events the core inserted lately: copies received again are dropped before
    /// their signatures are checked.
    pub recent_ids: Arc<recent_ids::RecentIds>,
    /// Warnings of peers' bad events, at most one a minute per peer.
    pub bad_event_warnings: hearsay_net::WarnLimiter<PublicKey>,
}

/// Where blocks go.
#[derive(Clone)]
pub enum App {
    /// An app process reached over the socket proxy at `--client-connect`; apps submit on
    /// `--proxy-listen`.
    Remote,
    /// An app in this process (Babble's InmemProxy): blocks go straight to the handler and
    /// the app submits with [`RunningNode::submit_tx`]; no proxy port is opened.
    InProcess(Arc<dyn hearsay_proxy::AppHandler>),
}

/// Runs a node with a remote app until SIGINT or SIGTERM (then leaves the validator set,
/// unless `--no-leave`), or until it cannot go on (a refused or timed-out join).
pub async fn run(config: Config) -> anyhow::Result<()> {
    let mut node = start(config, App::Remote).await?;
    let failure = tokio::select! {
        signal = wait_for_signal() => {
            signal?;
            None
        }
        failure = node.failure() => Some(failure),
    };
    if let Some(failure) = failure {
        node.shutdown().await;
        return Err(failure);
    }
    if !node.shared.config.no_leave {
        node.leave().await;
    }
    node.shutdown().await;
    Ok(())
}

/// A started node.
pub struct RunningNode {
    shared: Arc<Shared>,
    core_task: tokio::task::JoinHandle<()>,
    tasks: tokio::task::JoinSet<()>,
    shutdown_tx: watch::Sender<bool>,
    transport: Arc<hearsay_net::QuicTransport>,
    failures: tokio::sync::mpsc::Receiver<anyhow::Error>,
}

impl RunningNode {
    /// Waits until the node cannot go on (its join was refused or timed out) and says why.
    pub async fn failure(&mut self) -> anyhow::Error {
        match self.failures.recv().await {
            Some(e) => e,
            None => std::future::pending().await,
        }
    }

    /// Leaves the validator set: submits our PEER_REMOVE and waits, at most `--join-timeout`,
    /// until the change takes effect: ordered, accepted, and consensus past the last round
    /// that still counts us (leaving earlier could leave those rounds short of a quorum).
    /// Returns whether we left; a node that is not a validator, or the only one, has nothing
    /// to leave.
    pub async fn leave(&self) -> bool {
        let shared = &self.shared;
        let timeout = shared.config.join_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        // A joiner the others accepted is a validator to them: it leaves once it has caught
        // up (it cannot create events before), or the network would keep counting it.
        let mut states = shared.state.clone();
        if *states.borrow() == NodeState::CatchingUp {
            tracing::info!("catching up: leaving once this node is a validator");
            let caught_up = tokio::time::timeout_at(deadline, async {
                while *states.borrow_and_update() == NodeState::CatchingUp {
                    if states.changed().await.is_err() {
                        return;
                    }
                }
            })
            .await;
            if caught_up.is_err() {
                tracing::warn!(
                    ?timeout,
                    "still catching up after --join-timeout: shutting down without leaving; \
                     the others still count this node as a validator"
                );
                return false;
            }
        }
        match shared.core.leave().await {
            Ok(true) => {}
            Ok(false) | Err(_) => return false,
        }
        tracing::info!(?timeout, "leaving the validator set");
        let mut view = shared.membership.clone();
        let left = tokio::time::timeout_at(deadline, async {
            loop {
                if !view.latest().contains(&shared.me) {
                    break;
                }
                if !view.changed().await {
                    return false;
                }
            }
            let from = view.history().last().map_or(0, |(r, _)| *r);
            loop {
                match shared.core.status().await {
                    Ok(status) if status.stats.last_consensus_round >= Some(from) => return true,
                    Ok(_) => tokio::time::sleep(LEAVE_POLL).await,
                    Err(_) => return false,
                }
            }
        })
        .await;
        match left {
            Ok(true) => {
                let history = shared.membership.history();
                let round = history.last().map_or(0, |(r, _)| *r);
                tracing::info!(
                    round,
                    "left the validator set: it no longer holds this node from that round"
                );
                true
            }
            _ => {
                tracing::warn!(
                    ?timeout,
                    "could not leave the validator set within --join-timeout (no quorum, or \
                     the app refused); shutting down anyway: the others still count this \
                     node as a validator"
                );
                false
            }
        }
    }

    /// Submits a transaction, as `SubmitTx` does; refused when the pool is full.
    pub fn submit_tx(&self, tx: Vec<u8>) -> Result<(), pool::PoolError> {
        self.shared.pool.submit(tx)?;
        self.shared.wake.notify_one();
        Ok(())
    }

    /// The node's current state.
    pub fn state(&self) -> NodeState {
        *self.shared.state.borrow()
    }

    /// Stops gossip, delivery and the servers, and waits for the tasks to end.
    pub async fn shutdown(self) {
        let RunningNode {
            shared,
            core_task,
            mut tasks,
            shutdown_tx,
            transport,
            failures: _,
        } = self;
        tracing::info!("shutting down");
        let _ = shared.core.set_state(NodeState::Shutdown).await;
        let _ = shutdown_tx.send(true);
        transport.close().await;
        // Tasks watch `shutdown`; give them a moment to finish what they are doing.
        let drained = tokio::time::timeout(std::time::Duration::from_secs(3), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tasks.abort_all();
        }
        drop(shared);
        let _ = core_task.await;
        tracing::info!("stopped");
    }
}

/// Starts a node: binds its ports and spawns its tasks on the current runtime.
pub async fn start(config: Config, app: App) -> anyhow::Result<RunningNode> {
    let key = datadir::read_key(&config.datadir)?;
    let (peers, genesis) = datadir::read_peer_sets(&config.datadir)?;
    let me = key.public_key();
    let own = peers
        .peers()
        .iter()
        .chain(genesis.peers())
        .find(|p| p.pub_key == me);
    if let Some(own) = own {
        if own.net_addr != config.advertise.to_string() {
            tracing::warn!(
                advertised = %config.advertise,
                in_peers_json = %own.net_addr,
                "peers.json gives this node another address than --advertise; peers dial the one in peers.json"
            );
        }
    }
    let moniker = match own {
        Some(own) if !own.moniker.is_empty() => own.moniker.clone(),
        _ => config.moniker.clone(),
    };
    tracing::info!(moniker = %moniker, id = me.peer_id(), "starting");

    // The store first: a second process on this datadir stops here, before touching ports.
    let db_path = config.db.clone();
    let store: Arc<dyn crate::store::Store> = Arc::new(
        crate::store::rocks::RocksStore::open_with(&db_path, config.prune_rounds > 0)
            .with_context(|| format!("cannot open the database in {}", db_path.display()))?,
    );

    let (shutdown_tx, shutdown) = watch::channel(false);
    let transport = gossip::bind(&config, &key)?;
    let proxy_listener = match app {
        App::Remote => Some(
            tokio::net::TcpListener::bind(config.proxy_listen)
                .await
                .with_context(|| {
                    format!(
                        "cannot listen for apps on --proxy-listen {} (is another node using it?)",
                        config.proxy_listen
                    )
                })?,
        ),
        App::InProcess(_) => None,
    };
    let http_listener = match config.service_listen {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!("cannot serve HTTP on --service-listen {addr} (is another node using it?)")
        })?),
        None => None,
    };

    let resumed = resume(genesis.clone(), store.as_ref())?;
    // The stored history, not peers.json, says whether we are a validator: a stale
    // peers.json cannot split the network.
    let history = resumed.hg.peer_set_history();
    let validator = membership::member_since(&history, &me).is_some();
    let initial = if config.maintenance_mode {
        NodeState::Suspended
    } else if validator {
        NodeState::Babbling
    } else {
        NodeState::Joining
    };
    tracing::info!(
        validators = membership::latest(&history).len(),
        state = %initial,
        "validator-set history read"
    );
    let (membership_tx, membership_rx) = watch::channel(Arc::new(history));
    let (state_tx, state_rx) = watch::channel(initial);
    let (deliver_tx, deliver_rx) = tokio::sync::mpsc::unbounded_channel();
    let pool = Arc::new(TxPool::durable(
        POOL_MAX_COUNT,
        POOL_MAX_BYTES,
        self::core::MAX_EVENT_PAYLOAD,
        Arc::clone(&store),
    )?);
    pool.set_validators(membership::latest(&membership_rx.borrow()).len());
    let wake = Arc::new(tokio::sync::Notify::new());
    let gossip_stats = Arc::new(gossip::GossipStats::default());
    let recent_ids = Arc::new(recent_ids::RecentIds::new(RECENT_IDS));
    // The thread ends with the core (it holds the other side).
    let (own_events_stored, own_events, _sync_thread) = durable::own_events(Box::new({
        let store = Arc::clone(&store);
        move || store.sync_log()
    }))
    .context("cannot start the thread that syncs our events to disk")?;
    let core = Core::new(
        resumed.hg,
        key.clone(),
        Arc::clone(&pool),
        initial,
        config.suspend_limit,
        self::core::CoreOutputs {
            deliver: deliver_tx,
            state_changes: state_tx,
            wake: Arc::clone(&wake),
            store: Arc::clone(&store),
            bootstrap: config.bootstrap,
            blocks_before: resumed.blocks_before,
            transactions_before: resumed.transactions_before,
            memory_rounds: config.memory_rounds,
            prune_rounds: config.prune_rounds,
            membership: membership_tx,
            events_per_round: Arc::clone(&gossip_stats.events_per_round),
            recent_ids: Arc::clone(&recent_ids),
            own_events: own_events_stored,
        },
    );
    let (core_handle, core_task) = core.spawn();
    let shared = Arc::new(Shared {
        config: config.clone(),
        me,
        moniker,
        membership: membership::MembershipView::new(membership_rx, peers.clone()),
        genesis,
        core: core_handle.clone(),
        pool: Arc::clone(&pool),
        delivery: Arc::new(deliver::DeliveryStatus::new()),
        app: deliver::AppLink::new(app.clone(), &config),
        gossip: gossip_stats,
        state: state_rx,
        wake: Arc::clone(&wake),
        recent_ids,
        bad_event_warnings: hearsay_net::WarnLimiter::new(hearsay_net::limit::WARN_PERIOD),
        store: Arc::clone(&store),
        own_events,
    });

    let mut tasks = tokio::task::JoinSet::new();
    let (transport, inbound) = transport;
    let transport = Arc::new(transport);
    tasks.spawn(named(
        "gossip",
        gossip::gossip_loop(
            Arc::clone(&shared),
            Arc::clone(&transport),
            shutdown.clone(),
        ),
    ));
    tasks.spawn(named(
        "inbound",
        gossip::serve_inbound(
            Arc::clone(&shared),
            Arc::clone(&transport),
            inbound,
            shutdown.clone(),
        ),
    ));
    tasks.spawn(named(
        "deliver",
        deliver::deliver_loop(Arc::clone(&shared), deliver_rx, shutdown.clone()),
    ));
    if let Some(proxy_listener) = proxy_listener {
        let pool = Arc::clone(&pool);
        let wake = Arc::clone(&wake);
        let submit: hearsay_proxy::SubmitFn = Arc::new(move |txs: Vec<Vec<u8>>| {
            let verdicts: Vec<Result<(), String>> = pool
                .submit_all(txs)
                .into_iter()
                .map(|v| v.map_err(|e| e.to_string()))
                .collect();
            if verdicts.iter().any(Result::is_ok) {
                wake.notify_one();
            }
            verdicts
        });
        let mut shutdown = shutdown.clone();
        tasks.spawn(named("proxy", async move {
            tokio::select! {
                _ = hearsay_proxy::serve_proxy(proxy_listener, submit) => {}
                _ = shutdown.changed() => {}
            }
        }));
    }
    let (failure_tx, failures) = tokio::sync::mpsc::channel(1);
    if initial == NodeState::Joining && config.fast_sync {
        shared
            .gossip
            .fast_sync_wanted
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    if initial == NodeState::Joining {
        tasks.spawn(named(
            "join",
            join(
                Arc::clone(&shared),
                Arc::clone(&transport),
                key.clone(),
                peers.clone(),
                failure_tx,
            ),
        ));
    }
    if let Some(listener) = http_listener {
        tasks.spawn(named(
            "http",
            http::serve(Arc::clone(&shared), listener, shutdown.clone()),
        ));
    }
    tracing::info!(
        gossip = %config.listen,
        proxy = %config.proxy_listen,
        app = %config.client_connect,
        http = ?config.service_listen,
        "node running"
    );

    Ok(RunningNode {
        shared,
        core_task,
        tasks,
        shutdown_tx,
        transport,
        failures,
    })
}

/// The joiner's task: asks the validators of peers.json to carry our PEER_ADD and, once it is
/// accepted, moves to `CatchingUp` (the gossip loop syncs the history and moves on to
/// `Babbling` once caught up as a validator). A refusal or no answer within `--join-timeout`
/// stops the node with the reason.
async fn join(
    shared: Arc<Shared>,
    transport: Arc<hearsay_net::QuicTransport>,
    key: SecretKey,
    peers: PeerSet,
    failures: tokio::sync::mpsc::Sender<anyhow::Error>,
) {
    tracing::info!(
        timeout = ?shared.config.join_timeout,
        "this node is not a validator: asking to join"
    );
    let outcome = membership::request_join(
        &transport,
        &key,
        &shared.config.advertise.to_string(),
        &shared.moniker,
        peers.peers(),
        shared.config.join_timeout,
    )
    .await;
    match outcome {
        Ok(_) => {
            let _ = shared.core.set_state(NodeState::CatchingUp).await;
            shared.wake.notify_one();
        }
        Err(e) => {
            let _ = failures.send(e).await;
        }
    }
}

/// The hashgraph a node resumes with, and what it needs to know about the blocks before it.
pub struct Resumed {
    /// The hashgraph, with every stored event in it (or in the checkpoint it came from).
    pub hg: Hashgraph,
    /// Blocks made before the checkpoint (in the store; replay makes the ones after).
    pub blocks_before: u64,
    /// Transactions in those blocks.
    pub transactions_before: u64,
}

/// Resumes from the store: the last checkpoint of the consensus state, then the events
/// accepted after it, in the order they were accepted (so that the node resumes its own
/// sequence and never signs a second event at an index). The time this takes depends on the
/// history in memory and the events since the checkpoint, not on the length of the history.
/// Without a checkpoint (or with one this version cannot read) every stored event is replayed.
pub fn resume(genesis: PeerSet, store: &dyn crate::store::Store) -> anyhow::Result<Resumed> {
    let started = std::time::Instant::now();
    let config = hashgraph::Config::default();
    let restored = match store.checkpoint()? {
        Some((bytes, covered)) => match postcard::from_bytes::<self::core::SavedCore>(&bytes) {
            Ok(saved) => {
                let hg = Hashgraph::restore(config.clone(), saved.hashgraph, |id| {
                    store.event(id).ok().flatten()
                });
                match hg {
                    Ok(hg) => Some((hg, covered, saved.transactions)),
                    Err(e) => {
                        tracing::warn!(error = %e, "the stored checkpoint cannot be used: replaying every stored event");
                        None
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "the stored checkpoint does not decode: replaying every stored event");
                None
            }
        },
        None => None,
    };
    let (mut hg, from, transactions_before) = match restored {
        Some(restored) => restored,
        None => {
            // Replaying from genesis needs every event: a pruned database has lost some.
            for peer in genesis.peers() {
                if store.pruned_below(&peer.pub_key)? > 0 {
                    bail!(
                        "the database was pruned (--prune-rounds) and its checkpoint cannot be \
                         used, so the history cannot be rebuilt from it: move the database \
                         folder away; the node then syncs from its peers"
                    );
                }
            }
            (Hashgraph::new(config, genesis), 0, 0)
        }
    };
    let blocks_before = hg.stats().last_block_index.map_or(0, |i| i + 1);
    let replayed = replay(&mut hg, store, from)?;
    // Consensus stopped at a block of validator-set changes the app had answered before the
    // restart: its stored receipts let it go on (the events are all in already).
    let acknowledged = store.app_acknowledged()?;
    while let Some(index) = hg.awaiting_receipts() {
        let answered = store
            .block(index)?
            .filter(|_| acknowledged.is_some_and(|a| index <= a));
        let Some(block) = answered else { break };
        if !self::core::apply_block_receipts(&mut hg, &block, store)? {
            break;
        }
        hg.run_consensus();
    }
    if from > 0 || replayed > 0 {
        tracing::info!(
            checkpoint_events = from,
            replayed,
            millis = started.elapsed().as_millis() as u64,
            "resumed from the store"
        );
    }
    Ok(Resumed {
        hg,
        blocks_before,
        transactions_before,
    })
}

/// Inserts the stored events from position `from` on, in the order they were accepted,
/// running consensus as it goes; returns how many were read.
pub fn replay(
    hg: &mut Hashgraph,
    store: &dyn crate::store::Store,
    mut from: u64,
) -> anyhow::Result<u64> {
    const CHUNK: usize = 10_000;
    let total = store.event_count()?;
    let start = from;
    while from < total {
        let events = store.events_from(from, CHUNK)?;
        if events.is_empty() {
            break;
        }
        from += events.len() as u64;
        for event in events {
            // Every stored event passed its checks when it was accepted.
            if let Err(e) = hg.insert_verified(hashgraph::VerifiedEvent::assume_verified(event)) {
                tracing::warn!(error = %e, "a stored event was refused on replay");
            }
        }
        // Keep the set of undetermined events small: receiving a round scans it.
        hg.run_consensus();
    }
    Ok(from - start)
}

/// Runs a task and logs its end, so that a slow shutdown names the task that held it up.
async fn named(name: &'static str, task: impl std::future::Future<Output = ()>) {
    task.await;
    tracing::debug!(task = name, "task ended");
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use crate::store::Store;
    use hashgraph::{
        InternalTransaction, InternalTransactionKind, InternalTransactionReceipt, Peer, SecretKey,
    };

    /// A store holding a 4-validator history in which validator 0 carried a PEER_ADD, with
    /// the block of that change (answered by the app as `answer` says, or not at all) and
    /// the events of 40 rounds after it.
    fn history_with_a_change(answer: Option<bool>) -> (MemoryStore, PeerSet, Peer, u64) {
        let (keys, genesis) = hearsay_testkit::sim::validators(4);
        let joiner_key = SecretKey::from_seed(b"joiner");
        let joiner = Peer::new(joiner_key.public_key(), "127.0.0.1:9", "joiner");
        let add = InternalTransaction::new(
            InternalTransactionKind::PeerAdd,
            joiner.clone(),
            &joiner_key,
        );
        let store = MemoryStore::default();
        let mut hg = Hashgraph::new(hashgraph::Config::default(), genesis.clone());
        let mut blocks = Vec::new();
        let mut i = 0;
        while hg.stats().last_round.unwrap_or(0) < 60 {
            let me = i % 4;
            let other = hg.head(&keys[(me + 3) % 4].public_key());
            let internal = if i == 8 { vec![add.clone()] } else { vec![] };
            hg.create_event(
                &keys[me],
                other,
                i as i64,
                vec![vec![b'x'; 8]],
                internal,
                vec![],
            )
            .unwrap();
            hg.run_consensus();
            let ready = hg.take_ready();
            store.put_events(&ready.events).unwrap();
            blocks.extend(ready.blocks);
            i += 1;
        }
        let mut block = blocks
            .into_iter()
            .find(|b| !b.body.internal_transactions.is_empty())
            .expect("the change was ordered");
        assert_eq!(hg.awaiting_receipts(), Some(block.body.index));
        if let Some(accepted) = answer {
            block.state_hash = vec![1];
            block.receipts = vec![InternalTransactionReceipt {
                internal_transaction: add,
                accepted,
            }];
            store.put_block(&block).unwrap();
            store.set_app_acknowledged(block.body.index).unwrap();
        } else {
            store.put_block(&block).unwrap();
        }
        (store, genesis, joiner, block.body.round_received)
    }

    #[test]
    fn a_restart_applies_the_receipts_the_app_gave_before_it() {
        let (store, genesis, joiner, round) = history_with_a_change(Some(true));
        let resumed = resume(genesis.clone(), &store).unwrap();
        let first = round + hashgraph::PEER_CHANGE_DELAY_ROUNDS;
        assert_eq!(resumed.hg.awaiting_receipts(), None);
        assert!(!resumed.hg.peer_set(first - 1).contains(&joiner.pub_key));
        assert!(resumed.hg.peer_set(first).contains(&joiner.pub_key));
        assert!(resumed.hg.last_consensus_round() > Some(first));
        let stored = store.peer_sets().unwrap();
        assert_eq!(stored.last().map(|(r, s)| (*r, s.len())), Some((first, 5)));
    }

    #[test]
    fn a_refused_change_leaves_the_set_and_an_unanswered_one_waits() {
        let (store, genesis, joiner, round) = history_with_a_change(Some(false));
        let resumed = resume(genesis.clone(), &store).unwrap();
        assert_eq!(resumed.hg.awaiting_receipts(), None);
        assert!(!resumed.hg.peer_set(round + 100).contains(&joiner.pub_key));
        assert!(resumed.hg.last_consensus_round() > Some(round + 6));

        let (store, genesis, _, round) = history_with_a_change(None);
        let resumed = resume(genesis, &store).unwrap();
        assert!(resumed.hg.awaiting_receipts().is_some());
        assert_eq!(resumed.hg.last_consensus_round(), Some(round));
    }
}
