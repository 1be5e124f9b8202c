//! The load and its measurement: benchmark transactions that carry their origin and scheduled
//! submit time, an open-loop submitter per proxy connection, and the app that times each
//! transaction's delivery.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hdrhistogram::Histogram;
use hearsay_proxy::jsonrpc::MessageReader;
use hearsay_proxy::{AppHandler, Block, CommitResponse};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// First bytes of every benchmark transaction.
const MAGIC: &[u8; 4] = b"HSB1";
/// Bytes of the head: magic, run nonce, point, node, seq, scheduled submit time.
pub const HEAD_BYTES: usize = 4 + 4 + 2 + 2 + 8 + 8;
/// Smallest `--tx-size`.
pub const MIN_TX_BYTES: usize = 32;
/// Longest latency the histograms hold, in microseconds (one hour); longer ones are clamped.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Where a benchmark transaction comes from and when it was due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxHead {
    /// The run it belongs to (other runs' and other apps' transactions are ignored).
    pub nonce: u32,
    /// The rate of the sweep it belongs to.
    pub point: u16,
    /// The node it was submitted to.
    pub node: u16,
    /// Its number among that node's transactions of that point.
    pub seq: u64,
    /// When it was due, in nanoseconds since the run's clock started.
    pub due_nanos: u64,
}

impl TxHead {
    /// The transaction of `size` bytes (at least [`HEAD_BYTES`]): this head, padded with dots.
    pub fn encode(&self, size: usize) -> Vec<u8> {
        let mut tx = Vec::with_capacity(size.max(HEAD_BYTES));
        tx.extend_from_slice(MAGIC);
        tx.extend_from_slice(&self.nonce.to_be_bytes());
        tx.extend_from_slice(&self.point.to_be_bytes());
        tx.extend_from_slice(&self.node.to_be_bytes());
        tx.extend_from_slice(&self.seq.to_be_bytes());
        tx.extend_from_slice(&self.due_nanos.to_be_bytes());
        tx.resize(size.max(HEAD_BYTES), b'.');
        tx
    }

