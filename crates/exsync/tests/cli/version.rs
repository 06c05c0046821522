//! `exsync --version`: the release and the commit the binary was built from.

use exsync_testkit::cli;

#[test]
fn version_names_the_release_and_the_commit_it_was_built_from() {
    let ran = cli::run(env!("CARGO_BIN_EXE_exsync"), ["--version"]);
    assert_eq!(ran.code(), Some(0), "{ran:?}");
    let line = ran.stdout.trim_end();
    let prefix = format!("exsync {} (commit ", env!("CARGO_PKG_VERSION"));
    let commit = line
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("--version printed {line:?}, expected {prefix}<commit>)"));
    // Built from a git checkout (as the tests are, without EXSYNC_COMMIT), it is HEAD's
    // commit. The variable is not consulted here: cargo gives the build script's output to the
    // tests' environment too, so it would only repeat what the binary says.
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(exsync_testkit::paths::workspace())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match head {
        Some(head) => assert_eq!(commit, head, "the binary is not stamped with HEAD"),
        // A source tarball: a commit its maker gave, or "unknown".
        None => assert!(
            commit == "unknown" || commit.chars().all(|c| c.is_ascii_hexdigit()),
            "{commit}"
        ),
    }
}
