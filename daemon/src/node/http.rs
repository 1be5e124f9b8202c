//! The HTTP service (INTERFACES.md §3) on axum, plus `/metrics` (Prometheus text) and
//! `/health`. Every answer carries `Access-Control-Allow-Origin: *`; errors are JSON
//! `{"error": "..."}` with the right status.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use tokio::sync::{watch, Semaphore};

use super::{convert, Shared};

/// Most blocks one `/blocks` call returns.
pub const MAX_BLOCKS_PER_CALL: usize = 50;

/// Most requests answered at once; past it a request is answered 503 at once. Every route asks
/// the consensus task, so a client flooding the service must not queue without bound in front
/// of gossip.
pub const MAX_REQUESTS_IN_FLIGHT: usize = 16;

type Shared_ = Arc<Shared>;

/// An error answer.
struct HttpError(StatusCode, String);

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

fn gone() -> HttpError {
    HttpError(
        StatusCode::SERVICE_UNAVAILABLE,
        "the node is shutting down".into(),
    )
}

/// The routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/stats", get(stats))
        .route("/peers", get(peers))
        .route("/genesispeers", get(genesis_peers))
        .route("/validators/", get(validators_last))
        .route("/validators/{round}", get(validators))
        .route("/history", get(history))
        .route("/block/{index}", get(block))
        .route("/blocks/{start}", get(blocks))
        .route("/graph", get(graph))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .fallback(|| async {
            HttpError(
                StatusCode::NOT_FOUND,
                "no such route; see /stats, /peers, /genesispeers, /validators/{round}, \
                 /history, /block/{index}, /blocks/{start}?count=N, /graph, /metrics, /health"
                    .into(),
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(Semaphore::new(MAX_REQUESTS_IN_FLIGHT)),
            limit_in_flight,
        ))
        .layer(axum::middleware::map_response(
            |mut response: Response| async move {
                response.headers_mut().insert(
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                );
                response
            },
        ))
        .with_state(shared)
}

/// Answers `request` if fewer than the permits' number are being answered, else 503.
async fn limit_in_flight(
    State(permits): State<Arc<Semaphore>>,
    request: Request,
    next: Next,
) -> Response {
    match permits.try_acquire() {
        Ok(_answering) => next.run(request).await,
        Err(_) => HttpError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("busy: more than {MAX_REQUESTS_IN_FLIGHT} requests at once; try again"),
        )
        .into_response(),
    }
}

/// Serves the routes on `listener` until shutdown.
pub async fn serve(
    shared: Arc<Shared>,
    listener: tokio::net::TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = router(shared);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.changed().await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "the HTTP service stopped");
    }
}

fn minus_one(value: Option<u64>) -> String {
    value.map_or_else(|| "-1".to_string(), |v| v.to_string())
}

async fn stats(
    State(s): State<Shared_>,
) -> Result<Json<BTreeMap<&'static str, String>>, HttpError> {
    let status = s.core.status().await.map_err(|_| gone())?;
    let st = &status.stats;
    let syncs = s.gossip.syncs_ok.load(Ordering::Relaxed);
    let mut m = BTreeMap::new();
    m.insert("consensus_events", st.consensus_events.to_string());
    m.insert("id", s.me.peer_id().to_string());
    m.insert("last_block_index", minus_one(status.blocks.checked_sub(1)));
    m.insert("last_consensus_round", minus_one(st.last_consensus_round));
    m.insert("last_peer_change", minus_one(status.last_peer_change));
    m.insert("moniker", s.moniker.clone());
    m.insert("num_peers", status.num_peers.to_string());
    m.insert(
        "state",
        status
            .state
            .map_or_else(|| "Unknown".into(), |st| st.to_string()),
    );
    m.insert("transaction_pool", s.pool.len().to_string());
    m.insert("transactions", status.transactions.to_string());
    m.insert("undetermined_events", st.undetermined_events.to_string());
    // Hearsay's additions.
    m.insert("events_in_memory", st.events_in_memory.to_string());
    m.insert("last_round", minus_one(st.last_round));
    m.insert("self_events", status.self_events.to_string());
    m.insert("last_anchored_block", minus_one(status.last_anchored));
    m.insert("forkers", st.forkers.to_string());
    m.insert("sync_rate", {
        let failed = s.gossip.syncs_failed.load(Ordering::Relaxed);
        let total = syncs + failed;
        if total == 0 {
            "1.00".to_string()
        } else {
            format!("{:.2}", syncs as f64 / total as f64)
        }
    });
    m.insert(
        "blocks_waiting_for_app",
        s.delivery.waiting.load(Ordering::Relaxed).to_string(),
    );
    m.insert(
        "app_reachable",
        (!s.delivery.app_down.load(Ordering::Relaxed)).to_string(),
    );
    m.insert(
        "needs_fast_sync",
        s.gossip.needs_fast_sync.load(Ordering::Relaxed).to_string(),
    );
    Ok(Json(m))
}

