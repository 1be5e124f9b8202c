//! Shared by the end-to-end benchmarks: an open-loop load of 200-byte transactions through the
//! nodes' proxy ports, and an app that records when each of them is delivered to it.
//!
//! Transaction `seq` of the load on node `node` reads `"<node>-<seq> "` padded with dots; its
//! latency runs from its `SubmitTx` to its delivery to the app of the node it was submitted to.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hearsay_proxy::{AppHandler, Block, CommitResponse};

use super::{Network, RawProxy};

/// Size of every load transaction.
pub const TX_BYTES: usize = 200;

/// Nanoseconds since the Unix epoch (comparable across the benchmark's threads).
pub fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Transaction `seq` of the load on node `node`.
pub fn transaction(node: usize, seq: u64) -> Vec<u8> {
    let mut tx = format!("{node}-{seq} ").into_bytes();
    tx.resize(TX_BYTES, b'.');
    tx
}

/// The (node, seq) of a load transaction; `None` for any other.
fn parse(tx: &[u8]) -> Option<(usize, u64)> {
    let head = tx.split(|&b| b == b' ').next()?;
    let (node, seq) = std::str::from_utf8(head).ok()?.split_once('-')?;
    Some((node.parse().ok()?, seq.parse().ok()?))
}

/// An app that records when each load transaction submitted to its own node reached it, and
/// counts every transaction it is given.
pub struct TimingApp {
    node: usize,
    /// Delivery time (`now_nanos`) by seq of this node's load transactions; 0 while undelivered.
    delivered: Mutex<Vec<u64>>,
    transactions: AtomicU64,
}

impl TimingApp {
    /// The app of node `node`.
    pub fn new(node: usize) -> TimingApp {
        TimingApp {
            node,
            delivered: Mutex::new(Vec::new()),
            transactions: AtomicU64::new(0),
        }
    }

    /// When this node's load transaction `seq` was delivered, if it was.
    pub fn delivered_at(&self, seq: u64) -> Option<u64> {
        let delivered = self.delivered.lock().unwrap();
        delivered.get(seq as usize).copied().filter(|&at| at != 0)
    }

    /// Transactions of any origin delivered so far.
    pub fn transactions(&self) -> u64 {
        self.transactions.load(Ordering::Relaxed)
    }
}

impl AppHandler for TimingApp {
    fn commit_block(&self, block: &Block) -> Result<CommitResponse, String> {
        let now = now_nanos();
        let mut delivered = self.delivered.lock().unwrap();
        for tx in &block.body.transactions {
            if let Some((node, seq)) = parse(tx) {
                if node == self.node {
                    let seq = seq as usize;
                    if delivered.len() <= seq {
                        delivered.resize(seq + 1, 0);
                    }
                    if delivered[seq] == 0 {
                        delivered[seq] = now;
                    }
                }
            }
        }
        self.transactions
            .fetch_add(block.body.transactions.len() as u64, Ordering::Relaxed);
        Ok(CommitResponse::accept_all(vec![0; 32], block))
    }
    fn get_snapshot(&self, _index: u64) -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }
    fn restore(&self, _snapshot: &[u8]) -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }
}

