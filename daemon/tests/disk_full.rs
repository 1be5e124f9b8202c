//! A full disk, with real processes: four nodes order a steady load of transactions while
//! node 0 keeps its database (`--db`) on a small tmpfs, which the test then fills. Node 0
//! says clearly that the disk holding its database is full and stops (exit status 1, no
//! panic, no abort) instead of running on with a store that misses data; the other three
//! keep ordering blocks meanwhile. Once the space is freed and node 0 is restarted from its
//! datadir and database, it catches up: all four apps hold identical blocks, every
//! transaction whose `SubmitTx` was answered `true` (by any node, node 0 before the failure
//! included) is in them exactly once, and no store holds two events of one creator at one
//! index.
//!
//! Mounting the tmpfs needs root (CAP_SYS_ADMIN): elsewhere the test says that it was
//! skipped, and why, and passes.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::indexed_app::IndexedApp;
use common::{Network, RawProxy};
use hearsay::store::Store;
use hearsay_proxy::Block;

/// Size of the tmpfs holding node 0's database.
const TMPFS_MIB: u64 = 48;

/// A tmpfs mounted on a fresh temporary folder, unmounted when dropped (also when the test
/// fails: declare it before the [`Network`], so that the nodes, which hold files in it, are
/// stopped first).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts it, or says why it cannot.
    fn mount(size_mib: u64) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("no temporary folder: {e}"))?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "`mount -t tmpfs` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy (a process we could not stop holds a file): detach it now, the
            // kernel frees it when the last file closes.
            let lazy = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
            if !lazy.is_ok_and(|s| s.success()) {
                eprintln!(
                    "could not unmount the tmpfs at {}",
                    self.dir.path().display()
                );
            }
        }
    }
}

/// Fills the file system holding `path` with that file, up to the last byte it takes.
struct Filler {
    path: PathBuf,
    file: std::fs::File,
    written: u64,
}

impl Filler {
    fn create(path: PathBuf) -> Filler {
        let file = std::fs::File::create(&path).unwrap();
        let mut filler = Filler {
            path,
            file,
            written: 0,
        };
        filler.top_up();
        filler
    }

    /// Writes until the file system refuses with ENOSPC (again: space freed since, as by the
    /// database deleting a file, is taken back). Any other error fails the test.
    fn top_up(&mut self) {
        let chunk = vec![0x5a; 1 << 16];
        loop {
            match self.file.write(&chunk) {
                Ok(0) => return,
                Ok(n) => self.written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => return, // ENOSPC
                Err(e) => panic!("filling {}: {e}", self.path.display()),
            }
        }
    }

    /// Frees the space.
    fn remove(self) {
        drop(self.file);
        std::fs::remove_file(&self.path).unwrap();
    }
}

/// What the load saw: per node, the transactions answered `true`, and the other answers.
#[derive(Default)]
struct Answers {
    accepted: Vec<Vec<String>>,
    refused: Vec<Vec<String>>,
    /// Connections that failed or answers that never came (the node was down).
    lost: Vec<usize>,
}

impl Answers {
    fn new(n: usize) -> Answers {
        Answers {
            accepted: vec![Vec::new(); n],
            refused: vec![Vec::new(); n],
            lost: vec![0; n],
        }
    }

    fn all_accepted(&self) -> Vec<String> {
        self.accepted.iter().flatten().cloned().collect()
    }
}

