//! `hearsay bench` as a user runs it: a separate process that starts its own network of
//! `hearsay run` processes, or drives running ones from their `testnet.json`, and reports in
//! JSON (and an SVG plot for a sweep).

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn hearsay(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hearsay"));
    command.args(args);
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("hearsay runs")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()))
}

/// Checks what every point must show: nothing lost or twice, everything accepted delivered,
/// ordered percentiles, consensus progress on every node.
fn check_point(point: &Value, rate: u64, nodes: usize) {
    let n = |v: &Value| {
        v.as_f64()
            .unwrap_or_else(|| panic!("not a number: {v} in {point}"))
    };
    assert_eq!(point["config"]["rate"], rate, "{point}");
    assert_eq!(point["lost"], 0, "{point}");
    assert_eq!(point["duplicates"], 0, "{point}");
    let accepted = point["accepted"].as_u64().unwrap();
    assert!(accepted > 0, "{point}");
    assert_eq!(
        accepted + point["refused"].as_u64().unwrap(),
        point["offered"].as_u64().unwrap(),
        "{point}"
    );
    assert!(n(&point["committed_tps"]) > 0.0, "{point}");
    let l = &point["latency_ms"];
    assert!(
        n(&l["p50"]) > 0.0 && n(&l["p50"]) <= n(&l["p90"]),
        "{point}"
    );
    assert!(
        n(&l["p90"]) <= n(&l["p99"]) && n(&l["p99"]) <= n(&l["max"]),
        "{point}"
    );
    assert!(n(&point["events_per_sec"]) > 0.0, "{point}");
    assert!(n(&point["rounds_per_sec"]) > 0.0, "{point}");
    let per_node = point["nodes"].as_array().unwrap();
    assert_eq!(per_node.len(), nodes, "{point}");
    let delivered: u64 = per_node
        .iter()
        .map(|n| n["delivered"].as_u64().unwrap())
        .sum();
    assert_eq!(delivered, accepted, "{point}");
    for node in per_node {
        assert!(n(&node["events_per_sec"]) > 0.0, "{node}");
    }
    assert!(point["machine"]["cpus"].as_u64().unwrap() >= 1, "{point}");
    assert!(point["commit"].is_string(), "{point}");
}

#[test]
fn a_local_network_is_started_measured_and_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let network = dir.path().join("net");
    let out = run(
        hearsay(&["bench", "--nodes", "4", "--rate", "400", "--duration", "3"])
            .arg("--json")
            .arg(&json)
            .arg("--dir")
            .arg(&network),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("| 400 |"), "the table's row: {stdout}");
    let point = read_json(&json);
    check_point(&point, 400, 4);
    for node in point["nodes"].as_array().unwrap() {
        // Local processes: CPU and memory are measured, and the process is gone afterwards.
        assert!(node["cpu_percent"].as_f64().unwrap() > 0.0, "{node}");
        let peak = node["peak_rss_mib"].as_f64().unwrap();
        assert!(
            peak >= node["rss_mib"].as_f64().unwrap() && peak > 1.0,
            "{node}"
        );
        let pid = node["pid"].as_u64().unwrap();
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "node {pid} still runs"
        );
    }
    // --dir keeps the datadirs and the logs.
    for i in 0..4 {
        assert!(network.join(format!("node{i}.log")).exists());
        assert!(network.join(format!("node{i}")).join("priv_key").exists());
    }
}

/// Offered far more than two cores can order, the nodes refuse what does not fit their share
/// of the transaction budget (instead of holding an ever larger backlog in undecided events),
/// and every transaction they accepted is delivered once.
#[test]
fn a_load_beyond_capacity_is_refused_and_all_that_is_accepted_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let rate = 200_000;
    let out = run(
        hearsay(&["bench", "--nodes", "4", "--duration", "3", "--drain", "120"])
            .args(["--rate", &rate.to_string(), "--json"])
            .arg(&json),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let point = read_json(&json);
    check_point(&point, rate, 4);
    assert!(point["refused"].as_u64().unwrap() > 0, "{point}");
    let reasons: Vec<&str> = point["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["first_refusal"].as_str())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("transaction pool full")),
        "refused for the pool's limit: {point}"
    );
}

/// Running nodes, stopped (SIGTERM, then SIGKILL) on drop.
struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        for child in &mut self.0 {
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn running_nodes_are_driven_from_their_testnet_json_through_a_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let out = run(hearsay(&["testnet", "--nodes", "4", "--dir"]).arg(&net));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut nodes = Nodes(Vec::new());
    for i in 0..4 {
        let log = std::fs::File::create(net.join(format!("node{i}.log"))).unwrap();
        nodes.0.push(
            hearsay(&["run", "--no-leave", "--datadir"])
                .arg(net.join(format!("node{i}")))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }
    let json = dir.path().join("sweep.json");
    let out = run(hearsay(&[
        "bench",
        "--sweep",
        "200,400",
        "--duration",
        "2",
        "--external",
    ])
    .arg(net.join("testnet.json"))
    .arg("--json")
    .arg(&json));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let points = read_json(&json);
    let points = points.as_array().expect("a sweep writes an array");
    assert_eq!(points.len(), 2);
    for (point, rate) in points.iter().zip([200, 400]) {
        check_point(point, rate, 4);
        assert!(point["config"]["external"].is_string(), "{point}");
        for node in point["nodes"].as_array().unwrap() {
            // Not our processes: no CPU or memory figures, rather than made-up ones.
            assert!(
                node["pid"].is_null() && node["cpu_percent"].is_null(),
                "{node}"
            );
        }
    }
    // The nodes outlive the benchmark.
    for child in &mut nodes.0 {
        assert!(child.try_wait().unwrap().is_none(), "a node exited");
    }
    let svg = std::fs::read_to_string(json.with_extension("svg")).unwrap();
    assert_eq!(
        svg.matches("<circle").count(),
        4,
        "two rates, p50 and p99: {svg}"
    );
}

#[test]
fn bad_settings_get_a_clear_error_and_start_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let cases: [(Vec<&str>, &str); 3] = [
        (vec!["--tx-size", "8"], "--tx-size"),
        (vec!["--sweep", "100,0"], "rates"),
        (vec!["--external", missing.to_str().unwrap()], "cannot read"),
    ];
    for (args, expected) in cases {
        let out = run(hearsay(&["bench"])
            .args(&args)
            .arg("--dir")
            .arg(dir.path().join("n")));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!dir.path().join("n").exists(), "{args:?} started a network");
    }
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{ not json").unwrap();
    let out = run(hearsay(&["bench", "--external"]).arg(&garbage));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("malformed"), "{stderr}");
}
