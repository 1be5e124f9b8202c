//! Gossip: Babble's pull-push sync over the QUIC transport.
//!
//! Every heartbeat (`--heartbeat` while there is work, `--slow-heartbeat` otherwise) the node
//! picks the peer it pulled from least recently, pulls the events it lacks (sending its known
//! map), inserts them, creates an event on top of the peer's latest one if there is work, and
//! pushes what the peer lacks (in the background: the next sync does not wait for the peer to
//! take the push). Received events are decoded with the core's bounded decoder; copies of
//! events the DAG already holds are dropped (see [`super::recent_ids`]), and the others'
//! signatures checked in parallel on the blocking pool (the one or two small events of a quiet
//! sync on the gossip task itself, which is cheaper than the hand-over).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use std::collections::HashMap;

use hashgraph::{Event, Hash, Peer, PublicKey, SecretKey, VerifiedEvent};
use hearsay_net::wire::{Request, Response, SyncRequest, SyncResponse};
use hearsay_net::{Inbound, QuicTransport, TransportConfig};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use tokio::sync::watch;

use super::core::{Creation, InsertSummary, ThenCreate};
use super::recent_ids::RecentIds;
use super::{NodeState, Shared};
use crate::config::Config;

/// Most rounds of fetching missing parents after one sync.
const MAX_FETCH_ROUNDS: usize = 8;
/// Most ids asked for in one fetch.
const MAX_FETCH_IDS: usize = 10_000;
/// Pause after a fast-sync that found no usable answer.
const FAST_SYNC_RETRY: Duration = Duration::from_secs(1);
/// How long claims that this node is far behind are not acted on after one that no anchored
/// block bore out.
const FALSE_ALARM_PAUSE: Duration = Duration::from_secs(60);

/// Gossip counters for `/stats` and `/metrics`.
#[derive(Default, Debug)]
pub struct GossipStats {
    /// Syncs we started that succeeded.
    pub syncs_ok: AtomicU64,
    /// Syncs we started that failed.
    pub syncs_failed: AtomicU64,
    /// Pushes (the second half of a sync, sent in the background) that failed.
    pub pushes_failed: AtomicU64,
    /// Total time of successful syncs, microseconds.
    pub sync_micros: AtomicU64,
    /// Requests peers sent us.
    pub requests_served: AtomicU64,
    /// Events received whose decoding or signature failed.
    pub events_rejected: AtomicU64,
    /// Events received and inserted.
    pub events_received: AtomicU64,
    /// Events received that the DAG already held, dropped unchecked.
    pub events_duplicate: AtomicU64,
    /// A peer answered that it has pruned history this node lacks: it cannot catch up by
    /// gossip and needs fast-sync.
    pub needs_fast_sync: AtomicBool,
    /// With `--fast-sync`: the gossip loop fast-syncs before its next sync (a joiner just
    /// accepted, or peers pruned what we lack).
    pub fast_sync_wanted: AtomicBool,
    /// Fast-syncs completed.
    pub fast_syncs: AtomicU64,
    /// Our first pull has been tried: until then a node with `--fast-sync` does not know
    /// whether it is far behind, and takes no pushes (see [`GossipStats::takes_pushes`]).
    first_pull_tried: AtomicBool,
    /// Events per consensus round lately, as the core measures it (0 until it has): turns
    /// the events a peer has and we lack into rounds behind.
    pub events_per_round: Arc<AtomicU64>,
    /// Until when peers' claims that this node is far behind (their known maps, `Pruned`
    /// answers) are not acted on: set after one that no anchored block bore out, so that a
    /// lying peer cannot keep this node fast-syncing instead of gossiping.
    claims_ignored_until: Mutex<Option<Instant>>,
    /// The fast-sync wanted was asked for by such a claim (not by a join or by our own events
    /// missing from the last window), so that one no anchored block bears out is dropped.
    fast_sync_claimed: AtomicBool,
}

impl GossipStats {
    /// Whether a peer's claim that this node is far behind may start a fast-sync now.
    pub fn claims_heeded(&self) -> bool {
        let until = self
            .claims_ignored_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        until.is_none_or(|until| Instant::now() >= until)
    }

    /// Asks for a fast-sync because a peer claims this node is far behind; whether one was
    /// wanted already.
    fn claim_fast_sync(&self) -> bool {
        let wanted = self.fast_sync_wanted.swap(true, Ordering::Relaxed);
        if !wanted {
            self.fast_sync_claimed.store(true, Ordering::Relaxed);
        }
        wanted
    }