/// The latest validator set (what a joiner puts in its peers.json).
async fn peers(State(s): State<Shared_>) -> impl IntoResponse {
    Json(
        s.membership
            .latest()
            .peers()
            .iter()
            .map(convert::peer_json)
            .collect::<Vec<_>>(),
    )
}

async fn genesis_peers(State(s): State<Shared_>) -> impl IntoResponse {
    Json(
        s.genesis
            .peers()
            .iter()
            .map(convert::peer_json)
            .collect::<Vec<_>>(),
    )
}

async fn validators_at(s: &Shared, round: u64) -> Result<Response, HttpError> {
    let history = s.core.history().await.map_err(|_| gone())?;
    let set = history
        .iter()
        .rev()
        .find(|(from, _)| *from <= round)
        .map(|(_, set)| set)
        .ok_or_else(|| {
            HttpError(
                StatusCode::NOT_FOUND,
                format!("no validator set at round {round}"),
            )
        })?;
    Ok(Json(
        set.peers()
            .iter()
            .map(convert::peer_json)
            .collect::<Vec<_>>(),
    )
    .into_response())
}

async fn validators(
    State(s): State<Shared_>,
    Path(round): Path<String>,
) -> Result<Response, HttpError> {
    let round: u64 = round.parse().map_err(|_| {
        HttpError(
            StatusCode::BAD_REQUEST,
            format!("round {round:?} is not a non-negative integer"),
        )
    })?;
    validators_at(&s, round).await
}

async fn validators_last(State(s): State<Shared_>) -> Result<Response, HttpError> {
    let status = s.core.status().await.map_err(|_| gone())?;
    validators_at(&s, status.stats.last_consensus_round.unwrap_or(0)).await
}

async fn history(State(s): State<Shared_>) -> Result<Response, HttpError> {
    let history = s.core.history().await.map_err(|_| gone())?;
    let map: BTreeMap<String, Vec<hearsay_proxy::Peer>> = history
        .iter()
        .map(|(r, set)| {
            (
                r.to_string(),
                set.peers().iter().map(convert::peer_json).collect(),
            )
        })
        .collect();
    Ok(Json(map).into_response())
}

fn parse_index(what: &str, text: &str) -> Result<u64, HttpError> {
    text.parse().map_err(|_| {
        HttpError(
            StatusCode::BAD_REQUEST,
            format!("{what} {text:?} is not a non-negative integer"),
        )
    })
}

async fn block(State(s): State<Shared_>, Path(index): Path<String>) -> Result<Response, HttpError> {
    let index = parse_index("block index", &index)?;
    let mut found = s.core.blocks(index, 1).await.map_err(|_| gone())?;
    match found.pop() {
        Some(b) => Ok(Json(convert::block_json(&b)).into_response()),
        None => Err(HttpError(
            StatusCode::NOT_FOUND,
            format!("no block {index} yet"),
        )),
    }
}

#[derive(Deserialize)]
struct BlocksQuery {
    count: Option<String>,
}

async fn blocks(
    State(s): State<Shared_>,
    Path(start): Path<String>,
    Query(q): Query<BlocksQuery>,
) -> Result<Response, HttpError> {
    let start = parse_index("start", &start)?;
    let count = match q.count {
        None => 1,
        Some(c) => {
            let c = parse_index("count", &c)?;
            if c == 0 || c > MAX_BLOCKS_PER_CALL as u64 {
                return Err(HttpError(
                    StatusCode::BAD_REQUEST,
                    format!("count must be between 1 and {MAX_BLOCKS_PER_CALL}"),
                ));
            }
            c as usize
        }
    };
    let found = s.core.blocks(start, count).await.map_err(|_| gone())?;
    if found.is_empty() {
        return Err(HttpError(
            StatusCode::NOT_FOUND,
            format!("no block {start} yet"),
        ));
    }
    Ok(Json(found.iter().map(convert::block_json).collect::<Vec<_>>()).into_response())
}

