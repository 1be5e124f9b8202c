//! `hearsay run` refuses a bad datadir or configuration with a clear message (what is wrong,
//! which file, what to do) and exit status 1, before doing anything else.

use std::path::Path;
use std::process::Command;

fn hearsay(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hearsay"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn run(datadir: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let mut args = vec!["run", "--datadir", datadir.to_str().unwrap()];
    args.extend_from_slice(extra);
    hearsay(&args)
}

fn testnet(dir: &Path) {
    let (code, err) = hearsay(&["testnet", "--nodes", "2", "--dir", dir.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn missing_or_invalid_key() {
    let dir = tempfile::tempdir().unwrap();
    testnet(dir.path());
    let node = dir.path().join("node0");
    std::fs::remove_file(node.join("priv_key")).unwrap();
    let (code, err) = run(&node, &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("priv_key") && err.contains("hearsay keygen"),
        "{err}"
    );
    std::fs::write(node.join("priv_key"), "not hex").unwrap();
    let (code, err) = run(&node, &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("priv_key") && err.contains("not hold a valid"),
        "{err}"
    );
}

#[test]
fn missing_or_malformed_peers() {
    let dir = tempfile::tempdir().unwrap();
    testnet(dir.path());
    let node = dir.path().join("node0");
    std::fs::remove_file(node.join("peers.genesis.json")).unwrap();
    std::fs::write(node.join("peers.json"), "[{\"NetAddr\": }").unwrap();
    let (code, err) = run(&node, &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("peers.json") && err.contains("malformed"),
        "{err}"
    );
    std::fs::remove_file(node.join("peers.json")).unwrap();
    let (code, err) = run(&node, &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("peers.json"), "{err}");
}

#[test]
fn a_port_in_use_is_named() {
    let dir = tempfile::tempdir().unwrap();
    testnet(dir.path());
    let node = dir.path().join("node0");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let (code, err) = run(&node, &["--proxy-listen", &addr]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("--proxy-listen") && err.contains(&addr),
        "{err}"
    );
    // The environment beats the datadir's hearsay.toml, and a flag beats the environment.
    let out = Command::new(env!("CARGO_BIN_EXE_hearsay"))
        .args(["run", "--datadir", node.to_str().unwrap()])
        .env("HEARSAY_PROXY_LISTEN", &addr)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains(&addr), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_hearsay"))
        .args([
            "run",
            "--datadir",
            node.to_str().unwrap(),
            "--listen",
            "0.0.0.0:9",
        ])
        .env("HEARSAY_LISTEN", "127.0.0.1:9")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not advertisable"),
        "the flag did not win: {err}"
    );
}

#[test]
fn version_names_the_commit() {
    let out = Command::new(env!("CARGO_BIN_EXE_hearsay"))
        .arg("version")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("hearsay {} (", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if let Some(head) = head {
        assert!(text.contains(&head), "{text} does not name {head}");
    }
}

#[test]
fn an_unadvertisable_address_and_a_malformed_config_file() {
    let dir = tempfile::tempdir().unwrap();
    testnet(dir.path());
    let node = dir.path().join("node0");
    let (code, err) = run(&node, &["--listen", "0.0.0.0:1337"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not advertisable"), "{err}");
    std::fs::write(node.join("hearsay.toml"), "listen = \n").unwrap();
    let (code, err) = run(&node, &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("hearsay.toml") && err.contains("line 1"),
        "{err}"
    );
}

#[test]
fn keygen_writes_babble_files_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (code, err) = hearsay(&["keygen", "--datadir", d]);
    assert_eq!(code, Some(0), "{err}");
    let key = std::fs::read_to_string(dir.path().join("priv_key")).unwrap();
    assert_eq!(key.len(), 64);
    let public = std::fs::read_to_string(dir.path().join("key.pub")).unwrap();
    assert!(public.starts_with("0X04"));
    let (code, err) = hearsay(&["keygen", "--datadir", d]);
    assert_eq!(code, Some(1));
    assert!(err.contains("refusing to overwrite"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("priv_key")).unwrap(),
        key
    );
}