    /// The fast-sync wanted is over (done, or a claim it did not bear out): nothing is
    /// wanted or needed any more.
    fn fast_sync_over(&self) {
        for flag in [
            &self.fast_sync_wanted,
            &self.needs_fast_sync,
            &self.fast_sync_claimed,
        ] {
            flag.store(false, Ordering::Relaxed);
        }
    }

    /// Whether pushed events are taken now, by a node that fast-syncs when far behind if
    /// `fast_sync`. Not while a fast-sync is wanted: they would be built on a DAG it is about
    /// to replace. Nor, with `fast_sync`, before our first pull has been tried, which is what
    /// tells how far behind we are: peers push what we lack as soon as they reach us, and a
    /// node back from far behind would otherwise replay the history they push, from where it
    /// stopped, instead of fast-syncing past it.
    pub fn takes_pushes(&self, fast_sync: bool) -> bool {
        !self.fast_sync_wanted.load(Ordering::Relaxed)
            && (!fast_sync || self.first_pull_tried.load(Ordering::Relaxed))
    }

    /// Leaves peers' claims that this node is far behind unheeded for `pause`.
    pub fn ignore_claims_for(&self, pause: Duration) {
        *self
            .claims_ignored_until
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + pause);
    }
}

/// Binds the QUIC transport. Any key that proves itself in the handshake may connect (a
/// joiner must reach us to ask to join); [`serve_inbound`] answers only validators, past,
/// present or accepted, and the peers of peers.json, and everyone else only a join request.
pub fn bind(config: &Config, key: &SecretKey) -> anyhow::Result<(QuicTransport, Inbound)> {
    let authorizer = Arc::new(|_: &PublicKey| true);
    let transport_config = TransportConfig {
        timeout: config.timeout,
        max_pool: config.max_pool,
        ..TransportConfig::default()
    };
    QuicTransport::bind(config.listen, key.clone(), authorizer, transport_config).with_context(
        || {
            format!(
                "cannot listen for gossip on --listen {} (UDP; is another node using it?)",
                config.listen
            )
        },
    )
}

/// Decodes and verifies events that `from` sent, off the async threads, in parallel; those
/// the DAG already holds are dropped unchecked.
pub async fn verify_events(shared: &Shared, from: &Peer, raw: Vec<Vec<u8>>) -> Vec<VerifiedEvent> {
    if raw.is_empty() {
        return Vec::new();
    }
    if raw.len() <= INLINE_VERIFY_MAX
        && raw.iter().map(Vec::len).sum::<usize>() <= INLINE_VERIFY_BYTES
    {
        // A sync at low load brings a few events: checking them here (about 50 µs each)
        // costs less than handing them to a blocking thread and waking this task again.
        // Large events (hashing their transactions takes longer) still go to the pool.
        let checked = verify_all(raw, &shared.recent_ids);
        return checked.report(shared, from);
    }
    let chunk = raw.len().div_ceil(verify_workers()).max(16);
    let mut jobs = Vec::new();
    let mut raw = raw;
    while !raw.is_empty() {
        let rest = raw.split_off(chunk.min(raw.len()));
        let part = std::mem::replace(&mut raw, rest);
        let recent = Arc::clone(&shared.recent_ids);
        jobs.push(tokio::task::spawn_blocking(move || {
            verify_all(part, &recent)
        }));
    }
    let mut out = Vec::new();
    for job in jobs {
        if let Ok(checked) = job.await {
            out.extend(checked.report(shared, from));
        }
    }
    out
}

