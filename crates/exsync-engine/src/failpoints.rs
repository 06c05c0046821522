//! Named points of a pass where a test can crash the process, to show that a pass interrupted
//! at any of them loses nothing and copies nothing twice (`crates/exsync/tests/e2e/failpoints.rs`).
//!
//! Only a build with the `failpoints` feature has them: in any other build [`failpoint`] is an
//! empty function the compiler removes, so the shipped binary cannot be made to crash this way.
//! With the feature, `EXSYNC_FAILPOINT=name` aborts the process the first time a pass reaches
//! that point, and `EXSYNC_FAILPOINT=name:N` the Nth time (counted over the whole process: all
//! users and kinds). The process ends with `std::process::abort()`, as with `kill -9`: no
//! destructor runs and nothing more is committed, written or flushed.

/// The reads of both sides for one kind of one user are staged; nothing is planned or written.
pub const READS_STAGED: &str = "reads-staged";
/// A slice is planned and its writes are about to go out to the sides.
pub const BEFORE_SLICE_WRITES: &str = "before-slice-writes";
/// A slice's writes are journaled and none has gone out yet.
pub const JOURNAL_COMMITTED: &str = "journal-committed";
/// The journal says the CRM batch was sent, and the request has not gone out (nor the
/// mailbox's): the worst case for recovery, which must not take "sent" for "written".
pub const CRM_BATCH_SENT: &str = "crm-batch-sent";
/// As [`CRM_BATCH_SENT`], for the mailbox's batch.
pub const EXCHANGE_BATCH_SENT: &str = "exchange-batch-sent";
/// Both sides answered a slice's batch of writes (this point when the CRM had writes in it);
/// the pass has stored only the ids the creates were answered with.
pub const CRM_WRITES_ANSWERED: &str = "crm-writes-answered";
/// As [`CRM_WRITES_ANSWERED`], when the mailbox had writes in the batch.
pub const EXCHANGE_WRITES_ANSWERED: &str = "exchange-writes-answered";
/// A slice's partial commit (its pairs, echo log and created items) is stored.
pub const SLICE_COMMITTED: &str = "slice-committed";
/// Every slice of a user's pass is committed; the final commit, which moves the cursors and
/// records the pass's report, is about to be made.
pub const BEFORE_FINAL_COMMIT: &str = "before-final-commit";

/// Every failpoint, in the order a pass reaches them, with when that is. The one list tests
/// iterate over, so a new point is crash-tested as soon as it is listed here.
pub const POINTS: [(&str, &str); 9] = [
    (
        READS_STAGED,
        "both sides' reads for a kind are staged, nothing is planned",
    ),
    (
        BEFORE_SLICE_WRITES,
        "a slice is planned, its writes not yet sent",
    ),
    (
        JOURNAL_COMMITTED,
        "a slice's writes are journaled, none sent",
    ),
    (
        CRM_BATCH_SENT,
        "the CRM batch is marked sent, the request not yet made",
    ),
    (
        EXCHANGE_BATCH_SENT,
        "the mailbox batch is marked sent, the request not yet made",
    ),
    (
        CRM_WRITES_ANSWERED,
        "the CRM answered a slice's writes, only the created ids stored",
    ),
    (
        EXCHANGE_WRITES_ANSWERED,
        "Exchange answered a slice's writes, only the created ids stored",
    ),
    (SLICE_COMMITTED, "a slice's partial commit is stored"),
    (
        BEFORE_FINAL_COMMIT,
        "all slices committed, the cursors not yet moved",
    ),
];

/// The environment variable naming the point to crash at (`name` or `name:N`).
pub const ENV: &str = "EXSYNC_FAILPOINT";

/// Set to `stop` to have the failpoint stop the process with SIGSTOP instead of aborting it:
/// a worker stalled past its lease, resumed by SIGCONT.
pub const ACTION_ENV: &str = "EXSYNC_FAILPOINT_ACTION";

/// Marks a named point of a pass (one of [`POINTS`]). Does nothing without the `failpoints`
/// feature; with it, aborts the process when [`ENV`] names this point and this is the time it
/// asks for.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn failpoint(_name: &str) {}

