//! A throwaway PostgreSQL for tests, started from the Debian `postgresql` package's binaries
//! with no Docker: one cluster in a temporary directory, reached over a Unix socket there (and
//! on a free loopback port, for the URLs `exsync.toml` takes), fsync off, and a fresh
//! database for each test (`CREATE DATABASE`, a copy of the empty template).
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
    let bin = match find_bin() {
        Ok(bin) => bin,
        Err(reason) => {
            if std::env::var("EXSYNC_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("{reason}, and EXSYNC_REQUIRE_POSTGRES=1 requires it (apt-get install postgresql)");
            }
            eprintln!(
                "SKIPPED the PostgreSQL variant: {reason} (apt-get install postgresql runs it)"
            );
            return None;
        }
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

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb`.
fn find_bin() -> Result<PathBuf, String> {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .map_err(|_| {
            format!(
                "PostgreSQL is not installed ({} is missing)",
                root.display()
            )
        })?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| format!("no initdb under {}", root.display()))
}

fn is_root() -> bool {
    // The effective user's id without libc: the owner of a file this process just created.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// Runs a PostgreSQL server program as the `postgres` user when this process is root (initdb
/// and pg_ctl refuse root), else as this user.
fn as_server_user(program: &Path, args: &[&str]) -> Command {
    if is_root() {
        let mut line = shell_quote(&program.display().to_string());
        for arg in args {
            line.push(' ');
            line.push_str(&shell_quote(arg));
        }
        let mut cmd = Command::new("su");
        cmd.args(["postgres", "-s", "/bin/sh", "-c", &line]);
        cmd
    } else {
        let mut cmd = Command::new(program);
        cmd.args(args);
        cmd
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn run(mut cmd: Command, what: &str) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn psql(bin: &Path, dir: &Path, port: u16, db: &str, sql: &str) -> Result<String, String> {
    let out = Command::new(bin.join("psql"))
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(dir)
        .arg("-p")
        .arg(port.to_string())
        .args(["-U", "postgres", "-d", db, "-c", sql])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
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
        if dir.join("ready").exists() {
            match port_of(&dir).filter(|_| dir.join("ca.pem").exists()) {
                Some(port) => return Ok((dir, port)),
                None => {
                    // A cluster from an older kit that recorded no port: replace it.
                    stop(bin, &dir);
                    let _ = std::fs::remove_dir_all(&dir);
                    continue;
                }
            }
        }
        let lock = dir.join("starting");
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

/// Stops the cluster in `dir` at once, if one runs.
fn stop(bin: &Path, dir: &Path) {
    let data = dir.join("data").display().to_string();
    let mut cmd = as_server_user(
        &bin.join("pg_ctl"),
        &["-D", &data, "-m", "immediate", "-w", "stop"],
    );
    let _ = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A fresh CA (`ca.pem`) and a server certificate it signed for `localhost` and 127.0.0.1
/// (`server.crt`, `server.key`), so tests can check TLS with verification on.
fn write_tls_files(dir: &Path) -> Result<(), String> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let err = |e: rcgen::Error| format!("test certificates: {e}");
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "exsync test database CA");
    let ca = ca_params.self_signed(&ca_key).map_err(err)?;
    let key = KeyPair::generate().map_err(err)?;
    let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .map_err(err)?;
    let cert = params.signed_by(&key, &ca, &ca_key).map_err(err)?;
    let write = |name: &str, text: String| {
        std::fs::write(dir.join(name), text).map_err(|e| format!("writing {name}: {e}"))
    };
    write("server.crt", cert.pem())?;
    write("server.key", key.serialize_pem())?;
    // The server refuses a key others can read; written before ca.pem, which marks the set.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .map_err(|e| format!("server.key mode: {e}"))?;
    }
    if is_root() {
        let mut chown = Command::new("chown");
        chown
            .arg("postgres:")
            .arg(dir.join("server.key"))
            .arg(dir.join("server.crt"));
        run(chown, "chown the server key to postgres")?;
    }
    write("ca.pem", ca.pem())
}

/// A TCP port free on the loopback address now (the kernel's choice, so two checkouts'
/// clusters do not collide).
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

fn start(bin: &Path, dir: &Path) -> Result<u16, String> {
    let data = dir.join("data");
    let log = dir.join("log");
    if is_root() {
        run(
            {
                let mut c = Command::new("chown");
                c.arg("postgres:").arg(dir);
                c
            },
            "chown the cluster directory to postgres",
        )?;
    }
    let data_s = data.display().to_string();
    run(
        as_server_user(
            &bin.join("initdb"),
            &[
                "-D",
                &data_s,
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
        ),
        "initdb",
    )?;
    write_tls_files(dir)?;
    let port = free_port()?;
    let options = format!(
        "-k {d} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 \
         -c ssl=on -c ssl_cert_file={d}/server.crt -c ssl_key_file={d}/server.key",
        d = dir.display()
    );
    let log_s = log.display().to_string();
    let mut pg_ctl = as_server_user(
        &bin.join("pg_ctl"),
        &["-D", &data_s, "-o", &options, "-w", "-l", &log_s, "start"],
    );
    // The server must not hold the test's output pipes, or the runner waits for it.
    pg_ctl.stdout(Stdio::null()).stderr(Stdio::null());
    let status = Command::new("setsid")
        .arg("-f")
        .arg(pg_ctl.get_program())
        .args(pg_ctl.get_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("setsid pg_ctl: {e}"))?;
    if !status.success() {
        return Err(format!("pg_ctl start: {status}"));
    }
    // setsid -f returns at once; wait for the socket to answer.
    let deadline = Instant::now() + Duration::from_secs(30);
    while psql(bin, dir, port, "postgres", "SELECT 1").is_err() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("the test cluster did not start: {log}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
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