/// How many blocking tasks share a large batch: the cores, read once (the call reads cgroup
/// files, and at one sync per millisecond it showed in profiles at 1.5% of the CPU).
fn verify_workers() -> usize {
    static WORKERS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *WORKERS.get_or_init(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// Most received events, and most bytes of them, checked on the calling task rather than the
/// blocking pool. With four validators a pull usually brings three or four small events;
/// with a limit of two most went to the pool, each a hand-over and a wake-up on two threads
/// (a node made about 22 futex calls per sync at a 1 ms heartbeat, the pool's threads a
/// third of them), and rounds were 12% slower.
const INLINE_VERIFY_MAX: usize = 6;
const INLINE_VERIFY_BYTES: usize = 16 << 10;

/// What checking a batch of received events gave.
struct Checked {
    /// The good events, not held yet.
    ok: Vec<VerifiedEvent>,
    /// Events that failed decoding or their checks.
    bad: u64,
    /// Events the DAG already held.
    duplicate: u64,
}

impl Checked {
    /// Counts what was dropped and warns of bad events from `from` (at most once a minute per
    /// peer: a Byzantine validator must not fill the log); the good events.
    fn report(self, shared: &Shared, from: &Peer) -> Vec<VerifiedEvent> {
        let stats = &shared.gossip;
        stats
            .events_duplicate
            .fetch_add(self.duplicate, Ordering::Relaxed);
        if self.bad > 0 {
            stats.events_rejected.fetch_add(self.bad, Ordering::Relaxed);
            if let Some(held_back) = shared.bad_event_warnings.check(&from.pub_key) {
                tracing::warn!(
                    peer = %from.moniker,
                    count = self.bad,
                    held_back,
                    "peer sent events that fail decoding or signature checks"
                );
            }
        }
        self.ok
    }
}

/// Decodes `raw`, drops the events the DAG holds already and verifies the others.
fn verify_all(raw: Vec<Vec<u8>>, recent: &RecentIds) -> Checked {
    let mut bad = 0u64;
    let mut decoded = Vec::with_capacity(raw.len());
    for bytes in raw {
        match Event::from_bytes(&bytes) {
            Ok(event) => decoded.push(event),
            Err(e) => {
                bad += 1;
                tracing::debug!(error = %e, "undecodable event");
            }
        }
    }
    let duplicate = recent.drop_held(&mut decoded, Event::id) as u64;
    let mut ok = Vec::with_capacity(decoded.len());
    for event in decoded {
        match event.verify() {
            Ok(event) => ok.push(event),
            Err(e) => {
                bad += 1;
                tracing::debug!(error = %e, "badly signed event");
            }
        }
    }
    Checked { ok, bad, duplicate }
}

/// The socket address of a peer's `NetAddr`.
pub(super) fn peer_addr(peer: &Peer) -> anyhow::Result<std::net::SocketAddr> {
    use std::net::ToSocketAddrs;
    peer.net_addr
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .with_context(|| {
            format!(
                "peer {} has an unusable NetAddr {:?}",
                peer.moniker, peer.net_addr
            )
        })
}

/// The gossip loop: one sync per heartbeat with a random peer.
pub async fn gossip_loop(
    shared: Arc<Shared>,
    transport: Arc<QuicTransport>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut rng = rand::rngs::SmallRng::from_entropy();
    // Peers that failed are left alone for a while, so that a dead peer costs one RPC timeout
    // per backoff period instead of one in every few gossip rounds.
    let mut backoff: HashMap<PublicKey, PeerBackoff> = HashMap::new();
    let mut fast_sync_failed_at = None;
    // The heartbeat is the period between the starts of two syncs, as Babble's ticker: a
    // sync's own time is not added to it (a pause after each sync made a 10 ms heartbeat a
    // period of about 14.4 ms under load on loopback).
    let mut last_start = Instant::now();
    let mut pushing: HashMap<PublicKey, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut last_pulled: HashMap<PublicKey, Instant> = HashMap::new();
    // Whether there is work, as the core said at the end of the last sync: one round trip to
    // the core fewer per sync (130-180 µs of a 2 ms cycle at a 1 ms heartbeat, most of it
    // waiting behind the peers' requests). Work that arrives after it wakes the loop anyway.
    let mut busy_after_sync: Option<bool> = None;
    loop {
        let busy = match busy_after_sync.take() {
            Some(busy) => busy,
            None => shared.core.busy().await.unwrap_or(false),
        };
        let period = if busy {
            shared.config.heartbeat
        } else {
            shared.config.slow_heartbeat
        };
        let wait = period.saturating_sub(last_start.elapsed());
        if wait.is_zero() {
            // The last sync took the whole period. No sleep then: tokio's timer fires on
            // whole milliseconds, and even a sleep of zero waited for the next tick (0.85 ms
            // of every 2 ms sync cycle at a 1 ms heartbeat).
            tokio::task::yield_now().await;
        } else {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shared.wake.notified(), if !busy => {}
                _ = shutdown.changed() => return,
            }
        }
        if *shutdown.borrow() {
            return;
        }
        last_start = Instant::now();
        // A joiner is not admitted before its join is accepted (the join task asks).
        let state = *shared.state.borrow();
        if state == NodeState::Joining {
            continue;
        }
        if shared.gossip.fast_sync_wanted.load(Ordering::Relaxed) {
            if fast_sync_failed_at.is_some_and(|t: Instant| t.elapsed() < FAST_SYNC_RETRY) {
                continue;
            }
            let claimed = shared.gossip.fast_sync_claimed.load(Ordering::Relaxed);
            match super::fastsync::fast_sync(&shared, &transport, claimed).await {
                Ok(_) => {
                    shared.gossip.fast_sync_over();
                    shared.gossip.fast_syncs.fetch_add(1, Ordering::Relaxed);
                    fast_sync_failed_at = None;
                }
                Err(e) if claimed => {
                    // Only a peer's word said we were behind, and no peer could show an
                    // anchored block ahead of ours (or any at all, as in a young network):
                    // gossip goes on, and such words are not heeded for a while. Fast-syncing
                    // stops gossip, so a lying peer would otherwise take the node out.
                    tracing::warn!(
                        error = %e,
                        "a peer said this node was far behind (or pruned what it lacks), but \
                         fast-sync found no anchored block ahead of this node's: gossip goes on"
                    );
                    shared.gossip.fast_sync_over();
                    shared.gossip.ignore_claims_for(FALSE_ALARM_PAUSE);
                }
                Err(e) => {
                    tracing::info!(error = %e, "fast-sync failed; trying again");
                    fast_sync_failed_at = Some(Instant::now());
                    continue;
                }
            }
        }
        // The set changes with joins and leaves.
        let others = shared.membership.gossip_targets(&shared.me);
        backoff.retain(|key, _| others.iter().any(|p| p.pub_key == *key));
        pushing.retain(|_, push| !push.is_finished());
        last_pulled.retain(|key, _| others.iter().any(|p| p.pub_key == *key));
        let now = Instant::now();
        let until = |key: &PublicKey| backoff.get(key).and_then(|b| b.until);
        let ready: Vec<&Peer> = others
            .iter()
            .filter(|p| until(&p.pub_key).is_none_or(|until| until <= now))
            .collect();
        let choice = if ready.is_empty() {
            others.iter().min_by_key(|p| until(&p.pub_key))
        } else {
            least_recently_pulled(&ready, &last_pulled, &mut rng)
        };
        let Some(peer) = choice else {
            // A single validator orders its own events alone.
            if shared.core.create_event(None, None).await.is_err() {
                return;
            }
            continue;
        };
        let started = Instant::now();
        last_pulled.insert(peer.pub_key, started);
        let synced = sync_with(&shared, &transport, peer).await;
        // Tried, whether it worked or not: a node whose pulls fail still takes pushes.
        shared
            .gossip
            .first_pull_tried
            .store(true, Ordering::Relaxed);
        match synced {
            Ok(pulled) => {
                let more = pulled.more;
                busy_after_sync = pulled.busy;
                if !pulled.push.is_empty() {
                    // The push goes on while the next sync starts: waiting for the peer to
                    // insert was a third of a sync's time at a 1 ms heartbeat. One push per
                    // peer at a time, so that they arrive in order and cannot pile up.
                    if let Some(previous) = pushing.remove(&peer.pub_key) {
                        let _ = previous.await;
                    }
                    let transport = Arc::clone(&transport);
                    let stats = Arc::clone(&shared.gossip);
                    let to = peer.clone();
                    // The event we just made is on disk before it leaves.
                    let synced = shared.own_events.all_stored();
                    pushing.insert(
                        peer.pub_key,
                        tokio::spawn(async move {
                            synced.await;
                            if let Err(e) = push(&transport, &to, pulled.push).await {
                                stats.pushes_failed.fetch_add(1, Ordering::Relaxed);
                                tracing::debug!(peer = %to.moniker, error = %format!("{e:#}"), "push failed");
                            }
                        }),
                    );
                }
                backoff.remove(&peer.pub_key);
                if state == NodeState::CatchingUp
                    && !more
                    && shared.membership.latest().contains(&shared.me)
                {
                    tracing::info!("caught up with the history as a validator");
                    let _ = shared.core.set_state(NodeState::Babbling).await;
                }
                shared.gossip.syncs_ok.fetch_add(1, Ordering::Relaxed);
                shared
                    .gossip
                    .sync_micros
                    .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                backoff
                    .entry(peer.pub_key)
                    .or_default()
                    .failed(Instant::now());
                shared.gossip.syncs_failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(peer = %peer.moniker, error = %format!("{e:#}"), "sync failed");
            }
        }
    }
}

/// The peer of `ready` pulled from least recently (one never pulled from first), ties broken
/// at random. A random pick chose the same peer twice in a row a third of the time with four
/// nodes, and news of a round reaches us only as fast as we visit every peer: at a 1 ms
/// heartbeat a round took 11.3-11.5 events instead of 12.0-12.2 (README, "Benchmark").
fn least_recently_pulled<'a>(
    ready: &[&'a Peer],
    last_pulled: &HashMap<PublicKey, Instant>,
    rng: &mut impl rand::Rng,
) -> Option<&'a Peer> {
    let oldest = ready.iter().map(|p| last_pulled.get(&p.pub_key)).min()?;
    let candidates: Vec<&Peer> = ready
        .iter()
        .copied()
        .filter(|p| last_pulled.get(&p.pub_key) == oldest)
        .collect();
    candidates.choose(rng).copied()
}

