//! A throwaway PostgreSQL for tests (see `exsync_pgcluster`): one cluster in a temporary
//! directory, reached over a Unix socket there (and on a free loopback port, for the URLs
//! `exsync.toml` takes), and a fresh database for each test (`CREATE DATABASE`, a copy of the
//! empty template). A test that stops its database takes a [`Cluster`] of its own.
//!
//! nextest runs every test in its own process, and a cluster costs about a second to start,
//! so the test processes of one checkout share one cluster: the first starts it (under a lock
//! directory), the others find it ready, and each use touches a lease file. A detached reaper
//! stops the cluster and removes its directory once the lease has gone stale and no client is
//! connected, so nothing outlives the test run for long.
//!
//! Without PostgreSQL installed, [`database`] prints why and returns `None`, and the caller
//! skips; under `EXSYNC_REQUIRE_POSTGRES=1` (set by `scripts/test`, which installs it) it
//! panics instead, so CI cannot pass by skipping.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use exsync_pgcluster::{self as cluster, is_root, psql, shell_quote};
pub use exsync_pgcluster::{Cluster, ClusterError, StopMode};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// A lease not touched for this long, with no client connected, lets the reaper stop the
/// cluster.
const IDLE: Duration = Duration::from_secs(20);

/// One test's own database in the shared cluster, dropped with it.
pub struct Database {
    name: String,
    socket_dir: PathBuf,
    port: u16,
    bin: PathBuf,
}

impl Database {
    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Connection parameters in the key=value form, over the Unix socket.
    pub fn conninfo(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname={}",
            self.socket_dir.display(),
            self.port,
            self.name
        )
    }

    /// The CA file that verifies the cluster's TLS certificate (for `localhost` and
    /// 127.0.0.1).
    pub fn ca_file(&self) -> PathBuf {
        self.socket_dir.join("ca.pem")
    }

    /// A `postgres://` URL to `localhost` over TCP, for TLS (the default mode).
    pub fn tls_url(&self) -> String {
        format!("postgres://postgres@localhost:{}/{}", self.port, self.name)
    }

    /// A `postgres://` URL over TCP on the loopback address, as `exsync.toml` takes it (no TLS:
    /// allowed for a database on this host only).
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{}?sslmode=disable",
            self.port, self.name
        )
    }

    /// Runs SQL in this database with `psql` and returns what it printed (unaligned, tuples
    /// only), panicking on an error.
    pub fn psql(&self, sql: &str) -> String {
        psql(&self.bin, &self.socket_dir, self.port, &self.name, sql)
            .unwrap_or_else(|e| panic!("psql in {}: {e}", self.name))
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        touch(&self.socket_dir.join("lease"));
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // The cluster goes with the reaper anyway; a failed drop only keeps disk a while.
        let _ = psql(&self.bin, &self.socket_dir, self.port, "postgres", &sql);
    }
}

/// A fresh, empty database in the shared test cluster, or `None` (with the reason printed)
/// when PostgreSQL is not installed and `EXSYNC_REQUIRE_POSTGRES` is not `1`.
pub fn database() -> Option<Database> {
    let bin = match cluster::find_bin() {
        Ok(bin) => bin,
        Err(reason) => return skip(&reason),
    };
    let (dir, port) = shared_cluster(&bin).unwrap_or_else(|e| panic!("test PostgreSQL: {e}"));
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = format!(
        "t_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    psql(
        &bin,
        &dir,
        port,
        "postgres",
        &format!("CREATE DATABASE {name}"),
    )
    .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
    Some(Database {
        name,
        socket_dir: dir,
        port,
        bin,
    })
}

/// A cluster of the caller's own, for a test that stops and starts its database, or `None`
/// as for [`database`].
pub fn own_cluster() -> Option<Cluster> {
    match Cluster::start() {
        Ok(cluster) => Some(cluster),
        Err(reason @ ClusterError::NotInstalled(_)) => skip(&reason),
        Err(e) => panic!("test PostgreSQL: {e}"),
    }
}

/// Whether PostgreSQL is installed, for a test that has a program start its own; `false` as
/// [`database`] returns `None`.
pub fn installed() -> bool {
    match cluster::find_bin() {
        Ok(_) => true,
        Err(reason) => skip::<()>(&reason).is_some(),
    }
}

/// `None` with the reason printed, or a panic under `EXSYNC_REQUIRE_POSTGRES=1`.
fn skip<T>(reason: &ClusterError) -> Option<T> {
    if std::env::var("EXSYNC_REQUIRE_POSTGRES").as_deref() == Ok("1") {
        panic!("{reason}, and EXSYNC_REQUIRE_POSTGRES=1 requires it");
    }
    eprintln!("SKIPPED the PostgreSQL variant: {reason}");
    None
}

fn touch(path: &Path) {
    let _ = std::fs::write(path, b"");
}

