//! A throwaway PostgreSQL cluster, started from the Debian `postgresql` package's binaries with
//! no Docker: `initdb` into a directory, a server on a free loopback port and on a Unix socket
//! in that directory, fsync off, trust authentication (only this host can reach it), and TLS
//! with a certificate from a CA made for the cluster.
//!
//! [`Cluster`] owns one in a temporary directory and stops it, and removes its files, when
//! dropped: `exsync demo --workers` runs on one, and tests that stop and start their database
//! take one of their own. The test kit builds its cluster shared between test processes from
//! the functions below.
//!
//! `initdb` and `pg_ctl` refuse to run as root; as root they run as the `postgres` user the
//! package creates.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The Debian package that holds the server's binaries.
pub const DEBIAN_PACKAGE: &str = "postgresql";

/// Where Debian puts each installed version's binaries (`<version>/bin`).
const INSTALL_ROOT: &str = "/usr/lib/postgresql";

/// How long a started server may take to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// Why no cluster could be started or driven.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The server's binaries are missing; nothing was started.
    #[error("{0}")]
    NotInstalled(String),
    /// A step failed; what was started is stopped again by the caller or on drop.
    #[error("the throwaway PostgreSQL failed: {0}")]
    Failed(String),
}

fn failed(what: &str, e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Failed(format!("{what}: {e}"))
}

/// The newest installed version's binary directory, `/usr/lib/postgresql/<version>/bin`.
pub fn find_bin() -> Result<PathBuf, ClusterError> {
    find_bin_in(Path::new(INSTALL_ROOT))
}

fn find_bin_in(root: &Path) -> Result<PathBuf, ClusterError> {
    let not_installed = |why: String| {
        ClusterError::NotInstalled(format!(
            "PostgreSQL is not installed ({why}): apt-get install {DEBIAN_PACKAGE}"
        ))
    };
    let entries = std::fs::read_dir(root)
        .map_err(|_| not_installed(format!("{} is missing", root.display())))?;
    let mut versions: Vec<(u32, PathBuf)> = entries
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
        .ok_or_else(|| not_installed(format!("no initdb under {}", root.display())))
}

/// Whether this process runs as root (the owner of `/proc/self`, read without libc).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// A server program run as the `postgres` user when this process is root, else as this user.
pub fn as_server_user(program: &Path, args: &[&str]) -> Command {
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

/// `s` quoted for `/bin/sh`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn run(mut cmd: Command, what: &str) -> Result<(), ClusterError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| failed(what, e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failed(
            what,
            format!(
                "{}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ))
    }
}

/// Runs SQL with `psql` over the cluster's socket in `dir` and returns what it printed
/// (unaligned, tuples only, trimmed), or what it said on failure.
pub fn psql(bin: &Path, dir: &Path, port: u16, db: &str, sql: &str) -> Result<String, String> {
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

/// A TCP port free on the loopback address now (the kernel's choice, so two clusters do not
/// collide).
pub fn free_port() -> Result<u16, ClusterError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| failed("no free loopback port", e))
}

