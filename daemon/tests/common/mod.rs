//! Shared by the multi-process tests: a local network of real `hearsay run` processes made by
//! `hearsay testnet`, with in-test apps recording every block they are given.

#![allow(dead_code)]

pub mod indexed_app;
pub mod load;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearsay_proxy::{AppHandler, Block, CommitResponse};
use sha2::{Digest, Sha256};

/// One node of `testnet.json`, as `hearsay testnet` writes it.
pub use hearsay::testnet::TestnetNode as NodeInfo;

/// An app that records the blocks it is given, in order, with Babble's dummy state hash; it
/// accepts every validator-set change unless told to refuse them.
#[derive(Default)]
pub struct RecordingApp {
    pub blocks: Mutex<Vec<Block>>,
    state: Mutex<Vec<u8>>,
    /// The state after each block (the snapshot `State.GetSnapshot` gives for it).
    snapshots: Mutex<std::collections::BTreeMap<u64, Vec<u8>>>,
    /// Snapshots this app was restored from (`State.Restore`).
    pub restores: Mutex<Vec<Vec<u8>>>,
    pub refuse_changes: std::sync::atomic::AtomicBool,
}

impl AppHandler for RecordingApp {
    fn commit_block(&self, block: &Block) -> Result<CommitResponse, String> {
        let mut state = self.state.lock().unwrap();
        for tx in &block.body.transactions {
            let mut h = Sha256::new();
            h.update(&*state);
            h.update(Sha256::digest(tx));
            *state = h.finalize().to_vec();
        }
        self.blocks.lock().unwrap().push(block.clone());
        self.snapshots
            .lock()
            .unwrap()
            .insert(block.body.index, state.clone());
        let mut response = CommitResponse::accept_all(state.clone(), block);
        if self
            .refuse_changes
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            for receipt in &mut response.internal_transaction_receipts {
                receipt.accepted = false;
            }
        }
        Ok(response)
    }
    fn get_snapshot(&self, index: u64) -> Result<Vec<u8>, String> {
        self.snapshots
            .lock()
            .unwrap()
            .get(&index)
            .cloned()
            .ok_or_else(|| format!("no snapshot of block {index}"))
    }
    fn restore(&self, snapshot: &[u8]) -> Result<Vec<u8>, String> {
        *self.state.lock().unwrap() = snapshot.to_vec();
        self.restores.lock().unwrap().push(snapshot.to_vec());
        Ok(snapshot.to_vec())
    }
}

impl RecordingApp {
    /// (block index, transactions as text) of every block received.
    pub fn summary(&self) -> Vec<(u64, Vec<String>)> {
        self.blocks
            .lock()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b.body.index,
                    b.body
                        .transactions
                        .iter()
                        .map(|t| String::from_utf8_lossy(t).into_owned())
                        .collect(),
                )
            })
            .collect()
    }

    /// The state after each block received: (block index, state hash).
    pub fn states(&self) -> Vec<(u64, Vec<u8>)> {
        let snapshots = self.snapshots.lock().unwrap();
        snapshots.iter().map(|(i, s)| (*i, s.clone())).collect()
    }

    /// The state after block `index`, if it was received.
    pub fn state_after(&self, index: u64) -> Option<Vec<u8>> {
        self.snapshots.lock().unwrap().get(&index).cloned()
    }

    /// All transactions received, in order.
    pub fn transactions(&self) -> Vec<String> {
        self.summary().into_iter().flat_map(|(_, t)| t).collect()
    }
}

/// A running local network; nodes are stopped (by their pid) when it is dropped.
pub struct Network {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<NodeInfo>,
    pub apps: Vec<Arc<RecordingApp>>,
    app_tasks: Vec<tokio::task::JoinHandle<()>>,
    children: Vec<Option<Child>>,
    /// `--log` of the nodes (debug in tests; benchmarks use info).
    pub log_level: String,
}

