//! Whether the files on this server that hold the state and the key to the secrets are
//! private to the account the service runs as. Only metadata is read: a missing file is
//! reported as such and never created.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::{Outcome, Step};

/// The name of the permissions step, as the report shows it.
pub const FILES: &str = "State and key file permissions";

/// A file to look at, with what it is for the evidence.
pub struct LocalFile {
    /// What the file is, as the evidence names it (for instance `state database`).
    pub what: &'static str,
    /// Where the file is; only its metadata is read, and nothing is created there.
    pub path: PathBuf,
    /// Whether it is worth a line of evidence when it is not there (the WAL and shared
    /// memory files come and go with the database's connections).
    pub expected: bool,
}

/// The SQLite database at `path` with its write-ahead log and shared memory files.
pub fn state_files(path: &Path) -> Vec<LocalFile> {
    let beside = |suffix: &str| {
        let mut name = OsString::from(path.as_os_str());
        name.push(suffix);
        PathBuf::from(name)
    };
    vec![
        LocalFile {
            what: "state database",
            path: path.to_owned(),
            expected: true,
        },
        LocalFile {
            what: "state database log",
            path: beside("-wal"),
            expected: false,
        },
        LocalFile {
            what: "state database shared memory",
            path: beside("-shm"),
            expected: false,
        },
    ]
}

/// The step: a warning naming each file that its group or others may use, with the
/// `chmod` that fixes it.
pub fn permissions(files: &[LocalFile]) -> Step {
    let mut step = Step::new(FILES, Outcome::Pass);
    let mut open = Vec::new();
    for file in files {
        match std::fs::metadata(&file.path) {
            Ok(meta) => match mode(&meta) {
                Some(m) if m & 0o077 != 0 => {
                    step.evidence.push(format!(
                        "{} {} has mode {m:03o}: its group or other users can read or change it",
                        file.what,
                        file.path.display()
                    ));
                    open.push(file.path.clone());
                }
                Some(m) => step.evidence.push(format!(
                    "{} {} has mode {m:03o}",
                    file.what,
                    file.path.display()
                )),
                None => step.evidence.push(format!(
                    "{} {}: permissions are only checked on Unix",
                    file.what,
                    file.path.display()
                )),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if file.expected {
                    step.evidence.push(format!(
                        "{} {} does not exist (yet)",
                        file.what,
                        file.path.display()
                    ));
                }
            }
            Err(e) => {
                step.outcome = Outcome::Warn;
                step.evidence.push(format!(
                    "{} {}: cannot read its permissions: {e}",
                    file.what,
                    file.path.display()
                ));
            }
        }
    }
    if !open.is_empty() {
        step.outcome = Outcome::Warn;
        let paths: Vec<String> = open.iter().map(|p| shell_word(p)).collect();
        step.fix = Some(format!(
            "chmod 600 {} (the state database holds the encrypted secrets, console sessions, the audit log and every user's sync state; the key file decrypts the secrets)",
            paths.join(" ")
        ));
    } else if step.outcome == Outcome::Warn {
        step.fix = Some(
            "run the check as the account the service runs as, so it can see the files".to_owned(),
        );
    }
    step
}

#[cfg(unix)]
fn mode(meta: &std::fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    Some(meta.permissions().mode() & 0o777)
}

#[cfg(not(unix))]
fn mode(_meta: &std::fs::Metadata) -> Option<u32> {
    None
}

/// A path as a shell word, so the fix can be pasted as it is.
fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@,=".contains(c));
    if plain {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn paths_that_need_it_are_quoted_for_the_shell() {
        assert_eq!(
            shell_word(Path::new("/var/lib/exsync/state.db")),
            "/var/lib/exsync/state.db"
        );
        assert_eq!(
            shell_word(Path::new("/srv/my state.db")),
            "'/srv/my state.db'"
        );
        assert_eq!(shell_word(Path::new("/srv/it's.db")), r"'/srv/it'\''s.db'");
    }
}
