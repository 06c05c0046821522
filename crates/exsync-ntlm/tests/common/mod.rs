//! Finding the Python peer for the interop tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// `$EXSYNC_PYTHON`, else the workspace venv; panics with instructions when neither exists.
pub fn python() -> PathBuf {
    let path = std::env::var_os("EXSYNC_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"));
    assert!(
        path.exists(),
        "Python with pyspnego not found at {} - create the venv from tests/interop/requirements.txt \
         or point EXSYNC_PYTHON at an interpreter that has pyspnego and cryptography",
        path.display()
    );
    path
}

pub fn helper(name: &str) -> PathBuf {
    let path = workspace_root().join("tests/interop/ntlm").join(name);
    assert!(path.exists(), "helper script {} missing", path.display());
    path
}
