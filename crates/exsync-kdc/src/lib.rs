//! A throwaway MIT KDC on 127.0.0.1: its own realm, database and configuration in a temporary
//! directory, a service principal `HTTP/<host>` with a keytab, and a service account with a
//! password (and a keytab of the same key). Stopped, and its files removed, when dropped.
//!
//! `exsync demo --auth kerberos` runs the demo against one, and the Kerberos tests start one
//! each (through the test kit, which turns a missing KDC into a skip).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The realm every throwaway KDC serves.
pub const REALM: &str = "EXSYNC.TEST";
/// The service account's short name (the Exchange simulator's service account).
pub const USER: &str = "svc-sync";
/// The service account's password.
pub const PASSWORD: &str = "Kerb-Passw0rd!";

/// The Debian packages that hold MIT's KDC and its admin tools.
pub const DEBIAN_PACKAGES: &str = "krb5-kdc krb5-admin-server";

/// How long the KDC may take to listen.
const LISTEN_WITHIN: Duration = Duration::from_secs(10);

/// Why no KDC could be started.
#[derive(Debug, thiserror::Error)]
pub enum KdcError {
    /// A program is missing; nothing was started.
    #[error("{0}")]
    NotInstalled(String),
    /// The KDC's files, database or process could not be set up; nothing is left running.
    #[error("the throwaway KDC could not be started: {0}")]
    Failed(String),
}

/// What the KDC should look like.
#[derive(Debug, Clone)]
pub struct KdcOptions {
    /// The host of the service principal `HTTP/<host>`.
    pub service_host: String,
    /// Run the KDC with its clock this many seconds ahead (through libfaketime), to make the
    /// tickets it issues unusable by a server with a correct clock.
    pub clock_ahead_secs: Option<i64>,
    /// The longest ticket the service account gets, in seconds (MIT's default otherwise).
    pub user_max_life_secs: Option<u32>,
}

impl Default for KdcOptions {
    fn default() -> Self {
        KdcOptions {
            service_host: "mail.exsync.test".into(),
            clock_ahead_secs: None,
            user_max_life_secs: None,
        }
    }
}

/// A running KDC and the files a client and a server need to use it.
pub struct Kdc {
    dir: tempfile::TempDir,
    child: Child,
    /// The port it listens on (TCP and UDP) on 127.0.0.1.
    pub port: u16,
    /// A client configuration naming the realm and this KDC (what `KRB5_CONFIG` should point at).
    pub krb5_conf: PathBuf,
    /// The keytab of `HTTP/<service_host>`, for an acceptor.
    pub service_keytab: PathBuf,
    /// The service account's key, for a client that logs in with a keytab.
    pub client_keytab: PathBuf,
    /// How long starting took, from creating the database to the port answering.
    pub start_time: Duration,
    /// `HTTP/<host>@REALM`.
    pub service_principal: String,
}

/// MIT's programs a KDC needs.
#[derive(Debug)]
struct Tools {
    kdb5_util: PathBuf,
    kadmin: PathBuf,
    krb5kdc: PathBuf,
}

/// The directories searched for MIT's programs: `PATH`, then where Debian installs them (the
/// sbin directories are often not on a non-root user's `PATH`).
fn search_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/bin", "/sbin"].map(PathBuf::from));
    dirs
}

fn find_tools(dirs: &[PathBuf]) -> Result<Tools, KdcError> {
    let find = |name: &str| dirs.iter().map(|d| d.join(name)).find(|p| p.is_file());
    let (kdb5_util, kadmin, krb5kdc) = (find("kdb5_util"), find("kadmin.local"), find("krb5kdc"));
    let missing: Vec<&str> = [
        ("krb5kdc", krb5kdc.is_none()),
        ("kdb5_util", kdb5_util.is_none()),
        ("kadmin.local", kadmin.is_none()),
    ]
    .into_iter()
    .filter_map(|(name, absent)| absent.then_some(name))
    .collect();
    match (kdb5_util, kadmin, krb5kdc) {
        (Some(kdb5_util), Some(kadmin), Some(krb5kdc)) => Ok(Tools {
            kdb5_util,
            kadmin,
            krb5kdc,
        }),
        _ => Err(KdcError::NotInstalled(format!(
            "MIT's KDC is not installed ({} not found on PATH or in /usr/sbin): \
             apt-get install {DEBIAN_PACKAGES}",
            missing.join(", ")
        ))),
    }
}

