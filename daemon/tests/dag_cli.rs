//! `hearsay dag FILE` as a user runs it: a separate process, JSON on stdout, exit status 2 and
//! a message naming the event for a malformed play list.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

fn hearsay_dag(file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hearsay"))
        .arg("dag")
        .arg(file)
        .output()
        .expect("hearsay runs")
}

fn vector_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../vectors")
        .join(name)
}

/// A scratch file under the target directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn with(name: &str, contents: &str) -> Scratch {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let path = dir.join(format!("{name}-{}.json", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn plays_a_vector_and_prints_its_consensus() {
    let path = vector_path("babble_initMonologueHashgraph.json");
    let out = hearsay_dag(&path);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let vector: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();

    // Rounds, witness flags, fame and Lamport timestamps as the vector asserts them; round
    // received as the paper gives it (vectors/README.md).
    let expected = |property: &str| -> Value {
        vector["expected"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["property"] == property)
            .unwrap_or_else(|| panic!("the vector asserts {property}"))["values"]
            .clone()
    };
    for property in ["round", "famous", "lamport_timestamp"] {
        for (name, want) in expected(property).as_object().unwrap() {
            assert_eq!(&got["events"][name][property], want, "{property} of {name}");
        }
    }
    for (name, rr) in vector["swirlds_paper_differences"]["round_received"]
        .as_object()
        .unwrap()
    {
        assert_eq!(
            got["events"][name]["round_received"], rr["swirlds_paper_literal"],
            "round_received of {name}"
        );
    }
    for (round, names) in expected("witnesses_by_round").as_object().unwrap() {
        for name in names.as_array().unwrap() {
            let event = &got["events"][name.as_str().unwrap()];
            assert_eq!(event["witness"], true, "{name} is a witness");
            assert_eq!(event["round"].to_string(), *round);
        }
    }
    // Every event of the file is reported, undecided ones with nulls.
    assert_eq!(
        got["events"].as_object().unwrap().len(),
        vector["events"].as_array().unwrap().len()
    );
    assert_eq!(got["events"]["w80"]["famous"], Value::Null);
    assert_eq!(got["events"]["w80"]["round_received"], Value::Null);
    assert_eq!(got["events"]["w80"]["consensus_timestamp"], Value::Null);
    // A single creator's events are ordered in their own sequence.
    assert_eq!(
        got["consensus_order"],
        json!(["w00", "w10", "w20", "w30", "w40", "w50", "w60"])
    );
    assert_eq!(got["last_consensus_round"], 6);
}

#[test]
fn transactions_become_blocks_in_consensus_order() {
    // Two creators; with n = 2 the supermajority is 2, so each round needs both.
    let list = json!({
        "participants": {"count": 2},
        "events": [
            {"name": "a0", "creator": 0, "index": 0, "self_parent": null, "other_parent": null, "transactions": ["first"]},
            {"name": "b0", "creator": 1, "index": 0, "self_parent": null, "other_parent": null, "transactions": ["second"]},
            {"name": "a1", "creator": 0, "index": 1, "self_parent": "a0", "other_parent": "b0", "transactions": []},
            {"name": "b1", "creator": 1, "index": 1, "self_parent": "b0", "other_parent": "a1", "transactions": []},
            {"name": "a2", "creator": 0, "index": 2, "self_parent": "a1", "other_parent": "b1", "transactions": []},
            {"name": "b2", "creator": 1, "index": 2, "self_parent": "b1", "other_parent": "a2", "transactions": []},
            {"name": "a3", "creator": 0, "index": 3, "self_parent": "a2", "other_parent": "b2", "transactions": []},
            {"name": "b3", "creator": 1, "index": 3, "self_parent": "b2", "other_parent": "a3", "transactions": []},
            {"name": "a4", "creator": 0, "index": 4, "self_parent": "a3", "other_parent": "b3", "transactions": []},
            {"name": "b4", "creator": 1, "index": 4, "self_parent": "b3", "other_parent": "a4", "transactions": []},
            {"name": "a5", "creator": 0, "index": 5, "self_parent": "a4", "other_parent": "b4", "transactions": []},
            {"name": "b5", "creator": 1, "index": 5, "self_parent": "b4", "other_parent": "a5", "transactions": []},
            {"name": "a6", "creator": 0, "index": 6, "self_parent": "a5", "other_parent": "b5", "transactions": []}
        ]
    });
    let file = Scratch::with("two-creators", &list.to_string());
    let out = hearsay_dag(&file.0);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    let blocks = got["blocks"].as_array().unwrap();
    assert!(!blocks.is_empty(), "no block in {got}");
    assert_eq!(blocks[0]["index"], 0);
    // Both transactions are in round 0's block, whichever order consensus picked.
    let mut txs: Vec<&str> = blocks[0]["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    txs.sort();
    assert_eq!(txs, ["first", "second"]);
    assert_eq!(
        blocks[0]["round_received"],
        got["events"]["a0"]["round_received"]
    );
    // The consensus order lists exactly the received events, grouped by round received.
    let order = got["consensus_order"].as_array().unwrap();
    let rounds: Vec<u64> = order
        .iter()
        .map(|n| {
            got["events"][n.as_str().unwrap()]["round_received"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(rounds.windows(2).all(|w| w[0] <= w[1]), "{rounds:?}");
    let received = got["events"]
        .as_object()
        .unwrap()
        .values()
        .filter(|e| !e["round_received"].is_null())
        .count();
    assert_eq!(order.len(), received);
}

/// Each malformed play list is refused with exit status 2 and a message naming the problem.
#[test]
fn malformed_play_lists_exit_2_naming_the_event() {
    let event = |name: &str, creator: u64, index: u64, sp: Value, op: Value| json!({"name": name, "creator": creator, "index": index, "self_parent": sp, "other_parent": op, "transactions": []});
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "unknown-parent",
            json!({"participants": {"count": 2}, "events": [
                event("a0", 0, 0, Value::Null, Value::Null),
                event("a1", 0, 1, json!("a0"), json!("ghost")),
            ]})
            .to_string(),
            &["\"a1\"", "ghost"],
        ),
        (
            "duplicate-name",
            json!({"participants": {"count": 2}, "events": [
                event("a0", 0, 0, Value::Null, Value::Null),
                event("a0", 1, 0, Value::Null, Value::Null),
            ]})
            .to_string(),
            &["\"a0\"", "earlier event"],
        ),
        (
            "creator-out-of-range",
            json!({"participants": {"count": 2}, "events": [
                event("z0", 7, 0, Value::Null, Value::Null),
            ]})
            .to_string(),
            &["\"z0\"", "creator 7"],
        ),
        (
            "bad-index",
            json!({"participants": {"count": 2}, "events": [
                event("a0", 0, 0, Value::Null, Value::Null),
                event("a5", 0, 5, json!("a0"), Value::Null),
            ]})
            .to_string(),
            &["\"a5\""],
        ),
        (
            "bad-json",
            "{\"participants\": {\"count\": 2}, \"events\": [".to_string(),
            &["not a valid play list"],
        ),
        (
            "not-a-play-list",
            "[1, 2, 3]".to_string(),
            &["not a valid play list"],
        ),
    ];
    for (name, contents, needles) in cases {
        let file = Scratch::with(name, &contents);
        let out = hearsay_dag(&file.0);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: stderr {stderr}");
        assert!(out.stdout.is_empty(), "{name}: printed output");
        for needle in needles {
            assert!(
                stderr.contains(needle),
                "{name}: {needle:?} not in {stderr:?}"
            );
        }
    }
    let missing = hearsay_dag(Path::new("/nonexistent/play-list.json"));
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot open"));
}