/// Serves every node of `net` with a `TimingApp`, starts the nodes and waits until one
/// transaction submitted through node 0 has reached every app.
pub async fn start_timed(net: &mut Network) -> Vec<Arc<TimingApp>> {
    let apps: Vec<Arc<TimingApp>> = (0..net.nodes.len())
        .map(|i| Arc::new(TimingApp::new(i)))
        .collect();
    for (i, app) in apps.iter().enumerate() {
        net.replace_app(i, Arc::clone(app)).await;
    }
    net.start_all();
    let mut warm = RawProxy::connect(net.nodes[0].proxy_listen);
    assert_eq!(warm.submit(0, b"warmup")["result"], true);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !apps.iter().all(|a| a.transactions() > 0) {
        assert!(
            Instant::now() < deadline,
            "the network did not start\n{}",
            net.describe()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    apps
}

/// An open-loop load running in one thread per proxy.
pub struct Load {
    threads: Vec<JoinHandle<Vec<u64>>>,
    first_seq: u64,
    accepted: Arc<AtomicU64>,
}

impl Load {
    /// Submits `rate` transactions per second in total, split evenly over `proxies`, for
    /// `duration`, each on schedule whatever the answers (a proxy's thread catches up if an
    /// answer is late); seqs start at `first_seq` on every proxy.
    pub fn start(proxies: &[SocketAddr], rate: u64, duration: Duration, first_seq: u64) -> Load {
        let per_node = rate as f64 / proxies.len() as f64;
        let count = (per_node * duration.as_secs_f64()).round() as u64;
        let accepted = Arc::new(AtomicU64::new(0));
        let threads = proxies
            .iter()
            .enumerate()
            .map(|(node, &addr)| {
                let accepted = Arc::clone(&accepted);
                std::thread::spawn(move || {
                    let mut proxy = RawProxy::connect(addr);
                    let mut submitted = Vec::with_capacity(count as usize);
                    let begin = Instant::now();
                    for i in 0..count {
                        let due = begin + Duration::from_secs_f64(i as f64 / per_node);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        let seq = first_seq + i;
                        let tx = transaction(node, seq);
                        let at = now_nanos();
                        if proxy.submit(seq, &tx)["result"] == true {
                            submitted.push(at);
                            accepted.fetch_add(1, Ordering::Relaxed);
                        } else {
                            submitted.push(0);
                        }
                    }
                    submitted
                })
            })
            .collect();
        Load {
            threads,
            first_seq,
            accepted,
        }
    }

    /// Transactions accepted by the proxies so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Waits for the end of the load.
    pub fn join(self) -> Submitted {
        let at = self
            .threads
            .into_iter()
            .map(|t| t.join().expect("a load thread panicked"))
            .collect();
        Submitted {
            first_seq: self.first_seq,
            at,
        }
    }
}

/// What a load submitted.
pub struct Submitted {
    first_seq: u64,
    /// Per proxy, by `seq - first_seq`: submit time (`now_nanos`), or 0 if the proxy refused it.
    at: Vec<Vec<u64>>,
}

impl Submitted {
    /// Transactions the proxies accepted.
    pub fn accepted(&self) -> usize {
        self.at.iter().flatten().filter(|&&at| at != 0).count()
    }

    /// The seq after the last one submitted (where a following load on the same network starts).
    pub fn end_seq(&self) -> u64 {
        self.first_seq + self.at.iter().map(Vec::len).max().unwrap_or(0) as u64
    }

    /// Transactions the proxies refused.
    pub fn refused(&self) -> usize {
        self.at.iter().flatten().filter(|&&at| at == 0).count()
    }

    /// Waits until every accepted transaction has reached its node's app, polling, at most
    /// `timeout`; answers whether they all did.
    pub fn wait_delivered(&self, apps: &[Arc<TimingApp>], timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        // Per proxy, how many of its transactions are known to be settled (delivered or refused).
        let mut settled = vec![0usize; self.at.len()];
        loop {
            let mut done = true;
            for (node, at) in self.at.iter().enumerate() {
                while settled[node] < at.len()
                    && (at[settled[node]] == 0
                        || apps[node]
                            .delivered_at(self.first_seq + settled[node] as u64)
                            .is_some())
                {
                    settled[node] += 1;
                }
                done &= settled[node] == at.len();
            }
            if done {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Latencies and losses as of now.
    pub fn outcome(&self, apps: &[Arc<TimingApp>]) -> Outcome {
        let mut latencies_ms = Vec::new();
        let mut lost = 0;
        let mut first_submit = u64::MAX;
        let mut last_delivery = 0;
        for (node, at) in self.at.iter().enumerate() {
            for (i, &submitted) in at.iter().enumerate() {
                if submitted == 0 {
                    continue;
                }
                first_submit = first_submit.min(submitted);
                match apps[node].delivered_at(self.first_seq + i as u64) {
                    Some(done) => {
                        latencies_ms.push(done.saturating_sub(submitted) as f64 / 1e6);
                        last_delivery = last_delivery.max(done);
                    }
                    None => lost += 1,
                }
            }
        }
        latencies_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
        Outcome {
            latencies_ms,
            lost,
            first_submit,
            last_delivery,
        }
    }
}

/// Latencies and losses of a load.
pub struct Outcome {
    /// Submit-to-delivery latency of every delivered transaction, in ms, sorted.
    pub latencies_ms: Vec<f64>,
    /// Accepted transactions not delivered.
    pub lost: usize,
    /// First submit and last delivery (`now_nanos`).
    pub first_submit: u64,
    /// Last delivery.
    pub last_delivery: u64,
}

impl Outcome {
    /// Delivered transactions per second, from the first submit to the last delivery (at
    /// least one second).
    pub fn committed_tps(&self) -> f64 {
        let window = self.last_delivery.saturating_sub(self.first_submit) as f64 / 1e9;
        self.latencies_ms.len() as f64 / window.max(1.0)
    }

    /// Latency percentile `p` (0..=1) in ms over the accepted transactions, the lost ones
    /// counting as infinitely late; NaN if nothing was accepted.
    pub fn percentile(&self, p: f64) -> f64 {
        let n = self.latencies_ms.len() + self.lost;
        if n == 0 {
            return f64::NAN;
        }
        let rank = ((n - 1) as f64 * p).round() as usize;
        self.latencies_ms
            .get(rank)
            .copied()
            .unwrap_or(f64::INFINITY)
    }
}
