//! The append-only journal both simulators keep beside their snapshot, so a write costs the
//! size of what it changed instead of the size of the whole store.
//!
//! Each committed request is one JSON line, appended and fsync'd before the reply goes out
//! (one line per request keeps a request all-or-nothing: a crash mid-append tears the line,
//! and a torn last line is ignored on load, as the client never got its reply). Loading
//! replays the lines over the snapshot. When the journal outgrows the snapshot several times
//! over, or an append failed, the owner writes a fresh snapshot and the journal starts empty
//! again, so the snapshots' cost spread over the writes stays proportional to what they
//! changed.
//!
//! Records must be idempotent over a snapshot that already holds them: a crash between
//! writing a snapshot and emptying the journal replays lines the snapshot already has.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Below this size the journal is never worth a snapshot, however small the snapshot is.
const MIN_SNAPSHOT_TRIGGER: u64 = 1 << 20;

/// A snapshot is due when the journal is this many times the snapshot's size. A load then
/// replays at most this much, and the snapshots cost a quarter of what is journaled when the
/// store keeps its size (a store that only grows: a quarter more than it holds, where a
/// ratio of one wrote it twice over).
const JOURNAL_PER_SNAPSHOT: u64 = 4;

/// Options for a file only its owner may read: the stores hold passwords and tokens.
fn private_options() -> OpenOptions {
    let mut opts = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts
}

/// Writes `data` to `path` atomically (temp file, fsync, rename), mode 0600.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = private_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(data)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
    }
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// Makes the renames done in `dir` durable: emptying the journal must not outlive (on disk)
/// the snapshot that replaced it.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

/// An open journal file (see the module documentation).
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    file: File,
    /// Bytes of whole records in the file.
    len: u64,
    /// Size of the snapshot the journal continues.
    snapshot_len: u64,
    /// An append failed: the file may end in a partial line, so only a snapshot may follow.
    broken: bool,
}

impl Journal {
    /// Empties (or creates) the journal at `path`, mode 0600. Call it only once a snapshot of
    /// `snapshot_len` bytes holding everything the journal held is durable.
    pub(crate) fn start_empty(path: &Path, snapshot_len: u64) -> Result<Journal> {
        let file = private_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        file.sync_all()
            .with_context(|| format!("syncing {}", path.display()))?;
        Ok(Journal {
            path: path.to_owned(),
            file,
            len: 0,
            snapshot_len,
            broken: false,
        })
    }

    /// Appends `record` as one line and fsyncs it. On failure the file is cut back to its
    /// last whole record when possible, and [`Journal::wants_snapshot`] turns true.
    pub(crate) fn append<T: Serialize>(&mut self, record: &T) -> Result<()> {
        if self.broken {
            bail!("the journal needs a snapshot after a failed append");
        }
        let mut line = serde_json::to_vec(record).context("serialising a journal record")?;
        line.push(b'\n');
        let written = self
            .file
            .write_all(&line)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            self.broken = true;
            // Best effort: the next load ignores a torn last line anyway, and the snapshot
            // that must come next empties the file.
            let _ = self.file.set_len(self.len);
            return Err(e).with_context(|| format!("appending to {}", self.path.display()));
        }
        self.len += line.len() as u64;
        Ok(())
    }

    /// Whether the owner should write a snapshot now: the journal outgrew the snapshot
    /// [`JOURNAL_PER_SNAPSHOT`] times over, or an append failed.
    pub(crate) fn wants_snapshot(&self) -> bool {
        self.broken
            || self.len
                > self
                    .snapshot_len
                    .saturating_mul(JOURNAL_PER_SNAPSHOT)
                    .max(MIN_SNAPSHOT_TRIGGER)
    }

    /// Empties the journal once a snapshot of `snapshot_len` bytes holding everything it held
    /// is durable.
    pub(crate) fn snapshot_written(&mut self, snapshot_len: u64) -> Result<()> {
        *self = Journal::start_empty(&self.path, snapshot_len)?;
        Ok(())
    }
}

/// Replays the records of the journal at `path` (none if it does not exist) through `apply`,
/// in order. A last line that does not parse is a torn append (the crash came before its
/// reply went out) and is skipped; a bad line before it is corruption and an error.
pub(crate) fn replay<T: DeserializeOwned>(
    path: &Path,
    mut apply: impl FnMut(T) -> Result<()>,
) -> Result<()> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut number = 0usize;
    // A line that failed to parse, held until we know whether another line follows it.
    let mut failed: Option<(usize, serde_json::Error)> = None;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        number += 1;
        if let Some((at, e)) = failed.take() {
            bail!("{} line {at} is corrupt: {e}", path.display());
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<T>(&line) {
            Ok(record) => {
                apply(record).with_context(|| format!("{} line {number}", path.display()))?
            }
            Err(e) => failed = Some((number, e)),
        }
    }
    if let Some((at, e)) = failed {
        tracing::warn!(
            file = %path.display(),
            line = at,
            error = %e,
            "ignoring a torn last journal line (a write cut short by a crash)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn read_all(path: &Path) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        replay(path, |n: u32| {
            out.push(n);
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn appends_replay_and_a_torn_tail_is_ignored_but_not_a_torn_middle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        assert!(read_all(&path).unwrap().is_empty());
        let mut j = Journal::start_empty(&path, 10).unwrap();
        for n in 1..=3u32 {
            j.append(&n).unwrap();
        }
        assert_eq!(read_all(&path).unwrap(), vec![1, 2, 3]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"[1, 2").unwrap();
        assert_eq!(read_all(&path).unwrap(), vec![1, 2, 3]);
        f.write_all(b"\n4\n").unwrap();
        assert!(read_all(&path).is_err());
        j.snapshot_written(10).unwrap();
        assert!(read_all(&path).unwrap().is_empty());
        assert!(!j.wants_snapshot());
    }
}
