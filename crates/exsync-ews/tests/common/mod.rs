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

/// Runs the interop suite's validator (`tests/interop/ews_schema.py requests DIR`) and returns
/// its exit code and report; `None` when Microsoft's EWS schema is not there, which skips the
/// check with a message, unless `EXSYNC_REQUIRE_SCHEMA=1` (CI) makes that a failure.
pub fn run_validator(dir: &Path) -> Option<(i32, String)> {
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
    let code = out.status.code().unwrap_or(-1);
    if code == 3 {
        assert!(
            std::env::var("EXSYNC_REQUIRE_SCHEMA").as_deref() != Ok("1"),
            "the EWS schema is required (EXSYNC_REQUIRE_SCHEMA=1): {report}"
        );
        eprintln!("{report}");
        return None;
    }
    Some((code, report))
}

/// Validates every request envelope under `dir` against Microsoft's EWS schema; panics with
/// the validator's report when any is invalid or none was found. Returns the number of
/// envelopes checked, or `None` when the schema is missing (see [`run_validator`]).
pub fn validate_requests(dir: &Path) -> Option<usize> {
    let (code, report) = run_validator(dir)?;
    assert_eq!(code, 0, "schema validation failed:\n{report}");
    let checked = report
        .lines()
        .find_map(|l| l.strip_prefix("checked ")?.split(' ').next()?.parse().ok());
    Some(checked.expect("the validator reports how many envelopes it checked"))
}

pub mod fake;
pub mod hostile;
pub mod sim;