/// When a peer may be tried again after consecutive failures: 100 ms after the first, doubling
/// up to [`MAX_BACKOFF`].
#[derive(Clone, Default)]
struct PeerBackoff {
    failures: u32,
    until: Option<Instant>,
}

/// Longest pause before a failed peer is tried again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl PeerBackoff {
    fn failed(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        let pause = Duration::from_millis(100)
            .saturating_mul(1 << self.failures.min(16).saturating_sub(1))
            .min(MAX_BACKOFF);
        self.until = Some(now + pause);
    }
}

/// The pull half of a sync with `peer`: pulls what we lack, inserts it and creates our event;
/// the push of what the peer lacks is left to the caller.
async fn sync_with(
    shared: &Shared,
    transport: &QuicTransport,
    peer: &Peer,
) -> anyhow::Result<Pulled> {
    let addr = peer_addr(peer)?;
    let sent_known = shared.core.known().await?;
    let response = transport
        .request(
            peer.pub_key,
            addr,
            Request::Sync(SyncRequest {
                known: sent_known.clone(),
                limit: shared.config.sync_limit,
            }),
        )
        .await?;
    let SyncResponse {
        events,
        known,
        more,
    } = match response {
        Response::Sync(sync) => sync,
        Response::Error(e) => bail!("peer refused the sync: {e}"),
        Response::Pruned { creator, below } if shared.gossip.claims_heeded() => {
            if shared.config.fast_sync {
                if !shared.gossip.claim_fast_sync() {
                    tracing::info!(
                        peer = %peer.moniker,
                        creator = %creator.to_hex(),
                        below,
                        "a peer has pruned history this node lacks: fast-syncing"
                    );
                }
            } else if !shared.gossip.needs_fast_sync.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    peer = %peer.moniker,
                    creator = %creator.to_hex(),
                    below,
                    "a peer has pruned history this node lacks: it cannot catch up by gossip \
                     and needs fast-sync (restart it with --fast-sync); see /stats needs_fast_sync"
                );
            }
            bail!("peer has pruned the history we lack (creator events below index {below})");
        }
        Response::Pruned { below, .. } => {
            bail!("peer says it pruned the history we lack (below index {below}); not heeded now")
        }
        other => bail!("unexpected answer to a sync: {other:?}"),
    };
    // A peer far ahead sends a full answer and says it has more: a known map that claims
    // more than the answer shows is not heeded.
    let full_answer = more && events.len() >= shared.config.sync_limit as usize;
    if shared.config.fast_sync
        && shared.config.fast_sync_rounds > 0
        && full_answer
        && shared.gossip.claims_heeded()
    {
        let behind = rounds_behind(&sent_known, &known, &shared.gossip.events_per_round);
        if behind >= shared.config.fast_sync_rounds && !shared.gossip.claim_fast_sync() {
            tracing::info!(
                peer = %peer.moniker,
                rounds = behind,
                "this node is far behind its peers: fast-syncing"
            );
        }
    }
    if shared.gossip.fast_sync_wanted.load(Ordering::Relaxed) {
        // Events made now would be built on a DAG the fast-sync is about to replace.
        return Ok(Pulled::default());
    }
    let ours_held = known
        .iter()
        .find(|(creator, _)| *creator == shared.me)
        .map_or(0, |(_, count)| *count);
    let limit = shared.config.sync_limit as usize;
    let verified = verify_events(shared, peer, events).await;
    // Usually no parent is missing, and inserting, creating our event and listing what the
    // peer lacks take one round trip to the core.
    let then = ThenCreate {
        other: peer.pub_key,
        ours_held,
        known,
        limit,
    };
    let after = shared.core.after_pull(verified, then.clone()).await?;
    shared
        .gossip
        .events_received
        .fetch_add(after.summary.added as u64, Ordering::Relaxed);
    let (creation, push, busy) = match after.created {
        Some((creation, push)) => (creation, push, after.busy),
        None => {
            // Parents were missing: fetch them, then the same last step with nothing more to
            // insert (what is still missing after the fetch rounds does not hold us up).
            fetch_missing(shared, transport, peer, after.summary).await?;
            let mut after = shared.core.after_pull(Vec::new(), then).await?;
            let (creation, push) = after.created.take().unwrap_or((Creation::Nothing, None));
            (creation, push, after.busy)
        }
    };
    let creation = match creation {
        Creation::ShowOurs(id) => {
            let shown = holds_event(transport, peer, id).await?;
            shared.core.unplaced_shown(peer, shown).await?
        }
        other => other,
    };
    if matches!(creation, Creation::FastSyncAgain | Creation::OursRefused) {
        // For the latter the core said why; a node without --fast-sync shows it in /stats.
        let flag = if creation == Creation::OursRefused && !shared.config.fast_sync {
            &shared.gossip.needs_fast_sync
        } else {
            &shared.gossip.fast_sync_wanted
        };
        flag.store(true, Ordering::Relaxed);
        return Ok(Pulled::default());
    }
    // A peer too far behind for what we keep gets nothing pushed (it hears why when it syncs).
    let theirs_missing = match push {
        Some(Response::Sync(sync)) => sync.events,
        _ => Vec::new(),
    };
    Ok(Pulled {
        more,
        push: theirs_missing,
        busy: Some(busy),
    })
}

