//! The CI simulator sweep: `hearsay sim` over 500 seeds for each n ∈ {1, 4, 7, 10} with the
//! maximum number of Byzantine validators, run as a user runs it (a separate process). One test
//! per n so that the test runner spreads them over the cores.

use std::process::Command;

const SEEDS: &str = "0..500";

/// Runs the sweep for `nodes` validators and returns its summary line.
fn sweep(nodes: usize) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hearsay"))
        .args(["sim", "--nodes", &nodes.to_string(), "--seeds", SEEDS])
        .output()
        .expect("hearsay runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "hearsay sim --nodes {nodes} --seeds {SEEDS} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
        .lines()
        .find(|l| l.starts_with(&format!("nodes={nodes} ")))
        .unwrap_or_else(|| panic!("no summary line in:\n{stdout}"))
        .to_string()
}

/// The number after `key=` in the summary line.
fn field(line: &str, key: &str) -> u64 {
    let needle = format!("{key}=");
    let at = line
        .find(&needle)
        .unwrap_or_else(|| panic!("no {needle} in {line:?}"));
    let digits: String = line[at + needle.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("{needle} is not a number in {line:?}"))
}

fn check(nodes: usize) {
    let line = sweep(nodes);
    assert_eq!(field(&line, "seeds"), 500, "{line}");
    assert_eq!(field(&line, "byzantine"), (nodes as u64 - 1) / 3, "{line}");
    assert_eq!(field(&line, "violations"), 0, "{line}");
    assert_eq!(field(&line, "panics"), 0, "{line}");
    assert!(field(&line, "min") > 0, "a run produced no block: {line}");
    if nodes >= 4 {
        assert!(
            field(&line, "detected") > 0,
            "no forker was ever caught: {line}"
        );
    }
}

#[test]
fn sweep_1_validator() {
    check(1);
}

#[test]
fn sweep_4_validators_1_byzantine() {
    check(4);
}

#[test]
fn sweep_7_validators_2_byzantine() {
    check(7);
}

#[test]
fn sweep_10_validators_3_byzantine() {
    check(10);
}
