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

/// Validates every request envelope under `dir` against Microsoft's EWS schema with the interop
/// suite's validator (`tests/interop/ews_schema.py`); panics with its report when any is invalid
/// or none was found. Without the schema the check is skipped and says so, unless
/// `EXSYNC_REQUIRE_SCHEMA=1` (CI) makes that a failure. Returns the report.
pub fn validate_requests(dir: &Path) -> String {
    let script = workspace().join("tests/interop/ews_schema.py");
    let out = Command::new(python())
        .arg(&script)
        .arg("requests")
        .arg(dir)
        .output()
        .expect("run the schema validator");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.code() == Some(3) {
        assert!(
            std::env::var("EXSYNC_REQUIRE_SCHEMA").as_deref() != Ok("1"),
            "the EWS schema is required (EXSYNC_REQUIRE_SCHEMA=1): {report}"
        );
        eprintln!("{report}");
        return report;
    }
    assert!(out.status.success(), "schema validation failed:\n{report}");
    report
}

pub mod fake;
pub mod hostile;
pub mod sim;