impl Network {
    /// Writes a testnet of `n` nodes and starts an app for each; nodes are started separately.
    pub async fn create(n: usize) -> Network {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_hearsay"))
            .args(["testnet", "--nodes", &n.to_string(), "--dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let nodes = hearsay::testnet::read_testnet(&dir.path().join("testnet.json")).unwrap();
        let mut net = Network {
            dir,
            nodes,
            apps: Vec::new(),
            app_tasks: Vec::new(),
            children: (0..n).map(|_| None).collect(),
            log_level: "debug".into(),
        };
        for i in 0..n {
            let app = Arc::new(RecordingApp::default());
            net.apps.push(Arc::clone(&app));
            let task = start_app(net.nodes[i].client_connect, app).await;
            net.app_tasks.push(task);
        }
        net
    }

    /// Replaces node `i`'s app with a fresh one (as after an app restart).
    pub async fn restart_app(&mut self, i: usize) {
        self.app_tasks[i].abort();
        if !self.app_tasks[i].is_finished() {
            let _ = (&mut self.app_tasks[i]).await;
        }
        let app = Arc::new(RecordingApp::default());
        self.apps[i] = Arc::clone(&app);
        self.app_tasks[i] = start_app(self.nodes[i].client_connect, app).await;
    }

    /// Stops node `i`'s app (its port then refuses connections).
    pub async fn stop_app(&mut self, i: usize) {
        self.app_tasks[i].abort();
        if !self.app_tasks[i].is_finished() {
            let _ = (&mut self.app_tasks[i]).await;
        }
    }

    /// Serves node `i`'s app with `app` instead of its recording app.
    pub async fn replace_app<H: AppHandler>(&mut self, i: usize, app: Arc<H>) {
        self.app_tasks[i].abort();
        if !self.app_tasks[i].is_finished() {
            let _ = (&mut self.app_tasks[i]).await;
        }
        let listener = tokio::net::TcpListener::bind(self.nodes[i].client_connect)
            .await
            .unwrap();
        self.app_tasks[i] = tokio::spawn(hearsay_proxy::serve_app(listener, app));
    }

    /// Starts node `i` as a separate process, logging to `<dir>/node<i>.log`.
    pub fn start(&mut self, i: usize) {
        self.start_with(i, &[]);
    }

    /// Makes the nodes from `count` on joiners: every datadir's peers.json and genesis peers
    /// list only the first `count` nodes.
    pub fn limit_validators(&self, count: usize) {
        let first = &self.nodes[0].datadir;
        let all = hearsay::datadir::read_peers(&first.join(hearsay::datadir::PEERS)).unwrap();
        let keep: Vec<hashgraph::Peer> = all
            .peers()
            .iter()
            .filter(|p| {
                self.nodes[..count]
                    .iter()
                    .any(|n| n.pubkey == p.pub_key.to_hex())
            })
            .cloned()
            .collect();
        assert_eq!(keep.len(), count, "testnet.json and peers.json disagree");
        let set = hashgraph::PeerSet::new(keep).unwrap();
        for node in &self.nodes {
            for name in [hearsay::datadir::PEERS, hearsay::datadir::GENESIS_PEERS[0]] {
                hearsay::datadir::write_peers(&node.datadir.join(name), &set).unwrap();
            }
        }
    }

    /// Starts node `i` with extra `hearsay run` flags. Nodes stop without leaving the
    /// validator set (`--no-leave`) unless `extra` says otherwise.
    pub fn start_with(&mut self, i: usize, extra: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_hearsay"))
            .args(["run", "--datadir"])
            .arg(&self.nodes[i].datadir)
            .args(["--log", &self.log_level])
            .args((!extra.iter().any(|a| a.starts_with("--no-leave"))).then_some("--no-leave"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children[i] = Some(child);
    }

    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i);
        }
    }

    /// Node `i`'s exit status if its process has ended on its own; `None` while it runs (or
    /// if it was never started, or was stopped through [`Network::kill`]/[`Network::terminate`]).
    pub fn exit_status(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        self.children[i].as_mut()?.try_wait().ok().flatten()
    }

    /// The process id of node `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.children[i].as_ref().map(Child::id)
    }

    /// Stops node `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops node `i` with SIGTERM and returns its exit status.
    pub fn terminate(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        let mut child = self.children[i].take()?;
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node{i}.log"))
    }