/// Whether MIT's KDC programs are there, without starting anything.
pub fn installed() -> Result<(), KdcError> {
    find_tools(&search_dirs()).map(|_| ())
}

/// libfaketime, preloaded into the KDC itself (the `faketime` wrapper would stay between us and
/// the KDC, and killing it would leave the KDC running).
fn libfaketime() -> Option<PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu/faketime",
        "/usr/lib/aarch64-linux-gnu/faketime",
        "/usr/lib/faketime",
    ]
    .iter()
    .map(|d| Path::new(d).join("libfaketime.so.1"))
    .find(|p| p.is_file())
}

fn failed(what: &str, e: impl std::fmt::Display) -> KdcError {
    KdcError::Failed(format!("{what}: {e}"))
}

fn free_port() -> Result<u16, KdcError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| failed("no free loopback port", e))
}

fn run(dir: &Path, env: &[(&str, &Path)], program: &Path, args: &[&str]) -> Result<(), KdcError> {
    let out = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| failed(&format!("running {}", program.display()), e))?;
    if out.status.success() {
        return Ok(());
    }
    Err(KdcError::Failed(format!(
        "{} {args:?} failed: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )))
}

fn write(path: &Path, text: &str) -> Result<(), KdcError> {
    std::fs::write(path, text).map_err(|e| failed(&format!("writing {}", path.display()), e))
}

impl Kdc {
    /// A KDC with the default options.
    pub fn start() -> Result<Kdc, KdcError> {
        Kdc::start_with(KdcOptions::default())
    }

    /// A KDC as `options` describe. Every program is looked for before anything is created, so
    /// a missing one leaves nothing behind.
    pub fn start_with(options: KdcOptions) -> Result<Kdc, KdcError> {
        let tools = find_tools(&search_dirs())?;
        let faketime = match options.clock_ahead_secs {
            Some(ahead) => Some((
                libfaketime().ok_or_else(|| {
                    KdcError::NotInstalled(
                        "libfaketime is not installed: apt-get install faketime".into(),
                    )
                })?,
                ahead,
            )),
            None => None,
        };
        let started = Instant::now();
        let mut builder = tempfile::Builder::new();
        builder.prefix("exsync-kdc-");
        // The keytabs are secrets; tempfile would leave the directory's mode to the umask.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o700));
        }
        let dir = builder
            .tempdir()
            .map_err(|e| failed("creating a directory for the KDC", e))?;
        let d = dir.path();
        let port = free_port()?;
        // One relation per line: MIT's profile parser ignores what follows `{` on its line.
        let krb5_conf = d.join("krb5.conf");
        write(
            &krb5_conf,
            &format!(
                "[libdefaults]\n  default_realm = {REALM}\n  dns_lookup_kdc = false\n  \
                 dns_lookup_realm = false\n  dns_canonicalize_hostname = false\n  rdns = false\n  udp_preference_limit = 1\n\
                 [realms]\n  {REALM} = {{\n    kdc = 127.0.0.1:{port}\n  }}\n"
            ),
        )?;
        let kdc_conf = d.join("kdc.conf");
        write(
            &kdc_conf,
            &format!(
                "[kdcdefaults]\n  kdc_listen = 127.0.0.1:{port}\n  kdc_tcp_listen = 127.0.0.1:{port}\n\
                 [realms]\n  {REALM} = {{\n    database_name = {db}\n    key_stash_file = {stash}\n    \
                 acl_file = {acl}\n    supported_enctypes = aes256-cts-hmac-sha1-96:normal \
                 aes128-cts-hmac-sha1-96:normal\n  }}\n[logging]\n  kdc = FILE:{log}\n",
                db = d.join("principal").display(),
                stash = d.join("stash").display(),
                acl = d.join("kadm5.acl").display(),
                log = d.join("kdc.log").display(),
            ),
        )?;
        let env = [
            ("KRB5_CONFIG", krb5_conf.as_path()),
            ("KRB5_KDC_PROFILE", kdc_conf.as_path()),
        ];
        let host = options.service_host.to_ascii_lowercase();
        let service_principal = format!("HTTP/{host}@{REALM}");
        let service_keytab = d.join("http.keytab");
        let client_keytab = d.join("client.keytab");
        run(
            d,
            &env,
            &tools.kdb5_util,
            &["create", "-s", "-r", REALM, "-P", "kdc-master-key"],
        )?;
        let admin = |query: String| run(d, &env, &tools.kadmin, &["-r", REALM, "-q", &query]);
        let max_life = options
            .user_max_life_secs
            .map(|s| format!("-maxlife \"{s} seconds\" "))
            .unwrap_or_default();
        admin(format!("addprinc {max_life}-pw {PASSWORD} {USER}@{REALM}"))?;
        admin(format!("addprinc -randkey {service_principal}"))?;
        admin(format!(
            "ktadd -k {} {service_principal}",
            service_keytab.display()
        ))?;
        // -norandkey keeps the password valid beside the keytab.
        admin(format!(
            "ktadd -k {} -norandkey {USER}@{REALM}",
            client_keytab.display()
        ))?;
        let mut command = Command::new(&tools.krb5kdc);
        if let Some((lib, ahead)) = &faketime {
            command
                .env("LD_PRELOAD", lib)
                .env("FAKETIME", format!("{ahead:+}s"));
        }
        // -n: stay in the foreground, so the child is the KDC and dropping it stops it.
        let child = command
            .args(["-n", "-r", REALM])
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| failed("starting krb5kdc", e))?;
        // From here on, dropping `kdc` stops the process on every early return.
        let mut kdc = Kdc {
            dir,
            child,
            port,
            krb5_conf,
            service_keytab,
            client_keytab,
            start_time: Duration::ZERO,
            service_principal,
        };
        let deadline = Instant::now() + LISTEN_WITHIN;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = kdc.child.try_wait() {
                return Err(KdcError::Failed(format!(
                    "krb5kdc exited with {status}: {}",
                    kdc.log()
                )));
            }
            if Instant::now() >= deadline {
                return Err(KdcError::Failed(format!(
                    "krb5kdc did not listen within {} s: {}",
                    LISTEN_WITHIN.as_secs(),
                    kdc.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        kdc.start_time = started.elapsed();
        Ok(kdc)
    }

    /// The temporary directory holding the database, configuration and keytabs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The service account's principal name, `svc-sync@EXSYNC.TEST`.
    pub fn user_principal(&self) -> String {
        format!("{USER}@{REALM}")
    }

    /// How many initial tickets (AS requests) the KDC has issued to anyone.
    pub fn initial_tickets_issued(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("AS_REQ") && l.contains("ISSUE"))
            .count()
    }

    /// The KDC's log, for a failure message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kdc.log")).unwrap_or_default()
    }

    /// The environment a client or acceptor process needs to use this KDC.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("KRB5_CONFIG".into(), self.krb5_conf.display().to_string())]
    }
}

impl Drop for Kdc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_kdc_names_the_programs_and_the_debian_packages() {
        let empty = tempfile::tempdir().unwrap();
        let err = find_tools(&[empty.path().to_path_buf()]).unwrap_err();
        assert!(matches!(err, KdcError::NotInstalled(_)), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("krb5kdc, kdb5_util, kadmin.local"), "{text}");
        assert!(
            text.contains("apt-get install krb5-kdc krb5-admin-server"),
            "{text}"
        );
    }

    #[test]
    fn the_programs_are_found_in_any_searched_directory() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(a.path().join("krb5kdc"), "").unwrap();
        std::fs::write(b.path().join("kdb5_util"), "").unwrap();
        std::fs::write(b.path().join("kadmin.local"), "").unwrap();
        let tools = find_tools(&[a.path().to_path_buf(), b.path().to_path_buf()]).unwrap();
        assert_eq!(tools.krb5kdc, a.path().join("krb5kdc"));
        assert_eq!(tools.kadmin, b.path().join("kadmin.local"));
    }
}