    /// The head of a benchmark transaction; `None` for any other bytes.
    pub fn decode(tx: &[u8]) -> Option<TxHead> {
        let rest = tx.strip_prefix(MAGIC)?;
        if rest.len() < HEAD_BYTES - MAGIC.len() {
            return None;
        }
        let u16_at = |i: usize| u16::from_be_bytes([rest[i], rest[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes(rest[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_be_bytes(rest[i..i + 8].try_into().expect("8 bytes"));
        Some(TxHead {
            nonce: u32_at(0),
            point: u16_at(4),
            node: u16_at(6),
            seq: u64_at(8),
            due_nanos: u64_at(16),
        })
    }
}

/// The run's clock: nanoseconds since it started, shared by the submitters and the apps.
#[derive(Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    /// A clock starting now.
    pub fn start() -> Clock {
        Clock(Instant::now())
    }
    /// Nanoseconds since the start.
    pub fn now(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// What one node's app saw of one point of the sweep.
pub struct PointDeliveries {
    /// Submit-to-delivery latency of this node's own transactions, microseconds.
    pub latency_us: Histogram<u64>,
    /// Which of this node's transactions arrived, by seq.
    delivered: Vec<bool>,
    /// Distinct transactions of this node delivered.
    pub delivered_count: u64,
    /// Transactions of this node delivered more than once.
    pub duplicates: u64,
    /// Clock reading of the last delivery.
    pub last_delivery: u64,
}

impl PointDeliveries {
    fn new() -> PointDeliveries {
        PointDeliveries {
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("valid histogram bounds"),
            delivered: Vec::new(),
            delivered_count: 0,
            duplicates: 0,
            last_delivery: 0,
        }
    }

    fn record(&mut self, seq: u64, latency_nanos: u64, now: u64) {
        let Ok(seq) = usize::try_from(seq) else {
            return;
        };
        if self.delivered.len() <= seq {
            self.delivered.resize(seq + 1, false);
        }
        if std::mem::replace(&mut self.delivered[seq], true) {
            self.duplicates += 1;
            return;
        }
        self.delivered_count += 1;
        self.latency_us
            .saturating_record((latency_nanos / 1_000).clamp(1, MAX_LATENCY_US));
        self.last_delivery = self.last_delivery.max(now);
    }

    /// Whether transaction `seq` of this node arrived.
    pub fn was_delivered(&self, seq: u64) -> bool {
        usize::try_from(seq)
            .ok()
            .and_then(|s| self.delivered.get(s))
            .copied()
            .unwrap_or(false)
    }
}

/// The app the benchmark serves to one node: it times the delivery of the transactions
/// submitted through that node, and counts every transaction of any origin.
pub struct TimingApp {
    node: u16,
    nonce: u32,
    clock: Clock,
    points: Mutex<Vec<PointDeliveries>>,
    transactions: AtomicU64,
}

impl TimingApp {
    /// The app of node `node` in the run `nonce`.
    pub fn new(node: u16, nonce: u32, clock: Clock) -> TimingApp {
        TimingApp {
            node,
            nonce,
            clock,
            points: Mutex::new(Vec::new()),
            transactions: AtomicU64::new(0),
        }
    }

    /// Transactions of any origin delivered so far.
    pub fn transactions(&self) -> u64 {
        self.transactions.load(Ordering::Relaxed)
    }

    /// Runs `f` on what this app saw of point `point`.
    pub fn with_point<R>(&self, point: u16, f: impl FnOnce(&PointDeliveries) -> R) -> R {
        let mut points = self.points.lock().unwrap_or_else(|p| p.into_inner());
        f(point_entry(&mut points, point))
    }
}

impl AppHandler for TimingApp {
    fn commit_block(&self, block: &Block) -> Result<CommitResponse, String> {
        let now = self.clock.now();
        self.transactions
            .fetch_add(block.body.transactions.len() as u64, Ordering::Relaxed);
        let mut points = self.points.lock().unwrap_or_else(|p| p.into_inner());
        for head in block
            .body
            .transactions
            .iter()
            .filter_map(|t| TxHead::decode(t))
        {
            if head.nonce != self.nonce || head.node != self.node {
                continue;
            }
            point_entry(&mut points, head.point).record(
                head.seq,
                now.saturating_sub(head.due_nanos),
                now,
            );
        }
        Ok(CommitResponse::accept_all(vec![0; 32], block))
    }

    fn get_snapshot(&self, _block_index: u64) -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }

    fn restore(&self, _snapshot: &[u8]) -> Result<Vec<u8>, String> {
        Ok(vec![0; 32])
    }
}

/// The entry of `point`, created empty if the app has not seen it yet.
fn point_entry(points: &mut Vec<PointDeliveries>, point: u16) -> &mut PointDeliveries {
    let i = usize::from(point);
    if points.len() <= i {
        points.resize_with(i + 1, PointDeliveries::new);
    }
    &mut points[i]
}

/// One connection's share of a point's load.
#[derive(Clone)]
pub struct Schedule {
    /// The run, the point and the node the transactions belong to.
    pub nonce: u32,
    /// Point of the sweep.
    pub point: u16,
    /// Node submitted to.
    pub node: u16,
    /// The seqs this connection sends: `first`, `first + stride`, …, `count` of them.
    pub first: u64,
    /// Distance between consecutive seqs (the node's number of connections).
    pub stride: u64,
    /// How many transactions.
    pub count: u64,
    /// Transactions per second on this connection.
    pub rate: f64,
    /// Clock reading when the first is due.
    pub start: u64,
    /// Bytes per transaction.
    pub tx_size: usize,
}

/// What the node answered to a connection's transactions.
#[derive(Debug, Default)]
pub struct Answers {
    /// Seqs the node accepted.
    pub accepted: Vec<u64>,
    /// Transactions it refused (e.g. a full pool).
    pub refused: u64,
    /// The first refusal's text, to show the user.
    pub first_refusal: Option<String>,
    /// Transactions sent but never answered (the connection failed).
    pub unanswered: u64,
}

/// Live counts of a point's answers over all connections, for the progress display.
#[derive(Default)]
pub struct LiveCounts {
    /// Transactions accepted so far.
    pub accepted: AtomicU64,
    /// Transactions refused so far.
    pub refused: AtomicU64,
}

/// Submits `schedule` on one connection to the proxy at `proxy`, open-loop: each transaction
/// is written when due whatever the answers (requests are pipelined; a late connection sends
/// what is due at once). Each transaction carries its due time, so a stalled connection shows
/// up as latency instead of hiding it. Reads the answers until every one has come or
/// `answer_deadline` (a clock reading) has passed.
pub async fn submit(
    proxy: SocketAddr,
    schedule: Schedule,
    clock: Clock,
    answer_deadline: u64,
    live: Arc<LiveCounts>,
) -> anyhow::Result<Answers> {
    let stream = TcpStream::connect(proxy)
        .await
        .with_context(|| format!("cannot connect to the proxy at {proxy}"))?;
    stream.set_nodelay(true)?;
    let (reader, mut writer) = stream.into_split();
    let reading = tokio::spawn(read_answers(
        MessageReader::new(reader),
        schedule.count,
        clock,
        answer_deadline,
        live,
    ));
    let mut sent = 0u64;
    let mut buffer = Vec::new();
    let nanos_per_tx = 1e9 / schedule.rate;
    while sent < schedule.count {
        let now = clock.now();
        let elapsed = now.saturating_sub(schedule.start) as f64;
        let due = ((elapsed / nanos_per_tx).floor() as u64 + 1).min(schedule.count);
        buffer.clear();
        for i in sent..due {
            let head = TxHead {
                nonce: schedule.nonce,
                point: schedule.point,
                node: schedule.node,
                seq: schedule.first + i * schedule.stride,
                due_nanos: schedule.start + (i as f64 * nanos_per_tx) as u64,
            };
            let tx = STANDARD.encode(head.encode(schedule.tx_size));
            // JSON-RPC 1.0 as Go's net/rpc/jsonrpc reads it; base64 needs no escaping.
            buffer.extend_from_slice(b"{\"method\":\"Babble.SubmitTx\",\"params\":[\"");
            buffer.extend_from_slice(tx.as_bytes());
            buffer.extend_from_slice(format!("\"],\"id\":{}}}\n", head.seq).as_bytes());
        }
        if !buffer.is_empty() {
            if let Err(e) = writer.write_all(&buffer).await {
                tracing::debug!(%proxy, error = %e, "the proxy connection failed");
                break;
            }
            sent = due;
        }
        if sent < schedule.count {
            let next_due = schedule.start + (sent as f64 * nanos_per_tx) as u64;
            let wait = next_due.saturating_sub(clock.now());
            tokio::time::sleep(Duration::from_nanos(wait.max(200_000))).await;
        }
    }
    // The reader counts every transaction without an answer, the unsent ones included.
    reading.await.context("the answer reader failed")
}

async fn read_answers(
    mut reader: MessageReader<tokio::net::tcp::OwnedReadHalf>,
    expected: u64,
    clock: Clock,
    deadline: u64,
    live: Arc<LiveCounts>,
) -> Answers {
    let mut answers = Answers::default();
    let mut answered = 0u64;
    while answered < expected {
        let left = Duration::from_nanos(deadline.saturating_sub(clock.now()));
        let Ok(Ok(Some(object))) = tokio::time::timeout(left, reader.read_object()).await else {
            break;
        };
        answered += 1;
        let seq = object.get("id").and_then(serde_json::Value::as_u64);
        match (object.get("result"), seq) {
            (Some(serde_json::Value::Bool(true)), Some(seq)) => {
                answers.accepted.push(seq);
                live.accepted.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                answers.refused += 1;
                live.refused.fetch_add(1, Ordering::Relaxed);
                if answers.first_refusal.is_none() {
                    answers.first_refusal = Some(
                        object
                            .get("error")
                            .map_or_else(|| "no result".into(), ToString::to_string),
                    );
                }
            }
        }
    }
    answers.unanswered = expected - answered;
    answers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_survives_encoding_at_any_size() {
        let head = TxHead {
            nonce: 0xdead_beef,
            point: 3,
            node: 2,
            seq: 1 << 40,
            due_nanos: 123_456_789_012,
        };
        for size in [HEAD_BYTES, MIN_TX_BYTES, 200, 4096] {
            let tx = head.encode(size);
            assert_eq!(tx.len(), size);
            assert_eq!(TxHead::decode(&tx), Some(head));
        }
    }

    #[test]
    fn foreign_and_short_transactions_are_not_benchmark_ones() {
        let tx = TxHead {
            nonce: 1,
            point: 0,
            node: 0,
            seq: 0,
            due_nanos: 0,
        }
        .encode(64);
        assert_eq!(TxHead::decode(&tx[..HEAD_BYTES - 1]), None);
        assert_eq!(TxHead::decode(b"warmup"), None);
        assert_eq!(TxHead::decode(b""), None);
        let mut other = tx.clone();
        other[0] = b'X';
        assert_eq!(TxHead::decode(&other), None);
    }

    #[tokio::test]
    async fn every_transaction_is_counted_once_when_the_proxy_hangs_up() {
        // A proxy that accepts three transactions, refuses the fourth and hangs up.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let proxy = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (reader, mut writer) = stream.into_split();
            let mut reader = MessageReader::new(reader);
            let accept = "true,\"error\":null";
            let refuse = "null,\"error\":\"transaction pool full\"";
            for answer in [accept, accept, accept, refuse] {
                let request = reader.read_object().await.unwrap().unwrap();
                let id = request["id"].clone();
                let line = format!("{{\"id\":{id},\"result\":{answer}}}\n");
                writer.write_all(line.as_bytes()).await.unwrap();
            }
        });
        let clock = Clock::start();
        let schedule = Schedule {
            nonce: 1,
            point: 0,
            node: 0,
            first: 0,
            stride: 1,
            count: 10,
            // Slow enough that the proxy hangs up before the last ones are sent.
            rate: 500.0,
            start: clock.now(),
            tx_size: 64,
        };
        let live = Arc::new(LiveCounts::default());
        let deadline = clock.now() + 30_000_000_000;
        let answers = submit(addr, schedule, clock, deadline, Arc::clone(&live))
            .await
            .unwrap();
        proxy.await.unwrap();
        assert_eq!(answers.accepted, vec![0, 1, 2]);
        assert_eq!(answers.refused, 1);
        assert_eq!(answers.unanswered, 6, "{answers:?}");
        assert!(answers.first_refusal.unwrap().contains("pool full"));
        assert_eq!(live.accepted.load(Ordering::Relaxed), 3);
        assert_eq!(live.refused.load(Ordering::Relaxed), 1);
    }

    fn block_of(transactions: Vec<Vec<u8>>) -> Block {
        Block {
            body: hearsay_proxy::BlockBody {
                transactions,
                ..Default::default()
            },
            signatures: Default::default(),
        }
    }

    #[test]
    fn the_app_times_its_own_nodes_transactions_once_each() {
        let clock = Clock::start();
        let app = TimingApp::new(1, 7, clock);
        let head = |node, seq, nonce| TxHead {
            nonce,
            point: 0,
            node,
            seq,
            due_nanos: 0,
        };
        let block = block_of(vec![
            head(1, 0, 7).encode(40),
            head(1, 2, 7).encode(40),
            head(0, 1, 7).encode(40), // another node's
            head(1, 1, 8).encode(40), // another run's
            head(1, 0, 7).encode(40), // a duplicate
            b"warmup".to_vec(),
        ]);
        app.commit_block(&block).unwrap();
        assert_eq!(app.transactions(), 6);
        app.with_point(0, |p| {
            assert_eq!(p.delivered_count, 2);
            assert_eq!(p.duplicates, 1);
            assert!(p.was_delivered(0) && p.was_delivered(2));
            assert!(!p.was_delivered(1) && !p.was_delivered(u64::MAX));
            assert_eq!(p.latency_us.len(), 2);
        });
        app.with_point(5, |p| assert_eq!(p.delivered_count, 0));
    }
}