/// Makes a new cluster in `dir/data`, with its TLS files beside it (see [`write_tls_files`]).
/// `dir` must exist and be empty of a cluster.
pub fn init(bin: &Path, dir: &Path) -> Result<(), ClusterError> {
    if is_root() {
        let mut chown = Command::new("chown");
        chown.arg("postgres:").arg(dir);
        run(chown, "chown the cluster directory to postgres")?;
    }
    let data = dir.join("data").display().to_string();
    run(
        as_server_user(
            &bin.join("initdb"),
            &[
                "-D",
                &data,
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
    write_tls_files(dir)
}

/// Starts the cluster in `dir` on `port` and waits until it answers. The server runs in a
/// session of its own, so it holds none of this process's pipes and survives this process
/// unless stopped.
pub fn start(bin: &Path, dir: &Path, port: u16) -> Result<(), ClusterError> {
    let data = dir.join("data").display().to_string();
    let log = dir.join("log");
    let options = format!(
        "-k {d} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 \
         -c ssl=on -c ssl_cert_file={d}/server.crt -c ssl_key_file={d}/server.key",
        d = dir.display()
    );
    let log_s = log.display().to_string();
    let pg_ctl = as_server_user(
        &bin.join("pg_ctl"),
        &["-D", &data, "-o", &options, "-w", "-l", &log_s, "start"],
    );
    let status = Command::new("setsid")
        .arg("-f")
        .arg(pg_ctl.get_program())
        .args(pg_ctl.get_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| failed("setsid pg_ctl", e))?;
    if !status.success() {
        return Err(failed("pg_ctl start", status));
    }
    // setsid -f returns at once; the server is up when its socket answers.
    let deadline = Instant::now() + ANSWER_WITHIN;
    while psql(bin, dir, port, "postgres", "SELECT 1").is_err() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(failed("the cluster did not answer", log));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// How [`stop`] ends the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Clients are disconnected and their transactions rolled back; a clean shutdown.
    Fast,
    /// No shutdown checkpoint, as after a crash; recovery runs at the next start.
    Immediate,
}

/// Stops the cluster in `dir`, if one runs, and waits until it has.
pub fn stop(bin: &Path, dir: &Path, mode: StopMode) -> Result<(), ClusterError> {
    let data = dir.join("data").display().to_string();
    let mode = match mode {
        StopMode::Fast => "fast",
        StopMode::Immediate => "immediate",
    };
    run(
        as_server_user(
            &bin.join("pg_ctl"),
            &["-D", &data, "-m", mode, "-w", "stop"],
        ),
        "pg_ctl stop",
    )
}

/// A fresh CA (`ca.pem`) and a server certificate it signed for `localhost` and 127.0.0.1
/// (`server.crt`, `server.key`), so clients can check TLS with verification on. `ca.pem` is
/// written last: its presence marks a complete set.
pub fn write_tls_files(dir: &Path) -> Result<(), ClusterError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let err = |e: rcgen::Error| failed("the cluster's certificates", e);
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "exsync throwaway database CA");
    let ca = ca_params.self_signed(&ca_key).map_err(err)?;
    let key = KeyPair::generate().map_err(err)?;
    let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .map_err(err)?;
    let cert = params.signed_by(&key, &ca, &ca_key).map_err(err)?;
    let write = |name: &str, text: String| {
        std::fs::write(dir.join(name), text).map_err(|e| failed(&format!("writing {name}"), e))
    };
    write("server.crt", cert.pem())?;
    write("server.key", key.serialize_pem())?;
    {
        // The server refuses a key others can read.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .map_err(|e| failed("server.key mode", e))?;
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

/// A cluster of this process's own in a temporary directory, stopped and removed when dropped.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    running: bool,
}

impl Cluster {
    /// Makes and starts a cluster (about a second).
    pub fn start() -> Result<Cluster, ClusterError> {
        let bin = find_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("exsync-pg-")
            .tempdir()
            .map_err(|e| failed("a directory for the cluster", e))?;
        let mut cluster = Cluster {
            dir,
            bin,
            port: free_port()?,
            running: false,
        };
        init(&cluster.bin, cluster.dir.path())?;
        cluster.start_again()?;
        Ok(cluster)
    }

    /// The loopback port it listens on, the same across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its directory: the data, the socket, the log and the TLS files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs SQL in database `db` (see [`psql`]).
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, ClusterError> {
        psql(&self.bin, self.dir(), self.port, db, sql).map_err(|e| failed("psql", e))
    }

    /// Creates an empty database. `name` is a plain identifier (letters, digits, `_`).
    pub fn create_database(&self, name: &str) -> Result<(), ClusterError> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(failed(
                "create database",
                format!("{name:?} is not a plain name"),
            ));
        }
        self.psql("postgres", &format!("CREATE DATABASE {name}"))
            .map(|_| ())
    }

    /// A `postgres://` URL to database `db` on the loopback address without TLS, as
    /// `exsync.toml` takes it for a database on this host.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    /// Stops the server; the data stays for [`Cluster::start_again`].
    pub fn stop(&mut self, mode: StopMode) -> Result<(), ClusterError> {
        stop(&self.bin, self.dir(), mode)?;
        self.running = false;
        Ok(())
    }

    /// Starts the server again on the same port and data.
    pub fn start_again(&mut self) -> Result<(), ClusterError> {
        start(&self.bin, self.dir(), self.port)?;
        self.running = true;
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            // Nothing is kept, so nothing needs a clean shutdown.
            let _ = stop(&self.bin, self.dir(), StopMode::Immediate);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn missing_binaries_name_the_debian_package() {
        let empty = tempfile::tempdir().unwrap();
        let err = find_bin_in(empty.path()).unwrap_err();
        assert!(matches!(err, ClusterError::NotInstalled(_)), "{err}");
        assert!(
            err.to_string().contains("apt-get install postgresql"),
            "{err}"
        );
        let err = find_bin_in(&empty.path().join("absent")).unwrap_err();
        assert!(err.to_string().contains("is missing"), "{err}");
    }

    #[test]
    fn the_newest_version_with_initdb_is_chosen() {
        let root = tempfile::tempdir().unwrap();
        for (version, with_initdb) in [("15", true), ("17", true), ("18", false)] {
            let bin = root.path().join(version).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            if with_initdb {
                std::fs::write(bin.join("initdb"), "").unwrap();
            }
        }
        assert_eq!(
            find_bin_in(root.path()).unwrap(),
            root.path().join("17").join("bin")
        );
    }

    /// A cluster answers, keeps its data and port across a stop and a start, and is gone
    /// (no server, no files) once dropped.
    #[test]
    fn a_cluster_restarts_on_its_port_with_its_data_and_is_removed_when_dropped() {
        let mut cluster = match Cluster::start() {
            Ok(cluster) => cluster,
            Err(ClusterError::NotInstalled(why))
                if std::env::var("EXSYNC_REQUIRE_POSTGRES").as_deref() != Ok("1") =>
            {
                eprintln!("SKIPPED: {why}");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        cluster.create_database("kept").unwrap();
        cluster
            .psql("kept", "CREATE TABLE t (v int); INSERT INTO t VALUES (7)")
            .unwrap();
        let port = cluster.port();
        cluster.stop(StopMode::Fast).unwrap();
        assert!(cluster.psql("kept", "SELECT 1").is_err(), "stopped");
        cluster.start_again().unwrap();
        assert_eq!(cluster.port(), port);
        assert_eq!(cluster.psql("kept", "SELECT v FROM t").unwrap(), "7");
        assert!(cluster.create_database("no; DROP").is_err());
        let dir = cluster.dir().to_path_buf();
        drop(cluster);
        assert!(!dir.exists());
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    }
}