/// Most events `/graph` returns.
pub const GRAPH_EVENTS: usize = 2000;

/// The recent DAG for visualisers, in Babble's layout (`ParticipantEvents` by creator, then
/// by event id; `Rounds`; `Blocks`), each event with its consensus facts.
async fn graph(State(s): State<Shared_>) -> Result<Response, HttpError> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let snapshot = s.core.graph(GRAPH_EVENTS).await.map_err(|_| gone())?;
    let mut participants: BTreeMap<String, serde_json::Map<String, serde_json::Value>> = s
        .membership
        .latest()
        .peers()
        .iter()
        .map(|p| (p.pub_key.to_hex(), serde_json::Map::new()))
        .collect();
    for info in &snapshot.events {
        let body = info.event.body();
        let hex_or_empty = |h: Option<hashgraph::Hash>| h.map(|h| h.to_hex()).unwrap_or_default();
        let event = serde_json::json!({
            "Body": {
                "Transactions": body.transactions.iter().map(|t| b64.encode(t)).collect::<Vec<_>>(),
                "InternalTransactions": body.internal_transactions.len(),
                "Parents": [hex_or_empty(body.self_parent), hex_or_empty(body.other_parent)],
                "Creator": body.creator.to_hex(),
                "Index": body.index,
                "Timestamp": body.timestamp,
                "BlockSignatures": body.block_signatures.iter().map(|b| b.index).collect::<Vec<_>>(),
            },
            "Signature": hex::encode(info.event.signature().0),
            "Round": info.round,
            "Witness": info.witness,
            "Famous": info.famous,
            "RoundReceived": info.round_received,
            "ConsensusTimestamp": info.consensus_timestamp,
            "LamportTimestamp": info.lamport,
        });
        participants
            .entry(body.creator.to_hex())
            .or_default()
            .insert(info.event.id().to_hex(), event);
    }
    let rounds: Vec<serde_json::Value> = snapshot
        .rounds
        .iter()
        .map(|(round, witnesses)| {
            let created: serde_json::Map<String, serde_json::Value> = witnesses
                .iter()
                .map(|(id, famous)| {
                    (
                        id.to_hex(),
                        serde_json::json!({"Witness": true, "Famous": famous}),
                    )
                })
                .collect();
            serde_json::json!({"Round": round, "CreatedEvents": created})
        })
        .collect();
    let blocks: Vec<hearsay_proxy::Block> =
        snapshot.blocks.iter().map(convert::block_json).collect();
    Ok(Json(serde_json::json!({
        "ParticipantEvents": participants,
        "Rounds": rounds,
        "Blocks": blocks,
    }))
    .into_response())
}