/// Submits `disk-full-<node>-<i>` to `addr` until `stop`, reconnecting while the node is down.
/// Every attempt has a new name: an attempt whose answer was lost may still have been
/// accepted, and retrying it under the same name would look like a duplicate.
fn load(
    node: usize,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Answers>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut proxy: Option<RawProxy> = None;
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let Some(conn) = proxy.as_mut() else {
                proxy = RawProxy::try_connect(addr).ok();
                if proxy.is_none() {
                    // Down: wait for it to come back rather than spin.
                    std::thread::sleep(Duration::from_millis(50));
                }
                continue;
            };
            let tx = format!("disk-full-{node}-{i}");
            let answer = conn.try_submit(i, tx.as_bytes());
            i += 1;
            let mut answers = answers.lock().unwrap();
            match answer {
                Ok(v) if v["result"] == true => answers.accepted[node].push(tx),
                Ok(v) => answers.refused[node].push(v["error"].to_string()),
                Err(_) => {
                    answers.lost[node] += 1;
                    proxy = None;
                }
            }
            drop(answers);
            // Pace the load (at most about 100 transactions per second per node).
            std::thread::sleep(Duration::from_millis(10));
        }
    })
}

/// Every event in a store, checking that no creator has two at one index.
fn check_no_fork(who: &str, db: &Path) -> u64 {
    let store = hearsay::store::rocks::RocksStore::open(db)
        .unwrap_or_else(|e| panic!("{who}'s store at {}: {e}", db.display()));
    let mut at: HashMap<(hashgraph::PublicKey, u64), hashgraph::Hash> = HashMap::new();
    let total = store.event_count().unwrap();
    let mut from = 0;
    while from < total {
        let events = store.events_from(from, 10_000).unwrap();
        assert!(
            !events.is_empty(),
            "{who}'s store: events end at {from} of {total}"
        );
        from += events.len() as u64;
        for e in events {
            if let Some(other) = at.insert((*e.creator(), e.index()), e.id()) {
                assert_eq!(
                    other,
                    e.id(),
                    "{who}'s store: two events by {} at index {}",
                    e.creator(),
                    e.index()
                );
            }
        }
    }
    total
}

/// What every node and its app look like, for failure messages.
fn describe(net: &Network, apps: &[Arc<IndexedApp>]) -> String {
    let mut out = String::new();
    for (i, node) in net.nodes.iter().enumerate() {
        let stats = common::http_get(node.service_listen, "/stats")
            .map(|(_, body)| body)
            .unwrap_or_else(|e| format!("unreachable: {e}"));
        out.push_str(&format!(
            "{}: app has {} blocks / {} txs; stats {stats}\n  log tail:\n{}\n",
            node.moniker,
            apps[i].block_count(),
            apps[i].transactions().len(),
            net.log_tail(i, 8)
        ));
    }
    out
}

