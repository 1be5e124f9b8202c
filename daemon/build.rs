//! Records the git commit the binary is built from, for `hearsay version`.

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    if let Some(commit) = commit {
        println!("cargo:rustc-env=HEARSAY_GIT_COMMIT={commit}");
    }
    // Rebuild when HEAD moves (a commit or a checkout), so the commit shown stays true. Git
    // names the files, since in a worktree `.git` is a file pointing elsewhere.
    for name in ["HEAD", "refs/heads", "packed-refs"] {
        let path = Command::new("git")
            .args(["rev-parse", "--git-path", name])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok());
        // A path that does not exist (packed-refs, before git packs any) would make Cargo
        // run this script, and rebuild the crate, on every build.
        if let Some(path) = path.map(|p| p.trim().to_string()) {
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    println!("cargo:rerun-if-env-changed=HEARSAY_GIT_COMMIT");
}
