//! Stamps the binary with the commit it was built from, for `exsync --version`: an admin (or a
//! bug report) can then name the exact source a running server came from.
//!
//! `EXSYNC_COMMIT` wins when set (a build from a source tarball, where there is no git
//! repository, gets its commit from whoever made the tarball); otherwise git is asked; a build
//! with neither says "unknown" rather than failing.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=EXSYNC_COMMIT");
    println!("cargo:rerun-if-env-changed=GIT_DIR");
    let commit = std::env::var("EXSYNC_COMMIT")
        .ok()
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .or_else(from_git)
        .unwrap_or_else(|| {
            // No commit to be had: look again once the tree becomes a checkout (a missing
            // path makes cargo run this script on every build, which costs a tarball little).
            println!("cargo:rerun-if-changed=../../.git");
            "unknown".to_owned()
        });
    println!("cargo:rustc-env=EXSYNC_COMMIT={commit}");
}

/// The checked-out commit, abbreviated as `git log --oneline` shows it, and a rebuild whenever
/// it moves (a commit, a checkout, a rebase).
fn from_git() -> Option<String> {
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    // HEAD names the branch; the branch's ref (loose or packed) names the commit.
    for path in [
        git(&["rev-parse", "--git-path", "HEAD"]),
        git(&["rev-parse", "--symbolic-full-name", "HEAD"])
            .and_then(|branch| git(&["rev-parse", "--git-path", &branch])),
        git(&["rev-parse", "--git-path", "packed-refs"]),
    ]
    .into_iter()
    .flatten()
    {
        let path = PathBuf::from(path);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    Some(commit)
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}
