//! The interop suite's EWS schema validator (`tests/interop/ews_schema.py`), run on a directory
//! of traced envelopes. Without Microsoft's schema on disk (exit 3) a check is skipped with a
//! message, unless `EXSYNC_REQUIRE_SCHEMA=1` (CI) makes that a failure: a developer machine
//! need not have the schema, CI must.

use std::path::Path;
use std::process::Command;

use crate::paths::{python, workspace};

/// Which envelopes of a trace directory the validator checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelopes {
    /// What a client sent (`*.xml` that are not `*.response.xml`).
    Requests,
    /// What a server answered.
    Replies,
}

impl Envelopes {
    fn arg(self) -> &'static str {
        match self {
            Envelopes::Requests => "requests",
            Envelopes::Replies => "replies",
        }
    }
}

/// Runs the validator on `dir` and returns its exit code and report (stdout then stderr);
/// `None` when the schema is missing and may be (see the module docs).
pub fn run_validator(which: Envelopes, dir: &Path) -> Option<(i32, String)> {
    let out = Command::new(python())
        .arg(workspace().join("tests/interop/ews_schema.py"))
        .arg(which.arg())
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

/// Validates every request envelope under `dir`; panics with the validator's report when any
/// is invalid or none was found. Returns how many were checked, `None` without the schema.
pub fn validate_requests(dir: &Path) -> Option<usize> {
    let (code, report) = run_validator(Envelopes::Requests, dir)?;
    assert_eq!(code, 0, "schema validation failed:\n{report}");
    let checked = report
        .lines()
        .find_map(|l| l.strip_prefix("checked ")?.split(' ').next()?.parse().ok());
    Some(checked.expect("the validator reports how many envelopes it checked"))
}

/// Validates every reply envelope under `dir`; panics with the report when any is invalid.
pub fn assert_replies_valid(dir: &Path) {
    if let Some((code, report)) = run_validator(Envelopes::Replies, dir) {
        assert_eq!(code, 0, "replies fail the EWS schema:\n{report}");
    }
}