/// Whether `peer` sends the event `id` when asked for it (a claim to hold it, proven).
async fn holds_event(transport: &QuicTransport, peer: &Peer, id: Hash) -> anyhow::Result<bool> {
    let addr = peer_addr(peer)?;
    let events = match transport
        .request(peer.pub_key, addr, Request::FetchEvents(vec![id]))
        .await?
    {
        Response::Events(events) => events,
        _ => return Ok(false),
    };
    // The id is the hash of the body: only a node that holds the event can send it.
    Ok(events
        .iter()
        .any(|bytes| Event::from_bytes(bytes).is_ok_and(|event| event.id() == id)))
}

/// What a pull left to do.
#[derive(Default)]
struct Pulled {
    /// The peer held more events for us than it sent.
    more: bool,
    /// Events the peer lacks, ours among them, to push to it.
    push: Vec<Vec<u8>>,
    /// Whether the core had work for the network at the end, if it said.
    busy: Option<bool>,
}

/// Pushes `events` to `peer` and waits for its answer (it has inserted them by then).
async fn push(transport: &QuicTransport, peer: &Peer, events: Vec<Vec<u8>>) -> anyhow::Result<()> {
    let addr = peer_addr(peer)?;
    match transport
        .request(peer.pub_key, addr, Request::EagerSync(events))
        .await?
    {
        Response::EagerSync { .. } => Ok(()),
        Response::Error(e) => bail!("peer refused our push: {e}"),
        other => bail!("unexpected answer to a push: {other:?}"),
    }
}

