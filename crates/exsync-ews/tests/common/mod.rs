//! Shared by the integration tests: the Python peer and the schema check.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The Python with the pinned interop packages (`EXSYNC_PYTHON`, else the workspace venv).
pub fn python() -> PathBuf {
    let path = std::env::var_os("EXSYNC_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/bin/python"));
    assert!(
        path.exists(),
        "Python for the interop tests not found at {} (set EXSYNC_PYTHON to a Python with \
         tests/interop/requirements.txt installed)",
        path.display()
    );
    path
}

/// Validates every request envelope under `dir` against the official EWS schema; panics with
/// the validator's report when any is invalid. Returns the report.
pub fn validate_requests(dir: &Path) -> String {
    let script = workspace().join("tests/interop/ews/validate_bodies.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(dir)
        .output()
        .expect("run the schema validator");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schema validation failed:\n{report}");
    assert!(
        !report.contains("checked 0 elements"),
        "no request found to validate in {}",
        dir.display()
    );
    report
}
pub mod fake;
pub mod sim;