/// Marks a named point of a pass (one of [`POINTS`]). Does nothing without the `failpoints`
/// feature; with it, aborts the process when [`ENV`] names this point and this is the time it
/// asks for.
#[cfg(feature = "failpoints")]
pub fn failpoint(name: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    // Read once: the variable is the test's instruction for the whole process.
    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static REACHED: AtomicU64 = AtomicU64::new(0);

    debug_assert!(
        POINTS.iter().any(|(point, _)| *point == name),
        "failpoint {name} is not listed in failpoints::POINTS"
    );
    let target = TARGET.get_or_init(|| {
        let value = std::env::var(ENV).ok()?;
        let target = target(&value);
        if target.is_none() {
            // A typo must not pass for a point the pass never reaches.
            eprintln!("exsync: {ENV}={value} names no failpoint; none is armed");
        }
        target
    });
    let Some((point, nth)) = target else {
        return;
    };
    if point != name {
        return;
    }
    if REACHED.fetch_add(1, Ordering::SeqCst) + 1 == *nth {
        if std::env::var(ACTION_ENV).as_deref() == Ok("stop") {
            eprintln!("exsync: failpoint {name} reached (time {nth}), stopping");
            // The whole process halts as in a long pause, until SIGCONT; `kill` rather than a
            // binding to raise(3), which is the only signal call exsync would need.
            let _ = std::process::Command::new("kill")
                .args(["-STOP", &std::process::id().to_string()])
                .status();
            return;
        }
        eprintln!("exsync: failpoint {name} reached (time {nth}), aborting");
        std::process::abort();
    }
}

/// Where a worker holding the org-wide CRM read has read the CRM and not yet put the result
/// in the database. A hold there keeps the other workers waiting for the org's first read.
pub const ORG_READ_UNDELIVERED: &str = "org-read-undelivered";

/// Points a test can make the process dwell at rather than crash; unlike [`POINTS`], not
/// every pass reaches them (only a worker's that holds a lease).
pub const HOLD_POINTS: [&str; 1] = [ORG_READ_UNDELIVERED];

/// The environment variable naming a point of [`HOLD_POINTS`] to dwell at, every time it is
/// reached, and for how long: `name:milliseconds`.
pub const HOLD_ENV: &str = "EXSYNC_HOLD";

/// How long to dwell at `name` (one of [`HOLD_POINTS`]). Always `None` without the
/// `failpoints` feature.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hold(_name: &str) -> Option<std::time::Duration> {
    None
}

/// How long to dwell at `name` (one of [`HOLD_POINTS`]), as [`HOLD_ENV`] asks.
#[cfg(feature = "failpoints")]
pub fn hold(name: &str) -> Option<std::time::Duration> {
    use std::sync::OnceLock;

    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    debug_assert!(
        HOLD_POINTS.contains(&name),
        "hold point {name} is not listed in failpoints::HOLD_POINTS"
    );
    let target = TARGET.get_or_init(|| {
        let value = std::env::var(HOLD_ENV).ok()?;
        let target = value
            .trim()
            .split_once(':')
            .and_then(|(point, ms)| Some((point.to_owned(), ms.parse::<u64>().ok()?)))
            .filter(|(point, _)| HOLD_POINTS.contains(&point.as_str()));
        if target.is_none() {
            eprintln!(
                "exsync: {HOLD_ENV}={value} is not a hold point and milliseconds; none is armed"
            );
        }
        target
    });
    match target {
        Some((point, ms)) if point == name => Some(std::time::Duration::from_millis(*ms)),
        _ => None,
    }
}

/// The point and the time (from 1) that `name` or `name:N` asks for; `None` for a name not in
/// [`POINTS`] or a time that is not a positive number.
#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
fn target(value: &str) -> Option<(String, u64)> {
    let (name, nth) = match value.trim().split_once(':') {
        Some((name, nth)) => (name, nth.parse::<u64>().ok().filter(|n| *n > 0)?),
        None => (value.trim(), 1),
    };
    POINTS
        .iter()
        .any(|(point, _)| *point == name)
        .then(|| (name.to_owned(), nth))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let names: std::collections::BTreeSet<&str> = POINTS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names.len(), POINTS.len());
    }

    #[test]
    fn a_target_is_a_listed_name_and_an_optional_time() {
        assert_eq!(
            target("slice-committed"),
            Some(("slice-committed".into(), 1))
        );
        assert_eq!(
            target("slice-committed:3"),
            Some(("slice-committed".into(), 3))
        );
        assert_eq!(target("slice-committed:0"), None);
        assert_eq!(target("slice-committed:x"), None);
        assert_eq!(target("no-such-point"), None);
    }
}
