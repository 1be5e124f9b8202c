//! The README's first command, `demo/run`, in its non-interactive mode: 4 nodes and 4 chat apps
//! on loopback, one message from each app, the same committed lines in the same order in all
//! four, and everything stopped (the script stops its processes by PID and exits 0).
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[test]
fn demo_run_check_commits_every_message_in_the_same_order_everywhere() {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../demo/run");
    let hearsay = Path::new(env!("CARGO_BIN_EXE_hearsay"));
    // `hearsay-chat` belongs to hearsay-proxy: Cargo builds it next to `hearsay` when the test
    // build covers the workspace (scripts/test, `cargo test --workspace`). The script is not
    // asked to build it: Cargo holds the target directory's lock while tests run.
    let chat = hearsay.with_file_name(format!("hearsay-chat{}", std::env::consts::EXE_SUFFIX));
    assert!(
        chat.is_file(),
        "{} is missing: build it first (`cargo build -p hearsay-proxy`), or run the tests \
         with --workspace as scripts/test does",
        chat.display()
    );

    // CARGO_TARGET_DIR, when set, is inherited; with both binaries given nothing is built.
    let output = Command::new(&script)
        .arg("--check")
        .env("HEARSAY_BIN", hearsay)
        .env("HEARSAY_CHAT_BIN", &chat)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("demo check passed: 4 nodes"),
        "demo/run --check failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    // Four committed lines, one from each app, each printed once in the summary.
    for app in 0..4 {
        let line = format!("] app{app}: check ");
        assert_eq!(
            stdout.matches(&line).count(),
            1,
            "app{app}'s message in the summary\n--- stdout\n{stdout}"
        );
    }
}