/// Waits until `done` holds, polling; panics at the deadline saying what it waited for and
/// what the nodes looked like.
async fn wait_until(
    net: &Network,
    apps: &[Arc<IndexedApp>],
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}\n{}",
                describe(net, apps)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_stops_the_node_clearly_and_it_catches_up_once_space_is_freed() {
    let started = Instant::now();
    let tmpfs = match Tmpfs::mount(TMPFS_MIB) {
        Ok(t) => t,
        Err(why) => {
            eprintln!(
                "SKIPPED a_full_disk_stops_the_node_clearly_and_it_catches_up_once_space_is_freed: \
                 it needs a small tmpfs to fill, and mounting one is not permitted here ({why}); \
                 run it as root"
            );
            return;
        }
    };
    let db = tmpfs.path().join("db");
    let db_arg = db.to_str().expect("a UTF-8 temporary path").to_string();

    let mut net = Network::create(4).await;
    net.log_level = "info".into();
    let apps: Vec<Arc<IndexedApp>> = (0..4).map(|_| Arc::new(IndexedApp::default())).collect();
    for (i, app) in apps.iter().enumerate() {
        net.replace_app(i, Arc::clone(app)).await;
    }
    net.start_with(0, &["--db", &db_arg]);
    for i in 1..4 {
        net.start(i);
    }

    // A steady load through all four proxies.
    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(Mutex::new(Answers::new(4)));
    let loaders: Vec<_> = net
        .nodes
        .iter()
        .enumerate()
        .map(|(node, info)| load(node, info.proxy_listen, stop.clone(), answers.clone()))
        .collect();
    let accepted_by = |node: usize| answers.lock().unwrap().accepted[node].clone();
    wait_until(
        &net,
        &apps,
        "every app to order transactions accepted by node 0",
        Duration::from_secs(60),
        || {
            let by_0 = accepted_by(0);
            by_0.len() >= 20 && apps.iter().all(|a| a.has_all(&by_0[..10]))
        },
    )
    .await;

    // Fill node 0's disk while it runs, and keep it full until node 0 gives up.
    let mut filler = Filler::create(tmpfs.path().join("filler"));
    let filled_at = Instant::now();
    println!(
        "filled the {TMPFS_MIB} MiB tmpfs with {} MiB (the database had the rest)",
        filler.written >> 20
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = net.exit_status(0) {
            break status;
        }
        if Instant::now() > deadline {
            panic!(
                "node 0 still runs 60 s after its disk filled\n{}",
                describe(&net, &apps)
            );
        }
        filler.top_up();
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "node 0 stopped {:.1} s after the disk filled: {status}",
        filled_at.elapsed().as_secs_f64()
    );

    // It said so clearly, naming the database folder, and stopped without a panic or abort.
    let log = std::fs::read_to_string(net.log_path(0)).unwrap();
    let disk_full = format!(
        "the disk holding {} is full: free space, then restart",
        db.display()
    );
    let reports: Vec<&str> = log.lines().filter(|l| l.contains(&disk_full)).collect();
    println!("node 0's reports of the full disk:\n{}", reports.join("\n"));
    assert!(
        status.code() == Some(1) && !reports.is_empty() && !log.contains("panicked"),
        "node 0 should log {disk_full:?} and stop with exit status 1; it ended with {status} \
         (a signal means a crash, such as SIGABRT from a failed assertion) after {} such \
         report(s). Its log:\n{}",
        reports.len(),
        net.log_tail(0, 30)
    );
    {
        let answers = answers.lock().unwrap();
        let refusals: HashSet<&String> = answers.refused[0].iter().collect();
        println!(
            "node 0's proxy before it stopped: {} accepted, {} refused {refusals:?}, {} without \
             an answer",
            answers.accepted[0].len(),
            answers.refused[0].len(),
            answers.lost[0]
        );
        // A refusal, if any, names the full disk too (it is not a vague failure).
        assert!(
            answers.refused[0].iter().all(|r| r.contains(&disk_full)),
            "node 0 refused transactions for another reason: {refusals:?}"
        );
    }

    // The other three keep ordering blocks, with transactions accepted after the stop.
    let counts: Vec<usize> = apps.iter().map(|a| a.block_count()).collect();
    let at_stop: Vec<usize> = (1..4).map(|n| accepted_by(n).len()).collect();
    let since_stop = || -> Vec<String> {
        (1..4)
            .flat_map(|n| accepted_by(n).into_iter().skip(at_stop[n - 1]))
            .collect()
    };
    wait_until(
        &net,
        &apps,
        "nodes 1 to 3 to accept transactions without node 0",
        Duration::from_secs(60),
        || since_stop().len() >= 30,
    )
    .await;
    let newer = since_stop();
    wait_until(
        &net,
        &apps,
        "nodes 1 to 3 to order them without node 0",
        Duration::from_secs(60),
        || (1..4).all(|i| apps[i].block_count() >= counts[i] + 3 && apps[i].has_all(&newer)),
    )
    .await;
    println!(
        "without node 0, nodes 1 to 3 went from {:?} to {:?} blocks",
        &counts[1..],
        apps[1..]
            .iter()
            .map(|a| a.block_count())
            .collect::<Vec<_>>()
    );

    // Free the space and restart node 0 from its datadir and database.
    filler.remove();
    net.start_with(0, &["--db", &db_arg]);
    wait_until(
        &net,
        &apps,
        "node 0 to run again",
        Duration::from_secs(60),
        || net.stats(0)["state"] == "Babbling",
    )
    .await;
    let at_restart = accepted_by(0).len();
    wait_until(
        &net,
        &apps,
        "node 0 to accept transactions again",
        Duration::from_secs(60),
        || accepted_by(0).len() >= at_restart + 20,
    )
    .await;
    let by_0: Vec<String> = accepted_by(0).into_iter().skip(at_restart).collect();
    wait_until(
        &net,
        &apps,
        "every app to order them",
        Duration::from_secs(60),
        || apps.iter().all(|a| a.has_all(&by_0)),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for l in loaders {
        tokio::task::spawn_blocking(move || l.join().unwrap())
            .await
            .unwrap();
    }

    // Every accepted transaction everywhere, and all four chains equally long.
    let accepted = answers.lock().unwrap().all_accepted();
    let wanted: HashSet<&String> = accepted.iter().collect();
    assert_eq!(wanted.len(), accepted.len(), "a name was submitted twice");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let lengths: Vec<usize> = apps.iter().map(|a| a.block_count()).collect();
        if apps.iter().all(|a| a.has_all(wanted.iter().copied()))
            && lengths.iter().all(|l| *l == lengths[0])
        {
            break;
        }
        if Instant::now() > deadline {
            let missing: Vec<usize> = apps
                .iter()
                .map(|a| {
                    let got: HashSet<String> = a.transactions().into_iter().collect();
                    wanted.iter().filter(|t| !got.contains(**t)).count()
                })
                .collect();
            panic!(
                "after 120 s: accepted transactions missing per app {missing:?} (of {}), blocks \
                 per app {lengths:?}\n{}",
                accepted.len(),
                describe(&net, &apps)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Identical blocks, dense from 0; every accepted transaction exactly once.
    let chains: Vec<BTreeMap<u64, Block>> = apps
        .iter()
        .map(|a| a.blocks.lock().unwrap().clone())
        .collect();
    for (i, app) in apps.iter().enumerate() {
        assert_eq!(
            *app.mismatches.lock().unwrap(),
            Vec::<u64>::new(),
            "app {i}: a block delivered again differs"
        );
        let indices: Vec<u64> = chains[i].keys().copied().collect();
        assert_eq!(
            indices,
            (0..indices.len() as u64).collect::<Vec<_>>(),
            "app {i}: gap"
        );
        let bodies =
            |c: &BTreeMap<u64, Block>| c.values().map(|b| b.body.clone()).collect::<Vec<_>>();
        assert!(
            bodies(&chains[i]) == bodies(&chains[0]),
            "app {i}'s blocks differ from app 0's"
        );
        let mut seen = HashSet::new();
        for tx in app.transactions() {
            assert!(seen.insert(tx.clone()), "app {i}: {tx} ordered twice");
        }
    }
    assert!(
        std::fs::read_to_string(net.log_path(0))
            .unwrap()
            .contains("resumed from the store"),
        "node 0 did not resume from its store"
    );

    // No store, node 0's included, holds two events of one creator at one index.
    for i in 0..4 {
        net.terminate(i);
    }
    for (i, node) in net.nodes.iter().enumerate() {
        let path = if i == 0 {
            db.clone()
        } else {
            node.datadir.join("db")
        };
        assert!(check_no_fork(&node.moniker, &path) > 0);
    }
    let answers = answers.lock().unwrap();
    println!(
        "{} transactions accepted ({:?} per node), {} blocks, {} blocks delivered again to \
         node 0's app after its restart; {:.0} s in all",
        accepted.len(),
        answers.accepted.iter().map(Vec::len).collect::<Vec<_>>(),
        chains[0].len(),
        *apps[0].redelivered.lock().unwrap(),
        started.elapsed().as_secs_f64()
    );
    drop(answers);
    drop(net);
    drop(tmpfs);
}