/// The port a running cluster recorded.
fn port_of(dir: &Path) -> Option<u16> {
    std::fs::read_to_string(dir.join("port"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The cluster directory of this checkout and its port, started if nobody has.
fn shared_cluster(bin: &Path) -> Result<(PathBuf, u16), String> {
    let key = {
        // FNV-1a of the checkout's path: short, stable and free of dependencies.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in env!("CARGO_MANIFEST_DIR").bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        h
    };
    let dir = std::env::temp_dir().join(format!("exsync-pg-{key:016x}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last_error = String::from("another test process was starting it");
    loop {
        if Instant::now() > deadline {
            return Err(format!(
                "the cluster in {} did not become ready: {last_error}",
                dir.display()
            ));
        }
        let _ = std::fs::create_dir_all(&dir);
        // The lease first, then the ready mark: the reaper removes the mark before it reads
        // the lease, so one of the two sees the other (see the module comment).
        touch(&dir.join("lease"));
        let lock = dir.join("starting");
        if dir.join("ready").exists() {
            match port_of(&dir).filter(|_| dir.join("ca.pem").exists()) {
                Some(_) if server_gone(&dir) => {
                    // Killed without its reaper (with the session that ran it, say): cleared
                    // under the start lock, by one process only, then started again.
                    if std::fs::create_dir(&lock).is_ok() {
                        if server_gone(&dir) {
                            let _ = std::fs::remove_file(dir.join("ready"));
                            stop(bin, &dir);
                            let _ = std::fs::remove_dir_all(dir.join("data"));
                        }
                        let _ = std::fs::remove_dir(&lock);
                    }
                    continue;
                }
                Some(port) => return Ok((dir, port)),
                None => {
                    // A cluster from an older kit that recorded no port: replace it.
                    stop(bin, &dir);
                    let _ = std::fs::remove_dir_all(&dir);
                    continue;
                }
            }
        }
        match std::fs::create_dir(&lock) {
            Ok(()) if dir.join("data").exists() => {
                // A running cluster whose reaper is checking its lease (the mark comes back)
                // or stopping it (the directory goes): wait for either.
                let _ = std::fs::remove_dir(&lock);
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(()) => {
                let started = start(bin, &dir);
                if let Err(e) = &started {
                    // Leave no half-made cluster for the next attempt to trip over.
                    stop(bin, &dir);
                    let _ = std::fs::remove_dir_all(dir.join("data"));
                    last_error = e.clone();
                }
                let _ = std::fs::remove_dir(&lock);
                if let Ok(port) = started {
                    return Ok((dir, port));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let stale = std::fs::metadata(&lock)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > Duration::from_secs(60));
                if stale {
                    // A starter that died half-way (starting takes about a second).
                    stop(bin, &dir);
                    let _ = std::fs::remove_dir_all(dir.join("data"));
                    let _ = std::fs::remove_dir(&lock);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(format!("lock {}: {e}", lock.display())),
        }
    }
}

/// Whether the cluster's server process is gone: no pid file, or no such process.
fn server_gone(dir: &Path) -> bool {
    let pid = std::fs::read_to_string(dir.join("data/postmaster.pid"))
        .ok()
        .and_then(|text| text.lines().next()?.trim().parse::<u32>().ok());
    pid.is_none_or(|pid| !Path::new(&format!("/proc/{pid}")).exists())
}

/// Stops the cluster in `dir` at once, if one runs.
fn stop(bin: &Path, dir: &Path) {
    let _ = cluster::stop(bin, dir, cluster::StopMode::Immediate);
}

fn start(bin: &Path, dir: &Path) -> Result<u16, String> {
    cluster::init(bin, dir).map_err(|e| e.to_string())?;
    let port = cluster::free_port().map_err(|e| e.to_string())?;
    cluster::start(bin, dir, port).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("port"), port.to_string()).map_err(|e| format!("port file: {e}"))?;
    spawn_reaper(bin, dir, port)?;
    touch(&dir.join("ready"));
    Ok(port)
}

fn spawn_reaper(bin: &Path, dir: &Path, port: u16) -> Result<(), String> {
    let d = shell_quote(&dir.display().to_string());
    let psql = shell_quote(&bin.join("psql").display().to_string());
    let stop = {
        let pg_ctl = bin.join("pg_ctl").display().to_string();
        let line = format!(
            "{} -D {} -m immediate -w stop",
            shell_quote(&pg_ctl),
            shell_quote(&dir.join("data").display().to_string())
        );
        if is_root() {
            format!("su postgres -s /bin/sh -c {}", shell_quote(&line))
        } else {
            line
        }
    };
    let idle = IDLE.as_secs();
    let script = format!(
        r#"
while sleep 2; do
  now=$(date +%s)
  lease=$(stat -c %Y {d}/lease 2>/dev/null || echo 0)
  [ $((now - lease)) -lt {idle} ] && continue
  clients=$({psql} -X -A -t -h {d} -p {port} -U postgres -d postgres -c "SELECT count(*) - 1 FROM pg_stat_activity WHERE backend_type = 'client backend'" 2>/dev/null || echo gone)
  [ "$clients" = gone ] && break
  [ "$clients" != 0 ] && continue
  rm -f {d}/ready
  lease=$(stat -c %Y {d}/lease 2>/dev/null || echo 0)
  if [ $(( $(date +%s) - lease)) -lt {idle} ]; then touch {d}/ready; continue; fi
  break
done
{stop} >/dev/null 2>&1
rm -rf {d}
"#
    );
    Command::new("setsid")
        .args(["-f", "/bin/sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("starting the cluster's reaper: {e}"))
        .and_then(|s| {
            s.success()
                .then_some(())
                .ok_or_else(|| format!("the cluster's reaper did not start: {s}"))
        })
}