async fn metrics(State(s): State<Shared_>) -> Result<Response, HttpError> {
    let status = s.core.status().await.map_err(|_| gone())?;
    let st = &status.stats;
    let g = &s.gossip;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(out, "# HELP hearsay_{name} {help}");
        let _ = writeln!(out, "# TYPE hearsay_{name} {kind}");
        let _ = writeln!(out, "hearsay_{name} {value}");
    };
    metric(
        "events_inserted_total",
        "counter",
        "Events inserted into the DAG.",
        st.events_inserted as f64,
    );
    metric(
        "events_self_total",
        "counter",
        "Events this node created.",
        status.self_events as f64,
    );
    metric(
        "events_consensus_total",
        "counter",
        "Events placed in the consensus order.",
        st.consensus_events as f64,
    );
    metric(
        "events_undetermined",
        "gauge",
        "Events not yet ordered.",
        st.undetermined_events as f64,
    );
    metric(
        "events_in_memory",
        "gauge",
        "Events held in memory.",
        st.events_in_memory as f64,
    );
    metric(
        "events_duplicate_total",
        "counter",
        "Received events the DAG already held, dropped before their signatures were checked.",
        g.events_duplicate.load(Ordering::Relaxed) as f64,
    );
    metric(
        "events_rejected_total",
        "counter",
        "Received events failing decoding or signature checks.",
        g.events_rejected.load(Ordering::Relaxed) as f64,
    );
    metric(
        "last_round",
        "gauge",
        "Highest round reached.",
        st.last_round.map_or(-1.0, |r| r as f64),
    );
    metric(
        "last_consensus_round",
        "gauge",
        "Last round decided and received.",
        st.last_consensus_round.map_or(-1.0, |r| r as f64),
    );
    metric(
        "blocks_total",
        "counter",
        "Blocks produced by consensus.",
        status.blocks as f64,
    );
    metric(
        "blocks_committed_total",
        "counter",
        "Blocks the app acknowledged.",
        status.blocks_committed as f64,
    );
    metric(
        "blocks_waiting_for_app",
        "gauge",
        "Blocks waiting for the app's answer.",
        s.delivery.waiting.load(Ordering::Relaxed) as f64,
    );
    metric(
        "app_delivery_failures_total",
        "counter",
        "Failed block deliveries to the app.",
        s.delivery.failures.load(Ordering::Relaxed) as f64,
    );
    metric(
        "transactions_total",
        "counter",
        "Transactions ordered.",
        status.transactions as f64,
    );
    metric(
        "transactions_submitted_total",
        "counter",
        "Transactions accepted from the app.",
        s.pool.submitted() as f64,
    );
    metric(
        "transaction_pool",
        "gauge",
        "Transactions waiting for our next event.",
        s.pool.len() as f64,
    );
    let ok = g.syncs_ok.load(Ordering::Relaxed);
    metric(
        "syncs_total",
        "counter",
        "Syncs this node started that succeeded.",
        ok as f64,
    );
    metric(
        "syncs_failed_total",
        "counter",
        "Syncs this node started that failed.",
        g.syncs_failed.load(Ordering::Relaxed) as f64,
    );
    metric(
        "fast_syncs_total",
        "counter",
        "Fast-syncs this node completed (resumed at an anchored block).",
        g.fast_syncs.load(Ordering::Relaxed) as f64,
    );
    metric(
        "pushes_failed_total",
        "counter",
        "Pushes (a sync's second half, sent in the background) that failed.",
        g.pushes_failed.load(Ordering::Relaxed) as f64,
    );
    metric(
        "sync_seconds_total",
        "counter",
        "Time spent in successful syncs.",
        g.sync_micros.load(Ordering::Relaxed) as f64 / 1e6,
    );
    metric(
        "requests_served_total",
        "counter",
        "Gossip requests peers sent us.",
        g.requests_served.load(Ordering::Relaxed) as f64,
    );
    metric(
        "forkers",
        "gauge",
        "Validators caught forking.",
        st.forkers as f64,
    );
    let parts = s.store.memory_usage();
    if !parts.is_empty() {
        let _ = writeln!(
            out,
            "# HELP hearsay_store_memory_bytes Memory the database holds, by part."
        );
        let _ = writeln!(out, "# TYPE hearsay_store_memory_bytes gauge");
        for (part, bytes) in parts {
            let _ = writeln!(out, "hearsay_store_memory_bytes{{part=\"{part}\"}} {bytes}");
        }
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

async fn health(State(s): State<Shared_>) -> Response {
    match s.core.status().await {
        Ok(status) => Json(serde_json::json!({
            "status": "ok",
            "state": status.state.map(|st| st.to_string()),
        }))
        .into_response(),
        Err(_) => gone().into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn status_line(addr: std::net::SocketAddr) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer.lines().next().unwrap_or_default().to_string()
    }

    #[tokio::test]
    async fn requests_past_the_limit_are_answered_busy_and_the_others_served() {
        let permits = Arc::new(Semaphore::new(1));
        let app = Router::new().route("/x", get(|| async { "ok" })).layer(
            axum::middleware::from_fn_with_state(Arc::clone(&permits), limit_in_flight),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(std::future::IntoFuture::into_future(axum::serve(
            listener, app,
        )));
        assert_eq!(status_line(addr).await, "HTTP/1.1 200 OK");
        // Every permit taken, as if that many requests were being answered.
        let held = Arc::clone(&permits).try_acquire_owned().unwrap();
        assert_eq!(status_line(addr).await, "HTTP/1.1 503 Service Unavailable");
        drop(held);
        assert_eq!(status_line(addr).await, "HTTP/1.1 200 OK");
        server.abort();
    }
}
