//! The workspace, the interop Python and our built binaries, as the tests find them.

use std::path::{Path, PathBuf};

/// The workspace root. The kit lives in `crates/exsync-testkit`, so its own manifest dir is a
/// fixed two levels below, whichever crate's test calls this.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
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

/// The directory holding our binaries: `EXSYNC_BIN_DIR`, else the target dir the running test
/// was built into (`target/<profile>/deps/<test>` → `target/<profile>`). Only the owning
/// package's tests get `CARGO_BIN_EXE_…`; the others find a binary here.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("EXSYNC_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test executable sits in target/<profile>/deps")
        .to_path_buf()
}

/// One of our binaries in [`bin_dir`]; panics with how to build it when it is not there.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} not found: build it first (cargo build -p {name}) or set EXSYNC_BIN_DIR",
        path.display()
    );
    path
}