/// About how many rounds behind a peer we are: the events it holds that we lack (from the
/// two known maps) over the events per round lately (0 while that is unknown).
fn rounds_behind(
    ours: &[(PublicKey, u64)],
    theirs: &[(PublicKey, u64)],
    per_round: &AtomicU64,
) -> u64 {
    let per_round = per_round.load(Ordering::Relaxed);
    if per_round == 0 {
        return 0;
    }
    let ours: HashMap<&PublicKey, u64> = ours.iter().map(|(k, n)| (k, *n)).collect();
    let lacking: u64 = theirs
        .iter()
        .map(|(k, n)| n.saturating_sub(ours.get(k).copied().unwrap_or(0)))
        .sum();
    lacking / per_round
}

/// Verifies and inserts events from `peer`, fetching missing parents from it.
async fn receive(
    shared: &Shared,
    transport: &QuicTransport,
    peer: &Peer,
    events: Vec<Vec<u8>>,
) -> anyhow::Result<()> {
    let verified = verify_events(shared, peer, events).await;
    let summary = shared.core.insert(verified).await?;
    shared
        .gossip
        .events_received
        .fetch_add(summary.added as u64, Ordering::Relaxed);
    fetch_missing(shared, transport, peer, summary).await
}

/// Fetches from `peer` the parents an insertion found missing, and inserts them, for a few
/// rounds.
async fn fetch_missing(
    shared: &Shared,
    transport: &QuicTransport,
    peer: &Peer,
    mut summary: InsertSummary,
) -> anyhow::Result<()> {
    let mut rounds = 0;
    while !summary.missing.is_empty() && rounds < MAX_FETCH_ROUNDS {
        rounds += 1;
        let ids: Vec<Hash> = summary
            .missing
            .iter()
            .take(MAX_FETCH_IDS)
            .copied()
            .collect();
        let addr = peer_addr(peer)?;
        let fetched = match transport
            .request(peer.pub_key, addr, Request::FetchEvents(ids))
            .await?
        {
            Response::Events(events) => events,
            Response::Error(e) => bail!("peer refused a fetch: {e}"),
            other => bail!("unexpected answer to a fetch: {other:?}"),
        };
        if fetched.is_empty() {
            break;
        }
        let verified = verify_events(shared, peer, fetched).await;
        summary = shared.core.insert(verified).await?;
        shared
            .gossip
            .events_received
            .fetch_add(summary.added as u64, Ordering::Relaxed);
    }
    Ok(())
}