    /// The last lines of node `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path(i)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// What every node and app looks like, for failure messages.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let stats = http_get(node.service_listen, "/stats")
                .map(|(_, body)| body)
                .unwrap_or_else(|e| format!("unreachable: {e}"));
            out.push_str(&format!(
                "{}: app has {} blocks / {} txs; stats {stats}\n  log tail:\n{}\n",
                node.moniker,
                self.apps[i].summary().len(),
                self.apps[i].transactions().len(),
                self.log_tail(i, 5)
            ));
        }
        out
    }

    /// Node `i`'s `/stats`.
    pub fn stats(&self, i: usize) -> serde_json::Value {
        let (_, body) = http_get(self.nodes[i].service_listen, "/stats").unwrap_or_default();
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
    }

    /// Waits until `done` holds, polling; panics with `describe()` at the deadline.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&Network) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\n{}",
                    self.describe()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if std::env::var_os("HEARSAY_KEEP_TEST_DIR").is_some() {
            eprintln!("keeping {}", self.dir.path().display());
            let _ = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap()).keep();
        }
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for task in &self.app_tasks {
            task.abort();
        }
    }
}

/// Whether node `i`'s app holds every transaction of `wanted`.
pub fn app_has_all(net: &Network, i: usize, wanted: &HashSet<String>) -> bool {
    let got: HashSet<String> = net.apps[i].transactions().into_iter().collect();
    wanted.iter().all(|t| got.contains(t))
}

/// Node `i`'s app holds, after every block it received, the state node `reference`'s app
/// holds after that block (apps resumed from a snapshot start late but never differ).
pub fn assert_same_states(net: &Network, i: usize, reference: usize) {
    for (index, state) in net.apps[i].states() {
        assert_eq!(
            net.apps[reference].state_after(index),
            Some(state),
            "app {i}'s state after block {index} differs from app {reference}'s"
        );
    }
}

/// A `/stats` counter of node `i` as a number (Babble's `/stats` gives strings).
pub fn stat(net: &Network, i: usize, key: &str) -> Option<u64> {
    net.stats(i)[key].as_str().and_then(|v| v.parse().ok())
}

/// Every app of `nodes` holds the same blocks as the longest one over their common length,
/// with indices from 0 and no transaction twice.
pub fn assert_identical_blocks(net: &Network, nodes: &[usize]) {
    let summaries: Vec<_> = nodes.iter().map(|&i| net.apps[i].summary()).collect();
    let shortest = summaries.iter().map(Vec::len).min().unwrap();
    for (k, s) in summaries.iter().enumerate() {
        assert_eq!(
            s[..shortest],
            summaries[0][..shortest],
            "app {} differs from app {}",
            nodes[k],
            nodes[0]
        );
        let indices: Vec<u64> = s.iter().map(|(index, _)| *index).collect();
        assert_eq!(indices, (0..s.len() as u64).collect::<Vec<_>>());
        let txs = net.apps[nodes[k]].transactions();
        let unique: HashSet<&String> = txs.iter().collect();
        assert_eq!(
            unique.len(),
            txs.len(),
            "app {} got a transaction twice",
            nodes[k]
        );
    }
}

/// Submits `count` transactions named `prefix-<node>-<i>` through the proxy ports of `nodes`,
/// one raw JSON-RPC connection per node, many requests per connection; every one must be
/// answered `true`. Returns them.
pub async fn submit_via(net: &Network, nodes: &[usize], prefix: &str, count: usize) -> Vec<String> {
    let n = nodes.len();
    let mut threads = Vec::new();
    for (k, &node) in nodes.iter().enumerate() {
        let addr = net.nodes[node].proxy_listen;
        let prefix = prefix.to_string();
        let per_node = count / n + usize::from(k < count % n);
        threads.push(std::thread::spawn(move || {
            let mut proxy = RawProxy::connect(addr);
            let mut sent = Vec::new();
            for i in 0..per_node {
                let tx = format!("{prefix}-{node}-{i}");
                let answer = proxy.submit(i as u64, tx.as_bytes());
                assert_eq!(
                    answer,
                    serde_json::json!({"id": i, "result": true, "error": null}),
                    "node {node} refused {tx}"
                );
                sent.push(tx);
            }
            sent
        }));
    }
    let mut all = Vec::new();
    for t in threads {
        all.extend(
            tokio::task::spawn_blocking(move || t.join().unwrap())
                .await
                .unwrap(),
        );
    }
    all
}

/// Continuous load through some nodes' proxies, about 100 transactions per second per node,
/// until stopped; only answers `true` count as accepted. A node that is down is retried.
pub struct BackgroundLoad {
    stop: Arc<std::sync::atomic::AtomicBool>,
    accepted: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl BackgroundLoad {
    /// Starts loading `nodes`, with transactions named `prefix-<node>-<i>`.
    pub fn start(net: &Network, nodes: &[usize], prefix: &str) -> BackgroundLoad {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for &node in nodes {
            let addr = net.nodes[node].proxy_listen;
            let (stop, accepted) = (Arc::clone(&stop), Arc::clone(&accepted));
            let prefix = prefix.to_string();
            threads.push(std::thread::spawn(move || {
                let mut conn = None;
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // Every attempt carries new content: an attempt whose answer was lost
                    // (the node was killed) may have been accepted, and sending its bytes
                    // again would be a second transaction with the same content.
                    let tx = format!("{prefix}-{node}-{i}");
                    i += 1;
                    if try_submit(addr, &mut conn, i, &tx) {
                        accepted.lock().unwrap().push(tx);
                    } else {
                        // The node is down: wait for it to come back rather than spin.
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    // Paces the load; not a synchronisation.
                    std::thread::sleep(Duration::from_millis(10));
                }
            }));
        }
        BackgroundLoad {
            stop,
            accepted,
            threads,
        }
    }

    /// How many transactions were accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.lock().unwrap().len()
    }

    /// Stops the load and returns the accepted transactions.
    pub async fn stop(self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for thread in self.threads {
            tokio::task::spawn_blocking(move || thread.join().unwrap())
                .await
                .unwrap();
        }
        let accepted = self.accepted.lock().unwrap().clone();
        accepted
    }
}

/// Submits one transaction on `conn` (connecting if needed); true only for an answer `true`.
fn try_submit(
    addr: SocketAddr,
    conn: &mut Option<BufReader<TcpStream>>,
    id: u64,
    tx: &str,
) -> bool {
    use base64::Engine;
    if conn.is_none() {
        let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        *conn = Some(BufReader::new(stream));
    }
    let stream = conn.as_mut().expect("connected");
    let request = serde_json::json!({
        "method": "Babble.SubmitTx",
        "params": [base64::engine::general_purpose::STANDARD.encode(tx)],
        "id": id
    });
    let mut line = String::new();
    let ok = stream
        .get_mut()
        .write_all(request.to_string().as_bytes())
        .is_ok()
        && stream.read_line(&mut line).is_ok_and(|n| n > 0);
    if !ok {
        *conn = None;
        return false;
    }
    serde_json::from_str::<serde_json::Value>(&line).is_ok_and(|v| v["result"] == true)
}

async fn start_app(addr: SocketAddr, app: Arc<RecordingApp>) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(hearsay_proxy::serve_app(listener, app))
}

/// A raw JSON-RPC connection to a node's proxy port, as any app would open.
pub struct RawProxy {
    stream: BufReader<TcpStream>,
}

impl RawProxy {
    pub fn connect(addr: SocketAddr) -> RawProxy {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match RawProxy::try_connect(addr) {
                Ok(proxy) => return proxy,
                Err(e) if Instant::now() > deadline => panic!("proxy {addr}: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// One attempt to connect, for a node that may be down.
    pub fn try_connect(addr: SocketAddr) -> std::io::Result<RawProxy> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        Ok(RawProxy {
            stream: BufReader::new(stream),
        })
    }

    /// Sends raw bytes and reads one answer line.
    pub fn call_raw(&mut self, bytes: &[u8]) -> std::io::Result<String> {
        self.stream.get_mut().write_all(bytes)?;
        let mut line = String::new();
        self.stream.read_line(&mut line)?;
        Ok(line)
    }

    /// Submits a transaction, returning the answer as JSON.
    pub fn submit(&mut self, id: u64, tx: &[u8]) -> serde_json::Value {
        self.try_submit(id, tx)
            .unwrap_or_else(|e| panic!("SubmitTx {id}: {e}"))
    }

    /// Submits a transaction; an error if the connection fails or the answer is not JSON
    /// (as when the node stops: the answer is then unknown).
    pub fn try_submit(&mut self, id: u64, tx: &[u8]) -> std::io::Result<serde_json::Value> {
        use base64::Engine;
        let request = serde_json::json!({
            "method": "Babble.SubmitTx",
            "params": [base64::engine::general_purpose::STANDARD.encode(tx)],
            "id": id
        });
        let line = self.call_raw(request.to_string().as_bytes())?;
        serde_json::from_str(&line).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("answer {line:?}: {e}"),
            )
        })
    }
}

/// A plain HTTP/1.1 GET; returns (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    // Chunked bodies: axum sends JSON with a content length, so the body is plain.
    Ok((status, body))
}