/// Answers peers' requests.
pub async fn serve_inbound(
    shared: Arc<Shared>,
    transport: Arc<QuicTransport>,
    mut inbound: Inbound,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let request = tokio::select! {
            r = inbound.recv() => match r { Some(r) => r, None => return },
            _ = shutdown.changed() => return,
        };
        shared
            .gossip
            .requests_served
            .fetch_add(1, Ordering::Relaxed);
        let shared = Arc::clone(&shared);
        let transport = Arc::clone(&transport);
        tokio::spawn(async move {
            let from = request.from;
            let (request, responder) = request.into_parts();
            if !matches!(request, Request::Join(_)) && !shared.membership.admits(&from) {
                responder.respond(Response::Error(
                    "not a validator: only a join request is answered".into(),
                ));
                return;
            }
            let answer = answer(&shared, &transport, from, request).await;
            if matches!(
                answer,
                Response::Sync(_) | Response::Events(_) | Response::FastSync(_)
            ) {
                // It may hold an own event of ours that is not on disk yet.
                shared.own_events.all_stored().await;
            }
            responder.respond(answer);
        });
    }
}

/// The answer to `request` from `from`, a peer the membership admits.
async fn answer(
    shared: &Shared,
    transport: &QuicTransport,
    from: PublicKey,
    request: Request,
) -> Response {
    match request {
        Request::Sync(sync) => {
            let limit = sync.limit.min(shared.config.sync_limit) as usize;
            match shared.core.unknown(sync.known, limit).await {
                Ok(answer) => answer,
                Err(e) => Response::Error(e.to_string()),
            }
        }
        Request::EagerSync(_) if !shared.gossip.takes_pushes(shared.config.fast_sync) => {
            Response::Error(
                "fast-syncing, or about to judge whether to: pushes are not taken now".into(),
            )
        }
        Request::EagerSync(events) => {
            let count = events.len() as u32;
            match shared.membership.peer(&from) {
                Some(peer) => match receive(shared, transport, &peer, events).await {
                    Ok(()) => Response::EagerSync { accepted: count },
                    Err(e) => Response::Error(format!("{e:#}")),
                },
                None => Response::Error("not a validator".into()),
            }
        }
        Request::FetchEvents(ids) => {
            let ids = ids.into_iter().take(MAX_FETCH_IDS).collect();
            match shared.core.fetch(ids).await {
                Ok(events) => Response::Events(events),
                Err(e) => Response::Error(e.to_string()),
            }
        }
        Request::FastSync => super::fastsync::offer(shared).await,
        Request::Join(join) => match shared.core.join(from, join).await {
            Ok(Ok(status)) => Response::Join(status),
            Ok(Err(refusal)) => Response::Error(refusal.to_string()),
            Err(e) => Response::Error(e.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_behind_counts_the_events_a_peer_has_and_we_lack() {
        let key = |s: &str| SecretKey::from_seed(s.as_bytes()).public_key();
        let (a, b, c) = (key("a"), key("b"), key("c"));
        let ours = [(a, 100), (b, 50)];
        // 50 of a's, 0 of b's (we hold more), and all 150 of c's, whom we do not know.
        let theirs = [(a, 150), (b, 40), (c, 150)];
        let per_round = AtomicU64::new(0);
        assert_eq!(rounds_behind(&ours, &theirs, &per_round), 0, "unknown rate");
        per_round.store(4, Ordering::Relaxed);
        assert_eq!(rounds_behind(&ours, &theirs, &per_round), 50);
        assert_eq!(rounds_behind(&theirs, &ours, &per_round), 2);
    }

    #[test]
    fn pushes_wait_for_the_first_pull_only_with_fast_sync_and_stop_while_one_is_wanted() {
        let stats = GossipStats::default();
        assert!(
            stats.takes_pushes(false),
            "without --fast-sync, from the start"
        );
        assert!(
            !stats.takes_pushes(true),
            "with it, not before the first pull"
        );
        stats.first_pull_tried.store(true, Ordering::Relaxed);
        assert!(stats.takes_pushes(true));
        assert!(!stats.claim_fast_sync());
        assert!(!stats.takes_pushes(true), "not while a fast-sync is wanted");
        assert!(!stats.takes_pushes(false));
        stats.fast_sync_over();
        assert!(stats.takes_pushes(true));
    }

    #[test]
    fn events_the_dag_holds_are_dropped_unchecked_and_others_checked() {
        let key = SecretKey::from_seed(b"creator");
        let event = |index: u64, parent: Option<Hash>| {
            hashgraph::EventBody {
                creator: key.public_key(),
                index,
                self_parent: parent,
                other_parent: None,
                timestamp: index as i64,
                transactions: vec![vec![index as u8; 8]],
                internal_transactions: Vec::new(),
                block_signatures: Vec::new(),
            }
            .sign(&key)
        };
        let first = event(0, None);
        let second = event(1, Some(first.id()));
        let third = event(2, Some(second.id()));
        // The same bodies under someone else's signature: a forged copy.
        let forged =
            |e: &Event| Event::from_parts(e.body().clone(), *event(9, None).signature()).to_bytes();
        let recent = RecentIds::new(16);
        recent.record([first.id()]);
        let raw = vec![
            forged(&first),
            second.to_bytes(),
            forged(&third),
            b"not an event".to_vec(),
        ];
        let checked = verify_all(raw, &recent);
        // The held one is dropped before its (bad) signature is looked at; the forged copy of
        // an unheld event and the garbage are refused; the good one passes.
        assert_eq!(checked.duplicate, 1);
        assert_eq!(checked.bad, 2);
        let ids: Vec<Hash> = checked.ok.iter().map(|e| e.event().id()).collect();
        assert_eq!(ids, vec![second.id()]);
    }

    #[test]
    fn every_peer_is_pulled_from_once_before_any_twice() {
        let peers: Vec<Peer> = ["a", "b", "c"]
            .iter()
            .map(|name| {
                let key = SecretKey::from_seed(name.as_bytes()).public_key();
                Peer::new(key, format!("127.0.0.1:1000{}", name.len()), *name)
            })
            .collect();
        let ready: Vec<&Peer> = peers.iter().collect();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut last_pulled = HashMap::new();
        let start = Instant::now();
        let mut picks = Vec::new();
        for step in 0..30u64 {
            let peer = least_recently_pulled(&ready, &last_pulled, &mut rng).unwrap();
            picks.push(peer.moniker.clone());
            last_pulled.insert(peer.pub_key, start + Duration::from_millis(step));
        }
        for window in picks.chunks(3) {
            let mut names = window.to_vec();
            names.sort();
            assert_eq!(names, ["a", "b", "c"], "picks: {picks:?}");
        }
        // A peer that joins (never pulled from) comes next.
        let joiner = Peer::new(
            SecretKey::from_seed(b"d").public_key(),
            "127.0.0.1:20000",
            "d",
        );
        let mut with_joiner = ready.clone();
        with_joiner.push(&joiner);
        let next = least_recently_pulled(&with_joiner, &last_pulled, &mut rng).unwrap();
        assert_eq!(next.moniker, "d");
        assert!(least_recently_pulled(&[], &last_pulled, &mut rng).is_none());
    }
}
